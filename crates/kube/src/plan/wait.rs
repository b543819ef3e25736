//! Waiting for rollouts, as `kubectl rollout status` decides it.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::{PlanError, Progress, Target, client};
use crate::cluster::Connection;

/// How far a workload's rollout is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyState {
    pub ready: bool,
    /// Desired pods.
    pub desired: i64,
    /// Pods of the current template.
    pub updated: i64,
    /// Ready pods.
    pub ready_pods: i64,
    /// Why it is not ready (empty when ready).
    pub reason: String,
}

impl std::fmt::Display for ReadyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} updated, {}/{} ready", self.updated, self.desired, self.ready_pods, self.desired)?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        Ok(())
    }
}

fn int(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(Value::as_i64)
}

/// Whether a Deployment, StatefulSet or DaemonSet has rolled out its current template and all
/// its pods are ready: the controller saw the latest generation, every pod runs the current
/// template, no old pod is left, and all are ready.
pub fn workload_ready(kind: &str, w: &Value) -> ReadyState {
    let generation = int(w, "/metadata/generation").unwrap_or(0);
    let observed = int(w, "/status/observedGeneration").unwrap_or(0);
    let (desired, updated, ready_pods, total) = match kind {
        "DaemonSet" => {
            let d = int(w, "/status/desiredNumberScheduled").unwrap_or(0);
            (d, int(w, "/status/updatedNumberScheduled").unwrap_or(0), int(w, "/status/numberReady").unwrap_or(0), d)
        }
        _ => {
            let d = int(w, "/spec/replicas").unwrap_or(1);
            (
                d,
                int(w, "/status/updatedReplicas").unwrap_or(0),
                int(w, "/status/readyReplicas").unwrap_or(0),
                int(w, "/status/replicas").unwrap_or(0),
            )
        }
    };
    let reason = if observed < generation {
        format!("the controller has not seen generation {generation} yet")
    } else if updated < desired {
        "waiting for pods of the new template".to_string()
    } else if total > desired {
        format!("{} old pod(s) still terminating", total - desired)
    } else if ready_pods < desired {
        "waiting for pods to become ready".to_string()
    } else {
        String::new()
    };
    ReadyState { ready: reason.is_empty(), desired, updated, ready_pods, reason }
}

/// Poll until every target is ready or `timeout` passes (backing off from 100 ms to 2 s).
pub(crate) async fn wait_ready(
    conn: &Connection,
    targets: &[Target],
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PlanError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let mut pending: Option<(Target, ReadyState)> = None;
        let mut ready = 0;
        for t in targets {
            let state = match client::get(conn, t).await? {
                Some(w) => workload_ready(&t.kind, &w),
                None => ReadyState { ready: false, desired: 0, updated: 0, ready_pods: 0, reason: "not found".to_string() },
            };
            if state.ready {
                ready += 1;
            } else if pending.is_none() {
                pending = Some((t.clone(), state));
            }
        }
        progress(Progress::Waiting { ready, total: targets.len(), pending: pending.clone() });
        let Some((target, state)) = pending else { return Ok(()) };
        if start.elapsed() >= timeout {
            return Err(PlanError::Timeout { target, state: state.to_string(), timeout });
        }
        tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
