//! Gates: the checks between two weights.
//!
//! Gates are checked on the current state **before** a higher weight is written (a mesh side that
//! is unhealthy now gets no more traffic) and, while a weight is watched, after it. Always:
//! **readiness** (every copied workload rolled out: observed generation current, all replicas
//! updated and ready; and every pod of the mesh namespace Ready, so one unready pod is enough to
//! stop) and **restarts** (container restarts on the mesh side since the baseline, at most
//! `max_restarts`; the baseline is taken per pod when the mesh side is created and moved only
//! when a step's gates pass, so restarts between two commands are not forgotten). With a
//! Prometheus URL, from Istio's standard
//! metrics as the mesh side's proxies report them (`reporter="destination"`): the **success rate**
//! (non-5xx share of requests) and the **p99 latency** over a window, against configurable
//! thresholds. A query that returns no samples fails its gate: no traffic measured is not
//! evidence of health. A Prometheus that cannot be reached fails its gates too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Gate thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// Lowest acceptable success rate, in percent.
    pub min_success_rate: f64,
    /// Highest acceptable p99 latency, in milliseconds.
    pub max_p99_ms: f64,
    /// Most container restarts allowed on the mesh side since the baseline (migration start or
    /// the last step whose gates passed).
    pub max_restarts: u64,
    /// Range of the PromQL rate windows (`1m`, `5m`).
    pub window: String,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { min_success_rate: 99.0, max_p99_ms: 500.0, max_restarts: 0, window: "5m".into() }
    }
}

/// The result of one gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// `readiness`, `restarts`, `success-rate`, `p99-latency`.
    pub gate: String,
    pub passed: bool,
    /// What was observed (`3/3 ready`, `99.2 %`, `no samples`).
    pub observed: String,
    /// The bar (`all ready`, `>= 99 %`).
    pub threshold: String,
    /// Why it failed (empty when it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl GateResult {
    fn new(gate: &str, passed: bool, observed: String, threshold: String, detail: String) -> Self {
        GateResult { gate: gate.into(), passed, observed, threshold, detail }
    }
}

/// Whether all gates passed.
pub fn all_passed(results: &[GateResult]) -> bool {
    results.iter().all(|g| g.passed)
}

/// A one-line summary of the failed gates.
pub fn failures(results: &[GateResult]) -> String {
    results
        .iter()
        .filter(|g| !g.passed)
        .map(|g| {
            if g.detail.is_empty() {
                format!("{} {} (needs {})", g.gate, g.observed, g.threshold)
            } else {
                format!("{}: {}", g.gate, g.detail)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `None` when a workload is rolled out and ready, else what it is waiting for.
pub fn not_ready(workload: &Value) -> Option<String> {
    let kind = workload.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = workload.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let int = |p: &str| workload.pointer(p).and_then(Value::as_i64);
    let generation = int("/metadata/generation").unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    if observed < generation {
        return Some(format!("{kind}/{name}: generation {generation} not observed yet"));
    }
    let (want, updated, ready) = if kind == "DaemonSet" {
        (
            int("/status/desiredNumberScheduled").unwrap_or(0),
            int("/status/updatedNumberScheduled").unwrap_or(0),
            int("/status/numberReady").unwrap_or(0),
        )
    } else {
        (int("/spec/replicas").unwrap_or(1), int("/status/updatedReplicas").unwrap_or(0), int("/status/readyReplicas").unwrap_or(0))
    };
    if updated < want || ready < want {
        return Some(format!("{kind}/{name}: {ready}/{want} ready, {updated}/{want} updated"));
    }
    None
}

/// `Some(why)` for a pod that should be serving and is not Ready (pods being deleted, and pods
/// that ran to completion or failed, are not serving and not counted; a workload short of ready
/// replicas shows in its own status).
pub fn pod_not_ready(pod: &Value) -> Option<String> {
    if pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
    {
        return None;
    }
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")));
    match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => None,
        Some(c) => Some(format!(
            "Pod/{name}: not ready{}",
            c.get("reason").and_then(Value::as_str).map(|r| format!(" ({r})")).unwrap_or_default()
        )),
        None => Some(format!("Pod/{name}: not ready (no Ready condition yet)")),
    }
}

/// Readiness of the mesh side: its workloads rolled out (`missing`: copied workloads that do not
/// exist) and each of its `pods` Ready.
pub fn readiness(workloads: &[Value], missing: &[String], pods: &[Value]) -> GateResult {
    let mut problems: Vec<String> = missing.iter().map(|m| format!("{m}: missing")).collect();
    problems.extend(workloads.iter().filter_map(not_ready));
    let total = workloads.len() + missing.len();
    let ready = total - problems.len().min(total);
    problems.extend(pods.iter().filter_map(pod_not_ready));
    GateResult::new("readiness", problems.is_empty(), format!("{ready}/{total} workloads ready"), "all ready".into(), problems.join("; "))
}

/// Container restarts of pods (init and regular containers).
pub fn restart_count(pods: &[Value]) -> u64 {
    pods.iter()
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .into_iter()
                .filter_map(move |k| p.pointer(&format!("/status/{k}")).and_then(Value::as_array))
                .flatten()
        })
        .filter_map(|c| c.get("restartCount").and_then(Value::as_u64))
        .sum()
}

fn pod_restarts(pod: &Value) -> u64 {
    ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .filter_map(|k| pod.pointer(&format!("/status/{k}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_u64))
        .sum()
}

fn pod_key(pod: &Value) -> String {
    pod.pointer("/metadata/uid").or_else(|| pod.pointer("/metadata/name")).and_then(Value::as_str).unwrap_or("?").to_string()
}

/// Container restarts per pod (by uid: a pod replaced under the same name starts from zero).
pub fn restart_counts(pods: &[Value]) -> std::collections::BTreeMap<String, u64> {
    pods.iter().map(|p| (pod_key(p), pod_restarts(p))).collect()
}

/// Restarts since `baseline` (per pod; a pod not in it is new, all its restarts count).
pub fn new_restarts(pods: &[Value], baseline: &std::collections::BTreeMap<String, u64>) -> u64 {
    pods.iter().map(|p| pod_restarts(p).saturating_sub(baseline.get(&pod_key(p)).copied().unwrap_or(0))).sum()
}

/// `new` restarts since the baseline against the allowance.
pub fn restarts(new: u64, th: &Thresholds) -> GateResult {
    let passed = new <= th.max_restarts;
    GateResult::new(
        "restarts",
        passed,
        format!("{new} new"),
        format!("<= {}", th.max_restarts),
        if passed {
            String::new()
        } else {
            format!("{new} container restarts on the mesh side since the migration started or its last passed step (allowed {})", th.max_restarts)
        },
    )
}

/// The PromQL for the success rate of a namespace's workloads (ratio 0–1), as their proxies
/// report it.
pub fn success_rate_query(namespace: &str, window: &str) -> String {
    success_rate_query_by(namespace, "destination", window)
}

/// The success rate as `reporter` (`source` or `destination`) proxies report it.
pub fn success_rate_query_by(namespace: &str, reporter: &str, window: &str) -> String {
    format!(
        "sum(rate(istio_requests_total{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\",response_code!~\"5..\"}}[{window}])) / sum(rate(istio_requests_total{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\"}}[{window}]))"
    )
}

/// The PromQL for the p99 latency (milliseconds) of a namespace's workloads.
pub fn p99_query(namespace: &str, window: &str) -> String {
    p99_query_by(namespace, "destination", window)
}

/// The p99 latency as `reporter` proxies report it.
pub fn p99_query_by(namespace: &str, reporter: &str, window: &str) -> String {
    format!(
        "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\"}}[{window}])) by (le))"
    )
}

/// A Prometheus answer as the gates see it: a value, no samples, or an error.
pub type Sample = Result<Option<f64>, String>;

/// The success-rate gate from a query result (a ratio 0–1).
pub fn success_rate(sample: &Sample, th: &Thresholds) -> GateResult {
    let threshold = format!(">= {} %", fmt_num(th.min_success_rate));
    match sample {
        Ok(Some(r)) => {
            let pct = r * 100.0;
            let passed = pct >= th.min_success_rate;
            let detail = if passed { String::new() } else { format!("{} % of requests succeeded, below {threshold}", fmt_num(pct)) };
            GateResult::new("success-rate", passed, format!("{} %", fmt_num(pct)), threshold, detail)
        }
        Ok(None) => GateResult::new(
            "success-rate",
            false,
            "no samples".into(),
            threshold,
            "no requests measured on the mesh side: is traffic reaching it?".into(),
        ),
        Err(e) => GateResult::new("success-rate", false, "error".into(), threshold, e.clone()),
    }
}

/// The p99-latency gate from a query result (milliseconds).
pub fn latency(sample: &Sample, th: &Thresholds) -> GateResult {
    let threshold = format!("<= {} ms", fmt_num(th.max_p99_ms));
    match sample {
        Ok(Some(ms)) => {
            let passed = *ms <= th.max_p99_ms;
            let detail = if passed { String::new() } else { format!("p99 latency {} ms, above {threshold}", fmt_num(*ms)) };
            GateResult::new("p99-latency", passed, format!("{} ms", fmt_num(*ms)), threshold, detail)
        }
        Ok(None) => {
            GateResult::new("p99-latency", false, "no samples".into(), threshold, "no request durations measured on the mesh side".into())
        }
        Err(e) => GateResult::new("p99-latency", false, "error".into(), threshold, e.clone()),
    }
}

/// A number with at most two decimals, without trailing zeros.
pub fn fmt_num(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(name: &str, replicas: i64, ready: i64, updated: i64, generation: i64, observed: i64) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": name, "generation": generation},
               "spec": {"replicas": replicas},
               "status": {"readyReplicas": ready, "updatedReplicas": updated, "observedGeneration": observed}})
    }

    #[test]
    fn readiness_needs_every_workload_rolled_out() {
        let ok = readiness(&[deploy("a", 2, 2, 2, 3, 3)], &[], &[]);
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.observed, "1/1 workloads ready");
        let slow = readiness(&[deploy("a", 2, 1, 2, 3, 3), deploy("b", 1, 1, 1, 2, 1)], &[], &[]);
        assert!(!slow.passed);
        assert!(slow.detail.contains("Deployment/a: 1/2 ready"), "{}", slow.detail);
        assert!(slow.detail.contains("Deployment/b: generation 2 not observed"), "{}", slow.detail);
        let gone = readiness(&[], &["Deployment/api".into()], &[]);
        assert!(!gone.passed && gone.detail.contains("Deployment/api: missing"));
        let ds = json!({"kind": "DaemonSet", "metadata": {"name": "d"}, "status": {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberReady": 1}});
        assert!(not_ready(&ds).unwrap().contains("1/2 ready"));
        // Scaled to zero is rolled out.
        assert!(not_ready(&deploy("z", 0, 0, 0, 1, 1)).is_none());
        // One unready pod is enough, whatever the workload status says.
        let pod = |name: &str, ready: &str, extra: Value| {
            let mut p = json!({"metadata": {"name": name}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready, "reason": "ContainersNotReady"}]}});
            if let (Some(m), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            p
        };
        let r = readiness(&[deploy("a", 2, 2, 2, 3, 3)], &[], &[pod("a-1", "True", json!({})), pod("a-2", "False", json!({}))]);
        assert!(!r.passed);
        assert_eq!(r.observed, "1/1 workloads ready");
        assert_eq!(r.detail, "Pod/a-2: not ready (ContainersNotReady)");
        let done = pod("job-1", "False", json!({"status": {"phase": "Succeeded"}}));
        let leaving = pod("a-3", "False", json!({"metadata": {"name": "a-3", "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert!(readiness(&[], &[], &[done, leaving]).passed);
    }

    #[test]
    fn restarts_count_since_the_baseline_per_pod() {
        let pod = |uid: &str, n: u64| json!({"metadata": {"uid": uid, "name": "p"}, "status": {"containerStatuses": [{"restartCount": n}, {"restartCount": 1}], "initContainerStatuses": [{"restartCount": 1}]}});
        let pods = [pod("u1", 2)];
        assert_eq!(restart_count(&pods), 4);
        let base = restart_counts(&pods);
        assert_eq!(base, std::collections::BTreeMap::from([("u1".to_string(), 4)]));
        assert_eq!(new_restarts(&pods, &base), 0);
        assert_eq!(new_restarts(&[pod("u1", 4)], &base), 2);
        // A replacement pod (new uid, same name) counts from zero: its restarts are new, and the
        // old pod's higher count does not hide them.
        assert_eq!(new_restarts(&[pod("u2", 0)], &base), 2);
        let th = Thresholds::default();
        assert!(restarts(0, &th).passed);
        let r = restarts(2, &th);
        assert!(!r.passed && r.detail.contains("2 container restarts"), "{r:?}");
        assert!(restarts(2, &Thresholds { max_restarts: 2, ..th }).passed);
    }

    #[test]
    fn metric_gates_compare_against_thresholds() {
        let th = Thresholds::default();
        assert!(success_rate(&Ok(Some(0.995)), &th).passed);
        let low = success_rate(&Ok(Some(0.8)), &th);
        assert!(!low.passed);
        assert_eq!(low.detail, "80 % of requests succeeded, below >= 99 %");
        assert!(!success_rate(&Ok(None), &th).passed, "no samples is not health");
        assert!(!success_rate(&Err("unreachable".into()), &th).passed);
        assert!(latency(&Ok(Some(120.0)), &th).passed);
        let slow = latency(&Ok(Some(812.5)), &th);
        assert!(!slow.passed && slow.observed == "812.5 ms", "{slow:?}");
        assert_eq!(
            failures(&[low, slow]),
            "success-rate: 80 % of requests succeeded, below >= 99 %; p99-latency: p99 latency 812.5 ms, above <= 500 ms"
        );
    }

    #[test]
    fn queries_select_the_mesh_namespace_at_the_destination() {
        let q = success_rate_query("shop-mesh", "1m");
        assert!(q.contains("destination_workload_namespace=\"shop-mesh\""));
        assert!(q.contains("response_code!~\"5..\""));
        assert!(q.contains("[1m]"));
        assert!(p99_query("shop-mesh", "5m").starts_with("histogram_quantile(0.99,"));
    }
}
