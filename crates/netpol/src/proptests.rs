//! Property tests on random small clusters: monotonicity of isolation, the allow-all and
//! deny-all shapes, agreement of the class-based `reach` and `reach_into` with per-pod
//! `allowed`, and agreement of `explain` with `allowed`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const NAMESPACES: [&str; 3] = ["n0", "n1", "n2"];

/// Addresses probed for external traffic, chosen around the CIDRs the generator uses.
const PROBES: [&str; 9] = [
    "10.0.0.1",
    "10.0.1.1",
    "10.0.1.200",
    "10.5.0.0",
    "192.168.3.3",
    "192.168.1.9",
    "8.8.8.8",
    "::1",
    "fd00::1",
];

fn opt_label(
    key: &'static str,
    values: &'static [&'static str],
) -> impl Strategy<Value = Option<(String, String)>> {
    proptest::option::of(
        proptest::sample::select(values).prop_map(move |v| (key.to_string(), v.to_string())),
    )
}

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        opt_label("app", &["x", "y", "z"]),
        opt_label("tier", &["f", "b"]),
    )
        .prop_map(|(a, b)| a.into_iter().chain(b).collect())
}

fn ns_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        opt_label("env", &["prod", "dev"]),
        opt_label("team", &["a", "b"]),
    )
        .prop_map(|(a, b)| a.into_iter().chain(b).collect())
}

#[derive(Clone, Debug)]
struct GenPod {
    ns: usize,
    labels: BTreeMap<String, String>,
    owner: Option<usize>,
    ports: Vec<(Option<&'static str>, u16, Protocol)>,
    ip: Option<&'static str>,
    /// Captured by Istio ambient.
    ambient: bool,
}

fn gen_pod() -> impl Strategy<Value = GenPod> {
    let port = proptest::sample::select(vec![
        (Some("http"), 80, Protocol::Tcp),
        (Some("http"), 8080, Protocol::Tcp),
        (Some("dns"), 53, Protocol::Udp),
        (Some("db"), 5432, Protocol::Tcp),
        (Some("db"), 5432, Protocol::Udp),
        (None, 9000, Protocol::Tcp),
        (Some("hbone"), 15008, Protocol::Tcp),
    ]);
    (
        0..NAMESPACES.len(),
        label_set(),
        proptest::option::of(0usize..2),
        proptest::collection::vec(port, 0..3),
        proptest::option::of(proptest::sample::select(vec![
            "10.0.0.1",
            "10.0.1.1",
            "10.0.1.130",
            "10.0.2.1",
            "192.168.1.1",
            "fd00::2",
        ])),
        any::<bool>(),
    )
        .prop_map(|(ns, labels, owner, ports, ip, ambient)| GenPod {
            ns,
            labels,
            owner,
            ports,
            ip,
            ambient,
        })
}

fn gen_selector() -> impl Strategy<Value = Value> {
    let expr = (
        proptest::sample::select(vec!["app", "tier", "env", "team"]),
        proptest::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist"]),
        proptest::collection::btree_set(proptest::sample::select(vec!["x", "y", "f", "b", "prod", "a"]), 1..3),
    )
        .prop_map(|(key, op, values)| match op {
            "Exists" | "DoesNotExist" => json!({"key": key, "operator": op}),
            _ => json!({"key": key, "operator": op, "values": values.into_iter().collect::<Vec<_>>()}),
        });
    (
        proptest::option::of((
            proptest::sample::select(vec!["app", "tier", "env", "team"]),
            proptest::sample::select(vec!["x", "y", "f", "prod", "a"]),
        )),
        proptest::collection::vec(expr, 0..2),
    )
        .prop_map(|(ml, exprs)| {
            let mut s = serde_json::Map::new();
            if let Some((k, v)) = ml {
                s.insert("matchLabels".into(), json!({k: v}));
            }
            if !exprs.is_empty() {
                s.insert("matchExpressions".into(), Value::Array(exprs));
            }
            Value::Object(s)
        })
}

fn gen_peer() -> impl Strategy<Value = Value> {
    let block = proptest::sample::select(vec![
        json!({"cidr": "10.0.0.0/16"}),
        json!({"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}),
        json!({"cidr": "10.0.1.0/24", "except": ["10.0.1.128/25"]}),
        json!({"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.1.0/24"]}),
        json!({"cidr": "192.168.0.0/16"}),
        json!({"cidr": "::/0"}),
    ]);
    prop_oneof![
        gen_selector().prop_map(|s| json!({"podSelector": s})),
        gen_selector().prop_map(|s| json!({"namespaceSelector": s})),
        (gen_selector(), gen_selector())
            .prop_map(|(p, n)| json!({"podSelector": p, "namespaceSelector": n})),
        block.prop_map(|b| json!({"ipBlock": b})),
    ]
}

fn gen_port() -> impl Strategy<Value = Value> {
    let proto = proptest::option::of(proptest::sample::select(vec!["TCP", "UDP", "SCTP"]));
    let port = prop_oneof![
        Just(None),
        (
            proptest::sample::select(vec![53, 80, 443, 5432, 8080, 15008]),
            proptest::option::of(0i32..100)
        )
            .prop_map(|(p, e)| Some((json!(p), e.map(|e| p + e)))),
        proptest::sample::select(vec!["http", "dns", "db", "hbone"]).prop_map(|n| Some((json!(n), None))),
    ];
    (proto, port).prop_map(|(proto, port)| {
        let mut m = serde_json::Map::new();
        if let Some(p) = proto {
            m.insert("protocol".into(), json!(p));
        }
        if let Some((p, e)) = port {
            m.insert("port".into(), p);
            if let Some(e) = e {
                m.insert("endPort".into(), json!(e));
            }
        }
        Value::Object(m)
    })
}

fn gen_rules(peer_key: &'static str) -> impl Strategy<Value = Option<Vec<Value>>> {
    let rule = (
        proptest::option::of(proptest::collection::vec(gen_peer(), 0..3)),
        proptest::option::of(proptest::collection::vec(gen_port(), 0..3)),
    )
        .prop_map(move |(peers, ports)| {
            let mut m = serde_json::Map::new();
            if let Some(p) = peers {
                m.insert(peer_key.into(), Value::Array(p));
            }
            if let Some(p) = ports {
                m.insert("ports".into(), Value::Array(p));
            }
            Value::Object(m)
        });
    proptest::option::of(proptest::collection::vec(rule, 0..3))
}

/// (namespace index, spec)
fn gen_policy() -> impl Strategy<Value = (usize, Value)> {
    let types = proptest::sample::select(vec![
        None,
        Some(vec!["Ingress"]),
        Some(vec!["Egress"]),
        Some(vec!["Ingress", "Egress"]),
    ]);
    (
        0..NAMESPACES.len(),
        proptest::option::of(gen_selector()),
        types,
        gen_rules("from"),
        gen_rules("to"),
    )
        .prop_map(|(ns, sel, types, ingress, egress)| {
            let mut spec = serde_json::Map::new();
            if let Some(s) = sel {
                spec.insert("podSelector".into(), s);
            }
            if let Some(t) = types {
                spec.insert("policyTypes".into(), json!(t));
            }
            if let Some(i) = ingress {
                spec.insert("ingress".into(), Value::Array(i));
            }
            if let Some(e) = egress {
                spec.insert("egress".into(), Value::Array(e));
            }
            (ns, Value::Object(spec))
        })
}

#[derive(Clone, Debug)]
struct GenCluster {
    ns_labels: Vec<BTreeMap<String, String>>,
    pods: Vec<GenPod>,
    policies: Vec<(usize, Value)>,
}

fn gen_cluster() -> impl Strategy<Value = GenCluster> {
    (
        proptest::collection::vec(ns_labels(), NAMESPACES.len()),
        proptest::collection::vec(gen_pod(), 1..9),
        proptest::collection::vec(gen_policy(), 0..6),
    )
        .prop_map(|(ns_labels, pods, policies)| GenCluster {
            ns_labels,
            pods,
            policies,
        })
}

fn policy(ns: usize, name: &str, spec: &Value) -> NetworkPolicy {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": NAMESPACES[ns]}, "spec": spec}),
    )
    .unwrap()
}

fn model(c: &GenCluster, extra: &[(usize, Value)]) -> ClusterModel {
    let namespaces = NAMESPACES
        .iter()
        .zip(&c.ns_labels)
        .map(|(n, l)| NamespaceInfo::new(*n, l.clone()))
        .collect();
    let pods = c
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ns = NAMESPACES[p.ns];
            let mut info = PodInfo::new(ns, format!("pod{i}")).with_labels(p.labels.clone());
            if let Some(o) = p.owner {
                info = info.with_owner(WorkloadRef::new(
                    WorkloadKind::Deployment,
                    ns,
                    format!("w{o}"),
                ));
            }
            for (name, port, proto) in &p.ports {
                info = info.with_port(*name, *port, *proto);
            }
            if let Some(ip) = p.ip {
                info = info.with_ip(ip.parse().unwrap());
            }
            info.with_ambient(p.ambient)
        })
        .collect();
    let policies = c
        .policies
        .iter()
        .chain(extra)
        .enumerate()
        .map(|(i, (ns, spec))| policy(*ns, &format!("p{i}"), spec))
        .collect();
    ClusterModel {
        namespaces,
        pods,
        policies,
        ..Default::default()
    }
}

fn build(m: &ClusterModel, pod_ips: bool) -> Engine {
    Engine::build(
        m,
        EngineOptions {
            pod_ips_match_ip_blocks: pod_ips,
        },
    )
    .expect("generated policies are valid")
}

/// Every source a pod's ingress can see: all pods and the probe addresses.
fn sources(e: &Engine) -> Vec<Target> {
    e.pods()
        .map(|(id, _)| Target::Pod(id))
        .chain(
            PROBES
                .iter()
                .map(|p| Target::External(IpNet::from(p.parse::<IpAddr>().unwrap()))),
        )
        .collect()
}

fn union_all(it: impl Iterator<Item = Connection>) -> Connection {
    it.fold(Connection::none(), |a, b| a.union(&b))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Adding a policy: pods it does not select for ingress are unchanged; pods that were
    /// already isolated can only gain (policies are additive); pods it newly isolates can only
    /// lose (they go from "everything" to the union of the rules).
    #[test]
    fn adding_a_policy_is_monotone_for_ingress(c in gen_cluster(), extra in gen_policy(), pod_ips in any::<bool>()) {
        let before = build(&model(&c, &[]), pod_ips);
        let after = build(&model(&c, std::slice::from_ref(&extra)), pod_ips);
        for (d, _) in before.pods() {
            let was_isolated = before.is_isolated(d, Direction::Ingress);
            let selected_by_new = after.selecting_policies(d, Direction::Ingress).len()
                > before.selecting_policies(d, Direction::Ingress).len();
            for s in sources(&before) {
                let b = before.ingress(d, s);
                let a = after.ingress(d, s);
                if !selected_by_new {
                    prop_assert_eq!(&a, &b);
                } else if was_isolated {
                    prop_assert!(b.is_subset(&a), "isolated pod lost traffic: {} -> {}", b, a);
                } else {
                    prop_assert!(a.is_subset(&b));
                    prop_assert_eq!(&b, &Connection::All);
                }
            }
        }
    }

    /// `podSelector: {}` + `ingress: [{}]` opens every pod of its namespace to every source.
    #[test]
    fn allow_all_ingress_allows_everything(c in gen_cluster(), ns in 0..NAMESPACES.len(), pod_ips in any::<bool>()) {
        let e = build(&model(&c, &[(ns, json!({"podSelector": {}, "ingress": [{}]}))]), pod_ips);
        for (d, info) in e.pods() {
            if info.namespace != NAMESPACES[ns] { continue; }
            for s in sources(&e) {
                prop_assert_eq!(e.ingress(d, s), Connection::All);
            }
        }
    }

    /// `podSelector: {}` + `policyTypes: [Ingress]` admits nothing by itself: with no other
    /// ingress policy in the namespace nothing gets in; alongside others it adds nothing.
    #[test]
    fn deny_all_ingress_allows_nothing(c in gen_cluster(), ns in 0..NAMESPACES.len(), pod_ips in any::<bool>()) {
        let deny = (ns, json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
        let mut alone = c.clone();
        alone.policies.retain(|(pns, _)| *pns != ns);
        let e = build(&model(&alone, std::slice::from_ref(&deny)), pod_ips);
        for (d, info) in e.pods() {
            if info.namespace != NAMESPACES[ns] { continue; }
            for s in sources(&e) {
                prop_assert!(e.ingress(d, s).is_none());
            }
        }
        let before = build(&model(&c, &[]), pod_ips);
        let after = build(&model(&c, &[deny]), pod_ips);
        for (d, info) in before.pods() {
            if info.namespace != NAMESPACES[ns] { continue; }
            let was_isolated = before.is_isolated(d, Direction::Ingress);
            for s in sources(&before) {
                let want = if was_isolated { before.ingress(d, s) } else { Connection::none() };
                prop_assert_eq!(after.ingress(d, s), want);
            }
        }
    }

    /// The class-based all-pairs result equals the union of per-pod answers, for workload
    /// pairs and for external CIDRs (probed by address and checked per emitted CIDR).
    #[test]
    fn reach_agrees_with_pairwise_allowed(c in gen_cluster(), pod_ips in any::<bool>()) {
        let e = build(&model(&c, &[]), pod_ips);
        let reach = e.reach();
        let by_workload: BTreeMap<WorkloadRef, Vec<PodId>> = e.pods().fold(BTreeMap::new(), |mut m, (id, p)| {
            m.entry(p.workload()).or_default().push(id);
            m
        });
        for (ws, src_pods) in &by_workload {
            for (wd, dst_pods) in &by_workload {
                let want = union_all(src_pods.iter().flat_map(|&s| dst_pods.iter().map(move |&d| (s, d))).map(|(s, d)| e.allowed(s, d)));
                let got = reach.get(&Endpoint::Workload(ws.clone()), &Endpoint::Workload(wd.clone()));
                prop_assert_eq!(got.cloned().unwrap_or_default(), want.clone(), "{} -> {}", ws, wd);
                prop_assert!(got.is_none_or(|g| !g.is_none()), "empty entries are not listed");
            }
        }
        for (w, pods) in &by_workload {
            let ep = Endpoint::Workload(w.clone());
            for probe in PROBES {
                let addr = IpNet::from(probe.parse::<IpAddr>().unwrap());
                let find = |inbound: bool| {
                    let hits: Vec<&Connection> = reach
                        .iter()
                        .filter(|r| if inbound { r.dst == &ep } else { r.src == &ep })
                        .filter_map(|r| match (inbound, r.src, r.dst) {
                            (true, Endpoint::External(n), _) | (false, _, Endpoint::External(n)) if n.contains(&addr) => Some(r.conn),
                            _ => None,
                        })
                        .collect();
                    hits
                };
                let inbound = find(true);
                let outbound = find(false);
                prop_assert!(inbound.len() <= 1 && outbound.len() <= 1, "external CIDRs of one workload overlap");
                let want_in = union_all(pods.iter().map(|&p| e.allowed_from_cidr(addr, p)));
                let want_out = union_all(pods.iter().map(|&p| e.allowed_to_cidr(p, addr)));
                prop_assert_eq!(inbound.first().map(|c| (*c).clone()).unwrap_or_default(), want_in, "{} -> {}", probe, w);
                prop_assert_eq!(outbound.first().map(|c| (*c).clone()).unwrap_or_default(), want_out, "{} -> {}", w, probe);
            }
        }
        for r in reach.iter() {
            match (r.src, r.dst) {
                (Endpoint::External(n), Endpoint::Workload(w)) => {
                    let want = union_all(by_workload[w].iter().map(|&p| e.allowed_from_cidr(*n, p)));
                    prop_assert_eq!(r.conn, &want, "{} -> {}", n, w);
                }
                (Endpoint::Workload(w), Endpoint::External(n)) => {
                    let want = union_all(by_workload[w].iter().map(|&p| e.allowed_to_cidr(p, *n)));
                    prop_assert_eq!(r.conn, &want, "{} -> {}", w, n);
                }
                (Endpoint::Workload(_), Endpoint::Workload(_)) => {}
                (Endpoint::External(_), Endpoint::External(_)) => prop_assert!(false, "external to external entry"),
            }
        }
        let keys: Vec<(&Endpoint, &Endpoint)> = reach.iter().map(|r| (r.src, r.dst)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(keys, sorted, "entries are sorted and unique");
    }

    /// `reach_into` evaluates pairs by class and only for the source classes a destination's
    /// ingress rules can admit; for the destinations it is asked about it must give exactly the
    /// union of the per-pod answers (from every workload and every probed address), and nothing
    /// about other destinations or traffic leaving the cluster.
    #[test]
    fn reach_into_agrees_with_pairwise_allowed(c in gen_cluster(), pod_ips in any::<bool>(), pick in any::<u64>()) {
        let e = build(&model(&c, &[]), pod_ips);
        let wanted: Vec<WorkloadRef> = e.workloads().iter().enumerate().filter(|(i, _)| pick >> (i % 64) & 1 == 1).map(|(_, w)| w.clone()).collect();
        let reach = e.reach_into(|w| wanted.contains(w));
        let by_workload: BTreeMap<WorkloadRef, Vec<PodId>> = e.pods().fold(BTreeMap::new(), |mut m, (id, p)| {
            m.entry(p.workload()).or_default().push(id);
            m
        });
        for r in reach.iter() {
            prop_assert!(matches!(r.dst, Endpoint::Workload(w) if wanted.contains(w)), "entry to {} was not asked for", r.dst);
            prop_assert!(!r.conn.is_none(), "empty entries are not listed");
        }
        for wd in &wanted {
            let dst_pods = &by_workload[wd];
            let dst = Endpoint::Workload(wd.clone());
            for (ws, src_pods) in &by_workload {
                let want = union_all(src_pods.iter().flat_map(|&s| dst_pods.iter().map(move |&d| (s, d))).map(|(s, d)| e.allowed(s, d)));
                let got = reach.get(&Endpoint::Workload(ws.clone()), &dst);
                prop_assert_eq!(got.cloned().unwrap_or_default(), want, "{} -> {}", ws, wd);
            }
            for probe in PROBES {
                let addr = IpNet::from(probe.parse::<IpAddr>().unwrap());
                let got: Vec<&Connection> = reach
                    .iter()
                    .filter(|r| r.dst == &dst && matches!(r.src, Endpoint::External(n) if n.contains(&addr)))
                    .map(|r| r.conn)
                    .collect();
                prop_assert!(got.len() <= 1, "external CIDRs of one workload overlap");
                let want = union_all(dst_pods.iter().map(|&p| e.allowed_from_cidr(addr, p)));
                prop_assert_eq!(got.first().map(|c| (*c).clone()).unwrap_or_default(), want, "{} -> {}", probe, wd);
            }
        }
    }

    /// `explain`'s verdict is `allowed()` evaluated at one port; each side is that side's
    /// allowance at the port NetworkPolicy sees (15008 through the HBONE tunnel).
    #[test]
    fn explain_agrees_with_allowed(
        c in gen_cluster(),
        pod_ips in any::<bool>(),
        proto in proptest::sample::select(Protocol::ALL.to_vec()),
        port in proptest::sample::select(vec![53u16, 80, 443, 5432, 5433, 8080, 9000, 15008]),
    ) {
        let e = build(&model(&c, &[]), pod_ips);
        let pods: Vec<PodId> = e.pods().map(|(id, _)| id).collect();
        for &s in &pods {
            for &d in &pods {
                let x = e.explain(Target::Pod(s), Target::Pod(d), proto, port).unwrap();
                prop_assert_eq!(x.allowed, e.allowed(s, d).allows(proto, port), "{}", x.verdict);
                let tunnel = e.pod(s).ambient && e.pod(d).ambient && proto == Protocol::Tcp;
                prop_assert_eq!(x.path == hbone::Path::Hbone, tunnel);
                let seen = if tunnel { hbone::HBONE_PORT } else { port };
                prop_assert_eq!(x.egress.allowed, e.egress(s, Target::Pod(d)).allows(proto, seen));
                prop_assert_eq!(x.ingress.allowed, e.ingress(d, Target::Pod(s)).allows(proto, seen));
                prop_assert_eq!(x.verdict.contains("via HBONE 15008 (ambient)"), tunnel, "{}", x.verdict);
            }
            for probe in PROBES {
                let addr = IpNet::from(probe.parse::<IpAddr>().unwrap());
                let x = e.explain(Target::External(addr), Target::Pod(s), proto, port).unwrap();
                prop_assert_eq!(x.allowed, e.allowed_from_cidr(addr, s).allows(proto, port));
                let x = e.explain(Target::Pod(s), Target::External(addr), proto, port).unwrap();
                prop_assert_eq!(x.allowed, e.allowed_to_cidr(s, addr).allows(proto, port));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Istio's rule for two captured pods, checked against the two NetworkPolicy sides alone: a
    /// TCP connection to any port is allowed exactly when the source's egress admits TCP 15008 to
    /// the destination and the destination's ingress admits TCP 15008 from the source; UDP and
    /// SCTP keep the ordinary rules; and when either pod is not captured nothing changes. Reach
    /// marks a workload pair `hbone` exactly when some of its pod pairs use the open tunnel.
    #[test]
    fn captured_pods_connect_through_15008(c in gen_cluster(), pod_ips in any::<bool>()) {
        let e = build(&model(&c, &[]), pod_ips);
        let reach = e.reach();
        let pods: Vec<PodId> = e.pods().map(|(id, _)| id).collect();
        let mut tunnelled: BTreeMap<(WorkloadRef, WorkloadRef), bool> = BTreeMap::new();
        for &s in &pods {
            for &d in &pods {
                let (eg, ing) = (e.egress(s, Target::Pod(d)), e.ingress(d, Target::Pod(s)));
                let got = e.allowed(s, d);
                let captured = e.pod(s).ambient && e.pod(d).ambient;
                let open = eg.allows(Protocol::Tcp, hbone::HBONE_PORT) && ing.allows(Protocol::Tcp, hbone::HBONE_PORT);
                for port in [1u16, 53, 80, 5432, 8080, 9000, hbone::HBONE_PORT, u16::MAX] {
                    let direct = |proto| eg.allows(proto, port) && ing.allows(proto, port);
                    let tcp = if captured { open } else { direct(Protocol::Tcp) };
                    prop_assert_eq!(got.allows(Protocol::Tcp, port), tcp, "TCP {}", port);
                    for proto in [Protocol::Udp, Protocol::Sctp] {
                        prop_assert_eq!(got.allows(proto, port), direct(proto), "{} {}", proto, port);
                    }
                }
                let key = (e.pod(s).workload(), e.pod(d).workload());
                *tunnelled.entry(key).or_default() |= captured && open;
            }
        }
        for ((ws, wd), via) in tunnelled {
            let (ws, wd) = (Endpoint::Workload(ws), Endpoint::Workload(wd));
            prop_assert_eq!(reach.hbone(&ws, &wd), via, "{} -> {}", ws, wd);
        }
        for r in reach.iter() {
            prop_assert_eq!(r.hbone, reach.hbone(r.src, r.dst));
            if matches!((r.src, r.dst), (Endpoint::External(_), _) | (_, Endpoint::External(_))) {
                prop_assert!(!r.hbone, "addresses outside the cluster never use the tunnel");
            }
        }
    }
}

/// The connection of `reach` between workload `w` and the external range holding `addr`.
fn external_conn(reach: &Reach, w: &Endpoint, addr: &IpNet, inbound: bool) -> Connection {
    reach
        .iter()
        .find_map(|r| match (inbound, r.src, r.dst) {
            (true, Endpoint::External(n), d) if d == w && n.contains(addr) => Some(r.conn.clone()),
            (false, s, Endpoint::External(n)) if s == w && n.contains(addr) => Some(r.conn.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The diff of two random states says exactly what changed: for every workload pair and
    /// every probed address, the entry covering it (if any) carries both sides' connections, and
    /// pairs without an entry are unchanged; it "removes connections" iff some traffic was lost.
    #[test]
    fn diff_says_exactly_what_changed(c in gen_cluster(), extra in proptest::collection::vec(gen_policy(), 1..3), drop in 0usize..6, pod_ips in any::<bool>()) {
        let before_model = model(&c, &[]);
        let mut after_model = model(&c, &extra);
        if drop < after_model.policies.len() && drop < c.policies.len() {
            after_model.policies.remove(drop);
        }
        let before = build(&before_model, pod_ips).reach();
        let after = build(&after_model, pod_ips).reach();
        let d = diff::diff(&before, &after);
        let mut lost_any = false;
        let workloads: Vec<&Endpoint> = before.endpoints().iter().filter(|e| matches!(e, Endpoint::Workload(_))).collect();
        for s in &workloads {
            for t in &workloads {
                let b = before.get(s, t).cloned().unwrap_or_default();
                let a = after.get(s, t).cloned().unwrap_or_default();
                lost_any |= !b.is_subset(&a);
                let entry = d.entries.iter().find(|e| &&e.src == s && &&e.dst == t);
                match entry {
                    None => prop_assert_eq!(&a, &b, "{} -> {} changed without an entry", s, t),
                    Some(e) => {
                        prop_assert_eq!(e.change.before().cloned().unwrap_or_default(), b);
                        prop_assert_eq!(e.change.after().cloned().unwrap_or_default(), a);
                    }
                }
            }
            for probe in PROBES {
                let addr = IpNet::from(probe.parse::<IpAddr>().unwrap());
                for inbound in [false, true] {
                    let b = external_conn(&before, s, &addr, inbound);
                    let a = external_conn(&after, s, &addr, inbound);
                    lost_any |= !b.is_subset(&a);
                    let hits: Vec<&DiffEntry> = d
                        .entries
                        .iter()
                        .filter(|e| match (inbound, &e.src, &e.dst) {
                            (true, Endpoint::External(n), w) | (false, w, Endpoint::External(n)) => w == *s && n.contains(&addr),
                            _ => false,
                        })
                        .collect();
                    prop_assert!(hits.len() <= 1, "overlapping diff ranges for {} {}", s, probe);
                    match hits.first() {
                        None => prop_assert_eq!(&a, &b, "{} {} {} changed without an entry", s, if inbound { "<-" } else { "->" }, probe),
                        Some(e) => {
                            prop_assert_eq!(e.change.before().cloned().unwrap_or_default(), b);
                            prop_assert_eq!(e.change.after().cloned().unwrap_or_default(), a);
                        }
                    }
                }
            }
        }
        // Probes do not cover every range: a loss may hide between them, never the reverse.
        prop_assert!(!lost_any || d.removes_connections());
        for e in &d.entries {
            let b = e.change.before().cloned().unwrap_or_default();
            let a = e.change.after().cloned().unwrap_or_default();
            prop_assert_eq!(e.change.removes(), !b.is_subset(&a));
        }
    }
}

#[path = "admin_proptests.rs"]
mod admin;
