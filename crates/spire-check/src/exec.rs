//! Running the deep checks' commands in the SPIRE server pod through the Kubernetes exec API
//! (the WebSocket `pods/exec` subresource, as `kubectl exec` uses it).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use meshmove_spire::SpireContext;
use tokio::io::AsyncReadExt;

use crate::deep::{CommandOutput, Gathered, Target};

/// Run the server commands. `Err` is why exec is impossible (no pod, or the API refused the
/// first call); later calls that fail to start are recorded per command.
pub async fn gather(client: &kube::Client, cx: &SpireContext<'_>, timeout: Duration) -> Result<Gathered, String> {
    let target = crate::deep::target(cx)?;
    let healthcheck = run(client, &target, target.command(&["healthcheck"]), timeout)
        .await
        .map_err(|e| format!("{}: {e}", target.pod))?;
    let entries = run(client, &target, target.command(&["entry", "show", "-output", "json"]), timeout).await;
    let agents = run(client, &target, target.command(&["agent", "list", "-output", "json"]), timeout).await;
    let bundle = run(client, &target, target.command(&["bundle", "show", "-output", "json"]), timeout).await;
    Ok(Gathered { target, healthcheck, entries, agents, bundle })
}

/// Run one command and collect its output; `Err` when the exec call itself failed.
pub async fn run(
    client: &kube::Client,
    target: &Target,
    argv: Vec<String>,
    timeout: Duration,
) -> Result<CommandOutput, String> {
    meshmove_cli::debug!(2, "exec {}/{} -c {} -- {}", target.namespace, target.name, target.container, argv.join(" "));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let params = AttachParams::default().container(target.container.clone()).stdin(false).stdout(true).stderr(true);
    let work = async {
        let mut process = pods.exec(&target.name, argv, &params).await.map_err(|e| describe(&e))?;
        let mut stdout = process.stdout().ok_or("exec gave no stdout stream")?;
        let mut stderr = process.stderr().ok_or("exec gave no stderr stream")?;
        let status = process.take_status().ok_or("exec gave no status")?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (r1, r2) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        r1.and(r2).map_err(|e| format!("reading the command's output: {e}"))?;
        let status = status.await;
        drop((stdout, stderr));
        process.join().await.map_err(|e| format!("exec stream: {e}"))?;
        Ok::<_, String>(CommandOutput {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            status: exit_status(status.as_ref()),
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("exec timed out after {}s", timeout.as_secs())),
    }
}

/// The command's end as the exec protocol reports it: a `Status` with `Success`, or `Failure`
/// with the exit code in `details.causes[reason=ExitCode]`.
fn exit_status(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> Result<(), String> {
    let Some(s) = status else { return Err("the command ended without a status".into()) };
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
        Some(code) => format!("exit code {code}"),
        None => s.message.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "the command failed".into()),
    })
}

/// Name the failure of an exec call so that the report says what to do.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let what = match status.code {
                404 => "exec not available",
                401 | 403 => "exec not allowed",
                _ => "exec failed",
            };
            let msg = if status.message.is_empty() { String::new() } else { format!(" {}", status.message) };
            format!("{what}: HTTP {}{msg}", status.code)
        }
        kube::Error::UpgradeConnection(kube::client::UpgradeConnectionError::ProtocolSwitch(code)) => {
            format!("exec not available: HTTP {} (the API server did not switch to a WebSocket)", code.as_u16())
        }
        other => format!("exec failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

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
        assert_eq!(exit_status(Some(&failed)), Err("exit code 1".into()));
        let internal =
            Status { status: Some("Failure".into()), message: Some("container not found".into()), ..Status::default() };
        assert_eq!(exit_status(Some(&internal)), Err("container not found".into()));
        assert!(exit_status(None).is_err());
    }
}
