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
pub use probes::{ProbeSettings, inject_probes};

/// Data-plane mode of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshMode {
    /// Envoy sidecar per pod.
    #[default]
    Sidecar,
    /// ztunnel per node, no sidecar.
    Ambient,
    /// No mesh labels at all (probes and policies only).
    None,
}

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
