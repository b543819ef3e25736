//! Generating NetworkPolicies from what the objects say about themselves.
//!
//! The Helm post-renderer and `kubectl dbiso generate` share this: a default-deny ingress policy
//! per workload (selecting that workload's pods only, never a whole namespace), opened for exactly
//! the traffic the manifests explain — Services between workloads of the same release, ingress
//! controllers to exposed workloads, mesh ports, and database clients that reference a database.
//!
//! Policies are additive in Kubernetes: one policy per workload that both isolates and allows is
//! the smallest set that is easy to read and to delete.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::dbiso::discover::{self, CNPG_METRICS_PORT, CNPG_STATUS_PORT, Database};
use crate::dbiso::owners;
use crate::inject::MeshMode;
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_model::workload::{Workload, string_map, workloads};

/// Label marking generated objects.
pub const GENERATED_LABEL: &str = "mesh-migrate.meshmove.io/generated";

/// Namespaces that need access, and what to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyOptions {
    /// Namespaces of ingress gateways and ingress controllers.
    pub ingress_namespaces: Vec<String>,
    /// Namespaces of Prometheus and friends (scrape mesh and database metrics).
    pub monitoring_namespaces: Vec<String>,
    /// Namespace of cluster DNS (pods labelled `k8s-app: kube-dns`).
    pub dns_namespace: String,
    /// Namespace of the CloudNativePG operator.
    pub cnpg_operator_namespace: String,
    /// Namespace of istiod (for egress to the control plane).
    pub istio_namespace: String,
    /// Also isolate egress (allowing DNS, the control plane and the release's own Services).
    pub egress: bool,
    /// Restrict database pods to the workloads that reference them.
    pub database_isolation: bool,
    /// Clients of a database that the manifests do not show (or that are Helm hooks, which
    /// policies are never derived from), admitted on the database's client ports.
    pub database_clients: Vec<DatabaseClient>,
}

/// An extra client of a database: pods selected by labels (in the database's namespace unless
/// `namespace` is set). The typical one is a Helm hook Job that migrates the schema: hooks are
/// never used to derive policies, so without this entry the database policy blocks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseClient {
    /// Name of the database: the StatefulSet or Deployment running it, or the CloudNativePG
    /// `Cluster`, as rendered.
    pub database: String,
    /// The client pods.
    pub pod_selector: ClientSelector,
    /// Namespace of the client pods, when they do not run in the database's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A label selector as NetworkPolicy peers take it, checked as the API server would check it:
/// it must select by something, `In`/`NotIn` need values, `Exists`/`DoesNotExist` take none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "ClientSelectorSpec")]
pub struct ClientSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl ClientSelector {
    /// The selector as a NetworkPolicy peer's `podSelector`.
    pub fn json(&self) -> Value {
        let mut sel = Map::new();
        if !self.match_labels.is_empty() {
            sel.insert("matchLabels".into(), json!(self.match_labels));
        }
        if !self.match_expressions.is_empty() {
            let exprs = self
                .match_expressions
                .iter()
                .map(|r| {
                    let mut e = Map::new();
                    e.insert("key".into(), json!(r.key));
                    e.insert("operator".into(), json!(format!("{:?}", r.operator)));
                    if !r.values.is_empty() {
                        e.insert("values".into(), json!(r.values));
                    }
                    Value::Object(e)
                })
                .collect();
            sel.insert("matchExpressions".into(), Value::Array(exprs));
        }
        Value::Object(sel)
    }
}

/// [`ClientSelector`] as written, before it is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientSelectorSpec {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<SelectorRequirement>,
}

impl TryFrom<ClientSelectorSpec> for ClientSelector {
    type Error = String;

    fn try_from(spec: ClientSelectorSpec) -> Result<Self, String> {
        if spec.match_labels.is_empty() && spec.match_expressions.is_empty() {
            return Err("podSelector needs matchLabels or matchExpressions: an empty selector would admit every pod of the namespace \
                        (to stop isolating databases, set databaseIsolation: false)"
                .into());
        }
        for r in &spec.match_expressions {
            match r.operator {
                SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                    return Err(format!("matchExpressions key `{}`: operator {:?} needs values", r.key, r.operator));
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist if !r.values.is_empty() => {
                    return Err(format!("matchExpressions key `{}`: operator {:?} takes no values", r.key, r.operator));
                }
                _ => {}
            }
        }
        Ok(ClientSelector { match_labels: spec.match_labels, match_expressions: spec.match_expressions })
    }
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Label selector operators (spelled as in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            ingress_namespaces: vec!["istio-ingress".into(), "istio-system".into(), "ingress-nginx".into()],
            monitoring_namespaces: vec!["monitoring".into()],
            dns_namespace: "kube-system".into(),
            cnpg_operator_namespace: "cnpg-system".into(),
            istio_namespace: "istio-system".into(),
            egress: false,
            database_isolation: true,
            database_clients: Vec::new(),
        }
    }
}

/// Ports Istio needs open on meshed pods: HBONE (ambient), Envoy telemetry and merged metrics.
pub const HBONE_PORT: u16 = 15008;
pub const ENVOY_TELEMETRY_PORT: u16 = 15090;
pub const MERGED_METRICS_PORT: u16 = 15020;

/// A target port: a number or a named container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Port {
    Number(u16),
    Named(String),
}

impl Port {
    fn json(&self) -> Value {
        match self {
            Port::Number(n) => json!({"protocol": "TCP", "port": n}),
            Port::Named(s) => json!({"protocol": "TCP", "port": s}),
        }
    }
}

/// One generated policy and why it exists.
#[derive(Debug, Clone)]
pub struct Generated {
    pub name: String,
    pub namespace: String,
    pub object: Value,
    /// The workload (or database) it protects, `Kind/name`.
    pub protects: String,
}

/// Generate one ingress policy per workload of `inventory` (which should hold one release's
/// objects, hooks excluded). `release` prefixes names; `mode` decides mesh ports.
pub fn generate(inventory: &Inventory, release: &str, mode: MeshMode, opts: &PolicyOptions) -> Vec<Generated> {
    let ws = workloads(inventory);
    let dbs = if opts.database_isolation { discover::databases(inventory) } else { Vec::new() };
    let (refs, _) = owners::references(inventory, &dbs);
    let exposed = exposed_services(inventory);
    let services = ServiceIndex::new(inventory);
    // The Services selecting each workload and their target ports, computed once: egress rules
    // need every other workload's ports.
    let selecting: Vec<Vec<&meshmove_model::inventory::Object>> = ws.iter().map(|w| services.selecting(w)).collect();
    let ports: Vec<BTreeSet<Port>> = selecting.iter().map(|ss| ss.iter().flat_map(|s| target_ports(s)).collect()).collect();
    // The same for every workload of the release: built once, on first use.
    let mut peers: Option<Vec<Value>> = None;
    let mut out = Vec::new();

    for (i, w) in ws.iter().enumerate() {
        let my_ref = w.object.object_ref();
        let db = dbs.iter().find(|d| d.object == my_ref);
        let mut rules: Vec<Value> = Vec::new();
        match db {
            Some(db) => rules.extend(database_rules(db, &refs, &ws, opts)),
            None => {
                if !ports[i].is_empty() {
                    let from = peers.get_or_insert_with(|| release_peers(&ws, &dbs, release)).clone();
                    let mut rule = Map::new();
                    rule.insert("from".into(), Value::Array(from));
                    rule.insert("ports".into(), ports[i].iter().map(Port::json).collect());
                    rules.push(Value::Object(rule));
                }
                let exposed_ports: BTreeSet<Port> = selecting[i]
                    .iter()
                    .filter(|s| exposed.contains(&(s.namespace.clone().unwrap_or_default(), s.name.clone())))
                    .flat_map(|s| target_ports(s))
                    .collect();
                if !exposed_ports.is_empty() && !opts.ingress_namespaces.is_empty() {
                    rules.push(json!({
                        "from": [{"namespaceSelector": namespaces_selector(&opts.ingress_namespaces)}],
                        "ports": exposed_ports.iter().map(Port::json).collect::<Vec<_>>(),
                    }));
                }
            }
        }
        match mode {
            MeshMode::Ambient => rules.push(json!({"ports": [{"protocol": "TCP", "port": HBONE_PORT}]})),
            MeshMode::Sidecar if !opts.monitoring_namespaces.is_empty() => rules.push(json!({
                "from": [{"namespaceSelector": namespaces_selector(&opts.monitoring_namespaces)}],
                "ports": [{"protocol": "TCP", "port": ENVOY_TELEMETRY_PORT}, {"protocol": "TCP", "port": MERGED_METRICS_PORT}],
            })),
            _ => {}
        }
    let mut spec = Map::new();
        spec.insert("podSelector".into(), pod_selector(w));
        let mut types = vec![json!("Ingress")];
        if opts.egress {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
        spec.insert("ingress".into(), Value::Array(rules));
        if opts.egress {
            spec.insert("egress".into(), Value::Array(egress_rules(&ws, &ports, w, mode, opts)));
        }
        let name = policy_name(release, w.name());
        let namespace = w.object.namespace.clone().filter(|ns| !ns.is_empty());
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(name));
        if let Some(ns) = &namespace {
            metadata.insert("namespace".into(), json!(ns));
        }
        metadata.insert(
            "labels".into(),
            json!({GENERATED_LABEL: "true", "app.kubernetes.io/instance": release}),
        );
        let object = network_policy(metadata, spec);
        out.push(Generated { name, namespace: namespace.unwrap_or_default(), object, protects: format!("{}/{}", w.kind(), w.name()) });
    }
    // CloudNativePG clusters run pods the stream does not contain: protect them by their label.
    for db in dbs.iter().filter(|d| d.cnpg) {
        let name = policy_name(release, &db.object.name);
        let labels = json!({GENERATED_LABEL: "true", "app.kubernetes.io/instance": release});
        let object = database_policy(db, &refs, &ws, opts, &name, labels);
        out.push(Generated { name, namespace: db.namespace().to_string(), object, protects: format!("Cluster/{}", db.object.name) });
    }
    unique_names(&mut out, release);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A NetworkPolicy object. (Built from its parts rather than with `json!`, which would copy
/// them: it serializes interpolated values.)
fn network_policy(metadata: Map<String, Value>, spec: Map<String, Value>) -> Value {
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!("networking.k8s.io/v1"));
    object.insert("kind".into(), json!("NetworkPolicy"));
    object.insert("metadata".into(), Value::Object(metadata));
    object.insert("spec".into(), Value::Object(spec));
    Value::Object(object)
}

/// Two objects of different kinds may share a name (a Deployment and a StatefulSet `api`, a
/// workload and a CloudNativePG cluster), and so would their policies: a release holding two
/// NetworkPolicies of one name does not install. The first keeps the name (workloads in
/// [`meshmove_model::workload::WORKLOAD_KINDS`] order, then clusters); later ones get their kind in it.
fn unique_names(out: &mut [Generated], release: &str) {
    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for g in out.iter_mut() {
        if taken.insert((g.namespace.clone(), g.name.clone())) {
            continue;
        }
        let (kind, name) = g.protects.split_once('/').unwrap_or(("", g.protects.as_str()));
        let base = format!("{name}-{}", kind.to_ascii_lowercase());
        let mut candidate = policy_name(release, &base);
        let mut n = 2;
        while taken.contains(&(g.namespace.clone(), candidate.clone())) {
            candidate = policy_name(release, &format!("{base}-{n}"));
            n += 1;
        }
        taken.insert((g.namespace.clone(), candidate.clone()));
        if let Some(meta) = g.object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("name".into(), json!(candidate));
        }
        g.name = candidate;
    }
}

/// Peers for "any workload of this release": one selector on the release label when every
/// (non-database) workload carries it, else one selector per workload.
fn release_peers(ws: &[Workload<'_>], dbs: &[Database], release: &str) -> Vec<Value> {
    let clients: Vec<&Workload<'_>> = ws.iter().filter(|w| !dbs.iter().any(|d| d.object == w.object.object_ref())).collect();
    let all_labelled = !release.is_empty()
        && clients.iter().all(|w| w.pod_labels().get(RELEASE_LABEL).is_some_and(|r| r == release));
    if all_labelled {
        return vec![json!({"podSelector": {"matchLabels": {RELEASE_LABEL: release}}})];
    }
    clients.iter().map(|w| json!({"podSelector": pod_selector(w)})).collect()
}

/// Helm's recommended release label.
pub const RELEASE_LABEL: &str = "app.kubernetes.io/instance";

/// One ingress policy isolating a database: its pods (selected by the workload's own selector,
/// or CloudNativePG's `cnpg.io/cluster` label) admit only [`database_rules`]. `kubectl dbiso
/// generate` writes these; the post-renderer writes the same for CloudNativePG clusters.
pub fn database_policy(
    db: &Database,
    refs: &[owners::Reference],
    ws: &[Workload<'_>],
    opts: &PolicyOptions,
    name: &str,
    labels: Value,
) -> Value {
    let selector = match ws.iter().find(|w| !db.cnpg && w.object.object_ref() == db.object) {
        Some(w) => pod_selector(w),
        None => json!({"matchLabels": db.pod_labels}),
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    if let Some(ns) = db.object.namespace.as_ref().filter(|ns| !ns.is_empty()) {
        metadata.insert("namespace".into(), json!(ns));
    }
    metadata.insert("labels".into(), labels);
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata,
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": database_rules(db, refs, ws, opts)}})
}

/// Rules that let only a database's referencing workloads (and the configured
/// [`PolicyOptions::database_clients`] of it) in on its client ports, plus the
/// CloudNativePG operator (status and metrics ports) and replication between a cluster's
/// instances, and the monitoring namespaces on the database's metrics ports.
pub fn database_rules(db: &Database, refs: &[owners::Reference], ws: &[Workload<'_>], opts: &PolicyOptions) -> Vec<Value> {
    let mut rules = Vec::new();
    let clients: Vec<Value> = refs
        .iter()
        .filter(|r| r.database == db.object)
        .filter_map(|r| ws.iter().find(|w| w.object.object_ref() == r.workload))
        .map(|w| {
            let mut peer = Map::new();
            if w.namespace() != db.namespace() {
                peer.insert("namespaceSelector".into(), namespaces_selector(&[w.namespace().to_string()]));
            }
            peer.insert("podSelector".into(), pod_selector(w));
            Value::Object(peer)
        })
        .chain(opts.database_clients.iter().filter(|c| c.database == db.object.name).map(|c| {
            let mut peer = Map::new();
            if let Some(ns) = &c.namespace {
                peer.insert("namespaceSelector".into(), namespaces_selector(std::slice::from_ref(ns)));
            }
            peer.insert("podSelector".into(), c.pod_selector.json());
            Value::Object(peer)
        }))
        .collect();
    if !clients.is_empty() {
        let ports: Vec<Value> = db.ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect();
        rules.push(json!({"from": clients, "ports": ports}));
    }
    if db.cnpg {
        rules.push(json!({
            "from": [{"namespaceSelector": namespaces_selector(std::slice::from_ref(&opts.cnpg_operator_namespace))}],
            "ports": [{"protocol": "TCP", "port": CNPG_STATUS_PORT}, {"protocol": "TCP", "port": CNPG_METRICS_PORT}],
        }));
        // Instances of one cluster replicate to each other.
        rules.push(json!({"from": [{"podSelector": {"matchLabels": db.pod_labels}}]}));
    }
    if !db.metrics_ports.is_empty() && !opts.monitoring_namespaces.is_empty() {
        rules.push(json!({
            "from": [{"namespaceSelector": namespaces_selector(&opts.monitoring_namespaces)}],
            "ports": db.metrics_ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect::<Vec<_>>(),
        }));
    }
    rules
}

fn egress_rules(ws: &[Workload<'_>], ports: &[BTreeSet<Port>], me: &Workload<'_>, mode: MeshMode, opts: &PolicyOptions) -> Vec<Value> {
    let mut rules = vec![json!({
        "to": [{"namespaceSelector": namespaces_selector(std::slice::from_ref(&opts.dns_namespace)),
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    })];
    let same = |o: &Workload<'_>| o.object.kind == me.object.kind && o.object.namespace == me.object.namespace && o.object.name == me.object.name;
    for (other, ports) in ws.iter().zip(ports).filter(|(o, _)| !same(o)) {
        if !ports.is_empty() {
            rules.push(json!({"to": [{"podSelector": pod_selector(other)}], "ports": ports.iter().map(Port::json).collect::<Vec<_>>()}));
        }
    }
    match mode {
        MeshMode::Sidecar => rules.push(json!({
            "to": [{"namespaceSelector": namespaces_selector(std::slice::from_ref(&opts.istio_namespace)),
                    "podSelector": {"matchLabels": {"app": "istiod"}}}],
            "ports": [{"protocol": "TCP", "port": 15012}, {"protocol": "TCP", "port": 15017}],
        })),
        MeshMode::Ambient => rules.push(json!({"ports": [{"protocol": "TCP", "port": HBONE_PORT}]})),
        MeshMode::None => {}
    }
    rules
}

/// `<release>-<workload>-ingress`, without doubling a release prefix the workload already has,
/// shortened with a stable hash when longer than a label value allows.
pub fn policy_name(release: &str, workload: &str) -> String {
    let base = if release.is_empty() || workload == release || workload.starts_with(&format!("{release}-")) {
        workload.to_string()
    } else {
        format!("{release}-{workload}")
    };
    let name = format!("{base}-ingress");
    if name.len() <= 63 {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}-{:08x}", name[..54].trim_end_matches(['-', '.']), hash as u32)
}

/// The selector of a workload's own pods: its `spec.selector` where it has one, else its pod
/// template labels.
fn pod_selector(w: &Workload<'_>) -> Value {
    let sel = w.object.value.pointer("/spec/selector");
    match (w.kind(), sel) {
        ("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet", Some(sel)) if sel.is_object() => sel.clone(),
        _ => json!({"matchLabels": w.pod_labels()}),
    }
}

fn namespaces_selector(names: &[String]) -> Value {
    if let [one] = names {
        return json!({"matchLabels": {"kubernetes.io/metadata.name": one}});
    }
    json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": names}]})
}

/// The Services of an inventory with their selectors, read once. A Service without a selector
/// selects nothing (as in [`discover::service_selects`]).
struct ServiceIndex<'a> {
    services: Vec<(&'a meshmove_model::inventory::Object, BTreeMap<String, String>)>,
}

impl<'a> ServiceIndex<'a> {
    fn new(inventory: &'a Inventory) -> Self {
        let services = inventory
            .of(&kinds::SERVICE)
            .map(|s| (s, string_map(s.value.pointer("/spec/selector"))))
            .filter(|(_, selector)| !selector.is_empty())
            .collect();
        ServiceIndex { services }
    }

    /// The Services in the workload's namespace whose selector matches its pod labels.
    fn selecting(&self, w: &Workload<'_>) -> Vec<&'a meshmove_model::inventory::Object> {
        let labels = w.pod_labels();
        self.services
            .iter()
            .filter(|(s, selector)| s.namespace == w.object.namespace && selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|(s, _)| *s)
            .collect()
    }
}

/// Target ports of a Service (the pod ports a NetworkPolicy must name), TCP only.
fn target_ports(service: &meshmove_model::inventory::Object) -> Vec<Port> {
    service
        .value
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("protocol").and_then(Value::as_str).is_none_or(|proto| proto == "TCP"))
        .filter_map(|p| match p.get("targetPort").or_else(|| p.get("port"))? {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).map(Port::Number),
            Value::String(s) => Some(s.parse::<u16>().map_or_else(|_| Port::Named(s.clone()), Port::Number)),
            _ => None,
        })
        .collect()
}

/// Services reached from outside: Ingress backends, VirtualService and HTTPRoute destinations.
fn exposed_services(inventory: &Inventory) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for ing in inventory.of(&kinds::INGRESS) {
        let ns = ing.namespace.clone().unwrap_or_default();
        let mut backends: Vec<&Value> = ing.value.pointer("/spec/defaultBackend").into_iter().collect();
        for rule in ing.value.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten() {
            backends.extend(rule.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten().filter_map(|p| p.get("backend")));
        }
        for b in backends {
            if let Some(name) = b.pointer("/service/name").and_then(Value::as_str) {
                out.insert((ns.clone(), name.to_string()));
            }
        }
    }
    for vs in inventory.of(&kinds::VIRTUAL_SERVICE) {
        let ns = vs.namespace.clone().unwrap_or_default();
        for section in ["http", "tcp", "tls"] {
            for route in vs.value.pointer(&format!("/spec/{section}")).and_then(Value::as_array).into_iter().flatten() {
                for dest in route.get("route").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(host) = dest.pointer("/destination/host").and_then(Value::as_str) {
                        let mut parts = host.split('.');
                        let svc = parts.next().unwrap_or_default().to_string();
                        let svc_ns = parts.next().filter(|p| *p != "svc").map_or_else(|| ns.clone(), str::to_string);
                        out.insert((svc_ns, svc));
                    }
                }
            }
        }
    }
    for route in inventory.of(&kinds::HTTP_ROUTE) {
        let ns = route.namespace.clone().unwrap_or_default();
        for rule in route.value.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten() {
            for b in rule.get("backendRefs").and_then(Value::as_array).into_iter().flatten() {
                if b.get("kind").and_then(Value::as_str).is_none_or(|k| k == "Service")
                    && let Some(name) = b.get("name").and_then(Value::as_str)
                {
                    let bns = b.get("namespace").and_then(Value::as_str).map_or_else(|| ns.clone(), str::to_string);
                    out.insert((bns, name.to_string()));
                }
            }
        }
    }
    out
}

/// The release name the stream belongs to: the most common `app.kubernetes.io/instance` label
/// (then Helm's older `release` label) of its workloads.
pub fn infer_release(inventory: &Inventory) -> Option<String> {
    let ws = workloads(inventory);
    most_common_first(ws.iter().filter_map(|w| release_label(w.object))).into_iter().next().map(|(name, _)| name)
}

/// The release an object says it belongs to: its `app.kubernetes.io/instance` label, else Helm's
/// older `release` label.
pub fn release_label(object: &meshmove_model::inventory::Object) -> Option<&str> {
    let labels = object.value.get("metadata")?.get("labels")?;
    labels.get(RELEASE_LABEL).and_then(Value::as_str).or_else(|| labels.get("release")?.as_str())
}

/// Distinct names with their counts, the most common first, ties by name.
pub fn most_common_first<'a>(names: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().map(|(name, n)| (name.to_string(), n)).collect();
    // Stable: equal counts keep the map's (name) order.
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_and_not_doubled() {
        assert_eq!(policy_name("shop", "api"), "shop-api-ingress");
        assert_eq!(policy_name("shop", "shop-api"), "shop-api-ingress");
        let long = policy_name("release", &"x".repeat(80));
        assert!(long.len() <= 63, "{long}");
        assert_eq!(long, policy_name("release", &"x".repeat(80)));
        assert_ne!(long, policy_name("release", &"x".repeat(81)));
    }
}
