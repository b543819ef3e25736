//! `kubectl mesh-migrate ns` end to end: the namespace-based migration against the API double
//! through a kubeconfig, with a fake Prometheus answering the gates' queries. A healthy schedule
//! to 100 % and complete; a gate failing at 50 % with automatic rollback, and with freeze; faults
//! and a foreign field manager between steps, with `ns status` explaining the state; dry runs
//! that write nothing.

use std::path::PathBuf;
use std::sync::Arc;

use apiserver_double::prometheus::{PromQuery, Reply, Script};
use apiserver_double::{BlockingDouble, Double, DoubleHandle, DoubleOptions, FaultRule, crds};
use e2e::{Run, bin, root, run};
use serde_json::{Value, json};

struct Env {
    double: BlockingDouble,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// The legacy namespace of the fixture.
    ns: &'static str,
}

fn env() -> Env {
    env_of("shop")
}

/// The double with `tests/e2e/fixtures/ns-migrate/<ns>.yaml` created in it.
fn env_of(ns: &'static str) -> Env {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join(format!("tests/e2e/fixtures/ns-migrate/{ns}.yaml"))).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        double.create(doc).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap();
    Env { double, _dir: dir, kubeconfig, ns }
}

impl Env {
    fn mm(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&bin("mesh-migrate"), &all, None, &[("USER", "alice")])
    }

    fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.double.get(api_version, kind, Some(ns), name)
    }

    fn weight(&self, service: &str) -> Option<i64> {
        mesh_weight_in(&self.double, self.ns, service)
    }

    fn mesh(&self) -> String {
        format!("{}-mesh", self.ns)
    }

    fn replicas(&self, ns: &str, name: &str) -> i64 {
        self.get("apps/v1", "Deployment", ns, name).unwrap()["spec"]["replicas"].as_i64().unwrap()
    }

    fn state(&self) -> Value {
        let cm = self.get("v1", "ConfigMap", self.ns, "mesh-migrate-journal").expect("journal ConfigMap in the legacy namespace");
        let journal: Value = serde_json::from_str(cm["data"]["journal.json"].as_str().unwrap()).unwrap();
        journal["extensions"]["nsMigration"].clone()
    }

    /// Requests that could change something: not reads, and not server-side dry runs (the Pod
    /// Security question is a `dryRun=All` PATCH of the namespace, which persists nothing).
    fn writes(&self) -> Vec<apiserver_double::RequestRecord> {
        self.double.requests().into_iter().filter(|r| r.method != "GET" && r.param("dryRun").as_deref() != Some("All")).collect()
    }
}

/// The mesh weight the VirtualService for `service` routes (every route must agree).
fn mesh_weight(double: &DoubleHandle, service: &str) -> Option<i64> {
    mesh_weight_in(double, "shop", service)
}

fn mesh_weight_in(double: &DoubleHandle, ns: &str, service: &str) -> Option<i64> {
    let mesh_ns = format!("{ns}-mesh");
    let vs = double.get("networking.istio.io/v1", "VirtualService", Some(&mesh_ns), service)?;
    let mut weights = Vec::new();
    for section in ["http", "tcp"] {
        for r in vs["spec"][section].as_array().into_iter().flatten() {
            let mesh = r["route"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["destination"]["host"].as_str().unwrap().contains(&format!(".{mesh_ns}.")))
                .unwrap();
            weights.push(mesh["weight"].as_i64().unwrap());
        }
    }
    weights.dedup();
    assert_eq!(weights.len(), 1, "routes of {service} disagree: {vs}");
    Some(weights[0])
}

/// The VirtualServices and DestinationRules the double holds in the mesh namespace (what `ns`
/// writes), checked against Istio's CRD schemas; returns how many there are.
#[track_caller]
fn validate_routing(e: &Env) -> usize {
    let objects: Vec<Value> = [("networking.istio.io/v1", "VirtualService"), ("networking.istio.io/v1", "DestinationRule")]
        .into_iter()
        .flat_map(|(api_version, kind)| e.double.list(api_version, kind, Some(&e.mesh())))
        .collect();
    e2e::validate_objects(&objects)
}

/// Healthy metrics, except a success rate of 80 % while `api` routes at least `fail_from` % to
/// the mesh (never, with 101).
fn metrics(double: DoubleHandle, fail_from: i64) -> Script {
    Arc::new(move |q: &PromQuery| {
        let w = mesh_weight(&double, "api").unwrap_or(0);
        if q.query.contains("istio_requests_total") {
            Reply::Value(if w >= fail_from { 0.8 } else { 0.9995 })
        } else if q.query.contains("histogram_quantile") {
            Reply::Value(42.5)
        } else {
            Reply::Empty
        }
    })
}

const FAST: [&str; 4] = ["--interval", "30ms", "--check-every", "10ms"];

/// The fake Prometheus the double serves behind `monitoring/prometheus` (port `web`, 9090).
const PROMETHEUS: &str = "monitoring/prometheus:web";

/// A Prometheus the API server cannot proxy to fails the gates with the server's reason (here a
/// missing Service), and nothing moves; so does one the user may not proxy to (`tests/rbac.rs`).
#[test]
fn a_prometheus_service_the_api_server_cannot_reach_fails_the_gates_with_its_reason() {
    let e = env();
    e.double.serve_prometheus("monitoring", "prometheus", 9090, metrics((*e.double).clone(), 101));
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    for (spec, reason) in [("monitoring/nothing:web", "HTTP 404 from the API server: services \"nothing\" not found")] {
        let r = e.mm(&["ns", "shift", "shop", "25", "--on-failure", "freeze", "--prometheus-service", spec]).expect_code(1);
        let line = r.stdout.lines().find(|l| l.starts_with("success-rate")).unwrap_or_else(|| panic!("{}", r.stdout));
        assert!(line.contains("FAILED") && r.stdout.contains(reason), "{spec}: {}", r.stdout);
        assert!(r.stdout.contains(&format!("Prometheus service {}", spec.split_once(':').unwrap().0)), "{}", r.stdout);
        assert_eq!(e.weight("api"), Some(10));
    }
    let bad = e.mm(&["ns", "shift", "shop", "25", "--prometheus-service", "prometheus:9090"]).expect_code(2);
    assert!(bad.stderr.contains("--prometheus-service `prometheus:9090` names no namespace"), "{}", bad.stderr);
}

#[test]
fn a_healthy_schedule_reaches_100_percent_and_completes() {
    let e = env();
    let prom = e.double.serve_prometheus("monitoring", "prometheus", 9090, metrics((*e.double).clone(), 101));

    let r = e.mm(&["ns", "create", "shop"]).expect_code(0);
    assert!(r.stdout.contains("namespace/shop-mesh created"), "{}", r.stdout);
    assert!(r.stdout.contains("shop: 0 % to shop-mesh (created)"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "note: Deployment/api reads Secret api-db, which is not copied: create it in shop-mesh (or rerun with --copy-secrets)"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("tour-secret-pw") && !r.stderr.contains("tour-secret-pw"));
    // The legacy namespace's default-deny policy guards the copies too.
    assert!(r.stdout.lines().any(|l| l.starts_with("NetworkPolicy/default-deny") && l.contains("shop-mesh") && l.contains("copied with its peers adapted")), "{}", r.stdout);
    assert_eq!(e.get("networking.k8s.io/v1", "NetworkPolicy", "shop-mesh", "default-deny").unwrap()["spec"]["podSelector"], json!({}));
    let ns = e.double.get("v1", "Namespace", None, "shop-mesh").unwrap();
    assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    // Copies: references adjusted, the sidecar injected by the namespace label, routing at 0 %.
    let web = e.get("apps/v1", "Deployment", "shop-mesh", "web").unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "api.shop-mesh:8080");
    assert_eq!(web["status"]["readyReplicas"], 2);
    let cm = e.get("v1", "ConfigMap", "shop-mesh", "web-config").unwrap();
    assert_eq!(cm["data"]["API_URL"], "http://api.shop-mesh.svc.cluster.local:8080");
    let pods = e.double.list("v1", "Pod", Some("shop-mesh"));
    assert_eq!(pods.len(), 5);
    assert!(pods.iter().all(|p| p["spec"]["containers"].as_array().unwrap().iter().any(|c| c["name"] == "istio-proxy")));
    assert_eq!(e.weight("api"), Some(0));
    assert_eq!(e.weight("web"), Some(0));
    let dr = e.get("networking.istio.io/v1", "DestinationRule", "shop-mesh", "api").unwrap();
    assert_eq!(dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"], 5);
    assert_eq!(validate_routing(&e), 4, "a VirtualService and a DestinationRule for api and web");
    // Every write went through server-side apply (or patches) as kubectl-mesh-migrate.
    for w in e.writes() {
        assert_eq!(w.param("fieldManager").as_deref(), Some("kubectl-mesh-migrate"), "{w:?}");
    }
    // Re-running create changes nothing.
    let again = e.mm(&["ns", "create", "shop"]).expect_code(0);
    assert!(!again.stdout.contains(" created") && !again.stdout.contains(" configured"), "{}", again.stdout);

    let mut args = vec!["ns", "shift", "shop", "--steps", "10,25,50,75", "--prometheus-service", PROMETHEUS];
    args.extend(FAST);
    let r = e.mm(&args).expect_code(0);
    assert!(r.stderr.contains("weight 50 % -> 75 %"), "{}", r.stderr);
    assert!(r.stderr.contains("gates at 75 %: readiness 2/2 workloads ready ok"), "{}", r.stderr);
    assert_eq!(e.weight("api"), Some(75));
    assert_eq!(e.weight("web"), Some(75));
    let st = e.state();
    assert_eq!(st["phase"], "shifting");
    let shifts: Vec<i64> =
        st["history"].as_array().unwrap().iter().filter(|h| h["action"] == "shift").map(|h| h["to"].as_i64().unwrap()).collect();
    assert_eq!(shifts, [10, 25, 50, 75]);
    assert_eq!(validate_routing(&e), 4);
    assert!(st["history"].as_array().unwrap().iter().all(|h| h["who"] == "alice@double"));
    assert!(prom.queries().iter().any(|q| q.query.contains("destination_workload_namespace=\"shop-mesh\"") && q.time.is_some()));
    // Every query went through the API server's service proxy, with the kubeconfig's user.
    let proxied = e.double.requests_matching("GET", "^/api/v1/namespaces/monitoring/services/prometheus:web/proxy/api/v1/query$");
    assert_eq!(proxied.len(), prom.queries().len(), "{proxied:?}");

    // Real kubectl reads the same routing back.
    let kc = run(
        &e2e::venv_tool("kubectl"),
        &[
            "--kubeconfig",
            e.kubeconfig.to_str().unwrap(),
            "get",
            "virtualservice",
            "web",
            "-n",
            "shop-mesh",
            "-o",
            "jsonpath={.spec.http[0].route[*].weight}",
        ],
        None,
        &[],
    )
    .expect_code(0);
    assert_eq!(kc.stdout, "25 75");

    // Monitor: one sample, plain lines when stdout is not a terminal.
    let m = e.mm(&["ns", "monitor", "shop", "--prometheus-service", PROMETHEUS]).expect_code(0);
    assert_eq!(m.stdout.lines().count(), 1, "{}", m.stdout);
    assert!(m.stdout.contains("weight=75% legacy ready=5/5"), "{}", m.stdout);
    assert!(m.stdout.contains("mesh ready=5/5 restarts=0 success=99.95% p99=42.5ms"), "{}", m.stdout);
    let m = e.mm(&["ns", "monitor", "shop", "--for", "1s", "--every", "50ms", "-o", "json"]).expect_code(0);
    assert!(m.stdout.lines().count() >= 2, "refreshed until --for ran out: {}", m.stdout);
    for line in m.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["weight"], 75);
    }

    // On a terminal the view is redrawn in place (cursor up over the last frame, clear below).
    let cmd = format!("{} --kubeconfig {} ns monitor shop --for 1s --every 100ms", bin("mesh-migrate").display(), e.kubeconfig.display());
    let tty = run(std::path::Path::new("script"), &["-qec", &cmd, "/dev/null"], None, &[]).expect_code(0);
    assert!(tty.stdout.contains("\x1b[4A\x1b[J"), "no in-place refresh: {:?}", tty.stdout);
    assert!(tty.stdout.contains("mesh (shop-mesh)    75 %"), "{}", tty.stdout);

    let r = e.mm(&["ns", "complete", "shop", "--prometheus-service", PROMETHEUS]).expect_code(0);
    assert!(r.stdout.contains("shop: 100 % to shop-mesh (completed)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("note: callers outside the mesh (pods without a proxy")
            && r.stdout.contains("legacy Services in shop, whose workloads are scaled to zero: their requests fail")
            && r.stdout
                .contains("point them at the mesh side (api.shop-mesh, web.shop-mesh, i.e. `<service>.shop-mesh.svc.cluster.local`)"),
        "{}",
        r.stdout
    );
    assert_eq!(e.weight("api"), Some(100));
    assert_eq!((e.replicas("shop", "api"), e.replicas("shop", "web")), (0, 0));
    assert_eq!(e.replicas("shop-mesh", "api"), 3);
    assert_eq!(validate_routing(&e), 4);
    let s = e.mm(&["ns", "status", "shop"]).expect_code(0);
    assert!(s.stdout.contains("completed") && s.stdout.contains("0 % legacy / 100 % mesh"), "{}", s.stdout);
    let j = e.mm(&["ns", "status", "shop", "-o", "json"]).expect_code(0).json();
    assert_eq!((j["state"]["phase"].as_str(), j["state"]["weight"].as_i64()), (Some("completed"), Some(100)));
    assert_eq!(j["routes"][0], json!({"service": "api", "weight": 100, "present": true}));
    assert_eq!(j["state"]["legacyReplicas"], json!({"Deployment/api": 3, "Deployment/web": 2}));
    assert!(s.stdout.contains("legacy workloads scaled to zero"), "{}", s.stdout);
    // Nothing more to shift; rollback returns even from here: legacy back first, then traffic.
    assert!(e.mm(&["ns", "shift", "shop", "50", "--allow-decrease"]).expect_code(2).stderr.contains("complete"));
    e.mm(&["ns", "rollback", "shop"]).expect_code(0);
    assert_eq!((e.replicas("shop", "api"), e.replicas("shop", "web")), (3, 2));
    assert_eq!(e.weight("api"), Some(0));
    assert_eq!(e.replicas("shop-mesh", "api"), 0);
    assert_eq!(e.state()["phase"], "rolled-back");
    validate_routing(&e);
}

#[test]
fn a_gate_failing_at_50_percent_rolls_back_to_0() {
    let e = env();
    e.double.serve_prometheus("monitoring", "prometheus", 9090, metrics((*e.double).clone(), 50));
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    let mut args = vec!["ns", "shift", "shop", "--steps", "10,25,50,75,100", "--prometheus-service", PROMETHEUS];
    args.extend(FAST);
    let r = e.mm(&args).expect_code(1);
    assert!(r.stdout.lines().any(|l| l.starts_with("success-rate") && l.contains("FAILED") && l.contains("80 %")), "{}", r.stdout);
    assert!(r.stdout.contains("gate failed at 50 %"), "{}", r.stdout);
    assert!(!r.stderr.contains("-> 75 %"), "the schedule stopped: {}", r.stderr);
    assert_eq!(e.weight("api"), Some(0));
    assert_eq!(e.weight("web"), Some(0));
    // The mesh side keeps running for diagnosis.
    assert_eq!(e.replicas("shop-mesh", "api"), 3);
    let st = e.state();
    assert_eq!((st["phase"].as_str(), st["weight"].as_i64(), st["failedAt"].as_i64()), (Some("aborted"), Some(0), Some(50)));
    let s = e.mm(&["ns", "status", "shop"]).expect_code(0);
    assert!(s.stdout.contains("aborted"), "{}", s.stdout);
    assert!(s.stdout.contains("gate-failed") && s.stdout.contains("rolled back to 0 %"), "{}", s.stdout);
    assert!(s.stdout.contains("a gate failed at 50 % and traffic went back to 0 %"), "{}", s.stdout);
    // Complete is refused from here; rollback scales the mesh side down, legacy untouched.
    assert!(e.mm(&["ns", "complete", "shop"]).expect_code(2).stderr.contains("at 0 %"));
    e.mm(&["ns", "rollback", "shop"]).expect_code(0);
    assert_eq!(e.replicas("shop-mesh", "api"), 0);
    assert_eq!((e.replicas("shop", "api"), e.replicas("shop", "web")), (3, 2));
}

#[test]
fn a_gate_failing_at_50_percent_with_freeze_holds_the_weight() {
    let e = env();
    let prom = e.double.serve_prometheus("monitoring", "prometheus", 9090, metrics((*e.double).clone(), 50));
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    let mut args = vec!["ns", "shift", "shop", "--steps", "10,25,50,75,100", "--on-failure", "freeze", "--prometheus-service", PROMETHEUS];
    args.extend(FAST);
    let r = e.mm(&args).expect_code(1);
    assert!(r.stdout.contains("frozen at 50 %"), "{}", r.stdout);
    assert_eq!(e.weight("api"), Some(50));
    assert_eq!(e.state()["phase"], "frozen");
    let c = e.mm(&["ns", "complete", "shop"]).expect_code(2);
    assert!(c.stderr.contains("frozen at 50 % after a failed gate"), "{}", c.stderr);
    // A human fixed it: the metrics are healthy again and the schedule resumes after 50 %.
    prom.set_script(metrics((*e.double).clone(), 101));
    let mut args = vec!["ns", "shift", "shop", "--steps", "10,25,50,75,100", "--prometheus-service", PROMETHEUS];
    args.extend(FAST);
    let r = e.mm(&args).expect_code(0);
    assert!(r.stdout.contains("already reached: 10 %, 25 %, 50 %"), "{}", r.stdout);
    assert_eq!(e.weight("api"), Some(100));
    assert_eq!(e.state()["phase"], "shifting");
}

#[test]
fn faults_between_steps_leave_a_consistent_state_that_status_explains() {
    let e = env();
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    // The second VirtualService write fails: api is at 25 %, web still at 10 %.
    e.double
        .add_fault(
            FaultRule::on("PATCH", "^/apis/networking.istio.io/v1/namespaces/shop-mesh/virtualservices/web$")
                .status(500, "etcd timeout")
                .times(1),
        )
        .unwrap();
    let r = e.mm(&["ns", "shift", "shop", "25"]).expect_code(3);
    assert!(r.stderr.contains("etcd timeout"), "{}", r.stderr);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(25), Some(10)));
    assert_eq!(e.state()["weight"], 10, "the recorded weight moves only once every route is applied");
    let s = e.mm(&["ns", "status", "shop"]).expect_code(1);
    assert!(s.stdout.contains("problem: the `shift` to 25 % started at"), "{}", s.stdout);
    assert!(s.stdout.contains("1 of 2 VirtualServices already route 25 %"), "{}", s.stdout);
    assert!(s.stdout.contains("etcd timeout"), "{}", s.stdout);
    assert!(s.stdout.contains("run it again to resume"), "{}", s.stdout);
    // Resuming finishes it.
    e.mm(&["ns", "shift", "shop", "25"]).expect_code(0);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(25), Some(25)));
    let s = e.mm(&["ns", "status", "shop"]).expect_code(0);
    assert!(!s.stdout.contains("problem:"), "{}", s.stdout);

    // The journal write itself fails before any routing write: nothing changes.
    e.double
        .add_fault(FaultRule::on("PUT", "^/api/v1/namespaces/shop/configmaps/mesh-migrate-journal$").status(500, "storage full").times(1))
        .unwrap();
    e.mm(&["ns", "shift", "shop", "50"]).expect_code(3);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(25), Some(25)));

    // Another operator wrote the journal in between (409 on its update): stopped, nothing written.
    e.double
        .add_fault(
            FaultRule::on("PUT", "^/api/v1/namespaces/shop/configmaps/mesh-migrate-journal$")
                .status_reason(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                )
                .times(1),
        )
        .unwrap();
    let r = e.mm(&["ns", "shift", "shop", "50"]).expect_code(3);
    assert!(r.stderr.contains("another operator may be migrating this namespace"), "{}", r.stderr);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(25), Some(25)));

    // Someone else took over the weights with another field manager: reported, not overwritten.
    let mut vs = e.get("networking.istio.io/v1", "VirtualService", "shop-mesh", "web").unwrap();
    let obj = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop-mesh"},
        "spec": {"hosts": vs["spec"]["hosts"].take(), "http": [{"name": "port-80", "match": [{"port": 80}], "route": [
            {"destination": {"host": "web.shop.svc.cluster.local", "port": {"number": 80}}, "weight": 60},
            {"destination": {"host": "web.shop-mesh.svc.cluster.local", "port": {"number": 80}}, "weight": 40}]}]}});
    e.double.apply(obj, "platform-team", true).unwrap();
    let s = e.mm(&["ns", "status", "shop"]).expect_code(1);
    assert!(s.stdout.contains("routes 40 % to the mesh, but the recorded weight is 25 %"), "{}", s.stdout);
    let r = e.mm(&["ns", "shift", "shop", "50"]).expect_code(3);
    assert!(r.stderr.contains("platform-team"), "the conflict names the other manager: {}", r.stderr);
    assert_eq!(e.weight("web"), Some(40));
}

#[test]
fn a_process_killed_between_writes_is_resumed_by_rerunning_the_step() {
    let e = env();
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    // The write of the second VirtualService hangs; the process is killed while it waits.
    let id = e
        .double
        .add_fault(
            FaultRule::on("PATCH", "^/apis/networking.istio.io/v1/namespaces/shop-mesh/virtualservices/web$")
                .delay(std::time::Duration::from_secs(20))
                .times(1),
        )
        .unwrap();
    let mut child = std::process::Command::new(bin("mesh-migrate"))
        .args(["--kubeconfig", e.kubeconfig.to_str().unwrap(), "ns", "shift", "shop", "25"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while e.double.faults().iter().find(|f| f.id == id).is_none_or(|f| f.fired == 0) {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the web VirtualService was never written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    e.double.remove_fault(id);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(25), Some(10)));
    let st = e.state();
    assert_eq!((st["weight"].as_i64(), st["pending"]["to"].as_i64()), (Some(10), Some(25)));
    let s = e.mm(&["ns", "status", "shop"]).expect_code(1);
    assert!(s.stdout.contains("the `shift` to 25 % started at") && s.stdout.contains("did not finish"), "{}", s.stdout);
    assert!(s.stdout.contains("1 of 2 VirtualServices already route 25 %"), "{}", s.stdout);
    // Rerunning the step finishes it; the state is whole again.
    let r = e.mm(&["ns", "shift", "shop", "25"]).expect_code(0);
    assert!(r.stdout.contains("note: the `shift` to 25 % started at"), "{}", r.stdout);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(25), Some(25)));
    assert_eq!(e.state()["weight"], 25);
    assert!(e.state().get("pending").is_none());
    e.mm(&["ns", "status", "shop"]).expect_code(0);
}

/// A Role, a RoleBinding of the namespace's ServiceAccount `api` (and of one elsewhere) and an
/// autoscaler of `api`.
fn rbac_and_autoscaler() -> Vec<Value> {
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "shop"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "api-reader", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"}, {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "minReplicas": 3, "maxReplicas": 6,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}),
    ]
}

#[test]
fn dry_runs_write_nothing() {
    let e = env();
    for o in rbac_and_autoscaler() {
        e.double.create(o).unwrap();
    }
    let before = e.double.snapshot();
    e.double.clear_requests();
    let r = e.mm(&["ns", "create", "shop", "--dry-run=client", "--copy-secrets"]).expect_code(0);
    assert!(r.stdout.contains("+++ b/Deployment/shop-mesh/web (kubectl-mesh-migrate)"), "{}", r.stdout);
    // The Secret's copy is diffed as `kubectl diff` shows Secrets: every value masked.
    let secret_diff = &r.stdout[r.stdout.find("+++ b/Secret/shop-mesh/api-db (kubectl-mesh-migrate)").expect("a diff for the Secret's copy")..];
    assert!(secret_diff.lines().any(|l| l == "+  DATABASE_URL: \"***\""), "{secret_diff}");
    assert!(!r.stdout.contains("tour-secret-pw") && !r.stdout.contains("dG91ci1zZWNyZXQtcHc"), "{}", r.stdout);
    assert!(!r.stderr.contains("tour-secret-pw") && !r.stderr.contains("dG91ci1zZWNyZXQtcHc"), "{}", r.stderr);
    // Outcomes go to stderr, as for every mutating command: stdout is the diffs and the report.
    assert!(r.stderr.contains("deployment.apps/web created (namespace shop-mesh) (dry run)"), "{}", r.stderr);
    assert!(!r.stdout.lines().any(|l| l.starts_with("deployment.apps/")), "{}", r.stdout);
    let y = e.mm(&["ns", "create", "shop", "--dry-run=client", "--copy-secrets", "-o", "yaml"]).expect_code(0);
    assert!(y.stdout.contains("kind: VirtualService"), "{}", y.stdout);
    // The Secret's copy has the legacy Secret's keys, each value masked.
    let docs = apiserver_double::parse_documents(&y.stdout).unwrap();
    let copy = docs.iter().find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "api-db").expect("the Secret's copy");
    let legacy = e.get("v1", "Secret", "shop", "api-db").unwrap();
    let values = |s: &Value| -> Vec<(String, Value)> {
        let mut all: Vec<(String, Value)> =
            ["data", "stringData"].iter().filter_map(|f| s[*f].as_object()).flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let keys = |s: &Value| values(s).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(copy), keys(&legacy), "{copy}");
    assert!(!keys(copy).is_empty() && values(copy).iter().all(|(_, v)| v == "***"), "{copy}");
    // Everything it would write passes strict schema validation, the Istio routing included.
    let report = e2e::validate_stream(&y.stdout);
    let istio = y.stdout.matches("\napiVersion: networking.istio.io/").count();
    assert!(istio >= 4 && e2e::istio_validated(&report) == istio, "{istio} Istio objects:\n{}", report.stdout);
    assert!(!y.stdout.contains("tour-secret-pw"), "{}", y.stdout);
    // Roles, RoleBindings and HorizontalPodAutoscalers are copied, and the copies pass strict
    // schema validation.
    let copies: Vec<&str> = y
        .stdout
        .split("---\n")
        .filter(|d| ["kind: Role\n", "kind: RoleBinding\n", "kind: HorizontalPodAutoscaler\n"].iter().any(|k| d.contains(k)))
        .collect();
    assert_eq!(copies.len(), 3, "{}", y.stdout);
    assert!(copies.iter().all(|d| d.contains("namespace: shop-mesh")), "{copies:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copies.yaml");
    std::fs::write(&file, copies.iter().map(|d| format!("---\n{d}")).collect::<String>()).unwrap();
    let v = run(&e2e::root().join("tests/tools/validate.sh"), &[file.to_str().unwrap()], None, &[]);
    assert_eq!(v.code, 0, "schema validation failed:\n{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("3 passed") || v.stdout.contains("0 failed"), "{}", v.stdout);
    let s = e.mm(&["ns", "create", "shop", "--dry-run=server"]).expect_code(0);
    assert!(s.stdout.contains("only the Namespace was sent"), "{}", s.stdout);
    assert_eq!(e.writes().iter().filter(|w| w.param("dryRun").is_none()).count(), 0, "{:?}", e.writes());
    assert!(e.double.snapshot().diff(&before).is_empty());

    let r = e.mm(&["ns", "create", "shop"]).expect_code(0);
    for what in ["role.rbac.authorization.k8s.io/reader created", "rolebinding.rbac.authorization.k8s.io/api-reader created"] {
        assert!(r.stdout.contains(what), "{}", r.stdout);
    }
    assert!(r.stdout.contains("horizontalpodautoscaler.autoscaling/api created (namespace shop-mesh)"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("RoleBinding/api-reader") && l.contains("ServiceAccount shop/api -> shop-mesh/api")),
        "{}",
        r.stdout
    );
    let rb = e.get("rbac.authorization.k8s.io/v1", "RoleBinding", "shop-mesh", "api-reader").unwrap();
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "api", "namespace": "shop-mesh"}, {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}])
    );
    assert_eq!(rb["roleRef"]["name"], "reader");
    assert!(e.get("rbac.authorization.k8s.io/v1", "Role", "shop-mesh", "reader").is_some());
    let hpa = e.get("autoscaling/v2", "HorizontalPodAutoscaler", "shop-mesh", "api").unwrap();
    assert_eq!(hpa["spec"]["scaleTargetRef"], json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}));
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    let before = e.double.snapshot();
    e.double.clear_requests();
    let c = e.mm(&["ns", "shift", "shop", "25", "--dry-run=client"]).expect_code(0);
    assert!(c.stdout.contains("-    weight: 10") || c.stdout.contains("-      weight: 10"), "{}", c.stdout);
    let y = e.mm(&["ns", "shift", "shop", "25", "--dry-run=client", "-o", "yaml"]).expect_code(0);
    assert!(e2e::istio_validated(&e2e::validate_stream(&y.stdout)) >= 2, "{}", y.stdout);
    e.mm(&["ns", "shift", "shop", "25", "--dry-run=server"]).expect_code(0);
    e.mm(&["ns", "complete", "shop", "--dry-run=server"]).expect_code(0);
    e.mm(&["ns", "rollback", "shop", "--dry-run=client"]).expect_code(0);
    let writes: Vec<_> = e.double.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert!(!writes.is_empty(), "server dry runs send their writes");
    assert!(writes.iter().all(|w| w.param("dryRun").as_deref() == Some("All")), "{writes:?}");
    assert!(e.double.snapshot().diff(&before).is_empty());
    assert_eq!(e.state()["weight"], 10);
}

#[test]
fn steps_that_do_not_follow_from_the_state_are_refused() {
    let e = env();
    let r = e.mm(&["ns", "shift", "shop", "10"]).expect_code(2);
    assert!(r.stderr.contains("run `kubectl mesh-migrate ns create shop` first"), "{}", r.stderr);
    assert!(e.mm(&["ns", "shift", "shop", "101"]).expect_code(2).stderr.contains("out of range"));
    assert!(e.mm(&["ns", "shift", "shop", "--steps", "10,50,25"]).expect_code(2).stderr.contains("25 follows 50"));
    assert!(e.mm(&["ns", "create", "shop-mesh"]).expect_code(2).stderr.contains("name the legacy namespace"));
    assert!(e.mm(&["ns", "create", "nosuch"]).expect_code(2).stderr.contains("namespace nosuch does not exist"));
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "50"]).expect_code(0);
    let r = e.mm(&["ns", "shift", "shop", "25"]).expect_code(2);
    assert!(r.stderr.contains("shop is at 50 %") && r.stderr.contains("--allow-decrease"), "{}", r.stderr);
    assert!(e.mm(&["ns", "create", "shop"]).expect_code(2).stderr.contains("already migrating"));
    e.mm(&["ns", "shift", "shop", "25", "--allow-decrease"]).expect_code(0);
    assert_eq!(e.weight("api"), Some(25));
    // A Pod Security violation in a copy is refused before anything is written.
    let e2 = env();
    let mut d = e2.get("apps/v1", "Deployment", "shop", "web").unwrap();
    d["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    e2.double.apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": d["spec"]["selector"].take(), "template": d["spec"]["template"].take()}}), "test", true).unwrap();
    e2.double.clear_requests();
    let r = e2.mm(&["ns", "create", "shop"]).expect_code(2);
    // The API server judges the running pods (a server-side dry run of the enforce label).
    assert!(r.stderr.contains("Deployment/web: the API server: Pod Security restricted:latest would reject pod web-"), "{}", r.stderr);
    assert!(r.stderr.contains("host namespaces"), "{}", r.stderr);
    assert!(e2.writes().is_empty(), "{:?}", e2.writes());
    // Without istio-cni, Pod Security would reject the istio-init container of every injected pod.
    let e3 = env();
    e3.double.delete("apps/v1", "DaemonSet", Some("istio-system"), "istio-cni-node").unwrap();
    e3.double.clear_requests();
    let r = e3.mm(&["ns", "create", "shop"]).expect_code(2);
    assert!(r.stderr.contains("no istio-cni-node DaemonSet was found") && r.stderr.contains("--mode ambient"), "{}", r.stderr);
    assert!(e3.writes().is_empty(), "{:?}", e3.writes());
    // Ambient mode needs ztunnel and istio-cni, which this cluster lacks now.
    let r = e3.mm(&["ns", "create", "shop", "--mode", "ambient"]).expect_code(2);
    assert!(r.stderr.contains("MM1006") && r.stderr.contains("MM1007") && r.stderr.contains("--force"), "{}", r.stderr);
    assert!(e3.writes().is_empty(), "{:?}", e3.writes());
    // Roles that cannot be listed (the `edit` ClusterRole does not grant it): the copies would
    // lack them, so create refuses naming them and the flag; with it, they are named in a note.
    e3.double.add_fault(FaultRule::on("GET", "^/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles$").forbidden("alice").times(1)).unwrap();
    e3.double.clear_requests();
    let r = e3.mm(&["ns", "create", "shop", "--mode", "ambient", "--force"]).expect_code(2);
    assert!(r.stderr.contains("could not read roles.rbac.authorization.k8s.io in shop") && r.stderr.contains("--allow-unreadable"), "{}", r.stderr);
    assert!(e3.writes().is_empty(), "{:?}", e3.writes());
    e3.double.add_fault(FaultRule::on("GET", "^/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles$").forbidden("alice")).unwrap();
    let r = e3.mm(&["ns", "create", "shop", "--mode", "ambient", "--dry-run=client", "--force", "--allow-unreadable", "--no-waypoint"]).expect_code(0);
    assert!(r.stdout.contains("note: going ahead despite the control plane check (--force):"), "{}", r.stdout);
    assert!(r.stdout.contains("note: could not read roles.rbac.authorization.k8s.io in shop (forbidden: "), "{}", r.stdout);
    assert!(r.stdout.contains("any there are not copied"), "{}", r.stdout);
    assert!(!r.stdout.contains("could not read rolebindings"), "{}", r.stdout);
}

#[test]
fn all_namespaces_lists_migrations_for_status_and_is_refused_elsewhere() {
    let e = env();
    e.double.clear_requests();
    for args in [
        ["ns", "create", "shop", "-A"].as_slice(),
        &["ns", "shift", "shop", "10", "-A"],
        &["ns", "monitor", "-A"],
        &["ns", "complete", "shop", "--all-namespaces"],
        &["ns", "rollback", "-A"],
    ] {
        let r = e.mm(args).expect_code(2);
        assert!(
            r.stderr.contains("-A/--all-namespaces does not apply to `ns ") && r.stderr.contains("one legacy namespace"),
            "{}",
            r.stderr
        );
    }
    let r = e.mm(&["ns", "status", "shop", "-A"]).expect_code(2);
    assert!(r.stderr.contains("drop it to see shop alone"), "{}", r.stderr);
    assert!(e.writes().is_empty(), "{:?}", e.writes());
    assert!(e.mm(&["ns", "status", "-A"]).expect_code(0).stdout.contains("no namespace-based migration is recorded"));

    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    // An in-place migration's journal (no namespace-based state) is not listed; an unreadable
    // one is, with the reason.
    let journal = |ns: &str, text: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-migrate-journal", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "kubectl-mesh-migrate"}},
            "data": {"journal.json": text}})
    };
    e.double.create(journal("istio-system", r#"{"version": 1, "namespace": "istio-system", "steps": [], "entries": []}"#)).unwrap();
    e.double.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cart"}})).unwrap();
    e.double
        .create(journal(
            "cart",
            r#"{"version": 1, "namespace": "cart", "steps": [], "entries": [], "extensions": {"nsMigration": {"phase": 7}}}"#,
        ))
        .unwrap();
    e.double.clear_requests();
    let r = e.mm(&["ns", "status", "-A"]).expect_code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].starts_with("NAMESPACE") && lines[0].contains("WEIGHT"), "{}", r.stdout);
    assert!(lines[1].starts_with("cart ") && lines[1].contains("unreadable") && lines[1].contains("cannot read"), "{}", r.stdout);
    assert!(lines[2].starts_with("shop ") && lines[2].contains("shifting") && lines[2].contains("10 %"), "{}", r.stdout);
    assert!(lines[2].contains("gates by alice@double: passed"), "{}", r.stdout);
    let j = e.mm(&["ns", "status", "-A", "-o", "json"]).expect_code(1).json();
    let items = j["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[1]["namespace"].as_str(), items[1]["meshNamespace"].as_str()), (Some("shop"), Some("shop-mesh")));
    assert_eq!((items[1]["state"]["phase"].as_str(), items[1]["state"]["weight"].as_i64()), (Some("shifting"), Some(10)));
    assert!(items[0]["state"].is_null() && items[0]["problem"].as_str().unwrap().contains("cannot read"));
    let lists: Vec<_> = e.double.requests().into_iter().filter(|r| r.method == "GET" && r.path == "/api/v1/configmaps").collect();
    assert_eq!(lists.len(), 2, "one LIST across namespaces per run");
}

#[test]
fn rollback_after_delete_legacy_recreates_the_legacy_workloads_from_the_journal() {
    let e = env();
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "50"]).expect_code(0);
    e.mm(&["ns", "complete", "shop"]).expect_code(0);
    assert_eq!((e.replicas("shop", "api"), e.replicas("shop", "web")), (0, 0));
    let before = e.get("apps/v1", "Deployment", "shop", "api").unwrap();
    // Deleted after an earlier scale to zero: the journal keeps the objects and their replicas.
    let r = e.mm(&["ns", "complete", "shop", "--delete-legacy"]).expect_code(0);
    assert!(r.stdout.contains("legacy Services in shop, whose workloads are deleted"), "{}", r.stdout);
    assert!(e.get("apps/v1", "Deployment", "shop", "api").is_none() && e.get("apps/v1", "Deployment", "shop", "web").is_none());
    let st = e.state();
    assert_eq!(st["legacyDeleted"], true);
    assert_eq!(st["deletedLegacy"]["Deployment/api"]["spec"]["template"], before["spec"]["template"]);
    assert!(st["deletedLegacy"]["Deployment/api"]["metadata"].get("uid").is_none());
    let s = e.mm(&["ns", "status", "shop"]).expect_code(0);
    assert!(s.stdout.contains("`ns rollback shop` re-creates them from the journal"), "{}", s.stdout);

    // A journal without the objects (an older version wrote it): refused, saying why and what to do.
    let cm = e.get("v1", "ConfigMap", "shop", "mesh-migrate-journal").unwrap();
    let text = cm["data"]["journal.json"].as_str().unwrap().to_string();
    let mut journal: Value = serde_json::from_str(&text).unwrap();
    journal["extensions"]["nsMigration"].as_object_mut().unwrap().remove("deletedLegacy");
    let put = |text: String| {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mesh-migrate-journal", "namespace": "shop"},
            "data": {"journal.json": text}});
        e.double.apply(cm, "kubectl-mesh-migrate", true).unwrap();
    };
    put(journal.to_string());
    e.double.clear_requests();
    let r = e.mm(&["ns", "rollback", "shop"]).expect_code(2);
    assert!(r.stderr.contains("were deleted by `ns complete --delete-legacy` and the journal holds no copy of them"), "{}", r.stderr);
    assert!(r.stderr.contains("re-create the workloads in shop from their source"), "{}", r.stderr);
    assert!(e.writes().is_empty(), "{:?}", e.writes());
    put(text);

    let r = e.mm(&["ns", "rollback", "shop"]).expect_code(0);
    assert!(r.stdout.contains("deployment.apps/api created (namespace shop)"), "{}", r.stdout);
    let api = e.get("apps/v1", "Deployment", "shop", "api").unwrap();
    assert_eq!(api["spec"]["template"], before["spec"]["template"]);
    assert_eq!((e.replicas("shop", "api"), e.replicas("shop", "web")), (3, 2));
    assert_eq!(api["status"]["readyReplicas"], 3, "waited for");
    assert_eq!(e.weight("api"), Some(0));
    assert_eq!(e.replicas("shop-mesh", "api"), 0);
    let st = e.state();
    assert_eq!((st["phase"].as_str(), st["legacyDeleted"].as_bool()), (Some("rolled-back"), Some(false)));
    assert!(st.get("deletedLegacy").is_none());
    assert_eq!(
        st["history"].as_array().unwrap().last().unwrap()["result"],
        "legacy workloads re-created, traffic at 0 %, mesh side scaled to zero"
    );
}

impl Env {
    fn spec_replicas(&self, kind: &str, ns: &str, name: &str) -> i64 {
        self.get("apps/v1", kind, ns, name).unwrap_or_else(|| panic!("{kind} {ns}/{name} exists"))["spec"]["replicas"].as_i64().unwrap()
    }

    /// Every object the double holds in `ns` (any kind), as served.
    fn all_in(&self, ns: &str) -> Vec<Value> {
        let kinds = [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("policy/v1", "PodDisruptionBudget"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("networking.istio.io/v1", "VirtualService"),
            ("networking.istio.io/v1", "DestinationRule"),
        ];
        kinds.iter().flat_map(|(v, k)| self.double.list(v, k, Some(ns))).collect()
    }
}

/// The env of the first container of a Deployment, name to value.
fn env_values(d: &Value) -> std::collections::BTreeMap<String, String> {
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect()
}

/// A Secret's value: `data` decoded, or `stringData` (which the double keeps as written).
fn secret_value(secret: &Value, key: &str) -> String {
    match secret["data"].get(key) {
        Some(v) => decode(v),
        None => secret["stringData"][key].as_str().unwrap_or_else(|| panic!("Secret has no {key}: {secret}")).to_string(),
    }
}

/// A base64 value, decoded.
fn decode(v: &Value) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in v.as_str().unwrap().bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn zamaz_stateful_backends_stay_single_and_the_copies_reach_them_in_the_legacy_namespace() {
    let e = env_of("zamaz");
    let mesh = e.mesh();
    // The plan first: nothing written, shared backends and every rewrite listed, no Secret value.
    let before = e.double.snapshot();
    let plan = e.mm(&["ns", "create", "zamaz", "--copy-secrets", "--dry-run=client"]).expect_code(0);
    assert!(e.double.snapshot().diff(&before).is_empty(), "a client dry run writes nothing");
    let out = &plan.stdout;
    assert!(out.contains("shared backends (stay in zamaz):"), "{out}");
    for (object, service) in [("StatefulSet/postgres", "postgres"), ("Deployment/redis", "redis"), ("StatefulSet/nats", "nats")] {
        assert!(out.lines().any(|l| l.starts_with(object) && l.contains(service)), "{object} not listed as shared: {out}");
    }
    assert!(out.contains("kubectl mesh-migrate enable -n zamaz"), "{out}");
    // Its NetworkPolicies admit only pods of zamaz to the backends: a companion policy admits the
    // api's copy in zamaz-mesh, so the engine finds no connection lost.
    assert!(out.lines().any(|l| l.starts_with("NetworkPolicy/postgres-from-api-zamaz-mesh") && l.contains(" zamaz ")), "{out}");
    assert!(!out.contains("warning: NetworkPolicy"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("Deployment/api") && l.contains("env DATABASE_URL") && l.contains("postgres -> postgres.zamaz.svc.cluster.local")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("Secret/zamaz-db") && l.contains("ata.DATABASE_URL ") && l.contains("value not shown")), "{out}");
    assert!(!out.contains("zamaz-secret-pw") && !plan.stderr.contains("zamaz-secret-pw"), "a Secret value leaked: {out}");
    assert!(!out.contains("emFtYXotc2VjcmV0LXB3"), "base64 of the Secret value leaked");

    e.mm(&["ns", "create", "zamaz", "--copy-secrets"]).expect_code(0);
    // No backend, nor any Service in front of one, is copied; nothing splits their traffic.
    for (kind, name) in [("StatefulSet", "postgres"), ("Deployment", "redis"), ("StatefulSet", "nats")] {
        assert!(e.get("apps/v1", kind, &mesh, name).is_none(), "{kind}/{name} was copied");
    }
    for name in ["postgres", "redis", "nats"] {
        assert!(e.get("v1", "Service", &mesh, name).is_none(), "Service {name} was copied");
        assert!(e.get("networking.istio.io/v1", "VirtualService", &mesh, name).is_none(), "{name} is split by weight");
        assert!(e.get("networking.istio.io/v1", "DestinationRule", &mesh, name).is_none());
    }
    assert!(e.double.list("v1", "PersistentVolumeClaim", Some(&mesh)).is_empty());
    assert_eq!((e.weight("api"), e.weight("frontend")), (Some(0), Some(0)));
    assert!(e.get("autoscaling/v2", "HorizontalPodAutoscaler", &mesh, "api").is_some());
    // The copies reach the backends in zamaz; POSTGRES_DB and the database in a DSN are untouched.
    let api = e.get("apps/v1", "Deployment", &mesh, "api").unwrap();
    let env = env_values(&api);
    assert_eq!(env["DATABASE_URL"], "postgres://zamaz:zamaz-env-pw@postgres.zamaz.svc.cluster.local:5432/zamaz");
    assert_eq!(env["POSTGRES_DB"], "zamaz");
    assert_eq!(env["REDIS_ADDR"], "redis.zamaz.svc.cluster.local:6379");
    assert_eq!(env["NATS_SERVERS"], "nats://nats.zamaz:4222");
    assert_eq!(env["CACHE_DRIVER"], "redis");
    let cm = e.get("v1", "ConfigMap", &mesh, "zamaz-config").unwrap();
    assert_eq!(
        cm["data"],
        json!({"DB_HOST": "postgres.zamaz.svc.cluster.local", "POSTGRES_DB": "zamaz",
            "REDIS_URL": "redis://redis.zamaz.svc.cluster.local:6379/0", "NATS_URL": "nats://nats.zamaz.svc.cluster.local:4222",
            "API_URL": "http://api.zamaz-mesh.svc.cluster.local:8080"})
    );
    let secret = e.get("v1", "Secret", &mesh, "zamaz-db").unwrap();
    assert_eq!(secret_value(&secret, "DATABASE_URL"), "postgres://zamaz:zamaz-secret-pw@postgres.zamaz.svc.cluster.local:5432/zamaz?sslmode=disable");
    assert_eq!(env_values(&e.get("apps/v1", "Deployment", &mesh, "frontend").unwrap())["API_URL"], "http://api.zamaz-mesh:8080");
    // Nothing on the mesh side names a backend in the mesh namespace.
    for o in e.all_in(&mesh) {
        let text = o.to_string();
        for backend in ["postgres", "redis", "nats"] {
            assert!(!text.contains(&format!("{backend}.zamaz-mesh")), "{} points {backend} at the mesh namespace: {text}", o["metadata"]["name"]);
        }
    }

    // Shift, complete: the stateless legacy side is retired, the backends keep their replicas.
    e.mm(&["ns", "shift", "zamaz", "50"]).expect_code(0);
    // The fixture's Ingress still points at zamaz (its switch to the Istio gateway: ns_guards.rs).
    let r = e.mm(&["ns", "complete", "zamaz", "--force"]).expect_code(0);
    assert!(r.stdout.contains("shared backends keep running in zamaz"), "{}", r.stdout);
    assert_eq!((e.spec_replicas("Deployment", "zamaz", "api"), e.spec_replicas("Deployment", "zamaz", "frontend")), (0, 0));
    assert_eq!(e.spec_replicas("StatefulSet", "zamaz", "postgres"), 1);
    assert_eq!(e.spec_replicas("StatefulSet", "zamaz", "nats"), 1);
    assert_eq!(e.spec_replicas("Deployment", "zamaz", "redis"), 1);
    let postgres = e.get("apps/v1", "StatefulSet", "zamaz", "postgres").unwrap();
    assert_eq!(postgres["status"]["readyReplicas"], 1);
    let st = e.state();
    assert_eq!(st["legacyReplicas"], json!({"Deployment/api": 2, "Deployment/frontend": 2}));
    let shared: Vec<&str> = st["shared"].as_array().unwrap().iter().map(|s| s["object"].as_str().unwrap()).collect();
    assert_eq!(shared, ["Deployment/redis", "StatefulSet/nats", "StatefulSet/postgres"]);
    let s = e.mm(&["ns", "status", "zamaz"]).expect_code(0);
    assert!(s.stdout.contains("shared backends (stay in zamaz): Deployment/redis (redis), StatefulSet/nats (nats), StatefulSet/postgres (postgres)"), "{}", s.stdout);
    // Deleting the legacy side never deletes a backend either.
    e.mm(&["ns", "complete", "zamaz", "--delete-legacy", "--force"]).expect_code(0);
    assert!(e.get("apps/v1", "Deployment", "zamaz", "api").is_none());
    assert_eq!(e.spec_replicas("StatefulSet", "zamaz", "postgres"), 1);
    assert_eq!(e.spec_replicas("Deployment", "zamaz", "redis"), 1);
}

#[test]
fn a_stateful_backend_is_copied_only_with_copy_stateful_and_starts_empty() {
    let e = env_of("zamaz");
    let mesh = e.mesh();
    e.double.clear_requests();
    let r = e.mm(&["ns", "create", "zamaz", "--copy-stateful", "nosuch"]).expect_code(2);
    assert!(r.stderr.contains("--copy-stateful nosuch: no workload of that name in zamaz"), "{}", r.stderr);
    assert!(e.writes().is_empty(), "{:?}", e.writes());

    // Redis's pod template does not meet `restricted`: a stateful copy is checked like any other.
    let r = e.mm(&["ns", "create", "zamaz", "--copy-stateful", "redis"]).expect_code(2);
    // The server names nats-0 for the group of pods failing the same four checks; redis's
    // template fails all four too, so its copy may hide there.
    assert!(r.stderr.contains("would reject pod nats-0 (and 2 other pods)"), "{}", r.stderr);
    assert!(r.stderr.contains("the copies Deployment/redis may be among the others"), "{}", r.stderr);
    let r = e.mm(&["ns", "create", "zamaz", "--copy-stateful", "redis", "--pod-security", "baseline"]).expect_code(0);
    assert!(r.stdout.lines().any(|l| l.starts_with("warning: Deployment/redis") && l.contains("starts EMPTY")), "{}", r.stdout);
    assert!(e.get("apps/v1", "Deployment", &mesh, "redis").is_some());
    assert!(e.get("v1", "Service", &mesh, "redis").is_some());
    // The copy serves the mesh side; traffic to the original is never split onto it.
    assert!(e.get("networking.istio.io/v1", "VirtualService", &mesh, "redis").is_none());
    assert_eq!(env_values(&e.get("apps/v1", "Deployment", &mesh, "api").unwrap())["REDIS_ADDR"], "redis:6379");
    assert!(e.get("apps/v1", "StatefulSet", &mesh, "postgres").is_none(), "only the one asked for");
    e.mm(&["ns", "shift", "zamaz", "100"]).expect_code(0);
    e.mm(&["ns", "complete", "zamaz", "--force"]).expect_code(0);
    assert_eq!(e.spec_replicas("Deployment", "zamaz", "redis"), 1, "the original keeps its data and runs on");
    assert_eq!(e.spec_replicas("Deployment", "zamaz", "api"), 0);
}

#[test]
fn ns_create_writes_the_seed_plans_destination_rules_and_takes_the_traffic_profile_of_enable() {
    let e = env_of("zamaz");
    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    // The seed plan's circuit breaker and connection pool, where Istio's DestinationRule API puts them.
    let seed = json!({
        "connectionPool": {
            "tcp": {"maxConnections": 100, "connectTimeout": "30s"},
            "http": {"http1MaxPendingRequests": 1000, "maxRequestsPerConnection": 10}
        },
        "outlierDetection": {
            "consecutiveGatewayErrors": 5, "consecutive5xxErrors": 5, "interval": "30s", "baseEjectionTime": "30s", "maxEjectionPercent": 50
        }
    });
    for svc in ["api", "frontend"] {
        let dr = e.get("networking.istio.io/v1", "DestinationRule", "zamaz-mesh", svc).unwrap();
        assert_eq!(dr["spec"]["host"], format!("{svc}.zamaz-mesh.svc.cluster.local"));
        assert_eq!(dr["spec"]["trafficPolicy"], seed, "DestinationRule {svc}");
    }
    assert!(validate_routing(&e) >= 4);

    // The same --profile file and flags as `enable`: the file over the defaults, flags over the file.
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traffic.yaml");
    std::fs::write(&file, "maxConnections: 250\nconsecutiveGatewayErrors: 3\nmaxRequestsPerConnection: 15\n").unwrap();
    let f = file.to_str().unwrap();
    e.mm(&["ns", "create", "shop", "--profile", f, "--max-requests-per-connection", "20", "--interval", "10s"]).expect_code(0);
    let tp = &e.get("networking.istio.io/v1", "DestinationRule", "shop-mesh", "api").unwrap()["spec"]["trafficPolicy"];
    assert_eq!(tp["connectionPool"]["tcp"], json!({"maxConnections": 250, "connectTimeout": "30s"}));
    assert_eq!(tp["connectionPool"]["http"]["maxRequestsPerConnection"], 20);
    assert_eq!(tp["outlierDetection"]["consecutiveGatewayErrors"], 3);
    assert_eq!(tp["outlierDetection"]["interval"], "10s");
    assert_eq!(tp["outlierDetection"]["consecutive5xxErrors"], 5);
    validate_routing(&e);
    // A profile `enable` would refuse is refused here too, before anything is written.
    std::fs::write(&file, "maxConnection: 10\n").unwrap();
    let e = env();
    e.double.clear_requests();
    let r = e.mm(&["ns", "create", "shop", "--profile", f]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("maxConnection"), "{}", r.stderr);
    assert!(e.writes().is_empty(), "{:?}", e.writes());
}

impl Env {
    /// Patch the status of a pod of `workload` in the mesh namespace with real kubectl, as the
    /// kubelet would report it; returns the pod's name.
    fn patch_mesh_pod_status(&self, workload: &str, status: Value) -> String {
        let mesh = self.mesh();
        let pod = self
            .double
            .list("v1", "Pod", Some(&mesh))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == workload)
            .unwrap_or_else(|| panic!("no pod of {workload} in {mesh}"));
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        let patch = json!({"status": status}).to_string();
        run(
            &e2e::venv_tool("kubectl"),
            &["--kubeconfig", self.kubeconfig.to_str().unwrap(), "patch", "pod", &name, "-n", &mesh, "--subresource=status", "--type=merge", "-p", &patch],
            None,
            &[],
        )
        .expect_code(0);
        name
    }

    fn vs_generation(&self, service: &str) -> i64 {
        self.get("networking.istio.io/v1", "VirtualService", &self.mesh(), service).unwrap()["metadata"]["generation"].as_i64().unwrap()
    }
}

#[test]
fn gates_on_the_current_state_are_checked_before_the_next_weight_is_written() {
    let e = env();
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    let generation = e.vs_generation("api");
    // A mesh pod stops being ready while 10 % of the traffic goes to the mesh side.
    let pod = e.patch_mesh_pod_status("api", json!({"conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}));
    assert_eq!(e.get("apps/v1", "Deployment", "shop-mesh", "api").unwrap()["status"]["readyReplicas"], 2);
    e.double.clear_requests();
    let r = e.mm(&["ns", "shift", "shop", "25", "--on-failure", "freeze"]).expect_code(1);
    assert!(r.stdout.contains(&format!("Pod/{pod}: not ready")), "the reason is named: {}", r.stdout);
    // 25 % was never written: no VirtualService write at all, the weight holds.
    assert!(!e.writes().iter().any(|w| w.path.contains("/virtualservices")), "{:?}", e.writes());
    assert_eq!((e.weight("api"), e.weight("web")), (Some(10), Some(10)));
    assert_eq!(e.vs_generation("api"), generation);
    let st = e.state();
    assert_eq!((st["phase"].as_str(), st["weight"].as_i64()), (Some("frozen"), Some(10)));
    let last = st["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "gate-failed");
    let readiness = last["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "readiness").unwrap();
    assert_eq!(readiness["passed"], false);
    assert!(readiness["detail"].as_str().unwrap().contains(&pod), "{readiness}");
    // The default policy takes the unhealthy mesh side out of traffic: one write, to 0 %.
    e.mm(&["ns", "shift", "shop", "25"]).expect_code(1);
    assert_eq!((e.weight("api"), e.weight("web")), (Some(0), Some(0)));
    assert_eq!(e.vs_generation("api"), generation + 1, "25 % was never written on the way to 0 %");
    assert_eq!(e.state()["phase"], "aborted");
    // `complete` checks before it writes 100 % as well.
    let e = env();
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "50"]).expect_code(0);
    let generation = e.vs_generation("web");
    e.patch_mesh_pod_status("web", json!({"conditions": [{"type": "Ready", "status": "False"}]}));
    e.mm(&["ns", "complete", "shop", "--on-failure", "freeze"]).expect_code(1);
    assert_eq!((e.weight("web"), e.vs_generation("web")), (Some(50), generation));
    assert_eq!((e.replicas("shop", "api"), e.replicas("shop", "web")), (3, 2), "the legacy side is not retired");
}

#[test]
fn restarts_count_from_the_migration_start_or_the_last_passed_step_not_from_each_weight() {
    let e = env();
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    // Two restarts of a mesh container after 10 % was set and its gates passed.
    let restarted = json!({"containerStatuses": [
        {"name": "web", "ready": true, "restartCount": 2, "image": "shop/web:1.4", "imageID": "", "started": true, "state": {"running": {}}},
        {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "istio/proxyv2", "imageID": "", "started": true, "state": {"running": {}}}]});
    e.patch_mesh_pod_status("web", restarted);
    let r = e.mm(&["ns", "shift", "shop", "25", "--on-failure", "freeze"]).expect_code(1);
    assert!(r.stdout.lines().any(|l| l.starts_with("restarts") && l.contains("FAILED") && l.contains("2 new")), "{}", r.stdout);
    assert_eq!(e.weight("web"), Some(10), "not written");
    // Accepted once (--max-restarts 2): the step passes, and the baseline moves to it.
    e.mm(&["ns", "shift", "shop", "25", "--max-restarts", "2"]).expect_code(0);
    assert_eq!(e.weight("web"), Some(25));
    let r = e.mm(&["ns", "shift", "shop", "50"]).expect_code(0);
    assert!(r.stderr.contains("gates at 25 %: readiness 2/2 workloads ready ok, restarts 0 new ok"), "{}", r.stderr);
    assert_eq!(e.weight("web"), Some(50));
}

#[test]
fn complete_never_retires_a_backend_a_journal_of_an_older_version_recorded_as_copied() {
    let e = env_of("zamaz");
    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    e.mm(&["ns", "shift", "zamaz", "100"]).expect_code(0);
    // An older version copied postgres (an empty one) and recorded it among the copied workloads.
    let legacy = e.get("apps/v1", "StatefulSet", "zamaz", "postgres").unwrap();
    e.double
        .create(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "postgres", "namespace": "zamaz-mesh"}, "spec": legacy["spec"]}))
        .unwrap();
    let cm = e.get("v1", "ConfigMap", "zamaz", "mesh-migrate-journal").unwrap();
    let mut journal: Value = serde_json::from_str(cm["data"]["journal.json"].as_str().unwrap()).unwrap();
    journal["extensions"]["nsMigration"]["workloads"].as_array_mut().unwrap().push(json!({"kind": "StatefulSet", "name": "postgres", "replicas": 1}));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mesh-migrate-journal", "namespace": "zamaz"},
        "data": {"journal.json": journal.to_string()}});
    e.double.apply(cm, "kubectl-mesh-migrate", true).unwrap();
    let r = e.mm(&["ns", "complete", "zamaz", "--delete-legacy", "--force"]).expect_code(0);
    assert!(r.stdout.contains("StatefulSet/postgres is stateful: left running in zamaz"), "{}", r.stdout);
    assert_eq!(e.spec_replicas("StatefulSet", "zamaz", "postgres"), 1);
    assert!(e.get("apps/v1", "Deployment", "zamaz", "api").is_none(), "the stateless side is retired");
    assert!(e.state()["deletedLegacy"].get("StatefulSet/postgres").is_none());
}

/// Where stdout is not a terminal (a pipe here), `ns monitor` prints one plain line per refresh:
/// no cursor movement or clearing, each line the sample of that moment, as the cluster and
/// Prometheus give it.
#[test]
fn monitor_prints_plain_lines_when_stdout_is_not_a_terminal() {
    let e = env();
    e.double.serve_prometheus("monitoring", "prometheus", 9090, metrics((*e.double).clone(), 101));
    e.mm(&["ns", "create", "shop"]).expect_code(0);
    e.mm(&["ns", "shift", "shop", "10"]).expect_code(0);
    let r = e.mm(&["ns", "monitor", "shop", "--for", "600ms", "--every", "200ms", "--prometheus-service", PROMETHEUS]).expect_code(0);
    assert!(!r.stdout.contains('\x1b') && !r.stdout.contains('\r'), "escape sequences on a pipe: {:?}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.len() >= 2, "one line per refresh over 600ms every 200ms: {:?}", r.stdout);
    let ready = |ns: &str| {
        let deployments = e.double.list("apps/v1", "Deployment", Some(ns));
        let sum = |f: &str| deployments.iter().map(|d| d["status"][f].as_i64().unwrap_or(0)).sum::<i64>();
        format!("{}/{}", sum("readyReplicas"), sum("replicas"))
    };
    for line in lines {
        let (head, mesh) = line.split_once(" | ").unwrap_or_else(|| panic!("not `legacy | mesh`: {line:?}"));
        let fields: Vec<&str> = head.split(' ').collect();
        assert_eq!(fields[1], format!("weight={}%", e.weight("api").unwrap()), "{line}");
        assert_eq!(fields[2..].join(" "), format!("legacy ready={} restarts=0 success=99.95% p99=42.5ms", ready("shop")), "{line}");
        assert_eq!(mesh, format!("mesh ready={} restarts=0 success=99.95% p99=42.5ms", ready("shop-mesh")), "{line}");
    }
}
