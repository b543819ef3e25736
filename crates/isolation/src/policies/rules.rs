//! The pieces generated NetworkPolicies are made of: peers (a workload's own selector, namespaces
//! by name), the target ports of the Services in front of a workload, and an Ingress's backends
//! (which routes reach which Service is [`super::gateways`]'s).

use std::collections::BTreeMap;

use meshmove_model::inventory::{Inventory, Object, kinds};
use meshmove_model::workload::{Workload, string_map};
use serde_json::{Value, json};

/// A target port: a number or a named container port, as a Service writes it and a
/// NetworkPolicy rule may name it (the one reading: [`meshmove_model::service`]).
pub use meshmove_model::service::TargetPort as Port;

/// The NetworkPolicy port entry for a target port, TCP.
pub fn port_rule(port: &Port) -> Value {
    json!({"protocol": "TCP", "port": port.to_value()})
}

/// A peer: the pods of `w`, with a namespace selector when they live outside `namespace` (a
/// peer's `podSelector` alone looks only in the policy's own namespace).
pub fn workload_peer(w: &Workload<'_>, namespace: &str) -> Value {
    let mut peer = serde_json::Map::new();
    if w.namespace() != namespace {
        peer.insert("namespaceSelector".into(), namespaces_selector(&[w.namespace().to_string()]));
    }
    peer.insert("podSelector".into(), pod_selector(w));
    Value::Object(peer)
}

/// The selector of a workload's own pods: its `spec.selector` where it has one, else its pod
/// template labels.
pub fn pod_selector(w: &Workload<'_>) -> Value {
    let sel = w.object.value.pointer("/spec/selector");
    match (w.kind(), sel) {
        ("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet", Some(sel)) if sel.is_object() => sel.clone(),
        _ => json!({"matchLabels": w.pod_labels()}),
    }
}

pub fn namespaces_selector(names: &[String]) -> Value {
    if let [one] = names {
        return json!({"matchLabels": {"kubernetes.io/metadata.name": one}});
    }
    json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": names}]})
}

/// The Services of an inventory with their selectors, read once. A Service without a selector
/// selects nothing (as in [`crate::discover::service_selects`]).
pub struct ServiceIndex<'a> {
    services: Vec<(&'a Object, BTreeMap<String, String>)>,
}

impl<'a> ServiceIndex<'a> {
    pub fn new(inventory: &'a Inventory) -> Self {
        let services = inventory
            .of(&kinds::SERVICE)
            .map(|s| (s, string_map(s.value.pointer("/spec/selector"))))
            .filter(|(_, selector)| !selector.is_empty())
            .collect();
        ServiceIndex { services }
    }

    /// The Services in the workload's namespace whose selector matches its pod labels
    /// ([`meshmove_model::selector::service_selects`]).
    pub fn selecting(&self, w: &Workload<'_>) -> Vec<&'a Object> {
        let labels = w.pod_labels();
        self.services
            .iter()
            .filter(|(s, _)| s.namespace == w.object.namespace && meshmove_model::selector::service_selects(&s.value, &labels))
            .map(|(s, _)| *s)
            .collect()
    }
}

/// Target ports of a Service (the pod ports a NetworkPolicy must name), TCP only, unresolved:
/// a rule naming the port admits it in every pod whatever its number
/// ([`meshmove_model::service::service_ports`]).
pub fn target_ports(service: &Object) -> Vec<Port> {
    meshmove_model::service::service_ports(&service.value).into_iter().filter(|p| p.is_tcp()).map(|p| p.target).collect()
}

/// The Services an Ingress sends to, `(namespace, name)`: its default backend and every path's.
pub fn ingress_backends(ing: &Object) -> impl Iterator<Item = (String, String)> + '_ {
    let ns = ing.namespace.clone().unwrap_or_default();
    let rules = ing.value.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten();
    ing.value
        .pointer("/spec/defaultBackend")
        .into_iter()
        .chain(rules.flat_map(|r| r.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten().filter_map(|p| p.get("backend"))))
        .filter_map(move |b| Some((ns.clone(), b.pointer("/service/name")?.as_str()?.to_string())))
}
