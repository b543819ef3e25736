//! Trust checks: SPIRE, its controller manager and Istio agree on trust domains.
//!
//! Istio verifies peers against its own `meshConfig.trustDomain`; SVIDs from SPIRE carry the
//! server's `trust_domain`. When the two differ every mTLS handshake fails authorization. The
//! controller manager renders `{{ .TrustDomain }}` from its own configuration, which must match
//! the server too. Federation is checked only as far as configuration shows it: every trust domain
//! a ClusterSPIFFEID federates with needs a relationship on the server (a `federates_with` block or
//! a ClusterFederatedTrustDomain), and Istio's extra roots should name known trust domains.

use std::collections::BTreeSet;

use serde_json::Value;

use meshmove_model::inventory::kinds;

use crate::catalog;
use crate::config::ISTIO_DEFAULT_TRUST_DOMAIN;
use crate::context::{ServerConfigState, SpireContext};
use meshmove_model::findings::{CategoryDef, CategoryUnavailable, CheckDef, Detail, Verdict};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "trust",
        available: |cx| {
            if matches!(cx.server_config, ServerConfigState::Found { .. })
                || !cx.meshes.is_empty()
                || cx.controller.is_some()
            {
                Ok(())
            } else {
                Err(CategoryUnavailable::NotInInput("no SPIRE server, controller manager or Istio configuration in the input"))
            }
        },
        checks: vec![
            CheckDef::new(&catalog::MESH_CONFIG_FOUND, mesh_found),
            CheckDef::new(&catalog::TRUST_DOMAIN_MATCH, trust_domain_match),
            CheckDef::new(&catalog::CONTROLLER_TRUST_DOMAIN, controller_trust_domain),
            CheckDef::new(&catalog::FEDERATION_CONFIGURED, federation_configured),
            CheckDef::new(&catalog::FEDERATION_COMPLETE, federation_complete),
            CheckDef::new(&catalog::ISTIO_CA_TRUST_DOMAINS, istio_ca_trust_domains),
        ],
    }
}

fn server_td(cx: &SpireContext<'_>) -> Option<String> {
    cx.server().and_then(|s| s.trust_domain.clone())
}

fn mesh_found(cx: &SpireContext<'_>) -> Verdict {
    if cx.meshes.is_empty() {
        if let Some(why) = cx.unread(&[&kinds::CONFIG_MAP]) {
            return Verdict::Skip(why.to_string());
        }
        if !cx.live() {
            return Verdict::Skip("no istio mesh ConfigMap in the input".into());
        }
        return Verdict::Fail(vec![Detail::new(format!(
            "no ConfigMap istio (or istio-<revision>) with a mesh key; Istio's trust domain is taken as {ISTIO_DEFAULT_TRUST_DOMAIN}"
        ))]);
    }
    Verdict::from_problems_or(
        cx.meshes.iter().filter_map(|(o, m)| m.as_ref().err().map(|e| Detail::on(o, e.to_string()))).collect(),
        cx.meshes
            .iter()
            .filter_map(|(o, m)| m.as_ref().ok().map(|m| Detail::on(o, format!("trust domain {}", m.trust_domain))))
            .collect(),
    )
}

fn trust_domain_match(cx: &SpireContext<'_>) -> Verdict {
    let Some(spire) = server_td(cx) else {
        return Verdict::Skip("the SPIRE server's trust domain is unknown (no readable server.conf)".into());
    };
    let mut problems = Vec::new();
    let mut info = Vec::new();
    if cx.meshes.is_empty() {
        if let Some(why) = cx.unread(&[&kinds::CONFIG_MAP]) {
            return Verdict::Skip(why.to_string());
        }
        if !cx.live() {
            return Verdict::Skip("no istio mesh ConfigMap in the input".into());
        }
        if spire != ISTIO_DEFAULT_TRUST_DOMAIN {
            problems.push(Detail::new(format!(
                "SPIRE trust domain {spire}, Istio's default {ISTIO_DEFAULT_TRUST_DOMAIN} (no mesh config found)"
            )));
        }
    }
    for (o, m) in &cx.meshes {
        let Ok(m) = m else { continue };
        if m.trust_domain == spire {
            info.push(Detail::on(o, format!("trust domain {spire} on both sides")));
            continue;
        }
        let how = if m.trust_domain_set {
            "meshConfig.trustDomain"
        } else {
            "Istio's default (meshConfig.trustDomain unset)"
        };
        let alias = if m.trust_domain_aliases.contains(&spire) {
            " (it is listed in trustDomainAliases, which lets policies match but does not make Istio issue or expect it)"
        } else {
            ""
        };
        problems.push(Detail::on(
            o,
            format!("{how} is {}, the SPIRE server's trust_domain is {spire}{alias}", m.trust_domain),
        ));
    }
    Verdict::from_problems_or(problems, info)
}

fn controller_trust_domain(cx: &SpireContext<'_>) -> Verdict {
    let Some((object, Ok(ctrl))) = &cx.controller else {
        return Verdict::Skip("the controller manager configuration is not in the input (or unreadable)".into());
    };
    let Some(spire) = server_td(cx) else {
        return Verdict::Skip("the SPIRE server's trust domain is unknown".into());
    };
    match &ctrl.trust_domain {
        None => Verdict::Fail(vec![Detail::on(object, "trustDomain is not set (the controller manager requires it)")]),
        Some(td) if *td != spire => Verdict::Fail(vec![Detail::on(
            object,
            format!("trustDomain is {td}, the server's trust_domain is {spire}"),
        )]),
        Some(td) => Verdict::Pass(vec![Detail::on(object, format!("trust domain {td}"))]),
    }
}

/// Trust domains the server federates with: `federates_with` blocks and ClusterFederatedTrustDomains.
fn federated(cx: &SpireContext<'_>) -> BTreeSet<String> {
    let mut tds: BTreeSet<String> = cx.server().map(|s| s.federates_with.keys().cloned().collect()).unwrap_or_default();
    tds.extend(
        cx.inventory
            .of_kind("spire.spiffe.io", "ClusterFederatedTrustDomain")
            .filter_map(|o| o.value.pointer("/spec/trustDomain").and_then(Value::as_str).map(str::to_string)),
    );
    tds
}

fn federation_configured(cx: &SpireContext<'_>) -> Verdict {
    let wanted: Vec<_> = cx.ids.iter().flat_map(|id| id.federates_with.iter().map(move |td| (id, td))).collect();
    if wanted.is_empty() {
        return Verdict::Pass(vec![Detail::new("no ClusterSPIFFEID federates with another trust domain")]);
    }
    if cx.server().is_none() {
        return Verdict::Skip("the server configuration is not available".into());
    }
    let have = federated(cx);
    Verdict::from_problems(
        wanted
            .into_iter()
            .filter(|(_, td)| !have.contains(*td))
            .map(|(id, td)| {
                Detail::on(
                    id.object,
                    format!("federatesWith {td}, but the server has no federation relationship with it"),
                )
            })
            .collect(),
    )
}

fn federation_complete(cx: &SpireContext<'_>) -> Verdict {
    let (Some(server), ServerConfigState::Found { object, .. }) = (cx.server(), &cx.server_config) else {
        return Verdict::Skip("the server configuration is not available".into());
    };
    Verdict::from_problems(
        server
            .federates_with
            .iter()
            .filter_map(|(td, rel)| {
                let missing: Vec<&str> = [
                    rel.bundle_endpoint_url.is_none().then_some("bundle_endpoint_url"),
                    rel.profile.is_none().then_some("bundle_endpoint_profile"),
                ]
                .into_iter()
                .flatten()
                .collect();
                (!missing.is_empty())
                    .then(|| Detail::on(object, format!("federates_with \"{td}\" has no {}", missing.join(" and "))))
            })
            .collect(),
    )
}

fn istio_ca_trust_domains(cx: &SpireContext<'_>) -> Verdict {
    let Some(spire) = server_td(cx) else {
        return Verdict::Skip("the SPIRE server's trust domain is unknown".into());
    };
    let mut known = federated(cx);
    known.insert(spire);
    let mut problems = Vec::new();
    for (o, m) in &cx.meshes {
        let Ok(m) = m else { continue };
        let mut mesh_known = known.clone();
        mesh_known.insert(m.trust_domain.clone());
        mesh_known.extend(m.trust_domain_aliases.iter().cloned());
        for td in &m.ca_certificate_trust_domains {
            if !mesh_known.contains(td) {
                problems.push(Detail::on(o, format!(
                    "caCertificates trusts roots for {td}, which is neither the SPIRE trust domain nor one it federates with"
                )));
            }
        }
    }
    Verdict::from_problems(problems)
}
