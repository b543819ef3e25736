//! Judging a bundle's authorities against SPIRE's rotation schedule (see the parent module):
//! expired authorities, and the newest of each kind inside its activation window without a
//! successor.

use super::*;

/// SPIRE prepares the next CA this long before the current one expires.
pub fn preparation_window(lifetime: Duration) -> Duration {
    (lifetime / 2).min(Duration::from_secs(30 * 86_400))
}

/// SPIRE activates the next CA this long before the current one expires.
pub fn activation_window(lifetime: Duration) -> Duration {
    (lifetime / 6).min(Duration::from_secs(7 * 86_400))
}

/// The warning window for roots that are not rotated by SPIRE.
pub const LONG_LIVED_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// Whether a certificate is too long-lived to be one of SPIRE's own rotating CAs.
pub fn is_long_lived(cert: &BundleCert, ca_ttl: Duration) -> bool {
    cert.lifetime() > ca_ttl * 2
}

/// Expired certificates.
pub fn expired(bundle: &TrustBundle, now: i64) -> Vec<String> {
    bundle
        .certificates
        .iter()
        .filter(|c| c.not_after <= now)
        .map(|c| format!("certificate {} expired {} ago", c.label(), show_duration(secs(now - c.not_after))))
        .collect()
}

/// Certificates whose validity has not started.
pub fn not_yet_valid(bundle: &TrustBundle, now: i64) -> Vec<String> {
    bundle
        .certificates
        .iter()
        .filter(|c| c.not_before > now)
        .map(|c| format!("certificate {} becomes valid only in {}", c.label(), show_duration(secs(c.not_before - now))))
        .collect()
}

/// Certificates that are not CAs.
pub fn non_ca(bundle: &TrustBundle) -> Vec<String> {
    bundle
        .certificates
        .iter()
        .filter(|c| !c.is_ca)
        .map(|c| format!("certificate {} is not a CA certificate (basicConstraints CA:FALSE or missing)", c.label()))
        .collect()
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// The rotation rule of the module docs: problems with the newest CA of each kind (rotating or
/// long-lived) that is inside its window with no later-expiring CA of the same kind to take over.
pub fn rotation_problems(bundle: &TrustBundle, ca_ttl: Duration, now: i64) -> Vec<String> {
    let live: Vec<&BundleCert> =
        bundle.certificates.iter().filter(|c| c.is_ca && c.not_after > now && c.not_before <= now).collect();
    let mut out = Vec::new();
    for long_lived in [false, true] {
        let newest = live.iter().filter(|c| is_long_lived(c, ca_ttl) == long_lived).max_by_key(|c| c.not_after);
        let Some(c) = newest else { continue };
        let has_successor = bundle.certificates.iter().any(|o| {
            o.is_ca && o.index != c.index && o.not_after > c.not_after && is_long_lived(o, ca_ttl) == long_lived
        });
        if has_successor {
            continue;
        }
        let remaining = secs(c.not_after - now);
        let window = if long_lived { LONG_LIVED_WINDOW } else { activation_window(c.lifetime()) };
        if remaining < window {
            let why = if long_lived {
                format!("a root that SPIRE does not rotate; renew it at least {} ahead", show_duration(window))
            } else {
                format!(
                    "SPIRE should have published its successor {} before expiry and activated it {} before expiry",
                    show_duration(preparation_window(c.lifetime())),
                    show_duration(window)
                )
            };
            out.push(format!(
                "certificate {} expires in {} and the bundle has no successor: {why}",
                c.label(),
                show_duration(remaining)
            ));
        }
    }
    out
}

/// Certificates whose SPIFFE ID names another trust domain than `trust_domain`.
pub fn foreign_trust_domains(bundle: &TrustBundle, trust_domain: &str) -> Vec<String> {
    bundle
        .certificates
        .iter()
        .filter_map(|c| {
            let td = c.trust_domain()?;
            (td != trust_domain)
                .then(|| format!("certificate {} names trust domain {td}, not {trust_domain}", c.label()))
        })
        .collect()
}

/// JWT authorities that have expired (only SPIRE's JSON dates them).
pub fn jwt_expired(bundle: &TrustBundle, now: i64) -> Vec<String> {
    bundle
        .jwt_authorities
        .iter()
        .filter_map(|k| {
            let t = k.expires_at.filter(|t| *t <= now)?;
            Some(format!(
                "{} expired {} ago: JWT-SVIDs it signed no longer verify",
                k.label(),
                show_duration(secs(now - t))
            ))
        })
        .collect()
}

/// The rotation rule for JWT authorities: the newest dated key inside its activation window
/// (`ca_ttl`/6, at most 7 days: SPIRE gives each JWT key a lifetime of `ca_ttl`) with no
/// later-expiring key to take over.
pub fn jwt_rotation_problems(bundle: &TrustBundle, ca_ttl: Duration, now: i64) -> Vec<String> {
    let dated = bundle.jwt_authorities.iter().filter_map(|k| Some((k, k.expires_at?)));
    let Some((newest, expires)) = dated.filter(|(_, t)| *t > now).max_by_key(|(_, t)| *t) else {
        return Vec::new();
    };
    let window = activation_window(ca_ttl);
    let remaining = secs(expires - now);
    if remaining >= window {
        return Vec::new();
    }
    vec![format!(
        "{} expires in {} and the bundle has no successor: SPIRE should have published the next JWT key {} before expiry and activated it {} before expiry",
        newest.label(),
        show_duration(remaining),
        show_duration(preparation_window(ca_ttl)),
        show_duration(window)
    )]
}
