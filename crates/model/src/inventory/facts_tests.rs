use std::path::PathBuf;

use super::super::{Object, files};
use super::*;

/// `text` as a JSON file read whole and read with pods kept as facts.
fn both(text: &str) -> (Vec<Object>, Vec<Object>) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("in.json");
    std::fs::write(&path, text).unwrap();
    let read = |detail| files::load_paths_with(std::slice::from_ref(&path), "dflt", None, detail).unwrap().into_objects();
    (read(PodDetail::Whole), read(PodDetail::Facts))
}

/// The same objects in the same order, pods managed by a workload as facts (equal to those of
/// the whole pod), everything else identical.
fn same(whole: &[Object], facts: &[Object]) -> usize {
    assert_eq!(whole.len(), facts.len());
    let mut reduced = 0;
    for (w, f) in whole.iter().zip(facts) {
        assert_eq!((&w.api_version, &w.kind, &w.namespace, &w.name, &w.origin), (&f.api_version, &f.kind, &f.namespace, &f.name, &f.origin));
        match &f.pod {
            Some(p) => {
                reduced += 1;
                assert_eq!(f.value, Value::Null);
                assert_eq!(**p, PodFacts::from_value(&w.value), "{}", w.object_ref());
                assert!(crate::workload::owner(w).is_some());
            }
            None => assert_eq!(w.value, f.value, "{}", w.object_ref()),
        }
    }
    reduced
}

const OWNED: &str = r#"{"metadata": {"name": "a-1", "labels": {"app": "a"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "a-7", "controller": true}]}, "spec": {"containers": [{"ports": [{"containerPort": 80}]}]}, "status": {"podIP": "10.0.0.1"}}"#;
const BARE: &str = r#"{"metadata": {"name": "solo", "namespace": "x"}, "spec": {"containers": [{"image": "postgres"}]}}"#;
const OPERATED: &str = r#"{"metadata": {"name": "op-1", "ownerReferences": [{"kind": "Cluster", "name": "pg", "controller": true}]}}"#;

fn with_kind(item: &str) -> String {
    format!(r#"{{"apiVersion": "v1", "kind": "Pod", {}"#, &item[1..])
}

#[test]
fn list_items_are_reduced_whatever_the_order_of_the_keys() {
    let items = [with_kind(OWNED), with_kind(BARE), with_kind(OPERATED)].join(", ");
    let typed = [OWNED, BARE, OPERATED].join(", ");
    let cases = [
        // As kubectl writes a list: items before kind.
        (format!(r#"{{"apiVersion": "v1", "items": [{items}], "kind": "List", "metadata": {{}}}}"#), 1),
        (format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{items}]}}"#), 1),
        // As the API server writes a typed list: kind first, items without kind.
        (format!(r#"{{"kind": "PodList", "apiVersion": "v1", "items": [{typed}]}}"#), 1),
        // A typed list with kind after the items: reduced after the document is read.
        (format!(r#"{{"items": [{typed}], "apiVersion": "v1", "kind": "PodList"}}"#), 1),
        // Several documents, and a single pod.
        (format!("{}\n{}\n{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{items}]}}", with_kind(OWNED), with_kind(BARE)), 2),
    ];
    for (text, owned) in cases {
        let (whole, facts) = both(&text);
        assert_eq!(same(&whole, &facts), owned, "{text}");
        assert!(facts.iter().any(|o| o.name == "solo" && o.pod.is_none()), "a bare pod is a workload: kept whole");
        assert!(facts.iter().any(|o| o.name == "op-1" && o.pod.is_none()), "a pod of an operator's resource is kept whole");
        assert!(facts.iter().filter(|o| o.name == "a-1").all(|o| o.namespace.as_deref() == Some("dflt")));
    }
}

#[test]
fn items_whose_kind_comes_after_their_body() {
    // Read as facts until the end of each item: the owned pod is taken, the bare pod and the
    // Service (read partly as facts) are built in a second pass; the other items stay as read.
    let kind_last = |item: &str, kind: &str| format!(r#"{}, "apiVersion": "v1", "kind": "{kind}"}}"#, &item[..item.len() - 1]);
    let items = [kind_last(OWNED, "Pod"), kind_last(BARE, "Pod"), kind_last(OWNED, "Service"), kind_last(OPERATED, "Pod")].join(", ");
    let text = format!(r#"{{"apiVersion": "v1", "items": [{items}], "kind": "List", "metadata": {{}}}}"#);
    let (whole, facts) = both(&text);
    assert_eq!(same(&whole, &facts), 1);
    assert_eq!(facts.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect::<Vec<_>>(), [("Pod", "a-1"), ("Pod", "solo"), ("Service", "a-1"), ("Pod", "op-1")]);
    // Only owned pods: one pass.
    let (whole, facts) = both(&format!(r#"{{"apiVersion": "v1", "items": [{}, {}], "kind": "List"}}"#, kind_last(OWNED, "Pod"), kind_last(OWNED, "Pod")));
    assert_eq!(same(&whole, &facts), 2);
}

#[test]
fn a_document_that_is_not_a_list_keeps_its_items() {
    let items = with_kind(OWNED);
    for text in [
        format!(r#"{{"apiVersion": "example.com/v1", "kind": "Bag", "metadata": {{"name": "b"}}, "items": [{items}]}}"#),
        format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{items}], "items": [{items}, {items}]}}"#),
    ] {
        let (whole, facts) = both(&text);
        same(&whole, &facts);
    }
    let (whole, facts) = both(&format!(r#"{{"apiVersion": "example.com/v1", "kind": "Bag", "metadata": {{"name": "b"}}, "items": [{items}]}}"#));
    assert_eq!(whole.len(), 1);
    assert_eq!(facts[0].value["items"][0]["metadata"]["name"], "a-1", "the item is still in the object");
}

#[test]
fn errors_are_the_same() {
    let text = format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{}, {{"kind": "Pod", "metadata": {{"name": "x"}}}}]}}"#, with_kind(OWNED));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.json");
    std::fs::write(&path, text).unwrap();
    let read = |detail| files::load_paths_with(std::slice::from_ref(&path), "d", None, detail).unwrap_err().to_string();
    assert_eq!(read(PodDetail::Whole), read(PodDetail::Facts));
    assert!(read(PodDetail::Facts).contains("items[1] (x) of the List is not a Kubernetes object: no `apiVersion`"));
}

// Property tests: documents of every shape read with pods as facts give what reading them whole
// and reducing afterwards gives (objects, facts, errors), whatever the order of the keys.

use proptest::prelude::*;

/// A JSON object written as text from its entries in this order (a key may come twice).
fn object_text(entries: &[(String, String)]) -> String {
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{}: {v}", Value::from(k.as_str()))).collect();
    format!("{{{}}}", body.join(", "))
}

/// Entries in any order, sometimes one of them given twice (with another value of the same
/// generator, so the last one decides).
fn entries(parts: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<Vec<(String, String)>> {
    let chosen: Vec<BoxedStrategy<Option<(String, String)>>> =
        parts.into_iter().map(|(k, v)| proptest::option::weighted(0.8, v.prop_map(move |v| (k.to_string(), v))).boxed()).collect();
    (chosen, any::<Option<prop::sample::Index>>(), leaf())
        .prop_flat_map(|(chosen, twice, extra)| {
            let mut e: Vec<(String, String)> = chosen.into_iter().flatten().collect();
            if let Some(i) = twice.filter(|_| !e.is_empty()) {
                let (k, _) = e[i.index(e.len())].clone();
                e.push((k, extra.clone()));
            }
            Just(e).prop_shuffle()
        })
        .boxed()
}

fn leaf() -> BoxedStrategy<String> {
    prop_oneof![
        Just("null".to_string()),
        Just("3".to_string()),
        Just("1.5".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        prop_oneof![Just("x"), Just("Pod"), Just("v1"), Just("ReplicaSet"), Just("Always")].prop_map(|s| format!("\"{s}\"")),
    ]
    .boxed()
}

fn text_of(choices: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![4 => prop::sample::select(choices).prop_map(|s| format!("\"{s}\"")), 1 => leaf()].boxed()
}

fn item() -> BoxedStrategy<String> {
    let owner = entries(vec![
        ("kind", text_of(&["ReplicaSet", "StatefulSet", "Node", "Cluster", "Job"])),
        ("name", text_of(&["r-1", "s"])),
        ("controller", prop_oneof![Just("true".to_string()), Just("false".to_string()), leaf()].boxed()),
        ("uid", leaf()),
    ])
    .prop_map(|e| object_text(&e));
    let owners = prop::collection::vec(owner, 0..3).prop_map(|o| format!("[{}]", o.join(", ")));
    let labels = prop::collection::vec((prop::sample::select(&["app", "tier", "pod-template-hash"][..]), leaf()), 0..3)
        .prop_map(|kv| object_text(&kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>()));
    let meta = entries(vec![
        ("name", text_of(&["a-1", "b-2"])),
        ("generateName", text_of(&["g-"])),
        ("namespace", text_of(&["ns1", "ns2"])),
        ("labels", prop_oneof![4 => labels, 1 => leaf()].boxed()),
        ("ownerReferences", prop_oneof![4 => owners, 1 => leaf()].boxed()),
    ])
    .prop_map(|e| object_text(&e));
    let spec = r#"{"containers": [{"name": "c", "env": [{"name": "A", "value": "é\n"}], "ports": [{"containerPort": 8080, "name": "http"}]}], "nodeName": "n"}"#;
    let status = r#"{"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}"#;
    let item = entries(vec![
        ("apiVersion", text_of(&["v1", "apps/v1"])),
        ("kind", text_of(&["Pod", "Service"])),
        ("metadata", prop_oneof![8 => meta, 1 => leaf()].boxed()),
        ("spec", prop_oneof![4 => Just(spec.to_string()), 1 => leaf()].boxed()),
        ("status", prop_oneof![4 => Just(status.to_string()), 1 => leaf()].boxed()),
    ])
    .prop_map(|e| object_text(&e));
    prop_oneof![9 => item, 1 => leaf()].boxed()
}

/// A document: a list (`List`, `PodList`, another kind with items) of items, keys in any order.
fn document() -> BoxedStrategy<String> {
    let items = prop::collection::vec(item(), 0..6).prop_map(|i| format!("[{}]", i.join(", ")));
    entries(vec![
        ("apiVersion", text_of(&["v1", "example.com/v1"])),
        ("kind", text_of(&["List", "PodList", "ServiceList", "Bag"])),
        ("metadata", Just(r#"{"name": "l", "resourceVersion": ""}"#.to_string()).boxed()),
        ("items", prop_oneof![6 => items, 1 => leaf()].boxed()),
    ])
    .prop_map(|e| object_text(&e))
    .boxed()
}

/// `text` read whole and with pods as facts: both fail with the same message, or give the same
/// objects (see [`same`]).
fn agree(text: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("in.json");
    std::fs::write(&path, text).unwrap();
    let read = |detail| files::load_paths_with(std::slice::from_ref(&path), "dflt", None, detail).map(|i| i.into_objects());
    match (read(PodDetail::Whole), read(PodDetail::Facts)) {
        (Ok(whole), Ok(facts)) => {
            same(&whole, &facts);
        }
        (Err(w), Err(f)) => prop_assert_eq!(w.to_string(), f.to_string()),
        (w, f) => prop_assert!(false, "{text}: whole {:?}, facts {:?}", w.map(|o| o.len()), f.map(|o| o.len())),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn facts_read_as_reducing_the_whole_read(docs in prop::collection::vec(document(), 1..3)) {
        agree(&docs.join("\n"))?;
    }

    /// Text that does not read as JSON, or reads only to a value the tree reader refuses (a number
    /// out of range, a lone surrogate): the same error at the same place either way.
    #[test]
    fn broken_text_fails_the_same(doc in document(), cut in any::<prop::sample::Index>(), bad in prop::sample::select(&["1e400", "\"\\ud800\"", "tru", "\"\\q\""][..])) {
        let mut end = cut.index(doc.len() + 1);
        while !doc.is_char_boundary(end) {
            end -= 1;
        }
        agree(&doc[..end])?;
        // A bad value in place of a value of the first item that has a spec.
        if let Some(at) = doc.find(r#""nodeName": "n""#) {
            let text = format!("{}\"nodeName\": {bad}{}", &doc[..at], &doc[at + r#""nodeName": "n""#.len()..]);
            agree(&text)?;
        }
    }
}
