//! Talking to a live cluster: kubeconfig handling as kubectl does it, and listing kinds into an
//! [`Inventory`](meshmove_model::inventory::Inventory).
//!
//! Configuration follows kubectl: `--kubeconfig` or `KUBECONFIG` or `~/.kube/config`, then
//! in-cluster configuration when no kubeconfig exists; `--context`, `--cluster`, `--user`;
//! impersonation with `--as`/`--as-group`; exec credential plugins through kube's loader. The
//! default namespace comes from the context, not "all namespaces".

mod load;

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use load::load;

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
    #[error("cannot load kubeconfig: {source}")]
    Kubeconfig { source: kube::config::KubeconfigError },
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

    /// Build a client. Nothing is sent yet: errors reaching the server surface on first use.
    pub async fn connect(&self) -> Result<Connection, ClusterError> {
        let kco = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let (mut config, context) = match self.read_kubeconfig().map_err(|source| ClusterError::Kubeconfig { source })? {
            Some(kc) => {
                let context = self.context.clone().or(kc.current_context.clone()).unwrap_or_default();
                let config = kube::Config::from_custom_kubeconfig(kc, &kco)
                    .await
                    .map_err(|source| ClusterError::Kubeconfig { source })?;
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

/// Parse kubectl's `--request-timeout` values: `0` (none), a bare number of seconds, or a
/// duration with units `h`, `m`, `s`, `ms` combined like `1m30s`.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    meshmove_model::duration::parse(s).map_err(|e| format!("invalid timeout: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_kubectl() {
        assert_eq!(parse_timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_timeout("5x").unwrap_err().contains("5x"));
        assert!(parse_timeout("").is_err());
        assert!(parse_timeout("m").is_err());
    }
}
