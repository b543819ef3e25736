//! Reading by reference: the Secrets and ConfigMaps workloads name, fetched one by one with GET
//! instead of listing every one in scope. A command that only needs what pods read then needs
//! `get` on those kinds, never `list`: it cannot enumerate a namespace's Secrets, and reads none
//! that no workload uses.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use kube::api::{ApiResource, DynamicObject};
use kube::core::{GroupVersionKind, Request};

use super::load::{load, nothing_read, to_object};
use super::{ClusterError, Connection};
use meshmove_model::inventory::{Inventory, Kind, Object, Origin, Unavailable, kinds};
use meshmove_model::workload::{WORKLOAD_KINDS, workloads};

/// The kinds analysis commands read by reference ([`load_by_reference`]): Secrets and ConfigMaps.
pub static BY_REFERENCE: [&Kind; 2] = [&kinds::SECRET, &kinds::CONFIG_MAP];

const CONCURRENT_GETS: usize = 8;

/// What a round of GETs found.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The objects that exist and could be read.
    pub objects: Vec<Object>,
    /// `(namespace, name)` answered 404: named by a workload, absent from the cluster.
    pub missing: Vec<(String, String)>,
    /// `(namespace, name, message)` answered 403: RBAC refused the GET.
    pub forbidden: Vec<(String, String, String)>,
}

impl Fetched {
    /// The kind is unread when any GET was refused: the first refusal's message, and how many
    /// more there were.
    fn refused(&self) -> Option<Unavailable> {
        let (_, _, message) = self.forbidden.first()?;
        let more = self.forbidden.len() - 1;
        let message = if more == 0 { message.clone() } else { format!("{message} (and {more} more)") };
        Some(Unavailable::Forbidden { message })
    }
}

/// GET each `(namespace, name)` of `kind`. 404 is recorded as missing and 403 as forbidden, and
/// the round goes on; an unreachable server, rejected credentials or another API error stops it.
pub async fn get_named(conn: &Connection, kind: &'static Kind, names: &[(String, String)]) -> Result<Fetched, ClusterError> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(kind.group, kind.version, kind.kind), kind.plural);
    let results: Vec<_> = stream::iter(names.iter().map(|(ns, name)| {
        let ar = ar.clone();
        async move {
            let ns_opt = kind.namespaced.then_some(ns.as_str());
            let request = Request::new(<DynamicObject as kube::Resource>::url_path(&ar, ns_opt));
            let result = match request.get(name, &kube::api::GetParams::default()) {
                Ok(req) => conn.client.request::<serde_json::Value>(req).await,
                Err(e) => Err(kube::Error::BuildRequest(e)),
            };
            (ns.clone(), name.clone(), result)
        }
    }))
    .buffer_unordered(CONCURRENT_GETS)
    .collect()
    .await;
    let mut fetched = Fetched::default();
    let origin = Origin::Cluster { context: conn.context.clone() };
    for (ns, name, result) in results {
        match result {
            Ok(value) => fetched.objects.push(to_object(value, kind, origin.clone())),
            Err(kube::Error::Api(status)) if status.code == 404 => fetched.missing.push((ns, name)),
            Err(kube::Error::Api(status)) if status.code == 403 => {
                let message = if status.message.is_empty() {
                    format!("forbidden: cannot get {} {name} in namespace {ns}", kind.resource())
                } else {
                    status.message.clone()
                };
                fetched.forbidden.push((ns, name, message));
            }
            Err(e) => return Err(get_error(conn, kind, &ns, &name, e)),
        }
    }
    // Deterministic order whatever order the GETs finished in.
    fetched.objects.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    fetched.missing.sort();
    fetched.forbidden.sort();
    Ok(fetched)
}

fn get_error(conn: &Connection, kind: &Kind, ns: &str, name: &str, e: kube::Error) -> ClusterError {
    let context = conn.context.clone();
    match &e {
        kube::Error::Api(status) if status.code == 401 => {
            ClusterError::Unauthorized { context, code: 401, message: status.message.clone(), source: e }
        }
        kube::Error::Api(status) => ClusterError::Api {
            verb: "get",
            resource: format!("{} {ns}/{name}", kind.resource()),
            message: format!("{} {}", status.code, status.message),
            source: e,
        },
        _ => ClusterError::Unreachable { context, source: e },
    }
}

/// [`load`] for the kinds not in `by_reference`, then the objects of `by_reference` kinds (see
/// [`BY_REFERENCE`]) that the loaded workloads name ([`Workload::referenced`]), each with a GET
/// in its workload's namespace. A by-reference kind counts as read unless a GET was refused
/// (403): then it is unread ([`Unavailable::Forbidden`], naming how many were refused), as a
/// refused list would be; it is unread too when a workload kind was (the references are then
/// not all known). A name answered 404 is absent, as it would be from a list.
///
/// [`Workload::referenced`]: meshmove_model::workload::Workload::referenced
pub async fn load_by_reference(
    conn: &Connection,
    kinds: &[&'static Kind],
    by_reference: &[&'static Kind],
    cluster_wide: &[&'static Kind],
    namespace: Option<&str>,
) -> Result<Inventory, ClusterError> {
    let (referenced, listed): (Vec<&'static Kind>, Vec<&'static Kind>) = kinds.iter().partition(|k| by_reference.contains(k));
    let inventory = load(conn, &listed, cluster_wide, namespace).await?;
    if referenced.is_empty() {
        return Ok(inventory);
    }
    let mut state: BTreeMap<&'static Kind, Option<Unavailable>> =
        listed.iter().map(|k| (*k, inventory.availability(k))).collect();
    // Without every workload kind, the references are not all known: what was not fetched
    // cannot be told from what no workload names, so the by-reference kinds are unread too.
    let workloads_unread = WORKLOAD_KINDS.iter().filter(|k| listed.contains(k)).find_map(|k| {
        inventory.availability(k).filter(Unavailable::is_read_failure).map(|why| match why {
            Unavailable::Forbidden { message } => Unavailable::Forbidden { message: format!("the workloads naming them could not be read: {message}") },
            Unavailable::NotFound { message } => Unavailable::NotFound { message: format!("the workloads naming them could not be read: {message}") },
            other => other,
        })
    });
    let named: Vec<(&'static Kind, Vec<(String, String)>)> = referenced
        .into_iter()
        .map(|kind| {
            let names: BTreeSet<(String, String)> = workloads(&inventory)
                .iter()
                .flat_map(|w| w.referenced(kind.kind).into_iter().map(|n| (w.namespace().to_string(), n.to_string())))
                .collect();
            (kind, names.into_iter().collect())
        })
        .collect();
    let mut fetched_objects = Vec::new();
    for (kind, names) in named {
        let fetched = get_named(conn, kind, &names).await?;
        state.insert(kind, fetched.refused().or_else(|| workloads_unread.clone()));
        fetched_objects.extend(fetched.objects);
    }
    // The listed objects are moved, not copied: a cluster's Pods are most of a load's memory.
    let (source, default_namespace) = (inventory.source.clone(), inventory.default_namespace.clone());
    let objects = inventory.into_objects().into_iter().chain(fetched_objects).collect();
    let wide = cluster_wide.iter().copied().filter(|k| k.namespaced).collect();
    Ok(Inventory::from_cluster(objects, state, source, default_namespace).with_cluster_wide(wide))
}

/// GET `names` of `kind` (objects an earlier load's objects name indirectly, such as a ConfigMap
/// a configuration file names) and add those that exist to `inventory`. A 404 leaves the name
/// absent, as a list would; a refused GET (403) makes `kind` unread, naming how many were
/// refused, as in [`load_by_reference`].
pub async fn fetch_into(
    conn: &Connection,
    inventory: Inventory,
    kind: &'static Kind,
    names: &[(String, String)],
) -> Result<Inventory, ClusterError> {
    if names.is_empty() {
        return Ok(inventory);
    }
    let fetched = get_named(conn, kind, names).await?;
    let refused = fetched.refused();
    // `names` are objects a load did not read: added, not overlaid (no copy of the others).
    let missing: Vec<Object> =
        fetched.objects.into_iter().filter(|o| inventory.get(kind, o.namespace.as_deref(), &o.name).is_none()).collect();
    let out = inventory.extended(missing);
    Ok(match refused {
        None => out,
        Some(why) => out.with_unread(kind, why),
    })
}

/// [`load_by_reference`], refusing a load that read nothing (see [`super::load_readable`]).
pub async fn load_readable_by_reference(
    conn: &Connection,
    kinds: &[&'static Kind],
    by_reference: &[&'static Kind],
    cluster_wide: &[&'static Kind],
    namespace: Option<&str>,
) -> Result<Inventory, ClusterError> {
    let inventory = load_by_reference(conn, kinds, by_reference, cluster_wide, namespace).await?;
    match nothing_read(conn, &inventory) {
        Some(e) => Err(e),
        None => Ok(inventory),
    }
}
