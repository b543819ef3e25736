//! Validation and compilation of `networking.k8s.io/v1` NetworkPolicy objects.
//!
//! Validation follows the API server's rules for the fields that change meaning (selectors,
//! peers, ports, ipBlocks, policyTypes); a policy that the API server would reject is reported as
//! a [`PolicyError`] and never half-applied. Defaulting follows the API server too: a port's
//! protocol defaults to TCP, and an empty or missing `policyTypes` becomes `[Ingress]`, plus
//! `Egress` when `spec.egress` has at least one rule (the API server checks `len(egress) != 0`,
//! so `egress: []` alone does *not* make a policy an egress policy).

use std::collections::HashMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cidr::{IpBlock, parse_cidr};
use super::connection::{Connection, PortRange, PortSet, Protocol};
use super::model::{ContainerPort, DEFAULT_NAMESPACE};
use super::selector::{Interner, Selector};

/// One reason a policy is invalid (or, for the admin policies, a field the engine does not
/// model), with the field path as the API server would print it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PolicyError {
    /// `NetworkPolicy`, `AdminNetworkPolicy` or `BaselineAdminNetworkPolicy`; serialized only
    /// for the latter two.
    #[serde(skip_serializing_if = "is_network_policy")]
    pub kind: &'static str,
    /// Empty for the cluster-scoped admin policies.
    pub namespace: String,
    pub name: String,
    /// For example `spec.ingress[0].from[1]`.
    pub path: String,
    pub message: String,
}

pub(crate) const NETWORK_POLICY: &str = "NetworkPolicy";

fn is_network_policy(kind: &&'static str) -> bool {
    *kind == NETWORK_POLICY
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(
                f,
                "{} {}: {}: {}",
                self.kind, self.name, self.path, self.message
            )
        } else {
            write!(
                f,
                "{} {}/{}: {}: {}",
                self.kind, self.namespace, self.name, self.path, self.message
            )
        }
    }
}

/// Traffic direction, seen from the pod a policy selects.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Direction {
    Ingress,
    Egress,
}

/// Which namespaces a pod peer looks in.
#[derive(Clone, Debug)]
pub(crate) enum NsScope {
    /// No `namespaceSelector`: the policy's own namespace.
    PolicyNamespace,
    Matching(Selector),
}

#[derive(Clone, Debug)]
pub(crate) enum Peer {
    /// `podSelector` and/or `namespaceSelector` (ANDed when both are set). `pods: None` means
    /// no `podSelector`: every pod of the selected namespaces.
    Pods {
        namespaces: NsScope,
        pods: Option<Selector>,
    },
    /// Index into the engine's table of distinct ipBlocks.
    Block(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PortSel {
    /// No `port`: every port of the protocol.
    Any,
    Range(u16, u16),
    Named(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PortSpec {
    pub protocol: Protocol,
    pub port: PortSel,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// `None`: `from`/`to` missing or empty, every peer (pods and external addresses).
    pub peers: Option<Vec<Peer>>,
    /// `None`: `ports` missing or empty, all traffic.
    pub ports: Option<Vec<PortSpec>>,
    /// Global rule index (across all policies and both directions).
    pub id: usize,
}

impl Rule {
    pub(crate) fn has_named_ports(&self) -> bool {
        self.ports
            .iter()
            .flatten()
            .any(|p| matches!(p.port, PortSel::Named(_)))
    }
}

/// A rule's peers and ports before it is numbered.
type RawRule = (Option<Vec<Peer>>, Option<Vec<PortSpec>>);

#[derive(Clone, Debug)]
pub(crate) struct CompiledPolicy {
    pub namespace: String,
    pub name: String,
    pub selector: Selector,
    /// `Some` iff the (defaulted) policyTypes include Ingress; the rules may be empty (deny).
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

impl CompiledPolicy {
    pub(crate) fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Shared tables the compiler fills while compiling many policies.
#[derive(Default)]
pub(crate) struct CompileCtx {
    pub interner: Interner,
    pub blocks: Vec<IpBlock>,
    block_ids: HashMap<IpBlock, usize>,
    pub next_rule: usize,
}

impl CompileCtx {
    pub(crate) fn block_id(&mut self, b: IpBlock) -> usize {
        if let Some(&id) = self.block_ids.get(&b) {
            return id;
        }
        let id = self.blocks.len();
        self.blocks.push(b.clone());
        self.block_ids.insert(b, id);
        id
    }
}

/// The problems found reading one namespaced policy object (a NetworkPolicy here, an Istio
/// AuthorizationPolicy in [`crate::authz_compile`]), each with its field path.
pub(crate) struct Errs<'a> {
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
    pub(crate) list: Vec<PolicyError>,
}

impl<'a> Errs<'a> {
    pub(crate) fn new(kind: &'static str, namespace: &'a str, name: &'a str) -> Self {
        Errs { kind, namespace, name, list: Vec::new() }
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(PolicyError {
            kind: self.kind,
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Validates and compiles one policy. On error nothing is added to the rule numbering, but
/// strings may have been interned, which is harmless.
pub(crate) fn compile_policy(
    np: &NetworkPolicy,
    ctx: &mut CompileCtx,
) -> Result<CompiledPolicy, Vec<PolicyError>> {
    let namespace = np
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let name = np.metadata.name.clone().unwrap_or_default();
    let mut errs = Errs::new(NETWORK_POLICY, &namespace, &name);
    if name.is_empty() {
        errs.push("metadata.name", "Required value");
    }
    let spec = np.spec.clone().unwrap_or_default();

    let selector = match Selector::compile(
        &spec.pod_selector.clone().unwrap_or_default(),
        &mut ctx.interner,
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(format!("spec.podSelector.{}", e.path), e.message);
            None
        }
    };

    // policyTypes: at most two, each Ingress or Egress; empty/missing is defaulted.
    let types = spec.policy_types.clone().unwrap_or_default();
    let (mut has_ingress, mut has_egress) = (false, false);
    if types.len() > 2 {
        errs.push(
            "spec.policyTypes",
            "may not specify more than two policyTypes",
        );
    }
    for (i, t) in types.iter().enumerate() {
        match t.as_str() {
            "Ingress" => has_ingress = true,
            "Egress" => has_egress = true,
            other => errs.push(
                format!("spec.policyTypes[{i}]"),
                format!("Unsupported value: {other:?}: supported values: \"Ingress\", \"Egress\""),
            ),
        }
    }
    if types.is_empty() {
        has_ingress = true;
        has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
    }

    // Compile both rule lists even when the policy type excludes them, so that invalid content
    // is reported the same way the API server reports it (it validates both lists).
    let mut ingress = Vec::new();
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        let path = format!("spec.ingress[{i}]");
        let peers = compile_peers(r.from.as_deref(), &format!("{path}.from"), ctx, &mut errs);
        let ports = compile_ports(r.ports.as_deref(), &format!("{path}.ports"), &mut errs);
        ingress.push((peers, ports));
    }
    let mut egress = Vec::new();
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        let path = format!("spec.egress[{i}]");
        let peers = compile_peers(r.to.as_deref(), &format!("{path}.to"), ctx, &mut errs);
        let ports = compile_ports(r.ports.as_deref(), &format!("{path}.ports"), &mut errs);
        egress.push((peers, ports));
    }

    if !errs.list.is_empty() {
        return Err(errs.list);
    }
    let mut number = |rules: Vec<RawRule>| -> Vec<Rule> {
        rules
            .into_iter()
            .map(|(peers, ports)| {
                let id = ctx.next_rule;
                ctx.next_rule += 1;
                Rule { peers, ports, id }
            })
            .collect()
    };
    let ingress = has_ingress.then(|| number(ingress));
    let egress = has_egress.then(|| number(egress));
    Ok(CompiledPolicy {
        namespace,
        name,
        selector: selector.expect("no errors means the selector compiled"),
        ingress,
        egress,
    })
}

fn compile_peers(
    peers: Option<&[NetworkPolicyPeer]>,
    path: &str,
    ctx: &mut CompileCtx,
    errs: &mut Errs<'_>,
) -> Option<Vec<Peer>> {
    let peers = peers.filter(|p| !p.is_empty())?;
    let mut out = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let set = [
            p.pod_selector.is_some(),
            p.namespace_selector.is_some(),
            p.ip_block.is_some(),
        ];
        let count = set.iter().filter(|&&b| b).count();
        if count == 0 {
            errs.push(&path, "Required value: must specify a peer");
            continue;
        }
        if count > 1 && p.ip_block.is_some() {
            errs.push(
                &path,
                "Forbidden: may not specify both ipBlock and another peer",
            );
            continue;
        }
        if let Some(b) = &p.ip_block {
            if let Some(block) = compile_block(b, &format!("{path}.ipBlock"), errs) {
                out.push(Peer::Block(ctx.block_id(block)));
            }
            continue;
        }
        let mut sel = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
                       field: &str| {
            Selector::compile(s, &mut ctx.interner)
                .map_err(|e| errs.push(format!("{path}.{field}.{}", e.path), e.message))
                .ok()
        };
        let pods = match &p.pod_selector {
            Some(s) => match sel(s, "podSelector") {
                Some(c) => Some(c),
                None => continue,
            },
            None => None,
        };
        let namespaces = match &p.namespace_selector {
            Some(s) => match sel(s, "namespaceSelector") {
                Some(c) => NsScope::Matching(c),
                None => continue,
            },
            None => NsScope::PolicyNamespace,
        };
        out.push(Peer::Pods { namespaces, pods });
    }
    Some(out)
}

fn compile_block(
    b: &k8s_openapi::api::networking::v1::IPBlock,
    path: &str,
    errs: &mut Errs<'_>,
) -> Option<IpBlock> {
    if b.cidr.is_empty() {
        errs.push(format!("{path}.cidr"), "Required value");
        return None;
    }
    let cidr = match parse_cidr(&b.cidr) {
        Ok(c) => c,
        Err(e) => {
            errs.push(format!("{path}.cidr"), e.to_string());
            return None;
        }
    };
    let mut except = Vec::new();
    let mut ok = true;
    for (i, e) in b.except.iter().flatten().enumerate() {
        let epath = format!("{path}.except[{i}]");
        match parse_cidr(e) {
            // A strict subset: inside cidr and with a longer prefix (same family implied).
            Ok(x) if cidr.contains(&x) && x.prefix_len() > cidr.prefix_len() => except.push(x),
            Ok(_) => {
                errs.push(
                    epath,
                    format!("Invalid value: {e:?}: must be a strict subset of `cidr`"),
                );
                ok = false;
            }
            Err(e) => {
                errs.push(epath, e.to_string());
                ok = false;
            }
        }
    }
    except.sort_unstable();
    except.dedup();
    ok.then_some(IpBlock { cidr, except })
}

fn compile_ports(
    ports: Option<&[NetworkPolicyPort]>,
    path: &str,
    errs: &mut Errs<'_>,
) -> Option<Vec<PortSpec>> {
    let ports = ports.filter(|p| !p.is_empty())?;
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let protocol = match p.protocol.as_deref() {
            None => Protocol::Tcp,
            Some(s) => {
                match s.parse::<Protocol>() {
                    Ok(p) => p,
                    Err(_) => {
                        errs.push(
                        format!("{path}.protocol"),
                        format!("Unsupported value: {s:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""),
                    );
                        continue;
                    }
                }
            }
        };
        let port = match (&p.port, p.end_port) {
            (None, None) => PortSel::Any,
            (None, Some(_)) => {
                errs.push(
                    format!("{path}.endPort"),
                    "may not be specified when `port` is not specified",
                );
                continue;
            }
            (Some(IntOrString::Int(n)), end) => {
                let Some(start) = valid_port(*n) else {
                    errs.push(
                        format!("{path}.port"),
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    );
                    continue;
                };
                let end = match end {
                    None => start,
                    Some(e) => {
                        match valid_port(e) {
                            Some(e) if e >= start => e,
                            Some(_) => {
                                errs.push(format!("{path}.endPort"), format!("Invalid value: {e}: must be greater than or equal to `port`"));
                                continue;
                            }
                            None => {
                                errs.push(
                                    format!("{path}.endPort"),
                                    format!(
                                        "Invalid value: {e}: must be between 1 and 65535, inclusive"
                                    ),
                                );
                                continue;
                            }
                        }
                    }
                };
                PortSel::Range(start, end)
            }
            (Some(IntOrString::String(s)), end) => {
                if end.is_some() {
                    errs.push(
                        format!("{path}.endPort"),
                        "may not be specified when `port` is non-numeric",
                    );
                    continue;
                }
                if let Err(msg) = validate_port_name(s) {
                    errs.push(
                        format!("{path}.port"),
                        format!("Invalid value: {s:?}: {msg}"),
                    );
                    continue;
                }
                PortSel::Named(s.clone())
            }
        };
        out.push(PortSpec { protocol, port });
    }
    Some(out)
}

fn valid_port(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// IANA service name rules the API server applies to named ports: 1-15 characters of `a-z`,
/// `0-9` and `-`, at least one letter, no leading, trailing or doubled `-`.
fn validate_port_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 15 {
        return Err("must be no more than 15 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must contain at least one letter (a-z)");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must not begin or end with a hyphen");
    }
    if s.contains("--") {
        return Err("must not contain consecutive hyphens");
    }
    Ok(())
}

/// The numbers a named port resolves to on a pod: container ports with that name *and* the
/// policy port's protocol.
pub(crate) fn named_port_numbers<'a>(
    ports: &'a [ContainerPort],
    name: &'a str,
    protocol: Protocol,
) -> impl Iterator<Item = u16> + 'a {
    ports
        .iter()
        .filter(move |p| p.protocol == protocol && p.name.as_deref() == Some(name))
        .map(|p| p.port)
}

/// The traffic a rule's `ports` admit towards a pod with container ports `target` (`None`:
/// the target is an external address, on which no named port can match).
pub(crate) fn ports_connection(
    ports: Option<&[PortSpec]>,
    target: Option<&[ContainerPort]>,
) -> Connection {
    let Some(ports) = ports else {
        return Connection::All;
    };
    let mut ranges = Vec::new();
    for p in ports {
        match &p.port {
            PortSel::Any => ranges.push(PortRange::full(p.protocol)),
            PortSel::Range(s, e) => ranges.push(PortRange {
                protocol: p.protocol,
                start: *s,
                end: *e,
            }),
            PortSel::Named(n) => {
                if let Some(t) = target {
                    ranges.extend(
                        named_port_numbers(t, n, p.protocol)
                            .map(|port| PortRange::single(p.protocol, port)),
                    );
                }
            }
        }
    }
    Connection::Ports(PortSet::from_ranges(ranges))
}
