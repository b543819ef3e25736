//! `ns create --mode ambient`: the waypoint of the mesh namespace, and `ns rollback` taking it
//! away again.
//!
//! In ambient mode ztunnel moves bytes only; HTTP routing and request metrics need a waypoint,
//! an Envoy that Services are bound to (<https://istio.io/latest/docs/ambient/usage/waypoint/>).
//! `ns create` deploys one in the mesh namespace (the Gateway `istioctl waypoint apply` writes,
//! [`meshmove_istio::waypoint::Waypoint::gateway`], carrying the migration's labels), or uses the
//! one named with `--waypoint`, and binds the mesh namespace to it with `istio.io/use-waypoint`
//! (plus `istio.io/use-waypoint-namespace` when it lives elsewhere) on the Namespace it applies
//! ([`crate::namespace::copy::mesh_namespace`]), as `istioctl waypoint apply --enroll-namespace`
//! does; the Gateway is the first object written into the namespace, so the waypoint starts
//! while the copies roll out (at 0 % no traffic reaches them).
//! Waypoints are Gateway API objects of the class istiod serves, so the Gateway API CRDs and the
//! `istio-waypoint` GatewayClass must be there: without them nothing is written.
//! `ns rollback` removes the binding and deletes a waypoint `ns create` deployed.

use super::*;
use crate::namespace::WaypointChoice;
use crate::namespace::state::WaypointRecord;
use meshmove_istio::waypoint::{self as wp, Waypoint};

/// `ROLE_LABEL` value of a waypoint `ns create` deployed.
pub const WAYPOINT_ROLE: &str = "waypoint";

/// The waypoint part of `ns create`.
#[derive(Debug, Default)]
pub(super) struct WaypointPlan {
    /// The waypoint the mesh namespace will be bound to.
    pub record: Option<WaypointRecord>,
    /// The Gateway to apply (a waypoint `ns create` deploys).
    pub gateway: Option<Value>,
    pub notes: Vec<String>,
}

fn namespace_target(name: &str) -> Target {
    Target::new("v1", "Namespace", None, name)
}

fn gateway_target(w: &WaypointRecord) -> Target {
    Target::new(
        &kinds::GATEWAY_API_GATEWAY.api_version(),
        "Gateway",
        Some(&w.namespace),
        &w.name,
    )
}

/// Decide the waypoint of an ambient mesh namespace whose labels will be `mesh_labels`. Refused
/// when the cluster cannot run one (no Gateway API CRDs, no `istio-waypoint` class; `force`
/// goes ahead without the class) or the named one cannot serve the namespace.
pub(super) async fn plan_waypoint(
    conn: &Connection,
    sides: &Sides,
    choice: &WaypointChoice,
    mesh_labels: &meshmove_istio::Labels,
    force: bool,
) -> Result<WaypointPlan, NsError> {
    let mut plan = WaypointPlan::default();
    if *choice == WaypointChoice::None {
        plan.notes.push(format!(
            "no waypoint (--no-waypoint): {} is ambient at L4 only; its Services get no HTTP routing at a waypoint, and the gates read ztunnel's connection metrics only",
            sides.mesh
        ));
        return Ok(plan);
    }
    let install = "install the Gateway API CRDs (standard channel, https://gateway-api.sigs.k8s.io/guides/#installing-gateway-api) and Istio with ambient enabled (istiod then creates the istio-waypoint GatewayClass), or pass --no-waypoint to create the mesh side at L4 only";
    let classes = cluster::load(conn, &[&kinds::GATEWAY_CLASS], &[], None).await?;
    match classes.availability(&kinds::GATEWAY_CLASS) {
        None => {}
        Some(meshmove_model::inventory::Unavailable::NotServed) => {
            return Err(refused(format!(
                "ambient mode needs a waypoint for weighted HTTP routing in {}, and the cluster does not serve the Gateway API ({} not found); nothing was written: {install}",
                sides.mesh,
                kinds::GATEWAY_CLASS.resource()
            )));
        }
        Some(why) => {
            return Err(refused(format!(
                "cannot read {} to check for the {} class ({}); nothing was written: grant `list` on them, or pass --no-waypoint",
                kinds::GATEWAY_CLASS.resource(),
                wp::WAYPOINT_CLASS,
                why.describe(&kinds::GATEWAY_CLASS)
            )));
        }
    }
    if !classes
        .of(&kinds::GATEWAY_CLASS)
        .any(|c| c.name == wp::WAYPOINT_CLASS)
    {
        let why = format!(
            "the cluster has no GatewayClass {}: istiod creates it when ambient is enabled and the Gateway API CRDs were installed",
            wp::WAYPOINT_CLASS
        );
        if !force {
            return Err(refused(format!(
                "{why}; without it no waypoint runs for {} and its Services get no HTTP routing; nothing was written: {install} (or pass --force to write the waypoint anyway)",
                sides.mesh
            )));
        }
        plan.notes.push(format!("going ahead despite the missing class (--force): {why}; the waypoint stays unprogrammed until it exists"));
    }
    let wanted = match choice {
        WaypointChoice::Existing(w) => w.clone(),
        _ => Waypoint {
            namespace: sides.mesh.clone(),
            name: wp::DEFAULT_WAYPOINT_NAME.to_string(),
        },
    };
    let gateways = cluster::load(
        conn,
        &[&kinds::GATEWAY_API_GATEWAY],
        &[],
        Some(&wanted.namespace),
    )
    .await?;
    if let Some(why) = gateways.availability(&kinds::GATEWAY_API_GATEWAY) {
        return Err(refused(format!(
            "cannot read Gateways in {} ({}); nothing was written",
            wanted.namespace,
            why.describe(&kinds::GATEWAY_API_GATEWAY)
        )));
    }
    let existing = gateways
        .of(&kinds::GATEWAY_API_GATEWAY)
        .find(|g| g.name == wanted.name)
        .map(|g| g.value.clone());
    let ours = existing.as_ref().is_some_and(|g| {
        g.pointer("/metadata/labels")
            .and_then(|l| l.get(crate::namespace::ROLE_LABEL))
            .and_then(Value::as_str)
            == Some(WAYPOINT_ROLE)
            && g.pointer("/metadata/labels")
                .and_then(|l| l.get(crate::namespace::COPIED_FROM_LABEL))
                .and_then(Value::as_str)
                == Some(sides.legacy.as_str())
    });
    match (choice, existing) {
        (WaypointChoice::Existing(w), None) => {
            return Err(refused(format!(
                "--waypoint {}/{}: no such Gateway; nothing was written (create it with `istioctl waypoint apply -n {} --name {}`, or leave --waypoint out to have one deployed in {})",
                w.namespace, w.name, w.namespace, w.name, sides.mesh
            )));
        }
        (_, Some(g)) if !ours => {
            if let Some(why) = wp::unusable(&g, &sides.mesh, mesh_labels) {
                return Err(refused(format!("{why}; nothing was written")));
            }
            plan.notes.push(format!(
                "{} is bound to the existing waypoint {}/{} (not deleted by `ns rollback`)",
                sides.mesh, wanted.namespace, wanted.name
            ));
            plan.record = Some(WaypointRecord {
                namespace: wanted.namespace,
                name: wanted.name,
                created: false,
            });
        }
        _ => {
            let labels = json!({
                "app.kubernetes.io/managed-by": crate::namespace::MANAGED_BY,
                crate::namespace::COPIED_FROM_LABEL: sides.legacy,
                crate::namespace::ROLE_LABEL: WAYPOINT_ROLE,
            });
            plan.gateway = Some(wanted.gateway(&labels));
            plan.record = Some(WaypointRecord {
                namespace: wanted.namespace,
                name: wanted.name,
                created: true,
            });
        }
    }
    Ok(plan)
}

/// `ns rollback`: unbind the mesh namespace and delete a waypoint `ns create` deployed (live
/// objects only: what is already gone is not deleted again).
pub(super) async fn rollback_changes(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
) -> Result<Vec<Change>, NsError> {
    let Some(w) = &st.waypoint else {
        return Ok(Vec::new());
    };
    let mut changes = Vec::new();
    if namespace_exists(conn, &sides.mesh).await? {
        for key in [wp::USE_WAYPOINT_LABEL, wp::USE_WAYPOINT_NAMESPACE_LABEL] {
            changes.push(Change::label(namespace_target(&sides.mesh), key, None));
        }
    }
    if w.created {
        let live = cluster::load(
            conn,
            &[&kinds::GATEWAY_API_GATEWAY],
            &[],
            Some(&w.namespace),
        )
        .await?;
        if live
            .of(&kinds::GATEWAY_API_GATEWAY)
            .any(|g| g.name == w.name)
        {
            changes.push(Change::Delete {
                target: gateway_target(w),
            });
        }
    }
    Ok(changes)
}
