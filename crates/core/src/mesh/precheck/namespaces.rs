//! Namespace labels that decide which data plane a namespace gets.
//!
//! Three labels select the data plane: `istio-injection` (sidecars from the default revision),
//! `istio.io/rev` (sidecars from a named revision or tag) and `istio.io/dataplane-mode=ambient`.
//! When `istio-injection` is present it wins over `istio.io/rev`, and either injection label wins
//! over the ambient label (pods that get a sidecar are skipped by ambient capture), so a namespace
//! carrying two of them does not do what at least one label says. A revision that no istiod or tag
//! serves means no webhook matches and pods silently start without a proxy.

use std::collections::BTreeSet;

use super::control_plane::{istiods, revision_of, webhook_revisions};
use super::{MeshMode, PrecheckOptions, Scope, join_and};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, kinds};
use crate::mesh::catalog::*;

static REQUIRES: &[&Kind] = &[&kinds::NAMESPACE];
static USES: &[&Kind] = &[&kinds::DEPLOYMENT, &kinds::MUTATING_WEBHOOK];

/// Injection and data-plane labels on the namespaces being migrated.
pub struct NamespaceLabels(pub PrecheckOptions);

impl Analyzer for NamespaceLabels {
    fn name(&self) -> &'static str {
        "namespace-labels"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn uses(&self) -> &'static [&'static Kind] {
        USES
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        let (mut revisions, tags) = webhook_revisions(inventory);
        revisions.extend(istiods(inventory).map(|d| revision_of(d).to_string()));
        let served: BTreeSet<&str> = revisions.iter().chain(tags.keys()).map(String::as_str).collect();

        for ns in inventory.of(&kinds::NAMESPACE).filter(|n| scope.contains(&n.name)) {
            let injection = ns.label("istio-injection");
            let rev = ns.label("istio.io/rev");
            let ambient = ns.label("istio.io/dataplane-mode") == Some("ambient");

            if let (Some(inj), Some(rev)) = (injection, rev) {
                out.push(
                    Finding::new(
                        &CODE_INJECTION_LABEL_CONFLICT,
                        format!(
                            "labelled istio-injection={inj} and istio.io/rev={rev}: istio-injection takes precedence, \
                             so istio.io/rev={rev} has no effect"
                        ),
                    )
                    .on(ns),
                );
            }
            if self.0.mode == MeshMode::Sidecar && injection == Some("disabled") {
                out.push(
                    Finding::new(
                        &CODE_INJECTION_DISABLED,
                        "labelled istio-injection=disabled: restarted pods will not get a sidecar",
                    )
                    .on(ns),
                );
            }
            if ambient {
                let mut sidecar_labels = Vec::new();
                if injection == Some("enabled") {
                    sidecar_labels.push("istio-injection=enabled".to_string());
                }
                if let Some(rev) = rev {
                    sidecar_labels.push(format!("istio.io/rev={rev}"));
                }
                if !sidecar_labels.is_empty() {
                    out.push(
                        Finding::new(
                            &CODE_AMBIENT_AND_SIDECAR,
                            format!(
                                "labelled istio.io/dataplane-mode=ambient and {}: pods get a sidecar and ambient capture \
                                 skips them",
                                join_and(&sidecar_labels)
                            ),
                        )
                        .on(ns),
                    );
                }
            }
            // Only judge the revision when the inventory shows which revisions exist.
            if let Some(rev) = rev
                && !served.is_empty()
                && !served.contains(rev)
            {
                let known: Vec<String> = served.iter().map(|r| format!("`{r}`")).collect();
                out.push(
                    Finding::new(
                        &CODE_UNKNOWN_REVISION,
                        format!(
                            "labelled istio.io/rev={rev}, but no istiod revision or tag `{rev}` exists (found {})",
                            join_and(&known)
                        ),
                    )
                    .on(ns),
                );
            }
        }
    }
}
