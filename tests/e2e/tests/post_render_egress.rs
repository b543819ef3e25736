//! Egress isolation of the post-renderer judged by `kubectl dbiso explain`'s engine on the
//! output: databases outside the cluster that the chart names stay reachable (by address, or by
//! DNS name with its range configured), a DNS name without a range leaves the workload's egress
//! open and the report says which setting restricts it, and egress rules live in policies named
//! for egress. Every output is schema-validated (Kubernetes 1.37).

use std::path::Path;

use e2e::{bin, fixture, krew_path, root, run, venv_tool};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Every document of a stream as JSON (PyYAML reads it; empty documents dropped).
fn documents(stream: &str) -> Vec<serde_json::Value> {
    let script = "import sys, json, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d], default=str))";
    let r = run(&venv_tool("python"), &["-c", script], Some(stream), &[]).expect_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

/// The engine's verdict (`allowed` of `explain -o json`), checked against its exit code.
fn allowed(output: &str, src: &str, dst: &str, port: &str) -> bool {
    let r = run(
        &bin("dbiso"),
        &[
            "explain", src, dst, port, "-f", output, "-n", "shop", "-o", "json",
        ],
        None,
        &[],
    );
    let verdict: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let allowed = verdict["allowed"].as_bool().expect("a verdict");
    assert_eq!(r.code, if allowed { 0 } else { 1 }, "{r:?}");
    allowed
}

#[test]
fn external_databases_stay_reachable_and_egress_lives_in_egress_policies() {
    let dir = tempfile::tempdir().unwrap();
    let input =
        std::fs::read_to_string(fixture("tests/e2e/fixtures/external-db/chart.yaml")).unwrap();
    let cfg = fixture("tests/e2e/fixtures/external-db/mesh.yaml");
    let r = run(
        &bin("mesh-migrate"),
        &[
            "post-render",
            "--config",
            cfg.to_str().unwrap(),
            "--report",
            "-o",
            "json",
        ],
        Some(&input),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = write(dir.path(), "out.yaml", &r.stdout);
    let v = run(
        &root().join("tests/tools/validate.sh"),
        &[&out],
        None,
        &[("PATH", krew_path().to_str().unwrap())],
    );
    assert_eq!(
        v.code, 0,
        "schema validation failed:\n{}\n{}",
        v.stdout, v.stderr
    );

    // By address (a ConfigMap's DATABASE_URL): that address on that port, nothing else.
    assert!(allowed(
        &out,
        "deploy/billing",
        "cidr:10.0.5.7/32",
        "5432/TCP"
    ));
    assert!(!allowed(
        &out,
        "deploy/billing",
        "cidr:10.0.5.7/32",
        "22/TCP"
    ));
    assert!(!allowed(
        &out,
        "deploy/billing",
        "cidr:198.51.100.7/32",
        "5432/TCP"
    ));
    // By DNS name with its range in the configuration.
    assert!(allowed(
        &out,
        "deploy/ledger",
        "cidr:10.20.3.4/32",
        "5432/TCP"
    ));
    assert!(!allowed(
        &out,
        "deploy/ledger",
        "cidr:10.30.0.1/32",
        "5432/TCP"
    ));
    // By DNS name without a range: egress left open (do no harm), and reported.
    assert!(allowed(
        &out,
        "deploy/reports",
        "cidr:203.0.113.5/32",
        "3306/TCP"
    ));
    assert!(
        !allowed(&out, "deploy/web", "cidr:203.0.113.5/32", "3306/TCP"),
        "web names no outside host: isolated"
    );
    // The release's own calls survive egress isolation.
    for callee in ["deploy/billing", "deploy/ledger", "deploy/reports"] {
        assert!(
            allowed(&out, "deploy/web", callee, "8000/TCP"),
            "web -> {callee}"
        );
    }

    let report: serde_json::Value =
        serde_json::from_str(&r.stderr).expect("--report -o json is JSON on stderr");
    let open: Vec<&serde_json::Value> = report["withheld"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["egress"] == true)
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["subject"], "Deployment/reports");
    let (reason, setting) = (
        open[0]["reason"].as_str().unwrap(),
        open[0]["isolateWith"].as_str().unwrap(),
    );
    assert!(
        reason.contains("reports-db.example.com")
            && setting.starts_with("networkPolicies.externalHosts:"),
        "{reason} / {setting}"
    );

    // Egress rules live in `-egress` policies of type Egress, ingress rules in `-ingress` ones.
    let docs: Vec<serde_json::Value> = documents(&r.stdout)
        .into_iter()
        .filter(|d| d["kind"] == "NetworkPolicy")
        .collect();
    let egress: Vec<&str> = docs
        .iter()
        .filter(|d| d["spec"]["policyTypes"] == serde_json::json!(["Egress"]))
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    let ingress: Vec<&str> = docs
        .iter()
        .filter(|d| d["spec"]["policyTypes"] == serde_json::json!(["Ingress"]))
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        egress,
        [
            "shop-billing-egress",
            "shop-ledger-egress",
            "shop-web-egress"
        ],
        "{docs:#?}"
    );
    assert_eq!(
        ingress.len() + egress.len(),
        docs.len(),
        "no policy mixes both: {docs:#?}"
    );
    assert!(
        ingress.iter().all(|n| n.ends_with("-ingress"))
            && ingress.contains(&"shop-reports-ingress"),
        "{ingress:?}"
    );

    // Idempotent.
    let again = run(
        &bin("mesh-migrate"),
        &["post-render", "--config", cfg.to_str().unwrap()],
        Some(&r.stdout),
        &[],
    );
    assert_eq!(again.stdout, r.stdout);
}

#[test]
fn a_bad_range_in_the_configuration_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "mesh.yaml",
        "networkPolicies:\n  externalHosts:\n    db.example.com: [10.20.0.0/33]\n",
    );
    let input =
        std::fs::read_to_string(fixture("tests/e2e/fixtures/external-db/chart.yaml")).unwrap();
    let r = run(
        &bin("mesh-migrate"),
        &["post-render", "--config", &cfg],
        Some(&input),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.is_empty() && r.stderr.contains("line 3") && r.stderr.contains("10.20.0.0/33"),
        "{}",
        r.stderr
    );
}
