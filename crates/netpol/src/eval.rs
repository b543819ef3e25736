//! Direct evaluation of policies on concrete pods (no equivalence classes). Used by the per-pod
//! queries and by `explain`, which share the predicates below so their answers cannot drift.

use std::net::IpAddr;

use ipnet::IpNet;

use super::compile::{Direction, NsScope, Peer, Rule, ports_connection};
use super::connection::Connection;
use super::model::{NAMESPACE_NAME_LABEL, PodInfo};
use super::selector::{Labels, Requirement, Sym, lookup_labels};
use super::{Engine, PodId, Target};

/// A pod as the evaluator sees it. `ns` is `None` for a namespace unknown to the engine (only
/// for synthetic pods); no policy lives there.
#[derive(Clone, Copy)]
pub(crate) struct PodView<'a> {
    pub ns: Option<usize>,
    pub ns_name: &'a str,
    pub ns_labels: &'a [(Sym, Sym)],
    pub labels: &'a [(Sym, Sym)],
    pub info: &'a PodInfo,
}

#[derive(Clone, Copy)]
pub(crate) enum View<'a> {
    Pod(PodView<'a>),
    External(IpNet),
}

/// A pod that is not part of the model (the assumed DNS pod), with its own interned labels.
pub(crate) struct SyntheticPod<'a> {
    info: &'a PodInfo,
    ns: Option<usize>,
    ns_labels: Labels,
    labels: Labels,
}

impl<'a> SyntheticPod<'a> {
    pub(crate) fn as_view(&self) -> PodView<'_> {
        PodView {
            ns: self.ns,
            ns_name: &self.info.namespace,
            ns_labels: &self.ns_labels,
            labels: &self.labels,
            info: self.info,
        }
    }
}

/// Outcome of matching one peer against the other end of the traffic.
#[derive(Clone, Debug)]
pub(crate) enum PeerVerdict<'r> {
    Matched,
    /// Pod peer without `namespaceSelector`, pod in another namespace.
    OtherNamespace,
    NamespaceSelectorFailed(&'r Requirement),
    PodSelectorFailed(&'r Requirement),
    /// Pod peer, but the traffic's other end is an external address.
    NotAPod,
    /// ipBlock peer, pod without known IP.
    NoPodIp,
    /// ipBlock peer, pod IPs not considered (see `EngineOptions`).
    PodIpsIgnored,
    /// ipBlock peer, address(es) outside `cidr`.
    OutsideCidr,
    /// ipBlock peer, inside `cidr` but in this `except` entry.
    Excepted(IpNet),
}

impl PeerVerdict<'_> {
    pub(crate) fn matched(&self) -> bool {
        matches!(self, PeerVerdict::Matched)
    }
}

impl Engine {
    pub(crate) fn pod_view(&self, id: PodId) -> PodView<'_> {
        let p = &self.pods[id.0];
        let ns = &self.namespaces[p.ns];
        PodView {
            ns: Some(p.ns),
            ns_name: &ns.name,
            ns_labels: &ns.labels,
            labels: &p.labels,
            info: &p.info,
        }
    }

    pub(crate) fn view(&self, t: Target) -> View<'_> {
        match t {
            Target::Pod(id) => View::Pod(self.pod_view(id)),
            Target::External(net) => View::External(net),
        }
    }

    pub(crate) fn synthetic_view<'a>(&self, info: &'a PodInfo) -> SyntheticPod<'a> {
        let ns = self
            .namespaces
            .iter()
            .position(|n| n.name == info.namespace);
        let ns_labels = match ns {
            Some(i) => self.namespaces[i].labels.clone(),
            None => lookup_labels(
                &self.interner,
                &[(NAMESPACE_NAME_LABEL.to_string(), info.namespace.clone())].into(),
            ),
        };
        SyntheticPod {
            info,
            ns,
            ns_labels,
            labels: lookup_labels(&self.interner, &info.labels),
        }
    }

    /// Policies in the pod's namespace that select it and have `dir` among their types.
    pub(crate) fn selecting(&self, pod: &PodView<'_>, dir: Direction) -> Vec<usize> {
        let Some(ns) = pod.ns else { return Vec::new() };
        self.policies_by_ns[ns]
            .iter()
            .copied()
            .filter(|&pi| {
                let p = &self.policies[pi];
                p.rules(dir).is_some() && p.selector.matches(pod.labels)
            })
            .collect()
    }

    pub(crate) fn peer_verdict<'r>(
        &self,
        policy: usize,
        peer: &'r Peer,
        other: &View<'_>,
    ) -> PeerVerdict<'r> {
        match (peer, other) {
            (Peer::Pods { .. }, View::External(_)) => PeerVerdict::NotAPod,
            (Peer::Pods { namespaces, pods }, View::Pod(pod)) => {
                match namespaces {
                    NsScope::PolicyNamespace => {
                        if pod.ns != Some(self.policy_ns[policy]) {
                            return PeerVerdict::OtherNamespace;
                        }
                    }
                    NsScope::Matching(sel) => {
                        if let Some(req) = sel.first_failure(pod.ns_labels) {
                            return PeerVerdict::NamespaceSelectorFailed(req);
                        }
                    }
                }
                match pods.as_ref().and_then(|s| s.first_failure(pod.labels)) {
                    Some(req) => PeerVerdict::PodSelectorFailed(req),
                    None => PeerVerdict::Matched,
                }
            }
            (Peer::Block(b), View::Pod(pod)) => {
                let block = &self.blocks[*b];
                if !self.options.pod_ips_match_ip_blocks {
                    return PeerVerdict::PodIpsIgnored;
                }
                if pod.info.ips.is_empty() {
                    return PeerVerdict::NoPodIp;
                }
                if pod.info.ips.iter().any(|ip| block.contains_ip(*ip)) {
                    return PeerVerdict::Matched;
                }
                let excepted = pod
                    .info
                    .ips
                    .iter()
                    .find_map(|ip: &IpAddr| block.excepted_by(*ip));
                match excepted {
                    Some(e) => PeerVerdict::Excepted(*e),
                    None => PeerVerdict::OutsideCidr,
                }
            }
            (Peer::Block(b), View::External(range)) => {
                let block = &self.blocks[*b];
                if block.overlaps(range) {
                    return PeerVerdict::Matched;
                }
                if block.cidr.contains(range) || range.contains(&block.cidr) {
                    // Overlaps the cidr, but only in excepted space.
                    let e = block
                        .except
                        .iter()
                        .find(|e| e.contains(range) || range.contains(*e))
                        .copied()
                        .unwrap_or(block.cidr);
                    PeerVerdict::Excepted(e)
                } else {
                    PeerVerdict::OutsideCidr
                }
            }
        }
    }

    /// Whether a rule's peers admit the other end (no peers: everyone).
    pub(crate) fn rule_matches_peer(&self, policy: usize, rule: &Rule, other: &View<'_>) -> bool {
        match &rule.peers {
            None => true,
            Some(peers) => peers
                .iter()
                .any(|p| self.peer_verdict(policy, p, other).matched()),
        }
    }

    /// The traffic a rule admits, named ports resolved on the pod receiving the traffic.
    pub(crate) fn rule_ports(
        &self,
        rule: &Rule,
        dir: Direction,
        subject: &PodView<'_>,
        other: &View<'_>,
    ) -> Connection {
        let target = match (dir, other) {
            (Direction::Ingress, _) => Some(subject.info.ports.as_slice()),
            (Direction::Egress, View::Pod(p)) => Some(p.info.ports.as_slice()),
            (Direction::Egress, View::External(_)) => None,
        };
        ports_connection(rule.ports.as_deref(), target)
    }

    /// One side's NetworkPolicy allowance (the admin tiers are applied by `side_connection`):
    /// what `subject` accepts from (`Ingress`) or may send to (`Egress`)
    /// the other end.
    pub(crate) fn np_side_connection(
        &self,
        subject: &PodView<'_>,
        dir: Direction,
        other: &View<'_>,
    ) -> Connection {
        let selecting = self.selecting(subject, dir);
        if selecting.is_empty() {
            return Connection::All;
        }
        let mut acc = Connection::none();
        for pi in selecting {
            for rule in self.policies[pi].rules(dir).unwrap_or(&[]) {
                if self.rule_matches_peer(pi, rule, other) {
                    acc = acc.union(&self.rule_ports(rule, dir, subject, other));
                    if acc.is_all() {
                        return acc;
                    }
                }
            }
        }
        acc
    }
}
