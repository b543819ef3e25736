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

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

pub use config::{ConfigError, PostRenderConfig};

use crate::inject::{self, Injection};
use crate::inventory::{Inventory, Object, Origin};
use crate::policies;
use crate::workload::template_pointer;
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
pub fn post_render(input: &str, cfg: &PostRenderConfig) -> Result<Rendered, PostRenderError> {
    let mut docs = Vec::new();
    for raw in yaml::split_stream(input) {
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

    // Generated policies come from the non-hook objects as the chart rendered them.
    let generated = if cfg.inject.network_policies { generate(&docs, cfg) } else { Vec::new() };

    let mut output = String::with_capacity(input.len() + input.len() / 8 + generated.len() * 1024);
    let label_opts = cfg.label_options();
    for doc in &docs {
        let Some(value) = &doc.value else {
            output.push_str(doc.raw.text);
            continue;
        };
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let Some(ptr) = template_pointer(kind).filter(|_| !name.is_empty()) else {
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
            push_reemitted(&mut output, doc.raw.text, &changed);
        }
        summary.injections.extend(done);
    }

    let existing: BTreeSet<(Option<String>, String)> = docs
        .iter()
        .filter_map(|d| d.value.as_ref())
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("NetworkPolicy"))
        .map(|v| {
            let ns = v.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            (ns, v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string())
        })
        .collect();
    for g in generated {
        let ns = (!g.namespace.is_empty()).then(|| g.namespace.clone());
        if existing.contains(&(ns, g.name.clone())) {
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
        output.push_str(&yaml::to_yaml_string(&object));
        summary.generated.push(g.name);
    }
    Ok(Rendered { output, summary })
}

/// The leading lines of a document that are not YAML content: `---`, comments, directives, blank
/// lines. They are kept when a document is re-emitted.
fn prelude(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end_matches(['\n', '\r']);
        let trimmed = t.trim_start();
        let keep = t == "---" || trimmed.is_empty() || trimmed.starts_with('#') || t.starts_with('%');
        if !keep {
            break;
        }
        end += line.len();
    }
    &text[..end]
}

/// Re-emit a changed document after its prelude. A chunk without a `---` line is either the
/// first document or follows an explicit `...` end, so it needs no separator either way.
fn push_reemitted(output: &mut String, text: &str, value: &Value) {
    output.push_str(prelude(text));
    output.push_str(&yaml::to_yaml_string(value));
}

fn generate(docs: &[Doc<'_>], cfg: &PostRenderConfig) -> Vec<policies::Generated> {
    let objects: Vec<Object> = docs
        .iter()
        .filter_map(|d| {
            let v = d.value.as_ref()?;
            if annotation(v, "helm.sh/hook").is_some() {
                return None;
            }
            let api_version = v.get("apiVersion")?.as_str()?.to_string();
            let kind = v.get("kind")?.as_str()?.to_string();
            // Helm leaves the namespace to install time: objects without one are in the release
            // namespace, written "" here so references between them resolve, and never emitted.
            let namespace = v
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| crate::inventory::kinds::lookup(&api_version, &kind).filter(|k| k.namespaced).map(|_| String::new()));
            Some(Object {
                api_version,
                kind,
                namespace,
                name: v.pointer("/metadata/name")?.as_str()?.to_string(),
                value: v.clone(),
                origin: Origin::Stdin { line: d.raw.line, helm_source: d.raw.source.clone() },
            })
        })
        .collect();
    let inventory = Inventory::from_files(objects, vec!["-".into()], "default".into());
    let release = cfg.release.clone().or_else(|| policies::infer_release(&inventory)).unwrap_or_default();
    policies::generate(&inventory, &release, cfg.mode, &cfg.network_policies)
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")?.get(key)?.as_str()
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
