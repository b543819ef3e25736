//! A JSON document read for an inventory that keeps pods as facts ([`PodDetail::Facts`]): the
//! items of a list that are pods managed by a workload are reduced to their facts as soon as each
//! is read, so the JSON tree of a whole `kubectl get pods -A -o json` list (most of a large
//! cluster's bytes) is never built at once.
//!
//! The document is otherwise read exactly as [`super::read::Exact`] reads it. An item is taken
//! only when its kind and `apiVersion` are known when it is read: its own, or, for a typed list
//! (`PodList`) whose `kind` came before its `items`, the list's; the others stay JSON and are
//! reduced after the document, as every other object is ([`PodDetail::keep`]). When the document
//! turns out not to be a list (an object with an `items` field) or has `items` twice, it is read
//! again as a plain value, so taking items early never changes what the inventory holds.

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::PodDetail;
use super::read::{Exact, ExactVisitor};
use crate::pod::PodFacts;

/// A pod item taken while reading: its place in `items`, its identity and its facts.
pub(super) struct TakenPod {
    pub index: usize,
    pub name: String,
    pub namespace: Option<String>,
    pub facts: PodFacts,
}

/// A document: its value (taken items left as `null` in its `items`), the items taken, and
/// whether it must be read again as a plain value (`items` given twice).
pub(super) struct FactsDocument {
    pub value: Value,
    pub taken: Vec<TakenPod>,
    pub reread: bool,
}

impl<'de> Deserialize<'de> for FactsDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

fn plain(Exact(value): Exact) -> FactsDocument {
    FactsDocument { value, taken: Vec::new(), reread: false }
}

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = FactsDocument;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<FactsDocument, E> {
        ExactVisitor.visit_bool(v).map(plain)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FactsDocument, E> {
        ExactVisitor.visit_i64(v).map(plain)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FactsDocument, E> {
        ExactVisitor.visit_u64(v).map(plain)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<FactsDocument, E> {
        ExactVisitor.visit_f64(v).map(plain)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FactsDocument, E> {
        ExactVisitor.visit_str(v).map(plain)
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<FactsDocument, E> {
        ExactVisitor.visit_string(v).map(plain)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<FactsDocument, E> {
        ExactVisitor.visit_unit().map(plain)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<FactsDocument, E> {
        ExactVisitor.visit_none().map(plain)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<FactsDocument, D::Error> {
        FactsDocument::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<FactsDocument, A::Error> {
        ExactVisitor.visit_seq(seq).map(plain)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FactsDocument, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        let (mut kind, mut api_version): (Option<String>, Option<String>) = (None, None);
        let mut taken = Vec::new();
        let mut items_seen = false;
        let mut reread = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                if items_seen {
                    reread = true;
                }
                items_seen = true;
                let seed = ItemsSeed { list_kind: kind.as_deref(), list_api_version: api_version.as_deref() };
                let (value, these) = map.next_value_seed(seed)?;
                taken = these;
                entries.push((key, value));
                continue;
            }
            let Exact(value) = map.next_value::<Exact>()?;
            match key.as_str() {
                "kind" => kind = value.as_str().map(str::to_string),
                "apiVersion" => api_version = value.as_str().map(str::to_string),
                _ => {}
            }
            entries.push((key, value));
        }
        let mut exact = Map::with_capacity(entries.len());
        for (k, v) in entries {
            exact.insert(k, v);
        }
        Ok(FactsDocument { value: Value::Object(exact), taken, reread })
    }
}

/// The `items` of a document: a sequence's pods managed by a workload are taken.
struct ItemsSeed<'a> {
    list_kind: Option<&'a str>,
    list_api_version: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = (Value, Vec<TakenPod>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = (Value, Vec<TakenPod>);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((Value::Bool(v), Vec::new()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((ExactVisitor.visit_i64::<E>(v)?.0, Vec::new()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((ExactVisitor.visit_u64::<E>(v)?.0, Vec::new()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((ExactVisitor.visit_f64::<E>(v)?.0, Vec::new()))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Value::String(v.to_owned()), Vec::new()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok((Value::String(v), Vec::new()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok((ExactVisitor.visit_map(map)?.0, Vec::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut taken = Vec::new();
        while let Some(Exact(item)) = seq.next_element::<Exact>()? {
            match take(&item, self.list_kind, self.list_api_version) {
                Some((name, namespace)) => {
                    taken.push(TakenPod { index: items.len(), name, namespace, facts: PodFacts::from_value(&item) });
                    items.push(Value::Null);
                }
                None => items.push(item),
            }
        }
        items.shrink_to_fit();
        Ok((Value::Array(items), taken))
    }
}

/// Whether a list item is a pod [`PodDetail::keep`] reduces to facts, as the item will be once
/// completed from its list: its name and namespace.
fn take(item: &Value, list_kind: Option<&str>, list_api_version: Option<&str>) -> Option<(String, Option<String>)> {
    let map = item.as_object()?;
    let item_kind = list_kind.and_then(|k| k.strip_suffix("List")).filter(|k| !k.is_empty());
    let kind = match map.get("kind") {
        Some(k) => k.as_str()?,
        None => item_kind?,
    };
    let api_version = match map.get("apiVersion") {
        Some(v) => v.as_str()?,
        None => item_kind.and(list_api_version)?,
    };
    let (name, namespace) = super::files::identity(item);
    let name = name?.to_string();
    if !PodDetail::Facts.reduces(kind, api_version, crate::workload::owner_of_value(item)) {
        return None;
    }
    Some((name, namespace.map(str::to_string)))
}

#[cfg(test)]
mod tests {
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
}
