//! Least privilege, shipped and proven. Each command runs against the API double with RBAC
//! enforced, as a user who holds nothing but the role `krew-manifests/rbac/` ships for it (the
//! manifest file itself, loaded into the double, its example binding included):
//!
//! * sufficient: every step exits as it does for a cluster admin, and no request is refused;
//! * minimal: with any one verb on any one resource taken out of any rule of the role, some
//!   step fails or reports the kind it could not read (exit 3, or a non-zero exit with the
//!   server's "forbidden" in its report; `ns create`, which copies Roles, RoleBindings and
//!   autoscalers only when it can read them, names each kind it could not read), and the double
//!   logged the refusal.
//!
//! Plus: the manifests are valid Kubernetes objects (kubernetes-validate, real `kubectl apply
//! --dry-run=client`), and `--as`/`--as-group` reach the server as impersonation that RBAC
//! checks, for the plugins as for real kubectl.

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds, rbac};
use e2e::{Run, bin, root, run, venv_tool};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The user a role's test runs as, and its token.
const USER: &str = "rbac-tester";
const TOKEN: &str = "rbac-tester-token";

fn manifest(file: &str) -> Vec<Value> {
    let path = root().join("krew-manifests/rbac").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    apiserver_double::parse_documents(&text).unwrap()
}

/// The groups the manifest's bindings name (the user is put in them, as a user of a real cluster
/// would be made a member of the group the example binding names).
fn bound_groups(docs: &[Value]) -> Vec<String> {
    let mut groups = BTreeSet::new();
    for d in docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding") {
        for s in d["subjects"].as_array().unwrap() {
            assert_eq!(s["kind"], "Group", "the example bindings name a group: {s}");
            groups.insert(s["name"].as_str().unwrap().to_string());
        }
    }
    assert!(!groups.is_empty(), "no binding");
    groups.into_iter().collect()
}

/// Every way to take one grant away from the manifest's roles: each verb on each resource of
/// each rule (a rule with one verb and one resource goes away whole). Returns (what, reduced
/// documents).
fn reductions(docs: &[Value]) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for (di, d) in docs.iter().enumerate().filter(|(_, d)| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        let name = d["metadata"]["name"].as_str().unwrap();
        for (ri, rule) in d["rules"].as_array().unwrap().iter().enumerate() {
            let verbs = rule["verbs"].as_array().unwrap();
            let resources = rule["resources"].as_array().unwrap();
            for verb in verbs {
                for resource in resources {
                    // The rule without (verb, resource): the other verbs on this resource, and
                    // every verb on the other resources.
                    let mut parts = Vec::new();
                    let mut a = rule.clone();
                    a["verbs"] = json!(verbs.iter().filter(|v| *v != verb).collect::<Vec<_>>());
                    a["resources"] = json!([resource]);
                    let mut b = rule.clone();
                    b["resources"] = json!(resources.iter().filter(|r| *r != resource).collect::<Vec<_>>());
                    for part in [a, b] {
                        if !part["verbs"].as_array().unwrap().is_empty() && !part["resources"].as_array().unwrap().is_empty() {
                            parts.push(part);
                        }
                    }
                    let mut reduced = docs.to_vec();
                    let rules = reduced[di]["rules"].as_array_mut().unwrap();
                    rules.splice(ri..=ri, parts);
                    out.push((format!("{name}: {verb} on {resource} from rule {ri} ({rule})"), reduced));
                }
            }
        }
    }
    out
}

/// A command of a scenario: plugin and arguments (the kubeconfig is added).
type Step = (&'static str, &'static [&'static str]);

struct Scenario {
    /// The manifest under `krew-manifests/rbac/`.
    file: &'static str,
    /// The namespace the kubeconfig's context names.
    namespace: &'static str,
    /// Other manifests the user holds as well, whole (`enable --spire` runs spire-check's checks
    /// first, so its user holds spire-check's role besides the migration writer's): the proof
    /// takes grants away from `file` only.
    also: &'static [&'static str],
    /// Fills a fresh double (RBAC enforced).
    seed: fn(&BlockingDouble),
    steps: &'static [Step],
}

fn rbac_double(controllers: bool) -> BlockingDouble {
    Double::spawn_blocking_runtime(DoubleOptions { rbac: true, simulate_controllers: controllers, ..DoubleOptions::default() }).unwrap()
}

/// One run of a scenario's steps on a fresh double: as the admin (`role` `None`) or as the user
/// bound by `role`'s documents. `stop` ends the run early once a step's result satisfies it.
/// Returns the runs and the requests that were refused.
fn play(s: &Scenario, role: Option<&[Value]>, stop: &dyn Fn(usize, &Run) -> bool) -> (Vec<Run>, Vec<String>) {
    let d = rbac_double(true);
    (s.seed)(&d);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = match role {
        None => d.write_kubeconfig(dir.path(), s.namespace).unwrap(),
        Some(docs) => {
            let docs: Vec<Value> = docs.iter().cloned().chain(s.also.iter().flat_map(|f| manifest(f))).collect();
            d.load_values(docs.clone()).unwrap();
            let groups = bound_groups(&docs);
            d.add_token(TOKEN, USER, &groups.iter().map(String::as_str).collect::<Vec<_>>());
            d.write_kubeconfig_with_token(dir.path(), s.namespace, TOKEN).unwrap()
        }
    };
    let kc = kubeconfig.to_str().unwrap();
    let mut runs = Vec::new();
    for (i, (tool, args)) in s.steps.iter().enumerate() {
        let r = run(&bin(tool), &[args, &["--kubeconfig", kc][..]].concat(), None, &[("USER", "tester")]);
        let done = stop(i, &r);
        runs.push(r);
        if done {
            break;
        }
    }
    let refused = d
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .map(|r| format!("{} {}?{} as {:?}", r.method, r.path, r.query, r.user))
        .collect();
    (runs, refused)
}

fn show(s: &Scenario, runs: &[Run]) -> String {
    s.steps
        .iter()
        .zip(runs)
        .map(|((tool, args), r)| format!("$ kubectl {tool} {}\n  exit {}\n{}{}", args.join(" "), r.code, r.stdout, r.stderr))
        .collect()
}

/// The proof for the scenarios of one manifest (see the module doc): sufficient for each
/// scenario, and every reduction of the roles noticed by at least one scenario.
fn prove(scenarios: &[&Scenario]) {
    let file = scenarios[0].file;
    assert!(scenarios.iter().all(|s| s.file == file));
    let docs = manifest(file);
    let mut baselines = Vec::new();
    for s in scenarios {
        let (admin, refused) = play(s, None, &|_, _| false);
        assert!(refused.is_empty(), "{file}: the admin was refused: {refused:?}");
        for (step, r) in s.steps.iter().zip(&admin) {
            assert!(r.code == 0 || r.code == 1, "{file}: {step:?} fails even for the admin:\n{}", show(s, &admin));
        }
        let (as_role, refused) = play(s, Some(&docs), &|_, _| false);
        assert!(refused.is_empty(), "{file}: the role lacks permissions:\n{refused:#?}\n{}", show(s, &as_role));
        for ((step, a), r) in s.steps.iter().zip(&admin).zip(&as_role) {
            assert_eq!(r.code, a.code, "{file}: {step:?} under the role\n{}", show(s, &as_role));
        }
        baselines.push(admin.iter().map(|r| r.code).collect::<Vec<i32>>());
    }
    let all = reductions(&docs);
    assert!(!all.is_empty());
    for (what, reduced) in all {
        let mut seen = Vec::new();
        let noticed = scenarios.iter().zip(&baselines).any(|(s, base)| {
            let notice = |i: usize, r: &Run| {
                let failed = r.code != 0 && (r.code == 3 || r.code != base[i] || format!("{}{}", r.stdout, r.stderr).contains("forbidden"));
                // `ns create` copies some kinds only when it can read them, and says which it
                // could not (exit 0: the copy is complete for what the user may read).
                let named = r.stdout.lines().chain(r.stderr.lines()).any(|l| l.contains("could not read") && l.contains("is forbidden"));
                failed || named
            };
            let (runs, refused) = play(s, Some(&reduced), &notice);
            let hit = runs.iter().enumerate().any(|(i, r)| notice(i, r));
            seen.push(format!("{refused:#?}\n{}", show(s, &runs)));
            hit && !refused.is_empty()
        });
        assert!(noticed, "{file}: {what}: taking it away went unnoticed, so the role grants more than the commands need\n{}", seen.join("\n"));
    }
}

fn platform(d: &BlockingDouble) {
    d.load_yaml(&std::fs::read_to_string(root().join("tests/e2e/fixtures/platform.yaml")).unwrap()).unwrap();
}

/// The demo chart in `pyairtable`, created through the API so controllers run its pods, with an
/// Istio control plane and the cluster's default IngressClass (as `tests/migrate.rs` sets it up).
fn platform_created(d: &BlockingDouble) {
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/platform.yaml")).unwrap();
    let chart = &text[text.find("\n# demo chart").expect("demo chart marker")..];
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pyairtable"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        apiserver_double::istiod(None),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
               "spec": {"controller": "k8s.io/ingress-nginx"}}),
    ];
    docs.extend(apiserver_double::parse_documents(chart).unwrap().into_iter().filter(|d| d["kind"] != "Pod"));
    for doc in docs {
        d.create(doc).unwrap();
    }
}

/// `tests/e2e/fixtures/ns-migrate/shop.yaml` created through the API (as `tests/ns_migrate.rs`),
/// with a healthy Prometheus behind Service `monitoring/prometheus-k8s` (port `web`: where
/// kube-prometheus runs it, and what `mesh-migrate-prometheus.yaml` names).
fn shop(d: &BlockingDouble) {
    d.serve_prometheus("monitoring", "prometheus-k8s", 9090, apiserver_double::prometheus::rules(vec![
        ("istio_requests_total", apiserver_double::prometheus::Reply::Value(1.0)),
        ("histogram_quantile", apiserver_double::prometheus::Reply::Value(20.0)),
    ]));
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/shop.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        d.create(doc).unwrap();
    }
}

const DBISO_AUDIT: Scenario = Scenario {
    file: "dbiso-audit.yaml",
    also: &[],
    namespace: "pyairtable",
    seed: platform,
    steps: &[
        ("dbiso", &["audit", "-o", "json"]),
        ("dbiso", &["audit", "-A", "-o", "json"]),
        ("dbiso", &["reach"]),
        ("dbiso", &["explain", "deployment/llm-orchestrator", "statefulset/postgres-core", "5432"]),
        ("dbiso", &["diff", "-f", "tests/e2e/fixtures/rbac/deny-all.yaml"]),
    ],
};

/// The demo platform with an earlier version of one policy `dbiso apply` writes
/// (`fixtures/rbac/dbiso-stale-policy.yaml`).
fn platform_with_stale_policy(d: &BlockingDouble) {
    platform(d);
    d.load_yaml(&std::fs::read_to_string(root().join("tests/e2e/fixtures/rbac/dbiso-stale-policy.yaml")).unwrap()).unwrap();
}

const DBISO_APPLY: Scenario = Scenario {
    file: "dbiso-apply.yaml",
    also: &[],
    namespace: "pyairtable",
    seed: platform_with_stale_policy,
    // rollback undoes apply from its journal: deletes the policies apply created, puts back the
    // one it changed, then deletes the journal.
    steps: &[("dbiso", &["apply", "--isolate-all"]), ("dbiso", &["rollback"])],
};

const MIGRATE_READ: Scenario = Scenario {
    file: "mesh-migrate-read.yaml",
    also: &[],
    namespace: "pyairtable",
    seed: platform_created,
    steps: &[("mesh-migrate", &["precheck", "-o", "json"]), ("mesh-migrate", &["status"])],
};

const MIGRATE_WRITE: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    also: &[],
    namespace: "pyairtable",
    seed: platform_created,
    steps: &[
        ("mesh-migrate", &["expose", "--domain", "pyairtable.local", "--ingress-class", "nginx", "--host", "frontend=pyairtable.local", "--merge-existing"]),
        ("mesh-migrate", &["enable", "--timeout", "30s"]),
        ("mesh-migrate", &["mtls", "strict"]),
        ("mesh-migrate", &["rollback", "--timeout", "30s"]),
    ],
};

/// The gates' Prometheus: from 10 % the metrics gates query it through the API server's service
/// proxy, which `mesh-migrate-prometheus.yaml` grants (a Role in `monitoring` for that Service
/// alone; `mesh-migrate-write.yaml` grants no proxy, and the proofs fail if it does).
const PROMETHEUS_STEPS: &[Step] = &[
    ("mesh-migrate", &["ns", "create", "shop"]),
    ("mesh-migrate", &["ns", "shift", "shop", "10"]),
    ("mesh-migrate", &["ns", "shift", "shop", "25", "--prometheus-service", "monitoring/prometheus-k8s:web"]),
];

const MIGRATE_NS: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    also: &["mesh-migrate-prometheus.yaml"],
    namespace: "default",
    seed: shop,
    steps: &[
        PROMETHEUS_STEPS[0],
        PROMETHEUS_STEPS[1],
        PROMETHEUS_STEPS[2],
        ("mesh-migrate", &["ns", "status", "shop"]),
        ("mesh-migrate", &["ns", "rollback", "shop"]),
        // Deletes the copies and the mesh namespace, after listing what is in it.
        ("mesh-migrate", &["ns", "cleanup", "shop"]),
    ],
};

/// The shop with what `ns create` carries besides workloads (`fixtures/rbac/shop-extras.yaml`).
fn shop_with_extras(d: &BlockingDouble) {
    shop(d);
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/rbac/shop-extras.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        d.create(doc).unwrap();
    }
}

/// The healthy SPIRE installation of spire-check's fixture grid, as stored objects (its pods and
/// statuses included). The trust bundle placeholder is left empty: the reads are the same.
fn spire(d: &BlockingDouble) {
    d.install_crds(crds::spire()).unwrap();
    let text = std::fs::read_to_string(root().join("crates/spire/tests/fixtures/healthy/input.yaml")).unwrap();
    let text: String = text.split_inclusive('\n').filter(|l| !l.trim().starts_with("{{")).collect();
    d.load_yaml(&text).unwrap();
}

/// [`shop_with_extras`] with an ambient workload in another namespace that its own policy keeps
/// from reaching anything: `ns complete` reads the cluster's model (workloads, policies, the admin
/// tiers, Istio's L4 policies, the Secrets and ConfigMaps workloads read) to tell, and completes.
fn shop_with_extras_and_blocked_ambient(d: &BlockingDouble) {
    shop_with_extras(d);
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "front", "labels": {"istio.io/dataplane-mode": "ambient"}}})).unwrap();
    d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "client", "namespace": "front"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "client"}}, "template": {"metadata": {"labels": {"app": "client"}},
            "spec": {"containers": [{"name": "client", "image": "curlimages/curl:8.10.1", "env": [{"name": "API_URL", "value": "http://api.shop"}]}]}}}}))
        .unwrap();
    d.create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "no-egress", "namespace": "front"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}))
        .unwrap();
}

const MIGRATE_NS_COMPLETE: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    also: &[],
    namespace: "default",
    seed: shop_with_extras_and_blocked_ambient,
    steps: &[
        ("mesh-migrate", &["ns", "create", "shop", "--copy-secrets"]),
        ("mesh-migrate", &["ns", "shift", "shop", "100"]),
        // --force: the fixture's Ingress still points at the legacy side (no DNS to move here).
        ("mesh-migrate", &["ns", "complete", "shop", "--force"]),
        // Back, then the copies go: Secrets, quotas, limit ranges, Roles, RoleBindings, budgets,
        // autoscalers.
        ("mesh-migrate", &["ns", "rollback", "shop"]),
        ("mesh-migrate", &["ns", "cleanup", "shop"]),
    ],
};

/// The Zamaz-shaped namespace of `tests/ns_guards.rs` (created through the API): a legacy
/// NetworkPolicy admits the api to postgres, a shared backend that stays single, so `ns create`
/// adds a companion policy in the legacy namespace that `ns rollback` deletes. The mesh namespace
/// already holds a Secret of the legacy one's name (written by the tool's field manager, as by an
/// earlier migration whose journal is gone), so `ns create --copy-secrets` backs it up (a new
/// Secret) before it writes over it.
fn zamaz(d: &BlockingDouble) {
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/zamaz.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        d.create(doc).unwrap();
    }
    d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zamaz-mesh"}})).unwrap();
    let earlier = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "zamaz-db", "namespace": "zamaz-mesh"},
                         "type": "Opaque", "stringData": {"password": "an-earlier-copy"}});
    d.apply(earlier, "kubectl-mesh-migrate", false).unwrap();
}

const MIGRATE_NS_GUARDS: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    also: &[],
    namespace: "default",
    seed: zamaz,
    steps: &[
        ("mesh-migrate", &["ns", "create", "zamaz", "--copy-secrets", "--pod-security", "baseline"]),
        ("mesh-migrate", &["ns", "rollback", "zamaz"]),
        // The Secret written over gets its content back from the backup (update), the backup
        // goes, and the namespace that existed before is put back as it was (update).
        ("mesh-migrate", &["ns", "cleanup", "zamaz"]),
    ],
};

/// The same namespace migrated in ambient mode: `ns create` lists the GatewayClasses (istiod's
/// `istio-waypoint` must be there) and the mesh namespace's Gateways, applies the waypoint's
/// Gateway and binds the namespace; `ns rollback` unbinds it and deletes the Gateway.
fn zamaz_ambient(d: &BlockingDouble) {
    d.install_crds(crds::istio()).unwrap();
    d.install_crds(crds::gateway_api()).unwrap();
    d.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/zamaz.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        d.create(doc).unwrap();
    }
    d.create(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ztunnel", "namespace": "istio-system", "labels": {"app": "ztunnel"}},
        "spec": {"selector": {"matchLabels": {"app": "ztunnel"}}, "template": {"metadata": {"labels": {"app": "ztunnel"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.24.0"}]}}}}))
        .unwrap();
    d.create(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "istio-waypoint"},
        "spec": {"controllerName": "istio.io/mesh-controller"}}))
        .unwrap();
}

const MIGRATE_NS_AMBIENT: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    also: &[],
    namespace: "default",
    seed: zamaz_ambient,
    steps: &[("mesh-migrate", &["ns", "create", "zamaz", "--mode", "ambient"]), ("mesh-migrate", &["ns", "rollback", "zamaz"])],
};

/// `tests/e2e/fixtures/rbac/authz-shop.yaml` created through the API, with istiod.
fn authz_shop(d: &BlockingDouble) {
    d.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/rbac/authz-shop.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        d.create(doc).unwrap();
    }
    d.create(apiserver_double::istiod(None)).unwrap();
}

/// `enable --authz` reads what shows the clients (monitors, routes, the ConfigMaps workloads
/// name) and the mesh's AuthorizationPolicies, and writes the policies that rollback deletes.
const MIGRATE_AUTHZ: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    namespace: "shop",
    seed: authz_shop,
    also: &[],
    steps: &[("mesh-migrate", &["enable", "--authz", "--timeout", "30s"]), ("mesh-migrate", &["rollback", "--timeout", "30s"])],
};

/// The Prometheus Role with the writer's role held whole: without its one rule the gates' query
/// is refused and `ns shift` fails on it.
const PROMETHEUS_PROXY: Scenario = Scenario {
    file: "mesh-migrate-prometheus.yaml",
    also: &["mesh-migrate-write.yaml"],
    namespace: "default",
    seed: shop,
    steps: PROMETHEUS_STEPS,
};

const SPIRE_CHECK: Scenario = Scenario {
    file: "spire-check.yaml",
    also: &[],
    namespace: "default",
    seed: spire,
    steps: &[("spire-check", &["-o", "json"]), ("spire-check", &["identities"])],
};

/// A SPIRE installation that serves (spire-check's `healthy` fixture, a valid trust bundle) and
/// a namespace of workloads to put on the mesh, as `tests/enable_spire.rs` sets them up.
fn spire_shop(d: &BlockingDouble) {
    d.install_crds(crds::istio()).unwrap();
    d.install_crds(crds::spire()).unwrap();
    d.load_values(e2e::spire::spire_installation()).unwrap();
    d.create(apiserver_double::istiod(None)).unwrap();
    for doc in e2e::spire::shop() {
        d.create(doc).unwrap();
    }
}

/// `enable --spire` checks SPIRE as spire-check does (its reads), then writes as `enable`;
/// `rollback` takes the template request away. Its user holds both roles: proven sufficient
/// together, and each minimal with the other held whole (below and in the spire-check proof).
const ENABLE_SPIRE_STEPS: &[Step] = &[
    ("mesh-migrate", &["enable", "--spire", "--timeout", "30s"]),
    ("mesh-migrate", &["rollback", "--timeout", "30s"]),
];

const MIGRATE_ENABLE_SPIRE: Scenario = Scenario {
    file: "mesh-migrate-write.yaml",
    also: &["spire-check.yaml"],
    namespace: e2e::spire::NS,
    seed: spire_shop,
    steps: ENABLE_SPIRE_STEPS,
};

const SPIRE_CHECK_ENABLE: Scenario = Scenario {
    file: "spire-check.yaml",
    also: &["mesh-migrate-write.yaml"],
    namespace: e2e::spire::NS,
    seed: spire_shop,
    steps: ENABLE_SPIRE_STEPS,
};

/// Prints what each scenario requests as the admin, as authorizer attributes (for writing the
/// roles): `cargo test -p e2e --test rbac requests_of_each_command -- --ignored --nocapture`.
#[test]
#[ignore]
fn requests_of_each_command() {
    let only = std::env::var("RBAC_PROBE").unwrap_or_default();
    for s in [&DBISO_AUDIT, &DBISO_APPLY, &MIGRATE_READ, &MIGRATE_WRITE, &MIGRATE_NS, &MIGRATE_NS_COMPLETE, &MIGRATE_NS_GUARDS, &MIGRATE_NS_AMBIENT, &MIGRATE_AUTHZ, &MIGRATE_ENABLE_SPIRE, &PROMETHEUS_PROXY, &SPIRE_CHECK] {
        // RBAC_PROBE: part of the manifest's file name, or of one of the scenario's commands.
        if !only.is_empty() && !s.file.contains(&only) && !s.steps.iter().any(|(_, args)| args.join(" ").contains(&only)) {
            continue;
        }
        let d = rbac_double(true);
        (s.seed)(&d);
        d.clear_requests();
        let dir = tempfile::tempdir().unwrap();
        let kc = d.write_kubeconfig(dir.path(), s.namespace).unwrap();
        let mut seen = BTreeSet::new();
        for (tool, args) in s.steps {
            let r = run(&bin(tool), &[args, &["--kubeconfig", kc.to_str().unwrap()][..]].concat(), None, &[("USER", "tester")]);
            println!("{} {tool} {args:?}: exit {}\n{}", s.file, r.code, r.stderr);
            for q in d.requests() {
                let a = rbac::request_attributes(&q.method, &q.path, &apiserver_double::util::parse_query(&q.query));
                let scope = if a.namespace.is_empty() { "cluster".to_string() } else { format!("ns {}", a.namespace) };
                seen.insert(format!("{:<10} {:<28} {:<24} {:<10} {} {}", a.verb, a.api_group, a.resource, a.subresource, scope, a.name));
            }
            d.clear_requests();
        }
        println!("== {}\n{}\n", s.file, seen.into_iter().collect::<Vec<_>>().join("\n"));
    }
}

#[test]
fn dbiso_audit_role_is_sufficient_and_minimal() {
    prove(&[&DBISO_AUDIT]);
}

#[test]
fn dbiso_apply_role_is_sufficient_and_minimal() {
    prove(&[&DBISO_APPLY]);
}

#[test]
fn mesh_migrate_read_role_is_sufficient_and_minimal() {
    prove(&[&MIGRATE_READ]);
}

#[test]
fn mesh_migrate_write_role_is_sufficient_and_minimal() {
    prove(&[&MIGRATE_WRITE, &MIGRATE_NS, &MIGRATE_NS_COMPLETE, &MIGRATE_NS_GUARDS, &MIGRATE_NS_AMBIENT, &MIGRATE_AUTHZ, &MIGRATE_ENABLE_SPIRE]);
}

#[test]
fn mesh_migrate_prometheus_role_is_sufficient_and_minimal() {
    prove(&[&PROMETHEUS_PROXY]);
}

#[test]
fn spire_check_role_is_sufficient_and_minimal() {
    prove(&[&SPIRE_CHECK, &SPIRE_CHECK_ENABLE]);
}

/// The files under `krew-manifests/rbac/`, each proven by a test above.
const PROVEN: [&str; 6] =
    ["dbiso-audit.yaml", "dbiso-apply.yaml", "mesh-migrate-prometheus.yaml", "mesh-migrate-read.yaml", "mesh-migrate-write.yaml", "spire-check.yaml"];

#[test]
fn the_manifests_are_valid_and_each_is_proven() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("krew-manifests/rbac"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut proven = PROVEN.map(str::to_string).to_vec();
    proven.sort();
    assert_eq!(files, proven, "every shipped manifest has its proof");
    // Real kubectl sends no credentials to a server over plain HTTP (client-go adds them only
    // with TLS), so its dry run goes to a double without RBAC.
    let d = Double::spawn_blocking_runtime(DoubleOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig(dir.path(), "default").unwrap();
    for file in PROVEN {
        let path = root().join("krew-manifests/rbac").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = manifest(file);
        // Strict schema validation against Kubernetes 1.37 (unknown fields fail).
        let report = e2e::validate_stream(&text);
        assert!(report.stdout.contains(&format!("validated {} objects", docs.len())), "{file}: {}", report.stdout);
        // Real kubectl reads the file as it would apply it.
        let r = run(&venv_tool("kubectl"), &["apply", "--dry-run=client", "-f", path.to_str().unwrap(), "--kubeconfig", kc.to_str().unwrap()], None, &[]);
        assert_eq!(r.code, 0, "{file}: {r:?}");
        for doc in &docs {
            let kind = doc["kind"].as_str().unwrap().to_lowercase();
            let line = format!("{kind}.rbac.authorization.k8s.io/{} created (dry run)", doc["metadata"]["name"].as_str().unwrap());
            assert!(r.stdout.lines().any(|l| l == line), "{file}: no `{line}` in\n{}", r.stdout);
        }
        // One role and its example binding to a group: a ClusterRole and ClusterRoleBinding, or a
        // Role and a RoleBinding in the same namespace.
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert!(kinds == ["ClusterRole", "ClusterRoleBinding"] || kinds == ["Role", "RoleBinding"], "{file}: {kinds:?}");
        assert_eq!(docs[1]["roleRef"]["name"], docs[0]["metadata"]["name"], "{file}");
        assert_eq!(docs[1]["roleRef"]["kind"], docs[0]["kind"], "{file}");
        assert_eq!(docs[1]["metadata"]["namespace"], docs[0]["metadata"]["namespace"], "{file}");
        assert_eq!(bound_groups(&docs).len(), 1, "{file}");
    }
}

/// `--as`/`--as-group` reach the server as impersonation headers, which RBAC checks (the
/// `impersonate` verb on the user and each group) before it authorizes the request as the
/// impersonated user. (Real kubectl sends no credentials, impersonation included, to a server
/// over plain HTTP: `tests/rbac_kubectl.rs` runs it against the double over HTTPS.)
#[test]
fn as_and_as_group_impersonate_the_role_holder() {
    let docs = manifest("dbiso-audit.yaml");
    let group = bound_groups(&docs).remove(0);
    let d = rbac_double(false);
    platform(&d);
    d.load_values(docs).unwrap();
    d.load_values([
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "impersonate-auditor"},
               "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": [USER]},
                         {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": [group]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "ops-impersonates"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonate-auditor"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ops"}]}),
    ])
    .unwrap();
    d.add_token("ops-token", "ops", &[]);
    let dir = tempfile::tempdir().unwrap();
    let kc = d.write_kubeconfig_with_token(dir.path(), "pyairtable", "ops-token").unwrap();
    let kc = kc.to_str().unwrap();
    let dbiso = |extra: &[&str]| run(&bin("dbiso"), &[&["audit", "-o", "json", "--kubeconfig", kc][..], extra].concat(), None, &[]);

    // ops itself may read nothing.
    let r = dbiso(&[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("is forbidden: User \"ops\" cannot list resource \"pods\" in API group \"\" in the namespace \"pyairtable\""), "{}", r.stderr);
    // As the auditor, in the auditors' group: the audit an admin gets.
    d.clear_requests();
    let r = dbiso(&["--as", USER, "--as-group", &group]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.json()["findings"].as_array().unwrap().iter().any(|f| f["code"] == "DB3001"), "{}", r.stdout);
    let users: BTreeSet<Option<String>> = d.requests().into_iter().map(|q| q.user).collect();
    assert_eq!(users, BTreeSet::from([Some(USER.to_string())]));
    // The group grants, not the name: without it nothing can be read.
    let r = dbiso(&["--as", USER]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&format!("User \"{USER}\" cannot list")), "{}", r.stderr);
    // Impersonating anyone else is refused by the impersonation check itself.
    let r = dbiso(&["--as", "someone-else"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("users \"someone-else\" is forbidden: User \"ops\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"), "{}", r.stderr);
    let r = dbiso(&["--as", USER, "--as-group", "system:masters"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("groups \"system:masters\" is forbidden: User \"ops\" cannot impersonate resource \"groups\""), "{}", r.stderr);
}

/// The krew manifests' caveats name each plugin's RBAC manifests and link them at the release's
/// tag; `krew-manifests/validate.py` holds them to it.
#[test]
fn krew_caveats_name_the_rbac_manifests() {
    let validate = |path: &std::path::Path| run(&venv_tool("python"), &[root().join("krew-manifests/validate.py").to_str().unwrap(), path.to_str().unwrap()], None, &[]);
    let dir = tempfile::tempdir().unwrap();
    for (plugin, files) in [("dbiso", &["dbiso-audit.yaml", "dbiso-apply.yaml"][..]), ("mesh-migrate", &["mesh-migrate-read.yaml", "mesh-migrate-write.yaml", "mesh-migrate-prometheus.yaml"]), ("spire-check", &["spire-check.yaml"])] {
        let text = std::fs::read_to_string(root().join(format!("krew-manifests/{plugin}.yaml"))).unwrap();
        let ok = dir.path().join(format!("{plugin}.yaml"));
        std::fs::write(&ok, &text).unwrap();
        validate(&ok).expect_code(0);
        for file in files {
            assert!(root().join("krew-manifests/rbac").join(file).exists(), "{file}");
            std::fs::write(&ok, text.lines().filter(|l| !l.contains(file)).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
            let r = validate(&ok);
            assert_eq!(r.code, 1, "{plugin} without {file}: {r:?}");
            assert!(r.stderr.contains(&format!("does not name the RBAC manifest krew-manifests/rbac/{file}")), "{}", r.stderr);
        }
    }
}
