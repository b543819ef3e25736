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
use super::prometheus::Prometheus;
use super::routing::{self, TrafficProfile};
use super::state::{self, CompleteMode, CreateMode, Event, NsState, OnFailure, Pending, Phase, ShiftDecision, WorkloadRecord};
use meshmove_kube::cluster::{self, ClusterError, Connection};
use meshmove_model::inventory::{Kind, kinds};
use crate::mesh::precheck::{self, MeshMode};
use meshmove_kube::plan::{self, Change, DryRun, ExecOptions, Journal, Outcome, Plan, PlanError, Preview, Progress, Target};

/// Journal extension key of this path's state.
pub const STATE_KEY: &str = "nsMigration";

/// Errors of the `ns` commands.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// The step does not follow from the recorded state (or the input is unusable); the message
    /// says what would.
    #[error("{message}")]
    Refused { message: String },
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
    /// Objects the plan would send (`-o yaml|json` with `--dry-run=client`); Secret values
    /// redacted.
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
            let mut previews = plan::preview(conn, plan).await?;
            for p in &mut previews {
                if p.target.kind == "Secret" && !p.diff.is_empty() {
                    p.diff = format!("--- a/{t}\n+++ b/{t}\n(Secret values are not shown)\n", t = p.target);
                }
            }
            report.previews.extend(previews);
            report.objects.extend(plan.objects().into_iter().map(redact));
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

/// Secret values never leave the process: `data`/`stringData` values are replaced.
fn redact(mut v: Value) -> Value {
    if kind_of(&v) == "Secret" {
        for key in ["data", "stringData"] {
            if let Some(m) = v.get_mut(key).and_then(Value::as_object_mut) {
                for val in m.values_mut() {
                    *val = json!("<redacted>");
                }
            }
        }
    }
    v
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
        changes.push(Change::Apply { object: routing::virtual_service(sides, svc, weight) });
    }
    Ok(changes)
}

// ---------------------------------------------------------------------------------------------
// create

/// Checks of `ns create` a human may override.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOverrides {
    /// Label the namespace although copies would violate its Pod Security level.
    pub allow_pod_security_violations: bool,
    /// Create the mesh side although the Istio control plane check fails.
    pub ignore_control_plane: bool,
}

/// `ns create`.
pub async fn create(
    conn: &Connection,
    sides: &Sides,
    copy_opts: &CopyOptions,
    profile: &TrafficProfile,
    overrides: CreateOverrides,
    opts: &RunOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let mode = state::check_create(st.as_ref()).map_err(refused)?;
    if !namespace_exists(conn, &sides.legacy).await? {
        return Err(refused(format!("namespace {} does not exist", sides.legacy)));
    }
    // The control plane must be able to serve the copies before they are created.
    let (mesh_mode, revision) = match &copy_opts.data_plane {
        super::DataPlane::Sidecar => (MeshMode::Sidecar, None),
        super::DataPlane::SidecarRevision { revision } => (MeshMode::Sidecar, Some(revision.as_str())),
        super::DataPlane::Ambient => (MeshMode::Ambient, None),
    };
    let cp = cluster::load(conn, &[precheck::GATE_KINDS, precheck::GATE_KINDS_WIDE].concat(), precheck::GATE_KINDS_WIDE, None).await?;
    let gate = precheck::gate(&cp, mesh_mode, revision);
    if !gate.passed() && !overrides.ignore_control_plane {
        return Err(refused(format!(
            "the Istio control plane cannot serve {}:\n{}\nfix these (see `kubectl mesh-migrate precheck`), or pass --force to create it anyway",
            sides.mesh,
            gate.explain()
        )));
    }
    let forced = (!gate.passed()).then(|| format!("going ahead despite the control plane check (--force):\n{}", gate.explain()));
    let mut gate_notes = gate.notes;
    gate_notes.extend(forced);
    let mut wanted: Vec<&'static Kind> = LEGACY_KINDS.to_vec();
    if copy_opts.secrets {
        wanted.push(&kinds::SECRET);
    }
    let mut legacy = objects(conn, &wanted, &sides.legacy).await?;
    // Copied when readable (listing Roles needs more than the `edit` ClusterRole grants): a
    // kind that cannot be read is named in a note instead of stopping the copy.
    let mut unread = Vec::new();
    let optional = [&kinds::ROLE, &kinds::ROLE_BINDING, &kinds::HORIZONTAL_POD_AUTOSCALER];
    let opt = cluster::load(conn, &optional, &[], Some(&sides.legacy)).await?;
    for k in optional {
        let why = match opt.availability(k) {
            None => continue,
            Some(meshmove_model::inventory::Unavailable::Forbidden { message }) => format!("forbidden: {message}"),
            Some(_) => "the cluster does not serve them".to_string(),
        };
        unread.push(format!("could not read {} in {} ({why}): any there are not copied", k.resource(), sides.legacy));
    }
    legacy.extend(opt.objects().iter().map(|o| o.value.clone()));
    // Listed as not copied when readable; a kind that cannot be listed is only not listed.
    let extra = cluster::load(conn, &[&kinds::NETWORK_POLICY, &kinds::POD_DISRUPTION_BUDGET], &[], Some(&sides.legacy)).await?;
    legacy.extend(extra.objects().iter().map(|o| o.value.clone()));
    // CloudNativePG clusters are shared backends; without the operator's CRD there are none.
    let cnpg = cluster::load(conn, &[&kinds::CNPG_CLUSTER], &[], Some(&sides.legacy)).await?;
    if let Some(meshmove_model::inventory::Unavailable::Forbidden { message }) = cnpg.availability(&kinds::CNPG_CLUSTER) {
        unread.push(format!(
            "could not read CloudNativePG clusters in {} (forbidden: {message}): their Services are kept in {} all the same, as they front no copied workload",
            sides.legacy, sides.legacy
        ));
    }
    legacy.extend(cnpg.objects().iter().map(|o| o.value.clone()));
    // The Istio routing kinds must be served (Istio's CRDs installed).
    let istio = cluster::load(conn, &[&kinds::VIRTUAL_SERVICE, &kinds::DESTINATION_RULE], &[], Some(&sides.legacy)).await?;
    for k in [&kinds::VIRTUAL_SERVICE, &kinds::DESTINATION_RULE] {
        if istio.availability(k).is_some() {
            return Err(refused(format!(
                "the cluster does not serve {} ({}): install Istio (its CRDs) before creating the mesh side",
                k.kind,
                k.api_version()
            )));
        }
    }
    // Sidecar injection adds the istio-init container (NET_ADMIN, NET_RAW), which Pod Security
    // `baseline` and `restricted` reject, unless the istio-cni node agent does its job instead.
    let mut cni_note = None;
    if matches!(copy_opts.data_plane, super::DataPlane::Sidecar | super::DataPlane::SidecarRevision { .. })
        && matches!(copy_opts.pod_security, super::PodSecurity::Restricted | super::PodSecurity::Baseline)
    {
        let ds = cluster::load(conn, &[&kinds::DAEMON_SET], &[&kinds::DAEMON_SET], None).await?;
        if ds.availability(&kinds::DAEMON_SET).is_some() {
            cni_note = Some("could not list DaemonSets to check for istio-cni: without it, Pod Security rejects the istio-init container of every injected pod".to_string());
        } else if !ds.of(&kinds::DAEMON_SET).any(|o| o.name == "istio-cni-node" || o.label("k8s-app") == Some("istio-cni-node")) {
            return Err(refused(format!(
                "Pod Security {:?} on {} would reject every injected pod: sidecar injection adds the istio-init container (NET_ADMIN, NET_RAW) unless istio-cni is installed, and no istio-cni-node DaemonSet was found; install istio-cni, use --mode ambient, or choose --pod-security privileged",
                copy_opts.pod_security, sides.mesh
            )));
        }
    }
    let set: CopySet = copy::copy_namespace(sides, &legacy, copy_opts);
    if !set.refused.is_empty() {
        return Err(refused(format!("{}\nnothing was written", set.refused.join("\n"))));
    }
    if !set.violations.is_empty() && !overrides.allow_pod_security_violations {
        let list: Vec<String> = set.violations.iter().map(|v| format!("  {}: {}", v.object, v.problem)).collect();
        return Err(refused(format!(
            "{} would reject these pods of the copies (Pod Security level {:?} on {}):\n{}\nfix the pod templates, or choose a level with --pod-security (or pass --allow-pod-security-violations to label the namespace anyway)",
            sides.mesh,
            copy_opts.pod_security,
            sides.mesh,
            list.join("\n")
        )));
    }
    // Only the copies of stateless workloads are split by weight: shared backends are not
    // copied, and a stateful copy holds other data than the original.
    let legacy_services: Vec<Value> = legacy
        .iter()
        .filter(|o| kind_of(o) == "Service" && set.routed_services.iter().any(|r| r == name_of(o)))
        .cloned()
        .collect();
    let (routable, unrouted) = routing::routable(&legacy_services);
    let workloads: Vec<WorkloadRecord> = set
        .objects
        .iter()
        .filter(|o| is_workload(kind_of(o)))
        .map(|o| WorkloadRecord {
            kind: kind_of(o).to_string(),
            name: name_of(o).to_string(),
            replicas: o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
            stateful: set.is_stateful_copy(&copy::object_name(o)),
        })
        .collect();
    let service_names: Vec<String> = routable.iter().map(|s| name_of(s).to_string()).collect();

    let mut plan = Plan::new("ns-create", &sides.legacy);
    plan.push(Change::Apply { object: set.namespace.clone() });
    let mesh_exists = namespace_exists(conn, &sides.mesh).await?;
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "create".into(),
        dry_run: opts.dry_run,
        weight: 0,
        passed: true,
        ..Report::default()
    };
    // A server dry run cannot create objects in a namespace it did not create.
    let partial_dry_run = opts.dry_run == DryRun::Server && !mesh_exists;
    if partial_dry_run {
        report.notes.push(format!(
            "server dry run: namespace {} does not exist yet, so only the Namespace was sent; its {} objects were not",
            sides.mesh,
            set.objects.len() + 2 * routable.len()
        ));
    } else {
        for o in &set.objects {
            plan.push(Change::Apply { object: o.clone() });
        }
        if mode == CreateMode::Recreate {
            for w in workloads.iter().filter(|w| w.kind != "DaemonSet") {
                plan.push(Change::Scale { target: target_of(&w.kind, &sides.mesh, &w.name), replicas: w.replicas });
            }
        }
        let targets: Vec<Target> = workloads.iter().map(|w| target_of(&w.kind, &sides.mesh, &w.name)).collect();
        if !targets.is_empty() {
            plan.push(Change::WaitReady { targets });
        }
        for s in &routable {
            plan.push(Change::Apply { object: routing::destination_rule(sides, s, profile) });
        }
        for s in &routable {
            plan.push(Change::Apply { object: routing::virtual_service(sides, s, 0) });
        }
    }
    if mode == CreateMode::Resume && st.as_ref().is_some_and(|s| s.phase == Phase::Aborted) {
        report.notes.push("the last gate failure left the routing at 0 %; applying the mesh side again".into());
    }
    report.copy = Some(CopySummary {
        copied: set.objects.iter().map(copy::object_name).collect(),
        skipped: set.skipped.clone(),
        adjustments: set.adjustments.clone(),
        unrouted: unrouted.clone(),
        shared: set.shared.clone(),
        stateful_copies: set.stateful_copies.clone(),
    });
    if !set.shared.is_empty() {
        report.notes.push(format!(
            "shared backends stay in {legacy} and keep their data: the copies reach them there (`<service>.{legacy}.svc.cluster.local`), and `ns complete` never scales them down; to put them on the mesh in place later: `kubectl mesh-migrate enable -n {legacy}`",
            legacy = sides.legacy
        ));
    }
    report.warnings.extend(copy::unreachable_backends(sides, &legacy, &set));
    for c in &set.stateful_copies {
        report.warnings.push(format!(
            "{} is copied on request (--copy-stateful) and its copy in {} starts EMPTY: new volumes, none of the data of {} ({}); the copies in {} use it, its Services are not split by weight, and `ns complete` does not scale the original down",
            c.object, sides.mesh, sides.legacy, c.reason, sides.mesh
        ));
    }
    for v in &set.violations {
        report.notes.push(format!("pod security: {}: {}", v.object, v.problem));
    }
    if let Some(n) = cni_note {
        report.notes.push(n);
    }
    report.notes.extend(gate_notes);
    report.notes.extend(unread);
    if !copy_opts.secrets {
        let mut by_secret: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (w, secret) in &set.uncopied_secrets {
            by_secret.entry(secret.as_str()).or_default().push(w.as_str());
        }
        for (secret, users) in by_secret {
            report.notes.push(format!(
                "{} reads Secret {secret}, which is not copied: create it in {} (or rerun with --copy-secrets) before its pods can start",
                users.join(", "),
                sides.mesh
            ));
        }
        if set.uncopied_secrets.is_empty() {
            report.notes.push("Secrets are not copied (--copy-secrets copies them)".into());
        }
    }

    let mine = begin(conn, sides, opts, "create", 0).await?;
    run_recorded(conn, sides, opts, &mine, &plan, &mut report, events).await?;
    if opts.dry_run != DryRun::None {
        report.phase = st.as_ref().map(|s| s.phase);
        return Ok(report);
    }
    let restarts = mesh_restart_counts(conn, sides).await?;
    let data_plane = copy_opts.data_plane.clone();
    let shared = set.shared.clone();
    let who = opts.clone();
    let st = update_state(conn, sides, move |s| {
        let from = s.weight;
        s.phase = Phase::Created;
        s.weight = 0;
        s.data_plane = data_plane;
        s.services = service_names;
        s.workloads = workloads;
        s.shared = shared;
        // The restarts gate counts from here until a step's gates pass.
        s.restart_baseline = restarts.values().sum();
        s.restart_baselines = restarts;
        s.pending = None;
        s.failed_at = None;
        let what = match mode {
            CreateMode::Fresh => "mesh side created",
            CreateMode::Resume => "mesh side applied again",
            CreateMode::Recreate => "mesh side scaled up again",
        };
        s.history.push(event(&who, "create", from, 0, what, vec![]));
    })
    .await?;
    report.phase = Some(st.phase);
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Gates

async fn mesh_restart_counts(conn: &Connection, sides: &Sides) -> Result<BTreeMap<String, u64>, NsError> {
    let pods = objects(conn, &[&kinds::POD], &sides.mesh).await?;
    Ok(gates::restart_counts(&pods))
}

/// One check of the gates.
#[derive(Debug, Clone)]
pub struct GateCheck {
    pub results: Vec<GateResult>,
    /// Container restarts per mesh pod at the check: the next baseline when the gates passed.
    pub restarts: BTreeMap<String, u64>,
}

/// Check every gate now. Without `metrics` the Prometheus gates are left out: before the first
/// step no traffic reaches the mesh side, and "no samples" would fail them.
pub async fn check_gates(conn: &Connection, sides: &Sides, st: &NsState, g: &GateOptions, metrics: bool) -> Result<GateCheck, NsError> {
    let live = objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::POD], &sides.mesh).await?;
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for w in &st.workloads {
        match live.iter().find(|o| kind_of(o) == w.kind && name_of(o) == w.name) {
            Some(o) => present.push(o.clone()),
            None => missing.push(format!("{}/{}", w.kind, w.name)),
        }
    }
    let pods: Vec<Value> = live.iter().filter(|o| kind_of(o) == "Pod").cloned().collect();
    // Journals written before per-pod baselines hold only the total.
    let new = if st.restart_baselines.is_empty() && st.restart_baseline > 0 {
        gates::restart_count(&pods).saturating_sub(st.restart_baseline)
    } else {
        gates::new_restarts(&pods, &st.restart_baselines)
    };
    let mut results = vec![gates::readiness(&present, &missing, &pods), gates::restarts(new, &g.thresholds)];
    if metrics && let Some(prom) = &g.prometheus {
        let t = Some(unix_now());
        let window = &g.thresholds.window;
        let sr = prom.query(&gates::success_rate_query(&sides.mesh, window), t).await;
        results.push(gates::success_rate(&sr, &g.thresholds));
        let p99 = prom.query(&gates::p99_query(&sides.mesh, window), t).await;
        results.push(gates::latency(&p99, &g.thresholds));
    }
    Ok(GateCheck { results, restarts: gates::restart_counts(&pods) })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Watch the gates for `g.interval` (checking every `g.check_every`); the first failed check
/// ends the watch. With a zero interval the gates are checked once.
async fn watch(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    g: &GateOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<GateCheck, NsError> {
    let start = Instant::now();
    if !g.interval.is_zero() {
        events(NsEvent::Note(format!("watching {} % for {} before the next step", st.weight, meshmove_model::duration::show(g.interval))));
    }
    loop {
        let elapsed = start.elapsed();
        let remaining = g.interval.saturating_sub(elapsed);
        if !remaining.is_zero() {
            let every = if g.check_every.is_zero() { remaining } else { g.check_every.min(remaining) };
            tokio::time::sleep(every).await;
        }
        let check = check_gates(conn, sides, st, g, st.weight > 0).await?;
        events(NsEvent::Gates { weight: st.weight, results: check.results.clone() });
        if !gates::all_passed(&check.results) || start.elapsed() >= g.interval {
            return Ok(check);
        }
    }
}


/// The gates on the current state, before a higher weight is written. `Ok(None)`: they passed
/// (go ahead). `Ok(Some(state))`: they failed, nothing of the next weight was written, and the
/// report says why; at a weight above 0 the failure policy applied (back to 0 %, or frozen), at
/// 0 % nothing moved (the metrics gates wait for traffic; readiness and restarts do not).
#[allow(clippy::too_many_arguments)]
async fn gates_before(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    to: u8,
    g: &GateOptions,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Option<NsState>, NsError> {
    let from = st.weight;
    let check = check_gates(conn, sides, st, g, from > 0).await?;
    events(NsEvent::Gates { weight: from, results: check.results.clone() });
    if gates::all_passed(&check.results) {
        return Ok(None);
    }
    report.passed = false;
    report.gates = check.results.clone();
    let why = gates::failures(&check.results);
    report.notes.push(format!("not shifting to {to} %: the gates fail on the current state at {from} %: {why}"));
    if opts.dry_run != DryRun::None {
        return Ok(Some(st.clone()));
    }
    if from > 0 {
        return gate_failed(conn, sides, st, check.results, g.on_failure, opts, report, events).await.map(Some);
    }
    let who = opts.clone();
    let results = check.results;
    update_state(conn, sides, move |s| {
        s.history.push(event(&who, "gate-failed", from, from, format!("not shifted to {to} %: {why}"), results));
    })
    .await
    .map(Some)
}

// ---------------------------------------------------------------------------------------------
// shift

/// `ns shift`: one weight, or a schedule of weights (`steps`), gates between steps.
pub async fn shift(
    conn: &Connection,
    sides: &Sides,
    steps: &[u8],
    allow_decrease: bool,
    g: &GateOptions,
    opts: &RunOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "shift".into(),
        dry_run: opts.dry_run,
        passed: true,
        ..Report::default()
    };
    let todo: Vec<u8> = if steps.len() == 1 {
        // `Same` is applied again too: it finishes a shift that was interrupted half-way.
        match state::check_shift(st.as_ref(), &sides.legacy, steps[0], allow_decrease).map_err(refused)? {
            ShiftDecision::Same | ShiftDecision::Move { .. } => vec![steps[0]],
        }
    } else {
        let rest = state::remaining_steps(st.as_ref(), &sides.legacy, steps).map_err(refused)?;
        let done: Vec<String> = steps.iter().filter(|w| !rest.contains(w)).map(|w| format!("{w} %")).collect();
        if !done.is_empty() {
            report.notes.push(format!("already reached: {} (resuming the schedule)", done.join(", ")));
        }
        rest
    };
    let mut st = st.expect("checked above");
    report.weight = st.weight;
    report.phase = Some(st.phase);
    if let Some(p) = &st.pending {
        report.notes.push(format!("the `{}` to {} % started at {} by {} did not finish; resuming", p.action, p.to, p.at, p.who));
    }
    if todo.is_empty() {
        report.notes.push(format!("nothing to do: {} is at {} %", sides.legacy, st.weight));
        return Ok(report);
    }
    if opts.dry_run != DryRun::None {
        // Preview the first step only: later steps depend on the gates.
        let to = todo[0];
        if to > st.weight && gates_before(conn, sides, &st, to, g, opts, &mut report, events).await?.is_some() {
            return Ok(report);
        }
        let mut plan = Plan::new("ns-shift", &sides.legacy);
        plan.changes = routing_changes(conn, sides, &st, to).await?;
        run_plan(conn, &plan, opts, &mut report, events).await?;
        if todo.len() > 1 {
            report
                .notes
                .push(format!("then, if the gates pass: {}", todo[1..].iter().map(|w| format!("{w} %")).collect::<Vec<_>>().join(", ")));
        }
        report.weight = to;
        return Ok(report);
    }
    if todo.len() > 1 {
        let schedule = state::Schedule { steps: steps.to_vec(), interval_ms: g.interval.as_millis() as u64 };
        st = update_state(conn, sides, |s| s.schedule = Some(schedule)).await?;
    }
    let last = *todo.last().expect("non-empty");
    // Whether the gates passed on the current state within this run (the watch of the previous
    // step ends with a check): then the next weight follows at once.
    let mut checked = false;
    for to in todo {
        let from = st.weight;
        if to > from && !checked {
            // No more traffic to a mesh side that is unhealthy now.
            if let Some(after) = gates_before(conn, sides, &st, to, g, opts, &mut report, events).await? {
                report.weight = after.weight;
                report.phase = Some(after.phase);
                if after.schedule.is_some() && after.weight == from {
                    // Refused at 0 %: the schedule has not started, nothing is running.
                    update_state(conn, sides, |s| s.schedule = None).await?;
                }
                return Ok(report);
            }
        }
        events(NsEvent::Note(format!("weight {from} % -> {to} %")));
        st = set_weight(conn, sides, &st, to, "shift", opts, &mut report, events).await?;
        report.weight = st.weight;
        report.phase = Some(st.phase);
        let check = watch(conn, sides, &st, g, events).await?;
        report.gates = check.results.clone();
        if !gates::all_passed(&check.results) {
            report.passed = false;
            st = gate_failed(conn, sides, &st, check.results, g.on_failure, opts, &mut report, events).await?;
            report.weight = st.weight;
            report.phase = Some(st.phase);
            return Ok(report);
        }
        checked = true;
        st = gates_passed(conn, sides, opts, check, to == last).await?;
    }
    Ok(report)
}

/// Record a step whose gates passed; its restart counts become the baseline of the next.
async fn gates_passed(conn: &Connection, sides: &Sides, opts: &RunOptions, check: GateCheck, schedule_done: bool) -> Result<NsState, NsError> {
    let who = opts.clone();
    update_state(conn, sides, move |s| {
        s.history.push(event(&who, "gates", s.weight, s.weight, "passed", check.results));
        s.restart_baseline = check.restarts.values().sum();
        s.restart_baselines = check.restarts;
        if schedule_done {
            s.schedule = None;
        }
    })
    .await
}

/// Apply the routing at `to` and record it (pending first, then the new weight).
#[allow(clippy::too_many_arguments)]
async fn set_weight(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    to: u8,
    action: &str,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<NsState, NsError> {
    let mut plan = Plan::new("ns-shift", &sides.legacy);
    plan.changes = routing_changes(conn, sides, st, to).await?;
    let mine = begin(conn, sides, opts, action, to).await?;
    run_recorded(conn, sides, opts, &mine, &plan, report, events).await?;
    let who = opts.clone();
    let action = action.to_string();
    // The restart baseline stays where the migration started or its last step passed: restarts
    // since then count against the new weight too.
    update_state(conn, sides, move |s| {
        let from = s.weight;
        s.weight = to;
        s.phase = if to == 0 { Phase::Created } else { Phase::Shifting };
        s.failed_at = None;
        s.pending = None;
        s.history.push(event(&who, &action, from, to, "ok", vec![]));
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn gate_failed(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    results: Vec<GateResult>,
    policy: OnFailure,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<NsState, NsError> {
    let at = st.weight;
    let why = gates::failures(&results);
    match policy {
        OnFailure::Rollback => {
            events(NsEvent::Note(format!("gate failed at {at} %: {why}; moving traffic back to 0 %")));
            let mut plan = Plan::new("ns-shift", &sides.legacy);
            plan.changes = routing_changes(conn, sides, st, 0).await?;
            let mine = begin(conn, sides, opts, "gate-rollback", 0).await?;
            run_recorded(conn, sides, opts, &mine, &plan, report, events).await?;
            report.notes.push(format!("gate failed at {at} %: {why}; traffic is back at 0 %, the mesh side still runs"));
        }
        OnFailure::Freeze => {
            events(NsEvent::Note(format!("gate failed at {at} %: {why}; holding the weight")));
            report.notes.push(format!("gate failed at {at} %: {why}; the weight is frozen at {at} % for a human to decide"));
        }
    }
    let who = opts.clone();
    update_state(conn, sides, move |s| {
        s.pending = None;
        state::after_gate_failure(s, policy);
        let result = match policy {
            OnFailure::Rollback => format!("rolled back to 0 %: {why}"),
            OnFailure::Freeze => format!("frozen at {at} %: {why}"),
        };
        s.history.push(event(&who, "gate-failed", at, s.weight, result, results));
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// complete and rollback

async fn legacy_workloads(conn: &Connection, sides: &Sides) -> Result<Vec<Value>, NsError> {
    objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET], &sides.legacy).await
}

/// `ns complete`: 100 % (gates checked), then the legacy workloads scaled to zero (or deleted).
pub async fn complete(
    conn: &Connection,
    sides: &Sides,
    delete_legacy: bool,
    g: &GateOptions,
    opts: &RunOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let mode = state::check_complete(st.as_ref(), &sides.legacy, delete_legacy).map_err(refused)?;
    let mut st = st.expect("checked above");
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "complete".into(),
        dry_run: opts.dry_run,
        weight: st.weight,
        phase: Some(st.phase),
        passed: true,
        ..Report::default()
    };
    if mode == CompleteMode::Done {
        report.notes.push(format!("nothing to do: the migration of {} is complete", sides.legacy));
        return Ok(report);
    }
    let legacy = legacy_workloads(conn, sides).await?;
    let recorded: Vec<&WorkloadRecord> = st.workloads.iter().collect();
    let kept: Vec<String> = legacy
        .iter()
        .filter(|o| kind_of(o) == "DaemonSet" && !delete_legacy && recorded.iter().any(|w| w.kind == "DaemonSet" && w.name == name_of(o)))
        .map(|o| format!("DaemonSet/{}", name_of(o)))
        .collect();
    if !kept.is_empty() {
        report.notes.push(format!(
            "{} cannot be scaled to zero and keeps running in {} (no traffic is routed to it; --delete-legacy deletes it)",
            kept.join(", "),
            sides.legacy
        ));
    }
    // Stateful backends are never scaled down or deleted: copied on request or not, the data is
    // in the original. Classified again from the live objects, so a journal written before
    // backends were told apart cannot retire one either.
    let legacy_services = objects(conn, &[&kinds::SERVICE], &sides.legacy).await?;
    let service_refs: Vec<&Value> = legacy_services.iter().collect();
    let stateful: Vec<String> = legacy
        .iter()
        .filter(|o| {
            recorded.iter().any(|w| w.stateful && w.kind == kind_of(o) && w.name == name_of(o))
                || crate::datastore::stateful_backend(o, &service_refs).is_some()
        })
        .map(copy::object_name)
        .collect();
    let kept_recorded: Vec<&String> =
        stateful.iter().filter(|id| recorded.iter().any(|w| format!("{}/{}", w.kind, w.name) == **id)).collect();
    if !kept_recorded.is_empty() {
        report.notes.push(format!(
            "{} {} stateful: left running in {} with its data (not scaled down{})",
            kept_recorded.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            if kept_recorded.len() == 1 { "is" } else { "are" },
            sides.legacy,
            if delete_legacy { " nor deleted" } else { "" }
        ));
    }
    let targets: Vec<(Target, i64)> = legacy
        .iter()
        .filter(|o| delete_legacy || kind_of(o) != "DaemonSet")
        .filter(|o| recorded.iter().any(|w| w.kind == kind_of(o) && w.name == name_of(o)))
        .filter(|o| !stateful.contains(&copy::object_name(o)))
        .map(|o| (target_of(kind_of(o), &sides.legacy, name_of(o)), o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)))
        .collect();
    if opts.dry_run != DryRun::None {
        if mode == CompleteMode::Complete && st.weight < 100 && gates_before(conn, sides, &st, 100, g, opts, &mut report, events).await?.is_some() {
            return Ok(report);
        }
        let mut plan = Plan::new("ns-complete", &sides.legacy);
        if mode == CompleteMode::Complete && st.weight < 100 {
            plan.changes = routing_changes(conn, sides, &st, 100).await?;
        }
        for (t, _) in &targets {
            plan.push(if delete_legacy { Change::Delete { target: t.clone() } } else { Change::Scale { target: t.clone(), replicas: 0 } });
        }
        run_plan(conn, &plan, opts, &mut report, events).await?;
        report.weight = 100;
        report.notes.push(outside_callers_note(sides, &st.services, delete_legacy));
        report.notes.extend(shared_note(sides, &st.shared));
        return Ok(report);
    }
    if mode == CompleteMode::Complete {
        // The mesh side must be healthy at its current weight before taking all traffic.
        if st.weight < 100 {
            if let Some(after) = gates_before(conn, sides, &st, 100, g, opts, &mut report, events).await? {
                report.weight = after.weight;
                report.phase = Some(after.phase);
                return Ok(report);
            }
            events(NsEvent::Note(format!("weight {} % -> 100 %", st.weight)));
            st = set_weight(conn, sides, &st, 100, "shift", opts, &mut report, events).await?;
            report.weight = 100;
        }
        let gw = GateOptions { interval: g.interval, ..g.clone() };
        let check = watch(conn, sides, &st, &gw, events).await?;
        report.gates = check.results.clone();
        if !gates::all_passed(&check.results) {
            report.passed = false;
            st = gate_failed(conn, sides, &st, check.results, g.on_failure, opts, &mut report, events).await?;
            report.weight = st.weight;
            report.phase = Some(st.phase);
            return Ok(report);
        }
        gates_passed(conn, sides, opts, check, true).await?;
    }
    let replicas: BTreeMap<String, i64> = targets.iter().map(|(t, r)| (format!("{}/{}", t.kind, t.name), *r)).collect();
    let keep = replicas.clone();
    // Before a delete, the objects themselves, for rollback to re-create.
    let doomed: Vec<(String, Value)> = if delete_legacy {
        legacy
            .iter()
            .filter(|o| targets.iter().any(|(t, _)| t.kind == kind_of(o) && t.name == name_of(o)))
            .map(|o| (format!("{}/{}", kind_of(o), name_of(o)), restorable(o)))
            .collect()
    } else {
        Vec::new()
    };
    let mine = begin(conn, sides, opts, "complete", 100).await?;
    // Remember the legacy replicas (and objects) before the first scale or delete, unless an
    // earlier run did.
    update_state(conn, sides, move |s| {
        for (k, v) in keep {
            if v > 0 && !k.starts_with("DaemonSet/") {
                s.legacy_replicas.entry(k).or_insert(v);
            }
        }
        for (k, o) in doomed {
            s.deleted_legacy.entry(k).or_insert(o);
        }
    })
    .await?;
    let mut plan = Plan::new("ns-complete", &sides.legacy);
    for (t, _) in &targets {
        plan.push(if delete_legacy { Change::Delete { target: t.clone() } } else { Change::Scale { target: t.clone(), replicas: 0 } });
    }
    run_recorded(conn, sides, opts, &mine, &plan, &mut report, events).await?;
    let who = opts.clone();
    let st = update_state(conn, sides, move |s| {
        s.phase = Phase::Completed;
        s.pending = None;
        s.schedule = None;
        s.legacy_deleted = s.legacy_deleted || delete_legacy;
        let what = if delete_legacy { "legacy workloads deleted" } else { "legacy workloads scaled to zero" };
        s.history.push(event(&who, "complete", s.weight, 100, what, vec![]));
    })
    .await?;
    report.phase = Some(st.phase);
    report.weight = st.weight;
    report.notes.push(outside_callers_note(sides, &st.services, st.legacy_deleted));
    report.notes.extend(shared_note(sides, &st.shared));
    Ok(report)
}

/// The shared backends `complete` leaves running where they are.
fn shared_note(sides: &Sides, shared: &[copy::SharedBackend]) -> Option<String> {
    let workloads: Vec<&str> = shared.iter().filter(|s| !s.object.starts_with("Service/")).map(|s| s.object.as_str()).collect();
    (!workloads.is_empty()).then(|| {
        format!(
            "shared backends keep running in {legacy} with their data, serving the mesh side: {}; `kubectl mesh-migrate enable -n {legacy}` puts them on the mesh in place",
            workloads.join(", "),
            legacy = sides.legacy
        )
    })
}

/// What `complete` leaves behind for callers that do not go through the mesh: the weights live
/// in VirtualServices, which only meshed callers (and gateways) apply; anyone else still reaches
/// the legacy Service, whose pods are gone.
fn outside_callers_note(sides: &Sides, services: &[String], deleted: bool) -> String {
    let gone = if deleted { "deleted" } else { "scaled to zero" };
    // Shared backends are not among `services` (only routed Services are): they keep serving.
    let examples: Vec<String> = services.iter().take(3).map(|s| format!("{s}.{}", sides.mesh)).collect();
    let more = if services.len() > 3 { ", ..." } else { "" };
    format!(
        "callers outside the mesh (pods without a proxy, other clusters, anything not routed by the VirtualServices) still resolve the legacy Services in {legacy}, whose workloads are {gone}: their requests fail. Move those callers into the mesh, or point them at the mesh side ({examples}{more}, i.e. `<service>.{mesh}.svc.cluster.local`)",
        legacy = sides.legacy,
        mesh = sides.mesh,
        examples = if examples.is_empty() { format!("`<service>.{}`", sides.mesh) } else { examples.join(", ") },
    )
}

/// A legacy workload as `rollback` re-creates it: without what the API server set (uid,
/// resourceVersion, timestamps, managedFields, status) or the owner references of a release.
fn restorable(o: &Value) -> Value {
    let mut v = o.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "ownerReferences"] {
            meta.remove(f);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.remove("deployment.kubernetes.io/revision");
        }
    }
    v
}

/// `ns rollback`: 0 %, then the mesh workloads scaled to zero; the legacy side is untouched
/// (after `complete` its workloads are first scaled back to their recorded replicas, or
/// re-created from the journal after `--delete-legacy`, and waited for).
pub async fn rollback(conn: &Connection, sides: &Sides, opts: &RunOptions, events: &mut dyn FnMut(NsEvent)) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    state::check_rollback(st.as_ref(), &sides.legacy).map_err(refused)?;
    let st = st.expect("checked above");
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "rollback".into(),
        dry_run: opts.dry_run,
        weight: st.weight,
        phase: Some(st.phase),
        passed: true,
        ..Report::default()
    };
    let mut plan = Plan::new("ns-rollback", &sides.legacy);
    let mut targets = Vec::new();
    for (key, object) in &st.deleted_legacy {
        // Re-created as they were, at the replicas they had before `complete` (an earlier
        // `complete` may have scaled them to zero before the delete).
        let mut object = object.clone();
        if let Some(r) = st.legacy_replicas.get(key)
            && object.pointer("/spec/replicas").is_some()
        {
            object["spec"]["replicas"] = json!(r);
        }
        targets.push(target_of(kind_of(&object), &sides.legacy, name_of(&object)));
        plan.push(Change::Apply { object });
    }
    for (key, replicas) in &st.legacy_replicas {
        if st.deleted_legacy.contains_key(key) {
            continue;
        }
        let (kind, name) = key.split_once('/').unwrap_or(("Deployment", key));
        let t = target_of(kind, &sides.legacy, name);
        plan.push(Change::Scale { target: t.clone(), replicas: *replicas });
        targets.push(t);
    }
    if !targets.is_empty() {
        plan.push(Change::WaitReady { targets });
    }
    plan.changes.extend(routing_changes(conn, sides, &st, 0).await?);
    let mesh_live = objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET], &sides.mesh).await?;
    for w in &st.workloads {
        if w.kind == "DaemonSet" {
            continue;
        }
        if mesh_live.iter().any(|o| kind_of(o) == w.kind && name_of(o) == w.name) {
            plan.push(Change::Scale { target: target_of(&w.kind, &sides.mesh, &w.name), replicas: 0 });
        }
    }
    if st.workloads.iter().any(|w| w.kind == "DaemonSet") {
        report.notes.push("DaemonSets cannot be scaled: their copies keep running (with no traffic routed to them)".into());
    }
    let mine = begin(conn, sides, opts, "rollback", 0).await?;
    run_recorded(conn, sides, opts, &mine, &plan, &mut report, events).await?;
    if opts.dry_run != DryRun::None {
        report.weight = 0;
        return Ok(report);
    }
    let who = opts.clone();
    let st = update_state(conn, sides, move |s| {
        let from = s.weight;
        s.phase = Phase::RolledBack;
        s.weight = 0;
        s.pending = None;
        s.schedule = None;
        s.legacy_replicas.clear();
        let recreated = !s.deleted_legacy.is_empty();
        s.deleted_legacy.clear();
        s.legacy_deleted = false;
        let what = if recreated {
            "legacy workloads re-created, traffic at 0 %, mesh side scaled to zero"
        } else {
            "traffic at 0 %, mesh side scaled to zero"
        };
        s.history.push(event(&who, "rollback", from, 0, what, vec![]));
    })
    .await?;
    report.phase = Some(st.phase);
    report.weight = 0;
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// status and monitor

/// The routing as it is in the cluster, per Service.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteState {
    pub service: String,
    /// `None`: missing, or its routes disagree.
    pub weight: Option<u8>,
    pub present: bool,
}

/// `ns status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub namespace: String,
    pub mesh_namespace: String,
    pub state: Option<NsState>,
    pub routes: Vec<RouteState>,
    /// Differences between the recorded state and the cluster, explained.
    pub problems: Vec<String>,
    /// The journal's record of the last `ns-*` engine step that did not complete.
    pub next: String,
}

pub async fn status(conn: &Connection, sides: &Sides) -> Result<Status, NsError> {
    let (journal, st) = load_state(conn, sides).await?;
    let mut problems = Vec::new();
    let mut routes = Vec::new();
    let Some(s) = st else {
        return Ok(Status {
            namespace: sides.legacy.clone(),
            mesh_namespace: sides.mesh.clone(),
            state: None,
            routes,
            problems,
            next: format!("kubectl mesh-migrate ns create {}", sides.legacy),
        });
    };
    if namespace_exists(conn, &sides.mesh).await? {
        let vss = objects(conn, &[&kinds::VIRTUAL_SERVICE], &sides.mesh).await.unwrap_or_default();
        for name in &s.services {
            let vs = vss.iter().find(|v| name_of(v) == name);
            let weight = vs.and_then(|v| routing::weight_of(sides, v));
            routes.push(RouteState { service: name.clone(), weight, present: vs.is_some() });
            match (vs, weight) {
                (None, _) if s.phase != Phase::RolledBack || s.weight > 0 => {
                    problems.push(format!("VirtualService {}/{name} is missing", sides.mesh))
                }
                (Some(_), None) => problems.push(format!("VirtualService {}/{name}: its routes disagree or do not sum to 100 (edited by hand?)", sides.mesh)),
                (Some(_), Some(w)) if w != s.weight && s.pending.is_none() => problems.push(format!(
                    "VirtualService {}/{name} routes {w} % to the mesh, but the recorded weight is {} %: it was changed outside this tool; `ns shift {} {}` (with --allow-decrease if lower) restores the recorded weight",
                    sides.mesh, s.weight, sides.legacy, s.weight
                )),
                _ => {}
            }
        }
    } else {
        problems.push(format!("namespace {} does not exist", sides.mesh));
    }
    if let Some(p) = &s.pending {
        let applied: Vec<String> = routes.iter().filter(|r| r.weight == Some(p.to)).map(|r| r.service.clone()).collect();
        let mut msg = format!("the `{}` to {} % started at {} by {} did not finish", p.action, p.to, p.at, p.who);
        if let Some(e) = &p.error {
            msg.push_str(&format!(": {e}"));
        }
        if p.action == "shift" || p.action == "gate-rollback" {
            msg.push_str(&format!(
                "; {} of {} VirtualServices already route {} % (the recorded weight stays {} % until all do)",
                applied.len(),
                routes.len(),
                p.to,
                s.weight
            ));
        }
        problems.push(msg);
    }
    if let Some(j) = &journal
        && let Some(last) = j.steps.iter().rev().find(|r| r.step.starts_with("ns-"))
        && last.status == plan::StepStatus::Failed
        && s.pending.is_some()
    {
        problems.push(format!(
            "journal: step {} by {} at {} failed{}",
            last.step,
            last.who,
            last.started_at,
            last.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    let next = s.next_step();
    Ok(Status { namespace: sides.legacy.clone(), mesh_namespace: sides.mesh.clone(), state: Some(s), routes, problems, next })
}

/// One namespace's migration in `ns status -A`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub namespace: String,
    pub mesh_namespace: String,
    /// `None` when the journal could not be read (then `problem` says why).
    pub state: Option<NsState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `ns status -A`: every namespace whose journal records a namespace-based migration, from one
/// LIST of the journal ConfigMaps across namespaces (by their `managed-by` label). Journals of
/// in-place migrations (no migration state) are left out; a journal that cannot be read is
/// listed with the reason.
pub async fn status_all(conn: &Connection) -> Result<Vec<Summary>, NsError> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::all(conn.client.clone());
    let lp = kube::api::ListParams::default().labels(&format!("{}={}", plan::MANAGED_BY.0, plan::MANAGED_BY.1));
    let list = api.list(&lp).await.map_err(|e| {
        NsError::Plan(PlanError::Cluster(ClusterError::Api {
            verb: "list",
            resource: "configmaps (all namespaces)".to_string(),
            message: e.to_string(),
            source: e,
        }))
    })?;
    let mut out = Vec::new();
    for cm in list.items {
        if cm.metadata.name.as_deref() != Some(plan::JOURNAL_NAME) {
            continue;
        }
        let Some(ns) = cm.metadata.namespace.clone() else { continue };
        let mesh = format!("{ns}{}", super::MESH_SUFFIX);
        let value = serde_json::to_value(&cm).unwrap_or_default();
        let parsed = Journal::from_config_map(&ns, &value).map_err(|e| e.to_string()).and_then(|j| match j.extensions.get(STATE_KEY) {
            None => Ok(None),
            Some(v) => serde_json::from_value::<NsState>(v.clone())
                .map(Some)
                .map_err(|e| format!("the journal holds a migration state this version cannot read: {e}")),
        });
        match parsed {
            Ok(None) => {}
            Ok(Some(st)) => out.push(Summary { namespace: ns, mesh_namespace: mesh, state: Some(st), problem: None }),
            Err(problem) => out.push(Summary { namespace: ns, mesh_namespace: mesh, state: None, problem: Some(problem) }),
        }
    }
    out.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(out)
}

/// One side in a monitor sample.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SideSample {
    pub namespace: String,
    pub ready_pods: i64,
    pub desired_pods: i64,
    pub restarts: u64,
    /// Percent, when Prometheus answered.
    pub success_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One refresh of `ns monitor`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub at: String,
    pub phase: Option<Phase>,
    /// The recorded weight.
    pub weight: u8,
    pub legacy: SideSample,
    pub mesh: SideSample,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

async fn side(
    conn: &Connection,
    ns: &str,
    names: &[WorkloadRecord],
    prom: Option<&Prometheus>,
    reporter: &str,
    window: &str,
) -> Result<(SideSample, Vec<String>), NsError> {
    let mut notes = Vec::new();
    let live = if namespace_exists(conn, ns).await? {
        objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::POD], ns).await?
    } else {
        Vec::new()
    };
    let mut ready = 0;
    let mut desired = 0;
    for w in names {
        if let Some(o) = live.iter().find(|o| kind_of(o) == w.kind && name_of(o) == w.name) {
            let r = plan::workload_ready(&w.kind, o);
            ready += r.ready_pods;
            desired += r.desired;
        }
    }
    let pods: Vec<Value> = live.iter().filter(|o| kind_of(o) == "Pod").cloned().collect();
    let mut s = SideSample {
        namespace: ns.to_string(),
        ready_pods: ready,
        desired_pods: desired,
        restarts: gates::restart_count(&pods),
        success_rate: None,
        p99_ms: None,
    };
    if let Some(p) = prom {
        let t = Some(unix_now());
        match p.query(&gates::success_rate_query_by(ns, reporter, window), t).await {
            Ok(v) => s.success_rate = v.map(|r| r * 100.0),
            Err(e) => notes.push(e),
        }
        match p.query(&gates::p99_query_by(ns, reporter, window), t).await {
            Ok(v) => s.p99_ms = v,
            Err(e) => notes.push(e),
        }
    }
    Ok((s, notes))
}

/// One monitor sample: weight, and per side readiness, restarts, success rate and p99.
pub async fn sample(conn: &Connection, sides: &Sides, prom: Option<&Prometheus>, window: &str) -> Result<Sample, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let Some(st) = st else {
        return Err(refused(format!(
            "no migration of {} is recorded: run `kubectl mesh-migrate ns create {}` first",
            sides.legacy, sides.legacy
        )));
    };
    // The legacy side has no proxies (sidecar mode): its traffic is what meshed callers report.
    let (legacy, mut notes) = side(conn, &sides.legacy, &st.workloads, prom, "source", window).await?;
    let (mesh, more) = side(conn, &sides.mesh, &st.workloads, prom, "destination", window).await?;
    notes.extend(more);
    notes.dedup();
    Ok(Sample { at: now(), phase: Some(st.phase), weight: st.weight, legacy, mesh, notes })
}
