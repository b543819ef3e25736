//! What `post-render` prints besides the manifests must not carry a secret: `--diff` shows
//! context lines around every change, and a Secret next to a workload or before the generated
//! NetworkPolicies would show its values.
//!
//! The rule is `kubectl diff`'s (kubernetes/kubectl `pkg/cmd/diff/diff.go`, type `Masker`, applied
//! by `Differ.Diff` to objects whose kind is `Secret` in version `v1`): every value of the
//! Secret's `data` is replaced by `***`; a key present on both sides with different values
//! becomes `*** (before)` on the old side and `*** (after)` on the new one, so the diff still shows
//! that it changed. kubectl masks `data` only; `stringData` holds the same secrets in clear text,
//! so it is masked by the same rule here. Secrets are paired by namespace and name; one that
//! exists on one side only is masked with `***`. A masked Secret is re-emitted from its value,
//! which also drops the comments of its chunk (they may quote the values as well).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use meshmove_model::yaml;

/// kubectl's masks (`sensitiveMaskDefault`, `sensitiveMaskBefore`, `sensitiveMaskAfter`).
const MASK: &str = "***";
const MASK_BEFORE: &str = "*** (before)";
const MASK_AFTER: &str = "*** (after)";

/// The fields of a Secret whose values are masked.
const SECRET_FIELDS: [&str; 2] = ["data", "stringData"];

/// A unified diff of `before` and `after` (YAML streams), with Secret values masked.
pub fn masked_diff(before: &str, after: &str, headers: (&str, &str)) -> String {
    let old = Side::read(before);
    let new = Side::read(after);
    let old_text = old.masked(&new, MASK_BEFORE);
    let new_text = new.masked(&old, MASK_AFTER);
    similar::TextDiff::from_lines(&old_text, &new_text).unified_diff().context_radius(3).header(headers.0, headers.1).to_string()
}

/// Whether a stream holds at least one document with a node (an object, for a valid stream).
pub fn has_objects(input: &str) -> bool {
    // A document that does not parse is content too: the post-renderer reports its error.
    yaml::split_stream(input).iter().any(|d| !matches!(yaml::parse_document(d), Ok(None)))
}

type SecretKey = (Option<String>, String);

/// One side of the diff: its chunks (with their values when they parse) and its Secrets.
struct Side<'a> {
    chunks: Vec<(&'a str, Option<Value>)>,
    secrets: BTreeMap<SecretKey, Value>,
}

impl<'a> Side<'a> {
    fn read(text: &'a str) -> Self {
        let mut chunks = Vec::new();
        let mut secrets = BTreeMap::new();
        for raw in yaml::split_stream(text) {
            let value = yaml::parse_document(&raw).ok().flatten();
            if let Some(v) = &value {
                for s in secrets_in(v) {
                    secrets.insert(secret_key(s), s.clone());
                }
            }
            chunks.push((raw.text, value));
        }
        Side { chunks, secrets }
    }

    /// The stream with every Secret (also inside `List`s) re-emitted masked against `other`;
    /// `changed` is this side's mark for a value that differs on the other side.
    fn masked(&self, other: &Side<'_>, changed: &str) -> String {
        let mut out = String::new();
        for (text, value) in &self.chunks {
            match value {
                Some(v) if !secrets_in(v).is_empty() => {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str("---\n");
                    out.push_str(&yaml::to_yaml_string(&mask_value(v, other, changed)));
                }
                _ => out.push_str(text),
            }
        }
        out
    }
}

fn is_secret(v: &Value) -> bool {
    v.get("apiVersion").and_then(Value::as_str) == Some("v1") && v.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// The Secrets of a document: itself, or the items of a `List` (`kind: *List`).
fn secrets_in(v: &Value) -> Vec<&Value> {
    if is_secret(v) {
        return vec![v];
    }
    let is_list = v.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"));
    match v.get("items").and_then(Value::as_array) {
        Some(items) if is_list => items.iter().filter(|i| is_secret(i)).collect(),
        _ => Vec::new(),
    }
}

fn secret_key(s: &Value) -> SecretKey {
    let meta = s.get("metadata");
    let ns = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string);
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    (ns, name)
}

fn mask_value(v: &Value, other: &Side<'_>, changed: &str) -> Value {
    let mut v = v.clone();
    if is_secret(&v) {
        let counterpart = other.secrets.get(&secret_key(&v));
        mask_secret(&mut v, counterpart, changed);
    } else if let Some(Value::Array(items)) = v.get_mut("items") {
        for item in items.iter_mut().filter(|i| is_secret(i)) {
            let counterpart = other.secrets.get(&secret_key(item));
            mask_secret(item, counterpart, changed);
        }
    }
    v
}

/// Mask one Secret's values; `other` is the same Secret on the other side of the diff, if any,
/// and `changed` the mark of a value that differs there.
fn mask_secret(secret: &mut Value, other: Option<&Value>, changed: &str) {
    for field in SECRET_FIELDS {
        let theirs: Option<&Map<String, Value>> = other.and_then(|o| o.get(field)).and_then(Value::as_object);
        let Some(Value::Object(ours)) = secret.get_mut(field) else {
            // A field that is not a mapping (null, or invalid) still must not show its value.
            if let Some(slot) = secret.get_mut(field).filter(|f| !f.is_null()) {
                *slot = Value::String(MASK.to_string());
            }
            continue;
        };
        for (key, value) in ours.iter_mut() {
            let mark = match theirs.and_then(|t| t.get(key)) {
                Some(t) if t != value => changed,
                _ => MASK,
            };
            *value = Value::String(mark.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\n# password: S3cretInAComment\ndata:\n  password: UzNjcmV0UGFzc3cwcmQ=\nstringData:\n  url: postgres://app:S3cretPassw0rd@db/app\n";
    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  replicas: 1\n";

    #[test]
    fn secrets_beside_a_change_show_only_masks() {
        let before = format!("{DEPLOY}---\n{SECRET}");
        let after = format!("{}---\n{SECRET}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added\n", DEPLOY.replace("replicas: 1", "replicas: 2"));
        let diff = masked_diff(&before, &after, ("a", "b"));
        for secret in ["S3cret", "UzNjcmV0", "postgres://"] {
            assert!(!diff.contains(secret), "{secret} in\n{diff}");
        }
        assert!(diff.contains("+  replicas: 2"), "{diff}");
        assert!(diff.contains("+  name: added"), "{diff}");
        assert!(diff.contains(" password: \"***\""), "{diff}");
        assert!(!diff.contains("(before)") && !diff.contains("(after)"), "unchanged values get the plain mask\n{diff}");
    }

    #[test]
    fn changed_values_are_marked_before_and_after_like_kubectl_diff() {
        let after = SECRET.replace("UzNjcmV0UGFzc3cwcmQ=", "TmV3UGFzc3dvcmQ=").replace("  url: postgres", "  added: NewS3cret\n  url: postgres");
        let diff = masked_diff(SECRET, &after, ("a", "b"));
        assert!(diff.contains("-  password: \"*** (before)\""), "{diff}");
        assert!(diff.contains("+  password: \"*** (after)\""), "{diff}");
        assert!(diff.contains("+  added: \"***\""), "a key on one side only gets the plain mask\n{diff}");
        for secret in ["S3cret", "TmV3", "UzNj", "NewS3cret"] {
            assert!(!diff.contains(secret), "{secret} in\n{diff}");
        }
    }

    #[test]
    fn secrets_inside_lists_and_non_mapping_data_are_masked() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: a}\n  data: {token: SGlkZGVuVG9rZW4=}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n  stringData: InvalidButSecret\n";
        let diff = masked_diff(list, &format!("{list}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n"), ("a", "b"));
        assert!(!diff.contains("SGlkZGVu") && !diff.contains("InvalidButSecret"), "{diff}");
        assert!(diff.contains("  stringData: \"***\""), "{diff}");
        let whole = Side::read(list).masked(&Side::read(list), MASK_BEFORE);
        assert!(whole.contains("token: \"***\"") && !whole.contains("SGlkZGVu"), "{whole}");
    }

    #[test]
    fn only_streams_with_a_node_have_objects() {
        assert!(!has_objects(""));
        assert!(!has_objects("# only a comment\n---\n---\n"));
        assert!(has_objects("---\napiVersion: v1\nkind: ConfigMap\n"));
    }
}
