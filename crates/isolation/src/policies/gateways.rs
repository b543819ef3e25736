//! Where the traffic of an exposed Service comes from: the gateway its route is attached to.
//!
//! * An `HTTPRoute` names its Gateways in `spec.parentRefs` (kind `Gateway` of group
//!   `gateway.networking.k8s.io` by default, in the route's namespace unless one is given:
//!   <https://gateway-api.sigs.k8s.io/reference/spec/#parentreference>). Istio deploys a
//!   Gateway's proxy as a Deployment in the Gateway's namespace whose pods carry
//!   `gateway.networking.k8s.io/gateway-name: <gateway>`
//!   (<https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/>, "Automated
//!   Deployment"; the label: <https://istio.io/latest/docs/reference/config/labels/>).
//! * A `VirtualService` names Istio `Gateway`s in `spec.gateways` (`<namespace>/<name>`, or a name
//!   in its own namespace; `mesh` is the sidecars, not a gateway; none at all means `mesh`:
//!   <https://istio.io/latest/docs/reference/config/networking/virtual-service/#VirtualService>).
//!   An Istio `Gateway` runs on the pods its `spec.selector` matches, in any namespace unless
//!   istiod scopes it to its own
//!   (<https://istio.io/latest/docs/reference/config/networking/gateway/#Gateway>).
//! * An `Ingress` is served by a controller the input does not show: the configured ingress
//!   namespaces.
//!
//! The generator admits the gateway's pods when the input shows them, else the gateway's
//! namespace with the configured ingress namespaces; a route whose Gateway the input does not
//! hold, outside the configured ingress namespaces, leaves its backends open (see
//! [`Entry::Unlocated`]).

use std::collections::BTreeMap;

use meshmove_istio::waypoint::GATEWAY_NAME_LABEL;
use meshmove_model::inventory::{Inventory, Object, kinds};
use meshmove_model::workload::{Workload, string_map};
use meshmove_model::selector::LabelSelector;
use serde_json::{Value, json};

use super::rules::ingress_backends;

/// Where an exposed Service's traffic comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Entry {
    /// The configured ingress namespaces (an Ingress's controller, a route without a gateway
    /// the input can place).
    Controllers,
    /// The gateway's pods: a workload of the run.
    Pods(usize),
    /// The pods Istio deploys for a Gateway of class `istio` the input holds but whose pods it
    /// does not show: labelled `gateway.networking.k8s.io/gateway-name: <name>`, in the
    /// Gateway's namespace.
    Labelled { namespace: String, name: String },
    /// The gateway's namespace, whose pods the input does not show; the configured ingress
    /// namespaces are admitted with it.
    Namespace(String),
    /// A Gateway the input does not hold, in a namespace that is no configured ingress
    /// namespace: `Gateway/<ns>/<name>`.
    Unlocated { gateway: String, namespace: String },
}

/// One route into a Service.
#[derive(Debug, Clone)]
pub(super) struct Exposure {
    /// The route, `Kind/namespace/name`.
    pub via: String,
    pub entry: Entry,
}

fn ns_of(o: &Object) -> String {
    o.namespace.clone().unwrap_or_default()
}

/// Every route into a Service of the input, by the Service's `(namespace, name)`.
pub(super) fn exposures(inventory: &Inventory, ws: &[Workload<'_>], ingress_namespaces: &[String]) -> BTreeMap<(String, String), Vec<Exposure>> {
    let mut out: BTreeMap<(String, String), Vec<Exposure>> = BTreeMap::new();
    let mut add = |svc: (String, String), via: String, entry: Entry| out.entry(svc).or_default().push(Exposure { via, entry });
    for ing in inventory.of(&kinds::INGRESS) {
        for svc in ingress_backends(ing) {
            add(svc, format!("Ingress/{}/{}", ns_of(ing), ing.name), Entry::Controllers);
        }
    }
    for route in inventory.of(&kinds::HTTP_ROUTE) {
        let ns = ns_of(route);
        let via = format!("HTTPRoute/{ns}/{}", route.name);
        let parents: Vec<Entry> = route
            .value
            .pointer("/spec/parentRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| {
                p.get("kind").and_then(Value::as_str).is_none_or(|k| k == "Gateway")
                    && p.get("group").and_then(Value::as_str).is_none_or(|g| g == "gateway.networking.k8s.io")
            })
            .filter_map(|p| {
                let name = p.get("name").and_then(Value::as_str)?;
                let gns = p.get("namespace").and_then(Value::as_str).map_or_else(|| ns.clone(), str::to_string);
                Some(gateway_api_entry(inventory, ws, &gns, name, ingress_namespaces))
            })
            .collect();
        let parents = if parents.is_empty() { vec![Entry::Controllers] } else { parents };
        for rule in route.value.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten() {
            for b in rule.get("backendRefs").and_then(Value::as_array).into_iter().flatten() {
                if b.get("kind").and_then(Value::as_str).is_none_or(|k| k == "Service")
                    && let Some(name) = b.get("name").and_then(Value::as_str)
                {
                    let bns = b.get("namespace").and_then(Value::as_str).map_or_else(|| ns.clone(), str::to_string);
                    for e in &parents {
                        add((bns.clone(), name.to_string()), via.clone(), e.clone());
                    }
                }
            }
        }
    }
    for vs in inventory.of(&kinds::VIRTUAL_SERVICE) {
        let ns = ns_of(vs);
        let via = format!("VirtualService/{ns}/{}", vs.name);
        let gateways: Vec<Entry> = vs
            .value
            .pointer("/spec/gateways")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|g| *g != "mesh")
            .map(|g| {
                let (gns, name) = g.split_once('/').map_or_else(|| (ns.clone(), g.to_string()), |(a, b)| (a.to_string(), b.to_string()));
                istio_entry(inventory, ws, &gns, &name, ingress_namespaces)
            })
            .collect();
        // Without gateways a VirtualService applies to the mesh only; it has been counted as an
        // exposure from the ingress namespaces all along, which admits more, never less.
        let gateways = if gateways.is_empty() { vec![Entry::Controllers] } else { gateways };
        for section in ["http", "tcp", "tls"] {
            for route in vs.value.pointer(&format!("/spec/{section}")).and_then(Value::as_array).into_iter().flatten() {
                for dest in route.get("route").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(host) = dest.pointer("/destination/host").and_then(Value::as_str) {
                        let mut parts = host.split('.');
                        let svc = parts.next().unwrap_or_default().to_string();
                        let svc_ns = parts.next().filter(|p| *p != "svc").map_or_else(|| ns.clone(), str::to_string);
                        for e in &gateways {
                            add((svc_ns.clone(), svc.clone()), via.clone(), e.clone());
                        }
                    }
                }
            }
        }
    }
    out
}

/// A Gateway API Gateway: its pods, else its namespace, else (not in the input) unlocated unless
/// its namespace is a configured ingress namespace.
fn gateway_api_entry(inventory: &Inventory, ws: &[Workload<'_>], ns: &str, name: &str, ingress_namespaces: &[String]) -> Entry {
    if let Some(j) = ws.iter().position(|w| w.namespace() == ns && w.pod_labels().get(GATEWAY_NAME_LABEL).is_some_and(|g| g == name)) {
        return Entry::Pods(j);
    }
    let gateway = inventory.get(&kinds::GATEWAY_API_GATEWAY, Some(ns), name);
    if gateway.and_then(|g| g.value.pointer("/spec/gatewayClassName")).and_then(Value::as_str) == Some(ISTIO_GATEWAY_CLASS) {
        return Entry::Labelled { namespace: ns.to_string(), name: name.to_string() };
    }
    located(gateway.is_some(), ns, name, ingress_namespaces)
}

/// An Istio Gateway: the pods its selector matches, else its namespace, else unlocated unless
/// its namespace is a configured ingress namespace.
fn istio_entry(inventory: &Inventory, ws: &[Workload<'_>], ns: &str, name: &str, ingress_namespaces: &[String]) -> Entry {
    let Some(gw) = inventory.get(&kinds::ISTIO_GATEWAY, Some(ns), name) else {
        return located(false, ns, name, ingress_namespaces);
    };
    let selector = string_map(gw.value.pointer("/spec/selector"));
    let selector = (!selector.is_empty()).then(|| LabelSelector::from_json(Some(&json!({"matchLabels": selector}))).ok()).flatten();
    if let Some(j) = selector.and_then(|s| ws.iter().position(|w| s.matches(&w.pod_labels()))) {
        return Entry::Pods(j);
    }
    located(true, ns, name, ingress_namespaces)
}

/// The GatewayClass of Istio's own gateway controller, which deploys each Gateway's proxy in its
/// namespace with the gateway-name label (see the module docs).
const ISTIO_GATEWAY_CLASS: &str = "istio";

fn located(present: bool, ns: &str, name: &str, ingress_namespaces: &[String]) -> Entry {
    if ingress_namespaces.iter().any(|n| n == ns) {
        Entry::Controllers
    } else if present {
        Entry::Namespace(ns.to_string())
    } else {
        Entry::Unlocated { gateway: format!("Gateway/{ns}/{name}"), namespace: ns.to_string() }
    }
}
