//! What the post-renderer reads of each document, decided by a cheap scan, and how it keeps
//! memory proportional to the stream.
//!
//! Most bytes of a real chart's render are documents the post-renderer neither changes nor
//! reads: CustomResourceDefinitions with large OpenAPI schemas, ConfigMaps holding dashboards or
//! configuration files, custom resources. Each document is first scanned
//! ([`yaml::scan_document`]: its structure and characters checked line by line, its `apiVersion`,
//! `kind` and `metadata.name` read, no object built) and then:
//!
//! * **copied** when it is valid and of a kind nothing reads ([`Plan::Copy`]);
//! * **deferred** when it is a ConfigMap or Secret: it is parsed only if a workload names it
//!   ([`Plan::Defer`]; the generator reads them only through names a workload gives, see
//!   `owners::usage`);
//! * **parsed** otherwise ([`Plan::Parse`]): workloads (injection and generation), the kinds
//!   the policy generator reads ([`ANALYSED`]), the kinds the post-renderer itself reads by name
//!   ([`READ_BY_KIND`]), and every document the scan does not vouch for.
//!
//! Validation is unchanged: a document the scan vouches for is one the full YAML reader reads as
//! a mapping (the scan declines everything it is not sure about, and errors always come from
//! the full reader, with their line, column and key path), and every other document is parsed.
//! So a stream Helm accepts is accepted, and a broken document is reported as before, with the
//! first error in stream order.

use std::collections::HashSet;

use meshmove_model::workload::template_pointer;
use meshmove_model::yaml::{self, RawDocument, Shape};
use serde_json::Value;

use super::PostRenderConfig;

/// Kinds (API group, kind) the policy generator reads: its inventory lookups, in
/// `isolation::policies`, `isolation::{discover, owners}`, `netpol::view` and `model::workload`.
/// `kind_reads_are_covered` (tests) fails when one of them starts reading a kind missing here.
pub(super) const ANALYSED: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Pod"),
    ("", "Service"),
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policy.networking.k8s.io", "AdminNetworkPolicy"),
    ("policy.networking.k8s.io", "BaselineAdminNetworkPolicy"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "PeerAuthentication"),
    ("networking.k8s.io", "Ingress"),
    ("networking.istio.io", "VirtualService"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("networking.istio.io", "Gateway"),
    ("postgresql.cnpg.io", "Cluster"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("policy", "PodDisruptionBudget"),
];

/// Kinds the post-renderer reads by kind name alone, whatever their group: policies already in
/// the stream are not generated again.
pub(super) const READ_BY_KIND: &[&str] = &["NetworkPolicy", "AuthorizationPolicy"];

/// Objects of a larger stream are kept parsed up to this many bytes of their documents' text;
/// the objects of later documents are dropped once injected and read again when their release
/// group's policies are generated. A parsed object takes about ten times its text, so memory
/// stays proportional to the stream, while one release (the analysed part of a real chart's
/// render is tens to hundreds of kilobytes) is read once.
pub(super) const KEEP_PARSED_BYTES: usize = 1 << 20;

/// What the run does with one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Copied as it is: no node, or a valid mapping of a kind nothing reads.
    Copy,
    /// A valid ConfigMap or Secret with this name: parsed only if a workload names it.
    Defer(String),
    /// Parsed (and so checked by the full reader) in stream order.
    Parse,
}

/// The plan for one document under `cfg`.
pub(super) fn plan(raw: &RawDocument<'_>, cfg: &PostRenderConfig) -> Plan {
    let header = match yaml::scan_document(raw) {
        Shape::Empty => return Plan::Copy,
        Shape::Unknown => return Plan::Parse,
        Shape::Mapping(h) => h,
    };
    // Without a string kind nothing reads it (injection and generation both need one).
    let Some(kind) = header.kind.as_str() else { return Plan::Copy };
    let generate = cfg.inject.network_policies;
    if template_pointer(kind).is_some() {
        return if generate || cfg.inject.labels || cfg.inject.probes { Plan::Parse } else { Plan::Copy };
    }
    if !generate {
        return Plan::Copy;
    }
    if READ_BY_KIND.contains(&kind) {
        return Plan::Parse;
    }
    // Generation keys objects by API group and kind, and needs a string apiVersion.
    let Some(api_version) = header.api_version.as_str() else { return Plan::Copy };
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if !ANALYSED.contains(&(group, kind)) {
        return Plan::Copy;
    }
    if group.is_empty() && matches!(kind, "ConfigMap" | "Secret") {
        // Generation leaves out objects without a string name.
        return header.name.as_str().map_or(Plan::Copy, |name| Plan::Defer(name.to_string()));
    }
    Plan::Parse
}

/// Whether the policy generator may look for ConfigMaps and Secrets by names this object holds
/// (a workload's env, envFrom and volumes, a CloudNativePG cluster's credential Secrets).
pub(super) fn names_inputs(value: &Value) -> bool {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    template_pointer(kind).is_some() || kind == "Cluster"
}

/// Adds to `found` every name of `names` that `value` holds as a string, anywhere.
pub(super) fn mark_named<'n>(value: &Value, names: &HashSet<&'n str>, found: &mut HashSet<&'n str>) {
    match value {
        Value::String(s) => {
            if let Some(&n) = names.get(s.as_str()) {
                found.insert(n);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| mark_named(v, names, found)),
        Value::Object(map) => map.values().for_each(|v| mark_named(v, names, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::inventory::kinds;

    fn plan_of(text: &str) -> Plan {
        plan(&yaml::split_stream(text)[0], &PostRenderConfig::default())
    }

    #[test]
    fn plans_by_kind() {
        assert_eq!(plan_of("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x\n"), Plan::Copy);
        assert_eq!(plan_of("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dash\ndata:\n  a: |\n    {}\n"), Plan::Defer("dash".into()));
        assert_eq!(plan_of("apiVersion: v1\nkind: Secret\nmetadata:\n  name: 7\n"), Plan::Copy, "no string name: generation leaves it out");
        assert_eq!(plan_of("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"), Plan::Parse);
        assert_eq!(plan_of("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: x\n"), Plan::Parse, "injection goes by kind");
        assert_eq!(plan_of("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n"), Plan::Parse);
        assert_eq!(plan_of("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n"), Plan::Copy);
        assert_eq!(plan_of("kind: Service\nmetadata:\n  name: x\n"), Plan::Copy, "no apiVersion: generation leaves it out");
        assert_eq!(plan_of("# only a comment\n"), Plan::Copy);
        assert_eq!(plan_of("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n"), Plan::Parse, "not vouched for by the scan");
        assert_eq!(plan_of("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n  name: y\n"), Plan::Parse, "invalid: the parser reports it");
        let mut cfg = PostRenderConfig::default();
        cfg.inject.network_policies = false;
        let docs = yaml::split_stream("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n");
        assert_eq!(plan(&docs[0], &cfg), Plan::Copy);
        let docs = yaml::split_stream("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n");
        assert_eq!(plan(&docs[0], &cfg), Plan::Parse);
        cfg.inject.labels = false;
        cfg.inject.probes = false;
        assert_eq!(plan(&docs[0], &cfg), Plan::Copy);
    }

    /// The kind a `kinds::NAME` of the generator's sources means.
    fn kind_named(ident: &str) -> Option<&'static kinds::Kind> {
        Some(match ident {
            "DEPLOYMENT" => &kinds::DEPLOYMENT,
            "STATEFUL_SET" => &kinds::STATEFUL_SET,
            "DAEMON_SET" => &kinds::DAEMON_SET,
            "REPLICA_SET" => &kinds::REPLICA_SET,
            "JOB" => &kinds::JOB,
            "CRON_JOB" => &kinds::CRON_JOB,
            "POD" => &kinds::POD,
            "SERVICE" => &kinds::SERVICE,
            "NAMESPACE" => &kinds::NAMESPACE,
            "CONFIG_MAP" => &kinds::CONFIG_MAP,
            "SECRET" => &kinds::SECRET,
            "NETWORK_POLICY" => &kinds::NETWORK_POLICY,
            "ADMIN_NETWORK_POLICY" => &kinds::ADMIN_NETWORK_POLICY,
            "BASELINE_ADMIN_NETWORK_POLICY" => &kinds::BASELINE_ADMIN_NETWORK_POLICY,
            "AUTHORIZATION_POLICY" => &kinds::AUTHORIZATION_POLICY,
            "PEER_AUTHENTICATION" => &kinds::PEER_AUTHENTICATION,
            "INGRESS" => &kinds::INGRESS,
            "VIRTUAL_SERVICE" => &kinds::VIRTUAL_SERVICE,
            "HTTP_ROUTE" => &kinds::HTTP_ROUTE,
            "GATEWAY_API_GATEWAY" => &kinds::GATEWAY_API_GATEWAY,
            "ISTIO_GATEWAY" => &kinds::ISTIO_GATEWAY,
            "CNPG_CLUSTER" => &kinds::CNPG_CLUSTER,
            "POD_DISRUPTION_BUDGET" => &kinds::POD_DISRUPTION_BUDGET,
            _ => return None,
        })
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }

    /// Every kind the policy generator (and the code it calls) looks up is parsed by the
    /// post-renderer: a kind read there but copied unread here would silently change what is
    /// generated. Fails naming the kind when the generator starts reading a new one.
    #[test]
    fn kind_reads_are_covered() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        sources(&root.join("isolation/src/policies"), &mut files);
        for f in ["isolation/src/discover.rs", "isolation/src/owners.rs", "isolation/src/datastore.rs", "netpol/src/view.rs", "model/src/workload.rs", "model/src/selector.rs", "model/src/cnpg.rs"] {
            let p = root.join(f);
            files.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
        }
        let mut inputs_by_name = Vec::new();
        for (path, text) in &files {
            for (at, _) in text.match_indices("kinds::") {
                let ident: String = text[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if ident.is_empty() || ident == "ALL" || ident.chars().any(|c| c.is_ascii_lowercase()) {
                    // `kinds::Kind`, `kinds::lookup`; `ALL` is searched for workload kinds only.
                    continue;
                }
                let k = kind_named(&ident).unwrap_or_else(|| panic!("{path} reads kinds::{ident}: add its group and kind to postrender::plan::ANALYSED"));
                assert!(ANALYSED.contains(&(k.group, k.kind)), "{path} reads {k}: add it to postrender::plan::ANALYSED");
                if matches!(ident.as_str(), "SECRET" | "CONFIG_MAP") {
                    inputs_by_name.push(format!("{path}: {ident}"));
                }
            }
            for (at, _) in text.match_indices("of_kind(\"") {
                let args: Vec<&str> = text[at + 9..].split('"').collect();
                let (group, kind) = (args[0], args[2]);
                assert!(ANALYSED.contains(&(group, kind)), "{path} reads {group}/{kind}: add it to postrender::plan::ANALYSED");
            }
        }
        // ConfigMaps and Secrets are read only when a workload names them: the generator looks
        // them up by those names in one place. A new reader needs that rule checked again.
        assert_eq!(
            inputs_by_name.iter().map(|s| s.rsplit('/').next().unwrap().to_string()).collect::<Vec<_>>(),
            ["owners.rs: SECRET", "owners.rs: CONFIG_MAP"],
            "ConfigMaps or Secrets are read somewhere new: check that only names a workload gives are looked up (postrender::plan::Plan::Defer)"
        );
        // What the post-renderer itself reads by kind name.
        let own = std::fs::read_to_string(root.join("postrender/src/lib.rs")).unwrap();
        for (at, _) in own.match_indices("kind == \"") {
            let kind: String = own[at + 9..].chars().take_while(|c| *c != '"').collect();
            assert!(READ_BY_KIND.contains(&kind.as_str()) || kind == "Cluster", "postrender reads {kind} by name: add it to READ_BY_KIND");
        }
    }
}

/// The economical reading (scan, copy what nothing reads, drop objects beyond a budget and read
/// them again per release group) against parsing every document and keeping every object: the
/// same output, summary and errors.
#[cfg(test)]
mod reading_tests {
    use proptest::prelude::*;

    use super::super::{PostRenderConfig, Reading, render};
    use crate::inject::MeshMode;

    /// Documents beyond the fixtures: what the economical reading treats specially.
    const EXTRA: &[&str] = &[
        // A CRD and a dashboard nobody names: copied unread.
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.io\nspec:\n  group: example.io\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        description: A widget.\n        type: object\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dashboards\n  labels:\n    grafana_dashboard: \"1\"\ndata:\n  d.json: |-\n    {\"panels\": []}\n",
        // A ConfigMap and a Secret a workload names, and a Secret nobody names.
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-env\n  labels:\n    app.kubernetes.io/instance: r1\ndata:\n  DATABASE_HOST: pg\n  CACHE_URL: redis://cache:6379\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-db\n  labels:\n    app.kubernetes.io/instance: r1\nstringData:\n  DATABASE_URL: postgres://u:p@pg:5432/app\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: unrelated\nstringData:\n  x: y\n",
        // Release r1: a database, its Service, an API reading the ConfigMap and Secret, a hook.
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: pg\n  labels:\n    app.kubernetes.io/instance: r1\nspec:\n  selector:\n    matchLabels:\n      app: pg\n  template:\n    metadata:\n      labels:\n        app: pg\n        app.kubernetes.io/instance: r1\n    spec:\n      containers:\n      - name: pg\n        image: postgres:16\n        ports:\n        - containerPort: 5432\n",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: pg\n  labels:\n    app.kubernetes.io/instance: r1\nspec:\n  selector:\n    app: pg\n  ports:\n  - port: 5432\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels:\n    app.kubernetes.io/instance: r1\nspec:\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n        app.kubernetes.io/instance: r1\n    spec:\n      containers:\n      - name: api\n        image: acme/api:1\n        ports:\n        - containerPort: 8080\n        envFrom:\n        - configMapRef:\n            name: app-env\n        env:\n        - name: DATABASE_URL\n          valueFrom:\n            secretKeyRef: {name: app-db, key: DATABASE_URL}\n        - name: SESSION\n          valueFrom:\n            secretKeyRef: {name: missing-secret, key: k}\n",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  labels:\n    app.kubernetes.io/instance: r1\nspec:\n  selector:\n    app: api\n  ports:\n  - port: 80\n    targetPort: 8080\n",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  labels:\n    app.kubernetes.io/instance: r1\n  annotations:\n    helm.sh/hook: pre-upgrade\nspec:\n  template:\n    metadata:\n      labels:\n        app: migrate\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: m\n        image: acme/api:1\n        env:\n        - name: DATABASE_URL\n          value: postgres://u@pg:5432/app\n",
        // Release r2, and unlabelled objects shared by every release group.
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app.kubernetes.io/instance: r2\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n        app.kubernetes.io/instance: r2\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        ports:\n        - containerPort: 80\n        env:\n        - name: API_URL\n          value: http://api:80\n        - name: CACHE\n          valueFrom:\n            configMapKeyRef: {name: app-env, key: CACHE_URL}\n",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n  - http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {name: web, port: {number: 80}}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cache\nspec:\n  selector:\n    matchLabels:\n      app: cache\n  template:\n    metadata:\n      labels:\n        app: cache\n      annotations:\n        prometheus.io/scrape: \"true\"\n        prometheus.io/port: \"9121\"\n    spec:\n      containers:\n      - name: redis\n        image: redis:7\n        ports:\n        - containerPort: 6379\n",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: cache\n  labels:\n    app.kubernetes.io/instance: r2\nspec:\n  selector:\n    app: cache\n  ports:\n  - port: 6379\n",
        // CloudNativePG, monitors, policies already there.
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: db\n  labels:\n    app.kubernetes.io/instance: r1\nspec:\n  instances: 1\n  bootstrap:\n    initdb:\n      secret:\n        name: db-owner\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-owner\nstringData:\n  username: app\n",
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: api\nspec:\n  selector:\n    matchLabels:\n      app: api\n  endpoints:\n  - port: http\n",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: r1-api-ingress\nspec:\n  podSelector: {}\n",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: r1-pg-ingress\nspec: {}\n",
        // Helm 4's annotation on an unread document only; odd and broken documents.
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'chart/templates/sa.yaml'\n",
        "# only a comment\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-env-flow}\ndata: {a: b}\n",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: dup\n  name: dup2\n",
        "- not: a mapping\n",
    ];

    fn fixture_documents() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("../../tests/e2e/golden/post-render.yaml")];
        for dir in ["tests/fixtures/dbiso", "tests/fixtures/precheck"] {
            let mut entries: Vec<_> = std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten().map(|e| e.path().join("input.yaml")).collect();
            entries.sort();
            files.extend(entries);
        }
        let mut docs = Vec::new();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            for d in meshmove_model::yaml::split_stream(&text) {
                let t = d.text.trim_start_matches("---").trim_start_matches('\n');
                if !t.trim().is_empty() {
                    docs.push(t.to_string());
                }
            }
        }
        docs
    }

    fn same(input: &str, cfg: &PostRenderConfig, keep_bytes: usize) -> Result<(), TestCaseError> {
        let everything = render(input, cfg, Reading { scan: false, keep_bytes: usize::MAX });
        let economical = render(input, cfg, Reading { scan: true, keep_bytes });
        match (everything, economical) {
            (Ok(a), Ok(b)) => {
                let (a_out, b_out) = (a.output.to_string(), b.output.to_string());
                prop_assert!(a_out == b_out, "outputs differ:\n--- everything\n{a_out}\n--- economical\n{b_out}");
                prop_assert_eq!(serde_json::to_value(&a.summary).unwrap(), serde_json::to_value(&b.summary).unwrap());
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => return Err(TestCaseError::fail(format!("{:?} vs {:?}", a.map(|r| r.output.to_string()), b.map(|r| r.output.to_string())))),
        }
        Ok(())
    }

    fn config(mode: u8, clients: bool, release: bool) -> PostRenderConfig {
        let mut cfg = if clients {
            PostRenderConfig::parse("networkPolicies:\n  databaseClients:\n  - database: pg\n    podSelector:\n      matchLabels: {app: tools}\n").unwrap()
        } else {
            PostRenderConfig::default()
        };
        cfg.mode = [MeshMode::Sidecar, MeshMode::Ambient, MeshMode::None][usize::from(mode % 3)];
        if release {
            cfg.release = Some("fixed".into());
        }
        cfg
    }

    #[test]
    fn each_fixture_reads_the_same() {
        let docs = fixture_documents();
        assert!(docs.len() > 50, "{} fixture documents", docs.len());
        let all: String = docs.iter().chain(EXTRA.iter().map(|s| s.to_string()).collect::<Vec<_>>().iter()).filter(|d| !d.contains("dup2") && !d.starts_with('-')).map(|d| format!("---\n{d}")).collect();
        for keep in [0, 2000, usize::MAX] {
            same(&all, &PostRenderConfig::default(), keep).unwrap();
            same(&all, &config(1, true, false), keep).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn mixed_streams_read_the_same(
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..24),
            keep in prop::sample::select(vec![0usize, 300, 5000, usize::MAX]),
            mode in any::<u8>(),
            clients in any::<bool>(),
            release in prop::bool::weighted(0.2),
            no_policies in prop::bool::weighted(0.15),
        ) {
            let fixtures = fixture_documents();
            let pool: Vec<&str> = fixtures.iter().map(String::as_str).chain(EXTRA.iter().copied()).collect();
            let input: String = picks.iter().map(|i| format!("---\n{}", pool[i.index(pool.len())])).collect();
            let mut cfg = config(mode, clients, release);
            cfg.inject.network_policies = !no_policies;
            same(&input, &cfg, keep)?;
        }
    }
}
