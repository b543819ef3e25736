//! YAML stream I/O: split a multi-document stream, read documents the way Go reads them, and
//! write documents Go will read back unchanged.
//!
//! One of the binaries is a Helm post-renderer: it gets the rendered manifests as one YAML
//! stream, changes some documents and hands the stream back to Helm, which (like kubectl) reads
//! it with `sigs.k8s.io/yaml`, that is `gopkg.in/yaml.v2` plus a JSON conversion. Everything
//! here is shaped by that reader:
//!
//! * **Spans, so untouched documents stay byte-identical.** [`split_stream`] cuts the stream
//!   into [`RawDocument`]s whose texts concatenate back to the input. A caller re-emits only
//!   the documents it changed and copies every other chunk verbatim, so comments, quoting and
//!   key order of the rest of the release are not disturbed.
//! * **YAML 1.1 scalar rules.** yaml.v2 implements YAML 1.1: `yes`, `on`, `n` are booleans,
//!   `0755` is octal, `1_000` is a number. [`parse_document`] resolves scalars exactly as
//!   yaml.v2 does when decoding into `interface{}`, so the [`serde_json::Value`] we look at is
//!   the one Helm and the API server will see, not what a YAML 1.2 reader would see.
//! * **Quote anything ambiguous.** [`to_yaml_string`] writes block-style YAML like kubectl's
//!   output and quotes every string that a YAML 1.1 reader (yaml.v2 or the 1.1 spec), a YAML
//!   1.2 core reader, or the YAML syntax itself would not give back as the same string.
//!   `parse_document(to_yaml_string(v)) == v` holds for every value.
//! * **Comments inside a re-emitted document are lost.** The value model has no place for
//!   them; only the chunks passed through verbatim keep theirs. The `# Source:` line Helm puts
//!   at the top of each document is available as [`RawDocument::source`] so a caller can write
//!   it back above a re-emitted document.
//!
//! * **Fast where manifests are plain.** Rendered manifests are block YAML of one dialect;
//!   [`parse_document`] reads it line by line (`fast`) and hands everything else (anchors,
//!   tags, flow collections over several lines, folded scalars, every error) to the full
//!   reader, which agrees with it wherever both read (differential tests). [`scan_document`]
//!   checks a document the same way without building it, for callers that only need to know
//!   that it is a valid mapping and what its `apiVersion`, `kind` and name are.
//!
//! Decisions where YAML and JSON disagree (each is documented at [`parse_document`]):
//! `.inf`/`.nan` values are errors (JSON has no such numbers and Go's JSON conversion fails on
//! them too); integers up to `u64::MAX` stay exact and larger decimals become floats, as in Go;
//! merge keys overwrite in yaml.v2's order; duplicate keys are errors.

mod emit;
mod fast;
mod parse;
mod resolve;
mod stream;

#[cfg(test)]
mod tests;

use std::fmt;

pub use emit::{to_yaml_string, write_yaml};
pub use fast::{Field, Header, Shape, scan_document};
pub use parse::{MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_DEPTH, parse_document};
pub use stream::{RawDocument, split_stream};

/// Why a document could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum YamlErrorKind {
    /// Not well-formed YAML (reported by the YAML parser).
    Syntax,
    /// The same key appears twice in one mapping (after key conversion to strings).
    DuplicateKey,
    /// A key that has no JSON string form: null, an integer beyond `i64`, a mapping or a sequence.
    UnsupportedKey,
    /// A value does not fit its explicit tag, e.g. `!!int abc`, or `!!binary` that is not base64.
    Tag,
    /// A merge key `<<` whose value is not a mapping or a sequence of mappings.
    Merge,
    /// An alias to an anchor that is still being defined (a recursive structure).
    Alias,
    /// Aliases expand to more nodes or bytes than [`parse_document`] allows (a "billion laughs"
    /// guard: [`MAX_ALIAS_NODES`], [`MAX_ALIAS_BYTES`]).
    AliasLimit,
    /// Mappings and sequences nest deeper than [`MAX_DEPTH`].
    DepthLimit,
    /// `.inf`, `-.inf` or `.nan`: JSON numbers cannot hold them.
    NonFinite,
}

/// An error reading one document of a stream, located in the stream (not in the document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}{}, line {line}, column {column}: {message}", Origin(self.source_path.as_deref()))]
pub struct YamlError {
    /// 1-based index of the document in the stream ([`RawDocument::index`]).
    pub document: usize,
    /// The Helm template path from the document's `# Source:` comment, if any.
    pub source_path: Option<String>,
    /// 1-based line in the whole stream.
    pub line: usize,
    /// 1-based column (in characters) on that line.
    pub column: usize,
    /// The key path of the node the error is about (`data.password`, `spec.containers[0].image`),
    /// when it is inside a mapping or sequence. The message starts with it too.
    pub key: Option<String>,
    /// What went wrong, for callers that react to it.
    pub kind: YamlErrorKind,
    /// A sentence for humans, without the line and column. It never quotes a value of the
    /// document (a Secret's value would end up in logs), only keys.
    pub message: String,
}

struct Origin<'a>(Option<&'a str>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, " (# Source: {path})"),
            None => Ok(()),
        }
    }
}
