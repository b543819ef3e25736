//! Retiring journal entries: what the tool wrote to some objects becomes final.
//!
//! Rollback needs an entry for as long as its object may be restored. Once a command makes its
//! writes final (the namespace-based migration after `ns complete`, whose rollback never
//! restores a Secret's content, or `ns cleanup`, after which nothing of the migration is left to
//! roll back), the entries only hold on to what they name: above all the backup Secret of each
//! Secret the tool wrote over ([`secret`](super::secret)), which would otherwise keep a copy of
//! old credentials in the namespace for good. [`retire`] drops the entries and deletes their
//! backups, the journal first (so that no entry ever names a backup that is gone), then the
//! backups; the journal itself is deleted when nothing is left in it.

use serde_json::Value;

use super::client;
use super::fingerprint::Fingerprints;
use super::journal::{Journal, JournalEntry, Prior, StepRecord, StepStatus, now};
use super::{Action, DryRun, Outcome, PlanError, Progress, Target, secret};
use crate::cluster::Connection;

/// Options of [`retire`].
#[derive(Debug, Clone, Default)]
pub struct RetireOptions {
    pub dry_run: DryRun,
    /// The step record written to the journal when it is kept (`ns-complete`).
    pub step: String,
    /// Who runs it (recorded with the step).
    pub actor: String,
    /// An extension of the journal (by key) to drop with the entries.
    pub extension: Option<String>,
}

/// The backup Secret the entry names, when the entry is a Secret's with a backup.
fn backup_of(entry: &JournalEntry) -> Option<(Target, String)> {
    match &entry.prior {
        Prior::Secret { fingerprint, backup, .. } if !backup.is_empty() => Some((secret::backup_target(&entry.target, backup), fingerprint.clone())),
        _ => None,
    }
}

/// Make what the tool wrote to the entries of `namespace`'s journal that `select` picks final:
/// the entries (and `options.extension`) leave the journal, which is saved with a record of the
/// step, or deleted when it holds nothing any more; then the backup Secrets of the Secrets
/// among them are deleted (only a backup that is still the tool's copy of the recorded
/// content: anything else of that name is not the tool's to delete). Dry runs change nothing
/// (a server dry run sends the deletes with `dryRun=All`) and report what would be deleted.
/// Returns one outcome per backup. No journal: nothing to do.
pub async fn retire(
    conn: &Connection,
    namespace: &str,
    select: &dyn Fn(&JournalEntry) -> bool,
    options: &RetireOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Outcome>, PlanError> {
    let Some(mut journal) = Journal::load(conn, namespace).await? else { return Ok(Vec::new()) };
    let (picked, kept): (Vec<JournalEntry>, Vec<JournalEntry>) = journal.entries.iter().cloned().partition(|e| select(e));
    let drops_extension = options.extension.as_ref().is_some_and(|k| journal.extensions.contains_key(k));
    if picked.is_empty() && !drops_extension {
        return Ok(Vec::new());
    }
    // The backups that are the tool's copies, read before anything changes.
    let mut backups: Vec<Target> = Vec::new();
    let mut prints: Option<Fingerprints> = None;
    for e in &picked {
        let Some((bt, fingerprint)) = backup_of(e) else { continue };
        let live: Option<Value> = client::get(conn, &bt).await?;
        if prints.is_none() {
            prints = Some(Fingerprints::read(conn, &journal).await?);
        }
        let prints = prints.as_ref().expect("read above");
        if live.is_some_and(|b| secret::is_backup_of(&b, &e.target.name, &fingerprint, prints)) {
            backups.push(bt);
        }
    }
    if options.dry_run == DryRun::None {
        journal.entries = kept;
        if let Some(k) = &options.extension {
            journal.extensions.remove(k);
        }
        if journal.entries.is_empty() && journal.extensions.is_empty() {
            journal.remove(conn).await?;
        } else {
            let at = now();
            journal.steps.push(StepRecord {
                step: options.step.clone(),
                who: options.actor.clone(),
                started_at: at.clone(),
                finished_at: Some(at),
                status: StepStatus::Completed,
                error: None,
            });
            journal.save(conn).await?;
            progress(Progress::Journaled { entries: journal.entries.len() });
        }
    }
    let mut out = Vec::new();
    for bt in backups {
        let existed = match options.dry_run {
            DryRun::Client => true,
            DryRun::Server => client::delete(conn, &bt, true).await?,
            DryRun::None => client::delete(conn, &bt, false).await?,
        };
        let o = Outcome {
            target: bt,
            action: if existed { Action::Deleted } else { Action::Skipped },
            dry_run: options.dry_run,
            detail: "(backup no longer needed)".to_string(),
        };
        progress(Progress::Done(o.clone()));
        out.push(o);
    }
    Ok(out)
}
