//! Who the input shows talking to whom: the connections a generated policy must keep.
//!
//! A generated policy may only cut what it can show is not in use. The connections it can see:
//!
//! * **Service callers.** A workload names a Service in its pod spec or in what it reads: a DNS
//!   name (`api`, `api.shop`, `api.shop.svc.cluster.local`, a URL or DSN) in an environment
//!   value, a ConfigMap or Secret it reads, or a word of a command or argument (an init
//!   container's `nc -z postgres 5432`). Resolution follows cluster DNS
//!   ([`owners::candidates`]).
//! * **Database clients** ([`owners::usage`]): the same, resolved to databases, plus
//!   CloudNativePG credential Secrets.
//! * **Infrastructure**: the CloudNativePG operator (instances' 5432 and 8000), ingress
//!   controllers (exposed workloads), monitoring (annotated scrape ports, the sidecar's 15020 and
//!   15090).
//!
//! Helm hooks of the release (`helm.sh/hook`) are clients like any workload: a migration Job or a
//! `helm test` Pod connects to the database it tests. They never get a policy of their own.
//!
//! What it cannot see makes a workload's clients *unknown*: a Secret it reads that is not in the
//! input (`existingSecret`), or a Service nobody in the input names. Policy generation does not
//! isolate a workload whose clients are unknown, unless told to.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use meshmove_model::inventory::{Inventory, ObjectRef};
use meshmove_model::workload::Workload;
use serde_json::Value;

use super::rules::{Port, target_ports};
use meshmove_model::service::{TargetPort, service_ports};
use crate::discover::{self, Database};
use crate::owners::{self, Opaque, Reference, Usage};

/// Whether a workload is a Helm hook (`helm.sh/hook` annotation on the object). Helm's hook
/// annotations: <https://helm.sh/docs/topics/charts_hooks/>.
pub fn is_hook(w: &Workload<'_>) -> bool {
    w.object.value.pointer("/metadata/annotations/helm.sh~1hook").is_some()
}

/// One workload reaching another on some ports, and why the input says so.
#[derive(Debug, Clone)]
pub struct Call {
    /// Index of the client in the workload list.
    pub client: usize,
    pub ports: BTreeSet<Port>,
    pub via: String,
}

/// The callers of every workload (by index), from the Service names each workload uses.
pub fn service_callers(ws: &[Workload<'_>], usage: &Usage, selecting: &[Vec<&meshmove_model::inventory::Object>]) -> Vec<Vec<Call>> {
    // (namespace, service name) -> workloads it selects, with the Service's target ports.
    type Behind = HashMap<(String, String), Vec<(usize, Vec<Port>)>>;
    let mut behind = Behind::new();
    for (i, ss) in selecting.iter().enumerate() {
        for s in ss {
            behind.entry((s.namespace.clone().unwrap_or_default(), s.name.clone())).or_default().push((i, target_ports(s)));
        }
    }
    let mut out: Vec<Vec<Call>> = vec![Vec::new(); ws.len()];
    for (client, key, h) in named_services(ws, usage, |key| behind.contains_key(key)) {
        for (target, ports) in &behind[&key] {
            if *target == client {
                continue;
            }
            out[*target].push(Call { client, ports: ports.iter().cloned().collect(), via: format!("{} names {}", h.via, h.host) });
        }
    }
    for calls in &mut out {
        calls.sort_by(|a, b| a.client.cmp(&b.client).then_with(|| a.via.cmp(&b.via)));
        calls.dedup_by(|a, b| a.client == b.client && a.ports == b.ports);
    }
    out
}

/// The Service each cluster name a workload uses denotes: the first `(namespace, service)` of its
/// DNS candidates from the workload's namespace ([`owners::candidates`]) that `exists` accepts.
/// `(client index, (namespace, service), the name as found)`.
fn named_services<'u>(
    ws: &[Workload<'_>],
    usage: &'u Usage,
    exists: impl Fn(&(String, String)) -> bool,
) -> Vec<(usize, (String, String), &'u owners::NamedHost)> {
    let index: HashMap<ObjectRef, usize> = ws.iter().enumerate().map(|(i, w)| (w.object.object_ref(), i)).collect();
    let mut out = Vec::new();
    for h in &usage.hosts {
        let Some(&client) = index.get(&h.workload) else { continue };
        let client_ns = ws[client].namespace();
        let found = owners::candidates(&h.host, client_ns).into_iter().map(|(svc, ns)| (ns.to_string(), svc.to_string())).find(|key| exists(key));
        if let Some(key) = found {
            out.push((client, key, h));
        }
    }
    out
}

/// A workload the input shows naming a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceUse {
    pub client: ObjectRef,
    pub namespace: String,
    pub service: String,
    /// Where the name was found (`env API_URL`, `ConfigMap shop-config key url`); never a value.
    pub via: String,
}

/// Every Service of `inventory` that a workload of it names, resolved as cluster DNS resolves
/// the name from the workload's namespace: the caller analysis the generator admits Service
/// callers by ([`service_callers`]), for whoever needs "who calls this Service" (the namespace
/// migration's ambient callers). Names in Secrets and ConfigMaps count when the inventory holds
/// them.
pub fn service_uses(inventory: &Inventory) -> Vec<ServiceUse> {
    let ws = meshmove_model::workload::workloads(inventory);
    let usage = owners::usage(inventory, &[]);
    let services: HashSet<(String, String)> = inventory
        .of(&meshmove_model::inventory::kinds::SERVICE)
        .map(|s| (s.namespace.clone().unwrap_or_default(), s.name.clone()))
        .collect();
    let mut out: Vec<ServiceUse> = named_services(&ws, &usage, |key| services.contains(key))
        .into_iter()
        .map(|(client, (namespace, service), h)| ServiceUse { client: ws[client].object.object_ref(), namespace, service, via: h.via.clone() })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What the input says about one database's clients.
#[derive(Debug, Clone, Default)]
pub struct DatabaseClients {
    /// Workloads (by index) admitted, with where the reference was found.
    pub admitted: Vec<(usize, String)>,
    /// Workloads (by index) whose connection is a violation of "each service owns its database",
    /// with the reason.
    pub violators: Vec<(usize, String)>,
    /// The owner service, when several use it.
    pub owner: Option<String>,
    /// Why the clients cannot be established (then the database is not isolated by default).
    pub unknown: Vec<String>,
    /// Several services use it and none is its owner by configuration or name.
    pub shared_without_owner: bool,
}

/// Images of database engines: a workload running only these is database tooling (a dump, a
/// restore), not a service.
fn is_tooling(w: &Workload<'_>) -> bool {
    let mut images = w.images().peekable();
    images.peek().is_some() && images.all(|i| discover::Engine::from_image(i).is_some())
}

/// The workloads, their database references and the Secrets they lack, indexed once so that
/// asking for the clients of every database costs in proportion to the references, not to
/// databases times workloads.
pub struct ClientIndex<'a, 'o> {
    ws: &'a [Workload<'o>],
    index: HashMap<ObjectRef, usize>,
    /// Per database, its references in [`Usage::references`] order.
    references: HashMap<&'a ObjectRef, Vec<&'a Reference>>,
    /// Per namespace, in [`Usage::opaque`] order: workloads (by index) that read a Secret the
    /// input lacks, databases and CloudNativePG instance pods left out.
    opaque: HashMap<&'a str, Vec<(usize, &'a Opaque)>>,
}

impl<'a, 'o> ClientIndex<'a, 'o> {
    pub fn new(ws: &'a [Workload<'o>], usage: &'a Usage, dbs: &[Database]) -> Self {
        let index: HashMap<ObjectRef, usize> = ws.iter().enumerate().map(|(i, w)| (w.object.object_ref(), i)).collect();
        let mut references: HashMap<&ObjectRef, Vec<&Reference>> = HashMap::new();
        for r in &usage.references {
            references.entry(&r.database).or_default().push(r);
        }
        let databases: HashSet<&ObjectRef> = dbs.iter().map(|d| &d.object).collect();
        let mut opaque: HashMap<&str, Vec<(usize, &Opaque)>> = HashMap::new();
        for o in &usage.opaque {
            let Some(&i) = index.get(&o.workload) else { continue };
            let w = &ws[i];
            if databases.contains(&o.workload) || w.pod_labels().contains_key(meshmove_model::cnpg::CLUSTER_LABEL) {
                continue;
            }
            opaque.entry(w.namespace()).or_default().push((i, o));
        }
        ClientIndex { ws, index, references, opaque }
    }

    /// The references to one database, in [`Usage::references`] order.
    pub fn references(&self, db: &ObjectRef) -> &[&'a Reference] {
        self.references.get(db).map_or(&[], Vec::as_slice)
    }

    /// The clients of `db`: its references grouped by service; when several services use it,
    /// the owner (configured, else told from the names) is admitted and the others are
    /// violators; Helm hooks and database tooling are always admitted. Workloads of the
    /// database's namespace that read a Secret the input lacks make its clients unknown.
    pub fn database_clients(&self, db: &Database, configured_owner: Option<&str>) -> DatabaseClients {
        let ws = self.ws;
        let mut by_service: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
        let mut always: Vec<(usize, String)> = Vec::new();
        for r in self.references(&db.object) {
            let Some(&i) = self.index.get(&r.workload) else { continue };
            if is_hook(&ws[i]) || is_tooling(&ws[i]) {
                always.push((i, r.via.clone()));
            } else {
                by_service.entry(r.service.as_str()).or_default().push((i, r.via.as_str()));
            }
        }
        let mut out = DatabaseClients { admitted: always, ..DatabaseClients::default() };
        let services: Vec<&str> = by_service.keys().copied().collect();
        let owner: Option<String> = match services.as_slice() {
            [] => None,
            [one] => Some((*one).to_string()),
            many => configured_owner.map(str::to_string).or_else(|| owner_by_name(&db.object.name, many)),
        };
        match &owner {
            Some(o) => {
                for (service, clients) in &by_service {
                    for &(i, via) in clients {
                        if service == o {
                            out.admitted.push((i, via.to_string()));
                        } else {
                            out.violators.push((
                                i,
                                format!("service {service} uses the database of service {o} ({via}): each service owns its database (DB3001)"),
                            ));
                        }
                    }
                }
            }
            None => {
                if services.len() > 1 {
                    out.unknown.push(format!(
                        "it is used by {} services ({}) and which one owns it cannot be told from the names",
                        services.len(),
                        services.join(", ")
                    ));
                    out.shared_without_owner = true;
                }
                // Isolated anyway, it keeps every service that uses it and shuts out the rest.
                for clients in by_service.values() {
                    out.admitted.extend(clients.iter().map(|&(i, via)| (i, via.to_string())));
                }
            }
        }
        out.admitted.sort();
        out.violators.sort();
        out.owner = owner.filter(|_| services.len() > 1);
        // A workload of the database's namespace that reads a Secret the input does not hold may
        // hold its host there (an `existingSecret` with DATABASE_URL). Known clients are admitted
        // anyway; databases and their own pods do not connect to other databases.
        let known: BTreeSet<usize> = out.admitted.iter().chain(&out.violators).map(|(i, _)| *i).collect();
        let mut seen = BTreeSet::new();
        for &(i, o) in self.opaque.get(db.namespace()).map_or(&[][..], Vec::as_slice) {
            let w = &ws[i];
            if known.contains(&i) || !seen.insert(i) {
                continue;
            }
            out.unknown.push(format!("{}/{} reads Secret {} ({}), which is not in the input", w.kind(), w.name(), o.secret, o.via));
        }
        out
    }
}

/// The service a database is named after: `assets-db`, `assets-postgres` and `assets` belong to
/// `assets`. `None` unless exactly one service fits (the longest name wins over its prefixes:
/// `assets-api` over `assets` for `assets-api-db`).
fn owner_by_name(database: &str, services: &[&str]) -> Option<String> {
    let fits: Vec<&&str> =
        services.iter().filter(|s| database == **s || database.strip_prefix(**s).is_some_and(|rest| rest.starts_with('-'))).collect();
    let longest = fits.iter().map(|s| s.len()).max()?;
    let best: Vec<&&&str> = fits.iter().filter(|s| s.len() == longest).collect();
    (best.len() == 1).then(|| best[0].to_string())
}

/// Ports a pod template asks Prometheus to scrape (`prometheus.io/scrape: "true"` with
/// `prometheus.io/port`), the annotation convention of Prometheus' Kubernetes example
/// configuration.
pub fn scrape_port(w: &Workload<'_>) -> Option<u16> {
    let ann = w.pod_annotations();
    (ann.get("prometheus.io/scrape").map(String::as_str) == Some("true")).then(|| ann.get("prometheus.io/port")?.parse().ok())?
}

/// Ports Prometheus scrapes on a workload's pods by the Prometheus Operator's monitors: a
/// `ServiceMonitor` whose selector picks one of the workload's Services (endpoints by Service
/// port name, or `targetPort`), a `PodMonitor` whose selector picks its pods (endpoints by
/// container port name, or `targetPort`). Both select in their own namespace unless
/// `namespaceSelector` says otherwise (`any`, `matchNames`). API:
/// <https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.ServiceMonitor>.
pub fn monitored_ports(inventory: &Inventory, w: &Workload<'_>, services: &[&meshmove_model::inventory::Object]) -> BTreeSet<u16> {
    use meshmove_model::selector::LabelSelector;
    let in_scope = |m: &meshmove_model::inventory::Object, ns: &str| -> bool {
        let sel = m.value.pointer("/spec/namespaceSelector");
        if sel.and_then(|s| s.get("any")).and_then(Value::as_bool) == Some(true) {
            return true;
        }
        match sel.and_then(|s| s.get("matchNames")).and_then(Value::as_array) {
            Some(names) => names.iter().any(|n| n.as_str() == Some(ns)),
            // A monitor read from files keeps no namespace (its kind's scope is unknown offline):
            // it lands where the release's namespace-less objects land.
            None => match m.namespace.as_deref() {
                Some(own) => own == ns,
                None => ns.is_empty() || ns == inventory.default_namespace,
            },
        }
    };
    let selects = |m: &meshmove_model::inventory::Object, labels: &BTreeMap<String, String>| {
        LabelSelector::from_json(m.value.pointer("/spec/selector")).is_ok_and(|s| s.matches(labels))
    };
    let container_ports = w.ports();
    let container_port = |name: &str| container_ports.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| p.port);
    // A monitor's own `targetPort` reads like a Service's ([`meshmove_model::service`]).
    let resolve = |v: &Value| TargetPort::from_value(v).and_then(|t| t.resolve("TCP", &container_ports));
    let mut out = BTreeSet::new();
    for m in inventory.of_kind("monitoring.coreos.com", "ServiceMonitor") {
        for s in services.iter().filter(|s| in_scope(m, s.namespace.as_deref().unwrap_or_default())) {
            if !selects(m, &meshmove_model::workload::string_map(s.value.pointer("/metadata/labels"))) {
                continue;
            }
            for e in m.value.pointer("/spec/endpoints").and_then(Value::as_array).into_iter().flatten() {
                // An endpoint's `port` names a Service port, which sends to its target in the pod.
                match e.get("port").and_then(Value::as_str) {
                    Some(name) => out.extend(
                        service_ports(&s.value).into_iter().find(|p| p.name.as_deref() == Some(name)).and_then(|p| p.pod_port(&container_ports)),
                    ),
                    None => out.extend(e.get("targetPort").and_then(resolve)),
                }
            }
        }
    }
    for m in inventory.of_kind("monitoring.coreos.com", "PodMonitor") {
        if !in_scope(m, w.namespace()) || !selects(m, &w.pod_labels()) {
            continue;
        }
        for e in m.value.pointer("/spec/podMetricsEndpoints").and_then(Value::as_array).into_iter().flatten() {
            match e.get("port").and_then(Value::as_str) {
                Some(name) => out.extend(container_port(name)),
                None => out.extend(e.get("targetPort").and_then(resolve)),
            }
        }
    }
    out
}

/// Services an Ingress sends to pod IPs directly rather than through an in-cluster proxy: the
/// AWS Load Balancer Controller with `alb.ingress.kubernetes.io/target-type: ip`
/// (<https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/ingress/annotations/#target-type>).
/// Their traffic comes from the load balancer's addresses in the VPC, not from a namespace.
pub fn direct_to_pods(inventory: &Inventory) -> BTreeSet<(String, String)> {
    inventory
        .of(&meshmove_model::inventory::kinds::INGRESS)
        .filter(|ing| ing.annotation("alb.ingress.kubernetes.io/target-type") == Some("ip"))
        .flat_map(super::rules::ingress_backends)
        .collect()
}

/// Whether a namespace runs ambient: labelled `istio.io/dataplane-mode=ambient`
/// (<https://istio.io/latest/docs/ambient/usage/add-workloads/>).
pub fn namespace_is_ambient(inventory: &Inventory, namespace: &str) -> bool {
    inventory
        .get(&meshmove_model::inventory::kinds::NAMESPACE, None, namespace)
        .and_then(|n| n.value.pointer("/metadata/labels/istio.io~1dataplane-mode"))
        .and_then(Value::as_str)
        == Some("ambient")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_by_name() {
        assert_eq!(owner_by_name("assets-db", &["assets", "quality-analyzer"]), Some("assets".into()));
        assert_eq!(owner_by_name("assets", &["assets", "quality"]), Some("assets".into()));
        assert_eq!(owner_by_name("assets-api-db", &["assets", "assets-api"]), Some("assets-api".into()));
        assert_eq!(owner_by_name("shared-db", &["assets", "quality"]), None);
        assert_eq!(owner_by_name("assetsdb", &["assets", "quality"]), None);
    }
}
