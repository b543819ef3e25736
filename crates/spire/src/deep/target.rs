//! Where the deep checks run their commands (the first Running pod of the SPIRE server, its
//! server container) and how: through an [`Exec`], which the binary backs with the Kubernetes
//! exec API ([`meshmove_kube::exec::PodExec`]) and the tests with captured outputs.

use std::future::Future;

use meshmove_kube::exec::{Container, ExecError, ExecOutput, PodExec};
use meshmove_model::inventory::{Object, ObjectRef, kinds};
use meshmove_model::workload;
use serde_json::Value;

use super::server_api::{phase, str_at};
use crate::context::{SpireContext, image_name};

/// Where the official SPIRE images install the server binary.
pub const SERVER_BINARY: &str = "/opt/spire/bin/spire-server";

/// Where to run the server commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pod: ObjectRef,
    pub namespace: String,
    pub name: String,
    pub container: String,
    /// `server.socket_path` from `server.conf`, when it moves the socket.
    pub socket_path: Option<String>,
}

impl Target {
    /// The container to exec into.
    pub fn container(&self) -> Container {
        Container { namespace: self.namespace.clone(), pod: self.name.clone(), container: self.container.clone() }
    }

    /// The argv of `spire-server <args...> [-socketPath <path>]`.
    pub fn command(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![SERVER_BINARY.to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        if let Some(s) = &self.socket_path {
            argv.extend(["-socketPath".to_string(), s.clone()]);
        }
        argv
    }
}

/// Why there is no container to run the server commands in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no SPIRE server found to exec into (see SC2001)")]
    NoServer,
    #[error("{server}: no Running pod to exec into")]
    NoRunningPod { server: ObjectRef },
    #[error("{pod}: the pod has no containers")]
    NoContainers { pod: ObjectRef },
}

/// Why the deep checks cannot exec at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The first call into the pod could not be made.
    #[error("{pod}: {source}")]
    Exec { pod: ObjectRef, source: ExecError },
}

/// The first Running pod of the (first) SPIRE server, and its server container.
pub fn target(cx: &SpireContext<'_>) -> Result<Target, TargetError> {
    let Some(server) = cx.servers.first() else {
        return Err(TargetError::NoServer);
    };
    let mut pods: Vec<&Object> = cx
        .inventory
        .of(&kinds::POD)
        .filter(|p| workload::pod_owner(cx.inventory, p).is_some_and(|o| o.object_ref() == server.object_ref()))
        .filter(|p| phase(p) == Some("Running"))
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(pod) = pods.first() else {
        return Err(TargetError::NoRunningPod { server: server.object_ref() });
    };
    let containers: Vec<(&str, &str)> = pod
        .value
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| (str_at(c, "/name").unwrap_or(""), str_at(c, "/image").unwrap_or("")))
        .collect();
    let container = containers
        .iter()
        .find(|(n, _)| *n == "spire-server")
        .or_else(|| containers.iter().find(|(_, i)| image_name(i) == "spire-server"))
        .or_else(|| containers.first())
        .map(|(n, _)| n.to_string())
        .ok_or_else(|| TargetError::NoContainers { pod: pod.object_ref() })?;
    Ok(Target {
        pod: pod.object_ref(),
        namespace: pod.namespace.clone().unwrap_or_default(),
        name: pod.name.clone(),
        container,
        socket_path: cx.server().and_then(|c| c.socket_path.clone()),
    })
}

/// Runs a command in a container and collects its output. `Err` is why the command could not be
/// started at all (the exec call failed), as opposed to a command that ran and failed.
pub trait Exec {
    fn exec(&self, target: &Target, argv: Vec<String>) -> impl Future<Output = Result<ExecOutput, ExecError>>;
}

impl Exec for PodExec {
    async fn exec(&self, target: &Target, argv: Vec<String>) -> Result<ExecOutput, ExecError> {
        self.run(&target.container(), argv).await
    }
}

/// The outputs of the server commands. Each command's `Err` means it could not even be started
/// (the exec call itself failed after the first one worked).
#[derive(Debug, Clone)]
pub struct Gathered {
    pub target: Target,
    pub healthcheck: ExecOutput,
    pub entries: Result<ExecOutput, ExecError>,
    pub agents: Result<ExecOutput, ExecError>,
    pub bundle: Result<ExecOutput, ExecError>,
}

/// Run the server commands through `exec`. `Err` is why exec is impossible (no pod, or the first
/// call could not be made); later calls that fail to start are recorded per command.
pub async fn gather(exec: &impl Exec, cx: &SpireContext<'_>) -> Result<Gathered, GatherError> {
    let target = target(cx)?;
    let healthcheck = exec
        .exec(&target, target.command(&["healthcheck"]))
        .await
        .map_err(|source| GatherError::Exec { pod: target.pod.clone(), source })?;
    let entries = exec.exec(&target, target.command(&["entry", "show", "-output", "json"])).await;
    let agents = exec.exec(&target, target.command(&["agent", "list", "-output", "json"])).await;
    let bundle = exec.exec(&target, target.command(&["bundle", "show", "-output", "json"])).await;
    Ok(Gathered { target, healthcheck, entries, agents, bundle })
}
