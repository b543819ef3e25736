//! HorizontalPodAutoscalers: how many pods a workload really runs, and the HPAs a sidecar
//! changes.
//!
//! An HPA owns the replica count of its target (`spec.scaleTargetRef`): it sets the target's
//! `spec.replicas` anywhere between `spec.minReplicas` (default 1) and `spec.maxReplicas`, and a
//! manifest for an HPA-managed workload usually leaves `replicas` out
//! (<https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#migrating-deployments-and-statefulsets-to-horizontal-autoscaling>).
//! The replica count a chart shows means nothing then; the HPA's range does.
//!
//! An HPA scaling on CPU *utilisation* of a `Resource` metric divides the pods' CPU usage by the
//! sum of the requests of all their containers
//! (<https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details>,
//! "container resource metrics" for the per-container alternative). An injected sidecar adds its
//! request to that sum: the same application load reads as a lower utilisation, and the HPA
//! scales out later (MM1062).

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use super::sidecar::{self, ProxyRequests};
use super::{PrecheckOptions, Scope, Workload, workloads};
use crate::catalog::*;
use crate::quantity::{self, Millis};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, kinds};

/// The replica range an HPA gives its target.
#[derive(Debug, Clone)]
pub(crate) struct Autoscaler<'a> {
    pub object: &'a Object,
    pub min: u64,
    pub max: u64,
}

impl Autoscaler<'_> {
    pub fn display(&self) -> String {
        self.object.object_ref().to_string()
    }
}

/// Whether an HPA's `scaleTargetRef` names this workload (same namespace, kind and name; the
/// API group is not compared, as `apps/v1` and older groups name the same object).
fn targets(hpa: &Object, w: &Object) -> bool {
    let target = hpa.value.pointer("/spec/scaleTargetRef");
    hpa.namespace == w.namespace
        && target.and_then(|t| t.get("kind")).and_then(Value::as_str) == Some(w.kind.as_str())
        && target.and_then(|t| t.get("name")).and_then(Value::as_str) == Some(w.name.as_str())
}

/// The HPA managing a workload, if the input has one.
pub(crate) fn autoscaler<'a>(inventory: &'a Inventory, w: &Object) -> Option<Autoscaler<'a>> {
    let hpa = inventory.of(&kinds::HORIZONTAL_POD_AUTOSCALER).find(|h| targets(h, w))?;
    let spec = hpa.value.get("spec")?;
    let min = spec.get("minReplicas").and_then(Value::as_u64).unwrap_or(1);
    let max = spec.get("maxReplicas").and_then(Value::as_u64).unwrap_or(min).max(min);
    Some(Autoscaler { object: hpa, min, max })
}

/// The CPU utilisation target of an HPA, when it scales on one: an `autoscaling/v2` `Resource`
/// metric for `cpu` of target type `Utilization`, or `autoscaling/v1`'s
/// `targetCPUUtilizationPercentage`.
fn cpu_utilisation_target(hpa: &Object) -> Option<u64> {
    let spec = hpa.value.get("spec")?;
    if let Some(p) = spec.get("targetCPUUtilizationPercentage").and_then(Value::as_u64) {
        return Some(p);
    }
    spec.get("metrics")?.as_array()?.iter().find_map(|m| {
        let r = m.get("resource").filter(|_| m.get("type").and_then(Value::as_str) == Some("Resource"))?;
        let target = r.get("target")?;
        (r.get("name").and_then(Value::as_str) == Some("cpu") && target.get("type").and_then(Value::as_str) == Some("Utilization"))
            .then(|| target.get("averageUtilization").and_then(Value::as_u64))
            .flatten()
    })
}

/// CPU requests of a pod template's containers (requests, else limits, as the API server
/// defaults them), in millicores; `None` when a container sets neither (the HPA then cannot
/// compute a utilisation at all).
fn app_cpu_requests(spec: &PodSpec) -> Option<u64> {
    spec.containers.iter().try_fold(0u64, |sum, c| {
        let r = c.resources.as_ref()?;
        let q = r.requests.as_ref().and_then(|m| m.get("cpu")).or_else(|| r.limits.as_ref().and_then(|m| m.get("cpu")))?;
        Some(sum + quantity::cpu_millis(&q.0).ok()?)
    })
}

/// HPAs scaling a workload that gets a sidecar on CPU utilisation (sidecar mode).
pub struct CpuAutoscalers(pub PrecheckOptions);

/// No HPA in the input means no HPA to judge, not a skipped check.
static REQUIRES: &[&Kind] = &[];
static USES: &[&Kind] = &[
    &kinds::HORIZONTAL_POD_AUTOSCALER,
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::REPLICA_SET,
];

impl Analyzer for CpuAutoscalers {
    fn name(&self) -> &'static str {
        "autoscalers"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn uses(&self) -> &'static [&'static Kind] {
        USES
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        let defaults = sidecar::injector_defaults(inventory, &self.0);
        let all = workloads(inventory, &scope);
        for hpa in inventory.of(&kinds::HORIZONTAL_POD_AUTOSCALER) {
            if !hpa.namespace.as_deref().is_some_and(|n| scope.contains(n)) {
                continue;
            }
            let Some(target) = cpu_utilisation_target(hpa) else { continue };
            let Some(w) = all.iter().find(|w| targets(hpa, w.object)) else { continue };
            if w.opts_out_of_injection() || w.spec.containers.iter().any(|c| c.name == "istio-proxy") {
                continue;
            }
            out.push(Finding::new(&CODE_HPA_CPU_UTILISATION, message(w, target, &defaults)).on(hpa));
        }
    }
}

fn message(w: &Workload<'_>, target: u64, defaults: &ProxyRequests) -> String {
    let (proxy, _) = sidecar::for_pod(w.meta.annotations.as_ref(), defaults);
    let head = format!("scales {} on CPU utilisation (target {target}%), measured against the requests of all the pod's containers", w.display());
    match app_cpu_requests(&w.spec) {
        Some(app) if app > 0 => {
            let with = app + proxy;
            // The application's usage at the target today, over the larger sum of requests.
            let reads = (app * target).div_ceil(with);
            format!(
                "{head}: the sidecar adds {} to today's {} ({}), so the load that reads {target}% today reads about {reads}% with it and the HPA scales out later; lower the target or scale on the application container's CPU (a ContainerResource metric)",
                Millis(proxy),
                Millis(app),
                defaults.source,
            )
        }
        _ => format!(
            "{head}: the sidecar adds {} of requests ({}), which changes the utilisation the HPA reads; review the target or scale on the application container's CPU (a ContainerResource metric)",
            Millis(proxy),
            defaults.source,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::inventory::Origin;
    use serde_json::json;

    fn hpa(spec: Value) -> Object {
        Object {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: Some("shop".into()),
            name: "h".into(),
            value: json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": "shop"}, "spec": spec}),
            origin: Origin::Stdin { line: 1, helm_source: None },
            pod: None,
        }
    }

    #[test]
    fn only_cpu_utilisation_of_the_whole_pod_counts() {
        let cpu = |target: Value| json!({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]});
        assert_eq!(cpu_utilisation_target(&hpa(cpu(json!({"type": "Utilization", "averageUtilization": 70})))), Some(70));
        assert_eq!(cpu_utilisation_target(&hpa(json!({"targetCPUUtilizationPercentage": 50}))), Some(50), "autoscaling/v1");
        assert_eq!(cpu_utilisation_target(&hpa(cpu(json!({"type": "AverageValue", "averageValue": "200m"})))), None, "an absolute value ignores requests");
        let container = json!({"metrics": [{"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 70}}}]});
        assert_eq!(cpu_utilisation_target(&hpa(container)), None);
    }

    #[test]
    fn the_hpa_range_defaults_min_to_one() {
        let h = hpa(json!({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 4}));
        let mut d = h.clone();
        d.kind = "Deployment".into();
        d.name = "api".into();
        let inv = Inventory::from_files(vec![h], vec!["t.yaml".into()], "default".into());
        let a = autoscaler(&inv, &d).unwrap();
        assert_eq!((a.min, a.max), (1, 4));
    }
}
