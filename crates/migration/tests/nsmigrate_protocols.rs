//! The namespace migration routes each Service port by the protocol Istio selects for it
//! (`meshmove_istio::protocol`, Istio's `ConvertProtocol`): HTTP-family ports get `http` routes,
//! ports Istio sniffs get both, the rest `tcp` routes. These tests check the routes of the
//! generated VirtualService against that rule, including the two cases the routing used to get
//! wrong.

use meshmove_migration::namespace::Sides;
use meshmove_migration::namespace::routing::{PortProtocol, TrafficProfile, port_protocol, virtual_service};
use meshmove_istio::protocol;
use serde_json::{Value, json};

/// `(routed as http, routed as tcp)` for the one port of a Service, from the VirtualService.
fn routes(port: Value) -> (bool, bool) {
    let sides = Sides::new("shop").unwrap();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"}, "spec": {"ports": [port]}});
    let vs = virtual_service(&sides, &svc, 10, &TrafficProfile::default());
    (vs["spec"].get("http").is_some(), vs["spec"].get("tcp").is_some())
}

#[test]
fn nsmigrate_unknown_app_protocol_with_an_http_name_is_not_routed_as_http() {
    // appProtocol replaces the name; Istio cannot parse `foo`, so it sniffs: both routes.
    let port = json!({"name": "http-web", "port": 8080, "appProtocol": "foo"});
    assert!(protocol::port_protocol(&port).is_sniffed());
    assert_eq!(port_protocol(&port), PortProtocol::Detected);
    assert_eq!(routes(port), (true, true));
}

#[test]
fn nsmigrate_h2c_port_name_is_not_http() {
    let port = json!({"name": "h2c-x", "port": 8080});
    assert!(!protocol::port_protocol(&port).is_http());
    assert_eq!(port_protocol(&port), PortProtocol::Detected);
    assert_eq!(routes(port), (true, true));
    // Only the Kubernetes standard appProtocol declares h2c.
    let port = json!({"name": "x", "port": 8080, "appProtocol": "kubernetes.io/h2c"});
    assert_eq!(routes(port), (true, false));
}

#[test]
fn nsmigrate_routes_follow_istios_selection_for_every_kind_of_port() {
    let mut checked = 0;
    for app in [None, Some("http"), Some("grpc-web"), Some("kubernetes.io/h2c"), Some("kubernetes.io/ws"), Some("kubernetes.io/wss"), Some("https"), Some("mongo"), Some("foo"), Some("")] {
        for name in [None, Some("http"), Some("HTTP2-a"), Some("grpc"), Some("h2c"), Some("tcp-db"), Some("tls"), Some("redis"), Some("web")] {
            for number in [8080, 3306] {
                let mut port = json!({"port": number});
                if let Some(a) = app {
                    port["appProtocol"] = json!(a);
                }
                if let Some(n) = name {
                    port["name"] = json!(n);
                }
                let istio = protocol::port_protocol(&port);
                let want = (istio.is_http() || istio.is_sniffed(), !istio.is_http());
                assert_eq!(routes(port.clone()), want, "{port}: Istio selects {istio}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 180);
}
