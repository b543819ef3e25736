//! Every connectivity format read back by a parser: DOT by graphviz-rust's grammar, CSV by the
//! csv crate, Markdown by pulldown-cmark (tables), JSON by serde into the engine's types, and
//! Mermaid by a strict checker of the flowchart subset written here. Each read-back is compared
//! with the engine's answer pair by pair, not searched for substrings.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_netpol::{
    ClusterModel, Connection, Endpoint, Engine, EngineOptions, NamespaceInfo, PodInfo, Protocol, Reach, ReachDiff, ReachEntry,
    WorkloadKind, WorkloadRef,
};
use serde_json::{Value, json};

use super::reach::{Marks, ViewFormat, diff, reach};

fn w(kind: WorkloadKind, ns: &str, name: &str) -> WorkloadRef {
    WorkloadRef::new(kind, ns, name)
}

fn pg() -> WorkloadRef {
    w(WorkloadKind::StatefulSet, "data", "pg")
}

/// Two namespaces: shop (api, web) and data (the database pg, and a CloudNativePG cluster).
fn model(policies: Vec<Value>) -> ClusterModel {
    let pods = vec![
        PodInfo::new("shop", "api").with_labels([("app", "api")]).with_owner(w(WorkloadKind::Deployment, "shop", "api")).with_port(Some("http"), 8080, Protocol::Tcp),
        PodInfo::new("shop", "web").with_labels([("app", "web")]).with_owner(w(WorkloadKind::Deployment, "shop", "web")),
        PodInfo::new("data", "pg-0").with_labels([("app", "pg")]).with_owner(pg()).with_port(Some("postgres"), 5432, Protocol::Tcp),
        PodInfo::new("data", "orders-db-1")
            .with_labels([("cnpg.io/cluster", "orders-db")])
            .with_owner(w(WorkloadKind::Other("Cluster".into()), "data", "orders-db"))
            .with_port(Some("postgresql"), 5432, Protocol::Tcp),
    ];
    let namespaces = ["shop", "data"].iter().map(|n| NamespaceInfo::new(*n, BTreeMap::new())).collect();
    let policies = policies.into_iter().map(|p| serde_json::from_value::<NetworkPolicy>(p).unwrap()).collect();
    ClusterModel { namespaces, pods, policies, ..Default::default() }
}

fn isolate() -> Vec<Value> {
    vec![
        json!({"metadata": {"name": "pg", "namespace": "data"}, "spec": {"podSelector": {"matchLabels": {"app": "pg"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}, "podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}]}}),
        json!({"metadata": {"name": "web-out", "namespace": "shop"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}, {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080}, {"port": 9000, "endPort": 9100}]}]}}),
    ]
}

fn run(m: &ClusterModel) -> Reach {
    Engine::build(m, EngineOptions::default()).unwrap().reach()
}

fn marks() -> Marks {
    Marks { databases: [pg(), w(WorkloadKind::Other("Cluster".into()), "data", "orders-db")].into_iter().collect() }
}

fn render_reach(format: ViewFormat, r: &Reach, focus: Option<&BTreeSet<Endpoint>>) -> String {
    let mut out = Vec::new();
    reach(&mut out, format, r, &marks(), focus).unwrap();
    String::from_utf8(out).unwrap()
}

fn render_diff(format: ViewFormat, d: &ReachDiff) -> String {
    let mut out = Vec::new();
    diff(&mut out, format, d, &marks()).unwrap();
    String::from_utf8(out).unwrap()
}

fn the_diff() -> ReachDiff {
    meshmove_netpol::diff::diff(&run(&model(vec![])), &run(&model(isolate())))
}

/// `(src, dst, label)` of every entry, with the label each format writes.
fn expected_edges(r: &Reach, label: impl Fn(&Connection) -> String) -> Vec<(String, String, String)> {
    r.iter().map(|e| (e.src.to_string(), e.dst.to_string(), label(e.conn))).collect()
}

// ---------------------------------------------------------------------------------------------
// DOT, through graphviz-rust's parser.

mod dot {
    use graphviz_rust::dot_structures::{Attribute, EdgeTy, Graph, Id, Stmt, Vertex};

    /// The text of an ID, unquoted and unescaped.
    pub fn text(id: &Id) -> String {
        match id {
            Id::Escaped(s) => {
                let inner = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).expect("quoted");
                let mut out = String::new();
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        match chars.next() {
                            Some('n') => out.push('\n'),
                            Some(x) => out.push(x),
                            None => panic!("dangling escape in {s}"),
                        }
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            Id::Plain(s) => s.clone(),
            other => panic!("unexpected id {other:?}"),
        }
    }

    pub fn attrs(a: &[Attribute]) -> std::collections::BTreeMap<String, String> {
        a.iter().map(|Attribute(k, v)| (text(k), text(v))).collect()
    }

    /// What a parsed digraph holds: clusters with their label and node ids, node attributes,
    /// edges with their attributes.
    #[derive(Default, Debug)]
    pub struct Parsed {
        pub clusters: Vec<(String, String, Vec<String>)>,
        pub nodes: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
        pub edges: Vec<(String, String, std::collections::BTreeMap<String, String>)>,
    }

    pub fn parse(text_in: &str) -> Parsed {
        // One statement per line: no string runs across a line break (labels use `\n`).
        for line in text_in.lines() {
            let quotes = line.char_indices().filter(|&(i, c)| c == '"' && !line[..i].ends_with('\\')).count();
            assert!(quotes % 2 == 0, "a string spans lines: {line}");
        }
        let graph = graphviz_rust::parse(text_in).unwrap_or_else(|e| panic!("DOT does not parse: {e}\n{text_in}"));
        let Graph::DiGraph { stmts, strict: false, .. } = graph else { panic!("not a digraph") };
        let mut p = Parsed::default();
        for s in &stmts {
            match s {
                Stmt::Subgraph(sg) => {
                    let id = text(&sg.id);
                    assert!(id.starts_with("cluster_"), "subgraph {id} is not a cluster");
                    let mut label = String::new();
                    let mut members = Vec::new();
                    for inner in &sg.stmts {
                        match inner {
                            Stmt::Attribute(Attribute(k, v)) if text(k) == "label" => label = text(v),
                            Stmt::Attribute(_) => {}
                            Stmt::Node(n) => {
                                let id = text(&n.id.0);
                                assert!(n.id.1.is_none(), "no ports");
                                assert!(p.nodes.insert(id.clone(), attrs(&n.attributes)).is_none(), "node {id} declared twice");
                                members.push(id);
                            }
                            other => panic!("unexpected statement in a cluster: {other:?}"),
                        }
                    }
                    p.clusters.push((id, label, members));
                }
                Stmt::Edge(e) => {
                    let EdgeTy::Pair(Vertex::N(a), Vertex::N(b)) = &e.ty else { panic!("edges are pairs of nodes: {e:?}") };
                    p.edges.push((text(&a.0), text(&b.0), attrs(&e.attributes)));
                }
                Stmt::GAttribute(_) => {}
                other => panic!("unexpected top-level statement: {other:?}"),
            }
        }
        for (a, b, _) in &p.edges {
            assert!(p.nodes.contains_key(a) && p.nodes.contains_key(b), "edge {a} -> {b} to an undeclared node");
        }
        p
    }
}

#[test]
fn dot_reads_back_as_the_engines_pairs_grouped_by_namespace() {
    let r = run(&model(isolate()));
    let text = render_reach(ViewFormat::Dot, &r, None);
    let p = dot::parse(&text);
    let labels: Vec<&str> = p.clusters.iter().map(|(_, l, _)| l.as_str()).collect();
    assert_eq!(labels, ["namespace data", "namespace shop", "outside the cluster"]);
    for (_, label, members) in &p.clusters {
        for m in members {
            let ns = label.strip_prefix("namespace ");
            match ns {
                Some(ns) => assert_eq!(m.split('/').nth(1), Some(ns), "{m} in {label}"),
                None => assert!(m.starts_with("External/"), "{m} in {label}"),
            }
        }
    }
    // Every endpoint, drawn once; databases are cylinders.
    let all: BTreeSet<String> = r.endpoints().iter().map(ToString::to_string).collect();
    assert_eq!(p.nodes.keys().cloned().collect::<BTreeSet<_>>(), all);
    for (id, a) in &p.nodes {
        let db = id == "StatefulSet/data/pg" || id == "Cluster/data/orders-db";
        assert_eq!(a.get("shape").map(String::as_str) == Some("cylinder"), db, "{id}: {a:?}");
        assert_eq!(a["label"].ends_with("(database)"), db, "{id}: {a:?}");
    }
    assert_eq!(p.nodes["Deployment/shop/api"]["label"], "Deployment\napi");
    let got: Vec<(String, String, String)> = p.edges.iter().map(|(a, b, attrs)| (a.clone(), b.clone(), attrs["label"].clone())).collect();
    assert_eq!(got, expected_edges(&r, super::reach::short));
    assert!(got.contains(&("Deployment/shop/api".into(), "StatefulSet/data/pg".into(), "TCP 5432".into())), "{got:?}");
    assert!(got.contains(&("Deployment/shop/web".into(), "Deployment/shop/api".into(), "TCP 8080, TCP 9000-9100, UDP 53".into())), "{got:?}");
}

#[test]
fn dot_of_a_diff_colours_each_change() {
    let d = the_diff();
    let p = dot::parse(&render_diff(ViewFormat::Dot, &d));
    assert_eq!(p.edges.len(), d.entries.len());
    for ((a, b, attrs), e) in p.edges.iter().zip(&d.entries) {
        assert_eq!((a.as_str(), b.as_str()), (e.src.to_string().as_str(), e.dst.to_string().as_str()));
        let (colour, prefix) = match e.change.word() {
            "added" => ("#2e7d32", "+ "),
            "removed" => ("#c62828", "- "),
            _ => ("#ef6c00", ""),
        };
        assert_eq!(attrs["color"], colour, "{attrs:?}");
        assert!(attrs["label"].starts_with(prefix), "{attrs:?}");
        assert_eq!(attrs.get("style").map(String::as_str) == Some("dashed"), e.change.word() == "removed");
    }
    let changed = p.edges.iter().find(|(a, b, _)| a == "Deployment/shop/api" && b == "StatefulSet/data/pg").unwrap();
    assert_eq!(changed.2["label"], "all → TCP 5432");
}

#[test]
fn dot_escapes_what_would_end_a_string() {
    let mut m = model(vec![]);
    m.pods.push(PodInfo::new("odd\"ns", "x\\y").with_labels([("a", "b")]));
    let r = run(&m);
    let p = dot::parse(&render_reach(ViewFormat::Dot, &r, None));
    assert!(p.nodes.contains_key("Pod/odd\"ns/x\\y"), "{:?}", p.nodes.keys());
    assert!(p.clusters.iter().any(|(_, l, _)| l == "namespace odd\"ns"));
}

// ---------------------------------------------------------------------------------------------
// CSV, through the csv crate.

fn csv_records(text: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    let rows = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), headers.len());
            headers.iter().cloned().zip(r.iter().map(str::to_string)).collect()
        })
        .collect();
    (headers, rows)
}

fn endpoint_of(row: &BTreeMap<String, String>, side: &str) -> Endpoint {
    let kind = &row[&format!("{side}_kind")];
    let name = &row[&format!("{side}_name")];
    if kind == "External" {
        assert_eq!(row[&format!("{side}_namespace")], "");
        return Endpoint::External(name.parse().unwrap());
    }
    Endpoint::Workload(WorkloadRef::new(WorkloadKind::parse(kind), row[&format!("{side}_namespace")].clone(), name.clone()))
}

#[test]
fn csv_reads_back_as_the_engines_pairs() {
    let r = run(&model(isolate()));
    let (headers, rows) = csv_records(&render_reach(ViewFormat::Csv, &r, None));
    assert_eq!(
        headers,
        ["source_kind", "source_namespace", "source_name", "source_database", "destination_kind", "destination_namespace", "destination_name", "destination_database", "allowed", "path"]
    );
    assert!(rows.iter().all(|row| row["path"] == "direct"), "nothing is captured by ambient here");
    let got: Vec<(Endpoint, Endpoint, String)> = rows.iter().map(|row| (endpoint_of(row, "source"), endpoint_of(row, "destination"), row["allowed"].clone())).collect();
    let want: Vec<(Endpoint, Endpoint, String)> = r.iter().map(|e| (e.src.clone(), e.dst.clone(), e.conn.to_string())).collect();
    assert_eq!(got, want);
    for row in &rows {
        let db = |side: &str| row[&format!("{side}_name")] == "pg" || row[&format!("{side}_name")] == "orders-db";
        assert_eq!(row["destination_database"], db("destination").to_string());
        assert_eq!(row["source_database"], db("source").to_string());
    }
    // A field with commas survives quoting.
    assert!(rows.iter().any(|r| r["allowed"] == "TCP 8080,TCP 9000-9100,UDP 53"), "{rows:?}");
}

#[test]
fn csv_of_a_diff_has_both_sides_and_the_delta() {
    let d = the_diff();
    let (headers, rows) = csv_records(&render_diff(ViewFormat::Csv, &d));
    assert_eq!(headers[0], "change");
    assert_eq!(&headers[9..], ["before", "after", "lost", "gained"]);
    assert_eq!(rows.len(), d.entries.len());
    for (row, e) in rows.iter().zip(&d.entries) {
        assert_eq!(row["change"], e.change.word());
        assert_eq!((endpoint_of(row, "source"), endpoint_of(row, "destination")), (e.src.clone(), e.dst.clone()));
        assert_eq!(row["before"], e.change.before().map(ToString::to_string).unwrap_or_default());
        assert_eq!(row["after"], e.change.after().map(ToString::to_string).unwrap_or_default());
        assert_eq!(row["lost"], e.change.lost().map(|x| x.to_string()).unwrap_or_default());
    }
    let api = rows.iter().find(|r| r["source_name"] == "api" && r["destination_name"] == "pg").unwrap();
    assert_eq!((api["change"].as_str(), api["lost"].as_str(), api["after"].as_str()), ("changed", "All connections except TCP 5432", "TCP 5432"));
}

// ---------------------------------------------------------------------------------------------
// Markdown, through pulldown-cmark.

/// Headings and tables of a Markdown document: `(heading, [rows of cell texts])`, header row
/// first.
fn md_tables(text: &str) -> Vec<(String, Vec<Vec<String>>)> {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let mut out: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    let (mut heading, mut in_heading, mut cell, mut row, mut table) = (String::new(), false, None::<String>, Vec::new(), Vec::new());
    for ev in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::Heading { .. }) => {
                heading.clear();
                in_heading = true;
            }
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => row.push(cell.take().unwrap()),
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => table.push(std::mem::take(&mut row)),
            Event::End(TagEnd::Table) => out.push((heading.clone(), std::mem::take(&mut table))),
            Event::Text(t) | Event::Code(t) => {
                if let Some(c) = cell.as_mut() {
                    c.push_str(&t);
                } else if in_heading {
                    heading.push_str(&t);
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn markdown_reads_back_as_one_table_per_source_namespace() {
    let r = run(&model(isolate()));
    let tables = md_tables(&render_reach(ViewFormat::Md, &r, None));
    let headings: Vec<&str> = tables.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(headings, ["From namespace data", "From namespace shop", "From outside the cluster"]);
    let mut got = Vec::new();
    for (_, rows) in &tables {
        assert_eq!(rows[0], ["Source", "Destination", "Allowed"]);
        for row in &rows[1..] {
            got.push((row[0].clone(), row[1].clone(), row[2].clone()));
        }
    }
    let mark = |e: &Endpoint| format!("{e}{}", if marks().is_database(e) { " (database)" } else { "" });
    let want: Vec<(String, String, String)> = r.iter().map(|e| (mark(e.src), mark(e.dst), e.conn.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn markdown_of_a_diff_has_the_summary_and_a_row_per_change() {
    let d = the_diff();
    let text = render_diff(ViewFormat::Md, &d);
    assert!(text.starts_with("# Connectivity diff\n\n0 added, 5 removed, 13 changed: the change removes connections (18 pair(s) lose traffic).\n"), "{text}");
    let rows: Vec<Vec<String>> = md_tables(&text).into_iter().flat_map(|(_, rows)| rows.into_iter().filter(|r| r[0] != "Change")).collect();
    assert_eq!(rows.len(), d.entries.len());
    for (row, e) in rows.iter().zip(&d.entries) {
        assert_eq!(row[0], e.change.word());
        assert_eq!(row[3], e.change.before().map_or("-".to_string(), ToString::to_string));
    }
}

// ---------------------------------------------------------------------------------------------
// Mermaid: a strict checker of the flowchart subset the renderer writes.

#[derive(Debug, Default)]
struct Flowchart {
    /// Subgraph id, title, node ids.
    subgraphs: Vec<(String, String, Vec<String>)>,
    /// Node id -> (shape, label).
    nodes: BTreeMap<String, (&'static str, String)>,
    /// (from, arrow, label, to).
    edges: Vec<(String, String, String, String)>,
    /// linkStyle index -> style.
    link_styles: BTreeMap<usize, String>,
    classes: BTreeMap<String, String>,
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !["end", "subgraph", "graph", "flowchart"].contains(&s)
}

/// A `"..."` string at the start of `s`: its text (entities decoded) and the rest.
fn quoted(s: &str) -> (String, &str) {
    let rest = s.strip_prefix('"').unwrap_or_else(|| panic!("expected a quoted string: {s}"));
    let end = rest.find('"').unwrap_or_else(|| panic!("unterminated string: {s}"));
    (rest[..end].replace("#quot;", "\""), &rest[end + 1..])
}

fn parse_mermaid(text: &str) -> Flowchart {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("flowchart LR"), "header");
    let mut f = Flowchart::default();
    let mut open: Option<(String, String, Vec<String>)> = None;
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        let l = line.trim();
        assert!(!l.is_empty(), "blank line");
        if let Some(rest) = l.strip_prefix("subgraph ") {
            assert!(open.is_none(), "nested subgraph: {l}");
            assert_eq!(indent, 2);
            let (id, rest) = rest.split_once('[').unwrap_or_else(|| panic!("subgraph without a title: {l}"));
            assert!(is_id(id), "subgraph id {id}");
            let (title, rest) = quoted(rest);
            assert_eq!(rest, "]", "{l}");
            open = Some((id.to_string(), title, Vec::new()));
        } else if l == "end" {
            f.subgraphs.push(open.take().expect("end without subgraph"));
        } else if let Some(rest) = l.strip_prefix("linkStyle ") {
            let (idx, style) = rest.split_once(' ').unwrap();
            for i in idx.split(',') {
                let i: usize = i.parse().unwrap();
                assert!(i < f.edges.len(), "linkStyle {i} of {} links", f.edges.len());
                f.link_styles.insert(i, style.to_string());
            }
        } else if let Some(rest) = l.strip_prefix("classDef ") {
            let (name, style) = rest.split_once(' ').unwrap();
            assert!(is_id(name));
            f.classes.insert(name.to_string(), style.to_string());
        } else if let Some(rest) = l.strip_prefix("class ") {
            let (ids, class) = rest.split_once(' ').unwrap();
            assert!(f.classes.contains_key(class), "class {class} used before classDef");
            for id in ids.split(',') {
                assert!(f.nodes.contains_key(id), "class on undeclared node {id}");
            }
        } else if let Some((from, rest)) = l.split_once(' ').filter(|(_, r)| r.starts_with("-->") || r.starts_with("-.->") || r.starts_with("==>")) {
            assert!(open.is_none(), "edges are outside subgraphs");
            let (arrow, rest) = rest.split_once('|').unwrap();
            let (label, rest) = quoted(rest);
            let to = rest.strip_prefix("| ").unwrap_or_else(|| panic!("{l}"));
            for id in [from, to] {
                assert!(f.nodes.contains_key(id), "edge to undeclared node {id}: {l}");
            }
            f.edges.push((from.to_string(), arrow.to_string(), label, to.to_string()));
        } else {
            let (group, _, members) = open.as_mut().unwrap_or_else(|| panic!("node outside a subgraph: {l}"));
            assert_eq!(indent, 4, "{group}: {l}");
            let cut = l.find(['[', '{']).unwrap_or_else(|| panic!("not a node: {l}"));
            let (id, shape) = l.split_at(cut);
            assert!(is_id(id), "node id {id}");
            let (kind, open_len, close) = if shape.starts_with("[(") {
                ("cylinder", 2, ")]")
            } else if shape.starts_with("{{") {
                ("hexagon", 2, "}}")
            } else {
                ("box", 1, "]")
            };
            let (label, rest) = quoted(&shape[open_len..]);
            assert_eq!(rest, close, "{l}");
            assert!(f.nodes.insert(id.to_string(), (kind, label)).is_none(), "node {id} twice");
            members.push(id.to_string());
        }
    }
    assert!(open.is_none(), "unclosed subgraph");
    f
}

#[test]
fn mermaid_passes_the_strict_checker_and_reads_back_as_the_engines_pairs() {
    let r = run(&model(isolate()));
    let f = parse_mermaid(&render_reach(ViewFormat::Mermaid, &r, None));
    let titles: Vec<&str> = f.subgraphs.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(titles, ["namespace data", "namespace shop", "outside the cluster"]);
    let label_of = |id: &str| f.nodes[id].1.clone();
    let by_label: BTreeMap<String, String> = f.nodes.iter().map(|(id, (_, l))| (l.clone(), id.clone())).collect();
    assert_eq!(by_label.len(), f.nodes.len(), "labels are unique");
    assert_eq!(f.nodes[&by_label["StatefulSet pg (database)"]].0, "cylinder");
    assert_eq!(f.nodes[&by_label["Cluster orders-db (database)"]].0, "cylinder");
    assert_eq!(f.nodes[&by_label["0.0.0.0/0"]].0, "hexagon");
    assert_eq!(f.classes.len(), 1);
    let name = |e: &Endpoint| match e {
        Endpoint::Workload(w) => format!("{} {}{}", w.kind, w.name, if marks().is_database(e) { " (database)" } else { "" }),
        Endpoint::External(n) => n.to_string(),
    };
    let got: Vec<(String, String, String)> = f.edges.iter().map(|(a, arrow, l, b)| {
        assert_eq!(arrow, "-->");
        (label_of(a), label_of(b), l.clone())
    }).collect();
    let want: Vec<(String, String, String)> = r.iter().map(|e| (name(e.src), name(e.dst), super::reach::short(e.conn))).collect();
    assert_eq!(got, want);
    assert!(f.link_styles.is_empty());
}

#[test]
fn mermaid_of_a_diff_styles_each_change() {
    let d = the_diff();
    let f = parse_mermaid(&render_diff(ViewFormat::Mermaid, &d));
    assert_eq!(f.edges.len(), d.entries.len());
    for (i, ((_, arrow, label, _), e)) in f.edges.iter().zip(&d.entries).enumerate() {
        let (want_arrow, colour) = match e.change.word() {
            "added" => ("-->", "#2e7d32"),
            "removed" => ("-.->", "#c62828"),
            _ => ("==>", "#ef6c00"),
        };
        assert_eq!(arrow, want_arrow);
        assert!(f.link_styles[&i].contains(colour), "{i}: {:?}", f.link_styles.get(&i));
        assert!(!label.is_empty());
    }
}

#[test]
fn the_mermaid_checker_rejects_what_mermaid_would() {
    for bad in [
        "flowchart LR\n  n0 --> n1\n",
        "flowchart LR\n  subgraph a[\"x\"]\n    n0[\"a\"]\n",
        "flowchart LR\n  subgraph end[\"x\"]\n  end\n",
        "flowchart LR\n  subgraph a[\"x\"]\n    n0[\"a \"b\"]\n  end\n",
        "flowchart LR\n  subgraph a[\"x\"]\n    n0[\"a\"]\n  end\n  linkStyle 0 stroke:red\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse_mermaid(bad)).is_err(), "accepted: {bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// JSON, text, tables, focus.

#[test]
fn json_is_the_engines_serialization_and_reads_back() {
    let r = run(&model(isolate()));
    let back: Vec<ReachEntry> = serde_json::from_str(&render_reach(ViewFormat::Json, &r, None)).unwrap();
    assert_eq!(back, r.to_entries());
    let d = the_diff();
    let v: Value = serde_json::from_str(&render_diff(ViewFormat::Json, &d)).unwrap();
    assert_eq!(v["summary"], json!({"added": 0, "removed": 5, "changed": 13, "losing": 18}));
    assert_eq!(v["removesConnections"], true);
    assert_eq!(v["entries"].as_array().unwrap().len(), d.entries.len());
    let yaml = render_diff(ViewFormat::Yaml, &d);
    assert!(yaml.starts_with("summary:\n"), "{yaml}");
}

#[test]
fn txt_and_tables_of_a_diff() {
    let d = the_diff();
    let txt = render_diff(ViewFormat::Txt, &d);
    assert!(txt.lines().any(|l| l == "~ Deployment/shop/api => StatefulSet/data/pg : All connections -> TCP 5432"), "{txt}");
    assert!(txt.lines().any(|l| l == "- Deployment/shop/web => StatefulSet/data/pg : All connections"), "{txt}");
    assert_eq!(txt.lines().count(), d.entries.len());
    let wide = render_diff(ViewFormat::Wide, &d);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["CHANGE", "SOURCE", "DESTINATION", "BEFORE", "AFTER", "LOST", "GAINED", "DATABASE"]);
    assert!(wide.ends_with("\n0 added, 5 removed, 13 changed: the change removes connections (18 pair(s) lose traffic)\n"), "{wide}");
    assert_eq!(render_diff(ViewFormat::Table, &ReachDiff::default()), "No connection changes.\n");
}

#[test]
fn focus_keeps_pairs_from_or_to_the_workload_in_every_format() {
    let r = run(&model(isolate()));
    let focus: BTreeSet<Endpoint> = [Endpoint::Workload(pg())].into_iter().collect();
    let (_, rows) = csv_records(&render_reach(ViewFormat::Csv, &r, Some(&focus)));
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|row| row["source_name"] == "pg" || row["destination_name"] == "pg"), "{rows:?}");
    let want = r.iter().filter(|e| focus.contains(e.src) || focus.contains(e.dst)).count();
    assert_eq!(rows.len(), want);
    let p = dot::parse(&render_reach(ViewFormat::Dot, &r, Some(&focus)));
    assert_eq!(p.edges.len(), want);
    let nodes: BTreeSet<String> = p.nodes.keys().cloned().collect();
    let ends: BTreeSet<String> = p.edges.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
    assert_eq!(nodes, ends, "only the focus and its peers are drawn");
    let json: Vec<ReachEntry> = serde_json::from_str(&render_reach(ViewFormat::Json, &r, Some(&focus))).unwrap();
    assert_eq!(json.len(), want);
}

#[test]
fn view_formats_map_to_the_shared_ones() {
    assert_eq!(ViewFormat::Json.shared(), Some(crate::OutputFormat::Json));
    assert_eq!(ViewFormat::Dot.shared(), None);
    assert_eq!(ViewFormat::Mermaid.name(), "mermaid");
}

// ---------------------------------------------------------------------------------------------
// Istio ambient: pairs through the HBONE tunnel, marked in every format but txt.

/// api and pg captured by ambient; pg admits TCP 15008 from api (and 5432 from web, which is
/// not captured): api reaches every TCP port of pg through the tunnel, web only 5432.
fn ambient_reach() -> Reach {
    let mut m = model(vec![json!({"metadata": {"name": "pg", "namespace": "data"}, "spec": {"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [
        {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 15008}]},
        {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]}})]);
    for p in &mut m.pods {
        p.ambient = p.name == "api" || p.name == "pg-0";
    }
    run(&m)
}

#[test]
fn hbone_pairs_are_marked_in_every_format_as_the_engine_says() {
    let r = ambient_reach();
    let hbone: Vec<(String, String)> = r.iter().filter(|e| e.hbone).map(|e| (e.src.to_string(), e.dst.to_string())).collect();
    assert!(hbone.contains(&("Deployment/shop/api".to_string(), "StatefulSet/data/pg".to_string())), "{hbone:?}");
    assert!(r.iter().any(|e| !e.hbone), "plain pairs stay plain");
    let is_hbone = |a: &str, b: &str| hbone.contains(&(a.to_string(), b.to_string()));

    let (_, rows) = csv_records(&render_reach(ViewFormat::Csv, &r, None));
    assert_eq!(rows.len(), r.len());
    for row in &rows {
        let (a, b) = (endpoint_of(row, "source").to_string(), endpoint_of(row, "destination").to_string());
        assert_eq!(row["path"], if is_hbone(&a, &b) { "hbone" } else { "direct" }, "{a} -> {b}");
    }

    let p = dot::parse(&render_reach(ViewFormat::Dot, &r, None));
    for (a, b, attrs) in &p.edges {
        let via = is_hbone(a, b);
        assert_eq!(attrs.get("color").map(String::as_str) == Some("#6a1b9a"), via, "{a} -> {b}: {attrs:?}");
        assert_eq!(attrs.get("style").map(String::as_str) == Some("bold"), via);
        assert_eq!(attrs["label"].ends_with(" via HBONE 15008 (ambient)"), via, "{attrs:?}");
    }

    let f = parse_mermaid(&render_reach(ViewFormat::Mermaid, &r, None));
    let by_id: BTreeMap<String, String> = f.nodes.iter().map(|(id, (_, l))| (id.clone(), l.clone())).collect();
    for (i, (a, _, label, b)) in f.edges.iter().enumerate() {
        let e = r.iter().nth(i).unwrap();
        assert!(by_id[a].contains(&match e.src { Endpoint::Workload(w) => w.name.clone(), Endpoint::External(n) => n.to_string() }));
        assert!(by_id[b].contains(&match e.dst { Endpoint::Workload(w) => w.name.clone(), Endpoint::External(n) => n.to_string() }));
        assert_eq!(f.link_styles.get(&i).is_some_and(|s| s.contains("#6a1b9a")), e.hbone, "{label}");
        assert_eq!(label.ends_with("via HBONE 15008 (ambient)"), e.hbone, "{label}");
    }

    let cells: Vec<Vec<String>> = md_tables(&render_reach(ViewFormat::Md, &r, None)).into_iter().flat_map(|(_, rows)| rows.into_iter().skip(1)).collect();
    assert_eq!(cells.len(), r.len());
    for (row, e) in cells.iter().zip(r.iter()) {
        assert_eq!(row[2], if e.hbone { format!("{} via HBONE 15008 (ambient)", e.conn) } else { e.conn.to_string() });
    }

    let back: Vec<ReachEntry> = serde_json::from_str(&render_reach(ViewFormat::Json, &r, None)).unwrap();
    assert_eq!(back, r.to_entries(), "the mark survives JSON");
    let txt = render_reach(ViewFormat::Txt, &r, None);
    assert!(txt.lines().all(|l| !l.contains("HBONE")), "txt keeps the plain shape");
}

// ---------------------------------------------------------------------------------------------
// One explained connection: its single path as DOT and Mermaid, and a Markdown document.

fn explained(src: &str, dst: &str, port: u16) -> (meshmove_netpol::Explanation, Endpoint, Endpoint) {
    let mut m = model(vec![json!({"metadata": {"name": "pg", "namespace": "data"}, "spec": {"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [
        {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 15008}]}]}})]);
    for p in &mut m.pods {
        p.ambient = p.name == "api" || p.name == "pg-0";
    }
    let e = Engine::build(&m, EngineOptions::default()).unwrap();
    let id = |name: &str| e.pods().find(|(_, p)| p.name == name).unwrap().0;
    let x = e.explain(meshmove_netpol::Target::Pod(id(src)), meshmove_netpol::Target::Pod(id(dst)), Protocol::Tcp, port).unwrap();
    (x, Endpoint::Workload(e.pod(id(src)).workload()), Endpoint::Workload(e.pod(id(dst)).workload()))
}

fn render_explained(format: ViewFormat, x: &meshmove_netpol::Explanation, s: &Endpoint, d: &Endpoint) -> String {
    let mut out = Vec::new();
    super::explain::graph(&mut out, format, x, s, d, &marks()).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn an_explained_connection_is_one_edge_between_its_two_ends() {
    let (x, s, d) = explained("api", "pg-0", 5432);
    assert!(x.allowed, "{}", x.verdict);
    let p = dot::parse(&render_explained(ViewFormat::Dot, &x, &s, &d));
    assert_eq!(p.nodes.keys().cloned().collect::<Vec<_>>(), ["Deployment/shop/api", "StatefulSet/data/pg"]);
    assert_eq!(p.nodes["StatefulSet/data/pg"]["shape"], "cylinder");
    let labels: Vec<&str> = p.clusters.iter().map(|(_, l, _)| l.as_str()).collect();
    assert_eq!(labels, ["namespace data", "namespace shop"]);
    assert_eq!(p.edges.len(), 1);
    let (a, b, attrs) = &p.edges[0];
    assert_eq!((a.as_str(), b.as_str()), ("Deployment/shop/api", "StatefulSet/data/pg"));
    assert_eq!(attrs["label"], "TCP 5432: allowed via HBONE 15008 (ambient)");
    assert_eq!((attrs["color"].as_str(), attrs["style"].as_str()), ("#6a1b9a", "bold"));

    let (x, s, d) = explained("web", "pg-0", 5432);
    assert!(!x.allowed);
    let p = dot::parse(&render_explained(ViewFormat::Dot, &x, &s, &d));
    let attrs = &p.edges[0].2;
    assert_eq!((attrs["label"].as_str(), attrs["color"].as_str(), attrs["style"].as_str()), ("TCP 5432: denied", "#c62828", "dashed"));
    let f = parse_mermaid(&render_explained(ViewFormat::Mermaid, &x, &s, &d));
    assert_eq!(f.edges.len(), 1);
    let (from, arrow, label, to) = &f.edges[0];
    assert_eq!((f.nodes[from].1.as_str(), arrow.as_str(), label.as_str(), f.nodes[to].1.as_str()), ("Deployment web", "-.->", "TCP 5432: denied", "StatefulSet pg (database)"));
    assert!(f.link_styles[&0].contains("#c62828"));
    let mut out = Vec::new();
    assert!(super::explain::graph(&mut out, ViewFormat::Csv, &x, &s, &d, &marks()).is_err(), "only graphs here");
}

#[test]
fn an_explanation_as_markdown_reads_back_with_its_verdict_and_sides() {
    let (x, _, _) = explained("api", "pg-0", 5432);
    let text = super::explain::markdown(&x, "deployment/api (pod shop/api)", "statefulset/pg (pod data/pg-0)");
    use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
    let (mut headings, mut items, mut strong, mut in_strong, mut level) = (Vec::new(), 0usize, String::new(), false, None);
    for ev in Parser::new(&text) {
        match ev {
            Event::Start(Tag::Heading { level: l, .. }) => {
                level = Some(l);
                headings.push((l, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => level = None,
            Event::Start(Tag::Item) => items += 1,
            Event::Start(Tag::Strong) => in_strong = true,
            Event::End(TagEnd::Strong) => in_strong = false,
            Event::Text(t) | Event::Code(t) => {
                if level.is_some() {
                    headings.last_mut().unwrap().1.push_str(&t);
                } else if in_strong {
                    strong.push_str(&t);
                }
            }
            _ => {}
        }
    }
    let want = vec![
        (HeadingLevel::H1, "deployment/api (pod shop/api) -> statefulset/pg (pod data/pg-0) on TCP 5432".to_string()),
        (HeadingLevel::H2, format!("Egress of {}: allowed", x.src)),
        (HeadingLevel::H2, format!("Ingress of {}: allowed", x.dst)),
    ];
    assert_eq!(headings, want);
    assert_eq!(strong, "ALLOWED");
    assert!(items >= 3, "the ingress policy, its rule, its peer and ports are listed: {text}");
    assert!(text.contains(&x.verdict) && x.verdict.contains("via HBONE 15008 (ambient)"), "{text}");
}
