//! `ns shift`: move the weight to the next step once the gates pass on the current state.

use super::*;

/// `ns shift`: one weight, or a schedule of weights (`steps`), gates between steps.
pub async fn shift(
    conn: &Connection,
    sides: &Sides,
    steps: &[u8],
    allow_decrease: bool,
    g: &GateOptions,
    opts: &RunOptions,
    events: &mut dyn FnMut(NsEvent),
) -> Result<Report, NsError> {
    let (_, st) = load_state(conn, sides).await?;
    let mut report = Report {
        namespace: sides.legacy.clone(),
        mesh_namespace: sides.mesh.clone(),
        command: "shift".into(),
        dry_run: opts.dry_run,
        passed: true,
        ..Report::default()
    };
    let todo: Vec<u8> = if steps.len() == 1 {
        // `Same` is applied again too: it finishes a shift that was interrupted half-way.
        match state::check_shift(st.as_ref(), &sides.legacy, steps[0], allow_decrease)? {
            ShiftDecision::Same | ShiftDecision::Move { .. } => vec![steps[0]],
        }
    } else {
        let rest = state::remaining_steps(st.as_ref(), &sides.legacy, steps)?;
        let done: Vec<String> = steps.iter().filter(|w| !rest.contains(w)).map(|w| format!("{w} %")).collect();
        if !done.is_empty() {
            report.notes.push(format!("already reached: {} (resuming the schedule)", done.join(", ")));
        }
        rest
    };
    let mut st = st.expect("checked above");
    report.weight = st.weight;
    report.phase = Some(st.phase);
    if let Some(p) = &st.pending {
        report.notes.push(format!("the `{}` to {} % started at {} by {} did not finish; resuming", p.action, p.to, p.at, p.who));
    }
    if todo.is_empty() {
        report.notes.push(format!("nothing to do: {} is at {} %", sides.legacy, st.weight));
        return Ok(report);
    }
    callers::report_ambient_callers(conn, sides, &mut report).await?;
    if opts.dry_run != DryRun::None {
        // Preview the first step only: later steps depend on the gates.
        let to = todo[0];
        if to > st.weight && gates_before(conn, sides, &st, to, g, opts, &mut report, events).await?.is_some() {
            return Ok(report);
        }
        let mut plan = Plan::new("ns-shift", &sides.legacy);
        plan.changes = routing_changes(conn, sides, &st, to).await?;
        run_plan(conn, &plan, opts, &mut report, events).await?;
        if todo.len() > 1 {
            report
                .notes
                .push(format!("then, if the gates pass: {}", todo[1..].iter().map(|w| format!("{w} %")).collect::<Vec<_>>().join(", ")));
        }
        report.weight = to;
        return Ok(report);
    }
    if todo.len() > 1 {
        let schedule = state::Schedule { steps: steps.to_vec(), interval_ms: g.interval.as_millis() as u64 };
        st = update_state(conn, sides, |s| s.schedule = Some(schedule)).await?;
    }
    let last = *todo.last().expect("non-empty");
    // Whether the gates passed on the current state within this run (the watch of the previous
    // step ends with a check): then the next weight follows at once.
    let mut checked = false;
    for to in todo {
        let from = st.weight;
        if to > from && !checked {
            // No more traffic to a mesh side that is unhealthy now.
            if let Some(after) = gates_before(conn, sides, &st, to, g, opts, &mut report, events).await? {
                report.weight = after.weight;
                report.phase = Some(after.phase);
                if after.schedule.is_some() && after.weight == from {
                    // Refused at 0 %: the schedule has not started, nothing is running.
                    update_state(conn, sides, |s| s.schedule = None).await?;
                }
                return Ok(report);
            }
        }
        events(NsEvent::Note(format!("weight {from} % -> {to} %")));
        st = set_weight(conn, sides, &st, to, "shift", opts, &mut report, events).await?;
        report.weight = st.weight;
        report.phase = Some(st.phase);
        let check = watch(conn, sides, &st, g, events).await?;
        report.gates = check.results.clone();
        if !gates::all_passed(&check.results) {
            report.passed = false;
            st = gate_failed(conn, sides, &st, check.results, g.on_failure, opts, &mut report, events).await?;
            report.weight = st.weight;
            report.phase = Some(st.phase);
            return Ok(report);
        }
        checked = true;
        st = gates_passed(conn, sides, opts, check, to == last).await?;
    }
    Ok(report)
}

/// Record a step whose gates passed; its restart counts become the baseline of the next.
pub(super) async fn gates_passed(conn: &Connection, sides: &Sides, opts: &RunOptions, check: GateCheck, schedule_done: bool) -> Result<NsState, NsError> {
    let who = opts.clone();
    update_state(conn, sides, move |s| {
        s.history.push(event(&who, "gates", s.weight, s.weight, "passed", check.results));
        s.restart_baseline = check.restarts.values().sum();
        s.restart_baselines = check.restarts;
        if schedule_done {
            s.schedule = None;
        }
    })
    .await
}

/// Apply the routing at `to` and record it (pending first, then the new weight).
#[allow(clippy::too_many_arguments)]
pub(super) async fn set_weight(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    to: u8,
    action: &str,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<NsState, NsError> {
    let mut plan = Plan::new("ns-shift", &sides.legacy);
    plan.changes = routing_changes(conn, sides, st, to).await?;
    let mine = begin(conn, sides, opts, action, to).await?;
    run_recorded(conn, sides, opts, &mine, &plan, report, events).await?;
    let who = opts.clone();
    let action = action.to_string();
    // The restart baseline stays where the migration started or its last step passed: restarts
    // since then count against the new weight too.
    update_state(conn, sides, move |s| {
        let from = s.weight;
        s.weight = to;
        s.phase = if to == 0 { Phase::Created } else { Phase::Shifting };
        s.failed_at = None;
        s.pending = None;
        s.history.push(event(&who, &action, from, to, "ok", vec![]));
    })
    .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn gate_failed(
    conn: &Connection,
    sides: &Sides,
    st: &NsState,
    results: Vec<GateResult>,
    policy: OnFailure,
    opts: &RunOptions,
    report: &mut Report,
    events: &mut dyn FnMut(NsEvent),
) -> Result<NsState, NsError> {
    let at = st.weight;
    let why = gates::failures(&results);
    match policy {
        OnFailure::Rollback => {
            events(NsEvent::Note(format!("gate failed at {at} %: {why}; moving traffic back to 0 %")));
            let mut plan = Plan::new("ns-shift", &sides.legacy);
            plan.changes = routing_changes(conn, sides, st, 0).await?;
            let mine = begin(conn, sides, opts, "gate-rollback", 0).await?;
            run_recorded(conn, sides, opts, &mine, &plan, report, events).await?;
            report.notes.push(format!("gate failed at {at} %: {why}; traffic is back at 0 %, the mesh side still runs"));
        }
        OnFailure::Freeze => {
            events(NsEvent::Note(format!("gate failed at {at} %: {why}; holding the weight")));
            report.notes.push(format!("gate failed at {at} %: {why}; the weight is frozen at {at} % for a human to decide"));
        }
    }
    let who = opts.clone();
    update_state(conn, sides, move |s| {
        s.pending = None;
        state::after_gate_failure(s, policy);
        let result = match policy {
            OnFailure::Rollback => format!("rolled back to 0 %: {why}"),
            OnFailure::Freeze => format!("frozen at {at} %: {why}"),
        };
        s.history.push(event(&who, "gate-failed", at, s.weight, result, results));
    })
    .await
}
