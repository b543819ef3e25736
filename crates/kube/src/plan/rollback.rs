//! Rollback from the journal.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::client::{self, api_error, empty_tree, field_ops, portable, remove_pointer, set_pointer};
use super::fingerprint::{Check, Fingerprints};
use super::journal::{FieldRecord, Journal, Prior, StepRecord, StepStatus, now};
use super::wait::wait_ready;
use super::preview::{Preview, labelled, shown, yaml};
use super::{Action, DryRun, Outcome, PlanError, Progress, RollbackOptions, Target, restart_pointer, secret};
use super::secret::{LiveSecret, SecretLost};
use crate::cluster::Connection;
use meshmove_model::inventory::kinds;
use meshmove_model::workload::disruption_budgets;

/// The PodDisruptionBudgets guarding each workload of the namespace, by `(kind, name)`. Budgets
/// that cannot be listed guard nothing (batches are then by size only).
async fn guarding_budgets(conn: &Connection, namespace: &str) -> Result<BTreeMap<(String, String), Vec<String>>, PlanError> {
    let wanted = [&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::POD_DISRUPTION_BUDGET];
    let inventory = crate::cluster::load(conn, &wanted, &[], Some(namespace)).await?;
    Ok(wanted[..3]
        .iter()
        .flat_map(|k| inventory.of(k))
        .map(|w| ((w.kind.clone(), w.name.clone()), disruption_budgets(&inventory, w)))
        .filter(|(_, b)| !b.is_empty())
        .collect())
}

/// Undo what the journal of `namespace` recorded (or only what `options.step` recorded first):
/// see the module docs for the order. Returns one outcome per object restored.
pub async fn rollback(
    conn: &Connection,
    namespace: &str,
    options: &RollbackOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Outcome>, PlanError> {
    let Some(mut journal) = Journal::load(conn, namespace).await? else {
        return Err(PlanError::NoJournal { namespace: namespace.to_string() });
    };
    let selected: Vec<usize> = (0..journal.entries.len()).filter(|&i| options.selects(&journal.entries[i])).collect();
    let prints = Fingerprints::read(conn, &journal).await?;
    // Three-way: find everything someone else changed before the first write; refuse whole.
    if !options.force {
        let drifts = drifts_of(conn, &journal, options, &prints).await?;
        if !drifts.is_empty() {
            return Err(PlanError::Drifts {
                action: "rollback".to_string(),
                hint: "they are kept; restore them by hand, or rerun with --force to roll back over them".to_string(),
                drifts,
            });
        }
    }
    // Secrets are restored only from content of the recorded fingerprint: find those for
    // which there is none before the first write; refuse whole unless `force` (they are then
    // left as they are).
    let mut lost = Vec::new();
    for &i in &selected {
        let e = &journal.entries[i];
        if let Prior::Secret { fingerprint, backup, .. } = &e.prior
            && let Err(why) = secret_source(conn, &e.target, fingerprint, backup, &prints).await?
        {
            lost.push((e.target.clone(), why));
        }
    }
    if !lost.is_empty() && !options.force {
        return Err(PlanError::SecretsNotRestorable { secrets: lost });
    }
    let r = Restore { conn, options, prints: &prints };
    let mut outcomes = Vec::new();
    // Objects and plain fields first, newest first; pod templates last, once the namespace
    // labels are back, so the re-rolled pods come up as they were.
    for &i in selected.iter().rev() {
        if let Some(o) = r.entry(&journal.entries[i].target, &journal.entries[i].prior, false).await? {
            progress(Progress::Done(o.clone()));
            outcomes.push(o);
        }
    }
    // Workloads roll again in batches, each waited for before the next, never two in one batch
    // that a PodDisruptionBudget guards together (budgets as they are now, not at enable time).
    // Budgets are read only when some workload rolls again (a journal of NetworkPolicies alone,
    // as `dbiso apply` writes, reads no workloads).
    let live = options.dry_run == DryRun::None;
    let rp = restart_pointer();
    let rolls = selected.iter().any(|&i| matches!(&journal.entries[i].prior, Prior::Fields { fields } if fields.contains_key(&rp)));
    let guards = if live && rolls { guarding_budgets(conn, namespace).await? } else { BTreeMap::new() };
    let mut batch = Vec::new();
    let mut guarded: Vec<&String> = Vec::new();
    let size = if options.batch_size == 0 { usize::MAX } else { options.batch_size };
    for &i in selected.iter().rev() {
        let target = &journal.entries[i].target;
        let budgets = guards.get(&(target.kind.clone(), target.name.clone())).map(Vec::as_slice).unwrap_or_default();
        if live && budgets.iter().any(|b| guarded.contains(&b)) {
            wait_ready(conn, &batch, options.timeout, progress).await?;
            batch.clear();
            guarded.clear();
        }
        if let Some(o) = r.entry(target, &journal.entries[i].prior, true).await? {
            progress(Progress::Done(o.clone()));
            if o.action == Action::Restarted {
                batch.push(o.target.clone());
                guarded.extend(budgets);
            }
            outcomes.push(o);
            if batch.len() >= size && live {
                wait_ready(conn, &batch, options.timeout, progress).await?;
                batch.clear();
                guarded.clear();
            }
        }
    }
    if options.dry_run != DryRun::None {
        return Ok(outcomes);
    }
    if !batch.is_empty() {
        wait_ready(conn, &batch, options.timeout, progress).await?;
    }
    let remaining: Vec<_> = journal.entries.iter().enumerate().filter(|(i, _)| !selected.contains(i)).map(|(_, e)| e.clone()).collect();
    let whole = options.step.is_none() && options.only.is_none();
    let nothing_left = remaining.is_empty()
        && match &options.only {
            // Objects picked one by one: the journal goes once it holds nothing at all.
            Some(_) => journal.extensions.is_empty(),
            None => journal.steps.iter().all(|s| Some(&s.step) == options.step.as_ref()),
        };
    if whole || nothing_left {
        journal.remove(conn).await?;
    } else {
        let what = match (&options.step, &options.only) {
            (Some(step), _) => step.clone(),
            (None, Some(only)) => format!("of {} object(s)", only.len()),
            (None, None) => String::new(),
        };
        journal.entries = remaining;
        if let (Some(step), None) = (&options.step, &options.only) {
            for s in journal.steps.iter_mut().filter(|s| &s.step == step) {
                s.status = StepStatus::RolledBack;
            }
        }
        journal.steps.push(StepRecord {
            step: format!("rollback {what}"),
            who: options.actor.clone(),
            started_at: now(),
            finished_at: Some(now()),
            status: StepStatus::Completed,
            error: None,
        });
        journal.save(conn).await?;
    }
    Ok(outcomes)
}

/// What [`rollback`] of `namespace` (only `step`'s entries when given) would do, from reads
/// only: one [`Preview`] per journaled object, newest first as rollback restores them, with a
/// unified diff of the live object and the object restored (deleted, recreated from the
/// journal, or with the fields the tool wrote given their prior values) and the object as it
/// would be after. Secret values are never shown: masked on both sides as `kubectl diff` masks
/// them. It checks nothing: [`rollback`] finds drift and unrestorable Secrets first.
pub async fn rollback_preview(conn: &Connection, namespace: &str, step: Option<&str>) -> Result<Vec<Preview>, PlanError> {
    rollback_preview_of(conn, namespace, &RollbackOptions { step: step.map(str::to_string), ..RollbackOptions::default() }).await
}

/// [`rollback_preview`] of the entries `options` selects (its `step` and `only`).
pub async fn rollback_preview_of(conn: &Connection, namespace: &str, options: &RollbackOptions) -> Result<Vec<Preview>, PlanError> {
    let Some(journal) = Journal::load(conn, namespace).await? else {
        return Err(PlanError::NoJournal { namespace: namespace.to_string() });
    };
    let prints = Fingerprints::read(conn, &journal).await?;
    let mut out = Vec::new();
    for e in journal.entries.iter().rev().filter(|e| options.selects(e)) {
        let target = &e.target;
        let current = client::get(conn, target).await?;
        let old = current.as_ref().map(|c| {
            let mut v = portable(c);
            if let Prior::Secret { .. } = &e.prior {
                v = secret::without_values(&v);
            }
            v
        });
        let preview = |action: Action, verb: &'static str, after: Option<Value>| {
            let mut old = old.clone();
            let mut new = after.clone();
            // Masked on both sides: a changed key reads `*** (before)` / `*** (after)`.
            if let (Some(o), Some(n)) = (&mut old, &mut new) {
                let theirs = o.clone();
                secret::mask(o, Some(n), false);
                secret::mask(n, Some(&theirs), true);
            } else {
                old.iter_mut().chain(new.iter_mut()).for_each(|v| secret::mask(v, None, true));
            }
            let old_text = old.as_ref().map(yaml);
            let diff = match &new {
                Some(n) => labelled(target, old_text.as_deref(), if old.is_some() { "current" } else { "absent" }, &yaml(n), "restored"),
                None => old_text.map_or_else(String::new, |o| labelled(target, Some(&o), "current", "", "deleted")),
            };
            Preview { target: target.clone(), verb, action, diff, object: after.as_ref().map(shown) }
        };
        let p = match (&e.prior, &current) {
            (Prior::Absent, None) => preview(Action::Skipped, "delete", None),
            (Prior::Absent, Some(_)) => preview(Action::Deleted, "delete", None),
            (Prior::Object { object }, None) => preview(Action::Created, "restore", Some(object.clone())),
            (Prior::Object { object }, Some(c)) => {
                let action = if portable(c) == *object { Action::Unchanged } else { Action::Configured };
                preview(action, "restore", Some(object.clone()))
            }
            (Prior::Secret { object, fingerprint, backup }, _) => match secret_source(conn, target, fingerprint, backup, &prints).await? {
                Ok(source) => {
                    let want = secret::restored(object, &source);
                    let action = match &current {
                        None => Action::Created,
                        Some(c) if secret::without_values(&portable(c)) == *object && prints.check(c, fingerprint).same() => Action::Unchanged,
                        Some(_) => Action::Configured,
                    };
                    // The live side with its values, so that changed keys are told apart.
                    let mut p = preview(action, "restore", Some(want.clone()));
                    if let Some(c) = &current {
                        let (mut o, mut n) = (portable(c), want);
                        let theirs = o.clone();
                        secret::mask(&mut o, Some(&n), false);
                        secret::mask(&mut n, Some(&theirs), true);
                        p.diff = labelled(target, Some(&yaml(&o)), "current", &yaml(&n), "restored");
                    }
                    p
                }
                // Rollback refuses these unless forced, and then leaves them as they are.
                Err(_) => preview(Action::Skipped, "restore", current.clone()),
            },
            (Prior::Fields { .. }, None) => preview(Action::Skipped, "restore", None),
            (Prior::Fields { fields }, Some(c)) => {
                let all: BTreeMap<&String, &FieldRecord> = fields.iter().collect();
                let (ops, after) = restore_fields(target, c, &all, true)?;
                let restarts = fields.contains_key(&restart_pointer());
                let action = match (ops.is_empty(), restarts) {
                    (true, _) => Action::Unchanged,
                    (false, true) => Action::Restarted,
                    (false, false) => Action::Configured,
                };
                preview(action, "restore", Some(portable(&after)))
            }
        };
        out.push(p);
    }
    Ok(out)
}

/// What someone else changed on the objects `options` selects, since the tool wrote them: what
/// [`rollback`] refuses on unless `force` (reads only). A caller that adds checks of its own
/// reports them with these, before anything is written.
pub async fn rollback_drifts(conn: &Connection, namespace: &str, options: &RollbackOptions) -> Result<Vec<super::Drift>, PlanError> {
    let Some(journal) = Journal::load(conn, namespace).await? else {
        return Err(PlanError::NoJournal { namespace: namespace.to_string() });
    };
    let prints = Fingerprints::read(conn, &journal).await?;
    drifts_of(conn, &journal, options, &prints).await
}

async fn drifts_of(conn: &Connection, journal: &Journal, options: &RollbackOptions, prints: &Fingerprints) -> Result<Vec<super::Drift>, PlanError> {
    let entries: Vec<&super::journal::JournalEntry> = journal.entries.iter().filter(|e| options.selects(e)).collect();
    super::drift::drifts(conn, &entries, true, prints).await
}

impl RollbackOptions {
    /// Whether the entry is one these options roll back.
    pub(crate) fn selects(&self, e: &super::journal::JournalEntry) -> bool {
        self.step.as_ref().is_none_or(|s| &e.step == s) && self.only.as_ref().is_none_or(|o| o.contains(&e.target))
    }
}

/// Where the prior content of Secret `target` is: the live Secret when its content has the
/// recorded fingerprint, else the backup when the backup's has; otherwise why neither is (also
/// when the fingerprint cannot be checked: without the journal's key nothing is proven).
async fn secret_source(
    conn: &Connection,
    target: &Target,
    fingerprint: &str,
    backup: &str,
    prints: &Fingerprints,
) -> Result<Result<Value, SecretLost>, PlanError> {
    let live = client::get(conn, target).await?;
    if let Some(l) = &live {
        match prints.check(l, fingerprint) {
            Check::Same => return Ok(Ok(l.clone())),
            Check::Unverifiable(reason) => return Ok(Err(SecretLost::Unverifiable { reason })),
            Check::Different => {}
        }
    }
    let live = if live.is_some() { LiveSecret::Changed } else { LiveSecret::Gone };
    if backup.is_empty() {
        return Ok(Err(SecretLost::NoBackup { live }));
    }
    let backup = backup.to_string();
    match client::get(conn, &secret::backup_target(target, &backup)).await? {
        Some(b) if secret::is_backup_of(&b, &target.name, fingerprint, prints) => Ok(Ok(b)),
        Some(_) => Ok(Err(SecretLost::BackupDiffers { live, backup, fingerprint: fingerprint.to_string() })),
        None => Ok(Err(SecretLost::BackupGone { live, backup })),
    }
}

/// The JSON-patch operations that give `fields` of `current` their prior values back (removed
/// when they were absent, with the parent the tool created when only they are in it), and the
/// object as they leave it. A field someone changed after the tool wrote it is
/// [`PlanError::Drifted`] unless `force`.
fn restore_fields(target: &Target, current: &Value, fields: &BTreeMap<&String, &FieldRecord>, force: bool) -> Result<(Vec<Value>, Value), PlanError> {
    let mut ops = Vec::new();
    // Operations apply in sequence: build each against the document as the previous
    // ones leave it.
    let mut working = current.clone();
    for (pointer, rec) in fields {
        let now = current.pointer(pointer);
        if now == rec.prior.as_ref() {
            continue;
        }
        if now != rec.written.as_ref() && !force {
            let show = |v: Option<&Value>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
            return Err(PlanError::Drifted {
                target: target.clone(),
                pointer: (*pointer).clone(),
                current: show(now),
                written: show(rec.written.as_ref()),
                prior: show(rec.prior.as_ref()),
            });
        }
        let mut at = (*pointer).clone();
        if rec.prior.is_none()
            && let Some(outer) = rec.absent_from.as_ref().filter(|o| *o != *pointer)
            && let Some(sub) = working.pointer(outer)
        {
            // Remove the parent the tool created too, when only this field is in it.
            let mut probe = json!({"x": sub.clone()});
            remove_pointer(&mut probe, &format!("/x{}", &pointer[outer.len()..]));
            if empty_tree(&probe["x"]) {
                at = outer.clone();
            }
        }
        match &rec.prior {
            None => {
                ops.extend(field_ops(&working, &at, None).unwrap_or_default());
                remove_pointer(&mut working, &at);
            }
            Some(v) => {
                ops.extend(field_ops(&working, pointer, Some(v)).unwrap_or_default());
                set_pointer(&mut working, pointer, v.clone());
            }
        }
    }
    Ok((ops, working))
}

struct Restore<'a> {
    conn: &'a Connection,
    options: &'a RollbackOptions,
    prints: &'a Fingerprints,
}

impl Restore<'_> {
    fn outcome(&self, target: &Target, action: Action, detail: &str) -> Outcome {
        Outcome { target: target.clone(), action, dry_run: self.options.dry_run, detail: detail.to_string() }
    }

    fn writes(&self) -> bool {
        self.options.dry_run != DryRun::Client
    }

    fn server_dry(&self) -> bool {
        self.options.dry_run == DryRun::Server
    }

    /// Restore one entry: in the first pass everything but restart annotations, in the second
    /// only those. `None` when the pass has nothing to do for it.
    async fn entry(&self, target: &Target, prior: &Prior, restarts: bool) -> Result<Option<Outcome>, PlanError> {
        match prior {
            Prior::Absent if !restarts => {
                if !self.writes() {
                    let exists = client::get(self.conn, target).await?.is_some();
                    return Ok(Some(self.outcome(target, if exists { Action::Deleted } else { Action::Skipped }, "")));
                }
                let existed = client::delete(self.conn, target, self.server_dry()).await?;
                Ok(Some(self.outcome(target, if existed { Action::Deleted } else { Action::Skipped }, if existed { "" } else { "(already absent)" })))
            }
            Prior::Object { object } if !restarts => self.object(target, object).await.map(Some),
            Prior::Secret { object, fingerprint, backup } if !restarts => self.secret(target, object, fingerprint, backup).await.map(Some),
            Prior::Fields { fields } => {
                let rp = restart_pointer();
                let mine: BTreeMap<&String, &FieldRecord> = fields.iter().filter(|(p, _)| (**p == rp) == restarts).collect();
                if mine.is_empty() {
                    return Ok(None);
                }
                self.fields(target, &mine, restarts).await
            }
            _ => Ok(None),
        }
    }

    async fn object(&self, target: &Target, object: &Value) -> Result<Outcome, PlanError> {
        let current = client::get(self.conn, target).await?;
        match current {
            None => {
                if self.writes() {
                    client::create(self.conn, self.options.manager.field_manager(), object, self.server_dry()).await?;
                }
                Ok(self.outcome(target, Action::Created, "(restored)"))
            }
            Some(c) if portable(&c) == *object => Ok(self.outcome(target, Action::Unchanged, "")),
            Some(c) => {
                if self.writes() {
                    let mut put = object.clone();
                    put["metadata"]["resourceVersion"] = c.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
                    client::replace(self.conn, self.options.manager.field_manager(), &put, self.server_dry()).await.map_err(|e| api_error(self.conn, "update", target, e))?;
                }
                Ok(self.outcome(target, Action::Configured, "(restored)"))
            }
        }
    }

    /// Restore a Secret recorded by reference from content of the recorded fingerprint (the live
    /// Secret's or the backup's), then delete the backup.
    async fn secret(&self, target: &Target, object: &Value, fingerprint: &str, backup: &str) -> Result<Outcome, PlanError> {
        let Ok(source) = secret_source(self.conn, target, fingerprint, backup, self.prints).await? else {
            // Only with --force: the check before the first write refuses otherwise.
            return Ok(self.outcome(target, Action::Skipped, "(its prior content is not recoverable: left as it is)"));
        };
        let want = secret::restored(object, &source);
        let outcome = match client::get(self.conn, target).await? {
            None => {
                if self.writes() {
                    client::create(self.conn, self.options.manager.field_manager(), &want, self.server_dry()).await?;
                }
                self.outcome(target, Action::Created, "(restored)")
            }
            Some(c) if secret::without_values(&portable(&c)) == *object && self.prints.check(&c, fingerprint).same() => {
                self.outcome(target, Action::Unchanged, "")
            }
            Some(c) => {
                if self.writes() {
                    let mut put = want;
                    put["metadata"]["resourceVersion"] = c.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
                    client::replace(self.conn, self.options.manager.field_manager(), &put, self.server_dry()).await.map_err(|e| api_error(self.conn, "update", target, e))?;
                }
                self.outcome(target, Action::Configured, "(restored)")
            }
        };
        if self.writes() && !backup.is_empty() {
            client::delete(self.conn, &secret::backup_target(target, backup), self.server_dry()).await?;
        }
        Ok(outcome)
    }

    async fn fields(&self, target: &Target, fields: &BTreeMap<&String, &FieldRecord>, restarts: bool) -> Result<Option<Outcome>, PlanError> {
        let done = if restarts { Action::Restarted } else { Action::Configured };
        for attempt in 1..=3 {
            let Some(current) = client::get(self.conn, target).await? else {
                return Ok(Some(self.outcome(target, Action::Skipped, "(object is gone)")));
            };
            let (ops, _) = restore_fields(target, &current, fields, self.options.force)?;
            if ops.is_empty() {
                return Ok(Some(self.outcome(target, Action::Unchanged, "")));
            }
            if !self.writes() {
                return Ok(Some(self.outcome(target, done, "")));
            }
            match client::json_patch(self.conn, self.options.manager.field_manager(), target, &ops, self.server_dry()).await {
                Ok(_) => return Ok(Some(self.outcome(target, done, ""))),
                Err(kube::Error::Api(s)) if (s.code == 422 || s.code == 409) && attempt < 3 => continue,
                Err(e) => return Err(api_error(self.conn, "patch", target, e)),
            }
        }
        unreachable!("the last attempt returns")
    }
}
