//! What every mutating command of the suite shares, whichever plugin runs it: `--dry-run` and
//! `--timeout`, a connection with its runtime, running a plan of `meshmove_kube::plan` with
//! progress, and printing outcomes and objects. One contract: `--dry-run=client` prints a diff
//! per object, `-o json|yaml` the objects sent (a `List` in JSON), and outcomes read as kubectl's
//! (`networkpolicy.networking.k8s.io/x created`).

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use meshmove_kube::cluster::{Connection, parse_timeout};
use meshmove_kube::plan::{self, DryRun, ExecOptions, Outcome, Plan, Progress};

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

/// The plan's objects as a YAML stream or a JSON `List`.
pub fn print_objects(out: &mut Out, format: OutputFormat, plan: &Plan) -> Result<()> {
    print_object_list(out, format, &plan.objects())
}

/// Run `plan`: `--dry-run=client` prints diffs (table) or objects (json/yaml); otherwise execute
/// with progress, printing the objects after when `-o json|yaml`.
pub fn run_plan(live: &Live, plan: &Plan, flags: &MutateFlags, format: OutputFormat) -> Result<Vec<Outcome>> {
    run_plans(live, std::slice::from_ref(plan), flags, format)
}

/// [`run_plan`] for several plans (one per namespace), in order: every diff is shown before
/// anything is sent, a failing plan stops the rest, and `-o json|yaml` prints one list of every
/// plan's objects.
pub fn run_plans(live: &Live, plans: &[Plan], flags: &MutateFlags, format: OutputFormat) -> Result<Vec<Outcome>> {
    let table = matches!(format, OutputFormat::Table | OutputFormat::Wide);
    let mut out = Out::new();
    if flags.dry_run == DryRunArg::Client && table {
        for plan in plans {
            for p in live.rt.block_on(plan::preview(&live.conn, plan))? {
                out.write_str(&p.diff)?;
            }
        }
        out.flush()?;
    }
    let options = ExecOptions { dry_run: flags.dry_run.into(), timeout: flags.timeout, actor: live.actor() };
    let mut show = progress(table && flags.dry_run != DryRunArg::Client);
    let mut show_client = |p: Progress| {
        // Client dry runs print diffs on stdout; outcomes go to stderr.
        if let Progress::Done(o) = &p {
            eprintln!("{o}");
        }
    };
    let sink: &mut dyn FnMut(Progress) = if flags.dry_run == DryRunArg::Client { &mut show_client } else { &mut show };
    let mut outcomes = Vec::new();
    for plan in plans {
        outcomes.extend(live.rt.block_on(plan::execute(&live.conn, plan, &options, sink))?);
    }
    if !table {
        let objects: Vec<_> = plans.iter().flat_map(Plan::objects).collect();
        print_object_list(&mut out, format, &objects)?;
    }
    out.flush()?;
    Ok(outcomes)
}
