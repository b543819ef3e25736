//! Throughput of the Helm post-renderer's in-process paths on a large rendered stream.
//!
//! Measures, on the same input, each `--runs` times (default 3):
//! * `split`: cut the stream into documents, nothing else;
//! * `scan`: split and scan every document (`yaml::scan_document`: checked, identity read, no
//!   object built), what the post-renderer does to documents nothing reads;
//! * `parse`: split the stream and parse every document (`crate::yaml`), nothing else;
//! * `floor`: split + parse every document + re-emit every document with the same YAML code —
//!   the parse-and-emit floor the post-renderer is measured against;
//! * `post_render`: `postrender::post_render_parts` with the default configuration (labels,
//!   probes, NetworkPolicies), the output written to memory as the binary writes it to stdout.
//!
//! Input: the stream given as the first argument, else `target/bench/stream-400.yaml` (made by
//! `tests/bench/gen_input.sh`, which renders the demo chart with real Helm). Prints one line per
//! run, `RESULT <name> <run> <seconds> <MB/s>`, which `tests/bench/postrender.sh` turns into the
//! table of BENCHMARKS.md, and a short summary.
//!
//! Run: `cargo bench -p meshmove-postrender --bench postrender -- [STREAM] [--runs N] [--only ROW]`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use meshmove_postrender::{self as postrender, PostRenderConfig};
use meshmove_model::yaml;

fn main() -> ExitCode {
    let mut input_path: Option<PathBuf> = None;
    let mut runs = 3usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes `--bench`; a filter argument is not meaningful here.
            "--bench" => {}
            "--runs" => {
                runs = match args.next().and_then(|n| n.parse().ok()) {
                    Some(n) if n > 0 => n,
                    _ => {
                        eprintln!("postrender bench: --runs needs a positive number");
                        return ExitCode::from(2);
                    }
                }
            }
            // One row only (for profiling: `perf record ... --only post_render`).
            "--only" => only = args.next(),
            a if a.starts_with("--") => {}
            a => input_path = Some(PathBuf::from(a)),
        }
    }
    let path = input_path.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/stream-400.yaml")
    });
    let input = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "postrender bench: cannot read {}: {e}\n  generate it with `tests/bench/gen_input.sh 400` (renders the demo chart with real Helm), \
                 or run the whole benchmark with `tests/bench/postrender.sh`",
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let mb = input.len() as f64 / 1e6;
    let docs = yaml::split_stream(&input).len();
    println!("input {} ({mb:.1} MB, {docs} documents), {runs} runs each", path.display());

    let cfg = PostRenderConfig::default();
    // One untimed warm-up of the full path, which also checks the input is valid.
    let warm = match postrender::post_render(&input, &cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postrender bench: the input does not post-render: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "post_render: {} documents, {} changed, {} NetworkPolicies generated, output {:.1} MB",
        warm.summary.documents,
        warm.summary.changed,
        warm.summary.generated.len(),
        warm.output.len() as f64 / 1e6
    );
    drop(warm);

    let mut medians = Vec::new();
    for (name, f) in [
        ("split", split_only as fn(&str) -> usize),
        ("scan", scan_only),
        ("parse", parse_only),
        ("floor", parse_and_emit_all),
        ("post_render", post_render_written),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut times = Vec::new();
        for run in 1..=runs {
            let start = Instant::now();
            black_box(f(black_box(&input)));
            let t = start.elapsed();
            println!("RESULT {name} {run} {:.4} {:.1}", t.as_secs_f64(), mb / t.as_secs_f64());
            times.push(t);
        }
        times.sort();
        let median = times[times.len() / 2];
        medians.push((name, median));
    }
    println!();
    for (name, t) in &medians {
        println!("{name:12} median {:8.1} ms  {:7.1} MB/s", ms(*t), mb / t.as_secs_f64());
    }
    let get = |n: &str| medians.iter().find(|(m, _)| *m == n).map(|(_, t)| t.as_secs_f64()).unwrap_or(f64::NAN);
    println!("post_render throughput / floor throughput: {:.2}", get("floor") / get("post_render"));
    ExitCode::SUCCESS
}

fn ms(t: Duration) -> f64 {
    t.as_secs_f64() * 1e3
}

/// `post_render_parts` with the output written to memory, as the binary writes it to stdout;
/// returns the output size.
fn post_render_written(input: &str) -> usize {
    let Ok(r) = postrender::post_render_parts(input, &PostRenderConfig::default()) else { return 0 };
    let mut sink: Vec<u8> = Vec::with_capacity(r.output.len());
    r.output.write_to(&mut sink).map(|()| sink.len()).unwrap_or(0)
}

/// Split only; returns the number of documents.
fn split_only(input: &str) -> usize {
    yaml::split_stream(input).len()
}

/// Split and scan every document; returns the number of mappings.
fn scan_only(input: &str) -> usize {
    yaml::split_stream(input).iter().filter(|d| matches!(yaml::scan_document(d), yaml::Shape::Mapping(_))).count()
}

/// Split and parse every document; returns the number of parsed nodes' documents.
fn parse_only(input: &str) -> usize {
    let mut n = 0;
    for raw in yaml::split_stream(input) {
        if yaml::parse_document(&raw).expect("valid input").is_some() {
            n += 1;
        }
    }
    n
}

/// Split, parse every document and re-emit every document; returns the output size.
fn parse_and_emit_all(input: &str) -> usize {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    for raw in yaml::split_stream(input) {
        match yaml::parse_document(&raw).expect("valid input") {
            Some(v) => {
                out.push_str("---\n");
                out.push_str(&yaml::to_yaml_string(&v));
            }
            None => out.push_str(raw.text),
        }
    }
    out.len()
}
