//! Which ambient callers `ns complete` would break: of the pods the split does not move
//! ([`super::callers`]: ztunnel carries them, and ztunnel applies no VirtualService), those that
//! can open a connection to the legacy pods `complete` scales down, on the ports the legacy
//! Services send to, as the exact NetworkPolicy engine ([`meshmove_netpol`]: NetworkPolicies,
//! the admin policy tiers, ambient's HBONE, Istio's L4 AuthorizationPolicies) judges it on the
//! input; and among them, those the input shows naming a legacy Service (the generator's caller
//! analysis, [`meshmove_isolation::policies::service_uses`]). An ambient pod that no policy lets
//! through loses nothing when the legacy pods go: it could not reach them before.
//!
//! Who counts as an ambient caller is [`super::callers`]'s rule for live pods (captured now, by
//! the CNI node agent's annotation, or by the enablement rule), never a pod with a sidecar (its
//! Envoy applies the split); a workload without live pods (scaled to zero, a CronJob between
//! runs) counts by the data plane its template will join ([`meshmove_netpol::view`]).

use std::collections::{BTreeMap, BTreeSet};

use meshmove_model::inventory::{Inventory, kinds};
use meshmove_netpol::view::{self, ModelOptions};
use meshmove_netpol::{Engine, EngineOptions, PodId, Protocol};
use serde::Serialize;
use serde_json::Value;

use super::Sides;
use crate::inplace::peer_auth::service_target_ports;
use crate::inplace::{ambient_candidate, ambient_captured, has_proxy};

/// An ambient workload that can reach the legacy pods `complete` retires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbientCaller {
    pub namespace: String,
    /// `Deployment/web` (a bare pod: `Pod/<name>`).
    pub workload: String,
    /// The legacy Services it can reach that the input shows it naming, with where
    /// (`api (env API_URL)`); empty when the input shows none.
    pub names: Vec<String>,
    /// What it can reach: `Service api TCP 8080 (Deployment/api)`.
    pub reaches: Vec<String>,
}

impl AmbientCaller {
    /// Whether the input shows it calling a legacy Service (rather than only able to).
    pub fn seen_calling(&self) -> bool {
        !self.names.is_empty()
    }
}

/// The ambient workloads outside the mesh namespace, judged against the retiring legacy pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbientReach {
    /// Those that can reach them, the ones seen calling first.
    pub callers: Vec<AmbientCaller>,
    /// Those that can reach none of them (`front/Deployment/batch`).
    pub unreached: Vec<String>,
}

/// Why the engine cannot judge who reaches the legacy pods: then nothing is shown safe.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    /// A NetworkPolicy the view cannot read.
    #[error("NetworkPolicy {namespace}/{name} cannot be read ({message}), so which pods reach the legacy ones cannot be told")]
    UnreadablePolicy { namespace: String, name: String, message: String },
    /// The engine cannot model the cluster at all.
    #[error("the NetworkPolicy engine cannot model the cluster ({0})")]
    Model(#[source] meshmove_netpol::NetpolError),
    /// A policy the engine cannot compile.
    #[error("{0}: the NetworkPolicy engine cannot compile it, so which pods reach the legacy ones cannot be told")]
    Uncompilable(meshmove_netpol::PolicyError),
}

/// Judge every ambient workload of `inventory` outside the mesh namespace against the legacy
/// workloads `retired` (`(kind, name)` in the legacy namespace). The inventory holds the engine's
/// kinds in every namespace (workloads, Pods, Namespaces, NetworkPolicies, admin policies, Istio's
/// L4 policies), the legacy Services, and the Secrets and ConfigMaps the workloads read. `Err`
/// when the engine cannot judge the input (a policy it cannot read or compile): then nothing is
/// shown safe.
pub fn ambient_reach(
    sides: &Sides,
    inventory: &Inventory,
    retired: &[(String, String)],
) -> Result<AmbientReach, ReachError> {
    let model = view::build(inventory, ModelOptions { probes: false });
    if let Some(p) = model.unreadable_policies.first() {
        return Err(ReachError::UnreadablePolicy {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            message: p.message.clone(),
        });
    }
    let (engine, rejected) = Engine::build_lenient(&model.cluster, EngineOptions::default())
        .map_err(ReachError::Model)?;
    if let Some(e) = rejected.first() {
        return Err(ReachError::Uncompilable(e.clone()));
    }
    let namespace_labels: BTreeMap<&str, meshmove_istio::Labels> = inventory
        .of(&kinds::NAMESPACE)
        .map(|n| {
            (
                n.name.as_str(),
                meshmove_model::workload::string_map(n.value.pointer("/metadata/labels")),
            )
        })
        .collect();
    let none = meshmove_istio::Labels::new();
    let live: std::collections::HashMap<(&str, &str), &meshmove_model::inventory::Object> =
        inventory
            .of(&kinds::POD)
            .map(|p| {
                (
                    (p.namespace.as_deref().unwrap_or_default(), p.name.as_str()),
                    p,
                )
            })
            .collect();
    let is_retired = |id: PodId| {
        let p = engine.pod(id);
        let w = p.workload();
        p.namespace == sides.legacy
            && retired
                .iter()
                .any(|(k, n)| k == w.kind.as_str() && *n == w.name)
    };
    // A live pod by the callers' rule and never with a sidecar; a template by its data plane.
    let is_ambient_caller = |id: PodId| {
        let p = engine.pod(id);
        if p.namespace == sides.mesh || is_retired(id) {
            return false;
        }
        match live.get(&(p.namespace.as_str(), p.name.as_str())) {
            Some(pod) => {
                let labels = namespace_labels.get(p.namespace.as_str()).unwrap_or(&none);
                !has_proxy(&pod.value)
                    && (ambient_captured(&pod.value)
                        || ambient_candidate(&p.namespace, labels, &pod.value))
            }
            None => p.ambient && !p.sidecar,
        }
    };
    let services: Vec<(&str, &Value)> = inventory
        .of(&kinds::SERVICE)
        .filter(|s| s.namespace.as_deref() == Some(sides.legacy.as_str()))
        .map(|s| (s.name.as_str(), &s.value))
        .collect();
    // Each retiring pod with the (Service, port) pairs that send to it.
    let targets: Vec<(PodId, String, Vec<(&str, u16)>)> = engine
        .pods()
        .filter(|(id, _)| is_retired(*id))
        .map(|(id, p)| {
            let w = p.workload();
            let ports = services
                .iter()
                .flat_map(|(name, svc)| {
                    service_target_ports(p, svc)
                        .into_iter()
                        .map(move |port| (*name, port))
                })
                .collect();
            (id, format!("{}/{}", w.kind.as_str(), w.name), ports)
        })
        .collect();
    let uses = meshmove_isolation::policies::service_uses(inventory);
    // Per ambient workload: what it reaches, and whether any of its pods reached nothing.
    let mut reach: BTreeMap<(String, String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for (src, info) in engine.pods().filter(|(id, _)| is_ambient_caller(*id)) {
        let w = info.workload();
        let entry = reach
            .entry((
                w.namespace.clone(),
                w.kind.as_str().to_string(),
                w.name.clone(),
            ))
            .or_default();
        for (dst, owner, ports) in &targets {
            let conn = engine.allowed(src, *dst);
            for (svc, port) in ports
                .iter()
                .filter(|(_, port)| conn.allows(Protocol::Tcp, *port))
            {
                entry.insert((
                    svc.to_string(),
                    format!("Service {svc} TCP {port} ({owner})"),
                ));
            }
        }
    }
    let mut out = AmbientReach::default();
    for ((namespace, kind, name), reached) in reach {
        let workload = format!("{kind}/{name}");
        if reached.is_empty() {
            out.unreached.push(format!("{namespace}/{workload}"));
            continue;
        }
        let reached_services: BTreeSet<&str> = reached.iter().map(|(s, _)| s.as_str()).collect();
        let names: Vec<String> = uses
            .iter()
            .filter(|u| {
                u.client.kind == kind
                    && u.client.name == name
                    && u.client.namespace.as_deref() == Some(namespace.as_str())
            })
            .filter(|u| {
                u.namespace == sides.legacy && reached_services.contains(u.service.as_str())
            })
            .map(|u| format!("{} ({})", u.service, u.via))
            .collect();
        out.callers.push(AmbientCaller {
            namespace,
            workload,
            names,
            reaches: reached.into_iter().map(|(_, r)| r).collect(),
        });
    }
    out.callers.sort_by_key(|c| !c.seen_calling());
    Ok(out)
}

/// The callers in one line each: `front/Deployment/web names api (env API_URL); reaches Service
/// api TCP 8080 (Deployment/api)`.
pub fn lines(callers: &[AmbientCaller]) -> Vec<String> {
    callers
        .iter()
        .map(|c| {
            let what = if c.seen_calling() {
                format!("seen calling: names {}", c.names.join(", "))
            } else {
                "can reach (the input shows it naming no legacy Service)".to_string()
            };
            format!(
                "{}/{}: {what}; reaches {}",
                c.namespace,
                c.workload,
                c.reaches.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "ambient_reach_tests.rs"]
mod tests;
