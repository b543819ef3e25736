//! The changes contract of every mutating command, end to end against the API double with the
//! built binaries: `--dry-run=client` prints a unified diff per object (rollback included) and
//! writes nothing; `-o yaml` prints whole objects that pass strict schema validation
//! (kubernetes-validate for Kubernetes kinds, Istio's CRD schemas for Istio's) and are what the
//! API server holds once the command runs for real; `-o json` is a kubectl `List` of the same
//! objects; an `-o` value a command does not write is refused (exit 2) naming the ones it does.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{Run, bin, fixture, run};
use serde_json::{Value, json};

const NS: &str = "pyairtable";

/// The demo chart's objects (below the fixture's `# demo chart` line), a namespace without mesh
/// labels, an Istio control plane and the default IngressClass.
fn double() -> BlockingDouble {
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(fixture("tests/e2e/fixtures/platform.yaml")).unwrap();
    let chart = &text[text.find("\n# demo chart").expect("demo chart marker")..];
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        apiserver_double::istiod(None),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
               "spec": {"controller": "k8s.io/ingress-nginx"}}),
    ];
    docs.extend(apiserver_double::parse_documents(chart).unwrap().into_iter().filter(|d| d["kind"] != "Pod"));
    for doc in docs {
        d.create(doc).unwrap();
    }
    d
}

type Env = e2e::DoubleEnv;

fn env(d: &BlockingDouble) -> Env {
    Env::new(d, NS)
}

fn mm(e: &Env, args: &[&str]) -> Run {
    e.mesh_migrate(args)
}

fn writes(d: &BlockingDouble) -> Vec<String> {
    d.requests().into_iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect()
}

/// The documents of a YAML stream, parsed.
fn documents(yaml: &str) -> Vec<Value> {
    apiserver_double::parse_documents(yaml).unwrap()
}

/// `Kind/namespace/name` of an object, as the diff headers name it.
fn name(o: &Value) -> String {
    let (kind, name) = (o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap());
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

use e2e::normal_object as normal;

fn live(d: &BlockingDouble, o: &Value) -> Option<Value> {
    let ns = o["metadata"]["namespace"].as_str();
    d.get(o["apiVersion"].as_str().unwrap(), o["kind"].as_str().unwrap(), ns, o["metadata"]["name"].as_str().unwrap()).map(|v| normal(&v))
}

/// The contract for one command, before it runs for real: the diff names every object the
/// objects list has (and more only for deletes), nothing is written, `-o yaml` validates and
/// `-o json` is the same objects as a List. Returns the objects.
fn contract(d: &BlockingDouble, e: &Env, args: &[&str]) -> Vec<Value> {
    let before = d.snapshot();
    d.clear_requests();
    let diff = mm(e, &[args, &["--dry-run=client"]].concat()).expect_code(0);
    let yaml = mm(e, &[args, &["--dry-run=client", "-o", "yaml"]].concat()).expect_code(0);
    let json = mm(e, &[args, &["--dry-run=client", "-o", "json"]].concat()).expect_code(0).json();
    assert_eq!(writes(d), Vec::<String>::new(), "{args:?}: a client dry run wrote");
    assert!(before.diff(&d.snapshot()).is_empty(), "{args:?}: {:#?}", before.diff(&d.snapshot()));
    let objects = documents(&yaml.stdout);
    assert!(!objects.is_empty(), "{args:?} changes something: {}", diff.stdout);
    // Whole objects: kubernetes-validate strict and Istio's CRD schemas, every Istio object checked.
    e2e::validate_objects(&objects);
    // The same objects as a kubectl List, the published `objectList` shape.
    e2e::validate_shape("objectList", &json);
    assert_eq!((json["apiVersion"].as_str(), json["kind"].as_str()), (Some("v1"), Some("List")));
    let items: Vec<Value> = json["items"].as_array().unwrap().iter().map(normal).collect();
    assert_eq!(items, objects.iter().map(normal).collect::<Vec<_>>(), "{args:?}: -o json and -o yaml differ");
    // A unified diff per object the command changes (the live object differs from the printed
    // one): each object's header pair, and hunks.
    for o in objects.iter().filter(|o| live(d, o).as_ref() != Some(&normal(o))) {
        let n = name(o);
        assert!(diff.stdout.contains(&format!("--- a/{n} (")) && diff.stdout.contains(&format!("+++ b/{n} (")), "{args:?}: no diff for {n}:\n{}", diff.stdout);
    }
    assert!(diff.stdout.lines().any(|l| l.starts_with("@@ ")), "{}", diff.stdout);
    assert!(!diff.stdout.contains("(dry run)"), "outcomes go to stderr under a client dry run: {}", diff.stdout);
    assert!(diff.stderr.contains("(dry run)"), "{}", diff.stderr);
    objects
}

#[test]
fn every_mutating_command_diffs_prints_whole_valid_objects_and_does_what_it_printed() {
    let d = double();
    let e = env(&d);
    let steps: [&[&str]; 3] = [
        &["expose", "--domain", "pyairtable.local", "--ingress-class", "nginx", "--host", "frontend=pyairtable.local", "--merge-existing"],
        &["enable", "--timeout", "30s"],
        &["mtls", "strict", "--force", "--timeout", "30s"],
    ];
    for args in steps {
        let objects = contract(&d, &e, args);
        if args[0] == "enable" {
            // Restarted workloads are printed whole, with their selector (the API requires it).
            let deploy = objects.iter().find(|o| o["kind"] == "Deployment").expect("enable restarts Deployments");
            assert!(deploy["spec"]["selector"]["matchLabels"].is_object(), "{deploy}");
        }
        mm(&e, args).expect_code(0);
        // What the preview said is what the API server holds.
        for o in &objects {
            assert_eq!(live(&d, o).as_ref(), Some(&normal(o)), "{args:?}: {} is not as previewed", name(o));
        }
    }

    // rollback: the same contract, from the journal; its objects are what it restores.
    let objects = contract(&d, &e, &["rollback"]);
    let diff = mm(&e, &["rollback", "--dry-run=client"]).expect_code(0).stdout;
    assert!(diff.contains("+++ b/PeerAuthentication/pyairtable/default (deleted)"), "{diff}");
    assert!(diff.contains(&format!("+++ b/Namespace/{NS} (restored)")), "{diff}");
    mm(&e, &["rollback", "--timeout", "30s"]).expect_code(0);
    for o in &objects {
        assert_eq!(live(&d, o).as_ref(), Some(&normal(o)), "rollback: {} is not as previewed", name(o));
    }
    assert!(d.get("security.istio.io/v1", "PeerAuthentication", Some(NS), "default").is_none());
}

#[test]
fn unsupported_output_formats_are_refused_naming_the_supported_ones() {
    let d = double();
    let e = env(&d);
    for args in [&["expose"][..], &["enable"], &["mtls", "strict"], &["rollback"], &["status"], &["precheck"], &["ns", "status", NS]] {
        let r = mm(&e, &[args, &["-o", "xml"]].concat());
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("'xml'") && r.stderr.contains("table, wide, json, yaml"), "{args:?}: {}", r.stderr);
    }
    assert_eq!(writes(&d), Vec::<String>::new());
    // post-render writes manifests: -o json without --report is refused, never YAML printed.
    let manifest = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports: [{port: 80}]\n";
    let r = run(&bin("mesh-migrate"), &["post-render", "-o", "json"], Some(manifest), &[]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{r:?}");
    assert!(r.stderr.contains("--report"), "{}", r.stderr);
    // dbiso's mutating commands write the shared formats only; spire-check refuses any other.
    let env = [("KUBECONFIG", e.kubeconfig.as_str())];
    for (command, format) in [("apply", "dot"), ("rollback", "csv")] {
        let r = run(&bin("dbiso"), &[command, "--dry-run=client", "-o", format], None, &env);
        assert_eq!(r.code, 2, "dbiso {command} -o {format}: {r:?}");
        assert!(r.stderr.contains(&format!("-o {format} is only supported by")) && r.stderr.contains(&format!("`{command}` prints table, wide, json or yaml")), "{}", r.stderr);
    }
    let r = run(&bin("spire-check"), &["check", "-o", "xml"], None, &env);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'xml'") && r.stderr.contains("json") && r.stderr.contains("yaml"), "{}", r.stderr);
    assert_eq!(writes(&d), Vec::<String>::new());
}
