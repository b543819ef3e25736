//! Registration checks: every meshed pod is selected by exactly one usable ClusterSPIFFEID.
//!
//! The controller manager creates a registration entry for each pod a ClusterSPIFFEID selects (pod
//! selector over the pod's labels, namespace selector over its namespace's labels), skipping
//! namespaces it is told to ignore and ClusterSPIFFEIDs of another class. A pod with no entry never
//! gets an SVID; a pod with two gets two identities (or one masks the other). The controller
//! manager also reports what went wrong in each ClusterSPIFFEID's `status.stats`.

use serde_json::Value;

use meshmove_model::inventory::{Unavailable, kinds};
use crate::catalog;
use crate::context::{SpireContext, Subject};
use meshmove_model::findings::{CategoryDef, CategoryUnavailable, CheckDef, Detail, Verdict};
use crate::template::{RenderError, render_spiffe_id};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "registration",
        available,
        checks: vec![
            CheckDef::new(&catalog::CRD_INSTALLED, crd_installed),
            CheckDef::new(&catalog::SPEC_VALID, spec_valid).after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::CLASS_SERVED, class_served).after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::WORKLOAD_REGISTERED, registered).after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::SINGLE_REGISTRATION, single).after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::NO_RENDER_FAILURES, |cx| {
                stat(cx, "podEntryRenderFailures", "selected pods could not be rendered into an entry")
            })
            .after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::NO_MASKED_ENTRIES, |cx| {
                stat(cx, "entriesMasked", "entries are masked by another ClusterSPIFFEID's identical entries")
            })
            .after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::NO_ENTRY_FAILURES, |cx| {
                stat(cx, "entryFailures", "entries could not be created or updated on the SPIRE server")
            })
            .after(&[&catalog::CRD_INSTALLED]),
        ],
    }
}

/// Shared by the registration and identity categories.
pub fn available(cx: &SpireContext<'_>) -> Result<(), CategoryUnavailable> {
    cx.subjects_available()?;
    match cx.ids_availability() {
        None => Ok(()),
        Some(Unavailable::NotServed) if cx.live() => Ok(()),
        Some(why) if why.is_read_failure() => Err(CategoryUnavailable::Unread { kind: &kinds::CLUSTER_SPIFFE_ID, why }),
        Some(_) => Err(CategoryUnavailable::NotInInput("no ClusterSPIFFEID in the input")),
    }
}

/// On a live cluster, whether the ClusterSPIFFEID CRD is not served.
pub fn crd_missing(cx: &SpireContext<'_>) -> bool {
    cx.live() && cx.ids_availability() == Some(Unavailable::NotServed)
}

fn crd_installed(cx: &SpireContext<'_>) -> Verdict {
    if crd_missing(cx) {
        return Verdict::Fail(vec![Detail::new(
            "clusterspiffeids.spire.spiffe.io is not served: spire-controller-manager is not installed",
        )]);
    }
    Verdict::Pass(vec![Detail::new(format!("{} ClusterSPIFFEID(s)", cx.ids.len()))])
}

fn spec_valid(cx: &SpireContext<'_>) -> Verdict {
    Verdict::from_problems(
        cx.ids.iter().flat_map(|id| id.invalid.iter().map(|p| Detail::on(id.object, p.clone()))).collect(),
    )
}

fn class_served(cx: &SpireContext<'_>) -> Verdict {
    let Some(ctrl) = cx.controller_config() else {
        return Verdict::Skip("the controller manager configuration is not in the input".into());
    };
    let serves = match (&ctrl.class_name, ctrl.watch_classless) {
        (Some(c), true) => format!("className {c} and classless resources"),
        (Some(c), false) => format!("className {c} only"),
        (None, _) => "classless resources only".to_string(),
    };
    Verdict::from_problems(
        cx.ids
            .iter()
            .filter(|id| !id.served)
            .map(|id| {
                let class = id.class_name.as_deref().map_or("no className".to_string(), |c| format!("className {c}"));
                Detail::on(id.object, format!("has {class}; the controller manager reconciles {serves}"))
            })
            .collect(),
    )
}

/// Names of ClusterSPIFFEIDs by index.
fn names(cx: &SpireContext<'_>, ids: &[usize]) -> String {
    ids.iter().map(|&i| cx.ids[i].object.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Why a subject has no entry, in words.
pub fn unregistered_reason(cx: &SpireContext<'_>, i: usize) -> String {
    let (s, reg) = (&cx.subjects[i], &cx.registrations[i]);
    if let Some(p) = &reg.ignored_by {
        return format!("namespace {} is ignored by the controller manager (ignoreNamespaces `{p}`)", s.namespace);
    }
    if !reg.unusable.is_empty() {
        return format!(
            "selected only by ClusterSPIFFEID {}, which the controller manager does not reconcile (className or invalid spec)",
            names(cx, &reg.unusable)
        );
    }
    format!("no ClusterSPIFFEID selects its pods in namespace {}", s.namespace)
}

fn registered(cx: &SpireContext<'_>) -> Verdict {
    let problems = (0..cx.subjects.len())
        .filter(|&i| cx.registrations[i].ids.is_empty())
        .map(|i| Detail::on(cx.subjects[i].workload, unregistered_reason(cx, i)))
        .collect();
    let info = vec![Detail::new(format!("{} meshed pod(s) or pod template(s)", cx.subjects.len()))];
    Verdict::from_problems_or(problems, info)
}

/// Render a subject's ID from one ClusterSPIFFEID, or say why it does not render.
pub fn render(cx: &SpireContext<'_>, s: &Subject<'_>, id: usize) -> Result<String, RenderError> {
    render_spiffe_id(&cx.ids[id].template, &cx.template_data(s))
}

fn single(cx: &SpireContext<'_>) -> Verdict {
    let mut problems = Vec::new();
    for (s, reg) in cx.subjects.iter().zip(&cx.registrations).filter(|(_, r)| r.ids.len() > 1) {
        let rendered: Vec<String> = reg
            .ids
            .iter()
            .map(|&i| format!("{} → {}", cx.ids[i].object.name, render(cx, s, i).unwrap_or_else(|e| format!("({e})"))))
            .collect();
        let distinct = {
            // Rendered IDs, or why not in parentheses (never a `spiffe://` ID).
            let mut ids: Vec<String> =
                reg.ids.iter().map(|&i| render(cx, s, i).unwrap_or_else(|e| format!("({e})"))).collect();
            ids.sort();
            ids.dedup();
            ids.len()
        };
        let consequence = if distinct == 1 {
            "they render the same entry, so all but the oldest ClusterSPIFFEID are masked"
        } else {
            "the pods get several SVIDs and istio-proxy uses whichever the agent sends first"
        };
        problems.push(Detail::on(s.workload, format!("selected by {}; {consequence}", rendered.join(", "))));
    }
    Verdict::from_problems(problems)
}

fn stat(cx: &SpireContext<'_>, field: &str, what: &str) -> Verdict {
    let with_status: Vec<_> = cx.ids.iter().filter(|id| id.object.value.pointer("/status/stats").is_some()).collect();
    if with_status.is_empty() {
        return Verdict::Skip("no ClusterSPIFFEID has status.stats (manifests, or not reconciled yet)".into());
    }
    let n = |o: &Value, f: &str| o.pointer(&format!("/status/stats/{f}")).and_then(Value::as_i64).unwrap_or(0);
    Verdict::from_problems(
        with_status
            .iter()
            .filter(|id| n(&id.object.value, field) > 0)
            .map(|id| {
                let v = &id.object.value;
                Detail::on(
                    id.object,
                    format!(
                        "{} {what} (status.stats.{field}; {} pod(s) selected, {} entries to set)",
                        n(v, field),
                        n(v, "podsSelected"),
                        n(v, "entriesToSet")
                    ),
                )
            })
            .collect(),
    )
}
