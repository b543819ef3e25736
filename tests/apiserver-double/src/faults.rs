//! Request log and fault injection rules.

use crate::status::ApiError;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// One served API request (control-API requests are not logged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Sequence number, starting at 1 after each clear.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty if none).
    pub query: String,
    /// Request Content-Type.
    pub content_type: Option<String>,
    /// Request Accept header.
    pub accept: Option<String>,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Response status code (0 for a connection reset).
    pub status: u16,
    /// Id of the fault rule that fired, if any.
    pub fault: Option<u64>,
    /// Whether this was a watch.
    pub watch: bool,
    /// The user the request was authorized as (after impersonation) when the double enforces
    /// RBAC ([`DoubleOptions::rbac`](crate::DoubleOptions)); `None` otherwise or when the
    /// credentials were rejected.
    #[serde(default)]
    pub user: Option<String>,
}

impl RequestRecord {
    /// A decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        crate::util::parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The request log.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Vec<RequestRecord>,
    next: u64,
}

impl RequestLog {
    /// Appends a record, assigning its sequence number.
    pub fn push(&mut self, mut r: RequestRecord) {
        self.next += 1;
        r.seq = self.next;
        self.records.push(r);
    }
    /// All records.
    pub fn all(&self) -> Vec<RequestRecord> {
        self.records.clone()
    }
    /// Clears the log.
    pub fn clear(&mut self) {
        self.records.clear();
        self.next = 0;
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer with a `Status` failure; reason defaults from the code, message
    /// from the reason.
    Status {
        /// HTTP code.
        code: u16,
        /// Status reason.
        #[serde(default)]
        reason: Option<String>,
        /// Status message.
        #[serde(default)]
        message: Option<String>,
    },
    /// A 403 in the RBAC authorizer's wording, derived from the request.
    Forbidden {
        /// The user named in the message.
        user: String,
    },
    /// Answer with an arbitrary JSON body.
    Body {
        /// HTTP code.
        code: u16,
        /// Body.
        body: Value,
    },
    /// Close the connection with a TCP reset instead of answering.
    Reset,
    /// Only delay, then serve normally.
    Pass,
}

/// A fault rule. Rules are checked in insertion order; the first one that
/// fires decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// HTTP method to match (`None` or `*` for any).
    #[serde(default)]
    pub method: Option<String>,
    /// Regex matched against the path (unanchored; anchor it yourself).
    pub path: String,
    /// Optional regex matched against the raw query string.
    #[serde(default)]
    pub query: Option<String>,
    /// Fire only on the Nth matching request (1-based).
    #[serde(default)]
    pub nth: Option<u64>,
    /// Fire at most this many times.
    #[serde(default)]
    pub times: Option<u64>,
    /// Delay before answering, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule for `method` (`*` for any) and a path regex; the action
    /// defaults to [`FaultAction::Pass`].
    pub fn on(method: &str, path_regex: &str) -> FaultRule {
        FaultRule {
            method: if method == "*" {
                None
            } else {
                Some(method.to_uppercase())
            },
            path: path_regex.to_string(),
            query: None,
            nth: None,
            times: None,
            delay_ms: 0,
            action: FaultAction::Pass,
        }
    }
    /// Respond with a Status of this code and message.
    pub fn status(mut self, code: u16, message: &str) -> Self {
        self.action = FaultAction::Status {
            code,
            reason: None,
            message: Some(message.to_string()),
        };
        self
    }
    /// Respond with a Status with an explicit reason.
    pub fn status_reason(mut self, code: u16, reason: &str, message: &str) -> Self {
        self.action = FaultAction::Status {
            code,
            reason: Some(reason.into()),
            message: Some(message.into()),
        };
        self
    }
    /// Respond 403 Forbidden for `user`.
    pub fn forbidden(mut self, user: &str) -> Self {
        self.action = FaultAction::Forbidden {
            user: user.to_string(),
        };
        self
    }
    /// Respond with a raw JSON body.
    pub fn body(mut self, code: u16, body: Value) -> Self {
        self.action = FaultAction::Body { code, body };
        self
    }
    /// Reset the connection.
    pub fn reset(mut self) -> Self {
        self.action = FaultAction::Reset;
        self
    }
    /// Delay before answering.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay_ms = d.as_millis() as u64;
        self
    }
    /// Only the Nth matching request.
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }
    /// At most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }
    /// Also require the raw query to match.
    pub fn query(mut self, regex: &str) -> Self {
        self.query = Some(regex.to_string());
        self
    }
}

/// A compiled rule with counters.
#[derive(Debug)]
struct ActiveRule {
    id: u64,
    rule: FaultRule,
    path: Regex,
    query: Option<Regex>,
    matched: u64,
    fired: u64,
}

/// The set of active rules.
#[derive(Debug, Default)]
pub struct FaultSet {
    rules: Vec<ActiveRule>,
    next_id: u64,
}

/// A rule that fired for a request.
#[derive(Debug, Clone)]
pub struct Fired {
    /// Rule id.
    pub id: u64,
    /// Delay before answering.
    pub delay: Duration,
    /// Action.
    pub action: FaultAction,
}

/// Description of a rule for the control API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuleInfo {
    /// Rule id.
    pub id: u64,
    /// The rule.
    pub rule: FaultRule,
    /// How many requests matched.
    pub matched: u64,
    /// How many times it fired.
    pub fired: u64,
}

impl FaultSet {
    /// Adds a rule; returns its id.
    pub fn add(&mut self, rule: FaultRule) -> Result<u64, ApiError> {
        let path = Regex::new(&rule.path)
            .map_err(|e| ApiError::bad_request(format!("invalid path regex: {e}")))?;
        let query = match &rule.query {
            Some(q) => Some(
                Regex::new(q)
                    .map_err(|e| ApiError::bad_request(format!("invalid query regex: {e}")))?,
            ),
            None => None,
        };
        self.next_id += 1;
        let id = self.next_id;
        self.rules.push(ActiveRule {
            id,
            rule,
            path,
            query,
            matched: 0,
            fired: 0,
        });
        Ok(id)
    }
    /// Removes one rule.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        before != self.rules.len()
    }
    /// Removes all rules.
    pub fn clear(&mut self) {
        self.rules.clear();
    }
    /// Lists rules with counters.
    pub fn list(&self) -> Vec<RuleInfo> {
        self.rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id,
                rule: r.rule.clone(),
                matched: r.matched,
                fired: r.fired,
            })
            .collect()
    }
    /// Evaluates the rules for a request, updating counters.
    pub fn evaluate(&mut self, method: &str, path: &str, query: &str) -> Option<Fired> {
        for r in &mut self.rules {
            if let Some(m) = &r.rule.method
                && !m.eq_ignore_ascii_case(method)
            {
                continue;
            }
            if !r.path.is_match(path) {
                continue;
            }
            if let Some(q) = &r.query
                && !q.is_match(query)
            {
                continue;
            }
            r.matched += 1;
            if let Some(n) = r.rule.nth
                && r.matched != n
            {
                continue;
            }
            if let Some(t) = r.rule.times
                && r.fired >= t
            {
                continue;
            }
            r.fired += 1;
            return Some(Fired {
                id: r.id,
                delay: Duration::from_millis(r.rule.delay_ms),
                action: r.rule.action.clone(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_times() {
        let mut f = FaultSet::default();
        f.add(
            FaultRule::on("GET", "^/api/v1/pods$")
                .status(500, "boom")
                .nth(2),
        )
        .unwrap();
        f.add(FaultRule::on("*", "/configmaps").forbidden("u").times(1))
            .unwrap();
        assert!(f.evaluate("GET", "/api/v1/pods", "").is_none());
        assert!(f.evaluate("GET", "/api/v1/pods", "").is_some());
        assert!(f.evaluate("GET", "/api/v1/pods", "").is_none());
        assert!(f.evaluate("POST", "/api/v1/pods", "").is_none());
        assert!(matches!(
            f.evaluate("DELETE", "/api/v1/namespaces/x/configmaps/y", "")
                .unwrap()
                .action,
            FaultAction::Forbidden { .. }
        ));
        assert!(
            f.evaluate("DELETE", "/api/v1/namespaces/x/configmaps/y", "")
                .is_none()
        );
        let info = f.list();
        assert_eq!((info[0].matched, info[0].fired), (3, 1));
        assert!(f.add(FaultRule::on("GET", "(")).is_err());
    }

    #[test]
    fn rules_round_trip_as_json() {
        let r = FaultRule::on("get", "^/api")
            .forbidden("x")
            .nth(1)
            .delay(Duration::from_millis(5));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j["action"],
            serde_json::json!({"type": "forbidden", "user": "x"})
        );
        assert_eq!(j["delayMs"], 5);
        let back: FaultRule = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
        let minimal: FaultRule =
            serde_json::from_value(serde_json::json!({"path": "x", "action": {"type": "reset"}}))
                .unwrap();
        assert_eq!(minimal.action, FaultAction::Reset);
    }
}
