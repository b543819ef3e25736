//! Will the sidecars fit? (sidecar mode)
//!
//! Every injected pod requests the proxy's CPU and memory on top of its own, and the scheduler
//! must find room for the restarted pods. The demand is the proxy request (the pod's
//! `sidecar.istio.io/proxyCPU`/`proxyMemory` annotation, else the configured default) summed over
//! the running Pods of the migrated namespaces that would get one: not finished, not on the host
//! network, not opted out, not already injected. The supply is, over the Nodes that accept
//! ordinary pods (ready, not cordoned, no `NoSchedule`/`NoExecute` taint), allocatable minus the
//! requests of the Pods bound to them, computed the way the scheduler does (containers plus
//! restartable init containers, or the largest init container, plus pod overhead).
//!
//! The comparison is of totals, so it is a necessary condition: passing it does not promise that
//! every pod fits on some node, but failing it proves that some will not. Pods and Nodes are only
//! in a live inventory (or a dump of one), so rendered charts skip this check.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::control_plane::listed_only_in;
use super::{PrecheckOptions, Scope, join_and};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, kinds};
use crate::catalog::*;

static REQUIRES: &[&Kind] = &[&kinds::NODE, &kinds::POD];
use crate::quantity::{self, Bytes, Millis};

/// Proxy requests of the pods to inject against the free allocatable of schedulable nodes.
pub struct Capacity(pub PrecheckOptions);

/// CPU in millicores and memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Resources {
    cpu: u64,
    memory: u64,
}

impl Resources {
    fn add(self, o: Resources) -> Resources {
        Resources { cpu: self.cpu.saturating_add(o.cpu), memory: self.memory.saturating_add(o.memory) }
    }

    fn max(self, o: Resources) -> Resources {
        Resources { cpu: self.cpu.max(o.cpu), memory: self.memory.max(o.memory) }
    }

    fn from_map(map: Option<&BTreeMap<String, K8sQuantity>>) -> Resources {
        let get = |key: &str, parse: fn(&str) -> Result<u64, quantity::QuantityError>| {
            map.and_then(|m| m.get(key)).and_then(|q| parse(&q.0).ok()).unwrap_or(0)
        };
        Resources { cpu: get("cpu", quantity::cpu_millis), memory: get("memory", quantity::bytes) }
    }
}

fn container_requests(c: &Container) -> Resources {
    // Requests default to limits when only limits are set (the API server fills them in).
    let r = c.resources.as_ref();
    let requests = Resources::from_map(r.and_then(|r| r.requests.as_ref()));
    let limits = Resources::from_map(r.and_then(|r| r.limits.as_ref()));
    let has = |key: &str| r.and_then(|r| r.requests.as_ref()).is_some_and(|m| m.contains_key(key));
    Resources {
        cpu: if has("cpu") { requests.cpu } else { limits.cpu },
        memory: if has("memory") { requests.memory } else { limits.memory },
    }
}

/// What the scheduler reserves for a pod.
fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = &pod.spec else { return Resources::default() };
    let mut restartable = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        if c.restart_policy.as_deref() == Some("Always") {
            restartable = restartable.add(container_requests(c));
        } else {
            init_peak = init_peak.max(container_requests(c).add(restartable));
        }
    }
    let main = spec.containers.iter().map(container_requests).fold(Resources::default(), Resources::add);
    main.add(restartable).max(init_peak).add(Resources::from_map(spec.overhead.as_ref()))
}

/// What one pod of a workload's `template` (`spec.template`) requests (CPU millicores, memory
/// bytes) as the scheduler and a ResourceQuota count it, with the sidecar the injector would add
/// when `sidecar` and the template does not opt out (its annotations, else the injector's
/// defaults in `options`).
pub(crate) fn template_requests(template: &serde_json::Value, sidecar: bool, options: &PrecheckOptions) -> (u64, u64) {
    let pod = Pod {
        metadata: serde_json::from_value(template.get("metadata").cloned().unwrap_or_default()).unwrap_or_default(),
        spec: template.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()),
        status: None,
    };
    let own = pod_requests(&pod);
    let opted_out = |k: &str| {
        pod.metadata.labels.as_ref().and_then(|m| m.get(k)).or_else(|| pod.metadata.annotations.as_ref().and_then(|m| m.get(k))).map(String::as_str)
            == Some("false")
    };
    if !sidecar || opted_out("sidecar.istio.io/inject") {
        return (own.cpu, own.memory);
    }
    let defaults = super::sidecar::ProxyRequests { cpu_millis: options.proxy_cpu_millis, memory_bytes: options.proxy_memory_bytes, source: String::new() };
    let (cpu, memory) = super::sidecar::for_pod(pod.metadata.annotations.as_ref(), &defaults);
    (own.cpu.saturating_add(cpu), own.memory.saturating_add(memory))
}

fn finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

fn schedulable(node: &Node) -> bool {
    let spec = node.spec.clone().unwrap_or_default();
    let cordoned = spec.unschedulable == Some(true);
    let tainted = spec.taints.iter().flatten().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
    let not_ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status != "True");
    !(cordoned || tainted || not_ready)
}

impl Capacity {
    /// The proxy request one pod would add, or `None` when it would get no proxy.
    fn proxy_for(&self, pod: &Pod, defaults: &super::sidecar::ProxyRequests) -> Option<Resources> {
        let meta = &pod.metadata;
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|m| m.get(k)).map(String::as_str);
        let spec = pod.spec.as_ref()?;
        let declines = super::injector_declines(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            meta.labels.clone().unwrap_or_default(),
            meta.annotations.clone().unwrap_or_default(),
            spec.host_network == Some(true),
        );
        let injected = annotation("sidecar.istio.io/status").is_some()
            || spec.containers.iter().chain(spec.init_containers.iter().flatten()).any(|c| c.name == "istio-proxy");
        if finished(pod) || declines || injected {
            return None;
        }
        let (cpu, memory) = super::sidecar::for_pod(meta.annotations.as_ref(), defaults);
        Some(Resources { cpu, memory })
    }
}

impl Analyzer for Capacity {
    fn name(&self) -> &'static str {
        "capacity"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn cluster_wide(&self) -> &'static [&'static Kind] {
        CLUSTER_WIDE
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        let pods: Vec<(Option<&str>, Pod)> =
            inventory.of(&kinds::POD).filter_map(|o| Some((o.namespace.as_deref(), o.typed::<Pod>().ok()?))).collect();

        let defaults = super::sidecar::injector_defaults(inventory, &self.0);
        let mut demand = Resources::default();
        let mut injected = 0usize;
        let mut namespaces = BTreeSet::new();
        for (ns, pod) in &pods {
            let Some(ns) = ns.filter(|n| scope.contains(n)) else { continue };
            if let Some(proxy) = self.proxy_for(pod, &defaults) {
                demand = demand.add(proxy);
                injected += 1;
                namespaces.insert(ns.to_string());
            }
        }
        if injected == 0 {
            return;
        }

        let mut used_by_node: BTreeMap<&str, Resources> = BTreeMap::new();
        for (_, pod) in pods.iter().filter(|(_, p)| !finished(p)) {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                let used = used_by_node.entry(node).or_default();
                *used = used.add(pod_requests(pod));
            }
        }
        let mut allocatable = Resources::default();
        let mut free = Resources::default();
        let mut node_count = 0;
        for o in inventory.of(&kinds::NODE) {
            let Ok(node) = o.typed::<Node>() else { continue };
            if !schedulable(&node) {
                continue;
            }
            node_count += 1;
            let alloc = Resources::from_map(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
            let used = used_by_node.get(o.name.as_str()).copied().unwrap_or_default();
            allocatable = allocatable.add(alloc);
            free = free.add(Resources {
                cpu: alloc.cpu.saturating_sub(used.cpu),
                memory: alloc.memory.saturating_sub(used.memory),
            });
        }

        let ns_list: Vec<String> = namespaces.into_iter().collect();
        let pods_text = format!(
            "injecting {injected} pod{} in namespace{} {} (sidecar requests {} CPU / {} memory from {}, unless a pod's annotations say otherwise)",
            if injected == 1 { "" } else { "s" },
            if ns_list.len() == 1 { "" } else { "s" },
            join_and(&ns_list),
            Millis(defaults.cpu_millis),
            Bytes(defaults.memory_bytes),
            defaults.source
        );
        let caveat = match listed_only_in(inventory, &kinds::POD) {
            Some(ns) => format!("; only Pods of namespace {ns} were listed, so the real free capacity is lower still"),
            None => String::new(),
        };
        let nodes_text = match node_count {
            1 => "the 1 schedulable node has".to_string(),
            n => format!("the {n} schedulable nodes have"),
        };
        if demand.cpu > free.cpu {
            out.push(Finding::new(
                &CODE_CAPACITY_CPU,
                format!(
                    "{pods_text} adds {} of CPU requests; {nodes_text} {} of CPU free ({} allocatable){caveat}",
                    Millis(demand.cpu),
                    Millis(free.cpu),
                    Millis(allocatable.cpu)
                ),
            ));
        }
        if demand.memory > free.memory {
            out.push(Finding::new(
                &CODE_CAPACITY_MEMORY,
                format!(
                    "{pods_text} adds {} of memory requests; {nodes_text} {} of memory free ({} allocatable){caveat}",
                    Bytes(demand.memory),
                    Bytes(free.memory),
                    Bytes(allocatable.memory)
                ),
            ));
        }
    }
}

/// Listed in every namespace even when the command is scoped to one.
static CLUSTER_WIDE: &[&Kind] = &[&kinds::POD];

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn pod_requests_follow_the_scheduler() {
        let p = pod(serde_json::json!({
            "initContainers": [
                {"name": "setup", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}},
                {"name": "native", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}},
                {"name": "late", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "256Mi"}}}
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }));
        // Containers 1250m/384Mi + native 100m/32Mi = 1350m/416Mi; init peaks: setup 2000m/64Mi,
        // late with the native sidecar running 600m/1056Mi; max per resource, plus overhead.
        assert_eq!(pod_requests(&p), Resources { cpu: 2010, memory: (1056 + 1) * 1024 * 1024 });
    }

    #[test]
    fn empty_pods_request_nothing() {
        assert_eq!(pod_requests(&pod(serde_json::json!({"containers": [{"name": "a"}]}))), Resources::default());
    }
}
