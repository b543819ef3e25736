//! Three-way checks: what someone else changed, since the tool wrote it, on the objects and
//! fields the journal covers.
//!
//! The three states are the prior one (the journal's [`Prior`]), what the tool last wrote (the
//! applied object, [`JournalEntry::applied`], or a field's `written` value) and the live object.
//! An object drifted when a field the tool wrote has another value now (or is gone), or — for an
//! object the tool created, which rollback deletes — when another field manager has written
//! fields of it outside `metadata` and `status` (`kubectl edit`, `kubectl patch`, a GitOps
//! controller: Kubernetes records every writer in `metadata.managedFields`, see
//! <https://kubernetes.io/docs/reference/using-api/server-side-apply/#managed-fields>).

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::client::{self, contains};
use super::fingerprint::{Check, Fingerprints};
use super::journal::{JournalEntry, Prior};
use super::{Change, FIELD_MANAGER, Manager, Plan, PlanError, Target, restart_pointer, secret};
use crate::cluster::Connection;

/// An object (or fields of it) someone else changed after the tool wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub target: Target,
    /// What changed, in words (`spec changed by kubectl-edit`).
    pub what: String,
    /// A unified diff from what the tool wrote to what the object holds now.
    pub diff: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.target, self.what)
    }
}

/// The objects a listing of drifts covers, one line each, with their diffs.
pub fn describe(drifts: &[Drift]) -> String {
    let mut s = String::new();
    for d in drifts {
        s.push_str(&format!("\n  - {d}"));
        if !d.diff.is_empty() {
            for line in d.diff.lines() {
                s.push_str(&format!("\n      {line}"));
            }
        }
    }
    s
}

/// The object as a user reads it: no server-owned fields, metadata reduced to name, namespace,
/// labels and annotations, keys sorted (so a diff shows values, not the order they were sent in).
/// A Secret's values are masked as `kubectl diff` masks them.
fn readable(v: &Value) -> Value {
    let mut v = client::portable(v);
    secret::mask(&mut v, None, true);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations"));
    }
    sorted(&v)
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn yaml(v: &Value) -> String {
    meshmove_model::yaml::to_yaml_string(v)
}

fn unified(target: &Target, written: &str, live: &str) -> String {
    if written == live {
        return String::new();
    }
    similar::TextDiff::from_lines(written, live)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{target} (as {FIELD_MANAGER} wrote it)"), &format!("b/{target} (live)"))
        .to_string()
}

/// Managers other than the tool that wrote fields of `live` outside `metadata` and `status`
/// (status subresource writes excluded): the top-level fields each one owns.
fn other_writers(live: &Value) -> Vec<(String, Vec<String>)> {
    let empty = Vec::new();
    let entries = live.pointer("/metadata/managedFields").and_then(Value::as_array).unwrap_or(&empty);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for e in entries {
        let manager = e.get("manager").and_then(Value::as_str).unwrap_or("unknown");
        if Manager::is_ours(manager) || e.get("subresource").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            continue;
        }
        let empty_map = Map::new();
        let fields = e.get("fieldsV1").and_then(Value::as_object).unwrap_or(&empty_map);
        let owned: Vec<String> = fields
            .keys()
            .filter_map(|k| k.strip_prefix("f:"))
            .filter(|k| !matches!(*k, "metadata" | "status" | "apiVersion" | "kind"))
            .map(str::to_string)
            .collect();
        if owned.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(m, _)| m == manager) {
            Some((_, f)) => f.extend(owned),
            None => out.push((manager.to_string(), owned)),
        }
    }
    out
}

/// Whether and how `live` drifted from what the tool recorded in `entry`. `deleting`: the
/// caller would delete or replace the object (rollback), so fields others added count too.
/// `prints` checks a Secret's content against the fingerprints recorded.
pub(crate) fn entry_drift(entry: &JournalEntry, live: Option<&Value>, deleting: bool, prints: &Fingerprints) -> Option<Drift> {
    let live = live?;
    let target = &entry.target;
    match (&entry.prior, &entry.applied) {
        (Prior::Fields { fields }, _) => {
            let rp = restart_pointer();
            let mut what = Vec::new();
            let mut diff = String::new();
            for (pointer, rec) in fields {
                if !deleting && *pointer == rp {
                    continue;
                }
                let now = live.pointer(pointer);
                if now == rec.prior.as_ref() || now == rec.written.as_ref() {
                    continue;
                }
                let show = |v: Option<&Value>| v.map_or_else(|| "absent".to_string(), Value::to_string);
                what.push(pointer.clone());
                diff.push_str(&format!(
                    "-{pointer}: {} (written by {FIELD_MANAGER}; before it: {})\n+{pointer}: {} (live)\n",
                    show(rec.written.as_ref()),
                    show(rec.prior.as_ref()),
                    show(now)
                ));
            }
            (!what.is_empty()).then(|| Drift { target: target.clone(), what: format!("changed since this tool set it: {}", what.join(", ")), diff })
        }
        (prior, applied) => {
            if let Prior::Object { object } = prior
                && client::portable(live) == *object
            {
                // As before the tool touched it (its apply never went through): nothing to undo.
                return None;
            }
            if let Prior::Secret { object, fingerprint, .. } = prior
                && secret::without_values(&client::portable(live)) == *object
                && prints.check(live, fingerprint).same()
            {
                return None;
            }
            let mut what = Vec::new();
            if let Some(f) = &entry.applied_fingerprint {
                match prints.check(live, f) {
                    Check::Same => {}
                    Check::Different => what.push("the Secret's data changed since this tool wrote it (values not shown)".to_string()),
                    Check::Unverifiable(why) => what.push(format!("whether the Secret's data changed since this tool wrote it cannot be told: {why}")),
                }
            }
            if let Some(a) = applied
                && !contains(live, a)
            {
                what.push("fields this tool wrote have other values now".to_string());
            }
            if deleting && matches!(prior, Prior::Absent) {
                for (manager, fields) in other_writers(live) {
                    what.push(format!("{} written by {manager}", fields.join(", ")));
                }
            }
            if what.is_empty() {
                return None;
            }
            let written = applied.as_ref().map(|a| yaml(&readable(a))).unwrap_or_default();
            Some(Drift { target: target.clone(), what: what.join("; "), diff: unified(target, &written, &yaml(&readable(live))) })
        }
    }
}

/// Everything someone changed on `entries` since the tool wrote it (for rollback: objects it
/// created count when others added fields). Reads only.
pub(crate) async fn drifts(conn: &Connection, entries: &[&JournalEntry], deleting: bool, prints: &Fingerprints) -> Result<Vec<Drift>, PlanError> {
    let mut out = Vec::new();
    for entry in entries {
        let live = client::get(conn, &entry.target).await?;
        out.extend(entry_drift(entry, live.as_ref(), deleting, prints));
    }
    Ok(out)
}

/// Before a step runs again: the objects and fields of `plan` that the journal says the tool
/// wrote and that someone changed since (the step would overwrite or be refused on them). Reads
/// only; empty when there is no journal.
pub async fn conflicts(conn: &Connection, plan: &Plan) -> Result<Vec<Drift>, PlanError> {
    let Some(journal) = super::Journal::load(conn, &plan.namespace).await? else { return Ok(Vec::new()) };
    let mut entries: Vec<&JournalEntry> = Vec::new();
    for change in &plan.changes {
        if matches!(change, Change::WaitReady { .. } | Change::WaitCondition { .. } | Change::Restart { .. }) {
            continue;
        }
        if let Some(t) = change.target()
            && let Some(e) = journal.entry(&t)
            && !entries.iter().any(|x| x.target == t)
        {
            entries.push(e);
        }
    }
    let prints = Fingerprints::read(conn, &journal).await?;
    drifts(conn, &entries, false, &prints).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::plan::journal::FieldRecord;

    fn entry(prior: Prior, applied: Option<Value>) -> JournalEntry {
        JournalEntry {
            target: Target::new("v1", "ConfigMap", Some("shop"), "c"),
            step: "enable".into(),
            recorded_at: String::new(),
            prior,
            applied,
            applied_fingerprint: None,
        }
    }

    fn none() -> Fingerprints {
        Fingerprints::unkeyed("shop")
    }

    fn managed(manager: &str, subresource: Option<&str>, fields: Value) -> Value {
        let mut m = json!({"manager": manager, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": fields});
        if let Some(s) = subresource {
            m["subresource"] = json!(s);
        }
        m
    }

    #[test]
    fn a_created_object_drifts_on_changed_tool_fields_and_on_other_writers_outside_metadata_and_status() {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"a": "1"}});
        let e = entry(Prior::Absent, Some(applied.clone()));
        let mut live = applied.clone();
        live["metadata"]["managedFields"] = json!([managed(FIELD_MANAGER, None, json!({"f:data": {"f:a": {}}}))]);
        assert_eq!(entry_drift(&e, Some(&live), true, &none()), None);
        assert_eq!(entry_drift(&e, None, true, &none()), None, "gone already: nothing to keep");
        // A controller's status and a label written by someone are no drift.
        live["metadata"]["managedFields"].as_array_mut().unwrap().push(managed("ctrl", Some("status"), json!({"f:status": {}})));
        live["metadata"]["managedFields"].as_array_mut().unwrap().push(managed("kubectl-label", None, json!({"f:metadata": {"f:labels": {}}})));
        assert_eq!(entry_drift(&e, Some(&live), true, &none()), None);
        // A field added by another manager: drift for rollback (it would delete it), not for a rerun.
        live["data"]["b"] = json!("2");
        live["metadata"]["managedFields"].as_array_mut().unwrap().push(managed("kubectl-edit", None, json!({"f:data": {"f:b": {}}})));
        let d = entry_drift(&e, Some(&live), true, &none()).unwrap();
        assert_eq!(d.what, "data written by kubectl-edit");
        assert!(d.diff.contains("+  b: '2'") || d.diff.contains("+  b: \"2\""), "{}", d.diff);
        assert_eq!(entry_drift(&e, Some(&live), false, &none()), None);
        // A value the tool wrote, changed: drift for both.
        live["data"]["a"] = json!("9");
        assert!(entry_drift(&e, Some(&live), false, &none()).unwrap().what.starts_with("fields this tool wrote have other values now"));
    }

    #[test]
    fn fields_drift_when_neither_prior_nor_written_and_restarts_count_only_for_rollback() {
        let fields = BTreeMap::from([
            ("/metadata/labels/x".to_string(), FieldRecord { prior: None, written: Some(json!("on")), absent_from: None }),
            (restart_pointer(), FieldRecord { prior: None, written: Some(json!("t1")), absent_from: None }),
        ]);
        let e = entry(Prior::Fields { fields }, None);
        let live = json!({"metadata": {"labels": {"x": "on"}}, "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t2"}}}}});
        let d = entry_drift(&e, Some(&live), true, &none()).unwrap();
        assert!(d.what.contains("restartedAt") && !d.what.contains("/metadata/labels/x"), "{}", d.what);
        assert_eq!(entry_drift(&e, Some(&live), false, &none()), None, "a rerun restarts by its own rule");
        let back = json!({"metadata": {"labels": {}}});
        assert_eq!(entry_drift(&e, Some(&back), true, &none()), None, "restored by hand already: nothing to keep");
        let other = json!({"metadata": {"labels": {"x": "off"}}});
        assert!(entry_drift(&e, Some(&other), false, &none()).unwrap().diff.contains("+/metadata/labels/x: \"off\" (live)"));
    }

    #[test]
    fn an_object_as_it_was_before_the_tool_is_no_drift() {
        let prior = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"a": "0"}});
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"a": "1"}});
        let e = entry(Prior::Object { object: prior.clone() }, Some(applied));
        assert_eq!(entry_drift(&e, Some(&prior), true, &none()), None);
        let mut other = prior.clone();
        other["data"]["a"] = json!("5");
        assert!(entry_drift(&e, Some(&other), true, &none()).is_some());
    }
}
