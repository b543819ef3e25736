//! Deep checks (`--exec`): ask the SPIRE server itself, through `kubectl exec`-style calls into
//! its pod, instead of inferring from Kubernetes objects.
//!
//! The built-in checks predict what spire-controller-manager should have registered; these look at
//! what the server actually holds. Three commands run in the server container:
//! `spire-server healthcheck`, `spire-server entry show -output json`,
//! `spire-server agent list -output json` and `spire-server bundle show -output json` (with
//! `-socketPath` when `server.conf` moves the socket). The last is the server's own bundle in
//! SPIRE's JSON (spiffe/spire-api-sdk `spire.api.types.Bundle`), the one form that dates JWT
//! authorities; it is judged by the same rules as the published bundle ([`crate::bundle`]).
//! Their JSON is the server API's protobuf JSON: SPIFFE IDs as `{trust_domain, path}`, selectors as
//! `{type, value}` with the rest of a colon-separated selector in `value`, 64-bit integers as
//! strings. The comparison with the cluster is pure ([`category`] over a [`DeepInput`]) so that it
//! is tested with captured outputs; [`gather`] runs the commands
//! through an [`Exec`].

mod server_api;
mod target;

use std::collections::BTreeSet;

use meshmove_model::inventory::{Object, ObjectRef, kinds};
use meshmove_model::workload;

use crate::bundle::{self, TrustBundle};
use crate::catalog::{
    AGENT_ATTESTED, ENTRY_ISTIO_ID, ENTRY_PARENT, EXEC_AVAILABLE, POD_HAS_ENTRY, SERVER_BUNDLE_CURRENT,
    SERVER_BUNDLE_ROTATION, SERVER_HEALTHY,
};
use crate::context::{SpireContext, Subject};
use meshmove_model::findings::{CategoryDef, CheckDef, Detail, Verdict};

pub use meshmove_kube::exec::{ExecError, ExecOutput};
pub use server_api::{
    Agent, Entry, ItemProblem, OutputError, Selector, Unusable, parse_agents, parse_bundle, parse_entries,
};
use server_api::{entry_selects, phase, str_at};
pub use target::{Exec, GatherError, Gathered, SERVER_BINARY, Target, TargetError, gather, target};

/// The name of the category the deep checks report under.
pub const CATEGORY: &str = "spire-server-exec";

/// Everything the deep checks look at.
pub struct DeepInput<'c, 'a> {
    pub cx: &'c SpireContext<'a>,
    /// `Err` when there is no pod to exec into or the exec API refused (the SC2701 details).
    pub gathered: Result<Gathered, GatherError>,
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

/// Why one list command gave nothing to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("`spire-server {what}` could not run: {source}")]
    CouldNotRun { what: &'static str, source: ExecError },
    /// It ran and failed: the exit status and the first line it printed.
    #[error("`spire-server {what}` failed ({why})")]
    Failed { what: &'static str, why: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// The parsed output of one list command, or why the check using it cannot run.
fn parsed<T>(
    out: &Result<ExecOutput, ExecError>,
    parse: fn(&str) -> Result<T, OutputError>,
    what: &'static str,
) -> Result<T, CommandError> {
    let out = out.as_ref().map_err(|source| CommandError::CouldNotRun { what, source: source.clone() })?;
    if let Some(why) = out.failure() {
        return Err(CommandError::Failed { what, why });
    }
    Ok(parse(&out.stdout)?)
}

fn with_entries(input: &DeepInput<'_, '_>, f: impl FnOnce(&Gathered, Vec<Entry>) -> Verdict) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    match parsed(&g.entries, parse_entries, "entry show -output json") {
        Ok(entries) => f(g, entries),
        Err(why) => Verdict::Skip(why.to_string()),
    }
}

fn exec_available(input: &DeepInput<'_, '_>) -> Verdict {
    match &input.gathered {
        Ok(g) => Verdict::Pass(vec![Detail::on_ref(
            g.target.pod.clone(),
            format!("ran spire-server in container {}", g.target.container),
        )]),
        Err(why) => Verdict::Fail(vec![Detail::new(why.to_string())]),
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
        Err(why) => return Verdict::Skip(why.to_string()),
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
            let why: Vec<String> = on_node.iter().filter_map(|a| a.usable(now).err()).map(|e| e.to_string()).collect();
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
        Err(why) => return Verdict::Skip(why.to_string()),
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
/// Judge the server's own bundle (`spire-server bundle show -output json`) with `f`.
fn with_server_bundle(
    input: &DeepInput<'_, '_>,
    f: impl Fn(&TrustBundle, i64, std::time::Duration) -> Vec<String>,
) -> Verdict {
    let Ok(g) = &input.gathered else { return Verdict::Skip(NEEDS_EXEC.into()) };
    let b = match parsed(&g.bundle, parse_bundle, "bundle show -output json") {
        Ok(b) => b,
        Err(why) => return Verdict::Skip(why.to_string()),
    };
    let ca_ttl = input.cx.server().map_or(crate::config::DEFAULT_CA_TTL, |c| c.ca_ttl());
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
