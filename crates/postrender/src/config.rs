//! The post-renderer's configuration: a YAML file (`--config`) with a documented schema, flags
//! on top. Unknown keys are errors that name the key, so a typo never silently disables a
//! setting.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::{Location, Spanned};

use crate::inject::{JobPolicy, LabelOptions, MeshMode, ProbeHandler, ProbePort, ProbeSettings, ProbeSpec};
use meshmove_isolation::policies::PolicyOptions;
use meshmove_model::redact::saphyr_error;

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

/// A probe's kind of check, stated explicitly: `tcp` or `none` return a workload to a TCP probe
/// or to no probe of that kind whatever the global settings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeType {
    Http,
    Tcp,
    None,
}

/// A probe port in the configuration: a number or a container port's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u32),
    Name(String),
}

/// One probe kind (`readiness`, `liveness`, `startup`), globally or for one workload. Unset fields
/// inherit; Kubernetes' field semantics and minimums
/// (<https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes>)
/// are checked when the file is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProbeFields {
    /// `http` (needs a `path`, here or inherited), `tcp` or `none`; `http` when a path is given.
    #[serde(rename = "type")]
    pub kind: Option<Spanned<ProbeType>>,
    pub path: Option<Spanned<String>>,
    pub port: Option<Spanned<PortRef>>,
    pub initial_delay_seconds: Option<u32>,
    pub period_seconds: Option<Spanned<u32>>,
    pub timeout_seconds: Option<Spanned<u32>>,
    pub failure_threshold: Option<Spanned<u32>>,
    pub success_threshold: Option<Spanned<u32>>,
}

impl ProbeFields {
    /// Whether this section says how to probe (a type or a path).
    fn sets_handler(&self) -> bool {
        self.kind.is_some() || self.path.is_some()
    }
}

/// An HTTP path key: absent, `null` (TCP, overriding an inherited path) or a path. The empty
/// string is refused where it is read (line and column), since Kubernetes would probe `/`
/// with a path nobody wrote.
fn path_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    if let Some(p) = &v {
        check_path(p).map_err(serde::de::Error::custom)?;
    }
    Ok(Some(v))
}

/// A global HTTP path key (`null` is the default: TCP).
fn global_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(path_value(d)?.flatten())
}

/// An HTTP probe path the configuration refuses; the caller says where it was written (line and
/// column, or the flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbePathError {
    #[error("an HTTP probe path cannot be empty: write a path such as /healthz, or `type: tcp` / `type: none` for the probe")]
    Empty,
    #[error("an HTTP probe path must start with `/`: {path}")]
    NotAbsolute { path: String },
}

/// An HTTP probe path as the configuration accepts it (also for the `--*-path` flags).
pub fn check_path(p: &str) -> Result<(), ProbePathError> {
    if p.is_empty() {
        Err(ProbePathError::Empty)
    } else if !p.starts_with('/') {
        Err(ProbePathError::NotAbsolute { path: p.to_string() })
    } else {
        Ok(())
    }
}

/// Per-workload probe settings; unset fields inherit the global `probes` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeOverride {
    /// `Some(None)`: written as `null`, a TCP probe although a global path is set.
    #[serde(default, deserialize_with = "path_value")]
    pub readiness_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "path_value")]
    pub liveness_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "path_value")]
    pub startup_path: Option<Option<String>>,
    pub slow_start: Option<Spanned<bool>>,
    pub period_seconds: Option<Spanned<u32>>,
    pub failure_threshold: Option<Spanned<u32>>,
    pub startup_failure_threshold: Option<Spanned<u32>>,
    #[serde(default)]
    pub readiness: ProbeFields,
    #[serde(default)]
    pub liveness: ProbeFields,
    #[serde(default)]
    pub startup: ProbeFields,
    pub skip: Option<bool>,
}

/// Probe defaults plus per-workload overrides keyed by workload name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// HTTP path for readiness probes of workloads that serve HTTP; TCP probes when unset.
    #[serde(deserialize_with = "global_path")]
    pub readiness_path: Option<String>,
    /// HTTP path for liveness probes of workloads that serve HTTP; TCP probes when unset.
    #[serde(deserialize_with = "global_path")]
    pub liveness_path: Option<String>,
    /// HTTP path for startup probes; set, it adds a startup probe to workloads that serve HTTP.
    #[serde(deserialize_with = "global_path")]
    pub startup_path: Option<String>,
    pub period_seconds: Spanned<u32>,
    pub failure_threshold: Spanned<u32>,
    pub startup_failure_threshold: Spanned<u32>,
    pub readiness: ProbeFields,
    pub liveness: ProbeFields,
    pub startup: ProbeFields,
    pub overrides: BTreeMap<String, ProbeOverride>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        let d = ProbeSettings::default();
        ProbeConfig {
            readiness_path: None,
            liveness_path: None,
            startup_path: None,
            period_seconds: unplaced(d.readiness.period_seconds),
            failure_threshold: unplaced(d.readiness.failure_threshold),
            startup_failure_threshold: unplaced(d.startup.failure_threshold),
            readiness: ProbeFields::default(),
            liveness: ProbeFields::default(),
            startup: ProbeFields::default(),
            overrides: BTreeMap::new(),
        }
    }
}

/// A default value, which comes from no line of the file.
fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// Which probe kind a section configures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Readiness,
    Liveness,
    Startup,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Readiness => "readiness",
            Kind::Liveness => "liveness",
            Kind::Startup => "startup",
        }
    }
}

fn val<T: Copy>(s: &Option<Spanned<T>>) -> Option<T> {
    s.as_ref().map(|s| s.value)
}

/// A value that parsed but cannot be used, as the YAML reader reports errors: with its line and
/// column.
fn invalid(at: &Location, msg: String) -> serde_saphyr::Error {
    serde_saphyr::Error::Message { msg, location: *at }
}

impl ProbeConfig {
    /// The legacy `<kind>Path` key and the `<kind>` section of the global settings.
    fn global(&self, kind: Kind) -> (&Option<String>, &ProbeFields) {
        match kind {
            Kind::Readiness => (&self.readiness_path, &self.readiness),
            Kind::Liveness => (&self.liveness_path, &self.liveness),
            Kind::Startup => (&self.startup_path, &self.startup),
        }
    }

    /// One probe kind for a workload: the workload's section, its legacy keys, the global
    /// section, the global legacy keys, in that order; the first that sets a field wins.
    fn spec(&self, kind: Kind, o: &ProbeOverride) -> ProbeSpec {
        let (gpath, g) = self.global(kind);
        let (opath, of) = match kind {
            Kind::Readiness => (&o.readiness_path, &o.readiness),
            Kind::Liveness => (&o.liveness_path, &o.liveness),
            Kind::Startup => (&o.startup_path, &o.startup),
        };
        let handler_of = |f: &ProbeFields, inherited: Option<&String>, global: bool| -> ProbeHandler {
            match (val(&f.kind), f.path.as_ref().map(|p| &p.value).or(inherited)) {
                (Some(ProbeType::None), _) => ProbeHandler::None,
                (Some(ProbeType::Tcp), _) => ProbeHandler::Tcp,
                (_, Some(path)) => ProbeHandler::Http { path: path.clone(), global },
                (_, None) => ProbeHandler::Tcp,
            }
        };
        // A path inherited by a workload section that only says `type: http`.
        let inherited_path = opath.clone().flatten().or_else(|| g.path.as_ref().map(|p| p.value.clone())).or_else(|| gpath.clone());
        let handler = if of.sets_handler() {
            handler_of(of, inherited_path.as_ref(), false)
        } else if let Some(p) = opath {
            p.clone().map_or(ProbeHandler::Tcp, |path| ProbeHandler::Http { path, global: false })
        } else if g.sets_handler() {
            handler_of(g, gpath.as_ref(), true)
        } else {
            gpath.clone().map_or(ProbeHandler::Tcp, |path| ProbeHandler::Http { path, global: true })
        };
        let (o_failure, g_failure) = match kind {
            Kind::Startup => (val(&o.startup_failure_threshold), self.startup_failure_threshold.value),
            _ => (val(&o.failure_threshold), self.failure_threshold.value),
        };
        ProbeSpec {
            handler,
            port: of.port.as_ref().or(g.port.as_ref()).map(|p| match &p.value {
                PortRef::Number(n) => ProbePort::Number(u16::try_from(*n).unwrap_or(u16::MAX)),
                PortRef::Name(n) => ProbePort::Name(n.clone()),
            }),
            initial_delay_seconds: of.initial_delay_seconds.or(g.initial_delay_seconds),
            period_seconds: val(&of.period_seconds).or(val(&o.period_seconds)).or(val(&g.period_seconds)).unwrap_or(self.period_seconds.value),
            timeout_seconds: val(&of.timeout_seconds).or(val(&g.timeout_seconds)),
            failure_threshold: val(&of.failure_threshold).or(o_failure).or(val(&g.failure_threshold)).unwrap_or(g_failure),
            success_threshold: val(&of.success_threshold).or(val(&g.success_threshold)),
        }
    }

    /// Settings for one workload: the defaults, with its override on top.
    pub fn for_workload(&self, name: &str) -> ProbeSettings {
        let o = self.overrides.get(name).cloned().unwrap_or_default();
        // A startup probe is asked for by `slowStart`, by a startup path or type configured for
        // the workload, or by a startup type configured for all. (A global startup *path* asks
        // for it only where it applies, containers that serve HTTP: see `inject::probes`.)
        let startup_configured = o.startup.sets_handler()
            || matches!(o.startup_path, Some(Some(_)))
            || matches!(val(&self.startup.kind), Some(ProbeType::Tcp | ProbeType::Http));
        let startup = self.spec(Kind::Startup, &o);
        let slow_start = startup.handler != ProbeHandler::None && val(&o.slow_start).unwrap_or(startup_configured);
        ProbeSettings {
            readiness: self.spec(Kind::Readiness, &o),
            liveness: self.spec(Kind::Liveness, &o),
            startup,
            slow_start,
            skip: o.skip.unwrap_or(false),
        }
    }

    /// Combinations the types cannot refuse, with the line and column of the value at fault.
    fn validate(&self) -> Result<(), serde_saphyr::Error> {
        for kind in [Kind::Readiness, Kind::Liveness, Kind::Startup] {
            let (gpath, g) = self.global(kind);
            check_fields(kind, g, gpath.is_some())?;
            for o in self.overrides.values() {
                let (opath, of) = match kind {
                    Kind::Readiness => (&o.readiness_path, &o.readiness),
                    Kind::Liveness => (&o.liveness_path, &o.liveness),
                    Kind::Startup => (&o.startup_path, &o.startup),
                };
                if of.sets_handler()
                    && opath.is_some()
                    && let Some(at) = of.kind.as_ref().map(|k| k.referenced).or(of.path.as_ref().map(|p| p.referenced))
                {
                    return Err(invalid(&at, format!("`{}Path` and `{}` both say how to probe: keep one", kind.key(), kind.key())));
                }
                let path_known = opath.clone().flatten().is_some() || gpath.is_some() || g.path.is_some();
                check_fields(kind, of, path_known)?;
                if kind == Kind::Startup
                    && let Some(slow) = &o.slow_start
                    && slow.value
                    && val(&of.kind) == Some(ProbeType::None)
                {
                    return Err(invalid(&slow.referenced, "`slowStart: true` asks for a startup probe that `startup: {type: none}` refuses".into()));
                }
            }
        }
        for v in [&self.period_seconds, &self.failure_threshold, &self.startup_failure_threshold] {
            at_least_one(v, "")?;
        }
        for v in self.overrides.values().flat_map(|o| [&o.period_seconds, &o.failure_threshold, &o.startup_failure_threshold]).flatten() {
            at_least_one(v, "")?;
        }
        Ok(())
    }
}

/// A count Kubernetes requires to be at least 1.
fn at_least_one(v: &Spanned<u32>, key: &str) -> Result<(), serde_saphyr::Error> {
    if v.value == 0 {
        return Err(invalid(&v.referenced, format!("{key}must be at least 1 (Kubernetes' minimum)")));
    }
    Ok(())
}

fn check_fields(kind: Kind, f: &ProbeFields, path_inherited: bool) -> Result<(), serde_saphyr::Error> {
    let key = kind.key();
    if let Some(p) = &f.path {
        check_path(&p.value).map_err(|e| invalid(&p.referenced, e.to_string()))?;
        if let Some(t) = &f.kind
            && t.value != ProbeType::Http
        {
            return Err(invalid(&p.referenced, format!("`{key}.path` is given with `type: {}`: a path needs `type: http`", if t.value == ProbeType::Tcp { "tcp" } else { "none" })));
        }
    }
    if let Some(t) = &f.kind
        && t.value == ProbeType::Http
        && f.path.is_none()
        && !path_inherited
    {
        return Err(invalid(&t.referenced, format!("`{key}` has `type: http` but no path: set `{key}.path`")));
    }
    if let Some(t) = &f.kind
        && t.value == ProbeType::None
        && let Some(at) = [&f.port.as_ref().map(|p| p.referenced), &f.period_seconds.as_ref().map(|p| p.referenced), &f.timeout_seconds.as_ref().map(|p| p.referenced), &f.failure_threshold.as_ref().map(|p| p.referenced), &f.success_threshold.as_ref().map(|p| p.referenced)]
            .into_iter()
            .flatten()
            .next()
    {
        return Err(invalid(at, format!("`{key}` has `type: none`: it takes no other settings")));
    }
    if let Some(p) = &f.port {
        match &p.value {
            PortRef::Number(n) if !(1..=65535).contains(n) => return Err(invalid(&p.referenced, format!("`{key}.port` must be 1-65535 or a port name"))),
            PortRef::Name(n) if !port_name(n) => {
                return Err(invalid(&p.referenced, format!("`{key}.port`: {n} is not a port name (IANA_SVC_NAME: 1-15 lowercase letters, digits and `-`, a letter, no `-` at either end or twice in a row)")));
            }
            _ => {}
        }
    }
    for (v, field) in [(&f.period_seconds, "periodSeconds"), (&f.timeout_seconds, "timeoutSeconds"), (&f.failure_threshold, "failureThreshold"), (&f.success_threshold, "successThreshold")] {
        if let Some(v) = v {
            at_least_one(v, &format!("`{key}.{field}` "))?;
        }
    }
    if let Some(s) = &f.success_threshold
        && kind != Kind::Readiness
        && s.value != 1
    {
        return Err(invalid(&s.referenced, format!("`{key}.successThreshold` must be 1: Kubernetes accepts other values for readiness probes only")));
    }
    Ok(())
}

/// A container port name as Kubernetes validates it (IANA_SVC_NAME).
fn port_name(n: &str) -> bool {
    (1..=15).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && n.bytes().any(|b| b.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
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
    /// The namespace Helm installs the release in, where the chart's objects without one go (from
    /// the command line, not the file): names service accounts exactly in the ambient
    /// AuthorizationPolicies the generator writes.
    #[serde(skip)]
    pub release_namespace: Option<String>,
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


impl PostRenderConfig {
    /// Read a YAML configuration file; unknown keys and wrong types are errors naming the key
    /// and line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|e| ConfigError::Invalid { path: path.display().to_string(), detail: saphyr_error(&e) })
    }

    pub fn parse(text: &str) -> Result<Self, serde_saphyr::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let cfg: Self = serde_saphyr::from_str(text)?;
        cfg.probes.validate()?;
        Ok(cfg)
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
        assert_eq!(llm.readiness.handler, ProbeHandler::Http { path: "/ready".into(), global: true });
        assert_eq!(llm.startup.handler, ProbeHandler::Http { path: "/startup".into(), global: false });
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

    fn err(text: &str) -> String {
        let e = PostRenderConfig::parse(text).expect_err(text);
        saphyr_error(&e)
    }

    /// The Flexdesk plan's probes (liveness /api/v2/health after 30 s every 10 s; readiness
    /// /api/v2/ready after 5 s every 5 s; startup /api/v2/startup after 10 s every 5 s, 30
    /// failures) on port 8000, as a global config.
    pub(crate) const PLAN: &str = "probes:
  liveness: {path: /api/v2/health, port: 8000, initialDelaySeconds: 30, periodSeconds: 10}
  readiness: {path: /api/v2/ready, port: 8000, initialDelaySeconds: 5, periodSeconds: 5, timeoutSeconds: 2}
  startup: {path: /api/v2/startup, port: 8000, initialDelaySeconds: 10, periodSeconds: 5, failureThreshold: 30}
  overrides:
    worker: {readiness: {type: tcp, port: 9000}, liveness: {type: none}}
    legacy: {readinessPath: null, startup: {type: none}}
";

    #[test]
    fn plan_shaped_probes_resolve_per_kind_and_workload() {
        let c = PostRenderConfig::parse(PLAN).unwrap();
        let api = c.probes.for_workload("api");
        assert_eq!(api.readiness.handler, ProbeHandler::Http { path: "/api/v2/ready".into(), global: true });
        assert_eq!((api.readiness.initial_delay_seconds, api.readiness.period_seconds, api.readiness.timeout_seconds), (Some(5), 5, Some(2)));
        assert_eq!(api.readiness.port, Some(ProbePort::Number(8000)));
        assert_eq!((api.liveness.initial_delay_seconds, api.liveness.period_seconds, api.liveness.failure_threshold), (Some(30), 10, 3));
        assert_eq!((api.startup.initial_delay_seconds, api.startup.period_seconds, api.startup.failure_threshold), (Some(10), 5, 30));
        assert!(!api.slow_start, "a global startup path adds startup probes where it applies (HTTP), decided per container");
        let worker = c.probes.for_workload("worker");
        assert_eq!(worker.readiness.handler, ProbeHandler::Tcp, "explicit tcp beats the global path");
        assert_eq!(worker.readiness.port, Some(ProbePort::Number(9000)));
        assert_eq!(worker.readiness.period_seconds, 5, "unset fields inherit the global readiness section");
        assert_eq!(worker.liveness.handler, ProbeHandler::None);
        let legacy = c.probes.for_workload("legacy");
        assert_eq!(legacy.readiness.handler, ProbeHandler::Tcp, "`readinessPath: null` returns a workload to TCP");
        assert_eq!(legacy.startup.handler, ProbeHandler::None);
        assert!(!legacy.slow_start);
    }

    #[test]
    fn legacy_keys_keep_working() {
        let c = PostRenderConfig::parse("probes:\n  readinessPath: /ready\n  periodSeconds: 7\n  failureThreshold: 5\n  startupFailureThreshold: 40\n  overrides:\n    api: {livenessPath: /live, slowStart: true, periodSeconds: 3}\n").unwrap();
        let api = c.probes.for_workload("api");
        assert_eq!(api.readiness.handler, ProbeHandler::Http { path: "/ready".into(), global: true });
        assert_eq!(api.liveness.handler, ProbeHandler::Http { path: "/live".into(), global: false });
        assert_eq!(api.startup.handler, ProbeHandler::Tcp);
        assert!(api.slow_start);
        assert_eq!((api.readiness.period_seconds, api.readiness.failure_threshold, api.startup.failure_threshold), (3, 5, 40));
        let other = c.probes.for_workload("other");
        assert_eq!((other.readiness.period_seconds, other.liveness.handler.clone()), (7, ProbeHandler::Tcp));
        assert_eq!(other.readiness.initial_delay_seconds, None, "Kubernetes' default: left out");
        // A startup path or type for a workload makes it a slow starter; a global startup type too.
        let c = PostRenderConfig::parse("probes:\n  overrides:\n    a: {startupPath: /s}\n    b: {startup: {type: tcp}}\n").unwrap();
        assert!(c.probes.for_workload("a").slow_start && c.probes.for_workload("b").slow_start && !c.probes.for_workload("c").slow_start);
        let c = PostRenderConfig::parse("probes:\n  startup: {type: tcp, periodSeconds: 5}\n").unwrap();
        assert!(c.probes.for_workload("any").slow_start);
    }

    #[test]
    fn invalid_probe_settings_are_refused_with_line_and_column() {
        for (text, line_col, what) in [
            ("probes:\n  livenessPath: \"\"\n", "line 2, column 17", "cannot be empty"),
            ("probes:\n  overrides:\n    api:\n      readinessPath: \"\"\n", "line 4, column 22", "cannot be empty"),
            ("probes:\n  readiness:\n    path: \"\"\n", "line 3, column 11", "cannot be empty"),
            ("probes:\n  readiness:\n    path: health\n", "line 3, column 11", "must start with"),
            ("probes:\n  readiness:\n    type: tcp\n    path: /ready\n", "line 4, column 11", "needs `type: http`"),
            ("probes:\n  liveness:\n    type: http\n", "line 3, column 11", "no path"),
            ("probes:\n  liveness:\n    successThreshold: 2\n", "line 3, column 23", "must be 1"),
            ("probes:\n  startup:\n    periodSeconds: 0\n", "line 3, column 20", "at least 1"),
            ("probes:\n  failureThreshold: 0\n", "line 2, column 21", "at least 1"),
            ("probes:\n  readiness:\n    type: none\n    timeoutSeconds: 3\n", "line 4, column 21", "takes no other settings"),
            ("probes:\n  readiness:\n    port: 70000\n", "line 3, column 11", "1-65535"),
            ("probes:\n  readiness:\n    port: Http_Port\n", "line 3, column 11", "not a port name"),
            ("probes:\n  overrides:\n    api:\n      slowStart: true\n      startup: {type: none}\n", "line 4, column 18", "slowStart"),
            ("probes:\n  overrides:\n    api:\n      readinessPath: /r\n      readiness: {type: tcp}\n", "line 5, column 25", "both say how to probe"),
        ] {
            let e = err(text);
            assert!(e.contains(line_col) && e.contains(what), "{text:?}: {e}");
        }
        // Readiness may ask for several successes; the inherited path satisfies `type: http`.
        PostRenderConfig::parse("probes:\n  readinessPath: /r\n  readiness: {successThreshold: 2}\n  overrides:\n    a: {readiness: {type: http}}\n").unwrap();
    }
}
