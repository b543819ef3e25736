//! What policy generation is told: the namespaces of the infrastructure that must keep its
//! access, extra database clients, owners of shared databases, and what to isolate regardless.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Namespaces that need access, and what to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyOptions {
    /// Namespaces of ingress gateways and ingress controllers.
    pub ingress_namespaces: Vec<String>,
    /// Namespaces of Prometheus and friends (scrape mesh and database metrics).
    pub monitoring_namespaces: Vec<String>,
    /// Namespace of cluster DNS (pods labelled `k8s-app: kube-dns`).
    pub dns_namespace: String,
    /// Namespace of the CloudNativePG operator.
    pub cnpg_operator_namespace: String,
    /// Namespace of istiod (for egress to the control plane).
    pub istio_namespace: String,
    /// Also isolate egress (allowing DNS, the control plane and the release's own Services).
    pub egress: bool,
    /// Restrict database pods to the workloads that reference them.
    pub database_isolation: bool,
    /// Clients of a database that the manifests do not show (or that are Helm hooks, which
    /// policies are never derived from), admitted on the database's client ports.
    pub database_clients: Vec<DatabaseClient>,
    /// The owning service of a database several services use (`{assets-db: assets}`): only the
    /// owner is admitted, every other client's connection is cut and reported. Without an entry
    /// the owner is told from the names (a database `assets-db` belongs to service `assets`); a
    /// shared database whose owner cannot be told is not isolated.
    pub database_owners: BTreeMap<String, String>,
    /// Workloads and databases (by name) to isolate even though their clients cannot all be
    /// established (a Secret outside the input, a Service nobody in the input names).
    pub isolate_anyway: Vec<String>,
    /// Address ranges of load balancers that send to pod IPs directly (an AWS ALB with
    /// `target-type: ip`: the VPC's CIDRs), admitted on the exposed ports of what they front.
    pub ingress_ip_blocks: Vec<String>,
    /// Address ranges of destinations outside the cluster that workloads name by DNS name
    /// (`{db.abc.eu-west-1.rds.amazonaws.com: [10.20.0.0/16]}`): with egress isolation a
    /// NetworkPolicy cannot name a host, so a workload connecting to one is left unrestricted for
    /// egress unless its range is given here. The key is the host as the workload names it
    /// (case-insensitive); an IP address may be a key too, to widen it to its range.
    pub external_hosts: BTreeMap<String, Vec<Cidr>>,
}

/// An address range in CIDR notation (`10.20.0.0/16`, `2001:db8::/32`; a bare address is one
/// host), checked where the configuration is read and normalised to its network address
/// (`10.20.0.5/16` is `10.20.0.0/16`), the form a policy's `ipBlock.cidr` is written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    pub fn net(&self) -> ipnet::IpNet {
        self.0
    }

    /// One address as a range of one host (`/32`, `/128`).
    pub fn host(ip: std::net::IpAddr) -> Cidr {
        Cidr(ipnet::IpNet::from(ip))
    }
}

/// An address range that is neither in CIDR notation nor one IP address (the text as written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an address range in CIDR notation (10.20.0.0/16) nor an IP address")]
pub struct CidrError {
    pub text: String,
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(s: String) -> Result<Self, CidrError> {
        let t = s.trim();
        let net = match t.parse::<ipnet::IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => t
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| CidrError { text: t.to_string() })?,
        };
        Ok(Cidr(net))
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An extra client of a database: pods selected by labels (in the database's namespace unless
/// `namespace` is set). The typical one is a Helm hook Job that migrates the schema: hooks are
/// never used to derive policies, so without this entry the database policy blocks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseClient {
    /// Name of the database: the StatefulSet or Deployment running it, or the CloudNativePG
    /// `Cluster`, as rendered.
    pub database: String,
    /// The client pods.
    pub pod_selector: ClientSelector,
    /// Namespace of the client pods, when they do not run in the database's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A label selector as NetworkPolicy peers take it, checked as the API server would check it:
/// it must select by something, `In`/`NotIn` need values, `Exists`/`DoesNotExist` take none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "ClientSelectorSpec")]
pub struct ClientSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl ClientSelector {
    /// The selector as a NetworkPolicy peer's `podSelector`.
    pub fn json(&self) -> Value {
        let mut sel = Map::new();
        if !self.match_labels.is_empty() {
            sel.insert("matchLabels".into(), json!(self.match_labels));
        }
        if !self.match_expressions.is_empty() {
            let exprs = self
                .match_expressions
                .iter()
                .map(|r| {
                    let mut e = Map::new();
                    e.insert("key".into(), json!(r.key));
                    e.insert("operator".into(), json!(format!("{:?}", r.operator)));
                    if !r.values.is_empty() {
                        e.insert("values".into(), json!(r.values));
                    }
                    Value::Object(e)
                })
                .collect();
            sel.insert("matchExpressions".into(), Value::Array(exprs));
        }
        Value::Object(sel)
    }
}

/// [`ClientSelector`] as written, before it is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientSelectorSpec {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<SelectorRequirement>,
}

/// A client `podSelector` of the configuration that selects nothing definite (the key and
/// operator at fault; the YAML reader adds the line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientSelectorError {
    #[error(
        "podSelector needs matchLabels or matchExpressions: an empty selector would admit every pod of the namespace \
         (to stop isolating databases, set databaseIsolation: false)"
    )]
    Empty,
    #[error("matchExpressions key `{key}`: operator {operator:?} needs values")]
    NeedsValues { key: String, operator: SelectorOperator },
    #[error("matchExpressions key `{key}`: operator {operator:?} takes no values")]
    TakesNoValues { key: String, operator: SelectorOperator },
}

impl TryFrom<ClientSelectorSpec> for ClientSelector {
    type Error = ClientSelectorError;

    fn try_from(spec: ClientSelectorSpec) -> Result<Self, ClientSelectorError> {
        if spec.match_labels.is_empty() && spec.match_expressions.is_empty() {
            return Err(ClientSelectorError::Empty);
        }
        for r in &spec.match_expressions {
            match r.operator {
                SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                    return Err(ClientSelectorError::NeedsValues { key: r.key.clone(), operator: r.operator });
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist
                    if !r.values.is_empty() =>
                {
                    return Err(ClientSelectorError::TakesNoValues { key: r.key.clone(), operator: r.operator });
                }
                _ => {}
            }
        }
        Ok(ClientSelector {
            match_labels: spec.match_labels,
            match_expressions: spec.match_expressions,
        })
    }
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Label selector operators (spelled as in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            ingress_namespaces: vec![
                "istio-ingress".into(),
                "istio-system".into(),
                "ingress-nginx".into(),
            ],
            monitoring_namespaces: vec!["monitoring".into()],
            dns_namespace: "kube-system".into(),
            cnpg_operator_namespace: "cnpg-system".into(),
            istio_namespace: "istio-system".into(),
            egress: false,
            database_isolation: true,
            database_clients: Vec::new(),
            database_owners: BTreeMap::new(),
            isolate_anyway: Vec::new(),
            ingress_ip_blocks: Vec::new(),
            external_hosts: BTreeMap::new(),
        }
    }
}
