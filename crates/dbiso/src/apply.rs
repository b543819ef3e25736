//! `apply`: the generated policies (and, in ambient namespaces, their AuthorizationPolicies)
//! through the suite's one write path, then `audit` again on the cluster; `rollback`: undo what
//! `apply` wrote, from the namespace's journal.

use anyhow::Result;
use clap::Args;
use meshmove_cli::mutate::{DryRunArg, Live, MutateFlags, progress, run_plans, run_rollback};
use meshmove_cli::{Exit, KubeFlags, OutputFlags, ReportFlags, SourceFlags};
use meshmove_isolation::apply;
use meshmove_kube::plan::{self, DryRun, ExecOptions, Manager, RollbackOptions};

use super::generate::{self, PolicyArgs};

#[derive(Args)]
pub struct ApplyArgs {
    /// none, client (a diff per object against the cluster; -o json|yaml: the objects) or server (dryRun=All: the server validates and persists nothing)
    #[arg(long, value_enum, value_name = "MODE", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    dry_run: DryRunArg,
    #[command(flatten)]
    source: SourceFlags,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    report: ReportFlags,
}

pub fn run(kube: &KubeFlags, args: &ApplyArgs, output: &OutputFlags) -> Result<Exit> {
    let inventory = meshmove_cli::analysis::load_inventory(kube, &args.source, &generate::kinds(false), &[])?;
    let generation = generate::policies(&inventory, &args.policy);
    let plans = apply::plans(&generation.policies);
    let live = Live::connect_any(kube)?;
    // Applies do not wait for rollouts: the timeout is never used.
    let flags = MutateFlags { dry_run: args.dry_run, timeout: std::time::Duration::from_secs(60) };
    if args.dry_run != DryRunArg::None {
        run_plans(&live, &plans, &flags, output.output)?;
        return Ok(Exit::Ok);
    }
    // Outcomes on stderr: stdout carries the audit that follows.
    let options = ExecOptions { dry_run: DryRun::None, timeout: flags.timeout, actor: live.actor() };
    let mut show = progress(false);
    for p in &plans {
        live.rt.block_on(plan::execute(&live.conn, p, &options, &mut show))?;
    }
    drop(live);
    // Audit the cluster as it is now, whatever the policies were generated from.
    super::audit(kube, &SourceFlags::default(), &args.report, output)
}

#[derive(Args)]
pub struct RollbackArgs {
    /// none, client or server (a bare --dry-run means client)
    #[arg(long, value_enum, value_name = "MODE", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    dry_run: DryRunArg,
    /// Remove or restore policies even when someone changed them after dbiso wrote them (their edits are lost); without it, any such change refuses the whole rollback
    #[arg(long)]
    force: bool,
}

/// Undo the `dbiso-apply` steps of the namespace's journal: policies `apply` created are
/// deleted, ones it changed get their prior content back.
pub fn rollback(kube: &KubeFlags, args: &RollbackArgs, output: &OutputFlags) -> Result<Exit> {
    let live = Live::connect(kube)?;
    let ns = live.namespace().to_string();
    let options = RollbackOptions {
        dry_run: args.dry_run.into(),
        step: Some(apply::STEP.to_string()),
        force: args.force,
        actor: live.actor(),
        manager: Manager::Dbiso,
        ..RollbackOptions::default()
    };
    let outcomes = run_rollback(&live, &options, args.dry_run, output.output)?;
    if options.dry_run == DryRun::None {
        eprintln!("rolled back {} in namespace {ns}: {} objects restored", apply::STEP, outcomes.len());
    }
    Ok(Exit::Ok)
}
