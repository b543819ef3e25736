//! `reach`: all-pairs reachability, as the engine's `Reach` (JSON/YAML), `src => dst : conn`
//! lines (`-o txt`) or a table. Also the model loading `explain` shares.

use anyhow::{Context, Result};
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFormat, SourceFlags};
use meshmove_netpol::view::{self as model, Model, ModelOptions};
use meshmove_model::inventory::{Inventory, Kind, Unavailable, kinds};
use meshmove_netpol::{Engine, EngineOptions};
use meshmove_model::workload::WORKLOAD_KINDS;

use super::Format;

#[derive(Args)]
pub struct ReachArgs {
    #[command(flatten)]
    source: SourceFlags,
}

/// What the engine's model is made of; `explain` also resolves Services.
pub fn model_kinds(with_services: bool) -> Vec<&'static Kind> {
    let mut k: Vec<&'static Kind> = WORKLOAD_KINDS.to_vec();
    k.extend([&kinds::NETWORK_POLICY, &kinds::NAMESPACE, &kinds::CNPG_CLUSTER]);
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
    // Kinds the cluster refused or did not find are errors (`warn_unread`, or refused outright by
    // `explain`); only absent ones are left out with a note.
    for (kind, why) in inventory.unavailable().into_iter().filter(|(_, why)| !why.is_read_failure()) {
        let why = match why {
            Unavailable::NotServed => "not served by the cluster".to_string(),
            Unavailable::NotInFiles => "not in the input".to_string(),
            Unavailable::Forbidden { message } | Unavailable::NotFound { message } => message,
        };
        meshmove_cli::log::note(format_args!("{} are left out: {why}", kind.resource()));
    }
    let model = model::build(&inventory, ModelOptions::default());
    let (engine, rejected) = Engine::build_lenient(&model.cluster, EngineOptions::default()).context("building the reachability model")?;
    for e in &rejected {
        meshmove_cli::log::note(format_args!("{e}: left out (the API server rejects this policy)"));
    }
    for p in &model.unreadable_policies {
        meshmove_cli::log::note(format_args!("NetworkPolicy {}/{}: {}: left out", p.namespace, p.name, p.message));
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
    let mut out = Out::new();
    match format {
        Format::Json | Format::Yaml => {
            let f = if format == Format::Json { OutputFormat::Json } else { OutputFormat::Yaml };
            meshmove_cli::render::structured(&mut out, f, &reach)?;
        }
        Format::Txt => {
            for e in reach.iter() {
                out.line(format_args!("{} => {} : {}", e.src, e.dst, e.conn))?;
            }
        }
        Format::Table | Format::Wide => {
            if reach.is_empty() {
                out.line("No traffic is allowed between any two endpoints.")?;
            } else {
                let rows = reach.iter().map(|e| vec![e.src.to_string(), e.dst.to_string(), e.conn.to_string()]).collect();
                out.write_str(&meshmove_cli::render::table(&["SOURCE", "DESTINATION", "ALLOWED"], rows))?;
            }
        }
    }
    out.flush()?;
    // What could be read is shown (as `kubectl get` shows the kinds it may list); what could not
    // makes the run fail: pairs through unread policies or pods are missing or wrong.
    let incomplete = meshmove_cli::analysis::warn_unread(super::TOOL, &inventory);
    Ok(if incomplete { Exit::Findings } else { Exit::Ok })
}
