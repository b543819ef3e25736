//! `reach`: all-pairs reachability, as the engine's `Reach` (JSON/YAML), `src => dst : conn`
//! lines (`-o txt`) or a table. Also the model loading `explain` shares.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use clap::Args;
use meshmove_cli::render::reach::Marks;
use meshmove_cli::{Exit, KubeFlags, Out, SourceFlags};
use meshmove_isolation::target::{ObjectKind, TargetSpec};
use meshmove_netpol::{Endpoint, WorkloadKind, WorkloadRef};
use meshmove_netpol::view::{self as model, Model, ModelOptions};
use meshmove_model::inventory::{Inventory, Kind, PodDetail, Unavailable, kinds};
use meshmove_netpol::{Engine, EngineOptions};
use meshmove_model::workload::WORKLOAD_KINDS;

use super::Format;

#[derive(Args)]
pub struct ReachArgs {
    #[command(flatten)]
    source: SourceFlags,
    #[command(flatten)]
    focus: FocusArgs,
}

/// What the engine's model is made of; `explain` also resolves Services.
pub fn model_kinds(with_services: bool) -> Vec<&'static Kind> {
    let mut k: Vec<&'static Kind> = WORKLOAD_KINDS.to_vec();
    k.extend([&kinds::NETWORK_POLICY, &kinds::NAMESPACE, &kinds::CNPG_CLUSTER]);
    k.extend(model::ADMIN_POLICY_KINDS);
    k.extend(model::ISTIO_POLICY_KINDS);
    if with_services {
        k.push(&kinds::SERVICE);
    }
    k
}

/// An inventory, its model (without probe pods) and the engine over it. Invalid policies are left
/// out with a note on stderr, as the API server would never have stored them. `explain` (which
/// also resolves Services) gives a verdict and refuses a partial read; `reach` shows what it could
/// read and fails the run for what it could not.
pub fn load(kube: &KubeFlags, source: &SourceFlags, explain: bool) -> Result<(Inventory, Model, Engine)> {
    let kinds = model_kinds(explain);
    let source = &source.keeping(PodDetail::Facts);
    let inventory = if explain {
        meshmove_cli::analysis::load_inventory(kube, source, &kinds, &[])?
    } else {
        meshmove_cli::analysis::load_inventory_partial(kube, source, &kinds, &[])?
    };
    model_of(inventory)
}

/// What `explain` reads when its ends name namespaces (`deploy/web/frontend`): from files, every
/// namespace of the input (`-n` only says where objects without a namespace go and where ends
/// without one are looked up); from a cluster, the namespace scope plus each namespace named,
/// one scoped load each, so no cluster-wide list permission is needed. A partial read is refused.
pub fn load_for_explain(kube: &KubeFlags, source: &SourceFlags, named: &[String]) -> Result<(Inventory, Model, Engine)> {
    let kinds = model_kinds(true);
    let source = &source.keeping(PodDetail::Facts);
    if !source.filename.is_empty() || kube.all_namespaces {
        let mut everywhere = kube.clone();
        everywhere.all_namespaces = true;
        return model_of(meshmove_cli::analysis::load_inventory(&everywhere, source, &kinds, &[])?);
    }
    let default = kube.options().default_namespace();
    let mut scopes = vec![default.clone()];
    for ns in named {
        if !scopes.contains(ns) {
            scopes.push(ns.clone());
        }
    }
    if scopes.len() == 1 {
        return model_of(meshmove_cli::analysis::load_inventory(kube, source, &kinds, &[])?);
    }
    let mut parts = Vec::new();
    for ns in &scopes {
        let mut scoped = kube.clone();
        scoped.namespace = Some(ns.clone());
        meshmove_cli::debug!(1, "explain: reading namespace {ns}");
        parts.push(meshmove_cli::analysis::load_inventory(&scoped, source, &kinds, &[])?);
    }
    model_of(Inventory::merge_scopes(parts, default))
}

/// The engine's model of an inventory and the engine over it, with notes for what is left out.
pub fn model_of(inventory: Inventory) -> Result<(Inventory, Model, Engine)> {
    model_of_state(inventory, "")
}

/// [`model_of`] for one of the states a diff compares: notes start with `state` (`before: `).
pub fn model_of_state(inventory: Inventory, state: &str) -> Result<(Inventory, Model, Engine)> {
    // Kinds the cluster refused or did not find are errors (`warn_unread`, or refused outright by
    // `explain`); only absent ones are left out with a note.
    // Admin policies that are absent (no CRD, none in the files) are simply none: no note.
    // So are Istio's policies (no Istio installed).
    let absent_is_none = |kind: &Kind, why: &Unavailable| {
        (model::ADMIN_POLICY_KINDS.contains(&kind) || model::ISTIO_POLICY_KINDS.contains(&kind)) && !why.is_read_failure()
    };
    for (kind, why) in inventory.unavailable().into_iter().filter(|(k, why)| !why.is_read_failure() && !absent_is_none(k, why)) {
        let why = match why {
            Unavailable::NotServed => "not served by the cluster".to_string(),
            Unavailable::NotInFiles => "not in the input".to_string(),
            Unavailable::Forbidden { message } | Unavailable::NotFound { message } => message,
        };
        meshmove_cli::log::note(format_args!("{state}{} are left out: {why}", kind.resource()));
    }
    let model = model::build(&inventory, ModelOptions::default());
    let (engine, rejected) = Engine::build_lenient(&model.cluster, EngineOptions::default()).context("building the reachability model")?;
    for e in &rejected {
        meshmove_cli::log::note(format_args!("{state}{e}: left out (the API server rejects this policy)"));
    }
    for c in engine.admin_caveats() {
        meshmove_cli::log::note(format_args!("{state}{c}"));
    }
    for c in engine.authz_caveats() {
        meshmove_cli::log::note(format_args!("{state}{c}"));
    }
    for p in &model.unreadable_policies {
        meshmove_cli::log::note(format_args!("{state}NetworkPolicy {}/{}: {}: left out", p.namespace, p.name, p.message));
    }
    for (pod, problem) in &model.dropped_ports {
        meshmove_cli::debug!(1, "{pod}: {problem}: port left out");
    }
    meshmove_cli::debug!(
        1,
        "{} pods ({} from pod templates), {} policies, {} namespaces, {} equivalence classes",
        model.cluster.pods.len(),
        model.template_pods,
        model.cluster.policies.len(),
        model.cluster.namespaces.len(),
        engine.class_count()
    );
    Ok((inventory, model, engine))
}

pub fn run(kube: &KubeFlags, args: &ReachArgs, format: Format) -> Result<Exit> {
    let (inventory, _, engine) = load(kube, &args.source, false)?;
    let reach = engine.reach();
    let focus = args.focus.resolve(&inventory.default_namespace, &[reach.endpoints()])?;
    let marks = databases(&[&inventory]);
    let mut out = Out::new();
    meshmove_cli::render::reach::reach(&mut out, format, &reach, &marks, focus.as_ref())?;
    out.flush()?;
    // What could be read is shown (as `kubectl get` shows the kinds it may list); what could not
    // makes the run fail: pairs through unread policies or pods are missing or wrong.
    let incomplete = meshmove_cli::analysis::warn_unread(super::TOOL, &inventory);
    Ok(if incomplete { Exit::Findings } else { Exit::Ok })
}

/// The databases of the inventories, for the views to mark.
pub fn databases(inventories: &[&Inventory]) -> Marks {
    let databases = inventories.iter().flat_map(|i| meshmove_isolation::discover::databases(i)).map(|d| d.workload_ref()).collect();
    Marks { databases }
}

/// `--focus`: narrow a connectivity view to the pairs from or to some workloads.
#[derive(Args, Debug, Clone, Default)]
pub struct FocusArgs {
    /// Only connections from or to this workload: KIND/NAME (namespace from -n), KIND/NAMESPACE/NAME,
    /// or cidr:ADDRESS[/BITS] for the address ranges outside the cluster that overlap it (repeatable)
    #[arg(long = "focus", value_name = "WORKLOAD", help_heading = "Output")]
    pub focus: Vec<TargetSpec>,
}

impl FocusArgs {
    /// The endpoints in focus (`None` without `--focus`), each checked against the endpoints the
    /// views show (`endpoints`: one list per state compared). A name that matches nothing is an
    /// error, with where workloads of that name are.
    pub fn resolve(&self, default_namespace: &str, endpoints: &[&[Endpoint]]) -> Result<Option<BTreeSet<Endpoint>>> {
        if self.focus.is_empty() {
            return Ok(None);
        }
        let all: BTreeSet<&Endpoint> = endpoints.iter().flat_map(|e| e.iter()).collect();
        let mut set = BTreeSet::new();
        for spec in &self.focus {
            match spec {
                TargetSpec::Cidr(net) => {
                    let hits: Vec<&Endpoint> = all
                        .iter()
                        .copied()
                        .filter(|e| matches!(e, Endpoint::External(n) if n.contains(net) || net.contains(n)))
                        .collect();
                    if hits.is_empty() {
                        anyhow::bail!("--focus cidr:{net}: no address range outside the cluster that overlaps it is reached or reaches a workload");
                    }
                    set.extend(hits.into_iter().cloned());
                }
                TargetSpec::Object { kind: ObjectKind::Service, .. } => {
                    anyhow::bail!("--focus takes a workload (deployment/NAME, statefulset/NAME, cluster/NAME, pod/NAME for a bare pod) or cidr:ADDRESS, not a Service");
                }
                TargetSpec::Object { kind, namespace, name } => {
                    let kind = match kind {
                        ObjectKind::Workload(k) => k.clone(),
                        _ => WorkloadKind::Pod,
                    };
                    let ns = namespace.as_deref().unwrap_or(default_namespace);
                    let want = Endpoint::Workload(WorkloadRef::new(kind.clone(), ns, name.as_str()));
                    if !all.contains(&want) {
                        let elsewhere: Vec<String> = all
                            .iter()
                            .filter_map(|e| match e {
                                Endpoint::Workload(w) if w.kind == kind && &w.name == name => Some(format!("{}/{}/{}", w.kind.as_str().to_ascii_lowercase(), w.namespace, w.name)),
                                _ => None,
                            })
                            .collect();
                        let hint = if elsewhere.is_empty() {
                            if kind == WorkloadKind::Pod { " (pods of a workload are shown as the workload: focus on it)" } else { "" }.to_string()
                        } else {
                            format!("; the input has it in another namespace: write {}", elsewhere.join(" or "))
                        };
                        anyhow::bail!("--focus: no {want} in the input{hint}");
                    }
                    set.insert(want);
                }
            }
        }
        Ok(Some(set))
    }
}
