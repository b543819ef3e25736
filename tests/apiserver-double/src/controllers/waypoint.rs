//! istiod's part in ambient waypoints, as far as the product reads it: the status of a
//! Gateway of class `istio-waypoint`.
//!
//! * A Gateway nobody has processed carries the Gateway API CRD's default status: conditions
//!   `Accepted` and `Programmed`, both `Unknown`, reason `Pending`, message
//!   `Waiting for controller` (the `status.default` of the standard-channel Gateway CRD,
//!   <https://gateway-api.sigs.k8s.io/reference/spec/#gatewaystatus>).
//! * istiod takes it when the `istio-waypoint` GatewayClass exists (it creates the class itself
//!   with ambient enabled) and an istiod Deployment (`app=istiod` in `istio-system`) has a ready
//!   pod. It deploys the waypoint and, once that runs, sets `Accepted` and `Programmed` to `True`
//!   (reasons `Accepted` and `Programmed`, observed at the Gateway's generation) and
//!   `status.addresses` to the waypoint Service's host name, which is what makes it a waypoint
//!   for the Services bound to it (istio/istio
//!   `pilot/pkg/serviceregistry/kube/controller/ambient/waypoints.go`: no address, no
//!   waypoint). The double does not run the waypoint's Deployment: the status is set at once.
//!   Without a class or a ready istiod the default status stays, as on a cluster where no
//!   controller serves the class.

use super::{Key, State, live, put_status, rt};
use crate::util::{get_path, get_str};
use serde_json::{Map, Value, json};

pub(super) const GROUP: &str = "gateway.networking.k8s.io";
const CLASS: &str = "istio-waypoint";

/// Whether istiod can program waypoints now (see the module docs).
fn istiod_serves_waypoints(state: &State) -> bool {
    let class = Key {
        group: GROUP.into(),
        resource: "gatewayclasses".into(),
        namespace: String::new(),
        name: CLASS.into(),
    };
    if live(state, &class).is_none() {
        return false;
    }
    state.objects.iter().any(|(k, s)| {
        k.group == "apps"
            && k.resource == "deployments"
            && k.namespace == "istio-system"
            && get_str(&s.obj, &["metadata", "labels", "app"]) == Some("istiod")
            && get_path(&s.obj, &["status", "readyReplicas"])
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0
    })
}

fn condition(
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) -> Value {
    let mut c = json!({"type": ty, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
    if let Some(g) = generation {
        c["observedGeneration"] = json!(g);
    }
    c
}

/// Set the status of every waypoint Gateway (all of them: a class or istiod appearing changes
/// them all).
pub(super) fn reconcile_waypoints(state: &mut State) {
    if rt(state, GROUP, "gateways").is_none() {
        return;
    }
    let serves = istiod_serves_waypoints(state);
    let gateways: Vec<(Key, std::sync::Arc<Value>)> = state
        .objects
        .iter()
        .filter(|(k, s)| {
            k.group == GROUP
                && k.resource == "gateways"
                && get_str(&s.obj, &["spec", "gatewayClassName"]) == Some(CLASS)
                && get_path(&s.obj, &["metadata", "deletionTimestamp"]).is_none()
        })
        .map(|(k, s)| (k.clone(), s.obj.clone()))
        .collect();
    let now = crate::util::now_rfc3339();
    for (key, gw) in gateways {
        let mut status = Map::new();
        if serves {
            let generation = get_path(&gw, &["metadata", "generation"]).and_then(Value::as_i64);
            let host = format!("{}.{}.svc.cluster.local", key.name, key.namespace);
            status.insert(
                "addresses".into(),
                json!([{"type": "Hostname", "value": host}]),
            );
            status.insert(
                "conditions".into(),
                json!([
                    condition(
                        "Accepted",
                        "True",
                        "Accepted",
                        "Resource accepted",
                        generation,
                        &now
                    ),
                    condition(
                        "Programmed",
                        "True",
                        "Programmed",
                        &format!("Resource programmed, assigned to service(s) {host}:15008"),
                        generation,
                        &now
                    ),
                ]),
            );
        } else if get_path(&gw, &["status", "conditions"]).is_some() {
            // Nothing serves it: whatever status it has stays.
            continue;
        } else {
            let epoch = "1970-01-01T00:00:00Z";
            status.insert(
                "conditions".into(),
                json!([
                    condition(
                        "Accepted",
                        "Unknown",
                        "Pending",
                        "Waiting for controller",
                        None,
                        epoch
                    ),
                    condition(
                        "Programmed",
                        "Unknown",
                        "Pending",
                        "Waiting for controller",
                        None,
                        epoch
                    ),
                ]),
            );
        }
        put_status(state, GROUP, "gateways", &gw, status);
    }
}

#[cfg(test)]
mod tests {
    use crate::{BlockingDouble, Double, DoubleOptions, crds};
    use serde_json::{Value, json};

    fn waypoint(ns: &str) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "waypoint", "namespace": ns},
            "spec": {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}})
    }

    fn programmed(d: &BlockingDouble, ns: &str) -> Value {
        let gw = d
            .get(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                Some(ns),
                "waypoint",
            )
            .unwrap();
        gw["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Programmed")
            .cloned()
            .unwrap()
    }

    #[test]
    fn a_waypoint_is_programmed_once_istiod_and_its_class_exist() {
        let d = Double::spawn_blocking_runtime(DoubleOptions::default()).unwrap();
        d.install_crds(crds::gateway_api()).unwrap();
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
            .unwrap();
        d.create(waypoint("shop")).unwrap();
        // No controller: the CRD's default status.
        let p = programmed(&d, "shop");
        assert_eq!(
            (p["status"].as_str(), p["reason"].as_str()),
            (Some("Unknown"), Some("Pending"))
        );
        d.create(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "istio-waypoint"},
            "spec": {"controllerName": "istio.io/mesh-controller"}}))
            .unwrap();
        assert_eq!(
            programmed(&d, "shop")["status"],
            "Unknown",
            "a class without istiod programs nothing"
        );
        d.create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        )
        .unwrap();
        d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod"}}, "template": {"metadata": {"labels": {"app": "istiod"}},
                "spec": {"containers": [{"name": "discovery", "image": "istio/pilot"}]}}}}))
            .unwrap();
        let p = programmed(&d, "shop");
        assert_eq!(
            (p["status"].as_str(), p["reason"].as_str()),
            (Some("True"), Some("Programmed"))
        );
        let gw = d
            .get(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                Some("shop"),
                "waypoint",
            )
            .unwrap();
        assert_eq!(p["observedGeneration"], gw["metadata"]["generation"]);
        assert_eq!(
            gw["status"]["addresses"][0]["value"],
            "waypoint.shop.svc.cluster.local"
        );
    }
}
