//! `kubectl dbiso` end to end: the demo chart rendered by real Helm, audited from files and live
//! against the API double, isolated with server-side apply (read back with real kubectl), and
//! audited again; the generated policies pass strict schema validation; no output ever carries
//! a secret value.

use std::collections::BTreeMap;
use std::path::Path;

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{bin, krew_path, root, run, venv_tool};
use serde_json::{Value, json};

const NS: &str = "pyairtable";

/// The demo chart as `helm template` renders it (real Helm 4 engine).
fn rendered_demo() -> String {
    let path = krew_path();
    let script = root().join("tests/tools/helm_render.py");
    run(&venv_tool("python"), &[script.to_str().unwrap(), "charts/demo-platform", "demo", NS], None, &[("PATH", path.to_str().unwrap())])
        .expect_code(0)
        .stdout
}

/// A Secret with a value no output may show, and a workload that reads it: the password and the
/// host (which resolves to nothing) are both part of the value.
const PLANTED: &str = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: reports-db\nstringData:\n  DATABASE_URL: \"postgresql://reports:planted-Q7vX2-password@ghost-db-planted:5432/reports\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: reports\nspec:\n  selector:\n    matchLabels: {app: reports}\n  template:\n    metadata:\n      labels: {app: reports}\n    spec:\n      containers:\n      - name: reports\n        image: pyairtable/reports:1.0\n        env:\n        - name: DATABASE_URL\n          valueFrom: {secretKeyRef: {name: reports-db, key: DATABASE_URL}}\n";
const SECRET_VALUES: &[&str] = &["planted-Q7vX2-password", "ghost-db-planted", "not-a-real-password"];

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn dbiso(args: &[&str], env: &[(&str, &str)]) -> e2e::Run {
    run(&bin("dbiso"), args, None, env)
}

/// Findings without the fields that say where objects were read from.
fn findings(report: &Value) -> Vec<Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.as_object_mut().unwrap().remove("origin");
            f
        })
        .collect()
}

fn codes_on(report: &Value, object: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let o = &f["object"];
            format!("{}/{}/{}", o["kind"].as_str().unwrap_or(""), o["namespace"].as_str().unwrap_or(""), o["name"].as_str().unwrap_or("")) == object
        })
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// The rendered objects as the cluster stores them: in the namespace, CloudNativePG's CRD served.
fn double_with(objects: &str) -> BlockingDouble {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::cnpg()).unwrap();
    double.load_values([json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})]).unwrap();
    let mut docs = apiserver_double::parse_documents(objects).unwrap();
    for d in &mut docs {
        d["metadata"]["namespace"] = json!(NS);
    }
    double.load_values(docs).unwrap();
    double
}

#[test]
fn the_demo_charts_shared_database_is_found_in_the_rendered_chart() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "demo.yaml", &rendered_demo());
    let r = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "json"], &[]).expect_code(1);
    let report = r.json();
    let shared: Vec<&Value> = report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "DB3001").collect();
    let core = shared
        .iter()
        .find(|f| f["object"]["name"] == "postgres-core" && f["object"]["kind"] == "StatefulSet")
        .unwrap_or_else(|| panic!("no DB3001 on postgres-core: {}", r.stdout));
    let message = core["message"].as_str().unwrap();
    assert!(message.contains("api-gateway") && message.contains("platform-services"), "{message}");
    assert!(message.contains("2 services"), "the migration Job belongs to api-gateway: {message}");
    assert_eq!(core["severity"], "error");
    assert_eq!(core["object"]["namespace"], NS);
    // postgres-llm has one owner: not shared, but open to everything without policies.
    let llm = codes_on(&report, "StatefulSet/pyairtable/postgres-llm");
    assert!(!llm.contains(&"DB3001".to_string()), "{llm:?}");
    for code in ["DB3010", "DB3011", "DB3012", "DB3014"] {
        assert!(llm.contains(&code.to_string()), "{code} missing on postgres-llm: {llm:?}");
    }
    // The table says the same, and names the design problem in the hint.
    let t = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "wide"], &[]).expect_code(1);
    assert!(t.stdout.lines().any(|l| l.contains("DB3001") && l.contains("StatefulSet/pyairtable/postgres-core")), "{}", t.stdout);
    assert!(t.stdout.contains("NetworkPolicies cannot fix"), "{}", t.stdout);
}

#[test]
fn generated_policies_pass_strict_validation_and_isolate_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let demo = rendered_demo();
    let file = write(dir.path(), "demo.yaml", &demo);
    // By default only postgres-llm (one owner service) is isolated: postgres-core and redis are
    // used by two services each and which one owns them cannot be told from the names, so the
    // generator leaves them open and says how to isolate them.
    let default = dbiso(&["generate", "-f", &file, "-n", NS], &[]).expect_code(0);
    assert_eq!(default.stdout.matches("kind: NetworkPolicy").count(), 1, "{}", default.stdout);
    assert!(default.stdout.contains("name: dbiso-postgres-llm\n"), "{}", default.stdout);
    for db in ["postgres-core", "redis"] {
        assert!(
            default.stderr.lines().any(|l| l.contains(&format!("StatefulSet/{db}")) && l.contains(&format!("--owner {db}=SERVICE")) && l.contains(&format!("--isolate {db}"))),
            "{db}: {}",
            default.stderr
        );
    }
    // --isolate-all isolates them too, keeping every service that uses them.
    let generated = dbiso(&["generate", "-f", &file, "-n", NS, "--isolate-all"], &[]).expect_code(0);
    assert_eq!(generated.stdout.matches("kind: NetworkPolicy").count(), 3, "{}", generated.stdout);
    for name in ["dbiso-postgres-core", "dbiso-postgres-llm", "dbiso-redis"] {
        assert!(generated.stdout.contains(&format!("name: {name}\n")), "{name}: {}", generated.stdout);
    }
    let policies = write(dir.path(), "policies.yaml", &generated.stdout);
    let v = run(&root().join("tests/tools/validate.sh"), &[&policies], None, &[("PATH", krew_path().to_str().unwrap())]);
    assert_eq!(v.code, 0, "schema validation failed:\n{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("validated 3 objects: 0 failed"), "{}", v.stdout);

    // With the policies, only sharing remains: nobody but the owners reaches a database port.
    let both = write(dir.path(), "both.yaml", &format!("{demo}\n{}", generated.stdout));
    let report = dbiso(&["audit", "-f", &both, "-n", NS, "-o", "json"], &[]).expect_code(1).json();
    let codes: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.iter().all(|c| *c == "DB3001"), "{codes:?}");
    // The engine agrees pair by pair: owners in, others out.
    let reach = dbiso(&["reach", "-f", &both, "-n", NS, "-o", "txt"], &[]).expect_code(0).stdout;
    let into_core: Vec<&str> = reach.lines().filter(|l| l.contains("=> StatefulSet/pyairtable/postgres-core :")).collect();
    assert_eq!(
        into_core,
        [
            "Deployment/pyairtable/api-gateway => StatefulSet/pyairtable/postgres-core : TCP 5432",
            "Job/pyairtable/db-migrate => StatefulSet/pyairtable/postgres-core : TCP 5432",
            "Deployment/pyairtable/platform-services => StatefulSet/pyairtable/postgres-core : TCP 5432",
        ]
    );
    let explained = dbiso(&["explain", "deploy/frontend", "sts/postgres-core", "-f", &both, "-n", NS], &[]).expect_code(1);
    assert!(explained.stdout.contains("NetworkPolicy pyairtable/dbiso-postgres-core: does not admit"), "{}", explained.stdout);
    let allowed = dbiso(&["explain", "deploy/api-gateway", "sts/postgres-core", "-f", &both, "-n", NS, "-o", "json"], &[]).expect_code(0).json();
    assert_eq!(allowed["allowed"], true);
    assert_eq!(allowed["port"], 5432, "the database port is the default");
    assert_eq!(allowed["src"], json!({"kind": "Pod", "namespace": NS, "name": "api-gateway"}), "the pod template stands for the Deployment");
}

#[test]
fn reach_json_is_the_engines_serialization() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "demo.yaml", &rendered_demo());
    let json = dbiso(&["reach", "-f", &file, "-n", NS, "-o", "json"], &[]).expect_code(0).json();
    let entries = json.as_array().expect("a list");
    let entry = entries
        .iter()
        .find(|e| e["src"]["name"] == "frontend" && e["dst"]["name"] == "postgres-core")
        .expect("without policies frontend reaches postgres-core");
    assert_eq!(entry["src"], json!({"kind": "Deployment", "namespace": NS, "name": "frontend"}));
    assert_eq!(entry["conn"], "all");
    assert!(entries.iter().any(|e| e["src"] == json!({"kind": "External", "cidr": "0.0.0.0/0"})), "External entries");
    let yaml = dbiso(&["reach", "-f", &file, "-n", NS, "-o", "yaml"], &[]).expect_code(0).stdout;
    assert!(yaml.starts_with("- src:\n"), "{}", &yaml[..yaml.len().min(200)]);
    let txt = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "txt"], &[]);
    assert_eq!(txt.code, 2, "txt is not audit's: {txt:?}");
    assert!(txt.stderr.contains("-o txt is not supported by `audit`; it prints table, wide, json, yaml, md, csv"), "{}", txt.stderr);
}

/// `audit -o csv` and `-o md` carry the findings of `-o json`, finding for finding, read back by
/// Python's csv module and as Markdown table rows; all three exit alike.
#[test]
fn audit_csv_and_markdown_carry_the_json_findings() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "demo.yaml", &rendered_demo());
    let json = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "json"], &[]);
    let want: Vec<(String, String, String)> = findings(&json.json())
        .iter()
        .map(|f| {
            let o = &f["object"];
            let object = match o["namespace"].as_str() {
                Some(ns) => format!("{}/{ns}/{}", o["kind"].as_str().unwrap(), o["name"].as_str().unwrap()),
                None => o["kind"].as_str().map(|k| format!("{k}/{}", o["name"].as_str().unwrap())).unwrap_or_default(),
            };
            (f["code"].as_str().unwrap().to_string(), object, f["message"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(!want.is_empty(), "the demo chart has findings");
    let csv = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "csv"], &[]);
    assert_eq!(csv.code, json.code);
    // Read by Python's csv module: rows as JSON objects keyed by the header.
    let py = "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))";
    let rows = run(&venv_tool("python"), &["-c", py], Some(&csv.stdout), &[]).expect_code(0).json();
    let got: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r: BTreeMap<String, String> = serde_json::from_value(r.clone()).unwrap();
            let object = match (r["kind"].as_str(), r["namespace"].as_str()) {
                ("", _) => String::new(),
                (k, "") => format!("{k}/{}", r["name"]),
                (k, ns) => format!("{k}/{ns}/{}", r["name"]),
            };
            (r["code"].clone(), object, r["message"].clone())
        })
        .collect();
    assert_eq!(got, want);
    let md = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "md"], &[]);
    assert_eq!(md.code, json.code);
    assert!(md.stdout.starts_with("# dbiso audit\n"), "{}", md.stdout);
    let rows: Vec<&str> = md.stdout.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Severity") && !l.starts_with("| ---")).collect();
    assert_eq!(rows.len(), want.len());
    for (row, (code, _, _)) in rows.iter().zip(&want) {
        assert_eq!(row.split(" | ").nth(1), Some(code.as_str()), "{row}");
    }
}

#[test]
fn no_output_carries_a_secret_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "demo.yaml", &format!("{}\n{PLANTED}", rendered_demo()));
    let mut outputs = Vec::new();
    for o in ["table", "wide", "json", "yaml", "md", "csv"] {
        for v in ["0", "9"] {
            outputs.push(dbiso(&["audit", "-f", &file, "-n", NS, "-o", o, "-v", v], &[]));
        }
    }
    for o in ["md", "dot", "mermaid"] {
        outputs.push(dbiso(&["explain", "deploy/reports", "svc/postgres-core", "-f", &file, "-n", NS, "-o", o, "-v", "9"], &[]));
    }
    for o in ["table", "json", "yaml", "txt", "dot", "mermaid", "md", "csv"] {
        outputs.push(dbiso(&["reach", "-f", &file, "-n", NS, "-o", o, "-v", "9"], &[]));
        outputs.push(dbiso(&["generate", "--diff", "--isolate-all", "-f", &file, "-n", NS, "-o", o, "-v", "9"], &[]));
        outputs.push(dbiso(&["diff", "--before", &file, "--after", &file, "-n", NS, "-o", o, "-v", "9"], &[]));
    }
    for o in ["table", "json", "yaml"] {
        outputs.push(dbiso(&["explain", "deploy/reports", "svc/postgres-core", "-f", &file, "-n", NS, "-o", o, "-v", "9"], &[]));
        outputs.push(dbiso(&["generate", "-f", &file, "-n", NS, "-o", o, "-v", "9"], &[]));
    }
    for r in &outputs {
        assert!(r.code == 0 || r.code == 1, "{r:?}");
        for secret in SECRET_VALUES {
            assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "{secret} printed:\n{}\n{}", r.stdout, r.stderr);
        }
    }
    // The planted reference is still reported, by Secret and key.
    let json = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "json"], &[]).json();
    let unresolved = json["findings"].as_array().unwrap().iter().find(|f| f["code"] == "DB3003").expect("DB3003 for the planted host");
    assert!(unresolved["message"].as_str().unwrap().contains("Secret reports-db key DATABASE_URL"), "{unresolved}");
    // -v 9 really is more verbose: the test would prove nothing otherwise.
    let loud = dbiso(&["audit", "-f", &file, "-n", NS, "-v", "9"], &[]);
    assert!(loud.stderr.contains("reference Deployment/pyairtable/api-gateway"), "{}", loud.stderr);
}

/// Requests that list a collection (pagination continuations are part of the same list).
fn lists(double: &BlockingDouble) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in double.requests() {
        if r.method == "GET" && !r.watch && r.param("continue").is_none() && r.param("limit").is_some() {
            *out.entry(r.path.clone()).or_default() += 1;
        }
    }
    out
}

#[test]
fn live_audit_apply_and_audit_again_against_the_api_double() {
    let demo = rendered_demo();
    let double = double_with(&demo);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), NS).unwrap();
    let kc = kubeconfig.to_str().unwrap();
    let env = [("KUBECONFIG", kc)];

    // Live audit: the shared database, every kind listed exactly once; Secrets and ConfigMaps
    // are not listed but fetched by name, those the workloads read, each once.
    double.clear_requests();
    let live = dbiso(&["audit", "-o", "json"], &env).expect_code(1);
    let live_report = live.json();
    assert_eq!(live_report["source"], json!({"type": "cluster", "context": "double", "namespace": NS}));
    assert!(codes_on(&live_report, "StatefulSet/pyairtable/postgres-core").contains(&"DB3001".to_string()), "{}", live.stdout);
    let listed = lists(&double);
    let expected: Vec<String> = [
        "/api/v1/namespaces",
        "/api/v1/namespaces/pyairtable/pods",
        "/api/v1/namespaces/pyairtable/services",
        "/apis/apps/v1/namespaces/pyairtable/daemonsets",
        "/apis/apps/v1/namespaces/pyairtable/deployments",
        "/apis/apps/v1/namespaces/pyairtable/replicasets",
        "/apis/apps/v1/namespaces/pyairtable/statefulsets",
        "/apis/batch/v1/namespaces/pyairtable/cronjobs",
        "/apis/batch/v1/namespaces/pyairtable/jobs",
        "/apis/networking.k8s.io/v1/namespaces/pyairtable/networkpolicies",
        // Cluster-scoped, and absent from this double (no CRDs): asked once, answered 404.
        "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies",
        "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies",
        "/apis/postgresql.cnpg.io/v1/namespaces/pyairtable/clusters",
        // Istio's policies, which the engine evaluates (the double serves Istio's kinds).
        "/apis/security.istio.io/v1/namespaces/pyairtable/authorizationpolicies",
        "/apis/security.istio.io/v1/namespaces/pyairtable/peerauthentications",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), expected, "kinds listed: {listed:?}");
    assert!(listed.values().all(|&n| n == 1), "a kind was listed more than once: {listed:?}");
    let mut fetched: Vec<String> = double
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && (r.path.contains("/secrets/") || r.path.contains("/configmaps/")))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    let count = fetched.len();
    fetched.sort();
    fetched.dedup();
    assert!(!fetched.is_empty() && fetched.len() == count, "each named Secret and ConfigMap once: {fetched:?}");
    for name in &fetched {
        assert!(
            [format!("name: {name}\n"), format!("secretName: {name}\n"), format!("name: {name}}}")].iter().any(|r| demo.contains(r.as_str())),
            "{name} was fetched but no workload names it"
        );
    }
    let others: Vec<String> = double.requests().iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(others.is_empty(), "audit only reads: {others:?}");

    // The same objects from files give the same findings.
    let file = write(dir.path(), "demo.yaml", &demo);
    let offline = dbiso(&["audit", "-f", &file, "-n", NS, "-o", "json"], &[]).expect_code(1).json();
    assert_eq!(findings(&offline), findings(&live_report), "-f and live audits differ");

    // Client dry run: a diff, nothing sent.
    double.clear_requests();
    let diff = dbiso(&["apply", "--dry-run=client", "--isolate-all"], &env).expect_code(0);
    assert!(diff.stdout.contains("+++ b/NetworkPolicy/pyairtable/dbiso-postgres-core (kubectl-dbiso)"), "{}", diff.stdout);
    assert!(diff.stderr.contains("networkpolicy.networking.k8s.io/dbiso-redis created (namespace pyairtable) (dry run)"), "{}", diff.stderr);
    assert!(double.requests().iter().all(|r| r.method == "GET"), "client dry run sent a write");

    // Server dry run: every object sent with dryRun=All, nothing stored.
    double.clear_requests();
    let dry = dbiso(&["apply", "--dry-run=server", "-o", "json", "--isolate-all"], &env).expect_code(0);
    assert_eq!(dry.stderr.matches("created (namespace pyairtable) (server dry run)").count(), 3, "{}", dry.stderr);
    let sent = dry.json();
    assert_eq!(sent["kind"], "List");
    let sent_names: Vec<&str> = sent["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(sent_names, ["dbiso-postgres-core", "dbiso-postgres-llm", "dbiso-redis"], "{sent}");
    let patches: Vec<_> = double.requests().into_iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 3);
    assert!(patches.iter().all(|r| r.param("dryRun").as_deref() == Some("All")), "{patches:?}");
    assert!(double.list("networking.k8s.io/v1", "NetworkPolicy", Some(NS)).is_empty(), "a dry run stored policies");

    // Apply: server-side apply as kubectl-dbiso, then the audit of the isolated cluster.
    let applied = dbiso(&["apply", "-o", "json", "--isolate-all"], &env).expect_code(1);
    for name in ["dbiso-postgres-core", "dbiso-postgres-llm", "dbiso-redis"] {
        assert!(applied.stderr.contains(&format!("networkpolicy.networking.k8s.io/{name} created")), "{}", applied.stderr);
    }
    let after = applied.json();
    let codes: Vec<&str> = after["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"DB3001"), "sharing is a design problem and remains: {codes:?}");
    assert!(codes.iter().all(|c| *c == "DB3001"), "isolation findings remain after apply: {}", applied.stdout);

    // Real kubectl reads the policies back, managed by kubectl-dbiso.
    let got = run(&venv_tool("kubectl"), &["--kubeconfig", kc, "get", "networkpolicies", "-n", NS, "-o", "json", "--show-managed-fields"], None, &[]).expect_code(0).json();
    let items = got["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dbiso-postgres-core", "dbiso-postgres-llm", "dbiso-redis"]);
    for i in items {
        let managers: Vec<&str> = i["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
        assert_eq!(managers, ["kubectl-dbiso"], "{i}");
        assert_eq!(i["metadata"]["managedFields"][0]["operation"], "Apply");
    }
    let core = items.iter().find(|i| i["metadata"]["name"] == "dbiso-postgres-core").unwrap();
    assert_eq!(core["spec"]["ingress"][0]["ports"], json!([{"protocol": "TCP", "port": 5432}]));

    // Again: unchanged, and the audit says the same.
    let again = dbiso(&["apply", "--isolate-all"], &env).expect_code(1);
    assert!(again.stderr.contains("dbiso-postgres-core unchanged"), "{}", again.stderr);
    let table = dbiso(&["audit", "-o", "wide"], &env).expect_code(1);
    assert!(table.stdout.contains("NetworkPolicies cannot fix"), "{}", table.stdout);

    // Rollback: a dry run first (nothing deleted), then the policies apply created are gone and
    // so is the journal that recorded them; real kubectl sees the namespace as before.
    let preview = dbiso(&["rollback", "--dry-run"], &env).expect_code(0);
    // A diff per policy on stdout (the live policy against nothing), the outcomes on stderr.
    for name in ["dbiso-postgres-core", "dbiso-postgres-llm", "dbiso-redis"] {
        assert!(preview.stdout.contains(&format!("+++ b/NetworkPolicy/pyairtable/{name} (deleted)")), "{}", preview.stdout);
    }
    assert_eq!(preview.stderr.matches("deleted (namespace pyairtable) (dry run)").count(), 3, "{}", preview.stderr);
    assert_eq!(double.list("networking.k8s.io/v1", "NetworkPolicy", Some(NS)).len(), 3, "a dry run deleted");
    let undone = dbiso(&["rollback"], &env).expect_code(0);
    assert!(undone.stderr.contains("rolled back dbiso-apply in namespace pyairtable: 3 objects restored"), "{}", undone.stderr);
    let got = run(&venv_tool("kubectl"), &["--kubeconfig", kc, "get", "networkpolicies,configmaps", "-n", NS, "-o", "name"], None, &[]).expect_code(0);
    assert!(!got.stdout.contains("networkpolicy"), "{}", got.stdout);
    assert!(!got.stdout.contains("mesh-migrate-journal"), "{}", got.stdout);
    assert_eq!(dbiso(&["rollback"], &env).code, 2, "nothing left to roll back is a usage error");
}

/// A policy someone edited after `apply` wrote it is kept: rollback refuses whole and names it,
/// and `--force` restores it anyway.
#[test]
fn rollback_keeps_a_policy_someone_edited() {
    let double = double_with(&rendered_demo());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), NS).unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    dbiso(&["apply", "--isolate-all"], &env).expect_code(1);
    // Another manager widens one policy.
    let theirs = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "dbiso-redis", "namespace": NS},
        "spec": {"ingress": [{"ports": [{"protocol": "TCP", "port": 6380}]}]}
    });
    double.apply(theirs, "platform-team", true).unwrap();
    let refused = dbiso(&["rollback"], &env);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("dbiso-redis"), "{}", refused.stderr);
    assert_eq!(double.list("networking.k8s.io/v1", "NetworkPolicy", Some(NS)).len(), 3, "a refused rollback changed something");
    dbiso(&["rollback", "--force"], &env).expect_code(0);
    assert!(double.list("networking.k8s.io/v1", "NetworkPolicy", Some(NS)).is_empty());
}

#[test]
fn apply_does_not_force_another_managers_fields() {
    let double = double_with(&rendered_demo());
    // Someone else owns the port list of the policy dbiso wants to write.
    let theirs = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "dbiso-postgres-llm", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres-llm", "app.kubernetes.io/instance": "demo"}},
                 "policyTypes": ["Ingress"],
                 "ingress": [{"ports": [{"protocol": "TCP", "port": 5433}]}]}
    });
    double.apply(theirs, "platform-team", false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), NS).unwrap();
    let r = dbiso(&["apply"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("platform-team"), "the conflict names the other manager: {}", r.stderr);
    assert!(r.stderr.contains("dbiso-postgres-llm"), "{}", r.stderr);
    let stored = double.get("networking.k8s.io/v1", "NetworkPolicy", Some(NS), "dbiso-postgres-llm").unwrap();
    assert_eq!(stored["spec"]["ingress"][0]["ports"][0]["port"], 5433, "the other manager's value was kept");
}

#[test]
fn cluster_errors_exit_3_and_completion_lists_the_commands() {
    let r = dbiso(&["audit", "--kubeconfig", "/nonexistent/kubeconfig"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    let c = dbiso(&["completion", "bash"], &[]).expect_code(0);
    for sub in ["audit", "reach", "diff", "explain", "generate", "apply", "rollback"] {
        assert!(c.stdout.contains(sub), "{sub} missing from the completion script");
    }
    let r = dbiso(&["__complete", "reach", "-o", ""], &[]).expect_code(0);
    for format in ["txt", "dot", "mermaid", "md", "csv"] {
        assert!(r.stdout.lines().any(|l| l == format), "{format}: {}", r.stdout);
    }
}

/// A saved cluster state: raw API lists (items without kind or apiVersion), one of them JSON.
const LIST_DUMP: &str = "apiVersion: v1\nkind: NamespaceList\nitems:\n- metadata: {name: web, labels: {kubernetes.io/metadata.name: web}}\n- metadata: {name: data, labels: {kubernetes.io/metadata.name: data}}\n---\napiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: frontend, namespace: web}\n  spec:\n    selector: {matchLabels: {app: frontend}}\n    template:\n      metadata: {labels: {app: frontend}}\n      spec: {containers: [{name: web, image: shop/web:1, env: [{name: PGHOST, value: orders-db.data}]}]}\n---\napiVersion: apps/v1\nkind: StatefulSetList\nitems:\n- metadata: {name: orders-db, namespace: data}\n  spec:\n    serviceName: orders-db\n    selector: {matchLabels: {app: orders-db}}\n    template:\n      metadata: {labels: {app: orders-db}}\n      spec: {containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432, name: postgres}]}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: orders-db, namespace: data}\n  spec:\n    podSelector: {matchLabels: {app: orders-db}}\n    ingress:\n    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: web}}}]\n      ports: [{port: 5432}]\n";
const SERVICE_LIST_JSON: &str = r#"{"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": [{"metadata": {"name": "orders-db", "namespace": "data"}, "spec": {"selector": {"app": "orders-db"}, "ports": [{"port": 5432}]}}]}"#;

#[test]
fn api_list_dumps_load_and_a_directory_skips_what_is_not_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    write(&state, "lists.yaml", LIST_DUMP);
    write(&state, "services.json", SERVICE_LIST_JSON);
    // A saved report and a README beside the manifests; a secret-looking value in the README.
    let report = dbiso(&["audit", "-f", &format!("{}/lists.yaml", state.display()), "-A", "-o", "json"], &[]).stdout;
    write(&state, "report.json", &report);
    write(&state, "README.yaml", "Saved with kubectl get --raw. Password: not-a-real-password, see: the wiki\n  - [\n");
    let dir_arg = state.to_str().unwrap();

    let r = dbiso(&["reach", "-f", dir_arg, "-o", "json"], &[]).expect_code(0);
    let pairs: Vec<String> = r.json().as_array().unwrap().iter().map(|e| format!("{}/{} -> {}/{}", e["src"]["kind"], e["src"]["name"], e["dst"]["kind"], e["dst"]["name"])).collect();
    assert!(pairs.contains(&"\"Deployment\"/\"frontend\" -> \"StatefulSet\"/\"orders-db\"".to_string()), "{pairs:?}");
    for skipped in ["report.json", "README.yaml"] {
        assert!(
            r.stderr.lines().any(|l| l.starts_with("warning: skipped ") && l.contains(skipped) && l.contains("not a Kubernetes manifest")),
            "{skipped}: {}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("lists.yaml") && !r.stderr.contains("services.json"), "{}", r.stderr);
    for secret in SECRET_VALUES {
        assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret), "{secret}: {}", r.stderr);
    }
    // The audit reads the same directory: the Service from the JSON list fronts the database.
    let audit = dbiso(&["audit", "-f", dir_arg, "-A", "-o", "json"], &[]).json();
    assert_eq!(audit["source"]["paths"], json!([dir_arg]));

    // Named explicitly, a file that is not Kubernetes is an input error.
    let named = dbiso(&["reach", "-f", &format!("{dir_arg}/report.json")], &[]).expect_code(2);
    assert!(named.stderr.contains("report.json:1: document 1 is not a Kubernetes object: no `kind`"), "{}", named.stderr);
    // An item without a name is pointed at inside its list.
    let broken = write(dir.path(), "broken.yaml", "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: ok}\n- metadata: {namespace: web}\n");
    let r = dbiso(&["reach", "-f", &broken], &[]).expect_code(2);
    assert!(r.stderr.contains("broken.yaml:1: document 1, items[1] of the PodList is not a Kubernetes object: no `metadata.name`"), "{}", r.stderr);
}

#[test]
fn explain_resolves_namespaced_ends_without_all_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "lists.yaml", LIST_DUMP);
    // From files, with -n naming another namespace than the ends'.
    for extra in [&[][..], &["-n", "web"][..], &["-n", "elsewhere"][..]] {
        let mut args = vec!["explain", "deploy/web/frontend", "sts/data/orders-db", "-f", &file];
        args.extend(extra);
        let r = dbiso(&args, &[]).expect_code(0);
        assert!(r.stdout.contains("ALLOWED: pod web/frontend -> pod data/orders-db on TCP 5432"), "{extra:?}: {}", r.stdout);
    }
    // One end without a namespace is looked up in -n's.
    let r = dbiso(&["explain", "deploy/frontend", "sts/data/orders-db", "postgres", "-f", &file, "-n", "web"], &[]).expect_code(0);
    assert!(r.stdout.contains("on TCP 5432: ALLOWED"), "{}", r.stdout);

    // Live: each namespace named is read with namespaced lists, nothing cluster-wide but
    // Namespaces (which are cluster-scoped).
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::cnpg()).unwrap();
    let docs = e2e_objects(&[LIST_DUMP]);
    double.load_values(docs).unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "web").unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    double.clear_requests();
    let r = dbiso(&["explain", "deploy/frontend", "sts/data/orders-db"], &env).expect_code(0);
    assert!(r.stdout.contains("ALLOWED: pod web/frontend -> pod data/orders-db on TCP 5432"), "{}\n{}", r.stdout, r.stderr);
    let listed = lists(&double);
    assert!(listed.keys().any(|p| p == "/apis/apps/v1/namespaces/data/statefulsets"), "{listed:?}");
    assert!(listed.keys().any(|p| p == "/apis/apps/v1/namespaces/web/deployments"), "{listed:?}");
    assert!(!listed.keys().any(|p| p == "/apis/apps/v1/deployments" || p == "/apis/networking.k8s.io/v1/networkpolicies"), "cluster-wide lists: {listed:?}");
    // Both ends in the scope's namespace: the database's own pod is not in namespace web.
    let r = dbiso(&["explain", "sts/data/orders-db", "sts/orders-db", "-n", "data"], &env).expect_code(1);
    assert!(r.stdout.contains("DENIED"), "{}", r.stdout);
}

/// The objects of YAML streams of typed lists, as the API stores them (for the double).
fn e2e_objects(streams: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for s in streams {
        for doc in apiserver_double::parse_documents(s).unwrap() {
            match doc["items"].as_array() {
                Some(items) => {
                    let kind = doc["kind"].as_str().unwrap().strip_suffix("List").unwrap().to_string();
                    for item in items {
                        let mut item = item.clone();
                        item["kind"] = json!(kind);
                        item["apiVersion"] = doc["apiVersion"].clone();
                        out.push(item);
                    }
                }
                None => out.push(doc),
            }
        }
    }
    out
}

/// A namespace with two services and a database, and the policy that isolates the database.
const SHOP: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec: {containers: [{name: api, image: shop/api:1, env: [{name: PGHOST, value: pg}], ports: [{containerPort: 8080}]}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: shop/web:1}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: pg, namespace: shop}\nspec: {selector: {app: pg}, ports: [{port: 5432}]}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: pg, namespace: shop}\nspec:\n  serviceName: pg\n  selector: {matchLabels: {app: pg}}\n  template:\n    metadata: {labels: {app: pg}}\n    spec: {containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432}]}]}\n";
const ISOLATE_PG: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: pg, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: pg}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: api}}}]\n    ports: [{port: 5432}]\n";

/// `(change, src name, dst name or cidr)` of a diff's JSON entries.
fn changes(diff: &Value) -> Vec<(String, String, String)> {
    let end = |e: &Value| e["name"].as_str().or(e["cidr"].as_str()).unwrap().to_string();
    diff["entries"].as_array().unwrap().iter().map(|e| (e["change"].as_str().unwrap().to_string(), end(&e["src"]), end(&e["dst"]))).collect()
}

#[test]
fn diff_between_two_inputs_exits_1_when_the_change_removes_connections() {
    let dir = tempfile::tempdir().unwrap();
    let before = write(dir.path(), "before.yaml", SHOP);
    let policy = write(dir.path(), "policy.yaml", ISOLATE_PG);
    let after = write(dir.path(), "after.yaml", &format!("{SHOP}---\n{ISOLATE_PG}"));

    let r = dbiso(&["diff", "--before", &before, "--after", &after, "-o", "json"], &[]).expect_code(1);
    let d = r.json();
    assert_eq!(d["removesConnections"], true);
    assert_eq!(d["summary"], json!({"added": 0, "removed": 4, "changed": 1, "losing": 5}));
    let got = changes(&d);
    assert_eq!(
        got,
        [
            ("changed".to_string(), "api".to_string(), "pg".to_string()),
            ("removed".into(), "pg".into(), "pg".into()),
            ("removed".into(), "web".into(), "pg".into()),
            ("removed".into(), "0.0.0.0/0".into(), "pg".into()),
            ("removed".into(), "::/0".into(), "pg".into()),
        ]
    );
    let api = &d["entries"][0];
    assert_eq!((&api["before"], &api["after"], &api["lost"]), (&json!("all"), &json!([{"protocol": "TCP", "port": 5432}]), &json!({"allExcept": [{"protocol": "TCP", "port": 5432}]})));

    // -f applies the policy on top of --before: the same change.
    let overlay = dbiso(&["diff", "--before", &before, "-f", &policy, "-o", "json"], &[]).expect_code(1).json();
    assert_eq!(overlay, d);
    // Stdin for one side.
    let piped = run(&bin("dbiso"), &["diff", "--before", "-", "--after", &after, "-o", "json"], Some(SHOP), &[]).expect_code(1).json();
    assert_eq!(piped, d);
    // The other way round only adds: exit 0. No change: exit 0.
    let back = dbiso(&["diff", "--before", &after, "--after", &before, "-o", "json"], &[]).expect_code(0).json();
    assert_eq!(back["summary"], json!({"added": 4, "removed": 0, "changed": 1, "losing": 0}));
    let same = dbiso(&["diff", "--before", &before, "--after", &before], &[]).expect_code(0);
    assert_eq!(same.stdout, "No connection changes.\n");

    // Every format keeps the exit code; the table ends with the summary.
    for o in ["table", "wide", "yaml", "txt", "dot", "mermaid", "md", "csv"] {
        let r = dbiso(&["diff", "--before", &before, "--after", &after, "-o", o], &[]).expect_code(1);
        assert!(!r.stdout.is_empty(), "{o}");
    }
    let table = dbiso(&["diff", "--before", &before, "--after", &after], &[]).expect_code(1).stdout;
    assert!(table.ends_with("0 added, 4 removed, 1 changed: the change removes connections (5 pair(s) lose traffic)\n"), "{table}");
    let txt = dbiso(&["diff", "--before", &before, "--after", &after, "-o", "txt"], &[]).expect_code(1).stdout;
    assert!(txt.lines().any(|l| l == "~ Deployment/shop/api => StatefulSet/shop/pg : All connections -> TCP 5432"), "{txt}");

    // --focus narrows to the pairs from or to a workload; a name that is not there is an error.
    let web = dbiso(&["diff", "--before", &before, "--after", &after, "-o", "json", "--focus", "deploy/shop/web"], &[]).expect_code(1).json();
    assert_eq!(changes(&web), [("removed".to_string(), "web".to_string(), "pg".to_string())]);
    let outside = dbiso(&["diff", "--before", &before, "--after", &after, "-o", "json", "--focus", "cidr:203.0.113.0/24"], &[]).expect_code(1).json();
    assert_eq!(changes(&outside), [("removed".to_string(), "0.0.0.0/0".to_string(), "pg".to_string())]);
    let missing = dbiso(&["diff", "--before", &before, "--after", &after, "--focus", "deploy/shop/nope"], &[]).expect_code(2);
    assert!(missing.stderr.contains("--focus: no Deployment/shop/nope in the input"), "{}", missing.stderr);
    let elsewhere = dbiso(&["diff", "--before", &before, "--after", &after, "--focus", "deploy/web"], &[]).expect_code(2);
    assert!(elsewhere.stderr.contains("write deployment/shop/web"), "{}", elsewhere.stderr);

    // Usage errors: no state after, both kinds of state after, stdin twice.
    for args in [
        vec!["diff", "--before", before.as_str()],
        vec!["diff", "--before", before.as_str(), "--after", after.as_str(), "-f", policy.as_str()],
        vec!["diff", "--before", "-", "--after", "-"],
    ] {
        let r = dbiso(&args, &[]);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn diff_and_generate_diff_against_the_live_cluster() {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::cnpg()).unwrap();
    double.load_values(apiserver_double::parse_documents(SHOP).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "shop").unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let policy = write(dir.path(), "policy.yaml", ISOLATE_PG);

    // kubectl diff's shape: the cluster, and the cluster with the file applied.
    double.clear_requests();
    let d = dbiso(&["diff", "-f", &policy, "-o", "json"], &env).expect_code(1).json();
    assert_eq!(d["summary"], json!({"added": 0, "removed": 4, "changed": 1, "losing": 5}));
    assert!(double.requests().iter().all(|r| r.method == "GET"), "diff only reads");
    // The files alone against the cluster: --after is the whole state after.
    let files = write(dir.path(), "after.yaml", &format!("{SHOP}---\n{ISOLATE_PG}"));
    let whole = dbiso(&["diff", "--after", &files, "-o", "json"], &env).expect_code(1).json();
    assert_eq!(whole, d);

    // generate --diff: the generated policy keeps the owner on 5432 and cuts the rest.
    let g = dbiso(&["generate", "--diff", "-o", "json"], &env).expect_code(1).json();
    let got = changes(&g);
    assert!(got.contains(&("changed".to_string(), "api".to_string(), "pg".to_string())), "{got:?}");
    assert!(got.contains(&("removed".to_string(), "web".to_string(), "pg".to_string())), "{got:?}");
    let api = g["entries"].as_array().unwrap().iter().find(|e| e["src"]["name"] == "api" && e["dst"]["name"] == "pg").unwrap();
    assert_eq!(api["after"], json!([{"protocol": "TCP", "port": 5432}]));
    assert!(double.list("networking.k8s.io/v1", "NetworkPolicy", Some("shop")).is_empty(), "generate --diff wrote");
    // Once applied, the same policies change nothing.
    dbiso(&["apply"], &env).expect_code(0);
    let again = dbiso(&["generate", "--diff"], &env).expect_code(0);
    assert_eq!(again.stdout, "No connection changes.\n");
}

#[test]
fn generate_diff_on_the_demo_chart_keeps_every_owner_and_cuts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "demo.yaml", &rendered_demo());
    let d = dbiso(&["generate", "--diff", "-f", &file, "-n", NS, "--isolate-all", "-o", "json"], &[]).expect_code(1).json();
    assert_eq!(d["removesConnections"], true);
    let entries = d["entries"].as_array().unwrap();
    let into = |db: &str| -> Vec<(&str, &str)> {
        entries.iter().filter(|e| e["dst"]["name"] == db).map(|e| (e["src"]["name"].as_str().or(e["src"]["cidr"].as_str()).unwrap(), e["change"].as_str().unwrap())).collect()
    };
    let core = into("postgres-core");
    for owner in ["api-gateway", "platform-services", "db-migrate"] {
        assert!(core.contains(&(owner, "changed")), "{owner} keeps postgres-core, narrowed: {core:?}");
    }
    assert!(core.contains(&("frontend", "removed")), "{core:?}");
    assert!(!core.iter().any(|(_, c)| *c == "added"), "{core:?}");
    // Narrowed to the frontend: it only loses, and only databases.
    let f = dbiso(&["generate", "--diff", "-f", &file, "-n", NS, "--isolate-all", "-o", "json", "--focus", "deploy/frontend"], &[]).expect_code(1).json();
    for e in f["entries"].as_array().unwrap() {
        assert_eq!((e["src"]["name"].as_str(), e["change"].as_str()), (Some("frontend"), Some("removed")), "{e}");
        assert!(["postgres-core", "postgres-llm", "redis"].contains(&e["dst"]["name"].as_str().unwrap()), "{e}");
    }
}

#[test]
fn reach_draws_graphs_and_tables_and_narrows_to_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "shop.yaml", &format!("{SHOP}---\n{ISOLATE_PG}"));
    let dot = dbiso(&["reach", "-f", &file, "-o", "dot"], &[]).expect_code(0).stdout;
    assert!(dot.starts_with("digraph connectivity {\n") && dot.ends_with("}\n"), "{dot}");
    assert!(dot.contains("subgraph \"cluster_0\" {\n    label=\"namespace shop\";"), "{dot}");
    assert!(dot.contains("\"StatefulSet/shop/pg\" [label=\"StatefulSet\\npg\\n(database)\", shape=cylinder"), "{dot}");
    let mermaid = dbiso(&["reach", "-f", &file, "-o", "mermaid"], &[]).expect_code(0).stdout;
    assert!(mermaid.starts_with("flowchart LR\n  subgraph ns0[\"namespace shop\"]\n"), "{mermaid}");
    let md = dbiso(&["reach", "-f", &file, "-o", "md"], &[]).expect_code(0).stdout;
    assert!(md.contains("| `Deployment/shop/api` | `StatefulSet/shop/pg` (database) | TCP 5432 |"), "{md}");
    let csv = dbiso(&["reach", "-f", &file, "-o", "csv"], &[]).expect_code(0).stdout;
    assert!(csv.lines().any(|l| l == "Deployment,shop,api,false,StatefulSet,shop,pg,true,TCP 5432,direct"), "{csv}");
    let txt = dbiso(&["reach", "-f", &file, "-o", "txt", "--focus", "sts/pg", "-n", "shop"], &[]).expect_code(0).stdout;
    assert!(!txt.is_empty() && txt.lines().all(|l| l.contains("StatefulSet/shop/pg")), "{txt}");
    // A format a command does not write is refused, naming the ones it does.
    for (cmd, o, says) in [
        ("audit", "dot", "-o dot is not supported by `audit`; it prints table, wide, json, yaml, md, csv"),
        ("explain", "csv", "-o csv is not supported by `explain`; it prints table, wide, json, yaml, md, dot, mermaid"),
        ("generate", "mermaid", "-o mermaid is only supported by `reach`, `diff` and `generate --diff`"),
    ] {
        let mut args = vec![cmd, "-f", &file, "-o", o];
        if cmd == "explain" {
            args.extend(["deploy/api", "sts/pg", "-n", "shop"]);
        }
        let r = dbiso(&args, &[]).expect_code(2);
        assert!(r.stderr.contains(says), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
}
