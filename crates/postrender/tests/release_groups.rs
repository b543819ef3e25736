//! Streams of several releases whose objects partly lack the release label, judged by the exact
//! engine: after post-rendering, every connection the input shows (a service calling another's
//! Service, a client using a database, across releases too, named directly or through shared
//! Secrets and ConfigMaps) is still allowed, and each release's policies stay named after it.

use std::collections::BTreeSet;

use meshmove_model::inventory::{self, Inventory};
use meshmove_model::yaml;
use meshmove_netpol::view::{self, ModelOptions};
use meshmove_netpol::{Engine, EngineOptions, Protocol};
use meshmove_postrender::{self as postrender, PostRenderConfig};
use proptest::prelude::*;
use serde_json::Value;

/// How a workload names the Service it calls.
#[derive(Debug, Clone, Copy)]
enum Via {
    Env,
    /// A ConfigMap of the caller's release, with or without the release label.
    ConfigMap {
        labelled: bool,
    },
    /// A Secret (base64 `data`), with or without the release label.
    Secret {
        labelled: bool,
    },
}

/// A service as (release, index); the index past the release's services is its database.
type Service = (usize, usize);

#[derive(Debug, Clone)]
struct Spec {
    /// Services per release (each a Deployment and a Service on 8080).
    services: Vec<usize>,
    /// Whether each release runs a PostgreSQL StatefulSet.
    databases: Vec<bool>,
    /// (caller, callee, how): callers and callees as (release, service); a callee past the
    /// release's services is its database.
    calls: Vec<(Service, Service, Via)>,
    /// Per release: its Services carry the release label.
    labelled_services: Vec<bool>,
    egress: bool,
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![
        Just(Via::Env),
        any::<bool>().prop_map(|labelled| Via::ConfigMap { labelled }),
        any::<bool>().prop_map(|labelled| Via::Secret { labelled }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (2usize..5)
        .prop_flat_map(|releases| {
            (
                prop::collection::vec(1usize..4, releases),
                prop::collection::vec(any::<bool>(), releases),
                prop::collection::vec(
                    (
                        any::<prop::sample::Index>(),
                        any::<prop::sample::Index>(),
                        via(),
                    ),
                    0..7,
                ),
                prop::collection::vec(any::<bool>(), releases),
                prop::bool::weighted(0.3),
            )
        })
        .prop_map(|(services, databases, picks, labelled_services, egress)| {
            let callers: Vec<(usize, usize)> = services
                .iter()
                .enumerate()
                .flat_map(|(r, &n)| (0..n).map(move |s| (r, s)))
                .collect();
            let callees: Vec<(usize, usize)> = callers
                .iter()
                .copied()
                .chain(
                    databases
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| **d)
                        .map(|(r, _)| (r, services[r])),
                )
                .collect();
            let calls = picks
                .into_iter()
                .map(|(a, b, v)| {
                    (
                        callers[a.index(callers.len())],
                        callees[b.index(callees.len())],
                        v,
                    )
                })
                .filter(|(a, b, _)| a != b)
                .collect();
            Spec {
                services,
                databases,
                calls,
                labelled_services,
                egress,
            }
        })
}

fn name(spec: &Spec, (r, s): (usize, usize)) -> String {
    if s == spec.services[r] {
        format!("r{r}-db")
    } else {
        format!("r{r}-s{s}")
    }
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn render(spec: &Spec) -> String {
    let mut out = String::new();
    let label = |r: usize, on: bool| {
        if on {
            format!(", app.kubernetes.io/instance: rel{r}")
        } else {
            String::new()
        }
    };
    for (r, &n) in spec.services.iter().enumerate() {
        for s in 0..n {
            let me = name(spec, (r, s));
            let mut env = Vec::new();
            for (k, (_, callee, how)) in spec
                .calls
                .iter()
                .enumerate()
                .filter(|(_, (a, _, _))| *a == (r, s))
            {
                let target = name(spec, *callee);
                let (key, value) = if callee.1 == spec.services[callee.0] {
                    (
                        format!("DB{k}_URL"),
                        format!("postgres://app@{target}:5432/app"),
                    )
                } else {
                    (format!("S{k}_URL"), format!("http://{target}:80/"))
                };
                match how {
                    Via::Env => env.push(format!("{{name: {key}, value: '{value}'}}")),
                    Via::ConfigMap { labelled } => {
                        let cm = format!("{me}-c{k}");
                        env.push(format!("{{name: {key}, valueFrom: {{configMapKeyRef: {{name: {cm}, key: url}}}}}}"));
                        out.push_str(&format!(
                            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {cm}\n  labels: {{app: {me}{}}}\ndata:\n  url: '{value}'\n",
                            label(r, *labelled)
                        ));
                    }
                    Via::Secret { labelled } => {
                        let secret = format!("{me}-x{k}");
                        env.push(format!("{{name: {key}, valueFrom: {{secretKeyRef: {{name: {secret}, key: url}}}}}}"));
                        out.push_str(&format!(
                            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret}\n  labels: {{app: {me}{}}}\ndata:\n  url: {}\n",
                            label(r, *labelled),
                            b64(&value)
                        ));
                    }
                }
            }
            out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {me}\n  labels: {{app: {me}{l}}}\nspec:\n  selector:\n    matchLabels: {{app: {me}}}\n  template:\n    metadata:\n      labels: {{app: {me}{l}}}\n    spec:\n      containers:\n      - name: c\n        image: acme/{me}:1\n        ports: [{{containerPort: 8080}}]\n        env: [{}]\n",
                env.join(", "),
                l = label(r, true)
            ));
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {me}\n  labels: {{app: {me}{}}}\nspec:\n  selector: {{app: {me}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n",
                label(r, spec.labelled_services[r])
            ));
        }
        if spec.databases[r] {
            let db = name(spec, (r, n));
            out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {db}\n  labels: {{app: {db}{l}}}\nspec:\n  serviceName: {db}\n  selector:\n    matchLabels: {{app: {db}}}\n  template:\n    metadata:\n      labels: {{app: {db}{l}}}\n    spec:\n      containers:\n      - name: pg\n        image: postgres:16\n        ports: [{{containerPort: 5432}}]\n",
                l = label(r, true)
            ));
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {db}\n  labels: {{app: {db}{}}}\nspec:\n  selector: {{app: {db}}}\n  ports: [{{port: 5432}}]\n",
                label(r, spec.labelled_services[r])
            ));
        }
    }
    out
}

/// The engine over a whole stream (the input, or the output with its generated policies).
fn engine(stream: &str) -> Engine {
    let objects = inventory::load_str(stream, None, "shop").unwrap();
    let inv = Inventory::from_files(objects, vec!["stream".into()], "shop".into());
    let model = view::build(&inv, ModelOptions { probes: false }).cluster;
    let (engine, rejected) = Engine::build_lenient(&model, EngineOptions::default()).unwrap();
    assert!(
        rejected.is_empty(),
        "the engine rejects a policy: {rejected:?}"
    );
    engine
}

fn reaches(engine: &Engine, from: &str, to: &str, port: u16) -> bool {
    let pod = |w: &str| {
        engine
            .pods()
            .find(|(_, p)| p.workload().name == w)
            .map(|(id, _)| id)
            .unwrap_or_else(|| panic!("no pod of {w}"))
    };
    engine
        .allowed(pod(from), pod(to))
        .allows(Protocol::Tcp, port)
}

fn generated(input: &str, output: &str) -> Vec<Value> {
    let n = yaml::split_stream(input).len();
    yaml::split_stream(output)[n..]
        .iter()
        .filter_map(|d| yaml::parse_document(d).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn connections_across_releases_and_unlabelled_objects_survive(spec in spec()) {
        let input = render(&spec);
        let mut cfg = PostRenderConfig::default();
        cfg.network_policies.egress = spec.egress;
        let rendered = postrender::post_render(&input, &cfg).unwrap();
        let policies = generated(&input, &rendered.output);
        prop_assert!(!policies.is_empty() || rendered.summary.withheld.len() + rendered.summary.cuts.len() > 0, "nothing generated or reported");
        let before = engine(&input);
        let after = engine(&rendered.output);
        let cut: BTreeSet<(String, String)> = rendered.summary.cuts.iter().map(|c| (c.from.clone(), c.to.clone())).collect();
        for (a, b, how) in &spec.calls {
            let (from, to) = (name(&spec, *a), name(&spec, *b));
            let port = if b.1 == spec.services[b.0] { 5432 } else { 8080 };
            prop_assert!(reaches(&before, &from, &to, port));
            // A client using another service's database may be cut on purpose, and is reported.
            let reported = cut.iter().any(|(f, t)| f.ends_with(&format!("/{from}")) && t.ends_with(&format!("/{to}")));
            prop_assert!(reaches(&after, &from, &to, port) || reported, "{from} -> {to} on TCP {port} ({how:?}) was cut\n{input}");
        }
        // Only what crosses releases is left alone: every other service gets its policy (its
        // release's selector admits its callers; the unlabelled objects it needs are read).
        let across = |w: (usize, usize)| spec.calls.iter().any(|(a, b, _)| a.0 != b.0 && (*b == w || (spec.egress && *a == w)));
        let protected: BTreeSet<&str> = rendered.summary.policies.iter().map(|p| p.protects.as_str()).collect();
        for (r, &n) in spec.services.iter().enumerate() {
            for s in (0..n).filter(|&s| !across((r, s))) {
                let w = format!("Deployment/{}", name(&spec, (r, s)));
                prop_assert!(protected.contains(w.as_str()), "{w} has no policy: {:?}", rendered.summary.withheld);
            }
        }
        // Each release's policies are named and labelled after it.
        for p in &policies {
            let release = p.pointer("/metadata/labels/app.kubernetes.io~1instance").and_then(Value::as_str).unwrap_or_default();
            let name = p.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let r = release.strip_prefix("rel").unwrap_or_default();
            prop_assert!(name.starts_with(&format!("{release}-r{r}-")), "{name} is not a policy of {release}");
        }
    }
}
