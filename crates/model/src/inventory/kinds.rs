//! The kinds the plugins know how to load.
//!
//! One static table serves both sources: the file loader uses it to recognise objects and tell
//! namespaced kinds from cluster-scoped ones, the cluster loader uses it to build list URLs without
//! a discovery round-trip per kind. Unknown kinds in files are still loaded (they pass through the
//! post-renderer and show up in reports); they are just never listed from a cluster.

use std::fmt;

/// A Kubernetes kind the plugins can list: its group, version, kind, plural and scope.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Served by a CustomResourceDefinition that may be absent from a cluster.
    pub custom: bool,
}

impl Kind {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: the name RBAC messages use.
    pub fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

macro_rules! kinds {
    ($($ident:ident = $group:literal $version:literal $kind:literal $plural:literal $ns:literal $custom:literal;)*) => {
        $(
            #[doc = concat!("`", $kind, "` (", $group, "/", $version, ")")]
            pub static $ident: Kind = Kind {
                group: $group, version: $version, kind: $kind, plural: $plural,
                namespaced: $ns, custom: $custom,
            };
        )*
        /// Every kind in this table.
        pub static ALL: &[&Kind] = &[$(&$ident),*];
    };
}

kinds! {
    NAMESPACE = "" "v1" "Namespace" "namespaces" false false;
    NODE = "" "v1" "Node" "nodes" false false;
    POD = "" "v1" "Pod" "pods" true false;
    SERVICE = "" "v1" "Service" "services" true false;
    SERVICE_ACCOUNT = "" "v1" "ServiceAccount" "serviceaccounts" true false;
    CONFIG_MAP = "" "v1" "ConfigMap" "configmaps" true false;
    SECRET = "" "v1" "Secret" "secrets" true false;
    DEPLOYMENT = "apps" "v1" "Deployment" "deployments" true false;
    STATEFUL_SET = "apps" "v1" "StatefulSet" "statefulsets" true false;
    DAEMON_SET = "apps" "v1" "DaemonSet" "daemonsets" true false;
    REPLICA_SET = "apps" "v1" "ReplicaSet" "replicasets" true false;
    JOB = "batch" "v1" "Job" "jobs" true false;
    CRON_JOB = "batch" "v1" "CronJob" "cronjobs" true false;
    NETWORK_POLICY = "networking.k8s.io" "v1" "NetworkPolicy" "networkpolicies" true false;
    // The network-policy-api project's cluster-scoped policies (CRDs that most clusters lack):
    // https://network-policy-api.sigs.k8s.io/reference/spec/
    ADMIN_NETWORK_POLICY = "policy.networking.k8s.io" "v1alpha1" "AdminNetworkPolicy" "adminnetworkpolicies" false true;
    BASELINE_ADMIN_NETWORK_POLICY = "policy.networking.k8s.io" "v1alpha1" "BaselineAdminNetworkPolicy" "baselineadminnetworkpolicies" false true;
    INGRESS = "networking.k8s.io" "v1" "Ingress" "ingresses" true false;
    POD_DISRUPTION_BUDGET = "policy" "v1" "PodDisruptionBudget" "poddisruptionbudgets" true false;
    RESOURCE_QUOTA = "" "v1" "ResourceQuota" "resourcequotas" true false;
    LIMIT_RANGE = "" "v1" "LimitRange" "limitranges" true false;
    PERSISTENT_VOLUME_CLAIM = "" "v1" "PersistentVolumeClaim" "persistentvolumeclaims" true false;
    ROLE = "rbac.authorization.k8s.io" "v1" "Role" "roles" true false;
    ROLE_BINDING = "rbac.authorization.k8s.io" "v1" "RoleBinding" "rolebindings" true false;
    HORIZONTAL_POD_AUTOSCALER = "autoscaling" "v2" "HorizontalPodAutoscaler" "horizontalpodautoscalers" true false;
    CSI_DRIVER = "storage.k8s.io" "v1" "CSIDriver" "csidrivers" false false;
    CRD = "apiextensions.k8s.io" "v1" "CustomResourceDefinition" "customresourcedefinitions" false false;
    MUTATING_WEBHOOK = "admissionregistration.k8s.io" "v1" "MutatingWebhookConfiguration" "mutatingwebhookconfigurations" false false;
    ISTIO_GATEWAY = "networking.istio.io" "v1" "Gateway" "gateways" true true;
    VIRTUAL_SERVICE = "networking.istio.io" "v1" "VirtualService" "virtualservices" true true;
    DESTINATION_RULE = "networking.istio.io" "v1" "DestinationRule" "destinationrules" true true;
    PEER_AUTHENTICATION = "security.istio.io" "v1" "PeerAuthentication" "peerauthentications" true true;
    AUTHORIZATION_POLICY = "security.istio.io" "v1" "AuthorizationPolicy" "authorizationpolicies" true true;
    GATEWAY_API_GATEWAY = "gateway.networking.k8s.io" "v1" "Gateway" "gateways" true true;
    GATEWAY_CLASS = "gateway.networking.k8s.io" "v1" "GatewayClass" "gatewayclasses" false true;
    HTTP_ROUTE = "gateway.networking.k8s.io" "v1" "HTTPRoute" "httproutes" true true;
    // The Prometheus operator's scrape configurations:
    // https://prometheus-operator.dev/docs/api-reference/api/
    SERVICE_MONITOR = "monitoring.coreos.com" "v1" "ServiceMonitor" "servicemonitors" true true;
    POD_MONITOR = "monitoring.coreos.com" "v1" "PodMonitor" "podmonitors" true true;
    CNPG_CLUSTER = "postgresql.cnpg.io" "v1" "Cluster" "clusters" true true;
    CLUSTER_SPIFFE_ID = "spire.spiffe.io" "v1alpha1" "ClusterSPIFFEID" "clusterspiffeids" false true;
    CLUSTER_FEDERATED_TRUST_DOMAIN = "spire.spiffe.io" "v1alpha1" "ClusterFederatedTrustDomain" "clusterfederatedtrustdomains" false true;
}

/// Look a kind up by `apiVersion` and `kind` as written in a manifest. Istio's older API versions
/// (`v1beta1`, `v1alpha3`) name the same kinds and are accepted.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Kind> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    ALL.iter().copied().find(|k| k.kind == kind && k.group == group)
}
