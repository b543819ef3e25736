//! Secrets and the journal, against the API-server double: a Secret the tool writes over or
//! deletes is journaled by reference and a keyed fingerprint of its content, its content kept
//! in a backup Secret; a planted value, its SHA-256 or an unkeyed hash of the Secret never
//! reaches the journal ConfigMap, an outcome, a progress event or an error; rollback restores
//! exactly what it can prove (also from journals of earlier versions, with unkeyed hashes) and
//! refuses, naming the Secret, what it cannot; a journal that would pass 1 MiB is refused
//! before anything is written.

use std::time::Duration;

use apiserver_double::{Double, DoubleHandle, DoubleOptions};
use meshmove_kube::cluster::{ClusterOptions, Connection};
use meshmove_kube::plan::{
    self, Change, DryRun, ExecOptions, JOURNAL_LIMIT, JOURNAL_NAME, Plan, PlanError, Prior, Progress, RollbackOptions, Target,
    fingerprint::{self, Fingerprints},
};
use serde_json::{Value, json};

const NS: &str = "shop";
/// The planted value: in `data` (base64) of every Secret the double holds before a step.
const PLANTED: &str = "S3cretPlantedInTheJournalTest6121";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret_obj(name: &str, value: &str, extra_label: Option<&str>) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "shop"}},
        "type": "kubernetes.io/basic-auth",
        "data": {"username": b64("shop"), "password": b64(value)}});
    if let Some(l) = extra_label {
        s["metadata"]["labels"]["copied-by"] = json!(l);
    }
    s
}

async fn double() -> DoubleHandle {
    let d = Double::start(DoubleOptions::default()).await.unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})).unwrap();
    // Written by the tool's field manager (as by an earlier migration whose journal is gone),
    // so that applying other values over them is no conflict.
    for name in ["db", "cache"] {
        d.apply(secret_obj(name, &format!("{PLANTED}-{name}"), None), plan::FIELD_MANAGER, false).unwrap();
    }
    d
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir) -> Connection {
    let kubeconfig = d.write_kubeconfig(dir.path(), NS).unwrap();
    let options = ClusterOptions { kubeconfig: Some(kubeconfig), request_timeout: Some(Duration::from_millis(500)), ..ClusterOptions::default() };
    options.connect().await.unwrap()
}

fn secret_target(name: &str) -> Target {
    Target::new("v1", "Secret", Some(NS), name)
}

fn options() -> ExecOptions {
    ExecOptions { dry_run: DryRun::None, timeout: Duration::from_secs(10), actor: "tester@double".into() }
}

fn rollback_options(force: bool) -> RollbackOptions {
    RollbackOptions { timeout: Duration::from_secs(10), force, actor: "tester@double".into(), ..RollbackOptions::default() }
}

/// The planted value in every form it can take: plain, base64 (also cut so that its padding
/// and alignment do not matter), and the prefix every planted value shares.
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string(), PLANTED.to_string()];
    for shift in 0..3 {
        let e = b64(&value[shift..]);
        out.push(e[4..e.len() - 4].to_string());
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, text: &str, values: &[&str]) {
    for v in values {
        for f in forms(v) {
            assert!(!text.contains(&f), "{what} carries the planted secret ({f}):\n{text}");
        }
    }
}

fn journal_text(d: &DoubleHandle) -> String {
    d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).map(|cm| cm.to_string()).unwrap_or_default()
}

/// Apply over one Secret (new value, new label) and delete another, in one step.
fn overwrite_plan(new_value: &str) -> Plan {
    let mut p = Plan::new("ns-create", NS);
    p.push(Change::Apply { object: secret_obj("db", new_value, Some("mesh-migrate")) }).push(Change::Delete { target: secret_target("cache") });
    p
}

#[tokio::test]
async fn secrets_are_journaled_by_hash_backed_up_as_secrets_and_rolled_back_exactly() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let before_db = d.get("v1", "Secret", Some(NS), "db").unwrap();
    let before_cache = d.get("v1", "Secret", Some(NS), "cache").unwrap();
    let new_value = format!("{PLANTED}-written");
    let mut seen = String::new();
    let outcomes = plan::execute(&conn, &overwrite_plan(&new_value), &options(), &mut |p: Progress| seen.push_str(&format!("{p:?}\n"))).await.unwrap();
    seen.push_str(&format!("{outcomes:?}"));
    let planted = [format!("{PLANTED}-db"), format!("{PLANTED}-cache"), new_value.clone()];
    let planted: Vec<&str> = planted.iter().map(String::as_str).collect();
    assert_clean("the journal ConfigMap", &journal_text(&d), &planted);
    assert_clean("progress and outcomes", &seen, &planted);

    // The journal names each Secret with the keyed fingerprint of its content; the content is in
    // the backups.
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    let prints = Fingerprints::read(&conn, &journal).await.unwrap();
    for (name, before) in [("db", &before_db), ("cache", &before_cache)] {
        let Prior::Secret { fingerprint, backup, object } = &journal.entry(&secret_target(name)).unwrap().prior else { panic!("{journal:?}") };
        assert!(fingerprint.starts_with(fingerprint::KEYED), "{fingerprint}");
        assert!(prints.check(before, fingerprint).same());
        assert_eq!(object["type"], "kubernetes.io/basic-auth");
        let b = d.get("v1", "Secret", Some(NS), backup).expect("the backup Secret");
        assert_eq!(b["data"], before["data"], "the backup holds the prior content");
        assert_eq!(b["immutable"], true);
    }
    let applied = journal.entry(&secret_target("db")).unwrap();
    assert!(prints.check(&secret_obj("db", &new_value, None), applied.applied_fingerprint.as_deref().unwrap()).same());
    assert!(d.get("v1", "Secret", Some(NS), "cache").is_none());

    // A rerun changes nothing and backs up nothing twice; the live db now differs from its prior.
    plan::execute(&conn, &overwrite_plan(&new_value), &options(), &mut |_| {}).await.unwrap();
    assert_clean("the journal ConfigMap after a rerun", &journal_text(&d), &planted);

    let mut seen = String::new();
    let outcomes = plan::rollback(&conn, NS, &rollback_options(false), &mut |p| seen.push_str(&format!("{p:?}\n"))).await.unwrap();
    seen.push_str(&format!("{outcomes:?}"));
    assert_clean("rollback's progress and outcomes", &seen, &planted);
    for (name, before) in [("db", &before_db), ("cache", &before_cache)] {
        let now = d.get("v1", "Secret", Some(NS), name).unwrap();
        assert_eq!(now["data"], before["data"], "{name}");
        assert_eq!(now["type"], before["type"], "{name}");
        assert_eq!(now["metadata"]["labels"], before["metadata"]["labels"], "{name}");
        assert!(d.get("v1", "Secret", Some(NS), &format!("{name}.mesh-migrate-backup")).is_none(), "backup of {name} deleted");
    }
    assert!(d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).is_none(), "journal removed");
}

#[tokio::test]
async fn rollback_refuses_for_a_secret_whose_prior_content_it_cannot_prove_and_names_it() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let new_value = format!("{PLANTED}-written");
    let mut p = overwrite_plan(&new_value);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS}, "data": {"a": "1"}});
    p.push(Change::Apply { object: cm });
    plan::execute(&conn, &p, &options(), &mut |_| {}).await.unwrap();
    // Someone deletes the backup of db: the live db holds what the tool wrote, not its prior.
    d.delete("v1", "Secret", Some(NS), "db.mesh-migrate-backup").unwrap();
    let before = d.snapshot();
    let err = plan::rollback(&conn, NS, &rollback_options(false), &mut |_| {}).await.unwrap_err();
    let PlanError::SecretsNotRestorable { secrets } = &err else { panic!("{err}") };
    assert_eq!(secrets.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), vec![secret_target("db")]);
    // The live db holds what the tool wrote (changed since), and its backup is gone.
    assert_eq!(
        secrets[0].1,
        plan::secret::SecretLost::BackupGone { live: plan::secret::LiveSecret::Changed, backup: "db.mesh-migrate-backup".into() }
    );
    let msg = err.to_string();
    assert!(msg.contains("Secret/shop/db") && msg.contains("db.mesh-migrate-backup is gone") && msg.contains("--force"), "{msg}");
    assert_clean("the refusal", &msg, &[&new_value, &format!("{PLANTED}-db")]);
    assert!(d.snapshot().diff(&before).is_empty(), "rollback refused whole: {:?}", d.snapshot().diff(&before));

    // With --force: db is left as it is, everything else is rolled back.
    let outcomes = plan::rollback(&conn, NS, &rollback_options(true), &mut |_| {}).await.unwrap();
    let db = outcomes.iter().find(|o| o.target == secret_target("db")).unwrap();
    assert_eq!(db.action, plan::Action::Skipped, "{db}");
    assert!(db.detail.contains("not recoverable"), "{db}");
    assert!(d.get("v1", "ConfigMap", Some(NS), "settings").is_none());
    assert!(d.get("v1", "Secret", Some(NS), "cache").is_some(), "cache restored from its backup");
    assert_eq!(d.get("v1", "Secret", Some(NS), "db").unwrap()["data"]["password"], b64(&new_value), "db left as it is");
}

#[tokio::test]
async fn a_journal_past_one_mib_is_refused_before_any_write_naming_its_biggest_entries() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    // Six ConfigMaps of 200 KiB each exist; a step applies over all of them.
    let big = "x".repeat(200 * 1024);
    let mut p = Plan::new("expose", NS);
    for i in 0..6 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("big-{i}"), "namespace": NS}, "data": {"blob": big}});
        d.apply(cm.clone(), plan::FIELD_MANAGER, false).unwrap();
        let mut mine = cm.clone();
        mine["data"]["blob"] = json!("small");
        p.push(Change::Apply { object: mine });
    }
    d.clear_requests();
    let err = plan::execute(&conn, &p, &options(), &mut |_| {}).await.unwrap_err();
    let PlanError::JournalTooLarge { size, limit, biggest, .. } = &err else { panic!("{err}") };
    assert!(*size > *limit && *limit < JOURNAL_LIMIT, "{err}");
    assert_eq!(biggest.len(), 5);
    assert!(biggest.iter().all(|(what, n)| what.starts_with("ConfigMap/shop/big-") && *n > 200 * 1024), "{biggest:?}");
    let msg = err.to_string();
    assert!(msg.contains(&size.to_string()) && msg.contains("nothing was written") && msg.contains("ConfigMap/shop/big-"), "{msg}");
    let writes: Vec<_> = d.requests().into_iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(writes.is_empty(), "nothing may be written: {writes:?}");
    assert!(d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).is_none());
    assert_eq!(err.class(), plan::ErrorClass::Input);

    // Half of them fit.
    let mut half = Plan::new("expose", NS);
    half.changes = p.changes[..3].to_vec();
    plan::execute(&conn, &half, &options(), &mut |_| {}).await.unwrap();
    let stored = d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).unwrap();
    assert!(stored["data"]["journal.json"].as_str().unwrap().len() <= JOURNAL_LIMIT);
}

#[tokio::test]
async fn previews_and_drifts_mask_secret_values() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let new_value = format!("{PLANTED}-written");
    let p = overwrite_plan(&new_value);
    let previews = plan::preview(&conn, &p).await.unwrap();
    let text: String = previews.iter().map(|p| p.diff.clone()).collect();
    assert!(text.contains("password: '*** (after)'") || text.contains("password: \"*** (after)\""), "{text}");
    assert_clean("the preview", &text, &[&new_value, &format!("{PLANTED}-db"), &format!("{PLANTED}-cache")]);
    plan::execute(&conn, &p, &options(), &mut |_| {}).await.unwrap();
    // Someone edits the Secret the tool wrote: rollback reports the drift without the values.
    let edited = format!("{PLANTED}-edited");
    d.apply(secret_obj("db", &edited, Some("mesh-migrate")), "kubectl-edit", true).unwrap();
    let err = plan::rollback(&conn, NS, &rollback_options(false), &mut |_| {}).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PlanError::Drifts { .. }) && msg.contains("data changed since this tool wrote it"), "{msg}");
    assert_clean("the drift report", &msg, &[&new_value, &edited, &format!("{PLANTED}-db")]);
}

#[tokio::test]
async fn a_plan_setting_single_secret_values_is_refused_before_anything_is_sent() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("enable", NS);
    p.push(Change::Set { target: secret_target("db"), fields: [("/data/password".to_string(), Some(json!(b64("x"))))].into() });
    d.clear_requests();
    let err = plan::execute(&conn, &p, &options(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, PlanError::Invalid { .. }) && err.to_string().contains("single values of a Secret"), "{err}");
    assert!(d.requests().is_empty());
}

/// Lower-case hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a reader of ConfigMaps could test guesses against: the plain SHA-256 of each planted
/// value (hex and base64) and the unkeyed hash of each Secret's content as journals of earlier
/// versions recorded it. None may be in the journal ConfigMap.
#[track_caller]
fn assert_no_unkeyed_hash(text: &str, values: &[&str], secrets: &[&Value]) {
    use base64::Engine as _;
    for v in values {
        let digest = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
        for form in [sha256_hex(v.as_bytes()), base64::engine::general_purpose::STANDARD.encode(digest.as_ref())] {
            assert!(!text.contains(&form), "the journal carries the plain SHA-256 of a planted value ({form}):\n{text}");
        }
    }
    for s in secrets {
        let legacy = fingerprint::legacy_sha256(s);
        assert!(!text.contains(legacy.trim_start_matches(fingerprint::LEGACY)), "the journal carries an unkeyed hash ({legacy}):\n{text}");
    }
}

#[tokio::test]
async fn the_journal_holds_keyed_fingerprints_only_and_its_key_is_a_secret_that_goes_with_it() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let before_db = d.get("v1", "Secret", Some(NS), "db").unwrap();
    let before_cache = d.get("v1", "Secret", Some(NS), "cache").unwrap();
    let new_value = format!("{PLANTED}-written");
    plan::execute(&conn, &overwrite_plan(&new_value), &options(), &mut |_| {}).await.unwrap();
    let text = journal_text(&d);
    let values = [format!("{PLANTED}-db"), format!("{PLANTED}-cache"), new_value.clone()];
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let written = secret_obj("db", &new_value, None);
    assert_no_unkeyed_hash(&text, &values, &[&before_db, &before_cache, &written]);
    // The key: a Secret beside the journal, the tool's, immutable, named by the journal; its
    // bytes are nowhere in the ConfigMap.
    let key = d.get("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).expect("the key Secret");
    assert_eq!(key["immutable"], true);
    assert_eq!(key["metadata"]["labels"][plan::MANAGED_BY.0], plan::MANAGED_BY.1);
    let key_b64 = key["data"]["key"].as_str().unwrap();
    assert!(!text.contains(key_b64));
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    assert_eq!(journal.fingerprint_key.as_deref(), Some(fingerprint::KEY_SECRET));
    // The fingerprint is HMAC-SHA256 (RFC 2104) under that key of the documented encoding
    // (a tag, then each key and value of the content, in key order, with big-endian u64
    // lengths): computed here from the key Secret and the Secret as it was, by hand.
    {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD.decode(key_b64).unwrap();
        assert_eq!(raw.len(), 32);
        let mut message = b"meshmove secret content v2 hmac-sha256\0".to_vec();
        let mut data: Vec<(&String, &Value)> = before_db["data"].as_object().unwrap().iter().collect();
        data.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in data {
            let v = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
            message.extend((k.len() as u64).to_be_bytes());
            message.extend(k.as_bytes());
            message.extend((v.len() as u64).to_be_bytes());
            message.extend(v);
        }
        let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw), &message);
        let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let Prior::Secret { fingerprint: fp, .. } = &journal.entry(&secret_target("db")).unwrap().prior else { panic!("{journal:?}") };
        assert_eq!(*fp, format!("hmac-sha256:{hex}"));
    }
    // A second step over the same Secrets reuses the key.
    plan::execute(&conn, &overwrite_plan(&new_value), &options(), &mut |_| {}).await.unwrap();
    assert_eq!(d.get("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).unwrap()["data"]["key"], key_b64);
    // Rollback restores from the backups and deletes the key with the journal.
    plan::rollback(&conn, NS, &rollback_options(false), &mut |_| {}).await.unwrap();
    assert_eq!(d.get("v1", "Secret", Some(NS), "db").unwrap()["data"], before_db["data"]);
    assert!(d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).is_none());
    assert!(d.get("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).is_none(), "the key goes with the journal");
}

#[tokio::test]
async fn a_step_that_fingerprints_no_secret_creates_no_key_and_a_dry_run_writes_none() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let mut p = Plan::new("expose", NS);
    p.push(Change::Apply { object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS}, "data": {"a": "1"}}) });
    // A Secret created in another namespace than the journal's is recorded as absent: no key.
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-mesh"}})).unwrap();
    let mut copy = secret_obj("fresh", "S3cretFreshCopy", None);
    copy["metadata"]["namespace"] = json!("shop-mesh");
    p.push(Change::Apply { object: copy });
    plan::execute(&conn, &p, &options(), &mut |_| {}).await.unwrap();
    assert!(d.get("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).is_none());
    assert_eq!(plan::Journal::load(&conn, NS).await.unwrap().unwrap().fingerprint_key, None);
    let dry = ExecOptions { dry_run: DryRun::Server, ..options() };
    plan::execute(&conn, &overwrite_plan("S3cretDry"), &dry, &mut |_| {}).await.unwrap();
    assert!(d.get("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).is_none());
}

#[tokio::test]
async fn a_secret_in_the_way_of_the_key_stops_the_step_before_any_write() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    d.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": fingerprint::KEY_SECRET, "namespace": NS},
                    "data": {"key": b64(&"k".repeat(32))}}))
        .unwrap();
    let before = d.snapshot();
    let err = plan::execute(&conn, &overwrite_plan("S3cretBlocked"), &options(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, PlanError::Invalid { .. }) && err.to_string().contains("in the way of the journal's fingerprint key"), "{err}");
    assert!(d.snapshot().diff(&before).is_empty(), "{:?}", d.snapshot().diff(&before));
}

#[tokio::test]
async fn without_its_key_a_rerun_is_refused_and_a_forced_rollback_leaves_the_secrets_as_they_are() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let new_value = format!("{PLANTED}-written");
    plan::execute(&conn, &overwrite_plan(&new_value), &options(), &mut |_| {}).await.unwrap();
    d.delete("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).unwrap();
    let before = d.snapshot();
    // A rerun would record against a key that is gone: refused, nothing written.
    let err = plan::execute(&conn, &overwrite_plan(&new_value), &options(), &mut |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("fingerprint key is gone"), "{err}");
    assert!(d.snapshot().diff(&before).is_empty());
    // Forced rollback: the backups are there, but nothing proves they hold the prior content.
    let outcomes = plan::rollback(&conn, NS, &rollback_options(true), &mut |_| {}).await.unwrap();
    for name in ["db", "cache"] {
        let o = outcomes.iter().find(|o| o.target == secret_target(name)).unwrap();
        assert_eq!(o.action, plan::Action::Skipped, "{o}");
    }
    assert_eq!(d.get("v1", "Secret", Some(NS), "db").unwrap()["data"]["password"], b64(&new_value), "db left as it is");
}

#[tokio::test]
async fn without_its_key_rollback_refuses_whole_and_says_why() {
    let d = double().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    plan::execute(&conn, &overwrite_plan(&format!("{PLANTED}-written")), &options(), &mut |_| {}).await.unwrap();
    d.delete("v1", "Secret", Some(NS), fingerprint::KEY_SECRET).unwrap();
    let before = d.snapshot();
    let err = plan::rollback(&conn, NS, &rollback_options(false), &mut |_| {}).await.unwrap_err();
    let msg = err.to_string();
    // The drift check comes first: the written db cannot be told from an edit without the key.
    assert!(msg.contains("mesh-migrate-journal-key is gone"), "{msg}");
    assert!(msg.contains("Secret/shop/db"), "{msg}");
    assert!(d.snapshot().diff(&before).is_empty());
}

/// A journal as earlier versions wrote it (`fixtures/journal-unkeyed.json`: unkeyed `sha256:`
/// hashes under `sha256` and `appliedSha256`, backups annotated `content-sha256`; the hashes
/// computed outside this code base from the documented encoding) still rolls back exactly.
#[tokio::test]
async fn a_journal_of_the_earlier_unkeyed_shape_still_rolls_back() {
    let d = Double::start(DoubleOptions::default()).await.unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/journal-unkeyed.json")).unwrap();
    d.load_values(apiserver_double::parse_documents(&text).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let backup_db = d.get("v1", "Secret", Some(NS), "db.mesh-migrate-backup").unwrap();
    let backup_cache = d.get("v1", "Secret", Some(NS), "cache.mesh-migrate-backup").unwrap();
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    let Prior::Secret { fingerprint: fp, .. } = &journal.entry(&secret_target("db")).unwrap().prior else { panic!("{journal:?}") };
    assert_eq!(*fp, fingerprint::legacy_sha256(&backup_db), "the documented unkeyed hash");
    assert!(journal.entry(&secret_target("db")).unwrap().applied_fingerprint.as_deref().unwrap().starts_with(fingerprint::LEGACY));
    // A preview shows the restore; the rollback does it, reading no key (the journal names none).
    let previews = plan::rollback_preview(&conn, NS, None).await.unwrap();
    assert!(previews.iter().all(|p| p.action != plan::Action::Skipped), "{previews:?}");
    plan::rollback(&conn, NS, &rollback_options(false), &mut |_| {}).await.unwrap();
    for (name, backup) in [("db", &backup_db), ("cache", &backup_cache)] {
        let now = d.get("v1", "Secret", Some(NS), name).unwrap();
        assert_eq!(now["data"], backup["data"], "{name}");
        assert_eq!(now["type"], "kubernetes.io/basic-auth");
        assert_eq!(now["metadata"]["labels"], json!({"app": "shop"}));
        assert!(d.get("v1", "Secret", Some(NS), &format!("{name}.mesh-migrate-backup")).is_none());
    }
    assert!(d.get("v1", "ConfigMap", Some(NS), JOURNAL_NAME).is_none());
    assert!(d.requests().iter().all(|r| !r.path.ends_with(fingerprint::KEY_SECRET)), "no key read for an unkeyed journal");
}
