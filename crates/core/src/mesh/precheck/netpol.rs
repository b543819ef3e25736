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
//! Policies are additive, so each pod is judged on the union of the policies selecting it. Only
//! definite blocks are reported: a rule whose peers cannot be evaluated offline (an `ipBlock`, a
//! pod selector inside a namespace selector) is assumed to admit the traffic.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};

use super::control_plane::istiods;
use super::{MeshMode, PrecheckOptions, Scope, Workload, join_and, namespace_labels, selector, workloads};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, kinds};
use crate::mesh::catalog::*;

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

const HBONE: i32 = 15008;
const MERGED_METRICS: i32 = 15020;
const ENVOY_METRICS: i32 = 15090;
const ISTIOD_XDS: i32 = 15012;

/// Container ports the injected sidecar declares by name (NetworkPolicy may refer to them).
const SIDECAR_NAMED_PORTS: &[(&str, i32)] = &[("http-envoy-prom", ENVOY_METRICS)];

struct Rule {
    peers: Vec<NetworkPolicyPeer>,
    ports: Vec<NetworkPolicyPort>,
}

struct Policy<'a> {
    object: &'a Object,
    selector: Selector,
    /// Ingress rules when the policy isolates ingress.
    ingress: Option<Vec<Rule>>,
    /// Egress rules when the policy isolates egress.
    egress: Option<Vec<Rule>>,
}

fn rules<R>(rules: Option<Vec<R>>, split: impl Fn(R) -> Rule) -> Vec<Rule> {
    rules.into_iter().flatten().map(split).collect()
}

fn policy(o: &Object) -> Option<Policy<'_>> {
    let np = o.typed::<NetworkPolicy>().ok()?;
    let spec = np.spec.unwrap_or_default();
    let selector = selector(&spec.pod_selector.unwrap_or_default())?;
    let types = spec.policy_types;
    let isolates = |t: &str, has_rules: bool| types.as_ref().map_or(has_rules, |ts| ts.iter().any(|x| x == t));
    let ingress_isolated = isolates("Ingress", true);
    let egress_isolated = isolates("Egress", spec.egress.is_some());
    let ingress =
        rules(spec.ingress, |r| Rule { peers: r.from.unwrap_or_default(), ports: r.ports.unwrap_or_default() });
    let egress = rules(spec.egress, |r| Rule { peers: r.to.unwrap_or_default(), ports: r.ports.unwrap_or_default() });
    Some(Policy {
        object: o,
        selector,
        ingress: ingress_isolated.then_some(ingress),
        egress: egress_isolated.then_some(egress),
    })
}

/// Whether a rule's ports admit TCP `port` (named ports resolved against `named`).
fn ports_admit(ports: &[NetworkPolicyPort], port: i32, named: &[(String, i32)]) -> bool {
    ports.is_empty()
        || ports.iter().any(|p| {
            p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                && match &p.port {
                    None => true,
                    Some(IntOrString::Int(n)) => *n == port || p.end_port.is_some_and(|end| *n <= port && port <= end),
                    Some(IntOrString::String(name)) => named.iter().any(|(k, v)| k == name && *v == port),
                }
        })
}

/// Whether a rule's peers may admit traffic from or to namespace `ns` (see the module docs).
fn peers_admit(peers: &[NetworkPolicyPeer], policy_ns: &str, ns: &str, inventory: &Inventory) -> bool {
    peers.is_empty()
        || peers.iter().any(|peer| {
            if peer.ip_block.is_some() {
                return true;
            }
            match &peer.namespace_selector {
                Some(sel) => selector(sel).is_some_and(|s| s.matches(&namespace_labels(inventory, ns))),
                None => ns == policy_ns,
            }
        })
}

fn describe_ports(ports: &[NetworkPolicyPort]) -> String {
    if ports.is_empty() {
        return "all ports".to_string();
    }
    let shown: Vec<String> = ports
        .iter()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match (&p.port, p.end_port) {
                (None, _) => format!("all {proto} ports"),
                (Some(IntOrString::Int(n)), Some(end)) => format!("{proto} {n}-{end}"),
                (Some(IntOrString::Int(n)), None) => format!("{proto} {n}"),
                (Some(IntOrString::String(name)), _) => format!("{proto} `{name}`"),
            }
        })
        .collect();
    join_and(&shown)
}

/// Named container ports of a pod template, plus the sidecar's when it will be injected.
fn named_ports(w: &Workload<'_>, with_sidecar: bool) -> Vec<(String, i32)> {
    let mut named: Vec<(String, i32)> = w
        .spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| Some((p.name.clone()?, p.container_port)))
        .collect();
    if with_sidecar {
        named.extend(SIDECAR_NAMED_PORTS.iter().map(|(n, p)| (n.to_string(), *p)));
    }
    named
}

/// Findings grouped by the policy to change: the policy, then the workloads it affects.
type ByPolicy<'a> = BTreeMap<String, (&'a Object, BTreeSet<String>, String)>;

impl MeshPorts {
    fn hbone<'a>(&self, w: &Workload<'_>, selecting: &[&Policy<'a>], by_policy: &mut ByPolicy<'a>) {
        let isolating: Vec<&Policy<'a>> = selecting.iter().copied().filter(|p| p.ingress.is_some()).collect();
        let rules: Vec<&Rule> = isolating.iter().flat_map(|p| p.ingress.iter().flatten()).collect();
        let named = named_ports(w, false);
        // A pod that admits nothing loses nothing; one whose rules admit 15008 is fine.
        if rules.is_empty() || rules.iter().any(|r| ports_admit(&r.ports, HBONE, &named)) {
            return;
        }
        for p in isolating.iter().filter(|p| p.ingress.as_ref().is_some_and(|r| !r.is_empty())) {
            let admitted: Vec<String> = p.ingress.iter().flatten().map(|r| describe_ports(&r.ports)).collect();
            let entry = by_policy.entry(p.object.object_ref().to_string()).or_insert_with(|| {
                (p.object, BTreeSet::new(), format!("its ingress rules admit only {}", join_and(&admitted)))
            });
            entry.1.insert(w.display());
        }
    }

    fn telemetry<'a>(
        &self,
        w: &Workload<'_>,
        selecting: &[&Policy<'a>],
        inventory: &Inventory,
        by_policy: &mut ByPolicy<'a>,
    ) {
        let isolating: Vec<&Policy<'a>> = selecting.iter().copied().filter(|p| p.ingress.is_some()).collect();
        let named = named_ports(w, true);
        let monitoring = &self.0.monitoring_namespaces;
        let from_monitoring = |p: &Policy<'_>, r: &Rule| {
            let policy_ns = p.object.namespace.as_deref().unwrap_or_default();
            monitoring.iter().any(|m| peers_admit(&r.peers, policy_ns, m, inventory))
        };
        let mut scraping_rules = Vec::new();
        for p in &isolating {
            for r in p.ingress.iter().flatten().filter(|r| from_monitoring(p, r)) {
                scraping_rules.push((*p, r));
            }
        }
        // No rule lets monitoring in at all: nothing was scraped before either.
        if scraping_rules.is_empty()
            || scraping_rules.iter().any(|(_, r)| {
                ports_admit(&r.ports, MERGED_METRICS, &named) || ports_admit(&r.ports, ENVOY_METRICS, &named)
            })
        {
            return;
        }
        for (p, _) in &scraping_rules {
            let admitted: Vec<String> = scraping_rules
                .iter()
                .filter(|(q, _)| std::ptr::eq(*q, *p))
                .map(|(_, r)| describe_ports(&r.ports))
                .collect();
            let entry = by_policy.entry(p.object.object_ref().to_string()).or_insert_with(|| {
                (
                    p.object,
                    BTreeSet::new(),
                    format!(
                        "it admits the monitoring namespaces ({}) only on {}",
                        join_and(monitoring),
                        join_and(&admitted)
                    ),
                )
            });
            entry.1.insert(w.display());
        }
    }

    fn istiod_egress(
        &self,
        w: &Workload<'_>,
        selecting: &[&Policy<'_>],
        istiod_ns: &[String],
        inventory: &Inventory,
        out: &mut Vec<Finding>,
    ) {
        let isolating: Vec<&Policy<'_>> = selecting.iter().copied().filter(|p| p.egress.is_some()).collect();
        if isolating.is_empty() {
            return;
        }
        let admits = isolating.iter().any(|p| {
            let policy_ns = p.object.namespace.as_deref().unwrap_or_default();
            p.egress.iter().flatten().any(|r| {
                ports_admit(&r.ports, ISTIOD_XDS, &[])
                    && istiod_ns.iter().any(|ns| peers_admit(&r.peers, policy_ns, ns, inventory))
            })
        });
        if admits {
            return;
        }
        let names: Vec<String> = isolating.iter().map(|p| p.object.object_ref().to_string()).collect();
        out.push(
            Finding::new(
                &CODE_NETPOL_BLOCKS_ISTIOD,
                format!(
                    "egress is isolated by {} and no rule admits TCP {ISTIOD_XDS} to namespace {}: the sidecar cannot \
                     reach istiod for its configuration and certificate, so the pods never become ready",
                    join_and(&names),
                    join_and(istiod_ns)
                ),
            )
            .on(w.object),
        );
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
        let scope = Scope::new(&self.0, inventory);
        let mut policies: BTreeMap<Option<&str>, Vec<Policy<'_>>> = BTreeMap::new();
        for p in inventory.of(&kinds::NETWORK_POLICY).filter_map(policy) {
            policies.entry(p.object.namespace.as_deref()).or_default().push(p);
        }
        let mut istiod_ns: Vec<String> = istiods(inventory).filter_map(|d| d.namespace.clone()).collect();
        istiod_ns.sort();
        istiod_ns.dedup();
        if istiod_ns.is_empty() {
            istiod_ns.push("istio-system".to_string());
        }
        let mut hbone = ByPolicy::new();
        let mut telemetry = ByPolicy::new();
        for w in workloads(inventory, &scope) {
            if w.host_network() {
                continue;
            }
            let labels = w.labels();
            let selecting: Vec<&Policy<'_>> = policies
                .get(&w.object.namespace.as_deref())
                .into_iter()
                .flatten()
                .filter(|p| p.selector.matches(&labels))
                .collect();
            if selecting.is_empty() {
                continue;
            }
            match self.0.mode {
                MeshMode::Ambient => self.hbone(&w, &selecting, &mut hbone),
                MeshMode::Sidecar if !w.opts_out_of_injection() => {
                    self.telemetry(&w, &selecting, inventory, &mut telemetry);
                    self.istiod_egress(&w, &selecting, &istiod_ns, inventory, out);
                }
                MeshMode::Sidecar => {}
            }
        }
        for (object, workloads, detail) in hbone.into_values() {
            let names: Vec<String> = workloads.into_iter().collect();
            out.push(
                Finding::new(
                    &CODE_NETPOL_BLOCKS_HBONE,
                    format!(
                        "selects {}; {detail}, and no NetworkPolicy selecting these pods admits TCP {HBONE}: ambient \
                         traffic arrives over HBONE on that port and will be dropped",
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
