//! The output stream as pieces: runs of the input copied as they are, and new text (re-emitted
//! documents, generated policies). Nothing of the input is copied until the output is written,
//! so a large stream is held once, not twice.

use std::io;
use std::ops::Range;

/// One piece of the output.
#[derive(Debug, Clone)]
enum Piece {
    /// A byte range of the input.
    Input(Range<usize>),
    /// A byte range of one of the output's own text chunks.
    New(Stored),
}

/// Text kept in an [`Output`]'s chunks, placed in the output or not (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    chunk: usize,
    range: Range<usize>,
}

/// New text is appended to chunks of this size: the output's own text (re-emitted documents,
/// generated policies) is held in a few large blocks instead of one allocation per document,
/// which on large streams fragmented the heap and made every allocation slower.
const CHUNK: usize = 1 << 20;

/// The output stream of a post-render run (see [`super::post_render_parts`]).
#[derive(Debug, Clone)]
pub struct Output<'a> {
    input: &'a str,
    pieces: Vec<Piece>,
    len: usize,
    chunks: Vec<String>,
    /// Reused for writing text before it is stored.
    scratch: String,
}

impl<'a> Output<'a> {
    pub(super) fn new(input: &'a str) -> Self {
        Output { input, pieces: Vec::new(), len: 0, chunks: Vec::new(), scratch: String::new() }
    }

    /// Appends a run of the input (a document's span); runs that follow each other in the input
    /// become one piece.
    pub(super) fn push_input(&mut self, span: Range<usize>) {
        if span.is_empty() {
            return;
        }
        self.len += span.len();
        match self.pieces.last_mut() {
            Some(Piece::Input(last)) if last.end == span.start => last.end = span.end,
            _ => self.pieces.push(Piece::Input(span)),
        }
    }

    /// Keeps `text` for the output without placing it.
    pub(super) fn store(&mut self, text: &str) -> Stored {
        let fits = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= text.len());
        if !fits {
            self.chunks.push(String::with_capacity(CHUNK.max(text.len())));
        }
        let chunk = self.chunks.len() - 1;
        let c = &mut self.chunks[chunk];
        let start = c.len();
        c.push_str(text);
        Stored { chunk, range: start..c.len() }
    }

    /// Keeps what `write` writes for the output without placing it.
    pub(super) fn store_with(&mut self, write: impl FnOnce(&mut String)) -> Stored {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        write(&mut scratch);
        let stored = self.store(&scratch);
        self.scratch = scratch;
        stored
    }

    /// Places kept text next in the output.
    pub(super) fn push_stored(&mut self, stored: Stored) {
        if stored.range.is_empty() {
            return;
        }
        self.len += stored.range.len();
        match self.pieces.last_mut() {
            Some(Piece::New(last)) if last.chunk == stored.chunk && last.range.end == stored.range.start => last.range.end = stored.range.end,
            _ => self.pieces.push(Piece::New(stored)),
        }
    }

    /// Appends new text.
    pub(super) fn push_new(&mut self, text: &str) {
        let stored = self.store(text);
        self.push_stored(stored);
    }

    /// Appends what `write` writes.
    pub(super) fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        let stored = self.store_with(write);
        self.push_stored(stored);
    }

    /// Bytes of output.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn text(&self, p: &Piece) -> &str {
        match p {
            Piece::Input(r) => &self.input[r.clone()],
            Piece::New(s) => &self.chunks[s.chunk][s.range.clone()],
        }
    }

    /// Whether the output so far ends with a line feed.
    pub(super) fn ends_with_newline(&self) -> bool {
        self.pieces.last().is_some_and(|p| self.text(p).ends_with('\n'))
    }

    /// Writes the whole output.
    pub fn write_to(&self, w: &mut impl io::Write) -> io::Result<()> {
        for p in &self.pieces {
            w.write_all(self.text(p).as_bytes())?;
        }
        Ok(())
    }

    /// The output as one string.
    #[must_use]
    pub fn into_string(self) -> String {
        let mut out = String::with_capacity(self.len);
        for p in &self.pieces {
            out.push_str(self.text(p));
        }
        out
    }
}

impl std::fmt::Display for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.pieces {
            f.write_str(self.text(p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_and_write_in_order() {
        let input = "a: 1\n---\nb: 2\n---\nc: 3\n";
        let mut out = Output::new(input);
        out.push_input(0..5);
        out.push_input(5..14);
        out.push_with(|s| s.push_str("---\nb: 9\n"));
        out.push_new("---\n");
        let later = out.store("---\nz: 0\n");
        out.push_input(14..input.len());
        out.push_stored(later);
        assert_eq!(out.pieces.len(), 4, "{:?}", out.pieces);
        assert!(out.ends_with_newline());
        let mut bytes = Vec::new();
        out.write_to(&mut bytes).unwrap();
        let text = "a: 1\n---\nb: 2\n---\nb: 9\n---\n---\nc: 3\n---\nz: 0\n";
        assert_eq!(String::from_utf8(bytes).unwrap(), text);
        assert_eq!(out.len(), text.len());
        assert_eq!(out.to_string(), text);
        assert_eq!(out.into_string(), text);
    }

    #[test]
    fn text_larger_than_a_chunk_gets_a_chunk_of_its_own() {
        let big = "x".repeat(CHUNK + 10);
        let mut out = Output::new("");
        out.push_new("a");
        out.push_new(&big);
        out.push_new("b");
        assert_eq!(out.chunks.len(), 3);
        assert_eq!(out.to_string(), format!("a{big}b"));
    }
}
