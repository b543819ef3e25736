//! Executing a plan: journal first, then the writes, in order.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::client::{self, api_error, contains, field_ops, project};
use super::fingerprint::Fingerprints;
use super::journal::{JOURNAL_RESERVE, Journal, Prior, StepRecord, StepStatus, bounded_error, now};
use super::secret;
use super::wait::{wait_condition, wait_ready};
use super::{Action, Change, DryRun, ExecOptions, Outcome, Plan, PlanError, Progress, Target, restart_pointer};
use crate::cluster::Connection;

/// Attempts for a JSON patch whose `test` failed because the object changed in between.
const PATCH_ATTEMPTS: usize = 3;

/// Execute `plan`; see the module docs. Stops at the first error; the journal then says the step
/// failed, and re-running the step resumes it.
pub async fn execute(
    conn: &Connection,
    plan: &Plan,
    options: &ExecOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Outcome>, PlanError> {
    check_secret_fields(plan)?;
    let journal = Journal::load(conn, &plan.namespace).await?;
    let journal = journal.unwrap_or_else(|| Journal::new(&plan.namespace));
    let mut run = Run { conn, plan, options, journal, begun: false, stamp: now(), prints: None, keyed: false };
    if options.dry_run == DryRun::None
        && let Err(e) = run.record_all(progress).await
    {
        if run.begun {
            let _ = run.finish(StepStatus::Failed, Some(e.to_string())).await;
        }
        return Err(e);
    }
    let mut outcomes = Vec::new();
    for change in &plan.changes {
        match run.change(change, progress).await {
            Ok(o) => {
                progress(super::Progress::Done(o.clone()));
                outcomes.push(o);
            }
            Err(e) => {
                if run.begun {
                    // Best effort: the error that stopped the step matters more than this one.
                    let _ = run.finish(StepStatus::Failed, Some(e.to_string())).await;
                }
                return Err(e);
            }
        }
    }
    if options.dry_run == DryRun::None {
        let stored = run.journal.resource_version.is_some();
        let completed = run.journal.last_run(&plan.step).is_some_and(|s| s.status == StepStatus::Completed);
        if run.begun || (stored && !completed) {
            run.finish(StepStatus::Completed, None).await?;
        }
    }
    Ok(outcomes)
}

/// Field records keep prior values in the journal: a plan never sets single values of a Secret
/// (refused before anything is read or written).
pub(crate) fn check_secret_fields(plan: &Plan) -> Result<(), PlanError> {
    let values = |p: &str| p == "/data" || p == "/stringData" || p.starts_with("/data/") || p.starts_with("/stringData/");
    for change in &plan.changes {
        if let Change::Set { target, fields } = change
            && secret::is_secret(target)
            && fields.keys().any(|p| values(p))
        {
            return Err(PlanError::Invalid {
                target: target.clone(),
                message: "the tool does not set single values of a Secret (its journal would have to keep the prior ones)".to_string(),
            });
        }
    }
    Ok(())
}

struct Run<'a> {
    conn: &'a Connection,
    plan: &'a Plan,
    options: &'a ExecOptions,
    journal: Journal,
    /// Whether this run recorded its step as started.
    begun: bool,
    /// The time restarts of this run set (one value, so the journal records it up front).
    stamp: String,
    /// The journal's fingerprint key, once read (`keyed`: read or created for recording).
    prints: Option<Fingerprints>,
    keyed: bool,
}

impl Run<'_> {
    fn dry(&self) -> bool {
        self.options.dry_run == DryRun::Server
    }

    fn outcome(&self, target: Target, action: Action, detail: &str) -> Outcome {
        Outcome { target, action, dry_run: self.options.dry_run, detail: detail.to_string() }
    }

    /// The fingerprints to record a change of `target` with (`current`: the object as it is;
    /// `applies`: the change applies it). A Secret's content is fingerprinted when the journal
    /// records it as the prior state (it exists) or as applied (in the journal's namespace):
    /// then the journal's key is read, or created on first use. Anything else needs no key.
    async fn prints_for(&mut self, target: &Target, current: Option<&Value>, applies: bool) -> Result<Fingerprints, PlanError> {
        let own = target.namespace.as_deref() == Some(self.journal.namespace.as_str());
        if !secret::is_secret(target) || !(current.is_some() || (applies && own)) {
            return Ok(Fingerprints::unkeyed(&self.journal.namespace));
        }
        if !self.keyed {
            self.prints = Some(Fingerprints::ensure(self.conn, &mut self.journal).await?);
            self.keyed = true;
        }
        Ok(self.prints.clone().expect("set above"))
    }

    /// The fingerprints to check the journal's records with: its key when it names one.
    async fn checker(&mut self) -> Result<Fingerprints, PlanError> {
        if self.prints.is_none() {
            self.prints = Some(Fingerprints::read(self.conn, &self.journal).await?);
        }
        Ok(self.prints.clone().expect("set above"))
    }

    /// Add this step's record (status `started`) to the journal, once.
    fn begin_record(&mut self) {
        if !self.begun {
            self.journal.steps.push(StepRecord {
                step: self.plan.step.clone(),
                who: self.options.actor.clone(),
                started_at: now(),
                finished_at: None,
                status: StepStatus::Started,
                error: None,
            });
            self.begun = true;
        }
    }

    /// Store the journal (recording the step as started on first use).
    async fn persist(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<(), PlanError> {
        self.begin_record();
        self.journal.save(self.conn).await?;
        progress(Progress::Journaled { entries: self.journal.entries.len() });
        Ok(())
    }

    async fn finish(&mut self, status: StepStatus, error: Option<String>) -> Result<(), PlanError> {
        self.begin_record();
        let rec = self.journal.steps.last_mut().expect("a step record exists");
        rec.status = status;
        rec.finished_at = Some(now());
        rec.error = error.map(bounded_error);
        self.journal.save(self.conn).await
    }

    /// Record the prior state of everything the plan will touch, in one journal write before
    /// the first change (each change records again, which is a no-op unless the object changed
    /// under a resumed step).
    async fn record_all(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<(), PlanError> {
        let mut changed = false;
        let stamp = self.stamp.clone();
        for change in &self.plan.changes {
            let Some(target) = change.target() else { continue };
            let current = client::get(self.conn, &target).await?;
            let step = self.plan.step.clone();
            let prints = match change {
                Change::Apply { .. } | Change::Delete { .. } => self.prints_for(&target, current.as_ref(), matches!(change, Change::Apply { .. })).await?,
                _ => Fingerprints::unkeyed(&self.journal.namespace),
            };
            changed |= match (change, &current) {
                (Change::Apply { object }, _) => {
                    let recorded = self.journal.record_object(&step, &target, current.as_ref(), &prints)?;
                    self.journal.record_applied(object, &prints)? | recorded
                }
                (Change::Delete { .. }, Some(c)) => self.journal.record_object(&step, &target, Some(c), &prints)?,
                (Change::Set { fields, .. }, Some(c)) => {
                    let ops = fields.iter().any(|(p, v)| field_ops(c, p, v.as_ref()).is_some());
                    ops && self.journal.record_fields(&step, &target, c, fields)
                }
                (Change::Scale { replicas, .. }, Some(c)) => {
                    let fields = BTreeMap::from([("/spec/replicas".to_string(), Some(json!(replicas)))]);
                    field_ops(c, "/spec/replicas", Some(&json!(replicas))).is_some() && self.journal.record_fields(&step, &target, c, &fields)
                }
                (Change::Restart { .. }, Some(c)) => match self.restart_value(&target, c) {
                    Some(v) if v == stamp => {
                        self.journal.record_fields(&step, &target, c, &BTreeMap::from([(restart_pointer(), Some(json!(stamp)))]))
                    }
                    _ => false,
                },
                _ => false,
            };
        }
        if changed {
            // Room for this step's records after the objects: refused here, before any write.
            self.journal.check_size(JOURNAL_RESERVE)?;
            self.persist(progress).await?;
        }
        Ok(())
    }

    /// Before the tool writes over or deletes the Secret `target` (live content `current`):
    /// make sure its prior content, which the journal records by fingerprint only, is in the backup
    /// Secret the journal names. A backup already there must be the tool's backup of this
    /// Secret with the recorded content; when the live Secret no longer has the recorded
    /// content (a resumed step wrote it already) there is nothing left to copy, and rollback
    /// says so for this Secret.
    async fn ensure_backup(&mut self, target: &Target, current: &Value) -> Result<(), PlanError> {
        let Some(Prior::Secret { fingerprint, backup, .. }) = self.journal.entry(target).map(|e| e.prior.clone()) else { return Ok(()) };
        let prints = self.checker().await?;
        if backup.is_empty() {
            return Err(PlanError::Invalid {
                target: target.clone(),
                message: format!(
                    "its name is too long for a backup Secret (`<name>{}` must be a valid name of at most 253 characters), \
                     and its content is never kept in the journal; nothing of this step was written to it",
                    secret::BACKUP_SUFFIX
                ),
            });
        }
        let bt = secret::backup_target(target, &backup);
        match client::get(self.conn, &bt).await? {
            Some(b) if secret::is_backup_of(&b, &target.name, &fingerprint, &prints) => Ok(()),
            Some(_) => Err(PlanError::Invalid {
                target: target.clone(),
                message: format!(
                    "Secret {backup} is in the way of this Secret's backup: it is not this tool's copy of the content the journal \
                     recorded for {}; move it away, then rerun",
                    target.name
                ),
            }),
            None if prints.check(current, &fingerprint).same() => {
                client::create(self.conn, self.plan.manager.field_manager(), &secret::backup_object(target, &backup, current, &fingerprint), false)
                    .await
                    .map(|_| ())
            }
            None => Ok(()),
        }
    }

    /// The restart annotation value a restart of `target` sets now: the one the journal recorded
    /// for it (a resumed step), this run's time when nothing is recorded, or `None` when the
    /// recorded restart is in place already.
    fn restart_value(&self, target: &Target, current: &Value) -> Option<String> {
        let pointer = restart_pointer();
        let recorded = self.journal.entry(target).and_then(|e| match &e.prior {
            Prior::Fields { fields } => fields.get(&pointer).and_then(|r| r.written.clone()),
            _ => None,
        });
        match recorded {
            Some(w) if current.pointer(&pointer) == Some(&w) => None,
            Some(Value::String(w)) => Some(w),
            _ => Some(self.stamp.clone()),
        }
    }

    async fn change(&mut self, change: &Change, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, PlanError> {
        match change {
            Change::Apply { object } => self.apply(object, progress).await,
            Change::Set { target, fields } => self.set(target, fields, Action::Configured, progress).await,
            Change::Scale { target, replicas } => {
                let fields = BTreeMap::from([("/spec/replicas".to_string(), Some(json!(replicas)))]);
                self.set(target, &fields, Action::Scaled, progress).await
            }
            Change::Restart { target } => self.restart(target, progress).await,
            Change::Delete { target } => self.delete(target, progress).await,
            Change::WaitReady { targets } => {
                let first = targets.first().cloned().unwrap_or_else(|| Target::namespace(&self.plan.namespace));
                let detail = match targets.len() {
                    0 | 1 => String::new(),
                    n => format!("(batch of {n}: {})", targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
                };
                if self.options.dry_run != DryRun::None || targets.is_empty() {
                    return Ok(self.outcome(first, Action::Skipped, &detail));
                }
                wait_ready(self.conn, targets, self.options.timeout, progress).await?;
                Ok(self.outcome(first, Action::Ready, &detail))
            }
            Change::WaitCondition { target, condition } => {
                let detail = format!("(condition {condition})");
                if self.options.dry_run != DryRun::None {
                    return Ok(self.outcome(target.clone(), Action::Skipped, &detail));
                }
                wait_condition(self.conn, target, condition, self.options.timeout, progress).await?;
                Ok(self.outcome(target.clone(), Action::Ready, &detail))
            }
        }
    }

    async fn apply(&mut self, object: &Value, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, PlanError> {
        let target = Target::of(object);
        let current = client::get(self.conn, &target).await?;
        if self.options.dry_run == DryRun::Client {
            let action = match &current {
                None => Action::Created,
                Some(c) if contains(c, object) => Action::Unchanged,
                Some(_) => Action::Configured,
            };
            return Ok(self.outcome(target, action, ""));
        }
        if self.options.dry_run == DryRun::None {
            let prints = self.prints_for(&target, current.as_ref(), true).await?;
            let recorded = self.journal.record_object(&self.plan.step, &target, current.as_ref(), &prints)?;
            if self.journal.record_applied(object, &prints)? | recorded {
                self.persist(progress).await?;
            }
        }
        if self.options.dry_run == DryRun::None
            && let Some(c) = &current
        {
            self.ensure_backup(&target, c).await?;
        }
        let after = client::apply(self.conn, self.plan.manager.field_manager(), object, self.dry()).await?;
        let action = match &current {
            None => Action::Created,
            Some(c) if project(c, object) == project(&after, object) => Action::Unchanged,
            Some(_) => Action::Configured,
        };
        Ok(self.outcome(target, action, ""))
    }

    async fn set(
        &mut self,
        target: &Target,
        fields: &BTreeMap<String, Option<Value>>,
        done: Action,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Outcome, PlanError> {
        let mut current = self.require(target).await?;
        let mut recorded = false;
        for attempt in 1..=PATCH_ATTEMPTS {
            let ops: Vec<Value> = fields.iter().filter_map(|(p, v)| field_ops(&current, p, v.as_ref())).flatten().collect();
            if ops.is_empty() {
                return Ok(self.outcome(target.clone(), Action::Unchanged, ""));
            }
            if self.options.dry_run == DryRun::Client {
                return Ok(self.outcome(target.clone(), done, ""));
            }
            if self.options.dry_run == DryRun::None && !recorded {
                if self.journal.record_fields(&self.plan.step, target, &current, fields) {
                    self.persist(progress).await?;
                }
                recorded = true;
            }
            match client::json_patch(self.conn, self.plan.manager.field_manager(), target, &ops, self.dry()).await {
                Ok(_) => return Ok(self.outcome(target.clone(), done, "")),
                // A `test` failed: the object changed since it was read. Read it again.
                Err(kube::Error::Api(s)) if (s.code == 422 || s.code == 409) && attempt < PATCH_ATTEMPTS => {
                    current = self.require(target).await?;
                }
                Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => {
                    return Err(PlanError::Conflict {
                        target: target.clone(),
                        message: format!("the object kept changing while it was patched ({}); rerun the step", s.message),
                        source: kube::Error::Api(s),
                    });
                }
                Err(e) => return Err(api_error(self.conn, "patch", target, e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn restart(&mut self, target: &Target, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, PlanError> {
        let current = self.require(target).await?;
        // A restart this journal recorded and that is still in place is not done twice.
        let value = if self.options.dry_run == DryRun::None { self.restart_value(target, &current) } else { Some(self.stamp.clone()) };
        let Some(value) = value else {
            return Ok(self.outcome(target.clone(), Action::Unchanged, "(restarted earlier by this step)"));
        };
        let fields = BTreeMap::from([(restart_pointer(), Some(json!(value)))]);
        self.set(target, &fields, Action::Restarted, progress).await
    }

    async fn delete(&mut self, target: &Target, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, PlanError> {
        let Some(current) = client::get(self.conn, target).await? else {
            return Ok(self.outcome(target.clone(), Action::Skipped, "(already absent)"));
        };
        if self.options.dry_run == DryRun::Client {
            return Ok(self.outcome(target.clone(), Action::Deleted, ""));
        }
        if self.options.dry_run == DryRun::None {
            let prints = self.prints_for(target, Some(&current), false).await?;
            if self.journal.record_object(&self.plan.step, target, Some(&current), &prints)? {
                self.persist(progress).await?;
            }
        }
        if self.options.dry_run == DryRun::None {
            self.ensure_backup(target, &current).await?;
        }
        let existed = client::delete(self.conn, target, self.dry()).await?;
        Ok(self.outcome(target.clone(), if existed { Action::Deleted } else { Action::Skipped }, ""))
    }

    async fn require(&self, target: &Target) -> Result<Value, PlanError> {
        client::get(self.conn, target)
            .await?
            .ok_or_else(|| PlanError::Invalid { target: target.clone(), message: "not found: the plan expects it to exist".to_string() })
    }
}
