//! The fields of a pod (or a pod template) that the reachability engine's model reads, as one
//! typed shape ([`PodFacts`]): labels, annotations, the controller owner, the container ports
//! (main containers and native sidecars), host networking, the service account, the phase and
//! the pod IPs.
//!
//! It is read one way, leniently, from JSON text or from a JSON tree: every field means exactly
//! what reading the JSON tree field by field means (a value of the wrong type counts as absent; a
//! label that is not a string is left out; for a key given twice, the last value). The inventory
//! can keep a pod as these facts alone instead of its whole JSON tree
//! ([`crate::inventory::PodDetail::Facts`]): pods are most of a cluster's objects, and the engine
//! reads no more of a pod than this.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::inventory::Object;
use crate::inventory::read::Checked;

/// What the engine reads of a pod or pod template. Build with [`PodFacts::of`] (an inventory
/// object) or [`PodFacts::from_value`] (a pod or template as JSON), or deserialize from JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFacts {
    labels: Box<[(Box<str>, Box<str>)]>,
    annotations: Box<[(Box<str>, Box<str>)]>,
    owner_refs: Box<[OwnerRef]>,
    ports: Box<[PortFacts]>,
    host_network: bool,
    service_account: Option<Box<str>>,
    phase: Option<Box<str>>,
    ips: Box<[IpAddr]>,
}

/// One `metadata.ownerReferences` entry: its kind and name when they are strings, and whether
/// `controller` is `true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OwnerRef {
    kind: Option<Box<str>>,
    name: Option<Box<str>>,
    controller: bool,
}

/// A container port as written: `containerPort` as given (any JSON value; `null` when absent),
/// and `name` and `protocol` when they are strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFacts {
    pub container_port: Value,
    pub name: Option<Box<str>>,
    pub protocol: Option<Box<str>>,
}

impl PodFacts {
    /// The facts of an inventory object: kept by the inventory for a pod read as
    /// [`crate::inventory::PodDetail::Facts`], else read from its JSON tree.
    pub fn of(object: &Object) -> Cow<'_, PodFacts> {
        match &object.pod {
            Some(facts) => Cow::Borrowed(facts),
            None => Cow::Owned(PodFacts::from_value(&object.value)),
        }
    }

    /// The facts of a pod or pod template (`metadata`, `spec`, `status`) as JSON.
    pub fn from_value(value: &Value) -> PodFacts {
        // The reader accepts any JSON value: reading a tree cannot fail.
        PodFacts::deserialize(value).unwrap_or_default()
    }

    /// `metadata.labels` with string values, sorted by key.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        find(&self.labels, key)
    }

    /// `metadata.annotations` with string values, sorted by key.
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.annotations.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        find(&self.annotations, key)
    }

    /// The labels as a map, as [`crate::workload::string_map`] reads them from JSON.
    pub fn label_map(&self) -> BTreeMap<String, String> {
        self.labels().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub fn annotation_map(&self) -> BTreeMap<String, String> {
        self.annotations().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The controller owner (kind, name), chosen as [`crate::workload::owner`] chooses it.
    pub fn owner(&self) -> Option<(&str, &str)> {
        crate::workload::pick_owner(self.owner_refs.iter().map(|r| (r.kind.as_deref(), r.name.as_deref(), r.controller)))
    }

    /// The ports of the main containers, then those of native sidecars (init containers with
    /// `restartPolicy: Always`); other init containers have exited before the pod serves.
    pub fn ports(&self) -> &[PortFacts] {
        &self.ports
    }

    /// `spec.hostNetwork` (`false` unless it is `true`).
    pub fn host_network(&self) -> bool {
        self.host_network
    }

    /// `spec.serviceAccountName` (or the deprecated `serviceAccount` when the first is absent),
    /// when it is a non-empty string.
    pub fn service_account(&self) -> Option<&str> {
        self.service_account.as_deref()
    }

    /// `status.phase`, when it is a string.
    pub fn phase(&self) -> Option<&str> {
        self.phase.as_deref()
    }

    /// `status.podIP`, then the `ip` of each `status.podIPs` entry: those that parse as
    /// addresses, once each, in that order.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }
}

fn find<'a>(pairs: &'a [(Box<str>, Box<str>)], key: &str) -> Option<&'a str> {
    pairs.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &*pairs[i].1)
}

// The lenient reader. Each part reads a JSON mapping and takes any other value as absent; keys
// it does not read are read through without building anything, and checked as reading them into
// a JSON tree checks them (`Checked`): text that would not read as a tree does not read as facts.

/// Keys the reader looks at, matched without allocating.
fn known_key(key: &str) -> Option<&'static str> {
    const KEYS: &[&str] = &[
        "metadata", "spec", "status", "labels", "annotations", "ownerReferences", "kind", "name", "controller",
        "containers", "initContainers", "ports", "restartPolicy", "containerPort", "protocol", "hostNetwork",
        "serviceAccountName", "serviceAccount", "phase", "podIP", "podIPs", "ip", "namespace", "generateName",
    ];
    KEYS.iter().find(|k| **k == key).copied()
}

struct Key(Option<&'static str>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(known_key(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A part read from a mapping, entry by entry.
trait FromMap: Default {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error>;
}

/// Any JSON value; a mapping is read as `T`, anything else is `T::default()`.
struct MapOr<T>(T);

/// Implements the visitor methods of JSON values other than mappings by producing `$other`
/// (sequences and mappings are read through and dropped).
macro_rules! other_values {
    ($other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

macro_rules! drain_seq {
    ($other:expr) => {
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok($other)
        }
    };
}

macro_rules! drain_map {
    ($other:expr) => {
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            while map.next_entry::<Checked, Checked>()?.is_some() {}
            Ok($other)
        }
    };
}

macro_rules! drain_str {
    ($other:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

impl<'de, T: FromMap> Deserialize<'de> for MapOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromMap> Visitor<'de> for V<T> {
            type Value = MapOr<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            other_values!(MapOr(T::default()));
            drain_seq!(MapOr(T::default()));
            drain_str!(MapOr(T::default()));
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                MapOr::deserialize(d)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut t = T::default();
                while let Some(Key(key)) = map.next_key::<Key>()? {
                    match key {
                        Some(key) => t.entry(key, &mut map)?,
                        None => {
                            map.next_value::<Checked>()?;
                        }
                    }
                }
                Ok(MapOr(t))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Any JSON value, kept when it is a string.
struct Str(Option<Box<str>>);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            other_values!(Str(None));
            drain_seq!(Str(None));
            drain_map!(Str(None));
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Str::deserialize(d)
            }
            fn visit_str<E>(self, v: &str) -> Result<Str, E> {
                Ok(Str(Some(v.into())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str, E> {
                Ok(Str(Some(v.into_boxed_str())))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value, kept when it is a boolean.
struct Flag(Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_unit<E>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_none<E>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            drain_seq!(Flag(None));
            drain_map!(Flag(None));
            drain_str!(Flag(None));
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Flag::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value; each element of a sequence read as `T`, anything else is no elements.
struct SeqOr<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SeqOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = SeqOr<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            other_values!(SeqOr(Vec::new()));
            drain_map!(SeqOr(Vec::new()));
            drain_str!(SeqOr(Vec::new()));
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                SeqOr::deserialize(d)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<T>()? {
                    items.push(item);
                }
                Ok(SeqOr(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A mapping of strings as [`crate::workload::string_map`] reads it: for a key given twice the
/// last value, entries whose value is not a string left out; sorted by key.
struct StringMap(Box<[(Box<str>, Box<str>)]>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            other_values!(StringMap(Box::default()));
            drain_seq!(StringMap(Box::default()));
            drain_str!(StringMap(Box::default()));
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                StringMap::deserialize(d)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut entries: Vec<(Box<str>, Option<Box<str>>)> = Vec::new();
                while let Some((k, Str(v))) = map.next_entry::<Box<str>, Str>()? {
                    entries.push((k, v));
                }
                // Sorted by key, the last of equal keys kept (a stable sort keeps their order).
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(entries.len());
                let mut iter = entries.into_iter().peekable();
                while let Some((k, v)) = iter.next() {
                    if iter.peek().is_some_and(|(next, _)| *next == k) {
                        continue;
                    }
                    if let Some(v) = v {
                        out.push((k, v));
                    }
                }
                Ok(StringMap(out.into_boxed_slice()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value, kept as it is (`containerPort`: reported as written when it is not a port).
struct Any(Value);

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Any(crate::inventory::read::Exact::deserialize(d)?.0))
    }
}

#[derive(Default)]
struct Top {
    meta: Meta,
    spec: Spec,
    status: Status,
}

impl FromMap for Top {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "metadata" => self.meta = map.next_value::<MapOr<Meta>>()?.0,
            "spec" => self.spec = map.next_value::<MapOr<Spec>>()?.0,
            "status" => self.status = map.next_value::<MapOr<Status>>()?.0,
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Meta {
    labels: Box<[(Box<str>, Box<str>)]>,
    annotations: Box<[(Box<str>, Box<str>)]>,
    owner_refs: Vec<OwnerRef>,
    /// `name` and `generateName`: `None` when absent, `Some(None)` when not a string.
    name: Option<Option<Box<str>>>,
    generate_name: Option<Option<Box<str>>>,
    namespace: Option<Box<str>>,
}

impl FromMap for Meta {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "labels" => self.labels = map.next_value::<StringMap>()?.0,
            "annotations" => self.annotations = map.next_value::<StringMap>()?.0,
            "ownerReferences" => self.owner_refs = map.next_value::<SeqOr<MapOr<OwnerRef>>>()?.0.into_iter().map(|r| r.0).collect(),
            "name" => self.name = Some(map.next_value::<Str>()?.0),
            "generateName" => self.generate_name = Some(map.next_value::<Str>()?.0),
            "namespace" => self.namespace = map.next_value::<Str>()?.0,
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

impl FromMap for OwnerRef {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "kind" => self.kind = map.next_value::<Str>()?.0,
            "name" => self.name = map.next_value::<Str>()?.0,
            "controller" => self.controller = map.next_value::<Flag>()?.0 == Some(true),
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Spec {
    containers: Vec<Container>,
    init_containers: Vec<Container>,
    host_network: bool,
    /// `serviceAccountName` and `serviceAccount`: `None` when absent, `Some(None)` when not a
    /// string.
    service_account_name: Option<Option<Box<str>>>,
    service_account: Option<Option<Box<str>>>,
}

impl FromMap for Spec {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        let containers = |v: SeqOr<MapOr<Container>>| v.0.into_iter().map(|c| c.0).collect();
        match key {
            "containers" => self.containers = containers(map.next_value()?),
            "initContainers" => self.init_containers = containers(map.next_value()?),
            "hostNetwork" => self.host_network = map.next_value::<Flag>()?.0 == Some(true),
            "serviceAccountName" => self.service_account_name = Some(map.next_value::<Str>()?.0),
            "serviceAccount" => self.service_account = Some(map.next_value::<Str>()?.0),
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Container {
    ports: Vec<PortFacts>,
    always: bool,
}

impl FromMap for Container {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "ports" => self.ports = map.next_value::<SeqOr<MapOr<PortFacts>>>()?.0.into_iter().map(|p| p.0).collect(),
            "restartPolicy" => self.always = map.next_value::<Str>()?.0.as_deref() == Some("Always"),
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

impl Default for PortFacts {
    fn default() -> Self {
        PortFacts { container_port: Value::Null, name: None, protocol: None }
    }
}

impl FromMap for PortFacts {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "containerPort" => self.container_port = map.next_value::<Any>()?.0,
            "name" => self.name = map.next_value::<Str>()?.0,
            "protocol" => self.protocol = map.next_value::<Str>()?.0,
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Status {
    phase: Option<Box<str>>,
    pod_ip: Option<Box<str>>,
    pod_ips: Vec<Option<Box<str>>>,
}

#[derive(Default)]
struct PodIp(Option<Box<str>>);

impl FromMap for PodIp {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "ip" => self.0 = map.next_value::<Str>()?.0,
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

impl FromMap for Status {
    fn entry<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "phase" => self.phase = map.next_value::<Str>()?.0,
            "podIP" => self.pod_ip = map.next_value::<Str>()?.0,
            "podIPs" => self.pod_ips = map.next_value::<SeqOr<MapOr<PodIp>>>()?.0.into_iter().map(|p| p.0 .0).collect(),
            _ => {
                map.next_value::<Checked>()?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for PodFacts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MapOr::<Top>::deserialize(d)?.0.into_facts())
    }
}

/// A pod read part by part from its mapping, for a reader that learns only along the way whether
/// it keeps the pod as facts (`inventory::facts`): `metadata`, `spec` and `status` read as facts
/// ([`PodParts::read`]) or taken from a JSON tree read for them ([`PodParts::add_tree`]), in the
/// order of the keys (for a key given twice, the last value).
#[derive(Default)]
pub(crate) struct PodParts(Top);

impl PodParts {
    /// Whether `key` is a part the facts come from.
    pub(crate) fn is_part(key: &str) -> bool {
        matches!(key, "metadata" | "spec" | "status")
    }

    /// Read the value of `key` (one of [`PodParts::is_part`]) as facts.
    pub(crate) fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match known_key(key) {
            Some(key) => self.0.entry(key, map),
            None => map.next_value::<Checked>().map(drop),
        }
    }

    /// Take the part `key` from its value read as a JSON tree.
    pub(crate) fn add_tree(&mut self, key: &str, value: &Value) {
        // The reader accepts any JSON value: reading a tree cannot fail.
        match key {
            "metadata" => self.0.meta = MapOr::<Meta>::deserialize(value).map(|m| m.0).unwrap_or_default(),
            "spec" => self.0.spec = MapOr::<Spec>::deserialize(value).map(|m| m.0).unwrap_or_default(),
            "status" => self.0.status = MapOr::<Status>::deserialize(value).map(|m| m.0).unwrap_or_default(),
            _ => {}
        }
    }

    /// The controller owner, as [`crate::workload::owner_of_value`] reads it from the tree.
    pub(crate) fn owner(&self) -> Option<(&str, &str)> {
        crate::workload::pick_owner(self.0.meta.owner_refs.iter().map(|r| (r.kind.as_deref(), r.name.as_deref(), r.controller)))
    }

    /// The name and namespace, as `inventory::files::identity` reads them from the tree
    /// (`metadata.name`, else `generateName` when `name` is absent; strings only).
    pub(crate) fn identity(&self) -> (Option<&str>, Option<&str>) {
        let m = &self.0.meta;
        let name = match &m.name {
            Some(name) => name.as_deref(),
            None => m.generate_name.as_ref().and_then(|g| g.as_deref()),
        };
        (name, m.namespace.as_deref())
    }

    pub(crate) fn into_facts(self) -> PodFacts {
        self.0.into_facts()
    }
}

impl Top {
    fn into_facts(self) -> PodFacts {
        let Top { meta, spec, status } = self;
        let sidecars = spec.init_containers.into_iter().filter(|c| c.always);
        let ports: Vec<PortFacts> = spec.containers.into_iter().chain(sidecars).flat_map(|c| c.ports).collect();
        let service_account = match spec.service_account_name {
            None => spec.service_account.flatten(),
            Some(name) => name,
        }
        .filter(|s| !s.is_empty());
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in status.pod_ip.iter().chain(status.pod_ips.iter().flatten()) {
            if let Ok(ip) = ip.parse::<IpAddr>()
                && !ips.contains(&ip)
            {
                ips.push(ip);
            }
        }
        PodFacts {
            labels: meta.labels,
            annotations: meta.annotations,
            owner_refs: meta.owner_refs.into_boxed_slice(),
            ports: ports.into_boxed_slice(),
            host_network: spec.host_network,
            service_account,
            phase: status.phase,
            ips: ips.into_boxed_slice(),
        }
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
