//! The resource registry: built-in kinds plus kinds contributed by stored
//! `CustomResourceDefinition` objects.

use crate::util::get_str;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Paths used by a `/scale` subresource.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    /// Dotted path of the desired replica count, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Dotted path of the observed replica count, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Dotted path of the label selector string, if any.
    pub label_selector: Option<String>,
}

/// An extra column of `kubectl get` tables (CRD `additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Simple JSONPath (`.status.phase`, `.spec.hosts`, `.items[0].x`).
    pub json_path: String,
    /// 0 for default output, >0 for `-o wide`.
    pub priority: i64,
    /// Column description.
    pub description: String,
}

/// One servable resource in one group/version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Verbs advertised in discovery.
    pub verbs: Vec<String>,
    /// Whether `/status` is a subresource (status is then ignored on the main resource).
    pub status_subresource: bool,
    /// `/scale` subresource, if any.
    pub scale: Option<ScalePaths>,
    /// Printer columns for CRD kinds.
    pub printer_columns: Vec<PrinterColumn>,
    /// Contributed by a CRD.
    pub custom: bool,
    /// Whether `metadata.generation` is maintained.
    pub has_generation: bool,
    /// Name of the CRD that contributed this type.
    pub crd_name: Option<String>,
}

impl ResourceType {
    /// `group/version` or `version` for core.
    pub fn api_version(&self) -> String {
        crate::util::join_api_version(&self.group, &self.version)
    }

    /// `XList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether a verb is advertised.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// A built-in namespaced or cluster-scoped type with the standard verbs.
    pub fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: vec![],
            categories: vec![],
            verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
            status_subresource: false,
            scale: None,
            printer_columns: vec![],
            custom: false,
            has_generation: false,
            crd_name: None,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }
    fn cats(mut self, c: &[&str]) -> Self {
        self.categories = c.iter().map(|s| s.to_string()).collect();
        self
    }
    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }
    fn with_generation(mut self) -> Self {
        self.has_generation = true;
        self
    }
    fn with_scale(mut self) -> Self {
        self.scale = Some(ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        });
        self
    }
    fn verbs(mut self, v: &[&str]) -> Self {
        self.verbs = v.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// The verbs of an ordinary resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The built-in kinds served by the double.
pub fn builtin_types() -> Vec<ResourceType> {
    use ResourceType as R;
    vec![
        R::builtin("", "v1", "Namespace", "namespaces", false)
            .short(&["ns"])
            .with_status()
            .verbs(&[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]),
        R::builtin("", "v1", "Pod", "pods", true)
            .short(&["po"])
            .cats(&["all"])
            .with_status()
            .with_generation(),
        R::builtin("", "v1", "Service", "services", true)
            .short(&["svc"])
            .cats(&["all"])
            .with_status()
            .verbs(&[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]),
        R::builtin("", "v1", "Endpoints", "endpoints", true).short(&["ep"]),
        R::builtin("", "v1", "ServiceAccount", "serviceaccounts", true).short(&["sa"]),
        R::builtin("", "v1", "ConfigMap", "configmaps", true).short(&["cm"]),
        R::builtin("", "v1", "Secret", "secrets", true),
        R::builtin("", "v1", "ResourceQuota", "resourcequotas", true)
            .short(&["quota"])
            .with_status(),
        R::builtin("", "v1", "LimitRange", "limitranges", true).short(&["limits"]),
        R::builtin("", "v1", "Node", "nodes", false)
            .short(&["no"])
            .with_status(),
        R::builtin("", "v1", "Event", "events", true).short(&["ev"]),
        R::builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
        )
        .short(&["pvc"])
        .with_status(),
        R::builtin("apps", "v1", "Deployment", "deployments", true)
            .short(&["deploy"])
            .cats(&["all"])
            .with_status()
            .with_scale()
            .with_generation(),
        R::builtin("apps", "v1", "StatefulSet", "statefulsets", true)
            .short(&["sts"])
            .cats(&["all"])
            .with_status()
            .with_scale()
            .with_generation(),
        R::builtin("apps", "v1", "DaemonSet", "daemonsets", true)
            .short(&["ds"])
            .cats(&["all"])
            .with_status()
            .with_generation(),
        R::builtin("apps", "v1", "ReplicaSet", "replicasets", true)
            .short(&["rs"])
            .cats(&["all"])
            .with_status()
            .with_scale()
            .with_generation(),
        R::builtin("batch", "v1", "Job", "jobs", true)
            .cats(&["all"])
            .with_status()
            .with_generation(),
        R::builtin("batch", "v1", "CronJob", "cronjobs", true)
            .short(&["cj"])
            .cats(&["all"])
            .with_status()
            .with_generation(),
        R::builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        )
        .short(&["netpol"])
        .with_generation(),
        R::builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true)
            .short(&["ing"])
            .with_status()
            .with_generation(),
        R::builtin(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
        )
        .with_generation(),
        R::builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        )
        .short(&["pdb"])
        .with_status()
        .with_generation(),
        R::builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        R::builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        )
        .short(&["hpa"])
        .with_status(),
        R::builtin("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false).with_generation(),
        R::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .short(&["crd", "crds"])
        .cats(&["api-extensions"])
        .with_status()
        .with_generation(),
        R::builtin("coordination.k8s.io", "v1", "Lease", "leases", true),
        R::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
        ),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
        )
        .verbs(&["create"]),
    ]
}

/// Orders Kubernetes versions by priority: GA before beta before alpha,
/// higher numbers first, non-Kubernetes-looking versions last (alphabetical).
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u32 = digits.parse().ok()?;
        let rest = &rest[digits.len()..];
        if rest.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, rest) = if let Some(r) = rest.strip_prefix("beta") {
            (1, r)
        } else if let Some(r) = rest.strip_prefix("alpha") {
            (0, r)
        } else {
            return None;
        };
        let minor: u32 = rest.parse().ok()?;
        Some((major, stage, minor))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Built-in types plus CRD-contributed ones.
#[derive(Debug, Clone)]
pub struct Registry {
    builtin: Vec<Arc<ResourceType>>,
    custom: BTreeMap<String, Vec<Arc<ResourceType>>>,
}

impl Registry {
    /// A registry with the built-in types and `extra` ones.
    pub fn new(extra: Vec<ResourceType>) -> Self {
        let mut builtin: Vec<Arc<ResourceType>> =
            builtin_types().into_iter().map(Arc::new).collect();
        builtin.extend(extra.into_iter().map(Arc::new));
        Registry {
            builtin,
            custom: BTreeMap::new(),
        }
    }

    /// Every servable type.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.builtin.iter().chain(self.custom.values().flatten())
    }

    /// Looks up by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Looks up by group, version and kind.
    pub fn find_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Any served version of group/plural (used for storage-level operations).
    pub fn find_any_version(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    /// Whether a group/version is served at all.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.all().any(|t| t.group == group && t.version == version)
    }

    /// Groups in discovery order with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all() {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by(|a, b| version_priority(a, b));
        }
        out
    }

    /// Types of one group/version in registration order.
    pub fn types_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.all()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// Replaces the CRD-contributed types with those derived from `crds`.
    /// CRDs that are being deleted or malformed contribute nothing.
    pub fn set_crds<'a>(&mut self, crds: impl Iterator<Item = &'a Value>) {
        self.custom.clear();
        for crd in crds {
            if let Some(types) = types_from_crd(crd) {
                let name = get_str(crd, &["metadata", "name"])
                    .unwrap_or_default()
                    .to_string();
                self.custom
                    .insert(name, types.into_iter().map(Arc::new).collect());
            }
        }
    }

    /// Resolves a user-facing resource name (plural, singular, short name or
    /// kind, case-insensitive, optionally `name.group`) the way kubectl does.
    pub fn resolve_name(&self, name: &str) -> Option<Arc<ResourceType>> {
        let lower = name.to_lowercase();
        let (res, group) = match lower.split_once('.') {
            Some((r, g)) => (r.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        let mut candidates: Vec<&Arc<ResourceType>> = self
            .all()
            .filter(|t| group.as_deref().is_none_or(|g| t.group == g))
            .filter(|t| {
                t.plural == res
                    || t.singular == res
                    || t.kind.to_lowercase() == res
                    || t.short_names.contains(&res)
            })
            .collect();
        candidates.sort_by(|a, b| version_priority(&a.version, &b.version));
        candidates.first().map(|t| (*t).clone())
    }
}

/// Derives the served types from a CRD object.
pub fn types_from_crd(crd: &Value) -> Option<Vec<ResourceType>> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?;
    let kind = names.get("kind")?.as_str()?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let namespaced = spec
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("Namespaced")
        == "Namespaced";
    let crd_name = get_str(crd, &["metadata", "name"]).map(str::to_string);
    let mut out = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let sub = v.get("subresources");
        let status_subresource = sub.and_then(|s| s.get("status")).is_some();
        let scale = sub.and_then(|s| s.get("scale")).map(|s| ScalePaths {
            spec_replicas: get_str(s, &["specReplicasPath"])
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: get_str(s, &["statusReplicasPath"])
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: get_str(s, &["labelSelectorPath"]).map(str::to_string),
        });
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            description: c
                                .get("description")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
            status_subresource,
            scale,
            printer_columns,
            custom: true,
            has_generation: true,
            crd_name: crd_name.clone(),
        });
    }
    out.sort_by(|a, b| version_priority(&a.version, &b.version));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec![
            "v1alpha1", "v1beta1", "v2", "v1", "v10beta3", "foo", "v1beta2",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            vec![
                "v2", "v1", "v10beta3", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn crd_contributes_types() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v1alpha1", "served": false, "storage": false}]}
        });
        let mut r = Registry::new(vec![]);
        assert!(r.find("example.com", "v1", "widgets").is_none());
        r.set_crds(std::iter::once(&crd));
        let t = r.find("example.com", "v1", "widgets").unwrap();
        assert!(!t.namespaced && t.status_subresource && t.custom);
        assert!(r.find("example.com", "v1alpha1", "widgets").is_none());
        assert_eq!(r.resolve_name("wd").unwrap().version, "v1");
        let groups = r.groups();
        assert_eq!(
            groups.last().unwrap(),
            &(
                "example.com".to_string(),
                vec!["v1".to_string(), "v1beta1".to_string()]
            )
        );
        r.set_crds(std::iter::empty());
        assert!(r.find("example.com", "v1", "widgets").is_none());
    }
}
