//! `status`: where a namespace stands — per workload meshed or not and the proxy revision; for
//! the namespace the data-plane mode, the mTLS mode, the Istio objects present and the steps the
//! journal recorded, with what is pending.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{PEER_AUTHENTICATION, STEP_ENABLE, STEP_MTLS, ambient_captured, namespace_mode, namespace_object, proxy_revision};
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_kube::plan::{Journal, StepRecord, StepStatus};
use meshmove_model::workload::pod_owner;

/// One workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub kind: String,
    pub name: String,
    pub pods: usize,
    pub meshed_pods: usize,
    /// Proxy revisions of the meshed pods.
    pub revisions: Vec<String>,
    /// `meshed`, `partly meshed`, `not meshed`, or `no pods`; in an ambient namespace `captured`,
    /// `partly captured` or `not captured` (by ztunnel, per pod annotation).
    pub state: String,
}

/// One namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    pub namespace: String,
    /// `sidecar`, `sidecar (revision X)`, `ambient`, or `None` when not labelled for the mesh.
    pub mode: Option<String>,
    /// Mode of the namespace-wide PeerAuthentication (`PERMISSIVE`, `STRICT` ...), if any.
    pub mtls: Option<String>,
    /// Istio objects by kind.
    pub istio_objects: BTreeMap<String, Vec<String>>,
    pub workloads: Vec<WorkloadStatus>,
    /// Steps recorded in the journal, oldest first.
    pub steps: Vec<StepRecord>,
    /// What to do next.
    pub pending: Vec<String>,
}

/// Build the status of `namespace`.
pub fn status(inventory: &Inventory, namespace: &str, journal: Option<&Journal>) -> NamespaceStatus {
    let in_ns = |o: &&meshmove_model::inventory::Object| o.namespace.as_deref() == Some(namespace);
    let mode = namespace_object(inventory, namespace).and_then(namespace_mode);
    let mtls = inventory
        .of(&kinds::PEER_AUTHENTICATION)
        .filter(in_ns)
        .filter(|p| p.name == PEER_AUTHENTICATION || p.value.pointer("/spec/selector").is_none())
        .find_map(|p| p.value.pointer("/spec/mtls/mode").and_then(Value::as_str).map(str::to_string));
    let mut istio_objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in [&kinds::ISTIO_GATEWAY, &kinds::VIRTUAL_SERVICE, &kinds::DESTINATION_RULE, &kinds::PEER_AUTHENTICATION] {
        let names: Vec<String> = inventory.of(k).filter(in_ns).map(|o| o.name.clone()).collect();
        if !names.is_empty() {
            istio_objects.insert(k.kind.to_string(), names);
        }
    }
    // In ambient mode a pod is on the mesh once ztunnel captured it; the label alone is a wish.
    let ambient = mode.as_deref() == Some("ambient");
    let mut per: BTreeMap<(String, String), (usize, usize, Vec<String>)> = BTreeMap::new();
    for k in [&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::CRON_JOB, &kinds::JOB] {
        for o in inventory.of(k).filter(in_ns) {
            // Jobs a CronJob made are counted with the CronJob.
            if o.kind == "Job" && meshmove_model::workload::owner(o).is_some() {
                continue;
            }
            per.entry((o.kind.clone(), o.name.clone())).or_default();
        }
    }
    for pod in inventory.of(&kinds::POD).filter(in_ns) {
        if matches!(pod.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
            continue;
        }
        let key = pod_owner(inventory, pod).map_or_else(|| ("Pod".to_string(), pod.name.clone()), |o| (o.kind.clone(), o.name.clone()));
        let e = per.entry(key).or_default();
        e.0 += 1;
        if ambient && ambient_captured(&pod.value) {
            e.1 += 1;
            if !e.2.iter().any(|r| r == "ztunnel") {
                e.2.push("ztunnel".to_string());
            }
        } else if let Some(rev) = proxy_revision(&pod.value) {
            e.1 += 1;
            if !e.2.contains(&rev) {
                e.2.push(rev);
            }
        }
    }
    let word = if ambient { "captured" } else { "meshed" };
    let workloads: Vec<WorkloadStatus> = per
        .into_iter()
        .map(|((kind, name), (pods, meshed, revisions))| {
            let state = match (pods, meshed) {
                (0, _) => "no pods".to_string(),
                (p, m) if m == p => word.to_string(),
                (_, 0) => format!("not {word}"),
                _ => format!("partly {word}"),
            };
            WorkloadStatus { kind, name, pods, meshed_pods: meshed, revisions, state }
        })
        .collect();
    let steps = journal.map(|j| j.steps.clone()).unwrap_or_default();
    let mut pending = Vec::new();
    let last = |s: &str| journal.and_then(|j| j.last_run(s));
    for s in steps.iter().filter(|s| matches!(s.status, StepStatus::Started | StepStatus::Failed)) {
        let again = format!("{} did not complete ({}): rerun it to resume, or roll back", s.step, s.status);
        if !pending.contains(&again) && last(&s.step).is_some_and(|l| l.status != StepStatus::Completed) {
            pending.push(again);
        }
    }
    if mode.is_none() {
        pending.push(format!("{STEP_ENABLE}: put the namespace on the mesh"));
    } else if ambient && workloads.iter().any(|w| w.pods > w.meshed_pods) {
        pending.push(format!("{STEP_ENABLE}: some pods are not captured by ztunnel yet (is ztunnel running on their nodes?)"));
    } else if workloads.iter().any(|w| w.pods > w.meshed_pods) {
        pending.push(format!("{STEP_ENABLE}: some workloads are not meshed yet"));
    }
    if mode.is_some() && mtls.as_deref() != Some("STRICT") {
        pending.push(format!("{}: require mutual TLS", STEP_MTLS.replace('-', " ")));
    }
    NamespaceStatus { namespace: namespace.to_string(), mode, mtls, istio_objects, workloads, steps, pending }
}
