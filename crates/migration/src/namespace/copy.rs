//! The copy transform: the objects of the legacy namespace as they should exist in the mesh
//! namespace. Pure: objects in, objects out, with a record of every adjustment.
//!
//! What is copied: Deployments, StatefulSets and DaemonSets, Services, ServiceAccounts, Roles
//! and RoleBindings (subjects that are ServiceAccounts of the namespace bind the copies),
//! HorizontalPodAutoscalers (their target keeps its name) and ConfigMaps; Secrets only when asked (their values are carried over but never appear in notes
//! or errors). What is left behind, with the reason: Jobs and CronJobs (they would run twice),
//! the `default` ServiceAccount and the ConfigMaps Kubernetes and Istio publish into every
//! namespace (the new namespace gets its own), service-account token Secrets and Helm release
//! records.
//!
//! Every copy loses what the API server set (uid, resourceVersion, generation, timestamps,
//! managedFields, owner references, status, allocated cluster IPs and node ports) and the
//! annotations that tie it to its old owner (`last-applied-configuration`, Helm's release
//! annotations). NodePort and LoadBalancer Services become ClusterIP: the copy is reached through
//! the mesh, and a second load balancer for the same app is never what anyone wanted.
//!
//! **Stateful backends stay single.** A workload that keeps data (volume claims, a known data
//! store image or port, a CloudNativePG `Cluster`: [`meshmove_isolation::datastore::stateful_backend`]) is not
//! copied: a copy would start on a new, empty volume, and a weighted split between two stores
//! splits the data. Neither are the Services in front of it, nor any Service that fronts no copied
//! workload (no selector: endpoints kept by hand or by an operator). The copies reach these shared
//! backends in the legacy namespace. `--copy-stateful NAME` copies one anyway (its copy starts
//! empty); its Services are copied but never split by weight.
//!
//! **Only DNS names are rewritten**, where they are data the pods read: environment values, command
//! and arguments, ConfigMap (and copied Secret) values, and pod-affinity namespace lists. Names of
//! copied Services move to `<ns>-mesh`: `<svc>.<ns>.svc[.cluster.local]` (also a StatefulSet pod's
//! `<pod>.<svc>.<ns>.svc`), and the short `<svc>.<ns>` when it is not part of a longer domain.
//! Names of shared backends already qualified with `<ns>` keep pointing there; a bare `<svc>` of one,
//! which from `<ns>-mesh` would resolve to nothing, becomes `<svc>.<ns>.svc.cluster.local` where it
//! is a host: a URL's host (`postgres://u:p@db:5432/app`), `host:port` with one of the Service's
//! ports, the value of a host-like key (`DB_HOST=db`, `host=db` in a DSN, `host: db` in a config
//! file). A value that merely equals the namespace name (`POSTGRES_DB=shop`), a database name in a
//! DSN path and anything else is left alone. Kubernetes' DNS names for Services:
//! <https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/>.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{COPIED_FROM_LABEL, DataPlane, MANAGED_BY, PodSecurity, Sides};
use meshmove_isolation::datastore;
use meshmove_model::workload::config_refs;

/// What to copy and how to label the mesh namespace.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    pub data_plane: DataPlane,
    pub pod_security: PodSecurity,
    /// Copy Secrets too.
    pub secrets: bool,
    /// Stateful backends to copy anyway (`--copy-stateful`): workload names, or `Kind/name`.
    pub copy_stateful: Vec<String>,
    /// The `istio` label of the ingress gateway pods the Gateways for the legacy Ingresses and
    /// HTTPRoutes select (`None`: `ingressgateway`).
    pub gateway_selector: Option<String>,
    /// The waypoint of an ambient mesh namespace (ignored in sidecar mode).
    pub waypoint: super::WaypointChoice,
}

/// A stateful backend, or a Service that fronts no copied workload, that stays in the legacy
/// namespace (or, in [`CopySet::stateful_copies`], a stateful backend copied on request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SharedBackend {
    /// `Kind/name`.
    pub object: String,
    /// The Services in front of it: left in the legacy namespace and never split by weight (for a
    /// stateful copy: copied, never split).
    pub services: Vec<String>,
    /// Why it is stateful (or why the Service is not copied).
    pub reason: String,
}

/// An object of the legacy namespace that was not copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub object: String,
    pub reason: String,
}

/// One adjustment made to a copy (never carries a Secret value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjustment {
    pub object: String,
    pub field: String,
    pub change: String,
}

/// A pod spec the enforced Pod Security level would reject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub object: String,
    pub problem: String,
}

/// The result of [`copy_namespace`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopySet {
    /// The mesh Namespace object.
    pub namespace: Value,
    /// The copies, in apply order: ServiceAccounts, Roles, RoleBindings, ConfigMaps, Secrets,
    /// Services, workloads, HorizontalPodAutoscalers.
    pub objects: Vec<Value>,
    pub skipped: Vec<Skipped>,
    pub adjustments: Vec<Adjustment>,
    pub violations: Vec<Violation>,
    /// Secrets the copies read (env, envFrom, volumes, image pull secrets) that are not copied:
    /// `Kind/name` of the workload and the Secret's name.
    pub uncopied_secrets: Vec<(String, String)>,
    /// Stateful backends and Services that stay in the legacy namespace.
    pub shared: Vec<SharedBackend>,
    /// Stateful backends copied on request (`--copy-stateful`): their copies start EMPTY.
    pub stateful_copies: Vec<SharedBackend>,
    /// Copied Services whose traffic is split by weight (copies of stateless workloads).
    pub routed_services: Vec<String>,
    /// `--copy-stateful` names that cannot be honoured, with the reason.
    pub refused: Vec<String>,
}

impl CopySet {
    /// Whether a copied workload (`Kind/name`) is a stateful backend copied on request.
    pub fn is_stateful_copy(&self, id: &str) -> bool {
        self.stateful_copies.iter().any(|s| s.object == id)
    }
}

/// Kinds the copy reads from the legacy namespace.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

fn order(kind: &str) -> usize {
    match kind {
        "ServiceAccount" => 0,
        "Role" => 1,
        "RoleBinding" => 2,
        "ConfigMap" => 3,
        "Secret" => 4,
        "Service" => 5,
        "HorizontalPodAutoscaler" => 7,
        _ => 6,
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// `Kind/name`.
pub fn object_name(v: &Value) -> String {
    format!("{}/{}", str_at(v, "/kind").unwrap_or("?"), str_at(v, "/metadata/name").unwrap_or("?"))
}

/// The mesh Namespace: injection (or ambient) and Pod Security labels, and where it came from.
pub fn mesh_namespace(sides: &Sides, opts: &CopyOptions) -> Value {
    let mut labels = Map::new();
    labels.insert("app.kubernetes.io/managed-by".into(), json!(MANAGED_BY));
    labels.insert(COPIED_FROM_LABEL.into(), json!(sides.legacy));
    match &opts.data_plane {
        DataPlane::Sidecar => {
            labels.insert("istio-injection".into(), json!("enabled"));
        }
        DataPlane::SidecarRevision { revision } => {
            labels.insert("istio.io/rev".into(), json!(revision));
        }
        DataPlane::Ambient => {
            // Pods of a namespace labelled so are captured by ztunnel
            // (https://istio.io/latest/docs/ambient/usage/add-workloads/), and its Services use
            // the waypoint `istio.io/use-waypoint` names, as `istioctl waypoint apply
            // --enroll-namespace` labels it (https://istio.io/latest/docs/ambient/usage/waypoint/).
            labels.insert(meshmove_istio::injection::DATAPLANE_MODE_LABEL.into(), json!("ambient"));
            for (key, value) in opts.waypoint.binding(sides) {
                labels.insert(key.into(), json!(value));
            }
        }
    }
    if let Some(level) = opts.pod_security.label_value() {
        for mode in ["enforce", "audit", "warn"] {
            labels.insert(format!("pod-security.kubernetes.io/{mode}"), json!(level));
            labels.insert(format!("pod-security.kubernetes.io/{mode}-version"), json!("latest"));
        }
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sides.mesh, "labels": labels}})
}

/// Whether `--copy-stateful` names this workload (`name` or `Kind/name`).
fn requested(opts: &CopyOptions, kind: &str, name: &str) -> Option<usize> {
    opts.copy_stateful.iter().position(|r| r == name || r.eq_ignore_ascii_case(&format!("{kind}/{name}")))
}

/// Which workloads stay (stateful backends), which are copied, and what happens to each Service.
struct Classes {
    /// Workloads left in the legacy namespace (`Kind/name`).
    kept: BTreeSet<String>,
    /// Copied Services (their names move to the mesh namespace).
    moved: BTreeSet<String>,
    /// Services left in the legacy namespace, with their ports.
    shared: BTreeMap<String, BTreeSet<u16>>,
}

fn classify(sides: &Sides, objects: &[Value], opts: &CopyOptions, set: &mut CopySet) -> Classes {
    let services: Vec<&Value> = objects.iter().filter(|o| str_at(o, "/kind") == Some("Service")).collect();
    let mut used = vec![false; opts.copy_stateful.len()];
    let mut kept = BTreeSet::new();
    // (labels, index into set.shared) of kept workloads; labels of copies (stateful or not).
    let mut kept_labels: Vec<(BTreeMap<String, String>, usize)> = Vec::new();
    let mut stateful_copy_labels: Vec<(BTreeMap<String, String>, usize)> = Vec::new();
    let mut copied_labels: Vec<BTreeMap<String, String>> = Vec::new();
    let mut clusters: Vec<(String, usize)> = Vec::new();
    for obj in objects {
        let kind = str_at(obj, "/kind").unwrap_or_default();
        let name = str_at(obj, "/metadata/name").unwrap_or_default();
        let cnpg = kind == "Cluster" && str_at(obj, "/apiVersion").is_some_and(|a| a.starts_with("postgresql.cnpg.io/"));
        if !WORKLOAD_KINDS.contains(&kind) && !cnpg {
            continue;
        }
        let id = object_name(obj);
        let labels = datastore::pod_labels(obj);
        let Some(st) = datastore::stateful_backend(obj, &services) else {
            if let Some(i) = requested(opts, kind, name) {
                used[i] = true;
            }
            copied_labels.push(labels);
            continue;
        };
        let reason = st.reasons.join("; ");
        match requested(opts, kind, name) {
            Some(i) if cnpg => {
                used[i] = true;
                set.refused.push(format!(
                    "--copy-stateful {}: CloudNativePG Cluster {name} is run by its operator, not copied as a workload; it stays in {} (seed a second cluster from a backup or as a replica cluster if you need one)",
                    opts.copy_stateful[i], sides.legacy
                ));
            }
            Some(i) => {
                used[i] = true;
                stateful_copy_labels.push((labels, set.stateful_copies.len()));
                set.stateful_copies.push(SharedBackend { object: id, services: Vec::new(), reason });
                continue;
            }
            None => {}
        }
        kept.insert(id.clone());
        if cnpg {
            clusters.push((name.to_string(), set.shared.len()));
        } else {
            kept_labels.push((labels, set.shared.len()));
        }
        set.shared.push(SharedBackend { object: id, services: Vec::new(), reason });
    }
    for (r, _) in opts.copy_stateful.iter().zip(&used).filter(|(_, used)| !**used) {
        let known: Vec<&str> = set.shared.iter().map(|s| s.object.as_str()).collect();
        set.refused.push(format!(
            "--copy-stateful {r}: no workload of that name in {} ({})",
            sides.legacy,
            if known.is_empty() { "it has no stateful backends".to_string() } else { format!("its stateful backends: {}", known.join(", ")) }
        ));
    }
    let mut moved = BTreeSet::new();
    let mut shared = BTreeMap::new();
    for svc in &services {
        let name = str_at(svc, "/metadata/name").unwrap_or_default().to_string();
        let ports: BTreeSet<u16> = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("port").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()))
            .collect();
        if str_at(svc, "/spec/type") == Some("ExternalName") {
            // A DNS alias: copying it is harmless and keeps short names working on the mesh side.
            moved.insert(name);
            continue;
        }
        // CloudNativePG's Services: owned by their Cluster, selecting its `cnpg.io/cluster` pods.
        let cluster = clusters.iter().find(|(c, _)| {
            str_at(svc, &format!("/spec/selector/{}", meshmove_model::cnpg::CLUSTER_LABEL.replace('/', "~1"))) == Some(c.as_str())
                || svc.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
                    refs.iter().any(|r| str_at(r, "/kind") == Some("Cluster") && str_at(r, "/name") == Some(c.as_str()))
                })
        });
        let owner = cluster.map(|(_, i)| *i).or_else(|| kept_labels.iter().find(|(l, _)| datastore::service_selects(svc, l)).map(|(_, i)| *i));
        if let Some(i) = owner {
            set.shared[i].services.push(name.clone());
            shared.insert(name, ports);
            continue;
        }
        if let Some((_, i)) = stateful_copy_labels.iter().find(|(l, _)| datastore::service_selects(svc, l)) {
            set.stateful_copies[*i].services.push(name.clone());
            moved.insert(name);
            continue;
        }
        if copied_labels.iter().any(|l| datastore::service_selects(svc, l)) {
            set.routed_services.push(name.clone());
            moved.insert(name);
            continue;
        }
        let reason = if svc.pointer("/spec/selector").and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
            "no selector: its endpoints are kept outside the Service (by hand or by an operator), and a copy would have none".to_string()
        } else {
            "selects no workload that is copied (pods of an operator or of an uncopied kind): a copy would have no endpoints".to_string()
        };
        set.shared.push(SharedBackend { object: format!("Service/{name}"), services: vec![name.clone()], reason });
        shared.insert(name, ports);
    }
    Classes { kept, moved, shared }
}

/// Shared backends the copies cannot reach, decided by the exact NetworkPolicy engine
/// ([`meshmove_netpol`]) on the legacy namespace, the mesh namespace as it will be labelled and
/// the copies as they will be applied: for every copied workload whose original reaches a
/// shared backend on some port, the copy must reach it on the same ports. One line per backend,
/// naming the copies refused, the policies that select the backend and what to add.
pub fn unreachable_backends(sides: &Sides, legacy: &[Value], set: &CopySet) -> Vec<String> {
    use meshmove_model::inventory::{Inventory, Object, Origin};
    use meshmove_netpol::view::{self, ModelOptions};
    use meshmove_netpol::{Direction, Engine, EngineOptions, Protocol, WorkloadKind, WorkloadRef};

    let object = |v: &Value, namespace: Option<&str>| -> Option<Object> {
        Some(Object {
            api_version: str_at(v, "/apiVersion")?.to_string(),
            kind: str_at(v, "/kind")?.to_string(),
            namespace: str_at(v, "/metadata/namespace").or(namespace).map(str::to_string),
            name: str_at(v, "/metadata/name")?.to_string(),
            value: v.clone(),
            origin: Origin::Cluster { context: String::new() },
            pod: None,
        })
    };
    if set.shared.is_empty() || !legacy.iter().any(|o| str_at(o, "/kind") == Some("NetworkPolicy")) {
        return Vec::new();
    }
    let mut objects: Vec<Object> = legacy.iter().filter_map(|v| object(v, Some(&sides.legacy))).collect();
    objects.extend(set.objects.iter().filter_map(|v| object(v, Some(&sides.mesh))));
    objects.extend(object(&set.namespace, None));
    let inventory = Inventory::from_files(objects, Vec::new(), sides.legacy.clone());
    let model = view::build(&inventory, ModelOptions { probes: false });
    let Ok((engine, _)) = Engine::build_lenient(&model.cluster, EngineOptions::default()) else { return Vec::new() };
    let first_pod = |kind: &str, ns: &str, name: &str| {
        let w = WorkloadRef::new(WorkloadKind::parse(kind), ns, name);
        engine.pods().find(|(_, p)| p.workload() == w).map(|(id, _)| id)
    };
    let copies: Vec<(&str, &str)> = set
        .objects
        .iter()
        .filter_map(|o| Some((str_at(o, "/kind")?, str_at(o, "/metadata/name")?)))
        .filter(|(kind, _)| WORKLOAD_KINDS.contains(kind))
        .collect();
    let mut out = Vec::new();
    for b in &set.shared {
        let Some((kind, name)) = b.object.split_once('/') else { continue };
        let Some(backend) = first_pod(kind, &sides.legacy, name) else { continue };
        let services = legacy.iter().filter(|o| str_at(o, "/kind") == Some("Service") && b.services.iter().any(|n| str_at(o, "/metadata/name") == Some(n)));
        let ports = backend_tcp_ports(&engine, backend, services);
        let mut refused: Vec<String> = Vec::new();
        for (kind, name) in &copies {
            let (Some(original), Some(copy)) = (first_pod(kind, &sides.legacy, name), first_pod(kind, &sides.mesh, name)) else { continue };
            let (before, after) = (engine.allowed(original, backend), engine.allowed(copy, backend));
            let lost: Vec<String> = ports
                .iter()
                .filter(|&&p| before.allows(Protocol::Tcp, p) && !after.allows(Protocol::Tcp, p))
                .map(|p| format!("TCP {p}"))
                .collect();
            if !lost.is_empty() {
                refused.push(format!("{kind}/{name} ({})", lost.join(", ")));
            }
        }
        if refused.is_empty() {
            continue;
        }
        let mut policies: Vec<String> = engine.selecting_policies(backend, Direction::Ingress).into_iter().map(|(_, n)| n).collect();
        policies.sort();
        out.push(format!(
            "NetworkPolicy {} in {legacy} admit{} {} but not {mesh}'s copies, which will be refused by {}: before shifting traffic, admit them (an ingress rule `from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {mesh}}}}}, podSelector: <the callers>}}]`); lost: {}",
            policies.join(", "),
            if policies.len() == 1 { "s" } else { "" },
            refused.iter().map(|r| r.split(" (").next().unwrap_or_default().to_string()).collect::<Vec<_>>().join(", "),
            b.object,
            refused.join("; "),
            legacy = sides.legacy,
            mesh = sides.mesh,
        ));
    }
    out
}

/// Copy the objects of the legacy namespace (any kinds may be passed; others are ignored).
pub fn copy_namespace(sides: &Sides, objects: &[Value], opts: &CopyOptions) -> CopySet {
    let mut set = CopySet { namespace: mesh_namespace(sides, opts), ..CopySet::default() };
    let classes = classify(sides, objects, opts, &mut set);
    let rewriter = Rewriter::new(sides, classes.moved, classes.shared.clone());
    for obj in objects {
        let kind = str_at(obj, "/kind").unwrap_or_default();
        let name = str_at(obj, "/metadata/name").unwrap_or_default();
        let id = object_name(obj);
        if classes.kept.contains(&id) || (kind == "Service" && classes.shared.contains_key(name)) {
            // Listed in `set.shared`.
            continue;
        }
        if kind == "HorizontalPodAutoscaler" {
            let target = format!("{}/{}", str_at(obj, "/spec/scaleTargetRef/kind").unwrap_or("?"), str_at(obj, "/spec/scaleTargetRef/name").unwrap_or("?"));
            if classes.kept.contains(&target) {
                set.skipped.push(Skipped { object: id, reason: format!("its target {target} is a shared backend and stays in {}", sides.legacy) });
                continue;
            }
        }
        if let Some(reason) = skip_reason(kind, name, obj, opts) {
            if !reason.is_empty() {
                set.skipped.push(Skipped { object: id, reason });
            }
            continue;
        }
        let mut copy = obj.clone();
        strip_server_fields(&mut copy);
        if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(sides.mesh));
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(COPIED_FROM_LABEL.into(), json!(sides.legacy));
            }
        }
        let mut adj = Vec::new();
        match kind {
            "Service" => service(&mut copy, &id, &rewriter, &mut adj),
            "ConfigMap" => config_map(&mut copy, &id, &rewriter, &mut adj),
            "Secret" => secret(&mut copy, &id, &rewriter, &mut adj),
            "Role" => {}
            "RoleBinding" => role_binding(&mut copy, &id, sides, &mut adj),
            // scaleTargetRef names a workload of the same namespace: its copy has the same name.
            "HorizontalPodAutoscaler" => {}
            "ServiceAccount" => {
                // Token Secrets are per namespace; the new namespace mints its own.
                if let Some(m) = copy.as_object_mut() {
                    m.remove("secrets");
                }
            }
            _ => {
                if let Some(spec) = copy.pointer_mut("/spec/template/spec") {
                    pod_spec(spec, &id, &rewriter, &mut adj);
                }
                if let Some(tm) = copy.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut) {
                    tm.remove("creationTimestamp");
                    if let Some(a) = tm.get_mut("annotations").and_then(Value::as_object_mut) {
                        a.remove("sidecar.istio.io/status");
                    }
                }
                if let Some(Value::Array(vcts)) = copy.pointer_mut("/spec/volumeClaimTemplates") {
                    for t in vcts {
                        if let Some(m) = t.as_object_mut() {
                            m.remove("status");
                        }
                        if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("creationTimestamp");
                        }
                    }
                }
                if !opts.secrets
                    && let Some(spec) = obj.pointer("/spec/template/spec")
                {
                    for secret in secret_refs(spec) {
                        set.uncopied_secrets.push((id.clone(), secret));
                    }
                }
                let level = opts.pod_security;
                if let Some(spec) = obj.pointer("/spec/template/spec") {
                    for problem in pod_security_problems(spec, level) {
                        set.violations.push(Violation { object: id.clone(), problem });
                    }
                }
                if str_at(obj, "/spec/template/metadata/labels/sidecar.istio.io~1inject") == Some("false")
                    || str_at(obj, "/spec/template/metadata/annotations/sidecar.istio.io~1inject") == Some("false")
                {
                    adj.push(Adjustment {
                        object: id.clone(),
                        field: "spec.template".into(),
                        change: "kept sidecar.istio.io/inject=false: this workload's copy runs without a proxy".into(),
                    });
                }
            }
        }
        set.adjustments.extend(adj);
        set.objects.push(copy);
    }
    set.objects.sort_by_key(|o| order(str_at(o, "/kind").unwrap_or_default()));
    set
}

/// `Some("")`: ignored silently (a kind the copy does not handle). `Some(reason)`: skipped, listed.
fn skip_reason(kind: &str, name: &str, obj: &Value, opts: &CopyOptions) -> Option<String> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Service" | "Role" | "RoleBinding" | "HorizontalPodAutoscaler" => None,
        "ServiceAccount" if name == "default" => Some("every namespace gets its own `default` ServiceAccount".into()),
        "ServiceAccount" => None,
        "ConfigMap" if name == "kube-root-ca.crt" || name == "istio-ca-root-cert" => {
            Some("published into every namespace by the cluster".into())
        }
        "ConfigMap" if obj.pointer("/metadata/labels/app.kubernetes.io~1managed-by").and_then(Value::as_str) == Some(MANAGED_BY) => {
            // The journal and other bookkeeping of this tool: not part of the application.
            Some(String::new())
        }
        "ConfigMap" => None,
        "Secret" if !opts.secrets => Some("Secrets are copied only with --copy-secrets".into()),
        "Secret" => match str_at(obj, "/type") {
            Some("kubernetes.io/service-account-token") => Some("service-account tokens are minted per namespace".into()),
            Some("helm.sh/release.v1") => Some("a Helm release record belongs to its release's namespace".into()),
            _ => None,
        },
        "Job" | "CronJob" => Some(format!("{kind}s are not copied: they would run in both namespaces")),
        // Carried by `guards`, which lists them.
        "NetworkPolicy" | "PodDisruptionBudget" | "ResourceQuota" | "LimitRange" => Some(String::new()),
        _ => Some(String::new()),
    }
}

fn strip_server_fields(v: &mut Value) {
    let Some(m) = v.as_object_mut() else { return };
    m.remove("status");
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "generateName",
        ] {
            meta.remove(f);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.retain(|k, _| {
                !(k == "kubectl.kubernetes.io/last-applied-configuration"
                    || k == "deployment.kubernetes.io/revision"
                    || k.starts_with("meta.helm.sh/"))
            });
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

fn service(v: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    spec.remove("clusterIPs");
    if !headless {
        spec.remove("clusterIP");
    }
    spec.remove("healthCheckNodePort");
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.insert("type".into(), json!("ClusterIP"));
        for f in
            ["loadBalancerIP", "loadBalancerSourceRanges", "loadBalancerClass", "externalTrafficPolicy", "allocateLoadBalancerNodePorts"]
        {
            spec.remove(f);
        }
        adj.push(Adjustment {
            object: id.into(),
            field: "spec.type".into(),
            change: format!("{ty} -> ClusterIP (the copy is reached through the mesh)"),
        });
    }
    if spec.remove("externalIPs").is_some() {
        adj.push(Adjustment {
            object: id.into(),
            field: "spec.externalIPs".into(),
            change: "removed (they stay with the legacy Service)".into(),
        });
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    if ty == "ExternalName"
        && let Some(Value::String(name)) = spec.get_mut("externalName")
        && let Some((new, what)) = rw.rewrite(Some("host"), name)
    {
        *name = new;
        adj.push(Adjustment { object: id.into(), field: "spec.externalName".into(), change: what });
    }
}

/// Subjects that are ServiceAccounts of the legacy namespace bind their copies instead; other
/// subjects (users, groups, ServiceAccounts of other namespaces) stay as they are. The roleRef
/// stays: a Role of the namespace is copied under the same name, a ClusterRole is shared.
fn role_binding(v: &mut Value, id: &str, sides: &Sides, adj: &mut Vec<Adjustment>) {
    let Some(Value::Array(subjects)) = v.get_mut("subjects") else { return };
    for s in subjects {
        if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
            && s.get("namespace").and_then(Value::as_str) == Some(sides.legacy.as_str())
        {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
            s["namespace"] = json!(sides.mesh);
            adj.push(Adjustment {
                object: id.into(),
                field: "subjects".into(),
                change: format!("ServiceAccount {}/{name} -> {}/{name}", sides.legacy, sides.mesh),
            });
        }
    }
}

fn config_map(v: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
        for (key, val) in data.iter_mut() {
            if let Value::String(s) = val
                && let Some((new, what)) = rw.rewrite(Some(key), s)
            {
                *s = new;
                adj.push(Adjustment { object: id.into(), field: format!("data.{key}"), change: what });
            }
        }
    }
}

/// Secret values are rewritten like ConfigMap values, but the adjustment never shows them.
fn secret(v: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
        for (key, val) in data.iter_mut() {
            let Some(text) = val.as_str().and_then(|s| b64.decode(s).ok()).and_then(|b| String::from_utf8(b).ok()) else { continue };
            if let Some((new, _)) = rw.rewrite(Some(key), &text) {
                *val = json!(b64.encode(new));
                adj.push(Adjustment {
                    object: id.into(),
                    field: format!("data.{key}"),
                    change: "DNS names adjusted (value not shown)".into(),
                });
            }
        }
    }
    if let Some(data) = v.get_mut("stringData").and_then(Value::as_object_mut) {
        for (key, val) in data.iter_mut() {
            if let Value::String(s) = val
                && let Some((new, _)) = rw.rewrite(Some(key), s)
            {
                *s = new;
                adj.push(Adjustment {
                    object: id.into(),
                    field: format!("stringData.{key}"),
                    change: "DNS names adjusted (value not shown)".into(),
                });
            }
        }
    }
}

fn pod_spec(spec: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else { continue };
        for c in containers {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
            if let Some(Value::Array(env)) = c.get_mut("env") {
                for e in env {
                    let ename = e.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
                    if let Some(Value::String(s)) = e.get_mut("value")
                        && let Some((new, what)) = rw.rewrite(Some(&ename), s)
                    {
                        *s = new;
                        adj.push(Adjustment { object: id.into(), field: format!("container {cname} env {ename}"), change: what });
                    }
                }
            }
            for field in ["command", "args"] {
                if let Some(Value::Array(items)) = c.get_mut(field) {
                    let mut flag: Option<String> = None;
                    for (i, item) in items.iter_mut().enumerate() {
                        let Value::String(s) = item else { continue };
                        // `--db-host=db` or `--db-host db`: the flag is the key of the value.
                        let (key, value_at) = match s.split_once('=') {
                            Some((k, _)) if k.starts_with('-') => (Some(k.to_string()), k.len() + 1),
                            _ => (flag.take(), 0),
                        };
                        flag = (s.starts_with('-') && !s.contains('=')).then(|| s.clone());
                        if let Some((new, what)) = rw.rewrite(key.as_deref(), &s[value_at..]) {
                            *s = format!("{}{new}", &s[..value_at]);
                            adj.push(Adjustment { object: id.into(), field: format!("container {cname} {field}[{i}]"), change: what });
                        }
                    }
                }
            }
        }
    }
    rewrite_affinity_namespaces(spec, rw, id, adj);
}

fn rewrite_affinity_namespaces(spec: &mut Value, rw: &Rewriter, id: &str, adj: &mut Vec<Adjustment>) {
    for kind in ["podAffinity", "podAntiAffinity"] {
        for rule in ["requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"] {
            let Some(Value::Array(terms)) = spec.pointer_mut(&format!("/affinity/{kind}/{rule}")) else { continue };
            for t in terms {
                let term = if t.get("podAffinityTerm").is_some() { t.get_mut("podAffinityTerm") } else { Some(t) };
                let Some(Value::Array(nss)) = term.and_then(|t| t.get_mut("namespaces")) else { continue };
                for ns in nss {
                    if ns.as_str() == Some(rw.sides.legacy.as_str()) {
                        *ns = json!(rw.sides.mesh);
                        adj.push(Adjustment {
                            object: id.into(),
                            field: format!("affinity.{kind}.namespaces"),
                            change: format!("{} -> {}", rw.sides.legacy, rw.sides.mesh),
                        });
                    }
                }
            }
        }
    }
}

/// Whether a key names a host (`DB_HOST`, `PGHOST`, `redis.hostname`, `--nats-server`,
/// `BROKERS`, `DATABASE_URL`): only then is a bare shared Service name in its value a host.
pub fn host_key(key: &str) -> bool {
    let k: String = key.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_uppercase();
    ["HOST", "HOSTNAME", "HOSTS", "SERVER", "SERVERS", "ADDR", "ADDRESS", "ENDPOINT", "BROKER", "BROKERS", "URL", "URI", "DSN", "CONTACTPOINTS"]
        .iter()
        .any(|s| k.ends_with(s))
}

/// The key right before a value inside a text: `host` in `host=db`, `Server=db;`, `host: db`,
/// `"host": "db"`.
fn key_before(pre: &str) -> Option<&str> {
    let p = pre.trim_end_matches(['"', '\'']).trim_end();
    let p = p.strip_suffix('=').or_else(|| p.strip_suffix(':'))?;
    let p = p.trim_end().trim_end_matches(['"', '\'']);
    let start = p.rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))).map_or(0, |i| i + c_len(p, i));
    Some(&p[start..])
}

fn c_len(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(1, char::len_utf8)
}

/// Rewrites DNS names of Services in a string (see the module docs): names of copied Services
/// move to the mesh namespace; bare host names of shared backends are qualified with the legacy
/// namespace. Nothing else changes.
pub struct Rewriter {
    sides: Sides,
    /// Copied Services.
    moved: BTreeSet<String>,
    /// Services that stay in the legacy namespace, and their ports.
    shared: BTreeMap<String, BTreeSet<u16>>,
    qualified: regex::Regex,
    label: regex::Regex,
}

fn label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

impl Rewriter {
    pub fn new(sides: &Sides, moved: BTreeSet<String>, shared: BTreeMap<String, BTreeSet<u16>>) -> Rewriter {
        let pattern = format!(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.{}(\.svc(\.cluster\.local)?)?", regex::escape(&sides.legacy));
        Rewriter {
            sides: sides.clone(),
            moved,
            shared,
            qualified: regex::Regex::new(&pattern).expect("valid pattern"),
            label: regex::Regex::new(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?").expect("valid pattern"),
        }
    }

    /// The rewritten string and a description of what changed (the names, never the whole value),
    /// or `None` when it names no Service that moves. `key` is what holds the value (an env var,
    /// a ConfigMap key, a `--flag`), if anything.
    pub fn rewrite(&self, key: Option<&str>, s: &str) -> Option<(String, String)> {
        let mut changes: Vec<String> = Vec::new();
        let moved = self.move_copied(s, &mut changes);
        let out = self.qualify_shared(key, moved.as_deref().unwrap_or(s), &mut changes);
        if changes.is_empty() {
            return None;
        }
        Some((out.or(moved).unwrap_or_else(|| s.to_string()), changes.join(", ")))
    }

    /// `<svc>.<ns>[.svc[.cluster.local]]` of a copied Service -> `<svc>.<ns>-mesh...`.
    fn move_copied(&self, s: &str, changes: &mut Vec<String>) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = String::with_capacity(s.len() + 8);
        let mut last = 0;
        for caps in self.qualified.captures_iter(s) {
            let whole = caps.get(0).expect("match");
            let label = caps.get(1).expect("label");
            let svc_form = caps.get(3).is_some();
            let before = label.start().checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(whole.end()).copied();
            // The match must not continue a longer label on either side, nor go on as a longer
            // domain (`api.shop.example.com`, `api.shop.svc.example.com`).
            if before.is_some_and(label_char) || after.is_some_and(label_char) {
                continue;
            }
            if after == Some(b'.') && bytes.get(whole.end() + 1).copied().is_some_and(label_char) {
                continue;
            }
            if !self.moved.contains(label.as_str()) {
                continue;
            }
            // The short form only on its own (not the tail of a longer name such as `x.api.shop`).
            if !svc_form && before == Some(b'.') {
                continue;
            }
            let suffix = caps.get(3).map_or("", |m| m.as_str());
            let to = format!("{}.{}{suffix}", label.as_str(), self.sides.mesh);
            out.push_str(&s[last..whole.start()]);
            out.push_str(&to);
            last = whole.end();
            let c = format!("{} -> {to}", whole.as_str());
            if !changes.contains(&c) {
                changes.push(c);
            }
        }
        if last == 0 {
            return None;
        }
        out.push_str(&s[last..]);
        Some(out)
    }

    /// A bare `<svc>` of a shared backend in a host position -> `<svc>.<ns>.svc.cluster.local`.
    fn qualify_shared(&self, key: Option<&str>, s: &str, changes: &mut Vec<String>) -> Option<String> {
        if self.shared.is_empty() {
            return None;
        }
        let bytes = s.as_bytes();
        let edge = |b: Option<u8>| b.is_some_and(|b| label_char(b) || b == b'.' || b == b'_' || b.is_ascii_uppercase());
        let mut out = String::with_capacity(s.len() + 24);
        let mut last = 0;
        for m in self.label.find_iter(s) {
            let (start, end) = (m.start(), m.end());
            if edge(start.checked_sub(1).map(|i| bytes[i])) || edge(bytes.get(end).copied()) {
                continue;
            }
            let Some(ports) = self.shared.get(m.as_str()) else { continue };
            let whole = start == 0 && end == s.len();
            let is_host = (whole && key.is_some_and(host_key)) || host_position(&s[..start], &s[end..], ports);
            if !is_host {
                continue;
            }
            let to = format!("{}.{}.svc.cluster.local", m.as_str(), self.sides.legacy);
            out.push_str(&s[last..start]);
            out.push_str(&to);
            last = end;
            let c = format!("{} -> {to}", m.as_str());
            if !changes.contains(&c) {
                changes.push(c);
            }
        }
        if last == 0 {
            return None;
        }
        out.push_str(&s[last..]);
        Some(out)
    }
}

/// Whether a bare name between `pre` and `post` is a host: a URL's host (after `://` with no
/// user info following, or after the `@` of user info), `name:port` with one of the Service's
/// `ports` (not `user:password@`), or the value of a host-like key inside the text.
fn host_position(pre: &str, post: &str, ports: &BTreeSet<u16>) -> bool {
    if pre.ends_with("://") {
        let authority = post.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(post.len());
        return !post[..authority].contains('@');
    }
    if pre.ends_with('@') && pre.contains("://") {
        return true;
    }
    if let Some(rest) = post.strip_prefix(':') {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits > 0 && rest[..digits].parse::<u16>().is_ok_and(|p| ports.contains(&p)) {
            let next = rest[digits..].chars().next();
            return !next.is_some_and(|c| c == '@' || c.is_ascii_alphanumeric());
        }
    }
    let ends_value = post.chars().next().is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | ',' | '&' | ')' | ':'));
    ends_value && key_before(pre).is_some_and(host_key)
}

/// The Secrets a pod spec reads ([`config_refs`]: env `secretKeyRef`, `envFrom` `secretRef`,
/// secret volumes, also in projected volumes) and its image pull secrets. Names only, sorted,
/// without duplicates.
pub fn secret_refs(spec: &Value) -> Vec<String> {
    let read = config_refs(spec).into_iter().filter(|r| r.kind == "Secret").map(|r| r.name);
    let pull = spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten();
    let pull = pull.filter_map(|s| s.get("name").and_then(Value::as_str)).filter(|n| !n.is_empty());
    read.chain(pull).map(str::to_string).collect::<BTreeSet<_>>().into_iter().collect()
}

/// What Pod Security `level` would reject in a pod spec (empty for `baseline` and looser levels
/// when nothing privileged is used). Covers the checks of the `restricted` and `baseline` profiles
/// that pod templates commonly trip over.
pub fn pod_security_problems(spec: &Value, level: PodSecurity) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(level, PodSecurity::Privileged | PodSecurity::None) {
        return out;
    }
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(f).and_then(Value::as_bool) == Some(true) {
            out.push(format!("{f}: true is not allowed"));
        }
    }
    if let Some(Value::Array(vols)) = spec.get("volumes") {
        for v in vols.iter().filter(|v| v.get("hostPath").is_some()) {
            out.push(format!("hostPath volume `{}` is not allowed", v.get("name").and_then(Value::as_str).unwrap_or("?")));
        }
    }
    let pod_non_root = spec.pointer("/securityContext/runAsNonRoot").and_then(Value::as_bool) == Some(true);
    let pod_seccomp = spec.pointer("/securityContext/seccompProfile/type").and_then(Value::as_str);
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = spec.get(list) else { continue };
        for c in cs {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let sc = c.get("securityContext");
            let get = |p: &str| sc.and_then(|s| s.pointer(p));
            if get("/privileged").and_then(Value::as_bool) == Some(true) {
                out.push(format!("container {name}: privileged"));
            }
            if let Some(Value::Array(ports)) = c.get("ports")
                && ports.iter().any(|p| p.get("hostPort").and_then(Value::as_i64).is_some_and(|h| h != 0))
            {
                out.push(format!("container {name}: hostPort is not allowed"));
            }
            if level != PodSecurity::Restricted {
                continue;
            }
            if get("/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
                out.push(format!("container {name}: allowPrivilegeEscalation must be false"));
            }
            let non_root = get("/runAsNonRoot").and_then(Value::as_bool);
            if non_root == Some(false) || (non_root.is_none() && !pod_non_root) {
                out.push(format!("container {name}: runAsNonRoot must be true (pod or container)"));
            }
            if get("/runAsUser").and_then(Value::as_i64) == Some(0) {
                out.push(format!("container {name}: runAsUser must not be 0"));
            }
            let drops_all =
                get("/capabilities/drop").and_then(Value::as_array).is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
            if !drops_all {
                out.push(format!("container {name}: capabilities must drop ALL"));
            }
            if let Some(Value::Array(add)) = get("/capabilities/add") {
                for cap in add.iter().filter_map(Value::as_str).filter(|c| *c != "NET_BIND_SERVICE") {
                    out.push(format!("container {name}: capability {cap} may not be added"));
                }
            }
            let seccomp = get("/seccompProfile/type").and_then(Value::as_str).or(pod_seccomp);
            if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                out.push(format!("container {name}: seccompProfile must be RuntimeDefault or Localhost"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sides() -> Sides {
        Sides::new("shop").unwrap()
    }

    fn objects() -> Vec<Value> {
        let b64 = base64::engine::general_purpose::STANDARD;
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "shop", "uid": "u1", "resourceVersion": "7", "generation": 3,
                    "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "helm"}],
                    "labels": {"app": "api"},
                    "annotations": {"deployment.kubernetes.io/revision": "3", "meta.helm.sh/release-name": "shop", "team": "core"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "api"}},
                        "spec": {"containers": [{"name": "api", "image": "api:1",
                            "env": [
                                {"name": "DB", "value": "postgres://u:hunter2@db.shop.svc.cluster.local:5432/x"},
                                {"name": "DATABASE_URL", "value": "postgres://u:hunter2@db:5432/shop"},
                                {"name": "CACHE", "value": "cache.shop:6379"},
                                {"name": "CACHE_ADDR", "value": "cache:6379"},
                                {"name": "CACHE_DRIVER", "value": "cache"},
                                {"name": "SELF", "value": "api.shop:8080"},
                                {"name": "OTHER", "value": "api.shop.example.com"},
                                {"name": "POD", "value": "db-0.db.shop.svc"},
                                {"name": "POSTGRES_DB", "value": "shop"},
                                {"name": "DB_HOST", "value": "db"},
                                {"name": "PG_DSN", "value": "host=db port=5432 dbname=shop user=db"},
                                {"name": "SHOPPING", "value": "cache.shopping"},
                                {"name": "IMAGE", "value": "cache:7"},
                                {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                            "args": ["--upstream=http://api.shop", "--cache-host", "cache", "--mode", "cache"]}],
                        "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 1, "podAffinityTerm": {"topologyKey": "x", "namespaces": ["shop", "other"]}}]}}}}},
                "status": {"replicas": 2}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cache", "namespace": "shop"},
                "spec": {"selector": {"matchLabels": {"app": "cache"}},
                    "template": {"metadata": {"labels": {"app": "cache"}}, "spec": {"containers": [{"name": "c", "image": "redis:7"}]}}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cache", "namespace": "shop"},
                "spec": {"selector": {"app": "cache"}, "ports": [{"port": 6379}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy-db", "namespace": "shop"},
                "spec": {"ports": [{"port": 5432}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "api"}, "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "externalTrafficPolicy": "Local",
                    "healthCheckNodePort": 31000, "ports": [{"port": 8080, "nodePort": 30007}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api-pods", "namespace": "shop"},
                "spec": {"clusterIP": "None", "selector": {"app": "api"}, "ports": [{"port": 8080}]}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}, "secrets": [{"name": "api-token"}]}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}, "data": {"ca.crt": "x"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"},
                "data": {"url": "http://api.shop.svc:8080", "plain": "x", "ns": "shop", "db": "postgres://db/shop",
                    "config.yaml": "database:\n  host: db\n  name: shop\ncache:\n  driver: cache\n"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"}, "type": "Opaque",
                "data": {"url": b64.encode("postgres://u:s3cr3t-value@db:5432/shop"), "user": b64.encode("shop")}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok", "namespace": "shop"}, "type": "kubernetes.io/service-account-token"}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-1", "namespace": "shop"}}),
        ]
    }

    fn find<'a>(set: &'a CopySet, kind: &str, name: &str) -> &'a Value {
        set.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} not copied"))
    }

    fn env_of(d: &Value) -> BTreeMap<String, String> {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or("<from>").to_string()))
            .collect()
    }

    #[test]
    fn copies_move_to_the_mesh_namespace_without_server_fields() {
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        let kinds: Vec<String> = set.objects.iter().map(object_name).collect();
        assert_eq!(kinds, ["ServiceAccount/api", "ConfigMap/cfg", "Service/api", "Service/api-pods", "Deployment/api"]);
        let d = find(&set, "Deployment", "api");
        assert_eq!(d["metadata"]["namespace"], "shop-mesh");
        for f in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"] {
            assert!(d["metadata"].get(f).is_none(), "{f} kept");
        }
        assert!(d.get("status").is_none());
        assert_eq!(d["metadata"]["annotations"], json!({"team": "core"}));
        assert_eq!(d["metadata"]["labels"][COPIED_FROM_LABEL], "shop");
        assert!(d["spec"]["template"]["metadata"].get("creationTimestamp").is_none());
        let api = find(&set, "Service", "api");
        assert_eq!(api["spec"], json!({"type": "ClusterIP", "selector": {"app": "api"}, "ports": [{"port": 8080}]}));
        assert_eq!(find(&set, "Service", "api-pods")["spec"]["clusterIP"], "None", "headless stays headless");
        assert_eq!(set.routed_services, ["api", "api-pods"]);
        assert!(find(&set, "ServiceAccount", "api").get("secrets").is_none());
        let skipped: Vec<&str> = set.skipped.iter().map(|s| s.object.as_str()).collect();
        assert_eq!(skipped, ["ServiceAccount/default", "ConfigMap/kube-root-ca.crt", "Secret/creds", "Secret/tok", "CronJob/nightly"]);
        assert!(set.skipped[2].reason.contains("--copy-secrets"));
    }

    #[test]
    fn stateful_backends_and_their_services_stay_in_the_legacy_namespace() {
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        assert!(!set.objects.iter().any(|o| o["kind"] == "StatefulSet" || o["metadata"]["name"] == "cache" || o["metadata"]["name"] == "db"));
        let shared: Vec<(&str, Vec<&str>)> =
            set.shared.iter().map(|s| (s.object.as_str(), s.services.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            shared,
            [("StatefulSet/db", vec!["db"]), ("Deployment/cache", vec!["cache"]), ("Service/legacy-db", vec!["legacy-db"])]
        );
        assert_eq!(set.shared[0].reason, "volumeClaimTemplates data; image postgres:16 (PostgreSQL); Service db on port 5432 (PostgreSQL)");
        assert!(set.shared[2].reason.starts_with("no selector"), "{}", set.shared[2].reason);
        assert!(set.violations.iter().all(|v| v.object == "Deployment/api"), "backends are not checked: they are not copied");
        assert!(set.stateful_copies.is_empty() && set.refused.is_empty());
        // An autoscaler of a backend stays with it.
        let mut objs = objects();
        objs.push(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}, "maxReplicas": 3}}));
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        assert!(set.skipped.iter().any(|s| s.object == "HorizontalPodAutoscaler/db" && s.reason.contains("StatefulSet/db is a shared backend")));
    }

    #[test]
    fn a_stateful_backend_is_copied_only_on_request() {
        let opts = CopyOptions { copy_stateful: vec!["cache".into(), "StatefulSet/nope".into()], ..CopyOptions::default() };
        let set = copy_namespace(&sides(), &objects(), &opts);
        assert!(find(&set, "Deployment", "cache")["metadata"]["namespace"] == "shop-mesh");
        assert_eq!(find(&set, "Service", "cache")["metadata"]["namespace"], "shop-mesh");
        assert!(set.is_stateful_copy("Deployment/cache"));
        assert_eq!(set.stateful_copies[0].services, ["cache"]);
        assert_eq!(set.routed_services, ["api", "api-pods"], "a stateful copy is never split by weight");
        assert!(!set.shared.iter().any(|s| s.object == "Deployment/cache"));
        assert_eq!(set.refused.len(), 1);
        assert!(set.refused[0].contains("--copy-stateful StatefulSet/nope: no workload of that name in shop"), "{}", set.refused[0]);
        // Its name now moves with it.
        let env = env_of(find(&set, "Deployment", "api"));
        assert_eq!(env["CACHE"], "cache.shop-mesh:6379");
        assert_eq!(env["CACHE_ADDR"], "cache:6379");
        let cnpg = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg", "namespace": "shop"}});
        let rw = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pg-rw", "namespace": "shop"},
            "spec": {"selector": {"cnpg.io/cluster": "pg", "role": "primary"}, "ports": [{"port": 5432}]}});
        let opts = CopyOptions { copy_stateful: vec!["pg".into()], ..CopyOptions::default() };
        let set = copy_namespace(&sides(), &[cnpg, rw], &opts);
        assert!(set.refused[0].contains("CloudNativePG Cluster pg is run by its operator"), "{:?}", set.refused);
        assert_eq!(set.shared[0].object, "Cluster/pg");
        assert_eq!(set.shared[0].services, ["pg-rw"]);
        assert!(set.objects.is_empty());
    }

    #[test]
    fn only_dns_names_of_services_are_rewritten() {
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        let d = find(&set, "Deployment", "api");
        let env = env_of(d);
        let expect = [
            // Shared backends: already qualified with the legacy namespace, they stay.
            ("DB", "postgres://u:hunter2@db.shop.svc.cluster.local:5432/x"),
            ("CACHE", "cache.shop:6379"),
            ("POD", "db-0.db.shop.svc"),
            // Bare host names of shared backends are qualified; the database name is not a host.
            ("DATABASE_URL", "postgres://u:hunter2@db.shop.svc.cluster.local:5432/shop"),
            ("CACHE_ADDR", "cache.shop.svc.cluster.local:6379"),
            ("DB_HOST", "db.shop.svc.cluster.local"),
            ("PG_DSN", "host=db.shop.svc.cluster.local port=5432 dbname=shop user=db"),
            // Not hosts: a value equal to a Service or namespace name, a port that is not the Service's.
            ("CACHE_DRIVER", "cache"),
            ("POSTGRES_DB", "shop"),
            ("IMAGE", "cache:7"),
            // Copied Services move to the mesh namespace; other domains stay.
            ("SELF", "api.shop-mesh:8080"),
            ("OTHER", "api.shop.example.com"),
            ("SHOPPING", "cache.shopping"),
            ("FROM", "<from>"),
        ];
        for (k, v) in expect {
            assert_eq!(env[k], v, "env {k}");
        }
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["args"], json!(["--upstream=http://api.shop-mesh", "--cache-host", "cache.shop.svc.cluster.local", "--mode", "cache"]));
        let term = &d["spec"]["template"]["spec"]["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(term["podAffinityTerm"]["namespaces"], json!(["shop-mesh", "other"]));
        let cfg = find(&set, "ConfigMap", "cfg");
        assert_eq!(cfg["data"]["url"], "http://api.shop-mesh.svc:8080");
        assert_eq!(cfg["data"]["ns"], "shop");
        assert_eq!(cfg["data"]["db"], "postgres://db.shop.svc.cluster.local/shop");
        assert_eq!(cfg["data"]["config.yaml"], "database:\n  host: db.shop.svc.cluster.local\n  name: shop\ncache:\n  driver: cache\n");
        // Every rewrite is listed, by name, never with the whole value (the URL carries a password).
        let listed: Vec<(&str, &str)> = set.adjustments.iter().filter(|a| a.object == "Deployment/api").map(|a| (a.field.as_str(), a.change.as_str())).collect();
        assert_eq!(
            listed,
            [
                ("container api env DATABASE_URL", "db -> db.shop.svc.cluster.local"),
                ("container api env CACHE_ADDR", "cache -> cache.shop.svc.cluster.local"),
                ("container api env SELF", "api.shop -> api.shop-mesh"),
                ("container api env DB_HOST", "db -> db.shop.svc.cluster.local"),
                ("container api env PG_DSN", "db -> db.shop.svc.cluster.local"),
                ("container api args[0]", "api.shop -> api.shop-mesh"),
                ("container api args[2]", "cache -> cache.shop.svc.cluster.local"),
                ("affinity.podAffinity.namespaces", "shop -> shop-mesh"),
            ]
        );
        assert!(set.adjustments.iter().all(|a| !a.change.contains("hunter2")));
        assert!(set.adjustments.iter().any(|a| a.object == "Service/api" && a.change.contains("LoadBalancer -> ClusterIP")));
    }

    #[test]
    fn backends_isolated_to_their_namespace_are_named() {
        let mut objs = objects();
        let np = |name: &str, spec: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "shop"}, "spec": spec});
        objs.push(np("default-deny", json!({"podSelector": {}, "policyTypes": ["Ingress"]})));
        objs.push(np("db-from-api", json!({"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}]})));
        objs.push(np("cache-from-all", json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["cache"]}]},
            "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {}}]}]})));
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        let w = unreachable_backends(&sides(), &objs, &set);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("NetworkPolicy db-from-api, default-deny in shop admit Deployment/api but not shop-mesh's copies, which will be refused by StatefulSet/db"), "{}", w[0]);
        assert!(w[0].contains("kubernetes.io/metadata.name: shop-mesh"), "{}", w[0]);
        assert!(w[0].contains("lost: Deployment/api (TCP 5432)"), "{}", w[0]);
        // Without policies nothing is isolated.
        let plain = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        assert!(unreachable_backends(&sides(), &objects(), &plain).is_empty());
        // A rule that admits the mesh namespace by its name keeps the copies.
        let mut objs = objs;
        objs.push(np("db-from-mesh", json!({"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop-mesh"}}, "podSelector": {"matchLabels": {"app": "api"}}}]}]})));
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        assert!(unreachable_backends(&sides(), &objs, &set).is_empty());
    }

    #[test]
    fn host_positions_are_recognised() {
        let sides = sides();
        let shared = BTreeMap::from([("nats".to_string(), BTreeSet::from([4222])), ("postgres".to_string(), BTreeSet::from([5432]))]);
        let rw = Rewriter::new(&sides, BTreeSet::from(["api".to_string()]), shared);
        let r = |k: Option<&str>, s: &str| rw.rewrite(k, s).map(|(v, _)| v).unwrap_or_else(|| s.to_string());
        let fq = "postgres.shop.svc.cluster.local";
        // The user name and the database name of a DSN are not hosts.
        assert_eq!(r(None, "postgres://postgres:pw@postgres:5432/postgres"), format!("postgres://postgres:pw@{fq}:5432/postgres"));
        assert_eq!(r(None, "jdbc:postgresql://postgres/zamaz?user=postgres"), format!("jdbc:postgresql://{fq}/zamaz?user=postgres"));
        assert_eq!(r(None, "nats://nats:4222,nats://a.b:4222"), "nats://nats.shop.svc.cluster.local:4222,nats://a.b:4222");
        assert_eq!(r(Some("PGHOST"), "postgres"), fq);
        assert_eq!(r(Some("POSTGRES_USER"), "postgres"), "postgres");
        assert_eq!(r(None, "Server=postgres;Database=postgres"), format!("Server={fq};Database=postgres"));
        assert_eq!(r(None, r#"{"host": "postgres", "db": "postgres"}"#), format!(r#"{{"host": "{fq}", "db": "postgres"}}"#));
        assert_eq!(r(None, "postgres:6543"), "postgres:6543", "not one of its ports");
        assert_eq!(r(None, "my-postgres:5432 postgres_x:5432 Postgres:5432"), "my-postgres:5432 postgres_x:5432 Postgres:5432");
        assert_eq!(r(None, "http://api.shop.svc.cluster.local."), "http://api.shop-mesh.svc.cluster.local.");
        assert_eq!(r(None, "api.shop.svc.example.com x.api.shop"), "api.shop.svc.example.com x.api.shop");
        assert_eq!(r(None, "shop"), "shop");
    }

    #[test]
    fn roles_bindings_and_autoscalers_are_copied_with_their_service_accounts_moved() {
        let objs = vec![
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api", "namespace": "shop", "uid": "h"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "minReplicas": 2, "maxReplicas": 5},
                "status": {"currentReplicas": 2}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "api-reader", "namespace": "shop"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
                    {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "shop"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "shop"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}}),
        ];
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        let names: Vec<String> = set.objects.iter().map(object_name).collect();
        assert_eq!(names, ["ServiceAccount/api", "Role/reader", "RoleBinding/api-reader", "HorizontalPodAutoscaler/api"]);
        let rb = find(&set, "RoleBinding", "api-reader");
        assert_eq!(rb["metadata"]["namespace"], "shop-mesh");
        assert_eq!(rb["roleRef"], objs[1]["roleRef"]);
        assert_eq!(rb["subjects"][0]["namespace"], "shop-mesh");
        assert_eq!(rb["subjects"][1]["namespace"], "tools");
        assert_eq!(rb["subjects"][2], objs[1]["subjects"][2]);
        assert_eq!(set.adjustments.len(), 1);
        assert_eq!(set.adjustments[0].change, "ServiceAccount shop/api -> shop-mesh/api");
        let hpa = find(&set, "HorizontalPodAutoscaler", "api");
        assert_eq!(hpa["spec"], objs[0]["spec"]);
        assert!(hpa.get("status").is_none() && hpa["metadata"].get("uid").is_none());
        assert_eq!(find(&set, "Role", "reader")["rules"], objs[2]["rules"]);
        assert!(set.skipped.is_empty());
    }

    #[test]
    fn secrets_are_copied_only_on_request_and_never_shown() {
        let opts = CopyOptions { secrets: true, ..CopyOptions::default() };
        let set = copy_namespace(&sides(), &objects(), &opts);
        let s = find(&set, "Secret", "creds");
        let decoded =
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s["data"]["url"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(decoded, "postgres://u:s3cr3t-value@db.shop.svc.cluster.local:5432/shop");
        let user = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s["data"]["user"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(user, "shop", "a value equal to the namespace name is not a DNS name");
        // Secrets: the key is listed, neither the value nor the names in it.
        let a: Vec<&Adjustment> = set.adjustments.iter().filter(|a| a.object == "Secret/creds").collect();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].field.as_str(), a[0].change.as_str()), ("data.url", "DNS names adjusted (value not shown)"));
        let all = serde_json::to_string(&(&set.adjustments, &set.skipped, &set.violations)).unwrap();
        assert!(!all.contains("s3cr3t"));
        assert!(set.skipped.iter().any(|s| s.object == "Secret/tok"));
    }

    #[test]
    fn secrets_the_copies_read_are_listed_when_not_copied() {
        let spec = json!({"containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}],
            "envFrom": [{"secretRef": {"name": "env"}}, {"configMapRef": {"name": "cfg"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "tls"}}, {"name": "p", "projected": {"sources": [{"secret": {"name": "db"}}]}}],
            "imagePullSecrets": [{"name": "registry"}]});
        assert_eq!(secret_refs(&spec), ["db", "env", "registry", "tls"]);
        let objs =
            vec![json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {"template": {"spec": spec}}})];
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        assert_eq!(set.uncopied_secrets.len(), 4);
        assert_eq!(set.uncopied_secrets[0], ("Deployment/api".to_string(), "db".to_string()));
        let with = copy_namespace(&sides(), &objs, &CopyOptions { secrets: true, ..Default::default() });
        assert!(with.uncopied_secrets.is_empty());
    }

    #[test]
    fn the_mesh_namespace_is_labelled_for_the_data_plane_and_pod_security() {
        let ns = mesh_namespace(&sides(), &CopyOptions::default());
        let l = &ns["metadata"]["labels"];
        assert_eq!(ns["metadata"]["name"], "shop-mesh");
        assert_eq!(l["istio-injection"], "enabled");
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/enforce-version"], "latest");
        let amb =
            mesh_namespace(&sides(), &CopyOptions { data_plane: DataPlane::Ambient, pod_security: PodSecurity::None, ..Default::default() });
        let l = amb["metadata"]["labels"].as_object().unwrap();
        assert_eq!(l["istio.io/dataplane-mode"], "ambient");
        assert!(!l.contains_key("istio-injection"));
        assert!(!l.keys().any(|k| k.starts_with("pod-security")));
        let rev = mesh_namespace(
            &sides(),
            &CopyOptions { data_plane: DataPlane::SidecarRevision { revision: "1-24".into() }, ..Default::default() },
        );
        assert_eq!(rev["metadata"]["labels"]["istio.io/rev"], "1-24");
    }

    #[test]
    fn restricted_pod_security_problems_are_found() {
        let loose = json!({"containers": [{"name": "c"}], "hostNetwork": true});
        let p = pod_security_problems(&loose, PodSecurity::Restricted);
        assert!(p.iter().any(|x| x == "hostNetwork: true is not allowed"));
        assert!(p.iter().any(|x| x.contains("allowPrivilegeEscalation")));
        assert!(p.iter().any(|x| x.contains("runAsNonRoot")));
        assert!(p.iter().any(|x| x.contains("drop ALL")));
        assert!(p.iter().any(|x| x.contains("seccompProfile")));
        assert_eq!(pod_security_problems(&loose, PodSecurity::Baseline), ["hostNetwork: true is not allowed"]);
        let tight = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]});
        assert!(pod_security_problems(&tight, PodSecurity::Restricted).is_empty());
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        assert!(set.violations.iter().all(|v| v.object == "Deployment/api"));
        assert!(!set.violations.is_empty());
    }
}

/// A backend's TCP ports: its containers' and its Services' target ports in its pod
/// ([`meshmove_model::service`]; a numeric one counts although no container declares it, since
/// charts often declare only the Service's). Sorted, without duplicates.
pub(super) fn backend_tcp_ports<'a>(
    engine: &meshmove_netpol::Engine,
    backend: meshmove_netpol::PodId,
    services: impl Iterator<Item = &'a Value>,
) -> Vec<u16> {
    use meshmove_netpol::Protocol;
    let pod = engine.pod(backend);
    let mut ports: Vec<u16> = pod.ports.iter().filter(|p| p.protocol == Protocol::Tcp).map(|p| p.port).collect();
    let container_ports: Vec<meshmove_model::workload::ContainerPort> = pod.ports.iter().map(Into::into).collect();
    for svc in services {
        ports.extend(meshmove_model::service::tcp_pod_ports(svc, &container_ports));
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}
