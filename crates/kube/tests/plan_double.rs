//! The plan engine against the API-server double over HTTP: journal before the first write,
//! idempotent re-runs, conflicts reported, dry runs that write nothing, faults at every write
//! followed by a re-run or a rollback, and rollback to the exact prior state.

use std::time::Duration;

use apiserver_double::{Double, DoubleHandle, DoubleOptions, FaultRule, Snapshot, crds};
use meshmove_kube::cluster::{ClusterOptions, Connection};
use meshmove_kube::plan::{
    self, Action, Change, DryRun, ExecOptions, JOURNAL_NAME, Plan, PlanError, Prior, Progress, RollbackOptions, Target, label_pointer,
};
use serde_json::{Value, json};

const NS: &str = "shop";

async fn double() -> DoubleHandle {
    let d = Double::start(DoubleOptions::default()).await.unwrap();
    d.install_crds(crds::istio()).unwrap();
    seed(&d);
    d
}

fn seed(d: &DoubleHandle) {
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})).unwrap();
    d.create(apiserver_double::istiod(None)).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "payments"}}})).unwrap();
    for (name, replicas) in [("api", 2), ("web", 1)] {
        d.create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": format!("shop/{name}:1")}]}}}
        }))
        .unwrap();
    }
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir) -> Connection {
    let kubeconfig = d.write_kubeconfig(dir.path(), NS).unwrap();
    let options = ClusterOptions {
        kubeconfig: Some(kubeconfig),
        request_timeout: Some(Duration::from_millis(500)),
        ..ClusterOptions::default()
    };
    options.connect().await.unwrap()
}

fn deploy(name: &str) -> Target {
    Target::new("apps/v1", "Deployment", Some(NS), name)
}

fn peer_auth(mode: &str) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "default", "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "kubectl-mesh-migrate"}},
           "spec": {"mtls": {"mode": mode}}})
}

/// Label the namespace, add a PeerAuthentication, restart both workloads in one batch, wait.
fn enable_plan() -> Plan {
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled")))
        .push(Change::Apply { object: peer_auth("PERMISSIVE") })
        .push(Change::Restart { target: deploy("api") })
        .push(Change::Restart { target: deploy("web") })
        .push(Change::WaitReady { targets: vec![deploy("api"), deploy("web")] });
    p
}

fn options(dry_run: DryRun) -> ExecOptions {
    ExecOptions { dry_run, timeout: Duration::from_secs(10), actor: "tester@double".into() }
}

/// What must come back exactly after a rollback. Left out, because a restart necessarily
/// replaces them: Pods and ReplicaSets (new names and uids), the Deployments' status and their
/// `deployment.kubernetes.io/revision` annotation (the controller counts rollouts).
fn comparable(s: Snapshot) -> Snapshot {
    let mut s = s.without(&["Pod/", "ReplicaSet.apps/"]);
    for (k, v) in s.objects.iter_mut() {
        if k.starts_with("Deployment.apps/") {
            v.as_object_mut().unwrap().shift_remove("status");
            if let Some(a) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                a.shift_remove("deployment.kubernetes.io/revision");
                if a.is_empty() {
                    v["metadata"].as_object_mut().unwrap().shift_remove("annotations");
                }
            }
        }
    }
    s
}

/// [`comparable`], also without what differs between two runs on a reset double: uids, creation
/// times, and the time a restart set.
fn across_runs(s: Snapshot) -> Snapshot {
    let mut s = comparable(s);
    for v in s.objects.values_mut() {
        if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
            m.shift_remove("uid");
            m.shift_remove("creationTimestamp");
        }
        if let Some(t) = v.pointer_mut("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt") {
            *t = json!("<restarted>");
        }
    }
    s
}

fn pods_with_proxy(d: &DoubleHandle) -> (usize, usize) {
    let pods = d.list("v1", "Pod", Some(NS));
    let meshed = pods
        .iter()
        .filter(|p| p["spec"]["containers"].as_array().unwrap().iter().any(|c| c["name"] == "istio-proxy"))
        .count();
    (meshed, pods.len())
}

fn writes(d: &DoubleHandle) -> Vec<String> {
    d.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}{}", r.method, r.path, if r.query.contains("dryRun=All") { " dryRun" } else { "" }))
        .collect()
}

async fn run(conn: &Connection, p: &Plan, dry: DryRun) -> Result<Vec<plan::Outcome>, PlanError> {
    plan::execute(conn, p, &options(dry), &mut |_| {}).await
}

async fn undo(conn: &Connection) -> Result<Vec<plan::Outcome>, PlanError> {
    let o = RollbackOptions { timeout: Duration::from_secs(10), batch_size: 1, actor: "tester@double".into(), ..RollbackOptions::default() };
    plan::rollback(conn, NS, &o, &mut |_| {}).await
}

#[tokio::test]
async fn execute_journals_first_reruns_are_no_ops_and_rollback_restores_exactly() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let before = comparable(d.snapshot());
    assert_eq!(pods_with_proxy(&d), (0, 3));

    d.clear_requests();
    let outcomes = run(&conn, &enable_plan(), DryRun::None).await.unwrap();
    let actions: Vec<Action> = outcomes.iter().map(|o| o.action).collect();
    assert_eq!(actions, [Action::Configured, Action::Created, Action::Restarted, Action::Restarted, Action::Ready]);
    assert_eq!(pods_with_proxy(&d), (3, 3), "restarted pods carry the proxy");
    // The journal is written before the first write that touches an object.
    let w = writes(&d);
    assert_eq!(w[0], format!("POST /api/v1/namespaces/{NS}/configmaps"), "{w:#?}");
    assert!(w[1].starts_with(&format!("PATCH /api/v1/namespaces/{NS}")), "{w:#?}");
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    assert_eq!(journal.steps.len(), 1);
    assert_eq!(journal.steps[0].status, plan::StepStatus::Completed);
    assert_eq!(journal.steps[0].who, "tester@double");
    let ns_entry = journal.entry(&Target::namespace(NS)).unwrap();
    let Prior::Fields { fields } = &ns_entry.prior else { panic!("{ns_entry:?}") };
    assert_eq!(fields[&label_pointer("istio-injection")].prior, None, "the label was absent");
    assert_eq!(journal.entry(&Target::of(&peer_auth("x"))).unwrap().prior, Prior::Absent);
    // Server-side apply as kubectl-mesh-migrate.
    let pa = d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").unwrap();
    assert_eq!(pa["metadata"]["managedFields"][0]["manager"], "kubectl-mesh-migrate");
    assert_eq!(pa["metadata"]["managedFields"][0]["operation"], "Apply");

    // Again: nothing changes, no restart happens twice, nothing but the SSA no-op is sent.
    d.clear_requests();
    let again = run(&conn, &enable_plan(), DryRun::None).await.unwrap();
    let actions: Vec<Action> = again.iter().map(|o| o.action).collect();
    assert_eq!(actions, [Action::Unchanged, Action::Unchanged, Action::Unchanged, Action::Unchanged, Action::Ready]);
    let w = writes(&d);
    assert_eq!(w, [format!("PATCH /apis/security.istio.io/v1/namespaces/{NS}/peerauthentications/default")], "{w:#?}");

    // Rollback: labels, created objects, restarted pods without the proxy, no journal.
    let undone = undo(&conn).await.unwrap();
    assert!(undone.iter().any(|o| o.action == Action::Deleted && o.target.kind == "PeerAuthentication"), "{undone:?}");
    assert_eq!(pods_with_proxy(&d), (0, 3), "rolled-back pods lost the proxy");
    let after = comparable(d.snapshot());
    assert!(before.diff(&after).is_empty(), "{:#?}", before.diff(&after));
    assert!(d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).is_none());
    // Nothing left to roll back.
    assert!(matches!(undo(&conn).await, Err(PlanError::NoJournal { .. })));
}

#[tokio::test]
async fn dry_runs_write_nothing() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let before = d.snapshot();
    d.clear_requests();
    let client = run(&conn, &enable_plan(), DryRun::Client).await.unwrap();
    assert!(d.requests().iter().all(|r| r.method == "GET"), "{:#?}", writes(&d));
    assert_eq!(client[1].action, Action::Created);
    assert_eq!(client[4].action, Action::Skipped, "no waiting in a dry run");
    let previews = plan::preview(&conn, &enable_plan()).await.unwrap();
    assert_eq!(previews.len(), 4);
    assert!(previews[0].diff.contains("+    istio-injection: enabled"), "{}", previews[0].diff);
    assert!(previews[1].diff.contains("--- a/PeerAuthentication/shop/default (absent)"), "{}", previews[1].diff);
    assert!(previews[2].diff.contains("kubectl.kubernetes.io/restartedAt"), "{}", previews[2].diff);

    d.clear_requests();
    let server = run(&conn, &enable_plan(), DryRun::Server).await.unwrap();
    assert_eq!(server[0].dry_run, DryRun::Server);
    let w = writes(&d);
    assert_eq!(w.len(), 4, "{w:#?}");
    assert!(w.iter().all(|w| w.ends_with(" dryRun")), "every write carries dryRun=All: {w:#?}");
    assert!(before.diff(&d.snapshot()).is_empty(), "{:#?}", before.diff(&d.snapshot()));
}

#[tokio::test]
async fn conflicts_with_another_manager_stop_the_step() {
    let d = double().await;
    d.apply(peer_auth("STRICT"), "security-team", false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let err = run(&conn, &enable_plan(), DryRun::None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PlanError::Conflict { .. }), "{msg}");
    assert!(msg.contains("security-team") && msg.contains("PeerAuthentication/shop/default"), "{msg}");
    assert!(msg.contains("never forces"), "{msg}");
    let pa = d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").unwrap();
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT", "the other manager's value was kept");
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    assert_eq!(journal.steps[0].status, plan::StepStatus::Failed);
    assert!(journal.steps[0].error.as_deref().unwrap().contains("security-team"));
    // Rollback restores what was done before the conflict, including the object it met.
    undo(&conn).await.unwrap();
    let ns = d.get("v1", "Namespace", None, NS).unwrap();
    assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": NS, "team": "payments"}));
    assert_eq!(d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").unwrap()["spec"]["mtls"]["mode"], "STRICT");
}

#[tokio::test]
async fn a_changed_label_is_drift_and_rollback_does_not_overwrite_it() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled")));
    run(&conn, &p, DryRun::None).await.unwrap();
    let mut ns = d.get("v1", "Namespace", None, NS).unwrap();
    ns["metadata"]["labels"]["istio-injection"] = json!("disabled");
    ns.as_object_mut().unwrap().shift_remove("status");
    ns["metadata"].as_object_mut().unwrap().shift_remove("managedFields");
    d.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"istio-injection": "disabled"}}}), "someone", true)
        .unwrap();
    let err = undo(&conn).await.unwrap_err();
    assert!(matches!(err, PlanError::Drifts { .. }), "{err}");
    assert!(err.to_string().contains("\"disabled\""), "{err}");
    assert!(err.to_string().contains("/metadata/labels/istio-injection"), "{err}");
    let o = RollbackOptions { force: true, timeout: Duration::from_secs(10), ..RollbackOptions::default() };
    plan::rollback(&conn, NS, &o, &mut |_| {}).await.unwrap();
    let ns = d.get("v1", "Namespace", None, NS).unwrap();
    assert!(ns["metadata"]["labels"].get("istio-injection").is_none(), "{ns}");
}

#[tokio::test]
async fn a_fault_at_any_write_leaves_a_state_that_a_rerun_completes_or_rollback_restores() {
    // The writes of a clean run, in order.
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let initial = across_runs(d.snapshot());
    d.clear_requests();
    run(&conn, &enable_plan(), DryRun::None).await.unwrap();
    let completed = across_runs(d.snapshot()).without(&["ConfigMap/"]);
    let clean: Vec<(String, String)> =
        d.requests().into_iter().filter(|r| r.method != "GET").map(|r| (r.method, r.path)).collect();
    // One journal write with every prior state, the four changes, the journal's "completed".
    let methods: Vec<&str> = clean.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["POST", "PATCH", "PATCH", "PATCH", "PATCH", "PUT"], "{clean:#?}");

    type Fault = fn(FaultRule) -> FaultRule;
    let faults: [(&str, Fault); 3] = [
        ("500", |r| r.status(500, "etcd leader changed")),
        ("409", |r| r.status(409, "Operation cannot be fulfilled: the object has been modified")),
        // Longer than the client's 0.5 s request timeout: the client gives up, the write lands.
        ("timeout", |r| r.delay(Duration::from_millis(800))),
    ];
    for (n, (method, path)) in clean.iter().enumerate() {
        // The rule fires on this write: the k-th request with its method and path.
        let k = clean[..=n].iter().filter(|(m, p)| m == method && p == path).count() as u64;
        for (fi, (name, fault)) in faults.iter().enumerate() {
            for finish_with_rollback in [false, true] {
                if *name == "timeout" && finish_with_rollback != ((n + fi) % 2 == 0) {
                    continue; // timeouts are slow: alternate the two endings
                }
                let case = format!("{name} at write {} ({method} {path}), then {}", n + 1, if finish_with_rollback { "rollback" } else { "rerun" });
                d.reset();
                d.install_crds(crds::istio()).unwrap();
                seed(&d);
                let before = comparable(d.snapshot());
                assert!(across_runs(d.snapshot()).diff(&initial).is_empty(), "{case}");
                let id = d.add_fault(fault(FaultRule::on(method, &format!("^{}$", regex_escape(path))).nth(k).times(1))).unwrap();
                let first = run(&conn, &enable_plan(), DryRun::None).await;
                if *name == "timeout" {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                let fired = d.faults().iter().find(|f| f.id == id).map(|f| f.fired).unwrap_or(0);
                assert_eq!(fired, 1, "{case}: the fault did not fire");
                d.remove_fault(id);
                match &first {
                    Err(_) => {}
                    // A failed `test` of a JSON patch is retried after reading the object again.
                    Ok(_) if *name == "409" && method == "PATCH" => {}
                    Ok(_) => panic!("{case}: the step did not fail"),
                }
                if finish_with_rollback {
                    match undo(&conn).await {
                        Ok(_) | Err(PlanError::NoJournal { .. }) => {}
                        Err(e) => panic!("{case}: rollback failed: {e}"),
                    }
                    let after = comparable(d.snapshot());
                    assert!(before.diff(&after).is_empty(), "{case}: {:#?}", before.diff(&after));
                    assert_eq!(pods_with_proxy(&d), (0, 3), "{case}");
                } else {
                    run(&conn, &enable_plan(), DryRun::None).await.unwrap_or_else(|e| panic!("{case}: rerun failed: {e}"));
                    let after = across_runs(d.snapshot()).without(&["ConfigMap/"]);
                    assert!(completed.diff(&after).is_empty(), "{case}: {:#?}", completed.diff(&after));
                    assert_eq!(pods_with_proxy(&d), (3, 3), "{case}");
                    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
                    assert_eq!(journal.steps.last().unwrap().status, plan::StepStatus::Completed, "{case}");
                }
            }
        }
    }
}

fn regex_escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '/' || c == '-' { c.to_string() } else { format!("\\{c}") }).collect()
}

#[tokio::test]
async fn a_journal_changed_by_another_operator_is_a_conflict() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled")));
    run(&conn, &p, DryRun::None).await.unwrap();
    // Operator A reads the journal; operator B runs a step meanwhile.
    let mut stale = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    let mut q = Plan::new("other", NS);
    q.push(Change::label(Target::namespace(NS), "team", Some("checkout")));
    run(&conn, &q, DryRun::None).await.unwrap();
    stale.extensions.insert("note".into(), json!("from A"));
    let err = stale.save(&conn).await.unwrap_err();
    assert!(matches!(err, PlanError::JournalConflict { .. }), "{err}");
    assert!(err.to_string().contains("another operator"), "{err}");
    // B's record survived; A reloads and saves.
    let mut fresh = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    assert_eq!(fresh.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(), ["enable", "other"]);
    fresh.extensions.insert("note".into(), json!("from A"));
    fresh.save(&conn).await.unwrap();
    // Rollback undoes both steps, the label B changed included.
    undo(&conn).await.unwrap();
    let ns = d.get("v1", "Namespace", None, NS).unwrap();
    assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": NS, "team": "payments"}));
}

#[tokio::test]
async fn a_rollout_that_never_becomes_ready_times_out_and_the_step_is_failed() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    // The Deployment as a stuck rollout reports it: one of two pods ready.
    let mut stuck = d.get("apps/v1", "Deployment", Some(NS), "api").unwrap();
    stuck["status"] = json!({"observedGeneration": stuck["metadata"]["generation"], "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1});
    d.add_fault(FaultRule::on("GET", &format!("^/apis/apps/v1/namespaces/{NS}/deployments/api$")).body(200, stuck)).unwrap();
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled"))).push(Change::WaitReady { targets: vec![deploy("web"), deploy("api")] });
    let mut waits = Vec::new();
    let o = ExecOptions { timeout: Duration::from_millis(300), ..options(DryRun::None) };
    let err = plan::execute(&conn, &p, &o, &mut |e| {
        if let plan::Progress::Waiting { ready, total, .. } = e {
            waits.push((ready, total));
        }
    })
    .await
    .unwrap_err();
    assert!(matches!(err, PlanError::Timeout { .. }), "{err}");
    assert_eq!(err.class(), plan::ErrorClass::Failed);
    assert!(err.to_string().contains("Deployment/shop/api") && err.to_string().contains("1/2 ready"), "{err}");
    assert!(waits.len() >= 2 && waits.iter().all(|w| *w == (1, 2)), "progress while waiting: {waits:?}");
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    assert_eq!(journal.steps[0].status, plan::StepStatus::Failed);
}

#[tokio::test]
async fn a_deployment_past_its_progress_deadline_stops_the_wait_at_once() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    // The Deployment as the controller reports a rollout past its deadline.
    let mut stuck = d.get("apps/v1", "Deployment", Some(NS), "api").unwrap();
    stuck["status"] = json!({"observedGeneration": stuck["metadata"]["generation"], "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                        "message": "ReplicaSet \"api-5c7\" has timed out progressing."}]});
    d.add_fault(FaultRule::on("GET", &format!("^/apis/apps/v1/namespaces/{NS}/deployments/api$")).body(200, stuck)).unwrap();
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled"))).push(Change::WaitReady { targets: vec![deploy("web"), deploy("api")] });
    let started = std::time::Instant::now();
    let o = ExecOptions { timeout: Duration::from_secs(60), ..options(DryRun::None) };
    let err = plan::execute(&conn, &p, &o, &mut |_| {}).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "no wait for a rollout that failed: {:?}", started.elapsed());
    assert!(matches!(err, PlanError::RolloutFailed { .. }), "{err}");
    assert_eq!(err.class(), plan::ErrorClass::Failed);
    assert_eq!(err.to_string(), "Deployment/shop/api exceeded its progress deadline: ReplicaSet \"api-5c7\" has timed out progressing.");
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    assert_eq!(journal.steps[0].status, plan::StepStatus::Failed);
}

#[tokio::test]
async fn on_delete_workloads_are_restarted_but_not_waited_for() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    d.create(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": NS, "labels": {"app": "db"}},
        "spec": {"replicas": 2, "serviceName": "db", "updateStrategy": {"type": "OnDelete"},
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}
    }))
    .unwrap();
    let pod_uids = |d: &DoubleHandle| -> Vec<String> {
        let mut uids: Vec<String> = d
            .list("v1", "Pod", Some(NS))
            .iter()
            .filter(|p| p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("db-")))
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        uids.sort();
        uids
    };
    let before = pod_uids(&d);
    assert_eq!(before.len(), 2);
    let sts = Target::new("apps/v1", "StatefulSet", Some(NS), "db");
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled")))
        .push(Change::Restart { target: sts.clone() })
        .push(Change::Restart { target: deploy("web") })
        .push(Change::WaitReady { targets: vec![sts.clone(), deploy("web")] });
    let mut outcomes = Vec::new();
    let started = std::time::Instant::now();
    let o = ExecOptions { timeout: Duration::from_secs(60), ..options(DryRun::None) };
    plan::execute(&conn, &p, &o, &mut |e| {
        if let Progress::Done(o) = e {
            outcomes.push(o);
        }
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "no wait for a rollout that never comes: {:?}", started.elapsed());
    let skipped: Vec<String> = outcomes.iter().filter(|o| o.action == Action::Skipped).map(ToString::to_string).collect();
    assert_eq!(skipped.len(), 1, "{outcomes:?}");
    assert!(skipped[0].starts_with("statefulset.apps/db skipped") && skipped[0].contains("not waited for: updateStrategy OnDelete"), "{skipped:?}");
    assert!(skipped[0].contains("2 of 2 pod(s) keep the old template until someone deletes them"), "{skipped:?}");
    assert!(outcomes.iter().any(|o| o.action == Action::Ready), "the Deployment was waited for: {outcomes:?}");
    assert_eq!(pod_uids(&d), before, "the controller replaced no pod");
}

/// Rollback rolls workloads again in batches that never hold two guarded by one
/// PodDisruptionBudget (read at rollback time), whatever `batch_size` allows.
#[tokio::test]
async fn rollback_never_rolls_two_workloads_of_one_budget_together() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let rollback_batches = |budget: Option<Value>| {
        let (d, conn) = (&d, &conn);
        async move {
            run(conn, &enable_plan(), DryRun::None).await.unwrap();
            if let Some(b) = budget {
                d.create(b).unwrap();
            }
            let o = RollbackOptions { timeout: Duration::from_secs(10), batch_size: 3, actor: "tester@double".into(), ..RollbackOptions::default() };
            // Each wait's workload count, in order, and the restarts between them.
            let mut events = Vec::new();
            plan::rollback(conn, NS, &o, &mut |p| match p {
                Progress::Done(o) if o.action == Action::Restarted => events.push(format!("restart {}", o.target.name)),
                Progress::Waiting { total, pending: None, .. } => events.push(format!("ready {total}")),
                _ => {}
            })
            .await
            .unwrap();
            events
        }
    };
    // No budget: one batch of both.
    assert_eq!(rollback_batches(None).await, ["restart web", "restart api", "ready 2"]);
    // One budget over both (matchExpressions, exactly evaluated): one at a time.
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "shop", "namespace": NS},
                     "spec": {"maxUnavailable": 1, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}}});
    assert_eq!(rollback_batches(Some(pdb)).await, ["restart web", "ready 1", "restart api", "ready 1"]);
}

#[tokio::test]
async fn rollback_finds_every_edit_of_others_before_its_first_write_and_refuses_whole() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("enable", NS);
    p.push(Change::label(Target::namespace(NS), "istio-injection", Some("enabled"))).push(Change::Apply { object: peer_auth("PERMISSIVE") });
    run(&conn, &p, DryRun::None).await.unwrap();
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    let pa = Target::new("security.istio.io/v1", "PeerAuthentication", Some(NS), "default");
    assert_eq!(journal.entry(&pa).unwrap().applied.as_ref(), Some(&peer_auth("PERMISSIVE")), "what the tool applied is journaled");
    assert!(plan::conflicts(&conn, &p).await.unwrap().is_empty());
    // Someone adds a field to the tool's PeerAuthentication and changes the label the tool set.
    d.apply(
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": NS},
               "spec": {"portLevelMtls": {"8080": {"mode": "DISABLE"}}}}),
        "kubectl-edit",
        false,
    )
    .unwrap();
    d.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"istio-injection": "disabled"}}}), "someone", true)
        .unwrap();
    let before = d.snapshot();
    d.clear_requests();
    let err = undo(&conn).await.unwrap_err();
    let PlanError::Drifts { drifts, .. } = &err else { panic!("{err}") };
    assert_eq!(drifts.len(), 2, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("portLevelMtls") && msg.contains("kubectl-edit") && msg.contains("\"disabled\""), "{msg}");
    assert!(msg.contains("rollback changed nothing"), "{msg}");
    assert!(writes(&d).is_empty(), "{:#?}", writes(&d));
    assert!(before.diff(&d.snapshot()).is_empty(), "{:#?}", before.diff(&d.snapshot()));
    // A rerun of the step sees the label (a field it wrote), not the added field it would keep.
    let rerun = plan::conflicts(&conn, &p).await.unwrap();
    assert_eq!(rerun.len(), 1, "{rerun:#?}");
    assert_eq!(rerun[0].target, Target::namespace(NS));
    // --force rolls back over both.
    let o = RollbackOptions { force: true, timeout: Duration::from_secs(10), ..RollbackOptions::default() };
    plan::rollback(&conn, NS, &o, &mut |_| {}).await.unwrap();
    assert!(d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").is_none());
    let ns = d.get("v1", "Namespace", None, NS).unwrap();
    assert!(ns["metadata"]["labels"].get("istio-injection").is_none(), "{ns}");
}
