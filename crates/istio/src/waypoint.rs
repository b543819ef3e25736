//! Ambient mode's waypoints: the Gateway API object that deploys one, the labels that bind a
//! namespace or Service to it, whether an existing Gateway can serve a namespace, and which
//! metrics each ambient component emits.
//!
//! Upstream rules encoded here:
//!
//! - A waypoint is a Gateway API `Gateway` of class `istio-waypoint` with one `HBONE` listener on
//!   15008, labelled `istio.io/waypoint-for` with the traffic it takes (`service` unless the
//!   label or the class says otherwise); this is what `istioctl waypoint apply` writes
//!   (<https://istio.io/latest/docs/ambient/usage/waypoint/>; the traffic type is read by istiod
//!   in istio/istio `pilot/pkg/serviceregistry/kube/controller/ambient/waypoints.go`).
//! - A namespace or Service labelled `istio.io/use-waypoint: <name>` sends its traffic through
//!   that waypoint; with `istio.io/use-waypoint-namespace: <ns>` the waypoint may live in another
//!   namespace (same page, "Use a waypoint in a different namespace"; Istio's label reference:
//!   <https://istio.io/latest/docs/reference/config/labels/>). A waypoint in another namespace
//!   accepts the binding only when its listener's `allowedRoutes` admits the bound namespace
//!   (Gateway API `AllowedRoutes`: `Same` is the default).
//! - Pods join ambient through `istio.io/dataplane-mode=ambient` on their namespace
//!   ([`crate::injection::DATAPLANE_MODE_LABEL`]; <https://istio.io/latest/docs/ambient/usage/add-workloads/>).
//! - Telemetry ([`Source`]): ztunnel emits only TCP metrics (`istio_tcp_connections_opened_total`,
//!   `istio_tcp_connections_closed_total`, `istio_tcp_sent_bytes_total`,
//!   `istio_tcp_received_bytes_total`) with `reporter` `source` or `destination`, and a connection
//!   that ended with an error carries a `response_flags` value other than `-` on its close
//!   (`CONNECT` for a failed upstream connection, `DENY` for a policy denial; istio/ztunnel
//!   `src/proxy/metrics.rs`, `ResponseFlags` and `ConnectionResult::record`). A waypoint is an
//!   Envoy and emits the HTTP metrics (`istio_requests_total`,
//!   `istio_request_duration_milliseconds`) with `reporter="waypoint"` (the expected metrics of
//!   istio/istio's ambient integration tests; the standard metrics and their labels:
//!   <https://istio.io/latest/docs/reference/config/metrics/>). Sidecars report the same HTTP
//!   metrics as `source` and `destination`.

use serde_json::{Value, json};

/// `istio.io/use-waypoint`: the waypoint a namespace, Service or pod uses.
pub const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
/// `istio.io/use-waypoint-namespace`: the namespace of that waypoint when it is not the bound
/// object's own.
pub const USE_WAYPOINT_NAMESPACE_LABEL: &str = "istio.io/use-waypoint-namespace";
/// `istio.io/waypoint-for`: which traffic a waypoint takes (`service`, `workload`, `all`, `none`).
pub const WAYPOINT_FOR_LABEL: &str = "istio.io/waypoint-for";
/// The GatewayClass of waypoints, which istiod creates and serves.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";
/// The name `istioctl waypoint apply` gives a waypoint when none is given.
pub const DEFAULT_WAYPOINT_NAME: &str = "waypoint";
/// The HBONE port of the waypoint's listener.
pub const HBONE_PORT: u16 = 15008;
/// API version of the Gateway API objects written.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// `gateway.networking.k8s.io/gateway-name`: the label Istio's gateway controller puts on the
/// Deployment (and so the pods) it creates for a Gateway, a waypoint included
/// (<https://istio.io/latest/docs/reference/config/labels/>).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// The value of [`USE_WAYPOINT_LABEL`] that opts a Service or pod out of its namespace's waypoint.
pub const NO_WAYPOINT: &str = "none";

/// Which waypoint the traffic to an object takes, by the binding labels of the object itself
/// (`own`: a Service, or a pod for traffic addressed to it) and of its namespace (`namespace`,
/// whose labels are `namespace_labels`): the object's own label wins over the namespace's, and
/// `none` opts out of the namespace's (<https://istio.io/latest/docs/ambient/usage/waypoint/>,
/// "Configure a pod to use a specific waypoint" and "Use a waypoint"). A label without
/// `istio.io/use-waypoint-namespace` names a waypoint of the bound object's namespace. Returns
/// the waypoint and which label binds it (`Service` / `Namespace`, for reports), or `None`.
pub fn bound_to(
    namespace: &str,
    namespace_labels: &crate::Labels,
    own_kind: &str,
    own_name: &str,
    own: &crate::Labels,
) -> Option<(Waypoint, String)> {
    let pick = |labels: &crate::Labels| -> Option<Option<Waypoint>> {
        let name = labels.get(USE_WAYPOINT_LABEL)?;
        if name == NO_WAYPOINT || name.is_empty() {
            return Some(None);
        }
        let ns = labels
            .get(USE_WAYPOINT_NAMESPACE_LABEL)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| namespace.to_string());
        Some(Some(Waypoint {
            namespace: ns,
            name: name.clone(),
        }))
    };
    match pick(own) {
        Some(Some(w)) => {
            let by = format!(
                "{own_kind}/{own_name} is labelled {USE_WAYPOINT_LABEL}={}",
                w.name
            );
            Some((w, by))
        }
        Some(None) => None,
        None => pick(namespace_labels).flatten().map(|w| {
            let by = format!(
                "Namespace/{namespace} is labelled {USE_WAYPOINT_LABEL}={}",
                w.name
            );
            (w, by)
        }),
    }
}

/// A waypoint, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waypoint {
    pub namespace: String,
    pub name: String,
}

impl Waypoint {
    /// The labels that bind an object of namespace `bound_namespace` to this waypoint.
    pub fn binding(&self, bound_namespace: &str) -> Vec<(&'static str, String)> {
        let mut labels = vec![(USE_WAYPOINT_LABEL, self.name.clone())];
        if self.namespace != bound_namespace {
            labels.push((USE_WAYPOINT_NAMESPACE_LABEL, self.namespace.clone()));
        }
        labels
    }

    /// The Gateway deploying this waypoint for Service traffic, as `istioctl waypoint apply`
    /// writes it (one `mesh` listener, HBONE on 15008), with `labels` added.
    pub fn gateway(&self, labels: &Value) -> Value {
        let mut meta_labels = labels.as_object().cloned().unwrap_or_default();
        meta_labels.insert(WAYPOINT_FOR_LABEL.into(), json!("service"));
        json!({
            "apiVersion": GATEWAY_API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": meta_labels},
            "spec": {
                "gatewayClassName": WAYPOINT_CLASS,
                "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
            },
        })
    }
}

/// Why an existing Gateway cannot be the waypoint of namespace `bound` (whose labels are
/// `bound_labels`), or `None` when it can take its Services' traffic.
pub fn unusable(gateway: &Value, bound: &str, bound_labels: &crate::Labels) -> Option<String> {
    let ns = gateway
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = gateway
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let class = gateway
        .pointer("/spec/gatewayClassName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if class != WAYPOINT_CLASS {
        return Some(format!(
            "Gateway {ns}/{name} has gatewayClassName `{class}`, not `{WAYPOINT_CLASS}`: it is no waypoint"
        ));
    }
    let labels = crate::string_map(gateway.pointer("/metadata/labels"));
    let traffic = labels
        .get(WAYPOINT_FOR_LABEL)
        .map(String::as_str)
        .unwrap_or("service");
    if !matches!(traffic, "service" | "all") {
        return Some(format!(
            "waypoint {ns}/{name} is labelled {WAYPOINT_FOR_LABEL}={traffic}: it does not take Service traffic (needs `service` or `all`)"
        ));
    }
    let listeners = gateway
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(mesh) = listeners
        .iter()
        .find(|l| l.get("protocol").and_then(Value::as_str) == Some("HBONE"))
    else {
        return Some(format!("waypoint {ns}/{name} has no HBONE listener"));
    };
    if ns == bound {
        return None;
    }
    let from = mesh
        .pointer("/allowedRoutes/namespaces/from")
        .and_then(Value::as_str)
        .unwrap_or("Same");
    match from {
        "All" => None,
        "Selector" => admitted_by_selector(
            mesh.pointer("/allowedRoutes/namespaces/selector"),
            bound,
            bound_labels,
        )
        .err()
        .map(|why| format!("waypoint {ns}/{name} {why}")),
        other => Some(format!(
            "waypoint {ns}/{name} admits bindings from namespaces `{other}` (its HBONE listener's allowedRoutes), so not from {bound}: set allowedRoutes.namespaces.from to All or a selector matching {bound}"
        )),
    }
}

/// Whether a listener with `allowedRoutes.namespaces.from: Selector` admits namespace `bound`,
/// whose labels are `labels`: `Err` says why not.
///
/// Gateway API's `RouteNamespaces` (kubernetes-sigs/gateway-api `apis/v1/gateway_types.go`,
/// <https://gateway-api.sigs.k8s.io/reference/spec/#routenamespaces>; `FromNamespaces` lists
/// `All`, `Selector` and `Same`) makes `selector` a standard `metav1.LabelSelector` that must be
/// given with `Selector`, and only namespaces whose labels match it are admitted. It is evaluated
/// with the suite's one label selector ([`meshmove_model::selector`]), `matchLabels` and
/// `matchExpressions` alike. Two cases the spec leaves to implementations are read as the
/// implementations read them (a selector they cannot turn into a `labels.Selector` with
/// apimachinery's `LabelSelectorAsSelector`, or none at all, admits no namespace): an absent
/// selector, and an invalid one (an unknown operator, `In` without values, `Exists` with
/// values). Both make the waypoint unusable here, with the reason, rather than an error: the
/// Gateway is someone else's existing object, so the answer to "can this namespace bind to it"
/// is no, and saying which field of it is wrong is the useful message.
fn admitted_by_selector(
    selector: Option<&Value>,
    bound: &str,
    labels: &crate::Labels,
) -> Result<(), String> {
    use meshmove_model::selector::LabelSelector;
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Err(
            "admits namespaces `from: Selector` but gives no selector (allowedRoutes.namespaces.selector), which admits none"
                .to_string(),
        );
    };
    let parsed = LabelSelector::from_json(Some(selector)).map_err(|e| {
        format!("has an invalid allowedRoutes.namespaces.selector ({e}), which admits no namespace")
    })?;
    if parsed.matches(labels) {
        Ok(())
    } else {
        Err(format!(
            "admits only namespaces matching its allowedRoutes.namespaces.selector {selector}, and {bound} (labels {labels:?}) does not"
        ))
    }
}

/// Which proxy reported a metric series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The destination workload's sidecar (`reporter="destination"`, HTTP and TCP metrics).
    Sidecar,
    /// The waypoint in front of the destination (`reporter="waypoint"`, HTTP metrics).
    Waypoint,
    /// The destination node's ztunnel (`reporter="destination"`, TCP metrics only).
    Ztunnel,
}

impl Source {
    /// The `reporter` label value of the series this source emits for traffic it receives.
    pub fn reporter(self) -> &'static str {
        match self {
            Source::Sidecar | Source::Ztunnel => "destination",
            Source::Waypoint => "waypoint",
        }
    }

    /// Whether the source emits `istio_requests_total` and the request-duration histogram.
    pub fn has_http_metrics(self) -> bool {
        !matches!(self, Source::Ztunnel)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sidecar => "sidecar",
            Source::Waypoint => "waypoint",
            Source::Ztunnel => "ztunnel",
        }
    }
}

/// The request counter (HTTP, gRPC).
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// The request-duration histogram's buckets.
pub const REQUEST_DURATION_BUCKET: &str = "istio_request_duration_milliseconds_bucket";
/// TCP connections opened.
pub const TCP_OPENED_TOTAL: &str = "istio_tcp_connections_opened_total";
/// TCP connections closed (with `response_flags` saying how a connection ended).
pub const TCP_CLOSED_TOTAL: &str = "istio_tcp_connections_closed_total";
/// `response_flags` of a connection that ended without an error.
pub const NO_RESPONSE_FLAGS: &str = "-";

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> crate::Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_gateway_is_the_one_istioctl_writes() {
        let w = Waypoint {
            namespace: "shop-mesh".into(),
            name: DEFAULT_WAYPOINT_NAME.into(),
        };
        let g = w.gateway(&json!({"app.kubernetes.io/managed-by": "x"}));
        assert_eq!(g["spec"]["gatewayClassName"], WAYPOINT_CLASS);
        assert_eq!(
            g["spec"]["listeners"],
            json!([{"name": "mesh", "port": 15008, "protocol": "HBONE"}])
        );
        assert_eq!(g["metadata"]["labels"][WAYPOINT_FOR_LABEL], "service");
        assert_eq!(g["metadata"]["labels"]["app.kubernetes.io/managed-by"], "x");
        assert!(unusable(&g, "shop-mesh", &labels(&[])).is_none());
        assert_eq!(
            w.binding("shop-mesh"),
            vec![(USE_WAYPOINT_LABEL, "waypoint".to_string())]
        );
        assert_eq!(
            w.binding("other").len(),
            2,
            "another namespace's waypoint needs its namespace named"
        );
    }

    #[test]
    fn an_existing_gateway_must_be_a_waypoint_for_services_admitting_the_namespace() {
        let gw = |class: &str, extra_labels: Value, listener: Value| {
            json!({"metadata": {"name": "wp", "namespace": "infra", "labels": extra_labels},
                   "spec": {"gatewayClassName": class, "listeners": [listener]}})
        };
        let hbone = json!({"name": "mesh", "port": 15008, "protocol": "HBONE"});
        let ns = labels(&[("kubernetes.io/metadata.name", "shop-mesh"), ("team", "a")]);
        assert!(
            unusable(&gw("istio", json!({}), hbone.clone()), "infra", &ns)
                .unwrap()
                .contains("not `istio-waypoint`")
        );
        let workload_only = gw(
            WAYPOINT_CLASS,
            json!({WAYPOINT_FOR_LABEL: "workload"}),
            hbone.clone(),
        );
        assert!(
            unusable(&workload_only, "infra", &ns)
                .unwrap()
                .contains("does not take Service traffic")
        );
        // Same namespace: always admitted; another: `Same` (the default) is not enough.
        assert!(unusable(&gw(WAYPOINT_CLASS, json!({}), hbone.clone()), "infra", &ns).is_none());
        assert!(
            unusable(
                &gw(WAYPOINT_CLASS, json!({}), hbone.clone()),
                "shop-mesh",
                &ns
            )
            .unwrap()
            .contains("`Same`")
        );
        let all = json!({"name": "mesh", "port": 15008, "protocol": "HBONE", "allowedRoutes": {"namespaces": {"from": "All"}}});
        assert!(
            unusable(
                &gw(WAYPOINT_CLASS, json!({WAYPOINT_FOR_LABEL: "all"}), all),
                "shop-mesh",
                &ns
            )
            .is_none()
        );
        let sel = |s: Value| json!({"name": "mesh", "port": 15008, "protocol": "HBONE", "allowedRoutes": {"namespaces": {"from": "Selector", "selector": s}}});
        assert!(
            unusable(
                &gw(
                    WAYPOINT_CLASS,
                    json!({}),
                    sel(json!({"matchLabels": {"team": "a"}}))
                ),
                "shop-mesh",
                &ns
            )
            .is_none()
        );
        assert!(
            unusable(
                &gw(
                    WAYPOINT_CLASS,
                    json!({}),
                    sel(json!({"matchLabels": {"team": "b"}}))
                ),
                "shop-mesh",
                &ns
            )
            .is_some()
        );
        let http = json!({"name": "http", "port": 80, "protocol": "HTTP"});
        assert!(
            unusable(&gw(WAYPOINT_CLASS, json!({}), http), "infra", &ns)
                .unwrap()
                .contains("no HBONE listener")
        );
    }

    /// `from: Selector` on another namespace's waypoint, judged by the suite's one label selector
    /// (`meshmove_model::selector`, held to apimachinery's semantics by its own tests): what
    /// matches the bound namespace's labels admits it, what does not names the selector, and an
    /// absent or invalid selector admits nothing (as Gateway API implementations read it).
    #[test]
    fn a_selector_listener_admits_exactly_the_namespaces_its_selector_matches() {
        let gw = |selector: Option<Value>| {
            let mut namespaces = json!({"from": "Selector"});
            if let Some(s) = selector {
                namespaces["selector"] = s;
            }
            json!({"metadata": {"name": "wp", "namespace": "infra"},
                   "spec": {"gatewayClassName": WAYPOINT_CLASS, "listeners": [
                       {"name": "mesh", "port": 15008, "protocol": "HBONE", "allowedRoutes": {"namespaces": namespaces}}]}})
        };
        let ns = labels(&[
            ("kubernetes.io/metadata.name", "shop-mesh"),
            ("team", "a"),
            ("env", "prod"),
        ]);
        let admits = |s: Value| unusable(&gw(Some(s)), "shop-mesh", &ns);
        // Admitted: matchLabels, each set-based operator, both ANDed, the empty selector.
        for s in [
            json!({"matchLabels": {"team": "a"}}),
            json!({"matchLabels": {"kubernetes.io/metadata.name": "shop-mesh"}}),
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}),
            json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "retired", "operator": "DoesNotExist"}]}),
            json!({"matchLabels": {"env": "prod"}, "matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}),
            json!({}),
        ] {
            assert_eq!(admits(s.clone()), None, "{s}");
        }
        // Not admitted: the reason names the waypoint, the selector and the namespace.
        for s in [
            json!({"matchLabels": {"team": "b"}}),
            json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}),
            json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}),
            json!({"matchExpressions": [{"key": "owner", "operator": "Exists"}]}),
            json!({"matchLabels": {"env": "prod"}, "matchExpressions": [{"key": "team", "operator": "In", "values": ["b"]}]}),
        ] {
            let why = admits(s.clone()).unwrap_or_else(|| panic!("{s} must not admit shop-mesh"));
            assert!(
                why.starts_with("waypoint infra/wp admits only namespaces matching")
                    && why.contains(&s.to_string())
                    && why.contains("shop-mesh"),
                "{why}"
            );
        }
        // Invalid selectors (as the API server's validation rejects them) admit nothing.
        for s in [
            json!({"matchExpressions": [{"key": "team", "operator": "Matches", "values": ["a"]}]}),
            json!({"matchExpressions": [{"key": "team", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]}),
            json!({"matchLabels": "team=a"}),
        ] {
            let why = admits(s.clone())
                .unwrap_or_else(|| panic!("{s} is invalid and must admit nothing"));
            assert!(
                why.starts_with(
                    "waypoint infra/wp has an invalid allowedRoutes.namespaces.selector"
                ) && why.ends_with("which admits no namespace"),
                "{why}"
            );
        }
        let none = unusable(&gw(None), "shop-mesh", &ns).expect("no selector admits nothing");
        assert!(none.contains("gives no selector"), "{none}");
        // The selector is not consulted for the waypoint's own namespace.
        assert_eq!(unusable(&gw(None), "infra", &ns), None);
    }

    #[test]
    fn each_source_reports_as_istio_labels_it() {
        assert_eq!(Source::Waypoint.reporter(), "waypoint");
        assert_eq!(Source::Ztunnel.reporter(), "destination");
        assert_eq!(Source::Sidecar.reporter(), "destination");
        assert!(!Source::Ztunnel.has_http_metrics());
    }

    #[test]
    fn a_services_own_binding_wins_over_its_namespaces_and_none_opts_out() {
        let l = |pairs: &[(&str, &str)]| -> crate::Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ns = l(&[(USE_WAYPOINT_LABEL, "ns-wp")]);
        let wp = |namespace: &str, name: &str| Waypoint {
            namespace: namespace.into(),
            name: name.into(),
        };
        let (w, by) = bound_to("shop", &ns, "Service", "api", &l(&[])).unwrap();
        assert_eq!(w, wp("shop", "ns-wp"));
        assert!(by.starts_with("Namespace/shop"), "{by}");
        let own = l(&[
            (USE_WAYPOINT_LABEL, "svc-wp"),
            (USE_WAYPOINT_NAMESPACE_LABEL, "mesh"),
        ]);
        let (w, by) = bound_to("shop", &ns, "Service", "api", &own).unwrap();
        assert_eq!(w, wp("mesh", "svc-wp"));
        assert!(by.starts_with("Service/api"), "{by}");
        assert_eq!(
            bound_to(
                "shop",
                &ns,
                "Service",
                "api",
                &l(&[(USE_WAYPOINT_LABEL, NO_WAYPOINT)])
            ),
            None
        );
        assert_eq!(bound_to("shop", &l(&[]), "Service", "api", &l(&[])), None);
        // The namespace's own waypoint namespace label goes with its binding.
        let ns = l(&[
            (USE_WAYPOINT_LABEL, "shared"),
            (USE_WAYPOINT_NAMESPACE_LABEL, "mesh"),
        ]);
        assert_eq!(
            bound_to("shop", &ns, "Service", "api", &l(&[])).unwrap().0,
            wp("mesh", "shared")
        );
    }
}
