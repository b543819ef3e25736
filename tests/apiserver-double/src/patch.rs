//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch.
//!
//! Strategic merge patch uses a fixed table of merge keys for built-in kinds
//! instead of Go struct tags: `containers`/`initContainers`/`ephemeralContainers`,
//! `env`, `volumes`, `imagePullSecrets`, `resourceClaims`, `schedulingGates`
//! merge by `name`; container `ports` by `containerPort`; Service `spec.ports`
//! by `port`; `volumeMounts` by `mountPath`; `volumeDevices` by `devicePath`;
//! `hostAliases` by `ip`; `topologySpreadConstraints` by `topologyKey`;
//! status `conditions` by `type`; `metadata.ownerReferences` by `uid`;
//! `metadata.finalizers` is a merged set of strings. Every other list is
//! replaced wholesale, as the real server does for lists without a patch
//! strategy. Directives `$patch: replace|delete|merge`, `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are
//! honoured. Custom resources do not accept strategic merge patches (415),
//! like the real server.

use serde_json::{Map, Value};

/// How a list at some path is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced as a whole.
    Atomic,
    /// A list of objects identified by the given merge key.
    Map(&'static str),
    /// A set of scalars (merged as a union).
    Set,
}

/// The list strategy for the list found at `path` (field names only, list
/// positions omitted). `builtin` selects the built-in kinds' schema; custom
/// resources only get the `metadata` rules.
pub fn list_strategy(builtin: bool, kind: &str, path: &[&str]) -> ListStrategy {
    let Some((&last, parent)) = path.split_last() else {
        return ListStrategy::Atomic;
    };
    if parent == ["metadata"] {
        return match last {
            "finalizers" => ListStrategy::Set,
            "ownerReferences" => ListStrategy::Map("uid"),
            "managedFields" => ListStrategy::Atomic,
            _ => ListStrategy::Atomic,
        };
    }
    if !builtin {
        return ListStrategy::Atomic;
    }
    let in_container = parent
        .last()
        .is_some_and(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    match last {
        "containers" | "initContainers" | "ephemeralContainers" => ListStrategy::Map("name"),
        "env" if in_container => ListStrategy::Map("name"),
        "ports" if in_container => ListStrategy::Map("containerPort"),
        "ports" if kind == "Service" && parent == ["spec"] => ListStrategy::Map("port"),
        "volumeMounts" if in_container => ListStrategy::Map("mountPath"),
        "volumeDevices" if in_container => ListStrategy::Map("devicePath"),
        "resizePolicy" if in_container => ListStrategy::Atomic,
        "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" => {
            ListStrategy::Map("name")
        }
        "hostAliases" => ListStrategy::Map("ip"),
        "topologySpreadConstraints" => ListStrategy::Map("topologyKey"),
        "conditions" if parent.first() == Some(&"status") => ListStrategy::Map("type"),
        _ => ListStrategy::Atomic,
    }
}

/// Applies an RFC 7386 JSON merge patch in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object ensured above");
            for (k, v) in p {
                if v.is_null() {
                    t.shift_remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// An error applying a JSON patch.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonPatchError {
    /// The patch document is malformed (400).
    Malformed(String),
    /// An operation could not be applied (422).
    Failed(String),
}

fn decode_pointer(p: &str) -> Result<Vec<String>, JsonPatchError> {
    if p.is_empty() {
        return Ok(vec![]);
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| JsonPatchError::Malformed(format!("invalid JSON pointer {p:?}")))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(tok: &str, len: usize, allow_end: bool) -> Result<usize, JsonPatchError> {
    if allow_end && tok == "-" {
        return Ok(len);
    }
    let idx: usize = tok
        .parse()
        .map_err(|_| JsonPatchError::Failed(format!("invalid array index {tok:?}")))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if idx > max || (!allow_end && len == 0) {
        return Err(JsonPatchError::Failed(format!(
            "array index {idx} out of bounds"
        )));
    }
    Ok(idx)
}

fn pointer_get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for tok in path {
        cur = match cur {
            Value::Object(m) => m.get(tok)?,
            Value::Array(a) => a.get(tok.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn parent_mut<'a>(
    v: &'a mut Value,
    path: &[String],
    full: &str,
) -> Result<&'a mut Value, JsonPatchError> {
    let mut cur = v;
    for tok in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(tok),
            Value::Array(a) => tok.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| JsonPatchError::Failed(format!("path {full:?} does not exist")))?;
    }
    Ok(cur)
}

fn op_add(
    doc: &mut Value,
    path: &[String],
    value: Value,
    full: &str,
) -> Result<(), JsonPatchError> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, full)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(JsonPatchError::Failed(format!(
            "cannot add at {full:?}: parent is not a container"
        ))),
    }
}

fn op_remove(doc: &mut Value, path: &[String], full: &str) -> Result<Value, JsonPatchError> {
    let Some((last, parent)) = path.split_last() else {
        return Err(JsonPatchError::Failed(
            "cannot remove the document root".into(),
        ));
    };
    match parent_mut(doc, parent, full)? {
        Value::Object(m) => m.shift_remove(last).ok_or_else(|| {
            JsonPatchError::Failed(format!(
                "unable to remove nonexistent key: {last}: missing value"
            ))
        }),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(JsonPatchError::Failed(format!("cannot remove {full:?}"))),
    }
}

/// Applies an RFC 6902 JSON patch and returns the new document.
pub fn json_patch(doc: &Value, ops: &Value) -> Result<Value, JsonPatchError> {
    let ops = ops.as_array().ok_or_else(|| {
        JsonPatchError::Malformed("json patch must be a JSON array of operations".into())
    })?;
    let mut doc = doc.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Malformed("operation without \"op\"".into()))?;
        let path_s = op.get("path").and_then(Value::as_str).ok_or_else(|| {
            JsonPatchError::Malformed(format!("operation {name:?} without \"path\""))
        })?;
        let path = decode_pointer(path_s)?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                JsonPatchError::Malformed(format!("operation {name:?} without \"value\""))
            })
        };
        let from = || -> Result<(String, Vec<String>), JsonPatchError> {
            let f = op.get("from").and_then(Value::as_str).ok_or_else(|| {
                JsonPatchError::Malformed(format!("operation {name:?} without \"from\""))
            })?;
            Ok((f.to_string(), decode_pointer(f)?))
        };
        match name {
            "add" => op_add(&mut doc, &path, value()?, path_s)?,
            "remove" => {
                op_remove(&mut doc, &path, path_s)?;
            }
            "replace" => {
                if pointer_get(&doc, &path).is_none() {
                    return Err(JsonPatchError::Failed(format!(
                        "replace operation does not apply: doc is missing key: {path_s}: missing value"
                    )));
                }
                let v = value()?;
                if path.is_empty() {
                    doc = v;
                } else {
                    *parent_mut(&mut doc, &path, path_s)? = v;
                }
            }
            "move" => {
                let (fs, f) = from()?;
                if path.starts_with(&f) && path.len() > f.len() {
                    return Err(JsonPatchError::Failed(format!(
                        "cannot move {fs:?} into its own child {path_s:?}"
                    )));
                }
                let v = op_remove(&mut doc, &f, &fs)?;
                op_add(&mut doc, &path, v, path_s)?;
            }
            "copy" => {
                let (fs, f) = from()?;
                let v = pointer_get(&doc, &f).cloned().ok_or_else(|| {
                    JsonPatchError::Failed(format!("copy from {fs:?}: missing value"))
                })?;
                op_add(&mut doc, &path, v, path_s)?;
            }
            "test" => {
                let expected = value()?;
                match pointer_get(&doc, &path) {
                    Some(actual) if *actual == expected => {}
                    Some(_) => {
                        return Err(JsonPatchError::Failed(format!(
                            "testing value {path_s} failed: test failed"
                        )));
                    }
                    None => {
                        return Err(JsonPatchError::Failed(format!(
                            "testing value {path_s} failed: missing value"
                        )));
                    }
                }
            }
            other => {
                return Err(JsonPatchError::Malformed(format!(
                    "unexpected kind: {other}"
                )));
            }
        }
    }
    Ok(doc)
}

/// Context for a strategic merge patch.
#[derive(Debug, Clone, Copy)]
pub struct SmpContext<'a> {
    /// Built-in kind (merge keys apply) or custom resource.
    pub builtin: bool,
    /// Kind name, for kind-specific list rules (Service ports).
    pub kind: &'a str,
}

/// Applies a strategic merge patch in place.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    ctx: SmpContext<'_>,
) -> Result<(), String> {
    let mut path = Vec::new();
    if smp_map(target, patch, ctx, &mut path)? {
        *target = Value::Object(Map::new());
    }
    Ok(())
}

/// Merges patch map into target. Returns `true` if the target map must be
/// deleted (`$patch: delete`).
fn smp_map(
    target: &mut Value,
    patch: &Value,
    ctx: SmpContext<'_>,
    path: &mut Vec<String>,
) -> Result<bool, String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(false);
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(true),
        Some("replace") => {
            let mut clean = p.clone();
            clean.shift_remove("$patch");
            *target = Value::Object(clean);
            return Ok(false);
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            let t = target.as_object_mut().expect("object ensured above");
            if let Some(Value::Array(list)) = t.get_mut(field) {
                list.retain(|x| !remove.contains(&x));
            }
            continue;
        }
        let t = target.as_object_mut().expect("object ensured above");
        if v.is_null() {
            t.shift_remove(k);
            continue;
        }
        path.push(k.clone());
        match v {
            Value::Object(_) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if smp_map(entry, v, ctx, path)? {
                    t.shift_remove(k);
                }
            }
            Value::Array(items) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let strategy = list_strategy(ctx.builtin, ctx.kind, &refs);
                let existing = t
                    .get_mut(k)
                    .map(Value::take)
                    .unwrap_or(Value::Array(vec![]));
                let merged = smp_list(existing, items, strategy, ctx, path)?;
                t.insert(k.clone(), merged);
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
        path.pop();
    }
    let t = target.as_object_mut().expect("object ensured above");
    if let Some(Value::Array(order)) = p.get("$retainKeys") {
        let keep: Vec<&str> = order.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if let (Some(field), Some(order)) = (k.strip_prefix("$setElementOrder/"), v.as_array()) {
            let refs: Vec<&str> = path
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(field))
                .collect();
            if let (ListStrategy::Map(key), Some(Value::Array(list))) = (
                list_strategy(ctx.builtin, ctx.kind, &refs),
                t.get_mut(field),
            ) {
                reorder(list, order, key);
            }
        }
    }
    Ok(false)
}

fn reorder(list: &mut Vec<Value>, order: &[Value], key: &str) {
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(i) = rest.iter().position(|x| x.get(key) == o.get(key)) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

fn smp_list(
    existing: Value,
    patch: &[Value],
    strategy: ListStrategy,
    ctx: SmpContext<'_>,
    path: &mut Vec<String>,
) -> Result<Value, String> {
    let replace_all = patch.iter().any(|x| {
        x.get("$patch").and_then(Value::as_str) == Some("replace")
            && x.as_object().is_some_and(|m| m.len() == 1)
    });
    if replace_all {
        return Ok(Value::Array(
            patch
                .iter()
                .filter(|x| {
                    !(x.get("$patch").is_some() && x.as_object().is_some_and(|m| m.len() == 1))
                })
                .cloned()
                .collect(),
        ));
    }
    let mut list = match existing {
        Value::Array(a) => a,
        _ => vec![],
    };
    match strategy {
        ListStrategy::Atomic => Ok(Value::Array(patch.to_vec())),
        ListStrategy::Set => {
            for item in patch {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
            Ok(Value::Array(list))
        }
        ListStrategy::Map(key) => {
            for item in patch {
                let Some(k) = item.get(key) else {
                    return Err(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ));
                };
                let pos = list.iter().position(|x| x.get(key) == Some(k));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    list.retain(|x| x.get(key) != Some(k));
                    continue;
                }
                match pos {
                    Some(i) => {
                        if smp_map(&mut list[i], item, ctx, path)? {
                            list.remove(i);
                        }
                    }
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        smp_map(&mut fresh, item, ctx, path)?;
                        list.push(fresh);
                    }
                }
            }
            Ok(Value::Array(list))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [{"b": "c"}]});
        merge_patch(&mut t, &json!({"a": [1]}));
        assert_eq!(t, json!({"a": [1]}));
        let mut t = json!(["a"]);
        merge_patch(&mut t, &json!({"a": "b"}));
        assert_eq!(t, json!({"a": "b"}));
        let mut t = json!({"e": null});
        merge_patch(&mut t, &json!({"a": 1}));
        assert_eq!(t, json!({"e": null, "a": 1}));
    }

    #[test]
    fn json_patch_ops() {
        let doc = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"list": [1, 2, 3]}});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/metadata/labels/app", "value": "web"},
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "x"},
                {"op": "replace", "path": "/spec/list/0", "value": 9},
                {"op": "add", "path": "/spec/list/-", "value": 4},
                {"op": "remove", "path": "/spec/list/1"},
                {"op": "copy", "from": "/metadata/labels/app", "path": "/spec/copied"},
                {"op": "move", "from": "/spec/copied", "path": "/spec/moved"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"app": "web", "a/b": "x"}}, "spec": {"list": [9, 3, 4], "moved": "web"}})
        );
        let err = json_patch(
            &doc,
            &json!([{"op": "test", "path": "/metadata/labels/app", "value": "api"}]),
        )
        .unwrap_err();
        assert!(matches!(err, JsonPatchError::Failed(ref m) if m.contains("test failed")));
        assert!(matches!(
            json_patch(&doc, &json!({"op": "add"})),
            Err(JsonPatchError::Malformed(_))
        ));
        assert!(matches!(
            json_patch(
                &doc,
                &json!([{"op": "replace", "path": "/nope", "value": 1}])
            ),
            Err(JsonPatchError::Failed(_))
        ));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "remove", "path": "/spec/list/7"}])),
            Err(JsonPatchError::Failed(_))
        ));
    }

    fn smp(target: Value, patch: Value) -> Value {
        let mut t = target;
        strategic_merge_patch(
            &mut t,
            &patch,
            SmpContext {
                builtin: true,
                kind: "Deployment",
            },
        )
        .unwrap();
        t
    }

    #[test]
    fn smp_merges_containers_by_name() {
        let base = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
            {"name": "side", "image": "s:1"}
        ], "tolerations": [{"key": "x"}]}}}});
        let out = smp(
            base,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}], "ports": [{"containerPort": 80, "name": "http"}]},
                {"name": "new", "image": "n:1"}
            ], "tolerations": [{"key": "y"}]}}}}),
        );
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 3);
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 80, "name": "http"}])
        );
        assert_eq!(c[1]["name"], "side");
        assert_eq!(c[2]["name"], "new");
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "y"}]),
            "lists without strategy are replaced"
        );
    }

    #[test]
    fn smp_directives() {
        let base = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
            "volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let out = smp(
            base.clone(),
            json!({"metadata": {"finalizers": ["b"], "labels": {"x": null}},
                "spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}],
                "volumes": [{"$patch": "replace"}, {"name": "w", "configMap": {"name": "c"}}]}}}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "2"}])
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "w", "configMap": {"name": "c"}}])
        );
        let out = smp(
            base.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let out = smp(
            base.clone(),
            json!({"metadata": {"labels": {"$patch": "replace", "z": "3"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"z": "3"}));
        let out = smp(
            base,
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "a", "image": "9"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "2"}, {"name": "a", "image": "9"}])
        );
    }

    #[test]
    fn smp_service_ports_and_missing_key() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        strategic_merge_patch(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}),
            SmpContext {
                builtin: true,
                kind: "Service",
            },
        )
        .unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443}])
        );
        let mut d = json!({"spec": {"template": {"spec": {"containers": []}}}});
        assert!(
            strategic_merge_patch(
                &mut d,
                &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
                SmpContext {
                    builtin: true,
                    kind: "Deployment"
                }
            )
            .is_err()
        );
    }

    #[test]
    fn custom_resources_use_atomic_lists() {
        assert_eq!(
            list_strategy(false, "VirtualService", &["spec", "containers"]),
            ListStrategy::Atomic
        );
        assert_eq!(
            list_strategy(false, "VirtualService", &["metadata", "finalizers"]),
            ListStrategy::Set
        );
        assert_eq!(
            list_strategy(true, "Pod", &["spec", "containers", "ports"]),
            ListStrategy::Map("containerPort")
        );
        assert_eq!(
            list_strategy(true, "NetworkPolicy", &["spec", "ingress", "ports"]),
            ListStrategy::Atomic
        );
    }
}
