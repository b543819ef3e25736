//! Agent checks: a SPIRE agent and the SPIFFE CSI driver on every node that can run workloads.
//!
//! A node without an agent is where pods wait forever for an SVID. Which nodes *should* have one
//! is the DaemonSet's own placement: nodes that are cordoned, or carry a NoSchedule/NoExecute
//! taint the DaemonSet does not tolerate, or fall outside its node selector or required affinity,
//! are not expected to run it (and cannot run meshed workloads that need it either, unless those
//! tolerate more than the agent does, which this check does not try to prove).

use std::collections::BTreeSet;

use serde_json::Value;

use super::server::Readiness;
use meshmove_model::inventory::{Object, ObjectRef, kinds};
use crate::CSI_DRIVER_NAME;
use crate::catalog;
use crate::context::SpireContext;
use crate::model::{CategoryDef, CheckDef, Detail, Verdict};
use crate::selector::daemon_excluded_from;
use meshmove_model::workload::{self, Workload};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "spire-agent",
        available: |cx| {
            if let Some(why) = cx.unread(&[&kinds::DAEMON_SET]) {
                Err(why)
            } else if cx.live() || cx.inventory.has(&kinds::DAEMON_SET) {
                Ok(())
            } else {
                Err("no DaemonSet in the input".into())
            }
        },
        checks: vec![
            CheckDef::new(&catalog::AGENT_FOUND, agent_found),
            CheckDef::new(&catalog::AGENT_READY, agent_ready),
            CheckDef::new(&catalog::AGENT_ON_EVERY_NODE, agent_on_every_node),
            CheckDef::new(&catalog::CSI_DRIVER_FOUND, csi_found),
            CheckDef::new(&catalog::CSI_DRIVER_REGISTERED, csi_registered),
            CheckDef::new(&catalog::CSI_DRIVER_READY, csi_ready),
        ],
    }
}

fn agent_found(cx: &SpireContext<'_>) -> Verdict {
    if cx.agents.is_empty() {
        let how = cx.options.agent_selector.as_ref().map_or_else(
            || "labels app=spire-agent or app.kubernetes.io/name=agent, or a spire-agent container".to_string(),
            |s| format!("selector {s}"),
        );
        return Verdict::Fail(vec![Detail::new(format!("no DaemonSet matches {how}"))]);
    }
    Verdict::Pass(cx.agents.iter().map(|a| Detail::on(a, "SPIRE agent")).collect())
}

/// `desiredNumberScheduled` against `numberReady`.
fn daemon_readiness(ds: &Object, live: bool) -> Readiness {
    let status = ds.value.get("status").filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
    if status.is_none() && !live {
        return Readiness::NoStatus;
    }
    let n = |k: &str| ds.value.pointer(&format!("/status/{k}")).and_then(Value::as_i64).unwrap_or(0);
    let (desired, ready) = (n("desiredNumberScheduled"), n("numberReady"));
    if ready < desired { Readiness::NotReady(format!("{ready}/{desired} pods ready")) } else { Readiness::Ready }
}

fn daemons_ready(cx: &SpireContext<'_>, daemons: &[&Object], what: &str) -> Verdict {
    if daemons.is_empty() {
        return Verdict::Skip(format!("no {what} DaemonSet found"));
    }
    let mut problems = Vec::new();
    let mut info = Vec::new();
    for ds in daemons {
        match daemon_readiness(ds, cx.live()) {
            Readiness::NotReady(p) => problems.push(Detail::on(ds, p)),
            Readiness::Ready => info.push(Detail::on(ds, "all pods ready")),
            Readiness::NoStatus => {}
        }
    }
    if problems.is_empty() && info.is_empty() {
        return Verdict::Skip("the input has no status (manifests); readiness is checked on a live cluster".into());
    }
    Verdict::from_problems_or(problems, info)
}

fn agent_ready(cx: &SpireContext<'_>) -> Verdict {
    daemons_ready(cx, &cx.agents, "SPIRE agent")
}

/// Schedulable nodes the DaemonSets are expected on but run no Running pod of theirs.
fn nodes_missing(cx: &SpireContext<'_>, daemons: &[&Object], what: &str) -> Verdict {
    if daemons.is_empty() {
        return Verdict::Skip(format!("no {what} DaemonSet found"));
    }
    if !cx.inventory.has(&kinds::NODE) || !cx.inventory.has(&kinds::POD) {
        return Verdict::Skip("needs Nodes and Pods (a live cluster)".into());
    }
    // Nodes with a Running pod of each DaemonSet, computed once per DaemonSet.
    let running: Vec<BTreeSet<&str>> = daemons
        .iter()
        .map(|ds| {
            cx.inventory
                .of(&kinds::POD)
                .filter(|p| {
                    p.namespace == ds.namespace
                        && workload::owner(p) == Some(("DaemonSet", ds.name.as_str()))
                        && p.value.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                })
                .filter_map(|p| p.value.pointer("/spec/nodeName").and_then(Value::as_str))
                .collect()
        })
        .collect();
    let mut problems = Vec::new();
    let mut excluded = Vec::new();
    let mut covered = 0usize;
    for node in cx.inventory.of(&kinds::NODE) {
        let mut expected = false;
        for (ds, on_nodes) in daemons.iter().zip(&running) {
            let spec = Workload::of(ds).and_then(|w| w.pod_spec());
            if let Some(why) = daemon_excluded_from(spec, &node.value) {
                excluded.push(format!("{} ({why})", node.name));
                continue;
            }
            expected = true;
            if !on_nodes.contains(node.name.as_str()) {
                problems.push(Detail::on(node, format!("no running {what} pod of {}", ds.object_ref())));
            }
        }
        if expected {
            covered += 1;
        }
    }
    excluded.sort();
    excluded.dedup();
    let mut info = vec![Detail::new(format!("{covered} node(s) expected to run {what}"))];
    if !excluded.is_empty() {
        info.push(Detail::new(format!("not expected on: {}", excluded.join(", "))));
    }
    Verdict::from_problems_or(problems, info)
}

fn agent_on_every_node(cx: &SpireContext<'_>) -> Verdict {
    nodes_missing(cx, &cx.agents, "SPIRE agent")
}

fn csi_found(cx: &SpireContext<'_>) -> Verdict {
    if cx.csi_drivers.is_empty() {
        let how = cx.options.csi_selector.as_ref().map_or_else(
            || "labels app=spiffe-csi-driver or app.kubernetes.io/name=spiffe-csi-driver, or a spiffe-csi-driver container".to_string(),
            |s| format!("selector {s}"),
        );
        return Verdict::Fail(vec![Detail::new(format!("no DaemonSet matches {how}"))]);
    }
    Verdict::Pass(cx.csi_drivers.iter().map(|a| Detail::on(a, "SPIFFE CSI driver")).collect())
}

fn csi_registered(cx: &SpireContext<'_>) -> Verdict {
    if let Some(o) = cx.inventory.get(&kinds::CSI_DRIVER, None, CSI_DRIVER_NAME) {
        return Verdict::Pass(vec![Detail::on(o, "registered")]);
    }
    if !cx.live() && !cx.inventory.has(&kinds::CSI_DRIVER) && cx.csi_drivers.is_empty() {
        return Verdict::Skip("no CSIDriver in the input".into());
    }
    if let Some(why) = cx.unread(&[&kinds::CSI_DRIVER]) {
        return Verdict::Skip(why);
    }
    Verdict::Fail(vec![Detail::on_ref(
        ObjectRef::new("CSIDriver", None, CSI_DRIVER_NAME),
        "not found: kubelet cannot mount csi.spiffe.io volumes",
    )])
}

fn csi_ready(cx: &SpireContext<'_>) -> Verdict {
    let ready = daemons_ready(cx, &cx.csi_drivers, "SPIFFE CSI driver");
    let nodes = nodes_missing(cx, &cx.csi_drivers, "SPIFFE CSI driver");
    match (ready, nodes) {
        (Verdict::Fail(mut a), Verdict::Fail(b)) => {
            a.extend(b);
            Verdict::from_problems(a)
        }
        (Verdict::Fail(a), _) | (_, Verdict::Fail(a)) => Verdict::Fail(a),
        (Verdict::Skip(a), Verdict::Skip(_)) => Verdict::Skip(a),
        (Verdict::Pass(mut a), Verdict::Pass(b)) => {
            a.extend(b);
            Verdict::Pass(a)
        }
        (Verdict::Pass(a), Verdict::Skip(_)) | (Verdict::Skip(_), Verdict::Pass(a)) => Verdict::Pass(a),
    }
}
