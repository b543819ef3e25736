//! `precheck`: is this namespace (or cluster) ready to move onto Istio?
//!
//! Moving a namespace onto the mesh changes every pod in it at once: a restart adds a proxy
//! (sidecar mode) or redirects its traffic through the node's ztunnel (ambient mode). Problems
//! that surface afterwards are expensive: Jobs that never finish, ports that lose their protocol,
//! NetworkPolicies that silently drop the tunnel, nodes that cannot fit the proxies. precheck finds
//! them beforehand, from the same [`Inventory`] whether it was read from a cluster or rendered
//! manifests, and changes nothing.
//!
//! Each check is an [`Analyzer`] value built from [`PrecheckOptions`] (no global state), declaring
//! the kinds it cannot work without (`requires`) so that, say, the capacity check is reported as
//! skipped for rendered charts rather than passing on no data. Which checks run depends on the
//! [`MeshMode`]: ambient has no per-pod proxy, so the Job and capacity checks are sidecar-only.
//!
//! Which namespaces are "being migrated" is decided once, by [`Scope`]: the namespaces named in
//! the options; else the namespace a cluster load was limited to; else every namespace in the
//! inventory except Kubernetes' own and the ones the Istio control plane runs in (a mesh does not
//! migrate itself, and flagging ztunnel for using the host network would be noise).

mod autoscaling;
mod capacity;
pub(crate) use capacity::template_requests;
mod control_plane;
mod disruption;
mod namespaces;
mod netpol;
mod services;
mod sidecar;
mod workloads;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use serde_json::Value;

use meshmove_model::findings::Analyzer;
use meshmove_model::inventory::{Inventory, Object, SourceInfo};

pub use autoscaling::CpuAutoscalers;
pub use capacity::Capacity;
pub use control_plane::{ControlPlane, GATE_KINDS, GATE_KINDS_WIDE, Gate, gate};
pub use disruption::DisruptionBudgets;
pub use namespaces::NamespaceLabels;
pub use netpol::MeshPorts;
pub use services::ServicePorts;
pub use workloads::{HostNetwork, JobCompletion, TelemetryLabels};

/// The data-plane mode a namespace moves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MeshMode {
    /// An `istio-proxy` container injected into every pod.
    #[default]
    Sidecar,
    /// Traffic redirected to the node's ztunnel (HBONE on port 15008); no per-pod proxy.
    Ambient,
}

/// Proxy CPU request assumed per injected pod when neither the pod
/// (`sidecar.istio.io/proxyCPU`) nor the injector's configuration in the input says: Istio's
/// default, `global.proxy.resources.requests.cpu` in istio/istio
/// `manifests/charts/istio-control/istio-discovery/values.yaml` (see [`sidecar`]).
pub const DEFAULT_PROXY_CPU_MILLIS: u64 = 100;
/// Proxy memory request assumed likewise (`sidecar.istio.io/proxyMemory`; Istio's default
/// `global.proxy.resources.requests.memory`, 128Mi).
pub const DEFAULT_PROXY_MEMORY_BYTES: u64 = 128 * 1024 * 1024;

/// What precheck checks and with which assumptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecheckOptions {
    pub mode: MeshMode,
    /// Namespaces being migrated; `None`: see [`Scope`].
    pub namespaces: Option<Vec<String>>,
    /// CPU request of one sidecar, in millicores, when the input has no injector configuration.
    pub proxy_cpu_millis: u64,
    /// Memory request of one sidecar, in bytes, likewise.
    pub proxy_memory_bytes: u64,
    /// Namespaces Prometheus scrapes from (the telemetry-port check looks for rules admitting them).
    pub monitoring_namespaces: Vec<String>,
}

impl Default for PrecheckOptions {
    fn default() -> Self {
        PrecheckOptions {
            mode: MeshMode::Sidecar,
            namespaces: None,
            proxy_cpu_millis: DEFAULT_PROXY_CPU_MILLIS,
            proxy_memory_bytes: DEFAULT_PROXY_MEMORY_BYTES,
            monitoring_namespaces: vec!["monitoring".to_string(), "istio-system".to_string()],
        }
    }
}

/// The precheck analyzers for `options.mode`, each holding a copy of the options.
pub fn analyzers(options: &PrecheckOptions) -> Vec<Box<dyn Analyzer>> {
    let o = || options.clone();
    let mut out: Vec<Box<dyn Analyzer>> = vec![
        Box::new(ControlPlane(o())),
        Box::new(NamespaceLabels(o())),
        Box::new(HostNetwork(o())),
        Box::new(TelemetryLabels(o())),
        Box::new(ServicePorts(o())),
        Box::new(DisruptionBudgets(o())),
        Box::new(MeshPorts(o())),
    ];
    if options.mode == MeshMode::Sidecar {
        out.push(Box::new(JobCompletion(o())));
        out.push(Box::new(Capacity(o())));
        out.push(Box::new(CpuAutoscalers(o())));
    }
    out
}


pub(crate) use meshmove_model::workload::WORKLOAD_KINDS;

/// Kubernetes' own namespaces, never migrated.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease", "istio-system"];

/// The namespaces being migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Exactly these (named in the options, or the one namespace a cluster load listed).
    Only(BTreeSet<String>),
    /// Every namespace except these (system namespaces and the control plane's).
    AllBut(BTreeSet<String>),
}

impl Scope {
    pub fn new(options: &PrecheckOptions, inventory: &Inventory) -> Scope {
        if let Some(list) = &options.namespaces {
            return Scope::Only(list.iter().cloned().collect());
        }
        if let SourceInfo::Cluster { namespace: Some(ns), .. } = &inventory.source {
            return Scope::Only(BTreeSet::from([ns.clone()]));
        }
        let mut excluded: BTreeSet<String> = SYSTEM_NAMESPACES.iter().map(|s| s.to_string()).collect();
        excluded.extend(control_plane::components(inventory).filter_map(|o| o.namespace.clone()));
        Scope::AllBut(excluded)
    }

    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Only(set) => set.contains(namespace),
            Scope::AllBut(set) => !set.contains(namespace),
        }
    }

    fn contains_object(&self, o: &Object) -> bool {
        o.namespace.as_deref().is_some_and(|ns| self.contains(ns))
    }
}

/// How many pods a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replicas {
    Known(u64),
    /// A DaemonSet read from files: one per eligible node, unknown offline.
    Unknown,
    /// Jobs and CronJobs: pods that run to completion.
    Batch,
}

/// One pod template in scope, with the object that owns it.
pub(crate) struct Workload<'a> {
    pub object: &'a Object,
    pub meta: ObjectMeta,
    pub spec: PodSpec,
    pub replicas: Replicas,
}

impl Workload<'_> {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.meta.labels.clone().unwrap_or_default()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.meta.labels.as_ref()?.get(key).map(String::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.meta.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether Istio's injector would leave this template without a sidecar once its namespace
    /// is labelled for injection ([`injector_declines`]): an opt-out label or annotation, the
    /// host network, or a system namespace.
    pub fn opts_out_of_injection(&self) -> bool {
        let ns = self.object.namespace.as_deref().unwrap_or("default");
        let annotations = self.meta.annotations.clone().unwrap_or_default();
        injector_declines(ns, self.labels(), annotations, self.host_network())
    }

    pub fn host_network(&self) -> bool {
        self.spec.host_network == Some(true)
    }

    /// The container ports of its main containers ([`meshmove_model::workload::Workload::ports`]).
    pub fn ports(&self) -> Vec<meshmove_model::workload::ContainerPort> {
        meshmove_model::workload::Workload::of(self.object).map(|w| w.ports()).unwrap_or_default()
    }

    /// `Kind/namespace/name` of the owning object.
    pub fn display(&self) -> String {
        self.object.object_ref().to_string()
    }
}

fn deserialize<T: for<'de> Deserialize<'de>>(v: Option<&Value>) -> Option<T> {
    T::deserialize(v?).ok()
}

fn count(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

/// The typed pod template of a top-level workload ([`meshmove_model::workload`] decides what a
/// workload is and where its template lives); `None` for a finished bare Pod (history, not a
/// workload that will restart into the mesh) and for a template that cannot be read (the
/// loader's own validation reports those).
fn typed(view: meshmove_model::workload::Workload<'_>) -> Option<Workload<'_>> {
    let o = view.object;
    let v = &o.value;
    let replicas = match o.kind.as_str() {
        "Deployment" | "StatefulSet" | "ReplicaSet" => Replicas::Known(count(v.pointer("/spec/replicas")).unwrap_or(1)),
        "DaemonSet" => count(v.pointer("/status/desiredNumberScheduled")).map_or(Replicas::Unknown, Replicas::Known),
        "Job" | "CronJob" => Replicas::Batch,
        _ => {
            if matches!(v.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
                return None;
            }
            Replicas::Known(1)
        }
    };
    let meta = deserialize(view.template.get("metadata")).unwrap_or_default();
    let spec = deserialize(view.template.get("spec"))?;
    Some(Workload { object: o, meta, spec, replicas })
}

/// Every top-level workload in scope, typed, in kind-table order then load order.
pub(crate) fn workloads<'a>(inventory: &'a Inventory, scope: &Scope) -> Vec<Workload<'a>> {
    meshmove_model::workload::workloads(inventory).into_iter().filter(|w| scope.contains_object(w.object)).filter_map(typed).collect()
}

/// A LabelSelector as a matcher ([`meshmove_model::selector`]); `None` when the API server would
/// reject it (an unknown operator, `In` without values).
pub(crate) fn selector(ls: &LabelSelector) -> Option<meshmove_model::selector::LabelSelector> {
    meshmove_model::selector::LabelSelector::from_typed(ls).ok()
}

/// Whether a set selector (`None`: selects nothing) matches labels.
pub(crate) fn selects(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    sel.and_then(selector).is_some_and(|s| s.matches(labels))
}

/// Whether Istio's injector would leave a pod of `namespace` without a sidecar even once the
/// namespace is labelled for injection: [`meshmove_istio::injection`] with the namespace labelled
/// `istio-injection=enabled` and its revision served, so only the pod's own choices count (the
/// `sidecar.istio.io/inject` label, else the legacy annotation, read as the injector reads them:
/// anything but empty or `y`/`yes`/`true`/`on` opts out), the host network, and the namespaces
/// the injector ignores.
pub(crate) fn injector_declines(
    namespace: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    host_network: bool,
) -> bool {
    let pod = meshmove_istio::Pod {
        namespace: namespace.to_string(),
        namespace_labels: [(meshmove_istio::injection::INJECTION_LABEL.to_string(), "enabled".to_string())].into(),
        labels,
        annotations,
        host_network,
    };
    let served = meshmove_istio::Served {
        revisions: ["default".to_string()].into(),
        tags: BTreeMap::new(),
        default_revision: Some("default".to_string()),
    };
    !matches!(meshmove_istio::injection(&pod, &served), meshmove_istio::Injection::Injected { .. })
}

/// `a, b and c`.
pub(crate) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests;
