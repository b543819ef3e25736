//! Fidelity tests: real kubectl against the double through a kubeconfig.

mod common;

use apiserver_double::{DoubleOptions, FaultRule, crds};
use common::{Env, WEB_APP, pod_names};
use serde_json::{Value, json};

fn ns_yaml(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"{name}\"\n  labels: {{{labels}}}\n"
    )
}

fn pod(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Running"}})
}

#[test]
fn get_namespaces_prints_a_table() {
    let env = Env::new("default");
    env.double.load_yaml(&ns_yaml("shop", "team: a")).unwrap();
    let out = env.ok(&["get", "ns"]);
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("STATUS") && header.contains("AGE"),
        "{out}"
    );
    for ns in ["default", "kube-system", "shop"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} missing in:\n{out}"
        );
    }
    let labels = env.ok(&["get", "ns", "shop", "--show-labels"]);
    assert!(
        labels.contains("kubernetes.io/metadata.name=shop") && labels.contains("team=a"),
        "{labels}"
    );
}

#[test]
fn get_pods_json_with_label_and_field_selectors() {
    let env = Env::new("x");
    env.double.load_yaml(&ns_yaml("x", "")).unwrap();
    env.double
        .load_values(vec![
            pod("x", "web-1", json!({"app": "web", "tier": "a"})),
            pod(
                "x",
                "web-2",
                json!({"app": "web", "tier": "b", "canary": "true"}),
            ),
            pod("x", "db-1", json!({"app": "db", "env": "prod"})),
            pod("default", "other", json!({"app": "web"})),
        ])
        .unwrap();
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = env.json(&["get", "pods", "-n", "x"]);
    assert_eq!(names(&all), vec!["db-1", "web-1", "web-2"]);
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] == "Pod" && i["apiVersion"] == "v1")
    );
    assert_eq!(
        names(&env.json(&["get", "pods", "-n", "x", "-l", "app=web"])),
        vec!["web-1", "web-2"]
    );
    assert_eq!(
        names(&env.json(&["get", "pods", "-n", "x", "-l", "app==web,tier in (b,c)"])),
        vec!["web-2"]
    );
    assert_eq!(
        names(&env.json(&["get", "pods", "-n", "x", "-l", "app notin (db)"])),
        vec!["web-1", "web-2"]
    );
    assert_eq!(
        names(&env.json(&["get", "pods", "-n", "x", "-l", "!canary,app"])),
        vec!["db-1", "web-1"]
    );
    assert_eq!(
        names(&env.json(&["get", "pods", "-n", "x", "-l", "env!=prod"])),
        vec!["web-1", "web-2"]
    );
    assert_eq!(
        names(&env.json(&[
            "get",
            "pods",
            "-n",
            "x",
            "--field-selector",
            "metadata.name=db-1"
        ])),
        vec!["db-1"]
    );
    assert_eq!(
        names(&env.json(&["get", "pods", "-A", "-l", "app=web"])),
        vec!["other", "web-1", "web-2"]
    );
    let single = env.json(&["get", "pod", "web-1", "-n", "x"]);
    assert_eq!(single["kind"], "Pod");
    let err = env.fail(&["get", "pods", "-n", "x", "-l", "app in (a"]);
    assert!(err.contains("unable to parse requirement"), "{err}");
    let err = env.fail(&["get", "pod", "nope", "-n", "x"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
}

#[test]
fn chunked_get_pages_with_limit_and_continue() {
    let env = Env::new("x");
    env.double.load_yaml(&ns_yaml("x", "")).unwrap();
    env.double
        .load_values((0..5).map(|i| pod("x", &format!("p{i}"), json!({}))))
        .unwrap();
    env.double.clear_requests();
    let out = env.ok(&["get", "pods", "-n", "x", "--chunk-size=2", "-o", "name"]);
    assert_eq!(out.lines().count(), 5);
    let lists = env
        .double
        .requests_matching("GET", "^/api/v1/namespaces/x/pods$");
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("2"))
    );
    assert!(lists[0].param("continue").is_none());
    assert!(lists[1].param("continue").is_some() && lists[2].param("continue").is_some());
}

#[test]
fn server_side_apply_creates_and_detects_conflicts() {
    let env = Env::new("shop");
    env.double
        .load_yaml(&ns_yaml("shop", "istio-injection: enabled"))
        .unwrap();
    env.double.load_yaml(&ns_yaml("istio-system", "")).unwrap();
    env.double.create(apiserver_double::istiod(None)).unwrap();
    let file = env.file("app.yaml", WEB_APP);
    let out = env.ok(&["apply", "--server-side", "-f", &file]);
    assert!(
        out.contains("deployment.apps/web serverside-applied")
            && out.contains("service/web serverside-applied"),
        "{out}"
    );
    let d = env.json(&["get", "deployment", "web", "--show-managed-fields"]);
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(d["metadata"]["managedFields"][0]["operation"], "Apply");
    assert_eq!(d["status"]["readyReplicas"], 2);
    let svc = env.json(&["get", "svc", "web"]);
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );
    let pods = env.json(&["get", "pods", "-l", "app=web"]);
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for p in items {
        let names: Vec<&str> = p["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["app", "logger", "istio-proxy"],
            "namespace label triggers injection"
        );
    }
    let changed = env.file(
        "changed.yaml",
        &WEB_APP.replace("replicas: 2", "replicas: 5"),
    );
    let err = env.fail(&[
        "apply",
        "--server-side",
        "--field-manager=rival",
        "-f",
        &changed,
    ]);
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );
    assert_eq!(env.json(&["get", "deploy", "web"])["spec"]["replicas"], 2);
    env.ok(&[
        "apply",
        "--server-side",
        "--field-manager=rival",
        "--force-conflicts",
        "-f",
        &changed,
    ]);
    assert_eq!(env.json(&["get", "deploy", "web"])["spec"]["replicas"], 5);
    assert_eq!(pod_names(&env, "shop", "web-").len(), 5);
}

#[test]
fn label_annotate_and_patch_types() {
    let env = Env::new("shop");
    env.double.load_yaml(&ns_yaml("shop", "")).unwrap();
    env.ok(&[
        "apply",
        "--server-side",
        "-f",
        &env.file("app.yaml", WEB_APP),
    ]);
    env.ok(&["label", "deployment", "web", "tier=front"]);
    env.ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let d = env.json(&["get", "deploy", "web"]);
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    let err = env.fail(&["label", "deployment", "web", "tier=back"]);
    assert!(err.contains("already has a value (front)"), "{err}");
    env.ok(&["label", "deployment", "web", "tier-"]);
    assert!(
        env.json(&["get", "deploy", "web"])["metadata"]["labels"]
            .get("tier")
            .is_none()
    );

    env.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"m":"1"}},"spec":{"paused":true}}"#,
    ]);
    let d = env.json(&["get", "deploy", "web"]);
    assert_eq!(d["metadata"]["labels"]["m"], "1");
    assert_eq!(d["spec"]["paused"], true);

    env.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/metadata/labels/m","value":"1"},{"op":"replace","path":"/metadata/labels/m","value":"2"},{"op":"remove","path":"/spec/paused"}]"#,
    ]);
    let d = env.json(&["get", "deploy", "web"]);
    assert_eq!(d["metadata"]["labels"]["m"], "2");
    assert!(d["spec"].get("paused").is_none());
    let err = env.fail(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/metadata/labels/m","value":"9"}]"#,
    ]);
    assert!(err.contains("test failed"), "{err}");

    let gen_before = d["metadata"]["generation"].as_i64().unwrap();
    env.ok(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:1.28","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#]);
    let d = env.json(&["get", "deploy", "web"]);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(
        containers.len(),
        2,
        "strategic merge keeps the other container"
    );
    assert_eq!(containers[0]["image"], "nginx:1.28");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "MODE", "value": "prod"}, {"name": "EXTRA", "value": "1"}])
    );
    assert_eq!(containers[1]["name"], "logger");
    assert_eq!(
        d["metadata"]["generation"].as_i64().unwrap(),
        gen_before + 1
    );

    env.double.install_crds(crds::istio()).unwrap();
    env.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec: {hosts: [a]}\n",
    );
    let err = env.fail(&[
        "patch",
        "virtualservice",
        "vs",
        "-p",
        r#"{"spec":{"hosts":["b"]}}"#,
    ]);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );
    env.ok(&[
        "patch",
        "virtualservice",
        "vs",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"hosts":["b"]}}"#,
    ]);
    assert_eq!(
        env.json(&["get", "vs", "vs"])["spec"]["hosts"],
        json!(["b"])
    );
}

#[test]
fn delete_and_not_found() {
    let env = Env::new("shop");
    env.double.load_yaml(&ns_yaml("shop", "")).unwrap();
    env.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n",
    );
    let out = env.ok(&["delete", "configmap", "cfg"]);
    assert!(out.contains("configmap \"cfg\" deleted"), "{out}");
    let err = env.fail(&["get", "configmap", "cfg"]);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"cfg\" not found"),
        "{err}"
    );
    let err = env.fail(&["delete", "configmap", "cfg"]);
    assert!(err.contains("not found"), "{err}");
    env.ok(&[
        "apply",
        "--server-side",
        "-f",
        &env.file("app.yaml", WEB_APP),
    ]);
    assert_eq!(pod_names(&env, "shop", "web-").len(), 2);
    env.ok(&["delete", "deployment", "web"]);
    assert!(
        pod_names(&env, "shop", "web-").is_empty(),
        "owned ReplicaSets and pods are garbage collected"
    );
    env.ok(&["delete", "namespace", "shop"]);
    assert!(
        env.double.list("v1", "Service", Some("shop")).is_empty(),
        "namespace contents go with it"
    );
    let err = env.fail(&["get", "ns", "shop"]);
    assert!(err.contains("namespaces \"shop\" not found"), "{err}");
}

#[test]
fn rollout_restart_status_scale_and_wait() {
    let env = Env::new("shop");
    env.double.load_yaml(&ns_yaml("shop", "")).unwrap();
    env.ok(&[
        "apply",
        "--server-side",
        "-f",
        &env.file("app.yaml", WEB_APP),
    ]);
    let before = pod_names(&env, "shop", "web-");
    assert_eq!(before.len(), 2);
    let out = env.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    env.ok(&["rollout", "restart", "deployment/web"]);
    let d = env.json(&["get", "deploy", "web"]);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let out = env.ok(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let after = pod_names(&env, "shop", "web-");
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "restart replaced every pod: {before:?} -> {after:?}"
    );
    let rs = env.json(&["get", "rs"]);
    let replicas: Vec<i64> = rs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert_eq!(replicas.len(), 2);
    assert!(replicas.contains(&0) && replicas.contains(&2));
    let out = env.ok(&["scale", "deployment/web", "--replicas=4"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(pod_names(&env, "shop", "web-").len(), 4);
    let out = env.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=20s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    let table = env.ok(&["get", "deploy", "web"]);
    assert!(
        table.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("4/4"),
        "{table}"
    );
    let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: pg, image: postgres:17}]}\n";
    env.ok_stdin(&["apply", "-f", "-"], sts);
    assert_eq!(pod_names(&env, "shop", "db-"), vec!["db-0", "db-1"]);
    env.ok(&["scale", "statefulset/db", "--replicas=3"]);
    let out = env.ok(&["rollout", "status", "statefulset/db", "--timeout=20s"]);
    // The real server defaults `partition: 0`, so kubectl reports a partitioned rollout.
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    assert_eq!(pod_names(&env, "shop", "db-"), vec!["db-0", "db-1", "db-2"]);
}

#[test]
fn client_side_apply_three_way_merge() {
    let env = Env::new("shop");
    env.double.load_yaml(&ns_yaml("shop", "")).unwrap();
    let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, labels: {a: '1'}}\ndata: {a: '1', b: '2'}\n";
    let out = env.ok_stdin(&["apply", "-f", "-"], v1);
    assert!(out.contains("configmap/cfg created"), "{out}");
    env.ok(&["label", "configmap", "cfg", "manual=yes"]);
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, labels: {a: '1'}}\ndata: {b: '3'}\n";
    let out = env.ok_stdin(&["apply", "-f", "-"], v2);
    assert!(out.contains("configmap/cfg configured"), "{out}");
    let cm = env.json(&["get", "cm", "cfg"]);
    assert_eq!(
        cm["data"],
        json!({"b": "3"}),
        "keys dropped from the manifest are removed"
    );
    assert_eq!(
        cm["metadata"]["labels"]["manual"], "yes",
        "keys set by others survive"
    );
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let dep = WEB_APP.split("---").next().unwrap();
    env.ok_stdin(&["apply", "-f", "-"], dep);
    let dep2 = dep.replace("nginx:1.27", "nginx:1.29");
    env.ok_stdin(&["apply", "-f", "-"], &dep2);
    let d = env.json(&["get", "deploy", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.29"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    let out = env.ok_stdin(
        &["apply", "-f", "-", "--dry-run=server"],
        &dep2.replace("replicas: 2", "replicas: 9"),
    );
    assert!(out.contains("(server dry run)"), "{out}");
    assert_eq!(
        env.json(&["get", "deploy", "web"])["spec"]["replicas"],
        2,
        "dry run stores nothing"
    );
}

#[test]
fn custom_resources_follow_their_crds() {
    let env = Env::new("mesh");
    env.double.load_yaml(&ns_yaml("mesh", "")).unwrap();
    let err = env.fail(&["get", "virtualservices"]);
    assert!(
        err.contains("error: the server doesn't have a resource type \"virtualservices\""),
        "{err}"
    );
    env.double.install_crds(crds::istio()).unwrap();
    env.double
        .load_yaml(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: mesh}\nspec:\n  hosts: [reviews]\n  gateways: [mesh]\n",
        )
        .unwrap();
    let out = env.ok(&["get", "virtualservices"]);
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("NAME")
            && header.contains("GATEWAYS")
            && header.contains("HOSTS")
            && header.contains("AGE"),
        "{out}"
    );
    assert!(out.lines().nth(1).unwrap().starts_with("reviews"), "{out}");
    let vs = env.json(&["get", "vs", "reviews"]);
    assert_eq!(vs["apiVersion"], "networking.istio.io/v1");
    assert_eq!(vs["spec"]["hosts"], json!(["reviews"]));
    let beta = env.json(&[
        "get",
        "virtualservices.v1beta1.networking.istio.io",
        "reviews",
    ]);
    assert_eq!(beta["apiVersion"], "networking.istio.io/v1beta1");
    let out = env.ok(&["api-resources", "--api-group=security.istio.io"]);
    assert!(
        out.contains("peerauthentications") && out.contains("pa"),
        "{out}"
    );
    let out = env.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/virtualservices.networking.istio.io",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    env.ok(&["delete", "crd", "virtualservices.networking.istio.io"]);
    let err = env.fail(&["get", "virtualservices"]);
    assert!(
        err.contains("Unable to list \"networking.istio.io/v1, Resource=virtualservices\": the server could not find the requested resource"),
        "kubectl's cached discovery still knows the kind, the server does not: {err}"
    );
    let fresh = env.dir.path().join("fresh-cache");
    let err = env.fail(&[
        "--cache-dir",
        fresh.to_str().unwrap(),
        "get",
        "virtualservices",
    ]);
    assert!(
        err.contains("doesn't have a resource type \"virtualservices\""),
        "{err}"
    );
}

#[test]
fn forbidden_fault_uses_rbac_wording() {
    let env = Env::new("y");
    env.double.load_yaml(&ns_yaml("y", "")).unwrap();
    env.double
        .add_fault(FaultRule::on("GET", "^/api/v1/namespaces/y/pods$").forbidden("x"))
        .unwrap();
    let err = env.fail(&["get", "pods", "-n", "y"]);
    assert!(
        err.contains("Error from server (Forbidden): pods is forbidden: User \"x\" cannot list resource \"pods\" in API group \"\" in the namespace \"y\""),
        "{err}"
    );
    env.ok(&["get", "configmaps", "-n", "y"]);
    env.double.clear_faults();
    env.ok(&["get", "pods", "-n", "y"]);
}

#[test]
fn internal_error_only_on_the_first_request() {
    let env = Env::new("y");
    env.double.load_yaml(&ns_yaml("y", "")).unwrap();
    let id = env
        .double
        .add_fault(
            FaultRule::on("GET", "^/api/v1/namespaces/y/configmaps$")
                .status(500, "etcd is unhappy")
                .nth(1),
        )
        .unwrap();
    let err = env.fail(&["get", "configmaps", "-n", "y"]);
    assert!(
        err.contains("Error from server (InternalError)") && err.contains("etcd is unhappy"),
        "{err}"
    );
    env.ok(&["get", "configmaps", "-n", "y"]);
    let info = env
        .double
        .faults()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!((info.matched, info.fired), (2, 1));
    let failed: Vec<u16> = env
        .double
        .requests_matching("GET", "configmaps$")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(failed, vec![500, 200]);
}

#[test]
fn typed_client_commands_send_protobuf() {
    let env = Env::new("team");
    env.ok(&["create", "namespace", "team"]);
    env.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=two",
    ]);
    env.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=pw=hunter2",
    ]);
    env.ok(&["create", "serviceaccount", "bot"]);
    assert_eq!(
        env.json(&["get", "cm", "cfg"])["data"],
        json!({"a": "1", "b": "two"})
    );
    assert_eq!(
        env.json(&["get", "secret", "s"])["data"]["pw"],
        "aHVudGVyMg=="
    );
    assert_eq!(env.ok(&["auth", "can-i", "delete", "pods"]).trim(), "yes");
    let posts = env.double.requests_matching("POST", "^/api/v1/namespaces");
    assert!(
        posts
            .iter()
            .all(|r| r.content_type.as_deref() == Some("application/vnd.kubernetes.protobuf")),
        "{posts:?}"
    );
    let err = env.fail(&["create", "deployment", "web", "--image=nginx"]);
    assert!(
        err.contains("cannot decode protobuf-encoded Deployment"),
        "{err}"
    );
}

#[test]
fn legacy_discovery_when_aggregated_is_off() {
    let env = Env::with_options(
        "default",
        DoubleOptions {
            aggregated_discovery: false,
            ..DoubleOptions::default()
        },
    );
    env.double.install_crds(crds::cnpg()).unwrap();
    env.ok(&["get", "deployments,clusters.postgresql.cnpg.io"]);
    let gv = env
        .double
        .requests_matching("GET", "^/apis/(apps|postgresql.cnpg.io)/v1$");
    assert!(
        gv.len() >= 2,
        "legacy per-group-version discovery was used: {gv:?}"
    );
}

#[test]
fn binary_prints_kubeconfig_and_serves_until_killed() {
    use std::io::BufRead;
    let kubectl = common::kubectl_path();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apiserver-double"))
        .args([
            "--dir",
            dir.path().to_str().unwrap(),
            "--namespace",
            "mesh",
            "--crds",
            "istio",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let kubeconfig = lines.next().unwrap().unwrap();
    let url = lines.next().unwrap().unwrap();
    let path = kubeconfig
        .strip_prefix("KUBECONFIG=")
        .expect("first line names the kubeconfig")
        .to_string();
    assert!(url.starts_with("URL=http://127.0.0.1:"), "{url}");
    let out = std::process::Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &path,
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
            "get",
            "virtualservices",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("No resources found in mesh namespace."),
        "{stderr}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
