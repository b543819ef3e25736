//! The control API under `/__double/`, for tests written in other languages.
//! Its requests are neither logged nor subject to fault rules.
//!
//! | method & path | effect |
//! | --- | --- |
//! | `GET /__double/health` | `{"ok": true}` |
//! | `GET /__double/kubeconfig?namespace=NS` | kubeconfig YAML for this double |
//! | `POST /__double/load` | body: YAML/JSON stream; stores the objects as given (no admission, no controllers) → `{"loaded": [ids]}` |
//! | `POST /__double/create` | body: YAML/JSON stream; creates each object with API semantics (defaulting, injection, controllers) → `{"created": [objects]}` |
//! | `POST /__double/crds/{preset}` | installs `istio`, `cnpg`, `spire` or `gateway-api` CRDs |
//! | `GET /__double/snapshot` | `{"objects": {id: object}}` with volatile fields removed |
//! | `GET /__double/requests?method=M&path=REGEX` | `{"requests": [...]}` (filters optional) |
//! | `DELETE /__double/requests` | clears the log |
//! | `GET /__double/faults` | `{"rules": [{id, rule, matched, fired}]}` |
//! | `POST /__double/faults` | body: a fault rule (JSON) → `{"id": N}` |
//! | `DELETE /__double/faults` / `DELETE /__double/faults/{id}` | removes all / one rule |
//! | `POST /__double/reset` | removes every object, log entry and rule; re-creates the default namespaces |

use crate::faults::FaultRule;
use crate::server::{Body, Shared, error_response};
use crate::status::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

fn reply(code: u16, v: &Value) -> Response<Body> {
    text(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn text(code: u16, ct: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn id_of(k: &crate::store::Key) -> String {
    let g = if k.group.is_empty() {
        String::new()
    } else {
        format!(".{}", k.group)
    };
    if k.namespace.is_empty() {
        format!("{}{g}/{}", k.resource, k.name)
    } else {
        format!("{}{g}/{}/{}", k.resource, k.namespace, k.name)
    }
}

/// Handles one control request.
pub fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Response<Body> {
    let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let rest = path.trim_start_matches("/__double").trim_start_matches('/');
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let body_text = String::from_utf8_lossy(body).to_string();
    match (method, segs.as_slice()) {
        ("GET", ["health"]) => reply(200, &json!({"ok": true})),
        ("GET", ["kubeconfig"]) => {
            let cfg = crate::kubeconfig_yaml_with_ca(
                &shared.url(),
                param("namespace").unwrap_or("default"),
                &shared.lock().opts.token,
                shared.ca_pem(),
            );
            text(200, "application/yaml", cfg.into_bytes())
        }
        ("POST", ["load"]) => match crate::parse_documents(&body_text) {
            Ok(docs) => match shared.lock().load_many(docs) {
                Ok(keys) => reply(
                    200,
                    &json!({"loaded": keys.iter().map(id_of).collect::<Vec<_>>()}),
                ),
                Err(e) => error_response(&e),
            },
            Err(e) => error_response(&ApiError::bad_request(e.to_string())),
        },
        ("POST", ["create"]) => match crate::parse_documents(&body_text) {
            Ok(docs) => {
                let mut st = shared.lock();
                let mut created = Vec::new();
                for d in docs {
                    match crate::create_in_state(&mut st, d) {
                        Ok(v) => created.push(v),
                        Err(e) => return error_response(&e),
                    }
                }
                reply(201, &json!({"created": created}))
            }
            Err(e) => error_response(&ApiError::bad_request(e.to_string())),
        },
        ("POST", ["crds", name]) => match crate::crds::preset(name) {
            Some(crds) => match shared.lock().load_many(crds) {
                Ok(keys) => reply(
                    200,
                    &json!({"loaded": keys.iter().map(id_of).collect::<Vec<_>>()}),
                ),
                Err(e) => error_response(&e),
            },
            None => error_response(&ApiError::not_found("", "presets", name)),
        },
        ("GET", ["snapshot"]) => reply(200, &json!({"objects": shared.lock().snapshot()})),
        ("GET", ["requests"]) => {
            let re = match param("path").map(regex::Regex::new).transpose() {
                Ok(r) => r,
                Err(e) => {
                    return error_response(&ApiError::bad_request(format!(
                        "invalid path regex: {e}"
                    )));
                }
            };
            let method_filter = param("method").map(str::to_uppercase);
            let records: Vec<_> = shared
                .lock()
                .log
                .all()
                .into_iter()
                .filter(|r| method_filter.as_ref().is_none_or(|m| &r.method == m))
                .filter(|r| re.as_ref().is_none_or(|re| re.is_match(&r.path)))
                .collect();
            reply(200, &json!({"requests": records}))
        }
        ("DELETE", ["requests"]) => {
            shared.lock().log.clear();
            reply(200, &json!({"cleared": true}))
        }
        ("GET", ["faults"]) => reply(200, &json!({"rules": shared.lock().faults.list()})),
        ("POST", ["faults"]) => match serde_json::from_slice::<FaultRule>(body) {
            Ok(rule) => match shared.lock().faults.add(rule) {
                Ok(id) => reply(201, &json!({"id": id})),
                Err(e) => error_response(&e),
            },
            Err(e) => error_response(&ApiError::bad_request(format!("invalid fault rule: {e}"))),
        },
        ("DELETE", ["faults"]) => {
            shared.lock().faults.clear();
            reply(200, &json!({"cleared": true}))
        }
        ("DELETE", ["faults", id]) => match id.parse::<u64>() {
            Ok(n) if shared.lock().faults.remove(n) => reply(200, &json!({"removed": n})),
            _ => error_response(&ApiError::not_found("", "faults", id)),
        },
        ("POST", ["reset"]) => {
            shared.lock().reset();
            reply(200, &json!({"reset": true}))
        }
        _ => error_response(&ApiError::new(
            404,
            "NotFound",
            format!("unknown control endpoint {method} {path}"),
        )),
    }
}
