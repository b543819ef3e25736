//! Exposed Services and the gateways their routes attach to, judged by the engine: the
//! generated policies are added to the input and the engine says who reaches whom.

use super::tests::{Oracle, inventory, release};
use super::*;
use meshmove_netpol::PodInfo;

/// `web` behind an HTTPRoute attached to Gateway `public` of the release's own namespace.
const ROUTED: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: acme/web:1, ports: [{containerPort: 3000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 3000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: public}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
";

/// The Deployment Istio creates for Gateway `public`.
const GATEWAY_PODS: &str = "
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: public-istio}
spec:
  selector: {matchLabels: {gateway.networking.k8s.io/gateway-name: public}}
  template:
    metadata: {labels: {gateway.networking.k8s.io/gateway-name: public}}
    spec: {containers: [{name: istio-proxy, image: istio/proxyv2:1.27.0}]}
";

fn gateway_pod(namespace: &str) -> PodInfo {
    PodInfo::new(namespace, "public-istio-1").with_labels([("gateway.networking.k8s.io/gateway-name", "public")])
}

fn ingress_pod(namespace: &str) -> PodInfo {
    PodInfo::new(namespace, "controller-1").with_labels([("app", "controller")])
}

#[test]
fn a_gateway_in_the_release_namespace_keeps_reaching_its_backend() {
    let opts = PolicyOptions::default();
    // Its pods in the input: they alone are admitted, on the routed port.
    let input = inventory(&format!("{ROUTED}{GATEWAY_PODS}"));
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.policies.iter().any(|p| p.protects == "Deployment/web"), "{:?}", g.withheld);
    let o = Oracle::with_pods(&input, &g, vec![PodInfo::new("shop", "neighbour-1").with_labels([("app", "neighbour")])]);
    assert!(o.reaches("public-istio", "web", 3000));
    assert!(!o.reaches("public-istio", "web", 9999), "the routed port only");
    for other in ["neighbour-1", "stranger"] {
        assert!(!o.reaches(other, "web", 3000), "{other}");
    }
    // Its pods not in the input (Istio creates them): the Gateway's namespace is admitted.
    let input = inventory(ROUTED);
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.policies.iter().any(|p| p.protects == "Deployment/web"), "{:?}", g.withheld);
    let o = Oracle::with_pods(&input, &g, vec![gateway_pod("shop")]);
    assert!(o.reaches("public-istio-1", "web", 3000));
    assert!(!o.reaches("stranger", "web", 3000));
}

#[test]
fn a_gateway_the_input_does_not_hold_outside_the_ingress_namespaces_leaves_its_backend_open() {
    let yaml = ROUTED.replace("parentRefs: [{name: public}]", "parentRefs: [{name: public, namespace: edge}]");
    let input = inventory(&yaml);
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    let w = g.withheld.iter().find(|w| w.subject == "Deployment/web").expect("web withheld");
    assert!(w.reason.contains("Gateway/edge/public, which the input does not hold"), "{w:?}");
    assert!(w.isolate_with.starts_with("networkPolicies.ingressNamespaces: [istio-ingress, istio-system, ingress-nginx, edge]"), "{w:?}");
    let o = Oracle::with_pods(&input, &g, vec![gateway_pod("edge")]);
    assert!(o.reaches("public-istio-1", "web", 3000));
    // Configured as an ingress namespace: admitted from there.
    let opts = PolicyOptions { ingress_namespaces: vec!["edge".into()], ..PolicyOptions::default() };
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.withheld.is_empty(), "{:?}", g.withheld);
    let o = Oracle::with_pods(&input, &g, vec![gateway_pod("edge"), ingress_pod("istio-system")]);
    assert!(o.reaches("public-istio-1", "web", 3000));
    assert!(!o.reaches("controller-1", "web", 3000), "only the configured namespace");
}

#[test]
fn a_virtual_service_admits_the_pods_its_istio_gateway_selects() {
    let yaml = format!(
        "{}\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: public-gw}}\nspec: {{selector: {{istio: shop-gateway}}, servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*']}}]}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web}}\nspec: {{hosts: ['*'], gateways: [shop/public-gw], http: [{{route: [{{destination: {{host: web}}}}]}}]}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: shop-gateway}}\nspec:\n  selector: {{matchLabels: {{istio: shop-gateway}}}}\n  template:\n    metadata: {{labels: {{istio: shop-gateway}}}}\n    spec: {{containers: [{{name: istio-proxy, image: istio/proxyv2:1.27.0}}]}}\n",
        ROUTED.split("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway").next().unwrap()
    );
    let input = inventory(&yaml);
    let opts = PolicyOptions::default();
    for mode in [MeshMode::Sidecar, MeshMode::Ambient] {
        let g = generate(&input, &release(&opts, mode));
        assert!(g.policies.iter().any(|p| p.protects == "Deployment/web"), "{mode:?}: {:?}", g.withheld);
        let o = Oracle::with_pods(&input, &g, vec![ingress_pod("istio-system")]);
        assert!(o.reaches("shop-gateway", "web", 3000), "{mode:?}");
        assert!(!o.reaches("stranger", "web", 3000), "{mode:?}");
    }
}
