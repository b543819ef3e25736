//! The workloads that need a SPIFFE identity, as the sidecar injector will make them, and the
//! ClusterSPIFFEIDs that register them (as spire-controller-manager selects and validates them).

use super::*;
use meshmove_istio::injection;

/// How a meshed pod reaches the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    Sidecar,
    Ambient,
}

/// A pod that needs a SPIFFE identity: a live Pod, or a workload's pod template offline.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The top-level workload it belongs to (the Deployment of a Pod), or itself.
    pub workload: &'a Object,
    /// The object holding the pod: the Pod, or the workload whose template it is.
    pub object: &'a Object,
    /// The pod (or template): `metadata` and `spec`.
    pub pod: &'a Value,
    pub namespace: String,
    /// The pod's labels, with those its injection templates add (see [`Subject::injected_labels`]).
    pub labels: Labels,
    /// The pod's annotations, with those its injection templates add.
    pub annotations: Labels,
    pub service_account: String,
    /// A real Pod rather than a template.
    pub live: bool,
    pub dataplane: Dataplane,
    /// The revision whose sidecar injector serves the pod (`default` for the revisionless one);
    /// `None` for ambient pods and for a sidecar declared by hand that no injector selects.
    pub revision: Option<String>,
    /// The injection templates the sidecar injector applies: `inject.istio.io/templates`, or the
    /// injector's `defaultTemplates` (sidecar subjects only; empty otherwise).
    pub templates: Vec<String>,
    /// Labels the injection templates add that the pod template does not carry itself: injection
    /// is predicted for pod templates that are not injected yet, so that ClusterSPIFFEIDs see the
    /// labels the pods will have.
    pub injected_labels: Labels,
}

impl Subject<'_> {
    /// Whether the pod already has its sidecar (injected, or declared by hand as gateways do).
    pub fn has_proxy(&self) -> bool {
        containers(self.pod).any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
    }

    /// Injection templates requested by `inject.istio.io/templates`.
    pub fn requested_templates(&self) -> Option<Vec<String>> {
        let a = self.annotations.get("inject.istio.io/templates")?;
        Some(a.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
    }

    /// Whether the injector applies Istio's `spire` template to the pod (asked for by annotation,
    /// or one of the injector's default templates).
    pub fn opts_into_spire_template(&self) -> bool {
        self.templates.iter().any(|t| t == "spire")
    }

    /// Whether the pod itself mounts a `csi.spiffe.io` volume at `socket_path` (into istio-proxy
    /// once it has one, into any container before injection).
    pub fn mounts_socket(&self, socket_path: &str) -> bool {
        let Some(spec) = self.pod.get("spec") else { return false };
        let volumes: Vec<&str> = spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.pointer("/csi/driver").and_then(Value::as_str) == Some(CSI_DRIVER_NAME))
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect();
        let proxy_only = self.has_proxy();
        containers(self.pod)
            .filter(|c| !proxy_only || c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
            .flat_map(|c| c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten())
            .any(|m| {
                m.get("name").and_then(Value::as_str).is_some_and(|n| volumes.contains(&n))
                    && m.get("mountPath").and_then(Value::as_str).map(|p| p.trim_end_matches('/'))
                        == Some(socket_path.trim_end_matches('/'))
            })
    }
}

pub(super) fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["/spec/containers", "/spec/initContainers"]
        .into_iter()
        .flat_map(move |p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten())
}

/// A ClusterSPIFFEID as the controller manager reads it.
#[derive(Debug, Clone)]
pub struct SpiffeIdSpec<'a> {
    pub object: &'a Object,
    pub template: String,
    pub pod_selector: LabelSelector,
    pub namespace_selector: LabelSelector,
    pub class_name: Option<String>,
    pub fallback: bool,
    pub federates_with: Vec<String>,
    pub ttl: Option<Duration>,
    /// Why the controller manager would reject it (empty when valid).
    pub invalid: Vec<String>,
    /// Whether the controller manager reconciles it (its className).
    pub served: bool,
}

impl SpiffeIdSpec<'_> {
    fn selects(&self, ns_labels: &Labels, pod_labels: &Labels) -> bool {
        self.namespace_selector.matches(ns_labels) && self.pod_selector.matches(pod_labels)
    }

    fn usable(&self) -> bool {
        self.served && self.invalid.is_empty()
    }
}

/// Which ClusterSPIFFEIDs register a subject.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The `ignoreNamespaces` pattern that keeps the controller manager away from its namespace.
    pub ignored_by: Option<String>,
    /// Indexes into [`SpireContext::ids`] of the ClusterSPIFFEIDs that produce its entries
    /// (fallback ones only when no other applies).
    pub ids: Vec<usize>,
    /// ClusterSPIFFEIDs that select it but are invalid or not served.
    pub unusable: Vec<usize>,
}

pub(super) fn parse_spiffe_id<'a>(o: &'a Object, controller: Option<&ControllerConfig>) -> SpiffeIdSpec<'a> {
    let spec = o.value.get("spec").unwrap_or(&Value::Null);
    let mut invalid = Vec::new();
    let template = spec.get("spiffeIDTemplate").and_then(Value::as_str).unwrap_or("").to_string();
    if template.is_empty() {
        invalid.push("spec.spiffeIDTemplate is empty".to_string());
    }
    let mut selector = |field: &str| {
        LabelSelector::from_json(spec.get(field)).unwrap_or_else(|e| {
            invalid.push(format!("spec.{field}: {e}"));
            LabelSelector::default()
        })
    };
    let pod_selector = selector("podSelector");
    let namespace_selector = selector("namespaceSelector");
    let federates_with: Vec<String> = spec
        .get("federatesWith")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for td in &federates_with {
        if let Err(e) = crate::template::validate_trust_domain(td) {
            invalid.push(format!("spec.federatesWith `{td}`: {e}"));
        }
    }
    let ttl = match spec.get("ttl").and_then(Value::as_str) {
        // metav1.Duration: Go's time.ParseDuration, every number with a unit.
        Some(t) => match meshmove_model::duration::parse(t, meshmove_model::duration::Mode::Units) {
            Ok(d) => Some(d),
            Err(e) => {
                invalid.push(format!("spec.ttl: {e}"));
                None
            }
        },
        None => None,
    };
    let class_name = spec.get("className").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    SpiffeIdSpec {
        object: o,
        template,
        pod_selector,
        namespace_selector,
        served: controller.is_none_or(|c| c.serves_class(class_name.as_deref())),
        class_name,
        fallback: spec.get("fallback").and_then(Value::as_bool).unwrap_or(false),
        federates_with,
        ttl,
        invalid,
    }
}

/// How a pod reaches the mesh, if it is meshed, and the revision whose injector serves it (for
/// a sidecar): Istio's injection and data-plane selection (`meshmove_istio::injection`), with the
/// revisions the labels name assumed installed. A pod that carries an `istio-proxy` container
/// already (injected, or declared by hand as gateways do) is a sidecar pod whatever its labels say.
pub(super) fn dataplane(
    namespace: &str,
    ns: &Labels,
    labels: &Labels,
    annotations: &Labels,
    pod: &Value,
) -> Option<(Dataplane, Option<String>)> {
    let pod_view = injection::Pod {
        namespace: namespace.to_string(),
        namespace_labels: ns.clone(),
        labels: labels.clone(),
        annotations: annotations.clone(),
        host_network: pod.pointer("/spec/hostNetwork").and_then(Value::as_bool).unwrap_or(false),
    };
    let served = injection::Served::assumed(&pod_view);
    if containers(pod).any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy")) {
        let revision = match injection::injection(&pod_view, &served) {
            injection::Injection::Injected { revision } => Some(revision),
            _ => None,
        };
        return Some((Dataplane::Sidecar, revision));
    }
    match injection::dataplane(&pod_view, &served) {
        injection::Dataplane::Sidecar { revision } => Some((Dataplane::Sidecar, Some(revision))),
        injection::Dataplane::Ambient => Some((Dataplane::Ambient, None)),
        injection::Dataplane::None => None,
    }
}

/// The injector of a subject's revision ([`Subject::revision`]): `istio-sidecar-injector-<rev>`,
/// `istio-sidecar-injector` for the default revision; the only one when there is one.
pub fn injector_for<'c, 'a>(
    s: &Subject<'_>,
    injectors: &'c [Parsed<'a, InjectorConfig>],
) -> Option<&'c Parsed<'a, InjectorConfig>> {
    let rev = s.revision.as_ref().filter(|r| r.as_str() != "default");
    let name = rev.map_or_else(|| "istio-sidecar-injector".to_string(), |r| format!("istio-sidecar-injector-{r}"));
    injectors.iter().find(|(o, _)| o.name == name).or_else(|| if injectors.len() == 1 { injectors.first() } else { None })
}

/// Apply what the sidecar injector will add to a pod template that is not injected yet: the
/// templates it applies (`inject.istio.io/templates`, else the injector's `defaultTemplates`,
/// else `sidecar`), and the labels and annotations those templates add. Istio merges each
/// template over the pod in order, so a template's value wins over the pod's own.
pub(super) fn predict_injection(s: &mut Subject<'_>, injectors: &[Parsed<'_, InjectorConfig>]) {
    if s.dataplane != Dataplane::Sidecar {
        return;
    }
    let injector = injector_for(s, injectors).and_then(|(_, c)| c.as_ref().ok());
    s.templates = s.requested_templates().unwrap_or_else(|| {
        injector.map_or_else(|| vec!["sidecar".to_string()], |c| c.default_templates.clone())
    });
    // A live pod was injected (or not) when it was created; its metadata is what it is.
    if s.live || s.has_proxy() {
        return;
    }
    let Some(injector) = injector else { return };
    for name in &s.templates {
        let Some(text) = injector.templates.get(name) else { continue };
        let added = config::template_metadata(text);
        for (k, v) in added.labels {
            if s.labels.get(&k) != Some(&v) {
                s.injected_labels.insert(k.clone(), v.clone());
            }
            s.labels.insert(k, v);
        }
        s.annotations.extend(added.annotations);
    }
}

/// The workload kinds a rollout restart replaces the pods of.
const RESTARTED_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

pub(super) fn find_subjects<'a>(
    inventory: &'a Inventory,
    namespaces: &BTreeMap<String, Labels>,
    restarting: Option<&str>,
) -> Vec<Subject<'a>> {
    let units: Vec<(&'a Object, &'a Object, &'a Value, bool)> = if inventory.is_live() {
        let restarted = |o: &Object| restarting.is_some_and(|ns| o.namespace.as_deref() == Some(ns)) && RESTARTED_KINDS.contains(&o.kind.as_str());
        let mut units: Vec<_> = inventory
            .of(&kinds::POD)
            .filter(|p| {
                !matches!(p.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
            })
            .map(|p| (workload::pod_owner(inventory, p).unwrap_or(p), p, &p.value, true))
            .filter(|(top, _, _, _)| !restarted(top))
            .collect();
        // The pods a restart makes: one per workload that runs any (its template), a workload
        // scaled to zero has none.
        units.extend(
            workload::workloads(inventory)
                .into_iter()
                .filter(|w| restarted(w.object) && w.replicas().is_none_or(|r| r > 0))
                .map(|w| (w.object, w.object, w.template, false)),
        );
        units
    } else {
        workload::workloads(inventory)
            .into_iter()
            .map(|w| (w.object, w.object, w.template, w.kind() == "Pod"))
            .collect()
    };
    units
        .into_iter()
        .filter_map(|(top, object, pod, live)| subject_of(inventory, namespaces, top, object, pod, live))
        .collect()
}

/// The subject a pod (or pod template) is, if it is meshed.
pub(super) fn subject_of<'a>(
    inventory: &'a Inventory,
    namespaces: &BTreeMap<String, Labels>,
    top: &'a Object,
    object: &'a Object,
    pod: &'a Value,
    live: bool,
) -> Option<Subject<'a>> {
    let empty = Labels::new();
    let namespace = object.namespace.clone().unwrap_or_else(|| inventory.default_namespace.clone());
    let labels = string_map(pod.pointer("/metadata/labels"));
    let annotations = string_map(pod.pointer("/metadata/annotations"));
    let (mode, revision) = dataplane(&namespace, namespaces.get(&namespace).unwrap_or(&empty), &labels, &annotations, pod)?;
    let service_account = ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| pod.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or("default")
        .to_string();
    Some(Subject {
        workload: top,
        object,
        pod,
        namespace,
        labels,
        annotations,
        service_account,
        live,
        dataplane: mode,
        revision,
        templates: Vec::new(),
        injected_labels: Labels::new(),
    })
}

pub(super) fn register(s: &Subject<'_>, ids: &[SpiffeIdSpec<'_>], ns_labels: Labels, ignore: &[NamespacePattern]) -> Registration {
    if let Some(p) = ignore.iter().find(|p| p.matches(&s.namespace) == Some(true)) {
        return Registration { ignored_by: Some(p.source.clone()), ..Registration::default() };
    }
    let selecting: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].selects(&ns_labels, &s.labels)).collect();
    let (usable, unusable): (Vec<usize>, Vec<usize>) = selecting.into_iter().partition(|&i| ids[i].usable());
    let primary: Vec<usize> = usable.iter().copied().filter(|&i| !ids[i].fallback).collect();
    let chosen = if primary.is_empty() { usable } else { primary };
    Registration { ignored_by: None, ids: chosen, unusable }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The data plane only (as spire-check uses it), in namespace `shop`.
    fn plane(ns: &Labels, labels: &Labels, annotations: &Labels, pod: &Value) -> Option<Dataplane> {
        dataplane("shop", ns, labels, annotations, pod).map(|(d, _)| d)
    }

    #[test]
    fn meshed_pods_are_recognised() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "app"}]}});
        let none = Labels::new();
        assert_eq!(plane(&l(&[("istio-injection", "enabled")]), &none, &none, &pod), Some(Dataplane::Sidecar));
        assert_eq!(plane(&l(&[("istio.io/rev", "1-22")]), &none, &none, &pod), Some(Dataplane::Sidecar));
        assert_eq!(
            plane(&l(&[("istio-injection", "enabled")]), &l(&[("sidecar.istio.io/inject", "false")]), &none, &pod),
            None
        );
        assert_eq!(plane(&none, &l(&[("sidecar.istio.io/inject", "true")]), &none, &pod), Some(Dataplane::Sidecar));
        assert_eq!(
            plane(&l(&[("istio-injection", "disabled")]), &l(&[("sidecar.istio.io/inject", "true")]), &none, &pod),
            None
        );
        assert_eq!(plane(&l(&[("istio.io/dataplane-mode", "ambient")]), &none, &none, &pod), Some(Dataplane::Ambient));
        assert_eq!(
            plane(&l(&[("istio.io/dataplane-mode", "ambient")]), &l(&[("istio.io/dataplane-mode", "none")]), &none, &pod),
            None
        );
        let injected = serde_json::json!({"spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}});
        assert_eq!(plane(&none, &none, &none, &injected), Some(Dataplane::Sidecar));
        assert_eq!(plane(&none, &none, &none, &pod), None);
    }

    /// Where spire's own rules disagreed with Istio's injection selection (`meshmove_istio::injection`,
    /// after istio/istio `pkg/kube/inject/inject.go` `injectRequired` and the webhooks' selectors),
    /// which decides now.
    #[test]
    fn istio_decides_which_pods_get_a_sidecar() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "app"}]}});
        let none = Labels::new();
        let enabled = l(&[("istio-injection", "enabled")]);
        // The legacy annotation alone: no webhook selector sees annotations (was: a sidecar).
        assert_eq!(plane(&none, &none, &l(&[("sidecar.istio.io/inject", "true")]), &pod), None);
        // Any value other than a YAML true-like opts out at the injector (was: only `false`).
        assert_eq!(plane(&enabled, &l(&[("sidecar.istio.io/inject", "no")]), &none, &pod), None);
        // The injector skips host-network pods and the system namespaces (was: a sidecar).
        let host = serde_json::json!({"spec": {"hostNetwork": true, "containers": [{"name": "app"}]}});
        assert_eq!(plane(&enabled, &none, &none, &host), None);
        assert_eq!(dataplane("kube-system", &enabled, &none, &none, &pod), None);
        // A namespace's istio.io/rev selects the revision; the pod's is not read (was: the pod's
        // label chose the injector).
        let revision = |ns: &Labels, labels: &Labels| dataplane("shop", ns, labels, &none, &pod).and_then(|(_, r)| r);
        assert_eq!(revision(&l(&[("istio.io/rev", "blue")]), &l(&[("istio.io/rev", "green")])).as_deref(), Some("blue"));
        assert_eq!(revision(&none, &l(&[("istio.io/rev", "green")])).as_deref(), Some("green"));
        assert_eq!(revision(&enabled, &none).as_deref(), Some("default"));
    }
}
