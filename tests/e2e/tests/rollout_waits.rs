//! Rollout waits through `kubectl mesh-migrate enable` against the API double: a Deployment past
//! its progress deadline stops the wait at once with the condition's message (exit 1), and a
//! StatefulSet with `updateStrategy: OnDelete` is restarted but not waited for (its controller
//! replaces no pod), which the run says, instead of waiting out `--timeout`. Also: this product's
//! duration flags need units, kubectl's `--request-timeout` keeps its bare seconds.

use std::time::{Duration, Instant};

use apiserver_double::{BlockingDouble, Double, DoubleOptions, FaultRule, crds};
use e2e::{Run, bin, fixture, run};
use serde_json::{Value, json};

const NS: &str = "pyairtable";

fn platform() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("tests/e2e/fixtures/platform.yaml")).unwrap();
    let chart = &text[text.find("\n# demo chart").expect("demo chart marker")..];
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        apiserver_double::istiod(None),
    ];
    docs.extend(apiserver_double::parse_documents(chart).unwrap().into_iter().filter(|d| d["kind"] != "Pod"));
    docs
}

/// The platform with its database StatefulSets on `updateStrategy: OnDelete`.
fn double(on_delete: bool) -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    for mut doc in platform() {
        if on_delete && doc["kind"] == "StatefulSet" {
            doc["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        }
        d.create(doc).unwrap();
    }
    d
}

fn mm(kubeconfig: &str, args: &[&str]) -> Run {
    run(&bin("mesh-migrate"), args, None, &[("KUBECONFIG", kubeconfig), ("USER", "tester")])
}

fn proxies(d: &BlockingDouble, prefix: &str) -> Vec<(String, bool)> {
    let mut pods: Vec<(String, bool)> = d
        .list("v1", "Pod", Some(NS))
        .iter()
        .filter(|p| p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|p| {
            let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
            (uid, p["spec"]["containers"].as_array().unwrap().iter().any(|c| c["name"] == "istio-proxy"))
        })
        .collect();
    pods.sort();
    pods
}

#[test]
fn on_delete_statefulsets_are_not_waited_for_and_the_run_says_so() {
    let d = double(true);
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), NS).unwrap();
    let kc = kc.to_str().unwrap();
    let statefulsets: Vec<String> =
        d.list("apps/v1", "StatefulSet", Some(NS)).iter().map(|s| s["metadata"]["name"].as_str().unwrap().to_string()).collect();
    assert!(!statefulsets.is_empty(), "the platform has StatefulSets");
    let before: Vec<Vec<(String, bool)>> = statefulsets.iter().map(|s| proxies(&d, &format!("{s}-"))).collect();
    let started = Instant::now();
    let r = mm(kc, &["enable", "--timeout", "4m"]);
    assert!(started.elapsed() < Duration::from_secs(90), "waited for a rollout that never comes: {:?}", started.elapsed());
    // The namespace is enabled, but the StatefulSets' pods still run without the sidecar: not a pass.
    assert_eq!(r.code, 1, "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    for s in &statefulsets {
        assert!(
            all.contains(&format!("statefulset.apps/{s} skipped (namespace {NS}) not waited for: updateStrategy OnDelete")),
            "{s}: {all}"
        );
        assert!(all.contains(&format!("statefulset.apps/{s}: updateStrategy OnDelete: its pods keep running without the istio-proxy sidecar")), "{all}");
    }
    assert!(!all.contains("timed out"), "{all}");
    // The controller replaced none of their pods; the Deployments were rolled and meshed.
    let after: Vec<Vec<(String, bool)>> = statefulsets.iter().map(|s| proxies(&d, &format!("{s}-"))).collect();
    assert_eq!(after, before);
    assert!(all.contains("verified: every pod of the other"), "{all}");
}

#[test]
fn a_deployment_past_its_progress_deadline_ends_enable_with_its_message() {
    let d = double(false);
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), NS).unwrap();
    let kc = kc.to_str().unwrap();
    // What the Deployment controller reports once progressDeadlineSeconds passed without progress.
    let mut stuck = d.get("apps/v1", "Deployment", Some(NS), "api-gateway").unwrap();
    stuck["metadata"]["generation"] = json!(1);
    stuck["status"] = json!({"observedGeneration": 1_000, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                        "message": "ReplicaSet \"api-gateway-6f9c\" has timed out progressing."}]});
    d.add_fault(FaultRule::on("GET", &format!("^/apis/apps/v1/namespaces/{NS}/deployments/api-gateway$")).body(200, stuck)).unwrap();
    let started = Instant::now();
    let r = mm(kc, &["enable", "--timeout", "4m"]);
    assert!(started.elapsed() < Duration::from_secs(90), "waited past a failed rollout: {:?}", started.elapsed());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("Deployment/pyairtable/api-gateway exceeded its progress deadline: ReplicaSet \"api-gateway-6f9c\" has timed out progressing."),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("timed out after"), "{}", r.stderr);
}

#[test]
fn duration_flags_need_units_but_request_timeout_reads_seconds_like_kubectl() {
    for args in [
        &["enable", "-n", "shop", "--timeout", "300"][..],
        &["ns", "shift", "shop", "50", "--max-p99", "500"],
        &["ns", "shift", "shop", "50", "--interval", "30"],
    ] {
        let r = run(&bin("mesh-migrate"), args, None, &[]);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        let n = args.last().unwrap();
        assert!(r.stderr.contains(&format!("{n} has no unit: write {n}ms or {n}s")), "{args:?}: {}", r.stderr);
    }
    // With units they parse (and the command goes on to the missing kubeconfig: exit 3).
    run(&bin("mesh-migrate"), &["enable", "-n", "shop", "--timeout", "300s"], None, &[]).expect_code(3);
    // kubectl's --request-timeout: a bare integer is seconds (client-go's ParseTimeout).
    for tool in ["mesh-migrate", "dbiso", "spire-check"] {
        let mut args = if tool == "mesh-migrate" { vec!["precheck"] } else if tool == "dbiso" { vec!["audit"] } else { vec![] };
        args.extend(["--request-timeout", "5"]);
        run(&bin(tool), &args, None, &[]).expect_code(3);
        let last = args.len() - 1;
        args[last] = "1.5";
        let r = run(&bin(tool), &args, None, &[]).expect_code(2);
        assert!(r.stderr.contains("1.5 has no unit"), "{}", r.stderr);
    }
}
