//! The double's RBAC answers what real kubectl sees. Over HTTPS (the double's certificate made
//! at start, its CA in the kubeconfig) real kubectl 1.37 sends the kubeconfig's bearer token and
//! its `--as`/`--as-group` headers, as it does to a real API server (over plain HTTP client-go
//! sends none, so `tests/rbac.rs` runs the plugins, whose kube client does). A user holding only
//! a role shipped in `krew-manifests/rbac/` gets kubectl's own `Forbidden` error for a verb the
//! role lacks and the object for one it grants; the request log shows kubectl authenticated as
//! that user. The Prometheus grant is checked the same way: the gates' service proxy reaches the
//! named Prometheus and no other Service, in no other namespace.

use apiserver_double::{BlockingDouble, Double, DoubleOptions};
use e2e::{Run, bin, root, run, venv_tool};
use serde_json::{Value, json};

const USER: &str = "rbac-tester";
const TOKEN: &str = "rbac-tester-token";

fn manifest(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("krew-manifests/rbac").join(file)).unwrap();
    apiserver_double::parse_documents(&text).unwrap()
}

/// The group the manifest's example binding names.
fn group(docs: &[Value]) -> String {
    let binding = docs.iter().find(|d| d["kind"].as_str().unwrap().ends_with("Binding")).unwrap();
    binding["subjects"][0]["name"].as_str().unwrap().to_string()
}

/// A double serving HTTPS with RBAC enforced.
fn tls_double() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions { rbac: true, tls: true, simulate_controllers: false, ..DoubleOptions::default() }).unwrap();
    assert!(d.url().starts_with("https://127.0.0.1:"), "{}", d.url());
    d
}

/// The user ([`TOKEN`]) holds the roles of `files` (in their example bindings' groups); their
/// namespaces must exist.
fn hold(d: &BlockingDouble, files: &[&str]) {
    let mut groups = Vec::new();
    for f in files {
        let docs = manifest(f);
        groups.push(group(&docs));
        d.load_values(docs).unwrap();
    }
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    d.add_token(TOKEN, USER, &groups);
}

struct Kubectl {
    _dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Kubectl {
    fn with_token(d: &BlockingDouble, namespace: &str, token: &str) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = d.write_kubeconfig_with_token(dir.path(), namespace, token).unwrap().to_str().unwrap().to_string();
        Kubectl { _dir: dir, kubeconfig }
    }

    fn run(&self, args: &[&str]) -> Run {
        run(&venv_tool("kubectl"), &[args, &["--kubeconfig", &self.kubeconfig][..]].concat(), None, &[])
    }
}

/// Users the double logged for requests whose path contains `fragment`.
fn users_of(d: &BlockingDouble, fragment: &str) -> Vec<Option<String>> {
    d.requests().into_iter().filter(|r| r.path.contains(fragment)).map(|r| r.user).collect()
}

#[test]
fn real_kubectl_is_refused_what_the_shipped_role_lacks_and_given_what_it_grants() {
    let d = tls_double();
    hold(&d, &["dbiso-audit.yaml"]);
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api", "namespace": "shop"},
                    "spec": {"containers": [{"name": "api", "image": "shop/api:1"}]}}))
        .unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "data": {"k": "dg=="}})).unwrap();
    let k = Kubectl::with_token(&d, "shop", TOKEN);

    // Granted: list pods, get a Secret by name; as the token's user, not anonymously.
    let r = k.run(&["get", "pods", "-o", "name"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "pod/api"), "{r:?}");
    assert!(users_of(&d, "/pods").iter().all(|u| u.as_deref() == Some(USER)), "{:?}", users_of(&d, "/pods"));
    k.run(&["get", "secret", "db", "-o", "name"]).expect_code(0);
    // Not granted: deleting the pod, listing Secrets (the role reads them by name only).
    let r = k.run(&["delete", "pod", "api"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "Error from server (Forbidden): pods \"api\" is forbidden: User \"{USER}\" cannot delete resource \"pods\" in API group \"\" in the namespace \"shop\""
        )),
        "{}",
        r.stderr
    );
    assert!(d.get("v1", "Pod", Some("shop"), "api").is_some());
    let r = k.run(&["get", "secrets"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("secrets is forbidden: User \"{USER}\" cannot list resource \"secrets\"")), "{}", r.stderr);
    // A server-side dry run is authorized as the write itself: refused the same way.
    let r = k.run(&["create", "configmap", "x", "--dry-run=server"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("User \"{USER}\" cannot create resource \"configmaps\"")), "{}", r.stderr);

    // The plugins' client (kube-rs over rustls) trusts the same CA and is the same user.
    d.clear_requests();
    let r = run(&bin("dbiso"), &["audit", "-o", "json", "--kubeconfig", &k.kubeconfig], None, &[]);
    assert!(r.code == 0 || r.code == 1, "{r:?}");
    let users: std::collections::BTreeSet<Option<String>> = d.requests().into_iter().map(|q| q.user).collect();
    assert_eq!(users, std::collections::BTreeSet::from([Some(USER.to_string())]));

    // An unknown token is 401, and kubectl says so.
    let r = Kubectl::with_token(&d, "shop", "not-a-token").run(&["get", "pods"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Unauthorized"), "{}", r.stderr);
    // The double's admin token is a cluster admin, over the same TLS.
    let admin = Kubectl::with_token(&d, "shop", &DoubleOptions::default().token);
    admin.run(&["delete", "pod", "api"]).expect_code(0);
}

#[test]
fn real_kubectl_impersonates_through_as_and_as_group_and_rbac_checks_it() {
    let docs = manifest("dbiso-audit.yaml");
    let group = group(&docs);
    let d = tls_double();
    d.load_values(docs).unwrap();
    d.load_values([
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "impersonate-auditor"},
               "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": [USER]},
                         {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": [group]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "ops-impersonates"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonate-auditor"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ops"}]}),
    ])
    .unwrap();
    d.add_token("ops-token", "ops", &[]);
    let k = Kubectl::with_token(&d, "default", "ops-token");
    let r = k.run(&["get", "pods"]);
    assert!(r.code == 1 && r.stderr.contains("User \"ops\" cannot list resource \"pods\""), "{r:?}");
    d.clear_requests();
    k.run(&["get", "pods", "--as", USER, "--as-group", &group]).expect_code(0);
    assert!(users_of(&d, "/pods").iter().all(|u| u.as_deref() == Some(USER)), "{:?}", users_of(&d, "/pods"));
    let r = k.run(&["get", "pods", "--as", "someone-else"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("users \"someone-else\" is forbidden: User \"ops\" cannot impersonate resource \"users\""), "{}", r.stderr);
}

/// The gates' Prometheus, as real kubectl reaches it with `get --raw` (the same service proxy
/// URL the plugins build): the shipped roles reach `monitoring/prometheus-k8s:web` and nothing
/// else behind the proxy, not another Service in `monitoring`, not the same name elsewhere, not
/// the same Service by another port spelling.
#[test]
fn the_shipped_roles_proxy_to_the_named_prometheus_only() {
    let d = tls_double();
    let rules = || apiserver_double::prometheus::rules(vec![("up", apiserver_double::prometheus::Reply::Value(1.0))]);
    d.serve_prometheus("monitoring", "prometheus-k8s", 9090, rules());
    d.serve_prometheus("monitoring", "grafana", 3000, rules());
    d.serve_prometheus("default", "prometheus-k8s", 9090, rules());
    d.serve_prometheus("kube-system", "dashboard", 8443, rules());
    hold(&d, &["mesh-migrate-write.yaml", "mesh-migrate-prometheus.yaml"]);
    let k = Kubectl::with_token(&d, "default", TOKEN);
    let raw = |ns: &str, svc: &str| k.run(&["get", "--raw", &format!("/api/v1/namespaces/{ns}/services/{svc}/proxy/api/v1/query?query=up")]);
    let r = raw("monitoring", "prometheus-k8s:web");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(r#""resultType":"vector""#), "{}", r.stdout);
    for (ns, svc) in [("monitoring", "grafana:web"), ("default", "prometheus-k8s:web"), ("kube-system", "dashboard:web"), ("monitoring", "prometheus-k8s:9090")] {
        let r = raw(ns, svc);
        assert_eq!(r.code, 1, "{ns}/{svc}: {r:?}");
        assert!(
            r.stderr.contains(&format!("User \"{USER}\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"{ns}\"")),
            "{ns}/{svc}: {}",
            r.stderr
        );
    }
    // The ClusterRole alone grants no proxy anywhere.
    let only_write = tls_double();
    only_write.serve_prometheus("monitoring", "prometheus-k8s", 9090, rules());
    hold(&only_write, &["mesh-migrate-write.yaml"]);
    let k = Kubectl::with_token(&only_write, "default", TOKEN);
    let r = k.run(&["get", "--raw", "/api/v1/namespaces/monitoring/services/prometheus-k8s:web/proxy/api/v1/query?query=up"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot get resource \"services/proxy\""), "{}", r.stderr);
}
