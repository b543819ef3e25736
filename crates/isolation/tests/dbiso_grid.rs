//! The `dbiso audit` fixture grid, and the meta-tests that keep codes, analyzers and docs in step.
//!
//! Each directory under `tests/fixtures/dbiso/` is one case: `input.yaml` (loaded with the same
//! loader as `-f`, default namespace `default`) and `expected.txt`, one line per finding
//! `CODE Kind/namespace/name` and one line `skipped <analyzer>` per analyzer that could not run;
//! blank lines and `#` comments are ignored and order does not matter. An optional
//! `options.txt` sets `source = cluster/<ns>` (treat the input as a live load limited to that
//! namespace: every kind the analyzers want counts as listed) and `forbidden = Kind, ...` (those
//! kinds' lists were refused).
//!
//! Besides the grid: every code is exercised and documented, no finding message carries a
//! secret value planted in the fixtures, and the policies `generate` writes isolate every owned
//! database of every case without cutting off an owner.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshmove_isolation::catalog::CATALOG;
use meshmove_isolation::generate::{self, GenerateOptions};
use meshmove_isolation::{self as dbiso, AuditOptions};
use meshmove_model::findings::{self, Analyzer, DOCS_PATH, Report};
use meshmove_model::inventory::{self, Inventory, SourceInfo, Unavailable, kinds};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbiso")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(fixtures()).expect("fixtures/dbiso exists").map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no dbiso fixtures found");
    dirs
}

struct Case {
    name: String,
    inventory: Inventory,
    options: AuditOptions,
    expected: String,
}

fn load(case: &Path) -> Case {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let input = case.join("input.yaml");
    let files = inventory::load_paths(std::slice::from_ref(&input), "default", None).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!files.objects().is_empty(), "{name}: loaded no objects");
    let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap_or_else(|e| panic!("{name}: expected.txt: {e}"));
    let (mut cluster_ns, mut forbidden) = (None, Vec::new());
    if let Ok(text) = std::fs::read_to_string(case.join("options.txt")) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{name}: `{line}` is not key = value"));
            match (key.trim(), value.trim()) {
                ("source", v) => cluster_ns = Some(v.strip_prefix("cluster/").expect("source = cluster/<ns>").to_string()),
                ("forbidden", v) => forbidden = v.split(',').map(|s| s.trim().to_string()).collect(),
                (other, _) => panic!("{name}: unknown option `{other}`"),
            }
        }
    }
    let Some(ns) = cluster_ns else {
        return Case { name, inventory: files, options: AuditOptions { live: false }, expected };
    };
    let options = AuditOptions { live: true };
    let analyzers = dbiso::analyzers(&options);
    let refs: Vec<&dyn Analyzer> = analyzers.iter().map(|a| a.as_ref()).collect();
    let listed = findings::wanted_kinds(&refs)
        .0
        .into_iter()
        .map(|k| {
            let why = forbidden
                .iter()
                .any(|f| f == k.kind)
                .then(|| Unavailable::Forbidden { message: format!("{} is forbidden: cannot list {}", k.resource(), k.resource()) });
            (k, why)
        })
        .collect::<BTreeMap<_, _>>();
    let objects = files
        .objects()
        .iter()
        .filter(|o| o.namespace.as_deref().is_none_or(|n| n == ns))
        .filter(|o| !forbidden.contains(&o.kind))
        .cloned()
        .collect();
    let source = SourceInfo::Cluster { context: "fixture".into(), namespace: Some(ns.clone()) };
    Case { name, inventory: Inventory::from_cluster(objects, listed, source, ns), options, expected }
}

fn audit(inventory: &Inventory, options: &AuditOptions) -> Report {
    let analyzers = dbiso::analyzers(options);
    let refs: Vec<&dyn Analyzer> = analyzers.iter().map(|a| a.as_ref()).collect();
    // As `kubectl dbiso audit` reports it: with one DB3000 per kind the cluster refused.
    let mut report = findings::run(CATALOG.tool, "audit", &refs, inventory);
    report.findings.extend(findings::unread_findings(&meshmove_isolation::catalog::CODE_UNREAD_INPUT, inventory));
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

fn grid() -> Vec<(Case, Report)> {
    cases()
        .iter()
        .map(|c| {
            let case = load(c);
            let report = audit(&case.inventory, &case.options);
            (case, report)
        })
        .collect()
}

#[test]
fn dbiso_fixture_grid() {
    let mut failures = Vec::new();
    let print = std::env::var_os("DBISO_GRID_PRINT").is_some();
    let grid = grid();
    for (case, report) in &grid {
        if print {
            println!("== {}", case.name);
            for f in &report.findings {
                println!("{} {} {}\n    {}", f.code, f.severity, f.object.as_ref().map_or("-".into(), ToString::to_string), f.message);
            }
        }
        let want = expected_lines(&case.expected).join("\n") + "\n";
        let got = lines_of(report).join("\n") + "\n";
        if want != got {
            let diff = similar::TextDiff::from_lines(&want, &got);
            let messages: Vec<String> = report.findings.iter().map(|f| format!("    {} {:?}: {}", f.code, f.object, f.message)).collect();
            failures.push(format!("--- {} (- expected, + actual)\n{}\n  findings:\n{}", case.name, diff.unified_diff(), messages.join("\n")));
        }
    }
    assert!(grid.len() >= 9, "only {} cases", grid.len());
    assert!(failures.is_empty(), "{} of {} dbiso fixtures differ:\n\n{}", failures.len(), grid.len(), failures.join("\n\n"));
}

#[test]
fn findings_use_catalog_codes_with_their_severity_and_say_something() {
    for (case, report) in grid() {
        for f in &report.findings {
            let code = CATALOG.get(f.code).unwrap_or_else(|| panic!("{}: {} is not in the catalog", case.name, f.code));
            assert_eq!(f.severity, code.severity, "{}: {}", case.name, f.code);
            assert_eq!(f.hint, code.hint, "{}: {}", case.name, f.code);
            assert_eq!(f.docs, format!("docs/findings.md#{}", f.code.to_ascii_lowercase()));
            assert!(f.message.len() > 30, "{}: {} has a terse message: {:?}", case.name, f.code, f.message);
            assert!(f.origin.is_some(), "{}: {} has no origin", case.name, f.code);
        }
    }
}

#[test]
fn no_secret_value_reaches_a_finding() {
    for (case, report) in grid() {
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("s3cr3t"), "{}: a secret value is in the report: {json}", case.name);
        // A host read from a Secret is part of its value too.
        assert!(!json.contains("reports-pg"), "{}: a host from a Secret is in the report: {json}", case.name);
    }
}

#[test]
fn the_grid_exercises_every_code() {
    let seen: BTreeSet<&str> = grid().iter().flat_map(|(_, r)| r.findings.iter().map(|f| f.code)).collect();
    for code in CATALOG.codes {
        assert!(seen.contains(code.code), "{} ({}) is reported by no fixture", code.code, code.title);
    }
}

#[test]
fn generated_policies_isolate_every_owned_database() {
    for (case, _) in grid().into_iter().filter(|(c, _)| !c.options.live) {
        let generation = generate::generate(&case.inventory, &GenerateOptions::default());
        let owned: BTreeSet<String> = generation.policies.iter().map(|p| p.subject.to_string()).collect();
        // The input's own policies may admit more (policies add up): judge the generated ones alone.
        let mut objects: Vec<_> = case.inventory.objects().iter().filter(|o| o.kind != kinds::NETWORK_POLICY.kind).cloned().collect();
        for p in &generation.policies {
            let yaml = meshmove_model::yaml::to_yaml_string(&p.object);
            objects.extend(inventory::load_str(&yaml, None, "default").unwrap());
        }
        let isolated = Inventory::from_files(objects, vec!["generated".into()], "default".into());
        let report = audit(&isolated, &case.options);
        for f in &report.findings {
            let on = f.object.as_ref().map(ToString::to_string).unwrap_or_default();
            let reachability = f.code.starts_with("DB301") || f.code.starts_with("DB302");
            assert!(
                !(reachability && owned.contains(&on)) && !f.code.starts_with("DB302"),
                "{}: after applying the generated policies {} remains on {on}: {}",
                case.name,
                f.code,
                f.message
            );
        }
    }
}

/// In an ambient namespace the findings say which sources reach the database only through the
/// HBONE tunnel.
#[test]
fn ambient_exposures_name_the_tunnel() {
    let case = load(&fixtures().join("ambient-hbone"));
    let report = audit(&case.inventory, &case.options);
    let message = |code: &str| report.findings.iter().find(|f| f.code == code).map(|f| f.message.clone()).unwrap_or_default();
    assert!(message("DB3010").ends_with(": Deployment/web via HBONE 15008 (ambient)"), "{}", message("DB3010"));
    assert!(message("DB3011").ends_with(": any pod of any other namespace in the ambient mesh via HBONE 15008 (ambient)"), "{}", message("DB3011"));
}

#[test]
fn catalog_codes_are_unique_and_well_formed() {
    let mut seen = BTreeSet::new();
    assert_eq!(CATALOG.tool, "dbiso");
    for c in CATALOG.codes {
        let digits = c.code.strip_prefix("DB").unwrap_or("");
        assert!(digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()), "{} is not DB and 4 digits", c.code);
        assert!(digits.starts_with("30"), "{}: dbiso codes are DB30xx", c.code);
        assert!(seen.insert(c.code), "{} is in the catalog twice", c.code);
        assert!(!c.title.is_empty() && !c.title.ends_with('.'), "{}: title {:?}", c.code, c.title);
        assert!(c.hint.ends_with('.') && !c.hint.trim_end_matches('.').contains(". "), "{}: hint is one sentence", c.code);
    }
}

#[test]
fn every_code_is_documented_under_its_heading() {
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DOCS_PATH);
    let docs = std::fs::read_to_string(&docs_path).unwrap_or_else(|e| panic!("{}: {e}", docs_path.display()));
    let section = docs.split("\n## dbiso\n").nth(1).expect("a `## dbiso` section");
    let section = section.split("\n## ").next().unwrap();
    let mut documented = Vec::new();
    for part in section.split("\n### ").skip(1) {
        let (heading, body) = part.split_once('\n').unwrap_or((part, ""));
        documented.push(heading.trim().to_string());
        let code = CATALOG.get(heading.trim()).unwrap_or_else(|| panic!("docs document {heading}, which is not in the catalog"));
        let title_line = format!("**{}** ({}", code.title, code.severity);
        assert!(body.contains(&title_line), "docs for {} should carry `{title_line}…`", code.code);
        for part in ["*Why it matters:*", "*Fix:*"] {
            assert!(body.contains(part), "docs for {} lack {part}", code.code);
        }
    }
    let catalog: Vec<String> = CATALOG.codes.iter().map(|c| c.code.to_string()).collect();
    assert_eq!(documented, catalog, "docs headings must list every code once, in catalog order");
}
