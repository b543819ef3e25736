//! Secrets in the journal: recorded by reference and a keyed fingerprint of their content,
//! never by their data.
//!
//! The journal is a ConfigMap, and Kubernetes keeps ConfigMaps apart from Secrets on purpose
//! ("ConfigMap does not provide secrecy or encryption",
//! <https://kubernetes.io/docs/concepts/configuration/configmap/>): RBAC that grants reading
//! ConfigMaps does not grant reading Secrets, and encryption at rest is often configured for
//! Secrets only (<https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/>). So the
//! journal never holds a Secret's `data` or `stringData`:
//!
//! * a Secret the tool applies over or deletes is recorded as [`Prior::Secret`](super::Prior):
//!   its metadata and type (no values), the fingerprint of its content (an HMAC keyed with a
//!   random key kept in a Secret beside the journal, see [`fingerprint`](super::fingerprint): a
//!   reader of the ConfigMap cannot test guesses of a value against it) and the name of a
//!   backup Secret. Before the first write to it, the tool copies the Secret to
//!   `<name>.mesh-migrate-backup` ([`backup_name`]) in the same namespace — an immutable Secret
//!   of type `Opaque` (so no controller acts on it, whatever the original's type), labelled as
//!   the tool's and annotated with the original's name and the fingerprint. The prior content
//!   thereby stays a Secret, under the same RBAC and encryption as the original.
//! * a Secret the tool applied is recorded as applied without its values, plus the fingerprint
//!   of what it wrote (for the three-way checks of rollback and reruns).
//!
//! Rollback restores a Secret only from content it can prove to be the prior one: the live
//! Secret's own data when it has the recorded fingerprint, else the backup's data when the
//! backup has. Otherwise it refuses for that Secret, naming it (see
//! [`PlanError::SecretsNotRestorable`](super::PlanError)). After the restore the backup is
//! deleted.
//!
//! The fingerprint is over the content as the API server stores it ([`content`]): `data`
//! (base64-decoded) with `stringData` merged over it, key by key ("If a field is specified in
//! both data and stringData, the value from stringData is used",
//! <https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data>).
//!
//! Diffs the plan engine shows (previews and drifts) mask Secret values as `kubectl diff` does
//! ([`mask`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::fingerprint::Fingerprints;
use super::{MANAGED_BY, Target};

/// Suffix of the backup Secret's name.
pub const BACKUP_SUFFIX: &str = ".mesh-migrate-backup";
/// Annotation of a backup Secret: the name of the Secret it holds the prior content of.
pub const BACKUP_OF: &str = "mesh-migrate.meshmove.io/backup-of";
/// Annotation of a backup Secret: the fingerprint of what it holds (backups of earlier versions:
/// `mesh-migrate.meshmove.io/content-sha256`, unkeyed). Informative: a backup is checked against
/// the journal's fingerprint, computed from its data.
pub const BACKUP_FINGERPRINT: &str = "mesh-migrate.meshmove.io/content-fingerprint";
/// A Secret's name is a DNS subdomain: at most 253 characters
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names>).
const MAX_NAME: usize = 253;

/// Whether `target` addresses a core Secret.
pub fn is_secret(target: &Target) -> bool {
    target.api_version == "v1" && target.kind == "Secret"
}

/// Whether `object` is a core Secret.
pub fn is_secret_object(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some("v1") && object.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// The content of a Secret as the API server stores it: `data` decoded, `stringData` over it.
/// A `data` value that is not base64 counts as its text (the API server would reject it).
pub fn content(object: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(data) = object.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v.as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_else(|_| text.as_bytes().to_vec());
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(data) = object.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            out.insert(k.clone(), v.as_str().unwrap_or_default().as_bytes().to_vec());
        }
    }
    out
}

/// The object without its values (`data`, `stringData`).
pub fn without_values(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("data");
        m.shift_remove("stringData");
    }
    v
}

/// The backup Secret's name for Secret `name`; `None` when it would not be a valid name.
pub fn backup_name(name: &str) -> Option<String> {
    let b = format!("{name}{BACKUP_SUFFIX}");
    (b.len() <= MAX_NAME).then_some(b)
}

/// The backup Secret's target.
pub fn backup_target(target: &Target, backup: &str) -> Target {
    Target::new("v1", "Secret", target.namespace.as_deref(), backup)
}

/// The backup of `live` (the Secret `target` as it is before the tool writes it, of fingerprint
/// `fingerprint`).
pub fn backup_object(target: &Target, backup: &str, live: &Value, fingerprint: &str) -> Value {
    let data: Map<String, Value> = content(live)
        .into_iter()
        .map(|(k, v)| (k, Value::String(base64::engine::general_purpose::STANDARD.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": backup,
            "namespace": target.namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
            "annotations": {
                BACKUP_OF: target.name,
                BACKUP_FINGERPRINT: fingerprint,
                "mesh-migrate.meshmove.io/purpose": "the content of the Secret named in backup-of before kubectl mesh-migrate wrote it; `kubectl mesh-migrate rollback` restores it from here and deletes this copy",
            }
        },
        "type": "Opaque",
        "immutable": true,
        "data": data,
    })
}

/// Whether `backup` is the tool's backup of Secret `name` holding content of the recorded
/// `fingerprint` (checked with the journal's key, `prints`).
pub fn is_backup_of(backup: &Value, name: &str, fingerprint: &str, prints: &Fingerprints) -> bool {
    let ann = |k: &str| backup.pointer(&format!("/metadata/annotations/{}", super::pointer_escape(k))).and_then(Value::as_str);
    ann(BACKUP_OF) == Some(name) && prints.check(backup, fingerprint).same()
}

/// The prior Secret: its recorded metadata and type with the `data` of `source` (a live Secret
/// or the backup whose hash was checked).
pub fn restored(recorded: &Value, source: &Value) -> Value {
    let mut v = without_values(recorded);
    let data: Map<String, Value> = content(source)
        .into_iter()
        .map(|(k, v)| (k, Value::String(base64::engine::general_purpose::STANDARD.encode(v))))
        .collect();
    if !data.is_empty() {
        v["data"] = Value::Object(data);
    }
    v
}

/// Mask a Secret's values as `kubectl diff` does (its `Masker`, in
/// `staging/src/k8s.io/kubectl/pkg/cmd/diff/diff.go`): every value of `data` becomes `***`,
/// and a key whose value differs from `other`'s (the same Secret on the other side of the diff)
/// becomes `*** (before)` on the old side and `*** (after)` on the new one. `stringData` holds
/// the same values in clear text, so it is masked by the same rule. Objects that are not
/// Secrets are left alone.
pub fn mask(v: &mut Value, other: Option<&Value>, new_side: bool) {
    if !is_secret_object(v) {
        return;
    }
    for field in ["data", "stringData"] {
        let theirs = other.and_then(|o| o.get(field)).and_then(Value::as_object).cloned();
        if let Some(map) = v.get_mut(field).and_then(Value::as_object_mut) {
            for (k, val) in map.iter_mut() {
                let changed = theirs.as_ref().and_then(|t| t.get(k)).is_some_and(|t| t != val);
                *val = Value::String(match (changed, new_side) {
                    (false, _) => "***".to_string(),
                    (true, false) => "*** (before)".to_string(),
                    (true, true) => "*** (after)".to_string(),
                });
            }
        }
    }
}

/// Why rollback cannot restore a Secret's prior content: neither the live Secret nor its backup
/// holds content of the recorded fingerprint (keyed: it names the content, never a value), or
/// the fingerprint cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretLost {
    #[error("{live}, and it has no backup")]
    NoBackup { live: LiveSecret },
    #[error("{live}, and Secret {backup} does not hold the recorded content ({fingerprint})")]
    BackupDiffers { live: LiveSecret, backup: String, fingerprint: String },
    /// Without the journal's key (or for a fingerprint of an unknown form) nothing is proven.
    #[error("{reason}")]
    Unverifiable { reason: String },
    #[error("{live}, and its backup Secret {backup} is gone")]
    BackupGone { live: LiveSecret, backup: String },
}

/// What became of the live Secret since the tool wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LiveSecret {
    #[error("its content is no longer the one recorded")]
    Changed,
    #[error("it is gone")]
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": data})
    }

    #[test]
    fn the_content_is_as_the_api_server_stores_it() {
        // "cw==" is base64 of "s"; stringData says the same in clear text, and wins over data.
        let a = secret(json!({"k": "cw==", "j": "dA=="}));
        assert_eq!(content(&a), BTreeMap::from([("j".to_string(), b"t".to_vec()), ("k".to_string(), b"s".to_vec())]));
        let mut b = a.clone();
        b["stringData"] = json!({"k": "u"});
        assert_eq!(content(&b)["k"], b"u".to_vec());
        assert!(content(&without_values(&b)).is_empty());
    }

    #[test]
    fn backups_carry_the_content_and_restore_it_under_the_recorded_metadata() {
        let t = Target::new("v1", "Secret", Some("shop"), "db");
        let live = secret(json!({"password": "aHVudGVyMg=="}));
        // Checked the way journals of earlier versions recorded it (no key needed).
        let prints = Fingerprints::unkeyed("shop");
        let h = super::super::fingerprint::legacy_sha256(&live);
        let b = backup_object(&t, "db.mesh-migrate-backup", &live, &h);
        assert!(is_backup_of(&b, "db", &h, &prints));
        assert!(!is_backup_of(&b, "other", &h, &prints));
        assert_eq!(b["type"], "Opaque");
        let mut recorded = without_values(&live);
        recorded["type"] = json!("kubernetes.io/basic-auth");
        let back = restored(&recorded, &b);
        assert_eq!(back["type"], "kubernetes.io/basic-auth");
        assert!(prints.check(&back, &h).same());
        assert_eq!(backup_name(&"x".repeat(233)).map(|n| n.len()), Some(253));
        assert_eq!(backup_name(&"x".repeat(234)), None);
    }

    #[test]
    fn masking_follows_kubectl_diff() {
        let mut old = secret(json!({"same": "YQ==", "changed": "Yg=="}));
        let mut new = secret(json!({"same": "YQ==", "changed": "Yw==", "added": "ZA=="}));
        let (o, n) = (old.clone(), new.clone());
        mask(&mut old, Some(&n), false);
        mask(&mut new, Some(&o), true);
        assert_eq!(old["data"], json!({"same": "***", "changed": "*** (before)"}));
        assert_eq!(new["data"], json!({"same": "***", "changed": "*** (after)", "added": "***"}));
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        mask(&mut cm, None, true);
        assert_eq!(cm["data"]["a"], "b");
    }
}
