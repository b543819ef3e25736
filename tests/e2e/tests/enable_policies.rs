//! `enable` after a `mode: none` post-render, against the API double: the suite's own policies
//! (generated without the mesh's ports) get the sidecar's metrics ports in the same plan, shown
//! by the dry run, journaled and rolled back; a policy the suite did not write is reported and
//! never changed. `kubectl dbiso explain` on the live namespace is the judge.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{DoubleEnv, Run, bin, fixture, run, venv_tool};
use serde_json::{Value, json};

const NS: &str = "shop";

fn documents(stream: &str) -> Vec<Value> {
    let script = "import sys, json, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d], default=str))";
    let r = run(&venv_tool("python"), &["-c", script], Some(stream), &[]).expect_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

/// A workload installed by hand, with a policy the suite did not write: monitoring may reach it
/// on its own port only.
fn foreign() -> Vec<Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "legacy", "namespace": NS},
               "spec": {"selector": {"matchLabels": {"app": "legacy"}}, "template": {"metadata": {"labels": {"app": "legacy"}},
                        "spec": {"containers": [{"name": "legacy", "image": "acme/legacy:1", "ports": [{"containerPort": 9102}]}]}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "legacy-metrics", "namespace": NS},
               "spec": {"podSelector": {"matchLabels": {"app": "legacy"}}, "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                                     "ports": [{"protocol": "TCP", "port": 9102}]}]}}),
    ]
}

/// The chart post-rendered with `mode: none`, installed in the double, with Prometheus in
/// `monitoring` and istiod.
fn installed() -> BlockingDouble {
    let chart =
        std::fs::read_to_string(fixture("tests/e2e/fixtures/external-db/chart.yaml")).unwrap();
    let out = run(
        &bin("mesh-migrate"),
        &["post-render", "--mode", "none"],
        Some(&chart),
        &[],
    )
    .expect_code(0);
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    for ns in [NS, "istio-system", "monitoring"] {
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    d.create(apiserver_double::istiod(None)).unwrap();
    d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "prometheus", "namespace": "monitoring"},
        "spec": {"selector": {"matchLabels": {"app": "prometheus"}}, "template": {"metadata": {"labels": {"app": "prometheus"}},
                 "spec": {"containers": [{"name": "prometheus", "image": "prom/prometheus:v3.5.0", "ports": [{"containerPort": 9090}]}]}}}}))
    .unwrap();
    for mut doc in documents(&out.stdout) {
        doc["metadata"]["namespace"] = json!(NS);
        let what = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
        d.create(doc)
            .unwrap_or_else(|e| panic!("creating {what}: {e}"));
    }
    for doc in foreign() {
        d.create(doc).unwrap();
    }
    d
}

fn policies(d: &BlockingDouble) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = d
        .list("networking.k8s.io/v1", "NetworkPolicy", Some(NS))
        .into_iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The engine's verdict on the live namespace (`allowed` of `explain -o json`, checked against
/// its exit code).
fn allowed(e: &DoubleEnv, src: &str, dst: &str, port: &str) -> bool {
    let r: Run = run(
        &bin("dbiso"),
        &["explain", src, dst, port, "-o", "json"],
        None,
        &[("KUBECONFIG", &e.kubeconfig), ("USER", "tester")],
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|err| panic!("{err}: {r:?}"));
    let allowed = v["allowed"].as_bool().expect("a verdict");
    assert_eq!(r.code, if allowed { 0 } else { 1 }, "{r:?}");
    allowed
}

#[test]
fn enable_updates_the_suites_policies_for_the_sidecar_and_reports_the_others() {
    let d = installed();
    let e = DoubleEnv::new(&d, NS);
    let before = policies(&d);
    let generated: Vec<&str> = before
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.ends_with("-ingress"))
        .collect();
    assert!(
        generated.contains(&"shop-web-ingress") && generated.contains(&"shop-billing-ingress"),
        "{before:?}"
    );
    for dst in ["deploy/web", "deploy/billing"] {
        assert!(
            !allowed(&e, "deploy/monitoring/prometheus", dst, "15020/TCP"),
            "mode none: {dst} 15020 blocked before"
        );
    }

    // The dry run shows the policy changes and writes nothing.
    let dry = e
        .mesh_migrate(&["enable", "--dry-run=client"])
        .expect_code(0);
    assert!(
        dry.stdout.contains("networkpolicy") || dry.stdout.contains("NetworkPolicy"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("15020") && dry.stdout.contains("shop-web-ingress"),
        "{}",
        dry.stdout
    );
    assert_eq!(policies(&d), before, "a dry run wrote");

    let en = e
        .mesh_migrate(&["enable", "--timeout", "60s"])
        .expect_code(0);
    assert!(
        en.stderr.contains("MM1051") && en.stderr.contains("legacy-metrics"),
        "the foreign policy is reported: {}",
        en.stderr
    );
    let after = policies(&d);
    for (name, spec) in &after {
        let was = &before
            .iter()
            .find(|(n, _)| n == name)
            .expect("no policy created")
            .1;
        if generated.contains(&name.as_str()) {
            assert_ne!(spec, was, "{name} updated");
        } else {
            assert_eq!(spec, was, "{name} is not the suite's: untouched");
        }
    }
    // The engine: monitoring reaches the sidecar's ports; nobody else does.
    for dst in [
        "deploy/web",
        "deploy/billing",
        "deploy/ledger",
        "deploy/reports",
    ] {
        for port in ["15020/TCP", "15090/TCP"] {
            assert!(
                allowed(&e, "deploy/monitoring/prometheus", dst, port),
                "{dst} {port} after enable"
            );
        }
    }
    assert!(
        !allowed(&e, "deploy/web", "deploy/billing", "15020/TCP"),
        "only monitoring gets the metrics ports"
    );
    assert!(
        !allowed(
            &e,
            "deploy/monitoring/prometheus",
            "deploy/legacy",
            "15020/TCP"
        ),
        "the foreign policy still blocks it (reported)"
    );
    assert!(
        allowed(&e, "deploy/web", "deploy/billing", "8000/TCP"),
        "the release's calls are kept"
    );

    // Rollback puts the policies back exactly.
    e.mesh_migrate(&["rollback", "--timeout", "60s"])
        .expect_code(0);
    assert_eq!(policies(&d), before);
}
