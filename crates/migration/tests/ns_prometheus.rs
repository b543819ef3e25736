//! The gates' Prometheus client against the fake Prometheus of the API double: values, no
//! samples, `NaN`, query errors, non-API answers and an unreachable server, with the PromQL and
//! the evaluation time arriving as sent.

use std::sync::Arc;

use apiserver_double::prometheus::{FakePrometheus, PromQuery, Reply, rules};
use meshmove_migration::namespace::gates::{self, Thresholds};
use meshmove_migration::namespace::prometheus::Prometheus;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn queries_reach_the_query_api_and_answers_become_gate_results() {
    let fake = FakePrometheus::start(rules(vec![
        ("istio_requests_total", Reply::Value(0.97)),
        ("histogram_quantile", Reply::Value(812.0)),
        ("nan_metric", Reply::NaN),
        ("bad_metric", Reply::Error { code: 400, error_type: "bad_data".into(), message: "parse error at char 4".into() }),
        ("html_metric", Reply::Raw { code: 502, body: "<html>bad gateway</html>".into() }),
    ]))
    .unwrap();
    let prom = Prometheus::new(&fake.url()).unwrap();
    let rt = rt();
    let th = Thresholds::default();
    let q = gates::success_rate_query("shop-mesh", "1m");
    let sr = rt.block_on(prom.query(&q, Some(1_700_000_000.5)));
    assert_eq!(sr, Ok(Some(0.97)));
    let gate = gates::success_rate(&sr, &th);
    assert!(!gate.passed);
    assert_eq!(gate.observed, "97 %");
    let p99 = rt.block_on(prom.query(&gates::p99_query("shop-mesh", "1m"), None));
    assert!(!gates::latency(&p99, &th).passed);
    assert_eq!(rt.block_on(prom.query("nan_metric", None)), Ok(None));
    assert_eq!(rt.block_on(prom.query("absent_metric", None)), Ok(None));
    let err = rt.block_on(prom.query("bad_metric", None)).unwrap_err();
    assert!(err.contains("HTTP 400, bad_data: parse error at char 4") && err.contains(&fake.url()), "{err}");
    assert!(rt.block_on(prom.query("html_metric", None)).unwrap_err().contains("HTTP 502"));
    let log = fake.queries();
    assert_eq!(log[0].query, q, "the PromQL arrives intact through the URL encoding");
    assert_eq!(log[0].time, Some(1_700_000_000.5));
    assert_eq!(log[1].time, None);
}

#[test]
fn scripts_can_answer_per_call_and_an_unreachable_server_fails_the_gate() {
    let fake = FakePrometheus::start(Arc::new(|q: &PromQuery| if q.seq == 1 { Reply::Value(1.0) } else { Reply::Empty })).unwrap();
    let prom = Prometheus::new(&fake.url()).unwrap();
    let rt = rt();
    assert_eq!(rt.block_on(prom.query("up", None)), Ok(Some(1.0)));
    assert_eq!(rt.block_on(prom.query("up", None)), Ok(None));
    let url = fake.url();
    drop(fake);
    let down = Prometheus::new(&url).unwrap();
    let sample = rt.block_on(down.query("up", None));
    let err = sample.clone().unwrap_err();
    assert!(err.contains("unreachable") && err.contains(&url), "{err}");
    let gate = gates::success_rate(&sample, &Thresholds::default());
    assert!(!gate.passed && gate.observed == "error");
}
