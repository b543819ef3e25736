//! `--dry-run=client`: a unified diff per change, from reads only.

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{self, contains, field_ops, portable, project, set_pointer};
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
}

fn head(t: &Target) -> Value {
    let mut v = json!({"apiVersion": t.api_version, "kind": t.kind, "metadata": {"name": t.name}});
    if let Some(ns) = &t.namespace {
        v["metadata"]["namespace"] = json!(ns);
    }
    v
}

fn yaml(v: &Value) -> String {
    meshmove_model::yaml::to_yaml_string(v)
}

fn unified(manager: Manager, t: &Target, old: Option<&str>, new: &str) -> String {
    if old == Some(new) {
        return String::new();
    }
    let name = t.to_string();
    similar::TextDiff::from_lines(old.unwrap_or(""), new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name} ({})", if old.is_some() { "current" } else { "absent" }), &format!("b/{name} ({})", manager.field_manager()))
        .to_string()
}

/// Preview every change of `plan` (waits are left out).
pub async fn preview(conn: &Connection, plan: &Plan) -> Result<Vec<Preview>, PlanError> {
    super::execute::check_secret_fields(plan)?;
    let mut out = Vec::new();
    for change in &plan.changes {
        let Some(target) = change.target() else { continue };
        let current = client::get(conn, &target).await?;
        let (action, diff) = match change {
            Change::Apply { object } => {
                // A Secret's values are masked on both sides, as `kubectl diff` masks them.
                let mut new = object.clone();
                match &current {
                    None => {
                        secret::mask(&mut new, None, true);
                        (Action::Created, unified(plan.manager, &target, None, &yaml(&new)))
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
                        (action, unified(plan.manager, &target, Some(&yaml(&old)), &yaml(&new)))
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
                let mut changes = false;
                for (p, v) in &fields {
                    if let Some(cv) = c.pointer(p) {
                        set_pointer(&mut old, p, cv.clone());
                    }
                    if let Some(nv) = v {
                        set_pointer(&mut new, p, nv.clone());
                    }
                    changes |= field_ops(c, p, v.as_ref()).is_some();
                }
                let action = match (changes, change) {
                    (false, _) => Action::Unchanged,
                    (true, Change::Scale { .. }) => Action::Scaled,
                    (true, Change::Restart { .. }) => Action::Restarted,
                    (true, _) => Action::Configured,
                };
                (action, unified(plan.manager, &target, Some(&yaml(&old)), &yaml(&new)))
            }
            Change::Delete { .. } => match &current {
                None => (Action::Skipped, String::new()),
                Some(c) => {
                    let mut old = portable(c);
                    secret::mask(&mut old, None, false);
                    let old = yaml(&old);
                    let name = target.to_string();
                    let diff = similar::TextDiff::from_lines(old.as_str(), "")
                        .unified_diff()
                        .context_radius(3)
                        .header(&format!("a/{name} (current)"), &format!("b/{name} (deleted)"))
                        .to_string();
                    (Action::Deleted, diff)
                }
            },
            Change::WaitReady { .. } => continue,
        };
        out.push(Preview { target, verb: change.verb(), action, diff });
    }
    Ok(out)
}
