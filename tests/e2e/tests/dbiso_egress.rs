//! `kubectl dbiso generate --egress` from files: the same egress generator as the
//! post-renderer's, judged by `kubectl dbiso explain`'s engine on the input with the output
//! added. Databases outside the cluster stay reachable (by address, or by DNS name with its range
//! given by `--external-host`), the Services a workload calls too, nothing else; a DNS name
//! without a range leaves that workload's egress open, naming the flag that restricts it. Every
//! output is schema-validated (Kubernetes 1.37); bad flag values exit 2 with nothing on stdout.

use std::path::Path;

use e2e::{bin, fixture, krew_path, root, run};

const LEDGER: &str = "ledger.cluster-abc123.eu-west-1.rds.amazonaws.com";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// The engine's verdict on the chart with the policies (`allowed` of `explain -o json`), checked
/// against its exit code.
fn allowed(chart: &str, policies: &str, src: &str, dst: &str, port: &str) -> bool {
    let r = run(&bin("dbiso"), &["explain", src, dst, port, "-f", chart, "-f", policies, "-n", "shop", "-o", "json"], None, &[]);
    let verdict: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let allowed = verdict["allowed"].as_bool().expect("a verdict");
    assert_eq!(r.code, if allowed { 0 } else { 1 }, "{r:?}");
    allowed
}

#[test]
fn egress_policies_keep_what_is_in_use_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let chart = fixture("tests/e2e/fixtures/external-db/chart.yaml");
    let chart = chart.to_str().unwrap();
    let range = format!("{LEDGER}=10.20.0.0/16");
    let r = run(&bin("dbiso"), &["generate", "-f", chart, "-n", "shop", "--egress", "--external-host", &range, "-o", "json"], None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|p| assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Egress"]), "{p}"))
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["dbiso-billing-egress", "dbiso-ledger-egress", "dbiso-web-egress"], "{}", r.stdout);
    // reports names an outside host by DNS name without a range: left open, with the flag.
    assert!(
        r.stderr.lines().any(|l| l.starts_with("note: Deployment/reports (namespace shop): no egress policy generated")
            && l.contains("--external-host reports-db.example.com=<CIDR>")),
        "{}",
        r.stderr
    );

    let yaml = run(&bin("dbiso"), &["generate", "-f", chart, "-n", "shop", "--egress", "--external-host", &range], None, &[]).expect_code(0);
    let out = write(dir.path(), "policies.yaml", &yaml.stdout);
    let v = run(&root().join("tests/tools/validate.sh"), &[&out], None, &[("PATH", krew_path().to_str().unwrap())]);
    assert_eq!(v.code, 0, "schema validation failed:\n{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("validated 3 objects: 0 failed"), "{}", v.stdout);

    // In use: the external database by address on its port, the one by DNS name within its
    // range, and web's calls to the three Services.
    assert!(allowed(chart, &out, "deploy/billing", "cidr:10.0.5.7/32", "5432/TCP"));
    assert!(allowed(chart, &out, "deploy/ledger", "cidr:10.20.3.4/32", "5432/TCP"));
    for callee in ["deploy/billing", "deploy/ledger", "deploy/reports"] {
        assert!(allowed(chart, &out, "deploy/web", callee, "8000/TCP"), "web -> {callee}");
    }
    // Nothing else: another port, another address, a workload that names no outside host.
    assert!(!allowed(chart, &out, "deploy/billing", "cidr:10.0.5.7/32", "22/TCP"));
    assert!(!allowed(chart, &out, "deploy/billing", "cidr:198.51.100.7/32", "5432/TCP"));
    assert!(!allowed(chart, &out, "deploy/ledger", "cidr:10.30.0.1/32", "5432/TCP"));
    assert!(!allowed(chart, &out, "deploy/web", "cidr:203.0.113.5/32", "3306/TCP"));
    assert!(!allowed(chart, &out, "deploy/billing", "deploy/ledger", "8000/TCP"), "billing calls nobody");
    // reports' egress stays open (do no harm).
    assert!(allowed(chart, &out, "deploy/reports", "cidr:203.0.113.5/32", "3306/TCP"));
}

#[test]
fn bad_external_hosts_are_refused() {
    let chart = fixture("tests/e2e/fixtures/external-db/chart.yaml");
    let chart = chart.to_str().unwrap();
    for (flag, expect) in [
        (format!("{LEDGER}=10.20.0.0/33"), "10.20.0.0/33"),
        (LEDGER.to_string(), "HOST=CIDR"),
        (format!("={LEDGER}"), "HOST=CIDR"),
    ] {
        let r = run(&bin("dbiso"), &["generate", "-f", chart, "-n", "shop", "--egress", "--external-host", &flag], None, &[]);
        assert_eq!(r.code, 2, "{flag}: {r:?}");
        assert!(r.stdout.is_empty() && r.stderr.contains("--external-host") && r.stderr.contains(expect), "{flag}: {}", r.stderr);
    }
    // Without --egress the ranges would do nothing: refused, naming the missing flag.
    let r = run(&bin("dbiso"), &["generate", "-f", chart, "-n", "shop", "--external-host", &format!("{LEDGER}=10.20.0.0/16")], None, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.is_empty() && r.stderr.contains("--egress"), "{}", r.stderr);
}
