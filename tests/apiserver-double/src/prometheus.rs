//! A fake Prometheus: the HTTP query API (`GET` or form `POST` on `/api/v1/query`) answering from
//! a script, for tests of code that gates on metrics.
//!
//! The script is a function of the query (its PromQL text, the `time` parameter, and its sequence
//! number), so a test can answer per query and per moment — or per cluster state, by reading the
//! API double from inside the script (for example: a low success rate once a VirtualService
//! routes 50 % to the mesh). Answers are encoded as Prometheus encodes them: an instant vector
//! with one sample, an empty vector, `NaN`, or an error object with `errorType`. Every query is
//! logged. Unknown paths answer 404.
//!
//! A [`Backend`] is the answering part alone: the API double serves one behind a Service's
//! proxy path (see [`crate::proxy`]), and [`FakePrometheus`] serves one on its own port.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::util::parse_query;

/// One query as received.
#[derive(Debug, Clone, PartialEq)]
pub struct PromQuery {
    /// 1-based, in arrival order.
    pub seq: u64,
    /// The PromQL text.
    pub query: String,
    /// The `time` parameter, when given.
    pub time: Option<f64>,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A vector with one sample of this value.
    Value(f64),
    /// An empty vector (no series matched).
    Empty,
    /// A sample whose value is `NaN` (e.g. 0/0).
    NaN,
    /// `{"status":"error"}` with this HTTP code, `errorType` and message.
    Error {
        code: u16,
        error_type: String,
        message: String,
    },
    /// Any body with any code.
    Raw { code: u16, body: String },
}

/// The script: an answer per query.
pub type Script = Arc<dyn Fn(&PromQuery) -> Reply + Send + Sync>;

/// A script from rules: the first rule whose needle occurs in the query decides; `Empty` when
/// none does.
pub fn rules(rules: Vec<(&str, Reply)>) -> Script {
    let rules: Vec<(String, Reply)> = rules.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Arc::new(move |q: &PromQuery| {
        rules
            .iter()
            .find(|(needle, _)| q.query.contains(needle.as_str()))
            .map_or(Reply::Empty, |(_, r)| r.clone())
    })
}

struct Shared {
    script: Mutex<Script>,
    log: Mutex<Vec<PromQuery>>,
}

/// The query API answering from a script, without a server of its own.
#[derive(Clone)]
pub struct Backend {
    shared: Arc<Shared>,
}

impl Backend {
    pub fn new(script: Script) -> Backend {
        Backend { shared: Arc::new(Shared { script: Mutex::new(script), log: Mutex::new(Vec::new()) }) }
    }

    /// Replaces the script.
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap_or_else(|e| e.into_inner()) = script;
    }

    /// The queries received so far.
    pub fn queries(&self) -> Vec<PromQuery> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The answer to one request: `path` as Prometheus sees it (`/api/v1/query`), the URL's
    /// query string, and the body (a form, for `POST`). Returns the status and the JSON body.
    pub fn answer(&self, method: &Method, path: &str, query: &str, body: &[u8]) -> (u16, String) {
        answer(&self.shared, method, path, query, body)
    }
}

/// A running fake Prometheus on its own thread; stops when dropped.
pub struct FakePrometheus {
    addr: SocketAddr,
    backend: Backend,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePrometheus {
    /// Binds 127.0.0.1 on a free port and serves `script`.
    pub fn start(script: Script) -> std::io::Result<FakePrometheus> {
        let backend = Backend::new(script);
        let shared = backend.shared.clone();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = shared.clone();
        let thread = std::thread::Builder::new().name("fake-prometheus".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let shared = served.clone();
                            tokio::spawn(async move {
                                let svc = service_fn(move |req| {
                                    let shared = shared.clone();
                                    async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                                });
                                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                            });
                        }
                        _ = &mut stop_rx => return,
                    }
                }
            });
        })?;
        Ok(FakePrometheus {
            addr,
            backend,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the script.
    pub fn set_script(&self, script: Script) {
        self.backend.set_script(script);
    }

    /// The queries received so far.
    pub fn queries(&self) -> Vec<PromQuery> {
        self.backend.queries()
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(code: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = if method == Method::POST {
        req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default()
    } else {
        Bytes::new()
    };
    let (code, body) = answer(shared, &method, &path, &query, &body);
    respond(code, body)
}

fn answer(shared: &Shared, method: &Method, path: &str, query: &str, body: &[u8]) -> (u16, String) {
    let error = |code: u16, error_type: &str, message: &str| {
        (code, json!({"status": "error", "errorType": error_type, "error": message}).to_string())
    };
    if path != "/api/v1/query" {
        return (404, "404 page not found".into());
    }
    let mut params = parse_query(query);
    match *method {
        Method::GET => {}
        Method::POST => params.extend(parse_query(&String::from_utf8_lossy(body))),
        _ => return error(405, "bad_data", "method not allowed"),
    }
    let Some(query) = params
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.clone())
    else {
        return error(
            400,
            "bad_data",
            "invalid parameter \"query\": unknown or empty query",
        );
    };
    let time = match params.iter().find(|(k, _)| k == "time") {
        None => None,
        Some((_, t)) => match t.parse::<f64>() {
            Ok(t) => Some(t),
            Err(_) => {
                return error(
                    400,
                    "bad_data",
                    &format!(
                        "invalid parameter \"time\": cannot parse \"{t}\" to a valid timestamp"
                    ),
                );
            }
        },
    };
    let q = {
        let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
        let q = PromQuery {
            seq: log.len() as u64 + 1,
            query,
            time,
        };
        log.push(q.clone());
        q
    };
    let script = shared
        .script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let at = q.time.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    });
    let vector = |v: &str| {
        json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [at, v]}]}}).to_string()
    };
    match script(&q) {
        Reply::Value(x) => (200, vector(&x.to_string())),
        Reply::NaN => (200, vector("NaN")),
        Reply::Empty => (
            200,
            json!({"status": "success", "data": {"resultType": "vector", "result": []}})
                .to_string(),
        ),
        Reply::Error {
            code,
            error_type,
            message,
        } => error(code, &error_type, &message),
        Reply::Raw { code, body } => (code, body),
    }
}
