//! Checks on pod templates: what the mesh cannot capture, what it cannot name, and what it
//! would keep from finishing.
//!
//! * Host-network pods share the node's network namespace: the injector skips them and ztunnel
//!   does not capture them, so they stay outside the mesh whatever the namespace label says.
//! * Istio names a workload in telemetry from `service.istio.io/canonical-name`, else
//!   `app.kubernetes.io/name`, else `app`, else the workload's own name; and its revision from
//!   `service.istio.io/canonical-revision`, `app.kubernetes.io/version`, `version`, else `latest`.
//!   Kiali and most dashboards key on `app` and `version` themselves.
//! * A classic sidecar is an ordinary container that never exits, so a Job's pod never completes.
//!   Native sidecars (an init container with `restartPolicy: Always`, Kubernetes 1.29+, injected
//!   when istiod runs with `ENABLE_NATIVE_SIDECARS` or the pod is annotated
//!   `sidecar.istio.io/nativeSidecar: "true"`) are stopped by the kubelet when the Job's containers
//!   finish. Ambient mode has no per-pod proxy, so this check runs in sidecar mode only.

use serde_json::Value;

use super::control_plane::istiods;
use super::{PrecheckOptions, Replicas, Scope, WORKLOAD_KINDS, Workload, workloads};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, kinds};
use crate::catalog::*;

static JOB_USES: &[&Kind] = &[&kinds::JOB, &kinds::CRON_JOB, &kinds::DEPLOYMENT, &kinds::NODE];

/// Pod templates with `hostNetwork: true`.
pub struct HostNetwork(pub PrecheckOptions);

impl Analyzer for HostNetwork {
    fn name(&self) -> &'static str {
        "host-network"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        &[]
    }

    fn uses(&self) -> &'static [&'static Kind] {
        WORKLOAD_KINDS
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        for w in workloads(inventory, &scope).iter().filter(|w| w.host_network()) {
            out.push(
                Finding::new(
                    &CODE_HOST_NETWORK,
                    "pod template sets hostNetwork: true; Istio neither injects a sidecar into nor redirects \
                     traffic of host-network pods, so they stay outside the mesh",
                )
                .on(w.object),
            );
        }
    }
}

/// Pod templates without the labels telemetry keys on.
pub struct TelemetryLabels(pub PrecheckOptions);

impl TelemetryLabels {
    fn check(&self, w: &Workload<'_>, out: &mut Vec<Finding>) {
        let identity = w.label("service.istio.io/canonical-name").or(w.label("app.kubernetes.io/name"));
        match (w.label("app"), identity) {
            (Some(_), _) => {}
            (None, Some(name)) => out.push(
                Finding::new(
                    &CODE_NO_APP_LABEL,
                    format!(
                        "pod template has no `app` label; Istio names it `{name}` from its labels, but tools keyed on \
                         `app` (Kiali, dashboards) will not: add app={name}"
                    ),
                )
                .on(w.object),
            ),
            (None, None) => out.push(
                Finding::new(
                    &CODE_NO_APP_IDENTITY,
                    format!(
                        "pod template has none of `app`, `app.kubernetes.io/name` or `service.istio.io/canonical-name`; \
                         telemetry will name its pods after the workload `{}`",
                        w.object.name
                    ),
                )
                .on(w.object),
            ),
        }
        // Versions matter for servers whose traffic gets split; batch pods are not routed to.
        if w.replicas == Replicas::Batch || w.label("version").is_some() {
            return;
        }
        let message = match w.label("app.kubernetes.io/version").or(w.label("service.istio.io/canonical-revision")) {
            Some(v) => format!(
                "pod template has no `version` label; add version={v} (from its labels) for tools keyed on `version`"
            ),
            None => {
                "pod template has no `version` or `app.kubernetes.io/version` label; telemetry reports its revision \
                     as `latest`"
                    .to_string()
            }
        };
        out.push(Finding::new(&CODE_NO_VERSION_LABEL, message).on(w.object));
    }
}

impl Analyzer for TelemetryLabels {
    fn name(&self) -> &'static str {
        "telemetry-labels"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        &[]
    }

    fn uses(&self) -> &'static [&'static Kind] {
        WORKLOAD_KINDS
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        for w in workloads(inventory, &scope).iter().filter(|w| !w.host_network()) {
            self.check(w, out);
        }
    }
}

/// Jobs and CronJobs whose pods would never complete with a classic sidecar (sidecar mode only).
pub struct JobCompletion(pub PrecheckOptions);

/// Whether istiod injects native sidecars, as far as the inventory shows; with the reason.
fn istiod_native_sidecars(inventory: &Inventory) -> (bool, String) {
    let mut values = Vec::new();
    for d in istiods(inventory) {
        let containers = d.value.pointer("/spec/template/spec/containers").and_then(Value::as_array);
        let value = containers
            .into_iter()
            .flatten()
            .flat_map(|c| c.get("env").and_then(Value::as_array).into_iter().flatten())
            .find(|e| e.get("name").and_then(Value::as_str) == Some("ENABLE_NATIVE_SIDECARS"))
            .and_then(|e| e.get("value").and_then(Value::as_str));
        values.push((d.object_ref().to_string(), value));
    }
    if values.is_empty() {
        return (false, "no istiod in the input shows ENABLE_NATIVE_SIDECARS".to_string());
    }
    let min_kubelet = min_kubelet_minor(inventory);
    let native = |v: Option<&str>| match v {
        Some("true") => true,
        Some("auto-beta") => min_kubelet.is_some_and(|m| m >= 29),
        Some("auto-stable") => min_kubelet.is_some_and(|m| m >= 33),
        _ => false,
    };
    if values.iter().all(|(_, v)| native(*v)) {
        return (true, String::new());
    }
    let (which, value) = values.iter().find(|(_, v)| !native(*v)).expect("one istiod is not native");
    let why = match value {
        None => format!("{which} does not set ENABLE_NATIVE_SIDECARS"),
        Some(v @ ("auto-beta" | "auto-stable")) => match min_kubelet {
            Some(m) => format!("{which} sets ENABLE_NATIVE_SIDECARS={v} and the oldest kubelet is 1.{m}"),
            None => format!("{which} sets ENABLE_NATIVE_SIDECARS={v} and node versions are unknown"),
        },
        Some(v) => format!("{which} sets ENABLE_NATIVE_SIDECARS={v}"),
    };
    (false, why)
}

/// The oldest kubelet minor version among the Nodes (`v1.29.3-eks-…` → 29).
fn min_kubelet_minor(inventory: &Inventory) -> Option<u32> {
    if !inventory.has(&kinds::NODE) {
        return None;
    }
    let minors: Option<Vec<u32>> = inventory
        .of(&kinds::NODE)
        .map(|n| {
            let v = n.value.pointer("/status/nodeInfo/kubeletVersion")?.as_str()?;
            let rest = v.trim_start_matches('v').strip_prefix("1.")?;
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect();
    minors?.into_iter().min()
}

impl Analyzer for JobCompletion {
    fn name(&self) -> &'static str {
        "job-completion"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        &[]
    }

    fn uses(&self) -> &'static [&'static Kind] {
        JOB_USES
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        let (istiod_native, istiod_why) = istiod_native_sidecars(inventory);
        for w in workloads(inventory, &scope) {
            if w.replicas != Replicas::Batch || w.opts_out_of_injection() || w.host_network() {
                continue;
            }
            let init_proxy = w.spec.init_containers.iter().flatten().find(|c| c.name == "istio-proxy");
            let classic_proxy = w.spec.containers.iter().any(|c| c.name == "istio-proxy");
            let why = match (w.annotation("sidecar.istio.io/nativeSidecar"), init_proxy) {
                _ if classic_proxy => "its pod template already has a classic istio-proxy container".to_string(),
                (_, Some(c)) if c.restart_policy.as_deref() == Some("Always") => continue,
                (Some("true"), _) => continue,
                (Some("false"), _) => "it is annotated sidecar.istio.io/nativeSidecar: \"false\"".to_string(),
                _ if istiod_native => continue,
                _ => format!("the pod template does not opt out of injection and {istiod_why}"),
            };
            let subject = if w.object.kind == "CronJob" { "the Jobs it creates" } else { "its pod" };
            out.push(
                Finding::new(
                    &CODE_JOB_NEVER_COMPLETES,
                    format!(
                        "{subject} would never complete with a sidecar: {why}; a classic istio-proxy container keeps \
                         running after the job's containers exit"
                    ),
                )
                .on(w.object),
            );
        }
    }
}
