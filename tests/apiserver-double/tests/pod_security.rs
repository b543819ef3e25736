//! Pod Security warnings for namespace label changes, read by real kubectl: a server-side dry
//! run of `pod-security.kubernetes.io/enforce=<level>` on a namespace with pods prints the
//! warnings the API server's Pod Security admission returns for the existing pods (the format
//! the Kubernetes documentation shows, e.g.
//! <https://kubernetes.io/docs/tutorials/security/ns-level-pss/>), and changes nothing.

mod common;

use common::Env;
use serde_json::{Value, json};

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"}, "spec": spec, "status": {"phase": "Running"}})
}

fn hardened() -> Value {
    json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
           "containers": [{"name": "app", "image": "shop/app:1", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]})
}

/// kubectl's stderr lines that carry a warning, without the `Warning: ` kubectl puts before them.
fn warnings(stderr: &str) -> Vec<String> {
    stderr.lines().filter_map(|l| l.strip_prefix("Warning: ")).map(str::to_string).collect()
}

#[test]
fn a_label_dry_run_returns_the_pod_security_warnings_of_the_existing_pods() {
    let env = Env::new("shop");
    env.double.load_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n").unwrap();
    let plain = json!({"containers": [{"name": "app", "image": "shop/app:1"}]});
    let node = json!({"hostNetwork": true, "containers": [{"name": "agent", "image": "agent:1", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]});
    env.double
        .load_values(vec![pod("web-b", plain.clone()), pod("web-a", plain.clone()), pod("api-0", plain), pod("agent-x", node), pod("ok-1", hardened())])
        .unwrap();
    let before = env.double.snapshot();

    let out = env.run(&["label", "--dry-run=server", "--overwrite", "ns", "shop", "pod-security.kubernetes.io/enforce=restricted"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("namespace/shop labeled (server dry run)"), "{stdout}");
    let w = warnings(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        w,
        [
            "existing pods in namespace \"shop\" violate the new PodSecurity enforce level \"restricted:latest\"",
            "agent-x: allowPrivilegeEscalation != false, non-default capabilities, unrestricted capabilities, host namespaces, runAsNonRoot != true, seccompProfile",
            "api-0 (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
        ]
    );
    assert!(env.double.snapshot().diff(&before).is_empty(), "a dry run changes nothing");

    let base = env.run(&["label", "--dry-run=server", "--overwrite", "ns", "shop", "pod-security.kubernetes.io/enforce=baseline"]);
    assert_eq!(
        warnings(&String::from_utf8_lossy(&base.stderr)),
        [
            "existing pods in namespace \"shop\" violate the new PodSecurity enforce level \"baseline:latest\"",
            "agent-x: non-default capabilities, host namespaces",
        ]
    );
    // privileged evaluates nothing; neither does a label that does not change the level.
    let privileged = env.run(&["label", "--dry-run=server", "--overwrite", "ns", "shop", "pod-security.kubernetes.io/enforce=privileged"]);
    assert!(warnings(&String::from_utf8_lossy(&privileged.stderr)).is_empty(), "{privileged:?}");
    env.ok(&["label", "ns", "shop", "pod-security.kubernetes.io/enforce=baseline"]);
    let same = env.run(&["label", "--dry-run=server", "--overwrite", "ns", "shop", "pod-security.kubernetes.io/enforce=baseline", "team=a"]);
    assert!(warnings(&String::from_utf8_lossy(&same.stderr)).is_empty(), "{same:?}");
    // A version label is part of the level the warning names.
    let versioned = env.run(&[
        "label", "--dry-run=server", "--overwrite", "ns", "shop", "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=v1.37",
    ]);
    assert!(warnings(&String::from_utf8_lossy(&versioned.stderr))[0].ends_with("\"restricted:v1.37\""), "{versioned:?}");
}
