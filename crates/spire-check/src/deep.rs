//! Deep checks (`--exec`): ask the SPIRE server itself, through `kubectl exec`-style calls into
//! its pod, instead of inferring from Kubernetes objects.
//!
//! The built-in checks predict what spire-controller-manager should have registered; these look at
//! what the server actually holds. Three commands run in the server container:
//! `spire-server healthcheck`, `spire-server entry show -output json`,
//! `spire-server agent list -output json` and `spire-server bundle show -output json` (with
//! `-socketPath` when `server.conf` moves the socket). The last is the server's own bundle in
//! SPIRE's JSON (spiffe/spire-api-sdk `spire.api.types.Bundle`), the one form that dates JWT
//! authorities; it is judged by the same rules as the published bundle ([`meshmove_spire::bundle`]).
//! Their JSON is the server API's protobuf JSON: SPIFFE IDs as `{trust_domain, path}`, selectors as
//! `{type, value}` with the rest of a colon-separated selector in `value`, 64-bit integers as
//! strings. The comparison with the cluster is pure ([`category`] over a [`DeepInput`]) so that it
//! is tested with captured outputs; [`crate::exec`] only runs the commands.

use std::collections::BTreeSet;

use meshmove_model::findings::{Code, Severity};
use meshmove_model::inventory::{Object, ObjectRef, kinds};
use meshmove_spire::context::Subject;
use meshmove_spire::bundle::{self, TrustBundle};
use meshmove_spire::{CategoryDef, CheckDef, Detail, SpireContext, Verdict};
use meshmove_model::workload;
use serde_json::Value;

/// The name of the category the deep checks report under.
pub const CATEGORY: &str = "spire-server-exec";

/// Where the official SPIRE images install the server binary.
pub const SERVER_BINARY: &str = "/opt/spire/bin/spire-server";

pub static EXEC_AVAILABLE: Code = Code {
    code: "SC2701",
    severity: Severity::Error,
    title: "The SPIRE server pod accepts exec",
    hint: "Make sure a server pod is Running and that you may create pods/exec in its namespace (kubectl auth can-i create pods/exec -n <namespace>).",
};
pub static SERVER_HEALTHY: Code = Code {
    code: "SC2702",
    severity: Severity::Error,
    title: "The SPIRE server passes its own healthcheck",
    hint: "Read the server container's logs: the healthcheck fails when the server API socket does not answer.",
};
pub static POD_HAS_ENTRY: Code = Code {
    code: "SC2703",
    severity: Severity::Error,
    title: "Every meshed pod that uses SPIRE has a registration entry on the server",
    hint: "Read the spire-controller-manager logs: it has not synced entries for these pods, so their proxies wait for an SVID forever.",
};
pub static ENTRY_ISTIO_ID: Code = Code {
    code: "SC2704",
    severity: Severity::Error,
    title: "Registration entries give meshed pods Istio's SPIFFE ID",
    hint: "Delete or fix the named entries (or the ClusterSPIFFEID that created them) so that each pod gets spiffe://<trust domain>/ns/<namespace>/sa/<service account>.",
};
pub static AGENT_ATTESTED: Code = Code {
    code: "SC2705",
    severity: Severity::Error,
    title: "Every node running a SPIRE agent pod has an attested agent",
    hint: "Read the agent pod's logs on the named nodes: node attestation failed, the agent is banned, or its SVID expired.",
};
pub static SERVER_BUNDLE_CURRENT: Code = Code {
    code: "SC2707",
    severity: Severity::Error,
    title: "The server's own trust bundle has no expired authority",
    hint: "Read the server's logs for CA and JWT key preparation errors; an expired X.509 or JWT authority that is the newest of its kind stops SVIDs from verifying.",
};
pub static SERVER_BUNDLE_ROTATION: Code = Code {
    code: "SC2708",
    severity: Severity::Warning,
    title: "The server's own trust bundle has authorities with time left or a successor",
    hint: "SPIRE should have prepared the next CA or JWT key by now: read the server's logs for preparation or upstream authority errors.",
};
pub static ENTRY_PARENT: Code = Code {
    code: "SC2706",
    severity: Severity::Error,
    title: "Entries of meshed pods belong to the agent on the pod's node",
    hint: "Restart spire-controller-manager (or recreate the named entries) so that each entry's parent is the agent attested on the node where the pod runs.",
};

/// The deep-check codes, in report order (the tests hold the category and the docs to it).
#[cfg(test)]
pub static CODES: [&Code; 8] = [
    &EXEC_AVAILABLE,
    &SERVER_HEALTHY,
    &POD_HAS_ENTRY,
    &ENTRY_ISTIO_ID,
    &AGENT_ATTESTED,
    &ENTRY_PARENT,
    &SERVER_BUNDLE_CURRENT,
    &SERVER_BUNDLE_ROTATION,
];

/// Where to run the server commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pod: ObjectRef,
    pub namespace: String,
    pub name: String,
    pub container: String,
    /// `server.socket_path` from `server.conf`, when it moves the socket.
    pub socket_path: Option<String>,
}

impl Target {
    /// The argv of `spire-server <args...> [-socketPath <path>]`.
    pub fn command(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![SERVER_BINARY.to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        if let Some(s) = &self.socket_path {
            argv.extend(["-socketPath".to_string(), s.clone()]);
        }
        argv
    }
}

/// The first Running pod of the (first) SPIRE server, and its server container.
pub fn target(cx: &SpireContext<'_>) -> Result<Target, String> {
    let Some(server) = cx.servers.first() else {
        return Err("no SPIRE server found to exec into (see SC2001)".into());
    };
    let mut pods: Vec<&Object> = cx
        .inventory
        .of(&kinds::POD)
        .filter(|p| workload::pod_owner(cx.inventory, p).is_some_and(|o| o.object_ref() == server.object_ref()))
        .filter(|p| phase(p) == Some("Running"))
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(pod) = pods.first() else {
        return Err(format!("{}: no Running pod to exec into", server.object_ref()));
    };
    let containers: Vec<(&str, &str)> = pod
        .value
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| (str_at(c, "/name").unwrap_or(""), str_at(c, "/image").unwrap_or("")))
        .collect();
    let container = containers
        .iter()
        .find(|(n, _)| *n == "spire-server")
        .or_else(|| containers.iter().find(|(_, i)| image_name(i) == "spire-server"))
        .or_else(|| containers.first())
        .map(|(n, _)| n.to_string())
        .ok_or_else(|| format!("{}: the pod has no containers", pod.object_ref()))?;
    Ok(Target {
        pod: pod.object_ref(),
        namespace: pod.namespace.clone().unwrap_or_default(),
        name: pod.name.clone(),
        container,
        socket_path: cx.server().and_then(|c| c.socket_path.clone()),
    })
}

fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn phase(pod: &Object) -> Option<&str> {
    str_at(&pod.value, "/status/phase")
}

/// What one command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    /// `Err("exit code 1")` and the like when the command failed.
    pub status: Result<(), String>,
}

impl CommandOutput {
    /// `exit code 1: <first line of stderr, else of stdout>`.
    fn failure(&self) -> Option<String> {
        let why = self.status.as_ref().err()?;
        let said = self.stderr.lines().chain(self.stdout.lines()).map(str::trim).find(|l| !l.is_empty());
        Some(match said {
            Some(line) => format!("{why}: {line}"),
            None => why.clone(),
        })
    }
}

/// The outputs of the server commands. Each command's `Err` means it could not even be started
/// (the exec call itself failed after the first one worked).
#[derive(Debug, Clone)]
pub struct Gathered {
    pub target: Target,
    pub healthcheck: CommandOutput,
    pub entries: Result<CommandOutput, String>,
    pub agents: Result<CommandOutput, String>,
    pub bundle: Result<CommandOutput, String>,
}

/// Everything the deep checks look at.
pub struct DeepInput<'c, 'a> {
    pub cx: &'c SpireContext<'a>,
    /// `Err` when there is no pod to exec into or the exec API refused (the SC2701 details).
    pub gathered: Result<Gathered, String>,
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

    fn usable(&self, now: i64) -> Result<(), String> {
        if self.banned {
            return Err(format!("agent {} is banned", self.id));
        }
        match self.expires_at {
            Some(t) if t <= now => Err(format!(
                "agent {} has an expired SVID (expired {})",
                self.id,
                meshmove_spire::bundle::show_time(t)
            )),
            _ => Ok(()),
        }
    }
}

/// `{"trust_domain": "example.org", "path": "/ns/a"}` (or a plain string) as a SPIFFE ID.
fn spiffe_id(v: Option<&Value>) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(m)) => {
            let td = m.get("trust_domain").and_then(Value::as_str).ok_or("a SPIFFE ID without trust_domain")?;
            let path = m.get("path").and_then(Value::as_str).unwrap_or("");
            Ok(format!("spiffe://{td}{path}"))
        }
        _ => Err("a missing SPIFFE ID".into()),
    }
}

fn selectors(v: Option<&Value>) -> Result<Vec<Selector>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or("`selectors` is not a list")?;
    items
        .iter()
        .map(|s| {
            let kind = s.get("type").and_then(Value::as_str).ok_or("a selector without `type`")?;
            let value = s.get("value").and_then(Value::as_str).ok_or("a selector without `value`")?;
            Ok(Selector { kind: kind.to_string(), value: value.to_string() })
        })
        .collect()
}

/// protojson writes 64-bit integers as strings; accept numbers too.
fn int64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn list<'v>(doc: &'v Value, key: &str, command: &str) -> Result<&'v Vec<Value>, String> {
    doc.get(key).and_then(Value::as_array).ok_or_else(|| format!("`{command}` printed no `{key}` list"))
}

fn document(text: &str, command: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("`{command}` did not print JSON ({e})"))
}

/// Parse `spire-server entry show -output json`.
pub fn parse_entries(text: &str) -> Result<Vec<Entry>, String> {
    let command = "spire-server entry show -output json";
    let doc = document(text, command)?;
    list(&doc, "entries", command)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |why: String| format!("`{command}`: entry {}: {why}", i + 1);
            Ok(Entry {
                id: e.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
                spiffe_id: spiffe_id(e.get("spiffe_id")).map_err(at)?,
                parent_id: spiffe_id(e.get("parent_id")).map_err(at)?,
                selectors: selectors(e.get("selectors")).map_err(at)?,
            })
        })
        .collect()
}

/// Parse `spire-server agent list -output json`.
pub fn parse_agents(text: &str) -> Result<Vec<Agent>, String> {
    let command = "spire-server agent list -output json";
    let doc = document(text, command)?;
    list(&doc, "agents", command)?
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let at = |why: String| format!("`{command}`: agent {}: {why}", i + 1);
            Ok(Agent {
                id: spiffe_id(a.get("id")).map_err(at)?,
                attestation_type: a.get("attestation_type").and_then(Value::as_str).unwrap_or("").to_string(),
                selectors: selectors(a.get("selectors")).map_err(at)?,
                banned: a.get("banned").and_then(Value::as_bool).unwrap_or(false),
                expires_at: int64(a.get("x509svid_expires_at")).filter(|t| *t > 0),
            })
        })
        .collect()
}

/// Whether a `k8s` workload selector holds for a pod: `Some(true/false)`, or `None` when the pod
/// object cannot tell (selectors about container status, for instance), which counts as holding.
fn k8s_selector_holds(value: &str, pod: &Value) -> Option<bool> {
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
fn entry_selects(entry: &Entry, pod: &Value) -> bool {
    !entry.selectors.is_empty()
        && entry.selectors.iter().all(|s| s.kind == "k8s" && k8s_selector_holds(&s.value, pod) != Some(false))
}

/// Meshed pods the server must serve: live pods that mount the Workload API socket or that a
/// ClusterSPIFFEID registers.
fn served_pods<'c>(cx: &'c SpireContext<'_>) -> Vec<&'c Subject<'c>> {
    let mut pods: Vec<&Subject<'_>> = cx
        .subjects
        .iter()
        .zip(&cx.registrations)
        .filter(|(s, r)| {
            s.live && s.object.kind == "Pod" && (s.mounts_socket(&cx.options.socket_path) || !r.ids.is_empty())
        })
        .map(|(s, _)| s)
        .collect();
    pods.sort_by_key(|s| s.object.object_ref());
    pods
}

fn expected_id(cx: &SpireContext<'_>, s: &Subject<'_>) -> String {
    format!("spiffe://{}/ns/{}/sa/{}", cx.trust_domain().0, s.namespace, s.service_account)
}

const NEEDS_EXEC: &str = "needs exec into the SPIRE server (see SC2701)";

/// The parsed output of one list command, or why the check using it cannot run.
fn parsed<T>(
    out: &Result<CommandOutput, String>,
    parse: fn(&str) -> Result<T, String>,
    what: &str,
) -> Result<T, String> {
    let out = out.as_ref().map_err(|e| format!("`spire-server {what}` could not run: {e}"))?;
    if let Some(why) = out.failure() {
        return Err(format!("`spire-server {what}` failed ({why})"));
    }
    parse(&out.stdout)
}

fn with_entries(input: &DeepInput<'_, '_>, f: impl FnOnce(&Gathered, Vec<Entry>) -> Verdict) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    match parsed(&g.entries, parse_entries, "entry show -output json") {
        Ok(entries) => f(g, entries),
        Err(why) => Verdict::Skip(why),
    }
}

fn exec_available(input: &DeepInput<'_, '_>) -> Verdict {
    match &input.gathered {
        Ok(g) => Verdict::Pass(vec![Detail::on_ref(
            g.target.pod.clone(),
            format!("ran spire-server in container {}", g.target.container),
        )]),
        Err(why) => Verdict::Fail(vec![Detail::new(why.clone())]),
    }
}

fn server_healthy(input: &DeepInput<'_, '_>) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    let pod = g.target.pod.clone();
    match g.healthcheck.failure() {
        Some(why) => Verdict::Fail(vec![Detail::on_ref(pod, format!("`spire-server healthcheck` failed ({why})"))]),
        None => {
            let said = g.healthcheck.stdout.trim();
            Verdict::Pass(vec![Detail::on_ref(pod, if said.is_empty() { "healthy" } else { said })])
        }
    }
}

fn pod_has_entry(input: &DeepInput<'_, '_>) -> Verdict {
    with_entries(input, |_, entries| {
        let pods = served_pods(input.cx);
        let problems = pods
            .iter()
            .filter(|s| !entries.iter().any(|e| entry_selects(e, s.pod)))
            .map(|s| {
                Detail::on(
                    s.object,
                    format!("no registration entry selects this pod ({} entries on the server)", entries.len()),
                )
            })
            .collect();
        let info = vec![Detail::new(format!("{} meshed pod(s) checked against {} entries", pods.len(), entries.len()))];
        Verdict::from_problems_or(problems, info)
    })
}

fn entry_istio_id(input: &DeepInput<'_, '_>) -> Verdict {
    with_entries(input, |_, entries| {
        let mut problems = Vec::new();
        for s in served_pods(input.cx) {
            let expected = expected_id(input.cx, s);
            for e in entries.iter().filter(|e| entry_selects(e, s.pod) && e.spiffe_id != expected) {
                problems.push(Detail::on(
                    s.object,
                    format!("entry {} gives {}; Istio expects {expected}", e.id, e.spiffe_id),
                ));
            }
        }
        Verdict::from_problems(problems)
    })
}

/// Running pods of the SPIRE agent DaemonSets, by node.
fn agent_pods<'c>(cx: &'c SpireContext<'_>) -> Vec<(String, &'c Object)> {
    let agents: BTreeSet<ObjectRef> = cx.agents.iter().map(|a| a.object_ref()).collect();
    let mut out: Vec<(String, &Object)> = cx
        .inventory
        .of(&kinds::POD)
        .filter(|p| phase(p) == Some("Running"))
        .filter(|p| workload::pod_owner(cx.inventory, p).is_some_and(|o| agents.contains(&o.object_ref())))
        .filter_map(|p| Some((str_at(&p.value, "/spec/nodeName")?.to_string(), p)))
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
    out
}

fn agent_attested(input: &DeepInput<'_, '_>) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    let agents = match parsed(&g.agents, parse_agents, "agent list -output json") {
        Ok(a) => a,
        Err(why) => return Verdict::Skip(why),
    };
    let pods = agent_pods(input.cx);
    if pods.is_empty() {
        return Verdict::Skip("no Running SPIRE agent pod in the cluster (see SC2101, SC2102)".into());
    }
    if !agents.is_empty() && agents.iter().all(|a| a.node_name().is_none()) {
        let types: BTreeSet<&str> = agents.iter().map(|a| a.attestation_type.as_str()).collect();
        return Verdict::Skip(format!(
            "the attested agents carry no k8s_psat:agent_node_name selector (attestation: {}), so they cannot be matched to nodes",
            types.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let now = input.cx.now;
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (node, pod) in &pods {
        if !seen.insert(node.clone()) {
            continue;
        }
        let on_node: Vec<&Agent> = agents.iter().filter(|a| a.node_name() == Some(node.as_str())).collect();
        let node_ref = ObjectRef::new("Node", None, node.clone());
        if on_node.is_empty() {
            problems.push(Detail::on_ref(
                node_ref,
                format!("agent pod {} runs here, but no attested agent names this node", pod.object_ref()),
            ));
        } else if on_node.iter().all(|a| a.usable(now).is_err()) {
            let why: Vec<String> = on_node.iter().filter_map(|a| a.usable(now).err()).collect();
            problems.push(Detail::on_ref(node_ref, why.join("; ")));
        }
    }
    let info = vec![Detail::new(format!("{} node(s) with agent pods, {} attested agent(s)", seen.len(), agents.len()))];
    Verdict::from_problems_or(problems, info)
}

fn entry_parent(input: &DeepInput<'_, '_>) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    let agents = match parsed(&g.agents, parse_agents, "agent list -output json") {
        Ok(a) => a,
        Err(why) => return Verdict::Skip(why),
    };
    with_entries(input, |_, entries| {
        let td = input.cx.trust_domain().0;
        let server_id = format!("spiffe://{td}/spire/server");
        // Node alias entries (children of the server) group agents; their IDs are valid parents.
        let aliases: BTreeSet<&str> =
            entries.iter().filter(|e| e.parent_id == server_id).map(|e| e.spiffe_id.as_str()).collect();
        let now = input.cx.now;
        let mut problems = Vec::new();
        for s in served_pods(input.cx) {
            let node = str_at(s.pod, "/spec/nodeName");
            for e in entries.iter().filter(|e| entry_selects(e, s.pod)) {
                if aliases.contains(e.parent_id.as_str()) {
                    continue;
                }
                let problem = match agents.iter().find(|a| a.id == e.parent_id) {
                    None => Some(format!("entry {} has parent {}, which is no attested agent", e.id, e.parent_id)),
                    Some(a) => match (a.usable(now), a.node_name(), node) {
                        (Err(why), _, _) => Some(format!("entry {}: {why}", e.id)),
                        (Ok(()), Some(agent_node), Some(pod_node)) if agent_node != pod_node => Some(format!(
                            "entry {} belongs to the agent of node {agent_node}, but the pod runs on {pod_node}",
                            e.id
                        )),
                        _ => None,
                    },
                };
                problems.extend(problem.map(|p| Detail::on(s.object, p)));
            }
        }
        Verdict::from_problems(problems)
    })
}

/// Parse `spire-server bundle show -output json` (any bundle form is accepted).
pub fn parse_bundle(text: &str) -> Result<TrustBundle, String> {
    TrustBundle::parse("`spire-server bundle show -output json`", text.as_bytes()).map_err(|e| e.to_string())
}

/// Judge the server's own bundle (`spire-server bundle show -output json`) with `f`.
fn with_server_bundle(
    input: &DeepInput<'_, '_>,
    f: impl Fn(&TrustBundle, i64, std::time::Duration) -> Vec<String>,
) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    let b = match parsed(&g.bundle, parse_bundle, "bundle show -output json") {
        Ok(b) => b,
        Err(why) => return Verdict::Skip(why),
    };
    let ca_ttl = input.cx.server().map_or(meshmove_spire::config::DEFAULT_CA_TTL, |c| c.ca_ttl());
    let problems: Vec<Detail> =
        f(&b, input.cx.now, ca_ttl).into_iter().map(|m| Detail::on_ref(g.target.pod.clone(), m)).collect();
    let info = vec![Detail::on_ref(
        g.target.pod.clone(),
        format!(
            "the server's bundle has {} X.509 and {} JWT authorities",
            b.certificates.len(),
            b.jwt_authorities.len()
        ),
    )];
    Verdict::from_problems_or(problems, info)
}

/// The deep-check category.
pub fn category<'c, 'a>() -> CategoryDef<DeepInput<'c, 'a>> {
    CategoryDef {
        name: CATEGORY,
        available: |_| Ok(()),
        checks: vec![
            CheckDef::new(&EXEC_AVAILABLE, exec_available),
            CheckDef::new(&SERVER_HEALTHY, server_healthy).after(&[&EXEC_AVAILABLE]),
            CheckDef::new(&POD_HAS_ENTRY, pod_has_entry).after(&[&EXEC_AVAILABLE]),
            CheckDef::new(&ENTRY_ISTIO_ID, entry_istio_id).after(&[&EXEC_AVAILABLE]),
            CheckDef::new(&AGENT_ATTESTED, agent_attested).after(&[&EXEC_AVAILABLE]),
            CheckDef::new(&ENTRY_PARENT, entry_parent).after(&[&EXEC_AVAILABLE]),
            CheckDef::new(&SERVER_BUNDLE_CURRENT, |input| {
                with_server_bundle(input, |b, now, _| [bundle::expired(b, now), bundle::jwt_expired(b, now)].concat())
            })
            .after(&[&EXEC_AVAILABLE]),
            CheckDef::new(&SERVER_BUNDLE_ROTATION, |input| {
                with_server_bundle(input, |b, now, ca_ttl| {
                    [bundle::rotation_problems(b, ca_ttl, now), bundle::jwt_rotation_problems(b, ca_ttl, now)].concat()
                })
            })
            .after(&[&EXEC_AVAILABLE]),
        ],
    }
}

#[cfg(test)]
mod tests;
