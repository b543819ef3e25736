//! `enable --spire`: before the pods are restarted with Istio's `spire` injection template, the
//! cluster must be able to give them SPIFFE identities. The checks are spire-check's own
//! (`meshmove_spire::check`, over what `kubectl spire-check` reads), run on the cluster as the
//! plan leaves it: the namespace labelled for injection and the pod templates carrying the
//! template request, their pods taken as the restart will make them
//! (`SpireOptions::restarting_namespace`). A failed check refuses the step (exit 1) naming the
//! checks, unless `--allow-spire-check-failures`.

use anyhow::Result;
use meshmove_cli::render::structured;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat, SourceFlags, analysis};
use meshmove_kube::plan::{Plan, Target};
use meshmove_migration::inplace::enable::{self, SpireRequest};
use meshmove_model::findings::check::Outcome;
use meshmove_model::inventory::{Inventory, Kind, kinds};
use meshmove_spire::{self as spire, SpireOptions};
use serde_json::json;

/// What spire-check reads, read the way it reads it: its kinds in every namespace, ConfigMaps by
/// reference (those the workloads mount and the configuration names, one GET each).
fn load(kube: &KubeFlags, options: &SpireOptions) -> Result<Inventory> {
    let mut everywhere = kube.clone();
    everywhere.all_namespaces = true;
    let namespaced: Vec<&'static Kind> = spire::KINDS.iter().copied().filter(|k| k.namespaced).collect();
    analysis::load_inventory_by_reference(&everywhere, &SourceFlags::default(), spire::KINDS, &namespaced, &[&kinds::CONFIG_MAP], |inventory| {
        spire::config_maps_to_read(inventory, options).into_iter().map(|(ns, name)| (&kinds::CONFIG_MAP, ns, name)).collect()
    })
}

/// `inventory` as `plan` leaves it: the fields its changes set on the objects it holds.
fn planned(inventory: &Inventory, plan: &Plan) -> Inventory {
    let changed: Vec<_> = inventory
        .objects()
        .iter()
        .filter_map(|o| {
            let target = Target::of(&o.value);
            let changes: Vec<_> = plan.changes.iter().filter(|c| c.target().as_ref() == Some(&target)).collect();
            if changes.is_empty() {
                return None;
            }
            let mut o = o.clone();
            for c in changes {
                c.set_fields_on(&mut o.value);
            }
            Some(o)
        })
        .collect();
    inventory.overlay(changed)
}

/// Run spire-check's checks for namespace `ns` as the plan leaves it. Returns the exit code when
/// `enable` refuses; warnings and what the step leaves alone are notes.
pub fn gate(kube: &KubeFlags, enable_inventory: &Inventory, ns: &str, plan: &Plan, allow: bool, output: &OutputFlags) -> Result<Option<Exit>> {
    let options = SpireOptions { workload_namespace: Some(ns.to_string()), restarting_namespace: Some(ns.to_string()), ..SpireOptions::default() };
    let after = planned(&load(kube, &options)?, plan);
    let labels_after = after.get(&kinds::NAMESPACE, None, ns).map(meshmove_migration::inplace::labels_of).unwrap_or_default();
    let requests = enable::spire_requests(enable_inventory, ns, &labels_after);
    for r in &requests {
        if let SpireRequest::Kept { workload, templates } = r {
            eprintln!(
                "enable: {}/{} keeps its own inject.istio.io/templates={templates}: its pods get no SPIRE identity from this step",
                workload.kind, workload.name
            );
        }
    }
    if requests.is_empty() {
        eprintln!("enable: --spire: no workload of namespace {ns} is injected, so none asks for the spire template");
    }
    let report = spire::check(&after, &options).finish(&[]);
    let failed = |o: Outcome| report.checks.iter().filter(move |c| c.result == o);
    let line = |c: &meshmove_model::findings::check::Check| {
        let why: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.code == c.code)
            .map(|f| match &f.object {
                Some(o) => format!("{o}: {}", f.message),
                None => f.message.clone(),
            })
            .collect();
        format!("  {} {} ({}): {}", c.code, c.description, c.category, if why.is_empty() { "failed".to_string() } else { why.join("; ") })
    };
    for c in failed(Outcome::Warning) {
        meshmove_cli::log::note(format_args!("spire-check warning:\n{}", line(c)));
    }
    let errors: Vec<String> = failed(Outcome::Error).map(line).collect();
    if errors.is_empty() {
        let passed = report.checks.iter().filter(|c| c.result == Outcome::Ok).count();
        eprintln!("enable: SPIRE can serve namespace {ns}: {passed} of spire-check's checks pass for the pods as the restart will make them");
        return Ok(None);
    }
    if allow {
        eprintln!("enable: SPIRE's checks fail for namespace {ns}; going ahead (--allow-spire-check-failures):\n{}", errors.join("\n"));
        return Ok(None);
    }
    eprintln!(
        "enable: SPIRE cannot give the pods of namespace {ns} the identities Istio expects, nothing changed; these of spire-check's checks fail:\n{}\nfix these (`kubectl spire-check -n {ns}` explains each), or pass --allow-spire-check-failures to go ahead anyway",
        errors.join("\n")
    );
    if !matches!(output.output, OutputFormat::Table | OutputFormat::Wide) {
        let codes: Vec<&str> = failed(Outcome::Error).map(|c| c.code).collect();
        let blockers: Vec<_> = report.findings.iter().filter(|f| codes.contains(&f.code)).collect();
        let mut out = Out::new();
        structured(&mut out, output.output, &json!({"namespace": ns, "ready": false, "blockers": blockers}))?;
        out.flush()?;
    }
    Ok(Some(Exit::Findings))
}
