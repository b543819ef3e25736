//! The service proxy subresource: `GET /api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH`
//! forwards to the Service's endpoints, here to a [`Backend`] a test puts behind it
//! ([`DoubleHandle::serve_prometheus`]), so a client reaches Prometheus the way it would in a
//! cluster, with the API server's authentication and RBAC on the way (`get` on
//! `services/proxy`; the request attributes are the usual ones, the name being the whole
//! `[SCHEME:]NAME[:PORT]` segment).
//!
//! As the API server answers (`pkg/registry/core/service/storage/rest.go`, `ResourceLocation`):
//! an unknown Service is `404 NotFound`; a port the Service does not have, or a Service with no
//! endpoints (no backend here), is `503 ServiceUnavailable`. The URL form is Kubernetes'
//! <https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls>.

use serde_json::{Value, json};

use crate::DoubleHandle;
use crate::prometheus::{Backend, Script};
use crate::status::ApiError;
use crate::store::State;

/// A Service proxy request: namespace, the `[SCHEME:]NAME[:PORT]` segment split, and the path
/// after `/proxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPath {
    pub namespace: String,
    pub name: String,
    pub port: Option<String>,
    pub rest: String,
}

/// The proxy request `path` is, if it is one.
pub fn parse(path: &str) -> Option<ProxyPath> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("services/")?;
    let (segment, rest) = rest.split_once('/')?;
    let rest = match rest.strip_prefix("proxy") {
        Some(r) if r.is_empty() || r.starts_with('/') => r,
        _ => return None,
    };
    let parts: Vec<&str> = segment.split(':').collect();
    let (name, port) = match parts.as_slice() {
        [name] => (*name, None),
        ["http" | "https", name] => (*name, None),
        ["http" | "https" | "", name, port] => (*name, Some(port.to_string())),
        [name, port] => (*name, Some(port.to_string())),
        _ => return None,
    };
    Some(ProxyPath {
        namespace: namespace.to_string(),
        name: name.to_string(),
        port: port.filter(|p| !p.is_empty()),
        rest: if rest.is_empty() { "/".into() } else { rest.to_string() },
    })
}

/// Where each Service port's traffic goes: `NS/NAME:PORT` (the port by number, its name
/// resolved through the Service) to a backend.
#[derive(Default, Clone)]
pub struct Backends(std::collections::BTreeMap<String, Backend>);

fn key(namespace: &str, name: &str, port: i64) -> String {
    format!("{namespace}/{name}:{port}")
}

/// What answers a proxy request (authorization has been done). The caller answers with it after
/// it let go of the state: a backend's script may read the double.
pub fn backend(st: &State, p: &ProxyPath) -> Result<Backend, ApiError> {
    let rt = st.registry.find("", "v1", "services").ok_or_else(ApiError::no_such_resource)?;
    let svc = st.get(&rt, &p.namespace, &p.name)?.obj.clone();
    let ports: Vec<&Value> = svc.pointer("/spec/ports").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let unavailable = |message: String| ApiError::new(503, "ServiceUnavailable", message);
    let port = match &p.port {
        None if ports.len() == 1 => ports[0],
        None => return Err(unavailable(format!("no service port \"\" found for service \"{}\"", p.name))),
        Some(want) => *ports
            .iter()
            .find(|sp| sp.get("name").and_then(Value::as_str) == Some(want.as_str()) || sp.get("port").and_then(Value::as_i64).map(|n| n.to_string()).as_deref() == Some(want.as_str()))
            .ok_or_else(|| unavailable(format!("no service port \"{want}\" found for service \"{}\"", p.name)))?,
    };
    let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
    let backend = st
        .backends
        .0
        .get(&key(&p.namespace, &p.name, number))
        .ok_or_else(|| unavailable(format!("no endpoints available for service \"{}\"", p.name)))?;
    Ok(backend.clone())
}

impl DoubleHandle {
    /// Puts a fake Prometheus answering from `script` behind port `port` of Service
    /// `namespace/name`, and returns it for its query log. The namespace and the Service (one
    /// port, named `web` as in kube-prometheus) are created when they do not exist.
    pub fn serve_prometheus(&self, namespace: &str, name: &str, port: i64, script: Script) -> Backend {
        if self.get("v1", "Namespace", None, namespace).is_none() {
            self.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})).expect("the namespace is created");
        }
        if self.get("v1", "Service", Some(namespace), name).is_none() {
            self.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": {"app": name}, "ports": [{"name": "web", "port": port, "targetPort": port}]}}))
                .expect("the Service is created");
        }
        let backend = Backend::new(script);
        self.with_state(|st| st.backends.0.insert(key(namespace, name, port), backend.clone()));
        backend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_are_read_as_the_api_server_reads_them() {
        let p = |s: &str| parse(s).map(|p| (p.namespace, p.name, p.port, p.rest));
        let some = |ns: &str, n: &str, port: Option<&str>, rest: &str| Some((ns.into(), n.into(), port.map(Into::into), rest.into()));
        assert_eq!(p("/api/v1/namespaces/mon/services/prom:9090/proxy/api/v1/query"), some("mon", "prom", Some("9090"), "/api/v1/query"));
        assert_eq!(p("/api/v1/namespaces/mon/services/https:prom:web/proxy/api/v1/query"), some("mon", "prom", Some("web"), "/api/v1/query"));
        assert_eq!(p("/api/v1/namespaces/mon/services/prom/proxy"), some("mon", "prom", None, "/"));
        assert_eq!(p("/api/v1/namespaces/mon/services/prom"), None);
        assert_eq!(p("/api/v1/namespaces/mon/services/prom/status"), None);
        assert_eq!(p("/api/v1/namespaces/mon/pods/prom/proxy/x"), None);
    }
}

#[cfg(test)]
mod served {
    use crate::prometheus::{Reply, rules};
    use crate::{Double, DoubleOptions};

    /// Through the double's HTTP port, as a client sends it: the query reaches the backend, and
    /// the API server's own refusals come back as `Status` objects.
    #[test]
    fn the_backend_answers_behind_the_proxy_path() {
        let d = Double::spawn_blocking_runtime(DoubleOptions::default()).unwrap();
        d.install_crds(crate::crds::istio()).unwrap();
        let prom = d.serve_prometheus("monitoring", "prometheus", 9090, rules(vec![("up", Reply::Value(1.0))]));
        assert!(d.get("v1", "Service", Some("monitoring"), "prometheus").is_some());
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(d.addr()).unwrap();
            use std::io::{Read, Write};
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/api/v1/namespaces/monitoring/services/prometheus:web/proxy/api/v1/query?query=up");
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains(r#""resultType":"vector""#), "{ok}");
        assert_eq!(prom.queries().len(), 1);
        let by_number = get("/api/v1/namespaces/monitoring/services/http:prometheus:9090/proxy/api/v1/query?query=up");
        assert!(by_number.starts_with("HTTP/1.1 200"), "{by_number}");
        let missing = get("/api/v1/namespaces/monitoring/services/nothing:web/proxy/api/v1/query?query=up");
        assert!(missing.starts_with("HTTP/1.1 404") && missing.contains(r#"services \"nothing\" not found"#), "{missing}");
        let port = get("/api/v1/namespaces/monitoring/services/prometheus:grpc/proxy/api/v1/query?query=up");
        assert!(port.starts_with("HTTP/1.1 503") && port.contains("no service port"), "{port}");
        // A script may read the double (the state is not held while it answers).
        let handle = (*d).clone();
        prom.set_script(std::sync::Arc::new(move |_: &crate::prometheus::PromQuery| {
            Reply::Value(handle.list("v1", "Service", Some("monitoring")).len() as f64)
        }));
        let read = get("/api/v1/namespaces/monitoring/services/prometheus:web/proxy/api/v1/query?query=up");
        assert!(read.starts_with("HTTP/1.1 200") && read.contains(r#""1""#), "{read}");
    }
}
