//! `kubectl mesh-migrate ns` on a Zamaz-shaped platform: what the namespace path owns and carries
//! beyond the copies. The in-place commands refuse both sides of a migration; external traffic
//! (Ingress) gets an Istio Gateway and a weighted VirtualService; the guards of the legacy
//! namespace (PodDisruptionBudgets, NetworkPolicies, ResourceQuota, LimitRange) get their
//! counterparts. Against the API double, with real kubectl reading objects back.

use std::path::PathBuf;

use apiserver_double::{BlockingDouble, Double, DoubleOptions, crds};
use e2e::{Run, bin, root, run};
use serde_json::{Value, json};

struct Env {
    double: BlockingDouble,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

fn env() -> Env {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).expect("double starts");
    double.install_crds(crds::istio()).unwrap();
    let text = std::fs::read_to_string(root().join("tests/e2e/fixtures/ns-migrate/zamaz.yaml")).unwrap();
    for doc in apiserver_double::parse_documents(&text).unwrap() {
        double.create(doc).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap();
    Env { double, _dir: dir, kubeconfig }
}

impl Env {
    fn mm(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&bin("mesh-migrate"), &all, None, &[("USER", "alice")])
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&e2e::venv_tool("kubectl"), &all, None, &[])
    }

    fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.double.get(api_version, kind, Some(ns), name)
    }
}

#[test]
fn enable_expose_and_mtls_refuse_both_sides_of_a_migration() {
    let e = env();
    // Before any migration, the in-place commands are not refused for ownership.
    let r = e.mm(&["enable", "-n", "zamaz", "--dry-run=client"]);
    assert!(!r.stderr.contains("namespace-based migration"), "{}", r.stderr);
    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    let vs_before = e.get("networking.istio.io/v1", "VirtualService", "zamaz-mesh", "api").unwrap();
    let before = e.double.snapshot();
    for (args, side) in [
        (vec!["enable", "-n", "zamaz-mesh", "--domain", "zamaz.example.com"], "mesh"),
        (vec!["enable", "-n", "zamaz"], "legacy"),
        (vec!["expose", "-n", "zamaz"], "legacy"),
        (vec!["expose", "-n", "zamaz-mesh"], "mesh"),
        (vec!["mtls", "strict", "-n", "zamaz-mesh"], "mesh"),
        (vec!["mtls", "strict", "-n", "zamaz"], "legacy"),
    ] {
        let r = e.mm(&args).expect_code(2);
        let ns = args[args.iter().position(|a| *a == "-n").unwrap() + 1];
        assert!(
            r.stderr.contains(&format!("namespace {ns} is the {side} side of the namespace-based migration zamaz -> zamaz-mesh")),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("kubectl mesh-migrate ns"), "{args:?} names no way out: {}", r.stderr);
    }
    assert!(e.double.snapshot().diff(&before).is_empty(), "a refused command wrote something");
    assert_eq!(e.get("networking.istio.io/v1", "VirtualService", "zamaz-mesh", "api").unwrap()["spec"], vs_before["spec"]);
    // The mesh side's objects carry the migration's mark, as kubectl reads them.
    let r = e.kubectl(&["get", "deployments,services,virtualservices", "-n", "zamaz-mesh", "-l", "mesh-migrate.meshmove.io/copied-from=zamaz", "-o", "name"]);
    let r = r.expect_code(0);
    for want in ["deployment.apps/api", "service/api", "virtualservice.networking.istio.io/api"] {
        assert!(r.stdout.lines().any(|l| l == want), "{want} not marked: {}", r.stdout);
    }
    // After rollback with the mesh namespace deleted, the legacy namespace is free again.
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    e.double.delete("v1", "Namespace", None, "zamaz-mesh").unwrap();
    let r = e.mm(&["mtls", "strict", "-n", "zamaz", "--dry-run=client"]);
    assert!(!r.stderr.contains("namespace-based migration"), "{}", r.stderr);
}

/// The mesh weight of every split route of an external VirtualService (they must agree).
fn external_weight(e: &Env, name: &str) -> i64 {
    let vs = e.get("networking.istio.io/v1", "VirtualService", "zamaz-mesh", name).unwrap_or_else(|| panic!("VirtualService {name}"));
    let mut weights: Vec<i64> = vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["route"].as_array().filter(|d| d.len() == 2))
        .map(|d| d.iter().find(|d| d["destination"]["host"].as_str().unwrap().contains(".zamaz-mesh.")).unwrap()["weight"].as_i64().unwrap())
        .collect();
    weights.dedup();
    assert_eq!(weights.len(), 1, "{vs}");
    weights[0]
}

#[test]
fn external_traffic_is_served_by_an_istio_gateway_with_the_same_split_and_complete_waits_for_the_switch() {
    let e = env();
    e.double.install_crds(crds::gateway_api()).unwrap();
    // A second Ingress with TLS, an Exact path, a port by name and a path whose meaning is the
    // controller's; an HTTPRoute; the Istio ingress gateway's Service.
    e.double
        .create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "api", "namespace": "zamaz"},
            "spec": {"tls": [{"hosts": ["api.zamaz.example.com"], "secretName": "zamaz-tls"}],
                "rules": [{"host": "api.zamaz.example.com", "http": {"paths": [
                    {"path": "/healthz", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                    {"path": "/v1", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                    {"path": "/old", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"number": 8080}}}}]}}]}}))
        .unwrap();
    e.double
        .create(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "www", "namespace": "zamaz"},
            "spec": {"hostnames": ["www.zamaz.example.com"], "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/app"}}],
                "backendRefs": [{"name": "frontend", "port": 80}]}]}}))
        .unwrap();
    e.double
        .create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"type": "LoadBalancer", "selector": {"istio": "ingressgateway"}, "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}}))
        .unwrap();
    let lb = |kind: &str, ns: &str, name: &str, ip: &str| {
        e.kubectl(&["patch", kind, name, "-n", ns, "--subresource=status", "--type=merge", "-p", &format!(r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{ip}"}}]}}}}}}"#)])
            .expect_code(0);
    };
    lb("service", "istio-system", "istio-ingressgateway", "203.0.113.20");
    lb("ingress", "zamaz", "zamaz", "203.0.113.10");
    lb("ingress", "zamaz", "api", "203.0.113.10");

    let r = e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("warning: Ingress/api host api.zamaz.example.com path /old") && l.contains("ImplementationSpecific")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.lines().any(|l| l.contains("TLS Secret zamaz-tls") && l.contains("istio-system")), "{}", r.stdout);
    let gw = e.get("networking.istio.io/v1", "Gateway", "zamaz-mesh", "ingress-zamaz").unwrap();
    assert_eq!(gw["spec"]["selector"], json!({"istio": "ingressgateway"}));
    assert_eq!(gw["spec"]["servers"][0]["hosts"], json!(["zamaz.example.com"]));
    let api_gw = e.get("networking.istio.io/v1", "Gateway", "zamaz-mesh", "ingress-api").unwrap();
    assert_eq!(api_gw["spec"]["servers"][1]["tls"]["credentialName"], "zamaz-tls");
    assert_eq!(external_weight(&e, "ingress-zamaz-zamaz.example.com"), 0);
    assert_eq!(external_weight(&e, "httproute-www-www.zamaz.example.com"), 0);
    let api_vs = e.get("networking.istio.io/v1", "VirtualService", "zamaz-mesh", "ingress-api-api.zamaz.example.com").unwrap();
    // Exact /healthz on the port named http (8080); Prefix /v1 element-wise; /old not carried.
    assert_eq!(api_vs["spec"]["http"][0]["match"], json!([{"uri": {"exact": "/healthz"}}]));
    assert_eq!(api_vs["spec"]["http"][0]["route"][0]["destination"]["port"]["number"], 8080);
    assert_eq!(api_vs["spec"]["http"][1]["match"], json!([{"uri": {"exact": "/v1"}}, {"uri": {"prefix": "/v1/"}}]));
    assert_eq!(api_vs["spec"]["http"].as_array().unwrap().len(), 2);
    // Every Gateway and VirtualService is valid by Istio's CRD schemas.
    let istio: Vec<Value> = [("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "VirtualService")]
        .into_iter()
        .flat_map(|(a, k)| e.double.list(a, k, Some("zamaz-mesh")))
        .collect();
    assert_eq!(e2e::validate_objects(&istio), istio.len());

    e.mm(&["ns", "shift", "zamaz", "25"]).expect_code(0);
    for vs in ["ingress-zamaz-zamaz.example.com", "ingress-api-api.zamaz.example.com", "httproute-www-www.zamaz.example.com"] {
        assert_eq!(external_weight(&e, vs), 25, "{vs}");
    }
    // Real kubectl reads the gateway's split back.
    let w = e
        .kubectl(&["get", "virtualservice", "ingress-zamaz-zamaz.example.com", "-n", "zamaz-mesh", "-o", "jsonpath={.spec.http[0].route[*].weight}"])
        .expect_code(0);
    assert_eq!(w.stdout.trim(), "75 25");
    let s = e.mm(&["ns", "status", "zamaz"]);
    assert!(s.stdout.lines().any(|l| l.starts_with("Ingress/zamaz") && l.contains("zamaz-mesh/ingress-zamaz") && l.contains("no: still served")), "{}", s.stdout);
    assert!(s.stdout.lines().any(|l| l.starts_with("external: switch Ingress/zamaz") && l.contains("is at 203.0.113.10") && l.contains("at 203.0.113.20")), "{}", s.stdout);
    assert!(s.stdout.lines().any(|l| l.contains("Secret zamaz-tls from the ingress gateway's namespace (istio-system)")), "{}", s.stdout);

    e.mm(&["ns", "shift", "zamaz", "100"]).expect_code(0);
    let before = e.double.snapshot();
    let r = e.mm(&["ns", "complete", "zamaz"]).expect_code(2);
    assert!(r.stderr.contains("Ingress zamaz/zamaz (hosts zamaz.example.com; at 203.0.113.10) still sends traffic to frontend"), "{}", r.stderr);
    assert!(r.stderr.contains("Ingress zamaz/api (hosts api.zamaz.example.com; at 203.0.113.10) still sends traffic to api"), "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(e.double.snapshot().diff(&before).is_empty(), "a refused complete wrote something");
    // One switched (its address is now the gateway's), the other deleted: complete goes ahead.
    lb("ingress", "zamaz", "zamaz", "203.0.113.20");
    let r = e.mm(&["ns", "complete", "zamaz"]).expect_code(2);
    assert!(!r.stderr.contains("Ingress zamaz/zamaz ") && r.stderr.contains("Ingress zamaz/api "), "{}", r.stderr);
    assert!(r.stderr.contains("HTTPRoute zamaz/www (hosts www.zamaz.example.com; through its own Gateway) still sends traffic to frontend"), "{}", r.stderr);
    e.kubectl(&["delete", "ingress", "api", "-n", "zamaz"]).expect_code(0);
    e.kubectl(&["delete", "httproute", "www", "-n", "zamaz"]).expect_code(0);
    let s = e.mm(&["ns", "status", "zamaz"]);
    assert!(s.stdout.lines().any(|l| l.starts_with("Ingress/zamaz") && l.contains("looks done")), "{}", s.stdout);
    e.mm(&["ns", "complete", "zamaz"]).expect_code(0);
    assert_eq!(e.get("apps/v1", "Deployment", "zamaz", "frontend").unwrap()["spec"]["replicas"], 0);
    assert_eq!(external_weight(&e, "ingress-zamaz-zamaz.example.com"), 100);
}

#[test]
fn complete_force_goes_ahead_while_an_ingress_still_serves_and_says_so() {
    let e = env();
    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    e.mm(&["ns", "shift", "zamaz", "100"]).expect_code(0);
    // No gateway Service and no address on the Ingress: nothing shows it was switched.
    let r = e.mm(&["ns", "complete", "zamaz"]).expect_code(2);
    assert!(r.stderr.contains("Ingress zamaz/zamaz (hosts zamaz.example.com; at no published address) still sends traffic to frontend"), "{}", r.stderr);
    let r = e.mm(&["ns", "complete", "zamaz", "--force"]).expect_code(0);
    assert!(r.stdout.lines().any(|l| l.starts_with("warning: completing anyway (--force)")), "{}", r.stdout);
    assert_eq!(e.get("apps/v1", "Deployment", "zamaz", "frontend").unwrap()["spec"]["replicas"], 0);
}

#[test]
fn disruption_budgets_policies_quotas_and_limit_ranges_are_carried_and_the_engine_finds_nothing_lost() {
    let e = env();
    e.double
        .create(json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "zamaz", "namespace": "zamaz"},
            "spec": {"hard": {"pods": "30", "requests.cpu": "8"}}}))
        .unwrap();
    e.double
        .create(json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "zamaz", "namespace": "zamaz"},
            "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}}))
        .unwrap();
    let original = legacy_policies(&e);
    let before = e.double.snapshot();
    let plan = e.mm(&["ns", "create", "zamaz", "--dry-run=client"]).expect_code(0);
    assert!(e.double.snapshot().diff(&before).is_empty(), "a client dry run writes nothing");
    for (object, ns) in [
        ("ResourceQuota/zamaz", "zamaz-mesh"),
        ("LimitRange/zamaz", "zamaz-mesh"),
        ("NetworkPolicy/default-deny", "zamaz-mesh"),
        ("PodDisruptionBudget/api", "zamaz-mesh"),
        ("NetworkPolicy/postgres-from-api-zamaz-mesh", "zamaz"),
    ] {
        assert!(
            plan.stdout.lines().any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == [object, ns]),
            "{object} in {ns} is not listed in the plan:\n{}",
            plan.stdout
        );
    }
    assert!(plan.stdout.lines().any(|l| l.starts_with("PodDisruptionBudget/postgres") && l.contains("shared backend")), "{}", plan.stdout);
    assert!(!plan.stdout.contains("warning: ResourceQuota"), "the copies fit in 30 pods and 8 CPUs: {}", plan.stdout);
    // A quota the copies and their sidecars cannot fit in is named before anything is written.
    let tight = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "tight", "namespace": "zamaz"}, "spec": {"hard": {"pods": "1"}}});
    e.double.create(tight).unwrap();
    let plan = e.mm(&["ns", "create", "zamaz", "--dry-run=client"]).expect_code(0);
    assert!(
        plan.stdout.lines().any(|l| l.starts_with("warning: ResourceQuota/tight copied to zamaz-mesh: the copies with their sidecars request") && l.contains("of pods") && l.contains("hard 1")),
        "{}",
        plan.stdout
    );
    e.double.delete("v1", "ResourceQuota", Some("zamaz"), "tight").unwrap();

    e.mm(&["ns", "create", "zamaz"]).expect_code(0);
    let get = |api: &str, kind: &str, ns: &str, name: &str| e.get(api, kind, ns, name).unwrap_or_else(|| panic!("{kind} {ns}/{name}"));
    let pdb = get("policy/v1", "PodDisruptionBudget", "zamaz-mesh", "api");
    assert_eq!(pdb["spec"]["selector"], json!({"matchLabels": {"app": "api"}}));
    assert!(e.get("policy/v1", "PodDisruptionBudget", "zamaz-mesh", "postgres").is_none(), "postgres stays single, so does its budget");
    assert_eq!(get("v1", "ResourceQuota", "zamaz-mesh", "zamaz")["spec"]["hard"]["pods"], "30");
    get("v1", "LimitRange", "zamaz-mesh", "zamaz");
    assert!(e.get("networking.k8s.io/v1", "NetworkPolicy", "zamaz-mesh", "postgres-from-api").is_none(), "it selects only a shared backend");
    let companion = get("networking.k8s.io/v1", "NetworkPolicy", "zamaz", "postgres-from-api-zamaz-mesh");
    assert_eq!(
        companion["spec"]["ingress"],
        json!([{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "zamaz-mesh"}}, "podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}])
    );
    // Real kubectl reads the carried guards back.
    let r = e.kubectl(&["get", "poddisruptionbudgets,networkpolicies,resourcequotas,limitranges", "-n", "zamaz-mesh", "-o", "name"]).expect_code(0);
    let mut names: Vec<&str> = r.stdout.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "limitrange/zamaz",
            "networkpolicy.networking.k8s.io/default-deny",
            "poddisruptionbudget.policy/api",
            "resourcequota/zamaz"
        ]
    );
    // Valid by Kubernetes' own schemas.
    let carried: Vec<Value> = [("policy/v1", "PodDisruptionBudget"), ("networking.k8s.io/v1", "NetworkPolicy"), ("v1", "ResourceQuota"), ("v1", "LimitRange")]
        .into_iter()
        .flat_map(|(a, k)| e.double.list(a, k, Some("zamaz-mesh")))
        .chain([companion])
        .collect();
    assert_eq!(carried.len(), 5);
    e2e::validate_objects(&carried);
    // Rollback takes the companion away with the copies: the legacy policies are as they were.
    e.mm(&["ns", "rollback", "zamaz"]).expect_code(0);
    assert!(e.get("networking.k8s.io/v1", "NetworkPolicy", "zamaz", "postgres-from-api-zamaz-mesh").is_none());
    assert_eq!(legacy_policies(&e), original);
}

/// The NetworkPolicies of zamaz as served, without what the server changes on every write.
fn legacy_policies(e: &Env) -> Vec<Value> {
    let mut v: Vec<Value> = e.double.list("networking.k8s.io/v1", "NetworkPolicy", Some("zamaz"));
    for p in &mut v {
        apiserver_double::strip_volatile(p);
    }
    v
}

#[test]
fn ns_create_refuses_when_the_copies_would_lose_a_connection_and_names_it() {
    let e = env();
    // The api reaches redis because its namespace carries `team: zamaz`, which the mesh
    // namespace does not: no adaptation can know that label means the copies too.
    e.kubectl(&["label", "namespace", "zamaz", "team=zamaz"]).expect_code(0);
    e.double
        .create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "redis-from-team", "namespace": "zamaz"},
            "spec": {"podSelector": {"matchLabels": {"app": "redis"}}, "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "zamaz"}}, "podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 6379}]}]}}))
        .unwrap();
    let before = e.double.snapshot();
    let r = e.mm(&["ns", "create", "zamaz"]).expect_code(2);
    assert!(r.stderr.contains("zamaz-mesh/Deployment/api -> zamaz/Deployment/redis (TCP 6379)"), "{}", r.stderr);
    assert!(r.stderr.contains("--allow-lost-connections"), "{}", r.stderr);
    assert!(e.double.snapshot().diff(&before).is_empty(), "nothing was written");
    let r = e.mm(&["ns", "create", "zamaz", "--allow-lost-connections"]).expect_code(0);
    assert!(r.stdout.lines().any(|l| l.starts_with("warning: creating anyway (--allow-lost-connections)")), "{}", r.stdout);
    assert_eq!(e.get("networking.k8s.io/v1", "NetworkPolicy", "zamaz-mesh", "redis-from-team"), None, "it selects only a shared backend");
}

#[test]
fn in_ambient_the_carried_policies_admit_hbone_and_the_ztunnel_probes_as_the_generator_writes_them() {
    let e = env();
    e.double
        .create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "api-from-frontend", "namespace": "zamaz"},
            "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]}}))
        .unwrap();
    // The fixture has no ztunnel and no Gateway API: the control plane check is overridden and
    // no waypoint is deployed; the policies are the point.
    e.mm(&["ns", "create", "zamaz", "--mode", "ambient", "--force", "--no-waypoint"]).expect_code(0);
    let api = e.get("networking.k8s.io/v1", "NetworkPolicy", "zamaz-mesh", "api-from-frontend").unwrap();
    assert_eq!(
        api["spec"]["ingress"][0],
        json!({"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "zamaz"}}, "podSelector": {"matchLabels": {"app": "frontend"}}}],
               "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 15008}]})
    );
    let deny = e.get("networking.k8s.io/v1", "NetworkPolicy", "zamaz-mesh", "default-deny").unwrap();
    assert_eq!(deny["spec"]["ingress"], json!([{"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}]));
    e2e::validate_objects(&e.double.list("networking.k8s.io/v1", "NetworkPolicy", Some("zamaz-mesh")));
}
