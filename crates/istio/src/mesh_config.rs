//! The parts of Istio's mesh config the product depends on: the mesh root namespace.
//!
//! MeshConfig `rootNamespace` is "the namespace to treat as the administrative root namespace
//! for Istio configuration": a PeerAuthentication without a selector there is mesh-wide, and one
//! with a selector there is ignored (see [`crate::peer_authentication`]). It defaults to
//! `istio-system` (Istio reference, "Global Mesh Options", `MeshConfig.rootNamespace`,
//! <https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig>; istio/istio
//! `pkg/config/mesh/mesh.go`, `DefaultMeshConfig`), and Istio's charts write it into the mesh
//! config explicitly (the `istio-discovery` chart's `configmap.yaml`).
//!
//! istiod reads its mesh config from the file `mesh` mounted from the ConfigMap `istio` of its
//! namespace (`istio-<revision>` for a revisioned control plane; istio/istio
//! `manifests/charts/istio-control/istio-discovery/templates/configmap.yaml`, and
//! `pilot/pkg/bootstrap/mesh.go`, which watches that file). The value is the YAML of the
//! MeshConfig message; this module reads the already parsed document.

use serde_json::Value;

use crate::Error;
use crate::peer_authentication::DEFAULT_ROOT_NAMESPACE;

/// The data key of the mesh config in its ConfigMap.
pub const MESH_KEY: &str = "mesh";

/// The ConfigMap holding the mesh config of a control plane revision: `istio`, or
/// `istio-<revision>` (the `default` revision is `istio`).
pub fn configmap_name(revision: Option<&str>) -> String {
    match revision {
        None | Some("" | "default") => "istio".to_string(),
        Some(r) => format!("istio-{r}"),
    }
}

/// The root namespace a mesh config sets (`mesh` is the parsed `mesh` document; `null` for an
/// empty one), or Istio's default when it sets none. A value that is not a namespace name (a
/// DNS-1123 label) is an error naming it.
pub fn root_namespace(mesh: &Value) -> Result<String, Error> {
    let value = match mesh {
        Value::Null => return Ok(DEFAULT_ROOT_NAMESPACE.to_string()),
        Value::Object(m) => m.get("rootNamespace"),
        other => {
            return Err(Error::InvalidMeshConfig {
                field: "mesh".into(),
                value: crate::error::excerpt(other),
                expected: "a MeshConfig mapping",
            });
        }
    };
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_ROOT_NAMESPACE.to_string()),
        Some(Value::String(s)) if s.is_empty() => Ok(DEFAULT_ROOT_NAMESPACE.to_string()),
        Some(Value::String(s)) if is_namespace_name(s) => Ok(s.clone()),
        Some(other) => Err(Error::InvalidMeshConfig {
            field: "rootNamespace".into(),
            value: crate::error::excerpt(other),
            expected: "a namespace name",
        }),
    }
}

/// A DNS-1123 label, as Kubernetes requires of namespace names: at most 63 lower-case
/// alphanumerics or '-', starting and ending alphanumeric.
fn is_namespace_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_root_namespace_is_read_or_defaulted() {
        assert_eq!(root_namespace(&json!({"rootNamespace": "mesh-admin", "trustDomain": "cluster.local"})).unwrap(), "mesh-admin");
        for mesh in [json!(null), json!({}), json!({"rootNamespace": null}), json!({"rootNamespace": ""}), json!({"enableTracing": true})] {
            assert_eq!(root_namespace(&mesh).unwrap(), "istio-system", "{mesh}");
        }
    }

    #[test]
    fn a_root_namespace_that_is_no_namespace_name_is_an_error_naming_it() {
        for (mesh, shown) in [
            (json!({"rootNamespace": "Mesh_Admin"}), "`Mesh_Admin`"),
            (json!({"rootNamespace": 7}), "`7`"),
            (json!({"rootNamespace": "-x"}), "`-x`"),
            (json!({"rootNamespace": "a".repeat(64)}), "`aaaaaaaa"),
        ] {
            let e = root_namespace(&mesh).unwrap_err().to_string();
            assert!(e.starts_with("mesh config: rootNamespace is ") && e.contains(shown) && e.ends_with("expected a namespace name"), "{e}");
        }
        let e = root_namespace(&json!(["rootNamespace"])).unwrap_err().to_string();
        assert_eq!(e, "mesh config: mesh is a list, expected a MeshConfig mapping");
    }

    #[test]
    fn configmap_names_follow_the_revision() {
        assert_eq!(configmap_name(None), "istio");
        assert_eq!(configmap_name(Some("default")), "istio");
        assert_eq!(configmap_name(Some("1-24")), "istio-1-24");
    }
}
