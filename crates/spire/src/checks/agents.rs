//! Agent checks: a SPIRE agent and the SPIFFE CSI driver on every node that can run workloads.
//!
//! A node without an agent is where pods wait forever for an SVID. Two questions, two checks:
//! does every node the DaemonSet places itself on run its pod (SC2103: nodes that are cordoned,
//! carry a NoSchedule/NoExecute taint the DaemonSet does not tolerate, or fall outside its node
//! selector or required affinity are not expected to); and, from the other side, does every node
//! that runs or can receive a pod needing the Workload API get an agent at all (SC2107). The
//! second is where a too narrow nodeSelector hides: the DaemonSet is "complete" on its own terms
//! while meshed pods land next door. A pod needs the Workload API when Istio's `spire` injection
//! template applies to it, when it mounts a `csi.spiffe.io` volume, or when it mounts the agent's
//! socket directory (a hostPath the agent DaemonSet mounts too). Where such pods *can* land is
//! the scheduler's rule for their template ([`crate::selector::pod_cannot_run_on`]); where the
//! agent can run, the DaemonSet controller's ([`crate::selector::daemon_cannot_run_on`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::server::Readiness;
use meshmove_model::inventory::{Object, ObjectRef, kinds};
use crate::CSI_DRIVER_NAME;
use crate::catalog;
use crate::context::{SpireContext, Subject};
use meshmove_model::findings::{CategoryDef, CategoryUnavailable, CheckDef, Detail, Verdict};
use crate::selector::{daemon_cannot_run_on, daemon_excluded_from, pod_cannot_run_on};
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
                Err(CategoryUnavailable::NotInInput("no DaemonSet in the input"))
            }
        },
        checks: vec![
            CheckDef::new(&catalog::AGENT_FOUND, agent_found),
            CheckDef::new(&catalog::AGENT_READY, agent_ready).after(&[&catalog::AGENT_FOUND]),
            CheckDef::new(&catalog::AGENT_ON_EVERY_NODE, agent_on_every_node).after(&[&catalog::AGENT_FOUND]),
            CheckDef::new(&catalog::AGENT_WHERE_NEEDED, agent_where_needed).after(&[&catalog::AGENT_FOUND]),
            CheckDef::new(&catalog::CSI_DRIVER_FOUND, csi_found),
            CheckDef::new(&catalog::CSI_DRIVER_REGISTERED, csi_registered),
            CheckDef::new(&catalog::CSI_DRIVER_READY, csi_ready).after(&[&catalog::CSI_DRIVER_FOUND]),
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
        return Verdict::Skip("needs the Nodes and Pods (a live cluster, or manifests that include them)".into());
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

/// Whether a pod is ready: Running, and its Ready condition true (a pod object without
/// conditions, as hand-written manifests have, counts as ready when Running).
fn pod_ready(p: &Object) -> bool {
    let running = p.value.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let ready = p
        .value
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .is_none_or(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    running && ready
}

/// Host paths the agent DaemonSets mount: a pod mounting one of them reaches the agent's socket.
fn agent_host_paths(cx: &SpireContext<'_>) -> BTreeSet<String> {
    cx.agents
        .iter()
        .filter_map(|a| Workload::of(a)?.pod_spec())
        .flat_map(|spec| spec.get("volumes").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|v| v.pointer("/hostPath/path").and_then(Value::as_str))
        .map(|p| p.trim_end_matches('/').to_string())
        .collect()
}

/// Why a pod (or pod template) needs the Workload API, if it does. `subject` is the pod as a
/// meshed subject (a template as the injector will make it), when it is meshed.
fn needs_workload_api(
    cx: &SpireContext<'_>,
    subject: Option<&Subject<'_>>,
    pod: &Value,
    sockets: &BTreeSet<String>,
) -> Option<String> {
    if let Some(s) = subject
        && super::istio::gets_socket(cx, s)
        && !s.mounts_socket(&cx.options.socket_path)
    {
        return Some("the spire injection template".into());
    }
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten();
    for v in volumes {
        if v.pointer("/csi/driver").and_then(Value::as_str) == Some(CSI_DRIVER_NAME) {
            return Some(format!("a {CSI_DRIVER_NAME} volume"));
        }
        if let Some(path) = v.pointer("/hostPath/path").and_then(Value::as_str)
            && sockets.contains(path.trim_end_matches('/'))
        {
            return Some(format!("the agent socket directory {path}"));
        }
    }
    None
}

/// `a, b, c and 4 more`
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 5;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!("{} and {} more", names[..SHOWN].join(", "), names.len() - SHOWN)
}

/// SC2107: every node that runs, or can receive, a pod needing the Workload API can run an agent,
/// and where such pods run, the agent pod is ready (a node with no agent pod at all is SC2103's).
fn agent_where_needed(cx: &SpireContext<'_>) -> Verdict {
    if cx.agents.is_empty() {
        return Verdict::Skip("no SPIRE agent DaemonSet found".into());
    }
    if let Some(why) = cx.unread(&[&kinds::NODE, &kinds::POD]) {
        return Verdict::Skip(why.to_string());
    }
    if !cx.inventory.has(&kinds::NODE) {
        return Verdict::Skip("needs the Nodes (a live cluster, or manifests that include them)".into());
    }
    let sockets = agent_host_paths(cx);
    // SPIRE's own DaemonSets mount the socket directory; they are not its users.
    let spire_own: BTreeSet<_> = cx.agents.iter().chain(&cx.csi_drivers).map(|o| o.object_ref()).collect();
    let in_scope = |o: &Object| {
        !spire_own.contains(&o.object_ref())
            && cx.options.workload_namespace.as_deref().is_none_or(|ns| o.namespace.as_deref() == Some(ns))
    };
    // Node name → (pods there that need the API, templates that can land there and need it).
    let mut need: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let nodes: Vec<&Object> = cx.inventory.of(&kinds::NODE).collect();
    // Top-level workload → why it needs the Workload API.
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    for p in cx.inventory.of(&kinds::POD) {
        let owner = workload::pod_owner(cx.inventory, p);
        if !in_scope(p) || owner.is_some_and(|o| !in_scope(o)) {
            continue;
        }
        if matches!(p.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(node) = p.value.pointer("/spec/nodeName").and_then(Value::as_str) else { continue };
        let subject = cx.subjects.iter().find(|s| std::ptr::eq(s.object, p));
        if let Some(reason) = needs_workload_api(cx, subject, &p.value, &sockets) {
            why.entry(owner.unwrap_or(p).object_ref().to_string()).or_insert(reason);
            need.entry(node.to_string()).or_default().0.push(p.object_ref().to_string());
        }
    }
    for w in workload::workloads(cx.inventory) {
        // Scheduled pods were taken above, with the node they run on.
        let scheduled = w.kind() == "Pod" && w.object.value.pointer("/spec/nodeName").is_some();
        if scheduled || !in_scope(w.object) {
            continue;
        }
        let subject = cx.template_subject(&w);
        let Some(reason) = needs_workload_api(cx, subject.as_ref(), w.template, &sockets) else { continue };
        why.entry(w.object.object_ref().to_string()).or_insert(reason);
        for node in &nodes {
            let blocked = if w.kind() == "DaemonSet" {
                daemon_cannot_run_on(w.pod_spec(), &node.value)
            } else {
                pod_cannot_run_on(w.pod_spec(), &node.value)
            };
            if blocked.is_none() {
                need.entry(node.name.clone()).or_default().1.push(w.object.object_ref().to_string());
            }
        }
    }
    let mut problems = Vec::new();
    for (node_name, (running, receivable)) in &need {
        let Some(node) = nodes.iter().find(|n| n.name == *node_name) else { continue };
        let blocked: Vec<String> = cx
            .agents
            .iter()
            .filter_map(|a| {
                daemon_cannot_run_on(Workload::of(a).and_then(|w| w.pod_spec()), &node.value)
                    .map(|why| format!("{}: {why}", a.object_ref()))
            })
            .collect();
        if blocked.len() == cx.agents.len() {
            let mut parts = Vec::new();
            if !running.is_empty() {
                parts.push(format!("it runs {}", some_of(running)));
            }
            if !receivable.is_empty() {
                parts.push(format!("{} can be scheduled here", some_of(receivable)));
            }
            problems.push(Detail::on(
                node,
                format!(
                    "no SPIRE agent can run here ({}), yet {}: these pods need the Workload API and wait forever for an SVID",
                    blocked.join("; "),
                    parts.join(" and ")
                ),
            ));
            continue;
        }
        if running.is_empty() {
            continue;
        }
        let agent_pods: Vec<&Object> = cx
            .inventory
            .of(&kinds::POD)
            .filter(|p| p.value.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node_name.as_str()))
            .filter(|p| {
                cx.agents.iter().any(|a| p.namespace == a.namespace && workload::owner(p) == Some(("DaemonSet", a.name.as_str())))
            })
            .filter(|p| !matches!(p.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")))
            .collect();
        if !agent_pods.is_empty() && !agent_pods.iter().any(|p| pod_ready(p)) {
            let names: Vec<String> = agent_pods.iter().map(|p| p.object_ref().to_string()).collect();
            problems.push(Detail::on(
                node,
                format!(
                    "the SPIRE agent pod here ({}) is not ready, yet it runs {}: these pods need the Workload API and wait for an SVID",
                    names.join(", "),
                    some_of(running)
                ),
            ));
        }
    }
    // Counted by top-level workload, so that a cluster and its manifests say the same.
    let info = vec![Detail::new(format!(
        "{} node(s) run or can receive pods of {} workload(s) that need the Workload API",
        need.len(),
        why.len()
    ))];
    Verdict::from_problems_or(problems, info)
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
        return Verdict::Skip(why.to_string());
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
