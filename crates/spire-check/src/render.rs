//! Rendering: the check report as `linkerd check` prints it, and the identities table.
//!
//! The check table is a list, not a grid: a header per category, one line per check with a mark
//! (`✔` ok, `‼` warning, `×` error, `-` skipped), and under each failing check its details and a
//! pointer to the docs. The marks are the same with or without colour (colour is only added on a
//! terminal), so logs and CI output read the same as a terminal. `-o wide` adds the codes, the
//! details of passing checks and the hint sentence.

use meshmove_spire::{CheckResult, CheckStatus, IdentityRow, IdentityStatus, SpireReport};
use owo_colors::OwoColorize;

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

fn check_lines(out: &mut String, c: &CheckResult, wide: bool, color: bool) {
    let code = if wide { format!(" [{}]", c.code) } else { String::new() };
    out.push_str(&format!("{} {}{code}\n", mark(c.result, color), c.description));
    let failed = matches!(c.result, CheckStatus::Warning | CheckStatus::Error);
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
            if wide {
                out.push_str(&format!("    {}\n", c.spec.hint));
            }
            out.push_str(&format!("    see {} for hints\n", c.spec.anchor()));
        }
        _ if wide => {
            for d in &c.details {
                out.push_str(&format!("    {d}\n"));
            }
        }
        _ => {}
    }
}

/// The report as text.
pub fn check_report(report: &SpireReport, wide: bool, color: bool) -> String {
    let mut out = String::new();
    for (i, cat) in report.categories.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}\n{}\n", cat.name, "-".repeat(cat.name.chars().count())));
        for c in &cat.checks {
            check_lines(&mut out, c, wide, color);
        }
    }
    let verdict = if report.success { CheckStatus::Ok } else { CheckStatus::Error };
    out.push_str(&format!("\nStatus check results are {}\n", mark(verdict, color)));
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

    #[test]
    fn linkerd_style_lines() {
        let text = check_report(&report(), false, false);
        assert_eq!(
            text,
            "spire-agent\n-----------\n✔ SPIRE agent DaemonSet is deployed\n× Every schedulable node runs a SPIRE agent\n    Node/node-2: no agent\n    see docs/findings.md#sc2103 for hints\n‼ No double\n    twice\n    see docs/findings.md#sc2202 for hints\n- Ready\n    skipped: no status\n\nStatus check results are ×\n"
        );
        let wide = check_report(&report(), true, false);
        assert!(wide.contains("✔ SPIRE agent DaemonSet is deployed [SC2101]\n    found it\n"), "{wide}");
        assert!(
            wide.contains(&format!("    {}\n    see docs/findings.md#sc2103", catalog::AGENT_ON_EVERY_NODE.hint)),
            "{wide}"
        );
        let colored = check_report(&report(), false, true);
        assert!(colored.contains('\u{1b}') && colored.contains("Every schedulable node"), "{colored}");
    }

    #[test]
    fn success_mark_ignores_warnings() {
        let mut r = report();
        r.categories[0].checks.remove(1);
        let r = SpireReport::new(r.categories);
        assert!(check_report(&r, false, false).ends_with("Status check results are ✔\n"));
    }
}
