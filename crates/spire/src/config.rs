//! Reading the configuration SPIRE, its controller manager and Istio keep in ConfigMaps.
//!
//! The facts the trust and certificate checks compare live in four embedded documents: the SPIRE
//! server's `server.conf` (HCL in hand-written installs and Istio's sample, JSON in the hardened
//! Helm charts), the controller manager's `ControllerManagerConfig` (YAML), Istio's mesh config
//! (the `mesh` key of the `istio` ConfigMap, YAML) and the sidecar injector's config (the `config`
//! key of `istio-sidecar-injector`, YAML whose `templates` hold more YAML). Each parser here keeps
//! only the fields a check needs and says precisely why a document cannot be read.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use meshmove_model::yaml;

/// Parse one embedded YAML document into JSON, the way Go's YAML reader sees it.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    for doc in yaml::split_stream(text) {
        if let Some(v) = yaml::parse_document(&doc).map_err(|e| e.to_string())? {
            return Ok(v);
        }
    }
    Ok(Value::Null)
}


/// SPIRE's defaults when `server.conf` does not set them.
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_X509_SVID_TTL: Duration = Duration::from_secs(3600);

/// The parts of a SPIRE server configuration the checks use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerConfig {
    pub trust_domain: Option<String>,
    /// `server.socket_path`: the Server API socket the `spire-server` CLI talks to (SPIRE's
    /// default, `/tmp/spire-server/private/api.sock`, when unset).
    pub socket_path: Option<String>,
    /// `ca_ttl` as written, and parsed.
    pub ca_ttl: Option<(String, Duration)>,
    /// `default_x509_svid_ttl` (or the older `default_svid_ttl`) as written, and parsed.
    pub x509_svid_ttl: Option<(String, Duration)>,
    /// Whether this server serves its bundle to federated peers (`federation.bundle_endpoint`).
    pub bundle_endpoint: bool,
    /// `federation.federates_with` relationships by trust domain.
    pub federates_with: BTreeMap<String, FederationRelationship>,
    /// Where the server publishes its bundle into a ConfigMap of this cluster: the `k8sbundle`
    /// notifier and the `k8s_configmap` BundlePublisher, when configured.
    pub bundle_targets: Vec<BundleTarget>,
    /// Fields that are present but unreadable (bad durations), in words.
    pub problems: Vec<String>,
}

impl ServerConfig {
    pub fn ca_ttl(&self) -> Duration {
        self.ca_ttl.as_ref().map_or(DEFAULT_CA_TTL, |(_, d)| *d)
    }

    pub fn x509_svid_ttl(&self) -> Duration {
        self.x509_svid_ttl.as_ref().map_or(DEFAULT_X509_SVID_TTL, |(_, d)| *d)
    }
}

/// One `federates_with "<trust domain>" { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FederationRelationship {
    pub bundle_endpoint_url: Option<String>,
    /// `https_web` or `https_spiffe`.
    pub profile: Option<String>,
}

/// The plugin that writes a bundle ConfigMap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundlePlugin {
    /// `Notifier "k8sbundle"`: PEM (spiffe/spire `doc/plugin_server_notifier_k8sbundle.md`;
    /// deprecated in favour of BundlePublisher, `doc/spire_server.md`).
    K8sBundleNotifier,
    /// `BundlePublisher "k8s_configmap"` (spiffe/spire
    /// `doc/plugin_server_bundlepublisher_k8s_configmap.md`): `spiffe`, `jwks` or `pem`.
    K8sConfigMapPublisher,
}

impl std::fmt::Display for BundlePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BundlePlugin::K8sBundleNotifier => "Notifier k8sbundle",
            BundlePlugin::K8sConfigMapPublisher => "BundlePublisher k8s_configmap",
        })
    }
}

/// A ConfigMap key the server keeps its trust bundle in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleTarget {
    pub plugin: BundlePlugin,
    pub namespace: String,
    pub config_map: String,
    pub key: String,
    /// The BundlePublisher's `format` (`spiffe`, `jwks`, `pem`); the notifier writes PEM.
    pub format: Option<String>,
}

impl std::fmt::Display for BundleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.plugin)?;
        if let Some(format) = &self.format {
            write!(f, " (format {format})")?;
        }
        Ok(())
    }
}

/// Read a configuration block that HCL (and HCL-flavoured JSON) may give as an object, as a list
/// of objects (repeated blocks), or not at all. Lists are merged in order.
fn block<'v>(v: &'v Value, key: &str) -> Option<std::borrow::Cow<'v, Value>> {
    match v.get(key)? {
        Value::Array(items) => {
            let mut merged = serde_json::Map::new();
            for item in items {
                if let Value::Object(m) = item {
                    merged.extend(m.clone());
                }
            }
            Some(std::borrow::Cow::Owned(Value::Object(merged)))
        }
        other => Some(std::borrow::Cow::Borrowed(other)),
    }
}

fn scalar(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An HCL error on one line, as compilers write them: `server.conf:8:62: not valid HCL: expected
/// newline or eof`. Never the configuration's text: the parser's own message quotes (and
/// underlines) the whole line it failed on, and `server.conf` holds plugin data such as a
/// datastore's `connection_string` with its password.
fn hcl_problem(e: &hcl::Error) -> String {
    match e {
        hcl::Error::Parse(p) => format!(
            "server.conf:{}:{}: not valid HCL: {}",
            p.location().line(),
            p.location().column(),
            meshmove_model::redact::quoted(p.message().lines().next().unwrap_or_default())
        ),
        other => format!(
            "server.conf: not valid HCL: {}",
            meshmove_model::redact::quoted(other.to_string().lines().next().unwrap_or_default())
        ),
    }
}

/// A JSON error the same way: `server.conf:3:5: not valid JSON: expected `,` or `}``, lines
/// counted in the whole text.
fn json_problem(e: &serde_json::Error, skipped_lines: usize) -> String {
    let message = e.to_string();
    // serde_json appends " at line L column C"; the position is given in front instead.
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
    format!(
        "server.conf:{}:{}: not valid JSON: {}",
        e.line() + skipped_lines,
        e.column(),
        meshmove_model::redact::quoted(message)
    )
}

/// Parse `server.conf`, HCL or JSON.
pub fn parse_server_conf(text: &str) -> Result<ServerConfig, String> {
    let trimmed = text.trim_start();
    let root: Value = if trimmed.starts_with('{') {
        let skipped_lines = text[..text.len() - trimmed.len()].matches('\n').count();
        serde_json::from_str(trimmed).map_err(|e| json_problem(&e, skipped_lines))?
    } else {
        hcl::from_str(text).map_err(|e| hcl_problem(&e))?
    };
    let server = block(&root, "server").ok_or("server.conf has no `server` block")?;
    let mut cfg = ServerConfig {
        trust_domain: scalar(&server, "trust_domain"),
        socket_path: scalar(&server, "socket_path"),
        ..ServerConfig::default()
    };
    let mut duration = |key: &str| {
        let raw = scalar(&server, key)?;
        // SPIRE reads these strings with Go's time.ParseDuration (spiffe/spire
        // cmd/spire-server/cli/run/run.go): a bare number, `ca_ttl = 86400` or "86400", fails
        // there with "missing unit in duration", so it is a problem here too.
        match meshmove_model::duration::parse(&raw, meshmove_model::duration::Mode::Units) {
            Ok(d) => Some((raw, d)),
            Err(e) => {
                cfg.problems.push(format!("{key}: {e}"));
                None
            }
        }
    };
    let ca_ttl = duration("ca_ttl");
    let svid_ttl = duration("default_x509_svid_ttl").or_else(|| duration("default_svid_ttl"));
    cfg.ca_ttl = ca_ttl;
    cfg.x509_svid_ttl = svid_ttl;
    if let Some(fed) = block(&server, "federation") {
        cfg.bundle_endpoint = fed.get("bundle_endpoint").is_some();
        if let Some(with) = block(&fed, "federates_with") {
            for (td, rel) in with.as_object().into_iter().flatten() {
                let rel = match rel {
                    Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                let url = scalar(&rel, "bundle_endpoint_url")
                    // SPIRE before 1.0 named the endpoint by address and port.
                    .or_else(|| block(&rel, "bundle_endpoint").and_then(|b| scalar(&b, "address")))
                    .or_else(|| scalar(&rel, "bundle_endpoint_address"));
                let profile = block(&rel, "bundle_endpoint_profile")
                    .and_then(|p| p.as_object().and_then(|m| m.keys().next().cloned()))
                    .or_else(|| block(&rel, "bundle_endpoint").map(|_| "legacy".to_string()));
                cfg.federates_with.insert(td.clone(), FederationRelationship { bundle_endpoint_url: url, profile });
            }
        }
    }
    let plugins = block(&root, "plugins").map(|p| p.into_owned()).unwrap_or(Value::Null);
    let plugin_data = |kind: &str, name: &str| -> Option<Value> {
        let plugin = block(&plugins, kind).and_then(|k| block(&k, name).map(|n| n.into_owned()))?;
        Some(block(&plugin, "plugin_data").map(|d| d.into_owned()).unwrap_or(Value::Null))
    };
    if let Some(data) = plugin_data("Notifier", "k8sbundle")
        // With kube_config_file_path the notifier writes to another cluster.
        && scalar(&data, "kube_config_file_path").is_none()
    {
        // Defaults from doc/plugin_server_notifier_k8sbundle.md.
        cfg.bundle_targets.push(BundleTarget {
            plugin: BundlePlugin::K8sBundleNotifier,
            namespace: scalar(&data, "namespace").unwrap_or_else(|| "spire".into()),
            config_map: scalar(&data, "config_map").unwrap_or_else(|| "spire-bundle".into()),
            key: scalar(&data, "config_map_key").unwrap_or_else(|| "bundle.crt".into()),
            format: None,
        });
    }
    if let Some(data) = plugin_data("BundlePublisher", "k8s_configmap")
        && let Some(clusters) = block(&data, "clusters")
    {
        // Every field but kubeconfig_path is required; a cluster with kubeconfig_path is
        // another cluster (the chart's externalK8sConfigMap), not this one.
        for cluster in clusters.as_object().into_iter().flat_map(|m| m.values()) {
            let cluster = match cluster {
                Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            if scalar(&cluster, "kubeconfig_path").is_some_and(|p| !p.is_empty()) {
                continue;
            }
            let (Some(namespace), Some(config_map), Some(key)) =
                (scalar(&cluster, "namespace"), scalar(&cluster, "configmap_name"), scalar(&cluster, "configmap_key"))
            else {
                continue;
            };
            cfg.bundle_targets.push(BundleTarget {
                plugin: BundlePlugin::K8sConfigMapPublisher,
                namespace,
                config_map,
                key,
                format: scalar(&cluster, "format"),
            });
        }
    }
    Ok(cfg)
}

/// The controller manager's default `ignoreNamespaces`.
pub const DEFAULT_IGNORED_NAMESPACES: &[&str] = &["kube-system", "kube-public", "spire-system"];

/// The parts of a `ControllerManagerConfig` the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    pub trust_domain: Option<String>,
    pub cluster_name: Option<String>,
    pub cluster_domain: Option<String>,
    pub class_name: Option<String>,
    pub watch_classless: bool,
    pub ignore_namespaces: Vec<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            trust_domain: None,
            cluster_name: None,
            cluster_domain: None,
            class_name: None,
            watch_classless: false,
            ignore_namespaces: DEFAULT_IGNORED_NAMESPACES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl ControllerConfig {
    /// Whether a ClusterSPIFFEID with `class_name` is reconciled: with no className configured
    /// only classless resources are; with one, resources of that class, and classless ones when
    /// `watchClassless` is set.
    pub fn serves_class(&self, class_name: Option<&str>) -> bool {
        let mine = self.class_name.as_deref().filter(|c| !c.is_empty());
        match (class_name.filter(|c| !c.is_empty()), mine) {
            (None, None) => true,
            (None, Some(_)) => self.watch_classless,
            (Some(theirs), Some(mine)) => theirs == mine,
            (Some(_), None) => false,
        }
    }
}

/// Parse a `ControllerManagerConfig` document; `None` when the document is not one.
pub fn parse_controller_config(text: &str) -> Option<Result<ControllerConfig, String>> {
    if !text.contains("ControllerManagerConfig") {
        return None;
    }
    let v = match parse_yaml(text) {
        Ok(v) => v,
        Err(e) => return Some(Err(format!("controller manager config is not valid YAML: {e}"))),
    };
    if v.get("kind").and_then(Value::as_str) != Some("ControllerManagerConfig") {
        return None;
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let mut cfg = ControllerConfig {
        trust_domain: s("trustDomain"),
        cluster_name: s("clusterName"),
        cluster_domain: s("clusterDomain"),
        class_name: s("className"),
        watch_classless: v.get("watchClassless").and_then(Value::as_bool).unwrap_or(false),
        ..ControllerConfig::default()
    };
    if let Some(list) = v.get("ignoreNamespaces").and_then(Value::as_array) {
        cfg.ignore_namespaces = list.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
    }
    Some(Ok(cfg))
}

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
pub fn parse_mesh_config(text: &str) -> Result<MeshConfig, String> {
    let v = parse_yaml(text).map_err(|e| format!("mesh config is not valid YAML: {e}"))?;
    if !(v.is_object() || v.is_null()) {
        return Err("mesh config is not a mapping".into());
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
pub fn parse_injector_config(text: &str) -> Result<InjectorConfig, String> {
    let v = parse_yaml(text).map_err(|e| format!("injector config is not valid YAML: {e}"))?;
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
pub fn template_mounts_socket(template: &str, socket_path: &str) -> Result<(), String> {
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
            return Err(format!("adds no volume with CSI driver {}", crate::CSI_DRIVER_NAME));
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
            Err(format!(
                "does not mount the {} volume into istio-proxy at {socket_path}",
                crate::CSI_DRIVER_NAME
            ))
        };
    }
    match (template.contains(crate::CSI_DRIVER_NAME), template.contains(socket_path)) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("never mentions CSI driver {}", crate::CSI_DRIVER_NAME)),
        (true, false) => Err(format!("never mentions the socket path {socket_path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HCL: &str = r#"
server {
    bind_address = "0.0.0.0"
    bind_port = "8081"
    trust_domain = "example.org"
    data_dir = "/run/spire/data"
    socket_path = "/run/spire/sockets/server.sock"
    ca_ttl = "48h"
    default_x509_svid_ttl = "2h"
    # federation with a partner
    federation {
        bundle_endpoint {
            address = "0.0.0.0"
            port = 8443
        }
        federates_with "partner.test" {
            bundle_endpoint_url = "https://spire.partner.test:8443"
            bundle_endpoint_profile "https_spiffe" {
                endpoint_spiffe_id = "spiffe://partner.test/spire/server"
            }
        }
        federates_with "half.test" {
            bundle_endpoint_url = "https://half.test"
        }
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "/run/spire/data/datastore.sqlite3"
        }
    }
    Notifier "k8sbundle" {
        plugin_data {
            namespace = "spire-system"
        }
    }
}
"#;

    #[test]
    fn syntax_errors_never_quote_the_configuration() {
        let conf = "server {\n  trust_domain = \"example.org\"\n}\nplugins {\n  DataStore \"sql\" {\n    plugin_data {\n      connection_string = \"postgres://spire:S3cretPassw0rd@db/spire\" ]\n    }\n  }\n}\n";
        let e = parse_server_conf(conf).unwrap_err();
        assert!(!e.contains("S3cret") && !e.contains("postgres://"), "{e}");
        assert!(e.starts_with("server.conf:7:") && e.contains(": not valid HCL: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let e = parse_server_conf("{\"server\": {\"trust_domain\": \"S3cret").unwrap_err();
        assert!(!e.contains("S3cret"), "{e}");
    }

    #[test]
    fn server_conf_hcl() {
        let c = parse_server_conf(HCL).unwrap();
        assert_eq!(c.trust_domain.as_deref(), Some("example.org"));
        assert_eq!(c.ca_ttl(), Duration::from_secs(48 * 3600));
        assert_eq!(c.x509_svid_ttl(), Duration::from_secs(2 * 3600));
        assert_eq!(c.socket_path.as_deref(), Some("/run/spire/sockets/server.sock"));
        assert!(c.bundle_endpoint);
        let p = &c.federates_with["partner.test"];
        assert_eq!(p.bundle_endpoint_url.as_deref(), Some("https://spire.partner.test:8443"));
        assert_eq!(p.profile.as_deref(), Some("https_spiffe"));
        assert_eq!(c.federates_with["half.test"].profile, None);
        assert_eq!(
            c.bundle_targets,
            [BundleTarget {
                plugin: BundlePlugin::K8sBundleNotifier,
                namespace: "spire-system".into(),
                config_map: "spire-bundle".into(),
                key: "bundle.crt".into(),
                format: None,
            }]
        );
    }

    #[test]
    fn server_conf_hcl_with_object_attributes_and_old_field_names() {
        // The shape of Istio's older SPIRE quickstart: `ca_subject` as an object with commas,
        // `default_svid_ttl`, and a notifier writing another ConfigMap and key.
        let conf = r#"
server {
  trust_domain = "example.org"
  default_svid_ttl = "1h"
  ca_subject = {
    country = ["US"],
    organization = ["SPIFFE"],
    common_name = "",
  }
}
plugins {
  KeyManager "memory" {
    plugin_data {
    }
  }
  Notifier "k8sbundle" {
    plugin_data {
      namespace = "spire"
      config_map = "trust-bundle"
      config_map_key = "root-cert.pem"
    }
  }
}
health_checks {
  listener_enabled = true
}
"#;
        let c = parse_server_conf(conf).unwrap();
        assert_eq!(c.trust_domain.as_deref(), Some("example.org"));
        assert_eq!(c.x509_svid_ttl.as_ref().map(|(raw, _)| raw.as_str()), Some("1h"));
        assert_eq!(c.ca_ttl(), DEFAULT_CA_TTL);
        let n = &c.bundle_targets[0];
        assert_eq!((n.config_map.as_str(), n.key.as_str()), ("trust-bundle", "root-cert.pem"));
    }

    #[test]
    fn server_conf_json_as_the_hardened_chart_writes_it() {
        let json = r#"{"server": {"trust_domain": "prod.example", "ca_ttl": "24h",
            "federation": {"bundle_endpoint": [{"address": "0.0.0.0", "port": 8443}]}},
            "plugins": {"Notifier": [{"k8sbundle": [{"plugin_data": [{"namespace": "spire-system", "config_map": "bundle"}]}]}]}}"#;
        let c = parse_server_conf(json).unwrap();
        assert_eq!(c.trust_domain.as_deref(), Some("prod.example"));
        assert_eq!(c.x509_svid_ttl(), DEFAULT_X509_SVID_TTL);
        assert_eq!(c.socket_path, None);
        assert!(c.bundle_endpoint);
        assert_eq!(c.bundle_targets[0].config_map, "bundle");
    }

    #[test]
    fn bundle_publisher_as_the_official_chart_renders_it() {
        // The chart renders its YAML configuration to JSON with plugins as lists of one-key
        // objects, and BundlePublisher k8s_configmap's clusters as a list (chart-internal, plus
        // one per external cluster, which has a kubeconfig_path).
        let json = r#"{"server": {"trust_domain": "example.org"},
            "plugins": {"BundlePublisher": [{"k8s_configmap": {"plugin_data": {"clusters": [
                {"chart-internal": {"configmap_key": "bundle.spiffe", "configmap_name": "spire-bundle", "format": "spiffe", "namespace": "spire-system"}},
                {"edge": {"kubeconfig_path": "/kubeconfigs/edge", "configmap_key": "bundle.spiffe", "configmap_name": "spire-bundle-upstream", "format": "spiffe", "namespace": "spire-system"}}
            ]}}}]}}"#;
        let c = parse_server_conf(json).unwrap();
        assert_eq!(
            c.bundle_targets,
            [BundleTarget {
                plugin: BundlePlugin::K8sConfigMapPublisher,
                namespace: "spire-system".into(),
                config_map: "spire-bundle".into(),
                key: "bundle.spiffe".into(),
                format: Some("spiffe".into()),
            }]
        );
        assert_eq!(c.bundle_targets[0].to_string(), "BundlePublisher k8s_configmap (format spiffe)");
        // HCL, as SPIRE's documentation writes it.
        let hcl = "server { trust_domain = \"x\" }\nplugins {\n  BundlePublisher \"k8s_configmap\" {\n    plugin_data {\n      clusters = {\n        \"local\" = {\n          configmap_name = \"example.org\"\n          configmap_key = \"bundle\"\n          namespace = \"spire\"\n          format = \"pem\"\n        }\n      }\n    }\n  }\n}\n";
        let c = parse_server_conf(hcl).unwrap();
        assert_eq!(c.bundle_targets.len(), 1);
        assert_eq!((c.bundle_targets[0].key.as_str(), c.bundle_targets[0].format.as_deref()), ("bundle", Some("pem")));
    }

    #[test]
    fn server_conf_errors_are_explained() {
        assert!(parse_server_conf("server {").unwrap_err().contains("HCL"));
        assert!(parse_server_conf("{\"server\": ").unwrap_err().contains("JSON"));
        assert_eq!(
            parse_server_conf("\n\n{\"server\": {\n  \"trust_domain\": \"x\",\n}}").unwrap_err(),
            "server.conf:5:1: not valid JSON: trailing comma"
        );
        assert!(parse_server_conf("agent { trust_domain = \"x\" }").unwrap_err().contains("no `server` block"));
        let c = parse_server_conf("server {\n trust_domain = \"x\"\n ca_ttl = \"soon\"\n}").unwrap();
        assert_eq!(c.ca_ttl, None);
        assert_eq!(c.problems.len(), 1);
    }

    #[test]
    fn controller_config_and_classes() {
        let c = parse_controller_config(
            "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\nclusterName: c1\ntrustDomain: example.org\nclassName: spire-mgmt-spire\nwatchClassless: false\nignoreNamespaces: [kube-system, \"^spire\"]\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.trust_domain.as_deref(), Some("example.org"));
        assert_eq!(c.ignore_namespaces, ["kube-system", "^spire"]);
        assert!(c.serves_class(Some("spire-mgmt-spire")));
        assert!(!c.serves_class(None));
        assert!(!c.serves_class(Some("other")));
        let d = ControllerConfig::default();
        assert!(d.serves_class(None) && !d.serves_class(Some("x")));
        assert!(parse_controller_config("kind: ConfigMap").is_none());
    }

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
            template_mounts_socket(&no_volume, "/run/secrets/workload-spiffe-uds").unwrap_err().contains("no volume")
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
