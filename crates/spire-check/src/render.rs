//! Rendering: the check report as `linkerd check` prints it, and the identities table.
//!
//! The check table is a list, not a grid: a header per category, one line per check with a mark
//! (`✔` ok, `‼` warning, `×` error, `-` skipped). A failing check carries its code on its line,
//! then its details, a one-line hint and the URL of its documentation. Skipped checks are hidden
//! unless `--verbose` (or `-o wide`) asks for them; a count says how many were left out, and a
//! category with nothing to show is left out whole. The last line sums up: `✔` when everything
//! passed, `‼` when only warnings failed, `×` when an error did. The marks are the same with or
//! without colour (colour is only added on a terminal), so logs and CI output read the same as a
//! terminal. `-o wide` adds every check's code and the details of passing checks.

use meshmove_spire::{CheckResult, CheckStatus, IdentityRow, IdentityStatus, SpireReport};
use owo_colors::OwoColorize;

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
    fn shows(&self, c: &CheckResult) -> bool {
        c.result != CheckStatus::Skipped || self.verbose || self.wide
    }
}

/// The mark of a result.
fn mark(status: CheckStatus, color: bool) -> String {
    let m = match status {
        CheckStatus::Ok => "✔",
        CheckStatus::Warning => "‼",
        CheckStatus::Error => "×",
        CheckStatus::Skipped => "-",
    };
    if !color {
        return m.to_string();
    }
    match status {
        CheckStatus::Ok => m.green().to_string(),
        CheckStatus::Warning => m.yellow().to_string(),
        CheckStatus::Error => m.red().bold().to_string(),
        CheckStatus::Skipped => m.dimmed().to_string(),
    }
}

fn check_lines(out: &mut String, c: &CheckResult, view: View) {
    let failed = matches!(c.result, CheckStatus::Warning | CheckStatus::Error);
    let code = if failed || view.wide { format!(" [{}]", c.code) } else { String::new() };
    out.push_str(&format!("{} {}{code}\n", mark(c.result, view.color), c.description));
    match c.result {
        CheckStatus::Skipped => {
            for d in &c.details {
                out.push_str(&format!("    skipped: {d}\n"));
            }
        }
        _ if failed => {
            for d in &c.details {
                out.push_str(&format!("    {d}\n"));
            }
            out.push_str(&format!("    hint: {}\n", c.hint));
            out.push_str(&format!("    see {}\n", c.docs));
        }
        _ if view.wide => {
            for d in &c.details {
                out.push_str(&format!("    {d}\n"));
            }
        }
        _ => {}
    }
}

/// The report as text.
pub fn check_report(report: &SpireReport, view: View) -> String {
    let mut out = String::new();
    let mut hidden = 0;
    for cat in &report.categories {
        let shown: Vec<&CheckResult> = cat.checks.iter().filter(|c| view.shows(c)).collect();
        hidden += cat.checks.len() - shown.len();
        if shown.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{}\n{}\n", cat.name, "-".repeat(cat.name.chars().count())));
        for c in shown {
            check_lines(&mut out, c, view);
        }
    }
    if hidden > 0 {
        let checks = if hidden == 1 { "check" } else { "checks" };
        out.push_str(&format!("\n{hidden} skipped {checks} not shown: --verbose lists them with the reason\n"));
    }
    let verdict = if !report.success {
        CheckStatus::Error
    } else if report.checks().any(|c| c.result == CheckStatus::Warning) {
        CheckStatus::Warning
    } else {
        CheckStatus::Ok
    };
    out.push_str(&format!("\nStatus check results are {}\n", mark(verdict, view.color)));
    out
}

/// The status column: the JSON spelling (`not-istio-form`).
pub fn status_word(s: IdentityStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn status_cell(s: IdentityStatus, color: bool) -> String {
    let word = status_word(s);
    match (color, s) {
        (false, _) => word,
        (true, IdentityStatus::Ok) => word.green().to_string(),
        (true, _) => word.red().to_string(),
    }
}

/// The identities table.
pub fn identities(rows: &[IdentityRow], wide: bool, color: bool) -> String {
    let mut headers = vec!["WORKLOAD", "SERVICE ACCOUNT", "EXPECTED SPIFFE ID", "CLUSTERSPIFFEID", "STATUS"];
    if wide {
        headers.extend(["RENDERED SPIFFE ID", "NOTE"]);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let cells = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.workload.to_string(),
                r.service_account.clone(),
                r.expected_spiffe_id.clone(),
                dash(&r.cluster_spiffe_id),
                status_cell(r.status, color),
            ];
            if wide {
                row.push(dash(&r.rendered));
                row.push(dash(&r.note));
            }
            row
        })
        .collect();
    meshmove_cli::render::table(&headers, cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::inventory::ObjectRef;
    use meshmove_spire::model::Category;
    use meshmove_spire::{CheckResult, Detail, Verdict, catalog};

    fn report() -> SpireReport {
        SpireReport::new(vec![Category {
            name: "spire-agent".into(),
            checks: vec![
                CheckResult::new(
                    &catalog::AGENT_FOUND,
                    "SPIRE agent DaemonSet is deployed",
                    Verdict::Pass(vec![Detail::new("found it")]),
                ),
                CheckResult::new(
                    &catalog::AGENT_ON_EVERY_NODE,
                    "Every schedulable node runs a SPIRE agent",
                    Verdict::Fail(vec![Detail::on_ref(ObjectRef::new("Node", None, "node-2"), "no agent")]),
                ),
                CheckResult::new(&catalog::SINGLE_REGISTRATION, "No double", Verdict::Fail(vec![Detail::new("twice")])),
                CheckResult::new(&catalog::AGENT_READY, "Ready", Verdict::Skip("no status".into())),
            ],
        }])
    }

    fn docs(code: &str) -> String {
        format!("https://github.com/meshmove/meshmove/blob/v{}/docs/findings.md#{code}", env!("CARGO_PKG_VERSION"))
    }

    #[test]
    fn linkerd_style_lines() {
        let text = check_report(&report(), View::default());
        assert_eq!(
            text,
            format!(
                "spire-agent\n-----------\n✔ SPIRE agent DaemonSet is deployed\n× Every schedulable node runs a SPIRE agent [SC2103]\n    Node/node-2: no agent\n    hint: {}\n    see {}\n‼ No double [SC2202]\n    twice\n    hint: {}\n    see {}\n\n1 skipped check not shown: --verbose lists them with the reason\n\nStatus check results are ×\n",
                catalog::AGENT_ON_EVERY_NODE.hint,
                docs("sc2103"),
                catalog::SINGLE_REGISTRATION.hint,
                docs("sc2202")
            )
        );
        let verbose = check_report(&report(), View { verbose: true, ..View::default() });
        assert!(verbose.contains("- Ready\n    skipped: no status\n\nStatus check results are ×\n"), "{verbose}");
        assert!(!verbose.contains("not shown"), "{verbose}");
        let wide = check_report(&report(), View { wide: true, ..View::default() });
        assert!(wide.contains("✔ SPIRE agent DaemonSet is deployed [SC2101]\n    found it\n"), "{wide}");
        assert!(wide.contains("- Ready [SC2102]\n    skipped: no status\n"), "{wide}");
        let colored = check_report(&report(), View { color: true, ..View::default() });
        assert!(colored.contains('\u{1b}') && colored.contains("Every schedulable node"), "{colored}");
    }

    #[test]
    fn the_summary_mark_is_the_worst_result() {
        let mut r = report();
        r.categories[0].checks.remove(1);
        let r = SpireReport::new(r.categories);
        assert!(check_report(&r, View::default()).ends_with("Status check results are ‼\n"));
        let mut r = r;
        r.categories[0].checks.remove(1);
        let r = SpireReport::new(r.categories);
        assert!(check_report(&r, View::default()).ends_with("Status check results are ✔\n"));
    }

    #[test]
    fn a_category_with_only_skipped_checks_is_left_out() {
        let r = SpireReport::new(vec![Category {
            name: "trust".into(),
            checks: vec![CheckResult::new(&catalog::MESH_CONFIG_FOUND, "Mesh", Verdict::Skip("no mesh".into()))],
        }]);
        assert_eq!(
            check_report(&r, View::default()),
            "\n1 skipped check not shown: --verbose lists them with the reason\n\nStatus check results are ✔\n"
        );
    }
}
