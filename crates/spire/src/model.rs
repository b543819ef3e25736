//! The check model: checks as values, their results, and the report they form.
//!
//! `spire-check` reports the way `linkerd check` does: named categories of checks, each check
//! passing, warning, failing or skipped, with a stable code and a hint. A check is a value (its
//! catalog code, a description, and a plain function over explicit inputs), so the list of checks
//! is data that tests, docs and the binary can all walk, and the binary can append categories of
//! its own (deep checks over `exec`) without touching this module.
//!
//! A check never fails because its inputs are missing: a category whose inputs are unavailable
//! (no Nodes when checking charts offline) is skipped whole, and a single check whose own input is
//! missing reports itself skipped with the reason. A check that only means something when another
//! passed names it ([`CheckDef::after`]); when that one failed, the check is skipped with
//! "<code> (<description>) failed" instead of reporting an ok that contradicts it (no "✔ Exactly
//! one SPIRE server is found" under "× SPIRE server is deployed"). Results convert to [`Finding`]s so that
//! `--suppress` and `--fail-on` behave exactly as in the other plugins, and suppressions apply to
//! the check list as well.

use std::fmt;

use serde::{Serialize, Serializer};

use meshmove_model::findings::{Code, FailOn, Finding, REPORT_SCHEMA, Report, Severity, Skipped, Summary, Suppression};
use meshmove_model::inventory::{Object, ObjectRef, SourceInfo};

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

impl Serialize for Detail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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

    /// Pass with `info` when there are no problems, fail with them otherwise.
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

/// A named group of checks over the same inputs.
pub struct CategoryDef<I> {
    pub name: &'static str,
    /// `Err(reason)` when the category's inputs are unavailable: every check is then skipped.
    pub available: fn(&I) -> Result<(), String>,
    pub checks: Vec<CheckDef<I>>,
}

/// Run one category over its inputs. Checks are independent: each sees only `input`, and the
/// results before it only to be skipped when a prerequisite failed.
pub fn run_category<I>(def: &CategoryDef<I>, input: &I) -> Category {
    run_category_after(def, input, &[])
}

/// [`run_category`] after `earlier` categories, whose results prerequisites may name.
pub fn run_category_after<I>(def: &CategoryDef<I>, input: &I, earlier: &[Category]) -> Category {
    let skipped = (def.available)(input).err();
    let mut checks: Vec<CheckResult> = Vec::new();
    for c in &def.checks {
        let failed_prerequisite = c.requires.iter().find_map(|code| {
            earlier
                .iter()
                .flat_map(|cat| &cat.checks)
                .chain(&checks)
                .find(|r| r.code == code.code && matches!(r.result, CheckStatus::Warning | CheckStatus::Error))
        });
        let verdict = match (&skipped, failed_prerequisite) {
            (Some(reason), _) => Verdict::Skip(reason.clone()),
            (None, Some(p)) => Verdict::Skip(prerequisite_failed(p.code, &p.description)),
            (None, None) => (c.run)(input),
        };
        checks.push(CheckResult::new(c.code, c.description, verdict));
    }
    Category { name: def.name.to_string(), checks }
}

/// The reason a check is skipped for a failed prerequisite: `SC2001 (SPIRE server is deployed) failed`.
pub fn prerequisite_failed(code: &str, description: &str) -> String {
    format!("{code} ({description}) failed")
}

/// Run categories in order, each after the ones before it.
pub fn run_categories<I>(defs: &[CategoryDef<I>], input: &I) -> Vec<Category> {
    let mut out: Vec<Category> = Vec::new();
    for def in defs {
        let category = run_category_after(def, input, &out);
        out.push(category);
    }
    out
}

/// The outcome of a check as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warning,
    Error,
    Skipped,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warning => "warning",
            CheckStatus::Error => "error",
            CheckStatus::Skipped => "skipped",
        })
    }
}

/// One check's result. Serialized as `{code, description, result, hint, docs, details}` where
/// `hint` is what to do (one sentence), `docs` the code's documentation URL
/// ([`crate::catalog::docs_url`]) and `details` are strings (`"Kind/namespace/name: message"` when
/// about an object). For a skipped check the single detail is the reason.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub code: &'static str,
    pub description: String,
    pub result: CheckStatus,
    pub hint: String,
    pub docs: String,
    pub details: Vec<Detail>,
    /// The catalog entry (for findings).
    #[serde(skip)]
    pub spec: &'static Code,
    /// Failure details removed by suppressions (kept so that reports count them).
    #[serde(skip)]
    pub suppressed: Vec<Detail>,
    /// The result before suppressions.
    #[serde(skip)]
    pub unsuppressed: CheckStatus,
}

impl CheckResult {
    pub fn new(spec: &'static Code, description: &str, verdict: Verdict) -> Self {
        let (result, details) = match verdict {
            Verdict::Pass(info) => (CheckStatus::Ok, info),
            Verdict::Fail(problems) => (
                match spec.severity {
                    Severity::Error => CheckStatus::Error,
                    Severity::Warning => CheckStatus::Warning,
                    // An informational code never fails a check.
                    Severity::Info => CheckStatus::Ok,
                },
                problems,
            ),
            Verdict::Skip(reason) => (CheckStatus::Skipped, vec![Detail::new(reason)]),
        };
        CheckResult {
            code: spec.code,
            description: description.to_string(),
            result,
            hint: spec.hint.to_string(),
            docs: crate::catalog::docs_url(spec),
            details,
            spec,
            suppressed: Vec::new(),
            unsuppressed: result,
        }
    }

    fn failed(status: CheckStatus) -> bool {
        matches!(status, CheckStatus::Warning | CheckStatus::Error)
    }

    /// The finding for one failure detail (or for the check as a whole when it has none).
    fn finding(&self, detail: Option<&Detail>) -> Finding {
        let severity = if self.unsuppressed == CheckStatus::Error { Severity::Error } else { Severity::Warning };
        let mut f = Finding::new(
            self.spec,
            match detail {
                Some(d) => format!("{}: {}", self.description, d.message),
                None => self.description.clone(),
            },
        )
        .severity(severity);
        f.docs = self.docs.clone();
        if let Some(d) = detail {
            f.object = d.object.clone();
            f.origin = d.origin.clone();
        }
        f
    }

    /// Findings for this check's visible failures.
    pub fn findings(&self) -> Vec<Finding> {
        if !Self::failed(self.result) {
            return Vec::new();
        }
        if self.details.is_empty() {
            return vec![self.finding(None)];
        }
        self.details.iter().map(|d| self.finding(Some(d))).collect()
    }

    /// Findings for every failure, suppressed ones included.
    fn all_findings(&self) -> Vec<Finding> {
        if !Self::failed(self.unsuppressed) {
            return Vec::new();
        }
        let all: Vec<&Detail> = if self.result == self.unsuppressed {
            self.details.iter().chain(&self.suppressed).collect()
        } else {
            self.suppressed.iter().collect()
        };
        if all.is_empty() {
            return vec![self.finding(None)];
        }
        all.into_iter().map(|d| self.finding(Some(d))).collect()
    }

    /// Drop failure details that a suppression matches. When nothing is left the check reports
    /// skipped ("suppressed"), not ok: a suppressed problem has not gone away.
    fn suppress(&mut self, suppressions: &[Suppression]) {
        if !Self::failed(self.result) {
            return;
        }
        if self.details.is_empty() {
            if suppressions.iter().any(|s| s.matches(&self.finding(None))) {
                self.result = CheckStatus::Skipped;
                self.details = vec![Detail::new(format!("suppressed by --suppress {}", self.code))];
            }
            return;
        }
        let (gone, kept): (Vec<Detail>, Vec<Detail>) = std::mem::take(&mut self.details)
            .into_iter()
            .partition(|d| suppressions.iter().any(|s| s.matches(&self.finding(Some(d)))));
        self.details = kept;
        self.suppressed.extend(gone);
        if self.details.is_empty() {
            self.result = CheckStatus::Skipped;
            self.details = vec![Detail::new(format!(
                "suppressed by --suppress {} ({} finding(s))",
                self.code,
                self.suppressed.len()
            ))];
        }
    }
}

/// A category's results.
#[derive(Debug, Clone, Serialize)]
pub struct Category {
    pub name: String,
    pub checks: Vec<CheckResult>,
}

/// The outcome of `spire-check`: `{success, categories: [{name, checks: [...]}]}`.
///
/// `success` is false when any check reports `error` (warnings alone do not fail it, as with
/// `linkerd check`); `--fail-on` is decided on [`SpireReport::fails`].
#[derive(Debug, Clone, Serialize)]
pub struct SpireReport {
    pub success: bool,
    pub categories: Vec<Category>,
}

impl SpireReport {
    pub fn new(categories: Vec<Category>) -> Self {
        let mut r = SpireReport { success: true, categories };
        r.update_success();
        r
    }

    fn update_success(&mut self) {
        let failed = self.checks().any(|c| c.result == CheckStatus::Error);
        self.success = !failed;
    }

    /// Append a category (e.g. deep checks run by the binary). Call before [`Self::finish`].
    pub fn push(&mut self, category: Category) {
        self.categories.push(category);
        self.update_success();
    }

    /// Every check result in order.
    pub fn checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.categories.iter().flat_map(|c| &c.checks)
    }

    /// Apply suppressions to the checks (see [`CheckResult`]); call once, after all categories.
    pub fn finish(mut self, suppressions: &[Suppression]) -> Self {
        for c in self.categories.iter_mut().flat_map(|c| &mut c.checks) {
            c.suppress(suppressions);
        }
        self.update_success();
        self
    }

    /// Findings for the visible (unsuppressed) failures.
    pub fn findings(&self) -> Vec<Finding> {
        self.checks().flat_map(CheckResult::findings).collect()
    }

    /// Whether the run fails under `fail_on` (same rule as the other plugins' reports).
    pub fn fails(&self, fail_on: FailOn) -> bool {
        self.findings().iter().any(|f| fail_on.fails(f.severity))
    }

    /// The failures as a standard findings report (schema `meshmove.report/v1`), suppressed
    /// failures included, so that [`Report::finish`] with the same suppressions drops and counts
    /// them like the other plugins do. Skipped checks become `skipped` entries.
    pub fn to_report(&self, command: &str, source: SourceInfo) -> Report {
        let mut findings = Vec::new();
        let mut skipped = Vec::new();
        for c in self.checks() {
            findings.extend(c.all_findings());
            if c.unsuppressed == CheckStatus::Skipped {
                let reason = c.details.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                skipped.push(Skipped { analyzer: c.code, reason });
            }
        }
        Report {
            schema: REPORT_SCHEMA,
            tool: super::catalog::CATALOG.tool,
            command: command.to_string(),
            source,
            findings,
            skipped,
            notes: Vec::new(),
            summary: Summary::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    struct Input {
        nodes: usize,
    }

    fn category() -> CategoryDef<Input> {
        CategoryDef {
            name: "demo",
            available: |i| if i.nodes == 0 { Err("no nodes".into()) } else { Ok(()) },
            checks: vec![
                CheckDef::new(&catalog::AGENT_ON_EVERY_NODE, |i| {
                    Verdict::from_problems(
                        (1..i.nodes)
                            .map(|n| Detail::on_ref(ObjectRef::new("Node", None, format!("n{n}")), "no agent"))
                            .collect(),
                    )
                }),
                CheckDef::new(&catalog::SINGLE_REGISTRATION, |_| Verdict::Fail(vec![Detail::new("overlap")])),
                CheckDef::new(&catalog::AGENT_FOUND, |_| Verdict::Pass(vec![Detail::new("found spire-agent")])),
            ],
        }
    }

    #[test]
    fn unavailable_category_skips_every_check() {
        let c = run_category(&category(), &Input { nodes: 0 });
        assert!(c.checks.iter().all(|r| r.result == CheckStatus::Skipped));
        assert_eq!(c.checks[0].details[0].to_string(), "no nodes");
        assert!(SpireReport::new(vec![c]).success);
    }

    #[test]
    fn severity_of_a_failure_comes_from_the_code() {
        let c = run_category(&category(), &Input { nodes: 3 });
        assert_eq!(c.checks[0].result, CheckStatus::Error);
        assert_eq!(c.checks[0].details.len(), 2);
        assert_eq!(c.checks[1].result, CheckStatus::Warning);
        assert_eq!(c.checks[2].result, CheckStatus::Ok);
        let report = SpireReport::new(vec![c]);
        assert!(!report.success);
        assert!(report.fails(FailOn::Error));
        let findings = report.findings();
        assert_eq!(findings.len(), 3);
        assert_eq!(findings[0].object.as_ref().unwrap().to_string(), "Node/n1");
        assert_eq!(
            findings[0].docs,
            format!("https://github.com/meshmove/meshmove/blob/v{}/docs/findings.md#sc2103", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn json_shape_is_stable() {
        let report = SpireReport::new(vec![run_category(&category(), &Input { nodes: 2 })]);
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["success"], false);
        let check = &v["categories"][0]["checks"][0];
        let keys: Vec<&str> = check.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["code", "description", "result", "hint", "docs", "details"]);
        assert_eq!(check["result"], "error");
        assert_eq!(check["details"][0], "Node/n1: no agent");
        assert_eq!(check["hint"], catalog::AGENT_ON_EVERY_NODE.hint);
        assert!(check["docs"].as_str().unwrap().ends_with("/docs/findings.md#sc2103"));
        assert_eq!(v["categories"][0]["name"], "demo");
    }

    #[test]
    fn targeted_suppression_removes_only_matching_details() {
        let report = SpireReport::new(vec![run_category(&category(), &Input { nodes: 3 })]);
        let sup: Suppression = "SC2103=Node/n1".parse().unwrap();
        let report = report.finish(std::slice::from_ref(&sup));
        let check = &report.categories[0].checks[0];
        assert_eq!(check.result, CheckStatus::Error);
        assert_eq!(check.details.len(), 1);
        assert_eq!(check.details[0].object.as_ref().unwrap().name, "n2");
        // The standard report still sees both, and its own finish drops and counts one.
        let std = report.to_report("check", SourceInfo::Files { paths: vec![] }).finish(&[sup]);
        assert_eq!(std.summary.suppressed, 1);
        assert_eq!(std.summary.errors, 1);
        assert_eq!(std.summary.warnings, 1);
    }

    #[test]
    fn fully_suppressed_check_is_skipped_not_ok() {
        let report = SpireReport::new(vec![run_category(&category(), &Input { nodes: 3 })]);
        let report = report.finish(&["SC2103".parse().unwrap(), "SC2202".parse().unwrap()]);
        let checks = &report.categories[0].checks;
        assert_eq!(checks[0].result, CheckStatus::Skipped);
        assert_eq!(checks[1].result, CheckStatus::Skipped);
        assert!(report.success);
        assert!(!report.fails(FailOn::Warning));
        assert!(report.findings().is_empty());
    }

    #[test]
    fn a_failed_prerequisite_skips_the_checks_after_it() {
        let def = CategoryDef {
            name: "demo",
            available: |_: &Input| Ok(()),
            checks: vec![
                CheckDef::new(&catalog::SERVER_FOUND, |_| Verdict::Fail(vec![Detail::new("none")])),
                CheckDef::new(&catalog::SERVER_UNIQUE, |_| Verdict::Pass(Vec::new())).after(&[&catalog::SERVER_FOUND]),
                CheckDef::new(&catalog::AGENT_READY, |_| Verdict::Pass(Vec::new())).after(&[&catalog::AGENT_FOUND]),
            ],
        };
        let c = run_category(&def, &Input { nodes: 1 });
        assert_eq!(c.checks[1].result, CheckStatus::Skipped);
        assert_eq!(c.checks[1].details[0].message, "SC2001 (SPIRE server is deployed) failed");
        // A prerequisite that is not in the report (or passed) does not skip anything.
        assert_eq!(c.checks[2].result, CheckStatus::Ok);
        // Prerequisites may sit in earlier categories.
        let later = CategoryDef {
            name: "later",
            available: |_: &Input| Ok(()),
            checks: vec![
                CheckDef::new(&catalog::SERVER_READY, |_| Verdict::Pass(Vec::new())).after(&[&catalog::SERVER_FOUND]),
            ],
        };
        let all = run_categories(&[def, later], &Input { nodes: 1 });
        assert_eq!(all[1].checks[0].result, CheckStatus::Skipped);
    }

    #[test]
    fn pushed_category_counts_for_success() {
        let mut report = SpireReport::new(vec![]);
        assert!(report.success);
        report.push(run_category(&category(), &Input { nodes: 2 }));
        assert!(!report.success);
    }
}
