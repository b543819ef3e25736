//! Listing kinds from a cluster into an inventory: each kind once, paginated, concurrently.

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::{GroupVersionKind, Request};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::Deserialize;
use serde_json::Value;

use super::{ClusterError, Connection};
use meshmove_model::inventory::read::{self, Exact};
use meshmove_model::inventory::{Inventory, Kind, Object, Origin, SourceInfo, Unavailable};

/// Page size for LIST calls (kubectl uses 500 too).
pub const PAGE_SIZE: u32 = 500;
const CONCURRENT_LISTS: usize = 6;

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Exact>,
}

/// List `kinds` from the cluster. Namespaced kinds are listed in `namespace` (all namespaces when
/// `None`), except those in `cluster_wide`; cluster-scoped kinds cluster-wide. A kind whose CRD is
/// absent (404 for a custom kind), whose list is forbidden (403), or a built-in kind the server
/// does not find (404, [`Unavailable::NotFound`]) is recorded as unavailable and the load
/// continues; unreachable servers and rejected credentials stop it. Commands that read the cluster
/// for a report use [`load_readable`], which also stops when nothing at all could be read.
pub async fn load(
    conn: &Connection,
    kinds: &[&'static Kind],
    cluster_wide: &[&'static Kind],
    namespace: Option<&str>,
) -> Result<Inventory, ClusterError> {
    let mut wanted: Vec<&'static Kind> = kinds.to_vec();
    wanted.sort();
    wanted.dedup();
    let results: Vec<_> = stream::iter(wanted.iter().map(|&k| async move {
        let ns = if cluster_wide.contains(&k) { None } else { namespace };
        (k, list_kind(conn, k, ns).await)
    }))
        .buffer_unordered(CONCURRENT_LISTS)
        .collect()
        .await;
    let mut listed = BTreeMap::new();
    let mut per_kind: BTreeMap<&'static Kind, Vec<Object>> = BTreeMap::new();
    for (kind, result) in results {
        match result? {
            Ok(objects) => {
                listed.insert(kind, None);
                per_kind.insert(kind, objects);
            }
            Err(why) => {
                listed.insert(kind, Some(why));
            }
        }
    }
    // Deterministic order whatever order the lists finished in: by kind, then as listed.
    let objects = per_kind.into_values().flatten().collect();
    let source = SourceInfo::Cluster { context: conn.context.clone(), namespace: namespace.map(str::to_string) };
    let wide = cluster_wide.iter().copied().filter(|k| k.namespaced).collect();
    Ok(Inventory::from_cluster(objects, listed, source, conn.namespace.clone()).with_cluster_wide(wide))
}

/// [`load`], then refuse a load that read nothing: when every list was refused or not found there
/// is nothing to check, and a report of "no findings" would be a lie. The error (exit code 3)
/// names each failed list and the RBAC the command needs.
pub async fn load_readable(
    conn: &Connection,
    kinds: &[&'static Kind],
    cluster_wide: &[&'static Kind],
    namespace: Option<&str>,
) -> Result<Inventory, ClusterError> {
    let inventory = load(conn, kinds, cluster_wide, namespace).await?;
    match nothing_read(conn, &inventory) {
        Some(e) => Err(e),
        None => Ok(inventory),
    }
}

/// The error when every kind the inventory asked for was refused or not found.
pub(super) fn nothing_read(conn: &Connection, inventory: &Inventory) -> Option<ClusterError> {
    let unread = inventory.unread();
    if !unread.is_empty() && !inventory.listed_any() {
        let (failures, hint) = describe_unread(inventory);
        return Some(ClusterError::NothingRead { context: conn.context.clone(), failures, hint });
    }
    None
}

/// The error of a command that cannot work from a partial view (`action`, e.g. "generate
/// NetworkPolicies"), when some kinds of `inventory` could not be read; `None` when every kind was.
pub fn unread_error(inventory: &Inventory, action: &str) -> Option<ClusterError> {
    if inventory.unread().is_empty() {
        return None;
    }
    let context = match &inventory.source {
        SourceInfo::Cluster { context, .. } => context.clone(),
        SourceInfo::Files { .. } => return None,
    };
    let (failures, hint) = describe_unread(inventory);
    Some(ClusterError::Unread { context, action: action.to_string(), failures, hint })
}

/// One line per unread kind, and a hint naming the `list` permissions (by resource and scope)
/// that would let the command read them.
fn describe_unread(inventory: &Inventory) -> (Vec<String>, String) {
    // Secrets and ConfigMaps reach these errors only through the analysis commands, which read
    // them by reference (`super::fetch`): they need `get` on them, not `list`.
    let verb = |k: &Kind| if super::fetch::BY_REFERENCE.contains(&k) { "get" } else { "list" };
    let unread = inventory.unread();
    let failures = unread.iter().map(|(k, why)| format!("{} {}: {}", verb(k), k.resource(), why.describe(k))).collect();
    let scoped_ns = match &inventory.source {
        SourceInfo::Cluster { namespace: Some(ns), .. } => Some(ns.clone()),
        _ => None,
    };
    // (verb, scope) -> resources, in the order the grants are named.
    let mut scopes: Vec<((&str, u8), Vec<String>)> = Vec::new();
    let mut not_found = false;
    for (kind, why) in &unread {
        not_found |= matches!(why, Unavailable::NotFound { .. });
        let scope = if !kind.namespaced {
            2
        } else if scoped_ns.is_some() && !inventory.complete_across_namespaces(kind) {
            0
        } else {
            1
        };
        let key = (verb(kind), scope);
        match scopes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(kind.resource()),
            None => scopes.push((key, vec![kind.resource()])),
        }
    }
    scopes.sort_by_key(|((v, scope), _)| (*scope, *v != "list"));
    let grants: Vec<String> = scopes
        .iter()
        .map(|((v, scope), list)| match (scope, &scoped_ns) {
            (0, Some(ns)) => format!("`{v}` on {} in namespace {ns} (a Role)", list.join(", ")),
            (2, _) => format!("`{v}` on {} (cluster-scoped: a ClusterRole)", list.join(", ")),
            _ => format!("`{v}` on {} in all namespaces (a ClusterRole)", list.join(", ")),
        })
        .collect();
    // The command to check one grant with: a listed kind when there is one (the by-reference
    // kinds are unread when the workloads naming them are).
    let first = unread.iter().map(|(k, _)| *k).find(|k| verb(k) == "list").unwrap_or(unread[0].0);
    let v = verb(first);
    let check = match (&scoped_ns, first.namespaced && !inventory.complete_across_namespaces(first)) {
        (Some(ns), true) => format!("kubectl auth can-i {v} {} -n {ns}", first.resource()),
        _ if first.namespaced => format!("kubectl auth can-i {v} {} -A", first.resource()),
        _ => format!("kubectl auth can-i {v} {}", first.resource()),
    };
    let mut hint = format!("this command needs {}; check with `{check}`", grants.join(", and "));
    if not_found {
        hint.push_str(
            "; built-in kinds answered 404 Not Found, so also check that the kubeconfig's server URL is a Kubernetes API server (with any path prefix a proxy needs)",
        );
    }
    (failures, hint)
}

type KindResult = Result<Result<Vec<Object>, Unavailable>, ClusterError>;

async fn list_kind(conn: &Connection, kind: &'static Kind, namespace: Option<&str>) -> KindResult {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(kind.group, kind.version, kind.kind), kind.plural);
    let ns = if kind.namespaced { namespace } else { None };
    let request = Request::new(<DynamicObject as kube::Resource>::url_path(&ar, ns));
    let mut objects = Vec::new();
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let http_req = request.list(&params).map_err(|e| api_error(conn, kind, ns, kube::Error::BuildRequest(e)))?;
        let page: ListPage = match conn.client.request(http_req).await {
            Ok(page) => page,
            // An absent CRD is an answer (the kind does not exist there); a built-in kind that is
            // not found means the server is not the Kubernetes API it should be.
            Err(kube::Error::Api(status)) if status.code == 404 && kind.custom => return Ok(Err(Unavailable::NotServed)),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let said = if status.message.is_empty() { String::new() } else { format!(" ({})", status.message) };
                let place = if kind.namespaced { scope(ns) } else { "cluster-scoped".to_string() };
                return Ok(Err(Unavailable::NotFound {
                    message: format!(
                        "404 Not Found for list {} ({place}){said}, a kind every Kubernetes API server serves",
                        kind.resource(),
                    ),
                }));
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                let message = if status.message.is_empty() {
                    format!("forbidden: cannot list {} ({})", kind.resource(), scope(ns))
                } else {
                    status.message.clone()
                };
                return Ok(Err(Unavailable::Forbidden { message }));
            }
            Err(e) => return Err(api_error(conn, kind, ns, e)),
        };
        let origin = Origin::Cluster { context: conn.context.clone() };
        for Exact(item) in page.items {
            objects.push(to_object(item, kind, origin.clone()));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => break,
        }
    }
    Ok(Ok(objects))
}

fn scope(ns: Option<&str>) -> String {
    ns.map_or_else(|| "all namespaces".to_string(), |n| format!("namespace {n}"))
}

pub(super) fn to_object(mut value: Value, kind: &'static Kind, origin: Origin) -> Object {
    // LIST items omit kind/apiVersion; the inventory needs them on every object. Field ownership
    // records go: nothing that reads an inventory uses them (see `read::complete_item`).
    if let Value::Object(map) = &mut value {
        read::complete_item(map, kind.kind, &kind.api_version(), true);
    }
    let meta = value.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    let namespace = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string);
    Object { api_version: kind.api_version(), kind: kind.kind.to_string(), namespace, name, value, origin, pod: None }
}

/// Classify a failed call: unreachable, unauthorized, or another API error naming verb and resource.
pub(crate) fn api_error(conn: &Connection, kind: &Kind, ns: Option<&str>, e: kube::Error) -> ClusterError {
    let context = conn.context.clone();
    match &e {
        kube::Error::Api(status) if status.code == 401 => ClusterError::Unauthorized {
            context,
            code: 401,
            message: status.message.clone(),
            source: e,
        },
        kube::Error::Api(status) => ClusterError::Api {
            verb: "list",
            resource: format!("{} ({})", kind.resource(), scope(ns)),
            message: format!("{} {}", status.code, status.message),
            source: e,
        },
        _ => ClusterError::Unreachable { context, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::inventory::kinds;

    #[test]
    fn listed_items_get_their_kind_and_lose_field_ownership_records() {
        let item = serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"},
                         "managedFields": [{"manager": "helm", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 2}
        });
        let o = to_object(item, &kinds::DEPLOYMENT, Origin::Cluster { context: "c".into() });
        assert_eq!((o.kind.as_str(), o.namespace.as_deref(), o.name.as_str()), ("Deployment", Some("shop"), "api"));
        assert_eq!(o.value["apiVersion"], "apps/v1");
        assert_eq!(o.value["kind"], "Deployment");
        assert!(o.value["metadata"].get("managedFields").is_none(), "{}", o.value);
        assert_eq!(o.value["metadata"]["labels"]["app"], "api");
        assert_eq!(o.value["spec"]["replicas"], 2);
    }

    #[test]
    fn a_listed_page_reads_as_the_same_list_saved_to_a_file() {
        // One reader for both sources: the items of a LIST page and the same page saved with
        // `kubectl get pods -o json` (a typed list) become the same objects.
        let page = r#"{"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7", "continue": "next"},
            "items": [
              {"metadata": {"name": "api-1", "namespace": "shop", "labels": {"app": "api", "pod-template-hash": "5d"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5d", "uid": "u", "controller": true}]},
               "spec": {"containers": [{"name": "api", "image": "shop/api:1", "ports": [{"name": "http", "containerPort": 8080}],
                                        "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]}]},
               "status": {"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}]}},
              {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "namespace": "shop"}, "spec": {"containers": []}}
            ]}"#;
        let listed: ListPage = serde_json::from_str(page).unwrap();
        assert_eq!(listed.metadata.continue_.as_deref(), Some("next"));
        let live: Vec<Object> =
            listed.items.into_iter().map(|Exact(v)| to_object(v, &kinds::POD, Origin::Cluster { context: "c".into() })).collect();
        let saved = meshmove_model::inventory::load_str(page, Some(std::path::Path::new("pods.json")), "default").unwrap();
        let ids = |objects: &[Object]| -> Vec<(String, String, Option<String>, String, Value)> {
            objects.iter().map(|o| (o.api_version.clone(), o.kind.clone(), o.namespace.clone(), o.name.clone(), o.value.clone())).collect()
        };
        assert_eq!(ids(&live), ids(&saved));
        assert_eq!(serde_json::to_string(&live[0].value).unwrap(), serde_json::to_string(&saved[0].value).unwrap(), "same key order");
    }
}
