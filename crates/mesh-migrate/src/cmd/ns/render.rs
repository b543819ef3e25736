//! The `ns` commands' results on stdout: a step's report, `ns status` and `ns status -A`, as
//! tables or as the documents of `docs/schemas/meshmove-output.schema.json`.

use std::time::Duration;

use anyhow::Result;
use meshmove_cli::mutate::print_object_list;
use meshmove_cli::render::{structured, table};
use meshmove_cli::{Exit, Out, OutputFlags, OutputFormat};
use meshmove_kube::plan::{self, DryRun};
use meshmove_migration::namespace::DataPlane;
use meshmove_migration::namespace::gates::GateResult;
use meshmove_migration::namespace::run::{self, Report};

pub(super) fn pct(w: u8) -> String {
    format!("{w} %")
}

fn gate_rows(results: &[GateResult]) -> Vec<Vec<String>> {
    results
        .iter()
        .map(|g| {
            vec![
                g.gate.clone(),
                if g.passed { "passed".into() } else { "FAILED".into() },
                g.observed.clone(),
                g.threshold.clone(),
                if g.source.is_empty() { "cluster".into() } else { g.source.clone() },
                g.detail.clone(),
            ]
        })
        .collect()
}

/// A step's report. Under `--dry-run=client` stdout carries what the shared contract
/// (`meshmove_cli::mutate`) prints, a diff per object (`-o yaml|json`: the objects); otherwise
/// the outcomes are the report's first lines (`-o json|yaml`: the whole report). As for every
/// mutating command, outcomes go to stderr where stdout is not a table of them.
pub(super) fn report(output: &OutputFlags, r: &Report) -> Result<Exit> {
    let mut out = Out::new();
    let exit = if r.passed { Exit::Ok } else { Exit::Findings };
    // Waits that a dry run skips, and deletes of what is already gone, say nothing.
    let outcomes = r.outcomes.iter().filter(|o| !(o.action == plan::Action::Skipped && o.target.kind != "ConfigMap" && r.dry_run != DryRun::None));
    // Outcomes on stderr where stdout carries diffs or a document (with -v they were printed
    // there as they happened).
    let tabular = matches!(output.output, OutputFormat::Table | OutputFormat::Wide);
    if (r.dry_run == DryRun::Client || !tabular) && output.verbosity == 0 {
        for o in outcomes.clone() {
            eprintln!("{o}");
        }
    }
    match output.output {
        OutputFormat::Json | OutputFormat::Yaml if r.dry_run == DryRun::Client => print_object_list(&mut out, output.output, &r.objects)?,
        OutputFormat::Json | OutputFormat::Yaml => structured(&mut out, output.output, r)?,
        OutputFormat::Table | OutputFormat::Wide => {
            if r.dry_run == DryRun::Client {
                for p in &r.previews {
                    out.write_str(&p.diff)?;
                }
            } else {
                for o in outcomes {
                    out.line(o)?;
                }
            }
            if let Some(c) = &r.copy {
                if !c.skipped.is_empty() {
                    let rows = c.skipped.iter().map(|s| vec![s.object.clone(), s.reason.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["NOT COPIED", "WHY"], rows))?;
                }
                if !c.adjustments.is_empty() {
                    let rows = c.adjustments.iter().map(|a| vec![a.object.clone(), a.field.clone(), a.change.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["ADJUSTED", "FIELD", "CHANGE"], rows))?;
                }
                if !c.guards.is_empty() {
                    let rows = c.guards.iter().map(|g| vec![g.object.clone(), g.namespace.clone(), g.note.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["GUARD", "NAMESPACE", "HOW"], rows))?;
                }
                if !c.unrouted.is_empty() {
                    let rows = c.unrouted.iter().map(|u| vec![u.service.clone(), u.reason.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["NOT ROUTED", "WHY"], rows))?;
                }
                if !c.shared.is_empty() {
                    let rows = c.shared.iter().map(|s| vec![s.object.clone(), s.services.join(", "), s.reason.clone()]).collect();
                    out.write_str("\n")?;
                    out.line(format_args!("shared backends (stay in {}):", r.namespace))?;
                    out.write_str(&table(&["OBJECT", "SERVICES", "WHY"], rows))?;
                }
            }
            if !r.gates.is_empty() {
                out.write_str("\n")?;
                out.write_str(&table(&["GATE", "RESULT", "OBSERVED", "THRESHOLD", "SOURCE", "DETAIL"], gate_rows(&r.gates)))?;
            }
            for n in &r.notes {
                out.line(format_args!("note: {n}"))?;
            }
            for w in &r.warnings {
                out.line(format_args!("warning: {w}"))?;
            }
            let phase = r.phase.map(|p| format!(" ({p})")).unwrap_or_default();
            let dry = match r.dry_run {
                DryRun::None => "",
                DryRun::Client => " (dry run)",
                DryRun::Server => " (server dry run)",
            };
            if r.command == "cleanup" {
                out.line(format_args!("{}: mesh side {} cleaned up{phase}{dry}", r.namespace, r.mesh_namespace))?;
            } else {
                out.line(format_args!("{}: {} to {}{phase}{dry}", r.namespace, pct(r.weight), r.mesh_namespace))?;
            }
        }
    }
    out.flush()?;
    Ok(exit)
}

pub(super) fn status(output: &OutputFlags, s: &run::Status) -> Result<Exit> {
    let mut out = Out::new();
    let exit = if s.problems.is_empty() { Exit::Ok } else { Exit::Findings };
    if matches!(output.output, OutputFormat::Json | OutputFormat::Yaml) {
        structured(&mut out, output.output, s)?;
        out.flush()?;
        return Ok(exit);
    }
    let Some(st) = &s.state else {
        out.line(format_args!("no migration of {} is recorded", s.namespace))?;
        out.line(format_args!("next: {}", s.next))?;
        out.flush()?;
        return Ok(exit);
    };
    let schedule = st
        .schedule
        .as_ref()
        .map(|sc| {
            format!(
                "{} every {}",
                sc.steps.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
                meshmove_model::duration::show(Duration::from_millis(sc.interval_ms))
            )
        })
        .unwrap_or_else(|| "-".into());
    let plane = match &st.data_plane {
        DataPlane::Sidecar => "sidecar".to_string(),
        DataPlane::SidecarRevision { revision } => format!("sidecar ({revision})"),
        DataPlane::Ambient => match &st.waypoint {
            Some(w) => format!("ambient (waypoint {}/{})", w.namespace, w.name),
            None => "ambient (no waypoint)".to_string(),
        },
    };
    out.write_str(&table(
        &["NAMESPACE", "MESH NAMESPACE", "PHASE", "WEIGHT", "MODE", "SCHEDULE"],
        vec![vec![s.namespace.clone(), s.mesh_namespace.clone(), st.phase.to_string(), pct(st.weight), plane, schedule]],
    ))?;
    if !s.routes.is_empty() {
        let rows = s
            .routes
            .iter()
            .map(|r| {
                vec![
                    r.service.clone(),
                    match (r.present, r.weight) {
                        (false, _) => "missing".into(),
                        (true, None) => "inconsistent".into(),
                        (true, Some(w)) => format!("{} legacy / {} mesh", pct(100 - w), pct(w)),
                    },
                ]
            })
            .collect();
        out.write_str("\n")?;
        out.write_str(&table(&["SERVICE", "ROUTING"], rows))?;
    }
    if let Some(ext) = &s.external
        && !ext.routes.is_empty()
    {
        let rows = ext
            .routes
            .iter()
            .map(|r| {
                let switched = match ext.switches.iter().find(|sw| sw.source == r.source) {
                    Some(sw) if sw.still_served && r.source.starts_with("HTTPRoute/") => "no: served by its own Gateway".to_string(),
                    Some(sw) if sw.still_served => "no: still served by its controller".to_string(),
                    Some(_) => "looks done: at the gateway's address".to_string(),
                    None => format!("looks done: the {} is gone", r.source.split('/').next().unwrap_or("object")),
                };
                vec![r.source.clone(), r.hosts.join(", "), format!("{}/{}", s.mesh_namespace, r.gateway), switched]
            })
            .collect();
        out.write_str("\n")?;
        out.write_str(&table(&["EXTERNAL", "HOSTS", "ISTIO GATEWAY", "SWITCHED"], rows))?;
    }
    if let Some(ext) = &s.external {
        for n in &ext.notes {
            out.line(format_args!("external: {n}"))?;
        }
    }
    if !st.shared.is_empty() {
        let list: Vec<String> = st.shared.iter().map(|b| format!("{} ({})", b.object, b.services.join(", "))).collect();
        out.write_str("\n")?;
        out.line(format_args!("shared backends (stay in {}): {}", s.namespace, list.join(", ")))?;
    }
    if let Some(last) = st.history.iter().rev().find(|e| !e.gates.is_empty()) {
        out.write_str("\n")?;
        out.line(format_args!("last gates ({} at {} %, {}):", last.at, last.from, last.result))?;
        out.write_str(&table(&["GATE", "RESULT", "OBSERVED", "THRESHOLD", "SOURCE", "DETAIL"], gate_rows(&last.gates)))?;
    }
    if !st.history.is_empty() {
        let rows = st
            .history
            .iter()
            .map(|e| {
                let weight = if e.from == e.to { pct(e.to) } else { format!("{} -> {}", pct(e.from), pct(e.to)) };
                vec![e.at.clone(), e.who.clone(), e.action.clone(), weight, e.result.clone()]
            })
            .collect();
        out.write_str("\n")?;
        out.write_str(&table(&["TIME", "WHO", "ACTION", "WEIGHT", "RESULT"], rows))?;
    }
    out.write_str("\n")?;
    for p in &s.problems {
        out.line(format_args!("problem: {p}"))?;
    }
    out.line(format_args!("next: {}", s.next))?;
    out.flush()?;
    Ok(exit)
}

/// `ns status -A`: one row per namespace with a recorded migration.
pub(super) fn status_all(output: &OutputFlags, all: &[run::Summary]) -> Result<Exit> {
    let mut out = Out::new();
    let exit = if all.iter().any(|s| s.problem.is_some()) { Exit::Findings } else { Exit::Ok };
    if matches!(output.output, OutputFormat::Json | OutputFormat::Yaml) {
        let list = serde_json::json!({"items": all});
        structured(&mut out, output.output, &list)?;
        out.flush()?;
        return Ok(exit);
    }
    if all.is_empty() {
        out.line("no namespace-based migration is recorded in any namespace")?;
        out.flush()?;
        return Ok(exit);
    }
    let rows = all
        .iter()
        .map(|s| match &s.state {
            Some(st) => {
                let last =
                    st.history.last().map(|e| format!("{} {} by {}: {}", e.at, e.action, e.who, e.result)).unwrap_or_else(|| "-".into());
                let phase = if st.pending.is_some() { format!("{} (step unfinished)", st.phase) } else { st.phase.to_string() };
                vec![s.namespace.clone(), s.mesh_namespace.clone(), phase, pct(st.weight), last]
            }
            None => {
                vec![s.namespace.clone(), s.mesh_namespace.clone(), "unreadable".into(), "-".into(), s.problem.clone().unwrap_or_default()]
            }
        })
        .collect();
    out.write_str(&table(&["NAMESPACE", "MESH NAMESPACE", "PHASE", "WEIGHT", "LAST"], rows))?;
    out.flush()?;
    Ok(exit)
}
