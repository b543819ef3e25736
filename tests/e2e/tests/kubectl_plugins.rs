//! Real kubectl 1.37 discovers and runs the three plugins, installed as krew installs them from
//! the release archives, and completes them through the shipped completion helpers.

use e2e::{PLUGINS, krew_bin, krew_path, run, venv_tool};

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
