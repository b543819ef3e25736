//! Which protocol Istio assigns to a Kubernetes Service port.
//!
//! The protocol decides everything Istio does with a port: L7 routing, retries and metrics for
//! HTTP-family protocols, opaque proxying for TCP-family ones, and protocol sniffing when nothing
//! usable is declared (which breaks server-first protocols). Precheck warns about ports Istio will
//! sniff or skip, and `enable`/`status` explain the choice, so the rule lives here once, in the
//! order istiod applies it (`ConvertProtocol` in istio/istio `pkg/config/kube/conversion.go`):
//!
//! 1. `protocol: UDP` wins over everything; `protocol: SCTP` is never proxied either.
//! 2. If `appProtocol` is set, it is the *only* declaration read: an unknown value does **not**
//!    fall back to the port name.
//! 3. Otherwise the port name, as `<protocol>` or `<protocol>-<suffix>`, case-insensitive.
//! 4. Nothing recognised: ports 25, 53, 3306 and 27017 become TCP, anything else is sniffed.

use std::fmt;

use serde_json::Value;

/// A port protocol as Istio models it (istio/istio `pkg/config/protocol/instance.go`), plus SCTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Plaintext HTTP/1.1.
    Http,
    /// Plaintext HTTP/2 (h2c).
    Http2,
    /// TLS from the sidecar's point of view: it does not decrypt, so this is proxied like `Tls`.
    Https,
    /// gRPC over plaintext HTTP/2.
    Grpc,
    /// gRPC-Web.
    GrpcWeb,
    /// Istio's `HTTP_PROXY` (meant for Sidecar egress listeners); reachable only via `appProtocol`.
    HttpProxy,
    /// Opaque TCP.
    Tcp,
    /// TLS with SNI.
    Tls,
    /// MongoDB.
    Mongo,
    /// MySQL.
    MySql,
    /// Redis.
    Redis,
    /// UDP: declared, but never proxied.
    Udp,
    /// SCTP (`protocol: SCTP`): never proxied.
    Sctp,
    /// Istio's `UnsupportedProtocol`: nothing usable declared, so the sidecar sniffs the first
    /// bytes (HTTP/1.1 or HTTP/2 if detected, else TCP).
    Unsupported,
}

impl Protocol {
    /// Istio's own spelling (`HTTP`, `GRPC-Web`, `UnsupportedProtocol`, ...); `SCTP` for SCTP.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Http2 => "HTTP2",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-Web",
            Protocol::HttpProxy => "HTTP_PROXY",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Mongo => "Mongo",
            Protocol::MySql => "MySQL",
            Protocol::Redis => "Redis",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Unsupported => "UnsupportedProtocol",
        }
    }

    /// Routed at L7 (HTTP, HTTP2, gRPC, gRPC-Web; and HTTP_PROXY, which Istio's `IsHTTP` also
    /// counts). Source: `Instance.IsHTTP` in istio/istio `pkg/config/protocol/instance.go`.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::HttpProxy | Protocol::Grpc | Protocol::GrpcWeb)
    }

    /// Proxied as a TCP stream without HTTP processing (TCP, HTTPS, TLS, Mongo, MySQL, Redis).
    /// Source: `Instance.IsTCP` in istio/istio `pkg/config/protocol/instance.go`.
    pub fn is_tcp_like(self) -> bool {
        matches!(
            self,
            Protocol::Tcp | Protocol::Https | Protocol::Tls | Protocol::Mongo | Protocol::MySql | Protocol::Redis
        )
    }

    /// Whether the sidecar sees this traffic at all. Its iptables rules redirect TCP only
    /// (istio/istio `tools/istio-iptables/pkg/capture/run.go`), and the "Protocol Selection"
    /// page says non-TCP protocols such as UDP are not proxied.
    pub fn is_proxied(self) -> bool {
        !matches!(self, Protocol::Udp | Protocol::Sctp)
    }

    /// Nothing usable was declared: the sidecar sniffs the protocol.
    pub fn is_sniffed(self) -> bool {
        self == Protocol::Unsupported
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which field of the Service port decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The Kubernetes `protocol` field (UDP or SCTP).
    ServiceProtocol,
    /// `appProtocol` was set; the port name was not consulted.
    AppProtocol,
    /// The port name (no `appProtocol`).
    PortName,
    /// Neither a name nor an `appProtocol`.
    Default,
}

/// The protocol Istio picks for one Service port, with enough context to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub protocol: Protocol,
    pub source: Source,
    /// `true` when the value read names a protocol Istio knows (or is UDP/SCTP). `false` means
    /// Istio fell back: to TCP on a well-known port, else to sniffing.
    pub explicit: bool,
    /// The value Istio read: the `appProtocol`, the port name or the Kubernetes protocol.
    pub declared: Option<String>,
    /// The Service port number, if present.
    pub port: Option<i64>,
}

impl Selection {
    /// Istio fell back to TCP because the port number is a well-known server-first port.
    pub fn by_well_known_port(&self) -> bool {
        !self.explicit && self.protocol == Protocol::Tcp
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let declared = self.declared.as_deref().unwrap_or_default();
        match (self.source, self.explicit) {
            (Source::ServiceProtocol, _) => return write!(f, "protocol {declared}, which Istio does not proxy"),
            (Source::AppProtocol, true) => return write!(f, "appProtocol `{declared}` selects {}", self.protocol),
            (Source::PortName, true) => return write!(f, "port name `{declared}` selects {}", self.protocol),
            (Source::AppProtocol, false) => write!(
                f,
                "appProtocol `{declared}` is not a protocol Istio knows (and Istio does not fall back to the port name)"
            )?,
            (Source::PortName, false) => {
                write!(f, "port name `{declared}` does not start with a protocol Istio knows")?
            }
            (Source::Default, _) => f.write_str("no name and no appProtocol")?,
        }
        match (self.by_well_known_port(), self.port) {
            (true, Some(n)) => write!(f, "; port {n} is a well-known server-first port, so Istio treats it as TCP"),
            _ => f.write_str("; Istio sniffs the traffic (HTTP if detected, else plain TCP)"),
        }
    }
}

/// Ports Istio treats as TCP when nothing usable is declared, because sniffing would break these
/// server-first protocols: SMTP, DNS, MySQL, MongoDB (`wellKnownPorts` in istio/istio
/// `pkg/config/kube/conversion.go`).
pub const WELL_KNOWN_TCP_PORTS: [i64; 4] = [25, 53, 3306, 27017];

/// The protocol Istio gives a Service `spec.ports[]` item.
pub fn port_protocol(port: &Value) -> Protocol {
    select(port).protocol
}

/// The protocol Istio gives a Service `spec.ports[]` item (fields `name`, `appProtocol`, `port`,
/// `protocol`), and why. Mirrors `ConvertProtocol` in istio/istio `pkg/config/kube/conversion.go`.
pub fn select(port: &Value) -> Selection {
    let text = |k: &str| port.get(k).and_then(Value::as_str);
    let number = port.get("port").and_then(Value::as_i64);
    let fixed = |protocol, declared: &str| Selection {
        protocol,
        source: Source::ServiceProtocol,
        explicit: true,
        declared: Some(declared.to_string()),
        port: number,
    };
    // The Kubernetes protocol is checked first; Istio has no SCTP case (it would read the name),
    // but SCTP is never redirected to the sidecar, so it is reported like UDP.
    match text("protocol") {
        Some("UDP") => return fixed(Protocol::Udp, "UDP"),
        Some("SCTP") => return fixed(Protocol::Sctp, "SCTP"),
        _ => {}
    }
    // An `appProtocol` that is present replaces the name entirely, even when Istio cannot parse
    // it (`name = *appProto` in ConvertProtocol): there is no fallback to the port name.
    let (source, declared, parsed) = match (text("appProtocol"), text("name").filter(|n| !n.is_empty())) {
        (Some(ap), _) => (Source::AppProtocol, Some(ap), known_app_protocol(ap)),
        (None, Some(name)) => (Source::PortName, Some(name), known_protocol_name(name)),
        (None, None) => (Source::Default, None, None),
    };
    let (protocol, explicit) = match parsed {
        Some(p) => (p, true),
        None if number.is_some_and(|n| WELL_KNOWN_TCP_PORTS.contains(&n)) => (Protocol::Tcp, false),
        None => (Protocol::Unsupported, false),
    };
    Selection { protocol, source, explicit, declared: declared.map(str::to_string), port: number }
}

/// The protocol a port *name* declares, if Istio knows it: `grpc-web` as a prefix first (it
/// contains a dash), then the part before the first `-`, case-insensitive. Unknown names
/// (including `h2c`, which Istio's parser does not know) give `None`.
/// Source: `ConvertProtocol` (istio/istio `pkg/config/kube/conversion.go`) and `Parse`
/// (istio/istio `pkg/config/protocol/instance.go`).
pub fn known_protocol_name(name: &str) -> Option<Protocol> {
    if name.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("grpc-web")) {
        return Some(Protocol::GrpcWeb);
    }
    let prefix = name.split('-').next().unwrap_or_default().to_ascii_lowercase();
    Some(match prefix.as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "grpc" => Protocol::Grpc,
        "http" => Protocol::Http,
        "http_proxy" => Protocol::HttpProxy,
        "http2" => Protocol::Http2,
        "https" => Protocol::Https,
        "tls" => Protocol::Tls,
        "mongo" => Protocol::Mongo,
        "redis" => Protocol::Redis,
        "mysql" => Protocol::MySql,
        _ => return None,
    })
}

/// The protocol an `appProtocol` value declares, if Istio knows it. The Kubernetes standard
/// values are matched exactly (case-sensitive, as Istio's `switch` does): `kubernetes.io/h2c` is
/// HTTP2, `kubernetes.io/ws` is HTTP and `kubernetes.io/wss` is HTTPS. Anything else is parsed
/// like a port name. Source: `ConvertProtocol` in istio/istio `pkg/config/kube/conversion.go`
/// (added by istio/istio#43988; documented gap: istio/istio#58833).
pub fn known_app_protocol(app_protocol: &str) -> Option<Protocol> {
    match app_protocol {
        "kubernetes.io/h2c" => Some(Protocol::Http2),
        "kubernetes.io/ws" => Some(Protocol::Http),
        "kubernetes.io/wss" => Some(Protocol::Https),
        other => known_protocol_name(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sel(port: Value) -> Selection {
        select(&port)
    }

    #[test]
    fn names_with_and_without_suffix() {
        assert_eq!(port_protocol(&json!({"name": "http-web", "port": 80})), Protocol::Http);
        assert_eq!(port_protocol(&json!({"name": "grpc", "port": 80})), Protocol::Grpc);
        assert_eq!(port_protocol(&json!({"name": "HTTP2-x", "port": 80})), Protocol::Http2);
        assert_eq!(port_protocol(&json!({"name": "tls-db", "port": 80})), Protocol::Tls);
        assert_eq!(port_protocol(&json!({"name": "mysql", "port": 80})), Protocol::MySql);
        // Only the part before the first dash counts; a protocol later in the name does not.
        assert_eq!(port_protocol(&json!({"name": "web-http", "port": 8080})), Protocol::Unsupported);
        assert_eq!(port_protocol(&json!({"name": "httpx", "port": 8080})), Protocol::Unsupported);
    }

    #[test]
    fn grpc_web_prefix_is_matched_before_splitting() {
        assert_eq!(port_protocol(&json!({"name": "grpc-web"})), Protocol::GrpcWeb);
        assert_eq!(port_protocol(&json!({"name": "GRPC-Web-api"})), Protocol::GrpcWeb);
        // A raw 8-character prefix check: even `grpc-website` is gRPC-Web.
        assert_eq!(port_protocol(&json!({"name": "grpc-website"})), Protocol::GrpcWeb);
        assert_eq!(port_protocol(&json!({"name": "grpcweb-x"})), Protocol::Unsupported);
    }

    #[test]
    fn h2c_is_not_a_name_istio_knows() {
        assert_eq!(known_protocol_name("h2c"), None);
        let s = sel(json!({"name": "h2c-x", "port": 8080}));
        assert_eq!((s.protocol, s.source, s.explicit), (Protocol::Unsupported, Source::PortName, false));
    }

    #[test]
    fn app_protocol_takes_precedence_over_the_name() {
        let s = sel(json!({"name": "http-web", "appProtocol": "https", "port": 443}));
        assert_eq!((s.protocol, s.source, s.explicit), (Protocol::Https, Source::AppProtocol, true));
        assert_eq!(port_protocol(&json!({"name": "x", "appProtocol": "GRPC"})), Protocol::Grpc);
        assert_eq!(port_protocol(&json!({"name": "x", "appProtocol": "grpc-web"})), Protocol::GrpcWeb);
    }

    #[test]
    fn unknown_app_protocol_does_not_fall_back_to_the_name() {
        let s = sel(json!({"name": "http-web", "appProtocol": "foo", "port": 8080}));
        assert_eq!((s.protocol, s.source, s.explicit), (Protocol::Unsupported, Source::AppProtocol, false));
        assert!(s.to_string().contains("appProtocol `foo` is not a protocol Istio knows"), "{s}");
        // Present but empty is still "set".
        assert_eq!(port_protocol(&json!({"name": "http", "appProtocol": ""})), Protocol::Unsupported);
        // null is absent.
        assert_eq!(port_protocol(&json!({"name": "http", "appProtocol": null})), Protocol::Http);
    }

    #[test]
    fn kubernetes_standard_app_protocols() {
        assert_eq!(port_protocol(&json!({"appProtocol": "kubernetes.io/h2c"})), Protocol::Http2);
        assert_eq!(port_protocol(&json!({"appProtocol": "kubernetes.io/ws"})), Protocol::Http);
        assert_eq!(port_protocol(&json!({"appProtocol": "kubernetes.io/wss"})), Protocol::Https);
        // Matched exactly, unlike the case-insensitive protocol names.
        assert_eq!(port_protocol(&json!({"appProtocol": "kubernetes.io/H2C"})), Protocol::Unsupported);
        // Only appProtocol knows them (a port name cannot contain `/` anyway).
        assert_eq!(known_protocol_name("kubernetes.io/h2c"), None);
    }

    #[test]
    fn udp_and_sctp_come_from_the_kubernetes_protocol_first() {
        let s = sel(json!({"name": "http", "appProtocol": "http", "protocol": "UDP", "port": 53}));
        assert_eq!((s.protocol, s.source, s.explicit), (Protocol::Udp, Source::ServiceProtocol, true));
        assert!(!s.protocol.is_proxied());
        assert_eq!(port_protocol(&json!({"name": "http", "protocol": "SCTP"})), Protocol::Sctp);
        // A TCP port *named* udp is declared UDP too.
        assert_eq!(port_protocol(&json!({"name": "udp-x", "protocol": "TCP"})), Protocol::Udp);
    }

    #[test]
    fn nothing_declared_is_sniffed_except_well_known_ports() {
        let s = sel(json!({"port": 8080}));
        assert_eq!((s.protocol, s.source, s.explicit), (Protocol::Unsupported, Source::Default, false));
        assert!(s.protocol.is_sniffed());
        assert!(s.to_string().starts_with("no name and no appProtocol"), "{s}");
        let s = sel(json!({"port": 3306, "name": "db"}));
        assert_eq!((s.protocol, s.explicit), (Protocol::Tcp, false));
        assert!(s.by_well_known_port());
        assert!(s.to_string().contains("port 3306 is a well-known"), "{s}");
        // The fallback also applies when an unknown appProtocol was read.
        assert_eq!(port_protocol(&json!({"port": 27017, "appProtocol": "mongodb"})), Protocol::Tcp);
        assert_eq!(port_protocol(&json!({"port": 25, "name": ""})), Protocol::Tcp);
    }

    #[test]
    fn classes() {
        for p in [Protocol::Http, Protocol::Http2, Protocol::Grpc, Protocol::GrpcWeb] {
            assert!(p.is_http() && !p.is_tcp_like(), "{p}");
        }
        for p in [Protocol::Tcp, Protocol::Https, Protocol::Tls, Protocol::Mongo, Protocol::MySql, Protocol::Redis] {
            assert!(p.is_tcp_like() && !p.is_http(), "{p}");
        }
        for p in [Protocol::Udp, Protocol::Sctp, Protocol::Unsupported] {
            assert!(!p.is_tcp_like() && !p.is_http(), "{p}");
        }
        assert_eq!(known_app_protocol("http_proxy"), Some(Protocol::HttpProxy));
        assert_eq!(Protocol::GrpcWeb.to_string(), "GRPC-Web");
    }
}
