//! Certificate checks: the trust bundle is published, readable and keeps verifying SVIDs, and the
//! configured TTLs leave room for rotation. The expiry rule is explained in [`crate::bundle`].

use std::time::Duration;

use meshmove_model::inventory::kinds;
use crate::bundle::{self, BundleFormat};
use crate::catalog;
use meshmove_model::duration::show as show_duration;
use crate::config::ServerConfig;
use crate::context::{BundleState, ServerConfigState, SpireContext};
use crate::model::{CategoryDef, CheckDef, Detail, Verdict};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "certificates",
        available: |cx| {
            let bundle_seen = !matches!(cx.bundle, BundleState::Missing { .. });
            let config_seen = matches!(cx.server_config, ServerConfigState::Found { .. });
            if bundle_seen || config_seen || (cx.live() && cx.inventory.has(&kinds::CONFIG_MAP)) {
                Ok(())
            } else {
                Err("no trust bundle (pass --bundle or include the spire-bundle ConfigMap) and no server configuration in the input".into())
            }
        },
        checks: vec![
            CheckDef::new(&catalog::BUNDLE_PUBLISHED, published),
            CheckDef::new(&catalog::BUNDLE_READABLE, readable),
            CheckDef::new(&catalog::BUNDLE_NOT_EXPIRED, |cx| with_bundle(cx, |b, now, _| bundle::expired(b, now))),
            CheckDef::new(&catalog::BUNDLE_VALID_NOW, |cx| with_bundle(cx, |b, now, _| bundle::not_yet_valid(b, now))),
            CheckDef::new(&catalog::BUNDLE_ONLY_CAS, |cx| with_bundle(cx, |b, _, _| bundle::non_ca(b))),
            CheckDef::new(&catalog::BUNDLE_ROTATION, |cx| {
                with_bundle(cx, |b, now, ca_ttl| bundle::rotation_problems(b, ca_ttl, now))
            }),
            CheckDef::new(&catalog::BUNDLE_TRUST_DOMAIN, trust_domain),
            CheckDef::new(&catalog::SVID_TTL_FITS, svid_ttl_fits),
        ],
    }
}

fn published(cx: &SpireContext<'_>) -> Verdict {
    if matches!(cx.bundle, BundleState::Missing { .. })
        && let Some(why) = cx.unread(&[&kinds::CONFIG_MAP])
    {
        return Verdict::Skip(why);
    }
    match &cx.bundle {
        BundleState::Given(b) => Verdict::Pass(vec![Detail::new(format!("bundle given: {}", b.source))]),
        BundleState::Found { object, key, .. } => {
            Verdict::Pass(vec![Detail::on(object, format!("publishes the bundle under {key}"))])
        }
        BundleState::Empty { object, key } if cx.live() => Verdict::Fail(vec![Detail::on(
            object,
            format!("has no {key}: is the server's k8sbundle notifier running?"),
        )]),
        BundleState::Missing { looked_for } if cx.live() && !cx.servers.is_empty() => {
            Verdict::Fail(vec![Detail::new(format!("{looked_for} not found"))])
        }
        BundleState::Empty { object, key } => {
            Verdict::Skip(format!("{} has no {key} yet (SPIRE fills it at run time)", object.object_ref()))
        }
        BundleState::Missing { looked_for } => Verdict::Skip(format!("{looked_for} is not in the input")),
    }
}

fn readable(cx: &SpireContext<'_>) -> Verdict {
    match &cx.bundle {
        BundleState::Found { object, parsed: Err(e), .. } => Verdict::Fail(vec![Detail::on(object, e.to_string())]),
        _ => match cx.bundle.bundle() {
            Some(b) => {
                let form = match b.format {
                    BundleFormat::Pem => "PEM".to_string(),
                    BundleFormat::SpiffeJson => format!(
                        "SPIFFE bundle{}{}",
                        b.sequence.map_or(String::new(), |s| format!(", sequence {s}")),
                        b.refresh_hint.map_or(String::new(), |h| format!(", refresh hint {}", show_duration(h)))
                    ),
                };
                Verdict::Pass(vec![Detail::new(format!(
                    "{}: {} certificate(s), {form}",
                    b.source,
                    b.certificates.len()
                ))])
            }
            None => Verdict::Skip("no trust bundle available".into()),
        },
    }
}

fn ca_ttl(cx: &SpireContext<'_>) -> Duration {
    cx.server().map_or(crate::config::DEFAULT_CA_TTL, ServerConfig::ca_ttl)
}

fn with_bundle(cx: &SpireContext<'_>, f: impl Fn(&bundle::TrustBundle, i64, Duration) -> Vec<String>) -> Verdict {
    let Some(b) = cx.bundle.bundle() else { return Verdict::Skip("no readable trust bundle".into()) };
    let object = match &cx.bundle {
        BundleState::Found { object, .. } => Some(*object),
        _ => None,
    };
    let detail = |m: String| match object {
        Some(o) => Detail::on(o, m),
        None => Detail::new(format!("{}: {m}", b.source)),
    };
    Verdict::from_problems(f(b, cx.now, ca_ttl(cx)).into_iter().map(detail).collect())
}

fn trust_domain(cx: &SpireContext<'_>) -> Verdict {
    let Some(td) = cx.server().and_then(|s| s.trust_domain.clone()) else {
        return Verdict::Skip("the SPIRE server's trust domain is unknown".into());
    };
    with_bundle(cx, |b, _, _| bundle::foreign_trust_domains(b, &td))
}

fn svid_ttl_fits(cx: &SpireContext<'_>) -> Verdict {
    let Some(server) = cx.server() else {
        return Verdict::Skip("the server configuration is not available".into());
    };
    let ServerConfigState::Found { object, .. } = &cx.server_config else {
        return Verdict::Skip("the server configuration is not available".into());
    };
    let (ca, svid) = (server.ca_ttl(), server.x509_svid_ttl());
    let max = bundle::activation_window(ca);
    let src = |set: bool| if set { "" } else { " (default)" };
    let info = vec![
        Detail::on(
            object,
            format!(
                "X509-SVID TTL {}{}: agents renew SVIDs when half their lifetime is left, about every {}",
                show_duration(svid),
                src(server.x509_svid_ttl.is_some()),
                show_duration(svid / 2)
            ),
        ),
        Detail::on(
            object,
            format!(
                "CA TTL {}{}: the next CA is prepared {} and activated {} before the current one expires",
                show_duration(ca),
                src(server.ca_ttl.is_some()),
                show_duration(bundle::preparation_window(ca)),
                show_duration(max)
            ),
        ),
    ];
    let mut problems = Vec::new();
    if svid > max {
        problems.push(Detail::on(
            object,
            format!(
                "default_x509_svid_ttl {} exceeds {} (ca_ttl/6, at most 7 days): SVIDs are cut short at CA rotation",
                show_duration(svid),
                show_duration(max)
            ),
        ));
    }
    for id in &cx.ids {
        if let Some(ttl) = id.ttl.filter(|t| *t > max) {
            problems.push(Detail::on(
                id.object,
                format!("spec.ttl {} exceeds {} (ca_ttl/6, at most 7 days)", show_duration(ttl), show_duration(max)),
            ));
        }
    }
    Verdict::from_problems_or(problems, info)
}
