//! Prometheus's HTTP query API (`GET /api/v1/query?query=...&time=...`) for the gates: one
//! instant query, one number back. An empty vector, or a `NaN` value (a ratio over no requests),
//! is "no samples".
//!
//! Two ways to reach it, both over kube's HTTP client (no HTTP code of our own):
//!
//! * [`Prometheus::service`] (`--prometheus-service`): through the API server's service proxy,
//!   `/api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/api/v1/query`, with the
//!   kubeconfig's server, credentials and TLS, as `kubectl get --raw` would. It needs `get` on
//!   `services/proxy` in Prometheus' namespace and nothing outside the cluster. The API server's
//!   own refusals (no such Service, no permission) come back with its reason; its `503`s (no
//!   endpoints, no such port) kube's client retries until [`QUERY_TIMEOUT`]. The URL form is
//!   Kubernetes' "Manually constructing apiserver proxy URLs",
//!   <https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls>.
//! * [`Prometheus::url`] (`--prometheus-url`): a Prometheus the machine reaches itself
//!   (`kubectl port-forward`, an ingress). kube's client is built for that URL alone, with no
//!   credentials at all (the kubeconfig's never leave for another server); `https://` is
//!   verified against the system's trust store. A path prefix is kept
//!   (`http://gateway/prometheus` queries `http://gateway/prometheus/api/v1/query`).

use std::time::Duration;

use kube::client::Body;
use serde_json::Value;

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus server and the client that reaches it.
#[derive(Clone)]
pub struct Prometheus {
    client: kube::Client,
    /// Path before `/api/v1/query` on the client's server.
    prefix: String,
    /// How messages name it.
    shown: String,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus").field("at", &self.shown).finish()
    }
}

/// A `--prometheus-url` or `--prometheus-service` that cannot be used; or a query that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrometheusError {
    #[error("--prometheus-url `{url}` {problem}")]
    Url { url: String, problem: String },
    #[error("--prometheus-service `{spec}` {problem}: use [https:]NAMESPACE/NAME[:PORT], e.g. monitoring/prometheus-k8s:web")]
    Service { spec: String, problem: String },
    /// The query could not be sent or no answer came (`detail`: the transport's error chain).
    #[error("{at} is unreachable: {detail}")]
    Unreachable { at: String, detail: String },
    /// An answer came but holds no usable sample.
    #[error("{at}: {problem}")]
    Answer { at: String, problem: AnswerError },
}

/// What is wrong with an answer of `/api/v1/query`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    /// The API server answered for the proxy (the service is missing, has no endpoints, or the
    /// user may not proxy to it): its `Status` message.
    #[error("HTTP {status} from the API server: {message}")]
    ApiServer { status: u16, message: String },
    #[error("HTTP {status}, not a query API answer: {excerpt}")]
    NotQueryApi { status: u16, excerpt: String },
    #[error("HTTP {status}, {error_type}: {error}")]
    Failed { status: u16, error_type: String, error: String },
    #[error("{0}")]
    Shape(&'static str),
    #[error("expected one series, got {0}: aggregate the query")]
    Series(usize),
    #[error("unexpected result type {0}")]
    ResultType(String),
    #[error("sample value `{0}` is not a number")]
    Value(String),
}

impl Prometheus {
    /// A Prometheus Service reached through the API server's service proxy, with the cluster
    /// connection's client. `spec` is `[https:]NAMESPACE/NAME[:PORT]` (PORT a port name or
    /// number, as the proxy takes it; without it the Service's only port).
    pub fn service(client: &kube::Client, spec: &str) -> Result<Prometheus, PrometheusError> {
        let bad = |problem: &str| PrometheusError::Service { spec: spec.to_string(), problem: problem.to_string() };
        let (scheme, rest) = match spec.split_once(':') {
            Some((s @ ("http" | "https"), rest)) if rest.contains('/') => (Some(s), rest),
            _ => (None, spec),
        };
        let (namespace, service) = rest.split_once('/').ok_or_else(|| bad("names no namespace"))?;
        let (name, port) = match service.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (service, None),
        };
        // DNS-1123 labels (namespace and Service names), and the port as a Service port's name
        // (an IANA_SVC_NAME) or number; the proxy reads `:` as the separator.
        let label = |s: &str| {
            !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !s.starts_with('-') && !s.ends_with('-')
        };
        if !label(namespace) {
            return Err(bad("has no valid namespace name"));
        }
        if !label(name) {
            return Err(bad("has no valid Service name"));
        }
        if let Some(p) = port
            && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(bad("has no valid port name or number"));
        }
        let segment = format!("{}{name}{}", scheme.map(|s| format!("{s}:")).unwrap_or_default(), port.map(|p| format!(":{p}")).unwrap_or_default());
        Ok(Prometheus {
            client: client.clone(),
            prefix: format!("/api/v1/namespaces/{namespace}/services/{segment}/proxy"),
            shown: format!("Prometheus service {namespace}/{name}{} (through the API server)", port.map(|p| format!(":{p}")).unwrap_or_default()),
        })
    }

    /// A Prometheus at a base URL (`http://host:9090`, `https://host/prefix`), reached directly
    /// with no credentials.
    pub fn url(url: &str) -> Result<Prometheus, PrometheusError> {
        let bad = |problem: String| PrometheusError::Url { url: url.to_string(), problem };
        let base = url.trim_end_matches('/');
        let uri: http::Uri = base.parse().map_err(|e| bad(format!("is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad("must start with http:// or https://".into())),
        }
        let Some(authority) = uri.authority() else { return Err(bad("has no host".into())) };
        if uri.query().is_some() {
            return Err(bad("must not carry a query string".into()));
        }
        let server: http::Uri = format!("{}://{authority}", uri.scheme_str().unwrap_or("http")).parse().map_err(|e| bad(format!("is not a URL: {e}")))?;
        let mut config = kube::Config::new(server);
        config.read_timeout = Some(QUERY_TIMEOUT);
        let client = kube::Client::try_from(config).map_err(|e| bad(format!("cannot be used: {}", error_chain(&e))))?;
        Ok(Prometheus { client, prefix: uri.path().trim_end_matches('/').to_string(), shown: format!("Prometheus at {base}") })
    }

    /// How messages name this Prometheus.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The path and query of an instant query on the client's server.
    pub fn query_path(&self, promql: &str, time: Option<f64>) -> String {
        let mut path = format!("{}/api/v1/query?query={}", self.prefix, encode(promql));
        if let Some(t) = time {
            path.push_str(&format!("&time={t:.3}"));
        }
        path
    }

    /// Run an instant query; `Ok(None)` when there are no samples. Errors name the server (the
    /// gates report them).
    pub async fn query(&self, promql: &str, time: Option<f64>) -> Result<Option<f64>, PrometheusError> {
        let unreachable = |detail: String| PrometheusError::Unreachable { at: self.shown.clone(), detail };
        let request = http::Request::get(self.query_path(promql, time))
            .header(http::header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| unreachable(e.to_string()))?;
        let work = async {
            let response = self.client.send(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status().as_u16();
            let body = response.into_body().collect_bytes().await.map_err(|e| error_chain(&e))?;
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(QUERY_TIMEOUT, work)
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", QUERY_TIMEOUT.as_secs())))?
            .map_err(unreachable)?;
        parse_response(status, &body).map_err(|problem| PrometheusError::Answer { at: self.shown.clone(), problem })
    }
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

/// Interpret an answer of `/api/v1/query` (or the API server's `Status` in its place).
pub fn parse_response(status: u16, body: &[u8]) -> Result<Option<f64>, AnswerError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        let text = String::from_utf8_lossy(body);
        AnswerError::NotQueryApi { status, excerpt: text.chars().take(200).collect() }
    })?;
    if v.get("kind").and_then(Value::as_str) == Some("Status") && v.get("apiVersion").and_then(Value::as_str) == Some("v1") {
        let message = v.get("message").and_then(Value::as_str).unwrap_or("no message").to_string();
        return Err(AnswerError::ApiServer { status, message });
    }
    if v.get("status").and_then(Value::as_str) != Some("success") {
        let error = v.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_string();
        let error_type = v.get("errorType").and_then(Value::as_str).unwrap_or("error").to_string();
        return Err(AnswerError::Failed { status, error_type, error });
    }
    let data = v.get("data").ok_or(AnswerError::Shape("answer without data"))?;
    let sample = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let result = data.get("result").and_then(Value::as_array).ok_or(AnswerError::Shape("vector answer without result"))?;
            match result.len() {
                0 => return Ok(None),
                1 => result[0].get("value").cloned(),
                n => return Err(AnswerError::Series(n)),
            }
        }
        Some("scalar") => data.get("result").cloned(),
        other => return Err(AnswerError::ResultType(other.unwrap_or("(none)").to_string())),
    };
    let text = sample.as_ref().and_then(|s| s.get(1)).and_then(Value::as_str).ok_or(AnswerError::Shape("sample without a value"))?;
    let x: f64 = match text {
        "NaN" => return Ok(None),
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t.parse().map_err(|_| AnswerError::Value(t.to_string()))?,
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

    fn client() -> kube::Client {
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap()
    }

    #[tokio::test]
    async fn urls_are_checked_and_queries_encoded() {
        let msg = |r: Result<Prometheus, PrometheusError>| r.unwrap_err().to_string();
        assert!(msg(Prometheus::url("prometheus:9090")).contains("http://"));
        assert!(Prometheus::url("ftp://x").is_err());
        assert!(msg(Prometheus::url("http://x/?a=b")).contains("query string"));
        let p = Prometheus::url("http://gw:8080/prom/").unwrap();
        assert_eq!(p.shown(), "Prometheus at http://gw:8080/prom");
        assert_eq!(p.query_path("sum(x{a=\"b\"})", Some(12.5)), "/prom/api/v1/query?query=sum%28x%7Ba%3D%22b%22%7D%29&time=12.500");
    }

    /// The proxy path as Kubernetes documents it: `[https:]NAME[:PORT]` in the Service segment.
    #[tokio::test]
    async fn services_become_api_server_proxy_paths() {
        let c = client();
        let path = |spec: &str| Prometheus::service(&c, spec).unwrap().query_path("up", None);
        assert_eq!(path("monitoring/prometheus-k8s:web"), "/api/v1/namespaces/monitoring/services/prometheus-k8s:web/proxy/api/v1/query?query=up");
        assert_eq!(path("monitoring/prometheus:9090"), "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query?query=up");
        assert_eq!(path("https:obs/prom:9091"), "/api/v1/namespaces/obs/services/https:prom:9091/proxy/api/v1/query?query=up");
        assert_eq!(path("obs/prom"), "/api/v1/namespaces/obs/services/prom/proxy/api/v1/query?query=up");
        for bad in ["prometheus:9090", "monitoring/", "/prom", "Monitoring/prom", "monitoring/prom:", "monitoring/prom:we b", "ftp:monitoring/prom"] {
            let e = Prometheus::service(&c, bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--prometheus-service `{bad}` ")) && e.contains("NAMESPACE/NAME"), "{e}");
        }
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
        assert_eq!(parse_response(400, bad).unwrap_err().to_string(), "HTTP 400, bad_data: parse error at char 3");
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert_eq!(parse_response(200, two).unwrap_err(), AnswerError::Series(2));
        assert!(parse_response(502, b"<html>bad gateway</html>").unwrap_err().to_string().contains("HTTP 502"));
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"services \"prom\" is forbidden: User \"u\" cannot get resource \"services/proxy\"","reason":"Forbidden","code":403}"#;
        assert_eq!(
            parse_response(403, status).unwrap_err().to_string(),
            "HTTP 403 from the API server: services \"prom\" is forbidden: User \"u\" cannot get resource \"services/proxy\""
        );
    }
}
