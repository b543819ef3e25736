//! The guards of the legacy namespace, carried to the mesh side: PodDisruptionBudgets,
//! NetworkPolicies, ResourceQuotas and LimitRanges. Pure: objects in, objects out; then a proof
//! on the exact NetworkPolicy engine ([`meshmove_netpol`]) that every connection the legacy side
//! has exists for the copies.
//!
//! * A PodDisruptionBudget whose selector selects a copied workload's pods is copied (a budget
//!   that guards only shared backends stays with them).
//! * A ResourceQuota or LimitRange is copied as it is: the mesh namespace runs the same pods
//!   (plus their proxies, which the LimitRange's defaults and the quota count too).
//! * A NetworkPolicy selecting a copied workload's pods is copied with its peers adapted: a peer
//!   with only a `podSelector` means "pods of my namespace", so it keeps meaning the copies on
//!   the mesh side and gains a twin for the same pods in the legacy namespace (the shared
//!   backends stay there, and the originals of the copies' callers); a peer that names the legacy
//!   namespace by `kubernetes.io/metadata.name` gains a twin naming the mesh namespace. A policy
//!   of the legacy namespace that isolates a shared backend gets a companion in the legacy
//!   namespace admitting the copies of the callers it admits, on the same ports: NetworkPolicies
//!   are additive, and the companion selects only pods the original already isolates, so it can
//!   only add connections (<https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource>).
//!   In ambient mode the copies' rules carry HBONE (15008) and the ztunnel probe source exactly as
//!   the generator writes them ([`meshmove_isolation::policies::with_hbone`],
//!   [`meshmove_isolation::policies::mesh_rules`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::copy::{CopySet, object_name};
use super::{COPIED_FROM_LABEL, MANAGED_BY, ROLE_LABEL, Sides};
use meshmove_isolation::datastore;
use meshmove_model::selector::{Labels, LabelSelector};

const NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// `ROLE_LABEL` value of the legacy namespace's companion policies.
pub const COMPANION_ROLE: &str = "mesh-peers";

/// A guard carried over, for the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Carried {
    /// `Kind/name` and the namespace it is written to.
    pub object: String,
    pub namespace: String,
    pub note: String,
}

/// The result of [`carry`].
#[derive(Debug, Clone, Default)]
pub struct Guards {
    /// ResourceQuotas and LimitRanges of the mesh namespace (before any pod is created).
    pub limits: Vec<Value>,
    /// NetworkPolicies: the mesh namespace's copies and the legacy namespace's companions.
    pub policies: Vec<Value>,
    /// PodDisruptionBudgets of the mesh namespace.
    pub budgets: Vec<Value>,
    pub carried: Vec<Carried>,
    /// Guards not carried, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl Guards {
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.limits.iter().chain(&self.policies).chain(&self.budgets)
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// The object as the mesh side gets it: no server-set fields, the mesh namespace, the
/// migration's label.
fn copied(sides: &Sides, obj: &Value) -> Value {
    let mut v = json!({
        "apiVersion": obj.get("apiVersion").cloned().unwrap_or_default(),
        "kind": obj.get("kind").cloned().unwrap_or_default(),
        "metadata": {"name": str_at(obj, "/metadata/name").unwrap_or_default(), "namespace": sides.mesh},
    });
    let mut labels = obj.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
    labels.insert(COPIED_FROM_LABEL.into(), json!(sides.legacy));
    v["metadata"]["labels"] = Value::Object(labels);
    if let Some(a) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let kept: serde_json::Map<String, Value> =
            a.iter().filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration" && !k.starts_with("meta.helm.sh/")).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !kept.is_empty() {
            v["metadata"]["annotations"] = Value::Object(kept);
        }
    }
    if let Some(spec) = obj.get("spec") {
        v["spec"] = spec.clone();
    }
    v
}

fn selects_any(selector: Option<&Value>, pods: &[Labels]) -> bool {
    LabelSelector::from_json(selector).is_ok_and(|s| pods.iter().any(|l| s.matches(l)))
}

fn ns_peer(namespace: &str, pod_selector: Option<&Value>) -> Value {
    let mut p = json!({"namespaceSelector": {"matchLabels": {NAME_LABEL: namespace}}});
    if let Some(ps) = pod_selector {
        p["podSelector"] = ps.clone();
    }
    p
}

/// Whether a peer is "pods of the policy's namespace" (a `podSelector` only).
fn same_namespace(peer: &Value) -> bool {
    peer.get("podSelector").is_some() && peer.get("namespaceSelector").is_none() && peer.get("ipBlock").is_none()
}

/// Whether a peer names `namespace` by its `kubernetes.io/metadata.name` label (and nothing else
/// in its namespace selector).
fn names_namespace(peer: &Value, namespace: &str) -> bool {
    peer.get("namespaceSelector").is_some_and(|ns| {
        ns.get("matchExpressions").is_none_or(|e| e.as_array().is_none_or(Vec::is_empty))
            && ns.get("matchLabels").and_then(Value::as_object).is_some_and(|m| m.len() == 1 && m.get(NAME_LABEL).and_then(Value::as_str) == Some(namespace))
    })
}

/// The peers of a mesh-side copy: every peer kept, with a twin in the other namespace.
fn mesh_peers(sides: &Sides, peers: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for p in peers {
        out.push(p.clone());
        if same_namespace(p) {
            out.push(ns_peer(&sides.legacy, p.get("podSelector")));
        } else if names_namespace(p, &sides.legacy) {
            let mut twin = p.clone();
            twin["namespaceSelector"] = json!({"matchLabels": {NAME_LABEL: sides.mesh}});
            out.push(twin);
        }
    }
    out
}

/// A legacy policy's rules as the mesh side's copy has them.
fn adapt_rules(sides: &Sides, rules: Option<&Value>, peer_key: &str, ambient: bool) -> Option<Vec<Value>> {
    let rules = rules?.as_array()?;
    Some(
        rules
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if let Some(peers) = r.get(peer_key).and_then(Value::as_array).cloned() {
                    r[peer_key] = Value::Array(mesh_peers(sides, &peers));
                }
                if let Some(ports) = r.get("ports").and_then(Value::as_array).cloned().filter(|p| !p.is_empty()) {
                    r["ports"] = Value::Array(meshmove_isolation::policies::with_hbone(ports, ambient));
                }
                r
            })
            .collect(),
    )
}

fn policy_types(p: &Value) -> Vec<String> {
    match p.pointer("/spec/policyTypes").and_then(Value::as_array) {
        Some(t) => t.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        None => {
            let mut t = vec!["Ingress".to_string()];
            if p.pointer("/spec/egress").is_some() {
                t.push("Egress".into());
            }
            t
        }
    }
}

/// The companion of a legacy policy that isolates a shared backend: the same pods and ports,
/// from the copies (in the mesh namespace) of the same-namespace callers it admits.
fn companion(sides: &Sides, p: &Value) -> Option<Value> {
    let mut rules = Vec::new();
    for r in p.pointer("/spec/ingress").and_then(Value::as_array).into_iter().flatten() {
        let Some(peers) = r.get("from").and_then(Value::as_array) else { continue };
        let new: Vec<Value> = peers
            .iter()
            .filter_map(|peer| {
                if same_namespace(peer) {
                    Some(ns_peer(&sides.mesh, peer.get("podSelector")))
                } else if names_namespace(peer, &sides.legacy) {
                    let mut twin = peer.clone();
                    twin["namespaceSelector"] = json!({"matchLabels": {NAME_LABEL: sides.mesh}});
                    Some(twin)
                } else {
                    None
                }
            })
            .collect();
        if new.is_empty() {
            continue;
        }
        let mut rule = json!({"from": new});
        if let Some(ports) = r.get("ports") {
            rule["ports"] = ports.clone();
        }
        rules.push(rule);
    }
    if rules.is_empty() {
        return None;
    }
    let name = str_at(p, "/metadata/name").unwrap_or_default();
    Some(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": meshmove_model::names::generated_name(&format!("{name}-{}", sides.mesh)), "namespace": sides.legacy,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, COPIED_FROM_LABEL: sides.legacy, ROLE_LABEL: COMPANION_ROLE}},
        "spec": {"podSelector": p.pointer("/spec/podSelector").cloned().unwrap_or(json!({})), "policyTypes": ["Ingress"], "ingress": rules},
    }))
}

/// Pod labels of the copied workloads, and of the shared backends (workloads) left behind.
fn pod_sets(legacy: &[Value], set: &CopySet) -> (Vec<Labels>, Vec<Labels>) {
    let copies = set.objects.iter().filter(|o| super::copy::WORKLOAD_KINDS.contains(&str_at(o, "/kind").unwrap_or_default())).map(datastore::pod_labels).collect();
    let shared = legacy
        .iter()
        .filter(|o| set.shared.iter().any(|s| s.object == object_name(o)))
        .map(datastore::pod_labels)
        .filter(|l| !l.is_empty())
        .collect();
    (copies, shared)
}

/// The guards of `legacy` for the mesh side (see the module docs).
pub fn carry(sides: &Sides, legacy: &[Value], set: &CopySet, ambient: bool) -> Guards {
    let (copies, shared) = pod_sets(legacy, set);
    let mut g = Guards::default();
    for obj in legacy {
        let kind = str_at(obj, "/kind").unwrap_or_default();
        let id = object_name(obj);
        match kind {
            "ResourceQuota" | "LimitRange" => {
                g.limits.push(copied(sides, obj));
                let note = if kind == "ResourceQuota" {
                    "copied: the copies and their proxies count against it"
                } else {
                    "copied: its defaults apply to the copies' containers, the proxy's too"
                };
                g.carried.push(Carried { object: id, namespace: sides.mesh.clone(), note: note.into() });
            }
            "PodDisruptionBudget" => {
                if selects_any(obj.pointer("/spec/selector"), &copies) {
                    g.budgets.push(copied(sides, obj));
                    g.carried.push(Carried { object: id, namespace: sides.mesh.clone(), note: "copied: guards the copies of the pods it guards".into() });
                } else {
                    g.skipped.push((id, format!("guards no copied pod (a shared backend's budget stays with it in {})", sides.legacy)));
                }
            }
            "NetworkPolicy" => {
                let selector = obj.pointer("/spec/podSelector");
                let types = policy_types(obj);
                if selects_any(selector, &copies) {
                    let mut p = copied(sides, obj);
                    if let Some(i) = adapt_rules(sides, obj.pointer("/spec/ingress"), "from", ambient) {
                        p["spec"]["ingress"] = Value::Array(i);
                    }
                    if let Some(e) = adapt_rules(sides, obj.pointer("/spec/egress"), "to", ambient) {
                        p["spec"]["egress"] = Value::Array(e);
                    }
                    if ambient && types.iter().any(|t| t == "Ingress") {
                        let mut rules = p.pointer("/spec/ingress").and_then(Value::as_array).cloned().unwrap_or_default();
                        meshmove_isolation::policies::mesh_rules(&mut rules, &mut Vec::new(), true, false, &[]);
                        p["spec"]["ingress"] = Value::Array(rules);
                    }
                    p["spec"]["policyTypes"] = json!(types);
                    g.policies.push(p);
                    g.carried.push(Carried {
                        object: id.clone(),
                        namespace: sides.mesh.clone(),
                        note: format!(
                            "copied with its peers adapted: same-namespace peers mean the copies and, in {}, the pods they meant{}",
                            sides.legacy,
                            if ambient { "; HBONE 15008 and the ztunnel probe source added (ambient)" } else { "" }
                        ),
                    });
                }
                if types.iter().any(|t| t == "Ingress")
                    && selects_any(selector, &shared)
                    && let Some(c) = companion(sides, obj)
                {
                    g.carried.push(Carried {
                        object: object_name(&c),
                        namespace: sides.legacy.clone(),
                        note: format!("added beside {id}: admits the copies in {} of the callers it admits to the shared backends, on the same ports", sides.mesh),
                    });
                    g.policies.push(c);
                } else if !selects_any(selector, &copies) {
                    g.skipped.push((id, format!("selects no copied pod: stays with the legacy side in {}", sides.legacy)));
                }
            }
            _ => {}
        }
    }
    g
}

/// A connection of the legacy side that the copies lose: `from -> to` and the ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub from: String,
    pub to: String,
    pub ports: Vec<u16>,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports: Vec<String> = self.ports.iter().map(|p| format!("TCP {p}")).collect();
        write!(f, "{} -> {} ({})", self.from, self.to, ports.join(", "))
    }
}

/// The proof: on the engine's model of the legacy namespace, the copies and the mesh namespace
/// with the carried policies in place, every connection between two workloads of the legacy
/// side (on the destination's TCP ports: its containers' and its Services' target ports) must
/// exist between their counterparts: copy to copy, or copy to the shared backend. Returns the
/// connections lost, empty when none; `Err` when the engine cannot model the input (then nothing
/// is proven).
pub fn lost_connections(sides: &Sides, legacy: &[Value], set: &CopySet, guards: &Guards) -> Result<Vec<Lost>, String> {
    use meshmove_model::inventory::{Inventory, Object, Origin};
    use meshmove_netpol::view::{self, ModelOptions};
    use meshmove_netpol::{Engine, EngineOptions, Protocol, WorkloadKind, WorkloadRef};

    let object = |v: &Value, namespace: &str| -> Option<Object> {
        Some(Object {
            api_version: str_at(v, "/apiVersion")?.to_string(),
            kind: str_at(v, "/kind")?.to_string(),
            namespace: (str_at(v, "/kind") != Some("Namespace")).then(|| str_at(v, "/metadata/namespace").unwrap_or(namespace).to_string()),
            name: str_at(v, "/metadata/name")?.to_string(),
            value: v.clone(),
            origin: Origin::Cluster { context: String::new() },
            pod: None,
        })
    };
    let mut objects: Vec<Object> = legacy.iter().filter_map(|v| object(v, &sides.legacy)).collect();
    objects.extend(set.objects.iter().filter_map(|v| object(v, &sides.mesh)));
    objects.extend(guards.policies.iter().filter_map(|v| object(v, &sides.mesh)));
    objects.extend(object(&set.namespace, ""));
    if !legacy.iter().any(|o| str_at(o, "/kind") == Some("Namespace")) {
        objects.push(Object {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: sides.legacy.clone(),
            value: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sides.legacy}}),
            origin: Origin::Cluster { context: String::new() },
            pod: None,
        });
    }
    let inventory = Inventory::from_files(objects, Vec::new(), sides.legacy.clone());
    let model = view::build(&inventory, ModelOptions { probes: false });
    // Strict: a policy the engine cannot compile (one of the carried ones included) leaves
    // nothing proven.
    let engine = Engine::build(&model.cluster, EngineOptions::default()).map_err(|e| e.to_string())?;
    let first_pod = |kind: &str, ns: &str, name: &str| {
        let w = WorkloadRef::new(WorkloadKind::parse(kind), ns, name);
        engine.pods().find(|(_, p)| p.workload() == w).map(|(id, _)| id)
    };
    let services: Vec<&Value> = legacy.iter().filter(|o| str_at(o, "/kind") == Some("Service")).collect();
    let workloads: Vec<(&str, &str, Labels)> = legacy
        .iter()
        .filter_map(|o| Some((str_at(o, "/kind")?, str_at(o, "/metadata/name")?, o)))
        .filter(|(k, _, _)| super::copy::WORKLOAD_KINDS.contains(k))
        .map(|(k, n, o)| (k, n, datastore::pod_labels(o)))
        .collect();
    let copied = |kind: &str, name: &str| set.objects.iter().any(|o| str_at(o, "/kind") == Some(kind) && str_at(o, "/metadata/name") == Some(name));
    let mut out = Vec::new();
    for (bk, bn, blabels) in &workloads {
        let Some(backend) = first_pod(bk, &sides.legacy, bn) else { continue };
        let selecting = services.iter().copied().filter(|s| meshmove_model::selector::service_selects(s, blabels));
        let ports = super::copy::backend_tcp_ports(&engine, backend, selecting);
        // The backend's counterpart: its copy, or itself when it stays.
        let target = if copied(bk, bn) { first_pod(bk, &sides.mesh, bn) } else { Some(backend) };
        let Some(target) = target else { continue };
        for (ck, cn, _) in &workloads {
            if (ck, cn) == (bk, bn) || !copied(ck, cn) {
                continue;
            }
            let (Some(client), Some(copy)) = (first_pod(ck, &sides.legacy, cn), first_pod(ck, &sides.mesh, cn)) else { continue };
            let (before, after) = (engine.allowed(client, backend), engine.allowed(copy, target));
            let lost: Vec<u16> = ports.iter().copied().filter(|&p| before.allows(Protocol::Tcp, p) && !after.allows(Protocol::Tcp, p)).collect();
            if !lost.is_empty() {
                let ns = if copied(bk, bn) { &sides.mesh } else { &sides.legacy };
                out.push(Lost { from: format!("{}/{ck}/{cn}", sides.mesh), to: format!("{ns}/{bk}/{bn}"), ports: lost });
            }
        }
    }
    Ok(out)
}

/// A quota check: the `spec.hard` keys (first present wins), the copies' demand, the parser of
/// the hard value, how a demand is shown.
type QuotaCheck = (&'static [&'static str], u64, fn(&str) -> Result<u64, crate::quantity::QuantityError>, fn(u64) -> String);

/// ResourceQuotas of the mesh namespace the copies (and their sidecars) would exceed at their
/// replicas: `pods`, and CPU and memory requests (`requests.cpu`/`cpu`, `requests.memory`/
/// `memory`), counting the requests the carried LimitRanges give containers that set none
/// ([`with_limit_range_defaults`]). One line per quota and resource. `quotas` holds the carried
/// ResourceQuotas and LimitRanges.
pub fn quota_shortfalls(sides: &Sides, set: &CopySet, quotas: &[Value], sidecar: bool) -> Vec<String> {
    let options = crate::precheck::PrecheckOptions::default();
    let mut limit_ranges: Vec<&Value> = quotas.iter().filter(|q| str_at(q, "/kind") == Some("LimitRange")).collect();
    limit_ranges.sort_by_key(|l| str_at(l, "/metadata/name"));
    let (mut pods, mut cpu, mut memory) = (0u64, 0u64, 0u64);
    for w in set.objects.iter().filter(|o| matches!(str_at(o, "/kind"), Some("Deployment" | "StatefulSet"))) {
        let replicas = w.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        let template = with_limit_range_defaults(w.pointer("/spec/template").unwrap_or(&Value::Null), &limit_ranges);
        let (c, m) = crate::precheck::template_requests(&template, sidecar, &options);
        pods += replicas;
        cpu = cpu.saturating_add(c.saturating_mul(replicas));
        memory = memory.saturating_add(m.saturating_mul(replicas));
    }
    let mut out = Vec::new();
    for q in quotas.iter().filter(|q| str_at(q, "/kind") == Some("ResourceQuota")) {
        let name = str_at(q, "/metadata/name").unwrap_or("?");
        let hard = |keys: &[&'static str]| -> Option<(&'static str, String)> {
            keys.iter().find_map(|k| q.pointer("/spec/hard").and_then(|h| h.get(*k)).and_then(Value::as_str).map(|v| (*k, v.to_string())))
        };
        let checks: [QuotaCheck; 3] = [
            (&["pods", "count/pods"], pods, |t| t.parse::<u64>().map_err(|_| crate::quantity::QuantityError::Syntax(t.to_string())), |n| n.to_string()),
            (&["requests.cpu", "cpu"], cpu, crate::quantity::cpu_millis, |n| format!("{n}m")),
            (&["requests.memory", "memory"], memory, crate::quantity::bytes, |n| format!("{}Mi", n.div_ceil(1024 * 1024))),
        ];
        for (keys, demand, parse, show) in checks {
            let Some((key, text)) = hard(keys) else { continue };
            let Ok(limit) = parse(&text) else { continue };
            if demand > limit {
                out.push(format!(
                    "ResourceQuota/{name} copied to {}: the copies{} request {} of {key} at their replicas, more than its hard {text}: the API server rejects the pods beyond it; raise it in {} once created, or lower the replicas",
                    sides.mesh,
                    if sidecar { " with their sidecars" } else { "" },
                    show(demand),
                    sides.mesh
                ));
            }
        }
    }
    out
}

/// `template` with the CPU and memory requests the LimitRanger admission plugin gives its
/// containers (init containers too) that set neither a request nor a limit for the resource: the
/// `defaultRequest` of the first LimitRange item of `type: Container` that has one, where an
/// item's `defaultRequest` defaults to its `default`, and `default` to its `max`
/// (`SetDefaults_LimitRangeItem`,
/// <https://github.com/kubernetes/kubernetes/blob/master/pkg/apis/core/v1/defaults.go>; "Limit
/// Ranges", <https://kubernetes.io/docs/concepts/policy/limit-range/>). A container with only a
/// limit gets the limit as its request from the API server's own defaulting, which
/// [`crate::precheck::template_requests`] already counts. `limit_ranges` in the order the
/// plugin meets them (by name).
pub fn with_limit_range_defaults(template: &Value, limit_ranges: &[&Value]) -> Value {
    let mut out = template.clone();
    let default_for = |resource: &str| -> Option<Value> {
        limit_ranges.iter().find_map(|l| {
            let items = l.pointer("/spec/limits").and_then(Value::as_array)?;
            items.iter().filter(|i| i.get("type").and_then(Value::as_str) == Some("Container")).find_map(|i| {
                ["defaultRequest", "default", "max"].iter().find_map(|field| i.get(*field).and_then(|m| m.get(resource)).cloned())
            })
        })
    };
    for list in ["containers", "initContainers"] {
        let Some(containers) = out.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut) else { continue };
        for c in containers {
            for resource in ["cpu", "memory"] {
                let set = |field: &str| c.pointer(&format!("/resources/{field}/{resource}")).is_some();
                if set("requests") || set("limits") {
                    continue;
                }
                let Some(value) = default_for(resource) else { continue };
                let Some(container) = c.as_object_mut() else { continue };
                let resources = container.entry("resources").or_insert_with(|| json!({}));
                if let Some(resources) = resources.as_object_mut() {
                    let requests = resources.entry("requests").or_insert_with(|| json!({}));
                    if let Some(requests) = requests.as_object_mut() {
                        requests.insert(resource.to_string(), value);
                    }
                }
            }
        }
    }
    out
}

/// Group carried guards by namespace for notes.
pub fn by_namespace(carried: &[Carried]) -> BTreeMap<&str, Vec<&Carried>> {
    let mut m: BTreeMap<&str, Vec<&Carried>> = BTreeMap::new();
    for c in carried {
        m.entry(c.namespace.as_str()).or_default().push(c);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::copy::{CopyOptions, copy_namespace};

    fn sides() -> Sides {
        Sides::new("zamaz").unwrap()
    }

    fn deploy(name: &str, port: u16, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "zamaz"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image, "ports": [{"containerPort": port}]}]}}}})
    }

    fn svc(name: &str, port: u16) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "zamaz"},
            "spec": {"selector": {"app": name}, "ports": [{"name": "tcp", "port": port}]}})
    }

    fn np(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "zamaz"}, "spec": spec})
    }

    fn platform() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zamaz", "labels": {"kubernetes.io/metadata.name": "zamaz"}}}),
            deploy("frontend", 3000, "frontend:1"),
            deploy("api", 8080, "api:1"),
            deploy("redis", 6379, "redis:7"),
            svc("frontend", 3000),
            svc("api", 8080),
            svc("redis", 6379),
            np("default-deny", json!({"podSelector": {}, "policyTypes": ["Ingress"]})),
            np("api-from-frontend", json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 8080}]}]})),
            np("redis-from-api", json!({"podSelector": {"matchLabels": {"app": "redis"}}, "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 6379}]}]})),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "api", "namespace": "zamaz", "uid": "x"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}, "status": {"currentHealthy": 1}}),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "redis", "namespace": "zamaz"},
                "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "redis"}}}}),
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "zamaz"}, "spec": {"hard": {"pods": "20"}}}),
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "zamaz"},
                "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}}]}}),
        ]
    }

    #[test]
    fn every_legacy_connection_exists_for_the_copies_once_the_guards_are_carried() {
        for ambient in [false, true] {
            let objs = platform();
            let mut opts = CopyOptions::default();
            if ambient {
                opts.data_plane = crate::namespace::DataPlane::Ambient;
            }
            let set = copy_namespace(&sides(), &objs, &opts);
            assert_eq!(set.shared.len(), 1, "redis is a shared backend");
            let g = carry(&sides(), &objs, &set, ambient);
            // Without the carried policies (the mesh namespace open, the legacy one isolating
            // redis), the api's copy loses redis: the proof sees it.
            let none = Guards::default();
            let lost = lost_connections(&sides(), &objs, &set, &none).unwrap();
            assert_eq!(lost.iter().map(ToString::to_string).collect::<Vec<_>>(), ["zamaz-mesh/Deployment/api -> zamaz/Deployment/redis (TCP 6379)"]);
            assert_eq!(lost_connections(&sides(), &objs, &set, &g), Ok(vec![]), "ambient {ambient}");
            let names: Vec<String> = g.objects().map(|o| format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap(), object_name(o))).collect();
            assert_eq!(
                names,
                [
                    "zamaz-mesh/ResourceQuota/q",
                    "zamaz-mesh/LimitRange/l",
                    "zamaz-mesh/NetworkPolicy/default-deny",
                    "zamaz-mesh/NetworkPolicy/api-from-frontend",
                    "zamaz/NetworkPolicy/redis-from-api-zamaz-mesh",
                    "zamaz-mesh/PodDisruptionBudget/api"
                ]
            );
            let pdb = g.budgets[0].clone();
            assert!(pdb.get("status").is_none() && pdb["metadata"].get("uid").is_none());
            assert_eq!(pdb["metadata"]["labels"][COPIED_FROM_LABEL], "zamaz");
            assert!(g.skipped.iter().any(|(o, _)| o == "PodDisruptionBudget/redis"));
            let api = g.policies.iter().find(|p| p["metadata"]["name"] == "api-from-frontend").unwrap();
            let rule = &api["spec"]["ingress"][0];
            assert_eq!(rule["from"][1], json!({"namespaceSelector": {"matchLabels": {NAME_LABEL: "zamaz"}}, "podSelector": {"matchLabels": {"app": "frontend"}}}));
            let ports: Vec<&Value> = rule["ports"].as_array().unwrap().iter().collect();
            assert_eq!(ports.iter().any(|p| p["port"] == 15008), ambient, "HBONE in ambient only");
            if ambient {
                let deny = g.policies.iter().find(|p| p["metadata"]["name"] == "default-deny").unwrap();
                assert_eq!(deny["spec"]["ingress"], json!([{"from": [{"ipBlock": {"cidr": meshmove_isolation::policies::AMBIENT_PROBE_SOURCE}}]}]));
            }
            let companion = g.policies.iter().find(|p| p["metadata"]["name"] == "redis-from-api-zamaz-mesh").unwrap();
            assert_eq!(companion["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"][NAME_LABEL], "zamaz-mesh");
            assert_eq!(companion["spec"]["podSelector"], json!({"matchLabels": {"app": "redis"}}));
        }
    }

    #[test]
    fn a_quota_the_copies_and_their_sidecars_exceed_is_named() {
        let mut objs = platform();
        // api: 3 replicas of 200m; frontend: 1 of 0; sidecars 100m each by default (4 pods).
        objs[2]["spec"]["replicas"] = json!(3);
        objs[2]["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "200m", "memory": "64Mi"}});
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        let quota = |hard: Value| vec![json!({"kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": hard}})];
        // 600m of the app and 400m of proxies.
        assert!(quota_shortfalls(&sides(), &set, &quota(json!({"requests.cpu": "1"})), true).is_empty());
        let w = quota_shortfalls(&sides(), &set, &quota(json!({"requests.cpu": "999m", "pods": "3"})), true);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("request 4 of pods") && w[0].contains("hard 3"), "{}", w[0]);
        assert!(w[1].contains("request 1000m of requests.cpu"), "{}", w[1]);
        assert!(quota_shortfalls(&sides(), &set, &quota(json!({"requests.cpu": "999m"})), false).is_empty(), "no sidecars in ambient");
    }

    #[test]
    fn limit_range_defaults_count_towards_the_quota() {
        let mut objs = platform();
        // api: 2 replicas, no requests at all; frontend: 1 replica with its own 50m.
        objs[2]["spec"]["replicas"] = json!(2);
        objs[1]["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "50m"}});
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        let quota = json!({"kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "400m"}}});
        let range = |item: Value| json!({"kind": "LimitRange", "metadata": {"name": "l"}, "spec": {"limits": [{"type": "Pod", "max": {"cpu": "9"}}, item]}});
        // Without a LimitRange the api counts 0: 50m, under 400m (no sidecars: ambient).
        assert!(quota_shortfalls(&sides(), &set, &[quota.clone()], false).is_empty());
        // defaultRequest 200m: 2 × 200m + 50m = 450m; the frontend keeps its own request.
        let w = quota_shortfalls(&sides(), &set, &[quota.clone(), range(json!({"type": "Container", "defaultRequest": {"cpu": "200m"}, "default": {"cpu": "1"}}))], false);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("request 450m of requests.cpu"), "{}", w[0]);
        // Only `default` (a limit): the request defaults to it, 2 × 1 + 50m.
        let w = quota_shortfalls(&sides(), &set, &[quota.clone(), range(json!({"type": "Container", "default": {"cpu": "1"}}))], false);
        assert!(w[0].contains("request 2050m of requests.cpu"), "{w:?}");
        // Only `max`: default and then defaultRequest default to it.
        let w = quota_shortfalls(&sides(), &set, &[quota.clone(), range(json!({"type": "Container", "max": {"cpu": "300m"}}))], false);
        assert!(w[0].contains("request 650m of requests.cpu"), "{w:?}");
        // A container with a limit of its own takes that, not the LimitRange's default.
        let mut objs = objs.clone();
        objs[2]["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "100m"}});
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        assert!(quota_shortfalls(&sides(), &set, &[quota, range(json!({"type": "Container", "defaultRequest": {"cpu": "1"}}))], false).is_empty());
    }

    #[test]
    fn a_policy_the_peers_cannot_be_adapted_for_is_caught_by_the_proof() {
        // The api may reach redis only from pods labelled by a namespace selector the mesh
        // namespace does not carry: nothing adapts it, and the proof names the connection.
        let mut objs = platform();
        objs.retain(|o| o["metadata"]["name"] != "redis-from-api");
        objs.push(np("redis-from-team", json!({"podSelector": {"matchLabels": {"app": "redis"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "zamaz"}}, "podSelector": {"matchLabels": {"app": "api"}}}]}]})));
        objs[0]["metadata"]["labels"]["team"] = json!("zamaz");
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        let g = carry(&sides(), &objs, &set, false);
        let lost = lost_connections(&sides(), &objs, &set, &g).unwrap();
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert_eq!(lost[0].to, "zamaz/Deployment/redis");
    }
}
