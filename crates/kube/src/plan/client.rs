//! Dynamic requests for any kind of the kinds table, JSON pointers, and JSON-patch building.

use kube::api::{ApiResource, DeleteParams, DynamicObject, GetParams, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, Request};
use serde_json::{Map, Value, json};

use super::{PlanError, Target};
use crate::cluster::{ClusterError, Connection};
use meshmove_model::inventory::kinds::{self, Kind};

/// Escape a map key for a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn segments(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
}

/// The value at a JSON pointer, if any.
pub fn pointer_get<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer)
}

/// Set the value at a JSON pointer, creating intermediate objects.
pub(crate) fn set_pointer(v: &mut Value, pointer: &str, new: Value) {
    let segs = segments(pointer);
    let mut cur = v;
    for (i, s) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("made an object above");
        if i + 1 == segs.len() {
            map.insert(s.clone(), new);
            return;
        }
        cur = map.entry(s.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Remove the value at a JSON pointer (no-op when absent).
pub(crate) fn remove_pointer(v: &mut Value, pointer: &str) {
    let segs = segments(pointer);
    let Some((last, parents)) = segs.split_last() else { return };
    let mut cur = v;
    for s in parents {
        match cur.get_mut(s) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.shift_remove(last);
    }
}

/// The shortest prefix of `pointer` that is absent from `v` (`None` when the value exists).
pub(crate) fn first_absent(v: &Value, pointer: &str) -> Option<String> {
    let mut prefix = String::new();
    for s in segments(pointer) {
        prefix.push('/');
        prefix.push_str(&pointer_escape(&s));
        if v.pointer(&prefix).is_none() {
            return Some(prefix);
        }
    }
    None
}

/// Whether a value is an object holding nothing but (nested) empty objects.
pub(crate) fn empty_tree(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.values().all(empty_tree))
}

/// JSON-patch operations that make `pointer` hold `desired` (`None`: absent), or `None` when it
/// already does. Existing values are guarded by a `test` of the value read; adding to a missing
/// path is guarded by a `test` of the resourceVersion (absence cannot be tested otherwise).
pub(crate) fn field_ops(current: &Value, pointer: &str, desired: Option<&Value>) -> Option<Vec<Value>> {
    let now = current.pointer(pointer);
    match (now, desired) {
        (None, None) => None,
        (Some(a), Some(b)) if a == b => None,
        (Some(a), None) => Some(vec![json!({"op": "test", "path": pointer, "value": a}), json!({"op": "remove", "path": pointer})]),
        (Some(a), Some(b)) => {
            Some(vec![json!({"op": "test", "path": pointer, "value": a}), json!({"op": "replace", "path": pointer, "value": b})])
        }
        (None, Some(b)) => {
            let segs = segments(pointer);
            // The deepest ancestor that exists as an object; add the rest as one nested value.
            let mut depth = segs.len() - 1;
            while depth > 0 {
                let prefix: String = segs[..depth].iter().map(|s| format!("/{}", pointer_escape(s))).collect();
                if current.pointer(&prefix).is_some_and(Value::is_object) {
                    break;
                }
                depth -= 1;
            }
            let path: String = segs[..=depth].iter().map(|s| format!("/{}", pointer_escape(s))).collect();
            let mut value = b.clone();
            for s in segs[depth + 1..].iter().rev() {
                value = json!({ s.clone(): value });
            }
            let mut ops = Vec::new();
            if let Some(rv) = current.pointer("/metadata/resourceVersion") {
                ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
            }
            ops.push(json!({"op": "add", "path": path, "value": value}));
            Some(ops)
        }
    }
}

pub(crate) fn kind_of(target: &Target) -> Result<&'static Kind, PlanError> {
    kinds::lookup(&target.api_version, &target.kind)
        .ok_or_else(|| PlanError::UnknownKind { api_version: target.api_version.clone(), kind: target.kind.clone() })
}

fn request(kind: &Kind, namespace: Option<&str>) -> Request {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(kind.group, kind.version, kind.kind), kind.plural);
    let ns = if kind.namespaced { namespace } else { None };
    Request::new(<DynamicObject as kube::Resource>::url_path(&ar, ns))
}

fn resource(kind: &Kind, target: &Target) -> String {
    match (&target.namespace, kind.namespaced) {
        (Some(ns), true) => format!("{} {ns}/{}", kind.resource(), target.name),
        _ => format!("{} {}", kind.resource(), target.name),
    }
}

/// Classify a failed call. A 409 on a write is a [`PlanError::Conflict`] with the server's
/// message (for server-side apply it names the other manager and the fields).
pub(crate) fn api_error(conn: &Connection, verb: &'static str, target: &Target, e: kube::Error) -> PlanError {
    let kind = kinds::lookup(&target.api_version, &target.kind);
    let res = kind.map_or_else(|| target.to_string(), |k| resource(k, target));
    match &e {
        kube::Error::Api(status) if status.code == 401 => PlanError::Cluster(ClusterError::Unauthorized {
            context: conn.context.clone(),
            code: 401,
            message: status.message.clone(),
            source: e,
        }),
        kube::Error::Api(status) if status.code == 409 && verb != "create" => {
            let message = format!(
                "{} (kubectl-mesh-migrate never forces: resolve it with the other manager — change or remove their \
                 fields, or give the fields up — then rerun)",
                status.message
            );
            PlanError::Conflict { target: target.clone(), message, source: e }
        }
        kube::Error::Api(status) => PlanError::Cluster(ClusterError::Api {
            verb,
            resource: res,
            message: format!("{} {}", status.code, status.message),
            source: e,
        }),
        _ => PlanError::Cluster(ClusterError::Unreachable { context: conn.context.clone(), source: e }),
    }
}

/// GET; `None` when absent.
pub(crate) async fn get(conn: &Connection, target: &Target) -> Result<Option<Value>, PlanError> {
    let kind = kind_of(target)?;
    let req = request(kind, target.namespace.as_deref())
        .get(&target.name, &GetParams::default())
        .map_err(|e| api_error(conn, "get", target, kube::Error::BuildRequest(e)))?;
    match conn.client.request::<Value>(req).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(api_error(conn, "get", target, e)),
    }
}

fn patch_params(manager: &str, dry_run: bool) -> PatchParams {
    let mut p = PatchParams::apply(manager);
    p.dry_run = dry_run;
    p
}

/// Server-side apply as `manager`, never forced.
pub(crate) async fn apply(conn: &Connection, manager: &str, object: &Value, dry_run: bool) -> Result<Value, PlanError> {
    let target = Target::of(object);
    let kind = kind_of(&target)?;
    let req = request(kind, target.namespace.as_deref())
        .patch(&target.name, &patch_params(manager, dry_run), &Patch::Apply(object))
        .map_err(|e| api_error(conn, "apply", &target, kube::Error::BuildRequest(e)))?;
    conn.client.request::<Value>(req).await.map_err(|e| api_error(conn, "apply", &target, e))
}

/// A JSON patch (RFC 6902) as `manager`, sent as kube's typed [`Patch::Json`] (content
/// type `application/json-patch+json`, set by kube from the variant). The operations are checked
/// against RFC 6902's shape before anything is sent. Errors are returned raw: callers retry
/// failed `test` operations.
pub(crate) async fn json_patch(conn: &Connection, manager: &str, target: &Target, ops: &[Value], dry_run: bool) -> Result<Value, kube::Error> {
    let kind = kind_of(target).map_err(|e| kube::Error::Service(e.to_string().into()))?;
    let mut params = PatchParams { field_manager: Some(manager.to_string()), ..PatchParams::default() };
    params.dry_run = dry_run;
    let req = request(kind, target.namespace.as_deref())
        .patch(&target.name, &params, &json_patch_body(ops)?)
        .map_err(kube::Error::BuildRequest)?;
    conn.client.request::<Value>(req).await
}

/// The operations as a typed JSON patch.
pub(crate) fn json_patch_body(ops: &[Value]) -> Result<Patch<()>, kube::Error> {
    Ok(Patch::Json(serde_json::from_value(Value::Array(ops.to_vec())).map_err(kube::Error::SerdeError)?))
}

/// POST.
pub(crate) async fn create(conn: &Connection, manager: &str, object: &Value, dry_run: bool) -> Result<Value, PlanError> {
    let target = Target::of(object);
    let kind = kind_of(&target)?;
    let pp = PostParams { dry_run, field_manager: Some(manager.to_string()) };
    let body = serde_json::to_vec(object).unwrap_or_default();
    let req = request(kind, target.namespace.as_deref())
        .create(&pp, body)
        .map_err(|e| api_error(conn, "create", &target, kube::Error::BuildRequest(e)))?;
    conn.client.request::<Value>(req).await.map_err(|e| api_error(conn, "create", &target, e))
}

/// PUT (the object carries the resourceVersion it was read at).
pub(crate) async fn replace(conn: &Connection, manager: &str, object: &Value, dry_run: bool) -> Result<Value, kube::Error> {
    let target = Target::of(object);
    let kind = kind_of(&target).map_err(|e| kube::Error::Service(e.to_string().into()))?;
    let pp = PostParams { dry_run, field_manager: Some(manager.to_string()) };
    let body = serde_json::to_vec(object).unwrap_or_default();
    let req = request(kind, target.namespace.as_deref()).replace(&target.name, &pp, body).map_err(kube::Error::BuildRequest)?;
    conn.client.request::<Value>(req).await
}

/// DELETE; `false` when it was already absent.
pub(crate) async fn delete(conn: &Connection, target: &Target, dry_run: bool) -> Result<bool, PlanError> {
    let kind = kind_of(target)?;
    let dp = DeleteParams { dry_run, ..DeleteParams::default() };
    let req = request(kind, target.namespace.as_deref())
        .delete(&target.name, &dp)
        .map_err(|e| api_error(conn, "delete", target, kube::Error::BuildRequest(e)))?;
    match conn.client.request::<Value>(req).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(api_error(conn, "delete", target, e)),
    }
}

/// An object without what the server owns (status, uid, resourceVersion, managedFields,
/// timestamps): what is needed to create it again. These are the fields the API server sets
/// and a client never sends: "uid", "resourceVersion", "generation", "creationTimestamp",
/// "deletionTimestamp", "deletionGracePeriodSeconds" and "selfLink" are described as populated
/// by the system and read-only in ObjectMeta (<https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/#System>),
/// `managedFields` is the server's record of field managers
/// (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#managed-fields>), and
/// `status` is written through its own subresource
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/#object-spec-and-status>).
/// Everything else, annotations included, is the object's own.
pub fn portable(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            meta.shift_remove(k);
        }
    }
    v
}

/// Whether everything in `want` is in `have`: maps by key (extra keys in `have` are fine, e.g.
/// server defaults), arrays element by element with equal lengths, scalars equal.
pub(crate) fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => h.len() == w.len() && h.iter().zip(w).all(|(a, b)| contains(a, b)),
        (h, w) => h == w,
    }
}

/// `have` reduced to the keys `want` has (arrays: element-wise when lengths match, else whole),
/// to show the part of a live object a change touches.
pub(crate) fn project(have: &Value, want: &Value) -> Value {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            let mut out = Map::new();
            for (k, wv) in w {
                if let Some(hv) = h.get(k) {
                    out.insert(k.clone(), project(hv, wv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(h), Value::Array(w)) if h.len() == w.len() => {
            Value::Array(h.iter().zip(w).map(|(a, b)| project(a, b)).collect())
        }
        (h, _) => h.clone(),
    }
}

#[cfg(test)]
mod json_patch_tests {
    use super::*;
    use meshmove_model::inventory::kinds;

    #[test]
    fn json_patches_are_typed_json_patches_on_the_wire() {
        let ops = vec![
            serde_json::json!({"op": "test", "path": "/metadata/labels/app", "value": "api"}),
            serde_json::json!({"op": "add", "path": "/metadata/labels/istio-injection", "value": "enabled"}),
            serde_json::json!({"op": "remove", "path": "/metadata/annotations/a~1b"}),
        ];
        let params = PatchParams { field_manager: Some(super::super::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        let req = request(&kinds::DEPLOYMENT, Some("shop")).patch("api", &params, &json_patch_body(&ops).unwrap()).unwrap();
        assert_eq!(req.headers()[http::header::CONTENT_TYPE], "application/json-patch+json");
        let sent: Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(sent, Value::Array(ops));
        // Not an RFC 6902 operation: refused before anything is sent.
        assert!(json_patch_body(&[serde_json::json!({"op": "merge", "path": "/x"})]).is_err());
        assert!(json_patch_body(&[serde_json::json!({"op": "add", "path": "no-slash", "value": 1})]).is_err());
    }
}
