//! The namespace migration's gates against a mesh side that changes while it is watched: the API
//! double's kubelet turns pods unready or crash-looping at run time (as an application failing
//! after the traffic moved), and each check of the gates sees what the cluster reports then.

use std::time::{Duration, Instant};

use apiserver_double::{Double, DoubleHandle, DoubleOptions, PodBehaviour};
use meshmove_kube::cluster::{ClusterOptions, Connection};
use meshmove_migration::namespace::run::{GateOptions, check_gates};
use meshmove_migration::namespace::state::{NsState, OnFailure, WorkloadRecord};
use meshmove_migration::namespace::{DataPlane, Sides, gates};
use serde_json::json;

const MESH: &str = "shop-mesh";

async fn double() -> DoubleHandle {
    let d = Double::start(DoubleOptions::default().ready_after(Duration::from_millis(30))).await.unwrap();
    for ns in ["shop", MESH] {
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).unwrap();
    }
    for name in ["api", "web"] {
        d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": MESH},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": name}]}}}}))
        .unwrap();
    }
    d
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir) -> Connection {
    let kubeconfig = d.write_kubeconfig(dir.path(), "shop").unwrap();
    ClusterOptions { kubeconfig: Some(kubeconfig), request_timeout: Some(Duration::from_secs(2)), ..ClusterOptions::default() }.connect().await.unwrap()
}

fn options() -> GateOptions {
    GateOptions {
        thresholds: gates::Thresholds::default(),
        prometheus: None,
        on_failure: OnFailure::Rollback,
        interval: Duration::ZERO,
        check_every: Duration::ZERO,
    }
}

/// Checks the gates until `want(passed readiness, passed restarts)` holds (the double moves on
/// its own clock), returning that check's results.
async fn gates_until(conn: &Connection, st: &NsState, want: impl Fn(bool, bool) -> bool) -> Vec<gates::GateResult> {
    let sides = Sides::new("shop").unwrap();
    let started = Instant::now();
    loop {
        let check = check_gates(conn, &sides, st, &options(), false).await.unwrap();
        let passed = |g: &str| check.results.iter().any(|r| r.gate == g && r.passed);
        if want(passed("readiness"), passed("restarts")) {
            return check.results;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "gates never reached the expected state: {:?}", check.results);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_gates_see_a_pod_turn_unready_and_crash_loop_while_the_traffic_is_shifted() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let sides = Sides::new("shop").unwrap();
    let mut st = NsState::new(&sides, DataPlane::Sidecar);
    st.weight = 50;
    st.workloads = ["api", "web"].iter().map(|n| WorkloadRecord { kind: "Deployment".into(), name: n.to_string(), replicas: 2, stateful: false }).collect();
    // The pods become ready 30 ms after their creation: then the gates pass.
    gates_until(&conn, &st, |ready, restarts| ready && restarts).await;
    // The application fails its readiness probe in place: the next check names its pods.
    d.set_running_pod_behaviour(MESH, "api", PodBehaviour::NeverReady);
    let results = gates_until(&conn, &st, |ready, _| !ready).await;
    let readiness = results.iter().find(|r| r.gate == "readiness").unwrap();
    assert_eq!(readiness.observed, "1/2 workloads ready");
    assert!(readiness.detail.contains("Deployment/api: 0/2 ready"), "{}", readiness.detail);
    let unready: Vec<String> = d
        .list("v1", "Pod", Some(MESH))
        .iter()
        .filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with("api-"))
        .map(|p| format!("Pod/{}: not ready", p["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(unready.len(), 2);
    assert!(unready.iter().all(|u| readiness.detail.contains(u.as_str())), "{} vs {unready:?}", readiness.detail);
    // It recovers: the gates pass again.
    d.set_running_pod_behaviour(MESH, "api", PodBehaviour::IMMEDIATE);
    gates_until(&conn, &st, |ready, restarts| ready && restarts).await;
    // Then it crash-loops: restarts since the baseline (the last passed check) fail the gate.
    let baseline = check_gates(&conn, &sides, &st, &options(), false).await.unwrap();
    st.restart_baselines = baseline.restarts;
    d.set_running_pod_behaviour(MESH, "web", PodBehaviour::CrashLoop { every: Duration::from_millis(20) });
    let results = gates_until(&conn, &st, |_, restarts| !restarts).await;
    let restarts = results.iter().find(|r| r.gate == "restarts").unwrap();
    let counted: u64 = d
        .list("v1", "Pod", Some(MESH))
        .iter()
        .filter_map(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64())
        .sum();
    assert!(counted >= 1 && restarts.observed.starts_with(|c: char| c.is_ascii_digit()), "{restarts:?}");
    assert!(!results.iter().find(|r| r.gate == "readiness").unwrap().passed, "crash-looping pods are not ready");
}
