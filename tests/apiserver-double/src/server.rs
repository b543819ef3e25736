//! HTTP/1.1 serving: connection handling (including fault-injected resets),
//! routing of API paths, content negotiation (JSON, Table, aggregated
//! discovery), watch streams, the request log and fault rules.

use crate::discovery;
use crate::faults::{FaultAction, RequestRecord};
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{
    DeleteOpts, EventType, Key, ListQuery, PatchType, State, WatchEvent, WriteOpts,
};
use crate::util::{get_path, meta_str, parse_query};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, watch};

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// State shared by all connections.
pub struct Shared {
    /// The store and everything else mutable.
    pub state: Mutex<State>,
    /// Bound address.
    pub addr: SocketAddr,
    /// HTTPS ([`crate::tls`]); `None`: plain HTTP.
    pub tls: Option<crate::tls::Tls>,
}

impl Shared {
    /// `https://ADDR` with TLS, else `http://ADDR`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls.is_some() { "https" } else { "http" }, self.addr)
    }

    /// The CA certificate (PEM) clients trust, with TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// Locks the state (a poisoned lock is recovered: the state is plain data).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct ConnCtx {
    dup: Mutex<Option<std::net::TcpStream>>,
    kill: Notify,
}

/// Accepts connections until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(serve_conn(stream, shared, shutdown));
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (stream, dup) = match stream.into_std().and_then(|s| {
        let d = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, d))
    }) {
        Ok(x) => x,
        Err(_) => return,
    };
    let ctx = Arc::new(ConnCtx {
        dup: Mutex::new(Some(dup)),
        kill: Notify::new(),
    });
    match shared.tls.as_ref().map(|t| t.acceptor.clone()) {
        None => serve_http(stream, shared, ctx.clone(), &mut shutdown).await,
        Some(acceptor) => {
            // The handshake, then HTTP over it; a failed handshake closes the connection.
            let accepted = tokio::select! {
                a = acceptor.accept(stream) => a.ok(),
                _ = ctx.kill.notified() => None,
                _ = shutdown.changed() => None,
            };
            if let Some(tls) = accepted {
                serve_http(tls, shared, ctx.clone(), &mut shutdown).await;
            }
        }
    }
    if let Ok(mut d) = ctx.dup.lock() {
        d.take();
    }
}

/// HTTP/1.1 on a connection (plain or TLS) until it ends, is killed or the double stops.
async fn serve_http<S>(
    io: S,
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
    shutdown: &mut watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let ctx = svc_ctx.clone();
        async move { Ok::<_, Infallible>(handle(shared, ctx, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        _ = conn => {}
        _ = ctx.kill.notified() => {}
        _ = shutdown.changed() => {}
    }
}

fn reset_connection(ctx: &ConnCtx) {
    if let Ok(mut guard) = ctx.dup.lock()
        && let Some(d) = guard.take()
        && let Ok(t) = tokio::net::TcpStream::from_std(d)
    {
        let _ = t.set_zero_linger();
        drop(t);
    }
    ctx.kill.notify_one();
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// Renders an [`ApiError`] as a `Status` response.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn not_found_page() -> Response<Body> {
    respond(404, "text/plain; charset=utf-8", "404 page not found\n")
}

struct Req {
    method: Method,
    path: String,
    query: String,
    params: Vec<(String, String)>,
    content_type: Option<String>,
    accept: String,
    user_agent: Option<String>,
    credentials: crate::rbac::Credentials,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true") | Some("1") | Some(""))
    }
}

async fn handle(shared: Arc<Shared>, conn: Arc<ConnCtx>, req: Request<Incoming>) -> Response<Body> {
    let header_str = |h: &header::HeaderName| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let r = Req {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        params: parse_query(req.uri().query().unwrap_or("")),
        content_type: header_str(&header::CONTENT_TYPE),
        accept: header_str(&header::ACCEPT).unwrap_or_default(),
        user_agent: header_str(&header::USER_AGENT),
        credentials: credentials(req.headers()),
    };
    if r.path == "/__double" || r.path.starts_with("/__double/") {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return crate::control::handle(&shared, r.method.as_str(), &r.path, &r.params, &body);
    }
    let fired = shared
        .lock()
        .faults
        .evaluate(r.method.as_str(), &r.path, &r.query);
    let mut fault_id = None;
    if let Some(f) = fired {
        fault_id = Some(f.id);
        if !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        let resp = match &f.action {
            FaultAction::Pass => None,
            FaultAction::Status {
                code,
                reason,
                message,
            } => {
                let reason = reason
                    .clone()
                    .unwrap_or_else(|| ApiError::default_reason(*code).to_string());
                let message = message.clone().unwrap_or_else(|| reason.clone());
                let mut e = ApiError::new(*code, reason, message);
                if *code == 429 {
                    e.retry_after = Some(1);
                    e.details = Some(json!({"retryAfterSeconds": 1}));
                }
                Some(error_response(&e))
            }
            FaultAction::Forbidden { user } => {
                Some(error_response(&forbidden_for(&shared, &r, user)))
            }
            FaultAction::Body { code, body } => Some(json_response(*code, body)),
            FaultAction::Reset => {
                log(&shared, &r, 0, fault_id, false);
                reset_connection(&conn);
                return std::future::pending().await;
            }
        };
        if let Some(resp) = resp {
            log(&shared, &r, resp.status().as_u16(), fault_id, false);
            return resp;
        }
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (resp, is_watch, user) = dispatch(&shared, &r, &body);
    log_as(&shared, &r, resp.status().as_u16(), fault_id, is_watch, user);
    resp
}

/// The headers authentication and impersonation read; `Impersonate-Group` and
/// `Impersonate-Extra-KEY` may repeat.
fn credentials(headers: &http::HeaderMap) -> crate::rbac::Credentials {
    let one = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut extra = Vec::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
            && let Ok(v) = value.to_str()
        {
            extra.push((key.to_string(), v.to_string()));
        }
    }
    crate::rbac::Credentials {
        authorization: one("authorization"),
        impersonate_user: one("impersonate-user"),
        impersonate_groups: headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect(),
        impersonate_uid: one("impersonate-uid"),
        impersonate_extra: extra,
    }
}

fn log(shared: &Shared, r: &Req, status: u16, fault: Option<u64>, watch: bool) {
    log_as(shared, r, status, fault, watch, None);
}

fn log_as(shared: &Shared, r: &Req, status: u16, fault: Option<u64>, watch: bool, user: Option<String>) {
    shared.lock().log.push(RequestRecord {
        seq: 0,
        method: r.method.to_string(),
        path: r.path.clone(),
        query: r.query.clone(),
        content_type: r.content_type.clone(),
        accept: if r.accept.is_empty() {
            None
        } else {
            Some(r.accept.clone())
        },
        user_agent: r.user_agent.clone(),
        status,
        fault,
        watch,
        user,
    });
}

/// A resolved API target.
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Page(Response<Body>),
    Api {
        group: String,
        version: String,
        segs: Vec<String>,
    },
}

fn route(shared: &Shared, r: &Req) -> Route {
    let segs: Vec<String> = r
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let st = shared.lock();
    let get_only = r.method == Method::GET;
    let page = |v: Value| Route::Page(json_response(200, &v));
    let agg = discovery::wants_aggregated(&r.accept) && st.opts.aggregated_discovery;
    let aggregated = |v: Value| {
        Route::Page(respond(
            200,
            discovery::AGGREGATED_CONTENT_TYPE,
            serde_json::to_vec(&v).unwrap_or_default(),
        ))
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] if get_only => page(discovery::version()),
        ["healthz" | "readyz" | "livez"] if get_only => {
            Route::Page(respond(200, "text/plain; charset=utf-8", "ok"))
        }
        ["api"] if get_only => {
            if agg {
                aggregated(discovery::aggregated(&st.registry, true))
            } else {
                page(discovery::core_versions(&shared.addr.to_string()))
            }
        }
        ["apis"] if get_only => {
            if agg {
                aggregated(discovery::aggregated(&st.registry, false))
            } else {
                page(discovery::group_list(&st.registry))
            }
        }
        ["api", "v1"] if get_only => match discovery::resource_list(&st.registry, "", "v1") {
            Some(v) => page(v),
            None => Route::Page(not_found_page()),
        },
        ["apis", g] if get_only => match discovery::group(&st.registry, g) {
            Some(v) => page(v),
            None => Route::Page(not_found_page()),
        },
        ["apis", g, v] if get_only => match discovery::resource_list(&st.registry, g, v) {
            Some(doc) => page(doc),
            None => Route::Page(not_found_page()),
        },
        ["openapi", "v3"] if get_only => page(discovery::openapi_v3_index(&st.registry)),
        ["openapi", "v3", "api", v] if get_only => {
            match discovery::openapi_v3_group_version(&st.registry, "", v) {
                Some(doc) => page(doc),
                None => Route::Page(not_found_page()),
            }
        }
        ["openapi", "v3", "apis", g, v] if get_only => {
            match discovery::openapi_v3_group_version(&st.registry, g, v) {
                Some(doc) => page(doc),
                None => Route::Page(not_found_page()),
            }
        }
        ["api", "v1", rest @ ..] if !rest.is_empty() => Route::Api {
            group: String::new(),
            version: "v1".into(),
            segs: segs[2..].to_vec(),
        },
        ["apis", g, v, rest @ ..] if !rest.is_empty() => {
            if st.registry.has_group_version(g, v) {
                Route::Api {
                    group: g.to_string(),
                    version: v.to_string(),
                    segs: segs[3..].to_vec(),
                }
            } else {
                Route::Page(not_found_page())
            }
        }
        [
            "api" | "apis" | "version" | "healthz" | "readyz" | "livez",
            ..,
        ] => Route::Page(error_response(&ApiError::method_not_allowed())),
        _ => Route::Page(not_found_page()),
    }
}

fn resolve(st: &State, group: &str, version: &str, segs: &[String]) -> Result<Target, ApiError> {
    let reg = &st.registry;
    let namespaced_path = segs.len() >= 3
        && segs[0] == "namespaces"
        && reg
            .find(group, version, &segs[2])
            .is_some_and(|t| t.namespaced);
    let (ns, rest) = if namespaced_path {
        (Some(segs[1].clone()), &segs[2..])
    } else {
        (None, segs)
    };
    if rest.len() > 3 {
        return Err(ApiError::no_such_resource());
    }
    let rt = reg
        .find(group, version, &rest[0])
        .ok_or_else(ApiError::no_such_resource)?;
    let name = rest.get(1).cloned();
    let sub = rest.get(2).cloned();
    if rt.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_such_resource());
    }
    if let Some(s) = &sub {
        let ok = (s == "status" && rt.status_subresource) || (s == "scale" && rt.scale.is_some());
        if !ok {
            return Err(ApiError::no_such_resource());
        }
    }
    Ok(Target {
        rt,
        namespace: ns,
        name,
        sub,
    })
}

fn dispatch(shared: &Arc<Shared>, r: &Req, body: &Bytes) -> (Response<Body>, bool, Option<String>) {
    let user = {
        let st = shared.lock();
        if st.opts.require_token {
            let want = format!("Bearer {}", st.opts.token);
            if r.credentials.authorization.as_deref() != Some(want.as_str()) {
                return (error_response(&ApiError::unauthorized()), false, None);
            }
        }
        if st.opts.rbac {
            match authorize(&st, r) {
                Ok(user) => Some(user),
                Err((e, user)) => return (error_response(&e), false, user),
            }
        } else {
            None
        }
    };
    let name = user.as_ref().map(|u| u.name.clone());
    let (resp, watch) = serve_authorized(shared, r, body, user.as_ref());
    (resp, watch, name)
}

/// Authentication, impersonation and RBAC (see [`crate::rbac`]): the user a request is served
/// as, or its `401`/`403` (with the user's name, when known, for the request log).
fn authorize(st: &State, r: &Req) -> Result<crate::rbac::UserInfo, (ApiError, Option<String>)> {
    let policy = crate::rbac::policy_of(st);
    let user = crate::rbac::authenticate(&st.opts.tokens_with_default(), &policy, &r.credentials).map_err(|e| (e, None))?;
    let attrs = crate::rbac::request_attributes(r.method.as_str(), &r.path, &r.params);
    match policy.authorize(&user, &attrs) {
        crate::rbac::Decision::Allow(_) => Ok(user),
        crate::rbac::Decision::Deny(reason) => {
            Err((crate::rbac::forbidden(&user.name, &attrs, &reason), Some(user.name)))
        }
    }
}

fn serve_authorized(
    shared: &Arc<Shared>,
    r: &Req,
    body: &Bytes,
    user: Option<&crate::rbac::UserInfo>,
) -> (Response<Body>, bool) {
    if let Some(p) = crate::proxy::parse(&r.path) {
        let backend = crate::proxy::backend(&shared.lock(), &p);
        return match backend {
            Ok(b) => {
                let (code, text) = b.answer(&r.method, &p.rest, &r.query, body);
                (respond(code, "application/json", text), false)
            }
            Err(e) => (error_response(&e), false),
        };
    }
    let (group, version, segs) = match route(shared, r) {
        Route::Page(p) => return (p, false),
        Route::Api {
            group,
            version,
            segs,
        } => (group, version, segs),
    };
    let target = {
        let st = shared.lock();
        resolve(&st, &group, &version, &segs)
    };
    let t = match target {
        Ok(t) => t,
        Err(e) => return (error_response(&e), false),
    };
    if r.method == Method::GET && t.name.is_none() && r.flag("watch") {
        return (watch(shared, r, &t), true);
    }
    let result = api_call(shared, r, &t, body, user);
    (
        match result {
            Ok((code, resp)) => resp.unwrap_or_else(|| json_response(code, &Value::Null)),
            Err(e) => error_response(&e),
        },
        false,
    )
}

fn write_opts(r: &Req, sub: Option<&str>) -> Result<WriteOpts, ApiError> {
    let dry_run = match r.param("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}; supported values: \"All\""
            )));
        }
    };
    let explicit = r.param("fieldManager").filter(|m| !m.is_empty());
    if let Some(m) = explicit
        && m.len() > 128
    {
        return Err(ApiError::invalid(
            "",
            "",
            "",
            &[(
                "fieldManager".into(),
                "FieldValueTooLong".into(),
                "Too long: may not be more than 128 bytes".into(),
            )],
        ));
    }
    let manager = match explicit {
        Some(m) => m.to_string(),
        None => r
            .user_agent
            .as_deref()
            .map(|ua| {
                ua.split('/')
                    .next()
                    .unwrap_or(ua)
                    .chars()
                    .take(128)
                    .collect()
            })
            .filter(|s: &String| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_string()),
    };
    Ok(WriteOpts {
        dry_run,
        manager,
        explicit_manager: explicit.is_some(),
        force: r.param("force") == Some("true"),
        subresource: sub.map(str::to_string),
    })
}

fn list_query(r: &Req, rt: &ResourceType) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(r.param("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(r.param("fieldSelector").unwrap_or(""), &rt.group, &rt.kind)
        .map_err(ApiError::bad_request)?;
    let limit = match r.param("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?
            .max(0) as usize,
    };
    let continue_token = r
        .param("continue")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(ListQuery {
        labels,
        fields,
        limit,
        continue_token,
    })
}

fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn table_content_type(accept: &str) -> &'static str {
    if accept
        .split(',')
        .next()
        .is_some_and(|p| p.contains("v=v1beta1"))
    {
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    } else {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    }
}

fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let paths = rt.scale.clone().unwrap_or(crate::registry::ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: None,
    });
    let at = |p: &str| {
        crate::table::eval_json_path(obj, p)
            .first()
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
    };
    let selector = match &paths.label_selector {
        Some(p) => crate::table::eval_json_path(obj, p)
            .first()
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
        None => get_path(obj, &["spec", "selector"])
            .and_then(|s| LabelSelector::from_object(s).ok())
            .map(|s| s.to_selector_string())
            .unwrap_or_default(),
    };
    let mut meta = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = get_path(obj, &["metadata", f]) {
            meta.insert(f.into(), v.clone());
        }
    }
    let mut status = json!({"replicas": at(&paths.status_replicas)});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta, "spec": {"replicas": at(&paths.spec_replicas)}, "status": status})
}

fn replicas_patch(rt: &ResourceType, replicas: i64) -> Value {
    let path = rt
        .scale
        .as_ref()
        .map(|s| s.spec_replicas.clone())
        .unwrap_or_else(|| ".spec.replicas".into());
    let mut v = json!(replicas);
    for seg in path.trim_start_matches('.').split('.').rev() {
        let mut m = Map::new();
        m.insert(seg.to_string(), v);
        v = Value::Object(m);
    }
    v
}

type ApiResult = Result<(u16, Option<Response<Body>>), ApiError>;

fn ok_json(code: u16, v: &Value) -> ApiResult {
    Ok((code, Some(json_response(code, v))))
}

/// A Namespace as it is before an update (`None` for other kinds, or when it does not exist:
/// Pod Security evaluates existing pods only on updates).
fn namespace_before(st: &State, rt: &ResourceType, name: &str) -> Option<Value> {
    (rt.group.is_empty() && rt.kind == "Namespace").then(|| st.get(rt, "", name).ok().map(|s| (*s.obj).clone())).flatten()
}

/// The Pod Security admission's warnings for an update of a Namespace (see [`crate::podsecurity`]).
fn pod_security_warnings(st: &State, old: Option<&Value>, new: &Value) -> Vec<String> {
    old.map(|o| crate::podsecurity::namespace_update_warnings(st, o, new)).unwrap_or_default()
}

/// A response with `Warning` headers, one per warning, as the API server sends admission warnings.
fn with_warnings(result: ApiResult, warnings: &[String]) -> ApiResult {
    let (code, resp) = result?;
    let resp = resp.map(|mut r| {
        for w in warnings {
            if let Ok(v) = http::HeaderValue::from_str(&crate::podsecurity::warning_header(w)) {
                r.headers_mut().append(http::header::WARNING, v);
            }
        }
        r
    });
    Ok((code, resp))
}

fn api_call(
    shared: &Arc<Shared>,
    r: &Req,
    t: &Target,
    body: &Bytes,
    user: Option<&crate::rbac::UserInfo>,
) -> ApiResult {
    let rt = &t.rt;
    let ns = t.namespace.clone().unwrap_or_default();
    let verb_ok = |v: &str| {
        if rt.supports(v) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    let mut st = shared.lock();
    match (&r.method, &t.name) {
        (&Method::GET, None) => {
            verb_ok("list")?;
            let q = list_query(r, rt)?;
            let page = st.list(rt, t.namespace.as_deref(), &q)?;
            if wants_table(&r.accept) {
                let objs: Vec<Value> = page.items.iter().map(|s| st.served(rt, s)).collect();
                let mut meta = Map::new();
                meta.insert(
                    "resourceVersion".into(),
                    json!(page.resource_version.to_string()),
                );
                if let Some(c) = &page.continue_token {
                    meta.insert("continue".into(), json!(c));
                }
                if let Some(n) = page.remaining {
                    meta.insert("remainingItemCount".into(), json!(n));
                }
                let table = crate::table::to_table(
                    rt,
                    &objs,
                    r.param("includeObject").unwrap_or("Metadata"),
                    meta,
                );
                return Ok((
                    200,
                    Some(respond(
                        200,
                        table_content_type(&r.accept),
                        serde_json::to_vec(&table).unwrap_or_default(),
                    )),
                ));
            }
            let bytes = st.list_json(rt, &page);
            Ok((200, Some(respond(200, "application/json", bytes))))
        }
        (&Method::GET, Some(name)) => {
            verb_ok("get")?;
            let stored = st.get(rt, &ns, name)?;
            if t.sub.as_deref() == Some("scale") {
                return ok_json(200, &scale_of(rt, &stored.obj));
            }
            if wants_table(&r.accept) {
                let obj = st.served(rt, stored);
                let mut meta = Map::new();
                meta.insert("resourceVersion".into(), json!(stored.resource_version()));
                let table = crate::table::to_table(
                    rt,
                    &[obj],
                    r.param("includeObject").unwrap_or("Metadata"),
                    meta,
                );
                return Ok((
                    200,
                    Some(respond(
                        200,
                        table_content_type(&r.accept),
                        serde_json::to_vec(&table).unwrap_or_default(),
                    )),
                ));
            }
            if stored.obj.get("apiVersion").and_then(Value::as_str)
                == Some(rt.api_version().as_str())
            {
                return Ok((
                    200,
                    Some(respond(200, "application/json", stored.json.clone())),
                ));
            }
            ok_json(200, &st.served(rt, stored))
        }
        (&Method::POST, None) => {
            verb_ok("create")?;
            if rt.namespaced && t.namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = parse_json_or_yaml(body, r.content_type.as_deref())?;
            if rt.group == "authorization.k8s.io" && rt.kind == "SelfSubjectAccessReview" {
                let mut out = obj;
                out["kind"] = json!(rt.kind);
                out["apiVersion"] = json!(rt.api_version());
                out["status"] = match user {
                    Some(u) => self_subject_access_review(&st, u, &out),
                    None => json!({"allowed": true, "reason": "the API-server double authorizes every request"}),
                };
                return ok_json(201, &out);
            }
            let o = write_opts(r, None)?;
            let created = st.create(rt, &ns, obj, &o)?;
            crate::controllers::settle(&mut st);
            ok_json(201, &created)
        }
        (&Method::PUT, Some(name)) => {
            verb_ok("update")?;
            let obj = parse_json_or_yaml(body, r.content_type.as_deref())?;
            let o = write_opts(r, t.sub.as_deref())?;
            if t.sub.as_deref() == Some("scale") {
                let replicas = get_path(&obj, &["spec", "replicas"])
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let current = st.get(rt, &ns, name)?.clone();
                if let Some(rv) = meta_str(&obj, "resourceVersion")
                    && !rv.is_empty()
                    && rv != current.resource_version()
                {
                    return Err(ApiError::conflict(&rt.group, &rt.plural, name));
                }
                let patch = serde_json::to_vec(&replicas_patch(rt, replicas)).unwrap_or_default();
                let o = WriteOpts {
                    subresource: None,
                    ..o
                };
                let updated = st.patch(rt, &ns, name, PatchType::Merge, &patch, &o)?;
                crate::controllers::settle(&mut st);
                return ok_json(200, &scale_of(rt, &updated));
            }
            let old = namespace_before(&st, rt, name);
            let updated = st.update(rt, &ns, name, obj, &o)?;
            let warnings = pod_security_warnings(&st, old.as_ref(), &updated);
            crate::controllers::settle(&mut st);
            with_warnings(ok_json(200, &updated), &warnings)
        }
        (&Method::PATCH, Some(name)) => {
            verb_ok("patch")?;
            let ct = r.content_type.clone().unwrap_or_default();
            let ptype = PatchType::from_content_type(&ct).ok_or_else(|| {
                ApiError::unsupported_patch(&[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                    "application/strategic-merge-patch+json",
                ])
            })?;
            let o = write_opts(r, t.sub.as_deref())?;
            if t.sub.as_deref() == Some("scale") {
                let current = st.get(rt, &ns, name)?.clone();
                let scale = scale_of(rt, &current.obj);
                let ptype = if ptype == PatchType::Apply {
                    PatchType::Merge
                } else {
                    ptype
                };
                let patched = st.patched_value(rt, &scale, ptype, body)?;
                if let Some(rv) = meta_str(&patched, "resourceVersion")
                    && rv != current.resource_version()
                {
                    return Err(ApiError::conflict(&rt.group, &rt.plural, name));
                }
                let replicas = get_path(&patched, &["spec", "replicas"])
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let patch = serde_json::to_vec(&replicas_patch(rt, replicas)).unwrap_or_default();
                let o = WriteOpts {
                    subresource: None,
                    ..o
                };
                let updated = st.patch(rt, &ns, name, PatchType::Merge, &patch, &o)?;
                crate::controllers::settle(&mut st);
                return ok_json(200, &scale_of(rt, &updated));
            }
            let existed = st.get(rt, &ns, name).is_ok();
            let old = namespace_before(&st, rt, name);
            let updated = st.patch(rt, &ns, name, ptype, body, &o)?;
            let warnings = pod_security_warnings(&st, old.as_ref(), &updated);
            crate::controllers::settle(&mut st);
            with_warnings(ok_json(if existed { 200 } else { 201 }, &updated), &warnings)
        }
        (&Method::DELETE, Some(name)) => {
            verb_ok("delete")?;
            let o = delete_opts(r, body)?;
            let out = st.delete(rt, &ns, name, &o)?;
            crate::controllers::settle(&mut st);
            ok_json(200, &out)
        }
        (&Method::DELETE, None) => {
            verb_ok("deletecollection")?;
            let q = list_query(r, rt)?;
            let o = delete_opts(r, body)?;
            let out = st.delete_collection(rt, t.namespace.as_deref(), &q, &o)?;
            crate::controllers::settle(&mut st);
            ok_json(200, &out)
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The `status` of a SelfSubjectAccessReview judged by RBAC: `allowed`, and the authorizer's
/// reason when it has one (`kubectl auth can-i` asks this).
fn self_subject_access_review(st: &State, user: &crate::rbac::UserInfo, review: &Value) -> Value {
    let spec = &review["spec"];
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let attrs = if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        crate::rbac::Attributes {
            verb: s(ra, "verb"),
            resource_request: true,
            api_group: s(ra, "group"),
            resource: s(ra, "resource"),
            subresource: s(ra, "subresource"),
            namespace: s(ra, "namespace"),
            name: s(ra, "name"),
            path: String::new(),
        }
    } else {
        let nr = spec.get("nonResourceAttributes").cloned().unwrap_or(Value::Null);
        crate::rbac::Attributes {
            verb: s(&nr, "verb"),
            resource_request: false,
            path: s(&nr, "path"),
            ..Default::default()
        }
    };
    let (allowed, reason) = match crate::rbac::policy_of(st).authorize(user, &attrs) {
        crate::rbac::Decision::Allow(reason) => (true, reason),
        crate::rbac::Decision::Deny(reason) => (false, reason),
    };
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    status
}

fn parse_json_or_yaml(body: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let ct = content_type.unwrap_or("application/json");
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode_object(body);
    }
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
            ),
        ));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("request body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

fn delete_opts(r: &Req, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let protobuf = r
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("protobuf"));
    let b: Value = if protobuf || body.iter().all(|c| c.is_ascii_whitespace()) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let dry_body = b
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"));
    let w = write_opts(r, None)?;
    let mut propagation = r
        .param("propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            b.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let orphan = r.param("orphanDependents") == Some("true")
        || b.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    if orphan && propagation.is_none() {
        propagation = Some("Orphan".into());
    }
    Ok(DeleteOpts {
        dry_run: w.dry_run || dry_body,
        propagation,
        uid: get_path(&b, &["preconditions", "uid"])
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: get_path(&b, &["preconditions", "resourceVersion"])
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn forbidden_for(shared: &Shared, r: &Req, user: &str) -> ApiError {
    let segs: Vec<String> = r
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let (group, gv_len) = match segs.first().map(String::as_str) {
        Some("api") => (String::new(), 2),
        Some("apis") if segs.len() >= 3 => (segs[1].clone(), 3),
        _ => {
            return ApiError::new(
                403,
                "Forbidden",
                format!(
                    "forbidden: User \"{user}\" cannot {} path \"{}\"",
                    r.method.as_str().to_lowercase(),
                    r.path
                ),
            )
            .with_details(json!({}));
        }
    };
    let rest = &segs[gv_len.min(segs.len())..];
    let namespaced_path = rest.len() >= 3 && rest[0] == "namespaces";
    let (ns, rest) = if namespaced_path {
        (Some(rest[1].as_str()), &rest[2..])
    } else {
        (None, rest)
    };
    let resource = rest.first().cloned().unwrap_or_default();
    let name = rest.get(1).map(String::as_str);
    let sub = rest.get(2).map(String::as_str);
    let verb = match (&r.method, name) {
        (&Method::GET, None) if r.flag("watch") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, None) => "deletecollection",
        (&Method::DELETE, Some(_)) => "delete",
        _ => "get",
    };
    let _ = shared;
    ApiError::forbidden(user, verb, &group, &resource, sub, ns, name)
}

fn event_line(ty: &str, obj_json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(obj_json.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(ty.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(obj_json);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

struct WatchFilter {
    rt: Arc<ResourceType>,
    ns: Option<String>,
    q: ListQuery,
    table: Option<String>,
}

impl WatchFilter {
    fn matches_obj(&self, v: &Value) -> bool {
        self.q.labels.matches_object(v) && (self.q.fields.is_empty() || self.q.fields.matches(v))
    }

    fn render(&self, ev: &WatchEvent) -> Option<Bytes> {
        let k: &Key = &ev.key;
        if k.group != self.rt.group || k.resource != self.rt.plural {
            return None;
        }
        if let Some(ns) = &self.ns
            && self.rt.namespaced
            && &k.namespace != ns
        {
            return None;
        }
        let cur = self.matches_obj(&ev.obj);
        let prev = ev.prev.as_ref().map(|p| self.matches_obj(p));
        let ty = match (ev.kind, prev, cur) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, Some(true), true) => "MODIFIED",
            (EventType::Modified, Some(false) | None, true) => "ADDED",
            (EventType::Modified, Some(true), false) => "DELETED",
            (EventType::Deleted, Some(true), _) | (EventType::Deleted, None, true) => "DELETED",
            _ => return None,
        };
        let want_av = self.rt.api_version();
        if let Some(include) = &self.table {
            let mut v: Value = serde_json::from_slice(&ev.json).unwrap_or(Value::Null);
            v["apiVersion"] = json!(want_av);
            let mut meta = Map::new();
            meta.insert("resourceVersion".into(), json!(ev.rv.to_string()));
            let t = crate::table::to_table(&self.rt, &[v], include, meta);
            return Some(event_line(ty, &serde_json::to_vec(&t).unwrap_or_default()));
        }
        if ev.obj.get("apiVersion").and_then(Value::as_str) == Some(want_av.as_str()) {
            Some(event_line(ty, &ev.json))
        } else {
            let mut v: Value = serde_json::from_slice(&ev.json).unwrap_or(Value::Null);
            v["apiVersion"] = json!(want_av);
            Some(event_line(ty, &serde_json::to_vec(&v).unwrap_or_default()))
        }
    }
}

fn watch(shared: &Arc<Shared>, r: &Req, t: &Target) -> Response<Body> {
    if !t.rt.supports("watch") {
        return error_response(&ApiError::method_not_allowed());
    }
    let q = match list_query(r, &t.rt) {
        Ok(q) => q,
        Err(e) => return error_response(&e),
    };
    let send_initial = r.param("sendInitialEvents") == Some("true");
    let bookmarks = r.flag("allowWatchBookmarks");
    let started = {
        let st = shared.lock();
        st.watch_start(
            &t.rt,
            t.namespace.as_deref(),
            &q,
            r.param("resourceVersion"),
            send_initial,
        )
    };
    let table =
        wants_table(&r.accept).then(|| r.param("includeObject").unwrap_or("Metadata").to_string());
    let filter = Arc::new(WatchFilter {
        rt: t.rt.clone(),
        ns: t.namespace.clone(),
        q,
        table,
    });
    let timeout = r
        .param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800)
        .min(3600);
    let content_type = if filter.table.is_some() {
        table_content_type(&r.accept)
    } else {
        "application/json"
    };
    let (initial, rx, rv) = match started {
        Ok(x) => x,
        Err(e) if e.code == 410 => {
            let line = event_line(
                "ERROR",
                &serde_json::to_vec(&e.to_status()).unwrap_or_default(),
            );
            return respond(200, "application/json", line);
        }
        Err(e) => return error_response(&e),
    };
    let mut first: Vec<Bytes> = initial.iter().filter_map(|ev| filter.render(ev)).collect();
    if send_initial && bookmarks {
        let bm = json!({"kind": t.rt.kind, "apiVersion": t.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
        first.push(event_line(
            "BOOKMARK",
            &serde_json::to_vec(&bm).unwrap_or_default(),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let initial_stream = futures::stream::iter(
        first
            .into_iter()
            .map(|b| Ok::<_, Infallible>(Frame::data(b))),
    );
    let live_filter = filter.clone();
    let live = futures::stream::unfold(rx, move |mut rx: broadcast::Receiver<Arc<WatchEvent>>| {
        let filter = live_filter.clone();
        async move {
            loop {
                let next = tokio::time::timeout_at(deadline, rx.recv()).await;
                match next {
                    Err(_) => return None,
                    Ok(Err(_)) => return None,
                    Ok(Ok(ev)) => {
                        if ev.rv <= rv {
                            continue;
                        }
                        if let Some(line) = filter.render(&ev) {
                            return Some((Ok::<_, Infallible>(Frame::data(line)), rx));
                        }
                    }
                }
            }
        }
    });
    let stream = initial_stream.chain(live);
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}
