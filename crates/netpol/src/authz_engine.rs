//! Istio AuthorizationPolicy inside the engine: which policies apply to a destination pod, what
//! the receiving proxy knows of the source, and the verdict per port ([`crate::authz`] has the
//! rules and their sources).
//!
//! A connection between pods is allowed when NetworkPolicy (and the admin tiers) let it through
//! *and* the destination's proxy admits it. [`Engine::allowed`] and [`Engine::reach`] therefore
//! intersect the network's answer with the ports whose AuthorizationPolicy verdict may pass
//! (allowed or conditional); the conditional ones are reported separately
//! ([`Engine::authz_conditional`], [`crate::ReachEntry::authz_conditional`]), so a caller that
//! must *prove* a connection (the generator) can tell "allowed for every request" from "allowed
//! for some".

use std::collections::BTreeSet;

use ipnet::IpNet;
use meshmove_istio::peer_authentication::Mode;
use meshmove_istio::{DEFAULT_ROOT_NAMESPACE, PeerAuthentications};
use serde_json::Value;

use super::authz::{
    AuthzDecision, AuthzPolicy, AuthzRuleRef, AuthzState, DEFAULT_TRUST_DOMAIN, Enforcer, Peer,
    SIDECAR_UNCAPTURED_PORTS, decide,
};
use super::authz_compile::compile;
use super::cidr::IpBlock;
use super::compile::{CompileCtx, PolicyError};
use super::connection::{Connection, PortRange, PortSet, Protocol};
use super::eval::{PodView, View};
use super::{Engine, PodId, Target};

/// The compiled AuthorizationPolicies and PeerAuthentications of a model.
#[derive(Default)]
pub(crate) struct AuthzIndex {
    pub policies: Vec<AuthzPolicy>,
    pub peer_auth: Option<PeerAuthentications>,
    pub root: String,
    /// Whether anything here can change an answer (some policy, or some PeerAuthentication).
    pub active: bool,
    /// Engine block ids of the addresses the policies mention.
    pub block_ids: BTreeSet<usize>,
}

pub(crate) fn compile_authz(
    aps: &[Value],
    pas: &[Value],
    root: Option<&str>,
    ctx: &mut CompileCtx,
) -> (AuthzIndex, Vec<PolicyError>) {
    let root = root.unwrap_or(DEFAULT_ROOT_NAMESPACE).to_string();
    let mut rejected = Vec::new();
    let mut policies = Vec::new();
    let mut seen = BTreeSet::new();
    for o in aps {
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(crate::DEFAULT_NAMESPACE);
        match compile(o, ns) {
            Ok(p) => {
                if seen.insert((p.namespace.clone(), p.name.clone())) {
                    policies.push(p);
                }
            }
            Err(errs) => rejected.extend(errs),
        }
    }
    let peer_auth = if pas.is_empty() {
        None
    } else {
        match PeerAuthentications::from_values(root.clone(), pas.iter()) {
            Ok(p) => Some(p),
            Err(e) => {
                rejected.push(PolicyError {
                    kind: "PeerAuthentication",
                    namespace: String::new(),
                    name: String::new(),
                    path: String::new(),
                    message: e.to_string(),
                });
                None
            }
        }
    };
    let mut block_ids = BTreeSet::new();
    for p in &policies {
        for b in p.blocks() {
            block_ids.insert(ctx.block_id(IpBlock {
                cidr: b.trunc(),
                except: Vec::new(),
            }));
        }
    }
    let active = !policies.is_empty() || peer_auth.is_some();
    (
        AuthzIndex {
            policies,
            peer_auth,
            root,
            active,
            block_ids,
        },
        rejected,
    )
}

/// Every non-TCP port: the proxies capture TCP only.
fn other_protocols() -> impl Iterator<Item = PortRange> {
    [Protocol::Udp, Protocol::Sctp]
        .into_iter()
        .map(PortRange::full)
}

impl Engine {
    /// Whether AuthorizationPolicy or PeerAuthentication can change any answer of this engine.
    pub fn authz_active(&self) -> bool {
        self.authz.active
    }

    /// Label keys the AuthorizationPolicy and PeerAuthentication selectors read.
    pub(crate) fn authz_label_keys(&self) -> BTreeSet<&str> {
        let ap = self
            .authz
            .policies
            .iter()
            .flat_map(|p| p.selector.iter().flat_map(|s| s.keys()));
        let pa = self.authz.peer_auth.iter().flat_map(|pa| {
            pa.policies()
                .iter()
                .flat_map(|p| p.selector.iter().flat_map(|s| s.keys()))
        });
        ap.chain(pa).map(String::as_str).collect()
    }

    fn enforcer(&self, dst: &PodView<'_>, port: u16) -> Option<Enforcer> {
        if dst.info.sidecar {
            (!SIDECAR_UNCAPTURED_PORTS.contains(&port)).then_some(Enforcer::Sidecar)
        } else if dst.info.ambient {
            Some(Enforcer::Ztunnel)
        } else {
            None
        }
    }

    fn mtls_mode(&self, dst: &PodView<'_>, port: u16) -> Mode {
        match &self.authz.peer_auth {
            Some(pa) => pa.effective(dst.ns_name, &dst.info.labels, port).mode,
            None => Mode::Permissive,
        }
    }

    /// The source as the destination's proxy sees it on `port`.
    fn authz_peer(src: &View<'_>, enforcer: Enforcer, mode: Mode) -> Peer {
        match src {
            View::External(net) => Peer {
                identity: None,
                addresses: Some(vec![*net]),
            },
            View::Pod(p) => {
                // ztunnel ignores DISABLE: HBONE is always mutual TLS (ambient L4 policy page).
                let mtls =
                    p.info.meshed() && (enforcer == Enforcer::Ztunnel || mode != Mode::Disable);
                let identity = mtls.then(|| {
                    let sa = p.info.service_account_name().to_string();
                    (
                        format!("{DEFAULT_TRUST_DOMAIN}/ns/{}/sa/{sa}", p.ns_name),
                        p.ns_name.to_string(),
                        sa,
                    )
                });
                let addresses = (!p.info.ips.is_empty())
                    .then(|| p.info.ips.iter().map(|ip| IpNet::from(*ip)).collect());
                Peer {
                    identity,
                    addresses,
                }
            }
        }
    }

    fn applicable(&self, dst: &PodView<'_>, enforcer: Enforcer) -> Vec<&AuthzPolicy> {
        use super::authz::AuthzAction;
        self.authz
            .policies
            .iter()
            .filter(|p| p.applies_to(dst.ns_name, &dst.info.labels, &self.authz.root))
            // ztunnel enforces ALLOW and DENY only (istiod: "ztunnel does not support the
            // CUSTOM action").
            .filter(|p| {
                enforcer == Enforcer::Sidecar
                    || matches!(p.action, AuthzAction::Allow | AuthzAction::Deny)
            })
            .collect()
    }

    /// The verdict for TCP `port` from `src` to `dst`.
    pub(crate) fn authz_decide(
        &self,
        src: &View<'_>,
        dst: &PodView<'_>,
        port: u16,
    ) -> AuthzDecision {
        let not_enforced = |reason: &str| AuthzDecision {
            state: AuthzState::NotEnforced,
            enforced_by: None,
            source_principal: None,
            mtls_mode: None,
            policies: Vec::new(),
            decided_by: None,
            reason: reason.to_string(),
        };
        let Some(enforcer) = self.enforcer(dst, port) else {
            return not_enforced(if dst.info.sidecar {
                "the sidecar does not capture this port"
            } else {
                "the destination is not in the mesh: no proxy enforces AuthorizationPolicy"
            });
        };
        let mode = self.mtls_mode(dst, port);
        let peer = Self::authz_peer(src, enforcer, mode);
        let applicable = self.applicable(dst, enforcer);
        let names = applicable
            .iter()
            .map(|p| format!("{}/{} ({})", p.namespace, p.name, p.action.as_str()))
            .collect();
        let mut out = AuthzDecision {
            state: AuthzState::Allowed,
            enforced_by: Some(enforcer),
            source_principal: peer.principal().map(str::to_string),
            mtls_mode: Some(mode.as_str()),
            policies: names,
            decided_by: None,
            reason: String::new(),
        };
        if mode == Mode::Strict && peer.identity.is_none() {
            out.state = AuthzState::Denied;
            out.reason = "PeerAuthentication STRICT refuses a source without mutual TLS".into();
            return out;
        }
        let (state, by, reason) = decide(applicable, &peer, port, enforcer);
        out.state = state;
        out.decided_by = by;
        out.reason = reason;
        out
    }

    /// Ports where the verdict may change: those the destination's policies and
    /// PeerAuthentications name, and the sidecar's uncaptured ones.
    fn authz_breaks(&self, dst: &PodView<'_>) -> Vec<u16> {
        let mut ports: BTreeSet<u16> = SIDECAR_UNCAPTURED_PORTS.into_iter().collect();
        for p in &self.authz.policies {
            if p.applies_to(dst.ns_name, &dst.info.labels, &self.authz.root) {
                ports.extend(p.ports());
            }
        }
        if let Some(pa) = &self.authz.peer_auth {
            for p in pa.policies() {
                ports.extend(p.port_level.keys().copied());
            }
        }
        ports.into_iter().collect()
    }

    /// What may pass the destination's proxy from `src` (`possible`: allowed or conditional
    /// ports, every non-TCP port) and what passes only for some requests (`conditional`, TCP).
    pub(crate) fn authz_connection(
        &self,
        src: &View<'_>,
        dst: &PodView<'_>,
    ) -> (Connection, Connection) {
        if !self.authz.active || (!dst.info.sidecar && !dst.info.ambient) {
            return (Connection::All, Connection::none());
        }
        // Constant between the break ports: evaluate each break port and each gap once.
        let breaks = self.authz_breaks(dst);
        let mut segments: Vec<(u16, u16)> = Vec::new();
        let mut next = 1u16;
        for &b in &breaks {
            if b > next {
                segments.push((next, b - 1));
            }
            segments.push((b, b));
            next = b.saturating_add(1);
            if b == u16::MAX {
                next = 0;
            }
        }
        if next != 0 {
            segments.push((next, u16::MAX));
        }
        let mut possible: Vec<PortRange> = other_protocols().collect();
        let mut conditional: Vec<PortRange> = Vec::new();
        let mut all = true;
        for (start, end) in segments {
            let range = PortRange {
                protocol: Protocol::Tcp,
                start,
                end,
            };
            match self.authz_decide(src, dst, start).state {
                AuthzState::NotEnforced | AuthzState::Allowed => possible.push(range),
                AuthzState::Conditional => {
                    possible.push(range);
                    conditional.push(range);
                }
                AuthzState::Denied => all = false,
            }
        }
        let possible = if all {
            Connection::All
        } else {
            Connection::Ports(PortSet::from_ranges(possible))
        };
        (
            possible,
            Connection::Ports(PortSet::from_ranges(conditional)),
        )
    }

    /// The AuthorizationPolicy verdict for TCP `port` from `src` to pod `dst`.
    pub fn authz_decision(&self, src: Target, dst: PodId, port: u16) -> AuthzDecision {
        let src = self.view(src);
        self.authz_decide(&src, &self.pod_view(dst), port)
    }

    /// The AuthorizationPolicies that apply to pod `dst` as its proxy enforces them (each as a
    /// [`AuthzRuleRef`] without a rule), or `None` when no proxy captures it.
    pub fn authz_policies_of(&self, dst: PodId) -> Option<Vec<AuthzRuleRef>> {
        let d = self.pod_view(dst);
        let enforcer = if d.info.sidecar {
            Enforcer::Sidecar
        } else if d.info.ambient {
            Enforcer::Ztunnel
        } else {
            return None;
        };
        Some(
            self.applicable(&d, enforcer)
                .into_iter()
                .map(|p| AuthzRuleRef {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    action: p.action,
                    rule: None,
                })
                .collect(),
        )
    }

    /// The TCP ports from `src` to pod `dst` that the destination's AuthorizationPolicies admit
    /// only for some requests ([`AuthzState::Conditional`]); [`Engine::allowed`] includes them.
    pub fn authz_conditional(&self, src: Target, dst: PodId) -> Connection {
        let src = self.view(src);
        self.authz_connection(&src, &self.pod_view(dst)).1
    }

    /// [`Engine::allowed`] without the ports whose AuthorizationPolicy verdict is conditional:
    /// what every connection of this kind gets through.
    pub fn allowed_for_every_request(&self, src: PodId, dst: PodId) -> Connection {
        let allowed = self.allowed(src, dst);
        let conditional = self.authz_conditional(Target::Pod(src), dst);
        without(&allowed, &conditional)
    }

    /// The class-level answer for [`Engine::reach`]: classes fix everything the verdict reads
    /// (namespace, selector labels, capture, service account, known addresses and the blocks
    /// containing them), so a representative pod of each decides for all.
    pub(crate) fn authz_classes(
        &self,
        src: Option<usize>,
        region: Option<usize>,
        dst: usize,
    ) -> (Connection, Connection) {
        let d = self.pod_view(PodId(self.classes.classes[dst].rep));
        let view = match (src, region) {
            (Some(s), _) => View::Pod(self.pod_view(PodId(self.classes.classes[s].rep))),
            (None, Some(g)) => View::External(self.regions.atoms[g][0]),
            (None, None) => unreachable!("a source class or a region"),
        };
        self.authz_connection(&view, &d)
    }

    /// The policies (namespace, name) that attach with `targetRefs` to a Gateway, a waypoint or
    /// a Service: enforced by that proxy, for traffic that goes through it, which depends on how
    /// the client addresses the destination (a waypoint serves Service-addressed traffic unless
    /// `istio.io/waypoint-for` says otherwise:
    /// <https://istio.io/latest/docs/ambient/usage/waypoint/>). The engine models connections
    /// between pods, not addressing, so it leaves them out.
    pub fn authz_unmodelled(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.authz
            .policies
            .iter()
            .filter(|p| p.target_refs)
            .map(|p| (p.namespace.as_str(), p.name.as_str()))
    }

    /// Names of policies applying to nothing the engine models, for notes (`targetRefs`).
    pub fn authz_caveats(&self) -> Vec<String> {
        self.authz_unmodelled()
            .map(|(ns, name)| format!("AuthorizationPolicy {ns}/{name} attaches with targetRefs to a gateway or waypoint, which the engine does not model: left out"))
            .collect()
    }
}

/// `a` minus the TCP ports of `b`.
pub(crate) fn without(a: &Connection, b: &Connection) -> Connection {
    match b {
        Connection::All => Connection::none(),
        Connection::Ports(bp) if bp.is_empty() => a.clone(),
        Connection::Ports(bp) => {
            let a = match a {
                Connection::All => PortSet::every_port(),
                Connection::Ports(p) => p.clone(),
            };
            Connection::Ports(a.difference(bp))
        }
    }
}
