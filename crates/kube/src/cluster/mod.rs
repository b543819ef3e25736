//! Talking to a live cluster: kubeconfig handling as kubectl does it, and listing kinds into an
//! [`Inventory`](meshmove_model::inventory::Inventory).
//!
//! Configuration follows kubectl: `--kubeconfig` or `KUBECONFIG` or `~/.kube/config`, then
//! in-cluster configuration when no kubeconfig exists; `--context`, `--cluster`, `--user`;
//! impersonation with `--as`/`--as-group`; exec credential plugins through kube's loader. The
//! default namespace comes from the context, not "all namespaces".

mod fetch;
mod load;

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use meshmove_model::duration::{DurationError, Mode};
use meshmove_model::redact;

pub use fetch::{BY_REFERENCE, Fetched, fetch_into, get_named, load_by_reference, load_readable_by_reference};
pub use load::{load, load_readable, unread_error};

/// kubectl's cluster flags as plain data (the binaries fill it from clap).
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// `-n`: overrides the context's namespace.
    pub namespace: Option<String>,
    /// `-A`: every namespace.
    pub all_namespaces: bool,
    pub impersonate: Option<String>,
    pub impersonate_groups: Vec<String>,
    /// `--request-timeout`; `None` or zero means no timeout.
    pub request_timeout: Option<Duration>,
}

/// Errors reaching a cluster. The CLI maps all of them to exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or used. `detail` says where (line and column) and what
    /// is wrong without quoting the file: a kubeconfig holds bearer tokens and client keys, and
    /// the YAML reader's own message shows the lines around the error. (The reader's error is
    /// not kept as a source for the same reason: error chains are printed.)
    #[error("cannot load kubeconfig {file}: {detail}")]
    Kubeconfig { file: String, detail: String },
    #[error("no kubeconfig found and not running in a cluster: {source}")]
    NoConfig { source: kube::config::InferConfigError },
    #[error("cannot build a client for {context}: {source}")]
    Client { context: String, source: kube::Error },
    #[error("cluster {context} is unreachable: {source}")]
    Unreachable { context: String, source: kube::Error },
    #[error("cluster {context} refused the credentials ({code}): {message}")]
    Unauthorized { context: String, code: u16, message: String, source: kube::Error },
    #[error("{verb} {resource}: {message}")]
    Api { verb: &'static str, resource: String, message: String, source: kube::Error },
    /// Every list the command needed was refused (403) or not found (404): nothing was read, so
    /// nothing can be checked. `failures` has one line per kind; `hint` names the RBAC it needs.
    #[error("nothing could be read from cluster {context}: every list was refused or not found\n{}\n  hint: {hint}", lines(.failures))]
    NothingRead { context: String, failures: Vec<String>, hint: String },
    /// Some lists were refused or not found, and the command (`action`) cannot work from a
    /// partial view (it would write, or give a verdict, from what it could not see).
    #[error("cannot {action} from a partial view of cluster {context}: some lists were refused or not found\n{}\n  hint: {hint}", lines(.failures))]
    Unread { context: String, action: String, failures: Vec<String>, hint: String },
}

fn lines(failures: &[String]) -> String {
    failures.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
}

/// A connected client plus what kubectl would show about it.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub context: String,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    pub all_namespaces: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("context", &self.context).field("namespace", &self.namespace).finish()
    }
}

impl ClusterOptions {
    /// The namespace commands act on without touching the network: `-n`, else the kubeconfig
    /// context's namespace, else `default`. Works offline (used by `-f` runs too).
    pub fn default_namespace(&self) -> String {
        if let Some(ns) = &self.namespace {
            return ns.clone();
        }
        self.read_kubeconfig()
            .ok()
            .flatten()
            .and_then(|kc| {
                let ctx_name = self.context.clone().or(kc.current_context.clone())?;
                let ctx = kc.contexts.iter().find(|c| c.name == ctx_name)?;
                ctx.context.as_ref()?.namespace.clone()
            })
            .unwrap_or_else(|| "default".to_string())
    }

    fn read_kubeconfig(&self) -> Result<Option<Kubeconfig>, kube::config::KubeconfigError> {
        match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path).map(Some),
            None => Kubeconfig::from_env().and_then(|env| match env {
                Some(kc) => Ok(Some(kc)),
                None => match Kubeconfig::read() {
                    Ok(kc) => Ok(Some(kc)),
                    // No file at the default path: in-cluster configuration may still apply.
                    Err(kube::config::KubeconfigError::ReadConfig(e, _)) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok(None)
                    }
                    Err(e) => Err(e),
                },
            }),
        }
    }

    /// Which kubeconfig is read, for messages: `--kubeconfig`, else `$KUBECONFIG`, else the default.
    fn kubeconfig_file(&self) -> String {
        match (&self.kubeconfig, std::env::var_os("KUBECONFIG")) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(env)) if !env.is_empty() => format!("$KUBECONFIG ({})", env.to_string_lossy()),
            _ => "~/.kube/config".to_string(),
        }
    }

    /// Build a client. Nothing is sent yet: errors reaching the server surface on first use.
    pub async fn connect(&self) -> Result<Connection, ClusterError> {
        let kco = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let kubeconfig_error = |e: kube::config::KubeconfigError| ClusterError::Kubeconfig {
            file: self.kubeconfig_file(),
            detail: describe_kubeconfig_error(&e),
        };
        let (mut config, context) = match self.read_kubeconfig().map_err(kubeconfig_error)? {
            Some(kc) => {
                let context = self.context.clone().or(kc.current_context.clone()).unwrap_or_default();
                let config = kube::Config::from_custom_kubeconfig(kc, &kco).await.map_err(kubeconfig_error)?;
                (config, context)
            }
            None => {
                let config = kube::Config::infer().await.map_err(|source| ClusterError::NoConfig { source })?;
                (config, "in-cluster".to_string())
            }
        };
        if let Some(user) = &self.impersonate {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.impersonate_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(self.impersonate_groups.clone());
        }
        if let Some(t) = self.request_timeout.filter(|t| !t.is_zero()) {
            config.connect_timeout = Some(t);
            config.read_timeout = Some(t);
            config.write_timeout = Some(t);
        }
        let namespace = self.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config)
            .map_err(|source| ClusterError::Client { context: context.clone(), source })?;
        Ok(Connection { client, context, namespace, all_namespaces: self.all_namespaces })
    }
}

/// What is wrong with a kubeconfig, without a byte of its content: for a YAML error the line,
/// column and the reader's description with quoted text removed (serde quotes the offending value,
/// as in `invalid type: string "..."`), never the source excerpt the reader renders around it.
fn describe_kubeconfig_error(e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as K;
    match e {
        K::Parse(err) => {
            let at = err.location().map(|l| (l.line(), l.column()));
            redact::yaml_error(&err.without_snippet().to_string(), at)
        }
        K::ReadConfig(io, path) => format!("cannot read {}: {io}", path.display()),
        other => redact::quoted(&other.to_string()),
    }
}

/// A duration flag that cannot be read (clap shows it after the flag and its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagDurationError {
    #[error("invalid duration: {0}")]
    Duration(DurationError),
    #[error("invalid timeout: {0}")]
    Timeout(DurationError),
}

/// Parse this product's duration flags (`--timeout 5m`, `--interval 30s`): every number needs a
/// unit (`500` is an error that suggests `500ms` or `500s`); `0` is zero.
pub fn parse_timeout(s: &str) -> Result<Duration, FlagDurationError> {
    meshmove_model::duration::parse(s, Mode::Units).map_err(FlagDurationError::Duration)
}

/// Parse kubectl's `--request-timeout`: `0` (none), a bare integer of seconds, or a duration with
/// units like `1m30s` — client-go's `clientcmd.ParseTimeout`, so the flag means what it means to
/// kubectl.
pub fn parse_request_timeout(s: &str) -> Result<Duration, FlagDurationError> {
    meshmove_model::duration::parse(s, Mode::KubectlTimeout).map_err(FlagDurationError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kubeconfig_errors_name_the_place_but_never_quote_the_file() {
        const TOKEN: &str = "SuperSecretBearerToken123";
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            // A syntax error two lines below the token.
            format!("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {TOKEN}\n    bad: [unclosed\ncontexts: []\n"),
            // A type error on the token line itself: serde quotes the value it did not expect.
            format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://x\n    insecure-skip-tls-verify: {TOKEN}\n"),
            format!("apiVersion: v1\nkind: Config\nusers: \"{TOKEN}\"\n"),
        ];
        for (i, text) in cases.iter().enumerate() {
            let path = dir.path().join(format!("config-{i}"));
            std::fs::write(&path, text).unwrap();
            let opts = ClusterOptions { kubeconfig: Some(path.clone()), ..Default::default() };
            let err = opts.connect().await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(TOKEN) && !shown.contains("SuperSecret"), "case {i}: {shown}");
            assert!(!shown.contains('\n'), "no source excerpt: {shown}");
            assert!(shown.contains(&path.display().to_string()), "names the file: {shown}");
            assert!(shown.contains("line ") && shown.contains("column "), "case {i}: {shown}");
            assert!(std::error::Error::source(&err).is_none(), "no source to print in the chain");
        }
    }

    #[test]
    fn request_timeouts_parse_like_kubectl() {
        assert_eq!(parse_request_timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_request_timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_request_timeout("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_request_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_request_timeout("5x").unwrap_err().to_string().contains("5x"));
        assert!(parse_request_timeout("").is_err());
        assert!(parse_request_timeout("m").is_err());
    }

    #[test]
    fn product_durations_need_units() {
        assert_eq!(parse_timeout("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_timeout("500").unwrap_err().to_string(), "invalid duration: 500 has no unit: write 500ms or 500s");
    }
}
