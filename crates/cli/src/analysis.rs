//! The shape every read-only analysis command shares: load an inventory from `-f` or the cluster,
//! run analyzers, apply suppressions, render, and decide the exit code.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use meshmove_model::findings::{self, Analyzer, Code, Report};
use meshmove_model::inventory::{self, Inventory, Kind};

use crate::exit::Exit;
use crate::flags::{KubeFlags, OutputFlags, ReportFlags, SourceFlags};
use crate::output::Out;

/// Load the inventory a command works from: manifests when `-f` is given, else the cluster
/// (listing `kinds` in the namespace scope from `-n`/`-A`/the context, and `cluster_wide` kinds
/// in every namespace; when Secrets are asked for, Secrets and ConfigMaps are not listed but
/// fetched by name, those the workloads read, see `meshmove_kube::cluster::load_by_reference`).
/// Input without a single object is an error (exit 2). On a cluster, every
/// kind must be read: a list refused (403) or a built-in kind not found (404) is an error (exit 3)
/// naming the lists and the RBAC the command needs, since what it would print or write from a
/// partial view (policies, a verdict) could be wrong. Absent CRDs are not errors.
///
/// Commands that can show a partial view honestly use [`load_inventory_partial`].
pub fn load_inventory(kube: &KubeFlags, source: &SourceFlags, kinds: &[&'static Kind], cluster_wide: &[&'static Kind]) -> Result<Inventory> {
    let inventory = load_inventory_partial(kube, source, kinds, cluster_wide)?;
    require_complete(&inventory, "work")?;
    Ok(inventory)
}

/// [`load_inventory`] for reports and views: a cluster from which *nothing* could be read (every
/// list refused or not found) is still an error (exit 3) naming the RBAC the command needs, but
/// kinds that only partly failed are left in [`Inventory::unread`]: reports turn them into error
/// findings ([`report`]), views print an error per kind ([`warn_unread`]); neither exits 0.
pub fn load_inventory_partial(kube: &KubeFlags, source: &SourceFlags, kinds: &[&'static Kind], cluster_wide: &[&'static Kind]) -> Result<Inventory> {
    // A command that reads Secrets (dbiso: the connection strings workloads take from them)
    // reads Secrets and ConfigMaps by reference: only those the workloads name, each with a
    // GET, so it needs `get` on them and never lists them.
    let by_reference: &[&'static Kind] =
        if kinds.contains(&&meshmove_model::inventory::kinds::SECRET) { &meshmove_kube::cluster::BY_REFERENCE } else { &[] };
    load_inventory_by_reference(kube, source, kinds, cluster_wide, by_reference, |_| Vec::new())
}

/// [`load_inventory_partial`] reading the `by_reference` kinds by reference (see
/// [`meshmove_kube::cluster::load_by_reference`]), then GETting the objects `follow` names in
/// what was read (objects named inside other objects, such as a ConfigMap a configuration file
/// names), so that the command needs `get` on those kinds and never `list`. Files are read whole.
pub fn load_inventory_by_reference(
    kube: &KubeFlags,
    source: &SourceFlags,
    kinds: &[&'static Kind],
    cluster_wide: &[&'static Kind],
    by_reference: &[&'static Kind],
    follow: impl Fn(&Inventory) -> Vec<(&'static Kind, String, String)>,
) -> Result<Inventory> {
    let opts = kube.options();
    if !source.filename.is_empty() {
        let default_ns = opts.default_namespace();
        let only = if kube.all_namespaces { None } else { kube.namespace.as_deref() };
        let inventory = inventory::load_paths_with(&source.filename, &default_ns, only, source.pods).context("reading manifests")?;
        for skipped in inventory.skipped_files() {
            crate::log::warn(format_args!("skipped {skipped}"));
        }
        return Ok(inventory);
    }
    let rt = crate::runtime()?;
    rt.block_on(async {
        let conn = opts.connect().await?;
        crate::debug!(1, "loading {} kinds from context {} ({})", kinds.len(), conn.context,
            if conn.all_namespaces { "all namespaces".to_string() } else { format!("namespace {}", conn.namespace) });
        let scope = if conn.all_namespaces { None } else { Some(conn.namespace.as_str()) };
        let mut inventory = meshmove_kube::cluster::load_readable_by_reference(&conn, kinds, by_reference, cluster_wide, scope).await?;
        let mut more: BTreeMap<&'static Kind, Vec<(String, String)>> = BTreeMap::new();
        for (kind, namespace, name) in follow(&inventory) {
            more.entry(kind).or_default().push((namespace, name));
        }
        for (kind, names) in more {
            inventory = meshmove_kube::cluster::fetch_into(&conn, inventory, kind, &names).await?;
        }
        Ok(inventory)
    })
}

/// For commands that cannot work from a partial view (they write, or give a verdict): an error
/// (exit 3) naming every kind the cluster refused or did not find, and the RBAC to grant.
pub fn require_complete(inventory: &Inventory, action: &str) -> Result<()> {
    match meshmove_kube::cluster::unread_error(inventory, action) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// For commands that show what they could read (like `kubectl get` with one kind forbidden): an
/// `error:` line on stderr per kind the cluster refused or did not find. Returns whether there was
/// any, in which case the command must not exit 0.
pub fn warn_unread(tool: &str, inventory: &Inventory) -> bool {
    let unread = inventory.unread();
    for (kind, why) in &unread {
        eprintln!("{tool}: error: could not list {}: {}", kind.resource(), why.describe(kind));
    }
    !unread.is_empty()
}

/// Load what `analyzers` need (from `-f` or the cluster), run them, print the report. `unread` is
/// the tool's catalog code for a kind the cluster refused or did not find.
#[allow(clippy::too_many_arguments)]
pub fn analyze(
    tool: &'static str,
    command: &str,
    analyzers: &[&dyn Analyzer],
    unread: &'static Code,
    kube: &KubeFlags,
    source: &SourceFlags,
    flags: &ReportFlags,
    output: &OutputFlags,
) -> Result<Exit> {
    let (kinds, wide) = findings::wanted_kinds(analyzers);
    let inventory = load_inventory_partial(kube, source, &kinds, &wide)?;
    report(tool, command, &inventory, analyzers, unread, flags, output)
}

/// Run analyzers over an inventory and print the report; returns the exit status. Every kind the
/// cluster refused or did not find adds an error finding under `unread`, so a partial read never
/// passes under the default `--fail-on`.
pub fn report(
    tool: &'static str,
    command: &str,
    inventory: &Inventory,
    analyzers: &[&dyn Analyzer],
    unread: &'static Code,
    flags: &ReportFlags,
    output: &OutputFlags,
) -> Result<Exit> {
    report_with(tool, command, inventory, analyzers, unread, flags, |out, report| {
        crate::render::report(out, output.output, output.color(), report)
    })
}

/// [`report`] written by another renderer (Markdown, CSV): the same run, suppressions and exit
/// code.
pub fn report_with(
    tool: &'static str,
    command: &str,
    inventory: &Inventory,
    analyzers: &[&dyn Analyzer],
    unread: &'static Code,
    flags: &ReportFlags,
    render: impl FnOnce(&mut Out, &Report) -> Result<()>,
) -> Result<Exit> {
    let mut report: Report = findings::run(tool, command, analyzers, inventory);
    report.findings.extend(findings::unread_findings(unread, inventory));
    let report = report.finish(&flags.suppress);
    let mut out = Out::new();
    render(&mut out, &report)?;
    out.flush()?;
    Ok(if report.fails(flags.fail_on()) { Exit::Findings } else { Exit::Ok })
}
