//! `kubectl spire-check`: Verify SPIRE workload identity for the mesh. Glue only: the work is in `meshmove-core`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use meshmove_cli::{Exit, KubeFlags, OutputFlags, complete};

const TOOL: &str = "spire-check";

#[derive(Parser)]
#[command(name = "kubectl-spire-check", bin_name = "kubectl spire-check", version, about = "Verify SPIRE workload identity for the mesh")]
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
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completion { shell: clap_complete::Shell },
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
    let _ = (&cli.kube, &cli.output);
    match cli.command {
        Command::Completion { shell } => {
            complete::script(&mut Cli::command(), shell, &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    }
}
