//! Pod Security from the API server, against the API-server double: the dry run of the enforce
//! label returns the violations of the namespace's pods, persists nothing, and looks again when
//! the namespace enforces that level already.

use std::time::Duration;

use apiserver_double::{Double, DoubleOptions};
use meshmove_kube::cluster::ClusterOptions;
use meshmove_kube::plan::podsecurity::{PodViolation, pod_security_dry_run};
use serde_json::{Value, json};

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"}, "spec": spec})
}

#[tokio::test]
async fn the_enforce_label_dry_run_names_the_pods_the_level_would_reject() {
    let d = Double::start(DoubleOptions::default()).await.unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})).unwrap();
    let plain = json!({"containers": [{"name": "app", "image": "shop/app:1"}]});
    let hardened = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "shop/app:1", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
    for (name, spec) in [("web-1", plain.clone()), ("web-2", plain), ("db-0", json!({"hostPID": true, "containers": [{"name": "db", "image": "pg"}]})), ("ok", hardened)] {
        d.create(pod(name, spec)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = d.write_kubeconfig(dir.path(), "shop").unwrap();
    let conn = ClusterOptions { kubeconfig: Some(kubeconfig), request_timeout: Some(Duration::from_secs(5)), ..ClusterOptions::default() }
        .connect()
        .await
        .unwrap();
    let before = d.snapshot();
    let a = pod_security_dry_run(&conn, "shop", "baseline").await.unwrap();
    assert_eq!(a.level.as_deref(), Some("baseline:latest"));
    assert_eq!(a.violations, [PodViolation { pod: "db-0".into(), others: 0, reasons: vec!["host namespaces".into()] }]);
    let r = pod_security_dry_run(&conn, "shop", "restricted").await.unwrap();
    let names: Vec<(&str, usize)> = r.violations.iter().map(|v| (v.pod.as_str(), v.others)).collect();
    assert_eq!(names, [("db-0", 0), ("web-1", 1)]);
    assert!(d.snapshot().diff(&before).is_empty(), "dry runs persist nothing");
    let writes: Vec<_> = d.requests().into_iter().filter(|q| q.method != "GET").collect();
    assert!(!writes.is_empty() && writes.iter().all(|q| q.query.contains("dryRun=All")), "{writes:?}");

    // Already enforced: the server would not look again at `latest`, so the dry run names its version.
    d.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}), "admin", true)
        .unwrap();
    let again = pod_security_dry_run(&conn, "shop", "restricted").await.unwrap();
    assert!(again.level.as_deref().is_some_and(|l| l.starts_with("restricted:v1.")), "{again:?}");
    assert_eq!(again.violations.len(), 2);
    // A namespace that does not exist is an error naming it.
    let err = pod_security_dry_run(&conn, "nope", "restricted").await.unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}
