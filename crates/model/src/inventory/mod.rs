//! One in-memory inventory of Kubernetes objects, whatever they were read from.
//!
//! Every read-only command works the same on a live cluster and on manifests: both sources fill an
//! [`Inventory`], and analyzers only ever see the inventory. Each object remembers where it came
//! from ([`Origin`]: a file and line, stdin, or a cluster context) so findings can point at it.
//!
//! The inventory also records which kinds were *available*: listed from the cluster (even if
//! empty), or present in the files. An analyzer whose required kinds are unavailable is skipped and
//! reported as skipped, never failed: Pods are absent when only charts are given, Istio kinds are
//! absent from a cluster without Istio's CRDs. A kind the cluster *should* have answered for but
//! did not (RBAC denied the list, or the server answered 404 for a built-in kind) is also
//! [`Inventory::unread`]: the run could not see part of its input, and reports say so as an error
//! rather than passing the checks that needed it.

pub mod files;
pub mod kinds;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use files::{InventoryError, load_paths, load_str};
pub use kinds::Kind;

/// Where an object was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, with the 1-based line where the object's document starts.
    File { path: PathBuf, line: usize, helm_source: Option<String> },
    /// Standard input, with the line where the document starts.
    Stdin { line: usize, helm_source: Option<String> },
    /// A live cluster, by kubeconfig context name.
    Cluster { context: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (place, helm) = match self {
            Origin::File { path, line, helm_source } => (format!("{}:{line}", path.display()), helm_source),
            Origin::Stdin { line, helm_source } => (format!("stdin:{line}"), helm_source),
            Origin::Cluster { context } => return write!(f, "cluster {context}"),
        };
        match helm {
            Some(src) => write!(f, "{place} ({src})"),
            None => f.write_str(&place),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A reference to an object by kind, namespace and name, as findings and reports print it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: impl Into<String>, namespace: Option<&str>, name: impl Into<String>) -> Self {
        ObjectRef { kind: kind.into(), namespace: namespace.map(str::to_string), name: name.into() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// One Kubernetes object as loaded: identity fields pulled out, the whole object kept as JSON.
#[derive(Debug, Clone)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub value: Value,
    pub origin: Origin,
}

impl Object {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(&self.kind, self.namespace.as_deref(), &self.name)
    }

    fn meta_map(&self, field: &str) -> impl Iterator<Item = (&str, &str)> {
        self.value
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.meta_map("labels")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.value.pointer("/metadata/labels")?.get(key)?.as_str()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value.pointer("/metadata/annotations")?.get(key)?.as_str()
    }

    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.meta_map("annotations")
    }

    /// Deserialize into a typed k8s-openapi struct (no copy of the JSON tree is made).
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, InventoryError> {
        T::deserialize(&self.value).map_err(|e| InventoryError::Shape {
            origin: self.origin.to_string(),
            object: self.object_ref().to_string(),
            detail: crate::redact::quoted(&e.to_string()),
        })
    }
}

/// Why a kind is not available to analyzers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Unavailable {
    /// The files held no object of this kind.
    NotInFiles,
    /// The cluster does not serve the kind (its CRD is not installed).
    NotServed,
    /// RBAC denied the list; the message names the verb and resource.
    Forbidden { message: String },
    /// The server answered 404 Not Found for a built-in kind, which every Kubernetes API server
    /// serves: the server is not (only) a Kubernetes API server, or the URL is wrong.
    NotFound { message: String },
}

impl Unavailable {
    /// Whether the kind should have been read and was not: a list denied by RBAC, or a built-in
    /// kind the server did not find. Absent CRDs and kinds missing from files are not failures.
    pub fn is_read_failure(&self) -> bool {
        matches!(self, Unavailable::Forbidden { .. } | Unavailable::NotFound { .. })
    }

    /// The reason in words, for notes, skipped checks and findings.
    pub fn describe(&self, kind: &Kind) -> String {
        match self {
            Unavailable::NotInFiles => format!("no {} in the input", kind.kind),
            Unavailable::NotServed if kind.custom => {
                format!("{} is not served by the cluster (CRD not installed)", kind.resource())
            }
            Unavailable::NotServed => format!("{} is not served by the cluster", kind.resource()),
            Unavailable::Forbidden { message } | Unavailable::NotFound { message } => message.clone(),
        }
    }
}

/// Where the inventory was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum SourceInfo {
    Files { paths: Vec<String> },
    Cluster { context: String, namespace: Option<String> },
}

impl fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceInfo::Files { paths } => write!(f, "files {}", paths.join(", ")),
            SourceInfo::Cluster { context, namespace: Some(ns) } => write!(f, "cluster {context}, namespace {ns}"),
            SourceInfo::Cluster { context, namespace: None } => write!(f, "cluster {context}, all namespaces"),
        }
    }
}

/// Objects indexed by kind, plus what was (not) available.
#[derive(Debug, Clone)]
pub struct Inventory {
    objects: Vec<Object>,
    by_kind: HashMap<(String, String), Vec<usize>>,
    listed: Option<BTreeMap<&'static Kind, Option<Unavailable>>>,
    /// Namespaced kinds a scoped cluster load still listed in every namespace.
    wide: Vec<&'static Kind>,
    pub source: SourceInfo,
    /// Namespace for objects that name none, and the scope commands act on by default.
    pub default_namespace: String,
}

impl Inventory {
    /// An inventory from files: a kind is available when at least one object of it was read.
    pub fn from_files(objects: Vec<Object>, paths: Vec<String>, default_namespace: String) -> Self {
        Self::build(objects, None, SourceInfo::Files { paths }, default_namespace)
    }

    /// An inventory from a cluster: `listed` says, per kind asked for, whether the list worked.
    pub fn from_cluster(
        objects: Vec<Object>,
        listed: BTreeMap<&'static Kind, Option<Unavailable>>,
        source: SourceInfo,
        default_namespace: String,
    ) -> Self {
        Self::build(objects, Some(listed), source, default_namespace)
    }

    fn build(
        objects: Vec<Object>,
        listed: Option<BTreeMap<&'static Kind, Option<Unavailable>>>,
        source: SourceInfo,
        default_namespace: String,
    ) -> Self {
        let mut by_kind: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            by_kind.entry((o.group().to_string(), o.kind.clone())).or_default().push(i);
        }
        Inventory { objects, by_kind, listed, wide: Vec::new(), source, default_namespace }
    }

    /// Record kinds that were listed across all namespaces by a namespace-scoped cluster load.
    pub fn with_cluster_wide(mut self, kinds: Vec<&'static Kind>) -> Self {
        self.wide = kinds;
        self
    }

    /// Whether every object of `kind` that exists is in the inventory: true for files, for
    /// cluster-scoped kinds, for unscoped loads and for kinds listed cluster-wide.
    pub fn complete_across_namespaces(&self, kind: &Kind) -> bool {
        match &self.source {
            SourceInfo::Cluster { namespace: Some(_), .. } => !kind.namespaced || self.wide.contains(&kind),
            _ => true,
        }
    }

    pub fn is_live(&self) -> bool {
        self.listed.is_some()
    }

    /// All objects in load order.
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    /// Objects of one kind, in load order.
    pub fn of<'a>(&'a self, kind: &Kind) -> impl Iterator<Item = &'a Object> + 'a {
        self.of_kind(kind.group, kind.kind)
    }

    /// Objects of a kind by group and kind name (also for kinds outside the static table).
    pub fn of_kind<'a>(&'a self, group: &str, kind: &str) -> impl Iterator<Item = &'a Object> + 'a {
        self.by_kind
            .get(&(group.to_string(), kind.to_string()))
            .into_iter()
            .flatten()
            .map(|&i| &self.objects[i])
    }

    /// Find one object by kind, namespace and name.
    pub fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<&Object> {
        self.of(kind).find(|o| o.name == name && o.namespace.as_deref() == namespace)
    }

    /// Whether analyzers may rely on this kind: listed from the cluster, or present in the files.
    pub fn availability(&self, kind: &Kind) -> Option<Unavailable> {
        match &self.listed {
            Some(listed) => match listed.get(kind) {
                Some(state) => state.clone(),
                None => Some(Unavailable::NotServed),
            },
            None if self.of(kind).next().is_some() => None,
            None => Some(Unavailable::NotInFiles),
        }
    }

    pub fn has(&self, kind: &Kind) -> bool {
        self.availability(kind).is_none()
    }

    /// Kinds a cluster load could not list, with the reason (forbidden lists carry their message).
    pub fn unavailable(&self) -> Vec<(&'static Kind, Unavailable)> {
        self.listed
            .iter()
            .flatten()
            .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
            .collect()
    }

    /// Kinds a cluster load should have read and could not ([`Unavailable::is_read_failure`]).
    /// Empty for files: a file that cannot be read is an error before there is an inventory.
    pub fn unread(&self) -> Vec<(&'static Kind, Unavailable)> {
        self.unavailable().into_iter().filter(|(_, why)| why.is_read_failure()).collect()
    }

    /// Whether a cluster load listed at least one kind (false when it asked for none).
    pub fn listed_any(&self) -> bool {
        self.listed.iter().flatten().any(|(_, v)| v.is_none())
    }
}
