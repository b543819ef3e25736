//! Table-driven tests of the NetworkPolicy semantics, one case per rule of the API reference,
//! plus explain, reach and error reporting.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::*;

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn deploy(ns: &str, name: &str) -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, ns, name)
}

/// Namespaces `shop` (team=shop), `data` (team=data), `ops` (team=ops, env=prod) and
/// `kube-system`; none carries `kubernetes.io/metadata.name`, the engine adds it.
fn namespaces() -> Vec<NamespaceInfo> {
    vec![
        NamespaceInfo {
            name: "shop".into(),
            labels: labels(&[("team", "shop")]),
        },
        NamespaceInfo {
            name: "data".into(),
            labels: labels(&[("team", "data")]),
        },
        NamespaceInfo {
            name: "ops".into(),
            labels: labels(&[("team", "ops"), ("env", "prod")]),
        },
        NamespaceInfo {
            name: "kube-system".into(),
            labels: BTreeMap::new(),
        },
    ]
}

fn pods() -> Vec<PodInfo> {
    vec![
        PodInfo::new("shop", "web-1")
            .with_labels([("app", "web"), ("tier", "frontend")])
            .with_owner(deploy("shop", "web"))
            .with_port(Some("http"), 8080, Protocol::Tcp)
            .with_ip(ip("10.0.1.1")),
        PodInfo::new("shop", "web-2")
            .with_labels([("app", "web"), ("tier", "frontend")])
            .with_owner(deploy("shop", "web"))
            .with_port(Some("http"), 8080, Protocol::Tcp)
            .with_ip(ip("10.0.1.2")),
        PodInfo::new("shop", "api-1")
            .with_labels([("app", "api"), ("tier", "backend")])
            .with_owner(deploy("shop", "api"))
            .with_port(Some("http"), 9090, Protocol::Tcp)
            .with_ip(ip("10.0.1.3")),
        PodInfo::new("data", "pg-0")
            .with_labels([("app", "pg"), ("tier", "db")])
            .with_owner(WorkloadRef::new(WorkloadKind::StatefulSet, "data", "pg"))
            .with_port(Some("postgres"), 5432, Protocol::Tcp)
            .with_port(Some("metrics"), 9187, Protocol::Tcp)
            .with_ip(ip("10.0.2.1")),
        PodInfo::new("data", "cache")
            .with_labels([("app", "redis")])
            .with_port(Some("redis"), 6379, Protocol::Tcp),
        PodInfo::new("ops", "prom")
            .with_labels([("app", "prometheus")])
            .with_owner(deploy("ops", "prom"))
            .with_ip(ip("10.0.3.1")),
        PodInfo::new("ops", "web")
            .with_labels([("app", "web")])
            .with_owner(deploy("ops", "web")),
        PodInfo::new("kube-system", "coredns-1")
            .with_labels([("k8s-app", "kube-dns")])
            .with_owner(deploy("kube-system", "coredns"))
            .with_port(Some("dns"), 53, Protocol::Udp)
            .with_port(Some("dns-tcp"), 53, Protocol::Tcp)
            .with_ip(ip("10.0.9.9")),
    ]
}

fn pol(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap()
}

fn engine_with(policies: Vec<NetworkPolicy>, options: EngineOptions) -> Engine {
    let model = ClusterModel {
        namespaces: namespaces(),
        pods: pods(),
        policies,
        ..Default::default()
    };
    Engine::build(&model, options).unwrap()
}

fn engine(policies: Vec<NetworkPolicy>) -> Engine {
    engine_with(policies, EngineOptions::default())
}

/// `ns/pod`, or `cidr:<prefix>` for an address range outside the cluster.
fn target(e: &Engine, s: &str) -> Target {
    match s.strip_prefix("cidr:") {
        Some(c) => Target::External(net(c)),
        None => {
            let (ns, name) = s.split_once('/').unwrap();
            Target::Pod(e.pod_id(ns, name).unwrap_or_else(|| panic!("no pod {s}")))
        }
    }
}

fn query(e: &Engine, src: &str, dst: &str) -> Connection {
    match (target(e, src), target(e, dst)) {
        (Target::Pod(s), Target::Pod(d)) => e.allowed(s, d),
        (Target::External(c), Target::Pod(d)) => e.allowed_from_cidr(c, d),
        (Target::Pod(s), Target::External(c)) => e.allowed_to_cidr(s, c),
        _ => panic!("external to external"),
    }
}

struct Case {
    name: &'static str,
    policies: Vec<NetworkPolicy>,
    /// (source, destination, expected `Connection` display)
    expect: &'static [(&'static str, &'static str, &'static str)],
}

const ALL: &str = "All connections";
const NONE: &str = "No connections";

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let e = engine(case.policies);
        for &(src, dst, want) in case.expect {
            let got = query(&e, src, dst).to_string();
            if got != want {
                failures.push(format!(
                    "[{}] {src} -> {dst}: want {want:?}, got {got:?}",
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn isolation_and_policy_types() {
    run(vec![
        Case {
            name: "no policy: every pod is non-isolated both ways",
            policies: vec![],
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("cidr:203.0.113.0/24", "data/pg-0", ALL),
                ("data/pg-0", "cidr:0.0.0.0/0", ALL),
            ],
        },
        Case {
            name: "policy with Ingress type and no ingress rules denies all ingress to selected pods",
            policies: vec![pol(
                "data",
                "deny",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", NONE),
                ("shop/web-1", "data/cache", NONE),
                ("data/cache", "data/pg-0", NONE),
                ("cidr:0.0.0.0/0", "data/pg-0", NONE),
                // egress is untouched, and so are other namespaces
                ("data/pg-0", "shop/web-1", ALL),
                ("ops/prom", "shop/web-1", ALL),
            ],
        },
        Case {
            name: "missing podSelector selects every pod in the namespace; empty policy isolates ingress",
            policies: vec![pol("data", "empty", json!({}))],
            expect: &[
                ("shop/web-1", "data/pg-0", NONE),
                ("shop/web-1", "data/cache", NONE),
                ("data/pg-0", "ops/prom", ALL),
            ],
        },
        Case {
            name: "policyTypes unset with egress rules: Ingress and Egress",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}},
                       "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "redis"}}}]}]}),
            )],
            expect: &[
                ("data/pg-0", "data/cache", ALL),
                ("data/pg-0", "shop/web-1", NONE),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "policyTypes unset with `egress: []`: Ingress only (API server checks len != 0)",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}}, "egress": []}),
            )],
            expect: &[
                ("data/pg-0", "shop/web-1", ALL),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "policyTypes [] is defaulted like a missing list",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}}, "policyTypes": [],
                       "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
            )],
            expect: &[
                ("data/pg-0", "shop/web-1", "UDP 53"),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "policyTypes [Egress] ignores ingress rules and does not isolate ingress",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}}, "policyTypes": ["Egress"],
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}],
                       "egress": [{}]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("data/pg-0", "shop/web-1", ALL),
            ],
        },
        Case {
            name: "policyTypes [Egress] without rules denies all egress",
            policies: vec![pol(
                "shop",
                "deny-egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", NONE),
                ("shop/web-1", "shop/web-2", NONE),
                ("shop/web-1", "cidr:8.8.8.8/32", NONE),
                ("data/pg-0", "shop/web-1", ALL),
            ],
        },
        Case {
            name: "a policy only selects pods of its own namespace",
            policies: vec![pol(
                "ops",
                "deny",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}),
            )],
            expect: &[
                ("data/pg-0", "ops/web", NONE),
                ("data/pg-0", "shop/web-1", ALL),
            ],
        },
        Case {
            name: "policies are additive: the union of all rules selecting the pod",
            policies: vec![
                pol(
                    "data",
                    "deny",
                    json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
                ),
                pol(
                    "data",
                    "from-shop",
                    json!({"podSelector": {"matchLabels": {"app": "pg"}},
                           "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}], "ports": [{"port": 5432}]}]}),
                ),
                pol(
                    "data",
                    "from-ops",
                    json!({"podSelector": {"matchLabels": {"tier": "db"}},
                           "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}], "ports": [{"port": 9187}]},
                                       {"from": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}], "ports": [{"port": 5433}]}]}),
                ),
            ],
            expect: &[
                ("shop/web-1", "data/pg-0", "TCP 5432-5433"),
                ("ops/prom", "data/pg-0", "TCP 9187"),
                ("shop/web-1", "data/cache", NONE),
            ],
        },
    ]);
}

#[test]
fn rules_without_from_or_ports() {
    run(vec![
        Case {
            name: "ingress [{}] allows everything, external sources included",
            policies: vec![pol(
                "data",
                "allow",
                json!({"podSelector": {}, "ingress": [{}]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("cidr:203.0.113.0/24", "data/pg-0", ALL),
            ],
        },
        Case {
            name: "empty from and empty ports lists match everything",
            policies: vec![pol(
                "data",
                "allow",
                json!({"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [{"from": [], "ports": []}]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("cidr:::/0", "data/pg-0", ALL),
            ],
        },
        Case {
            name: "ports without from: those ports from every source",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [{"ports": [{"port": 5432}]}]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", "TCP 5432"),
                ("cidr:198.51.100.7/32", "data/pg-0", "TCP 5432"),
                ("shop/web-1", "data/cache", ALL),
            ],
        },
    ]);
}

#[test]
fn peers() {
    let pg = |from: Value| {
        vec![pol(
            "data",
            "pg",
            json!({"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [{"from": from}]}),
        )]
    };
    run(vec![
        Case {
            name: "podSelector alone: pods of the policy's namespace only",
            policies: vec![pol(
                "shop",
                "api",
                json!({"podSelector": {"matchLabels": {"app": "api"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}),
            )],
            expect: &[
                ("shop/web-1", "shop/api-1", ALL),
                ("ops/web", "shop/api-1", NONE),
                ("cidr:0.0.0.0/0", "shop/api-1", NONE),
            ],
        },
        Case {
            name: "namespaceSelector alone: every pod of matching namespaces",
            policies: pg(json!([{"namespaceSelector": {"matchLabels": {"team": "shop"}}}])),
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("shop/api-1", "data/pg-0", ALL),
                ("ops/prom", "data/pg-0", NONE),
                ("data/cache", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "podSelector and namespaceSelector in one peer are ANDed",
            policies: pg(
                json!([{"namespaceSelector": {"matchLabels": {"team": "shop"}},
                                 "podSelector": {"matchLabels": {"app": "api"}}}]),
            ),
            expect: &[
                ("shop/api-1", "data/pg-0", ALL),
                ("shop/web-1", "data/pg-0", NONE),
                ("ops/web", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "separate peers are ORed",
            policies: pg(
                json!([{"namespaceSelector": {"matchLabels": {"team": "ops"}}},
                                {"podSelector": {"matchLabels": {"app": "redis"}}}]),
            ),
            expect: &[
                ("ops/prom", "data/pg-0", ALL),
                ("ops/web", "data/pg-0", ALL),
                ("data/cache", "data/pg-0", ALL),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "namespaceSelector {} selects all pods in all namespaces but no external address",
            policies: pg(json!([{"namespaceSelector": {}}])),
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("ops/prom", "data/pg-0", ALL),
                ("data/cache", "data/pg-0", ALL),
                ("cidr:0.0.0.0/0", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "podSelector {} alone selects all pods of the policy's namespace",
            policies: pg(json!([{"podSelector": {}}])),
            expect: &[
                ("data/cache", "data/pg-0", ALL),
                ("shop/web-1", "data/pg-0", NONE),
                ("cidr:0.0.0.0/0", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "the kubernetes.io/metadata.name label is added to namespaces that lack it",
            policies: pg(
                json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}]),
            ),
            expect: &[
                ("ops/prom", "data/pg-0", ALL),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "ipBlock with except, for sources outside the cluster",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}},
                       "ingress": [{"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}],
                                    "ports": [{"port": 5432}]}]}),
            )],
            expect: &[
                ("cidr:203.0.113.5/32", "data/pg-0", "TCP 5432"),
                ("cidr:203.0.113.200/32", "data/pg-0", NONE),
                ("cidr:203.0.113.128/25", "data/pg-0", NONE),
                // a range: some address in it is allowed
                ("cidr:203.0.113.0/24", "data/pg-0", "TCP 5432"),
                ("cidr:203.0.0.0/16", "data/pg-0", "TCP 5432"),
                ("cidr:198.51.100.0/24", "data/pg-0", NONE),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "ipBlock matches in-cluster pods by pod IP; pods without IP never match",
            policies: pg(json!([{"ipBlock": {"cidr": "10.0.1.0/24", "except": ["10.0.1.2/32"]}}])),
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("shop/web-2", "data/pg-0", NONE),
                ("shop/api-1", "data/pg-0", ALL),
                ("ops/web", "data/pg-0", NONE),
            ],
        },
    ]);
}

#[test]
fn ip_blocks_can_be_told_to_ignore_pod_ips() {
    let policies = vec![pol(
        "data",
        "pg",
        json!({"podSelector": {"matchLabels": {"app": "pg"}},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}),
    )];
    let e = engine_with(
        policies,
        EngineOptions {
            pod_ips_match_ip_blocks: false,
        },
    );
    assert_eq!(query(&e, "shop/web-1", "data/pg-0"), Connection::none());
    assert_eq!(
        query(&e, "cidr:10.200.0.0/16", "data/pg-0"),
        Connection::All
    );
    let reach = e.reach();
    let web = Endpoint::Workload(deploy("shop", "web"));
    let pg = Endpoint::Workload(WorkloadRef::new(WorkloadKind::StatefulSet, "data", "pg"));
    assert_eq!(reach.get(&web, &pg), None);
    assert_eq!(
        reach.get(&Endpoint::External(net("10.0.0.0/8")), &pg),
        Some(&Connection::All)
    );
}

#[test]
fn ports() {
    let pg_ports = |ports: Value| {
        vec![pol(
            "data",
            "pg",
            json!({"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [{"ports": ports}]}),
        )]
    };
    run(vec![
        Case {
            name: "protocol defaults to TCP",
            policies: pg_ports(json!([{"port": 5432}])),
            expect: &[("shop/web-1", "data/pg-0", "TCP 5432")],
        },
        Case {
            name: "TCP, UDP and SCTP are distinct",
            policies: pg_ports(
                json!([{"port": 5432, "protocol": "UDP"}, {"port": 7, "protocol": "SCTP"}]),
            ),
            expect: &[("shop/web-1", "data/pg-0", "UDP 5432,SCTP 7")],
        },
        Case {
            name: "endPort makes a range",
            policies: pg_ports(json!([{"port": 5000, "endPort": 5999}])),
            expect: &[("shop/web-1", "data/pg-0", "TCP 5000-5999")],
        },
        Case {
            name: "protocol without port: every port of that protocol",
            policies: pg_ports(json!([{"protocol": "UDP"}])),
            expect: &[("shop/web-1", "data/pg-0", "UDP 1-65535")],
        },
        Case {
            name: "named port resolves on the destination pod",
            policies: pg_ports(json!([{"port": "postgres"}])),
            expect: &[
                ("shop/web-1", "data/pg-0", "TCP 5432"),
                ("cidr:0.0.0.0/0", "data/pg-0", "TCP 5432"),
            ],
        },
        Case {
            name: "named port resolving to different numbers on different pods",
            policies: vec![pol(
                "shop",
                "http",
                json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}),
            )],
            expect: &[
                ("ops/prom", "shop/web-1", "TCP 8080"),
                ("ops/prom", "shop/api-1", "TCP 9090"),
            ],
        },
        Case {
            name: "named port absent on the destination pod matches nothing",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {}, "ingress": [{"ports": [{"port": "postgres"}]}]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", "TCP 5432"),
                ("shop/web-1", "data/cache", NONE),
            ],
        },
        Case {
            name: "named port needs the container port's protocol to match",
            policies: pg_ports(json!([{"port": "postgres", "protocol": "UDP"}])),
            expect: &[("shop/web-1", "data/pg-0", NONE)],
        },
        Case {
            name: "policy ports are pod ports, not Service ports",
            // A Service port 80 -> targetPort 5432 does not make port 80 rules reach 5432.
            policies: pg_ports(json!([{"port": 80}])),
            expect: &[("shop/web-1", "data/pg-0", "TCP 80")],
        },
        Case {
            name: "egress named port resolves on the peer pod and never on external addresses",
            policies: vec![pol(
                "shop",
                "web",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                       "egress": [{"ports": [{"port": "postgres"}, {"port": "http"}]}]}),
            )],
            expect: &[
                ("shop/web-1", "data/pg-0", "TCP 5432"),
                ("shop/web-1", "shop/api-1", "TCP 9090"),
                ("shop/web-1", "data/cache", NONE),
                ("shop/web-1", "cidr:8.8.8.8/32", NONE),
            ],
        },
        Case {
            name: "egress ipBlock with numeric port to external and excepted pod IPs",
            policies: vec![pol(
                "shop",
                "web",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                       "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}]}),
            )],
            expect: &[
                ("shop/web-1", "cidr:1.1.1.1/32", "TCP 443"),
                ("shop/web-1", "cidr:10.1.0.0/16", NONE),
                ("shop/web-1", "data/pg-0", NONE),
                ("shop/web-1", "cidr:::/0", NONE),
            ],
        },
        Case {
            name: "traffic needs both egress and ingress: their intersection",
            policies: vec![
                pol(
                    "shop",
                    "web",
                    json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                           "egress": [{"ports": [{"port": 5432}, {"port": 6379}, {"port": 9000, "endPort": 9200}]}]}),
                ),
                pol(
                    "data",
                    "pg",
                    json!({"podSelector": {"matchLabels": {"app": "pg"}},
                           "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 5432}, {"port": "metrics"}]}]}),
                ),
            ],
            expect: &[
                ("shop/web-1", "data/pg-0", "TCP 5432,TCP 9187"),
                (
                    "shop/web-1",
                    "data/cache",
                    "TCP 5432,TCP 6379,TCP 9000-9200",
                ),
                ("ops/prom", "data/pg-0", "TCP 5432,TCP 9187"),
                ("shop/api-1", "data/pg-0", "TCP 5432,TCP 9187"),
            ],
        },
    ]);
}

#[test]
fn selectors() {
    let pg_from = |pod_selector: Value| {
        vec![pol(
            "data",
            "pg",
            json!({"podSelector": {"matchLabels": {"app": "pg"}},
                   "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": pod_selector}]}]}),
        )]
    };
    run(vec![
        Case {
            name: "NotIn matches pods without the key",
            policies: pg_from(
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}]}),
            ),
            expect: &[
                ("shop/web-1", "data/pg-0", NONE),
                ("shop/api-1", "data/pg-0", ALL),
                ("ops/prom", "data/pg-0", ALL),
            ],
        },
        Case {
            name: "In requires the key",
            policies: pg_from(
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "backend"]}]}),
            ),
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("shop/api-1", "data/pg-0", ALL),
                ("ops/prom", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "Exists",
            policies: pg_from(json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("ops/prom", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "DoesNotExist",
            policies: pg_from(
                json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            ),
            expect: &[
                ("shop/web-1", "data/pg-0", NONE),
                ("ops/prom", "data/pg-0", ALL),
            ],
        },
        Case {
            name: "matchLabels AND matchExpressions",
            policies: pg_from(json!({"matchLabels": {"app": "web"},
                                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]})),
            expect: &[
                ("shop/web-1", "data/pg-0", ALL),
                ("ops/web", "data/pg-0", NONE),
                ("shop/api-1", "data/pg-0", NONE),
            ],
        },
        Case {
            name: "namespaceSelector with matchExpressions",
            policies: vec![pol(
                "data",
                "pg",
                json!({"podSelector": {"matchLabels": {"app": "pg"}},
                       "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "Exists"}]}}]}]}),
            )],
            expect: &[
                ("ops/prom", "data/pg-0", ALL),
                ("shop/web-1", "data/pg-0", NONE),
            ],
        },
    ]);
}

#[test]
fn invalid_policies_are_errors() {
    // (spec, expected error path)
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}),
            "spec.ingress[0].from[0]",
        ),
        (
            json!({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]}),
            "spec.egress[0].to[0]",
        ),
        (
            json!({"ingress": [{"from": [{}]}]}),
            "spec.ingress[0].from[0]",
        ),
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]}),
            "spec.ingress[0].from[0].ipBlock.except[0]",
        ),
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16"]}}]}]}),
            "spec.ingress[0].from[0].ipBlock.except[0]",
        ),
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["fd00::/64"]}}]}]}),
            "spec.ingress[0].from[0].ipBlock.except[0]",
        ),
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]}),
            "spec.ingress[0].from[0].ipBlock.cidr",
        ),
        (
            json!({"ingress": [{"from": [{"ipBlock": {"cidr": ""}}]}]}),
            "spec.ingress[0].from[0].ipBlock.cidr",
        ),
        (
            json!({"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}),
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            json!({"ingress": [{"ports": [{"endPort": 80}]}]}),
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 80, "endPort": 70000}]}]}),
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 0}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 65536}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"ingress": [{"ports": [{"port": "HTTP"}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"ingress": [{"ports": [{"port": "a--b"}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"ingress": [{"ports": [{"port": "8080"}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"ingress": [{"ports": [{"port": "a-very-long-port-name"}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 80, "protocol": "tcp"}]}]}),
            "spec.ingress[0].ports[0].protocol",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]}),
            "spec.ingress[0].ports[0].protocol",
        ),
        (
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}}),
            "spec.podSelector.matchExpressions[0].operator",
        ),
        (
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
            "spec.podSelector.matchExpressions[0].values",
        ),
        (
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}),
            "spec.podSelector.matchExpressions[0].values",
        ),
        (
            json!({"egress": [{"to": [{"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}}]}]}),
            "spec.egress[0].to[0].namespaceSelector.matchExpressions[0].operator",
        ),
        (
            json!({"ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}}]}]}),
            "spec.ingress[0].from[0].podSelector.matchExpressions[0].values",
        ),
        (
            json!({"policyTypes": ["Ingress", "Outbound"]}),
            "spec.policyTypes[1]",
        ),
        (
            json!({"policyTypes": ["Ingress", "Egress", "Ingress"]}),
            "spec.policyTypes",
        ),
        // Invalid content is reported even in a rule list the policy type ignores.
        (
            json!({"policyTypes": ["Egress"], "ingress": [{"from": [{}]}]}),
            "spec.ingress[0].from[0]",
        ),
    ];
    for (spec, path) in cases {
        let model = ClusterModel {
            namespaces: namespaces(),
            pods: pods(),
            policies: vec![pol("data", "bad", spec.clone())],
            ..Default::default()
        };
        match Engine::build(&model, EngineOptions::default()) {
            Err(NetpolError::InvalidPolicies(errs)) => {
                assert!(
                    errs.iter()
                        .any(|e| e.path == path && e.name == "bad" && e.namespace == "data"),
                    "{spec}: want {path}, got {errs:?}"
                );
            }
            Err(other) => panic!("{spec}: unexpected error {other}"),
            Ok(_) => panic!("{spec}: accepted an invalid policy"),
        }
    }
}

#[test]
fn lenient_build_leaves_invalid_policies_out_and_reports_them() {
    let policies = vec![
        pol(
            "data",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        pol(
            "data",
            "bad",
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}, "podSelector": {}}]}]}),
        ),
    ];
    let model = ClusterModel {
        namespaces: namespaces(),
        pods: pods(),
        policies,
        ..Default::default()
    };
    let (e, rejected) = Engine::build_lenient(&model, EngineOptions::default()).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].name, "bad");
    assert_eq!(e.rejected_policies(), rejected.as_slice());
    assert!(
        rejected[0]
            .to_string()
            .contains("may not specify both ipBlock and another peer")
    );
    assert_eq!(query(&e, "shop/web-1", "data/pg-0"), Connection::none());
    // Strict build refuses the same model.
    assert!(
        matches!(Engine::build(&model, EngineOptions::default()), Err(NetpolError::InvalidPolicies(v)) if v.len() == 1)
    );
}

#[test]
fn duplicates_are_errors() {
    let model = ClusterModel {
        namespaces: namespaces(),
        pods: pods(),
        policies: vec![pol("data", "p", json!({})), pol("data", "p", json!({}))],
        ..Default::default()
    };
    assert!(matches!(
        Engine::build(&model, EngineOptions::default()),
        Err(NetpolError::Duplicate {
            kind: "NetworkPolicy",
            ..
        })
    ));
    let mut pods = pods();
    pods.push(PodInfo::new("data", "cache"));
    let model = ClusterModel {
        namespaces: namespaces(),
        pods,
        policies: vec![],
        ..Default::default()
    };
    assert!(matches!(
        Engine::build(&model, EngineOptions::default()),
        Err(NetpolError::Duplicate { kind: "Pod", .. })
    ));
}

#[test]
fn namespaces_referenced_only_by_pods_get_the_name_label() {
    let model = ClusterModel {
        namespaces: vec![],
        pods: vec![
            PodInfo::new("lonely", "p").with_labels([("app", "x")]),
            PodInfo::new("other", "q"),
        ],
        policies: vec![pol(
            "lonely",
            "from-other",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]}]}),
        )],
        ..Default::default()
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    assert_eq!(
        e.namespace_labels("lonely")
            .unwrap()
            .get(NAMESPACE_NAME_LABEL)
            .map(String::as_str),
        Some("lonely")
    );
    assert_eq!(query(&e, "other/q", "lonely/p"), Connection::All);
}

#[test]
fn host_network_pods_are_out_of_scope() {
    let mut pods = pods();
    let mut node_agent =
        PodInfo::new("ops", "node-exporter").with_labels([("app", "node-exporter")]);
    node_agent.host_network = true;
    pods.push(node_agent);
    let model = ClusterModel {
        namespaces: namespaces(),
        pods,
        policies: vec![],
        ..Default::default()
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    assert_eq!(e.pod_id("ops", "node-exporter"), None);
    assert_eq!(e.out_of_scope_pods().len(), 1);
    assert!(!e.workloads().iter().any(|w| w.name == "node-exporter"));
}

#[test]
fn dns_access_with_real_and_assumed_dns_pods() {
    let deny_egress = pol(
        "shop",
        "deny-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let allow_dns = pol(
        "shop",
        "allow-dns",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    let web = |e: &Engine| e.pod_id("shop", "web-1").unwrap();

    let e = engine(vec![]);
    let d = e.dns_access(web(&e));
    assert!(d.udp && d.tcp && !d.assumed_standard_dns_pod);
    assert_eq!(d.dns_pods, vec![deploy("kube-system", "coredns")]);

    let e = engine(vec![deny_egress.clone()]);
    let d = e.dns_access(web(&e));
    assert!(!d.udp && !d.tcp && !d.can_resolve());

    let e = engine(vec![deny_egress.clone(), allow_dns.clone()]);
    let d = e.dns_access(web(&e));
    assert!(d.udp && !d.tcp && d.can_resolve());
    // Other namespaces are unaffected.
    assert!(e.dns_access(e.pod_id("data", "pg-0").unwrap()).tcp);

    // Without DNS pods in the model a standard CoreDNS pod is assumed.
    let model = ClusterModel {
        namespaces: namespaces(),
        pods: pods()
            .into_iter()
            .filter(|p| p.namespace != "kube-system")
            .collect(),
        policies: vec![deny_egress.clone()],
        ..Default::default()
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    let d = e.dns_access(web(&e));
    assert!(d.assumed_standard_dns_pod && !d.udp);
    let model = ClusterModel {
        policies: vec![deny_egress, allow_dns],
        ..model
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    let d = e.dns_access(web(&e));
    assert!(d.assumed_standard_dns_pod && d.udp && !d.tcp);
    // A named-port rule resolves on the assumed pod's standard port names.
    let named = pol(
        "shop",
        "dns-by-name",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "dns-tcp"}]}]}),
    );
    let model = ClusterModel {
        policies: vec![named],
        ..model
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    let d = e.dns_access(web(&e));
    assert!(d.tcp && !d.udp);
}

#[test]
fn isolation_queries() {
    let e = engine(vec![pol(
        "data",
        "pg",
        json!({"podSelector": {"matchLabels": {"app": "pg"}}, "policyTypes": ["Ingress", "Egress"]}),
    )]);
    let pg = e.pod_id("data", "pg-0").unwrap();
    let cache = e.pod_id("data", "cache").unwrap();
    assert!(e.is_isolated(pg, Direction::Ingress) && e.is_isolated(pg, Direction::Egress));
    assert!(!e.is_isolated(cache, Direction::Ingress));
    assert_eq!(
        e.selecting_policies(pg, Direction::Egress),
        vec![("data".to_string(), "pg".to_string())]
    );
    assert_eq!(e.ingress(cache, Target::Pod(pg)), Connection::All);
    assert_eq!(e.egress(pg, Target::Pod(cache)), Connection::none());
}

fn find_rule<'a>(side: &'a SideExplanation, policy: &str, index: usize) -> &'a RuleExplanation {
    let p = side
        .policies
        .iter()
        .find(|p| p.name == policy)
        .unwrap_or_else(|| panic!("policy {policy} not listed"));
    &p.rules[index]
}

#[test]
fn explain_reports_each_reason() {
    let e = engine(vec![
        pol(
            "data",
            "pg",
            json!({"podSelector": {"matchLabels": {"app": "pg"}},
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}},
                          {"podSelector": {"matchLabels": {"app": "api"}}},
                          {"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend"]}]}},
                          {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}],
                 "ports": [{"port": "postgres"}, {"port": "http"}, {"port": 9000, "endPort": 9100}, {"port": 5432, "protocol": "UDP"}]}
            ]}),
        ),
        pol(
            "shop",
            "web-egress",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 5432}]}]}),
        ),
    ]);
    let web = Target::Pod(e.pod_id("shop", "web-1").unwrap());
    let pg = Target::Pod(e.pod_id("data", "pg-0").unwrap());

    let x = e.explain(web, pg, Protocol::Tcp, 5432).unwrap();
    assert!(!x.allowed);
    assert!(x.egress.allowed && x.egress.isolated);
    assert!(x.ingress.isolated && !x.ingress.allowed);
    assert!(x.verdict.starts_with("DENIED by ingress"), "{}", x.verdict);
    let rule = find_rule(&x.ingress, "pg", 0);
    assert!(!rule.peer_matched && rule.port_matched);
    let peers = rule.peers.as_ref().unwrap();
    assert_eq!(
        peers[0].detail,
        PeerDetail::NamespaceSelectorMismatch {
            peer: "all pods in namespaces matching team=ops".into(),
            failed_requirement: "team=ops".into(),
            namespace: "shop".into(),
            namespace_labels: labels(&[("team", "shop"), (NAMESPACE_NAME_LABEL, "shop")]),
        }
    );
    assert_eq!(
        peers[1].detail,
        PeerDetail::OtherNamespace {
            peer: "pods matching app=api in namespace data".into(),
            policy_namespace: "data".into(),
            pod_namespace: "shop".into()
        }
    );
    assert_eq!(
        peers[2].detail,
        PeerDetail::PodSelectorMismatch {
            peer: "pods matching tier in (backend) in all namespaces".into(),
            failed_requirement: "tier in (backend)".into(),
            pod_labels: labels(&[("app", "web"), ("tier", "frontend")]),
        }
    );
    assert_eq!(
        peers[3].detail,
        PeerDetail::Excepted {
            peer: "ipBlock 10.0.0.0/16 except 10.0.1.0/24".into(),
            except: "10.0.1.0/24".into(),
            addresses: vec!["10.0.1.1".into()]
        }
    );
    let ports = rule.ports.as_ref().unwrap();
    assert_eq!(
        ports[0].detail,
        PortDetail::Matched {
            entry: "TCP postgres (= 5432)".into()
        }
    );
    assert_eq!(
        ports[1].detail,
        PortDetail::NamedPortNotFound {
            entry: "TCP http".into(),
            pod: "pod data/pg-0".into()
        }
    );
    assert_eq!(
        ports[2].detail,
        PortDetail::PortMismatch {
            entry: "TCP 9000-9100".into()
        }
    );
    assert_eq!(
        ports[3].detail,
        PortDetail::ProtocolMismatch {
            entry: "UDP 5432".into(),
            protocol: Protocol::Udp
        }
    );

    // api-1 matches the second and third peers; the egress side is not isolated.
    let api = Target::Pod(e.pod_id("shop", "api-1").unwrap());
    let x = e.explain(api, pg, Protocol::Tcp, 9050).unwrap();
    assert!(x.allowed, "{}", x.verdict);
    assert!(!x.egress.isolated && x.egress.summary.contains("not isolated"));
    let rule = find_rule(&x.ingress, "pg", 0);
    let matched: Vec<usize> = rule
        .peers
        .as_ref()
        .unwrap()
        .iter()
        .filter(|p| p.matched)
        .map(|p| p.index)
        .collect();
    assert_eq!(matched, vec![2]);

    // Named port resolving elsewhere: pg's "postgres" is 5432, not 5433.
    let x = e.explain(api, pg, Protocol::Tcp, 5433).unwrap();
    let rule = find_rule(&x.ingress, "pg", 0);
    assert_eq!(
        rule.ports.as_ref().unwrap()[0].detail,
        PortDetail::NamedPortResolvesElsewhere {
            entry: "TCP postgres".into(),
            resolved: vec![5432]
        }
    );
    assert!(!x.allowed);

    // Egress side denies a port the ingress side would accept.
    let x = e.explain(web, pg, Protocol::Tcp, 9050).unwrap();
    assert!(!x.egress.allowed && x.verdict.starts_with("DENIED"));
    let rule = find_rule(&x.egress, "web-egress", 0);
    assert!(rule.peers.is_none() && rule.peer_matched && !rule.port_matched);

    // External source: the egress side does not apply; ipBlock and selector peers explain themselves.
    let x = e
        .explain(
            Target::External(net("10.0.7.0/24")),
            pg,
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    assert!(!x.egress.applies && x.egress.allowed && x.allowed);
    let peers = find_rule(&x.ingress, "pg", 0).peers.clone().unwrap();
    assert_eq!(
        peers[0].detail,
        PeerDetail::NotAPod {
            peer: "all pods in namespaces matching team=ops".into()
        }
    );
    assert!(peers[3].matched);
    let x = e
        .explain(
            Target::External(net("192.168.0.0/24")),
            pg,
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    assert!(!x.allowed);
    assert!(matches!(
        &find_rule(&x.ingress, "pg", 0).peers.as_ref().unwrap()[3].detail,
        PeerDetail::OutsideCidr { .. }
    ));

    // A pod without IP against an ipBlock.
    let ops_web = Target::Pod(e.pod_id("ops", "web").unwrap());
    let x = e.explain(ops_web, pg, Protocol::Tcp, 5432).unwrap();
    let peers = find_rule(&x.ingress, "pg", 0).peers.clone().unwrap();
    assert!(peers[0].matched, "ops namespace matches team=ops");
    assert!(matches!(peers[3].detail, PeerDetail::NoPodIp { .. }));

    // Named egress port to an external address.
    let e2 = engine(vec![pol(
        "shop",
        "named",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "https"}]}]}),
    )]);
    let x = e2
        .explain(
            Target::Pod(e2.pod_id("shop", "web-1").unwrap()),
            Target::External(net("1.1.1.1/32")),
            Protocol::Tcp,
            443,
        )
        .unwrap();
    assert!(!x.allowed && !x.ingress.applies);
    assert_eq!(
        find_rule(&x.egress, "named", 0).ports.as_ref().unwrap()[0].detail,
        PortDetail::NamedPortExternal {
            entry: "TCP https".into()
        }
    );

    // A deny-only policy lists no rules.
    let e3 = engine(vec![pol(
        "data",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    )]);
    let x = e3
        .explain(
            web,
            Target::Pod(e3.pod_id("data", "pg-0").unwrap()),
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    assert!(!x.allowed && x.ingress.policies.len() == 1 && x.ingress.policies[0].rules.is_empty());
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(json["ingress"]["policies"][0]["name"], "deny");
    assert_eq!(
        json["src"],
        json!({"kind": "Pod", "namespace": "shop", "name": "web-1"})
    );

    // Bad queries.
    assert!(
        e.explain(
            Target::External(net("1.0.0.0/8")),
            Target::External(net("2.0.0.0/8")),
            Protocol::Tcp,
            1
        )
        .is_err()
    );
    assert!(e.explain(web, pg, Protocol::Tcp, 0).is_err());
}

#[test]
fn explain_json_is_structured() {
    let e = engine(vec![pol(
        "data",
        "pg",
        json!({"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "redis"}}}], "ports": [{"port": 5432}]}]}),
    )]);
    let web = Target::Pod(e.pod_id("shop", "web-1").unwrap());
    let pg = Target::Pod(e.pod_id("data", "pg-0").unwrap());
    let v = serde_json::to_value(e.explain(web, pg, Protocol::Tcp, 5432).unwrap()).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["protocol"], "TCP");
    let peer = &v["ingress"]["policies"][0]["rules"][0]["peers"][0];
    assert_eq!(peer["result"], "otherNamespace");
    assert_eq!(peer["policyNamespace"], "data");
    assert_eq!(peer["podNamespace"], "shop");
    assert_eq!(
        v["ingress"]["policies"][0]["rules"][0]["ports"][0]["result"],
        "matched"
    );
}

/// A small cluster whose full reach output is checked verbatim.
fn reach_fixture() -> Engine {
    let model = ClusterModel {
        namespaces: vec![
            NamespaceInfo::new("a", BTreeMap::new()),
            NamespaceInfo::new("b", BTreeMap::new()),
        ],
        pods: vec![
            PodInfo::new("a", "web-1")
                .with_labels([("app", "web")])
                .with_owner(deploy("a", "web")),
            PodInfo::new("a", "web-2")
                .with_labels([("app", "web")])
                .with_owner(deploy("a", "web")),
            PodInfo::new("b", "db-0")
                .with_labels([("app", "db")])
                .with_owner(WorkloadRef::new(WorkloadKind::StatefulSet, "b", "db"))
                .with_port(Some("postgres"), 5432, Protocol::Tcp),
        ],
        policies: vec![
            pol(
                "b",
                "db",
                json!({"podSelector": {"matchLabels": {"app": "db"}},
                       "ingress": [
                           {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}, "podSelector": {"matchLabels": {"app": "web"}}}],
                            "ports": [{"port": "postgres"}]},
                           {"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                            "ports": [{"port": 5432}, {"port": 6000, "endPort": 6001}]}]}),
            ),
            pol(
                "a",
                "web",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {}}]}]}),
            ),
        ],
        ..Default::default()
    };
    Engine::build(&model, EngineOptions::default()).unwrap()
}

#[test]
fn reach_output_is_grouped_sorted_and_shaped() {
    let e = reach_fixture();
    let reach = e.reach();
    let v = serde_json::to_value(&reach).unwrap();
    let rows = v.as_array().unwrap();
    let web = json!({"kind": "Deployment", "namespace": "a", "name": "web"});
    let db = json!({"kind": "StatefulSet", "namespace": "b", "name": "db"});
    let ext = |c: &str| json!({"kind": "External", "cidr": c});
    let db_ext = json!([{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6000, "endPort": 6001}]);
    let mut want = vec![
        json!({"src": web, "dst": web, "conn": "all"}),
        json!({"src": web, "dst": db, "conn": [{"protocol": "TCP", "port": 5432}]}),
        json!({"src": db, "dst": web, "conn": "all"}),
        json!({"src": db, "dst": ext("0.0.0.0/0"), "conn": "all"}),
        json!({"src": db, "dst": ext("::/0"), "conn": "all"}),
        json!({"src": ext("0.0.0.0/0"), "dst": web, "conn": "all"}),
    ];
    for c in [
        "192.168.0.0/24",
        "192.168.2.0/23",
        "192.168.4.0/22",
        "192.168.8.0/21",
        "192.168.16.0/20",
        "192.168.32.0/19",
        "192.168.64.0/18",
        "192.168.128.0/17",
    ] {
        want.push(json!({"src": ext(c), "dst": db, "conn": db_ext}));
    }
    want.push(json!({"src": ext("::/0"), "dst": web, "conn": "all"}));
    assert_eq!(rows, &want, "{}", serde_json::to_string_pretty(&v).unwrap());

    // Round trip through the owned entry type.
    let back: Vec<ReachEntry> = serde_json::from_value(v).unwrap();
    assert_eq!(back, reach.to_entries());
    let db_ep = Endpoint::Workload(WorkloadRef::new(WorkloadKind::StatefulSet, "b", "db"));
    assert_eq!(reach.get(&db_ep, &db_ep), None, "db does not admit itself");
    assert_eq!(reach.len(), 15);
    assert_eq!(e.class_count(), 2);
}

#[test]
fn reach_merges_pods_of_a_workload_by_union() {
    // Two pods of one Deployment with different IPs: only one is inside the ipBlock.
    let model = ClusterModel {
        namespaces: vec![],
        pods: vec![
            PodInfo::new("a", "c-1")
                .with_labels([("app", "c")])
                .with_owner(deploy("a", "c"))
                .with_ip(ip("10.1.0.1")),
            PodInfo::new("a", "c-2")
                .with_labels([("app", "c")])
                .with_owner(deploy("a", "c"))
                .with_ip(ip("10.2.0.1")),
            PodInfo::new("b", "s").with_labels([("app", "s")]),
        ],
        policies: vec![pol(
            "b",
            "s",
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"port": 80}]}]}),
        )],
        ..Default::default()
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    assert_eq!(e.class_count(), 3);
    let reach = e.reach();
    let c = Endpoint::Workload(deploy("a", "c"));
    let s = Endpoint::Workload(WorkloadRef::new(WorkloadKind::Pod, "b", "s"));
    assert_eq!(
        reach.get(&c, &s).map(ToString::to_string).as_deref(),
        Some("TCP 80")
    );
    assert_eq!(
        reach
            .get(&Endpoint::External(net("10.1.0.0/16")), &s)
            .map(ToString::to_string)
            .as_deref(),
        Some("TCP 80")
    );
    assert_eq!(reach.get(&Endpoint::External(net("0.0.0.0/0")), &s), None);
}

#[test]
fn equivalence_classes_ignore_labels_no_selector_mentions() {
    let mut pods = Vec::new();
    for i in 0..20 {
        pods.push(
            PodInfo::new("a", format!("db-{i}"))
                .with_labels([
                    ("app".to_string(), "db".to_string()),
                    (
                        "statefulset.kubernetes.io/pod-name".to_string(),
                        format!("db-{i}"),
                    ),
                ])
                .with_owner(WorkloadRef::new(WorkloadKind::StatefulSet, "a", "db"))
                .with_port(Some("pg"), 5432, Protocol::Tcp)
                .with_port(Some("unused"), 1234, Protocol::Tcp),
        );
    }
    let policies = vec![pol(
        "a",
        "db",
        json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"ports": [{"port": "pg"}]}]}),
    )];
    let e = Engine::build(
        &ClusterModel {
            namespaces: vec![],
            pods: pods.clone(),
            policies: policies.clone(),
            ..Default::default()
        },
        EngineOptions::default(),
    )
    .unwrap();
    assert_eq!(e.class_count(), 1);
    // Once a policy mentions the per-pod label, the pods split.
    let mut more = policies;
    more.push(pol("a", "one", json!({"podSelector": {"matchLabels": {"statefulset.kubernetes.io/pod-name": "db-0"}}, "policyTypes": ["Egress"]})));
    let e = Engine::build(
        &ClusterModel {
            namespaces: vec![],
            pods,
            policies: more,
            ..Default::default()
        },
        EngineOptions::default(),
    )
    .unwrap();
    assert_eq!(e.class_count(), 20);
    let db = Endpoint::Workload(WorkloadRef::new(WorkloadKind::StatefulSet, "a", "db"));
    assert_eq!(
        e.reach().get(&db, &db).map(ToString::to_string).as_deref(),
        Some("TCP 5432")
    );
}

#[test]
fn classes_keep_labels_that_only_peer_selectors_mention() {
    // No policy's podSelector mentions `role`; only a peer does. Pods differing in `role` must
    // still land in different classes.
    let model = ClusterModel {
        namespaces: vec![],
        pods: vec![
            PodInfo::new("a", "x")
                .with_labels([("role", "client")])
                .with_owner(deploy("a", "x")),
            PodInfo::new("a", "y")
                .with_labels([("role", "other")])
                .with_owner(deploy("a", "y")),
        ],
        policies: vec![pol(
            "a",
            "p",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        )],
        ..Default::default()
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    assert_eq!(e.class_count(), 2);
    let reach = e.reach();
    let (x, y) = (
        Endpoint::Workload(deploy("a", "x")),
        Endpoint::Workload(deploy("a", "y")),
    );
    assert_eq!(reach.get(&x, &y), Some(&Connection::All));
    assert_eq!(reach.get(&y, &x), None);
    // Likewise for port names only an egress rule mentions.
    let model = ClusterModel {
        namespaces: vec![],
        pods: vec![
            PodInfo::new("a", "c").with_labels([("app", "c")]),
            PodInfo::new("a", "s1")
                .with_labels([("app", "s")])
                .with_owner(deploy("a", "s"))
                .with_port(Some("web"), 8080, Protocol::Tcp),
            PodInfo::new("a", "s2")
                .with_labels([("app", "s")])
                .with_owner(deploy("a", "s"))
                .with_port(Some("web"), 8081, Protocol::Tcp),
        ],
        policies: vec![pol(
            "a",
            "c",
            json!({"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "web"}]}]}),
        )],
        ..Default::default()
    };
    let e = Engine::build(&model, EngineOptions::default()).unwrap();
    assert_eq!(e.class_count(), 3);
    let c = Endpoint::Workload(WorkloadRef::new(WorkloadKind::Pod, "a", "c"));
    assert_eq!(
        e.reach()
            .get(&c, &Endpoint::Workload(deploy("a", "s")))
            .map(ToString::to_string)
            .as_deref(),
        Some("TCP 8080-8081")
    );
}

#[test]
fn connection_display_for_the_cli() {
    let e = engine(vec![pol(
        "data",
        "pg",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 5432}, {"port": 53, "endPort": 54, "protocol": "UDP"}]}]}),
    )]);
    assert_eq!(
        query(&e, "shop/web-1", "data/pg-0").to_string(),
        "TCP 5432,UDP 53-54"
    );
    assert_eq!(Connection::All.to_string(), "All connections");
}
