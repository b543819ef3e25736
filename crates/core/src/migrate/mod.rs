//! In-place migration of a namespace onto Istio: the plan builders behind `kubectl mesh-migrate
//! expose`, `enable`, `mtls strict` and `status`.
//!
//! Every builder is a pure function of an [`Inventory`] (read once from the cluster) and options,
//! returning a [`Plan`](meshmove_kube::plan::Plan) that the [`plan`](meshmove_kube::plan) engine previews,
//! executes, journals and rolls back. Nothing here talks to the network, so each decision is
//! unit-tested offline.
//!
//! * [`expose`] — the quick win: one multi-host Ingress (`<service>.<domain>`) for the HTTP
//!   Services of the namespace, plus the hosts-file lines to reach it. `expose --cleanup` is a
//!   rollback of the `expose` step only: it removes exactly what `expose` created.
//! * [`enable`] — namespace injection labels (sidecar, a revision, or ambient), an Istio Gateway,
//!   a VirtualService and a DestinationRule per HTTP Service from a [`TrafficProfile`],
//!   PeerAuthentication `PERMISSIVE`, and restarts in batches that never restart two workloads
//!   guarded by the same PodDisruptionBudget at once, each batch waited for.
//! * [`mtls`] — the readiness check for `STRICT` (every pod meshed; no unmeshed namespace whose
//!   pods NetworkPolicy lets reach these pods) and the plan that switches the PeerAuthentication.
//! * [`status`] — per workload: meshed, proxy revision; per namespace: mode, mTLS mode, Istio
//!   objects present, journal steps.

pub mod enable;
pub mod expose;
pub mod mtls;
pub mod profile;
pub mod status;

use meshmove_istio::Protocol;
use serde_json::Value;

use meshmove_model::inventory::{Inventory, Object, kinds};

pub use profile::TrafficProfile;

/// Step names as the journal records them.
pub const STEP_EXPOSE: &str = "expose";
pub const STEP_ENABLE: &str = "enable";
pub const STEP_MTLS: &str = "mtls-strict";

/// The PeerAuthentication `enable` creates and `mtls strict` switches.
pub const PEER_AUTHENTICATION: &str = "default";

/// Errors building a plan: bad input, never a cluster problem.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("namespace {namespace} does not exist")]
    NoNamespace { namespace: String },
    #[error("namespace {namespace} has no Service with an HTTP port to route to{}", if .skipped.is_empty() { String::new() } else { format!(" (skipped: {})", .skipped.join("; ")) })]
    NoServices { namespace: String, skipped: Vec<String> },
    #[error("traffic profile {path}: {message}")]
    BadProfile { path: String, message: String },
    #[error("{what}: {message}")]
    BadOption { what: String, message: String },
}

/// Well-known ports of databases and caches. A port Istio sniffs (nothing usable declared) may
/// carry HTTP, except on these: no Ingress or HTTP route for them.
const NON_HTTP_PORTS: &[i64] = &[5432, 3306, 6379, 27017, 9042, 5672, 9092, 2181, 11211];

/// A Service port to route HTTP to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpService {
    pub name: String,
    pub port: i64,
}

/// How likely a Service port carries HTTP, from the protocol Istio selects for it
/// ([`meshmove_istio::protocol::select`]): `Some(0)` declared HTTP/1.1, `Some(1)` another declared
/// HTTP-family protocol (HTTP2, gRPC, gRPC-Web), `Some(2)` sniffed by Istio and not on a
/// well-known database port; `None`: Istio treats it as something else (TCP, TLS, a database
/// protocol, UDP), which an HTTP route cannot serve.
fn http_rank(port: &Value) -> Option<u8> {
    let selected = meshmove_istio::protocol::select(port);
    match selected.protocol {
        Protocol::Http if selected.explicit => Some(0),
        p if p.is_http() => Some(1),
        p if p.is_sniffed() && !selected.port.is_some_and(|n| NON_HTTP_PORTS.contains(&n)) => Some(2),
        _ => None,
    }
}

/// The Services of `namespace` that carry HTTP, with the port to use, and the ones left out with
/// the reason. Which ports carry HTTP follows the protocol Istio selects (see [`http_rank`]): a
/// port declared HTTP/1.1 is preferred, then another HTTP-family one, then one Istio sniffs that
/// is not a well-known database port. Headless and ExternalName Services are left out (an
/// Ingress cannot route to them).
pub fn http_services(inventory: &Inventory, namespace: &str) -> (Vec<HttpService>, Vec<String>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut services: Vec<&Object> = inventory.of(&kinds::SERVICE).filter(|s| s.namespace.as_deref() == Some(namespace)).collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    for s in services {
        let spec = s.value.get("spec");
        let ty = spec.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            skipped.push(format!("{}: ExternalName", s.name));
            continue;
        }
        if spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str) == Some("None") {
            skipped.push(format!("{}: headless", s.name));
            continue;
        }
        let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array).into_iter().flatten();
        // The best rank, first port among equals.
        let chosen = ports.filter_map(|p| Some((http_rank(p)?, p))).min_by_key(|(rank, _)| *rank);
        match chosen.and_then(|(_, p)| p.get("port")).and_then(Value::as_i64) {
            Some(port) => out.push(HttpService { name: s.name.clone(), port }),
            None => skipped.push(format!("{}: no HTTP port", s.name)),
        }
    }
    (out, skipped)
}

/// One routed host: the Ingress of `expose` and the Gateway and VirtualServices of `enable` serve
/// the same list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub host: String,
    pub service: String,
    pub port: i64,
}

/// Whether `h` is a lowercase DNS name (labels of letters, digits and inner dashes).
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !l.starts_with('-') && !l.ends_with('-')
        })
}

/// The host of each HTTP Service of `namespace` (see [`http_services`]): `<service>.<domain>`
/// (`domain` defaults to `<namespace>.local`), or the host `overrides` gives the service (the
/// `--host SERVICE=HOST` flags). Also returns the Services left out, with the reason. An empty
/// list is no error here; an override naming no HTTP Service, or a bad name, is.
pub fn service_routes(
    inventory: &Inventory,
    namespace: &str,
    domain: Option<&str>,
    overrides: &std::collections::BTreeMap<String, String>,
) -> Result<(Vec<Route>, Vec<String>), MigrateError> {
    let domain = domain.map_or_else(|| format!("{namespace}.local"), str::to_string);
    if !valid_host(&domain) {
        return Err(MigrateError::BadOption { what: "--domain".into(), message: format!("`{domain}` is not a valid DNS name") });
    }
    let (services, skipped) = http_services(inventory, namespace);
    for (svc, host) in overrides {
        if !services.iter().any(|s| &s.name == svc) {
            return Err(MigrateError::BadOption {
                what: format!("--host {svc}={host}"),
                message: format!("no Service {svc} with an HTTP port in namespace {namespace}"),
            });
        }
        if !valid_host(host) {
            return Err(MigrateError::BadOption { what: format!("--host {svc}={host}"), message: format!("`{host}` is not a valid DNS name") });
        }
    }
    let routes = services
        .iter()
        .map(|s| Route { host: overrides.get(&s.name).cloned().unwrap_or_else(|| format!("{}.{domain}", s.name)), service: s.name.clone(), port: s.port })
        .collect();
    Ok((routes, skipped))
}

/// Whether a pod carries Istio's proxy: an `istio-proxy` container (classic or native sidecar)
/// or the injector's status annotation.
pub fn has_proxy(pod: &Value) -> bool {
    let named = |key: &str| {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy")))
    };
    named("containers") || named("initContainers")
}

/// The annotation Istio's CNI node agent keeps on every pod it has redirected to ztunnel.
pub const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";

/// Whether ztunnel has captured the pod: the CNI node agent annotated it
/// `ambient.istio.io/redirection: enabled`.
pub fn ambient_captured(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations/ambient.istio.io~1redirection").and_then(Value::as_str) == Some("enabled")
}

/// Whether a running pod of an ambient namespace is one ztunnel should capture: not opted out
/// (`istio.io/dataplane-mode=none` label or `ambient.istio.io/redirection: disabled`), not on the
/// host network, without a sidecar of its own, not finished.
pub fn ambient_candidate(pod: &Value) -> bool {
    pod.pointer("/metadata/labels/istio.io~1dataplane-mode").and_then(Value::as_str) != Some("none")
        && pod.pointer("/metadata/annotations/ambient.istio.io~1redirection").and_then(Value::as_str) != Some("disabled")
        && pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) != Some(true)
        && !has_proxy(pod)
        && !matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// The proxy revision of a meshed pod (`istio.io/rev` annotation, else `default`).
pub fn proxy_revision(pod: &Value) -> Option<String> {
    has_proxy(pod).then(|| {
        pod.pointer("/metadata/annotations/istio.io~1rev").and_then(Value::as_str).unwrap_or("default").to_string()
    })
}

/// The namespace object, if loaded.
pub fn namespace_object<'a>(inventory: &'a Inventory, namespace: &str) -> Option<&'a Object> {
    inventory.get(&kinds::NAMESPACE, None, namespace)
}

/// Data-plane mode of a namespace from its labels: `ambient`, `sidecar` (with revision), or none.
pub fn namespace_mode(ns: &Object) -> Option<String> {
    if ns.label("istio.io/dataplane-mode") == Some("ambient") {
        return Some("ambient".to_string());
    }
    if ns.label("istio-injection") == Some("disabled") {
        return None;
    }
    if let Some(rev) = ns.label("istio.io/rev") {
        return Some(format!("sidecar (revision {rev})"));
    }
    (ns.label("istio-injection") == Some("enabled")).then(|| "sidecar".to_string())
}

#[cfg(test)]
mod tests;
