//! Controllers that take time: pods become Ready after a delay, never, or crash-loop, and the
//! workload controllers roll out over time with Kubernetes' guarantees. Most tests drive a bare
//! `State` with instants of their own (`controllers::tick`), so they are exact and fast; one runs
//! a served double on its own clock.
//!
//! The properties checked are the ones the Kubernetes documentation states:
//! - Deployment rolling update: "at least 75% of the desired number of Pods are up (25% max
//!   unavailable)" and "at most 125% of the desired number of Pods are up (25% max surge)"
//!   (<https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#updating-a-deployment>);
//!   the Progressing condition's reasons and ProgressDeadlineExceeded ("Deployment status",
//!   same page).
//! - StatefulSet: pods created in order, each after its predecessor is Running and Ready;
//!   RollingUpdate replaces "from the largest ordinal to the smallest, updating each Pod one at
//!   a time", not below the partition; OnDelete replaces a pod only when it is deleted
//!   (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/>).
//! - DaemonSet RollingUpdate: at most `maxUnavailable` pods unavailable during the update
//!   (<https://kubernetes.io/docs/tasks/manage-daemon/update-daemon-set/>).

use apiserver_double::controllers::{settle, tick, use_manual_clock};
use apiserver_double::store::{DeleteOpts, PatchType, State, WriteOpts};
use apiserver_double::{Double, DoubleOptions, PodBehaviour};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const NS: &str = "default";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn writer() -> WriteOpts {
    WriteOpts { manager: "test".into(), explicit_manager: true, ..WriteOpts::default() }
}

fn workload(kind: &str, name: &str, replicas: i64) -> Value {
    let mut w = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}});
    if kind == "DaemonSet" {
        w["spec"].as_object_mut().unwrap().shift_remove("replicas");
    }
    w
}

fn resource(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        _ => unreachable!(),
    }
}

/// A bare state on a manual clock standing at the returned instant.
fn state(opts: DoubleOptions) -> (State, Instant) {
    let mut s = State::new(opts);
    let t0 = Instant::now();
    use_manual_clock(&mut s, t0);
    (s, t0)
}

fn create(s: &mut State, obj: Value) {
    let kind = obj["kind"].as_str().unwrap();
    let (group, res) = if kind == "Node" { ("", "nodes") } else { ("apps", resource(kind)) };
    let t = s.registry.find_any_version(group, res).unwrap();
    let ns = if kind == "Node" { "" } else { NS };
    s.create(&t, ns, obj, &writer()).unwrap();
    settle(s);
}

fn get(s: &State, kind: &str, name: &str) -> Value {
    let t = s.registry.find_any_version("apps", resource(kind)).unwrap();
    (*s.get(&t, NS, name).unwrap().obj).clone()
}

/// What `kubectl rollout restart` does: a new pod-template annotation.
fn restart(s: &mut State, kind: &str, name: &str, at: &str) {
    let t = s.registry.find_any_version("apps", resource(kind)).unwrap();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}});
    s.patch(&t, NS, name, PatchType::Merge, patch.to_string().as_bytes(), &writer()).unwrap();
    settle(s);
}

fn delete_pod(s: &mut State, name: &str) {
    let t = s.registry.find_any_version("", "pods").unwrap();
    s.delete(&t, NS, name, &DeleteOpts::default()).unwrap();
    settle(s);
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PodView {
    name: String,
    uid: String,
    ready: bool,
    restarts: i64,
    restarted_at: Option<String>,
}

fn pods(s: &State, prefix: &str) -> Vec<PodView> {
    s.objects
        .iter()
        .filter(|(k, _)| k.resource == "pods" && k.namespace == NS && k.name.starts_with(prefix))
        .map(|(k, st)| {
            let p = &st.obj;
            let ready = p["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            PodView {
                name: k.name.clone(),
                uid: p["metadata"]["uid"].as_str().unwrap().to_string(),
                ready,
                restarts: p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0),
                restarted_at: p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].as_str().map(str::to_string),
            }
        })
        .collect()
}

fn condition(d: &Value, ty: &str) -> (String, String, String) {
    let c = d["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == ty)).cloned().unwrap_or(json!({}));
    let f = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (f("status"), f("reason"), f("message"))
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

#[test]
fn pods_become_ready_after_the_delay_and_the_deployment_completes_then() {
    let (mut s, t0) = state(DoubleOptions::default().ready_after(ms(40)));
    create(&mut s, workload("Deployment", "web", 2));
    let d = get(&s, "Deployment", "web");
    assert_eq!(pods(&s, "web-").iter().filter(|p| p.ready).count(), 0, "Running but not Ready yet");
    assert_eq!((int(&d, "/status/updatedReplicas"), int(&d, "/status/readyReplicas")), (2, 0));
    assert_eq!(int(&d, "/status/unavailableReplicas"), 2);
    assert_eq!(condition(&d, "Available").1, "MinimumReplicasUnavailable");
    let (status, reason, _) = condition(&d, "Progressing");
    assert_eq!(status, "True");
    assert!(["NewReplicaSetCreated", "ReplicaSetUpdated"].contains(&reason.as_str()), "{reason}");
    // The kubelet's reason for an unready pod.
    let t = s.registry.find_any_version("", "pods").unwrap();
    let name = pods(&s, "web-")[0].name.clone();
    let pod = s.get(&t, NS, &name).unwrap().obj.clone();
    let ready = pod["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!((ready["reason"].as_str(), ready["message"].as_str()), (Some("ContainersNotReady"), Some("containers with unready status: [app]")));
    assert_eq!(pod["status"]["phase"], "Running");
    tick(&mut s, t0 + ms(20));
    assert_eq!(pods(&s, "web-").iter().filter(|p| p.ready).count(), 0, "not before the delay");
    tick(&mut s, t0 + ms(60));
    assert!(pods(&s, "web-").iter().all(|p| p.ready));
    let d = get(&s, "Deployment", "web");
    assert_eq!((int(&d, "/status/readyReplicas"), int(&d, "/status/availableReplicas")), (2, 2));
    assert_eq!(condition(&d, "Available").1, "MinimumReplicasAvailable");
    let rs = pods(&s, "web-")[0].name.rsplit_once('-').unwrap().0.to_string();
    assert_eq!(condition(&d, "Progressing"), ("True".into(), "NewReplicaSetAvailable".into(), format!("ReplicaSet \"{rs}\" has successfully progressed.")));
}

/// A rolling update of 8 pods (25% surge and unavailability: 2 and 2) goes in several steps over
/// time, and at every instant keeps at least 6 pods available and at most 10 in all.
#[test]
fn a_rolling_update_keeps_its_surge_and_availability_bounds_at_every_step() {
    let (mut s, mut now) = state(DoubleOptions::default().ready_after(ms(30)));
    create(&mut s, workload("Deployment", "api", 8));
    now += ms(40);
    tick(&mut s, now);
    assert_eq!(pods(&s, "api-").iter().filter(|p| p.ready).count(), 8);
    restart(&mut s, "Deployment", "api", "2026-01-01T00:00:00Z");
    let mut steps = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    for _ in 0..40 {
        let ps = pods(&s, "api-");
        let ready = ps.iter().filter(|p| p.ready).count();
        assert!(ready >= 6, "at least replicas - maxUnavailable available: {ps:?}");
        assert!(ps.len() <= 10, "at most replicas + maxSurge pods: {}", ps.len());
        let d = get(&s, "Deployment", "api");
        steps.insert(int(&d, "/status/updatedReplicas"));
        reasons.insert(condition(&d, "Progressing").1);
        assert_eq!(condition(&d, "Available").1, "MinimumReplicasAvailable");
        if ps.len() == 8 && ps.iter().all(|p| p.ready && p.restarted_at.is_some()) {
            break;
        }
        now += ms(35);
        tick(&mut s, now);
    }
    let d = get(&s, "Deployment", "api");
    assert_eq!((int(&d, "/status/replicas"), int(&d, "/status/updatedReplicas"), int(&d, "/status/availableReplicas")), (8, 8, 8));
    assert_eq!(condition(&d, "Progressing").1, "NewReplicaSetAvailable");
    assert!(steps.iter().any(|u| *u > 0 && *u < 8), "the new pods came in steps, not at once: {steps:?}");
    assert!(reasons.contains("ReplicaSetUpdated"), "{reasons:?}");
    assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);
}

#[test]
fn a_rollout_whose_pods_never_become_ready_exceeds_its_progress_deadline() {
    let (mut s, t0) = state(DoubleOptions::default().progress_deadline(ms(100)));
    create(&mut s, workload("Deployment", "api", 2));
    assert_eq!(condition(&get(&s, "Deployment", "api"), "Progressing").1, "NewReplicaSetAvailable");
    // The new version's readiness probe fails; the running pods keep theirs.
    apiserver_double::controllers::set_pod_behaviour(&mut s, NS, "api", PodBehaviour::NeverReady);
    restart(&mut s, "Deployment", "api", "2026-01-01T00:00:00Z");
    let d = get(&s, "Deployment", "api");
    assert_eq!(condition(&d, "Progressing").0, "True", "{}", d["status"]);
    tick(&mut s, t0 + ms(60));
    assert_eq!(condition(&get(&s, "Deployment", "api"), "Progressing").0, "True", "not before the deadline");
    tick(&mut s, t0 + ms(150));
    let d = get(&s, "Deployment", "api");
    let new_rs = pods(&s, "api-").into_iter().find(|p| p.restarted_at.is_some()).unwrap().name.rsplit_once('-').unwrap().0.to_string();
    assert_eq!(condition(&d, "Progressing"), ("False".into(), "ProgressDeadlineExceeded".into(), format!("ReplicaSet \"{new_rs}\" has timed out progressing.")));
    // The old pods keep serving: with 2 replicas, maxUnavailable rounds down to 0.
    assert_eq!(pods(&s, "api-").iter().filter(|p| p.ready).count(), 2);
    // A recovery after the deadline is progress again.
    apiserver_double::controllers::set_running_pod_behaviour(&mut s, NS, "api", PodBehaviour::IMMEDIATE);
    tick(&mut s, t0 + ms(160));
    assert_eq!(condition(&get(&s, "Deployment", "api"), "Progressing").1, "NewReplicaSetAvailable");
    // An application failing in place: the Deployment loses its availability, and a complete
    // rollout stays complete (no new rollout, no deadline).
    apiserver_double::controllers::set_running_pod_behaviour(&mut s, NS, "api", PodBehaviour::NeverReady);
    tick(&mut s, t0 + ms(400));
    let d = get(&s, "Deployment", "api");
    assert_eq!(condition(&d, "Available"), ("False".into(), "MinimumReplicasUnavailable".into(), "Deployment does not have minimum availability.".into()));
    assert_eq!(condition(&d, "Progressing").1, "NewReplicaSetAvailable");
    assert_eq!(int(&d, "/status/readyReplicas"), 0);
}

#[test]
fn a_crash_looping_pod_restarts_and_is_never_ready() {
    let opts = DoubleOptions::default().pods_of(NS, "worker", PodBehaviour::CrashLoop { every: ms(10) });
    let (mut s, t0) = state(opts);
    create(&mut s, workload("Deployment", "worker", 1));
    create(&mut s, workload("Deployment", "web", 1));
    let restarts = |s: &State| pods(s, "worker-")[0].restarts;
    let first = restarts(&s);
    for i in 1..=3 {
        tick(&mut s, t0 + ms(11 * i));
    }
    assert_eq!(restarts(&s), first + 3);
    assert!(!pods(&s, "worker-")[0].ready);
    assert!(pods(&s, "web-")[0].ready, "other workloads are not affected");
    let t = s.registry.find_any_version("", "pods").unwrap();
    let pod = s.get(&t, NS, &pods(&s, "worker-")[0].name).unwrap().obj.clone();
    let c = &pod["status"]["containerStatuses"][0];
    assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
}

#[test]
fn statefulset_pods_start_in_order_and_roll_from_the_highest_ordinal_one_at_a_time() {
    let (mut s, mut now) = state(DoubleOptions::default().ready_after(ms(20)));
    create(&mut s, workload("StatefulSet", "db", 3));
    let names = |s: &State| pods(s, "db-").into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(names(&s), ["db-0"], "OrderedReady: db-1 waits for db-0");
    now += ms(25);
    tick(&mut s, now);
    assert_eq!(names(&s), ["db-0", "db-1"]);
    now += ms(25);
    tick(&mut s, now);
    now += ms(25);
    tick(&mut s, now);
    assert_eq!(pods(&s, "db-").iter().filter(|p| p.ready).count(), 3);
    let st = get(&s, "StatefulSet", "db");
    let first_revision = st["status"]["currentRevision"].as_str().unwrap().to_string();
    assert_eq!(st["status"]["updateRevision"], first_revision.as_str());
    let before = pods(&s, "db-");
    restart(&mut s, "StatefulSet", "db", "2026-01-01T00:00:00Z");
    let mut order = Vec::new();
    for _ in 0..20 {
        let ps = pods(&s, "db-");
        assert!(ps.iter().filter(|p| !p.ready).count() <= 1, "one pod at a time: {ps:?}");
        for p in &ps {
            if p.restarted_at.is_some() && !order.contains(&p.name) {
                order.push(p.name.clone());
            }
        }
        let st = get(&s, "StatefulSet", "db");
        if order.len() < 3 || ps.iter().any(|p| !p.ready) {
            assert_eq!(st["status"]["currentRevision"], first_revision.as_str(), "current until the update is complete");
        }
        now += ms(25);
        tick(&mut s, now);
    }
    assert_eq!(order, ["db-2", "db-1", "db-0"]);
    let after = pods(&s, "db-");
    assert!(after.iter().zip(&before).all(|(a, b)| a.uid != b.uid && a.ready));
    let st = get(&s, "StatefulSet", "db");
    assert_eq!(st["status"]["currentRevision"], st["status"]["updateRevision"]);
    assert_eq!((int(&st, "/status/updatedReplicas"), int(&st, "/status/currentReplicas")), (3, 3));

    // A partition keeps the ordinals below it on the old template.
    let t = s.registry.find_any_version("apps", "statefulsets").unwrap();
    let patch = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}});
    s.patch(&t, NS, "db", PatchType::Merge, patch.to_string().as_bytes(), &writer()).unwrap();
    settle(&mut s);
    restart(&mut s, "StatefulSet", "db", "2026-02-02T00:00:00Z");
    for _ in 0..6 {
        now += ms(25);
        tick(&mut s, now);
    }
    let stamps: Vec<Option<String>> = pods(&s, "db-").into_iter().map(|p| p.restarted_at).collect();
    assert_eq!(stamps, [Some("2026-01-01T00:00:00Z".into()), Some("2026-01-01T00:00:00Z".into()), Some("2026-02-02T00:00:00Z".into())]);
    let st = get(&s, "StatefulSet", "db");
    assert_eq!(int(&st, "/status/updatedReplicas"), 1);
    assert_ne!(st["status"]["currentRevision"], st["status"]["updateRevision"]);
}

#[test]
fn on_delete_statefulsets_replace_a_pod_only_when_it_is_deleted() {
    let (mut s, mut now) = state(DoubleOptions::default().ready_after(ms(20)));
    let mut sts = workload("StatefulSet", "db", 2);
    sts["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    sts["spec"]["podManagementPolicy"] = json!("Parallel");
    create(&mut s, sts);
    assert_eq!(pods(&s, "db-").len(), 2, "Parallel: both at once");
    now += ms(25);
    tick(&mut s, now);
    let before = pods(&s, "db-");
    restart(&mut s, "StatefulSet", "db", "2026-01-01T00:00:00Z");
    for _ in 0..4 {
        now += ms(25);
        tick(&mut s, now);
    }
    assert_eq!(pods(&s, "db-"), before, "no pod replaced by the controller");
    let st = get(&s, "StatefulSet", "db");
    assert_eq!(int(&st, "/status/updatedReplicas"), 0);
    delete_pod(&mut s, "db-1");
    let st = get(&s, "StatefulSet", "db");
    assert_eq!((int(&st, "/status/updatedReplicas"), int(&st, "/status/readyReplicas")), (1, 1), "recreated on the new template, not ready yet");
    now += ms(25);
    tick(&mut s, now);
    delete_pod(&mut s, "db-0");
    now += ms(25);
    tick(&mut s, now);
    let st = get(&s, "StatefulSet", "db");
    assert_eq!((int(&st, "/status/updatedReplicas"), int(&st, "/status/readyReplicas")), (2, 2));
    // Under OnDelete the controller never completes a rolling update: currentRevision stays.
    assert_ne!(st["status"]["currentRevision"], st["status"]["updateRevision"]);
}

#[test]
fn a_daemonset_update_keeps_at_most_max_unavailable_pods_down() {
    let (mut s, mut now) = state(DoubleOptions::default().ready_after(ms(20)));
    for n in ["n1", "n2", "n3"] {
        create(&mut s, json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}));
    }
    create(&mut s, workload("DaemonSet", "agent", 0));
    now += ms(25);
    tick(&mut s, now);
    assert_eq!(pods(&s, "agent-").iter().filter(|p| p.ready).count(), 3);
    restart(&mut s, "DaemonSet", "agent", "2026-01-01T00:00:00Z");
    let mut seen_partial = false;
    for _ in 0..10 {
        let ps = pods(&s, "agent-");
        assert!(ps.iter().filter(|p| !p.ready).count() <= 1, "maxUnavailable 1: {ps:?}");
        let updated = ps.iter().filter(|p| p.restarted_at.is_some()).count();
        seen_partial |= updated > 0 && updated < 3;
        now += ms(25);
        tick(&mut s, now);
    }
    assert!(seen_partial, "the update went node by node");
    let ps = pods(&s, "agent-");
    assert!(ps.len() == 3 && ps.iter().all(|p| p.ready && p.restarted_at.is_some()), "{ps:?}");
}

/// A served double moves on its own clock: a client polling it sees the rollout complete.
#[tokio::test]
async fn a_served_double_rolls_out_on_its_own_clock() {
    let d = Double::start(DoubleOptions::default().ready_after(ms(30))).await.unwrap();
    d.create(workload("Deployment", "web", 2)).unwrap();
    let ready = |d: &apiserver_double::DoubleHandle| {
        d.get("apps/v1", "Deployment", Some(NS), "web").map(|w| int(&w, "/status/readyReplicas")).unwrap_or(0)
    };
    assert_eq!(ready(&d), 0);
    let started = Instant::now();
    while ready(&d) < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "never became ready");
        tokio::time::sleep(ms(5)).await;
    }
    assert!(started.elapsed() >= ms(25), "not before the delay: {:?}", started.elapsed());
    // A misbehaving version at run time: the running pods turn unready.
    d.set_running_pod_behaviour(NS, "web", PodBehaviour::NeverReady);
    assert_eq!(ready(&d), 0);
}

