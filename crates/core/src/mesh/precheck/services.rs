//! Service ports as Istio will read them.
//!
//! Istio picks a port's protocol from `appProtocol` when set, else from the port name
//! `<protocol>[-<suffix>]` (case-insensitive; `grpc-web` is matched before splitting at the first
//! dash). Known protocols are http, http2, https, grpc, grpc-web, tcp, tls, mongo, mysql, redis
//! and udp. Anything else is "unsupported": Istio sniffs the first bytes for HTTP and otherwise
//! treats the connection as opaque TCP, which breaks server-first protocols and loses L7 routing
//! and metrics. The well-known server-first ports 25, 53, 3306 and 27017 are exempt: Istio already
//! treats them as TCP when undeclared. UDP and SCTP are never proxied.
//!
//! A pod port also gets one inbound protocol, so two Services that select the same pods and
//! target the same port must agree on it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};

use super::{PrecheckOptions, Scope, WORKLOAD_KINDS, Workload, join_and, workloads};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, kinds};
use crate::mesh::catalog::*;

static REQUIRES: &[&Kind] = &[&kinds::SERVICE];

/// Service ports Istio cannot proxy or cannot classify, and conflicting declarations.
pub struct ServicePorts(pub PrecheckOptions);

const PROTOCOLS: &[&str] = &["http", "http2", "https", "grpc", "tcp", "tls", "mongo", "mysql", "redis", "udp"];

/// Ports Istio treats as TCP when their protocol is not declared (server-first protocols).
const WELL_KNOWN_TCP: &[(i32, &str)] = &[(25, "SMTP"), (53, "DNS"), (3306, "MySQL"), (27017, "MongoDB")];

/// The protocol Istio reads from a port name or `appProtocol` value, if it knows it.
pub fn istio_protocol(declared: &str) -> Option<&'static str> {
    let lower = declared.to_ascii_lowercase();
    if lower.starts_with("grpc-web") {
        return Some("grpc-web");
    }
    let prefix = lower.split('-').next().unwrap_or_default();
    PROTOCOLS.iter().copied().find(|p| *p == prefix)
}

/// Protocols that share one inbound treatment, for conflict detection.
fn protocol_class(p: &str) -> &'static str {
    match p {
        "http" => "HTTP/1.1",
        "http2" | "grpc" | "grpc-web" => "HTTP/2",
        "https" | "tls" => "TLS",
        "mongo" => "Mongo",
        "mysql" => "MySQL",
        "redis" => "Redis",
        _ => "TCP",
    }
}

/// How Istio will treat one Service port.
enum Treatment {
    /// Not proxied at all; with the reason.
    NotProxied(String),
    /// Declared protocol.
    Declared(&'static str),
    /// Undeclared: sniffed, else TCP; with the reason.
    Unknown(String),
    /// Undeclared but on a well-known server-first port, which Istio treats as TCP.
    WellKnownTcp,
}

fn treatment(port: &ServicePort) -> Treatment {
    let k8s_protocol = port.protocol.as_deref().unwrap_or("TCP");
    if k8s_protocol != "TCP" {
        return Treatment::NotProxied(format!("protocol {k8s_protocol}"));
    }
    let (declared, why_unknown) = match (&port.app_protocol, &port.name) {
        (Some(ap), name) => {
            let shadowed = match name.as_deref().and_then(istio_protocol) {
                Some(p) => format!(", and it takes precedence over the name's `{p}`"),
                None => String::new(),
            };
            (istio_protocol(ap), format!("appProtocol `{ap}` is not a protocol Istio knows{shadowed}"))
        }
        (None, Some(name)) if !name.is_empty() => (
            istio_protocol(name),
            format!("its name `{name}` does not start with a protocol Istio knows and it has no appProtocol"),
        ),
        _ => (None, "it has no name and no appProtocol".to_string()),
    };
    match declared {
        Some("udp") => Treatment::NotProxied("a TCP port declared as `udp`, which Istio does not proxy".to_string()),
        Some(p) => Treatment::Declared(p),
        None if WELL_KNOWN_TCP.iter().any(|(n, _)| *n == port.port) => Treatment::WellKnownTcp,
        None => Treatment::Unknown(why_unknown),
    }
}

fn port_label(port: &ServicePort) -> String {
    match &port.name {
        Some(name) if !name.is_empty() => format!("port {} (`{name}`)", port.port),
        _ => format!("port {}", port.port),
    }
}

/// The pod port a Service port targets in one pod template (`None`: a named port the template
/// does not declare).
fn target_port(port: &ServicePort, w: &Workload<'_>) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => w
            .spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

struct Svc<'a> {
    object: &'a Object,
    selector: Option<Selector>,
    ports: Vec<ServicePort>,
}

impl ServicePorts {
    fn conflicts(&self, services: &[Svc<'_>], inventory: &Inventory, scope: &Scope, out: &mut Vec<Finding>) {
        let mut by_namespace: BTreeMap<Option<&str>, Vec<&Svc<'_>>> = BTreeMap::new();
        for s in services.iter().filter(|s| s.selector.is_some()) {
            by_namespace.entry(s.object.namespace.as_deref()).or_default().push(s);
        }
        for w in workloads(inventory, scope) {
            let Some(candidates) = by_namespace.get(&w.object.namespace.as_deref()) else { continue };
            let labels = w.labels();
            // pod port -> (class -> declarations)
            let mut by_port: BTreeMap<i32, BTreeMap<&'static str, BTreeSet<String>>> = BTreeMap::new();
            let selecting = candidates.iter().filter(|s| s.selector.as_ref().is_some_and(|sel| sel.matches(&labels)));
            for s in selecting {
                for port in &s.ports {
                    let Treatment::Declared(p) = treatment(port) else { continue };
                    let Some(target) = target_port(port, &w) else { continue };
                    by_port.entry(target).or_default().entry(protocol_class(p)).or_default().insert(format!(
                        "`{p}` by {} {}",
                        s.object.object_ref(),
                        port_label(port)
                    ));
                }
            }
            for (pod_port, classes) in by_port.into_iter().filter(|(_, c)| c.len() > 1) {
                let all: Vec<String> = classes.into_values().flatten().collect();
                out.push(
                    Finding::new(
                        &CODE_PROTOCOL_CONFLICT,
                        format!(
                            "pod port {pod_port} is declared {}; Istio configures one inbound protocol per pod port",
                            join_and(&all)
                        ),
                    )
                    .on(w.object),
                );
            }
        }
    }
}

impl Analyzer for ServicePorts {
    fn name(&self) -> &'static str {
        "service-ports"
    }

    fn requires(&self) -> &'static [&'static Kind] {
        REQUIRES
    }

    fn uses(&self) -> &'static [&'static Kind] {
        WORKLOAD_KINDS
    }

    fn analyze(&self, inventory: &Inventory, out: &mut Vec<Finding>) {
        let scope = Scope::new(&self.0, inventory);
        let mut services = Vec::new();
        for o in inventory.of(&kinds::SERVICE).filter(|o| o.namespace.as_deref().is_some_and(|n| scope.contains(n))) {
            let Ok(svc) = o.typed::<Service>() else { continue };
            let spec = svc.spec.unwrap_or_default();
            let ports = spec.ports.unwrap_or_default();
            for port in &ports {
                match treatment(port) {
                    Treatment::NotProxied(why) => out.push(
                        Finding::new(
                            &CODE_NON_TCP_PORT,
                            format!(
                                "{} is {why}: its traffic bypasses the proxies (no mTLS, telemetry or policy)",
                                port_label(port)
                            ),
                        )
                        .on(o),
                    ),
                    Treatment::Unknown(why) => out.push(
                        Finding::new(
                            &CODE_PROTOCOL_UNDECLARED,
                            format!(
                                "{}: {why}; Istio will sniff for HTTP and otherwise treat the traffic as opaque TCP",
                                port_label(port)
                            ),
                        )
                        .on(o),
                    ),
                    Treatment::Declared(_) | Treatment::WellKnownTcp => {}
                }
            }
            // A Service without a selector manages no endpoints from pod labels.
            let selector = spec.selector.filter(|s| !s.is_empty()).map(|s| s.into_iter().collect::<Selector>());
            services.push(Svc { object: o, selector, ports });
        }
        self.conflicts(&services, inventory, &scope, out);
    }
}

#[cfg(test)]
mod tests {
    use super::istio_protocol;

    #[test]
    fn protocols_read_from_names_like_istio_does() {
        let cases = [
            ("http", Some("http")),
            ("http-web", Some("http")),
            ("HTTP-Web", Some("http")),
            ("http2", Some("http2")),
            ("grpc", Some("grpc")),
            ("grpc-web", Some("grpc-web")),
            ("grpc-web-api", Some("grpc-web")),
            ("grpc-api", Some("grpc")),
            ("tcp-db", Some("tcp")),
            ("tls", Some("tls")),
            ("https-admin", Some("https")),
            ("mongo", Some("mongo")),
            ("mysql-primary", Some("mysql")),
            ("redis", Some("redis")),
            ("udp-dns", Some("udp")),
            ("web", None),
            ("web-http", None),
            ("httpx", None),
            ("h2c", None),
            ("postgresql", None),
            ("", None),
            ("-http", None),
        ];
        for (name, want) in cases {
            assert_eq!(istio_protocol(name), want, "{name:?}");
        }
    }
}
