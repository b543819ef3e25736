//! Gates: the checks between two weights.
//!
//! Gates are checked on the current state **before** a higher weight is written (a mesh side that
//! is unhealthy now gets no more traffic) and, while a weight is watched, after it. Always:
//! **readiness** (every copied workload rolled out: observed generation current, all replicas
//! updated and ready; and every pod of the mesh namespace Ready, so one unready pod is enough to
//! stop) and **restarts** (container restarts on the mesh side since the baseline, at most
//! `max_restarts`; the baseline is taken per pod when the mesh side is created and moved only
//! when a step's gates pass, so restarts between two commands are not forgotten). With a
//! Prometheus URL, from Istio's standard metrics as the proxies that see the mesh side's traffic
//! report them ([`metric_gates`]; which proxy emits what is [`meshmove_istio::waypoint::Source`]):
//!
//! * sidecar mode: the **success rate** (non-5xx share of requests) and the **p99 latency** from
//!   the mesh side's sidecars (`istio_requests_total{reporter="destination"}`);
//! * ambient mode with a waypoint: the same two from the waypoint (`reporter="waypoint"`) when a
//!   routed Service has an HTTP port, and the **connection success** (share of connections that
//!   ended without an error flag) from ztunnel (`istio_tcp_connections_*{reporter="destination"}`)
//!   when a routed Service has none: ztunnel emits no request metrics at all;
//! * ambient mode without a waypoint: the connection success from ztunnel only.
//!
//! Each result names the source it was read from. A query that returns no samples fails its
//! gate: no traffic measured is not evidence of health (a ratio over no requests or no new
//! connections in the window is `NaN`, which is no samples too). A Prometheus that cannot be
//! reached fails its gates too.

use meshmove_istio::waypoint::{self as wp, Source};
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
    /// Where a metrics gate's numbers came from (`waypoint: istio_requests_total{reporter="waypoint"}`);
    /// empty for the gates read from the cluster.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl GateResult {
    fn new(gate: &str, passed: bool, observed: String, threshold: String, detail: String) -> Self {
        GateResult { gate: gate.into(), passed, observed, threshold, detail, source: String::new() }
    }

    /// The same result, naming the metrics it was read from.
    pub fn from_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
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

/// The PromQL for the success rate of a namespace's workloads (ratio 0–1), as their sidecars
/// report it.
pub fn success_rate_query(namespace: &str, window: &str) -> String {
    success_rate_query_by(namespace, Source::Sidecar.reporter(), window)
}

/// The success rate as `reporter` (`source`, `destination` or `waypoint`) proxies report it. The
/// numerator falls back to 0 when no request succeeded (no non-5xx series at all), so that a
/// side answering only errors reads 0 %, not "no samples"; no requests at all stay no samples.
pub fn success_rate_query_by(namespace: &str, reporter: &str, window: &str) -> String {
    let requests = wp::REQUESTS_TOTAL;
    format!(
        "(sum(rate({requests}{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\",response_code!~\"5..\"}}[{window}])) or vector(0)) / sum(rate({requests}{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\"}}[{window}]))"
    )
}

/// The PromQL for the p99 latency (milliseconds) of a namespace's workloads (sidecars).
pub fn p99_query(namespace: &str, window: &str) -> String {
    p99_query_by(namespace, Source::Sidecar.reporter(), window)
}

/// The p99 latency as `reporter` proxies report it.
pub fn p99_query_by(namespace: &str, reporter: &str, window: &str) -> String {
    format!(
        "histogram_quantile(0.99, sum(rate({}{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\"}}[{window}])) by (le))",
        wp::REQUEST_DURATION_BUCKET
    )
}

/// The PromQL for the share (0–1) of TCP connections to a namespace's workloads that ended
/// without an error flag, as the destination's ztunnel (or sidecar) reports them: one minus the
/// connections closed with `response_flags` other than `-` over those opened in the window. No
/// connection opened in the window is `NaN` (no samples); no failed one is 0 failures.
pub fn connection_success_query(namespace: &str, source: Source, window: &str) -> String {
    let reporter = source.reporter();
    format!(
        "1 - ((sum(rate({closed}{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\",response_flags!=\"{ok}\"}}[{window}])) or vector(0)) / sum(rate({opened}{{reporter=\"{reporter}\",destination_workload_namespace=\"{namespace}\"}}[{window}])))",
        closed = wp::TCP_CLOSED_TOTAL,
        opened = wp::TCP_OPENED_TOTAL,
        ok = wp::NO_RESPONSE_FLAGS,
    )
}

/// What a metrics gate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    SuccessRate,
    P99Latency,
    ConnectionSuccess,
}

/// One metrics gate: what it measures, from which proxies, and its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricGate {
    pub measure: Measure,
    pub source: Source,
    pub query: String,
}

impl MetricGate {
    /// How `ns status` names the source: the proxies and the series read.
    pub fn source_label(&self) -> String {
        let metric = match self.measure {
            Measure::SuccessRate => wp::REQUESTS_TOTAL,
            Measure::P99Latency => "istio_request_duration_milliseconds",
            Measure::ConnectionSuccess => "istio_tcp_connections_opened_total/closed_total",
        };
        format!("{}: {metric}{{reporter=\"{}\"}}", self.source.as_str(), self.source.reporter())
    }

    /// The gate's result from the query's answer.
    pub fn judge(&self, sample: &Sample, th: &Thresholds) -> GateResult {
        let r = match self.measure {
            Measure::SuccessRate => success_rate(sample, th),
            Measure::P99Latency => latency(sample, th),
            Measure::ConnectionSuccess => connection_success(sample, th),
        };
        r.from_source(self.source_label())
    }
}

/// The traffic a mesh side serves, as far as the gates need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshTraffic {
    /// Ambient data plane (else sidecars).
    pub ambient: bool,
    /// A waypoint serves the mesh namespace's Services (ambient).
    pub waypoint: bool,
    /// Some routed Service has an HTTP-family port (HTTP, HTTP2, gRPC).
    pub http: bool,
    /// Some routed Service has no HTTP-family port (TCP only, or detected at run time).
    pub tcp_only: bool,
}

/// The metrics gates of a mesh side: each from the proxies that see its traffic and emit the
/// metric (module docs).
pub fn metric_gates(namespace: &str, traffic: MeshTraffic, window: &str) -> Vec<MetricGate> {
    let requests = |source: Source| {
        vec![
            MetricGate { measure: Measure::SuccessRate, source, query: success_rate_query_by(namespace, source.reporter(), window) },
            MetricGate { measure: Measure::P99Latency, source, query: p99_query_by(namespace, source.reporter(), window) },
        ]
    };
    let connections = || MetricGate {
        measure: Measure::ConnectionSuccess,
        source: Source::Ztunnel,
        query: connection_success_query(namespace, Source::Ztunnel, window),
    };
    if !traffic.ambient {
        return requests(Source::Sidecar);
    }
    if !traffic.waypoint {
        return vec![connections()];
    }
    let mut gates = Vec::new();
    if traffic.http {
        gates.extend(requests(Source::Waypoint));
    }
    if traffic.tcp_only || !traffic.http {
        gates.push(connections());
    }
    gates
}

/// A Prometheus answer as the gates see it: a value, no samples, or an error.
pub type Sample = Result<Option<f64>, crate::namespace::prometheus::PrometheusError>;

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
        Err(e) => GateResult::new("success-rate", false, "error".into(), threshold, e.to_string()),
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
        Err(e) => GateResult::new("p99-latency", false, "error".into(), threshold, e.to_string()),
    }
}

/// The connection-success gate from a query result (a ratio 0–1), against the success-rate bar.
pub fn connection_success(sample: &Sample, th: &Thresholds) -> GateResult {
    let threshold = format!(">= {} %", fmt_num(th.min_success_rate));
    match sample {
        Ok(Some(r)) => {
            let pct = r * 100.0;
            let passed = pct >= th.min_success_rate;
            let detail =
                if passed { String::new() } else { format!("{} % of connections ended without an error, below {threshold}", fmt_num(pct)) };
            GateResult::new("connection-success", passed, format!("{} %", fmt_num(pct)), threshold, detail)
        }
        Ok(None) => GateResult::new(
            "connection-success",
            false,
            "no samples".into(),
            threshold,
            "no connections to the mesh side opened in the window: is traffic reaching it? (long-lived connections open none: widen --window)".into(),
        ),
        Err(e) => GateResult::new("connection-success", false, "error".into(), threshold, e.to_string()),
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
    use crate::namespace::prometheus::PrometheusError;

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
        assert!(!success_rate(&Err(PrometheusError::Unreachable { at: "Prometheus at http://p".into(), detail: "refused".into() }), &th).passed);
        assert!(latency(&Ok(Some(120.0)), &th).passed);
        let slow = latency(&Ok(Some(812.5)), &th);
        assert!(!slow.passed && slow.observed == "812.5 ms", "{slow:?}");
        assert_eq!(
            failures(&[low, slow]),
            "success-rate: 80 % of requests succeeded, below >= 99 %; p99-latency: p99 latency 812.5 ms, above <= 500 ms"
        );
    }

    /// Label matchers of every selector in a PromQL text (`metric{a="b",c!~"5.."}`), for
    /// checking a query against series as the proxies export them.
    fn selectors(q: &str) -> Vec<(String, Vec<(String, String, String)>)> {
        let mut out = Vec::new();
        let mut rest = q;
        while let Some(open) = rest.find('{') {
            let name: String = rest[..open].chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<Vec<_>>().into_iter().rev().collect();
            let close = rest[open..].find('}').unwrap() + open;
            let matchers = rest[open + 1..close]
                .split(',')
                .map(|m| {
                    let op = ["!~", "=~", "!=", "="].into_iter().find(|op| m.contains(op)).unwrap();
                    let (k, v) = m.split_once(op).unwrap();
                    (k.to_string(), op.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            out.push((name, matchers));
            rest = &rest[close + 1..];
        }
        out
    }

    /// Whether a selector selects a series (anchored regexes of the `5..` kind only).
    fn selects(matchers: &[(String, String, String)], series: &Value) -> bool {
        matchers.iter().all(|(k, op, v)| {
            let actual = series.get(k).and_then(Value::as_str).unwrap_or("");
            let re = |v: &str| v.len() == actual.len() && v.chars().zip(actual.chars()).all(|(p, c)| p == '.' || p == c);
            match op.as_str() {
                "=" => actual == v,
                "!=" => actual != v,
                "=~" => re(v),
                _ => !re(v),
            }
        })
    }

    // Series as the proxies export them (label sets of istio/ztunnel `src/proxy/metrics.rs`
    // `CommonTrafficLabels`, and of the waypoint's and sidecars' standard metrics), reduced to the
    // labels the gates read.
    fn ztunnel_closed(flags: &str) -> Value {
        json!({"__name__": "istio_tcp_connections_closed_total", "reporter": "destination", "destination_workload_namespace": "shop-mesh",
               "destination_service_name": "db", "request_protocol": "tcp", "response_flags": flags, "connection_security_policy": "mutual_tls"})
    }
    fn requests(reporter: &str, code: &str) -> Value {
        json!({"__name__": "istio_requests_total", "reporter": reporter, "destination_workload_namespace": "shop-mesh", "response_code": code, "request_protocol": "http"})
    }

    #[test]
    fn each_mode_reads_the_metrics_its_proxies_emit() {
        let http_and_tcp = MeshTraffic { ambient: true, waypoint: true, http: true, tcp_only: true };
        let gates = metric_gates("shop-mesh", http_and_tcp, "5m");
        let kinds: Vec<(Measure, Source)> = gates.iter().map(|g| (g.measure, g.source)).collect();
        assert_eq!(
            kinds,
            [(Measure::SuccessRate, Source::Waypoint), (Measure::P99Latency, Source::Waypoint), (Measure::ConnectionSuccess, Source::Ztunnel)]
        );
        // The waypoint's success rate selects the waypoint's series, never the sidecars' (which
        // ambient never has) or ztunnel's.
        let sr = selectors(&gates[0].query);
        assert!(sr.iter().all(|(name, _)| name == "istio_requests_total"), "{sr:?}");
        assert!(selects(&sr[0].1, &requests("waypoint", "200")) && !selects(&sr[0].1, &requests("waypoint", "503")));
        assert!(selects(&sr[1].1, &requests("waypoint", "503")));
        assert!(!selects(&sr[1].1, &requests("destination", "200")), "sidecar series are not the waypoint's");
        // ztunnel: the failed closes are those with a response flag, the denominator all opens.
        let cs = selectors(&gates[2].query);
        assert_eq!(cs[0].0, "istio_tcp_connections_closed_total");
        assert!(selects(&cs[0].1, &ztunnel_closed("CONNECT")) && selects(&cs[0].1, &ztunnel_closed("DENY")));
        assert!(!selects(&cs[0].1, &ztunnel_closed("-")), "a clean close is no failure");
        assert_eq!(cs[1].0, "istio_tcp_connections_opened_total");
        assert!(gates[2].source_label().starts_with("ztunnel: "), "{}", gates[2].source_label());
        assert!(gates[0].source_label().contains("reporter=\"waypoint\""), "{}", gates[0].source_label());

        // Only HTTP Services: no connection gate; only TCP: no request gates (ztunnel emits none).
        let only = |http, tcp_only| metric_gates("shop-mesh", MeshTraffic { ambient: true, waypoint: true, http, tcp_only }, "5m");
        assert!(only(true, false).iter().all(|g| g.source == Source::Waypoint));
        assert!(only(false, true).iter().all(|g| g.measure == Measure::ConnectionSuccess));
        let no_waypoint = metric_gates("shop-mesh", MeshTraffic { ambient: true, waypoint: false, http: true, tcp_only: false }, "5m");
        assert_eq!(no_waypoint.iter().map(|g| g.measure).collect::<Vec<_>>(), [Measure::ConnectionSuccess]);
        // Sidecar mode: as before, the sidecars at the destination.
        let sidecar = metric_gates("shop-mesh", MeshTraffic::default(), "5m");
        assert_eq!(sidecar.iter().map(|g| g.source).collect::<Vec<_>>(), [Source::Sidecar, Source::Sidecar]);
        assert!(selects(&selectors(&sidecar[0].query)[1].1, &requests("destination", "200")));
    }

    #[test]
    fn recorded_answers_decide_the_gates_and_no_data_fails() {
        use crate::namespace::prometheus::parse_response;
        let parse_response = |status, body: &[u8]| parse_response(status, body).map_err(|problem| PrometheusError::Answer { at: "Prometheus".into(), problem });
        let th = Thresholds::default();
        let gates = metric_gates("shop-mesh", MeshTraffic { ambient: true, waypoint: true, http: true, tcp_only: true }, "5m");
        let answer = |v: &str| format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1765112400.123,"{v}"]}}]}}}}"#);
        let judge = |g: &MetricGate, body: &str| g.judge(&parse_response(200, body.as_bytes()), &th);
        let ok = judge(&gates[0], &answer("0.9975"));
        assert!(ok.passed && ok.observed == "99.75 %" && ok.source.starts_with("waypoint"), "{ok:?}");
        let slow = judge(&gates[1], &answer("742.5"));
        assert!(!slow.passed && slow.observed == "742.5 ms", "{slow:?}");
        let failing = judge(&gates[2], &answer("0.93"));
        assert!(!failing.passed && failing.detail.contains("93 % of connections"), "{failing:?}");
        // No new connection in the window: 0/0 is NaN, which is no samples, which fails.
        let idle = judge(&gates[2], &answer("NaN"));
        assert!(!idle.passed && idle.observed == "no samples", "{idle:?}");
        // No series at all (the sidecar query against an ambient side would answer this).
        let empty = judge(&gates[0], r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert!(!empty.passed && empty.observed == "no samples");
        let bad = judge(&gates[2], r#"{"status":"error","errorType":"bad_data","error":"1:1: parse error"}"#);
        assert!(!bad.passed && bad.observed == "error" && bad.detail.contains("bad_data"), "{bad:?}");
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
