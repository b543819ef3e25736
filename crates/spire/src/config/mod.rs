//! Reading the configuration SPIRE, its controller manager and Istio keep in ConfigMaps.
//!
//! The facts the trust and certificate checks compare live in four embedded documents: the SPIRE
//! server's `server.conf` (HCL in hand-written installs and Istio's sample, JSON in the hardened
//! Helm charts), the controller manager's `ControllerManagerConfig` (YAML), Istio's mesh config
//! (the `mesh` key of the `istio` ConfigMap, YAML) and the sidecar injector's config (the `config`
//! key of `istio-sidecar-injector`, YAML whose `templates` hold more YAML). Each parser here keeps
//! only the fields a check needs and says precisely why a document cannot be read.

use serde_json::Value;

use meshmove_model::yaml;

mod controller;
mod istio;
mod server;

pub use controller::*;
pub use istio::*;
pub use server::*;

/// Why a configuration document cannot be read. Messages name the document and the place, never
/// its text (`server.conf` holds plugin data such as a datastore's password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `server.conf:LINE:COLUMN: not valid HCL: ...` (the parser's first line, quoted safely).
    #[error("server.conf:{line}:{column}: not valid HCL: {message}")]
    ServerHclAt { line: usize, column: usize, message: String },
    #[error("server.conf: not valid HCL: {message}")]
    ServerHcl { message: String },
    /// Lines counted in the whole text.
    #[error("server.conf:{line}:{column}: not valid JSON: {message}")]
    ServerJson { line: usize, column: usize, message: String },
    #[error("server.conf has no `server` block")]
    NoServerBlock,
    /// An embedded YAML document (the YAML layer's message names the line).
    #[error("{0}")]
    Yaml(String),
    #[error("controller manager config is not valid YAML: {0}")]
    ControllerYaml(Box<ConfigError>),
    #[error("mesh config is not valid YAML: {0}")]
    MeshYaml(Box<ConfigError>),
    #[error("mesh config is not a mapping")]
    MeshNotMapping,
    #[error("injector config is not valid YAML: {0}")]
    InjectorYaml(Box<ConfigError>),
}

/// Parse one embedded YAML document into JSON, the way Go's YAML reader sees it.
pub fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
    for doc in yaml::split_stream(text) {
        if let Some(v) = yaml::parse_document(&doc).map_err(|e| ConfigError::Yaml(e.to_string()))? {
            return Ok(v);
        }
    }
    Ok(Value::Null)
}
