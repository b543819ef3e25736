//! `kubectl mesh-migrate`: move workloads onto Istio safely. Glue only: flags to calls, results
//! to renderers; the work is in `meshmove-migration` and `meshmove-postrender`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use meshmove_cli::{Exit, KubeFlags, OutputFlags, ReportFlags, SourceFlags, analysis, complete};
use meshmove_migration::precheck::{self, MeshMode, PrecheckOptions};

mod cmd;

const TOOL: &str = "mesh-migrate";

#[derive(Parser)]
#[command(
    name = "kubectl-mesh-migrate",
    bin_name = "kubectl mesh-migrate",
    version,
    about = "Move workloads onto Istio (sidecar or ambient) safely, step by step",
    after_help = "Examples:\n  \
        kubectl mesh-migrate precheck -n shop\n  \
        kubectl mesh-migrate precheck -f rendered.yaml --mode ambient -o json\n  \
        helm template shop ./chart | kubectl mesh-migrate precheck -f -"
)]
struct Cli {
    #[command(flatten)]
    kube: KubeFlags,
    #[command(flatten)]
    output: OutputFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check whether a namespace or cluster is ready for the mesh
    #[command(after_help = "Examples:\n  kubectl mesh-migrate precheck -n shop\n  kubectl mesh-migrate precheck -A --mode ambient\n  kubectl mesh-migrate precheck -f charts/rendered/ --fail-on warning")]
    Precheck {
        #[command(flatten)]
        source: SourceFlags,
        #[command(flatten)]
        report: ReportFlags,
        /// Data-plane mode the namespace will move to
        #[arg(long, value_enum, default_value_t = Mode::Sidecar)]
        mode: Mode,
    },
    /// Quick win: one multi-host Ingress for the namespace's Services (<service>.<domain>)
    #[command(after_help = "Examples:\n  kubectl mesh-migrate expose -n shop --domain shop.local --ingress-class nginx\n  kubectl mesh-migrate expose -n shop --host frontend=shop.local --dry-run=client\n  kubectl mesh-migrate expose -n shop --cleanup")]
    Expose(cmd::expose::ExposeArgs),
    /// Put the namespace on the mesh: injection labels, Gateway, VirtualServices, DestinationRules,
    /// PeerAuthentication PERMISSIVE, restarts in batches
    #[command(after_help = "Examples:\n  kubectl mesh-migrate enable -n shop --dry-run=client\n  kubectl mesh-migrate enable -n shop --revision 1-24 --batch-size 2\n  kubectl mesh-migrate enable -n shop --mode ambient --profile traffic.yaml\n  kubectl mesh-migrate enable -n shop --http-timeout 30s --retries 3 --retry-on 5xx,connect-failure\n  kubectl mesh-migrate enable -n shop --spire --dry-run=client")]
    Enable(cmd::enable::EnableArgs),
    /// Mutual TLS: `mtls strict` checks that nothing would break, then requires it
    #[command(subcommand)]
    Mtls(cmd::mtls::MtlsCommand),
    /// Per workload: meshed or not, proxy revision; mTLS mode, Istio objects, steps done and pending
    #[command(after_help = "Examples:\n  kubectl mesh-migrate status -n shop\n  kubectl mesh-migrate status -n shop -o json\n  kubectl mesh-migrate status -f saved-namespace.yaml -n shop")]
    Status(cmd::status::StatusArgs),
    /// Return the namespace to its state before the first step (from the journal in it)
    #[command(after_help = "Examples:\n  kubectl mesh-migrate rollback -n shop --dry-run=client\n  kubectl mesh-migrate rollback -n shop\n  kubectl mesh-migrate rollback -n shop --step mtls-strict")]
    Rollback(cmd::rollback::RollbackArgs),
    /// Helm post-renderer: inject mesh labels, probes and NetworkPolicies into rendered manifests
    PostRender(cmd::post_render::PostRenderArgs),
    /// Namespace-based migration: a meshed copy beside the namespace, traffic shifted in steps
    #[command(subcommand)]
    Ns(cmd::ns::NsCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completion {
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Sidecar,
    Ambient,
}

impl From<Mode> for MeshMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Sidecar => MeshMode::Sidecar,
            Mode::Ambient => MeshMode::Ambient,
        }
    }
}

fn main() -> ExitCode {
    if complete::intercept(&Cli::command()) {
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    meshmove_cli::log::set_level(cli.output.verbosity);
    meshmove_cli::run_main(TOOL, || run(cli))
}

fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Precheck { source, report, mode } => {
            let options = PrecheckOptions { mode: mode.into(), ..PrecheckOptions::default() };
            let analyzers = precheck::analyzers(&options);
            let refs: Vec<_> = analyzers.iter().map(|a| a.as_ref()).collect();
            let unread = &meshmove_migration::catalog::CODE_UNREAD_INPUT;
            analysis::analyze(TOOL, "precheck", &refs, unread, &cli.kube, &source, &report, &cli.output)
        }
        Command::Expose(args) => cmd::expose::run(&cli.kube, &cli.output, &args),
        Command::Enable(args) => cmd::enable::run(&cli.kube, &cli.output, &args),
        Command::Mtls(command) => cmd::mtls::run(&cli.kube, &cli.output, &command),
        Command::Status(args) => cmd::status::run(&cli.kube, &cli.output, &args),
        Command::Rollback(args) => cmd::rollback::run(&cli.kube, &cli.output, &args),
        Command::PostRender(args) => cmd::post_render::run(&args, &cli.output),
        Command::Ns(command) => cmd::ns::run(&cli.kube, &cli.output, command),
        Command::Completion { shell } => {
            complete::script(&mut Cli::command(), shell, &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    }
}
