//! The migration state machine. The state lives in the cluster (see [`super::run`]); every
//! command reads it and asks the functions here whether its step follows from it. A step that does
//! not is refused with a message saying which step would.
//!
//! ```text
//!   (none) --create--> Created(0 %) --shift--> Shifting(1..100 %) --complete--> Completed
//!                         ^   |                   |    |  gate fails
//!                         |   |                   |    +--> Aborted (back to 0 %, default)
//!                         |   |                   |    +--> Frozen (weight held, --on-failure freeze)
//!                         |   +------rollback-----+--> RolledBack (0 %, mesh side scaled to 0)
//!                         +------create (scale the mesh side up again)------+
//! ```
//!
//! Weights are integers 0–100 and only grow unless `--allow-decrease` is given; `ns rollback`
//! is the way back to 0 % from anywhere (also after `complete`, as long as the legacy side was
//! only scaled down, not deleted).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use meshmove_istio::traffic::TrafficProfile;

use super::gates::GateResult;
use super::{DataPlane, Sides};

/// Where a migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Mesh side created, routing at 0 %.
    Created,
    /// Some traffic on the mesh side.
    Shifting,
    /// A gate failed and the weight is held for a human (`--on-failure freeze`).
    Frozen,
    /// A gate failed and traffic went back to 0 % automatically; the mesh side still runs.
    Aborted,
    /// 100 % on the mesh side, legacy scaled to zero (or deleted).
    Completed,
    /// 0 % and the mesh side scaled to zero.
    RolledBack,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Created => "created",
            Phase::Shifting => "shifting",
            Phase::Frozen => "frozen",
            Phase::Aborted => "aborted",
            Phase::Completed => "completed",
            Phase::RolledBack => "rolled-back",
        })
    }
}

/// A copied workload: `Kind/name` and the replicas the legacy side had when it was copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRecord {
    pub kind: String,
    pub name: String,
    pub replicas: i64,
    /// A stateful backend copied on request: `complete` never scales its original down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stateful: bool,
}

/// One line of history: who did what, when, and what the gates said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// RFC 3339 time.
    pub at: String,
    pub who: String,
    /// `create`, `shift`, `gate-failed`, `complete`, `rollback`.
    pub action: String,
    pub from: u8,
    pub to: u8,
    /// `ok`, `started`, `failed: ...`, `rolled back to 0 %`, `frozen at 50 %`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
}

/// The waypoint of an ambient mesh namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaypointRecord {
    pub namespace: String,
    pub name: String,
    /// `ns create` deployed it (its Gateway carries the migration's labels), so `ns rollback`
    /// deletes it; a waypoint named with `--waypoint` is only unbound.
    pub created: bool,
}

/// A step that started and has not recorded its end (an interrupted step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub action: String,
    pub to: u8,
    pub at: String,
    pub who: String,
    /// The error that stopped it, when the process lived to record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A running schedule (`--steps`), so `status` can say where it is and a rerun can resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub steps: Vec<u8>,
    pub interval_ms: u64,
}

/// The recorded state of one migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NsState {
    pub legacy: String,
    pub mesh: String,
    pub phase: Phase,
    /// Mesh weight in percent.
    pub weight: u8,
    /// The weight at which a gate last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<u8>,
    pub data_plane: DataPlane,
    /// Services routed by weight.
    pub services: Vec<String>,
    /// Workloads copied to the mesh side.
    pub workloads: Vec<WorkloadRecord>,
    /// Stateful backends (and Services fronting no copy) left in the legacy namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<super::copy::SharedBackend>,
    /// Legacy replicas before `complete` scaled them to zero (`Kind/name` → replicas).
    /// The `istio` label of the ingress gateway pods serving external traffic (`None`: the
    /// default, `ingressgateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_selector: Option<String>,
    /// Ingresses and HTTPRoutes of the legacy namespace served by the Istio ingress gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<super::external::ExternalRoute>,
    /// The traffic profile of `ns create`, whose route keys (request timeout, retries) every
    /// HTTP route of the splitting VirtualServices carries, so that each weight keeps them.
    /// Recorded as the route keys alone, in the `httpPolicy` shape of the published output
    /// schema that every version writes and reads ([`meshmove_istio::traffic::route_keys`]): the
    /// DestinationRules are written once by `ns create` and no later step rewrites one, so a
    /// loaded state holds the default DestinationRule keys.
    #[serde(rename = "httpPolicy", default, with = "meshmove_istio::traffic::route_keys", skip_serializing_if = "TrafficProfile::routes_unset")]
    pub profile: TrafficProfile,
    /// Ambient: the waypoint the mesh namespace is bound to (`None`: sidecars, or ambient
    /// without a waypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<WaypointRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub legacy_replicas: BTreeMap<String, i64>,
    #[serde(default)]
    pub legacy_deleted: bool,
    /// The legacy workloads as they were before `complete --delete-legacy` deleted them
    /// (`Kind/name` → the object without server-set fields), for `rollback` to re-create.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deleted_legacy: BTreeMap<String, serde_json::Value>,
    /// Container restarts on the mesh side (all pods) at the baseline; read from journals written
    /// before [`NsState::restart_baselines`] existed.
    #[serde(default)]
    pub restart_baseline: u64,
    /// Container restarts per mesh pod (by uid) when the mesh side was created or the last step's
    /// gates passed: the restarts gate counts from here, whatever weights were written since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restart_baselines: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(default)]
    pub history: Vec<Event>,
}

impl NsState {
    pub fn new(sides: &Sides, data_plane: DataPlane) -> NsState {
        NsState {
            legacy: sides.legacy.clone(),
            mesh: sides.mesh.clone(),
            phase: Phase::Created,
            weight: 0,
            failed_at: None,
            data_plane,
            services: Vec::new(),
            workloads: Vec::new(),
            shared: Vec::new(),
            gateway_selector: None,
            external: Vec::new(),
            profile: TrafficProfile::default(),
            waypoint: None,
            legacy_replicas: BTreeMap::new(),
            legacy_deleted: false,
            deleted_legacy: BTreeMap::new(),
            restart_baseline: 0,
            restart_baselines: BTreeMap::new(),
            schedule: None,
            pending: None,
            history: Vec::new(),
        }
    }

    /// What the next sensible command is, for `status`.
    pub fn next_step(&self) -> String {
        let ns = &self.legacy;
        if let Some(p) = &self.pending {
            return format!(
                "a `{}` to {} % started at {} by {} did not finish{}: run it again to resume, or `kubectl mesh-migrate ns rollback {ns}`",
                p.action,
                p.to,
                p.at,
                p.who,
                p.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
        match self.phase {
            Phase::Created => format!("kubectl mesh-migrate ns shift {ns} 10 (or --steps 10,25,50,75,100)"),
            Phase::Shifting if self.weight == 100 => format!("kubectl mesh-migrate ns complete {ns}"),
            Phase::Shifting => format!(
                "kubectl mesh-migrate ns shift {ns} {} (or `ns complete {ns}`: 100 % and the legacy side scaled to zero)",
                next_default_step(self.weight)
            ),
            Phase::Frozen => format!(
                "a gate failed at {} %: investigate, then `kubectl mesh-migrate ns shift {ns} {}` (gates are checked again) or `kubectl mesh-migrate ns rollback {ns}`",
                self.failed_at.unwrap_or(self.weight),
                self.weight
            ),
            Phase::Aborted => format!(
                "a gate failed at {} % and traffic went back to 0 %; the mesh side still runs for diagnosis: fix it and shift again, or `kubectl mesh-migrate ns rollback {ns}` to scale it down",
                self.failed_at.unwrap_or(0)
            ),
            Phase::Completed if self.legacy_deleted && self.deleted_legacy.is_empty() => {
                "none: the migration is complete and the legacy workloads are deleted".into()
            }
            Phase::Completed if self.legacy_deleted => format!(
                "none: the migration is complete and the legacy workloads are deleted (`ns rollback {ns}` re-creates them from the journal)"
            ),
            Phase::Completed => format!(
                "none: the migration is complete; legacy workloads are scaled to zero (`ns complete {ns} --delete-legacy` deletes them, `ns rollback {ns}` returns)"
            ),
            Phase::RolledBack => format!("none: rolled back; `kubectl mesh-migrate ns create {ns}` starts again, `kubectl mesh-migrate ns cleanup {ns}` removes the mesh side"),
        }
    }
}

/// The seed plans' schedule.
pub const DEFAULT_STEPS: [u8; 5] = [10, 25, 50, 75, 100];

fn next_default_step(weight: u8) -> u8 {
    DEFAULT_STEPS.iter().copied().find(|s| *s > weight).unwrap_or(100)
}

/// A weight that is not an integer percentage 0–100 (the text as written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    #[error("weight `{text}` is not an integer percentage (0-100)")]
    NotAnInteger { text: String },
    #[error("weight `{text}` is out of range: use 0-100")]
    OutOfRange { text: String },
}

/// A `--steps` list that is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepsError {
    #[error(transparent)]
    Weight(#[from] WeightError),
    #[error("no weights given")]
    Empty,
    #[error("the weights must increase: {next} follows {previous}")]
    NotIncreasing { previous: u8, next: u8 },
}

/// Parse a weight: an integer 0–100 (a trailing `%` is allowed).
pub fn parse_weight(s: &str) -> Result<u8, WeightError> {
    let t = s.trim().trim_end_matches('%');
    let n: i64 = t.parse().map_err(|_| WeightError::NotAnInteger { text: s.to_string() })?;
    u8::try_from(n).ok().filter(|n| *n <= 100).ok_or_else(|| WeightError::OutOfRange { text: s.to_string() })
}

/// Parse `--steps 10,25,50,75,100`: weights, strictly increasing.
pub fn parse_steps(s: &str) -> Result<Vec<u8>, StepsError> {
    let steps = s.split(',').map(parse_weight).collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err(StepsError::Empty);
    }
    if let Some(w) = steps.windows(2).find(|w| w[1] <= w[0]) {
        return Err(StepsError::NotIncreasing { previous: w[0], next: w[1] });
    }
    Ok(steps)
}

/// A step that does not follow from the recorded state of the migration of `legacy`: each says
/// where the migration stands and which command would move it on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("no migration of {legacy} is recorded: run `kubectl mesh-migrate ns create {legacy}` first")]
    NotRecorded { legacy: String },
    #[error("no migration of {legacy} is recorded: nothing to roll back")]
    NothingToRollBack { legacy: String },
    /// `create` while traffic is shifting or frozen.
    #[error(
        "{legacy} is already migrating ({weight} % on {mesh}): `ns create` would reset the routing; next: `kubectl mesh-migrate ns shift {legacy} <percent>` or `kubectl mesh-migrate ns rollback {legacy}`"
    )]
    AlreadyMigrating { legacy: String, mesh: String, weight: u8 },
    #[error("the migration of {legacy} is complete: there is nothing to create (`ns rollback {legacy}` returns to the legacy side)")]
    NothingToCreate { legacy: String },
    #[error(
        "the migration of {legacy} was rolled back and the mesh side is scaled to zero: run `kubectl mesh-migrate ns create {legacy}` to bring it back first"
    )]
    ShiftAfterRollback { legacy: String },
    #[error(
        "the migration of {legacy} is complete (100 %, legacy scaled to zero): nothing to shift; `kubectl mesh-migrate ns rollback {legacy}` returns to the legacy side"
    )]
    ShiftAfterComplete { legacy: String },
    /// A lower weight without `--allow-decrease`.
    #[error(
        "{legacy} is at {weight} %: shifting to {to} % would move traffic back; pass --allow-decrease to do that (or `kubectl mesh-migrate ns rollback {legacy}` for 0 % and the mesh side scaled down)"
    )]
    Decrease { legacy: String, weight: u8, to: u8 },
    #[error(
        "{legacy} is at 0 %: shift traffic first (`kubectl mesh-migrate ns shift {legacy} --steps 10,25,50,75`); `ns complete` takes the last step to 100 % and retires the legacy side"
    )]
    CompleteAtZero { legacy: String },
    #[error(
        "{legacy} is frozen at {weight} % after a failed gate: resolve it and run `kubectl mesh-migrate ns shift {legacy} {weight}` (gates are checked again), or `kubectl mesh-migrate ns rollback {legacy}`"
    )]
    CompleteFrozen { legacy: String, weight: u8 },
    #[error("the migration of {legacy} was rolled back: `kubectl mesh-migrate ns create {legacy}` starts again")]
    CompleteAfterRollback { legacy: String },
    /// `complete --delete-legacy` deleted the legacy workloads with a version that kept no copy.
    #[error(
        "the legacy workloads of {legacy} were deleted by `ns complete --delete-legacy` and the journal holds no copy of them (it was written by a version that did not keep one), so rollback cannot re-create them; the mesh side in {mesh} keeps serving all traffic. To return: re-create the workloads in {legacy} from their source (manifests, Helm chart, GitOps repository), wait until they are ready, then delete the VirtualServices in {mesh} (`kubectl delete virtualservice -n {mesh} -l {role}`): callers then reach the legacy Services directly",
        role = super::ROLE_LABEL
    )]
    LegacyNotKept { legacy: String, mesh: String },
    /// `cleanup` while another step is unfinished.
    #[error("a `{action}` started at {at} by {who} did not finish: run it again (or `kubectl mesh-migrate ns rollback {legacy}`) before `ns cleanup`")]
    CleanupPending { legacy: String, action: String, at: String, who: String },
    #[error(
        "the migration of {legacy} is complete: {mesh} serves all of its traffic, and `ns cleanup` removes the mesh side only after `kubectl mesh-migrate ns rollback {legacy}`; nothing was changed"
    )]
    CleanupComplete { legacy: String, mesh: String },
    /// `cleanup` at 0 % but not rolled back: the mesh side runs.
    #[error(
        "the migration of {legacy} is not rolled back: {mesh} is running ({phase} at {weight} %); `kubectl mesh-migrate ns rollback {legacy}` scales it to zero, then `ns cleanup {legacy}` removes it; nothing was changed"
    )]
    CleanupRunning { legacy: String, mesh: String, phase: Phase, weight: u8 },
    /// `cleanup` while the mesh side takes traffic.
    #[error(
        "the migration of {legacy} is not rolled back: {mesh} takes {weight} % of its traffic ({phase}); `kubectl mesh-migrate ns rollback {legacy}` returns it to the legacy side, then `ns cleanup {legacy}` removes the mesh side; nothing was changed"
    )]
    CleanupServing { legacy: String, mesh: String, phase: Phase, weight: u8 },
}

/// What `create` may do from the recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// Nothing recorded: create everything.
    Fresh,
    /// Created (or aborted at 0 %) before: apply again, which resumes an interrupted create and
    /// changes nothing otherwise.
    Resume,
    /// Rolled back: scale the mesh side up again.
    Recreate,
}

pub fn check_create(state: Option<&NsState>) -> Result<CreateMode, StateError> {
    let Some(s) = state else { return Ok(CreateMode::Fresh) };
    let legacy = s.legacy.clone();
    match s.phase {
        Phase::Created | Phase::Aborted => Ok(CreateMode::Resume),
        Phase::RolledBack => Ok(CreateMode::Recreate),
        Phase::Shifting | Phase::Frozen => Err(StateError::AlreadyMigrating { legacy, mesh: s.mesh.clone(), weight: s.weight }),
        Phase::Completed => Err(StateError::NothingToCreate { legacy }),
    }
}

/// What a shift to one weight amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShiftDecision {
    /// The weight is already there (the routing is applied again to finish an interrupted shift).
    Same,
    /// Move from `from` to `to`.
    Move { from: u8, to: u8 },
}

/// The recorded state of a migration that can shift, or why it cannot.
fn shiftable<'a>(state: Option<&'a NsState>, legacy: &str) -> Result<&'a NsState, StateError> {
    let Some(s) = state else { return Err(StateError::NotRecorded { legacy: legacy.to_string() }) };
    match s.phase {
        Phase::RolledBack => Err(StateError::ShiftAfterRollback { legacy: s.legacy.clone() }),
        Phase::Completed => Err(StateError::ShiftAfterComplete { legacy: s.legacy.clone() }),
        _ => Ok(s),
    }
}

pub fn check_shift(state: Option<&NsState>, legacy: &str, to: u8, allow_decrease: bool) -> Result<ShiftDecision, StateError> {
    let s = shiftable(state, legacy)?;
    if to == s.weight {
        return Ok(ShiftDecision::Same);
    }
    if to < s.weight && !allow_decrease {
        return Err(StateError::Decrease { legacy: s.legacy.clone(), weight: s.weight, to });
    }
    Ok(ShiftDecision::Move { from: s.weight, to })
}

/// The steps of a schedule still to run from the recorded weight: steps at or below it are done
/// (a rerun of an interrupted schedule resumes after the last weight reached).
pub fn remaining_steps(state: Option<&NsState>, legacy: &str, steps: &[u8]) -> Result<Vec<u8>, StateError> {
    let s = shiftable(state, legacy)?;
    // The recorded weight is written only once a step's routing is fully applied, so an
    // interrupted step is simply still ahead.
    Ok(steps.iter().copied().filter(|w| *w > s.weight).collect())
}

/// What `complete` may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteMode {
    /// Shift to 100 %, then scale (or delete) the legacy side.
    Complete,
    /// Already complete; delete the scaled-down legacy workloads now.
    DeleteLegacy,
    /// Already complete (and nothing more asked).
    Done,
}

pub fn check_complete(state: Option<&NsState>, legacy: &str, delete_legacy: bool) -> Result<CompleteMode, StateError> {
    let Some(s) = state else { return Err(StateError::NotRecorded { legacy: legacy.to_string() }) };
    let legacy = s.legacy.clone();
    match s.phase {
        Phase::Shifting => Ok(CompleteMode::Complete),
        Phase::Completed if delete_legacy && !s.legacy_deleted => Ok(CompleteMode::DeleteLegacy),
        Phase::Completed => Ok(CompleteMode::Done),
        Phase::Created | Phase::Aborted => Err(StateError::CompleteAtZero { legacy }),
        Phase::Frozen => Err(StateError::CompleteFrozen { legacy, weight: s.weight }),
        Phase::RolledBack => Err(StateError::CompleteAfterRollback { legacy }),
    }
}

/// Whether `rollback` may run.
pub fn check_rollback(state: Option<&NsState>, legacy: &str) -> Result<(), StateError> {
    let Some(s) = state else { return Err(StateError::NothingToRollBack { legacy: legacy.to_string() }) };
    if s.legacy_deleted && s.deleted_legacy.is_empty() {
        return Err(StateError::LegacyNotKept { legacy: s.legacy.clone(), mesh: s.mesh.clone() });
    }
    Ok(())
}

/// Whether `cleanup` may run: `Ok(true)` for a rolled-back migration (or a cleanup to finish),
/// `Ok(false)` when no migration is recorded (nothing to clean up), else why not and what would.
pub fn check_cleanup(state: Option<&NsState>) -> Result<bool, StateError> {
    let Some(s) = state else { return Ok(false) };
    let (legacy, mesh) = (s.legacy.clone(), s.mesh.clone());
    if let Some(p) = s.pending.as_ref().filter(|p| p.action != "cleanup") {
        return Err(StateError::CleanupPending { legacy, action: p.action.clone(), at: p.at.clone(), who: p.who.clone() });
    }
    match s.phase {
        Phase::RolledBack => Ok(true),
        Phase::Completed => Err(StateError::CleanupComplete { legacy, mesh }),
        Phase::Created | Phase::Aborted => Err(StateError::CleanupRunning { legacy, mesh, phase: s.phase, weight: s.weight }),
        Phase::Shifting | Phase::Frozen => Err(StateError::CleanupServing { legacy, mesh, phase: s.phase, weight: s.weight }),
    }
}

/// What to do when a gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Back to 0 % at once (the mesh side keeps running for diagnosis).
    #[default]
    Rollback,
    /// Hold the weight for a human.
    Freeze,
}

/// The state after a gate failed at the current weight.
pub fn after_gate_failure(state: &mut NsState, policy: OnFailure) {
    state.failed_at = Some(state.weight);
    state.schedule = None;
    match policy {
        OnFailure::Rollback => {
            state.phase = Phase::Aborted;
            state.weight = 0;
        }
        OnFailure::Freeze => state.phase = Phase::Frozen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(phase: Phase, weight: u8) -> NsState {
        let mut s = NsState::new(&Sides::new("shop").unwrap(), DataPlane::Sidecar);
        s.phase = phase;
        s.weight = weight;
        s
    }

    #[test]
    fn weights_are_integers_in_range() {
        assert_eq!(parse_weight("25").unwrap(), 25);
        assert_eq!(parse_weight("100%").unwrap(), 100);
        assert_eq!(parse_weight("0").unwrap(), 0);
        assert_eq!(parse_weight("101"), Err(WeightError::OutOfRange { text: "101".into() }));
        assert_eq!(parse_weight("256"), Err(WeightError::OutOfRange { text: "256".into() }));
        assert_eq!(parse_weight("-1"), Err(WeightError::OutOfRange { text: "-1".into() }));
        assert_eq!(parse_weight("12.5"), Err(WeightError::NotAnInteger { text: "12.5".into() }));
        assert_eq!(parse_weight("ten").unwrap_err().to_string(), "weight `ten` is not an integer percentage (0-100)");
    }

    #[test]
    fn steps_must_increase() {
        assert_eq!(parse_steps("10,25,50,75,100").unwrap(), DEFAULT_STEPS.to_vec());
        assert_eq!(parse_steps("10,25,25"), Err(StepsError::NotIncreasing { previous: 25, next: 25 }));
        assert_eq!(parse_steps("50,10").unwrap_err().to_string(), "the weights must increase: 10 follows 50");
        assert_eq!(parse_steps("10,x").unwrap_err().to_string(), "weight `x` is not an integer percentage (0-100)");
        assert_eq!(parse_steps("10,200"), Err(StepsError::Weight(WeightError::OutOfRange { text: "200".into() })));
    }

    #[test]
    fn shifts_follow_from_the_recorded_state() {
        assert_eq!(check_shift(None, "shop", 10, false), Err(StateError::NotRecorded { legacy: "shop".into() }));
        assert!(check_shift(None, "shop", 10, false).unwrap_err().to_string().contains("ns create shop"));
        assert_eq!(check_shift(Some(&state(Phase::Created, 0)), "shop", 10, false), Ok(ShiftDecision::Move { from: 0, to: 10 }));
        assert_eq!(check_shift(Some(&state(Phase::Shifting, 25)), "shop", 25, false), Ok(ShiftDecision::Same));
        let down = check_shift(Some(&state(Phase::Shifting, 50)), "shop", 25, false).unwrap_err().to_string();
        assert!(down.contains("at 50 %") && down.contains("--allow-decrease"), "{down}");
        assert_eq!(check_shift(Some(&state(Phase::Shifting, 50)), "shop", 25, true), Ok(ShiftDecision::Move { from: 50, to: 25 }));
        assert_eq!(check_shift(Some(&state(Phase::Frozen, 50)), "shop", 75, false), Ok(ShiftDecision::Move { from: 50, to: 75 }));
        assert_eq!(check_shift(Some(&state(Phase::Aborted, 0)), "shop", 10, false), Ok(ShiftDecision::Move { from: 0, to: 10 }));
        assert!(check_shift(Some(&state(Phase::RolledBack, 0)), "shop", 10, false).unwrap_err().to_string().contains("ns create shop"));
        assert_eq!(check_shift(Some(&state(Phase::Completed, 100)), "shop", 50, true), Err(StateError::ShiftAfterComplete { legacy: "shop".into() }));
    }

    #[test]
    fn schedules_resume_after_the_last_weight_reached() {
        let s = state(Phase::Shifting, 25);
        assert_eq!(remaining_steps(Some(&s), "shop", &DEFAULT_STEPS).unwrap(), vec![50, 75, 100]);
        let mut interrupted = s.clone();
        interrupted.pending = Some(Pending { action: "shift".into(), to: 50, at: "t".into(), who: "a".into(), error: None });
        assert_eq!(remaining_steps(Some(&interrupted), "shop", &DEFAULT_STEPS).unwrap(), vec![50, 75, 100]);
        assert!(remaining_steps(Some(&state(Phase::Shifting, 100)), "shop", &DEFAULT_STEPS).unwrap().is_empty());
        assert!(remaining_steps(None, "shop", &DEFAULT_STEPS).is_err());
    }

    #[test]
    fn create_complete_and_rollback_follow_from_the_state() {
        assert_eq!(check_create(None), Ok(CreateMode::Fresh));
        assert_eq!(check_create(Some(&state(Phase::Created, 0))), Ok(CreateMode::Resume));
        assert_eq!(check_create(Some(&state(Phase::RolledBack, 0))), Ok(CreateMode::Recreate));
        assert!(check_create(Some(&state(Phase::Shifting, 25))).unwrap_err().to_string().contains("ns shift shop"));
        assert!(check_complete(Some(&state(Phase::Created, 0)), "shop", false).unwrap_err().to_string().contains("at 0 %"));
        assert_eq!(
            check_complete(Some(&state(Phase::Frozen, 50)), "shop", false).unwrap_err().to_string(),
            "shop is frozen at 50 % after a failed gate: resolve it and run `kubectl mesh-migrate ns shift shop 50` (gates are checked again), or `kubectl mesh-migrate ns rollback shop`"
        );
        assert_eq!(check_complete(Some(&state(Phase::Shifting, 75)), "shop", false), Ok(CompleteMode::Complete));
        assert_eq!(check_complete(Some(&state(Phase::Completed, 100)), "shop", true), Ok(CompleteMode::DeleteLegacy));
        assert_eq!(check_complete(Some(&state(Phase::Completed, 100)), "shop", false), Ok(CompleteMode::Done));
        assert!(check_rollback(None, "shop").is_err());
        assert!(check_rollback(Some(&state(Phase::Completed, 100)), "shop").is_ok());
        let mut deleted = state(Phase::Completed, 100);
        deleted.legacy_deleted = true;
        let e = check_rollback(Some(&deleted), "shop").unwrap_err().to_string();
        assert!(e.contains("--delete-legacy") && e.contains("holds no copy") && e.contains("re-create the workloads in shop"), "{e}");
        assert!(e.contains("kubectl delete virtualservice -n shop-mesh -l mesh-migrate.meshmove.io/role"), "{e}");
        assert_eq!(deleted.next_step(), "none: the migration is complete and the legacy workloads are deleted");
        deleted.deleted_legacy.insert("Deployment/api".into(), serde_json::json!({"kind": "Deployment"}));
        assert!(check_rollback(Some(&deleted), "shop").is_ok());
        assert!(deleted.next_step().contains("`ns rollback shop` re-creates them"));
    }

    #[test]
    fn cleanup_follows_only_a_rollback() {
        assert_eq!(check_cleanup(None), Ok(false));
        assert_eq!(check_cleanup(Some(&state(Phase::RolledBack, 0))), Ok(true));
        for (phase, weight, words) in [
            (Phase::Created, 0, "is running (created at 0 %)"),
            (Phase::Aborted, 0, "is running (aborted at 0 %)"),
            (Phase::Shifting, 25, "takes 25 % of its traffic"),
            (Phase::Frozen, 50, "takes 50 % of its traffic (frozen)"),
            (Phase::Completed, 100, "is complete"),
        ] {
            let e = check_cleanup(Some(&state(phase, weight))).unwrap_err().to_string();
            assert!(e.contains(words) && e.contains("ns rollback shop") && e.ends_with("nothing was changed"), "{e}");
        }
        let mut interrupted = state(Phase::RolledBack, 0);
        interrupted.pending = Some(Pending { action: "rollback".into(), to: 0, at: "t".into(), who: "a".into(), error: None });
        assert!(check_cleanup(Some(&interrupted)).unwrap_err().to_string().contains("a `rollback` started at t by a did not finish"));
        interrupted.pending = Some(Pending { action: "cleanup".into(), to: 0, at: "t".into(), who: "a".into(), error: None });
        assert_eq!(check_cleanup(Some(&interrupted)), Ok(true), "an interrupted cleanup is resumed");
    }

    #[test]
    fn failed_gates_roll_back_or_freeze() {
        let mut s = state(Phase::Shifting, 50);
        after_gate_failure(&mut s, OnFailure::Rollback);
        assert_eq!((s.phase, s.weight, s.failed_at), (Phase::Aborted, 0, Some(50)));
        assert!(s.next_step().contains("failed at 50 %"));
        let mut s = state(Phase::Shifting, 50);
        after_gate_failure(&mut s, OnFailure::Freeze);
        assert_eq!((s.phase, s.weight, s.failed_at), (Phase::Frozen, 50, Some(50)));
        assert!(s.next_step().contains("ns shift shop 50"));
    }

    #[test]
    fn state_round_trips_as_json() {
        let mut s = state(Phase::Shifting, 25);
        s.history.push(Event {
            at: "2026-01-01T00:00:00Z".into(),
            who: "me".into(),
            action: "shift".into(),
            from: 10,
            to: 25,
            result: "ok".into(),
            gates: vec![],
        });
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["phase"], "shifting");
        assert_eq!(j["dataPlane"]["mode"], "sidecar");
        let back: NsState = serde_json::from_value(j).unwrap();
        assert_eq!(back, s);
    }

    /// A state recorded by a version whose route keys were a type of their own (`HttpPolicy`),
    /// taken from that version's serializer: it loads into the one traffic profile, shifts carry
    /// its route keys, and it is written back byte for byte.
    #[test]
    fn states_recorded_before_the_one_profile_still_load() {
        const RECORDED: &str = include_str!("../../tests/fixtures/state/shifting-with-http-policy.json");
        let st: NsState = serde_json::from_str(RECORDED).unwrap();
        assert_eq!((st.legacy.as_str(), st.phase, st.weight), ("shop", Phase::Shifting, 25));
        assert_eq!(st.services, ["api", "web"]);
        let p = &st.profile;
        assert_eq!(p.http_timeout.as_deref(), Some("30s"));
        assert_eq!(p.retries, Some(3));
        assert_eq!(p.per_try_timeout.as_deref(), Some("10s"));
        assert_eq!(p.retry_on.as_deref(), Some("5xx,connect-failure"));
        // The DestinationRule keys were never recorded: the defaults (no later step uses them).
        assert_eq!(p.traffic_policy(), TrafficProfile::default().traffic_policy());
        // The next shift writes the recorded route keys on every HTTP route.
        let svc = serde_json::json!({"metadata": {"name": "api"}, "spec": {"ports": [{"name": "http", "port": 80}]}});
        let vs = super::super::routing::virtual_service(&Sides::new("shop").unwrap(), &svc, 50, p);
        let route = &vs["spec"]["http"][0];
        assert_eq!(route["timeout"], "30s");
        assert_eq!(route["retries"], serde_json::json!({"attempts": 3, "perTryTimeout": "10s", "retryOn": "5xx,connect-failure"}));
        // Written back in the same shape, byte for byte (older versions read what this one writes).
        assert_eq!(serde_json::to_string_pretty(&st).unwrap() + "\n", RECORDED);
        // A state without route keys has no `httpPolicy` and loads with none set.
        let mut bare: serde_json::Value = serde_json::from_str(RECORDED).unwrap();
        bare.as_object_mut().unwrap().remove("httpPolicy");
        let st: NsState = serde_json::from_value(bare.clone()).unwrap();
        assert!(st.profile.routes_unset());
        assert_eq!(serde_json::to_value(&st).unwrap(), bare);
    }

}
