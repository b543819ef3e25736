//! stdout for results only, with a closed pipe treated as a normal end.

use std::io::{self, IsTerminal, Write};

/// Buffered stdout. Write errors other than a broken pipe are real errors.
pub struct Out {
    inner: io::BufWriter<io::StdoutLock<'static>>,
}

impl Default for Out {
    fn default() -> Self {
        Out { inner: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()) }
    }
}

impl Out {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write_str(&mut self, s: &str) -> io::Result<()> {
        self.inner.write_all(s.as_bytes())
    }

    pub fn line(&mut self, s: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.inner, "{s}")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether an error is (caused by) writing to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}

/// Colour on stdout: off with `--no-color`, with `NO_COLOR` set to anything non-empty, or when
/// stdout is not a terminal.
pub fn use_color(no_color_flag: bool) -> bool {
    !no_color_flag && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stdout().is_terminal()
}

/// A block of lines redrawn in place on a terminal (`ns monitor`'s frame): each frame moves the
/// cursor back over the previous one and clears to the end of the screen before it is written,
/// so a shorter frame leaves nothing of a longer one behind. Only for a terminal: where stdout
/// is a pipe or a file, print plain lines instead.
#[derive(Debug, Default)]
pub struct Redraw {
    drawn_lines: u16,
}

impl Redraw {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the last frame with `frame` (whole lines, each ending in a newline).
    pub fn draw(&mut self, w: &mut impl Write, frame: &str) -> io::Result<()> {
        use crossterm::{cursor::MoveUp, queue, terminal::Clear, terminal::ClearType};
        // MoveUp(0) would still move one line: only move back over a frame that was drawn.
        if self.drawn_lines > 0 {
            queue!(w, MoveUp(self.drawn_lines), Clear(ClearType::FromCursorDown))?;
        }
        w.write_all(frame.as_bytes())?;
        self.drawn_lines = u16::try_from(frame.lines().count()).unwrap_or(u16::MAX);
        Ok(())
    }
}

/// Rewrite the current line of a terminal with `line` (a progress line such as a rollout wait);
/// `done` ends it with a newline so the next output starts below. Errors writing to a terminal
/// that went away are ignored, as `eprintln!` would not.
pub fn rewrite_line(w: &mut impl Write, line: &str, done: bool) {
    use crossterm::{queue, terminal::Clear, terminal::ClearType};
    let _ = (|| -> io::Result<()> {
        w.write_all(b"\r")?;
        w.write_all(line.as_bytes())?;
        queue!(w, Clear(ClearType::UntilNewLine))?;
        if done {
            w.write_all(b"\n")?;
        }
        w.flush()
    })();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The screen of a terminal emulator (vt100) after `bytes`, rows trimmed, trailing empty
    /// rows left out. A newline reaches the terminal as CR LF: the tty driver's `onlcr`, on by
    /// default, translates it (termios(3)); the emulator sees what the driver sends.
    fn screen(bytes: &[u8]) -> Vec<String> {
        let size = |n| std::num::NonZeroU16::new(n).unwrap();
        let mut parser = vt100::Parser::new(size(24), size(80), 0);
        let mut sent = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if b == b'\n' {
                sent.push(b'\r');
            }
            sent.push(b);
        }
        parser.process(&sent);
        let mut rows: Vec<String> = parser.screen().rows(0, 80).map(|r| r.trim_end().to_string()).collect();
        while rows.last().is_some_and(String::is_empty) {
            rows.pop();
        }
        rows
    }

    #[test]
    fn a_redrawn_frame_replaces_the_last_one_on_screen() {
        let mut bytes = Vec::new();
        let mut r = Redraw::new();
        r.draw(&mut bytes, "shop 10 %\nlegacy 1/1\nmesh 0/1\nnote: warming up\n").unwrap();
        assert_eq!(screen(&bytes), ["shop 10 %", "legacy 1/1", "mesh 0/1", "note: warming up"]);
        // A shorter frame: nothing of the longer one stays.
        r.draw(&mut bytes, "shop 25 %\nlegacy 1/1\n").unwrap();
        assert_eq!(screen(&bytes), ["shop 25 %", "legacy 1/1"]);
        r.draw(&mut bytes, "shop 50 %\nlegacy 1/1\nmesh 1/1\n").unwrap();
        assert_eq!(screen(&bytes), ["shop 50 %", "legacy 1/1", "mesh 1/1"]);
    }

    #[test]
    fn output_before_the_first_frame_stays() {
        let mut bytes = b"$ kubectl mesh-migrate ns monitor shop\n".to_vec();
        let mut r = Redraw::new();
        r.draw(&mut bytes, "a\nb\n").unwrap();
        r.draw(&mut bytes, "c\n").unwrap();
        assert_eq!(screen(&bytes), ["$ kubectl mesh-migrate ns monitor shop", "c"]);
    }

    #[test]
    fn a_rewritten_line_keeps_only_the_latest_text() {
        let mut bytes = b"before\n".to_vec();
        rewrite_line(&mut bytes, "waiting for rollouts: 0/3 ready: deployment/api progressing", false);
        rewrite_line(&mut bytes, "waiting for rollouts: 2/3 ready", false);
        assert_eq!(screen(&bytes), ["before", "waiting for rollouts: 2/3 ready"]);
        rewrite_line(&mut bytes, "waiting for rollouts: 3/3 ready", true);
        bytes.extend_from_slice(b"next\n");
        assert_eq!(screen(&bytes), ["before", "waiting for rollouts: 3/3 ready", "next"]);
    }
}
