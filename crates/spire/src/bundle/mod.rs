//! Trust bundles: reading them, and judging whether their authorities keep workloads verifiable.
//!
//! SPIRE publishes its trust bundle in three forms, and all three read into one [`TrustBundle`]:
//!
//! * PEM certificates: what the `k8sbundle` notifier writes (`bundle.crt` of the `spire-bundle`
//!   ConfigMap by default, spiffe/spire `doc/plugin_server_notifier_k8sbundle.md`), what the
//!   `k8s_configmap` BundlePublisher writes with `format = "pem"`, and what
//!   `spire-server bundle show` prints. X.509 authorities only.
//! * A SPIFFE bundle document: a JWK set whose keys have `use: x509-svid` (the CA certificate in
//!   `x5c`, exactly one) or `use: jwt-svid` (a `kid` and the public key), plus
//!   `spiffe_refresh_hint` (seconds) and `spiffe_sequence` (spiffe/spiffe
//!   `standards/SPIFFE_Trust_Domain_and_Bundle.md` section 4; SPIRE writes it in
//!   `pkg/common/bundleutil/marshal.go`). This is what the official `spire` Helm chart publishes:
//!   its BundlePublisher `k8s_configmap` defaults to `format: spiffe` and writes the key
//!   `bundle.spiffe` (spiffe/helm-charts-hardened `charts/spire/charts/spire-server/values.yaml`,
//!   `bundlePublisher.k8sConfigMap`). JWKs carry no expiry, so this form cannot date JWT
//!   authorities.
//! * SPIRE's own bundle (`spire-server bundle show -output json`, the Server API's
//!   `spire.api.types.Bundle` in protojson): `x509_authorities` (`asn1`, base64 DER) and
//!   `jwt_authorities` (`public_key`, `key_id`, `expires_at` in Unix seconds, 0 for never), plus
//!   `refresh_hint` and `sequence_number` (spiffe/spire-api-sdk `proto/spire/api/types/bundle.proto`).
//!   The only form that dates JWT authorities.
//!
//! Expiry needs a rule that suits SPIRE. Its CAs are short-lived (`ca_ttl`, 24h by default) and
//! rotate on a schedule: the next CA is prepared, and published in the bundle, when less than
//! half of the current one's lifetime is left (at most 30 days before expiry), and activated when
//! less than a sixth is left (at most 7 days before) (spiffe/spire `pkg/server/ca/manager/manager.go`,
//! `preparationThresholdDivisor` and `activationThresholdDivisor`). A fixed "expires within 30
//! days" window would flag every healthy SPIRE CA, so [`rotation_problems`] warns only when the
//! newest CA in the bundle is inside its activation window: by then its successor must have been
//! in the bundle for a third of the CA lifetime, and its absence means rotation has stalled.
//! Certificates living more than twice `ca_ttl` cannot be SPIRE's own rotating CAs (they are
//! upstream or hand-made roots that nobody rotates automatically) and get a fixed 30-day warning
//! window instead. JWT authorities follow the same schedule: SPIRE gives each JWT signing key a
//! lifetime of `ca_ttl` and prepares and activates its successor on the same thresholds (the same
//! file, `PrepareJWTKey`), which [`jwt_rotation_problems`] applies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use meshmove_model::duration::human as show_duration;

mod rotation;

pub use rotation::*;

/// How a bundle was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleFormat {
    Pem,
    /// A SPIFFE bundle document (JWKS).
    SpiffeJson,
    /// SPIRE's `spire.api.types.Bundle` (`spire-server bundle show -output json`).
    SpireJson,
}

impl std::fmt::Display for BundleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BundleFormat::Pem => "PEM",
            BundleFormat::SpiffeJson => "SPIFFE bundle",
            BundleFormat::SpireJson => "SPIRE bundle JSON",
        })
    }
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
    /// Marked tainted by SPIRE (forced rotation); only SPIRE's own JSON says so.
    pub tainted: bool,
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

/// One JWT authority (a `jwt-svid` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// 1-based position among the bundle's JWT authorities.
    pub index: usize,
    /// `kid` (`key_id`); empty when the document gives none.
    pub key_id: String,
    /// Unix seconds. `None` when the form carries no expiry (a SPIFFE bundle) or SPIRE says the
    /// key never expires (`expires_at: 0`).
    pub expires_at: Option<i64>,
    pub tainted: bool,
}

impl JwtAuthority {
    /// `JWT authority #1 (kid 8Hc2...)`
    pub fn label(&self) -> String {
        let kid = if self.key_id.is_empty() { "no kid".to_string() } else { format!("kid {}", self.key_id) };
        match self.expires_at {
            Some(t) => format!("JWT authority #{} ({kid}, expires {})", self.index, show_time(t)),
            None => format!("JWT authority #{} ({kid})", self.index),
        }
    }
}

/// A parsed trust bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundle {
    /// Where it came from (`file bundle.pem`, `ConfigMap/spire/spire-bundle key bundle.crt`).
    pub source: String,
    pub format: BundleFormat,
    /// The X.509 authorities.
    pub certificates: Vec<BundleCert>,
    pub jwt_authorities: Vec<JwtAuthority>,
    /// `spiffe_refresh_hint` (SPIFFE bundle) or `refresh_hint` (SPIRE's JSON); zero means none.
    pub refresh_hint: Option<Duration>,
    /// `spiffe_sequence` or `sequence_number`.
    pub sequence: Option<u64>,
    /// `trust_domain` of SPIRE's JSON.
    pub trust_domain: Option<String>,
}

/// Why a bundle cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("{origin}: {message}")]
    Unreadable { origin: String, message: String },
    #[error("{origin}: no certificate in the bundle")]
    Empty { origin: String },
}

/// Standard base64 as protojson and JWK `x5c` write it; URL-safe without padding accepted too.
fn base64_bytes(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .ok()
}

/// A protojson 64-bit integer: a string of digits, or a plain number.
pub(crate) fn int64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A field under its proto name or its protojson (lowerCamelCase) name.
fn field<'v>(v: &'v Value, proto: &str, json: &str) -> Option<&'v Value> {
    v.get(proto).or_else(|| v.get(json))
}

impl TrustBundle {
    /// Parse a bundle in any of the three forms of the module docs: PEM, or JSON (a SPIFFE bundle
    /// when it has `keys`, SPIRE's bundle when it has `x509_authorities` or `jwt_authorities`).
    pub fn parse(source: impl Into<String>, bytes: &[u8]) -> Result<TrustBundle, BundleError> {
        let source = source.into();
        let unreadable = |message: String| BundleError::Unreadable { origin: source.clone(), message };
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let mut bundle = TrustBundle {
            source: source.clone(),
            format: BundleFormat::Pem,
            certificates: Vec::new(),
            jwt_authorities: Vec::new(),
            refresh_hint: None,
            sequence: None,
            trust_domain: None,
        };
        // (DER, tainted) of each X.509 authority.
        let mut ders: Vec<(Vec<u8>, bool)> = Vec::new();
        if first == Some(&b'{') {
            let doc: Value = serde_json::from_slice(bytes)
                .map_err(|e| unreadable(format!("not valid JSON at line {}, column {}", e.line(), e.column())))?;
            if let Some(keys) = doc.get("keys") {
                bundle.format = BundleFormat::SpiffeJson;
                let keys = keys.as_array().ok_or_else(|| unreadable("`keys` is not a list".into()))?;
                bundle.refresh_hint =
                    doc.get("spiffe_refresh_hint").and_then(Value::as_u64).filter(|h| *h > 0).map(Duration::from_secs);
                bundle.sequence = doc.get("spiffe_sequence").and_then(Value::as_u64);
                for (i, key) in keys.iter().enumerate() {
                    // Keys of any other `use` are ignored, as the SPIFFE bundle format says. The
                    // plain JWKS format of the BundlePublisher omits `use`: a key with a
                    // certificate is an X.509 authority there, any other a JWT authority.
                    let usage = match key.get("use").and_then(Value::as_str) {
                        Some(u) => Some(u),
                        None if key.get("x5c").is_some() => Some("x509-svid"),
                        None => Some("jwt-svid"),
                    };
                    match usage {
                        Some("x509-svid") => {
                            let x5c = key
                                .get("x5c")
                                .and_then(Value::as_array)
                                .filter(|a| a.len() == 1)
                                .and_then(|a| a[0].as_str())
                                .ok_or_else(|| {
                                    unreadable(format!("key {} (x509-svid) needs exactly one x5c certificate", i + 1))
                                })?;
                            let der = base64_bytes(x5c)
                                .ok_or_else(|| unreadable(format!("key {}: x5c is not base64", i + 1)))?;
                            ders.push((der, false));
                        }
                        Some("jwt-svid") => bundle.jwt_authorities.push(JwtAuthority {
                            index: bundle.jwt_authorities.len() + 1,
                            key_id: key.get("kid").and_then(Value::as_str).unwrap_or("").to_string(),
                            expires_at: None,
                            tainted: false,
                        }),
                        _ => {}
                    }
                }
            } else if field(&doc, "x509_authorities", "x509Authorities").is_some()
                || field(&doc, "jwt_authorities", "jwtAuthorities").is_some()
            {
                bundle.format = BundleFormat::SpireJson;
                bundle.trust_domain =
                    field(&doc, "trust_domain", "trustDomain").and_then(Value::as_str).map(str::to_string);
                bundle.refresh_hint = int64(field(&doc, "refresh_hint", "refreshHint"))
                    .and_then(|h| u64::try_from(h).ok())
                    .filter(|h| *h > 0)
                    .map(Duration::from_secs);
                bundle.sequence =
                    int64(field(&doc, "sequence_number", "sequenceNumber")).and_then(|n| u64::try_from(n).ok());
                let list = |proto: &str, json: &str| -> Result<Vec<Value>, BundleError> {
                    match field(&doc, proto, json) {
                        None | Some(Value::Null) => Ok(Vec::new()),
                        Some(Value::Array(items)) => Ok(items.clone()),
                        Some(_) => Err(unreadable(format!("`{proto}` is not a list"))),
                    }
                };
                for (i, a) in list("x509_authorities", "x509Authorities")?.iter().enumerate() {
                    let der = a
                        .get("asn1")
                        .and_then(Value::as_str)
                        .and_then(base64_bytes)
                        .ok_or_else(|| unreadable(format!("x509_authorities[{i}]: `asn1` is not base64 DER")))?;
                    ders.push((der, a.get("tainted").and_then(Value::as_bool).unwrap_or(false)));
                }
                for (i, k) in list("jwt_authorities", "jwtAuthorities")?.iter().enumerate() {
                    bundle.jwt_authorities.push(JwtAuthority {
                        index: i + 1,
                        key_id: field(k, "key_id", "keyId").and_then(Value::as_str).unwrap_or("").to_string(),
                        // "If zero, the key does not expire" (bundle.proto).
                        expires_at: int64(field(k, "expires_at", "expiresAt")).filter(|t| *t != 0),
                        tainted: k.get("tainted").and_then(Value::as_bool).unwrap_or(false),
                    });
                }
            } else {
                return Err(unreadable(
                    "neither a SPIFFE bundle (no `keys`) nor SPIRE's bundle JSON (no `x509_authorities`)".into(),
                ));
            }
        } else {
            for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
                let pem = pem.map_err(|e| unreadable(format!("bad PEM: {e}")))?;
                if pem.label == "CERTIFICATE" {
                    ders.push((pem.contents, false));
                }
            }
        }
        for (i, (der, tainted)) in ders.iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|e| unreadable(format!("certificate #{} is not a valid X.509 certificate: {e}", i + 1)))?;
            let mut summary = summarize(i + 1, &cert);
            summary.tainted = *tainted;
            bundle.certificates.push(summary);
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
        tainted: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(index: usize, not_before: i64, not_after: i64) -> BundleCert {
        BundleCert {
            index,
            subject: format!("CN=ca{index}"),
            not_before,
            not_after,
            is_ca: true,
            spiffe_ids: vec![],
            tainted: false,
        }
    }

    fn bundle(certs: Vec<BundleCert>) -> TrustBundle {
        TrustBundle {
            source: "test".into(),
            format: BundleFormat::Pem,
            certificates: certs,
            jwt_authorities: Vec::new(),
            refresh_hint: None,
            sequence: None,
            trust_domain: None,
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
        assert!(expired(&b, now)[0].contains("expired 1d ago"));
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

    fn der(pem: &str) -> Vec<u8> {
        x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()).next().unwrap().unwrap().contents
    }

    #[test]
    fn spiffe_bundles_read_x509_and_jwt_authorities() {
        let now = 2_000_000_000;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let doc = serde_json::json!({
            "keys": [
                {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [b64(&der(&generated(true, "spiffe://example.org", now - H, now + 23 * H)))]},
                {"use": "jwt-svid", "kty": "EC", "kid": "k1", "crv": "P-256"},
                {"use": "something-else", "kid": "ignored"},
            ],
            "spiffe_refresh_hint": 300,
            "spiffe_sequence": 7,
        });
        let b = TrustBundle::parse("bundle.spiffe", doc.to_string().as_bytes()).unwrap();
        assert_eq!(b.format, BundleFormat::SpiffeJson);
        assert_eq!(b.certificates.len(), 1);
        assert_eq!(b.jwt_authorities.len(), 1);
        assert_eq!((b.jwt_authorities[0].key_id.as_str(), b.jwt_authorities[0].expires_at), ("k1", None));
        assert_eq!((b.refresh_hint, b.sequence), (Some(Duration::from_secs(300)), Some(7)));
        // A SPIFFE bundle does not date its JWT authorities: nothing to say about them.
        assert!(jwt_expired(&b, now).is_empty() && jwt_rotation_problems(&b, DAY, now).is_empty());
    }

    #[test]
    fn spire_json_dates_jwt_authorities() {
        let now = 2_000_000_000;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let ca = b64(&der(&generated(true, "spiffe://example.org", now - H, now + 23 * H)));
        // protojson: 64-bit integers as strings, proto field names.
        let doc = serde_json::json!({
            "trust_domain": "example.org",
            "x509_authorities": [{"asn1": ca, "tainted": false}],
            "jwt_authorities": [
                {"public_key": "MFkw", "key_id": "old", "expires_at": (now - 2 * H).to_string()},
                {"public_key": "MFkw", "key_id": "current", "expires_at": (now + 3 * H).to_string()},
                {"public_key": "MFkw", "key_id": "forever", "expires_at": "0"},
            ],
            "refresh_hint": "300",
            "sequence_number": "12",
        });
        let b = TrustBundle::parse("spire-server bundle show", doc.to_string().as_bytes()).unwrap();
        assert_eq!(b.format, BundleFormat::SpireJson);
        assert_eq!(b.trust_domain.as_deref(), Some("example.org"));
        assert_eq!((b.refresh_hint, b.sequence), (Some(Duration::from_secs(300)), Some(12)));
        assert_eq!(b.certificates.len(), 1);
        assert_eq!(b.jwt_authorities[2].expires_at, None, "0 means the key does not expire");
        let expired = jwt_expired(&b, now);
        assert_eq!(expired.len(), 1, "{expired:?}");
        assert!(
            expired[0].starts_with("JWT authority #1 (kid old, expires ") && expired[0].contains("expired 2h ago"),
            "{}",
            expired[0]
        );
        // 3h left of a 24h key: inside the 4h activation window, no later key.
        let stalled = jwt_rotation_problems(&b, DAY, now);
        assert_eq!(stalled.len(), 1, "{stalled:?}");
        assert!(stalled[0].contains("kid current") && stalled[0].contains("expires in 3h"), "{}", stalled[0]);
        // With a successor published the rotation is on track.
        let mut ok = b.clone();
        ok.jwt_authorities.push(JwtAuthority {
            index: 4,
            key_id: "next".into(),
            expires_at: Some(now + 20 * H),
            tainted: false,
        });
        assert!(jwt_rotation_problems(&ok, DAY, now).is_empty());
        // camelCase protojson names read the same.
        let camel = serde_json::json!({"x509Authorities": [{"asn1": ca}], "jwtAuthorities": [{"keyId": "k", "expiresAt": now - 1}]});
        let b = TrustBundle::parse("x", camel.to_string().as_bytes()).unwrap();
        assert_eq!(jwt_expired(&b, now).len(), 1);
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
