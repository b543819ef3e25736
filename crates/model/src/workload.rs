//! Workloads and their pod templates, one view for every kind that runs pods.
//!
//! Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and bare Pods all carry a
//! pod template somewhere different. Analyzers, the post-renderer and the reachability engine want
//! the same things from each (labels, containers, ports, replicas), so the lookup lives here once.
//! Pods and ReplicaSets/Jobs created by a controller are grouped under their owner, as users think
//! of them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::inventory::{Inventory, Object, kinds};

/// The kinds that run pods, in the order reports list them.
pub static WORKLOAD_KINDS: &[&kinds::Kind] = &[
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
];

/// JSON pointer of the pod template inside an object of `kind` (`""` for a Pod itself).
pub fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        "Pod" => Some(""),
        _ => None,
    }
}

/// A workload: an object that runs pods, with a view of its pod template.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub object: &'a Object,
    /// The pod template (`metadata` + `spec`); for a bare Pod, the Pod.
    pub template: &'a Value,
}

impl<'a> Workload<'a> {
    /// View an object as a workload, if its kind runs pods.
    pub fn of(object: &'a Object) -> Option<Self> {
        // A pod kept as facts is managed by a workload: it is that workload's, not one itself.
        if object.pod.is_some() {
            return None;
        }
        let ptr = template_pointer(&object.kind)?;
        let template = if ptr.is_empty() { &object.value } else { object.value.pointer(ptr)? };
        Some(Workload { object, template })
    }

    pub fn kind(&self) -> &'a str {
        &self.object.kind
    }

    pub fn name(&self) -> &'a str {
        &self.object.name
    }

    pub fn namespace(&self) -> &'a str {
        self.object.namespace.as_deref().unwrap_or("default")
    }

    /// Pod template labels.
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        string_map(self.template.pointer("/metadata/labels"))
    }

    /// Pod template annotations.
    pub fn pod_annotations(&self) -> BTreeMap<String, String> {
        string_map(self.template.pointer("/metadata/annotations"))
    }

    pub fn pod_spec(&self) -> Option<&'a Value> {
        self.template.get("spec")
    }

    /// Main containers (not init containers).
    pub fn containers(&self) -> impl Iterator<Item = &'a Value> + 'a {
        self.template.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten()
    }

    /// Init containers (including native sidecars, which have `restartPolicy: Always`).
    pub fn init_containers(&self) -> impl Iterator<Item = &'a Value> + 'a {
        self.template.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten()
    }

    /// Container ports of the main containers: (name, number, protocol).
    pub fn ports(&self) -> Vec<ContainerPort> {
        container_ports(self.containers())
    }

    /// Desired replicas: `spec.replicas` (default 1) for scalable kinds, 1 for Pods, Jobs and
    /// CronJobs, `None` for DaemonSets (one per node).
    pub fn replicas(&self) -> Option<i64> {
        match self.kind() {
            "DaemonSet" => None,
            "Deployment" | "StatefulSet" | "ReplicaSet" => {
                Some(self.object.value.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1))
            }
            _ => Some(1),
        }
    }

    /// Controller owner reference (kind, name), if any.
    pub fn controller(&self) -> Option<(&'a str, &'a str)> {
        owner(self.object)
    }

    /// Images of the main containers.
    pub fn images(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.containers().filter_map(|c| c.get("image").and_then(Value::as_str))
    }

    /// Names of the Secrets (`kind` `"Secret"`) or ConfigMaps (`"ConfigMap"`) whose content the
    /// pods read, in the workload's namespace (see [`config_refs`]; image pull Secrets are left
    /// out: their content is for the kubelet, not the pod). Sorted, once each.
    pub fn referenced(&self, kind: &str) -> Vec<&'a str> {
        let Some(spec) = self.pod_spec() else { return Vec::new() };
        let mut names: Vec<&str> = config_refs(spec).into_iter().filter(|r| r.kind == kind).map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// How a pod reads a Secret or ConfigMap it references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigUse<'a> {
    /// `env[].valueFrom.secretKeyRef` / `configMapKeyRef`: variable `env` of `container` is `key`.
    EnvKey { container: &'a str, env: &'a str, key: &'a str },
    /// `envFrom[].secretRef` / `configMapRef`: every key becomes a variable, named with `prefix`.
    EnvFrom { container: &'a str, prefix: &'a str },
    /// A `secret` / `configMap` volume, or such a source of a `projected` volume: keys are files.
    Volume { volume: &'a str },
}

/// One reference of a pod spec to a Secret or ConfigMap of its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigRef<'a> {
    /// `"Secret"` or `"ConfigMap"`.
    pub kind: &'static str,
    pub name: &'a str,
    pub used: ConfigUse<'a>,
}

/// Every Secret and ConfigMap a pod spec reads, in the order the spec names them (containers,
/// then init containers, each `env` then `envFrom`; then volumes): the ways a pod consumes them
/// per the Kubernetes "Secrets" and "ConfigMaps" concept pages
/// (<https://kubernetes.io/docs/concepts/configuration/secret/#using-a-secret>,
/// <https://kubernetes.io/docs/concepts/configuration/configmap/#using-configmaps>). A volume
/// names its Secret with `secretName`, a projected source with `name`. References without a name
/// are left out: the API server rejects them (`name` is required in a key selector, and a
/// reference to no object reads nothing).
pub fn config_refs<'v>(spec: &'v Value) -> Vec<ConfigRef<'v>> {
    fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
        v.pointer(pointer).and_then(Value::as_str)
    }
    let mut out: Vec<ConfigRef<'v>> = Vec::new();
    let mut push = |kind: &'static str, name: Option<&'v str>, used: ConfigUse<'v>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push(ConfigRef { kind, name, used });
        }
    };
    let containers = ["containers", "initContainers"]
        .into_iter()
        .flat_map(|list| spec.get(list).and_then(Value::as_array).into_iter().flatten());
    for c in containers {
        let container = c.get("name").and_then(Value::as_str).unwrap_or("");
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            let env = e.get("name").and_then(Value::as_str).unwrap_or("");
            for (kind, selector) in [("Secret", "/valueFrom/secretKeyRef"), ("ConfigMap", "/valueFrom/configMapKeyRef")] {
                if let Some(r) = e.pointer(selector) {
                    let key = r.get("key").and_then(Value::as_str).unwrap_or("");
                    push(kind, r.get("name").and_then(Value::as_str), ConfigUse::EnvKey { container, env, key });
                }
            }
        }
        for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
            let prefix = e.get("prefix").and_then(Value::as_str).unwrap_or("");
            push("Secret", str_at(e, "/secretRef/name"), ConfigUse::EnvFrom { container, prefix });
            push("ConfigMap", str_at(e, "/configMapRef/name"), ConfigUse::EnvFrom { container, prefix });
        }
    }
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        let volume = v.get("name").and_then(Value::as_str).unwrap_or("");
        let projected = v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten();
        for src in std::iter::once(v).chain(projected) {
            let secret = src.get("secret").and_then(|s| s.get("secretName").or_else(|| s.get("name")));
            push("Secret", secret.and_then(Value::as_str), ConfigUse::Volume { volume });
            push("ConfigMap", str_at(src, "/configMap/name"), ConfigUse::Volume { volume });
        }
    }
    out
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: String,
}

/// The declared ports of `containers` (JSON container specs): those with a `containerPort` in
/// 0..=65535; `protocol` defaults to `TCP`.
pub fn container_ports<'a>(containers: impl Iterator<Item = &'a Value>) -> Vec<ContainerPort> {
    containers
        .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|p| {
            Some(ContainerPort {
                name: p.get("name").and_then(Value::as_str).map(str::to_string),
                port: u16::try_from(p.get("containerPort")?.as_i64()?).ok()?,
                protocol: p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string(),
            })
        })
        .collect()
}

/// The controller owner (kind, name) of an object, from `metadata.ownerReferences`.
pub fn owner(object: &Object) -> Option<(&str, &str)> {
    if let Some(pod) = &object.pod {
        return pod.owner();
    }
    owner_of_value(&object.value)
}

/// [`owner`] of an object as JSON.
pub fn owner_of_value(value: &Value) -> Option<(&str, &str)> {
    // Read for every object of every workload kind (every Pod of a cluster): no `pointer`, which
    // allocates a string per path segment.
    let refs = value.get("metadata")?.get("ownerReferences")?.as_array()?;
    pick_owner(refs.iter().map(|r| {
        let text = |key| r.get(key).and_then(Value::as_str);
        (text("kind"), text("name"), r.get("controller").and_then(Value::as_bool) == Some(true))
    }))
}

/// The owner among owner references given as (kind, name, whether `controller` is true): the
/// first controller, else the first reference; `None` when that one lacks a kind or a name.
pub fn pick_owner<'a>(refs: impl Iterator<Item = (Option<&'a str>, Option<&'a str>, bool)> + Clone) -> Option<(&'a str, &'a str)> {
    let (kind, name, _) = refs.clone().find(|r| r.2).or_else(|| refs.clone().next())?;
    Some((kind?, name?))
}

/// Top-level workloads of an inventory: objects that run pods and are not themselves managed by
/// another workload in the inventory (a ReplicaSet owned by a Deployment, a Job owned by a
/// CronJob and a Pod owned by anything are grouped under their owner).
pub fn workloads(inventory: &Inventory) -> Vec<Workload<'_>> {
    WORKLOAD_KINDS
        .iter()
        .flat_map(|k| inventory.of(k))
        .filter(|o| match owner(o) {
            None => true,
            // A Pod or ReplicaSet whose owner is not a workload kind we know (an operator's CR)
            // stays a workload of its own.
            Some((kind, _)) => template_pointer(kind).is_none(),
        })
        .filter_map(Workload::of)
        .collect()
}

/// Read a JSON object of strings into a sorted map (non-string values are skipped).
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// Resolve the top-level workload a Pod belongs to by following owner references through the
/// inventory (Pod → ReplicaSet → Deployment, Pod → Job → CronJob).
pub fn pod_owner<'a>(inventory: &'a Inventory, pod: &'a Object) -> Option<&'a Object> {
    let ns = pod.namespace.as_deref();
    let (mut kind, mut name) = owner(pod)?;
    let mut found = None;
    for _ in 0..3 {
        let k = kinds::ALL.iter().find(|k| k.kind == kind && template_pointer(k.kind).is_some())?;
        let Some(o) = inventory.get(k, ns, name) else { break };
        found = Some(o);
        match owner(o) {
            Some((k2, n2)) if template_pointer(k2).is_some() => (kind, name) = (k2, n2),
            _ => break,
        }
    }
    found
}

/// Names of the PodDisruptionBudgets in a workload's namespace whose selector matches its pod
/// template labels. As policy/v1 defines it, an empty selector matches every pod of the
/// namespace and a missing one none; a selector that cannot be interpreted counts as matching,
/// which only makes restart batches smaller.
pub fn disruption_budgets(inventory: &Inventory, w: &Object) -> Vec<String> {
    let Some(view) = Workload::of(w) else { return Vec::new() };
    let labels = view.pod_labels();
    inventory
        .of(&kinds::POD_DISRUPTION_BUDGET)
        .filter(|p| p.namespace == w.namespace)
        .filter(|p| match p.value.pointer("/spec/selector") {
            None | Some(Value::Null) => false,
            // policy/v1: an empty selector selects every pod of the namespace. One the API
            // server would reject counts as selecting the workload (smaller batches, never a
            // budget ignored).
            Some(sel) => crate::selector::LabelSelector::from_json(Some(sel)).map_or(true, |s| s.matches(&labels)),
        })
        .map(|p| p.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Origin;
    use serde_json::json;

    #[test]
    fn referenced_secrets_and_config_maps_are_the_ones_pods_read() {
        let value = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"template": {"spec": {
                "imagePullSecrets": [{"name": "registry"}],
                "initContainers": [{"name": "migrate", "envFrom": [{"secretRef": {"name": "db-admin"}}]}],
                "containers": [{"name": "api",
                    "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                            {"name": "PLAIN", "value": "x"}],
                    "envFrom": [{"configMapRef": {"name": "env"}}, {"secretRef": {"name": "db"}}]}],
                "volumes": [{"name": "tls", "secret": {"secretName": "tls"}},
                            {"name": "conf", "configMap": {"name": "conf"}},
                            {"name": "both", "projected": {"sources": [{"secret": {"name": "token"}}, {"configMap": {"name": "ca"}},
                                                                       {"serviceAccountToken": {"path": "t"}}]}},
                            {"name": "scratch", "emptyDir": {}}]}}}
        });
        let object = Object {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "api".into(),
            value,
            origin: Origin::Cluster { context: "c".into() },
            pod: None,
        };
        let w = Workload::of(&object).unwrap();
        assert_eq!(w.referenced("Secret"), ["db", "db-admin", "tls", "token"]);
        assert_eq!(w.referenced("ConfigMap"), ["ca", "conf", "env", "settings"]);
        assert!(w.referenced("Service").is_empty());
        // How each is read, in the spec's order (containers, init containers, volumes).
        let uses: Vec<(&str, &str, ConfigUse<'_>)> =
            config_refs(w.pod_spec().unwrap()).into_iter().map(|r| (r.kind, r.name, r.used)).collect();
        assert_eq!(
            uses,
            [
                ("Secret", "db", ConfigUse::EnvKey { container: "api", env: "DB", key: "url" }),
                ("ConfigMap", "settings", ConfigUse::EnvKey { container: "api", env: "MODE", key: "mode" }),
                ("ConfigMap", "env", ConfigUse::EnvFrom { container: "api", prefix: "" }),
                ("Secret", "db", ConfigUse::EnvFrom { container: "api", prefix: "" }),
                ("Secret", "db-admin", ConfigUse::EnvFrom { container: "migrate", prefix: "" }),
                ("Secret", "tls", ConfigUse::Volume { volume: "tls" }),
                ("ConfigMap", "conf", ConfigUse::Volume { volume: "conf" }),
                ("Secret", "token", ConfigUse::Volume { volume: "both" }),
                ("ConfigMap", "ca", ConfigUse::Volume { volume: "both" }),
            ]
        );
    }
}
