//! No Secret value in the journal, end to end: a unique value is planted in every Secret the
//! commands touch or could record — the legacy Secrets `ns create --copy-secrets` copies, the
//! Secrets already in the mesh namespace it copies over, the Secrets of a namespace `enable`
//! and `rollback` work on — and neither the journal ConfigMap (nor any other ConfigMap in the
//! cluster), nor stdout, nor stderr of the real binary may carry it, in clear text or base64.
//! Nor may a ConfigMap carry what would let its reader test guesses of a value: the plain
//! SHA-256 of any value of those Secrets, or the unkeyed hash of a Secret's content that
//! journals of earlier versions recorded (the journal's fingerprints are keyed, with the key in
//! a Secret). The Secrets the tool wrote over come back exactly from their backups.

use std::collections::BTreeMap;
use std::path::PathBuf;

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{Run, bin, fixture, root, run};
use serde_json::{Value, json};

const LEGACY: &str = "S3cretLegacyCopy5531";
const MESH_PRIOR: &str = "S3cretMeshPrior6642";
const FOREIGN: &str = "S3cretForeignOwner7753";
const ENABLE: &str = "S3cretEnableNs8864";
const ALL: [&str; 4] = [LEGACY, MESH_PRIOR, FOREIGN, ENABLE];

fn b64(s: &str) -> String {
    base64_of(s.as_bytes())
}

fn base64_of(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Every form a planted value can take in text: itself, and its base64 at each of the three
/// alignments it can have inside a longer value (cut to the characters that do not depend on
/// its neighbours).
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    for shift in 0..3 {
        let e = b64(&secret[shift..]);
        out.push(e[4..e.len() - 4].to_string());
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for secret in ALL {
        for f in forms(secret) {
            assert!(!text.contains(&f), "{what} carries the planted secret {secret} (as {f}):\n{text}");
        }
    }
}

#[track_caller]
fn assert_run_clean(what: &str, r: &Run) {
    assert_clean(&format!("{what}: stdout"), &r.stdout);
    assert_clean(&format!("{what}: stderr"), &r.stderr);
}

/// The SHA-256 of `bytes` as text may carry it: hex and base64.
fn sha256_forms(bytes: &[u8]) -> Vec<String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    vec![hex.clone(), hex.to_uppercase(), base64_of(digest.as_ref())]
}

/// What a reader of ConfigMaps could test guesses against, for a Secret of `content` (key to
/// plain value): the SHA-256 of each value, and the unkeyed content hash earlier journals
/// recorded (SHA-256 over a version tag, then each key and value in key order with big-endian
/// u64 lengths; the encoding `kube::plan::fingerprint` documents).
fn unkeyed_hashes(content: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = content.values().flat_map(|v| sha256_forms(v.as_bytes())).collect();
    let mut message = b"meshmove secret content v1\0".to_vec();
    for (k, v) in content {
        message.extend((k.len() as u64).to_be_bytes());
        message.extend(k.as_bytes());
        message.extend((v.len() as u64).to_be_bytes());
        message.extend(v.as_bytes());
    }
    out.extend(sha256_forms(&message));
    out
}

/// Every ConfigMap in the cluster (the journals among them): no planted value, and none of
/// `hashes` (see [`unkeyed_hashes`]).
#[track_caller]
fn assert_config_maps_clean(what: &str, d: &BlockingDouble, hashes: &[String]) -> usize {
    let cms = d.list("v1", "ConfigMap", None);
    for cm in &cms {
        let text = cm.to_string();
        let name = format!("{what}: ConfigMap {}/{}", cm["metadata"]["namespace"], cm["metadata"]["name"]);
        assert_clean(&name, &text);
        for h in hashes {
            assert!(!text.contains(h.as_str()), "{name} carries an unkeyed hash of a planted Secret ({h}):\n{text}");
        }
    }
    cms.iter().filter(|cm| cm["metadata"]["name"] == "mesh-migrate-journal").count()
}

struct Env {
    double: BlockingDouble,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// The unkeyed hashes of every Secret planted ([`unkeyed_hashes`]).
    hashes: Vec<String>,
}

impl Env {
    fn mm(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&bin("mesh-migrate"), &all, None, &[("USER", "alice")])
    }
}

/// The content of [`secret`]'s Secret: key to plain value.
fn secret_content(value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATABASE_URL".to_string(), format!("postgres://api:{value}@db.shop.svc.cluster.local:5432/api")),
        ("token".to_string(), value.to_string()),
    ])
}

fn secret(ns: &str, name: &str, value: &str) -> Value {
    let data: serde_json::Map<String, Value> = secret_content(value).into_iter().map(|(k, v)| (k, json!(b64(&v)))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": {"app": "api"}}, "type": "Opaque",
           "data": data})
}

/// The namespace-migration fixture with the planted value in its Secret and a second one, and
/// `shop-mesh` already holding a Secret of the same name with another planted value (written
/// by the tool's field manager, as by an earlier migration whose journal is gone).
fn ns_env() -> Env {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/shop.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        let doc = if doc["kind"] == "Secret" { secret("shop", doc["metadata"]["name"].as_str().unwrap(), LEGACY) } else { doc };
        double.create(doc).unwrap();
    }
    double.create(secret("shop", "api-extra", LEGACY)).unwrap();
    double.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-mesh"}})).unwrap();
    double.apply(secret("shop-mesh", "api-db", MESH_PRIOR), "kubectl-mesh-migrate", false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap();
    let hashes = [LEGACY, MESH_PRIOR, FOREIGN].iter().flat_map(|v| unkeyed_hashes(&secret_content(v))).collect();
    Env { double, _dir: dir, kubeconfig, hashes }
}

#[test]
fn ns_create_over_existing_secrets_and_rollback_keep_every_secret_value_out_of_the_journal_and_the_streams() {
    let e = ns_env();
    let prior = e.double.get("v1", "Secret", Some("shop-mesh"), "api-db").unwrap();

    let dry = e.mm(&["ns", "create", "shop", "--copy-secrets", "--dry-run=client"]).expect_code(0);
    assert_run_clean("ns create --dry-run=client", &dry);
    let r = e.mm(&["ns", "create", "shop", "--copy-secrets"]).expect_code(0);
    assert_run_clean("ns create --copy-secrets", &r);
    assert_eq!(assert_config_maps_clean("after ns create", &e.double, &e.hashes), 1);
    // The copy went over the existing Secret; its prior content is in the backup Secret, and the
    // journal names it by a fingerprint keyed with the key Secret beside it.
    let copied = e.double.get("v1", "Secret", Some("shop-mesh"), "api-db").unwrap();
    assert_ne!(copied["data"], prior["data"]);
    let backup = e.double.get("v1", "Secret", Some("shop-mesh"), "api-db.mesh-migrate-backup").expect("backup Secret");
    assert_eq!(backup["data"], prior["data"]);
    let journal = e.double.get("v1", "ConfigMap", Some("shop"), "mesh-migrate-journal").unwrap();
    let journal: Value = serde_json::from_str(journal["data"]["journal.json"].as_str().unwrap()).unwrap();
    let entry = journal["entries"].as_array().unwrap().iter().find(|x| x["target"]["name"] == "api-db" && x["target"]["namespace"] == "shop-mesh").unwrap();
    assert_eq!(entry["prior"]["state"], "secret", "{entry}");
    assert_eq!(entry["prior"]["backup"], "api-db.mesh-migrate-backup");
    assert!(entry["prior"]["fingerprint"].as_str().unwrap().starts_with("hmac-sha256:"), "{entry}");
    assert_eq!(journal["fingerprintKey"], "mesh-migrate-journal-key");
    let key = e.double.get("v1", "Secret", Some("shop"), "mesh-migrate-journal-key").expect("the key Secret beside the journal");
    assert_eq!(key["immutable"], true);
    assert!(entry["prior"]["object"].get("data").is_none());

    // Reruns and status show nothing either.
    assert_run_clean("ns create again", &e.mm(&["ns", "create", "shop", "--copy-secrets"]).expect_code(0));
    assert_run_clean("ns status", &e.mm(&["ns", "status", "shop"]).expect_code(0));
    assert_run_clean("ns status -o json", &e.mm(&["ns", "status", "shop", "-o", "json"]).expect_code(0));
    assert_run_clean("ns status -o yaml", &e.mm(&["ns", "status", "shop", "-o", "yaml"]).expect_code(0));
    assert_run_clean("ns rollback", &e.mm(&["ns", "rollback", "shop"]).expect_code(0));
    assert_config_maps_clean("after ns rollback", &e.double, &e.hashes);

    // The in-place rollback of the namespace's journal undoes what ns create recorded: the
    // Secret it wrote over comes back exactly, from its backup, which is then deleted.
    let rb = e.mm(&["rollback", "-n", "shop", "--timeout", "30s"]);
    assert_run_clean("rollback", &rb);
    let rb = rb.expect_code(0);
    assert!(rb.stdout.contains("secret/api-db configured") && rb.stdout.contains("(restored)"), "{}", rb.stdout);
    let back = e.double.get("v1", "Secret", Some("shop-mesh"), "api-db").unwrap();
    assert_eq!(back["data"], prior["data"]);
    assert_eq!(back["metadata"]["labels"], prior["metadata"]["labels"]);
    assert!(e.double.get("v1", "Secret", Some("shop-mesh"), "api-db.mesh-migrate-backup").is_none());
    assert!(e.double.get("v1", "Secret", Some("shop-mesh"), "api-extra").is_none(), "a copy the tool created is deleted");
    assert_eq!(assert_config_maps_clean("after rollback", &e.double, &e.hashes), 0, "the journal is gone");
    assert!(e.double.get("v1", "Secret", Some("shop"), "mesh-migrate-journal-key").is_none(), "the key goes with the journal");
}

#[test]
fn a_copy_refused_by_another_owner_leaves_no_secret_value_behind() {
    let e = ns_env();
    // Someone else's Secret of the same name with another value: server-side apply conflicts.
    e.double.apply(secret("shop-mesh", "api-extra", FOREIGN), "kubectl-client-side-apply", false).unwrap();
    let r = e.mm(&["ns", "create", "shop", "--copy-secrets"]);
    assert_run_clean("ns create over a foreign Secret", &r);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("api-extra"), "{}", r.stderr);
    assert_config_maps_clean("after the refused copy", &e.double, &e.hashes);
    assert_eq!(e.double.get("v1", "Secret", Some("shop-mesh"), "api-extra").unwrap()["data"]["token"], b64(FOREIGN));
}

#[test]
fn enable_and_rollback_keep_every_secret_value_out_of_the_journal_and_the_streams() {
    const NS: &str = "pyairtable";
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(fixture("tests/e2e/fixtures/platform.yaml")).unwrap();
    let chart = &text[text.find("\n# demo chart").expect("demo chart marker")..];
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        apiserver_double::istiod(None),
    ];
    docs.extend(apiserver_double::parse_documents(chart).unwrap().into_iter().filter(|d| d["kind"] != "Pod"));
    let mut planted = 0;
    let mut hashes = Vec::new();
    for mut doc in docs {
        if doc["kind"] == "Secret" {
            // Every value of every Secret carries the planted one.
            let mut content = BTreeMap::new();
            for field in ["data", "stringData"] {
                if let Some(m) = doc.get_mut(field).and_then(Value::as_object_mut) {
                    for (k, v) in m.iter_mut() {
                        let text = format!("x-{ENABLE}-y");
                        content.insert(k.clone(), text.clone());
                        *v = json!(if field == "data" { b64(&text) } else { text });
                        planted += 1;
                    }
                }
            }
            hashes.extend(unkeyed_hashes(&content));
        }
        double.create(doc).unwrap();
    }
    assert!(planted >= 4, "the platform's Secrets carry the planted value");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), NS).unwrap();
    let e = Env { double, _dir: dir, kubeconfig, hashes };
    for args in [&["precheck"][..], &["enable", "--dry-run=client"], &["enable", "--timeout", "30s"], &["status"], &["status", "-o", "yaml"]] {
        let r = e.mm(args);
        assert_run_clean(&args.join(" "), &r);
        assert!(r.code == 0 || args[0] == "precheck", "{args:?}: {r:?}");
    }
    assert_eq!(assert_config_maps_clean("after enable", &e.double, &e.hashes), 1);
    assert_run_clean("rollback", &e.mm(&["rollback", "--timeout", "30s"]).expect_code(0));
    assert_eq!(assert_config_maps_clean("after rollback", &e.double, &e.hashes), 0);
}
