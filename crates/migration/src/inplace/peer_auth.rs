//! PeerAuthentication as the in-place steps read it.
//!
//! `enable`, `mtls strict` and `status` all ask one question: which mTLS mode does Istio enforce
//! on each workload port of the namespace, now and after a write? The answer is
//! [`meshmove_istio::PeerAuthentications::effective`] (workload over namespace over mesh, the
//! oldest policy of a level, `portLevelMtls`, UNSET inheriting; see that module for the rules and
//! their upstream sources). This module only feeds it: the mesh's policies from the inventory,
//! and the workload ports of a namespace as targets.
//!
//! A workload's ports are the TCP ports its containers declare, the target ports of the Services
//! that select its pods, and the ports a `portLevelMtls` entry of a policy selecting it names.
//! [`ANY_PORT`] stands for every other port: traffic to a port nobody declared still gets the
//! workload-level mode.

use std::collections::BTreeSet;

use meshmove_istio::{
    DEFAULT_ROOT_NAMESPACE, Effective, Level, Mode, MtlsSource, PROXY_PORTS, PeerAuthentication,
    PeerAuthentications, Target, mesh_config,
};
use meshmove_model::inventory::{Inventory, Object, Origin, kinds};
use meshmove_netpol::view::{self as model, ModelOptions};
use meshmove_netpol::{PodInfo, Protocol};
use serde::Serialize;
use serde_json::Value;

/// The target port standing for "every port without a `portLevelMtls` entry of its own". No
/// policy can name it: Istio's validation admits ports 1 to 65535 only.
pub const ANY_PORT: u16 = 0;

/// The namespace of Istio's control plane, where the mesh config is read from a cluster.
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// The mesh's PeerAuthentications, or why they cannot be known (see [`policies`]).
pub type Policies = Result<PeerAuthentications, PeerAuthError>;

/// Why the mesh root namespace or the mesh's PeerAuthentications cannot be known. Each names
/// the flag, ConfigMap or kind concerned, and what replaces it where something can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAuthError {
    #[error("--mesh-root-namespace: {0}")]
    RootFlag(meshmove_istio::Error),
    /// The `mesh` key of a mesh config ConfigMap is not YAML.
    #[error("{at}, key {key}: {message}")]
    MeshYaml { at: String, key: &'static str, message: String },
    #[error("{at}: {source}")]
    MeshConfig { at: String, source: meshmove_istio::Error },
    #[error(
        "the mesh configs disagree on the root namespace ({first} in {first_at}, {other} in {other_at}): pass --mesh-root-namespace"
    )]
    RootsDisagree { first: String, first_at: String, other: String, other_at: String },
    #[error(
        "could not read the mesh config, ConfigMap {namespace}/{name} ({why}), so the mesh root namespace is unknown: pass --mesh-root-namespace"
    )]
    MeshConfigUnreadable { namespace: String, name: String, why: String },
    /// Listing PeerAuthentications was refused, or the kind was not found.
    #[error("PeerAuthentications could not be read ({0})")]
    Unreadable(String),
    #[error("PeerAuthentications were listed in one namespace only, so the mesh-wide ones in {root} were not seen")]
    OneNamespace { root: String },
    /// A malformed PeerAuthentication.
    #[error(transparent)]
    Policy(#[from] meshmove_istio::Error),
}

/// The mesh root namespace (MeshConfig `rootNamespace`, see [`meshmove_istio::mesh_config`]) and
/// where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootNamespace {
    pub name: String,
    /// `--mesh-root-namespace`, `ConfigMap istio-system/istio`, or Istio's default.
    pub source: String,
}

/// The mesh root namespace: `flag` (`--mesh-root-namespace`) when given; else what the mesh
/// config ConfigMaps of the inventory set (`istio`, `istio-<revision>`, key `mesh`; several must
/// agree); else Istio's default, `istio-system`. A mesh config that does not parse or names no
/// namespace is an error naming the ConfigMap.
pub fn root_namespace(inventory: &Inventory, flag: Option<&str>) -> Result<RootNamespace, PeerAuthError> {
    if let Some(name) = flag {
        let name = mesh_config::root_namespace(&serde_json::json!({"rootNamespace": name})).map_err(PeerAuthError::RootFlag)?;
        return Ok(RootNamespace { name, source: "--mesh-root-namespace".into() });
    }
    let mut found: Vec<RootNamespace> = Vec::new();
    for cm in inventory.of(&kinds::CONFIG_MAP) {
        if cm.name != "istio" && !cm.name.starts_with("istio-") {
            continue;
        }
        let Some(text) = cm.value.pointer(&format!("/data/{}", mesh_config::MESH_KEY)).and_then(Value::as_str) else { continue };
        let at = format!("ConfigMap {}/{}", cm.namespace.as_deref().unwrap_or_default(), cm.name);
        let mesh = match meshmove_model::yaml::split_stream(text).first() {
            Some(doc) => meshmove_model::yaml::parse_document(doc).map_err(|e| PeerAuthError::MeshYaml {
                at: at.clone(),
                key: mesh_config::MESH_KEY,
                message: e.to_string(),
            })?,
            None => None,
        };
        let name = mesh_config::root_namespace(&mesh.unwrap_or(Value::Null))
            .map_err(|source| PeerAuthError::MeshConfig { at: at.clone(), source })?;
        found.push(RootNamespace { name, source: at });
    }
    match found.as_slice() {
        [] => Ok(RootNamespace { name: DEFAULT_ROOT_NAMESPACE.into(), source: "Istio's default (no mesh config found)".into() }),
        [first, rest @ ..] => match rest.iter().find(|r| r.name != first.name) {
            None => Ok(first.clone()),
            Some(other) => Err(PeerAuthError::RootsDisagree {
                first: first.name.clone(),
                first_at: first.source.clone(),
                other: other.name.clone(),
                other_at: other.source.clone(),
            }),
        },
    }
}

/// The mesh config ConfigMap `istio` in `istio_namespace`, read from the cluster with one GET
/// (no list of ConfigMaps), as an object to overlay on a live inventory; none when it does not
/// exist. Why it could not be read otherwise (forbidden, unreachable), with the flag that
/// replaces it.
pub async fn read_mesh_config(
    conn: &meshmove_kube::cluster::Connection,
    istio_namespace: &str,
) -> Result<Vec<Object>, PeerAuthError> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(conn.client.clone(), istio_namespace);
    let name = mesh_config::configmap_name(None);
    let unreadable = |why: String| PeerAuthError::MeshConfigUnreadable {
        namespace: istio_namespace.to_string(),
        name: name.clone(),
        why,
    };
    match api.get_opt(&name).await {
        Ok(None) => Ok(vec![]),
        Ok(Some(cm)) => {
            let mut value = serde_json::to_value(&cm).map_err(|e| unreadable(e.to_string()))?;
            value["apiVersion"] = Value::String("v1".into());
            value["kind"] = Value::String("ConfigMap".into());
            Ok(Object::from_value(value, Origin::Cluster { context: conn.context.clone() }).into_iter().collect())
        }
        Err(e) => Err(unreadable(match &e {
            kube::Error::Api(status) => format!("{}: {}", status.code, status.message),
            other => other.to_string(),
        })),
    }
}

/// Every PeerAuthentication of the mesh, or why they cannot be known: a list the cluster refused,
/// a load that saw only one namespace (the mesh-wide policies live in the root namespace), or a
/// malformed object. The root namespace is [`root_namespace`] of the inventory.
pub fn policies(inventory: &Inventory) -> Policies {
    policies_in(inventory, root_namespace(inventory, None))
}

/// [`policies`] with the root namespace given (or why it is unknown).
pub fn policies_in(inventory: &Inventory, root: Result<RootNamespace, PeerAuthError>) -> Policies {
    let root = root?;
    let kind = &kinds::PEER_AUTHENTICATION;
    // Not served (no Istio CRDs) or none in the files: there are none. Refused or not found: unknown.
    if let Some(why) = inventory.availability(kind).filter(|w| w.is_read_failure()) {
        return Err(PeerAuthError::Unreadable(why.describe(kind)));
    }
    if !inventory.complete_across_namespaces(kind) {
        return Err(PeerAuthError::OneNamespace { root: root.name });
    }
    let objects: Vec<Value> = inventory
        .of(kind)
        .map(|o| {
            let mut v = o.value.clone();
            // Manifests often leave the namespace to the loader.
            if v.pointer("/metadata/namespace").is_none()
                && let (Some(ns), Some(meta)) = (&o.namespace, v.get_mut("metadata").and_then(Value::as_object_mut))
            {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            v
        })
        .collect();
    Ok(PeerAuthentications::from_values(root.name, &objects)?)
}

/// What decided an effective mode, in words.
pub fn decided_by(e: &Effective) -> String {
    match &e.from {
        MtlsSource::Default => "Istio's default: no PeerAuthentication sets a mode".to_string(),
        MtlsSource::Policy { policy, level: Level::Mesh } => format!("mesh-wide PeerAuthentication {policy}"),
        MtlsSource::Policy { policy, level: Level::Namespace } => format!("namespace-wide PeerAuthentication {policy}"),
        MtlsSource::Policy { policy, level: Level::Workload } if e.port_override => {
            format!("portLevelMtls of PeerAuthentication {policy}")
        }
        MtlsSource::Policy { policy, level: Level::Workload } => format!("workload PeerAuthentication {policy}"),
    }
}

/// `port 8080`, or `other ports` for [`ANY_PORT`].
pub fn port_words(port: u16) -> String {
    if port == ANY_PORT { "other ports".to_string() } else { format!("port {port}") }
}

/// The TCP ports of `pod` that Service `svc` sends to, when its selector selects the pod (none
/// otherwise, and none for a Service without a selector: [`meshmove_model::selector::service_selects`]),
/// by the one reading of `targetPort` ([`meshmove_model::service`]: a name resolved against the
/// pod's container ports, `port` when absent).
pub fn service_target_ports(pod: &PodInfo, svc: &Value) -> Vec<u16> {
    if !meshmove_model::selector::service_selects(svc, &pod.labels) {
        return Vec::new();
    }
    let container_ports: Vec<meshmove_model::workload::ContainerPort> = pod.ports.iter().map(Into::into).collect();
    meshmove_model::service::tcp_pod_ports(svc, &container_ports)
}

/// The ports of one pod (live or a workload's template) as PeerAuthentication targets: its TCP
/// container ports, the target ports of `services` selecting it, the `portLevelMtls` ports of
/// policies in its namespace selecting it, and [`ANY_PORT`]; sorted. The sidecar's own ports
/// ([`meshmove_istio::PROXY_PORTS`], declared by an injected `istio-proxy` container) are not the
/// workload's and are left out.
pub fn pod_ports(pod: &PodInfo, services: &[&Value], policies: &PeerAuthentications) -> BTreeSet<u16> {
    let mut ports: BTreeSet<u16> = [ANY_PORT].into();
    ports.extend(pod.ports.iter().filter(|p| p.protocol == Protocol::Tcp && !PROXY_PORTS.contains(&p.port)).map(|p| p.port));
    for svc in services {
        ports.extend(service_target_ports(pod, svc));
    }
    for policy in policies.policies().iter().filter(|p| p.policy.namespace == pod.namespace) {
        if policy.selector.as_ref().is_some_and(|s| s.iter().all(|(k, v)| pod.labels.get(k) == Some(v))) {
            ports.extend(policy.port_level.keys());
        }
    }
    ports
}

/// The Services of `namespace`.
pub fn services<'a>(inventory: &'a Inventory, namespace: &str) -> Vec<&'a Value> {
    inventory.of(&kinds::SERVICE).filter(|s| s.namespace.as_deref() == Some(namespace)).map(|s| &s.value).collect()
}

/// One workload of a namespace (`Deployment/api`, or `Pod/debug` for a bare pod) and its pods'
/// ports as targets, one per distinct label set and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadTargets {
    pub kind: String,
    pub name: String,
    pub targets: Vec<Target>,
}

impl WorkloadTargets {
    pub fn workload(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// The workloads of `namespace` with their live pods, or their template when no pod is listed,
/// as the NetworkPolicy view sees them ([`meshmove_netpol::view`]); sorted by kind and name.
pub fn workload_targets(inventory: &Inventory, namespace: &str, policies: &PeerAuthentications) -> Vec<WorkloadTargets> {
    let services = services(inventory, namespace);
    let m = model::build(inventory, ModelOptions::default());
    let mut out: Vec<WorkloadTargets> = Vec::new();
    for pod in m.cluster.pods.iter().filter(|p| p.namespace == namespace) {
        let w = pod.workload();
        let (kind, name) = (w.kind.as_str().to_string(), w.name.clone());
        let i = match out.iter().position(|t| t.kind == kind && t.name == name) {
            Some(i) => i,
            None => {
                out.push(WorkloadTargets { kind, name, targets: Vec::new() });
                out.len() - 1
            }
        };
        for port in pod_ports(pod, &services, policies) {
            let t = Target { namespace: namespace.to_string(), labels: pod.labels.clone(), port };
            if !out[i].targets.contains(&t) {
                out[i].targets.push(t);
            }
        }
    }
    out.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    out
}

/// Every target of `workloads`.
pub fn all_targets(workloads: &[WorkloadTargets]) -> Vec<Target> {
    workloads.iter().flat_map(|w| w.targets.iter().cloned()).collect()
}

/// A workload port's effective mode before and after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMode {
    /// `Deployment/api`.
    pub workload: String,
    /// `None`: every port without a `portLevelMtls` entry of its own.
    pub port: Option<u16>,
    pub before: String,
    pub after: String,
    /// What decides the mode after the write.
    pub decided_by: String,
}

impl std::fmt::Display for PortMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = port_words(self.port.unwrap_or(ANY_PORT));
        if self.before == self.after {
            write!(f, "{} {port}: stays {} ({})", self.workload, self.after, self.decided_by)
        } else {
            write!(f, "{} {port}: {} -> {} ({})", self.workload, self.before, self.after, self.decided_by)
        }
    }
}

/// The mode of every workload port before (`before`) and after (`after`), one entry per
/// workload and port (the strictest label set of a workload's pods counts least: the entry shows
/// the lowest mode any of its pods gets).
pub fn port_modes(workloads: &[WorkloadTargets], before: &PeerAuthentications, after: &PeerAuthentications) -> Vec<PortMode> {
    let mut out: Vec<PortMode> = Vec::new();
    for w in workloads {
        let mut ports: Vec<u16> = w.targets.iter().map(|t| t.port).collect();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            let lowest = |set: &PeerAuthentications| {
                w.targets
                    .iter()
                    .filter(|t| t.port == port)
                    .map(|t| set.effective(&t.namespace, &t.labels, t.port))
                    .min_by_key(|e| e.mode)
                    .expect("a target of this port")
            };
            let (b, a) = (lowest(before), lowest(after));
            out.push(PortMode {
                workload: w.workload(),
                port: (port != ANY_PORT).then_some(port),
                before: b.mode.to_string(),
                after: a.mode.to_string(),
                decided_by: decided_by(&a),
            });
        }
    }
    out
}

/// A new namespace-wide PeerAuthentication `namespace/name` with `mode`, as it will be once
/// server-side applied over what exists: an existing object of that name keeps its other fields
/// (its selector, its `portLevelMtls`, its creation time), because the apply sets only
/// `spec.mtls.mode`.
pub fn proposed(policies: &PeerAuthentications, namespace: &str, name: &str, mode: Mode) -> PeerAuthentication {
    let existing = policies.policies().iter().find(|p| p.policy.namespace == namespace && p.policy.name == name);
    match existing {
        Some(p) => PeerAuthentication { mode: Some(mode), ..p.clone() },
        None => PeerAuthentication {
            policy: meshmove_istio::PolicyRef { namespace: namespace.to_string(), name: name.to_string() },
            created: None,
            selector: None,
            mode: Some(mode),
            port_level: Default::default(),
        },
    }
}
