//! Is there a control plane to migrate onto?
//!
//! Injection needs Istio's CRDs and a running istiod; ambient mode also needs the per-node
//! ztunnel and istio-cni DaemonSets. Revisions and revision tags are reported as information,
//! because which one a namespace selects is the first decision of a migration.
//!
//! A cluster load limited to one namespace does not list Deployments and DaemonSets in
//! `istio-system`; absence there proves nothing, so that case is reported as "not checked"
//! (MM1008) instead of "missing".

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use meshmove_istio::injection::{INJECTION_LABEL, REV_LABEL};
use meshmove_istio::{Injection, Pod, Served, injection};

use super::{MeshMode, PrecheckOptions, join_and};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, SourceInfo, kinds};
use crate::catalog::*;

static REQUIRES: &[&Kind] = &[&kinds::CRD, &kinds::DEPLOYMENT];
static USES: &[&Kind] = &[&kinds::DAEMON_SET, &kinds::MUTATING_WEBHOOK];

/// Istio CRDs, control plane Deployment, ambient DaemonSets, revisions and tags.
pub struct ControlPlane(pub PrecheckOptions);

const ISTIO_CRD_GROUPS: &[&str] = &["networking.istio.io", "security.istio.io"];

/// istiod Deployments (label `app=istiod`).
pub(crate) fn istiods(inventory: &Inventory) -> impl Iterator<Item = &Object> {
    inventory.of(&kinds::DEPLOYMENT).filter(|o| o.label("app") == Some("istiod"))
}

fn is_ztunnel(o: &Object) -> bool {
    o.label("app") == Some("ztunnel") || o.name == "ztunnel"
}

fn is_istio_cni(o: &Object) -> bool {
    o.label("k8s-app") == Some("istio-cni-node") || o.name == "istio-cni-node"
}

/// Every control-plane workload in the inventory (istiod, ztunnel, istio-cni).
pub(crate) fn components(inventory: &Inventory) -> impl Iterator<Item = &Object> {
    istiods(inventory).chain(inventory.of(&kinds::DAEMON_SET).filter(|o| is_ztunnel(o) || is_istio_cni(o)))
}

/// The namespace a cluster load was limited to, when `kind` was not also listed cluster-wide.
pub(crate) fn listed_only_in<'a>(inventory: &'a Inventory, kind: &Kind) -> Option<&'a str> {
    match &inventory.source {
        SourceInfo::Cluster { namespace: Some(ns), .. } if !inventory.complete_across_namespaces(kind) => Some(ns),
        _ => None,
    }
}

/// The revision an istiod serves (`default` when unlabelled, as istioctl installs it).
pub(crate) fn revision_of(istiod: &Object) -> &str {
    istiod.label("istio.io/rev").unwrap_or("default")
}

/// Revisions and tags seen on Istio's injection webhooks (cluster-scoped, so visible from any
/// namespace scope): `(revisions, tag -> revision)`.
pub(crate) fn webhook_revisions(inventory: &Inventory) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut revisions = BTreeSet::new();
    let mut tags = BTreeMap::new();
    for w in inventory.of(&kinds::MUTATING_WEBHOOK) {
        let injector = w.label("app") == Some("sidecar-injector") || w.name.starts_with("istio-sidecar-injector");
        match (w.label("istio.io/tag"), w.label("istio.io/rev")) {
            (Some(tag), Some(rev)) => {
                tags.insert(tag.to_string(), rev.to_string());
            }
            (None, Some(rev)) if injector => {
                revisions.insert(rev.to_string());
            }
            (None, None) if injector => {
                revisions.insert("default".to_string());
            }
            _ => {}
        }
    }
    (revisions, tags)
}

/// The injectors the inventory shows, as [`meshmove_istio::injection`] resolves labels against
/// them: revisions with an istiod or an injection webhook of their own, revision tags, and the
/// `default` revision behind the legacy selectors when a revisionless istiod (or one labelled
/// `default`) is installed; a `default` tag takes precedence, as [`Served::resolve`] applies.
pub(crate) fn served(inventory: &Inventory) -> Served {
    let (mut revisions, tags) = webhook_revisions(inventory);
    revisions.extend(istiods(inventory).map(|d| revision_of(d).to_string()));
    let default_revision = revisions.contains("default").then(|| "default".to_string());
    Served { revisions, tags, default_revision }
}

/// Why `injection` found no injector for the revision the labels select, for MM1013: the name
/// the labels use, and, when it is a tag, the revision it points at.
pub(crate) fn unserved(served: &Served, selected: &str, revision: &str) -> String {
    if served.tags.contains_key(selected) {
        format!("revision tag `{selected}` points at revision `{revision}`, which no istiod serves")
    } else {
        format!("no istiod or revision tag serves revision `{selected}`")
    }
}

/// Installed revisions and tags, for messages.
pub(crate) fn installed_list(served: &Served) -> Vec<String> {
    served.revisions.iter().map(|r| format!("`{r}`")).chain(served.tags.keys().map(|t| format!("tag `{t}`"))).collect()
}

fn int(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

fn image_of(o: &Object) -> Option<&str> {
    let containers = o.value.pointer("/spec/template/spec/containers")?.as_array()?;
    let c = containers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("discovery"))
        .or_else(|| containers.first())?;
    c.get("image")?.as_str()
}

impl ControlPlane {
    fn crds(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let present: BTreeSet<&str> =
            inventory.of(&kinds::CRD).filter_map(|c| c.value.pointer("/spec/group").and_then(Value::as_str)).collect();
        let missing: Vec<String> =
            ISTIO_CRD_GROUPS.iter().filter(|g| !present.contains(**g)).map(|g| format!("`{g}`")).collect();
        if !missing.is_empty() {
            out.push(Finding::new(
                &CODE_ISTIO_CRDS_MISSING,
                format!("no CustomResourceDefinition of API group {} is installed", join_and(&missing)),
            ));
        }
    }

    fn istiod(&self, inventory: &Inventory, out: &mut Vec<Finding>, unseen: &mut Vec<String>) {
        let found: Vec<&Object> = istiods(inventory).collect();
        if found.is_empty() {
            match listed_only_in(inventory, &kinds::DEPLOYMENT) {
                Some(ns) => unseen.push(format!("istiod (Deployments were listed in namespace {ns} only)")),
                None => out.push(Finding::new(
                    &CODE_ISTIOD_MISSING,
                    "no Deployment labelled app=istiod was found in any namespace",
                )),
            }
        }
        for d in found {
            let rev = revision_of(d);
            let desired = int(&d.value, "/spec/replicas").unwrap_or(1);
            let readiness = match d.value.get("status") {
                Some(status) => {
                    let ready = int(status, "/readyReplicas").unwrap_or(0);
                    if ready == 0 {
                        out.push(
                            Finding::new(
                                &CODE_ISTIOD_NOT_READY,
                                format!("istiod revision `{rev}` has 0 of {desired} replicas ready"),
                            )
                            .on(d),
                        );
                    }
                    format!("{ready}/{desired} replicas ready")
                }
                None => format!("{desired} replicas, readiness not reported (read from manifests)"),
            };
            let image = image_of(d).map(|i| format!(", image {i}")).unwrap_or_default();
            out.push(Finding::new(&CODE_ISTIOD_REVISION, format!("istiod revision `{rev}`{image}: {readiness}")).on(d));
        }
    }

    fn tags(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let revisions: BTreeSet<&str> = istiods(inventory).map(revision_of).collect();
        for w in inventory.of(&kinds::MUTATING_WEBHOOK) {
            let (Some(tag), Some(rev)) = (w.label("istio.io/tag"), w.label("istio.io/rev")) else { continue };
            let note = if !revisions.is_empty() && !revisions.contains(rev) {
                " (no istiod of that revision was found)"
            } else {
                ""
            };
            out.push(
                Finding::new(&CODE_REVISION_TAG, format!("revision tag `{tag}` points at revision `{rev}`{note}"))
                    .on(w),
            );
        }
    }

    fn node_agent(
        &self,
        inventory: &Inventory,
        out: &mut Vec<Finding>,
        unseen: &mut Vec<String>,
        (code, what, expected_name): (&'static meshmove_model::findings::Code, &str, &str),
        is_it: fn(&Object) -> bool,
    ) {
        let found: Vec<&Object> = inventory.of(&kinds::DAEMON_SET).filter(|o| is_it(o)).collect();
        if found.is_empty() {
            let not_listed = inventory.is_live() && !inventory.has(&kinds::DAEMON_SET);
            match listed_only_in(inventory, &kinds::DAEMON_SET) {
                Some(ns) => unseen.push(format!("{what} (DaemonSets were listed in namespace {ns} only)")),
                None if not_listed => unseen.push(format!("{what} (DaemonSets could not be listed)")),
                None => out.push(Finding::new(
                    code,
                    format!("ambient mode needs the {what} DaemonSet (`{expected_name}`), and none was found"),
                )),
            }
        }
        for ds in found {
            let Some(status) = ds.value.get("status") else { continue };
            let desired = int(status, "/desiredNumberScheduled").unwrap_or(0);
            let ready = int(status, "/numberReady").unwrap_or(0);
            if desired == 0 || ready < desired {
                out.push(Finding::new(code, format!("{what} is ready on {ready} of {desired} scheduled nodes")).on(ds));
            }
        }
    }
}

impl Analyzer for ControlPlane {
    fn name(&self) -> &'static str {
        "control-plane"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn uses(&self) -> &'static [&'static Kind] {
        USES
    }

    fn cluster_wide(&self) -> &'static [&'static Kind] {
        CLUSTER_WIDE
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let mut unseen = Vec::new();
        self.crds(inventory, out);
        self.istiod(inventory, out, &mut unseen);
        self.tags(inventory, out);
        if self.0.mode == MeshMode::Ambient {
            self.node_agent(inventory, out, &mut unseen, (&CODE_ZTUNNEL_MISSING, "ztunnel", "ztunnel"), is_ztunnel);
            self.node_agent(
                inventory,
                out,
                &mut unseen,
                (&CODE_ISTIO_CNI_MISSING, "istio-cni node agent", "istio-cni-node"),
                is_istio_cni,
            );
        }
        if !unseen.is_empty() {
            out.push(Finding::new(&CODE_CONTROL_PLANE_OUT_OF_SCOPE, format!("not checked: {}", join_and(&unseen))));
        }
    }
}

/// Listed in every namespace even when the command is scoped to one.
static CLUSTER_WIDE: &[&Kind] = &[&kinds::DEPLOYMENT, &kinds::DAEMON_SET];

/// Kinds [`gate`] reads: cluster-scoped ones, and the ones listed in every namespace.
pub static GATE_KINDS: &[&Kind] = &[&kinds::CRD, &kinds::MUTATING_WEBHOOK];
/// See [`GATE_KINDS`].
pub static GATE_KINDS_WIDE: &[&Kind] = CLUSTER_WIDE;

/// Whether the control plane can take a namespace onto the mesh: what [`gate`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// Error findings: labelling the namespace now would leave its pods outside the mesh.
    pub blockers: Vec<Finding>,
    /// What could not be checked (forbidden lists, a control plane out of reach), in plain words.
    pub notes: Vec<String>,
}

impl Gate {
    pub fn passed(&self) -> bool {
        self.blockers.is_empty()
    }

    /// The blockers, one `  CODE message` line each with its hint below.
    pub fn explain(&self) -> String {
        self.blockers.iter().map(|f| format!("  {} {}\n      hint: {}", f.code, f.message, f.hint)).collect::<Vec<_>>().join("\n")
    }
}

/// The control-plane half of precheck, as the commands that label a namespace for the mesh run
/// it before writing anything: Istio's CRDs, a ready istiod, ztunnel and istio-cni in ambient
/// mode, and, in sidecar mode, an injector for the revision the namespace will select
/// (`revision`, or the `default` revision or tag that `istio-injection=enabled` uses).
///
/// What the caller may not read is a note, not a blocker: a namespace administrator often
/// cannot list istio-system, and the proxy check after the restarts still catches a missing
/// injector.
pub fn gate(inventory: &Inventory, mode: MeshMode, revision: Option<&str>) -> Gate {
    let analyzer = ControlPlane(PrecheckOptions { mode, ..PrecheckOptions::default() });
    let report = meshmove_model::findings::run("mesh-migrate", "control-plane", &[&analyzer], inventory);
    let mut gate = Gate { blockers: Vec::new(), notes: report.notes };
    for s in &report.skipped {
        gate.notes.push(format!("the Istio control plane was not checked: {}", s.reason));
    }
    for f in report.findings {
        match f.severity {
            meshmove_model::findings::Severity::Error => gate.blockers.push(f),
            _ if f.code == CODE_CONTROL_PLANE_OUT_OF_SCOPE.code => gate.notes.push(f.message),
            _ => {}
        }
    }
    let installed: BTreeSet<&str> = istiods(inventory).map(revision_of).collect();
    if mode == MeshMode::Sidecar && report.skipped.is_empty() && !installed.is_empty() {
        // The namespace as the command will label it, through Istio's webhook selection.
        let label = match revision {
            Some(rev) => (REV_LABEL.to_string(), rev.to_string()),
            None => (INJECTION_LABEL.to_string(), "enabled".to_string()),
        };
        let pod = Pod { namespace_labels: [label].into(), ..Pod::default() };
        let served = served(inventory);
        let wanted = revision.unwrap_or("default");
        if let Injection::NoInjector { revision: missing } = injection(&pod, &served) {
            if inventory.availability(&kinds::MUTATING_WEBHOOK).is_some() {
                gate.notes.push(format!(
                    "revision `{wanted}` has no istiod of its own, and the injection webhooks (where revision tags live) could not be read"
                ));
            } else {
                let list = installed_list(&served);
                let message = match revision {
                    Some(_) => format!("{}; installed: {}", unserved(&served, wanted, &missing), join_and(&list)),
                    None => format!(
                        "istio-injection=enabled is served by the `default` revision or a `default` tag, and {}; installed: {} (pass --revision to select one)",
                        if served.tags.contains_key("default") { format!("the `default` tag points at revision `{missing}`, which no istiod serves") } else { "there is neither".to_string() },
                        join_and(&list)
                    ),
                };
                gate.blockers.push(Finding::new(&CODE_UNKNOWN_REVISION, message));
            }
        }
    }
    gate
}
