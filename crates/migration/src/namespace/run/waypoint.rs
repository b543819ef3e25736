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
    /// The Gateway whose `Programmed` condition `ns create` waits for ([`programmed_wait`]).
    pub wait: Option<Target>,
    pub notes: Vec<String>,
}

/// The Gateway API condition of a Gateway whose data plane is configured: "This condition
/// indicates whether a Gateway has generated some configuration that is assumed to be ready soon
/// in the underlying data plane" (Gateway API `GatewayConditionProgrammed`,
/// <https://gateway-api.sigs.k8s.io/reference/spec/#gatewayconditiontype>). istiod sets it on a
/// waypoint once its Deployment has a ready pod and its Service an address, and only a waypoint
/// with an address in its status takes the traffic of what is bound to it (istio/istio
/// `pilot/pkg/serviceregistry/kube/controller/ambient/waypoints.go`: a Gateway without
/// `status.addresses` is no waypoint yet, and a Service bound to it is reported "not ready" and
/// keeps going without one). `istioctl waypoint apply --wait` waits for the same condition
/// (istio/istio `istioctl/pkg/waypoint/waypoint.go`).
pub const PROGRAMMED: &str = "Programmed";

/// The wait of `ns create` for the waypoint to be programmed, with the command's timeout (a
/// timeout fails the step as a rollout wait does: the journal records it, and rerunning
/// `ns create` resumes).
pub(super) fn programmed_wait(plan: &WaypointPlan) -> Option<Change> {
    plan.wait.clone().map(|target| Change::WaitCondition { target, condition: PROGRAMMED.to_string() })
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
        plan.notes.push(format!(
            "going ahead despite the missing class (--force): {why}; the waypoint stays unprogrammed until it exists, so its {PROGRAMMED} condition is not waited for, and {} gets no HTTP routing or request metrics at a waypoint until then",
            sides.mesh
        ));
    }
    let class_present = classes.of(&kinds::GATEWAY_CLASS).any(|c| c.name == wp::WAYPOINT_CLASS);
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
    if class_present {
        plan.wait = plan.record.as_ref().map(gateway_target);
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
