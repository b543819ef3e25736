//! `ns status` and `ns monitor`: the state, the routes and samples of both sides.

use super::*;

/// The routing as it is in the cluster, per Service.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteState {
    pub service: String,
    /// `None`: missing, or its routes disagree.
    pub weight: Option<u8>,
    pub present: bool,
}

/// `ns status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub namespace: String,
    pub mesh_namespace: String,
    pub state: Option<NsState>,
    pub routes: Vec<RouteState>,
    /// External traffic: the Ingresses and HTTPRoutes served by the Istio ingress gateway, and
    /// whether their hosts have been switched to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStatus>,
    /// Differences between the recorded state and the cluster, explained.
    pub problems: Vec<String>,
    /// The journal's record of the last `ns-*` engine step that did not complete.
    pub next: String,
}

pub async fn status(conn: &Connection, sides: &Sides) -> Result<Status, NsError> {
    let (journal, st) = load_state(conn, sides).await?;
    let mut problems = Vec::new();
    let mut routes = Vec::new();
    let Some(s) = st else {
        return Ok(Status {
            namespace: sides.legacy.clone(),
            mesh_namespace: sides.mesh.clone(),
            state: None,
            routes,
            external: None,
            problems,
            next: format!("kubectl mesh-migrate ns create {}", sides.legacy),
        });
    };
    if namespace_exists(conn, &sides.mesh).await? {
        let vss = objects(conn, &[&kinds::VIRTUAL_SERVICE], &sides.mesh).await.unwrap_or_default();
        for name in &s.services {
            let vs = vss.iter().find(|v| name_of(v) == name);
            let weight = vs.and_then(|v| routing::weight_of(sides, v));
            routes.push(RouteState { service: name.clone(), weight, present: vs.is_some() });
            match (vs, weight) {
                (None, _) if s.phase != Phase::RolledBack || s.weight > 0 => {
                    problems.push(format!("VirtualService {}/{name} is missing", sides.mesh))
                }
                (Some(_), None) => problems.push(format!("VirtualService {}/{name}: its routes disagree or do not sum to 100 (edited by hand?)", sides.mesh)),
                (Some(_), Some(w)) if w != s.weight && s.pending.is_none() => problems.push(format!(
                    "VirtualService {}/{name} routes {w} % to the mesh, but the recorded weight is {} %: it was changed outside this tool; `ns shift {} {}` (with --allow-decrease if lower) restores the recorded weight",
                    sides.mesh, s.weight, sides.legacy, s.weight
                )),
                _ => {}
            }
        }
        for r in &s.external {
            for name in &r.virtual_services {
                match vss.iter().find(|v| name_of(v) == name).map(|v| crate::namespace::external::weight_of(sides, v)) {
                    None if s.phase != Phase::RolledBack || s.weight > 0 => {
                        problems.push(format!("VirtualService {}/{name} (external traffic of {}) is missing", sides.mesh, r.source))
                    }
                    Some(None) => problems.push(format!("VirtualService {}/{name}: its split routes disagree (edited by hand?)", sides.mesh)),
                    Some(Some(Some(w))) if w != s.weight && s.pending.is_none() => problems.push(format!(
                        "VirtualService {}/{name} (external traffic of {}) routes {w} % to the mesh, but the recorded weight is {} %: `ns shift {} {}` restores it",
                        sides.mesh, r.source, s.weight, sides.legacy, s.weight
                    )),
                    _ => {}
                }
            }
        }
    } else {
        problems.push(format!("namespace {} does not exist", sides.mesh));
    }
    if let Some(p) = &s.pending {
        let applied: Vec<String> = routes.iter().filter(|r| r.weight == Some(p.to)).map(|r| r.service.clone()).collect();
        let mut msg = format!("the `{}` to {} % started at {} by {} did not finish", p.action, p.to, p.at, p.who);
        if let Some(e) = &p.error {
            msg.push_str(&format!(": {e}"));
        }
        if p.action == "shift" || p.action == "gate-rollback" {
            msg.push_str(&format!(
                "; {} of {} VirtualServices already route {} % (the recorded weight stays {} % until all do)",
                applied.len(),
                routes.len(),
                p.to,
                s.weight
            ));
        }
        problems.push(msg);
    }
    if let Some(j) = &journal
        && let Some(last) = j.steps.iter().rev().find(|r| r.step.starts_with("ns-"))
        && last.status == plan::StepStatus::Failed
        && s.pending.is_some()
    {
        problems.push(format!(
            "journal: step {} by {} at {} failed{}",
            last.step,
            last.who,
            last.started_at,
            last.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    let external = external_status(conn, sides, &s).await?;
    let next = s.next_step();
    Ok(Status { namespace: sides.legacy.clone(), mesh_namespace: sides.mesh.clone(), state: Some(s), routes, external: Some(external), problems, next })
}

/// One namespace's migration in `ns status -A`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub namespace: String,
    pub mesh_namespace: String,
    /// `None` when the journal could not be read (then `problem` says why).
    pub state: Option<NsState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `ns status -A`: every namespace whose journal records a namespace-based migration, from one
/// LIST of the journal ConfigMaps across namespaces (by their `managed-by` label). Journals of
/// in-place migrations (no migration state) are left out; a journal that cannot be read is
/// listed with the reason.
pub async fn status_all(conn: &Connection) -> Result<Vec<Summary>, NsError> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::all(conn.client.clone());
    let lp = kube::api::ListParams::default().labels(&format!("{}={}", plan::MANAGED_BY.0, plan::MANAGED_BY.1));
    let list = api.list(&lp).await.map_err(|e| {
        NsError::Plan(PlanError::Cluster(ClusterError::Api {
            verb: "list",
            resource: "configmaps (all namespaces)".to_string(),
            message: e.to_string(),
            source: e,
        }))
    })?;
    let mut out = Vec::new();
    for cm in list.items {
        if cm.metadata.name.as_deref() != Some(plan::JOURNAL_NAME) {
            continue;
        }
        let Some(ns) = cm.metadata.namespace.clone() else { continue };
        let mesh = format!("{ns}{}", crate::namespace::MESH_SUFFIX);
        let value = serde_json::to_value(&cm).unwrap_or_default();
        let parsed = Journal::from_config_map(&ns, &value).map_err(|e| e.to_string()).and_then(|j| match j.extensions.get(STATE_KEY) {
            None => Ok(None),
            Some(v) => serde_json::from_value::<NsState>(v.clone())
                .map(Some)
                .map_err(|e| format!("the journal holds a migration state this version cannot read: {e}")),
        });
        match parsed {
            Ok(None) => {}
            Ok(Some(st)) => out.push(Summary { namespace: ns, mesh_namespace: mesh, state: Some(st), problem: None }),
            Err(problem) => out.push(Summary { namespace: ns, mesh_namespace: mesh, state: None, problem: Some(problem) }),
        }
    }
    out.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(out)
}

/// One side in a monitor sample.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SideSample {
    pub namespace: String,
    pub ready_pods: i64,
    pub desired_pods: i64,
    pub restarts: u64,
    /// Percent, when Prometheus answered.
    pub success_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One refresh of `ns monitor`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub at: String,
    pub phase: Option<Phase>,
    /// The recorded weight.
    pub weight: u8,
    pub legacy: SideSample,
    pub mesh: SideSample,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

pub(super) async fn side(
    conn: &Connection,
    ns: &str,
    names: &[WorkloadRecord],
    prom: Option<&Prometheus>,
    reporter: &str,
    window: &str,
) -> Result<(SideSample, Vec<String>), NsError> {
    let mut notes = Vec::new();
    let live = if namespace_exists(conn, ns).await? {
        objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::POD], ns).await?
    } else {
        Vec::new()
    };
    let mut ready = 0;
    let mut desired = 0;
    for w in names {
        if let Some(o) = live.iter().find(|o| kind_of(o) == w.kind && name_of(o) == w.name) {
            let r = plan::workload_ready(&w.kind, o);
            ready += r.ready_pods;
            desired += r.desired;
        }
    }
    let pods: Vec<Value> = live.iter().filter(|o| kind_of(o) == "Pod").cloned().collect();
    let mut s = SideSample {
        namespace: ns.to_string(),
        ready_pods: ready,
        desired_pods: desired,
        restarts: gates::restart_count(&pods),
        success_rate: None,
        p99_ms: None,
    };
    if let Some(p) = prom {
        let t = Some(unix_now());
        match p.query(&gates::success_rate_query_by(ns, reporter, window), t).await {
            Ok(v) => s.success_rate = v.map(|r| r * 100.0),
            Err(e) => notes.push(e.to_string()),
        }
        match p.query(&gates::p99_query_by(ns, reporter, window), t).await {
            Ok(v) => s.p99_ms = v,
            Err(e) => notes.push(e.to_string()),
        }
    }
    Ok((s, notes))
}

/// One monitor sample: weight, and per side readiness, restarts, success rate and p99.
pub async fn sample(conn: &Connection, sides: &Sides, prom: Option<&Prometheus>, window: &str) -> Result<Sample, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let Some(st) = st else {
        return Err(refused(format!(
            "no migration of {} is recorded: run `kubectl mesh-migrate ns create {}` first",
            sides.legacy, sides.legacy
        )));
    };
    // The legacy side has no proxies (sidecar mode): its traffic is what meshed callers report.
    // The mesh side's requests are reported by its sidecars, or in ambient by its waypoint
    // (ztunnel emits no request metrics: without a waypoint there are none to show).
    let (legacy, mut notes) = side(conn, &sides.legacy, &st.workloads, prom, "source", window).await?;
    let mesh_reporter = match (&st.data_plane, &st.waypoint) {
        (crate::namespace::DataPlane::Ambient, Some(_)) => meshmove_istio::waypoint::Source::Waypoint.reporter(),
        _ => meshmove_istio::waypoint::Source::Sidecar.reporter(),
    };
    let (mesh, more) = side(conn, &sides.mesh, &st.workloads, prom, mesh_reporter, window).await?;
    notes.extend(more);
    notes.dedup();
    Ok(Sample { at: now(), phase: Some(st.phase), weight: st.weight, legacy, mesh, notes })
}
