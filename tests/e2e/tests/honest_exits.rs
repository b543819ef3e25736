//! Honest exits: a check whose input could not be read is never a pass. Against the API-server
//! double with fault injection (every read refused, every read answered 404, one kind refused)
//! and with empty input, the real binaries must not print "No findings." and exit 0.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, FaultRule};
use e2e::{Run, bin, root, run, venv_tool};
use serde_json::Value;

const FIXTURE: &str = "tests/e2e/fixtures/platform.yaml";

fn double() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions { simulate_controllers: false, ..Default::default() }).unwrap();
    d.load_yaml(&std::fs::read_to_string(root().join(FIXTURE)).unwrap()).unwrap();
    d
}

fn tool(name: &str, args: &[&str]) -> Run {
    run(&bin(name), args, None, &[])
}

fn with_kubeconfig<'a>(args: &[&'a str], kc: &'a str) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", kc]);
    all
}

/// Every read-only command that reads the cluster, as (tool, args).
const LIVE_COMMANDS: &[(&str, &[&str])] = &[
    ("mesh-migrate", &["precheck"]),
    ("mesh-migrate", &["precheck", "-o", "json"]),
    ("mesh-migrate", &["status"]),
    ("dbiso", &["audit"]),
    ("dbiso", &["audit", "-o", "json"]),
    ("dbiso", &["reach"]),
    ("dbiso", &["generate"]),
    ("dbiso", &["explain", "deployment/llm-orchestrator", "statefulset/postgres-core", "5432"]),
    ("spire-check", &[]),
    ("spire-check", &["identities"]),
];

#[test]
fn every_read_refused_or_not_found_exits_3_with_the_rbac_needed() {
    let dir = tempfile::tempdir().unwrap();
    for fault in ["403", "404"] {
        let d = double();
        let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
        let kc = kc.to_str().unwrap();
        let rule = FaultRule::on("GET", "^/api");
        d.add_fault(if fault == "403" { rule.forbidden("jane") } else { rule.status(404, "the server could not find the requested resource") })
            .unwrap();
        // Real kubectl refuses the same reads with a failure, not an empty list.
        let kubectl = run(&venv_tool("kubectl"), &["get", "pods", "--kubeconfig", kc], None, &[]);
        assert_eq!(kubectl.code, 1, "kubectl with every read {fault}: {kubectl:?}");
        for (name, args) in LIVE_COMMANDS {
            let r = tool(name, &with_kubeconfig(args, kc));
            let what = format!("{fault}: kubectl {name} {}", args.join(" "));
            assert_eq!(r.code, 3, "{what}\n{r:?}");
            assert!(r.stdout.is_empty(), "{what}: nothing on stdout: {}", r.stdout);
            assert!(!r.stdout.contains("No findings") && !r.stdout.contains("results are ✔"), "{what}");
            assert!(r.stderr.contains("nothing could be read from cluster double"), "{what}: {}", r.stderr);
            assert!(r.stderr.contains("hint: this command needs `list` on") && r.stderr.contains("pods"), "{what}: {}", r.stderr);
            assert!(r.stderr.contains("kubectl auth can-i list"), "{what}: {}", r.stderr);
            if fault == "403" {
                assert!(r.stderr.contains("is forbidden: User \"jane\" cannot list"), "{what}: {}", r.stderr);
            } else {
                assert!(r.stderr.contains("404 Not Found") && r.stderr.contains("server URL"), "{what}: {}", r.stderr);
            }
        }
        // Namespaced kinds are named with their namespace, cluster-scoped kinds as such.
        let r = tool("mesh-migrate", &with_kubeconfig(&["precheck"], kc));
        assert!(r.stderr.contains("in namespace pyairtable (a Role)"), "{}", r.stderr);
        assert!(r.stderr.contains("nodes") && r.stderr.contains("(cluster-scoped: a ClusterRole)"), "{}", r.stderr);
    }
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// `--suppress` for every code a clean run reports, so that the baseline exits 0.
fn suppress_all<'a>(codes: &'a [String]) -> Vec<&'a str> {
    codes.iter().flat_map(|c| ["--suppress", c.as_str()]).collect()
}

#[test]
fn some_reads_failed_is_an_error_finding_per_kind_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = double();
    let kc = d.write_kubeconfig(dir.path(), "pyairtable").unwrap();
    let kc = kc.to_str().unwrap();

    // precheck: a baseline that passes once its findings are suppressed...
    let baseline = tool("mesh-migrate", &with_kubeconfig(&["precheck", "-o", "json"], kc)).json();
    let mut seen = codes(&baseline);
    seen.sort();
    seen.dedup();
    assert!(!seen.iter().any(|c| c == "MM1000"), "{seen:?}");
    let quiet = suppress_all(&seen);
    let mut args = vec!["precheck", "-o", "json"];
    args.extend(&quiet);
    tool("mesh-migrate", &with_kubeconfig(&args, kc)).expect_code(0);
    // ...fails when Pods may not be listed (cluster-wide, as capacity needs) and PDBs answer 404.
    let pods = d.add_fault(FaultRule::on("GET", "^/api/v1/pods$").forbidden("jane")).unwrap();
    let pdbs = d.add_fault(FaultRule::on("GET", "/poddisruptionbudgets$").status(404, "the server could not find the requested resource")).unwrap();
    let r = tool("mesh-migrate", &with_kubeconfig(&args, kc)).expect_code(1);
    let report = r.json();
    let unread: Vec<&Value> = report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "MM1000").collect();
    assert_eq!(unread.len(), 2, "{report:#}");
    for f in &unread {
        assert_eq!(f["severity"], "error");
        assert_eq!(f["origin"], "cluster double");
        assert_eq!(f["docs"], "docs/findings.md#mm1000");
    }
    let messages: Vec<&str> = unread.iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.starts_with("could not list pods: pods is forbidden: User \"jane\" cannot list")), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("could not list poddisruptionbudgets.policy: 404 Not Found")), "{messages:?}");
    assert_eq!(report["summary"]["errors"], 2);
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().map(|s| s["analyzer"].as_str().unwrap()).collect();
    assert!(skipped.contains(&"capacity") && skipped.contains(&"disruption-budgets"), "{skipped:?}");
    // In a table too, and --fail-on never still decides the exit code as documented.
    let mut table = vec!["precheck"];
    table.extend(&quiet);
    let r = tool("mesh-migrate", &with_kubeconfig(&table, kc)).expect_code(1);
    assert!(r.stdout.contains("MM1000") && !r.stdout.contains("No findings."), "{}", r.stdout);
    table.extend(["--fail-on", "never"]);
    tool("mesh-migrate", &with_kubeconfig(&table, kc)).expect_code(0);
    d.remove_fault(pods);
    d.remove_fault(pdbs);

    // dbiso audit: NetworkPolicies refused.
    let baseline = tool("dbiso", &with_kubeconfig(&["audit", "-o", "json"], kc)).json();
    let mut seen = codes(&baseline);
    seen.sort();
    seen.dedup();
    let quiet = suppress_all(&seen);
    let mut args = vec!["audit", "-o", "json"];
    args.extend(&quiet);
    tool("dbiso", &with_kubeconfig(&args, kc)).expect_code(0);
    let policies = d.add_fault(FaultRule::on("GET", "/networkpolicies$").forbidden("jane")).unwrap();
    let report = tool("dbiso", &with_kubeconfig(&args, kc)).expect_code(1).json();
    let unread: Vec<&Value> = report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "DB3000").collect();
    assert_eq!(unread.len(), 1, "{report:#}");
    assert!(unread[0]["message"].as_str().unwrap().starts_with("could not list networkpolicies.networking.k8s.io: networkpolicies.networking.k8s.io is forbidden"));
    // Commands that would judge or write from a partial view refuse it (exit 3, nothing on
    // stdout): explain reads the policies, generate the Secrets that name database hosts (each
    // one a workload names, fetched by name).
    let r = tool("dbiso", &with_kubeconfig(&["explain", "deployment/llm-orchestrator", "statefulset/postgres-core", "5432"], kc)).expect_code(3);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("from a partial view of cluster double") && r.stderr.contains("list networkpolicies"), "{}", r.stderr);
    let secrets = d.add_fault(FaultRule::on("GET", "/secrets/").forbidden("jane")).unwrap();
    let r = tool("dbiso", &with_kubeconfig(&["generate"], kc)).expect_code(3);
    assert!(r.stdout.is_empty(), "no policy from a partial view: {}", r.stdout);
    assert!(r.stderr.contains("from a partial view of cluster double") && r.stderr.contains("get secrets: secrets \""), "{}", r.stderr);
    assert!(r.stderr.contains("`get` on secrets in namespace pyairtable (a Role)"), "the hint names get, not list: {}", r.stderr);
    d.remove_fault(secrets);
    // reach shows what it could read and fails for what it could not.
    let r = tool("dbiso", &with_kubeconfig(&["reach", "-o", "txt"], kc)).expect_code(1);
    assert!(!r.stdout.is_empty());
    assert!(r.stderr.contains("dbiso: error: could not list networkpolicies.networking.k8s.io"), "{}", r.stderr);
    d.remove_fault(policies);
    tool("dbiso", &with_kubeconfig(&["reach", "-o", "txt"], kc)).expect_code(0);

    // mesh-migrate status shows what it could read and fails for Pods it could not; expose
    // (a write) refuses to plan from a partial view.
    let pods = d.add_fault(FaultRule::on("GET", "/pods$").forbidden("jane")).unwrap();
    let r = tool("mesh-migrate", &with_kubeconfig(&["status"], kc)).expect_code(1);
    assert!(r.stdout.contains("Namespace:  pyairtable"), "{}", r.stdout);
    assert!(r.stderr.contains("mesh-migrate: error: could not list pods: pods is forbidden"), "{}", r.stderr);
    d.remove_fault(pods);
    tool("mesh-migrate", &with_kubeconfig(&["status"], kc)).expect_code(0);
    let services = d.add_fault(FaultRule::on("GET", "/services$").forbidden("jane")).unwrap();
    let r = tool("mesh-migrate", &with_kubeconfig(&["expose", "--domain", "shop.local", "--dry-run=client"], kc)).expect_code(3);
    assert!(r.stderr.contains("cannot plan the Ingress from a partial view") && r.stderr.contains("list services"), "{}", r.stderr);
    d.remove_fault(services);

    // spire-check: Nodes refused: the per-node checks are skipped and SC2000 fails the run.
    let nodes = d.add_fault(FaultRule::on("GET", "^/api/v1/nodes$").forbidden("jane")).unwrap();
    let r = tool("spire-check", &with_kubeconfig(&["-o", "json"], kc)).expect_code(1);
    let report = r.json();
    assert_eq!(report["schema"], "meshmove.report/v1");
    let check = &report["checks"][0];
    assert_eq!((check["category"].as_str(), check["code"].as_str(), check["result"].as_str()), (Some("inputs"), Some("SC2000"), Some("error")), "{check}");
    let finding = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "SC2000").unwrap();
    assert_eq!(finding["severity"], "error");
    assert!(finding["message"].as_str().unwrap().starts_with("nodes could not be listed: nodes is forbidden"), "{finding}");
    let r = tool("spire-check", &with_kubeconfig(&[], kc)).expect_code(1);
    assert!(r.stdout.contains("× Every kind the checks need could be read") && r.stdout.contains("Status check results are ×"), "{}", r.stdout);
    d.remove_fault(nodes);
}

#[test]
fn empty_input_is_an_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let comments = dir.path().join("comments.yaml");
    std::fs::write(&comments, "# Source: chart/templates/nothing.yaml\n---\n# only comments\n---\n").unwrap();
    let commands: &[(&str, &[&str])] = &[
        ("mesh-migrate", &["precheck"]),
        ("mesh-migrate", &["status"]),
        ("dbiso", &["audit"]),
        ("dbiso", &["reach"]),
        ("dbiso", &["generate"]),
        ("dbiso", &["explain", "deployment/a", "deployment/b", "5432"]),
        ("spire-check", &["check"]),
        ("spire-check", &["identities"]),
    ];
    for (name, args) in commands {
        for (input, stdin) in [("-", Some("")), ("-", Some("\n\n# nothing here\n")), (empty.to_str().unwrap(), None), (comments.to_str().unwrap(), None)] {
            let mut all = args.to_vec();
            all.extend(["-f", input]);
            let r = run(&bin(name), &all, stdin, &[]);
            let what = format!("kubectl {name} {} ({stdin:?})", all.join(" "));
            assert_eq!(r.code, 2, "{what}\n{r:?}");
            assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
            assert!(r.stderr.contains("no Kubernetes object in the input"), "{what}: {}", r.stderr);
            let shown = if input == "-" { "stdin" } else { input };
            assert!(r.stderr.contains(shown), "{what}: {}", r.stderr);
        }
    }
    // The default spire-check command, as the review ran it.
    let r = run(&bin("spire-check"), &["-f", "-"], Some(""), &[]).expect_code(2);
    assert!(!r.stdout.contains("Status check results are ✔"), "{}", r.stdout);
    // The post-renderer: Helm never sends an empty stream and refuses an empty output.
    for stdin in ["", "\n", "---\n# Source: x/templates/a.yaml\n"] {
        let r = run(&bin("mesh-migrate"), &["post-render"], Some(stdin), &[]).expect_code(2);
        assert!(r.stdout.is_empty(), "{stdin:?}: {}", r.stdout);
        assert!(r.stderr.contains("stdin holds no Kubernetes object"), "{stdin:?}: {}", r.stderr);
    }
}
