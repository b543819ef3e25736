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
    New(String),
}

/// The output stream of a post-render run (see [`super::post_render_parts`]).
#[derive(Debug, Clone)]
pub struct Output<'a> {
    input: &'a str,
    pieces: Vec<Piece>,
    len: usize,
}

impl<'a> Output<'a> {
    pub(super) fn new(input: &'a str) -> Self {
        Output { input, pieces: Vec::new(), len: 0 }
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

    /// Appends new text; consecutive new texts share one piece.
    pub(super) fn push_new(&mut self, text: &str) {
        self.len += text.len();
        match self.pieces.last_mut() {
            Some(Piece::New(s)) => s.push_str(text),
            _ => self.pieces.push(Piece::New(text.to_string())),
        }
    }

    /// Appends what `write` writes, as a piece of its own (a document's worth: no piece grows
    /// by doubling over many documents, which would leave the freed smaller buffers behind).
    pub(super) fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        let mut s = String::new();
        write(&mut s);
        self.push_owned(s);
    }

    /// Appends a string as a piece of its own (moved, not copied).
    pub(super) fn push_owned(&mut self, mut text: String) {
        if text.is_empty() {
            return;
        }
        text.shrink_to_fit();
        self.len += text.len();
        self.pieces.push(Piece::New(text));
    }

    /// Bytes of output.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the output so far ends with a line feed.
    pub(super) fn ends_with_newline(&self) -> bool {
        match self.pieces.last() {
            Some(Piece::Input(r)) => self.input[r.clone()].ends_with('\n'),
            Some(Piece::New(s)) => s.ends_with('\n'),
            None => false,
        }
    }

    /// Writes the whole output.
    pub fn write_to(&self, w: &mut impl io::Write) -> io::Result<()> {
        for p in &self.pieces {
            w.write_all(match p {
                Piece::Input(r) => &self.input.as_bytes()[r.clone()],
                Piece::New(s) => s.as_bytes(),
            })?;
        }
        Ok(())
    }

    /// The output as one string.
    #[must_use]
    pub fn into_string(self) -> String {
        let mut out = String::with_capacity(self.len);
        for p in self.pieces {
            match p {
                Piece::Input(r) => out.push_str(&self.input[r]),
                Piece::New(s) => out.push_str(&s),
            }
        }
        out
    }
}

impl std::fmt::Display for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.pieces {
            f.write_str(match p {
                Piece::Input(r) => &self.input[r.clone()],
                Piece::New(s) => s,
            })?;
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
        out.push_owned(String::new());
        out.push_input(14..input.len());
        assert_eq!(out.pieces.len(), 3);
        assert!(out.ends_with_newline());
        let mut bytes = Vec::new();
        out.write_to(&mut bytes).unwrap();
        let text = "a: 1\n---\nb: 2\n---\nb: 9\n---\n---\nc: 3\n";
        assert_eq!(String::from_utf8(bytes).unwrap(), text);
        assert_eq!(out.len(), text.len());
        assert_eq!(out.to_string(), text);
        assert_eq!(out.into_string(), text);
    }
}
