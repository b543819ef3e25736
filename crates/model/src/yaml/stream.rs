//! Splitting a multi-document YAML stream into per-document chunks (see [`split_stream`]).

use std::ops::Range;

/// One document of a multi-document YAML stream, as it appears in the input.
///
/// `text` is the exact chunk, including its leading `---` line (when it has one), the comment
/// and directive lines before it, and any trailing `...` line, so that the texts of all
/// documents returned by [`split_stream`] concatenate back to the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDocument<'a> {
    /// 1-based position of this document in the stream.
    pub index: usize,
    /// Byte range of `text` in the input passed to [`split_stream`].
    pub span: Range<usize>,
    /// The chunk itself: `&input[span]`.
    pub text: &'a str,
    /// 1-based line of the input on which `text` starts.
    pub line: usize,
    /// Template path from a Helm `# Source: <path>` comment among the comment lines at the top
    /// of the document (before its first content line), if there is one.
    pub source: Option<String>,
}

/// Splits a multi-document YAML stream into its documents, keeping every byte.
///
/// An empty input yields no documents; a stream that is only comments yields one document,
/// which [`parse_document`](super::parse_document) reports as empty. Never fails: what the
/// chunks contain is judged when they are parsed.
///
/// # The rule
///
/// A line is a *document-start marker* when it begins at column 0 with `---` followed by a space,
/// a tab, a line break or the end of input, and a *document-end marker* when it begins with `...`
/// followed by the same. Line breaks are LF, CRLF and a lone CR (the YAML line breaks). Reading
/// the stream line by line:
///
/// * a document-start marker ends the current chunk and opens a new one at that line, unless the
///   current chunk has so far held only a prelude (blank lines, comment lines, `%` directives, a
///   leading BOM): then the marker belongs to that chunk, which is the document the prelude
///   introduces;
/// * a document-end marker stays in the current chunk and closes it: blank and comment lines
///   after it stay there too, and the next directive, marker or content line opens a new chunk
///   (a directive then leads that new chunk, together with the `---` that must follow it);
/// * every other line belongs to the current chunk.
///
/// # Why this is YAML-correct
///
/// In both YAML 1.1 and 1.2 a `---` or `...` at column 0 followed by white space or a line break
/// cannot be document content: the spec excludes these "forbidden" lines from every node, so no
/// plain, quoted or block scalar (even an unindented top-level one) contains one and no flow
/// collection spans one, and libyaml (Go's yaml.v2 is a port of it) checks for them at column 0
/// in every scanning state. So such a line always ends the current document, whatever the
/// document contains; where it interrupts an unterminated quoted scalar or flow collection,
/// parsers report an error, and so does parsing the chunk this rule produces. Directives
/// are only allowed before a document's `---`, so they always travel with the document they
/// introduce. The only lines whose meaning depends on context (comments, `%` lines, indented
/// text) are classified only where no node can be open: in a prelude or after `...`.
///
/// Chunks partition the input: concatenating every chunk's text reproduces it byte for byte.
#[must_use]
pub fn split_stream(input: &str) -> Vec<RawDocument<'_>> {
    let bytes = input.as_bytes();
    let mut docs = Vec::new();
    let mut chunk = Chunk::new(0, 1);
    let mut pos = 0;
    let mut line = 1;

    while pos < bytes.len() {
        let line_start = pos;
        let (content_end, next) = line_bounds(bytes, pos);
        let mut content = &bytes[line_start..content_end];
        if line_start == 0 {
            content = content.strip_prefix(BOM).unwrap_or(content);
        }

        match chunk.state {
            State::Body { content_seen } => {
                if is_marker(content, b'-') {
                    chunk.finish(input, line_start, &mut docs);
                    chunk = Chunk::new(line_start, line);
                    chunk.open_with_marker(content);
                } else if is_marker(content, b'.') {
                    chunk.state = State::Closed;
                } else if !content_seen {
                    chunk.header_line(content);
                }
            }
            State::Prelude => match classify(content) {
                Line::Start => chunk.open_with_marker(content),
                Line::End => chunk.state = State::Closed,
                Line::Directive | Line::Blank => {}
                Line::Comment => chunk.note_source(content),
                Line::Content => chunk.state = State::Body { content_seen: true },
            },
            State::Closed => match classify(content) {
                Line::Blank | Line::Comment | Line::End => {}
                Line::Start => {
                    chunk.finish(input, line_start, &mut docs);
                    chunk = Chunk::new(line_start, line);
                    chunk.open_with_marker(content);
                }
                Line::Directive => {
                    chunk.finish(input, line_start, &mut docs);
                    chunk = Chunk::new(line_start, line);
                }
                Line::Content => {
                    chunk.finish(input, line_start, &mut docs);
                    chunk = Chunk::new(line_start, line);
                    chunk.state = State::Body { content_seen: true };
                }
            },
        }

        pos = next;
        line += 1;
    }
    chunk.finish(input, bytes.len(), &mut docs);
    docs
}

const BOM: &[u8] = "\u{feff}".as_bytes();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Only blank, comment and directive lines so far (and no marker).
    Prelude,
    /// Inside a document; `content_seen` is false while only the `---` line and comments have
    /// been read, which is where a `# Source:` comment is looked for.
    Body { content_seen: bool },
    /// After a `...` line.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Start,
    End,
    Directive,
    Blank,
    Comment,
    Content,
}

struct Chunk {
    start: usize,
    line: usize,
    state: State,
    source: Option<String>,
}

impl Chunk {
    fn new(start: usize, line: usize) -> Self {
        Self {
            start,
            line,
            state: State::Prelude,
            source: None,
        }
    }

    /// Enters the document body at a `---` line, which may carry a node or a comment after it.
    fn open_with_marker(&mut self, content: &[u8]) {
        let rest = trim_blanks_start(&content[3..]);
        if rest.is_empty() {
            self.state = State::Body {
                content_seen: false,
            };
        } else if rest[0] == b'#' {
            self.note_source(rest);
            self.state = State::Body {
                content_seen: false,
            };
        } else {
            self.state = State::Body { content_seen: true };
        }
    }

    /// A line of the body read before any content: a comment may name the Helm source.
    fn header_line(&mut self, content: &[u8]) {
        match classify(content) {
            Line::Comment => self.note_source(content),
            Line::Blank => {}
            _ => self.state = State::Body { content_seen: true },
        }
    }

    fn note_source(&mut self, comment: &[u8]) {
        if self.source.is_none() {
            self.source = helm_source(comment);
        }
    }

    fn finish<'a>(self, input: &'a str, end: usize, docs: &mut Vec<RawDocument<'a>>) {
        if end > self.start {
            docs.push(RawDocument {
                index: docs.len() + 1,
                span: self.start..end,
                text: &input[self.start..end],
                line: self.line,
                source: self.source,
            });
        }
    }
}

/// Returns the end of the line's content (before its break) and the start of the next line.
fn line_bounds(bytes: &[u8], from: usize) -> (usize, usize) {
    match memchr::memchr2(b'\n', b'\r', &bytes[from..]) {
        Some(n) => {
            let i = from + n;
            if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                (i, i + 2)
            } else {
                (i, i + 1)
            }
        }
        None => (bytes.len(), bytes.len()),
    }
}

/// `---` or `...` (per `ch`) at column 0, followed by a blank or the end of the line.
fn is_marker(content: &[u8], ch: u8) -> bool {
    content.len() >= 3
        && content[0] == ch
        && content[1] == ch
        && content[2] == ch
        && matches!(content.get(3), None | Some(b' ' | b'\t'))
}

fn classify(content: &[u8]) -> Line {
    if is_marker(content, b'-') {
        return Line::Start;
    }
    if is_marker(content, b'.') {
        return Line::End;
    }
    if content.first() == Some(&b'%') {
        return Line::Directive;
    }
    match trim_blanks_start(content).first() {
        None => Line::Blank,
        Some(b'#') => Line::Comment,
        Some(_) => Line::Content,
    }
}

fn trim_blanks_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// Reads `# Source: <path>` (Helm's annotation of which template rendered a document).
fn helm_source(comment: &[u8]) -> Option<String> {
    let rest = trim_blanks_start(comment).strip_prefix(b"#")?;
    let rest = trim_blanks_start(rest).strip_prefix(b"Source:")?;
    let path = std::str::from_utf8(rest).ok()?.trim();
    (!path.is_empty()).then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts<'a>(docs: &[RawDocument<'a>]) -> Vec<&'a str> {
        docs.iter().map(|d| d.text).collect()
    }

    #[test]
    fn helm_output_splits_per_template_with_sources_and_lines() {
        let input = "---\n# Source: app/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\n\
                     ---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\n";
        let docs = split_stream(input);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].index, 1);
        assert_eq!(docs[0].line, 1);
        assert_eq!(docs[0].source.as_deref(), Some("app/templates/sa.yaml"));
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].line, 5);
        assert_eq!(docs[1].source.as_deref(), Some("app/templates/cm.yaml"));
        assert!(
            docs[1]
                .text
                .starts_with("---\n# Source: app/templates/cm.yaml\n")
        );
        assert_eq!(&input[docs[1].span.clone()], docs[1].text);
    }

    #[test]
    fn stream_without_leading_marker() {
        let docs = split_stream("a: 1\n---\nb: 2\n");
        assert_eq!(texts(&docs), ["a: 1\n", "---\nb: 2\n"]);
        assert_eq!(docs[1].line, 2);
    }

    #[test]
    fn empty_input_has_no_documents() {
        assert!(split_stream("").is_empty());
    }

    #[test]
    fn leading_bom_stays_with_the_first_document() {
        let docs = split_stream("\u{feff}---\na: 1\n---\nb: 2\n");
        assert_eq!(texts(&docs), ["\u{feff}---\na: 1\n", "---\nb: 2\n"]);
    }

    #[test]
    fn crlf_and_lone_cr_line_breaks() {
        let docs = split_stream("a: 1\r\n---\r\n# Source: x.yaml\r\nb: 2\r\n");
        assert_eq!(
            texts(&docs),
            ["a: 1\r\n", "---\r\n# Source: x.yaml\r\nb: 2\r\n"]
        );
        assert_eq!(docs[1].source.as_deref(), Some("x.yaml"));
        assert_eq!(docs[1].line, 2);
        let docs = split_stream("a: 1\r---\rb: 2\r");
        assert_eq!(texts(&docs), ["a: 1\r", "---\rb: 2\r"]);
    }

    #[test]
    fn document_end_markers_close_documents() {
        let docs = split_stream("a: 1\n...\n# trailing\n---\nb: 2\n...\n");
        assert_eq!(
            texts(&docs),
            ["a: 1\n...\n# trailing\n", "---\nb: 2\n...\n"]
        );
        // A bare document may follow `...` (YAML 1.2).
        let docs = split_stream("a: 1\n...\nb: 2\n");
        assert_eq!(texts(&docs), ["a: 1\n...\n", "b: 2\n"]);
        assert_eq!(docs[1].line, 3);
    }

    #[test]
    fn directives_travel_with_the_document_they_introduce() {
        let docs = split_stream(
            "%YAML 1.1\n---\na: 1\n...\n%YAML 1.1\n%TAG !e! tag:e.com,2000:\n---\nb: 2\n",
        );
        assert_eq!(
            texts(&docs),
            [
                "%YAML 1.1\n---\na: 1\n...\n",
                "%YAML 1.1\n%TAG !e! tag:e.com,2000:\n---\nb: 2\n"
            ]
        );
        assert_eq!(docs[1].line, 5);
    }

    #[test]
    fn prelude_comments_belong_to_the_first_document() {
        let docs = split_stream("# header\n\n---\na: 1\n");
        assert_eq!(texts(&docs), ["# header\n\n---\na: 1\n"]);
    }

    #[test]
    fn empty_and_comment_only_documents_are_kept() {
        let docs = split_stream("---\n---\n# only a comment\n---\na: 1");
        assert_eq!(
            texts(&docs),
            ["---\n", "---\n# only a comment\n", "---\na: 1"]
        );
        assert_eq!(docs.iter().map(|d| d.line).collect::<Vec<_>>(), [1, 2, 4]);
    }

    #[test]
    fn marker_lines_need_a_blank_or_line_end_after_them() {
        let docs = split_stream("a: |\n  ---\n---x: 1\n----\n--- # c\n---\tb\n");
        assert_eq!(
            texts(&docs),
            ["a: |\n  ---\n---x: 1\n----\n", "--- # c\n", "---\tb\n"]
        );
    }

    #[test]
    fn marker_with_inline_node_and_source_rules() {
        let docs = split_stream(
            "--- |\n  text\n--- # Source: a/b.yaml\nk: v\n---\nk: v\n# Source: late.yaml\n",
        );
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].source, None);
        assert_eq!(docs[1].source.as_deref(), Some("a/b.yaml"));
        assert_eq!(
            docs[2].source, None,
            "a comment after content is not the header"
        );
    }

    #[test]
    fn source_comment_needs_a_path() {
        assert_eq!(split_stream("---\n# Source:\na: 1\n")[0].source, None);
        assert_eq!(
            split_stream("---\n#Source:  x.yaml  \na: 1\n")[0]
                .source
                .as_deref(),
            Some("x.yaml")
        );
    }

    proptest! {
        #[test]
        fn chunks_concatenate_to_the_input(input in stream_like()) {
            let docs = split_stream(&input);
            let joined: String = docs.iter().map(|d| d.text).collect();
            prop_assert_eq!(&joined, &input);
            let mut expected_start = 0;
            for (i, d) in docs.iter().enumerate() {
                prop_assert_eq!(d.index, i + 1);
                prop_assert_eq!(d.span.start, expected_start);
                prop_assert!(!d.text.is_empty());
                prop_assert_eq!(&input[d.span.clone()], d.text);
                let lines_before = input[..d.span.start]
                    .replace("\r\n", "\n")
                    .bytes()
                    .filter(|b| *b == b'\n' || *b == b'\r')
                    .count();
                prop_assert_eq!(d.line, lines_before + 1);
                expected_start = d.span.end;
            }
        }

        #[test]
        fn chunks_concatenate_for_any_string(input in any::<String>()) {
            let joined: String = split_stream(&input).iter().map(|d| d.text).collect();
            prop_assert_eq!(joined, input);
        }
    }

    /// Strings made of YAML-ish lines, so markers, directives and comments are frequent.
    fn stream_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("---".to_owned()),
            Just("--- # Source: t.yaml".to_owned()),
            Just("...".to_owned()),
            Just("%YAML 1.1".to_owned()),
            Just("# Source: a/b.yaml".to_owned()),
            Just(String::new()),
            Just("\u{feff}---".to_owned()),
            "[a-z]{1,4}: [a-z0-9 ]{0,6}",
            "  - [a-z]{0,4}",
            "[ -~]{0,8}",
        ];
        let brk = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")];
        (
            proptest::option::of(Just("\u{feff}")),
            proptest::collection::vec((line, brk), 0..12),
        )
            .prop_map(|(bom, lines)| {
                let mut s = bom.unwrap_or_default().to_owned();
                for (l, b) in lines {
                    s.push_str(&l);
                    s.push_str(b);
                }
                s
            })
    }
}
