//! `ns cleanup`: remove the mesh side of a rolled-back migration.
//!
//! What the migration created is what its journal recorded as absent before a step of it wrote
//! the object (see [`meshmove_kube::plan`]), and that still carries the migration's marker
//! ([`ownership::marked`]). Cleanup is a rollback of those entries by the plan engine
//! ([`plan::rollback`] with [`RollbackOptions::only`](plan::RollbackOptions)): the objects the
//! migration created are deleted, objects of the mesh namespace that existed before it get
//! their earlier content back (a Secret from its backup), and an object someone changed since
//! the tool wrote it is a conflict. Every conflict is found before the first delete, and cleanup
//! then refuses whole unless `--force`. The mesh Namespace is deleted only when the migration
//! created it and nothing else is left in it (deleting a namespace deletes everything in it,
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/#when-to-use-multiple-namespaces>
//! and <https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace>);
//! otherwise it is kept with what remains named, and a later `ns cleanup` finishes. At the end
//! the migration leaves the journal ([`plan::retire`]): the legacy namespace is as before the
//! migration.

use super::complete::migration_entry;
use super::*;
use crate::namespace::{COPIED_FROM_LABEL, ownership};
use meshmove_kube::plan::{Drift, JournalEntry, Prior, RetireOptions, RollbackOptions};

/// The kinds read in the mesh namespace to find what the migration did not create: everything
/// `ns create` writes there, what users add beside it (Pods, Jobs, Ingresses, volume claims,
/// Istio policies), and what controllers create (owned, so left to the garbage collector).
const MESH_KINDS: [&Kind; 24] = [
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::POD,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::SERVICE,
    &kinds::SERVICE_ACCOUNT,
    &kinds::CONFIG_MAP,
    &kinds::SECRET,
    &kinds::PERSISTENT_VOLUME_CLAIM,
    &kinds::ROLE,
    &kinds::ROLE_BINDING,
    &kinds::HORIZONTAL_POD_AUTOSCALER,
    &kinds::POD_DISRUPTION_BUDGET,
    &kinds::NETWORK_POLICY,
    &kinds::RESOURCE_QUOTA,
    &kinds::LIMIT_RANGE,
    &kinds::INGRESS,
    &kinds::ISTIO_GATEWAY,
    &kinds::VIRTUAL_SERVICE,
    &kinds::DESTINATION_RULE,
    &kinds::PEER_AUTHENTICATION,
];

/// Objects every namespace gets without anyone asking: the ServiceAccount `default`
/// (<https://kubernetes.io/docs/concepts/security/service-accounts/#default-service-accounts>),
/// the API server's CA bundle `kube-root-ca.crt`, which the root CA publisher controller keeps
/// in every namespace (kubernetes/kubernetes `pkg/controller/certificates/rootcacertpublisher`),
/// and the mesh root certificate `istio-ca-root-cert` istiod writes into every namespace
/// (Istio `pilot/pkg/keycertbundle` and its namespace controller, `CACertNamespaceConfigMap`).
fn namespace_default(kind: &str, name: &str) -> bool {
    matches!((kind, name), ("ServiceAccount", "default") | ("ConfigMap", "kube-root-ca.crt") | ("ConfigMap", "istio-ca-root-cert"))
}

/// What is left in the mesh namespace besides `ours` (the objects cleanup deletes): objects
/// nobody owns (an owned one goes with its owner) that are not namespace defaults, as
/// `Kind/name`. Pure, for tests.
pub fn foreign(objects: &[Value], ours: &[Target]) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .filter(|o| !namespace_default(kind_of(o), name_of(o)))
        .filter(|o| o.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_none_or(|r| r.is_empty()))
        .filter(|o| !ours.iter().any(|t| t.kind == kind_of(o) && t.name == name_of(o) && t.api_version == o["apiVersion"].as_str().unwrap_or_default()))
        .map(copy::object_name)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The journal entries of the mesh side: recorded by a step of the migration, for an object in
/// the mesh namespace, the mesh Namespace itself, or an object the migration created in the
/// legacy namespace (the companion NetworkPolicies, which `ns rollback` deleted already).
fn mesh_side(sides: &Sides, e: &JournalEntry) -> bool {
    migration_entry(e)
        && (e.target.namespace.as_deref() == Some(sides.mesh.as_str())
            || e.target == Target::namespace(&sides.mesh)
            || (e.target.namespace.as_deref() == Some(sides.legacy.as_str()) && matches!(e.prior, Prior::Absent) && e.target.name != plan::JOURNAL_NAME))
}

/// `ns cleanup`.
pub async fn cleanup(conn: &Connection, sides: &Sides, force: bool, opts: &RunOptions, events: &mut dyn FnMut(NsEvent)) -> Result<Report, NsError> {
    let (journal, st) = load_state(conn, sides).await?;
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "cleanup".into(),
        dry_run: opts.dry_run,
        weight: 0,
        phase: st.as_ref().map(|s| s.phase),
        passed: true,
        ..Report::default()
    };
    let mesh_ns = cluster_get(conn, &Target::namespace(&sides.mesh)).await?;
    match state::check_cleanup(st.as_ref()) {
        Err(why) => return Err(why.into()),
        Ok(false) => {
            // Nothing recorded. A mesh namespace that carries the marker came from a migration
            // whose journal is gone: which objects it created cannot be told any more.
            if let Some(ns) = &mesh_ns
                && ownership::marked(ns, &sides.legacy)
            {
                return Err(refused(format!(
                    "namespace {mesh} carries the marker of a migration of {legacy}, but no migration of {legacy} is recorded (its journal is gone), so what it created cannot be told from what others added; nothing was deleted. Check what is in it (`kubectl get all,configmaps,secrets,persistentvolumeclaims -n {mesh}`) and delete it by hand",
                    mesh = sides.mesh,
                    legacy = sides.legacy
                )));
            }
            report.notes.push(format!("nothing to clean up: no migration of {} is recorded", sides.legacy));
            return Ok(report);
        }
        Ok(true) => {}
    }
    let journal = journal.expect("a recorded state lives in a journal");
    // The entries of the mesh side, and which of their objects still carry the marker.
    let mut only = Vec::new();
    let mut drifts: Vec<Drift> = Vec::new();
    let mut created: Vec<Target> = Vec::new();
    let mut restored = Vec::new();
    let mut namespace_created = false;
    for e in journal.entries.iter().filter(|e| mesh_side(sides, e)) {
        let live = cluster_get(conn, &e.target).await?;
        if matches!(e.prior, Prior::Absent) {
            if let Some(l) = &live
                && !ownership::marked(l, &sides.legacy)
            {
                // Created by the migration, but replaced or relabelled since: not ours to delete.
                drifts.push(Drift {
                    target: e.target.clone(),
                    what: format!("no longer carries the migration's marker ({COPIED_FROM_LABEL}: {}): kept, never deleted", sides.legacy),
                    diff: String::new(),
                });
                continue;
            }
            if e.target == Target::namespace(&sides.mesh) {
                namespace_created = true;
                continue;
            }
            created.push(e.target.clone());
        } else if live.is_some() {
            restored.push(e.target.clone());
        }
        only.push(e.target.clone());
    }
    // The mesh Namespace goes last, and only when nothing the migration did not create is in it.
    let mut kept_namespace = None;
    if namespace_created {
        let inv = cluster::load(conn, &MESH_KINDS, &[], Some(&sides.mesh)).await?;
        let mut unread = Vec::new();
        for k in MESH_KINDS {
            if let Some(why) = inv.availability(k).filter(|w| w.is_read_failure()) {
                unread.push(format!("could not read {} in {} ({why:?})", k.resource(), sides.mesh));
            }
        }
        let objects: Vec<Value> = inv.objects().iter().map(|o| o.value.clone()).collect();
        let remaining = foreign(&objects, &created);
        if remaining.is_empty() && unread.is_empty() {
            only.push(Target::namespace(&sides.mesh));
        } else {
            let mut why = Vec::new();
            if !remaining.is_empty() {
                why.push(format!("it holds objects the migration did not create: {}", remaining.join(", ")));
            }
            why.extend(unread);
            kept_namespace = Some(why.join("; "));
        }
    }
    let options = RollbackOptions {
        dry_run: opts.dry_run,
        only: Some(only.clone()),
        force,
        timeout: opts.timeout,
        actor: opts.actor.clone(),
        ..RollbackOptions::default()
    };
    // Every conflict before anything is deleted: the marker check above and the engine's.
    drifts.extend(plan::rollback_drifts(conn, &sides.legacy, &options).await?);
    if !drifts.is_empty() {
        if !force {
            return Err(NsError::Plan(PlanError::Drifts {
                action: "cleanup".to_string(),
                hint: "they are kept; undo the changes, delete them by hand, or rerun with --force to delete them anyway (objects without the marker are never deleted)".to_string(),
                drifts,
            }));
        }
        report.warnings.push(format!(
            "--force: deleting {} object(s) changed by someone else since this tool wrote them (objects without the marker are kept):{}",
            drifts.len(),
            plan::describe(&drifts)
        ));
    }
    if opts.dry_run == DryRun::Client {
        let previews = plan::rollback_preview_of(conn, &sides.legacy, &options).await?;
        report.objects.extend(plan::objects_after(&previews));
        report.previews.extend(previews);
    }
    let mine = begin(conn, sides, opts, "cleanup", 0).await?;
    let result = plan::rollback(conn, &sides.legacy, &options, &mut |p| events(NsEvent::Plan(p))).await;
    match result {
        Ok(out) => report.outcomes.extend(out),
        Err(e) => {
            let e = NsError::Plan(e);
            record_failure(conn, sides, opts, &mine, &e).await;
            return Err(e);
        }
    }
    for t in &restored {
        report.notes.push(format!("{t} existed before the migration: kept, with its content from before the migration"));
    }
    // The migration leaves the journal; with the mesh Namespace kept, its entry and the state
    // stay, so that `ns cleanup` run again (once what remains is gone) deletes it.
    let keep_ns = kept_namespace.is_some();
    let select = |e: &JournalEntry| migration_entry(e) && !(keep_ns && e.target == Target::namespace(&sides.mesh));
    let retire = RetireOptions {
        dry_run: opts.dry_run,
        step: "ns-cleanup".into(),
        actor: opts.actor.clone(),
        extension: (!keep_ns).then(|| STATE_KEY.to_string()),
    };
    report.outcomes.extend(plan::retire(conn, &sides.legacy, &select, &retire, &mut |p| events(NsEvent::Plan(p))).await?);
    match &kept_namespace {
        Some(why) => {
            report.notes.push(format!(
                "namespace {mesh} is kept: {why}. Move or delete those, then run `kubectl mesh-migrate ns cleanup {legacy}` again to delete it",
                mesh = sides.mesh,
                legacy = sides.legacy
            ));
            if opts.dry_run == DryRun::None {
                let who = opts.clone();
                let what = format!("mesh side removed; namespace {} kept ({why})", sides.mesh);
                update_state(conn, sides, move |s| {
                    s.pending = None;
                    s.history.push(event(&who, "cleanup", 0, 0, what, vec![]));
                })
                .await?;
            }
        }
        None if !namespace_created && mesh_ns.is_some() => {
            report.notes.push(format!("namespace {} existed before the migration: kept", sides.mesh));
        }
        None => {}
    }
    if opts.dry_run == DryRun::None && !keep_ns {
        report.phase = None;
    }
    Ok(report)
}

/// The live object, if any.
async fn cluster_get(conn: &Connection, target: &Target) -> Result<Option<Value>, NsError> {
    Ok(plan::get(conn, target).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_remains_is_what_nobody_owns_besides_the_namespace_defaults_and_the_migrations_objects() {
        let o = |kind: &str, name: &str, owned: bool| {
            let mut v = json!({"apiVersion": if kind == "Deployment" { "apps/v1" } else { "v1" }, "kind": kind, "metadata": {"name": name, "namespace": "shop-mesh"}});
            if owned {
                v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "u"}]);
            }
            v
        };
        let objects = vec![
            o("Deployment", "api", false),
            o("Pod", "api-1", true),
            o("ServiceAccount", "default", false),
            o("ConfigMap", "kube-root-ca.crt", false),
            o("ConfigMap", "istio-ca-root-cert", false),
            o("Secret", "api-db", false),
            o("PersistentVolumeClaim", "data-redis-0", false),
        ];
        let ours = vec![Target::new("apps/v1", "Deployment", Some("shop-mesh"), "api")];
        assert_eq!(foreign(&objects, &ours), ["PersistentVolumeClaim/data-redis-0", "Secret/api-db"]);
        // A Secret of the same name as one of ours but another kind is still foreign.
        let ours = vec![Target::new("apps/v1", "Deployment", Some("shop-mesh"), "api"), Target::new("v1", "Secret", Some("shop-mesh"), "api-db")];
        assert_eq!(foreign(&objects, &ours), ["PersistentVolumeClaim/data-redis-0"]);
    }

    #[test]
    fn the_mesh_side_is_the_migrations_entries_there_and_what_it_created_in_the_legacy_namespace() {
        let sides = Sides::new("shop").unwrap();
        let entry = |step: &str, t: Target, prior: Prior| JournalEntry { target: t, step: step.into(), recorded_at: String::new(), prior, applied: None, applied_fingerprint: None };
        let np = |ns: &str| Target::new("networking.k8s.io/v1", "NetworkPolicy", Some(ns), "p");
        assert!(mesh_side(&sides, &entry("ns-create", np("shop-mesh"), Prior::Absent)));
        assert!(mesh_side(&sides, &entry("ns-create", Target::namespace("shop-mesh"), Prior::Absent)));
        assert!(mesh_side(&sides, &entry("ns-create", np("shop"), Prior::Absent)), "a companion policy");
        assert!(!mesh_side(&sides, &entry("ns-create", np("shop"), Prior::Object { object: json!({}) })), "a legacy object it changed");
        assert!(!mesh_side(&sides, &entry("enable", np("shop-mesh"), Prior::Absent)), "another command's");
        let scaled = Target::new("apps/v1", "Deployment", Some("shop"), "api");
        assert!(!mesh_side(&sides, &entry("ns-complete", scaled, Prior::Fields { fields: Default::default() })));
    }
}
