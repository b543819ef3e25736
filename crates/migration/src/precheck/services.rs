//! Service ports as Istio will read them.
//!
//! Which protocol Istio gives a port is decided by [`meshmove_istio::protocol::select`], the one
//! copy of istiod's `ConvertProtocol` (istio/istio `pkg/config/kube/conversion.go`; see that
//! module for the rule and its citations): `appProtocol` when set, with no fallback to the name;
//! else the port name `<protocol>[-<suffix>]`; the Kubernetes standard values
//! `kubernetes.io/h2c|ws|wss` are known. Anything else is "unsupported": Istio sniffs the first
//! bytes for HTTP and otherwise treats the connection as opaque TCP, which breaks server-first
//! protocols and loses L7 routing and metrics. The well-known server-first ports 25, 53, 3306 and
//! 27017 are exempt: Istio already treats them as TCP when undeclared. UDP and SCTP are never
//! proxied.
//!
//! A pod port also gets one inbound protocol, so two Services that select the same pods and
//! target the same port must agree on it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use meshmove_istio::protocol::{self, Protocol, Selection, Source};

use super::{PrecheckOptions, Scope, WORKLOAD_KINDS, join_and, workloads};
use meshmove_model::findings::{Analyzer, Finding};
use meshmove_model::inventory::{Inventory, Kind, Object, kinds};
use crate::catalog::*;

static REQUIRES: &[&Kind] = &[&kinds::SERVICE];

/// Service ports Istio cannot proxy or cannot classify, and conflicting declarations.
pub struct ServicePorts(pub PrecheckOptions);

/// How MM1032 groups the protocols Istio selects: declarations in one group get the same inbound
/// treatment (`grpc`, `grpc-web` and `http2` are all HTTP/2; `https` and `tls` are both passed
/// through as TLS). This groups [`Protocol`] values; which protocol a port has is Istio's rule,
/// decided by [`meshmove_istio::protocol`] only.
fn inbound_group(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP/1.1",
        Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb => "HTTP/2",
        Protocol::Https | Protocol::Tls => "TLS",
        other => other.as_str(),
    }
}

/// How Istio will treat one Service port.
enum Treatment {
    /// Not proxied at all; with the reason.
    NotProxied(String),
    /// Declared protocol, and the `appProtocol` that declared it (`None`: the name did).
    Declared(Protocol, Option<String>),
    /// Undeclared: sniffed, else TCP; with the reason.
    Unknown(String),
    /// Undeclared but on a well-known server-first port, which Istio treats as TCP.
    WellKnownTcp,
}

/// Istio's selection for a typed Service port.
fn selection(port: &ServicePort) -> Selection {
    protocol::select(&serde_json::to_value(port).unwrap_or_default())
}

fn treatment(port: &ServicePort) -> Treatment {
    let s = selection(port);
    let declared = s.declared.clone().unwrap_or_default();
    let field = match s.source {
        Source::AppProtocol => "appProtocol",
        _ => "name",
    };
    if !s.protocol.is_proxied() {
        return Treatment::NotProxied(match s.source {
            Source::ServiceProtocol => format!("protocol {declared}"),
            _ => format!("a TCP port declared as `{declared}` by its {field}, which Istio does not proxy"),
        });
    }
    if s.explicit {
        return Treatment::Declared(s.protocol, (s.source == Source::AppProtocol).then_some(declared));
    }
    if s.by_well_known_port() {
        return Treatment::WellKnownTcp;
    }
    Treatment::Unknown(match s.source {
        Source::AppProtocol => {
            // Istio reads only the appProtocol once it is set: a name that would have declared a
            // protocol is not consulted (`ConvertProtocol`, see meshmove_istio::protocol).
            let shadowed = match port.name.as_deref().and_then(protocol::known_protocol_name) {
                Some(p) => format!(", and Istio does not fall back to the name's {p}"),
                None => String::new(),
            };
            format!("appProtocol `{declared}` is not a protocol Istio knows{shadowed}")
        }
        Source::PortName => {
            format!("its name `{declared}` does not start with a protocol Istio knows and it has no appProtocol")
        }
        Source::Default | Source::ServiceProtocol => "it has no name and no appProtocol".to_string(),
    })
}

fn port_label(port: &ServicePort) -> String {
    match &port.name {
        Some(name) if !name.is_empty() => format!("port {} (`{name}`)", port.port),
        _ => format!("port {}", port.port),
    }
}

/// The pod port a Service port targets in one pod template (`None`: a named port the template
/// does not declare), by the one reading of `targetPort` ([`meshmove_model::service`]).
fn target_port(port: &ServicePort, container_ports: &[meshmove_model::workload::ContainerPort]) -> Option<u16> {
    meshmove_model::service::ServicePort::from_typed(port)?.pod_port(container_ports)
}

struct Svc<'a> {
    object: &'a Object,
    /// `spec.selector`; `None` when absent or empty (the Service selects no pod).
    selector: Option<BTreeMap<String, String>>,
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
            let container_ports = w.ports();
            // pod port -> (class -> declarations)
            let mut by_port: BTreeMap<u16, BTreeMap<&'static str, BTreeSet<String>>> = BTreeMap::new();
            let selecting = candidates.iter().filter(|s| meshmove_model::selector::service_selects(&s.object.value, &labels));
            for s in selecting {
                for port in &s.ports {
                    let Treatment::Declared(p, app_protocol) = treatment(port) else { continue };
                    let Some(target) = target_port(port, &container_ports) else { continue };
                    let via = app_protocol.map(|a| format!(" (appProtocol `{a}`)")).unwrap_or_default();
                    by_port.entry(target).or_default().entry(inbound_group(p)).or_default().insert(format!(
                        "{p} by {} {}{via}",
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
                    Treatment::Declared(..) | Treatment::WellKnownTcp => {}
                }
            }
            // A Service without a selector manages no endpoints from pod labels.
            let selector = spec.selector.filter(|s| !s.is_empty());
            services.push(Svc { object: o, selector, ports });
        }
        self.conflicts(&services, inventory, &scope, out);
    }
}

