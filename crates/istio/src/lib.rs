//! Istio's rules, written once.
//!
//! Precheck, `enable`, `mtls strict`, `status`, the namespace migration and the test API-server
//! double all need to predict what Istio will do with a cluster's objects. Each used to carry its
//! own reading of Istio's behaviour; this crate is the single, tested copy. Every rule cites the
//! upstream Istio source file or documentation page it was checked against.
//!
//! The crate is pure: inputs are plain `serde_json::Value` Kubernetes objects or small structs,
//! outputs are typed values; nothing does I/O or prints.
//!
//! - [`protocol`]: which protocol Istio assigns to a Service port.
//! - [`mod@injection`]: whether a pod gets a sidecar (and from which revision) or joins ambient.
//! - [`peer_authentication`]: the effective mTLS mode of a workload port under PeerAuthentication.
//! - [`mesh_config`]: the mesh root namespace from the mesh config.
//! - [`waypoint`]: ambient waypoints (the Gateway, the binding labels) and which proxy emits
//!   which metrics.
//! - [`traffic`]: the traffic profile of DestinationRules and HTTP routes (connection pool,
//!   outlier detection, request timeout, retries), checked with Istio's validation rules.

use std::collections::BTreeMap;

use serde_json::Value;

mod error;
pub mod injection;
pub mod mesh_config;
pub mod peer_authentication;
pub mod protocol;
mod timestamp;
pub mod traffic;
pub mod waypoint;

pub use error::Error;
pub use injection::{Dataplane, Injection, NotInjectedReason, Pod, Served, ambient_captured, dataplane, injection};
pub use peer_authentication::{
    Change, DEFAULT_ROOT_NAMESPACE, Effective, Ignored, Level, Mode, PROXY_PORTS, PeerAuthentication,
    PeerAuthentications, PolicyRef, Source as MtlsSource, Target,
};
pub use protocol::{Protocol, Selection, known_app_protocol, known_protocol_name, port_protocol};
pub use timestamp::Timestamp;
pub use traffic::TrafficProfile;

/// Kubernetes labels or annotations.
pub type Labels = BTreeMap<String, String>;

/// A string map from a `labels`/`annotations`/`matchLabels` value; non-string values are skipped.
pub(crate) fn string_map(value: Option<&Value>) -> Labels {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// Data-plane mode the user migrates to (what the post-renderer and the generator label and
/// admit), as opposed to [`injection::Dataplane`], the data plane a given pod ends up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
