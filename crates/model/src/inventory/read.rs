//! The one reader of Kubernetes JSON into inventory objects, shared by every source: `-f` files
//! and stdin ([`super::files`]) and the pages of a live LIST (`meshmove-kube`'s cluster loader).
//!
//! * **Exact-size values** ([`Exact`]): every map and array of a read object is allocated at its
//!   final size. `serde_json::Value`'s own parser grows them by doubling, which leaves about a
//!   third of their room spare and rehashes at each growth step; an inventory keeps every one of
//!   them, and on a large cluster these trees are most of a run's memory (BENCHMARKS.md).
//! * **Documents one after another** ([`json_documents`]): a file or stdin holding one JSON value
//!   or a stream of them, each with the line it starts on (counted once over the text, not again
//!   from the start for each document).
//! * **List items completed the same way** ([`complete_item`]): an item of a typed list
//!   (`PodList`, or a LIST page of pods) gets the list's item kind and `apiVersion` when it has
//!   none, as the API server's list types leave them out
//!   (<https://kubernetes.io/docs/reference/using-api/api-concepts/#collections>).

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value whose maps and arrays are allocated at their exact size: the same keys in the
/// same order and the same values as `serde_json::Value` parses (for duplicate keys too: the last
/// value, at the first key's place).
pub struct Exact(pub Value);

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExactVisitor)
    }
}

pub(crate) struct ExactVisitor;

impl<'de> Visitor<'de> for ExactVisitor {
    type Value = Exact;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Exact, E> {
        Ok(Exact(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Exact, E> {
        Ok(Exact(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Exact, E> {
        Ok(Exact(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Exact, E> {
        Ok(Exact(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Exact, E> {
        Ok(Exact(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Exact, E> {
        Ok(Exact(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Exact, E> {
        Ok(Exact(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Exact, E> {
        Ok(Exact(Value::Null))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Exact, D::Error> {
        Exact::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Exact, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Exact(v)) = seq.next_element()? {
            items.push(v);
        }
        items.shrink_to_fit();
        Ok(Exact(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Exact, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some((k, Exact(v))) = map.next_entry::<String, Exact>()? {
            entries.push((k, v));
        }
        let mut exact = Map::with_capacity(entries.len());
        for (k, v) in entries {
            exact.insert(k, v);
        }
        Ok(Exact(Value::Object(exact)))
    }
}

/// A JSON value read through and dropped, checked as reading it as an [`Exact`] value checks it
/// (numbers parsed, strings and their escapes decoded) without building anything: where `Exact`
/// fails, at the same place with the same error, so does this. (`serde::de::IgnoredAny` checks
/// less: it accepts a number out of range and a lone surrogate escape.)
pub(crate) struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_none<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
        Checked::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// One JSON document of a text: its value, or where it stopped parsing. `line` is the 1-based
/// line on which the document starts.
pub struct JsonDocument<T = Value> {
    pub line: usize,
    pub value: Result<T, serde_json::Error>,
    /// Where the document is in the text (byte offsets).
    pub span: std::ops::Range<usize>,
}

/// The JSON values of `text` one after the other (a single object, or a stream such as
/// `kubectl get -o json` outputs concatenated), read as [`Exact`] values. Stops after the first
/// document that does not parse.
pub fn json_documents(text: &str) -> impl Iterator<Item = JsonDocument> + '_ {
    json_documents_as::<Exact>(text).map(|d| JsonDocument { line: d.line, value: d.value.map(|Exact(v)| v), span: d.span })
}

/// [`json_documents`], each document read as `T`.
pub fn json_documents_as<'t, T: Deserialize<'t> + 't>(text: &'t str) -> impl Iterator<Item = JsonDocument<T>> + 't {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<T>();
    let (mut counted, mut line, mut failed) = (0usize, 1usize, false);
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let end = stream.byte_offset();
        let rest = &text[end..];
        let start = end + rest.len() - rest.trim_start().len();
        line += memchr::memchr_iter(b'\n', &text.as_bytes()[counted..start]).count();
        counted = start;
        let next = stream.next()?;
        failed = next.is_err();
        Some(JsonDocument { line, value: next, span: start..stream.byte_offset() })
    })
}

/// Complete an item of a typed list as the API would have written it alone: `kind` and
/// `apiVersion` from the list where the item has none (an item's own win). With
/// `drop_field_records`, `metadata.managedFields` goes too: field ownership records are about as
/// large as the rest of an object on a real cluster and nothing that reads an inventory uses
/// them (writes go through server-side apply, which reads the live object again).
pub fn complete_item(map: &mut Map<String, Value>, kind: &str, api_version: &str, drop_field_records: bool) {
    if !map.contains_key("apiVersion") {
        map.insert("apiVersion".into(), Value::String(api_version.to_string()));
    }
    if !map.contains_key("kind") {
        map.insert("kind".into(), Value::String(kind.to_string()));
    }
    if drop_field_records && let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_values_are_the_values_serde_json_parses() {
        let text = r#"{"z": 1, "a": [3, {"y": null, "b": "x\u00e9"}, []], "m": {}, "k": [true, 2.5, -7, 18446744073709551615], "d": {"k": 1, "k": 2}}"#;
        let Exact(v) = serde_json::from_str(text).unwrap();
        let reference: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v, reference);
        assert_eq!(serde_json::to_string(&v).unwrap(), serde_json::to_string(&reference).unwrap(), "same key order");
        let Value::Object(m) = &v else { panic!() };
        assert_eq!(m.keys().collect::<Vec<_>>(), ["z", "a", "m", "k", "d"]);
    }

    #[test]
    fn arrays_are_allocated_at_their_size() {
        let keys: Vec<String> = (0..37).map(|i| format!("\"k{i}\": [{}]", "1,".repeat(i) + "0")).collect();
        let text = format!("{{{}}}", keys.join(", "));
        let Exact(v) = serde_json::from_str(&text).unwrap();
        let Value::Object(m) = &v else { panic!() };
        assert_eq!(m.len(), 37);
        for (i, item) in m.values().enumerate() {
            let Value::Array(a) = item else { panic!() };
            assert_eq!((a.len(), a.capacity()), (i + 1, i + 1));
        }
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, parsed);
    }

    #[test]
    fn documents_come_with_the_line_they_start_on() {
        let text = "{\"a\": 1}\n\n  {\n\"b\": [\n2]}{\"c\": 3}\n[4]\n";
        let docs: Vec<(usize, Value)> = json_documents(text).map(|d| (d.line, d.value.unwrap())).collect();
        let expected: Vec<(usize, Value)> =
            vec![(1, serde_json::json!({"a": 1})), (3, serde_json::json!({"b": [2]})), (5, serde_json::json!({"c": 3})), (6, serde_json::json!([4]))];
        assert_eq!(docs, expected);
        let broken: Vec<JsonDocument> = json_documents("{\"a\": 1}\n{\"b\": \n{\"c\": 3}").collect();
        assert_eq!(broken.len(), 2, "nothing after the first error");
        assert_eq!(broken[1].line, 2);
        assert!(broken[1].value.is_err());
        assert_eq!(json_documents("  \n").count(), 0);
    }

    #[test]
    fn items_get_the_list_kind_and_lose_field_records_only_when_asked() {
        let item = || {
            let v = serde_json::json!({"metadata": {"name": "a", "managedFields": [{"manager": "m"}]}, "spec": {}});
            let Value::Object(m) = v else { panic!() };
            m
        };
        let mut kept = item();
        complete_item(&mut kept, "Pod", "v1", false);
        assert_eq!((kept["kind"].as_str(), kept["apiVersion"].as_str()), (Some("Pod"), Some("v1")));
        assert!(kept["metadata"].get("managedFields").is_some());
        let mut dropped = item();
        complete_item(&mut dropped, "Pod", "v1", true);
        assert!(dropped["metadata"].get("managedFields").is_none());
        let mut own = serde_json::Map::new();
        own.insert("kind".into(), "Namespace".into());
        complete_item(&mut own, "Pod", "v1", true);
        assert_eq!(own["kind"], "Namespace", "an item's own kind wins");
    }
}
