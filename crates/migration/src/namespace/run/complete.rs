//! `ns complete` and `ns rollback`: retire the legacy side, or return to it.

use super::*;

pub(super) async fn legacy_workloads(conn: &Connection, sides: &Sides) -> Result<Vec<Value>, NsError> {
    objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET], &sides.legacy).await
}

/// `ns complete`: 100 % (gates checked), then the legacy workloads scaled to zero (or deleted).
/// Refused while an Ingress still serves the legacy side (`force` overrides) and while ambient
/// workloads can reach the legacy workloads it retires (`ignore_ambient_callers` overrides).
pub async fn complete(
    conn: &Connection,
    sides: &Sides,
    delete_legacy: bool,
    force: bool,
    ignore_ambient_callers: bool,
    g: &GateOptions,
    opts: &RunOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let mode = state::check_complete(st.as_ref(), &sides.legacy, delete_legacy)?;
    let mut st = st.expect("checked above");
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "complete".into(),
        dry_run: opts.dry_run,
        weight: st.weight,
        phase: Some(st.phase),
        passed: true,
        ..Report::default()
    };
    if mode == CompleteMode::Done {
        // Backups an earlier version (or an interrupted run) left behind go now.
        retire_backups(conn, sides, opts, &mut report, events).await?;
        if report.outcomes.is_empty() {
            report.notes.push(format!("nothing to do: the migration of {} is complete", sides.legacy));
        }
        return Ok(report);
    }
    // An Ingress whose controller still takes its hosts' traffic would send it to workloads
    // scaled to zero: refused until the hosts point at the Istio ingress gateway.
    let ext = external_status(conn, sides, &st).await?;
    let (ext_legacy, ext_notes) = legacy_external(conn, sides).await?;
    let mut blockers = complete_blockers(sides, &st, &ext_legacy, &ext.switches);
    blockers.extend(ext_notes.into_iter().filter(|n| n.starts_with(external::INGRESSES_UNREAD)));
    if !blockers.is_empty() {
        let list = blockers.iter().map(|b| format!("  {b}")).collect::<Vec<_>>().join("\n");
        if !force {
            return Err(refused(format!(
                "not completing {}: external traffic still reaches the legacy side:\n{list}\npoint DNS or the load balancer for those hosts at the Istio ingress gateway (`kubectl mesh-migrate ns status {}` says where), then delete the Ingress; or pass --force to complete anyway (those hosts then fail)",
                sides.legacy, sides.legacy
            )));
        }
        report.warnings.push(format!("completing anyway (--force) while external traffic still reaches the legacy side:\n{list}"));
    }
    let legacy = legacy_workloads(conn, sides).await?;
    let recorded: Vec<&WorkloadRecord> = st.workloads.iter().collect();
    let kept: Vec<String> = legacy
        .iter()
        .filter(|o| kind_of(o) == "DaemonSet" && !delete_legacy && recorded.iter().any(|w| w.kind == "DaemonSet" && w.name == name_of(o)))
        .map(|o| format!("DaemonSet/{}", name_of(o)))
        .collect();
    if !kept.is_empty() {
        report.notes.push(format!(
            "{} cannot be scaled to zero and keeps running in {} (no traffic is routed to it; --delete-legacy deletes it)",
            kept.join(", "),
            sides.legacy
        ));
    }
    // Stateful backends are never scaled down or deleted: copied on request or not, the data is
    // in the original. Classified again from the live objects, so a journal written before
    // backends were told apart cannot retire one either.
    let legacy_services = objects(conn, &[&kinds::SERVICE], &sides.legacy).await?;
    let service_refs: Vec<&Value> = legacy_services.iter().collect();
    let stateful: Vec<String> = legacy
        .iter()
        .filter(|o| {
            recorded.iter().any(|w| w.stateful && w.kind == kind_of(o) && w.name == name_of(o))
                || meshmove_isolation::datastore::stateful_backend(o, &service_refs).is_some()
        })
        .map(copy::object_name)
        .collect();
    let kept_recorded: Vec<&String> =
        stateful.iter().filter(|id| recorded.iter().any(|w| format!("{}/{}", w.kind, w.name) == **id)).collect();
    if !kept_recorded.is_empty() {
        report.notes.push(format!(
            "{} {} stateful: left running in {} with its data (not scaled down{})",
            kept_recorded.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            if kept_recorded.len() == 1 { "is" } else { "are" },
            sides.legacy,
            if delete_legacy { " nor deleted" } else { "" }
        ));
    }
    let targets: Vec<(Target, i64)> = legacy
        .iter()
        .filter(|o| delete_legacy || kind_of(o) != "DaemonSet")
        .filter(|o| recorded.iter().any(|w| w.kind == kind_of(o) && w.name == name_of(o)))
        .filter(|o| !stateful.contains(&copy::object_name(o)))
        .map(|o| (target_of(kind_of(o), &sides.legacy, name_of(o)), o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)))
        .collect();
    // Callers ztunnel carries were never moved by the weights: those that can reach the pods
    // retired here would lose the legacy side.
    let retired: Vec<(String, String)> = targets.iter().map(|(t, _)| (t.kind.clone(), t.name.clone())).collect();
    callers::complete_check(conn, sides, &retired, ignore_ambient_callers, &mut report).await?;
    if opts.dry_run != DryRun::None {
        if mode == CompleteMode::Complete && st.weight < 100 && gates_before(conn, sides, &st, 100, g, opts, &mut report, events).await?.is_some() {
            return Ok(report);
        }
        let mut plan = Plan::new("ns-complete", &sides.legacy);
        if mode == CompleteMode::Complete && st.weight < 100 {
            plan.changes = routing_changes(conn, sides, &st, 100).await?;
        }
        for (t, _) in &targets {
            plan.push(if delete_legacy { Change::Delete { target: t.clone() } } else { Change::Scale { target: t.clone(), replicas: 0 } });
        }
        run_plan(conn, &plan, opts, &mut report, events).await?;
        retire_backups(conn, sides, opts, &mut report, events).await?;
        report.weight = 100;
        report.notes.push(outside_callers_note(sides, &st.services, delete_legacy));
        report.notes.extend(shared_note(sides, &st.shared));
        return Ok(report);
    }
    if mode == CompleteMode::Complete {
        // The mesh side must be healthy at its current weight before taking all traffic.
        if st.weight < 100 {
            if let Some(after) = gates_before(conn, sides, &st, 100, g, opts, &mut report, events).await? {
                report.weight = after.weight;
                report.phase = Some(after.phase);
                return Ok(report);
            }
            events(NsEvent::Note(format!("weight {} % -> 100 %", st.weight)));
            st = set_weight(conn, sides, &st, 100, "shift", opts, &mut report, events).await?;
            report.weight = 100;
        }
        let gw = GateOptions { interval: g.interval, ..g.clone() };
        let check = watch(conn, sides, &st, &gw, events).await?;
        report.gates = check.results.clone();
        if !gates::all_passed(&check.results) {
            report.passed = false;
            st = gate_failed(conn, sides, &st, check.results, g.on_failure, opts, &mut report, events).await?;
            report.weight = st.weight;
            report.phase = Some(st.phase);
            return Ok(report);
        }
        gates_passed(conn, sides, opts, check, true).await?;
    }
    let replicas: BTreeMap<String, i64> = targets.iter().map(|(t, r)| (format!("{}/{}", t.kind, t.name), *r)).collect();
    let keep = replicas.clone();
    // Before a delete, the objects themselves, for rollback to re-create.
    let doomed: Vec<(String, Value)> = if delete_legacy {
        legacy
            .iter()
            .filter(|o| targets.iter().any(|(t, _)| t.kind == kind_of(o) && t.name == name_of(o)))
            .map(|o| (format!("{}/{}", kind_of(o), name_of(o)), restorable(o)))
            .collect()
    } else {
        Vec::new()
    };
    let mine = begin(conn, sides, opts, "complete", 100).await?;
    // Remember the legacy replicas (and objects) before the first scale or delete, unless an
    // earlier run did.
    update_state(conn, sides, move |s| {
        for (k, v) in keep {
            if v > 0 && !k.starts_with("DaemonSet/") {
                s.legacy_replicas.entry(k).or_insert(v);
            }
        }
        for (k, o) in doomed {
            s.deleted_legacy.entry(k).or_insert(o);
        }
    })
    .await?;
    let mut plan = Plan::new("ns-complete", &sides.legacy);
    for (t, _) in &targets {
        plan.push(if delete_legacy { Change::Delete { target: t.clone() } } else { Change::Scale { target: t.clone(), replicas: 0 } });
    }
    run_recorded(conn, sides, opts, &mine, &plan, &mut report, events).await?;
    let who = opts.clone();
    let st = update_state(conn, sides, move |s| {
        s.phase = Phase::Completed;
        s.pending = None;
        s.schedule = None;
        s.legacy_deleted = s.legacy_deleted || delete_legacy;
        let what = if delete_legacy { "legacy workloads deleted" } else { "legacy workloads scaled to zero" };
        s.history.push(event(&who, "complete", s.weight, 100, what, vec![]));
    })
    .await?;
    report.phase = Some(st.phase);
    report.weight = st.weight;
    retire_backups(conn, sides, opts, &mut report, events).await?;
    report.notes.push(outside_callers_note(sides, &st.services, st.legacy_deleted));
    report.notes.extend(shared_note(sides, &st.shared));
    Ok(report)
}

/// Whether a journal entry was recorded by a step of the namespace-based migration.
pub(super) fn migration_entry(e: &plan::JournalEntry) -> bool {
    e.step.starts_with("ns-")
}

/// Once the migration is complete, the backups of the Secrets it wrote over are no longer
/// needed: `ns rollback` returns traffic and workloads but never a Secret's earlier content, and
/// `ns cleanup` keeps Secrets that existed before the migration. Their entries leave the journal
/// and the backups are deleted (see [`plan::retire`]), so no copy of old credentials lingers.
async fn retire_backups(conn: &Connection, sides: &Sides, opts: &RunOptions, report: &mut Report, events: &mut dyn FnMut(NsEvent)) -> Result<(), NsError> {
    let select = |e: &plan::JournalEntry| migration_entry(e) && matches!(e.prior, plan::Prior::Secret { .. });
    let options = plan::RetireOptions { dry_run: opts.dry_run, step: "ns-complete: Secret backups deleted".into(), actor: opts.actor.clone(), extension: None };
    let out = plan::retire(conn, &sides.legacy, &select, &options, &mut |p| events(NsEvent::Plan(p))).await?;
    report.outcomes.extend(out);
    Ok(())
}

/// The shared backends `complete` leaves running where they are.
pub(super) fn shared_note(sides: &Sides, shared: &[copy::SharedBackend]) -> Option<String> {
    let workloads: Vec<&str> = shared.iter().filter(|s| !s.object.starts_with("Service/")).map(|s| s.object.as_str()).collect();
    (!workloads.is_empty()).then(|| {
        format!(
            "shared backends keep running in {legacy} with their data, serving the mesh side: {}; `kubectl mesh-migrate enable -n {legacy}` puts them on the mesh in place",
            workloads.join(", "),
            legacy = sides.legacy
        )
    })
}

/// What `complete` leaves behind for callers that do not go through the mesh: the weights live
/// in VirtualServices, which only meshed callers (and gateways) apply; anyone else still reaches
/// the legacy Service, whose pods are gone.
pub(super) fn outside_callers_note(sides: &Sides, services: &[String], deleted: bool) -> String {
    let gone = if deleted { "deleted" } else { "scaled to zero" };
    // Shared backends are not among `services` (only routed Services are): they keep serving.
    let examples: Vec<String> = services.iter().take(3).map(|s| format!("{s}.{}", sides.mesh)).collect();
    let more = if services.len() > 3 { ", ..." } else { "" };
    format!(
        "callers outside the mesh (pods without a proxy, other clusters, anything not routed by the VirtualServices) still resolve the legacy Services in {legacy}, whose workloads are {gone}: their requests fail. Move those callers into the mesh, or point them at the mesh side ({examples}{more}, i.e. `<service>.{mesh}.svc.cluster.local`)",
        legacy = sides.legacy,
        mesh = sides.mesh,
        examples = if examples.is_empty() { format!("`<service>.{}`", sides.mesh) } else { examples.join(", ") },
    )
}

/// A legacy workload as `rollback` re-creates it: the object as it was, without what the API
/// server sets ([`plan::portable`]: uid, resourceVersion, generation, timestamps, managedFields,
/// status) and without owner references, which name their owners by uid: an owner that is
/// gone makes the garbage collector delete the re-created object
/// (<https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents>).
/// Every annotation stays, `kubectl.kubernetes.io/last-applied-configuration` included: it is
/// what the next `kubectl apply` merges against, and annotations belong to the object's authors
/// and "should be preserved when modifying objects"
/// (<https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/#ObjectMeta>).
/// (Copies to the mesh side drop it instead, see [`copy`]: they are new objects, not the
/// applied ones.)
pub(super) fn restorable(o: &Value) -> Value {
    let mut v = plan::portable(o);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("ownerReferences");
    }
    v
}

/// `ns rollback`: 0 %, then the mesh workloads scaled to zero; the legacy side is untouched
/// (after `complete` its workloads are first scaled back to their recorded replicas, or
/// re-created from the journal after `--delete-legacy`, and waited for).
pub async fn rollback(conn: &Connection, sides: &Sides, opts: &RunOptions, events: &mut dyn FnMut(NsEvent)) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    state::check_rollback(st.as_ref(), &sides.legacy)?;
    let st = st.expect("checked above");
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "rollback".into(),
        dry_run: opts.dry_run,
        weight: st.weight,
        phase: Some(st.phase),
        passed: true,
        ..Report::default()
    };
    let mut plan = Plan::new("ns-rollback", &sides.legacy);
    let mut targets = Vec::new();
    for (key, object) in &st.deleted_legacy {
        // Re-created as they were, at the replicas they had before `complete` (an earlier
        // `complete` may have scaled them to zero before the delete).
        let mut object = object.clone();
        if let Some(r) = st.legacy_replicas.get(key)
            && object.pointer("/spec/replicas").is_some()
        {
            object["spec"]["replicas"] = json!(r);
        }
        targets.push(target_of(kind_of(&object), &sides.legacy, name_of(&object)));
        plan.push(Change::Apply { object });
    }
    for (key, replicas) in &st.legacy_replicas {
        if st.deleted_legacy.contains_key(key) {
            continue;
        }
        let (kind, name) = key.split_once('/').unwrap_or(("Deployment", key));
        let t = target_of(kind, &sides.legacy, name);
        plan.push(Change::Scale { target: t.clone(), replicas: *replicas });
        targets.push(t);
    }
    if !targets.is_empty() {
        plan.push(Change::WaitReady { targets });
    }
    plan.changes.extend(routing_changes(conn, sides, &st, 0).await?);
    // Ambient: the mesh namespace unbound from its waypoint, and a waypoint `ns create` deployed
    // deleted (re-created by the next `ns create`).
    plan.changes.extend(waypoint::rollback_changes(conn, sides, &st).await?);
    let mesh_live = objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET], &sides.mesh).await?;
    for w in &st.workloads {
        if w.kind == "DaemonSet" {
            continue;
        }
        if mesh_live.iter().any(|o| kind_of(o) == w.kind && name_of(o) == w.name) {
            plan.push(Change::Scale { target: target_of(&w.kind, &sides.mesh, &w.name), replicas: 0 });
        }
    }
    if st.workloads.iter().any(|w| w.kind == "DaemonSet") {
        report.notes.push("DaemonSets cannot be scaled: their copies keep running (with no traffic routed to them)".into());
    }
    // The legacy namespace's companion policies admitted the copies only: with the copies scaled
    // to zero they go, and the legacy namespace's policies are as before the migration.
    let companions = cluster::load(conn, &[&kinds::NETWORK_POLICY], &[], Some(&sides.legacy)).await?;
    for np in companions.of(&kinds::NETWORK_POLICY) {
        if np.label(crate::namespace::ROLE_LABEL) == Some(crate::namespace::guards::COMPANION_ROLE)
            && np.label(crate::namespace::COPIED_FROM_LABEL) == Some(sides.legacy.as_str())
        {
            plan.push(Change::Delete { target: Target::new(&kinds::NETWORK_POLICY.api_version(), "NetworkPolicy", Some(&sides.legacy), &np.name) });
        }
    }
    let mine = begin(conn, sides, opts, "rollback", 0).await?;
    run_recorded(conn, sides, opts, &mine, &plan, &mut report, events).await?;
    if opts.dry_run != DryRun::None {
        report.weight = 0;
        return Ok(report);
    }
    let who = opts.clone();
    let st = update_state(conn, sides, move |s| {
        let from = s.weight;
        s.phase = Phase::RolledBack;
        s.weight = 0;
        s.pending = None;
        s.schedule = None;
        s.legacy_replicas.clear();
        let recreated = !s.deleted_legacy.is_empty();
        s.deleted_legacy.clear();
        s.legacy_deleted = false;
        let what = if recreated {
            "legacy workloads re-created, traffic at 0 %, mesh side scaled to zero"
        } else {
            "traffic at 0 %, mesh side scaled to zero"
        };
        s.history.push(event(&who, "rollback", from, 0, what, vec![]));
    })
    .await?;
    report.phase = Some(st.phase);
    report.weight = 0;
    Ok(report)
}
