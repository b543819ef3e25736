//! Destinations behind an Istio ambient waypoint.
//!
//! A Service (or a namespace's Services, or a pod) labelled `istio.io/use-waypoint` sends the
//! traffic ambient clients address to it through that waypoint: the client's ztunnel opens HBONE
//! to the waypoint's pods on TCP 15008, and the waypoint opens HBONE to the destination pod on
//! 15008, with the waypoint's own identity (<https://istio.io/latest/docs/ambient/usage/waypoint/>;
//! <https://istio.io/latest/docs/ambient/usage/l4-policy/>, "Considerations": ztunnel at the
//! destination sees the waypoint, not the client). Which label binds what is Istio's rule
//! ([`meshmove_istio::waypoint::bound_to`]).
//!
//! So the destination's NetworkPolicy must admit the waypoint's pods on 15008 and its
//! AuthorizationPolicy companion the waypoint's service account; a policy that admits only the
//! clients cuts them. The generator admits the waypoint's pods when the input shows them (the
//! Deployment Istio creates for the Gateway is labelled `gateway.networking.k8s.io/gateway-name`),
//! and otherwise withholds the destination's policies, naming the binding and the override. A
//! NetworkPolicy that admits the waypoint cannot tell the waypoint's clients apart: that is the
//! waypoint's own policy's job (AuthorizationPolicies attached to it with `targetRefs`).

use meshmove_istio::waypoint::{GATEWAY_NAME_LABEL, WAYPOINT_CLASS, Waypoint, bound_to};
use meshmove_model::inventory::{Inventory, Object, kinds};
use meshmove_model::workload::{Workload, string_map};
use meshmove_netpol::{WorkloadRef, view};
use serde_json::{Value, json};

use super::proof::{From, To, Use};
use super::rules::workload_peer;
use super::run::Run;
use super::{Generation, Withheld, with_hbone};

/// How traffic reaches a destination through a waypoint.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    /// What binds it (`Service/api is labelled istio.io/use-waypoint=waypoint`).
    pub by: String,
    pub waypoint: Waypoint,
    /// The waypoint's workload among the run's workloads, or why the input does not show it.
    pub pods: Result<usize, String>,
}

impl Hop {
    /// The reason a destination behind this waypoint gets no policy.
    pub fn withheld_reason(&self) -> String {
        let why = self.pods.as_ref().err().cloned().unwrap_or_default();
        format!(
            "{}: ambient clients reach it through waypoint {}/{}, so their connections arrive from the waypoint's pods on TCP 15008 \
             with the waypoint's identity, and {why}; a policy admitting the clients would cut them",
            self.by, self.waypoint.namespace, self.waypoint.name
        )
    }

    /// How to give the destination its policy: show the waypoint's pods, or the override.
    pub fn isolate_with(&self, anyway: &str) -> String {
        format!(
            "add the waypoint's Deployment to the input (kubectl get deployment -n {} -l {GATEWAY_NAME_LABEL}={} -o yaml) so its pods are admitted, \
             or {anyway} (which cuts the traffic through the waypoint)",
            self.waypoint.namespace, self.waypoint.name
        )
    }

    /// What the policy admitting the waypoint says, for the report.
    pub fn admits(&self, waypoint: &Workload<'_>, ports: &str) -> String {
        format!(
            "waypoint {}/{} ({}/{}) on {ports} and TCP 15008 ({}): a NetworkPolicy cannot tell the waypoint's clients apart, \
             the waypoint's own AuthorizationPolicy must",
            self.waypoint.namespace,
            self.waypoint.name,
            waypoint.kind(),
            waypoint.name(),
            self.by
        )
    }
}

/// Labels of namespace `name`, as far as the input shows them.
fn namespace_labels(
    inventory: &Inventory,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    inventory
        .get(&kinds::NAMESPACE, None, name)
        .map(|o| string_map(o.value.pointer("/metadata/labels")))
        .unwrap_or_default()
}

/// The waypoint hop of every workload of `ws` (pods whose traffic a waypoint carries), given the
/// Services selecting each (`selecting`): the pods' own binding, else any selecting Service's
/// (its own label, else its namespace's). Pods no Service selects are reached by address only,
/// which a waypoint of the default `service` kind does not take.
pub(super) fn hops(
    inventory: &Inventory,
    ws: &[Workload<'_>],
    selecting: &[Vec<&Object>],
) -> Vec<Option<Hop>> {
    ws.iter()
        .zip(selecting)
        .map(|(w, services)| {
            let ns = w.namespace();
            let ns_labels = namespace_labels(inventory, ns);
            let own = bound_to(
                ns,
                &Default::default(),
                &format!("the pods of {}", w.kind()),
                w.name(),
                &w.pod_labels(),
            );
            let bound = own.or_else(|| {
                services.iter().find_map(|s| {
                    bound_to(
                        ns,
                        &ns_labels,
                        "Service",
                        &s.name,
                        &string_map(s.value.pointer("/metadata/labels")),
                    )
                })
            })?;
            Some(hop(inventory, ws, bound))
        })
        .collect()
}

/// The hop of a database whose pods the input may not show as a workload (a CloudNativePG
/// cluster): its namespace's binding.
pub(super) fn namespace_hop(
    inventory: &Inventory,
    ws: &[Workload<'_>],
    namespace: &str,
    kind: &str,
    name: &str,
) -> Option<Hop> {
    let bound = bound_to(
        namespace,
        &namespace_labels(inventory, namespace),
        kind,
        name,
        &Default::default(),
    )?;
    Some(hop(inventory, ws, bound))
}

fn hop(inventory: &Inventory, ws: &[Workload<'_>], (waypoint, by): (Waypoint, String)) -> Hop {
    let gateway = inventory.get(
        &kinds::GATEWAY_API_GATEWAY,
        Some(&waypoint.namespace),
        &waypoint.name,
    );
    let class = gateway.and_then(|g| {
        g.value
            .pointer("/spec/gatewayClassName")
            .and_then(Value::as_str)
    });
    let pods = match class {
        Some(c) if c != WAYPOINT_CLASS => Err(format!(
            "Gateway {}/{} is of class `{c}`, not `{WAYPOINT_CLASS}`, so which pods carry the traffic is unknown",
            waypoint.namespace, waypoint.name
        )),
        _ => ws
            .iter()
            .position(|x| x.namespace() == waypoint.namespace && x.pod_labels().get(GATEWAY_NAME_LABEL) == Some(&waypoint.name))
            .ok_or_else(|| format!("the input does not show the waypoint's pods (a Deployment labelled {GATEWAY_NAME_LABEL}={})", waypoint.name)),
    };
    Hop { by, waypoint, pods }
}

/// What a destination's drafting does about its waypoint.
pub(super) enum Gate<'h> {
    /// No waypoint carries its traffic, or its policy is written anyway (said in a note).
    Open,
    /// Admit the waypoint's pods (workload index) beside its clients.
    Admit(&'h Hop, usize),
    /// Withheld (recorded in the generation).
    Withheld,
}

impl Run<'_, '_> {
    /// The gate of destination `protects` (named `name` in overrides) in namespace `ns`, behind
    /// `hop` when its traffic is ambient; `anyway` is the override that isolates it regardless.
    pub(super) fn waypoint_gate<'h>(
        &self,
        hop: Option<&'h Hop>,
        protects: &str,
        ns: &str,
        name: &str,
        anyway: String,
        out: &mut Generation,
    ) -> Gate<'h> {
        let Some(hop) = hop else { return Gate::Open };
        match hop.pods {
            Ok(j) => Gate::Admit(hop, j),
            Err(_) if self.isolate_anyway(name) => {
                out.notes.push(format!(
                    "{protects}: policy written anyway ({anyway}): {}",
                    hop.withheld_reason()
                ));
                Gate::Open
            }
            Err(_) => {
                out.withheld.push(Withheld {
                    subject: protects.to_string(),
                    namespace: ns.to_string(),
                    reason: hop.withheld_reason(),
                    isolate_with: hop.isolate_with(&anyway),
                    egress: false,
                    refuses: Vec::new(),
                });
                Gate::Withheld
            }
        }
    }

    /// The rule admitting waypoint workload `j` to `me` (in namespace `ns`) on the ports its
    /// clients use, 15008 with them, and the use the proof must keep.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn waypoint_rule(
        &self,
        hop: &Hop,
        j: usize,
        me: &WorkloadRef,
        ns: &str,
        port_json: Vec<Value>,
        ports: &[u16],
        rules: &mut Vec<Value>,
        admits: &mut Vec<String>,
        uses: &mut Vec<Use>,
    ) {
        if port_json.is_empty() {
            return;
        }
        let waypoint = &self.f.ws[j];
        let ports_text = ports
            .iter()
            .map(|p| format!("TCP {p}"))
            .collect::<Vec<_>>()
            .join(", ");
        admits.push(hop.admits(waypoint, &ports_text));
        rules.push(
            json!({"from": [workload_peer(waypoint, ns)], "ports": with_hbone(port_json, true)}),
        );
        uses.push(Use {
            from: From::Workload(view::workload_ref(waypoint.object)),
            from_name: format!("waypoint {}/{}", hop.waypoint.namespace, hop.waypoint.name),
            to: To::Workload(me.clone()),
            ports: ports.to_vec(),
            why: format!(
                "{}: ambient clients' traffic arrives through the waypoint",
                hop.by
            ),
            violation: None,
        });
    }
}
