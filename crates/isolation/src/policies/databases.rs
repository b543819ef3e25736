//! Drafting the candidate policies of databases (`kubectl dbiso generate|apply`, and the
//! post-renderer's database isolation): the owner and the configured clients admitted,
//! violations cut and reported, the CloudNativePG operator and replication kept, monitoring and
//! the mesh's ports.

use std::collections::{BTreeMap, BTreeSet};

use meshmove_model::inventory::ObjectRef;
use meshmove_model::names::generated_name;
use meshmove_netpol::view;
use serde_json::{Map, Value, json};

use super::proof::{From, To, Use};
use super::rules::{namespaces_selector, pod_selector, workload_peer};
use super::run::{Drafts, Run, across_releases};
use super::waypoints::{self, Gate};
use super::{CNPG_OPERATOR_LABELS, DatabaseClient, Draft, Generation, Subjects, Withheld, mesh_rules, policy_name, short, with_hbone};
use crate::discover::{CNPG_STATUS_PORT, Database};

impl Run<'_, '_> {
    /// One ingress candidate per database, or the reason it is withheld; with egress isolation,
    /// every reference to a database left unrestricted is recorded as a use to keep.
    pub(super) fn database_drafts(&self, acc: &mut Drafts, out: &mut Generation) {
        let f = self.f;
        let (req, opts, ws, dbs, context) = (f.req, f.req.options, &f.ws, &f.dbs, f.context);
        let (is_context, monitoring, sidecar, isolate_dbs) = (&f.is_context, &f.monitoring, f.sidecar, f.isolate_dbs);
        let client_index = &self.client_index;
        let ws_index: std::collections::HashMap<ObjectRef, usize> =
            if opts.egress { ws.iter().enumerate().map(|(i, w)| (w.object.object_ref(), i)).collect() } else { Default::default() };
        let reference_uses = |db: &Database, uses: &mut Vec<Use>| {
            if !opts.egress {
                return;
            }
            for r in client_index.references(&db.object) {
                let Some(client) = ws_index.get(&r.workload).map(|&i| &ws[i]) else { continue };
                uses.push(Use {
                    from: From::Workload(view::workload_ref(client.object)),
                    from_name: short(client),
                    to: To::Workload(db.workload_ref()),
                    ports: db.ports.clone(),
                    why: r.via.clone(),
                    violation: None,
                });
            }
        };
        for db in dbs {
            if context.contains(&db.object) {
                continue;
            }
            if !isolate_dbs {
                reference_uses(db, &mut acc.uses);
                continue;
            }
            let configured_owner = opts.database_owners.get(&db.object.name).map(String::as_str);
            let found = client_index.database_clients(db, configured_owner);
            let ns = db.namespace().to_string();
            let ambient = self.ambient(&ns);
            let me = db.workload_ref();
            let protects = if db.cnpg { format!("Cluster/{}", db.object.name) } else { format!("{}/{}", db.object.kind, db.object.name) };
            if let Some((c, via)) = found.admitted.iter().find(|(c, _)| is_context[*c]) {
                out.withheld.push(across_releases(protects, &ns, "is used by", &ws[*c], via, req.release));
                continue;
            }
            let configured: Vec<&DatabaseClient> = opts.database_clients.iter().filter(|c| c.database == db.object.name).collect();
            let forced = self.isolate_anyway(&db.object.name);
            let name = &db.object.name;
            let isolate_with = if found.shared_without_owner {
                format!(
                    "networkPolicies.databaseOwners: {{{name}: <owner service>}} to admit the owner and cut the others, or \
                     networkPolicies.isolateAnyway: [{name}] to admit every service that uses it (dbiso: --owner {name}=SERVICE or --isolate {name})"
                )
            } else {
                format!("networkPolicies.isolateAnyway: [{name}] (dbiso: --isolate {name})")
            };
            let withhold = |reason: String, out: &mut Generation| {
                out.withheld.push(Withheld { subject: protects.clone(), namespace: ns.clone(), reason, isolate_with: isolate_with.clone(), egress: false, refuses: Vec::new() })
            };
            if !found.unknown.is_empty() && !forced {
                withhold(format!("its clients cannot all be established: {}", found.unknown.join("; ")), out);
                reference_uses(db, &mut acc.uses);
                continue;
            }
            if found.admitted.is_empty() && configured.is_empty() && !forced {
                withhold("no workload references it, so its policy would admit no client".into(), out);
                reference_uses(db, &mut acc.uses);
                continue;
            }
            // Behind a waypoint, ambient clients arrive from the waypoint's pods.
            let hop = match ws.iter().position(|w| !db.cnpg && w.object.object_ref() == db.object) {
                _ if !ambient => None,
                Some(wi) => f.hops[wi].clone(),
                None => waypoints::namespace_hop(f.inventory, ws, &ns, "Cluster", &db.object.name),
            };
            let anyway = if f.alone { super::authz_only::anyway(name) } else { format!("networkPolicies.isolateAnyway: [{name}] (dbiso: --isolate {name})") };
            let gate = match self.waypoint_gate(hop.as_ref(), &protects, &ns, name, anyway, out) {
                Gate::Withheld => {
                    reference_uses(db, &mut acc.uses);
                    continue;
                }
                g => g,
            };
            let ports: Vec<Value> = with_hbone(db.ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient);
            let ports_text = db.ports.iter().map(|p| format!("TCP {p}")).collect::<Vec<_>>().join(", ");
            let mut admits = Vec::new();
            let mut peers: Vec<Value> = Vec::new();
            let mut seen = BTreeSet::new();
            for (i, via) in &found.admitted {
                let client = &ws[*i];
                acc.uses.push(Use {
                    from: From::Workload(view::workload_ref(client.object)),
                    from_name: short(client),
                    to: To::Workload(me.clone()),
                    ports: db.ports.clone(),
                    why: via.clone(),
                    violation: None,
                });
                if seen.insert(*i) {
                    admits.push(format!("{} on {ports_text}", short(client)));
                    peers.push(workload_peer(client, &ns));
                }
            }
            for (i, reason) in &found.violators {
                let client = &ws[*i];
                acc.uses.push(Use {
                    from: From::Workload(view::workload_ref(client.object)),
                    from_name: short(client),
                    to: To::Workload(me.clone()),
                    ports: db.ports.clone(),
                    why: reason.clone(),
                    violation: Some(reason.clone()),
                });
            }
            for c in &configured {
                let mut peer = Map::new();
                if let Some(cns) = &c.namespace {
                    peer.insert("namespaceSelector".into(), namespaces_selector(std::slice::from_ref(cns)));
                }
                peer.insert("podSelector".into(), c.pod_selector.json());
                admits.push(format!("configured client {} on {ports_text}", serde_json::to_string(&c.pod_selector.json()).unwrap_or_default()));
                peers.push(Value::Object(peer));
            }
            let mut rules = Vec::new();
            if !peers.is_empty() {
                rules.push(json!({"from": peers, "ports": ports}));
            }
            if let Gate::Admit(hop, j) = gate {
                let port_json = db.ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect();
                self.waypoint_rule(hop, j, &me, &ns, port_json, &db.ports, &mut rules, &mut admits, &mut acc.uses);
            }
            if db.cnpg {
                // CloudNativePG's operator reaches every instance on the instance manager's status
                // port and on PostgreSQL; instances replicate to each other
                // (https://cloudnative-pg.io/documentation/current/networking/).
                let operator_ports = [meshmove_model::cnpg::POSTGRES_PORT, CNPG_STATUS_PORT];
                admits.push(format!("the CloudNativePG operator (namespace {}) on TCP 5432, 8000", opts.cnpg_operator_namespace));
                rules.push(json!({
                    "from": [{"namespaceSelector": namespaces_selector(std::slice::from_ref(&opts.cnpg_operator_namespace)),
                              "podSelector": {"matchLabels": BTreeMap::from(CNPG_OPERATOR_LABELS)}}],
                    "ports": with_hbone(operator_ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient),
                }));
                acc.uses.push(Use {
                    from: From::Namespace {
                        namespace: opts.cnpg_operator_namespace.clone(),
                        labels: CNPG_OPERATOR_LABELS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    },
                    from_name: format!("the CloudNativePG operator ({})", opts.cnpg_operator_namespace),
                    to: To::Workload(me.clone()),
                    ports: operator_ports.to_vec(),
                    why: "the operator manages the instances".into(),
                    violation: None,
                });
                admits.push("the cluster's own instances (replication)".into());
                rules.push(json!({"from": [{"podSelector": {"matchLabels": db.pod_labels}}]}));
            }
            if !db.metrics_ports.is_empty() && !monitoring.is_empty() {
                admits.push(format!("monitoring namespaces {} on the metrics ports", monitoring.join(", ")));
                rules.push(json!({
                    "from": [{"namespaceSelector": namespaces_selector(monitoring)}],
                    "ports": with_hbone(db.metrics_ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient),
                }));
            }
            mesh_rules(&mut rules, &mut admits, ambient, sidecar, monitoring);
            let selector = match ws.iter().find(|w| !db.cnpg && w.object.object_ref() == db.object) {
                Some(w) => pod_selector(w),
                None => json!({"matchLabels": db.pod_labels}),
            };
            let mut spec = Map::new();
            spec.insert("podSelector".into(), selector);
            spec.insert("ingress".into(), Value::Array(rules));
            let name = match req.subjects {
                Subjects::Release => policy_name(req.release, &db.object.name),
                Subjects::Databases => {
                    let clash = dbs.iter().filter(|d| d.namespace() == db.namespace() && d.object.name == db.object.name).count() > 1;
                    if clash {
                        generated_name(&format!("dbiso-{}-{}", db.object.kind.to_ascii_lowercase(), db.object.name))
                    } else {
                        generated_name(&format!("dbiso-{}", db.object.name))
                    }
                }
            };
            acc.drafts.push(Draft { subject: db.object.clone(), ambient, engine_ref: me, protects, namespace: ns, name, egress: false, spec, admits });
        }
    }
}
