//! Hand-computed cases for the admin tiers, shaped like the network-policy-api documentation's
//! examples (https://network-policy-api.sigs.k8s.io/api-overview/ and the API reference): a
//! monitoring namespace allowed everywhere, a restricted namespace tenants may not reach, tenants
//! passed to their own NetworkPolicies with a baseline default deny, egress to `networks`.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use crate::{
    AdminAction, AdminTier, ClusterModel, Connection, Direction, Endpoint, Engine, EngineOptions, NamespaceInfo, NetpolError, PodId, PodInfo,
    PortRange, PortSet, Protocol, Target, WorkloadKind, WorkloadRef,
};

fn namespaces() -> Vec<NamespaceInfo> {
    let ns = |n: &str, l: &[(&str, &str)]| NamespaceInfo::new(n, l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
    vec![
        ns("monitoring", &[]),
        ns("db", &[("security", "restricted")]),
        ns("tenant-a", &[("tenant", "a")]),
        ns("tenant-b", &[("tenant", "b")]),
    ]
}

fn pods() -> Vec<PodInfo> {
    vec![
        PodInfo::new("monitoring", "prom").with_labels([("app", "prometheus")]).with_ip("10.0.0.10".parse().unwrap()),
        PodInfo::new("db", "pg-0")
            .with_labels([("app", "pg")])
            .with_owner(WorkloadRef::new(WorkloadKind::StatefulSet, "db", "pg"))
            .with_port(Some("postgres"), 5432, Protocol::Tcp)
            .with_port(Some("metrics"), 9187, Protocol::Tcp)
            .with_ip("10.0.1.10".parse().unwrap()),
        PodInfo::new("tenant-a", "web").with_labels([("app", "web")]).with_port(Some("http"), 8080, Protocol::Tcp).with_ip("10.0.2.10".parse().unwrap()),
        PodInfo::new("tenant-b", "web").with_labels([("app", "web")]).with_port(Some("http"), 8080, Protocol::Tcp).with_ip("10.0.3.10".parse().unwrap()),
        // A pod from a template: no IP known.
        PodInfo::new("tenant-b", "job").with_labels([("app", "job")]),
    ]
}

fn np(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})).unwrap()
}

fn anp(name: &str, priority: i64, spec: Value) -> Value {
    let mut spec = spec;
    spec["priority"] = json!(priority);
    json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy", "metadata": {"name": name}, "spec": spec})
}

fn banp(spec: Value) -> Value {
    json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"}, "spec": spec})
}

fn model(nps: Vec<NetworkPolicy>, anps: Vec<Value>, banps: Vec<Value>) -> ClusterModel {
    ClusterModel { namespaces: namespaces(), pods: pods(), policies: nps, admin_network_policies: anps, baseline_admin_network_policies: banps, ..ClusterModel::default() }
}

fn engine(nps: Vec<NetworkPolicy>, anps: Vec<Value>, banps: Vec<Value>) -> Engine {
    Engine::build(&model(nps, anps, banps), EngineOptions::default()).unwrap()
}

fn id(e: &Engine, ns: &str, name: &str) -> PodId {
    e.pod_id(ns, name).unwrap()
}

fn ports(ranges: &[(Protocol, u16, u16)]) -> Connection {
    Connection::Ports(PortSet::from_ranges(ranges.iter().map(|&(protocol, start, end)| PortRange { protocol, start, end })))
}

/// Every transport port except `(protocol, port)` (what remains after a port-specific Deny of
/// "everything": the portless protocols are not representable, see the module docs).
fn all_but(protocol: Protocol, port: u16) -> Connection {
    let mut v: Vec<(Protocol, u16, u16)> = Protocol::ALL.iter().filter(|&&p| p != protocol).map(|&p| (p, 1, u16::MAX)).collect();
    v.push((protocol, 1, port - 1));
    v.push((protocol, port + 1, u16::MAX));
    ports(&v)
}

fn allow_monitoring() -> Value {
    anp("allow-monitoring", 10, json!({
        "subject": {"namespaces": {}},
        "ingress": [{"name": "scrape", "action": "Allow", "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]
    }))
}

fn tenants_off_db_port(priority: i64) -> Value {
    anp("tenants-off-db", priority, json!({
        "subject": {"namespaces": {"matchLabels": {"security": "restricted"}}},
        "ingress": [{"name": "no-tenants", "action": "Deny", "from": [{"namespaces": {"matchExpressions": [{"key": "tenant", "operator": "Exists"}]}}],
                     "ports": [{"portNumber": {"port": 5432}}]}]
    }))
}

#[test]
fn anp_allow_overrides_a_networkpolicy_deny() {
    let deny_all = np("db", "deny-all", json!({"podSelector": {}}));
    let e = engine(vec![deny_all.clone()], vec![allow_monitoring()], vec![]);
    let (prom, pg, web_a) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"));
    assert_eq!(e.allowed(prom, pg), Connection::All, "ANP Allow is final");
    assert!(e.allowed(web_a, pg).is_none(), "no ANP rule matches: NetworkPolicy denies");
    // Without the ANP, NetworkPolicy alone denies the scrape too.
    let plain = engine(vec![deny_all], vec![], vec![]);
    assert!(plain.allowed(id(&plain, "monitoring", "prom"), id(&plain, "db", "pg-0")).is_none());
}

#[test]
fn anp_deny_overrides_a_networkpolicy_allow_on_its_ports_only() {
    let allow_all = np("db", "allow-all", json!({"podSelector": {}, "ingress": [{}]}));
    let e = engine(vec![allow_all], vec![allow_monitoring(), tenants_off_db_port(20)], vec![]);
    let (prom, pg, web_a) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"));
    let got = e.allowed(web_a, pg);
    assert_eq!(got, all_but(Protocol::Tcp, 5432));
    assert!(!got.allows(Protocol::Tcp, 5432) && got.allows(Protocol::Tcp, 9187) && got.allows(Protocol::Udp, 5432));
    assert_eq!(e.allowed(prom, pg), Connection::All, "monitoring is not a tenant, and priority 10 allows it first");
}

#[test]
fn lower_priority_number_wins() {
    // The same Deny, now before the monitoring Allow and from every namespace.
    let deny_everyone = anp("db-port-closed", 5, json!({
        "subject": {"namespaces": {"matchLabels": {"security": "restricted"}}},
        "ingress": [{"action": "Deny", "from": [{"namespaces": {}}], "ports": [{"portNumber": {"protocol": "TCP", "port": 5432}}]}]
    }));
    let e = engine(vec![], vec![allow_monitoring(), deny_everyone], vec![]);
    let (prom, pg) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"));
    assert_eq!(e.allowed(prom, pg), all_but(Protocol::Tcp, 5432), "priority 5 denies 5432, priority 10 allows the rest");
    assert_eq!(e.admin_policies(), vec![(AdminTier::Admin, "db-port-closed".into(), 5), (AdminTier::Admin, "allow-monitoring".into(), 10)]);
}

fn pass_tenants() -> Vec<Value> {
    vec![
        anp("pass-tenants", 30, json!({
            "subject": {"namespaces": {"matchExpressions": [{"key": "tenant", "operator": "Exists"}]}},
            "ingress": [{"action": "Pass", "from": [{"namespaces": {"matchExpressions": [{"key": "tenant", "operator": "Exists"}]}}]}]
        })),
        anp("deny-into-tenants", 40, json!({
            "subject": {"namespaces": {"matchExpressions": [{"key": "tenant", "operator": "Exists"}]}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]
        })),
    ]
}

fn baseline_deny() -> Value {
    banp(json!({"subject": {"namespaces": {}}, "ingress": [{"name": "default-deny", "action": "Deny", "from": [{"namespaces": {}}]}]}))
}

#[test]
fn pass_goes_to_networkpolicy_then_to_the_baseline() {
    let e = engine(vec![], pass_tenants(), vec![baseline_deny()]);
    let (prom, pg) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"));
    let (web_a, web_b) = (id(&e, "tenant-a", "web"), id(&e, "tenant-b", "web"));
    assert!(e.allowed(web_b, web_a).is_none(), "passed, no NetworkPolicy selects tenant-a/web: the baseline denies");
    assert!(e.allowed(prom, web_a).is_none(), "not passed: priority 40 denies");
    assert!(e.allowed(web_a, pg).is_none(), "no ANP selects db: the baseline denies");
    // External traffic matches no namespace peer: the baseline leaves it allowed.
    assert_eq!(e.allowed_from_cidr("8.8.8.8/32".parse().unwrap(), web_a), Connection::All);

    // A NetworkPolicy selecting tenant-a/web takes over the passed traffic; the baseline no
    // longer applies to that pod's ingress.
    let from_b = np("tenant-a", "from-b", json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"tenant": "b"}}}], "ports": [{"port": "http"}]}]}));
    let to_db = np("db", "from-a", json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"tenant": "a"}}}]}]}));
    let e = engine(vec![from_b, to_db], pass_tenants(), vec![baseline_deny()]);
    let (prom, pg) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"));
    let (web_a, web_b) = (id(&e, "tenant-a", "web"), id(&e, "tenant-b", "web"));
    assert_eq!(e.allowed(web_b, web_a), ports(&[(Protocol::Tcp, 8080, 8080)]));
    assert!(e.allowed(prom, web_a).is_none(), "ANP Deny is final even where NetworkPolicy isolates");
    assert_eq!(e.allowed(web_a, pg), Connection::All, "NetworkPolicy selects pg-0: the baseline does not apply");
    assert!(e.allowed_from_cidr("8.8.8.8/32".parse().unwrap(), web_a).is_none(), "isolated by NetworkPolicy now");
}

#[test]
fn baseline_applies_per_direction() {
    // pg-0 is isolated for ingress only: its egress is still the baseline's.
    let ingress_only = np("db", "in", json!({"podSelector": {}, "ingress": [{}]}));
    let base = banp(json!({"subject": {"namespaces": {"matchLabels": {"security": "restricted"}}},
        "egress": [{"action": "Allow", "to": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
                   {"action": "Deny", "to": [{"namespaces": {}}]}]}));
    let e = engine(vec![ingress_only], vec![], vec![base]);
    let (prom, pg, web_a) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"));
    assert_eq!(e.allowed(pg, prom), Connection::All, "first baseline rule allows");
    assert!(e.allowed(pg, web_a).is_none(), "second baseline rule denies");
    assert_eq!(e.allowed(web_a, pg), Connection::All, "ingress: NetworkPolicy allows all");
    assert_eq!(e.allowed_to_cidr(pg, "8.8.8.8/32".parse().unwrap()), Connection::All, "no baseline rule matches an address");
}

fn egress_lockdown() -> Value {
    anp("tenant-b-egress", 50, json!({
        "subject": {"namespaces": {"matchLabels": {"tenant": "b"}}},
        "egress": [
            {"name": "db", "action": "Allow", "to": [{"pods": {"namespaceSelector": {"matchLabels": {"security": "restricted"}}, "podSelector": {"matchLabels": {"app": "pg"}}}}],
             "ports": [{"namedPort": "postgres"}]},
            {"name": "nothing-else", "action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}
        ]
    }))
}

#[test]
fn egress_networks_also_match_pods_by_ip() {
    let e = engine(vec![], vec![egress_lockdown()], vec![]);
    let (pg, web_a, web_b, job) = (id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"), id(&e, "tenant-b", "web"), id(&e, "tenant-b", "job"));
    // The named port resolves on the destination; everything else to an IPv4 address is denied,
    // pods included (the API reference: networks check cluster-internal traffic as well).
    assert_eq!(e.allowed(web_b, pg), ports(&[(Protocol::Tcp, 5432, 5432)]));
    assert!(e.allowed(web_b, web_a).is_none());
    assert!(e.allowed_to_cidr(web_b, "8.8.8.8/32".parse().unwrap()).is_none());
    assert_eq!(e.allowed_to_cidr(web_b, "fd00::1/128".parse().unwrap()), Connection::All, "IPv6 is outside 0.0.0.0/0");
    // A pod without a known IP is not matched as a peer by `networks`, and that is reported.
    assert_eq!(e.allowed(web_b, job), Connection::All);
    assert!(e.admin_caveats().iter().any(|c| c.name == "tenant-b-egress" && c.message.contains("without a known IP")), "{:?}", e.admin_caveats());
    // Reach agrees, external CIDRs included.
    let reach = e.reach();
    let w = |ns: &str, n: &str, k: WorkloadKind| Endpoint::Workload(WorkloadRef::new(k, ns, n));
    assert_eq!(reach.get(&w("tenant-b", "web", WorkloadKind::Pod), &w("db", "pg", WorkloadKind::StatefulSet)), Some(&ports(&[(Protocol::Tcp, 5432, 5432)])));
    assert_eq!(reach.get(&w("tenant-b", "web", WorkloadKind::Pod), &w("tenant-a", "web", WorkloadKind::Pod)), None);
    assert_eq!(reach.get(&w("tenant-b", "web", WorkloadKind::Pod), &Endpoint::External("0.0.0.0/0".parse().unwrap())), None);
    assert_eq!(reach.get(&w("tenant-b", "web", WorkloadKind::Pod), &Endpoint::External("::/0".parse().unwrap())), Some(&Connection::All));
}

#[test]
fn rules_apply_in_order_first_match_wins() {
    let rules = |first: Value, second: Value| anp("ordered", 60, json!({"subject": {"namespaces": {"matchLabels": {"security": "restricted"}}}, "ingress": [first, second]}));
    let allow_range = json!({"action": "Allow", "from": [{"namespaces": {"matchLabels": {"tenant": "a"}}}], "ports": [{"portRange": {"start": 5000, "end": 6000}}]});
    let deny = json!({"action": "Deny", "from": [{"namespaces": {"matchLabels": {"tenant": "a"}}}]});
    let e = engine(vec![], vec![rules(allow_range.clone(), deny.clone())], vec![]);
    let (pg, web_a) = (id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"));
    assert_eq!(e.allowed(web_a, pg), ports(&[(Protocol::Tcp, 5000, 6000)]));
    let e = engine(vec![], vec![rules(deny, allow_range)], vec![]);
    assert!(e.allowed(web_a, pg).is_none());
}

#[test]
fn equal_priorities_go_by_name_and_are_reported() {
    let a = anp("a-allow", 7, json!({"subject": {"namespaces": {"matchLabels": {"security": "restricted"}}}, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}));
    let b = anp("b-deny", 7, json!({"subject": {"namespaces": {"matchLabels": {"security": "restricted"}}}, "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}));
    let e = engine(vec![], vec![b, a], vec![]);
    assert_eq!(e.allowed(id(&e, "tenant-a", "web"), id(&e, "db", "pg-0")), Connection::All);
    let tie = e.admin_caveats().iter().find(|c| c.path == "spec.priority").expect("a tie is reported");
    assert_eq!(tie.name, "a-allow, b-deny");
}

#[test]
fn invalid_admin_policies_are_refused_with_the_field() {
    let cases = [
        (anp("p", 1001, json!({"subject": {"namespaces": {}}})), "spec.priority"),
        (anp("p", 1, json!({"subject": {"namespaces": {"namespaceSelector": {}}}})), "spec.subject.namespaces.namespaceSelector"),
        (anp("p", 1, json!({"subject": {"namespaces": {}, "pods": {"namespaceSelector": {}, "podSelector": {}}}})), "spec.subject"),
        (anp("p", 1, json!({"subject": {"namespaces": {}}, "ingress": [{"action": "Reject", "from": [{"namespaces": {}}]}]})), "spec.ingress[0].action"),
        (anp("p", 1, json!({"subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": []}]})), "spec.ingress[0].from"),
        (anp("p", 1, json!({"subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [{"networks": ["10.0.0.0/8"]}]}]})), "spec.ingress[0].from[0].networks"),
        (anp("p", 1, json!({"subject": {"namespaces": {}}, "egress": [{"action": "Allow", "to": [{"networks": ["10.0.0.0/33"]}]}]})), "spec.egress[0].to[0].networks[0]"),
        (anp("p", 1, json!({"subject": {"namespaces": {}}, "egress": [{"action": "Allow", "to": [{"namespaces": {}}], "ports": [{"portRange": {"start": 90, "end": 80}}]}]})), "spec.egress[0].ports[0].portRange.end"),
        (anp("p", 1, json!({"subject": {"namespaces": {}}, "egress": [{"action": "Allow", "to": [{"namespaces": {}}], "ports": [{"portNumber": {"port": 80}, "namedPort": "http"}]}]})), "spec.egress[0].ports[0]"),
        (anp("p", 1, json!({"subject": {"namespaces": {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}}})), "spec.subject.namespaces.matchExpressions[0].operator"),
    ];
    for (policy, path) in cases {
        match Engine::build(&model(vec![], vec![policy.clone()], vec![]), EngineOptions::default()) {
            Err(NetpolError::InvalidPolicies(errs)) => {
                assert!(errs.iter().any(|e| e.path == path && e.kind == "AdminNetworkPolicy"), "{path}: {errs:?}");
                assert!(errs[0].to_string().starts_with("AdminNetworkPolicy p: "), "{}", errs[0]);
            }
            other => panic!("{policy} must be refused at {path}, got {:?}", other.map(|_| ())),
        }
    }
    let base_cases = [
        (json!({"metadata": {"name": "strict"}, "spec": {"subject": {"namespaces": {}}}}), "metadata.name"),
        (json!({"metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}}, "ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]}}), "spec.ingress[0].action"),
        (json!({"metadata": {"name": "default"}, "spec": {"priority": 3, "subject": {"namespaces": {}}}}), "spec.priority"),
    ];
    for (policy, path) in base_cases {
        let Err(NetpolError::InvalidPolicies(errs)) = Engine::build(&model(vec![], vec![], vec![policy]), EngineOptions::default()) else {
            panic!("{path} must be refused");
        };
        assert!(errs.iter().any(|e| e.path == path && e.kind == "BaselineAdminNetworkPolicy"), "{path}: {errs:?}");
    }
    // Leniently, the invalid policy is left out and the rest still applies.
    let (e, rejected) =
        Engine::build_lenient(&model(vec![], vec![allow_monitoring(), anp("bad", -1, json!({"subject": {"namespaces": {}}}))], vec![]), EngineOptions::default()).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(e.admin_policies().len(), 1);
}

#[test]
fn unmodelled_peers_are_reported_and_match_nothing() {
    let p = anp("egress-names", 5, json!({
        "subject": {"namespaces": {"matchLabels": {"tenant": "a"}}},
        "egress": [
            {"action": "Deny", "to": [{"nodes": {}}]},
            {"action": "Allow", "to": [{"domainNames": ["*.example.com"]}]},
            {"action": "Deny", "to": [{"namespaces": {"matchLabels": {"security": "restricted"}}}]}
        ]
    }));
    let e = engine(vec![], vec![p], vec![]);
    let paths: Vec<&str> = e.admin_caveats().iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["spec.egress[0].to[0].nodes", "spec.egress[1].to[0].domainNames"]);
    let (pg, web_a, web_b) = (id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"), id(&e, "tenant-b", "web"));
    assert_eq!(e.allowed(web_a, web_b), Connection::All, "the nodes Deny matches no pod");
    assert!(e.allowed(web_a, pg).is_none());
    let ex = e.explain(Target::Pod(web_a), Target::Pod(pg), Protocol::Tcp, 5432).unwrap();
    let rules = &ex.egress.admin.as_ref().unwrap().rules;
    assert_eq!(rules[0].unmodelled_peers, ["nodes"]);
    assert_eq!(rules[1].unmodelled_peers, ["domainNames"]);
}

#[test]
fn explain_names_the_deciding_rule() {
    let allow_all = np("db", "allow-all", json!({"podSelector": {}, "ingress": [{}]}));
    let e = engine(vec![allow_all], vec![allow_monitoring(), tenants_off_db_port(20)], vec![baseline_deny()]);
    let (prom, pg, web_a) = (id(&e, "monitoring", "prom"), id(&e, "db", "pg-0"), id(&e, "tenant-a", "web"));
    let ex = e.explain(Target::Pod(web_a), Target::Pod(pg), Protocol::Tcp, 5432).unwrap();
    assert!(!ex.allowed);
    let admin = ex.ingress.admin.as_ref().unwrap();
    assert_eq!(admin.decided_by.as_deref(), Some("AdminNetworkPolicy tenants-off-db (priority 20) ingress[0] \"no-tenants\": Deny"));
    assert!(ex.verdict.contains("tenants-off-db"), "{}", ex.verdict);
    assert_eq!(admin.rules.len(), 2, "the monitoring rule was looked at first: {:?}", admin.rules);
    assert_eq!((admin.rules[0].peer_matched, admin.rules[1].action), (false, AdminAction::Deny));

    let ex = e.explain(Target::Pod(web_a), Target::Pod(pg), Protocol::Tcp, 9187).unwrap();
    assert!(ex.allowed, "no ANP rule matches 9187; NetworkPolicy isolates pg-0 and allows it");
    assert_eq!(ex.ingress.admin.as_ref().unwrap().decided_by, None);

    let ex = e.explain(Target::Pod(prom), Target::Pod(pg), Protocol::Tcp, 5432).unwrap();
    assert!(ex.allowed);
    assert_eq!(ex.ingress.admin.as_ref().unwrap().decided_by.as_deref(), Some("AdminNetworkPolicy allow-monitoring (priority 10) ingress[0] \"scrape\": Allow"));

    // The baseline decides for a pod no NetworkPolicy isolates.
    let ex = e.explain(Target::Pod(pg), Target::Pod(web_a), Protocol::Tcp, 8080).unwrap();
    assert!(!ex.allowed);
    assert_eq!(ex.ingress.admin.as_ref().unwrap().decided_by.as_deref(), Some("BaselineAdminNetworkPolicy default ingress[0] \"default-deny\": Deny"));
    // Every explanation agrees with `allowed`.
    for (s, d) in [(web_a, pg), (prom, pg), (pg, web_a), (web_a, prom)] {
        for (proto, port) in [(Protocol::Tcp, 5432), (Protocol::Tcp, 9187), (Protocol::Udp, 53), (Protocol::Tcp, 8080)] {
            let ex = e.explain(Target::Pod(s), Target::Pod(d), proto, port).unwrap();
            assert_eq!(ex.allowed, e.allowed(s, d).allows(proto, port), "{s:?} -> {d:?} {proto} {port}");
        }
    }
    // Without admin policies, explanations carry no admin part (and serialize as before).
    let plain = engine(vec![], vec![], vec![]);
    let ex = plain.explain(Target::Pod(id(&plain, "tenant-a", "web")), Target::Pod(id(&plain, "db", "pg-0")), Protocol::Tcp, 5432).unwrap();
    assert!(ex.ingress.admin.is_none() && serde_json::to_value(&ex).unwrap()["ingress"].get("admin").is_none());
}

#[test]
fn selection_queries_report_networkpolicy_isolation_only() {
    // Admin policies imply no isolation (api-overview: "there will not be any implicit
    // isolation effects for the Pods selected by the AdminNetworkPolicy").
    let e = engine(vec![], vec![allow_monitoring()], vec![baseline_deny()]);
    let pg = id(&e, "db", "pg-0");
    assert!(!e.is_isolated(pg, Direction::Ingress));
    assert!(e.selecting_policies(pg, Direction::Ingress).is_empty());
}
