//! PodDisruptionBudgets that allow no eviction at all.
//!
//! `kubectl rollout restart` follows the workload's update strategy and ignores budgets, but
//! every eviction honours them: node drains, node-pool replacements and autoscaler scale-downs,
//! which migrations typically include (new nodes for the istio-cni or ztunnel agents, rebalancing
//! pods that grew a sidecar). A budget whose allowed disruptions are zero blocks those forever:
//! `maxUnavailable: 0` or `0%`, or `minAvailable` at or above the number of pods it selects
//! (a percentage is rounded up, as the disruption controller does).
//!
//! The pods a budget selects are counted from the pod templates in the same namespace whose
//! labels match its selector: Deployments, StatefulSets and ReplicaSets by `spec.replicas`,
//! DaemonSets by `status.desiredNumberScheduled` (unknown offline, so such budgets are not judged
//! on `minAvailable`), bare Pods as one each. A workload a HorizontalPodAutoscaler manages runs
//! anywhere from the HPA's `minReplicas` to its `maxReplicas`, whatever its `spec.replicas` says
//! ([`super::autoscaling`]); the budget is judged at the HPA's minimum, the count the workload
//! is scaled down to when load is low, which is when a drain must still be able to evict.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::autoscaling::autoscaler;
use super::{PrecheckOptions, Replicas, Scope, join_and, selects, workloads};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, kinds};
use crate::catalog::*;

static REQUIRES: &[&Kind] = &[&kinds::POD_DISRUPTION_BUDGET];
/// The workload kinds, and the HPAs that set their replicas.
static USES: &[&Kind] = &[
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
    &kinds::HORIZONTAL_POD_AUTOSCALER,
];

/// Budgets in the migrated namespaces that would block evictions.
pub struct DisruptionBudgets(pub PrecheckOptions);

/// `"25%"` → 25.
fn percent(s: &str) -> Option<u64> {
    s.strip_suffix('%')?.parse().ok()
}

impl Analyzer for DisruptionBudgets {
    fn name(&self) -> &'static str {
        "disruption-budgets"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn uses(&self) -> &'static [&'static Kind] {
        USES
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        let all = workloads(inventory, &scope);
        for o in inventory.of(&kinds::POD_DISRUPTION_BUDGET) {
            if !o.namespace.as_deref().is_some_and(|n| scope.contains(n)) {
                continue;
            }
            let Ok(pdb) = o.typed::<PodDisruptionBudget>() else { continue };
            let spec = pdb.spec.unwrap_or_default();
            match &spec.max_unavailable {
                Some(IntOrString::Int(0)) => {
                    out.push(
                        Finding::new(
                            &CODE_PDB_ZERO_DISRUPTIONS,
                            "maxUnavailable is 0: no pod it selects can ever be evicted",
                        )
                        .on(o),
                    );
                }
                Some(IntOrString::String(s)) if percent(s) == Some(0) => {
                    out.push(
                        Finding::new(
                            &CODE_PDB_ZERO_DISRUPTIONS,
                            format!("maxUnavailable is {s}: no pod it selects can ever be evicted"),
                        )
                        .on(o),
                    );
                }
                _ => {}
            }
            let Some(min_available) = &spec.min_available else { continue };
            let selected: Vec<_> = all
                .iter()
                .filter(|w| w.object.namespace == o.namespace && w.replicas != Replicas::Batch)
                .filter(|w| selects(spec.selector.as_ref(), &w.labels()))
                .collect();
            if selected.is_empty() || selected.iter().any(|w| w.replicas == Replicas::Unknown) {
                continue;
            }
            // Pods per workload: the HPA's minimum when one manages it.
            let counts: Vec<(u64, Option<String>)> = selected
                .iter()
                .map(|w| {
                    let replicas = if let Replicas::Known(n) = w.replicas { n } else { 0 };
                    match autoscaler(inventory, w.object) {
                        Some(h) => (h.min, Some(format!("{} scales {} between {} and {}", h.display(), w.display(), h.min, h.max))),
                        None => (replicas, None),
                    }
                })
                .collect();
            let pods: u64 = counts.iter().map(|(n, _)| n).sum();
            let scaled: Vec<String> = counts.into_iter().filter_map(|(_, s)| s).collect();
            if pods == 0 {
                continue;
            }
            let (needed, shown) = match min_available {
                IntOrString::Int(n) => (u64::try_from(*n).unwrap_or(0), n.to_string()),
                IntOrString::String(s) => match percent(s) {
                    Some(p) => ((pods * p).div_ceil(100), format!("{s} (= {} pods)", (pods * p).div_ceil(100))),
                    None => continue,
                },
            };
            if needed >= pods {
                let names: Vec<String> = selected.iter().map(|w| w.display()).collect();
                out.push(
                    Finding::new(
                        &CODE_PDB_MIN_AVAILABLE_ALL,
                        if scaled.is_empty() {
                            format!(
                                "minAvailable is {shown} and it selects {pods} pod{} ({}): no pod can be evicted",
                                if pods == 1 { "" } else { "s" },
                                join_and(&names)
                            )
                        } else {
                            format!(
                                "minAvailable is {shown} and it selects {pods} pod{} ({}) when scaled in ({}): no pod can be evicted then",
                                if pods == 1 { "" } else { "s" },
                                join_and(&names),
                                join_and(&scaled)
                            )
                        },
                    )
                    .on(o),
                );
            }
        }
    }
}
