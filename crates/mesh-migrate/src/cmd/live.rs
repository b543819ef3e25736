//! What the live in-place commands share: `--dry-run`, `--timeout`, connecting, loading the
//! inventory once, running a plan with progress on stderr, and printing outcomes and objects.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use meshmove_cli::{KubeFlags, Out, OutputFormat};
use meshmove_kube::cluster::{Connection, parse_timeout};
use meshmove_model::inventory::{Inventory, Kind};
use meshmove_migration::inplace::peer_auth::Policies;
use meshmove_kube::plan::{self, DryRun, ExecOptions, Outcome, Plan, Progress};

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
    pub fn connect(kube: &KubeFlags) -> Result<Live> {
        if kube.all_namespaces {
            anyhow::bail!("-A/--all-namespaces: this command changes one namespace at a time; name it with -n");
        }
        let rt = meshmove_cli::runtime()?;
        let conn = rt.block_on(kube.options().connect())?;
        Ok(Live { rt, conn })
    }

    pub fn namespace(&self) -> &str {
        &self.conn.namespace
    }

    /// Load `kinds` in the namespace (`wide`: in every namespace).
    pub fn inventory(&self, kinds: &[&'static Kind], wide: &[&'static Kind]) -> Result<Inventory> {
        let mut all = kinds.to_vec();
        all.extend_from_slice(wide);
        Ok(self.rt.block_on(meshmove_kube::cluster::load_readable(&self.conn, &all, wide, Some(&self.conn.namespace)))?)
    }

    /// Refuse `command` on a namespace that a namespace-based migration owns (its legacy or its
    /// mesh side): the message names the migration and what to do (exit 2).
    pub fn refuse_under_migration(&self, command: &str) -> Result<()> {
        let ns = self.namespace().to_string();
        match self.rt.block_on(meshmove_migration::namespace::ownership::owner_of(&self.conn, &ns)) {
            Ok(None) => Ok(()),
            Ok(Some(owner)) => Err(anyhow::anyhow!(owner.refusal(command))),
            Err(meshmove_migration::namespace::run::NsError::Plan(p)) => Err(p.into()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn actor(&self) -> String {
        plan::actor(Some(&self.conn.context))
    }

    /// The mesh's PeerAuthentications, listed in every namespace (the mesh-wide ones live in the
    /// root namespace), or why they cannot be known. A list the cluster refuses is an answer here,
    /// not an error: `enable` then writes no PeerAuthentication and `status` shows the modes as
    /// unknown, saying why.
    pub fn peer_authentications(&self) -> Result<Policies> {
        let kind = [&meshmove_model::inventory::kinds::PEER_AUTHENTICATION];
        let inventory = self.rt.block_on(meshmove_kube::cluster::load(&self.conn, &kind, &kind, Some(&self.conn.namespace)))?;
        Ok(meshmove_migration::inplace::peer_auth::policies(&inventory))
    }
}

/// Whether `target` is a StatefulSet or DaemonSet with `updateStrategy.type: OnDelete` in
/// `inventory`: its controller replaces a pod only when someone deletes it, so a restart changes
/// its template and nothing else (see `meshmove_kube::plan::Rollout::Manual`).
pub fn on_delete(inventory: &Inventory, target: &meshmove_kube::plan::Target) -> bool {
    matches!(target.kind.as_str(), "StatefulSet" | "DaemonSet")
        && inventory
            .objects()
            .iter()
            .find(|o| o.kind == target.kind && o.name == target.name && o.namespace == target.namespace)
            .and_then(|o| o.value.pointer("/spec/updateStrategy/type"))
            .and_then(serde_json::Value::as_str)
            == Some("OnDelete")
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
        Progress::Journaled { entries } => meshmove_cli::debug!(1, "journal written ({entries} objects recorded)"),
    }
}

/// The plan's objects as a YAML stream or a JSON List.
pub fn print_objects(out: &mut Out, format: OutputFormat, plan: &Plan) -> Result<()> {
    let objects = plan.objects();
    if format == OutputFormat::Json {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
        out.write_str(&serde_json::to_string_pretty(&list)?)?;
        out.write_str("\n")?;
    } else {
        for o in &objects {
            out.write_str("---\n")?;
            out.write_str(&meshmove_model::yaml::to_yaml_string(o))?;
        }
    }
    Ok(())
}

/// Run `plan`: `--dry-run=client` prints diffs (table) or objects (json/yaml); otherwise execute
/// with progress, printing the objects after when `-o json|yaml`.
pub fn run_plan(live: &Live, plan: &Plan, flags: &MutateFlags, format: OutputFormat) -> Result<Vec<Outcome>> {
    let table = matches!(format, OutputFormat::Table | OutputFormat::Wide);
    let mut out = Out::new();
    if flags.dry_run == DryRunArg::Client && table {
        let previews = live.rt.block_on(plan::preview(&live.conn, plan))?;
        for p in &previews {
            out.write_str(&p.diff)?;
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
    let outcomes = live.rt.block_on(plan::execute(&live.conn, plan, &options, sink))?;
    if !table {
        print_objects(&mut out, format, plan)?;
    }
    out.flush()?;
    Ok(outcomes)
}
