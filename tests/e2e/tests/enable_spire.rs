//! `kubectl mesh-migrate enable --spire` end to end against the API double: the pod templates get
//! Istio's `spire` template request only after spire-check's checks pass for the pods as the
//! restart will make them. On a cluster without SPIRE the step is refused (exit 1) naming the
//! failing checks, with nothing written; on a SPIRE installation shaped like spire-check's
//! `healthy` fixture (`crates/spire/tests/fixtures/healthy`: server, agents, CSI driver, trust
//! bundle, a ClusterSPIFFEID selecting the label Istio's `spire` template adds) it goes ahead,
//! and `rollback` takes the request away again.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::spire::{NS, shop, spire_installation};
use e2e::{DoubleEnv, Run};
use serde_json::{Value, json};

const ANNOTATION: &str = "inject.istio.io/templates";

fn double(with_spire: bool) -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    d.install_crds(crds::spire()).unwrap();
    if with_spire {
        // As given, statuses included: a running installation.
        d.load_values(spire_installation()).unwrap();
    } else {
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})).unwrap();
    }
    d.create(apiserver_double::istiod(None)).unwrap();
    for doc in shop() {
        d.create(doc).unwrap();
    }
    d
}

fn writes(d: &BlockingDouble) -> Vec<String> {
    d.requests().into_iter().filter(|r| r.method != "GET" && r.param("dryRun").as_deref() != Some("All")).map(|r| format!("{} {}", r.method, r.path)).collect()
}

fn template_request(d: &BlockingDouble, name: &str) -> Value {
    d.get("apps/v1", "Deployment", Some(NS), name).unwrap()["spec"]["template"]["metadata"]["annotations"][ANNOTATION].clone()
}

fn enable(e: &DoubleEnv, extra: &[&str]) -> Run {
    let mut args = vec!["enable", "--spire", "--timeout", "60s"];
    args.extend_from_slice(extra);
    e.mesh_migrate(&args)
}

#[test]
fn enable_spire_is_refused_without_spire_naming_the_failing_checks() {
    let d = double(false);
    let e = DoubleEnv::new(&d, NS);
    let before = writes(&d);
    let r = enable(&e, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("SPIRE cannot give the pods of namespace shop the identities Istio expects, nothing changed"), "{}", r.stderr);
    // The checks spire-check reports for this cluster, by code: no server, no agents, no CSI
    // driver, no ClusterSPIFFEID for the workloads.
    let check = e2e::plugin("spire-check", &["--kubeconfig", &e.kubeconfig, "-n", NS, "-o", "json"]);
    let failing: Vec<String> = check.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "error")
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    for code in ["SC2001", "SC2101", "SC2104", "SC2105"] {
        assert!(failing.iter().any(|f| f == code), "spire-check: {code} should fail here:\n{}", check.stdout);
    }
    for code in &failing {
        // The plugin checks the pods as they run (not meshed yet); enable checks them as the
        // restart will make them, so the checks of workloads (registration, identities, their
        // socket) may differ; those of SPIRE and Istio themselves may not.
        if ["SC22", "SC23", "SC2603", "SC2604"].iter().any(|p| code.starts_with(p)) {
            continue;
        }
        assert!(r.stderr.contains(&format!("  {code} ")), "{code} not named:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("--allow-spire-check-failures"), "{}", r.stderr);
    assert_eq!(writes(&d), before, "nothing written");
    assert!(template_request(&d, "cart").is_null());

    // -o json: the refusal with the findings that block it.
    let j = enable(&e, &["-o", "json"]);
    assert_eq!(j.code, 1);
    let v = j.json();
    assert_eq!((v["namespace"].as_str(), v["ready"].as_bool()), (Some(NS), Some(false)));
    assert!(!v["blockers"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(writes(&d), before);
}

#[test]
fn enable_spire_requests_the_template_when_spire_serves_and_rollback_removes_it() {
    let d = double(true);
    let e = DoubleEnv::new(&d, NS);
    // A ClusterSPIFFEID that selects a label neither the pods nor Istio's spire template give
    // them: the restarted pods would get no entry, refused by the registration check.
    let mut id = d.get("spire.spiffe.io/v1alpha1", "ClusterSPIFFEID", None, "istio-workloads").unwrap();
    for k in ["resourceVersion", "managedFields", "uid", "creationTimestamp", "generation"] {
        id["metadata"].as_object_mut().unwrap().shift_remove(k);
    }
    let mut other = id.clone();
    other["spec"]["podSelector"] = json!({"matchLabels": {"example.org/spire": "yes"}});
    d.apply(other, "tester", true).unwrap();
    let before = writes(&d);
    let r = enable(&e, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("  SC2201 Every meshed workload is selected by a ClusterSPIFFEID"), "{}", r.stderr);
    assert!(r.stderr.contains("Deployment/shop/cart") || r.stderr.contains("cart"), "{}", r.stderr);
    assert_eq!(writes(&d), before, "nothing written");
    d.apply(id, "tester", true).unwrap();
    let before = writes(&d);
    // Dry run: the template request shows in the diff, nothing is written.
    let dry = enable(&e, &["--dry-run=client"]).expect_code(0);
    assert!(dry.stderr.contains("enable: SPIRE can serve namespace shop"), "{}", dry.stderr);
    let added = dry.stdout.lines().filter(|l| l.starts_with('+') && l.trim_start_matches('+').trim() == "inject.istio.io/templates: sidecar,spire").count();
    assert_eq!(added, 2, "{}", dry.stdout);
    assert_eq!(writes(&d), before);

    let r = enable(&e, &[]).expect_code(0);
    assert!(r.stderr.contains("verified: every pod of the 2 restarted workload(s) carries the istio-proxy sidecar"), "{}", r.stderr);
    for name in ["cart", "checkout"] {
        assert_eq!(template_request(&d, name), "sidecar,spire", "{name}");
    }
    // spire-check itself now sees the workloads ask for the template.
    let ids = e2e::plugin("spire-check", &["identities", "--kubeconfig", &e.kubeconfig, "-n", NS, "-o", "json"]);
    assert!(ids.stdout.contains("spiffe://example.org/ns/shop/sa/cart"), "{}", ids.stdout);

    e.mesh_migrate(&["rollback", "--timeout", "60s"]).expect_code(0);
    for name in ["cart", "checkout"] {
        assert!(template_request(&d, name).is_null(), "{name}: {}", template_request(&d, name));
    }
}
