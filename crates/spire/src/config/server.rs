//! The SPIRE server's `server.conf`: HCL in hand-written installs and Istio's sample, JSON in
//! the hardened Helm charts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::ConfigError;

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
fn hcl_problem(e: &hcl::Error) -> ConfigError {
    match e {
        hcl::Error::Parse(p) => ConfigError::ServerHclAt {
            line: p.location().line(),
            column: p.location().column(),
            message: meshmove_model::redact::quoted(p.message().lines().next().unwrap_or_default()),
        },
        other => ConfigError::ServerHcl {
            message: meshmove_model::redact::quoted(other.to_string().lines().next().unwrap_or_default()),
        },
    }
}

/// A JSON error the same way: `server.conf:3:5: not valid JSON: expected `,` or `}``, lines
/// counted in the whole text.
fn json_problem(e: &serde_json::Error, skipped_lines: usize) -> ConfigError {
    let message = e.to_string();
    // serde_json appends " at line L column C"; the position is given in front instead.
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
    ConfigError::ServerJson {
        line: e.line() + skipped_lines,
        column: e.column(),
        message: meshmove_model::redact::quoted(message),
    }
}

/// Parse `server.conf`, HCL or JSON.
pub fn parse_server_conf(text: &str) -> Result<ServerConfig, ConfigError> {
    let trimmed = text.trim_start();
    let root: Value = if trimmed.starts_with('{') {
        let skipped_lines = text[..text.len() - trimmed.len()].matches('\n').count();
        serde_json::from_str(trimmed).map_err(|e| json_problem(&e, skipped_lines))?
    } else {
        hcl::from_str(text).map_err(|e| hcl_problem(&e))?
    };
    let server = block(&root, "server").ok_or(ConfigError::NoServerBlock)?;
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
        let e = parse_server_conf(conf).unwrap_err().to_string();
        assert!(!e.contains("S3cret") && !e.contains("postgres://"), "{e}");
        assert!(e.starts_with("server.conf:7:") && e.contains(": not valid HCL: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let e = parse_server_conf("{\"server\": {\"trust_domain\": \"S3cret").unwrap_err().to_string();
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
        assert!(matches!(parse_server_conf("server {").unwrap_err(), ConfigError::ServerHclAt { .. }));
        assert!(matches!(parse_server_conf("{\"server\": ").unwrap_err(), ConfigError::ServerJson { .. }));
        assert_eq!(
            parse_server_conf("\n\n{\"server\": {\n  \"trust_domain\": \"x\",\n}}").unwrap_err().to_string(),
            "server.conf:5:1: not valid JSON: trailing comma"
        );
        assert_eq!(parse_server_conf("agent { trust_domain = \"x\" }").unwrap_err(), ConfigError::NoServerBlock);
        let c = parse_server_conf("server {\n trust_domain = \"x\"\n ca_ttl = \"soon\"\n}").unwrap();
        assert_eq!(c.ca_ttl, None);
        assert_eq!(c.problems.len(), 1);
    }
}
