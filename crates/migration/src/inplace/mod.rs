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
//!   rollback of the `expose` step only: it removes exactly what `expose` created. It names its
//!   IngressClass (the flag's, else the cluster's default), refuses host+path pairs another
//!   Ingress of the class serves (or leaves them to it, `merge`) and carries over the controller
//!   annotations of Ingresses on the same hosts.
//! * [`enable`] — namespace injection labels (sidecar, a revision, or ambient), an Istio Gateway,
//!   a VirtualService and a DestinationRule per HTTP Service from a [`TrafficProfile`],
//!   PeerAuthentication `PERMISSIVE` unless that would lower a workload's effective mTLS mode or
//!   be ignored, and restarts in batches that never restart two workloads guarded by the same
//!   PodDisruptionBudget at once, each batch waited for.
//! * [`mtls`] — the namespace-wide PeerAuthentication Istio applies to `STRICT`, proven to raise
//!   what it claims, and the readiness check per workload port (every pod meshed; no unmeshed
//!   client that NetworkPolicy lets reach a port that becomes `STRICT`).
//! * [`status`] — per workload: meshed, proxy revision, effective mTLS mode; per namespace: mode,
//!   namespace-wide mTLS mode, Istio objects present, journal steps.
//!
//! Istio's own rules — which protocol a port has, which pods get a sidecar or join ambient, which
//! PeerAuthentication decides a port's mode — come from [`meshmove_istio`] only;
//! [`peer_auth`] feeds it the mesh's policies and the namespace's workload ports.

pub mod authz;
pub mod enable;
pub mod expose;
pub mod mesh_policies;
pub mod mtls;
pub mod peer_auth;
pub mod status;


use meshmove_istio::injection::INJECTION_LABEL;
use meshmove_istio::{Dataplane, Labels, Pod, Protocol, Served, dataplane};
use serde_json::Value;

use meshmove_model::inventory::{Inventory, Object, kinds};

pub use meshmove_istio::traffic::TrafficProfile;

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
    /// A profile given as options (flags, a library caller) that Istio would refuse.
    #[error("traffic profile: {0}")]
    Profile(#[from] meshmove_istio::traffic::ProfileError),
    #[error("{what}: {message}")]
    BadOption { what: String, message: String },
    /// The PeerAuthentications cannot be known, or the write would not do what the step claims.
    #[error("namespace {namespace}: {message}")]
    PeerAuthentication { namespace: String, message: String },
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

/// Whether a pod carries Istio's proxy now: an `istio-proxy` container (classic or native
/// sidecar). This reads the pod as it is; which pods *will* get one is
/// [`meshmove_istio::injection`] (see [`selected_dataplane`]).
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
/// `ambient.istio.io/redirection: enabled`. This reads what the agent did; which pods it
/// *should* capture is [`meshmove_istio::ambient_captured`] (see [`ambient_candidate`]).
pub fn ambient_captured(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations/ambient.istio.io~1redirection").and_then(Value::as_str) == Some("enabled")
}

/// Whether a running pod is one ztunnel should capture, by the CNI node agent's enablement rule
/// ([`meshmove_istio::ambient_captured`]: the namespace or the pod labelled
/// `istio.io/dataplane-mode=ambient`, not opted out with `none`, not on the host network, no
/// sidecar), not opted out with the legacy `ambient.istio.io/redirection: disabled` annotation,
/// and not finished.
pub fn ambient_candidate(namespace: &str, namespace_labels: &Labels, pod: &Value) -> bool {
    let mut p = Pod::from_objects(&Value::Null, pod);
    p.namespace = namespace.to_string();
    p.namespace_labels = namespace_labels.clone();
    meshmove_istio::ambient_captured(&p)
        && pod.pointer("/metadata/annotations/ambient.istio.io~1redirection").and_then(Value::as_str) != Some("disabled")
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

/// The data plane a pod created now from `template` (`{metadata, spec}`, or a Pod) would join
/// in a namespace labelled `namespace_labels`, by Istio's webhook selection, injector policy and
/// ambient enablement ([`meshmove_istio::dataplane`]), with the injectors [`Served::assumed`]
/// supposes: every revision the labels name, and `default`. `status`, `enable` and `mtls strict`
/// report or change what the labels select; whether an injector answers is the control-plane
/// gate's question (precheck's MM1013, `enable`'s gate) and the proxy check after the restarts.
pub fn selected_dataplane(namespace: &str, namespace_labels: &Labels, template: &Value) -> Dataplane {
    let mut pod = Pod::from_objects(&Value::Null, template);
    pod.namespace = namespace.to_string();
    pod.namespace_labels = namespace_labels.clone();
    let served = Served::assumed(&pod);
    dataplane(&pod, &served)
}

/// A Namespace object's labels.
pub fn labels_of(ns: &Object) -> Labels {
    ns.labels().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Data-plane mode of a namespace from its labels, as Istio selects it for a pod without labels
/// of its own ([`selected_dataplane`]): `ambient`, `sidecar` (`istio-injection=enabled`, the
/// default revision), `sidecar (revision X)` (`istio.io/rev`), or none. `istio-injection` wins
/// over `istio.io/rev`, and injection over ambient, as the webhooks and the CNI agent decide.
pub fn namespace_mode(ns: &Object) -> Option<String> {
    match selected_dataplane(&ns.name, &labels_of(ns), &Value::Null) {
        Dataplane::Ambient => Some("ambient".to_string()),
        Dataplane::Sidecar { .. } if ns.label(INJECTION_LABEL).is_some() => Some("sidecar".to_string()),
        Dataplane::Sidecar { revision } => Some(format!("sidecar (revision {revision})")),
        Dataplane::None => None,
    }
}

#[cfg(test)]
mod peer_auth_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod authz_tests;
