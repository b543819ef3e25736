//! Waiting for rollouts, as `kubectl rollout status` decides it (kubernetes/kubectl
//! `pkg/polymorphichelpers/rollout_status.go`), including the two cases where waiting longer
//! cannot help:
//!
//! * A Deployment whose `Progressing` condition has reason `ProgressDeadlineExceeded` has failed:
//!   "Once the deadline has been exceeded, the Deployment controller adds a DeploymentCondition
//!   with ... type: Progressing, status: "False", reason: ProgressDeadlineExceeded"; Kubernetes
//!   takes no other action on a stalled rollout, so the condition stays until the rollout
//!   progresses or the template changes again (Kubernetes docs,
//!   <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#failed-deployment>;
//!   `kubectl rollout status` exits with "exceeded its progress deadline"). The wait stops with
//!   the condition's message ([`Rollout::Failed`]).
//! * A StatefulSet or DaemonSet with `updateStrategy.type: OnDelete` never replaces its pods
//!   when the template changes: "the StatefulSet controller will not automatically update the
//!   Pods ... Users must manually delete Pods to cause the controller to create new Pods"
//!   (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#update-strategies>);
//!   "new DaemonSet pods will only be created when you manually delete old DaemonSet pods"
//!   (<https://kubernetes.io/docs/tasks/manage-daemon/update-daemon-set/#daemonset-update-strategy>).
//!   `kubectl rollout status` refuses them ("rollout status is only available for RollingUpdate
//!   strategy type"). They are not waited for, and the outcome says so ([`Rollout::Manual`]).
//! * A StatefulSet whose RollingUpdate has a `partition`: "all Pods with an ordinal that is
//!   greater than or equal to the partition will be updated ... All Pods with an ordinal that is
//!   less than the partition will not be updated, and, even if they are deleted, they will be
//!   recreated at the previous version"
//!   (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#partitions>).
//!   `kubectl rollout status` calls it done once the pods at and above the partition are updated
//!   ("partitioned roll out complete"). Once they are (and every pod is ready), the rest will
//!   never change by itself: [`Rollout::Manual`], naming the partition.
//!
//! Objects other than workloads are waited for by a status condition ([`condition_state`]), as
//! `kubectl wait --for=condition=...` does.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::{Action, DryRun, Outcome, PlanError, Progress, Target, client};
use crate::cluster::Connection;

/// Where a workload's rollout stands, beyond the pod counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Rollout {
    /// Rolled out and ready.
    Complete,
    /// Still rolling out: waiting can help.
    InProgress,
    /// The Deployment exceeded its progress deadline; `message` is the condition's message.
    Failed { message: String },
    /// The controller does not replace (some of the) pods on its own (`updateStrategy:
    /// OnDelete`, or ordinals below a StatefulSet's `partition`), so there is nothing (more) to
    /// wait for.
    Manual { reason: String },
}

/// How far a workload's rollout is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyState {
    pub ready: bool,
    /// Whether waiting can still make it ready.
    pub rollout: Rollout,
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
/// template, no old pod is left, and all are ready. A Deployment past its progress deadline is
/// [`Rollout::Failed`]; a StatefulSet or DaemonSet whose update strategy is `OnDelete` and whose
/// pods are not all of the current template, or a StatefulSet whose pods at and above its
/// `partition` are updated and ready but not those below, is [`Rollout::Manual`] (see the
/// module docs).
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
    let on_delete = matches!(kind, "StatefulSet" | "DaemonSet")
        && w.pointer("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
    let partition = if kind == "StatefulSet" && !on_delete {
        int(w, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0).clamp(0, desired)
    } else {
        0
    };
    let rollout = if reason.is_empty() {
        Rollout::Complete
    } else if let Some(message) = deadline_exceeded(kind, w, observed >= generation) {
        Rollout::Failed { message }
    } else if on_delete && observed >= generation && updated < desired {
        Rollout::Manual {
            reason: format!(
                "updateStrategy OnDelete: the {kind} controller replaces a pod only when it is deleted, so {} of {desired} pod(s) keep the old template until someone deletes them",
                desired - updated
            ),
        }
    } else if partition > 0
        && observed >= generation
        && updated >= desired - partition
        && ready_pods >= desired
        && total <= desired
    {
        Rollout::Manual {
            reason: format!(
                "updateStrategy RollingUpdate with partition {partition}: the StatefulSet controller updates only the pods of ordinal {partition} and above, so {} of {desired} pod(s) keep the old template until the partition is lowered",
                desired - updated
            ),
        }
    } else {
        Rollout::InProgress
    };
    let reason = match &rollout {
        Rollout::Failed { message } => format!("progress deadline exceeded: {message}"),
        Rollout::Manual { reason } => reason.clone(),
        _ => reason,
    };
    ReadyState { ready: rollout == Rollout::Complete, rollout, desired, updated, ready_pods, reason }
}

/// A Deployment's `Progressing` condition when its reason is `ProgressDeadlineExceeded` (only
/// once the controller has seen the current generation, as `kubectl rollout status` checks it):
/// its message, or a sentence when it has none.
fn deadline_exceeded(kind: &str, w: &Value, current: bool) -> Option<String> {
    if kind != "Deployment" || !current {
        return None;
    }
    let conditions = w.pointer("/status/conditions")?.as_array()?;
    let progressing = conditions.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"))?;
    if progressing.get("reason").and_then(Value::as_str) != Some("ProgressDeadlineExceeded") {
        return None;
    }
    let message = progressing.get("message").and_then(Value::as_str).unwrap_or_default();
    Some(if message.is_empty() {
        let secs = int(w, "/spec/progressDeadlineSeconds").unwrap_or(600);
        format!("the rollout made no progress for {secs}s")
    } else {
        message.to_string()
    })
}

/// Poll until every target is ready or `timeout` passes (backing off from 100 ms to 2 s).
///
/// A Deployment past its progress deadline ends the wait at once ([`PlanError::RolloutFailed`]).
/// A workload the controller does not roll out by itself (`OnDelete`) is not waited for: it is
/// reported once as a skipped outcome naming the reason, and counts as done.
pub(crate) async fn wait_ready(
    conn: &Connection,
    targets: &[Target],
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PlanError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut manual: Vec<Target> = Vec::new();
    loop {
        let mut pending: Option<(Target, ReadyState)> = None;
        let mut ready = 0;
        for t in targets {
            if manual.contains(t) {
                ready += 1;
                continue;
            }
            let state = match client::get(conn, t).await? {
                Some(w) => workload_ready(&t.kind, &w),
                None => ReadyState {
                    ready: false,
                    rollout: Rollout::InProgress,
                    desired: 0,
                    updated: 0,
                    ready_pods: 0,
                    reason: "not found".to_string(),
                },
            };
            match &state.rollout {
                Rollout::Failed { message } => {
                    return Err(PlanError::RolloutFailed { target: t.clone(), message: message.clone() });
                }
                Rollout::Manual { reason } => {
                    progress(Progress::Done(Outcome {
                        target: t.clone(),
                        action: Action::Skipped,
                        dry_run: DryRun::None,
                        detail: format!("not waited for: {reason}"),
                    }));
                    manual.push(t.clone());
                    ready += 1;
                    continue;
                }
                Rollout::Complete | Rollout::InProgress => {}
            }
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

/// Where an object's status condition of one type stands (for [`Change::WaitCondition`]).
///
/// Decided as `kubectl wait --for=condition=<type>` decides it (kubernetes/kubectl
/// `pkg/cmd/wait/wait.go`, `ConditionalWait.checkCondition`): the first entry of
/// `status.conditions` whose `type` equals the wanted one (ignoring case) and that has a
/// `status`; it is met when that status is `True` (ignoring case), unless the condition's
/// `observedGeneration` (else `status.observedGeneration`) is older than `metadata.generation`,
/// in which case it describes an earlier spec and is not met yet.
///
/// [`Change::WaitCondition`]: super::Change::WaitCondition
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionState {
    /// The condition type waited for (`Programmed`).
    pub condition: String,
    pub met: bool,
    /// The condition's `status` (`True`, `False`, `Unknown`), `None` when there is no such
    /// condition (or no object).
    pub status: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Why the condition does not count although it says `True` (an older generation), or that
    /// the object is missing.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl std::fmt::Display for ConditionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.status {
            None if self.note.is_empty() => write!(f, "no {} condition in its status yet", self.condition)?,
            None => write!(f, "{}", self.note)?,
            Some(status) => {
                write!(f, "condition {} is {status}", self.condition)?;
                match (self.reason.is_empty(), self.message.is_empty()) {
                    (true, true) => {}
                    (false, true) => write!(f, " (reason {})", self.reason)?,
                    (true, false) => write!(f, " ({})", self.message)?,
                    (false, false) => write!(f, " (reason {}: {})", self.reason, self.message)?,
                }
                if !self.note.is_empty() {
                    write!(f, "; {}", self.note)?;
                }
            }
        }
        Ok(())
    }
}

/// The state of condition `condition` of `object` (see [`ConditionState`]).
pub fn condition_state(object: &Value, condition: &str) -> ConditionState {
    let mut state = ConditionState {
        condition: condition.to_string(),
        met: false,
        status: None,
        reason: String::new(),
        message: String::new(),
        note: String::new(),
    };
    let conditions = object.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let str_of = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(found) = conditions.iter().find(|c| {
        str_of(c, "type").is_some_and(|t| t.eq_ignore_ascii_case(condition)) && str_of(c, "status").is_some()
    }) else {
        return state;
    };
    let status = str_of(found, "status").unwrap_or_default();
    state.reason = str_of(found, "reason").unwrap_or_default();
    state.message = str_of(found, "message").unwrap_or_default();
    state.met = status.eq_ignore_ascii_case("True");
    if let Some(generation) = int(object, "/metadata/generation") {
        let observed = found.get("observedGeneration").and_then(Value::as_i64).or_else(|| int(object, "/status/observedGeneration"));
        if let Some(observed) = observed
            && observed < generation
        {
            state.met = false;
            state.note = format!("it was set for generation {observed}, the object is at generation {generation}");
        }
    }
    state.status = Some(status);
    state
}

/// Poll `target` until its condition `condition` is met or `timeout` passes (backing off from
/// 100 ms to 2 s), reporting each new state. A missing object counts as not met.
pub(crate) async fn wait_condition(
    conn: &Connection,
    target: &Target,
    condition: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PlanError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut last: Option<ConditionState> = None;
    loop {
        let state = match client::get(conn, target).await? {
            Some(o) => condition_state(&o, condition),
            None => ConditionState {
                condition: condition.to_string(),
                met: false,
                status: None,
                reason: String::new(),
                message: String::new(),
                note: "not found".to_string(),
            },
        };
        if last.as_ref() != Some(&state) {
            progress(Progress::WaitingFor { target: target.clone(), state: state.clone() });
            last = Some(state.clone());
        }
        if state.met {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(PlanError::Timeout { target: target.clone(), state: state.to_string(), timeout });
        }
        tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
