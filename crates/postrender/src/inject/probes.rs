//! Health probes for containers that have none.
//!
//! Each probe kind is added only when the container lacks it; existing probes are never changed.
//! Each kind (readiness, liveness, startup) has its own handler and timing ([`ProbeSpec`]):
//! HTTP on a configured path, TCP, or none. Without a path, a TCP probe on the configured port or
//! the container's first declared port (by name when it has one, so a renumbered port keeps
//! working). A container without ports (and no configured port) gets nothing and is reported.
//!
//! HTTP paths configured for *every* workload (the global `probes` settings) apply only to
//! containers that serve HTTP: a container running a known data store (by image or well-known
//! port, [`meshmove_isolation::datastore::Store`]) or whose port is named for another protocol (`grpc`, `tcp`...)
//! gets TCP probes instead, since it answers no HTTP GET and would never become ready. A path
//! configured for the workload itself always applies.
//!
//! A startup probe is added for slow starters: workloads configured with `slowStart`, a startup
//! path or a startup probe type, and containers whose liveness probe (their own, or the one added)
//! waits 30 s or more before its first check (a sign the team already knows start-up is slow).
//!
//! Field semantics and the defaults Kubernetes applies when a field is omitted (initialDelaySeconds
//! 0, periodSeconds 10, timeoutSeconds 1, successThreshold 1 and only 1 for liveness and startup
//! probes, failureThreshold 3, every one but the delay at least 1):
//! <https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes>.

use serde_json::{Map, Value, json};

use super::Injection;
use meshmove_isolation::datastore::Store;

/// How one probe kind checks the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeHandler {
    /// `tcpSocket` on the port.
    Tcp,
    /// `httpGet` on `path`. `global`: configured for every workload, so applied only to
    /// containers that serve HTTP (data stores get [`ProbeHandler::Tcp`]).
    Http { path: String, global: bool },
    /// No probe of this kind is added.
    None,
}

/// A probe port as Kubernetes takes it: a number or a container port's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePort {
    Number(u16),
    Name(String),
}

/// One probe kind's settings. `None` fields are left out of the probe (Kubernetes' default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub handler: ProbeHandler,
    /// Port to probe; the container's first declared TCP port when unset.
    pub port: Option<ProbePort>,
    pub initial_delay_seconds: Option<u32>,
    pub period_seconds: u32,
    pub timeout_seconds: Option<u32>,
    pub failure_threshold: u32,
    pub success_threshold: Option<u32>,
}

impl ProbeSpec {
    /// A TCP probe with Kubernetes' period (10 s) and the given failure threshold.
    pub fn tcp(failure_threshold: u32) -> Self {
        ProbeSpec {
            handler: ProbeHandler::Tcp,
            port: None,
            initial_delay_seconds: None,
            period_seconds: 10,
            timeout_seconds: None,
            failure_threshold,
            success_threshold: None,
        }
    }
}

/// Probe settings for one workload (defaults merged with its override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub readiness: ProbeSpec,
    pub liveness: ProbeSpec,
    /// Added only for slow starters (see the module documentation).
    pub startup: ProbeSpec,
    /// Treat as a slow starter: add a startup probe (`slowStart`, or a startup path or type
    /// configured for this workload, or a startup type configured for all).
    pub slow_start: bool,
    /// Leave this workload's probes alone.
    pub skip: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings { readiness: ProbeSpec::tcp(3), liveness: ProbeSpec::tcp(3), startup: ProbeSpec::tcp(30), slow_start: false, skip: false }
    }
}

/// Existing liveness delay from which a container counts as a slow starter.
const SLOW_LIVENESS_DELAY: i64 = 30;

/// The data store a container runs, by image or a declared well-known port.
fn data_store(c: &Map<String, Value>) -> Option<Store> {
    c.get("image").and_then(Value::as_str).and_then(Store::from_image).or_else(|| {
        c.get("ports")?.as_array()?.iter().find_map(|p| {
            let n = p.get("containerPort")?.as_u64()?;
            Store::from_port(u16::try_from(n).ok()?)
        })
    })
}

/// Why a container does not serve HTTP on the port it would be probed on, if it says so: its
/// first declared TCP port is named for another protocol by Istio's convention (`grpc`, `tcp`,
/// `tls`, `mongo`, `mysql`, `redis`, with or without a `-suffix`,
/// <https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/>). A
/// gRPC server answers an HTTP/1.1 GET with an error, so the probe would never pass.
fn non_http_port(c: &Map<String, Value>) -> Option<String> {
    let Some(Value::String(name)) = first_port(c) else { return None };
    let protocol = name.split('-').next().unwrap_or_default();
    ["grpc", "tcp", "tls", "mongo", "mysql", "redis"].contains(&protocol).then(|| format!("port {name} is {protocol}"))
}

/// Add missing probes to the containers of a pod template at `template_ptr` of `object`.
pub fn inject_probes(object: &mut Value, workload: &str, template_ptr: &str, settings: &ProbeSettings) -> Vec<Injection> {
    if settings.skip {
        return Vec::new();
    }
    let Some(containers) = super::at_mut(object, template_ptr).and_then(|t| super::at_mut(t, "/spec/containers")).and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    for c in containers.iter_mut().filter_map(Value::as_object_mut) {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let note = |change: String, skipped: bool| Injection {
            workload: workload.to_string(),
            container: Some(cname.clone()),
            change,
            skipped,
        };
        // Why global HTTP paths do not apply to this container, if they do not.
        let store = data_store(c).map(|s| format!("{} data store", s.name())).or_else(|| non_http_port(c));
        // Global HTTP paths do not reach a data store: TCP instead.
        let handler = |spec: &ProbeSpec| match &spec.handler {
            ProbeHandler::Http { global: true, .. } if store.is_some() => ProbeHandler::Tcp,
            h => h.clone(),
        };
        // The liveness delay as the container will have it: its own probe's, else the one added
        // (so that a second run over the output decides the same).
        let liveness_delay = match c.get("livenessProbe") {
            Some(p) => p.get("initialDelaySeconds").and_then(Value::as_i64),
            None if handler(&settings.liveness) != ProbeHandler::None => settings.liveness.initial_delay_seconds.map(i64::from),
            None => None,
        };
        let slow = settings.slow_start
            || matches!(&settings.startup.handler, ProbeHandler::Http { global: true, .. } if store.is_none())
            || liveness_delay.is_some_and(|d| d >= SLOW_LIVENESS_DELAY);
        let wanted: Vec<(&str, &ProbeSpec, ProbeHandler)> = [("readinessProbe", &settings.readiness), ("livenessProbe", &settings.liveness), ("startupProbe", &settings.startup)]
            .into_iter()
            .filter(|(k, _)| !c.contains_key(*k) && (*k != "startupProbe" || slow))
            .map(|(k, s)| (k, s, handler(s)))
            .filter(|(_, _, h)| *h != ProbeHandler::None)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let declared = first_port(c);
        if declared.is_none() && wanted.iter().any(|(_, s, _)| s.port.is_none()) {
            done.push(note("no probes added: container declares no ports".into(), true));
            continue;
        }
        for (kind, spec, handler) in wanted {
            let port = match &spec.port {
                Some(ProbePort::Number(n)) => json!(n),
                Some(ProbePort::Name(n)) => json!(n),
                None => declared.clone().unwrap_or(Value::Null),
            };
            let mut probe = Map::new();
            let how = match &handler {
                ProbeHandler::Http { path, .. } => {
                    probe.insert("httpGet".into(), json!({"path": path, "port": port.clone()}));
                    format!("http {path} port {}", display(&port))
                }
                _ => {
                    probe.insert("tcpSocket".into(), json!({"port": port.clone()}));
                    format!("tcp port {}", display(&port))
                }
            };
            if let Some(d) = spec.initial_delay_seconds {
                probe.insert("initialDelaySeconds".into(), json!(d));
            }
            probe.insert("periodSeconds".into(), json!(spec.period_seconds));
            if let Some(t) = spec.timeout_seconds {
                probe.insert("timeoutSeconds".into(), json!(t));
            }
            if let Some(s) = spec.success_threshold {
                probe.insert("successThreshold".into(), json!(s));
            }
            probe.insert("failureThreshold".into(), json!(spec.failure_threshold));
            c.insert(kind.to_string(), Value::Object(probe));
            let why = match &store {
                Some(s) if handler != spec.handler => format!(" ({s}: the global HTTP path is not applied)"),
                _ => String::new(),
            };
            done.push(note(format!("{kind} {how}{why}"), false));
        }
    }
    done
}

/// The first declared TCP port of a container: its name if named, else its number.
fn first_port(c: &Map<String, Value>) -> Option<Value> {
    let ports = c.get("ports")?.as_array()?;
    let p = ports
        .iter()
        .find(|p| p.get("protocol").and_then(Value::as_str).is_none_or(|proto| proto == "TCP"))?;
    match p.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => Some(Value::String(name.to_string())),
        _ => p.get("containerPort").filter(|n| n.is_u64()).cloned(),
    }
}

fn display(port: &Value) -> String {
    match port {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn tcp_probes_on_first_named_port_by_default() {
        let mut p = pod(json!([{"name": "api", "ports": [{"name": "http", "containerPort": 8000}]}]));
        let done = inject_probes(&mut p, "Pod/p", "", &ProbeSettings::default());
        assert_eq!(done.len(), 2);
        assert_eq!(p.pointer("/spec/containers/0/readinessProbe"), Some(&json!({"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 3})));
        assert!(p.pointer("/spec/containers/0/startupProbe").is_none());
        assert!(inject_probes(&mut p, "Pod/p", "", &ProbeSettings::default()).is_empty(), "idempotent");
    }

    fn http(path: &str, global: bool) -> ProbeHandler {
        ProbeHandler::Http { path: path.into(), global }
    }

    #[test]
    fn http_paths_and_slow_starters() {
        let mut p = pod(json!([{"name": "llm", "ports": [{"containerPort": 8003}],
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8003}, "initialDelaySeconds": 120}}]));
        let mut s = ProbeSettings::default();
        s.readiness.handler = http("/ready", true);
        s.startup.handler = http("/startup", false);
        let done = inject_probes(&mut p, "Deployment/llm", "", &s);
        assert_eq!(done.iter().map(|d| d.change.as_str()).collect::<Vec<_>>(), ["readinessProbe http /ready port 8003", "startupProbe http /startup port 8003"]);
        assert_eq!(p.pointer("/spec/containers/0/startupProbe/failureThreshold"), Some(&json!(30)));
        assert_eq!(p.pointer("/spec/containers/0/livenessProbe/initialDelaySeconds"), Some(&json!(120)), "existing probe untouched");
    }

    #[test]
    fn every_field_of_the_spec_is_written() {
        let mut p = pod(json!([{"name": "api", "image": "flexdesk/backend:1", "ports": [{"name": "http", "containerPort": 8000}]}]));
        let readiness = ProbeSpec {
            handler: http("/api/v2/ready", false),
            port: Some(ProbePort::Number(8000)),
            initial_delay_seconds: Some(5),
            period_seconds: 5,
            timeout_seconds: Some(2),
            failure_threshold: 4,
            success_threshold: Some(2),
        };
        let mut s = ProbeSettings { readiness, ..ProbeSettings::default() };
        s.liveness.handler = ProbeHandler::None;
        s.startup.handler = http("/api/v2/startup", true);
        s.startup.period_seconds = 5;
        inject_probes(&mut p, "Deployment/api", "", &s);
        assert_eq!(
            p.pointer("/spec/containers/0/readinessProbe"),
            Some(&json!({"httpGet": {"path": "/api/v2/ready", "port": 8000}, "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 2, "successThreshold": 2, "failureThreshold": 4}))
        );
        assert!(p.pointer("/spec/containers/0/livenessProbe").is_none(), "type none adds nothing");
        // A global startup path asks for a startup probe on a container that serves HTTP.
        assert_eq!(p.pointer("/spec/containers/0/startupProbe"), Some(&json!({"httpGet": {"path": "/api/v2/startup", "port": "http"}, "periodSeconds": 5, "failureThreshold": 30})));
    }

    #[test]
    fn global_http_paths_never_reach_data_stores() {
        let mut s = ProbeSettings::default();
        s.readiness.handler = http("/ready", true);
        s.liveness.handler = http("/health", true);
        s.startup.handler = http("/startup", true);
        for c in [
            json!({"name": "postgres", "image": "docker.io/bitnami/postgresql:16", "ports": [{"name": "tcp-postgresql", "containerPort": 5432}]}),
            json!({"name": "cache", "image": "example.com/custom-cache:1", "ports": [{"containerPort": 6379}]}),
        ] {
            let mut p = pod(json!([c]));
            let done = inject_probes(&mut p, "StatefulSet/db", "", &s);
            let probe = p.pointer("/spec/containers/0/readinessProbe").unwrap();
            assert!(probe.get("tcpSocket").is_some() && probe.get("httpGet").is_none(), "{probe}");
            assert!(p.pointer("/spec/containers/0/livenessProbe/tcpSocket").is_some());
            assert!(p.pointer("/spec/containers/0/startupProbe").is_none(), "a global startup path is no slow start for a database");
            assert!(done[0].change.contains("data store: the global HTTP path is not applied"), "{done:?}");
        }
        let mut p = pod(json!([{"name": "mcp", "image": "pyairtable/mcp-server:1", "ports": [{"name": "grpc", "containerPort": 8001}]}]));
        let done = inject_probes(&mut p, "Deployment/mcp", "", &s);
        assert!(p.pointer("/spec/containers/0/readinessProbe/tcpSocket").is_some() && p.pointer("/spec/containers/0/startupProbe").is_none());
        assert!(done[0].change.ends_with("(port grpc is grpc: the global HTTP path is not applied)"), "{done:?}");
        // A path set for the workload itself is what the user asked for.
        s.readiness.handler = http("/ready", false);
        let mut p = pod(json!([{"name": "pg", "image": "postgres:16", "ports": [{"containerPort": 5432}]}]));
        inject_probes(&mut p, "StatefulSet/pg", "", &s);
        assert_eq!(p.pointer("/spec/containers/0/readinessProbe/httpGet/path"), Some(&json!("/ready")));
    }

    #[test]
    fn an_added_slow_liveness_probe_counts_as_slow_start_at_once() {
        let mut s = ProbeSettings::default();
        s.liveness.initial_delay_seconds = Some(30);
        let mut p = pod(json!([{"name": "pg", "image": "postgres:16", "ports": [{"containerPort": 5432}]}]));
        inject_probes(&mut p, "StatefulSet/pg", "", &s);
        assert!(p.pointer("/spec/containers/0/startupProbe/tcpSocket").is_some());
        let once = p.clone();
        assert!(inject_probes(&mut p, "StatefulSet/pg", "", &s).is_empty() && p == once, "a second run changes nothing");
    }

    #[test]
    fn a_configured_port_needs_no_declared_port() {
        let mut p = pod(json!([{"name": "app"}]));
        let mut s = ProbeSettings::default();
        s.readiness.port = Some(ProbePort::Name("http".into()));
        s.liveness.handler = ProbeHandler::None;
        inject_probes(&mut p, "Deployment/app", "", &s);
        assert_eq!(p.pointer("/spec/containers/0/readinessProbe/tcpSocket/port"), Some(&json!("http")));
    }

    #[test]
    fn containers_without_ports_are_reported_not_changed() {
        let mut p = pod(json!([{"name": "worker"}, {"name": "udp", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]));
        let done = inject_probes(&mut p, "Deployment/w", "", &ProbeSettings::default());
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|d| d.skipped));
        assert_eq!(p, pod(json!([{"name": "worker"}, {"name": "udp", "ports": [{"containerPort": 53, "protocol": "UDP"}]}])));
    }
}
