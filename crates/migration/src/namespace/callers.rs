//! The callers a weighted split does not move: pods whose traffic ztunnel carries (ambient).
//!
//! The split lives in VirtualServices ([`super::routing`], [`super::external`]), and Istio
//! applies a VirtualService only where an Envoy routes the request: the caller's sidecar, an
//! Istio gateway, or a waypoint that serves the destination Service. A pod captured by ztunnel
//! has no Envoy of its own: ztunnel works at L4 and hands a connection to a waypoint only when
//! the destination Service (or its namespace) is bound to one with `istio.io/use-waypoint`
//! (<https://istio.io/latest/docs/ambient/usage/waypoint/>, "Use a waypoint proxy"; istiod
//! resolves the binding in istio/istio
//! `pilot/pkg/serviceregistry/kube/controller/ambient/waypoints.go`, `fetchWaypointForTarget`).
//! The legacy Services are bound to no waypoint, so an ambient caller of `<svc>.<ns>` reaches
//! the legacy pods at every weight.
//!
//! Why the tool does not bind the legacy Services to the mesh namespace's waypoint to split
//! there: a waypoint routes by Gateway API `HTTPRoute` (with the Service as `parentRef`);
//! "VirtualService support with waypoints is Alpha", and "Mixing VirtualService and HTTPRoute
//! for the same workload is not supported and leads to undefined behavior"
//! (<https://istio.io/latest/docs/ambient/migrate/migrate-policies/>; the feature table of
//! Istio's "Ambient APIs" page lists VirtualService as Alpha, HTTPRoute as GA). The split must
//! stay in VirtualServices for sidecar callers and Istio gateways, which never hand requests to
//! a waypoint on their own (only gateways labelled `istio.io/ingress-use-waypoint` do: istio/istio
//! `pilot/pkg/serviceregistry/kube/controller/ambient/sidecar_interop.go`), so a weighted
//! HTTPRoute for the same Services at a waypoint would be exactly that unsupported mix. Instead
//! the tool names the ambient callers wherever it splits or retires (`create`, `shift`
//! warn; `complete` refuses while any of them can reach the legacy pods it retires,
//! [`super::ambient_reach`], without `--ignore-ambient-callers`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Sides;
use crate::inplace::{ambient_candidate, ambient_captured};

/// Pods of one namespace whose traffic ztunnel carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbientCallers {
    pub namespace: String,
    pub pods: usize,
    /// Their controllers (`Deployment/api`), or the pods' own names when they have none.
    pub workloads: Vec<String>,
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// The workload a pod belongs to: its controller, a ReplicaSet told as its Deployment (the
/// ReplicaSet is named `<deployment>-<pod-template-hash>`).
fn owner(pod: &Value) -> String {
    let refs = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(c) = refs
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    else {
        return format!("Pod/{}", str_at(pod, "/metadata/name").unwrap_or_default());
    };
    let (kind, name) = (
        str_at(c, "/kind").unwrap_or_default(),
        str_at(c, "/name").unwrap_or_default(),
    );
    if kind == "ReplicaSet"
        && let Some(hash) = str_at(pod, "/metadata/labels/pod-template-hash")
        && let Some(deployment) = name.strip_suffix(&format!("-{hash}"))
    {
        return format!("Deployment/{deployment}");
    }
    format!("{kind}/{name}")
}

/// The pods among `pods` (of every namespace; `namespaces` their Namespace objects) that ztunnel
/// carries, now (the CNI node agent's annotation) or by the enablement rule, outside the mesh
/// namespace (whose copies call the mesh side by name), by namespace.
pub fn ambient_callers(sides: &Sides, namespaces: &[Value], pods: &[Value]) -> Vec<AmbientCallers> {
    let labels: BTreeMap<&str, meshmove_istio::Labels> = namespaces
        .iter()
        .filter_map(|n| {
            let name = str_at(n, "/metadata/name")?;
            let l = n
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            Some((name, l))
        })
        .collect();
    let mut by_ns: BTreeMap<String, AmbientCallers> = BTreeMap::new();
    let none = meshmove_istio::Labels::new();
    for pod in pods {
        let ns = str_at(pod, "/metadata/namespace").unwrap_or_default();
        if ns == sides.mesh {
            continue;
        }
        if !(ambient_captured(pod) || ambient_candidate(ns, labels.get(ns).unwrap_or(&none), pod)) {
            continue;
        }
        let entry = by_ns
            .entry(ns.to_string())
            .or_insert_with(|| AmbientCallers {
                namespace: ns.to_string(),
                pods: 0,
                workloads: Vec::new(),
            });
        entry.pods += 1;
        let w = owner(pod);
        if !entry.workloads.contains(&w) {
            entry.workloads.push(w);
        }
    }
    by_ns.into_values().collect()
}

/// The callers in one line: `shop (2 pods: Deployment/web)`, at most three workloads each.
pub fn list(callers: &[AmbientCallers]) -> String {
    callers
        .iter()
        .map(|c| {
            let mut w: Vec<String> = c.workloads.iter().take(3).cloned().collect();
            if c.workloads.len() > 3 {
                w.push(format!("{} more", c.workloads.len() - 3));
            }
            format!(
                "{} ({} pod{}: {})",
                c.namespace,
                c.pods,
                if c.pods == 1 { "" } else { "s" },
                w.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the weights do not do for them, for `create` and `shift`.
pub fn warning(sides: &Sides, callers: &[AmbientCallers]) -> String {
    let pods: usize = callers.iter().map(|c| c.pods).sum();
    format!(
        "{pods} pod(s) captured by ztunnel (ambient) may call the legacy Services: {}. The weights do not move their requests: Istio applies the splitting VirtualServices at sidecars, Istio gateways and waypoints only, ztunnel routes at L4, and the legacy Services in {legacy} are bound to no waypoint, so these callers reach the legacy pods at every weight (and fail once `ns complete` scales them down). The split applies to callers with a sidecar and to the Istio ingress gateway; point the ambient ones at the mesh side (`<service>.{mesh}.svc.cluster.local`) before completing",
        list(callers),
        legacy = sides.legacy,
        mesh = sides.mesh,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        ns: &str,
        name: &str,
        labels: Value,
        annotations: Value,
        owner: Option<(&str, &str)>,
    ) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}});
        if let Some((kind, n)) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": n, "controller": true, "uid": "u"}]);
        }
        p
    }

    fn ns(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    }

    #[test]
    fn ambient_pods_outside_the_mesh_namespace_are_callers_the_split_misses() {
        let sides = Sides::new("shop").unwrap();
        let namespaces = vec![
            ns("shop", json!({})),
            ns("shop-mesh", json!({"istio.io/dataplane-mode": "ambient"})),
            ns("front", json!({"istio.io/dataplane-mode": "ambient"})),
            ns("batch", json!({})),
            ns("sidecars", json!({"istio-injection": "enabled"})),
        ];
        let pods = vec![
            // Enrolled by its namespace (the agent has not annotated it yet).
            pod(
                "front",
                "web-7d9f-abcde",
                json!({"pod-template-hash": "7d9f"}),
                json!({}),
                Some(("ReplicaSet", "web-7d9f")),
            ),
            pod(
                "front",
                "web-7d9f-fghij",
                json!({"pod-template-hash": "7d9f"}),
                json!({}),
                Some(("ReplicaSet", "web-7d9f")),
            ),
            // Opted out of its ambient namespace.
            pod(
                "front",
                "legacy",
                json!({"istio.io/dataplane-mode": "none"}),
                json!({}),
                None,
            ),
            // Captured by the agent (its annotation), in a namespace not labelled.
            pod(
                "batch",
                "worker-0",
                json!({}),
                json!({"ambient.istio.io/redirection": "enabled"}),
                Some(("StatefulSet", "worker")),
            ),
            // A sidecar pod: its Envoy applies the split.
            pod(
                "sidecars",
                "client",
                json!({}),
                json!({"sidecar.istio.io/status": "{}"}),
                None,
            ),
            // The copies in the mesh namespace call the mesh side by name.
            pod(
                "shop-mesh",
                "api-1",
                json!({}),
                json!({"ambient.istio.io/redirection": "enabled"}),
                None,
            ),
            // Outside the mesh altogether: not ambient (the README's callers outside the mesh).
            pod("shop", "api-0", json!({}), json!({}), None),
        ];
        let callers = ambient_callers(&sides, &namespaces, &pods);
        assert_eq!(
            callers,
            vec![
                AmbientCallers {
                    namespace: "batch".into(),
                    pods: 1,
                    workloads: vec!["StatefulSet/worker".into()]
                },
                AmbientCallers {
                    namespace: "front".into(),
                    pods: 2,
                    workloads: vec!["Deployment/web".into()]
                },
            ]
        );
        assert_eq!(
            list(&callers),
            "batch (1 pod: StatefulSet/worker); front (2 pods: Deployment/web)"
        );
        let w = warning(&sides, &callers);
        assert!(
            w.starts_with("3 pod(s) captured by ztunnel (ambient)")
                && w.contains("`<service>.shop-mesh.svc.cluster.local`"),
            "{w}"
        );
    }
}
