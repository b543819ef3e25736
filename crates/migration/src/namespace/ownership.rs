//! Which namespaces a namespace-based migration owns, so that the in-place commands (`enable`,
//! `expose`, `mtls strict`) do not write over it.
//!
//! The marks are the ones `ns create` leaves anyway: the mesh Namespace and every object of the
//! mesh side carry [`COPIED_FROM_LABEL`] naming the legacy namespace (and
//! `app.kubernetes.io/managed-by: kubectl-mesh-migrate`); the legacy namespace holds the journal
//! whose extension [`super::run::STATE_KEY`] records the migration. A namespace is under
//! migration when it is the mesh side of one, or the legacy side of a recorded migration whose
//! mesh side still exists (a rolled-back migration whose mesh namespace is gone no longer owns
//! anything).
//!
//! Why the in-place commands must not run there: `enable` writes a VirtualService per Service
//! named like the Service, which on the mesh side is the name of the weighted VirtualService that
//! splits the legacy host (the next `ns shift` would silently revert it); on the legacy side a
//! second VirtualService for the same host makes Istio's merge order decide the route
//! (<https://istio.io/latest/docs/ops/best-practices/traffic-management/#split-virtual-services>);
//! `mtls strict` would refuse plaintext from the legacy side's unmeshed callers mid-shift; and
//! `expose` would add a second entry point beside the Gateway `ns create` made.

use serde_json::Value;

use super::state::{NsState, Phase};
use super::{COPIED_FROM_LABEL, MESH_SUFFIX};

/// Which side of a migration a namespace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Legacy,
    Mesh,
}

/// The migration that owns a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub side: Side,
    pub legacy: String,
    pub mesh: String,
    /// The recorded phase and weight, when the legacy journal could be read.
    pub phase: Option<(Phase, u8)>,
}

/// The legacy namespace a mesh Namespace object was copied from (its [`COPIED_FROM_LABEL`]).
pub fn copied_from(namespace: &Value) -> Option<&str> {
    namespace.pointer("/metadata/labels").and_then(|l| l.get(COPIED_FROM_LABEL)).and_then(Value::as_str)
}

/// Whether `object` carries the marker of the migration of `legacy` (its [`COPIED_FROM_LABEL`]
/// names it): every object `ns create` writes and the mesh Namespace carry it.
pub fn marked(object: &Value, legacy: &str) -> bool {
    copied_from(object) == Some(legacy)
}

/// Decide from what was read: `namespace` (its Namespace object, if it exists), the migration
/// state recorded in its own journal, and whether its `-mesh` namespace exists.
pub fn owner(namespace: &str, object: Option<&Value>, own_state: Option<&NsState>, mesh_exists: bool) -> Option<Owner> {
    if let Some(legacy) = object.and_then(copied_from) {
        return Some(Owner {
            namespace: namespace.to_string(),
            side: Side::Mesh,
            legacy: legacy.to_string(),
            mesh: namespace.to_string(),
            phase: None,
        });
    }
    let st = own_state?;
    if st.phase == Phase::RolledBack && !mesh_exists {
        return None;
    }
    Some(Owner {
        namespace: namespace.to_string(),
        side: Side::Legacy,
        legacy: namespace.to_string(),
        mesh: format!("{namespace}{MESH_SUFFIX}"),
        phase: Some((st.phase, st.weight)),
    })
}

impl Owner {
    /// The refusal of `command` (`enable`, `expose`, `mtls strict`) on this namespace: which
    /// migration, why, and what to do instead.
    pub fn refusal(&self, command: &str) -> String {
        let (legacy, mesh) = (&self.legacy, &self.mesh);
        let side = match self.side {
            Side::Legacy => "the legacy side",
            Side::Mesh => "the mesh side",
        };
        let at = match self.phase {
            Some((p, w)) => format!(", {p} at {w} %"),
            None => String::new(),
        };
        let why = match command {
            "enable" => format!(
                "`enable` would write VirtualServices over the weighted ones that split traffic between {legacy} and {mesh} (the next `ns shift` would revert them) and restart workloads the migration counts on"
            ),
            "expose" => format!(
                "`expose` would add an Ingress beside the Istio Gateway `ns create` made for {legacy}'s external traffic, outside the weighted split"
            ),
            _ => format!(
                "`{command}` would change the mTLS mode while traffic is split between {legacy} and {mesh}, refusing plaintext from callers the migration has not moved yet"
            ),
        };
        let what = match self.phase {
            _ if self.side == Side::Mesh => format!(
                "manage {mesh} with `kubectl mesh-migrate ns` (`ns status {legacy}` shows its routing and Gateway); when the migration is complete and {legacy} retired, the Gateway `ns create` made serves external traffic"
            ),
            Some((Phase::Completed, _)) => format!(
                "the migration is complete: {legacy}'s traffic is served by {mesh}; `ns rollback {legacy}` returns to it, after which `ns cleanup {legacy}` removes {mesh} so that `{command}` can run on {legacy} in place"
            ),
            _ => format!(
                "finish it (`kubectl mesh-migrate ns complete {legacy}`) or return (`kubectl mesh-migrate ns rollback {legacy}`, then `kubectl mesh-migrate ns cleanup {legacy}` to remove {mesh}) before `{command}`; `kubectl mesh-migrate ns status {legacy}` shows where it stands"
            ),
        };
        format!(
            "namespace {} is {side} of the namespace-based migration {legacy} -> {mesh}{at}: {why}; nothing was changed. {}",
            self.namespace,
            capitalize(&what)
        )
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The migration owning `namespace`, read from the cluster: its Namespace object, its journal,
/// whether its `-mesh` namespace exists.
pub async fn owner_of(conn: &meshmove_kube::cluster::Connection, namespace: &str) -> Result<Option<Owner>, super::run::NsError> {
    use meshmove_kube::cluster::ClusterError;
    use meshmove_kube::plan::PlanError;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(conn.client.clone());
    let get = |name: String| {
        let api = api.clone();
        async move {
            api.get_opt(&name).await.map_err(|e| {
                super::run::NsError::Plan(PlanError::Cluster(ClusterError::Api {
                    verb: "get",
                    resource: format!("namespaces/{name}"),
                    message: e.to_string(),
                    source: e,
                }))
            })
        }
    };
    let Some(ns) = get(namespace.to_string()).await? else { return Ok(None) };
    let object = serde_json::to_value(&ns).unwrap_or_default();
    if let Some(legacy) = copied_from(&object) {
        // The phase, from the legacy namespace's journal when it can be read.
        let phase = match super::Sides::new(legacy) {
            Ok(sides) => super::run::load_state(conn, &sides).await.ok().and_then(|(_, st)| st).map(|st| (st.phase, st.weight)),
            Err(_) => None,
        };
        return Ok(owner(namespace, Some(&object), None, false).map(|o| Owner { phase, ..o }));
    }
    let Ok(sides) = super::Sides::new(namespace) else { return Ok(None) };
    let (_, st) = super::run::load_state(conn, &sides).await?;
    let Some(st) = st else { return Ok(None) };
    let mesh_exists = get(sides.mesh.clone()).await?.is_some();
    Ok(owner(namespace, Some(&object), Some(&st), mesh_exists))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(phase: Phase, weight: u8) -> NsState {
        let mut s = NsState::new(&super::super::Sides::new("shop").unwrap(), Default::default());
        s.phase = phase;
        s.weight = weight;
        s
    }

    #[test]
    fn the_mesh_side_is_known_by_its_label_and_the_legacy_side_by_its_journal() {
        let mesh = json!({"metadata": {"name": "shop-mesh", "labels": {COPIED_FROM_LABEL: "shop"}}});
        let o = owner("shop-mesh", Some(&mesh), None, false).unwrap();
        assert_eq!((o.side, o.legacy.as_str(), o.mesh.as_str()), (Side::Mesh, "shop", "shop-mesh"));
        let plain = json!({"metadata": {"name": "shop"}});
        assert_eq!(owner("shop", Some(&plain), None, false), None, "no journal state: not under migration");
        let o = owner("shop", Some(&plain), Some(&state(Phase::Shifting, 25)), true).unwrap();
        assert_eq!((o.side, o.mesh.as_str(), o.phase), (Side::Legacy, "shop-mesh", Some((Phase::Shifting, 25))));
        // Rolled back with the mesh namespace gone: nothing is owned any more.
        assert_eq!(owner("shop", Some(&plain), Some(&state(Phase::RolledBack, 0)), false), None);
        assert!(owner("shop", Some(&plain), Some(&state(Phase::RolledBack, 0)), true).is_some());
    }

    #[test]
    fn the_refusal_names_the_migration_and_the_way_out() {
        let o = owner("shop", None, Some(&state(Phase::Shifting, 25)), true).unwrap();
        let m = o.refusal("enable");
        assert!(m.starts_with("namespace shop is the legacy side of the namespace-based migration shop -> shop-mesh, shifting at 25 %"), "{m}");
        assert!(m.contains("kubectl mesh-migrate ns complete shop") && m.contains("kubectl mesh-migrate ns rollback shop"), "{m}");
        let mesh = json!({"metadata": {"labels": {COPIED_FROM_LABEL: "shop"}}});
        let m = owner("shop-mesh", Some(&mesh), None, false).unwrap().refusal("mtls strict");
        assert!(m.starts_with("namespace shop-mesh is the mesh side of the namespace-based migration shop -> shop-mesh:"), "{m}");
        let o = Owner { phase: Some((Phase::Completed, 100)), ..owner("shop-mesh", Some(&mesh), None, false).unwrap() };
        assert!(o.refusal("enable").starts_with("namespace shop-mesh is the mesh side of the namespace-based migration shop -> shop-mesh, completed at 100 %:"));
        assert!(m.contains("`mtls strict`"), "{m}");
    }
}
