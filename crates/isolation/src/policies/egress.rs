//! Egress isolation (`networkPolicies.egress`): for each workload a policy of its own,
//! `<release>-<workload>-egress` with `policyTypes: [Egress]`, beside its ingress policy.
//!
//! It keeps open what the input shows the workload reaching: cluster DNS, the release's Services
//! it calls (one peer when the release label is shared), istiod in sidecar mode, and destinations
//! outside the cluster that it names ([`owners::ExternalHost`]): an external database by address
//! (`postgresql://app@10.0.5.7:5432/app`, `DB_HOST=10.0.5.7`) becomes an `ipBlock` rule on the
//! port the value names. A NetworkPolicy peer is a pod selector, a namespace selector or an
//! `ipBlock` (a CIDR range, meant for addresses outside the cluster), never a DNS name
//! (<https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource>,
//! "Behavior of to and from selectors"). So a workload that names an outside host by DNS name,
//! or an address read from a Secret (a secret value is never written out), is left unrestricted
//! for egress unless `networkPolicies.externalHosts` gives that host's ranges; the report says
//! which host and which setting. The CloudNativePG clusters it references are named by their
//! instance pods' labels (`cnpg.io/cluster`): their Services are the operator's, so no Service
//! call of the input shows them. Where the mode is read from the input (`kubectl dbiso`), istiod
//! stays open to the workloads that carry a sidecar. A workload that reads a Secret the input lacks may connect to
//! anything it holds and is left unrestricted too, unless it is named in `isolateAnyway`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meshmove_model::inventory::ObjectRef;
use meshmove_model::workload::Workload;
use meshmove_netpol::WorkloadRef;
use serde_json::{Value, json};

use super::options::Cidr;
use super::proof::{From, To, Use};
use super::rules::{Port, port_rule, namespaces_selector, workload_peer};
use super::{RELEASE_LABEL, Request, clients, with_hbone};
use crate::discover::Database;
use crate::owners::{ExternalHost, Usage};

/// A workload's egress rules, what they admit in words, and the connections to outside the
/// cluster the proof must see kept.
pub(super) struct Plan {
    pub rules: Vec<Value>,
    pub admits: Vec<String>,
    pub uses: Vec<Use>,
}

/// Why a workload's egress is left open, and the setting that restricts it anyway.
pub(super) struct Open {
    pub reason: String,
    pub isolate_with: String,
}

/// The input's outside destinations and unread Secrets, by workload, read once.
pub(super) struct Outside<'u> {
    external: HashMap<&'u ObjectRef, Vec<&'u ExternalHost>>,
    /// Secrets a workload reads that the input lacks, other than CloudNativePG credential
    /// Secrets (their content is known: the cluster's own Service), with where they are read.
    opaque: HashMap<&'u ObjectRef, Vec<&'u str>>,
}

impl<'u> Outside<'u> {
    pub fn new(usage: &'u Usage) -> Self {
        let mut external: HashMap<&ObjectRef, Vec<&ExternalHost>> = HashMap::new();
        for e in &usage.external {
            external.entry(&e.workload).or_default().push(e);
        }
        let known: BTreeSet<(&ObjectRef, &str)> = usage
            .references
            .iter()
            .map(|r| (&r.workload, r.via.as_str()))
            .collect();
        let mut opaque: HashMap<&ObjectRef, Vec<&str>> = HashMap::new();
        for o in usage
            .opaque
            .iter()
            .filter(|o| !known.contains(&(&o.workload, o.via.as_str())))
        {
            opaque.entry(&o.workload).or_default().push(o.via.as_str());
        }
        Outside { external, opaque }
    }
}

/// istiod's ports: xDS and certificates (the sidecar connects from inside the pod) and the
/// webhook (<https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio>).
pub const ISTIOD_XDS_PORT: u16 = 15012;
pub const ISTIOD_WEBHOOK_PORT: u16 = 15017;

/// The egress rule a sidecar needs: istiod's pods in `istio_namespace` on its ports.
pub fn istiod_rule(istio_namespace: &str) -> Value {
    json!({
        "to": [{"namespaceSelector": namespaces_selector(&[istio_namespace.to_string()]),
                "podSelector": {"matchLabels": {"app": "istiod"}}}],
        "ports": [{"protocol": "TCP", "port": ISTIOD_XDS_PORT}, {"protocol": "TCP", "port": ISTIOD_WEBHOOK_PORT}],
    })
}

/// Configured ranges of a host (case-insensitive key).
fn configured<'o>(hosts: &'o BTreeMap<String, Vec<Cidr>>, host: &str) -> Option<&'o Vec<Cidr>> {
    hosts
        .iter()
        .find(|(k, _)| {
            k.trim_end_matches('.')
                .eq_ignore_ascii_case(host.trim_end_matches('.'))
        })
        .map(|(_, v)| v)
}

/// What the input shows of every workload, read once for all plans.
pub(super) struct Context<'c, 'u> {
    /// Service ports per workload (empty for workloads of other releases).
    pub svc_ports: &'c [BTreeSet<Port>],
    pub callers: &'c [Vec<clients::Call>],
    /// Every workload carries the release label: one peer reaches them all.
    pub all_labelled: bool,
    pub outside: &'c Outside<'u>,
}

/// The egress plan of workload `me`, or why its egress stays open. `with_istiod`: it carries a
/// sidecar, which needs istiod; `cnpg`: the CloudNativePG clusters it references.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan(
    ws: &[Workload<'_>],
    context: &Context<'_, '_>,
    me: usize,
    req: &Request<'_>,
    ambient: bool,
    with_istiod: bool,
    cnpg: &[&Database],
    engine_ref: &WorkloadRef,
    forced: bool,
) -> Result<Plan, Open> {
    let Context { svc_ports, callers, all_labelled, outside } = *context;
    let opts = req.options;
    let w = &ws[me];
    let object = w.object.object_ref();
    let mut admits = vec![format!(
        "DNS (pods k8s-app=kube-dns in {}) on UDP and TCP 53",
        opts.dns_namespace
    )];
    let mut rules = vec![json!({
        "to": [{"namespaceSelector": namespaces_selector(std::slice::from_ref(&opts.dns_namespace)),
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    })];
    if all_labelled {
        // Every Service port of the release: one peer, the union of their ports.
        let ports: BTreeSet<&Port> = svc_ports
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .flat_map(|(_, p)| p)
            .collect();
        if !ports.is_empty() {
            admits.push(format!(
                "the workloads of release {} on their Service ports",
                req.release
            ));
            rules.push(
                json!({"to": [{"podSelector": {"matchLabels": {RELEASE_LABEL: req.release}}}],
                "ports": with_hbone(ports.into_iter().map(port_rule).collect(), ambient)}),
            );
        }
    } else {
        // The workloads this one is seen calling.
        for (target, calls) in callers.iter().enumerate() {
            if let Some(c) = calls.iter().find(|c| c.client == me) {
                admits.push(format!(
                    "{}/{} ({})",
                    ws[target].kind(),
                    ws[target].name(),
                    c.via
                ));
                rules.push(json!({"to": [workload_peer(&ws[target], w.namespace())],
                    "ports": with_hbone(c.ports.iter().map(port_rule).collect(), ambient)}));
            }
        }
    }
    // CloudNativePG clusters it references: their instance pods on the database's ports.
    for db in cnpg {
        let mut peer = serde_json::Map::new();
        if db.object.namespace != object.namespace {
            peer.insert("namespaceSelector".into(), namespaces_selector(&[db.namespace().to_string()]));
        }
        peer.insert("podSelector".into(), json!({"matchLabels": db.pod_labels}));
        admits.push(format!(
            "Cluster/{} (CloudNativePG) on {}",
            db.object.name,
            db.ports.iter().map(|p| format!("TCP {p}")).collect::<Vec<_>>().join(", ")
        ));
        rules.push(json!({"to": [Value::Object(peer)],
            "ports": with_hbone(db.ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient)}));
    }
    // Ambient: no rule of its own for 15008. Through the tunnel a pod admitted on 15008 reaches
    // every port of a captured destination (`meshmove_netpol::hbone`), so 15008 only goes into the
    // rules above, to the peers they name.
    if with_istiod {
        admits.push(format!(
            "istiod ({}) on TCP {ISTIOD_XDS_PORT}, {ISTIOD_WEBHOOK_PORT}",
            opts.istio_namespace
        ));
        rules.push(istiod_rule(&opts.istio_namespace));
    }

    // Destinations outside the cluster, grouped by port: (port, ranges, where named).
    let mut unknown: Vec<String> = Vec::new();
    let mut settings: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut by_port: BTreeMap<Option<u16>, (BTreeSet<Cidr>, BTreeSet<String>)> = BTreeMap::new();
    for e in outside.external.get(&object).map_or(&[][..], Vec::as_slice) {
        let ranges: Vec<Cidr> = match (configured(&opts.external_hosts, &e.host), e.ip()) {
            (Some(c), _) => c.clone(),
            (None, Some(ip)) if !e.secret => vec![Cidr::host(ip)],
            (None, _) => {
                let (named, key) = if e.secret {
                    (
                        format!(
                            "an address read from {} (not shown: part of a Secret's value)",
                            e.via
                        ),
                        "<that host>".to_string(),
                    )
                } else {
                    (format!("{} ({})", e.host, e.via), e.host.clone())
                };
                flags.push(format!("--external-host {key}=<CIDR>"));
                let what = if e.secret || e.ip().is_some() {
                    ""
                } else {
                    ", a DNS name outside the cluster"
                };
                unknown.push(format!("{named}{what}"));
                settings.push(format!("{key}: [<its address ranges>]"));
                continue;
            }
        };
        let entry = by_port.entry(e.port).or_default();
        entry.0.extend(ranges);
        entry.1.insert(e.via.clone());
    }
    if !forced {
        if let Some(vias) = outside.opaque.get(&object) {
            return Err(Open {
                reason: format!(
                    "egress stays open: it reads {} the input does not hold, which may name any destination",
                    vias.iter()
                        .map(|v| format!("a Secret ({v})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                isolate_with: format!("networkPolicies.isolateAnyway: [{name}] (dbiso: --isolate {name})", name = w.name()),
            });
        }
        if !unknown.is_empty() {
            settings.sort();
            settings.dedup();
            flags.sort();
            flags.dedup();
            return Err(Open {
                reason: format!(
                    "egress stays open: it connects to {}, and a NetworkPolicy names destinations outside the cluster by address range only (ipBlock)",
                    unknown.join("; ")
                ),
                isolate_with: format!("networkPolicies.externalHosts: {{{}}} (dbiso: {})", settings.join(", "), flags.join(" ")),
            });
        }
    }
    let mut uses = Vec::new();
    for (port, (ranges, vias)) in &by_port {
        let peers: Vec<Value> = ranges
            .iter()
            .map(|c| json!({"ipBlock": {"cidr": c.to_string()}}))
            .collect();
        let shown: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        let vias: Vec<&str> = vias.iter().map(String::as_str).collect();
        let port_text = port.map_or_else(|| "every port".to_string(), |p| format!("TCP {p}"));
        admits.push(format!(
            "{} on {port_text} (named in {})",
            shown.join(", "),
            vias.join(", ")
        ));
        let mut rule = serde_json::Map::new();
        rule.insert("to".into(), Value::Array(peers));
        if let Some(p) = port {
            rule.insert("ports".into(), json!([{"protocol": "TCP", "port": p}]));
        }
        rules.push(Value::Object(rule));
        for c in ranges {
            uses.push(Use {
                from: From::Workload(engine_ref.clone()),
                from_name: format!("{}/{}", w.kind(), w.name()),
                to: To::External(c.net()),
                ports: port.iter().copied().collect(),
                why: format!("an external destination named in {}", vias.join(", ")),
                violation: None,
            });
        }
    }
    Ok(Plan {
        rules,
        admits,
        uses,
    })
}

#[cfg(test)]
mod dbiso_tests;
#[cfg(test)]
mod tests;
