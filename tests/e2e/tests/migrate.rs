//! `kubectl mesh-migrate` in place, end to end against the API double: the demo platform created
//! through the API (so controllers run its pods), then precheck → expose → enable → mtls strict →
//! status → rollback with the built binary, and the objects read back with real kubectl equal the
//! ones before. Dry runs write nothing; faults at writes leave a state that a re-run completes or
//! rollback restores; conflicts and unready namespaces are reported, not overwritten.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, FaultRule, crds};
use e2e::{Run, bin, fixture, run, venv_tool};
use serde_json::{Value, json};

const NS: &str = "pyairtable";

/// The demo chart's objects from the fixture (below its `# demo chart` line), in a namespace
/// without mesh labels, plus an Istio control plane namespace.
fn platform() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("tests/e2e/fixtures/platform.yaml")).unwrap();
    let chart = &text[text.find("\n# demo chart").expect("demo chart marker")..];
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        apiserver_double::istiod(None),
        // The cluster's default IngressClass, the one the platform's Ingress names.
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
               "spec": {"controller": "k8s.io/ingress-nginx"}}),
    ];
    docs.extend(apiserver_double::parse_documents(chart).unwrap().into_iter().filter(|d| d["kind"] != "Pod"));
    docs
}

/// A double holding the platform, created with API semantics: controllers start the pods.
fn double() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    seed(&d);
    d
}

fn seed(d: &BlockingDouble) {
    seed_with(d, true);
}

/// The platform, with or without the `istiod` Deployment.
fn seed_with(d: &BlockingDouble, istiod: bool) {
    d.install_crds(crds::istio()).unwrap();
    for doc in platform().into_iter().filter(|o| istiod || o["metadata"]["name"] != "istiod") {
        let what = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
        d.create(doc).unwrap_or_else(|e| panic!("creating {what}: {e}"));
    }
}

type Env = e2e::DoubleEnv;

fn env(d: &BlockingDouble) -> Env {
    Env::new(d, NS)
}

fn mm(e: &Env, args: &[&str]) -> Run {
    e.mesh_migrate(args)
}

/// What real kubectl reads back of the namespace and its mesh state, without what the server
/// changes by itself: resourceVersion, managedFields, generation, status, and the Deployment
/// controller's `deployment.kubernetes.io/revision` counter. Pods and ReplicaSets are left out
/// (restarts replace them by design; the tests check their proxies separately).
fn read_back(e: &Env) -> Value {
    let kinds = "namespaces,deployments,statefulsets,daemonsets,services,configmaps,secrets,serviceaccounts,ingresses,poddisruptionbudgets,cronjobs,jobs,networkpolicies,gateways.networking.istio.io,virtualservices,destinationrules,peerauthentications";
    let r = run(&venv_tool("kubectl"), &["--kubeconfig", &e.kubeconfig, "get", kinds, "-n", NS, "-o", "json"], None, &[]).expect_code(0);
    let mut v = r.json();
    let ns = run(&venv_tool("kubectl"), &["--kubeconfig", &e.kubeconfig, "get", "namespace", NS, "-o", "json"], None, &[]).expect_code(0).json();
    let items = v["items"].as_array_mut().unwrap();
    items.push(ns);
    for item in items.iter_mut() {
        let m = item["metadata"].as_object_mut().unwrap();
        for k in ["resourceVersion", "managedFields", "generation"] {
            m.shift_remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.shift_remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                m.shift_remove("annotations");
            }
        }
        item.as_object_mut().unwrap().shift_remove("status");
    }
    items.sort_by_key(|i| format!("{}/{}", i["kind"], i["metadata"]["name"]));
    v
}

fn pods(d: &BlockingDouble) -> Vec<(String, bool)> {
    d.list("v1", "Pod", Some(NS))
        .iter()
        .filter(|p| p["status"]["phase"] != "Succeeded")
        .map(|p| {
            let meshed = p["spec"]["containers"].as_array().unwrap().iter().any(|c| c["name"] == "istio-proxy");
            (p["metadata"]["name"].as_str().unwrap().to_string(), meshed)
        })
        .collect()
}

/// The Istio objects of the namespace as the API server holds them (what enable and mtls wrote).
fn istio_objects(d: &BlockingDouble) -> Vec<Value> {
    [("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "VirtualService"), ("networking.istio.io/v1", "DestinationRule"), ("security.istio.io/v1", "PeerAuthentication")]
        .into_iter()
        .flat_map(|(api_version, kind)| d.list(api_version, kind, Some(NS)))
        .collect()
}

fn writes(d: &BlockingDouble) -> Vec<String> {
    d.requests().into_iter().filter(|r| r.method != "GET").map(|r| format!("{} {} {}", r.method, r.path, r.query)).collect()
}

#[test]
fn the_whole_path_and_rollback_to_the_exact_prior_state() {
    let d = double();
    let e = env(&d);
    let before = read_back(&e);
    let initial = pods(&d);
    assert!(initial.len() >= 10 && initial.iter().all(|(_, m)| !m), "{initial:?}");

    // precheck reads the live namespace.
    let pre = mm(&e, &["precheck", "-o", "json"]);
    assert!(pre.code == 0 || pre.code == 1, "{pre:?}");
    assert_eq!(pre.json()["source"], json!({"type": "cluster", "context": "double", "namespace": NS}));

    // expose: one Ingress, hosts-file lines printed. The chart's Ingress `platform` serves
    // pyairtable.local/ already: that pair stays with it.
    let exp = mm(&e, &["expose", "--domain", "pyairtable.local", "--ingress-class", "nginx", "--host", "frontend=pyairtable.local", "--merge-existing"])
        .expect_code(0);
    assert!(exp.stderr.contains("expose: host pyairtable.local path / left to Ingress pyairtable/platform"), "{}", exp.stderr);
    assert!(exp.stdout.contains("ingress.networking.k8s.io/mesh-migrate-expose created (namespace pyairtable)"), "{}", exp.stdout);
    assert!(exp.stdout.contains("127.0.0.1 airtable-gateway.pyairtable.local api-gateway.pyairtable.local"), "{}", exp.stdout);
    let ing = d.get("networking.k8s.io/v1", "Ingress", Some(NS), "mesh-migrate-expose").unwrap();
    let hosts: Vec<&str> = ing["spec"]["rules"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert!(!hosts.contains(&"pyairtable.local") && hosts.contains(&"llm-orchestrator.pyairtable.local"), "{hosts:?}");
    assert!(!hosts.iter().any(|h| h.starts_with("postgres") || h.starts_with("redis")), "databases are not exposed: {hosts:?}");
    // --cleanup removes exactly that (and the journal, which held nothing else); expose again.
    let clean = mm(&e, &["expose", "--cleanup"]).expect_code(0);
    assert!(clean.stdout.contains("ingress.networking.k8s.io/mesh-migrate-expose deleted"), "{}", clean.stdout);
    assert_eq!(read_back(&e), before, "expose --cleanup left something behind");
    mm(&e, &["expose", "--domain", "pyairtable.local", "--ingress-class", "nginx", "--host", "frontend=pyairtable.local", "--merge-existing"]).expect_code(0);

    // enable: labels, Istio objects, restarts in batches, every new pod carries the proxy.
    let en = mm(&e, &["enable", "--timeout", "30s"]).expect_code(0);
    assert!(en.stdout.contains("namespace/pyairtable configured"), "{}", en.stdout);
    assert!(en.stdout.contains("peerauthentication.security.istio.io/default created"), "{}", en.stdout);
    assert!(en.stdout.contains("destinationrule.networking.istio.io/api-gateway created"), "{}", en.stdout);
    assert!(en.stdout.contains("deployment.apps/api-gateway restarted"), "{}", en.stdout);
    assert!(en.stderr.contains("verified: every pod"), "{}", en.stderr);
    let after_enable = pods(&d);
    assert!(after_enable.iter().all(|(_, m)| *m), "{after_enable:?}");
    let dr = d.get("networking.istio.io/v1", "DestinationRule", Some(NS), "api-gateway").unwrap();
    assert_eq!(dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"], 5);
    assert_eq!(dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"], 100);
    // What enable wrote passes Istio's CRD schemas (Gateway, VirtualServices, DestinationRules,
    // PeerAuthentication).
    assert!(e2e::validate_objects(&istio_objects(&d)) >= 3, "{:#?}", istio_objects(&d));
    // A second run changes nothing.
    d.clear_requests();
    let again = mm(&e, &["enable"]).expect_code(0);
    assert!(!again.stdout.contains("restarted") && !again.stdout.contains("created"), "{}", again.stdout);
    assert!(writes(&d).iter().all(|w| w.starts_with("PATCH") && w.contains("fieldManager=kubectl-mesh-migrate")), "{:#?}", writes(&d));

    // mtls strict: ready (only the control plane lives elsewhere).
    let strict = mm(&e, &["mtls", "strict"]).expect_code(0);
    assert!(strict.stdout.contains("peerauthentication.security.istio.io/default configured"), "{}", strict.stdout);
    let pa = d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").unwrap();
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT");
    e2e::validate_objects(&istio_objects(&d));

    // status.
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    e2e::validate_shape("namespaceStatus", &st);
    assert_eq!(st["mode"], "sidecar");
    assert_eq!(st["mtls"], "STRICT");
    let steps: Vec<(&str, &str)> = st["steps"].as_array().unwrap().iter().map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap())).collect();
    assert_eq!(steps, [("expose", "completed"), ("enable", "completed"), ("mtls-strict", "completed")]);
    assert!(st["steps"][0]["who"].as_str().unwrap().starts_with("tester@double"), "{}", st["steps"][0]);
    assert!(st["workloads"].as_array().unwrap().iter().filter(|w| w["kind"] == "Deployment").all(|w| w["state"] == "meshed"), "{st}");
    // The same status from what kubectl saved of the namespace (journal included).
    let saved = run(
        &venv_tool("kubectl"),
        &["--kubeconfig", &e.kubeconfig, "get", "-n", NS, "-o", "yaml",
          "namespaces,pods,replicasets,deployments,statefulsets,daemonsets,jobs,cronjobs,configmaps,gateways.networking.istio.io,virtualservices,destinationrules,peerauthentications"],
        None,
        &[],
    )
    .expect_code(0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("saved.yaml");
    std::fs::write(&file, &saved.stdout).unwrap();
    let offline = run(&bin("mesh-migrate"), &["status", "-f", file.to_str().unwrap(), "-n", NS, "-o", "json"], None, &[]).expect_code(0).json();
    assert_eq!(offline, st, "status from files and from the cluster differ");
    let table = mm(&e, &["status"]).expect_code(0);
    assert!(table.stdout.contains("Deployment/api-gateway") && table.stdout.contains("mTLS:       STRICT"), "{}", table.stdout);

    // rollback: everything as before, pods without the proxy.
    let rb = mm(&e, &["rollback", "--timeout", "30s"]).expect_code(0);
    assert!(rb.stdout.contains("ingress.networking.k8s.io/mesh-migrate-expose deleted"), "{}", rb.stdout);
    assert!(pods(&d).iter().all(|(_, m)| !m), "{:?}", pods(&d));
    let after = read_back(&e);
    assert_eq!(after, before, "objects differ after rollback");
    let none = mm(&e, &["rollback"]);
    assert_eq!(none.code, 2, "{none:?}");
    assert!(none.stderr.contains("no journal in namespace pyairtable"), "{}", none.stderr);
}

#[test]
fn dry_runs_write_nothing() {
    let d = double();
    let e = env(&d);
    let before = d.snapshot();
    for args in [&["expose"][..], &["enable"], &["mtls", "strict", "--force"]] {
        // client: reads only, a diff on stdout
        d.clear_requests();
        let c = mm(&e, &[args, &["--dry-run=client"]].concat()).expect_code(0);
        assert!(c.stdout.contains("+++ b/"), "{args:?}: {}", c.stdout);
        assert!(writes(&d).is_empty(), "{args:?} client dry run wrote: {:#?}", writes(&d));
        // -o yaml: the objects
        let y = mm(&e, &[args, &["--dry-run=client", "-o", "yaml"]].concat()).expect_code(0);
        assert!(y.stdout.starts_with("---\napiVersion: "), "{args:?}: {}", y.stdout);
        // server: every write with dryRun=All, no journal
        d.clear_requests();
        let s = mm(&e, &[args, &["--dry-run=server"]].concat()).expect_code(0);
        assert!(s.stdout.contains("(server dry run)"), "{args:?}: {}", s.stdout);
        let w = writes(&d);
        assert!(!w.is_empty() && w.iter().all(|w| w.contains("dryRun=All")), "{args:?}: {w:#?}");
    }
    assert!(before.diff(&d.snapshot()).is_empty(), "{:#?}", before.diff(&d.snapshot()));

    // The generated objects pass strict schema validation (Istio kinds against Istio's CRD
    // schemas; workloads appear in the stream only as their restart annotation).
    let mut stream = String::new();
    for args in [&["expose"][..], &["enable"], &["mtls", "strict", "--force"]] {
        let y = mm(&e, &[args, &["--dry-run=client", "-o", "yaml"]].concat()).expect_code(0).stdout;
        for doc in y.split("---\n").filter(|d| !d.trim().is_empty() && !d.starts_with("apiVersion: apps/v1")) {
            stream.push_str("---\n");
            stream.push_str(doc);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("generated.yaml");
    std::fs::write(&file, &stream).unwrap();
    let v = run(&e2e::root().join("tests/tools/validate.sh"), &[file.to_str().unwrap()], None, &[]);
    assert_eq!(v.code, 0, "schema validation failed:\n{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("0 failed"), "{}", v.stdout);
    let istio = stream.matches("istio.io/v1\nkind: ").count();
    assert!(istio >= 4 && e2e::istio_validated(&v) == istio, "{istio} Istio objects:\n{}", v.stdout);
}

/// The double's objects of the namespace, normalized as [`read_back`] does (a quick check for
/// loops; the final state is also read back with kubectl).
fn snap(d: &BlockingDouble) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = d
        .snapshot()
        .objects
        .into_iter()
        .filter(|(k, _)| (k.contains(&format!("/{NS}/")) || k == &format!("Namespace/{NS}")) && !k.starts_with("Pod/") && !k.starts_with("ReplicaSet.apps/"))
        .map(|(k, mut v)| {
            v.as_object_mut().unwrap().shift_remove("status");
            if let Some(a) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                a.shift_remove("deployment.kubernetes.io/revision");
                if a.is_empty() {
                    v["metadata"].as_object_mut().unwrap().shift_remove("annotations");
                }
            }
            (k, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn faults_at_writes_then_rerun_or_rollback() {
    let d = double();
    let e = env(&d);
    let before_snap = snap(&d);
    // The writes of a clean `enable`, then back.
    d.clear_requests();
    mm(&e, &["enable"]).expect_code(0);
    let clean: Vec<(String, String)> = d.requests().into_iter().filter(|r| r.method != "GET").map(|r| (r.method, r.path)).collect();
    mm(&e, &["rollback"]).expect_code(0);
    assert_eq!(snap(&d), before_snap);
    assert!(clean.len() > 20, "{clean:#?}");
    // The engine's own tests put each fault at every write; here one write of each kind, through
    // the binary: the journal's creation, the namespace label (JSON patch), the first and a middle
    // server-side apply, the first and the last restart, the journal's completion; with 500, 409
    // and a timeout in turn, finishing alternately with a rollback and a rerun.
    let restarts: Vec<usize> = (0..clean.len()).filter(|&n| clean[n].1.contains("/apis/apps/")).collect();
    let applies: Vec<usize> = (0..clean.len()).filter(|&n| clean[n].1.contains("istio.io")).collect();
    assert!(restarts.len() >= 10 && applies.len() >= 10, "{clean:#?}");
    let mut picked = vec![0, 1, applies[0], applies[applies.len() / 2], restarts[0], *restarts.last().unwrap(), clean.len() - 1];
    picked.dedup();
    let mut before_snap = before_snap;
    for (i, &n) in picked.iter().enumerate() {
        let (method, path) = &clean[n];
        let k = clean[..=n].iter().filter(|(m, p)| m == method && p == path).count() as u64;
        let rule = FaultRule::on(method, &format!("^{}$", escape(path))).nth(k).times(1);
        let (name, rule) = match i % 3 {
            0 => ("500", rule.status(500, "etcd leader changed")),
            1 => ("409", rule.status(409, "Operation cannot be fulfilled on the object: it has been modified")),
            _ => ("timeout", rule.delay(std::time::Duration::from_millis(1200))),
        };
        let case = format!("{name} at write {} ({method} {path})", n + 1);
        let id = d.add_fault(rule).unwrap();
        let failed = mm(&e, &["enable", "--request-timeout", "1s"]);
        if name == "timeout" {
            std::thread::sleep(std::time::Duration::from_millis(400)); // the delayed write lands
        }
        d.remove_fault(id);
        match (name, method.as_str()) {
            // A failed JSON-patch `test` is retried after reading the object again.
            ("409", "PATCH") if failed.code == 0 => {}
            _ => assert_eq!(failed.code, 3, "{case}: {failed:?}"),
        }
        if i % 2 == 0 {
            mm(&e, &["rollback"]).expect_code(0);
            assert_eq!(snap(&d), before_snap, "{case}, then rollback");
            assert!(pods(&d).iter().all(|(_, m)| !m), "{case}, then rollback");
        } else {
            mm(&e, &["enable"]).expect_code(0);
            assert!(pods(&d).iter().all(|(_, m)| *m), "{case}, then rerun");
            let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
            assert_eq!(st["steps"].as_array().unwrap().last().unwrap()["status"], "completed", "{case}");
            // Start the next case from a fresh platform (cheaper than a rollback).
            d.reset();
            seed(&d);
            before_snap = snap(&d);
        }
    }
    mm(&e, &["enable"]).expect_code(0);
    mm(&e, &["rollback"]).expect_code(0);
    assert_eq!(snap(&d), before_snap);
}

#[test]
fn mtls_strict_lists_what_would_break_and_force_overrides() {
    let d = double();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "reports"}})).unwrap();
    d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reporter", "namespace": "reports"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "reporter"}},
                 "template": {"metadata": {"labels": {"app": "reporter"}}, "spec": {"containers": [{"name": "r", "image": "reports:1"}]}}}}))
        .unwrap();
    let e = env(&d);
    // Before enable: the namespace's own pods are unmeshed too.
    let r = mm(&e, &["mtls", "strict"]).expect_code(1);
    assert!(r.stderr.contains("has no Istio proxy"), "{}", r.stderr);
    mm(&e, &["enable"]).expect_code(0);
    d.clear_requests();
    let r = mm(&e, &["mtls", "strict", "-o", "json"]).expect_code(1);
    assert!(r.stderr.contains("Deployment/reports/reporter is outside the mesh and can reach"), "{}", r.stderr);
    assert_eq!(r.json()["ready"], false);
    e2e::validate_shape("refusal", &r.json());
    assert!(writes(&d).is_empty(), "{:#?}", writes(&d));
    let f = mm(&e, &["mtls", "strict", "--force"]).expect_code(0);
    assert!(f.stderr.contains("switching anyway"), "{}", f.stderr);
    assert_eq!(d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").unwrap()["spec"]["mtls"]["mode"], "STRICT");
}

#[test]
fn conflicts_are_reported_and_completion_knows_the_commands() {
    let d = double();
    d.apply(
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "frontend", "namespace": NS},
               "spec": {"host": "frontend.pyairtable.svc.cluster.local", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 7}}}}}),
        "platform-team",
        false,
    )
    .unwrap();
    let e = env(&d);
    let r = mm(&e, &["enable"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("platform-team") && r.stderr.contains("DestinationRule/pyairtable/frontend"), "{}", r.stderr);
    let dr = d.get("networking.istio.io/v1", "DestinationRule", Some(NS), "frontend").unwrap();
    assert_eq!(dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"], 7);
    let c = mm(&e, &["__complete", "enable", "--mode", ""]).expect_code(0);
    assert!(c.stdout.lines().any(|l| l == "ambient"), "{}", c.stdout);
    let c = mm(&e, &["__complete", "rollback", "--step", ""]).expect_code(0);
    assert!(c.stdout.lines().any(|l| l == "mtls-strict"), "{}", c.stdout);
    let c = mm(&e, &["__complete", ""]).expect_code(0);
    for sub in ["expose", "enable", "mtls", "status", "rollback"] {
        assert!(c.stdout.lines().any(|l| l.starts_with(sub)), "{sub}: {}", c.stdout);
    }
}

/// `path` as a regex matching only itself.
fn escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '/' || c == '-' { c.to_string() } else { format!("\\{c}") }).collect()
}

/// Ambient's node agents: with ztunnel in `istio-system`, the double's CNI agent annotates
/// captured pods; `enable` wants the istio-cni DaemonSet there too.
fn ztunnel(d: &BlockingDouble) {
    // A DaemonSet on no node is not ready anywhere.
    d.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})).unwrap();
    for (name, label, image) in [("ztunnel", ("app", "ztunnel"), "istio/ztunnel"), ("istio-cni-node", ("k8s-app", "istio-cni-node"), "istio/install-cni")] {
        let labels = json!({label.0: label.1});
        d.create(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "istio-system", "labels": labels},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "agent", "image": image}]}}}}))
        .unwrap();
    }
}

fn captured(d: &BlockingDouble) -> Vec<(String, bool)> {
    d.list("v1", "Pod", Some(NS))
        .iter()
        .filter(|p| p["status"]["phase"] != "Succeeded")
        .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p["metadata"]["annotations"]["ambient.istio.io/redirection"] == "enabled"))
        .collect()
}

#[test]
fn ambient_mode_labels_the_namespace_without_restarts() {
    let d = double();
    ztunnel(&d);
    let e = env(&d);
    let before = read_back(&e);
    let pods_before: Vec<String> = pods(&d).into_iter().map(|(n, _)| n).collect();
    assert!(captured(&d).iter().all(|(_, c)| !c), "nothing captured before the label");
    let r = mm(&e, &["enable", "--mode", "ambient"]).expect_code(0);
    assert!(!r.stdout.contains("restarted"), "{}", r.stdout);
    assert!(r.stderr.contains(&format!("verified: ztunnel captured every pod of namespace {NS} ({} pod(s)", pods_before.len())), "{}", r.stderr);
    let ns = d.get("v1", "Namespace", None, NS).unwrap();
    assert_eq!(ns["metadata"]["labels"]["istio.io/dataplane-mode"], "ambient");
    let after: Vec<String> = pods(&d).into_iter().map(|(n, _)| n).collect();
    assert_eq!(after, pods_before, "ambient mode restarts nothing");
    assert!(captured(&d).iter().all(|(_, c)| *c), "{:?}", captured(&d));
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!(st["mode"], "ambient");
    let states: Vec<&str> = st["workloads"].as_array().unwrap().iter().filter(|w| w["pods"] != 0).map(|w| w["state"].as_str().unwrap()).collect();
    assert!(!states.is_empty() && states.iter().all(|s| *s == "captured"), "{states:?}");
    e2e::validate_objects(&istio_objects(&d));
    mm(&e, &["mtls", "strict"]).expect_code(0);
    e2e::validate_objects(&istio_objects(&d));
    mm(&e, &["rollback"]).expect_code(0);
    assert_eq!(read_back(&e), before);
    // Sidecar labels and ambient do not mix.
    mm(&e, &["enable"]).expect_code(0);
    let mixed = mm(&e, &["enable", "--mode", "ambient"]);
    assert_eq!(mixed.code, 2, "{mixed:?}");
    assert!(mixed.stderr.contains("labelled for sidecar injection"), "{}", mixed.stderr);
}

/// A double with the platform but without istiod.
fn double_without_istiod() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    seed_with(&d, false);
    d
}

#[test]
fn enable_refuses_without_a_control_plane_for_its_revision_unless_forced() {
    let d = double_without_istiod();
    let e = env(&d);
    let before = read_back(&e);
    let r = mm(&e, &["enable"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("MM1002 no Deployment labelled app=istiod") && r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(writes(&d), Vec::<String>::new(), "nothing written");
    let j = mm(&e, &["enable", "-o", "json"]);
    assert_eq!(j.code, 1, "{j:?}");
    assert_eq!(j.json()["blockers"][0]["code"], "MM1002");
    e2e::validate_shape("refusal", &j.json());
    // Forced: the restarted pods come back without a proxy (no injector), which the check
    // after the rollout reports; rollback restores the namespace.
    let forced = mm(&e, &["enable", "--force", "--timeout", "1m"]);
    assert_eq!(forced.code, 1, "{forced:?}");
    assert!(forced.stderr.contains("going ahead (--force)") && forced.stderr.contains("came up without the istio-proxy sidecar"), "{}", forced.stderr);
    assert!(pods(&d).iter().all(|(_, meshed)| !meshed), "{:?}", pods(&d));
    mm(&e, &["rollback", "--timeout", "1m"]).expect_code(0);
    assert_eq!(read_back(&e), before);

    // With the default istiod, a revision nobody serves is refused too.
    let d = double();
    let e = env(&d);
    let r = mm(&e, &["enable", "--revision", "canary"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("MM1013 no istiod or revision tag serves revision `canary`; installed: `default`"), "{}", r.stderr);
    assert_eq!(writes(&d), Vec::<String>::new(), "nothing written");
}

#[test]
fn ambient_without_ztunnel_names_the_uncaptured_pods_and_rolls_back() {
    let d = double();
    let e = env(&d);
    let before = read_back(&e);
    // Refused up front, naming both node agents.
    let r = mm(&e, &["enable", "--mode", "ambient"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("MM1006") && r.stderr.contains("MM1007") && r.stderr.contains("nothing changed"), "{}", r.stderr);
    assert_eq!(writes(&d), Vec::<String>::new());
    // Forced, the label goes on and the capture wait names every pod left out.
    let started = std::time::Instant::now();
    let r = mm(&e, &["enable", "--mode", "ambient", "--timeout", "1s", "--force"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "waited {:?}", started.elapsed());
    let names: Vec<String> = captured(&d).into_iter().map(|(n, _)| n).collect();
    assert!(r.stderr.contains(&format!("after 1s: {} pod(s) not captured by ztunnel", names.len())), "{}", r.stderr);
    for n in &names {
        assert!(r.stderr.contains(&format!("pod {n}\n")), "{n} not named:\n{}", r.stderr);
    }
    // Status says so; STRICT is refused; rollback restores the exact prior state.
    let st = mm(&e, &["status"]).expect_code(0);
    assert!(st.stdout.contains("not captured"), "{}", st.stdout);
    assert!(st.stdout.contains("not captured by ztunnel yet"), "{}", st.stdout);
    let strict = mm(&e, &["mtls", "strict"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    mm(&e, &["rollback"]).expect_code(0);
    assert_eq!(read_back(&e), before);
    assert!(d.get("v1", "ConfigMap", Some(NS), "mesh-migrate-journal").is_none(), "journal removed");
}

#[test]
fn a_process_killed_between_writes_is_resumed_by_a_rerun() {
    let d = double();
    let e = env(&d);
    let before = snap(&d);
    // Hold the first restart long enough to kill the process while it waits for the answer.
    let path = format!("^/apis/apps/v1/namespaces/{NS}/deployments/[a-z-]+$");
    let id = d.add_fault(FaultRule::on("PATCH", &path).nth(1).times(1).delay(std::time::Duration::from_millis(1500))).unwrap();
    let mut child = std::process::Command::new(bin("mesh-migrate"))
        .args(["enable"])
        .env("KUBECONFIG", &e.kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while d.faults().iter().find(|f| f.id == id).is_some_and(|f| f.fired == 0) {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the restart was never sent");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1700)); // whatever was in flight lands
    d.remove_fault(id);
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!(st["steps"][0]["status"], "started", "the killed run left its step open: {st}");
    assert!(st["pending"][0].as_str().unwrap().contains("did not complete"), "{st}");
    // Rerun: done work is unchanged, the rest is done.
    let again = mm(&e, &["enable"]).expect_code(0);
    assert!(again.stdout.contains("peerauthentication.security.istio.io/default unchanged"), "{}", again.stdout);
    assert!(pods(&d).iter().all(|(_, m)| *m), "{:?}", pods(&d));
    mm(&e, &["rollback"]).expect_code(0);
    assert_eq!(snap(&d), before);
}

fn kubectl(e: &Env, args: &[&str]) -> Run {
    run(&venv_tool("kubectl"), &[&["--kubeconfig", &e.kubeconfig][..], args].concat(), None, &[])
}

fn peer_authentication(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// `(namespace/name, mode)` of every PeerAuthentication, as real kubectl reads them.
fn peer_authentications(e: &Env) -> Vec<(String, String)> {
    let list = kubectl(e, &["get", "peerauthentications.security.istio.io", "-A", "-o", "json"]).expect_code(0).json();
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = format!("{}/{}", p["metadata"]["namespace"].as_str().unwrap(), p["metadata"]["name"].as_str().unwrap());
            (name, p["spec"]["mtls"]["mode"].as_str().unwrap_or("UNSET").to_string())
        })
        .collect();
    out.sort();
    out
}

/// A mesh-wide STRICT policy in the root namespace: `enable` must not lower it with a namespace
/// PERMISSIVE one, and says why; `mtls strict` then pins STRICT on the namespace; rollback
/// restores the exact prior state.
#[test]
fn enable_never_lowers_a_mesh_wide_strict() {
    let d = double();
    d.create(peer_authentication("istio-system", "default", json!({"mtls": {"mode": "STRICT"}}))).unwrap();
    let e = env(&d);
    let before = read_back(&e);
    let en = mm(&e, &["enable", "--timeout", "30s"]).expect_code(0);
    assert!(!en.stdout.contains("peerauthentication"), "{}", en.stdout);
    assert!(
        en.stderr.contains("PeerAuthentication pyairtable/default PERMISSIVE not written: the namespace is already STRICT (mesh-wide PeerAuthentication istio-system/default)"),
        "{}",
        en.stderr
    );
    assert_eq!(peer_authentications(&e), [("istio-system/default".to_string(), "STRICT".to_string())]);
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!((st["mtls"].as_str(), st["mtlsDecidedBy"].as_str()), (Some("STRICT"), Some("mesh-wide PeerAuthentication istio-system/default")));
    assert!(st["workloads"].as_array().unwrap().iter().filter(|w| w["kind"] == "Deployment").all(|w| w["mtls"]["mode"] == "STRICT"), "{st}");
    // STRICT already applies; the namespace policy pins it (nothing raised).
    let strict = mm(&e, &["mtls", "strict"]).expect_code(0);
    assert!(strict.stderr.contains("PeerAuthentication pyairtable/default to STRICT raises 0 workload port(s)"), "{}", strict.stderr);
    assert_eq!(
        peer_authentications(&e),
        [("istio-system/default".to_string(), "STRICT".to_string()), ("pyairtable/default".to_string(), "STRICT".to_string())]
    );
    mm(&e, &["rollback", "--timeout", "30s"]).expect_code(0);
    assert_eq!(read_back(&e), before);
}

/// An older namespace-wide PeerAuthentication under another name is the one Istio applies:
/// `enable` leaves it, `mtls strict` sets its mode (a `default` next to it would change nothing),
/// `status` reports its mode, and rollback restores it.
#[test]
fn mtls_strict_sets_the_older_namespace_policy_istio_applies() {
    let d = double();
    d.create(peer_authentication(NS, "legacy", json!({"mtls": {"mode": "PERMISSIVE"}}))).unwrap();
    let e = env(&d);
    let before = read_back(&e);
    let en = mm(&e, &["enable", "--timeout", "30s"]).expect_code(0);
    assert!(en.stderr.contains("pyairtable/legacy is the oldest namespace-wide policy, which Istio applies (mode PERMISSIVE)"), "{}", en.stderr);
    assert_eq!(peer_authentications(&e), [(format!("{NS}/legacy"), "PERMISSIVE".to_string())]);
    // A `default` created later (by someone else) is shadowed by the older `legacy`.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.create(peer_authentication(NS, "default", json!({"mtls": {"mode": "STRICT"}}))).unwrap();
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!((st["mtls"].as_str(), st["mtlsDecidedBy"].as_str()), (Some("PERMISSIVE"), Some("namespace-wide PeerAuthentication pyairtable/legacy")));
    let strict = mm(&e, &["mtls", "strict"]).expect_code(0);
    assert!(strict.stderr.contains("PeerAuthentication pyairtable/legacy is the oldest namespace-wide policy"), "{}", strict.stderr);
    assert!(strict.stdout.contains("peerauthentication.security.istio.io/legacy configured"), "{}", strict.stdout);
    assert_eq!(peer_authentications(&e), [(format!("{NS}/default"), "STRICT".to_string()), (format!("{NS}/legacy"), "STRICT".to_string())]);
    e2e::validate_objects(&istio_objects(&d));
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!((st["mtls"].as_str(), st["mtlsDecidedBy"].as_str()), (Some("STRICT"), Some("namespace-wide PeerAuthentication pyairtable/legacy")));
    // Rollback restores legacy's mode; the `default` someone else created stays theirs.
    mm(&e, &["rollback", "--timeout", "30s"]).expect_code(0);
    assert_eq!(peer_authentications(&e), [(format!("{NS}/default"), "STRICT".to_string()), (format!("{NS}/legacy"), "PERMISSIVE".to_string())]);
    kubectl(&e, &["delete", "peerauthentication.security.istio.io", "default", "-n", NS]).expect_code(0);
    assert_eq!(read_back(&e), before);
}

/// A workload-level policy keeps a port PERMISSIVE: a plaintext client that reaches only that
/// port does not block `mtls strict`, which says the port stays PERMISSIVE.
#[test]
fn mtls_strict_counts_workload_and_port_level_policies() {
    let d = double();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "reports"}})).unwrap();
    d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reporter", "namespace": "reports"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "reporter"}},
                 "template": {"metadata": {"labels": {"app": "reporter"}}, "spec": {"containers": [{"name": "r", "image": "reports:1"}]}}}}))
        .unwrap();
    let e = env(&d);
    mm(&e, &["enable", "--timeout", "30s"]).expect_code(0);
    // The reporter may reach the frontend's port 3000 only.
    let frontend = d.get("apps/v1", "Deployment", Some(NS), "frontend").unwrap();
    let labels = frontend["spec"]["template"]["metadata"]["labels"].clone();
    let port = frontend["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"].as_u64().unwrap();
    d.create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "own", "namespace": NS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}}))
        .unwrap();
    d.create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "reports-to-frontend", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "frontend"}}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "reports"}}}], "ports": [{"port": port}]}]}}))
        .unwrap();
    let refused = mm(&e, &["mtls", "strict", "-o", "json"]).expect_code(1);
    assert!(refused.stderr.contains(&format!("Deployment/reports/reporter is outside the mesh and can reach Deployment/frontend port {port}")), "{}", refused.stderr);
    // The frontend keeps PERMISSIVE on that port by its own policy: nothing breaks.
    let mut selector = serde_json::Map::new();
    for (k, v) in labels.as_object().unwrap() {
        if k == "app" || k == "app.kubernetes.io/name" {
            selector.insert(k.clone(), v.clone());
        }
    }
    d.create(peer_authentication(NS, "frontend", json!({"selector": {"matchLabels": selector}, "portLevelMtls": {port.to_string(): {"mode": "PERMISSIVE"}}}))).unwrap();
    let ok = mm(&e, &["mtls", "strict"]).expect_code(0);
    assert!(ok.stderr.contains(&format!("not raised, a workload-level policy decides: Deployment/frontend port {port}: stays PERMISSIVE (portLevelMtls of PeerAuthentication pyairtable/frontend)")), "{}", ok.stderr);
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    let fe = st["workloads"].as_array().unwrap().iter().find(|w| w["name"] == "frontend").unwrap().clone();
    assert_eq!(fe["mtls"]["mode"], "STRICT", "{fe}");
    assert_eq!(fe["mtls"]["ports"][port.to_string()]["mode"], "PERMISSIVE", "{fe}");
}

/// Injection precedence, end to end: the double injects with meshmove-istio's rule and the
/// product reports with the same rule, read back through real kubectl.
#[test]
fn namespace_label_precedence_in_the_double_and_in_status() {
    let d = double();
    d.create(apiserver_double::istiod(Some("canary"))).unwrap();
    let e = env(&d);
    // istio-injection=enabled wins over istio.io/rev: the default revision injects.
    kubectl(&e, &["label", "namespace", NS, "istio-injection=enabled", "istio.io/rev=canary"]).expect_code(0);
    kubectl(&e, &["rollout", "restart", "deployment/frontend", "-n", NS]).expect_code(0);
    let revisions = |e: &Env| -> Vec<String> {
        let pods = kubectl(e, &["get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=frontend", "-o", "json"]).expect_code(0).json();
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| p["metadata"]["annotations"]["istio.io/rev"].as_str().unwrap_or("none").to_string())
            .collect()
    };
    let wait = |e: &Env, want: &str| {
        let start = std::time::Instant::now();
        loop {
            let r = revisions(e);
            if !r.is_empty() && r.iter().all(|x| x == want) {
                return;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "revisions {r:?}, want {want}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait(&e, "default");
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!(st["mode"], "sidecar", "{st}");
    // istio-injection=disabled beside a revision: nothing injects, and status says the
    // namespace is off the mesh.
    kubectl(&e, &["label", "--overwrite", "namespace", NS, "istio-injection=disabled"]).expect_code(0);
    // kubectl refuses a second restart within a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    kubectl(&e, &["rollout", "restart", "deployment/frontend", "-n", NS]).expect_code(0);
    wait(&e, "none");
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert!(st["mode"].is_null(), "{st}");
    // The revision label alone: the canary istiod injects.
    kubectl(&e, &["label", "namespace", NS, "istio-injection-"]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    kubectl(&e, &["rollout", "restart", "deployment/frontend", "-n", NS]).expect_code(0);
    wait(&e, "canary");
    let st = mm(&e, &["status", "-o", "json"]).expect_code(0).json();
    assert_eq!(st["mode"], "sidecar (revision canary)", "{st}");
}

/// Rollback is three-way: objects and fields the tool wrote that someone changed since are kept
/// and reported with a diff, every one of them found before the first write, so the rollback
/// refuses whole (exit 1, nothing changed); a rerun of `enable` refuses over them too; `--force`
/// rolls back over them.
#[test]
fn rollback_keeps_and_reports_what_others_changed_and_refuses_whole() {
    let d = double();
    let e = env(&d);
    let before = read_back(&e);
    mm(&e, &["expose", "--domain", "pyairtable.local"]).expect_code(0);
    mm(&e, &["enable", "--timeout", "30s"]).expect_code(0);
    // A user tunes a VirtualService and a DestinationRule the tool created, and plants a
    // conflict on the namespace label the tool set (with real kubectl).
    let vs = d.get("networking.istio.io/v1", "VirtualService", Some(NS), "api-gateway").unwrap();
    let mut http = vs["spec"]["http"].clone();
    http[0]["timeout"] = json!("30s");
    http[0]["retries"] = json!({"attempts": 3});
    let patch = json!({"spec": {"http": http}}).to_string();
    kubectl(&e, &["patch", "virtualservice.networking.istio.io", "api-gateway", "-n", NS, "--type", "merge", "-p", &patch]).expect_code(0);
    let dr_patch = json!({"spec": {"trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 10}}}}).to_string();
    kubectl(&e, &["patch", "destinationrule.networking.istio.io", "api-gateway", "-n", NS, "--type", "merge", "-p", &dr_patch]).expect_code(0);
    kubectl(&e, &["label", "--overwrite", "namespace", NS, "istio-injection=disabled"]).expect_code(0);

    let snapshot = d.snapshot();
    d.clear_requests();
    let rb = mm(&e, &["rollback", "--timeout", "30s"]).expect_code(1);
    assert!(rb.stderr.contains("3 object(s) changed by someone else since this tool wrote them; rollback changed nothing"), "{}", rb.stderr);
    assert!(rb.stderr.contains("VirtualService/pyairtable/api-gateway") && rb.stderr.contains("timeout: 30s"), "{}", rb.stderr);
    assert!(rb.stderr.contains("DestinationRule/pyairtable/api-gateway") && rb.stderr.contains("consecutive5xxErrors: 10"), "{}", rb.stderr);
    assert!(rb.stderr.contains("Namespace/pyairtable") && rb.stderr.contains("/metadata/labels/istio-injection"), "{}", rb.stderr);
    assert!(rb.stderr.contains("\"disabled\" (live)") && rb.stderr.contains("--force"), "{}", rb.stderr);
    assert!(writes(&d).is_empty(), "rollback wrote: {:#?}", writes(&d));
    assert!(snapshot.diff(&d.snapshot()).is_empty(), "{:#?}", snapshot.diff(&d.snapshot()));
    // The dry run reports the same and changes nothing either.
    mm(&e, &["rollback", "--dry-run=client"]).expect_code(1);

    // A rerun of enable would set the label and the DestinationRule's field back: refused, and
    // the VirtualService's added fields (which a rerun keeps) are not in the way.
    let again = mm(&e, &["enable", "--timeout", "30s"]).expect_code(1);
    assert!(again.stderr.contains("`enable` changed nothing"), "{}", again.stderr);
    assert!(again.stderr.contains("DestinationRule/pyairtable/api-gateway") && !again.stderr.contains("VirtualService/pyairtable/api-gateway"), "{}", again.stderr);
    assert!(snapshot.diff(&d.snapshot()).is_empty(), "{:#?}", snapshot.diff(&d.snapshot()));

    // --force rolls back over the edits: exactly the prior state.
    mm(&e, &["rollback", "--force", "--timeout", "30s"]).expect_code(0);
    assert!(d.get("networking.istio.io/v1", "VirtualService", Some(NS), "api-gateway").is_none());
    assert_eq!(read_back(&e), before, "objects differ after rollback --force");
}

/// expose beside an Ingress already there: the same host and path refused (naming it) or left to
/// it with --merge-existing, controller annotations of Ingresses on the same hosts carried over,
/// the cluster's default IngressClass used and named, and refused when there is none.
#[test]
fn expose_respects_the_ingresses_already_there() {
    let d = double();
    let e = env(&d);
    // Besides the chart's `platform` (pyairtable.local/, proxy-body-size 16m): one on another
    // path of the api-gateway host.
    d.create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "legacy-api", "namespace": NS, "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}},
        "spec": {"rules": [{"host": "api-gateway.pyairtable.local", "http": {"paths": [{"path": "/v1", "pathType": "Prefix",
            "backend": {"service": {"name": "api-gateway", "port": {"number": 8000}}}}]}}]}}))
    .unwrap();
    let snapshot = d.snapshot();
    let refused = mm(&e, &["expose", "--domain", "pyairtable.local", "--host", "frontend=pyairtable.local"]).expect_code(2);
    assert!(refused.stderr.contains("host pyairtable.local path / is served by Ingress pyairtable/platform (class nginx)"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--merge-existing"), "{}", refused.stderr);
    assert!(snapshot.diff(&d.snapshot()).is_empty(), "{:#?}", snapshot.diff(&d.snapshot()));

    // Merged: that pair stays with `platform`; legacy-api (no class: the default, nginx) shares
    // the api-gateway host, so its controller annotation is carried over.
    let exp = mm(&e, &["expose", "--domain", "pyairtable.local", "--host", "frontend=pyairtable.local", "--merge-existing"]).expect_code(0);
    assert!(exp.stderr.contains("expose: IngressClass nginx (the cluster's default: ingressclass.kubernetes.io/is-default-class=\"true\")"), "{}", exp.stderr);
    assert!(exp.stderr.contains("expose: carried over from Ingress pyairtable/legacy-api: nginx.ingress.kubernetes.io/proxy-read-timeout=120"), "{}", exp.stderr);
    assert!(exp.stderr.contains("expose: host pyairtable.local path / left to Ingress pyairtable/platform"), "{}", exp.stderr);
    let ing = d.get("networking.k8s.io/v1", "Ingress", Some(NS), "mesh-migrate-expose").unwrap();
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["metadata"]["annotations"], json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}));
    let hosts: Vec<&str> = ing["spec"]["rules"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert!(!hosts.contains(&"pyairtable.local") && hosts.contains(&"api-gateway.pyairtable.local"), "{hosts:?}");

    // The platform's own host, served by the tool: platform's proxy-body-size comes along.
    mm(&e, &["expose", "--cleanup"]).expect_code(0);
    kubectl(&e, &["delete", "ingress", "legacy-api", "-n", NS]).expect_code(0);
    let body = json!({"spec": {"rules": [{"host": "pyairtable.local", "http": {"paths": [{"path": "/old", "pathType": "Prefix",
        "backend": {"service": {"name": "frontend", "port": {"number": 3000}}}}]}}]}}).to_string();
    kubectl(&e, &["patch", "ingress", "platform", "-n", NS, "--type", "merge", "-p", &body]).expect_code(0);
    let exp = mm(&e, &["expose", "--domain", "pyairtable.local", "--host", "frontend=pyairtable.local"]).expect_code(0);
    assert!(exp.stderr.contains("carried over from Ingress pyairtable/platform: nginx.ingress.kubernetes.io/proxy-body-size=16m"), "{}", exp.stderr);
    mm(&e, &["expose", "--cleanup"]).expect_code(0);

    // No default IngressClass and no --ingress-class: refused (nginx ignores a class-less Ingress).
    kubectl(&e, &["annotate", "ingressclass", "nginx", "ingressclass.kubernetes.io/is-default-class-"]).expect_code(0);
    let none = mm(&e, &["expose", "--domain", "pyairtable.local"]).expect_code(2);
    assert!(none.stderr.contains("no IngressClass is the cluster's default") && none.stderr.contains("the cluster has nginx"), "{}", none.stderr);
    assert!(d.get("networking.k8s.io/v1", "Ingress", Some(NS), "mesh-migrate-expose").is_none());
}
