//! Istio integration checks: sidecars actually talk to SPIRE.
//!
//! istio-proxy takes its certificate from SPIRE only when the SPIFFE Workload API socket is
//! mounted at its workload socket path (`/run/secrets/workload-spiffe-uds` in Istio's
//! integration); otherwise it silently falls back to istiod's CA, and such workloads cannot verify
//! SPIRE-issued peers. Istio's documented way is a custom injection template named `spire` that
//! adds a `csi.spiffe.io` volume, which pods request with `inject.istio.io/templates:
//! "sidecar,spire"`. The known failure mode this category also names: a pod that mounts the socket
//! but has no registration entry waits for an SVID that never comes and stays unready.
//!
//! Offline, a pod template that requests the `spire` template counts as mounting the socket when
//! the injector's `spire` template does; a live, already injected pod must carry the mount itself.

use crate::catalog;
use crate::config::template_mounts_socket;
use crate::context::{Dataplane, SpireContext, Subject};
use meshmove_model::findings::{CategoryDef, CategoryUnavailable, CheckDef, Detail, Verdict};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "istio-integration",
        available: |cx| {
            if !cx.injectors.is_empty() || sidecars(cx).next().is_some() {
                Ok(())
            } else {
                Err(CategoryUnavailable::NotInInput("no Istio sidecar injector configuration and no sidecar workloads in the input"))
            }
        },
        checks: vec![
            CheckDef::new(&catalog::SPIRE_TEMPLATE, spire_template),
            CheckDef::new(&catalog::SPIRE_TEMPLATE_MOUNTS, template_mounts).after(&[&catalog::SPIRE_TEMPLATE]),
            CheckDef::new(&catalog::WORKLOAD_SOCKET, workload_socket),
            CheckDef::new(&catalog::OPT_IN_REGISTERED, opt_in_registered).after(&[&catalog::CRD_INSTALLED]),
            CheckDef::new(&catalog::TEMPLATE_WITH_SIDECAR, template_with_sidecar),
        ],
    }
}

fn sidecars<'c, 'a>(cx: &'c SpireContext<'a>) -> impl Iterator<Item = (usize, &'c Subject<'a>)> {
    cx.subjects.iter().enumerate().filter(|(_, s)| s.dataplane == Dataplane::Sidecar)
}

fn spire_template(cx: &SpireContext<'_>) -> Verdict {
    if cx.injectors.is_empty() {
        return Verdict::Skip("no istio-sidecar-injector ConfigMap in the input".into());
    }
    let mut problems = Vec::new();
    let mut info = Vec::new();
    for (o, templates) in &cx.injectors {
        match templates {
            Err(e) => problems.push(Detail::on(o, e.to_string())),
            Ok(c) if c.templates.contains_key("spire") => info.push(Detail::on(o, "has the spire template")),
            Ok(c) => problems.push(Detail::on(
                o,
                format!(
                    "templates are {}; no spire template",
                    if c.templates.is_empty() {
                        "the built-in ones".to_string()
                    } else {
                        c.templates.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            )),
        }
    }
    Verdict::from_problems_or(problems, info)
}

fn template_mounts(cx: &SpireContext<'_>) -> Verdict {
    let with_template: Vec<_> =
        cx.injectors.iter().filter_map(|(o, c)| Some((o, c.as_ref().ok()?.templates.get("spire")?))).collect();
    if with_template.is_empty() {
        return Verdict::Skip("no spire injection template found".into());
    }
    let path = &cx.options.socket_path;
    Verdict::from_problems(
        with_template
            .into_iter()
            .filter_map(|(o, t)| {
                template_mounts_socket(t, path).err().map(|e| Detail::on(o, format!("the spire template {e}")))
            })
            .collect(),
    )
}

/// Whether the injector serving a subject has a `spire` template that mounts the socket (true
/// when no injector is known: then the template cannot be judged and is given the benefit of the
/// doubt).
fn injector_provides_socket(cx: &SpireContext<'_>, s: &Subject<'_>) -> bool {
    if cx.injectors.is_empty() {
        return true;
    }
    cx.injector_for(s)
        .and_then(|(_, c)| c.as_ref().ok())
        .and_then(|c| c.templates.get("spire"))
        .is_some_and(|t| template_mounts_socket(t, &cx.options.socket_path).is_ok())
}

/// Whether a sidecar pod gets the Workload API socket, by itself or through the spire template.
pub fn gets_socket(cx: &SpireContext<'_>, s: &Subject<'_>) -> bool {
    s.mounts_socket(&cx.options.socket_path)
        || (!s.has_proxy() && s.opts_into_spire_template() && injector_provides_socket(cx, s))
}

fn workload_socket(cx: &SpireContext<'_>) -> Verdict {
    let path = &cx.options.socket_path;
    let problems = sidecars(cx)
        .filter(|(_, s)| !gets_socket(cx, s))
        .map(|(_, s)| {
            let why = if s.opts_into_spire_template() && s.has_proxy() {
                format!("requests the spire template but its istio-proxy has no csi.spiffe.io volume at {path}: it was injected without the template; restart it")
            } else if s.opts_into_spire_template() {
                "requests the spire template, but the injector has no spire template that mounts the socket".to_string()
            } else {
                format!("mounts no csi.spiffe.io volume at {path} and does not request the spire template: istio-proxy falls back to istiod's CA")
            };
            Detail::on(s.workload, why)
        })
        .collect();
    Verdict::from_problems(problems)
}

fn opt_in_registered(cx: &SpireContext<'_>) -> Verdict {
    if super::registration::available(cx).is_err() {
        return Verdict::Skip("registration cannot be checked (no ClusterSPIFFEIDs or pods in the input)".into());
    }
    let problems = sidecars(cx)
        .filter(|(i, s)| gets_socket(cx, s) && cx.registrations[*i].ids.is_empty())
        .map(|(i, s)| {
            Detail::on(
                s.workload,
                format!(
                    "will hang unready: no registration entry ({})",
                    super::registration::unregistered_reason(cx, i)
                ),
            )
        })
        .collect();
    Verdict::from_problems(problems)
}

fn template_with_sidecar(cx: &SpireContext<'_>) -> Verdict {
    Verdict::from_problems(
        cx.subjects
            .iter()
            .filter_map(|s| {
                let t = s.requested_templates()?;
                let spire = t.iter().any(|t| t == "spire");
                let proxy = t.iter().any(|t| t == "sidecar" || t == "gateway");
                (spire && !proxy).then(|| {
                    Detail::on(s.workload, format!("inject.istio.io/templates is \"{}\"; add sidecar", t.join(",")))
                })
            })
            .collect(),
    )
}
