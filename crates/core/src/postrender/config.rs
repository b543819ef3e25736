//! The post-renderer's configuration: a YAML file (`--config`) with a documented schema, flags
//! on top. Unknown keys are errors that name the key, so a typo never silently disables a
//! setting.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::inject::{JobPolicy, LabelOptions, MeshMode, ProbeSettings};
use crate::policies::PolicyOptions;

/// Which injections run. All on by default: `post-render` alone does the whole job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Injections {
    pub labels: bool,
    pub probes: bool,
    pub network_policies: bool,
}

impl Default for Injections {
    fn default() -> Self {
        Injections { labels: true, probes: true, network_policies: true }
    }
}

/// Per-workload probe settings; unset fields inherit the global `probes` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeOverride {
    pub readiness_path: Option<String>,
    pub liveness_path: Option<String>,
    pub startup_path: Option<String>,
    pub slow_start: Option<bool>,
    pub period_seconds: Option<u32>,
    pub failure_threshold: Option<u32>,
    pub startup_failure_threshold: Option<u32>,
    pub skip: Option<bool>,
}

/// Probe defaults plus per-workload overrides keyed by workload name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// HTTP path for readiness probes; TCP probes when unset.
    pub readiness_path: Option<String>,
    /// HTTP path for liveness probes; TCP probes when unset.
    pub liveness_path: Option<String>,
    /// HTTP path for startup probes (slow starters only); TCP probes when unset.
    pub startup_path: Option<String>,
    pub period_seconds: u32,
    pub failure_threshold: u32,
    pub startup_failure_threshold: u32,
    pub overrides: BTreeMap<String, ProbeOverride>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        let d = ProbeSettings::default();
        ProbeConfig {
            readiness_path: d.readiness_path,
            liveness_path: d.liveness_path,
            startup_path: d.startup_path,
            period_seconds: d.period_seconds,
            failure_threshold: d.failure_threshold,
            startup_failure_threshold: d.startup_failure_threshold,
            overrides: BTreeMap::new(),
        }
    }
}

impl ProbeConfig {
    /// Settings for one workload: the defaults, with its override on top.
    pub fn for_workload(&self, name: &str) -> ProbeSettings {
        let o = self.overrides.get(name).cloned().unwrap_or_default();
        ProbeSettings {
            readiness_path: o.readiness_path.or_else(|| self.readiness_path.clone()),
            liveness_path: o.liveness_path.or_else(|| self.liveness_path.clone()),
            startup_path: o.startup_path.or_else(|| self.startup_path.clone()),
            slow_start: o.slow_start.unwrap_or(false),
            period_seconds: o.period_seconds.unwrap_or(self.period_seconds),
            failure_threshold: o.failure_threshold.unwrap_or(self.failure_threshold),
            startup_failure_threshold: o.startup_failure_threshold.unwrap_or(self.startup_failure_threshold),
            skip: o.skip.unwrap_or(false),
        }
    }
}

/// The whole configuration (schema documented in the README, "post-render configuration").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PostRenderConfig {
    pub mode: MeshMode,
    /// Istio revision for `istio.io/rev` (sidecar mode).
    pub revision: Option<String>,
    /// SPIRE-issued identities: `inject.istio.io/templates: "sidecar,spire"`.
    pub spire: bool,
    /// Jobs and CronJobs in sidecar mode: `exclude` from injection or inject as `native` sidecar.
    pub jobs: JobPolicy,
    /// Release name used in generated object names; inferred from `app.kubernetes.io/instance`.
    pub release: Option<String>,
    pub inject: Injections,
    pub probes: ProbeConfig,
    pub network_policies: PolicyOptions,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// `detail` names the line, column and what is wrong, never the file's text (see
    /// [`meshmove_model::redact`]).
    #[error("config {path}: {detail}")]
    Invalid { path: String, detail: String },
}

/// A YAML reader's error on a configuration file, without the file's text: line, column and
/// what is wrong (serde-saphyr would also render the lines around it and quote the value).
pub fn describe(e: &serde_saphyr::Error) -> String {
    meshmove_model::redact::yaml_error(&e.without_snippet().to_string(), e.location().map(|l| (l.line(), l.column())))
}

impl PostRenderConfig {
    /// Read a YAML configuration file; unknown keys and wrong types are errors naming the key
    /// and line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|e| ConfigError::Invalid { path: path.display().to_string(), detail: describe(&e) })
    }

    pub fn parse(text: &str) -> Result<Self, serde_saphyr::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text)
    }

    pub fn label_options(&self) -> LabelOptions {
        LabelOptions { mode: self.mode, revision: self.revision.clone(), spire: self.spire, jobs: self.jobs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_full_default_job() {
        let c = PostRenderConfig::parse("").unwrap();
        assert_eq!(c.mode, MeshMode::Sidecar);
        assert!(c.inject.labels && c.inject.probes && c.inject.network_policies);
    }

    #[test]
    fn full_config_parses_and_overrides_inherit() {
        let c = PostRenderConfig::parse(
            "mode: ambient\nrevision: 1-24\njobs: native\ninject:\n  probes: false\nprobes:\n  readinessPath: /ready\n  overrides:\n    llm:\n      startupPath: /startup\n      slowStart: true\nnetworkPolicies:\n  ingressNamespaces: [gw]\n  egress: true\n",
        )
        .unwrap();
        assert_eq!(c.mode, MeshMode::Ambient);
        assert!(!c.inject.probes && c.inject.labels);
        let llm = c.probes.for_workload("llm");
        assert_eq!(llm.readiness_path.as_deref(), Some("/ready"));
        assert_eq!(llm.startup_path.as_deref(), Some("/startup"));
        assert!(llm.slow_start);
        assert!(!c.probes.for_workload("api").slow_start);
        assert_eq!(c.network_policies.ingress_namespaces, ["gw"]);
        assert_eq!(c.network_policies.dns_namespace, "kube-system");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = PostRenderConfig::parse("mode: sidecar\ninjekt:\n  labels: false\n").unwrap_err().to_string();
        assert!(e.contains("injekt"), "{e}");
        let e = PostRenderConfig::parse("probes:\n  overrides:\n    api:\n      readynessPath: /r\n").unwrap_err().to_string();
        assert!(e.contains("readynessPath"), "{e}");
        let e = PostRenderConfig::parse("mode: sidekar\n").unwrap_err().to_string();
        assert!(e.contains("sidekar"), "{e}");
    }
}
