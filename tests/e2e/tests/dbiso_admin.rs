//! `kubectl dbiso explain` and `reach` with AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! (fixture `tests/e2e/fixtures/dbiso-admin/input.yaml`), from files and live against the API
//! double, where a cluster without the CRDs simply has none.

use apiserver_double::crds::Crd;
use apiserver_double::{Double, DoubleOptions};
use e2e::{bin, fixture, run};

fn dbiso(args: &[&str], env: &[(&str, &str)]) -> e2e::Run {
    run(&bin("dbiso"), args, None, env)
}

fn input() -> String {
    fixture("tests/e2e/fixtures/dbiso-admin/input.yaml").to_str().unwrap().to_string()
}

#[test]
fn explain_names_the_deciding_admin_rule() {
    let file = input();
    // NetworkPolicy admits only the api; the ANP Allow comes first and is final.
    let r = dbiso(&["explain", "deploy/monitoring/prometheus", "sts/shop/orders-db", "-f", &file], &[]).expect_code(0);
    assert!(r.stdout.contains("ALLOWED: pod monitoring/prometheus -> pod shop/orders-db on TCP 5432"), "{}", r.stdout);
    assert!(r.stdout.contains("AdminNetworkPolicy allow-monitoring (priority 10) ingress[0] \"scrape\": Allow"), "{}", r.stdout);

    // The tenant is denied by the ANP Deny, before NetworkPolicy is asked.
    let r = dbiso(&["explain", "deploy/tenant-a/web", "sts/shop/orders-db", "-f", &file], &[]).expect_code(1);
    assert!(r.stdout.contains("DENIED by ingress of pod shop/orders-db"), "{}", r.stdout);
    assert!(r.stdout.contains("AdminNetworkPolicy tenants-off-shop (priority 20) ingress[0] \"no-tenants\": Deny"), "{}", r.stdout);

    // No admin rule matches the api: NetworkPolicy decides, as without admin policies.
    let j = dbiso(&["explain", "deploy/shop/api", "sts/shop/orders-db", "-f", &file, "-o", "json"], &[]).expect_code(0).json();
    assert_eq!(j["allowed"], true);
    assert_eq!(j["ingress"]["admin"]["decidedBy"], serde_json::Value::Null, "{j}");
    assert_eq!(j["ingress"]["isolated"], true);

    // The baseline decides where no NetworkPolicy selects the pod.
    let j = dbiso(&["explain", "deploy/tenant-a/web", "deploy/monitoring/prometheus", "9090", "-f", &file, "-o", "json"], &[]).expect_code(1).json();
    assert_eq!(j["ingress"]["admin"]["decidedBy"], "BaselineAdminNetworkPolicy default ingress[0] \"tenants-default-deny\": Deny", "{j}");
}

#[test]
fn reach_follows_the_admin_tiers() {
    let file = input();
    let j = dbiso(&["reach", "-f", &file, "-A", "-o", "json"], &[]).expect_code(0).json();
    let entries = j.as_array().expect("reach -o json is a list of entries");
    let conn = |src: &str, dst: &str| {
        entries
            .iter()
            .find(|e| format!("{}/{}", e["src"]["namespace"].as_str().unwrap_or(""), e["src"]["name"].as_str().unwrap_or("")) == src
                && format!("{}/{}", e["dst"]["namespace"].as_str().unwrap_or(""), e["dst"]["name"].as_str().unwrap_or("")) == dst)
            .map(|e| e["conn"].clone())
    };
    assert_eq!(conn("monitoring/prometheus", "shop/orders-db"), Some(serde_json::json!([{"protocol": "TCP", "port": 5432}])));
    assert_eq!(conn("shop/api", "shop/orders-db"), Some(serde_json::json!([{"protocol": "TCP", "port": 5432}])));
    assert_eq!(conn("tenant-a/web", "shop/orders-db"), None);
    assert_eq!(conn("tenant-a/web", "shop/api"), None, "the ANP Deny covers the whole shop namespace");
    assert_eq!(conn("tenant-a/web", "monitoring/prometheus"), None, "the baseline denies tenants where no NetworkPolicy decides");
    assert_eq!(conn("shop/api", "monitoring/prometheus"), Some(serde_json::json!("all")));
}

#[test]
fn live_admin_policies_are_read_and_absent_crds_mean_none() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(input()).unwrap();
    let without_admin: String =
        apiserver_double::parse_documents(&text).unwrap().into_iter().filter(|d| !d["kind"].as_str().unwrap_or("").contains("AdminNetworkPolicy")).map(|d| format!("---\n{}\n", serde_json::to_string(&d).unwrap())).collect();

    // No CRDs: the kinds are not served, which is no error and no note; NetworkPolicy alone.
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.load_yaml(&without_admin).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let r = dbiso(&["explain", "deploy/monitoring/prometheus", "sts/shop/orders-db"], &env).expect_code(1);
    assert!(r.stdout.contains("DENIED"), "{}", r.stdout);
    assert!(!r.stderr.contains("adminnetworkpolicies"), "{}", r.stderr);

    // With the CRDs and the objects: the ANP Allow decides.
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double
        .install_crds(vec![
            Crd::new("policy.networking.k8s.io", "AdminNetworkPolicy", "adminnetworkpolicies", &["v1alpha1"]).cluster_scoped().build(),
            Crd::new("policy.networking.k8s.io", "BaselineAdminNetworkPolicy", "baselineadminnetworkpolicies", &["v1alpha1"]).cluster_scoped().build(),
        ])
        .unwrap();
    double.load_yaml(&text).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let r = dbiso(&["explain", "deploy/monitoring/prometheus", "sts/shop/orders-db"], &env).expect_code(0);
    assert!(r.stdout.contains("AdminNetworkPolicy allow-monitoring (priority 10) ingress[0] \"scrape\": Allow"), "{}\n{}", r.stdout, r.stderr);
}

/// The findings of an audit report as (code, object, message), sorted: what two runs over the
/// same state must agree on whatever they read it from.
fn findings(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = report["findings"]
        .as_array()
        .expect("the report has findings")
        .iter()
        .map(|f| (f["code"].to_string(), f["object"].to_string(), f["message"].to_string()))
        .collect();
    out.sort();
    out
}

fn admin_crds() -> Vec<serde_json::Value> {
    vec![
        Crd::new("policy.networking.k8s.io", "AdminNetworkPolicy", "adminnetworkpolicies", &["v1alpha1"]).cluster_scoped().build(),
        Crd::new("policy.networking.k8s.io", "BaselineAdminNetworkPolicy", "baselineadminnetworkpolicies", &["v1alpha1"]).cluster_scoped().build(),
    ]
}

#[test]
fn live_audit_lists_admin_policies_and_agrees_with_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = input();
    let text = std::fs::read_to_string(&file).unwrap();
    let from_files = dbiso(&["audit", "-f", &file, "-A", "-o", "json"], &[]).json();
    // The ANP Allow lets monitoring reach the database past its NetworkPolicy: the files say so.
    let reaches = |report: &serde_json::Value| {
        report["findings"].as_array().unwrap().iter().any(|f| f["message"].as_str().unwrap_or("").contains("prometheus"))
    };
    assert!(reaches(&from_files), "{from_files}");

    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(admin_crds()).unwrap();
    double.load_yaml(&text).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let r = dbiso(&["audit", "-A", "-o", "json"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let live = r.json();
    assert_eq!(findings(&live), findings(&from_files), "{}", r.stderr);
    assert_eq!(live["skipped"], serde_json::json!([]), "{live}");
    let listed: Vec<String> = double.requests().into_iter().filter(|q| q.method == "GET").map(|q| q.path).collect();
    for plural in ["adminnetworkpolicies", "baselineadminnetworkpolicies"] {
        let path = format!("/apis/policy.networking.k8s.io/v1alpha1/{plural}");
        assert_eq!(listed.iter().filter(|p| **p == path).count(), 1, "one list of {plural}: {listed:?}");
    }
}

#[test]
fn live_audit_without_the_crds_has_none_and_a_refused_list_is_unread_input() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(input()).unwrap();
    let docs = apiserver_double::parse_documents(&text).unwrap();
    let without_admin: Vec<serde_json::Value> = docs.iter().filter(|d| !d["kind"].as_str().unwrap_or("").contains("AdminNetworkPolicy")).cloned().collect();
    let plain = dir.path().join("without-admin.yaml");
    std::fs::write(&plain, without_admin.iter().map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap())).collect::<String>()).unwrap();

    // No CRDs (the group answers 404): not an error; the audit is the one of NetworkPolicy alone.
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.load_values(without_admin.clone()).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let r = dbiso(&["audit", "-A", "-o", "json"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let live = r.json();
    let from_files = dbiso(&["audit", "-f", plain.to_str().unwrap(), "-A", "-o", "json"], &[]).json();
    assert_eq!(findings(&live), findings(&from_files), "{}", r.stderr);
    assert!(findings(&live).iter().all(|(code, _, _)| code != "\"DB3000\""), "{live}");
    assert_eq!(live["skipped"], serde_json::json!([]), "{live}");
    assert_eq!(r.code, if from_files["summary"]["errors"] == 0 && from_files["summary"]["warnings"] == 0 { 0 } else { 1 });

    // The CRDs are there but the role does not grant their list (403): unread input, the checks
    // that needed them skipped, exit 1, as for any refused list (README, exit codes).
    let double = Double::spawn_blocking_runtime(DoubleOptions { rbac: true, ..DoubleOptions::default() }).expect("double starts");
    double.install_crds(admin_crds()).unwrap();
    double.load_values(docs).unwrap();
    let role_text = std::fs::read_to_string(e2e::root().join("krew-manifests/rbac/dbiso-audit.yaml")).unwrap();
    let mut role = apiserver_double::parse_documents(&role_text).unwrap();
    let mut groups = Vec::new();
    for d in &mut role {
        if let Some(rules) = d["rules"].as_array_mut() {
            let before = rules.len();
            rules.retain(|r| r["apiGroups"] != serde_json::json!(["policy.networking.k8s.io"]));
            assert_eq!(rules.len() + 1, before, "the shipped role grants the admin policies in one rule");
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
    let unread: Vec<&serde_json::Value> = report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "DB3000").collect();
    assert_eq!(unread.len(), 2, "{report}");
    assert!(unread.iter().all(|f| f["message"].as_str().unwrap().contains("adminnetworkpolicies.policy.networking.k8s.io")), "{report}");
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().map(|s| s["analyzer"].as_str().unwrap()).collect();
    assert!(skipped.contains(&"non-owner-reachability") && skipped.contains(&"database-isolation"), "{report}");
}
