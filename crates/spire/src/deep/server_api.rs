//! What the SPIRE server's CLI prints with `-output json`: the server API's protobuf JSON
//! (spiffe/spire-api-sdk `spire.api.types`), with SPIFFE IDs as `{trust_domain, path}`, selectors
//! as `{type, value}` with the rest of a colon-separated selector in `value`, and 64-bit integers
//! as strings. Also how a `k8s` workload selector (SPIRE's k8s workload attestor) reads a pod.

use meshmove_model::inventory::Object;
use serde_json::Value;

use crate::bundle::{BundleError, TrustBundle, int64};

/// Why what a server command printed with `-output json` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("`{command}` did not print JSON ({message})")]
    NotJson { command: &'static str, message: String },
    #[error("`{command}` printed no `{key}` list")]
    NoList { command: &'static str, key: &'static str },
    /// Item `index` (from 1) of the list.
    #[error("`{command}`: {noun} {index}: {problem}")]
    Item { command: &'static str, noun: &'static str, index: usize, problem: ItemProblem },
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// What is wrong with one entry or agent of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItemProblem {
    #[error("a SPIFFE ID without trust_domain")]
    NoTrustDomain,
    #[error("a missing SPIFFE ID")]
    NoSpiffeId,
    #[error("`selectors` is not a list")]
    SelectorsNotList,
    #[error("a selector without `type`")]
    SelectorWithoutType,
    #[error("a selector without `value`")]
    SelectorWithoutValue,
}

/// Why an attested agent cannot be the parent of a workload's entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("agent {agent} is banned")]
    Banned { agent: String },
    #[error("agent {agent} has an expired SVID (expired {})", crate::bundle::show_time(*.expired))]
    Expired { agent: String, expired: i64 },
}

/// A registration-entry or agent selector: `type:value`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selector {
    pub kind: String,
    pub value: String,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// One registration entry of `entry show -output json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub spiffe_id: String,
    pub parent_id: String,
    pub selectors: Vec<Selector>,
}

/// One attested agent of `agent list -output json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub attestation_type: String,
    pub selectors: Vec<Selector>,
    pub banned: bool,
    /// When the agent's X509-SVID expires (Unix seconds); `None` when the server reports 0.
    pub expires_at: Option<i64>,
}

impl Agent {
    /// The node name a `k8s_psat` attestation recorded.
    pub fn node_name(&self) -> Option<&str> {
        self.selectors.iter().filter(|s| s.kind == "k8s_psat").find_map(|s| s.value.strip_prefix("agent_node_name:"))
    }

    pub(super) fn usable(&self, now: i64) -> Result<(), Unusable> {
        if self.banned {
            return Err(Unusable::Banned { agent: self.id.clone() });
        }
        match self.expires_at {
            Some(t) if t <= now => Err(Unusable::Expired { agent: self.id.clone(), expired: t }),
            _ => Ok(()),
        }
    }
}

/// `{"trust_domain": "example.org", "path": "/ns/a"}` (or a plain string) as a SPIFFE ID.
fn spiffe_id(v: Option<&Value>) -> Result<String, ItemProblem> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(m)) => {
            let td = m.get("trust_domain").and_then(Value::as_str).ok_or(ItemProblem::NoTrustDomain)?;
            let path = m.get("path").and_then(Value::as_str).unwrap_or("");
            Ok(format!("spiffe://{td}{path}"))
        }
        _ => Err(ItemProblem::NoSpiffeId),
    }
}

fn selectors(v: Option<&Value>) -> Result<Vec<Selector>, ItemProblem> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or(ItemProblem::SelectorsNotList)?;
    items
        .iter()
        .map(|s| {
            let kind = s.get("type").and_then(Value::as_str).ok_or(ItemProblem::SelectorWithoutType)?;
            let value = s.get("value").and_then(Value::as_str).ok_or(ItemProblem::SelectorWithoutValue)?;
            Ok(Selector { kind: kind.to_string(), value: value.to_string() })
        })
        .collect()
}

/// The items of the `key` list that `command` printed as JSON, each read by `item`; errors name
/// the command and the item (`... entry 3: a selector without `type``).
fn parse_list<T>(
    text: &str,
    command: &'static str,
    key: &'static str,
    noun: &'static str,
    item: impl Fn(&Value) -> Result<T, ItemProblem>,
) -> Result<Vec<T>, OutputError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| OutputError::NotJson { command, message: e.to_string() })?;
    let items = doc.get(key).and_then(Value::as_array).ok_or(OutputError::NoList { command, key })?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item(v).map_err(|problem| OutputError::Item { command, noun, index: i + 1, problem }))
        .collect()
}

/// Parse `spire-server entry show -output json`.
pub fn parse_entries(text: &str) -> Result<Vec<Entry>, OutputError> {
    parse_list(text, "spire-server entry show -output json", "entries", "entry", |e| {
        Ok(Entry {
            id: e.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
            spiffe_id: spiffe_id(e.get("spiffe_id"))?,
            parent_id: spiffe_id(e.get("parent_id"))?,
            selectors: selectors(e.get("selectors"))?,
        })
    })
}

/// Parse `spire-server agent list -output json`.
pub fn parse_agents(text: &str) -> Result<Vec<Agent>, OutputError> {
    parse_list(text, "spire-server agent list -output json", "agents", "agent", |a| {
        Ok(Agent {
            id: spiffe_id(a.get("id"))?,
            attestation_type: a.get("attestation_type").and_then(Value::as_str).unwrap_or("").to_string(),
            selectors: selectors(a.get("selectors"))?,
            banned: a.get("banned").and_then(Value::as_bool).unwrap_or(false),
            expires_at: int64(a.get("x509svid_expires_at")).filter(|t| *t > 0),
        })
    })
}

/// Whether a `k8s` workload selector holds for a pod: `Some(true/false)`, or `None` when the pod
/// object cannot tell (selectors about container status, for instance), which counts as holding.
pub(super) fn k8s_selector_holds(value: &str, pod: &Value) -> Option<bool> {
    let (key, rest) = value.split_once(':')?;
    let meta = |p: &str| str_at(pod, p);
    let containers = || {
        ["/spec/containers", "/spec/initContainers"]
            .into_iter()
            .flat_map(|p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten())
    };
    let owners = || pod.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten();
    Some(match key {
        "ns" => meta("/metadata/namespace") == Some(rest),
        "sa" => {
            let sa = meta("/spec/serviceAccountName").or_else(|| meta("/spec/serviceAccount")).unwrap_or("default");
            sa == rest
        }
        "pod-uid" => meta("/metadata/uid") == Some(rest),
        "pod-name" => meta("/metadata/name") == Some(rest),
        "node-name" => meta("/spec/nodeName") == Some(rest),
        "pod-label" => {
            let (k, v) = rest.split_once(':')?;
            pod.pointer("/metadata/labels").and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v)
        }
        "pod-owner" => {
            let (kind, name) = rest.split_once(':')?;
            owners().any(|o| str_at(o, "/kind") == Some(kind) && str_at(o, "/name") == Some(name))
        }
        "pod-owner-uid" => owners().any(|o| str_at(o, "/uid") == Some(rest)),
        "container-name" => containers().any(|c| str_at(c, "/name") == Some(rest)),
        "container-image" | "pod-image" => containers().any(|c| str_at(c, "/image") == Some(rest)),
        _ => return None,
    })
}

/// Whether an entry is a Kubernetes workload entry that selects this pod: every selector is of
/// type `k8s` and none is contradicted by the pod.
pub(super) fn entry_selects(entry: &Entry, pod: &Value) -> bool {
    !entry.selectors.is_empty()
        && entry.selectors.iter().all(|s| s.kind == "k8s" && k8s_selector_holds(&s.value, pod) != Some(false))
}

/// Parse `spire-server bundle show -output json` (any bundle form is accepted).
pub fn parse_bundle(text: &str) -> Result<TrustBundle, OutputError> {
    Ok(TrustBundle::parse("`spire-server bundle show -output json`", text.as_bytes())?)
}

pub(super) fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(super) fn phase(pod: &Object) -> Option<&str> {
    str_at(&pod.value, "/status/phase")
}
