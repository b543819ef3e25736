//! Simulated controllers (switched by `DoubleOptions::simulate_controllers`).
//!
//! They run synchronously after every API write, before the response is
//! sent, and again on the clock of [`kubelet`] when something is due.
//! Deployments own ReplicaSets named `<deployment>-<template hash>` and those
//! own pods `<rs>-<suffix>`; StatefulSets own pods `<name>-<ordinal>`;
//! DaemonSets own one pod per Node object. Deleting an owner deletes its
//! dependents (garbage collection) unless `propagationPolicy=Orphan`.
//! Jobs and CronJobs are not simulated.
//!
//! Pods are Running at creation and Ready as their workload's
//! [`PodBehaviour`] says (by default at once, so a write returns with the
//! cluster converged; with a delay, rollouts progress over time). The
//! controllers follow Kubernetes' rules where the product depends on them:
//!
//! * **Deployment** (kubernetes/kubernetes `pkg/controller/deployment`:
//!   `rolling.go`, `recreate.go`, `sync.go`, `progress.go`,
//!   `util/deployment_util.go`; the rules as the docs state them:
//!   <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment>
//!   and "Deployment status" on the same page). A RollingUpdate scales the
//!   new ReplicaSet up while all ReplicaSets together stay within
//!   `replicas + maxSurge`, and old ones down while the available pods stay at
//!   least `replicas - maxUnavailable` (percentages: surge rounded up,
//!   unavailable down; both zero means one unavailable), unhealthy old pods
//!   first; Recreate scales the old ones to zero before the new one comes up.
//!   Status: `replicas`, `readyReplicas`, `availableReplicas` summed over the
//!   ReplicaSets' pods, `updatedReplicas` the new ReplicaSet's,
//!   `unavailableReplicas` the desired-but-unavailable ones,
//!   `observedGeneration`. Condition `Available` is True
//!   (`MinimumReplicasAvailable`) while at least `replicas - maxUnavailable`
//!   pods are available. Condition `Progressing`: `NewReplicaSetCreated` when
//!   the new ReplicaSet is made, `ReplicaSetUpdated` whenever a rollout moves
//!   (more updated, ready or available pods, fewer old ones: only then its
//!   `lastUpdateTime` moves), `NewReplicaSetAvailable` once every desired pod
//!   is updated and available and no old pod is left, and `status: False`,
//!   reason `ProgressDeadlineExceeded`, message `ReplicaSet "<name>" has timed
//!   out progressing.` once `progressDeadlineSeconds` (or
//!   `DoubleOptions::progress_deadline`) passed since the last progress.
//!   Not simulated: `minReadySeconds` (available = ready), `paused`, old
//!   ReplicaSets' cleanup by `revisionHistoryLimit`.
//! * **StatefulSet** (`pkg/controller/statefulset/stateful_set_control.go`;
//!   <https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#deployment-and-scaling-guarantees>
//!   and "Update strategies"). `OrderedReady` creates pod N only once pods
//!   0..N-1 are Running and Ready, `Parallel` all at once. `RollingUpdate`
//!   replaces one pod at a time, from the highest ordinal down to
//!   `partition`, and only while every pod is Ready; `OnDelete` replaces a pod
//!   only when someone deletes it. `currentRevision` becomes the
//!   `updateRevision` when a RollingUpdate has updated and readied every pod
//!   (never under OnDelete), `currentReplicas`/`updatedReplicas` count the
//!   pods of each revision. A pod recreated below the partition gets the new
//!   template (the double keeps no ControllerRevisions).
//! * **DaemonSet**: a RollingUpdate deletes old pods only while fewer than
//!   `maxUnavailable` (default 1) pods are unavailable; OnDelete as above.
//!
//! With Istio simulated (`DoubleOptions::istio_injection`), the istio-cni
//! node agent of ambient mode is too: while a DaemonSet `ztunnel` exists in
//! `istio-system`, every running pod of a namespace labelled
//! `istio.io/dataplane-mode=ambient` (or labelled so itself) gets the
//! annotation `ambient.istio.io/redirection: enabled`, unless the pod opts
//! out with the label `istio.io/dataplane-mode=none`, uses the host network
//! or carries a sidecar (the injector's `sidecar.istio.io/status`
//! annotation); the rule is `meshmove_istio::ambient_captured`, shared with
//! the product. Pods that no longer qualify (label removed,
//! ztunnel deleted) lose it, as the agent removes them from the mesh. And
//! istiod programs waypoints: a Gateway of class `istio-waypoint` gets
//! `Programmed: True` and an address once the class exists and an istiod
//! runs, and keeps the Gateway API's pending default otherwise
//! ([`waypoint`]).

mod kubelet;
mod waypoint;

pub use kubelet::{PodBehaviour, Timers, admit_pod, behaviour_of, run_clock, set_pod_behaviour, set_running_pod_behaviour, tick,
    use_manual_clock};

use crate::store::{Key, State};
use crate::util::{get_path, get_str, meta_str, random_suffix, template_hash};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const MANAGER: &str = "kube-controller-manager";

fn owner_key(pod_ns: &str, oref: &Value) -> Option<Key> {
    if oref.get("controller").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let (group, resource) = match oref.get("kind").and_then(Value::as_str)? {
        "Deployment" => ("apps", "deployments"),
        "ReplicaSet" => ("apps", "replicasets"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        _ => return None,
    };
    Some(Key {
        group: group.into(),
        resource: resource.into(),
        namespace: pod_ns.into(),
        name: oref.get("name")?.as_str()?.into(),
    })
}

/// Runs controllers until no more writes happen (bounded).
pub fn settle(state: &mut State) {
    if !state.opts.simulate_controllers {
        state.dirty.clear();
        return;
    }
    for _ in 0..200 {
        if state.dirty.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut state.dirty);
        let now = state.timers.now();
        let mut todo: BTreeSet<Key> = BTreeSet::new();
        // Namespaces whose pods the ambient node agent looks at again.
        let mut capture: BTreeSet<String> = BTreeSet::new();
        // Whether a waypoint Gateway, its class or istiod changed.
        let mut waypoints = false;
        for (key, obj) in batch {
            if key.group.is_empty() && key.resource == "pods" {
                capture.insert(key.namespace.clone());
                kubelet::observe_pod(state, &key, now);
            }
            if key.group.is_empty() && key.resource == "namespaces" {
                capture.insert(key.name.clone());
            }
            if key.group == "apps"
                && key.resource == "daemonsets"
                && key.namespace == "istio-system"
                && key.name == "ztunnel"
            {
                capture.extend(
                    state
                        .objects
                        .keys()
                        .filter(|k| k.group.is_empty() && k.resource == "namespaces")
                        .map(|k| k.name.clone()),
                );
            }
            if key.group == "apps"
                && matches!(
                    key.resource.as_str(),
                    "deployments" | "replicasets" | "statefulsets" | "daemonsets"
                )
            {
                todo.insert(key.clone());
            }
            if key.group.is_empty() && key.resource == "nodes" {
                let all: Vec<Key> = state
                    .objects
                    .keys()
                    .filter(|k| k.group == "apps" && k.resource == "daemonsets")
                    .cloned()
                    .collect();
                todo.extend(all);
            }
            // Waypoint Gateways, their class and istiod (see [`waypoint`]).
            if (key.group == waypoint::GROUP && matches!(key.resource.as_str(), "gateways" | "gatewayclasses"))
                || (key.group == "apps" && key.resource == "deployments" && key.namespace == "istio-system")
            {
                waypoints = true;
            }
            if let Some(refs) =
                get_path(&obj, &["metadata", "ownerReferences"]).and_then(Value::as_array)
            {
                for r in refs {
                    if let Some(k) = owner_key(&key.namespace, r) {
                        todo.insert(k);
                    }
                }
            }
        }
        for key in todo {
            match key.resource.as_str() {
                "deployments" => reconcile_deployment(state, &key),
                "replicasets" => reconcile_replicaset(state, &key),
                "statefulsets" => reconcile_statefulset(state, &key),
                "daemonsets" => reconcile_daemonset(state, &key),
                _ => {}
            }
        }
        if state.opts.istio_injection {
            for ns in capture {
                reconcile_ambient_capture(state, &ns);
            }
        }
        if state.opts.istio_injection && waypoints {
            waypoint::reconcile_waypoints(state);
        }
    }
    state.dirty.clear();
}

fn live(state: &State, key: &Key) -> Option<Arc<Value>> {
    let s = state.objects.get(key)?;
    if get_path(&s.obj, &["metadata", "deletionTimestamp"]).is_some() {
        return None;
    }
    Some(s.obj.clone())
}

fn owned(
    state: &State,
    group: &str,
    resource: &str,
    ns: &str,
    owner_uid: &str,
) -> Vec<(Key, Arc<Value>)> {
    let start = Key {
        group: group.into(),
        resource: resource.into(),
        namespace: ns.into(),
        name: String::new(),
    };
    state
        .objects
        .range(start..)
        .take_while(|(k, _)| k.group == group && k.resource == resource && k.namespace == ns)
        .filter(|(_, s)| {
            get_path(&s.obj, &["metadata", "ownerReferences"])
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r.get("uid").and_then(Value::as_str) == Some(owner_uid)
                            && r.get("controller").and_then(Value::as_bool) == Some(true)
                    })
                })
        })
        .map(|(k, s)| (k.clone(), s.obj.clone()))
        .collect()
}

fn owner_ref(kind: &str, obj: &Value) -> Value {
    json!([{
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": meta_str(obj, "name").unwrap_or(""),
        "uid": meta_str(obj, "uid").unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true
    }])
}

fn replicas(obj: &Value) -> i64 {
    get_path(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn is_ready(pod: &Value) -> bool {
    get_path(pod, &["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn template_without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(Value::Object(l)) = t.get_mut("metadata").and_then(|m| m.get_mut("labels")) {
        l.shift_remove("pod-template-hash");
        if l.is_empty()
            && let Some(Value::Object(m)) = t.get_mut("metadata")
        {
            m.shift_remove("labels");
        }
    }
    t
}

fn rt(state: &State, group: &str, resource: &str) -> Option<Arc<crate::registry::ResourceType>> {
    state.registry.find_any_version(group, resource)
}

fn put(state: &mut State, group: &str, resource: &str, obj: Value) {
    if let Some(t) = rt(state, group, resource) {
        state.put_internal(&t, obj, MANAGER, false);
    }
}

fn put_status(
    state: &mut State,
    group: &str,
    resource: &str,
    obj: &Value,
    status: Map<String, Value>,
) {
    let old_status = obj.get("status").cloned().unwrap_or(json!({}));
    let mut status = Value::Object(status);
    keep_condition_times(&old_status, &mut status);
    if old_status == status {
        return;
    }
    let mut new = obj.clone();
    new["status"] = status;
    if let Some(t) = rt(state, group, resource) {
        state.put_internal(&t, new, MANAGER, true);
    }
}

fn keep_condition_times(old: &Value, new: &mut Value) {
    let Some(old_conds) = old.get("conditions").and_then(Value::as_array) else {
        return;
    };
    let Some(Value::Array(new_conds)) = new.get_mut("conditions") else {
        return;
    };
    for c in new_conds {
        let ty = c.get("type").cloned();
        if let Some(o) = old_conds.iter().find(|o| o.get("type") == ty.as_ref())
            && o.get("status") == c.get("status")
            && o.get("reason") == c.get("reason")
            && let Some(m) = c.as_object_mut()
        {
            for f in ["lastUpdateTime", "lastTransitionTime"] {
                if let Some(v) = o.get(f) {
                    m.insert(f.into(), v.clone());
                }
            }
        }
    }
}

fn nonzero(m: &mut Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.into(), json!(v));
    }
}

fn new_pod(
    owner_kind: &str,
    owner: &Value,
    name: &str,
    template: &Value,
    extra_labels: &[(&str, String)],
) -> Value {
    let ns = meta_str(owner, "namespace").unwrap_or("default");
    let mut labels = get_path(template, &["metadata", "labels"])
        .cloned()
        .unwrap_or(json!({}));
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut meta = json!({"name": name, "namespace": ns, "labels": labels, "ownerReferences": owner_ref(owner_kind, owner)});
    if let Some(a) = get_path(template, &["metadata", "annotations"]) {
        meta["annotations"] = a.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

/// Field manager of the simulated istio-cni node agent.
const CNI_MANAGER: &str = "istio-cni";
/// The annotation istio-cni's node agent keeps on each pod it redirects to ztunnel.
pub const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";

/// Whether the ambient node agent would capture `pod` (see the module docs): while ztunnel runs,
/// the pods `meshmove_istio::ambient_captured` selects — the CNI agent's enablement rule the
/// product predicts with (istio/istio `cni/pkg/util/enablement_selector.go`, cited there) —
/// unless they have finished.
pub fn wants_capture(pod: &Value, ns_labels: Option<&Map<String, Value>>, ztunnel: bool) -> bool {
    let ns = json!({"metadata": {"labels": ns_labels.cloned().unwrap_or_default()}});
    ztunnel
        && meshmove_istio::ambient_captured(&meshmove_istio::Pod::from_objects(&ns, pod))
        && !matches!(
            get_str(pod, &["status", "phase"]),
            Some("Succeeded" | "Failed")
        )
}

/// Annotate the pods of `ns` the agent captures; drop the annotation from those it no longer
/// does. A pod annotated `disabled` by its owner is left alone.
fn reconcile_ambient_capture(state: &mut State, ns: &str) {
    let ztunnel = live(
        state,
        &Key {
            group: "apps".into(),
            resource: "daemonsets".into(),
            namespace: "istio-system".into(),
            name: "ztunnel".into(),
        },
    )
    .is_some();
    let ns_labels = state.namespace_labels(ns).cloned();
    let start = Key {
        group: String::new(),
        resource: "pods".into(),
        namespace: ns.into(),
        name: String::new(),
    };
    let pods: Vec<Arc<Value>> = state
        .objects
        .range(start..)
        .take_while(|(k, _)| k.group.is_empty() && k.resource == "pods" && k.namespace == ns)
        .filter(|(_, s)| get_path(&s.obj, &["metadata", "deletionTimestamp"]).is_none())
        .map(|(_, s)| s.obj.clone())
        .collect();
    for pod in pods {
        let current = get_str(&pod, &["metadata", "annotations", AMBIENT_REDIRECTION]);
        if current.is_some_and(|v| v != "enabled") {
            continue;
        }
        let want = wants_capture(&pod, ns_labels.as_ref(), ztunnel);
        if want == current.is_some() {
            continue;
        }
        let mut new = (*pod).clone();
        let meta = new["metadata"].as_object_mut().expect("pod metadata");
        if want {
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            ann[AMBIENT_REDIRECTION] = json!("enabled");
        } else if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.shift_remove(AMBIENT_REDIRECTION);
            if ann.is_empty() {
                meta.shift_remove("annotations");
            }
        }
        if let Some(t) = rt(state, "", "pods") {
            state.put_internal(&t, new, CNI_MANAGER, false);
        }
    }
}

/// `intstr.GetScaledValueFromIntOrPercent`: an integer, or a percentage of `total` rounded up
/// or down; `default` when absent.
fn scaled(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

fn stat(obj: &Value, f: &str) -> i64 {
    get_path(obj, &["status", f]).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(conds: &'a [Value], ty: &str) -> Option<&'a Value> {
    conds.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// `SetDeploymentCondition`: a condition of the same status and reason is left as it is
/// (times included); otherwise it replaces the one of its type, keeping `lastTransitionTime`
/// when the status did not change.
fn set_condition(conds: &mut Vec<Value>, new: Value) {
    let ty = new.get("type").cloned();
    if let Some(i) = conds.iter().position(|c| c.get("type") == ty.as_ref()) {
        let old = &conds[i];
        if old.get("status") == new.get("status") && old.get("reason") == new.get("reason") {
            return;
        }
        let mut new = new;
        if old.get("status") == new.get("status")
            && let Some(t) = old.get("lastTransitionTime")
        {
            new["lastTransitionTime"] = t.clone();
        }
        conds[i] = new;
    } else {
        conds.push(new);
    }
}

fn deployment_condition(ty: &str, status: bool, reason: &str, message: String) -> Value {
    let now = crate::util::now_rfc3339();
    json!({"type": ty, "status": if status { "True" } else { "False" }, "lastUpdateTime": now,
           "lastTransitionTime": now, "reason": reason, "message": message})
}

fn revision(rs: &Value) -> i64 {
    get_str(rs, &["metadata", "annotations", "deployment.kubernetes.io/revision"])
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0)
}

fn scale_rs(state: &mut State, key: &Key, rs: &Value, to: i64) {
    if replicas(rs) != to {
        let mut rs = rs.clone();
        rs["spec"]["replicas"] = json!(to);
        put(state, "apps", "replicasets", rs);
    }
    reconcile_replicaset(state, key);
}

fn reconcile_deployment(state: &mut State, key: &Key) {
    let Some(d) = live(state, key) else { return };
    let uid = meta_str(&d, "uid").unwrap_or("").to_string();
    let name = key.name.clone();
    let want = replicas(&d).max(0);
    let template = d.get("spec").and_then(|s| s.get("template")).cloned().unwrap_or(json!({}));
    let recreate = get_str(&d, &["spec", "strategy", "type"]) == Some("Recreate");
    // `MaxSurge`/`MaxUnavailable` of `util/deployment_util.go` (`ResolveFenceposts`): zero for
    // Recreate; both zero is one unavailable.
    let (max_surge, max_unavailable) = if recreate {
        (0, 0)
    } else {
        let ru = get_path(&d, &["spec", "strategy", "rollingUpdate"]);
        let surge = scaled(ru.and_then(|r| r.get("maxSurge")), want, true, (want + 3) / 4);
        let unavailable = scaled(ru.and_then(|r| r.get("maxUnavailable")), want, false, want / 4);
        (surge, if surge == 0 && unavailable == 0 { 1 } else { unavailable.min(want) })
    };
    let mut rss = owned(state, "apps", "replicasets", &key.namespace, &uid);
    rss.sort_by_key(|(_, rs)| revision(rs));
    let max_rev = rss.iter().map(|(_, rs)| revision(rs)).max().unwrap_or(0);
    let current = rss
        .iter()
        .find(|(_, rs)| {
            template_without_hash(rs.get("spec").and_then(|s| s.get("template")).unwrap_or(&Value::Null))
                == template_without_hash(&template)
        })
        .cloned();
    let old_spec: i64 = rss
        .iter()
        .filter(|(k, _)| current.as_ref().is_none_or(|(c, _)| c != k))
        .map(|(_, rs)| replicas(rs))
        .sum();
    let old_pods: i64 = rss
        .iter()
        .filter(|(k, _)| current.as_ref().is_none_or(|(c, _)| c != k))
        .map(|(_, rs)| stat(rs, "replicas"))
        .sum();
    let old_status = d.get("status").cloned().unwrap_or(json!({}));
    let mut conditions: Vec<Value> =
        old_status.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let progress_deadline = state.opts.progress_deadline.or_else(|| {
        get_path(&d, &["spec", "progressDeadlineSeconds"])
            .and_then(Value::as_i64)
            .filter(|s| *s < i64::from(i32::MAX))
            .map(|s| Duration::from_secs(s.max(0) as u64))
    });
    let now = state.timers.now();
    // The new ReplicaSet: found (its revision raised to the newest when an older template comes
    // back), or created with as many pods as the surge allows (`NewRSNewReplicas`).
    let new_key = match current {
        Some((k, rs)) => {
            if revision(&rs) < max_rev {
                let mut rs = (*rs).clone();
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!((max_rev + 1).to_string());
                put(state, "apps", "replicasets", rs);
            }
            k
        }
        None => {
            let hash = template_hash(&template_without_hash(&template));
            let mut rs_name = format!("{name}-{hash}");
            let mut n = 0;
            while state.objects.contains_key(&Key { name: rs_name.clone(), resource: "replicasets".into(), ..key.clone() }) {
                n += 1;
                rs_name = format!("{name}-{}", template_hash(&json!([template_without_hash(&template), n])));
            }
            let mut tpl = template.clone();
            tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d.get("spec").and_then(|s| s.get("selector")).cloned().unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let initial = if recreate {
                if old_pods > 0 || old_spec > 0 { 0 } else { want }
            } else {
                (want + max_surge - old_spec).clamp(0, want)
            };
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": key.namespace,
                    "labels": tpl["metadata"]["labels"].clone(),
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": want.to_string(),
                        "deployment.kubernetes.io/max-replicas": (want + max_surge).to_string(),
                        "deployment.kubernetes.io/revision": (max_rev + 1).to_string()
                    },
                    "ownerReferences": owner_ref("Deployment", &d)
                },
                "spec": {"replicas": initial, "selector": selector, "template": tpl}
            });
            put(state, "apps", "replicasets", rs);
            if progress_deadline.is_some() {
                set_condition(
                    &mut conditions,
                    deployment_condition("Progressing", true, "NewReplicaSetCreated", format!("Created new replica set \"{rs_name}\"")),
                );
                state.timers.progressed.insert(key.clone(), now);
            }
            Key { name: rs_name, resource: "replicasets".into(), ..key.clone() }
        }
    };
    let new_name = new_key.name.clone();
    let olds: Vec<Key> = rss.iter().map(|(k, _)| k.clone()).filter(|k| *k != new_key).collect();
    let get_rs = |state: &State, k: &Key| live(state, k);
    if recreate {
        // `recreate.go`: old ReplicaSets to zero; the new one only once no old pod runs.
        for k in &olds {
            if let Some(rs) = get_rs(state, k) {
                scale_rs(state, k, &rs, 0);
            }
        }
        let old_running: i64 = olds.iter().filter_map(|k| get_rs(state, k)).map(|rs| stat(&rs, "replicas")).sum();
        if let Some(rs) = get_rs(state, &new_key) {
            let to = if old_running > 0 { replicas(&rs).min(want) } else { want };
            scale_rs(state, &new_key, &rs, to);
        }
    } else {
        // `reconcileNewReplicaSet`: up to `replicas + maxSurge` pods in all, or down to `replicas`.
        if let Some(rs) = get_rs(state, &new_key) {
            let spec = replicas(&rs);
            let total: i64 = spec + olds.iter().filter_map(|k| get_rs(state, k)).map(|rs| replicas(&rs)).sum::<i64>();
            let to = if spec > want {
                want
            } else {
                spec + (want + max_surge - total).clamp(0, want - spec)
            };
            scale_rs(state, &new_key, &rs, to);
        }
        // `reconcileOldReplicaSets`: unhealthy old pods first, then available ones while at
        // least `replicas - maxUnavailable` stay available.
        let min_available = want - max_unavailable;
        let new_rs = get_rs(state, &new_key);
        let new_spec = new_rs.as_ref().map_or(0, |rs| replicas(rs));
        let new_unavailable = new_rs.as_ref().map_or(0, |rs| replicas(rs) - stat(rs, "availableReplicas"));
        let mut old_rss: Vec<(Key, Arc<Value>)> = olds.iter().filter_map(|k| Some((k.clone(), get_rs(state, k)?))).collect();
        let all_pods: i64 = new_spec + old_rss.iter().map(|(_, rs)| replicas(rs)).sum::<i64>();
        let mut max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down > 0 {
            for (k, rs) in old_rss.iter_mut() {
                let unhealthy = replicas(rs) - stat(rs, "availableReplicas");
                if max_scaled_down == 0 || unhealthy <= 0 {
                    continue;
                }
                let down = unhealthy.min(max_scaled_down);
                max_scaled_down -= down;
                scale_rs(state, k, rs, replicas(rs) - down);
                if let Some(fresh) = get_rs(state, k) {
                    *rs = fresh;
                }
            }
            let available: i64 = new_rs.as_ref().map_or(0, |rs| stat(rs, "availableReplicas"))
                + old_rss.iter().map(|(_, rs)| stat(rs, "availableReplicas")).sum::<i64>();
            let mut total_down = available - min_available;
            for (k, rs) in &old_rss {
                if total_down <= 0 {
                    break;
                }
                let down = replicas(rs).min(total_down);
                if down > 0 {
                    total_down -= down;
                    scale_rs(state, k, rs, replicas(rs) - down);
                }
            }
        }
    }
    if let Some(rs) = get_rs(state, &new_key)
        && replicas(&rs) == want
        && get_str(&rs, &["metadata", "annotations", "deployment.kubernetes.io/desired-replicas"]) != Some(want.to_string().as_str())
    {
        let mut rs = (*rs).clone();
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = json!(want.to_string());
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] = json!((want + max_surge).to_string());
        put(state, "apps", "replicasets", rs);
    }
    // `calculateStatus` (sync.go).
    let rss: Vec<Arc<Value>> = owned(state, "apps", "replicasets", &key.namespace, &uid).into_iter().map(|(_, rs)| rs).collect();
    let sum = |f: &str| rss.iter().map(|rs| stat(rs, f)).sum::<i64>();
    let (total, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
    let spec_total: i64 = rss.iter().map(|rs| replicas(rs)).sum();
    let updated = get_rs(state, &new_key).map_or(0, |rs| stat(&rs, "replicas"));
    let Some(d) = live(state, key) else { return };
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
    let mut st = Map::new();
    st.insert("observedGeneration".into(), json!(generation));
    nonzero(&mut st, "replicas", total);
    nonzero(&mut st, "updatedReplicas", updated);
    nonzero(&mut st, "readyReplicas", ready);
    nonzero(&mut st, "availableReplicas", available);
    nonzero(&mut st, "unavailableReplicas", (spec_total - available).max(0));
    if available >= want - max_unavailable {
        set_condition(&mut conditions, deployment_condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into()));
    } else {
        set_condition(&mut conditions, deployment_condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into()));
    }
    // `syncRolloutStatus` (progress.go) with `DeploymentComplete`, `DeploymentProgressing` and
    // `DeploymentTimedOut` (util/deployment_util.go).
    match progress_deadline {
        None => conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("Progressing")),
        Some(deadline) => {
            let current = condition(&conditions, "Progressing").cloned();
            let reason = |c: &Option<Value>| c.as_ref().and_then(|c| c.get("reason")).and_then(Value::as_str).map(str::to_string);
            let complete_before = total == updated && reason(&current).as_deref() == Some("NewReplicaSetAvailable");
            if !complete_before {
                let old_int = |f: &str| old_status.get(f).and_then(Value::as_i64).unwrap_or(0);
                let complete = updated == want && total == want && available == want;
                let progressing = updated > old_int("updatedReplicas")
                    || total - updated < old_int("replicas") - old_int("updatedReplicas")
                    || ready > old_int("readyReplicas")
                    || available > old_int("availableReplicas");
                let since = *state.timers.progressed.entry(key.clone()).or_insert(now);
                if complete {
                    set_condition(
                        &mut conditions,
                        deployment_condition("Progressing", true, "NewReplicaSetAvailable", format!("ReplicaSet \"{new_name}\" has successfully progressed.")),
                    );
                    state.timers.progressed.remove(key);
                    state.timers.recheck.remove(key);
                } else if progressing {
                    // Progress moves `lastUpdateTime` (and only a change of status moves
                    // `lastTransitionTime`).
                    let mut c = deployment_condition("Progressing", true, "ReplicaSetUpdated", format!("ReplicaSet \"{new_name}\" is progressing."));
                    if let Some(cur) = &current
                        && cur.get("status").and_then(Value::as_str) == Some("True")
                        && let Some(t) = cur.get("lastTransitionTime")
                    {
                        c["lastTransitionTime"] = t.clone();
                    }
                    conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("Progressing"));
                    conditions.push(c);
                    state.timers.progressed.insert(key.clone(), now);
                    state.timers.recheck.insert(key.clone(), now + deadline + Duration::from_millis(1));
                } else if reason(&current).as_deref() == Some("ProgressDeadlineExceeded") || now > since + deadline {
                    set_condition(
                        &mut conditions,
                        deployment_condition("Progressing", false, "ProgressDeadlineExceeded", format!("ReplicaSet \"{new_name}\" has timed out progressing.")),
                    );
                    state.timers.recheck.remove(key);
                } else {
                    if current.is_none() {
                        set_condition(
                            &mut conditions,
                            deployment_condition("Progressing", true, "FoundNewReplicaSet", format!("Found new replica set \"{new_name}\"")),
                        );
                    }
                    state.timers.recheck.insert(key.clone(), since + deadline + Duration::from_millis(1));
                }
            }
        }
    }
    if !conditions.is_empty() {
        st.insert("conditions".into(), Value::Array(conditions));
    }
    put_status(state, "apps", "deployments", &d, st);
}

/// Which pod a ReplicaSet deletes first when scaling down (`controller.ActivePods`' order, in
/// part): not ready before ready, more restarts before fewer, newer before older.
fn deletion_rank(p: &Value) -> (bool, std::cmp::Reverse<i64>, std::cmp::Reverse<u64>) {
    let restarts = get_path(p, &["status", "containerStatuses"])
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("restartCount").and_then(Value::as_i64)).sum())
        .unwrap_or(0);
    let rv = meta_str(p, "resourceVersion").and_then(|r| r.parse::<u64>().ok()).unwrap_or(0);
    (is_ready(p), std::cmp::Reverse(restarts), std::cmp::Reverse(rv))
}

fn reconcile_replicaset(state: &mut State, key: &Key) {
    let Some(rs) = live(state, key) else { return };
    let uid = meta_str(&rs, "uid").unwrap_or("").to_string();
    let want = replicas(&rs).max(0) as usize;
    let template = rs.get("spec").and_then(|s| s.get("template")).cloned().unwrap_or(json!({}));
    let mut pods = owned(state, "", "pods", &key.namespace, &uid);
    pods.retain(|(_, p)| get_path(p, &["metadata", "deletionTimestamp"]).is_none());
    if pods.len() < want {
        for _ in pods.len()..want {
            let mut name = format!("{}-{}", key.name, random_suffix(5));
            while state.objects.contains_key(&Key {
                group: String::new(),
                resource: "pods".into(),
                namespace: key.namespace.clone(),
                name: name.clone(),
            }) {
                name = format!("{}-{}", key.name, random_suffix(5));
            }
            let mut pod = new_pod("ReplicaSet", &rs, &name, &template, &[]);
            pod["metadata"]["generateName"] = json!(format!("{}-", key.name));
            put(state, "", "pods", pod);
        }
    } else if pods.len() > want {
        pods.sort_by_key(|(_, p)| deletion_rank(p));
        for (k, _) in pods.iter().take(pods.len() - want) {
            state.remove(k, Some("Background"), true);
        }
    }
    let pods = owned(state, "", "pods", &key.namespace, &uid);
    let n = pods.len() as i64;
    let ready = pods.iter().filter(|(_, p)| is_ready(p)).count() as i64;
    let Some(rs) = live(state, key) else { return };
    let mut st = Map::new();
    st.insert("replicas".into(), json!(n));
    nonzero(&mut st, "fullyLabeledReplicas", n);
    nonzero(&mut st, "readyReplicas", ready);
    nonzero(&mut st, "availableReplicas", ready);
    st.insert("observedGeneration".into(), rs["metadata"]["generation"].clone());
    put_status(state, "apps", "replicasets", &rs, st);
}

fn ordinal_of(name: &str) -> i64 {
    name.rsplit('-').next().and_then(|o| o.parse::<i64>().ok()).unwrap_or(i64::MAX)
}

fn reconcile_statefulset(state: &mut State, key: &Key) {
    let Some(sts) = live(state, key) else { return };
    let uid = meta_str(&sts, "uid").unwrap_or("").to_string();
    let want = replicas(&sts).max(0);
    let template = sts.get("spec").and_then(|s| s.get("template")).cloned().unwrap_or(json!({}));
    let update_revision = format!("{}-{}", key.name, template_hash(&template));
    let current_revision = get_str(&sts, &["status", "currentRevision"]).unwrap_or(&update_revision).to_string();
    let service = get_str(&sts, &["spec", "serviceName"]).map(str::to_string);
    let on_delete = get_str(&sts, &["spec", "updateStrategy", "type"]) == Some("OnDelete");
    let partition = get_path(&sts, &["spec", "updateStrategy", "rollingUpdate", "partition"]).and_then(Value::as_i64).unwrap_or(0);
    let parallel = get_str(&sts, &["spec", "podManagementPolicy"]) == Some("Parallel");
    let revision_of = |p: &Value| get_str(p, &["metadata", "labels", "controller-revision-hash"]).map(str::to_string);
    // Scale down: pods beyond the replicas go.
    for (k, _) in owned(state, "", "pods", &key.namespace, &uid) {
        if ordinal_of(&k.name) >= want {
            state.remove(&k, Some("Background"), true);
        }
    }
    // RollingUpdate: while every pod exists and is Ready, the highest ordinal at or above the
    // partition still on an old revision is deleted (and recreated below).
    let pods = owned(state, "", "pods", &key.namespace, &uid);
    if !on_delete && pods.len() as i64 == want && pods.iter().all(|(_, p)| is_ready(p)) {
        let stale = pods
            .iter()
            .filter(|(k, p)| ordinal_of(&k.name) >= partition && revision_of(p).as_deref() != Some(update_revision.as_str()))
            .max_by_key(|(k, _)| ordinal_of(&k.name));
        if let Some((k, _)) = stale {
            state.remove(k, Some("Background"), true);
        }
    }
    // Create missing pods in ordinal order; OrderedReady waits for each predecessor to be
    // Running and Ready.
    for ordinal in 0..want {
        let name = format!("{}-{ordinal}", key.name);
        let pk = Key { group: String::new(), resource: "pods".into(), namespace: key.namespace.clone(), name: name.clone() };
        if let Some(existing) = live(state, &pk) {
            if !parallel && !is_ready(&existing) {
                break;
            }
            continue;
        }
        let mut pod = new_pod(
            "StatefulSet",
            &sts,
            &name,
            &template,
            &[
                ("controller-revision-hash", update_revision.clone()),
                ("statefulset.kubernetes.io/pod-name", name.clone()),
                ("apps.kubernetes.io/pod-index", ordinal.to_string()),
            ],
        );
        pod["spec"]["hostname"] = json!(name);
        if let Some(svc) = &service {
            pod["spec"]["subdomain"] = json!(svc);
        }
        put(state, "", "pods", pod);
        if !parallel && !live(state, &pk).is_some_and(|p| is_ready(&p)) {
            break;
        }
    }
    let pods = owned(state, "", "pods", &key.namespace, &uid);
    let n = pods.len() as i64;
    let ready = pods.iter().filter(|(_, p)| is_ready(p)).count() as i64;
    let count = |rev: &str| pods.iter().filter(|(_, p)| revision_of(p).as_deref() == Some(rev)).count() as i64;
    let updated = count(&update_revision);
    // `completeRollingUpdate`: only a RollingUpdate makes the update revision current.
    let current_revision = if !on_delete && updated == want && n == want && ready == want {
        update_revision.clone()
    } else {
        current_revision
    };
    let Some(sts) = live(state, key) else { return };
    let mut st = Map::new();
    st.insert("observedGeneration".into(), sts["metadata"]["generation"].clone());
    st.insert("replicas".into(), json!(n));
    nonzero(&mut st, "readyReplicas", ready);
    nonzero(&mut st, "currentReplicas", count(&current_revision));
    nonzero(&mut st, "updatedReplicas", updated);
    nonzero(&mut st, "availableReplicas", ready);
    st.insert("currentRevision".into(), json!(current_revision));
    st.insert("updateRevision".into(), json!(update_revision));
    st.insert("collisionCount".into(), json!(0));
    put_status(state, "apps", "statefulsets", &sts, st);
}

fn reconcile_daemonset(state: &mut State, key: &Key) {
    let Some(ds) = live(state, key) else { return };
    let uid = meta_str(&ds, "uid").unwrap_or("").to_string();
    let template = ds.get("spec").and_then(|s| s.get("template")).cloned().unwrap_or(json!({}));
    let revision = template_hash(&template);
    let on_delete = get_str(&ds, &["spec", "updateStrategy", "type"]) == Some("OnDelete");
    let node_start = Key { group: String::new(), resource: "nodes".into(), namespace: String::new(), name: String::new() };
    let nodes: Vec<String> = state
        .objects
        .range(node_start..)
        .take_while(|(k, _)| k.group.is_empty() && k.resource == "nodes")
        .map(|(k, _)| k.name.clone())
        .collect();
    let max_unavailable = scaled(
        get_path(&ds, &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"]),
        nodes.len() as i64,
        true,
        1,
    )
    .max(1);
    let pods = owned(state, "", "pods", &key.namespace, &uid);
    let stale = |p: &Value| get_str(p, &["metadata", "labels", "controller-revision-hash"]) != Some(revision.as_str());
    let mut covered = BTreeSet::new();
    let mut unavailable = pods.iter().filter(|(_, p)| !is_ready(p)).count() as i64;
    let mut by_readiness: Vec<&(Key, Arc<Value>)> = pods.iter().collect();
    // Old pods that are not ready go first: replacing them costs no availability.
    by_readiness.sort_by_key(|(_, p)| is_ready(p));
    for (k, p) in by_readiness {
        let node = get_str(p, &["spec", "nodeName"]).unwrap_or("").to_string();
        if !nodes.contains(&node) || covered.contains(&node) {
            state.remove(k, Some("Background"), true);
        } else if stale(p) && !on_delete && (!is_ready(p) || unavailable < max_unavailable) {
            if is_ready(p) {
                unavailable += 1;
            }
            state.remove(k, Some("Background"), true);
        } else {
            covered.insert(node);
        }
    }
    for node in &nodes {
        if covered.contains(node) {
            continue;
        }
        let name = format!("{}-{}", key.name, random_suffix(5));
        let mut pod = new_pod("DaemonSet", &ds, &name, &template, &[("controller-revision-hash", revision.clone())]);
        pod["spec"]["nodeName"] = json!(node);
        pod["metadata"]["generateName"] = json!(format!("{}-", key.name));
        put(state, "", "pods", pod);
    }
    let pods = owned(state, "", "pods", &key.namespace, &uid);
    let n = pods.len() as i64;
    let ready = pods.iter().filter(|(_, p)| is_ready(p)).count() as i64;
    let updated = pods.iter().filter(|(_, p)| !stale(p)).count() as i64;
    let Some(ds) = live(state, key) else { return };
    let mut st = Map::new();
    st.insert("currentNumberScheduled".into(), json!(n));
    st.insert("desiredNumberScheduled".into(), json!(nodes.len()));
    st.insert("numberMisscheduled".into(), json!(0));
    st.insert("numberReady".into(), json!(ready));
    st.insert("observedGeneration".into(), ds["metadata"]["generation"].clone());
    nonzero(&mut st, "updatedNumberScheduled", updated);
    nonzero(&mut st, "numberAvailable", ready);
    nonzero(&mut st, "numberUnavailable", nodes.len() as i64 - ready);
    put_status(state, "apps", "daemonsets", &ds, st);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DoubleOptions;
    use crate::store::{PatchType, WriteOpts};

    fn deployment(name: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})
    }

    fn pods_of(state: &State, ns: &str, prefix: &str) -> Vec<Arc<Value>> {
        state
            .objects
            .iter()
            .filter(|(k, _)| {
                k.resource == "pods" && k.namespace == ns && k.name.starts_with(prefix)
            })
            .map(|(_, s)| s.obj.clone())
            .collect()
    }

    #[test]
    fn deployment_rollout_and_restart() {
        let mut s = State::new(DoubleOptions::default());
        let t = s.registry.find_any_version("apps", "deployments").unwrap();
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        s.create(&t, "default", deployment("web", 3), &o).unwrap();
        settle(&mut s);
        let pods = pods_of(&s, "default", "web-");
        assert_eq!(pods.len(), 3);
        let first_names: BTreeSet<String> = pods
            .iter()
            .map(|p| meta_str(p, "name").unwrap().to_string())
            .collect();
        let rs_name = pods[0]["metadata"]["ownerReferences"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(pods.iter().all(|p| {
            meta_str(p, "name")
                .unwrap()
                .starts_with(&format!("{rs_name}-"))
        }));
        assert!(pods.iter().all(|p| is_ready(p)));
        let d = s.get(&t, "default", "web").unwrap().obj.clone();
        assert_eq!(d["status"]["readyReplicas"], 3);
        assert_eq!(d["status"]["updatedReplicas"], 3);
        assert_eq!(
            d["status"]["observedGeneration"],
            d["metadata"]["generation"]
        );
        let restart = br#"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-01-01T00:00:00Z"}}}}}"#;
        s.patch(&t, "default", "web", PatchType::Strategic, restart, &o)
            .unwrap();
        settle(&mut s);
        let pods = pods_of(&s, "default", "web-");
        assert_eq!(pods.len(), 3);
        assert!(
            pods.iter()
                .all(|p| !first_names.contains(meta_str(p, "name").unwrap())),
            "all pods replaced"
        );
        let d = s.get(&t, "default", "web").unwrap().obj.clone();
        assert_eq!(d["metadata"]["generation"], 2);
        assert_eq!(d["status"]["observedGeneration"], 2);
        assert_eq!(d["status"]["updatedReplicas"], 3);
        assert_eq!(d["status"]["replicas"], 3);
        s.patch(
            &t,
            "default",
            "web",
            PatchType::Merge,
            br#"{"spec":{"replicas":1}}"#,
            &o,
        )
        .unwrap();
        settle(&mut s);
        assert_eq!(pods_of(&s, "default", "web-").len(), 1);
        let del = crate::store::DeleteOpts::default();
        s.delete(&t, "default", "web", &del).unwrap();
        settle(&mut s);
        assert!(
            pods_of(&s, "default", "web-").is_empty(),
            "garbage collected"
        );
        assert!(!s.objects.keys().any(|k| k.resource == "replicasets"));
    }

    #[test]
    fn on_delete_statefulsets_keep_their_old_pods_until_deleted() {
        let mut s = State::new(DoubleOptions::default());
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        let sts_t = s.registry.find_any_version("apps", "statefulsets").unwrap();
        let mut sts = deployment("db", 2);
        sts["kind"] = json!("StatefulSet");
        sts["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        s.create(&sts_t, "default", sts, &o).unwrap();
        settle(&mut s);
        let uids = |s: &State| -> Vec<String> {
            pods_of(s, "default", "db-").iter().map(|p| meta_str(p, "uid").unwrap().to_string()).collect()
        };
        let before = uids(&s);
        let mut changed = s.get(&sts_t, "default", "db").unwrap().obj.as_ref().clone();
        changed["spec"]["template"]["metadata"]["annotations"] = json!({"restartedAt": "now"});
        s.update(&sts_t, "default", "db", changed, &o).unwrap();
        settle(&mut s);
        assert_eq!(uids(&s), before, "OnDelete: no pod is replaced by the controller");
        let st = s.get(&sts_t, "default", "db").unwrap().obj.clone();
        assert_eq!(st["status"]["replicas"], 2);
        assert!(st["status"].get("updatedReplicas").is_none(), "{}", st["status"]);
        // Deleting a pod brings it back on the new template.
        let pods_t = s.registry.find_any_version("", "pods").unwrap();
        s.delete(&pods_t, "default", "db-0", &crate::store::DeleteOpts::default()).unwrap();
        settle(&mut s);
        let st = s.get(&sts_t, "default", "db").unwrap().obj.clone();
        assert_eq!(st["status"]["updatedReplicas"], 1);
    }

    #[test]
    fn deleted_pod_is_replaced_and_statefulset_ordinals() {
        let mut s = State::new(DoubleOptions::default());
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        let sts_t = s.registry.find_any_version("apps", "statefulsets").unwrap();
        let mut sts = deployment("db", 2);
        sts["kind"] = json!("StatefulSet");
        sts["spec"]["serviceName"] = json!("db");
        s.create(&sts_t, "default", sts, &o).unwrap();
        settle(&mut s);
        let names: Vec<String> = pods_of(&s, "default", "db-")
            .iter()
            .map(|p| meta_str(p, "name").unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["db-0", "db-1"]);
        let pods_t = s.registry.find_any_version("", "pods").unwrap();
        s.delete(
            &pods_t,
            "default",
            "db-1",
            &crate::store::DeleteOpts::default(),
        )
        .unwrap();
        settle(&mut s);
        assert_eq!(pods_of(&s, "default", "db-").len(), 2, "recreated");
        let st = s.get(&sts_t, "default", "db").unwrap().obj.clone();
        assert_eq!(st["status"]["readyReplicas"], 2);
        assert_eq!(
            st["status"]["currentRevision"],
            st["status"]["updateRevision"]
        );
    }

    #[test]
    fn injection_follows_namespace_label() {
        let mut s = State::new(DoubleOptions::default());
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        let ns_t = s.registry.find_any_version("", "namespaces").unwrap();
        s.create(&ns_t, "", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mesh", "labels": {"istio-injection": "enabled"}}}), &o).unwrap();
        s.create(&ns_t, "", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "canary", "labels": {"istio.io/rev": "canary"}}}), &o).unwrap();
        let t = s.registry.find_any_version("apps", "deployments").unwrap();
        // No istiod yet: the label alone injects nothing.
        s.create(&t, "mesh", deployment("early", 1), &o).unwrap();
        settle(&mut s);
        assert_eq!(pods_of(&s, "mesh", "early-")[0]["spec"]["containers"].as_array().unwrap().len(), 1);
        s.create(&ns_t, "", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}), &o).unwrap();
        let mut istiod = deployment("istiod", 1);
        istiod["metadata"]["labels"] = json!({"app": "istiod"});
        s.create(&t, "istio-system", istiod, &o).unwrap();
        s.create(&t, "mesh", deployment("api", 1), &o).unwrap();
        // The default istiod does not serve revision `canary`.
        s.create(&t, "canary", deployment("api", 1), &o).unwrap();
        let mut opted_out = deployment("batch", 1);
        opted_out["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] =
            json!("false");
        s.create(&t, "mesh", opted_out, &o).unwrap();
        settle(&mut s);
        let api = pods_of(&s, "mesh", "api-");
        let containers: Vec<&str> = api[0]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(containers, vec!["app", "istio-proxy"]);
        let batch = pods_of(&s, "mesh", "batch-");
        assert_eq!(batch[0]["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(pods_of(&s, "canary", "api-")[0]["spec"]["containers"].as_array().unwrap().len(), 1);
    }

    /// Through the store: the injectors come from the istiod Deployments and tag webhooks
    /// created, and the labels are read with Istio's precedence (meshmove_istio::injection).
    #[test]
    fn injection_precedence_through_the_store() {
        let mut s = State::new(DoubleOptions::default());
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        let ns_t = s.registry.find_any_version("", "namespaces").unwrap();
        let namespaces = [
            ("istio-system", json!({})),
            ("both", json!({"istio-injection": "enabled", "istio.io/rev": "canary"})),
            ("disabled", json!({"istio-injection": "disabled", "istio.io/rev": "canary"})),
            ("tagged", json!({"istio.io/rev": "stable"})),
            ("dangling", json!({"istio.io/rev": "old"})),
            ("plain", json!({})),
        ];
        for (name, labels) in namespaces.clone() {
            s.create(&ns_t, "", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}), &o).unwrap();
        }
        let t = s.registry.find_any_version("apps", "deployments").unwrap();
        for rev in [None, Some("canary")] {
            let mut istiod = deployment(&format!("istiod{}", rev.map(|r| format!("-{r}")).unwrap_or_default()), 1);
            istiod["metadata"]["labels"] = json!({"app": "istiod"});
            if let Some(r) = rev {
                istiod["metadata"]["labels"]["istio.io/rev"] = json!(r);
            }
            s.create(&t, "istio-system", istiod, &o).unwrap();
        }
        let mwc_t = s.registry.find_any_version("admissionregistration.k8s.io", "mutatingwebhookconfigurations").unwrap();
        for (tag, rev) in [("stable", "canary"), ("old", "1-19")] {
            s.create(&mwc_t, "", json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": format!("istio-revision-tag-{tag}"), "labels": {"istio.io/tag": tag, "istio.io/rev": rev}}}), &o).unwrap();
        }
        for (name, _) in &namespaces[1..] {
            s.create(&t, name, deployment("api", 1), &o).unwrap();
        }
        let mut pod_rev = deployment("rev", 1);
        pod_rev["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] = json!("canary");
        s.create(&t, "plain", pod_rev, &o).unwrap();
        settle(&mut s);
        let revision = |ns: &str, prefix: &str| -> Option<String> {
            let p = &pods_of(&s, ns, prefix)[0];
            p["metadata"]["annotations"]["istio.io/rev"].as_str().map(str::to_string)
        };
        let rev = |r: &str| Some(r.to_string());
        assert_eq!(revision("both", "api-"), rev("default"), "istio-injection wins over istio.io/rev");
        assert_eq!(revision("disabled", "api-"), None, "istio-injection=disabled beside a revision");
        assert_eq!(revision("tagged", "api-"), rev("canary"), "a tag injects from its revision");
        assert_eq!(revision("dangling", "api-"), None, "a tag without an istiod for its revision");
        assert_eq!(revision("plain", "api-"), None);
        assert_eq!(revision("plain", "rev-"), rev("canary"), "a pod's own istio.io/rev in an unlabelled namespace");
    }

    #[test]
    fn ambient_capture_needs_the_label_and_ztunnel() {
        let mut s = State::new(DoubleOptions::default());
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        let ns_t = s.registry.find_any_version("", "namespaces").unwrap();
        for n in ["mesh", "istio-system"] {
            s.create(
                &ns_t,
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}),
                &o,
            )
            .unwrap();
        }
        let t = s.registry.find_any_version("apps", "deployments").unwrap();
        s.create(&t, "mesh", deployment("api", 2), &o).unwrap();
        let mut opted_out = deployment("batch", 1);
        opted_out["spec"]["template"]["metadata"]["labels"]["istio.io/dataplane-mode"] =
            json!("none");
        s.create(&t, "mesh", opted_out, &o).unwrap();
        settle(&mut s);
        let captured = |s: &State, prefix: &str| -> Vec<bool> {
            pods_of(s, "mesh", prefix)
                .iter()
                .map(|p| p["metadata"]["annotations"][AMBIENT_REDIRECTION] == "enabled")
                .collect()
        };
        let label = |s: &mut State, v: Value| {
            let ns = s.get(&ns_t, "", "mesh").unwrap().obj.clone();
            let mut ns = (*ns).clone();
            ns["metadata"]["labels"] = v;
            s.update(&ns_t, "", "mesh", ns, &o).unwrap();
            settle(s);
        };
        // The label alone does nothing without ztunnel.
        label(&mut s, json!({"istio.io/dataplane-mode": "ambient"}));
        assert_eq!(captured(&s, "api-"), vec![false, false]);
        let ds_t = s.registry.find_any_version("apps", "daemonsets").unwrap();
        let mut ztunnel = deployment("ztunnel", 1);
        ztunnel["kind"] = json!("DaemonSet");
        ztunnel["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("replicas");
        s.create(&ds_t, "istio-system", ztunnel, &o).unwrap();
        settle(&mut s);
        assert_eq!(captured(&s, "api-"), vec![true, true]);
        assert_eq!(captured(&s, "batch-"), vec![false], "opted out");
        let pod = &pods_of(&s, "mesh", "api-")[0];
        let name = meta_str(pod, "name").unwrap().to_string();
        let pods_t = s.registry.find_any_version("", "pods").unwrap();
        let managers: Vec<String> = s
            .get(&pods_t, "mesh", &name)
            .unwrap()
            .managed
            .iter()
            .map(|m| m.manager.clone())
            .collect();
        assert!(managers.iter().any(|m| m == "istio-cni"), "{managers:?}");
        // New pods are captured too; removing the label releases every pod.
        s.delete(&pods_t, "mesh", &name, &crate::store::DeleteOpts::default())
            .unwrap();
        settle(&mut s);
        assert_eq!(captured(&s, "api-"), vec![true, true]);
        label(&mut s, json!({}));
        assert_eq!(captured(&s, "api-"), vec![false, false]);
        assert!(
            pods_of(&s, "mesh", "api-")
                .iter()
                .all(|p| p["metadata"].get("annotations").is_none())
        );
    }

    #[test]
    fn daemonset_follows_nodes() {
        let mut s = State::new(DoubleOptions::default());
        let o = WriteOpts {
            manager: "t".into(),
            explicit_manager: true,
            ..WriteOpts::default()
        };
        let ds_t = s.registry.find_any_version("apps", "daemonsets").unwrap();
        let mut ds = deployment("agent", 1);
        ds["kind"] = json!("DaemonSet");
        ds["spec"].as_object_mut().unwrap().shift_remove("replicas");
        s.create(&ds_t, "default", ds, &o).unwrap();
        settle(&mut s);
        assert!(pods_of(&s, "default", "agent-").is_empty());
        let node_t = s.registry.find_any_version("", "nodes").unwrap();
        for n in ["n1", "n2"] {
            s.create(
                &node_t,
                "",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}),
                &o,
            )
            .unwrap();
        }
        settle(&mut s);
        let pods = pods_of(&s, "default", "agent-");
        let nodes: BTreeSet<&str> = pods
            .iter()
            .map(|p| p["spec"]["nodeName"].as_str().unwrap())
            .collect();
        assert_eq!(nodes, BTreeSet::from(["n1", "n2"]));
        let st = s.get(&ds_t, "default", "agent").unwrap().obj.clone();
        assert_eq!(st["status"]["desiredNumberScheduled"], 2);
        assert_eq!(st["status"]["numberReady"], 2);
    }
}
