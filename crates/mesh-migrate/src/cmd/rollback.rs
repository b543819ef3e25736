//! `rollback`: back to the state before the first step, from the journal in the namespace.

use anyhow::Result;
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, OutputFlags};
use meshmove_kube::plan::{self, RollbackOptions};

use super::live::{Live, MutateFlags};

#[derive(Args)]
pub struct RollbackArgs {
    /// Undo only what this step recorded first (expose, enable, mtls-strict; dbiso-apply: the policies kubectl dbiso apply wrote)
    #[arg(long, value_name = "STEP", value_parser = ["expose", "enable", "mtls-strict", "dbiso-apply"])]
    step: Option<String>,
    /// Roll back over what someone changed after this tool wrote it (their edits are lost); without it, any such change refuses the whole rollback
    #[arg(long)]
    force: bool,
    /// Workloads rolled again at once (each batch waited for; never two guarded by the same PodDisruptionBudget)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    batch_size: u16,
    #[command(flatten)]
    changes: MutateFlags,
}

pub fn run(kube: &KubeFlags, output: &OutputFlags, args: &RollbackArgs) -> Result<Exit> {
    let live = Live::connect(kube)?;
    let ns = live.namespace().to_string();
    let options = RollbackOptions {
        dry_run: args.changes.dry_run.into(),
        step: args.step.clone(),
        force: args.force,
        timeout: args.changes.timeout,
        batch_size: usize::from(args.batch_size),
        actor: live.actor(),
        manager: plan::Manager::MeshMigrate,
        only: None,
    };
    let outcomes = meshmove_cli::mutate::run_rollback(&live, &options, args.changes.dry_run, output.output)?;
    if options.dry_run == plan::DryRun::None {
        let what = args.step.as_deref().map_or_else(|| "every step".to_string(), |s| format!("step {s}"));
        eprintln!("rolled back {what} in namespace {ns}: {} objects restored", outcomes.len());
    }
    Ok(Exit::Ok)
}
