//! `audit`: which services share a database, and who can open a connection to it.
//!
//! Everything the checks need is computed once per inventory into an [`Audit`]: databases,
//! references, the reachability engine over the inventory's model (with probe pods, see
//! [`meshmove_netpol::view`]) and, per database, every source that reaches a database port. The
//! analyzers are thin: each turns one aspect of the [`Audit`] into findings of one code, and
//! declares the kinds it reads. They share the computation through a memo keyed by the
//! inventory, so build them per run ([`analyzers`]) as the binaries do.
//!
//! Reachability is judged on the *database ports* only (the client ports of the engine, such as
//! 5432): the CloudNativePG operator reaching the instance manager on 8000 or Prometheus
//! scraping 9187 is not a client reaching the database.
//!
//! NetworkPolicies absent from manifests mean there are none, so on files the reachability
//! checks run without them; on a cluster a NetworkPolicy list that was refused would turn every
//! database into a false "reachable by everyone", so there they require the kind and are
//! reported as skipped instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use super::catalog::*;

mod waypoint;
use super::discover::{self, Database};
use meshmove_netpol::view::{self as model, Model, ModelOptions, NEW_NAMESPACE};
use super::owners::{self, Reference, Unresolved};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, ObjectRef, kinds};
use meshmove_netpol::{Connection, Direction, Endpoint, Engine, EngineOptions, PodId, PolicyError, Protocol, Reach, WorkloadRef};
use meshmove_model::workload::WORKLOAD_KINDS;

/// How the analyzers are set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// The inventory comes from a cluster: reachability checks require NetworkPolicies to have
    /// been listed (see the module docs).
    pub live: bool,
}

/// One source reaching a database port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub from: Endpoint,
    /// The database ports it reaches (TCP).
    pub ports: Vec<u16>,
    /// It reaches them through Istio ambient's HBONE tunnel (both ends captured, TCP 15008
    /// admitted): the engine's [`meshmove_netpol::ReachEntry::hbone`].
    pub hbone: bool,
}

/// What a finding adds after a source that reaches the database through the tunnel.
const VIA_HBONE: &str = " via HBONE 15008 (ambient)";

fn via(s: &Source) -> &'static str {
    if s.hbone { VIA_HBONE } else { "" }
}

/// Who reaches one database, on its ports.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub database: ObjectRef,
    pub ports: Vec<u16>,
    /// Pods standing for the database in the model, and how many are isolated for ingress.
    pub pods: usize,
    pub isolated_pods: usize,
    /// Owner workloads (in the model) and the database ports they cannot reach.
    pub owners_blocked: Vec<(WorkloadRef, Vec<u16>)>,
    /// Non-owner workloads of the database's namespace.
    pub non_owners: Vec<Source>,
    /// Non-owner workloads of other namespaces, and probe pods (`Pod/<ns>/(any pod)`).
    pub other_namespaces: Vec<Source>,
    /// Addresses outside the cluster.
    pub external: Vec<Source>,
}

/// Everything `audit` knows about an inventory.
pub struct Audit {
    pub databases: Vec<Database>,
    pub references: Vec<Reference>,
    /// Per database, the workloads entitled to reach it: every referencing workload, except
    /// when several services use it and one is its owner (the rule policy generation applies:
    /// [`crate::policies`]), then the owner's workloads, Helm hooks and database tooling.
    pub owners: HashMap<ObjectRef, BTreeSet<WorkloadRef>>,
    pub unresolved: Vec<Unresolved>,
    pub model: Model,
    /// `None` when the engine refused the model (reason in `engine_error`). Models from
    /// [`model::build`] hold each namespace, pod and policy once, so the engine accepts them.
    pub engine: Option<Engine>,
    pub engine_error: Option<String>,
    /// What reaches the databases: [`Engine::reach_into`] their workloads.
    pub reach: Reach,
    pub rejected: Vec<PolicyError>,
    pub exposures: Vec<Exposure>,
    /// Valid policies (namespace, name) that select no pod of the model.
    pub empty_policies: Vec<(String, String)>,
}

/// Images of database engines: workloads that only run these are database tooling (dumps,
/// restores), not services, when counting who shares a database.
fn is_tooling(inventory: &Inventory, r: &Reference) -> bool {
    let Some(o) = object_of(inventory, &r.workload) else { return false };
    let Some(w) = meshmove_model::workload::Workload::of(o) else { return false };
    let mut images = w.images().peekable();
    images.peek().is_some() && images.all(|i| discover::Engine::from_image(i).is_some())
}

impl Audit {
    pub fn new(inventory: &Inventory) -> Audit {
        let databases = discover::databases(inventory);
        let usage = owners::usage(inventory, &databases);
        let ws = meshmove_model::workload::workloads(inventory);
        let client_index = crate::policies::clients::ClientIndex::new(&ws, &usage, &databases);
        let entitled: HashMap<ObjectRef, BTreeSet<WorkloadRef>> = databases
            .iter()
            .map(|db| {
                let found = client_index.database_clients(db, None);
                let set: BTreeSet<WorkloadRef> = if found.violators.is_empty() {
                    client_index.references(&db.object).iter().map(|r| to_workload(&r.workload)).collect()
                } else {
                    found.admitted.iter().map(|(i, _)| to_workload(&ws[*i].object.object_ref())).collect()
                };
                (db.object.clone(), set)
            })
            .collect();
        let owners::Usage { references, unresolved, .. } = usage;
        let model = model::build(inventory, ModelOptions { probes: true });
        let (engine, engine_error, rejected) = match Engine::build_lenient(&model.cluster, EngineOptions::default()) {
            Ok((e, rejected)) => (Some(e), None, rejected),
            Err(e) => (None, Some(e.to_string()), Vec::new()),
        };
        // Only what reaches the databases is judged: reachability into them, not all pairs.
        let db_workloads: HashSet<WorkloadRef> = databases.iter().map(Database::workload_ref).collect();
        let mut audit = Audit {
            databases,
            references,
            owners: entitled,
            unresolved,
            model,
            reach: engine.as_ref().map(|e| e.reach_into(|w| db_workloads.contains(w))).unwrap_or_default(),
            engine,
            engine_error,
            rejected,
            exposures: Vec::new(),
            empty_policies: Vec::new(),
        };
        audit.exposures = audit.compute_exposures();
        audit.empty_policies = audit.compute_empty_policies();
        audit
    }

    /// Owner workloads of a database, as the engine names them (see [`Audit::owners`]).
    pub fn owners_of(&self, db: &ObjectRef) -> BTreeSet<WorkloadRef> {
        self.owners.get(db).cloned().unwrap_or_default()
    }

    fn compute_exposures(&self) -> Vec<Exposure> {
        let Some(engine) = &self.engine else { return Vec::new() };
        let db_refs: HashMap<WorkloadRef, usize> =
            self.databases.iter().enumerate().map(|(i, d)| (d.workload_ref(), i)).collect();
        let mut incoming: Vec<Vec<(&Endpoint, &Connection, bool)>> = vec![Vec::new(); self.databases.len()];
        for e in self.reach.iter() {
            if let Endpoint::Workload(dst) = e.dst
                && let Some(&i) = db_refs.get(dst)
            {
                incoming[i].push((e.src, e.conn, e.hbone));
            }
        }
        let mut pods: HashMap<WorkloadRef, Vec<PodId>> = HashMap::new();
        for (id, p) in engine.pods() {
            pods.entry(p.workload()).or_default().push(id);
        }
        let mut out = Vec::new();
        for (i, db) in self.databases.iter().enumerate() {
            let me = db.workload_ref();
            let Some(my_pods) = pods.get(&me) else { continue };
            let owners = self.owners_of(&db.object);
            let reached = |conn: &Connection| -> Vec<u16> { db.ports.iter().copied().filter(|&p| conn.allows(Protocol::Tcp, p)).collect() };
            let mut x = Exposure {
                database: db.object.clone(),
                ports: db.ports.clone(),
                pods: my_pods.len(),
                isolated_pods: my_pods.iter().filter(|&&p| engine.is_isolated(p, Direction::Ingress)).count(),
                owners_blocked: Vec::new(),
                non_owners: Vec::new(),
                other_namespaces: Vec::new(),
                external: Vec::new(),
            };
            // The kubelet's probes of a pod in Istio ambient arrive from the link-local address
            // ztunnel's in-pod rules give them, which Istio asks policies to admit
            // (<https://istio.io/latest/docs/ambient/usage/networkpolicy/>): no client.
            let captured = my_pods.iter().any(|&p| engine.pod(p).ambient);
            let probe_source = IpNet::from(meshmove_netpol::hbone::AMBIENT_PROBE_SOURCE);
            for &(src, conn, hbone) in &incoming[i] {
                let ports = reached(conn);
                if ports.is_empty() || (captured && *src == Endpoint::External(probe_source)) {
                    continue;
                }
                let source = Source { from: src.clone(), ports, hbone };
                match src {
                    Endpoint::Workload(w) if *w == me || owners.contains(w) => {}
                    Endpoint::Workload(w) if Model::is_probe(w) || w.namespace != db.namespace() => x.other_namespaces.push(source),
                    Endpoint::Workload(_) => x.non_owners.push(source),
                    Endpoint::External(_) => x.external.push(source),
                }
            }
            for owner in owners.iter().filter(|o| pods.contains_key(o)) {
                let allowed = self.reach.get(&Endpoint::Workload(owner.clone()), &Endpoint::Workload(me.clone()));
                let blocked: Vec<u16> = db.ports.iter().copied().filter(|&p| !allowed.is_some_and(|c| c.allows(Protocol::Tcp, p))).collect();
                if !blocked.is_empty() {
                    x.owners_blocked.push((owner.clone(), blocked));
                }
            }
            out.push(x);
        }
        out
    }

    fn compute_empty_policies(&self) -> Vec<(String, String)> {
        let Some(engine) = &self.engine else { return Vec::new() };
        // Pods with the same namespace and labels are selected alike: ask once per such group.
        let mut groups: BTreeMap<(&str, &BTreeMap<String, String>), PodId> = BTreeMap::new();
        for (id, p) in engine.pods() {
            if !Model::is_probe(&p.workload()) {
                groups.entry((p.namespace.as_str(), &p.labels)).or_insert(id);
            }
        }
        let mut selecting: BTreeSet<(String, String)> = BTreeSet::new();
        for &id in groups.values() {
            for dir in [Direction::Ingress, Direction::Egress] {
                selecting.extend(engine.selecting_policies(id, dir));
            }
        }
        let invalid: BTreeSet<(&str, &str)> = self.rejected.iter().map(|e| (e.namespace.as_str(), e.name.as_str())).collect();
        let mut out: Vec<(String, String)> = self
            .model
            .cluster
            .policies
            .iter()
            .filter_map(|p| Some((p.metadata.namespace.clone()?, p.metadata.name.clone()?)))
            .filter(|(ns, name)| !invalid.contains(&(ns.as_str(), name.as_str())) && !selecting.contains(&(ns.clone(), name.clone())))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The engine's name for an inventory workload.
fn to_workload(r: &ObjectRef) -> WorkloadRef {
    WorkloadRef::new(meshmove_netpol::WorkloadKind::parse(&r.kind), r.namespace.as_deref().unwrap_or("default"), &r.name)
}

/// The inventory object behind a reference (workloads, CloudNativePG clusters, policies).
pub fn object_of<'a>(inventory: &'a Inventory, r: &ObjectRef) -> Option<&'a Object> {
    static OTHERS: [&Kind; 2] = [&kinds::CNPG_CLUSTER, &kinds::NETWORK_POLICY];
    let kind = WORKLOAD_KINDS.iter().chain(OTHERS.iter()).find(|k| k.kind == r.kind)?;
    inventory.get(kind, r.namespace.as_deref(), &r.name)
}

/// `Deployment/api` in the database's namespace, `Deployment/other/api` elsewhere.
fn short(w: &WorkloadRef, ns: &str) -> String {
    if w.namespace == ns { format!("{}/{}", w.kind, w.name) } else { w.to_string() }
}

/// Up to `max` items joined with ", ", then "and N more".
fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!("{} and {} more", items[..max].join(", "), items.len() - max)
}

fn ports_text(ports: &[u16]) -> String {
    let p: Vec<String> = ports.iter().map(|p| format!("TCP {p}")).collect();
    p.join(", ")
}

/// Identity of an inventory (its address, its objects' address and count) and its audit.
type MemoSlot = Option<(usize, usize, usize, Arc<Audit>)>;

/// A shared, per-run cache of the [`Audit`] of the inventory being analyzed.
#[derive(Default)]
struct Memo {
    slot: Mutex<MemoSlot>,
}

impl Memo {
    fn get(&self, inventory: &Inventory) -> Arc<Audit> {
        let key = (inventory as *const Inventory as usize, inventory.objects().as_ptr() as usize, inventory.objects().len());
        let mut slot = self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((a, b, c, audit)) = slot.as_ref()
            && (*a, *b, *c) == key
        {
            return audit.clone();
        }
        let audit = Arc::new(Audit::new(inventory));
        *slot = Some((key.0, key.1, key.2, audit.clone()));
        audit
    }
}

/// Kinds ownership reads.
static OWNERSHIP: &[&Kind] = &[
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
    &kinds::SERVICE,
    &kinds::SECRET,
    &kinds::CONFIG_MAP,
    &kinds::CNPG_CLUSTER,
];

/// Kinds reachability reads (ownership's, plus policies and namespace labels). The admin policy
/// tiers (AdminNetworkPolicy before NetworkPolicy, BaselineAdminNetworkPolicy after) decide what
/// reaches a database as much as NetworkPolicy does, and so do Istio's AuthorizationPolicies
/// (with the PeerAuthentications that decide whether a source has a principal), which the engine
/// applies after the network: listed too, where a cluster without their CRDs simply has none and
/// a refused list is unread input like any other.
static REACHABILITY: &[&Kind] = &[
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
    &kinds::SERVICE,
    &kinds::SECRET,
    &kinds::CONFIG_MAP,
    &kinds::CNPG_CLUSTER,
    &kinds::NETWORK_POLICY,
    &kinds::NAMESPACE,
    &kinds::ADMIN_NETWORK_POLICY,
    &kinds::BASELINE_ADMIN_NETWORK_POLICY,
    &kinds::AUTHORIZATION_POLICY,
    &kinds::PEER_AUTHENTICATION,
];

/// Kinds the policy checks read besides the policies: the pods they select.
static SELECTION: &[&Kind] = &[
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
    &kinds::CNPG_CLUSTER,
    &kinds::NAMESPACE,
];

static NETWORK_POLICIES: &[&Kind] = &[&kinds::NETWORK_POLICY];
/// The policies DB3016 reports (the reachability checks read them too).
static AUTHORIZATION_POLICIES: &[&Kind] = &[&kinds::AUTHORIZATION_POLICY];

/// Which aspect of the audit an analyzer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Shared,
    NoOwner,
    UnresolvedHost,
    NonOwner,
    OtherNamespace,
    External,
    NotIsolated,
    OwnerBlocked,
    SelectsNothing,
    InvalidPolicy,
    WaypointPolicy,
}

const CHECKS: [Check; 11] = [
    Check::Shared,
    Check::NoOwner,
    Check::UnresolvedHost,
    Check::NonOwner,
    Check::OtherNamespace,
    Check::External,
    Check::NotIsolated,
    Check::OwnerBlocked,
    Check::SelectsNothing,
    Check::InvalidPolicy,
    Check::WaypointPolicy,
];

/// One audit check.
pub struct DbisoAnalyzer {
    check: Check,
    options: AuditOptions,
    memo: Arc<Memo>,
}

/// The audit analyzers, sharing one computation. Build them for each run.
pub fn analyzers(options: &AuditOptions) -> Vec<Box<dyn Analyzer>> {
    let memo = Arc::new(Memo::default());
    CHECKS
        .iter()
        .map(|&check| Box::new(DbisoAnalyzer { check, options: *options, memo: memo.clone() }) as Box<dyn Analyzer>)
        .collect()
}

impl Analyzer for DbisoAnalyzer {
    fn name(&self) -> &'static str {
        match self.check {
            Check::Shared => "shared-databases",
            Check::NoOwner => "database-owners",
            Check::UnresolvedHost => "database-hosts",
            Check::NonOwner => "non-owner-reachability",
            Check::OtherNamespace => "namespace-reachability",
            Check::External => "external-reachability",
            Check::NotIsolated => "database-isolation",
            Check::OwnerBlocked => "owner-reachability",
            Check::SelectsNothing => "policy-selection",
            Check::InvalidPolicy => "policy-validity",
            Check::WaypointPolicy => "waypoint-policies",
        }
    }

    fn requires(&self) -> &'static [&'static Kind] {
        match self.check {
            Check::Shared | Check::NoOwner | Check::UnresolvedHost => &[],
            Check::NonOwner | Check::OtherNamespace | Check::External | Check::NotIsolated | Check::OwnerBlocked => {
                if self.options.live { NETWORK_POLICIES } else { &[] }
            }
            Check::SelectsNothing | Check::InvalidPolicy => NETWORK_POLICIES,
            Check::WaypointPolicy => &[],
        }
    }

    fn uses(&self) -> &'static [&'static Kind] {
        match self.check {
            Check::Shared | Check::NoOwner | Check::UnresolvedHost => OWNERSHIP,
            Check::NonOwner | Check::OtherNamespace | Check::External | Check::NotIsolated | Check::OwnerBlocked => REACHABILITY,
            Check::SelectsNothing => SELECTION,
            Check::InvalidPolicy => &[],
            Check::WaypointPolicy => AUTHORIZATION_POLICIES,
        }
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let audit = self.memo.get(inventory);
        match self.check {
            Check::Shared => shared(inventory, &audit, out),
            Check::NoOwner => no_owner(inventory, &audit, out),
            Check::UnresolvedHost => unresolved(inventory, &audit, out),
            Check::NonOwner | Check::OtherNamespace | Check::External | Check::NotIsolated | Check::OwnerBlocked => {
                for x in &audit.exposures {
                    let Some(object) = object_of(inventory, &x.database) else { continue };
                    self.exposure(&audit, x, object, out);
                }
            }
            Check::SelectsNothing => {
                for (ns, name) in &audit.empty_policies {
                    let Some(o) = inventory.get(&kinds::NETWORK_POLICY, Some(ns), name) else { continue };
                    out.push(
                        Finding::new(
                            &CODE_POLICY_SELECTS_NOTHING,
                            format!("no pod of namespace {ns} matches its podSelector, so it isolates nothing and admits nothing"),
                        )
                        .on(o),
                    );
                }
            }
            Check::InvalidPolicy => invalid(inventory, &audit, out),
            Check::WaypointPolicy => waypoint::unmodelled(inventory, audit.engine.as_ref(), out),
        }
    }
}

fn shared(inventory: &Inventory, audit: &Audit, out: &mut Vec<Finding>) {
    for db in &audit.databases {
        let mut by_service: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        // Helm hooks (a migration Job, a `helm test` Pod) are the release's own tasks, not
        // another service.
        let hook = |r: &Reference| {
            object_of(inventory, &r.workload).is_some_and(|o| o.annotation("helm.sh/hook").is_some())
        };
        for r in audit.references.iter().filter(|r| r.database == db.object && !is_tooling(inventory, r) && !hook(r)) {
            by_service.entry(&r.service).or_default().insert(format!("{}/{}", r.workload.kind, r.workload.name));
        }
        if by_service.len() < 2 {
            continue;
        }
        let Some(object) = object_of(inventory, &db.object) else { continue };
        let parts: Vec<String> =
            by_service.iter().map(|(s, ws)| format!("{s} ({})", ws.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
        out.push(
            Finding::new(
                &CODE_SHARED_DATABASE,
                format!("{} {} is used by {} services: {}", db.engine_name(), db.object.name, by_service.len(), parts.join(", ")),
            )
            .on(object),
        );
    }
}

fn no_owner(inventory: &Inventory, audit: &Audit, out: &mut Vec<Finding>) {
    for db in audit.databases.iter().filter(|d| !audit.references.iter().any(|r| r.database == d.object)) {
        let Some(object) = object_of(inventory, &db.object) else { continue };
        out.push(
            Finding::new(
                &CODE_NO_OWNER,
                format!(
                    "no workload names {} {} (a Service in front of it in an environment variable, Secret or ConfigMap{}), so \
                     its owner is unknown",
                    db.engine_name(),
                    db.object.name,
                    if db.cnpg { ", or its credential Secret" } else { "" }
                ),
            )
            .on(object),
        );
    }
}

fn unresolved(inventory: &Inventory, audit: &Audit, out: &mut Vec<Finding>) {
    for u in &audit.unresolved {
        let Some(object) = object_of(inventory, &u.workload) else { continue };
        let message = match &u.host {
            Some(host) => format!("{} names the database host {host}, which matches no Service or database", u.via),
            None => format!(
                "{} names a database host that matches no Service or database (the host is part of the Secret's value and is not shown)",
                u.via
            ),
        };
        out.push(Finding::new(&CODE_UNRESOLVED_HOST, message).on(object));
    }
}

fn invalid(inventory: &Inventory, audit: &Audit, out: &mut Vec<Finding>) {
    let mut problems: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for e in &audit.rejected {
        problems.entry((&e.namespace, &e.name)).or_default().push(format!("{}: {}", e.path, e.message));
    }
    for u in &audit.model.unreadable_policies {
        problems.entry((&u.namespace, &u.name)).or_default().push(u.message.clone());
    }
    for ((ns, name), msgs) in problems {
        let Some(o) = inventory.get(&kinds::NETWORK_POLICY, Some(ns), name) else { continue };
        out.push(
            Finding::new(&CODE_INVALID_POLICY, format!("the API server would reject it ({}); it is left out of the reachability analysis", msgs.join("; ")))
                .on(o),
        );
    }
}

impl DbisoAnalyzer {
    fn exposure(&self, audit: &Audit, x: &Exposure, object: &Object, out: &mut Vec<Finding>) {
        let ns = x.database.namespace.as_deref().unwrap_or("default");
        let db = x.database.name.clone();
        let not_isolated = x.isolated_pods < x.pods;
        let because = if not_isolated { " (no NetworkPolicy isolates it, see DB3014)" } else { "" };
        match self.check {
            Check::NonOwner if !x.non_owners.is_empty() => {
                let names: Vec<String> = x
                    .non_owners
                    .iter()
                    .map(|s| match &s.from {
                        Endpoint::Workload(w) if s.ports != x.ports => format!("{} ({}){}", short(w, ns), ports_text(&s.ports), via(s)),
                        Endpoint::Workload(w) => format!("{}{}", short(w, ns), via(s)),
                        Endpoint::External(n) => n.to_string(),
                    })
                    .collect();
                out.push(
                    Finding::new(
                        &CODE_NON_OWNER_REACHABLE,
                        format!(
                            "{} of {db} is reachable by {} workload(s) that do not own it: {}{because}",
                            ports_text(&x.ports),
                            names.len(),
                            list(&names, 8)
                        ),
                    )
                    .on(object),
                );
            }
            Check::OtherNamespace if !x.other_namespaces.is_empty() => {
                // Probe pods, by namespace: whether only the one in the ambient mesh gets through
                // (then only pods in the mesh do, through the tunnel).
                let mut probes: BTreeMap<&str, bool> = BTreeMap::new();
                for s in &x.other_namespaces {
                    if let Endpoint::Workload(w) = &s.from
                        && Model::is_probe(w)
                    {
                        *probes.entry(w.namespace.as_str()).or_insert(true) &= s.hbone;
                    }
                }
                let anyone = |of: &str, only_mesh: bool| {
                    if only_mesh { format!("any pod of {of} in the ambient mesh{VIA_HBONE}") } else { format!("any pod of {of}") }
                };
                let mut names: Vec<String> = Vec::new();
                let any_namespace = probes.get(NEW_NAMESPACE).copied();
                if let Some(only_mesh) = any_namespace {
                    names.push(anyone("any other namespace", only_mesh));
                }
                for s in &x.other_namespaces {
                    let Endpoint::Workload(w) = &s.from else { continue };
                    if Model::is_probe(w) {
                        if any_namespace.is_none() && let Some(only_mesh) = probes.remove(w.namespace.as_str()) {
                            names.push(anyone(&format!("namespace {}", w.namespace), only_mesh));
                        }
                    } else {
                        names.push(format!("{w}{}", via(s)));
                    }
                }
                out.push(
                    Finding::new(
                        &CODE_OTHER_NAMESPACE_REACHABLE,
                        format!("{} of {db} is reachable from outside namespace {ns}: {}{because}", ports_text(&x.ports), list(&names, 8)),
                    )
                    .on(object),
                );
            }
            Check::External => {
                let (public, private): (Vec<&Source>, Vec<&Source>) =
                    x.external.iter().partition(|s| matches!(s.from, Endpoint::External(n) if !is_private(&n)));
                let cidrs = |v: &[&Source]| -> Vec<String> { v.iter().map(|s| s.from.to_string().trim_start_matches("External/").to_string()).collect() };
                if !public.is_empty() {
                    out.push(
                        Finding::new(
                            &CODE_PUBLIC_REACHABLE,
                            format!(
                                "{} of {db} is reachable from addresses outside the cluster, public ones included: {}{because}",
                                ports_text(&x.ports),
                                list(&cidrs(&public), 8)
                            ),
                        )
                        .on(object),
                    );
                }
                if !private.is_empty() {
                    out.push(
                        Finding::new(
                            &CODE_PRIVATE_REACHABLE,
                            format!(
                                "{} of {db} is reachable from private address ranges outside the cluster: {}",
                                ports_text(&x.ports),
                                list(&cidrs(&private), 8)
                            ),
                        )
                        .on(object),
                    );
                }
            }
            Check::NotIsolated if not_isolated => {
                let pods = if x.pods == 1 { "its pod".to_string() } else { format!("{} of its {} pods", x.pods - x.isolated_pods, x.pods) };
                out.push(
                    Finding::new(
                        &CODE_NOT_ISOLATED,
                        format!(
                            "no ingress NetworkPolicy selects {pods}, so every pod of every namespace (and every address routed to the pod \
                             network) reaches {} of {db}",
                            ports_text(&x.ports)
                        ),
                    )
                    .on(object),
                );
            }
            Check::OwnerBlocked => {
                for (owner, ports) in &x.owners_blocked {
                    let via: Vec<&str> = audit
                        .references
                        .iter()
                        .filter(|r| r.database == x.database && to_workload(&r.workload) == *owner)
                        .map(|r| r.via.as_str())
                        .collect();
                    out.push(
                        Finding::new(
                            &CODE_OWNER_BLOCKED,
                            format!(
                                "{} references {db} ({}) but NetworkPolicy blocks it on {}",
                                short(owner, ns),
                                via.join("; "),
                                ports_text(ports)
                            ),
                        )
                        .on(object),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Whether every address of `net` is private: RFC 1918, shared address space (RFC 6598),
/// loopback, link-local, and IPv6 unique-local, link-local and loopback.
pub fn is_private(net: &IpNet) -> bool {
    const RANGES: &[&str] =
        &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128"];
    RANGES.iter().filter_map(|r| r.parse::<IpNet>().ok()).any(|r| r.contains(net))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for p in ["10.0.0.0/8", "10.1.2.0/24", "192.168.1.1/32", "fd00::/8"] {
            assert!(is_private(&p.parse().unwrap()), "{p}");
        }
        for p in ["0.0.0.0/0", "8.8.8.8/32", "::/0", "10.0.0.0/7", "172.0.0.0/8"] {
            assert!(!is_private(&p.parse().unwrap()), "{p}");
        }
    }

    #[test]
    fn long_lists_are_cut() {
        let items: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
        assert_eq!(list(&items, 3), "1, 2, 3 and 2 more");
        assert_eq!(list(&items, 5), "1, 2, 3, 4, 5");
    }
}
