//! The shape every read-only analysis command shares: load an inventory from `-f` or the cluster,
//! run analyzers, apply suppressions, render, and decide the exit code.

use anyhow::{Context, Result};
use meshmove_model::findings::{self, Analyzer, Report};
use meshmove_model::inventory::{self, Inventory, Kind};

use crate::exit::Exit;
use crate::flags::{KubeFlags, OutputFlags, ReportFlags, SourceFlags};
use crate::output::Out;

/// Load the inventory the command analyzes: manifests when `-f` is given, else the cluster
/// (listing `kinds` in the namespace scope from `-n`/`-A`/the context, and `cluster_wide` kinds
/// in every namespace).
pub fn load_inventory(kube: &KubeFlags, source: &SourceFlags, kinds: &[&'static Kind], cluster_wide: &[&'static Kind]) -> Result<Inventory> {
    let opts = kube.options();
    if !source.filename.is_empty() {
        let default_ns = opts.default_namespace();
        let only = if kube.all_namespaces { None } else { kube.namespace.as_deref() };
        return inventory::load_paths(&source.filename, &default_ns, only).context("reading manifests");
    }
    let rt = crate::runtime()?;
    rt.block_on(async {
        let conn = opts.connect().await?;
        crate::debug!(1, "loading {} kinds from context {} ({})", kinds.len(), conn.context,
            if conn.all_namespaces { "all namespaces".to_string() } else { format!("namespace {}", conn.namespace) });
        let scope = if conn.all_namespaces { None } else { Some(conn.namespace.as_str()) };
        Ok(meshmove_kube::cluster::load(&conn, kinds, cluster_wide, scope).await?)
    })
}

/// Load what `analyzers` need (from `-f` or the cluster), run them, print the report.
pub fn analyze(
    tool: &'static str,
    command: &str,
    analyzers: &[&dyn Analyzer],
    kube: &KubeFlags,
    source: &SourceFlags,
    flags: &ReportFlags,
    output: &OutputFlags,
) -> Result<Exit> {
    let (kinds, wide) = findings::wanted_kinds(analyzers);
    let inventory = load_inventory(kube, source, &kinds, &wide)?;
    report(tool, command, &inventory, analyzers, flags, output)
}

/// Run analyzers over an inventory and print the report; returns the exit status.
pub fn report(
    tool: &'static str,
    command: &str,
    inventory: &Inventory,
    analyzers: &[&dyn Analyzer],
    flags: &ReportFlags,
    output: &OutputFlags,
) -> Result<Exit> {
    let report: Report = findings::run(tool, command, analyzers, inventory).finish(&flags.suppress);
    let mut out = Out::new();
    crate::render::report(&mut out, output.output, output.color(), &report)?;
    out.flush()?;
    Ok(if report.fails(flags.fail_on()) { Exit::Findings } else { Exit::Ok })
}
