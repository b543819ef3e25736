//! Istio AuthorizationPolicy in the engine: one test per rule of [`crate::authz`], and a property
//! test against a small evaluator written from the API reference alone.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{
    AuthzState, ClusterModel, Connection, Endpoint, Engine, EngineOptions, NamespaceInfo, PodId,
    PodInfo, Protocol, Target, WorkloadKind, WorkloadRef,
};

fn deploy(ns: &str, name: &str) -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, ns, name)
}

/// `shop`: db (sidecar, service account db, 5432 and 9187), api and web (sidecars), legacy (no
/// mesh); `other`: a sidecar pod running as `api`; `amb`: ambient pods.
fn pods() -> Vec<PodInfo> {
    let pod = |ns: &str, name: &str| {
        PodInfo::new(ns, format!("{name}-1"))
            .with_labels([("app", name)])
            .with_owner(deploy(ns, name))
    };
    vec![
        pod("shop", "db")
            .with_sidecar(true)
            .with_service_account("db")
            .with_port(Some("pg"), 5432, Protocol::Tcp)
            .with_port(Some("metrics"), 9187, Protocol::Tcp),
        pod("shop", "api")
            .with_sidecar(true)
            .with_service_account("api"),
        pod("shop", "web").with_sidecar(true),
        pod("shop", "legacy"),
        pod("other", "intruder")
            .with_sidecar(true)
            .with_service_account("api"),
        pod("amb", "store")
            .with_ambient(true)
            .with_service_account("store")
            .with_port(None, 8080, Protocol::Tcp),
        pod("amb", "client")
            .with_ambient(true)
            .with_service_account("client"),
    ]
}

fn engine(aps: Vec<Value>, pas: Vec<Value>) -> Engine {
    let model = ClusterModel {
        namespaces: ["shop", "other", "amb", "istio-system"]
            .iter()
            .map(|n| NamespaceInfo::new(*n, BTreeMap::new()))
            .collect(),
        pods: pods(),
        authorization_policies: aps,
        peer_authentications: pas,
        ..ClusterModel::default()
    };
    Engine::build(&model, EngineOptions::default()).unwrap()
}

fn ap(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn id(e: &Engine, ns: &str, name: &str) -> PodId {
    e.pod_id(ns, &format!("{name}-1")).unwrap()
}

fn state(e: &Engine, from: (&str, &str), to: (&str, &str), port: u16) -> AuthzState {
    e.authz_decision(Target::Pod(id(e, from.0, from.1)), id(e, to.0, to.1), port)
        .state
}

const DB: (&str, &str) = ("shop", "db");
const API: (&str, &str) = ("shop", "api");
const WEB: (&str, &str) = ("shop", "web");
const LEGACY: (&str, &str) = ("shop", "legacy");
const INTRUDER: (&str, &str) = ("other", "intruder");

fn db_allow(rules: Value) -> Value {
    ap(
        "shop",
        "db",
        json!({"selector": {"matchLabels": {"app": "db"}}, "action": "ALLOW", "rules": rules}),
    )
}

#[test]
fn without_policies_everything_passes_and_pods_outside_the_mesh_enforce_nothing() {
    let e = engine(vec![db_allow(json!([]))], vec![]);
    assert_eq!(
        state(&e, DB, LEGACY, 80),
        AuthzState::NotEnforced,
        "legacy has no proxy"
    );
    assert_eq!(
        state(&e, DB, API, 80),
        AuthzState::Allowed,
        "no policy selects api"
    );
    assert_eq!(
        state(&e, API, DB, 15090),
        AuthzState::NotEnforced,
        "the sidecar does not capture 15090"
    );
}

#[test]
fn principals_come_from_the_sources_service_account_over_mutual_tls_only() {
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/api"]}}]}]),
        )],
        vec![],
    );
    let d = e.authz_decision(
        Target::Pod(id(&e, "shop", "api")),
        id(&e, "shop", "db"),
        5432,
    );
    assert_eq!(d.state, AuthzState::Allowed);
    assert_eq!(
        d.source_principal.as_deref(),
        Some("cluster.local/ns/shop/sa/api")
    );
    assert_eq!(
        d.decided_by.as_ref().map(ToString::to_string).as_deref(),
        Some("AuthorizationPolicy shop/db (ALLOW) rules[0]")
    );
    assert_eq!(
        state(&e, WEB, DB, 5432),
        AuthzState::Denied,
        "web runs as default"
    );
    assert_eq!(
        state(&e, LEGACY, DB, 5432),
        AuthzState::Denied,
        "plaintext has no principal"
    );
    assert_eq!(
        state(&e, INTRUDER, DB, 5432),
        AuthzState::Denied,
        "same account name, other namespace"
    );
    // Istio's `*` forms: suffix, prefix and presence.
    for (p, web_too) in [
        ("*/sa/api", false),
        ("cluster.local/ns/shop/*", true),
        ("*", true),
    ] {
        let e = engine(
            vec![db_allow(
                json!([{"from": [{"source": {"principals": [p]}}]}]),
            )],
            vec![],
        );
        assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed, "{p}");
        assert_eq!(
            state(&e, WEB, DB, 5432) == AuthzState::Allowed,
            web_too,
            "{p}"
        );
        assert_eq!(
            state(&e, LEGACY, DB, 5432),
            AuthzState::Denied,
            "{p}: no principal at all"
        );
    }
    // The engine's pair answer is the network's, narrowed by the verdict.
    assert!(
        e.allowed(id(&e, "shop", "api"), id(&e, "shop", "db"))
            .allows(Protocol::Tcp, 5432)
    );
    assert!(
        !e.allowed(id(&e, "shop", "legacy"), id(&e, "shop", "db"))
            .allows(Protocol::Tcp, 5432)
    );
    assert!(
        e.allowed(id(&e, "shop", "legacy"), id(&e, "shop", "db"))
            .allows(Protocol::Udp, 5432),
        "UDP is not captured"
    );
}

#[test]
fn custom_then_deny_then_allow() {
    let allow_all = db_allow(json!([{}]));
    let deny_api = ap(
        "shop",
        "no-api",
        json!({"action": "DENY", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/api"]}}]}]}),
    );
    let custom = ap(
        "shop",
        "ext",
        json!({"action": "CUSTOM", "provider": {"name": "opa"}, "rules": [{"to": [{"operation": {"ports": ["9187"]}}]}]}),
    );
    let e = engine(
        vec![allow_all.clone(), deny_api.clone(), custom.clone()],
        vec![],
    );
    assert_eq!(
        state(&e, API, DB, 5432),
        AuthzState::Denied,
        "DENY beats a matching ALLOW"
    );
    assert_eq!(state(&e, WEB, DB, 5432), AuthzState::Allowed);
    let d = e.authz_decision(
        Target::Pod(id(&e, "shop", "web")),
        id(&e, "shop", "db"),
        9187,
    );
    assert_eq!(
        d.state,
        AuthzState::Conditional,
        "the external authorizer decides"
    );
    assert_eq!(d.decided_by.map(|r| r.name), Some("ext".to_string()));
    assert_eq!(
        state(&e, API, DB, 9187),
        AuthzState::Denied,
        "DENY also beats CUSTOM"
    );
}

#[test]
fn empty_rules_allow_nothing_an_empty_rule_everything_and_a_ruleless_deny_nothing() {
    let e = engine(vec![db_allow(json!([]))], vec![]);
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Denied);
    let e = engine(
        vec![ap(
            "shop",
            "db",
            json!({"selector": {"matchLabels": {"app": "db"}}}),
        )],
        vec![],
    );
    assert_eq!(
        state(&e, API, DB, 5432),
        AuthzState::Denied,
        "action defaults to ALLOW, rules absent"
    );
    let e = engine(vec![db_allow(json!([{}]))], vec![]);
    assert_eq!(
        state(&e, LEGACY, DB, 5432),
        AuthzState::Allowed,
        "rules: [{{}}] matches everything, plaintext too"
    );
    let e = engine(vec![ap("shop", "d", json!({"action": "DENY"}))], vec![]);
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
}

#[test]
fn root_namespace_policies_apply_mesh_wide_others_to_their_namespace() {
    let deny_all = |ns: &str| ap(ns, "deny", json!({"action": "ALLOW", "rules": []}));
    let e = engine(vec![deny_all("istio-system")], vec![]);
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Denied);
    assert_eq!(state(&e, API, INTRUDER, 80), AuthzState::Denied);
    let e = engine(vec![deny_all("other")], vec![]);
    assert_eq!(
        state(&e, API, DB, 5432),
        AuthzState::Allowed,
        "a policy of namespace other"
    );
    assert_eq!(state(&e, API, INTRUDER, 80), AuthzState::Denied);
    // A selector in the root namespace selects in every namespace.
    let e = engine(
        vec![ap(
            "istio-system",
            "dbs",
            json!({"selector": {"matchLabels": {"app": "db"}}, "rules": []}),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Denied);
    assert_eq!(state(&e, DB, API, 80), AuthzState::Allowed);
    // targetRefs attach to a gateway or waypoint: neither a sidecar nor ztunnel enforces them.
    let e = engine(
        vec![ap(
            "shop",
            "wp",
            json!({"targetRefs": [{"kind": "Service", "group": "", "name": "db"}], "rules": []}),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    assert_eq!(e.authz_caveats().len(), 1);
}

#[test]
fn negative_fields_match_sources_without_identity() {
    // Istio's "DENY with negative match" pattern: everything not from shop is denied, plaintext
    // included.
    let e = engine(
        vec![ap(
            "shop",
            "only-shop",
            json!({"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["shop"]}}]}]}),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    assert_eq!(state(&e, INTRUDER, DB, 5432), AuthzState::Denied);
    assert_eq!(
        state(&e, LEGACY, DB, 5432),
        AuthzState::Denied,
        "plaintext: notNamespaces matches"
    );
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"notPrincipals": ["cluster.local/ns/shop/sa/web"]}}]}]),
        )],
        vec![],
    );
    assert_eq!(
        state(&e, WEB, DB, 5432),
        AuthzState::Allowed,
        "web runs as default, not as web"
    );
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"notPrincipals": ["cluster.local/ns/shop/sa/default"]}}]}]),
        )],
        vec![],
    );
    assert_eq!(state(&e, WEB, DB, 5432), AuthzState::Denied);
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    assert_eq!(state(&e, LEGACY, DB, 5432), AuthzState::Allowed);
    // serviceAccounts: `sa` is in the policy's namespace.
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"serviceAccounts": ["api"]}}]}]),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    assert_eq!(state(&e, INTRUDER, DB, 5432), AuthzState::Denied);
}

#[test]
fn operation_ports_and_not_ports() {
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"namespaces": ["shop"]}}], "to": [{"operation": {"ports": ["5432"]}}]}]),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    assert_eq!(state(&e, API, DB, 9187), AuthzState::Denied);
    let allowed = e.allowed(id(&e, "shop", "api"), id(&e, "shop", "db"));
    assert!(
        allowed.allows(Protocol::Tcp, 5432)
            && !allowed.allows(Protocol::Tcp, 5431)
            && !allowed.allows(Protocol::Tcp, 5433)
    );
    assert!(
        allowed.allows(Protocol::Tcp, 15020),
        "not captured by the sidecar"
    );
    let e = engine(
        vec![ap(
            "shop",
            "d",
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"notPorts": ["5432"]}}]}]}),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    assert_eq!(state(&e, API, DB, 9187), AuthzState::Denied);
}

#[test]
fn l7_fields_are_an_explicit_state_at_a_sidecar() {
    let e = engine(
        vec![db_allow(
            json!([{"to": [{"operation": {"methods": ["GET"]}}]}]),
        )],
        vec![],
    );
    let d = e.authz_decision(
        Target::Pod(id(&e, "shop", "api")),
        id(&e, "shop", "db"),
        5432,
    );
    assert_eq!(
        d.state,
        AuthzState::Conditional,
        "allowed for GET requests only"
    );
    assert!(
        e.allowed(id(&e, "shop", "api"), id(&e, "shop", "db"))
            .allows(Protocol::Tcp, 5432),
        "may pass"
    );
    assert!(
        e.authz_conditional(Target::Pod(id(&e, "shop", "api")), id(&e, "shop", "db"))
            .allows(Protocol::Tcp, 5432)
    );
    assert!(
        !e.allowed_for_every_request(id(&e, "shop", "api"), id(&e, "shop", "db"))
            .allows(Protocol::Tcp, 5432)
    );
    let e = engine(
        vec![ap(
            "shop",
            "d",
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
        )],
        vec![],
    );
    assert_eq!(
        state(&e, API, DB, 5432),
        AuthzState::Conditional,
        "may deny"
    );
    let e = engine(
        vec![db_allow(
            json!([{"when": [{"key": "request.headers[x-token]", "values": ["t"]}]}]),
        )],
        vec![],
    );
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Conditional);
}

#[test]
fn ztunnel_drops_l7_allow_rules_and_enforces_deny_rules_without_their_l7_parts() {
    let store = ("amb", "store");
    let client = ("amb", "client");
    let sel = json!({"matchLabels": {"app": "store"}});
    // istiod's handleRule: an ALLOW rule with an HTTP attribute never matches in ztunnel.
    let e = engine(
        vec![ap(
            "amb",
            "s",
            json!({"selector": sel, "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}),
        )],
        vec![],
    );
    assert_eq!(state(&e, client, store, 8080), AuthzState::Denied);
    // A DENY rule is enforced on its L4 part: the whole source matches.
    let e = engine(
        vec![ap(
            "amb",
            "s",
            json!({"selector": sel, "action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["amb"]}}], "to": [{"operation": {"paths": ["/x"]}}]}]}),
        )],
        vec![],
    );
    assert_eq!(state(&e, client, store, 8080), AuthzState::Denied);
    assert_eq!(state(&e, API, store, 8080), AuthzState::Allowed);
    // ztunnel does not enforce CUSTOM.
    let e = engine(
        vec![ap(
            "amb",
            "s",
            json!({"selector": sel, "action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]}),
        )],
        vec![],
    );
    assert_eq!(state(&e, client, store, 8080), AuthzState::Allowed);
}

#[test]
fn peer_authentication_decides_whether_there_is_a_principal() {
    let pa = |ns: &str, mode: &str| json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": ns}, "spec": {"mtls": {"mode": mode}}});
    let e = engine(vec![], vec![pa("shop", "STRICT")]);
    let d = e.authz_decision(
        Target::Pod(id(&e, "shop", "legacy")),
        id(&e, "shop", "db"),
        5432,
    );
    assert_eq!((d.state, d.mtls_mode), (AuthzState::Denied, Some("STRICT")));
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Allowed);
    // DISABLE at a sidecar: plaintext even from meshed sources, so no principal.
    let allow_api =
        db_allow(json!([{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/api"]}}]}]));
    let e = engine(vec![allow_api], vec![pa("shop", "DISABLE")]);
    assert_eq!(state(&e, API, DB, 5432), AuthzState::Denied);
    // ztunnel ignores DISABLE: HBONE is mutual TLS.
    let e = engine(
        vec![ap(
            "amb",
            "s",
            json!({"selector": {"matchLabels": {"app": "store"}}, "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/amb/sa/client"]}}]}]}),
        )],
        vec![pa("amb", "DISABLE")],
    );
    assert_eq!(
        state(&e, ("amb", "client"), ("amb", "store"), 8080),
        AuthzState::Allowed
    );
}

#[test]
fn ip_blocks_see_external_addresses() {
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]),
        )],
        vec![],
    );
    let db = id(&e, "shop", "db");
    let ext = |c: &str| Target::External(c.parse().unwrap());
    assert_eq!(
        e.authz_decision(ext("10.1.0.0/16"), db, 5432).state,
        AuthzState::Allowed
    );
    assert_eq!(
        e.authz_decision(ext("192.168.0.0/16"), db, 5432).state,
        AuthzState::Denied
    );
    assert_eq!(
        e.authz_decision(ext("0.0.0.0/0"), db, 5432).state,
        AuthzState::Conditional,
        "some addresses of the range only"
    );
    assert_eq!(
        state(&e, API, DB, 5432),
        AuthzState::Conditional,
        "a template pod's address is unknown"
    );
    // Reach reports the regions the policy's block cuts.
    let reach = e.reach();
    let w = Endpoint::Workload(deploy("shop", "db"));
    assert!(
        reach
            .get(&Endpoint::External("10.0.0.0/8".parse().unwrap()), &w)
            .is_some_and(|c| c.allows(Protocol::Tcp, 5432))
    );
    assert!(reach.iter().filter(|r| r.dst == &w).all(|r| match r.src {
        Endpoint::External(n) if !"10.0.0.0/8".parse::<ipnet::IpNet>().unwrap().contains(n) =>
            !r.conn.allows(Protocol::Tcp, 5432),
        _ => true,
    }));
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"ipBlocks": ["169.254.7.127"]}}]}]),
        )],
        vec![],
    );
    assert_eq!(
        state(&e, API, DB, 5432),
        AuthzState::Denied,
        "a pod's address is never link-local"
    );
    assert_eq!(
        e.authz_decision(
            Target::External("169.254.7.127/32".parse().unwrap()),
            id(&e, "shop", "db"),
            5432
        )
        .state,
        AuthzState::Allowed
    );
}

#[test]
fn explain_names_the_policy_and_rule() {
    let e = engine(
        vec![db_allow(
            json!([{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/web"]}}]}, {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/api"]}}]}]),
        )],
        vec![],
    );
    let x = e
        .explain(
            Target::Pod(id(&e, "shop", "api")),
            Target::Pod(id(&e, "shop", "db")),
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    assert!(x.allowed);
    let a = x.authorization.as_ref().unwrap();
    assert_eq!(
        a.decided_by.as_ref().map(|r| (r.name.as_str(), r.rule)),
        Some(("db", Some(1)))
    );
    let x = e
        .explain(
            Target::Pod(id(&e, "shop", "legacy")),
            Target::Pod(id(&e, "shop", "db")),
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    assert!(!x.allowed);
    assert!(x.verdict.starts_with("DENIED by the AuthorizationPolicies of pod shop/db-1: no rule of the ALLOW policies shop/db matches"), "{}", x.verdict);
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(json["authorization"]["state"], "denied");
    assert_eq!(json["authorization"]["enforcedBy"], "sidecar");
}

#[test]
fn invalid_policies_are_rejected_with_their_field() {
    let model = ClusterModel {
        pods: pods(),
        authorization_policies: vec![ap(
            "shop",
            "bad",
            json!({"action": "MAYBE", "rules": [{"to": [{"operation": {"ports": ["http"]}}], "from": [{"source": {"ipBlocks": ["10.0.0.300/8"]}}]}]}),
        )],
        ..ClusterModel::default()
    };
    let Err(crate::NetpolError::InvalidPolicies(errs)) =
        Engine::build(&model, EngineOptions::default())
    else {
        panic!("must refuse")
    };
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spec.action",
            "spec.rules[0].from[0].source.ipBlocks[0]",
            "spec.rules[0].to[0].operation.ports[0]"
        ]
    );
    assert!(
        errs.iter()
            .all(|e| e.kind == "AuthorizationPolicy" && e.name == "bad")
    );
}

// ---- property: the engine agrees with a direct reading of the reference ---------------------

/// A rule of the generated policies: from principals / notPrincipals / namespaces, to ports,
/// and an HTTP method (L7).
#[derive(Clone, Debug)]
struct R {
    principals: Option<Vec<&'static str>>,
    not_principals: Option<Vec<&'static str>>,
    namespaces: Option<Vec<&'static str>>,
    ports: Option<Vec<u16>>,
    method: bool,
}

#[derive(Clone, Debug)]
struct P {
    ns: &'static str,
    action: &'static str,
    selector: Option<&'static str>,
    rules: Option<Vec<R>>,
}

const PRINCIPALS: [&str; 4] = [
    "cluster.local/ns/shop/sa/api",
    "cluster.local/ns/shop/sa/default",
    "cluster.local/ns/other/sa/api",
    "*",
];
const PORTS: [u16; 3] = [5432, 9187, 80];

fn arb_rule() -> impl Strategy<Value = R> {
    let list = |xs: &'static [&'static str]| {
        proptest::option::of(proptest::sample::subsequence(xs.to_vec(), 1..=2))
    };
    (
        list(&PRINCIPALS),
        list(&PRINCIPALS),
        list(&["shop", "other"]),
        proptest::option::of(proptest::sample::subsequence(PORTS.to_vec(), 1..=2)),
        any::<bool>(),
    )
        .prop_map(
            |(principals, not_principals, namespaces, ports, method)| R {
                principals,
                not_principals,
                namespaces,
                ports,
                method,
            },
        )
}

fn arb_policy() -> impl Strategy<Value = P> {
    (
        prop_oneof![Just("shop"), Just("other"), Just("istio-system")],
        prop_oneof![Just("ALLOW"), Just("DENY"), Just("ALLOW")],
        proptest::option::of(prop_oneof![Just("db"), Just("api")]),
        proptest::option::of(proptest::collection::vec(arb_rule(), 0..3)),
    )
        .prop_map(|(ns, action, selector, rules)| P {
            ns,
            action,
            selector,
            rules,
        })
}

fn to_json(i: usize, p: &P) -> Value {
    let mut spec = serde_json::Map::new();
    spec.insert("action".into(), json!(p.action));
    if let Some(s) = p.selector {
        spec.insert("selector".into(), json!({"matchLabels": {"app": s}}));
    }
    if let Some(rules) = &p.rules {
        let rules: Vec<Value> = rules
            .iter()
            .map(|r| {
                let mut source = serde_json::Map::new();
                if let Some(v) = &r.principals {
                    source.insert("principals".into(), json!(v));
                }
                if let Some(v) = &r.not_principals {
                    source.insert("notPrincipals".into(), json!(v));
                }
                if let Some(v) = &r.namespaces {
                    source.insert("namespaces".into(), json!(v));
                }
                let mut op = serde_json::Map::new();
                if let Some(v) = &r.ports {
                    op.insert(
                        "ports".into(),
                        json!(v.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    );
                }
                if r.method {
                    op.insert("methods".into(), json!(["GET"]));
                }
                let mut rule = serde_json::Map::new();
                if !source.is_empty() {
                    rule.insert("from".into(), json!([{"source": source}]));
                }
                if !op.is_empty() {
                    rule.insert("to".into(), json!([{"operation": op}]));
                }
                Value::Object(rule)
            })
            .collect();
        spec.insert("rules".into(), json!(rules));
    }
    ap(p.ns, &format!("p{i}"), Value::Object(spec))
}

/// The reference, read directly: `Some(true)` allowed, `Some(false)` denied, `None`
/// conditional. The destination is a sidecar pod in `shop` labelled `app=<dst_app>`; the source
/// has `principal` (`None`: plaintext).
fn reference(policies: &[P], dst_app: &str, principal: Option<&str>, port: u16) -> Option<bool> {
    let matches_pattern = |pat: &str, v: &str| {
        if pat == "*" {
            true
        } else if let Some(s) = pat.strip_prefix('*') {
            v.ends_with(s)
        } else if let Some(s) = pat.strip_suffix('*') {
            v.starts_with(s)
        } else {
            pat == v
        }
    };
    let ns_of = |p: &str| p.split('/').nth(2).unwrap_or_default().to_string();
    // 0 = no, 1 = maybe, 2 = yes
    let rule = |r: &R| -> u8 {
        let mut m = 2u8;
        if let Some(ps) = &r.principals {
            m = m.min(
                if principal.is_some_and(|p| ps.iter().any(|x| matches_pattern(x, p))) {
                    2
                } else {
                    0
                },
            );
        }
        if let Some(ps) = &r.not_principals {
            m = m.min(
                if principal.is_some_and(|p| ps.iter().any(|x| matches_pattern(x, p))) {
                    0
                } else {
                    2
                },
            );
        }
        if let Some(ns) = &r.namespaces {
            m = m.min(
                if principal.is_some_and(|p| ns.contains(&ns_of(p).as_str())) {
                    2
                } else {
                    0
                },
            );
        }
        if let Some(ports) = &r.ports {
            m = m.min(if ports.contains(&port) { 2 } else { 0 });
        }
        if r.method {
            m = m.min(1);
        }
        m
    };
    let applies = |p: &P| {
        (p.ns == "shop" || p.ns == "istio-system") && p.selector.is_none_or(|s| s == dst_app)
    };
    let best = |p: &P| p.rules.iter().flatten().map(rule).max().unwrap_or(0);
    let deny = policies
        .iter()
        .filter(|p| applies(p) && p.action == "DENY")
        .map(best)
        .max()
        .unwrap_or(0);
    if deny == 2 {
        return Some(false);
    }
    let allows: Vec<&P> = policies
        .iter()
        .filter(|p| applies(p) && p.action == "ALLOW")
        .collect();
    let allow = if allows.is_empty() {
        2
    } else {
        allows.iter().map(|p| best(p)).max().unwrap_or(0)
    };
    match (allow, deny) {
        (0, _) => Some(false),
        (2, 0) => Some(true),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_reference(policies in proptest::collection::vec(arb_policy(), 0..4)) {
        let aps: Vec<Value> = policies.iter().enumerate().map(|(i, p)| to_json(i, p)).collect();
        let e = engine(aps, vec![]);
        let sources = [(API, Some(PRINCIPALS[0])), (WEB, Some(PRINCIPALS[1])), (INTRUDER, Some(PRINCIPALS[2])), (LEGACY, None)];
        for (dst, app) in [(DB, "db"), (API, "api")] {
            for (src, principal) in sources {
                if src == dst {
                    continue;
                }
                for port in [5432u16, 9187, 80, 443] {
                    let want = reference(&policies, app, principal, port);
                    let got = match state(&e, src, dst, port) {
                        AuthzState::Allowed => Some(true),
                        AuthzState::Denied => Some(false),
                        AuthzState::Conditional => None,
                        AuthzState::NotEnforced => unreachable!("sidecar destinations"),
                    };
                    prop_assert_eq!(got, want, "{:?} -> {:?} port {}", src, dst, port);
                }
            }
        }
        // The class-based all-pairs answer agrees with the per-pod one.
        let reach = e.reach();
        for (s, sp) in e.pods() {
            for (d, dp) in e.pods() {
                let direct = e.allowed(s, d);
                let got = reach.get(&Endpoint::Workload(sp.workload()), &Endpoint::Workload(dp.workload())).cloned().unwrap_or_else(Connection::none);
                prop_assert_eq!(&got, &direct, "{} -> {}", sp.name, dp.name);
                let cond = reach.iter().find(|r| r.src == &Endpoint::Workload(sp.workload()) && r.dst == &Endpoint::Workload(dp.workload())).and_then(|r| r.authz_conditional.cloned()).unwrap_or_else(Connection::none);
                prop_assert_eq!(cond, e.authz_conditional(Target::Pod(s), d).intersect(&direct));
            }
        }
    }
}
