//! Service ports and the pod ports they send to: the one reading of a Service port's
//! `targetPort` (<https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/#ServiceSpec>).
//!
//! - `targetPort` absent, `0` or `""` means `port`: the API server defaults it so
//!   (`SetDefaults_Service`, kubernetes `pkg/apis/core/v1/defaults.go`).
//! - A number is the pod port, the same in every selected pod.
//! - A name is looked up in each selected pod's container ports, by name and protocol
//!   (`FindPort`, kubernetes `pkg/api/v1/pod/util.go`), so the pods of one Service may receive
//!   it on different numbers, and a pod that declares no such port is not an endpoint of it.
//! - A string of digits (`"8080"`) is read as that number. The API server refuses it as a name
//!   (a port name must contain a letter: `IsValidPortName`, kubernetes
//!   `staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go`), so it only occurs in
//!   files, where the number is what the author meant; NetworkPolicy rules, which also take a
//!   number or a name, must not name a port that no container can declare.
//!
//! NetworkPolicy rules keep the unresolved form ([`TargetPort::Named`]): a rule may name a port,
//! and the network plugin resolves it per pod as the Service does.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::workload::ContainerPort;

/// A Service port's target as written: a pod port number, or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetPort {
    Number(u16),
    Named(String),
}

impl TargetPort {
    /// An int-or-string port value as JSON (`targetPort`, or a monitor's port): a number in
    /// 1..=65535, a string of digits as that number, another non-empty string as a name; `None`
    /// for anything else (`0`, `""`, out of range, not a number or string).
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(TargetPort::Number),
            Value::String(s) => Self::from_text(s),
            _ => None,
        }
    }

    /// The typed form of [`TargetPort::from_value`].
    pub fn from_int_or_string(v: &IntOrString) -> Option<Self> {
        match v {
            IntOrString::Int(n) => u16::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .map(TargetPort::Number),
            IntOrString::String(s) => Self::from_text(s),
        }
    }

    fn from_text(s: &str) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .map(TargetPort::Number);
        }
        Some(TargetPort::Named(s.to_string()))
    }

    /// The pod port this target is in a pod with `container_ports`, for a Service port of
    /// `protocol`: a number as is; a name by the container port of that name and protocol
    /// (`None` when the pod declares none).
    pub fn resolve(&self, protocol: &str, container_ports: &[ContainerPort]) -> Option<u16> {
        match self {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Named(name) => container_ports
                .iter()
                .find(|c| c.name.as_deref() == Some(name.as_str()) && c.protocol == protocol)
                .map(|c| c.port),
        }
    }

    /// The value a NetworkPolicy port takes: the number, or the name.
    pub fn to_value(&self) -> Value {
        match self {
            TargetPort::Number(n) => Value::from(*n),
            TargetPort::Named(s) => Value::from(s.as_str()),
        }
    }
}

/// One entry of a Service's `spec.ports`, with its target read by the rules above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    /// `TCP` (the default), `UDP` or `SCTP`.
    pub protocol: String,
    pub target: TargetPort,
}

impl ServicePort {
    /// One `spec.ports` entry; `None` without a valid `port` or with a target that is neither a
    /// port number nor a name.
    pub fn from_value(p: &Value) -> Option<Self> {
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)?;
        let target = match p.get("targetPort") {
            None | Some(Value::Null) => TargetPort::Number(port),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => TargetPort::Number(port),
            Some(Value::String(s)) if s.is_empty() => TargetPort::Number(port),
            Some(v) => TargetPort::from_value(v)?,
        };
        Some(ServicePort {
            name: p.get("name").and_then(Value::as_str).map(str::to_string),
            port,
            protocol: p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string(),
            target,
        })
    }

    /// A typed `spec.ports` entry, read by the same rules.
    pub fn from_typed(p: &k8s_openapi::api::core::v1::ServicePort) -> Option<Self> {
        let port = u16::try_from(p.port).ok().filter(|n| *n > 0)?;
        let target = match &p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(0)) => TargetPort::Number(port),
            Some(IntOrString::String(s)) if s.is_empty() => TargetPort::Number(port),
            Some(t) => TargetPort::from_int_or_string(t)?,
        };
        Some(ServicePort {
            name: p.name.clone(),
            port,
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
            target,
        })
    }

    pub fn is_tcp(&self) -> bool {
        self.protocol == "TCP"
    }

    /// The pod port it sends to in a pod with `container_ports` ([`TargetPort::resolve`]).
    pub fn pod_port(&self, container_ports: &[ContainerPort]) -> Option<u16> {
        self.target.resolve(&self.protocol, container_ports)
    }
}

/// The ports of a Service (`spec.ports`), each readable one.
pub fn service_ports(service: &Value) -> Vec<ServicePort> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(ServicePort::from_value)
        .collect()
}

/// The TCP pod ports a Service sends to in one pod with `container_ports` (whose selection by
/// the Service the caller has decided), in `spec.ports` order.
pub fn tcp_pod_ports(service: &Value, container_ports: &[ContainerPort]) -> Vec<u16> {
    service_ports(service)
        .iter()
        .filter(|p| p.is_tcp())
        .filter_map(|p| p.pod_port(container_ports))
        .collect()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
