//! Defaulting, validation and the mutating behaviour a real cluster applies
//! on create: namespace labels, Service cluster IPs, workload replica
//! defaults, CRD status, Istio sidecar injection and (when controllers are
//! simulated) a kubelet that reports every pod as running and ready.

use crate::registry::ResourceType;
use crate::selector::{LabelSelector, valid_label_key, valid_label_value};
use crate::status::ApiError;
use crate::util::{ensure_object, get_path, get_str, meta_str, now_rfc3339};
use meshmove_istio::{Injection, Pod, Served};
use serde_json::{Map, Value, json};

/// The proxy image injected into pods.
pub const ISTIO_PROXY_IMAGE: &str = "docker.io/istio/proxyv2:1.28.0";

fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && dns_subdomain(name)
}

/// Validates names, labels, annotations and a few kind-specific invariants.
pub fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    let mut causes: Vec<(String, String, String)> = Vec::new();
    let mut add = |field: &str, reason: &str, msg: String| {
        causes.push((field.to_string(), reason.to_string(), msg))
    };
    let name_ok = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") | ("", "Service") => dns_label(&name),
        _ => dns_subdomain(&name),
    };
    if name.is_empty() {
        add(
            "metadata.name",
            "FieldValueRequired",
            "Required value: name or generateName is required".into(),
        );
    } else if !name_ok {
        let (what, re) = if matches!(rt.kind.as_str(), "Namespace" | "Service")
            && rt.group.is_empty()
        {
            (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "",
            )
        } else {
            (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "",
            )
        };
        add(
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: \"{name}\": {what}{re}"),
        );
    }
    if let Some(labels) = get_path(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if !valid_label_key(k) {
                add(
                    "metadata.labels",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                );
            }
            match v.as_str() {
                Some(s) if valid_label_value(s) => {}
                Some(s) => add(
                    "metadata.labels",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: \"{s}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                ),
                None => add(
                    "metadata.labels",
                    "FieldValueInvalid",
                    format!("Invalid value: {v}: label values must be strings"),
                ),
            }
        }
    }
    if let Some(ann) = get_path(obj, &["metadata", "annotations"]).and_then(Value::as_object) {
        for (k, v) in ann {
            if !valid_label_key(k) {
                add(
                    "metadata.annotations",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                );
            }
            if !v.is_string() {
                add(
                    "metadata.annotations",
                    "FieldValueInvalid",
                    format!("Invalid value: {v}: annotation values must be strings"),
                );
            }
        }
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            match get_path(obj, &["spec", "selector"]) {
                None => add(
                    "spec.selector",
                    "FieldValueRequired",
                    "Required value".into(),
                ),
                Some(sel) => match LabelSelector::from_object(sel) {
                    Err(e) => add(
                        "spec.selector",
                        "FieldValueInvalid",
                        format!("Invalid value: {e}"),
                    ),
                    Ok(s) if s.is_empty() => add(
                        "spec.selector",
                        "FieldValueInvalid",
                        "Invalid value: \"null\": empty selector is invalid for deployment".into(),
                    ),
                    Ok(s) => {
                        let tl = get_path(obj, &["spec", "template", "metadata", "labels"])
                            .and_then(Value::as_object);
                        if !s.matches(tl) {
                            let shown = tl
                                .map(|m| Value::Object(m.clone()).to_string())
                                .unwrap_or_else(|| "null".into());
                            add(
                                "spec.template.metadata.labels",
                                "FieldValueInvalid",
                                format!(
                                    "Invalid value: {shown}: `selector` does not match template `labels`"
                                ),
                            );
                        }
                    }
                },
            }
            validate_pod_spec(
                get_path(obj, &["spec", "template", "spec"]),
                "spec.template.spec",
                &mut add,
            );
        }
        ("", "Pod") => validate_pod_spec(obj.get("spec"), "spec", &mut add),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let group = get_str(obj, &["spec", "group"]).unwrap_or_default();
            let plural = get_str(obj, &["spec", "names", "plural"]).unwrap_or_default();
            if group.is_empty() {
                add("spec.group", "FieldValueRequired", "Required value".into());
            }
            if plural.is_empty() {
                add(
                    "spec.names.plural",
                    "FieldValueRequired",
                    "Required value".into(),
                );
            }
            if get_str(obj, &["spec", "names", "kind"])
                .unwrap_or_default()
                .is_empty()
            {
                add(
                    "spec.names.kind",
                    "FieldValueRequired",
                    "Required value".into(),
                );
            }
            if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
                add(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                    ),
                );
            }
            let versions = get_path(obj, &["spec", "versions"]).and_then(Value::as_array);
            if versions.is_none_or(|v| v.is_empty()) {
                add(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: null: must have exactly one version marked as storage version"
                        .into(),
                );
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, &name, &causes))
    }
}

fn validate_pod_spec(spec: Option<&Value>, prefix: &str, add: &mut impl FnMut(&str, &str, String)) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => add(
            &format!("{prefix}.containers"),
            "FieldValueRequired",
            "Required value".into(),
        ),
        Some(cs) if cs.is_empty() => add(
            &format!("{prefix}.containers"),
            "FieldValueRequired",
            "Required value".into(),
        ),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    add(
                        &format!("{prefix}.containers[{i}].name"),
                        "FieldValueRequired",
                        "Required value".into(),
                    );
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    add(
                        &format!("{prefix}.containers[{i}].image"),
                        "FieldValueRequired",
                        "Required value".into(),
                    );
                }
            }
        }
    }
}

/// Facts about the cluster that admission needs.
pub struct AdmissionCtx<'a> {
    /// Labels of the object's namespace.
    pub namespace_labels: Option<&'a Map<String, Value>>,
    /// Simulate Istio's sidecar injector.
    pub istio_injection: bool,
    /// The object's namespace.
    pub namespace: &'a str,
    /// The injectors: istiod Deployments (label `app=istiod`, revision from `istio.io/rev`,
    /// else `default`, which also serves the legacy selectors) and revision tags (webhooks
    /// labelled `istio.io/tag`, pointing at their `istio.io/rev`). A pod whose labels select a
    /// revision without an istiod is created without a proxy, as on a cluster whose webhook has
    /// no istiod behind it.
    pub served: Served,
    /// Simulate a kubelet that runs every pod.
    pub kubelet: bool,
    /// A fresh cluster IP.
    pub cluster_ip: String,
    /// A fresh pod IP.
    pub pod_ip: String,
    /// Node to bind pods to (if nodes exist).
    pub node_name: Option<String>,
}

/// Defaulting applied on create.
pub fn default_on_create(rt: &ResourceType, obj: &mut Value, ctx: &AdmissionCtx<'_>) {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            ensure_object(obj, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            let spec = ensure_object(obj, &["spec"]);
            spec.entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
            ensure_object(obj, &["status"])
                .entry("phase")
                .or_insert_with(|| json!("Active"));
        }
        ("", "Service") => default_service(obj, ctx),
        ("apps", "Deployment") => {
            let spec = ensure_object(obj, &["spec"]);
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("strategy")
                .or_insert_with(|| json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("progressDeadlineSeconds").or_insert(json!(600));
        }
        ("apps", "StatefulSet") => {
            let spec = ensure_object(obj, &["spec"]);
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("podManagementPolicy")
                .or_insert(json!("OrderedReady"));
            spec.entry("updateStrategy").or_insert_with(
                || json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
        }
        ("apps", "ReplicaSet") => {
            ensure_object(obj, &["spec"])
                .entry("replicas")
                .or_insert(json!(1));
        }
        ("apps", "DaemonSet") => {
            let spec = ensure_object(obj, &["spec"]);
            spec.entry("updateStrategy")
                .or_insert_with(|| json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd_status(obj),
        ("", "Pod") => {
            if ctx.istio_injection {
                inject_sidecar(obj, ctx.namespace, ctx.namespace_labels, &ctx.served);
            }
            if let Some(node) = &ctx.node_name {
                let spec = ensure_object(obj, &["spec"]);
                if spec
                    .get("nodeName")
                    .is_none_or(|n| n.as_str().is_none_or(str::is_empty))
                {
                    spec.insert("nodeName".into(), json!(node));
                }
            }
            if ctx.kubelet {
                run_pod(obj, &ctx.pod_ip);
            } else {
                ensure_object(obj, &["status"])
                    .entry("phase")
                    .or_insert(json!("Pending"));
            }
        }
        _ => {}
    }
}

fn default_service(obj: &mut Value, ctx: &AdmissionCtx<'_>) {
    let spec = ensure_object(obj, &["spec"]);
    let ty = spec
        .entry("type")
        .or_insert(json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        let ip = match spec.get("clusterIP").and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => ctx.cluster_ip.clone(),
        };
        spec.insert("clusterIP".into(), json!(ip));
        spec.entry("clusterIPs").or_insert_with(|| json!([ip]));
        spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
        spec.entry("internalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports {
            if let Some(m) = p.as_object_mut() {
                m.entry("protocol").or_insert(json!("TCP"));
                if let Some(port) = m.get("port").cloned() {
                    m.entry("targetPort").or_insert(port);
                }
            }
        }
    }
    ensure_object(obj, &["status"])
        .entry("loadBalancer")
        .or_insert_with(|| json!({}));
}

/// Keeps a Service's allocated cluster IP across updates that omit it.
pub fn preserve_on_update(rt: &ResourceType, old: &Value, new: &mut Value) {
    if rt.group.is_empty() && rt.kind == "Service" {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if get_path(new, &["spec", f]).is_none()
                && let Some(v) = get_path(old, &["spec", f])
            {
                ensure_object(new, &["spec"]).insert(f.into(), v.clone());
            }
        }
    }
    if rt.group.is_empty() && rt.kind == "Namespace" {
        let name = meta_str(new, "name").unwrap_or_default().to_string();
        ensure_object(new, &["metadata", "labels"])
            .insert("kubernetes.io/metadata.name".into(), json!(name));
    }
}

fn crd_status(obj: &mut Value) {
    let names = get_path(obj, &["spec", "names"])
        .cloned()
        .unwrap_or(json!({}));
    let mut accepted = names.clone();
    if let Some(m) = accepted.as_object_mut() {
        if !m.contains_key("singular") {
            let kind = m
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            m.insert("singular".into(), json!(kind));
        }
        if !m.contains_key("listKind") {
            let kind = m
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            m.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    let storage: Vec<Value> = get_path(obj, &["spec", "versions"])
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = now_rfc3339();
    let status = ensure_object(obj, &["status"]);
    status.insert("acceptedNames".into(), accepted);
    status.insert(
        "conditions".into(),
        json!([
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ]),
    );
    status.insert("storedVersions".into(), Value::Array(storage));
}

/// Istio's injection decision for a pod being created, from `meshmove_istio::injection` — the
/// same rule the product predicts with (webhook selection as istio/istio
/// `manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml` and
/// `revision-tags.yaml` install it, then the injector's `injectRequired` in
/// `pkg/kube/inject/inject.go`; see that module for the citations). `served` is what the double
/// knows of the control plane: a pod whose labels select a revision no istiod serves is
/// created without a proxy, as on a cluster whose webhook has no istiod behind it.
pub fn injection_for(
    pod: &Value,
    namespace: &str,
    ns_labels: Option<&Map<String, Value>>,
    served: &Served,
) -> Injection {
    let ns = json!({"metadata": {"name": namespace, "labels": ns_labels.cloned().unwrap_or_default()}});
    meshmove_istio::injection(&Pod::from_objects(&ns, pod), served)
}

/// Adds `istio-init` and `istio-proxy` the way the classic injector does, when Istio would
/// inject the pod and an injector serves the revision its labels select
/// ([`injection_for`]). The proxy records the revision of the istiod that injected it (a tag
/// resolves to its revision), as istiod's injection template does.
pub fn inject_sidecar(
    pod: &mut Value,
    namespace: &str,
    ns_labels: Option<&Map<String, Value>>,
    served: &Served,
) {
    let Injection::Injected { revision } = injection_for(pod, namespace, ns_labels, served) else {
        return;
    };
    let has_proxy = get_path(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
        });
    if has_proxy {
        return;
    }
    let canonical = get_str(pod, &["metadata", "labels", "app.kubernetes.io/name"])
        .or_else(|| get_str(pod, &["metadata", "labels", "app"]))
        .or_else(|| meta_str(pod, "generateName").map(|g| g.trim_end_matches('-')))
        .or_else(|| meta_str(pod, "name"))
        .unwrap_or("unknown")
        .to_string();
    let proxy = json!({
        "name": "istio-proxy",
        "image": ISTIO_PROXY_IMAGE,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning", "--log_output_level=default:info"],
        "env": [
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}
        ],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}},
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
        "volumeMounts": [{"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"}, {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"}]
    });
    let init = json!({
        "name": "istio-init",
        "image": ISTIO_PROXY_IMAGE,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}, "runAsUser": 0, "runAsNonRoot": false}
    });
    let spec = ensure_object(pod, &["spec"]);
    match spec.get_mut("containers") {
        Some(Value::Array(cs)) => cs.push(proxy),
        _ => {
            spec.insert("containers".into(), json!([proxy]));
        }
    }
    match spec.get_mut("initContainers") {
        Some(Value::Array(cs)) => cs.insert(0, init),
        _ => {
            spec.insert("initContainers".into(), json!([init]));
        }
    }
    let vols = json!([{"name": "workload-socket", "emptyDir": {}}, {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}]);
    match spec.get_mut("volumes") {
        Some(Value::Array(vs)) => vs.extend(vols.as_array().cloned().unwrap_or_default()),
        _ => {
            spec.insert("volumes".into(), vols);
        }
    }
    let labels = ensure_object(pod, &["metadata", "labels"]);
    labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    labels
        .entry("service.istio.io/canonical-name")
        .or_insert(json!(canonical));
    labels
        .entry("service.istio.io/canonical-revision")
        .or_insert(json!("latest"));
    let status = json!({"initContainers": ["istio-init"], "containers": ["istio-proxy"], "volumes": ["workload-socket", "istio-envoy"], "imagePullSecrets": null, "revision": revision}).to_string();
    let default_container = get_path(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .and_then(|cs| cs.first())
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("istio-proxy")
        .to_string();
    let ann = ensure_object(pod, &["metadata", "annotations"]);
    ann.insert("sidecar.istio.io/status".into(), json!(status));
    ann.entry("kubectl.kubernetes.io/default-container")
        .or_insert(json!(default_container));
    ann.insert("istio.io/rev".into(), json!(revision));
}

/// Marks a pod as scheduled, running and ready.
pub fn run_pod(pod: &mut Value, pod_ip: &str) {
    let now = now_rfc3339();
    let statuses = |key: &str| -> Vec<Value> {
        get_path(pod, &["spec", key])
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                        let id = crate::util::template_hash(&json!([name, image, pod_ip]));
                        if key == "initContainers" {
                            json!({"name": name, "image": image, "imageID": "", "ready": true, "restartCount": 0,
                                "started": false, "containerID": format!("containerd://{id}"),
                                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}})
                        } else {
                            json!({"name": name, "image": image, "imageID": "", "ready": true, "restartCount": 0,
                                "started": true, "containerID": format!("containerd://{id}"),
                                "state": {"running": {"startedAt": now}}})
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = statuses("containers");
    let inits = statuses("initContainers");
    let host_ip = "10.0.0.10";
    let status = ensure_object(pod, &["status"]);
    status.insert("phase".into(), json!("Running"));
    status.insert(
        "conditions".into(),
        json!([
            {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}
        ]),
    );
    status.insert("hostIP".into(), json!(host_ip));
    status.insert("hostIPs".into(), json!([{"ip": host_ip}]));
    status.insert("podIP".into(), json!(pod_ip));
    status.insert("podIPs".into(), json!([{"ip": pod_ip}]));
    status.insert("startTime".into(), json!(now));
    if !inits.is_empty() {
        status.insert("initContainerStatuses".into(), Value::Array(inits));
    }
    status.insert("containerStatuses".into(), Value::Array(containers));
    status.insert("qosClass".into(), json!("BestEffort"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin_types;

    fn rt(kind: &str) -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.kind == kind)
            .unwrap()
    }

    #[test]
    fn names_and_labels_are_validated() {
        let ok = json!({"metadata": {"name": "web-1", "labels": {"app.kubernetes.io/name": "web"}}, "data": {}});
        assert!(validate(&rt("ConfigMap"), &ok).is_ok());
        let bad = json!({"metadata": {"name": "Web_1"}});
        let e = validate(&rt("ConfigMap"), &bad).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with(
                "ConfigMap \"Web_1\" is invalid: metadata.name: Invalid value: \"Web_1\""
            ),
            "{}",
            e.message
        );
        let bad = json!({"metadata": {"name": "x", "labels": {"app": "-nope"}}});
        assert_eq!(
            validate(&rt("ConfigMap"), &bad).unwrap_err().reason,
            "Invalid"
        );
        assert!(validate(&rt("Namespace"), &json!({"metadata": {"name": "a.b"}})).is_err());
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "a", "image": "b"}]}}}});
        let e = validate(&rt("Deployment"), &d).unwrap_err();
        assert!(
            e.message
                .contains("`selector` does not match template `labels`"),
            "{}",
            e.message
        );
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}}});
        let e = validate(&rt("Deployment"), &d).unwrap_err();
        assert!(
            e.message
                .contains("spec.template.spec.containers[0].image: Required value"),
            "{}",
            e.message
        );
    }

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// An istiod of the default revision and of `canary`, tag `stable` -> `canary`, tag `old`
    /// -> `1-19` (no istiod).
    fn served() -> Served {
        Served {
            revisions: ["default".to_string(), "canary".to_string()].into(),
            tags: [("stable".to_string(), "canary".to_string()), ("old".to_string(), "1-19".to_string())].into(),
            default_revision: Some("default".into()),
        }
    }

    fn pod(pod_labels: Value, annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": pod_labels, "annotations": annotations},
               "spec": {"containers": [{"name": "app", "image": "x"}]}})
    }

    /// The revision of the injected proxy, `None` when the pod was left alone.
    fn injected(pod: &Value, ns: Value, served: &Served) -> Option<String> {
        let mut p = pod.clone();
        inject_sidecar(&mut p, "shop", Some(&labels(ns)), served);
        if p == *pod {
            return None;
        }
        let names: Vec<&str> = p["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["app", "istio-proxy"]);
        let status: Value = serde_json::from_str(p["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap()).unwrap();
        assert_eq!(status["revision"], p["metadata"]["annotations"]["istio.io/rev"]);
        Some(status["revision"].as_str().unwrap().to_string())
    }

    #[test]
    fn injection_follows_istios_label_precedence() {
        let s = served();
        let plain = pod(json!({"app": "web"}), json!({}));
        let rev = |r: &str| Some(r.to_string());
        // istio-injection=enabled wins over a namespace istio.io/rev.
        assert_eq!(injected(&plain, json!({"istio-injection": "enabled", "istio.io/rev": "canary"}), &s), rev("default"));
        // istio-injection=disabled beside a revision label: no webhook selects the pod.
        assert_eq!(injected(&plain, json!({"istio-injection": "disabled", "istio.io/rev": "canary"}), &s), None);
        let opt_in = pod(json!({"sidecar.istio.io/inject": "true", "istio.io/rev": "canary"}), json!({}));
        assert_eq!(injected(&opt_in, json!({"istio-injection": "disabled"}), &s), None);
        // A namespace revision wins over the pod's; a tag injects from its revision.
        let pod_rev = pod(json!({"istio.io/rev": "default"}), json!({}));
        assert_eq!(injected(&pod_rev, json!({"istio.io/rev": "stable"}), &s), rev("canary"));
        // In an unlabelled namespace the pod's own revision label selects.
        assert_eq!(injected(&pod_rev, json!({}), &s), rev("default"));
        assert_eq!(injected(&pod(json!({"istio.io/rev": "canary"}), json!({})), json!({}), &s), rev("canary"));
        // A tag whose revision has no istiod, or an unknown revision: no injector answers.
        assert_eq!(injected(&plain, json!({"istio.io/rev": "old"}), &s), None);
        assert_eq!(injected(&plain, json!({"istio.io/rev": "1-25"}), &s), None);
        // Without a default revision, istio-injection=enabled reaches no injector.
        let canary_only = Served { revisions: ["canary".to_string()].into(), ..Served::default() };
        assert_eq!(injected(&plain, json!({"istio-injection": "enabled"}), &canary_only), None);
        assert_eq!(injected(&plain, json!({"istio.io/rev": "canary"}), &canary_only), rev("canary"));
        // The legacy annotation opts out but cannot opt in.
        assert_eq!(injected(&pod(json!({}), json!({"sidecar.istio.io/inject": "false"})), json!({"istio-injection": "enabled"}), &s), None);
        assert_eq!(injected(&pod(json!({}), json!({"sidecar.istio.io/inject": "true"})), json!({}), &s), None);
        assert_eq!(injected(&plain, json!({}), &s), None);
    }

    /// The double injects exactly when meshmove-istio predicts Istio would, from the revision it
    /// predicts, over every combination of the labels involved.
    #[test]
    fn injection_is_meshmove_istios_prediction() {
        let s = served();
        let mut checked = 0;
        for ns_inj in [None, Some("enabled"), Some("disabled")] {
            for ns_rev in [None, Some("canary"), Some("stable"), Some("old")] {
                for pod_rev in [None, Some("canary"), Some("default")] {
                    for inject in [None, Some("true"), Some("false"), Some("no")] {
                        let mut ns = json!({});
                        let mut pl = json!({"app": "web"});
                        if let Some(v) = ns_inj {
                            ns["istio-injection"] = json!(v);
                        }
                        if let Some(v) = ns_rev {
                            ns["istio.io/rev"] = json!(v);
                        }
                        if let Some(v) = pod_rev {
                            pl["istio.io/rev"] = json!(v);
                        }
                        if let Some(v) = inject {
                            pl["sidecar.istio.io/inject"] = json!(v);
                        }
                        let p = pod(pl, json!({}));
                        let nsv = json!({"metadata": {"name": "shop", "labels": ns}});
                        let predicted = match meshmove_istio::injection(&Pod::from_objects(&nsv, &p), &s) {
                            Injection::Injected { revision } => Some(revision),
                            _ => None,
                        };
                        assert_eq!(injected(&p, ns.clone(), &s), predicted, "namespace {ns}, pod {}", p["metadata"]["labels"]);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 144);
    }

    #[test]
    fn injection_adds_the_proxy_once() {
        let mut p = pod(json!({"app": "web"}), json!({}));
        let ns = labels(json!({"istio.io/rev": "canary"}));
        inject_sidecar(&mut p, "shop", Some(&ns), &served());
        assert_eq!(p["metadata"]["labels"]["service.istio.io/canonical-name"], "web");
        assert_eq!(p["metadata"]["annotations"]["istio.io/rev"], "canary");
        let again = p.clone();
        inject_sidecar(&mut p, "shop", Some(&ns), &served());
        assert_eq!(again, p, "injection is idempotent");
    }
}
