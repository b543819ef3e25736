//! Real kubectl 1.37 discovers and runs the three plugins, installed as krew installs them from
//! the release archives, and completes them through the shipped completion helpers; a live
//! command reaches the API double through the kubeconfig kubectl hands the plugin.

use apiserver_double::{Double, DoubleOptions};
use e2e::{PLUGINS, krew_bin, krew_path, run, venv_tool};
use serde_json::json;

fn kubectl(args: &[&str]) -> e2e::Run {
    let path = krew_path();
    run(&venv_tool("kubectl"), args, None, &[("PATH", path.to_str().unwrap())])
}

#[test]
fn kubectl_plugin_list_finds_all_three() {
    let r = kubectl(&["plugin", "list"]).expect_code(0);
    for p in PLUGINS {
        let expected = krew_bin().join(format!("kubectl-{}", p.replace('-', "_")));
        assert!(r.stdout.contains(expected.to_str().unwrap()), "kubectl-{p} not listed:\n{}", r.stdout);
    }
}

#[test]
fn plugins_run_through_kubectl() {
    let r = kubectl(&["mesh-migrate", "--help"]).expect_code(0);
    assert!(r.stdout.contains("kubectl mesh-migrate"), "{}", r.stdout);
    assert!(r.stdout.contains("precheck") && r.stdout.contains("post-render"), "{}", r.stdout);
    for p in PLUGINS {
        let r = kubectl(&[p, "--version"]).expect_code(0);
        assert!(r.stdout.starts_with(&format!("kubectl-{p} ")), "{}", r.stdout);
    }
}

#[test]
fn usage_errors_exit_2_through_kubectl() {
    let r = kubectl(&["dbiso", "--no-such-flag"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.stderr);
}

#[test]
fn kubectl_completes_plugins_through_the_shipped_helpers() {
    let r = kubectl(&["__complete", "mesh-migrate", "pre"]).expect_code(0);
    assert!(r.stdout.lines().any(|l| l.starts_with("precheck")), "{}", r.stdout);
    let r = kubectl(&["__complete", "mesh-migrate", "precheck", "--fail"]).expect_code(0);
    assert!(r.stdout.contains("--fail-on"), "{}", r.stdout);
    let r = kubectl(&["__complete", "mesh-migrate", "precheck", "-o", ""]).expect_code(0);
    for v in ["table", "wide", "json", "yaml"] {
        assert!(r.stdout.lines().any(|l| l == v), "{v} missing:\n{}", r.stdout);
    }
}

#[test]
fn a_live_command_runs_through_kubectl_against_the_double() {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})).unwrap();
    d.create(apiserver_double::istiod(None)).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}})).unwrap();
    d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = d.write_kubeconfig(dir.path(), "default").unwrap();
    let path = krew_path();
    let env = [("PATH", path.to_str().unwrap()), ("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let r = run(&venv_tool("kubectl"), &["mesh-migrate", "status", "-n", "shop", "-o", "json"], None, &env).expect_code(0);
    let st = r.json();
    assert_eq!(st["namespace"], "shop");
    assert_eq!(st["mode"], "sidecar");
    assert_eq!(
        st["workloads"],
        json!([{"kind": "Deployment", "name": "web", "pods": 2, "meshedPods": 2, "revisions": ["default"], "state": "meshed",
                "mtls": {"mode": "PERMISSIVE", "decidedBy": "Istio's default: no PeerAuthentication sets a mode"}}])
    );
    // The plugin's exit codes come through kubectl: a namespace that does not exist is an input error.
    let missing = run(&venv_tool("kubectl"), &["mesh-migrate", "enable", "-n", "nope", "--dry-run=client"], None, &env);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("namespace nope does not exist"), "{}", missing.stderr);
}
