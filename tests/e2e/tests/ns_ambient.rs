//! `kubectl mesh-migrate ns create --mode ambient` on the Zamaz-shaped platform: the waypoint of
//! the mesh namespace (deployed, or an existing one named with `--waypoint`), its binding, the
//! refusal when the cluster cannot run waypoints, `ns rollback` taking both away, and gates that
//! query the metrics an ambient mesh side has. Against the API double (with the Gateway API
//! CRDs registered as the standard channel serves them), with real kubectl reading objects back.

use std::path::PathBuf;
use std::sync::Arc;

use apiserver_double::prometheus::{FakePrometheus, PromQuery, Reply};
use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{Run, bin, root, run};
use serde_json::{Value, json};

struct Env {
    double: BlockingDouble,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// The platform, with ztunnel running; `gateway_api`: the Gateway API CRDs installed, `class`:
/// and istiod's `istio-waypoint` GatewayClass.
fn env(gateway_api: bool, class: bool) -> Env {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    if gateway_api {
        double.install_crds(crds::gateway_api()).unwrap();
    }
    // A DaemonSet on no node is ready nowhere: ztunnel and istio-cni run on this one.
    double.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/zamaz.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        double.create(doc).unwrap();
    }
    double
        .create(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ztunnel", "namespace": "istio-system", "labels": {"app": "ztunnel"}},
            "spec": {"selector": {"matchLabels": {"app": "ztunnel"}}, "template": {"metadata": {"labels": {"app": "ztunnel"}},
                "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.24.0"}]}}}}))
        .unwrap();
    if class {
        // What istiod creates with ambient enabled.
        double
            .create(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "istio-waypoint"},
                "spec": {"controllerName": "istio.io/mesh-controller", "description": "The default Istio waypoint GatewayClass"}}))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap();
    Env { double, _dir: dir, kubeconfig }
}

impl Env {
    fn mm(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&bin("mesh-migrate"), &all, None, &[("USER", "alice")])
    }

    fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        run(&e2e::venv_tool("kubectl"), &all, None, &[]).expect_code(0).json()
    }

    fn gateway(&self, ns: &str, name: &str) -> Option<Value> {
        self.double.get("gateway.networking.k8s.io/v1", "Gateway", Some(ns), name)
    }

    /// `kubectl wait --for=condition=Programmed` on the deployed waypoint, checking once.
    fn kubectl_wait_programmed(&self) -> Run {
        let args = ["--kubeconfig", self.kubeconfig.to_str().unwrap(), "wait", "--for=condition=Programmed", "gateways.gateway.networking.k8s.io/waypoint", "-n", "zamaz-mesh", "--timeout=0s"];
        run(&e2e::venv_tool("kubectl"), &args, None, &[])
    }

    fn namespace_labels(&self, ns: &str) -> Value {
        self.double.get("v1", "Namespace", None, ns).map(|n| n["metadata"]["labels"].clone()).unwrap_or(Value::Null)
    }
}

#[test]
fn ambient_create_deploys_a_waypoint_binds_the_mesh_namespace_and_rollback_removes_both() {
    let e = env(true, true);
    // A client dry run writes nothing and shows the waypoint it would deploy.
    let dry = e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--dry-run=client", "-o", "json"]).expect_code(0);
    assert!(e.double.get("v1", "Namespace", None, "zamaz-mesh").is_none(), "dry run wrote nothing");
    assert!(dry.stdout.contains("\"gatewayClassName\": \"istio-waypoint\""), "{}", dry.stdout);

    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient"]).expect_code(0);
    assert!(r.stdout.contains("gateway.gateway.networking.k8s.io/waypoint created"), "{}", r.stdout);
    let gw = e.gateway("zamaz-mesh", "waypoint").expect("the waypoint's Gateway");
    // Waited for until istiod programmed it, and real kubectl's condition check agrees.
    assert!(r.stdout.contains("gateway.gateway.networking.k8s.io/waypoint ready (namespace zamaz-mesh) (condition Programmed)"), "{}", r.stdout);
    e.kubectl_wait_programmed().expect_code(0);
    // As `istioctl waypoint apply` writes it, with the migration's ownership labels.
    assert_eq!(gw["spec"], json!({"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}));
    let labels = &gw["metadata"]["labels"];
    assert_eq!(labels["istio.io/waypoint-for"], "service");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubectl-mesh-migrate");
    assert_eq!(labels["mesh-migrate.meshmove.io/copied-from"], "zamaz");
    let ns = e.namespace_labels("zamaz-mesh");
    assert_eq!(ns["istio.io/dataplane-mode"], "ambient");
    assert_eq!(ns["istio.io/use-waypoint"], "waypoint");
    assert!(ns.get("istio.io/use-waypoint-namespace").is_none(), "the waypoint is in the bound namespace");
    // Real kubectl reads both back; the objects validate, the Gateway against the Gateway API
    // CRD schema (as the dry run printed it, and as the API server holds it).
    let read = e.kubectl_json(&["get", "gateways.gateway.networking.k8s.io", "waypoint", "-n", "zamaz-mesh"]);
    assert_eq!(read["spec"]["listeners"][0]["protocol"], "HBONE");
    let read_ns = e.kubectl_json(&["get", "namespace", "zamaz-mesh"]);
    assert_eq!(read_ns["metadata"]["labels"]["istio.io/use-waypoint"], "waypoint");
    e2e::validate_objects(&[gw.clone(), e.double.get("v1", "Namespace", None, "zamaz-mesh").unwrap()]);
    let printed: Vec<Value> = dry.json()["items"].as_array().expect("a List of objects").clone();
    assert!(printed.iter().any(|o| o["kind"] == "Gateway" && o["apiVersion"] == "gateway.networking.k8s.io/v1"), "{}", dry.stdout);
    e2e::validate_objects(&printed);
    let st = e.mm(&["ns", "status", "zamaz", "-o", "json"]).json();
    assert_eq!(st["state"]["waypoint"], json!({"namespace": "zamaz-mesh", "name": "waypoint", "created": true}));
    let table = e.mm(&["ns", "status", "zamaz"]);
    assert!(table.stdout.contains("ambient (waypoint zamaz-mesh/waypoint)"), "{}", table.stdout);

    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    assert!(e.gateway("zamaz-mesh", "waypoint").is_none(), "the deployed waypoint is deleted");
    let ns = e.namespace_labels("zamaz-mesh");
    assert!(ns.get("istio.io/use-waypoint").is_none(), "{ns}");
    // Creating again after the rollback deploys and binds it again.
    e.mm(&["ns", "create", "zamaz", "--mode", "ambient"]).expect_code(0);
    assert!(e.gateway("zamaz-mesh", "waypoint").is_some());
    assert_eq!(e.namespace_labels("zamaz-mesh")["istio.io/use-waypoint"], "waypoint");
}

#[test]
fn ambient_create_fails_naming_the_waypoint_until_it_is_programmed_and_a_rerun_resumes() {
    let e = env(true, true);
    // No istiod: nothing programs the waypoint (the control-plane check is overridden).
    let mut istiod = e.double.get("apps/v1", "Deployment", Some("istio-system"), "istiod").unwrap();
    e.double.delete("apps/v1", "Deployment", Some("istio-system"), "istiod").unwrap();
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--force", "--timeout", "2s"]).expect_code(1);
    assert!(
        r.stderr.contains("timed out after 2s waiting for Gateway/zamaz-mesh/waypoint: condition Programmed is Unknown (reason Pending: Waiting for controller)"),
        "{}",
        r.stderr
    );
    e.kubectl_wait_programmed().expect_code(1);
    // The step stopped at the wait: no routing was written, and the journal says why.
    assert!(e.double.list("networking.istio.io/v1", "VirtualService", Some("zamaz-mesh")).is_empty());
    let st = e.mm(&["ns", "status", "zamaz", "-o", "json"]).json();
    assert!(st["state"]["pending"]["error"].as_str().is_some_and(|m| m.contains("Gateway/zamaz-mesh/waypoint")), "{st}");
    // With istiod back, running the step again finishes it.
    for f in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"] {
        istiod["metadata"].as_object_mut().unwrap().remove(f);
    }
    istiod.as_object_mut().unwrap().remove("status");
    e.double.create(istiod).unwrap();
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient"]).expect_code(0);
    assert!(r.stdout.contains("(condition Programmed)"), "{}", r.stdout);
    e.kubectl_wait_programmed().expect_code(0);
    assert!(!e.double.list("networking.istio.io/v1", "VirtualService", Some("zamaz-mesh")).is_empty());
    assert_eq!(e.mm(&["ns", "status", "zamaz", "-o", "json"]).json()["state"]["phase"], "created");
}

#[test]
fn ambient_create_refuses_without_the_gateway_api_or_the_waypoint_class_and_writes_nothing() {
    let e = env(false, false);
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient"]).expect_code(2);
    assert!(r.stderr.contains("does not serve the Gateway API") && r.stderr.contains("install the Gateway API CRDs"), "{}", r.stderr);
    assert!(r.stderr.contains("--no-waypoint"), "{}", r.stderr);
    assert!(e.double.get("v1", "Namespace", None, "zamaz-mesh").is_none(), "nothing written");

    let e = env(true, false);
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient"]).expect_code(2);
    assert!(r.stderr.contains("no GatewayClass istio-waypoint"), "{}", r.stderr);
    assert!(e.double.get("v1", "Namespace", None, "zamaz-mesh").is_none(), "nothing written");
    // --no-waypoint: ambient at L4, no binding, no Gateway.
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--no-waypoint"]).expect_code(0);
    assert!(r.stdout.contains("no waypoint (--no-waypoint)"), "{}", r.stdout);
    let ns = e.namespace_labels("zamaz-mesh");
    assert_eq!(ns["istio.io/dataplane-mode"], "ambient");
    assert!(ns.get("istio.io/use-waypoint").is_none());
    assert!(e.double.list("gateway.networking.k8s.io/v1", "Gateway", Some("zamaz-mesh")).is_empty());
}

#[test]
fn an_existing_waypoint_elsewhere_must_admit_the_mesh_namespace_and_stays_after_rollback() {
    let e = env(true, true);
    e.double.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "infra"}})).unwrap();
    let shared = |from: &str| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "shared", "namespace": "infra", "labels": {"istio.io/waypoint-for": "service"}},
            "spec": {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE", "allowedRoutes": {"namespaces": {"from": from}}}]}})
    };
    e.double.create(shared("Same")).unwrap();
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--waypoint", "infra/shared"]).expect_code(2);
    assert!(r.stderr.contains("admits bindings from namespaces `Same`"), "{}", r.stderr);
    assert!(e.double.get("v1", "Namespace", None, "zamaz-mesh").is_none(), "nothing written");
    let missing = e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--waypoint", "infra/nope"]).expect_code(2);
    assert!(missing.stderr.contains("--waypoint infra/nope: no such Gateway"), "{}", missing.stderr);

    e.double.apply(shared("All"), "platform-team", true).unwrap();
    e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--waypoint", "infra/shared"]).expect_code(0);
    let ns = e.namespace_labels("zamaz-mesh");
    assert_eq!(ns["istio.io/use-waypoint"], "shared");
    assert_eq!(ns["istio.io/use-waypoint-namespace"], "infra");
    assert!(e.gateway("zamaz-mesh", "waypoint").is_none(), "none deployed");
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    let ns = e.namespace_labels("zamaz-mesh");
    assert!(ns.get("istio.io/use-waypoint").is_none() && ns.get("istio.io/use-waypoint-namespace").is_none(), "{ns}");
    assert!(e.gateway("infra", "shared").is_some(), "a waypoint the migration did not deploy stays");
}

/// Prometheus as an ambient mesh side's proxies fill it: the waypoint's request series, and
/// ztunnel's connection series with no connection opened in the window (long-lived ones).
fn ambient_prometheus() -> FakePrometheus {
    FakePrometheus::start(Arc::new(|q: &PromQuery| {
        if q.query.contains("reporter=\"waypoint\"") && q.query.contains("histogram_quantile") {
            Reply::Value(87.0)
        } else if q.query.contains("reporter=\"waypoint\"") {
            Reply::Value(0.9991)
        } else if q.query.contains("istio_tcp_connections_opened_total") {
            Reply::NaN
        } else {
            Reply::Empty
        }
    }))
    .unwrap()
}

fn gate_row(r: &Run, gate: &str) -> String {
    r.stdout.lines().find(|l| l.starts_with(gate)).unwrap_or_else(|| panic!("no {gate} row: {}", r.stdout)).to_string()
}

#[test]
fn with_a_waypoint_the_gates_read_its_request_metrics_and_never_the_sidecar_series() {
    let e = env(true, true);
    let prom = ambient_prometheus();
    let url = prom.url();
    e.mm(&["ns", "create", "zamaz", "--mode", "ambient"]).expect_code(0);
    e.mm(&["ns", "shift", "zamaz", "10"]).expect_code(0);
    // The routed Services (api, frontend) are HTTP: success rate and p99 from the waypoint.
    let r = e.mm(&["ns", "shift", "zamaz", "25", "--prometheus-url", &url]).expect_code(0);
    assert!(r.stderr.contains("success-rate 99.91 % ok, p99-latency 87 ms ok"), "{}", r.stderr);
    let queries = prom.queries();
    // Checked before 25 % is written and once after it: each time the same two series.
    assert!(!queries.is_empty() && queries.len() % 2 == 0, "{queries:?}");
    assert!(queries.iter().all(|q| q.query.contains("reporter=\"waypoint\"") && q.query.contains("destination_workload_namespace=\"zamaz-mesh\"")));
    // `ns status` keeps the source of each metrics gate.
    let st = e.mm(&["ns", "status", "zamaz", "-o", "json"]).json();
    let last = st["state"]["history"].as_array().unwrap().iter().rev().find(|h| h["gates"].as_array().is_some_and(|g| !g.is_empty())).unwrap();
    let sources: Vec<&str> = last["gates"].as_array().unwrap().iter().filter_map(|g| g["source"].as_str()).collect();
    assert_eq!(
        sources,
        ["waypoint: istio_requests_total{reporter=\"waypoint\"}", "waypoint: istio_request_duration_milliseconds{reporter=\"waypoint\"}"],
        "{last}"
    );
    let table = e.mm(&["ns", "status", "zamaz"]);
    assert!(table.stdout.lines().any(|l| l.starts_with("success-rate") && l.contains("waypoint: istio_requests_total")), "{}", table.stdout);
}

#[test]
fn without_a_waypoint_the_gate_reads_ztunnel_and_no_new_connection_fails_it() {
    let e = env(true, true);
    let prom = ambient_prometheus();
    let url = prom.url();
    e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--no-waypoint"]).expect_code(0);
    e.mm(&["ns", "shift", "zamaz", "10"]).expect_code(0);
    // ztunnel emits no request metrics: the connection gate only; none opened in the window is
    // no data, which fails rather than passing silently, before 25 % is written.
    let r = e.mm(&["ns", "shift", "zamaz", "25", "--prometheus-url", &url]).expect_code(1);
    let conn = gate_row(&r, "connection-success");
    assert!(conn.contains("FAILED") && conn.contains("no samples") && conn.contains("ztunnel: istio_tcp_connections"), "{}", r.stdout);
    assert!(!r.stdout.lines().any(|l| l.starts_with("success-rate")), "{}", r.stdout);
    let queries = prom.queries();
    assert!(queries.iter().all(|q| !q.query.contains("istio_requests_total")), "{queries:?}");
    assert!(queries.iter().all(|q| q.query.contains("reporter=\"destination\"") && q.query.contains("destination_workload_namespace=\"zamaz-mesh\"")));
    assert_eq!(e.mm(&["ns", "status", "zamaz", "-o", "json"]).json()["state"]["weight"], 0, "the failure policy took it back to 0 %");
}

/// Callers captured by ztunnel reach the legacy Services at L4, where no VirtualService applies:
/// `create` and `shift` name them in a warning (the split reaches sidecars and the Istio gateway
/// only). `complete` refuses, with its own override (`--force` is the Ingress guard's), while
/// one of them can reach the legacy pods it scales down, as the NetworkPolicy engine judges the
/// cluster: here only while a policy in the legacy namespace admits `front` (the fixture's
/// default-deny admits nobody else), naming the caller as seen calling (its `API_URL` names the
/// legacy Service). Once the policy is gone the ambient pods cannot reach the legacy side and
/// `complete` proceeds, naming them in a note.
#[test]
fn complete_refuses_only_while_ambient_callers_can_reach_the_legacy_pods() {
    let e = env(true, true);
    // No Ingress: the external refusal of `complete` is another test's.
    e.double.delete("networking.k8s.io/v1", "Ingress", Some("zamaz"), "zamaz").unwrap();
    e.double.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "front", "labels": {"istio.io/dataplane-mode": "ambient", "team": "front"}}})).unwrap();
    e.double
        .create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "client", "namespace": "front"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "client"}}, "template": {"metadata": {"labels": {"app": "client"}},
                "spec": {"containers": [{"name": "client", "image": "curlimages/curl:8.10.1",
                    "env": [{"name": "API_URL", "value": "http://api.zamaz.svc.cluster.local:8080"}]}]}}}}))
        .unwrap();
    // The double's CNI agent captured them, as ztunnel runs.
    let pods = e.double.list("v1", "Pod", Some("front"));
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["metadata"]["annotations"]["ambient.istio.io/redirection"] == "enabled"), "{pods:?}");

    let named = "2 pod(s) captured by ztunnel (ambient) may call the legacy Services: front (2 pods: Deployment/client)";
    let r = e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "-o", "json"]).expect_code(0);
    let warnings = r.json()["warnings"].to_string();
    assert!(warnings.contains(named) && warnings.contains("at every weight"), "{warnings}");
    let r = e.mm(&["ns", "shift", "zamaz", "10"]).expect_code(0);
    assert!(r.stdout.contains(&format!("warning: {named}")), "{}", r.stdout);

    // A policy admitting `front` to the api: the client can reach the pods `complete` retires.
    let admit = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "api-from-front", "namespace": "zamaz"},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "front"}}}]}]}});
    e.double.create(admit).unwrap();
    let legacy_replicas = || e.double.get("apps/v1", "Deployment", Some("zamaz"), "api").unwrap()["spec"]["replicas"].clone();
    let before = legacy_replicas();
    let caller = "front/Deployment/client: seen calling: names api (env API_URL); reaches Service api TCP 8080 (Deployment/api), Service api TCP 9000 (Deployment/api)";
    for args in [&["ns", "complete", "zamaz"][..], &["ns", "complete", "zamaz", "--force"], &["ns", "complete", "zamaz", "--dry-run=client", "-o", "json"]] {
        let r = e.mm(args).expect_code(2);
        assert!(
            r.stderr.contains("not completing zamaz: 1 workload(s) captured by ztunnel (ambient) can reach")
                && r.stderr.contains(caller)
                && r.stderr.contains("--ignore-ambient-callers"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: nothing on stdout: {}", r.stdout);
    }
    assert_eq!(legacy_replicas(), before, "nothing scaled down");
    assert_eq!(e.mm(&["ns", "status", "zamaz", "-o", "json"]).json()["state"]["weight"], 10, "nothing shifted");
    // The override, previewed: the refusal becomes a warning in the report.
    let r = e.mm(&["ns", "complete", "zamaz", "--ignore-ambient-callers", "--dry-run=client"]).expect_code(0);
    assert!(r.stdout.contains("warning: completing anyway (--ignore-ambient-callers)") && r.stdout.contains(caller), "{}", r.stdout);
    assert_eq!(legacy_replicas(), before, "a preview scales nothing");

    // Without the policy the fixture's default-deny keeps `front` out: nothing to lose.
    e.double.delete("networking.k8s.io/v1", "NetworkPolicy", Some("zamaz"), "api-from-front").unwrap();
    let r = e.mm(&["ns", "complete", "zamaz", "-o", "json"]).expect_code(0);
    let j = r.json();
    assert!(j["warnings"].as_array().is_none_or(|w| w.is_empty()), "{j}");
    assert!(j["notes"].to_string().contains("cannot reach the legacy workloads of zamaz") && j["notes"].to_string().contains("front/Deployment/client"), "{j}");
    assert_eq!(legacy_replicas(), json!(0));
}
