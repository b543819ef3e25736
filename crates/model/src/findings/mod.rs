//! Findings: a catalog of stable codes, the findings analyzers emit, and the report they form.
//!
//! Each plugin owns a [`Catalog`] of codes (`MM1001`, `SC2001`, `DB3001` ...) with a severity, a
//! title and a hint. Codes are stable: scripts match on them, users suppress them, and each has an
//! anchor in `docs/findings.md` that the rendered hint points at. A meta-test checks that every code
//! is unique and documented.
//!
//! What is *shown* and what *fails the run* are separate choices: the report keeps everything that
//! was not suppressed, and [`FailOn`] decides the exit status, the same way in every output format.
//!
//! Findings come from [`Analyzer`]s (a pass over the inventory) or from [`check`]s, reported as
//! categories of checks like `linkerd check` does; both fill the one [`Report`].

mod analyzer;
pub mod check;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use analyzer::{Analyzer, run, unread_findings, wanted_kinds};
pub use check::{CategoryDef, CategoryUnavailable, Check, CheckDef, Detail, Outcome, Verdict};

use crate::inventory::{ObjectRef, SourceInfo};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One entry of a plugin's catalog.
#[derive(Debug)]
pub struct Code {
    pub code: &'static str,
    pub severity: Severity,
    /// Short title, also the heading of the code's section in the docs.
    pub title: &'static str,
    /// What to do about it, one sentence.
    pub hint: &'static str,
}

impl Code {
    /// Docs anchor of this code, e.g. `docs/findings.md#mm1001`.
    pub fn anchor(&self) -> String {
        format!("{DOCS_PATH}#{}", self.code.to_ascii_lowercase())
    }
}

/// Where finding codes are documented, relative to the repository root.
pub const DOCS_PATH: &str = "docs/findings.md";

/// A plugin's codes.
#[derive(Debug)]
pub struct Catalog {
    pub tool: &'static str,
    pub codes: &'static [Code],
}

impl Catalog {
    pub fn get(&self, code: &str) -> Option<&'static Code> {
        self.codes.iter().find(|c| c.code == code)
    }
}

/// One problem (or observation) about one object, or about the whole input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// `file:line (helm source)` or `cluster <context>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    pub hint: &'static str,
    /// Docs anchor, e.g. `docs/findings.md#mm1001`.
    pub docs: String,
    /// The category of the check that found it, for findings of [`check`]s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
}

impl Finding {
    /// A finding for a catalog code, with the code's severity, hint and docs anchor.
    pub fn new(code: &'static Code, message: impl Into<String>) -> Self {
        Finding {
            code: code.code,
            severity: code.severity,
            message: message.into(),
            object: None,
            origin: None,
            hint: code.hint,
            docs: code.anchor(),
            category: None,
        }
    }

    pub fn on(mut self, object: &crate::inventory::Object) -> Self {
        self.object = Some(object.object_ref());
        self.origin = Some(object.origin.to_string());
        self
    }

    pub fn on_ref(mut self, object: ObjectRef) -> Self {
        self.object = Some(object);
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// `--suppress CODE` or `--suppress CODE=kind/name` or `CODE=kind/namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub code: String,
    pub target: Option<(String, Option<String>, String)>,
}

/// Why a `--suppress` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuppressionError {
    #[error("`{target}` is not kind/name or kind/namespace/name")]
    Target { target: String },
    #[error("`{code}` is not a finding code (like MM1001)")]
    Code { code: String },
}

impl FromStr for Suppression {
    type Err = SuppressionError;
    fn from_str(s: &str) -> Result<Self, SuppressionError> {
        let (code, target) = match s.split_once('=') {
            None => (s, None),
            Some((code, target)) => {
                let parts: Vec<&str> = target.split('/').collect();
                let t = match parts.as_slice() {
                    [kind, name] if !kind.is_empty() && !name.is_empty() => (kind.to_string(), None, name.to_string()),
                    [kind, ns, name] if [kind, ns, name].iter().all(|p| !p.is_empty()) => {
                        (kind.to_string(), Some(ns.to_string()), name.to_string())
                    }
                    _ => return Err(SuppressionError::Target { target: target.to_string() }),
                };
                (code, Some(t))
            }
        };
        if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SuppressionError::Code { code: code.to_string() });
        }
        Ok(Suppression { code: code.to_ascii_uppercase(), target })
    }
}

impl Suppression {
    pub fn matches(&self, f: &Finding) -> bool {
        if self.code != f.code {
            return false;
        }
        let Some((kind, ns, name)) = &self.target else { return true };
        let Some(obj) = &f.object else { return false };
        obj.kind.eq_ignore_ascii_case(kind)
            && obj.name == *name
            && (ns.is_none() || ns.as_deref() == obj.namespace.as_deref())
    }
}

/// Which severity makes the run fail (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    #[default]
    Error,
    Warning,
    Never,
}

impl FailOn {
    pub fn fails(self, severity: Severity) -> bool {
        match self {
            FailOn::Error => severity >= Severity::Error,
            FailOn::Warning => severity >= Severity::Warning,
            FailOn::Never => false,
        }
    }
}

/// An analyzer that did not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub analyzer: &'static str,
    pub reason: String,
}

/// Counts per severity, after suppression.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub suppressed: usize,
}

/// The result of analyzing an inventory: the stable JSON schema `meshmove.report/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: &'static str,
    pub tool: &'static str,
    pub command: String,
    pub source: SourceInfo,
    pub findings: Vec<Finding>,
    pub skipped: Vec<Skipped>,
    /// Things the run could not see (forbidden lists, absent CRDs), in plain words.
    pub notes: Vec<String>,
    pub summary: Summary,
    /// Every check that ran, in order, for reports made of [`check`]s (empty, and left out of
    /// the JSON, for analyzer reports).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

pub const REPORT_SCHEMA: &str = "meshmove.report/v1";

impl Report {
    /// An empty report of `tool`'s `command` over `source`; analyzers and checks fill it.
    pub fn new(tool: &'static str, command: impl Into<String>, source: SourceInfo) -> Self {
        Report {
            schema: REPORT_SCHEMA,
            tool,
            command: command.into(),
            source,
            findings: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
            summary: Summary::default(),
            checks: Vec::new(),
        }
    }

    /// Drop suppressed findings (counting them), sort the rest deterministically and count them.
    /// The findings of checks keep the order of the checks, which is already deterministic.
    pub fn finish(mut self, suppressions: &[Suppression]) -> Self {
        let before = self.findings.clone();
        self.findings.retain(|f| !suppressions.iter().any(|s| s.matches(f)));
        self.summary.suppressed = before.len() - self.findings.len();
        if self.checks.is_empty() {
            self.findings.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then_with(|| a.code.cmp(b.code))
                    .then_with(|| a.object.cmp(&b.object))
                    .then_with(|| a.message.cmp(&b.message))
            });
        }
        self.findings.dedup();
        self.suppress_checks(suppressions, &before);
        self.summary.errors = self.count(Severity::Error);
        self.summary.warnings = self.count(Severity::Warning);
        self.summary.infos = self.count(Severity::Info);
        self
    }

    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// Whether this report fails the run under `fail_on`.
    pub fn fails(&self, fail_on: FailOn) -> bool {
        self.findings.iter().any(|f| fail_on.fails(f.severity))
    }
}

/// The codes of one tool's catalog: a `static` per code and the tool's `CATALOG` of them all, in
/// the order given.
///
/// ```
/// meshmove_model::finding_codes! { tool: "dbiso";
///     CODE_SHARED_DATABASE = "DB3001" Error "Database is used by more than one service",
///         "Give each service its own database ...";
/// }
/// assert_eq!(CODE_SHARED_DATABASE.code, "DB3001");
/// assert_eq!(CATALOG.get("DB3001").map(|c| c.title), Some("Database is used by more than one service"));
/// ```
#[macro_export]
macro_rules! finding_codes {
    (tool: $tool:literal; $($ident:ident = $code:literal $severity:ident $title:literal $(,)? $hint:literal;)*) => {
        $(
            #[doc = concat!("`", $code, "`: ", $title)]
            pub static $ident: $crate::findings::Code = $crate::findings::Code {
                code: $code,
                severity: $crate::findings::Severity::$severity,
                title: $title,
                hint: $hint,
            };
        )*
        #[doc = concat!("Every code of `", $tool, "`, in catalog order.")]
        pub static CATALOG: $crate::findings::Catalog = $crate::findings::Catalog {
            tool: $tool,
            codes: &[$(
                $crate::findings::Code {
                    code: $code,
                    severity: $crate::findings::Severity::$severity,
                    title: $title,
                    hint: $hint,
                },
            )*],
        };
    };
}
