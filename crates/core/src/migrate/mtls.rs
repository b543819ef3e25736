//! `mtls strict`: switch the namespace's PeerAuthentication to `STRICT`, only when nothing would
//! break.
//!
//! Under `STRICT` a meshed pod accepts only mutual TLS. Two things then break, and the readiness
//! check looks for both:
//!
//! * a pod of the namespace without the proxy (it cannot speak mTLS itself: with sidecars, a
//!   workload not restarted or opted out; in ambient mode, a pod ztunnel has not captured: one
//!   opted out, or one the CNI node agent has not annotated `ambient.istio.io/redirection:
//!   enabled`);
//! * a client outside the mesh that still talks plaintext to the namespace: a pod of another
//!   namespace that is neither meshed nor in a namespace labelled for the mesh, and that
//!   NetworkPolicy lets reach a pod of this namespace (decided by the exact engine in
//!   [`meshmove_netpol`]; without policies every pod can reach every other). Workloads that have no
//!   pod yet are judged by their template.
//!
//! The control plane and system namespaces (`kube-system`, `kube-public`, `kube-node-lease`,
//! `istio-system`) are not counted as clients.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{PEER_AUTHENTICATION, STEP_MTLS, ambient_captured, has_proxy, namespace_mode, namespace_object};
use meshmove_netpol::view::{self as model, ModelOptions};
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_netpol::{Engine, EngineOptions};
use meshmove_kube::plan::{Change, MANAGED_BY, Plan};
use meshmove_model::workload::pod_owner;

/// Namespaces never counted as plaintext clients.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease", "istio-system"];

/// What would break under `STRICT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Blocker {
    /// A pod of the namespace without the proxy.
    UnmeshedPod { workload: String, pod: String },
    /// An unmeshed workload of another namespace that can reach pods of this one.
    PlaintextClient { client: String, reaches: Vec<String> },
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::UnmeshedPod { workload, pod } => write!(f, "{workload}: pod {pod} has no Istio proxy and could not accept mTLS"),
            Blocker::PlaintextClient { client, reaches } => {
                write!(f, "{client} is outside the mesh and can reach {}: its plaintext requests would be refused", reaches.join(", "))
            }
        }
    }
}

/// The result of the readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub blockers: Vec<Blocker>,
    /// What the check could not see (e.g. policies it could not read).
    pub notes: Vec<String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.blockers.is_empty()
    }
}

fn pod_meshed(inventory: &Inventory, pod: &Value, namespace: &str) -> bool {
    if has_proxy(pod) {
        return true;
    }
    let ambient = namespace_object(inventory, namespace).and_then(namespace_mode).is_some_and(|m| m == "ambient");
    ambient && ambient_captured(pod)
}

/// Check `namespace` for `STRICT`. The inventory should hold Pods, Namespaces, NetworkPolicies
/// and workloads of every namespace (clients live elsewhere).
pub fn readiness(inventory: &Inventory, namespace: &str) -> Readiness {
    let mut r = Readiness::default();
    for pod in inventory.of(&kinds::POD).filter(|p| p.namespace.as_deref() == Some(namespace)) {
        if matches!(pod.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
            continue;
        }
        if !pod_meshed(inventory, &pod.value, namespace) {
            let workload = pod_owner(inventory, pod).map_or_else(|| format!("Pod/{namespace}/{}", pod.name), |o| format!("{}/{namespace}/{}", o.kind, o.name));
            r.blockers.push(Blocker::UnmeshedPod { workload, pod: pod.name.clone() });
        }
    }

    let m = model::build(inventory, ModelOptions::default());
    for u in &m.unreadable_policies {
        r.notes.push(format!("NetworkPolicy {}/{} could not be read ({}); it was left out", u.namespace, u.name, u.message));
    }
    let engine = match Engine::build_lenient(&m.cluster, EngineOptions::default()) {
        Ok((engine, rejected)) => {
            for p in rejected {
                r.notes.push(format!("a NetworkPolicy was left out: {p}"));
            }
            engine
        }
        Err(e) => {
            r.notes.push(format!("reachability not checked: {e}"));
            return r;
        }
    };
    let meshed_ns = |ns: &str| namespace_object(inventory, ns).and_then(namespace_mode).is_some();
    let dsts: Vec<_> = engine.pods().filter(|(_, p)| p.namespace == namespace).map(|(id, p)| (id, p.workload())).collect();
    let mut clients: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (src, info) in engine.pods() {
        if info.namespace == namespace || SYSTEM_NAMESPACES.contains(&info.namespace.as_str()) {
            continue;
        }
        // A live pod is judged by its containers, a template pod by its namespace's labels.
        let meshed = match inventory.get(&kinds::POD, Some(&info.namespace), &info.name) {
            Some(p) => pod_meshed(inventory, &p.value, &info.namespace),
            None => meshed_ns(&info.namespace),
        };
        if meshed {
            continue;
        }
        for (dst, dst_workload) in &dsts {
            if !engine.allowed(src, *dst).is_none() {
                let w = info.workload();
                let key = format!("{}/{}/{}", w.kind.as_str(), w.namespace, w.name);
                let reached = format!("{}/{}", dst_workload.kind.as_str(), dst_workload.name);
                let list = clients.entry(key).or_default();
                if !list.contains(&reached) {
                    list.push(reached);
                }
            }
        }
    }
    for (client, reaches) in clients {
        r.blockers.push(Blocker::PlaintextClient { client, reaches });
    }
    r
}

/// The `mtls strict` plan: the namespace's PeerAuthentication to `STRICT`.
pub fn plan(namespace: &str) -> Plan {
    let mut plan = Plan::new(STEP_MTLS, namespace);
    plan.push(Change::Apply {
        object: json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                       "metadata": {"name": PEER_AUTHENTICATION, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                       "spec": {"mtls": {"mode": "STRICT"}}}),
    });
    plan
}
