//! Reading Secrets and ConfigMaps by reference against the API double with RBAC enforced: only
//! the objects workloads name are fetched (GET, never LIST), 404 is an absent object, 403 makes
//! the kind unread, and unreadable workloads leave the references unknown.

use apiserver_double::{Double, DoubleHandle, DoubleOptions};
use meshmove_kube::cluster::{BY_REFERENCE, ClusterOptions, Connection, get_named, load_by_reference};
use meshmove_model::inventory::{Unavailable, kinds};
use serde_json::json;

const NS: &str = "shop";

async fn double() -> DoubleHandle {
    let d = Double::start(DoubleOptions { rbac: true, simulate_controllers: false, ..DoubleOptions::default() }).await.unwrap();
    d.load_values([
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": NS},
               "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"metadata": {"labels": {"app": "api"}}, "spec": {
                   "containers": [{"name": "api", "image": "shop/api:1",
                                   "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                                           {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}}],
                                   "envFrom": [{"configMapRef": {"name": "settings"}}, {"configMapRef": {"name": "gone"}}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": NS}, "stringData": {"url": "postgres://db:5432/shop"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": NS}, "stringData": {"t": "x"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated", "namespace": NS}, "stringData": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS}, "data": {"MODE": "prod"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": NS}, "data": {"k": "v"}}),
        // The user may list Deployments, get ConfigMaps, and get the Secret `db` only.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": NS},
               "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
                         {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
                         {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "reader"}]}),
    ])
    .unwrap();
    d.add_token("reader-token", "reader", &[]);
    d
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir, token: Option<&str>) -> Connection {
    let kubeconfig = match token {
        Some(t) => d.write_kubeconfig_with_token(dir.path(), NS, t).unwrap(),
        None => d.write_kubeconfig(dir.path(), NS).unwrap(),
    };
    ClusterOptions { kubeconfig: Some(kubeconfig), ..ClusterOptions::default() }.connect().await.unwrap()
}

fn names(inv: &meshmove_model::inventory::Inventory, kind: &meshmove_model::inventory::Kind) -> Vec<String> {
    inv.of(kind).map(|o| o.name.clone()).collect()
}

#[tokio::test]
async fn only_what_workloads_name_is_fetched_and_refusals_make_the_kind_unread() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let wanted = [&kinds::DEPLOYMENT, &kinds::SECRET, &kinds::CONFIG_MAP];

    // As an admin: the named objects, nothing else, and no list of either kind.
    let admin = connect(&d, &dir, None).await;
    let inv = load_by_reference(&admin, &wanted, &BY_REFERENCE, &[], Some(NS)).await.unwrap();
    assert_eq!(names(&inv, &kinds::SECRET), ["db", "token"]);
    assert_eq!(names(&inv, &kinds::CONFIG_MAP), ["settings"], "`gone` is absent, `unrelated` not named");
    assert!(inv.has(&kinds::SECRET) && inv.has(&kinds::CONFIG_MAP) && inv.unread().is_empty());
    let requests = d.requests();
    assert!(requests.iter().all(|r| !(r.path.ends_with("/secrets") || r.path.ends_with("/configmaps"))), "a list: {requests:?}");
    let gets: Vec<String> = requests.iter().filter(|r| r.path.contains("/secrets/") || r.path.contains("/configmaps/")).map(|r| format!("{} {}", r.path, r.status)).collect();
    assert_eq!(gets.len(), 4, "{gets:?}");
    assert!(gets.contains(&"/api/v1/namespaces/shop/configmaps/gone 404".to_string()), "{gets:?}");

    // As the reader: `token` is refused, so Secrets are unread, with the server's message.
    let reader = connect(&d, &tempfile::tempdir().unwrap(), Some("reader-token")).await;
    let inv = load_by_reference(&reader, &wanted, &BY_REFERENCE, &[], Some(NS)).await.unwrap();
    assert_eq!(names(&inv, &kinds::SECRET), ["db"]);
    match inv.availability(&kinds::SECRET) {
        Some(Unavailable::Forbidden { message }) => {
            assert!(message.contains("secrets \"token\" is forbidden: User \"reader\" cannot get resource \"secrets\""), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(inv.has(&kinds::CONFIG_MAP));

    // get_named by itself: found, missing and refused, each recorded.
    let fetched = get_named(&reader, &kinds::SECRET, &[(NS.into(), "db".into()), (NS.into(), "nope".into()), (NS.into(), "token".into())]).await.unwrap();
    assert_eq!(fetched.objects.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["db"]);
    assert!(fetched.missing.is_empty(), "`nope` is refused before it is looked up, as RBAC comes first");
    assert_eq!(fetched.forbidden.iter().map(|(_, n, _)| n.as_str()).collect::<Vec<_>>(), ["nope", "token"]);
    let fetched = get_named(&admin, &kinds::CONFIG_MAP, &[(NS.into(), "gone".into())]).await.unwrap();
    assert_eq!(fetched.missing, [(NS.to_string(), "gone".to_string())]);
}

#[tokio::test]
async fn unreadable_workloads_leave_the_references_unknown() {
    let d = double().await;
    // A user who may read every Secret and ConfigMap by name, but no workload.
    d.load_values([
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "no-workloads", "namespace": NS},
               "rules": [{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "no-workloads", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-workloads"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "blind"}]}),
    ])
    .unwrap();
    d.add_token("blind-token", "blind", &[]);
    let dir = tempfile::tempdir().unwrap();
    let blind = connect(&d, &dir, Some("blind-token")).await;
    let inv = load_by_reference(&blind, &[&kinds::DEPLOYMENT, &kinds::SECRET], &BY_REFERENCE, &[], Some(NS)).await.unwrap();
    assert!(!inv.listed_any(), "nothing was read: {:?}", inv.unread());
    match inv.availability(&kinds::SECRET) {
        Some(Unavailable::Forbidden { message }) => assert!(message.starts_with("the workloads naming them could not be read: "), "{message}"),
        other => panic!("{other:?}"),
    }
}
