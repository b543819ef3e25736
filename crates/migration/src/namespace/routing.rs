//! The routing objects of a migration: per Service of the legacy namespace, one VirtualService in
//! the mesh namespace for the legacy host `<svc>.<ns>.svc.cluster.local` that splits each port's
//! traffic between the legacy Service and its copy by weight, and one DestinationRule for the copy
//! from the traffic profile `enable` uses too ([`TrafficProfile`]: the seed plans' connection pool
//! and outlier detection by default).
//!
//! The VirtualService is bound to the `mesh` gateway (Istio's default when `gateways` is absent):
//! the split applies to calls made by meshed workloads — the copies themselves, other meshed
//! namespaces and ingress gateways routing to the legacy host. Callers without a proxy resolve the
//! legacy Service directly and keep reaching the legacy side until they join the mesh.
//!
//! Port protocols are Istio's selection ([`meshmove_istio::protocol`]: `appProtocol` first,
//! including `kubernetes.io/h2c`, else the port name's prefix): HTTP, HTTP2, gRPC and gRPC-Web
//! ports get `http` routes; TCP, TLS, Mongo, MySQL and Redis ports get `tcp` routes; ports whose
//! protocol Istio detects at run time (no known name, or an `appProtocol` Istio does not know —
//! it never falls back to the name) get both, so the split holds whichever way the traffic is
//! classified. Headless and ExternalName Services are not routed
//! (there is no virtual IP to split), which the plan lists.

use serde::Serialize;
use serde_json::{Value, json};

use super::{COPIED_FROM_LABEL, MANAGED_BY, ROLE_LABEL, Sides};

/// The traffic profile of the DestinationRules and HTTP routes: the one `enable` uses too (the
/// seed plans' values by default, `--profile FILE` and one flag per key override them).
pub use meshmove_istio::traffic::TrafficProfile;

/// The ports of routable Services whose traffic is routed as TCP only (`service:port`): the
/// profile's HTTP timeout and retries do not apply to them.
pub fn tcp_only_ports(services: &[&Value]) -> Vec<String> {
    let mut out = Vec::new();
    for s in services {
        let name = s.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        for p in s.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            if p.get("protocol").and_then(Value::as_str).is_some_and(|pr| pr != "TCP") {
                continue;
            }
            if let Some(port) = p.get("port").and_then(Value::as_i64)
                && port_protocol(p) == PortProtocol::Tcp
            {
                out.push(format!("{name}:{port}"));
            }
        }
    }
    out
}

/// How a port's traffic is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProtocol {
    Http,
    Tcp,
    /// Detected at run time: routed both ways.
    Detected,
}

/// How Istio's protocol selection for a Service port is routed: HTTP-family protocols (HTTP,
/// HTTP2, gRPC, gRPC-Web) get `http` routes, sniffed ports get both, every other protocol `tcp`
/// routes. The selection itself is [`meshmove_istio::protocol::port_protocol`], Istio's
/// `ConvertProtocol` (`appProtocol` when set, with no fallback to the name; `h2c` is no protocol
/// name Istio knows, only `appProtocol: kubernetes.io/h2c` is).
pub fn port_protocol(port: &Value) -> PortProtocol {
    let p = meshmove_istio::protocol::port_protocol(port);
    if p.is_http() {
        PortProtocol::Http
    } else if p.is_sniffed() {
        PortProtocol::Detected
    } else {
        PortProtocol::Tcp
    }
}

/// A Service that cannot be routed by weight, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrouted {
    pub service: String,
    pub reason: String,
}

/// Which Services of the legacy namespace are routed, and the ones that are not.
pub fn routable(services: &[Value]) -> (Vec<&Value>, Vec<Unrouted>) {
    let mut ok = Vec::new();
    let mut not = Vec::new();
    for s in services {
        let name = s.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_string();
        let reason = if s.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
            Some("ExternalName Service: nothing to split")
        } else if s.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None") {
            Some("headless Service: clients address pods directly")
        } else if s.pointer("/spec/ports").and_then(Value::as_array).is_none_or(|p| p.is_empty()) {
            Some("no ports")
        } else if s
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().all(|p| p.get("protocol").and_then(Value::as_str).is_some_and(|pr| pr != "TCP")))
        {
            Some("only UDP/SCTP ports: Istio does not route them")
        } else {
            None
        };
        match reason {
            Some(r) => not.push(Unrouted { service: name, reason: r.into() }),
            None => ok.push(s),
        }
    }
    (ok, not)
}

fn labels(sides: &Sides, role: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": MANAGED_BY, COPIED_FROM_LABEL: sides.legacy, ROLE_LABEL: role})
}

/// The VirtualService splitting `service` (a legacy Service object) at `weight` % to the mesh.
/// Its `http` routes carry the profile's timeout and retries; `tcp` routes have no such fields in
/// Istio's API (`TCPRoute`) and get none.
pub fn virtual_service(sides: &Sides, service: &Value, weight: u8, profile: &TrafficProfile) -> Value {
    let name = service.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let legacy = sides.legacy_host(name);
    let mesh = sides.mesh_host(name);
    let w = u32::from(weight.min(100));
    let route = |port: i64| {
        json!([
            {"destination": {"host": legacy, "port": {"number": port}}, "weight": 100 - w},
            {"destination": {"host": mesh, "port": {"number": port}}, "weight": w},
        ])
    };
    let mut http = Vec::new();
    let mut tcp = Vec::new();
    for p in service.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        if p.get("protocol").and_then(Value::as_str).is_some_and(|pr| pr != "TCP") {
            continue;
        }
        let Some(port) = p.get("port").and_then(Value::as_i64) else { continue };
        let proto = port_protocol(p);
        if matches!(proto, PortProtocol::Http | PortProtocol::Detected) {
            let mut r = json!({"name": format!("port-{port}"), "match": [{"port": port}], "route": route(port)});
            profile.apply_to_route(&mut r);
            http.push(r);
        }
        if matches!(proto, PortProtocol::Tcp | PortProtocol::Detected) {
            tcp.push(json!({"match": [{"port": port}], "route": route(port)}));
        }
    }
    let mut spec = serde_json::Map::new();
    spec.insert("hosts".into(), json!([legacy]));
    if !http.is_empty() {
        spec.insert("http".into(), Value::Array(http));
    }
    if !tcp.is_empty() {
        spec.insert("tcp".into(), Value::Array(tcp));
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": sides.mesh, "labels": labels(sides, "traffic-shift")},
        "spec": spec,
    })
}

/// The DestinationRule for the copy of `service` in the mesh namespace, its `trafficPolicy` from
/// the traffic profile (field placement: [`TrafficProfile::traffic_policy`]).
pub fn destination_rule(sides: &Sides, service: &Value, profile: &TrafficProfile) -> Value {
    let name = service.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": sides.mesh, "labels": labels(sides, "traffic-policy")},
        "spec": {
            "host": sides.mesh_host(name),
            "trafficPolicy": profile.traffic_policy(),
        },
    })
}

/// The mesh weight a VirtualService routes, if every route of it agrees on one (a hand-edited
/// VirtualService whose routes disagree yields `None`).
pub fn weight_of(sides: &Sides, vs: &Value) -> Option<u8> {
    let mut seen: Option<u8> = None;
    for section in ["http", "tcp"] {
        for r in vs.pointer(&format!("/spec/{section}")).and_then(Value::as_array).into_iter().flatten() {
            let mut mesh_w = 0u64;
            let mut total = 0u64;
            for d in r.get("route").and_then(Value::as_array).into_iter().flatten() {
                let w = d.get("weight").and_then(Value::as_u64).unwrap_or(0);
                total += w;
                let host = d.pointer("/destination/host").and_then(Value::as_str).unwrap_or_default();
                if host.split('.').nth(1) == Some(sides.mesh.as_str()) {
                    mesh_w += w;
                }
            }
            if total != 100 {
                return None;
            }
            let w = u8::try_from(mesh_w).ok()?;
            match seen {
                None => seen = Some(w),
                Some(s) if s != w => return None,
                _ => {}
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"}, "spec": {"ports": ports}})
    }

    #[test]
    fn protocols_follow_istio_selection() {
        assert_eq!(port_protocol(&json!({"name": "http-web", "port": 80})), PortProtocol::Http);
        assert_eq!(port_protocol(&json!({"name": "grpc", "port": 9000})), PortProtocol::Http);
        assert_eq!(port_protocol(&json!({"name": "x", "appProtocol": "kubernetes.io/h2c", "port": 80})), PortProtocol::Http);
        assert_eq!(port_protocol(&json!({"name": "redis", "port": 6379})), PortProtocol::Tcp);
        assert_eq!(port_protocol(&json!({"name": "https", "port": 443})), PortProtocol::Tcp);
        assert_eq!(port_protocol(&json!({"port": 8002})), PortProtocol::Detected);
        assert_eq!(port_protocol(&json!({"name": "postgres", "port": 5432})), PortProtocol::Detected);
    }

    #[test]
    fn virtual_service_splits_every_port_by_weight() {
        let sides = Sides::new("shop").unwrap();
        let s = svc("api", json!([{"name": "http", "port": 80}, {"name": "redis", "port": 6379}, {"port": 9000}]));
        let vs = virtual_service(&sides, &s, 25, &TrafficProfile::default());
        assert_eq!(vs["metadata"]["namespace"], "shop-mesh");
        assert_eq!(vs["spec"]["hosts"], json!(["api.shop.svc.cluster.local"]));
        let http = vs["spec"]["http"].as_array().unwrap();
        let tcp = vs["spec"]["tcp"].as_array().unwrap();
        assert_eq!(http.len(), 2, "http port and the detected one");
        assert_eq!(tcp.len(), 2, "redis and the detected one");
        assert_eq!(
            http[0]["route"][0],
            json!({"destination": {"host": "api.shop.svc.cluster.local", "port": {"number": 80}}, "weight": 75})
        );
        assert_eq!(http[0]["route"][1]["destination"]["host"], "api.shop-mesh.svc.cluster.local");
        assert_eq!(http[0]["route"][1]["weight"], 25);
        assert_eq!(weight_of(&sides, &vs), Some(25));
        assert_eq!(weight_of(&sides, &virtual_service(&sides, &s, 0, &TrafficProfile::default())), Some(0));
        assert_eq!(weight_of(&sides, &virtual_service(&sides, &s, 100, &TrafficProfile::default())), Some(100));
        // A hand edit that makes routes disagree is not a weight.
        let mut edited = vs.clone();
        edited["spec"]["tcp"][0]["route"][0]["weight"] = json!(50);
        edited["spec"]["tcp"][0]["route"][1]["weight"] = json!(50);
        assert_eq!(weight_of(&sides, &edited), None);
        edited["spec"]["tcp"][0]["route"][1]["weight"] = json!(40);
        assert_eq!(weight_of(&sides, &edited), None, "weights not summing to 100");
    }

    #[test]
    fn timeouts_and_retries_go_on_http_routes_only() {
        let sides = Sides::new("shop").unwrap();
        let s = svc("api", json!([{"name": "http", "port": 80}, {"name": "redis", "port": 6379}, {"port": 9000}]));
        let policy = TrafficProfile { http_timeout: Some("30s".into()), retries: Some(3), ..TrafficProfile::default() };
        let vs = virtual_service(&sides, &s, 10, &policy);
        for r in vs["spec"]["http"].as_array().unwrap() {
            assert_eq!((&r["timeout"], &r["retries"]), (&json!("30s"), &json!({"attempts": 3})));
        }
        for r in vs["spec"]["tcp"].as_array().unwrap() {
            assert!(r.get("timeout").is_none() && r.get("retries").is_none(), "{r}");
        }
        // The weight reading ignores them.
        assert_eq!(weight_of(&sides, &vs), Some(10));
        // Only the redis port is TCP alone; the sniffed one has an HTTP route too.
        assert_eq!(tcp_only_ports(&[&s]), ["api:6379"]);
    }

    #[test]
    fn unroutable_services_are_listed() {
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
        let ext = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "x.example.com"}});
        let udp = json!({"metadata": {"name": "dns"}, "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}});
        let ok = svc("api", json!([{"port": 80}]));
        let all = [headless, ext, udp, ok];
        let (r, u) = routable(&all);
        assert_eq!(r.len(), 1);
        assert_eq!(u.iter().map(|u| u.service.as_str()).collect::<Vec<_>>(), ["db", "ext", "dns"]);
    }

    #[test]
    fn destination_rule_uses_the_seed_defaults() {
        let sides = Sides::new("shop").unwrap();
        let dr = destination_rule(&sides, &svc("api", json!([{"port": 80}])), &TrafficProfile::default());
        assert_eq!(dr["spec"]["host"], "api.shop-mesh.svc.cluster.local");
        // Every value of the seed plan (Zamaz), where Istio's DestinationRule API places it.
        assert_eq!(
            dr["spec"]["trafficPolicy"],
            json!({
                "connectionPool": {
                    "tcp": {"maxConnections": 100, "connectTimeout": "30s"},
                    "http": {"http1MaxPendingRequests": 1000, "maxRequestsPerConnection": 10}
                },
                "outlierDetection": {
                    "consecutiveGatewayErrors": 5, "consecutive5xxErrors": 5, "interval": "30s",
                    "baseEjectionTime": "30s", "maxEjectionPercent": 50
                }
            })
        );
        let custom = TrafficProfile { max_connections: 7, consecutive_gateway_errors: 2, ..TrafficProfile::default() };
        let dr = destination_rule(&sides, &svc("api", json!([{"port": 80}])), &custom);
        assert_eq!(dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"], 7);
        assert_eq!(dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutiveGatewayErrors"], 2);
    }
}
