//! Certificate checks: the trust bundle is published, readable and keeps verifying SVIDs, and the
//! configured TTLs leave room for rotation. The expiry rules are explained in [`crate::bundle`];
//! they apply to X.509 and JWT authorities alike, the latter only where the form dates them
//! (SPIRE's own JSON: `--bundle` with `spire-server bundle show -output json`, or `--exec`).
//!
//! Where the bundle is: the ConfigMaps server.conf publishes into (BundlePublisher
//! `k8s_configmap`, the official chart's default, writing `bundle.spiffe`; or the older Notifier
//! `k8sbundle`, writing `bundle.crt`), or `spire-bundle` when server.conf names none; every bundle
//! key there is read, whatever its form. A ConfigMap that exists without its key is normal in
//! rendered manifests (the chart creates it empty and the server fills it when it runs) and a
//! problem on a live cluster, where the message names the plugin that should have written it.

use std::time::Duration;

use meshmove_model::inventory::kinds;
use crate::bundle::{self, BundleFormat, TrustBundle};
use crate::catalog;
use meshmove_model::duration::human as show_duration;
use crate::config::ServerConfig;
use crate::context::{BundleState, ServerConfigState, SpireContext, USUAL_BUNDLE_KEYS};
use meshmove_model::findings::{CategoryDef, CategoryUnavailable, CheckDef, Detail, Verdict};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "certificates",
        available: |cx| {
            let config_seen = matches!(cx.server_config, ServerConfigState::Found { .. });
            if cx.bundle.seen() || config_seen || (cx.live() && cx.inventory.has(&kinds::CONFIG_MAP)) {
                Ok(())
            } else {
                Err(CategoryUnavailable::NotInInput(
                    "no trust bundle (pass --bundle or include the spire-bundle ConfigMap) and no server configuration in the input",
                ))
            }
        },
        checks: vec![
            CheckDef::new(&catalog::BUNDLE_PUBLISHED, published),
            CheckDef::new(&catalog::BUNDLE_READABLE, readable),
            CheckDef::new(&catalog::BUNDLE_NOT_EXPIRED, |cx| {
                with_bundle(cx, |b, now, _| [bundle::expired(b, now), bundle::jwt_expired(b, now)].concat())
            })
            .after(&[&catalog::BUNDLE_READABLE]),
            CheckDef::new(&catalog::BUNDLE_VALID_NOW, |cx| with_bundle(cx, |b, now, _| bundle::not_yet_valid(b, now)))
                .after(&[&catalog::BUNDLE_READABLE]),
            CheckDef::new(&catalog::BUNDLE_ONLY_CAS, |cx| with_bundle(cx, |b, _, _| bundle::non_ca(b)))
                .after(&[&catalog::BUNDLE_READABLE]),
            CheckDef::new(&catalog::BUNDLE_ROTATION, |cx| {
                with_bundle(cx, |b, now, ca_ttl| {
                    [bundle::rotation_problems(b, ca_ttl, now), bundle::jwt_rotation_problems(b, ca_ttl, now)].concat()
                })
            })
            .after(&[&catalog::BUNDLE_READABLE]),
            CheckDef::new(&catalog::BUNDLE_TRUST_DOMAIN, trust_domain).after(&[&catalog::BUNDLE_READABLE]),
            CheckDef::new(&catalog::SVID_TTL_FITS, svid_ttl_fits),
        ],
    }
}

fn published(cx: &SpireContext<'_>) -> Verdict {
    let sources = match &cx.bundle {
        BundleState::Given(b) => return Verdict::Pass(vec![Detail::new(format!("bundle given: {}", b.source))]),
        BundleState::Sources(sources) => sources,
    };
    if sources.iter().all(|s| s.object.is_none())
        && let Some(why) = cx.unread(&[&kinds::CONFIG_MAP])
    {
        return Verdict::Skip(why.to_string());
    }
    let (mut problems, mut info, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for s in sources {
        let Some(o) = s.object else {
            let writer = s.targets.first().map_or(String::new(), |t| format!(" (server.conf's {t} writes key {})", t.key));
            if cx.live() && !cx.servers.is_empty() {
                problems.push(Detail::new(format!("{} not found{writer}", s.place)));
            } else {
                skipped.push(format!("{} is not in the input{writer}", s.place));
            }
            continue;
        };
        if !s.read.is_empty() {
            let keys: Vec<&str> = s.read.iter().map(|(k, _)| k.as_str()).collect();
            let by = if s.targets.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            };
            info.push(Detail::on(o, format!("publishes the bundle under {}{by}", keys.join(", "))));
        }
        for (key, target) in &s.empty {
            if cx.live() {
                problems.push(Detail::on(
                    o,
                    format!("has no {key}: server.conf's {target} has not written it; read the SPIRE server's logs"),
                ));
            } else if s.read.is_empty() {
                skipped.push(format!(
                    "{} has no {key} yet: server.conf's {target} writes it when the server runs",
                    o.object_ref()
                ));
            }
        }
        if s.read.is_empty() && s.targets.is_empty() {
            let keys = USUAL_BUNDLE_KEYS.join(", ");
            if cx.live() {
                let why = if cx.server().is_some() {
                    "and server.conf configures no BundlePublisher k8s_configmap or Notifier k8sbundle to write one"
                } else {
                    "and no readable server.conf says which plugin should write one"
                };
                problems.push(Detail::on(o, format!("holds no bundle (none of {keys}), {why}")));
            } else {
                skipped.push(format!("{} holds no bundle yet (none of {keys}): SPIRE writes it when the server runs", o.object_ref()));
            }
        }
    }
    if !problems.is_empty() {
        return Verdict::from_problems(problems);
    }
    if !info.is_empty() {
        return Verdict::Pass(info);
    }
    Verdict::Skip(skipped.join("; "))
}

/// `1 X.509 authority and 2 JWT authorities (SPIFFE bundle, sequence 7, refresh hint 5m)`
fn summary(b: &TrustBundle) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "y" } else { "ies" });
    let mut form = vec![b.format.to_string()];
    if b.format == BundleFormat::SpiffeJson && !b.jwt_authorities.is_empty() {
        // JWKs carry no expiry: SC2501/SC2502 judge JWT authorities only from SPIRE's own JSON.
        form.push("JWT authorities undated".into());
    }
    form.extend(b.sequence.map(|s| format!("sequence {s}")));
    form.extend(b.refresh_hint.map(|h| format!("refresh hint {}", show_duration(h))));
    format!(
        "{} and {} ({})",
        plural(b.certificates.len(), "X.509 authorit"),
        plural(b.jwt_authorities.len(), "JWT authorit"),
        form.join(", ")
    )
}

fn readable(cx: &SpireContext<'_>) -> Verdict {
    let sources = match &cx.bundle {
        BundleState::Given(b) => return Verdict::Pass(vec![Detail::new(format!("{}: {}", b.source, summary(b)))]),
        BundleState::Sources(sources) => sources,
    };
    let (mut problems, mut info) = (Vec::new(), Vec::new());
    for s in sources {
        let Some(o) = s.object else { continue };
        for (key, parsed) in &s.read {
            match parsed {
                Err(e) => problems.push(Detail::on(o, e.to_string())),
                Ok(b) => info.push(Detail::on(o, format!("{key}: {}", summary(b)))),
            }
        }
    }
    if problems.is_empty() && info.is_empty() {
        return Verdict::Skip("no trust bundle available".into());
    }
    Verdict::from_problems_or(problems, info)
}

fn ca_ttl(cx: &SpireContext<'_>) -> Duration {
    cx.server().map_or(crate::config::DEFAULT_CA_TTL, ServerConfig::ca_ttl)
}

/// Run `f` on every readable bundle; each message becomes a detail on the ConfigMap (prefixed
/// with its key) or, for a `--bundle` file, on the input.
fn with_bundle(cx: &SpireContext<'_>, f: impl Fn(&TrustBundle, i64, Duration) -> Vec<String>) -> Verdict {
    let bundles = cx.bundle.bundles();
    if bundles.is_empty() {
        return Verdict::Skip("no readable trust bundle".into());
    }
    let mut problems = Vec::new();
    for (object, key, b) in bundles {
        for m in f(b, cx.now, ca_ttl(cx)) {
            problems.push(match object {
                Some(o) => Detail::on(o, format!("{key}: {m}")),
                None => Detail::new(format!("{}: {m}", b.source)),
            });
        }
    }
    Verdict::from_problems(problems)
}

fn trust_domain(cx: &SpireContext<'_>) -> Verdict {
    let Some(td) = cx.server().and_then(|s| s.trust_domain.clone()) else {
        return Verdict::Skip("the SPIRE server's trust domain is unknown".into());
    };
    with_bundle(cx, |b, _, _| {
        let mut out = bundle::foreign_trust_domains(b, &td);
        if let Some(other) = b.trust_domain.as_deref().filter(|t| *t != td) {
            out.push(format!("the bundle is for trust domain {other}, not {td}"));
        }
        out
    })
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
