//! `mtls strict`: the proof that the write raises what it claims, the readiness check, then the
//! namespace-wide PeerAuthentication Istio applies to STRICT.

use anyhow::Result;
use clap::{Args, Subcommand};
use meshmove_cli::render::structured;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat};
use meshmove_model::inventory::kinds;
use meshmove_migration::inplace::mtls;
use serde_json::json;

use super::live::{Live, MutateFlags};

#[derive(Subcommand)]
pub enum MtlsCommand {
    /// Require mutual TLS in the namespace, after checking that nothing would break
    #[command(after_help = "Examples:\n  kubectl mesh-migrate mtls strict -n shop --dry-run=client\n  kubectl mesh-migrate mtls strict -n shop\n  kubectl mesh-migrate mtls strict -n shop --force")]
    Strict(StrictArgs),
}

#[derive(Args)]
pub struct StrictArgs {
    /// Switch even though the check lists what would break
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    root: super::live::MeshRootArgs,
    #[command(flatten)]
    changes: MutateFlags,
}

pub fn run(kube: &KubeFlags, output: &OutputFlags, command: &MtlsCommand) -> Result<Exit> {
    let MtlsCommand::Strict(args) = command;
    let live = Live::connect(kube)?;
    let ns = live.namespace().to_string();
    live.refuse_under_migration("mtls strict")?;
    // Clients live in other namespaces: pods, workloads, namespaces and policies everywhere.
    let everywhere = [
        &kinds::NAMESPACE,
        &kinds::POD,
        &kinds::REPLICA_SET,
        &kinds::DEPLOYMENT,
        &kinds::STATEFUL_SET,
        &kinds::DAEMON_SET,
        &kinds::JOB,
        &kinds::CRON_JOB,
        &kinds::NETWORK_POLICY,
        &kinds::SERVICE,
        &kinds::PEER_AUTHENTICATION,
    ];
    let inventory = live.inventory(&[], &everywhere)?;
    // "Nothing would break" over clients it could not list would be a guess.
    if args.force {
        meshmove_cli::analysis::warn_unread("mesh-migrate", &inventory);
    } else {
        meshmove_cli::analysis::require_complete(&inventory, "tell what STRICT would break (pass --force to switch anyway)")?;
    }
    let table = matches!(output.output, OutputFormat::Table | OutputFormat::Wide);
    let refuse = |body: serde_json::Value| -> Result<Exit> {
        let mut out = Out::new();
        if !table {
            structured(&mut out, output.output, &body)?;
        }
        out.flush()?;
        Ok(Exit::Findings)
    };
    // A write that would not take effect, or policies it cannot see, is refused even with
    // --force: --force overrides what would break, never the proof of what the write does.
    let strict = match mtls::strict_in(&inventory, &ns, live.mesh_root(&args.root)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mtls strict: not switching: {e}");
            return refuse(json!({"namespace": ns, "ready": false, "error": e.to_string()}));
        }
    };
    for n in &strict.readiness.notes {
        meshmove_cli::log::note(n);
    }
    if let Some(why) = &strict.instead_of_default {
        eprintln!("mtls strict: {why}");
    }
    for p in strict.kept_lower() {
        eprintln!("mtls strict: not raised, a workload-level policy decides: {p}");
    }
    if !strict.readiness.ready() {
        let verb = if args.force { "switching anyway (--force)" } else { "not switching" };
        eprintln!("mtls strict: namespace {ns} is not ready, {verb}; under STRICT these would break:");
        for b in &strict.readiness.blockers {
            eprintln!("  - {b}");
        }
        if !args.force {
            return refuse(json!({"namespace": ns, "ready": false, "blockers": strict.readiness.blockers, "ports": strict.ports}));
        }
    } else {
        eprintln!("mtls strict: every pod of {ns} is meshed and no client outside the mesh reaches a port that becomes STRICT");
    }
    let raised = strict.raised().count();
    eprintln!("mtls strict: PeerAuthentication {} to STRICT raises {raised} workload port(s) to STRICT", strict.policy);
    super::live::run_plan(&live, &strict.plan, &args.changes, output.output)?;
    Ok(Exit::Ok)
}
