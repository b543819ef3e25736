//! Mesh injection into pod templates: labels and probes.
//!
//! One implementation serves both paths: the Helm post-renderer applies it to rendered manifests,
//! and live migration applies it to objects read from a cluster before patching them. It only ever
//! touches *pod template* metadata and containers, never selectors (immutable on most workloads),
//! and never overwrites what is already there: a label, annotation or probe the chart set wins.

mod labels;
mod probes;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use labels::inject_labels;
pub use probes::{ProbeHandler, ProbePort, ProbeSettings, ProbeSpec, inject_probes};

pub use meshmove_istio::MeshMode;

/// How Jobs and CronJobs are treated in sidecar mode, so that their pods still complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobPolicy {
    /// Opt the pods out of injection (`sidecar.istio.io/inject: "false"`).
    #[default]
    Exclude,
    /// Inject, as a Kubernetes native sidecar (an init container with `restartPolicy: Always`)
    /// that does not keep the pod running: `sidecar.istio.io/nativeSidecar: "true"`.
    Native,
}

/// Label injection settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelOptions {
    pub mode: MeshMode,
    /// Istio revision (`istio.io/rev`), sidecar mode only.
    pub revision: Option<String>,
    /// Add `inject.istio.io/templates: "sidecar,spire"` so pods get SPIRE-issued identities.
    pub spire: bool,
    pub jobs: JobPolicy,
}

/// One change made to one workload, for reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Injection {
    /// `Deployment/name` (namespace omitted: a stream is usually one release's namespace).
    pub workload: String,
    /// Container name for probe changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// What was done, e.g. `label sidecar.istio.io/inject=true`, `readinessProbe tcp 8080`.
    pub change: String,
    /// `true` when nothing was changed and this is only a note (e.g. container without ports).
    pub skipped: bool,
}

/// Get or create the JSON object at `key` of `map`, keeping existing key order and appending new
/// keys at the end (so re-emitted documents add no noise before existing fields).
pub(crate) fn object_entry<'a>(map: &'a mut serde_json::Map<String, Value>, key: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
    let entry = map.entry(key.to_string()).or_insert_with(|| Value::Object(serde_json::Map::new()));
    if entry.is_null() {
        *entry = Value::Object(serde_json::Map::new());
    }
    entry.as_object_mut()
}

/// `Value::pointer` without its allocations (serde_json unescapes every segment into a new
/// `String`, which shows when it runs for every document of a large stream). Same results.
pub(crate) fn at<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    if ptr.contains('~') {
        return v.pointer(ptr);
    }
    if ptr.is_empty() {
        return Some(v);
    }
    ptr.strip_prefix('/')?.split('/').try_fold(v, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => array_index(segment).and_then(|i| items.get(i)),
        _ => None,
    })
}

/// [`at`] for `Value::pointer_mut`.
pub(crate) fn at_mut<'a>(v: &'a mut Value, ptr: &str) -> Option<&'a mut Value> {
    if ptr.contains('~') {
        return v.pointer_mut(ptr);
    }
    if ptr.is_empty() {
        return Some(v);
    }
    ptr.strip_prefix('/')?.split('/').try_fold(v, |v, segment| match v {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => array_index(segment).and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// A JSON pointer array index as serde_json reads it: digits, no sign, no leading zero.
fn array_index(segment: &str) -> Option<usize> {
    if segment.starts_with('+') || (segment.starts_with('0') && segment.len() > 1) {
        return None;
    }
    segment.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn at_reads_like_pointer() {
        let mut v = json!({"a": {"b/c": [10, {"d": 1}], "": 2, "e~f": 3}, "x": [1]});
        for ptr in ["", "/a", "/a/b~1c", "/a/b~1c/1/d", "/a/b~1c/01", "/a/b~1c/+1", "/a/b~1c/2", "/a/", "/a/e~0f", "/x/0", "/x/a", "a", "/nope/x", "/a/b~1c/0/x"] {
            assert_eq!(at(&v, ptr), v.pointer(ptr), "{ptr}");
        }
        *at_mut(&mut v, "/x/0").unwrap() = json!(5);
        assert_eq!(v["x"][0], 5);
        assert!(at_mut(&mut v, "/x/1").is_none());
    }
}

