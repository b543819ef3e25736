//! Rendering a report made of checks the way `linkerd check` prints it.
//!
//! The table is a list, not a grid: a header per category, one line per check with a mark
//! (`✔` ok, `‼` warning, `×` error, `-` skipped). A failing check carries its code on its line,
//! then its findings, a one-line hint and the URL of its documentation. Skipped checks are hidden
//! unless `--verbose` (or `-o wide`) asks for them; a count says how many were left out, and a
//! category with nothing to show is left out whole. The last line sums up: `✔` when everything
//! passed, `‼` when only warnings failed, `×` when an error did. The marks are the same with or
//! without colour (colour is only added on a terminal), so logs and CI output read the same as a
//! terminal. `-o wide` adds every check's code and what passing checks found. JSON and YAML are
//! the findings report itself, as for every other report.

use anyhow::Result;
use meshmove_model::findings::{Check, Finding, Outcome, Report};
use owo_colors::OwoColorize;

use crate::flags::OutputFormat;
use crate::output::Out;

/// How much of the report to show.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    /// `-o wide`: codes and details of every check, skipped ones included.
    pub wide: bool,
    /// `--verbose`: skipped checks too, with the reason.
    pub verbose: bool,
    pub color: bool,
}

impl View {
    fn shows(&self, c: &Check) -> bool {
        c.result != Outcome::Skipped || self.verbose || self.wide
    }
}

/// Render a report of checks on stdout.
pub fn checks(out: &mut Out, format: OutputFormat, view: View, report: &Report) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => super::structured(out, format, report),
        OutputFormat::Table | OutputFormat::Wide => {
            let view = View { wide: view.wide || format == OutputFormat::Wide, ..view };
            Ok(out.write_str(&text(report, view))?)
        }
    }
}

/// The mark of a result.
fn mark(status: Outcome, color: bool) -> String {
    let m = match status {
        Outcome::Ok => "✔",
        Outcome::Warning => "‼",
        Outcome::Error => "×",
        Outcome::Skipped => "-",
    };
    if !color {
        return m.to_string();
    }
    match status {
        Outcome::Ok => m.green().to_string(),
        Outcome::Warning => m.yellow().to_string(),
        Outcome::Error => m.red().bold().to_string(),
        Outcome::Skipped => m.dimmed().to_string(),
    }
}

fn detail(f: &Finding) -> String {
    match &f.object {
        Some(o) => format!("{o}: {}", f.message),
        None => f.message.clone(),
    }
}

fn check_lines(out: &mut String, report: &Report, c: &Check, view: View) {
    let failed = c.result.failed();
    let code = if failed || view.wide { format!(" [{}]", c.code) } else { String::new() };
    out.push_str(&format!("{} {}{code}\n", mark(c.result, view.color), c.description));
    match c.result {
        Outcome::Skipped => {
            if let Some(reason) = report.skip_reason(c.code) {
                out.push_str(&format!("    skipped: {reason}\n"));
            }
        }
        _ if failed => {
            let findings: Vec<&Finding> = report.findings_of(c.code).collect();
            for f in &findings {
                out.push_str(&format!("    {}\n", detail(f)));
            }
            if let Some(f) = findings.first() {
                out.push_str(&format!("    hint: {}\n", f.hint));
                out.push_str(&format!("    see {}\n", f.docs));
            }
        }
        _ if view.wide => {
            for line in &c.info {
                out.push_str(&format!("    {line}\n"));
            }
        }
        _ => {}
    }
}

/// The report as text.
pub fn text(report: &Report, view: View) -> String {
    let mut out = String::new();
    let mut hidden = 0;
    let mut categories: Vec<&str> = Vec::new();
    for c in &report.checks {
        if !categories.contains(&c.category) {
            categories.push(c.category);
        }
    }
    for category in categories {
        let checks: Vec<&Check> = report.checks.iter().filter(|c| c.category == category).collect();
        let shown: Vec<&Check> = checks.iter().copied().filter(|c| view.shows(c)).collect();
        hidden += checks.len() - shown.len();
        if shown.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{category}\n{}\n", "-".repeat(category.chars().count())));
        for c in shown {
            check_lines(&mut out, report, c, view);
        }
    }
    if hidden > 0 {
        let checks = if hidden == 1 { "check" } else { "checks" };
        out.push_str(&format!("\n{hidden} skipped {checks} not shown: --verbose lists them with the reason\n"));
    }
    let verdict = [Outcome::Error, Outcome::Warning]
        .into_iter()
        .find(|worst| report.checks.iter().any(|c| c.result == *worst))
        .unwrap_or(Outcome::Ok);
    out.push_str(&format!("\nStatus check results are {}\n", mark(verdict, view.color)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::findings::{CategoryDef, CheckDef, Code, Detail, Severity, Verdict};
    use meshmove_model::inventory::{ObjectRef, SourceInfo};

    /// A catalog entry for these tests: `XX0103 Error "Every node runs an agent" "Widen it."`.
    fn code(spec: &'static str) -> &'static Code {
        let (code, rest) = spec.split_once(' ').unwrap();
        let (severity, rest) = rest.split_once(' ').unwrap();
        let (title, hint) = rest.trim_matches('"').split_once("\" \"").unwrap();
        let severity = if severity == "Error" { Severity::Error } else { Severity::Warning };
        Box::leak(Box::new(Code { code, severity, title, hint }))
    }

    fn report(categories: &[CategoryDef<()>]) -> Report {
        let mut r = Report::new("demo", "check", SourceInfo::Files { paths: vec![] });
        r.run_checks(categories, &(), &|c| format!("https://example.org/docs#{}", c.code.to_ascii_lowercase()));
        r.finish(&[])
    }

    fn agent() -> CategoryDef<()> {
        CategoryDef {
            name: "agent",
            available: |_| Ok(()),
            checks: vec![
                CheckDef::new(code(r#"XX0101 Error "The agent is deployed" "Install it.""#), |_| Verdict::Pass(vec![Detail::new("found it")])),
                CheckDef::new(code(r#"XX0103 Error "Every node runs an agent" "Widen it.""#), |_| {
                    Verdict::Fail(vec![Detail::on_ref(ObjectRef::new("Node", None, "node-2"), "no agent")])
                }),
                CheckDef::new(code(r#"XX0202 Warning "No double" "Narrow it.""#), |_| Verdict::Fail(vec![Detail::new("twice")])),
                CheckDef::new(code(r#"XX0102 Error "Ready" "Read the logs.""#), |_| Verdict::Skip("no status".into())),
            ],
        }
    }

    #[test]
    fn linkerd_style_lines() {
        let r = report(&[agent()]);
        assert_eq!(
            text(&r, View::default()),
            "agent\n-----\n✔ The agent is deployed\n× Every node runs an agent [XX0103]\n    Node/node-2: no agent\n    hint: Widen it.\n    see https://example.org/docs#xx0103\n‼ No double [XX0202]\n    twice\n    hint: Narrow it.\n    see https://example.org/docs#xx0202\n\n1 skipped check not shown: --verbose lists them with the reason\n\nStatus check results are ×\n",
        );
        let verbose = text(&r, View { verbose: true, ..View::default() });
        assert!(verbose.contains("- Ready\n    skipped: no status\n\nStatus check results are ×\n"), "{verbose}");
        assert!(!verbose.contains("not shown"), "{verbose}");
        let wide = text(&r, View { wide: true, ..View::default() });
        assert!(wide.contains("✔ The agent is deployed [XX0101]\n    found it\n"), "{wide}");
        assert!(wide.contains("- Ready [XX0102]\n    skipped: no status\n"), "{wide}");
        let colored = text(&r, View { color: true, ..View::default() });
        assert!(colored.contains('\u{1b}') && colored.contains("Every node runs"), "{colored}");
    }

    #[test]
    fn the_summary_mark_is_the_worst_result() {
        let mut warning_only = agent();
        warning_only.checks.remove(1);
        assert!(text(&report(&[warning_only]), View::default()).ends_with("Status check results are ‼\n"));
        let mut passing = agent();
        passing.checks.drain(1..3);
        assert!(text(&report(&[passing]), View::default()).ends_with("Status check results are ✔\n"));
        // Suppressed failures are skipped, not failed.
        let r = report(&[agent()]).finish(&["XX0103".parse().unwrap(), "XX0202".parse().unwrap()]);
        assert!(text(&r, View::default()).ends_with("3 skipped checks not shown: --verbose lists them with the reason\n\nStatus check results are ✔\n"));
    }

    #[test]
    fn a_category_with_only_skipped_checks_is_left_out() {
        let trust =
            CategoryDef { name: "trust", available: |_| Err(meshmove_model::findings::CategoryUnavailable::NotInInput("no mesh")), checks: vec![CheckDef::new(code(r#"XX0402 Warning "Mesh" "Add it.""#), |_| Verdict::Pass(Vec::new()))] };
        assert_eq!(
            text(&report(&[trust]), View::default()),
            "\n1 skipped check not shown: --verbose lists them with the reason\n\nStatus check results are ✔\n"
        );
    }
}
