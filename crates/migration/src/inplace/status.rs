//! `status`: where a namespace stands — per workload meshed or not, the proxy revision and the
//! mTLS mode Istio enforces on its ports; for the namespace the data-plane mode, the
//! namespace-wide mTLS mode, the Istio objects present and the steps the journal recorded, with
//! what is pending.
//!
//! The mTLS modes are effective modes ([`meshmove_istio::PeerAuthentications`], via
//! [`super::peer_auth`]): the oldest namespace-wide policy over the mesh-wide one in the root
//! namespace, workload-level policies and their `portLevelMtls` over both, `PERMISSIVE` when no
//! policy sets a mode — not whichever selector-less policy happens to be listed first.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::peer_auth::{self, ANY_PORT};
use super::{STEP_ENABLE, STEP_MTLS, ambient_captured, namespace_mode, namespace_object, proxy_revision};
use meshmove_istio::{Mode, PeerAuthentications};
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
    /// The mTLS mode Istio enforces on the workload's ports (`None` when the PeerAuthentications
    /// could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<WorkloadMtls>,
}

/// The effective mTLS mode of a workload: on every port without a `portLevelMtls` entry of its
/// own, and on the ports with one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadMtls {
    pub mode: String,
    /// What decides it (a policy and its level, or Istio's default).
    pub decided_by: String,
    /// Ports whose mode a `portLevelMtls` entry decides.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, PortMtls>,
}

/// The effective mode of one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMtls {
    pub mode: String,
    pub decided_by: String,
}

impl WorkloadMtls {
    /// `STRICT`, or `STRICT; port 9090 DISABLE`.
    pub fn summary(&self) -> String {
        let mut s = self.mode.clone();
        for (port, m) in &self.ports {
            s.push_str(&format!("; port {port} {}", m.mode));
        }
        s
    }
}

/// One namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    pub namespace: String,
    /// `sidecar`, `sidecar (revision X)`, `ambient`, or `None` when not labelled for the mesh.
    pub mode: Option<String>,
    /// The namespace-wide mTLS mode Istio applies (`PERMISSIVE`, `STRICT` ...): the namespace's
    /// oldest namespace-wide PeerAuthentication over the mesh-wide one, `PERMISSIVE` without
    /// either; `None` when the PeerAuthentications could not be read.
    pub mtls: Option<String>,
    /// What decides `mtls`, or why it is unknown.
    pub mtls_decided_by: String,
    /// Istio objects by kind.
    pub istio_objects: BTreeMap<String, Vec<String>>,
    pub workloads: Vec<WorkloadStatus>,
    /// Steps recorded in the journal, oldest first.
    pub steps: Vec<StepRecord>,
    /// What to do next.
    pub pending: Vec<String>,
}

/// Build the status of `namespace`, with the PeerAuthentications of the inventory.
pub fn status(inventory: &Inventory, namespace: &str, journal: Option<&Journal>) -> NamespaceStatus {
    status_with(inventory, peer_auth::policies(inventory), namespace, journal)
}

/// Build the status of `namespace`, with the mesh's PeerAuthentications read separately
/// (`policies`, or why they are unknown: the modes are then `None`).
pub fn status_with(
    inventory: &Inventory,
    policies: peer_auth::Policies,
    namespace: &str,
    journal: Option<&Journal>,
) -> NamespaceStatus {
    let in_ns = |o: &&meshmove_model::inventory::Object| o.namespace.as_deref() == Some(namespace);
    let mode = namespace_object(inventory, namespace).and_then(namespace_mode);
    let (mtls, mtls_decided_by) = match &policies {
        Ok(p) => {
            let e = p.namespace_mode(namespace);
            (Some(e.mode.to_string()), peer_auth::decided_by(&e))
        }
        Err(e) => (None, e.to_string()),
    };
    let mut istio_objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in [&kinds::ISTIO_GATEWAY, &kinds::VIRTUAL_SERVICE, &kinds::DESTINATION_RULE, &kinds::PEER_AUTHENTICATION] {
        let names: Vec<String> = inventory.of(k).filter(in_ns).map(|o| o.name.clone()).collect();
        if !names.is_empty() {
            istio_objects.insert(k.kind.to_string(), names);
        }
    }
    // In ambient mode a pod is on the mesh once ztunnel captured it; the label alone is a wish.
    let ambient = mode.as_deref() == Some("ambient");
    let modes = policies.as_ref().ok().map(|p| workload_mtls(inventory, namespace, p));
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
        if ambient_captured(&pod.value) {
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
            let mtls = modes.as_ref().and_then(|m| m.get(&(kind.clone(), name.clone())).cloned());
            WorkloadStatus { kind, name, pods, meshed_pods: meshed, revisions, state, mtls }
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
    if mode.is_some() && mtls.as_deref() != Some(Mode::Strict.as_str()) {
        pending.push(format!("{}: require mutual TLS", STEP_MTLS.replace('-', " ")));
    }
    NamespaceStatus { namespace: namespace.to_string(), mode, mtls, mtls_decided_by, istio_objects, workloads, steps, pending }
}

/// The effective mode of each workload of `namespace` (by kind and name): on its other ports, and
/// on ports a `portLevelMtls` entry decides. Of several pods with different labels, the lowest
/// mode is shown.
fn workload_mtls(inventory: &Inventory, namespace: &str, policies: &PeerAuthentications) -> BTreeMap<(String, String), WorkloadMtls> {
    let mut out = BTreeMap::new();
    for w in peer_auth::workload_targets(inventory, namespace, policies) {
        let lowest = |port: u16| {
            w.targets
                .iter()
                .filter(|t| t.port == port)
                .map(|t| policies.effective(&t.namespace, &t.labels, t.port))
                .min_by_key(|e| e.mode)
        };
        let Some(other) = lowest(ANY_PORT) else { continue };
        let mut ports = BTreeMap::new();
        for t in w.targets.iter().filter(|t| t.port != ANY_PORT) {
            if let Some(e) = lowest(t.port).filter(|e| e.port_override) {
                ports.insert(t.port, PortMtls { mode: e.mode.to_string(), decided_by: peer_auth::decided_by(&e) });
            }
        }
        let mtls = WorkloadMtls { mode: other.mode.to_string(), decided_by: peer_auth::decided_by(&other), ports };
        out.insert((w.kind, w.name), mtls);
    }
    out
}
