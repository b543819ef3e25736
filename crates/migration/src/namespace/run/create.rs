//! `ns create`: copy the legacy namespace into `<ns>-mesh`, route it at 0 %, record the state.

use super::*;

/// Checks of `ns create` a human may override.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOverrides {
    /// Label the namespace although copies would violate its Pod Security level.
    pub allow_pod_security_violations: bool,
    /// Create the mesh side although the Istio control plane check fails.
    pub ignore_control_plane: bool,
    /// Create the mesh side although the engine finds connections of the legacy side that the
    /// copies would not have under the carried NetworkPolicies.
    pub allow_lost_connections: bool,
    /// Create the mesh side although kinds it copies or carries could not be read.
    pub allow_unreadable: bool,
}

/// `ns create`.
pub async fn create(
    conn: &Connection,
    sides: &Sides,
    copy_opts: &CopyOptions,
    profile: &TrafficProfile,
    overrides: CreateOverrides,
    opts: &RunOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let mode = state::check_create(st.as_ref())?;
    if !namespace_exists(conn, &sides.legacy).await? {
        return Err(refused(format!("namespace {} does not exist", sides.legacy)));
    }
    // The control plane must be able to serve the copies before they are created.
    let (mesh_mode, revision) = match &copy_opts.data_plane {
        crate::namespace::DataPlane::Sidecar => (MeshMode::Sidecar, None),
        crate::namespace::DataPlane::SidecarRevision { revision } => (MeshMode::Sidecar, Some(revision.as_str())),
        crate::namespace::DataPlane::Ambient => (MeshMode::Ambient, None),
    };
    let cp = cluster::load(conn, &[precheck::GATE_KINDS, precheck::GATE_KINDS_WIDE].concat(), precheck::GATE_KINDS_WIDE, None).await?;
    let gate = precheck::gate(&cp, mesh_mode, revision);
    if !gate.passed() && !overrides.ignore_control_plane {
        return Err(refused(format!(
            "the Istio control plane cannot serve {}:\n{}\nfix these (see `kubectl mesh-migrate precheck`), or pass --force to create it anyway",
            sides.mesh,
            gate.explain()
        )));
    }
    let forced = (!gate.passed()).then(|| format!("going ahead despite the control plane check (--force):\n{}", gate.explain()));
    let mut gate_notes = gate.notes;
    gate_notes.extend(forced);
    let mut wanted: Vec<&'static Kind> = LEGACY_KINDS.to_vec();
    if copy_opts.secrets {
        wanted.push(&kinds::SECRET);
    }
    let mut legacy = objects(conn, &wanted, &sides.legacy).await?;
    // A kind that cannot be read (listing Roles needs more than the `edit` ClusterRole grants)
    // would leave the copies without what it holds: RoleBindings their ServiceAccounts need,
    // autoscalers, the guards. Refused unless --allow-unreadable, then named in a note.
    let mut unread = Vec::new();
    let mut refused_reads = Vec::new();
    let optional = [&kinds::ROLE, &kinds::ROLE_BINDING, &kinds::HORIZONTAL_POD_AUTOSCALER];
    let opt = cluster::load(conn, &optional, &[], Some(&sides.legacy)).await?;
    for k in optional {
        let why = match opt.availability(k) {
            None => continue,
            Some(meshmove_model::inventory::Unavailable::Forbidden { message }) => {
                refused_reads.push(k.resource());
                format!("forbidden: {message}")
            }
            Some(_) => "the cluster does not serve them".to_string(),
        };
        unread.push(format!("could not read {} in {} ({why}): any there are not copied", k.resource(), sides.legacy));
    }
    legacy.extend(opt.objects().iter().map(|o| o.value.clone()));
    // Listed as not copied when readable; a kind that cannot be listed is only not listed.
    let guard_kinds = [&kinds::NETWORK_POLICY, &kinds::POD_DISRUPTION_BUDGET, &kinds::RESOURCE_QUOTA, &kinds::LIMIT_RANGE];
    let extra = cluster::load(conn, &guard_kinds, &[], Some(&sides.legacy)).await?;
    for k in guard_kinds {
        if let Some(why) = extra.availability(k) {
            if why.is_read_failure() {
                refused_reads.push(k.resource());
            }
            unread.push(format!("could not read {} in {} ({why:?}): any there are not carried to {}", k.resource(), sides.legacy, sides.mesh));
        }
    }
    legacy.extend(extra.objects().iter().map(|o| o.value.clone()));
    // CloudNativePG clusters are shared backends; without the operator's CRD there are none.
    let cnpg = cluster::load(conn, &[&kinds::CNPG_CLUSTER], &[], Some(&sides.legacy)).await?;
    if let Some(meshmove_model::inventory::Unavailable::Forbidden { message }) = cnpg.availability(&kinds::CNPG_CLUSTER) {
        refused_reads.push(kinds::CNPG_CLUSTER.resource());
        unread.push(format!(
            "could not read CloudNativePG clusters in {} (forbidden: {message}): their Services are kept in {} all the same, as they front no copied workload",
            sides.legacy, sides.legacy
        ));
    }
    legacy.extend(cnpg.objects().iter().map(|o| o.value.clone()));
    if !refused_reads.is_empty() && !overrides.allow_unreadable {
        return Err(refused(format!(
            "could not read {} in {}:\n  {}\ngrant the reads (see krew-manifests/rbac/mesh-migrate-write.yaml), or pass --allow-unreadable to create the mesh side without them",
            refused_reads.join(", "),
            sides.legacy,
            unread.join("\n  ")
        )));
    }
    // The Istio routing kinds must be served (Istio's CRDs installed).
    let istio = cluster::load(conn, &[&kinds::VIRTUAL_SERVICE, &kinds::DESTINATION_RULE], &[], Some(&sides.legacy)).await?;
    for k in [&kinds::VIRTUAL_SERVICE, &kinds::DESTINATION_RULE] {
        if istio.availability(k).is_some() {
            return Err(refused(format!(
                "the cluster does not serve {} ({}): install Istio (its CRDs) before creating the mesh side",
                k.kind,
                k.api_version()
            )));
        }
    }
    // Sidecar injection adds the istio-init container (NET_ADMIN, NET_RAW), which Pod Security
    // `baseline` and `restricted` reject, unless the istio-cni node agent does its job instead.
    let mut cni_note = None;
    if matches!(copy_opts.data_plane, crate::namespace::DataPlane::Sidecar | crate::namespace::DataPlane::SidecarRevision { .. })
        && matches!(copy_opts.pod_security, crate::namespace::PodSecurity::Restricted | crate::namespace::PodSecurity::Baseline)
    {
        let ds = cluster::load(conn, &[&kinds::DAEMON_SET], &[&kinds::DAEMON_SET], None).await?;
        if ds.availability(&kinds::DAEMON_SET).is_some() {
            cni_note = Some("could not list DaemonSets to check for istio-cni: without it, Pod Security rejects the istio-init container of every injected pod".to_string());
        } else if !ds.of(&kinds::DAEMON_SET).any(|o| o.name == "istio-cni-node" || o.label("k8s-app") == Some("istio-cni-node")) {
            return Err(refused(format!(
                "Pod Security {:?} on {} would reject every injected pod: sidecar injection adds the istio-init container (NET_ADMIN, NET_RAW) unless istio-cni is installed, and no istio-cni-node DaemonSet was found; install istio-cni, use --mode ambient, or choose --pod-security privileged",
                copy_opts.pod_security, sides.mesh
            )));
        }
    }
    // Ambient: the waypoint the mesh namespace's Services will use (refused here, before any
    // write, when the cluster cannot run one).
    let waypoint = if copy_opts.data_plane == crate::namespace::DataPlane::Ambient {
        let mesh_ns = copy::mesh_namespace(sides, copy_opts);
        let mut mesh_labels: meshmove_istio::Labels = mesh_ns
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        // The API server's own label on every namespace.
        mesh_labels.insert("kubernetes.io/metadata.name".into(), sides.mesh.clone());
        waypoint::plan_waypoint(conn, sides, &copy_opts.waypoint, &mesh_labels, overrides.ignore_control_plane).await?
    } else {
        waypoint::WaypointPlan::default()
    };
    let set: CopySet = copy::copy_namespace(sides, &legacy, copy_opts);
    if !set.refused.is_empty() {
        return Err(refused(format!("{}\nnothing was written", set.refused.join("\n"))));
    }
    // Pod Security as the API server judges the pods the copies are made from.
    let (violations, pod_security_notes) = podsecurity::copy_violations(conn, sides, copy_opts.pod_security, &set).await?;
    if !violations.is_empty() && !overrides.allow_pod_security_violations {
        let list: Vec<String> = violations.iter().map(|v| format!("  {}: {}", v.object, v.problem)).collect();
        return Err(refused(format!(
            "{} would reject these pods of the copies (Pod Security level {:?} on {}):\n{}\nfix the pod templates, or choose a level with --pod-security (or pass --allow-pod-security-violations to label the namespace anyway)",
            sides.mesh,
            copy_opts.pod_security,
            sides.mesh,
            list.join("\n")
        )));
    }
    // The guards (budgets, policies, quotas, limit ranges), and the engine's proof that the copies
    // keep every connection the legacy side has.
    let ambient = copy_opts.data_plane == crate::namespace::DataPlane::Ambient;
    let carried = guards::carry(sides, &legacy, &set, ambient);
    let quota_warnings = guards::quota_shortfalls(sides, &set, &carried.limits, !ambient);
    let mut engine_input = legacy.clone();
    engine_input.extend(legacy_namespace(conn, sides).await?);
    let lost = match guards::lost_connections(sides, &engine_input, &set, &carried) {
        Ok(lost) => lost,
        Err(why) if !overrides.allow_lost_connections => {
            return Err(refused(format!(
                "cannot prove that the copies in {} keep the connections the legacy side has: the NetworkPolicy engine cannot model them ({why}); nothing was written; pass --allow-lost-connections to create the mesh side anyway",
                sides.mesh
            )));
        }
        Err(_) => Vec::new(),
    };
    let lost_lines: Vec<String> = lost.iter().map(|l| format!("  {l}")).collect();
    if !lost.is_empty() && !overrides.allow_lost_connections {
        return Err(refused(format!(
            "the copies in {} would lose connections the legacy side has (NetworkPolicy, decided by the engine), nothing was written:\n{}\nadmit them in the legacy namespace's policies (a namespaceSelector on kubernetes.io/metadata.name: {}), or pass --allow-lost-connections to create the mesh side anyway",
            sides.mesh,
            lost_lines.join("\n"),
            sides.mesh
        )));
    }
    // Only the copies of stateless workloads are split by weight: shared backends are not
    // copied, and a stateful copy holds other data than the original.
    let legacy_services: Vec<Value> = legacy
        .iter()
        .filter(|o| kind_of(o) == "Service" && set.routed_services.iter().any(|r| r == name_of(o)))
        .cloned()
        .collect();
    let (routable, unrouted) = routing::routable(&legacy_services);
    let workloads: Vec<WorkloadRecord> = set
        .objects
        .iter()
        .filter(|o| is_workload(kind_of(o)))
        .map(|o| WorkloadRecord {
            kind: kind_of(o).to_string(),
            name: name_of(o).to_string(),
            replicas: o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
            stateful: set.is_stateful_copy(&copy::object_name(o)),
        })
        .collect();
    let service_names: Vec<String> = routable.iter().map(|s| name_of(s).to_string()).collect();
    // External traffic: the legacy Ingresses and HTTPRoutes, served by the Istio ingress gateway.
    let (ext_legacy, ext_notes) = legacy_external(conn, sides).await?;
    let selector = copy_opts.gateway_selector.clone().unwrap_or_else(|| crate::namespace::external::DEFAULT_SELECTOR.to_string());

    let mut plan = Plan::new("ns-create", &sides.legacy);
    plan.push(Change::Apply { object: set.namespace.clone() });
    // Companion policies of the legacy namespace can go first: they only add connections.
    for o in carried.policies.iter().filter(|p| p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(sides.legacy.as_str())) {
        plan.push(Change::Apply { object: o.clone() });
    }
    let mesh_exists = namespace_exists(conn, &sides.mesh).await?;
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "create".into(),
        dry_run: opts.dry_run,
        weight: 0,
        passed: true,
        ..Report::default()
    };
    let ext = create_external(sides, &ext_legacy, &service_names, &selector, profile, &mut report);
    if !profile.routes_unset() {
        let tcp = routing::tcp_only_ports(&routable);
        report.notes.push(format!(
            "the HTTP routes of the splitting VirtualServices carry {}{}{}",
            profile.describe_routes(),
            if ext.routes.is_empty() { "" } else { " (so do the split routes of the Istio gateway's VirtualServices for the Ingresses and HTTPRoutes)" },
            if tcp.is_empty() {
                String::new()
            } else {
                format!("; ports routed as TCP have no timeout or retries in Istio's API and carry none: {}", tcp.join(", "))
            }
        ));
    }
    report.notes.extend(ext_notes);
    if let Some(clash) = ext.objects.iter().find(|o| kind_of(o) == "VirtualService" && service_names.iter().any(|s| s == name_of(o))) {
        return Err(refused(format!(
            "the VirtualService {} for the external traffic would have the name of the one splitting Service {}: rename the Ingress or HTTPRoute, nothing was written",
            name_of(clash),
            name_of(clash)
        )));
    }
    // A server dry run cannot create objects in a namespace it did not create.
    let partial_dry_run = opts.dry_run == DryRun::Server && !mesh_exists;
    if partial_dry_run {
        report.notes.push(format!(
            "server dry run: namespace {} does not exist yet, so only the Namespace was sent; its {} objects were not",
            sides.mesh,
            set.objects.len() + 2 * routable.len()
        ));
    } else {
        // The waypoint first: it starts while the copies roll out.
        if let Some(g) = &waypoint.gateway {
            plan.push(Change::Apply { object: g.clone() });
        }
        // Quotas, limit ranges and policies before any pod of the copies exists.
        for o in carried.limits.iter().chain(carried.policies.iter().filter(|p| p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(sides.mesh.as_str()))) {
            plan.push(Change::Apply { object: o.clone() });
        }
        for o in &set.objects {
            plan.push(Change::Apply { object: o.clone() });
        }
        for o in &carried.budgets {
            plan.push(Change::Apply { object: o.clone() });
        }

        if mode == CreateMode::Recreate {
            for w in workloads.iter().filter(|w| w.kind != "DaemonSet") {
                plan.push(Change::Scale { target: target_of(&w.kind, &sides.mesh, &w.name), replicas: w.replicas });
            }
        }
        let targets: Vec<Target> = workloads.iter().map(|w| target_of(&w.kind, &sides.mesh, &w.name)).collect();
        if !targets.is_empty() {
            plan.push(Change::WaitReady { targets });
        }
        // The waypoint (applied first, so it started while the copies rolled out) must be
        // programmed before the mesh side is routed: until then the Services bound to it have
        // no waypoint (no HTTP routing there, no request metrics for the gates).
        if let Some(wait) = waypoint::programmed_wait(&waypoint) {
            plan.push(wait);
        }
        for s in &routable {
            plan.push(Change::Apply { object: routing::destination_rule(sides, s, profile) });
        }
        for s in &routable {
            plan.push(Change::Apply { object: routing::virtual_service(sides, s, 0, profile) });
        }
        for o in &ext.objects {
            plan.push(Change::Apply { object: o.clone() });
        }
    }
    if mode == CreateMode::Resume && st.as_ref().is_some_and(|s| s.phase == Phase::Aborted) {
        report.notes.push("the last gate failure left the routing at 0 %; applying the mesh side again".into());
    }
    report.copy = Some(CopySummary {
        copied: set.objects.iter().map(copy::object_name).collect(),
        skipped: set.skipped.iter().cloned().chain(carried.skipped.iter().map(|(object, reason)| copy::Skipped { object: object.clone(), reason: reason.clone() })).collect(),
        guards: carried.carried.clone(),
        adjustments: set.adjustments.clone(),
        unrouted: unrouted.clone(),
        shared: set.shared.clone(),
        stateful_copies: set.stateful_copies.clone(),
    });
    if !set.shared.is_empty() {
        report.notes.push(format!(
            "shared backends stay in {legacy} and keep their data: the copies reach them there (`<service>.{legacy}.svc.cluster.local`), and `ns complete` never scales them down; to put them on the mesh in place later: `kubectl mesh-migrate enable -n {legacy}`",
            legacy = sides.legacy
        ));
    }
    let mut with_guards = legacy.clone();
    with_guards.extend(carried.policies.iter().cloned());
    report.warnings.extend(copy::unreachable_backends(sides, &with_guards, &set));
    report.warnings.extend(quota_warnings);
    if !lost.is_empty() {
        report.warnings.push(format!(
            "creating anyway (--allow-lost-connections): the copies in {} lose connections the legacy side has:\n{}",
            sides.mesh,
            lost_lines.join("\n")
        ));
    }
    for c in &set.stateful_copies {
        report.warnings.push(format!(
            "{} is copied on request (--copy-stateful) and its copy in {} starts EMPTY: new volumes, none of the data of {} ({}); the copies in {} use it, its Services are not split by weight, and `ns complete` does not scale the original down",
            c.object, sides.mesh, sides.legacy, c.reason, sides.mesh
        ));
    }
    report.notes.extend(pod_security_notes);
    for v in &violations {
        report.notes.push(format!("pod security: {}: {}", v.object, v.problem));
    }
    if let Some(n) = cni_note {
        report.notes.push(n);
    }
    report.notes.extend(gate_notes);
    report.notes.extend(waypoint.notes.iter().cloned());
    report.notes.extend(unread);
    if !copy_opts.secrets {
        let mut by_secret: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (w, secret) in &set.uncopied_secrets {
            by_secret.entry(secret.as_str()).or_default().push(w.as_str());
        }
        for (secret, users) in by_secret {
            report.notes.push(format!(
                "{} reads Secret {secret}, which is not copied: create it in {} (or rerun with --copy-secrets) before its pods can start",
                users.join(", "),
                sides.mesh
            ));
        }
        if set.uncopied_secrets.is_empty() {
            report.notes.push("Secrets are not copied (--copy-secrets copies them)".into());
        }
    }

    // Callers the weights will not move (ztunnel's): named before anything is routed.
    callers::report_ambient_callers(conn, sides, &mut report).await?;

    let mine = begin(conn, sides, opts, "create", 0).await?;
    run_recorded(conn, sides, opts, &mine, &plan, &mut report, events).await?;
    if opts.dry_run != DryRun::None {
        report.phase = st.as_ref().map(|s| s.phase);
        return Ok(report);
    }
    let restarts = mesh_restart_counts(conn, sides).await?;
    let data_plane = copy_opts.data_plane.clone();
    let shared = set.shared.clone();
    let ext_routes = ext.routes.clone();
    let waypoint_record = waypoint.record.clone();
    let who = opts.clone();
    let st = update_state(conn, sides, move |s| {
        let from = s.weight;
        s.phase = Phase::Created;
        s.weight = 0;
        s.data_plane = data_plane;
        s.services = service_names;
        s.workloads = workloads;
        s.shared = shared;
        s.external = ext_routes;
        s.profile = profile.clone();
        s.waypoint = waypoint_record;
        s.gateway_selector = (selector != crate::namespace::external::DEFAULT_SELECTOR).then_some(selector);
        // The restarts gate counts from here until a step's gates pass.
        s.restart_baseline = restarts.values().sum();
        s.restart_baselines = restarts;
        s.pending = None;
        s.failed_at = None;
        let what = match mode {
            CreateMode::Fresh => "mesh side created",
            CreateMode::Resume => "mesh side applied again",
            CreateMode::Recreate => "mesh side scaled up again",
        };
        s.history.push(event(&who, "create", from, 0, what, vec![]));
    })
    .await?;
    report.phase = Some(st.phase);
    Ok(report)
}

/// The legacy Namespace object (its labels are what namespace selectors match), when readable.
async fn legacy_namespace(conn: &Connection, sides: &Sides) -> Result<Option<Value>, NsError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(conn.client.clone());
    match api.get_opt(&sides.legacy).await {
        Ok(ns) => Ok(ns.map(|n| {
            let mut v = serde_json::to_value(&n).unwrap_or_default();
            v["apiVersion"] = json!("v1");
            v["kind"] = json!("Namespace");
            v
        })),
        Err(_) => Ok(None),
    }
}
