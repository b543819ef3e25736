//! The gates' Prometheus client against the fake Prometheus of the API double: values, no
//! samples, `NaN`, query errors, non-API answers and an unreachable server, with the PromQL and
//! the evaluation time arriving as sent; directly (`--prometheus-url`) and through the API
//! server's service proxy (`--prometheus-service`), where the API server's refusals come back
//! with its reason.

use std::sync::Arc;

use apiserver_double::prometheus::{FakePrometheus, PromQuery, Reply, rules};
use apiserver_double::{Double, DoubleOptions};
use meshmove_kube::cluster::ClusterOptions;
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
    let rt = rt();
    let _in_runtime = rt.enter();
    let prom = Prometheus::url(&fake.url()).unwrap();
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
    let err = rt.block_on(prom.query("bad_metric", None)).unwrap_err().to_string();
    assert!(err.contains("HTTP 400, bad_data: parse error at char 4") && err.contains(&fake.url()), "{err}");
    assert!(rt.block_on(prom.query("html_metric", None)).unwrap_err().to_string().contains("HTTP 502"));
    let log = fake.queries();
    assert_eq!(log[0].query, q, "the PromQL arrives intact through the URL encoding");
    assert_eq!(log[0].time, Some(1_700_000_000.5));
    assert_eq!(log[1].time, None);
}

#[test]
fn scripts_can_answer_per_call_and_an_unreachable_server_fails_the_gate() {
    let fake = FakePrometheus::start(Arc::new(|q: &PromQuery| if q.seq == 1 { Reply::Value(1.0) } else { Reply::Empty })).unwrap();
    let rt = rt();
    let _in_runtime = rt.enter();
    let prom = Prometheus::url(&fake.url()).unwrap();
    assert_eq!(rt.block_on(prom.query("up", None)), Ok(Some(1.0)));
    assert_eq!(rt.block_on(prom.query("up", None)), Ok(None));
    let url = fake.url();
    drop(fake);
    let down = Prometheus::url(&url).unwrap();
    let sample = rt.block_on(down.query("up", None));
    let err = sample.clone().unwrap_err().to_string();
    assert!(err.contains("unreachable") && err.contains(&url), "{err}");
    let gate = gates::success_rate(&sample, &Thresholds::default());
    assert!(!gate.passed && gate.observed == "error");
}

/// Through the API server: the query reaches the Service's backend with the kubeconfig's
/// credentials, and what the API server refuses (a Service it does not know, a user without
/// `get` on `services/proxy`) fails the gate with its reason. (Its `503`s, no endpoints or no
/// such port, kube's client retries until the query's time is up: the gate then says so.)
#[test]
fn queries_through_the_api_servers_service_proxy() {
    let rt = rt();
    rt.block_on(async {
        let d = Double::start(DoubleOptions { rbac: true, ..DoubleOptions::default() }).await.unwrap();
        let backend = d.serve_prometheus("monitoring", "prometheus-k8s", 9090, rules(vec![("istio_requests_total", Reply::Value(0.999))]));
        let dir = tempfile::tempdir().unwrap();
        let connect = |kubeconfig| async move {
            ClusterOptions { kubeconfig: Some(kubeconfig), ..ClusterOptions::default() }.connect().await.unwrap()
        };
        let admin = connect(d.write_kubeconfig(dir.path(), "default").unwrap()).await;
        let q = gates::success_rate_query("shop-mesh", "1m");
        for spec in ["monitoring/prometheus-k8s:web", "monitoring/prometheus-k8s:9090", "http:monitoring/prometheus-k8s:web", "monitoring/prometheus-k8s"] {
            let prom = Prometheus::service(&admin.client, spec).unwrap();
            assert_eq!(prom.query(&q, Some(1_700_000_000.0)).await, Ok(Some(0.999)), "{spec}");
        }
        assert_eq!(backend.queries().len(), 4);
        assert_eq!(backend.queries()[0].query, q);
        let proxied = d.requests_matching("GET", "^/api/v1/namespaces/monitoring/services/[a-z:0-9-]+/proxy/api/v1/query$");
        assert_eq!(proxied.len(), 4);

        let reason = |spec: &'static str, client: kube::Client| async move {
            let e = Prometheus::service(&client, spec).unwrap().query(&q_of(), None).await.unwrap_err();
            let gate = gates::success_rate(&Err(e.clone()), &Thresholds::default());
            assert!(!gate.passed && gate.detail == e.to_string());
            e.to_string()
        };
        fn q_of() -> String {
            gates::success_rate_query("shop-mesh", "1m")
        }
        assert_eq!(
            reason("monitoring/nothing:web", admin.client.clone()).await,
            "Prometheus service monitoring/nothing:web (through the API server): HTTP 404 from the API server: services \"nothing\" not found"
        );
        d.add_token("viewer-token", "viewer", &[]);
        let viewer = connect(d.write_kubeconfig_with_token(dir.path(), "default", "viewer-token").unwrap()).await;
        let refused = reason("monitoring/prometheus-k8s:web", viewer.client.clone()).await;
        assert!(refused.contains("HTTP 403 from the API server") && refused.contains("services/proxy"), "{refused}");
        assert_eq!(backend.queries().len(), 4, "nothing refused reached Prometheus");
    });
}
