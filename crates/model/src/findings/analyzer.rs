//! Analyzers: pure functions from an inventory to findings.

use super::{Finding, Report, Skipped, Summary, REPORT_SCHEMA};
use crate::inventory::{Inventory, Kind, Unavailable};

/// One analysis over the inventory. It declares the kinds it needs: when one of them is
/// unavailable (not in the files, CRD not served, forbidden), the analyzer is skipped and listed
/// in the report instead of producing wrong "all clear" results.
pub trait Analyzer: Sync {
    /// Stable name, shown when skipped.
    fn name(&self) -> &'static str;
    /// Kinds without which the analysis means nothing.
    fn requires(&self) -> &'static [&'static Kind];
    /// Kinds it also reads when present (absent means "none"). The cluster loader lists these too.
    fn uses(&self) -> &'static [&'static Kind] {
        &[]
    }
    /// Kinds that must be listed across all namespaces even when the command is scoped to one
    /// (the Istio control plane lives elsewhere; node capacity needs every Pod).
    fn cluster_wide(&self) -> &'static [&'static Kind] {
        &[]
    }
    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>);
}

/// What a cluster load must list for these analyzers: every required and used kind, and the
/// subset to list cluster-wide. Both sorted and deduplicated.
pub fn wanted_kinds(analyzers: &[&dyn Analyzer]) -> (Vec<&'static Kind>, Vec<&'static Kind>) {
    let mut all: Vec<&'static Kind> = Vec::new();
    let mut wide: Vec<&'static Kind> = Vec::new();
    for a in analyzers {
        all.extend(a.requires().iter().chain(a.uses()).chain(a.cluster_wide()));
        wide.extend(a.cluster_wide());
    }
    all.sort();
    all.dedup();
    wide.sort();
    wide.dedup();
    (all, wide)
}

/// Run analyzers over an inventory and assemble an unfinished report (call
/// [`Report::finish`] with the suppressions).
pub fn run(tool: &'static str, command: &str, analyzers: &[&dyn Analyzer], inventory: &Inventory) -> Report {
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    for a in analyzers {
        let missing: Vec<String> = a
            .requires()
            .iter()
            .filter_map(|k| inventory.availability(k).map(|why| describe(k, &why)))
            .collect();
        if missing.is_empty() {
            a.analyze(inventory, &mut findings);
        } else {
            skipped.push(Skipped { analyzer: a.name(), reason: missing.join("; ") });
        }
    }
    let notes = inventory
        .unavailable()
        .into_iter()
        .map(|(k, why)| describe(k, &why))
        .collect();
    Report {
        schema: REPORT_SCHEMA,
        tool,
        command: command.to_string(),
        source: inventory.source.clone(),
        findings,
        skipped,
        notes,
        summary: Summary::default(),
    }
}

fn describe(kind: &Kind, why: &Unavailable) -> String {
    match why {
        Unavailable::NotInFiles => format!("no {} in the input", kind.kind),
        Unavailable::NotServed if kind.custom => format!("{} is not served by the cluster (CRD not installed)", kind.resource()),
        Unavailable::NotServed => format!("{} is not served by the cluster", kind.resource()),
        Unavailable::Forbidden { message } => message.clone(),
    }
}
