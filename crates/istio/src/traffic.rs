//! The traffic profile: one type for what the routing objects of `enable`, `ns create`/`ns shift`
//! and the Gateway VirtualServices carry: circuit breaking and connection pooling in the
//! DestinationRules, and the request timeout and retries of the VirtualServices' HTTP routes. The DestinationRule defaults are the
//! seed plans' values (Zamaz's "Circuit Breaker Tuning" and "Connection Pool Optimization"); a
//! YAML file and flags override them.
//!
//! No seed plan gives a timeout or retry value (PyAirtable lists "circuit breaking and retries"
//! among Istio's benefits, nothing more), so the route keys have no default: unset, nothing is
//! written and Istio's own behaviour holds: no route timeout, and istiod's default retry policy
//! (2 attempts on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`
//! with 503; Istio's `pilot/pkg/networking/core/route/retry`, and
//! <https://istio.io/latest/docs/concepts/traffic-management/#timeouts>, `#retries`). Set,
//! they go on every HTTP route (`http[].timeout`, `http[].retries`) and never on a `tcp` route,
//! which has neither field in Istio's API.
//!
//! The seed plan writes the outlier settings under a `circuitBreaker` key, which Istio does not
//! have: they belong in `trafficPolicy.outlierDetection`, the pool limits in
//! `trafficPolicy.connectionPool.tcp` (`maxConnections`, `connectTimeout`) and
//! `trafficPolicy.connectionPool.http` (`http1MaxPendingRequests`, `maxRequestsPerConnection`),
//! as Istio's DestinationRule reference places them:
//! <https://istio.io/latest/docs/reference/config/networking/destination-rule/> (`TrafficPolicy`,
//! `ConnectionPoolSettings.TCPSettings`, `ConnectionPoolSettings.HTTPSettings`,
//! `OutlierDetection`).

//!
//! The namespace migration records the route keys in its state (the `httpPolicy` object of the
//! published output schema) with [`route_keys`], so that every later weight keeps them.
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Connection pool and outlier detection for every Service's DestinationRule, and the request
/// timeout and retries of its VirtualService's HTTP routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TrafficProfile {
    /// `outlierDetection.consecutive5xxErrors`
    pub consecutive_5xx_errors: u32,
    /// `outlierDetection.consecutiveGatewayErrors` (502, 503, 504; for TCP, connect failures)
    pub consecutive_gateway_errors: u32,
    /// `outlierDetection.interval`
    pub interval: String,
    /// `outlierDetection.baseEjectionTime`
    pub base_ejection_time: String,
    /// `outlierDetection.maxEjectionPercent`
    pub max_ejection_percent: u32,
    /// `connectionPool.tcp.maxConnections`
    pub max_connections: u32,
    /// `connectionPool.tcp.connectTimeout`
    pub connect_timeout: String,
    /// `connectionPool.http.http1MaxPendingRequests`
    pub http1_max_pending_requests: u32,
    /// `connectionPool.http.maxRequestsPerConnection`
    pub max_requests_per_connection: u32,
    /// `http[].timeout` of every HTTP route (unset: Istio's default, no timeout)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_timeout: Option<String>,
    /// `http[].retries.attempts` (unset: Istio's default retry policy; 0: no retries)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `http[].retries.perTryTimeout`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// `http[].retries.retryOn`: comma-separated Envoy retry policies or HTTP status codes
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

impl Default for TrafficProfile {
    fn default() -> Self {
        TrafficProfile {
            consecutive_5xx_errors: 5,
            consecutive_gateway_errors: 5,
            interval: "30s".into(),
            base_ejection_time: "30s".into(),
            max_ejection_percent: 50,
            max_connections: 100,
            connect_timeout: "30s".into(),
            http1_max_pending_requests: 1000,
            max_requests_per_connection: 10,
            http_timeout: None,
            retries: None,
            per_try_timeout: None,
            retry_on: None,
        }
    }
}

fn duration_ok(s: &str) -> bool {
    // Istio durations: a number and a unit (h, m, s, ms), at least 1ms and whole milliseconds
    // (istio `pkg/config/validation/agent` `ValidateDuration`: "duration must be greater than
    // 1ms", "only durations to ms precision are supported"; it checks DestinationRule and
    // VirtualService durations alike). The value is read by the one duration parser (integer
    // nanoseconds); the shape check keeps compound forms (`1m30s`) out of what is written.
    use meshmove_model::duration::{Mode, parse};
    let single = s.find(|c: char| !c.is_ascii_digit() && c != '.').is_some_and(|pos| pos > 0 && matches!(&s[pos..], "h" | "m" | "s" | "ms"));
    single
        && parse(s, Mode::Units).is_ok_and(|d| d >= std::time::Duration::from_millis(1) && d.as_nanos() % 1_000_000 == 0)
}

/// The `retryOn` policies Istio accepts besides HTTP status codes: Envoy's `x-envoy-retry-on`
/// and `x-envoy-retry-grpc-on` conditions, as istio `pkg/config/validation/validation.go`
/// (`supportedRetryOnPolicies`, used by `validateHTTPRetry`) lists them; see also the
/// `HTTPRetry.retryOn` field of
/// <https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRetry>.
pub const RETRY_ON_POLICIES: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Whether `code` is an HTTP status code Go's `http.StatusText` names: Istio's validation takes
/// a `retryOn` element that `strconv.Atoi` reads as such a code (Go `net/http/status.go`; 306
/// is reserved and has no text).
fn known_status(code: i64) -> bool {
    matches!(code, 100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// A `retryOn` element Istio refuses (the element as written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{policy}` is not a retry policy Istio accepts (comma-separated, no spaces: {} or an HTTP status code like 503)",
    RETRY_ON_POLICIES.join(", ")
)]
pub struct RetryOnError {
    pub policy: String,
}

/// A profile value Istio would refuse: the key (as in the profile file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ProfileError {
    pub key: &'static str,
    pub problem: ProfileProblem,
}

/// What is wrong with a profile value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileProblem {
    #[error("`{value}` is not a duration like 30s, 1m or 500ms (one number and unit h, m, s or ms; at least 1ms, whole milliseconds)")]
    NotADuration { value: String },
    #[error("{0} is more than 100")]
    PercentOver100(u32),
    /// `HTTPRetry.attempts` is an int32.
    #[error("{0} is more than {max}", max = i32::MAX)]
    AttemptsOverInt32(u32),
    #[error(transparent)]
    RetryOn(#[from] RetryOnError),
    #[error("set retries too (the number of retry attempts); Istio rejects a retry policy without attempts")]
    RetryWithoutAttempts,
    #[error("retries is 0 (retries off), and Istio rejects a retry policy with 0 attempts")]
    RetryWithZeroAttempts,
}

/// A profile file that cannot be used: unreadable YAML (the reader's message, which never
/// quotes a value), or a value Istio would refuse (with the line of its key when found).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileFileError {
    #[error("traffic profile {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("traffic profile {path}: {}{error}", line.map(|n| format!("line {n}: ")).unwrap_or_default())]
    Value { path: String, line: Option<usize>, error: ProfileError },
}

/// Check a `retryOn` value as Istio's `validateHTTPRetry` does: comma-separated, each element a
/// known policy or an HTTP status code (no spaces, no empty element).
pub fn check_retry_on(value: &str) -> Result<(), RetryOnError> {
    for policy in value.split(',') {
        // Go's strconv.Atoi: an optional sign, then decimal digits.
        let digits = policy.strip_prefix(['+', '-']).unwrap_or(policy);
        let code = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| policy.parse::<i64>().ok()).flatten();
        if !code.is_some_and(known_status) && !RETRY_ON_POLICIES.contains(&policy) {
            return Err(RetryOnError { policy: policy.to_string() });
        }
    }
    Ok(())
}

impl TrafficProfile {
    /// Read a profile from YAML: unknown keys are errors naming the key; omitted keys keep the
    /// defaults. A value the checks refuse is named with its key and the line it is on.
    pub fn from_yaml(path: &str, text: &str) -> Result<Self, ProfileFileError> {
        let p: TrafficProfile = serde_saphyr::from_str(text)
            .map_err(|e| ProfileFileError::Unreadable { path: path.to_string(), message: meshmove_model::redact::saphyr_error(&e) })?;
        p.validate().map_err(|error| {
            // The profile is one flat mapping, so the key's line is the one that starts with it.
            let line = text.lines().position(|l| l.split_once(':').is_some_and(|(k, _)| k.trim().trim_matches(['"', '\'']) == error.key));
            ProfileFileError::Value { path: path.to_string(), line: line.map(|n| n + 1), error }
        })?;
        Ok(p)
    }

    /// Check durations, the percentage and the retry policy with Istio's rules; the error
    /// names the key (`retryOn`).
    pub fn validate(&self) -> Result<(), ProfileError> {
        let err = |key, problem| Err(ProfileError { key, problem });
        let optional = [("httpTimeout", &self.http_timeout), ("perTryTimeout", &self.per_try_timeout)];
        let set = optional.iter().filter_map(|(k, v)| Some((*k, v.as_ref()?)));
        for (key, v) in [("interval", &self.interval), ("baseEjectionTime", &self.base_ejection_time), ("connectTimeout", &self.connect_timeout)].into_iter().chain(set) {
            if !duration_ok(v) {
                return err(key, ProfileProblem::NotADuration { value: v.clone() });
            }
        }
        if self.max_ejection_percent > 100 {
            return err("maxEjectionPercent", ProfileProblem::PercentOver100(self.max_ejection_percent));
        }
        // HTTPRetry.attempts is an int32.
        if let Some(n) = self.retries
            && i32::try_from(n).is_err()
        {
            return err("retries", ProfileProblem::AttemptsOverInt32(n));
        }
        if let Some(on) = &self.retry_on {
            check_retry_on(on).map_err(|e| ProfileError { key: "retryOn", problem: e.into() })?;
        }
        // Istio's validateHTTPRetry: "http retry policy configured when attempts are set to 0
        // (disabled)"; with no attempts given the policy would have 0 of them.
        for (key, set) in [("perTryTimeout", self.per_try_timeout.is_some()), ("retryOn", self.retry_on.is_some())] {
            match self.retries {
                _ if !set => {}
                None => return err(key, ProfileProblem::RetryWithoutAttempts),
                Some(0) => return err(key, ProfileProblem::RetryWithZeroAttempts),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether no route key is set: the HTTP routes keep Istio's defaults.
    pub fn routes_unset(&self) -> bool {
        self.http_timeout.is_none() && self.retries.is_none() && self.per_try_timeout.is_none() && self.retry_on.is_none()
    }

    /// Set `timeout` and `retries` on an HTTP route (`VirtualService.spec.http[]`); an unset key
    /// leaves the route's field alone.
    pub fn apply_to_route(&self, route: &mut Value) {
        let Some(route) = route.as_object_mut() else { return };
        if let Some(t) = &self.http_timeout {
            route.insert("timeout".into(), json!(t));
        }
        if let Some(attempts) = self.retries {
            let mut retries = serde_json::Map::new();
            retries.insert("attempts".into(), json!(attempts));
            if let Some(t) = &self.per_try_timeout {
                retries.insert("perTryTimeout".into(), json!(t));
            }
            if let Some(on) = &self.retry_on {
                retries.insert("retryOn".into(), json!(on));
            }
            route.insert("retries".into(), Value::Object(retries));
        }
    }

    /// One line for plans and notes: what the HTTP routes carry.
    pub fn describe_routes(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.http_timeout {
            parts.push(format!("timeout {t}"));
        }
        match self.retries {
            Some(0) => parts.push("no retries".into()),
            Some(n) => {
                let mut r = format!("{n} retries");
                if let Some(t) = &self.per_try_timeout {
                    r.push_str(&format!(", {t} per try"));
                }
                if let Some(on) = &self.retry_on {
                    r.push_str(&format!(" on {on}"));
                }
                parts.push(r);
            }
            None => {}
        }
        parts.join(", ")
    }

    /// The DestinationRule `trafficPolicy`.
    pub fn traffic_policy(&self) -> Value {
        json!({
            "connectionPool": {
                "tcp": {"maxConnections": self.max_connections, "connectTimeout": self.connect_timeout},
                "http": {"http1MaxPendingRequests": self.http1_max_pending_requests, "maxRequestsPerConnection": self.max_requests_per_connection}
            },
            "outlierDetection": {
                "consecutive5xxErrors": self.consecutive_5xx_errors,
                "consecutiveGatewayErrors": self.consecutive_gateway_errors,
                "interval": self.interval,
                "baseEjectionTime": self.base_ejection_time,
                "maxEjectionPercent": self.max_ejection_percent
            }
        })
    }
}

/// The route keys of a profile as the namespace migration's state records them: the
/// `httpPolicy` object of `docs/schemas/meshmove-output.schema.json` (`timeout`, `retries`,
/// `perTryTimeout`, `retryOn`), which every version writes and reads. For
/// `#[serde(with = "route_keys")]` on a [`TrafficProfile`] field: only the route keys are
/// written, and a recorded object reads back as the default profile with those keys set.
pub mod route_keys {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::TrafficProfile;

    /// The recorded shape (the wire format only; the concept is [`TrafficProfile`]).
    #[derive(Serialize, Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Recorded {
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retries: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        per_try_timeout: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_on: Option<String>,
    }

    pub fn serialize<S: Serializer>(profile: &TrafficProfile, s: S) -> Result<S::Ok, S::Error> {
        Recorded {
            timeout: profile.http_timeout.clone(),
            retries: profile.retries,
            per_try_timeout: profile.per_try_timeout.clone(),
            retry_on: profile.retry_on.clone(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrafficProfile, D::Error> {
        let r = Recorded::deserialize(d)?;
        Ok(TrafficProfile { http_timeout: r.timeout, retries: r.retries, per_try_timeout: r.per_try_timeout, retry_on: r.retry_on, ..TrafficProfile::default() })
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn profile_durations_need_a_unit_and_at_least_a_millisecond() {
        for ok in ["30s", "1m", "500ms", "1.5h", "1ms"] {
            assert!(duration_ok(ok), "{ok}");
        }
        for bad in ["30", "0", "0.5ms", "1m30s", "ms", "1d", "", "-1s"] {
            assert!(!duration_ok(bad), "{bad}");
        }
        let p = TrafficProfile { interval: "30".into(), ..TrafficProfile::default() };
        let e = p.validate().unwrap_err();
        assert_eq!(e, ProfileError { key: "interval", problem: ProfileProblem::NotADuration { value: "30".into() } });
        assert!(e.to_string().starts_with("interval: `30` is not a duration"), "{e}");
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    fn err(text: &str) -> String {
        TrafficProfile::from_yaml("p.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn route_keys_are_read_and_written_on_http_routes() {
        let p = TrafficProfile::from_yaml("p.yaml", "httpTimeout: 30s\nretries: 3\nperTryTimeout: 10s\nretryOn: 5xx,connect-failure,503\n").unwrap();
        let mut route = json!({"route": [{"destination": {"host": "api"}}]});
        p.apply_to_route(&mut route);
        assert_eq!(route["timeout"], "30s");
        assert_eq!(route["retries"], json!({"attempts": 3, "perTryTimeout": "10s", "retryOn": "5xx,connect-failure,503"}));
        assert_eq!(p.describe_routes(), "timeout 30s, 3 retries, 10s per try on 5xx,connect-failure,503");
        assert!(!p.routes_unset());
        // Unset keys write nothing: Istio's defaults hold.
        let mut route = json!({"route": []});
        TrafficProfile::default().apply_to_route(&mut route);
        assert_eq!(route, json!({"route": []}));
        assert!(TrafficProfile::default().routes_unset());
        // The DestinationRule keys are no route keys.
        assert!(TrafficProfile { max_connections: 7, ..TrafficProfile::default() }.routes_unset());
        // 0 attempts turns retries off.
        let p = TrafficProfile::from_yaml("p.yaml", "retries: 0\n").unwrap();
        let mut route = json!({});
        p.apply_to_route(&mut route);
        assert_eq!(route, json!({"retries": {"attempts": 0}}));
    }

    #[test]
    fn bad_route_values_name_the_key_and_line() {
        let e = err("retries: 3\nretryOn: 5xy\n");
        assert!(e.starts_with("traffic profile p.yaml: line 2: retryOn: `5xy`"), "{e}");
        let e = err("maxConnections: 10\nhttpTimeout: 30\n");
        assert!(e.starts_with("traffic profile p.yaml: line 2: httpTimeout: `30` is not a duration"), "{e}");
        let e = err("perTryTimeout: 2s\n");
        assert!(e.contains("line 1: perTryTimeout: set retries too"), "{e}");
        let e = err("retries: 0\nretryOn: 5xx\n");
        assert!(e.contains("line 2: retryOn: retries is 0"), "{e}");
        let e = err("retries: 3\nperTryTimeout: 1.5ms\n");
        assert!(e.contains("line 2: perTryTimeout: `1.5ms`"), "{e}");
        let e = err("retries: 3000000000\n");
        assert!(e.contains("line 1: retries: 3000000000 is more than 2147483647"), "{e}");
        // A type error is the YAML reader's, with its own location.
        let e = err("retries: three\n");
        assert!(e.contains("p.yaml") && e.contains("line 1"), "{e}");
        let e = err("retrys: 3\n");
        assert!(e.contains("retrys"), "{e}");
    }

    #[test]
    fn retry_on_follows_istio_validation() {
        for ok in ["5xx", "gateway-error,reset,503", "retriable-4xx,409", "unavailable,cancelled,deadline-exceeded,internal,resource-exhausted", "+503", "reset-before-request", "425"] {
            assert!(check_retry_on(ok).is_ok(), "{ok}");
        }
        // A space, an empty element, a code Go's http.StatusText does not know, an unknown policy.
        for bad in ["5xx, 503", "5xx,", "", "306", "599", "0", "5XX", "retriable_4xx", "all"] {
            assert!(check_retry_on(bad).is_err(), "{bad}");
        }
    }
}
