//! What every mutating command of the suite shares, whichever plugin runs it: `--dry-run` and
//! `--timeout`, a connection with its runtime, running a plan of `meshmove_kube::plan` with
//! progress, and printing outcomes and objects. One contract, rollbacks included:
//! `--dry-run=client` prints a unified diff per object; `-o yaml` prints the whole objects as the
//! command leaves them (the live object with the change applied, without status and the server's
//! metadata, Secret values masked), `-o json` the same objects as a kubectl `List`; outcomes read
//! as kubectl's (`networkpolicy.networking.k8s.io/x created`), on stderr unless the output is a
//! table.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use meshmove_kube::cluster::{Connection, parse_timeout};
use meshmove_kube::plan::{self, DryRun, ExecOptions, Outcome, Plan, Preview, Progress, RollbackOptions};

use crate::{KubeFlags, Out, OutputFormat};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRunArg {
    /// Write for real (the journal first)
    None,
    /// Send nothing: print a diff per object (-o yaml|json: the objects)
    Client,
    /// Send every write with dryRun=All: the server validates and persists nothing
    Server,
}

impl From<DryRunArg> for DryRun {
    fn from(d: DryRunArg) -> Self {
        match d {
            DryRunArg::None => DryRun::None,
            DryRunArg::Client => DryRun::Client,
            DryRunArg::Server => DryRun::Server,
        }
    }
}

/// Flags of every mutating command.
#[derive(Args, Clone)]
pub struct MutateFlags {
    /// none, client or server (a bare --dry-run means client)
    #[arg(long, value_enum, value_name = "MODE", default_value = "none", num_args = 0..=1, default_missing_value = "client", help_heading = "Changes")]
    pub dry_run: DryRunArg,
    /// Longest wait for a batch of workloads to roll out (ambient: for ztunnel to capture the pods), e.g. 5m, 90s
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout, help_heading = "Changes")]
    pub timeout: Duration,
}

/// A runtime and a connection for one command.
pub struct Live {
    pub rt: tokio::runtime::Runtime,
    pub conn: Connection,
}

impl Live {
    /// Connect for a command that changes one namespace at a time (`-A` refused).
    pub fn connect(kube: &KubeFlags) -> Result<Live> {
        if kube.all_namespaces {
            anyhow::bail!("-A/--all-namespaces: this command changes one namespace at a time; name it with -n");
        }
        Self::connect_any(kube)
    }

    /// Connect, `-A` allowed (the command decides the namespaces it writes to).
    pub fn connect_any(kube: &KubeFlags) -> Result<Live> {
        let rt = crate::runtime()?;
        let conn = rt.block_on(kube.options().connect())?;
        Ok(Live { rt, conn })
    }

    pub fn namespace(&self) -> &str {
        &self.conn.namespace
    }

    pub fn actor(&self) -> String {
        plan::actor(Some(&self.conn.context))
    }
}

/// Progress on stderr: each outcome as it happens (on stdout in table mode, as kubectl prints
/// `created`), rollout waits when their state changes, journal writes with `-v 1`.
pub fn progress(table: bool) -> impl FnMut(Progress) {
    let mut last_wait = String::new();
    move |p| match p {
        Progress::Done(o) => {
            if table {
                println!("{o}");
            } else {
                eprintln!("{o}");
            }
        }
        Progress::Waiting { ready, total, pending } => {
            // Completion shows as the wait's outcome.
            let Some((t, state)) = pending else { return };
            let line = format!("waiting for rollout: {ready}/{total} ready; {} {state}", t.kubectl_name());
            if line != last_wait {
                eprintln!("{line}");
                last_wait = line;
            }
        }
        Progress::WaitingFor { target, state } => {
            // Completion shows as the wait's outcome.
            if !state.met {
                eprintln!("waiting for {}: {state}", target.kubectl_name());
            }
        }
        Progress::Journaled { entries } => crate::debug!(1, "journal written ({entries} objects recorded)"),
    }
}

/// Objects as a YAML stream or a JSON `List`.
pub fn print_object_list(out: &mut Out, format: OutputFormat, objects: &[serde_json::Value]) -> Result<()> {
    if format == OutputFormat::Json {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
        out.write_str(&serde_json::to_string_pretty(&list)?)?;
        out.write_str("\n")?;
    } else {
        for o in objects {
            out.write_str("---\n")?;
            out.write_str(&meshmove_model::yaml::to_yaml_string(o))?;
        }
    }
    Ok(())
}

/// Run `plan`: `--dry-run=client` prints diffs (table) or objects (json/yaml); otherwise execute
/// with progress, printing the objects after when `-o json|yaml`.
pub fn run_plan(live: &Live, plan: &Plan, flags: &MutateFlags, format: OutputFormat) -> Result<Vec<Outcome>> {
    run_plans(live, std::slice::from_ref(plan), flags, format)
}

fn is_table(format: OutputFormat) -> bool {
    matches!(format, OutputFormat::Table | OutputFormat::Wide)
}

/// Where outcomes go: on stdout as kubectl prints them in table mode, unless stdout carries
/// diffs (client dry runs) or objects (`-o json|yaml`).
fn sink(table: bool, dry_run: DryRunArg) -> impl FnMut(Progress) {
    let mut show = progress(table && dry_run != DryRunArg::Client);
    move |p: Progress| match (&p, dry_run) {
        (Progress::Done(o), DryRunArg::Client) => eprintln!("{o}"),
        (_, DryRunArg::Client) => {}
        _ => show(p),
    }
}

/// Print what `previews` show: their diffs in table mode under `--dry-run=client`, the objects
/// they leave under `-o json|yaml`.
fn print_previews(out: &mut Out, previews: &[Preview], dry_run: DryRunArg, format: OutputFormat) -> Result<()> {
    if !is_table(format) {
        print_object_list(out, format, &plan::objects_after(previews))?;
    } else if dry_run == DryRunArg::Client {
        for p in previews {
            out.write_str(&p.diff)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Whether the command needs previews: for diffs or for the objects it prints.
fn wants_previews(dry_run: DryRunArg, format: OutputFormat) -> bool {
    dry_run == DryRunArg::Client || !is_table(format)
}

/// [`run_plan`] for several plans (one per namespace), in order: every diff is shown before
/// anything is sent, a failing plan stops the rest, and `-o json|yaml` prints one list of every
/// plan's objects, as they are after the change (read before it is sent).
pub fn run_plans(live: &Live, plans: &[Plan], flags: &MutateFlags, format: OutputFormat) -> Result<Vec<Outcome>> {
    let mut out = Out::new();
    let mut previews = Vec::new();
    if wants_previews(flags.dry_run, format) {
        for plan in plans {
            previews.extend(live.rt.block_on(plan::preview(&live.conn, plan))?);
        }
    }
    if flags.dry_run == DryRunArg::Client {
        print_previews(&mut out, &previews, flags.dry_run, format)?;
    }
    let options = ExecOptions { dry_run: flags.dry_run.into(), timeout: flags.timeout, actor: live.actor() };
    let mut sink = sink(is_table(format), flags.dry_run);
    let mut outcomes = Vec::new();
    for plan in plans {
        outcomes.extend(live.rt.block_on(plan::execute(&live.conn, plan, &options, &mut sink))?);
    }
    if flags.dry_run != DryRunArg::Client {
        print_previews(&mut out, &previews, flags.dry_run, format)?;
    }
    Ok(outcomes)
}

/// Roll back from the journal (the entries `options` selects: its step's, its objects', or all) with the same contract as a
/// plan: `--dry-run=client` prints a diff per object it would restore or delete, `-o json|yaml`
/// the objects as the rollback leaves them (deleted ones left out), outcomes as they happen.
/// Rollback's own checks (drift, unrestorable Secrets) run first and refuse before anything is
/// printed on stdout.
pub fn run_rollback(live: &Live, options: &RollbackOptions, dry_run: DryRunArg, format: OutputFormat) -> Result<Vec<Outcome>> {
    let ns = live.namespace().to_string();
    let previews = if wants_previews(dry_run, format) {
        live.rt.block_on(plan::rollback_preview_of(&live.conn, &ns, options))?
    } else {
        Vec::new()
    };
    let outcomes = live.rt.block_on(plan::rollback(&live.conn, &ns, options, &mut sink(is_table(format), dry_run)))?;
    print_previews(&mut Out::new(), &previews, dry_run, format)?;
    Ok(outcomes)
}
