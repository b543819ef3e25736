//! DB3016: AuthorizationPolicies the reachability analysis leaves out.
//!
//! A policy with `targetRefs` attaches to a Gateway, a waypoint or a Service and is enforced by
//! that proxy (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>,
//! `targetRefs`), for the traffic that goes through it. Whether a connection does depends on how
//! the client addresses the destination: a waypoint serves traffic addressed to the Services (or
//! workloads) bound to it with `istio.io/use-waypoint`, Service-addressed traffic only unless its
//! `istio.io/waypoint-for` label says otherwise
//! (<https://istio.io/latest/docs/ambient/usage/waypoint/>). The engine models connections
//! between pods, not the address a client dials, so it cannot tell which connections the policy
//! sees and leaves it out ([`meshmove_netpol::Engine::authz_unmodelled`]). Reachability into a
//! database may then be narrower in the cluster than reported: each such policy is a finding, so
//! the report says its verdict may be incomplete instead of passing silently.

use meshmove_model::findings::Finding;
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_netpol::Engine;
use serde_json::Value;

use super::CODE_UNMODELLED_AUTHORIZATION;

/// What a policy's `targetRefs` (or the older `targetRef`) name: `Kind/name` each.
fn targets(spec: &Value) -> Vec<String> {
    let refs = spec.get("targetRefs").and_then(Value::as_array).cloned().unwrap_or_default();
    refs.iter()
        .chain(spec.get("targetRef"))
        .map(|r| {
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            format!("{}/{}", field("kind"), field("name"))
        })
        .collect()
}

/// One finding per policy the engine leaves out, on the policy.
pub(super) fn unmodelled(inventory: &Inventory, engine: Option<&Engine>, out: &mut Vec<Finding>) {
    let Some(engine) = engine else { return };
    for (ns, name) in engine.authz_unmodelled() {
        let Some(o) = inventory.get(&kinds::AUTHORIZATION_POLICY, Some(ns), name) else { continue };
        let to = targets(o.value.get("spec").unwrap_or(&Value::Null));
        out.push(
            Finding::new(
                &CODE_UNMODELLED_AUTHORIZATION,
                format!(
                    "it attaches with targetRefs to {} and is enforced there, for the traffic that goes through that proxy; \
                     the reachability analysis models connections between pods, not how a client addresses them, and leaves it out, \
                     so the reachability reported for the databases may be wider than what is enforced",
                    to.join(", ")
                ),
            )
            .on(o),
        );
    }
}
