//! `mtls strict`: the readiness check, then the PeerAuthentication to STRICT.

use anyhow::Result;
use clap::{Args, Subcommand};
use meshmove_cli::render::structured;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat};
use meshmove_model::inventory::kinds;
use meshmove_core::migrate::mtls;
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
    changes: MutateFlags,
}

pub fn run(kube: &KubeFlags, output: &OutputFlags, command: &MtlsCommand) -> Result<Exit> {
    let MtlsCommand::Strict(args) = command;
    let live = Live::connect(kube)?;
    let ns = live.namespace().to_string();
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
    ];
    let inventory = live.inventory(&[], &everywhere)?;
    let readiness = mtls::readiness(&inventory, &ns);
    for n in &readiness.notes {
        meshmove_cli::log::note(n);
    }
    let table = matches!(output.output, OutputFormat::Table | OutputFormat::Wide);
    if !readiness.ready() {
        let verb = if args.force { "switching anyway (--force)" } else { "not switching" };
        eprintln!("mtls strict: namespace {ns} is not ready, {verb}; under STRICT these would break:");
        for b in &readiness.blockers {
            eprintln!("  - {b}");
        }
        if !args.force {
            let mut out = Out::new();
            if !table {
                structured(&mut out, output.output, &json!({"namespace": ns, "ready": false, "blockers": readiness.blockers}))?;
            }
            out.flush()?;
            return Ok(Exit::Findings);
        }
    } else {
        eprintln!("mtls strict: every pod of {ns} is meshed and no client outside the mesh reaches it");
    }
    super::live::run_plan(&live, &mtls::plan(&ns), &args.changes, output.output)?;
    Ok(Exit::Ok)
}
