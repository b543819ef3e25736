//! The simulated kubelet's clock: how long pods take to become Ready, pods that never do, pods
//! that crash-loop, and the timers that let controllers move on their own (a Deployment's
//! progress deadline).
//!
//! A pod is admitted `Running` with every container started. What its readiness does next
//! follows the [`PodBehaviour`] of its workload: `Ready { after }` (the default, with
//! `DoubleOptions::pod_ready_after`, zero unless set) reports it Ready once `after` has passed;
//! `NeverReady` keeps the readiness probe failing; `CrashLoop { every }` makes the first
//! container exit every `every`, so `restartCount` grows and the container waits in
//! `CrashLoopBackOff`. The conditions are the kubelet's: `Ready` and `ContainersReady` are
//! `False` with reason `ContainersNotReady` and the message `containers with unready status:
//! [...]` while any container is unready (kubernetes/kubernetes `pkg/kubelet/status/generate.go`,
//! `GeneratePodReadyCondition`; Pod lifecycle, "Pod conditions",
//! <https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-conditions>), and a
//! restarting container's state is `waiting` with reason `CrashLoopBackOff` and its last state
//! `terminated` ("Container restart policy" and "Debugging a container in CrashLoopBackOff" on the
//! same page).
//!
//! [`run_clock`] ticks every few milliseconds while a double serves: due pods change, due
//! Deployments are reconciled again (to notice a passed progress deadline), and the controllers
//! settle. Tests of a bare `State` call [`tick`] with the instant they want.

use super::{live, settle};
use crate::store::{Key, State};
use crate::util::{get_path, get_str, now_rfc3339};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Field manager of the kubelet's status writes.
const KUBELET: &str = "kubelet";

/// How the simulated kubelet runs the pods of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodBehaviour {
    /// Running at once, Ready `after` its creation (its readiness probe passes from then on).
    Ready {
        /// Time from creation to Ready.
        after: Duration,
    },
    /// Running, never Ready (its readiness probe keeps failing).
    NeverReady,
    /// The first container exits with code 1 every `every` and is restarted: never Ready,
    /// `restartCount` grows, the container waits in `CrashLoopBackOff` between runs.
    CrashLoop {
        /// Time between two crashes.
        every: Duration,
    },
}

impl PodBehaviour {
    /// Ready at creation.
    pub const IMMEDIATE: PodBehaviour = PodBehaviour::Ready { after: Duration::ZERO };
}

/// The clocks of the simulated kubelet and controllers (part of `State`).
#[derive(Debug, Default)]
pub struct Timers {
    /// Behaviours set at run time (`DoubleHandle::set_pod_behaviour`), by (namespace, workload).
    overrides: BTreeMap<(String, String), PodBehaviour>,
    /// Pods the kubelet runs (by key, with their uid: a StatefulSet's new pod has the old one's
    /// name), with the behaviour each was started with (a later change of its workload's
    /// behaviour is for new pods, unless it is applied to the running ones).
    running: BTreeMap<Key, (String, PodBehaviour)>,
    /// Pods due for a change (becoming Ready, or the next crash), by when.
    pods: BTreeMap<Key, Instant>,
    /// Deployments: when their `Progressing` condition last recorded progress.
    pub(crate) progressed: BTreeMap<Key, Instant>,
    /// Deployments to reconcile again at a given time (their progress deadline).
    pub(crate) recheck: BTreeMap<Key, Instant>,
    /// A manual clock ([`use_manual_clock`]): the instant [`tick`] last moved it to.
    manual: Option<Instant>,
}

impl Timers {
    /// The controllers' clock: the real one, or the manual one when a test set it.
    pub fn now(&self) -> Instant {
        self.manual.unwrap_or_else(Instant::now)
    }

    /// The earliest instant something is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.pods.values().chain(self.recheck.values()).min().copied()
    }
}

/// The workload a pod belongs to: its controller, or for a ReplicaSet's pod the ReplicaSet's
/// own controller (the Deployment); a pod without a controller is its own workload.
fn workload_of(state: &State, ns: &str, pod: &Value) -> String {
    let controller = |obj: &Value| -> Option<(String, String)> {
        get_path(obj, &["metadata", "ownerReferences"])?.as_array()?.iter().find_map(|r| {
            (r.get("controller").and_then(Value::as_bool) == Some(true)).then(|| {
                (
                    r.get("kind").and_then(Value::as_str).unwrap_or_default().to_string(),
                    r.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                )
            })
        })
    };
    let Some((kind, name)) = controller(pod) else {
        return get_str(pod, &["metadata", "name"]).unwrap_or_default().to_string();
    };
    if kind == "ReplicaSet" {
        let rs_key = Key { group: "apps".into(), resource: "replicasets".into(), namespace: ns.into(), name: name.clone() };
        if let Some((owner_kind, owner)) = state.objects.get(&rs_key).and_then(|s| controller(&s.obj))
            && owner_kind == "Deployment"
        {
            return owner;
        }
    }
    name
}

/// The behaviour of a pod: the run-time override of its workload, else the options' entry,
/// else Ready after `DoubleOptions::pod_ready_after`.
pub fn behaviour_of(state: &State, ns: &str, pod: &Value) -> PodBehaviour {
    let key = (ns.to_string(), workload_of(state, ns, pod));
    state
        .timers
        .overrides
        .get(&key)
        .or_else(|| state.opts.pod_behaviours.get(&key))
        .copied()
        .unwrap_or(PodBehaviour::Ready { after: state.opts.pod_ready_after })
}

fn container_names(pod: &Value) -> Vec<String> {
    get_path(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Sets the readiness the kubelet reports: each container's `ready`, and the `Ready` and
/// `ContainersReady` conditions (with the kubelet's reason and message when false).
fn set_ready(pod: &mut Value, ready: bool) {
    let names = container_names(pod);
    let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) else { return };
    if let Some(Value::Array(cs)) = status.get_mut("containerStatuses") {
        for c in cs {
            c["ready"] = json!(ready);
        }
    }
    let now = now_rfc3339();
    if let Some(Value::Array(conds)) = status.get_mut("conditions") {
        for c in conds.iter_mut() {
            let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
            if ty != "Ready" && ty != "ContainersReady" {
                continue;
            }
            let want = if ready { "True" } else { "False" };
            if c.get("status").and_then(Value::as_str) == Some(want) {
                continue;
            }
            let mut new = json!({"type": ty, "status": want, "lastProbeTime": null, "lastTransitionTime": now});
            if !ready {
                new["reason"] = json!("ContainersNotReady");
                new["message"] = json!(format!("containers with unready status: [{}]", names.join(" ")));
            }
            *c = new;
        }
    }
}

/// One crash of the first container: it terminated with exit code 1, waits in
/// `CrashLoopBackOff`, and its `restartCount` grows.
fn crash(pod: &mut Value) {
    let name = get_str(pod, &["metadata", "name"]).unwrap_or_default().to_string();
    set_ready(pod, false);
    let now = now_rfc3339();
    let Some(Value::Array(cs)) = pod.get_mut("status").and_then(|s| s.get_mut("containerStatuses")) else { return };
    let Some(c) = cs.first_mut() else { return };
    let container = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let restarts = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0) + 1;
    let started = get_path(c, &["state", "running", "startedAt"]).cloned().unwrap_or_else(|| json!(now));
    c["restartCount"] = json!(restarts);
    c["started"] = json!(false);
    c["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": now}});
    c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
        "message": format!("back-off 10s restarting failed container={container} pod={name}")}});
}

/// Called by admission for every pod the kubelet runs: a pod that is not Ready at once is
/// admitted unready (so no client ever sees it Ready early).
pub fn admit_pod(state: &mut State, ns: &str, pod: &mut Value) {
    match behaviour_of(state, ns, pod) {
        PodBehaviour::Ready { after } if after.is_zero() => {}
        PodBehaviour::CrashLoop { .. } => crash(pod),
        _ => set_ready(pod, false),
    }
}

/// Starts the clock of pods the kubelet sees for the first time (from `settle`'s batch);
/// forgets deleted ones.
pub(crate) fn observe_pod(state: &mut State, key: &Key, now: Instant) {
    let Some(pod) = live(state, key) else {
        state.timers.running.remove(key);
        state.timers.pods.remove(key);
        return;
    };
    let uid = get_str(&pod, &["metadata", "uid"]).unwrap_or_default();
    if !state.opts.simulate_controllers
        || state.timers.running.get(key).is_some_and(|(u, _)| u == uid)
        || get_path(&pod, &["status", "containerStatuses"]).is_none()
    {
        return; // known, or not run by the kubelet (stored as given)
    }
    let behaviour = behaviour_of(state, &key.namespace, &pod);
    schedule(state, key, &pod, behaviour, now);
}

fn schedule(state: &mut State, key: &Key, pod: &Value, behaviour: PodBehaviour, now: Instant) {
    let uid = get_str(pod, &["metadata", "uid"]).unwrap_or_default().to_string();
    state.timers.running.insert(key.clone(), (uid, behaviour));
    match behaviour {
        PodBehaviour::Ready { after } if !super::is_ready(pod) => {
            state.timers.pods.insert(key.clone(), now + after);
        }
        PodBehaviour::CrashLoop { every } => {
            state.timers.pods.insert(key.clone(), now + every);
        }
        _ => {
            state.timers.pods.remove(key);
        }
    }
}

fn write_status(state: &mut State, old: &Value, new: &Value) {
    if old.get("status") == new.get("status") {
        return;
    }
    if let Some(t) = state.registry.find_any_version("", "pods") {
        state.put_internal(&t, new.clone(), KUBELET, true);
    }
}

/// Applies what is due at `now`, then lets the controllers react.
pub fn tick(state: &mut State, now: Instant) {
    if let Some(m) = &mut state.timers.manual {
        *m = (*m).max(now);
    }
    let now = state.timers.now();
    let due: Vec<Key> = state.timers.pods.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
    for key in due {
        state.timers.pods.remove(&key);
        let Some(pod) = live(state, &key) else { continue };
        let mut new = (*pod).clone();
        let behaviour = state.timers.running.get(&key).map_or(PodBehaviour::IMMEDIATE, |(_, b)| *b);
        match behaviour {
            PodBehaviour::Ready { .. } => set_ready(&mut new, true),
            PodBehaviour::NeverReady => {}
            PodBehaviour::CrashLoop { every } => {
                crash(&mut new);
                state.timers.pods.insert(key.clone(), now + every);
            }
        }
        write_status(state, &pod, &new);
    }
    let recheck: Vec<Key> = state.timers.recheck.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
    for key in recheck {
        state.timers.recheck.remove(&key);
        if let Some(obj) = live(state, &key) {
            state.dirty.push((key, obj));
        }
    }
    settle(state);
}

/// Stops the real clock for a bare `State` (tests): time stands at `start` and moves only as
/// [`tick`] is called, so a test's waits take no time and its results do not depend on the
/// machine's speed.
pub fn use_manual_clock(state: &mut State, start: Instant) {
    state.timers.manual = Some(start);
}

/// Sets the behaviour of the pods a workload creates from now on (a new version that
/// misbehaves or recovers); the running ones keep theirs.
pub fn set_pod_behaviour(state: &mut State, ns: &str, workload: &str, behaviour: PodBehaviour) {
    state.timers.overrides.insert((ns.to_string(), workload.to_string()), behaviour);
}

/// Sets the behaviour of a workload's pods from now on, the running ones included: they turn
/// unready, start crash-looping, or become Ready after the delay (an application failing or
/// recovering in place).
pub fn set_running_pod_behaviour(state: &mut State, ns: &str, workload: &str, behaviour: PodBehaviour) {
    set_pod_behaviour(state, ns, workload, behaviour);
    let start = Key { group: String::new(), resource: "pods".into(), namespace: ns.into(), name: String::new() };
    let pods: Vec<(Key, Arc<Value>)> = state
        .objects
        .range(start..)
        .take_while(|(k, _)| k.group.is_empty() && k.resource == "pods" && k.namespace == ns)
        .map(|(k, s)| (k.clone(), s.obj.clone()))
        .filter(|(_, p)| get_path(p, &["status", "containerStatuses"]).is_some())
        .collect();
    let now = state.timers.now();
    for (key, pod) in pods {
        if workload_of(state, ns, &pod) != workload {
            continue;
        }
        let mut new = (*pod).clone();
        match behaviour {
            PodBehaviour::Ready { after } if after.is_zero() => set_ready(&mut new, true),
            PodBehaviour::Ready { .. } => {}
            PodBehaviour::NeverReady => set_ready(&mut new, false),
            PodBehaviour::CrashLoop { .. } => crash(&mut new),
        }
        write_status(state, &pod, &new);
        schedule(state, &key, &new, behaviour, now);
    }
    settle(state);
}

/// Drives [`tick`] while the double serves: it looks every 5 ms (sooner when something is due
/// sooner), so timers added meanwhile are seen quickly; an idle double only takes the lock.
pub async fn run_clock(shared: Arc<crate::server::Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let wait = {
            let mut st = shared.lock();
            let now = Instant::now();
            if st.timers.next_due().is_some_and(|at| at <= now) {
                tick(&mut st, now);
            }
            match st.timers.next_due() {
                Some(at) => at.saturating_duration_since(now).clamp(Duration::from_millis(1), Duration::from_millis(5)),
                None => Duration::from_millis(5),
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
