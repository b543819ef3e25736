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
