//! The generator judged by the exact engine, never by the text it writes: each scenario
//! generates, adds the policies to the input, and asks the engine who reaches whom.

use super::*;
use meshmove_model::inventory::{self, Inventory};
use meshmove_netpol::{Engine, EngineOptions, PortRange, PortSet, Protocol, Target};
use meshmove_netpol::view::ModelOptions;

pub(super) fn inventory(yaml: &str) -> Inventory {
    Inventory::from_files(inventory::load_str(yaml, None, "shop").unwrap(), vec!["test".into()], "shop".into())
}

pub(super) fn release<'a>(opts: &'a PolicyOptions, mode: MeshMode) -> Request<'a> {
    Request {
        subjects: Subjects::Release,
        release: "rel",
        mode: Some(mode),
        options: opts,
        labels: json!({GENERATED_LABEL: "true"}),
        namespace: None,
    }
}

fn databases(opts: &PolicyOptions) -> Request<'_> {
    Request { subjects: Subjects::Databases, release: "", mode: None, options: opts, labels: json!({}), namespace: None }
}

/// The engine over the input plus the generated policies.
pub(super) struct Oracle {
    pub(super) engine: Engine,
}

impl Oracle {
    pub(super) fn new(input: &Inventory, generated: &Generation) -> Oracle {
        Oracle::with_pods(input, generated, Vec::new())
    }

    /// [`Oracle::new`] with more pods outside the input (istiod, say).
    pub(super) fn with_pods(input: &Inventory, generated: &Generation, extra: Vec<meshmove_netpol::PodInfo>) -> Oracle {
        let mut objects: Vec<_> = input.objects().to_vec();
        for g in &generated.policies {
            for o in std::iter::once(&g.object).chain(g.authorization.as_ref()) {
                objects.extend(inventory::load_str(&meshmove_model::yaml::to_yaml_string(o), None, "shop").unwrap());
            }
        }
        let after = Inventory::from_files(objects, vec!["after".into()], "shop".into());
        let mut model = view::build(&after, ModelOptions { probes: false }).cluster;
        // A pod of an unrelated namespace, and one of the CloudNativePG operator.
        model.pods.push(meshmove_netpol::PodInfo::new("elsewhere", "stranger").with_labels([("app", "stranger")]));
        // A stranger in the ambient mesh: through the tunnel it reaches every port of a captured
        // pod that admits it on 15008.
        model.pods.push(
            meshmove_netpol::PodInfo::new("elsewhere", "ambient-stranger")
                .with_labels([("app", "stranger"), ("istio.io/dataplane-mode", "ambient")])
                .with_ambient(true),
        );
        model.pods.push(meshmove_netpol::PodInfo::new("cnpg-system", "operator").with_labels([("app.kubernetes.io/name", "cloudnative-pg")]));
        model.pods.push(meshmove_netpol::PodInfo::new("monitoring", "prometheus").with_labels([("app", "prometheus")]));
        model.pods.extend(extra);
        let (engine, rejected) = Engine::build_lenient(&model, EngineOptions::default()).unwrap();
        assert!(rejected.is_empty(), "the engine rejects a generated policy: {rejected:?}");
        Oracle { engine }
    }

    pub(super) fn pod(&self, workload: &str) -> meshmove_netpol::PodId {
        self.engine
            .pods()
            .find(|(_, p)| p.workload().name == workload || p.name == workload)
            .map(|(id, _)| id)
            .unwrap_or_else(|| panic!("no pod of {workload}"))
    }

    /// For every request: a port the destination's AuthorizationPolicies admit only for some
    /// requests does not count.
    pub(super) fn reaches(&self, from: &str, to: &str, port: u16) -> bool {
        self.engine.allowed_for_every_request(self.pod(from), self.pod(to)).allows(Protocol::Tcp, port)
    }
}

/// The `shop` namespace enrolled in Istio ambient: every pod of the input is captured.
const AMBIENT_NS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
";

pub(super) const SHOP: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: acme/api:1, ports: [{containerPort: 8080}],
        env: [{name: DATABASE_URL, value: 'postgres://u@db:5432/shop'}]}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: acme/web:1, ports: [{containerPort: 3000}], env: [{name: API_URL, value: 'http://api/v1'}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 3000}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec: {rules: [{host: shop.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  serviceName: db
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{port: 5432}]}
";

#[test]
fn every_connection_in_use_survives_and_strangers_are_shut_out() {
    let input = inventory(SHOP);
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.withheld.is_empty(), "{:?}", g.withheld);
    assert!(g.cuts.is_empty(), "{:?}", g.cuts);
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("web", "api", 8080));
    assert!(o.reaches("api", "db", 5432));
    assert!(!o.reaches("web", "db", 5432), "web does not use the database");
    assert!(!o.reaches("stranger", "db", 5432));
    assert!(!o.reaches("stranger", "api", 8080), "api's caller is known: web");
}

#[test]
fn ambient_admits_hbone_only_with_the_application_peers() {
    let input = inventory(&format!("{AMBIENT_NS}{SHOP}"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    let o = Oracle::new(&input, &g);
    let (api, db) = (o.pod("api"), o.pod("db"));
    assert!(o.engine.pod(api).ambient && o.engine.pod(db).ambient, "the engine sees both captured");
    assert_eq!(o.engine.path(api, db), meshmove_netpol::hbone::Path::Hbone);
    assert!(o.reaches("api", "db", 5432), "the client reaches the database through the tunnel");
    assert!(o.reaches("web", "api", 8080));
    for from in ["stranger", "ambient-stranger", "web"] {
        assert!(!o.reaches(from, "db", HBONE_PORT), "{from} must not reach the database's HBONE port");
        assert!(!o.reaches(from, "db", 5432));
    }
    // The kubelet's probes, which ztunnel sends from 169.254.7.127, still arrive.
    let probe: IpNet = "169.254.7.127/32".parse().unwrap();
    assert!(o.engine.allowed_from_cidr(probe, o.pod("db")).allows(Protocol::Tcp, 5432));
    assert!(!o.engine.allowed_from_cidr("10.1.2.3/32".parse().unwrap(), o.pod("db")).allows(Protocol::Tcp, HBONE_PORT));
}

use ipnet::IpNet;

/// The ambient companions, proven by the engine: inside the tunnel they keep the client on the
/// ports it uses and shut it out of the others, which the NetworkPolicy alone cannot.
#[test]
fn ambient_companions_narrow_the_tunnel_to_the_ports_in_use() {
    let input = inventory(&format!("{AMBIENT_NS}{SHOP}"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    assert!(g.policies.iter().all(|p| p.authorization.is_some()), "{:?}", g.notes);
    let o = Oracle::new(&input, &g);
    assert!(o.engine.authz_active());
    assert!(o.reaches("api", "db", 5432) && o.reaches("web", "api", 8080));
    assert!(!o.reaches("api", "db", 9999), "the companion admits api on 5432 (and 15008) only");
    let x = o.engine.explain(Target::Pod(o.pod("api")), Target::Pod(o.pod("db")), Protocol::Tcp, 9999).unwrap();
    let a = x.authorization.expect("ztunnel's verdict");
    assert_eq!((a.state, a.enforced_by), (meshmove_netpol::AuthzState::Denied, Some(meshmove_netpol::Enforcer::Ztunnel)), "{a:?}");
    // Without the companions the tunnel opens every port.
    let bare = Generation { policies: g.policies.iter().cloned().map(|p| Generated { authorization: None, ..p }).collect(), ..g.clone() };
    assert!(Oracle::new(&input, &bare).reaches("api", "db", 9999));
}

/// A client left out of the mesh connects in plaintext, without the principal the companion
/// names: the proof withholds the companion (the NetworkPolicy still goes out) and says why.
#[test]
fn a_companion_that_would_refuse_a_plaintext_client_is_withheld() {
    let shop = SHOP.replacen("metadata: {labels: {app: api}}", "metadata: {labels: {app: api, istio.io/dataplane-mode: none}}", 1);
    let input = inventory(&format!("{AMBIENT_NS}{shop}"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    let db = g.policies.iter().find(|p| p.protects == "StatefulSet/db").expect("db keeps its NetworkPolicy");
    assert!(db.authorization.is_none());
    assert!(
        g.notes.iter().any(|n| n.starts_with("StatefulSet/db: no AuthorizationPolicy goes with its NetworkPolicy (it would cut Deployment/api -> StatefulSet/db on TCP 5432")),
        "{:?}",
        g.notes
    );
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("api", "db", 5432), "the plaintext client keeps its connection");
}

/// A client of every port: `web` also names `api-peers`, a headless Service without ports, so
/// it may use any port of api's pods. In ambient mode the NetworkPolicy admits it on 15008, which
/// opens every port through the tunnel; the companion lists 8080 and 15008 only and would cut
/// the others, so the proof withholds it and says which ports.
#[test]
fn a_companion_that_would_cut_a_client_of_every_port_is_withheld() {
    let shop = SHOP.replace("env: [{name: API_URL, value: 'http://api/v1'}]", "env: [{name: API_URL, value: 'http://api/v1'}, {name: PEERS, value: 'http://api-peers:9000/'}]");
    let headless = "
---
apiVersion: v1
kind: Service
metadata: {name: api-peers}
spec: {clusterIP: None, selector: {app: api}}
";
    let input = inventory(&format!("{AMBIENT_NS}{shop}{headless}"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    let api = g.policies.iter().find(|p| p.protects == "Deployment/api").expect("api keeps its NetworkPolicy");
    assert!(api.authorization.is_none(), "{:?}", api.authorization);
    assert!(
        g.notes.iter().any(|n| n.starts_with(
            "Deployment/api: no AuthorizationPolicy goes with its NetworkPolicy (it would cut Deployment/web -> Deployment/api on TCP 1-8079, TCP 8081-15007, TCP 15009-65535 (env PEERS names api-peers)"
        )),
        "{:?}",
        g.notes
    );
    let o = Oracle::new(&input, &g);
    for port in [8080, 9000, 1] {
        assert!(o.reaches("web", "api", port), "web keeps every port of api: {port}");
    }
    // The database's companion does not concern web's use and still goes out.
    assert!(g.policies.iter().find(|p| p.protects == "StatefulSet/db").is_some_and(|p| p.authorization.is_some()), "{:?}", g.notes);
    assert!(!o.reaches("web", "db", 5432));
}

/// With `--egress` in ambient mode, egress admits 15008 only with the peers a workload is seen
/// calling: the tunnel to anyone else would open every port of every pod in the mesh.
#[test]
fn ambient_egress_opens_the_tunnel_only_to_the_callees() {
    let input = inventory(&format!("{AMBIENT_NS}{SHOP}"));
    let opts = PolicyOptions { egress: true, ..PolicyOptions::default() };
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("web", "api", 8080) && o.reaches("api", "db", 5432), "{:?}", g.withheld);
    for to in ["ambient-stranger", "stranger"] {
        assert!(!o.reaches("api", to, 8080), "api's egress reaches {to}");
        assert!(!o.reaches("api", to, HBONE_PORT), "api's egress opens the tunnel to {to}");
    }
}

#[test]
fn the_probe_source_is_the_engines() {
    assert_eq!(AMBIENT_PROBE_SOURCE, format!("{}/32", meshmove_netpol::hbone::AMBIENT_PROBE_SOURCE));
}

/// In ambient mode a peer admitted on 15008 reaches every port through the tunnel: each policy
/// comes with an L4 AuthorizationPolicy that names the same peers (as service-account
/// principals) and the same ports, which ztunnel enforces.
#[test]
fn ambient_policies_come_with_an_authorization_policy_of_the_same_peers_and_ports() {
    let input = inventory(&SHOP.replace("spec:\n      containers: [{name: api,", "spec:\n      serviceAccountName: api-sa\n      containers: [{name: api,"));
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Ambient));
    let db = g.policies.iter().find(|p| p.protects == "StatefulSet/db").expect("db policy");
    let ap = db.authorization.as_ref().expect("an AuthorizationPolicy goes with it");
    assert_eq!(ap["apiVersion"], "security.istio.io/v1");
    assert_eq!(ap["spec"]["action"], "ALLOW");
    assert_eq!(ap["spec"]["selector"], json!({"matchLabels": {"app": "db"}}));
    let rules = ap["spec"]["rules"].as_array().unwrap();
    // The client rule: api's service account, on 5432 and HBONE (what the NetworkPolicy admits).
    assert!(
        rules.iter().any(|r| r["from"] == json!([{"source": {"principals": ["*/ns/shop/sa/api-sa"]}}])
            && r["to"] == json!([{"operation": {"ports": ["15008", "5432"]}}])),
        "{rules:?}"
    );
    // The probe rule: ztunnel's probe address, every port.
    assert!(rules.iter().any(|r| r["from"] == json!([{"source": {"ipBlocks": ["169.254.7.127/32"]}}]) && r.get("to").is_none()), "{rules:?}");
    // Sidecar mode: none.
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.policies.iter().all(|p| p.authorization.is_none()));

    // A chart rendered for Helm leaves the namespace to install time (the post-renderer reads its
    // objects with an empty one): the principal is exact when the release namespace is known.
    let mut objects = input.objects().to_vec();
    for o in &mut objects {
        if o.namespace.is_some() {
            o.namespace = Some(String::new());
        }
    }
    let chart = Inventory::from_files(objects, vec!["-".into()], "default".into());
    let principals = |namespace: Option<&str>| {
        let g = generate(&chart, &Request { namespace, ..release(&opts, MeshMode::Ambient) });
        let db = g.policies.iter().find(|p| p.protects == "StatefulSet/db").expect("db policy");
        let rules = db.authorization.as_ref().expect("an AuthorizationPolicy")["spec"]["rules"].clone();
        rules.as_array().unwrap().iter().filter_map(|r| r.pointer("/from/0/source/principals").cloned()).collect::<Vec<Value>>()
    };
    assert_eq!(principals(Some("prod")), vec![json!(["*/ns/prod/sa/api-sa"])]);
    assert_eq!(principals(None), vec![json!(["*/sa/api-sa"])], "unknown: any namespace's account of that name");
}


/// A chart whose API reads its database URL from a Secret that is not in the chart: the
/// generator does not isolate the database (its clients cannot be established). With an init
/// container that waits for the database (`nc -z db 5432`), the API is a client it can see.
#[test]
fn clients_behind_a_secret_outside_the_input_keep_the_database_open() {
    let chart = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers: [{name: wait, image: busybox, command: [sh, -c, 'until nc -z db 5432; do sleep 1; done']}]
      containers: [{name: api, image: acme/api:1, env: [{name: DATABASE_URL, valueFrom: {secretKeyRef: {name: api-db, key: url}}}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  serviceName: db
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, annotations: {helm.sh/hook: pre-upgrade}}
spec:
  template:
    metadata: {labels: {app: migrate}}
    spec: {restartPolicy: Never, containers: [{name: m, image: acme/migrate, env: [{name: PGHOST, value: db}]}]}
";
    let without_init = chart.replace("      initContainers: [{name: wait, image: busybox, command: [sh, -c, 'until nc -z db 5432; do sleep 1; done']}]\n", "");
    assert_ne!(without_init, chart);
    let input = inventory(&without_init);
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    let db = g.withheld.iter().find(|w| w.subject == "StatefulSet/db").expect("the database is not isolated");
    assert!(db.reason.contains("Secret api-db"), "{db:?}");
    assert!(db.isolate_with.contains("isolateAnyway"), "{db:?}");
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("api", "db", 5432));
    assert!(o.reaches("migrate", "db", 5432));

    // With the init container the API is a client the input shows, and so is the migration
    // hook: the database is isolated for everyone else.
    let input = inventory(chart);
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.policies.iter().any(|p| p.protects == "StatefulSet/db"), "{g:?}");
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("api", "db", 5432), "the init container's nc -z db 5432 names the database");
    assert!(o.reaches("migrate", "db", 5432), "a hook of the release is a client");
    assert!(!o.reaches("stranger", "db", 5432));
}

const TWO_CLUSTERS: &str = "
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: assets-db}
spec: {instances: 2}
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: quality-db}
spec: {instances: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: assets}
spec:
  selector: {matchLabels: {app: assets}}
  template:
    metadata: {labels: {app: assets}}
    spec: {containers: [{name: a, image: acme/assets, env: [{name: DB_HOST, value: assets-db-rw}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: quality-analyzer}
spec:
  selector: {matchLabels: {app: quality-analyzer}}
  template:
    metadata: {labels: {app: quality-analyzer}}
    spec:
      containers: [{name: q, image: acme/quality, env: [{name: DB_HOST, value: quality-db-rw}, {name: ASSETS_DB_HOST, value: assets-db-ro}]}]
";

fn cnpg_services(yaml: &str) -> String {
    // The Services the operator creates for each cluster (`<name>-rw`, `-ro`, `-r`).
    let mut s = yaml.to_string();
    for c in ["assets-db", "quality-db"] {
        for suffix in ["rw", "ro", "r"] {
            s.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {c}-{suffix}}}\nspec: {{selector: {{cnpg.io/cluster: {c}}}, ports: [{{port: 5432}}]}}\n"
            ));
        }
    }
    s
}

#[test]
fn a_service_reading_another_services_database_is_cut_and_reported() {
    let input = inventory(&cnpg_services(TWO_CLUSTERS));
    let opts = PolicyOptions::default();
    let req = databases(&opts);
    let g = generate(&input, &req);
    assert_eq!(g.policies.len(), 2, "{g:?}");
    let cut = g.cuts.iter().find(|c| c.from == "Deployment/quality-analyzer").expect("the violation is cut");
    assert!(cut.to.ends_with("assets-db") && cut.ports == [5432], "{cut:?}");
    assert!(cut.reason.contains("DB3001"), "{cut:?}");
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("assets", "assets-db", 5432));
    assert!(!o.reaches("quality-analyzer", "assets-db", 5432), "the violation is not admitted");
    assert!(o.reaches("quality-analyzer", "quality-db", 5432));
    // CloudNativePG's operator keeps PostgreSQL and the instance manager.
    for port in [5432, 8000] {
        assert!(o.reaches("operator", "assets-db", port), "operator on {port}");
    }
    assert!(!o.reaches("stranger", "assets-db", 5432));
}

#[test]
fn an_owner_that_cannot_be_told_leaves_a_shared_database_open() {
    let yaml = cnpg_services(TWO_CLUSTERS).replace("assets-db", "shared-db").replace("quality-db", "other-db");
    let input = inventory(&yaml);
    let opts = PolicyOptions::default();
    let req = databases(&opts);
    let g = generate(&input, &req);
    let w = g.withheld.iter().find(|w| w.subject.ends_with("shared-db")).expect("not isolated");
    assert!(w.reason.contains("2 services"), "{w:?}");
    assert!(w.isolate_with.contains("databaseOwners"), "{w:?}");
    // Isolated anyway: every service that uses it keeps it, strangers are shut out.
    let opts = PolicyOptions { isolate_anyway: vec!["shared-db".into()], ..PolicyOptions::default() };
    let req = databases(&opts);
    let g = generate(&input, &req);
    assert!(g.cuts.is_empty(), "{:?}", g.cuts);
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("assets", "shared-db", 5432) && o.reaches("quality-analyzer", "shared-db", 5432));
    assert!(!o.reaches("stranger", "shared-db", 5432));
    // Told the owner, it cuts the other service.
    let opts = PolicyOptions { database_owners: [("shared-db".to_string(), "assets".to_string())].into(), ..PolicyOptions::default() };
    let req = databases(&opts);
    let g = generate(&input, &req);
    assert!(g.cuts.iter().any(|c| c.from == "Deployment/quality-analyzer" && c.to.ends_with("shared-db")), "{g:?}");
}

/// A workload whose Service nobody in the input names and that nothing exposes has unknown
/// callers: isolating it would cut them, so it is left alone and said.
#[test]
fn unknown_callers_are_not_cut() {
    let input = inventory(
        "
apiVersion: apps/v1
kind: Deployment
metadata: {name: reports}
spec:
  selector: {matchLabels: {app: reports}}
  template:
    metadata: {labels: {app: reports}}
    spec: {containers: [{name: r, image: acme/reports, ports: [{containerPort: 9000}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: reports}
spec: {selector: {app: reports}, ports: [{port: 9000}]}
",
    );
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(g.policies.is_empty(), "{:?}", g.policies);
    assert_eq!(g.withheld.len(), 1);
    assert!(g.withheld[0].reason.contains("callers are unknown"), "{:?}", g.withheld);
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("stranger", "reports", 9000));
}

/// The proof catches what the rules alone would miss: an existing egress policy of a client
/// is the client's business, but a generated egress policy that would cut a call in use is
/// withheld.
#[test]
fn the_proof_withholds_a_candidate_that_would_cut_a_connection_in_use() {
    // web names api only through a ConfigMap key that is no URL; with --egress, web's egress
    // policy would not know about it, but api's caller list does not include web either, so api
    // is withheld (unknown callers) and web's egress admits what it is seen calling.
    let input = inventory(SHOP);
    let opts = PolicyOptions { egress: true, ..PolicyOptions::default() };
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("web", "api", 8080));
    assert!(o.reaches("api", "db", 5432));
    assert!(!o.reaches("web", "db", 5432));
}

/// The proof asks the engine, which carries TCP between two ambient pods through HBONE: a
/// candidate that admits the client on the database port but not on 15008 cuts the connection
/// (the tunnel never gets in) and is withheld; with 15008 in the same rule it stands.
#[test]
fn the_proof_sees_the_ambient_tunnel() {
    use meshmove_netpol::{ClusterModel, NamespaceInfo, PodInfo, WorkloadKind};
    let w = |kind, name: &str| WorkloadRef::new(kind, "shop", name);
    let (api, db) = (w(WorkloadKind::Deployment, "api"), w(WorkloadKind::StatefulSet, "db"));
    let model = ClusterModel {
        namespaces: vec![NamespaceInfo::new("shop", [("istio.io/dataplane-mode".to_string(), "ambient".to_string())].into())],
        pods: vec![
            PodInfo::new("shop", "api").with_labels([("app", "api")]).with_owner(api.clone()).with_ambient(true),
            PodInfo::new("shop", "db").with_labels([("app", "db")]).with_owner(db.clone()).with_port(None, 5432, Protocol::Tcp).with_ambient(true),
        ],
        ..ClusterModel::default()
    };
    let candidate = |ports: Value| proof::Candidate {
        subject: db.clone(),
        policy: serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": ports}]}}))
        .unwrap(),
        egress: false,
    };
    let uses = [proof::Use { from: proof::From::Workload(api), from_name: "api".into(), to: proof::To::Workload(db.clone()), ports: vec![5432], why: "DATABASE_URL".into(), violation: None }];
    let v = proof::prove(&model, &[candidate(json!([{"port": 5432}]))], &uses);
    assert_eq!(v.withhold.get(&0).map(|(u, ports)| (*u, ports.clone())), Some((0, PortSet::from_ranges([PortRange::single(Protocol::Tcp, 5432)]))), "{v:?}");
    let v = proof::prove(&model, &[candidate(json!([{"port": 5432}, {"port": HBONE_PORT}]))], &uses);
    assert!(v.withhold.is_empty(), "{v:?}");
}

/// What the Prometheus Operator scrapes and what an AWS ALB sends to pod IPs are connections the
/// input shows: the policies keep them, or the workload is left alone until the addresses are known.
#[test]
fn monitors_and_load_balancers_that_target_pods_keep_their_connections() {
    let chart = format!(
        "{SHOP}---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {{name: api}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  endpoints: [{{port: metrics, path: /api/v2/metrics}}]
---
apiVersion: v1
kind: Service
metadata: {{name: api-metrics, labels: {{app: api}}}}
spec: {{selector: {{app: api}}, ports: [{{name: metrics, port: 8000, targetPort: 8000}}]}}
"
    );
    let input = inventory(&chart);
    let opts = PolicyOptions::default();
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("prometheus", "api", 8000), "the ServiceMonitor's scrape port stays open: {:?}", g.policies);
    assert!(!o.reaches("stranger", "api", 8000));

    let alb = SHOP.replace("kind: Ingress\nmetadata: {name: web}", "kind: Ingress\nmetadata: {name: web, annotations: {alb.ingress.kubernetes.io/target-type: ip}}");
    assert_ne!(alb, SHOP);
    let input = inventory(&alb);
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    let w = g.withheld.iter().find(|w| w.subject == "Deployment/web").expect("web is left alone");
    assert!(w.isolate_with.contains("ingressIpBlocks"), "{w:?}");
    let opts = PolicyOptions { ingress_ip_blocks: vec!["10.0.0.0/16".into()], ..PolicyOptions::default() };
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    let o = Oracle::new(&input, &g);
    let vpc: IpNet = "10.0.3.7/32".parse().unwrap();
    assert!(o.engine.allowed_from_cidr(vpc, o.pod("web")).allows(Protocol::Tcp, 3000), "the ALB reaches the pods");
    assert!(!o.engine.allowed_from_cidr("192.0.2.1/32".parse().unwrap(), o.pod("web")).allows(Protocol::Tcp, 3000));
}

#[test]
fn output_grows_linearly_without_a_shared_release_label() {
    let size = |n: usize| {
        let mut yaml = String::new();
        for i in 0..n {
            let next = (i + 1) % n;
            yaml.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: svc{i}}}\nspec:\n  selector: {{matchLabels: {{app: svc{i}}}}}\n  template:\n    metadata: {{labels: {{app: svc{i}}}}}\n    spec: {{containers: [{{name: c, image: acme/s, ports: [{{containerPort: 8080}}], env: [{{name: NEXT_URL, value: 'http://svc{next}:80'}}]}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}}}\nspec: {{selector: {{app: svc{i}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n"
            ));
        }
        let input = inventory(&yaml);
        let opts = PolicyOptions::default();
        let g = generate(&input, &release(&opts, MeshMode::Sidecar));
        assert_eq!(g.policies.len(), n, "{:?}", g.withheld);
        // Each caller reaches its callee, nobody else does.
        let o = Oracle::new(&input, &g);
        assert!(o.reaches("svc0", "svc1", 8080) && !o.reaches("svc2", "svc1", 8080));
        g.policies.iter().map(|p| meshmove_model::yaml::to_yaml_string(&p.object).len()).sum::<usize>()
    };
    let (small, large) = (size(50), size(200));
    assert!(large < small * 5, "4x the workloads gave {large} bytes against {small}: not linear");
}

#[test]
fn names_are_stable_short_and_not_doubled() {
    assert_eq!(policy_name("shop", "api"), "shop-api-ingress");
    assert_eq!(policy_name("shop", "shop-api"), "shop-api-ingress");
    let long = policy_name("release", &"x".repeat(80));
    assert!(long.len() <= 63, "{long}");
    assert_eq!(long, policy_name("release", &"x".repeat(80)));
    assert_ne!(long, policy_name("release", &"x".repeat(81)));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A generated platform: `n` services (each a Deployment and a Service on 8080), `calls`
    /// between them by URL, databases (`postgres` StatefulSets) with their clients, all in one
    /// namespace, with or without the release label on every workload.
    #[derive(Debug, Clone)]
    struct Platform {
        n: usize,
        calls: Vec<(usize, usize)>,
        dbs: Vec<Vec<usize>>,
        labelled: bool,
        ambient: bool,
    }

    fn platform() -> impl Strategy<Value = Platform> {
        (2usize..7).prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec((0..n, 0..n), 0..8),
                proptest::collection::vec(proptest::collection::vec(0..n, 0..3), 0..3),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(n, calls, dbs, labelled, ambient)| Platform {
                    n,
                    calls: calls.into_iter().filter(|(a, b)| a != b).collect(),
                    dbs,
                    labelled,
                    ambient,
                })
        })
    }

    fn yaml(p: &Platform) -> String {
        let mut out = String::new();
        let label = if p.labelled { ", app.kubernetes.io/instance: rel" } else { "" };
        for i in 0..p.n {
            let mut env: Vec<String> =
                p.calls.iter().filter(|(a, _)| *a == i).map(|(_, b)| format!("{{name: S{b}_URL, value: 'http://svc{b}:80/'}}")).collect();
            for (d, clients) in p.dbs.iter().enumerate() {
                if clients.contains(&i) {
                    env.push(format!("{{name: DB{d}_URL, value: 'postgres://u@db{d}:5432/x'}}"));
                }
            }
            out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: svc{i}}}\nspec:\n  selector: {{matchLabels: {{app: svc{i}}}}}\n  template:\n    metadata: {{labels: {{app: svc{i}{label}}}}}\n    spec: {{containers: [{{name: c, image: acme/svc{i}, ports: [{{containerPort: 8080}}], env: [{}]}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}}}\nspec: {{selector: {{app: svc{i}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n",
                env.join(", ")
            ));
        }
        for d in 0..p.dbs.len() {
            out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db{d}}}\nspec:\n  selector: {{matchLabels: {{app: db{d}}}}}\n  serviceName: db{d}\n  template:\n    metadata: {{labels: {{app: db{d}}}}}\n    spec: {{containers: [{{name: pg, image: 'postgres:16', ports: [{{containerPort: 5432}}]}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: db{d}}}\nspec: {{selector: {{app: db{d}}}, ports: [{{port: 5432}}]}}\n"
            ));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn generation_keeps_every_visible_connection_and_admits_no_stranger_to_a_database(p in platform()) {
            // Ambient platforms run in a namespace enrolled in ambient: the engine then carries
            // every connection between their pods through HBONE.
            let text = if p.ambient { format!("{AMBIENT_NS}{}", yaml(&p)) } else { yaml(&p) };
            let input = inventory(&text);
            let opts = PolicyOptions::default();
            let mode = if p.ambient { MeshMode::Ambient } else { MeshMode::Sidecar };
            let g = generate(&input, &release(&opts, mode));
            let o = Oracle::new(&input, &g);
            for (a, b) in &p.calls {
                prop_assert!(o.reaches(&format!("svc{a}"), &format!("svc{b}"), 8080), "svc{a} -> svc{b} was cut");
                if p.ambient {
                    let (from, to) = (format!("svc{a}"), format!("svc{b}"));
                    prop_assert!(o.reaches(&from, &to, HBONE_PORT), "{} -> {} lost HBONE", from, to);
                }
            }
            for (d, clients) in p.dbs.iter().enumerate() {
                let db = format!("db{d}");
                for c in clients {
                    prop_assert!(o.reaches(&format!("svc{c}"), &db, 5432), "client svc{c} of {db} was cut");
                }
                // Several services sharing one database with no owner by name: left open, said.
                let isolated = g.policies.iter().any(|x| x.protects == format!("StatefulSet/{db}"));
                let distinct: BTreeSet<&usize> = clients.iter().collect();
                prop_assert_eq!(isolated, distinct.len() == 1, "{:?}", g.withheld);
                if isolated {
                    let strangers = ["stranger".to_string(), "ambient-stranger".to_string()];
                    for other in (0..p.n).filter(|i| !clients.contains(i)).map(|i| format!("svc{i}")).chain(strangers) {
                        prop_assert!(!o.reaches(&other, &db, 5432), "{} reaches {}", other, db);
                        prop_assert!(!o.reaches(&other, &db, HBONE_PORT), "{} reaches {} through HBONE", other, db);
                    }
                }
            }
            // Idempotent: generating over the output gives the same policies.
            let mut objects: Vec<_> = input.objects().to_vec();
            for x in &g.policies {
                objects.extend(inventory::load_str(&meshmove_model::yaml::to_yaml_string(&x.object), None, "shop").unwrap());
            }
            let again = generate(&Inventory::from_files(objects, vec!["again".into()], "shop".into()), &release(&opts, mode));
            let names = |g: &Generation| g.policies.iter().map(|x| (x.name.clone(), x.object.clone())).collect::<Vec<_>>();
            prop_assert_eq!(names(&g), names(&again));
        }
    }
}

/// The ports a generated rule names for a Service come from model's one reading of `targetPort`:
/// a name stays a name (the network plugin resolves it per pod), a digit string is its number,
/// and `0` or `""` mean `port` as the API server defaults them (this reading used to emit port 0
/// and a rule naming `""`).
#[test]
fn service_target_ports_as_rules_name_them() {
    let inv = inventory(
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {app: api}\n  ports:\n  - {port: 80, targetPort: http}\n  - {port: 81, targetPort: '8081'}\n  - {port: 82, targetPort: 0}\n  - {port: 83, targetPort: ''}\n  - {port: 84}\n  - {port: 53, protocol: UDP}\n",
    );
    let svc = inv.of(&meshmove_model::inventory::kinds::SERVICE).next().unwrap();
    let ports = rules::target_ports(svc);
    assert_eq!(ports, [Port::Named("http".into()), Port::Number(8081), Port::Number(82), Port::Number(83), Port::Number(84)]);
    let rule: Vec<Value> = ports.iter().map(rules::port_rule).collect();
    assert_eq!(rule[0], serde_json::json!({"protocol": "TCP", "port": "http"}));
    assert_eq!(rule[1], serde_json::json!({"protocol": "TCP", "port": 8081}));
}
