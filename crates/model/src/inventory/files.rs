//! Loading objects from manifests: files, directories (recursively) and stdin.
//!
//! Multi-document YAML and JSON (one value, or a stream of values) are accepted. Lists are
//! flattened into their items: `kind: List` (whose items carry their own `kind` and
//! `apiVersion`, as `kubectl get -o yaml` writes them) and typed lists such as `PodList` or
//! `NamespaceList` (as the API server's list calls return them: the items carry neither, so an
//! item's kind is the list's kind without `List` and its `apiVersion` the list's). Helm's
//! `# Source:` comments are kept as each object's origin. Namespaced objects written without a
//! namespace get the default namespace, as `kubectl apply -f` would.
//!
//! A file named on the command line must be Kubernetes manifests: anything else is an error. In a
//! directory, a file that is not (a saved JSON report, a `values.yaml`, a README) is skipped and
//! named in [`Inventory::skipped_files`], so a directory of saved cluster state with notes beside
//! it still loads. The rule: a file is a manifest when one of its documents is a mapping with
//! both `apiVersion` and `kind`, or, when it does not parse, when one of its lines starts with an
//! `apiVersion` or `kind` key (a broken manifest stays an error).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use serde::de::DeserializeSeed;

use super::facts::{FactsDocument, Rebuild, TakenPod};
use super::{Inventory, Object, Origin, PodDetail, kinds, read};
use crate::yaml::{self, YamlError};

/// Errors reading manifests. Every variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Invalid YAML: the file (or `stdin`), then the document, line, column and key; never a
    /// value (see [`YamlError`]).
    #[error("{path}: {source}")]
    Yaml { path: String, source: Box<YamlError> },
    /// Invalid JSON: serde_json's syntax message (line and column, never a value).
    #[error("{origin}: invalid JSON: {source}")]
    Json { origin: String, source: serde_json::Error },
    /// `place` is `document N`, or for an item of a list `document N, items[I] (NAME) of the
    /// PodList`: the index counts from 0, as in the list's JSON.
    #[error("{origin}: {place} is not a Kubernetes object: {problem}")]
    NotAnObject { origin: String, place: String, problem: String },
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
    /// A directory whose files were all skipped as not Kubernetes manifests.
    #[error("{path}: no Kubernetes object in the input: every file was skipped as not a Kubernetes manifest ({})", list(.skipped))]
    OnlySkipped { path: String, skipped: Vec<SkippedFile> },
}

fn list(skipped: &[SkippedFile]) -> String {
    skipped.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A file of a directory that was left out because it is not a Kubernetes manifest. `reason`
/// names what was missing or where it stopped parsing, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for SkippedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Load every manifest under `paths` (`-` is stdin). Directories are walked recursively, taking
/// `*.yaml`, `*.yml` and `*.json` files in name order so that results are deterministic; files
/// among them that are not Kubernetes manifests are skipped ([`Inventory::skipped_files`]).
/// With `only_namespace`, objects of other namespaces are dropped (cluster-scoped ones are kept).
/// Each path must hold at least one object ([`InventoryError::NoObjects`]): an empty stdin or file
/// is a mistake upstream (a failed `helm template`), never a clean report.
pub fn load_paths(
    paths: &[PathBuf],
    default_namespace: &str,
    only_namespace: Option<&str>,
) -> Result<Inventory, InventoryError> {
    load_paths_with(paths, default_namespace, only_namespace, PodDetail::Whole)
}

/// All of stdin as text. When stdin is a regular file (`< FILE`), the text is allocated at the
/// file's size once, instead of growing by doubling while it is read (each step a copy of what
/// was read so far, and with it up to twice the input resident at once).
pub fn read_stdin() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let size = stdin.as_fd().try_clone_to_owned().and_then(|fd| std::fs::File::from(fd).metadata());
        if let Ok(meta) = size
            && meta.is_file()
        {
            // One byte more: reading stops at the first read that returns nothing.
            text.reserve(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
        }
    }
    stdin.lock().read_to_string(&mut text)?;
    Ok(text)
}

/// [`load_paths`], keeping pods as `detail` says.
pub fn load_paths_with(
    paths: &[PathBuf],
    default_namespace: &str,
    only_namespace: Option<&str>,
    detail: PodDetail,
) -> Result<Inventory, InventoryError> {
    let cx = Reading { default_ns: default_namespace, detail };
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let before = objects.len();
        if path.as_os_str() == "-" {
            let text = read_stdin().map_err(|source| InventoryError::Io { path: "stdin".into(), source })?;
            load_text(&text, None, &cx, &mut objects)?;
            if objects.len() == before {
                return Err(InventoryError::NoObjects { path: "stdin".into() });
            }
            continue;
        }
        let io = |source| InventoryError::Io { path: path.display().to_string(), source };
        if std::fs::metadata(path).map_err(io)?.is_file() {
            // Named on the command line: it must be manifests.
            let text = std::fs::read_to_string(path).map_err(io)?;
            load_text(&text, Some(path), &cx, &mut objects)?;
        } else {
            let files = collect_files(path)?;
            if files.is_empty() {
                return Err(InventoryError::Empty { path: path.display().to_string() });
            }
            let skipped_before = skipped.len();
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .map_err(|source| InventoryError::Io { path: file.display().to_string(), source })?;
                if let Some(reason) = load_found(&text, &file, &cx, &mut objects)? {
                    skipped.push(SkippedFile { path: file, reason });
                }
            }
            if objects.len() == before && skipped.len() > skipped_before {
                return Err(InventoryError::OnlySkipped { path: path.display().to_string(), skipped: skipped.split_off(skipped_before) });
            }
        }
        if objects.len() == before {
            return Err(InventoryError::NoObjects { path: path.display().to_string() });
        }
    }
    if let Some(ns) = only_namespace {
        objects.retain(|o| o.namespace.as_deref().is_none_or(|n| n == ns));
    }
    let shown = paths.iter().map(|p| p.display().to_string()).collect();
    Ok(Inventory::from_files(objects, shown, default_namespace.to_string()).with_skipped(skipped))
}

/// Load objects from a string (as if read from `path`, or stdin when `None`).
pub fn load_str(text: &str, path: Option<&Path>, default_namespace: &str) -> Result<Vec<Object>, InventoryError> {
    let mut objects = Vec::new();
    load_text(text, path, &Reading { default_ns: default_namespace, detail: PodDetail::Whole }, &mut objects)?;
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

/// How objects are read: the namespace of namespaced objects that name none, and how much of a
/// pod is kept.
struct Reading<'a> {
    default_ns: &'a str,
    detail: PodDetail,
}

/// One parsed document, with where it starts, and the items of its `items` taken as pod facts
/// while it was read (see [`super::facts`]).
struct Document {
    value: Value,
    origin: Origin,
    index: usize,
    taken: Vec<TakenPod>,
}

fn is_json(text: &str, path: Option<&Path>) -> bool {
    match path {
        Some(p) => p.extension().is_some_and(|e| e == "json"),
        None => text.trim_start().starts_with('{'),
    }
}

/// Every non-empty document of `text`: YAML documents, or JSON values one after the other (a
/// single object, or a stream such as `kubectl get -o json` output concatenated).
fn parse_documents(text: &str, path: Option<&Path>, detail: PodDetail) -> Result<Vec<Document>, InventoryError> {
    let origin_at = |line: usize, helm_source: Option<String>| match path {
        Some(p) => Origin::File { path: p.to_path_buf(), line, helm_source },
        None => Origin::Stdin { line, helm_source },
    };
    let mut docs = Vec::new();
    if is_json(text, path) && detail == PodDetail::Facts {
        for doc in read::json_documents_as::<FactsDocument>(text) {
            let origin = origin_at(doc.line, None);
            let read = doc.value.map_err(|source| InventoryError::Json { origin: origin.to_string(), source })?;
            let json_error = |source| InventoryError::Json { origin: origin.to_string(), source };
            let (value, taken) = if read.reread || ((!read.taken.is_empty() || read.rebuild) && !is_list(&read.value)) {
                let again: Result<read::Exact, _> = serde_json::from_str(&text[doc.span]);
                (again.map_err(json_error)?.0, Vec::new())
            } else if read.rebuild {
                let seed = Rebuild { taken: &read.taken };
                let value = seed.deserialize(&mut serde_json::Deserializer::from_str(&text[doc.span])).map_err(json_error)?;
                (value, read.taken)
            } else {
                (read.value, read.taken)
            };
            docs.push(Document { value, origin, index: docs.len() + 1, taken });
        }
        return Ok(docs);
    }
    if is_json(text, path) {
        for doc in read::json_documents(text) {
            let origin = origin_at(doc.line, None);
            match doc.value {
                Ok(value) => docs.push(Document { value, origin, index: docs.len() + 1, taken: Vec::new() }),
                Err(source) => return Err(InventoryError::Json { origin: origin.to_string(), source }),
            }
        }
        return Ok(docs);
    }
    let shown = || path.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    for doc in yaml::split_stream(text) {
        let parsed = yaml::parse_document(&doc).map_err(|source| InventoryError::Yaml { path: shown(), source: Box::new(source) })?;
        let Some(value) = parsed else { continue };
        docs.push(Document { value, origin: origin_at(doc.line, doc.source.clone()), index: doc.index, taken: Vec::new() });
    }
    Ok(docs)
}

fn load_text(text: &str, path: Option<&Path>, cx: &Reading<'_>, out: &mut Vec<Object>) -> Result<(), InventoryError> {
    for doc in parse_documents(text, path, cx.detail)? {
        push_document(doc, cx, out)?;
    }
    Ok(())
}

fn push_document(doc: Document, cx: &Reading<'_>, out: &mut Vec<Object>) -> Result<(), InventoryError> {
    push_object(doc.value, &doc.origin, &format!("document {}", doc.index), None, doc.taken, cx, out)
}

/// Whether a document is a list [`push_object`] flattens (a list in the API's sense).
fn is_list(value: &Value) -> bool {
    match value.get("kind").and_then(Value::as_str) {
        Some(kind) => kind == "List" || (kind.ends_with("List") && value.get("items").is_some()),
        None => false,
    }
}

/// A file found in a directory: its objects, or `Some(reason)` when it is not a Kubernetes
/// manifest (see the module docs) and is skipped.
fn load_found(text: &str, path: &Path, cx: &Reading<'_>, out: &mut Vec<Object>) -> Result<Option<String>, InventoryError> {
    let docs = match parse_documents(text, Some(path), cx.detail) {
        Ok(docs) => docs,
        Err(e) if looks_like_manifest(text) => return Err(e),
        Err(InventoryError::Yaml { source, .. }) => {
            return Ok(Some(format!("not a Kubernetes manifest: not valid YAML (document {}, line {})", source.document, source.line)));
        }
        Err(InventoryError::Json { source, .. }) => {
            return Ok(Some(format!("not a Kubernetes manifest: not valid JSON (line {}, column {})", source.line(), source.column())));
        }
        Err(e) => return Err(e),
    };
    let has = |v: &Value, key: &str| v.get(key).is_some_and(Value::is_string);
    if !docs.is_empty() && !docs.iter().any(|d| has(&d.value, "apiVersion") && has(&d.value, "kind")) {
        return Ok(Some("not a Kubernetes manifest: no document has `apiVersion` and `kind`".to_string()));
    }
    for doc in docs {
        push_document(doc, cx, out)?;
    }
    Ok(None)
}

/// Whether a line of `text` starts with an `apiVersion` or `kind` key (YAML, or JSON's quoted
/// form): a file that does not parse but has one is a broken manifest, not some other file.
fn looks_like_manifest(text: &str) -> bool {
    text.lines().any(|line| {
        let l = line.trim_start().trim_start_matches(['-', '{', ' ', '\t']);
        let l = l.strip_prefix('"').unwrap_or(l);
        ["apiVersion", "kind"].iter().any(|key| {
            l.strip_prefix(key).is_some_and(|rest| {
                let rest = rest.strip_prefix('"').unwrap_or(rest).trim_start();
                rest.starts_with(':')
            })
        })
    })
}

/// What a typed list gives its items that lack their own: the kind without `List`, and the list's
/// `apiVersion`.
struct ItemDefaults<'a> {
    kind: &'a str,
    api_version: &'a str,
}

/// The name (`metadata.name`, else `generateName`) and namespace an object names, when they are
/// strings.
pub(super) fn identity(value: &Value) -> (Option<&str>, Option<&str>) {
    let meta = value.get("metadata");
    let name = meta.and_then(|m| m.get("name").or_else(|| m.get("generateName"))).and_then(Value::as_str);
    (name, meta.and_then(|m| m.get("namespace")).and_then(Value::as_str))
}

/// The namespace of an object: the one it names, else the default one for namespaced kinds (the
/// scope of kinds outside the table is unknown offline: their namespace stays unset).
fn namespace_of(named: Option<String>, api_version: &str, kind: &str, default_ns: &str) -> Option<String> {
    named.or_else(|| kinds::lookup(api_version, kind).filter(|k| k.namespaced).map(|_| default_ns.to_string()))
}

fn push_object(
    mut value: Value,
    origin: &Origin,
    place: &str,
    defaults: Option<&ItemDefaults<'_>>,
    taken: Vec<TakenPod>,
    cx: &Reading<'_>,
    out: &mut Vec<Object>,
) -> Result<(), InventoryError> {
    let not_object = |problem: &str| InventoryError::NotAnObject {
        origin: origin.to_string(),
        place: place.to_string(),
        problem: problem.to_string(),
    };
    let Value::Object(map) = &mut value else { return Err(not_object("not a mapping")) };
    if let Some(d) = defaults {
        read::complete_item(map, d.kind, d.api_version, false);
    }
    let kind = map.get("kind").and_then(Value::as_str).ok_or_else(|| not_object("no `kind`"))?.to_string();
    let api_version =
        map.get("apiVersion").and_then(Value::as_str).ok_or_else(|| not_object("no `apiVersion`"))?.to_string();
    // `List`, and `<Kind>List` with `items` (the API's list types): flatten. Without `items`, a
    // kind that happens to end in "List" is an object like any other.
    if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
        let items = match map.get_mut("items").map(Value::take) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(not_object("its `items` is not a list")),
        };
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        let defaults = item_kind.map(|k| ItemDefaults { kind: k, api_version: &api_version });
        let mut taken = taken.into_iter().peekable();
        for (i, item) in items.into_iter().enumerate() {
            if let Some(pod) = taken.next_if(|t| t.index == i) {
                let (api_version, kind) = ("v1".to_string(), "Pod".to_string());
                let namespace = namespace_of(pod.namespace, &api_version, &kind, cx.default_ns);
                let (name, pod) = (pod.name, Some(Box::new(pod.facts)));
                out.push(Object { api_version, kind, namespace, name, value: Value::Null, origin: origin.clone(), pod });
                continue;
            }
            let name = item.pointer("/metadata/name").and_then(Value::as_str).map(|n| format!(" ({n})")).unwrap_or_default();
            let place = format!("{place}, items[{i}]{name} of the {kind}");
            push_object(item, origin, &place, defaults.as_ref(), Vec::new(), cx, out)?;
        }
        return Ok(());
    }
    let (name, namespace) = identity(&value);
    let name = name.ok_or_else(|| not_object("no `metadata.name`"))?.to_string();
    let namespace = namespace_of(namespace.map(str::to_string), &api_version, &kind, cx.default_ns);
    out.push(cx.detail.keep(Object { api_version, kind, namespace, name, value, origin: origin.clone(), pod: None }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ids(objects: &[Object]) -> Vec<String> {
        objects.iter().map(|o| format!("{} {}", o.api_version, o.object_ref())).collect()
    }

    #[test]
    fn typed_lists_give_their_items_kind_and_api_version() {
        let pods = "apiVersion: v1\nkind: PodList\nmetadata: {resourceVersion: \"42\"}\nitems:\n- metadata: {name: api-1, namespace: shop, labels: {app: api}}\n  spec: {containers: [{name: c}]}\n- metadata: {name: web-1}\n  spec: {containers: [{name: c}]}\n";
        let objects = load_str(pods, None, "default").unwrap();
        assert_eq!(ids(&objects), ["v1 Pod/shop/api-1", "v1 Pod/default/web-1"]);
        assert_eq!(objects[0].value["kind"], "Pod", "the item is completed as the API would have written it");
        assert_eq!(objects[0].label("app"), Some("api"));

        let deployments = r#"{"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [{"metadata": {"name": "api", "namespace": "shop"}, "spec": {}}]}"#;
        assert_eq!(ids(&load_str(deployments, Some(Path::new("d.json")), "default").unwrap()), ["apps/v1 Deployment/shop/api"]);

        // Cluster-scoped items stay without a namespace; an item's own kind wins.
        let namespaces = "{\"apiVersion\":\"v1\",\"kind\":\"NamespaceList\",\"items\":[{\"metadata\":{\"name\":\"shop\"}},{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"web\"}}]}";
        assert_eq!(ids(&load_str(namespaces, None, "default").unwrap()), ["v1 Namespace/shop", "v1 Namespace/web"]);

        let policies = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: deny}\n  spec: {podSelector: {}}\n";
        let np = load_str(policies, None, "shop").unwrap();
        assert_eq!(ids(&np), ["networking.k8s.io/v1 NetworkPolicy/shop/deny"]);
        assert_eq!(np[0].group(), "networking.k8s.io");
    }

    #[test]
    fn admin_network_policies_are_cluster_scoped() {
        // AdminNetworkPolicy and BaselineAdminNetworkPolicy are cluster-scoped CRDs
        // (https://network-policy-api.sigs.k8s.io/reference/spec/): no default namespace.
        let text = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: deny-db}\nspec: {priority: 10, subject: {namespaces: {}}}\n---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicyList\nitems:\n- metadata: {name: default}\n  spec: {subject: {namespaces: {}}}\n";
        let objects = load_str(text, None, "shop").unwrap();
        assert_eq!(
            ids(&objects),
            ["policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy/deny-db", "policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy/default"]
        );
        assert!(objects.iter().all(|o| o.namespace.is_none()));
        let anp = kinds::lookup("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy").unwrap();
        assert!(anp.custom && !anp.namespaced, "an absent CRD makes the kind unavailable, not an error");
        assert_eq!(anp.resource(), "adminnetworkpolicies.policy.networking.k8s.io");
    }

    #[test]
    fn plain_lists_need_kinds_on_their_items_and_errors_name_the_item() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: db}\n- metadata: {name: orphan}\n";
        let err = load_str(list, Some(Path::new("dump.yaml")), "shop").unwrap_err().to_string();
        assert_eq!(err, "dump.yaml:1: document 1, items[1] (orphan) of the List is not a Kubernetes object: no `kind`");

        let pods = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: SecretList\nitems:\n- metadata: {name: ok}\n  data: {password: c2VjcmV0LXZhbHVlLTE=}\n- metadata: {namespace: shop}\n  data: {password: c2VjcmV0LXZhbHVlLTI=}\n";
        let err = load_str(pods, Some(Path::new("s.yaml")), "shop").unwrap_err().to_string();
        assert_eq!(err, "s.yaml:5: document 2, items[1] of the SecretList is not a Kubernetes object: no `metadata.name`");

        let bad = "apiVersion: v1\nkind: PodList\nitems: {a: b}\n";
        let err = load_str(bad, None, "shop").unwrap_err().to_string();
        assert_eq!(err, "stdin:1: document 1 is not a Kubernetes object: its `items` is not a list");

        // Nested lists: the whole path.
        let nested = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"p"}},{"spec":{}}]}]}"#;
        let err = load_str(nested, None, "shop").unwrap_err().to_string();
        assert_eq!(err, "stdin:1: document 1, items[0] of the List, items[1] of the PodList is not a Kubernetes object: no `metadata.name`");
    }

    #[test]
    fn empty_lists_and_kinds_that_only_end_in_list() {
        let empty = "apiVersion: v1\nkind: PodList\nitems: null\n---\napiVersion: v1\nkind: List\n";
        assert!(load_str(empty, None, "shop").unwrap().is_empty());
        let allow = "apiVersion: example.com/v1\nkind: AllowList\nmetadata: {name: ips, namespace: shop}\nspec: {cidrs: [10.0.0.0/8]}\n";
        assert_eq!(ids(&load_str(allow, None, "shop").unwrap()), ["example.com/v1 AllowList/shop/ips"]);
    }

    #[test]
    fn json_streams_load_every_value_with_its_line() {
        let text = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n\n{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"ConfigMap\",\n  \"metadata\": {\"name\": \"b\"}\n}\n";
        let objects = load_str(text, Some(Path::new("two.json")), "shop").unwrap();
        assert_eq!(ids(&objects), ["v1 ConfigMap/shop/a", "v1 ConfigMap/shop/b"]);
        assert_eq!(objects[1].origin.to_string(), "two.json:3");
        let err = load_str("{\"kind\": \"ConfigMap\"}\n", Some(Path::new("x.json")), "shop").unwrap_err().to_string();
        assert!(err.starts_with("x.json:1: document 1 is not a Kubernetes object: no `apiVersion`"), "{err}");
        let err = load_str("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\": ", Some(Path::new("x.json")), "shop")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.json:2: invalid JSON: EOF while parsing"), "{err}");
    }

    const SECRET_VALUE: &str = "hunter2-planted-value";

    #[test]
    fn a_directory_skips_files_that_are_not_manifests_and_names_each() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "a-app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n");
        write(d, "b-pods.json", "{\"apiVersion\":\"v1\",\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"api-1\",\"namespace\":\"shop\"}}]}");
        write(d, "report.json", "{\"schema\": \"meshmove.report/v1\", \"findings\": [{\"object\": {\"kind\": \"Service\", \"name\": \"x\"}}]}");
        write(d, "README.yaml", &format!("This folder holds the saved state.\nNote: the password is {SECRET_VALUE}, do: not share\n  - it: [\n"));
        write(d, "values.yaml", &format!("replicas: 2\npassword: {SECRET_VALUE}\n"));
        write(d, "chart/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n");
        write(d, "notes.txt", "ignored: not yaml or json by name\n");
        write(d, "broken.json", "[1, 2,");
        let inv = load_paths(&[d.to_path_buf()], "default", None).unwrap();
        assert_eq!(ids(inv.objects()), ["v1 ConfigMap/default/app", "v1 Pod/shop/api-1"]);
        let skipped: Vec<String> = inv.skipped_files().iter().map(|s| s.path.strip_prefix(d).unwrap().display().to_string()).collect();
        assert_eq!(skipped, ["README.yaml", "broken.json", "chart/Chart.yaml", "report.json", "values.yaml"]);
        for s in inv.skipped_files() {
            let shown = s.to_string();
            assert!(shown.contains("not a Kubernetes manifest"), "{shown}");
            assert!(!shown.contains(SECRET_VALUE), "{shown}");
        }
        let readme = inv.skipped_files().iter().find(|s| s.path.ends_with("README.yaml")).unwrap();
        assert!(readme.reason.contains("not valid YAML (document 1, line"), "{readme}");
        let report = inv.skipped_files().iter().find(|s| s.path.ends_with("report.json")).unwrap();
        assert_eq!(report.reason, "not a Kubernetes manifest: no document has `apiVersion` and `kind`");
    }

    #[test]
    fn a_named_file_that_is_not_a_manifest_and_a_broken_manifest_in_a_directory_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let report = write(dir.path(), "report.json", "{\"schema\": \"meshmove.report/v1\", \"findings\": []}");
        let err = load_paths(&[report], "default", None).unwrap_err().to_string();
        assert!(err.ends_with("report.json:1: document 1 is not a Kubernetes object: no `kind`"), "{err}");

        let broken = tempfile::tempdir().unwrap();
        write(broken.path(), "ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n");
        write(broken.path(), "secret.yaml", &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData:\n  password: [{SECRET_VALUE}\n"));
        let err = load_paths(&[broken.path().to_path_buf()], "default", None).unwrap_err().to_string();
        assert!(err.contains("secret.yaml: document 1, line"), "{err}");
        assert!(!err.contains(SECRET_VALUE), "{err}");

        // A manifest with a document that is not an object is an error too, not a skip.
        let mixed = tempfile::tempdir().unwrap();
        write(mixed.path(), "m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n---\nreplicas: 2\n");
        let err = load_paths(&[mixed.path().to_path_buf()], "default", None).unwrap_err().to_string();
        assert!(err.ends_with("m.yaml:4: document 2 is not a Kubernetes object: no `kind`"), "{err}");
    }

    #[test]
    fn a_directory_of_nothing_but_skipped_files_is_an_input_error_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "report.json", "{\"findings\": []}");
        write(dir.path(), "values.yaml", "replicas: 2\n");
        let err = load_paths(&[dir.path().to_path_buf()], "default", None).unwrap_err();
        assert!(matches!(&err, InventoryError::OnlySkipped { skipped, .. } if skipped.len() == 2), "{err}");
        let text = err.to_string();
        assert!(text.contains("no Kubernetes object in the input") && text.contains("report.json") && text.contains("values.yaml"), "{text}");
    }

    #[test]
    fn manifest_lines_are_recognised_in_yaml_and_json() {
        assert!(looks_like_manifest("apiVersion: v1\nkind: [\n"));
        assert!(looks_like_manifest("- kind: Pod\n"));
        assert!(looks_like_manifest("{\"kind\" : \"Pod\", "));
        assert!(looks_like_manifest("  \"apiVersion\": \"v1\","));
        assert!(!looks_like_manifest("The kind: of file\nkinds: 2\napiVersions are listed\n"));
    }

    #[test]
    fn overlay_replaces_by_identity_and_adds_the_rest() {
        let base = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\n";
        let inv = Inventory::from_files(load_str(base, None, "shop").unwrap(), vec!["base".into()], "shop".into());
        let change = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, labels: {new: \"yes\"}}\nspec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q}\nspec: {podSelector: {}}\n";
        let after = inv.overlay(load_str(change, None, "shop").unwrap());
        assert_eq!(ids(after.objects()), ["networking.k8s.io/v1 NetworkPolicy/shop/p", "v1 ConfigMap/shop/p", "networking.k8s.io/v1 NetworkPolicy/shop/q"]);
        assert_eq!(after.objects()[0].label("new"), Some("yes"));
        assert_eq!(after.of(&kinds::NETWORK_POLICY).count(), 2);
        assert_eq!(inv.objects().len(), 2, "the original is untouched");
    }

    #[test]
    fn merged_scopes_keep_objects_once_and_a_kind_only_when_every_load_read_it() {
        use super::super::{SourceInfo, Unavailable};
        use std::collections::BTreeMap;
        let part = |ns: &str, pods_forbidden: bool| {
            let text = format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: shared}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: {ns}}}\n");
            let listed: BTreeMap<&'static kinds::Kind, Option<Unavailable>> = [
                (&kinds::NAMESPACE, None),
                (&kinds::SERVICE, None),
                (&kinds::POD, pods_forbidden.then(|| Unavailable::Forbidden { message: "no".into() })),
            ]
            .into_iter()
            .collect();
            Inventory::from_cluster(load_str(&text, None, ns).unwrap(), listed, SourceInfo::Cluster { context: "c".into(), namespace: Some(ns.into()) }, ns.into())
        };
        let merged = Inventory::merge_scopes(vec![part("web", false), part("data", true)], "web".into());
        assert_eq!(ids(merged.objects()), ["v1 Namespace/web", "v1 Namespace/shared", "v1 Service/web/s", "v1 Namespace/data", "v1 Service/data/s"]);
        assert!(merged.has(&kinds::SERVICE));
        assert!(!merged.has(&kinds::POD), "refused in one namespace");
        assert_eq!(merged.unread().len(), 1);
        assert_eq!(merged.default_namespace, "web");
        assert!(!merged.complete_across_namespaces(&kinds::SERVICE));
    }
}
