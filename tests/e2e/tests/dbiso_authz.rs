//! `kubectl dbiso explain` and `reach` with Istio AuthorizationPolicies: the fixture is valid
//! against Istio's CRD schema, `explain` names the deciding policy and rule and exits as its
//! verdict says, and `reach` agrees with `explain` connection by connection; from files and
//! live from the API double (which serves Istio's CRDs).

use apiserver_double::{Double, DoubleOptions, crds};
use e2e::{bin, istio_validated, run, validate_stream};
use serde_json::Value;

/// `shop` injects sidecars; api runs as ServiceAccount `api`, web as `default`; the database's
/// ALLOW policy admits monitoring on 9187 and api on 5432.
const SHOP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers: [{name: api, image: acme/api:1, ports: [{containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: acme/web:1, ports: [{containerPort: 3000}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  serviceName: db
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432, name: postgres}, {containerPort: 9187, name: metrics}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-clients, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - from: [{source: {namespaces: [monitoring]}}]
    to: [{operation: {ports: [\"9187\"]}}]
  - from: [{source: {principals: [cluster.local/ns/shop/sa/api]}}]
    to: [{operation: {ports: [\"5432\"]}}]
";

fn dbiso(args: &[&str], env: &[(&str, &str)]) -> e2e::Run {
    run(&bin("dbiso"), args, None, env)
}

/// Whether `reach -o json` lets `src` reach `dst` on TCP `port`, and whether the port is marked
/// conditional.
fn reach_port(reach: &Value, src: &str, dst: &str, port: u64) -> (bool, bool) {
    let covers = |conn: &Value| match conn {
        Value::String(s) => s == "all",
        Value::Array(ranges) => ranges.iter().any(|r| {
            let start = r["port"].as_u64().unwrap();
            r["protocol"] == "TCP" && start <= port && port <= r.get("endPort").and_then(Value::as_u64).unwrap_or(start)
        }),
        _ => false,
    };
    let entry = reach.as_array().unwrap().iter().find(|e| e["src"]["name"] == src && e["dst"]["name"] == dst);
    entry.map_or((false, false), |e| (covers(&e["conn"]), e.get("authzConditional").is_some_and(covers)))
}

#[test]
fn explain_names_the_policy_and_rule_and_reach_agrees() {
    let report = validate_stream(SHOP);
    assert_eq!(istio_validated(&report), 1, "the AuthorizationPolicy is valid for Istio's CRD schema:\n{}", report.stdout);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, SHOP).unwrap();
    let file = file.to_str().unwrap();

    let x = dbiso(&["explain", "deploy/api", "sts/db", "5432", "-f", file, "-n", "shop", "-o", "json"], &[]).expect_code(0).json();
    let a = &x["authorization"];
    assert_eq!(a["state"], "allowed");
    assert_eq!(a["enforcedBy"], "sidecar");
    assert_eq!(a["sourcePrincipal"], "cluster.local/ns/shop/sa/api");
    assert_eq!((a["decidedBy"]["name"].as_str(), a["decidedBy"]["rule"].as_u64()), (Some("db-clients"), Some(1)));

    // web runs as `default`: the network lets it through, the sidecar refuses it.
    let text = dbiso(&["explain", "deploy/web", "sts/db", "5432", "-f", file, "-n", "shop"], &[]).expect_code(1).stdout;
    assert!(text.contains("AuthorizationPolicy at pod shop/db: denied"), "{text}");
    let x = dbiso(&["explain", "deploy/web", "sts/db", "5432", "-f", file, "-n", "shop", "-o", "json"], &[]).expect_code(1).json();
    assert_eq!((x["ingress"]["allowed"].as_bool(), x["allowed"].as_bool()), (Some(true), Some(false)));
    // api on the metrics port: no rule names it for api.
    dbiso(&["explain", "deploy/api", "sts/db", "9187", "-f", file, "-n", "shop"], &[]).expect_code(1);

    let reach = dbiso(&["reach", "-f", file, "-n", "shop", "-o", "json"], &[]).expect_code(0).json();
    for (src, port) in [("api", 5432), ("web", 5432), ("api", 9187), ("web", 9187)] {
        let explained = dbiso(&["explain", &format!("deploy/{src}"), "sts/db", &port.to_string(), "-f", file, "-n", "shop"], &[]).code == 0;
        assert_eq!(reach_port(&reach, src, "db", port), (explained, false), "{src} -> db on {port}");
    }

    // An HTTP method in the rule: L4 cannot tell, the verdict says so and reach marks the port.
    let l7 = SHOP.replace("to: [{operation: {ports: [\"5432\"]}}]", "to: [{operation: {ports: [\"5432\"], methods: [GET]}}]");
    assert_ne!(l7, SHOP);
    validate_stream(&l7);
    std::fs::write(file, &l7).unwrap();
    let x = dbiso(&["explain", "deploy/api", "sts/db", "5432", "-f", file, "-n", "shop", "-o", "json"], &[]).expect_code(0).json();
    assert_eq!(x["authorization"]["state"], "conditional");
    let reach = dbiso(&["reach", "-f", file, "-n", "shop", "-o", "json"], &[]).expect_code(0).json();
    assert_eq!(reach_port(&reach, "api", "db", 5432), (true, true));
}

#[test]
fn explain_reads_authorization_policies_live() {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    double.load_values(apiserver_double::parse_documents(SHOP).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let x = dbiso(&["explain", "deploy/api", "sts/db", "5432", "-o", "json"], &env).expect_code(0).json();
    assert_eq!(x["authorization"]["decidedBy"]["name"], "db-clients");
    let x = dbiso(&["explain", "deploy/web", "sts/db", "5432", "-o", "json"], &env).expect_code(1).json();
    assert_eq!(x["authorization"]["state"], "denied");
}

/// The findings of an audit report as (code, object, message), sorted: what two runs over the
/// same state must agree on whatever they read it from.
fn findings(report: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = report["findings"]
        .as_array()
        .expect("the report has findings")
        .iter()
        .map(|f| (f["code"].to_string(), f["object"].to_string(), f["message"].to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn audit_reads_authorization_policies_live() {
    let dir = tempfile::tempdir().unwrap();
    let with_ap = dir.path().join("shop.yaml");
    std::fs::write(&with_ap, SHOP).unwrap();
    let docs = apiserver_double::parse_documents(SHOP).unwrap();
    let without: Vec<Value> = docs.iter().filter(|d| d["kind"] != "AuthorizationPolicy").cloned().collect();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, without.iter().map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap())).collect::<String>()).unwrap();
    let audit_files = |path: &std::path::Path| dbiso(&["audit", "-f", path.to_str().unwrap(), "-A", "-o", "json"], &[]).json();
    let (from_files, from_plain) = (audit_files(&with_ap), audit_files(&plain));
    // The policy admits api alone on 5432: web no longer reaches the database, and the audit says so.
    assert_ne!(findings(&from_files), findings(&from_plain), "{from_files}");

    // With Istio's CRDs served: listed once each, and the audit is the one of the files.
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    double.load_values(docs.clone()).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let r = dbiso(&["audit", "-A", "-o", "json"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let live = r.json();
    assert_eq!(findings(&live), findings(&from_files), "{}", r.stderr);
    assert_eq!(live["skipped"], serde_json::json!([]), "{live}");
    let listed: Vec<String> = double.requests().into_iter().filter(|q| q.method == "GET").map(|q| q.path).collect();
    for plural in ["authorizationpolicies", "peerauthentications"] {
        let path = format!("/apis/security.istio.io/v1/{plural}");
        assert_eq!(listed.iter().filter(|p| **p == path).count(), 1, "one list of {plural}: {listed:?}");
    }

    // Without Istio (the group answers 404): none, not an error.
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.load_values(without).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let r = dbiso(&["audit", "-A", "-o", "json"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let live = r.json();
    assert_eq!(findings(&live), findings(&from_plain), "{}", r.stderr);
    assert_eq!(live["skipped"], serde_json::json!([]), "{live}");

    // Served but not granted (403): unread input, the reachability checks skipped, exit 1.
    let double = Double::spawn_blocking_runtime(DoubleOptions { rbac: true, ..DoubleOptions::default() }).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    double.load_values(docs).unwrap();
    let role_text = std::fs::read_to_string(e2e::root().join("krew-manifests/rbac/dbiso-audit.yaml")).unwrap();
    let mut role = apiserver_double::parse_documents(&role_text).unwrap();
    let mut groups = Vec::new();
    for d in &mut role {
        if let Some(rules) = d["rules"].as_array_mut() {
            let before = rules.len();
            rules.retain(|r| r["apiGroups"] != serde_json::json!(["security.istio.io"]));
            assert_eq!(rules.len() + 1, before, "the shipped role grants Istio's policies in one rule");
        }
        for s in d["subjects"].as_array().into_iter().flatten() {
            groups.push(s["name"].as_str().unwrap().to_string());
        }
    }
    double.load_values(role).unwrap();
    double.add_token("auditor-token", "auditor", &groups.iter().map(String::as_str).collect::<Vec<_>>());
    let kubeconfig = double.write_kubeconfig_with_token(dir.path(), "shop", "auditor-token").unwrap();
    let r = dbiso(&["audit", "-A", "-o", "json"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]).expect_code(1);
    let report = r.json();
    let unread: Vec<&str> =
        report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "DB3000").filter_map(|f| f["message"].as_str()).collect();
    assert!(unread.iter().any(|m| m.contains("authorizationpolicies.security.istio.io")), "{report}");
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().map(|s| s["analyzer"].as_str().unwrap()).collect();
    assert!(skipped.contains(&"non-owner-reachability") && skipped.contains(&"database-isolation"), "{report}");
}
