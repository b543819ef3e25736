//! Trust bundles: reading them, and judging whether their CAs keep workloads verifiable.
//!
//! SPIRE publishes its trust bundle (the X.509 CAs workloads use to verify each other) through the
//! `k8sbundle` notifier into a ConfigMap (`spire-bundle`, key `bundle.crt`, PEM). A bundle may also
//! come from a file as PEM or as a SPIFFE bundle document (a JWKS whose `x509-svid` keys carry
//! the certificate in `x5c`). Both read into one [`TrustBundle`] of certificate summaries.
//!
//! Expiry needs a rule that suits SPIRE. Its CAs are short-lived (`ca_ttl`, 24h by default) and
//! rotate on a schedule: the next CA is prepared, and published in the bundle, when less than
//! half of the current one's lifetime is left (at most 30 days before expiry), and activated when
//! less than a sixth is left (at most 7 days before). A fixed "expires within 30 days" window would
//! flag every healthy SPIRE CA, so [`rotation_problems`] warns only when the newest CA in the
//! bundle is inside its activation window: by then its successor must have been in the bundle for
//! a third of the CA lifetime, and its absence means rotation has stalled. Certificates living more
//! than twice `ca_ttl` cannot be SPIRE's own rotating CAs (they are upstream or hand-made roots
//! that nobody rotates automatically) and get a fixed 30-day warning window instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use meshmove_model::duration::show as show_duration;

/// How a bundle was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleFormat {
    Pem,
    /// A SPIFFE bundle document (JWKS).
    SpiffeJson,
}

/// What the checks need to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleCert {
    /// 1-based position in the bundle.
    pub index: usize,
    pub subject: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    /// URI SANs of the form `spiffe://...`.
    pub spiffe_ids: Vec<String>,
}

impl BundleCert {
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.not_after - self.not_before).unwrap_or(0))
    }

    /// `#2 (CN=spire, expires 2031-01-01T00:00:00Z)`
    pub fn label(&self) -> String {
        format!(
            "#{} ({}, valid {} to {})",
            self.index,
            self.subject,
            show_time(self.not_before),
            show_time(self.not_after)
        )
    }

    /// The trust domain named by the certificate's SPIFFE ID, if it has one.
    pub fn trust_domain(&self) -> Option<&str> {
        self.spiffe_ids.iter().find_map(|id| super::template::split_spiffe_id(id).map(|(td, _)| td))
    }
}

/// A parsed trust bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundle {
    /// Where it came from (`file bundle.pem`, `ConfigMap/spire/spire-bundle key bundle.crt`).
    pub source: String,
    pub format: BundleFormat,
    pub certificates: Vec<BundleCert>,
    /// `spiffe_refresh_hint` of a SPIFFE bundle document.
    pub refresh_hint: Option<Duration>,
    /// `spiffe_sequence` of a SPIFFE bundle document.
    pub sequence: Option<u64>,
    /// Number of `jwt-svid` keys (not checked, reported).
    pub jwt_keys: usize,
}

/// Why a bundle cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("{origin}: {message}")]
    Unreadable { origin: String, message: String },
    #[error("{origin}: no certificate in the bundle")]
    Empty { origin: String },
}

impl TrustBundle {
    /// Parse a bundle in PEM or SPIFFE bundle JSON form (decided by the first non-blank byte).
    pub fn parse(source: impl Into<String>, bytes: &[u8]) -> Result<TrustBundle, BundleError> {
        let source = source.into();
        let unreadable = |message: String| BundleError::Unreadable { origin: source.clone(), message };
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let mut bundle = TrustBundle {
            source: source.clone(),
            format: BundleFormat::Pem,
            certificates: Vec::new(),
            refresh_hint: None,
            sequence: None,
            jwt_keys: 0,
        };
        let ders: Vec<Vec<u8>> = if first == Some(&b'{') {
            bundle.format = BundleFormat::SpiffeJson;
            let doc: Value = serde_json::from_slice(bytes).map_err(|e| unreadable(format!("not valid JSON: {e}")))?;
            let keys = doc
                .get("keys")
                .and_then(Value::as_array)
                .ok_or_else(|| unreadable("no `keys` list (not a SPIFFE bundle)".into()))?;
            bundle.refresh_hint = doc.get("spiffe_refresh_hint").and_then(Value::as_u64).map(Duration::from_secs);
            bundle.sequence = doc.get("spiffe_sequence").and_then(Value::as_u64);
            let mut ders = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                match key.get("use").and_then(Value::as_str) {
                    Some("x509-svid") => {
                        let x5c = key
                            .get("x5c")
                            .and_then(Value::as_array)
                            .filter(|a| a.len() == 1)
                            .and_then(|a| a[0].as_str())
                            .ok_or_else(|| {
                                unreadable(format!("key {} (x509-svid) needs exactly one x5c certificate", i + 1))
                            })?;
                        let der = base64::engine::general_purpose::STANDARD
                            .decode(x5c)
                            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x5c))
                            .map_err(|e| unreadable(format!("key {}: x5c is not base64: {e}", i + 1)))?;
                        ders.push(der);
                    }
                    Some("jwt-svid") => bundle.jwt_keys += 1,
                    _ => {}
                }
            }
            ders
        } else {
            let mut ders = Vec::new();
            for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
                let pem = pem.map_err(|e| unreadable(format!("bad PEM: {e}")))?;
                if pem.label == "CERTIFICATE" {
                    ders.push(pem.contents);
                }
            }
            ders
        };
        for (i, der) in ders.iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|e| unreadable(format!("certificate #{} is not a valid X.509 certificate: {e}", i + 1)))?;
            bundle.certificates.push(summarize(i + 1, &cert));
        }
        if bundle.certificates.is_empty() {
            return Err(BundleError::Empty { origin: source });
        }
        Ok(bundle)
    }
}

fn summarize(index: usize, cert: &X509Certificate<'_>) -> BundleCert {
    let spiffe_ids = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) if u.starts_with("spiffe://") => Some(u.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let subject = cert.subject().to_string();
    BundleCert {
        index,
        subject: if subject.is_empty() { "empty subject".into() } else { subject },
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
        spiffe_ids,
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `2031-06-15T12:00:00Z` for Unix seconds.
pub fn show_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(index: usize, not_before: i64, not_after: i64) -> BundleCert {
        BundleCert { index, subject: format!("CN=ca{index}"), not_before, not_after, is_ca: true, spiffe_ids: vec![] }
    }

    fn bundle(certs: Vec<BundleCert>) -> TrustBundle {
        TrustBundle {
            source: "test".into(),
            format: BundleFormat::Pem,
            certificates: certs,
            refresh_hint: None,
            sequence: None,
            jwt_keys: 0,
        }
    }

    const H: i64 = 3600;
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn times_print_as_utc() {
        assert_eq!(show_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(show_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(show_time(1_940_760_000), "2031-07-02T12:00:00Z");
        assert_eq!(show_time(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn rotating_ca_warns_only_inside_activation_window_without_successor() {
        let now = 1_000 * H;
        // 24h CA, 18h left: fine.
        assert!(rotation_problems(&bundle(vec![cert(1, now - 6 * H, now + 18 * H)]), DAY, now).is_empty());
        // 24h CA, 3h left (< 4h): stalled rotation.
        let p = rotation_problems(&bundle(vec![cert(1, now - 21 * H, now + 3 * H)]), DAY, now);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no successor"), "{}", p[0]);
        // Same, with the successor published: fine.
        let b = bundle(vec![cert(1, now - 21 * H, now + 3 * H), cert(2, now - 9 * H, now + 15 * H)]);
        assert!(rotation_problems(&b, DAY, now).is_empty());
    }

    #[test]
    fn long_lived_roots_use_a_fixed_window() {
        let now = 1_000_000 * H;
        let year = 365 * 24 * H;
        assert!(
            rotation_problems(&bundle(vec![cert(1, now - year + 60 * 24 * H, now + 60 * 24 * H)]), DAY, now).is_empty()
        );
        let p = rotation_problems(&bundle(vec![cert(1, now - year + 10 * 24 * H, now + 10 * 24 * H)]), DAY, now);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("does not rotate"));
        // A long-lived root does not count as the successor of a rotating CA, nor the reverse.
        let b = bundle(vec![cert(1, now - 21 * H, now + 3 * H), cert(2, now - year / 2, now + year / 2)]);
        assert_eq!(rotation_problems(&b, DAY, now).len(), 1);
    }

    #[test]
    fn expiry_validity_and_ca_flags() {
        let now = 500 * H;
        let mut leaf = cert(3, now - H, now + H);
        leaf.is_ca = false;
        let b = bundle(vec![cert(1, now - 48 * H, now - 24 * H), cert(2, now + H, now + 25 * H), leaf]);
        assert_eq!(expired(&b, now).len(), 1);
        assert!(expired(&b, now)[0].contains("expired 24h ago"));
        assert_eq!(not_yet_valid(&b, now).len(), 1);
        assert_eq!(non_ca(&b).len(), 1);
    }

    /// A certificate made with rcgen, valid from `from` to `to` (Unix seconds).
    fn generated(is_ca: bool, spiffe_id: &str, from: i64, to: i64) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca =
            if is_ca { rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained) } else { rcgen::IsCa::ExplicitNoCa };
        params.subject_alt_names = vec![rcgen::SanType::URI(rcgen::string::Ia5String::try_from(spiffe_id).unwrap())];
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + Duration::from_secs(from as u64);
        params.not_after = epoch + Duration::from_secs(to as u64);
        params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
    }

    #[test]
    fn pem_bundles_are_summarized() {
        let now = 2_000_000_000;
        let pem = format!(
            "{}{}",
            generated(true, "spiffe://example.org", now - H, now + 23 * H),
            generated(false, "spiffe://other.test/ns/a/sa/b", now - H, now + H)
        );
        let b = TrustBundle::parse("bundle.pem", pem.as_bytes()).unwrap();
        assert_eq!(b.format, BundleFormat::Pem);
        assert_eq!(b.certificates.len(), 2);
        let (ca, leaf) = (&b.certificates[0], &b.certificates[1]);
        assert!(ca.is_ca && !leaf.is_ca);
        assert_eq!((ca.not_before, ca.not_after), (now - H, now + 23 * H));
        assert_eq!(ca.lifetime(), DAY);
        assert_eq!(ca.trust_domain(), Some("example.org"));
        assert_eq!(non_ca(&b).len(), 1);
        let foreign = foreign_trust_domains(&b, "example.org");
        assert_eq!(foreign.len(), 1);
        assert!(foreign[0].contains("other.test"), "{}", foreign[0]);
        assert!(rotation_problems(&b, DAY, now).is_empty());
    }

    #[test]
    fn unreadable_bundles_are_errors() {
        assert!(matches!(TrustBundle::parse("x", b""), Err(BundleError::Empty { .. })));
        assert!(matches!(TrustBundle::parse("x", b"hello"), Err(BundleError::Empty { .. })));
        assert!(matches!(
            TrustBundle::parse("x", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(BundleError::Unreadable { .. })
        ));
        assert!(matches!(TrustBundle::parse("x", b"{\"keys\": 3}"), Err(BundleError::Unreadable { .. })));
        assert!(matches!(
            TrustBundle::parse("x", b"{\"keys\": [{\"use\": \"x509-svid\", \"x5c\": [\"!!\"]}]}"),
            Err(BundleError::Unreadable { .. })
        ));
        let e = TrustBundle::parse("x", b"{\"keys\": [{\"use\": \"jwt-svid\", \"kid\": \"k\"}]}").unwrap_err();
        assert_eq!(e.to_string(), "x: no certificate in the bundle");
    }
}
