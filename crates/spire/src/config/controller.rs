//! spire-controller-manager's `ControllerManagerConfig` (YAML).

use serde_json::Value;

use super::{ConfigError, parse_yaml};

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
pub fn parse_controller_config(text: &str) -> Option<Result<ControllerConfig, ConfigError>> {
    if !text.contains("ControllerManagerConfig") {
        return None;
    }
    let v = match parse_yaml(text) {
        Ok(v) => v,
        Err(e) => return Some(Err(ConfigError::ControllerYaml(Box::new(e)))),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
