//! Istio ambient mode: what ztunnel's HBONE tunnel does to the traffic NetworkPolicy sees.
//!
//! In ambient mode the istio-cni node agent sets up redirection *inside* a captured pod's network
//! namespace, and the node's ztunnel opens its sockets there ("in-pod" redirection: Istio,
//! "Ztunnel traffic redirection", <https://istio.io/latest/docs/ambient/architecture/traffic-redirection/>).
//! So packets leave a captured pod with the pod's own IP, and the CNI's NetworkPolicy
//! enforcement, which runs on the host outside the pod, sees pod addresses as usual.
//!
//! What changes is the port. Between two captured pods ztunnel carries each TCP connection as
//! HBONE (HTTP CONNECT over mutual TLS) to TCP port 15008 of the destination pod, where it is
//! handed back to the original destination port (Istio, "HBONE",
//! <https://istio.io/latest/docs/ambient/architecture/hbone/>, and "Ambient and Kubernetes
//! NetworkPolicy", <https://istio.io/latest/docs/ambient/usage/networkpolicy/>: a policy that
//! admits only the application port blocks the tunnel and must also admit 15008). The engine
//! therefore evaluates a connection from a captured pod to a captured pod this way:
//!
//! * **TCP, any port P:** allowed when the source's egress admits TCP 15008 to the destination
//!   and the destination's ingress admits TCP 15008 from the source, whatever P is: inside the
//!   tunnel every port of the pod is reachable, and NetworkPolicy never sees P. When 15008 is not
//!   admitted on both sides no TCP connection gets through, even where a rule admits P.
//! * **Other protocols:** ztunnel redirects TCP only, so UDP, SCTP and the rest follow the
//!   ordinary rules.
//!
//! A source that is not captured (no mesh, a sidecar, an address outside the cluster) connects
//! to P itself, and so does a captured source towards a destination that is not captured: the
//! ordinary rules apply. Who is captured is decided where the model is built, with Istio's own
//! rule ([`meshmove_istio::ambient_captured`], see [`crate::view`]).
//!
//! The engine answers what the network lets through. What ztunnel then admits inside the tunnel
//! (Istio `AuthorizationPolicy`, `PeerAuthentication`) is not modelled, nor traffic through
//! waypoint proxies or gateways (which open HBONE themselves, from their own address), nor
//! sidecars accepting HBONE from ambient pods.
//!
//! Kubelet probes: a captured pod's probes do not come from the node's address but are
//! source-NATed by the in-pod rules to the link-local [`AMBIENT_PROBE_SOURCE`] (same Istio
//! NetworkPolicy page, "Ambient, health probes, and Kubernetes NetworkPolicy"), so an
//! ingress-isolated ambient pod needs an `ipBlock` admitting that address on its probe ports
//! where the CNI enforces policy on it.

use std::net::{IpAddr, Ipv4Addr};

use super::connection::{Connection, PortRange, PortSet, Protocol};

/// The port ztunnel's HBONE listener has in every captured pod.
pub const HBONE_PORT: u16 = 15008;

/// The address a captured pod's kubelet probes come from.
pub const AMBIENT_PROBE_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 7, 127));

/// How a connection between two pods travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Path {
    /// To the destination port itself.
    Direct,
    /// TCP as HBONE to port 15008 of the destination (both pods captured by ambient).
    Hbone,
}

impl Path {
    /// The path of TCP traffic from a pod to a pod, by whether each is captured.
    pub fn between(src_captured: bool, dst_captured: bool) -> Path {
        if src_captured && dst_captured { Path::Hbone } else { Path::Direct }
    }
}

/// What gets through between two captured pods, given `direct`: the source's egress
/// intersected with the destination's ingress, both evaluated as NetworkPolicy does (the tunnel
/// is TCP to port 15008). Every TCP port when `direct` admits TCP 15008, no TCP port otherwise;
/// other protocols as `direct` says.
pub fn through_tunnel(direct: &Connection) -> Connection {
    let tunnel = direct.allows(Protocol::Tcp, HBONE_PORT);
    match direct {
        // `All` admits TCP 15008, and so every TCP port; nothing else changes.
        Connection::All => Connection::All,
        Connection::Ports(p) => {
            let others = p.ranges().iter().copied().filter(|r| r.protocol != Protocol::Tcp);
            let tcp = tunnel.then(|| PortRange::full(Protocol::Tcp));
            Connection::Ports(PortSet::from_ranges(others.chain(tcp)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterModel, Endpoint, Engine, EngineOptions, NamespaceInfo, PodInfo, Target, WorkloadKind, WorkloadRef};

    fn ports(r: &[(Protocol, u16, u16)]) -> Connection {
        Connection::Ports(PortSet::from_ranges(r.iter().map(|&(protocol, start, end)| PortRange { protocol, start, end })))
    }

    #[test]
    fn the_tunnel_opens_every_tcp_port_when_15008_is_admitted() {
        let direct = ports(&[(Protocol::Tcp, 15008, 15008), (Protocol::Udp, 53, 53)]);
        let through = through_tunnel(&direct);
        for port in [1, 5432, HBONE_PORT, u16::MAX] {
            assert!(through.allows(Protocol::Tcp, port), "TCP {port}");
        }
        assert!(through.allows(Protocol::Udp, 53));
        assert!(!through.allows(Protocol::Udp, 54), "other protocols keep their own rules");
        assert!(!through.allows(Protocol::Sctp, 5432));
    }

    #[test]
    fn without_15008_no_tcp_gets_through_even_the_admitted_port() {
        // Istio's example: a policy admitting only the application port blocks HBONE.
        let direct = ports(&[(Protocol::Tcp, 8080, 8080), (Protocol::Udp, 53, 53)]);
        let through = through_tunnel(&direct);
        assert!(!through.allows(Protocol::Tcp, 8080));
        assert_eq!(through, ports(&[(Protocol::Udp, 53, 53)]));
        assert!(through_tunnel(&Connection::none()).is_none());
        assert_eq!(through_tunnel(&Connection::All), Connection::All);
    }

    #[test]
    fn only_two_captured_pods_use_the_tunnel() {
        assert_eq!(Path::between(true, true), Path::Hbone);
        assert_eq!(Path::between(true, false), Path::Direct);
        assert_eq!(Path::between(false, true), Path::Direct);
        assert_eq!(Path::between(false, false), Path::Direct);
    }

    /// Istio's "Ambient and Kubernetes NetworkPolicy" example: `my-app` admits TCP 8080 only,
    /// which blocks the tunnel for ambient clients; admitting 15008 too lets them in on every
    /// port. A client outside the mesh is judged on the port itself either way.
    fn my_app(ports: &[u16]) -> Engine {
        let deploy = |name: &str| WorkloadRef::new(WorkloadKind::Deployment, "shop", name);
        let pod = |name: &str, ambient: bool| {
            PodInfo::new("shop", format!("{name}-1")).with_labels([("app.kubernetes.io/name", name)]).with_owner(deploy(name)).with_ambient(ambient)
        };
        let ports: Vec<serde_json::Value> = ports.iter().map(|p| serde_json::json!({"port": p, "protocol": "TCP"})).collect();
        let policy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "my-app-allow-ingress-web", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "my-app"}}, "ingress": [{"ports": ports}]}
        }))
        .unwrap();
        let model = ClusterModel {
            namespaces: vec![NamespaceInfo::new("shop", [("istio.io/dataplane-mode".to_string(), "ambient".to_string())].into())],
            pods: vec![
                pod("my-app", true).with_port(Some("http"), 8080, Protocol::Tcp).with_port(Some("admin"), 9901, Protocol::Tcp),
                pod("client", true),
                pod("legacy", false),
            ],
            policies: vec![policy],
            ..ClusterModel::default()
        };
        Engine::build(&model, EngineOptions::default()).unwrap()
    }

    fn id(e: &Engine, name: &str) -> crate::PodId {
        e.pod_id("shop", &format!("{name}-1")).unwrap()
    }

    #[test]
    fn istios_example_policy_blocks_the_tunnel_and_15008_opens_every_port() {
        let e = my_app(&[8080]);
        let (app, client, legacy) = (id(&e, "my-app"), id(&e, "client"), id(&e, "legacy"));
        assert!(!e.allowed(client, app).allows(Protocol::Tcp, 8080), "HBONE arrives on 15008, which is not admitted");
        assert!(e.allowed(legacy, app).allows(Protocol::Tcp, 8080), "plaintext from outside the mesh goes to 8080 itself");
        let x = e.explain(Target::Pod(client), Target::Pod(app), Protocol::Tcp, 8080).unwrap();
        assert!(!x.allowed);
        assert_eq!(x.path, Path::Hbone);
        assert!(x.verdict.starts_with("DENIED via HBONE 15008 (ambient) by ingress"), "{}", x.verdict);

        let e = my_app(&[8080, HBONE_PORT]);
        let (app, client, legacy) = (id(&e, "my-app"), id(&e, "client"), id(&e, "legacy"));
        for port in [8080, 9901, 5432] {
            assert!(e.allowed(client, app).allows(Protocol::Tcp, port), "TCP {port} through the tunnel");
        }
        assert!(!e.allowed(client, app).allows(Protocol::Udp, 8080), "the tunnel carries TCP only");
        assert!(!e.allowed(legacy, app).allows(Protocol::Tcp, 9901), "outside the mesh, 9901 is not admitted");
        let x = e.explain(Target::Pod(client), Target::Pod(app), Protocol::Tcp, 9901).unwrap();
        assert!(x.allowed);
        assert_eq!(x.verdict, "ALLOWED via HBONE 15008 (ambient): pod shop/client-1 -> pod shop/my-app-1 on TCP 9901");
        assert_eq!(serde_json::to_value(&x).unwrap()["path"], "hbone");
        assert!(x.note.as_deref().is_some_and(|n| n.contains("NetworkPolicy sees TCP 15008")));
        let x = e.explain(Target::Pod(legacy), Target::Pod(app), Protocol::Tcp, 9901).unwrap();
        assert_eq!((x.allowed, x.path), (false, Path::Direct));

        let reach = e.reach();
        let w = |name: &str| Endpoint::Workload(WorkloadRef::new(WorkloadKind::Deployment, "shop", name));
        assert!(reach.hbone(&w("client"), &w("my-app")));
        assert_eq!(reach.get(&w("client"), &w("my-app")), Some(&Connection::Ports(PortSet::from_ranges([PortRange::full(Protocol::Tcp)]))));
        assert!(!reach.hbone(&w("legacy"), &w("my-app")));
        let json = serde_json::to_value(&reach).unwrap();
        let marked: Vec<&serde_json::Value> = json.as_array().unwrap().iter().filter(|r| r.get("hbone").is_some()).collect();
        assert!(marked.iter().all(|r| r["hbone"] == true) && !marked.is_empty(), "only tunnelled rows carry the mark: {json}");
    }

    #[test]
    fn explain_names_the_ambient_probe_source() {
        let e = my_app(&[8080, HBONE_PORT]);
        let probe = ipnet::IpNet::from(AMBIENT_PROBE_SOURCE);
        let x = e.explain(Target::External(probe), Target::Pod(id(&e, "my-app")), Protocol::Tcp, 8080).unwrap();
        assert_eq!(x.path, Path::Direct);
        assert!(x.note.as_deref().is_some_and(|n| n.contains("169.254.7.127")), "{:?}", x.note);
        let x = e.explain(Target::External("10.9.9.9/32".parse().unwrap()), Target::Pod(id(&e, "my-app")), Protocol::Tcp, 8080).unwrap();
        assert!(x.note.is_none());
    }
}
