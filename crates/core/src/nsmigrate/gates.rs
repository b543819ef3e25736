//! Gates: the checks between two weights.
//!
//! Always: **readiness** (every copied workload rolled out: observed generation current, all
//! replicas updated and ready) and **restarts** (container restarts on the mesh side since the
//! current weight was set, at most `max_restarts`). With a Prometheus URL, from Istio's standard
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
    /// Most container restarts allowed on the mesh side since the weight was set.
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

/// Readiness of the mesh side's workloads (`missing`: copied workloads that do not exist).
pub fn readiness(workloads: &[Value], missing: &[String]) -> GateResult {
    let mut problems: Vec<String> = missing.iter().map(|m| format!("{m}: missing")).collect();
    problems.extend(workloads.iter().filter_map(not_ready));
    let total = workloads.len() + missing.len();
    let ready = total - problems.len().min(total);
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

/// Restarts since `baseline` against the allowance.
pub fn restarts(total: u64, baseline: u64, th: &Thresholds) -> GateResult {
    let new = total.saturating_sub(baseline);
    let passed = new <= th.max_restarts;
    GateResult::new(
        "restarts",
        passed,
        format!("{new} new"),
        format!("<= {}", th.max_restarts),
        if passed {
            String::new()
        } else {
            format!("{new} container restarts on the mesh side since the weight was set (allowed {})", th.max_restarts)
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
        let ok = readiness(&[deploy("a", 2, 2, 2, 3, 3)], &[]);
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.observed, "1/1 workloads ready");
        let slow = readiness(&[deploy("a", 2, 1, 2, 3, 3), deploy("b", 1, 1, 1, 2, 1)], &[]);
        assert!(!slow.passed);
        assert!(slow.detail.contains("Deployment/a: 1/2 ready"), "{}", slow.detail);
        assert!(slow.detail.contains("Deployment/b: generation 2 not observed"), "{}", slow.detail);
        let gone = readiness(&[], &["Deployment/api".into()]);
        assert!(!gone.passed && gone.detail.contains("Deployment/api: missing"));
        let ds = json!({"kind": "DaemonSet", "metadata": {"name": "d"}, "status": {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberReady": 1}});
        assert!(not_ready(&ds).unwrap().contains("1/2 ready"));
        // Scaled to zero is rolled out.
        assert!(not_ready(&deploy("z", 0, 0, 0, 1, 1)).is_none());
    }

    #[test]
    fn restarts_count_since_the_baseline() {
        let pods = [
            json!({"status": {"containerStatuses": [{"restartCount": 2}, {"restartCount": 1}], "initContainerStatuses": [{"restartCount": 1}]}}),
        ];
        assert_eq!(restart_count(&pods), 4);
        let th = Thresholds::default();
        assert!(restarts(4, 4, &th).passed);
        let r = restarts(6, 4, &th);
        assert!(!r.passed && r.detail.contains("2 container restarts"), "{r:?}");
        assert!(restarts(6, 4, &Thresholds { max_restarts: 2, ..th }).passed);
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
