//! Identity checks: each registered pod's SPIFFE ID is the one Istio expects.
//!
//! Istio derives a workload's identity from its namespace and service account and accepts only
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`; authorization policies and
//! peer verification are written against that form. A ClusterSPIFFEID that renders anything else
//! (the pod name, a label, a hard-coded trust domain) issues SVIDs Istio rejects. The same
//! computation feeds the `spire-check identities` table.

use serde::Serialize;

use meshmove_model::inventory::ObjectRef;
use crate::catalog;
use crate::context::SpireContext;
use meshmove_model::findings::{CategoryDef, CheckDef, Detail, Verdict};
use crate::template::{RenderError, render_spiffe_id, split_spiffe_id};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "identities",
        available: super::registration::available,
        checks: vec![
            CheckDef::new(&catalog::ID_RENDERS, |cx| from_rows(cx, IdentityStatus::RenderFailed))
                .after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::ID_ISTIO_FORM, |cx| from_rows(cx, IdentityStatus::NotIstioForm))
                .after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::ID_TRUST_DOMAIN, |cx| from_rows(cx, IdentityStatus::WrongTrustDomain))
                .after(&[&catalog::CRD_INSTALLED]),
        ],
    }
}

/// How a workload's identity compares with Istio's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityStatus {
    /// Rendered exactly as Istio expects.
    Ok,
    /// The template did not render to a valid SPIFFE ID.
    RenderFailed,
    /// Valid, but not `/ns/<namespace>/sa/<service-account>`.
    NotIstioForm,
    /// Istio's path, another trust domain.
    WrongTrustDomain,
    /// No ClusterSPIFFEID registers it.
    Unregistered,
}

/// One row of `spire-check identities`: a workload and the ID one ClusterSPIFFEID gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRow {
    /// `kind/namespace/name` of the top-level workload.
    pub workload: ObjectRef,
    pub service_account: String,
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
    pub expected_spiffe_id: String,
    /// The ClusterSPIFFEID that produces the entry, if any.
    pub cluster_spiffe_id: Option<String>,
    /// The rendered ID, when it rendered.
    pub rendered: Option<String>,
    pub status: IdentityStatus,
    /// Why the status is not ok, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One row per (workload, ClusterSPIFFEID) for every meshed workload, plus one row for each
/// unregistered workload. Live pods of one workload that render the same are one row.
pub fn rows(cx: &SpireContext<'_>) -> Vec<IdentityRow> {
    let (td, _) = cx.trust_domain();
    let mut out = Vec::new();
    for (i, (s, reg)) in cx.subjects.iter().zip(&cx.registrations).enumerate() {
        let expected = format!("spiffe://{td}/ns/{}/sa/{}", s.namespace, s.service_account);
        let base = IdentityRow {
            workload: s.workload.object_ref(),
            service_account: s.service_account.clone(),
            expected_spiffe_id: expected.clone(),
            cluster_spiffe_id: None,
            rendered: None,
            status: IdentityStatus::Unregistered,
            note: None,
        };
        if reg.ids.is_empty() {
            out.push(IdentityRow { note: Some(super::registration::unregistered_reason(cx, i)), ..base });
            continue;
        }
        for &id in &reg.ids {
            let name = Some(cx.ids[id].object.name.clone());
            let row = match render_spiffe_id(&cx.ids[id].template, &cx.template_data(s)) {
                Err(e) => IdentityRow {
                    cluster_spiffe_id: name,
                    rendered: match &e {
                        RenderError::InvalidId { rendered, .. } => Some(rendered.clone()),
                        _ => None,
                    },
                    status: IdentityStatus::RenderFailed,
                    note: Some(e.to_string()),
                    ..base.clone()
                },
                Ok(rendered) => {
                    let (status, note) = compare(&rendered, &expected, &td);
                    IdentityRow { cluster_spiffe_id: name, rendered: Some(rendered), status, note, ..base.clone() }
                }
            };
            out.push(row);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn compare(rendered: &str, expected: &str, td: &str) -> (IdentityStatus, Option<String>) {
    if rendered == expected {
        return (IdentityStatus::Ok, None);
    }
    let (r_td, r_path) = split_spiffe_id(rendered).unwrap_or(("", ""));
    let (_, e_path) = split_spiffe_id(expected).unwrap_or(("", ""));
    if r_path == e_path {
        return (
            IdentityStatus::WrongTrustDomain,
            Some(format!("renders trust domain {r_td}, the SPIRE trust domain is {td}")),
        );
    }
    (IdentityStatus::NotIstioForm, Some(format!("renders {rendered}; Istio expects {expected}")))
}

fn from_rows(cx: &SpireContext<'_>, status: IdentityStatus) -> Verdict {
    let all = rows(cx);
    let problems = all
        .iter()
        .filter(|r| r.status == status)
        .map(|r| {
            let msg = format!(
                "ClusterSPIFFEID {}: {}",
                r.cluster_spiffe_id.as_deref().unwrap_or("-"),
                r.note.as_deref().unwrap_or("")
            );
            let origin = cx
                .subjects
                .iter()
                .find(|s| s.workload.object_ref() == r.workload)
                .map(|s| s.workload.origin.to_string());
            Detail { object: Some(r.workload.clone()), origin, message: msg }
        })
        .collect();
    let info = if status == IdentityStatus::NotIstioForm {
        let ok = all.iter().filter(|r| r.status == IdentityStatus::Ok).count();
        vec![Detail::new(format!("{ok} workload identities in Istio's form"))]
    } else {
        Vec::new()
    };
    Verdict::from_problems_or(problems, info)
}
