//! NetworkPolicies that would drop the mesh's own traffic.
//!
//! The mesh adds ports to every pod it captures, and NetworkPolicy is enforced outside the pod,
//! by the CNI, whatever the proxies do:
//!
//! * ambient: ztunnel tunnels inbound traffic to the pod over HBONE on TCP 15008. A policy that
//!   admits only the application ports drops it, unless some rule also admits 15008.
//! * sidecar: Prometheus scrapes the sidecar on TCP 15020 (merged metrics, the default) or 15090
//!   (Envoy's own). A policy that lets the monitoring namespace in on the application's metrics
//!   port only loses the mesh's telemetry.
//! * sidecar: the proxy fetches configuration and certificates from istiod on TCP 15012. A pod
//!   whose egress is isolated without a rule admitting that port to istiod's namespace never
//!   becomes ready.
//!
//! Health checks on 15021 are not checked: they come from the kubelet on the pod's own node,
//! which NetworkPolicy always admits.
//!
//! Every question is answered by the exact NetworkPolicy engine ([`meshmove_netpol`], the one
//! behind `kubectl dbiso reach`), on the engine's model of the input
//! ([`meshmove_netpol::view`]): policies add up, `policyTypes` default as the API server
//! defaults them, named ports resolve against the pod's containers (and the sidecar's
//! `http-envoy-prom` when one will be injected), `ipBlock`s and namespace selectors are
//! evaluated, not assumed. The sources a pod is checked against are the model's pods (one per
//! namespace and label set), a pod of a namespace the input does not show, and addresses outside
//! the cluster; monitoring and istiod stand in as one pod in their namespaces when the input has
//! none.

use std::collections::{BTreeMap, BTreeSet};

use meshmove_netpol::view::{self, ModelOptions};
use meshmove_netpol::{Connection, Direction, Engine, EngineOptions, NamespaceInfo, PodId, PodInfo, Protocol, Target};

use super::control_plane::istiods;
use super::{MeshMode, PrecheckOptions, Scope, join_and, workloads};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, kinds};
use crate::catalog::*;

// No NetworkPolicy in the input means none exists, which blocks nothing: nothing is required.
static REQUIRES: &[&Kind] = &[];
static USES: &[&Kind] = &[
    &kinds::NETWORK_POLICY,
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
    &kinds::NAMESPACE,
];

/// HBONE, telemetry and istiod ports against the NetworkPolicies of the migrated namespaces.
pub struct MeshPorts(pub PrecheckOptions);

/// The engine's HBONE port ([`meshmove_netpol::hbone`]).
const HBONE: u16 = meshmove_netpol::hbone::HBONE_PORT;
const MERGED_METRICS: u16 = 15020;
const ENVOY_METRICS: u16 = 15090;
const ISTIOD_XDS: u16 = 15012;

/// The container port the injected sidecar declares by name (NetworkPolicy may refer to it).
const SIDECAR_PROM_PORT: (&str, u16) = ("http-envoy-prom", ENVOY_METRICS);

const MONITORING_POD: &str = "(monitoring)";
const ISTIOD_POD: &str = "(istiod)";

/// Whether a connection admits anything at all.
fn admits_any(c: &Connection) -> bool {
    match c {
        Connection::All => true,
        Connection::Ports(p) => !p.is_empty(),
    }
}

/// Findings grouped by the policy to change: the policy, the workloads it affects, and a detail.
type ByPolicy<'a> = BTreeMap<String, (&'a Object, BTreeSet<String>, String)>;

/// The engine over the input, with monitoring and istiod pods added where the input has none,
/// and the sidecar's named metrics port on the pods that will get one.
struct Model {
    engine: Engine,
    monitoring: Vec<PodId>,
    istiod: Vec<PodId>,
}

fn model(inventory: &Inventory, options: &PrecheckOptions, sidecar_pods: &BTreeSet<meshmove_netpol::WorkloadRef>, istiod_ns: &[String]) -> Option<Model> {
    let mut m = view::build(inventory, ModelOptions { probes: true }).cluster;
    let ensure_ns = |m: &mut meshmove_netpol::ClusterModel, ns: &str| {
        if !m.namespaces.iter().any(|n| n.name == ns) {
            m.namespaces.push(NamespaceInfo::new(ns, BTreeMap::new()));
        }
    };
    for ns in &options.monitoring_namespaces {
        ensure_ns(&mut m, ns);
        m.pods.push(PodInfo::new(ns.clone(), MONITORING_POD));
    }
    if !m.pods.iter().any(|p| p.labels.get("app").is_some_and(|a| a == "istiod")) {
        for ns in istiod_ns {
            ensure_ns(&mut m, ns);
            m.pods.push(PodInfo::new(ns.clone(), ISTIOD_POD).with_labels([("app", "istiod")]));
        }
    }
    for p in m.pods.iter_mut().filter(|p| sidecar_pods.contains(&p.workload())) {
        *p = p.clone().with_port(Some(SIDECAR_PROM_PORT.0), SIDECAR_PROM_PORT.1, Protocol::Tcp);
    }
    let (engine, _) = Engine::build_lenient(&m, EngineOptions::default()).ok()?;
    let monitoring = engine.pods().filter(|(_, p)| p.name == MONITORING_POD).map(|(id, _)| id).collect();
    let istiod = engine.pods().filter(|(_, p)| p.name == ISTIOD_POD || p.labels.get("app").is_some_and(|a| a == "istiod")).map(|(id, _)| id).collect();
    Some(Model { engine, monitoring, istiod })
}

/// One source pod per (namespace, labels): pods alike are selected alike.
fn sources(engine: &Engine) -> Vec<PodId> {
    let mut seen: BTreeSet<(&str, &BTreeMap<String, String>)> = BTreeSet::new();
    engine.pods().filter(|(_, p)| seen.insert((p.namespace.as_str(), &p.labels))).map(|(id, _)| id).collect()
}

impl MeshPorts {
    /// The policies selecting `pod` for ingress that have ingress rules: the ones whose rules
    /// decide what gets in, and so the ones to change.
    fn admitting<'a>(inventory: &'a Inventory, engine: &Engine, pod: PodId) -> Vec<&'a Object> {
        Self::selecting(inventory, engine, pod, Direction::Ingress)
            .into_iter()
            .filter(|o| o.value.pointer("/spec/ingress").and_then(serde_json::Value::as_array).is_some_and(|r| !r.is_empty()))
            .collect()
    }

    /// The policies isolating `pod` in `direction`, as inventory objects.
    fn selecting<'a>(inventory: &'a Inventory, engine: &Engine, pod: PodId, direction: Direction) -> Vec<&'a Object> {
        engine
            .selecting_policies(pod, direction)
            .into_iter()
            .filter_map(|(ns, name)| {
                inventory.get(&kinds::NETWORK_POLICY, Some(&ns), &name).or_else(|| inventory.get(&kinds::NETWORK_POLICY, None, &name))
            })
            .collect()
    }
}

impl Analyzer for MeshPorts {
    fn name(&self) -> &'static str {
        "network-policies"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn uses(&self) -> &'static [&'static Kind] {
        USES
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        if inventory.of(&kinds::NETWORK_POLICY).next().is_none() {
            return;
        }
        let scope = Scope::new(&self.0, inventory);
        let mut istiod_ns: Vec<String> = istiods(inventory).filter_map(|d| d.namespace.clone()).collect();
        istiod_ns.sort();
        istiod_ns.dedup();
        if istiod_ns.is_empty() {
            istiod_ns.push("istio-system".to_string());
        }
        let in_scope: Vec<_> = workloads(inventory, &scope).into_iter().filter(|w| !w.host_network()).collect();
        let sidecar = |w: &super::Workload<'_>| self.0.mode == MeshMode::Sidecar && !w.opts_out_of_injection();
        let sidecar_pods = in_scope.iter().filter(|w| sidecar(w)).map(|w| view::workload_ref(w.object)).collect();
        let Some(Model { engine, monitoring, istiod }) = model(inventory, &self.0, &sidecar_pods, &istiod_ns) else { return };
        let all_sources = sources(&engine);
        let outside: ipnet::IpNet = "0.0.0.0/0".parse().unwrap_or_default();
        let mut hbone = ByPolicy::new();
        let mut telemetry = ByPolicy::new();
        for w in &in_scope {
            let me = view::workload_ref(w.object);
            let Some(pod) = engine.pods().find(|(_, p)| p.workload() == me).map(|(id, _)| id) else { continue };
            match self.0.mode {
                MeshMode::Ambient if engine.is_isolated(pod, Direction::Ingress) => {
                    // Every source admitted on some port must also be admitted on 15008: the
                    // connection arrives through the tunnel.
                    let lost: Vec<String> = all_sources
                        .iter()
                        .map(|&s| (engine.pod(s), engine.ingress(pod, Target::Pod(s))))
                        .filter(|(_, c)| admits_any(c) && !c.allows(Protocol::Tcp, HBONE))
                        .map(|(p, c)| format!("{}/{} on {c}", p.namespace, p.name))
                        .chain({
                            let c = engine.ingress(pod, Target::External(outside));
                            (admits_any(&c) && !c.allows(Protocol::Tcp, HBONE)).then(|| format!("addresses outside the cluster on {c}"))
                        })
                        .collect();
                    if !lost.is_empty() {
                        for p in Self::admitting(inventory, &engine, pod) {
                            let detail = format!("it admits {} but not TCP {HBONE}", join_and(&lost.iter().take(3).cloned().collect::<Vec<_>>()));
                            hbone.entry(p.object_ref().to_string()).or_insert_with(|| (p, BTreeSet::new(), detail)).1.insert(w.display());
                        }
                    }
                }
                MeshMode::Sidecar if sidecar(w) => {
                    // Prometheus runs in one of the monitoring namespaces: a pod loses its mesh
                    // telemetry when they are let in on something, but none on 15020 or 15090.
                    let admitted: Vec<Connection> =
                        monitoring.iter().map(|&m| engine.ingress(pod, Target::Pod(m))).filter(admits_any).collect();
                    let scraped = admitted
                        .iter()
                        .any(|c| c.allows(Protocol::Tcp, MERGED_METRICS) || c.allows(Protocol::Tcp, ENVOY_METRICS));
                    if !admitted.is_empty() && !scraped {
                        let shown: Vec<String> = admitted.iter().map(ToString::to_string).collect();
                        for p in Self::admitting(inventory, &engine, pod) {
                            let detail = format!(
                                "it admits the monitoring namespaces ({}) only on {}",
                                join_and(&self.0.monitoring_namespaces),
                                join_and(&shown)
                            );
                            telemetry.entry(p.object_ref().to_string()).or_insert_with(|| (p, BTreeSet::new(), detail)).1.insert(w.display());
                        }
                    }
                    if engine.is_isolated(pod, Direction::Egress)
                        && !istiod.iter().any(|&i| engine.egress(pod, Target::Pod(i)).allows(Protocol::Tcp, ISTIOD_XDS))
                    {
                        let names: Vec<String> = Self::selecting(inventory, &engine, pod, Direction::Egress)
                            .iter()
                            .map(|o| o.object_ref().to_string())
                            .collect();
                        out.push(
                            Finding::new(
                                &CODE_NETPOL_BLOCKS_ISTIOD,
                                format!(
                                    "egress is isolated by {} and no rule admits TCP {ISTIOD_XDS} to istiod in namespace {}: the \
                                     sidecar cannot reach istiod for its configuration and certificate, so the pods never become ready",
                                    join_and(&names),
                                    join_and(&istiod_ns)
                                ),
                            )
                            .on(w.object),
                        );
                    }
                }
                _ => {}
            }
        }
        for (object, workloads, detail) in hbone.into_values() {
            let names: Vec<String> = workloads.into_iter().collect();
            out.push(
                Finding::new(
                    &CODE_NETPOL_BLOCKS_HBONE,
                    format!(
                        "selects {}; {detail}, and no NetworkPolicy selecting these pods admits it from there: ambient \
                         traffic arrives over HBONE (TCP {HBONE}) and will be dropped",
                        join_and(&names)
                    ),
                )
                .on(object),
            );
        }
        for (object, workloads, detail) in telemetry.into_values() {
            let names: Vec<String> = workloads.into_iter().collect();
            out.push(
                Finding::new(
                    &CODE_NETPOL_BLOCKS_TELEMETRY,
                    format!(
                        "selects {}; {detail}: the sidecar serves metrics on TCP {MERGED_METRICS} (merged) and \
                         {ENVOY_METRICS} (Envoy), which no NetworkPolicy selecting these pods admits from there",
                        join_and(&names)
                    ),
                )
                .on(object),
            );
        }
    }
}
