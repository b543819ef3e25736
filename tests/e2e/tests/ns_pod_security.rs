//! `ns create` asks the API server about Pod Security: the double's Pod Security admission
//! answers the server-side dry run of the enforce label on the legacy namespace with warnings
//! for its running pods, and `ns create` refuses (writing nothing) exactly the copies whose pods
//! the server names, at the level asked for; checks the pod templates alone would miss
//! (capabilities under baseline) are caught, and workloads with no running pod are judged from
//! their templates, which the report says.

use std::path::PathBuf;

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{Run, bin, root, run};
use serde_json::{Value, json};

struct Env {
    double: BlockingDouble,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Env {
    fn mm(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&bin("mesh-migrate"), &all, None, &[("USER", "alice")])
    }
}

/// A Deployment of `shop` with the given container securityContext and pod securityContext.
fn deployment(name: &str, replicas: i64, pod_sc: Value, container_sc: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"securityContext": pod_sc, "containers": [{"name": name, "image": format!("shop/{name}:1"), "securityContext": container_sc}]}}}})
}

/// The namespace-migration fixture (its pods meet `restricted`) plus `extra`.
fn env(extra: Vec<Value>) -> Env {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/shop.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        double.create(doc).unwrap();
    }
    for o in extra {
        double.create(o).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap();
    Env { double, _dir: dir, kubeconfig }
}

fn hardened_pod() -> Value {
    json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
}

#[test]
fn ns_create_refuses_the_copies_whose_pods_the_api_server_names_and_writes_nothing() {
    // `loose` has no securityContext: restricted rejects it, baseline does not. `netadmin` meets
    // restricted but adds NET_ADMIN, which baseline (and restricted) reject.
    let loose = deployment("loose", 2, json!({}), json!({}));
    let netadmin = deployment(
        "netadmin",
        1,
        hardened_pod(),
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}),
    );
    let e = env(vec![loose, netadmin]);
    let before = e.double.snapshot();
    let r = e.mm(&["ns", "create", "shop"]);
    assert_eq!(r.code, 2, "{r:?}");
    let loose_line = r.stderr.lines().find(|l| l.contains("Deployment/loose")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        loose_line.contains("the API server: Pod Security restricted:latest would reject pod loose-")
            && loose_line.contains("(and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"),
        "{loose_line}"
    );
    let net_line = r.stderr.lines().find(|l| l.contains("Deployment/netadmin")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(net_line.contains("non-default capabilities, unrestricted capabilities"), "{net_line}");
    assert!(!r.stderr.contains("Deployment/web") && !r.stderr.contains("Deployment/api:"), "the fixture's own workloads meet restricted: {}", r.stderr);
    // Asked with a dry run, which persists nothing: nothing was written at all.
    assert!(e.double.snapshot().diff(&before).is_empty(), "{:?}", e.double.snapshot().diff(&before));
    let asked: Vec<_> = e.double.requests().into_iter().filter(|q| q.method == "PATCH" && q.path == "/api/v1/namespaces/shop").collect();
    assert!(!asked.is_empty() && asked.iter().all(|q| q.param("dryRun").as_deref() == Some("All")), "{asked:?}");

    // Under baseline only netadmin's capability is a violation: the pod templates' own check
    // (which looks at capabilities only under restricted) would have let it through.
    let b = e.mm(&["ns", "create", "shop", "--pod-security", "baseline"]);
    assert_eq!(b.code, 2, "{b:?}");
    assert!(b.stderr.contains("Deployment/netadmin: the API server: Pod Security baseline:latest would reject pod netadmin-"), "{}", b.stderr);
    assert!(b.stderr.contains(": non-default capabilities"), "{}", b.stderr);
    assert!(!b.stderr.contains("Deployment/loose"), "{}", b.stderr);
    assert!(e.double.get("v1", "Namespace", None, "shop-mesh").is_none());

    // --allow-pod-security-violations goes ahead and lists them in the report.
    let forced = e.mm(&["ns", "create", "shop", "--pod-security", "baseline", "--allow-pod-security-violations"]).expect_code(0);
    assert!(forced.stdout.contains("pod security: Deployment/netadmin: the API server"), "{}", forced.stdout);
}

#[test]
fn a_workload_without_running_pods_is_judged_from_its_template_and_the_report_says_so() {
    let idle = deployment("idle", 0, json!({}), json!({}));
    let e = env(vec![idle]);
    let r = e.mm(&["ns", "create", "shop"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("Deployment/idle: container idle: allowPrivilegeEscalation must be false"), "{}", r.stderr);
    let ok = e.mm(&["ns", "create", "shop", "--allow-pod-security-violations"]).expect_code(0);
    assert!(
        ok.stdout.contains("Pod Security of Deployment/idle predicted from the pod templates: no pod of them runs in shop for the API server to judge"),
        "{}",
        ok.stdout
    );
}
