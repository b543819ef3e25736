//! The engine's input model, independent of where objects came from (a live cluster or
//! manifests on disk), and the workload identity used to group results.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::NetpolError;
use super::connection::Protocol;

/// The label the API server puts on every namespace, holding the namespace's name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespace used for objects that carry none (manifests applied without `-n`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kind of the workload that owns a pod; `Pod` for a bare pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    ReplicationController,
    Pod,
    /// Any other controller kind (for example a custom resource such as an Argo `Rollout`).
    Other(String),
}

impl WorkloadKind {
    pub fn as_str(&self) -> &str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> WorkloadKind {
        match s {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "Job" => WorkloadKind::Job,
            "CronJob" => WorkloadKind::CronJob,
            "ReplicationController" => WorkloadKind::ReplicationController,
            "Pod" => WorkloadKind::Pod,
            other => WorkloadKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WorkloadKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WorkloadKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(WorkloadKind::parse(&String::deserialize(deserializer)?))
    }
}

/// A workload (or a bare pod): `{kind, namespace, name}`.
///
/// Ordered by namespace, then name, then kind, so sorted output reads namespace by namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl WorkloadRef {
    pub fn new(kind: WorkloadKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl Ord for WorkloadRef {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.namespace, &self.name, &self.kind).cmp(&(&other.namespace, &other.name, &other.kind))
    }
}

impl PartialOrd for WorkloadRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// A namespace: its name and labels. The constructors guarantee the
/// `kubernetes.io/metadata.name` label is present and equal to the name, as the API server does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl NamespaceInfo {
    pub fn new(name: impl Into<String>, labels: BTreeMap<String, String>) -> Self {
        let name = name.into();
        let mut labels = labels;
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
        NamespaceInfo { name, labels }
    }

    pub fn from_namespace(ns: &Namespace) -> Result<Self, NetpolError> {
        let name =
            ns.metadata.name.clone().ok_or_else(|| {
                NetpolError::InvalidObject("Namespace without metadata.name".into())
            })?;
        Ok(NamespaceInfo::new(
            name,
            ns.metadata.labels.clone().unwrap_or_default(),
        ))
    }
}

/// A port a container declares. Only named ports matter to NetworkPolicy (numeric policy ports
/// apply whether or not a container declares them), but all are kept for reporting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

impl ContainerPort {
    pub fn new(name: Option<&str>, port: u16, protocol: Protocol) -> Self {
        ContainerPort {
            name: name.map(str::to_string),
            port,
            protocol,
        }
    }
}

impl From<&ContainerPort> for meshmove_model::workload::ContainerPort {
    /// The workload model's form, which a Service's named `targetPort` resolves against
    /// ([`meshmove_model::service::TargetPort::resolve`]).
    fn from(p: &ContainerPort) -> Self {
        meshmove_model::workload::ContainerPort { name: p.name.clone(), port: p.port, protocol: p.protocol.as_str().to_string() }
    }
}

/// A pod, or a representative pod of a workload's template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The controlling workload; `None` for a bare pod.
    pub owner: Option<WorkloadRef>,
    pub ports: Vec<ContainerPort>,
    /// Known pod IPs (empty when unknown, e.g. offline manifests). Only used to match `ipBlock`
    /// peers, see the module docs.
    pub ips: Vec<IpAddr>,
    /// Host-network pods use the node's network namespace; NetworkPolicy does not govern them
    /// and the engine leaves them out (see [`super::Engine::out_of_scope_pods`]).
    pub host_network: bool,
    /// Captured by Istio's ambient data plane (ztunnel): TCP between two captured pods travels
    /// as HBONE to port 15008 (see [`crate::hbone`]). Set by whoever knows the pod's namespace
    /// labels ([`crate::view`] decides it with Istio's rule); `false` from the constructors here.
    pub ambient: bool,
    /// Carries an Istio sidecar, which enforces AuthorizationPolicy for it and gives its
    /// outbound connections a mutual-TLS identity ([`crate::authz`]); set like `ambient`.
    pub sidecar: bool,
    /// `spec.serviceAccountName` (`None`: the namespace's `default`): the identity its
    /// meshed connections carry.
    pub service_account: Option<String>,
}

impl PodInfo {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodInfo {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            owner: None,
            ports: Vec::new(),
            ips: Vec::new(),
            host_network: false,
            ambient: false,
            sidecar: false,
            service_account: None,
        }
    }

    pub fn with_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn with_owner(mut self, owner: WorkloadRef) -> Self {
        self.owner = Some(owner);
        self
    }

    pub fn with_port(mut self, name: Option<&str>, port: u16, protocol: Protocol) -> Self {
        self.ports.push(ContainerPort::new(name, port, protocol));
        self
    }

    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip);
        self
    }

    /// Marks the pod as captured (or not) by Istio ambient.
    pub fn with_ambient(mut self, captured: bool) -> Self {
        self.ambient = captured;
        self
    }

    /// Marks the pod as carrying an Istio sidecar (or not).
    pub fn with_sidecar(mut self, sidecar: bool) -> Self {
        self.sidecar = sidecar;
        self
    }

    pub fn with_service_account(mut self, sa: impl Into<String>) -> Self {
        self.service_account = Some(sa.into());
        self
    }

    /// In the mesh: a sidecar or ambient capture.
    pub fn meshed(&self) -> bool {
        self.sidecar || self.ambient
    }

    /// The service account its pods run as.
    pub fn service_account_name(&self) -> &str {
        self.service_account.as_deref().filter(|s| !s.is_empty()).unwrap_or("default")
    }

    /// The workload results are grouped under: the owner, or the pod itself.
    pub fn workload(&self) -> WorkloadRef {
        self.owner
            .clone()
            .unwrap_or_else(|| WorkloadRef::new(WorkloadKind::Pod, &self.namespace, &self.name))
    }

    /// From a live (or manifest) Pod. The owner is the controller owner reference; a
    /// `ReplicaSet` owner whose name is `<name>-<pod-template-hash label>` is reported as the
    /// Deployment `<name>`, which is how the Deployment controller names its ReplicaSets. Pods
    /// created by a CronJob's Job stay grouped under the Job (the Pod does not name the CronJob);
    /// callers that have the Job objects can set [`PodInfo::owner`] themselves.
    pub fn from_pod(pod: &Pod) -> Result<Self, NetpolError> {
        let meta = &pod.metadata;
        let name = meta
            .name
            .clone()
            .ok_or_else(|| NetpolError::InvalidObject("Pod without metadata.name".into()))?;
        let namespace = meta
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let labels = meta.labels.clone().unwrap_or_default();
        let owner = controller_owner(meta, &namespace, &labels);
        let what = format!("Pod {namespace}/{name}");
        let spec = pod.spec.as_ref();
        let ports = match spec {
            Some(s) => spec_ports(s, &what)?,
            None => Vec::new(),
        };
        let mut ips: Vec<IpAddr> = Vec::new();
        if let Some(status) = &pod.status {
            let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
            for ip in status.pod_ip.as_deref().into_iter().chain(listed) {
                let ip: IpAddr = ip.parse().map_err(|_| {
                    NetpolError::InvalidObject(format!("{what}: invalid pod IP {ip:?}"))
                })?;
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        Ok(PodInfo {
            namespace,
            name,
            labels,
            owner,
            ports,
            ips,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            ambient: false,
            sidecar: false,
            service_account: spec.and_then(|s| s.service_account_name.clone()),
        })
    }

    /// A representative pod for a workload's pod template (offline manifests have workloads but
    /// no pods). The pod is named after the owner; it has no IP.
    pub fn from_template(
        namespace: impl Into<String>,
        owner: WorkloadRef,
        template: &PodTemplateSpec,
    ) -> Result<Self, NetpolError> {
        let namespace = namespace.into();
        let what = format!("{owner} pod template");
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let spec = template.spec.as_ref();
        let ports = match spec {
            Some(s) => spec_ports(s, &what)?,
            None => Vec::new(),
        };
        Ok(PodInfo {
            name: owner.name.clone(),
            namespace,
            labels,
            owner: Some(owner),
            ports,
            ips: Vec::new(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            ambient: false,
            sidecar: false,
            service_account: spec.and_then(|s| s.service_account_name.clone()),
        })
    }

    pub fn from_deployment(d: &Deployment) -> Result<Self, NetpolError> {
        let (ns, owner) = owner_of(&d.metadata, WorkloadKind::Deployment)?;
        PodInfo::from_template(ns, owner, &d.spec.template)
    }

    pub fn from_stateful_set(s: &StatefulSet) -> Result<Self, NetpolError> {
        let (ns, owner) = owner_of(&s.metadata, WorkloadKind::StatefulSet)?;
        PodInfo::from_template(ns, owner, &s.spec.template)
    }

    pub fn from_daemon_set(d: &DaemonSet) -> Result<Self, NetpolError> {
        let (ns, owner) = owner_of(&d.metadata, WorkloadKind::DaemonSet)?;
        PodInfo::from_template(ns, owner, &d.spec.template)
    }

    pub fn from_replica_set(r: &ReplicaSet) -> Result<Self, NetpolError> {
        let (ns, owner) = owner_of(&r.metadata, WorkloadKind::ReplicaSet)?;
        let template = r.spec.template.clone().unwrap_or_default();
        PodInfo::from_template(ns, owner, &template)
    }

    pub fn from_job(j: &Job) -> Result<Self, NetpolError> {
        let (ns, owner) = owner_of(&j.metadata, WorkloadKind::Job)?;
        let template = j
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        PodInfo::from_template(ns, owner, &template)
    }

    pub fn from_cron_job(c: &CronJob) -> Result<Self, NetpolError> {
        let (ns, owner) = owner_of(&c.metadata, WorkloadKind::CronJob)?;
        let template = c
            .spec
            .job_template
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        PodInfo::from_template(ns, owner, &template)
    }
}

fn owner_of(meta: &ObjectMeta, kind: WorkloadKind) -> Result<(String, WorkloadRef), NetpolError> {
    let name = meta
        .name
        .clone()
        .ok_or_else(|| NetpolError::InvalidObject(format!("{kind} without metadata.name")))?;
    let ns = meta
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    Ok((
        ns.clone(),
        WorkloadRef {
            kind,
            namespace: ns,
            name,
        },
    ))
}

fn controller_owner(
    meta: &ObjectMeta,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<WorkloadRef> {
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let kind = WorkloadKind::parse(&owner.kind);
    if kind == WorkloadKind::ReplicaSet
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deployment) = owner
            .name
            .strip_suffix(hash.as_str())
            .and_then(|s| s.strip_suffix('-'))
        && !deployment.is_empty()
    {
        return Some(WorkloadRef::new(
            WorkloadKind::Deployment,
            namespace,
            deployment,
        ));
    }
    Some(WorkloadRef::new(kind, namespace, owner.name.clone()))
}

/// Container ports of the regular containers and of native sidecars (init containers with
/// `restartPolicy: Always`, which keep running next to the app containers). Other init
/// containers have exited before the pod serves traffic.
fn spec_ports(spec: &PodSpec, what: &str) -> Result<Vec<ContainerPort>, NetpolError> {
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut out = Vec::new();
    for c in spec.containers.iter().chain(sidecars) {
        out.extend(container_ports(c, what)?);
    }
    Ok(out)
}

fn container_ports(c: &Container, what: &str) -> Result<Vec<ContainerPort>, NetpolError> {
    let mut out = Vec::new();
    for p in c.ports.iter().flatten() {
        let port = u16::try_from(p.container_port)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| {
                NetpolError::InvalidObject(format!(
                    "{what}: container {:?} has invalid containerPort {}",
                    c.name, p.container_port
                ))
            })?;
        let protocol = match p.protocol.as_deref() {
            None => Protocol::Tcp,
            Some(s) => s.parse().map_err(|e| {
                NetpolError::InvalidObject(format!("{what}: container {:?}: {e}", c.name))
            })?,
        };
        out.push(ContainerPort {
            name: p.name.clone(),
            port,
            protocol,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_always_carries_its_name_label() {
        let ns = NamespaceInfo::new("prod", BTreeMap::new());
        assert_eq!(
            ns.labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("prod")
        );
        // A wrong value (hand-written manifest) is corrected, as the API server would.
        let ns = NamespaceInfo::new(
            "prod",
            [(NAMESPACE_NAME_LABEL.to_string(), "other".to_string())].into(),
        );
        assert_eq!(
            ns.labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("prod")
        );
    }

    #[test]
    fn pod_from_api_object_resolves_deployment_owner_ports_and_ips() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "api-7d9f8b-xk2p", "namespace": "shop",
                "labels": {"app": "api", "pod-template-hash": "7d9f8b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8b", "uid": "u", "controller": true}]
            },
            "spec": {
                "containers": [{"name": "c", "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]}],
                "initContainers": [
                    {"name": "proxy", "restartPolicy": "Always", "ports": [{"containerPort": 15001, "name": "proxy"}]},
                    {"name": "migrate", "ports": [{"containerPort": 9999, "name": "gone"}]}
                ]
            },
            "status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        }))
        .unwrap();
        let p = PodInfo::from_pod(&pod).unwrap();
        assert_eq!(
            p.owner,
            Some(WorkloadRef::new(WorkloadKind::Deployment, "shop", "api"))
        );
        assert_eq!(
            p.ports,
            vec![
                ContainerPort::new(Some("http"), 8080, Protocol::Tcp),
                ContainerPort::new(None, 53, Protocol::Udp),
                ContainerPort::new(Some("proxy"), 15001, Protocol::Tcp),
            ]
        );
        assert_eq!(
            p.ips,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bare_pod_and_statefulset_owner() {
        let bare: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "debug"}})).unwrap();
        let p = PodInfo::from_pod(&bare).unwrap();
        assert_eq!(p.namespace, DEFAULT_NAMESPACE);
        assert_eq!(
            p.workload(),
            WorkloadRef::new(WorkloadKind::Pod, "default", "debug")
        );
        let sts: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "db-0", "namespace": "d",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": true}]}}))
        .unwrap();
        assert_eq!(
            PodInfo::from_pod(&sts).unwrap().workload(),
            WorkloadRef::new(WorkloadKind::StatefulSet, "d", "db")
        );
    }

    #[test]
    fn invalid_container_port_protocol_is_an_error() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "tcp"}]}]}}))
        .unwrap();
        assert!(PodInfo::from_pod(&pod).is_err());
    }

    #[test]
    fn template_pod_from_deployment_and_cronjob() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pg", "namespace": "data"},
            "spec": {"selector": {"matchLabels": {"app": "pg"}}, "template": {
                "metadata": {"labels": {"app": "pg"}},
                "spec": {"containers": [{"name": "pg", "ports": [{"containerPort": 5432, "name": "postgres"}]}]}}}
        }))
        .unwrap();
        let p = PodInfo::from_deployment(&d).unwrap();
        assert_eq!(p.namespace, "data");
        assert_eq!(p.labels.get("app").map(String::as_str), Some("pg"));
        assert_eq!(
            p.owner,
            Some(WorkloadRef::new(WorkloadKind::Deployment, "data", "pg"))
        );
        assert_eq!(
            p.ports,
            vec![ContainerPort::new(Some("postgres"), 5432, Protocol::Tcp)]
        );
        let c: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "backup", "namespace": "data"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"job": "backup"}}, "spec": {"containers": [{"name": "b"}]}}}}}
        }))
        .unwrap();
        let p = PodInfo::from_cron_job(&c).unwrap();
        assert_eq!(
            p.workload(),
            WorkloadRef::new(WorkloadKind::CronJob, "data", "backup")
        );
        assert_eq!(p.labels.get("job").map(String::as_str), Some("backup"));
    }

    #[test]
    fn workload_refs_sort_by_namespace_then_name_then_kind() {
        let mut v = [
            WorkloadRef::new(WorkloadKind::Pod, "b", "a"),
            WorkloadRef::new(WorkloadKind::StatefulSet, "a", "z"),
            WorkloadRef::new(WorkloadKind::Deployment, "a", "z"),
        ];
        v.sort();
        assert_eq!(v[0].kind, WorkloadKind::Deployment);
        assert_eq!(v[2].namespace, "b");
        assert_eq!(
            serde_json::to_string(&v[0]).unwrap(),
            r#"{"kind":"Deployment","namespace":"a","name":"z"}"#
        );
    }
}
