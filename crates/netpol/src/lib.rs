//! NetworkPolicy reachability: who can reach whom, on which ports, under exact
//! `networking.k8s.io/v1` NetworkPolicy semantics.
//!
//! `kubectl-dbiso` asks "which workloads can open a connection to this database port?". A wrong
//! "no" hides an exposure and a wrong "yes" sends people chasing ghosts, so the engine implements
//! the API's rules literally instead of approximating them:
//!
//! * A pod selected by no policy of a direction's type is *non-isolated* in that direction and
//!   allows everything; once selected by any, it allows only the union of all rules of all
//!   policies selecting it (policies are additive, never subtractive). Traffic between two pods
//!   needs the source's egress allowance *and* the destination's ingress allowance.
//! * `policyTypes` is defaulted the way the API server does it at admission: an empty or missing
//!   list means `[Ingress]`, plus `Egress` when `spec.egress` has at least one rule. Objects read
//!   from files get the same treatment. Note that `egress: []` without `policyTypes` does not
//!   isolate egress: the API server tests `len(egress) != 0`.
//! * Empty `podSelector` selects every pod of the policy's namespace; a policy never applies to
//!   pods of other namespaces. A rule without `from`/`to` (missing or empty) matches every peer,
//!   external addresses included; a rule without `ports` matches all traffic, ICMP included
//!   ([`Connection::All`]). Peers: `podSelector` alone looks in the policy's namespace,
//!   `namespaceSelector` alone takes every pod of the matching namespaces, both in one peer are
//!   ANDed, separate peers are ORed. Label selectors AND `matchLabels` with `matchExpressions`;
//!   `NotIn` and `DoesNotExist` match pods without the key.
//! * Ports are *pod* ports (the container port after any Service translation; Services play no
//!   part). `protocol` defaults to TCP. A named port resolves on the pod that receives the
//!   traffic: the selected pod for ingress, the peer pod for egress; it matches container ports
//!   with that name and the rule's protocol, may resolve to different numbers on different pods,
//!   and never matches an external address. `endPort` widens a numeric port to a range.
//! * Invalid policies (an unknown selector operator, an `ipBlock` mixed with selectors, an
//!   `except` outside its `cidr`, `endPort` with a named port, ...) are reported as
//!   [`PolicyError`]s, never applied in part: [`Engine::build`] refuses them,
//!   [`Engine::build_lenient`] leaves them out (as the API server would never have stored them)
//!   and returns them.
//!
//! # ipBlock and pods
//!
//! The API intends `ipBlock` for cluster-external addresses; whether pod-to-pod traffic matches
//! an `ipBlock` that contains the peer pod's IP is implementation-defined (Calico matches it,
//! Cilium by default does not). The engine matches a pod against an `ipBlock` when one of its
//! known pod IPs is inside the block and in no `except` entry, and can be told not to with
//! [`EngineOptions::pod_ips_match_ip_blocks`]. Pods without known IPs (templates from manifests)
//! never match an `ipBlock`.
//!
//! # Equivalence classes
//!
//! All-pairs reachability over 10,000 pods is 10^8 pairs, but pods come in large groups that no
//! policy can tell apart. Two pods are put in one class when they have the same namespace, the
//! same values for every label key that any pod selector mentions (other labels, such as
//! `pod-template-hash` or `statefulset.kubernetes.io/pod-name`, cannot change any selector's
//! answer), the same container ports for every port name any policy mentions, and the same set
//! of `ipBlock`s containing their IPs, and the same Istio ambient capture (which decides whether
//! TCP between them travels as HBONE, see [`hbone`]). Every predicate the semantics above use is then a
//! function of the class, so [`Engine::reach`] evaluates class pairs instead of pod pairs, with
//! policy selection and each rule's peer set precomputed as bitsets over classes and port sets
//! interned so unions and intersections are table lookups. The per-pod queries
//! ([`Engine::allowed`], [`Engine::explain`]) evaluate policies directly on the pods, so tests
//! can check the fast path against an independent one.
//!
//! # Results by workload and outside the cluster
//!
//! [`Engine::reach`] groups pods by owning workload and reports, for each ordered pair of
//! workloads with some traffic allowed, the union over their pods (some pod of the source can
//! reach some pod of the destination on those ports). Traffic between two replicas of one
//! workload appears as a self pair.
//!
//! External addresses are reported on a partition of the address space built from every `cidr`
//! and `except` mentioned by any `ipBlock`, plus `0.0.0.0/0` and `::/0`: each address belongs
//! to the region of the longest mentioned prefix containing it, so a region is its prefix minus
//! the more specific mentioned prefixes, and every `ipBlock` contains a region entirely or not
//! at all. For each workload, the regions with the same allowance are merged and written as the
//! fewest disjoint CIDRs (an `except` hole therefore shows as the CIDRs around it). A
//! non-isolated workload thus gets `0.0.0.0/0` and `::/0` entries, and every emitted
//! `External` CIDR means: every address in it gets exactly this allowance. The engine does not
//! know the cluster's pod or node ranges, so a mentioned range that lies inside the cluster is
//! still reported as external.
//!
//! # Istio ambient
//!
//! Pods captured by Istio's ambient data plane ([`PodInfo::ambient`]) carry TCP between each
//! other as HBONE to port 15008 of the destination: such a connection is allowed on every TCP
//! port when both sides admit TCP 15008, and on none otherwise ([`hbone`] has the rules and
//! their sources). [`Engine::allowed`], [`Engine::reach`] (whose entries say when traffic
//! travels that way) and [`Engine::explain`] all apply it.
//!
//! # Out of scope
//!
//! Host-network pods (the node's network namespace; listed by [`Engine::out_of_scope_pods`] and
//! otherwise ignored), traffic from or to nodes (the API always allows ingress from a pod's own
//! node), a pod talking to itself over loopback, Service virtual IPs, source-NAT by load
//! balancers or ingress paths (whether `ipBlock` sees the original client address is
//! implementation-defined), and policy APIs beyond NetworkPolicy v1 and the admin policies
//! below (CNI custom resources).
//!
//! # AdminNetworkPolicy and BaselineAdminNetworkPolicy
//!
//! With admin policies in [`ClusterModel::admin_network_policies`] and
//! [`ClusterModel::baseline_admin_network_policies`], each side of a connection is decided in
//! three tiers: AdminNetworkPolicy rules by priority (Allow and Deny are final, Pass hands over),
//! then NetworkPolicy as above if some NetworkPolicy of the direction selects the pod, else the
//! BaselineAdminNetworkPolicy's rules, else allowed. The `admin` module has the version read, the
//! fields supported and their sources; what the engine cannot model is listed by
//! [`Engine::admin_caveats`]. Without admin policies every answer is the NetworkPolicy one.

mod admin;
pub mod authz;
mod authz_compile;
mod authz_engine;
mod cidr;
mod compile;
mod connection;
pub mod diff;
mod eval;
mod explain;
pub mod hbone;
mod model;
mod reach;
mod selector;
pub mod view;

#[cfg(test)]
mod authz_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicy;

pub use compile::{Direction, PolicyError};
pub use connection::{Connection, PortRange, PortSet, Protocol, ProtocolParseError};
pub use admin::{AdminAction, AdminExplanationRule, AdminSideExplanation, AdminTier};
pub use authz::{AuthzAction, AuthzDecision, AuthzRuleRef, AuthzState, Enforcer};
pub use explain::{
    Explanation, PeerDetail, PeerExplanation, PolicyExplanation, PortDetail, PortExplanation,
    RuleExplanation, SideExplanation, TargetRef,
};
pub use model::{
    ContainerPort, DEFAULT_NAMESPACE, NAMESPACE_NAME_LABEL, NamespaceInfo, PodInfo, WorkloadKind,
    WorkloadRef,
};
pub use reach::{Endpoint, Reach, ReachEntry, ReachEntryRef};
pub use diff::{Change, Delta, DiffEntry, DiffSummary, ReachDiff};

use cidr::{IpBlock, Regions};
use compile::{CompileCtx, CompiledPolicy, Peer, PortSel, Rule, compile_policy};
use selector::{Interner, Labels, Sym, intern_labels};

/// Errors of the netpol engine.
#[derive(Debug, thiserror::Error)]
pub enum NetpolError {
    #[error("{} invalid NetworkPolicy field(s): {}", .0.len(), join_errors(.0))]
    InvalidPolicies(Vec<PolicyError>),
    #[error("duplicate {kind} {name}")]
    Duplicate { kind: &'static str, name: String },
    #[error("invalid object: {0}")]
    InvalidObject(String),
    #[error("{0}")]
    InvalidQuery(String),
}

fn join_errors(errs: &[PolicyError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Knobs for implementation-defined behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// Whether an in-cluster pod whose IP lies in an `ipBlock` is matched by that `ipBlock`
    /// (Calico-like, the default) or never (Cilium's default).
    pub pod_ips_match_ip_blocks: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pod_ips_match_ip_blocks: true,
        }
    }
}

/// Everything the engine looks at.
#[derive(Clone, Debug, Default)]
pub struct ClusterModel {
    pub namespaces: Vec<NamespaceInfo>,
    pub pods: Vec<PodInfo>,
    pub policies: Vec<NetworkPolicy>,
    /// `AdminNetworkPolicy` objects (`policy.networking.k8s.io/v1alpha1`) as read.
    pub admin_network_policies: Vec<serde_json::Value>,
    /// `BaselineAdminNetworkPolicy` objects as read (a cluster has at most one, `default`).
    pub baseline_admin_network_policies: Vec<serde_json::Value>,
    /// Istio `AuthorizationPolicy` objects as read, `metadata.namespace` set ([`authz`]).
    pub authorization_policies: Vec<serde_json::Value>,
    /// Istio `PeerAuthentication` objects as read, `metadata.namespace` set: whether a
    /// connection is mutual TLS, so whether the source has a principal ([`authz`]).
    pub peer_authentications: Vec<serde_json::Value>,
    /// The mesh root namespace (`None`: Istio's default, `istio-system`).
    pub istio_root_namespace: Option<String>,
}

/// Handle of a pod inside an [`Engine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodId(pub(crate) usize);

/// One side of a query: a pod of the model, or a range of addresses outside the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Pod(PodId),
    External(IpNet),
}

/// Whether a pod can resolve names: [`Engine::dns_access`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsAccess {
    /// The kube-system pods labelled `k8s-app=kube-dns` that were checked; empty when the model
    /// has none and a standard CoreDNS pod was assumed instead.
    pub dns_pods: Vec<WorkloadRef>,
    pub assumed_standard_dns_pod: bool,
    pub udp: bool,
    pub tcp: bool,
}

impl DnsAccess {
    /// UDP 53 is what resolvers use first; TCP 53 matters for large answers.
    pub fn can_resolve(&self) -> bool {
        self.udp
    }
}

pub(crate) struct Ns {
    pub name: String,
    pub labels_map: BTreeMap<String, String>,
    pub labels: Labels,
}

pub(crate) struct CPod {
    pub info: PodInfo,
    pub ns: usize,
    pub labels: Labels,
}

/// The compiled model: policies, pods and namespaces indexed for queries.
pub struct Engine {
    pub(crate) options: EngineOptions,
    pub(crate) interner: Interner,
    pub(crate) namespaces: Vec<Ns>,
    ns_index: HashMap<String, usize>,
    pub(crate) pods: Vec<CPod>,
    pod_index: HashMap<(String, String), usize>,
    pub(crate) policies: Vec<CompiledPolicy>,
    pub(crate) policy_ns: Vec<usize>,
    pub(crate) policies_by_ns: Vec<Vec<usize>>,
    pub(crate) blocks: Vec<IpBlock>,
    /// Rule id -> (policy index, direction, rule index in that direction).
    pub(crate) rule_loc: Vec<(usize, Direction, usize)>,
    pub(crate) regions: Regions,
    pub(crate) workloads: Vec<WorkloadRef>,
    pub(crate) classes: ClassIndex,
    rejected: Vec<PolicyError>,
    pub(crate) admin: admin::Admin,
    pub(crate) authz: authz_engine::AuthzIndex,
    out_of_scope: Vec<PodInfo>,
}

/// A fixed-size set of small integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BitSet(Vec<u64>);

impl BitSet {
    pub(crate) fn new(n: usize) -> Self {
        BitSet(vec![0; n.div_ceil(64)])
    }
    pub(crate) fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    #[inline]
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    pub(crate) fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

pub(crate) struct Class {
    pub ns: usize,
    /// Labels projected on the keys some pod selector mentions.
    pub labels: Labels,
    pub profile: usize,
    /// Sorted ids of the ipBlocks containing the class's pod IPs.
    pub blocks: Vec<usize>,
    /// Captured by Istio ambient ([`PodInfo::ambient`]).
    pub ambient: bool,
    pub workloads: Vec<usize>,
    /// A pod of the class (index into the engine's pods), for the AuthorizationPolicy verdict.
    pub rep: usize,
}

/// Per-class precomputation for the all-pairs query.
#[derive(Default)]
pub(crate) struct ClassIndex {
    pub classes: Vec<Class>,
    /// Named-port profiles: the container ports whose names some policy mentions.
    pub profiles: Vec<Vec<ContainerPort>>,
    pub workload_classes: Vec<Vec<usize>>,
    /// Per class, the policies selecting it that have the Ingress (Egress) type.
    pub ingress_policies: Vec<Vec<usize>>,
    pub egress_policies: Vec<Vec<usize>>,
    /// Per rule id, the classes its peers match; `None` when the rule has no peers (all).
    pub rule_classes: Vec<Option<BitSet>>,
    /// Per rule id, the external regions its peers match; `None` when the rule has no peers.
    pub rule_regions: Vec<Option<BitSet>>,
}

impl Engine {
    /// Compiles the model; any invalid policy makes the whole build fail with every problem
    /// listed, since an analysis that silently skipped a policy could report wrong reachability.
    pub fn build(model: &ClusterModel, options: EngineOptions) -> Result<Engine, NetpolError> {
        let (engine, rejected) = Engine::build_inner(model, options)?;
        if rejected.is_empty() {
            Ok(engine)
        } else {
            Err(NetpolError::InvalidPolicies(rejected))
        }
    }

    /// Compiles the model leaving invalid policies out (the API server would have refused to
    /// store them); they are returned and also kept in [`Engine::rejected_policies`].
    pub fn build_lenient(
        model: &ClusterModel,
        options: EngineOptions,
    ) -> Result<(Engine, Vec<PolicyError>), NetpolError> {
        let (engine, rejected) = Engine::build_inner(model, options)?;
        Ok((engine, rejected))
    }

    fn build_inner(
        model: &ClusterModel,
        options: EngineOptions,
    ) -> Result<(Engine, Vec<PolicyError>), NetpolError> {
        let mut ctx = CompileCtx::default();
        let mut rejected = Vec::new();
        let mut policies = Vec::new();
        let mut seen = HashSet::new();
        for np in &model.policies {
            match compile_policy(np, &mut ctx) {
                Ok(p) => {
                    if !seen.insert((p.namespace.clone(), p.name.clone())) {
                        return Err(NetpolError::Duplicate {
                            kind: "NetworkPolicy",
                            name: format!("{}/{}", p.namespace, p.name),
                        });
                    }
                    policies.push(p);
                }
                Err(errs) => rejected.extend(errs),
            }
        }
        // Before the admin policies: their block markers cover every block compiled so far.
        let (authz, authz_rejected) = authz_engine::compile_authz(
            &model.authorization_policies,
            &model.peer_authentications,
            model.istio_root_namespace.as_deref(),
            &mut ctx,
        );
        rejected.extend(authz_rejected);
        let (admin, admin_rejected) = admin::compile_admin(
            &model.admin_network_policies,
            &model.baseline_admin_network_policies,
            &mut ctx,
        );
        rejected.extend(admin_rejected);
        let CompileCtx {
            mut interner,
            blocks,
            next_rule,
            ..
        } = ctx;

        // Namespaces: the given ones, then any referenced only by pods or policies.
        let mut namespaces: Vec<Ns> = Vec::new();
        let mut known: HashSet<String> = HashSet::new();
        let given = model
            .namespaces
            .iter()
            .map(|ns| (ns.name.clone(), ns.labels.clone(), true));
        let referenced = model
            .pods
            .iter()
            .map(|p| p.namespace.clone())
            .chain(policies.iter().map(|p| p.namespace.clone()))
            .map(|name| (name, BTreeMap::new(), false));
        for (name, labels, explicit) in given.chain(referenced) {
            if !known.insert(name.clone()) {
                if explicit {
                    return Err(NetpolError::Duplicate {
                        kind: "Namespace",
                        name,
                    });
                }
                continue;
            }
            // Re-normalize: callers may have built the struct by hand.
            let info = NamespaceInfo::new(name, labels);
            let interned = intern_labels(&mut interner, &info.labels);
            namespaces.push(Ns {
                name: info.name,
                labels_map: info.labels,
                labels: interned,
            });
        }
        let ns_index: HashMap<String, usize> = namespaces
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();

        let policy_ns: Vec<usize> = policies.iter().map(|p| ns_index[&p.namespace]).collect();
        let mut policies_by_ns = vec![Vec::new(); namespaces.len()];
        for (i, &ns) in policy_ns.iter().enumerate() {
            policies_by_ns[ns].push(i);
        }
        let mut rule_loc = vec![(0, Direction::Ingress, 0); next_rule];
        for (pi, p) in policies.iter().enumerate() {
            for dir in [Direction::Ingress, Direction::Egress] {
                for (ri, r) in p.rules(dir).unwrap_or(&[]).iter().enumerate() {
                    rule_loc[r.id] = (pi, dir, ri);
                }
            }
        }

        let mut pods = Vec::new();
        let mut pod_index = HashMap::new();
        let mut out_of_scope = Vec::new();
        for p in &model.pods {
            if p.host_network {
                out_of_scope.push(p.clone());
                continue;
            }
            let key = (p.namespace.clone(), p.name.clone());
            if pod_index.insert(key, pods.len()).is_some() {
                return Err(NetpolError::Duplicate {
                    kind: "Pod",
                    name: format!("{}/{}", p.namespace, p.name),
                });
            }
            let labels = intern_labels(&mut interner, &p.labels);
            pods.push(CPod {
                info: p.clone(),
                ns: ns_index[&p.namespace],
                labels,
            });
        }

        let mut workloads: Vec<WorkloadRef> = pods.iter().map(|p| p.info.workload()).collect();
        workloads.sort();
        workloads.dedup();

        let regions = Regions::new(&blocks);
        let mut engine = Engine {
            options,
            interner,
            namespaces,
            ns_index,
            pods,
            pod_index,
            policies,
            policy_ns,
            policies_by_ns,
            blocks,
            rule_loc,
            regions,
            workloads,
            classes: ClassIndex::default(),
            rejected: rejected.clone(),
            admin,
            authz,
            out_of_scope,
        };
        engine.build_classes();
        engine.build_admin_index();
        Ok((engine, rejected))
    }

    fn build_classes(&mut self) {
        // Label keys any pod selector mentions, and port names any policy mentions.
        let mut keys: HashSet<Sym> = HashSet::new();
        let mut port_names: HashSet<&str> = HashSet::new();
        for p in &self.policies {
            keys.extend(p.selector.keys());
            for dir in [Direction::Ingress, Direction::Egress] {
                for r in p.rules(dir).unwrap_or(&[]) {
                    for peer in r.peers.iter().flatten() {
                        if let Peer::Pods { pods: Some(s), .. } = peer {
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

        self.admin.class_keys(&mut keys, &mut port_names);
        keys.extend(
            self.authz_label_keys()
                .into_iter()
                .map(|k| self.interner.get(k))
                .filter(|&k| k != selector::UNKNOWN),
        );

        let mut idx = ClassIndex::default();
        let mut profile_ids: HashMap<Vec<ContainerPort>, usize> = HashMap::new();
        // The AuthorizationPolicy verdict also reads the data plane, the service account and
        // whether the pod's addresses are known.
        type Key = (usize, Labels, usize, Vec<usize>, bool, bool, Option<String>, bool);
        let mut class_ids: HashMap<Key, usize> = HashMap::new();
        let workload_ids: HashMap<&WorkloadRef, usize> = self
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (w, i))
            .collect();
        for (pod_index, pod) in self.pods.iter().enumerate() {
            let labels: Labels = pod
                .labels
                .iter()
                .copied()
                .filter(|(k, _)| keys.contains(k))
                .collect();
            let mut profile: Vec<ContainerPort> = pod
                .info
                .ports
                .iter()
                .filter(|p| p.name.as_deref().is_some_and(|n| port_names.contains(n)))
                .cloned()
                .collect();
            profile.sort();
            profile.dedup();
            let next = profile_ids.len();
            let profile = *profile_ids.entry(profile).or_insert(next);
            // NetworkPolicy ipBlocks see pod IPs when the options say so; admin `networks`
            // always do.
            let blocks: Vec<usize> = if self.options.pod_ips_match_ip_blocks
                || self.admin.blocks.contains(&true)
                || !self.authz.block_ids.is_empty()
            {
                (0..self.blocks.len())
                    .filter(|&b| {
                        self.options.pod_ips_match_ip_blocks
                            || self.admin.blocks[b]
                            || self.authz.block_ids.contains(&b)
                    })
                    .filter(|&b| {
                        pod.info
                            .ips
                            .iter()
                            .any(|ip| self.blocks[b].contains_ip(*ip))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let authz = self.authz.active;
            let key = (
                pod.ns,
                labels,
                profile,
                blocks,
                pod.info.ambient,
                authz && pod.info.sidecar,
                authz.then(|| pod.info.service_account_name().to_string()),
                authz && !pod.info.ips.is_empty(),
            );
            let class = match class_ids.get(&key) {
                Some(&c) => c,
                None => {
                    let c = idx.classes.len();
                    let (ns, labels, profile, blocks, ambient, ..) = key.clone();
                    idx.classes.push(Class {
                        ns,
                        labels,
                        profile,
                        blocks,
                        ambient,
                        workloads: Vec::new(),
                        rep: pod_index,
                    });
                    class_ids.insert(key, c);
                    c
                }
            };
            let w = workload_ids[&pod.info.workload()];
            idx.classes[class].workloads.push(w);
        }
        idx.profiles = vec![Vec::new(); profile_ids.len()];
        for (profile, id) in profile_ids {
            idx.profiles[id] = profile;
        }
        idx.workload_classes = vec![Vec::new(); self.workloads.len()];
        for (c, class) in idx.classes.iter_mut().enumerate() {
            class.workloads.sort_unstable();
            class.workloads.dedup();
            for &w in &class.workloads {
                idx.workload_classes[w].push(c);
            }
        }

        let n = idx.classes.len();
        let mut classes_by_ns = vec![Vec::new(); self.namespaces.len()];
        for (c, class) in idx.classes.iter().enumerate() {
            classes_by_ns[class.ns].push(c);
        }
        idx.ingress_policies = vec![Vec::new(); n];
        idx.egress_policies = vec![Vec::new(); n];
        for (c, class) in idx.classes.iter().enumerate() {
            for &pi in &self.policies_by_ns[class.ns] {
                let p = &self.policies[pi];
                if p.selector.matches(&class.labels) {
                    if p.ingress.is_some() {
                        idx.ingress_policies[c].push(pi);
                    }
                    if p.egress.is_some() {
                        idx.egress_policies[c].push(pi);
                    }
                }
            }
        }

        let mut block_classes: Vec<BitSet> = vec![BitSet::new(n); self.blocks.len()];
        for (c, class) in idx.classes.iter().enumerate() {
            for &b in &class.blocks {
                block_classes[b].insert(c);
            }
        }
        let mut block_regions: Vec<BitSet> =
            vec![BitSet::new(self.regions.len()); self.blocks.len()];
        for (b, block) in self.blocks.iter().enumerate() {
            for g in 0..self.regions.len() {
                if self.regions.block_contains(block, g) {
                    block_regions[b].insert(g);
                }
            }
        }

        idx.rule_classes = vec![None; self.rule_loc.len()];
        idx.rule_regions = vec![None; self.rule_loc.len()];
        for id in 0..self.rule_loc.len() {
            let (pi, _, _) = self.rule_loc[id];
            let rule = self.rule(id);
            let Some(peers) = &rule.peers else { continue };
            let mut classes = BitSet::new(n);
            let mut regions = BitSet::new(self.regions.len());
            for peer in peers {
                match peer {
                    Peer::Block(b) => {
                        if self.options.pod_ips_match_ip_blocks {
                            classes.union_with(&block_classes[*b]);
                        }
                        regions.union_with(&block_regions[*b]);
                    }
                    Peer::Pods { namespaces, pods } => {
                        let nss: Vec<usize> = match namespaces {
                            compile::NsScope::PolicyNamespace => vec![self.policy_ns[pi]],
                            compile::NsScope::Matching(sel) => (0..self.namespaces.len())
                                .filter(|&ns| sel.matches(&self.namespaces[ns].labels))
                                .collect(),
                        };
                        for ns in nss {
                            for &c in &classes_by_ns[ns] {
                                if pods
                                    .as_ref()
                                    .is_none_or(|s| s.matches(&idx.classes[c].labels))
                                {
                                    classes.insert(c);
                                }
                            }
                        }
                    }
                }
            }
            idx.rule_classes[id] = Some(classes);
            idx.rule_regions[id] = Some(regions);
        }
        self.classes = idx;
    }

    pub(crate) fn rule(&self, id: usize) -> &Rule {
        let (pi, dir, ri) = self.rule_loc[id];
        &self.policies[pi]
            .rules(dir)
            .expect("rule ids only point at present rule lists")[ri]
    }

    /// The engine's options.
    pub fn options(&self) -> EngineOptions {
        self.options
    }

    /// Policies left out by [`Engine::build_lenient`], with the reasons.
    pub fn rejected_policies(&self) -> &[PolicyError] {
        &self.rejected
    }

    /// Host-network pods, which NetworkPolicy does not govern; they take part in no query.
    pub fn out_of_scope_pods(&self) -> &[PodInfo] {
        &self.out_of_scope
    }

    /// Looks a pod up by namespace and name.
    pub fn pod_id(&self, namespace: &str, name: &str) -> Option<PodId> {
        self.pod_index
            .get(&(namespace.to_string(), name.to_string()))
            .map(|&i| PodId(i))
    }

    /// The pod behind an id. Panics on an id from another engine that is out of range.
    pub fn pod(&self, id: PodId) -> &PodInfo {
        &self.pods[id.0].info
    }

    /// All pods in scope, in input order.
    pub fn pods(&self) -> impl Iterator<Item = (PodId, &PodInfo)> + '_ {
        self.pods
            .iter()
            .enumerate()
            .map(|(i, p)| (PodId(i), &p.info))
    }

    /// Labels of a namespace as the engine sees them (with `kubernetes.io/metadata.name`).
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.ns_index
            .get(namespace)
            .map(|&i| &self.namespaces[i].labels_map)
    }

    /// All workloads, sorted.
    pub fn workloads(&self) -> &[WorkloadRef] {
        &self.workloads
    }

    /// Number of equivalence classes the pods fell into (a measure of how much work
    /// [`Engine::reach`] saves).
    pub fn class_count(&self) -> usize {
        self.classes.classes.len()
    }

    /// Whether the pod is isolated for `direction` (selected by some policy of that type).
    pub fn is_isolated(&self, pod: PodId, direction: Direction) -> bool {
        !self.selecting(&self.pod_view(pod), direction).is_empty()
    }

    /// Names (`namespace/name`) of the policies selecting the pod for `direction`.
    pub fn selecting_policies(&self, pod: PodId, direction: Direction) -> Vec<(String, String)> {
        self.selecting(&self.pod_view(pod), direction)
            .into_iter()
            .map(|pi| {
                (
                    self.policies[pi].namespace.clone(),
                    self.policies[pi].name.clone(),
                )
            })
            .collect()
    }

    /// What `dst` accepts from `from` (its ingress side only).
    pub fn ingress(&self, dst: PodId, from: Target) -> Connection {
        let peer = self.view(from);
        self.side_connection(&self.pod_view(dst), Direction::Ingress, &peer)
    }

    /// What `src` may send to `to` (its egress side only).
    pub fn egress(&self, src: PodId, to: Target) -> Connection {
        let peer = self.view(to);
        self.side_connection(&self.pod_view(src), Direction::Egress, &peer)
    }

    /// Traffic allowed from pod `src` to pod `dst`: `src`'s egress allowance intersected with
    /// `dst`'s ingress allowance, and when both pods are captured by Istio ambient, TCP as the
    /// HBONE tunnel carries it ([`hbone::through_tunnel`]).
    pub fn allowed(&self, src: PodId, dst: PodId) -> Connection {
        let eg = self.egress(src, Target::Pod(dst));
        if eg.is_none() {
            return eg;
        }
        let direct = eg.intersect(&self.ingress(dst, Target::Pod(src)));
        let network = match self.path(src, dst) {
            hbone::Path::Direct => direct,
            hbone::Path::Hbone => hbone::through_tunnel(&direct),
        };
        self.with_authz(network, Target::Pod(src), dst)
    }

    /// `network` (what NetworkPolicy lets through) narrowed to what the destination's proxy may
    /// admit ([`authz`]; conditional ports included).
    fn with_authz(&self, network: Connection, src: Target, dst: PodId) -> Connection {
        if !self.authz.active || network.is_none() {
            return network;
        }
        let (possible, _) = self.authz_connection(&self.view(src), &self.pod_view(dst));
        network.intersect(&possible)
    }

    /// How TCP from pod `src` to pod `dst` travels: as HBONE to port 15008 when both are
    /// captured by Istio ambient, else to the port itself.
    pub fn path(&self, src: PodId, dst: PodId) -> hbone::Path {
        hbone::Path::between(self.pods[src.0].info.ambient, self.pods[dst.0].info.ambient)
    }

    /// Traffic from outside the cluster, from *some* address in `cidr`, that `dst` accepts.
    /// Within one region of [`Engine::reach`]'s partition every address is treated alike.
    pub fn allowed_from_cidr(&self, cidr: IpNet, dst: PodId) -> Connection {
        let src = Target::External(cidr.trunc());
        self.with_authz(self.ingress(dst, src), src, dst)
    }

    /// Traffic `src` may send to *some* address in `cidr` outside the cluster.
    pub fn allowed_to_cidr(&self, src: PodId, cidr: IpNet) -> Connection {
        self.egress(src, Target::External(cidr.trunc()))
    }

    /// Whether `pod` can reach the cluster DNS on port 53. Uses the kube-system pods labelled
    /// `k8s-app=kube-dns` when the model has some (both their ingress and the pod's egress
    /// count); otherwise assumes one standard CoreDNS pod there (ports `dns` 53/UDP, `dns-tcp`
    /// 53/TCP, `metrics` 9153/TCP), checked against whatever policies the model has.
    pub fn dns_access(&self, pod: PodId) -> DnsAccess {
        let dns: Vec<usize> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.info.namespace == "kube-system"
                    && p.info.labels.get("k8s-app").map(String::as_str) == Some("kube-dns")
            })
            .map(|(i, _)| i)
            .collect();
        if !dns.is_empty() {
            let conns: Vec<Connection> = dns.iter().map(|&d| self.allowed(pod, PodId(d))).collect();
            let mut refs: Vec<WorkloadRef> =
                dns.iter().map(|&d| self.pods[d].info.workload()).collect();
            refs.sort();
            refs.dedup();
            return DnsAccess {
                dns_pods: refs,
                assumed_standard_dns_pod: false,
                udp: conns.iter().any(|c| c.allows(Protocol::Udp, 53)),
                tcp: conns.iter().any(|c| c.allows(Protocol::Tcp, 53)),
            };
        }
        let info = PodInfo::new("kube-system", "coredns")
            .with_labels([("k8s-app", "kube-dns")])
            .with_port(Some("dns"), 53, Protocol::Udp)
            .with_port(Some("dns-tcp"), 53, Protocol::Tcp)
            .with_port(Some("metrics"), 9153, Protocol::Tcp);
        let synthetic = self.synthetic_view(&info);
        let src = self.pod_view(pod);
        let eg = self.side_connection(
            &src,
            Direction::Egress,
            &eval::View::Pod(synthetic.as_view()),
        );
        let ing = self.side_connection(
            &synthetic.as_view(),
            Direction::Ingress,
            &eval::View::Pod(src),
        );
        let conn = eg.intersect(&ing);
        DnsAccess {
            dns_pods: Vec::new(),
            assumed_standard_dns_pod: true,
            udp: conn.allows(Protocol::Udp, 53),
            tcp: conn.allows(Protocol::Tcp, 53),
        }
    }
}
