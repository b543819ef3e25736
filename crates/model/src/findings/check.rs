//! Checks: findings reported the way `linkerd check` reports, as named categories of checks that
//! each pass, warn, fail or are skipped.
//!
//! A check is a value (its catalog code, a description, and a plain function over explicit
//! inputs), so the list of checks is data that tests, docs and binaries can all walk. Running
//! checks fills the same [`Report`] the analyzers fill: each failure detail is a [`Finding`] of the
//! check's code, tagged with its category; a check that could not run is a [`Skipped`] entry
//! under its code; and [`Report::checks`] records every check that ran, in order, with its
//! result, so that a printer can show the passing ones too. Suppressions, `--fail-on` and the JSON
//! schema are therefore those of every other report.
//!
//! A check never fails because its inputs are missing: a category whose inputs are unavailable
//! (no Nodes when checking charts offline) is skipped whole, and a single check whose own input is
//! missing reports itself skipped with the reason. A check that only means something when another
//! passed names it ([`CheckDef::after`]); when that one failed, the check is skipped with
//! "<code> (<description>) failed" instead of reporting an ok that contradicts it.

use std::fmt;

use serde::Serialize;

use super::{Code, Finding, Report, Severity, Skipped, Suppression};
use crate::inventory::{Kind, Object, ObjectRef};

/// One line of a check's details, optionally about one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Detail {
    pub object: Option<ObjectRef>,
    /// `file:line` or `cluster <context>` of the object, when known.
    pub origin: Option<String>,
    pub message: String,
}

impl Detail {
    /// A detail about the whole input.
    pub fn new(message: impl Into<String>) -> Self {
        Detail { object: None, origin: None, message: message.into() }
    }

    /// A detail about one loaded object.
    pub fn on(object: &Object, message: impl Into<String>) -> Self {
        Detail { object: Some(object.object_ref()), origin: Some(object.origin.to_string()), message: message.into() }
    }

    /// A detail about an object known by reference only (a Node named by a pod, say).
    pub fn on_ref(object: ObjectRef, message: impl Into<String>) -> Self {
        Detail { object: Some(object), origin: None, message: message.into() }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(o) => write!(f, "{o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What a check function concludes. The severity of a failure comes from the check's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The check passed; the details are information (TTLs, what was found).
    Pass(Vec<Detail>),
    /// The check failed; one detail per problem.
    Fail(Vec<Detail>),
    /// The check could not run: its input is unavailable.
    Skip(String),
}

impl Verdict {
    /// Pass when there are no problems, fail with them otherwise.
    pub fn from_problems(problems: Vec<Detail>) -> Self {
        Self::from_problems_or(problems, Vec::new())
    }

    /// Pass with `info` when there are no problems, fail with them (sorted, once each) otherwise.
    pub fn from_problems_or(mut problems: Vec<Detail>, info: Vec<Detail>) -> Self {
        if problems.is_empty() {
            Verdict::Pass(info)
        } else {
            problems.sort();
            problems.dedup();
            Verdict::Fail(problems)
        }
    }
}

/// A check: which code it reports under, what it verifies, and how.
pub struct CheckDef<I> {
    pub code: &'static Code,
    /// What the check verifies, phrased as the healthy state ("SPIRE server is ready").
    pub description: &'static str,
    pub run: fn(&I) -> Verdict,
    /// Checks (run earlier in the report) whose failure makes this one meaningless.
    pub requires: Vec<&'static Code>,
}

impl<I> CheckDef<I> {
    /// A check whose description is the code's title.
    pub fn new(code: &'static Code, run: fn(&I) -> Verdict) -> Self {
        CheckDef { code, description: code.title, run, requires: Vec::new() }
    }

    /// Skip this check when one of `prerequisites` failed (warning or error).
    pub fn after(mut self, prerequisites: &[&'static Code]) -> Self {
        self.requires.extend_from_slice(prerequisites);
        self
    }
}

/// Why a category's inputs are unavailable: every check of the category is then skipped with
/// this as its reason (a reason to skip, never a failure: see the module notes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryUnavailable {
    /// A kind the category reads could not be read (RBAC denied the list, or the server did not
    /// find a built-in kind); shown as the inventory's reason, which names the verb and resource.
    #[error("{}", why.describe(kind))]
    Unread { kind: &'static Kind, why: crate::inventory::Unavailable },
    /// On a cluster, a kind the category reads was not listed at all.
    #[error("{}s are not listed", kind.kind)]
    NotListed { kind: &'static Kind },
    /// The input holds nothing the category reads; the text says what is missing and, where it
    /// helps, how to provide it ("no DaemonSet in the input").
    #[error("{0}")]
    NotInInput(&'static str),
}

/// A named group of checks over the same inputs.
pub struct CategoryDef<I> {
    pub name: &'static str,
    /// `Err(why)` when the category's inputs are unavailable: every check is then skipped.
    pub available: fn(&I) -> Result<(), CategoryUnavailable>,
    pub checks: Vec<CheckDef<I>>,
}

/// The outcome of a check as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Warning,
    Error,
    Skipped,
}

impl Outcome {
    /// A warning or an error.
    pub fn failed(self) -> bool {
        matches!(self, Outcome::Warning | Outcome::Error)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Warning => "warning",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        })
    }
}

/// A check that ran. Its problems are the report's findings with its code, the reason it was
/// skipped is the report's `skipped` entry with its code; `info` is what a passing check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub category: &'static str,
    pub code: &'static str,
    pub description: &'static str,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<String>,
}

/// The finding for one failure detail of a check.
fn finding(code: &'static Code, category: &'static str, detail: Detail, docs: &dyn Fn(&Code) -> String) -> Finding {
    let mut f = Finding::new(code, detail.message);
    f.category = Some(category);
    f.object = detail.object;
    f.origin = detail.origin;
    f.docs = docs(code);
    f
}

impl Report {
    /// Run categories of checks in order over `input`, appending their checks, findings and
    /// skipped entries. A check sees only `input`, and the checks before it (in this call or an
    /// earlier one) only to be skipped when a prerequisite failed. `docs` gives a code's
    /// documentation link.
    pub fn run_checks<I>(&mut self, categories: &[CategoryDef<I>], input: &I, docs: &dyn Fn(&Code) -> String) {
        for def in categories {
            let unavailable = (def.available)(input).err();
            for c in &def.checks {
                let failed_prerequisite = c.requires.iter().find_map(|code| {
                    self.checks.iter().find(|r| r.code == code.code && r.result.failed())
                });
                let verdict = match (&unavailable, failed_prerequisite) {
                    (Some(reason), _) => Verdict::Skip(reason.to_string()),
                    (None, Some(p)) => Verdict::Skip(prerequisite_failed(p.code, p.description)),
                    (None, None) => (c.run)(input),
                };
                let mut check =
                    Check { category: def.name, code: c.code.code, description: c.description, result: Outcome::Ok, info: Vec::new() };
                match verdict {
                    Verdict::Pass(info) => check.info = info.iter().map(ToString::to_string).collect(),
                    Verdict::Skip(reason) => {
                        check.result = Outcome::Skipped;
                        self.skipped.push(Skipped { analyzer: c.code.code, reason });
                    }
                    Verdict::Fail(mut problems) => {
                        check.result = match c.code.severity {
                            Severity::Error => Outcome::Error,
                            Severity::Warning => Outcome::Warning,
                            // An informational code never fails a check.
                            Severity::Info => Outcome::Ok,
                        };
                        if problems.is_empty() {
                            problems.push(Detail::new(c.description));
                        }
                        self.findings.extend(problems.into_iter().map(|d| finding(c.code, def.name, d, docs)));
                    }
                }
                self.checks.push(check);
            }
        }
    }

    /// The check with this code, when it ran.
    pub fn check(&self, code: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.code == code)
    }

    /// The findings of one code, in report order.
    pub fn findings_of<'r>(&'r self, code: &'r str) -> impl Iterator<Item = &'r Finding> {
        self.findings.iter().filter(move |f| f.code == code)
    }

    /// Why the analyzer or check `code` was skipped, when it was.
    pub fn skip_reason(&self, code: &str) -> Option<&str> {
        self.skipped.iter().find(|s| s.analyzer == code).map(|s| s.reason.as_str())
    }

    /// After suppression: a failing check whose every finding was suppressed reports skipped
    /// ("suppressed"), not ok, since a suppressed problem has not gone away.
    pub(super) fn suppress_checks(&mut self, suppressions: &[Suppression], before: &[Finding]) {
        for i in 0..self.checks.len() {
            let code = self.checks[i].code;
            if !self.checks[i].result.failed() || self.findings_of(code).next().is_some() {
                continue;
            }
            let gone = before.iter().filter(|f| f.code == code && suppressions.iter().any(|s| s.matches(f))).count();
            self.checks[i].result = Outcome::Skipped;
            self.skipped.push(Skipped { analyzer: code, reason: format!("suppressed by --suppress {code} ({gone} finding(s))") });
        }
    }
}

/// The reason a check is skipped for a failed prerequisite: `SC2001 (SPIRE server is deployed) failed`.
pub fn prerequisite_failed(code: &str, description: &str) -> String {
    format!("{code} ({description}) failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::FailOn;
    use crate::inventory::SourceInfo;

    static MISSING: Code = Code { code: "XX0001", severity: Severity::Error, title: "Every node has a thing", hint: "Add it." };
    static DOUBLE: Code = Code { code: "XX0002", severity: Severity::Warning, title: "Nothing is twice", hint: "Drop one." };
    static FOUND: Code = Code { code: "XX0003", severity: Severity::Error, title: "The thing is found", hint: "Install it." };
    static AFTER: Code = Code { code: "XX0004", severity: Severity::Error, title: "The thing works", hint: "Fix it." };

    struct Input {
        nodes: usize,
    }

    fn category() -> CategoryDef<Input> {
        CategoryDef {
            name: "demo",
            available: |i| if i.nodes == 0 { Err(CategoryUnavailable::NotInInput("no nodes")) } else { Ok(()) },
            checks: vec![
                CheckDef::new(&MISSING, |i| {
                    Verdict::from_problems(
                        (1..i.nodes)
                            .map(|n| Detail::on_ref(ObjectRef::new("Node", None, format!("n{n}")), "no thing"))
                            .collect(),
                    )
                }),
                CheckDef::new(&DOUBLE, |_| Verdict::Fail(vec![Detail::new("overlap")])),
                CheckDef::new(&FOUND, |_| Verdict::Pass(vec![Detail::new("found the thing")])),
            ],
        }
    }

    fn report() -> Report {
        Report::new("demo", "check", SourceInfo::Files { paths: vec![] })
    }

    fn run(nodes: usize) -> Report {
        let mut r = report();
        r.run_checks(&[category()], &Input { nodes }, &|c| format!("https://example.org/docs#{}", c.code));
        r
    }

    #[test]
    fn unavailable_category_skips_every_check() {
        let r = run(0).finish(&[]);
        assert!(r.checks.iter().all(|c| c.result == Outcome::Skipped));
        assert_eq!(r.skip_reason("XX0001"), Some("no nodes"));
        assert!(r.findings.is_empty() && !r.fails(FailOn::Warning));
    }

    #[test]
    fn failures_are_findings_of_the_checks_code_and_category() {
        let r = run(3).finish(&[]);
        let results: Vec<Outcome> = r.checks.iter().map(|c| c.result).collect();
        assert_eq!(results, [Outcome::Error, Outcome::Warning, Outcome::Ok]);
        assert_eq!(r.check("XX0003").unwrap().info, ["found the thing"]);
        let missing: Vec<&Finding> = r.findings_of("XX0001").collect();
        assert_eq!(missing.len(), 2);
        assert_eq!(missing[0].object.as_ref().unwrap().to_string(), "Node/n1");
        assert_eq!((missing[0].message.as_str(), missing[0].category), ("no thing", Some("demo")));
        assert_eq!(missing[0].docs, "https://example.org/docs#XX0001");
        assert_eq!((r.summary.errors, r.summary.warnings), (2, 1));
        assert!(r.fails(FailOn::Error));
    }

    #[test]
    fn json_shape_is_the_findings_report_with_the_checks() {
        let v = serde_json::to_value(run(2).finish(&[])).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["schema", "tool", "command", "source", "findings", "skipped", "notes", "summary", "checks"]);
        assert_eq!(v["checks"][0], serde_json::json!({"category": "demo", "code": "XX0001", "description": "Every node has a thing", "result": "error"}));
        assert_eq!(v["checks"][2]["info"], serde_json::json!(["found the thing"]));
        assert_eq!(v["findings"][0]["category"], "demo");
        // Analyzer reports have no checks and no categories.
        let plain = serde_json::to_value(report().finish(&[])).unwrap();
        assert!(plain.get("checks").is_none());
    }

    #[test]
    fn targeted_suppression_removes_only_matching_findings() {
        let sup: Suppression = "XX0001=Node/n1".parse().unwrap();
        let r = run(3).finish(std::slice::from_ref(&sup));
        assert_eq!(r.check("XX0001").unwrap().result, Outcome::Error);
        let left: Vec<String> = r.findings_of("XX0001").map(|f| f.object.as_ref().unwrap().name.clone()).collect();
        assert_eq!(left, ["n2"]);
        assert_eq!((r.summary.suppressed, r.summary.errors, r.summary.warnings), (1, 1, 1));
    }

    #[test]
    fn fully_suppressed_check_is_skipped_not_ok() {
        let r = run(3).finish(&["XX0001".parse().unwrap(), "XX0002".parse().unwrap()]);
        assert_eq!(r.check("XX0001").unwrap().result, Outcome::Skipped);
        assert_eq!(r.skip_reason("XX0001"), Some("suppressed by --suppress XX0001 (2 finding(s))"));
        assert_eq!(r.check("XX0002").unwrap().result, Outcome::Skipped);
        assert!(!r.fails(FailOn::Warning) && r.findings.is_empty());
        assert_eq!(r.summary.suppressed, 3);
    }

    #[test]
    fn a_failed_prerequisite_skips_the_checks_after_it() {
        let def = CategoryDef {
            name: "demo",
            available: |_: &Input| Ok(()),
            checks: vec![
                CheckDef::new(&FOUND, |_| Verdict::Fail(vec![Detail::new("none")])),
                CheckDef::new(&AFTER, |_| Verdict::Pass(Vec::new())).after(&[&FOUND]),
                CheckDef::new(&DOUBLE, |_| Verdict::Pass(Vec::new())).after(&[&MISSING]),
            ],
        };
        let later = CategoryDef {
            name: "later",
            available: |_: &Input| Ok(()),
            checks: vec![CheckDef::new(&MISSING, |_| Verdict::Pass(Vec::new())).after(&[&FOUND])],
        };
        let mut r = report();
        r.run_checks(&[def], &Input { nodes: 1 }, &Code::anchor);
        // Prerequisites may sit in an earlier call (the deep checks run after the others).
        r.run_checks(&[later], &Input { nodes: 1 }, &Code::anchor);
        assert_eq!(r.check("XX0004").unwrap().result, Outcome::Skipped);
        assert_eq!(r.skip_reason("XX0004"), Some("XX0003 (The thing is found) failed"));
        // A prerequisite that is not in the report (or passed) does not skip anything.
        assert_eq!(r.check("XX0002").unwrap().result, Outcome::Ok);
        assert_eq!(r.check("XX0001").unwrap().result, Outcome::Skipped);
        assert_eq!(r.checks[3].category, "later");
    }
}
