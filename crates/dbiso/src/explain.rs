//! `explain SRC DST [PORT]`: the engine's `Explanation` of one connection, as text, as a
//! Markdown document, as the picture of its one path (DOT, Mermaid), or as the engine serializes
//! it (JSON/YAML); the renderers are `meshmove_cli::render::explain`. Which pod stood for a
//! workload is in the text and the document, and at `-v 1`.

use anyhow::{Result, anyhow};
use clap::Args;
use meshmove_cli::render::explain as render;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFormat, SourceFlags};
use meshmove_isolation::discover;
use meshmove_isolation::target::{self, TargetSpec};
use meshmove_netpol::{Endpoint, Target};

use super::{EXPLAIN_FORMATS, Format, Output};

#[derive(Args)]
pub struct ExplainArgs {
    /// Source: KIND/NAME, KIND/NAMESPACE/NAME or cidr:ADDRESS
    #[arg(value_name = "SRC")]
    src: TargetSpec,
    /// Destination: KIND/NAME, KIND/NAMESPACE/NAME or cidr:ADDRESS
    #[arg(value_name = "DST")]
    dst: TargetSpec,
    /// PORT[/PROTOCOL] or a container port name of DST (default: DST's database port, else its first port)
    #[arg(value_name = "PORT")]
    port: Option<String>,
    #[command(flatten)]
    source: SourceFlags,
}

pub fn run(kube: &KubeFlags, args: &ExplainArgs, output: &Output) -> Result<Exit> {
    let format = output.only("explain", &EXPLAIN_FORMATS)?;
    // Exit 1 means "denied": a verdict over policies or pods that could not be read would be a
    // guess, so a partial read is an error here (`reach::load` with `explain`).
    let named: Vec<String> = [&args.src, &args.dst]
        .into_iter()
        .filter_map(|t| match t {
            TargetSpec::Object { namespace, .. } => namespace.clone(),
            TargetSpec::Cidr(_) => None,
        })
        .collect();
    let (inventory, _, engine) = super::reach::load_for_explain(kube, &args.source, &named)?;
    let ns = inventory.default_namespace.clone();
    let src = args.src.resolve(&engine, &inventory, &ns).map_err(|e| anyhow!("SRC: {e}{}", elsewhere(&engine, &args.src)))?;
    let dst = args.dst.resolve(&engine, &inventory, &ns).map_err(|e| anyhow!("DST: {e}{}", elsewhere(&engine, &args.dst)))?;
    let dst_pod = match dst.target {
        Target::Pod(id) => Some(engine.pod(id)),
        Target::External(_) => None,
    };
    let (port, protocol) = match &args.port {
        Some(p) => target::parse_port(p, dst_pod).map_err(|e| anyhow!("PORT: {e}"))?,
        None => {
            let db_port = dst.workload.as_ref().and_then(|w| {
                discover::databases(&inventory).into_iter().find(|d| d.workload_ref() == *w).and_then(|d| d.ports.first().copied())
            });
            match (db_port, dst_pod.and_then(|p| p.ports.first())) {
                (Some(p), _) => (p, meshmove_netpol::Protocol::Tcp),
                (None, Some(p)) => (p.port, p.protocol),
                (None, None) => anyhow::bail!("DST declares no port: give one, e.g. `explain SRC DST 5432/TCP`"),
            }
        }
    };
    let explanation = engine.explain(src.target, dst.target, protocol, port)?;
    let mut out = Out::new();
    let endpoint = |t: Target| match t {
        Target::Pod(id) => Endpoint::Workload(engine.pod(id).workload()),
        Target::External(net) => Endpoint::External(net),
    };
    match format {
        Format::Json | Format::Yaml => {
            meshmove_cli::debug!(1, "source: {}; destination: {}", src.description, dst.description);
            let shared = if format == Format::Json { OutputFormat::Json } else { OutputFormat::Yaml };
            meshmove_cli::render::structured(&mut out, shared, &explanation)?;
        }
        Format::Md => out.write_str(&render::markdown(&explanation, &src.description, &dst.description))?,
        Format::Dot | Format::Mermaid => {
            let marks = super::reach::databases(&[&inventory]);
            render::graph(&mut out, format, &explanation, &endpoint(src.target), &endpoint(dst.target), &marks)?;
        }
        _ => out.write_str(&render::text(&explanation, &src.description, &dst.description))?,
    }
    out.flush()?;
    Ok(if explanation.allowed { Exit::Ok } else { Exit::Findings })
}

/// For an end written without a namespace that is not in the default one: where workloads of that
/// kind and name are (`; the input has Deployment/web/frontend: write deployment/web/frontend`).
fn elsewhere(engine: &meshmove_netpol::Engine, spec: &TargetSpec) -> String {
    let TargetSpec::Object { kind: target::ObjectKind::Workload(kind), namespace: None, name } = spec else { return String::new() };
    let found: Vec<String> = engine
        .workloads()
        .iter()
        .filter(|w| &w.kind == kind && &w.name == name)
        .map(|w| format!("{}/{}/{}", w.kind.as_str().to_ascii_lowercase(), w.namespace, w.name))
        .collect();
    if found.is_empty() {
        return String::new();
    }
    format!("; the input has it in another namespace: write {} (or -n NAMESPACE)", found.join(" or "))
}
