use super::*;
use meshmove_model::inventory;

fn inv(yaml: &str) -> Inventory {
    Inventory::from_files(
        inventory::load_str(yaml, None, "shop").unwrap(),
        vec!["test".into()],
        "shop".into(),
    )
}

fn deployment(ns: &str, name: &str, env: &str) -> String {
    format!(
        r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: example/{name}:1
        env: [{env}]
"#
    )
}

/// The legacy namespace `shop`: `api` (retired; its Service targets the named port `http`) and
/// the shared `postgres` (not retired), each behind a Service; `api` admits only namespaces
/// labelled `team: front`. `front` and `batch` are ambient namespaces, `shop-mesh` the mesh side.
fn platform(extra: &str) -> String {
    let mut y = String::from(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-mesh, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: front, labels: {istio.io/dataplane-mode: ambient, team: front}}
---
apiVersion: v1
kind: Namespace
metadata: {name: batch, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: example/api:1
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: shop}
spec:
  serviceName: postgres
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
      - name: postgres
        image: postgres:16
        ports: [{containerPort: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: postgres, namespace: shop}
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-front, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: front}}
"#,
    );
    y.push_str(extra);
    y
}

fn retired() -> Vec<(String, String)> {
    vec![("Deployment".into(), "api".into())]
}

/// The one the input shows naming the Service is named as seen calling, with where; one that can
/// only reach it is named as able to; one a NetworkPolicy keeps out is not counted at all, nor is
/// a pod with a sidecar (even captured), nor a caller that reaches only the shared backend, nor
/// the mesh namespace's copies.
#[test]
fn only_ambient_workloads_the_engine_lets_reach_the_retired_pods_count() {
    let sides = Sides::new("shop").unwrap();
    let mut extra = String::new();
    extra += &deployment(
        "front",
        "web",
        "{name: API_URL, value: 'http://api.shop:80/v1'}",
    );
    extra += &deployment("front", "idle", "{name: MODE, value: idle}");
    // Names the Service, but `api` admits no namespace but `front`'s.
    extra += &deployment(
        "batch",
        "worker",
        "{name: API_URL, value: 'http://api.shop.svc.cluster.local'}",
    );
    // The mesh side's copy calls its own side.
    extra += &deployment("shop-mesh", "api", "{name: PEER, value: 'api.shop'}");
    extra += r#"---
apiVersion: v1
kind: Pod
metadata:
  name: sidecar-client
  namespace: front
  annotations: {sidecar.istio.io/status: '{}', ambient.istio.io/redirection: enabled}
spec:
  containers:
  - {name: c, image: example/c:1, env: [{name: API_URL, value: 'http://api.shop'}]}
  - {name: istio-proxy, image: istio/proxyv2:1.24.0}
status: {phase: Running}
"#;
    let reach = ambient_reach(&sides, &inv(&platform(&extra)), &retired()).unwrap();
    assert_eq!(
        reach.callers,
        vec![
            AmbientCaller {
                namespace: "front".into(),
                workload: "Deployment/web".into(),
                names: vec!["api (env API_URL)".into()],
                reaches: vec!["Service api TCP 8080 (Deployment/api)".into()],
            },
            AmbientCaller {
                namespace: "front".into(),
                workload: "Deployment/idle".into(),
                names: vec![],
                reaches: vec!["Service api TCP 8080 (Deployment/api)".into()],
            },
        ]
    );
    assert_eq!(reach.unreached, vec!["batch/Deployment/worker".to_string()]);
    assert_eq!(
        lines(&reach.callers),
        vec![
            "front/Deployment/web: seen calling: names api (env API_URL); reaches Service api TCP 8080 (Deployment/api)".to_string(),
            "front/Deployment/idle: can reach (the input shows it naming no legacy Service); reaches Service api TCP 8080 (Deployment/api)".to_string(),
        ]
    );
}

/// The engine is the judge: without the policy every ambient workload reaches `api`, and with a
/// default-deny egress in `front` none of them does.
#[test]
fn the_policies_decide_who_reaches() {
    let sides = Sides::new("shop").unwrap();
    let callers = deployment(
        "front",
        "web",
        "{name: API_URL, value: 'http://api.shop:80'}",
    ) + &deployment("batch", "worker", "{name: MODE, value: x}");
    let open = platform(&callers).replace(
        "namespaceSelector: {matchLabels: {team: front}}",
        "namespaceSelector: {}",
    );
    let r = ambient_reach(&sides, &inv(&open), &retired()).unwrap();
    assert_eq!(
        r.callers
            .iter()
            .map(|c| format!("{}/{}", c.namespace, c.workload))
            .collect::<Vec<_>>(),
        ["front/Deployment/web", "batch/Deployment/worker"]
    );
    assert!(r.callers[0].seen_calling() && !r.callers[1].seen_calling());
    let deny = platform(&callers)
        + r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: no-egress, namespace: front}
spec:
  podSelector: {}
  policyTypes: [Egress]
"#;
    let r = ambient_reach(&sides, &inv(&deny), &retired()).unwrap();
    assert!(r.callers.is_empty(), "{r:?}");
    assert_eq!(
        r.unreached,
        ["batch/Deployment/worker", "front/Deployment/web"]
    );
    // Nothing retired: nothing to reach.
    let r = ambient_reach(&sides, &inv(&open), &[]).unwrap();
    assert!(r.callers.is_empty() && r.unreached.len() == 2, "{r:?}");
}

/// A policy the engine cannot judge leaves nothing shown safe: the error names it.
#[test]
fn a_policy_the_engine_cannot_judge_is_an_error_naming_it() {
    let sides = Sides::new("shop").unwrap();
    let mut extra = deployment("front", "web", "{name: API_URL, value: 'http://api.shop'}");
    extra += r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: front}
spec:
  podSelector: {matchExpressions: [{key: app, operator: Near, values: [web]}]}
  policyTypes: [Egress]
"#;
    match ambient_reach(&sides, &inv(&platform(&extra)), &retired()) {
        Err(ReachError::UnreadablePolicy { namespace, name, .. }) => assert_eq!((namespace.as_str(), name.as_str()), ("front", "bad")),
        Err(ReachError::Uncompilable(p)) => assert_eq!((p.namespace.as_str(), p.name.as_str()), ("front", "bad")),
        other => panic!("expected the policy named as the reason, got {other:?}"),
    }
}
