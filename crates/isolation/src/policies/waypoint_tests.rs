//! Destinations behind an ambient waypoint, judged by the engine: the generated policies are
//! added to the input and the engine says who reaches whom.

use super::tests::{Oracle, SHOP, inventory, release};
use super::*;

const BOUND_NS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}
---
";

const AMBIENT_NS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
";

/// The waypoint `istioctl waypoint apply` writes, and the Deployment Istio creates for it.
const WAYPOINT: &str = "
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: waypoint, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
spec:
  selector: {matchLabels: {gateway.networking.k8s.io/gateway-name: waypoint}}
  template:
    metadata: {labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
    spec: {serviceAccountName: waypoint, containers: [{name: istio-proxy, image: istio/proxyv2:1.27.0, ports: [{containerPort: 15008}]}]}
";

fn protected(g: &Generation) -> Vec<&str> {
    g.policies
        .iter()
        .filter(|p| !p.egress)
        .map(|p| p.protects.as_str())
        .collect()
}

#[test]
fn a_service_bound_to_a_waypoint_the_input_does_not_show_keeps_its_pods_open() {
    // Only db's Service is bound: api keeps its policy, db gets none (and no companion).
    let yaml = format!(
        "{AMBIENT_NS}{}",
        SHOP.replace(
            "metadata: {name: db}\nspec: {selector",
            "metadata: {name: db, labels: {istio.io/use-waypoint: waypoint}}\nspec: {selector"
        )
    );
    let input = inventory(&yaml);
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    assert!(
        protected(&g).contains(&"Deployment/api"),
        "{:?}",
        g.withheld
    );
    assert!(
        !protected(&g).contains(&"StatefulSet/db"),
        "{:?}",
        protected(&g)
    );
    let w = g
        .withheld
        .iter()
        .find(|w| w.subject == "StatefulSet/db")
        .expect("db withheld");
    assert!(
        w.reason
            .starts_with("Service/db is labelled istio.io/use-waypoint=waypoint"),
        "{w:?}"
    );
    assert!(
        w.isolate_with
            .contains("networkPolicies.isolateAnyway: [db]"),
        "{w:?}"
    );
    // The engine: with no policy on db, a waypoint anywhere still reaches it on 15008.
    let waypoint = meshmove_netpol::PodInfo::new("shop", "waypoint-1")
        .with_labels([("gateway.networking.k8s.io/gateway-name", "waypoint")]);
    let o = Oracle::with_pods(&input, &g, vec![waypoint]);
    assert!(o.reaches("waypoint-1", "db", HBONE_PORT) && o.reaches("waypoint-1", "db", 5432));
    assert!(
        o.reaches("web", "api", 8080),
        "api's policy keeps its caller"
    );

    // The override writes it, and says what it cuts.
    let forced = PolicyOptions {
        isolate_anyway: vec!["db".into()],
        ..PolicyOptions::default()
    };
    let g = generate(&input, &release(&forced, MeshMode::Ambient));
    assert!(
        protected(&g).contains(&"StatefulSet/db"),
        "{:?}",
        g.withheld
    );
    assert!(
        g.notes.iter().any(|n| n.starts_with(
            "StatefulSet/db: policy written anyway (networkPolicies.isolateAnyway: [db]"
        )),
        "{:?}",
        g.notes
    );
}

#[test]
fn the_waypoints_pods_are_admitted_on_15008_and_its_identity_by_the_companion() {
    let input = inventory(&format!("{BOUND_NS}{SHOP}{WAYPOINT}"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    for subject in ["Deployment/api", "StatefulSet/db"] {
        let p = g
            .policies
            .iter()
            .find(|p| p.protects == subject)
            .unwrap_or_else(|| panic!("{subject}: {:?}", g.withheld));
        assert!(p.authorization.is_some(), "{subject}: {:?}", g.notes);
        assert!(
            p.admits
                .iter()
                .any(|a| a.starts_with("waypoint shop/waypoint (Deployment/waypoint)")),
            "{:?}",
            p.admits
        );
    }
    let o = Oracle::new(&input, &g);
    assert!(
        o.engine.pod(o.pod("waypoint")).ambient,
        "the waypoint's pods as the engine sees them"
    );
    for (to, port) in [("db", 5432), ("api", 8080)] {
        assert!(o.reaches("waypoint", to, port), "waypoint -> {to} {port}");
        assert!(
            o.reaches("waypoint", to, HBONE_PORT),
            "waypoint -> {to} 15008"
        );
        assert!(
            !o.reaches("waypoint", to, 9999),
            "the companion admits the waypoint on the ports in use only"
        );
        for stranger in ["stranger", "ambient-stranger"] {
            assert!(
                !o.reaches(stranger, to, port) && !o.reaches(stranger, to, HBONE_PORT),
                "{stranger} -> {to}"
            );
        }
    }
    // The clients themselves are still admitted, as before.
    assert!(o.reaches("api", "db", 5432) && o.reaches("web", "api", 8080));
    // The companion names the waypoint's service account.
    let ap = g
        .policies
        .iter()
        .find(|p| p.protects == "StatefulSet/db")
        .and_then(|p| p.authorization.clone())
        .unwrap();
    let principals: Vec<&str> = ap["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["from"].as_array().into_iter().flatten())
        .flat_map(|f| f["source"]["principals"].as_array().into_iter().flatten())
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        principals.contains(&"*/ns/shop/sa/waypoint"),
        "{principals:?}"
    );
}

#[test]
fn a_gateway_of_another_class_is_no_waypoint() {
    let yaml = format!(
        "{BOUND_NS}{SHOP}{}",
        WAYPOINT.replace(
            "gatewayClassName: istio-waypoint",
            "gatewayClassName: istio"
        )
    );
    let input = inventory(&yaml);
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    for subject in ["Deployment/api", "StatefulSet/db"] {
        let w = g
            .withheld
            .iter()
            .find(|w| w.subject == subject)
            .unwrap_or_else(|| panic!("{subject}: {:?}", protected(&g)));
        assert!(
            w.reason
                .contains("is of class `istio`, not `istio-waypoint`"),
            "{w:?}"
        );
    }
}

#[test]
fn sidecar_mode_has_no_waypoint_hop() {
    let ns = "\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled, istio.io/use-waypoint: waypoint}}\n---\n";
    let input = inventory(&format!("{ns}{SHOP}"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(
        protected(&g).contains(&"StatefulSet/db"),
        "{:?}",
        g.withheld
    );
}
