//! The gates: readiness, restarts and (with Prometheus) error rate and latency of the mesh side,
//! checked on the current state before a weight is written.

use super::*;

pub(super) async fn mesh_restart_counts(conn: &Connection, sides: &Sides) -> Result<BTreeMap<String, u64>, NsError> {
    let pods = objects(conn, &[&kinds::POD], &sides.mesh).await?;
    Ok(gates::restart_counts(&pods))
}

/// One check of the gates.
#[derive(Debug, Clone)]
pub struct GateCheck {
    pub results: Vec<GateResult>,
    /// Container restarts per mesh pod at the check: the next baseline when the gates passed.
    pub restarts: BTreeMap<String, u64>,
}

/// Check every gate now. Without `metrics` the Prometheus gates are left out: before the first
/// step no traffic reaches the mesh side, and "no samples" would fail them.
pub async fn check_gates(conn: &Connection, sides: &Sides, st: &NsState, g: &GateOptions, metrics: bool) -> Result<GateCheck, NsError> {
    let live = objects(conn, &[&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::POD], &sides.mesh).await?;
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for w in &st.workloads {
        match live.iter().find(|o| kind_of(o) == w.kind && name_of(o) == w.name) {
            Some(o) => present.push(o.clone()),
            None => missing.push(format!("{}/{}", w.kind, w.name)),
        }
    }
    let pods: Vec<Value> = live.iter().filter(|o| kind_of(o) == "Pod").cloned().collect();
    // Journals written before per-pod baselines hold only the total.
    let new = if st.restart_baselines.is_empty() && st.restart_baseline > 0 {
        gates::restart_count(&pods).saturating_sub(st.restart_baseline)
    } else {
        gates::new_restarts(&pods, &st.restart_baselines)
    };
    let mut results = vec![gates::readiness(&present, &missing, &pods), gates::restarts(new, &g.thresholds)];
    if metrics && let Some(prom) = &g.prometheus {
        let t = Some(unix_now());
        let traffic = mesh_traffic(conn, sides, st).await?;
        for gate in gates::metric_gates(&sides.mesh, traffic, &g.thresholds.window) {
            let sample = prom.query(&gate.query, t).await;
            results.push(gate.judge(&sample, &g.thresholds));
        }
    }
    Ok(GateCheck { results, restarts: gates::restart_counts(&pods) })
}

/// What the metrics gates need to know of the mesh side: its data plane, whether a waypoint
/// serves it, and whether its routed Services have HTTP-family ports (Istio's protocol
/// selection, as the routing reads it: [`routing::port_protocol`]).
pub(super) async fn mesh_traffic(conn: &Connection, sides: &Sides, st: &NsState) -> Result<gates::MeshTraffic, NsError> {
    let ambient = st.data_plane == crate::namespace::DataPlane::Ambient;
    let services = objects(conn, &[&kinds::SERVICE], &sides.mesh).await?;
    let mut traffic = gates::MeshTraffic { ambient, waypoint: ambient && st.waypoint.is_some(), ..Default::default() };
    for svc in services.iter().filter(|s| st.services.iter().any(|n| n == name_of(s))) {
        let ports = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if ports.iter().any(|p| routing::port_protocol(p) == routing::PortProtocol::Http) {
            traffic.http = true;
        } else {
            traffic.tcp_only = true;
        }
    }
    Ok(traffic)
}

pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Watch the gates for `g.interval` (checking every `g.check_every`); the first failed check
/// ends the watch. With a zero interval the gates are checked once.
pub(super) async fn watch(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    g: &GateOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<GateCheck, NsError> {
    let start = Instant::now();
    if !g.interval.is_zero() {
        events(NsEvent::Note(format!("watching {} % for {} before the next step", st.weight, meshmove_model::duration::show(g.interval))));
    }
    loop {
        let elapsed = start.elapsed();
        let remaining = g.interval.saturating_sub(elapsed);
        if !remaining.is_zero() {
            let every = if g.check_every.is_zero() { remaining } else { g.check_every.min(remaining) };
            tokio::time::sleep(every).await;
        }
        let check = check_gates(conn, sides, st, g, st.weight > 0).await?;
        events(NsEvent::Gates { weight: st.weight, results: check.results.clone() });
        if !gates::all_passed(&check.results) || start.elapsed() >= g.interval {
            return Ok(check);
        }
    }
}


/// The gates on the current state, before a higher weight is written. `Ok(None)`: they passed
/// (go ahead). `Ok(Some(state))`: they failed, nothing of the next weight was written, and the
/// report says why; at a weight above 0 the failure policy applied (back to 0 %, or frozen), at
/// 0 % nothing moved (the metrics gates wait for traffic; readiness and restarts do not).
#[allow(clippy::too_many_arguments)]
pub(super) async fn gates_before(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    to: u8,
    g: &GateOptions,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Option<NsState>, NsError> {
    let from = st.weight;
    let check = check_gates(conn, sides, st, g, from > 0).await?;
    events(NsEvent::Gates { weight: from, results: check.results.clone() });
    if gates::all_passed(&check.results) {
        return Ok(None);
    }
    report.passed = false;
    report.gates = check.results.clone();
    let why = gates::failures(&check.results);
    report.notes.push(format!("not shifting to {to} %: the gates fail on the current state at {from} %: {why}"));
    if opts.dry_run != DryRun::None {
        return Ok(Some(st.clone()));
    }
    if from > 0 {
        return gate_failed(conn, sides, st, check.results, g.on_failure, opts, report, events).await.map(Some);
    }
    let who = opts.clone();
    let results = check.results;
    update_state(conn, sides, move |s| {
        s.history.push(event(&who, "gate-failed", from, from, format!("not shifted to {to} %: {why}"), results));
    })
    .await
    .map(Some)
}
