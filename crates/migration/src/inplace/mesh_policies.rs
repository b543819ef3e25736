//! The suite's own NetworkPolicies on the way into the mesh: what `enable` changes in them.
//!
//! A release post-rendered with `mode: none` (or isolated by `dbiso apply`) carries policies
//! generated without the mesh's ports. Once `enable` puts the namespace on the mesh they drop what
//! the mesh needs (the precheck's [`MeshPorts`] check: MM1050-MM1052): in sidecar mode Prometheus
//! scraping the sidecar on TCP 15020 and 15090, and the sidecar's own connection to istiod on TCP
//! 15012 where egress is isolated; in ambient mode HBONE (TCP 15008), on which ztunnel delivers
//! every meshed connection, and the kubelet's probes, which ztunnel sends from 169.254.7.127
//! (<https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio>,
//! <https://istio.io/latest/docs/ambient/usage/networkpolicy/>).
//!
//! `enable` updates the policies the suite generated (labelled
//! `mesh-migrate.meshmove.io/generated: "true"` by the post-renderer, or
//! `app.kubernetes.io/managed-by: kubectl-dbiso` by `dbiso apply`) with the rules the generator
//! writes for the mode ([`meshmove_isolation::policies`]: `mesh_rules`, `with_hbone`,
//! `istiod_rule`), as field changes of its plan, so they are previewed by `--dry-run`, journaled
//! and rolled back like every other change. Whether an update is enough is decided by the
//! precheck's engine check on the namespace as the update leaves it: an update that does not clear
//! its policy's findings is left out. Policies the suite did not generate are never edited: the
//! findings they still raise are returned, for `enable` to report.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::enable::Mode;
use crate::precheck::{MeshMode, MeshPorts, PrecheckOptions};
use meshmove_isolation::generate::FIELD_MANAGER as DBISO_MANAGER;
use meshmove_isolation::policies::{
    AMBIENT_PROBE_SOURCE, GENERATED_LABEL, HBONE_PORT, istiod_rule, mesh_rules,
};
use meshmove_kube::plan::{Change, Target};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Object, ObjectRef, kinds};

/// What `enable` does to the namespace's NetworkPolicies.
#[derive(Debug, Clone, Default)]
pub struct MeshPolicies {
    /// Field changes of the suite's policies, in name order.
    pub changes: Vec<Change>,
    /// What each change adds, `NetworkPolicy/<ns>/<name>: ...`.
    pub updated: Vec<String>,
    /// The precheck's findings left once the changes are made: on policies the suite did not
    /// generate (or workloads only those isolate), which `enable` reports and never edits.
    pub findings: Vec<Finding>,
}

/// Whether the suite generated a policy (the post-renderer's label, or `dbiso apply`'s manager).
pub fn is_generated(policy: &Object) -> bool {
    policy.label(GENERATED_LABEL) == Some("true")
        || policy.label("app.kubernetes.io/managed-by") == Some(DBISO_MANAGER)
}

/// The policy types a policy has as the API server defaults them: Ingress always, Egress when it
/// has egress rules, unless `policyTypes` says.
fn types(policy: &Object) -> (bool, bool) {
    let spec = &policy.value["spec"];
    match spec.get("policyTypes").and_then(Value::as_array) {
        Some(t) => (
            t.iter().any(|v| v == "Ingress"),
            t.iter().any(|v| v == "Egress"),
        ),
        None => (true, spec.get("egress").is_some()),
    }
}

fn rules_of(policy: &Object, key: &str) -> Vec<Value> {
    policy.value["spec"]
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_port(rule: &Value, port: u16) -> bool {
    rule.get("ports")
        .and_then(Value::as_array)
        .is_some_and(|ps| {
            ps.iter()
                .any(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        })
}

/// A rule restricted to ports (a rule without `ports` admits them all, 15008 included).
fn lists_ports(rule: &Value) -> bool {
    rule.get("ports")
        .and_then(Value::as_array)
        .is_some_and(|ps| !ps.is_empty())
}

/// Add HBONE to the ports of every rule that lists ports and names pods or namespaces (the
/// generator's `with_hbone`: the tunnel's port with the same peers); `ipBlock`-only egress rules
/// reach outside the cluster, where there is no tunnel.
fn add_hbone(rules: &mut [Value], peers_key: &str, what: &mut Vec<String>, side: &str) {
    for (i, rule) in rules.iter_mut().enumerate() {
        let only_addresses = rule
            .get(peers_key)
            .and_then(Value::as_array)
            .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p.get("ipBlock").is_some()));
        if lists_ports(rule) && !has_port(rule, HBONE_PORT) && !only_addresses {
            if let Some(ports) = rule.get_mut("ports").and_then(Value::as_array_mut) {
                ports.push(json!({"protocol": "TCP", "port": HBONE_PORT}));
                what.push(format!(
                    "TCP {HBONE_PORT} (HBONE) in {side} rule {i}, with its peers"
                ));
            }
        }
    }
}

/// The fields of `policy` to change for `mode`, with what they add; empty when nothing is missing.
fn fields(
    policy: &Object,
    mode: Mode,
    monitoring: &[String],
    istio_namespace: &str,
) -> (BTreeMap<String, Option<Value>>, Vec<String>) {
    let (ingress, egress) = types(policy);
    let mut out = BTreeMap::new();
    let mut what = Vec::new();
    if ingress {
        let before = rules_of(policy, "ingress");
        let mut rules = before.clone();
        match mode {
            Mode::Sidecar => {
                let scraped = rules.iter().any(|r| {
                    has_port(r, meshmove_isolation::policies::MERGED_METRICS_PORT)
                        || has_port(r, meshmove_isolation::policies::ENVOY_TELEMETRY_PORT)
                });
                if !scraped {
                    mesh_rules(&mut rules, &mut what, false, true, monitoring);
                }
            }
            Mode::Ambient => {
                add_hbone(&mut rules, "from", &mut what, "ingress");
                let probes = rules.iter().any(|r| {
                    r.get("from").and_then(Value::as_array).is_some_and(|ps| {
                        ps.iter().any(|p| {
                            p.pointer("/ipBlock/cidr").and_then(Value::as_str)
                                == Some(AMBIENT_PROBE_SOURCE)
                        })
                    })
                });
                if !probes {
                    mesh_rules(&mut rules, &mut what, true, false, monitoring);
                }
            }
        }
        if rules != before {
            out.insert("/spec/ingress".to_string(), Some(Value::Array(rules)));
        }
    }
    if egress {
        let before = rules_of(policy, "egress");
        let mut rules = before.clone();
        match mode {
            Mode::Sidecar => {
                let istiod = istiod_rule(istio_namespace);
                if !rules.contains(&istiod) {
                    what.push(format!(
                        "egress to istiod ({istio_namespace}) on TCP 15012, 15017"
                    ));
                    rules.push(istiod);
                }
            }
            Mode::Ambient => add_hbone(&mut rules, "to", &mut what, "egress"),
        }
        if rules != before {
            out.insert("/spec/egress".to_string(), Some(Value::Array(rules)));
        }
    }
    (out, what)
}

/// The updates `enable` makes to the suite's policies in `namespace` for `mode`, proven by the
/// precheck's engine check, and the findings left on policies it does not edit.
pub fn update(
    inventory: &Inventory,
    namespace: &str,
    mode: Mode,
    monitoring: &[String],
    istio_namespace: &str,
) -> MeshPolicies {
    let mut policies: Vec<&Object> = inventory
        .of(&kinds::NETWORK_POLICY)
        .filter(|p| p.namespace.as_deref() == Some(namespace))
        .collect();
    if policies.is_empty() {
        return MeshPolicies::default();
    }
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    let mut candidates: Vec<(
        &Object,
        BTreeMap<String, Option<Value>>,
        Vec<String>,
        Object,
    )> = Vec::new();
    for p in policies.iter().filter(|p| is_generated(p)) {
        let (f, what) = fields(p, mode, monitoring, istio_namespace);
        if f.is_empty() {
            continue;
        }
        let mut after = (*p).clone();
        for (pointer, value) in &f {
            if let (Some(slot), Some(v)) = (after.value.pointer_mut(pointer), value) {
                *slot = v.clone();
            } else if let (Some(spec), Some(v)) = (
                after.value.get_mut("spec").and_then(Value::as_object_mut),
                value,
            ) {
                spec.insert(pointer.trim_start_matches("/spec/").to_string(), v.clone());
            }
        }
        candidates.push((p, f, what, after));
    }
    let check = MeshPorts(PrecheckOptions {
        mode: if mode == Mode::Ambient {
            MeshMode::Ambient
        } else {
            MeshMode::Sidecar
        },
        namespaces: Some(vec![namespace.to_string()]),
        monitoring_namespaces: monitoring.to_vec(),
        ..PrecheckOptions::default()
    });
    let findings = |inv: &Inventory| {
        let mut out = Vec::new();
        check.analyze(inv, &mut out);
        out
    };
    let mut after = inventory.overlay(candidates.iter().map(|c| c.3.clone()).collect());
    let mut left = findings(&after);
    // An update whose policy is still flagged does not do what it is for: left out.
    let flagged =
        |r: &ObjectRef, left: &[Finding]| left.iter().any(|f| f.object.as_ref() == Some(r));
    if candidates.iter().any(|c| flagged(&c.0.object_ref(), &left)) {
        candidates.retain(|c| !flagged(&c.0.object_ref(), &left));
        after = inventory.overlay(candidates.iter().map(|c| c.3.clone()).collect());
        left = findings(&after);
    }
    let mut out = MeshPolicies {
        findings: left,
        ..MeshPolicies::default()
    };
    for (p, f, what, _) in candidates {
        out.updated.push(format!(
            "NetworkPolicy/{namespace}/{}: adds {}",
            p.name,
            what.join("; ")
        ));
        out.changes.push(Change::Set {
            target: Target::new(&p.api_version, &p.kind, Some(namespace), &p.name),
            fields: f,
        });
    }
    out
}

#[cfg(test)]
mod tests;
