//! `enable`, `mtls strict` and `status` against PeerAuthentication semantics: each plan's
//! PeerAuthentication writes are applied to the mesh's policies with meshmove-istio (Istio's
//! precedence: workload over namespace over mesh, oldest wins, portLevelMtls, UNSET inherits), and
//! the resulting effective modes are checked, over a grid of mesh, namespace and workload
//! policies.

use serde_json::{Value, json};

use super::enable::{self, EnableOptions, Permissive};
use super::peer_auth::{self, ANY_PORT};
use super::{mtls, status};
use meshmove_istio::{Mode, PeerAuthentication, PeerAuthentications, Target};
use meshmove_kube::plan::{Change, Plan};
use meshmove_model::inventory::Inventory;

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

fn load(objects: &[Value]) -> Inventory {
    let text: String = objects.iter().map(|o| format!("---\n{o}\n")).collect();
    let objects = meshmove_model::inventory::load_str(&text, None, "shop").unwrap();
    Inventory::from_files(objects, vec!["test.yaml".into()], "shop".into())
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pa(ns: &str, name: &str, created: &str, spec: Value) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": name, "namespace": ns, "creationTimestamp": created}, "spec": spec})
}

fn mode(m: &str) -> Value {
    json!({"mtls": {"mode": m}})
}

fn deployment(ns: &str, name: &str, port: u16) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": name, "image": name, "ports": [{"containerPort": port}]}]}}}})
}

fn service(ns: &str, name: &str, port: u16, target: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]}})
}

/// A meshed pod of `app` (it carries the proxy).
fn meshed_pod(ns: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{app}-1"), "namespace": ns, "labels": {"app": app}},
           "spec": {"containers": [{"name": app, "image": app, "ports": [{"containerPort": 8080}]}, {"name": "istio-proxy", "image": "proxy"}]}})
}

/// The policies of `inventory` once the PeerAuthentication changes of `plan` are made: applied
/// objects by server-side apply (other fields of an existing object kept), `spec.mtls.mode` set
/// on existing ones.
fn after_plan(inventory: &Inventory, plan: &Plan) -> PeerAuthentications {
    let mut set = peer_auth::policies(inventory).unwrap();
    for c in &plan.changes {
        match c {
            Change::Apply { object } if object["kind"] == "PeerAuthentication" => {
                let ns = object["metadata"]["namespace"].as_str().unwrap();
                let name = object["metadata"]["name"].as_str().unwrap();
                let written = PeerAuthentication::from_value(object).unwrap();
                let merged = match set.policies().iter().find(|p| p.policy.namespace == ns && p.policy.name == name) {
                    Some(existing) => PeerAuthentication { mode: written.mode, ..existing.clone() },
                    None => written,
                };
                set = set.apply(merged);
            }
            Change::Set { target, fields } if target.kind == "PeerAuthentication" => {
                let existing = set.policies().iter().find(|p| p.policy.name == target.name && Some(&p.policy.namespace) == target.namespace.as_ref()).unwrap().clone();
                let m = fields["/spec/mtls/mode"].as_ref().and_then(Value::as_str).unwrap();
                let mode = match m {
                    "STRICT" => Mode::Strict,
                    "PERMISSIVE" => Mode::Permissive,
                    other => panic!("unexpected mode {other}"),
                };
                set = set.apply(PeerAuthentication { mode: Some(mode), ..existing });
            }
            _ => {}
        }
    }
    set
}

fn targets(inventory: &Inventory, ns: &str) -> Vec<Target> {
    peer_auth::all_targets(&peer_auth::workload_targets(inventory, ns, &peer_auth::policies(inventory).unwrap()))
}

/// Mesh, namespace and workload policy combinations, with the shop namespace's two workloads.
fn grid() -> Vec<(String, Vec<Value>)> {
    let mesh = [None, Some("STRICT"), Some("PERMISSIVE"), Some("DISABLE"), Some("UNSET")];
    let ns_policies: [(&str, Vec<Value>); 6] = [
        ("no namespace policy", vec![]),
        ("default STRICT", vec![pa("shop", "default", T1, mode("STRICT"))]),
        ("default DISABLE", vec![pa("shop", "default", T1, mode("DISABLE"))]),
        ("older legacy PERMISSIVE", vec![pa("shop", "legacy", T1, mode("PERMISSIVE")), pa("shop", "default", T2, mode("STRICT"))]),
        ("older legacy STRICT", vec![pa("shop", "legacy", T1, mode("STRICT"))]),
        ("older legacy DISABLE", vec![pa("shop", "legacy", T1, mode("DISABLE"))]),
    ];
    let workload: [(&str, Vec<Value>); 3] = [
        ("no workload policy", vec![]),
        (
            "api PERMISSIVE, 9090 DISABLE",
            vec![pa("shop", "api", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"9090": {"mode": "DISABLE"}}}))],
        ),
        ("api ports only", vec![pa("shop", "api", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "portLevelMtls": {"8080": {"mode": "STRICT"}}}))]),
    ];
    let mut out = Vec::new();
    for m in mesh {
        for (ns_name, ns_objs) in &ns_policies {
            for (w_name, w_objs) in &workload {
                let mut objects = vec![
                    namespace("shop", json!({})),
                    namespace("istio-system", json!({})),
                    deployment("shop", "api", 8080),
                    service("shop", "api", 80, 8080),
                    deployment("shop", "web", 3000),
                ];
                if let Some(m) = m {
                    objects.push(pa("istio-system", "default", T1, mode(m)));
                }
                objects.extend(ns_objs.iter().cloned());
                objects.extend(w_objs.iter().cloned());
                out.push((format!("mesh {m:?}, {ns_name}, {w_name}"), objects));
            }
        }
    }
    out
}

#[test]
fn enable_never_lowers_a_workload_ports_effective_mode() {
    let mut written = 0;
    for (case, objects) in grid() {
        let inv = load(&objects);
        let plan = enable::plan(&inv, "shop", &EnableOptions::default()).unwrap();
        let before = peer_auth::policies(&inv).unwrap();
        let after = after_plan(&inv, &plan);
        let targets = targets(&inv, "shop");
        assert!(targets.iter().any(|t| t.port == 8080) && targets.iter().any(|t| t.port == ANY_PORT), "{case}: {targets:?}");
        for c in before.compare(&after, &targets) {
            assert!(!c.lowered(), "{case}: enable lowers {:?} from {} to {}", c.target, c.before.mode, c.after.mode);
        }
        assert!(after.namespace_mode("shop").mode >= before.namespace_mode("shop").mode, "{case}");
        // What enable says about the policy agrees with what the plan does.
        let writes = plan.changes.iter().any(|c| matches!(c, Change::Apply { object } if object["kind"] == "PeerAuthentication"));
        match enable::permissive(&inv, "shop", peer_auth::policies(&inv)) {
            Permissive::Write { raised } => {
                assert!(writes, "{case}");
                written += 1;
                let proven: Vec<_> = before.compare(&after, &targets);
                assert_eq!(raised.is_empty(), proven.is_empty(), "{case}: {raised:?} vs {proven:?}");
            }
            Permissive::Skip { reason } => assert!(!writes && reason.contains("not written"), "{case}: {reason}"),
        }
    }
    assert!(written > 0);
}

#[test]
fn enable_skips_permissive_under_a_mesh_wide_strict_and_says_why() {
    let inv = load(&[namespace("shop", json!({})), namespace("istio-system", json!({})), deployment("shop", "api", 8080), pa("istio-system", "default", T1, mode("STRICT"))]);
    let Permissive::Skip { reason } = enable::permissive(&inv, "shop", peer_auth::policies(&inv)) else { panic!("written") };
    assert!(reason.contains("already STRICT (mesh-wide PeerAuthentication istio-system/default)"), "{reason}");
    assert!(reason.ends_with("PERMISSIVE would lower 2 ports of Deployment/api"), "{reason}");
    // Under a mesh-wide DISABLE, PERMISSIVE raises: written, and the raise is reported.
    let inv = load(&[namespace("shop", json!({})), namespace("istio-system", json!({})), deployment("shop", "api", 8080), pa("istio-system", "default", T1, mode("DISABLE"))]);
    let Permissive::Write { raised } = enable::permissive(&inv, "shop", peer_auth::policies(&inv)) else { panic!("skipped") };
    let raised: Vec<String> = raised.iter().map(|r| r.to_string()).collect();
    assert!(raised.contains(&"Deployment/api port 8080: DISABLE -> PERMISSIVE (namespace-wide PeerAuthentication shop/default)".to_string()), "{raised:?}");
    // An older namespace-wide policy decides: `default` would be ignored.
    let inv = load(&[namespace("shop", json!({})), deployment("shop", "api", 8080), pa("shop", "legacy", T1, mode("DISABLE"))]);
    let Permissive::Skip { reason } = enable::permissive(&inv, "shop", peer_auth::policies(&inv)) else { panic!("written") };
    assert!(reason.contains("shop/legacy is the oldest namespace-wide policy") && reason.contains("would be ignored"), "{reason}");
}

#[test]
fn enable_skips_permissive_when_the_policies_cannot_be_read() {
    use meshmove_model::inventory::{SourceInfo, Unavailable, kinds};
    let objects = meshmove_model::inventory::load_str(&format!("{}\n", namespace("shop", json!({}))), None, "shop").unwrap();
    let listed = [(&kinds::NAMESPACE, None), (&kinds::PEER_AUTHENTICATION, Some(Unavailable::Forbidden { message: "cannot list peerauthentications".into() }))].into();
    let inv = Inventory::from_cluster(objects, listed, SourceInfo::Cluster { context: "kind".into(), namespace: None }, "shop".into());
    let Permissive::Skip { reason } = enable::permissive(&inv, "shop", peer_auth::policies(&inv)) else { panic!("written") };
    assert!(reason.contains("cannot list peerauthentications"), "{reason}");
    let plan = enable::plan(&inv, "shop", &EnableOptions::default()).unwrap();
    assert!(!plan.changes.iter().any(|c| matches!(c, Change::Apply { object } if object["kind"] == "PeerAuthentication")));
    // mtls strict cannot prove its write either, and refuses.
    let e = mtls::strict(&inv, "shop").unwrap_err().to_string();
    assert!(e.contains("cannot list peerauthentications"), "{e}");
}

#[test]
fn mtls_strict_raises_every_port_decided_above_the_workload_and_claims_exactly_what_it_raises() {
    for (case, objects) in grid() {
        let inv = load(&objects);
        let s = mtls::strict(&inv, "shop").unwrap_or_else(|e| panic!("{case}: {e}"));
        let before = peer_auth::policies(&inv).unwrap();
        let after = after_plan(&inv, &s.plan);
        let targets = targets(&inv, "shop");
        assert_eq!(after.namespace_mode("shop").mode, Mode::Strict, "{case}");
        for t in &targets {
            let (b, a) = (before.effective("shop", &t.labels, t.port), after.effective("shop", &t.labels, t.port));
            assert!(a.mode >= b.mode, "{case}: {t:?} lowered");
            let workload_level = matches!(b.from, meshmove_istio::MtlsSource::Policy { level: meshmove_istio::Level::Workload, .. });
            if !workload_level {
                assert_eq!(a.mode, Mode::Strict, "{case}: {t:?} stays {}", a.mode);
            }
        }
        // The ports it reports as raised are exactly the ones whose mode changes.
        let raised: usize = s.raised().count();
        let changed: std::collections::BTreeSet<(u16, String)> =
            before.compare(&after, &targets).into_iter().map(|c| (c.target.port, c.target.labels["app"].clone())).collect();
        assert_eq!(raised, changed.len(), "{case}: {:?} vs {changed:?}", s.ports);
        // An older namespace-wide policy is updated in place, never shadowed by a new `default`.
        let older = objects.iter().any(|o| o["metadata"]["name"] == "legacy");
        assert_eq!(s.policy, if older { "shop/legacy" } else { "shop/default" }, "{case}");
        assert_eq!(s.instead_of_default.is_some(), older, "{case}");
    }
}

#[test]
fn writing_default_next_to_an_older_namespace_policy_is_refused_by_the_proof() {
    let inv = load(&[namespace("shop", json!({})), deployment("shop", "api", 8080), pa("shop", "legacy", T1, mode("PERMISSIVE"))]);
    let before = peer_auth::policies(&inv).unwrap();
    let default = peer_auth::proposed(&before, "shop", "default", Mode::Strict);
    let e = mtls::prove(&before, &default, &targets(&inv, "shop")).unwrap_err();
    assert!(e.contains("would stay PERMISSIVE (namespace-wide PeerAuthentication shop/legacy)"), "{e}");
    // The plan sets the older policy's mode instead; the proof holds for it.
    let s = mtls::strict(&inv, "shop").unwrap();
    let Change::Set { target, fields } = &s.plan.changes[0] else { panic!("{:?}", s.plan) };
    assert_eq!((target.name.as_str(), fields["/spec/mtls/mode"].clone()), ("legacy", Some(json!("STRICT"))));
    assert!(s.instead_of_default.as_deref().unwrap().contains("shop/legacy is the oldest namespace-wide policy"));
    // A `default` that has a workload selector would stay workload-level: refused.
    let inv = load(&[namespace("shop", json!({})), deployment("shop", "api", 8080), deployment("shop", "web", 80),
                     pa("shop", "default", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": "PERMISSIVE"}}))]);
    let e = mtls::strict(&inv, "shop").unwrap_err().to_string();
    assert!(e.contains("would not take effect") && e.contains("namespace-wide mode would stay PERMISSIVE"), "{e}");
    // The root namespace is the mesh: refused.
    assert!(mtls::strict(&load(&[namespace("istio-system", json!({}))]), "istio-system").unwrap_err().to_string().contains("mesh root"));
}

#[test]
fn mtls_strict_blocks_only_plaintext_clients_of_ports_that_become_strict() {
    let reporter = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reporter", "namespace": "reports"},
        "spec": {"selector": {"matchLabels": {"app": "reporter"}}, "template": {"metadata": {"labels": {"app": "reporter"}}, "spec": {"containers": [{"name": "r", "image": "r"}]}}}});
    let base = vec![
        namespace("shop", json!({"istio-injection": "enabled"})),
        namespace("reports", json!({})),
        meshed_pod("shop", "api"),
        meshed_pod("shop", "web"),
        reporter,
        // api keeps PERMISSIVE on 8080 by its own policy.
        pa("shop", "api", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}})),
    ];
    let blockers = |extra: Vec<Value>| {
        let inv = load(&[base.clone(), extra].concat());
        mtls::strict(&inv, "shop").unwrap().readiness.blockers
    };
    assert_eq!(
        blockers(vec![]),
        [mtls::Blocker::PlaintextClient {
            client: "Deployment/reports/reporter".into(),
            reaches: vec!["Pod/api-1 other ports".into(), "Pod/web-1 port 8080".into(), "Pod/web-1 other ports".into()]
        }]
    );
    // NetworkPolicy lets the reporter reach api:8080 only, which stays PERMISSIVE: ready.
    let only_api = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 8080}]}, {"from": [{"podSelector": {}}]}]}});
    let web_isolated = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {}}]}]}});
    assert_eq!(blockers(vec![only_api.clone(), web_isolated]), []);
    // Without the isolation of web, its ports (STRICT) are reachable: named.
    assert_eq!(
        blockers(vec![only_api]),
        [mtls::Blocker::PlaintextClient {
            client: "Deployment/reports/reporter".into(),
            reaches: vec!["Pod/web-1 port 8080".into(), "Pod/web-1 other ports".into()]
        }]
    );
}

#[test]
fn a_client_template_is_judged_by_istios_injection_rule() {
    let client = |labels: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "reporter", "namespace": "reports"},
            "spec": {"selector": {"matchLabels": {"app": "reporter"}}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "r", "image": "r"}]}}}})
    };
    let blocked = |ns_labels: Value, pod_labels: Value| {
        let inv = load(&[namespace("shop", json!({"istio-injection": "enabled"})), namespace("reports", ns_labels), meshed_pod("shop", "api"), client(pod_labels)]);
        !mtls::strict(&inv, "shop").unwrap().readiness.ready()
    };
    assert!(!blocked(json!({"istio-injection": "enabled"}), json!({"app": "reporter"})));
    // Opted out of injection: it will talk plaintext.
    assert!(blocked(json!({"istio-injection": "enabled"}), json!({"app": "reporter", "sidecar.istio.io/inject": "false"})));
    // istio-injection=disabled wins over a revision label.
    assert!(blocked(json!({"istio-injection": "disabled", "istio.io/rev": "canary"}), json!({"app": "reporter"})));
    // A pod's own revision label selects injection in an unlabelled namespace.
    assert!(!blocked(json!({}), json!({"app": "reporter", "istio.io/rev": "canary"})));
    assert!(!blocked(json!({"istio.io/dataplane-mode": "ambient"}), json!({"app": "reporter"})));
}

#[test]
fn status_shows_the_effective_modes_istio_applies() {
    let inv = load(&[
        namespace("shop", json!({"istio-injection": "enabled"})),
        namespace("istio-system", json!({})),
        pa("istio-system", "default", T1, mode("STRICT")),
        // `default` is newer than `legacy`: Istio applies legacy.
        pa("shop", "default", T2, mode("STRICT")),
        pa("shop", "legacy", T1, mode("PERMISSIVE")),
        pa("shop", "api", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "portLevelMtls": {"9090": {"mode": "DISABLE"}}})),
        deployment("shop", "api", 8080),
        deployment("shop", "web", 3000),
    ]);
    let before = peer_auth::policies(&inv).unwrap();
    let s = status::status(&inv, "shop", None);
    assert_eq!(s.mtls.as_deref(), Some(before.namespace_mode("shop").mode.as_str()));
    assert_eq!((s.mtls.as_deref(), s.mtls_decided_by.as_str()), (Some("PERMISSIVE"), "namespace-wide PeerAuthentication shop/legacy"));
    let api = s.workloads.iter().find(|w| w.name == "api").unwrap().mtls.clone().unwrap();
    assert_eq!(api.summary(), "PERMISSIVE; port 9090 DISABLE");
    assert_eq!(api.ports[&9090].decided_by, "portLevelMtls of PeerAuthentication shop/api");
    let labels = [("app".to_string(), "api".to_string())].into();
    assert_eq!(api.ports[&9090].mode, before.effective("shop", &labels, 9090).mode.as_str());
    // Still pending: the namespace is not STRICT.
    assert!(s.pending.iter().any(|p| p == "mtls strict: require mutual TLS"), "{:?}", s.pending);
}

#[test]
fn the_sidecars_own_ports_are_not_workload_ports() {
    let mut pod = meshed_pod("shop", "api");
    pod["spec"]["containers"][1]["ports"] = json!([{"containerPort": 15090, "name": "http-envoy-prom"}, {"containerPort": 15021}]);
    let inv = load(&[namespace("shop", json!({})), pod]);
    let ports: Vec<u16> = targets(&inv, "shop").iter().map(|t| t.port).collect();
    assert_eq!(ports, [ANY_PORT, 8080]);
}

/// The mesh config ConfigMap as Istio's chart writes it (`rootNamespace` in the `mesh` YAML).
fn mesh_config(ns: &str, name: &str, root: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
           "data": {"mesh": format!("defaultConfig:\n  discoveryAddress: istiod.{ns}.svc:15012\nrootNamespace: {root}\ntrustDomain: cluster.local\n")}})
}

/// With the mesh config naming another root namespace, a policy in `istio-system` is an
/// ordinary namespace's, and the mesh-wide one is the root namespace's: `enable` sees the
/// mesh-wide STRICT there (and lowers nothing), treats `istio-system` as any namespace, and
/// refuses the real root; `mtls strict` likewise.
#[test]
fn the_root_namespace_comes_from_the_mesh_config() {
    let objects = |root: &str| {
        vec![
            namespace("shop", json!({})),
            namespace("istio-system", json!({})),
            namespace("mesh-admin", json!({})),
            mesh_config("istio-system", "istio", root),
            deployment("shop", "api", 8080),
            deployment("istio-system", "gw", 8443),
            pa("mesh-admin", "default", T1, mode("STRICT")),
            pa("istio-system", "default", T1, mode("DISABLE")),
        ]
    };
    let inv = load(&objects("mesh-admin"));
    let root = peer_auth::root_namespace(&inv, None).unwrap();
    assert_eq!((root.name.as_str(), root.source.as_str()), ("mesh-admin", "ConfigMap istio-system/istio"));
    let set = peer_auth::policies(&inv).unwrap();
    assert_eq!(set.root_namespace(), "mesh-admin");
    let api = Target { namespace: "shop".into(), labels: [("app".to_string(), "api".to_string())].into(), port: 8080 };
    assert_eq!(set.effective(&api.namespace, &api.labels, api.port).mode, Mode::Strict, "the mesh-wide STRICT of mesh-admin");
    let Permissive::Skip { reason } = enable::permissive(&inv, "shop", peer_auth::policies(&inv)) else { panic!("written") };
    assert!(reason.contains("mesh-wide PeerAuthentication mesh-admin/default"), "{reason}");
    // istio-system is an ordinary namespace now: its DISABLE is namespace-wide there only.
    let gw = Target { namespace: "istio-system".into(), labels: [("app".to_string(), "gw".to_string())].into(), port: 8443 };
    assert_eq!(set.effective(&gw.namespace, &gw.labels, gw.port).mode, Mode::Disable);
    let Permissive::Skip { reason } = enable::permissive(&inv, "mesh-admin", peer_auth::policies(&inv)) else { panic!("written") };
    assert!(reason.contains("mesh root namespace"), "{reason}");
    let e = mtls::strict(&inv, "mesh-admin").unwrap_err().to_string();
    assert!(e.contains("mesh-admin is the mesh root namespace"), "{e}");
    assert!(mtls::strict(&inv, "istio-system").is_ok(), "not the root namespace");
    // The same objects under the default root: istio-system's DISABLE is mesh-wide.
    let inv = load(&objects("istio-system"));
    let set = peer_auth::policies(&inv).unwrap();
    assert_eq!(set.effective(&api.namespace, &api.labels, api.port).mode, Mode::Disable);
    // The flag beats the mesh config; a name that is no namespace is refused, naming the flag.
    let root = peer_auth::root_namespace(&inv, Some("mesh-admin")).unwrap();
    assert_eq!((root.name.as_str(), root.source.as_str()), ("mesh-admin", "--mesh-root-namespace"));
    let e = peer_auth::root_namespace(&inv, Some("Mesh")).unwrap_err();
    assert!(matches!(e, peer_auth::PeerAuthError::RootFlag(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.starts_with("--mesh-root-namespace: mesh config: rootNamespace is `Mesh`"), "{e}");
}

#[test]
fn mesh_configs_that_disagree_or_do_not_parse_leave_the_root_namespace_unknown() {
    let base = vec![namespace("shop", json!({})), deployment("shop", "api", 8080)];
    // None: Istio's default.
    let root = peer_auth::root_namespace(&load(&base), None).unwrap();
    assert_eq!((root.name.as_str(), root.source.as_str()), ("istio-system", "Istio's default (no mesh config found)"));
    // Two revisions that disagree.
    let mut objects = base.clone();
    objects.push(mesh_config("istio-system", "istio", "istio-system"));
    objects.push(mesh_config("istio-system", "istio-canary", "mesh-admin"));
    let inv = load(&objects);
    let e = peer_auth::policies(&inv).unwrap_err();
    assert!(matches!(&e, peer_auth::PeerAuthError::RootsDisagree { other, .. } if other == "mesh-admin"), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("disagree") && e.contains("mesh-admin in ConfigMap istio-system/istio-canary") && e.contains("--mesh-root-namespace"), "{e}");
    // enable then writes no PeerAuthentication, saying why.
    let Permissive::Skip { reason } = enable::permissive(&inv, "shop", peer_auth::policies(&inv)) else { panic!("written") };
    assert!(reason.contains("disagree"), "{reason}");
    // A mesh config that is not YAML: named, with the key.
    let mut objects = base;
    let mut bad = mesh_config("istio-system", "istio", "x");
    bad["data"]["mesh"] = json!("rootNamespace: [unclosed\n");
    objects.push(bad);
    let e = peer_auth::root_namespace(&load(&objects), None).unwrap_err();
    assert!(matches!(&e, peer_auth::PeerAuthError::MeshYaml { key: "mesh", .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.starts_with("ConfigMap istio-system/istio, key mesh: "), "{e}");
}

/// The ports a Service sends to in each pod, by model's one reading of `targetPort`: a name per
/// pod (two pods of one Service on different numbers), `port` when absent, and a digit string as
/// its number (this function used to look `"8080"` up as a port name and find nothing, leaving
/// the port out of the PeerAuthentication targets).
#[test]
fn service_target_ports_per_pod() {
    use meshmove_netpol::{ContainerPort, PodInfo, Protocol};
    let pod = |name: &str, ports: &[(&str, u16)]| {
        let mut p = PodInfo::new("shop", name).with_labels([("app", "api")]);
        p.ports = ports.iter().map(|(n, port)| ContainerPort::new(Some(n), *port, Protocol::Tcp)).collect();
        p
    };
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": "http"}, {"port": 81}, {"port": 82, "targetPort": "8080"},
                                                       {"port": 53, "protocol": "UDP"}]}});
    assert_eq!(peer_auth::service_target_ports(&pod("a", &[("http", 8000)]), &svc), [8000, 81, 8080]);
    assert_eq!(peer_auth::service_target_ports(&pod("b", &[("http", 9000)]), &svc), [9000, 81, 8080]);
    assert_eq!(peer_auth::service_target_ports(&pod("c", &[("grpc", 9000)]), &svc), [81, 8080]);
    let mut other = pod("d", &[("http", 8000)]);
    other.labels.insert("app".into(), "web".into());
    assert!(peer_auth::service_target_ports(&other, &svc).is_empty(), "not selected");
}
