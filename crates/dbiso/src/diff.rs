//! `diff`: what a change does to who reaches whom. The engine's all-pairs answer
//! (`Engine::reach`) on the state before and on the state after, compared pair by pair
//! (`meshmove_netpol::diff`). Exit 1 when the change removes (or narrows) a connection, so CI can
//! stop a change that cuts traffic.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, Out, SourceFlags};
use meshmove_model::inventory::{Inventory, Kind};

use super::Format;
use super::reach::{FocusArgs, databases, model_kinds, model_of_state};

#[derive(Args)]
pub struct DiffArgs {
    /// The state before: manifests (file, directory or - for stdin; several may follow). Default: the cluster
    #[arg(long, value_name = "PATH", num_args = 1.., help_heading = "Input")]
    before: Vec<PathBuf>,
    /// The whole state after: manifests (file, directory or - for stdin; several may follow)
    #[arg(long, value_name = "PATH", num_args = 1.., conflicts_with = "filename", help_heading = "Input")]
    after: Vec<PathBuf>,
    /// Manifests applied on top of the state before, as `kubectl diff -f` (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "PATH", help_heading = "Input")]
    filename: Vec<PathBuf>,
    #[command(flatten)]
    focus: FocusArgs,
}

fn files(paths: &[PathBuf]) -> SourceFlags {
    // The engine's model reads no more of a pod managed by a workload than its facts.
    SourceFlags { filename: paths.to_vec(), pods: meshmove_model::inventory::PodDetail::Facts }
}

/// Read a state: manifests, or the cluster when `paths` is empty. A cluster read must be
/// complete: pairs through policies that could not be listed would be wrong on one side only.
fn load(kube: &KubeFlags, paths: &[PathBuf], kinds: &[&'static Kind]) -> Result<Inventory> {
    meshmove_cli::analysis::load_inventory(kube, &files(paths), kinds, &[])
}

pub fn run(kube: &KubeFlags, args: &DiffArgs, format: Format) -> Result<Exit> {
    if args.after.is_empty() && args.filename.is_empty() {
        bail!("give the state after: --after PATH... (a whole state) or -f PATH... (manifests applied on top of the state before)");
    }
    let stdin = args.before.iter().chain(&args.after).chain(&args.filename).filter(|p| p.as_os_str() == "-").count();
    if stdin > 1 {
        bail!("stdin (-) can be read once: give it for one of --before, --after and -f");
    }
    let kinds = model_kinds(false);
    let before = load(kube, &args.before, &kinds)?;
    let after = if args.after.is_empty() {
        let change = load(kube, &args.filename, &kinds)?;
        before.overlay(change.objects().to_vec())
    } else {
        load(kube, &args.after, &kinds)?
    };
    compare(before, after, &args.focus, format)
}

/// Run the engine on both states, print what changed, and exit by the CI contract: 1 when the
/// change removes connections, 0 otherwise.
pub fn compare(before: Inventory, after: Inventory, focus: &FocusArgs, format: Format) -> Result<Exit> {
    let (before, _, before_engine) = model_of_state(before, "before: ")?;
    let (after, _, after_engine) = model_of_state(after, "after: ")?;
    let (before_reach, after_reach) = (before_engine.reach(), after_engine.reach());
    let mut diff = meshmove_netpol::diff::diff(&before_reach, &after_reach);
    meshmove_cli::debug!(1, "before: {} pairs; after: {} pairs; {} changed", before_reach.len(), after_reach.len(), diff.entries.len());
    if let Some(set) = focus.resolve(&after.default_namespace, &[before_reach.endpoints(), after_reach.endpoints()])? {
        diff.retain_touching(&set);
    }
    let marks = databases(&[&before, &after]);
    let mut out = Out::new();
    meshmove_cli::render::reach::diff(&mut out, format, &diff, &marks)?;
    out.flush()?;
    Ok(if diff.removes_connections() { Exit::Findings } else { Exit::Ok })
}
