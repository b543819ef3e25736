//! Proof before writing: the exact NetworkPolicy engine decides, on the input as it is and with
//! the candidate policies added, whether every connection the input shows in use survives.
//!
//! For each connection in use ([`Use`]) the engine answers which of its ports are allowed
//! *before* (existing policies only). Those ports must still be allowed *after* the candidates
//! are added, unless the connection is a violation the policies exist to cut. When a port is
//! lost, the candidate responsible is the one isolating the destination's ingress (or the
//! source's egress); it is withheld and the proof runs again, until nothing in use is cut. A
//! withheld candidate only removes restrictions, so this ends after at most one round per
//! candidate, and usually after one.
//!
//! Both answers come from the engine, so between pods captured by Istio ambient they are the
//! HBONE tunnel's: a connection survives when TCP 15008 is admitted between the two pods,
//! whatever its port ([`meshmove_netpol::hbone`]).
//!
//! Sources that are not workloads of the input (the CloudNativePG operator, ingress
//! controllers, monitoring) stand in the model as one synthetic pod in their namespace with the
//! labels the policy admits them by.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_netpol::hbone::{HBONE_PORT, Path};
use meshmove_netpol::view::{NEW_NAMESPACE, PROBE_POD};
use meshmove_netpol::{
    ClusterModel, Connection, Engine, EngineOptions, NamespaceInfo, PodId, PodInfo, PortRange,
    PortSet, Protocol, Target, WorkloadRef,
};

/// Where a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Workload(WorkloadRef),
    /// Pods of a namespace outside the input (an operator, ingress controllers, monitoring),
    /// with the labels the generated rule selects them by.
    Namespace {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
}

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    Workload(WorkloadRef),
    /// Addresses outside the cluster (an external database), as an egress `ipBlock` names them.
    External(IpNet),
}

impl std::fmt::Display for To {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            To::Workload(w) => write!(f, "{}/{}", w.kind.as_str(), w.name),
            To::External(net) => write!(f, "{net}"),
        }
    }
}

/// A connection the input shows in use.
#[derive(Debug, Clone)]
pub struct Use {
    pub from: From,
    /// How reports name the source.
    pub from_name: String,
    pub to: To,
    /// TCP ports; empty for an external destination whose port nothing names: then every TCP
    /// port allowed before must stay allowed.
    pub ports: Vec<u16>,
    pub why: String,
    /// `Some(reason)`: a connection the policies are meant to cut.
    pub violation: Option<String>,
}

/// A candidate policy and the workload whose pods it selects.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub subject: WorkloadRef,
    pub policy: NetworkPolicy,
    /// An egress policy (`policyTypes: [Egress]`), else an ingress one.
    pub egress: bool,
}

/// The outcome: candidates to withhold (with the connection each would cut) and the violations
/// the remaining policies do cut.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Candidate index -> (use index, TCP ports it would cut).
    pub withhold: BTreeMap<usize, (usize, PortSet)>,
    /// Use index -> ports cut (violations only).
    pub cut: Vec<(usize, Vec<u16>)>,
    /// Uses whose source or destination has no pod in the model (not checked).
    pub unchecked: Vec<usize>,
    /// Candidate index -> why it cannot isolate: an AdminNetworkPolicy `Allow` admits traffic to
    /// its pods that the NetworkPolicies (the candidate included) refuse. ANP rules come before
    /// NetworkPolicy and an `Allow` is final (`meshmove_netpol`'s `admin` module), so such a
    /// candidate would be claimed to isolate what it cannot.
    pub overridden: BTreeMap<usize, String>,
}

pub(super) struct Pods {
    by_workload: HashMap<WorkloadRef, Vec<PodId>>,
}

impl Pods {
    pub(super) fn new(engine: &Engine) -> Pods {
        let mut by_workload: HashMap<WorkloadRef, Vec<PodId>> = HashMap::new();
        for (id, p) in engine.pods() {
            by_workload.entry(p.workload()).or_default().push(id);
        }
        Pods { by_workload }
    }

    pub(super) fn of(&self, w: &WorkloadRef) -> &[PodId] {
        self.by_workload.get(w).map_or(&[], Vec::as_slice)
    }
}

const SOURCE_POD: &str = "(source)";

/// Add one synthetic pod per distinct namespace source (and its namespace when absent).
pub(super) fn with_sources(
    model: &ClusterModel,
    uses: &[Use],
) -> (ClusterModel, Vec<Option<WorkloadRef>>) {
    let mut model = model.clone();
    let mut names: BTreeMap<(String, BTreeMap<String, String>), WorkloadRef> = BTreeMap::new();
    let mut source_of = Vec::with_capacity(uses.len());
    for u in uses {
        match &u.from {
            From::Workload(w) => source_of.push(Some(w.clone())),
            From::Namespace { namespace, labels } => {
                let next = names.len();
                let w = names
                    .entry((namespace.clone(), labels.clone()))
                    .or_insert_with(|| {
                        let name = format!("{SOURCE_POD}-{next}");
                        if !model.namespaces.iter().any(|n| &n.name == namespace) {
                            model
                                .namespaces
                                .push(NamespaceInfo::new(namespace.clone(), BTreeMap::new()));
                        }
                        let pod = PodInfo::new(namespace.clone(), name)
                            .with_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                        let r = pod.workload();
                        model.pods.push(pod);
                        r
                    });
                source_of.push(Some(w.clone()));
            }
        }
    }
    if !model.admin_network_policies.is_empty() {
        // Admin policies select peers by namespace labels: a pod in a namespace of the input's
        // future stands for the sources the input does not show (see `admin_overrides`).
        model
            .namespaces
            .push(NamespaceInfo::new(NEW_NAMESPACE, BTreeMap::new()));
        model.pods.push(PodInfo::new(NEW_NAMESPACE, PROBE_POD));
    }
    (model, source_of)
}

/// What the engine allows from a pod to a destination: to a pod, both sides (and the HBONE
/// tunnel's view between ambient pods); to addresses outside the cluster, the pod's egress.
fn between(engine: &Engine, src: PodId, dst: Target) -> Connection {
    match dst {
        Target::Pod(dst) => engine.allowed(src, dst),
        Target::External(_) => engine.egress(src, dst),
    }
}

/// What a use needs to keep: its TCP ports that were allowed before, or, when no port is named
/// (a client of every port of a receiver, an address outside the cluster whose port nothing
/// names), every TCP port that was.
#[derive(Debug, Clone)]
pub(super) enum Required {
    Ports(Vec<u16>),
    Every(Connection),
}

impl Required {
    pub(super) fn of(before: &Connection, ports: &[u16]) -> Required {
        if ports.is_empty() {
            let tcp = Connection::Ports(PortSet::from_ranges([PortRange::full(Protocol::Tcp)]));
            Required::Every(before.intersect(&tcp))
        } else {
            Required::Ports(
                ports
                    .iter()
                    .copied()
                    .filter(|&p| before.allows(Protocol::Tcp, p))
                    .collect(),
            )
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Required::Ports(p) => p.is_empty(),
            Required::Every(c) => c.is_none(),
        }
    }

    /// The TCP ports `now` no longer allows, or `None` when nothing is lost.
    pub(super) fn lost(&self, now: &Connection) -> Option<PortSet> {
        let lost = match self {
            Required::Ports(p) => PortSet::from_ranges(
                p.iter()
                    .filter(|&&p| !now.allows(Protocol::Tcp, p))
                    .map(|&p| PortRange::single(Protocol::Tcp, p)),
            ),
            Required::Every(c) => match (c, now) {
                (_, Connection::All) => PortSet::new(),
                // `c` is TCP only (see `of`), never `All`.
                (Connection::All, Connection::Ports(n)) => {
                    PortSet::from_ranges([PortRange::full(Protocol::Tcp)]).difference(n)
                }
                (Connection::Ports(c), Connection::Ports(n)) => c.difference(n),
            },
        };
        (!lost.is_empty()).then_some(lost)
    }
}

/// Lost ports as reports name them: `TCP 5432, TCP 8000-8010`.
pub fn ports_text(ports: &PortSet) -> String {
    ports
        .ranges()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every port of a set of TCP ranges (the ports of a cut violation).
fn port_list(ports: &PortSet) -> impl Iterator<Item = u16> + '_ {
    ports.ranges().iter().flat_map(|r| r.start..=r.end)
}

/// Prove `candidates` against `uses` on `model` (the input's engine model).
pub fn prove(model: &ClusterModel, candidates: &[Candidate], uses: &[Use]) -> Verdict {
    let (base, source_of) = with_sources(model, uses);
    let Ok((before, _)) = Engine::build_lenient(&base, EngineOptions::default()) else {
        // The input's own model does not build (a duplicate object): nothing can be shown safe.
        return Verdict {
            withhold: (0..candidates.len())
                .map(|i| (i, (usize::MAX, PortSet::new())))
                .collect(),
            ..Verdict::default()
        };
    };
    let pods = Pods::new(&before);
    // What each use is allowed before, per (source pod, destination).
    let mut pairs: Vec<Vec<(PodId, Target, Required)>> = Vec::with_capacity(uses.len());
    let mut verdict = Verdict::default();
    for (i, u) in uses.iter().enumerate() {
        let src = source_of[i]
            .as_ref()
            .and_then(|w| pods.of(w).first().copied());
        let dsts: Vec<Target> = match &u.to {
            To::Workload(w) => pods.of(w).iter().map(|&p| Target::Pod(p)).collect(),
            To::External(net) => vec![Target::External(net.trunc())],
        };
        let Some(src) = src.filter(|_| !dsts.is_empty()) else {
            verdict.unchecked.push(i);
            pairs.push(Vec::new());
            continue;
        };
        pairs.push(
            dsts.into_iter()
                .map(|dst| {
                    (
                        src,
                        dst,
                        Required::of(&between(&before, src, dst), &u.ports),
                    )
                })
                .filter(|(_, _, r)| !r.is_empty())
                .collect(),
        );
    }
    let by_subject: HashMap<(&WorkloadRef, bool), Vec<usize>> =
        candidates
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut m, (i, c)| {
                m.entry((&c.subject, c.egress)).or_default().push(i);
                m
            });
    loop {
        // Applying a candidate replaces a policy of the same name (a second run over its own
        // output, or `dbiso apply` over what it applied before).
        let mut after_model = base.clone();
        let active: Vec<&NetworkPolicy> = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| !verdict.withhold.contains_key(i))
            .map(|(_, c)| &c.policy)
            .collect();
        let replaced: std::collections::HashSet<(&Option<String>, &Option<String>)> = active
            .iter()
            .map(|p| (&p.metadata.namespace, &p.metadata.name))
            .collect();
        after_model
            .policies
            .retain(|p| !replaced.contains(&(&p.metadata.namespace, &p.metadata.name)));
        after_model.policies.extend(active.into_iter().cloned());
        let Ok((after, _)) = Engine::build_lenient(&after_model, EngineOptions::default()) else {
            // A candidate the engine cannot build with: withhold them all.
            for i in 0..candidates.len() {
                verdict
                    .withhold
                    .entry(i)
                    .or_insert((usize::MAX, PortSet::new()));
            }
            verdict.cut.clear();
            return verdict;
        };
        // Pod ids are positions in the model, which only gained policies: they carry over.
        let mut blamed = false;
        verdict.cut.clear();
        for (i, u) in uses.iter().enumerate() {
            let mut lost_all: Vec<u16> = Vec::new();
            for (src, dst, required) in &pairs[i] {
                let now = between(&after, *src, *dst);
                let Some(lost) = required.lost(&now) else {
                    continue;
                };
                if u.violation.is_some() {
                    lost_all.extend(port_list(&lost));
                    continue;
                }
                // The destination's ingress, else the source's egress, is what cut it; between
                // two pods captured by Istio ambient both sides see TCP 15008, not the port
                // inside the tunnel (`meshmove_netpol::hbone`).
                let ingress_cuts = match *dst {
                    Target::Pod(dst) => {
                        let ingress = after.ingress(dst, Target::Pod(*src));
                        match after.path(*src, dst) {
                            Path::Hbone => !ingress.allows(Protocol::Tcp, HBONE_PORT),
                            Path::Direct => required.lost(&ingress).is_some(),
                        }
                    }
                    // Addresses outside the cluster have no ingress side in the model.
                    Target::External(_) => false,
                };
                let src_workload = after.pod(*src).workload();
                let culprit = match (&u.to, ingress_cuts) {
                    (To::Workload(w), true) => (w, false),
                    _ => (&src_workload, true),
                };
                for &c in by_subject.get(&culprit).into_iter().flatten() {
                    if let std::collections::btree_map::Entry::Vacant(e) = verdict.withhold.entry(c)
                    {
                        e.insert((i, lost.clone()));
                        blamed = true;
                    }
                }
            }
            if !lost_all.is_empty() {
                lost_all.sort_unstable();
                lost_all.dedup();
                verdict.cut.push((i, lost_all));
            }
        }
        if !blamed {
            if !base.admin_network_policies.is_empty() {
                verdict.overridden = admin_overrides(&after_model, &after, candidates, &verdict);
            }
            return verdict;
        }
    }
}

/// The active candidates an AdminNetworkPolicy `Allow` defeats: for each pod a candidate
/// selects, every pod of the model (a probe pod stands for any other namespace) and every
/// address is compared, the destination's ingress with all tiers against NetworkPolicy alone.
/// Ports the first admits and the second refuses are the ANP's doing; the first such port of
/// the destination's container ports is explained to name the rule.
fn admin_overrides(
    after_model: &ClusterModel,
    after: &Engine,
    candidates: &[Candidate],
    verdict: &Verdict,
) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    let mut np_model = after_model.clone();
    np_model.admin_network_policies.clear();
    np_model.baseline_admin_network_policies.clear();
    let Ok((np_only, _)) = Engine::build_lenient(&np_model, EngineOptions::default()) else {
        return out;
    };
    let pods = Pods::new(after);
    let sources: Vec<Target> = after
        .pods()
        .map(|(id, _)| Target::Pod(id))
        .chain(
            ["0.0.0.0/0", "::/0"]
                .iter()
                .map(|n| Target::External(n.parse().expect("a valid CIDR"))),
        )
        .collect();
    for (i, c) in candidates.iter().enumerate() {
        // An AdminNetworkPolicy's ingress `Allow` defeats ingress isolation only.
        if verdict.withhold.contains_key(&i) || c.egress {
            continue;
        }
        'candidate: for &dst in pods.of(&c.subject) {
            let ports: Vec<u16> = after
                .pod(dst)
                .ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port)
                .collect();
            for &src in &sources {
                if src == Target::Pod(dst) {
                    continue;
                }
                let with = after.ingress(dst, src);
                let without = np_only.ingress(dst, src);
                let Some(&port) = ports
                    .iter()
                    .find(|&&p| with.allows(Protocol::Tcp, p) && !without.allows(Protocol::Tcp, p))
                else {
                    continue;
                };
                let rule = after
                    .explain(src, Target::Pod(dst), Protocol::Tcp, port)
                    .ok()
                    .and_then(|x| x.ingress.admin.and_then(|a| a.decided_by))
                    .unwrap_or_else(|| "an AdminNetworkPolicy rule".into());
                let from = match src {
                    Target::Pod(p) if after.pod(p).name == PROBE_POD => {
                        "pods of any other namespace".to_string()
                    }
                    Target::Pod(p) => after.pod(p).workload().to_string(),
                    Target::External(n) => format!("addresses in {n}"),
                };
                out.insert(
                    i,
                    format!("{rule} admits {from} on TCP {port}, which its NetworkPolicy refuses"),
                );
                break 'candidate;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use meshmove_netpol::{NamespaceInfo, PodInfo, WorkloadKind};
    use serde_json::{Value, json};

    use super::*;

    /// `shop` holds api (a client) and db; `other` holds a stranger. The candidate admits api
    /// only, and proves nothing in use is cut.
    fn setup(anps: Vec<Value>) -> (ClusterModel, Vec<Candidate>, Vec<Use>) {
        let w = |kind, ns: &str, name: &str| WorkloadRef::new(kind, ns, name);
        let (api, db) = (
            w(WorkloadKind::Deployment, "shop", "api"),
            w(WorkloadKind::StatefulSet, "shop", "db"),
        );
        let model = ClusterModel {
            namespaces: vec![
                NamespaceInfo::new("shop", BTreeMap::new()),
                NamespaceInfo::new("other", BTreeMap::new()),
            ],
            pods: vec![
                PodInfo::new("shop", "api")
                    .with_labels([("app", "api")])
                    .with_owner(api.clone()),
                PodInfo::new("shop", "db")
                    .with_labels([("app", "db")])
                    .with_owner(db.clone())
                    .with_port(Some("pg"), 5432, Protocol::Tcp),
                PodInfo::new("other", "stranger").with_labels([("app", "stranger")]),
            ],
            admin_network_policies: anps,
            ..ClusterModel::default()
        };
        let policy = serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}]}}))
        .unwrap();
        let uses = vec![Use {
            from: From::Workload(api),
            from_name: "api".into(),
            to: To::Workload(db.clone()),
            ports: vec![5432],
            why: "DATABASE_URL".into(),
            violation: None,
        }];
        (
            model,
            vec![Candidate {
                subject: db,
                policy,
                egress: false,
            }],
            uses,
        )
    }

    fn anp(name: &str, action: &str, from: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"priority": 10, "subject": {"namespaces": {}},
            "ingress": [{"name": "r", "action": action, "from": from, "ports": [{"portNumber": {"port": 5432}}]}]}})
    }

    #[test]
    fn an_anp_allow_that_admits_others_is_reported_not_claimed_isolated() {
        let (model, candidates, uses) = setup(vec![anp(
            "open-db",
            "Allow",
            json!([{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]),
        )]);
        let v = prove(&model, &candidates, &uses);
        assert!(v.withhold.is_empty(), "nothing in use is cut: {v:?}");
        let why = v
            .overridden
            .get(&0)
            .expect("the ANP Allow defeats the candidate");
        assert!(why.starts_with("AdminNetworkPolicy open-db (priority 10) ingress[0] \"r\": Allow admits Pod/other/stranger on TCP 5432"), "{why}");
    }

    #[test]
    fn an_anp_allow_for_every_namespace_is_seen_through_the_probe() {
        // The stranger's namespace is left out of the input: the probe pod stands for it.
        let (mut model, candidates, uses) =
            setup(vec![anp("open-db", "Allow", json!([{"namespaces": {}}]))]);
        model.pods.retain(|p| p.namespace != "other");
        let v = prove(&model, &candidates, &uses);
        assert!(
            v.overridden
                .get(&0)
                .is_some_and(|w| w.contains("pods of any other namespace")),
            "{v:?}"
        );
    }

    #[test]
    fn pass_deny_and_allows_the_policy_also_admits_leave_the_candidate_alone() {
        for anps in [
            vec![],
            vec![anp("pass", "Pass", json!([{"namespaces": {}}]))],
            vec![anp(
                "deny",
                "Deny",
                json!([{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]),
            )],
            vec![anp(
                "api-only",
                "Allow",
                json!([{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}}]),
            )],
        ] {
            let (model, candidates, uses) = setup(anps.clone());
            let v = prove(&model, &candidates, &uses);
            assert!(
                v.overridden.is_empty() && v.withhold.is_empty(),
                "{anps:?}: {v:?}"
            );
        }
    }
}
