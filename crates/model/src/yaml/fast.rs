//! A fast reader for the block-style YAML that rendered manifests are made of.
//!
//! Helm charts, kubectl and controller-gen write one dialect: block mappings and sequences
//! (sequences level with their key, `- ` items holding compact mappings), plain scalars folded
//! over several lines, single- and double-quoted scalars, literal block scalars for embedded
//! files, comments, and the odd `[]`, `{}` or `["ALL"]`. This module reads exactly that subset
//! line by line, without the general YAML scanner's token queue, and **declines** everything
//! else: anchors, aliases, tags, explicit `?` keys, merge keys, multi-line flow collections,
//! folded (`>`) and keep-chomped (`|+`) block scalars, indentation indicators, tabs outside
//! block-scalar content, `\r` line breaks, a BOM, directives, control characters, NEL and the
//! Unicode line separators, deep nesting, long keys, and every shape it is not sure about.
//!
//! It never reports an error. Where the full reader ([`super::parse_document`]) would refuse a
//! document, this one declines it, so errors (and their positions and messages) always come from
//! the full reader; where it accepts, it gives what the full reader gives. Both are checked
//! against each other by differential tests (`fast_agrees_*` in this module's tests) on
//! generated documents, on mutated ones, and on every YAML file of the repository.
//!
//! Two modes share the code (`B`, a const generic):
//! * **build** (`B = true`): the document's [`Value`], as [`super::parse_document`] builds it;
//! * **check** (`B = false`): only whether the document is a valid mapping, plus its
//!   `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` ([`Header`]); no value is
//!   built, so reading a large CustomResourceDefinition or an embedded file costs little more
//!   than finding its line breaks.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;

use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::RawDocument;
use super::parse::{key_string, scalar_value};
use super::resolve::{Resolved, Scalar, resolve_plain};

/// The fast reader declines the document: read it with the full reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Declined;

type Read<T> = Result<T, Declined>;

/// Deepest nesting the fast reader takes (the full reader's limits are higher; deeper documents
/// are declined, not refused).
const MAX_FAST_DEPTH: usize = 128;
/// Longest key the fast reader takes, in bytes (YAML limits implicit keys to 1024 characters).
const MAX_FAST_KEY: usize = 512;

/// A field of a document's [`Header`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field {
    /// The document has no such key.
    #[default]
    Absent,
    /// The value is this string.
    Str(String),
    /// The value is something else: a number, a boolean, null, a collection.
    Other,
}

impl Field {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The identity fields of a document that [`scan_document`] accepted, as the parsed object has
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub api_version: Field,
    pub kind: Field,
    /// `metadata.name` ([`Field::Absent`] also when `metadata` is not a mapping).
    pub name: Field,
    /// `metadata.namespace`.
    pub namespace: Field,
}

/// What [`scan_document`] learned about a document without building it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// No node (blank, comment lines, a bare `---`): [`super::parse_document`] returns
    /// `Ok(None)`.
    Empty,
    /// A mapping: [`super::parse_document`] returns `Ok(Some(object))`, and the object's identity
    /// fields are these.
    Mapping(Header),
    /// Not decided by the scan (outside the subset it reads, or invalid): only
    /// [`super::parse_document`] can tell.
    Unknown,
}

/// Checks a document without building it: whether it is valid YAML that
/// [`super::parse_document`] reads as a mapping (or as no node at all), with its identity fields.
///
/// Cheap: it looks at each line's indentation and first characters, skips the content of block
/// scalars after checking their characters, and allocates only for unusual keys. Documents it
/// does not read (see the module docs) are [`Shape::Unknown`]; it never says `Mapping` or `Empty`
/// for a document [`super::parse_document`] refuses.
#[must_use]
pub fn scan_document(doc: &RawDocument<'_>) -> Shape {
    let mut r = Reader::<false>::new(doc.text);
    match r.document() {
        Ok(None) => Shape::Empty,
        Ok(Some(_)) if !r.opaque => Shape::Mapping(r.header),
        Ok(Some(_)) => Shape::Unknown,
        Err(Declined) => Shape::Unknown,
    }
}

/// Reads a document with the fast reader: `Ok(None)` for no node, `Ok(Some(object))` for a
/// mapping, exactly as [`super::parse_document`] would return them.
pub(crate) fn read_document(text: &str) -> Read<Option<Value>> {
    Reader::<true>::new(text).document()
}

/// One line of the document: `[start, end)` without its `\n`; `next` starts the next line.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    /// Leading spaces.
    indent: usize,
    end: usize,
    next: usize,
}

impl Line {
    fn content_start(&self) -> usize {
        self.start + self.indent
    }

    fn is_blank(&self) -> bool {
        self.content_start() == self.end
    }
}

/// Where a mapping sits, for the [`Header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    Metadata,
    Other,
}

/// Which header field a scalar value fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    ApiVersion,
    Kind,
    Name,
    Namespace,
}

/// What holds a node: a mapping value may be a sequence level with its key; a sequence item may
/// be a compact mapping on the dash's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    Map,
    Seq,
}

struct Reader<'a, const B: bool> {
    text: &'a str,
    b: &'a [u8],
    /// Start of the current, not yet consumed line.
    pos: usize,
    depth: usize,
    /// Whether the document has a tab anywhere (only then are lines searched for one).
    tabs: bool,
    /// Keys of the open mappings (check mode; build mode has the maps themselves).
    keys: Vec<Cow<'a, str>>,
    header: Header,
    /// A header field the scalar being read fills (check mode builds that one string).
    wanted: Option<Wanted>,
    /// `metadata` was read as a block mapping (else its fields are not in the header, and the
    /// scan leaves the document to the full reader).
    metadata_read: bool,
    /// The root has a `metadata` key that was not read as a block mapping.
    opaque: bool,
    /// The line [`Self::line_at`] found last.
    last: Cell<Line>,
}

fn is_dash(c: &[u8]) -> bool {
    c.first() == Some(&b'-') && matches!(c.get(1), None | Some(b' '))
}

/// `---` or `...` at column 0 followed by a blank or the end of the line.
fn is_marker(c: &[u8], ch: u8) -> bool {
    c.len() >= 3
        && c[0] == ch
        && c[1] == ch
        && c[2] == ch
        && matches!(c.get(3), None | Some(b' ' | b'\t'))
}

/// Characters that may not start a plain scalar (or that the fast reader does not take there).
fn bad_plain_start(c: u8) -> bool {
    matches!(
        c,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// Whether the rest of a line after a node is blank or a comment (a `#` after a space).
fn blank_or_comment(rest: &[u8]) -> bool {
    let n = rest.iter().take_while(|&&c| c == b' ').count();
    n == rest.len() || (n > 0 && rest[n] == b'#')
}

/// Checks every character of the document: printable for YAML, no `\r`, no NEL or Unicode line
/// separators (YAML 1.1 line breaks), no BOM. Returns whether there is a tab.
fn check_characters(text: &str) -> Read<bool> {
    let b = text.as_bytes();
    let mut tabs = false;
    let mut suspect = false;
    for chunk in b.chunks(64) {
        let mut odd = false;
        for &c in chunk {
            odd |= (c < 0x20 && c != b'\n') | (c >= 0x7f);
        }
        if odd {
            suspect = true;
            for &c in chunk {
                match c {
                    b'\t' => tabs = true,
                    b'\n' | 0x20..=0x7e | 0x80..=0xff => {}
                    _ => return Err(Declined),
                }
            }
        }
    }
    if suspect && !text.is_ascii() {
        for ch in text.chars() {
            if matches!(
                ch as u32,
                0x80..=0x9f | 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff
            ) {
                return Err(Declined);
            }
        }
    }
    Ok(tabs)
}

impl<'a, const B: bool> Reader<'a, B> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            b: text.as_bytes(),
            pos: 0,
            depth: 0,
            tabs: false,
            keys: Vec::new(),
            header: Header::default(),
            wanted: None,
            metadata_read: false,
            opaque: false,
            last: Cell::new(Line {
                start: 0,
                indent: 0,
                end: 0,
                next: 0,
            }),
        }
    }

    fn line_at(&self, start: usize) -> Option<Line> {
        if start >= self.b.len() {
            return None;
        }
        // A line is looked at several times (skipping blanks, then as a key, as a possible
        // continuation): the last one found is kept.
        let last = self.last.get();
        if last.start == start && last.next > start {
            return Some(last);
        }
        let (end, next) = match memchr::memchr(b'\n', &self.b[start..]) {
            Some(i) => (start + i, start + i + 1),
            None => (self.b.len(), self.b.len()),
        };
        let indent = self.b[start..end]
            .iter()
            .take_while(|&&c| c == b' ')
            .count();
        let line = Line {
            start,
            indent,
            end,
            next,
        };
        self.last.set(line);
        Some(line)
    }

    fn line(&self) -> Option<Line> {
        self.line_at(self.pos)
    }

    /// A line read for its structure must have no tab.
    fn no_tab(&self, l: &Line) -> Read<()> {
        if self.tabs && self.b[l.start..l.end].contains(&b'\t') {
            return Err(Declined);
        }
        Ok(())
    }

    fn content(&self, l: &Line) -> &'a [u8] {
        &self.b[l.content_start()..l.end]
    }

    /// Skips blank and comment lines.
    fn skip_blank(&mut self) -> Read<()> {
        while let Some(l) = self.line() {
            let c = self.content(&l);
            if c.is_empty() || c[0] == b'#' {
                self.no_tab(&l)?;
                self.pos = l.next;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn document(&mut self) -> Read<Option<Value>> {
        self.tabs = check_characters(self.text)?;
        // Prelude: blank and comment lines, at most one `---` line (with nothing but a comment).
        let mut marker = false;
        loop {
            self.skip_blank()?;
            let Some(l) = self.line() else {
                return Ok(None);
            };
            self.no_tab(&l)?;
            let c = self.content(&l);
            if l.indent == 0 && is_marker(c, b'-') && !marker {
                if !blank_or_comment(&c[3..]) {
                    return Err(Declined);
                }
                marker = true;
                self.pos = l.next;
                continue;
            }
            if l.indent == 0 && is_marker(c, b'.') {
                self.pos = l.next;
                self.end()?;
                return Ok(None);
            }
            if l.indent != 0 || c[0] == b'%' || is_marker(c, b'-') {
                return Err(Declined);
            }
            break;
        }
        let root = self.mapping(0, None, Place::Root)?;
        self.end()?;
        Ok(Some(root))
    }

    /// After the root node: blank and comment lines, at most a `...` line with more of them.
    fn end(&mut self) -> Read<()> {
        let mut closed = false;
        loop {
            self.skip_blank()?;
            let Some(l) = self.line() else { return Ok(()) };
            self.no_tab(&l)?;
            let c = self.content(&l);
            if !closed && l.indent == 0 && is_marker(c, b'.') && blank_or_comment(&c[3..]) {
                closed = true;
                self.pos = l.next;
                continue;
            }
            return Err(Declined);
        }
    }

    fn enter(&mut self) -> Read<()> {
        self.depth += 1;
        if self.depth > MAX_FAST_DEPTH {
            return Err(Declined);
        }
        Ok(())
    }

    /// A block mapping whose keys are at column `n`. `first`: the first key starts mid-line at
    /// this byte (a compact mapping after a `- `).
    fn mapping(&mut self, n: usize, mut first: Option<usize>, place: Place) -> Read<Value> {
        self.enter()?;
        if place == Place::Metadata {
            self.metadata_read = true;
        }
        let mut map = Map::new();
        let base = self.keys.len();
        let mut large: Option<HashSet<Cow<'a, str>>> = None;
        loop {
            let (l, key_at) = match first.take() {
                Some(at) => (self.line().ok_or(Declined)?, at),
                None => {
                    self.skip_blank()?;
                    let Some(l) = self.line() else { break };
                    if l.indent < n {
                        break;
                    }
                    let c = self.content(&l);
                    if n == 0 && (is_marker(c, b'-') || is_marker(c, b'.')) {
                        break;
                    }
                    if l.indent > n || is_dash(c) {
                        return Err(Declined);
                    }
                    (l, l.content_start())
                }
            };
            self.no_tab(&l)?;
            let (key, after) = self.key(&l, key_at)?.ok_or(Declined)?;
            if !B {
                // Duplicates: a linear search in small mappings, a set in large ones.
                if let Some(set) = &mut large {
                    if !set.insert(key.clone()) {
                        return Err(Declined);
                    }
                } else {
                    if self.keys[base..].contains(&key) {
                        return Err(Declined);
                    }
                    if self.keys.len() - base >= 32 {
                        large = Some(
                            self.keys[base..]
                                .iter()
                                .cloned()
                                .chain([key.clone()])
                                .collect(),
                        );
                    }
                }
                self.keys.push(key.clone());
            }
            let child = match (place, key.as_ref()) {
                (Place::Root, "metadata") => Place::Metadata,
                _ => Place::Other,
            };
            self.wanted = match (place, key.as_ref()) {
                (Place::Root, "apiVersion") => Some(Wanted::ApiVersion),
                (Place::Root, "kind") => Some(Wanted::Kind),
                (Place::Metadata, "name") => Some(Wanted::Name),
                (Place::Metadata, "namespace") => Some(Wanted::Namespace),
                _ => None,
            };
            let wanted = self.wanted;
            let value = self.value(n, after, &l, Parent::Map, child)?;
            if child == Place::Metadata && !self.metadata_read {
                self.opaque = true;
            }
            if let Some(w) = wanted {
                let field = match &value {
                    Value::String(s) => Field::Str(s.clone()),
                    _ => Field::Other,
                };
                let slot = match w {
                    Wanted::ApiVersion => &mut self.header.api_version,
                    Wanted::Kind => &mut self.header.kind,
                    Wanted::Name => &mut self.header.name,
                    Wanted::Namespace => &mut self.header.namespace,
                };
                *slot = field;
            }
            self.wanted = None;
            if B {
                match map.entry(key.into_owned()) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(_) => return Err(Declined),
                }
            }
        }
        self.keys.truncate(base);
        self.depth -= 1;
        Ok(if B { Value::Object(map) } else { Value::Null })
    }

    /// The key at `at` on line `l` and the position after its `:`; `None` if the line holds no
    /// key there.
    fn key(&self, l: &Line, at: usize) -> Read<Option<(Cow<'a, str>, usize)>> {
        let c = &self.b[at..l.end];
        let Some(&first) = c.first() else {
            return Ok(None);
        };
        if first == b'"' || first == b'\'' {
            let Some((text, close)) = self.quoted_key(at, l.end)? else {
                return Ok(None);
            };
            let mut i = close;
            while i < l.end && self.b[i] == b' ' {
                i += 1;
            }
            if i < l.end
                && self.b[i] == b':'
                && matches!(self.b.get(i + 1), None | Some(b' ' | b'\n'))
                && i + 1 - at <= MAX_FAST_KEY
            {
                return Ok(Some((text, i + 1)));
            }
            return Ok(None);
        }
        if bad_plain_start(first) {
            return Ok(None);
        }
        // The first `:` followed by a blank or the end of the line, unless a comment starts first.
        let mut i = 0;
        while i < c.len() {
            match c[i] {
                b':' if matches!(c.get(i + 1), None | Some(b' ')) => break,
                b'#' if c[i - 1] == b' ' => return Ok(None),
                _ => i += 1,
            }
        }
        if i == c.len() || i > MAX_FAST_KEY {
            return Ok(None);
        }
        let mut end = i;
        while c[end - 1] == b' ' {
            end -= 1;
        }
        let text = &self.text[at..at + end];
        Ok(Some((plain_key(text)?, at + i + 1)))
    }

    /// A quoted key on one line: its text and the position after the closing quote.
    fn quoted_key(&self, at: usize, end: usize) -> Read<Option<(Cow<'a, str>, usize)>> {
        let quote = self.b[at];
        let mut i = at + 1;
        let mut owned: Option<String> = None;
        let mut from = i;
        while i < end {
            let c = self.b[i];
            if c == quote {
                if quote == b'\'' && self.b.get(i + 1) == Some(&b'\'') {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.text[from..=i]);
                    i += 2;
                    from = i;
                    continue;
                }
                let text = match owned {
                    Some(mut s) => {
                        s.push_str(&self.text[from..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&self.text[from..i]),
                };
                return Ok(Some((text, i + 1)));
            }
            if quote == b'"' && c == b'\\' {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&self.text[from..i]);
                i = escape(self.b, i, end, Some(s))?;
                from = i;
                continue;
            }
            i += 1;
        }
        Ok(None)
    }

    /// The value after a `:` or `-` at `after` on line `l`, in a collection at column `n`.
    fn value(
        &mut self,
        n: usize,
        after: usize,
        l: &Line,
        parent: Parent,
        place: Place,
    ) -> Read<Value> {
        let mut i = after;
        while i < l.end && self.b[i] == b' ' {
            i += 1;
        }
        if i < l.end && i == after {
            // `key:x` or `-x` never get here (they are no key or dash); anything else is odd.
            return Err(Declined);
        }
        let rest = &self.b[i..l.end];
        if rest.is_empty() || rest[0] == b'#' {
            self.pos = l.next;
            return self.block_value(n, parent, place);
        }
        if parent == Parent::Seq && self.key(l, i)?.is_some() {
            // A compact mapping: `- key: value`, its keys at this column.
            return self.mapping(i - l.start, Some(i), place);
        }
        match rest[0] {
            b'|' | b'>' => self.block_scalar(n, i, l),
            b'"' | b'\'' => self.quoted(n, i),
            b'[' | b'{' => self.flow_line(i, l),
            b'-' if is_dash(rest) => Err(Declined),
            c if bad_plain_start(c) && c != b'-' => Err(Declined),
            _ => self.plain(n, i, l),
        }
    }

    /// A value on the lines after its key or dash (the current line is the next one).
    fn block_value(&mut self, n: usize, parent: Parent, place: Place) -> Read<Value> {
        self.skip_blank()?;
        let Some(l) = self.line() else {
            return Ok(Value::Null);
        };
        let c = self.content(&l);
        if l.indent < n || (n == 0 && l.indent == 0 && (is_marker(c, b'-') || is_marker(c, b'.'))) {
            return Ok(Value::Null);
        }
        if l.indent == n {
            return if parent == Parent::Map && is_dash(c) {
                self.sequence(n)
            } else {
                Ok(Value::Null)
            };
        }
        self.no_tab(&l)?;
        if is_dash(c) {
            return self.sequence(l.indent);
        }
        match c[0] {
            b'"' | b'\'' | b'[' | b'{' | b'|' | b'>' => {
                if self.key(&l, l.content_start())?.is_some() {
                    return self.mapping(l.indent, None, place);
                }
                match c[0] {
                    b'"' | b'\'' => self.quoted(n, l.content_start()),
                    b'[' | b'{' => self.flow_line(l.content_start(), &l),
                    _ => Err(Declined),
                }
            }
            first if bad_plain_start(first) && first != b'-' => Err(Declined),
            _ => {
                if self.key(&l, l.content_start())?.is_some() {
                    self.mapping(l.indent, None, place)
                } else {
                    self.plain(n, l.content_start(), &l)
                }
            }
        }
    }

    /// A block sequence whose dashes are at column `m`.
    fn sequence(&mut self, m: usize) -> Read<Value> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            let Some(l) = self.line() else { break };
            if l.indent < m {
                break;
            }
            if l.indent > m {
                return Err(Declined);
            }
            let c = self.content(&l);
            if !is_dash(c) {
                break;
            }
            self.no_tab(&l)?;
            let item = self.value(m, l.content_start() + 1, &l, Parent::Seq, Place::Other)?;
            if B {
                items.push(item);
            }
        }
        self.depth -= 1;
        Ok(if B { Value::Array(items) } else { Value::Null })
    }

    /// Whether a scalar's text is needed: always when building, else for a header field.
    fn keep(&self) -> bool {
        B || self.wanted.is_some()
    }

    /// A plain scalar starting at `at` on line `l`, continued on lines indented more than `n`.
    fn plain(&mut self, n: usize, at: usize, l: &Line) -> Read<Value> {
        let (first, mut commented) = self.plain_line(at, l.end)?;
        let mut folded: Option<String> = None;
        self.pos = l.next;
        // Continuation lines: more indented than the collection, not a comment.
        let mut empty = 0usize;
        let mut scan = self.pos;
        while let Some(next) = self.line_at(scan) {
            if next.is_blank() {
                empty += 1;
                scan = next.next;
                continue;
            }
            let c = self.content(&next);
            if next.indent <= n || c[0] == b'#' {
                break;
            }
            if commented {
                // A comment cannot sit inside a multi-line scalar.
                return Err(Declined);
            }
            self.no_tab(&next)?;
            let (text, comment) = self.plain_line(next.content_start(), next.end)?;
            commented = comment;
            if self.keep() {
                let s = folded.get_or_insert_with(|| first.to_string());
                if empty == 0 {
                    s.push(' ');
                } else {
                    s.extend(std::iter::repeat_n('\n', empty));
                }
                s.push_str(text);
            } else if folded.is_none() {
                folded = Some(String::new());
            }
            empty = 0;
            scan = next.next;
            self.pos = scan;
        }
        if !self.keep() {
            // Only a one-line scalar can be `.inf` or `.nan`, which JSON cannot hold.
            if folded.is_none() && matches!(first.as_bytes().first(), Some(b'.' | b'+' | b'-')) {
                scalar_value(Scalar::from_resolved(resolve_plain(first), ""))
                    .map_err(|_| Declined)?;
            }
            return Ok(Value::Null);
        }
        let text = folded.map_or(Cow::Borrowed(first), Cow::Owned);
        let resolved = resolve_plain(&text);
        if let Resolved::Str = resolved {
            return Ok(Value::String(text.into_owned()));
        }
        scalar_value(Scalar::from_resolved(resolved, "")).map_err(|_| Declined)
    }

    /// One line's part of a plain scalar: up to a comment or the end of the line, trailing
    /// spaces removed, and whether a comment follows. Declines `: ` inside (a mapping where
    /// none may start).
    fn plain_line(&self, at: usize, end: usize) -> Read<(&'a str, bool)> {
        let c = &self.b[at..end];
        let mut stop = c.len();
        let mut comment = false;
        for i in 0..c.len() {
            match c[i] {
                b':' if matches!(c.get(i + 1), None | Some(b' ')) => return Err(Declined),
                b'#' if i > 0 && c[i - 1] == b' ' => {
                    stop = i;
                    comment = true;
                    break;
                }
                _ => {}
            }
        }
        while stop > 0 && c[stop - 1] == b' ' {
            stop -= 1;
        }
        Ok((&self.text[at..at + stop], comment))
    }

    /// A quoted scalar starting at `at` (on the current line), continued on lines indented more
    /// than `n`; the rest of its last line must be blank or a comment.
    ///
    /// Line breaks inside fold as in YAML: white space around the break goes, one break becomes a
    /// space, a break followed by empty lines becomes one line feed per empty line.
    fn quoted(&mut self, n: usize, at: usize) -> Read<Value> {
        let quote = self.b[at];
        let keep = self.keep();
        let mut out = String::new();
        // `out[..kept]` ends with an escape: trailing white space before a break goes, escaped
        // white space stays.
        let mut kept = 0;
        let mut i = at + 1;
        let mut from = i;
        let mut l = self.line_at(self.line_start(at)).ok_or(Declined)?;
        self.no_tab(&l)?;
        loop {
            if i >= l.end {
                // A line break inside: fold it.
                if keep {
                    out.push_str(&self.text[from..l.end]);
                    let trimmed = trim_spaces_end(&out, kept);
                    out.truncate(trimmed);
                }
                let mut empty = 0;
                let mut next = self.line_at(l.next).ok_or(Declined)?;
                while next.is_blank() {
                    empty += 1;
                    next = self.line_at(next.next).ok_or(Declined)?;
                }
                if next.indent <= n {
                    return Err(Declined);
                }
                self.no_tab(&next)?;
                if keep {
                    if empty == 0 {
                        out.push(' ');
                    } else {
                        out.extend(std::iter::repeat_n('\n', empty));
                    }
                }
                l = next;
                i = l.content_start();
                from = i;
                continue;
            }
            let c = self.b[i];
            if c == quote {
                if quote == b'\'' && self.b.get(i + 1) == Some(&b'\'') {
                    if keep {
                        out.push_str(&self.text[from..=i]);
                        kept = out.len();
                    }
                    i += 2;
                    from = i;
                    continue;
                }
                break;
            }
            if quote == b'"' && c == b'\\' {
                if i + 1 >= l.end {
                    // An escaped line break.
                    return Err(Declined);
                }
                if keep {
                    out.push_str(&self.text[from..i]);
                    i = escape(self.b, i, l.end, Some(&mut out))?;
                    kept = out.len();
                } else {
                    i = escape(self.b, i, l.end, None)?;
                }
                from = i;
                continue;
            }
            i += 1;
        }
        if keep {
            out.push_str(&self.text[from..i]);
        }
        if !blank_or_comment(&self.b[i + 1..l.end]) {
            return Err(Declined);
        }
        self.pos = l.next;
        Ok(if keep {
            Value::String(out)
        } else {
            Value::Null
        })
    }

    fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map_or(0, |i| i + 1)
    }

    /// A literal block scalar (`|`, `|-`) whose indicator is at `at` on line `l`, in a collection
    /// at column `n`.
    fn block_scalar(&mut self, n: usize, at: usize, l: &Line) -> Read<Value> {
        if self.b[at] != b'|' {
            return Err(Declined);
        }
        let mut i = at + 1;
        let strip = self.b.get(i) == Some(&b'-') && i < l.end;
        if strip {
            i += 1;
        }
        if i < l.end && !matches!(self.b[i], b' ') {
            // `|+`, an indentation indicator, or something else.
            return Err(Declined);
        }
        if !blank_or_comment(&self.b[i..l.end]) {
            return Err(Declined);
        }
        // The first non-empty line sets the content's indentation.
        let mut scan = l.next;
        let mut leading_max = 0;
        let m = loop {
            let Some(next) = self.line_at(scan) else {
                return Err(Declined);
            };
            let spaces = next.indent;
            if next.start + spaces == next.end {
                leading_max = leading_max.max(spaces);
                scan = next.next;
                continue;
            }
            if self.b[next.start + spaces] == b'\t' || spaces <= n || leading_max > spaces {
                return Err(Declined);
            }
            break spaces;
        };
        let keep = self.keep();
        let mut out = String::new();
        let mut pending = 0usize;
        let mut scan = l.next;
        // Whether the last content line ended with a line break.
        let mut last_break = false;
        let mut any = false;
        while let Some(next) = self.line_at(scan) {
            let spaces = next.indent;
            if next.start + spaces == next.end {
                if spaces > m {
                    return Err(Declined);
                }
                pending += 1;
                scan = next.next;
                continue;
            }
            if spaces < m {
                if self.b[next.start + spaces] == b'\t' {
                    return Err(Declined);
                }
                break;
            }
            if keep {
                if any {
                    out.push('\n');
                }
                out.extend(std::iter::repeat_n('\n', pending));
                out.push_str(&self.text[next.start + m..next.end]);
            }
            any = true;
            pending = 0;
            last_break = next.next > next.end;
            scan = next.next;
            self.pos = scan;
        }
        if !any {
            return Err(Declined);
        }
        if keep && !strip && last_break {
            out.push('\n');
        }
        Ok(if keep {
            Value::String(out)
        } else {
            Value::Null
        })
    }

    /// A flow collection on one line, starting at `at` on line `l`; the rest of the line must be
    /// blank or a comment.
    fn flow_line(&mut self, at: usize, l: &Line) -> Read<Value> {
        let (value, end) = self.flow(at, l.end)?;
        if !blank_or_comment(&self.b[end..l.end]) {
            return Err(Declined);
        }
        self.pos = l.next;
        Ok(value)
    }

    /// A flow collection `[...]` or `{...}` at `at`, within `[at, end)`: its value and the
    /// position after its closing bracket.
    fn flow(&mut self, at: usize, end: usize) -> Read<(Value, usize)> {
        self.enter()?;
        let open = self.b[at];
        let close = if open == b'[' { b']' } else { b'}' };
        let mut items = Vec::new();
        let mut map = Map::new();
        let mut keys: Vec<Cow<'a, str>> = Vec::new();
        let mut i = skip_spaces(self.b, at + 1, end);
        if i < end && self.b[i] == close {
            self.depth -= 1;
            let value = if !B {
                Value::Null
            } else if open == b'[' {
                Value::Array(items)
            } else {
                Value::Object(map)
            };
            return Ok((value, i + 1));
        }
        loop {
            if open == b'{' {
                let (key, after) = self.flow_key(i, end)?;
                if B {
                    if map.contains_key(key.as_ref()) {
                        return Err(Declined);
                    }
                } else {
                    if keys.contains(&key) {
                        return Err(Declined);
                    }
                    keys.push(key.clone());
                }
                let j = skip_spaces(self.b, after, end);
                let (value, next) = self.flow_node(j, end)?;
                if B {
                    map.insert(key.into_owned(), value);
                }
                i = next;
            } else {
                let (value, next) = self.flow_node(i, end)?;
                if B {
                    items.push(value);
                }
                i = next;
            }
            i = skip_spaces(self.b, i, end);
            match self.b.get(i) {
                Some(&b',') if i < end => {
                    i = skip_spaces(self.b, i + 1, end);
                    if i >= end || self.b[i] == close {
                        // A trailing comma.
                        return Err(Declined);
                    }
                }
                Some(&c) if c == close && i < end => {
                    self.depth -= 1;
                    let value = if !B {
                        Value::Null
                    } else if open == b'[' {
                        Value::Array(items)
                    } else {
                        Value::Object(map)
                    };
                    return Ok((value, i + 1));
                }
                _ => return Err(Declined),
            }
        }
    }

    /// A key in a flow mapping and the position after its `: `.
    fn flow_key(&self, at: usize, end: usize) -> Read<(Cow<'a, str>, usize)> {
        let Some(&first) = self.b.get(at).filter(|_| at < end) else {
            return Err(Declined);
        };
        let (key, after) = if first == b'"' || first == b'\'' {
            self.quoted_key(at, end)?.ok_or(Declined)?
        } else {
            if bad_plain_start(first) {
                return Err(Declined);
            }
            let mut i = at;
            while i < end && !matches!(self.b[i], b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#') {
                i += 1;
            }
            let mut stop = i;
            while stop > at && self.b[stop - 1] == b' ' {
                stop -= 1;
            }
            if stop == at {
                return Err(Declined);
            }
            (plain_key(&self.text[at..stop])?, i)
        };
        if after < end
            && self.b[after] == b':'
            && matches!(self.b.get(after + 1), Some(b' '))
            && after + 1 < end
        {
            return Ok((key, after + 1));
        }
        Err(Declined)
    }

    /// A node inside a flow collection: a quoted or plain scalar or a nested collection.
    fn flow_node(&mut self, at: usize, end: usize) -> Read<(Value, usize)> {
        let Some(&first) = self.b.get(at).filter(|_| at < end) else {
            return Err(Declined);
        };
        match first {
            b'[' | b'{' => self.flow(at, end),
            b'"' | b'\'' => {
                let (text, after) = self.quoted_key(at, end)?.ok_or(Declined)?;
                Ok((
                    if self.keep() {
                        Value::String(text.into_owned())
                    } else {
                        Value::Null
                    },
                    after,
                ))
            }
            b'-' if matches!(
                self.b.get(at + 1),
                Some(b' ' | b',' | b'[' | b']' | b'{' | b'}')
            ) || at + 1 >= end =>
            {
                Err(Declined)
            }
            c if bad_plain_start(c) && c != b'-' => Err(Declined),
            _ => {
                let mut i = at;
                while i < end {
                    match self.b[i] {
                        b',' | b'[' | b']' | b'{' | b'}' => break,
                        // `: ` would make a pair; a comment ends the line.
                        b':' if matches!(self.b.get(i + 1), Some(b' ' | b',' | b']' | b'}'))
                            || i + 1 == end =>
                        {
                            return Err(Declined);
                        }
                        b'#' if self.b[i - 1] == b' ' => return Err(Declined),
                        _ => i += 1,
                    }
                }
                let mut stop = i;
                while self.b[stop - 1] == b' ' {
                    stop -= 1;
                }
                let text = &self.text[at..stop];
                let resolved = resolve_plain(text);
                let value = match resolved {
                    Resolved::Str if self.keep() => Value::String(text.to_owned()),
                    Resolved::Str => Value::Null,
                    r => scalar_value(Scalar::from_resolved(r, "")).map_err(|_| Declined)?,
                };
                Ok((value, i))
            }
        }
    }
}

fn skip_spaces(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && b[i] == b' ' {
        i += 1;
    }
    i
}

/// Where `s[..]` would end with trailing spaces removed, but not before `kept`.
fn trim_spaces_end(s: &str, kept: usize) -> usize {
    let b = s.as_bytes();
    let mut end = b.len();
    while end > kept && b[end - 1] == b' ' {
        end -= 1;
    }
    end
}

/// A plain key's JSON string (as [`super::parse_document`] converts keys), declining the merge
/// key and keys that have no string form.
fn plain_key(text: &str) -> Read<Cow<'_, str>> {
    if text == "<<" {
        return Err(Declined);
    }
    match resolve_plain(text) {
        Resolved::Str => Ok(Cow::Borrowed(text)),
        r => key_string(Scalar::from_resolved(r, ""))
            .map(Cow::Owned)
            .map_err(|_| Declined),
    }
}

/// Decodes the escape at `b[at] == '\\'` (within `[at, end)`) into `out`; returns the position
/// after it. Declines escapes the full reader refuses or reads specially (surrogates).
fn escape(b: &[u8], at: usize, end: usize, out: Option<&mut String>) -> Read<usize> {
    let Some(&e) = b.get(at + 1).filter(|_| at + 1 < end) else {
        return Err(Declined);
    };
    let simple = match e {
        b'0' => '\0',
        b'a' => '\x07',
        b'b' => '\x08',
        b't' => '\t',
        b'n' => '\n',
        b'v' => '\x0b',
        b'f' => '\x0c',
        b'r' => '\r',
        b'e' => '\x1b',
        b' ' => ' ',
        b'"' => '"',
        b'/' => '/',
        b'\\' => '\\',
        b'N' => '\u{85}',
        b'_' => '\u{a0}',
        b'L' => '\u{2028}',
        b'P' => '\u{2029}',
        b'x' | b'u' | b'U' => {
            let len = match e {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let digits = b
                .get(at + 2..at + 2 + len)
                .filter(|_| at + 2 + len <= end)
                .ok_or(Declined)?;
            let mut code = 0u32;
            for &d in digits {
                let v = (d as char).to_digit(16).ok_or(Declined)?;
                code = (code << 4) | v;
            }
            let c = char::from_u32(code).ok_or(Declined)?;
            if let Some(out) = out {
                out.push(c);
            }
            return Ok(at + 2 + len);
        }
        _ => return Err(Declined),
    };
    if let Some(out) = out {
        out.push(simple);
    }
    Ok(at + 2)
}

#[cfg(test)]
mod tests;
