//! The deep checks over captured command outputs.
//!
//! The JSON below is written in the shape of SPIRE 1.x's `-output json` (the server API's protobuf
//! JSON with unpopulated fields emitted): SPIFFE IDs as `{trust_domain, path}`, selectors as
//! `{type, value}`, int64 fields as strings. The cluster is a small live inventory: two nodes with
//! agent pods, a server pod, and two meshed pods that mount the Workload API socket.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use meshmove_model::inventory::{Inventory, Kind, Object, Origin, SourceInfo};
use meshmove_model::findings::{Code, Outcome, Report};

use crate::catalog::{
    AGENT_ATTESTED, ENTRY_ISTIO_ID, ENTRY_PARENT, EXEC_AVAILABLE, POD_HAS_ENTRY, SERVER_BUNDLE_CURRENT,
    SERVER_BUNDLE_ROTATION, SERVER_HEALTHY,
};
use crate::{self as spire, SpireContext, SpireOptions};
use serde_json::{Value, json};

use super::server_api::k8s_selector_holds;
use super::*;

/// 2031-06-15T12:00:00Z.
const NOW: i64 = 1_939_291_200;

/// One entry of `entry show -output json`: entry `n` gives `path` under `parent` to what
/// `selector` (`type`, `value`) selects, with SPIRE's other fields as a controller-made entry has them.
fn entry_json(n: u32, path: &str, parent: &str, selector: (&str, &str), dns_names: &[&str]) -> Value {
    let agent = parent != "/spire/server";
    json!({
        "id": format!("7b1c1d1e-000{n}-4a4b-9c9d-00000000000{n}"),
        "spiffe_id": {"trust_domain": "example.org", "path": path},
        "parent_id": {"trust_domain": "example.org", "path": parent},
        "selectors": [{"type": selector.0, "value": selector.1}],
        "x509_svid_ttl": if agent { 3600 } else { 0 },
        "federates_with": [],
        "admin": false,
        "downstream": false,
        "expires_at": "0",
        "dns_names": dns_names,
        "revision_number": if dns_names.is_empty() { "0" } else { "2" },
        "store_svid": false,
        "jwt_svid_ttl": if agent { 300 } else { 0 },
        "hint": "",
        "created_at": if selector.0 == "k8s" { "1939287600" } else { "1939280000" }
    })
}

/// The server's entries: the two meshed pods (on node-1 and node-2), the node alias of the
/// cluster's agents, and an entry for a host process.
static ENTRIES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    const NODE_1: &str = "/spire/agent/k8s_psat/demo-cluster/uid-node-1";
    let entries = [
        entry_json(1, "/ns/shop/sa/cart", NODE_1, ("k8s", "pod-uid:uid-cart-0"), &["cart-0"]),
        entry_json(2, "/ns/shop/sa/checkout", "/spire/agent/k8s_psat/demo-cluster/uid-node-2", ("k8s", "pod-uid:uid-checkout-0"), &[]),
        entry_json(3, "/spire/agent/k8s_psat/demo-cluster", "/spire/server", ("k8s_psat", "cluster:demo-cluster"), &[]),
        entry_json(4, "/host/backup", NODE_1, ("unix", "uid:0"), &[]),
    ];
    serde_json::to_string_pretty(&json!({"entries": entries, "next_page_token": ""})).unwrap()
});

fn agent_json(node: &str, banned: bool, expires: i64) -> Value {
    json!({
        "id": {"trust_domain": "example.org", "path": format!("/spire/agent/k8s_psat/demo-cluster/uid-{node}")},
        "attestation_type": "k8s_psat",
        "x509svid_serial_number": "281715470147913728055350377728086773688",
        "x509svid_expires_at": expires.to_string(),
        "selectors": [
            {"type": "k8s_psat", "value": "agent_node_ip:10.0.0.1"},
            {"type": "k8s_psat", "value": format!("agent_node_name:{node}")},
            {"type": "k8s_psat", "value": format!("agent_node_uid:uid-{node}")},
            {"type": "k8s_psat", "value": "agent_ns:spire"},
            {"type": "k8s_psat", "value": "agent_sa:spire-agent"},
            {"type": "k8s_psat", "value": "cluster:demo-cluster"}
        ],
        "banned": banned,
        "can_reattest": true
    })
}

fn agents(list: &[Value]) -> String {
    serde_json::to_string_pretty(&json!({"agents": list, "next_page_token": ""})).unwrap()
}

fn healthy_agents() -> String {
    agents(&[agent_json("node-1", false, NOW + 1800), agent_json("node-2", false, NOW + 1800)])
}

fn object(value: Value) -> Object {
    Object::from_value(value, Origin::Cluster { context: "test".into() }).unwrap()
}

fn app_pod(app: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{app}-0"), "namespace": "shop", "uid": format!("uid-{app}-0"),
                     "labels": {"app": app, "spiffe.io/spire-managed-identity": "true"},
                     "annotations": {"inject.istio.io/templates": "sidecar,spire"}},
        "spec": {"serviceAccountName": app, "nodeName": node,
                 "containers": [{"name": app, "image": "registry.example/app:1"},
                                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.0",
                                 "volumeMounts": [{"name": "workload-socket", "mountPath": "/run/secrets/workload-spiffe-uds"}]}],
                 "volumes": [{"name": "workload-socket", "csi": {"driver": "csi.spiffe.io", "readOnly": true}}]},
        "status": {"phase": "Running"}
    })
}

fn owned_pod(name: &str, owner_kind: &str, owner: &str, node: &str, containers: Value, phase: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "spire", "uid": format!("uid-{name}"),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "controller": true}]},
        "spec": {"nodeName": node, "containers": containers},
        "status": {"phase": phase}
    })
}

/// The cluster. `server_conf` replaces the server's configuration.
fn cluster(server_conf: &str) -> Inventory {
    let mut objects: Vec<Object> = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "spire"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "uid": "uid-node-1"}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2", "uid": "uid-node-2"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "spire-server", "namespace": "spire"},
               "data": {"server.conf": server_conf}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "spire-server", "namespace": "spire", "labels": {"app": "spire-server"}},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "spire-server"}},
                        "template": {"metadata": {"labels": {"app": "spire-server"}},
                                     "spec": {"containers": [
                                         {"name": "spire-server", "image": "ghcr.io/spiffe/spire-server:1.9.6"},
                                         {"name": "spire-controller-manager", "image": "ghcr.io/spiffe/spire-controller-manager:0.5.0"}],
                                              "volumes": [{"name": "config", "configMap": {"name": "spire-server"}}]}}},
               "status": {"replicas": 1, "readyReplicas": 1}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "spire-agent", "namespace": "spire", "labels": {"app": "spire-agent"}},
               "spec": {"selector": {"matchLabels": {"app": "spire-agent"}},
                        "template": {"metadata": {"labels": {"app": "spire-agent"}},
                                     "spec": {"containers": [{"name": "spire-agent", "image": "ghcr.io/spiffe/spire-agent:1.9.6"}]}}},
               "status": {"desiredNumberScheduled": 2, "numberReady": 2}}),
        json!({"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID", "metadata": {"name": "istio-workloads"},
               "spec": {"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
                        "podSelector": {"matchLabels": {"spiffe.io/spire-managed-identity": "true"}}}}),
        // The controller manager runs in the server pod: the pending replacement pod sorts first
        // by name but is not Running, so the exec target is spire-server-1.
        owned_pod("spire-server-0", "StatefulSet", "spire-server", "node-1",
                  json!([{"name": "spire-server", "image": "ghcr.io/spiffe/spire-server:1.9.6"}]), "Pending"),
        owned_pod("spire-server-1", "StatefulSet", "spire-server", "node-2",
                  json!([{"name": "spire-controller-manager", "image": "ghcr.io/spiffe/spire-controller-manager:0.5.0"},
                         {"name": "server", "image": "ghcr.io/spiffe/spire-server:1.9.6"}]), "Running"),
        owned_pod("spire-agent-a", "DaemonSet", "spire-agent", "node-1", json!([{"name": "spire-agent"}]), "Running"),
        owned_pod("spire-agent-b", "DaemonSet", "spire-agent", "node-2", json!([{"name": "spire-agent"}]), "Running"),
        app_pod("cart", "node-1"),
        app_pod("checkout", "node-2"),
    ]
    .into_iter()
    .map(object)
    .collect();
    objects.sort_by(|a, b| a.kind.cmp(&b.kind));
    let listed: BTreeMap<&'static Kind, Option<meshmove_model::inventory::Unavailable>> =
        spire::KINDS.iter().map(|k| (*k, None)).collect();
    Inventory::from_cluster(
        objects,
        listed,
        SourceInfo::Cluster { context: "test".into(), namespace: None },
        "default".into(),
    )
}

const SERVER_CONF: &str = "server {\n  trust_domain = \"example.org\"\n}\n";

fn options() -> SpireOptions {
    SpireOptions { now: UNIX_EPOCH + Duration::from_secs(NOW as u64), ..SpireOptions::default() }
}

fn ok(stdout: &str) -> ExecOutput {
    ExecOutput { stdout: stdout.into(), stderr: String::new(), status: Ok(()) }
}

fn gathered(cx: &SpireContext<'_>, entries: &str, agents: &str) -> Gathered {
    Gathered {
        target: target(cx).unwrap(),
        healthcheck: ok("Server is healthy.\n"),
        entries: Ok(ok(entries)),
        agents: Ok(ok(agents)),
        bundle: Ok(ok(&server_bundle(&[NOW + 23 * HOUR_S]))),
    }
}

const HOUR_S: i64 = 3600;

/// A self-signed CA for `spiffe://example.org` (P-256) valid from 2026-12-07 to 2051-07-29,
/// made for these tests with openssl: a long-lived root, nowhere near expiry at [`NOW`].
const LONG_LIVED_CA: &str = "MIIBxjCCAWygAwIBAgIUebOnjZ8+2Gj4hdZZF7Gi/3IykQAwCgYIKoZIzj0EAwIwHjELMAkGA1UEBhMCVVMxDzANBgNVBAoMBlNQSUZGRTAgFw0yNjEyMDcxMDQzNDBaGA8yMDUxMDcyOTEwNDM0MFowHjELMAkGA1UEBhMCVVMxDzANBgNVBAoMBlNQSUZGRTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPJq4EkN8/ivHrbET7gltg2yQJbz/sk3FmESvEGrDx1GAXbCcdsGoU5JuVJXDnneb1iH+dgB1GgWqB7Yi+lbDq6jgYUwgYIwHQYDVR0OBBYEFLkIZr47mXzzSc27OGBZCqQ3k7YIMB8GA1UdIwQYMBaAFLkIZr47mXzzSc27OGBZCqQ3k7YIMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB8GA1UdEQQYMBaGFHNwaWZmZTovL2V4YW1wbGUub3JnMAoGCCqGSM49BAMCA0gAMEUCIC0mlwvQCsUasjavIsfFHAt8uauxRvGje4hKCNiktKibAiEAxIKwNfrzKJR0prYZuv9iC3F/FUnjaOTauPGobMqPj7o=";

/// `spire-server bundle show -output json` (protojson of spire.api.types.Bundle): the
/// long-lived CA and JWT authorities expiring at `jwt` (Unix seconds).
fn server_bundle(jwt: &[i64]) -> String {
    let keys: Vec<Value> = jwt
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"public_key": "MFkwEwYHKoZIzj0CAQ==", "key_id": format!("key-{i}"), "expires_at": t.to_string(), "tainted": false}))
        .collect();
    json!({"trust_domain": "example.org", "x509_authorities": [{"asn1": LONG_LIVED_CA, "tainted": false}],
           "jwt_authorities": keys, "refresh_hint": "0", "sequence_number": "3"})
    .to_string()
}

/// The deep-check codes, in report order.
static CODES: [&Code; 8] = [
    &EXEC_AVAILABLE,
    &SERVER_HEALTHY,
    &POD_HAS_ENTRY,
    &ENTRY_ISTIO_ID,
    &AGENT_ATTESTED,
    &ENTRY_PARENT,
    &SERVER_BUNDLE_CURRENT,
    &SERVER_BUNDLE_ROTATION,
];

/// The deep category alone, as a report.
fn run(input: &DeepInput<'_, '_>) -> Report {
    let mut report = Report::new(spire::CATALOG.tool, "check", input.cx.inventory.source.clone());
    report.run_checks(&[category()], input, &crate::catalog::docs_url);
    assert!(report.checks.iter().all(|c| c.category == CATEGORY));
    assert_eq!(report.checks.iter().map(|c| c.code).collect::<Vec<_>>(), CODES.map(|c| c.code));
    report
}

/// `CODE result [object]` for every check that is not ok, as in the fixture grid.
fn non_ok(input: &DeepInput<'_, '_>) -> BTreeSet<String> {
    let report = run(input);
    let mut out = BTreeSet::new();
    for c in report.checks.iter().filter(|c| c.result != Outcome::Ok) {
        if c.result == Outcome::Skipped {
            out.insert(format!("{} skipped", c.code));
            continue;
        }
        for f in report.findings_of(c.code) {
            out.insert(match &f.object {
                Some(o) => format!("{} {} {o}", c.code, c.result),
                None => format!("{} {}", c.code, c.result),
            });
        }
    }
    out
}

/// What a check says: what it found when it passed, its problems when it failed, the reason it
/// was skipped.
fn details(input: &DeepInput<'_, '_>, code: &str) -> Vec<String> {
    lines(&run(input), code)
}

fn lines(report: &Report, code: &str) -> Vec<String> {
    match report.check(code).unwrap().result {
        Outcome::Ok => report.check(code).unwrap().info.clone(),
        Outcome::Skipped => vec![report.skip_reason(code).unwrap().to_string()],
        _ => report
            .findings_of(code)
            .map(|f| match &f.object {
                Some(o) => format!("{o}: {}", f.message),
                None => f.message.clone(),
            })
            .collect(),
    }
}

#[test]
fn parses_entry_show_json() {
    let entries = parse_entries(&ENTRIES).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0].id, "7b1c1d1e-0001-4a4b-9c9d-000000000001");
    assert_eq!(entries[0].spiffe_id, "spiffe://example.org/ns/shop/sa/cart");
    assert_eq!(entries[0].parent_id, "spiffe://example.org/spire/agent/k8s_psat/demo-cluster/uid-node-1");
    assert_eq!(entries[0].selectors, [Selector { kind: "k8s".into(), value: "pod-uid:uid-cart-0".into() }]);
    assert_eq!(entries[2].selectors[0].to_string(), "k8s_psat:cluster:demo-cluster");
    assert_eq!(parse_entries(r#"{"entries": [], "next_page_token": ""}"#).unwrap(), []);
}

#[test]
fn parses_agent_list_json() {
    let list = parse_agents(&agents(&[
        agent_json("node-1", true, NOW),
        json!({
            "id": {"trust_domain": "example.org", "path": "/spire/agent/join_token/abc"},
            "attestation_type": "join_token", "x509svid_serial_number": "1", "x509svid_expires_at": 0,
            "selectors": [], "banned": false
        }),
    ]))
    .unwrap();
    assert_eq!(list[0].id, "spiffe://example.org/spire/agent/k8s_psat/demo-cluster/uid-node-1");
    assert_eq!(list[0].node_name(), Some("node-1"));
    assert!(list[0].banned);
    assert_eq!(list[0].expires_at, Some(NOW));
    assert_eq!(list[1].attestation_type, "join_token");
    assert_eq!(list[1].node_name(), None);
    assert_eq!(list[1].expires_at, None, "0 means unknown, as a number or a string");
}

#[test]
fn parse_errors_name_the_command() {
    let e = parse_entries("Error: flag provided but not defined: -output").unwrap_err();
    assert!(
        matches!(e, OutputError::NotJson { command: "spire-server entry show -output json", .. }),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("`spire-server entry show -output json` did not print JSON ("), "{e}");
    let e = parse_agents(r#"{"next_page_token": ""}"#).unwrap_err();
    assert_eq!(e.to_string(), "`spire-server agent list -output json` printed no `agents` list");
    let e =
        parse_entries(r#"{"entries": [{"id": "x", "parent_id": {"trust_domain": "t", "path": "/p"}}]}"#).unwrap_err();
    assert_eq!(
        e,
        OutputError::Item {
            command: "spire-server entry show -output json",
            noun: "entry",
            index: 1,
            problem: ItemProblem::NoSpiffeId
        }
    );
    assert_eq!(e.to_string(), "`spire-server entry show -output json`: entry 1: a missing SPIFFE ID");
    let e = parse_entries(r#"{"entries": [{"id": "x", "spiffe_id": "spiffe://t/a", "parent_id": "spiffe://t/p", "selectors": [{"type": "k8s"}]}]}"#)
        .unwrap_err();
    assert!(matches!(e, OutputError::Item { problem: ItemProblem::SelectorWithoutValue, .. }), "{e:?}");
}

#[test]
fn k8s_selectors_against_a_pod() {
    let pod = app_pod("cart", "node-1");
    let mut owned = pod.clone();
    owned["metadata"]["ownerReferences"] = json!([{"kind": "ReplicaSet", "name": "cart-5f7", "uid": "rs-uid"}]);
    for (sel, want) in [
        ("ns:shop", Some(true)),
        ("ns:other", Some(false)),
        ("sa:cart", Some(true)),
        ("pod-uid:uid-cart-0", Some(true)),
        ("pod-name:cart-1", Some(false)),
        ("node-name:node-1", Some(true)),
        ("pod-label:app:cart", Some(true)),
        ("pod-label:app:checkout", Some(false)),
        ("pod-label:spiffe.io/spire-managed-identity:true", Some(true)),
        ("container-name:istio-proxy", Some(true)),
        ("container-image:docker.io/istio/proxyv2:1.22.0", Some(true)),
        ("pod-image-count:2", None),
    ] {
        assert_eq!(k8s_selector_holds(sel, &pod), want, "{sel}");
    }
    assert_eq!(k8s_selector_holds("pod-owner:ReplicaSet:cart-5f7", &owned), Some(true));
    assert_eq!(k8s_selector_holds("pod-owner-uid:rs-uid", &owned), Some(true));
    assert_eq!(k8s_selector_holds("pod-owner:ReplicaSet:cart-5f7", &pod), Some(false));
    let entry = |sels: &[(&str, &str)]| Entry {
        id: "e".into(),
        spiffe_id: "spiffe://example.org/x".into(),
        parent_id: "spiffe://example.org/p".into(),
        selectors: sels.iter().map(|(k, v)| Selector { kind: k.to_string(), value: v.to_string() }).collect(),
    };
    assert!(entry_selects(&entry(&[("k8s", "ns:shop"), ("k8s", "sa:cart")]), &pod));
    assert!(!entry_selects(&entry(&[("k8s", "ns:shop"), ("k8s", "sa:checkout")]), &pod));
    assert!(
        !entry_selects(&entry(&[("k8s", "ns:shop"), ("unix", "uid:0")]), &pod),
        "a non-k8s selector never matches a pod"
    );
    assert!(!entry_selects(&entry(&[]), &pod), "an entry without selectors matches nothing");
}

#[test]
fn target_is_the_running_server_pod_and_its_server_container() {
    let inv =
        cluster("server {\n  trust_domain = \"example.org\"\n  socket_path = \"/run/spire/sockets/server.sock\"\n}\n");
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let t = target(&cx).unwrap();
    assert_eq!(t.pod.to_string(), "Pod/spire/spire-server-1");
    assert_eq!(t.container, "server", "found by image when no container is named spire-server");
    assert_eq!(
        t.command(&["entry", "show", "-output", "json"]),
        [
            "/opt/spire/bin/spire-server",
            "entry",
            "show",
            "-output",
            "json",
            "-socketPath",
            "/run/spire/sockets/server.sock"
        ]
    );
    let inv = cluster(SERVER_CONF);
    let cx = SpireContext::new(&inv, &opts);
    assert_eq!(target(&cx).unwrap().command(&["healthcheck"]), ["/opt/spire/bin/spire-server", "healthcheck"]);
}

#[test]
fn no_target_without_a_running_server_pod() {
    let inv = cluster(SERVER_CONF);
    let objects: Vec<Object> = inv.objects().iter().filter(|o| o.name != "spire-server-1").cloned().collect();
    let listed = spire::KINDS.iter().map(|k| (*k, None)).collect();
    let inv = Inventory::from_cluster(objects, listed, inv.source.clone(), "default".into());
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    assert_eq!(target(&cx).unwrap_err().to_string(), "StatefulSet/spire/spire-server: no Running pod to exec into");
}

#[test]
fn healthy_server_passes_every_deep_check() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, &ENTRIES, &healthy_agents())) };
    assert_eq!(non_ok(&input), BTreeSet::new());
    assert_eq!(details(&input, "SC2702"), ["Pod/spire/spire-server-1: Server is healthy."]);
    assert_eq!(details(&input, "SC2703"), ["2 meshed pod(s) checked against 4 entries"]);
    assert_eq!(details(&input, "SC2705"), ["2 node(s) with agent pods, 2 attested agent(s)"]);
}

#[test]
fn exec_unavailable_fails_the_first_check_and_skips_the_rest() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let why = "Pod/spire/spire-server-1: exec not available: HTTP 404 the server could not find the requested resource";
    let refused = GatherError::Exec {
        pod: meshmove_model::inventory::ObjectRef::new("Pod", Some("spire"), "spire-server-1"),
        source: ExecError::NotAvailable { code: 404, detail: " the server could not find the requested resource".into() },
    };
    assert_eq!(refused.to_string(), why);
    let input = DeepInput { cx: &cx, gathered: Err(refused) };
    let report = run(&input);
    assert_eq!(report.checks[0].result, Outcome::Error);
    assert_eq!(lines(&report, "SC2701"), [why]);
    for c in &report.checks[1..] {
        assert_eq!(c.result, Outcome::Skipped, "{}", c.code);
        assert_eq!(report.skip_reason(c.code), Some("SC2701 (The SPIRE server pod accepts exec) failed"));
    }
    let report = report.finish(&[]);
    assert_eq!(report.summary.errors, 1);
    assert!(report.findings[0].docs.ends_with("/docs/findings.md#sc2701"), "{}", report.findings[0].docs);
}

#[test]
fn failing_healthcheck_is_an_error_with_what_the_server_said() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let mut g = gathered(&cx, &ENTRIES, &healthy_agents());
    g.healthcheck = ExecOutput {
        stdout: String::new(),
        stderr: "\nServer is unhealthy: unable to determine health\n".into(),
        status: Err(meshmove_kube::exec::CommandFailed::ExitCode("1".into())),
    };
    let input = DeepInput { cx: &cx, gathered: Ok(g) };
    assert_eq!(non_ok(&input), BTreeSet::from(["SC2702 error Pod/spire/spire-server-1".to_string()]));
    assert_eq!(
        details(&input, "SC2702"),
        [
            "Pod/spire/spire-server-1: `spire-server healthcheck` failed (exit code 1: Server is unhealthy: unable to determine health)"
        ]
    );
}

#[test]
fn entries_are_compared_with_the_pods() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    // cart: its entry renders the pod name instead of Istio's ID, and hangs off node-2's agent
    // although the pod runs on node-1. checkout: no entry at all.
    let mut doc: Value = serde_json::from_str(&ENTRIES).unwrap();
    doc["entries"][0]["spiffe_id"]["path"] = json!("/ns/shop/pod/cart-0");
    doc["entries"][0]["parent_id"]["path"] = json!("/spire/agent/k8s_psat/demo-cluster/uid-node-2");
    doc["entries"].as_array_mut().unwrap().remove(1);
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, &doc.to_string(), &healthy_agents())) };
    assert_eq!(
        non_ok(&input),
        BTreeSet::from([
            "SC2703 error Pod/shop/checkout-0".to_string(),
            "SC2704 error Pod/shop/cart-0".to_string(),
            "SC2706 error Pod/shop/cart-0".to_string(),
        ])
    );
    assert_eq!(
        details(&input, "SC2703"),
        ["Pod/shop/checkout-0: no registration entry selects this pod (3 entries on the server)"]
    );
    assert_eq!(
        details(&input, "SC2704"),
        [
            "Pod/shop/cart-0: entry 7b1c1d1e-0001-4a4b-9c9d-000000000001 gives spiffe://example.org/ns/shop/pod/cart-0; Istio expects spiffe://example.org/ns/shop/sa/cart"
        ]
    );
    assert_eq!(
        details(&input, "SC2706"),
        [
            "Pod/shop/cart-0: entry 7b1c1d1e-0001-4a4b-9c9d-000000000001 belongs to the agent of node node-2, but the pod runs on node-1"
        ]
    );
}

#[test]
fn entries_under_a_node_alias_or_an_unknown_parent() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let mut doc: Value = serde_json::from_str(&ENTRIES).unwrap();
    // cart hangs off the node alias (fine); checkout off an agent the server does not know.
    doc["entries"][0]["parent_id"]["path"] = json!("/spire/agent/k8s_psat/demo-cluster");
    doc["entries"][1]["parent_id"]["path"] = json!("/spire/agent/k8s_psat/demo-cluster/uid-gone");
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, &doc.to_string(), &healthy_agents())) };
    assert_eq!(non_ok(&input), BTreeSet::from(["SC2706 error Pod/shop/checkout-0".to_string()]));
    assert_eq!(
        details(&input, "SC2706"),
        [
            "Pod/shop/checkout-0: entry 7b1c1d1e-0002-4a4b-9c9d-000000000002 has parent spiffe://example.org/spire/agent/k8s_psat/demo-cluster/uid-gone, which is no attested agent"
        ]
    );
}

#[test]
fn agents_banned_expired_or_missing() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    // node-1's agent is banned; node-2 has only an expired one.
    let list = agents(&[agent_json("node-1", true, NOW + 1800), agent_json("node-2", false, NOW - 60)]);
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, &ENTRIES, &list)) };
    let got = non_ok(&input);
    assert!(got.contains("SC2705 error Node/node-1") && got.contains("SC2705 error Node/node-2"), "{got:?}");
    // The entries of both pods now hang off unusable agents.
    assert!(
        got.contains("SC2706 error Pod/shop/cart-0") && got.contains("SC2706 error Pod/shop/checkout-0"),
        "{got:?}"
    );
    let d = details(&input, "SC2705");
    assert_eq!(d[0], "Node/node-1: agent spiffe://example.org/spire/agent/k8s_psat/demo-cluster/uid-node-1 is banned");
    assert_eq!(
        d[1],
        "Node/node-2: agent spiffe://example.org/spire/agent/k8s_psat/demo-cluster/uid-node-2 has an expired SVID (expired 2031-06-15T11:59:00Z)"
    );
    // No agent at all for node-2.
    let list = agents(&[agent_json("node-1", false, NOW + 1800)]);
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, &ENTRIES, &list)) };
    assert_eq!(
        details(&input, "SC2705"),
        ["Node/node-2: agent pod Pod/spire/spire-agent-b runs here, but no attested agent names this node"]
    );
}

#[test]
fn agents_without_node_names_cannot_be_matched() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let list =
        agents(&[json!({"id": "spiffe://example.org/spire/agent/join_token/t1", "attestation_type": "join_token",
                                "selectors": [], "banned": false, "x509svid_expires_at": "0"})]);
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, &ENTRIES, &list)) };
    let report = run(&input);
    assert_eq!(report.check("SC2705").unwrap().result, Outcome::Skipped);
    let why = report.skip_reason("SC2705").unwrap();
    assert!(why.contains("attestation: join_token"), "{why}");
}

#[test]
fn a_server_without_json_output_skips_the_comparisons() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let mut g = gathered(&cx, &ENTRIES, &healthy_agents());
    g.entries = Ok(ExecOutput {
        stdout: String::new(),
        stderr: "flag provided but not defined: -output\nUsage of entry show:\n".into(),
        status: Err(meshmove_kube::exec::CommandFailed::ExitCode("1".into())),
    });
    let input = DeepInput { cx: &cx, gathered: Ok(g) };
    assert_eq!(
        non_ok(&input),
        BTreeSet::from(["SC2703 skipped".to_string(), "SC2704 skipped".to_string(), "SC2706 skipped".to_string()])
    );
    assert_eq!(
        details(&input, "SC2703"),
        ["`spire-server entry show -output json` failed (exit code 1: flag provided but not defined: -output)"]
    );
}

#[test]
fn pods_outside_the_workload_namespace_are_not_compared() {
    let inv = cluster(SERVER_CONF);
    let opts = SpireOptions { workload_namespace: Some("other".into()), ..options() };
    let cx = SpireContext::new(&inv, &opts);
    let input = DeepInput { cx: &cx, gathered: Ok(gathered(&cx, r#"{"entries": []}"#, &healthy_agents())) };
    assert_eq!(non_ok(&input), BTreeSet::new());
    assert_eq!(details(&input, "SC2703"), ["0 meshed pod(s) checked against 0 entries"]);
}

#[test]
fn the_servers_own_bundle_dates_jwt_authorities() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let mut g = gathered(&cx, &ENTRIES, &healthy_agents());
    // An expired JWT key, and the current one 2h from expiry with no successor (24h keys
    // activate their successor 4h before).
    g.bundle = Ok(ok(&server_bundle(&[NOW - 86_400, NOW + 2 * HOUR_S])));
    let input = DeepInput { cx: &cx, gathered: Ok(g) };
    assert_eq!(
        non_ok(&input),
        BTreeSet::from([
            "SC2707 error Pod/spire/spire-server-1".to_string(),
            "SC2708 warning Pod/spire/spire-server-1".to_string()
        ])
    );
    let expired = details(&input, "SC2707");
    assert!(
        expired[0].contains("JWT authority #1 (kid key-0, expires ")
            && expired[0].ends_with("expired 1d ago: JWT-SVIDs it signed no longer verify"),
        "{expired:?}"
    );
    // A server that cannot print its bundle: the two checks are skipped, saying why.
    let mut g = gathered(&cx, &ENTRIES, &healthy_agents());
    g.bundle = Ok(ExecOutput {
        stdout: String::new(),
        stderr: "Error: unknown flag".into(),
        status: Err(meshmove_kube::exec::CommandFailed::ExitCode("1".into())),
    });
    let input = DeepInput { cx: &cx, gathered: Ok(g) };
    assert_eq!(non_ok(&input), BTreeSet::from(["SC2707 skipped".to_string(), "SC2708 skipped".to_string()]));
    assert_eq!(
        details(&input, "SC2707"),
        ["`spire-server bundle show -output json` failed (exit code 1: Error: unknown flag)"]
    );
}

#[test]
fn codes_are_the_catalogs_sc27xx_and_documented() {
    let in_catalog: Vec<&str> =
        spire::CATALOG.codes.iter().map(|c| c.code).filter(|c| c.starts_with("SC27")).collect();
    assert_eq!(in_catalog, CODES.map(|c| c.code), "the deep checks are the catalog's SC27xx, in order");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/findings.md")).unwrap();
    for c in CODES {
        assert!(c.hint.ends_with('.') && !c.title.ends_with('.'), "{}", c.code);
        let section =
            docs.split(&format!("\n### {}\n", c.code)).nth(1).unwrap_or_else(|| panic!("{} is not documented", c.code));
        assert!(
            section.trim_start().starts_with(&format!("**{}** ({})", c.title, c.severity)),
            "{}: heading line",
            c.code
        );
    }
}

/// Captured outputs by command, standing in for the exec API; records what was run.
struct Captured {
    outputs: Vec<(&'static str, Result<ExecOutput, ExecError>)>,
    ran: std::cell::RefCell<Vec<(String, Vec<String>)>>,
}

impl Exec for Captured {
    async fn exec(&self, target: &Target, argv: Vec<String>) -> Result<ExecOutput, ExecError> {
        let out = self.outputs.iter().find(|(sub, _)| argv.get(1).map(String::as_str) == Some(*sub));
        self.ran.borrow_mut().push((target.container.clone(), argv.clone()));
        out.map(|(_, o)| o.clone()).unwrap_or_else(|| Err(ExecError::Failed("no such command".into())))
    }
}

/// Poll a future that never waits (the captured outputs are ready at once).
fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the captured exec never waits"),
    }
}

#[test]
fn gather_runs_the_four_commands_in_the_server_container() {
    let inv = cluster(SERVER_CONF);
    let opts = options();
    let cx = SpireContext::new(&inv, &opts);
    let exec = Captured {
        outputs: vec![("healthcheck", Ok(ok("Server is healthy.\n"))), ("entry", Ok(ok(&ENTRIES))), ("agent", Err(ExecError::Stream("stream broke".into())))],
        ran: Default::default(),
    };
    let g = ready(gather(&exec, &cx)).unwrap();
    let ran = exec.ran.borrow();
    let subcommands: Vec<&str> = ran.iter().map(|(_, argv)| argv[1].as_str()).collect();
    assert_eq!(subcommands, ["healthcheck", "entry", "agent", "bundle"]);
    assert!(ran.iter().all(|(container, argv)| container == "server" && argv[0] == SERVER_BINARY));
    assert_eq!(g.agents, Err(ExecError::Stream("stream broke".into())), "a later call that fails is kept per command");
    assert_eq!(g.bundle, Err(ExecError::Failed("no such command".into())));
    // A first call that cannot be made is why exec is impossible, named by the pod.
    let refused = Captured {
        outputs: vec![("healthcheck", Err(ExecError::NotAllowed { code: 403, detail: String::new() }))],
        ran: Default::default(),
    };
    let why = ready(gather(&refused, &cx)).unwrap_err();
    assert_eq!(why.to_string(), "Pod/spire/spire-server-1: exec not allowed: HTTP 403");
    assert_eq!(refused.ran.borrow().len(), 1, "nothing runs after the first refusal");
    let input = DeepInput { cx: &cx, gathered: Err(why) };
    assert_eq!(non_ok(&input).len(), CODES.len());
}
