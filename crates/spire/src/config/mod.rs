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

/// Parse one embedded YAML document into JSON, the way Go's YAML reader sees it.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    for doc in yaml::split_stream(text) {
        if let Some(v) = yaml::parse_document(&doc).map_err(|e| e.to_string())? {
            return Ok(v);
        }
    }
    Ok(Value::Null)
}
