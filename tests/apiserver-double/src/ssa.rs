//! Server-side apply: field ownership, conflicts and the apply merge.
//!
//! Ownership is tracked per manager as a set of leaf paths. A leaf is a
//! scalar, an empty object, an atomic list, one item of a set-like list of
//! scalars (`metadata.finalizers`), or any leaf inside an item of a keyed list
//! (containers by `name`, ... — the same table the strategic merge patch uses,
//! see [`crate::patch::list_strategy`]). The sets are rendered as
//! `managedFields` in the `FieldsV1` format and parsed back when objects are
//! preloaded with `managedFields`.
//!
//! Semantics kept from the real server: applying a value that differs from
//! the live one on a leaf owned by another manager is a conflict (409, with
//! the manager and the field paths in the message) unless `force=true`, which
//! moves ownership to the applier; equal values are shared; leaves the applier
//! owned before and no longer applies are removed if nobody else owns them;
//! objects without managed fields attribute their fields to
//! `before-first-apply` on the first apply; non-apply writes give the changed
//! leaves to the writing manager (operation `Update`) and take them from the
//! others. Simplified: keyed lists use a single merge key, and the schema of
//! custom resources is not consulted (their lists are atomic).

use crate::patch::{ListStrategy, list_strategy};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A map field.
    Field(String),
    /// An item of a keyed list, identified by canonical JSON of its key (`{"name":"app"}`).
    Key(String),
    /// An item of a set-like list, identified by its JSON value.
    Value(String),
    /// A list position (only read from preloaded managedFields).
    Index(usize),
}

/// A path from the object root to a leaf.
pub type FieldPath = Vec<PathElement>;
/// A set of leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// apiVersion the manager used.
    pub api_version: String,
    /// Time of the last write by this manager.
    pub time: String,
    /// `status` for status-subresource writes.
    pub subresource: Option<String>,
    /// Owned leaves.
    pub fields: FieldSet,
}

/// Which part of the object a write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (kinds without a status subresource).
    Whole,
    /// Everything but `status` (main resource of kinds with a status subresource).
    MainNoStatus,
    /// Only `status` (the `/status` subresource).
    StatusOnly,
}

/// Schema context for leaf computation.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Built-in kind (merge keys apply).
    pub builtin: bool,
    /// Kind name.
    pub kind: &'a str,
    /// Which part of the object is tracked.
    pub scope: Scope,
}

const SYSTEM_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn key_of(item: &Value, key: &str) -> Option<String> {
    let v = item.get(key)?;
    let mut m = Map::new();
    m.insert(key.to_string(), v.clone());
    Some(Value::Object(m).to_string())
}

/// The leaf paths of an object under the given context.
pub fn leaf_set(obj: &Value, ctx: Ctx<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        let is_status = k == "status";
        match ctx.scope {
            Scope::StatusOnly if !is_status => continue,
            Scope::MainNoStatus if is_status => continue,
            _ => {}
        }
        let mut path = vec![PathElement::Field(k.clone())];
        let mut names = vec![k.as_str()];
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if SYSTEM_META.contains(&mk.as_str()) {
                        continue;
                    }
                    path.push(PathElement::Field(mk.clone()));
                    names.push(mk);
                    walk(mv, &mut path, &mut names, ctx, &mut out);
                    path.pop();
                    names.pop();
                }
            }
            continue;
        }
        walk(v, &mut path, &mut names, ctx, &mut out);
    }
    out
}

fn walk<'v>(
    v: &'v Value,
    path: &mut FieldPath,
    names: &mut Vec<&'v str>,
    ctx: Ctx<'_>,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(PathElement::Field(k.clone()));
                names.push(k);
                walk(c, path, names, ctx, out);
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) => match list_strategy(ctx.builtin, ctx.kind, names) {
            ListStrategy::Map(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for item in items {
                    let k = key_of(item, key).expect("checked above");
                    path.push(PathElement::Key(k));
                    walk(item, path, names, ctx, out);
                    path.pop();
                }
            }
            ListStrategy::Set => {
                for item in items {
                    path.push(PathElement::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at a path, if present.
pub fn value_at<'a>(v: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut cur = v;
    for el in path {
        cur = match el {
            PathElement::Field(f) => cur.as_object()?.get(f)?,
            PathElement::Key(k) => {
                let key: Value = serde_json::from_str(k).ok()?;
                let (kf, kv) = key.as_object()?.iter().next()?;
                cur.as_array()?.iter().find(|i| i.get(kf) == Some(kv))?
            }
            PathElement::Value(j) => {
                let want: Value = serde_json::from_str(j).ok()?;
                cur.as_array()?.iter().find(|i| **i == want)?
            }
            PathElement::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    Some(cur)
}

/// Renders a path the way conflict messages do: `.spec.containers[name="app"].image`.
pub fn render_path(path: &[PathElement]) -> String {
    let mut s = String::new();
    for el in path {
        match el {
            PathElement::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElement::Key(k) => {
                let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = key
                    .as_object()
                    .map(|m| m.iter().map(|(a, b)| format!("{a}={b}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(j) => s.push_str(&format!("[={j}]")),
            PathElement::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn overlapping<'a>(set: &'a FieldSet, p: &FieldPath) -> Vec<&'a FieldPath> {
    let mut out: Vec<&FieldPath> = set
        .range(p.clone()..)
        .take_while(|q| q.starts_with(p))
        .collect();
    for i in 1..p.len() {
        if let Some(q) = set.get(&p[..i]) {
            out.push(q);
        }
    }
    out
}

/// One apply conflict.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The apiVersion recorded for that manager.
    pub api_version: String,
    /// The contested field.
    pub path: FieldPath,
}

/// Formats conflicts like the real server's message.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
    for c in conflicts {
        let p = render_path(&c.path);
        match by_manager.iter_mut().find(|(m, _, _)| *m == c.manager) {
            Some((_, _, paths)) => paths.push(p),
            None => by_manager.push((c.manager.clone(), c.api_version.clone(), vec![p])),
        }
    }
    let n = conflicts.len();
    let mut msg = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let sections: Vec<String> = by_manager
        .iter()
        .map(|(m, av, paths)| {
            if paths.len() == 1 {
                format!("conflict with \"{m}\" using {av}: {}", paths[0])
            } else {
                format!(
                    "conflicts with \"{m}\" using {av}:\n- {}",
                    paths.join("\n- ")
                )
            }
        })
        .collect();
    msg.push_str(&sections.join("\n"));
    msg
}

/// Removes the value at `path`; afterwards prunes objects that became empty
/// and list items left with nothing but their key (never `metadata` itself).
fn remove_path(v: &mut Value, path: &[PathElement]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let Some(container) = value_at_mut(v, parent) else {
        return;
    };
    match (last, container) {
        (PathElement::Field(f), Value::Object(m)) => {
            m.shift_remove(f);
        }
        (PathElement::Key(k), Value::Array(a)) => {
            if let Some((kf, kv)) = serde_json::from_str::<Value>(k).ok().and_then(|x| {
                x.as_object()
                    .and_then(|m| m.iter().next().map(|(a, b)| (a.clone(), b.clone())))
            }) {
                a.retain(|i| i.get(&kf) != Some(&kv));
            }
        }
        (PathElement::Value(j), Value::Array(a)) => {
            if let Ok(want) = serde_json::from_str::<Value>(j) {
                a.retain(|i| *i != want);
            }
        }
        (PathElement::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => return,
    }
    if parent.len() <= 1 {
        return;
    }
    let empty_object = matches!(value_at(v, parent), Some(Value::Object(m)) if m.is_empty());
    let key_only_item = match (parent.last(), value_at(v, parent)) {
        (Some(PathElement::Key(k)), Some(Value::Object(m))) => {
            let kf = serde_json::from_str::<Value>(k)
                .ok()
                .and_then(|x| x.as_object().and_then(|o| o.keys().next().cloned()));
            m.len() == 1 && kf.is_some_and(|kf| m.contains_key(&kf))
        }
        _ => false,
    };
    if empty_object || key_only_item {
        remove_path(v, parent);
    }
}

fn value_at_mut<'a>(v: &'a mut Value, path: &[PathElement]) -> Option<&'a mut Value> {
    let mut cur = v;
    for el in path {
        cur = match el {
            PathElement::Field(f) => cur.as_object_mut()?.get_mut(f)?,
            PathElement::Key(k) => {
                let key: Value = serde_json::from_str(k).ok()?;
                let (kf, kv) = key.as_object()?.iter().next()?;
                cur.as_array_mut()?
                    .iter_mut()
                    .find(|i| i.get(kf) == Some(kv))?
            }
            PathElement::Value(j) => {
                let want: Value = serde_json::from_str(j).ok()?;
                cur.as_array_mut()?.iter_mut().find(|i| **i == want)?
            }
            PathElement::Index(i) => cur.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(cur)
}

/// Merges an applied configuration into the live object: maps recurse, keyed
/// lists merge item by item, set-like lists take the union, everything else
/// is replaced.
pub fn apply_merge(target: &mut Value, config: &Value, ctx: Ctx<'_>) {
    let mut names = Vec::new();
    merge_rec(target, config, ctx, &mut names);
}

fn merge_rec(target: &mut Value, config: &Value, ctx: Ctx<'_>, names: &mut Vec<String>) {
    match config {
        Value::Object(c) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object ensured above");
            for (k, v) in c {
                names.push(k.clone());
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                merge_rec(entry, v, ctx, names);
                names.pop();
            }
        }
        Value::Array(items) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_strategy(ctx.builtin, ctx.kind, &refs) {
                ListStrategy::Map(key)
                    if target.is_array() && items.iter().all(|i| i.get(key).is_some()) =>
                {
                    let list = target.as_array_mut().expect("checked above");
                    for item in items {
                        match list.iter_mut().find(|x| x.get(key) == item.get(key)) {
                            Some(existing) => merge_rec(existing, item, ctx, names),
                            None => list.push(item.clone()),
                        }
                    }
                }
                ListStrategy::Set if target.is_array() => {
                    let list = target.as_array_mut().expect("checked above");
                    for item in items {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                }
                _ => *target = config.clone(),
            }
        }
        other => *target = other.clone(),
    }
}

/// Result of a server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyOutcome {
    /// The new object.
    pub object: Value,
    /// The new managed fields.
    pub managed: Vec<ManagedEntry>,
}

/// Inputs of an apply.
pub struct ApplyRequest<'a> {
    /// The live object, if any.
    pub live: Option<&'a Value>,
    /// Live managed fields.
    pub managed: &'a [ManagedEntry],
    /// The applied configuration.
    pub config: &'a Value,
    /// Field manager.
    pub manager: &'a str,
    /// `force=true`.
    pub force: bool,
    /// apiVersion used.
    pub api_version: &'a str,
    /// Time stamp for the entry.
    pub now: &'a str,
    /// Schema context.
    pub ctx: Ctx<'a>,
}

/// Performs a server-side apply. Returns the conflicts when `force` is off
/// and another manager owns a differing field.
pub fn apply(req: ApplyRequest<'_>) -> Result<ApplyOutcome, Vec<Conflict>> {
    let ctx = req.ctx;
    let applied = leaf_set(req.config, ctx);
    let subresource = (ctx.scope == Scope::StatusOnly).then(|| "status".to_string());
    let entry = |fields: FieldSet| ManagedEntry {
        manager: req.manager.to_string(),
        operation: Operation::Apply,
        api_version: req.api_version.to_string(),
        time: req.now.to_string(),
        subresource: subresource.clone(),
        fields,
    };
    let Some(live) = req.live else {
        return Ok(ApplyOutcome {
            object: req.config.clone(),
            managed: vec![entry(applied)],
        });
    };
    let mut managed: Vec<ManagedEntry> = req.managed.to_vec();
    if managed.is_empty() {
        managed.push(ManagedEntry {
            manager: "before-first-apply".into(),
            operation: Operation::Update,
            api_version: req.api_version.to_string(),
            time: req.now.to_string(),
            subresource: None,
            fields: leaf_set(
                live,
                Ctx {
                    scope: if ctx.scope == Scope::StatusOnly {
                        Scope::MainNoStatus
                    } else {
                        ctx.scope
                    },
                    ..ctx
                },
            ),
        });
    }
    let is_self = |e: &ManagedEntry| {
        e.manager == req.manager && e.operation == Operation::Apply && e.subresource == subresource
    };
    let mut conflicts = Vec::new();
    let mut to_strip: Vec<(usize, FieldPath)> = Vec::new();
    for (idx, e) in managed.iter().enumerate() {
        if e.manager == req.manager {
            continue;
        }
        for p in &applied {
            for q in overlapping(&e.fields, p) {
                let shorter: &[PathElement] = if q.len() < p.len() { q } else { p };
                if value_at(live, shorter) != value_at(req.config, shorter) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                        path: q.clone(),
                    });
                    to_strip.push((idx, q.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        conflicts.dedup();
        return Err(conflicts);
    }
    for (idx, q) in to_strip {
        managed[idx].fields.remove(&q);
    }
    let previously: FieldSet = managed
        .iter()
        .filter(|e| is_self(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut object = live.clone();
    for r in previously.difference(&applied) {
        let owned_elsewhere = managed
            .iter()
            .filter(|e| !is_self(e))
            .any(|e| !overlapping(&e.fields, r).is_empty());
        if !owned_elsewhere {
            remove_path(&mut object, r);
        }
    }
    apply_merge(&mut object, req.config, ctx);
    managed.retain(|e| !is_self(e));
    managed.push(entry(applied));
    managed.retain(|e| !e.fields.is_empty());
    Ok(ApplyOutcome { object, managed })
}

/// Records a non-apply write by `manager`: changed leaves move to it.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    managed: &[ManagedEntry],
    manager: &str,
    api_version: &str,
    now: &str,
    ctx: Ctx<'_>,
) -> Vec<ManagedEntry> {
    let subresource = (ctx.scope == Scope::StatusOnly).then(|| "status".to_string());
    let new_set = leaf_set(new, ctx);
    let (changed, removed): (FieldSet, FieldSet) = match old {
        None => (new_set.clone(), FieldSet::new()),
        Some(o) => {
            let old_set = leaf_set(o, ctx);
            let changed = new_set
                .iter()
                .filter(|p| value_at(o, p) != value_at(new, p))
                .cloned()
                .collect();
            let removed = old_set.difference(&new_set).cloned().collect();
            (changed, removed)
        }
    };
    let mut out: Vec<ManagedEntry> = managed.to_vec();
    if changed.is_empty() && removed.is_empty() {
        return out;
    }
    for e in &mut out {
        if e.manager == manager && e.operation == Operation::Update && e.subresource == subresource
        {
            continue;
        }
        for p in changed.iter().chain(removed.iter()) {
            let hits: Vec<FieldPath> = overlapping(&e.fields, p).into_iter().cloned().collect();
            for h in hits {
                e.fields.remove(&h);
            }
        }
    }
    match out.iter_mut().find(|e| {
        e.manager == manager && e.operation == Operation::Update && e.subresource == subresource
    }) {
        Some(e) => {
            e.fields.extend(changed);
            for r in &removed {
                e.fields.remove(r);
            }
            e.time = now.to_string();
            e.api_version = api_version.to_string();
        }
        None => out.push(ManagedEntry {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            time: now.to_string(),
            subresource,
            fields: changed,
        }),
    }
    out.retain(|e| !e.fields.is_empty());
    out
}

/// Encodes a field set as `FieldsV1`.
pub fn encode_fields(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for el in path {
            let key = match el {
                PathElement::Field(f) => format!("f:{f}"),
                PathElement::Key(k) => format!("k:{k}"),
                PathElement::Value(j) => format!("v:{j}"),
                PathElement::Index(i) => format!("i:{i}"),
            };
            let is_item = matches!(el, PathElement::Key(_));
            let node = cur.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let m = node.as_object_mut().expect("fieldsV1 nodes are objects");
            if is_item && !m.contains_key(".") {
                m.insert(".".into(), json!({}));
            }
            cur = m;
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1` into a field set.
pub fn decode_fields(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    decode_rec(v, &mut path, &mut out);
    out
}

fn decode_rec(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path.clone());
        }
        return;
    }
    for (k, c) in children {
        let el = if let Some(f) = k.strip_prefix("f:") {
            PathElement::Field(f.to_string())
        } else if let Some(j) = k.strip_prefix("k:") {
            let canonical = serde_json::from_str::<Value>(j)
                .map(|x| x.to_string())
                .unwrap_or_else(|_| j.to_string());
            PathElement::Key(canonical)
        } else if let Some(j) = k.strip_prefix("v:") {
            PathElement::Value(j.to_string())
        } else if let Some(i) = k.strip_prefix("i:").and_then(|i| i.parse().ok()) {
            PathElement::Index(i)
        } else {
            continue;
        };
        path.push(el);
        decode_rec(c, path, out);
        path.pop();
    }
}

/// Renders managed entries as the `metadata.managedFields` array.
pub fn to_managed_fields(entries: &[ManagedEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert(
                    "operation".into(),
                    json!(if e.operation == Operation::Apply {
                        "Apply"
                    } else {
                        "Update"
                    }),
                );
                m.insert("apiVersion".into(), json!(e.api_version));
                m.insert("time".into(), json!(e.time));
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), encode_fields(&e.fields));
                if let Some(s) = &e.subresource {
                    m.insert("subresource".into(), json!(s));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Parses `metadata.managedFields` (entries without FieldsV1 are skipped).
pub fn from_managed_fields(v: &Value) -> Vec<ManagedEntry> {
    let Some(items) = v.as_array() else {
        return vec![];
    };
    items
        .iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(ManagedEntry {
                manager: s("manager")?,
                operation: if s("operation").as_deref() == Some("Apply") {
                    Operation::Apply
                } else {
                    Operation::Update
                },
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                subresource: s("subresource"),
                fields: decode_fields(e.get("fieldsV1")?),
            })
        })
        .collect()
}

/// A compact description of ownership for tests: manager → rendered paths.
pub fn ownership_summary(entries: &[ManagedEntry]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in entries {
        out.entry(e.manager.clone())
            .or_default()
            .extend(e.fields.iter().map(|p| render_path(p)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Ctx<'static> = Ctx {
        builtin: true,
        kind: "Deployment",
        scope: Scope::MainNoStatus,
    };

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn do_apply(
        live: Option<&Value>,
        managed: &[ManagedEntry],
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<ApplyOutcome, Vec<Conflict>> {
        apply(ApplyRequest {
            live,
            managed,
            config,
            manager,
            force,
            api_version: "apps/v1",
            now: "t",
            ctx: CTX,
        })
    }

    #[test]
    fn leaf_paths_use_merge_keys() {
        let set = leaf_set(&deploy(2, "a"), CTX);
        let rendered: Vec<String> = set.iter().map(|p| render_path(p)).collect();
        assert_eq!(
            rendered,
            vec![
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.template.spec.containers[name=\"app\"].image",
                ".spec.template.spec.containers[name=\"app\"].name",
            ]
        );
    }

    #[test]
    fn create_then_conflict_then_force() {
        let first = do_apply(None, &[], &deploy(2, "a"), "alice", false).unwrap();
        let again = do_apply(
            Some(&first.object),
            &first.managed,
            &deploy(2, "a"),
            "bob",
            false,
        )
        .unwrap();
        let owners = ownership_summary(&again.managed);
        assert!(owners["alice"].contains(&".spec.replicas".to_string()));
        assert!(
            owners["bob"].contains(&".spec.replicas".to_string()),
            "same value is shared"
        );
        let err = do_apply(
            Some(&first.object),
            &first.managed,
            &deploy(3, "a"),
            "bob",
            false,
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"
        );
        let forced = do_apply(
            Some(&first.object),
            &first.managed,
            &deploy(3, "b"),
            "bob",
            true,
        )
        .unwrap();
        assert_eq!(forced.object["spec"]["replicas"], 3);
        let owners = ownership_summary(&forced.managed);
        assert!(!owners["alice"].contains(&".spec.replicas".to_string()));
        assert!(owners["bob"].contains(&".spec.replicas".to_string()));
    }

    #[test]
    fn multiple_conflicts_are_listed() {
        let first = do_apply(None, &[], &deploy(2, "a"), "alice", false).unwrap();
        let err = do_apply(
            Some(&first.object),
            &first.managed,
            &deploy(5, "z"),
            "bob",
            false,
        )
        .unwrap_err();
        let msg = conflict_message(&err);
        assert!(
            msg.starts_with(
                "Apply failed with 2 conflicts: conflicts with \"alice\" using apps/v1:\n- "
            ),
            "{msg}"
        );
        assert!(msg.contains("- .spec.template.spec.containers[name=\"app\"].image"));
    }

    #[test]
    fn dropped_fields_are_removed_unless_shared() {
        let mut cfg = deploy(2, "a");
        cfg["metadata"]["labels"]["tier"] = json!("front");
        let first = do_apply(None, &[], &cfg, "alice", false).unwrap();
        let out = do_apply(
            Some(&first.object),
            &first.managed,
            &deploy(2, "a"),
            "alice",
            false,
        )
        .unwrap();
        assert_eq!(out.object["metadata"]["labels"], json!({"app": "web"}));
        let shared = do_apply(Some(&first.object), &first.managed, &cfg, "bob", false).unwrap();
        let out = do_apply(
            Some(&shared.object),
            &shared.managed,
            &deploy(2, "a"),
            "alice",
            false,
        )
        .unwrap();
        assert_eq!(
            out.object["metadata"]["labels"]["tier"], "front",
            "still owned by bob"
        );
    }

    #[test]
    fn removed_container_item_disappears() {
        let mut two = deploy(1, "a");
        two["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "side", "image": "s"}));
        let first = do_apply(None, &[], &two, "alice", false).unwrap();
        let out = do_apply(
            Some(&first.object),
            &first.managed,
            &deploy(1, "a"),
            "alice",
            false,
        )
        .unwrap();
        assert_eq!(
            out.object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "a"}])
        );
    }

    #[test]
    fn before_first_apply_owns_unmanaged_objects() {
        let live = deploy(2, "a");
        let err = do_apply(Some(&live), &[], &deploy(4, "a"), "alice", false).unwrap_err();
        assert_eq!(err[0].manager, "before-first-apply");
    }

    #[test]
    fn updates_take_ownership() {
        let first = do_apply(None, &[], &deploy(2, "a"), "alice", false).unwrap();
        let mut edited = first.object.clone();
        edited["spec"]["replicas"] = json!(7);
        let managed = record_update(
            Some(&first.object),
            &edited,
            &first.managed,
            "kubectl-edit",
            "apps/v1",
            "t",
            CTX,
        );
        let owners = ownership_summary(&managed);
        assert_eq!(owners["kubectl-edit"], vec![".spec.replicas".to_string()]);
        assert!(!owners["alice"].contains(&".spec.replicas".to_string()));
        let err = do_apply(Some(&edited), &managed, &deploy(2, "a"), "alice", false).unwrap_err();
        assert_eq!(err[0].manager, "kubectl-edit");
    }

    #[test]
    fn fields_v1_round_trip() {
        let out = do_apply(None, &[], &deploy(2, "a"), "alice", false).unwrap();
        let mf = to_managed_fields(&out.managed);
        assert_eq!(
            mf[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"],
            json!({".": {}, "f:image": {}, "f:name": {}})
        );
        assert_eq!(from_managed_fields(&mf), out.managed);
    }
}
