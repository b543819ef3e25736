//! A JSON document read for an inventory that keeps pods as facts ([`PodDetail::Facts`]): the
//! items of a list that are pods managed by a workload are read straight into their facts
//! ([`PodFacts`]), so no JSON tree is built for them (most of a large cluster's bytes are such
//! pods in a `kubectl get pods -A -o json` list).
//!
//! The document is otherwise read exactly as [`super::read::Exact`] reads it. Whether an item is
//! taken is decided on all of it, as on its tree: its own `kind` and `apiVersion`, or for a typed
//! list (`PodList`) whose `kind` came before its `items`, the list's; its name; its controller.
//! While an item may still be taken, its `metadata`, `spec` and `status` are read as facts only;
//! once what was read says it is not (another kind, a bare pod), the rest is read as a tree. An
//! item read partly as facts and then not taken (its `kind` came after its body) is built in a
//! second pass over the document ([`Rebuild`]). Parts read as facts are checked as a tree read
//! checks them ([`super::read::Checked`]), so text fails at the same place with the same error.
//! When the document turns out not to be a list (an object with an `items` field) or has `items`
//! twice, it is read again as a plain value, so taking items early never changes what the
//! inventory holds (property tests in `facts_tests.rs`).

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::PodDetail;
use super::read::{Checked, Exact, ExactVisitor};
use crate::pod::{PodFacts, PodParts};

/// A pod item taken while reading: its place in `items`, its identity and its facts.
pub(super) struct TakenPod {
    pub index: usize,
    pub name: String,
    pub namespace: Option<String>,
    pub facts: PodFacts,
}

/// A document: its value (taken items left as `null` in its `items`), the items taken, whether
/// it must be read again as a plain value (`items` given twice), and whether its value must be
/// built again with [`Rebuild`] (an item read partly as facts was not taken).
pub(super) struct FactsDocument {
    pub value: Value,
    pub taken: Vec<TakenPod>,
    pub reread: bool,
    pub rebuild: bool,
}

impl<'de> Deserialize<'de> for FactsDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

fn plain(Exact(value): Exact) -> FactsDocument {
    FactsDocument { value, taken: Vec::new(), reread: false, rebuild: false }
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
        let mut rebuild = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                if items_seen {
                    reread = true;
                }
                items_seen = true;
                let seed = ItemsSeed { list_kind: kind.as_deref(), list_api_version: api_version.as_deref() };
                let (value, these, again) = map.next_value_seed(seed)?;
                taken = these;
                rebuild |= again;
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
        Ok(FactsDocument { value: Value::Object(exact), taken, reread, rebuild })
    }
}

/// The `items` of a document: a sequence's pods managed by a workload are taken. The value: the
/// items (those taken, and those to be built in a second pass, as `null`), the items taken, and
/// whether a second pass is needed.
struct ItemsSeed<'a> {
    list_kind: Option<&'a str>,
    list_api_version: Option<&'a str>,
}

/// What reading `items` gives: the items (`null` where taken or left for the second pass), the
/// pods taken, and whether some item must be read again as a tree (see [`Item::Again`]).
type Items = (Value, Vec<TakenPod>, bool);

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Items;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Items;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((Value::Bool(v), Vec::new(), false))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((ExactVisitor.visit_i64::<E>(v)?.0, Vec::new(), false))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((ExactVisitor.visit_u64::<E>(v)?.0, Vec::new(), false))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((ExactVisitor.visit_f64::<E>(v)?.0, Vec::new(), false))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Value::String(v.to_owned()), Vec::new(), false))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok((Value::String(v), Vec::new(), false))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new(), false))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, Vec::new(), false))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok((ExactVisitor.visit_map(map)?.0, Vec::new(), false))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut taken = Vec::new();
        let mut again = false;
        let seed = ItemSeed { list_kind: self.list_kind, list_api_version: self.list_api_version };
        while let Some(item) = seq.next_element_seed(seed)? {
            match item {
                Item::Tree(value) => items.push(value),
                Item::Taken { name, namespace, facts } => {
                    taken.push(TakenPod { index: items.len(), name, namespace, facts });
                    items.push(Value::Null);
                }
                Item::Again => {
                    again = true;
                    items.push(Value::Null);
                }
            }
        }
        items.shrink_to_fit();
        Ok((Value::Array(items), taken, again))
    }
}

/// One item as read: its tree, or a pod taken as facts, or neither: an item read partly as facts
/// that turned out not to be taken (its `kind` came after its body), whose tree the second pass
/// builds ([`Rebuild`]).
enum Item {
    Tree(Value),
    Taken { name: String, namespace: Option<String>, facts: PodFacts },
    Again,
}

/// An item of `items`. Each value of the item is read as facts (`metadata`, `spec`, `status`)
/// while the item may still be a pod [`PodDetail::keep`] reduces, else as a tree; the decision
/// is taken at the end of the item, on all of it, as [`take`] takes it on the tree.
#[derive(Clone, Copy)]
struct ItemSeed<'a> {
    list_kind: Option<&'a str>,
    list_api_version: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Item;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Item, E> {
        ExactVisitor.visit_bool(v).map(|e| Item::Tree(e.0))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Item, E> {
        ExactVisitor.visit_i64(v).map(|e| Item::Tree(e.0))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Item, E> {
        ExactVisitor.visit_u64(v).map(|e| Item::Tree(e.0))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Item, E> {
        ExactVisitor.visit_f64(v).map(|e| Item::Tree(e.0))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Item, E> {
        ExactVisitor.visit_str(v).map(|e| Item::Tree(e.0))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Item, E> {
        ExactVisitor.visit_string(v).map(|e| Item::Tree(e.0))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Item, E> {
        ExactVisitor.visit_unit().map(|e| Item::Tree(e.0))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Item, E> {
        ExactVisitor.visit_none().map(|e| Item::Tree(e.0))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        ExactVisitor.visit_seq(seq).map(|e| Item::Tree(e.0))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        let mut parts = PodParts::default();
        // The item's own `kind` and `apiVersion` (`Some(None)`: given, not a string).
        let (mut kind, mut api_version): (Option<Option<String>>, Option<Option<String>>) = (None, None);
        let (mut meta_seen, mut as_facts) = (false, false);
        while let Some(key) = map.next_key::<String>()? {
            let item_kind = self.list_kind.and_then(|k| k.strip_suffix("List")).filter(|k| !k.is_empty());
            let now_kind = match &kind {
                Some(k) => k.as_deref(),
                None => item_kind,
            };
            let now_version = match &api_version {
                Some(v) => v.as_deref(),
                None => item_kind.and(self.list_api_version),
            };
            // Whether what is read so far already says the item is not reduced (a later key
            // given twice may still change that: the decision at the end reads everything).
            let not_reduced = now_kind.is_some_and(|k| k != "Pod")
                || now_version.is_some_and(|v| v != "v1")
                || (meta_seen && !PodDetail::Facts.reduces("Pod", "v1", parts.owner()))
                || (meta_seen && parts.identity().0.is_none());
            if PodParts::is_part(&key) && !not_reduced {
                parts.read(&key, &mut map)?;
                as_facts = true;
                meta_seen |= key == "metadata";
                entries.push((key, Value::Null));
                continue;
            }
            let Exact(value) = map.next_value::<Exact>()?;
            match key.as_str() {
                "kind" => kind = Some(value.as_str().map(str::to_string)),
                "apiVersion" => api_version = Some(value.as_str().map(str::to_string)),
                k if PodParts::is_part(k) => {
                    parts.add_tree(k, &value);
                    meta_seen |= k == "metadata";
                }
                _ => {}
            }
            entries.push((key, value));
        }
        // As `take` decides on the tree.
        let item_kind = self.list_kind.and_then(|k| k.strip_suffix("List")).filter(|k| !k.is_empty());
        let kind = match kind {
            Some(k) => k,
            None => item_kind.map(str::to_string),
        };
        let api_version = match api_version {
            Some(v) => v,
            None => item_kind.and(self.list_api_version).map(str::to_string),
        };
        let (name, namespace) = parts.identity();
        if let (Some(kind), Some(api_version), Some(name)) = (kind, api_version, name)
            && PodDetail::Facts.reduces(&kind, &api_version, parts.owner())
        {
            let (name, namespace) = (name.to_string(), namespace.map(str::to_string));
            return Ok(Item::Taken { name, namespace, facts: parts.into_facts() });
        }
        if as_facts {
            return Ok(Item::Again);
        }
        let mut exact = Map::with_capacity(entries.len());
        for (k, v) in entries {
            exact.insert(k, v);
        }
        Ok(Item::Tree(Value::Object(exact)))
    }
}

/// The second pass over a document some of whose items were read partly as facts and not taken
/// ([`Item::Again`]): the document as [`Exact`] reads it, but the items at the `taken` indices
/// read through ([`Checked`]) and left `null`. The first pass read the same text with the same
/// checks, so this one does not fail.
pub(super) struct Rebuild<'a> {
    pub taken: &'a [TakenPod],
}

impl<'de> DeserializeSeed<'de> for Rebuild<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Rebuild<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == "items" { map.next_value_seed(RebuildItems { taken: self.taken })? } else { map.next_value::<Exact>()?.0 };
            entries.push((key, value));
        }
        let mut exact = Map::with_capacity(entries.len());
        for (k, v) in entries {
            exact.insert(k, v);
        }
        Ok(Value::Object(exact))
    }
}

struct RebuildItems<'a> {
    taken: &'a [TakenPod],
}

impl<'de> DeserializeSeed<'de> for RebuildItems<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RebuildItems<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut taken = self.taken.iter().map(|t| t.index).peekable();
        loop {
            if taken.next_if_eq(&items.len()).is_some() {
                if seq.next_element::<Checked>()?.is_none() {
                    break;
                }
                items.push(Value::Null);
            } else {
                match seq.next_element::<Exact>()? {
                    Some(Exact(v)) => items.push(v),
                    None => break,
                }
            }
        }
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }
}

#[cfg(test)]
#[path = "facts_tests.rs"]
mod tests;
