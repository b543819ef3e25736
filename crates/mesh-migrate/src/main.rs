//! `kubectl mesh-migrate`: move workloads onto Istio safely. Glue only: flags to calls, results
//! to renderers; the work is in `meshmove-core`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use meshmove_cli::{Exit, KubeFlags, OutputFlags, ReportFlags, SourceFlags, analysis, complete};
use meshmove_core::mesh::precheck::{self, MeshMode, PrecheckOptions};

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
    /// Helm post-renderer: inject mesh labels, probes and NetworkPolicies into rendered manifests
    PostRender(cmd::post_render::PostRenderArgs),
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
            analysis::analyze(TOOL, "precheck", &refs, &cli.kube, &source, &report, &cli.output)
        }
        Command::PostRender(args) => cmd::post_render::run(&args),
        Command::Completion { shell } => {
            complete::script(&mut Cli::command(), shell, &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    }
}
