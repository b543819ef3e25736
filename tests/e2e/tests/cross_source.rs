//! One analysis, two sources: the same objects read from a file (`-f`) and from a cluster (the
//! API double through a real kubeconfig) must give the same findings, in every output format,
//! with the same exit code. Also: each kind is listed once (paginated), RBAC denials are named
//! (as error findings) and the run continues, and an unreachable cluster exits 3.

use apiserver_double::{Double, DoubleOptions, FaultRule};
use e2e::{bin, root, run, venv_tool};
use serde_json::Value;

const FIXTURE: &str = "tests/e2e/fixtures/platform.yaml";

fn double() -> apiserver_double::BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions { simulate_controllers: false, ..Default::default() }).unwrap();
    d.load_yaml(&std::fs::read_to_string(root().join(FIXTURE)).unwrap()).unwrap();
    d
}

fn precheck(args: &[&str]) -> e2e::Run {
    let mut all = vec!["precheck"];
    all.extend(args);
    run(&bin("mesh-migrate"), &all, None, &[])
}

/// A report without the parts that name the source.
fn comparable(mut report: Value) -> Value {
    report.as_object_mut().unwrap().remove("source");
    for f in report["findings"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("origin");
    }
    report
}

#[test]
fn fixture_is_the_current_demo_chart() {
    // The fixture embeds the rendered demo chart: it must not drift from the chart.
    let rendered = run(
        &venv_tool("python"),
        &[root().join("tests/tools/helm_render.py").to_str().unwrap(), "charts/demo-platform", "demo", "pyairtable"],
        None,
        &[],
    )
    .expect_code(0)
    .stdout
    .replace("\nmetadata:\n", "\nmetadata:\n  namespace: pyairtable\n");
    let fixture = std::fs::read_to_string(root().join(FIXTURE)).unwrap();
    let embedded = fixture.split("# demo chart\n").nth(1).expect("demo chart marker");
    assert_eq!(embedded, rendered.strip_prefix('\n').unwrap_or(&rendered), "re-render the fixture: the chart changed");
}

#[test]
fn files_and_cluster_give_identical_findings() {
    let d = double();
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
    let kc = kc.to_str().unwrap();

    let files = precheck(&["-f", FIXTURE, "-o", "json"]);
    let live = precheck(&["--kubeconfig", kc, "-o", "json"]);
    assert_eq!(files.code, 1, "{}", files.stderr);
    assert_eq!(live.code, files.code, "{}", live.stderr);
    let (f, l) = (files.json(), live.json());
    assert_eq!(f["source"]["type"], "files");
    assert_eq!(l["source"], serde_json::json!({"type": "cluster", "context": "double", "namespace": "pyairtable"}));
    e2e::validate_shape("report", &l);
    assert_eq!(comparable(f.clone()), comparable(l), "file and cluster reports differ");
    // The findings are the real ones, not an empty agreement. (No MM1013: the namespace's
    // istio.io/rev=canary sits beside istio-injection=enabled, which wins, so it selects the
    // installed default revision; MM1010 reports the pair.)
    let codes: Vec<&str> = f["findings"].as_array().unwrap().iter().map(|x| x["code"].as_str().unwrap()).collect();
    assert!(!codes.contains(&"MM1013"), "{codes:?}");
    for code in ["MM1010", "MM1024", "MM1031", "MM1060"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    // The origin says where each finding came from.
    let origin = |r: &Value| r["findings"][0]["origin"].as_str().unwrap().to_string();
    assert!(origin(&f).starts_with("tests/e2e/fixtures/platform.yaml:"), "{}", origin(&f));
    assert_eq!(origin(&precheck(&["--kubeconfig", kc, "-o", "json"]).json()), "cluster double");
}

#[test]
fn every_format_and_threshold_gives_the_same_exit_code() {
    let d = double();
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
    for source in [vec!["-f", FIXTURE], vec!["--kubeconfig", kc.to_str().unwrap()]] {
        for format in ["table", "wide", "json", "yaml"] {
            for (fail_on, code) in [("error", 1), ("warning", 1), ("never", 0)] {
                let mut args = source.clone();
                args.extend(["-o", format, "--fail-on", fail_on]);
                let r = precheck(&args);
                assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
            }
            // Suppressing every error and warning code turns the failure off.
            let mut args = source.clone();
            args.extend(["-o", format]);
            for s in ["MM1010", "MM1013", "MM1024", "MM1031", "MM1060"] {
                args.extend(["--suppress", s]);
            }
            assert_eq!(precheck(&args).code, 0, "{args:?}");
            // Suppressing one object only keeps the others.
            let mut args = source.clone();
            args.extend(["-o", format, "--suppress", "MM1024=Job/pyairtable/db-migrate", "--fail-on", "error"]);
            assert_eq!(precheck(&args).code, 1, "{args:?}");
        }
    }
}

#[test]
fn yaml_output_is_the_json_document() {
    let json = precheck(&["-f", FIXTURE, "-o", "json"]).json();
    let yaml = precheck(&["-f", FIXTURE, "-o", "yaml"]).stdout;
    let py = "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let parsed = run(&venv_tool("python"), &["-c", py], Some(&yaml), &[]).expect_code(0);
    assert_eq!(serde_json::from_str::<Value>(&parsed.stdout).unwrap(), json);
}

#[test]
fn each_kind_is_listed_once_with_pagination() {
    let d = double();
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
    d.clear_requests();
    precheck(&["--kubeconfig", kc.to_str().unwrap(), "-o", "json"]);
    let lists: Vec<_> = d.requests().into_iter().filter(|r| r.method == "GET" && !r.watch).collect();
    let first_pages: Vec<&str> = lists.iter().filter(|r| r.param("continue").is_none()).map(|r| r.path.as_str()).collect();
    let mut unique = first_pages.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(first_pages.len(), unique.len(), "a kind was listed twice: {first_pages:?}");
    assert!(lists.iter().all(|r| r.param("limit").as_deref() == Some("500")), "every LIST is paginated");
    assert!(unique.contains(&"/apis/apps/v1/deployments"), "control-plane kinds are listed cluster-wide: {unique:?}");
    assert!(unique.contains(&"/api/v1/namespaces/pyairtable/services"), "{unique:?}");
}

#[test]
fn forbidden_lists_are_named_and_the_run_continues() {
    let d = double();
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
    d.add_fault(FaultRule::on("GET", "^/api/v1/pods$").forbidden("jane")).unwrap();
    let r = precheck(&["--kubeconfig", kc.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let json = r.json();
    // The refused list is an error finding of its own (MM1000), not a note.
    let unread: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "MM1000")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        unread.len() == 1 && unread[0].contains("pods is forbidden") && unread[0].contains("cannot list"),
        "{unread:?}"
    );
    let skipped = json["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|s| s["analyzer"] == "capacity"), "capacity needs Pods: {skipped:?}");
    let table = precheck(&["--kubeconfig", kc.to_str().unwrap()]);
    assert!(table.stdout.contains("MM1000") && table.stdout.contains("pods is forbidden"), "{}", table.stdout);
}

#[test]
fn cluster_errors_exit_3_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: 'http://127.0.0.1:9'}\ncontexts:\n- name: gone\n  context: {cluster: gone, user: u, namespace: shop}\nusers:\n- name: u\n  user: {token: t}\ncurrent-context: gone\n",
    )
    .unwrap();
    for format in ["table", "wide", "json", "yaml"] {
        let r = precheck(&["--kubeconfig", kc.to_str().unwrap(), "-o", format, "--request-timeout", "5s"]);
        assert_eq!(r.code, 3, "{format}: {r:?}");
        assert!(r.stdout.is_empty(), "{format}: {}", r.stdout);
        assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    }
    let d = double();
    let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
    d.add_fault(FaultRule::on("GET", ".*").status(401, "Unauthorized")).unwrap();
    let r = precheck(&["--kubeconfig", kc.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let r = precheck(&["--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("kubeconfig"), "{}", r.stderr);
}

#[test]
fn bad_manifests_exit_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n").unwrap();
    for format in ["table", "json"] {
        let r = precheck(&["-f", f.to_str().unwrap(), "-o", format]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains("document 2") && r.stderr.contains("line 8"), "{}", r.stderr);
    }
    let r = precheck(&["-f", "/nonexistent/dir"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/dir"), "{}", r.stderr);
}
