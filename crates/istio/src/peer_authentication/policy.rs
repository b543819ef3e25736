//! One PeerAuthentication object, parsed and checked.
//!
//! Parsing is strict where Istio is: the mode strings are the CRD's enum, `portLevelMtls` keys are
//! port numbers from 1 to 65535 and need a workload selector (`ValidatePeerAuthentication` in
//! istio/istio `pkg/config/validation/validation.go`). A malformed object is an [`Error`] naming
//! the object and the field, so one bad manifest cannot silently change a computed mode.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::error::{Error, excerpt};
use crate::timestamp::Timestamp;
use crate::{Labels, string_map};

/// An mTLS mode, ordered by strictness: `Disable < Permissive < Strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Disable,
    Permissive,
    Strict,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "DISABLE",
            Mode::Permissive => "PERMISSIVE",
            Mode::Strict => "STRICT",
        }
    }

    /// `Some(None)` is UNSET. The CRD schema only admits these four upper-case strings.
    fn parse(s: &str) -> Option<Option<Mode>> {
        Some(match s {
            "UNSET" => None,
            "DISABLE" => Some(Mode::Disable),
            "PERMISSIVE" => Some(Mode::Permissive),
            "STRICT" => Some(Mode::Strict),
            _ => return None,
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PeerAuthentication's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A parsed PeerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuthentication {
    pub policy: PolicyRef,
    /// `None`: not created yet (no `creationTimestamp`, e.g. a manifest about to be applied). It
    /// will be stamped on creation, so it orders after every existing policy.
    pub created: Option<Timestamp>,
    /// `selector.matchLabels`; `None` when absent or empty (a mesh- or namespace-wide policy).
    pub selector: Option<Labels>,
    /// `mtls.mode`; `None` is UNSET (or `mtls` absent).
    pub mode: Option<Mode>,
    /// `portLevelMtls`: workload port -> mode (`None` is UNSET).
    pub port_level: BTreeMap<u16, Option<Mode>>,
}

impl PeerAuthentication {
    /// Parses a `security.istio.io` PeerAuthentication object (any served version).
    pub fn from_value(object: &Value) -> Result<PeerAuthentication, Error> {
        let meta = |field: &'static str| {
            object
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .ok_or(Error::MissingMetadata { field })
        };
        let policy = PolicyRef { namespace: meta("namespace")?.to_string(), name: meta("name")?.to_string() };
        let invalid = |field: &str, value: &Value, expected: &'static str| Error::InvalidField {
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
            field: field.to_string(),
            value: excerpt(value),
            expected,
        };
        let present = |ptr: &str| object.pointer(ptr).filter(|v| !v.is_null());
        let created = match present("/metadata/creationTimestamp") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(Timestamp::parse)
                    .ok_or_else(|| invalid("metadata.creationTimestamp", v, "an RFC 3339 time"))?,
            ),
        };
        let selector = match present("/spec/selector/matchLabels") {
            None => None,
            Some(v @ Value::Object(m)) => {
                if let Some((k, bad)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(invalid(&format!("spec.selector.matchLabels.{k}"), bad, "a string"));
                }
                Some(string_map(Some(v))).filter(|l| !l.is_empty())
            }
            Some(v) => return Err(invalid("spec.selector.matchLabels", v, "a map of labels")),
        };
        let mode_at = |ptr: &str, field: &str| match present(ptr) {
            None => Ok(None),
            Some(v) => v.as_str().and_then(Mode::parse).ok_or_else(|| Error::InvalidMode {
                namespace: policy.namespace.clone(),
                name: policy.name.clone(),
                field: field.to_string(),
                value: excerpt(v),
            }),
        };
        let mode = mode_at("/spec/mtls/mode", "spec.mtls.mode")?;
        let mut port_level = BTreeMap::new();
        match present("/spec/portLevelMtls") {
            None => {}
            Some(Value::Object(ports)) => {
                for key in ports.keys() {
                    let port = key.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| Error::InvalidPort {
                        namespace: policy.namespace.clone(),
                        name: policy.name.clone(),
                        key: key.chars().take(40).collect(),
                    })?;
                    let ptr = format!("/spec/portLevelMtls/{}/mode", key.replace('~', "~0").replace('/', "~1"));
                    port_level.insert(port, mode_at(&ptr, &format!("spec.portLevelMtls.{port}.mode"))?);
                }
            }
            Some(v) => return Err(invalid("spec.portLevelMtls", v, "a map of ports")),
        }
        if selector.is_none() && !port_level.is_empty() {
            return Err(Error::PortLevelWithoutSelector { namespace: policy.namespace, name: policy.name });
        }
        Ok(PeerAuthentication { policy, created, selector, mode, port_level })
    }

    /// Istio's precedence order: oldest first, then by name, then namespace. Not-yet-created
    /// policies come last.
    pub(super) fn order_key(&self) -> (bool, Option<Timestamp>, &str, &str) {
        (self.created.is_none(), self.created, &self.policy.name, &self.policy.namespace)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pa(ns: &str, name: &str, created: Option<&str>, spec: Value) -> Value {
        let mut meta = json!({"namespace": ns, "name": name});
        if let Some(t) = created {
            meta["creationTimestamp"] = json!(t);
        }
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": meta, "spec": spec})
    }

    fn mode(m: &str) -> Value {
        json!({"mtls": {"mode": m}})
    }

    #[test]
    fn parses_levels_modes_and_ports() {
        let p = PeerAuthentication::from_value(&pa(
            "shop",
            "p",
            Some("2024-01-01T00:00:00Z"),
            json!({
                "selector": {"matchLabels": {"app": "api"}},
                "mtls": {"mode": "STRICT"},
                "portLevelMtls": {"8080": {"mode": "DISABLE"}, "9090": {}}
            }),
        ))
        .unwrap();
        assert_eq!(p.policy.to_string(), "shop/p");
        assert!(p.created.is_some());
        assert_eq!(p.selector, Some([("app".to_string(), "api".to_string())].into()));
        assert_eq!(p.mode, Some(Mode::Strict));
        assert_eq!(p.port_level, [(8080, Some(Mode::Disable)), (9090, None)].into());
        // An empty matchLabels is no selector; no spec at all is a wide UNSET policy.
        let wide = PeerAuthentication::from_value(&pa("shop", "w", None, json!({"selector": {"matchLabels": {}}})));
        assert_eq!(wide.unwrap().selector, None);
        let bare = PeerAuthentication::from_value(&json!({"metadata": {"namespace": "shop", "name": "b"}})).unwrap();
        assert_eq!((bare.selector, bare.mode, bare.created), (None, None, None));
        assert_eq!(PeerAuthentication::from_value(&pa("shop", "u", None, mode("UNSET"))).unwrap().mode, None);
    }
    #[test]
    fn malformed_policies_are_reported_by_name_and_field() {
        let err = PeerAuthentication::from_value(&pa("shop", "p", None, mode("strict"))).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidMode {
                namespace: "shop".into(),
                name: "p".into(),
                field: "spec.mtls.mode".into(),
                value: "`strict`".into()
            }
        );
        let secret = "x".repeat(500);
        let err =
            PeerAuthentication::from_value(&pa("shop", "p", None, json!({"mtls": {"mode": secret}}))).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
        let err =
            PeerAuthentication::from_value(&pa("shop", "p", None, json!({"mtls": {"mode": {"a": 1}}}))).unwrap_err();
        assert!(err.to_string().contains("spec.mtls.mode is an object"), "{err}");
        let ports = json!({"selector": {"matchLabels": {"a": "b"}}, "portLevelMtls": {"8080": {"mode": "OFF"}}});
        let err = PeerAuthentication::from_value(&pa("shop", "p", None, ports)).unwrap_err();
        assert!(err.to_string().contains("spec.portLevelMtls.8080.mode"), "{err}");
        for key in ["0", "65536", "http"] {
            let spec = json!({"selector": {"matchLabels": {"a": "b"}}, "portLevelMtls": {key: {"mode": "STRICT"}}});
            let err = PeerAuthentication::from_value(&pa("shop", "p", None, spec)).unwrap_err();
            assert!(matches!(err, Error::InvalidPort { .. }), "{key}: {err}");
        }
        let wide = json!({"mtls": {"mode": "STRICT"}, "portLevelMtls": {"80": {"mode": "DISABLE"}}});
        let err = PeerAuthentication::from_value(&pa("shop", "p", None, wide)).unwrap_err();
        assert_eq!(err, Error::PortLevelWithoutSelector { namespace: "shop".into(), name: "p".into() });
        let err = PeerAuthentication::from_value(&pa("shop", "p", Some("yesterday"), json!({}))).unwrap_err();
        assert!(err.to_string().contains("metadata.creationTimestamp"), "{err}");
        let err = PeerAuthentication::from_value(&json!({"metadata": {"name": "p"}})).unwrap_err();
        assert_eq!(err, Error::MissingMetadata { field: "namespace" });
        let err =
            PeerAuthentication::from_value(&pa("shop", "p", None, json!({"selector": {"matchLabels": {"a": 1}}})))
                .unwrap_err();
        assert!(err.to_string().contains("spec.selector.matchLabels.a"), "{err}");
    }
}
