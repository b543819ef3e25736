//! Loading objects from manifests: files, directories (recursively) and stdin.
//!
//! Multi-document YAML and JSON are accepted; `kind: List` (and `*List`) objects are flattened
//! into their items; Helm's `# Source:` comments are kept as each object's origin. Namespaced
//! objects written without a namespace get the default namespace, as `kubectl apply -f` would.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Inventory, Object, Origin, kinds};
use crate::yaml::{self, YamlError};

/// Errors reading manifests. Every variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Invalid YAML: the file (or `stdin`), then the document, line, column and key; never a
    /// value (see [`YamlError`]).
    #[error("{path}: {source}")]
    Yaml { path: String, source: YamlError },
    #[error("{origin}: invalid JSON: {source}")]
    Json { origin: String, source: serde_json::Error },
    #[error("{origin}: document {index} is not a Kubernetes object: {problem}")]
    NotAnObject { origin: String, index: usize, problem: String },
    /// `detail` is serde's message with quoted values removed (see [`crate::redact`]): the object
    /// may be a Secret.
    #[error("{origin}: {object} does not have the expected shape: {detail}")]
    Shape { origin: String, object: String, detail: String },
    #[error("{path}: no YAML or JSON manifests found")]
    Empty { path: String },
    /// The input was read but holds no Kubernetes object (empty, blank, comments only, or empty
    /// `List`s). Nothing checked is not "nothing wrong": this is an input error, not a pass.
    #[error("{path}: no Kubernetes object in the input (it is empty, blank or comments only)")]
    NoObjects { path: String },
}

/// Load every manifest under `paths` (`-` is stdin). Directories are walked recursively, taking
/// `*.yaml`, `*.yml` and `*.json` files in name order so that results are deterministic.
/// With `only_namespace`, objects of other namespaces are dropped (cluster-scoped ones are kept).
/// Each path must hold at least one object ([`InventoryError::NoObjects`]): an empty stdin or file
/// is a mistake upstream (a failed `helm template`), never a clean report.
pub fn load_paths(
    paths: &[PathBuf],
    default_namespace: &str,
    only_namespace: Option<&str>,
) -> Result<Inventory, InventoryError> {
    let mut objects = Vec::new();
    for path in paths {
        let before = objects.len();
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| InventoryError::Io { path: "stdin".into(), source })?;
            load_text(&text, None, default_namespace, &mut objects)?;
            if objects.len() == before {
                return Err(InventoryError::NoObjects { path: "stdin".into() });
            }
            continue;
        }
        let files = collect_files(path)?;
        if files.is_empty() {
            return Err(InventoryError::Empty { path: path.display().to_string() });
        }
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|source| InventoryError::Io { path: file.display().to_string(), source })?;
            load_text(&text, Some(&file), default_namespace, &mut objects)?;
        }
        if objects.len() == before {
            return Err(InventoryError::NoObjects { path: path.display().to_string() });
        }
    }
    if let Some(ns) = only_namespace {
        objects.retain(|o| o.namespace.as_deref().is_none_or(|n| n == ns));
    }
    let shown = paths.iter().map(|p| p.display().to_string()).collect();
    Ok(Inventory::from_files(objects, shown, default_namespace.to_string()))
}

/// Load objects from a string (as if read from `path`, or stdin when `None`).
pub fn load_str(text: &str, path: Option<&Path>, default_namespace: &str) -> Result<Vec<Object>, InventoryError> {
    let mut objects = Vec::new();
    load_text(text, path, default_namespace, &mut objects)?;
    Ok(objects)
}

fn collect_files(path: &Path) -> Result<Vec<PathBuf>, InventoryError> {
    let io = |source| InventoryError::Io { path: path.display().to_string(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let p = entry.path();
        if p.is_dir() {
            out.extend(collect_files(&p)?);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
    Ok(out)
}

fn load_text(text: &str, path: Option<&Path>, default_ns: &str, out: &mut Vec<Object>) -> Result<(), InventoryError> {
    let origin_at = |line: usize, helm_source: Option<String>| match path {
        Some(p) => Origin::File { path: p.to_path_buf(), line, helm_source },
        None => Origin::Stdin { line, helm_source },
    };
    let is_json = path.and_then(|p| p.extension()).is_some_and(|e| e == "json")
        || (path.is_none() && text.trim_start().starts_with('{'));
    if is_json {
        let origin = origin_at(1, None);
        let value: Value = serde_json::from_str(text)
            .map_err(|source| InventoryError::Json { origin: origin.to_string(), source })?;
        return push_object(value, origin, 1, default_ns, out);
    }
    let shown = || path.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    for doc in yaml::split_stream(text) {
        let parsed = yaml::parse_document(&doc).map_err(|source| InventoryError::Yaml { path: shown(), source })?;
        let Some(value) = parsed else { continue };
        let origin = origin_at(doc.line, doc.source.clone());
        push_object(value, origin, doc.index, default_ns, out)?;
    }
    Ok(())
}

fn push_object(mut value: Value, origin: Origin, index: usize, default_ns: &str, out: &mut Vec<Object>) -> Result<(), InventoryError> {
    let not_object = |problem: &str| InventoryError::NotAnObject {
        origin: origin.to_string(),
        index,
        problem: problem.to_string(),
    };
    let Value::Object(map) = &mut value else { return Err(not_object("not a mapping")) };
    let kind = map.get("kind").and_then(Value::as_str).ok_or_else(|| not_object("no `kind`"))?.to_string();
    let api_version =
        map.get("apiVersion").and_then(Value::as_str).ok_or_else(|| not_object("no `apiVersion`"))?.to_string();
    if kind.ends_with("List")
        && let Some(Value::Array(items)) = map.get_mut("items").map(Value::take) {
            for item in items {
                push_object(item, origin.clone(), index, default_ns, out)?;
            }
            return Ok(());
        }
    let meta = value.get("metadata");
    let name = meta
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Value::as_str)
        .ok_or_else(|| not_object("no `metadata.name`"))?
        .to_string();
    let mut namespace = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string);
    if namespace.is_none() {
        // The scope of kinds outside the table is unknown offline: leave their namespace unset.
        if kinds::lookup(&api_version, &kind).is_some_and(|k| k.namespaced) {
            namespace = Some(default_ns.to_string());
        }
    }
    out.push(Object { api_version, kind, namespace, name, value, origin });
    Ok(())
}
