//! Istio `AuthorizationPolicy` (`security.istio.io/v1`, also read as `v1beta1`) at L4: what the
//! receiving proxy of a captured pod admits once the network has let a TCP connection through.
//!
//! Sources: the API reference
//! (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>), the
//! authorization concepts (<https://istio.io/latest/docs/concepts/security/#authorization>),
//! ambient's L4 policy page (<https://istio.io/latest/docs/ambient/usage/l4-policy/>) and
//! istiod's conversion for ztunnel (`convertAuthorizationPolicy` and `handleRule` in istio/istio
//! `pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go`).
//!
//! * **Where it applies.** Only at a captured destination: its sidecar, or the node's ztunnel
//!   for an ambient pod ([`Enforcer`]). A pod outside the mesh enforces nothing. Sidecars leave
//!   15020, 15021 and 15090 out of the inbound redirect (`istio::PROXY_PORTS`' docs), so those
//!   ports are not enforced either. Only TCP is captured.
//! * **Which policies.** A policy in the mesh root namespace applies mesh-wide, one in another
//!   namespace to that namespace's pods; `selector.matchLabels` narrows it to the pods it
//!   matches (an absent or empty selector takes them all). A policy with `targetRefs` attaches
//!   to a gateway or a waypoint and is enforced by neither a sidecar nor ztunnel (istiod skips
//!   it for ztunnel: "TargetRef is not intended for ztunnel"). ztunnel supports ALLOW and DENY
//!   only: CUSTOM and AUDIT policies are not enforced by it.
//! * **Order.** CUSTOM first (an external authorizer decides, which the engine cannot know),
//!   then DENY (any matching rule denies), then ALLOW: when some ALLOW policy applies, a request
//!   is allowed only if one of their rules matches; without one, it is allowed. A policy without
//!   `rules` never matches: as ALLOW it admits nothing, as DENY it denies nothing. An empty rule
//!   (`rules: [{}]`) matches everything.
//! * **Matching.** A rule matches when its `from` (any source), its `to` (any operation) and
//!   every `when` condition match; within a source or an operation every field set must match,
//!   a list matching when any value does and a `not` list when none does. Strings match exactly,
//!   by prefix (`abc*`), by suffix (`*abc`) or by presence (`*`).
//! * **Identity.** `principals`, `namespaces` and `serviceAccounts` are read from the peer's
//!   certificate, `<trust domain>/ns/<namespace>/sa/<service account>`: only a meshed source
//!   (sidecar or ambient) over mutual TLS has one. The connection is mutual TLS when the source
//!   is meshed, unless the destination's sidecar has PeerAuthentication mode DISABLE for the
//!   port (ztunnel ignores DISABLE: HBONE is always mutual TLS). The mode comes from
//!   [`meshmove_istio::PeerAuthentications`]; under STRICT a source without mutual TLS is
//!   refused before any AuthorizationPolicy. Without a principal, positive identity fields do
//!   not match and negative ones (`notPrincipals`, `notNamespaces`) do.
//! * **Not modelled at L4** (L7 fields: `hosts`, `methods`, `paths` and their `not` forms,
//!   `requestPrincipals`, `remoteIpBlocks`, and `when` keys other than `source.ip`,
//!   `source.namespace`, `source.principal`, `destination.port`; also `destination.ip`): at a
//!   sidecar they depend on each request, so a rule using them is [`Tri::Maybe`], and so is the
//!   verdict it decides ([`AuthzState::Conditional`]: not provably allowed for every request, or
//!   may be denied). ztunnel never sees them: istiod omits an ALLOW rule that uses any (it never
//!   matches) and enforces a DENY rule without them (it matches on the rest), which is what the
//!   engine does for an ambient destination. A source IP the engine does not know (a pod
//!   template without an address) against `ipBlocks` is also `Maybe`, unless every block is
//!   link-local (never a pod's address: ambient's probe source 169.254.7.127 is one).
//! * **Not modelled at all:** waypoints (traffic through one arrives with the waypoint's
//!   identity), trust domain aliases, and sidecar port exclusions set by annotation.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Serialize;

/// Istio's default trust domain (MeshConfig `trustDomain`).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// Ports of a sidecar-injected pod that its inbound redirect leaves out (merged metrics, health,
/// Envoy's Prometheus endpoint; `istio-iptables -d 15090,15021,15020`).
pub(crate) const SIDECAR_UNCAPTURED_PORTS: [u16; 3] = [15020, 15021, 15090];

/// A three-valued match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tri {
    Yes,
    No,
    /// Depends on what L4 cannot see (the request, an unknown address).
    Maybe,
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
    fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
            (Tri::No, Tri::No) => Tri::No,
            _ => Tri::Maybe,
        }
    }
    fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Maybe => Tri::Maybe,
        }
    }
    fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthzAction {
    Allow,
    Deny,
    Custom,
    Audit,
}

impl AuthzAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzAction::Allow => "ALLOW",
            AuthzAction::Deny => "DENY",
            AuthzAction::Custom => "CUSTOM",
            AuthzAction::Audit => "AUDIT",
        }
    }
}

/// Who enforces AuthorizationPolicy for a destination pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Enforcer {
    Sidecar,
    Ztunnel,
}

/// A string pattern of an identity field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pattern {
    Any,
    Prefix(String),
    Suffix(String),
    Exact(String),
}

impl Pattern {
    pub(crate) fn parse(s: &str) -> Pattern {
        if s == "*" {
            Pattern::Any
        } else if let Some(rest) = s.strip_prefix('*') {
            Pattern::Suffix(rest.to_string())
        } else if let Some(rest) = s.strip_suffix('*') {
            Pattern::Prefix(rest.to_string())
        } else {
            Pattern::Exact(s.to_string())
        }
    }
    fn matches(&self, v: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => v.starts_with(p.as_str()),
            Pattern::Suffix(p) => v.ends_with(p.as_str()),
            Pattern::Exact(p) => v == p,
        }
    }
}

/// One L4 field of a source, operation or condition. `negated` is the `not` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Principals(Vec<Pattern>),
    Namespaces(Vec<Pattern>),
    /// `(namespace, service account)`; a value without `/` is in the policy's namespace.
    ServiceAccounts(Vec<(String, String)>),
    IpBlocks(Vec<IpNet>),
    Ports(Vec<u16>),
    /// A field the engine does not model at L4 (its name, for explanations).
    L7(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Clause {
    pub field: Field,
    pub negated: bool,
}

/// A `from[].source`, `to[].operation` or `when[]` entry: every clause must match.
pub(crate) type Conjunction = Vec<Clause>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuthzRule {
    /// `None`: no `from`, any source.
    pub from: Option<Vec<Conjunction>>,
    /// `None`: no `to`, any operation.
    pub to: Option<Vec<Conjunction>>,
    /// Every condition must match.
    pub when: Vec<Clause>,
}

impl AuthzRule {
    /// The L7 fields the rule uses.
    pub(crate) fn l7_fields(&self) -> Vec<&str> {
        let conj = self
            .from
            .iter()
            .flatten()
            .chain(self.to.iter().flatten())
            .flatten();
        conj.chain(&self.when)
            .filter_map(|c| match &c.field {
                Field::L7(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct AuthzPolicy {
    pub namespace: String,
    pub name: String,
    /// `None` or empty: every pod of its scope.
    pub selector: Option<BTreeMap<String, String>>,
    pub target_refs: bool,
    pub action: AuthzAction,
    pub rules: Vec<AuthzRule>,
}

/// What the receiving proxy knows about the source of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// `<trust domain>/ns/<ns>/sa/<sa>` with the namespace and service account, when the
    /// connection is mutual TLS from a meshed source.
    pub identity: Option<(String, String, String)>,
    /// The source address: `Some` known addresses (a pod's IPs, an external range), `None`
    /// unknown (a pod template).
    pub addresses: Option<Vec<IpNet>>,
}

impl Peer {
    pub(crate) fn principal(&self) -> Option<&str> {
        self.identity.as_ref().map(|(p, _, _)| p.as_str())
    }
}

/// How the rules of a policy are read at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum L7Reading {
    /// A sidecar sees requests: an L7 field depends on each.
    PerRequest,
    /// ztunnel: istiod drops L7 ALLOW rules and the L7 parts of DENY rules.
    Dropped(AuthzAction),
}

/// Link-local ranges (RFC 3927, RFC 4291): never a pod's address, so a block inside them is
/// known not to hold an unknown pod address (ambient's probe source, 169.254.7.127, is one).
fn link_local(b: &IpNet) -> bool {
    let v4: IpNet = "169.254.0.0/16".parse().expect("a valid CIDR");
    let v6: IpNet = "fe80::/10".parse().expect("a valid CIDR");
    v4.contains(b) || v6.contains(b)
}

fn ip_tri(blocks: &[IpNet], addrs: &Option<Vec<IpNet>>) -> Tri {
    let Some(addrs) = addrs else {
        return if blocks.iter().all(link_local) {
            Tri::No
        } else {
            Tri::Maybe
        };
    };
    // A pod connects from one of its addresses; the engine treats a pod as matching a block
    // when one of its IPs is inside it, as it does for NetworkPolicy `ipBlock`s. An external
    // range matches when it is inside a block, and not when it is outside all of them.
    let mut acc = Tri::No;
    for a in addrs {
        for b in blocks {
            if b.contains(a) {
                return Tri::Yes;
            }
            if a.contains(b) {
                acc = Tri::Maybe;
            }
        }
    }
    acc
}

fn clause_tri(c: &Clause, peer: &Peer, port: u16, policy_ns: &str, reading: L7Reading) -> Tri {
    let positive = match &c.field {
        Field::Principals(ps) => match peer.principal() {
            Some(p) => Tri::from_bool(ps.iter().any(|x| x.matches(p))),
            None => Tri::No,
        },
        Field::Namespaces(ps) => match &peer.identity {
            Some((_, ns, _)) => Tri::from_bool(ps.iter().any(|x| x.matches(ns))),
            None => Tri::No,
        },
        Field::ServiceAccounts(sas) => match &peer.identity {
            Some((_, ns, sa)) => Tri::from_bool(sas.iter().any(|(n, s)| {
                let n = if n.is_empty() { policy_ns } else { n.as_str() };
                n == ns && s == sa
            })),
            None => Tri::No,
        },
        Field::IpBlocks(blocks) => ip_tri(blocks, &peer.addresses),
        Field::Ports(ports) => Tri::from_bool(ports.contains(&port)),
        Field::L7(_) => {
            return match reading {
                L7Reading::PerRequest => Tri::Maybe,
                // ztunnel: a DENY rule is enforced without its L7 parts; an ALLOW rule with
                // any is dropped as a whole (handled in `rule_tri`).
                L7Reading::Dropped(_) => Tri::Yes,
            };
        }
    };
    if c.negated { positive.not() } else { positive }
}

fn conj_tri(conj: &Conjunction, peer: &Peer, port: u16, ns: &str, reading: L7Reading) -> Tri {
    conj.iter().fold(Tri::Yes, |acc, c| {
        acc.and(clause_tri(c, peer, port, ns, reading))
    })
}

fn any_tri(
    list: &Option<Vec<Conjunction>>,
    peer: &Peer,
    port: u16,
    ns: &str,
    reading: L7Reading,
) -> Tri {
    match list {
        None => Tri::Yes,
        Some(list) => list.iter().fold(Tri::No, |acc, c| {
            acc.or(conj_tri(c, peer, port, ns, reading))
        }),
    }
}

/// Whether one rule of a policy in namespace `ns` matches a connection from `peer` to `port`.
pub(crate) fn rule_tri(
    rule: &AuthzRule,
    peer: &Peer,
    port: u16,
    ns: &str,
    reading: L7Reading,
) -> Tri {
    if reading == L7Reading::Dropped(AuthzAction::Allow) && !rule.l7_fields().is_empty() {
        return Tri::No;
    }
    let when = rule.when.iter().fold(Tri::Yes, |acc, c| {
        acc.and(clause_tri(c, peer, port, ns, reading))
    });
    any_tri(&rule.from, peer, port, ns, reading)
        .and(any_tri(&rule.to, peer, port, ns, reading))
        .and(when)
}

/// The outcome for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthzState {
    /// The destination is not captured (or the port is not): no AuthorizationPolicy applies.
    NotEnforced,
    Allowed,
    Denied,
    /// Depends on what L4 cannot see: allowed for some requests at most (an ALLOW rule that
    /// only matches with L7 fields or conditions), or possibly denied (a DENY rule that may
    /// match, a CUSTOM policy's external authorizer).
    Conditional,
}

impl AuthzState {
    /// Some traffic may pass.
    pub fn may_pass(self) -> bool {
        self != AuthzState::Denied
    }
}

/// The policy rule that decided (or made conditional) a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzRuleRef {
    pub namespace: String,
    pub name: String,
    pub action: AuthzAction,
    /// Position in `spec.rules`; `None` when the policy as a whole decided (no ALLOW rule
    /// matched, a PeerAuthentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
}

impl std::fmt::Display for AuthzRuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AuthorizationPolicy {}/{} ({})",
            self.namespace,
            self.name,
            self.action.as_str()
        )?;
        if let Some(r) = self.rule {
            write!(f, " rules[{r}]")?;
        }
        Ok(())
    }
}

/// The decision for one connection, with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzDecision {
    pub state: AuthzState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforced_by: Option<Enforcer>,
    /// The source's mTLS principal as the destination sees it; `None` for plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_principal: Option<String>,
    /// The destination port's effective PeerAuthentication mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls_mode: Option<&'static str>,
    /// The policies that apply to the destination (`namespace/name (ACTION)`).
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<AuthzRuleRef>,
    pub reason: String,
}

/// Evaluate the applicable `policies` (already narrowed to the destination) in Istio's order.
pub(crate) fn decide<'p>(
    policies: impl IntoIterator<Item = &'p AuthzPolicy>,
    peer: &Peer,
    port: u16,
    enforcer: Enforcer,
) -> (AuthzState, Option<AuthzRuleRef>, String) {
    let r = |p: &AuthzPolicy, rule: Option<usize>| AuthzRuleRef {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        action: p.action,
        rule,
    };
    let mut custom: Option<AuthzRuleRef> = None;
    let mut may_deny: Option<AuthzRuleRef> = None;
    let mut allows: Vec<&AuthzPolicy> = Vec::new();
    let mut ordered: Vec<&AuthzPolicy> = policies.into_iter().collect();
    ordered.sort_by_key(|p| p.action);
    for p in ordered {
        let reading = match enforcer {
            Enforcer::Sidecar => L7Reading::PerRequest,
            Enforcer::Ztunnel => L7Reading::Dropped(p.action),
        };
        match p.action {
            AuthzAction::Audit => {}
            AuthzAction::Custom => {
                if custom.is_none()
                    && let Some(i) = p.rules.iter().position(|rule| {
                        rule_tri(rule, peer, port, &p.namespace, reading) != Tri::No
                    })
                {
                    custom = Some(r(p, Some(i)));
                }
            }
            AuthzAction::Deny => {
                for (i, rule) in p.rules.iter().enumerate() {
                    match rule_tri(rule, peer, port, &p.namespace, reading) {
                        Tri::Yes => {
                            let why = format!("{} matches", r(p, Some(i)));
                            return (AuthzState::Denied, Some(r(p, Some(i))), why);
                        }
                        Tri::Maybe if may_deny.is_none() => may_deny = Some(r(p, Some(i))),
                        _ => {}
                    }
                }
            }
            AuthzAction::Allow => allows.push(p),
        }
    }
    let mut allowed_by: Option<AuthzRuleRef> = None;
    let mut maybe_allowed: Option<AuthzRuleRef> = None;
    for p in &allows {
        let reading = match enforcer {
            Enforcer::Sidecar => L7Reading::PerRequest,
            Enforcer::Ztunnel => L7Reading::Dropped(p.action),
        };
        for (i, rule) in p.rules.iter().enumerate() {
            match rule_tri(rule, peer, port, &p.namespace, reading) {
                Tri::Yes if allowed_by.is_none() => allowed_by = Some(r(p, Some(i))),
                Tri::Maybe if maybe_allowed.is_none() => maybe_allowed = Some(r(p, Some(i))),
                _ => {}
            }
        }
    }
    if !allows.is_empty() && allowed_by.is_none() {
        return match maybe_allowed {
            Some(m) => {
                let why = format!(
                    "only {m} may match, on what L4 cannot see (L7 fields, conditions or an unknown source address)"
                );
                (AuthzState::Conditional, Some(m), why)
            }
            None => {
                let names: Vec<String> = allows
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect();
                let first = r(allows[0], None);
                (
                    AuthzState::Denied,
                    Some(first),
                    format!("no rule of the ALLOW policies {} matches", names.join(", ")),
                )
            }
        };
    }
    if let Some(c) = custom {
        let why = format!("{c} applies: its external authorizer decides");
        return (AuthzState::Conditional, Some(c), why);
    }
    if let Some(m) = may_deny {
        let why = format!(
            "{m} may match, on what L4 cannot see (L7 fields, conditions or an unknown source address)"
        );
        return (AuthzState::Conditional, Some(m), why);
    }
    match allowed_by {
        Some(a) => {
            let why = format!("{a} matches");
            (AuthzState::Allowed, Some(a), why)
        }
        None => (
            AuthzState::Allowed,
            None,
            "no ALLOW policy applies and no DENY rule matches".into(),
        ),
    }
}

impl AuthzPolicy {
    /// Whether the policy applies to a pod with `labels` in `namespace` (`root`: the mesh root
    /// namespace), as a sidecar or ztunnel enforces it.
    pub(crate) fn applies_to(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root: &str,
    ) -> bool {
        !self.target_refs
            && (self.namespace == namespace || self.namespace == root)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// The address blocks its rules mention.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = IpNet> + '_ {
        let conj = self
            .rules
            .iter()
            .flat_map(|r| r.from.iter().flatten().flatten().chain(&r.when));
        conj.filter_map(|c| match &c.field {
            Field::IpBlocks(b) => Some(b.iter().copied()),
            _ => None,
        })
        .flatten()
    }

    /// The ports its rules mention (the verdict is constant between them).
    pub(crate) fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        let conj = self
            .rules
            .iter()
            .flat_map(|r| r.to.iter().flatten().flatten().chain(&r.when));
        conj.filter_map(|c| match &c.field {
            Field::Ports(p) => Some(p.iter().copied()),
            _ => None,
        })
        .flatten()
    }
}
