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

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

pub use config::{ConfigError, PostRenderConfig};

use crate::inject::{self, Injection, at};
use crate::inventory::{Inventory, Object, Origin, kinds};
use crate::policies;
use crate::workload::{WORKLOAD_KINDS, template_pointer};
use crate::yaml::{self, YamlError};

/// Helm 4 annotates every document with the file it came from; generated documents get one too
/// so Helm can place them.
pub const HELM4_FILENAME_ANNOTATION: &str = "postrenderer.helm.sh/postrender-filename";
/// `# Source:` path (and Helm 4 file name) of generated documents.
pub const GENERATED_SOURCE: &str = "mesh-migrate/networkpolicies.yaml";

/// Why a stream could not be post-rendered. Every variant names the document.
#[derive(Debug, thiserror::Error)]
pub enum PostRenderError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("document {index}{}: {problem}", source_suffix(.template))]
    Document { index: usize, template: Option<String>, problem: String },
}

fn source_suffix(template: &Option<String>) -> String {
    template.as_ref().map(|s| format!(" (# Source: {s})")).unwrap_or_default()
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
}

/// The result: the full output stream and a summary.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub output: String,
    pub summary: Summary,
}

struct Doc<'a> {
    raw: yaml::RawDocument<'a>,
    value: Option<Value>,
}

/// Post-render a stream. Pure: no I/O, so callers decide where output goes (and that on error
/// nothing is written).
///
/// Cost: every document is parsed once (to find workloads and to reject invalid YAML), only the
/// documents that change are re-emitted, and only workloads are copied (the copy gets the
/// injections; the original feeds policy generation).
pub fn post_render(input: &str, cfg: &PostRenderConfig) -> Result<Rendered, PostRenderError> {
    let raws = yaml::split_stream(input);
    let mut docs = Vec::with_capacity(raws.len());
    for raw in raws {
        let value = yaml::parse_document(&raw)?;
        if let Some(v) = &value {
            if !v.is_object() {
                return Err(PostRenderError::Document {
                    index: raw.index,
                    template: raw.source.clone(),
                    problem: format!("expected a mapping (a Kubernetes object), found {}", kind_of(v)),
                });
            }
        }
        docs.push(Doc { raw, value });
    }

    let mut summary = Summary { documents: docs.len(), ..Summary::default() };
    let helm4 = docs.iter().filter_map(|d| d.value.as_ref()).any(|v| annotation(v, HELM4_FILENAME_ANNOTATION).is_some());

    let mut output = String::with_capacity(input.len() + input.len() / 8);
    let label_opts = cfg.label_options();
    let mut existing: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    for doc in &docs {
        let Some(value) = &doc.value else {
            output.push_str(doc.raw.text);
            continue;
        };
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = at(value, "/metadata/name").and_then(Value::as_str).unwrap_or_default();
        if kind == "NetworkPolicy" {
            let ns = at(value, "/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            existing.insert((ns, name.to_string()));
        }
        let Some(ptr) = template_pointer(kind).filter(|_| !name.is_empty() && (cfg.inject.labels || cfg.inject.probes)) else {
            output.push_str(doc.raw.text);
            continue;
        };
        let mut changed = value.clone();
        let mut done = Vec::new();
        if cfg.inject.labels {
            done.extend(inject::inject_labels(&mut changed, kind, name, ptr, &label_opts));
        }
        if cfg.inject.probes {
            done.extend(inject::inject_probes(&mut changed, &format!("{kind}/{name}"), ptr, &cfg.probes.for_workload(name)));
        }
        if &changed == value {
            output.push_str(doc.raw.text);
        } else {
            summary.changed += 1;
            summary.changed_documents.push(doc.raw.index);
            push_reemitted(&mut output, doc.raw.text, &changed);
        }
        summary.injections.extend(done);
    }

    // Generated policies come from the non-hook objects as the chart rendered them (the
    // originals, not the injected copies); generation takes them over, so nothing is copied.
    let generated = if cfg.inject.network_policies { generate(docs, cfg) } else { Vec::new() };
    for g in generated {
        // Not twice: neither a policy the input already has (a second run over our own output)
        // nor one generated for another release of the stream under the same name.
        let ns = (!g.namespace.is_empty()).then(|| g.namespace.clone());
        if !existing.insert((ns, g.name.clone())) {
            continue;
        }
        let mut object = g.object;
        if helm4 {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("annotations".into(), serde_json::json!({HELM4_FILENAME_ANNOTATION: GENERATED_SOURCE}));
            }
        }
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str("---\n# Source: ");
        output.push_str(GENERATED_SOURCE);
        output.push('\n');
        yaml::write_yaml(&mut output, &object);
        summary.generated.push(g.name);
    }
    Ok(Rendered { output, summary })
}

/// The input with the documents the run changed re-emitted unchanged, so that a diff against
/// the output shows what was injected and nothing of the re-emission's formatting (indentation of
/// sequences, quoting). Not on the hot path: only `--diff` calls it.
pub fn normalized_input(input: &str, summary: &Summary) -> Result<String, PostRenderError> {
    let mut out = String::with_capacity(input.len());
    for raw in yaml::split_stream(input) {
        match yaml::parse_document(&raw)? {
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

/// NetworkPolicies for the non-hook objects of `docs` (which it takes over: no object is copied
/// unless several releases share it, below).
///
/// A post-renderer sees one release, and its objects usually all carry the release's
/// `app.kubernetes.io/instance` label. A stream can hold several releases, though
/// (`helmfile template`, or several `helm template` outputs piped together). Then, unless a
/// release name is configured, each release is handled as if it were post-rendered on its own:
/// its policies are named and labelled after it, and "workloads of the same release" means
/// its own workloads, never those of the other releases (which would open every release to all
/// the others, and make the output grow with the square of the stream). See [`release_groups`].
fn generate(docs: Vec<Doc<'_>>, cfg: &PostRenderConfig) -> Vec<policies::Generated> {
    let objects: Vec<Classified> = docs
        .into_iter()
        .filter_map(|d| {
            let v = d.value?;
            if annotation(&v, "helm.sh/hook").is_some() {
                return None;
            }
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
            let object = Object { api_version, kind, namespace, name, value: v, origin: Origin::Stdin { line: d.raw.line, helm_source: d.raw.source } };
            let workload = known.is_some_and(|k| WORKLOAD_KINDS.contains(&k)) && is_top_level_workload(&object.value, &object.kind);
            let subject = workload || known == Some(&kinds::CNPG_CLUSTER);
            Some(Classified { object, workload, subject })
        })
        .collect();
    let mut out = Vec::new();
    for (release, objects) in release_groups(objects, cfg.release.as_deref()) {
        let inventory = Inventory::from_files(objects, vec!["-".into()], "default".into());
        out.extend(policies::generate(&inventory, &release, cfg.mode, &cfg.network_policies));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// An object for policy generation, with what [`release_groups`] needs to know about it.
struct Classified {
    object: Object,
    /// A top-level workload, as [`crate::workload::workloads`] counts them.
    workload: bool,
    /// An object policy generation may give a policy of its own: a top-level workload or a
    /// CloudNativePG cluster.
    subject: bool,
}

/// Splits the stream's objects by release, each with the release name its policies get.
///
/// * A configured release name, or at most one release named by the top-level workloads'
///   release labels (`app.kubernetes.io/instance`, else `release`): one group of everything,
///   named by the configuration, else by that label (else unnamed).
/// * Several: a group per release named by workloads. An object whose release label names one
///   of them goes to that group. An unlabelled workload or CloudNativePG cluster (the objects
///   that get policies) goes to the most common release ([`policies::infer_release`]'s
///   choice), so it gets exactly one policy; any other object without such a label (a shared
///   Secret, a Service, an Ingress) is context for every group.
fn release_groups(objects: Vec<Classified>, configured: Option<&str>) -> Vec<(String, Vec<Object>)> {
    let releases = policies::most_common_first(objects.iter().filter(|c| c.workload).filter_map(|c| policies::release_label(&c.object)));
    if configured.is_some() || releases.len() <= 1 {
        let name = configured.map(str::to_string).or_else(|| releases.first().map(|(r, _)| r.clone())).unwrap_or_default();
        return vec![(name, objects.into_iter().map(|c| c.object).collect())];
    }
    let index: BTreeMap<&str, usize> = releases.iter().enumerate().map(|(i, (r, _))| (r.as_str(), i)).collect();
    let mut groups: Vec<Vec<Object>> = vec![Vec::new(); releases.len()];
    for Classified { object, subject, .. } in objects {
        match policies::release_label(&object).and_then(|r| index.get(r).copied()) {
            Some(i) => groups[i].push(object),
            // The most common release comes first.
            None if subject => groups[0].push(object),
            None => {
                for g in &mut groups[1..] {
                    g.push(object.clone());
                }
                groups[0].push(object);
            }
        }
    }
    releases.into_iter().map(|(r, _)| r).zip(groups).collect()
}

/// Whether an object of a workload kind is a top-level workload: it has a pod template and no
/// controller of a workload kind (the rule of [`crate::workload::workloads`], read without
/// building a [`crate::workload::Workload`]).
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
