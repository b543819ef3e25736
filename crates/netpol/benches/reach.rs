//! Timing of the NetworkPolicy engine on a synthetic cluster: 10,000 pods in 1,000 workloads
//! over 50 namespaces, 1,000 NetworkPolicies of mixed shapes. Prints the time to build the
//! index and to compute all-pairs reachability by workload, and the result size.
//!
//! Run: `cargo bench -p meshmove-netpol --bench reach`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_netpol::{
    ClusterModel, Engine, EngineOptions, NamespaceInfo, PodInfo, Protocol, WorkloadKind,
    WorkloadRef,
};
use serde_json::{Value, json};

const NAMESPACES: usize = 50;
const WORKLOADS_PER_NS: usize = 20;
const PODS_PER_WORKLOAD: usize = 10;
const POLICIES_PER_NS: usize = 20;
const TIERS: [&str; 5] = ["web", "api", "db", "cache", "worker"];

/// Deterministic xorshift so every run measures the same cluster.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn ns_name(i: usize) -> String {
    format!("ns-{i:02}")
}

fn model() -> ClusterModel {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut namespaces = Vec::new();
    let mut pods = Vec::new();
    for n in 0..NAMESPACES {
        let ns = ns_name(n);
        namespaces.push(NamespaceInfo::new(
            &ns,
            [
                ("team".to_string(), format!("t{}", n % 5)),
                (
                    "env".to_string(),
                    if n % 2 == 0 { "prod" } else { "dev" }.to_string(),
                ),
            ]
            .into(),
        ));
        for w in 0..WORKLOADS_PER_NS {
            let tier = TIERS[w % TIERS.len()];
            let app = format!("{tier}-{w}");
            let kind = match w % 10 {
                2 | 7 => WorkloadKind::StatefulSet,
                9 if n % 3 == 0 => WorkloadKind::DaemonSet,
                _ => WorkloadKind::Deployment,
            };
            let owner = WorkloadRef::new(kind.clone(), &ns, &app);
            let hash = format!("{:08x}", rng.next() as u32);
            for p in 0..PODS_PER_WORKLOAD {
                let name = format!("{app}-{p}");
                let mut pod = PodInfo::new(&ns, &name)
                    .with_labels([
                        ("app".to_string(), app.clone()),
                        ("tier".to_string(), tier.to_string()),
                        ("version".to_string(), format!("v{}", w % 3)),
                    ])
                    .with_owner(owner.clone())
                    .with_ip(IpAddr::V4(Ipv4Addr::new(10, n as u8, w as u8, p as u8 + 1)));
                match kind {
                    WorkloadKind::StatefulSet => {
                        pod = pod
                            .with_labels([("statefulset.kubernetes.io/pod-name", name.as_str())]);
                    }
                    _ => {
                        pod = pod.with_labels([("pod-template-hash", hash.as_str())]);
                    }
                }
                pod = match tier {
                    "web" => pod.with_port(Some("http"), 8080, Protocol::Tcp),
                    "api" => pod.with_port(Some("http"), 9090, Protocol::Tcp).with_port(
                        Some("grpc"),
                        9091,
                        Protocol::Tcp,
                    ),
                    "db" if w % 2 == 0 => pod.with_port(Some("db"), 5432, Protocol::Tcp),
                    "db" => pod.with_port(Some("db"), 3306, Protocol::Tcp),
                    "cache" => pod.with_port(Some("redis"), 6379, Protocol::Tcp),
                    _ => pod,
                };
                pods.push(pod.with_port(Some("metrics"), 9100, Protocol::Tcp));
            }
        }
    }

    let mut policies = Vec::new();
    for n in 0..NAMESPACES {
        let ns = ns_name(n);
        let mut specs: Vec<(String, Value)> = Vec::new();
        if n % 5 != 4 {
            specs.push((
                "default-deny-ingress".into(),
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            ));
        }
        if n % 3 == 0 {
            specs.push((
                "default-deny-egress".into(),
                json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            ));
            specs.push((
                "allow-dns".into(),
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
            ));
            specs.push((
                "allow-egress-in-cluster".into(),
                json!({"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "web"]}]},
                       "policyTypes": ["Egress"],
                       "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": format!("t{}", n % 5)}}}]},
                                  {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
                                   "ports": [{"port": 443}]}]}),
            ));
        }
        specs.push((
            "allow-monitoring".into(),
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t0"}},
                                                              "podSelector": {"matchLabels": {"tier": "worker"}}}],
                                                   "ports": [{"port": "metrics"}]}]}),
        ));
        specs.push((
            "web-from-internet".into(),
            json!({"podSelector": {"matchLabels": {"tier": "web"}},
                   "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}},
                                         {"ipBlock": {"cidr": "::/0"}}],
                                "ports": [{"port": "http"}, {"port": 443}]}]}),
        ));
        while specs.len() < POLICIES_PER_NS {
            let w = rng.below(WORKLOADS_PER_NS);
            let tier = TIERS[w % TIERS.len()];
            let target = json!({"matchLabels": {"app": format!("{tier}-{w}")}});
            let other_team = format!("t{}", rng.below(5));
            let spec = match rng.below(8) {
                0 => {
                    json!({"podSelector": target, "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "api"}}}], "ports": [{"port": "db"}]}]})
                }
                1 => {
                    json!({"podSelector": target, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": other_team}}}]}]})
                }
                2 => json!({"podSelector": target, "ingress": [{"from": [
                        {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
                         "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "worker"]}]}}],
                     "ports": [{"port": 8000, "endPort": 9999}, {"port": 5432}]}]}),
                3 => {
                    let (b, hole) = (rng.below(NAMESPACES), rng.below(WORKLOADS_PER_NS));
                    json!({"podSelector": target, "ingress": [{"from": [{"ipBlock": {"cidr": format!("10.{b}.0.0/16"), "except": [format!("10.{b}.{hole}.0/24")]}}]}]})
                }
                4 => {
                    json!({"podSelector": {"matchExpressions": [{"key": "version", "operator": "Exists"}, {"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                            "ingress": [{"from": [{"podSelector": {}}]}]})
                }
                5 => json!({"podSelector": target, "policyTypes": ["Egress"],
                            "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"tier": "db"}}}], "ports": [{"port": "db"}]},
                                       {"to": [{"ipBlock": {"cidr": format!("203.0.{}.0/24", rng.below(256))}}], "ports": [{"port": 443}, {"port": 8443, "endPort": 8445}]}]}),
                6 => {
                    json!({"podSelector": target, "ingress": [{"ports": [{"port": "http"}, {"port": "grpc"}, {"protocol": "UDP"}]}]})
                }
                _ => json!({"podSelector": {"matchLabels": {"tier": tier}}, "ingress": [{"from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns_name(rng.below(NAMESPACES))}}},
                        {"podSelector": {"matchLabels": {"tier": "cache"}}}]}]}),
            };
            specs.push((format!("p{}", specs.len()), spec));
        }
        for (name, spec) in specs {
            let np: NetworkPolicy = serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}),
            )
            .expect("benchmark policies deserialize");
            policies.push(np);
        }
    }
    ClusterModel {
        namespaces,
        pods,
        policies,
        ..Default::default()
    }
}

fn main() {
    let model = model();
    println!(
        "cluster: {} namespaces, {} pods, {} NetworkPolicies",
        model.namespaces.len(),
        model.pods.len(),
        model.policies.len()
    );
    let mut best = (f64::MAX, f64::MAX);
    let mut summary = String::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let engine = Engine::build(black_box(&model), EngineOptions::default())
            .expect("benchmark policies are valid");
        let t1 = Instant::now();
        let reach = engine.reach();
        let t2 = Instant::now();
        let build_ms = (t1 - t0).as_secs_f64() * 1e3;
        let reach_ms = (t2 - t1).as_secs_f64() * 1e3;
        if build_ms + reach_ms < best.0 + best.1 {
            best = (build_ms, reach_ms);
        }
        let external = reach
            .iter()
            .filter(|e| {
                matches!(e.src, meshmove_netpol::Endpoint::External(_))
                    || matches!(e.dst, meshmove_netpol::Endpoint::External(_))
            })
            .count();
        summary = format!(
            "workloads: {}, equivalence classes: {}, reach entries: {} ({} with an external CIDR)",
            engine.workloads().len(),
            engine.class_count(),
            reach.len(),
            external
        );
        black_box(reach);
    }
    println!("{summary}");
    println!(
        "best of 3: index build {:.1} ms + reach {:.1} ms = {:.1} ms",
        best.0,
        best.1,
        best.0 + best.1
    );
}
