//! Offline tests of the pieces that need no cluster: pointers, JSON-patch building, the journal's
//! recording rules, readiness, projection and plan rendering.

use std::collections::BTreeMap;

use serde_json::json;

use super::client::{contains, field_ops, project, set_pointer};
use super::*;

#[test]
fn pointers_escape_label_keys() {
    assert_eq!(label_pointer("istio.io/rev"), "/metadata/labels/istio.io~1rev");
    assert_eq!(restart_pointer(), "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt");
    let mut v = json!({});
    set_pointer(&mut v, &label_pointer("a/b~c"), json!("x"));
    assert_eq!(v, json!({"metadata": {"labels": {"a/b~c": "x"}}}));
    assert_eq!(pointer_get(&v, &label_pointer("a/b~c")), Some(&json!("x")));
}

#[test]
fn field_ops_guard_what_they_overwrite() {
    let ns = json!({"metadata": {"name": "shop", "resourceVersion": "7", "labels": {"team": "a"}}});
    // Unchanged: nothing to send.
    assert_eq!(field_ops(&ns, &label_pointer("team"), Some(&json!("a"))), None);
    assert_eq!(field_ops(&ns, &label_pointer("gone"), None), None);
    // Replace and remove test the value read.
    assert_eq!(
        field_ops(&ns, &label_pointer("team"), Some(&json!("b"))).unwrap(),
        vec![
            json!({"op": "test", "path": "/metadata/labels/team", "value": "a"}),
            json!({"op": "replace", "path": "/metadata/labels/team", "value": "b"})
        ]
    );
    assert_eq!(field_ops(&ns, &label_pointer("team"), None).unwrap()[1], json!({"op": "remove", "path": "/metadata/labels/team"}));
    // Adding tests the resourceVersion and creates missing parents in one value.
    assert_eq!(
        field_ops(&ns, &label_pointer("istio-injection"), Some(&json!("enabled"))).unwrap(),
        vec![
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"}),
            json!({"op": "add", "path": "/metadata/labels/istio-injection", "value": "enabled"})
        ]
    );
    let deploy = json!({"metadata": {"resourceVersion": "3"}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}});
    assert_eq!(
        field_ops(&deploy, &restart_pointer(), Some(&json!("t"))).unwrap()[1],
        json!({"op": "add", "path": "/spec/template/metadata/annotations", "value": {"kubectl.kubernetes.io/restartedAt": "t"}})
    );
}

#[test]
fn the_journal_records_prior_state_once() {
    let mut j = Journal::new("shop");
    let ns = Target::namespace("shop");
    let before = json!({"metadata": {"name": "shop", "labels": {"istio-injection": "disabled"}}});
    let writes = BTreeMap::from([(label_pointer("istio-injection"), Some(json!("enabled")))]);
    assert!(j.record_fields("enable", &ns, &before, &writes));
    // The same write again records nothing new.
    let after = json!({"metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}});
    assert!(!j.record_fields("enable", &ns, &after, &writes));
    // A later step writing another value keeps the first prior and updates what was written.
    let removal = BTreeMap::from([(label_pointer("istio-injection"), None)]);
    assert!(j.record_fields("other", &ns, &after, &removal));
    let Prior::Fields { fields } = &j.entry(&ns).unwrap().prior else { panic!("fields") };
    assert_eq!(fields[&label_pointer("istio-injection")], FieldRecord { prior: Some(json!("disabled")), written: None, absent_from: None });
    assert_eq!(j.entry(&ns).unwrap().step, "enable", "the first step that touched it");

    // Objects: absent once, never re-recorded.
    let gw = Target::new("networking.istio.io/v1", "Gateway", Some("shop"), "shop-gateway");
    let none = super::fingerprint::Fingerprints::unkeyed("shop");
    assert!(j.record_object("enable", &gw, None, &none).unwrap());
    assert!(!j.record_object("enable", &gw, Some(&json!({"metadata": {"uid": "u"}})), &none).unwrap());
    assert_eq!(j.entry(&gw).unwrap().prior, Prior::Absent);
    // Objects that existed are kept without server-owned fields.
    let cm = Target::new("v1", "ConfigMap", Some("shop"), "c");
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "uid": "u", "resourceVersion": "9",
        "managedFields": [], "creationTimestamp": "2024-01-01T00:00:00Z"}, "data": {"a": "1"}});
    assert!(j.record_object("expose", &cm, Some(&live), &none).unwrap());
    assert_eq!(
        j.entry(&cm).unwrap().prior,
        Prior::Object { object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"a": "1"}}) }
    );

    // Round trip through the ConfigMap.
    let mut cm = j.to_config_map();
    assert_eq!(cm["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kubectl-mesh-migrate");
    cm["metadata"]["resourceVersion"] = json!("42");
    let back = Journal::from_config_map("shop", &cm).unwrap();
    assert_eq!(back.entries, j.entries);
    assert_eq!(back.resource_version.as_deref(), Some("42"));
    let bad = json!({"data": {"journal.json": "{not json"}});
    let err = Journal::from_config_map("shop", &bad).unwrap_err().to_string();
    assert!(err.contains("shop/mesh-migrate-journal") && err.contains("not a journal"), "{err}");
}

#[test]
fn readiness_follows_rollout_status() {
    let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}});
    assert!(workload_ready("Deployment", &d).reason.contains("generation 2"));
    d["status"]["observedGeneration"] = json!(2);
    assert!(workload_ready("Deployment", &d).ready);
    d["status"]["replicas"] = json!(3);
    assert!(workload_ready("Deployment", &d).reason.contains("old pod"));
    d["status"]["replicas"] = json!(2);
    d["status"]["readyReplicas"] = json!(1);
    let s = workload_ready("Deployment", &d);
    assert!(!s.ready);
    assert_eq!(s.to_string(), "2/2 updated, 1/2 ready (waiting for pods to become ready)");
    let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberReady": 3}});
    assert!(workload_ready("DaemonSet", &ds).ready);
}

#[test]
fn projection_and_containment_ignore_server_additions() {
    let want = json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}});
    let have = json!({"metadata": {"uid": "x"}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "a"}, "type": "ClusterIP"}});
    assert!(contains(&have, &want));
    assert_eq!(project(&have, &want), json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}));
    let other = json!({"spec": {"ports": [{"port": 81}], "selector": {"app": "a"}}});
    assert!(!contains(&have, &other));
    assert!(!contains(&json!({"spec": {"ports": []}}), &want));
}

#[test]
fn plans_serialize_and_outcomes_read_like_kubectl() {
    let mut plan = Plan::new("enable", "shop");
    let ns = Target::namespace("shop");
    let deploy = Target::new("apps/v1", "Deployment", Some("shop"), "api");
    plan.push(Change::label(ns.clone(), "istio-injection", Some("enabled")))
        .push(Change::Apply { object: json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": "shop"}, "spec": {"mtls": {"mode": "PERMISSIVE"}}}) })
        .push(Change::Restart { target: deploy.clone() })
        .push(Change::WaitReady { targets: vec![deploy.clone()] })
        .push(Change::Scale { target: deploy.clone(), replicas: 3 })
        .push(Change::Delete { target: Target::new("networking.k8s.io/v1", "Ingress", Some("shop"), "old") });
    assert_eq!(plan.writes(), 5);
    let o = Outcome { target: deploy.clone(), action: Action::Restarted, dry_run: DryRun::Server, detail: String::new() };
    assert_eq!(o.to_string(), "deployment.apps/api restarted (namespace shop) (server dry run)");
    assert_eq!(Outcome { target: ns, action: Action::Configured, dry_run: DryRun::None, detail: String::new() }.to_string(), "namespace/shop configured");
    // Plans serialize (the journal and -o json use it).
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["changes"][2], json!({"type": "restart", "target": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "api"}}));
    let back: Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn error_classes_map_to_exit_codes() {
    let t = Target::namespace("shop");
    assert_eq!(PlanError::NoJournal { namespace: "shop".into() }.class(), ErrorClass::Input);
    let drift = PlanError::Drifted { target: t, pointer: "/p".into(), current: "\"b\"".into(), written: "\"a\"".into(), prior: "absent".into() };
    assert_eq!(drift.class(), ErrorClass::Failed);
    assert!(drift.to_string().contains("--force"), "{drift}");
}

#[test]
fn a_deployment_past_its_progress_deadline_has_failed() {
    let mut d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2, "progressDeadlineSeconds": 60},
        "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet \"api-7d9\" is progressing."}]}});
    assert_eq!(workload_ready("Deployment", &d).rollout, Rollout::InProgress);
    d["status"]["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet \"api-7d9\" has timed out progressing."});
    let s = workload_ready("Deployment", &d);
    assert!(!s.ready);
    assert_eq!(s.rollout, Rollout::Failed { message: "ReplicaSet \"api-7d9\" has timed out progressing.".into() });
    assert!(s.to_string().contains("progress deadline exceeded: ReplicaSet \"api-7d9\" has timed out progressing."), "{s}");
    // The condition is about the generation the controller saw: a newer template is a new rollout.
    d["metadata"]["generation"] = json!(4);
    assert_eq!(workload_ready("Deployment", &d).rollout, Rollout::InProgress);
    // Without a message, the deadline is named.
    d["metadata"]["generation"] = json!(3);
    d["status"]["conditions"][1]["message"] = json!("");
    assert_eq!(workload_ready("Deployment", &d).rollout, Rollout::Failed { message: "the rollout made no progress for 60s".into() });
    // Only Deployments have the condition.
    assert_eq!(workload_ready("StatefulSet", &d).rollout, Rollout::InProgress);
    let err = PlanError::RolloutFailed { target: Target::namespace("shop"), message: "x".into() };
    assert_eq!(err.class(), ErrorClass::Failed);
}

#[test]
fn on_delete_workloads_are_not_rolled_out_by_their_controller() {
    let mut sts = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3, "updateStrategy": {"type": "OnDelete"}},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 3}});
    let s = workload_ready("StatefulSet", &sts);
    assert!(!s.ready);
    let Rollout::Manual { reason } = &s.rollout else { panic!("{s:?}") };
    assert!(reason.contains("OnDelete") && reason.contains("2 of 3"), "{reason}");
    // Once every pod was deleted and replaced, it is an ordinary ready StatefulSet.
    sts["status"]["updatedReplicas"] = json!(3);
    assert_eq!(workload_ready("StatefulSet", &sts).rollout, Rollout::Complete);
    // Replaced but not ready yet: waiting helps.
    sts["status"]["readyReplicas"] = json!(2);
    assert_eq!(workload_ready("StatefulSet", &sts).rollout, Rollout::InProgress);
    let ds = json!({"metadata": {"generation": 5}, "spec": {"updateStrategy": {"type": "OnDelete"}},
        "status": {"observedGeneration": 5, "desiredNumberScheduled": 4, "updatedNumberScheduled": 0, "numberReady": 4}});
    assert!(matches!(workload_ready("DaemonSet", &ds).rollout, Rollout::Manual { .. }));
    // RollingUpdate (the default) is waited for.
    let ds = json!({"metadata": {"generation": 5}, "spec": {"updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 5, "desiredNumberScheduled": 4, "updatedNumberScheduled": 0, "numberReady": 4}});
    assert_eq!(workload_ready("DaemonSet", &ds).rollout, Rollout::InProgress);
}

/// A partitioned RollingUpdate: waited for until the pods at and above the partition are updated
/// and every pod is ready (kubectl's "partitioned roll out complete"), then reported as not rolled
/// out by the controller for the ordinals below.
#[test]
fn a_partitioned_statefulset_is_waited_for_down_to_its_partition_only() {
    let mut sts = json!({"metadata": {"generation": 2},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2}});
    assert_eq!(workload_ready("StatefulSet", &sts).rollout, Rollout::InProgress, "ordinal 1 not updated yet");
    sts["status"]["updatedReplicas"] = json!(2);
    assert_eq!(workload_ready("StatefulSet", &sts).rollout, Rollout::InProgress, "one pod not ready yet");
    sts["status"]["readyReplicas"] = json!(3);
    let s = workload_ready("StatefulSet", &sts);
    let Rollout::Manual { reason } = &s.rollout else { panic!("{s:?}") };
    assert!(reason.contains("partition 1") && reason.contains("1 of 3 pod(s) keep the old template"), "{reason}");
    // A partition at or past the replicas updates nothing.
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(5);
    sts["status"]["updatedReplicas"] = json!(0);
    assert!(matches!(workload_ready("StatefulSet", &sts).rollout, Rollout::Manual { .. }));
    // Partition 0 is an ordinary rolling update.
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(0);
    assert_eq!(workload_ready("StatefulSet", &sts).rollout, Rollout::InProgress);
}

/// Conditions as `kubectl wait --for=condition=...` reads them: the type ignoring case, `True`
/// ignoring case, and a condition observed at an older generation does not count.
#[test]
fn a_condition_is_met_when_true_for_the_current_generation() {
    let gw = |status: &str, observed: Option<i64>| {
        let mut c = json!({"type": "Programmed", "status": status, "reason": "Pending", "message": "Waiting for controller"});
        if let Some(o) = observed {
            c["observedGeneration"] = json!(o);
        }
        json!({"metadata": {"generation": 2}, "status": {"conditions": [{"type": "Accepted", "status": "True"}, c]}})
    };
    assert!(condition_state(&gw("True", Some(2)), "Programmed").met);
    assert!(condition_state(&gw("true", None), "programmed").met, "type and status ignore case");
    let stale = condition_state(&gw("True", Some(1)), "Programmed");
    assert!(!stale.met && stale.to_string().contains("generation 1"), "{stale}");
    let pending = condition_state(&gw("Unknown", Some(2)), "Programmed");
    assert!(!pending.met);
    assert_eq!(pending.to_string(), "condition Programmed is Unknown (reason Pending: Waiting for controller)");
    // `status.observedGeneration` stands in for a condition without one.
    let mut o = gw("True", None);
    o["status"]["observedGeneration"] = json!(1);
    assert!(!condition_state(&o, "Programmed").met);
    let none = condition_state(&json!({"metadata": {"generation": 1}}), "Programmed");
    assert!(!none.met && none.status.is_none());
    assert_eq!(none.to_string(), "no Programmed condition in its status yet");
}
