//! Structured explanation of one connection attempt: which policies apply on each side, which
//! rules, peers and ports matched, and why the others did not.

use std::collections::BTreeMap;

use serde::Serialize;

use super::compile::{Direction, NsScope, Peer, PortSel, PortSpec, named_port_numbers};
use super::connection::Protocol;
use super::eval::{PeerVerdict, PodView, View};
use super::hbone::{AMBIENT_PROBE_SOURCE, HBONE_PORT, Path};
use super::model::ContainerPort;
use super::{Engine, NetpolError, Target};

/// One end of an explained connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum TargetRef {
    Pod { namespace: String, name: String },
    External { cidr: String },
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetRef::Pod { namespace, name } => write!(f, "pod {namespace}/{name}"),
            TargetRef::External { cidr } => write!(f, "external {cidr}"),
        }
    }
}

/// Why `src` can or cannot open `protocol`/`port` to `dst`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub src: TargetRef,
    pub dst: TargetRef,
    pub protocol: Protocol,
    pub port: u16,
    /// How the connection travels: `direct` to the port, or `hbone` when both pods are captured
    /// by Istio ambient and the protocol is TCP. Through the tunnel NetworkPolicy sees TCP 15008
    /// whatever `port` is, so both sides below are evaluated for TCP 15008.
    pub path: Path,
    /// What the path means for this connection, when there is something to add: why it is
    /// HBONE, or that the address is where an ambient pod's kubelet probes come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The source pod's egress policies.
    pub egress: SideExplanation,
    /// The destination pod's ingress policies.
    pub ingress: SideExplanation,
    /// What the destination's Istio proxy decides (TCP to a pod, when the model has
    /// AuthorizationPolicies or PeerAuthentications; see [`crate::authz`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<crate::AuthzDecision>,
    /// Both sides allow it, and the destination's AuthorizationPolicies may admit it (a
    /// conditional verdict counts: `authorization.state` says so).
    pub allowed: bool,
    pub verdict: String,
}

/// One side (the source's egress or the destination's ingress).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SideExplanation {
    pub direction: Direction,
    /// False when this end is outside the cluster, where no NetworkPolicy applies.
    pub applies: bool,
    /// Selected by at least one policy of this direction's type.
    pub isolated: bool,
    /// The policies selecting the pod for this direction.
    pub policies: Vec<PolicyExplanation>,
    pub allowed: bool,
    pub summary: String,
    /// The AdminNetworkPolicy / BaselineAdminNetworkPolicy rules looked at, when some select the
    /// pod; `allowed` and `summary` then say what all tiers decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<crate::AdminSideExplanation>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyExplanation {
    pub namespace: String,
    pub name: String,
    /// Empty when the policy has no rules of this direction: it only isolates.
    pub rules: Vec<RuleExplanation>,
    /// Some rule admits the traffic.
    pub allows: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleExplanation {
    /// Position in `spec.ingress` / `spec.egress`.
    pub index: usize,
    /// `None`: the rule has no `from`/`to` and matches every peer.
    pub peers: Option<Vec<PeerExplanation>>,
    /// `None`: the rule has no `ports` and matches all traffic.
    pub ports: Option<Vec<PortExplanation>>,
    pub peer_matched: bool,
    pub port_matched: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerExplanation {
    /// Position in `from` / `to`.
    pub index: usize,
    pub matched: bool,
    #[serde(flatten)]
    pub detail: PeerDetail,
}

/// How one peer compared with the other end of the traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "result",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum PeerDetail {
    Matched {
        peer: String,
    },
    /// A `podSelector`-only peer looks in the policy's namespace only.
    OtherNamespace {
        peer: String,
        policy_namespace: String,
        pod_namespace: String,
    },
    NamespaceSelectorMismatch {
        peer: String,
        failed_requirement: String,
        namespace: String,
        namespace_labels: BTreeMap<String, String>,
    },
    PodSelectorMismatch {
        peer: String,
        failed_requirement: String,
        pod_labels: BTreeMap<String, String>,
    },
    /// A selector peer never matches an address outside the cluster.
    NotAPod {
        peer: String,
    },
    NoPodIp {
        peer: String,
    },
    /// The engine was told not to match pod IPs against ipBlocks.
    PodIpsIgnored {
        peer: String,
    },
    OutsideCidr {
        peer: String,
        addresses: Vec<String>,
    },
    Excepted {
        peer: String,
        except: String,
        addresses: Vec<String>,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortExplanation {
    /// Position in `ports`.
    pub index: usize,
    pub matched: bool,
    #[serde(flatten)]
    pub detail: PortDetail,
}

/// How one `ports` entry compared with the traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "result",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum PortDetail {
    Matched {
        entry: String,
    },
    ProtocolMismatch {
        entry: String,
        protocol: Protocol,
    },
    PortMismatch {
        entry: String,
    },
    /// The pod receiving the traffic has no container port with this name and protocol.
    NamedPortNotFound {
        entry: String,
        pod: String,
    },
    /// The name resolves, but to other numbers.
    NamedPortResolvesElsewhere {
        entry: String,
        resolved: Vec<u16>,
    },
    /// Named ports cannot match an address outside the cluster.
    NamedPortExternal {
        entry: String,
    },
}

fn port_entry(p: &PortSpec) -> String {
    match &p.port {
        PortSel::Any => format!("{} (all ports)", p.protocol),
        PortSel::Range(s, e) if s == e => format!("{} {s}", p.protocol),
        PortSel::Range(s, e) => format!("{} {s}-{e}", p.protocol),
        PortSel::Named(n) => format!("{} {n}", p.protocol),
    }
}

/// Compares one ports entry with `protocol`/`port`; `target` are the container ports of the pod
/// receiving the traffic (`None` for an external address). Agrees with `ports_connection`.
fn port_detail(
    p: &PortSpec,
    protocol: Protocol,
    port: u16,
    target: Option<(&[ContainerPort], String)>,
) -> PortDetail {
    let entry = port_entry(p);
    if p.protocol != protocol {
        return PortDetail::ProtocolMismatch {
            entry,
            protocol: p.protocol,
        };
    }
    match &p.port {
        PortSel::Any => PortDetail::Matched { entry },
        PortSel::Range(s, e) if (*s..=*e).contains(&port) => PortDetail::Matched { entry },
        PortSel::Range(..) => PortDetail::PortMismatch { entry },
        PortSel::Named(name) => {
            let Some((ports, pod)) = target else {
                return PortDetail::NamedPortExternal { entry };
            };
            let mut resolved: Vec<u16> = named_port_numbers(ports, name, p.protocol).collect();
            resolved.sort_unstable();
            resolved.dedup();
            if resolved.is_empty() {
                PortDetail::NamedPortNotFound { entry, pod }
            } else if resolved.contains(&port) {
                PortDetail::Matched {
                    entry: format!("{entry} (= {port})"),
                }
            } else {
                PortDetail::NamedPortResolvesElsewhere { entry, resolved }
            }
        }
    }
}

impl Engine {
    fn target_ref(&self, v: &View<'_>) -> TargetRef {
        match v {
            View::Pod(p) => TargetRef::Pod {
                namespace: p.info.namespace.clone(),
                name: p.info.name.clone(),
            },
            View::External(n) => TargetRef::External {
                cidr: n.to_string(),
            },
        }
    }

    fn describe_peer(&self, policy: usize, peer: &Peer) -> String {
        let i = &self.interner;
        match peer {
            Peer::Block(b) => {
                let block = &self.blocks[*b];
                if block.except.is_empty() {
                    format!("ipBlock {}", block.cidr)
                } else {
                    let ex: Vec<String> = block.except.iter().map(ToString::to_string).collect();
                    format!("ipBlock {} except {}", block.cidr, ex.join(","))
                }
            }
            Peer::Pods { namespaces, pods } => {
                let pods = match pods {
                    None => "all pods".to_string(),
                    Some(s) if s.is_empty() => "all pods".to_string(),
                    Some(s) => format!("pods matching {}", s.render(i)),
                };
                match namespaces {
                    NsScope::PolicyNamespace => {
                        format!("{pods} in namespace {}", self.policies[policy].namespace)
                    }
                    NsScope::Matching(s) if s.is_empty() => format!("{pods} in all namespaces"),
                    NsScope::Matching(s) => {
                        format!("{pods} in namespaces matching {}", s.render(i))
                    }
                }
            }
        }
    }

    fn peer_detail(&self, policy: usize, peer: &Peer, other: &View<'_>) -> PeerDetail {
        let desc = self.describe_peer(policy, peer);
        let addresses = |v: &View<'_>| match v {
            View::Pod(p) => p.info.ips.iter().map(ToString::to_string).collect(),
            View::External(n) => vec![n.to_string()],
        };
        match self.peer_verdict(policy, peer, other) {
            PeerVerdict::Matched => PeerDetail::Matched { peer: desc },
            PeerVerdict::OtherNamespace => PeerDetail::OtherNamespace {
                peer: desc,
                policy_namespace: self.policies[policy].namespace.clone(),
                pod_namespace: match other {
                    View::Pod(p) => p.ns_name.to_string(),
                    View::External(_) => String::new(),
                },
            },
            PeerVerdict::NamespaceSelectorFailed(req) => {
                let (namespace, namespace_labels) = match other {
                    View::Pod(p) => (
                        p.ns_name.to_string(),
                        p.ns.map(|n| self.namespaces[n].labels_map.clone())
                            .unwrap_or_default(),
                    ),
                    View::External(_) => (String::new(), BTreeMap::new()),
                };
                PeerDetail::NamespaceSelectorMismatch {
                    peer: desc,
                    failed_requirement: req.render(&self.interner),
                    namespace,
                    namespace_labels,
                }
            }
            PeerVerdict::PodSelectorFailed(req) => PeerDetail::PodSelectorMismatch {
                peer: desc,
                failed_requirement: req.render(&self.interner),
                pod_labels: match other {
                    View::Pod(p) => p.info.labels.clone(),
                    View::External(_) => BTreeMap::new(),
                },
            },
            PeerVerdict::NotAPod => PeerDetail::NotAPod { peer: desc },
            PeerVerdict::NoPodIp => PeerDetail::NoPodIp { peer: desc },
            PeerVerdict::PodIpsIgnored => PeerDetail::PodIpsIgnored { peer: desc },
            PeerVerdict::OutsideCidr => PeerDetail::OutsideCidr {
                peer: desc,
                addresses: addresses(other),
            },
            PeerVerdict::Excepted(e) => PeerDetail::Excepted {
                peer: desc,
                except: e.to_string(),
                addresses: addresses(other),
            },
        }
    }

    /// The NetworkPolicy side of [`Engine::explain_side`].
    pub(crate) fn explain_np_side(
        &self,
        subject: Option<&PodView<'_>>,
        dir: Direction,
        other: &View<'_>,
        protocol: Protocol,
        port: u16,
    ) -> SideExplanation {
        let dir_word = match dir {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        let Some(subject) = subject else {
            return SideExplanation {
                direction: dir,
                applies: false,
                isolated: false,
                policies: Vec::new(),
                allowed: true,
                summary: format!(
                    "{} is outside the cluster: no NetworkPolicy governs its {dir_word}",
                    self.target_ref(other)
                ),
                admin: None,
            };
        };
        let me = self.target_ref(&View::Pod(*subject));
        let selecting = self.selecting(subject, dir);
        if selecting.is_empty() {
            return SideExplanation {
                direction: dir,
                applies: true,
                isolated: false,
                policies: Vec::new(),
                allowed: true,
                summary: format!(
                    "{me} is not isolated for {dir_word}: no NetworkPolicy of type {dir:?} selects it"
                ),
                admin: None,
            };
        }
        let receiver_ports: Option<(&[ContainerPort], String)> = match (dir, other) {
            (Direction::Ingress, _) => Some((subject.info.ports.as_slice(), me.to_string())),
            (Direction::Egress, View::Pod(p)) => {
                Some((p.info.ports.as_slice(), self.target_ref(other).to_string()))
            }
            (Direction::Egress, View::External(_)) => None,
        };
        let mut policies = Vec::new();
        let mut allowing = Vec::new();
        for pi in selecting {
            let p = &self.policies[pi];
            let mut rules = Vec::new();
            for (ri, rule) in p.rules(dir).unwrap_or(&[]).iter().enumerate() {
                let peers: Option<Vec<PeerExplanation>> = rule.peers.as_ref().map(|peers| {
                    peers
                        .iter()
                        .enumerate()
                        .map(|(index, peer)| {
                            let detail = self.peer_detail(pi, peer, other);
                            PeerExplanation {
                                index,
                                matched: matches!(detail, PeerDetail::Matched { .. }),
                                detail,
                            }
                        })
                        .collect()
                });
                let ports: Option<Vec<PortExplanation>> = rule.ports.as_ref().map(|ports| {
                    ports
                        .iter()
                        .enumerate()
                        .map(|(index, spec)| {
                            let detail = port_detail(spec, protocol, port, receiver_ports.clone());
                            PortExplanation {
                                index,
                                matched: matches!(detail, PortDetail::Matched { .. }),
                                detail,
                            }
                        })
                        .collect()
                });
                let peer_matched = peers.as_ref().is_none_or(|v| v.iter().any(|p| p.matched));
                let port_matched = ports.as_ref().is_none_or(|v| v.iter().any(|p| p.matched));
                if peer_matched && port_matched {
                    allowing.push(format!("{}/{} {dir_word}[{ri}]", p.namespace, p.name));
                }
                rules.push(RuleExplanation {
                    index: ri,
                    peers,
                    ports,
                    peer_matched,
                    port_matched,
                });
            }
            let allows = rules.iter().any(|r| r.peer_matched && r.port_matched);
            policies.push(PolicyExplanation {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                rules,
                allows,
            });
        }
        let allowed = !allowing.is_empty();
        let names: Vec<String> = policies
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        let summary = if allowed {
            format!(
                "{me} is isolated for {dir_word} by {}; allowed by {}",
                names.join(", "),
                allowing.join(", ")
            )
        } else {
            format!(
                "{me} is isolated for {dir_word} by {} and no rule admits {protocol} {port} {} {}",
                names.join(", "),
                if dir == Direction::Ingress {
                    "from"
                } else {
                    "to"
                },
                self.target_ref(other)
            )
        };
        SideExplanation {
            direction: dir,
            applies: true,
            isolated: true,
            policies,
            allowed,
            summary,
            admin: None,
        }
    }

    /// Explains whether `src` can open `protocol`/`port` to `dst`. At least one side must be a
    /// pod; an `External` range stands for *some* address in it, as in
    /// [`Engine::allowed_from_cidr`].
    pub fn explain(
        &self,
        src: Target,
        dst: Target,
        protocol: Protocol,
        port: u16,
    ) -> Result<Explanation, NetpolError> {
        if port == 0 {
            return Err(NetpolError::InvalidQuery(
                "port must be between 1 and 65535".into(),
            ));
        }
        if matches!((src, dst), (Target::External(_), Target::External(_))) {
            return Err(NetpolError::InvalidQuery(
                "at least one side of an explained connection must be a pod".into(),
            ));
        }
        for t in [src, dst] {
            if let Target::Pod(id) = t
                && id.0 >= self.pods.len()
            {
                return Err(NetpolError::InvalidQuery(format!(
                    "unknown pod id {}",
                    id.0
                )));
            }
        }
        let norm = |t: Target| match t {
            Target::External(n) => Target::External(n.trunc()),
            t => t,
        };
        let (src_v, dst_v) = (self.view(norm(src)), self.view(norm(dst)));
        fn subject<'a>(v: &View<'a>) -> Option<PodView<'a>> {
            match v {
                View::Pod(p) => Some(*p),
                View::External(_) => None,
            }
        }
        let (src_pod, dst_pod) = (subject(&src_v), subject(&dst_v));
        let (s, d) = (self.target_ref(&src_v), self.target_ref(&dst_v));
        let path = match (src, dst) {
            (Target::Pod(a), Target::Pod(b)) if protocol == Protocol::Tcp => self.path(a, b),
            _ => Path::Direct,
        };
        // Through the tunnel the policies see TCP 15008 (see `hbone`).
        let seen = match path {
            Path::Direct => port,
            Path::Hbone => HBONE_PORT,
        };
        let egress = self.explain_side(src_pod.as_ref(), Direction::Egress, &dst_v, protocol, seen);
        let ingress =
            self.explain_side(dst_pod.as_ref(), Direction::Ingress, &src_v, protocol, seen);
        let authorization = match dst_pod {
            Some(d) if protocol == Protocol::Tcp && self.authz_active() => Some(self.authz_decide(&src_v, &d, port)),
            _ => None,
        };
        let authz_state = authorization.as_ref().map(|a| a.state);
        let allowed = egress.allowed && ingress.allowed && authz_state.is_none_or(crate::AuthzState::may_pass);
        let via = match path {
            Path::Direct => String::new(),
            Path::Hbone => format!(" via HBONE {HBONE_PORT} (ambient)"),
        };
        let verdict = match (egress.allowed, ingress.allowed) {
            (true, true) => match &authorization {
                Some(a) if a.state == crate::AuthzState::Denied => {
                    format!("DENIED{via} by the AuthorizationPolicies of {d}: {}", a.reason)
                }
                Some(a) if a.state == crate::AuthzState::Conditional => format!(
                    "CONDITIONAL{via}: {s} -> {d} on {protocol} {port}: the network allows it; AuthorizationPolicy: {}",
                    a.reason
                ),
                _ => format!("ALLOWED{via}: {s} -> {d} on {protocol} {port}"),
            },
            (false, true) => format!("DENIED{via} by egress of {s}: {}", egress.summary),
            (true, false) => format!("DENIED{via} by ingress of {d}: {}", ingress.summary),
            (false, false) => format!("DENIED{via} by both egress of {s} and ingress of {d}"),
        };
        let note = match (path, src_v, dst_pod) {
            (Path::Hbone, _, _) => Some(format!(
                "both pods are captured by Istio ambient: ztunnel carries TCP between them as HBONE to port {HBONE_PORT} of {d}, so NetworkPolicy sees TCP {HBONE_PORT} and never port {port}; with {HBONE_PORT} admitted every TCP port of the pod is reachable"
            )),
            (Path::Direct, View::External(net), Some(p)) if p.info.ambient && net.contains(&AMBIENT_PROBE_SOURCE) => Some(format!(
                "{d} is captured by Istio ambient: the kubelet's probes of it arrive from {AMBIENT_PROBE_SOURCE}, the address ztunnel's in-pod rules give them"
            )),
            (Path::Direct, View::Pod(p), Some(q)) if protocol == Protocol::Tcp && (p.info.ambient != q.info.ambient) => Some(format!(
                "only {} is captured by Istio ambient: TCP goes to port {port} itself, not through HBONE",
                if p.info.ambient { &s } else { &d }
            )),
            _ => None,
        };
        Ok(Explanation {
            src: s,
            dst: d,
            protocol,
            port,
            path,
            note,
            egress,
            ingress,
            authorization,
            allowed,
            verdict,
        })
    }
}
