//! Plans, the journal, execution and rollback: the one way the live migration commands write to a
//! cluster.
//!
//! A mutating command never writes while it decides. It first builds a [`Plan`] — an ordered list
//! of [`Change`]s — with a pure function of an [`Inventory`](meshmove_model::inventory::Inventory), so the
//! decision can be unit-tested offline and previewed (`--dry-run=client` renders a diff per
//! object with [`preview`], `-o yaml` prints the whole objects it leaves, [`objects_after`]). Then [`execute`] sends it, and
//! [`rollback`] undoes every step recorded for a namespace.
//!
//! # The API
//!
//! * [`Target`]: `apiVersion`, `kind`, namespace (`None` for cluster-scoped kinds) and name.
//! * [`Change`], one intended write:
//!   - [`Change::Apply`] — server-side apply of the fields the tool owns, field manager
//!     [`FIELD_MANAGER`], never forced: creates or updates. A 409 (another manager owns a field
//!     with a different value) stops the step with a [`PlanError::Conflict`] naming the manager
//!     and the fields.
//!   - [`Change::Set`] — set (`Some`) or remove (`None`) single fields, addressed by JSON
//!     pointers, on an object the tool does not own (namespace injection labels, a pod-template
//!     annotation). Sent as a JSON patch whose `test` operations make it fail rather than
//!     overwrite a value that changed since it was read. Helpers: [`Change::label`],
//!     [`Change::annotation`].
//!   - [`Change::Restart`] — rollout restart of a Deployment, StatefulSet or DaemonSet, as kubectl
//!     does it: the pod-template annotation [`RESTARTED_AT`] gets the current time.
//!   - [`Change::Scale`] — `spec.replicas`.
//!   - [`Change::Delete`] — delete an object (its prior content is journaled first).
//!   - [`Change::WaitReady`] — no write: wait until the listed workloads have rolled out
//!     (observedGeneration, updated and ready replicas), with the timeout of [`ExecOptions`].
//!     Builders put one after each batch of restarts.
//!   - [`Change::WaitCondition`] — no write: wait until an object's `status.conditions` entry of
//!     a type is `True` for its current generation (as `kubectl wait --for=condition=...`
//!     decides it), with the same timeout; a Gateway's `Programmed`, say.
//! * [`Plan`] `{ step, namespace, changes }`: `step` names the command (`expose`, `enable`,
//!   `mtls-strict`, `ns-create` ...); `namespace` is where the journal lives.
//! * [`execute`]`(conn, plan, options, progress) -> Vec<`[`Outcome`]`>` with [`DryRun`]:
//!   `None` writes (journal first), `Server` sends every write with `dryRun=All` and no journal,
//!   `Client` sends nothing but reads and reports what would happen. Each outcome says
//!   created / configured / unchanged / deleted / restarted / scaled / ready.
//! * [`preview`]`(conn, plan) -> Vec<`[`Preview`]`>`: a unified diff per change (current vs
//!   intended, only the fields the change touches), reads only.
//! * [`rollback`]`(conn, namespace, options, progress) -> Vec<Outcome>`: undo from the journal;
//!   [`rollback_preview`] shows what it would do, a diff per object, from reads only;
//!   [`RollbackOptions::only`] narrows both to some objects.
//! * [`retire`]`(conn, namespace, select, options)`: make what the tool wrote to the selected
//!   objects final: their Secret backups are deleted and their entries leave the journal (the
//!   journal goes when nothing is left in it).
//! * [`objects_after`]`(previews)`: the whole objects as a plan (or a rollback) leaves them,
//!   what `-o yaml|json` prints.
//! * [`Journal`]: [`Journal::load`] reads it (for `status` and similar read-only uses);
//!   [`Journal::save`] stores it with optimistic concurrency; `extensions` keeps other commands'
//!   state (by key) in the same object.
//! * [`Progress`] events go to a callback (the core never prints).
//!
//! # The journal
//!
//! A ConfigMap [`JOURNAL_NAME`] in the plan's namespace, labelled
//! `app.kubernetes.io/managed-by: kubectl-mesh-migrate`, holding JSON under the key
//! `journal.json`: the steps (name, who, when, status `started`/`completed`/`failed`, the error)
//! and, for every object the tool touched, its prior state, recorded **before the first write
//! that touches it** and never again: `absent` for objects the tool created, the whole object for
//! objects it deleted or applied over, and for single fields the prior value (or its absence) plus
//! the last value the tool wrote. Rollback therefore returns to the state before the *first* step,
//! from any workstation, after a crash. Journal writes carry the `resourceVersion` they read
//! (optimistic concurrency): two operators cannot interleave silently, the second gets
//! [`PlanError::JournalConflict`].
//!
//! Secrets are the exception to whole objects: the journal never holds their values. A Secret
//! the tool applies over or deletes is recorded by reference and a keyed fingerprint ([`fingerprint`]), its content
//! copied to a backup Secret `<name>.mesh-migrate-backup` first (see [`secret`]). A journal
//! that would pass the API server's 1 MiB limit for a ConfigMap is refused before it is sent
//! ([`PlanError::JournalTooLarge`], naming its biggest entries): the step then writes nothing.
//!
//! # Re-running and resuming
//!
//! Every change compares the live object with the intended state first: re-running a completed
//! step changes nothing and reports `unchanged`; an interrupted step (killed process, API errors)
//! is resumed by running it again — what was done is `unchanged`, the rest is done. Restarts are
//! journaled with the time they set, so a resumed step does not restart a workload twice.
//!
//! # Rollback
//!
//! In reverse order of recording: objects the tool created are deleted, objects it changed or
//! deleted get their prior content back, fields get their prior values (removed when they were
//! absent). Pod-template annotations of restarted workloads are restored last — after the
//! namespace labels — which rolls the workloads again, so the new pods come up without the proxy;
//! in batches of at most [`RollbackOptions::batch_size`], never two workloads one
//! PodDisruptionBudget guards (as the budgets are at rollback time), each batch waited for. A
//! field someone changed after the tool wrote it is a
//! [`PlanError::Drifted`] (reported, not overwritten) unless `force` is set.
//!
//! Rollback is three-way: before its first write it compares every object and field it would
//! restore (prior state) with what the tool last wrote (the journal's `applied` object and
//! `written` field values) and the live object. An object someone else changed — a field the
//! tool wrote has another value, or, for an object the tool created, another field manager
//! wrote fields of it outside `metadata` and `status` — is a [`Drift`]; all of them are
//! collected first and rollback refuses whole with [`PlanError::Drifts`] (nothing changed),
//! unless `force`. [`conflicts`] runs the same check (tool-owned fields only) before a step
//! runs again over objects it wrote. When everything is
//! restored the journal itself is deleted, so the namespace is exactly as before. Rolling back
//! only one step ([`RollbackOptions::step`]) undoes what that step recorded first and keeps the
//! journal for the rest. Rollback is idempotent: values already restored are skipped.

// Errors carry their kube::Error source, like `ClusterError`; they end a command, once.
#![allow(clippy::result_large_err)]

mod client;
mod drift;
mod execute;
mod journal;
mod preview;
mod retire;
mod rollback;
pub mod podsecurity;
pub mod fingerprint;
pub mod secret;
mod wait;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use client::{pointer_escape, pointer_get, portable};
pub use drift::{Drift, conflicts, describe};
pub use execute::execute;
pub use journal::{FieldRecord, JOURNAL_LIMIT, Journal, JournalEntry, Prior, StepRecord, StepStatus};
pub use preview::{Preview, objects_after, preview};
pub use retire::{RetireOptions, retire};
pub use rollback::{rollback, rollback_drifts, rollback_preview, rollback_preview_of};
pub use wait::{ConditionState, ReadyState, Rollout, condition_state, workload_ready};

use crate::cluster::ClusterError;

/// The field manager of `kubectl mesh-migrate`'s writes ([`Manager::MeshMigrate`]).
pub const FIELD_MANAGER: &str = "kubectl-mesh-migrate";

/// Which plugin of the suite writes: its field manager for server-side apply and patches. Both
/// write through this engine into the same per-namespace journal, so a rollback of the namespace
/// undoes either's steps, and neither's fields count as someone else's edits in a drift check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    #[default]
    MeshMigrate,
    Dbiso,
}

impl Manager {
    /// The field manager the API server records in `managedFields`.
    pub fn field_manager(self) -> &'static str {
        match self {
            Manager::MeshMigrate => FIELD_MANAGER,
            Manager::Dbiso => "kubectl-dbiso",
        }
    }

    /// Whether `field_manager` is one of the suite's own.
    pub fn is_ours(field_manager: &str) -> bool {
        [Manager::MeshMigrate, Manager::Dbiso].iter().any(|m| m.field_manager() == field_manager)
    }
}
/// Name of the journal ConfigMap.
pub const JOURNAL_NAME: &str = "mesh-migrate-journal";
/// Data key of the journal ConfigMap.
pub const JOURNAL_KEY: &str = "journal.json";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Label on every object the tool creates (and on the journal).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-mesh-migrate");

/// An object by apiVersion, kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl Target {
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Target {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// A Namespace object.
    pub fn namespace(name: &str) -> Self {
        Target::new("v1", "Namespace", None, name)
    }

    /// The target of a full object (`apiVersion`, `kind`, `metadata.namespace`, `metadata.name`).
    pub fn of(object: &Value) -> Self {
        let s = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        Target {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
            name: s("/metadata/name"),
        }
    }

    /// `deployment.apps/api` as kubectl prints it.
    pub fn kubectl_name(&self) -> String {
        let group = self.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if group.is_empty() {
            format!("{}/{}", self.kind.to_lowercase(), self.name)
        } else {
            format!("{}.{group}/{}", self.kind.to_lowercase(), self.name)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// One intended write (or wait). See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Change {
    /// Server-side apply of `object` (the fields the tool owns).
    Apply { object: Value },
    /// Set (`Some`) or remove (`None`) single fields, by JSON pointer.
    Set { target: Target, fields: BTreeMap<String, Option<Value>> },
    /// Rollout restart (pod-template annotation [`RESTARTED_AT`]).
    Restart { target: Target },
    /// Set `spec.replicas`.
    Scale { target: Target, replicas: i64 },
    /// Delete the object.
    Delete { target: Target },
    /// Wait for these workloads to be rolled out and ready.
    WaitReady { targets: Vec<Target> },
    /// Wait for the condition `condition` of `target` to be `True` (see [`ConditionState`]).
    WaitCondition { target: Target, condition: String },
}

/// Read one object of the kinds table; `None` when it does not exist.
pub async fn get(conn: &crate::cluster::Connection, target: &Target) -> Result<Option<Value>, PlanError> {
    client::get(conn, target).await
}

/// JSON pointer of a label.
pub fn label_pointer(key: &str) -> String {
    format!("/metadata/labels/{}", pointer_escape(key))
}

/// JSON pointer of an annotation.
pub fn annotation_pointer(key: &str) -> String {
    format!("/metadata/annotations/{}", pointer_escape(key))
}

/// JSON pointer of the restart annotation in a pod template.
pub fn restart_pointer() -> String {
    format!("/spec/template/metadata/annotations/{}", pointer_escape(RESTARTED_AT))
}

impl Change {
    /// Set or remove one label.
    pub fn label(target: Target, key: &str, value: Option<&str>) -> Change {
        Change::Set { target, fields: BTreeMap::from([(label_pointer(key), value.map(|v| json!(v)))]) }
    }

    /// Set or remove one annotation.
    pub fn annotation(target: Target, key: &str, value: Option<&str>) -> Change {
        Change::Set { target, fields: BTreeMap::from([(annotation_pointer(key), value.map(|v| json!(v)))]) }
    }

    /// `object` as this change leaves it, when the change sets fields of it ([`Change::Set`],
    /// [`Change::Scale`] of the same target): what a check of the planned state reads. Other
    /// changes, and other objects, are left as they are.
    pub fn set_fields_on(&self, object: &mut Value) {
        let fields = match self {
            Change::Set { target, fields } if *target == Target::of(object) => fields.clone(),
            Change::Scale { target, replicas } if *target == Target::of(object) => {
                BTreeMap::from([("/spec/replicas".to_string(), Some(json!(replicas)))])
            }
            _ => return,
        };
        for (pointer, value) in fields {
            match value {
                Some(v) => client::set_pointer(object, &pointer, v),
                None => client::remove_pointer(object, &pointer),
            }
        }
    }

    /// The object this change writes (`None` for the waits).
    pub fn target(&self) -> Option<Target> {
        match self {
            Change::Apply { object } => Some(Target::of(object)),
            Change::Set { target, .. } | Change::Restart { target } | Change::Scale { target, .. } | Change::Delete { target } => {
                Some(target.clone())
            }
            Change::WaitReady { .. } | Change::WaitCondition { .. } => None,
        }
    }

    /// A short verb for tables: apply, set, restart, scale, delete, wait.
    pub fn verb(&self) -> &'static str {
        match self {
            Change::Apply { .. } => "apply",
            Change::Set { .. } => "set",
            Change::Restart { .. } => "restart",
            Change::Scale { .. } => "scale",
            Change::Delete { .. } => "delete",
            Change::WaitReady { .. } | Change::WaitCondition { .. } => "wait",
        }
    }
}

/// An ordered list of changes for one step in one namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The step's name, as the journal records it (`expose`, `enable`, `mtls-strict` ...).
    pub step: String,
    /// Namespace the step works on; the journal lives there.
    pub namespace: String,
    pub changes: Vec<Change>,
    /// Who writes (field manager); `kubectl mesh-migrate` unless set.
    #[serde(default, skip_serializing_if = "is_default_manager")]
    pub manager: Manager,
}

fn is_default_manager(m: &Manager) -> bool {
    *m == Manager::default()
}

impl Plan {
    pub fn new(step: &str, namespace: &str) -> Self {
        Plan { step: step.to_string(), namespace: namespace.to_string(), changes: Vec::new(), manager: Manager::default() }
    }

    /// The plan, written by `manager`.
    pub fn by(mut self, manager: Manager) -> Self {
        self.manager = manager;
        self
    }

    pub fn push(&mut self, change: Change) -> &mut Self {
        self.changes.push(change);
        self
    }

    /// Number of changes that write (everything but waits).
    pub fn writes(&self) -> usize {
        self.changes.iter().filter(|c| !matches!(c, Change::WaitReady { .. } | Change::WaitCondition { .. })).count()
    }
}

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    /// Write for real (journal first).
    #[default]
    None,
    /// Send nothing but reads.
    Client,
    /// Send writes with `dryRun=All`; the server persists nothing. No journal.
    Server,
}

/// What a change did (or would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Deleted,
    Restarted,
    Scaled,
    /// Workloads waited for are rolled out and ready (or an object's condition waited for is met).
    Ready,
    /// Nothing to do: the object is already absent, or a wait in a dry run.
    Skipped,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Restarted => "restarted",
            Action::Scaled => "scaled",
            Action::Ready => "ready",
            Action::Skipped => "skipped",
        })
    }
}

/// The result of one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The object written, or the first workload waited for.
    pub target: Target,
    pub action: Action,
    pub dry_run: DryRun,
    /// Extra words (`3 workloads`, `already absent`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.target.kubectl_name(), self.action)?;
        if let Some(ns) = &self.target.namespace {
            write!(f, " (namespace {ns})")?;
        }
        if !self.detail.is_empty() {
            write!(f, " {}", self.detail)?;
        }
        match self.dry_run {
            DryRun::None => Ok(()),
            DryRun::Client => f.write_str(" (dry run)"),
            DryRun::Server => f.write_str(" (server dry run)"),
        }
    }
}

/// Events for a progress display (the core never prints; the binary decides how to show them).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A change finished.
    Done(Outcome),
    /// Waiting for workloads: how many of them are ready, and the least ready one's state.
    Waiting { ready: usize, total: usize, pending: Option<(Target, ReadyState)> },
    /// Waiting for a condition of an object ([`Change::WaitCondition`]): its state now.
    WaitingFor { target: Target, state: ConditionState },
    /// The journal was written (the count of objects recorded so far).
    Journaled { entries: usize },
}

/// Options of [`execute`].
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub dry_run: DryRun,
    /// Longest wait for one [`Change::WaitReady`] or [`Change::WaitCondition`].
    pub timeout: Duration,
    /// Who runs the step (recorded in the journal).
    pub actor: String,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { dry_run: DryRun::None, timeout: Duration::from_secs(300), actor: actor(None) }
    }
}

/// Options of [`rollback`].
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub dry_run: DryRun,
    /// Roll back only what this step recorded first (default: everything).
    pub step: Option<String>,
    /// Roll back only the entries of these objects (default: every object; with `step`, both
    /// must select an entry). The journal keeps the others.
    pub only: Option<Vec<Target>>,
    /// Restore fields even when someone changed them after the tool wrote them.
    pub force: bool,
    /// Longest wait for a batch of re-rolled workloads.
    pub timeout: Duration,
    /// Workloads rolled again at once, each batch waited for (0: all at once).
    pub batch_size: usize,
    pub actor: String,
    /// Field manager of the restoring writes.
    pub manager: Manager,
}

impl Default for RollbackOptions {
    fn default() -> Self {
        RollbackOptions {
            dry_run: DryRun::None,
            step: None,
            only: None,
            force: false,
            timeout: Duration::from_secs(300),
            batch_size: 0,
            actor: actor(None),
            manager: Manager::default(),
        }
    }
}

/// Who runs the tool: `$USER` (else `unknown`), with the kubeconfig context when known.
pub fn actor(context: Option<&str>) -> String {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "unknown".to_string());
    match context {
        Some(c) if !c.is_empty() => format!("{user}@{c}"),
        _ => user,
    }
}

/// Errors of planning, executing and rolling back.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Unreachable cluster, rejected credentials, or another API error.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Another field manager owns a field the tool would change, or a precondition failed.
    #[error("conflict on {target}: {message}")]
    Conflict { target: Target, message: String, source: kube::Error },
    /// The journal changed between read and write: another operator is running a step.
    #[error(
        "the journal ConfigMap {namespace}/{JOURNAL_NAME} was changed by someone else while this step ran; \
         another operator may be migrating this namespace: check `kubectl mesh-migrate status -n {namespace}`, then rerun"
    )]
    JournalConflict { namespace: String, source: kube::Error },
    /// The journal cannot be read.
    #[error("the journal ConfigMap {namespace}/{JOURNAL_NAME} is not a journal this tool wrote: {reason}")]
    BadJournal { namespace: String, reason: String },
    /// Nothing to roll back.
    #[error("no journal in namespace {namespace}: nothing of this tool's to roll back there")]
    NoJournal { namespace: String },
    /// A field changed after the tool wrote it; rollback does not overwrite it without `force`.
    #[error(
        "{target}: {pointer} is {current} now, but the tool wrote {written}: someone changed it since; \
         rollback would set it back to {prior} (use --force to restore it anyway)"
    )]
    Drifted { target: Target, pointer: String, current: String, written: String, prior: String },
    /// Objects or fields the tool wrote were changed by someone else since; `action` (rollback,
    /// or a rerun of a step) refused whole and changed nothing.
    #[error("{} object(s) changed by someone else since this tool wrote them; {action} changed nothing, {hint}:{}", .drifts.len(), describe(.drifts))]
    Drifts { action: String, hint: String, drifts: Vec<Drift> },
    /// A workload did not roll out in time.
    #[error("timed out after {}s waiting for {target}: {state}", .timeout.as_secs())]
    Timeout { target: Target, state: String, timeout: Duration },
    /// A Deployment exceeded its progress deadline (its `Progressing` condition has reason
    /// `ProgressDeadlineExceeded`): waiting longer cannot help. `message` is the condition's.
    #[error("{target} exceeded its progress deadline: {message}")]
    RolloutFailed { target: Target, message: String },
    /// A kind outside the table of kinds the tool knows how to address.
    #[error("{api_version} {kind} is not a kind this tool writes")]
    UnknownKind { api_version: String, kind: String },
    /// A change that cannot apply to the object as it is.
    #[error("{target}: {message}")]
    Invalid { target: Target, message: String },
    /// The journal would pass the API server's 1 MiB limit for a ConfigMap; it was not sent,
    /// and nothing it would have recorded was written.
    #[error(
        "the journal ConfigMap {namespace}/{JOURNAL_NAME} would hold {size} bytes for {entries} object(s), more than the {limit} \
         bytes it may (ConfigMaps stop at 1 MiB); nothing was written. Its biggest parts:{}\n\
         run the step on fewer objects at a time (e.g. roll back or complete what is recorded first)",
        parts(.biggest)
    )]
    JournalTooLarge { namespace: String, size: usize, limit: usize, entries: usize, biggest: Vec<(String, usize)> },
    /// Secrets whose prior content rollback cannot prove it has: neither the live Secret nor
    /// its backup holds content of the recorded hash. Rollback refused whole.
    #[error(
        "rollback changed nothing: the content of {} Secret(s) before this tool wrote them is neither in place nor in their backup, \
         so they cannot be restored:{}\nput the prior content back by hand (rollback checks it against the hash it recorded and then \
         goes on), or rerun with --force to leave these Secrets as they are and roll back everything else",
        .secrets.len(),
        unrestorable(.secrets)
    )]
    SecretsNotRestorable { secrets: Vec<(Target, secret::SecretLost)> },
}

/// The biggest parts of a journal, one per line, for [`PlanError::JournalTooLarge`].
fn parts(biggest: &[(String, usize)]) -> String {
    biggest.iter().map(|(what, size)| format!("\n  - {what}: {size} bytes")).collect()
}

/// The Secrets rollback cannot restore, one per line.
fn unrestorable(secrets: &[(Target, secret::SecretLost)]) -> String {
    secrets.iter().map(|(t, why)| format!("\n  - {t}: {why}")).collect()
}

/// How a [`PlanError`] should end the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The cluster or the API stopped the command (exit 3).
    Cluster,
    /// A check failed (exit 1): a timeout waiting for readiness, drift found by rollback.
    Failed,
    /// Input or usage (exit 2).
    Input,
}

impl PlanError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PlanError::Cluster(_) | PlanError::Conflict { .. } | PlanError::JournalConflict { .. } => ErrorClass::Cluster,
            PlanError::Timeout { .. }
            | PlanError::RolloutFailed { .. }
            | PlanError::Drifted { .. }
            | PlanError::Drifts { .. }
            | PlanError::SecretsNotRestorable { .. } => ErrorClass::Failed,
            PlanError::BadJournal { .. }
            | PlanError::NoJournal { .. }
            | PlanError::UnknownKind { .. }
            | PlanError::Invalid { .. }
            | PlanError::JournalTooLarge { .. } => ErrorClass::Input,
        }
    }
}
