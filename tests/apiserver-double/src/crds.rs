//! Constructors for `CustomResourceDefinition` objects, with presets for
//! the projects the plugins look for (Istio, CloudNativePG, SPIRE, Gateway
//! API). Loading a preset makes its kinds appear in discovery; without it
//! the kinds are absent, as on a cluster where the project is not installed.

use serde_json::{Value, json};

/// A CRD under construction.
#[derive(Debug, Clone)]
pub struct Crd {
    group: String,
    kind: String,
    plural: String,
    singular: String,
    namespaced: bool,
    versions: Vec<String>,
    short_names: Vec<String>,
    categories: Vec<String>,
    status: bool,
    scale: Option<(String, String, Option<String>)>,
    columns: Vec<Value>,
}

impl Crd {
    /// A namespaced CRD; `versions[0]` is the storage version.
    pub fn new(group: &str, kind: &str, plural: &str, versions: &[&str]) -> Crd {
        Crd {
            group: group.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced: true,
            versions: versions.iter().map(|v| v.to_string()).collect(),
            short_names: vec![],
            categories: vec![],
            status: true,
            scale: None,
            columns: vec![],
        }
    }
    /// Makes it cluster-scoped.
    pub fn cluster_scoped(mut self) -> Crd {
        self.namespaced = false;
        self
    }
    /// Short names.
    pub fn short(mut self, names: &[&str]) -> Crd {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Categories.
    pub fn categories(mut self, c: &[&str]) -> Crd {
        self.categories = c.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Disables the status subresource.
    pub fn without_status(mut self) -> Crd {
        self.status = false;
        self
    }
    /// Adds a scale subresource.
    pub fn scale(mut self, spec_path: &str, status_path: &str, selector_path: Option<&str>) -> Crd {
        self.scale = Some((
            spec_path.into(),
            status_path.into(),
            selector_path.map(str::to_string),
        ));
        self
    }
    /// Adds a printer column.
    pub fn column(mut self, name: &str, ty: &str, json_path: &str) -> Crd {
        self.columns
            .push(json!({"name": name, "type": ty, "jsonPath": json_path}));
        self
    }
    /// Adds the conventional `Age` column.
    pub fn age(self) -> Crd {
        self.column("Age", "date", ".metadata.creationTimestamp")
    }
    /// The CRD object.
    pub fn build(&self) -> Value {
        let versions: Vec<Value> = self
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut ver = json!({
                    "name": v,
                    "served": true,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                });
                let mut sub = serde_json::Map::new();
                if self.status {
                    sub.insert("status".into(), json!({}));
                }
                if let Some((spec, status, sel)) = &self.scale {
                    let mut s = json!({"specReplicasPath": spec, "statusReplicasPath": status});
                    if let Some(sel) = sel {
                        s["labelSelectorPath"] = json!(sel);
                    }
                    sub.insert("scale".into(), s);
                }
                if !sub.is_empty() {
                    ver["subresources"] = Value::Object(sub);
                }
                if !self.columns.is_empty() {
                    ver["additionalPrinterColumns"] = json!(self.columns);
                }
                ver
            })
            .collect();
        let mut names = json!({"plural": self.plural, "singular": self.singular, "kind": self.kind, "listKind": format!("{}List", self.kind)});
        if !self.short_names.is_empty() {
            names["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            names["categories"] = json!(self.categories);
        }
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{}.{}", self.plural, self.group)},
            "spec": {
                "group": self.group,
                "names": names,
                "scope": if self.namespaced { "Namespaced" } else { "Cluster" },
                "versions": versions
            }
        })
    }
}

/// Istio's CRDs (networking, security, telemetry, extensions).
pub fn istio() -> Vec<Value> {
    let net = ["istio-io", "networking-istio-io"];
    let sec = ["istio-io", "security-istio-io"];
    let nv = ["v1", "v1beta1", "v1alpha3"];
    vec![
        Crd::new(
            "networking.istio.io",
            "VirtualService",
            "virtualservices",
            &nv,
        )
        .short(&["vs"])
        .categories(&net)
        .column("Gateways", "string", ".spec.gateways")
        .column("Hosts", "string", ".spec.hosts")
        .age()
        .build(),
        Crd::new(
            "networking.istio.io",
            "DestinationRule",
            "destinationrules",
            &nv,
        )
        .short(&["dr"])
        .categories(&net)
        .column("Host", "string", ".spec.host")
        .age()
        .build(),
        Crd::new("networking.istio.io", "Gateway", "gateways", &nv)
            .short(&["gw"])
            .categories(&net)
            .age()
            .build(),
        Crd::new("networking.istio.io", "ServiceEntry", "serviceentries", &nv)
            .short(&["se"])
            .categories(&net)
            .column("Hosts", "string", ".spec.hosts")
            .column("Location", "string", ".spec.location")
            .column("Resolution", "string", ".spec.resolution")
            .age()
            .build(),
        Crd::new("networking.istio.io", "Sidecar", "sidecars", &nv)
            .categories(&net)
            .age()
            .build(),
        Crd::new(
            "networking.istio.io",
            "WorkloadEntry",
            "workloadentries",
            &nv,
        )
        .short(&["we"])
        .categories(&net)
        .age()
        .build(),
        Crd::new(
            "networking.istio.io",
            "WorkloadGroup",
            "workloadgroups",
            &nv,
        )
        .short(&["wg"])
        .categories(&net)
        .age()
        .build(),
        Crd::new(
            "networking.istio.io",
            "EnvoyFilter",
            "envoyfilters",
            &["v1alpha3"],
        )
        .categories(&net)
        .age()
        .build(),
        Crd::new(
            "networking.istio.io",
            "ProxyConfig",
            "proxyconfigs",
            &["v1beta1"],
        )
        .categories(&net)
        .age()
        .build(),
        Crd::new(
            "security.istio.io",
            "PeerAuthentication",
            "peerauthentications",
            &["v1", "v1beta1"],
        )
        .short(&["pa"])
        .categories(&sec)
        .column("Mode", "string", ".spec.mtls.mode")
        .age()
        .build(),
        Crd::new(
            "security.istio.io",
            "AuthorizationPolicy",
            "authorizationpolicies",
            &["v1", "v1beta1"],
        )
        .short(&["ap"])
        .categories(&sec)
        .column("Action", "string", ".spec.action")
        .age()
        .build(),
        Crd::new(
            "security.istio.io",
            "RequestAuthentication",
            "requestauthentications",
            &["v1", "v1beta1"],
        )
        .short(&["ra"])
        .categories(&sec)
        .age()
        .build(),
        Crd::new(
            "telemetry.istio.io",
            "Telemetry",
            "telemetries",
            &["v1", "v1alpha1"],
        )
        .short(&["telemetry"])
        .categories(&["istio-io", "telemetry-istio-io"])
        .age()
        .build(),
        Crd::new(
            "extensions.istio.io",
            "WasmPlugin",
            "wasmplugins",
            &["v1alpha1"],
        )
        .categories(&["istio-io", "extensions-istio-io"])
        .age()
        .build(),
    ]
}

/// CloudNativePG's CRDs.
pub fn cnpg() -> Vec<Value> {
    let g = "postgresql.cnpg.io";
    vec![
        Crd::new(g, "Cluster", "clusters", &["v1"])
            .scale(".spec.instances", ".status.instances", None)
            .age()
            .column("Instances", "integer", ".status.instances")
            .column("Ready", "integer", ".status.readyInstances")
            .column("Status", "string", ".status.phase")
            .column("Primary", "string", ".status.currentPrimary")
            .build(),
        Crd::new(g, "Backup", "backups", &["v1"])
            .age()
            .column("Cluster", "string", ".spec.cluster.name")
            .column("Method", "string", ".spec.method")
            .column("Phase", "string", ".status.phase")
            .column("Error", "string", ".status.error")
            .build(),
        Crd::new(g, "ScheduledBackup", "scheduledbackups", &["v1"])
            .age()
            .column("Cluster", "string", ".spec.cluster.name")
            .column("Last Backup", "date", ".status.lastScheduleTime")
            .build(),
        Crd::new(g, "Pooler", "poolers", &["v1"])
            .scale(".spec.instances", ".status.instances", None)
            .age()
            .column("Cluster", "string", ".spec.cluster.name")
            .column("Type", "string", ".spec.type")
            .build(),
        Crd::new(g, "Database", "databases", &["v1"])
            .age()
            .column("Cluster", "string", ".spec.cluster.name")
            .column("PG Name", "string", ".spec.name")
            .column("Applied", "boolean", ".status.applied")
            .build(),
        Crd::new(g, "Publication", "publications", &["v1"])
            .age()
            .build(),
        Crd::new(g, "Subscription", "subscriptions", &["v1"])
            .age()
            .build(),
        Crd::new(g, "ImageCatalog", "imagecatalogs", &["v1"])
            .without_status()
            .age()
            .build(),
        Crd::new(g, "ClusterImageCatalog", "clusterimagecatalogs", &["v1"])
            .cluster_scoped()
            .without_status()
            .age()
            .build(),
    ]
}

/// The SPIRE controller manager's CRDs.
pub fn spire() -> Vec<Value> {
    let g = "spire.spiffe.io";
    vec![
        Crd::new(g, "ClusterSPIFFEID", "clusterspiffeids", &["v1alpha1"])
            .cluster_scoped()
            .build(),
        Crd::new(
            g,
            "ClusterFederatedTrustDomain",
            "clusterfederatedtrustdomains",
            &["v1alpha1"],
        )
        .cluster_scoped()
        .column("Trust Domain", "string", ".spec.trustDomain")
        .column("Endpoint URL", "string", ".spec.bundleEndpointURL")
        .build(),
        Crd::new(
            g,
            "ClusterStaticEntry",
            "clusterstaticentries",
            &["v1alpha1"],
        )
        .cluster_scoped()
        .build(),
    ]
}

/// Gateway API standard-channel CRDs.
pub fn gateway_api() -> Vec<Value> {
    let g = "gateway.networking.k8s.io";
    vec![
        Crd::new(g, "GatewayClass", "gatewayclasses", &["v1", "v1beta1"])
            .cluster_scoped()
            .short(&["gc"])
            .categories(&["gateway-api"])
            .column("Controller", "string", ".spec.controllerName")
            .column(
                "Accepted",
                "string",
                ".status.conditions[?(@.type==\"Accepted\")].status",
            )
            .age()
            .build(),
        Crd::new(g, "Gateway", "gateways", &["v1", "v1beta1"])
            .short(&["gtw"])
            .categories(&["gateway-api"])
            .column("Class", "string", ".spec.gatewayClassName")
            .age()
            .build(),
        Crd::new(g, "HTTPRoute", "httproutes", &["v1", "v1beta1"])
            .categories(&["gateway-api"])
            .column("Hostnames", "string", ".spec.hostnames")
            .age()
            .build(),
        Crd::new(g, "GRPCRoute", "grpcroutes", &["v1"])
            .categories(&["gateway-api"])
            .age()
            .build(),
        Crd::new(g, "ReferenceGrant", "referencegrants", &["v1beta1"])
            .short(&["refgrant"])
            .categories(&["gateway-api"])
            .without_status()
            .age()
            .build(),
    ]
}

/// A preset by name: `istio`, `cnpg`, `spire`, `gateway-api`.
pub fn preset(name: &str) -> Option<Vec<Value>> {
    match name {
        "istio" => Some(istio()),
        "cnpg" | "cloudnative-pg" => Some(cnpg()),
        "spire" => Some(spire()),
        "gateway-api" | "gatewayapi" => Some(gateway_api()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::types_from_crd;

    #[test]
    fn presets_produce_valid_types() {
        for name in ["istio", "cnpg", "spire", "gateway-api"] {
            for crd in preset(name).unwrap() {
                let types = types_from_crd(&crd).unwrap();
                assert!(!types.is_empty(), "{crd}");
                assert_eq!(
                    crd["metadata"]["name"],
                    format!(
                        "{}.{}",
                        crd["spec"]["names"]["plural"].as_str().unwrap(),
                        crd["spec"]["group"].as_str().unwrap()
                    )
                );
            }
        }
        let vs = types_from_crd(&istio()[0]).unwrap();
        assert_eq!(vs[0].version, "v1");
        assert_eq!(vs[0].short_names, vec!["vs"]);
        let cluster = types_from_crd(&cnpg()[0]).unwrap();
        assert_eq!(
            cluster[0].scale.as_ref().unwrap().spec_replicas,
            ".spec.instances"
        );
        assert!(!types_from_crd(&spire()[0]).unwrap()[0].namespaced);
        assert!(preset("nope").is_none());
    }
}
