//! One explained connection (the engine's [`Explanation`]) for people: as text (`-o table`), as
//! a Markdown document (`-o md`), and as the picture of its single path (`-o dot`, `-o mermaid`:
//! the two ends grouped by namespace, databases marked, one edge saying allowed or denied, and
//! the HBONE tunnel when Istio ambient carries it). JSON and YAML are the engine's own
//! serialization ([`super::structured`]).

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;
use meshmove_netpol::hbone::Path;
use meshmove_netpol::{Direction, Endpoint, Explanation, PeerDetail, PortDetail, SideExplanation};

use super::graph;
use super::reach::{Marks, Row, VIA_HBONE, ViewFormat, What, md_text};

fn labels(m: &std::collections::BTreeMap<String, String>) -> String {
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

/// One side as lines: `(depth, text)`, depth 0 for the side's summary.
fn side_lines(s: &SideExplanation) -> Vec<(usize, String)> {
    let mut out = vec![(0, s.summary.clone())];
    let (peers_word, dir) = match s.direction {
        Direction::Ingress => ("from", "ingress"),
        Direction::Egress => ("to", "egress"),
    };
    // The admin policies' rules looked at, in evaluation order, before the NetworkPolicies.
    for r in s.admin.iter().flat_map(|a| &a.rules) {
        let ok = |b: bool| if b { "match" } else { "no match" };
        out.push((0, format!("{}: peers {}, ports {}", r.describe(), ok(r.peer_matched), ok(r.port_matched))));
        if !r.unmodelled_peers.is_empty() {
            out.push((1, format!("not modelled, matched by nothing here: {}", r.unmodelled_peers.join(", "))));
        }
    }
    for p in &s.policies {
        let admits = if p.allows { "admits" } else { "does not admit" };
        out.push((0, format!("NetworkPolicy {}/{}: {admits}", p.namespace, p.name)));
        if p.rules.is_empty() {
            out.push((1, format!("no {dir} rules: it only isolates")));
        }
        for r in &p.rules {
            let ok = |b: bool| if b { "match" } else { "no match" };
            out.push((1, format!("{dir}[{}]: peers {}, ports {}", r.index, ok(r.peer_matched), ok(r.port_matched))));
            match &r.peers {
                None => out.push((2, format!("{peers_word}: every peer (no `{peers_word}`)"))),
                Some(peers) => out.extend(peers.iter().map(|pe| (2, format!("{peers_word}[{}] {}", pe.index, peer(&pe.detail))))),
            }
            match &r.ports {
                None => out.push((2, "ports: all traffic (no `ports`)".to_string())),
                Some(ports) => out.extend(ports.iter().map(|po| (2, format!("ports[{}] {}", po.index, port(&po.detail))))),
            }
        }
    }
    out
}

fn verdict_word(e: &Explanation) -> &'static str {
    match &e.authorization {
        Some(a) if e.allowed && a.state == meshmove_netpol::AuthzState::Conditional => "CONDITIONAL",
        _ if e.allowed => "ALLOWED",
        _ => "DENIED",
    }
}

/// The destination proxy's AuthorizationPolicy verdict, when the model has Istio policies: a
/// title and the lines under it.
fn authz_lines(e: &Explanation) -> Option<(String, Vec<String>)> {
    let a = e.authorization.as_ref()?;
    let state = match a.state {
        meshmove_netpol::AuthzState::NotEnforced => "not enforced",
        meshmove_netpol::AuthzState::Allowed => "allowed",
        meshmove_netpol::AuthzState::Denied => "denied",
        meshmove_netpol::AuthzState::Conditional => "conditional",
    };
    let mut lines = vec![a.reason.clone()];
    if let Some(by) = a.enforced_by {
        let by = match by {
            meshmove_netpol::Enforcer::Sidecar => "the destination's sidecar",
            meshmove_netpol::Enforcer::Ztunnel => "ztunnel (ambient, L4 only)",
        };
        let mode = a.mtls_mode.unwrap_or("PERMISSIVE");
        let from = a.source_principal.as_deref().map_or_else(|| "no principal (plaintext)".to_string(), |p| format!("principal {p}"));
        lines.push(format!("enforced by {by}; mTLS mode {mode}; source: {from}"));
    }
    if !a.policies.is_empty() {
        lines.push(format!("policies: {}", a.policies.join(", ")));
    }
    Some((format!("AuthorizationPolicy at {}: {state}", e.dst), lines))
}

/// The explanation for people; `src` and `dst` say which pod stood for each end.
pub fn text(e: &Explanation, src: &str, dst: &str) -> String {
    let mut t = format!("{src} -> {dst} on {} {}: {}\n", e.protocol, e.port, verdict_word(e));
    if let Some(note) = &e.note {
        t.push_str(&format!("\n{note}\n"));
    }
    for (title, s) in [(format!("Egress of {}", e.src), &e.egress), (format!("Ingress of {}", e.dst), &e.ingress)] {
        let verdict = if s.allowed { "allowed" } else { "denied" };
        t.push_str(&format!("\n{title}: {verdict}\n"));
        for (depth, line) in side_lines(s) {
            t.push_str(&format!("{}{line}\n", " ".repeat(2 + depth * 2)));
        }
    }
    if let Some((title, lines)) = authz_lines(e) {
        t.push_str(&format!("\n{title}\n"));
        for line in lines {
            t.push_str(&format!("  {line}\n"));
        }
    }
    t.push_str(&format!("\n{}\n", e.verdict));
    t
}

/// The explanation as a Markdown document: the verdict, the path, then each side with its
/// policies, rules, peers and ports as nested lists.
pub fn markdown(e: &Explanation, src: &str, dst: &str) -> String {
    let mut md = format!("# {} -> {} on {} {}\n\n**{}**: {}\n", md_text(src), md_text(dst), e.protocol, e.port, verdict_word(e), md_text(&e.verdict));
    if let Some(note) = &e.note {
        md.push_str(&format!("\n{}\n", md_text(note)));
    }
    for (title, s) in [(format!("Egress of {}", e.src), &e.egress), (format!("Ingress of {}", e.dst), &e.ingress)] {
        let verdict = if s.allowed { "allowed" } else { "denied" };
        md.push_str(&format!("\n## {title}: {verdict}\n\n"));
        let mut lines = side_lines(s).into_iter();
        if let Some((_, summary)) = lines.next() {
            md.push_str(&format!("{}\n", md_text(&summary)));
        }
        let rest: Vec<(usize, String)> = lines.collect();
        if !rest.is_empty() {
            md.push('\n');
            for (depth, line) in rest {
                md.push_str(&format!("{}- {}\n", "  ".repeat(depth), md_text(&line)));
            }
        }
    }
    if let Some((title, lines)) = authz_lines(e) {
        md.push_str(&format!("\n## {}\n\n", md_text(&title)));
        for line in lines {
            md.push_str(&format!("- {}\n", md_text(&line)));
        }
    }
    md
}

/// The connection as a graph of one edge from `src` to `dst`: `dot` or `mermaid`; any other
/// format is the caller's to render.
pub fn graph(out: &mut dyn Write, format: ViewFormat, e: &Explanation, src: &Endpoint, dst: &Endpoint, marks: &Marks) -> Result<()> {
    let mut words = format!("{} {}: {}", e.protocol, e.port, if e.allowed { "allowed" } else { "denied" });
    let hbone = e.path == Path::Hbone;
    if hbone {
        words.push_str(&format!(" {VIA_HBONE}"));
    }
    let rows = [Row { src, dst, what: What::Verdict { allowed: e.allowed, words: &words }, hbone }];
    let nodes: BTreeSet<&Endpoint> = [src, dst].into_iter().collect();
    let text = match format {
        ViewFormat::Dot => graph::dot(&nodes, &rows, marks, &e.verdict),
        ViewFormat::Mermaid => graph::mermaid(&nodes, &rows, marks),
        other => anyhow::bail!("an explained connection is drawn as dot or mermaid, not {}", other.name()),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
