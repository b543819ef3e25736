//! The two ends of `explain`, written the way kubectl names objects.
//!
//! * `KIND/NAME`, in the namespace of `-n` (or the context's): `deployment/api`, `sts/pg`,
//!   `pod/api-7d9f-x`, `svc/postgres` (the first pod the Service selects), `cluster/orders-db`
//!   (a CloudNativePG cluster). kubectl's short names and plurals work, `deployments.apps` too.
//! * `KIND/NAMESPACE/NAME` for another namespace than the default one.
//! * `cidr:10.0.0.0/8` or `cidr:203.0.113.7` for addresses outside the cluster.
//!
//! A workload stands for one of its pods: the first by name among its live pods, or its pod
//! template when the input has no pods. Ports are `5432`, `5432/TCP`, `53/UDP`, or a container
//! port name of the destination (`postgres`, `metrics/TCP`).

use std::str::FromStr;

use ipnet::IpNet;

use meshmove_model::inventory::{Inventory, kinds};
use meshmove_netpol::{Engine, PodId, Protocol, Target, WorkloadKind, WorkloadRef};
use meshmove_model::workload::string_map;

/// One end as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Object { kind: ObjectKind, namespace: Option<String>, name: String },
    Cidr(IpNet),
}

/// The kinds an end can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    Workload(WorkloadKind),
    Pod,
    Service,
}

fn kind_of(word: &str) -> Option<ObjectKind> {
    let w = word.to_ascii_lowercase();
    let w = w.strip_suffix(".apps").or_else(|| w.strip_suffix(".batch")).or_else(|| w.strip_suffix(".postgresql.cnpg.io")).unwrap_or(&w);
    Some(match w {
        "deployment" | "deployments" | "deploy" => ObjectKind::Workload(WorkloadKind::Deployment),
        "statefulset" | "statefulsets" | "sts" => ObjectKind::Workload(WorkloadKind::StatefulSet),
        "daemonset" | "daemonsets" | "ds" => ObjectKind::Workload(WorkloadKind::DaemonSet),
        "replicaset" | "replicasets" | "rs" => ObjectKind::Workload(WorkloadKind::ReplicaSet),
        "job" | "jobs" => ObjectKind::Workload(WorkloadKind::Job),
        "cronjob" | "cronjobs" | "cj" => ObjectKind::Workload(WorkloadKind::CronJob),
        "cluster" | "clusters" => ObjectKind::Workload(WorkloadKind::Other("Cluster".into())),
        "pod" | "pods" | "po" => ObjectKind::Pod,
        "service" | "services" | "svc" => ObjectKind::Service,
        _ => return None,
    })
}

/// An end as written that is not one (`explain SRC DST`): the text and the form it should have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetSpecError {
    #[error("`{text}` is not an address or CIDR (like 10.0.0.0/8)")]
    Address { text: String },
    #[error("`{text}` is not KIND/NAME, KIND/NAMESPACE/NAME or cidr:ADDRESS")]
    Form { text: String },
    #[error("`{kind}` is not a kind explain knows: deployment, statefulset, daemonset, replicaset, job, cronjob, pod, service, cluster")]
    Kind { kind: String },
    #[error("`{text}` has an empty name or namespace")]
    EmptyName { text: String },
}

/// An end that names nothing the input holds a pod for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no pod {namespace}/{name} in the input")]
    NoPod { namespace: String, name: String },
    #[error("no Service {namespace}/{name} in the input")]
    NoService { namespace: String, name: String },
    /// A Service without `spec.selector` selects no pod (its endpoints are managed by hand).
    #[error("Service {namespace}/{name} has no selector, so it selects no pod")]
    NoSelector { namespace: String, name: String },
    /// A workload or Service (`of`: `Deployment/shop/api`, `Service/shop/api`) with no pod.
    #[error("{of} has no pod in the input")]
    NoPodOf { of: String },
}

/// A port as written that is not one, or names no port of the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error(transparent)]
    Protocol(#[from] meshmove_netpol::ProtocolParseError),
    #[error("port must be between 1 and 65535")]
    Zero,
    #[error("`{port}` is not a port number, and a named port needs a pod as destination")]
    NamedWithoutPod { port: String },
    #[error("pod {namespace}/{pod} has no container port named {port}")]
    NoSuchName { namespace: String, pod: String, port: String },
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    fn from_str(s: &str) -> Result<Self, TargetSpecError> {
        if let Some(addr) = s.strip_prefix("cidr:") {
            let net = addr
                .parse::<IpNet>()
                .or_else(|_| addr.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| TargetSpecError::Address { text: addr.to_string() })?;
            return Ok(TargetSpec::Cidr(net.trunc()));
        }
        let parts: Vec<&str> = s.split('/').collect();
        let (kind, namespace, name) = match parts.as_slice() {
            [kind, name] => (*kind, None, *name),
            [kind, ns, name] => (*kind, Some(ns.to_string()), *name),
            _ => return Err(TargetSpecError::Form { text: s.to_string() }),
        };
        let kind = kind_of(kind).ok_or_else(|| TargetSpecError::Kind { kind: kind.to_string() })?;
        if name.is_empty() || namespace.as_deref() == Some("") {
            return Err(TargetSpecError::EmptyName { text: s.to_string() });
        }
        Ok(TargetSpec::Object { kind, namespace, name: name.to_string() })
    }
}

/// An end resolved against an engine.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: Target,
    /// The workload the pod stands for (`None` for addresses and bare pods named directly).
    pub workload: Option<WorkloadRef>,
    /// How the end was chosen, for people: `pod shop/api-1 (1 of 3 pods of Deployment/shop/api)`.
    pub description: String,
}

impl TargetSpec {
    /// Find the pod (or address) this end stands for.
    pub fn resolve(&self, engine: &Engine, inventory: &Inventory, default_namespace: &str) -> Result<Resolved, ResolveError> {
        let (kind, namespace, name) = match self {
            TargetSpec::Cidr(net) => {
                return Ok(Resolved { target: Target::External(*net), workload: None, description: format!("addresses {net} outside the cluster") });
            }
            TargetSpec::Object { kind, namespace, name } => (kind, namespace.as_deref().unwrap_or(default_namespace), name),
        };
        match kind {
            ObjectKind::Pod => {
                let id = engine.pod_id(namespace, name).ok_or_else(|| ResolveError::NoPod { namespace: namespace.to_string(), name: name.clone() })?;
                let pod = engine.pod(id);
                let what = match &pod.owner {
                    Some(o) if pod.ips.is_empty() && o.name == pod.name => format!("pod template of {o}"),
                    Some(o) => format!("a pod of {o}"),
                    None => "a bare pod".to_string(),
                };
                Ok(Resolved { target: Target::Pod(id), workload: pod.owner.clone(), description: format!("pod {namespace}/{name} ({what})") })
            }
            ObjectKind::Workload(k) => {
                let w = WorkloadRef::new(k.clone(), namespace, name.as_str());
                let pods: Vec<PodId> = engine.pods().filter(|(_, p)| p.workload() == w).map(|(id, _)| id).collect();
                pick(engine, &pods, &w.to_string()).map(|(id, description)| Resolved { target: Target::Pod(id), workload: Some(w), description })
            }
            ObjectKind::Service => {
                let svc = inventory
                    .get(&kinds::SERVICE, Some(namespace), name)
                    .ok_or_else(|| ResolveError::NoService { namespace: namespace.to_string(), name: name.clone() })?;
                let selector = string_map(svc.value.pointer("/spec/selector"));
                if selector.is_empty() {
                    return Err(ResolveError::NoSelector { namespace: namespace.to_string(), name: name.clone() });
                }
                let pods: Vec<PodId> = engine
                    .pods()
                    .filter(|(_, p)| p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
                    .map(|(id, _)| id)
                    .collect();
                let (id, description) = pick(engine, &pods, &format!("Service/{namespace}/{name}"))?;
                Ok(Resolved { target: Target::Pod(id), workload: Some(engine.pod(id).workload()), description })
            }
        }
    }
}

/// The first pod by name, described with how many there were.
fn pick(engine: &Engine, pods: &[PodId], of: &str) -> Result<(PodId, String), ResolveError> {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| engine.pod(*a).name.cmp(&engine.pod(*b).name));
    let Some(&first) = sorted.first() else { return Err(ResolveError::NoPodOf { of: of.to_string() }) };
    let p = engine.pod(first);
    let template = p.ips.is_empty() && p.owner.as_ref().is_some_and(|o| o.name == p.name);
    let description = if template {
        format!("pod {}/{} (the pod template of {of})", p.namespace, p.name)
    } else {
        format!("pod {}/{} (1 of {} pods of {of})", p.namespace, p.name, sorted.len())
    };
    Ok((first, description))
}

/// A port as written: `5432`, `5432/TCP`, `53/udp`, `postgres`, `metrics/TCP`.
pub fn parse_port(s: &str, destination: Option<&meshmove_netpol::PodInfo>) -> Result<(u16, Protocol), PortError> {
    let (port, proto) = match s.split_once('/') {
        Some((p, proto)) => (p, Some(proto)),
        None => (s, None),
    };
    let protocol = match proto {
        None => None,
        Some(p) => Some(p.to_ascii_uppercase().parse::<Protocol>()?),
    };
    if let Ok(n) = port.parse::<u16>() {
        if n == 0 {
            return Err(PortError::Zero);
        }
        return Ok((n, protocol.unwrap_or(Protocol::Tcp)));
    }
    let Some(pod) = destination else { return Err(PortError::NamedWithoutPod { port: port.to_string() }) };
    pod.ports
        .iter()
        .find(|p| p.name.as_deref() == Some(port) && protocol.is_none_or(|proto| proto == p.protocol))
        .map(|p| (p.port, p.protocol))
        .ok_or_else(|| PortError::NoSuchName { namespace: pod.namespace.clone(), pod: pod.name.clone(), port: port.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_style_targets() {
        assert_eq!(
            "deploy/api".parse::<TargetSpec>().unwrap(),
            TargetSpec::Object { kind: ObjectKind::Workload(WorkloadKind::Deployment), namespace: None, name: "api".into() }
        );
        assert_eq!(
            "statefulsets.apps/data/pg".parse::<TargetSpec>().unwrap(),
            TargetSpec::Object { kind: ObjectKind::Workload(WorkloadKind::StatefulSet), namespace: Some("data".into()), name: "pg".into() }
        );
        assert_eq!("cidr:203.0.113.7".parse::<TargetSpec>().unwrap(), TargetSpec::Cidr("203.0.113.7/32".parse().unwrap()));
        assert_eq!("cidr:10.1.2.3/8".parse::<TargetSpec>().unwrap(), TargetSpec::Cidr("10.0.0.0/8".parse().unwrap()));
        let err = |s: &str| s.parse::<TargetSpec>().unwrap_err();
        assert_eq!(err("api"), TargetSpecError::Form { text: "api".into() });
        assert_eq!(err("widget/x"), TargetSpecError::Kind { kind: "widget".into() });
        assert_eq!(err("a/b/c/d"), TargetSpecError::Form { text: "a/b/c/d".into() });
        assert_eq!(err("cidr:nope"), TargetSpecError::Address { text: "nope".into() });
        assert_eq!(err("pod/"), TargetSpecError::EmptyName { text: "pod/".into() });
    }

    #[test]
    fn parses_ports_numbers_protocols_and_names() {
        let pod = meshmove_netpol::PodInfo::new("d", "pg").with_port(Some("postgres"), 5432, Protocol::Tcp);
        assert_eq!(parse_port("5432", None).unwrap(), (5432, Protocol::Tcp));
        assert_eq!(parse_port("53/udp", None).unwrap(), (53, Protocol::Udp));
        assert_eq!(parse_port("postgres", Some(&pod)).unwrap(), (5432, Protocol::Tcp));
        assert_eq!(
            parse_port("postgres/UDP", Some(&pod)),
            Err(PortError::NoSuchName { namespace: "d".into(), pod: "pg".into(), port: "postgres".into() })
        );
        assert_eq!(parse_port("0", None), Err(PortError::Zero));
        assert!(matches!(parse_port("5432/ICMP", None), Err(PortError::Protocol(_))));
        assert_eq!(parse_port("db", None), Err(PortError::NamedWithoutPod { port: "db".into() }));
    }
}
