//! The published output schema (`docs/schemas/meshmove-output.schema.json`) against what the
//! built binaries print with `-o json`, validated by an independent JSON Schema implementation
//! (Python `jsonschema`, Draft 2020-12, from the test venv). The mutating commands' `objectList`
//! and the refusals are checked where those commands run against the API double
//! (`output_contract.rs`, `migrate.rs`); here, every analysis output from files, and the schema
//! itself rejecting documents that break it.

use e2e::{plugin, validate_shape};
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
        let r = e2e::run(
            &e2e::venv_tool("python"),
            &[e2e::root().join("tests/tools/validate_json.py").to_str().unwrap(), shape, "-"],
            Some(&doc.to_string()),
            &[],
        );
        assert_eq!(r.code, 1, "{shape} accepted a broken document:\n{doc:#}\n{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(": at "), "the failure names where: {}", r.stdout);
    }
}
