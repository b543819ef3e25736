//! `kubectl mesh-migrate ns cleanup` end to end on the Zamaz-shaped platform, against the API
//! double: after create, shift and rollback, cleanup leaves both namespaces as they were before
//! the migration (the double's object dump, server-set fields aside, and real kubectl reading
//! them back); an object someone edited on the mesh side is kept and named, nothing deleted,
//! unless --force; dry runs write nothing. Also: the legacy workloads `ns rollback` re-creates
//! after `complete --delete-legacy` keep every annotation (real `kubectl apply` finds its
//! last-applied-configuration), and the Secret backups of the migration go once it is complete.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{DoubleEnv, Run, run, venv_tool};
use serde_json::{Value, json};

struct Env {
    double: BlockingDouble,
    kube: DoubleEnv,
}

fn env(seed: impl FnOnce(&BlockingDouble)) -> Env {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(e2e::root().join("tests/e2e/fixtures/ns-migrate/zamaz.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        double.create(doc).unwrap();
    }
    seed(&double);
    let kube = DoubleEnv::new(&double, "default");
    Env { double, kube }
}

impl Env {
    fn mm(&self, args: &[&str]) -> Run {
        self.kube.mesh_migrate(args)
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut all = vec!["--kubeconfig", self.kube.kubeconfig.as_str()];
        all.extend_from_slice(args);
        run(&venv_tool("kubectl"), &all, stdin, &[])
    }

    fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.double.get(api_version, kind, Some(ns), name)
    }

    /// Requests that could change something (not reads, not server-side dry runs).
    fn writes(&self) -> Vec<apiserver_double::RequestRecord> {
        self.double.requests().into_iter().filter(|r| r.method != "GET" && r.param("dryRun").as_deref() != Some("All")).collect()
    }

    /// Real kubectl's view of namespace `ns`: `Kind/name` of what it lists there.
    fn listed(&self, ns: &str) -> Vec<String> {
        let r = self
            .kubectl(&["get", "deployments,statefulsets,daemonsets,services,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets,horizontalpodautoscalers,virtualservices,destinationrules,gateways.networking.istio.io", "-n", ns, "-o", "json"], None)
            .expect_code(0);
        let mut names: Vec<String> =
            r.json()["items"].as_array().unwrap().iter().map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())).collect();
        names.sort();
        names
    }
}

#[test]
fn create_shift_rollback_cleanup_leaves_both_namespaces_as_before() {
    let e = env(|_| {});
    let before = e.double.snapshot();
    let legacy_before = e.listed("zamaz");
    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    e.mm(&["ns", "shift", "zamaz", "25"]).expect_code(0);
    // Not rolled back: refused, nothing changed.
    let r = e.mm(&["ns", "cleanup", "zamaz"]).expect_code(2);
    assert!(r.stderr.contains("the migration of zamaz is not rolled back: zamaz-mesh takes 25 % of its traffic"), "{}", r.stderr);
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    let rolled_back = e.double.snapshot();
    assert!(e.double.get("v1", "Namespace", None, "zamaz-mesh").is_some());

    // Dry runs: a diff per object it deletes, the objects it leaves as a List, nothing written.
    e.double.clear_requests();
    let d = e.mm(&["ns", "cleanup", "zamaz", "--dry-run=client"]).expect_code(0);
    assert!(d.stdout.contains("--- a/Deployment/zamaz-mesh/api (current)") && d.stdout.contains("+++ b/Deployment/zamaz-mesh/api (deleted)"), "{}", d.stdout);
    assert!(d.stdout.contains("+++ b/Namespace/zamaz-mesh (deleted)"), "{}", d.stdout);
    assert!(d.stderr.contains("namespace/zamaz-mesh deleted (dry run)"), "{}", d.stderr);
    assert!(!d.stdout.contains("deleted (dry run)"), "outcomes go to stderr under a client dry run: {}", d.stdout);
    let j = e.mm(&["ns", "cleanup", "zamaz", "--dry-run=client", "-o", "json"]).expect_code(0).json();
    assert_eq!((j["kind"].as_str(), j["items"].as_array().map(Vec::len)), (Some("List"), Some(0)), "everything goes: no object is left");
    assert!(e.writes().is_empty(), "a client dry run sends no write: {:?}", e.writes());
    // A server dry run sends the deletes (dryRun in their DeleteOptions), and nothing changes.
    let s = e.mm(&["ns", "cleanup", "zamaz", "--dry-run=server"]).expect_code(0);
    assert!(s.stdout.contains("namespace/zamaz-mesh deleted (server dry run)"), "{}", s.stdout);
    assert!(e.double.requests().iter().any(|r| r.method == "DELETE"));
    assert!(e.double.snapshot().diff(&rolled_back).is_empty(), "{:?}", e.double.snapshot().diff(&rolled_back));

    let r = e.mm(&["ns", "cleanup", "zamaz"]).expect_code(0);
    assert!(r.stdout.contains("namespace/zamaz-mesh deleted"), "{}", r.stdout);
    assert!(r.stdout.contains("deployment.apps/api deleted (namespace zamaz-mesh)"), "{}", r.stdout);
    // Both namespaces as before the migration: the journal gone, the mesh namespace gone.
    let diff = before.diff(&e.double.snapshot());
    assert!(diff.is_empty(), "the dump differs from before the migration:\n{}", diff.join("\n"));
    let ns = e.kubectl(&["get", "namespace", "zamaz-mesh"], None);
    assert_eq!(ns.code, 1, "{ns:?}");
    assert!(ns.stderr.contains("namespaces \"zamaz-mesh\" not found"), "{}", ns.stderr);
    assert_eq!(e.listed("zamaz"), legacy_before);
    // Nothing left to clean up: said so, exit 0.
    let again = e.mm(&["ns", "cleanup", "zamaz"]).expect_code(0);
    assert!(again.stdout.contains("nothing to clean up: no migration of zamaz is recorded"), "{}", again.stdout);
}

#[test]
fn an_edited_mesh_object_is_kept_and_reported_and_force_deletes_it() {
    let e = env(|_| {});
    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    // Someone edits a copy with real kubectl, and takes the marker off another.
    e.kubectl(&["patch", "deployment", "api", "-n", "zamaz-mesh", "--type", "merge", "-p", r#"{"spec":{"minReadySeconds":7}}"#], None).expect_code(0);
    e.kubectl(&["label", "service", "api", "-n", "zamaz-mesh", "mesh-migrate.meshmove.io/copied-from-"], None).expect_code(0);
    e.double.clear_requests();
    let before = e.double.snapshot();
    let r = e.mm(&["ns", "cleanup", "zamaz"]).expect_code(1);
    assert!(r.stderr.contains("2 object(s) changed by someone else since this tool wrote them; cleanup changed nothing"), "{}", r.stderr);
    assert!(r.stderr.contains("Deployment/zamaz-mesh/api: spec written by kubectl-patch"), "{}", r.stderr);
    assert!(r.stderr.contains("+  minReadySeconds: 7"), "the diff shows the edit: {}", r.stderr);
    assert!(r.stderr.contains("Service/zamaz-mesh/api: no longer carries the migration's marker"), "{}", r.stderr);
    assert!(e.writes().is_empty(), "{:?}", e.writes());
    assert!(e.double.snapshot().diff(&before).is_empty());

    // --force deletes the edited copy; the unmarked Service is kept, and so is the namespace.
    let r = e.mm(&["ns", "cleanup", "zamaz", "--force"]).expect_code(0);
    assert!(e.get("apps/v1", "Deployment", "zamaz-mesh", "api").is_none());
    assert!(e.get("v1", "Service", "zamaz-mesh", "api").is_some());
    assert!(r.stdout.contains("note: namespace zamaz-mesh is kept: it holds objects the migration did not create: Service/api"), "{}", r.stdout);
    assert_eq!(e.listed("zamaz-mesh"), ["Service/api"]);
    // Once that is gone, cleanup run again deletes the namespace and the journal.
    e.kubectl(&["delete", "service", "api", "-n", "zamaz-mesh"], None).expect_code(0);
    let r = e.mm(&["ns", "cleanup", "zamaz"]).expect_code(0);
    assert!(r.stdout.contains("namespace/zamaz-mesh deleted"), "{}", r.stdout);
    assert!(e.double.get("v1", "Namespace", None, "zamaz-mesh").is_none());
    assert!(e.get("v1", "ConfigMap", "zamaz", "mesh-migrate-journal").is_none());
}

#[test]
fn recreated_legacy_workloads_keep_their_annotations_and_kubectl_apply_finds_its_last_applied_configuration() {
    let e = env(|_| {});
    // The api Deployment as its team applies it, with real kubectl.
    let live = e.get("apps/v1", "Deployment", "zamaz", "api").unwrap();
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "zamaz", "annotations": {"team": "core"}},
        "spec": {"replicas": live["spec"]["replicas"], "selector": live["spec"]["selector"], "template": live["spec"]["template"]}});
    let text = manifest.to_string();
    e.kubectl(&["apply", "-f", "-"], Some(&text)).expect_code(0);
    // Applied again, the same manifest is unchanged: what the check below relies on.
    let r = e.kubectl(&["apply", "-f", "-"], Some(&text)).expect_code(0);
    assert!(r.stdout.contains("deployment.apps/api unchanged"), "{r:?}");
    let applied = e.get("apps/v1", "Deployment", "zamaz", "api").unwrap();
    let annotations = applied["metadata"]["annotations"].clone();
    assert!(annotations.get("kubectl.kubernetes.io/last-applied-configuration").is_some(), "{annotations}");

    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    e.mm(&["ns", "shift", "zamaz", "50"]).expect_code(0);
    // --force: the fixture's Ingress still serves the legacy side (no DNS to move here).
    e.mm(&["ns", "complete", "zamaz", "--delete-legacy", "--force"]).expect_code(0);
    assert!(e.get("apps/v1", "Deployment", "zamaz", "api").is_none());
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    let back = e.get("apps/v1", "Deployment", "zamaz", "api").unwrap();
    let mut want = annotations.clone();
    let mut got = back["metadata"]["annotations"].clone();
    // The deployment controller counts this object's rollouts anew.
    for a in [&mut want, &mut got] {
        a.as_object_mut().unwrap().shift_remove("deployment.kubernetes.io/revision");
    }
    assert_eq!(got, want);
    // kubectl apply merges against it: the same manifest changes nothing, and no warning that
    // the annotation is missing.
    let r = e.kubectl(&["apply", "-f", "-"], Some(&text)).expect_code(0);
    assert!(r.stdout.contains("deployment.apps/api unchanged"), "{r:?}");
    assert!(!r.stderr.contains("missing the kubectl.kubernetes.io/last-applied-configuration annotation"), "{}", r.stderr);
}

/// A mesh namespace that exists before the migration, holding a Secret of the legacy one's name.
fn earlier_mesh_namespace(d: &BlockingDouble) {
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zamaz-mesh"}})).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "zamaz-db", "namespace": "zamaz-mesh"},
                    "type": "Opaque", "data": {"password": "YW4tZWFybGllci1jb3B5"}}))
        .unwrap();
}

const BACKUP: &str = "zamaz-db.mesh-migrate-backup";

#[test]
fn secret_backups_go_once_the_migration_is_complete() {
    let e = env(earlier_mesh_namespace);
    e.mm(&["ns", "create", "zamaz", "--copy-secrets"]).expect_code(0);
    assert!(e.get("v1", "Secret", "zamaz-mesh", BACKUP).is_some(), "the Secret written over is backed up first");
    e.mm(&["ns", "shift", "zamaz", "50"]).expect_code(0);
    let r = e.mm(&["ns", "complete", "zamaz", "--force"]).expect_code(0);
    assert!(r.stdout.contains(&format!("secret/{BACKUP} deleted (namespace zamaz-mesh) (backup no longer needed)")), "{}", r.stdout);
    let k = e.kubectl(&["get", "secret", BACKUP, "-n", "zamaz-mesh"], None);
    assert_eq!(k.code, 1, "{k:?}");
    let cm = e.get("v1", "ConfigMap", "zamaz", "mesh-migrate-journal").unwrap();
    let journal: Value = serde_json::from_str(cm["data"]["journal.json"].as_str().unwrap()).unwrap();
    assert!(!journal["entries"].as_array().unwrap().iter().any(|x| x["prior"]["state"] == "secret"), "no entry names a backup that is gone");
    assert!(journal["steps"].as_array().unwrap().iter().any(|s| s["step"] == "ns-complete: Secret backups deleted"));
}

#[test]
fn cleanup_restores_what_existed_before_and_keeps_a_namespace_the_migration_did_not_create() {
    let e = env(earlier_mesh_namespace);
    let secret_before = e.get("v1", "Secret", "zamaz-mesh", "zamaz-db").unwrap();
    e.mm(&["ns", "create", "zamaz", "--copy-secrets"]).expect_code(0);
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    let r = e.mm(&["ns", "cleanup", "zamaz"]).expect_code(0);
    assert!(r.stdout.contains("note: namespace zamaz-mesh existed before the migration: kept"), "{}", r.stdout);
    assert!(r.stdout.contains("Secret/zamaz-mesh/zamaz-db existed before the migration: kept, with its content from before the migration"), "{}", r.stdout);
    // The Secret has its earlier content again (from its backup, which is gone now); the
    // copies are gone, and the namespace has no labels of the migration.
    let secret = e.get("v1", "Secret", "zamaz-mesh", "zamaz-db").unwrap();
    assert_eq!(secret.get("data"), secret_before.get("data"));
    assert!(e.get("v1", "Secret", "zamaz-mesh", BACKUP).is_none());
    assert_eq!(e.listed("zamaz-mesh"), ["Secret/zamaz-db"]);
    let ns = e.double.get("v1", "Namespace", None, "zamaz-mesh").unwrap();
    assert!(ns["metadata"]["labels"].get("mesh-migrate.meshmove.io/copied-from").is_none(), "{ns}");
    assert!(e.get("v1", "ConfigMap", "zamaz", "mesh-migrate-journal").is_none());
}
