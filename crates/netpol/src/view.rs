//! The reachability engine's view of an inventory: pods, namespaces and NetworkPolicies as a
//! [`ClusterModel`].
//!
//! The same inventory can come from a cluster or from rendered charts, and charts have no Pods.
//! So every top-level workload is represented by its live pods when the inventory has some
//! (running or pending; finished pods accept no connection), and otherwise by one pod built from
//! its pod template: a Deployment scaled to zero, a CronJob between runs and a chart not yet
//! installed still describe pods that will exist, and policies must be judged against them.
//! CloudNativePG clusters get a representative instance pod the same way when their pods are
//! absent (charts hold the `Cluster`, the operator makes the pods).
//!
//! Pod IPs come from live pods only. Objects are read from their JSON directly rather than
//! through typed structs: the model of a 10,000-pod cluster is built in milliseconds.
//!
//! With [`ModelOptions::probes`], the model also holds *probe pods*: one unlabelled pod in a
//! namespace that does not exist ([`NEW_NAMESPACE`]), standing for "a pod in any other
//! namespace, including one created tomorrow", and one in every namespace that policies name (or
//! whose labels they select) but whose pods the inventory lacks (a load limited to one
//! namespace, a chart). They let `audit` tell whether a database is open to other namespaces even
//! when those namespaces were not loaded. `reach` and `explain` never include them. When some pod
//! of the model is captured by Istio ambient, each probe namespace also gets an ambient probe
//! pod ([`AMBIENT_PROBE_POD`], labelled `istio.io/dataplane-mode=ambient`, which enrolls a pod
//! whatever its namespace says): a pod of another namespace may be in the mesh too and then
//! reach a captured pod through HBONE (see [`crate::hbone`]).
//!
//! Istio ambient capture ([`PodInfo::ambient`]) is decided with Istio's rules
//! ([`meshmove_istio`]), from the pod's and its namespace's labels (a namespace the inventory
//! lacks has none): a live pod is captured by the CNI node agent's enablement rule
//! ([`meshmove_istio::ambient_captured`]; a pod that carries a sidecar never is); a pod template
//! (or a CloudNativePG instance to be) by the data plane it will join when created
//! ([`meshmove_istio::dataplane`], with the injectors its labels select assumed present,
//! [`meshmove_istio::Served::assumed`]): a sidecar wins over ambient.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_model::selector::LabelSelector;
use serde_json::Value;

use meshmove_model::cnpg;
use meshmove_model::inventory::{Inventory, Kind, Object, kinds};
use meshmove_model::pod::PodFacts;
use crate::{ClusterModel, ContainerPort, NAMESPACE_NAME_LABEL, NamespaceInfo, PodInfo, Protocol, WorkloadKind, WorkloadRef};
use meshmove_model::workload::{Workload, owner, template_pointer, workloads};

/// The network-policy-api kinds the engine reads besides NetworkPolicy (cluster-scoped CRDs; a
/// cluster without them has none).
pub static ADMIN_POLICY_KINDS: [&Kind; 2] = [&kinds::ADMIN_NETWORK_POLICY, &kinds::BASELINE_ADMIN_NETWORK_POLICY];

/// The Istio kinds the engine reads (namespaced CRDs; a cluster without Istio has none):
/// AuthorizationPolicy and the PeerAuthentications that decide whether a source has a principal.
pub static ISTIO_POLICY_KINDS: [&Kind; 2] = [&kinds::AUTHORIZATION_POLICY, &kinds::PEER_AUTHENTICATION];

/// The namespace of the probe pod that stands for any namespace the inventory does not show. Not a
/// valid namespace name, so it cannot collide with a real one.
pub const NEW_NAMESPACE: &str = "(any other namespace)";

/// Name of every probe pod.
pub const PROBE_POD: &str = "(any pod)";

/// Name of the probe pods captured by Istio ambient (see the module docs).
pub const AMBIENT_PROBE_POD: &str = "(any ambient pod)";

/// What to put in the model.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelOptions {
    /// Add probe pods (see the module docs).
    pub probes: bool,
}

/// A NetworkPolicy that could not be read into the engine's types, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadablePolicy {
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// The engine's input, plus what could not go in.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub cluster: ClusterModel,
    /// Pods standing for workloads by their template (no live pod was in the inventory).
    pub template_pods: usize,
    /// Namespaces holding a probe pod (see the module docs).
    pub probe_namespaces: Vec<String>,
    /// Policies whose shape does not fit `networking.k8s.io/v1` (a string where a list belongs).
    pub unreadable_policies: Vec<UnreadablePolicy>,
    /// Container ports left out, `(pod, problem)` (a protocol the API does not accept).
    pub dropped_ports: Vec<(String, String)>,
}

impl Model {
    /// Whether a workload reference is a probe pod's.
    pub fn is_probe(w: &WorkloadRef) -> bool {
        w.kind == WorkloadKind::Pod && (w.name == PROBE_POD || w.name == AMBIENT_PROBE_POD)
    }
}

/// The engine workload of an inventory object (a workload kind or a CloudNativePG `Cluster`).
pub fn workload_ref(o: &Object) -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::parse(&o.kind), o.namespace.as_deref().unwrap_or("default"), &o.name)
}

fn string_labels(v: Option<&Value>) -> BTreeMap<String, String> {
    meshmove_model::workload::string_map(v)
}

/// Finished pods (phase Succeeded or Failed) accept and open no connection.
fn is_finished(pod: &PodFacts) -> bool {
    matches!(pod.phase(), Some("Succeeded" | "Failed"))
}

/// The container ports of a pod or template ([`PodFacts::ports`]: main containers and native
/// sidecars); those that are not ports are left out and named in `dropped`.
fn spec_ports(pod: &PodFacts, what: &str, dropped: &mut Vec<(String, String)>) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    for p in pod.ports() {
        let Some(port) = p.container_port.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|&n| n != 0) else {
            dropped.push((what.to_string(), format!("invalid containerPort {}", p.container_port)));
            continue;
        };
        let protocol = match p.protocol.as_deref() {
            None => Protocol::Tcp,
            Some(s) => match s.parse() {
                Ok(proto) => proto,
                Err(e) => {
                    dropped.push((what.to_string(), format!("container port {port}: {e}")));
                    continue;
                }
            },
        };
        out.push(ContainerPort::new(p.name.as_deref(), port, protocol));
    }
    out
}

/// The workload a live pod is grouped under: its top-level owner in the inventory, else what its
/// controller reference says (a ReplicaSet named `<deployment>-<pod-template-hash>` is reported
/// as that Deployment), else the pod itself (`None`).
fn live_owner(index: &OwnerIndex<'_>, pod: &Object, labels: &BTreeMap<String, String>) -> Option<WorkloadRef> {
    if let Some(top) = index.top_owner(pod) {
        return Some(workload_ref(top));
    }
    let (kind, name) = owner(pod)?;
    let ns = pod.namespace.as_deref().unwrap_or("default");
    if kind == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deployment) = name.strip_suffix(hash.as_str()).and_then(|s| s.strip_suffix('-'))
        && !deployment.is_empty()
    {
        return Some(WorkloadRef::new(WorkloadKind::Deployment, ns, deployment));
    }
    Some(WorkloadRef::new(WorkloadKind::parse(kind), ns, name))
}

/// Workload objects by (kind, namespace, name), to follow owner references without scanning.
struct OwnerIndex<'a>(HashMap<(&'a str, &'a str, &'a str), &'a Object>);

impl<'a> OwnerIndex<'a> {
    fn new(inventory: &'a Inventory) -> Self {
        let objects = meshmove_model::workload::WORKLOAD_KINDS.iter().filter(|k| k.kind != "Pod").flat_map(|k| inventory.of(k));
        OwnerIndex(objects.map(|o| ((o.kind.as_str(), o.namespace.as_deref().unwrap_or_default(), o.name.as_str()), o)).collect())
    }

    /// The top-level workload of the inventory a pod belongs to (Pod -> ReplicaSet -> Deployment,
    /// Pod -> Job -> CronJob), as [`meshmove_model::workload::pod_owner`] finds it.
    fn top_owner(&self, pod: &'a Object) -> Option<&'a Object> {
        let ns = pod.namespace.as_deref().unwrap_or_default();
        let (mut kind, mut name) = owner(pod)?;
        let mut found = None;
        for _ in 0..3 {
            let Some(&o) = self.0.get(&(kind, ns, name)) else { break };
            found = Some(o);
            match owner(o) {
                Some((k, n)) if template_pointer(k).is_some() => (kind, name) = (k, n),
                _ => break,
            }
        }
        found
    }
}

/// Namespace labels by name, from the inventory's Namespace objects (the first of a name).
type NamespaceLabels = HashMap<String, BTreeMap<String, String>>;

/// The pod as Istio's rules read it.
fn istio_pod(namespace: &str, ns_labels: &NamespaceLabels, labels: &BTreeMap<String, String>, annotations: BTreeMap<String, String>, host_network: bool) -> meshmove_istio::Pod {
    meshmove_istio::Pod {
        namespace: namespace.to_string(),
        namespace_labels: ns_labels.get(namespace).cloned().unwrap_or_default(),
        labels: labels.clone(),
        annotations,
        host_network,
    }
}

/// The data plane a pod created now from this template (or by an operator with these labels)
/// joins: `(ambient, sidecar)`, a sidecar winning (see the module docs).
fn template_dataplane(pod: &meshmove_istio::Pod) -> (bool, bool) {
    match meshmove_istio::dataplane(pod, &meshmove_istio::Served::assumed(pod)) {
        meshmove_istio::Dataplane::Ambient => (true, false),
        meshmove_istio::Dataplane::Sidecar { .. } => (false, true),
        meshmove_istio::Dataplane::None => (false, false),
    }
}

fn pod_from_live(index: &OwnerIndex<'_>, ns_labels: &NamespaceLabels, pod: &Object, facts: &PodFacts, dropped: &mut Vec<(String, String)>) -> PodInfo {
    let ns = pod.namespace.clone().unwrap_or_else(|| "default".into());
    let labels = facts.label_map();
    let annotations = facts.annotation_map();
    // A running pod has a sidecar when the injector marked it so.
    let sidecar = annotations.contains_key(meshmove_istio::injection::STATUS_ANNOTATION);
    let ambient = meshmove_istio::ambient_captured(&istio_pod(&ns, ns_labels, &labels, annotations, facts.host_network()));
    let what = format!("Pod {ns}/{}", pod.name);
    PodInfo {
        owner: live_owner(index, pod, &labels),
        namespace: ns,
        name: pod.name.clone(),
        labels,
        ports: spec_ports(facts, &what, dropped),
        ips: facts.ips().to_vec(),
        host_network: facts.host_network(),
        ambient,
        sidecar,
        service_account: facts.service_account().map(str::to_string),
    }
}

fn pod_from_template(w: &Workload<'_>, ns_labels: &NamespaceLabels, dropped: &mut Vec<(String, String)>) -> PodInfo {
    let owner = workload_ref(w.object);
    let what = format!("{owner} pod template");
    let facts = PodFacts::from_value(w.template);
    let labels = facts.label_map();
    let host = facts.host_network();
    let (ambient, sidecar) = template_dataplane(&istio_pod(&owner.namespace, ns_labels, &labels, facts.annotation_map(), host));
    PodInfo {
        namespace: owner.namespace.clone(),
        name: owner.name.clone(),
        labels,
        ports: spec_ports(&facts, &what, dropped),
        ips: Vec::new(),
        host_network: host,
        owner: Some(owner),
        ambient,
        sidecar,
        service_account: facts.service_account().map(str::to_string),
    }
}

/// A CloudNativePG instance pod as the operator makes it: the labels its policies select on and
/// the ports it serves (PostgreSQL, the instance manager's status API, metrics).
fn cnpg_instance(cluster: &Object, ns_labels: &NamespaceLabels) -> PodInfo {
    let owner = workload_ref(cluster);
    let pod = PodInfo::new(owner.namespace.clone(), format!("{}-1", cluster.name))
        .with_labels([
            ("cnpg.io/cluster", cluster.name.as_str()),
            ("cnpg.io/podRole", "instance"),
            ("cnpg.io/instanceRole", "primary"),
            ("role", "primary"),
        ])
        .with_port(Some("postgresql"), cnpg::POSTGRES_PORT, Protocol::Tcp)
        .with_port(Some("status"), cnpg::STATUS_PORT, Protocol::Tcp)
        .with_port(Some("metrics"), cnpg::METRICS_PORT, Protocol::Tcp)
        .with_owner(owner);
    let (ambient, sidecar) = template_dataplane(&istio_pod(&pod.namespace, ns_labels, &pod.labels, BTreeMap::new(), false));
    // The operator's instances run as a service account named after the cluster.
    pod.with_ambient(ambient).with_sidecar(sidecar).with_service_account(cluster.name.clone())
}

/// A NetworkPolicy in the engine's types, with the inventory's namespace (manifests often leave
/// `metadata.namespace` out; the loader knows which namespace they go to). The error is the
/// decoder's, naming the field whose value does not fit the API's type.
pub fn typed_policy(o: &Object) -> Result<NetworkPolicy, serde_json::Error> {
    let mut np: NetworkPolicy = serde_json::from_value(o.value.clone())?;
    np.metadata.namespace = Some(o.namespace.clone().unwrap_or_else(|| "default".into()));
    Ok(np)
}

/// Build the engine's model of `inventory`.
pub fn build(inventory: &Inventory, options: ModelOptions) -> Model {
    let mut model = Model::default();
    let mut ns_labels: NamespaceLabels = HashMap::new();
    for n in inventory.of(&kinds::NAMESPACE) {
        ns_labels.entry(n.name.clone()).or_insert_with(|| string_labels(n.value.pointer("/metadata/labels")));
    }

    // Live pods, grouped by the workload they belong to.
    let index = OwnerIndex::new(inventory);
    let mut live: Vec<PodInfo> = Vec::new();
    for pod in inventory.of(&kinds::POD) {
        let facts = PodFacts::of(pod);
        if !is_finished(&facts) {
            live.push(pod_from_live(&index, &ns_labels, pod, &facts, &mut model.dropped_ports));
        }
    }
    let with_pods: BTreeSet<WorkloadRef> = live.iter().map(PodInfo::workload).collect();
    let mut pods = live;
    for w in workloads(inventory).iter().filter(|w| w.kind() != "Pod") {
        if !with_pods.contains(&workload_ref(w.object)) {
            pods.push(pod_from_template(w, &ns_labels, &mut model.dropped_ports));
            model.template_pods += 1;
        }
    }
    for cluster in inventory.of(&kinds::CNPG_CLUSTER) {
        if !with_pods.contains(&workload_ref(cluster)) {
            pods.push(cnpg_instance(cluster, &ns_labels));
            model.template_pods += 1;
        }
    }
    // A pod listed twice (a bare Pod and a template of the same name) would make the engine
    // refuse the model; the first one wins.
    let mut seen = BTreeSet::new();
    pods.retain(|p| seen.insert((p.namespace.clone(), p.name.clone())));

    let mut namespaces: Vec<NamespaceInfo> = inventory
        .of(&kinds::NAMESPACE)
        .map(|n| NamespaceInfo::new(n.name.clone(), string_labels(n.value.pointer("/metadata/labels"))))
        .collect();
    let mut seen = BTreeSet::new();
    namespaces.retain(|n| seen.insert(n.name.clone()));

    let mut policies = Vec::new();
    for o in inventory.of(&kinds::NETWORK_POLICY) {
        match typed_policy(o) {
            Ok(np) => policies.push(np),
            Err(e) => model.unreadable_policies.push(UnreadablePolicy {
                namespace: o.namespace.clone().unwrap_or_else(|| "default".into()),
                name: o.name.clone(),
                message: e.to_string(),
            }),
        }
    }
    // One object per name (also for namespaces and pods above): a second policy of the same name
    // (two files defining it) would make the engine refuse the whole model, and only one can
    // exist in a cluster.
    let mut seen = BTreeSet::new();
    policies.retain(|p| seen.insert((p.metadata.namespace.clone(), p.metadata.name.clone())));

    if options.probes {
        add_probes(&mut namespaces, &mut pods, &policies, &mut model.probe_namespaces);
    }
    // The admin policies go to the engine as read (it validates them and names what it cannot
    // model); one object per name, as above.
    let mut admin = [Vec::new(), Vec::new()];
    for (slot, kind) in admin.iter_mut().zip([&kinds::ADMIN_NETWORK_POLICY, &kinds::BASELINE_ADMIN_NETWORK_POLICY]) {
        let mut seen = BTreeSet::new();
        slot.extend(inventory.of(kind).filter(|o| seen.insert(o.name.clone())).map(|o| o.value.clone()));
    }
    let [admin_network_policies, baseline_admin_network_policies] = admin;
    // Istio's policies, with the inventory's namespace (one object per name).
    let mut istio = [Vec::new(), Vec::new()];
    for (slot, kind) in istio.iter_mut().zip(ISTIO_POLICY_KINDS) {
        let mut seen = BTreeSet::new();
        for o in inventory.of(kind) {
            let ns = o.namespace.clone().unwrap_or_else(|| "default".into());
            if seen.insert((ns.clone(), o.name.clone())) {
                let mut v = o.value.clone();
                if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("namespace".into(), Value::String(ns));
                }
                slot.push(v);
            }
        }
    }
    let [authorization_policies, peer_authentications] = istio;
    model.cluster = ClusterModel {
        namespaces,
        pods,
        policies,
        admin_network_policies,
        baseline_admin_network_policies,
        authorization_policies,
        peer_authentications,
        istio_root_namespace: None,
    };
    model
}

/// Probe pods: see the module docs.
fn add_probes(namespaces: &mut Vec<NamespaceInfo>, pods: &mut Vec<PodInfo>, policies: &[NetworkPolicy], probes: &mut Vec<String>) {
    let populated: BTreeSet<&str> = pods.iter().map(|p| p.namespace.as_str()).collect();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut selectors: Vec<LabelSelector> = Vec::new();
    for np in policies {
        let Some(spec) = &np.spec else { continue };
        let peers = spec
            .ingress
            .iter()
            .flatten()
            .flat_map(|r| r.from.iter().flatten())
            .chain(spec.egress.iter().flatten().flat_map(|r| r.to.iter().flatten()));
        for peer in peers {
            let Some(sel) = &peer.namespace_selector else { continue };
            if let Some(n) = sel.match_labels.as_ref().and_then(|m| m.get(NAMESPACE_NAME_LABEL)) {
                named.insert(n.clone());
            }
            for e in sel.match_expressions.iter().flatten() {
                if e.key == NAMESPACE_NAME_LABEL && e.operator == "In" {
                    named.extend(e.values.iter().flatten().cloned());
                }
            }
            if let Ok(s) = LabelSelector::from_typed(sel)
                && !s.is_everything()
            {
                selectors.push(s);
            }
        }
    }
    let known: BTreeSet<String> = namespaces.iter().map(|n| n.name.clone()).collect();
    let mut chosen: BTreeSet<String> = named.into_iter().filter(|n| !populated.contains(n.as_str())).collect();
    for ns in namespaces.iter().filter(|n| !populated.contains(n.name.as_str())) {
        if selectors.iter().any(|s| s.matches(&ns.labels)) {
            chosen.insert(ns.name.clone());
        }
    }
    chosen.insert(NEW_NAMESPACE.to_string());
    let ambient = pods.iter().any(|p| p.ambient);
    for ns in chosen {
        if !known.contains(&ns) {
            namespaces.push(NamespaceInfo::new(ns.clone(), BTreeMap::new()));
        }
        pods.push(PodInfo::new(ns.clone(), PROBE_POD));
        if ambient {
            let label = (meshmove_istio::injection::DATAPLANE_MODE_LABEL, "ambient");
            pods.push(PodInfo::new(ns.clone(), AMBIENT_PROBE_POD).with_labels([label]).with_ambient(true));
        }
        probes.push(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use meshmove_model::inventory::load_str;

    fn inventory(yaml: &str) -> Inventory {
        let objects = load_str(yaml, None, "shop").unwrap();
        Inventory::from_files(objects, vec!["test".into()], "shop".into())
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers:\n      - name: c\n        ports: [{containerPort: 8080, name: http}, {containerPort: 53, protocol: udp}]\n";

    #[test]
    fn templates_stand_for_workloads_without_live_pods() {
        let inv = inventory(DEPLOYMENT);
        let m = build(&inv, ModelOptions::default());
        assert_eq!(m.cluster.pods.len(), 1);
        let p = &m.cluster.pods[0];
        assert_eq!((p.namespace.as_str(), p.name.as_str()), ("shop", "api"));
        assert_eq!(p.workload(), WorkloadRef::new(WorkloadKind::Deployment, "shop", "api"));
        assert_eq!(p.ports, vec![ContainerPort::new(Some("http"), 8080, Protocol::Tcp)]);
        assert_eq!(m.dropped_ports.len(), 1, "lower-case protocol is not accepted: {:?}", m.dropped_ports);
        assert_eq!(m.template_pods, 1);
        assert!(m.probe_namespaces.is_empty());
    }

    #[test]
    fn live_pods_replace_the_template_and_finished_pods_do_not_count() {
        let pods = "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: api-7d9-x\n  labels: {app: api, pod-template-hash: 7d9}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: api-7d9, uid: u, controller: true}]\nspec: {containers: [{name: c}]}\nstatus: {phase: Running, podIP: 10.1.0.4}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec: {template: {metadata: {labels: {job: once}}, spec: {containers: [{name: c}]}}}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: once-abc\n  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: once, uid: u, controller: true}]\nspec: {containers: [{name: c}]}\nstatus: {phase: Succeeded}\n";
        let inv = inventory(&format!("{DEPLOYMENT}{pods}"));
        let m = build(&inv, ModelOptions::default());
        let names: Vec<(String, WorkloadRef)> = m.cluster.pods.iter().map(|p| (p.name.clone(), p.workload())).collect();
        assert_eq!(
            names,
            vec![
                ("api-7d9-x".to_string(), WorkloadRef::new(WorkloadKind::Deployment, "shop", "api")),
                ("once".to_string(), WorkloadRef::new(WorkloadKind::Job, "shop", "once")),
            ]
        );
        assert_eq!(m.cluster.pods[0].ips, vec!["10.1.0.4".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn probes_go_to_a_new_namespace_and_to_unloaded_namespaces_policies_name() {
        let np = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n    - namespaceSelector: {matchLabels: {team: data}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: analytics, labels: {team: data}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n";
        let inv = inventory(&format!("{DEPLOYMENT}{np}"));
        let m = build(&inv, ModelOptions { probes: true });
        assert_eq!(m.probe_namespaces, vec![NEW_NAMESPACE.to_string(), "analytics".into(), "monitoring".into()]);
        let probes: Vec<&str> = m.cluster.pods.iter().filter(|p| Model::is_probe(&p.workload())).map(|p| p.namespace.as_str()).collect();
        assert_eq!(probes, m.probe_namespaces);
        assert_eq!(m.cluster.policies[0].metadata.namespace.as_deref(), Some("shop"), "the loader's namespace is kept");
    }

    /// Istio ambient capture, decided by Istio's rules for each kind of pod.
    #[test]
    fn ambient_capture_follows_istio() {
        let yaml = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: both, labels: {istio.io/dataplane-mode: ambient, istio-injection: enabled}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: both}\nspec:\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c}]}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: batch}\nspec:\n  selector: {matchLabels: {app: batch}}\n  template: {metadata: {labels: {app: batch, istio.io/dataplane-mode: none}}, spec: {containers: [{name: c}]}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: old, annotations: {sidecar.istio.io/status: '{\"revision\":\"default\"}'}}\nspec: {containers: [{name: c}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: debug, namespace: other, labels: {istio.io/dataplane-mode: ambient}}\nspec: {containers: [{name: c}]}\n---\napiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: orders-db}\nspec: {instances: 1}\n";
        let inv = inventory(&format!("{DEPLOYMENT}{yaml}"));
        let m = build(&inv, ModelOptions { probes: true });
        let captured = |ns: &str, name: &str| m.cluster.pods.iter().find(|p| p.namespace == ns && p.name == name).unwrap_or_else(|| panic!("{ns}/{name}")).ambient;
        assert!(captured("shop", "api"), "a template in an ambient namespace");
        assert!(captured("shop", "orders-db-1"), "the CloudNativePG instance of an ambient namespace");
        assert!(!captured("shop", "batch"), "opted out with istio.io/dataplane-mode=none");
        assert!(!captured("shop", "old"), "a live pod that carries a sidecar");
        assert!(!captured("both", "web"), "the injector wins over ambient");
        assert!(captured("other", "debug"), "a pod label enrolls it wherever it is");
        // Probe pods: one of each kind per probe namespace, now that some pod is captured.
        let probes: Vec<(&str, &str, bool)> = m.cluster.pods.iter().filter(|p| Model::is_probe(&p.workload())).map(|p| (p.namespace.as_str(), p.name.as_str(), p.ambient)).collect();
        assert_eq!(probes, vec![(NEW_NAMESPACE, PROBE_POD, false), (NEW_NAMESPACE, AMBIENT_PROBE_POD, true)]);
        let plain = build(&inventory(DEPLOYMENT), ModelOptions { probes: true });
        assert!(plain.cluster.pods.iter().all(|p| !p.ambient && p.name != AMBIENT_PROBE_POD), "without ambient, no ambient probe");
    }

    #[test]
    fn cnpg_clusters_without_pods_get_an_instance_pod() {
        let inv = inventory("apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: orders-db}\nspec: {instances: 3}\n");
        let m = build(&inv, ModelOptions::default());
        let p = &m.cluster.pods[0];
        assert_eq!(p.labels.get("cnpg.io/cluster").map(String::as_str), Some("orders-db"));
        assert_eq!(p.workload(), WorkloadRef::new(WorkloadKind::Other("Cluster".into()), "shop", "orders-db"));
        assert_eq!(p.ports.iter().map(|p| p.port).collect::<Vec<_>>(), vec![5432, 8000, 9187]);
    }
}
