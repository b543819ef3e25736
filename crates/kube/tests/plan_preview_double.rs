//! Previews against what the writes do, on the API-server double: the whole objects a plan's
//! preview says it leaves are the objects the API server holds after the plan is executed, and
//! the objects a rollback preview says it restores are the ones the rollback leaves (the deleted
//! ones gone); both previews only read.

use std::time::Duration;

use apiserver_double::{Double, DoubleHandle, DoubleOptions, crds};
use meshmove_kube::cluster::{ClusterOptions, Connection};
use meshmove_kube::plan::{self, Action, Change, DryRun, ExecOptions, Plan, RollbackOptions, Target};
use serde_json::{Value, json};

const NS: &str = "shop";

async fn double() -> DoubleHandle {
    let d = Double::start(DoubleOptions::default()).await.unwrap();
    d.install_crds(crds::istio()).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})).unwrap();
    d.create(apiserver_double::istiod(None)).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "payments"}}})).unwrap();
    d.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": NS, "labels": {"app": "api"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "api", "image": "shop/api:1"}]}}}
    }))
    .unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": NS}, "type": "Opaque", "data": {"password": "czNjcjN0"}}))
        .unwrap();
    d
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir) -> Connection {
    let kubeconfig = d.write_kubeconfig(dir.path(), NS).unwrap();
    let options = ClusterOptions { kubeconfig: Some(kubeconfig), request_timeout: Some(Duration::from_millis(500)), ..ClusterOptions::default() };
    options.connect().await.unwrap()
}

fn plan() -> Plan {
    let api = Target::new("apps/v1", "Deployment", Some(NS), "api");
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled")))
        .push(Change::Apply {
            object: json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                           "metadata": {"name": "default", "namespace": NS}, "spec": {"mtls": {"mode": "PERMISSIVE"}}}),
        })
        // Two changes of one object: the preview's object carries both.
        .push(Change::label(api.clone(), "mesh", Some("yes")))
        .push(Change::Restart { target: api.clone() })
        .push(Change::Scale { target: api, replicas: 3 })
        .push(Change::Delete { target: Target::new("v1", "Secret", Some(NS), "db") });
    p
}

/// What the server and time add: server metadata, status, the restart's time, the revision the
/// Deployment controller counts.
fn normal(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().shift_remove("status");
    let meta = v["metadata"].as_object_mut().unwrap();
    for k in ["uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "selfLink"] {
        meta.shift_remove(k);
    }
    if let Some(a) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.shift_remove("deployment.kubernetes.io/revision");
        if a.is_empty() {
            v["metadata"].as_object_mut().unwrap().shift_remove("annotations");
        }
    }
    if let Some(t) = v.pointer_mut("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt") {
        *t = json!("<restarted>");
    }
    v
}

fn live(d: &DoubleHandle, o: &Value) -> Option<Value> {
    let t = Target::of(o);
    d.get(&t.api_version, &t.kind, t.namespace.as_deref(), &t.name).map(|v| normal(&v))
}

#[tokio::test]
async fn preview_objects_are_what_the_writes_leave_and_rollback_previews_what_rollback_leaves() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let before = d.snapshot();
    let previews = plan::preview(&conn, &plan()).await.unwrap();
    assert_eq!(before.diff(&d.snapshot()), Vec::<String>::new(), "a preview writes nothing");
    let objects = plan::objects_after(&previews);
    // Namespace, PeerAuthentication, Deployment once (three changes), the Secret deleted.
    assert_eq!(objects.iter().map(|o| o["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["Namespace", "PeerAuthentication", "Deployment"]);
    // A complete Deployment, not the fields the changes touch: the selector is there.
    assert_eq!(objects[2]["spec"]["selector"], json!({"matchLabels": {"app": "api"}}));
    // The Secret's deletion diff shows no value.
    let deleted = previews.iter().find(|p| p.target.kind == "Secret").unwrap();
    assert_eq!(deleted.action, Action::Deleted);
    assert!(!deleted.diff.contains("czNjcjN0") && deleted.diff.contains("***"), "{}", deleted.diff);

    let options = ExecOptions { dry_run: DryRun::None, timeout: Duration::from_secs(10), actor: "tester@double".into() };
    plan::execute(&conn, &plan(), &options, &mut |_| {}).await.unwrap();
    for o in &objects {
        assert_eq!(live(&d, o).as_ref(), Some(&normal(o)), "{} as previewed", Target::of(o));
    }
    assert!(d.get("v1", "Secret", Some(NS), "db").is_none());

    // Rollback: the preview reads only, and its objects are what the rollback leaves.
    let after_enable = d.snapshot();
    let back = plan::rollback_preview(&conn, NS, None).await.unwrap();
    assert_eq!(after_enable.diff(&d.snapshot()), Vec::<String>::new(), "a rollback preview writes nothing");
    let by_kind = |k: &str| back.iter().find(|p| p.target.kind == k).unwrap();
    assert_eq!(by_kind("PeerAuthentication").action, Action::Deleted);
    assert!(by_kind("PeerAuthentication").diff.contains("(deleted)"), "{}", by_kind("PeerAuthentication").diff);
    assert_eq!(by_kind("Secret").action, Action::Created);
    assert!(!by_kind("Secret").diff.contains("czNjcjN0"), "no Secret value: {}", by_kind("Secret").diff);
    assert!(by_kind("Namespace").diff.contains("-    istio-injection: enabled"), "{}", by_kind("Namespace").diff);
    let restored = plan::objects_after(&back);
    let ro = RollbackOptions { timeout: Duration::from_secs(10), batch_size: 1, actor: "tester@double".into(), ..RollbackOptions::default() };
    plan::rollback(&conn, NS, &ro, &mut |_| {}).await.unwrap();
    for o in &restored {
        let mut want = normal(o);
        let mut have = live(&d, o).unwrap_or_else(|| panic!("{} restored", Target::of(o)));
        if want["kind"] == "Secret" {
            // The preview masks values; the restored Secret has its own back (checked by hash elsewhere).
            want.as_object_mut().unwrap().shift_remove("data");
            have.as_object_mut().unwrap().shift_remove("data");
        }
        assert_eq!(have, want, "{} as the rollback preview said", Target::of(o));
    }
    assert!(d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").is_none());
}
