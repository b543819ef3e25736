//! External traffic: the Ingresses (`networking.k8s.io/v1`) and Gateway API HTTPRoutes
//! (`gateway.networking.k8s.io/v1`) of the legacy namespace, served by an Istio ingress gateway
//! with the same weighted split as the internal routes. Pure: objects in, objects out.
//!
//! For each Ingress `<name>`: an Istio `Gateway` `ingress-<name>` in the mesh namespace (selector
//! `istio: <selector>`, `ingressgateway` by default) with an HTTP server on port 80 for the
//! Ingress's hosts and an HTTPS server per `tls` entry, and one `VirtualService` per host
//! (`ingress-<name>-<host>`) bound to it, serving the same paths. An HTTPRoute `<name>` becomes
//! `httproute-<name>` likewise. Each route's destination is the legacy Service and its mesh copy
//! at the migration's weight when the Service is one the migration splits; a shared backend (not
//! copied) keeps 100 % on the legacy side. The routes split by weight carry the migration's
//! traffic profile (`--http-timeout`, `--retries`, `--per-try-timeout`, `--retry-on`:
//! [`TrafficProfile::apply_to_route`], the one rule the splitting VirtualServices of the mesh namespace
//! follow), so a request from outside meets the same timeout and retries as one from inside;
//! a shared backend's single route keeps Istio's defaults, as it has no splitting VirtualService.
//!
//! Paths keep their meaning exactly
//! (<https://kubernetes.io/docs/concepts/services-networking/ingress/#path-types>): `Exact`
//! becomes an `exact` URI match; `Prefix` matches by path elements, so `/foo` matches `/foo` and
//! `/foo/bar` but not `/foobar`, which an Istio `prefix` match (a string prefix,
//! <https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPMatchRequest>)
//! alone would not keep: it becomes the pair `exact: /foo` and `prefix: /foo/` (and `prefix: /`
//! for `/`). `ImplementationSpecific` means whatever the Ingress controller makes of it, which
//! nothing here can know: such a path is not carried, and a warning names it. The Ingress rule
//! "longest matching path first, `Exact` before `Prefix` of the same length" is kept by ordering
//! the routes (Istio takes the first route that matches). Gateway API's `PathPrefix` and `Exact`
//! are the same two types; its precedence (exact path, longest prefix, method, most header
//! matches, most query matches: <https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule>)
//! orders its routes. Regular-expression matches, filters and rules splitting across several
//! backends are not carried (a warning each).
//!
//! TLS: an Ingress `tls` entry becomes an HTTPS server with `credentialName: <secretName>`, but
//! the ingress gateway reads that Secret from its own namespace, not from the Ingress's
//! (<https://istio.io/latest/docs/reference/config/analysis/ist0161/>): the plan says where the
//! Secret must be; nothing is copied.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::routing::TrafficProfile;
use super::{COPIED_FROM_LABEL, MANAGED_BY, ROLE_LABEL, Sides};

/// `ROLE_LABEL` value of the external routing objects.
pub const ROLE: &str = "external-traffic";
/// Default `istio` label value of the ingress gateway pods.
pub const DEFAULT_SELECTOR: &str = "ingressgateway";

/// One Ingress or HTTPRoute and what serves it on the mesh side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRoute {
    /// `Ingress/<name>` or `HTTPRoute/<name>`.
    pub source: String,
    pub hosts: Vec<String>,
    /// The Services it sends traffic to.
    pub services: Vec<String>,
    /// The Istio Gateway serving it.
    pub gateway: String,
    /// The VirtualServices bound to it.
    pub virtual_services: Vec<String>,
    /// TLS Secrets the gateway needs in its own namespace (names only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_secrets: Vec<String>,
}

/// The result of [`external`].
#[derive(Debug, Clone, Default)]
pub struct External {
    /// Gateways, then VirtualServices.
    pub objects: Vec<Value>,
    pub routes: Vec<ExternalRoute>,
    /// Paths and rules not carried, by Ingress or HTTPRoute, host and path.
    pub warnings: Vec<String>,
}

/// One route before ordering: its matches, destination, and precedence key.
struct Route {
    matches: Vec<Value>,
    service: String,
    port: i64,
    /// Sort key: smaller first.
    key: (u8, std::cmp::Reverse<usize>, u8, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>),
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn labels(sides: &Sides) -> Value {
    json!({"app.kubernetes.io/managed-by": MANAGED_BY, COPIED_FROM_LABEL: sides.legacy, ROLE_LABEL: ROLE})
}

/// A DNS-label-safe slug of a host for an object name (`*.example.com` -> `wildcard.example.com`,
/// no host -> `any`).
fn host_slug(host: &str) -> String {
    if host == "*" {
        return "any".into();
    }
    host.replace('*', "wildcard")
}

/// The URI matches of a path with its type (Ingress `Prefix`/`Exact`, Gateway API
/// `PathPrefix`/`Exact`), or `None` for a type whose meaning is not known here.
fn uri_matches(path_type: &str, path: &str) -> Option<Vec<Value>> {
    match path_type {
        "Exact" => Some(vec![json!({"exact": path})]),
        "Prefix" | "PathPrefix" => {
            // Element-wise: a trailing `/` is ignored, `/` matches every path.
            let p = path.trim_end_matches('/');
            if p.is_empty() {
                Some(vec![json!({"prefix": "/"})])
            } else {
                Some(vec![json!({"exact": p}), json!({"prefix": format!("{p}/")})])
            }
        }
        _ => None,
    }
}

/// The port number of `service`'s port given by number or by name.
fn service_port(services: &[&Value], service: &str, port: &Value) -> Option<i64> {
    if let Some(n) = port.get("number").and_then(Value::as_i64) {
        return Some(n);
    }
    let name = port.get("name").and_then(Value::as_str)?;
    let svc = services.iter().find(|s| str_at(s, "/metadata/name") == Some(service))?;
    svc.pointer("/spec/ports")?.as_array()?.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name))?.get("port")?.as_i64()
}

fn destinations(sides: &Sides, service: &str, port: i64, split: bool, weight: u8) -> Value {
    let legacy = json!({"host": sides.legacy_host(service), "port": {"number": port}});
    if !split {
        return json!([{"destination": legacy}]);
    }
    let w = u32::from(weight.min(100));
    json!([
        {"destination": legacy, "weight": 100 - w},
        {"destination": {"host": sides.mesh_host(service), "port": {"number": port}}, "weight": w},
    ])
}

#[allow(clippy::too_many_arguments)]
fn virtual_service(sides: &Sides, name: &str, gateway: &str, host: &str, mut routes: Vec<Route>, routed: &[String], weight: u8, profile: &TrafficProfile) -> Value {
    routes.sort_by_key(|a| a.key);
    let http: Vec<Value> = routes
        .iter()
        .map(|r| {
            let mut route = serde_json::Map::new();
            if !r.matches.is_empty() {
                route.insert("match".into(), Value::Array(r.matches.clone()));
            }
            let split = routed.contains(&r.service);
            route.insert("route".into(), destinations(sides, &r.service, r.port, split, weight));
            let mut route = Value::Object(route);
            if split {
                profile.apply_to_route(&mut route);
            }
            route
        })
        .collect();
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": sides.mesh, "labels": labels(sides)},
        "spec": {"hosts": [host], "gateways": [gateway], "http": http},
    })
}

fn gateway(sides: &Sides, name: &str, selector: &str, hosts: &[String], tls: &[(Vec<String>, String)]) -> Value {
    let mut servers = vec![json!({"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts})];
    for (i, (tls_hosts, secret)) in tls.iter().enumerate() {
        let h = if tls_hosts.is_empty() { hosts.to_vec() } else { tls_hosts.clone() };
        servers.push(json!({
            "port": {"number": 443, "name": format!("https-{i}"), "protocol": "HTTPS"},
            "hosts": h,
            "tls": {"mode": "SIMPLE", "credentialName": secret},
        }));
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": sides.mesh, "labels": labels(sides)},
        "spec": {"selector": {"istio": selector}, "servers": servers},
    })
}

/// The Gateways and VirtualServices serving the Ingresses and HTTPRoutes among `legacy` (the
/// legacy namespace's objects; its Services resolve ports given by name) at `weight` % to the
/// mesh for the Services in `routed`, their split routes carrying the route keys of `profile`.
pub fn external(sides: &Sides, legacy: &[Value], routed: &[String], weight: u8, selector: &str, profile: &TrafficProfile) -> External {
    let services: Vec<&Value> = legacy.iter().filter(|o| str_at(o, "/kind") == Some("Service")).collect();
    let mut out = External::default();
    let mut gateways = Vec::new();
    let mut vss = Vec::new();
    for obj in legacy {
        let api = str_at(obj, "/apiVersion").unwrap_or_default();
        let kind = str_at(obj, "/kind").unwrap_or_default();
        let name = str_at(obj, "/metadata/name").unwrap_or_default();
        let (prefix, source) = match (kind, api) {
            ("Ingress", "networking.k8s.io/v1") => ("ingress", format!("Ingress/{name}")),
            ("HTTPRoute", a) if a.starts_with("gateway.networking.k8s.io/") => ("httproute", format!("HTTPRoute/{name}")),
            _ => continue,
        };
        let gw_name = format!("{prefix}-{name}");
        // host -> routes, in the order hosts first appear.
        let mut by_host: Vec<(String, Vec<Route>)> = Vec::new();
        let mut tls = Vec::new();
        let add = |by_host: &mut Vec<(String, Vec<Route>)>, host: &str, route: Route| match by_host.iter_mut().find(|(h, _)| h == host) {
            Some((_, r)) => r.push(route),
            None => by_host.push((host.to_string(), vec![route])),
        };
        if kind == "Ingress" {
            for (i, rule) in obj.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let host = rule.get("host").and_then(Value::as_str).unwrap_or("*").to_string();
                for p in rule.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten() {
                    let path = p.get("path").and_then(Value::as_str).unwrap_or("/");
                    let path_type = p.get("pathType").and_then(Value::as_str).unwrap_or("ImplementationSpecific");
                    let at = format!("{source} host {host} path {path}");
                    let Some(uris) = uri_matches(path_type, path) else {
                        out.warnings.push(format!(
                            "{at} (rule {i}): pathType {path_type} means what the Ingress controller makes of it, which the Istio gateway cannot be told; not carried: set pathType Prefix or Exact on the Ingress and run `ns create` again, or route it by hand"
                        ));
                        continue;
                    };
                    let Some(svc) = p.pointer("/backend/service/name").and_then(Value::as_str) else {
                        out.warnings.push(format!("{at}: its backend is not a Service (a resource backend); not carried"));
                        continue;
                    };
                    let Some(port) = p.pointer("/backend/service/port").and_then(|port| service_port(&services, svc, port)) else {
                        out.warnings.push(format!("{at}: the port of Service {svc} is not known (no such port name); not carried"));
                        continue;
                    };
                    let exact = path_type == "Exact";
                    let len = if exact { path.len() } else { path.trim_end_matches('/').len() };
                    let matches = uris.into_iter().map(|u| json!({"uri": u})).collect();
                    let key = (0, std::cmp::Reverse(len), u8::from(!exact), std::cmp::Reverse(0), std::cmp::Reverse(0));
                    add(&mut by_host, &host, Route { matches, service: svc.to_string(), port, key });
                }
            }
            if let Some(b) = obj.pointer("/spec/defaultBackend") {
                match (b.pointer("/service/name").and_then(Value::as_str), b.pointer("/service/port")) {
                    (Some(svc), Some(port)) if service_port(&services, svc, port).is_some() => {
                        let port = service_port(&services, svc, port).expect("checked");
                        let hosts: Vec<String> = if by_host.is_empty() { vec!["*".into()] } else { by_host.iter().map(|(h, _)| h.clone()).collect() };
                        for h in hosts {
                            let key = (1, std::cmp::Reverse(0), 0, std::cmp::Reverse(0), std::cmp::Reverse(0));
                            add(&mut by_host, &h, Route { matches: vec![], service: svc.to_string(), port, key });
                        }
                    }
                    _ => out.warnings.push(format!("{source}: its defaultBackend is not a Service with a known port; not carried")),
                }
            }
            for t in obj.pointer("/spec/tls").and_then(Value::as_array).into_iter().flatten() {
                let hosts: Vec<String> = t.get("hosts").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
                match t.get("secretName").and_then(Value::as_str) {
                    Some(secret) => tls.push((hosts, secret.to_string())),
                    None => out.warnings.push(format!("{source}: a tls entry without secretName (hosts {}); not carried", hosts.join(", "))),
                }
            }
        } else {
            let hostnames: Vec<String> = obj.pointer("/spec/hostnames").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
            let hosts = if hostnames.is_empty() { vec!["*".to_string()] } else { hostnames };
            for (i, rule) in obj.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let at = format!("{source} rule {i}");
                if rule.get("filters").and_then(Value::as_array).is_some_and(|f| !f.is_empty()) {
                    out.warnings.push(format!("{at}: filters (header changes, redirects, rewrites, mirrors) are not carried; the rule is left out"));
                    continue;
                }
                let backends: Vec<&Value> = rule.get("backendRefs").and_then(Value::as_array).into_iter().flatten().collect();
                let [backend] = backends.as_slice() else {
                    out.warnings.push(format!("{at}: {} backends (a split of its own, or none); only one Service backend is carried, the rule is left out", backends.len()));
                    continue;
                };
                let group = backend.get("group").and_then(Value::as_str).unwrap_or("");
                let bkind = backend.get("kind").and_then(Value::as_str).unwrap_or("Service");
                let bns = backend.get("namespace").and_then(Value::as_str);
                let (Some(svc), Some(port), "", "Service") = (backend.get("name").and_then(Value::as_str), backend.get("port").and_then(Value::as_i64), group, bkind) else {
                    out.warnings.push(format!("{at}: its backend is not a Service of {} with a port; the rule is left out", sides.legacy));
                    continue;
                };
                if bns.is_some_and(|n| n != sides.legacy) {
                    out.warnings.push(format!("{at}: its backend is in namespace {}; the rule is left out", bns.unwrap_or_default()));
                    continue;
                }
                let default_match = [json!({"path": {"type": "PathPrefix", "value": "/"}})];
                let matches: Vec<&Value> = match rule.get("matches").and_then(Value::as_array) {
                    Some(m) if !m.is_empty() => m.iter().collect(),
                    _ => default_match.iter().collect(),
                };
                for m in matches {
                    let path_type = str_at(m, "/path/type").unwrap_or("PathPrefix");
                    let path = str_at(m, "/path/value").unwrap_or("/");
                    let Some(uris) = uri_matches(path_type, path) else {
                        out.warnings.push(format!("{at} path {path}: path type {path_type} is not carried (its syntax is the implementation's)"));
                        continue;
                    };
                    let mut extra = serde_json::Map::new();
                    let mut unsupported = None;
                    let mut headers = serde_json::Map::new();
                    for h in m.get("headers").and_then(Value::as_array).into_iter().flatten() {
                        match (h.get("type").and_then(Value::as_str).unwrap_or("Exact"), str_at(h, "/name"), str_at(h, "/value")) {
                            ("Exact", Some(n), Some(v)) => {
                                headers.insert(n.to_ascii_lowercase(), json!({"exact": v}));
                            }
                            (t, _, _) => unsupported = Some(format!("header match of type {t}")),
                        }
                    }
                    let mut query = serde_json::Map::new();
                    for q in m.get("queryParams").and_then(Value::as_array).into_iter().flatten() {
                        match (q.get("type").and_then(Value::as_str).unwrap_or("Exact"), str_at(q, "/name"), str_at(q, "/value")) {
                            ("Exact", Some(n), Some(v)) => {
                                query.insert(n.to_string(), json!({"exact": v}));
                            }
                            (t, _, _) => unsupported = Some(format!("query match of type {t}")),
                        }
                    }
                    if let Some(u) = unsupported {
                        out.warnings.push(format!("{at} path {path}: {u} is not carried; the match is left out"));
                        continue;
                    }
                    let (nh, nq) = (headers.len(), query.len());
                    if !headers.is_empty() {
                        extra.insert("headers".into(), Value::Object(headers));
                    }
                    if !query.is_empty() {
                        extra.insert("queryParams".into(), Value::Object(query));
                    }
                    let method = str_at(m, "/method");
                    if let Some(method) = method {
                        extra.insert("method".into(), json!({"exact": method}));
                    }
                    let exact = path_type == "Exact";
                    let len = if exact { path.len() } else { path.trim_end_matches('/').len() };
                    let matches: Vec<Value> = uris
                        .into_iter()
                        .map(|u| {
                            let mut mm = extra.clone();
                            mm.insert("uri".into(), u);
                            Value::Object(mm)
                        })
                        .collect();
                    let key = (u8::from(!exact), std::cmp::Reverse(len), u8::from(method.is_none()), std::cmp::Reverse(nh), std::cmp::Reverse(nq));
                    for h in &hosts {
                        add(&mut by_host, h, Route { matches: matches.clone(), service: svc.to_string(), port, key });
                    }
                }
            }
        }
        if by_host.is_empty() {
            continue;
        }
        let hosts: Vec<String> = by_host.iter().map(|(h, _)| h.clone()).collect();
        let mut services: Vec<String> = by_host.iter().flat_map(|(_, r)| r.iter().map(|r| r.service.clone())).collect();
        services.sort();
        services.dedup();
        let mut names = Vec::new();
        for (host, routes) in by_host {
            let vs_name = format!("{gw_name}-{}", host_slug(&host));
            names.push(vs_name.clone());
            vss.push(virtual_service(sides, &vs_name, &gw_name, &host, routes, routed, weight, profile));
        }
        gateways.push(gateway(sides, &gw_name, selector, &hosts, &tls));
        out.routes.push(ExternalRoute {
            source,
            hosts,
            services,
            gateway: gw_name,
            virtual_services: names,
            tls_secrets: tls.into_iter().map(|(_, s)| s).collect(),
        });
    }
    out.objects = gateways;
    out.objects.extend(vss);
    out
}

/// The mesh weight an external VirtualService routes (over its split routes), `Some(None)` when
/// it splits nothing (only shared backends), `None` when its split routes disagree.
pub fn weight_of(sides: &Sides, vs: &Value) -> Option<Option<u8>> {
    let mut seen: Option<u8> = None;
    for r in vs.pointer("/spec/http").and_then(Value::as_array).into_iter().flatten() {
        let dests = r.get("route").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if dests.len() < 2 {
            continue;
        }
        let mesh: u64 = dests
            .iter()
            .filter(|d| str_at(d, "/destination/host").is_some_and(|h| h.split('.').nth(1) == Some(sides.mesh.as_str())))
            .filter_map(|d| d.get("weight").and_then(Value::as_u64))
            .sum();
        let w = u8::try_from(mesh).ok()?;
        match seen {
            None => seen = Some(w),
            Some(s) if s != w => return None,
            _ => {}
        }
    }
    Some(seen)
}

/// Addresses in a `status.loadBalancer.ingress` list (IPs and host names).
pub fn lb_addresses(obj: &Value) -> Vec<String> {
    obj.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")).and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether a Service fronts the ingress gateway pods `istio: <selector>`.
pub fn is_gateway_service(service: &Value, selector: &str) -> bool {
    str_at(service, "/spec/selector/istio") == Some(selector)
}

/// Where an Ingress's traffic stands: still served by its own controller, or at the Istio
/// ingress gateway's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Switch {
    pub source: String,
    pub hosts: Vec<String>,
    /// The Ingress's own addresses (`status.loadBalancer`).
    pub addresses: Vec<String>,
    /// The ingress gateway Service's addresses, when found.
    pub gateway_addresses: Vec<String>,
    /// The Ingress still receives traffic: it exists with an address that is not the gateway's
    /// (or with no address to tell).
    pub still_served: bool,
}

/// For each Ingress among `legacy`, whether it still takes the traffic of its hosts; each
/// HTTPRoute still attached to its own Gateway takes them as long as it exists (a Gateway API
/// Gateway is its own entry point, whose address is not the Istio ingress gateway's).
pub fn switches(legacy: &[Value], gateway_services: &[Value]) -> Vec<Switch> {
    let gateway_addresses: Vec<String> = gateway_services.iter().flat_map(lb_addresses).collect();
    let routes = legacy.iter().filter(|o| str_at(o, "/kind") == Some("HTTPRoute")).map(|r| {
        let hosts: Vec<String> = r.pointer("/spec/hostnames").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        Switch {
            source: format!("HTTPRoute/{}", str_at(r, "/metadata/name").unwrap_or("?")),
            hosts: if hosts.is_empty() { vec!["*".into()] } else { hosts },
            addresses: Vec::new(),
            gateway_addresses: gateway_addresses.clone(),
            still_served: true,
        }
    });
    let ingresses: Vec<Switch> = legacy
        .iter()
        .filter(|o| str_at(o, "/kind") == Some("Ingress"))
        .map(|ing| {
            let addresses = lb_addresses(ing);
            let mut hosts: Vec<String> = ing
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| r.get("host").and_then(Value::as_str).unwrap_or("*").to_string())
                .collect();
            hosts.dedup();
            // Istio serving the Ingress itself (class `istio`) shares the gateway's address but
            // routes to the legacy Service without the split: it still takes the traffic.
            // <https://istio.io/latest/docs/tasks/traffic-management/ingress/kubernetes-ingress/>
            let istio_class = str_at(ing, "/spec/ingressClassName") == Some("istio")
                || str_at(ing, "/metadata/annotations/kubernetes.io~1ingress.class") == Some("istio");
            let still_served = istio_class || addresses.is_empty() || addresses.iter().any(|a| !gateway_addresses.contains(a));
            Switch {
                source: format!("Ingress/{}", str_at(ing, "/metadata/name").unwrap_or("?")),
                hosts,
                addresses,
                gateway_addresses: gateway_addresses.clone(),
                still_served,
            }
        })
        .collect();
    ingresses.into_iter().chain(routes).collect()
}

/// The Services an Ingress (its rules and default backend) or an HTTPRoute (backendRefs of kind
/// Service in its own namespace) sends traffic to.
pub fn backend_services(obj: &Value) -> Vec<String> {
    if str_at(obj, "/kind") == Some("HTTPRoute") {
        let ns = str_at(obj, "/metadata/namespace");
        let mut out: Vec<String> = obj
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|r| r.get("backendRefs").and_then(Value::as_array).into_iter().flatten())
            .filter(|b| b.get("kind").and_then(Value::as_str).is_none_or(|k| k == "Service") && b.get("group").and_then(Value::as_str).is_none_or(str::is_empty))
            .filter(|b| b.get("namespace").and_then(Value::as_str).is_none_or(|n| Some(n) == ns))
            .filter_map(|b| str_at(b, "/name").map(str::to_string))
            .collect();
        out.sort();
        out.dedup();
        return out;
    }
    ingress_services(obj)
}

/// Ingress backends: the Services each Ingress sends traffic to.
pub fn ingress_services(ing: &Value) -> Vec<String> {
    let mut out: Vec<String> = ing
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| r.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|p| str_at(p, "/backend/service/name").map(str::to_string))
        .chain(str_at(ing, "/spec/defaultBackend/service/name").map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Group hosts per Service for messages.
pub fn hosts_by_service(routes: &[ExternalRoute]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in routes {
        for s in &r.services {
            m.entry(s.clone()).or_default().extend(r.hosts.iter().cloned());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sides() -> Sides {
        Sides::new("shop").unwrap()
    }

    fn svc(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"ports": [{"name": "http", "port": 80}]}})
    }

    fn ingress(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
    }

    /// Which route of the VirtualService an Istio gateway takes for `path`: the first whose
    /// URI match holds (Istio's order), as `exact`/`prefix` string comparisons.
    fn taken<'a>(vs: &'a Value, path: &str) -> Option<&'a Value> {
        vs["spec"]["http"].as_array().unwrap().iter().find(|r| match r.get("match").and_then(Value::as_array) {
            None => true,
            Some(ms) => ms.iter().any(|m| match (m["uri"]["exact"].as_str(), m["uri"]["prefix"].as_str()) {
                (Some(e), _) => path == e,
                (_, Some(p)) => path.starts_with(p),
                _ => false,
            }),
        })
    }

    /// Kubernetes' own rule for an Ingress path (element-wise prefix, longest wins, Exact
    /// before Prefix), from the table in the Ingress docs.
    fn k8s_matches(path_type: &str, path: &str, request: &str) -> bool {
        match path_type {
            "Exact" => request == path,
            _ => {
                let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                let r: Vec<&str> = request.split('/').filter(|s| !s.is_empty()).collect();
                r.len() >= p.len() && r[..p.len()] == p[..]
            }
        }
    }

    #[test]
    fn ingress_paths_keep_their_kubernetes_meaning() {
        // The examples of https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
        let paths = [("Prefix", "/", "root"), ("Prefix", "/foo", "foo"), ("Exact", "/foo", "foo-exact"), ("Prefix", "/foo/bar/", "foobar"), ("Prefix", "/aaa/bbb", "ab")];
        let spec = json!({"rules": [{"host": "shop.example.com", "http": {"paths": paths.iter().map(|(t, p, s)| json!({
            "path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}})).collect::<Vec<_>>()}}]});
        let objs = vec![ingress(spec)];
        let ext = external(&sides(), &objs, &[], 0, DEFAULT_SELECTOR, &TrafficProfile::default());
        assert!(ext.warnings.is_empty(), "{:?}", ext.warnings);
        let vs = ext.objects.iter().find(|o| o["kind"] == "VirtualService").unwrap();
        for request in ["/", "/foo", "/foo/", "/foobar", "/foo/bar", "/foo/bar/", "/foo/bar/baz", "/aaa/bbb", "/aaa/bbbxyz", "/aaa/bbb/c", "/x"] {
            // The longest matching Ingress path, Exact first at the same length.
            let want = paths
                .iter()
                .filter(|(t, p, _)| k8s_matches(t, p, request))
                .max_by_key(|(t, p, _)| (p.trim_end_matches('/').len(), *t == "Exact"))
                .map(|(_, _, s)| *s);
            let got = taken(vs, request).map(|r| {
                let host = r["route"][0]["destination"]["host"].as_str().unwrap();
                host.split('.').next().unwrap().to_string()
            });
            assert_eq!(got.as_deref(), want, "request {request}");
        }
    }

    #[test]
    fn gateway_and_split_follow_the_ingress_and_the_weight() {
        let spec = json!({
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
            "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                    {"path": "/db", "pathType": "Prefix", "backend": {"service": {"name": "db", "port": {"number": 80}}}},
                    {"path": "/legacy", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                {"host": "api.example.com", "http": {"paths": [
                    {"path": "/v1", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]});
        let objs = vec![svc("web"), svc("db"), ingress(spec)];
        let ext = external(&sides(), &objs, &["web".to_string()], 25, "my-gw", &TrafficProfile::default());
        assert_eq!(ext.warnings.len(), 1);
        assert!(ext.warnings[0].starts_with("Ingress/web host shop.example.com path /legacy (rule 0): pathType ImplementationSpecific"), "{}", ext.warnings[0]);
        let gw = &ext.objects[0];
        assert_eq!(gw["kind"], "Gateway");
        assert_eq!(gw["metadata"]["name"], "ingress-web");
        assert_eq!(gw["metadata"]["namespace"], "shop-mesh");
        assert_eq!(gw["spec"]["selector"], json!({"istio": "my-gw"}));
        assert_eq!(gw["spec"]["servers"][0]["hosts"], json!(["shop.example.com", "api.example.com"]));
        assert_eq!(gw["spec"]["servers"][1]["tls"], json!({"mode": "SIMPLE", "credentialName": "shop-tls"}));
        assert_eq!(gw["spec"]["servers"][1]["hosts"], json!(["shop.example.com"]));
        let shop = ext.objects.iter().find(|o| o["metadata"]["name"] == "ingress-web-shop.example.com").unwrap();
        assert_eq!(shop["spec"]["gateways"], json!(["ingress-web"]));
        assert_eq!(weight_of(&sides(), shop), Some(Some(25)));
        // The shared backend keeps all its traffic on the legacy side.
        let db = taken(shop, "/db/x").unwrap();
        assert_eq!(db["route"], json!([{"destination": {"host": "db.shop.svc.cluster.local", "port": {"number": 80}}}]));
        let web = taken(shop, "/").unwrap();
        assert_eq!(web["route"][0]["weight"], 75);
        assert_eq!(web["route"][1]["destination"]["host"], "web.shop-mesh.svc.cluster.local");
        let api = ext.objects.iter().find(|o| o["metadata"]["name"] == "ingress-web-api.example.com").unwrap();
        assert!(taken(api, "/v1/").is_none());
        assert_eq!(ext.routes[0].services, ["db", "web"]);
        assert_eq!(ext.routes[0].tls_secrets, ["shop-tls"]);
        let again = external(&sides(), &objs, &["web".to_string()], 100, "my-gw", &TrafficProfile::default());
        assert_eq!(weight_of(&sides(), &again.objects[1]), Some(Some(100)));
    }

    /// The split routes carry the traffic profile, as the splitting VirtualServices do (one rule:
    /// `TrafficProfile::apply_to_route`); the shared backend's single route, which no splitting
    /// VirtualService covers, keeps Istio's defaults.
    #[test]
    fn split_routes_carry_the_timeout_and_retries_of_the_profile() {
        let spec = json!({"rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "/db", "pathType": "Prefix", "backend": {"service": {"name": "db", "port": {"number": 80}}}}]}}]});
        let policy = TrafficProfile {
            http_timeout: Some("30s".into()),
            retries: Some(3),
            per_try_timeout: Some("10s".into()),
            retry_on: Some("5xx".into()),
            ..TrafficProfile::default()
        };
        let ext = external(&sides(), &[svc("web"), svc("db"), ingress(spec)], &["web".to_string()], 10, DEFAULT_SELECTOR, &policy);
        let vs = ext.objects.iter().find(|o| o["kind"] == "VirtualService").unwrap();
        // The same keys the splitting VirtualService of `web` gets.
        let mut expected = json!({});
        policy.apply_to_route(&mut expected);
        let web = taken(vs, "/").unwrap();
        assert_eq!((&web["timeout"], &web["retries"]), (&expected["timeout"], &expected["retries"]));
        assert_eq!(web["retries"], json!({"attempts": 3, "perTryTimeout": "10s", "retryOn": "5xx"}));
        let db = taken(vs, "/db").unwrap();
        assert!(db.get("timeout").is_none() && db.get("retries").is_none(), "{db}");
    }

    #[test]
    fn the_default_backend_takes_what_no_path_matches_on_every_host() {
        let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
        let spec = json!({"defaultBackend": backend, "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8080}}}}]}}]});
        let ext = external(&sides(), &[ingress(spec)], &["web".into()], 10, DEFAULT_SELECTOR, &TrafficProfile::default());
        let vs = ext.objects.iter().find(|o| o["kind"] == "VirtualService").unwrap();
        assert_eq!(taken(vs, "/api/x").unwrap()["route"][0]["destination"]["host"], "api.shop.svc.cluster.local");
        let other = taken(vs, "/other").unwrap();
        assert!(other.get("match").is_none(), "the catch-all comes last");
        assert_eq!(other["route"][1]["weight"], 10);
        // Without rules, the default backend serves every host.
        let only = external(&sides(), &[ingress(json!({"defaultBackend": backend}))], &[], 0, DEFAULT_SELECTOR, &TrafficProfile::default());
        assert_eq!(only.routes[0].hosts, ["*"]);
        assert_eq!(only.objects[1]["metadata"]["name"], "ingress-web-any");
        assert_eq!(only.objects[0]["spec"]["servers"][0]["hosts"], json!(["*"]));
    }

    #[test]
    fn http_routes_are_carried_in_gateway_api_precedence_and_unsupported_rules_named() {
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"hostnames": ["shop.example.com"], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [{"name": "web", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "X-Canary", "value": "1"}]}], "backendRefs": [{"name": "api", "port": 8080}]},
                {"matches": [{"path": {"type": "RegularExpression", "value": "/re.*"}}], "backendRefs": [{"name": "web", "port": 80}]},
                {"backendRefs": [{"name": "web", "port": 80, "weight": 1}, {"name": "api", "port": 8080, "weight": 1}]},
                {"filters": [{"type": "RequestRedirect"}], "backendRefs": [{"name": "web", "port": 80}]}]}});
        let ext = external(&sides(), &[route], &["web".into(), "api".into()], 10, DEFAULT_SELECTOR, &TrafficProfile::default());
        assert_eq!(ext.warnings.len(), 3, "{:?}", ext.warnings);
        let vs = ext.objects.iter().find(|o| o["kind"] == "VirtualService").unwrap();
        assert_eq!(vs["metadata"]["name"], "httproute-web-shop.example.com");
        let first = &vs["spec"]["http"][0];
        assert_eq!(first["match"][0]["headers"], json!({"x-canary": {"exact": "1"}}));
        assert_eq!(first["match"][0]["uri"], json!({"exact": "/api"}));
        assert_eq!(first["route"][1]["weight"], 10);
        assert_eq!(vs["spec"]["http"][1]["match"][0]["uri"], json!({"prefix": "/"}));
    }

    #[test]
    fn an_ingress_still_served_by_its_controller_is_told_apart() {
        let mut ing = ingress(json!({"rules": [{"host": "shop.example.com"}]}));
        ing["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
        let gw = json!({"kind": "Service", "spec": {"selector": {"istio": "ingressgateway"}}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}]}}});
        assert!(is_gateway_service(&gw, DEFAULT_SELECTOR));
        let s = switches(std::slice::from_ref(&ing), std::slice::from_ref(&gw));
        assert!(s[0].still_served);
        assert_eq!((s[0].hosts.clone(), s[0].gateway_addresses.clone()), (vec!["shop.example.com".to_string()], vec!["203.0.113.20".to_string()]));
        ing["status"]["loadBalancer"]["ingress"][0]["ip"] = json!("203.0.113.20");
        assert!(!switches(std::slice::from_ref(&ing), std::slice::from_ref(&gw))[0].still_served);
        let mut istio = ing.clone();
        istio["spec"]["ingressClassName"] = json!("istio");
        assert!(switches(std::slice::from_ref(&istio), std::slice::from_ref(&gw))[0].still_served, "Istio's own Ingress support routes without the split");
        // An HTTPRoute takes its hosts' traffic through its own Gateway while it exists.
        let route = json!({"kind": "HTTPRoute", "metadata": {"name": "www", "namespace": "shop"},
            "spec": {"hostnames": ["www.example.com"], "rules": [{"backendRefs": [{"name": "web", "port": 80}, {"name": "x", "namespace": "other", "port": 80}]}]}});
        let s = switches(&[ing, route.clone()], &[gw]);
        assert_eq!((s[1].source.as_str(), s[1].still_served), ("HTTPRoute/www", true));
        assert_eq!(backend_services(&route), ["web"]);
    }
}
