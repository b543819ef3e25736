//! The published output schema (`docs/schemas/meshmove-output.schema.json`) against what the
//! built binaries print with `-o json`, validated by an independent JSON Schema implementation
//! (Python `jsonschema`, Draft 2020-12, from the test venv). The mutating commands' `objectList`
//! and the refusals are checked where those commands run against the API double
//! (`output_contract.rs`, `migrate.rs`); here, every analysis output from files, every `ns`
//! subcommand against the API double (with `-o yaml` the same document), and the schema itself
//! rejecting documents that break it.

use std::sync::Arc;

use apiserver_double::prometheus::{FakePrometheus, PromQuery, Reply};
use apiserver_double::{Double, DoubleOptions, crds};
use e2e::{Run, plugin, validate_shape};
use serde_json::{Value, json};

const PLATFORM: &str = "tests/e2e/fixtures/platform.yaml";
const SPIRE: &str = "crates/spire/tests/fixtures/healthy/input.yaml";
const SPIRE_BROKEN: &str = "crates/spire/tests/fixtures/official-chart-faults/input.yaml";

fn json_of(name: &str, args: &[&str]) -> Value {
    let r = plugin(name, args);
    assert!(r.code == 0 || r.code == 1, "{name} {args:?}: exit {}\n{}", r.code, r.stderr);
    r.json()
}

#[test]
fn every_report_is_a_meshmove_report() {
    let reports = [
        json_of("mesh-migrate", &["precheck", "-f", PLATFORM, "-o", "json"]),
        json_of("dbiso", &["audit", "-f", PLATFORM, "-o", "json"]),
        json_of("spire-check", &["-f", SPIRE, "-o", "json"]),
        json_of("spire-check", &["-f", SPIRE_BROKEN, "-o", "json"]),
    ];
    for report in &reports {
        validate_shape("report", report);
    }
    // Not vacuous: the inputs have findings, and spire-check's report carries its checks.
    assert!(reports.iter().all(|r| !r["findings"].as_array().unwrap().is_empty()), "{reports:#?}");
    assert!(!reports[3]["checks"].as_array().unwrap().is_empty());
}

#[test]
fn dbiso_reach_explain_diff_and_generate() {
    let reach = json_of("dbiso", &["reach", "-f", PLATFORM, "-o", "json"]);
    assert!(!reach.as_array().unwrap().is_empty());
    validate_shape("reach", &reach);
    for (src, dst) in [("deploy/pyairtable/api-gateway", "sts/pyairtable/postgres-core"), ("deploy/pyairtable/worker", "sts/pyairtable/redis")] {
        let explanation = json_of("dbiso", &["explain", "-f", PLATFORM, "-A", src, dst, "5432/TCP", "-o", "json"]);
        validate_shape("explanation", &explanation);
    }
    let diff = json_of("dbiso", &["generate", "-f", PLATFORM, "--diff", "-o", "json"]);
    assert!(!diff["entries"].as_array().unwrap().is_empty(), "the generated policies change something");
    validate_shape("reachDiff", &diff);
    let objects = json_of("dbiso", &["generate", "-f", PLATFORM, "-o", "json"]);
    assert!(!objects["items"].as_array().unwrap().is_empty());
    validate_shape("objectList", &objects);
}

#[test]
fn spire_check_identities() {
    for input in [SPIRE, SPIRE_BROKEN] {
        let rows = json_of("spire-check", &["identities", "-f", input, "-o", "json"]);
        assert!(!rows.as_array().unwrap().is_empty(), "{input}");
        validate_shape("identities", &rows);
    }
}

/// The validator fails documents that break the schema (so the checks above can fail).
#[test]
fn the_schema_rejects_broken_documents() {
    let report = json_of("mesh-migrate", &["precheck", "-f", PLATFORM, "-o", "json"]);
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut doc = report.clone();
        edit(&mut doc);
        doc
    };
    let cases = [
        ("report", broken(&|d| d.as_object_mut().unwrap().remove("summary").map(drop).unwrap())),
        ("report", broken(&|d| d["schema"] = json!("meshmove.report/v2"))),
        ("report", broken(&|d| d["findings"][0]["severity"] = json!("fatal"))),
        ("report", broken(&|d| d["findings"][0]["code"] = json!("XX1"))),
        ("objectList", json!({"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]})),
        ("refusal", json!({"namespace": "shop", "ready": true, "blockers": []})),
        ("reach", json!([{"src": {"kind": "External"}, "dst": {"kind": "Deployment", "name": "a"}, "conn": "all"}])),
        ("reach", json!([{"src": {"kind": "Deployment", "name": "a"}, "dst": {"kind": "Deployment", "name": "b"}, "conn": [{"protocol": "TCP", "port": 0}]}])),
    ];
    for (shape, doc) in cases {
        assert_rejected(shape, &doc);
    }
}

/// The validator fails `doc` as a `shape`, naming where.
#[track_caller]
fn assert_rejected(shape: &str, doc: &Value) {
    let r = e2e::run(
        &e2e::venv_tool("python"),
        &[e2e::root().join("tests/tools/validate_json.py").to_str().unwrap(), shape, "-"],
        Some(&doc.to_string()),
        &[],
    );
    assert_eq!(r.code, 1, "{shape} accepted a broken document:\n{doc:#}\n{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(": at "), "the failure names where: {}", r.stdout);
}

/// `doc` with one edit.
fn broken(doc: &Value, edit: impl Fn(&mut Value)) -> Value {
    let mut doc = doc.clone();
    edit(&mut doc);
    doc
}

/// `kubectl mesh-migrate` against the double, with the namespace fixture of the `ns` tests.
struct Ns {
    double: apiserver_double::BlockingDouble,
    _dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Ns {
    fn new() -> Ns {
        let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
        double.install_crds(crds::istio()).unwrap();
        let text = std::fs::read_to_string(e2e::root().join("tests/e2e/fixtures/ns-migrate/shop.yaml")).unwrap();
        for doc in apiserver_double::parse_documents(&text).unwrap() {
            double.create(doc).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap().to_str().unwrap().to_string();
        Ns { double, _dir: dir, kubeconfig }
    }

    fn mm(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.as_str()];
        all.extend_from_slice(args);
        e2e::run(&e2e::bin("mesh-migrate"), &all, None, &[("USER", "alice")])
    }

    /// `args -o json` and `args -o yaml` (exit `code`): the JSON document, and the YAML
    /// documents parsed by an independent YAML parser.
    fn json_and_yaml(&self, args: &[&str], code: i32) -> (Value, Vec<Value>) {
        let j = self.mm(&[args, &["-o", "json"]].concat()).expect_code(code);
        let y = self.mm(&[args, &["-o", "yaml"]].concat()).expect_code(code);
        (j.json(), apiserver_double::parse_documents(&y.stdout).unwrap_or_else(|e| panic!("{args:?} -o yaml: {e}\n{}", y.stdout)))
    }

    /// A mutating `ns` step under the output contract: `--dry-run=client -o json` is an
    /// `objectList` whose items are the `-o yaml` stream; `--dry-run=server` a
    /// `namespaceMigrationReport`, the same as YAML; then the step for real, `-o json`, whose
    /// report is returned.
    fn step(&self, args: &[&str], command: &str) -> Value {
        let before = self.double.snapshot();
        let (list, docs) = self.json_and_yaml(&[args, &["--dry-run=client"]].concat(), 0);
        validate_shape("objectList", &list);
        assert_eq!(list["items"].as_array().unwrap(), &docs, "{args:?} --dry-run=client: -o json and -o yaml differ");
        let (server, server_yaml) = self.json_and_yaml(&[args, &["--dry-run=server"]].concat(), 0);
        validate_shape("namespaceMigrationReport", &server);
        assert_eq!(server_yaml, [server.clone()], "{args:?} --dry-run=server: -o yaml is not the JSON document");
        assert_eq!((server["command"].as_str(), server["dryRun"].as_str()), (Some(command), Some("server")), "{server:#}");
        assert!(self.double.snapshot().diff(&before).is_empty(), "{args:?}: a dry run changed the cluster");
        // Whole objects that pass strict schema validation (Istio's CRD schemas for Istio's).
        let items = list["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            e2e::validate_objects(&items);
        }
        let run = self.mm(&[args, &["-o", "json"]].concat()).expect_code(0);
        let report = run.json();
        validate_shape("namespaceMigrationReport", &report);
        // Each object's outcome on stderr, in kubectl's words, as for every mutating command.
        for o in report["outcomes"].as_array().unwrap() {
            let line = format!("/{} {}", o["target"]["name"].as_str().unwrap(), o["action"].as_str().unwrap());
            assert!(run.stderr.lines().any(|l| l.contains(&line)), "{args:?}: no `{line}` on stderr:\n{}", run.stderr);
        }
        // What the client dry run printed is what the API server holds after the step, besides
        // what the server adds by itself (a new Namespace's `kubernetes.io/metadata.name` label
        // and finalizer); Secret values are masked in the preview, so Secrets are left out.
        for o in &items {
            let (kind, name) = (o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap());
            let live = self.double.get(o["apiVersion"].as_str().unwrap(), kind, o["metadata"]["namespace"].as_str(), name);
            let live = live.unwrap_or_else(|| panic!("{args:?}: {kind}/{name} was previewed but is not in the cluster"));
            if kind != "Secret" {
                let (live, printed) = (e2e::normal_object(&live), e2e::normal_object(o));
                assert!(holds(&live, &printed), "{args:?}: {kind}/{name} is not as previewed:\n{live:#}\n{printed:#}");
            }
        }
        assert_eq!((report["command"].as_str(), report["dryRun"].as_str()), (Some(command), Some("none")), "{report:#}");
        // The report says what the cluster now holds: the weight of every splitting route.
        let mesh = self.double.list("networking.istio.io/v1", "VirtualService", Some("shop-mesh"));
        let routes = mesh.iter().filter(|v| v["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-mesh-migrate");
        let mut checked = 0;
        for vs in routes {
            let weights: Vec<i64> = vs["spec"]["http"].as_array().into_iter().flatten().chain(vs["spec"]["tcp"].as_array().into_iter().flatten())
                .filter_map(|r| r["route"].as_array()?.iter().find(|d| d["destination"]["host"].as_str().is_some_and(|h| h.contains(".shop-mesh.")))?["weight"].as_i64())
                .collect();
            assert!(!weights.is_empty() && weights.iter().all(|w| Some(*w) == report["weight"].as_i64()), "{}: {weights:?} vs {report:#}", vs["metadata"]["name"]);
            checked += 1;
        }
        assert!(checked > 0 || command == "cleanup", "no splitting VirtualService after {args:?}: {mesh:#?}");
        report
    }
}

/// Whether `live` holds everything `printed` says: each of its fields with the same value
/// (objects may have more fields; lists have the same items in the same order).
fn holds(live: &Value, printed: &Value) -> bool {
    match (live, printed) {
        (Value::Object(l), Value::Object(p)) => p.iter().all(|(k, v)| l.get(k).is_some_and(|lv| holds(lv, v))),
        (Value::Array(l), Value::Array(p)) => l.len() == p.len() && l.iter().zip(p).all(|(a, b)| holds(a, b)),
        _ => live == printed,
    }
}

/// Healthy metrics: a success rate of 99.95 %, a p99 of 42.5 ms.
fn healthy(q: &PromQuery) -> Reply {
    if q.query.contains("istio_requests_total") {
        Reply::Value(0.9995)
    } else if q.query.contains("histogram_quantile") {
        Reply::Value(42.5)
    } else {
        Reply::Empty
    }
}

/// Every `-o json` of every `ns` subcommand is a documented shape, `-o yaml` is the same
/// document, and the schema refuses each shape broken.
#[test]
fn every_ns_subcommand_prints_a_documented_shape_and_yaml_is_the_same_document() {
    let e = Ns::new();
    let prom = FakePrometheus::start(Arc::new(healthy)).unwrap();
    let url = prom.url();

    let (none, none_yaml) = e.json_and_yaml(&["ns", "status", "shop"], 0);
    validate_shape("namespaceMigrationStatus", &none);
    assert_eq!(none_yaml, [none.clone()]);
    assert!(none["state"].is_null(), "no migration recorded yet: {none:#}");

    let created = e.step(&["ns", "create", "shop"], "create");
    assert_eq!((created["weight"].as_i64(), created["phase"].as_str()), (Some(0), Some("created")));
    let copied = created["copy"]["copied"].as_array().unwrap();
    assert!(e.double.list("apps/v1", "Deployment", Some("shop-mesh")).iter().all(|d| copied.iter().any(|c| *c == format!("Deployment/{}", d["metadata"]["name"].as_str().unwrap()))), "{created:#}");

    let shifted = e.step(&["ns", "shift", "shop", "50", "--prometheus-url", &url], "shift");
    assert_eq!((shifted["weight"].as_i64(), shifted["phase"].as_str(), shifted["passed"].as_bool()), (Some(50), Some("shifting"), Some(true)));
    assert!(shifted["gates"].as_array().unwrap().iter().any(|g| g["gate"] == "success-rate" && g["passed"] == true), "{shifted:#}");

    let (status, status_yaml) = e.json_and_yaml(&["ns", "status", "shop"], 0);
    validate_shape("namespaceMigrationStatus", &status);
    assert_eq!(status_yaml, [status.clone()]);
    assert_eq!((status["state"]["weight"].as_i64(), status["problems"].as_array().map(Vec::len)), (Some(50), Some(0)), "{status:#}");
    let (all, all_yaml) = e.json_and_yaml(&["ns", "status", "-A"], 0);
    validate_shape("namespaceMigrationList", &all);
    assert_eq!(all_yaml, [all.clone()]);
    assert_eq!(all["items"].as_array().unwrap().iter().map(|i| i["namespace"].as_str().unwrap()).collect::<Vec<_>>(), ["shop"]);

    // monitor: one document per refresh, JSON lines; YAML the same samples but for their time.
    let monitor = ["ns", "monitor", "shop", "--for", "300ms", "--every", "100ms", "--prometheus-url", &url];
    let (lines, samples_yaml) = {
        let j = e.mm(&[&monitor[..], &["-o", "json"]].concat()).expect_code(0);
        let y = e.mm(&[&monitor[..], &["-o", "yaml"]].concat()).expect_code(0);
        let lines: Vec<Value> = j.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}"))).collect();
        (lines, apiserver_double::parse_documents(&y.stdout).unwrap())
    };
    assert!(lines.len() >= 2 && samples_yaml.len() >= 2, "a sample per refresh: {lines:?} {samples_yaml:?}");
    let untimed = |v: &Value| broken(v, |d| d["at"] = json!(null));
    for sample in lines.iter().chain(&samples_yaml) {
        validate_shape("namespaceMigrationSample", sample);
        assert_eq!(untimed(sample), untimed(&lines[0]), "the cluster did not change between samples");
    }
    assert_eq!((lines[0]["weight"].as_i64(), lines[0]["mesh"]["successRate"].as_f64()), (Some(50), Some(99.95)));

    let completed = e.step(&["ns", "complete", "shop", "--prometheus-url", &url], "complete");
    assert_eq!((completed["weight"].as_i64(), completed["phase"].as_str()), (Some(100), Some("completed")));
    let rolled_back = e.step(&["ns", "rollback", "shop"], "rollback");
    assert_eq!((rolled_back["weight"].as_i64(), rolled_back["phase"].as_str()), (Some(0), Some("rolled-back")));
    let cleaned = e.step(&["ns", "cleanup", "shop"], "cleanup");
    assert!(cleaned["outcomes"].as_array().unwrap().iter().any(|o| o["target"]["kind"] == "Namespace" && o["action"] == "deleted"), "{cleaned:#}");
    assert!(e.double.get("v1", "Namespace", None, "shop-mesh").is_none());

    // Each new shape, broken, is refused.
    let cases = [
        ("namespaceMigrationReport", broken(&shifted, |d| d["command"] = json!("destroy"))),
        ("namespaceMigrationReport", broken(&shifted, |d| d["weight"] = json!(101))),
        ("namespaceMigrationReport", broken(&created, |d| d["outcomes"][0]["action"] = json!("exploded"))),
        ("namespaceMigrationReport", broken(&created, |d| d["copy"].as_object_mut().unwrap().remove("shared").map(drop).unwrap())),
        ("namespaceMigrationReport", broken(&shifted, |d| d["gates"][0]["passed"] = json!("yes"))),
        ("namespaceMigrationStatus", broken(&status, |d| d.as_object_mut().unwrap().remove("next").map(drop).unwrap())),
        ("namespaceMigrationStatus", broken(&status, |d| d["state"]["phase"] = json!("done"))),
        ("namespaceMigrationStatus", broken(&status, |d| d["state"]["history"][0]["at"] = json!("yesterday"))),
        ("namespaceMigrationStatus", broken(&status, |d| d["state"]["dataPlane"] = json!({"mode": "sidecarRevision"}))),
        ("namespaceMigrationList", broken(&all, |d| d["items"][0]["state"] = json!(null))),
        ("namespaceMigrationSample", broken(&lines[0], |d| d["mesh"]["successRate"] = json!(120))),
        ("namespaceMigrationSample", broken(&lines[0], |d| d["legacy"]["readyPods"] = json!(-1))),
    ];
    for (shape, doc) in &cases {
        assert_rejected(shape, doc);
    }
    // An output format the `ns` commands do not write is refused before anything is read.
    e.double.clear_requests();
    for sub in [&["status", "shop"][..], &["monitor", "shop"], &["create", "shop"], &["shift", "shop", "10"], &["complete", "shop"], &["rollback", "shop"], &["cleanup", "shop"]] {
        let r = e.mm(&[&["ns"][..], sub, &["-o", "name"]].concat());
        assert_eq!(r.code, 2, "{sub:?}: {r:?}");
        assert!(r.stderr.contains("'name'") && r.stderr.contains("table, wide, json, yaml"), "{}", r.stderr);
    }
    assert!(e.double.requests().is_empty(), "refused before anything was read: {:?}", e.double.requests());
}
