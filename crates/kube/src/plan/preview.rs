//! `--dry-run=client`: a unified diff per change, from reads only.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{self, contains, field_ops, portable, project, remove_pointer, set_pointer};
use super::journal::now;
use super::{Action, Change, Manager, Plan, PlanError, Target, restart_pointer, secret};
use crate::cluster::Connection;

/// What one change would do, with a unified diff of the fields it touches (current vs intended).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub target: Target,
    pub verb: &'static str,
    pub action: Action,
    /// Empty when nothing would change.
    pub diff: String,
    /// The whole object as it would be after the change, as `kubectl apply --dry-run=client -o
    /// yaml` prints one: the live object (when there is one) with the change applied, without
    /// `status` and the server's metadata ([`portable`]), Secret values masked as in the diff.
    /// `None` when no object is left (deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

fn head(t: &Target) -> Value {
    let mut v = json!({"apiVersion": t.api_version, "kind": t.kind, "metadata": {"name": t.name}});
    if let Some(ns) = &t.namespace {
        v["metadata"]["namespace"] = json!(ns);
    }
    v
}

pub(super) fn yaml(v: &Value) -> String {
    meshmove_model::yaml::to_yaml_string(v)
}

fn unified(manager: Manager, t: &Target, old: Option<&str>, new: &str) -> String {
    labelled(t, old, if old.is_some() { "current" } else { "absent" }, new, manager.field_manager())
}

/// A unified diff of `old` (empty when absent) and `new` with headers `a/<target> (<old_label>)`
/// and `b/<target> (<new_label>)`; empty when they are equal. The one diff rendering of plan
/// previews and rollback previews.
pub(super) fn labelled(t: &Target, old: Option<&str>, old_label: &str, new: &str, new_label: &str) -> String {
    if old == Some(new) {
        return String::new();
    }
    let name = t.to_string();
    similar::TextDiff::from_lines(old.unwrap_or(""), new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name} ({old_label})"), &format!("b/{name} ({new_label})"))
        .to_string()
}

/// `live` with `sent` applied over it: maps merged key by key, anything else (scalars, lists)
/// taken from `sent`. The objects the tool applies are its own (it owns their lists whole), so
/// this is what server-side apply leaves for them
/// (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy>).
fn applied_over(live: &Value, sent: &Value) -> Value {
    match (live, sent) {
        (Value::Object(l), Value::Object(s)) => {
            let mut out = l.clone();
            for (k, sv) in s {
                let merged = match l.get(k) {
                    Some(lv) => applied_over(lv, sv),
                    None => sv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, s) => s.clone(),
    }
}

/// `object` for output: without the server's fields, Secret values masked, `apiVersion`,
/// `kind` and `metadata` first as kubectl prints them (the API server may send them in another
/// order).
pub(super) fn shown(object: &Value) -> Value {
    let mut v = portable(object);
    secret::mask(&mut v, None, true);
    let Value::Object(mut m) = v else { return v };
    let mut out = serde_json::Map::new();
    for k in ["apiVersion", "kind", "metadata"] {
        if let Some(x) = m.shift_remove(k) {
            out.insert(k.to_string(), x);
        }
    }
    out.extend(m);
    Value::Object(out)
}

/// Preview every change of `plan` (waits are left out).
pub async fn preview(conn: &Connection, plan: &Plan) -> Result<Vec<Preview>, PlanError> {
    super::execute::check_secret_fields(plan)?;
    let mut out = Vec::new();
    // Objects as the plan's earlier changes leave them: a later change of the same object
    // (labels set, then a restart) starts from there.
    let mut planned: HashMap<Target, Option<Value>> = HashMap::new();
    for change in &plan.changes {
        let Some(target) = change.target() else { continue };
        let current = match planned.get(&target) {
            Some(p) => p.clone(),
            None => client::get(conn, &target).await?,
        };
        let (action, diff, after) = match change {
            Change::Apply { object } => {
                // A Secret's values are masked on both sides, as `kubectl diff` masks them.
                let mut new = object.clone();
                match &current {
                    None => {
                        secret::mask(&mut new, None, true);
                        (Action::Created, unified(plan.manager, &target, None, &yaml(&new)), Some(object.clone()))
                    }
                    Some(c) => {
                        let mut old = project(c, object);
                        // Identity fields read as the object sends them.
                        old["apiVersion"] = object["apiVersion"].clone();
                        old["kind"] = object["kind"].clone();
                        let action = if contains(c, object) { Action::Unchanged } else { Action::Configured };
                        let theirs = old.clone();
                        secret::mask(&mut old, Some(object), false);
                        secret::mask(&mut new, Some(&theirs), true);
                        (action, unified(plan.manager, &target, Some(&yaml(&old)), &yaml(&new)), Some(applied_over(&portable(c), object)))
                    }
                }
            }
            Change::Set { .. } | Change::Scale { .. } | Change::Restart { .. } => {
                let fields: Vec<(String, Option<Value>)> = match change {
                    Change::Set { fields, .. } => fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    Change::Scale { replicas, .. } => vec![("/spec/replicas".to_string(), Some(json!(replicas)))],
                    _ => vec![(restart_pointer(), Some(json!(now())))],
                };
                let Some(c) = &current else {
                    return Err(PlanError::Invalid { target, message: "not found: the plan expects it to exist".to_string() });
                };
                let (mut old, mut new) = (head(&target), head(&target));
                let mut after = portable(c);
                let mut changes = false;
                for (p, v) in &fields {
                    if let Some(cv) = c.pointer(p) {
                        set_pointer(&mut old, p, cv.clone());
                    }
                    match v {
                        Some(nv) => {
                            set_pointer(&mut new, p, nv.clone());
                            set_pointer(&mut after, p, nv.clone());
                        }
                        None => remove_pointer(&mut after, p),
                    }
                    changes |= field_ops(c, p, v.as_ref()).is_some();
                }
                let action = match (changes, change) {
                    (false, _) => Action::Unchanged,
                    (true, Change::Scale { .. }) => Action::Scaled,
                    (true, Change::Restart { .. }) => Action::Restarted,
                    (true, _) => Action::Configured,
                };
                (action, unified(plan.manager, &target, Some(&yaml(&old)), &yaml(&new)), Some(after))
            }
            Change::Delete { .. } => match &current {
                None => (Action::Skipped, String::new(), None),
                Some(c) => {
                    let mut old = portable(c);
                    secret::mask(&mut old, None, false);
                    (Action::Deleted, labelled(&target, Some(&yaml(&old)), "current", "", "deleted"), None)
                }
            },
            Change::WaitReady { .. } | Change::WaitCondition { .. } => continue,
        };
        planned.insert(target.clone(), after.clone());
        out.push(Preview { target, verb: change.verb(), action, diff, object: after.as_ref().map(shown) });
    }
    Ok(out)
}

/// The objects `previews` leave, one per object in the order of their first change: each the
/// last change's [`Preview::object`]; objects deleted in the end are left out. What `-o
/// yaml|json` of a mutating command prints.
pub fn objects_after(previews: &[Preview]) -> Vec<Value> {
    let mut order: Vec<&Target> = Vec::new();
    let mut last: HashMap<&Target, Option<&Value>> = HashMap::new();
    for p in previews {
        if !last.contains_key(&p.target) {
            order.push(&p.target);
        }
        last.insert(&p.target, p.object.as_ref());
    }
    order.into_iter().filter_map(|t| last[t].cloned()).collect()
}
