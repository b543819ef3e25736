//! AdminNetworkPolicy and BaselineAdminNetworkPolicy (`policy.networking.k8s.io/v1alpha1`), the
//! cluster-scoped policies of the Kubernetes network-policy-api project.
//!
//! The version read is v1alpha1 as the project released it up to v0.1.7 (API reference:
//! <https://network-policy-api.sigs.k8s.io/reference/spec/>; the CRDs under `config/crd/` of
//! kubernetes-sigs/network-policy-api). Fields read and how:
//!
//! * `spec.priority` (ANP only, 0-1000): lower numbers are evaluated first. Two ANPs with the
//!   same priority that both match a connection are left to the implementation by the spec ("the
//!   implementation can apply any of the matching policies"; administrators should keep
//!   priorities unique where that ambiguity matters). The engine evaluates equal priorities in
//!   order of name, so its answers are stable, and reports every such group as a caveat
//!   ([`Engine::admin_caveats`]) because a cluster may decide otherwise.
//! * `spec.subject`: exactly one of `namespaces` (a namespace selector: every pod of the matching
//!   namespaces) or `pods` (`namespaceSelector` AND `podSelector`). Host-network pods are never
//!   subjects (the engine leaves them out anyway).
//! * `spec.ingress[]` / `spec.egress[]` (at most 100 each): `name`, `action`, `from` / `to` (1 to
//!   100 peers, ORed), `ports` (optional; missing means every port of every protocol). Rules are
//!   evaluated in the order written and the first rule that matches a connection decides it
//!   (the CRD: "the relative precedence of ... rules within a single ANP object ... will be
//!   determined by the order in which the rule is written").
//! * Actions (NPEP-2 and the API reference): ANP `Allow` admits the traffic whatever
//!   NetworkPolicy says, `Deny` drops it whatever NetworkPolicy says, `Pass` skips every further
//!   ANP rule and hands the traffic to NetworkPolicy. Traffic that no ANP rule matches goes to
//!   NetworkPolicy too. If some NetworkPolicy of that direction selects the pod, NetworkPolicy
//!   decides; otherwise the BaselineAdminNetworkPolicy's rules (`Allow`/`Deny`, first match) do,
//!   and traffic none of them matches is allowed. BaselineAdminNetworkPolicy is a singleton named
//!   `default` (the CRD's validation); other names are invalid.
//! * Peers: `namespaces` (namespace selector), `pods` (`namespaceSelector` AND `podSelector`),
//!   and for egress `networks` (1-25 CIDRs). The API reference says `networks` is meant for
//!   addresses outside the cluster but checks cluster-internal traffic too, so a pod whose known
//!   IP is in a CIDR matches it whatever [`crate::EngineOptions::pod_ips_match_ip_blocks`] says;
//!   pods without known IPs (templates from manifests) match no CIDR, and that is reported as a
//!   caveat when it can matter.
//! * Egress peers the engine cannot evaluate are kept and reported, never dropped silently:
//!   `nodes` (the engine has no model of node addresses) and `domainNames` (NPEP-133; names are
//!   not resolved). Such a peer matches nothing in the engine; each occurrence is a caveat.
//! * Ports: exactly one of `portNumber` (`protocol` defaults to TCP, `port`), `namedPort` (resolved
//!   like NetworkPolicy's: on the subject for ingress, on the destination pod for egress; never
//!   on an address outside the cluster) or `portRange` (`protocol`, `start`, `end`; `end` below
//!   `start` is invalid).
//!
//! Any other field (a later version's, or an older shape such as `namespaces.namespaceSelector`)
//! makes the policy invalid with the field named: read with a different meaning it could widen
//! or narrow what the policy does.
//!
//! A rule without `ports` also covers ICMP and other protocols without ports. The engine keeps
//! that exactly while it decides; a result that is "every protocol except some ports" is reported
//! as the remaining TCP, UDP and SCTP ports ([`Connection`] has no word for the rest).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde_json::{Map, Value};

use super::cidr::{IpBlock, parse_cidr};
use super::compile::{CompileCtx, Direction, PolicyError, PortSel, PortSpec, ports_connection};
use super::connection::{Connection, PortSet, Protocol};
use super::eval::{PodView, View};
use super::explain::SideExplanation;
use super::selector::{Selector, Sym};
use super::{BitSet, Engine};

pub(crate) const ANP: &str = "AdminNetworkPolicy";
pub(crate) const BANP: &str = "BaselineAdminNetworkPolicy";

/// What an admin rule does with the traffic it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AdminAction {
    Allow,
    Deny,
    /// ANP only: hand the traffic to NetworkPolicy (and the baseline).
    Pass,
}

/// Which of the two admin policy kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AdminTier {
    /// `AdminNetworkPolicy`: before NetworkPolicy.
    #[serde(rename = "AdminNetworkPolicy")]
    Admin,
    /// `BaselineAdminNetworkPolicy`: after NetworkPolicy, for pods it does not isolate.
    #[serde(rename = "BaselineAdminNetworkPolicy")]
    Baseline,
}

impl AdminTier {
    pub fn kind(self) -> &'static str {
        match self {
            AdminTier::Admin => ANP,
            AdminTier::Baseline => BANP,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum AdminPeer {
    /// `namespaces` (pods: `None`) or `pods`.
    Pods {
        namespaces: Selector,
        pods: Option<Selector>,
    },
    /// `networks`: ids into the engine's ipBlock table.
    Networks(Vec<usize>),
    /// `nodes` or `domainNames`: reported, matches nothing here.
    Unmodelled(&'static str),
}

#[derive(Clone, Debug)]
pub(crate) struct AdminRule {
    pub name: String,
    pub action: AdminAction,
    pub peers: Vec<AdminPeer>,
    /// `None`: every port of every protocol.
    pub ports: Option<Vec<PortSpec>>,
    /// Index into [`Admin::rule_loc`].
    pub id: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct AdminPolicy {
    pub tier: AdminTier,
    pub name: String,
    pub priority: i32,
    pub subject_ns: Selector,
    pub subject_pods: Option<Selector>,
    pub ingress: Vec<AdminRule>,
    pub egress: Vec<AdminRule>,
}

impl AdminPolicy {
    pub(crate) fn rules(&self, dir: Direction) -> &[AdminRule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    fn selects(&self, ns_labels: &[(Sym, Sym)], labels: &[(Sym, Sym)]) -> bool {
        self.subject_ns.matches(ns_labels) && self.subject_pods.as_ref().is_none_or(|s| s.matches(labels))
    }

}

const fn di(dir: Direction) -> usize {
    match dir {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// The compiled admin policies and their per-class index.
#[derive(Default)]
pub(crate) struct Admin {
    /// ANPs by priority then name, then the BANP.
    pub policies: Vec<AdminPolicy>,
    /// Rule id -> (policy, direction, index in that direction).
    pub rule_loc: Vec<(usize, Direction, usize)>,
    /// Per ipBlock id: used by some `networks` peer (so pod IPs are always matched against it).
    pub blocks: Vec<bool>,
    pub caveats: Vec<PolicyError>,
    /// Per direction, per class: the ANP rule ids that apply, in evaluation order.
    class_admin: [Vec<Vec<usize>>; 2],
    /// Per direction, per class: the BANP rule ids that apply, in order.
    class_baseline: [Vec<Vec<usize>>; 2],
    /// Per rule id: the classes and external regions its peers match.
    rule_classes: Vec<BitSet>,
    rule_regions: Vec<BitSet>,
    /// Per rule id: its ports when they name no port, towards a pod.
    rule_fixed: Vec<Option<Traffic>>,
    /// Per rule id: its ports towards an address outside the cluster (named ports dropped).
    rule_external: Vec<Traffic>,
}

impl Admin {
    pub(crate) fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub(crate) fn rule(&self, id: usize) -> &AdminRule {
        let (pi, dir, ri) = self.rule_loc[id];
        &self.policies[pi].rules(dir)[ri]
    }

    /// Label keys the admin pod selectors mention and port names the admin rules name: both
    /// split pods into classes.
    pub(crate) fn class_keys<'a>(&'a self, keys: &mut std::collections::HashSet<Sym>, port_names: &mut std::collections::HashSet<&'a str>) {
        for p in &self.policies {
            keys.extend(p.subject_pods.iter().flat_map(Selector::keys));
            for r in p.ingress.iter().chain(&p.egress) {
                for peer in &r.peers {
                    if let AdminPeer::Pods { pods: Some(s), .. } = peer {
                        keys.extend(s.keys());
                    }
                }
                for port in r.ports.iter().flatten() {
                    if let PortSel::Named(n) = &port.port {
                        port_names.insert(n);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic sets with a complement.

/// A set of traffic: transport ports, plus (`other`) every protocol that has no ports. Closed
/// under union, intersection and difference, which the admin tiers need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Traffic {
    ports: PortSet,
    other: bool,
}

impl Traffic {
    pub(crate) fn all() -> Traffic {
        Traffic { ports: PortSet::every_port(), other: true }
    }

    pub(crate) fn none() -> Traffic {
        Traffic { ports: PortSet::new(), other: false }
    }

    pub(crate) fn from_conn(c: &Connection) -> Traffic {
        match c {
            Connection::All => Traffic::all(),
            Connection::Ports(p) => Traffic { ports: p.clone(), other: false },
        }
    }

    /// Exact except for "some but not all ports, and the portless protocols", which becomes
    /// the ports alone (see the module docs).
    pub(crate) fn to_conn(&self) -> Connection {
        if self.other && self.ports == PortSet::every_port() {
            Connection::All
        } else {
            Connection::Ports(self.ports.clone())
        }
    }

    pub(crate) fn is_none(&self) -> bool {
        !self.other && self.ports.is_empty()
    }

    pub(crate) fn union(&self, o: &Traffic) -> Traffic {
        Traffic { ports: self.ports.union(&o.ports), other: self.other || o.other }
    }

    pub(crate) fn intersect(&self, o: &Traffic) -> Traffic {
        Traffic { ports: self.ports.intersect(&o.ports), other: self.other && o.other }
    }

    pub(crate) fn minus(&self, o: &Traffic) -> Traffic {
        Traffic { ports: self.ports.difference(&o.ports), other: self.other && !o.other }
    }
}

/// The three tiers applied to one side of a connection, rule by rule.
pub(crate) struct Decider {
    /// Not yet matched by any ANP rule.
    undecided: Traffic,
    /// Matched by an ANP `Pass` rule.
    passed: Traffic,
    allowed: Traffic,
}

impl Decider {
    pub(crate) fn new() -> Decider {
        Decider { undecided: Traffic::all(), passed: Traffic::none(), allowed: Traffic::none() }
    }

    /// An ANP rule whose peers match, with the traffic its ports cover. Returns whether it
    /// decided some traffic (first match wins: only what no earlier rule matched).
    pub(crate) fn admin(&mut self, action: AdminAction, ports: &Traffic) -> bool {
        let hit = ports.intersect(&self.undecided);
        if hit.is_none() {
            return false;
        }
        match action {
            AdminAction::Allow => self.allowed = self.allowed.union(&hit),
            AdminAction::Deny => {}
            AdminAction::Pass => self.passed = self.passed.union(&hit),
        }
        self.undecided = self.undecided.minus(&hit);
        true
    }

    /// Whether every traffic has been decided by ANP rules already.
    pub(crate) fn admin_done(&self) -> bool {
        self.undecided.is_none()
    }

    /// NetworkPolicy's allowance when some NetworkPolicy of the direction selects the pod
    /// (`None` otherwise), then the baseline's matching rules in order.
    pub(crate) fn finish(self, np: Option<Traffic>, baseline: impl IntoIterator<Item = (AdminAction, Traffic)>) -> Traffic {
        let mut rest = self.undecided.union(&self.passed);
        let mut allowed = self.allowed;
        if let Some(np) = np {
            return allowed.union(&rest.intersect(&np));
        }
        for (action, ports) in baseline {
            if rest.is_none() {
                break;
            }
            let hit = ports.intersect(&rest);
            if action == AdminAction::Allow {
                allowed = allowed.union(&hit);
            }
            rest = rest.minus(&hit);
        }
        allowed.union(&rest)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and validating the objects.

struct Errs<'a> {
    kind: &'static str,
    name: &'a str,
    list: Vec<PolicyError>,
    caveats: Vec<PolicyError>,
}

impl Errs<'_> {
    fn err(&self, path: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError { kind: self.kind, namespace: String::new(), name: self.name.to_string(), path: path.into(), message: message.into() }
    }
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let e = self.err(path, message);
        self.list.push(e);
    }
    fn caveat(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let e = self.err(path, message);
        self.caveats.push(e);
    }

    /// The object's fields, with every field outside `known` reported.
    fn fields<'v>(&mut self, v: &'v Value, path: &str, known: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.push(path, format!("Invalid value: must be an object, not {}", type_name(v)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let expected = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                self.push(
                    format!("{path}.{key}"),
                    format!("unknown field: not part of policy.networking.k8s.io/v1alpha1 as of network-policy-api v0.1.7 (expected {expected})"),
                );
            }
        }
        Some(map)
    }

    fn selector(&mut self, v: &Value, path: &str, ctx: &mut CompileCtx) -> Option<Selector> {
        self.fields(v, path, &["matchLabels", "matchExpressions"])?;
        let sel: LabelSelector = match serde_json::from_value(v.clone()) {
            Ok(s) => s,
            Err(e) => {
                self.push(path, format!("Invalid value: not a label selector: {e}"));
                return None;
            }
        };
        match Selector::compile(&sel, &mut ctx.interner) {
            Ok(s) => Some(s),
            Err(e) => {
                self.push(format!("{path}.{}", e.path), e.message);
                None
            }
        }
    }

    /// An object with exactly one of `options` set (the CRDs' minProperties/maxProperties 1).
    fn one_of<'v>(&mut self, v: &'v Value, path: &str, options: &[&str]) -> Option<(&'v str, &'v Value)> {
        let map = self.fields(v, path, options)?;
        let mut set = map.iter().filter(|(k, _)| options.contains(&k.as_str()));
        match (set.next(), set.next()) {
            (Some((k, v)), None) => Some((k.as_str(), v)),
            (None, _) => {
                let names = options.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                self.push(path, format!("Required value: exactly one of {names} must be set"));
                None
            }
            (Some(_), Some(_)) => {
                let names = options.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                self.push(path, format!("Forbidden: only one of {names} may be set"));
                None
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn list<'v>(v: Option<&'v Value>, path: &str, max: usize, min: usize, errs: &mut Errs<'_>) -> Option<&'v [Value]> {
    let v = v?;
    let Some(items) = v.as_array() else {
        errs.push(path, format!("Invalid value: must be a list, not {}", type_name(v)));
        return None;
    };
    if items.len() > max {
        errs.push(path, format!("Too many: {}: must have at most {max} items", items.len()));
    }
    if items.len() < min {
        errs.push(path, format!("Required value: must have at least {min} item(s)"));
    }
    Some(items)
}

fn port_number(v: Option<&Value>, path: &str, errs: &mut Errs<'_>) -> Option<u16> {
    let Some(v) = v else {
        errs.push(path, "Required value");
        return None;
    };
    match v.as_i64().and_then(|n| u16::try_from(n).ok()).filter(|&n| n != 0) {
        Some(n) => Some(n),
        None => {
            errs.push(path, format!("Invalid value: {v}: must be between 1 and 65535, inclusive"));
            None
        }
    }
}

fn protocol(v: Option<&Value>, path: &str, errs: &mut Errs<'_>) -> Option<Protocol> {
    match v {
        // The CRDs default the protocol to TCP.
        None => Some(Protocol::Tcp),
        Some(Value::String(s)) => match s.parse() {
            Ok(p) => Some(p),
            Err(_) => {
                errs.push(path, format!("Unsupported value: {s:?}: supported values: \"TCP\", \"UDP\", \"SCTP\""));
                None
            }
        },
        Some(other) => {
            errs.push(path, format!("Invalid value: must be a string, not {}", type_name(other)));
            None
        }
    }
}

fn compile_ports(v: Option<&Value>, path: &str, errs: &mut Errs<'_>) -> Option<Option<Vec<PortSpec>>> {
    let Some(items) = list(v, path, 100, 0, errs) else {
        return Some(None);
    };
    if items.is_empty() {
        // The CRDs allow an empty list without saying what it means; the engine reads it as the
        // field being absent (every port), as NetworkPolicy does, and says so.
        errs.caveat(path, "empty `ports` is read as every port of every protocol, as for a missing `ports`");
        return Some(None);
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let Some((which, v)) = errs.one_of(item, &path, &["portNumber", "namedPort", "portRange"]) else {
            ok = false;
            continue;
        };
        let path = format!("{path}.{which}");
        let spec = match which {
            "portNumber" => (|| {
                let m = errs.fields(v, &path, &["protocol", "port"])?;
                let protocol = protocol(m.get("protocol"), &format!("{path}.protocol"), errs)?;
                let port = port_number(m.get("port"), &format!("{path}.port"), errs)?;
                Some(PortSpec { protocol, port: PortSel::Range(port, port) })
            })(),
            "portRange" => (|| {
                let m = errs.fields(v, &path, &["protocol", "start", "end"])?;
                let protocol = protocol(m.get("protocol"), &format!("{path}.protocol"), errs);
                let start = port_number(m.get("start"), &format!("{path}.start"), errs);
                let end = port_number(m.get("end"), &format!("{path}.end"), errs);
                let (protocol, start, end) = (protocol?, start?, end?);
                if end < start {
                    errs.push(format!("{path}.end"), format!("Invalid value: {end}: must not be less than `start` ({start})"));
                    return None;
                }
                Some(PortSpec { protocol, port: PortSel::Range(start, end) })
            })(),
            _ => match v.as_str() {
                Some(name) if !name.is_empty() => Some(PortSpec { protocol: Protocol::Tcp, port: PortSel::Named(name.to_string()) }),
                _ => {
                    errs.push(&path, "Invalid value: must be a non-empty port name");
                    None
                }
            },
        };
        match spec {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(Some(out))
}

fn compile_peers(v: Option<&Value>, path: &str, dir: Direction, ctx: &mut CompileCtx, errs: &mut Errs<'_>) -> Option<Vec<AdminPeer>> {
    let Some(items) = list(v, path, 100, 1, errs) else {
        errs.push(path, "Required value");
        return None;
    };
    let options: &[&str] = match dir {
        Direction::Ingress => &["namespaces", "pods"],
        Direction::Egress => &["namespaces", "pods", "nodes", "networks", "domainNames"],
    };
    let mut out = Vec::new();
    let mut ok = !items.is_empty();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let Some((which, v)) = errs.one_of(item, &path, options) else {
            ok = false;
            continue;
        };
        let path = format!("{path}.{which}");
        let peer = match which {
            "namespaces" => errs.selector(v, &path, ctx).map(|s| AdminPeer::Pods { namespaces: s, pods: None }),
            "pods" => (|| {
                let m = errs.fields(v, &path, &["namespaceSelector", "podSelector"])?;
                let (Some(ns), Some(pods)) = (m.get("namespaceSelector"), m.get("podSelector")) else {
                    errs.push(&path, "Required value: both `namespaceSelector` and `podSelector` must be set");
                    return None;
                };
                let ns = errs.selector(ns, &format!("{path}.namespaceSelector"), ctx);
                let pods = errs.selector(pods, &format!("{path}.podSelector"), ctx);
                Some(AdminPeer::Pods { namespaces: ns?, pods: Some(pods?) })
            })(),
            "networks" => (|| {
                let nets = list(Some(v), &path, 25, 1, errs)?;
                let mut ids = Vec::new();
                let mut good = true;
                for (j, n) in nets.iter().enumerate() {
                    let p = format!("{path}[{j}]");
                    match n.as_str().map(parse_cidr) {
                        Some(Ok(cidr)) => ids.push(ctx.block_id(IpBlock { cidr, except: Vec::new() })),
                        Some(Err(e)) => {
                            errs.push(p, e.to_string());
                            good = false;
                        }
                        None => {
                            errs.push(p, "Invalid value: must be a CIDR string");
                            good = false;
                        }
                    }
                }
                good.then_some(AdminPeer::Networks(ids))
            })(),
            "nodes" => {
                errs.selector(v, &path, ctx)?;
                errs.caveat(&path, "not modelled: the engine has no node addresses, so this peer matches nothing here; traffic to nodes is decided by the cluster");
                Some(AdminPeer::Unmodelled("nodes"))
            }
            _ => {
                list(Some(v), &path, 25, 1, errs)?;
                errs.caveat(&path, "not modelled: domain names are not resolved, so this peer matches nothing here; traffic to these names is decided by the cluster");
                Some(AdminPeer::Unmodelled("domainNames"))
            }
        };
        match peer {
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A rule before it is numbered: name, action, peers, ports.
type RawRule = (String, AdminAction, Vec<AdminPeer>, Option<Vec<PortSpec>>);
/// Both directions' rules of one policy.
type RawRules = Vec<(Direction, Vec<RawRule>)>;

fn compile_rules(spec: &Map<String, Value>, dir: Direction, tier: AdminTier, ctx: &mut CompileCtx, errs: &mut Errs<'_>) -> Option<Vec<RawRule>> {
    let field = match dir {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    };
    let peers_field = match dir {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let Some(items) = list(spec.get(field), &format!("spec.{field}"), 100, 0, errs) else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.{field}[{i}]");
        let Some(m) = errs.fields(item, &path, &["name", "action", "ports", peers_field]) else {
            ok = false;
            continue;
        };
        let name = match m.get("name") {
            None => String::new(),
            Some(Value::String(s)) if s.chars().count() <= 100 => s.clone(),
            Some(Value::String(_)) => {
                errs.push(format!("{path}.name"), "Too long: may not be more than 100 characters");
                ok = false;
                continue;
            }
            Some(v) => {
                errs.push(format!("{path}.name"), format!("Invalid value: must be a string, not {}", type_name(v)));
                ok = false;
                continue;
            }
        };
        let action = match (m.get("action").and_then(Value::as_str), tier) {
            (Some("Allow"), _) => Some(AdminAction::Allow),
            (Some("Deny"), _) => Some(AdminAction::Deny),
            (Some("Pass"), AdminTier::Admin) => Some(AdminAction::Pass),
            (None, _) => {
                errs.push(format!("{path}.action"), "Required value");
                None
            }
            (Some(other), _) => {
                let allowed = match tier {
                    AdminTier::Admin => "\"Allow\", \"Deny\", \"Pass\"",
                    AdminTier::Baseline => "\"Allow\", \"Deny\"",
                };
                errs.push(format!("{path}.action"), format!("Unsupported value: {other:?}: supported values: {allowed}"));
                None
            }
        };
        let peers = compile_peers(m.get(peers_field), &format!("{path}.{peers_field}"), dir, ctx, errs);
        let ports = compile_ports(m.get("ports"), &format!("{path}.ports"), errs);
        match (action, peers, ports) {
            (Some(a), Some(p), Some(ports)) => out.push((name, a, p, ports)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn compile_one(v: &Value, tier: AdminTier, ctx: &mut CompileCtx, caveats: &mut Vec<PolicyError>) -> Result<(AdminPolicy, RawRules), Vec<PolicyError>> {
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut errs = Errs { kind: tier.kind(), name: &name, list: Vec::new(), caveats: Vec::new() };
    if name.is_empty() {
        errs.push("metadata.name", "Required value");
    }
    if tier == AdminTier::Baseline && !name.is_empty() && name != "default" {
        // The CRD's validation: the baseline is a singleton.
        errs.push("metadata.name", "Invalid value: only one BaselineAdminNetworkPolicy, named \"default\", can exist");
    }
    let known: &[&str] = match tier {
        AdminTier::Admin => &["priority", "subject", "ingress", "egress"],
        AdminTier::Baseline => &["subject", "ingress", "egress"],
    };
    let empty = Value::Object(Map::new());
    let spec_v = v.get("spec").unwrap_or(&empty);
    let spec = errs.fields(spec_v, "spec", known).cloned().unwrap_or_default();
    let priority = match tier {
        AdminTier::Baseline => Some(0),
        AdminTier::Admin => match spec.get("priority") {
            None => {
                errs.push("spec.priority", "Required value");
                None
            }
            Some(p) => match p.as_i64().filter(|n| (0..=1000).contains(n)) {
                Some(n) => Some(n as i32),
                None => {
                    errs.push("spec.priority", format!("Invalid value: {p}: must be between 0 and 1000, inclusive"));
                    None
                }
            },
        },
    };
    let subject = match spec.get("subject") {
        None => {
            errs.push("spec.subject", "Required value");
            None
        }
        Some(s) => match errs.one_of(s, "spec.subject", &["namespaces", "pods"]) {
            Some(("namespaces", sel)) => errs.selector(sel, "spec.subject.namespaces", ctx).map(|s| (s, None)),
            Some((_, pods)) => (|| {
                let m = errs.fields(pods, "spec.subject.pods", &["namespaceSelector", "podSelector"])?;
                let (Some(ns), Some(p)) = (m.get("namespaceSelector"), m.get("podSelector")) else {
                    errs.push("spec.subject.pods", "Required value: both `namespaceSelector` and `podSelector` must be set");
                    return None;
                };
                let ns = errs.selector(ns, "spec.subject.pods.namespaceSelector", ctx);
                let p = errs.selector(p, "spec.subject.pods.podSelector", ctx);
                Some((ns?, Some(p?)))
            })(),
            None => None,
        },
    };
    let ingress = compile_rules(&spec, Direction::Ingress, tier, ctx, &mut errs);
    let egress = compile_rules(&spec, Direction::Egress, tier, ctx, &mut errs);
    if !errs.list.is_empty() {
        return Err(errs.list);
    }
    caveats.append(&mut errs.caveats);
    let (subject_ns, subject_pods) = subject.expect("no errors means the subject compiled");
    Ok((
        AdminPolicy {
            tier,
            name,
            priority: priority.expect("no errors means a priority"),
            subject_ns,
            subject_pods,
            ingress: Vec::new(),
            egress: Vec::new(),
        },
        vec![(Direction::Ingress, ingress.unwrap_or_default()), (Direction::Egress, egress.unwrap_or_default())],
    ))
}

/// Validates and compiles the admin policies. Invalid ones are returned as errors and left out;
/// a duplicate name is an error of the second object.
pub(crate) fn compile_admin(anps: &[Value], banps: &[Value], ctx: &mut CompileCtx) -> (Admin, Vec<PolicyError>) {
    let mut admin = Admin::default();
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut compiled = Vec::new();
    for (tier, objects) in [(AdminTier::Admin, anps), (AdminTier::Baseline, banps)] {
        for v in objects {
            match compile_one(v, tier, ctx, &mut admin.caveats) {
                Ok((p, rules)) => {
                    if !seen.insert((tier.kind(), p.name.clone())) {
                        rejected.push(PolicyError {
                            kind: tier.kind(),
                            namespace: String::new(),
                            name: p.name.clone(),
                            path: "metadata.name".into(),
                            message: "Duplicate value: another object of this kind has the same name".into(),
                        });
                        continue;
                    }
                    compiled.push((p, rules));
                }
                Err(errs) => rejected.extend(errs),
            }
        }
    }
    // Evaluation order: ANPs by priority then name (see the module docs), then the baseline.
    compiled.sort_by(|(a, _), (b, _)| (a.tier == AdminTier::Baseline, a.priority, &a.name).cmp(&(b.tier == AdminTier::Baseline, b.priority, &b.name)));
    let mut groups: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, _) in compiled.iter().filter(|(p, _)| p.tier == AdminTier::Admin) {
        groups.entry(p.priority).or_default().push(p.name.clone());
    }
    for (priority, names) in groups.into_iter().filter(|(_, n)| n.len() > 1) {
        admin.caveats.push(PolicyError {
            kind: ANP,
            namespace: String::new(),
            name: names.join(", "),
            path: "spec.priority".into(),
            message: format!("{} AdminNetworkPolicies share priority {priority}: where more than one matches a connection the cluster may apply any of them; the engine applies them in order of name", names.len()),
        });
    }
    for (pi, (mut p, rules)) in compiled.into_iter().enumerate() {
        for (dir, list) in rules {
            let out: Vec<AdminRule> = list
                .into_iter()
                .enumerate()
                .map(|(ri, (name, action, peers, ports))| {
                    let id = admin.rule_loc.len();
                    admin.rule_loc.push((pi, dir, ri));
                    AdminRule { name, action, peers, ports, id }
                })
                .collect();
            match dir {
                Direction::Ingress => p.ingress = out,
                Direction::Egress => p.egress = out,
            }
        }
        admin.policies.push(p);
    }
    admin.blocks = vec![false; ctx.blocks.len()];
    for p in &admin.policies {
        for r in p.ingress.iter().chain(&p.egress) {
            for peer in &r.peers {
                if let AdminPeer::Networks(ids) = peer {
                    for &b in ids {
                        admin.blocks[b] = true;
                    }
                }
            }
        }
    }
    (admin, rejected)
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// The other end of a side, for the class-level evaluation.
#[derive(Clone, Copy)]
pub(crate) enum ClassPeer {
    Class(usize),
    Region(usize),
}

impl Engine {
    /// Builds the per-class index. Called once the classes exist.
    pub(crate) fn build_admin_index(&mut self) {
        if self.admin.is_empty() {
            return;
        }
        let mut admin = std::mem::take(&mut self.admin);
        let idx = &self.classes;
        let n = idx.classes.len();
        let mut classes_by_ns = vec![Vec::new(); self.namespaces.len()];
        for (c, class) in idx.classes.iter().enumerate() {
            classes_by_ns[class.ns].push(c);
        }
        for d in [Direction::Ingress, Direction::Egress] {
            admin.class_admin[di(d)] = vec![Vec::new(); n];
            admin.class_baseline[di(d)] = vec![Vec::new(); n];
        }
        for (c, class) in idx.classes.iter().enumerate() {
            let ns_labels = &self.namespaces[class.ns].labels;
            for p in admin.policies.iter().filter(|p| p.selects(ns_labels, &class.labels)) {
                for d in [Direction::Ingress, Direction::Egress] {
                    let ids = p.rules(d).iter().map(|r| r.id);
                    match p.tier {
                        AdminTier::Admin => admin.class_admin[di(d)][c].extend(ids),
                        AdminTier::Baseline => admin.class_baseline[di(d)][c].extend(ids),
                    }
                }
            }
        }
        let n_rules = admin.rule_loc.len();
        admin.rule_classes = Vec::with_capacity(n_rules);
        admin.rule_regions = Vec::with_capacity(n_rules);
        admin.rule_fixed = Vec::with_capacity(n_rules);
        admin.rule_external = Vec::with_capacity(n_rules);
        // Selector results per namespace, shared by the rules that repeat a selector.
        for id in 0..n_rules {
            let rule = admin.rule(id);
            let mut classes = BitSet::new(n);
            let mut regions = BitSet::new(self.regions.len());
            for peer in &rule.peers {
                match peer {
                    AdminPeer::Pods { namespaces, pods } => {
                        for (ns, members) in classes_by_ns.iter().enumerate() {
                            if !namespaces.matches(&self.namespaces[ns].labels) {
                                continue;
                            }
                            for &c in members {
                                if pods.as_ref().is_none_or(|s| s.matches(&idx.classes[c].labels)) {
                                    classes.insert(c);
                                }
                            }
                        }
                    }
                    AdminPeer::Networks(ids) => {
                        for (c, class) in idx.classes.iter().enumerate() {
                            if class.blocks.iter().any(|b| ids.contains(b)) {
                                classes.insert(c);
                            }
                        }
                        for g in 0..self.regions.len() {
                            if ids.iter().any(|&b| self.regions.block_contains(&self.blocks[b], g)) {
                                regions.insert(g);
                            }
                        }
                    }
                    AdminPeer::Unmodelled(_) => {}
                }
            }
            let named = rule.ports.iter().flatten().any(|p| matches!(p.port, PortSel::Named(_)));
            let fixed = (!named).then(|| Traffic::from_conn(&ports_connection(rule.ports.as_deref(), Some(&[]))));
            let external = Traffic::from_conn(&ports_connection(rule.ports.as_deref(), None));
            admin.rule_fixed.push(fixed);
            admin.rule_external.push(external);
            admin.rule_classes.push(classes);
            admin.rule_regions.push(regions);
        }
        // Pods without known IPs match no `networks` entry; say so when both exist.
        let networks: Vec<&AdminPolicy> = admin
            .policies
            .iter()
            .filter(|p| p.egress.iter().any(|r| r.peers.iter().any(|x| matches!(x, AdminPeer::Networks(_)))))
            .collect();
        let without_ip = self.pods.iter().filter(|p| p.info.ips.is_empty()).count();
        if without_ip > 0 {
            let caveats: Vec<PolicyError> = networks
                .iter()
                .map(|p| PolicyError {
                    kind: p.tier.kind(),
                    namespace: String::new(),
                    name: p.name.clone(),
                    path: "spec.egress[].to[].networks".into(),
                    message: format!("{without_ip} pod(s) without a known IP (read from manifests) match no `networks` CIDR here; in the cluster their IPs may lie inside one"),
                })
                .collect();
            admin.caveats.extend(caveats);
        }
        self.admin = admin;
    }

    /// Whether an admin policy of either kind selects the class for `dir`.
    pub(crate) fn admin_selects_class(&self, dir: Direction, class: usize) -> bool {
        !self.admin.is_empty() && (!self.admin.class_admin[di(dir)][class].is_empty() || !self.admin.class_baseline[di(dir)][class].is_empty())
    }

    fn class_rule_traffic(&self, id: usize, other: ClassPeer, receiver_profile: usize) -> Traffic {
        match other {
            ClassPeer::Region(_) => self.admin.rule_external[id].clone(),
            ClassPeer::Class(_) => match &self.admin.rule_fixed[id] {
                Some(t) => t.clone(),
                None => Traffic::from_conn(&ports_connection(self.admin.rule(id).ports.as_deref(), Some(&self.classes.profiles[receiver_profile]))),
            },
        }
    }

    fn class_rule_matches(&self, id: usize, other: ClassPeer) -> bool {
        match other {
            ClassPeer::Class(c) => self.admin.rule_classes[id].contains(c),
            ClassPeer::Region(g) => self.admin.rule_regions[id].contains(g),
        }
    }

    /// One side of a class pair (or a class and an external region) with the admin tiers:
    /// `np` is NetworkPolicy's allowance when some NetworkPolicy of `dir` isolates the class.
    /// `receiver_profile` is the named-port profile of the class receiving the traffic.
    pub(crate) fn admin_class_side(&self, dir: Direction, subject: usize, other: ClassPeer, receiver_profile: usize, np: Option<&Connection>) -> Connection {
        let mut d = Decider::new();
        for &id in &self.admin.class_admin[di(dir)][subject] {
            if self.class_rule_matches(id, other) {
                d.admin(self.admin.rule(id).action, &self.class_rule_traffic(id, other, receiver_profile));
                if d.admin_done() {
                    break;
                }
            }
        }
        let baseline = self.admin.class_baseline[di(dir)][subject]
            .iter()
            .filter(|&&id| self.class_rule_matches(id, other))
            .map(|&id| (self.admin.rule(id).action, self.class_rule_traffic(id, other, receiver_profile)));
        d.finish(np.map(Traffic::from_conn), baseline).to_conn()
    }

    fn admin_peer_matches(&self, peer: &AdminPeer, other: &View<'_>) -> bool {
        match (peer, other) {
            (AdminPeer::Pods { namespaces, pods }, View::Pod(p)) => namespaces.matches(p.ns_labels) && pods.as_ref().is_none_or(|s| s.matches(p.labels)),
            (AdminPeer::Pods { .. }, View::External(_)) => false,
            (AdminPeer::Networks(ids), View::Pod(p)) => ids.iter().any(|&b| p.info.ips.iter().any(|ip| self.blocks[b].contains_ip(*ip))),
            (AdminPeer::Networks(ids), View::External(range)) => ids.iter().any(|&b| self.blocks[b].overlaps(range)),
            (AdminPeer::Unmodelled(_), _) => false,
        }
    }

    fn admin_rule_matches(&self, rule: &AdminRule, other: &View<'_>) -> bool {
        rule.peers.iter().any(|p| self.admin_peer_matches(p, other))
    }

    /// The ports a rule covers, named ports resolved on the pod receiving the traffic.
    fn admin_rule_traffic(&self, rule: &AdminRule, dir: Direction, subject: &PodView<'_>, other: &View<'_>) -> Traffic {
        let target = match (dir, other) {
            (Direction::Ingress, _) => Some(subject.info.ports.as_slice()),
            (Direction::Egress, View::Pod(p)) => Some(p.info.ports.as_slice()),
            (Direction::Egress, View::External(_)) => None,
        };
        Traffic::from_conn(&ports_connection(rule.ports.as_deref(), target))
    }

    fn admin_policies_for<'a>(&'a self, subject: &'a PodView<'_>, tier: AdminTier) -> impl Iterator<Item = &'a AdminPolicy> + 'a {
        self.admin.policies.iter().filter(move |p| p.tier == tier && p.selects(subject.ns_labels, subject.labels))
    }

    /// One side's allowance with every tier: ANP, NetworkPolicy, BANP.
    pub(crate) fn side_connection(&self, subject: &PodView<'_>, dir: Direction, other: &View<'_>) -> Connection {
        let np = self.np_side_connection(subject, dir, other);
        if self.admin.is_empty() {
            return np;
        }
        let mut d = Decider::new();
        'tier: for p in self.admin_policies_for(subject, AdminTier::Admin) {
            for rule in p.rules(dir) {
                if self.admin_rule_matches(rule, other) {
                    d.admin(rule.action, &self.admin_rule_traffic(rule, dir, subject, other));
                    if d.admin_done() {
                        break 'tier;
                    }
                }
            }
        }
        let isolated = !self.selecting(subject, dir).is_empty();
        let baseline: Vec<(AdminAction, Traffic)> = if isolated {
            Vec::new()
        } else {
            self.admin_policies_for(subject, AdminTier::Baseline)
                .flat_map(|p| p.rules(dir))
                .filter(|r| self.admin_rule_matches(r, other))
                .map(|r| (r.action, self.admin_rule_traffic(r, dir, subject, other)))
                .collect()
        };
        d.finish(isolated.then(|| Traffic::from_conn(&np)), baseline).to_conn()
    }

    /// What the admin policies add to the engine's reports: unmodelled peers, equal priorities,
    /// pods that `networks` cannot see. Empty without admin policies.
    pub fn admin_caveats(&self) -> &[PolicyError] {
        &self.admin.caveats
    }

    /// Names of the admin policies in evaluation order, with their kind and priority (0 for the
    /// baseline).
    pub fn admin_policies(&self) -> Vec<(AdminTier, String, i32)> {
        self.admin.policies.iter().map(|p| (p.tier, p.name.clone(), p.priority)).collect()
    }

    /// [`Engine::explain_np_side`] with the admin tiers: which ANP or BANP rule decides the
    /// connection, if one does.
    pub(crate) fn explain_side(&self, subject: Option<&PodView<'_>>, dir: Direction, other: &View<'_>, protocol: Protocol, port: u16) -> SideExplanation {
        let mut side = self.explain_np_side(subject, dir, other, protocol, port);
        let Some(subject) = subject else { return side };
        if self.admin.is_empty() {
            return side;
        }
        let probe = Traffic::from_conn(&Connection::Ports(PortSet::from_ranges([super::PortRange::single(protocol, port)])));
        let dir_word = match dir {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        let mut rules: Vec<AdminExplanationRule> = Vec::new();
        // Records the rule and returns the action when its peers and ports both match.
        let mut consider = |p: &AdminPolicy, rule: &AdminRule, ri: usize| -> Option<(AdminExplanationRule, AdminAction)> {
            let peer_matched = self.admin_rule_matches(rule, other);
            let port_matched = !self.admin_rule_traffic(rule, dir, subject, other).intersect(&probe).is_none();
            let r = AdminExplanationRule {
                kind: p.tier,
                policy: p.name.clone(),
                priority: (p.tier == AdminTier::Admin).then_some(p.priority),
                rule: format!("{dir_word}[{ri}]"),
                name: (!rule.name.is_empty()).then(|| rule.name.clone()),
                action: rule.action,
                peer_matched,
                port_matched,
                unmodelled_peers: rule.peers.iter().filter_map(|x| if let AdminPeer::Unmodelled(w) = x { Some(*w) } else { None }).collect(),
            };
            rules.push(r.clone());
            (peer_matched && port_matched).then_some((r, rule.action))
        };
        let mut decided: Option<(AdminExplanationRule, AdminAction)> = None;
        'tier: for p in self.admin_policies_for(subject, AdminTier::Admin) {
            for (ri, rule) in p.rules(dir).iter().enumerate() {
                if let Some(d) = consider(p, rule, ri) {
                    decided = Some(d);
                    break 'tier;
                }
            }
        }
        let admin_decided = decided.as_ref().is_some_and(|(_, a)| *a != AdminAction::Pass);
        // A Pass, or no ANP rule: NetworkPolicy decides when it isolates the pod, else the
        // baseline's first matching rule.
        if !admin_decided && !side.isolated {
            'base: for p in self.admin_policies_for(subject, AdminTier::Baseline) {
                for (ri, rule) in p.rules(dir).iter().enumerate() {
                    if let Some(d) = consider(p, rule, ri) {
                        decided = Some(d);
                        break 'base;
                    }
                }
            }
        }
        if rules.is_empty() {
            return side;
        }
        let me = format!("pod {}/{}", subject.info.namespace, subject.info.name);
        let deciding = decided.as_ref().filter(|(_, a)| *a != AdminAction::Pass).map(|(r, _)| r.describe());
        let (allowed, summary) = match &decided {
            Some((r, AdminAction::Allow)) => (true, format!("{me} {dir_word} on {protocol} {port} is decided by {}", r.describe())),
            Some((r, AdminAction::Deny)) => (false, format!("{me} {dir_word} on {protocol} {port} is decided by {}", r.describe())),
            Some((r, AdminAction::Pass)) => (side.allowed, format!("{} passes {protocol} {port} to NetworkPolicy: {}", r.describe(), side.summary)),
            None if side.isolated => (side.allowed, format!("no AdminNetworkPolicy rule matches; {}", side.summary)),
            None => (true, format!("no AdminNetworkPolicy or BaselineAdminNetworkPolicy rule matches and {}", side.summary)),
        };
        side.allowed = allowed;
        side.summary = summary;
        side.admin = Some(AdminSideExplanation { rules, decided_by: deciding });
        side
    }
}

/// The admin policies' part of one side of an explained connection.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSideExplanation {
    /// Every admin rule looked at, in evaluation order, up to the one that decided.
    pub rules: Vec<AdminExplanationRule>,
    /// The rule that decided (Allow or Deny; Pass hands over to NetworkPolicy), if any.
    pub decided_by: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminExplanationRule {
    pub kind: AdminTier,
    pub policy: String,
    /// ANP only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `ingress[N]` or `egress[N]`.
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: AdminAction,
    pub peer_matched: bool,
    pub port_matched: bool,
    /// `nodes` / `domainNames` peers of this rule, which match nothing in the engine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmodelled_peers: Vec<&'static str>,
}

impl AdminExplanationRule {
    /// `AdminNetworkPolicy deny-db (priority 10) ingress[0] "block-others": Deny`.
    pub fn describe(&self) -> String {
        let prio = self.priority.map(|p| format!(" (priority {p})")).unwrap_or_default();
        let name = self.name.as_ref().map(|n| format!(" {n:?}")).unwrap_or_default();
        format!("{} {}{prio} {}{name}: {:?}", self.kind.kind(), self.policy, self.rule, self.action)
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
