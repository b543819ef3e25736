//! The ambient companion of a generated NetworkPolicy: an L4 Istio `AuthorizationPolicy` that
//! ztunnel enforces.
//!
//! In ambient mode every meshed connection reaches the destination pod on HBONE (TCP 15008), so a
//! NetworkPolicy can only decide *who* may open the tunnel, not which ports they use inside it:
//! a peer admitted on 15008 reaches every port of the pod. ztunnel enforces
//! `security.istio.io/v1` AuthorizationPolicies with L4 attributes (source principals,
//! namespaces and IP blocks; destination ports):
//! <https://istio.io/latest/docs/ambient/usage/l4-policy/>. An `ALLOW` policy that selects the
//! pod denies whatever no rule allows
//! (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>), so the
//! companion repeats each NetworkPolicy rule, with the same peers and ports, in Istio's terms:
//!
//! * a peer that is a workload of the input becomes its service account's principal, written
//!   `*/ns/<namespace>/sa/<serviceAccountName or default>` (any trust domain: Istio matches
//!   principals with a leading or trailing `*`); a workload the input leaves without a namespace
//!   (a chart rendered for Helm) is in the release namespace when the caller knows it, and only
//!   when it does not is the principal `*/sa/<name>`, which any namespace's account of that name
//!   matches;
//! * a workload of another namespace of the input (a workload peer with a namespace selector of
//!   `kubernetes.io/metadata.name` alone) becomes its principal in its namespace the same way;
//! * a namespace peer (ingress controllers, monitoring, the CloudNativePG operator) admits any
//!   source on the rule's ports: Istio's `source.namespaces` needs the peer's mTLS identity
//!   (<https://istio.io/latest/docs/reference/config/security/authorization-policy/#Source>),
//!   and those peers are often outside the mesh, so naming them would refuse their plaintext
//!   connections; the NetworkPolicy still decides which of their pods get through;
//! * an `ipBlock` becomes `ipBlocks`; a rule without peers admits every source;
//! * ports become strings; a named port is resolved on the workload's containers.
//!
//! A selector Istio cannot express (`matchExpressions`) or a port that cannot be resolved makes
//! the companion impossible: then none is written and the caller reports why.

use std::collections::BTreeSet;

use meshmove_model::selector::LabelSelector;
use meshmove_model::workload::Workload;
use serde_json::{Map, Value, json};

/// The service account's principal in Istio's SPIFFE form, any trust domain; `release_namespace`
/// stands for a namespace the input leaves to install time.
fn principal(w: &Workload<'_>, release_namespace: Option<&str>) -> String {
    let sa = w
        .pod_spec()
        .and_then(|s| s.get("serviceAccountName").or_else(|| s.get("serviceAccount")))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    match (w.namespace(), release_namespace) {
        ("", None | Some("")) => format!("*/sa/{sa}"),
        ("", Some(ns)) | (ns, _) => format!("*/ns/{ns}/sa/{sa}"),
    }
}

/// Why a NetworkPolicy's rules have no AuthorizationPolicy that admits the same peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoCompanion {
    #[error("its pods are selected by matchExpressions, which an AuthorizationPolicy selector cannot express")]
    MatchExpressions,
    #[error("its named port `{port}` is declared by no container")]
    UndeclaredPort { port: String },
    #[error("a rule admits a protocol without a port")]
    ProtocolWithoutPort,
    #[error(transparent)]
    Selector(#[from] meshmove_model::selector::SelectorError),
    /// Principals come from the selected workloads' service accounts.
    #[error("a peer selects pods of no workload of the input, whose service accounts are unknown")]
    UnknownPeer,
}

/// The one namespace a peer's pods are in: the policy's own without a `namespaceSelector`, or
/// the namespace a selector of `kubernetes.io/metadata.name` alone names (the label the API
/// server sets on every Namespace,
/// <https://kubernetes.io/docs/reference/labels-annotations-taints/#kubernetes-io-metadata-name>);
/// `None` for any other selector.
fn peer_namespace<'p>(peer: &'p Value, own: &'p str) -> Option<&'p str> {
    let Some(ns) = peer.get("namespaceSelector") else {
        return Some(own);
    };
    let labels = ns.get("matchLabels").and_then(Value::as_object)?;
    if ns.get("matchExpressions").is_some() || labels.len() != 1 {
        return None;
    }
    labels.get("kubernetes.io/metadata.name").and_then(Value::as_str)
}

/// The companion of the NetworkPolicy `spec` that protects `subject`, or why there is none.
pub fn companion(
    name: &str,
    namespace: &str,
    labels: &Value,
    spec: &Map<String, Value>,
    subject: Option<&Workload<'_>>,
    workloads: &[Workload<'_>],
    release_namespace: Option<&str>,
) -> Result<Value, NoCompanion> {
    let pod_selector = spec.get("podSelector").cloned().unwrap_or(Value::Null);
    if pod_selector.get("matchExpressions").is_some() {
        return Err(NoCompanion::MatchExpressions);
    }
    let match_labels = pod_selector.get("matchLabels").cloned().unwrap_or_else(|| json!({}));
    let named_ports = subject.map(Workload::ports).unwrap_or_default();
    let mut rules = Vec::new();
    for rule in spec.get("ingress").and_then(Value::as_array).into_iter().flatten() {
        let mut ports: BTreeSet<String> = BTreeSet::new();
        for p in rule.get("ports").and_then(Value::as_array).into_iter().flatten() {
            match p.get("port") {
                Some(Value::Number(n)) => {
                    ports.insert(n.to_string());
                }
                Some(Value::String(s)) => match named_ports.iter().find(|c| c.name.as_deref() == Some(s.as_str())) {
                    Some(c) => {
                        ports.insert(c.port.to_string());
                    }
                    None => return Err(NoCompanion::UndeclaredPort { port: s.clone() }),
                },
                _ => return Err(NoCompanion::ProtocolWithoutPort),
            }
        }
        let peers = rule.get("from").and_then(Value::as_array);
        let mut from = Vec::new();
        let mut principals: BTreeSet<String> = BTreeSet::new();
        let mut any_source = peers.is_none_or(|p| p.is_empty());
        let mut ip_blocks: BTreeSet<String> = BTreeSet::new();
        for peer in peers.into_iter().flatten() {
            if let Some(cidr) = peer.pointer("/ipBlock/cidr").and_then(Value::as_str) {
                ip_blocks.insert(cidr.to_string());
            } else if let Some(sel) = peer.get("podSelector")
                && let Some(in_ns) = peer_namespace(peer, namespace)
            {
                // Pods of one namespace (the policy's own, or the one a workload peer of another
                // namespace names, [`super::rules::workload_peer`]): the workloads of the input
                // the selector picks there.
                let sel = LabelSelector::from_json(Some(sel))?;
                let picked: Vec<&Workload<'_>> =
                    workloads.iter().filter(|w| w.namespace() == in_ns && sel.matches(&w.pod_labels())).collect();
                if picked.is_empty() && in_ns != namespace {
                    // Pods of another namespace the input does not hold (the CloudNativePG
                    // operator): a namespace peer, as below.
                    any_source = true;
                    continue;
                }
                if picked.is_empty() {
                    return Err(NoCompanion::UnknownPeer);
                }
                principals.extend(picked.into_iter().map(|w| principal(w, release_namespace)));
            } else {
                // Namespaces by selector (ingress, monitoring): often outside the mesh, with no
                // mTLS identity to name, so any source on the rule's ports.
                any_source = true;
            }
        }
        if !principals.is_empty() {
            from.push(json!({"source": {"principals": principals}}));
        }
        if !ip_blocks.is_empty() {
            from.push(json!({"source": {"ipBlocks": ip_blocks}}));
        }
        let mut r = Map::new();
        if !from.is_empty() && !any_source {
            r.insert("from".into(), Value::Array(from));
        }
        if !ports.is_empty() {
            r.insert("to".into(), json!([{"operation": {"ports": ports}}]));
        }
        rules.push(Value::Object(r));
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    if !namespace.is_empty() {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("labels".into(), labels.clone());
    Ok(json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": metadata,
        "spec": {"selector": {"matchLabels": match_labels}, "action": "ALLOW", "rules": rules},
    }))
}
