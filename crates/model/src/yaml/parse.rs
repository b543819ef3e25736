//! Building a `serde_json::Value` from granit-parser events with yaml.v2's semantics.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use granit_parser::{ErrorKind, Event, Marker, Options, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use super::resolve::{
    Resolved, Scalar, decode_base64, go_float_key, is_go_timestamp, resolve_plain,
};
use super::{RawDocument, YamlError, YamlErrorKind};

/// Most nodes that aliases may add to one document by expansion.
///
/// Every alias is expanded into a copy of its anchor's node (JSON has no references), so a few
/// lines of nested aliases can describe billions of nodes. Real manifests alias a handful of
/// small blocks; a million expanded nodes is far above that and far below what would exhaust
/// memory. yaml.v2 has a similar guard based on the ratio of expanded to parsed nodes.
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// Most bytes of content (scalar text and mapping keys) that aliases may add to one document by
/// expansion: 16 MiB.
///
/// Counting nodes is not enough: one alias of a 100 KB string is one node, so a 100 KB file of
/// aliases over such a string expands to gigabytes within the node budget. The API server stores
/// no object above about 1.5 MiB (etcd's default request limit), so ten times that of expanded
/// content is more than any manifest can use.
pub const MAX_ALIAS_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of mappings and sequences in one document, aliases expanded: 512 levels.
///
/// The deepest real manifests (CustomResourceDefinitions with nested OpenAPI schemas) stay well
/// under 100 levels. The parser itself refuses 256 levels of block or of flow collections, but
/// aliases stack: an anchor that holds an alias of another deep anchor nests deeper again, so a
/// few kilobytes could describe a tree thousands of levels deep, and the JSON tree is walked and
/// dropped recursively (a stack overflow, not an error).
pub const MAX_DEPTH: usize = 512;

const YAML_TAG_NAMESPACE: &str = "tag:yaml.org,2002:";

/// Parses one document of a stream into JSON, resolving scalars as Go's yaml.v2 does.
///
/// Returns `Ok(None)` for a document without a node: empty, blank, comments only, or only a
/// `---` line. An explicit `null` or `~` is `Some(Value::Null)`.
///
/// Reading rules, chosen to match what Helm and kubectl see through `sigs.k8s.io/yaml`:
///
/// * Plain scalars resolve with yaml.v2's YAML 1.1 rules (`yes`/`on`/`y` → `true`, `0755` →
///   493, `1_000` → 1000, `08` → 8.0, timestamps → strings). Quoted and block scalars are
///   strings. Explicit tags `!!str`, `!!int`, `!!float` (an integer becomes a float), `!!bool`,
///   `!!null`, `!!timestamp` (kept as text) and `!!binary` (decoded) are honoured; a value that
///   does not fit its tag is an error, as in Go. Other tags are ignored: a tagged scalar is a
///   string, a tagged collection an ordinary collection.
/// * Integers: `i64`, then `u64` up to `u64::MAX`; a larger decimal becomes the nearest `f64`
///   (Go's fall-through to float), a larger hexadecimal/octal/binary stays a string (Go's too).
/// * `.inf`, `-.inf` and `.nan` are [`YamlErrorKind::NonFinite`] errors: a JSON number cannot
///   hold them and Go's own JSON conversion fails on them. They are fine as keys (`".inf"`).
/// * Keys become strings like `sigs.k8s.io/yaml` makes them: `true` → `"true"`, `1` → `"1"`,
///   `1.5` → `"1.5"` (Go's `%g` of the float32). Null keys, collection keys and integer keys
///   beyond `i64` are [`YamlErrorKind::UnsupportedKey`] errors, as in Go.
/// * Duplicate keys are errors, also when two spellings convert to the same string (`1` and
///   `"1"`), since one would silently replace the other.
/// * Merge keys follow yaml.v2: a plain untagged `<<` (or `!!merge "<<"`) writes the entries of
///   its mapping, or of each mapping of its sequence (earlier mappings win), into the mapping at
///   the point where it appears; entries written later, explicit or merged, replace earlier
///   ones. (YAML's merge draft and yaml.v3 let explicit keys win regardless of order; Helm's
///   reader does not.) Keys a merge brought in are not duplicates of explicit keys.
/// * Aliases are expanded; at most [`MAX_ALIAS_NODES`] nodes and [`MAX_ALIAS_BYTES`] bytes of
///   content per document may come from expansion ([`YamlErrorKind::AliasLimit`] beyond), and an
///   alias inside the node it refers to is an error.
/// * Mappings and sequences nest at most [`MAX_DEPTH`] levels deep, aliases expanded
///   ([`YamlErrorKind::DepthLimit`] beyond).
/// * A block scalar ending the input without a line break gets none (libyaml's behaviour).
///
/// Errors carry the document's index and `# Source:` path, a line and column in the stream, and
/// the key path of the node ([`YamlError::key`], also at the start of the message). They never
/// quote a value: the document may be a Secret, and errors end up in CI logs.
pub fn parse_document(doc: &RawDocument<'_>) -> Result<Option<Value>, YamlError> {
    // Rendered manifests are block YAML the fast reader takes; it declines everything else
    // (and every error) to the full reader below, and gives what the full reader gives.
    if let Ok(value) = super::fast::read_document(doc.text) {
        return Ok(value);
    }
    parse_full(doc)
}

/// [`parse_document`] with the full reader only (granit-parser's events).
pub(crate) fn parse_full(doc: &RawDocument<'_>) -> Result<Option<Value>, YamlError> {
    let mut options = Options::default();
    options.emit_comments = false;
    options.block_scalar_eof_without_line_feed = true;
    let mut builder = Builder::new(doc);
    for item in Parser::new_from_str_with_options(doc.text, options) {
        let (event, span) = match item {
            Ok(found) => found,
            Err(e) => return Err(builder.locate(scan_error(doc, &e))),
        };
        let done = match event {
            Event::DocumentStart(..) => {
                if builder.documents > 0 {
                    return Err(error(
                        doc,
                        span.start,
                        YamlErrorKind::Syntax,
                        "a second document starts here without a `---` line at column 0".to_owned(),
                    ));
                }
                builder.documents += 1;
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(text, style, anchor, tag.as_deref(), span)
            }
            Event::SequenceStart(_, anchor, _) => {
                builder.open(Frame::Seq { items: Vec::new() }, anchor, span)
            }
            Event::MappingStart(_, anchor, _) => builder.open(
                Frame::Map {
                    map: Map::new(),
                    key: None,
                    explicit: None,
                },
                anchor,
                span,
            ),
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            Event::Alias(id) => builder.alias(id, span),
            _ => Ok(()),
        };
        if let Err(e) = done {
            return Err(builder.locate(e));
        }
    }
    Ok(builder.root)
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Value>,
    },
    Map {
        map: Map<String, Value>,
        /// The key waiting for its value.
        key: Option<PendingKey>,
        /// Keys written explicitly, tracked once a merge has happened (so merged keys can be
        /// told apart from duplicates).
        explicit: Option<HashSet<String>>,
    },
}

struct Open {
    frame: Frame,
    anchor: usize,
    /// What this collection holds so far, itself included (for the alias budget and depth).
    size: Size,
    start: Marker,
}

/// How big a node is once expanded: nodes, bytes of content (scalar text and keys) and height
/// (1 for a scalar or an empty collection).
#[derive(Clone, Copy)]
struct Size {
    nodes: usize,
    bytes: usize,
    height: usize,
}

impl Size {
    fn scalar(scalar: &Scalar) -> Self {
        let bytes = match scalar {
            Scalar::Str(s) => s.len(),
            // Numbers, booleans and null: a few bytes each.
            _ => 8,
        };
        Size { nodes: 1, bytes, height: 1 }
    }

    /// Add a child (and the key it sits under, if any).
    fn add(&mut self, child: Size, key_bytes: usize) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.bytes = self.bytes.saturating_add(child.bytes).saturating_add(key_bytes);
        self.height = self.height.max(child.height.saturating_add(1));
    }
}

struct PendingKey {
    /// `None` for the merge key `<<`.
    name: Option<String>,
    at: Marker,
}

/// What an anchor refers to.
enum Anchored {
    Scalar(Scalar),
    Tree(Value, Size),
}

struct Builder<'d, 'a> {
    doc: &'d RawDocument<'a>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Anchored>,
    /// What alias expansion added so far (height unused).
    aliased: Size,
    documents: usize,
    root: Option<Value>,
}

impl<'d, 'a> Builder<'d, 'a> {
    fn new(doc: &'d RawDocument<'a>) -> Self {
        Self {
            doc,
            stack: Vec::new(),
            anchors: HashMap::new(),
            aliased: Size { nodes: 0, bytes: 0, height: 0 },
            documents: 0,
            root: None,
        }
    }

    /// Where the parser is, as a key path (`spec.template.spec.containers[0].env[1].value`), or
    /// `None` at the top level. Keys that are not plain words are quoted (`metadata.labels["app.kubernetes.io/name"]`).
    fn path(&self) -> Option<String> {
        let mut path = String::new();
        for open in &self.stack {
            match &open.frame {
                Frame::Seq { items } => path.push_str(&format!("[{}]", items.len())),
                Frame::Map { key: Some(PendingKey { name, .. }), .. } => {
                    let name = name.as_deref().unwrap_or("<<");
                    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    match (plain, path.is_empty()) {
                        (true, true) => path.push_str(name),
                        (true, false) => path.push_str(&format!(".{name}")),
                        (false, _) => path.push_str(&format!("[{name:?}]")),
                    }
                }
                // Reading a key: the path ends at this mapping.
                Frame::Map { key: None, .. } => break,
            }
        }
        (!path.is_empty()).then_some(path)
    }

    /// Add the key path to an error (in [`YamlError::key`] and in front of the message).
    fn locate(&self, mut e: YamlError) -> YamlError {
        if e.key.is_none() {
            e.key = self.path();
        }
        if let Some(key) = &e.key {
            e.message = format!("at key {key}: {}", e.message);
        }
        e
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Open {
                frame: Frame::Map { key: None, .. },
                ..
            })
        )
    }

    fn set_key(&mut self, name: Option<String>, at: Marker) {
        if let Some(Open {
            frame: Frame::Map { key, .. },
            ..
        }) = self.stack.last_mut()
        {
            *key = Some(PendingKey { name, at });
        }
    }

    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<(), YamlError> {
        let doc = self.doc;
        // An empty node (`key:` or an empty document) comes as a zero-width plain scalar.
        let empty =
            style == ScalarStyle::Plain && span.start.byte_offset() == span.end.byte_offset();
        let text = if empty { Cow::Borrowed("") } else { text };
        if empty && tag.is_none() && anchor == 0 && self.stack.is_empty() {
            return Ok(());
        }

        if self.expecting_key() {
            let merge_tag = tag.is_some_and(|t| tag_name(t).as_deref() == Some("merge"));
            if text == "<<" && ((style == ScalarStyle::Plain && tag.is_none()) || merge_tag) {
                if anchor != 0 {
                    self.anchors
                        .insert(anchor, Anchored::Scalar(Scalar::Str("<<".to_owned())));
                }
                self.set_key(None, span.start);
                return Ok(());
            }
            let scalar = resolve_node(text, style, tag)
                .map_err(|(kind, msg)| error(doc, node_start(&span), kind, msg))?;
            if anchor != 0 {
                self.anchors
                    .insert(anchor, Anchored::Scalar(scalar.clone()));
            }
            let name = key_string(scalar)
                .map_err(|e| error(doc, span.start, e.kind(), e.to_string()))?;
            self.set_key(Some(name), span.start);
            return Ok(());
        }

        let scalar = resolve_node(text, style, tag)
            .map_err(|(kind, msg)| error(doc, node_start(&span), kind, msg))?;
        if anchor != 0 {
            self.anchors
                .insert(anchor, Anchored::Scalar(scalar.clone()));
        }
        let size = Size::scalar(&scalar);
        let value = scalar_value(scalar)
            .map_err(|e| error(doc, span.start, e.kind(), e.to_string()))?;
        self.place(value, size, span.start)
    }

    fn open(&mut self, frame: Frame, anchor: usize, span: Span) -> Result<(), YamlError> {
        if self.expecting_key() {
            let what = match frame {
                Frame::Seq { .. } => "a sequence",
                Frame::Map { .. } => "a mapping",
            };
            return Err(error(
                self.doc,
                span.start,
                YamlErrorKind::UnsupportedKey,
                format!("{what} cannot be a mapping key: JSON object keys are strings"),
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(error(
                self.doc,
                span.start,
                YamlErrorKind::DepthLimit,
                format!("mappings and sequences nest more than {MAX_DEPTH} levels deep here"),
            ));
        }
        self.stack.push(Open {
            frame,
            anchor,
            size: Size { nodes: 1, bytes: 0, height: 1 },
            start: span.start,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let Some(open) = self.stack.pop() else {
            return Ok(());
        };
        let value = match open.frame {
            Frame::Seq { items } => Value::Array(items),
            Frame::Map { map, .. } => Value::Object(map),
        };
        if open.anchor != 0 {
            self.anchors
                .insert(open.anchor, Anchored::Tree(value.clone(), open.size));
        }
        self.place(value, open.size, open.start)
    }

    fn alias(&mut self, id: usize, span: Span) -> Result<(), YamlError> {
        let doc = self.doc;
        let Some(anchored) = self.anchors.get(&id) else {
            return Err(error(
                doc,
                span.start,
                YamlErrorKind::Alias,
                "this alias refers to a node that contains it; recursive structures have no JSON form".to_owned(),
            ));
        };
        let size = match anchored {
            Anchored::Scalar(s) => Size::scalar(s),
            Anchored::Tree(_, size) => *size,
        };
        self.aliased.add(size, 0);
        if self.aliased.nodes > MAX_ALIAS_NODES {
            return Err(error(
                doc,
                span.start,
                YamlErrorKind::AliasLimit,
                format!(
                    "aliases expand to more than {MAX_ALIAS_NODES} nodes; refusing to expand further"
                ),
            ));
        }
        if self.aliased.bytes > MAX_ALIAS_BYTES {
            return Err(error(
                doc,
                span.start,
                YamlErrorKind::AliasLimit,
                format!(
                    "aliases expand to more than {} MiB of content; refusing to expand further",
                    MAX_ALIAS_BYTES / (1024 * 1024)
                ),
            ));
        }
        if self.stack.len().saturating_add(size.height) > MAX_DEPTH {
            return Err(error(
                doc,
                span.start,
                YamlErrorKind::DepthLimit,
                format!("this alias would nest mappings and sequences more than {MAX_DEPTH} levels deep"),
            ));
        }
        if self.expecting_key() {
            let name = match anchored {
                Anchored::Scalar(s) => key_string(s.clone()),
                Anchored::Tree(..) => Err(ScalarError::CollectionKey),
            }
            .map_err(|e| error(doc, span.start, e.kind(), e.to_string()))?;
            self.set_key(Some(name), span.start);
            return Ok(());
        }
        let value = match anchored {
            Anchored::Scalar(s) => scalar_value(s.clone())
                .map_err(|e| error(doc, span.start, e.kind(), e.to_string()))?,
            Anchored::Tree(v, _) => v.clone(),
        };
        self.place(value, size, span.start)
    }

    /// Puts a finished node where it belongs: the root, the next item, or the pending key's value.
    fn place(&mut self, value: Value, size: Size, at: Marker) -> Result<(), YamlError> {
        let doc = self.doc;
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        let key_bytes = match &parent.frame {
            Frame::Map { key: Some(PendingKey { name: Some(name), .. }), .. } => name.len(),
            _ => 0,
        };
        parent.size.add(size, key_bytes);
        match &mut parent.frame {
            Frame::Seq { items } => items.push(value),
            Frame::Map { map, key, explicit } => {
                let Some(PendingKey { name, at: key_at }) = key.take() else {
                    return Err(error(
                        doc,
                        at,
                        YamlErrorKind::Syntax,
                        "a value without a key".to_owned(),
                    ));
                };
                match name {
                    Some(name) => {
                        if let Err(DuplicateKey(dup)) = insert_explicit(map, explicit, name, value) {
                            // The key path names the duplicate: the mapping's path plus the key.
                            let mut e = error(
                                doc,
                                key_at,
                                YamlErrorKind::DuplicateKey,
                                format!("duplicate mapping key {dup:?}"),
                            );
                            let parent = self.path();
                            let key = if dup.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && !dup.is_empty() {
                                parent.map_or_else(|| dup.clone(), |p| format!("{p}.{dup}"))
                            } else {
                                format!("{}[{dup:?}]", parent.unwrap_or_default())
                            };
                            e.key = Some(key);
                            return Err(e);
                        }
                    }
                    None => merge(map, explicit, value)
                        .map_err(|e| error(doc, key_at, YamlErrorKind::Merge, e.to_string()))?,
                }
            }
        }
        Ok(())
    }
}

/// Inserts an explicitly written key, refusing duplicates. Returns the key back on a duplicate.
fn insert_explicit(
    map: &mut Map<String, Value>,
    explicit: &mut Option<HashSet<String>>,
    name: String,
    value: Value,
) -> Result<(), DuplicateKey> {
    match explicit {
        None => match map.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(value);
                Ok(())
            }
            Entry::Occupied(slot) => Err(DuplicateKey(slot.key().clone())),
        },
        Some(seen) => {
            if !seen.insert(name.clone()) {
                return Err(DuplicateKey(name));
            }
            map.insert(name, value);
            Ok(())
        }
    }
}

/// Applies a `<<` entry the way yaml.v2 does (see [`parse_document`]).
fn merge(
    map: &mut Map<String, Value>,
    explicit: &mut Option<HashSet<String>>,
    value: Value,
) -> Result<(), MergeError> {
    if explicit.is_none() {
        *explicit = Some(map.keys().cloned().collect());
    }
    match value {
        Value::Object(source) => {
            for (k, v) in source {
                map.insert(k, v);
            }
            Ok(())
        }
        Value::Array(items) => {
            if let Some(bad) = items.iter().find(|v| !v.is_object()) {
                return Err(MergeError::SequenceItem(describe_value(bad)));
            }
            let mut written = HashSet::new();
            for item in items {
                if let Value::Object(source) = item {
                    for (k, v) in source {
                        if !written.contains(&k) {
                            written.insert(k.clone());
                            map.insert(k, v);
                        }
                    }
                }
            }
            Ok(())
        }
        other => Err(MergeError::NotMapping(describe_value(&other))),
    }
}

/// Where a node starts for messages: its tag if it has one, else its content.
fn node_start(span: &Span) -> Marker {
    span.tag_start.unwrap_or(span.start)
}

fn tag_name(tag: &Tag) -> Option<Cow<'_, str>> {
    tag.suffix_in_namespace(YAML_TAG_NAMESPACE)
}

/// Resolves a scalar node from its text, style and tag (yaml.v2's `resolve` plus its tag checks).
fn resolve_node(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> Result<Scalar, (YamlErrorKind, String)> {
    let Some(tag) = tag else {
        return Ok(if style == ScalarStyle::Plain {
            Scalar::from_resolved(resolve_plain(&text), text)
        } else {
            Scalar::Str(text.into_owned())
        });
    };
    let name = tag_name(tag);
    match name.as_deref() {
        Some("str") => Ok(Scalar::Str(text.into_owned())),
        Some("binary") => decode_base64(&text).map(Scalar::Str).ok_or_else(|| {
            (
                YamlErrorKind::Tag,
                "the value is tagged !!binary but is not valid base64 (the value is not shown)".to_owned(),
            )
        }),
        Some(want @ ("null" | "bool" | "int" | "float" | "timestamp")) => {
            let resolved = resolve_plain(&text);
            #[allow(clippy::cast_precision_loss)]
            let fitted = match (want, resolved) {
                ("null", Resolved::Null)
                | ("bool", Resolved::Bool(_))
                | ("int", Resolved::Int(_) | Resolved::Uint(_))
                | ("float", Resolved::Float(_)) => Some(resolved),
                ("float", Resolved::Int(i)) => Some(Resolved::Float(i as f64)),
                ("timestamp", _) if is_go_timestamp(&text) => Some(Resolved::Str),
                _ => None,
            };
            match fitted {
                Some(r) => Ok(Scalar::from_resolved(r, text)),
                None => Err((
                    YamlErrorKind::Tag,
                    format!(
                        "the value is tagged !!{want} but reads as {} (the value is not shown)",
                        describe_resolved(resolved)
                    ),
                )),
            }
        }
        // Custom, non-specific (`!`) and other YAML tags: yaml.v2 keeps the text.
        _ => Ok(Scalar::Str(text.into_owned())),
    }
}

/// A key's JSON string, as `sigs.k8s.io/yaml` converts yaml.v2 keys.
/// Why a node has no JSON form as a mapping key or as a value; the caller locates it in a
/// [`YamlError`] of [`ScalarError::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ScalarError {
    #[error("the key {0} is an integer beyond the 64-bit signed range, which Go's YAML-to-JSON conversion rejects; quote it")]
    KeyBeyondI64(u64),
    #[error("a null key has no JSON form; quote it if the text was meant")]
    NullKey,
    #[error("an alias of a collection cannot be a mapping key: JSON object keys are strings")]
    CollectionKey,
    /// `.inf`, `-.inf` or `.nan` (the word as written in YAML).
    #[error("{0} is not a number JSON can hold (Kubernetes and Helm reject it too); quote it if the text was meant")]
    NonFinite(&'static str),
}

impl ScalarError {
    pub(super) fn kind(&self) -> YamlErrorKind {
        match self {
            ScalarError::KeyBeyondI64(_) | ScalarError::NullKey | ScalarError::CollectionKey => YamlErrorKind::UnsupportedKey,
            ScalarError::NonFinite(_) => YamlErrorKind::NonFinite,
        }
    }
}

/// Why a merge key `<<` cannot be applied (yaml.v2 merges mappings only); names what it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum MergeError {
    #[error("the merge key `<<` needs a mapping or a sequence of mappings, but this sequence holds {0}")]
    SequenceItem(&'static str),
    #[error("the merge key `<<` needs a mapping or a sequence of mappings, found {0}")]
    NotMapping(&'static str),
}

/// A key written twice in one mapping (the key as converted to a string).
#[derive(Debug)]
struct DuplicateKey(String);

pub(super) fn key_string(scalar: Scalar) -> Result<String, ScalarError> {
    match scalar {
        Scalar::Str(s) => Ok(s),
        Scalar::Bool(b) => Ok(if b { "true" } else { "false" }.to_owned()),
        Scalar::Int(i) => Ok(i.to_string()),
        Scalar::Float(f) => Ok(go_float_key(f)),
        Scalar::Uint(u) => Err(ScalarError::KeyBeyondI64(u)),
        Scalar::Null => Err(ScalarError::NullKey),
    }
}

pub(super) fn scalar_value(scalar: Scalar) -> Result<Value, ScalarError> {
    Ok(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::from(i),
        Scalar::Uint(u) => Value::from(u),
        Scalar::Float(f) => match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                let word = if f.is_nan() {
                    ".nan"
                } else if f > 0.0 {
                    ".inf"
                } else {
                    "-.inf"
                };
                return Err(ScalarError::NonFinite(word));
            }
        },
        Scalar::Str(s) => Value::String(s),
    })
}

fn describe_resolved(r: Resolved) -> &'static str {
    match r {
        Resolved::Null => "null",
        Resolved::Bool(_) => "a boolean",
        Resolved::Int(_) | Resolved::Uint(_) => "an integer",
        Resolved::Float(_) => "a float",
        Resolved::Str => "a string",
    }
}

fn describe_value(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn error(doc: &RawDocument<'_>, at: Marker, kind: YamlErrorKind, message: String) -> YamlError {
    YamlError {
        document: doc.index,
        source_path: doc.source.clone(),
        line: doc.line + at.line().saturating_sub(1),
        column: at.col() + 1,
        key: None,
        kind,
        message,
    }
}

fn scan_error(doc: &RawDocument<'_>, e: &ScanError) -> YamlError {
    let kind = match e.kind() {
        ErrorKind::UnknownAnchor => YamlErrorKind::Alias,
        _ => YamlErrorKind::Syntax,
    };
    error(doc, *e.marker(), kind, e.kind().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::split_stream;
    use serde_json::json;

    fn one(text: &str) -> Result<Option<Value>, YamlError> {
        let docs = split_stream(text);
        assert!(docs.len() <= 1, "expected one document in {text:?}");
        match docs.first() {
            Some(d) => parse_document(d),
            None => Ok(None),
        }
    }

    fn val(text: &str) -> Value {
        one(text).unwrap().unwrap()
    }

    fn err(text: &str) -> YamlError {
        one(text).unwrap_err()
    }

    #[test]
    fn empty_documents_are_none() {
        for text in [
            "",
            "\n\n",
            "# c\n",
            "---\n",
            "---\n# only\n",
            "--- # c\n",
            "...\n",
            "%YAML 1.1\n---\n",
        ] {
            assert_eq!(one(text).unwrap(), None, "{text:?}");
        }
        assert_eq!(one("--- ~\n").unwrap(), Some(Value::Null));
        assert_eq!(one("null").unwrap(), Some(Value::Null));
        assert_eq!(one("--- !!str\n").unwrap(), Some(json!("")));
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_v2() {
        let v = val(
            "a: yes\nb: Off\nc: y\nd: ~\ne:\nf: 0755\ng: 0x1F\nh: 1_000\ni: 1e3\nj: 2024-01-01\nk: 08\n\
             l: 18446744073709551615\nm: -5\nnum: 1.0\no: 1:20\np: 0o17\nq: 0b11\nr: +1\n",
        );
        assert_eq!(
            v,
            json!({"a": true, "b": false, "c": true, "d": null, "e": null, "f": 493, "g": 31, "h": 1000,
                   "i": 1000.0, "j": "2024-01-01", "k": 8.0, "l": 18_446_744_073_709_551_615_u64, "m": -5,
                   "num": 1.0, "o": "1:20", "p": 15, "q": 3, "r": 1})
        );
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        let v = val("a: 'yes'\nb: \"0755\"\nc: |\n  true\nd: >-\n  1e3\ne: ''\n");
        assert_eq!(
            v,
            json!({"a": "yes", "b": "0755", "c": "true\n", "d": "1e3", "e": ""})
        );
    }

    #[test]
    fn explicit_tags_are_honoured() {
        let v = val(
            "a: !!str yes\nb: !!int \"12\"\nc: !!float 1\nd: !!bool \"on\"\ne: !!null ''\nf: !!binary aGVsbG8=\n\
             g: !!timestamp 2024-01-01\nh: !custom 12\ni: ! true\nj: !!str\nk: !<tag:yaml.org,2002:int> '7'\n\
             l: !!seq [1]\nm: !!float '-0x10'\n",
        );
        assert_eq!(
            v,
            json!({"a": "yes", "b": 12, "c": 1.0, "d": true, "e": null, "f": "hello", "g": "2024-01-01",
                   "h": "12", "i": "true", "j": "", "k": 7, "l": [1], "m": -16.0})
        );
    }

    #[test]
    fn values_that_do_not_fit_their_tag_are_errors() {
        for text in [
            "a: !!int abc\n",
            "a: !!int 1.5\n",
            "a: !!bool 1\n",
            "a: !!null x\n",
            "a: !!float yes\n",
            "a: !!timestamp 12\n",
            "a: !!binary '%%%'\n",
        ] {
            let e = err(text);
            assert_eq!(e.kind, YamlErrorKind::Tag, "{text}: {e}");
            assert_eq!((e.line, e.column), (1, 4), "{text}: {e}");
        }
        assert!(
            err("a: !!int abc\n")
                .message
                .contains("tagged !!int but reads as a string")
        );
    }

    #[test]
    fn infinity_and_nan_values_are_errors_but_keys_are_fine() {
        for text in ["a: .inf\n", "a: -.Inf\n", "a: .NaN\n", "- !!float .inf\n"] {
            assert_eq!(err(text).kind, YamlErrorKind::NonFinite, "{text}");
        }
        assert_eq!(val("a: '.inf'\n"), json!({"a": ".inf"}));
        assert_eq!(
            val(".inf: 1\n-.inf: 2\n.nan: 3\n"),
            json!({".inf": 1, "-.inf": 2, ".nan": 3})
        );
    }

    #[test]
    fn keys_convert_like_sigs_k8s_yaml() {
        let v = val("true: a\nno: b\n1: c\n0x10: d\n1.5: e\n1e6: f\n08: g\n~x: h\n'null': i\n");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "true", "false", "1", "16", "1.5", "1e+06", "8", "~x", "null"
            ]
        );
        // The YAML 1.1 gotcha Go keeps: unquoted `y` and `n` keys are booleans.
        assert_eq!(
            val("y: 1
n: 2
"),
            json!({"true": 1, "false": 2})
        );
    }

    #[test]
    fn unsupported_keys() {
        for text in [
            "~: a\n",
            "? \n: a\n",
            "18446744073709551615: a\n",
            "[a]: b\n",
            "{a: 1}: b\n",
            "a: &x [1]\n*x : b\n",
        ] {
            assert_eq!(err(text).kind, YamlErrorKind::UnsupportedKey, "{text}");
        }
    }

    #[test]
    fn duplicate_keys_are_errors_with_the_second_position() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.kind, YamlErrorKind::DuplicateKey);
        assert_eq!((e.line, e.column), (3, 1));
        assert!(e.message.contains("\"a\""), "{e}");
        assert_eq!(err("1: x\n'1': y\n").kind, YamlErrorKind::DuplicateKey);
        assert_eq!(err("m: {a: 1, a: 2}\n").kind, YamlErrorKind::DuplicateKey);
    }

    #[test]
    fn key_order_is_kept() {
        let v = val("z: 1\na: 2\nm: 3\n");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let v =
            val("base: &b {x: 1, z: [a, b]}\ncopy: *b\nname: &n web\nlist: [*n, *n]\n*n : key\n");
        assert_eq!(
            v,
            json!({"base": {"x": 1, "z": ["a", "b"]}, "copy": {"x": 1, "z": ["a", "b"]},
                   "name": "web", "list": ["web", "web"], "web": "key"})
        );
        // Redefining an anchor: aliases see the latest definition.
        assert_eq!(val("- &a 1\n- *a\n- &a 2\n- *a\n"), json!([1, 1, 2, 2]));
    }

    #[test]
    fn recursive_and_unknown_aliases_are_errors() {
        assert_eq!(err("a: &x [1, *x]\n").kind, YamlErrorKind::Alias);
        assert_eq!(err("a: *nope\n").kind, YamlErrorKind::Alias);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = err(&text);
        assert_eq!(e.kind, YamlErrorKind::AliasLimit);
        // A modest amount of aliasing is fine.
        let small: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        assert!(one(&small).is_ok());
    }

    #[test]
    fn alias_expansion_is_capped_in_bytes_not_only_nodes() {
        // A 100 KB string and 26,000 one-node aliases of it: far under the node budget, but 2.6
        // GB once expanded. The byte budget stops it after about 160 copies.
        let big = "x".repeat(100 * 1024);
        let mut text = format!("apiVersion: v1\nkind: ConfigMap\nbig: &b \"{big}\"\nitems:\n");
        for _ in 0..26_000 {
            text.push_str("- *b\n");
        }
        assert!(text.len() < 300 * 1024);
        let started = std::time::Instant::now();
        let e = err(&text);
        assert_eq!(e.kind, YamlErrorKind::AliasLimit, "{e}");
        assert!(e.message.contains("16 MiB"), "{e}");
        assert_eq!(e.key.as_deref(), Some(format!("items[{}]", MAX_ALIAS_BYTES / big.len()).as_str()), "{e}");
        assert!(e.line > 4 && e.line < 4 + 200, "the error names the line of the alias: {e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused early");
        // Nested aliases over the same string are counted by what they expand to.
        let mut nested = format!("s: &s \"{big}\"\nl0: &l0 [*s, *s, *s, *s]\n");
        for i in 1..12 {
            nested.push_str(&format!("l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}]\n", p = i - 1));
        }
        let e = err(&nested);
        assert_eq!(e.kind, YamlErrorKind::AliasLimit, "{e}");
        // Under the budget, expansion works as before.
        let small = format!("s: &s \"{big}\"\nl: [*s, *s, *s]\n");
        assert_eq!(val(&small)["l"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn nesting_is_capped_with_and_without_aliases() {
        let nest = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
        // The parser refuses 256 levels of one style by itself.
        assert!(one(&format!("{}\n", nest(200, "1"))).is_ok());
        assert_eq!(err(&format!("{}\n", nest(300, "1"))).kind, YamlErrorKind::Syntax);
        // Aliases stack: each anchor nests the previous one 200 levels deeper.
        let text = format!("a0: &a0 {}\na1: &a1 {}\n", nest(200, "1"), nest(200, "*a0"));
        assert!(one(&text).is_ok(), "401 levels are within {MAX_DEPTH}");
        let text = format!("{text}a2: &a2 {}\n", nest(200, "*a1"));
        let e = err(&text);
        assert_eq!(e.kind, YamlErrorKind::DepthLimit, "{e}");
        assert_eq!((e.line, e.column), (3, 9 + 200), "the alias is named: {e}");
        assert!(e.message.contains(&MAX_DEPTH.to_string()), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_never_the_value() {
        const SECRET: &str = "S3cretPassw0rd";
        for tag in ["!!int", "!!bool", "!!float", "!!null", "!!timestamp", "!!binary"] {
            let text = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {tag} {SECRET}\n");
            let e = err(&text);
            assert_eq!(e.kind, YamlErrorKind::Tag, "{tag}: {e}");
            let shown = e.to_string();
            assert!(!shown.contains(SECRET) && !format!("{e:?}").contains(SECRET), "{tag}: {shown}");
            assert_eq!(e.key.as_deref(), Some("stringData.password"), "{tag}: {shown}");
            assert_eq!((e.line, e.column), (6, 13), "{tag}: {shown}");
            assert!(shown.starts_with("document 1, line 6, column 13: at key stringData.password: the value is tagged"), "{shown}");
        }
        // Sequences, keys that are not words, and the top level.
        let e = err("spec:\n  containers:\n  - env:\n    - name: A\n      value: !!int S3cret\n");
        assert_eq!(e.key.as_deref(), Some("spec.containers[0].env[0].value"), "{e}");
        let e = err("metadata:\n  annotations:\n    helm.sh/hook: !!bool S3cret\n");
        assert_eq!(e.key.as_deref(), Some("metadata.annotations[\"helm.sh/hook\"]"), "{e}");
        let e = err("!!int S3cret\n");
        assert_eq!(e.key, None);
        assert!(!e.to_string().contains("S3cret"), "{e}");
    }

    #[test]
    fn merge_keys_follow_yaml_v2() {
        let v = val("defaults: &d {a: 1, b: 2}\nextra: &e {b: 20, c: 30}\n\
             one:\n  <<: *d\n  b: 3\n\
             list:\n  <<: [*d, *e]\n\
             later:\n  a: 0\n  <<: *d\n\
             tagged:\n  !!merge '<<': *e\n\
             quoted:\n  '<<': *e\n\
             inline:\n  <<: {k: v}\n  k: w\n");
        assert_eq!(v["one"], json!({"a": 1, "b": 3}));
        assert_eq!(
            v["list"],
            json!({"a": 1, "b": 2, "c": 30}),
            "earlier maps in the list win"
        );
        assert_eq!(
            v["later"],
            json!({"a": 1, "b": 2}),
            "yaml.v2: a merge overwrites keys written before it"
        );
        assert_eq!(v["tagged"], json!({"b": 20, "c": 30}));
        assert_eq!(
            v["quoted"],
            json!({"<<": {"b": 20, "c": 30}}),
            "a quoted << is an ordinary key"
        );
        assert_eq!(v["inline"], json!({"k": "w"}));
    }

    #[test]
    fn bad_merge_values_are_errors() {
        for text in ["a:\n  <<: 1\n", "a:\n  <<: [{x: 1}, 2]\n", "a:\n  <<: ~\n"] {
            let e = err(text);
            assert_eq!(e.kind, YamlErrorKind::Merge, "{text}");
            assert_eq!((e.line, e.column), (2, 3));
        }
        assert_eq!(
            err("a:\n  <<: {x: 1}\n  x: 2\n  x: 3\n").kind,
            YamlErrorKind::DuplicateKey
        );
    }

    #[test]
    fn errors_locate_in_the_stream_with_document_and_source() {
        let stream = "---\n# Source: app/templates/a.yaml\na: 1\n---\n# Source: app/templates/b.yaml\nkind: x\nmetadata:\n  name: a\n  name: b\n";
        let docs = split_stream(stream);
        assert!(parse_document(&docs[0]).is_ok());
        let e = parse_document(&docs[1]).unwrap_err();
        assert_eq!(e.document, 2);
        assert_eq!(e.source_path.as_deref(), Some("app/templates/b.yaml"));
        assert_eq!((e.line, e.column), (9, 3));
        assert_eq!(e.key.as_deref(), Some("metadata.name"));
        assert_eq!(
            e.to_string(),
            "document 2 (# Source: app/templates/b.yaml), line 9, column 3: at key metadata.name: duplicate mapping key \"name\""
        );
    }

    #[test]
    fn syntax_errors_locate_in_the_stream() {
        let docs = split_stream("a: 1\n---\nb: 1\n  c: 2\n");
        let e = parse_document(&docs[1]).unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Syntax);
        assert_eq!(e.document, 2);
        assert_eq!(e.source_path, None);
        assert_eq!((e.line, e.column), (4, 4), "{e}");
        assert_eq!(
            e.to_string(),
            format!("document 2, line 4, column 4: {}", e.message)
        );
    }

    #[test]
    fn crlf_bom_directives_and_end_markers() {
        assert_eq!(
            val("\u{feff}a: 1\r\nb: |\r\n  x\r\n  y\r\n"),
            json!({"a": 1, "b": "x\ny\n"})
        );
        assert_eq!(val("%YAML 1.1\n---\na: on\n...\n"), json!({"a": true}));
        assert_eq!(
            val("--- |\n  text"),
            json!("text"),
            "no line break is added at the end of input"
        );
    }
}
