//! Fingerprints of Secret content in the journal: keyed, so that a reader of the journal
//! ConfigMap cannot test guesses of a Secret's value against them.
//!
//! The journal records a Secret it wrote over, deleted or applied by reference (see
//! [`secret`](super::secret)) and a fingerprint of its content, so that rollback and reruns can
//! tell whether the content is still the one recorded. An unkeyed hash would do for that, but
//! ConfigMaps are readable under looser RBAC than Secrets
//! (<https://kubernetes.io/docs/concepts/configuration/configmap/>: "ConfigMap does not provide
//! secrecy or encryption"), and the hash of a short value (a PIN, a dictionary word) gives the
//! value away to anyone who hashes candidates. So the fingerprint is an HMAC-SHA256 (RFC 2104)
//! keyed with 32 random bytes the tool keeps in a Secret beside the journal,
//! [`KEY_SECRET`]: only those who may read Secrets in that namespace can compute or check a
//! fingerprint, and they could read the Secret itself.
//!
//! The key Secret is created with the first fingerprint of a journal (never by a dry run), named
//! by the journal (`fingerprintKey`), and deleted with the journal. Journals of earlier
//! versions hold unkeyed `sha256:` fingerprints; they are still checked, never written.
//! Without the key a keyed fingerprint cannot be checked: rollback then treats that Secret's
//! prior content as unproven (it refuses, naming it, unless forced), never as a match.

use base64::Engine as _;
use ring::hmac;
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

use super::client;
use super::journal::{Journal, Prior};
use super::secret::content;
use super::{MANAGED_BY, PlanError, Target};
use crate::cluster::Connection;

/// The Secret beside the journal that holds its fingerprint key.
pub const KEY_SECRET: &str = "mesh-migrate-journal-key";
/// The key's field in the Secret's `data`.
const KEY_FIELD: &str = "key";
/// Bytes of key: SHA-256's output length, as RFC 2104 (section 3) recommends at least.
const KEY_BYTES: usize = 32;
/// Prefix of a keyed fingerprint.
pub const KEYED: &str = "hmac-sha256:";
/// Prefix of an unkeyed fingerprint (journals of earlier versions).
pub const LEGACY: &str = "sha256:";

/// Whether content has a recorded fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Same,
    Different,
    /// Neither can be shown (no key, or a fingerprint of an unknown form): why.
    Unverifiable(String),
}

impl Check {
    pub fn same(&self) -> bool {
        *self == Check::Same
    }
}

/// The journal's fingerprint key, as far as it could be read.
#[derive(Clone)]
pub struct Fingerprints {
    key: Result<hmac::Key, String>,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprints").field("keyed", &self.key.is_ok()).finish()
    }
}

/// The key Secret of the journal of `namespace`.
pub fn key_target(namespace: &str) -> Target {
    Target::new("v1", "Secret", Some(namespace), KEY_SECRET)
}

/// The bytes a fingerprint is computed over: a tag naming the scheme, then the Secret's
/// [`content`] with keys in order, each key and value length-prefixed (so no two contents
/// share an encoding).
fn encoding(tag: &[u8], object: &Value) -> Vec<u8> {
    let mut out = tag.to_vec();
    for (k, v) in content(object) {
        out.extend_from_slice(&(k.len() as u64).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u64).to_be_bytes());
        out.extend_from_slice(&v);
    }
    out
}

const KEYED_TAG: &[u8] = b"meshmove secret content v2 hmac-sha256\0";
const LEGACY_TAG: &[u8] = b"meshmove secret content v1\0";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// The unkeyed `sha256:<hex>` fingerprint journals of earlier versions recorded: only checked,
/// never written.
pub fn legacy_sha256(object: &Value) -> String {
    format!("{LEGACY}{}", hex(ring::digest::digest(&ring::digest::SHA256, &encoding(LEGACY_TAG, object)).as_ref()))
}

/// The key in a key Secret, if it is one the tool wrote: labelled as the tool's, immutable, with
/// [`KEY_BYTES`] bytes of key.
fn key_of(secret: &Value) -> Option<hmac::Key> {
    let label = secret.pointer(&format!("/metadata/labels/{}", super::pointer_escape(MANAGED_BY.0))).and_then(Value::as_str);
    if label != Some(MANAGED_BY.1) || secret.get("immutable") != Some(&json!(true)) {
        return None;
    }
    let bytes = content(secret).remove(KEY_FIELD)?;
    (bytes.len() == KEY_BYTES).then(|| hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// A new key Secret for the journal of `namespace`.
fn new_key_secret(namespace: &str) -> Result<Value, PlanError> {
    let mut bytes = [0u8; KEY_BYTES];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| PlanError::Invalid {
        target: key_target(namespace),
        message: "the system's random number generator failed; nothing was written".to_string(),
    })?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": KEY_SECRET,
            "namespace": namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
            "annotations": {
                "mesh-migrate.meshmove.io/purpose": "the key of the Secret fingerprints in the ConfigMap mesh-migrate-journal; `kubectl mesh-migrate rollback` needs it and deletes it with the journal",
            }
        },
        "type": "Opaque",
        "immutable": true,
        "data": {KEY_FIELD: base64::engine::general_purpose::STANDARD.encode(bytes)},
    }))
}

/// Whether the journal records any keyed fingerprint.
fn has_keyed(journal: &Journal) -> bool {
    journal.entries.iter().any(|e| {
        let prior = match &e.prior {
            Prior::Secret { fingerprint, .. } => fingerprint.starts_with(KEYED),
            _ => false,
        };
        prior || e.applied_fingerprint.as_deref().is_some_and(|f| f.starts_with(KEYED))
    })
}

impl Fingerprints {
    /// No key: only unkeyed fingerprints of earlier journals can be checked, and none can be
    /// made (a journal that records no Secret; dry runs, which record nothing).
    pub fn unkeyed(namespace: &str) -> Self {
        Fingerprints { key: Err(format!("the journal of namespace {namespace} names no key Secret")) }
    }

    /// The key the journal names, read (without it, keyed fingerprints are unverifiable, and say
    /// why). A journal that names none reads nothing: no permission on Secrets is needed then.
    pub async fn read(conn: &Connection, journal: &Journal) -> Result<Self, PlanError> {
        let Some(name) = &journal.fingerprint_key else { return Ok(Self::unkeyed(&journal.namespace)) };
        let target = Target::new("v1", "Secret", Some(&journal.namespace), name);
        let key = match client::get(conn, &target).await? {
            Some(s) => key_of(&s).ok_or_else(|| format!("Secret {}/{name} no longer holds the journal's fingerprint key", journal.namespace)),
            None => Err(format!("the journal's key Secret {}/{name} is gone, so the recorded fingerprint cannot be checked", journal.namespace)),
        };
        Ok(Fingerprints { key })
    }

    /// The journal's key, created when there is none yet, and named in `journal` (which the
    /// caller saves). A Secret of the key's name that the tool did not write is in the way; a
    /// key the journal's keyed fingerprints were made with that is gone is not replaced (they
    /// could never match again).
    pub async fn ensure(conn: &Connection, journal: &mut Journal) -> Result<Self, PlanError> {
        let target = key_target(&journal.namespace);
        let in_the_way = || PlanError::Invalid {
            target: target.clone(),
            message: format!(
                "this Secret is in the way of the journal's fingerprint key: it is not a key this tool wrote; move it away, then rerun \
                 (the journal ConfigMap {} records Secrets by a fingerprint keyed with it)",
                super::JOURNAL_NAME
            ),
        };
        let stored = match client::get(conn, &target).await? {
            Some(s) => s,
            None if has_keyed(journal) => {
                return Err(PlanError::Invalid {
                    target: target.clone(),
                    message: "the journal's fingerprint key is gone, so the Secrets it recorded can no longer be checked; nothing was written. \
                              Roll back with --force (those Secrets are left as they are), or put the key Secret back"
                        .to_string(),
                });
            }
            None => match client::create(conn, super::FIELD_MANAGER, &new_key_secret(&journal.namespace)?, false).await {
                Ok(s) => s,
                // Created by a concurrent run in between: use that one.
                Err(PlanError::Cluster(crate::cluster::ClusterError::Api { source: kube::Error::Api(s), .. })) if s.code == 409 => {
                    client::get(conn, &target).await?.ok_or_else(in_the_way)?
                }
                Err(e) => return Err(e),
            },
        };
        let key = key_of(&stored).ok_or_else(in_the_way)?;
        journal.fingerprint_key = Some(KEY_SECRET.to_string());
        Ok(Fingerprints { key: Ok(key) })
    }

    /// The keyed fingerprint of a Secret's content, `hmac-sha256:<hex>`.
    pub fn of(&self, object: &Value) -> Result<String, PlanError> {
        match &self.key {
            Ok(key) => Ok(format!("{KEYED}{}", hex(hmac::sign(key, &encoding(KEYED_TAG, object)).as_ref()))),
            Err(why) => Err(PlanError::Invalid {
                target: Target::of(object),
                message: format!("cannot fingerprint this Secret for the journal: {why}; nothing was written"),
            }),
        }
    }

    /// Whether `object`'s content is the one `recorded` fingerprints (keyed, checked in constant
    /// time; or unkeyed, from a journal of an earlier version).
    pub fn check(&self, object: &Value, recorded: &str) -> Check {
        if let Some(tag) = recorded.strip_prefix(KEYED) {
            let Some(tag) = unhex(tag) else { return Check::Unverifiable(format!("the recorded fingerprint `{recorded}` is malformed")) };
            return match &self.key {
                Ok(key) if hmac::verify(key, &encoding(KEYED_TAG, object), &tag).is_ok() => Check::Same,
                Ok(_) => Check::Different,
                Err(why) => Check::Unverifiable(why.clone()),
            };
        }
        if recorded.starts_with(LEGACY) {
            return if legacy_sha256(object) == recorded { Check::Same } else { Check::Different };
        }
        Check::Unverifiable(format!("the recorded fingerprint `{recorded}` is of no form this tool knows"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": data})
    }

    fn keyed(byte: u8) -> Fingerprints {
        Fingerprints { key: Ok(hmac::Key::new(hmac::HMAC_SHA256, &[byte; KEY_BYTES])) }
    }

    #[test]
    fn fingerprints_are_of_the_stored_content_and_tell_contents_apart() {
        let f = keyed(7);
        // "cw==" is base64 of "s"; stringData says the same in clear text.
        let a = secret(json!({"k": "cw=="}));
        let b = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"k": "s"}});
        assert_eq!(f.of(&a).unwrap(), f.of(&b).unwrap());
        assert!(f.check(&b, &f.of(&a).unwrap()).same());
        // stringData wins over data for the same key.
        let mut c = a.clone();
        c["stringData"] = json!({"k": "t"});
        assert_eq!(f.check(&c, &f.of(&a).unwrap()), Check::Different);
        // Length prefixes: moving bytes from a key to its value is another content.
        assert_ne!(f.of(&secret(json!({"ab": "Yw=="}))).unwrap(), f.of(&secret(json!({"a": "YmM="}))).unwrap());
        let fp = f.of(&a).unwrap();
        assert!(fp.starts_with(KEYED) && fp.len() == KEYED.len() + 64, "{fp}");
    }

    /// RFC 4231, test case 2 ("Jefe", "what do ya want for nothing?"): the HMAC is the standard
    /// one, so the fingerprint is exactly HMAC-SHA256(key, encoding).
    #[test]
    fn the_mac_is_rfc_4231_hmac_sha256() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(hex(hmac::sign(&key, b"what do ya want for nothing?").as_ref()), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn another_key_or_no_key_never_matches_and_a_plain_hash_is_not_the_fingerprint() {
        let a = secret(json!({"password": "MTIzNA=="}));
        let fp = keyed(1).of(&a).unwrap();
        assert_eq!(keyed(2).check(&a, &fp), Check::Different);
        assert!(matches!(Fingerprints::unkeyed("shop").check(&a, &fp), Check::Unverifiable(w) if w.contains("names no key")));
        assert!(Fingerprints::unkeyed("shop").of(&a).is_err());
        // Neither the value's SHA-256 nor the unkeyed content hash appears in the fingerprint.
        let plain = hex(ring::digest::digest(&ring::digest::SHA256, b"1234").as_ref());
        assert!(!fp.contains(&plain) && !fp.contains(legacy_sha256(&a).trim_start_matches(LEGACY)));
        assert!(matches!(keyed(1).check(&a, "hmac-sha256:zz"), Check::Unverifiable(_)));
        assert!(matches!(keyed(1).check(&a, "md5:00"), Check::Unverifiable(_)));
    }

    #[test]
    fn legacy_fingerprints_are_still_checked() {
        let a = secret(json!({"k": "cw=="}));
        // The value earlier versions recorded for this content.
        let old = legacy_sha256(&a);
        assert!(old.starts_with(LEGACY) && old.len() == LEGACY.len() + 64);
        assert!(Fingerprints::unkeyed("shop").check(&a, &old).same());
        assert_eq!(keyed(3).check(&secret(json!({"k": "dA=="})), &old), Check::Different);
        assert_eq!(legacy_sha256(&secret(json!({}))), legacy_sha256(&json!({"kind": "Secret"})));
    }

    #[test]
    fn only_the_tools_own_key_secret_is_used() {
        let s = new_key_secret("shop").unwrap();
        assert!(key_of(&s).is_some());
        assert_ne!(s["data"], new_key_secret("shop").unwrap()["data"], "a fresh random key each time");
        let mut foreign = s.clone();
        foreign["metadata"]["labels"] = json!({});
        assert!(key_of(&foreign).is_none());
        let mut mutable = s.clone();
        mutable["immutable"] = json!(false);
        assert!(key_of(&mutable).is_none());
        let mut short = s;
        short["data"]["key"] = json!("c2hvcnQ=");
        assert!(key_of(&short).is_none());
    }
}
