use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::inventory::{Object, Origin};

fn obj(value: serde_json::Value) -> Object {
    let api_version = value["apiVersion"].as_str().unwrap().to_string();
    let kind = value["kind"].as_str().unwrap().to_string();
    let name = value["metadata"]["name"].as_str().unwrap().to_string();
    let namespace = value["metadata"]["namespace"].as_str().map(str::to_string);
    Object { api_version, kind, namespace, name, value, origin: Origin::Stdin { line: 1, helm_source: None } }
}

fn files(objects: Vec<Object>) -> Inventory {
    Inventory::from_files(objects, vec!["test.yaml".into()], "default".into())
}

fn deployment(ns: &str, name: &str) -> Object {
    obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c"}]}}}
    }))
}

#[test]
fn scope_excludes_system_and_control_plane_namespaces_by_default() {
    let mut istiod = deployment("mesh-system", "istiod");
    istiod.value["metadata"]["labels"]["app"] = json!("istiod");
    let inv = files(vec![deployment("shop", "api"), istiod]);
    let scope = Scope::new(&PrecheckOptions::default(), &inv);
    assert!(scope.contains("shop"));
    assert!(scope.contains("anything-else"));
    for ns in ["kube-system", "kube-public", "kube-node-lease", "istio-system", "mesh-system"] {
        assert!(!scope.contains(ns), "{ns} is in scope");
    }
}

#[test]
fn scope_is_exactly_the_named_namespaces_or_the_listed_one() {
    let inv = files(vec![]);
    let options = PrecheckOptions { namespaces: Some(vec!["shop".into(), "kube-system".into()]), ..Default::default() };
    let scope = Scope::new(&options, &inv);
    assert!(scope.contains("shop") && scope.contains("kube-system") && !scope.contains("billing"));

    let live = Inventory::from_cluster(
        vec![],
        BTreeMap::new(),
        SourceInfo::Cluster { context: "kind".into(), namespace: Some("billing".into()) },
        "billing".into(),
    );
    let scope = Scope::new(&PrecheckOptions::default(), &live);
    assert_eq!(scope, Scope::Only(["billing".to_string()].into()));
}

#[test]
fn owned_objects_are_not_workloads_of_their_own() {
    let owned_rs = obj(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "api-5d8", "namespace": "shop",
                     "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}
    }));
    let owned_pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-5d8-x", "namespace": "shop",
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "api-5d8", "controller": true}]},
        "spec": {"containers": [{"name": "c"}]}
    }));
    let finished_pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "once", "namespace": "shop"},
        "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Succeeded"}
    }));
    let bare_pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "debug", "namespace": "shop"},
        "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}
    }));
    let job_of_cron = obj(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "nightly-123", "namespace": "shop",
                     "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}
    }));
    assert!(workload_of(&owned_rs).is_none());
    assert!(workload_of(&owned_pod).is_none());
    assert!(workload_of(&finished_pod).is_none());
    assert!(workload_of(&job_of_cron).is_none());
    assert_eq!(workload_of(&bare_pod).map(|w| w.replicas), Some(Replicas::Known(1)));
    assert_eq!(workload_of(&deployment("shop", "api")).map(|w| w.replicas), Some(Replicas::Known(2)));
}

#[test]
fn analyzers_depend_on_the_mode_and_kinds_are_their_union() {
    let sidecar = analyzers(&PrecheckOptions::default());
    let ambient = analyzers(&PrecheckOptions { mode: MeshMode::Ambient, ..Default::default() });
    let names = |a: &[Box<dyn Analyzer>]| a.iter().map(|a| a.name()).collect::<Vec<_>>();
    assert!(names(&sidecar).contains(&"job-completion") && names(&sidecar).contains(&"capacity"));
    assert!(!names(&ambient).contains(&"job-completion") && !names(&ambient).contains(&"capacity"));

    let kinds_of = |a: &[Box<dyn Analyzer>]| {
        let refs: Vec<&dyn Analyzer> = a.iter().map(|a| a.as_ref()).collect();
        crate::findings::wanted_kinds(&refs)
    };
    let (k, wide) = kinds_of(&sidecar);
    assert_eq!(wide, [&kinds::POD, &kinds::DAEMON_SET, &kinds::DEPLOYMENT], "control plane and capacity list cluster-wide");
    assert!(k.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    for a in &sidecar {
        for kind in a.requires().iter().chain(a.uses()) {
            assert!(k.contains(kind), "{} needs {kind}", a.name());
        }
    }
    assert!(k.contains(&&kinds::NODE) && k.contains(&&kinds::CRD) && k.contains(&&kinds::MUTATING_WEBHOOK));
    assert!(!kinds_of(&ambient).0.contains(&&kinds::NODE), "ambient lists no Nodes: nothing uses them");
}

#[test]
fn selectors_follow_label_selector_semantics() {
    let labels: BTreeMap<String, String> = [("app".to_string(), "api".to_string())].into();
    assert!(!selects(None, &labels), "a null selector selects nothing");
    assert!(selects(Some(&LabelSelector::default()), &labels), "an empty selector selects everything");
    let bad: LabelSelector =
        serde_json::from_value(json!({"matchExpressions": [{"key": "app", "operator": "Near"}]})).unwrap();
    assert!(!selects(Some(&bad), &labels), "an uninterpretable selector selects nothing");
    let in_set: LabelSelector = serde_json::from_value(
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}),
    )
    .unwrap();
    assert!(selects(Some(&in_set), &labels));
}
