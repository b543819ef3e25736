//! Namespace labels that decide which data plane a namespace gets.
//!
//! Three labels select the data plane: `istio-injection` (sidecars from the default revision),
//! `istio.io/rev` (sidecars from a named revision or tag) and `istio.io/dataplane-mode=ambient`.
//! When `istio-injection` is present it wins over `istio.io/rev`, and either injection label wins
//! over the ambient label (pods that get a sidecar are skipped by ambient capture), so a namespace
//! carrying two of them does not do what at least one label says. A revision that no istiod or tag
//! serves means no webhook matches and pods silently start without a proxy.
//!
//! Which revision a namespace's labels select, and whether an injector serves it, is
//! [`meshmove_istio::injection`] (the webhooks' selectors, cited there), applied to the namespace
//! labels alone.

use meshmove_istio::injection::{INJECTION_LABEL, REV_LABEL};
use meshmove_istio::{Injection, Pod, injection};

use super::control_plane::{installed_list, served, unserved};
use super::{MeshMode, PrecheckOptions, Scope, join_and};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, kinds};
use crate::catalog::*;

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
        let served = served(inventory);
        let known = installed_list(&served);

        for ns in inventory.of(&kinds::NAMESPACE).filter(|n| scope.contains(&n.name)) {
            let injection_label = ns.label("istio-injection");
            let rev = ns.label("istio.io/rev");
            let ambient = ns.label("istio.io/dataplane-mode") == Some("ambient");

            if let (Some(inj), Some(rev)) = (injection_label, rev) {
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
            if self.0.mode == MeshMode::Sidecar && injection_label == Some("disabled") {
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
                if injection_label == Some("enabled") {
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
            let labels = ns.labels().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let pod = Pod { namespace: ns.name.clone(), namespace_labels: labels, ..Pod::default() };
            if !known.is_empty()
                && let Injection::NoInjector { revision: missing } = injection(&pod, &served)
            {
                let message = match (injection_label, rev) {
                    (Some(inj), _) => format!(
                        "labelled {INJECTION_LABEL}={inj}, which the `default` revision or a `default` tag serves: {} (found {})",
                        unserved(&served, "default", &missing),
                        join_and(&known)
                    ),
                    (None, Some(rev)) if served.tags.contains_key(rev) => format!(
                        "labelled {REV_LABEL}={rev}, but {} (found {})",
                        unserved(&served, rev, &missing),
                        join_and(&known)
                    ),
                    (None, rev) => {
                        let rev = rev.unwrap_or(missing.as_str());
                        format!(
                            "labelled {REV_LABEL}={rev}, but no istiod revision or tag `{rev}` exists (found {})",
                            join_and(&known)
                        )
                    }
                };
                out.push(Finding::new(&CODE_UNKNOWN_REVISION, message).on(ns));
            }
        }
    }
}
