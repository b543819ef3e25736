//! Tables read back by columns, as a person or `awk`-free script reads kubectl's: each column
//! starts where its header starts, and every cell lies between its column's start and the next
//! one's. Cells with spaces, empty cells, and cells longer than their header must never run into
//! the next column.

use meshmove_cli::render::table;

/// The cells of `text` split at the columns its header line starts (header words are one word
/// each, separated by spaces).
fn columns(text: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let mut starts = Vec::new();
    let bytes = header.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] != b' ' && (i == 0 || bytes[i - 1] == b' ') {
            starts.push(i);
        }
    }
    std::iter::once(header)
        .chain(lines)
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(c, &s)| {
                    let end = starts.get(c + 1).copied().unwrap_or(line.len()).min(line.len());
                    // Nothing of this cell may stand right before the next column's start.
                    if c + 1 < starts.len() && end < line.len() {
                        assert_eq!(&line[end - 1..end], " ", "column {c} runs into the next one in {line:?}");
                    }
                    line.get(s.min(line.len())..end).unwrap_or("").trim().to_string()
                })
                .collect()
        })
        .collect()
}

/// A small deterministic generator (xorshift), so that the cases are many and reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn cell(&mut self) -> String {
        let words = ["rollback", "expose", "completed", "a", "mtls-strict", "Deployment/api", "", "x y z", "1/3"];
        let n = self.next() % 3;
        (0..n).map(|_| words[(self.next() % words.len() as u64) as usize]).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

#[test]
fn every_table_reads_back_cell_by_cell() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..500 {
        let cols = 1 + (rng.next() % 5) as usize;
        let headers: Vec<String> = (0..cols).map(|i| ["STEP", "STATUS", "STARTED", "BY", "ERROR"][i].to_string()).collect();
        let rows: Vec<Vec<String>> = (0..(rng.next() % 6)).map(|_| (0..cols).map(|_| rng.cell()).collect()).collect();
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let text = table(&refs, rows.clone());
        let parsed = columns(&text);
        assert_eq!(parsed[0], headers);
        assert_eq!(parsed[1..].to_vec(), rows, "table:\n{text}");
    }
}

#[test]
fn the_status_steps_that_ran_together_are_apart() {
    // `rollback expose` is longer than the 14 columns the steps once had.
    let rows = vec![
        vec!["expose".to_string(), "rolled-back".to_string(), "2026-01-01T00:00:00Z".to_string(), "ops@prod".to_string()],
        vec!["rollback expose".to_string(), "completed".to_string(), "2026-01-01T00:05:00Z".to_string(), "ops@prod".to_string()],
    ];
    let text = table(&["STEP", "STATUS", "STARTED", "BY"], rows.clone());
    assert_eq!(columns(&text)[1..].to_vec(), rows);
}
