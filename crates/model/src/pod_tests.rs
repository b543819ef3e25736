use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// The facts as reading the JSON tree field by field gives them (the reads the engine's view made
/// of each pod before the typed shape): the reference the reader must agree with.
#[derive(Debug, PartialEq)]
struct Reference {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner: Option<(String, String)>,
    ports: Vec<(Value, Option<String>, Option<String>)>,
    host_network: bool,
    service_account: Option<String>,
    phase: Option<String>,
    ips: Vec<IpAddr>,
}

fn reference(pod: &Value) -> Reference {
    let string_map = |v: Option<&Value>| crate::workload::string_map(v);
    let spec = pod.get("spec");
    let main = spec.and_then(|s| s.get("containers")).and_then(Value::as_array).into_iter().flatten();
    let sidecars = spec
        .and_then(|s| s.get("initContainers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"));
    let mut ports = Vec::new();
    for c in main.chain(sidecars) {
        for p in c.get("ports").and_then(Value::as_array).into_iter().flatten() {
            let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
            ports.push((p.get("containerPort").cloned().unwrap_or(Value::Null), text("name"), text("protocol")));
        }
    }
    let owner = (|| {
        let refs = pod.get("metadata")?.get("ownerReferences")?.as_array()?;
        let r = refs.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)).or_else(|| refs.first())?;
        Some((r.get("kind")?.as_str()?.to_string(), r.get("name")?.as_str()?.to_string()))
    })();
    let mut ips: Vec<IpAddr> = Vec::new();
    let listed = pod.pointer("/status/podIPs").and_then(Value::as_array).into_iter().flatten().filter_map(|p| p.get("ip"));
    for ip in pod.pointer("/status/podIP").into_iter().chain(listed).filter_map(Value::as_str) {
        if let Ok(ip) = ip.parse::<IpAddr>()
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
    }
    Reference {
        labels: string_map(pod.pointer("/metadata/labels")),
        annotations: string_map(pod.pointer("/metadata/annotations")),
        owner,
        ports,
        host_network: spec.and_then(|s| s.get("hostNetwork")).and_then(Value::as_bool).unwrap_or(false),
        service_account: spec
            .and_then(|s| s.get("serviceAccountName").or_else(|| s.get("serviceAccount")))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        phase: pod.pointer("/status/phase").and_then(Value::as_str).map(str::to_string),
        ips,
    }
}

fn of_facts(f: &PodFacts) -> Reference {
    Reference {
        labels: f.label_map(),
        annotations: f.annotation_map(),
        owner: f.owner().map(|(k, n)| (k.to_string(), n.to_string())),
        ports: f.ports().iter().map(|p| (p.container_port.clone(), p.name.as_deref().map(str::to_string), p.protocol.as_deref().map(str::to_string))).collect(),
        host_network: f.host_network(),
        service_account: f.service_account().map(str::to_string),
        phase: f.phase().map(str::to_string),
        ips: f.ips().to_vec(),
    }
}

/// The facts read from the tree and from the text agree with each other and with the reference.
fn check(pod: &Value) {
    let from_value = PodFacts::from_value(pod);
    let from_text: PodFacts = serde_json::from_str(&serde_json::to_string(pod).unwrap()).unwrap();
    assert_eq!(from_value, from_text, "{pod}");
    assert_eq!(of_facts(&from_value), reference(pod), "{pod}");
}

#[test]
fn a_pod_reads_as_its_fields() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-1", "labels": {"app": "api", "n": 3, "b": "x"}, "annotations": {"sidecar.istio.io/status": "{}"},
            "ownerReferences": [{"kind": "Node", "name": "n1"}, {"kind": "ReplicaSet", "name": "api-7d9", "controller": true}]},
        "spec": {"serviceAccountName": "api", "serviceAccount": "old", "hostNetwork": true,
            "initContainers": [{"name": "proxy", "restartPolicy": "Always", "ports": [{"containerPort": 15090, "name": "metrics"}]},
                               {"name": "migrate", "ports": [{"containerPort": 1}]}],
            "containers": [{"name": "c", "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}, {"containerPort": "x"}, 7]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}, {"ip": "nope"}, 3]}
    });
    check(&pod);
    let f = PodFacts::from_value(&pod);
    assert_eq!(f.labels().collect::<Vec<_>>(), [("app", "api"), ("b", "x")], "sorted, strings only");
    assert_eq!(f.owner(), Some(("ReplicaSet", "api-7d9")), "the controller, not the first");
    assert_eq!(f.ports().len(), 4, "main containers, then the native sidecar; not the other init container");
    assert_eq!(f.ports()[3].name.as_deref(), Some("metrics"));
    assert_eq!(f.service_account(), Some("api"));
    assert_eq!(f.ips().len(), 2);
    assert_eq!(f.annotation("sidecar.istio.io/status"), Some("{}"));
    assert_eq!(f.label("n"), None);
}

#[test]
fn values_of_other_types_count_as_absent() {
    for pod in [
        json!(null),
        json!([1, 2]),
        json!("pod"),
        json!({"metadata": 3, "spec": [], "status": "x"}),
        json!({"metadata": {"labels": [], "annotations": "a", "ownerReferences": {"kind": "ReplicaSet"}}}),
        json!({"metadata": {"ownerReferences": [5, {"kind": "ReplicaSet", "name": "r", "controller": true}]}}),
        json!({"metadata": {"ownerReferences": [{"kind": 1, "name": "r", "controller": true}, {"kind": "ReplicaSet", "name": "s"}]}}),
        json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "r", "controller": "true"}]}}),
        json!({"spec": {"serviceAccountName": null, "serviceAccount": "old", "hostNetwork": "true"}}),
        json!({"spec": {"serviceAccountName": "", "serviceAccount": "old"}}),
        json!({"spec": {"serviceAccount": "old"}}),
        json!({"spec": {"containers": {"ports": []}, "initContainers": [{"restartPolicy": "always", "ports": [{"containerPort": 1}]}]}}),
        json!({"spec": {"containers": [null, {"ports": [null, {"containerPort": 70000}, {"containerPort": -1}, {"containerPort": 1.5}, {"containerPort": 0, "protocol": 6}]}]}}),
        json!({"status": {"phase": 1, "podIP": ["10.0.0.1"], "podIPs": {"ip": "10.0.0.2"}}}),
    ] {
        check(&pod);
    }
}

#[test]
fn a_key_given_twice_reads_as_its_last_value() {
    let text = r#"{"metadata": {"labels": {"a": "1", "b": "2", "a": 3, "b": "4"}, "labels": {"a": "x", "b": "y", "a": "z"}},
        "spec": {"hostNetwork": true, "hostNetwork": false, "containers": [{"ports": [{"containerPort": 1}]}], "containers": []},
        "status": {"podIP": "10.0.0.9", "podIP": "10.0.0.1"}}"#;
    let tree: Value = serde_json::from_str(text).unwrap();
    let f: PodFacts = serde_json::from_str(text).unwrap();
    assert_eq!(f, PodFacts::from_value(&tree));
    assert_eq!(of_facts(&f), reference(&tree));
    assert_eq!(f.labels().collect::<Vec<_>>(), [("a", "z"), ("b", "y")]);
}

/// Any JSON leaf, with the strings the reader looks for among others.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(0i64), Just(80), Just(65535), Just(65536), Just(-3), any::<i64>()].prop_map(Value::from),
        Just(json!(1.5)),
        prop_oneof![
            Just("Always"), Just("Succeeded"), Just("Running"), Just("10.0.0.1"), Just("fd00::2"), Just("bad"),
            Just(""), Just("TCP"), Just("ReplicaSet"), Just("Job"), Just("x")
        ]
        .prop_map(Value::from),
    ]
}

/// `inner` or, sometimes, a leaf in its place.
fn or_leaf(inner: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![4 => inner, 1 => leaf()].boxed()
}

/// A mapping of some of `keys` to values from `value`, plus a key no reader looks at.
fn object_of(keys: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(&'static str, Value)>>> =
        keys.into_iter().map(|(k, v)| proptest::option::of(v.prop_map(move |v| (k, v))).boxed()).collect();
    (parts, leaf())
        .prop_map(|(parts, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("other".into(), extra);
            for (k, v) in parts.into_iter().flatten() {
                m.insert(k.into(), v);
            }
            Value::Object(m)
        })
        .boxed()
}

fn list_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    or_leaf(proptest::collection::vec(item, 0..4).prop_map(Value::Array))
}

fn string_map() -> BoxedStrategy<Value> {
    let keys = prop_oneof![Just("app"), Just("tier"), Just("sidecar.istio.io/status"), Just("istio.io/dataplane-mode")];
    or_leaf(proptest::collection::vec((keys, leaf()), 0..4).prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())))
}

fn pod() -> BoxedStrategy<Value> {
    let owner = object_of(vec![("kind", leaf().boxed()), ("name", leaf().boxed()), ("controller", leaf().boxed())]);
    let port = object_of(vec![("containerPort", leaf().boxed()), ("name", leaf().boxed()), ("protocol", leaf().boxed())]);
    let container = object_of(vec![("ports", list_of(port)), ("restartPolicy", leaf().boxed())]);
    let meta = object_of(vec![("labels", string_map()), ("annotations", string_map()), ("ownerReferences", list_of(owner))]);
    let spec = object_of(vec![
        ("containers", list_of(container.clone())),
        ("initContainers", list_of(container)),
        ("hostNetwork", leaf().boxed()),
        ("serviceAccountName", leaf().boxed()),
        ("serviceAccount", leaf().boxed()),
    ]);
    let ip = object_of(vec![("ip", leaf().boxed())]);
    let status = object_of(vec![("phase", leaf().boxed()), ("podIP", leaf().boxed()), ("podIPs", list_of(ip))]);
    object_of(vec![("metadata", or_leaf(meta)), ("spec", or_leaf(spec)), ("status", or_leaf(status))])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_reader_agrees_with_reading_the_tree(pod in pod()) {
        check(&pod);
    }
}
