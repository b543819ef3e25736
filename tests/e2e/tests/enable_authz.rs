//! `enable --authz` against the API double (which serves Istio's CRDs and injects sidecars):
//! the AuthorizationPolicies are printed whole by `-o yaml` under a client dry run (valid
//! against Istio's CRD schemas) without being written, then written by `enable`; the engine,
//! reading the live namespace (`kubectl dbiso explain`), keeps every connection the namespace
//! shows in use and refuses a client it does not show; a policy whose callers are unknown is
//! withheld with its override; `rollback` removes them.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{DoubleEnv, Run, bin, run, venv_tool};
use serde_json::{Value, json};

const NS: &str = "shop";

fn deployment(kind: &str, name: &str, sa: &str, image: &str, port: u16, env: Value) -> Value {
    let mut spec = json!({"selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"serviceAccountName": sa,
                              "containers": [{"name": name, "image": image, "ports": [{"containerPort": port}], "env": env}]}}});
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn service(name: &str, port: u16, target: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
           "spec": {"selector": {"app": name}, "ports": [{"name": "tcp", "port": port, "targetPort": target}]}})
}

/// web calls api (its env names the Service), api uses db; `debug` runs in the namespace and
/// calls nothing the input shows; nothing names web's Service.
fn installed() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    for ns in [NS, "istio-system", "monitoring"] {
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).unwrap();
    }
    d.create(apiserver_double::istiod(None)).unwrap();
    let env = |name: &str, value: &str| json!([{"name": name, "value": value}]);
    for o in [
        deployment("Deployment", "web", "web", "acme/web:1", 3000, env("API_URL", "http://api/v1")),
        service("web", 80, 3000),
        deployment("Deployment", "api", "api", "acme/api:1", 8000, env("DATABASE_URL", "postgres://shop@db:5432/shop")),
        service("api", 80, 8000),
        deployment("StatefulSet", "db", "db", "postgres:16", 5432, json!([])),
        service("db", 5432, 5432),
        deployment("Deployment", "debug", "debug", "acme/toolbox:1", 9000, json!([])),
    ] {
        d.create(o).unwrap();
    }
    d
}

fn documents(stream: &str) -> Vec<Value> {
    let script = "import sys, json, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d], default=str))";
    let r = run(&venv_tool("python"), &["-c", script], Some(stream), &[]).expect_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

fn policies(d: &BlockingDouble) -> Vec<Value> {
    d.list("security.istio.io/v1", "AuthorizationPolicy", Some(NS))
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

/// The engine's verdict on the live namespace (`allowed` of `dbiso explain -o json`, checked
/// against its exit code), and the AuthorizationPolicy part of it.
fn explain(e: &DoubleEnv, src: &str, dst: &str, port: &str) -> (bool, Value) {
    let r: Run = run(&bin("dbiso"), &["explain", src, dst, port, "-o", "json"], None, &[("KUBECONFIG", &e.kubeconfig), ("USER", "tester")]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|err| panic!("{err}: {r:?}"));
    let allowed = v["allowed"].as_bool().expect("a verdict");
    assert_eq!(r.code, if allowed { 0 } else { 1 }, "{r:?}");
    (allowed, v["authorization"].clone())
}

#[test]
fn enable_authz_writes_proven_policies_that_rollback_removes() {
    let d = installed();
    let e = DoubleEnv::new(&d, NS);

    // The client dry run prints the policies whole, valid against Istio's schemas, and writes none.
    let dry = e.mesh_migrate(&["enable", "--authz", "--dry-run=client", "-o", "yaml"]).expect_code(0);
    let printed: Vec<Value> = documents(&dry.stdout).into_iter().filter(|o| o["kind"] == "AuthorizationPolicy").collect();
    assert_eq!(names(&printed), ["api-authz", "db-authz", "debug-authz"], "{}", dry.stderr);
    e2e::validate_objects(&printed);
    assert!(policies(&d).is_empty(), "a dry run wrote");
    // web's Service is named by nobody: its callers are unknown, so it gets none, and the
    // override is named.
    assert!(
        dry.stderr.contains("enable: no AuthorizationPolicy for Deployment/web: its callers are unknown")
            && dry.stderr.contains("(to write it anyway: --authz-isolate-anyway web)"),
        "{}",
        dry.stderr
    );

    let en = e.mesh_migrate(&["enable", "--authz", "--timeout", "60s"]).expect_code(0);
    let written = policies(&d);
    assert_eq!(names(&written), ["api-authz", "db-authz", "debug-authz"], "{}", en.stderr);
    assert_eq!(e2e::validate_objects(&written), 3);

    // The engine on the live namespace: every connection in use passes the sidecars' policies.
    let (ok, authz) = explain(&e, "deploy/web", "deploy/api", "8000/TCP");
    assert!(ok, "web -> api: {authz}");
    assert_eq!((authz["state"].as_str(), authz["enforcedBy"].as_str()), (Some("allowed"), Some("sidecar")), "{authz}");
    assert!(explain(&e, "deploy/api", "statefulset/db", "5432/TCP").0, "api -> db");
    // A client the namespace does not show is refused, and so is a port nobody uses.
    for (src, dst, port) in [("deploy/debug", "statefulset/db", "5432/TCP"), ("deploy/web", "statefulset/db", "5432/TCP"), ("deploy/debug", "deploy/api", "8000/TCP"), ("deploy/api", "statefulset/db", "9999/TCP")] {
        let (ok, authz) = explain(&e, src, dst, port);
        assert!(!ok, "{src} -> {dst} {port}");
        assert_eq!(authz["state"], "denied", "{src} -> {dst} {port}: {authz}");
    }
    // web was withheld: nothing of the tool's guards it.
    assert!(explain(&e, "deploy/debug", "deploy/web", "3000/TCP").0);

    // Rollback removes them: the stranger reaches the database again.
    e.mesh_migrate(&["rollback", "--timeout", "60s"]).expect_code(0);
    assert!(policies(&d).is_empty(), "{:?}", names(&policies(&d)));
    assert!(explain(&e, "deploy/debug", "statefulset/db", "5432/TCP").0);
}

/// A caller in namespace `b` names api's Service across namespaces (`api.shop`): `enable
/// --authz` in `shop` reads the other namespaces' workloads, so api's policy admits the caller's
/// principal, and the engine on the live cluster keeps that connection while a stranger of `b`
/// is refused. Outside the mesh (namespace `c`, not injected), such a caller has no principal:
/// api's policy is then withheld, naming that connection.
#[test]
fn enable_authz_admits_callers_of_other_namespaces() {
    let d = installed();
    for (ns, labels) in [("b", json!({"istio-injection": "enabled"})), ("c", json!({}))] {
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})).unwrap();
    }
    let elsewhere = |ns: &str, name: &str, env: Value| {
        let mut o = deployment("Deployment", name, name, "acme/tool:1", 9000, env);
        o["metadata"]["namespace"] = json!(ns);
        o
    };
    d.create(elsewhere("b", "caller", json!([{"name": "API_URL", "value": "http://api.shop:80/v1"}]))).unwrap();
    d.create(elsewhere("b", "stranger", json!([]))).unwrap();
    let e = DoubleEnv::new(&d, NS);

    let en = e.mesh_migrate(&["enable", "--authz", "--timeout", "60s"]).expect_code(0);
    assert_eq!(names(&policies(&d)), ["api-authz", "db-authz", "debug-authz"], "{}", en.stderr);
    let (ok, authz) = explain(&e, "deploy/b/caller", "deploy/api", "8000/TCP");
    assert!(ok, "b/caller -> api: {authz}");
    assert_eq!(authz["state"], "allowed", "{authz}");
    let (ok, authz) = explain(&e, "deploy/b/stranger", "deploy/api", "8000/TCP");
    assert!(!ok && authz["state"] == "denied", "b/stranger -> api: {authz}");
    e.mesh_migrate(&["rollback", "--timeout", "60s"]).expect_code(0);

    // A caller outside the mesh: api's policy would refuse it, so it is withheld, naming it.
    d.create(elsewhere("c", "plain", json!([{"name": "API_URL", "value": "http://api.shop.svc.cluster.local/v1"}]))).unwrap();
    let dry = e.mesh_migrate(&["enable", "--authz", "--dry-run=client", "-o", "yaml"]).expect_code(0);
    let printed: Vec<Value> = documents(&dry.stdout).into_iter().filter(|o| o["kind"] == "AuthorizationPolicy").collect();
    assert_eq!(names(&printed), ["db-authz", "debug-authz"], "{}", dry.stderr);
    assert!(
        dry.stderr.contains("enable: no AuthorizationPolicy for Deployment/api: it would refuse ")
            && dry.stderr.contains("Deployment/c/plain -> Deployment/api on TCP 8000"),
        "{}",
        dry.stderr
    );
}
