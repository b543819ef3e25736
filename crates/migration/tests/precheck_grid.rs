//! The precheck fixture grid, and the meta-tests that keep codes, analyzers and docs in step.
//!
//! Each directory under `tests/fixtures/precheck/` is one case: an input (`input.yaml` or
//! `input.json`, loaded with the same loader as `-f`), and one expected file per mode it is run
//! in: `expected.txt` for sidecar mode, `expected.ambient.txt` for ambient mode. An expected file
//! lists one line per finding, `CODE Kind/namespace/name` (`CODE -` for findings about the whole
//! input), and one line `skipped <analyzer>` per analyzer that could not run; blank lines and
//! `#` comments are ignored and order does not matter. An optional `options.txt` sets
//! `namespaces = a, b`, `proxy-cpu = 100m`, `proxy-memory = 128Mi`, `source = cluster/<ns>`
//! (treat the input as a live load limited to that namespace: every kind counts as listed), and
//! with it `forbidden = Node, Pod` (those kinds' lists were refused: their objects are dropped and
//! the report carries MM1000 for each, as the CLI's report does).
//!
//! The grid fails on any difference and prints every failing case with a diff. It also checks
//! that the grid exercises every catalog code, so a new check cannot land without a case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshmove_model::findings::{self, DOCS_PATH, Report};
use meshmove_model::inventory::{self, Inventory, SourceInfo};
use meshmove_migration::catalog::CATALOG;
use meshmove_migration::precheck::{self, MeshMode, PrecheckOptions};
use meshmove_migration::quantity;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/precheck")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/precheck exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no precheck fixtures found");
    dirs
}

/// `options.txt`: the precheck options and, for `source = cluster/<ns>`, the namespace and the
/// kinds whose lists are refused.
fn options(case: &Path) -> (PrecheckOptions, Option<String>, Vec<String>) {
    let mut options = PrecheckOptions::default();
    let mut cluster_namespace = None;
    let mut forbidden = Vec::new();
    let Ok(text) = std::fs::read_to_string(case.join("options.txt")) else { return (options, None, forbidden) };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) =
            line.split_once('=').unwrap_or_else(|| panic!("{}: `{line}` is not key = value", case.display()));
        let value = value.trim();
        match key.trim() {
            "namespaces" => options.namespaces = Some(value.split(',').map(|s| s.trim().to_string()).collect()),
            "proxy-cpu" => options.proxy_cpu_millis = quantity::cpu_millis(value).unwrap(),
            "proxy-memory" => options.proxy_memory_bytes = quantity::bytes(value).unwrap(),
            "source" => {
                let ns = value.strip_prefix("cluster/").unwrap_or_else(|| panic!("source must be cluster/<ns>"));
                cluster_namespace = Some(ns.to_string());
            }
            "forbidden" => forbidden = value.split(',').map(|s| s.trim().to_string()).collect(),
            other => panic!("{}: unknown option `{other}`", case.display()),
        }
    }
    assert!(forbidden.is_empty() || cluster_namespace.is_some(), "{}: `forbidden` needs `source = cluster/<ns>`", case.display());
    (options, cluster_namespace, forbidden)
}

fn input_of(case: &Path) -> PathBuf {
    let found: Vec<PathBuf> =
        ["input.yaml", "input.json"].iter().map(|f| case.join(f)).filter(|p| p.exists()).collect();
    match found.as_slice() {
        [one] => one.clone(),
        _ => panic!("{}: needs exactly one of input.yaml or input.json", case.display()),
    }
}

fn load(case: &Path, options: &PrecheckOptions, cluster_namespace: Option<&str>, forbidden: &[String]) -> Inventory {
    let input = input_of(case);
    let files = inventory::load_paths(std::slice::from_ref(&input), "default", None)
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    assert!(!files.objects().is_empty(), "{}: loaded no objects", input.display());
    let Some(ns) = cluster_namespace else { return files };
    // What a cluster load limited to `ns` would have returned: every kind listed, namespaced
    // objects of other namespaces absent.
    let analyzers = precheck::analyzers(&PrecheckOptions { mode: MeshMode::Ambient, ..options.clone() })
        .into_iter()
        .chain(precheck::analyzers(options))
        .collect::<Vec<_>>();
    let refs: Vec<&dyn meshmove_model::findings::Analyzer> = analyzers.iter().map(|a| a.as_ref()).collect();
    let refused = |k: &inventory::Kind| {
        forbidden.iter().any(|f| f == k.kind).then(|| inventory::Unavailable::Forbidden {
            message: format!("{} is forbidden: User \"jane\" cannot list resource \"{}\"", k.resource(), k.plural),
        })
    };
    let listed = meshmove_model::findings::wanted_kinds(&refs).0.into_iter().map(|k| (k, refused(k))).collect();
    let objects = files
        .objects()
        .iter()
        .filter(|o| o.namespace.as_deref().is_none_or(|n| n == ns))
        .filter(|o| !forbidden.contains(&o.kind))
        .cloned()
        .collect();
    let source = SourceInfo::Cluster { context: "fixture".into(), namespace: Some(ns.to_string()) };
    Inventory::from_cluster(objects, listed, source, ns.to_string())
}

/// What `kubectl mesh-migrate precheck` reports: the analyzers' findings and one MM1000 per kind
/// the cluster refused.
fn run(inventory: &Inventory, options: &PrecheckOptions) -> Report {
    let analyzers = precheck::analyzers(options);
    let refs: Vec<&dyn findings::Analyzer> = analyzers.iter().map(|a| a.as_ref()).collect();
    let mut report = findings::run(CATALOG.tool, "precheck", &refs, inventory);
    report.findings.extend(findings::unread_findings(&meshmove_migration::catalog::CODE_UNREAD_INPUT, inventory));
    report.finish(&[])
}

fn lines_of(report: &Report) -> Vec<String> {
    let mut lines: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{} {}", f.code, f.object.as_ref().map_or("-".to_string(), ToString::to_string)))
        .chain(report.skipped.iter().map(|s| format!("skipped {}", s.analyzer)))
        .collect();
    lines.sort();
    lines
}

fn expected_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
    lines.sort();
    lines
}

/// Every (case, mode, report) of the grid.
fn grid() -> Vec<(String, MeshMode, String, Report)> {
    let mut out = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let (base, cluster_ns, forbidden) = options(&case);
        let mut modes = 0;
        for (file, mode) in [("expected.txt", MeshMode::Sidecar), ("expected.ambient.txt", MeshMode::Ambient)] {
            let Ok(expected) = std::fs::read_to_string(case.join(file)) else { continue };
            modes += 1;
            let options = PrecheckOptions { mode, ..base.clone() };
            let inventory = load(&case, &options, cluster_ns.as_deref(), &forbidden);
            out.push((format!("{name}/{file}"), mode, expected, run(&inventory, &options)));
        }
        assert!(modes > 0, "{name}: no expected.txt or expected.ambient.txt");
    }
    out
}

#[test]
fn precheck_fixture_grid() {
    let mut failures = Vec::new();
    let mut count = 0;
    // PRECHECK_GRID_PRINT=1 prints every finding, to review messages when adding a case.
    let print = std::env::var_os("PRECHECK_GRID_PRINT").is_some();
    for (name, _, expected, report) in grid() {
        count += 1;
        if print {
            println!("== {name}");
            for f in &report.findings {
                let object = f.object.as_ref().map_or("-".to_string(), ToString::to_string);
                println!("{} {} {object}\n    {}", f.code, f.severity, f.message);
            }
        }
        let want = expected_lines(&expected).join("\n") + "\n";
        let got = lines_of(&report).join("\n") + "\n";
        if want != got {
            let diff = similar::TextDiff::from_lines(&want, &got);
            let messages: Vec<String> =
                report.findings.iter().map(|f| format!("    {} {:?}: {}", f.code, f.object, f.message)).collect();
            failures.push(format!(
                "--- {name} (- expected, + actual)\n{}\n  findings:\n{}",
                diff.unified_diff().context_radius(50),
                messages.join("\n")
            ));
        }
    }
    assert!(count >= 20, "only {count} grid runs");
    assert!(
        failures.is_empty(),
        "{} of {count} precheck fixtures differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn findings_use_catalog_codes_with_their_severity_and_say_something() {
    for (name, _, _, report) in grid() {
        for f in &report.findings {
            let code = CATALOG.get(f.code).unwrap_or_else(|| panic!("{name}: {} is not in the catalog", f.code));
            assert_eq!(f.severity, code.severity, "{name}: {} reported with another severity", f.code);
            assert_eq!(f.hint, code.hint, "{name}: {}", f.code);
            assert_eq!(f.docs, format!("docs/findings.md#{}", f.code.to_ascii_lowercase()));
            assert!(f.message.len() > 20, "{name}: {} has a terse message: {:?}", f.code, f.message);
            if let Some(object) = &f.object {
                assert!(f.origin.is_some(), "{name}: {} on {object} has no origin", f.code);
            }
        }
    }
}

#[test]
fn the_grid_exercises_every_code_in_each_mode_it_applies_to() {
    let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let grid = grid();
    for (_, mode, _, report) in &grid {
        for f in &report.findings {
            seen.entry(f.code).or_default().insert(match mode {
                MeshMode::Sidecar => "sidecar",
                MeshMode::Ambient => "ambient",
            });
        }
    }
    let sidecar_only = ["MM1011", "MM1024", "MM1051", "MM1052", "MM1060", "MM1061", "MM1062"];
    let ambient_only = ["MM1006", "MM1007", "MM1050"];
    for code in CATALOG.codes {
        let modes = seen.get(code.code).cloned().unwrap_or_default();
        let want: BTreeSet<&str> = if sidecar_only.contains(&code.code) {
            ["sidecar"].into()
        } else if ambient_only.contains(&code.code) {
            ["ambient"].into()
        } else {
            ["sidecar", "ambient"].into()
        };
        assert_eq!(modes, want, "{} ({}) is reported in modes {modes:?} by the grid", code.code, code.title);
    }
}

#[test]
fn catalog_codes_are_unique_and_well_formed() {
    let mut seen = BTreeSet::new();
    assert_eq!(CATALOG.tool, "mesh-migrate");
    for c in CATALOG.codes {
        let digits = c.code.strip_prefix("MM").unwrap_or("");
        assert!(digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()), "{} is not MM and 4 digits", c.code);
        assert!(digits.starts_with("10"), "{}: precheck codes are MM10xx", c.code);
        assert!(seen.insert(c.code), "{} is in the catalog twice", c.code);
        assert!(!c.title.is_empty() && !c.title.ends_with('.'), "{}: title {:?}", c.code, c.title);
        assert!(
            c.hint.ends_with('.') && !c.hint.trim_end_matches('.').contains(". "),
            "{}: hint is one sentence",
            c.code
        );
    }
}

#[test]
fn every_code_is_documented_under_its_heading() {
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DOCS_PATH);
    let docs = std::fs::read_to_string(&docs_path).unwrap_or_else(|e| panic!("{}: {e}", docs_path.display()));
    assert!(docs.starts_with("# Finding codes\n"), "docs/findings.md starts with `# Finding codes`");
    let section = docs.split("\n## mesh-migrate\n").nth(1).expect("a `## mesh-migrate` section");
    let section = section.split("\n## ").next().unwrap();
    let mut documented = Vec::new();
    for part in section.split("\n### ").skip(1) {
        let (heading, body) = part.split_once('\n').unwrap_or((part, ""));
        documented.push(heading.trim().to_string());
        let code = CATALOG
            .get(heading.trim())
            .unwrap_or_else(|| panic!("docs document {heading}, which is not in the catalog"));
        let title_line = format!("**{}** ({}", code.title, code.severity);
        assert!(body.contains(&title_line), "docs for {} should carry `{title_line}…`", code.code);
        for part in ["*Why it matters:*", "*Fix:*"] {
            assert!(body.contains(part), "docs for {} lack {part}", code.code);
        }
    }
    let catalog: Vec<String> = CATALOG.codes.iter().map(|c| c.code.to_string()).collect();
    assert_eq!(documented, catalog, "docs headings must list every code once, in catalog order");
}
