//! Proof of the ambient AuthorizationPolicy companions ([`super::authz`]), on the engine like
//! the NetworkPolicies ([`super::proof`]): with the generated NetworkPolicies in place, every
//! connection in use that the destination's proxy admits for every request before must still
//! be admitted for every request with the companions added. The engine evaluates the
//! companions as ztunnel does ([`meshmove_netpol::authz`]): principals from the sources'
//! service accounts over mutual TLS, none for sources outside the mesh.
//!
//! A use that names no port (a client of every port of the destination) must keep every TCP
//! port it was admitted on before ([`Required::Every`]): a companion whose rules list ports cuts
//! it on the others, as the engine evaluates it, and is withheld.
//!
//! A companion that would cut a connection is withheld (its NetworkPolicy still goes out) and
//! the proof runs again without it, until nothing in use is cut. Every connection it cuts in the
//! round it is blamed is named, not only the first: a user who writes it anyway
//! (`--authz-isolate-anyway`) is told the whole cost.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_netpol::{ClusterModel, Engine, EngineOptions, PodId, PortSet, WorkloadRef};
use serde_json::Value;

use super::proof::{Pods, Required, To, Use, with_sources};

/// A companion and the workload whose pods it selects; `policy` has `metadata.namespace` set.
pub struct Companion {
    pub subject: WorkloadRef,
    pub policy: Value,
}

fn key(v: &Value) -> (Option<&str>, Option<&str>) {
    (
        v.pointer("/metadata/namespace").and_then(Value::as_str),
        v.pointer("/metadata/name").and_then(Value::as_str),
    )
}

/// Each connection in use a companion would cut: (use index, TCP ports lost); the use index is
/// `usize::MAX` when the engine could not build the model with it.
pub type Lost = Vec<(usize, PortSet)>;

/// The companions to withhold: index -> every use it would cut, with the TCP ports each loses.
/// `policies` are the NetworkPolicies that go out with them (they replace existing ones of the
/// same name).
pub fn prove(
    model: &ClusterModel,
    policies: &[NetworkPolicy],
    companions: &[Companion],
    uses: &[Use],
) -> BTreeMap<usize, Lost> {
    let (mut base, source_of) = with_sources(model, uses);
    let replaced: HashSet<(&Option<String>, &Option<String>)> = policies
        .iter()
        .map(|p| (&p.metadata.namespace, &p.metadata.name))
        .collect();
    base.policies
        .retain(|p| !replaced.contains(&(&p.metadata.namespace, &p.metadata.name)));
    base.policies.extend(policies.iter().cloned());
    let mut withheld: BTreeMap<usize, Lost> = BTreeMap::new();
    let Ok((before, _)) = Engine::build_lenient(&base, EngineOptions::default()) else {
        return (0..companions.len())
            .map(|i| (i, vec![(usize::MAX, PortSet::new())]))
            .collect();
    };
    let pods = Pods::new(&before);
    // Per use: (source pod, destination pod, what was admitted for every request before).
    let pairs: Vec<Vec<(PodId, PodId, Required)>> = uses
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let Some(src) = source_of[i]
                .as_ref()
                .and_then(|w| pods.of(w).first().copied())
            else {
                return Vec::new();
            };
            // AuthorizationPolicies guard pods: a use of an address outside the cluster has none.
            let (None, To::Workload(to)) = (&u.violation, &u.to) else {
                return Vec::new();
            };
            pods.of(to)
                .iter()
                .map(|&dst| {
                    (
                        src,
                        dst,
                        Required::of(&before.allowed_for_every_request(src, dst), &u.ports),
                    )
                })
                .filter(|(_, _, r)| !r.is_empty())
                .collect()
        })
        .collect();
    loop {
        let active: Vec<(usize, &Companion)> = companions
            .iter()
            .enumerate()
            .filter(|(i, _)| !withheld.contains_key(i))
            .collect();
        let mut after_model = base.clone();
        let names: HashSet<(Option<&str>, Option<&str>)> =
            active.iter().map(|(_, c)| key(&c.policy)).collect();
        after_model
            .authorization_policies
            .retain(|p| !names.contains(&key(p)));
        after_model
            .authorization_policies
            .extend(active.iter().map(|(_, c)| c.policy.clone()));
        let Ok((after, _)) = Engine::build_lenient(&after_model, EngineOptions::default()) else {
            for (i, _) in active {
                withheld.insert(i, vec![(usize::MAX, PortSet::new())]);
            }
            return withheld;
        };
        // Blamed this round: every use each cuts (all of them, for the report).
        let mut blamed: BTreeMap<usize, Lost> = BTreeMap::new();
        for (i, u) in uses.iter().enumerate() {
            for (src, dst, required) in &pairs[i] {
                let Some(lost) = required.lost(&after.allowed_for_every_request(*src, *dst)) else {
                    continue;
                };
                // The destination's companions; when none is its own (a selector shared with
                // another workload), every active one, so that nothing in use is ever cut.
                let own: Vec<usize> = active
                    .iter()
                    .filter(|(_, c)| matches!(&u.to, To::Workload(w) if *w == c.subject))
                    .map(|(j, _)| *j)
                    .collect();
                let blame = if own.is_empty() {
                    active.iter().map(|(j, _)| *j).collect()
                } else {
                    own
                };
                for j in blame {
                    let cut = blamed.entry(j).or_default();
                    // One entry per use: its pods' losses together.
                    match cut.iter_mut().find(|(u, _)| *u == i) {
                        Some((_, ports)) => *ports = ports.union(&lost),
                        None => cut.push((i, lost.clone())),
                    }
                }
            }
        }
        if blamed.is_empty() {
            return withheld;
        }
        withheld.extend(blamed);
    }
}
