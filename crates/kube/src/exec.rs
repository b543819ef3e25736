//! Running a command in a container through the Kubernetes exec API: the WebSocket `pods/exec`
//! subresource, as `kubectl exec` uses it.
//!
//! The end of the command comes as a `metav1.Status` on the protocol's error channel: `Success`,
//! or `Failure` with the exit code in `details.causes[reason=ExitCode]` (kubelet's
//! `remotecommand` server, k8s.io/apiserver `pkg/util/remotecommand`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

/// What one command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// `Err(exit code 1)` and the like when the command failed.
    pub status: Result<(), CommandFailed>,
}

/// How a command that ran ended without success, as the exec protocol's final `Status` says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandFailed {
    /// The stream closed without a `Status`.
    #[error("the command ended without a status")]
    NoStatus,
    /// `details.causes[reason=ExitCode]`.
    #[error("exit code {0}")]
    ExitCode(String),
    /// A failure without an exit code (the container was not found, for instance): its message.
    #[error("{0}")]
    Status(String),
    /// A failure without an exit code or a message.
    #[error("the command failed")]
    Unspecified,
}

impl ExecOutput {
    /// `None` when the command succeeded, else `exit code 1: <first line of stderr, else of stdout>`.
    pub fn failure(&self) -> Option<String> {
        let why = self.status.as_ref().err()?;
        let said = self.stderr.lines().chain(self.stdout.lines()).map(str::trim).find(|l| !l.is_empty());
        Some(match said {
            Some(line) => format!("{why}: {line}"),
            None => why.to_string(),
        })
    }
}

/// Why a command could not be run (as opposed to running and failing, which is [`ExecOutput::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The API server does not serve `pods/exec` (404), or did not switch to a WebSocket.
    #[error("exec not available: HTTP {code}{detail}")]
    NotAvailable { code: u16, detail: String },
    /// RBAC denied `create pods/exec` (401, 403).
    #[error("exec not allowed: HTTP {code}{detail}")]
    NotAllowed { code: u16, detail: String },
    /// The call failed otherwise.
    #[error("exec failed: {0}")]
    Failed(String),
    /// The call was made but its streams broke.
    #[error("{0}")]
    Stream(String),
    /// The command did not end in time.
    #[error("exec timed out after {}s", .0.as_secs())]
    Timeout(Duration),
}

impl ExecError {
    fn from_kube(e: &kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => {
                let detail = if status.message.is_empty() { String::new() } else { format!(" {}", status.message) };
                match status.code {
                    404 => ExecError::NotAvailable { code: status.code, detail },
                    401 | 403 => ExecError::NotAllowed { code: status.code, detail },
                    _ => ExecError::Failed(format!("HTTP {}{detail}", status.code)),
                }
            }
            kube::Error::UpgradeConnection(kube::client::UpgradeConnectionError::ProtocolSwitch(code)) => {
                ExecError::NotAvailable {
                    code: code.as_u16(),
                    detail: " (the API server did not switch to a WebSocket)".into(),
                }
            }
            other => ExecError::Failed(other.to_string()),
        }
    }
}

/// A container to run commands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Runs commands through the exec API of one cluster, each within `timeout`.
#[derive(Clone)]
pub struct PodExec {
    client: kube::Client,
    timeout: Duration,
}

impl PodExec {
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        PodExec { client, timeout }
    }

    /// Run `argv` in `target` and collect its output (stdin closed).
    pub async fn run(&self, target: &Container, argv: Vec<String>) -> Result<ExecOutput, ExecError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        let params =
            AttachParams::default().container(target.container.clone()).stdin(false).stdout(true).stderr(true);
        let work = async {
            let mut process = pods.exec(&target.pod, argv, &params).await.map_err(|e| ExecError::from_kube(&e))?;
            let missing = |what: &str| ExecError::Stream(format!("exec gave no {what}"));
            let mut stdout = process.stdout().ok_or_else(|| missing("stdout stream"))?;
            let mut stderr = process.stderr().ok_or_else(|| missing("stderr stream"))?;
            let status = process.take_status().ok_or_else(|| missing("status"))?;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (r1, r2) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            r1.and(r2).map_err(|e| ExecError::Stream(format!("reading the command's output: {e}")))?;
            let status = status.await;
            drop((stdout, stderr));
            process.join().await.map_err(|e| ExecError::Stream(format!("exec stream: {e}")))?;
            Ok(ExecOutput {
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
                status: exit_status(status.as_ref()),
            })
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| ExecError::Timeout(self.timeout))?
    }
}

/// The command's end as the exec protocol reports it (see the module docs).
fn exit_status(status: Option<&Status>) -> Result<(), CommandFailed> {
    let Some(s) = status else { return Err(CommandFailed::NoStatus) };
    if s.status.as_deref() == Some("Success") {
        return Ok(());
    }
    let code = s
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.clone());
    Err(match code {
        Some(code) => CommandFailed::ExitCode(code),
        None => s.message.clone().filter(|m| !m.is_empty()).map_or(CommandFailed::Unspecified, CommandFailed::Status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exit_statuses() {
        let ok = Status { status: Some("Success".into()), ..Status::default() };
        assert_eq!(exit_status(Some(&ok)), Ok(()));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some(
                "command terminated with non-zero exit code: error executing command [x], exit code 1".into(),
            ),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("1".into()),
                    field: None,
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_status(Some(&failed)), Err(CommandFailed::ExitCode("1".into())));
        assert_eq!(exit_status(Some(&failed)).unwrap_err().to_string(), "exit code 1");
        let internal =
            Status { status: Some("Failure".into()), message: Some("container not found".into()), ..Status::default() };
        assert_eq!(exit_status(Some(&internal)).unwrap_err().to_string(), "container not found");
        assert_eq!(exit_status(None).unwrap_err().to_string(), "the command ended without a status");
        let bare = Status { status: Some("Failure".into()), ..Status::default() };
        assert_eq!(exit_status(Some(&bare)).unwrap_err().to_string(), "the command failed");
    }

    #[test]
    fn failures_say_what_the_command_said_first() {
        let out = |stdout: &str, stderr: &str, status: Result<(), CommandFailed>| ExecOutput {
            stdout: stdout.into(),
            stderr: stderr.into(),
            status,
        };
        assert_eq!(out("fine\n", "", Ok(())).failure(), None);
        let code = || Err(CommandFailed::ExitCode("1".into()));
        assert_eq!(out("x\n", "\n  Error: boom \n", code()).failure().as_deref(), Some("exit code 1: Error: boom"));
        assert_eq!(out("only stdout\n", "", code()).failure().as_deref(), Some("exit code 1: only stdout"));
        assert_eq!(out("", "", code()).failure().as_deref(), Some("exit code 1"));
    }

    #[test]
    fn api_refusals_are_named() {
        let api = |code: u16, message: &str| {
            kube::Error::Api(kube::core::Status::failure(message, "").with_code(code).boxed())
        };
        assert_eq!(ExecError::from_kube(&api(404, "")).to_string(), "exec not available: HTTP 404");
        assert_eq!(
            ExecError::from_kube(&api(403, "pods \"x\" is forbidden")).to_string(),
            "exec not allowed: HTTP 403 pods \"x\" is forbidden"
        );
        assert_eq!(ExecError::from_kube(&api(500, "boom")).to_string(), "exec failed: HTTP 500 boom");
        assert_eq!(ExecError::Timeout(Duration::from_secs(30)).to_string(), "exec timed out after 30s");
    }
}
