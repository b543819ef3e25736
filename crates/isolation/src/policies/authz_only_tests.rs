//! `authorization_policies` judged by the engine: the AuthorizationPolicies alone (no
//! NetworkPolicy) are added to the input and the engine says who reaches whom.

use super::tests::{Oracle, SHOP, inventory};
use super::*;
use meshmove_netpol::{AuthzState, Enforcer, Protocol, Target};

/// `shop` injected by the sidecar injector (the namespace as `enable` leaves it).
const SIDECAR_NS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
";

const AMBIENT_NS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
";

fn request(opts: &PolicyOptions, mode: MeshMode) -> Request<'_> {
    Request {
        subjects: Subjects::Release,
        release: "",
        mode: Some(mode),
        options: opts,
        labels: json!({"app.kubernetes.io/managed-by": "test"}),
        namespace: None,
    }
}

fn generated(yaml: &str, opts: &PolicyOptions, mode: MeshMode) -> (Inventory, Generation) {
    let input = inventory(yaml);
    let g = authorization_policies(&input, &request(opts, mode), "istio-system");
    (input, g)
}

/// [`SHOP`] with api running as its own ServiceAccount: principals name accounts, so web (on
/// `default`) is then told apart from api.
fn shop() -> String {
    SHOP.replacen(
        "    spec:\n      containers: [{name: api,",
        "    spec:\n      serviceAccountName: api\n      containers: [{name: api,",
        1,
    )
}

fn names(g: &Generation) -> Vec<&str> {
    g.policies.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn sidecar_policies_keep_the_clients_in_use_and_refuse_the_others() {
    let opts = PolicyOptions::default();
    let (input, g) = generated(&format!("{SIDECAR_NS}{}", shop()), &opts, MeshMode::Sidecar);
    assert!(g.withheld.is_empty(), "{:?}", g.withheld);
    assert_eq!(names(&g), ["api-authz", "db-authz", "web-authz"]);
    assert!(
        g.policies
            .iter()
            .all(|p| p.object["kind"] == "AuthorizationPolicy"
                && p.object["metadata"]["namespace"] == "shop")
    );
    let o = Oracle::new(&input, &g);
    assert!(o.engine.authz_active());
    assert!(o.reaches("web", "api", 8080), "web calls api");
    assert!(o.reaches("api", "db", 5432), "api uses the database");
    assert!(
        !o.reaches("web", "db", 5432),
        "web has no principal the database's policy names"
    );
    assert!(!o.reaches("api", "db", 9999), "only the ports in use");
    assert!(
        !o.reaches("stranger", "db", 5432),
        "a plaintext stranger has no principal"
    );
    let x = o
        .engine
        .explain(
            Target::Pod(o.pod("web")),
            Target::Pod(o.pod("db")),
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    let a = x.authorization.expect("the sidecar's verdict");
    assert_eq!(
        (a.state, a.enforced_by),
        (AuthzState::Denied, Some(Enforcer::Sidecar)),
        "{a:?}"
    );
    // Without them, every pod reaches every port: the policies are what narrows it.
    let bare = Generation {
        policies: Vec::new(),
        ..g.clone()
    };
    assert!(Oracle::new(&input, &bare).reaches("web", "db", 5432));
    // Principals are ServiceAccounts: a workload running as its client's account is admitted too.
    let (input, g) = generated(&format!("{SIDECAR_NS}{SHOP}"), &opts, MeshMode::Sidecar);
    assert!(
        Oracle::new(&input, &g).reaches("web", "db", 5432),
        "web and api are both `default`"
    );
}

#[test]
fn ambient_policies_are_enforced_by_ztunnel() {
    let opts = PolicyOptions::default();
    let (input, g) = generated(&format!("{AMBIENT_NS}{}", shop()), &opts, MeshMode::Ambient);
    assert!(g.withheld.is_empty(), "{:?}", g.withheld);
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("api", "db", 5432) && o.reaches("web", "api", 8080));
    assert!(!o.reaches("web", "db", 5432) && !o.reaches("ambient-stranger", "db", 5432));
    let x = o
        .engine
        .explain(
            Target::Pod(o.pod("web")),
            Target::Pod(o.pod("db")),
            Protocol::Tcp,
            5432,
        )
        .unwrap();
    assert_eq!(
        x.authorization.expect("ztunnel's verdict").enforced_by,
        Some(Enforcer::Ztunnel)
    );
}

/// A client the injector skips connects in plaintext: no principal for the database's policy,
/// so the proof withholds it, naming the connection and the override; the override writes it
/// and names the cut.
#[test]
fn a_plaintext_client_withholds_the_policy_unless_overridden() {
    let shop = SHOP.replacen(
        "metadata: {labels: {app: api}}",
        "metadata: {labels: {app: api, sidecar.istio.io/inject: 'false'}}",
        1,
    );
    let yaml = format!("{SIDECAR_NS}{shop}");
    let opts = PolicyOptions::default();
    let (input, g) = generated(&yaml, &opts, MeshMode::Sidecar);
    let w = g
        .withheld
        .iter()
        .find(|w| w.subject == "StatefulSet/db")
        .expect("db withheld");
    assert!(
        w.reason
            .starts_with("it would refuse Deployment/api -> StatefulSet/db on TCP 5432"),
        "{w:?}"
    );
    assert_eq!(w.isolate_with, "--authz-isolate-anyway db");
    assert!(!names(&g).contains(&"db-authz"));
    let o = Oracle::new(&input, &g);
    assert!(
        o.reaches("api", "db", 5432),
        "the plaintext client keeps its connection"
    );

    let forced = PolicyOptions {
        isolate_anyway: vec!["db".into()],
        ..PolicyOptions::default()
    };
    let (input, g) = generated(&yaml, &forced, MeshMode::Sidecar);
    assert!(names(&g).contains(&"db-authz"), "{:?}", g.withheld);
    assert!(g.notes.iter().any(|n| n.starts_with("StatefulSet/db: AuthorizationPolicy written anyway (--authz-isolate-anyway db): it would refuse Deployment/api")), "{:?}", g.notes);
    assert!(
        !Oracle::new(&input, &g).reaches("api", "db", 5432),
        "the override cuts what the note names"
    );
}

/// Two plaintext callers of api (web, and a worker, both skipped by the injector): the withheld
/// policy names both connections it would refuse, with their ports and why they are in use, in
/// the reason and in `refuses`; written anyway, the note and `Generated::refuses` name both, and
/// the engine shows both cut.
#[test]
fn every_connection_a_withheld_policy_would_refuse_is_named() {
    let plain = SHOP.replacen(
        "metadata: {labels: {app: web}}",
        "metadata: {labels: {app: web, sidecar.istio.io/inject: 'false'}}",
        1,
    );
    let worker = "
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker, sidecar.istio.io/inject: 'false'}}
    spec:
      containers: [{name: worker, image: acme/worker:1, env: [{name: API_URL, value: 'http://api:80/jobs'}]}]
";
    let yaml = format!("{SIDECAR_NS}{plain}{worker}");
    let (input, g) = generated(&yaml, &PolicyOptions::default(), MeshMode::Sidecar);
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("web", "api", 8080) && o.reaches("worker", "api", 8080), "both keep their connection");
    let w = g.withheld.iter().find(|w| w.subject == "Deployment/api").expect("api withheld");
    let from: Vec<&str> = w.refuses.iter().map(|r| r.from.as_str()).collect();
    assert_eq!(from, ["Deployment/web", "Deployment/worker"], "{w:?}");
    for r in &w.refuses {
        assert_eq!((r.to.as_str(), r.ports.as_slice()), ("Deployment/api", ["TCP 8080".to_string()].as_slice()), "{r:?}");
        assert!(!r.why.is_empty() && w.reason.contains(&r.to_string()), "{w:?}");
    }
    assert!(w.reason.starts_with("it would refuse 2 connections in use: "), "{w:?}");
    assert_eq!(w.isolate_with, "--authz-isolate-anyway api");

    let forced = PolicyOptions { isolate_anyway: vec!["api".into()], ..PolicyOptions::default() };
    let (input, g) = generated(&yaml, &forced, MeshMode::Sidecar);
    let p = g.policies.iter().find(|p| p.name == "api-authz").expect("written anyway");
    assert_eq!(p.refuses, w.refuses, "the same cost, written anyway");
    let note = g.notes.iter().find(|n| n.starts_with("Deployment/api: AuthorizationPolicy written anyway")).expect("a note");
    assert!(p.refuses.iter().all(|r| note.contains(&r.to_string())), "{note}");
    // What the report names is what the engine shows cut.
    let o = Oracle::new(&input, &g);
    assert!(!o.reaches("web", "api", 8080) && !o.reaches("worker", "api", 8080));
    // The report's JSON carries them.
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json.pointer("/refuses/1/from"), Some(&json!("Deployment/worker")), "{json}");
}

/// PeerAuthentication DISABLE on the database's port: the sidecars talk plaintext there, so
/// the client's principal never arrives and the policy is withheld.
#[test]
fn a_port_without_mutual_tls_withholds_the_policy() {
    let pa = "
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db-plain, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls: {'5432': {mode: DISABLE}}
---
";
    let opts = PolicyOptions::default();
    let (input, g) = generated(&format!("{SIDECAR_NS}{pa}{SHOP}"), &opts, MeshMode::Sidecar);
    let w = g
        .withheld
        .iter()
        .find(|w| w.subject == "StatefulSet/db")
        .expect("db withheld");
    assert!(
        w.reason
            .contains("Deployment/api -> StatefulSet/db on TCP 5432"),
        "{w:?}"
    );
    assert!(names(&g).contains(&"api-authz"), "the others are written");
    assert!(Oracle::new(&input, &g).reaches("api", "db", 5432));
}

/// Another ALLOW policy on the pods: a second one would widen it, so it is withheld; a DENY
/// policy is the proof's business, and the tool's own earlier policy is replaced.
#[test]
fn existing_allow_policies_withhold_and_deny_policies_do_not() {
    let allow = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-clients, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules: [{from: [{source: {principals: ['cluster.local/ns/shop/sa/default']}}], to: [{operation: {ports: ['5432']}}]}]
---
";
    let opts = PolicyOptions::default();
    let (_, g) = generated(
        &format!("{SIDECAR_NS}{allow}{SHOP}"),
        &opts,
        MeshMode::Sidecar,
    );
    let w = g
        .withheld
        .iter()
        .find(|w| w.subject == "StatefulSet/db")
        .expect("db withheld");
    assert!(
        w.reason
            .starts_with("AuthorizationPolicy shop/db-clients (ALLOW) already applies to its pods"),
        "{w:?}"
    );
    assert_eq!(w.isolate_with, "--authz-isolate-anyway db");

    let deny = allow
        .replace("action: ALLOW", "action: DENY")
        .replace("db-clients", "no-web")
        .replace("sa/default", "sa/nobody");
    let (input, g) = generated(
        &format!("{SIDECAR_NS}{deny}{SHOP}"),
        &opts,
        MeshMode::Sidecar,
    );
    assert!(g.withheld.is_empty(), "{:?}", g.withheld);
    assert!(Oracle::new(&input, &g).reaches("api", "db", 5432));

    // A rerun: the policy written before is the tool's own, replaced by the new one.
    let (input, first) = generated(&format!("{SIDECAR_NS}{SHOP}"), &opts, MeshMode::Sidecar);
    let own: String = first
        .policies
        .iter()
        .map(|p| format!("{}---\n", meshmove_model::yaml::to_yaml_string(&p.object)))
        .collect();
    let again = authorization_policies(
        &inventory(&format!("{SIDECAR_NS}{own}{SHOP}")),
        &request(&opts, MeshMode::Sidecar),
        "istio-system",
    );
    assert!(again.withheld.is_empty(), "{:?}", again.withheld);
    assert_eq!(names(&again), names(&first));
    drop(input);
}

/// A workload whose Service nobody in the input names: its callers are unknown, so it gets no
/// policy unless told; a workload outside the mesh gets none either (nothing would enforce it).
#[test]
fn unknown_callers_and_unmeshed_workloads_get_no_policy() {
    let lone = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: lone}
spec:
  selector: {matchLabels: {app: lone}}
  template:
    metadata: {labels: {app: lone}}
    spec: {containers: [{name: lone, image: acme/lone:1, ports: [{containerPort: 7000}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: lone}
spec: {selector: {app: lone}, ports: [{port: 7000}]}
---
";
    let opts = PolicyOptions::default();
    let (_, g) = generated(
        &format!("{SIDECAR_NS}{lone}{SHOP}"),
        &opts,
        MeshMode::Sidecar,
    );
    let w = g
        .withheld
        .iter()
        .find(|w| w.subject == "Deployment/lone")
        .expect("lone withheld");
    assert!(w.reason.starts_with("its callers are unknown"), "{w:?}");
    assert_eq!(w.isolate_with, "--authz-isolate-anyway lone");
    let forced = PolicyOptions {
        isolate_anyway: vec!["lone".into()],
        ..PolicyOptions::default()
    };
    let (input, g) = generated(
        &format!("{SIDECAR_NS}{lone}{SHOP}"),
        &forced,
        MeshMode::Sidecar,
    );
    assert!(names(&g).contains(&"lone-authz"));
    assert!(!Oracle::new(&input, &g).reaches("web", "lone", 7000));

    let (_, g) = generated(
        &format!(
            "{SIDECAR_NS}{}",
            SHOP.replacen(
                "metadata: {labels: {app: db}}",
                "metadata: {labels: {app: db, sidecar.istio.io/inject: 'false'}}",
                1
            )
        ),
        &opts,
        MeshMode::Sidecar,
    );
    let w = g
        .withheld
        .iter()
        .find(|w| w.subject == "StatefulSet/db")
        .expect("db withheld");
    assert!(
        w.reason.starts_with("no proxy will capture its pods"),
        "{w:?}"
    );
}

#[test]
fn a_namespace_or_service_bound_to_a_waypoint_withholds_the_policies_unless_overridden() {
    let opts = PolicyOptions::default();
    let (_, free) = generated(&format!("{AMBIENT_NS}{}", shop()), &opts, MeshMode::Ambient);
    assert!(!free.policies.is_empty(), "{:?}", free.withheld);
    // The namespace bound to a waypoint the input does not show: every policy of a workload
    // behind a Service there is withheld, naming the binding.
    let bound_ns = AMBIENT_NS.replace(
        "istio.io/dataplane-mode: ambient",
        "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint",
    );
    let (_, g) = generated(&format!("{bound_ns}{}", shop()), &opts, MeshMode::Ambient);
    assert!(g.policies.is_empty(), "{:?}", names(&g));
    assert_eq!(
        g.withheld.len(),
        free.policies.len() + free.withheld.len(),
        "{:?}",
        g.withheld
    );
    assert!(
        g.withheld.iter().all(|w| w
            .reason
            .starts_with("Namespace/shop is labelled istio.io/use-waypoint=waypoint")),
        "{:?}",
        g.withheld
    );
    assert!(
        g.withheld
            .iter()
            .all(|w| w.isolate_with.contains("--authz-isolate-anyway ")),
        "{:?}",
        g.withheld
    );
    // One Service bound: only the pods behind it are withheld; the override writes it anyway.
    let bound_svc = format!(
        "{AMBIENT_NS}{}",
        shop().replace(
            "metadata: {name: api}\nspec: {selector",
            "metadata: {name: api, labels: {istio.io/use-waypoint: waypoint}}\nspec: {selector"
        )
    );
    let (_, g) = generated(&bound_svc, &opts, MeshMode::Ambient);
    assert_eq!(
        g.withheld
            .iter()
            .map(|w| w.subject.as_str())
            .collect::<Vec<_>>(),
        ["Deployment/api"],
        "{:?}",
        g.withheld
    );
    assert!(
        g.withheld[0]
            .reason
            .starts_with("Service/api is labelled istio.io/use-waypoint=waypoint"),
        "{:?}",
        g.withheld
    );
    assert_eq!(names(&g).len(), free.policies.len() - 1, "{:?}", names(&g));
    let forced = PolicyOptions {
        isolate_anyway: vec!["api".into()],
        ..PolicyOptions::default()
    };
    let (_, g) = generated(&bound_svc, &forced, MeshMode::Ambient);
    assert!(names(&g).contains(&"api-authz"), "{:?}", g.withheld);
    assert!(
        g.notes
            .iter()
            .any(|n| n
                .starts_with("Deployment/api: policy written anyway (--authz-isolate-anyway api)")),
        "{:?}",
        g.notes
    );
}
