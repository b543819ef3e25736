//! Secrets and the journal, against the API-server double: a Secret the tool writes over or
//! deletes is journaled by reference and content hash, its content kept in a backup Secret;
//! a planted value never reaches the journal ConfigMap, an outcome, a progress event or an
//! error; rollback restores exactly what it can prove and refuses, naming the Secret, what it
//! cannot; a journal that would pass 1 MiB is refused before anything is written.

use std::time::Duration;

use apiserver_double::{Double, DoubleHandle, DoubleOptions};
use meshmove_kube::cluster::{ClusterOptions, Connection};
use meshmove_kube::plan::{
    self, Change, DryRun, ExecOptions, JOURNAL_LIMIT, JOURNAL_NAME, Plan, PlanError, Prior, Progress, RollbackOptions, Target, secret,
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

    // The journal names each Secret with the hash of its content; the content is in the backups.
    let journal = plan::Journal::load(&conn, NS).await.unwrap().unwrap();
    for (name, before) in [("db", &before_db), ("cache", &before_cache)] {
        let Prior::Secret { sha256, backup, object } = &journal.entry(&secret_target(name)).unwrap().prior else { panic!("{journal:?}") };
        assert_eq!(*sha256, secret::content_hash(before));
        assert_eq!(object["type"], "kubernetes.io/basic-auth");
        let b = d.get("v1", "Secret", Some(NS), backup).expect("the backup Secret");
        assert_eq!(b["data"], before["data"], "the backup holds the prior content");
        assert_eq!(b["immutable"], true);
    }
    let applied = journal.entry(&secret_target("db")).unwrap();
    assert_eq!(applied.applied_sha256.as_deref(), Some(secret::content_hash(&secret_obj("db", &new_value, None)).as_str()));
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
