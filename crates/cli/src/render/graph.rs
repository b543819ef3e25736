//! Connectivity as a picture: Graphviz DOT and Mermaid flowcharts. Workloads are grouped by
//! namespace (DOT clusters, Mermaid subgraphs), addresses outside the cluster in a group of their
//! own; databases are cylinders; edges carry what is allowed, or for a diff how it changed
//! (added green `+`, removed red and dashed `-`, changed orange `before → after`); traffic
//! through Istio ambient's HBONE tunnel is a bold purple edge, `via HBONE 15008 (ambient)`.
//!
//! SVG is left to Graphviz (`-o dot | dot -Tsvg`): the pure-Rust layout crate that exists
//! (`layout-rs`) does not draw nested graphs, so it could not show the namespaces.

use std::collections::{BTreeMap, BTreeSet};

use meshmove_netpol::{Change, Endpoint};

use super::reach::{Marks, Row, VIA_HBONE, What, namespace, short};

/// Colours of the diff's edges and of database nodes.
const ADDED: &str = "#2e7d32";
const REMOVED: &str = "#c62828";
const CHANGED: &str = "#ef6c00";
const HBONE: &str = "#6a1b9a";
const DATABASE_FILL: &str = "#fde2c4";
const DATABASE_STROKE: &str = "#c77700";

/// Endpoints by namespace (`None`: outside the cluster, last), each group in endpoint order.
fn groups<'a>(nodes: &BTreeSet<&'a Endpoint>) -> Vec<(Option<&'a str>, Vec<&'a Endpoint>)> {
    let mut by_ns: BTreeMap<(bool, Option<&'a str>), Vec<&'a Endpoint>> = BTreeMap::new();
    for &n in nodes {
        let ns = namespace(n);
        by_ns.entry((ns.is_none(), ns)).or_default().push(n);
    }
    by_ns.into_iter().map(|((_, ns), v)| (ns, v)).collect()
}

/// The words on a node: `Deployment` and `api`, or the CIDR.
fn node_words(e: &Endpoint) -> (String, String) {
    match e {
        Endpoint::Workload(w) => (w.kind.to_string(), w.name.clone()),
        Endpoint::External(n) => ("outside the cluster".to_string(), n.to_string()),
    }
}

/// The words on an edge.
fn edge_label(r: &Row<'_>) -> String {
    match &r.what {
        What::Allowed(c) if r.hbone => format!("{} {VIA_HBONE}", short(c)),
        What::Allowed(c) => short(c),
        What::Verdict { words, .. } => words.to_string(),
        What::Changed(Change::Added { after }) => format!("+ {}", short(after)),
        What::Changed(Change::Removed { before }) => format!("- {}", short(before)),
        What::Changed(Change::Changed { before, after }) => format!("{} → {}", short(before), short(after)),
    }
}

/// A DOT quoted string (`"` and `\` escaped, line breaks as Graphviz's `\n`).
fn dot_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// A Graphviz digraph, left to right.
pub(crate) fn dot(nodes: &BTreeSet<&Endpoint>, rows: &[Row<'_>], marks: &Marks, title: &str) -> String {
    let mut g = String::from("digraph connectivity {\n");
    g.push_str(&format!("  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label={}];\n", dot_str(title)));
    g.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    g.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (i, (ns, members)) in groups(nodes).into_iter().enumerate() {
        let (id, label) = match ns {
            Some(ns) => (format!("cluster_{i}"), format!("namespace {ns}")),
            None => ("cluster_outside".to_string(), "outside the cluster".to_string()),
        };
        g.push_str(&format!("  subgraph {} {{\n    label={};\n", dot_str(&id), dot_str(&label)));
        if ns.is_none() {
            g.push_str("    style=dashed;\n");
        }
        for n in members {
            let (kind, name) = node_words(n);
            let label = match n {
                Endpoint::Workload(_) => format!("{kind}\n{name}"),
                Endpoint::External(_) => name.clone(),
            };
            let mut attrs = vec![format!("label={}", dot_str(&label))];
            if marks.is_database(n) {
                attrs.push("shape=cylinder".into());
                attrs.push(format!("style=filled, fillcolor={}, color={}", dot_str(DATABASE_FILL), dot_str(DATABASE_STROKE)));
                attrs[0] = format!("label={}", dot_str(&format!("{kind}\n{name}\n(database)")));
            } else if matches!(n, Endpoint::External(_)) {
                attrs.push("shape=ellipse, style=dashed".into());
            }
            g.push_str(&format!("    {} [{}];\n", dot_str(&n.to_string()), attrs.join(", ")));
        }
        g.push_str("  }\n");
    }
    for r in rows {
        let mut attrs = vec![format!("label={}", dot_str(&edge_label(r)))];
        match r.what {
            What::Allowed(_) | What::Verdict { allowed: true, .. } if r.hbone => {
                attrs.push(format!("color={c}, fontcolor={c}, style=bold", c = dot_str(HBONE)))
            }
            What::Allowed(_) => {}
            What::Verdict { allowed: true, .. } => attrs.push(format!("color={c}, fontcolor={c}", c = dot_str(ADDED))),
            What::Verdict { allowed: false, .. } => attrs.push(format!("color={c}, fontcolor={c}, style=dashed", c = dot_str(REMOVED))),
            What::Changed(Change::Added { .. }) => attrs.push(format!("color={c}, fontcolor={c}", c = dot_str(ADDED))),
            What::Changed(Change::Removed { .. }) => attrs.push(format!("color={c}, fontcolor={c}, style=dashed", c = dot_str(REMOVED))),
            What::Changed(Change::Changed { .. }) => attrs.push(format!("color={c}, fontcolor={c}", c = dot_str(CHANGED))),
        }
        g.push_str(&format!("  {} -> {} [{}];\n", dot_str(&r.src.to_string()), dot_str(&r.dst.to_string()), attrs.join(", ")));
    }
    g.push_str("}\n");
    g
}

/// Text inside a Mermaid `"..."` label: Mermaid has no backslash escapes, only entity codes.
fn mermaid_str(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "#quot;"))
}

/// A Mermaid flowchart, left to right. Node ids are `n0`, `n1`, ... (names may contain what
/// Mermaid ids cannot, such as dots and slashes).
pub(crate) fn mermaid(nodes: &BTreeSet<&Endpoint>, rows: &[Row<'_>], marks: &Marks) -> String {
    let ids: BTreeMap<&Endpoint, String> = nodes.iter().enumerate().map(|(i, n)| (*n, format!("n{i}"))).collect();
    let mut m = String::from("flowchart LR\n");
    let mut databases = Vec::new();
    for (i, (ns, members)) in groups(nodes).into_iter().enumerate() {
        let (id, label) = match ns {
            Some(ns) => (format!("ns{i}"), format!("namespace {ns}")),
            None => ("outside".to_string(), "outside the cluster".to_string()),
        };
        m.push_str(&format!("  subgraph {id}[{}]\n", mermaid_str(&label)));
        for n in members {
            let (kind, name) = node_words(n);
            let id = &ids[n];
            if marks.is_database(n) {
                m.push_str(&format!("    {id}[({})]\n", mermaid_str(&format!("{kind} {name} (database)"))));
                databases.push(id.clone());
            } else if matches!(n, Endpoint::External(_)) {
                m.push_str(&format!("    {id}{{{{{}}}}}\n", mermaid_str(&name)));
            } else {
                m.push_str(&format!("    {id}[{}]\n", mermaid_str(&format!("{kind} {name}"))));
            }
        }
        m.push_str("  end\n");
    }
    let mut styles: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let (arrow, colour) = match r.what {
            What::Allowed(_) | What::Verdict { allowed: true, .. } if r.hbone => ("-->", Some(HBONE)),
            What::Allowed(_) => ("-->", None),
            What::Verdict { allowed: true, .. } => ("-->", Some(ADDED)),
            What::Verdict { allowed: false, .. } => ("-.->", Some(REMOVED)),
            What::Changed(Change::Added { .. }) => ("-->", Some(ADDED)),
            What::Changed(Change::Removed { .. }) => ("-.->", Some(REMOVED)),
            What::Changed(Change::Changed { .. }) => ("==>", Some(CHANGED)),
        };
        if let Some(c) = colour {
            styles.entry(c).or_default().push(i);
        }
        m.push_str(&format!("  {} {arrow}|{}| {}\n", ids[r.src], mermaid_str(&edge_label(r)), ids[r.dst]));
    }
    for (colour, links) in styles {
        let links: Vec<String> = links.iter().map(ToString::to_string).collect();
        m.push_str(&format!("  linkStyle {} stroke:{colour},color:{colour}\n", links.join(",")));
    }
    if !databases.is_empty() {
        m.push_str(&format!("  classDef database fill:{DATABASE_FILL},stroke:{DATABASE_STROKE}\n"));
        m.push_str(&format!("  class {} database\n", databases.join(",")));
    }
    m
}
