//! Where an audit's time and memory go, phase by phase, in this process: `DBISO_BENCH_PHASES=DIR`
//! reads the cluster state in `DIR` (as `--write` wrote it) the way `audit -f DIR -A` does and
//! times each step (CPU time of this process) and the resident memory it adds and peaks at
//! (`/proc/self/status`, the peak reset before each step). The same functions as the binary,
//! called in its order; no profiler or debug symbols needed.

use meshmove_model::findings::{self, Analyzer};
use meshmove_model::inventory::{PodDetail, load_paths_with};
use meshmove_netpol::view::{self, ModelOptions};
use meshmove_netpol::{Engine, EngineOptions};

/// `VmRSS` and `VmHWM` (the peak since the last reset) of this process, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /proc/self/status"));
        line[name.len()..].trim().trim_end_matches("kB").trim().parse::<f64>().unwrap() / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Start a new peak: writing 5 to `clear_refs` resets `VmHWM` to the current RSS (Linux
/// `proc(5)`).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs");
}

/// CPU time (user + system) of this process so far, in seconds.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th of them, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

struct Phases {
    last_cpu: f64,
    rows: Vec<(String, f64, f64, f64)>,
}

impl Phases {
    /// Run `f` as the phase `name`: its CPU time, the resident memory it adds (freed memory that
    /// the allocator keeps counts as resident) and the peak during it.
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let (before, _) = rss();
        reset_peak();
        let out = f();
        let now = cpu();
        let (after, peak) = rss();
        self.rows.push((name.to_string(), now - self.last_cpu, after - before, peak));
        self.last_cpu = now;
        out
    }
}

/// Read `dir` and audit it phase by phase; print a Markdown table.
pub fn run(dir: &std::path::Path) {
    let mut p = Phases { last_cpu: cpu(), rows: Vec::new() };
    // As `audit` reads them: pods managed by a workload kept as the facts the engine reads.
    let inventory = p.run("read the files into the inventory", || {
        load_paths_with(&[dir.to_path_buf()], "default", None, PodDetail::Facts).expect("the cluster state loads")
    });
    let objects = inventory.objects().len();
    let model = p.run("engine model (`view::build`)", || view::build(&inventory, ModelOptions { probes: true }));
    let engine = p.run("engine index (`Engine::build_lenient`)", || Engine::build_lenient(&model.cluster, EngineOptions::default()).expect("the engine builds"));
    p.run("free the model and engine above", || drop((model, engine)));
    let analyzers = meshmove_isolation::analyzers(&meshmove_isolation::AuditOptions { live: false });
    let refs: Vec<&dyn Analyzer> = analyzers.iter().map(|a| a.as_ref()).collect();
    let report = p.run("the audit (`Audit::new` and the analyzers: model and engine again, reach into databases, findings)", || {
        findings::run("dbiso", "audit", &refs, &inventory).finish(&[])
    });
    let json = p.run("the report as JSON", || serde_json::to_string_pretty(&report).unwrap());
    let (held, _) = rss();
    drop(refs);
    p.run("free the audit", || drop(analyzers));
    p.run("free the inventory", || drop(inventory));
    println!("{objects} objects read from {}; report {} KB, {} findings", dir.display(), json.len() / 1000, report.findings.len());
    println!("\n| phase | CPU s | RSS added, MiB | peak RSS during it, MiB |\n| --- | ---: | ---: | ---: |");
    for (name, cpu, live, peak) in &p.rows {
        println!("| {name} | {cpu:.2} | {live:+.0} | {peak:.0} |");
    }
    println!("\nRSS before freeing: {held:.0} MiB");
}
