//! Istio's mesh config (the `mesh` key of the `istio` ConfigMap) and the sidecar injector's
//! config (the `config` key of `istio-sidecar-injector`, whose `templates` hold more YAML).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{ConfigError, parse_yaml};

/// Istio's default trust domain.
pub const ISTIO_DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The parts of Istio's mesh config the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// `trustDomain`, or `cluster.local` when unset.
    pub trust_domain: String,
    pub trust_domain_set: bool,
    pub trust_domain_aliases: Vec<String>,
    /// Trust domains named by `caCertificates[].trustDomains`.
    pub ca_certificate_trust_domains: Vec<String>,
}

/// Parse the `mesh` key of the `istio` ConfigMap.
pub fn parse_mesh_config(text: &str) -> Result<MeshConfig, ConfigError> {
    let v = parse_yaml(text).map_err(|e| ConfigError::MeshYaml(Box::new(e)))?;
    if !(v.is_object() || v.is_null()) {
        return Err(ConfigError::MeshNotMapping);
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array).into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
    };
    let td = v.get("trustDomain").and_then(Value::as_str).filter(|s| !s.is_empty());
    Ok(MeshConfig {
        trust_domain: td.unwrap_or(ISTIO_DEFAULT_TRUST_DOMAIN).to_string(),
        trust_domain_set: td.is_some(),
        trust_domain_aliases: strings(v.get("trustDomainAliases")),
        ca_certificate_trust_domains: v
            .get("caCertificates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| strings(c.get("trustDomains")))
            .collect(),
    })
}

/// The sidecar injector's configuration: its templates by name, and the templates pods get when
/// they name none (`defaultTemplates`, `[sidecar]` when unset; istio/istio
/// `pkg/kube/inject/webhook.go`, `Config.DefaultTemplates`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InjectorConfig {
    pub templates: BTreeMap<String, String>,
    pub default_templates: Vec<String>,
}

/// Parse the `config` key of the `istio-sidecar-injector` ConfigMap.
pub fn parse_injector_config(text: &str) -> Result<InjectorConfig, ConfigError> {
    let v = parse_yaml(text).map_err(|e| ConfigError::InjectorYaml(Box::new(e)))?;
    let default_templates: Vec<String> = v
        .get("defaultTemplates")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .filter(|d: &Vec<String>| !d.is_empty())
        .unwrap_or_else(|| vec!["sidecar".to_string()]);
    Ok(InjectorConfig {
        templates: v
            .get("templates")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, t)| Some((k.clone(), t.as_str()?.to_string()))).collect())
            .unwrap_or_default(),
        default_templates,
    })
}

/// What an injection template adds to a pod's metadata. Istio renders the template and merges
/// it into the pod; its SPIRE integration guide (istio.io `docs/ops/integrations/spire`) writes
/// the label its ClusterSPIFFEID selects, `spiffe.io/spire-managed-identity: "true"`, in the
/// `spire` template as a top-level `labels:` block, and Istio's own templates use
/// `metadata.labels`; both are read. Lines with template actions (`{{ ... }}`) are left out when
/// the template does not read as YAML as it is: what they compute cannot be predicted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Parse a template as YAML, or failing that, without the lines that are template actions.
fn template_yaml(template: &str) -> Option<Value> {
    if let Ok(v) = parse_yaml(template)
        && v.is_object()
    {
        return Some(v);
    }
    let plain: String = template
        .lines()
        .filter(|l| !l.contains("{{"))
        .map(|l| format!("{l}\n"))
        .collect();
    parse_yaml(&plain).ok().filter(Value::is_object)
}

/// The labels and annotations a template adds (see [`TemplateMetadata`]).
pub fn template_metadata(template: &str) -> TemplateMetadata {
    let Some(v) = template_yaml(template) else { return TemplateMetadata::default() };
    // Label values are strings; an unquoted `true` in the template is the string "true" on the pod.
    let strings = |m: Option<&Value>| -> BTreeMap<String, String> {
        m.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                (!k.contains("{{") && !s.contains("{{")).then(|| (k.clone(), s))
            })
            .collect()
    };
    let mut out = TemplateMetadata {
        labels: strings(v.pointer("/metadata/labels")),
        annotations: strings(v.pointer("/metadata/annotations")),
    };
    out.labels.extend(strings(v.get("labels")));
    out.annotations.extend(strings(v.get("annotations")));
    out
}

/// Whether an injection template mounts a `csi.spiffe.io` volume into `istio-proxy` at
/// `socket_path`. Templates are Go templates producing YAML: when the text is plain YAML its
/// structure is checked; when templating makes it unreadable, the driver name and the path must
/// both appear in it.
/// Why an injection template does not give istio-proxy the Workload API socket (read after "the
/// spire template").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketMount {
    #[error("adds no volume with CSI driver {}", crate::CSI_DRIVER_NAME)]
    NoCsiVolume,
    #[error("does not mount the {} volume into istio-proxy at {socket_path}", crate::CSI_DRIVER_NAME)]
    NotMounted { socket_path: String },
    #[error("never mentions CSI driver {}", crate::CSI_DRIVER_NAME)]
    DriverNotMentioned,
    #[error("never mentions the socket path {socket_path}")]
    PathNotMentioned { socket_path: String },
}

pub fn template_mounts_socket(template: &str, socket_path: &str) -> Result<(), SocketMount> {
    if let Ok(v) = parse_yaml(template)
        && let Some(spec) = v.get("spec")
    {
        let volumes: Vec<&str> = spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|vol| vol.pointer("/csi/driver").and_then(Value::as_str) == Some(crate::CSI_DRIVER_NAME))
            .filter_map(|vol| vol.get("name").and_then(Value::as_str))
            .collect();
        if volumes.is_empty() {
            return Err(SocketMount::NoCsiVolume);
        }
        let mounted = spec
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
            .flat_map(|c| c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten())
            .any(|m| {
                m.get("name").and_then(Value::as_str).is_some_and(|n| volumes.contains(&n))
                    && m.get("mountPath").and_then(Value::as_str).map(|p| p.trim_end_matches('/'))
                        == Some(socket_path.trim_end_matches('/'))
            });
        return if mounted {
            Ok(())
        } else {
            Err(SocketMount::NotMounted { socket_path: socket_path.to_string() })
        };
    }
    match (template.contains(crate::CSI_DRIVER_NAME), template.contains(socket_path)) {
        (true, true) => Ok(()),
        (false, _) => Err(SocketMount::DriverNotMentioned),
        (true, false) => Err(SocketMount::PathNotMentioned { socket_path: socket_path.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_config_defaults_and_fields() {
        let m = parse_mesh_config("defaultConfig:\n  proxyMetadata: {}\n").unwrap();
        assert_eq!(m.trust_domain, "cluster.local");
        assert!(!m.trust_domain_set);
        let m = parse_mesh_config(
            "trustDomain: example.org\ntrustDomainAliases: [old.example]\ncaCertificates:\n- pem: x\n  trustDomains: [partner.test]\n",
        )
        .unwrap();
        assert_eq!(m.trust_domain, "example.org");
        assert_eq!(m.trust_domain_aliases, ["old.example"]);
        assert_eq!(m.ca_certificate_trust_domains, ["partner.test"]);
        assert!(parse_mesh_config("- a\n- b\n").is_err());
    }

    #[test]
    fn spire_template_mount_detection() {
        let good = "spec:\n  containers:\n  - name: istio-proxy\n    volumeMounts:\n    - name: workload-socket\n      mountPath: /run/secrets/workload-spiffe-uds\n      readOnly: true\n  volumes:\n  - name: workload-socket\n    csi:\n      driver: \"csi.spiffe.io\"\n      readOnly: true\n";
        assert!(template_mounts_socket(good, "/run/secrets/workload-spiffe-uds").is_ok());
        assert!(template_mounts_socket(good, "/other").is_err());
        let no_volume = good.replace("csi.spiffe.io", "other.csi");
        assert!(
            template_mounts_socket(&no_volume, "/run/secrets/workload-spiffe-uds").unwrap_err() == SocketMount::NoCsiVolume
        );
        let templated = "spec:\n  containers:\n  {{- if true }}\n  - name: istio-proxy\n  volumes: [{name: s, csi: {driver: csi.spiffe.io}}] # /run/secrets/workload-spiffe-uds\n";
        assert!(template_mounts_socket(templated, "/run/secrets/workload-spiffe-uds").is_ok());
        let injector = parse_injector_config(&format!(
            "policy: enabled\ntemplates:\n  sidecar: |\n    spec: {{}}\n  spire: |\n{}",
            good.lines().map(|l| format!("    {l}\n")).collect::<String>()
        ))
        .unwrap();
        assert!(injector.templates.contains_key("sidecar"));
        assert_eq!(injector.default_templates, ["sidecar"]);
        assert!(template_mounts_socket(&injector.templates["spire"], "/run/secrets/workload-spiffe-uds").is_ok());
        let custom = parse_injector_config("defaultTemplates: [sidecar, spire]\ntemplates: {}\n").unwrap();
        assert_eq!(custom.default_templates, ["sidecar", "spire"]);
    }

    #[test]
    fn template_metadata_in_both_forms() {
        // Istio's SPIRE guide writes the label at the top of the template...
        let guide = "labels:\n  spiffe.io/spire-managed-identity: \"true\"\nspec:\n  volumes: []\n";
        let m = template_metadata(guide);
        assert_eq!(m.labels.get("spiffe.io/spire-managed-identity").map(String::as_str), Some("true"));
        // ...Istio's own templates under metadata; unquoted booleans become the string label.
        let meta = "metadata:\n  labels:\n    spiffe.io/spire-managed-identity: true\n  annotations:\n    a: b\n";
        let m = template_metadata(meta);
        assert_eq!(m.labels.get("spiffe.io/spire-managed-identity").map(String::as_str), Some("true"));
        assert_eq!(m.annotations.get("a").map(String::as_str), Some("b"));
        // Template actions on lines of their own are dropped; values computed by them are not
        // predicted.
        let templated = "{{- if true }}\nmetadata:\n  labels:\n    fixed: \"yes\"\n    rev: {{ .Revision }}\n{{- end }}\n";
        let m = template_metadata(templated);
        assert_eq!(m.labels.keys().collect::<Vec<_>>(), ["fixed"]);
        assert_eq!(template_metadata("{{ not yaml"), TemplateMetadata::default());
    }
}
