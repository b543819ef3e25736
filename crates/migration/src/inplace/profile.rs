//! The traffic profile of the DestinationRules `enable` and `ns create` write: circuit breaking
//! and connection pooling, one profile for both paths. The defaults are the seed plans' values
//! (Zamaz's "Circuit Breaker Tuning" and "Connection Pool Optimization"); a YAML file and flags
//! override them.
//!
//! The seed plan writes the outlier settings under a `circuitBreaker` key, which Istio does not
//! have: they belong in `trafficPolicy.outlierDetection`, the pool limits in
//! `trafficPolicy.connectionPool.tcp` (`maxConnections`, `connectTimeout`) and
//! `trafficPolicy.connectionPool.http` (`http1MaxPendingRequests`, `maxRequestsPerConnection`),
//! as Istio's DestinationRule reference places them:
//! <https://istio.io/latest/docs/reference/config/networking/destination-rule/> (`TrafficPolicy`,
//! `ConnectionPoolSettings.TCPSettings`, `ConnectionPoolSettings.HTTPSettings`,
//! `OutlierDetection`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::MigrateError;

/// Connection pool and outlier detection for every Service's DestinationRule.
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
        }
    }
}

fn duration_ok(s: &str) -> bool {
    // Istio durations: a number and a unit (h, m, s, ms), at least 1ms. The value is read by the
    // one duration parser (integer nanoseconds); the shape check keeps compound forms (`1m30s`)
    // out of what is written into a DestinationRule.
    use meshmove_model::duration::{Mode, parse};
    let single = s.find(|c: char| !c.is_ascii_digit() && c != '.').is_some_and(|pos| pos > 0 && matches!(&s[pos..], "h" | "m" | "s" | "ms"));
    single && parse(s, Mode::Units).is_ok_and(|d| d >= std::time::Duration::from_millis(1))
}

impl TrafficProfile {
    /// Read a profile from YAML: unknown keys are errors naming the key; omitted keys keep the
    /// defaults.
    pub fn from_yaml(path: &str, text: &str) -> Result<Self, MigrateError> {
        let p: TrafficProfile = serde_saphyr::from_str(text).map_err(|e| MigrateError::BadProfile { path: path.to_string(), message: meshmove_model::redact::saphyr_error(&e) })?;
        p.validate().map_err(|message| MigrateError::BadProfile { path: path.to_string(), message })?;
        Ok(p)
    }

    /// Check durations and the percentage.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [("interval", &self.interval), ("baseEjectionTime", &self.base_ejection_time), ("connectTimeout", &self.connect_timeout)] {
            if !duration_ok(v) {
                return Err(format!("{key}: `{v}` is not a duration like 30s, 1m or 500ms"));
            }
        }
        if self.max_ejection_percent > 100 {
            return Err(format!("maxEjectionPercent: {} is more than 100", self.max_ejection_percent));
        }
        Ok(())
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
        assert!(p.validate().unwrap_err().starts_with("interval: `30` is not a duration"));
    }
}
