//! Health probes for containers that have none.
//!
//! Each probe kind is added only when the container lacks it; existing probes are never changed.
//! HTTP probes use the configured paths; without a path, a TCP probe on the container's first
//! declared port (by name when it has one, so a renumbered port keeps working). A container
//! without ports gets nothing and is reported. A startup probe is added for slow starters: the
//! workloads named in the options, or containers whose existing liveness probe waits 30 s or more
//! before its first check (a sign the team already knows start-up is slow).

use serde_json::{Map, Value, json};

use super::Injection;

/// Probe settings for one workload (defaults merged with its override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// HTTP path for readiness; TCP probe when unset.
    pub readiness_path: Option<String>,
    /// HTTP path for liveness; TCP probe when unset.
    pub liveness_path: Option<String>,
    /// HTTP path for the startup probe; TCP probe when unset.
    pub startup_path: Option<String>,
    /// Treat as a slow starter: add a startup probe.
    pub slow_start: bool,
    pub period_seconds: u32,
    pub failure_threshold: u32,
    /// failureThreshold of startup probes (× periodSeconds = the start-up budget).
    pub startup_failure_threshold: u32,
    /// Leave this workload's probes alone.
    pub skip: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            readiness_path: None,
            liveness_path: None,
            startup_path: None,
            slow_start: false,
            period_seconds: 10,
            failure_threshold: 3,
            startup_failure_threshold: 30,
            skip: false,
        }
    }
}

/// Existing liveness delay from which a container counts as a slow starter.
const SLOW_LIVENESS_DELAY: i64 = 30;

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
        let missing: Vec<&str> = ["readinessProbe", "livenessProbe", "startupProbe"]
            .into_iter()
            .filter(|k| !c.contains_key(*k))
            .collect();
        let slow = settings.slow_start
            || c.get("livenessProbe")
                .and_then(|p| p.get("initialDelaySeconds"))
                .and_then(Value::as_i64)
                .is_some_and(|d| d >= SLOW_LIVENESS_DELAY);
        let wanted: Vec<&str> = missing.into_iter().filter(|k| *k != "startupProbe" || slow).collect();
        if wanted.is_empty() {
            continue;
        }
        let Some(port) = first_port(c) else {
            done.push(note("no probes added: container declares no ports".into(), true));
            continue;
        };
        for kind in wanted {
            let path = match kind {
                "readinessProbe" => &settings.readiness_path,
                "livenessProbe" => &settings.liveness_path,
                _ => &settings.startup_path,
            };
            let handler = match path {
                Some(p) => json!({"httpGet": {"path": p, "port": port.clone()}}),
                None => json!({"tcpSocket": {"port": port.clone()}}),
            };
            let mut probe = handler.as_object().cloned().unwrap_or_default();
            probe.insert("periodSeconds".into(), json!(settings.period_seconds));
            let threshold = if kind == "startupProbe" { settings.startup_failure_threshold } else { settings.failure_threshold };
            probe.insert("failureThreshold".into(), json!(threshold));
            let how = match path {
                Some(p) => format!("http {p} port {}", display(&port)),
                None => format!("tcp port {}", display(&port)),
            };
            c.insert(kind.to_string(), Value::Object(probe));
            done.push(note(format!("{kind} {how}"), false));
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

    #[test]
    fn http_paths_and_slow_starters() {
        let mut p = pod(json!([{"name": "llm", "ports": [{"containerPort": 8003}],
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8003}, "initialDelaySeconds": 120}}]));
        let s = ProbeSettings { readiness_path: Some("/ready".into()), startup_path: Some("/startup".into()), ..Default::default() };
        let done = inject_probes(&mut p, "Deployment/llm", "", &s);
        assert_eq!(done.iter().map(|d| d.change.as_str()).collect::<Vec<_>>(), ["readinessProbe http /ready port 8003", "startupProbe http /startup port 8003"]);
        assert_eq!(p.pointer("/spec/containers/0/startupProbe/failureThreshold"), Some(&json!(30)));
        assert_eq!(p.pointer("/spec/containers/0/livenessProbe/initialDelaySeconds"), Some(&json!(120)), "existing probe untouched");
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
