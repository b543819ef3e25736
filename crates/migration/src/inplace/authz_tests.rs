//! `enable --authz` offline: where the policies go in the plan, and what they do, judged by the
//! engine on the namespace as `enable` leaves it.

use meshmove_kube::plan::Change;
use meshmove_model::inventory::{Inventory, load_str};
use meshmove_netpol::view::{self, ModelOptions};
use meshmove_netpol::{Engine, EngineOptions, PodId, Protocol};
use serde_json::Value;

use super::authz::{AuthzOptions, on_the_mesh};
use super::enable::{self, EnableOptions, Mode};
use super::peer_auth;

/// web calls api, api uses db (addresses in their env); `legacy` opts out of injection and
/// calls api when `LEGACY` is appended.
const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {serviceAccountName: web, containers: [{name: web, image: web, env: [{name: API, value: "http://api/v1"}]}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec: {selector: {matchLabels: {app: api}}, template: {metadata: {labels: {app: api}}, spec: {serviceAccountName: api, containers: [{name: api, image: api, ports: [{containerPort: 8000}], env: [{name: DATABASE_URL, value: "postgres://u@db:5432/shop"}]}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec: {selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: postgres:16, ports: [{containerPort: 5432}]}]}}}
"#;

const LEGACY: &str = r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: shop}
spec: {selector: {matchLabels: {app: legacy}}, template: {metadata: {labels: {app: legacy, sidecar.istio.io/inject: "false"}}, spec: {serviceAccountName: legacy, containers: [{name: l, image: l, env: [{name: API, value: "http://api.shop.svc.cluster.local"}]}]}}}
"#;

fn load(text: &str) -> Inventory {
    Inventory::from_files(
        load_str(text, None, "shop").unwrap(),
        vec!["test.yaml".into()],
        "shop".into(),
    )
}

fn options(mode: Mode) -> EnableOptions {
    EnableOptions {
        mode,
        authz: Some(AuthzOptions::default()),
        ..EnableOptions::default()
    }
}

/// The engine over the namespace as `enable` leaves it, with the plan's objects applied.
fn engine_after(inventory: &Inventory, plan: &meshmove_kube::plan::Plan, mode: Mode) -> Engine {
    let labels: meshmove_istio::Labels = match mode {
        Mode::Sidecar => [("istio-injection".to_string(), "enabled".to_string())].into(),
        Mode::Ambient => [("istio.io/dataplane-mode".to_string(), "ambient".to_string())].into(),
    };
    let written: Vec<Value> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Apply { object }
                if object["kind"] == "AuthorizationPolicy"
                    || object["kind"] == "PeerAuthentication" =>
            {
                Some(object.clone())
            }
            _ => None,
        })
        .collect();
    let after = on_the_mesh(inventory, "shop", mode, &labels, &written);
    let model = view::build(&after, ModelOptions { probes: false });
    Engine::build_lenient(&model.cluster, EngineOptions::default())
        .unwrap()
        .0
}

fn pod(e: &Engine, name: &str) -> PodId {
    e.pods()
        .find(|(_, p)| p.workload().name == name)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no pod of {name}"))
}

fn reaches(e: &Engine, from: &str, to: &str, port: u16) -> bool {
    e.allowed_for_every_request(pod(e, from), pod(e, to))
        .allows(Protocol::Tcp, port)
}

#[test]
fn policies_come_last_and_keep_the_connections_in_use() {
    for mode in [Mode::Sidecar, Mode::Ambient] {
        let inventory = load(SHOP);
        let (plan, generated) =
            enable::plan_with_authz(&inventory, "shop", &options(mode)).unwrap();
        let generated = generated.expect("asked for");
        let aps: Vec<&str> = generated.policies.iter().map(|g| g.name.as_str()).collect();
        // web has no Service: nothing in use reaches it, and its policy admits nothing but the mesh's.
        assert_eq!(
            aps,
            ["api-authz", "db-authz", "web-authz"],
            "{mode:?}: {:?}",
            generated.withheld
        );
        // After every restart and wait: a principal exists once its client carries the proxy.
        let first_ap = plan.changes.iter().position(|c| matches!(c, Change::Apply { object } if object["kind"] == "AuthorizationPolicy")).unwrap();
        assert!(plan.changes[first_ap..].iter().all(
            |c| matches!(c, Change::Apply { object } if object["kind"] == "AuthorizationPolicy")
        ));
        assert_eq!(plan.changes.len() - first_ap, 3);
        let e = engine_after(&inventory, &plan, mode);
        assert!(reaches(&e, "web", "api", 8000), "{mode:?}");
        assert!(reaches(&e, "api", "db", 5432), "{mode:?}");
        assert!(
            !reaches(&e, "web", "db", 5432),
            "{mode:?}: web is no client of the database"
        );
        assert!(
            !reaches(&e, "api", "db", 9999),
            "{mode:?}: the ports in use only"
        );
        assert!(
            !reaches(&e, "api", "web", 8000),
            "{mode:?}: nobody calls web"
        );
    }
    // Without --authz, no policy and nothing generated.
    let (plan, none) =
        enable::plan_with_authz(&load(SHOP), "shop", &EnableOptions::default()).unwrap();
    assert!(none.is_none());
    assert!(
        !plan.changes.iter().any(
            |c| matches!(c, Change::Apply { object } if object["kind"] == "AuthorizationPolicy")
        )
    );
}

/// The injector skips `legacy`: it calls api in plaintext, without the principal api's policy
/// would need, so that policy is withheld (named, with its override) and api stays reachable.
#[test]
fn a_client_the_injector_skips_withholds_its_servers_policy() {
    let inventory = load(&format!("{SHOP}{LEGACY}"));
    let (plan, generated) =
        enable::plan_with_authz(&inventory, "shop", &options(Mode::Sidecar)).unwrap();
    let generated = generated.unwrap();
    let w = generated
        .withheld
        .iter()
        .find(|w| w.subject == "Deployment/api")
        .expect("api withheld");
    assert!(
        w.reason
            .contains("Deployment/legacy -> Deployment/api on TCP 8000"),
        "{w:?}"
    );
    assert_eq!(w.isolate_with, "--authz-isolate-anyway api");
    let e = engine_after(&inventory, &plan, Mode::Sidecar);
    assert!(reaches(&e, "legacy", "api", 8000) && reaches(&e, "web", "api", 8000));
    assert!(
        !reaches(&e, "web", "db", 5432),
        "db's policy still goes out"
    );
}

/// Unknown PeerAuthentications: nothing can be proven, so `--authz` refuses the whole plan.
#[test]
fn unknown_peer_authentications_refuse_authz() {
    let unknown = Err(peer_auth::PeerAuthError::Unreadable("forbidden".into()));
    let opts = EnableOptions {
        policies: Some(unknown),
        ..options(Mode::Sidecar)
    };
    let err = enable::plan(&load(SHOP), "shop", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--authz: PeerAuthentications could not be read (forbidden)"),
        "{err}"
    );
}

/// Namespace `b`, injected when `meshed`, and its `caller`, which names api's Service across
/// namespaces (`api.shop`), as cluster DNS resolves it from `b`.
fn namespace_b(meshed: bool) -> (String, &'static str) {
    let labels = if meshed { "{istio-injection: enabled}" } else { "{}" };
    let ns = format!("\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: b, labels: {labels}}}\n");
    let caller = r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: caller, namespace: b}
spec: {selector: {matchLabels: {app: caller}}, template: {metadata: {labels: {app: caller}}, spec: {serviceAccountName: caller, containers: [{name: c, image: c, env: [{name: API, value: "http://api.shop:80/v1"}]}]}}}
"#;
    (ns, caller)
}

fn with_elsewhere(elsewhere: super::authz::Elsewhere, isolate_anyway: &[&str]) -> EnableOptions {
    EnableOptions {
        authz: Some(AuthzOptions {
            elsewhere,
            isolate_anyway: isolate_anyway.iter().map(|s| s.to_string()).collect(),
            ..AuthzOptions::default()
        }),
        ..options(Mode::Sidecar)
    }
}

/// A caller in another namespace naming `api.shop`: read with the other namespaces, it is
/// admitted by its principal (and the engine shows it keeps its connection while a stranger is
/// refused); outside the mesh, api's policy is withheld naming it; unreadable, every policy of a
/// workload a Service selects is withheld with the reason.
#[test]
fn callers_in_other_namespaces_are_admitted_or_their_servers_policy_withheld() {
    use super::authz::Elsewhere;
    for meshed in [true, false] {
        let (ns, caller) = namespace_b(meshed);
        let inventory = load(&format!("{SHOP}{ns}"));
        let elsewhere = Elsewhere::Read(load(caller).into_objects());
        let (plan, generated) = enable::plan_with_authz(&inventory, "shop", &with_elsewhere(elsewhere, &[])).unwrap();
        let generated = generated.unwrap();
        // The engine over the cluster as it is: the caller's namespace included.
        let whole = load(&format!("{SHOP}{ns}{caller}"));
        let e = engine_after(&whole, &plan, Mode::Sidecar);
        assert!(reaches(&e, "caller", "api", 8000), "meshed {meshed}: the caller keeps its connection");
        let api = generated.policies.iter().find(|g| g.name == "api-authz");
        if meshed {
            let api = api.expect("api's policy");
            let principals = api.object.pointer("/spec/rules/0/from/0/source/principals").cloned().unwrap_or_default();
            assert!(principals.as_array().is_some_and(|p| p.contains(&"*/ns/b/sa/caller".into())), "{}", api.object);
            assert!(!reaches(&e, "web", "db", 5432), "the policies still guard");
        } else {
            assert!(api.is_none());
            let w = generated.withheld.iter().find(|w| w.subject == "Deployment/api").expect("api withheld");
            assert_eq!(w.refuses.iter().map(|r| r.from.as_str()).collect::<Vec<_>>(), ["Deployment/b/caller"], "{w:?}");
        }
        // Nothing of the other namespace is guarded or reported.
        assert!(generated.policies.iter().all(|g| g.namespace == "shop"));
        assert!(generated.withheld.iter().all(|w| w.namespace == "shop"), "{:?}", generated.withheld);
    }

    // Not read: what a Service selects may be called from elsewhere unseen.
    let (ns, _) = namespace_b(true);
    let inventory = load(&format!("{SHOP}{ns}"));
    let why = "could not list deployments in every namespace: forbidden".to_string();
    let (_, generated) = enable::plan_with_authz(&inventory, "shop", &with_elsewhere(Elsewhere::Unreadable(why.clone()), &[])).unwrap();
    let generated = generated.unwrap();
    assert_eq!(generated.policies.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["web-authz"], "web has no Service");
    let withheld: Vec<(&str, &str)> = generated.withheld.iter().map(|w| (w.subject.as_str(), w.isolate_with.as_str())).collect();
    assert_eq!(withheld, [("Deployment/api", "--authz-isolate-anyway api"), ("StatefulSet/db", "--authz-isolate-anyway db")]);
    assert!(generated.withheld.iter().all(|w| w.reason.contains(&why)), "{:?}", generated.withheld);
    assert!(generated.withheld[0].reason.contains("naming api.shop"), "{:?}", generated.withheld);
    // The override writes it, with a note.
    let (_, generated) = enable::plan_with_authz(&inventory, "shop", &with_elsewhere(Elsewhere::Unreadable(why), &["api"])).unwrap();
    let generated = generated.unwrap();
    assert!(generated.policies.iter().any(|g| g.name == "api-authz"));
    assert!(generated.notes.iter().any(|n| n.starts_with("Deployment/api: AuthorizationPolicy written anyway (--authz-isolate-anyway api)")), "{:?}", generated.notes);
}
