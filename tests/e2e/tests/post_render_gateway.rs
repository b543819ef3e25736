//! A chart with its own Gateway API Gateway and HTTPRoute, post-rendered: the policy of the
//! routed backend keeps the gateway's pods (those Istio creates for the Gateway, labelled
//! `gateway.networking.k8s.io/gateway-name`) reaching it, as `kubectl dbiso explain`'s engine
//! judges the output with those pods added, and shuts other pods out. The output is
//! schema-validated (Kubernetes 1.37).

use std::path::Path;

use e2e::{bin, krew_path, root, run};

const CHART: &str = "---
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
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: acme/worker:1}]
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

/// The Deployment Istio's gateway controller creates for Gateway `public` in its namespace.
const GATEWAY_DEPLOYMENT: &str = "---
apiVersion: apps/v1
kind: Deployment
metadata: {name: public-istio, labels: {gateway.networking.k8s.io/gateway-name: public}}
spec:
  selector: {matchLabels: {gateway.networking.k8s.io/gateway-name: public}}
  template:
    metadata: {labels: {gateway.networking.k8s.io/gateway-name: public}}
    spec: {containers: [{name: istio-proxy, image: istio/proxyv2:1.27.0}]}
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// The engine's verdict (`allowed` of `explain -o json`), checked against its exit code.
fn allowed(file: &str, src: &str, dst: &str, port: &str) -> bool {
    let r = run(&bin("dbiso"), &["explain", src, dst, port, "-f", file, "-n", "shop", "-o", "json"], None, &[]);
    let verdict: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let allowed = verdict["allowed"].as_bool().expect("a verdict");
    assert_eq!(r.code, if allowed { 0 } else { 1 }, "{r:?}");
    allowed
}

#[test]
fn a_gateway_in_the_release_namespace_keeps_reaching_its_backend() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&bin("mesh-migrate"), &["post-render", "--report", "-o", "json"], Some(CHART), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = write(dir.path(), "out.yaml", &r.stdout);
    let v = run(&root().join("tests/tools/validate.sh"), &[&out], None, &[("PATH", krew_path().to_str().unwrap())]);
    assert_eq!(v.code, 0, "schema validation failed:\n{}\n{}", v.stdout, v.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stderr).expect("--report -o json is JSON on stderr");
    let protects: Vec<&str> = report["policies"].as_array().unwrap().iter().filter_map(|p| p["protects"].as_str()).collect();
    assert!(protects.contains(&"Deployment/web"), "web is isolated: {report}");

    // The cluster once Istio has deployed the Gateway: its pods reach the backend, others do not.
    let live = write(dir.path(), "live.yaml", &format!("{}\n{GATEWAY_DEPLOYMENT}", r.stdout));
    assert!(allowed(&live, "deploy/public-istio", "deploy/web", "3000/TCP"), "gateway -> backend");
    assert!(!allowed(&live, "deploy/worker", "deploy/web", "3000/TCP"), "another pod of the namespace is shut out");
    // Before this, the policy admitted the ingress namespaces only: the same output without the
    // gateway's rule would cut it (the engine on the input alone allows it).
    let input = write(dir.path(), "input.yaml", &format!("{CHART}\n{GATEWAY_DEPLOYMENT}"));
    assert!(allowed(&input, "deploy/public-istio", "deploy/web", "3000/TCP"));
}
