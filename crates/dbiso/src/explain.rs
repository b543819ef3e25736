//! `explain SRC DST [PORT]`: the engine's `Explanation` of one connection, as text, or as the
//! engine serializes it (JSON/YAML). Which pod stood for a workload is in the text, and at `-v 1`.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat, SourceFlags};
use meshmove_isolation::discover;
use meshmove_isolation::target::{self, TargetSpec};
use meshmove_netpol::{Explanation, PeerDetail, PortDetail, SideExplanation, Target};

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

pub fn run(kube: &KubeFlags, args: &ExplainArgs, output: &OutputFlags) -> Result<Exit> {
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
    match output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            meshmove_cli::debug!(1, "source: {}; destination: {}", src.description, dst.description);
            meshmove_cli::render::structured(&mut out, output.output, &explanation)?;
        }
        OutputFormat::Table | OutputFormat::Wide => out.write_str(&text(&explanation, &src.description, &dst.description))?,
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

fn labels(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "no labels".to_string();
    }
    m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn peer(d: &PeerDetail) -> String {
    match d {
        PeerDetail::Matched { peer } => format!("{peer}: matches"),
        PeerDetail::OtherNamespace { peer, policy_namespace, pod_namespace } => {
            format!("{peer}: no, the pod is in namespace {pod_namespace} and a podSelector alone only selects pods of {policy_namespace}")
        }
        PeerDetail::NamespaceSelectorMismatch { peer, failed_requirement, namespace, namespace_labels } => {
            format!("{peer}: no, namespace {namespace} ({}) fails {failed_requirement}", labels(namespace_labels))
        }
        PeerDetail::PodSelectorMismatch { peer, failed_requirement, pod_labels } => {
            format!("{peer}: no, the pod ({}) fails {failed_requirement}", labels(pod_labels))
        }
        PeerDetail::NotAPod { peer } => format!("{peer}: no, the other end is outside the cluster"),
        PeerDetail::NoPodIp { peer } => format!("{peer}: no, the pod has no known IP (pod templates have none)"),
        PeerDetail::PodIpsIgnored { peer } => format!("{peer}: no, pod IPs are not matched against ipBlocks"),
        PeerDetail::OutsideCidr { peer, addresses } => format!("{peer}: no, {} is outside it", addresses.join(", ")),
        PeerDetail::Excepted { peer, except, addresses } => format!("{peer}: no, {} is in the except {except}", addresses.join(", ")),
    }
}

fn port(d: &PortDetail) -> String {
    match d {
        PortDetail::Matched { entry } => format!("{entry}: matches"),
        PortDetail::ProtocolMismatch { entry, protocol } => format!("{entry}: no, the entry is for {protocol}"),
        PortDetail::PortMismatch { entry } => format!("{entry}: no, another port"),
        PortDetail::NamedPortNotFound { entry, pod } => format!("{entry}: no, {pod} has no container port of that name"),
        PortDetail::NamedPortResolvesElsewhere { entry, resolved } => {
            let r: Vec<String> = resolved.iter().map(u16::to_string).collect();
            format!("{entry}: no, the name resolves to {}", r.join(", "))
        }
        PortDetail::NamedPortExternal { entry } => format!("{entry}: no, named ports never match an address outside the cluster"),
    }
}

fn side(s: &SideExplanation, title: &str, text: &mut String) {
    let verdict = if s.allowed { "allowed" } else { "denied" };
    text.push_str(&format!("\n{title}: {verdict}\n  {}\n", s.summary));
    let (peers_word, dir) = match s.direction {
        meshmove_netpol::Direction::Ingress => ("from", "ingress"),
        meshmove_netpol::Direction::Egress => ("to", "egress"),
    };
    for p in &s.policies {
        let admits = if p.allows { "admits" } else { "does not admit" };
        text.push_str(&format!("  NetworkPolicy {}/{}: {admits}\n", p.namespace, p.name));
        if p.rules.is_empty() {
            text.push_str(&format!("    no {dir} rules: it only isolates\n"));
        }
        for r in &p.rules {
            let ok = |b: bool| if b { "match" } else { "no match" };
            text.push_str(&format!("    {dir}[{}]: peers {}, ports {}\n", r.index, ok(r.peer_matched), ok(r.port_matched)));
            match &r.peers {
                None => text.push_str(&format!("      {peers_word}: every peer (no `{peers_word}`)\n")),
                Some(peers) => {
                    for pe in peers {
                        text.push_str(&format!("      {peers_word}[{}] {}\n", pe.index, peer(&pe.detail)));
                    }
                }
            }
            match &r.ports {
                None => text.push_str("      ports: all traffic (no `ports`)\n"),
                Some(ports) => {
                    for po in ports {
                        text.push_str(&format!("      ports[{}] {}\n", po.index, port(&po.detail)));
                    }
                }
            }
        }
    }
}

/// The explanation for people.
fn text(e: &Explanation, src: &str, dst: &str) -> String {
    let verdict = if e.allowed { "ALLOWED" } else { "DENIED" };
    let mut t = format!("{src} -> {dst} on {} {}: {verdict}\n", e.protocol, e.port);
    side(&e.egress, &format!("Egress of {}", e.src), &mut t);
    side(&e.ingress, &format!("Ingress of {}", e.dst), &mut t);
    t.push_str(&format!("\n{}\n", e.verdict));
    t
}
