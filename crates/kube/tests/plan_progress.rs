//! The plan engine's waits against rollouts that take time: the API double's controllers roll
//! out as Kubernetes' do (pods Ready after a delay, never Ready, progress deadlines, StatefulSet
//! partitions), so each wait is checked against what the controllers report at that moment, not
//! against statuses written by hand.

use std::time::{Duration, Instant};

use apiserver_double::{Double, DoubleHandle, DoubleOptions, PodBehaviour};
use meshmove_kube::cluster::{ClusterOptions, Connection};
use meshmove_kube::plan::{self, Action, Change, DryRun, ExecOptions, Plan, PlanError, Progress, Target};
use serde_json::{Value, json};

const NS: &str = "shop";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn double(opts: DoubleOptions) -> DoubleHandle {
    let d = Double::start(opts).await.unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})).unwrap();
    d
}

fn workload(d: &DoubleHandle, kind: &str, name: &str, replicas: i64, strategy: Option<Value>) {
    let mut w = json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": format!("shop/{name}:1")}]}}}
    });
    if let Some(s) = strategy {
        w["spec"]["updateStrategy"] = s;
    }
    if kind == "StatefulSet" {
        w["spec"]["serviceName"] = json!(name);
    }
    d.create(w).unwrap();
}

/// Waits (on the double's clock) until `kind/name` reports every pod ready.
async fn settled(d: &DoubleHandle, kind: &str, name: &str) {
    let started = Instant::now();
    loop {
        let w = d.get("apps/v1", kind, Some(NS), name).unwrap();
        if plan::workload_ready(kind, &w).ready {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{kind}/{name} never became ready: {}", w["status"]);
        tokio::time::sleep(ms(10)).await;
    }
}

/// Waits until pod `name` is Ready.
async fn settled_pod(d: &DoubleHandle, name: &str) {
    let started = Instant::now();
    loop {
        let ready = d.get("v1", "Pod", Some(NS), name).and_then(|p| {
            p["status"]["conditions"].as_array().map(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        });
        if ready == Some(true) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "pod {name} never became ready");
        tokio::time::sleep(ms(10)).await;
    }
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir) -> Connection {
    let kubeconfig = d.write_kubeconfig(dir.path(), NS).unwrap();
    let options = ClusterOptions { kubeconfig: Some(kubeconfig), request_timeout: Some(ms(2000)), ..ClusterOptions::default() };
    options.connect().await.unwrap()
}

fn deploy(name: &str) -> Target {
    Target::new("apps/v1", "Deployment", Some(NS), name)
}

fn options(timeout: Duration) -> ExecOptions {
    ExecOptions { dry_run: DryRun::None, timeout, actor: "tester@double".into() }
}

/// Whether the Deployment's controller reports its rollout complete: every desired pod updated
/// and available, no old pod, condition Progressing with reason NewReplicaSetAvailable.
fn complete(d: &DoubleHandle, name: &str) -> bool {
    let w = d.get("apps/v1", "Deployment", Some(NS), name).unwrap();
    let n = |f: &str| w["status"][f].as_i64().unwrap_or(0);
    let want = w["spec"]["replicas"].as_i64().unwrap();
    let progressing = w["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing")).cloned();
    n("replicas") == want
        && n("updatedReplicas") == want
        && n("availableReplicas") == want
        && progressing.is_some_and(|c| c["reason"] == "NewReplicaSetAvailable")
}

#[tokio::test]
async fn a_wait_ends_only_once_the_controller_reports_the_rollout_complete() {
    let d = double(DoubleOptions::default().ready_after(ms(150))).await;
    workload(&d, "Deployment", "api", 4, None);
    workload(&d, "Deployment", "web", 1, None);
    settled(&d, "Deployment", "api").await;
    settled(&d, "Deployment", "web").await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("enable", NS);
    p.push(Change::Restart { target: deploy("api") })
        .push(Change::Restart { target: deploy("web") })
        .push(Change::WaitReady { targets: vec![deploy("api"), deploy("web")] });
    let mut waits = Vec::new();
    let mut complete_when_done = None;
    let started = Instant::now();
    plan::execute(&conn, &p, &options(Duration::from_secs(30)), &mut |e| {
        if let Progress::Waiting { ready, total, pending } = e {
            waits.push((ready, total));
            if pending.is_none() {
                complete_when_done = Some(complete(&d, "api") && complete(&d, "web"));
            }
        }
    })
    .await
    .unwrap();
    // Rolling 4 pods with 25% surge takes at least two rounds of 150 ms.
    assert!(started.elapsed() >= ms(300), "the wait did not wait: {:?}", started.elapsed());
    assert!(waits.first().is_some_and(|(ready, total)| ready < total), "{waits:?}");
    assert_eq!(complete_when_done, Some(true), "the wait ended before the controller said complete");
}

#[tokio::test]
async fn pods_that_never_become_ready_end_the_wait_at_the_progress_deadline_with_its_message() {
    let d = double(DoubleOptions::default().progress_deadline(ms(400))).await;
    workload(&d, "Deployment", "api", 2, None);
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    // The new version's readiness probe never passes.
    d.set_pod_behaviour(NS, "api", PodBehaviour::NeverReady);
    let mut p = Plan::new("enable", NS);
    p.push(Change::Restart { target: deploy("api") }).push(Change::WaitReady { targets: vec![deploy("api")] });
    let started = Instant::now();
    let err = plan::execute(&conn, &p, &options(Duration::from_secs(60)), &mut |_| {}).await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= ms(400), "failed before the deadline: {took:?}");
    assert!(took < Duration::from_secs(10), "waited past the deadline: {took:?}");
    // The message is the one the controller wrote on the condition.
    let w = d.get("apps/v1", "Deployment", Some(NS), "api").unwrap();
    let cond = w["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap().clone();
    assert_eq!((cond["status"].as_str(), cond["reason"].as_str()), (Some("False"), Some("ProgressDeadlineExceeded")));
    let PlanError::RolloutFailed { target, message } = &err else { panic!("{err}") };
    assert_eq!(target, &deploy("api"));
    assert_eq!(message, cond["message"].as_str().unwrap());
    assert!(message.ends_with("has timed out progressing."), "{message}");
    // Nothing was taken down meanwhile: the old pods still serve.
    assert_eq!(w["status"]["availableReplicas"], 2);
}

#[tokio::test]
async fn each_batch_is_waited_for_before_the_next_is_restarted() {
    let d = double(DoubleOptions::default().ready_after(ms(120))).await;
    for name in ["api", "web", "worker"] {
        workload(&d, "Deployment", name, 2, None);
    }
    for name in ["api", "web", "worker"] {
        settled(&d, "Deployment", name).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("enable", NS);
    p.push(Change::Restart { target: deploy("api") })
        .push(Change::Restart { target: deploy("web") })
        .push(Change::WaitReady { targets: vec![deploy("api"), deploy("web")] })
        .push(Change::Restart { target: deploy("worker") })
        .push(Change::WaitReady { targets: vec![deploy("worker")] });
    // At each restart, the state of the workloads of the batches before it.
    let mut seen = Vec::new();
    plan::execute(&conn, &p, &options(Duration::from_secs(30)), &mut |e| {
        if let Progress::Done(o) = e
            && o.action == Action::Restarted
        {
            seen.push((o.target.name.clone(), complete(&d, "api"), complete(&d, "web")));
        }
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The first batch is restarted together, not yet rolled out when its second member starts...
    assert_eq!(seen[1].0, "web");
    assert!(!seen[1].1, "api cannot have rolled out 120 ms pods at once: {seen:?}");
    // ... and the second batch starts only after the first rolled out completely.
    assert_eq!(seen[2], ("worker".to_string(), true, true));
    assert!(complete(&d, "worker"));
}

#[tokio::test]
async fn a_partitioned_statefulset_is_waited_for_down_to_its_partition_and_the_rest_is_named() {
    let d = double(DoubleOptions::default().ready_after(ms(60))).await;
    workload(&d, "StatefulSet", "db", 3, Some(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}})));
    workload(&d, "Deployment", "web", 1, None);
    settled(&d, "StatefulSet", "db").await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let sts = Target::new("apps/v1", "StatefulSet", Some(NS), "db");
    let mut p = Plan::new("enable", NS);
    p.push(Change::Restart { target: sts.clone() })
        .push(Change::Restart { target: deploy("web") })
        .push(Change::WaitReady { targets: vec![sts.clone(), deploy("web")] });
    let mut outcomes = Vec::new();
    let started = Instant::now();
    plan::execute(&conn, &p, &options(Duration::from_secs(30)), &mut |e| {
        if let Progress::Done(o) = e {
            outcomes.push(o);
        }
    })
    .await
    .unwrap();
    // db-2 then db-1, one at a time, 60 ms each at least.
    assert!(started.elapsed() >= ms(120), "{:?}", started.elapsed());
    let skipped: Vec<String> = outcomes.iter().filter(|o| o.action == Action::Skipped).map(ToString::to_string).collect();
    assert_eq!(skipped.len(), 1, "{outcomes:?}");
    assert!(skipped[0].contains("partition 1") && skipped[0].contains("1 of 3 pod(s) keep the old template"), "{skipped:?}");
    let restarted: Vec<bool> = (0..3)
        .map(|i| {
            let p = d.get("v1", "Pod", Some(NS), &format!("db-{i}")).unwrap();
            p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string()
        })
        .collect();
    assert_eq!(restarted, [false, true, true], "the controller stopped at the partition");
}

#[tokio::test]
async fn on_delete_pods_that_are_deleted_are_waited_for_until_ready() {
    let d = double(DoubleOptions::default().ready_after(ms(80))).await;
    workload(&d, "StatefulSet", "db", 2, Some(json!({"type": "OnDelete"})));
    settled(&d, "StatefulSet", "db").await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let sts = Target::new("apps/v1", "StatefulSet", Some(NS), "db");
    let mut p = Plan::new("enable", NS);
    p.push(Change::Restart { target: sts.clone() }).push(Change::WaitReady { targets: vec![sts.clone()] });
    let mut skipped = Vec::new();
    plan::execute(&conn, &p, &options(Duration::from_secs(30)), &mut |e| {
        if let Progress::Done(o) = e
            && o.action == Action::Skipped
        {
            skipped.push(o.to_string());
        }
    })
    .await
    .unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("2 of 2 pod(s) keep the old template until someone deletes them"), "{skipped:?}");
    // What the run tells the operator to do: delete the pods one at a time. With one left on
    // the old template nothing more comes by itself; once the last is deleted, the wait is an
    // ordinary one and waits for its replacement to become ready.
    let wait = |conn: &Connection| {
        let mut p = Plan::new("enable", NS);
        p.push(Change::WaitReady { targets: vec![Target::new("apps/v1", "StatefulSet", Some(NS), "db")] });
        let conn = conn.clone();
        async move {
            let mut skipped = Vec::new();
            let started = Instant::now();
            plan::execute(&conn, &p, &options(Duration::from_secs(30)), &mut |e| {
                if let Progress::Done(o) = e
                    && o.action == Action::Skipped
                {
                    skipped.push(o.to_string());
                }
            })
            .await
            .unwrap();
            (skipped, started.elapsed())
        }
    };
    d.delete("v1", "Pod", Some(NS), "db-1").unwrap();
    let (skipped, _) = wait(&conn).await;
    assert!(skipped.len() == 1 && skipped[0].contains("1 of 2 pod(s) keep the old template"), "{skipped:?}");
    settled_pod(&d, "db-1").await;
    d.delete("v1", "Pod", Some(NS), "db-0").unwrap();
    let (skipped, took) = wait(&conn).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(took >= ms(50), "the replacement was not waited for: {took:?}");
    let w = d.get("apps/v1", "StatefulSet", Some(NS), "db").unwrap();
    assert!(plan::workload_ready("StatefulSet", &w).ready, "{}", w["status"]);
}
