//! The traffic profile's HTTP route keys end to end against the API double: `enable` and
//! `ns create` with `--http-timeout`, `--retries`, `--per-try-timeout` and `--retry-on` write
//! VirtualServices that Istio's CRD schemas accept (`tests/tools/validate.sh`) and that carry the
//! values on every HTTP route and on no TCP route (the Istio gateway's VirtualServices serving a
//! legacy Ingress too); a `ns shift` keeps them; values Istio rejects
//! are refused before anything is written, naming the flag or the profile file's line.

use std::sync::Arc;

use apiserver_double::prometheus::{FakePrometheus, PromQuery, Reply};
use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{DoubleEnv, fixture, root};
use serde_json::{Value, json};

const ROUTE_FLAGS: [&str; 8] = ["--http-timeout", "30s", "--retries", "3", "--per-try-timeout", "10s", "--retry-on", "5xx,connect-failure,503"];

fn expected_retries() -> Value {
    json!({"attempts": 3, "perTryTimeout": "10s", "retryOn": "5xx,connect-failure,503"})
}

/// The demo platform of `migrate.rs` (below the fixture's `# demo chart` line) in `pyairtable`,
/// with istiod.
fn pyairtable() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(fixture("tests/e2e/fixtures/platform.yaml")).unwrap();
    let chart = &text[text.find("\n# demo chart").expect("demo chart marker")..];
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pyairtable"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        apiserver_double::istiod(None),
    ];
    docs.extend(apiserver_double::parse_documents(chart).unwrap().into_iter().filter(|d| d["kind"] != "Pod"));
    for doc in docs {
        d.create(doc).unwrap();
    }
    d
}

fn shop() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/shop.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        d.create(doc).unwrap();
    }
    d
}

fn writes(d: &BlockingDouble) -> usize {
    d.requests().iter().filter(|r| r.method != "GET" && r.param("dryRun").as_deref() != Some("All")).count()
}

#[test]
fn enable_writes_timeouts_and_retries_on_every_http_route() {
    let d = pyairtable();
    let e = DoubleEnv::new(&d, "pyairtable");
    let mut args = vec!["enable", "--timeout", "60s"];
    args.extend(ROUTE_FLAGS);
    let r = e.mesh_migrate(&args).expect_code(0);
    assert!(
        r.stderr.contains("enable: the HTTP routes of the VirtualServices carry timeout 30s, 3 retries, 10s per try on 5xx,connect-failure,503"),
        "{}",
        r.stderr
    );
    // The databases get no VirtualService, and the note names them.
    assert!(r.stderr.contains("so none of it: postgres-core: headless, postgres-llm: headless, redis: headless"), "{}", r.stderr);
    let vss = d.list("networking.istio.io/v1", "VirtualService", Some("pyairtable"));
    assert!(vss.len() >= 5, "{vss:?}");
    for vs in &vss {
        let http = vs["spec"]["http"].as_array().unwrap();
        assert!(!http.is_empty() && vs["spec"].get("tcp").is_none(), "{vs}");
        for route in http {
            assert_eq!(route["timeout"], "30s", "{vs}");
            assert_eq!(route["retries"], expected_retries(), "{vs}");
        }
    }
    let drs = d.list("networking.istio.io/v1", "DestinationRule", Some("pyairtable"));
    let mut all = vss.clone();
    all.extend(drs);
    assert_eq!(e2e::validate_objects(&all), all.len());

    // Rollback removes them with the rest.
    e.mesh_migrate(&["rollback"]).expect_code(0);
    assert!(d.list("networking.istio.io/v1", "VirtualService", Some("pyairtable")).is_empty());
}

#[test]
fn enable_dry_run_shows_the_routes_and_bad_values_are_refused_before_any_write() {
    let d = pyairtable();
    let e = DoubleEnv::new(&d, "pyairtable");
    let before = writes(&d);
    // -o yaml prints the objects as the plan leaves them: they validate and carry the values.
    let mut args = vec!["enable", "--dry-run=client", "-o", "json", "--http-timeout", "2.5s", "--retries", "0"];
    args.push("--max-connections=50");
    let r = e.mesh_migrate(&args).expect_code(0);
    let out = r.json();
    let items: Vec<Value> = out["items"].as_array().or_else(|| out.as_array()).unwrap_or_else(|| panic!("{out}")).clone();
    let vss: Vec<&Value> = items.iter().filter(|o| o["kind"] == "VirtualService").collect();
    assert!(!vss.is_empty(), "{out}");
    for vs in &vss {
        assert_eq!(vs["spec"]["http"][0]["timeout"], "2.5s");
        assert_eq!(vs["spec"]["http"][0]["retries"], json!({"attempts": 0}));
    }
    let istio: Vec<Value> = items.iter().filter(|o| o["apiVersion"].as_str().unwrap_or_default().contains("istio.io")).cloned().collect();
    assert_eq!(e2e::validate_objects(&istio), istio.len());
    assert_eq!(writes(&d), before, "a client dry run writes nothing");

    // Values Istio's validation rejects: refused, naming the flag, nothing written.
    for (flags, said) in [
        (vec!["--http-timeout", "30"], "--http-timeout: `30` is not a duration"),
        (vec!["--retries", "3", "--retry-on", "5xx,teapot"], "--retry-on: `teapot` is not a retry policy Istio accepts"),
        (vec!["--retries", "3", "--retry-on", "5xx, 503"], "--retry-on: ` 503` is not a retry policy"),
        (vec!["--per-try-timeout", "2s"], "--per-try-timeout: set retries too"),
        (vec!["--retries", "0", "--retry-on", "5xx"], "--retry-on: retries is 0"),
        (vec!["--retries", "2", "--per-try-timeout", "0.5ms"], "--per-try-timeout: `0.5ms`"),
    ] {
        let mut args = vec!["enable"];
        args.extend(flags.iter().copied());
        let r = e.mesh_migrate(&args);
        assert_eq!(r.code, 2, "{flags:?}: {r:?}");
        assert!(r.stderr.contains(said), "{flags:?}: {}", r.stderr);
        assert_eq!(writes(&d), before, "{flags:?} wrote something");
    }
    // The same from a profile file: the file and the line are named.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    std::fs::write(&profile, "maxConnections: 50\nretries: 3\nretryOn: gateway-eror\n").unwrap();
    let r = e.mesh_migrate(&["enable", "--profile", profile.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&format!("traffic profile {}: line 3: retryOn: `gateway-eror`", profile.display())), "{}", r.stderr);
    assert_eq!(writes(&d), before);
}

/// Healthy gate answers.
fn healthy() -> apiserver_double::prometheus::Script {
    Arc::new(|q: &PromQuery| {
        if q.query.contains("istio_requests_total") {
            Reply::Value(0.9995)
        } else if q.query.contains("histogram_quantile") {
            Reply::Value(42.5)
        } else {
            Reply::Empty
        }
    })
}

#[test]
fn ns_create_takes_the_same_flags_and_shift_keeps_them() {
    let d = shop();
    // An Ingress: the Istio gateway's VirtualServices serving it carry the profile too.
    d.create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
        .unwrap();
    let e = DoubleEnv::new(&d, "default");
    let mut args = vec!["ns", "create", "shop"];
    args.extend(ROUTE_FLAGS);
    let r = e.mesh_migrate(&args).expect_code(0);
    assert!(r.stdout.contains("the HTTP routes of the splitting VirtualServices carry timeout 30s, 3 retries, 10s per try on 5xx,connect-failure,503"), "{}", r.stdout);
    let check = |weight: i64| {
        let vss = d.list("networking.istio.io/v1", "VirtualService", Some("shop-mesh"));
        let split: Vec<&Value> = vss.iter().filter(|v| v["metadata"]["labels"]["meshmove.io/role"] == "traffic-shift" || v["spec"]["hosts"][0].as_str().is_some_and(|h| h.ends_with(".shop.svc.cluster.local"))).collect();
        assert!(split.len() >= 2, "{vss:?}");
        for vs in &split {
            for route in vs["spec"]["http"].as_array().into_iter().flatten() {
                assert_eq!(route["timeout"], "30s", "{vs}");
                assert_eq!(route["retries"], expected_retries(), "{vs}");
                assert_eq!(route["route"][1]["weight"], weight, "{vs}");
            }
            for route in vs["spec"]["tcp"].as_array().into_iter().flatten() {
                assert!(route.get("timeout").is_none() && route.get("retries").is_none(), "{vs}");
            }
        }
        let external: Vec<&Value> = vss.iter().filter(|v| v["metadata"]["labels"]["mesh-migrate.meshmove.io/role"] == "external-traffic").collect();
        assert_eq!(external.len(), 1, "{vss:?}");
        let routes = external[0]["spec"]["http"].as_array().unwrap();
        assert!(routes.len() >= 2, "{}", external[0]);
        for route in routes {
            assert_eq!(route["timeout"], "30s", "{}", external[0]);
            assert_eq!(route["retries"], expected_retries(), "{}", external[0]);
            assert_eq!(route["route"][1]["weight"], weight, "{}", external[0]);
        }
        let mut all = vss.clone();
        all.extend(d.list("networking.istio.io/v1", "DestinationRule", Some("shop-mesh")));
        assert_eq!(e2e::validate_objects(&all), all.len());
    };
    check(0);
    let prom = FakePrometheus::start(healthy()).unwrap();
    let url = prom.url();
    e.mesh_migrate(&["ns", "shift", "shop", "25", "--prometheus-url", &url, "--interval", "30ms", "--check-every", "10ms"]).expect_code(0);
    check(25);

    // Refused like enable's, before anything is written.
    let d2 = shop();
    let e2 = DoubleEnv::new(&d2, "default");
    let before = writes(&d2);
    let r = e2.mesh_migrate(&["ns", "create", "shop", "--retries", "2", "--retry-on", "5xx,999"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--retry-on: `999` is not a retry policy Istio accepts"), "{}", r.stderr);
    assert_eq!(writes(&d2), before);
}
