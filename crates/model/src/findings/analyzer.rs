//! Analyzers: pure functions from an inventory to findings.

use super::{Code, Finding, Report, Severity, Skipped};
use crate::inventory::{Inventory, Kind, Origin, SourceInfo};

/// One analysis over the inventory. It declares the kinds it needs: when one of them is
/// unavailable (not in the files, CRD not served, forbidden), the analyzer is skipped and listed
/// in the report instead of producing wrong "all clear" results. A kind it only *uses* is read as
/// "none" when absent, but not when the cluster refused it: then the analyzer is skipped too.
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
///
/// Kinds the cluster should have answered for and did not ([`Inventory::unread`]) are not notes:
/// the caller turns them into error findings with its catalog's code ([`unread_findings`]).
pub fn run(tool: &'static str, command: &str, analyzers: &[&dyn Analyzer], inventory: &Inventory) -> Report {
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    for a in analyzers {
        let refused = a.uses().iter().filter(|k| inventory.availability(k).is_some_and(|why| why.is_read_failure()));
        let missing: Vec<String> = a
            .requires()
            .iter()
            .chain(refused)
            .filter_map(|k| inventory.availability(k).map(|why| why.describe(k)))
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
        .filter(|(_, why)| !why.is_read_failure())
        .map(|(k, why)| why.describe(k))
        .collect();
    Report { findings, skipped, notes, ..Report::new(tool, command, inventory.source.clone()) }
}

/// One error finding per kind the cluster should have answered for and did not (RBAC denied the
/// list, or a built-in kind was not found), under the tool's `code` for unread input. A check
/// whose input could not be read has not passed; these findings make the run say so.
pub fn unread_findings(code: &'static Code, inventory: &Inventory) -> Vec<Finding> {
    inventory
        .unread()
        .into_iter()
        .map(|(kind, why)| {
            let mut f = Finding::new(code, format!("could not list {}: {}", kind.resource(), why.describe(kind))).severity(Severity::Error);
            // Where the list was made, as an object listed from there would say it.
            if let SourceInfo::Cluster { context, .. } = &inventory.source {
                f.origin = Some(Origin::Cluster { context: context.clone() }.to_string());
            }
            f
        })
        .collect()
}
