//! `mtls strict`: require mutual TLS in a namespace, only when nothing would break, and only with a
//! write that provably takes effect.
//!
//! The write is the namespace-wide PeerAuthentication Istio applies, set to `STRICT`: `default`
//! (created, or updated in place), unless the namespace already has an older namespace-wide
//! policy under another name. Istio applies only the oldest of those
//! ([`meshmove_istio::peer_authentication`]), so a new `default` next to it would change nothing;
//! the plan then sets `spec.mtls.mode` of that older policy instead (a field change the journal
//! records and rollback restores) and says so.
//!
//! Before anything is written, [`prove`] computes every workload port's effective mode with and
//! without the write ([`PeerAuthentications::changes`]): each port whose mode is decided above the
//! workload level must become `STRICT`, nothing may be lowered, and the namespace-wide mode must be
//! `STRICT`. Ports a workload-level policy or a `portLevelMtls` entry keeps lower are listed, not
//! claimed.
//!
//! Under `STRICT` a meshed pod accepts only mutual TLS on the ports that get `STRICT`. Two things
//! then break, and the readiness check looks for both:
//!
//! * a pod of the namespace without the proxy (it cannot speak mTLS itself: with sidecars, a
//!   workload not restarted or opted out; in ambient mode, a pod ztunnel has not captured: one
//!   opted out, or one the CNI node agent has not annotated `ambient.istio.io/redirection:
//!   enabled`);
//! * a client outside the mesh that still talks plaintext to the namespace: a pod of another
//!   namespace that is neither meshed nor selected for the mesh by its labels (Istio's injection
//!   and ambient rules, [`meshmove_istio::dataplane`]), and that NetworkPolicy lets reach a port
//!   of this namespace's pods that would be `STRICT` (decided by the exact engine in
//!   [`meshmove_netpol`]; without policies every pod can reach every other). Workloads that have
//!   no pod yet are judged by their template. Each blocker names the workload ports it reaches.
//!
//! The control plane and system namespaces (`kube-system`, `kube-public`, `kube-node-lease`,
//! `istio-system`) are not counted as clients.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::peer_auth::{self, ANY_PORT, PortMode, WorkloadTargets, port_words};
use super::{MigrateError, PEER_AUTHENTICATION, STEP_MTLS, ambient_captured, has_proxy, labels_of, namespace_object, selected_dataplane};
use meshmove_istio::{Dataplane, Level, Mode, MtlsSource, PeerAuthentication, PeerAuthentications, Target as MtlsTarget};
use meshmove_kube::plan::{Change, MANAGED_BY, Plan, Target};
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_model::workload::{WORKLOAD_KINDS, Workload, pod_owner};
use meshmove_netpol::view::{self as model, ModelOptions};
use meshmove_netpol::{Connection, Engine, EngineOptions, PodInfo, Protocol};

/// Namespaces never counted as plaintext clients.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease", "istio-system"];

/// What would break under `STRICT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Blocker {
    /// A pod of the namespace without the proxy.
    UnmeshedPod { workload: String, pod: String },
    /// An unmeshed workload of another namespace that can reach ports of this one that would be
    /// `STRICT` (`Deployment/api port 8080`, or `... other ports`).
    PlaintextClient { client: String, reaches: Vec<String> },
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::UnmeshedPod { workload, pod } => write!(f, "{workload}: pod {pod} has no Istio proxy and could not accept mTLS"),
            Blocker::PlaintextClient { client, reaches } => {
                write!(f, "{client} is outside the mesh and can reach {}, which would be STRICT: its plaintext requests would be refused", reaches.join(", "))
            }
        }
    }
}

/// The result of the readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub blockers: Vec<Blocker>,
    /// What the check could not see (e.g. policies it could not read).
    pub notes: Vec<String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.blockers.is_empty()
    }
}

/// The `mtls strict` step for a namespace: the plan, what it changes and what would break.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Strict {
    #[serde(skip)]
    pub plan: Plan,
    /// The namespace-wide PeerAuthentication set to `STRICT` (`namespace/name`).
    pub policy: String,
    /// Why the plan updates an older policy instead of writing `default`, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instead_of_default: Option<String>,
    /// Every workload port: its mode before and after, proven with `changes()`.
    pub ports: Vec<PortMode>,
    #[serde(flatten)]
    pub readiness: Readiness,
}

impl Strict {
    /// The ports the write raises to `STRICT`.
    pub fn raised(&self) -> impl Iterator<Item = &PortMode> {
        self.ports.iter().filter(|p| p.before != p.after)
    }

    /// The ports that stay below `STRICT` (a workload-level policy or `portLevelMtls` decides).
    pub fn kept_lower(&self) -> impl Iterator<Item = &PortMode> {
        self.ports.iter().filter(|p| p.after != Mode::Strict.as_str())
    }
}

/// Whether a live pod carries the data plane: its own proxy, or ztunnel's capture (the CNI node
/// agent's annotation).
fn pod_meshed(pod: &Value) -> bool {
    has_proxy(pod) || ambient_captured(pod)
}

/// Whether a client without a live pod (a workload judged by its template) will be on the mesh:
/// the data plane Istio selects for its template in its namespace.
fn template_meshed(inventory: &Inventory, info: &PodInfo) -> bool {
    let labels = namespace_object(inventory, &info.namespace).map(labels_of).unwrap_or_default();
    let w = info.workload();
    let template = WORKLOAD_KINDS
        .iter()
        .filter(|k| k.kind == w.kind.as_str())
        .find_map(|k| inventory.get(k, Some(&w.namespace), &w.name))
        .and_then(Workload::of)
        .map(|w| w.template.clone())
        .unwrap_or_else(|| json!({"metadata": {"labels": info.labels}, "spec": {"hostNetwork": info.host_network}}));
    !matches!(selected_dataplane(&info.namespace, &labels, &template), Dataplane::None)
}

/// Whether `conn` admits TCP to a port outside `known`.
fn reaches_other_ports(conn: &Connection, known: &BTreeSet<u16>) -> bool {
    match conn {
        Connection::All => true,
        Connection::Ports(set) => set.ranges().iter().filter(|r| r.protocol == Protocol::Tcp).any(|r| {
            let width = usize::from(r.end - r.start) + 1;
            width > known.iter().filter(|p| (r.start..=r.end).contains(*p)).count()
        }),
    }
}

/// Check what `STRICT` under `after` (the policies once the write is applied) would break in
/// `namespace`. The inventory should hold Pods, Namespaces, NetworkPolicies, Services and
/// workloads of every namespace (clients live elsewhere).
pub fn readiness(inventory: &Inventory, namespace: &str, after: &PeerAuthentications) -> Readiness {
    let mut r = Readiness::default();
    for pod in inventory.of(&kinds::POD).filter(|p| p.namespace.as_deref() == Some(namespace)) {
        if matches!(pod.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
            continue;
        }
        if !pod_meshed(&pod.value) {
            let workload = pod_owner(inventory, pod).map_or_else(|| format!("Pod/{namespace}/{}", pod.name), |o| format!("{}/{namespace}/{}", o.kind, o.name));
            r.blockers.push(Blocker::UnmeshedPod { workload, pod: pod.name.clone() });
        }
    }

    let m = model::build(inventory, ModelOptions::default());
    for u in &m.unreadable_policies {
        r.notes.push(format!("NetworkPolicy {}/{} could not be read ({}); it was left out", u.namespace, u.name, u.message));
    }
    let engine = match Engine::build_lenient(&m.cluster, EngineOptions::default()) {
        Ok((engine, rejected)) => {
            for p in rejected {
                r.notes.push(format!("a NetworkPolicy was left out: {p}"));
            }
            engine
        }
        Err(e) => {
            r.notes.push(format!("reachability not checked: {e}"));
            return r;
        }
    };
    // Each destination pod's ports that would be STRICT, and whether its other ports would be.
    let services = peer_auth::services(inventory, namespace);
    let dsts: Vec<_> = engine
        .pods()
        .filter(|(_, p)| p.namespace == namespace)
        .map(|(id, p)| {
            let known = peer_auth::pod_ports(p, &services, after);
            let strict = |port: u16| after.effective(namespace, &p.labels, port).mode == Mode::Strict;
            let strict_ports: Vec<u16> = known.iter().copied().filter(|port| *port != ANY_PORT && strict(*port)).collect();
            let other_strict = strict(ANY_PORT);
            (id, p.workload(), known, strict_ports, other_strict)
        })
        .collect();
    let mut clients: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (src, info) in engine.pods() {
        if info.namespace == namespace || SYSTEM_NAMESPACES.contains(&info.namespace.as_str()) {
            continue;
        }
        // A live pod is judged by what it carries, a template by what Istio would select for it.
        let meshed = match inventory.get(&kinds::POD, Some(&info.namespace), &info.name) {
            Some(p) => pod_meshed(&p.value),
            None => template_meshed(inventory, info),
        };
        if meshed {
            continue;
        }
        for (dst, dst_workload, known, strict_ports, other_strict) in &dsts {
            let conn = engine.allowed(src, *dst);
            if conn.is_none() {
                continue;
            }
            let name = format!("{}/{}", dst_workload.kind.as_str(), dst_workload.name);
            let mut reached: Vec<String> =
                strict_ports.iter().filter(|p| conn.allows(Protocol::Tcp, **p)).map(|p| format!("{name} {}", port_words(*p))).collect();
            if *other_strict && reaches_other_ports(&conn, known) {
                reached.push(format!("{name} {}", port_words(ANY_PORT)));
            }
            let w = info.workload();
            let list = clients.entry(format!("{}/{}/{}", w.kind.as_str(), w.namespace, w.name)).or_default();
            for x in reached {
                if !list.contains(&x) {
                    list.push(x);
                }
            }
        }
    }
    for (client, reaches) in clients.into_iter().filter(|(_, r)| !r.is_empty()) {
        r.blockers.push(Blocker::PlaintextClient { client, reaches });
    }
    r
}

/// Proves that setting `proposed` (a namespace-wide policy with mode `STRICT`) over `before`
/// takes effect on `targets`: every port whose mode is decided above the workload level becomes
/// `STRICT`, no port is lowered, and the namespace-wide mode is `STRICT`. Returns the changes
/// ([`PeerAuthentications::changes`]), or what would not be `STRICT` and why.
pub fn prove(before: &PeerAuthentications, proposed: &PeerAuthentication, targets: &[MtlsTarget]) -> Result<Vec<meshmove_istio::Change>, String> {
    let namespace = proposed.policy.namespace.as_str();
    let after = before.apply(proposed.clone());
    let changes = before.changes(proposed.clone(), targets);
    let mut problems = Vec::new();
    if let Some(c) = changes.iter().find(|c| !c.raised() || c.after.mode != Mode::Strict) {
        problems.push(format!("it would change {} of a workload to {} rather than STRICT", port_words(c.target.port), c.after.mode));
    }
    let ns_after = after.namespace_mode(namespace);
    if ns_after.mode != Mode::Strict {
        problems.push(format!("the namespace-wide mode would stay {} ({})", ns_after.mode, peer_auth::decided_by(&ns_after)));
    }
    for t in targets {
        let b = before.effective(&t.namespace, &t.labels, t.port);
        let above_workload = !matches!(b.from, MtlsSource::Policy { level: Level::Workload, .. });
        let a = after.effective(&t.namespace, &t.labels, t.port);
        if above_workload && a.mode != Mode::Strict {
            problems.push(format!("{} of pods labelled {:?} would stay {} ({})", port_words(t.port), t.labels, a.mode, peer_auth::decided_by(&a)));
        }
    }
    match problems.is_empty() {
        true => Ok(changes),
        false => Err(format!("writing PeerAuthentication {} with mode STRICT would not take effect: {}", proposed.policy, problems.join("; "))),
    }
}

/// The `mtls strict` step for `namespace`: which policy to set, the plan, every workload port's
/// mode before and after (proven with [`prove`]), and what `STRICT` would break. The inventory
/// must hold the PeerAuthentications of every namespace.
pub fn strict(inventory: &Inventory, namespace: &str) -> Result<Strict, MigrateError> {
    strict_in(inventory, namespace, peer_auth::root_namespace(inventory, None))
}

/// [`strict`] with the mesh root namespace given (or why it is unknown: then nothing is switched).
pub fn strict_in(inventory: &Inventory, namespace: &str, root: Result<peer_auth::RootNamespace, peer_auth::PeerAuthError>) -> Result<Strict, MigrateError> {
    let refuse = |message: String| MigrateError::PeerAuthentication { namespace: namespace.to_string(), message };
    let before = peer_auth::policies_in(inventory, root).map_err(|e| refuse(e.to_string()))?;
    if namespace == before.root_namespace() {
        return Err(refuse(format!("{namespace} is the mesh root namespace: a namespace-wide PeerAuthentication there applies to the whole mesh")));
    }
    // The namespace-wide policy Istio applies: the oldest selector-less one of the namespace.
    let ns_now = before.namespace_mode(namespace);
    let (proposed, change, instead_of_default) = match &ns_now.from {
        MtlsSource::Policy { policy, level: Level::Namespace } if policy.name != PEER_AUTHENTICATION => {
            let existing = before.policies().iter().find(|p| p.policy == *policy).expect("a policy of the set");
            let why = format!(
                "PeerAuthentication {policy} is the oldest namespace-wide policy of {namespace}, which is the one Istio applies                  (a new `{PEER_AUTHENTICATION}` next to it would change nothing): its spec.mtls.mode is set to STRICT instead"
            );
            let target = Target::new("security.istio.io/v1", "PeerAuthentication", Some(namespace), &policy.name);
            let change = Change::Set { target, fields: [("/spec/mtls/mode".to_string(), Some(json!("STRICT")))].into() };
            (PeerAuthentication { mode: Some(Mode::Strict), ..existing.clone() }, change, Some(why))
        }
        _ => {
            let proposed = peer_auth::proposed(&before, namespace, PEER_AUTHENTICATION, Mode::Strict);
            let change = Change::Apply {
                object: json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                               "metadata": {"name": PEER_AUTHENTICATION, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                               "spec": {"mtls": {"mode": "STRICT"}}}),
            };
            (proposed, change, None)
        }
    };
    let workloads: Vec<WorkloadTargets> = peer_auth::workload_targets(inventory, namespace, &before);
    prove(&before, &proposed, &peer_auth::all_targets(&workloads)).map_err(refuse)?;
    let after = before.apply(proposed.clone());
    let mut plan = Plan::new(STEP_MTLS, namespace);
    plan.push(change);
    Ok(Strict {
        plan,
        policy: proposed.policy.to_string(),
        instead_of_default,
        ports: peer_auth::port_modes(&workloads, &before, &after),
        readiness: readiness(inventory, namespace, &after),
    })
}
