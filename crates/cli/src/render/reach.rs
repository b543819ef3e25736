//! Connectivity views: who reaches whom ([`Reach`], the engine's all-pairs answer) and what a
//! change does to it ([`ReachDiff`]), in every `-o` format of `kubectl dbiso reach` and `diff`:
//! a table, `src => dst : conn` lines, JSON and YAML (the engine's serialization), Markdown, CSV,
//! and graphs (Graphviz DOT, Mermaid; see [`super::graph`]) with workloads grouped by namespace
//! and databases marked. Pairs whose traffic goes through Istio ambient's HBONE tunnel (the
//! engine's [`meshmove_netpol::ReachEntry::hbone`]) say so in every format but `txt`, which
//! keeps the plain `src => dst : conn` shape other analyzers write: `via HBONE 15008 (ambient)`
//! after the connection, a `path` column in CSV, a bold purple edge in the graphs.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;
use clap::ValueEnum;
use meshmove_netpol::{Change, Connection, Endpoint, Reach, ReachDiff, WorkloadRef};

use super::graph;
use crate::flags::OutputFormat;

/// `-o` of the connectivity views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ViewFormat {
    /// Aligned table, coloured on a terminal
    #[default]
    Table,
    /// Table with more columns
    Wide,
    /// JSON with a stable schema
    Json,
    /// The same document as YAML
    Yaml,
    /// reach and diff: one `src => dst : conn` line per pair
    Txt,
    /// reach and diff: a Graphviz digraph (namespaces as clusters; `dot -Tsvg` draws it)
    Dot,
    /// reach and diff: a Mermaid flowchart (namespaces as subgraphs)
    Mermaid,
    /// reach and diff: Markdown tables, one per source namespace
    Md,
    /// reach and diff: comma-separated values with a header row
    Csv,
}

impl ViewFormat {
    /// The shared report format this is (table, wide, json, yaml), or `None` for the
    /// connectivity-only ones.
    pub fn shared(self) -> Option<OutputFormat> {
        match self {
            ViewFormat::Table => Some(OutputFormat::Table),
            ViewFormat::Wide => Some(OutputFormat::Wide),
            ViewFormat::Json => Some(OutputFormat::Json),
            ViewFormat::Yaml => Some(OutputFormat::Yaml),
            ViewFormat::Txt | ViewFormat::Dot | ViewFormat::Mermaid | ViewFormat::Md | ViewFormat::Csv => None,
        }
    }

    /// The name as written after `-o`.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

/// What the views mark besides connections.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// Workloads that are databases (drawn as cylinders, named "(database)" in text).
    pub databases: BTreeSet<WorkloadRef>,
}

impl Marks {
    pub fn is_database(&self, e: &Endpoint) -> bool {
        matches!(e, Endpoint::Workload(w) if self.databases.contains(w))
    }
}

/// One pair to show: what is allowed, or how it changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    pub src: &'a Endpoint,
    pub dst: &'a Endpoint,
    pub what: What<'a>,
    /// The traffic goes (in part) through Istio ambient's HBONE tunnel.
    pub hbone: bool,
}

/// What the views add to a connection that goes through the HBONE tunnel.
pub(crate) const VIA_HBONE: &str = "via HBONE 15008 (ambient)";

/// An allowance as the text views write it: the connection, and the tunnel when it is one.
fn allowed_text(c: &Connection, hbone: bool) -> String {
    if hbone { format!("{c} {VIA_HBONE}") } else { c.to_string() }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum What<'a> {
    Allowed(&'a Connection),
    Changed(&'a Change),
    /// One explained connection: its verdict, in words for the edge.
    Verdict { allowed: bool, words: &'a str },
}

/// A connection in few words: `all`, `TCP 5432, UDP 53`, `none`.
pub(crate) fn short(c: &Connection) -> String {
    match c {
        Connection::All => "all".to_string(),
        Connection::Ports(p) if p.is_empty() => "none".to_string(),
        Connection::Ports(p) => p.ranges().iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// The namespace an endpoint is drawn in; `None` for addresses outside the cluster.
pub(crate) fn namespace(e: &Endpoint) -> Option<&str> {
    match e {
        Endpoint::Workload(w) => Some(w.namespace.as_str()),
        Endpoint::External(_) => None,
    }
}

fn touches(focus: Option<&BTreeSet<Endpoint>>, src: &Endpoint, dst: &Endpoint) -> bool {
    focus.is_none_or(|f| f.contains(src) || f.contains(dst))
}

/// Render all-pairs reachability. With `focus`, only pairs from or to one of those endpoints.
pub fn reach(out: &mut dyn Write, format: ViewFormat, reach: &Reach, marks: &Marks, focus: Option<&BTreeSet<Endpoint>>) -> Result<()> {
    let rows: Vec<Row<'_>> = reach
        .iter()
        .filter(|e| touches(focus, e.src, e.dst))
        .map(|e| Row { src: e.src, dst: e.dst, what: What::Allowed(e.conn), hbone: e.hbone })
        .collect();
    // Graphs show every workload, so that isolated ones are seen; narrowed, the focus and its
    // peers.
    let nodes: BTreeSet<&Endpoint> = match focus {
        None => reach.endpoints().iter().collect(),
        Some(f) => rows.iter().flat_map(|r| [r.src, r.dst]).chain(f.iter().filter(|e| reach.endpoints().contains(e))).collect(),
    };
    match format {
        ViewFormat::Json | ViewFormat::Yaml => {
            let entries: Vec<_> = reach.iter().filter(|e| touches(focus, e.src, e.dst)).collect();
            let f = if format == ViewFormat::Json { OutputFormat::Json } else { OutputFormat::Yaml };
            structured(out, f, &entries)
        }
        ViewFormat::Txt => {
            for r in &rows {
                let What::Allowed(c) = r.what else { continue };
                writeln!(out, "{} => {} : {c}", r.src, r.dst)?;
            }
            Ok(())
        }
        ViewFormat::Table | ViewFormat::Wide => {
            if rows.is_empty() {
                writeln!(
                    out,
                    "{}",
                    if focus.is_some() {
                        "No traffic is allowed from or to the workloads in focus."
                    } else {
                        "No traffic is allowed between any two endpoints."
                    }
                )?;
                return Ok(());
            }
            let wide = format == ViewFormat::Wide;
            let mut headers = vec!["SOURCE", "DESTINATION", "ALLOWED"];
            if wide {
                headers.extend(["DATABASE", "PATH"]);
            }
            let table_rows = rows
                .iter()
                .map(|r| {
                    let What::Allowed(c) = r.what else { unreachable!("reach rows are allowances") };
                    if wide {
                        let path = if r.hbone { "HBONE 15008 (ambient)" } else { "direct" };
                        vec![r.src.to_string(), r.dst.to_string(), c.to_string(), database_column(marks, r), path.to_string()]
                    } else {
                        vec![r.src.to_string(), r.dst.to_string(), allowed_text(c, r.hbone)]
                    }
                })
                .collect();
            out.write_all(super::table(&headers, table_rows).as_bytes())?;
            Ok(())
        }
        ViewFormat::Md => Ok(out.write_all(markdown(&rows, marks, "Reachability", None).as_bytes())?),
        ViewFormat::Csv => Ok(out.write_all(csv_reach(&rows, marks)?.as_bytes())?),
        ViewFormat::Dot => Ok(out.write_all(graph::dot(&nodes, &rows, marks, "reachability").as_bytes())?),
        ViewFormat::Mermaid => Ok(out.write_all(graph::mermaid(&nodes, &rows, marks).as_bytes())?),
    }
}

/// `source`, `destination`, `both` or `-`: which end of a row is a database.
fn database_column(marks: &Marks, r: &Row<'_>) -> String {
    match (marks.is_database(r.src), marks.is_database(r.dst)) {
        (true, true) => "both",
        (true, false) => "source",
        (false, true) => "destination",
        (false, false) => "-",
    }
    .to_string()
}

/// Render what a change does to reachability (the diff's entries are already narrowed by
/// `--focus`).
pub fn diff(out: &mut dyn Write, format: ViewFormat, diff: &ReachDiff, marks: &Marks) -> Result<()> {
    let rows: Vec<Row<'_>> = diff.entries.iter().map(|e| Row { src: &e.src, dst: &e.dst, what: What::Changed(&e.change), hbone: false }).collect();
    let nodes: BTreeSet<&Endpoint> = rows.iter().flat_map(|r| [r.src, r.dst]).collect();
    let s = diff.summary();
    let summary = format!(
        "{} added, {} removed, {} changed: {}",
        s.added,
        s.removed,
        s.changed,
        if diff.removes_connections() {
            format!("the change removes connections ({} pair(s) lose traffic)", s.losing)
        } else {
            "the change removes no connection".to_string()
        }
    );
    match format {
        ViewFormat::Json | ViewFormat::Yaml => {
            let f = if format == ViewFormat::Json { OutputFormat::Json } else { OutputFormat::Yaml };
            structured(out, f, diff)
        }
        ViewFormat::Txt => {
            for r in &rows {
                let What::Changed(c) = r.what else { continue };
                match c {
                    Change::Added { after } => writeln!(out, "+ {} => {} : {after}", r.src, r.dst)?,
                    Change::Removed { before } => writeln!(out, "- {} => {} : {before}", r.src, r.dst)?,
                    Change::Changed { before, after } => writeln!(out, "~ {} => {} : {before} -> {after}", r.src, r.dst)?,
                }
            }
            Ok(())
        }
        ViewFormat::Table | ViewFormat::Wide => {
            if rows.is_empty() {
                writeln!(out, "No connection changes.")?;
                return Ok(());
            }
            let wide = format == ViewFormat::Wide;
            let mut headers = vec!["CHANGE", "SOURCE", "DESTINATION", "BEFORE", "AFTER"];
            if wide {
                headers.extend(["LOST", "GAINED", "DATABASE"]);
            }
            let table_rows = rows
                .iter()
                .map(|r| {
                    let What::Changed(c) = r.what else { unreachable!("diff rows are changes") };
                    let mut row = vec![c.word().to_string(), r.src.to_string(), r.dst.to_string(), side(c.before()), side(c.after())];
                    if wide {
                        row.push(c.lost().map_or_else(|| "-".to_string(), |d| d.to_string()));
                        row.push(c.gained().map_or_else(|| "-".to_string(), |d| d.to_string()));
                        row.push(database_column(marks, r));
                    }
                    row
                })
                .collect();
            out.write_all(super::table(&headers, table_rows).as_bytes())?;
            writeln!(out, "\n{summary}")?;
            Ok(())
        }
        ViewFormat::Md => Ok(out.write_all(markdown(&rows, marks, "Connectivity diff", Some(&summary)).as_bytes())?),
        ViewFormat::Csv => Ok(out.write_all(csv_diff(&rows, marks)?.as_bytes())?),
        ViewFormat::Dot => Ok(out.write_all(graph::dot(&nodes, &rows, marks, "connectivity diff").as_bytes())?),
        ViewFormat::Mermaid => Ok(out.write_all(graph::mermaid(&nodes, &rows, marks).as_bytes())?),
    }
}

/// JSON (pretty, trailing newline) or YAML, as [`super::structured`] writes them.
fn structured<T: serde::Serialize + ?Sized>(out: &mut dyn Write, format: OutputFormat, value: &T) -> Result<()> {
    let json = serde_json::to_value(value)?;
    match format {
        OutputFormat::Yaml => out.write_all(meshmove_model::yaml::to_yaml_string(&json).as_bytes())?,
        _ => {
            serde_json::to_writer_pretty(&mut *out, &json)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn side(c: Option<&Connection>) -> String {
    c.map_or_else(|| "-".to_string(), ToString::to_string)
}

/// Markdown: a heading, the summary, then one table per source namespace (addresses outside
/// the cluster last).
fn markdown(rows: &[Row<'_>], marks: &Marks, title: &str, summary: Option<&str>) -> String {
    let mut md = format!("# {title}\n\n");
    if let Some(s) = summary {
        md.push_str(&format!("{s}.\n\n"));
    }
    if rows.is_empty() {
        md.push_str(if summary.is_some() { "No connection changes.\n" } else { "No traffic is allowed between any two endpoints.\n" });
        return md;
    }
    let cell = |e: &Endpoint| {
        let mark = if marks.is_database(e) { " (database)" } else { "" };
        format!("`{e}`{mark}")
    };
    let mut groups: Vec<(Option<&str>, Vec<&Row<'_>>)> = Vec::new();
    for r in rows {
        let ns = namespace(r.src);
        match groups.iter_mut().find(|(g, _)| *g == ns) {
            Some((_, v)) => v.push(r),
            None => groups.push((ns, vec![r])),
        }
    }
    groups.sort_by_key(|(ns, _)| (ns.is_none(), ns.map(str::to_string)));
    for (ns, group) in groups {
        match ns {
            Some(ns) => md.push_str(&format!("## From namespace {ns}\n\n")),
            None => md.push_str("## From outside the cluster\n\n"),
        }
        match group[0].what {
            What::Allowed(_) | What::Verdict { .. } => md.push_str("| Source | Destination | Allowed |\n| --- | --- | --- |\n"),
            What::Changed(_) => md.push_str("| Change | Source | Destination | Before | After |\n| --- | --- | --- | --- | --- |\n"),
        }
        for r in group {
            let line = match r.what {
                What::Allowed(c) => format!("| {} | {} | {} |\n", cell(r.src), cell(r.dst), md_text(&allowed_text(c, r.hbone))),
                What::Verdict { words, .. } => format!("| {} | {} | {} |\n", cell(r.src), cell(r.dst), md_text(words)),
                What::Changed(c) => format!(
                    "| {} | {} | {} | {} | {} |\n",
                    c.word(),
                    cell(r.src),
                    cell(r.dst),
                    md_text(&side(c.before())),
                    md_text(&side(c.after()))
                ),
            };
            md.push_str(&line);
        }
        md.push('\n');
    }
    md
}

/// Text for a Markdown table cell: pipes escaped, line breaks as `<br>` (a cell is one line).
pub(crate) fn md_text(s: &str) -> String {
    s.replace('|', "\\|").replace("\r\n", "<br>").replace('\n', "<br>")
}

/// `kind`, `namespace`, `name` of an endpoint; an address range is kind `External`, its CIDR as
/// name, no namespace.
fn parts(e: &Endpoint) -> [String; 3] {
    match e {
        Endpoint::Workload(w) => [w.kind.to_string(), w.namespace.clone(), w.name.clone()],
        Endpoint::External(n) => ["External".to_string(), String::new(), n.to_string()],
    }
}

const ENDPOINT_COLUMNS: [&str; 8] = [
    "source_kind",
    "source_namespace",
    "source_name",
    "source_database",
    "destination_kind",
    "destination_namespace",
    "destination_name",
    "destination_database",
];

fn endpoint_fields(r: &Row<'_>, marks: &Marks) -> Vec<String> {
    let [sk, sn, sname] = parts(r.src);
    let [dk, dn, dname] = parts(r.dst);
    vec![sk, sn, sname, marks.is_database(r.src).to_string(), dk, dn, dname, marks.is_database(r.dst).to_string()]
}

fn csv_reach(rows: &[Row<'_>], marks: &Marks) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(ENDPOINT_COLUMNS.iter().copied().chain(["allowed", "path"]))?;
    for r in rows {
        let What::Allowed(c) = r.what else { continue };
        let mut rec = endpoint_fields(r, marks);
        rec.push(c.to_string());
        rec.push(if r.hbone { "hbone" } else { "direct" }.to_string());
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

fn csv_diff(rows: &[Row<'_>], marks: &Marks) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["change"].into_iter().chain(ENDPOINT_COLUMNS).chain(["before", "after", "lost", "gained"]))?;
    for r in rows {
        let What::Changed(c) = r.what else { continue };
        let mut rec = vec![c.word().to_string()];
        rec.extend(endpoint_fields(r, marks));
        let opt = |x: Option<String>| x.unwrap_or_default();
        rec.push(opt(c.before().map(ToString::to_string)));
        rec.push(opt(c.after().map(ToString::to_string)));
        rec.push(opt(c.lost().map(|d| d.to_string())));
        rec.push(opt(c.gained().map(|d| d.to_string())));
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
