//! Whether a pod gets an Istio sidecar, from which revision, or is captured by ambient instead.
//!
//! Injection is decided in two stages, and both matter for a correct prediction:
//!
//! 1. **The API server** calls an injector only if one of the `istio-sidecar-injector` webhooks
//!    selects the pod. Selectors see namespace labels and pod *labels*, never annotations.
//!    Each revision (and each revision tag) installs `rev.namespace.` and `rev.object.` webhooks;
//!    the default revision (or the `default` tag) also installs `namespace.` and `object.`
//!    (istio/istio `manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`
//!    and `revision-tags.yaml`). Their selectors are mutually exclusive, which yields:
//!    - namespace `istio-injection` wins over everything: `enabled` means the default revision
//!      (a namespace `istio.io/rev` is then ignored); any other value means no webhook at all;
//!    - else namespace `istio.io/rev=<rev or tag>` (a pod `istio.io/rev` is then ignored);
//!    - else pod label `istio.io/rev=<rev or tag>`;
//!    - else pod label `sidecar.istio.io/inject=true`, which only the default webhook selects;
//!    - every webhook skips pods labelled `sidecar.istio.io/inject=false`.
//! 2. **The injector** (`injectRequired` in istio/istio `pkg/kube/inject/inject.go`) then skips
//!    host-network pods and the system namespaces, and reads `sidecar.istio.io/inject` from the
//!    label, else from the legacy annotation: `y`/`yes`/`true`/`on` inject, empty means the
//!    policy default (`enabled`), anything else opts out. So the annotation can still opt *out*,
//!    but an annotation opt-*in* never reaches an injector by itself.
//!
//! `neverInjectSelector`/`alwaysInjectSelector`, a `disabled` injector policy and
//! `enableNamespacesByDefault` are installation options this module does not model.
//!
//! Ambient capture is decided by the istio-cni node agent (istio/istio
//! `cni/pkg/util/enablement_selector.go`, `CompiledEnablementSelectors.Matches`): never host-network pods,
//! never pods that carry a sidecar, then the default enablement selectors — pod label
//! `istio.io/dataplane-mode=ambient`, or namespace label `istio.io/dataplane-mode=ambient`
//! unless the pod is labelled `istio.io/dataplane-mode=none`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{Labels, string_map};

pub const INJECTION_LABEL: &str = "istio-injection";
pub const REV_LABEL: &str = "istio.io/rev";
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";
/// Also the (legacy) annotation name.
pub const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
pub const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
/// The pod annotation naming the injection templates the sidecar injector applies, in order
/// (`inject.istio.io/templates`; istio/istio `pkg/kube/inject/inject.go`, `InjectTemplates`).
pub const TEMPLATES_ANNOTATION: &str = "inject.istio.io/templates";
/// Its value for SPIRE-issued identities: the `sidecar` template, then the `spire` one that
/// mounts the SPIFFE CSI driver's Workload API socket into istio-proxy (Istio's SPIRE
/// integration, <https://istio.io/latest/docs/ops/integrations/spire/>). Sidecar mode only:
/// ambient pods are not injected.
pub const SPIRE_TEMPLATES: &str = "sidecar,spire";

/// Namespaces the injector never injects into (`IgnoredNamespaces` in istio/istio
/// `pkg/kube/inject/initializer.go`).
pub const IGNORED_NAMESPACES: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "local-path-storage"];

/// The injectors installed in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// Revisions with a running istiod. A revisionless install is the revision `default` (and is
    /// then normally also the `default_revision`).
    pub revisions: BTreeSet<String>,
    /// Revision tags: tag -> revision.
    pub tags: BTreeMap<String, String>,
    /// The revision behind the legacy selectors (`istio-injection=enabled`, pod
    /// `sidecar.istio.io/inject=true`): the revisionless istiod, or the target of the `default` tag.
    pub default_revision: Option<String>,
}

impl Served {
    /// The revision whose webhook selects `istio.io/rev=<name>`: a tag's target, a revision, or
    /// for `default` the `default` tag's target, else [`Served::default_revision`] (the legacy
    /// selectors resolve the same way). `None`: no webhook selects that value.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        if name == "default" {
            return self.tags.get(name).or(self.default_revision.as_ref()).map(String::as_str);
        }
        self.tags.get(name).or_else(|| self.revisions.get(name)).map(String::as_str)
    }

    /// The injectors to assume when only the objects' labels are known (rendered charts, a
    /// cluster read without the control plane's namespace): every revision the pod's or its
    /// namespace's `istio.io/rev` names, and a revisionless `default`. Whether an injector really
    /// answers is a separate question; this asks which data plane the labels select.
    pub fn assumed(pod: &Pod) -> Served {
        let mut revisions: BTreeSet<String> = ["default".to_string()].into();
        revisions.extend(pod.namespace_labels.get(REV_LABEL).cloned());
        revisions.extend(pod.labels.get(REV_LABEL).cloned());
        Served { revisions, tags: BTreeMap::new(), default_revision: Some("default".to_string()) }
    }
}

/// A pod (or pod template) and its namespace, as the webhooks and the injector see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub namespace_labels: Labels,
    pub labels: Labels,
    pub annotations: Labels,
    pub host_network: bool,
}

impl Pod {
    /// From a Namespace object and a Pod or pod template (`{metadata, spec}`).
    pub fn from_objects(namespace: &Value, pod: &Value) -> Pod {
        let meta = |v: &Value, k: &str| string_map(v.pointer(&format!("/metadata/{k}")));
        Pod {
            namespace: namespace.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
            namespace_labels: meta(namespace, "labels"),
            labels: meta(pod, "labels"),
            annotations: meta(pod, "annotations"),
            host_network: pod.pointer("/spec/hostNetwork").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

/// Where a `sidecar.istio.io/inject` opt-out was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Label,
    Annotation,
}

/// Why a pod is not injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotInjectedReason {
    /// Namespace `istio-injection` is set to something other than `enabled` (usually `disabled`):
    /// no webhook selects any pod in the namespace, whatever its other labels say.
    NamespaceDisabled { value: String },
    /// `sidecar.istio.io/inject` is neither empty nor true-like.
    PodOptOut { field: Field, value: String },
    /// No injection label on the namespace, no `istio.io/rev` and no
    /// `sidecar.istio.io/inject=true` label on the pod.
    NotSelected,
    /// As `NotSelected`, but the pod asks for injection with the legacy annotation, which webhook
    /// selectors cannot see.
    AnnotationOnly,
    /// `hostNetwork: true`: the injector refuses, as iptables would change the node's network.
    HostNetwork,
    /// One of [`IGNORED_NAMESPACES`].
    SystemNamespace,
}

/// The outcome of sidecar injection for a pod created now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injection {
    Injected {
        revision: String,
    },
    NotInjected {
        reason: NotInjectedReason,
    },
    /// The labels select this revision (or tag, or `default`), but no installed injector serves
    /// it. Either no webhook selects the value, and the pod starts without a sidecar; or a tag's
    /// webhook points at a missing istiod, and (with `failurePolicy: Fail`) pod creation fails.
    NoInjector {
        revision: String,
    },
}

/// The data plane a pod will be part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dataplane {
    Sidecar { revision: String },
    Ambient,
    None,
}

/// What the webhooks select: the revision name asked for, or a reason no webhook applies.
fn webhook_selection(pod: &Pod) -> Result<String, NotInjectedReason> {
    let ns = |k: &str| pod.namespace_labels.get(k).map(String::as_str);
    let pod_label = |k: &str| pod.labels.get(k).map(String::as_str);
    // objectSelector `sidecar.istio.io/inject NotIn [false]` (exact match) on every webhook but
    // `object.`, which requires `In [true]`.
    let opted_out = pod_label(INJECT_LABEL) == Some("false");
    let opt_out = || NotInjectedReason::PodOptOut { field: Field::Label, value: "false".into() };
    let wanted = match (ns(INJECTION_LABEL), ns(REV_LABEL), pod_label(REV_LABEL)) {
        // `namespace.` webhook: istio-injection In [enabled].
        (Some("enabled"), _, _) => "default",
        // Every other webhook requires istio-injection DoesNotExist.
        (Some(other), _, _) => return Err(NotInjectedReason::NamespaceDisabled { value: other.to_string() }),
        // `rev.namespace.`: namespace istio.io/rev In [rev]; the pod's istio.io/rev is not read.
        (None, Some(rev), _) => rev,
        // `rev.object.`: namespace has neither label, pod istio.io/rev In [rev].
        (None, None, Some(rev)) => rev,
        // `object.`: pod sidecar.istio.io/inject In [true] and no istio.io/rev.
        (None, None, None) if pod_label(INJECT_LABEL) == Some("true") => "default",
        (None, None, None) if opted_out => return Err(opt_out()),
        (None, None, None) => {
            let annotation = pod.annotations.get(INJECT_ANNOTATION).map(|v| v.to_ascii_lowercase());
            return Err(match annotation.as_deref() {
                Some("y" | "yes" | "true" | "on") if !pod.labels.contains_key(INJECT_LABEL) => {
                    NotInjectedReason::AnnotationOnly
                }
                _ => NotInjectedReason::NotSelected,
            });
        }
    };
    if opted_out { Err(opt_out()) } else { Ok(wanted.to_string()) }
}

/// Sidecar injection for `pod` if it were created now.
pub fn injection(pod: &Pod, served: &Served) -> Injection {
    let wanted = match webhook_selection(pod) {
        Ok(wanted) => wanted,
        Err(reason) => return Injection::NotInjected { reason },
    };
    let revision = match served.resolve(&wanted) {
        Some(rev) if served.revisions.contains(rev) => rev.to_string(),
        Some(rev) => return Injection::NoInjector { revision: rev.to_string() },
        None => return Injection::NoInjector { revision: wanted },
    };
    // The injector's own policy (`injectRequired`).
    let not = |reason| Injection::NotInjected { reason };
    if pod.host_network {
        return not(NotInjectedReason::HostNetwork);
    }
    if IGNORED_NAMESPACES.contains(&pod.namespace.as_str()) {
        return not(NotInjectedReason::SystemNamespace);
    }
    // The label is preferred over the annotation when both are present.
    let (field, value) = match (pod.labels.get(INJECT_LABEL), pod.annotations.get(INJECT_ANNOTATION)) {
        (Some(v), _) => (Field::Label, v.as_str()),
        (None, Some(v)) => (Field::Annotation, v.as_str()),
        (None, None) => (Field::Label, ""),
    };
    match value.to_ascii_lowercase().as_str() {
        // http://yaml.org/type/bool.html true-likes, or empty: the `enabled` policy default.
        "y" | "yes" | "true" | "on" | "" => Injection::Injected { revision },
        _ => not(NotInjectedReason::PodOptOut { field, value: value.to_string() }),
    }
}

/// Whether the istio-cni node agent enrolls the pod in ambient (ztunnel) with the default
/// enablement selectors. A pod that already carries a sidecar is never captured.
pub fn ambient_captured(pod: &Pod) -> bool {
    if pod.host_network || pod.annotations.contains_key(STATUS_ANNOTATION) {
        return false;
    }
    let pod_mode = pod.labels.get(DATAPLANE_MODE_LABEL).map(String::as_str);
    let ns_mode = pod.namespace_labels.get(DATAPLANE_MODE_LABEL).map(String::as_str);
    pod_mode == Some("ambient") || (ns_mode == Some("ambient") && pod_mode != Some("none"))
}

/// The data plane of `pod`: an existing sidecar (from its `sidecar.istio.io/status` annotation),
/// else the sidecar it would get if created now, else ambient capture. A sidecar always wins,
/// because ztunnel skips injected pods.
pub fn dataplane(pod: &Pod, served: &Served) -> Dataplane {
    if let Some(status) = pod.annotations.get(STATUS_ANNOTATION) {
        return Dataplane::Sidecar { revision: status_revision(status) };
    }
    if let Injection::Injected { revision } = injection(pod, served) {
        return Dataplane::Sidecar { revision };
    }
    if ambient_captured(pod) { Dataplane::Ambient } else { Dataplane::None }
}

/// The injector records its revision in the status annotation, `default` for a revisionless
/// istiod (`getInjectionStatus` in istio/istio `pkg/kube/inject/webhook.go`).
fn status_revision(status: &str) -> String {
    serde_json::from_str::<Value>(status)
        .ok()
        .and_then(|v| v.get("revision").and_then(Value::as_str).map(str::to_string))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn pod(ns: &[(&str, &str)], pod_labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
        Pod {
            namespace: "shop".into(),
            namespace_labels: labels(ns),
            labels: labels(pod_labels),
            annotations: labels(annotations),
            host_network: false,
        }
    }

    /// Revisionless istiod plus revision `canary`, tag `stable` -> `canary`.
    fn served() -> Served {
        Served {
            revisions: ["default", "canary"].into_iter().map(String::from).collect(),
            tags: [("stable".to_string(), "canary".to_string())].into(),
            default_revision: Some("default".into()),
        }
    }

    fn injected(rev: &str) -> Injection {
        Injection::Injected { revision: rev.into() }
    }

    fn not(reason: NotInjectedReason) -> Injection {
        Injection::NotInjected { reason }
    }

    #[test]
    fn namespace_istio_injection_takes_precedence_over_rev() {
        let s = served();
        assert_eq!(injection(&pod(&[("istio-injection", "enabled")], &[], &[]), &s), injected("default"));
        let both = pod(&[("istio-injection", "enabled"), ("istio.io/rev", "canary")], &[], &[]);
        assert_eq!(injection(&both, &s), injected("default"));
        let disabled =
            pod(&[("istio-injection", "disabled"), ("istio.io/rev", "canary")], &[("istio.io/rev", "canary")], &[]);
        assert_eq!(injection(&disabled, &s), not(NotInjectedReason::NamespaceDisabled { value: "disabled".into() }));
        let disabled_opt_in = pod(&[("istio-injection", "disabled")], &[("sidecar.istio.io/inject", "true")], &[]);
        assert!(matches!(injection(&disabled_opt_in, &s), Injection::NotInjected { .. }));
    }

    #[test]
    fn namespace_rev_beats_pod_rev_and_resolves_tags() {
        let s = served();
        let p = pod(&[("istio.io/rev", "stable")], &[("istio.io/rev", "default")], &[]);
        assert_eq!(injection(&p, &s), injected("canary"));
        assert_eq!(injection(&pod(&[("istio.io/rev", "default")], &[], &[]), &s), injected("default"));
        assert_eq!(
            injection(&pod(&[("istio.io/rev", "1-19")], &[], &[]), &s),
            Injection::NoInjector { revision: "1-19".into() }
        );
    }

    #[test]
    fn pod_level_selection_when_namespace_is_unlabelled() {
        let s = served();
        assert_eq!(injection(&pod(&[], &[("istio.io/rev", "canary")], &[]), &s), injected("canary"));
        assert_eq!(injection(&pod(&[], &[("sidecar.istio.io/inject", "true")], &[]), &s), injected("default"));
        // With a pod istio.io/rev, the `object.` webhook does not apply; the rev one does.
        let p = pod(&[], &[("sidecar.istio.io/inject", "true"), ("istio.io/rev", "stable")], &[]);
        assert_eq!(injection(&p, &s), injected("canary"));
        assert_eq!(injection(&pod(&[], &[], &[]), &s), not(NotInjectedReason::NotSelected));
        // The `object.` selector is an exact `In [true]`: `True` selects nothing.
        assert_eq!(
            injection(&pod(&[], &[("sidecar.istio.io/inject", "True")], &[]), &s),
            not(NotInjectedReason::NotSelected)
        );
    }

    #[test]
    fn pod_opt_in_needs_the_default_webhook() {
        let s = Served { default_revision: None, ..served() };
        let p = pod(&[], &[("sidecar.istio.io/inject", "true")], &[]);
        assert_eq!(injection(&p, &s), Injection::NoInjector { revision: "default".into() });
        // `default` tag pointing at a revision.
        let tagged = Served {
            revisions: ["canary".to_string()].into(),
            tags: [("default".to_string(), "canary".to_string())].into(),
            default_revision: Some("canary".into()),
        };
        assert_eq!(injection(&p, &tagged), injected("canary"));
        assert_eq!(injection(&pod(&[("istio.io/rev", "default")], &[], &[]), &tagged), injected("canary"));
    }

    #[test]
    fn pod_label_false_opts_out_everywhere() {
        let s = served();
        let out = not(NotInjectedReason::PodOptOut { field: Field::Label, value: "false".into() });
        for ns in [&[("istio-injection", "enabled")][..], &[("istio.io/rev", "canary")], &[]] {
            let p = pod(ns, &[("sidecar.istio.io/inject", "false"), ("istio.io/rev", "canary")], &[]);
            assert_eq!(injection(&p, &s), out, "{ns:?}");
        }
        // Other false-likes pass the webhook selector but the injector declines them.
        let p = pod(&[("istio-injection", "enabled")], &[("sidecar.istio.io/inject", "No")], &[]);
        assert_eq!(injection(&p, &s), not(NotInjectedReason::PodOptOut { field: Field::Label, value: "No".into() }));
    }

    #[test]
    fn legacy_annotation_opts_out_but_cannot_opt_in() {
        let s = served();
        let p = pod(&[("istio-injection", "enabled")], &[], &[("sidecar.istio.io/inject", "false")]);
        let annotation_out = not(NotInjectedReason::PodOptOut { field: Field::Annotation, value: "false".into() });
        assert_eq!(injection(&p, &s), annotation_out);
        let p = pod(&[], &[], &[("sidecar.istio.io/inject", "true")]);
        assert_eq!(injection(&p, &s), not(NotInjectedReason::AnnotationOnly));
        // The label wins over the annotation.
        let p = pod(
            &[("istio-injection", "enabled")],
            &[("sidecar.istio.io/inject", "true")],
            &[("sidecar.istio.io/inject", "false")],
        );
        assert_eq!(injection(&p, &s), injected("default"));
        let p = pod(&[("istio-injection", "enabled")], &[], &[("sidecar.istio.io/inject", "on")]);
        assert_eq!(injection(&p, &s), injected("default"));
    }

    #[test]
    fn host_network_and_system_namespaces_are_never_injected() {
        let s = served();
        let mut p = pod(&[("istio-injection", "enabled")], &[("sidecar.istio.io/inject", "true")], &[]);
        p.host_network = true;
        assert_eq!(injection(&p, &s), not(NotInjectedReason::HostNetwork));
        p.host_network = false;
        p.namespace = "kube-system".into();
        assert_eq!(injection(&p, &s), not(NotInjectedReason::SystemNamespace));
    }

    #[test]
    fn tag_to_missing_revision_has_no_injector() {
        let s = Served { tags: [("prod".to_string(), "1-18".to_string())].into(), ..served() };
        let p = pod(&[("istio.io/rev", "prod")], &[], &[]);
        assert_eq!(injection(&p, &s), Injection::NoInjector { revision: "1-18".into() });
    }

    #[test]
    fn ambient_capture_and_overrides() {
        let s = served();
        assert_eq!(dataplane(&pod(&[("istio.io/dataplane-mode", "ambient")], &[], &[]), &s), Dataplane::Ambient);
        let none = pod(&[("istio.io/dataplane-mode", "ambient")], &[("istio.io/dataplane-mode", "none")], &[]);
        assert_eq!(dataplane(&none, &s), Dataplane::None);
        // Pod-level enrolment without a namespace label.
        assert_eq!(dataplane(&pod(&[], &[("istio.io/dataplane-mode", "ambient")], &[]), &s), Dataplane::Ambient);
        let mut host = pod(&[("istio.io/dataplane-mode", "ambient")], &[], &[]);
        host.host_network = true;
        assert_eq!(dataplane(&host, &s), Dataplane::None);
        assert_eq!(dataplane(&pod(&[], &[], &[]), &s), Dataplane::None);
    }

    #[test]
    fn sidecar_wins_over_ambient() {
        let s = served();
        let p = pod(&[("istio.io/dataplane-mode", "ambient"), ("istio-injection", "enabled")], &[], &[]);
        assert_eq!(dataplane(&p, &s), Dataplane::Sidecar { revision: "default".into() });
        let p = pod(&[("istio.io/dataplane-mode", "ambient")], &[("istio.io/rev", "canary")], &[]);
        assert_eq!(dataplane(&p, &s), Dataplane::Sidecar { revision: "canary".into() });
        // An existing pod that already carries a sidecar, whatever the labels say today.
        let status = r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"canary"}"#;
        let p = pod(&[("istio.io/dataplane-mode", "ambient")], &[], &[("sidecar.istio.io/status", status)]);
        assert!(!ambient_captured(&p));
        assert_eq!(dataplane(&p, &s), Dataplane::Sidecar { revision: "canary".into() });
        // A selected pod whose revision has no injector falls through to ambient.
        let p = pod(&[("istio.io/dataplane-mode", "ambient")], &[("istio.io/rev", "gone")], &[]);
        assert_eq!(dataplane(&p, &s), Dataplane::Ambient);
    }

    #[test]
    fn assumed_injectors_serve_what_the_labels_select() {
        // A template in a namespace that asks for both: the webhook injects, ztunnel skips it.
        let p = pod(&[("istio.io/dataplane-mode", "ambient"), ("istio-injection", "enabled")], &[], &[]);
        assert_eq!(dataplane(&p, &Served::assumed(&p)), Dataplane::Sidecar { revision: "default".into() });
        let p = pod(&[("istio.io/dataplane-mode", "ambient")], &[("istio.io/rev", "1-24")], &[]);
        assert_eq!(dataplane(&p, &Served::assumed(&p)), Dataplane::Sidecar { revision: "1-24".into() });
        let p = pod(&[("istio.io/dataplane-mode", "ambient"), ("istio.io/rev", "1-24")], &[], &[]);
        assert_eq!(dataplane(&p, &Served::assumed(&p)), Dataplane::Sidecar { revision: "1-24".into() });
        let p = pod(&[("istio.io/dataplane-mode", "ambient")], &[], &[]);
        assert_eq!(dataplane(&p, &Served::assumed(&p)), Dataplane::Ambient);
        let p = pod(&[("istio-injection", "disabled"), ("istio.io/dataplane-mode", "ambient")], &[], &[]);
        assert_eq!(dataplane(&p, &Served::assumed(&p)), Dataplane::Ambient);
    }

    #[test]
    fn pod_from_objects() {
        let ns = json!({"metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}});
        let template = json!({"metadata": {"labels": {"app": "api"}, "annotations": {"a": "b"}},
                              "spec": {"hostNetwork": true, "containers": []}});
        let p = Pod::from_objects(&ns, &template);
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.namespace_labels, labels(&[("istio-injection", "enabled")]));
        assert_eq!(p.labels, labels(&[("app", "api")]));
        assert_eq!(p.annotations, labels(&[("a", "b")]));
        assert!(p.host_network);
        assert_eq!(injection(&p, &served()), not(NotInjectedReason::HostNetwork));
    }
}
