//! Errors for malformed input objects (PeerAuthentications, the mesh config).
//!
//! Messages name the object (`namespace/name`) and the offending field, with at most a short
//! excerpt of the field's value, never the whole object: objects can carry secrets in annotations
//! and are too long for a one-line diagnostic.

use serde_json::Value;

/// A malformed PeerAuthentication or mesh config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("PeerAuthentication without metadata.{field}")]
    MissingMetadata { field: &'static str },
    #[error("PeerAuthentication {namespace}/{name}: {field} is {value}, expected UNSET, DISABLE, PERMISSIVE or STRICT")]
    InvalidMode { namespace: String, name: String, field: String, value: String },
    #[error("PeerAuthentication {namespace}/{name}: portLevelMtls key `{key}` is not a port number from 1 to 65535")]
    InvalidPort { namespace: String, name: String, key: String },
    #[error(
        "PeerAuthentication {namespace}/{name}: portLevelMtls needs a workload selector \
         (Istio rejects it on mesh- and namespace-wide policies)"
    )]
    PortLevelWithoutSelector { namespace: String, name: String },
    #[error("PeerAuthentication {namespace}/{name}: {field} is {value}, expected {expected}")]
    InvalidField { namespace: String, name: String, field: String, value: String, expected: &'static str },
    #[error("mesh config: {field} is {value}, expected {expected}")]
    InvalidMeshConfig { field: String, value: String, expected: &'static str },
}

/// A short description of a field's value for an error message.
pub(crate) fn excerpt(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() > 40 => format!("`{}…`", s.chars().take(40).collect::<String>()),
        Value::String(s) => format!("`{s}`"),
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}
