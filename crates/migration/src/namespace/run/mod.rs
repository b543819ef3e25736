//! The `ns` commands against a cluster.
//!
//! Every write goes through the shared plan engine ([`meshmove_kube::plan`]): server-side apply under the
//! field manager `kubectl-mesh-migrate`, conflicts reported rather than forced, `--dry-run`
//! client (diffs from reads) and server (`dryRun=All`), and the journal recording prior state
//! before the first write. The journal lives in the **legacy** namespace (it exists before the
//! first step, while `<ns>-mesh` does not), and it also carries this path's state and history
//! under the extension key [`STATE_KEY`]: phase, weight, gate results, who did what and when.
//! Every command reads that state first and refuses steps that do not follow from it
//! ([`super::state`]); before its first write a step records itself as pending, so an
//! interrupted step shows in `ns status` and is resumed by running it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::Sides;
use super::copy::{self, CopyOptions, CopySet};
use super::gates::{self, GateResult, Thresholds};
use super::guards;
use super::prometheus::Prometheus;
use super::routing::{self, TrafficProfile};
use super::state::{self, CompleteMode, CreateMode, Event, NsState, OnFailure, Pending, Phase, ShiftDecision, WorkloadRecord};
use meshmove_kube::cluster::{self, ClusterError, Connection};
use meshmove_model::inventory::{Kind, kinds};
use crate::precheck::{self, MeshMode};
use meshmove_kube::plan::{self, Change, DryRun, ExecOptions, Journal, Outcome, Plan, PlanError, Preview, Progress, Target};

mod callers;
mod cleanup;
mod complete;
mod create;
mod checks;
mod external;
mod podsecurity;
mod shift;
mod status;
mod waypoint;

pub use cleanup::*;
pub use complete::*;
pub use create::*;
pub use checks::*;
pub use external::{ExternalStatus, reweighted};
use external::{complete_blockers, create_external, external_changes, external_status, legacy_external};
pub use shift::*;
pub use status::*;
pub use waypoint::WAYPOINT_ROLE;

/// Journal extension key of this path's state.
pub const STATE_KEY: &str = "nsMigration";

/// Errors of the `ns` commands.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// The step does not follow from the recorded state (or the input is unusable); the message
    /// says what would.
    #[error("{message}")]
    Refused { message: String },
    /// The step does not follow from the recorded state; says where it stands and what would.
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the journal in namespace {namespace} holds a migration state this version cannot read: {reason}")]
    BadState { namespace: String, reason: String },
}

impl From<ClusterError> for NsError {
    fn from(e: ClusterError) -> Self {
        NsError::Plan(PlanError::Cluster(e))
    }
}

fn refused(message: impl Into<String>) -> NsError {
    NsError::Refused { message: message.into() }
}

/// Progress of a command, for the binary to show on stderr.
#[derive(Debug, Clone)]
pub enum NsEvent {
    /// From the plan engine.
    Plan(Progress),
    /// A line about the migration itself (`weight 10 % -> 25 %`, `watching for 30m`).
    Note(String),
    /// A gate check finished.
    Gates { weight: u8, results: Vec<GateResult> },
}

/// Options shared by the mutating commands.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: DryRun,
    /// Longest wait for a rollout.
    pub timeout: Duration,
    pub actor: String,
}

/// Gate configuration.
#[derive(Debug, Clone, Default)]
pub struct GateOptions {
    pub thresholds: Thresholds,
    pub prometheus: Option<Prometheus>,
    pub on_failure: OnFailure,
    /// How long each weight is watched before the next step (0: check once, at once).
    pub interval: Duration,
    /// How often gates are checked while watching.
    pub check_every: Duration,
}

/// What a command did, for rendering.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespace: String,
    pub mesh_namespace: String,
    pub command: String,
    pub dry_run: DryRun,
    pub outcomes: Vec<Outcome>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previews: Vec<Preview>,
    /// The objects as the plan leaves them (`-o yaml|json` with `--dry-run=client`), Secret
    /// values masked ([`plan::objects_after`]).
    #[serde(skip)]
    pub objects: Vec<Value>,
    pub weight: u8,
    pub phase: Option<Phase>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// False when a gate failed (the exit code says so too).
    pub passed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the user must not miss (a stateful copy starting empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopySummary>,
}

/// What `create` copied, skipped and adjusted.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CopySummary {
    pub copied: Vec<String>,
    pub skipped: Vec<copy::Skipped>,
    pub adjustments: Vec<copy::Adjustment>,
    pub unrouted: Vec<routing::Unrouted>,
    /// Stateful backends (and Services fronting no copy) that stay in the legacy namespace.
    pub shared: Vec<copy::SharedBackend>,
    /// Stateful backends copied on request: their copies start empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stateful_copies: Vec<copy::SharedBackend>,
    /// PodDisruptionBudgets, NetworkPolicies, ResourceQuotas and LimitRanges carried over (and
    /// the legacy namespace's companion policies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<super::guards::Carried>,
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

// ---------------------------------------------------------------------------------------------
// State in the journal

/// The journal of the legacy namespace and the migration state in it.
pub async fn load_state(conn: &Connection, sides: &Sides) -> Result<(Option<Journal>, Option<NsState>), NsError> {
    let journal = Journal::load(conn, &sides.legacy).await?;
    let state = match journal.as_ref().and_then(|j| j.extensions.get(STATE_KEY)) {
        None => None,
        Some(v) => Some(
            serde_json::from_value::<NsState>(v.clone())
                .map_err(|e| NsError::BadState { namespace: sides.legacy.clone(), reason: e.to_string() })?,
        ),
    };
    Ok((journal, state))
}

/// Read the state, change it, write it back at the version read (a concurrent change by another
/// operator is a [`PlanError::JournalConflict`]).
async fn update_state(conn: &Connection, sides: &Sides, f: impl FnOnce(&mut NsState)) -> Result<NsState, NsError> {
    let journal = Journal::load(conn, &sides.legacy).await?;
    let mut journal = journal.unwrap_or_else(|| Journal::new(&sides.legacy));
    let mut st = match journal.extensions.get(STATE_KEY) {
        Some(v) => serde_json::from_value::<NsState>(v.clone())
            .map_err(|e| NsError::BadState { namespace: sides.legacy.clone(), reason: e.to_string() })?,
        None => NsState::new(sides, Default::default()),
    };
    f(&mut st);
    journal.extensions.insert(STATE_KEY.to_string(), serde_json::to_value(&st).expect("state serializes"));
    journal.save(conn).await?;
    Ok(st)
}

fn event(opts: &RunOptions, action: &str, from: u8, to: u8, result: impl Into<String>, gates: Vec<GateResult>) -> Event {
    Event { at: now(), who: opts.actor.clone(), action: action.into(), from, to, result: result.into(), gates }
}

/// Record that a step begins (before its first write). Returns the record, so that a failure is
/// written onto this step's record only (never onto another operator's).
async fn begin(conn: &Connection, sides: &Sides, opts: &RunOptions, action: &str, to: u8) -> Result<Option<Pending>, NsError> {
    if opts.dry_run != DryRun::None {
        return Ok(None);
    }
    let pending = Pending { action: action.into(), to, at: now(), who: opts.actor.clone(), error: None };
    let mine = pending.clone();
    update_state(conn, sides, |s| s.pending = Some(pending)).await?;
    Ok(Some(mine))
}

/// Run a step's plan; when it fails, record the error on this step's record (see
/// [`record_failure`]) before handing it back.
async fn run_recorded(
    conn: &Connection,
    sides: &Sides,
    opts: &RunOptions,
    mine: &Option<Pending>,
    plan: &Plan,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<(), NsError> {
    let result = run_plan(conn, plan, opts, report, events).await;
    if let Err(e) = &result {
        record_failure(conn, sides, opts, mine, e).await;
    }
    result
}

/// Record the error that stopped a step (best effort: the original error is what matters). Not
/// when the journal changed under us: then the record may be someone else's.
async fn record_failure(conn: &Connection, sides: &Sides, opts: &RunOptions, mine: &Option<Pending>, err: &NsError) {
    let Some(mine) = mine else { return };
    if matches!(err, NsError::Plan(PlanError::JournalConflict { .. })) {
        return;
    }
    let message = err.to_string();
    let _ = update_state(conn, sides, |s| {
        let weight = s.weight;
        if let Some(p) = &mut s.pending
            && (Pending { error: None, ..p.clone() }) == *mine
        {
            p.error = Some(message.clone());
            let e = Event {
                at: now(),
                who: opts.actor.clone(),
                action: p.action.clone(),
                from: weight,
                to: p.to,
                result: format!("failed: {message}"),
                gates: vec![],
            };
            s.history.push(e);
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster

const LEGACY_KINDS: [&Kind; 8] = [
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::SERVICE,
    &kinds::SERVICE_ACCOUNT,
    &kinds::CONFIG_MAP,
    &kinds::JOB,
    &kinds::CRON_JOB,
];

fn is_workload(kind: &str) -> bool {
    copy::WORKLOAD_KINDS.contains(&kind)
}

fn workload_kind(kind: &str) -> &'static Kind {
    match kind {
        "StatefulSet" => &kinds::STATEFUL_SET,
        "DaemonSet" => &kinds::DAEMON_SET,
        _ => &kinds::DEPLOYMENT,
    }
}

async fn namespace_exists(conn: &Connection, name: &str) -> Result<bool, NsError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(conn.client.clone());
    match api.get_opt(name).await {
        Ok(ns) => Ok(ns.is_some()),
        Err(e) => Err(NsError::Plan(PlanError::Cluster(ClusterError::Api {
            verb: "get",
            resource: format!("namespaces/{name}"),
            message: e.to_string(),
            source: e,
        }))),
    }
}

async fn objects(conn: &Connection, kinds: &[&'static Kind], namespace: &str) -> Result<Vec<Value>, NsError> {
    let inv = cluster::load(conn, kinds, &[], Some(namespace)).await?;
    for k in kinds {
        if let Some(why) = inv.availability(k) {
            return Err(refused(format!("cannot read {} in namespace {namespace}: {why:?}", k.resource())));
        }
    }
    Ok(inv.objects().iter().map(|o| o.value.clone()).collect())
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

fn kind_of(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn target_of(kind: &str, namespace: &str, name: &str) -> Target {
    let k = workload_kind(kind);
    Target::new(&k.api_version(), k.kind, Some(namespace), name)
}

// ---------------------------------------------------------------------------------------------
// Plans

async fn run_plan(
    conn: &Connection,
    plan: &Plan,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<(), NsError> {
    match opts.dry_run {
        DryRun::Client => {
            // Diffs and objects as every mutating command shows them: Secret values masked by
            // the plan engine (`***`, as `kubectl diff` masks them).
            let previews = plan::preview(conn, plan).await?;
            report.objects.extend(plan::objects_after(&previews));
            report.previews.extend(previews);
            let exec = ExecOptions { dry_run: DryRun::Client, timeout: opts.timeout, actor: opts.actor.clone() };
            let out = plan::execute(conn, plan, &exec, &mut |p| events(NsEvent::Plan(p))).await?;
            report.outcomes.extend(out);
        }
        mode => {
            let exec = ExecOptions { dry_run: mode, timeout: opts.timeout, actor: opts.actor.clone() };
            let out = plan::execute(conn, plan, &exec, &mut |p| events(NsEvent::Plan(p))).await?;
            report.outcomes.extend(out);
        }
    }
    Ok(())
}

/// The routing plan for `weight` over the recorded Services (built from their mesh copies, which
/// have the legacy Services' ports).
async fn routing_changes(conn: &Connection, sides: &Sides, st: &NsState, weight: u8) -> Result<Vec<Change>, NsError> {
    let services = objects(conn, &[&kinds::SERVICE], &sides.mesh).await?;
    let mut changes = Vec::new();
    for name in &st.services {
        let Some(svc) = services.iter().find(|s| name_of(s) == name) else {
            return Err(refused(format!(
                "Service {}/{name} is missing: the mesh side is incomplete; run `kubectl mesh-migrate ns create {}` again (it resumes) or `ns rollback {}`",
                sides.mesh, sides.legacy, sides.legacy
            )));
        };
        changes.push(Change::Apply { object: routing::virtual_service(sides, svc, weight, &st.profile) });
    }
    // The Istio gateway's routes for the legacy Ingresses and HTTPRoutes follow the same weight
    // and carry the same timeout and retries.
    changes.extend(external_changes(conn, sides, weight, &st.profile).await?);
    Ok(changes)
}

#[cfg(test)]
mod schema_tests {
    //! The published output schema (`docs/schemas/meshmove-output.schema.json`) names every value
    //! the reports serialize for phases, outcomes and dry-run modes: a variant added here without
    //! the schema fails this test (and the exhaustive matches fail to compile until it is listed).
    use super::*;

    fn schema_enum(pointer: &str) -> Vec<String> {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schemas/meshmove-output.schema.json")).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        let values = schema.pointer(pointer).unwrap_or_else(|| panic!("no {pointer} in the schema"));
        values.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    }

    fn names<T: Serialize>(all: &[T]) -> Vec<String> {
        all.iter().map(|v| serde_json::to_value(v).unwrap().as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn the_schema_lists_every_phase_action_and_dry_run_mode() {
        use plan::Action;
        let phases = [Phase::Created, Phase::Shifting, Phase::Frozen, Phase::Aborted, Phase::Completed, Phase::RolledBack];
        for p in phases {
            match p {
                Phase::Created | Phase::Shifting | Phase::Frozen | Phase::Aborted | Phase::Completed | Phase::RolledBack => {}
            }
        }
        let actions = [
            Action::Created,
            Action::Configured,
            Action::Unchanged,
            Action::Deleted,
            Action::Restarted,
            Action::Scaled,
            Action::Ready,
            Action::Skipped,
        ];
        for a in actions {
            match a {
                Action::Created
                | Action::Configured
                | Action::Unchanged
                | Action::Deleted
                | Action::Restarted
                | Action::Scaled
                | Action::Ready
                | Action::Skipped => {}
            }
        }
        let modes = [DryRun::None, DryRun::Client, DryRun::Server];
        for m in modes {
            match m {
                DryRun::None | DryRun::Client | DryRun::Server => {}
            }
        }
        assert_eq!(names(&phases), schema_enum("/$defs/migrationPhase/enum"));
        assert_eq!(names(&actions), schema_enum("/$defs/outcome/properties/action/enum"));
        assert_eq!(names(&modes), schema_enum("/$defs/outcome/properties/dryRun/enum"));
        // A report printed as a document is never a client dry run (that prints the objects).
        assert_eq!(names(&[DryRun::None, DryRun::Server]), schema_enum("/$defs/namespaceMigrationReport/properties/dryRun/enum"));
    }
}
