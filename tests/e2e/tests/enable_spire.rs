//! `kubectl mesh-migrate enable --spire` end to end against the API double: the pod templates get
//! Istio's `spire` template request only after spire-check's checks pass for the pods as the
//! restart will make them. On a cluster without SPIRE the step is refused (exit 1) naming the
//! failing checks, with nothing written; on a SPIRE installation shaped like spire-check's
//! `healthy` fixture (`crates/spire/tests/fixtures/healthy`: server, agents, CSI driver, trust
//! bundle, a ClusterSPIFFEID selecting the label Istio's `spire` template adds) it goes ahead,
//! and `rollback` takes the request away again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{DoubleEnv, Run, root};
use serde_json::{Value, json};

const NS: &str = "shop";
const ANNOTATION: &str = "inject.istio.io/templates";

/// The workloads of the namespace to put on the mesh (not labelled for injection yet).
fn shop() -> Vec<Value> {
    let deployment = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"serviceAccountName": name, "containers": [{"name": name, "image": format!("registry.example/shop/{name}:1.0"), "ports": [{"containerPort": 8080}]}]}}}})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": NS},
               "spec": {"selector": {"app": "cart"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        deployment("cart"),
        deployment("checkout"),
    ]
}

/// A self-signed CA (PEM) valid from an hour ago for 30 days: the SPIRE trust bundle.
fn bundle() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "SPIFFE");
    params.subject_alt_names = vec![rcgen::SanType::URI(rcgen::string::Ia5String::try_from("spiffe://example.org").unwrap())];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now - 3600);
    params.not_after = epoch + Duration::from_secs(now + 30 * 24 * 3600);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// SPIRE and Istio's configuration as spire-check's `healthy` fixture has them (its meshed
/// workloads and other namespaces left out), with the trust bundle filled in, and the injector's
/// `spire` template written as Istio's SPIRE guide writes it: it adds the label the
/// ClusterSPIFFEID selects (`spiffe.io/spire-managed-identity`), which the workloads do not carry.
fn spire_installation() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("crates/spire/tests/fixtures/healthy/input.yaml")).unwrap();
    let pem = bundle();
    let mut filled = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim() == "{{BUNDLE_VALID}}" {
            let indent: String = line.chars().take_while(|c| *c == ' ').collect();
            for l in pem.lines() {
                filled.push_str(&format!("{indent}{l}\n"));
            }
        } else {
            filled.push_str(line);
        }
    }
    let mut docs: Vec<Value> = apiserver_double::parse_documents(&filled)
        .unwrap()
        .into_iter()
        .filter(|d| d["metadata"]["namespace"] != NS && d["metadata"]["name"] != NS && d["metadata"]["namespace"] != "tools" && d["metadata"]["name"] != "tools")
        .collect();
    let injector = docs.iter_mut().find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "istio-sidecar-injector").unwrap();
    injector["data"]["config"] = json!(
        "defaultTemplates: [sidecar]\npolicy: enabled\ntemplates:\n  sidecar: |\n    spec:\n      containers:\n      - name: istio-proxy\n        image: docker.io/istio/proxyv2:1.22.0\n  spire: |\n    labels:\n      spiffe.io/spire-managed-identity: \"true\"\n    spec:\n      containers:\n      - name: istio-proxy\n        volumeMounts:\n        - name: workload-socket\n          mountPath: /run/secrets/workload-spiffe-uds\n          readOnly: true\n      volumes:\n        - name: workload-socket\n          csi:\n            driver: \"csi.spiffe.io\"\n            readOnly: true\n"
    );
    docs
}

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
