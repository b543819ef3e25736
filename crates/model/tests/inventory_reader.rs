//! The inventory reader on every manifest fixture of the repository: whatever form the same
//! objects are written in (YAML documents, a JSON stream, typed lists such as `PodList` in JSON
//! and in YAML, one `List`), the inventory read back is the same objects with the same content,
//! and the JSON reader gives what `serde_json`'s own parser gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshmove_model::inventory::{Object, load_paths, load_str};
use meshmove_model::yaml::to_yaml_string;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `*.yaml` and `*.json` under the test fixture folders.
fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "json")) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("tests/e2e/fixtures"), &mut out);
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        walk(&krate.unwrap().path().join("tests/fixtures"), &mut out);
    }
    out
}

/// Each object as (apiVersion, kind, namespace, name, value).
fn read_back(objects: &[Object]) -> Vec<(String, String, Option<String>, String, Value)> {
    objects.iter().map(|o| (o.api_version.clone(), o.kind.clone(), o.namespace.clone(), o.name.clone(), o.value.clone())).collect()
}

/// The objects grouped as typed lists (`<Kind>List`, items without `kind` and `apiVersion`, as
/// the API server's list calls return them), in the order each kind first appears.
fn typed_lists(objects: &[Object]) -> Vec<Value> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut items: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for o in objects {
        let key = (o.api_version.clone(), o.kind.clone());
        if !items.contains_key(&key) {
            order.push(key.clone());
        }
        let mut v = o.value.clone();
        let map = v.as_object_mut().unwrap();
        map.shift_remove("kind");
        map.shift_remove("apiVersion");
        items.entry(key).or_default().push(v);
    }
    order
        .into_iter()
        .map(|key| {
            let list_items = items.remove(&key).unwrap();
            json!({"apiVersion": key.0, "kind": format!("{}List", key.1), "metadata": {"resourceVersion": "1"}, "items": list_items})
        })
        .collect()
}

/// Objects in the same order, with the same identity and content (maps compare as maps: the
/// kind a list gives its items comes at the end of the item).
fn assert_same(what: &str, expected: &[Object], got: &[Object]) {
    assert_eq!(read_back(expected), read_back(got), "{what}");
}

#[test]
fn every_fixture_reads_back_the_same_in_every_form() {
    let mut checked = 0;
    for path in fixtures() {
        let shown = path.display().to_string();
        // Fixtures that are meant not to load (broken input cases) are not this test's subject.
        let Ok(inventory) = load_paths(std::slice::from_ref(&path), "default", None) else { continue };
        let objects = inventory.objects();
        assert!(!objects.is_empty(), "{shown}");
        // Lists in the fixture are read as their items: write the items themselves.
        let stream: String = objects.iter().map(|o| serde_json::to_string_pretty(&o.value).unwrap() + "\n").collect();
        assert_same(&format!("{shown} as a JSON stream"), objects, &load_str(&stream, Some(Path::new("s.json")), "default").unwrap());

        // The JSON reader's values are serde_json's values, document for document.
        let reference: Vec<Value> = serde_json::Deserializer::from_str(&stream).into_iter::<Value>().map(Result::unwrap).collect();
        let values: Vec<Value> = load_str(&stream, Some(Path::new("s.json")), "default").unwrap().into_iter().map(|o| o.value).collect();
        assert_eq!(values, reference, "{shown}");
        assert_eq!(
            values.iter().map(|v| serde_json::to_string(v).unwrap()).collect::<Vec<_>>(),
            reference.iter().map(|v| serde_json::to_string(v).unwrap()).collect::<Vec<_>>(),
            "{shown}: same key order"
        );

        let lists = typed_lists(objects);
        let json_lists: String = lists.iter().map(|l| serde_json::to_string(l).unwrap() + "\n").collect();
        assert_same(&format!("{shown} as typed JSON lists"), &by_kind(objects), &load_str(&json_lists, Some(Path::new("l.json")), "default").unwrap());
        let yaml_lists: String = lists.iter().map(|l| format!("---\n{}", to_yaml_string(l))).collect();
        assert_same(&format!("{shown} as typed YAML lists"), &by_kind(objects), &load_str(&yaml_lists, Some(Path::new("l.yaml")), "default").unwrap());

        let one_list = json!({"apiVersion": "v1", "kind": "List", "items": objects.iter().map(|o| o.value.clone()).collect::<Vec<_>>()});
        assert_same(&format!("{shown} as one List"), objects, &load_str(&to_yaml_string(&one_list), None, "default").unwrap());
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} fixtures read");
}

/// The objects in the order [`typed_lists`] writes them: grouped by kind, kinds in order of
/// first appearance.
fn by_kind(objects: &[Object]) -> Vec<Object> {
    let mut kinds: Vec<(&str, &str)> = Vec::new();
    for o in objects {
        if !kinds.contains(&(o.api_version.as_str(), o.kind.as_str())) {
            kinds.push((&o.api_version, &o.kind));
        }
    }
    kinds.iter().flat_map(|k| objects.iter().filter(move |o| (o.api_version.as_str(), o.kind.as_str()) == *k)).cloned().collect()
}

#[test]
fn errors_name_the_item_of_a_typed_list_in_json_and_yaml() {
    let list = json!({"apiVersion": "v1", "kind": "PodList", "items": [
        {"metadata": {"name": "a", "namespace": "shop"}},
        {"metadata": {"name": "b", "namespace": "shop"}},
        {"metadata": {"namespace": "shop"}, "spec": {}},
    ]});
    let json = serde_json::to_string_pretty(&list).unwrap();
    let err = load_str(&format!("{{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {{\"name\": \"shop\"}}}}\n{json}"), Some(Path::new("pods.json")), "default")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "pods.json:2: document 2, items[2] of the PodList is not a Kubernetes object: no `metadata.name`");
    let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{}", to_yaml_string(&list));
    let err = load_str(&yaml, Some(Path::new("pods.yaml")), "default").unwrap_err().to_string();
    assert_eq!(err, "pods.yaml:4: document 2, items[2] of the PodList is not a Kubernetes object: no `metadata.name`");

    let not_a_map = json!({"apiVersion": "v1", "kind": "ServiceList", "items": [{"metadata": {"name": "db"}}, "db"]});
    let err = load_str(&not_a_map.to_string(), Some(Path::new("s.json")), "default").unwrap_err().to_string();
    assert_eq!(err, "s.json:1: document 1, items[1] of the ServiceList is not a Kubernetes object: not a mapping");
    let err = load_str("{\"apiVersion\": \"v1\", \"kind\": \"PodList\", \"items\": [{\"metadata\": {\"name\": \"a\"}},\n  {\"metadata\": ", Some(Path::new("cut.json")), "default")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cut.json:1: invalid JSON: EOF while parsing"), "{err}");
}
