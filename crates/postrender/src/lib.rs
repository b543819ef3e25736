//! The Helm post-renderer: rendered manifests in, the same manifests with mesh labels, probes and
//! NetworkPolicies out.
//!
//! Rules it keeps, whatever the chart:
//! - documents it does not change are copied byte for byte (comments, `# Source:` lines, quoting,
//!   order); changed documents keep their leading comment lines and key order and are re-emitted
//!   with YAML 1.1-safe quoting (comments *inside* a changed document are not kept);
//! - nothing already present is overwritten, and running it again over its own output yields the
//!   same bytes (generated policies are recognised by name and not generated twice);
//! - generated objects are derived only from non-hook documents, so a hook-only run (Helm 4 may
//!   post-render hooks separately) generates nothing;
//! - any error (invalid YAML, a document that is not a mapping, bad configuration) fails the whole
//!   run with a message naming the document and its `# Source:`, and **nothing** is written to
//!   stdout: Helm would otherwise install a partial release.

pub mod config;
pub mod inject;
mod links;
mod output;
mod plan;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

pub use config::{ConfigError, PostRenderConfig};
pub use output::Output;
use output::Stored;

use crate::inject::{Injection, at};
use meshmove_model::inventory::{Inventory, Object, Origin, kinds};
use meshmove_isolation::policies;
use meshmove_model::workload::{WORKLOAD_KINDS, template_pointer};
use meshmove_model::yaml::{self, YamlError};
use plan::Plan;

/// Helm 4 annotates every document with the file it came from; generated documents get one too
/// so Helm can place them.
pub const HELM4_FILENAME_ANNOTATION: &str = "postrenderer.helm.sh/postrender-filename";
/// `# Source:` path (and Helm 4 file name) of generated documents.
pub const GENERATED_SOURCE: &str = "mesh-migrate/networkpolicies.yaml";

/// Why a stream could not be post-rendered. Every variant names the document (its 1-based
/// position in the stream) and, when it can be told, the template it came from.
#[derive(Debug, thiserror::Error)]
pub enum PostRenderError {
    /// A document is not valid YAML (or not valid for Kubernetes' YAML reader).
    #[error("document {}{}, line {}, column {}: {}", .yaml.document, origin_suffix(.origin), .yaml.line, .yaml.column, .yaml.message)]
    Yaml { yaml: Box<YamlError>, origin: Option<DocumentOrigin> },
    /// A document is valid YAML but not something a manifest stream may hold.
    #[error("document {index}{}: {problem}", origin_suffix(.origin))]
    Document { index: usize, origin: Option<DocumentOrigin>, problem: String },
}

/// The template a document came from, as the stream says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentOrigin {
    /// Helm's `# Source: <path>` comment at the top of the document (`helm template`, Helm 3).
    Source(String),
    /// Helm 4's `postrenderer.helm.sh/postrender-filename` annotation (Helm 4 writes no
    /// `# Source:` lines into the post-renderer's input).
    Helm4Filename(String),
}

impl std::fmt::Display for DocumentOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentOrigin::Source(path) => write!(f, "# Source: {path}"),
            DocumentOrigin::Helm4Filename(path) => write!(f, "{HELM4_FILENAME_ANNOTATION}: {path}"),
        }
    }
}

fn origin_suffix(origin: &Option<DocumentOrigin>) -> String {
    origin.as_ref().map(|o| format!(" ({o})")).unwrap_or_default()
}

/// Where a document came from: its `# Source:` comment, else its Helm 4 file-name annotation,
/// read from the parsed object when there is one, else found by a line scan of the text (so a
/// document that does not parse is still named).
pub fn document_origin(raw: &yaml::RawDocument<'_>, value: Option<&Value>) -> Option<DocumentOrigin> {
    if let Some(source) = &raw.source {
        return Some(DocumentOrigin::Source(source.clone()));
    }
    value
        .and_then(|v| annotation(v, HELM4_FILENAME_ANNOTATION))
        .map(str::to_string)
        .or_else(|| scan_helm4_filename(raw.text))
        .filter(|f| !f.is_empty())
        .map(DocumentOrigin::Helm4Filename)
}

/// The value of the first `postrenderer.helm.sh/postrender-filename` key in `text`, read line
/// by line without parsing: block style (`key: 'value'`, as Helm 4 writes it, or plain or
/// double-quoted) and flow style (`{"key": "value", ...}`). Only for error messages: the text is
/// a document that failed to parse, so it is read leniently.
fn scan_helm4_filename(text: &str) -> Option<String> {
    for line in text.lines() {
        let Some(at) = line.find(HELM4_FILENAME_ANNOTATION) else { continue };
        let rest = &line[at + HELM4_FILENAME_ANNOTATION.len()..];
        // The key may be quoted; the value follows the `:`.
        let rest = rest.strip_prefix(['"', '\'']).unwrap_or(rest).trim_start();
        let Some(value) = rest.strip_prefix(':') else { continue };
        let value = value.trim_start();
        let found = if let Some(v) = value.strip_prefix('\'') {
            // Single quotes: `''` is an escaped quote.
            let mut out = String::new();
            let mut chars = v.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        out.push('\'');
                        continue;
                    }
                    break;
                }
                out.push(c);
            }
            out
        } else if let Some(v) = value.strip_prefix('"') {
            // Double quotes: keep escaped characters as written, minus the backslash.
            let mut out = String::new();
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        } else {
            // Plain: up to a comment, or the end of a flow entry.
            let end = [value.find(" #"), value.find(','), value.find('}')].into_iter().flatten().min().unwrap_or(value.len());
            value[..end].trim_end().to_string()
        };
        if !found.is_empty() {
            return Some(found);
        }
    }
    None
}

/// What the run did, for `--report`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub documents: usize,
    pub changed: usize,
    /// 1-based stream positions of the re-emitted documents.
    pub changed_documents: Vec<usize>,
    pub injections: Vec<Injection>,
    /// Names of generated NetworkPolicies.
    pub generated: Vec<String>,
    /// The generated policies with what each admits. Their objects are in the output, not here
    /// (`object` is null and `authorization` none), so the summary of a large stream stays small.
    pub policies: Vec<policies::Generated>,
    /// Workloads left without a policy, why, and how to isolate them anyway.
    pub withheld: Vec<policies::Withheld>,
    /// Connections in use the policies cut on purpose (a service using another's database).
    pub cuts: Vec<policies::Cut>,
    /// Warnings about the policy configuration.
    pub notes: Vec<String>,
}

/// The result: the full output stream and a summary.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub output: String,
    pub summary: Summary,
}

/// The result with the output as pieces of the input ([`Output`]): nothing of the input is
/// copied until the output is written, so a large stream is held once.
#[derive(Debug, Clone)]
pub struct RenderedParts<'a> {
    pub output: Output<'a>,
    pub summary: Summary,
}

/// Post-render a stream. Pure: no I/O, so callers decide where output goes (and that on error
/// nothing is written).
///
/// Cost ([`plan`]): every document is scanned; those of kinds nothing reads (CRDs, ConfigMaps
/// no workload names, custom resources) are copied after the scan has checked them, the others
/// are parsed once, in stream order; only the documents that change are re-emitted, and only
/// workloads are copied (the copy gets the injections; the original feeds policy generation).
/// Memory stays proportional to the stream: the objects of a large stream beyond
/// [`plan::KEEP_PARSED_BYTES`] are read again, one release group at a time, when their policies
/// are generated, and generated policies are kept as text.
pub fn post_render(input: &str, cfg: &PostRenderConfig) -> Result<Rendered, PostRenderError> {
    let parts = post_render_parts(input, cfg)?;
    Ok(Rendered { output: parts.output.into_string(), summary: parts.summary })
}

/// [`post_render`] with the output as pieces of the input, for callers that write it out.
pub fn post_render_parts<'a>(input: &'a str, cfg: &PostRenderConfig) -> Result<RenderedParts<'a>, PostRenderError> {
    render(input, cfg, Reading { scan: true, keep_bytes: plan::KEEP_PARSED_BYTES })
}

/// How much of the stream the run reads: tests compare the economical reading with parsing
/// every document and keeping every object.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Copy documents the scan shows nothing reads (else parse every document).
    scan: bool,
    /// Keep parsed objects up to this many bytes of their text; read the rest again later.
    keep_bytes: usize,
}

/// The document's node, refused unless it is a mapping (errors name the document).
fn read(raw: &yaml::RawDocument<'_>) -> Result<Option<Value>, PostRenderError> {
    let value = yaml::parse_document(raw).map_err(|yaml| PostRenderError::Yaml { origin: document_origin(raw, None), yaml: Box::new(yaml) })?;
    if let Some(v) = &value
        && !v.is_object()
    {
        return Err(PostRenderError::Document {
            index: raw.index,
            origin: document_origin(raw, None),
            problem: format!("expected a mapping (a Kubernetes object), found {}", kind_of(v)),
        });
    }
    Ok(value)
}

fn render<'a>(input: &'a str, cfg: &PostRenderConfig, reading: Reading) -> Result<RenderedParts<'a>, PostRenderError> {
    let raws = yaml::split_stream(input);
    let plans: Vec<Plan> = raws.iter().map(|raw| if reading.scan { plan::plan(raw, cfg) } else { Plan::Parse }).collect();
    // ConfigMaps and Secrets are read when a workload names them.
    let deferred: HashSet<&str> = plans.iter().filter_map(|p| if let Plan::Defer(name) = p { Some(name.as_str()) } else { None }).collect();
    let mut named: HashSet<&str> = HashSet::new();

    let mut summary = Summary { documents: raws.len(), ..Summary::default() };
    let mut helm4 = false;
    let mut output = Output::new(input);
    let label_opts = cfg.label_options();
    let mut existing: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    let mut existing_authz: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    // What generation reads, in stream order (most documents have nothing here).
    let mut objects: Vec<Classified> = Vec::new();
    let mut releases = Releases::default();
    let mut kept = 0usize;
    for (i, (raw, plan)) in raws.iter().zip(&plans).enumerate() {
        let value = match plan {
            Plan::Parse => read(raw)?,
            Plan::Copy | Plan::Defer(_) => None,
        };
        let Some(value) = value else {
            output.push_input(raw.span.clone());
            continue;
        };
        helm4 |= annotation(&value, HELM4_FILENAME_ANNOTATION).is_some();
        inject_document(&value, raw, cfg, &label_opts, &mut summary, &mut output);
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = at(&value, "/metadata/name").and_then(Value::as_str).unwrap_or_default();
        if kind == "NetworkPolicy" {
            let ns = at(&value, "/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            existing.insert((ns, name.to_string()));
        } else if kind == "AuthorizationPolicy" {
            let ns = at(&value, "/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            existing_authz.insert((ns, name.to_string()));
        }
        if !cfg.inject.network_policies {
            continue;
        }
        if !deferred.is_empty() && plan::names_inputs(&value) {
            plan::mark_named(&value, &deferred, &mut named);
        }
        objects.extend(classify(i, value, raw.text.len(), &mut releases, &mut kept, reading.keep_bytes));
    }

    let mut generation = Generated::default();
    if cfg.inject.network_policies {
        let mut read_late = false;
        for (i, (raw, plan)) in raws.iter().zip(&plans).enumerate() {
            if let Plan::Defer(name) = plan
                && named.contains(name.as_str())
                && let Some(value) = read(raw)?
            {
                helm4 |= annotation(&value, HELM4_FILENAME_ANNOTATION).is_some();
                objects.extend(classify(i, value, raw.text.len(), &mut releases, &mut kept, reading.keep_bytes));
                read_late = true;
            }
        }
        if read_late {
            // In stream order, as generation has always seen them.
            objects.sort_by_key(|c| c.doc);
        }
        if !helm4 {
            helm4 = helm4_in_unread(&raws, &plans, &objects)?;
        }
        generation = generate(&raws, objects, &releases, cfg, helm4, &mut output)?;
    }
    summary.withheld = generation.withheld;
    summary.cuts = generation.cuts;
    summary.notes = generation.notes;
    if cfg.inject.network_policies && cfg.network_policies.database_isolation {
        // A configured client of a database the stream does not run is reported (a typo, or a
        // run over hooks only), not an error: the same configuration serves every run.
        for (i, c) in cfg.network_policies.database_clients.iter().enumerate() {
            if !generation.databases.contains(&c.database) {
                summary.injections.push(Injection {
                    workload: format!("networkPolicies.databaseClients[{i}]"),
                    container: None,
                    change: format!("not used: no database `{}` in this stream", c.database),
                    skipped: true,
                });
            }
        }
    }
    for Written { policy: g, text, authorization } in generation.policies {
        // Not twice: neither a policy the input already has (a second run over our own output)
        // nor one generated for another release of the stream under the same name.
        let ns = (!g.namespace.is_empty()).then(|| g.namespace.clone());
        if !existing.insert((ns, g.name.clone())) {
            continue;
        }
        // The ambient companion goes with its NetworkPolicy, once.
        let authz_key = ((!g.namespace.is_empty()).then(|| g.namespace.clone()), g.name.clone());
        let companion = authorization.filter(|_| existing_authz.insert(authz_key));
        for text in std::iter::once(text).chain(companion) {
            // Helm splits manifests only at a `---` that follows a `\n` (a bare `\r` line end of
            // the last input document becomes `\r\n`).
            if !output.is_empty() && !output.ends_with_newline() {
                output.push_new("\n");
            }
            output.push_stored(text);
        }
        summary.generated.push(g.name.clone());
        summary.policies.push(g);
    }
    Ok(RenderedParts { output, summary })
}

/// Mesh labels and probes for one parsed document (a workload gets them on a copy; the original
/// feeds policy generation), and the document's text in the output: as it was, or re-emitted.
fn inject_document(
    value: &Value,
    raw: &yaml::RawDocument<'_>,
    cfg: &PostRenderConfig,
    label_opts: &inject::LabelOptions,
    summary: &mut Summary,
    output: &mut Output<'_>,
) {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = at(value, "/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let Some(ptr) = template_pointer(kind).filter(|_| !name.is_empty() && (cfg.inject.labels || cfg.inject.probes)) else {
        output.push_input(raw.span.clone());
        return;
    };
    let mut changed = value.clone();
    let mut done = Vec::new();
    if cfg.inject.labels {
        done.extend(inject::inject_labels(&mut changed, kind, name, ptr, label_opts));
    }
    if cfg.inject.probes {
        done.extend(inject::inject_probes(&mut changed, &format!("{kind}/{name}"), ptr, &cfg.probes.for_workload(name)));
    }
    if &changed == value {
        output.push_input(raw.span.clone());
    } else {
        summary.changed += 1;
        summary.changed_documents.push(raw.index);
        output.push_with(|s| push_reemitted(s, raw.text, &changed));
    }
    summary.injections.extend(done);
}

/// Whether a document the run did not parse carries Helm 4's file-name annotation (then
/// generated documents get it too). Only looked for when no parsed document has it: Helm 4
/// annotates every document, so this reads nothing in a Helm 4 stream, and in a Helm 3 stream
/// only searches the unread texts for the key.
fn helm4_in_unread(raws: &[yaml::RawDocument<'_>], plans: &[Plan], objects: &[Classified]) -> Result<bool, PostRenderError> {
    let read_late: HashSet<usize> = objects.iter().map(|c| c.doc).filter(|i| matches!(plans[*i], Plan::Defer(_))).collect();
    for (i, (raw, plan)) in raws.iter().zip(plans).enumerate() {
        let unread = matches!(plan, Plan::Copy) || (matches!(plan, Plan::Defer(_)) && !read_late.contains(&i));
        if unread
            && raw.text.contains(HELM4_FILENAME_ANNOTATION)
            && read(raw)?.is_some_and(|v| annotation(&v, HELM4_FILENAME_ANNOTATION).is_some())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The input with the documents the run changed re-emitted unchanged, so that a diff against
/// the output shows what was injected and nothing of the re-emission's formatting (indentation of
/// sequences, quoting). Not on the hot path: only `--diff` calls it.
pub fn normalized_input(input: &str, summary: &Summary) -> Result<String, PostRenderError> {
    let mut out = String::with_capacity(input.len());
    for raw in yaml::split_stream(input) {
        match yaml::parse_document(&raw).map_err(|yaml| PostRenderError::Yaml { origin: document_origin(&raw, None), yaml: Box::new(yaml) })? {
            Some(value) if summary.changed_documents.contains(&raw.index) => push_reemitted(&mut out, raw.text, &value),
            _ => out.push_str(raw.text),
        }
    }
    Ok(out)
}

/// Re-emit a changed document in place of its chunk `text`, keeping what is not content:
///
/// * the head: leading blank, comment and directive lines, a BOM, and the `---` line (a `---`
///   line that also carries a node, `--- {a: 1}` or `--- !!map`, becomes a bare `---` line, so
///   the document stays separated from the previous one);
/// * the tail: a `...` document-end line and the blank and comment lines after it. The chunk
///   after a `...` may start without `---` (a bare document, or `%` directives), so dropping
///   the `...` would merge the two documents.
///
/// A chunk without a `---` line is the first document or follows an explicit `...` end (kept
/// with the previous chunk), so it needs no separator either way.
fn push_reemitted(output: &mut String, text: &str, value: &Value) {
    let mut head_end = 0;
    let mut marker_with_node = false;
    for (start, line) in lines(text) {
        let line = if start == 0 { line.strip_prefix('\u{feff}').unwrap_or(line) } else { line };
        if is_marker(line, "---") {
            let after = line[3..].trim_start_matches([' ', '\t']);
            if !after.is_empty() && !after.starts_with('#') {
                marker_with_node = true;
                break;
            }
        } else {
            let trimmed = line.trim_start_matches([' ', '\t']);
            if !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%')) {
                break;
            }
        }
        head_end = start + line_len_with_break(&text[start..]);
    }
    output.push_str(&text[..head_end]);
    if marker_with_node {
        output.push_str("---\n");
    }
    yaml::write_yaml(output, value);
    // `split_stream` ends a chunk at its first `...` line; what follows in the chunk is blank or
    // comment lines. A `...` line cannot be document content. (Most chunks have none: look
    // line by line only when the text has one at some line start.)
    let has_end = text.starts_with("...") || text.contains("\n...") || text.contains("\r...");
    if let Some((start, _)) = lines(text).filter(|_| has_end).find(|(start, line)| *start >= head_end && is_marker(line, "...")) {
        output.push_str(&text[start..]);
    }
}

/// Lines of `text` without their breaks (LF, CRLF or a lone CR, as YAML has them), with their
/// byte offsets.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        let rest = &text[start..];
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        pos = start + line_len_with_break(rest);
        Some((start, &rest[..end]))
    })
}

/// Length of the first line of `text` including its break.
fn line_len_with_break(text: &str) -> usize {
    match text.find(['\n', '\r']) {
        None => text.len(),
        Some(i) if text[i..].starts_with("\r\n") => i + 2,
        Some(i) => i + 1,
    }
}

/// `---` or `...` at column 0 followed by a blank or the end of the line (the splitter's rule).
fn is_marker(line: &str, marker: &str) -> bool {
    line.starts_with(marker) && matches!(line.as_bytes().get(3), None | Some(b' ' | b'\t'))
}

/// What generation leaves for the output.
#[derive(Default)]
struct Generated {
    /// In emission order (by name).
    policies: Vec<Written>,
    withheld: Vec<policies::Withheld>,
    cuts: Vec<policies::Cut>,
    notes: Vec<String>,
    /// Names of the databases found, when database clients are configured.
    databases: BTreeSet<String>,
}

/// A generated policy as the output will have it: its document (and its ambient companion's),
/// written as soon as its release group is done so the objects do not pile up.
struct Written {
    /// The policy and what it admits; its `object` and `authorization` are in `text` and
    /// `authorization` below (left empty here).
    policy: policies::Generated,
    text: Stored,
    authorization: Option<Stored>,
}

/// A generated object as its document of the output (`---`, `# Source:`, the YAML), with Helm 4's
/// file-name annotation when the stream has it, kept in the output until placed.
fn written(mut object: Value, helm4: bool, output: &mut Output<'_>) -> Stored {
    if helm4 && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("annotations".into(), serde_json::json!({HELM4_FILENAME_ANNOTATION: GENERATED_SOURCE}));
    }
    output.store_with(|text| {
        text.push_str("---\n# Source: ");
        text.push_str(GENERATED_SOURCE);
        text.push('\n');
        yaml::write_yaml(text, &object);
    })
}

/// NetworkPolicies for the workloads of `docs` (which it takes over: no object is copied unless
/// several releases share it, below). Helm hooks are read as clients (a migration Job connects
/// to its database) but never get a policy.
///
/// A post-renderer sees one release, and its objects usually all carry the release's
/// `app.kubernetes.io/instance` label. A stream can hold several releases, though
/// (`helmfile template`, or several `helm template` outputs piped together). Then, unless a
/// release name is configured, each release is handled as if it were post-rendered on its own:
/// its policies are named and labelled after it, and "workloads of the same release" means
/// its own workloads, never those of the other releases (which would open every release to all
/// the others, and make the output grow with the square of the stream). See [`release_groups`].
/// Groups are generated one after the other, each from its own objects (read again if they
/// were dropped after the first pass), so only one group's objects are held at a time.
fn generate(
    raws: &[yaml::RawDocument<'_>],
    mut objects: Vec<Classified>,
    releases: &Releases,
    cfg: &PostRenderConfig,
    helm4: bool,
    output: &mut Output<'_>,
) -> Result<Generated, PostRenderError> {
    let mut out = Generated::default();
    let mut policies_out: Vec<Written> = Vec::new();
    let clients = cfg.network_policies.database_isolation && !cfg.network_policies.database_clients.is_empty();
    let (groups, pool) = release_groups(&objects, releases, cfg.release.as_deref());
    // Each object belongs to one group; a group also reads the objects linked to it (`links`).
    let context = if groups.len() > 1 || !pool.is_empty() {
        let own: Vec<Vec<usize>> = groups.iter().map(|(_, m)| m.clone()).collect();
        let facts: Vec<links::Facts> = objects.iter_mut().map(|c| std::mem::take(&mut c.facts)).collect();
        let workload: Vec<bool> = objects.iter().map(|c| c.workload).collect();
        links::context(&own, &pool, &facts, &workload, cfg.network_policies.egress)
    } else {
        vec![Vec::new(); groups.len()]
    };
    let docs: Vec<usize> = objects.iter().map(|c| c.doc).collect();
    let workload: Vec<bool> = objects.iter().map(|c| c.workload).collect();
    let mut values: Vec<Option<Value>> = objects.into_iter().map(|c| c.value).collect();
    for ((release, members), context) in groups.into_iter().zip(context) {
        let mut group = Vec::with_capacity(members.len() + context.len());
        let mut own_refs = HashSet::new();
        for i in members {
            let raw = &raws[docs[i]];
            let value = match values[i].take() {
                Some(v) => v,
                None => read(raw)?.ok_or_else(|| missing(raw))?,
            };
            let object = object_of(value, raw).ok_or_else(|| missing(raw))?;
            own_refs.insert(object.object_ref());
            group.push(object);
        }
        // Objects of other groups and of none that this group's generation must see: cloned
        // while kept, else read again; a workload among them is a client, never a subject.
        let mut callers = HashSet::new();
        for i in context {
            let raw = &raws[docs[i]];
            let value = match &values[i] {
                Some(v) => v.clone(),
                None => read(raw)?.ok_or_else(|| missing(raw))?,
            };
            let object = object_of(value, raw).ok_or_else(|| missing(raw))?;
            if own_refs.contains(&object.object_ref()) {
                continue;
            }
            if workload[i] {
                callers.insert(object.object_ref());
            }
            group.push(object);
        }
        let inventory = Inventory::from_files(group, vec!["-".into()], "default".into());
        if clients {
            out.databases.extend(meshmove_isolation::discover::databases(&inventory).into_iter().map(|d| d.object.name));
        }
        let req = policies::Request {
            subjects: policies::Subjects::Release,
            release: &release,
            mode: Some(cfg.mode),
            options: &cfg.network_policies,
            labels: serde_json::json!({policies::GENERATED_LABEL: "true", policies::RELEASE_LABEL: release}),
            namespace: cfg.release_namespace.as_deref(),
        };
        let generation = policies::generate_with_context(&inventory, &req, &callers);
        drop(inventory);
        out.withheld.extend(generation.withheld);
        out.cuts.extend(generation.cuts);
        out.notes.extend(generation.notes);
        for mut g in generation.policies {
            let text = written(std::mem::take(&mut g.object), helm4, output);
            let authorization = g.authorization.take().map(|a| written(a, helm4, output));
            policies_out.push(Written { policy: g, text, authorization });
        }
    }
    // A stable sort: policies of one name keep the order of their groups.
    policies_out.sort_by(|a, b| a.policy.name.cmp(&b.policy.name));
    out.policies = policies_out;
    Ok(out)
}

/// An object's document must parse again as it did in the first pass.
fn missing(raw: &yaml::RawDocument<'_>) -> PostRenderError {
    PostRenderError::Document { index: raw.index, origin: document_origin(raw, None), problem: "read differently the second time".into() }
}

/// A document policy generation reads, with what [`release_groups`] needs to know about it.
/// The object itself is built only when its group is generated ([`object_of`]).
struct Classified {
    /// Its position in the stream.
    doc: usize,
    /// A top-level workload, as [`meshmove_model::workload::workloads`] counts them.
    workload: bool,
    /// An object policy generation may give a policy of its own: a top-level workload or a
    /// CloudNativePG cluster.
    subject: bool,
    /// [`policies::release_label`], by its number in [`Releases`].
    release: Option<usize>,
    /// The parsed document, while the objects kept stay within the budget (else it is read
    /// again when its group is generated).
    value: Option<Value>,
    /// What links it to the objects of other release groups.
    facts: links::Facts,
}

/// Release names, numbered in order of appearance.
#[derive(Default)]
struct Releases {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Releases {
    fn number(&mut self, name: &str) -> usize {
        if let Some(&n) = self.index.get(name) {
            return n;
        }
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }
}

/// The object generation reads of a parsed document, as generation has always built it: `None`
/// for a document without a string `apiVersion`, `kind` and `metadata.name`.
fn object_of(v: Value, raw: &yaml::RawDocument<'_>) -> Option<Object> {
    let api_version = v.get("apiVersion")?.as_str()?.to_string();
    let kind = v.get("kind")?.as_str()?.to_string();
    let name = at(&v, "/metadata/name")?.as_str()?.to_string();
    let known = kinds::lookup(&api_version, &kind);
    // Helm leaves the namespace to install time: objects without one are in the release
    // namespace, written "" here so references between them resolve, and never emitted.
    let namespace = at(&v, "/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| known.filter(|k| k.namespaced).map(|_| String::new()));
    Some(Object { api_version, kind, namespace, name, value: v, origin: Origin::Stdin { line: raw.line, helm_source: raw.source.clone() }, pod: None })
}

/// What generation needs to know about document `doc` (its text `text_len` bytes long) before
/// its group is generated (`None` if generation does not read it, see [`object_of`]); its value
/// is kept while `kept` (the text of the values kept so far) stays within `keep_bytes`.
fn classify(doc: usize, v: Value, text_len: usize, releases: &mut Releases, kept: &mut usize, keep_bytes: usize) -> Option<Classified> {
    let api_version = v.get("apiVersion")?.as_str()?;
    let kind = v.get("kind")?.as_str()?;
    at(&v, "/metadata/name")?.as_str()?;
    let known = kinds::lookup(api_version, kind);
    let workload = known.is_some_and(|k| WORKLOAD_KINDS.contains(&k)) && is_top_level_workload(&v, kind);
    let subject = workload || known == Some(&kinds::CNPG_CLUSTER);
    let facts = links::Facts::of(&v, kind, workload);
    // `release_label` reads the object's value only: no need to build the object for it.
    let probe = Object { api_version: String::new(), kind: String::new(), namespace: None, name: String::new(), value: v, origin: Origin::Stdin { line: 0, helm_source: None }, pod: None };
    let release = policies::release_label(&probe).map(|r| releases.number(r));
    let v = probe.value;
    // The text a value was parsed from stands for its size.
    let value = (*kept + text_len <= keep_bytes).then(|| {
        *kept += text_len;
        v
    });
    Some(Classified { doc, workload, subject, release, value, facts })
}

/// Splits the stream's objects by release, each group with the release name its policies get
/// and its objects (indices into `objects`), and the objects of no group.
///
/// * A configured release name, or at most one release named by the top-level workloads'
///   release labels (`app.kubernetes.io/instance`, else `release`): one group of everything,
///   named by the configuration, else by that label (else unnamed).
/// * Several: a group per release named by workloads. An object whose release label names one
///   of them goes to that group. An unlabelled workload or CloudNativePG cluster (the objects
///   that get policies) goes to the most common release ([`policies::infer_release`]'s
///   choice), so it gets exactly one policy; any other object without such a label (a shared
///   Secret, a Service, an Ingress) belongs to no group: it is read by the groups it is linked
///   to ([`links`]).
fn release_groups(objects: &[Classified], releases: &Releases, configured: Option<&str>) -> (Vec<(String, Vec<usize>)>, Vec<usize>) {
    let name = |c: &Classified| c.release.map(|r| releases.names[r].as_str());
    let most_common = policies::most_common_first(objects.iter().filter(|c| c.workload).filter_map(name));
    if configured.is_some() || most_common.len() <= 1 {
        let group = configured.map(str::to_string).or_else(|| most_common.first().map(|(r, _)| r.clone())).unwrap_or_default();
        return (vec![(group, (0..objects.len()).collect())], Vec::new());
    }
    let index: BTreeMap<&str, usize> = most_common.iter().enumerate().map(|(i, (r, _))| (r.as_str(), i)).collect();
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); most_common.len()];
    let mut pool = Vec::new();
    for (i, c) in objects.iter().enumerate() {
        match name(c).and_then(|r| index.get(r).copied()) {
            Some(g) => groups[g].push(i),
            // The most common release comes first.
            None if c.subject => groups[0].push(i),
            None => pool.push(i),
        }
    }
    (most_common.into_iter().map(|(r, _)| r).zip(groups).collect(), pool)
}

/// Whether an object of a workload kind is a top-level workload: it has a pod template and no
/// controller of a workload kind (the rule of [`meshmove_model::workload::workloads`], read without
/// building a [`meshmove_model::workload::Workload`]).
fn is_top_level_workload(value: &Value, kind: &str) -> bool {
    let has_template = template_pointer(kind).is_some_and(|ptr| at(value, ptr).is_some());
    let owner_kind = at(value, "/metadata/ownerReferences").and_then(Value::as_array).and_then(|refs| {
        refs.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)).or_else(|| refs.first())
    });
    // `workload::owner` needs the reference's kind and name to be strings to count it.
    let owned_by_workload = owner_kind
        .filter(|r| r.get("name").and_then(Value::as_str).is_some())
        .and_then(|r| r.get("kind").and_then(Value::as_str))
        .is_some_and(|k| template_pointer(k).is_some());
    has_template && !owned_by_workload
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    at(v, "/metadata/annotations")?.get(key)?.as_str()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_DOC: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'app/templates/cm.yaml'\n";

    fn err(input: &str) -> PostRenderError {
        post_render(input, &PostRenderConfig::default()).expect_err("input is bad")
    }

    #[test]
    fn helm4_document_that_does_not_parse_is_named_by_its_annotation() {
        // As Helm 4 sends it: no `# Source:` lines, the annotation last in `metadata`; the
        // broken part comes after the annotation, so the document as a whole does not parse.
        let input = format!(
            "{OK_DOC}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'app/templates/deploy.yaml'\nspec:\n  template: [unclosed\n"
        );
        let e = err(&input);
        let PostRenderError::Yaml { yaml, origin } = &e else { panic!("{e:?}") };
        assert_eq!(yaml.document, 2);
        assert_eq!(origin, &Some(DocumentOrigin::Helm4Filename("app/templates/deploy.yaml".into())));
        let msg = e.to_string();
        assert!(
            msg.starts_with("document 2 (postrenderer.helm.sh/postrender-filename: app/templates/deploy.yaml), line 15, column "),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_keys_in_a_helm4_document_are_named_too() {
        let input = format!(
            "{OK_DOC}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  name: t\n  annotations:\n    postrenderer.helm.sh/postrender-filename: app/templates/secret.yaml\n"
        );
        let msg = err(&input).to_string();
        assert!(
            msg.starts_with("document 2 (postrenderer.helm.sh/postrender-filename: app/templates/secret.yaml), line 12, column 3: at key metadata.name: duplicate"),
            "{msg}"
        );
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_named_by_its_annotation() {
        let input = format!(
            "{OK_DOC}---\n- metadata:\n    annotations:\n      postrenderer.helm.sh/postrender-filename: 'app/templates/list.yaml'\n"
        );
        let e = err(&input);
        assert!(matches!(&e, PostRenderError::Document { index: 2, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "document 2 (postrenderer.helm.sh/postrender-filename: app/templates/list.yaml): expected a mapping (a Kubernetes object), found a sequence"
        );
        // A scalar document carries no annotation: only its position is known.
        assert_eq!(
            err(&format!("{OK_DOC}---\njust a string\n")).to_string(),
            "document 2: expected a mapping (a Kubernetes object), found a string"
        );
    }

    #[test]
    fn source_comment_wins_over_the_annotation() {
        let input = "---\n# Source: app/templates/x.yaml\nmetadata:\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'other.yaml'\n  bad: [\n";
        let msg = err(input).to_string();
        assert!(msg.starts_with("document 1 (# Source: app/templates/x.yaml), line "), "{msg}");
        let msg = err("---\n# Source: app/templates/l.yaml\n- 1\n").to_string();
        assert_eq!(msg, "document 1 (# Source: app/templates/l.yaml): expected a mapping (a Kubernetes object), found a sequence");
    }

    #[test]
    fn without_any_origin_the_position_alone_is_given() {
        let msg = err("a: 1\n---\nb: [\n").to_string();
        assert!(msg.starts_with("document 2, line 3, column "), "{msg}");
    }

    #[test]
    fn filename_scan_reads_every_quoting_and_flow_style() {
        let k = HELM4_FILENAME_ANNOTATION;
        for (text, want) in [
            (format!("    {k}: 'a/t/x.yaml'\n"), Some("a/t/x.yaml")),
            (format!("    {k}: 'it''s.yaml'\n"), Some("it's.yaml")),
            (format!("    {k}: \"a/t/\\\"q\\\".yaml\"\n"), Some("a/t/\"q\".yaml")),
            (format!("    {k}: a/t/plain.yaml # comment\n"), Some("a/t/plain.yaml")),
            (format!("    \"{k}\": a/t/quoted-key.yaml\n"), Some("a/t/quoted-key.yaml")),
            (format!("metadata: {{annotations: {{\"{k}\": \"a/t/flow.yaml\", other: x}}}}\n"), Some("a/t/flow.yaml")),
            (format!("metadata: {{annotations: {{{k}: a/t/flow-plain.yaml, other: x}}}}\n"), Some("a/t/flow-plain.yaml")),
            (format!("    {k}: ''\n    {k}: second.yaml\n"), Some("second.yaml")),
            (format!("    # mentions {k} without a value\n"), None),
            ("    other: x\n".to_string(), None),
        ] {
            assert_eq!(scan_helm4_filename(&text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn origin_of_a_parsed_document_comes_from_its_annotation() {
        let docs = yaml::split_stream(OK_DOC);
        let v = yaml::parse_document(&docs[0]).unwrap();
        assert_eq!(document_origin(&docs[0], v.as_ref()), Some(DocumentOrigin::Helm4Filename("app/templates/cm.yaml".into())));
        let docs = yaml::split_stream("---\n# Source: c/t/a.yaml\na: 1\n");
        assert_eq!(document_origin(&docs[0], None), Some(DocumentOrigin::Source("c/t/a.yaml".into())));
    }
}

#[cfg(test)]
mod database_client_tests {
    use super::*;

    /// A release with a PostgreSQL StatefulSet, an API that references it, and a pre-upgrade
    /// hook Job that migrates it.
    const STREAM: &str = "---
# Source: app/templates/db.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg, labels: {app.kubernetes.io/instance: rel}}
spec:
  serviceName: pg
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg, app.kubernetes.io/instance: rel}}
    spec:
      containers: [{name: pg, image: 'postgres:16', ports: [{containerPort: 5432}]}]
---
# Source: app/templates/db-svc.yaml
apiVersion: v1
kind: Service
metadata: {name: pg, labels: {app.kubernetes.io/instance: rel}}
spec: {selector: {app: pg}, ports: [{port: 5432}]}
---
# Source: app/templates/api.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {app.kubernetes.io/instance: rel}}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, app.kubernetes.io/instance: rel}}
    spec:
      containers: [{name: api, image: acme/api, ports: [{containerPort: 8080}], env: [{name: DATABASE_URL, value: 'postgres://u@pg:5432/db'}]}]
---
# Source: app/templates/migrate.yaml
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, labels: {app.kubernetes.io/instance: rel}, annotations: {helm.sh/hook: pre-upgrade}}
spec:
  template:
    metadata: {labels: {app: migrate, app.kubernetes.io/instance: rel}}
    spec:
      restartPolicy: Never
      containers: [{name: m, image: acme/migrate, env: [{name: DATABASE_URL, value: 'postgres://u@pg:5432/db'}]}]
";

    fn config(text: &str) -> PostRenderConfig {
        PostRenderConfig::parse(text).unwrap()
    }

    /// The `from` peers of the database policy's rule on the client port 5432.
    fn database_peers(cfg: &PostRenderConfig) -> (Vec<Value>, Summary) {
        let r = post_render(STREAM, cfg).unwrap();
        let policy = yaml::split_stream(&r.output)
            .iter()
            .filter_map(|d| yaml::parse_document(d).unwrap())
            .find(|v| at(v, "/metadata/name").and_then(Value::as_str) == Some("rel-pg-ingress"))
            .expect("database policy generated");
        let rule = at(&policy, "/spec/ingress")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .find(|r| r.get("ports") == Some(&serde_json::json!([{"protocol": "TCP", "port": 5432}])))
            .expect("rule on the client port")
            .clone();
        (rule["from"].as_array().unwrap().clone(), r.summary)
    }

    /// A Helm hook of the release that names the database (a schema migration) is one of its
    /// clients: cutting it would fail the next `helm upgrade`.
    #[test]
    fn a_hook_job_that_names_the_database_is_a_client() {
        let (peers, _) = database_peers(&PostRenderConfig::default());
        assert_eq!(
            peers,
            [
                serde_json::json!({"podSelector": {"matchLabels": {"app": "api"}}}),
                serde_json::json!({"podSelector": {"matchLabels": {"app": "migrate", "app.kubernetes.io/instance": "rel"}}}),
            ]
        );
    }

    #[test]
    fn configured_clients_are_admitted_on_the_database_ports() {
        let cfg = config(
            "networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector:\n      matchLabels: {app: migrate}\n  - database: pg\n    namespace: batch\n    podSelector:\n      matchExpressions:\n      - {key: team, operator: In, values: [data]}\n      - {key: tier, operator: Exists}\n",
        );
        let (peers, summary) = database_peers(&cfg);
        assert_eq!(
            peers,
            [
                serde_json::json!({"podSelector": {"matchLabels": {"app": "api"}}}),
                serde_json::json!({"podSelector": {"matchLabels": {"app": "migrate", "app.kubernetes.io/instance": "rel"}}}),
                serde_json::json!({"podSelector": {"matchLabels": {"app": "migrate"}}}),
                serde_json::json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch"}},
                                   "podSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["data"]},
                                                                        {"key": "tier", "operator": "Exists"}]}}),
            ]
        );
        assert!(summary.injections.iter().all(|i| !i.workload.starts_with("networkPolicies.")), "{:?}", summary.injections);
        // Only the named database's policy changes.
        let plain = post_render(STREAM, &PostRenderConfig::default()).unwrap().output;
        let with = post_render(STREAM, &cfg).unwrap().output;
        let api_policy = |s: &str| {
            let from = s.find("name: rel-api-ingress").unwrap();
            s[from..from + s[from..].find("\n---").unwrap()].to_string()
        };
        assert_eq!(api_policy(&plain), api_policy(&with));
    }

    #[test]
    fn a_client_of_an_unknown_database_is_reported_not_used() {
        let cfg = config("networkPolicies:\n  databaseClients:\n  - database: pq\n    podSelector: {matchLabels: {app: migrate}}\n");
        let (peers, summary) = database_peers(&cfg);
        assert_eq!(peers.len(), 2, "api and the hook, nothing configured: {peers:?}");
        let note = summary.injections.iter().find(|i| i.workload == "networkPolicies.databaseClients[0]").expect("note");
        assert!(note.skipped);
        assert_eq!(note.change, "not used: no database `pq` in this stream");
    }

    #[test]
    fn hook_only_runs_generate_nothing_even_with_clients() {
        let cfg = config("networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector: {matchLabels: {app: migrate}}\n");
        let hooks_only = &STREAM[STREAM.find("---\n# Source: app/templates/migrate.yaml").unwrap()..];
        let r = post_render(hooks_only, &cfg).unwrap();
        assert!(r.summary.generated.is_empty());
        assert!(!r.output.contains("NetworkPolicy"));
    }

    #[test]
    fn client_selectors_are_checked_like_the_api_server_does() {
        for (text, needle) in [
            ("networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector: {}\n", "podSelector needs matchLabels or matchExpressions"),
            ("networkPolicies:\n  databaseClients:\n  - database: pg\n", "podSelector"),
            (
                "networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector: {matchExpressions: [{key: a, operator: In}]}\n",
                "operator In needs values",
            ),
            (
                "networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}\n",
                "operator Exists takes no values",
            ),
            (
                "networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector: {matchExpressions: [{key: a, operator: Has}]}\n",
                "Has",
            ),
            ("networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelectr: {matchLabels: {a: b}}\n", "podSelectr"),
            ("networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector: {matchLabel: {a: b}}\n", "matchLabel"),
        ] {
            let e = PostRenderConfig::parse(text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
