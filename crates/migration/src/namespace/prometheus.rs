//! A small client for Prometheus's HTTP query API (`GET /api/v1/query?query=...&time=...`),
//! enough for the gates: one instant query, one number back.
//!
//! `http://` and `https://` URLs (system CA certificates) are accepted; a path prefix is kept
//! (`http://gateway/prometheus` queries `http://gateway/prometheus/api/v1/query`). An empty
//! vector, or a `NaN` value (a ratio over no requests), is "no samples".

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus server.
#[derive(Debug, Clone)]
pub struct Prometheus {
    base: String,
}

impl Prometheus {
    /// Validate a base URL (`http://host:9090`, `https://host/prefix`).
    pub fn new(url: &str) -> Result<Prometheus, String> {
        let base = url.trim_end_matches('/');
        let uri: Uri = base.parse().map_err(|e| format!("--prometheus-url `{url}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(format!("--prometheus-url `{url}` must start with http:// or https://")),
        }
        if uri.host().is_none() {
            return Err(format!("--prometheus-url `{url}` has no host"));
        }
        if uri.query().is_some() {
            return Err(format!("--prometheus-url `{url}` must not carry a query string"));
        }
        Ok(Prometheus { base: base.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// The URL of an instant query.
    pub fn query_url(&self, promql: &str, time: Option<f64>) -> String {
        let mut url = format!("{}/api/v1/query?query={}", self.base, encode(promql));
        if let Some(t) = time {
            url.push_str(&format!("&time={t:.3}"));
        }
        url
    }

    /// Run an instant query; `Ok(None)` when there are no samples. Errors are messages naming
    /// the server (the gates report them).
    pub async fn query(&self, promql: &str, time: Option<f64>) -> Result<Option<f64>, String> {
        let url = self.query_url(promql, time);
        let uri: Uri = url.parse().map_err(|e| format!("bad query URL {url}: {e}"))?;
        let fetched = if uri.scheme_str() == Some("https") {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("cannot load the system's CA certificates for {}: {e}", self.base))?
                .https_only()
                .enable_http1()
                .build();
            fetch(Client::builder(TokioExecutor::new()).build(https), uri).await
        } else {
            fetch(Client::builder(TokioExecutor::new()).build(HttpConnector::new()), uri).await
        };
        let (status, body) = fetched.map_err(|e| format!("Prometheus at {} is unreachable: {e}", self.base))?;
        parse_response(status, &body).map_err(|e| format!("Prometheus at {}: {e}", self.base))
    }
}

async fn fetch<C: Connect + Clone + Send + Sync + 'static>(client: Client<C, Empty<Bytes>>, uri: Uri) -> Result<(u16, Bytes), String> {
    let work = async {
        let response = client.get(uri).await.map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((status, body))
    };
    tokio::time::timeout(QUERY_TIMEOUT, work).await.map_err(|_| format!("no answer within {}s", QUERY_TIMEOUT.as_secs()))?
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// Interpret an answer of `/api/v1/query`.
pub fn parse_response(status: u16, body: &[u8]) -> Result<Option<f64>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        let text = String::from_utf8_lossy(body);
        format!("HTTP {status}, not a query API answer: {}", text.chars().take(200).collect::<String>())
    })?;
    if v.get("status").and_then(Value::as_str) != Some("success") {
        let err = v.get("error").and_then(Value::as_str).unwrap_or("unknown error");
        let ty = v.get("errorType").and_then(Value::as_str).unwrap_or("error");
        return Err(format!("HTTP {status}, {ty}: {err}"));
    }
    let data = v.get("data").ok_or("answer without data")?;
    let sample = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let result = data.get("result").and_then(Value::as_array).ok_or("vector answer without result")?;
            match result.len() {
                0 => return Ok(None),
                1 => result[0].get("value").cloned(),
                n => return Err(format!("expected one series, got {n}: aggregate the query")),
            }
        }
        Some("scalar") => data.get("result").cloned(),
        other => return Err(format!("unexpected result type {}", other.unwrap_or("(none)"))),
    };
    let text = sample.as_ref().and_then(|s| s.get(1)).and_then(Value::as_str).ok_or("sample without a value")?;
    let x: f64 = match text {
        "NaN" => return Ok(None),
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t.parse().map_err(|_| format!("sample value `{t}` is not a number"))?,
    };
    Ok(Some(x))
}

/// Percent-encoding for a query parameter (RFC 3986 unreserved characters pass).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_queries_encoded() {
        assert!(Prometheus::new("prometheus:9090").unwrap_err().contains("http://"));
        assert!(Prometheus::new("ftp://x").is_err());
        assert!(Prometheus::new("http://x/?a=b").unwrap_err().contains("query string"));
        let p = Prometheus::new("http://gw:8080/prom/").unwrap();
        assert_eq!(
            p.query_url("sum(x{a=\"b\"})", Some(12.5)),
            "http://gw:8080/prom/api/v1/query?query=sum%28x%7Ba%3D%22b%22%7D%29&time=12.500"
        );
    }

    #[test]
    fn answers_are_read_like_the_query_api_writes_them() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.995"]}]}}"#;
        assert_eq!(parse_response(200, vector).unwrap(), Some(0.995));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_response(200, empty).unwrap(), None);
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert_eq!(parse_response(200, nan).unwrap(), None);
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"42"]}}"#;
        assert_eq!(parse_response(200, scalar).unwrap(), Some(42.0));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(parse_response(400, bad).unwrap_err(), "HTTP 400, bad_data: parse error at char 3");
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(parse_response(200, two).unwrap_err().contains("one series"));
        assert!(parse_response(502, b"<html>bad gateway</html>").unwrap_err().contains("HTTP 502"));
    }
}
