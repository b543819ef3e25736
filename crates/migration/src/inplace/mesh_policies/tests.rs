//! The suite's policies after a `mode: none` post-render, judged by the engine before and after
//! `enable`'s update; a policy the suite did not generate is reported and never changed.

use std::collections::BTreeMap;

use meshmove_isolation::policies::{self, GENERATED_LABEL, PolicyOptions, Request, Subjects};
use meshmove_istio::MeshMode as DataPlane;
use meshmove_kube::plan::Change;
use meshmove_model::inventory::{self, Inventory, Object, kinds};
use meshmove_netpol::view::{self, ModelOptions};
use meshmove_netpol::{Engine, EngineOptions, NamespaceInfo, PodInfo, Protocol, Target};
use serde_json::json;

use super::super::enable::Mode;
use super::*;

const CHART: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app.kubernetes.io/instance: rel}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web, app.kubernetes.io/instance: rel}
      annotations: {prometheus.io/scrape: 'true', prometheus.io/port: '9102'}
    spec:
      containers: [{name: web, image: acme/web:1, ports: [{containerPort: 8080}, {containerPort: 9102}],
        env: [{name: API_URL, value: 'http://api'}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec: {rules: [{host: shop.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop, labels: {app.kubernetes.io/instance: rel}}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, app.kubernetes.io/instance: rel}}
    spec:
      containers: [{name: api, image: acme/api:1, ports: [{containerPort: 8000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8000}]}
";

/// A workload nobody in the chart calls (the generator leaves it alone) and a policy the suite
/// did not write for it: monitoring may scrape its own port only.
const FOREIGN: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: shop}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: legacy, image: acme/legacy:1, ports: [{containerPort: 9102}]}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: shop}
spec: {selector: {app: legacy}, ports: [{port: 80, targetPort: 9102}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: legacy-metrics, namespace: shop}
spec:
  podSelector: {matchLabels: {app: legacy}}
  policyTypes: [Ingress]
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], ports: [{port: 9102}]}]
";

/// The chart as a `mode: none` post-render leaves it (the one generator, no mesh ports),
/// with `extra` documents.
fn rendered(extra: &str, egress: bool) -> Inventory {
    let chart = Inventory::from_files(
        inventory::load_str(CHART, None, "shop").unwrap(),
        vec!["chart".into()],
        "shop".into(),
    );
    let opts = PolicyOptions {
        egress,
        ..PolicyOptions::default()
    };
    let req = Request {
        subjects: Subjects::Release,
        release: "rel",
        mode: Some(DataPlane::None),
        options: &opts,
        labels: json!({GENERATED_LABEL: "true"}),
        namespace: Some("shop"),
    };
    let g = policies::generate(&chart, &req);
    assert!(!g.policies.is_empty(), "{:?}", g.withheld);
    let mut text = format!("{CHART}{extra}");
    for p in &g.policies {
        text.push_str("\n---\n");
        text.push_str(&meshmove_model::yaml::to_yaml_string(&p.object));
    }
    Inventory::from_files(
        inventory::load_str(&text, None, "shop").unwrap(),
        vec!["rendered".into()],
        "shop".into(),
    )
}

/// The inventory as the plan's field changes leave it.
fn applied(inv: &Inventory, changes: &[Change]) -> Inventory {
    let mut objects: Vec<Object> = Vec::new();
    for c in changes {
        let Change::Set { target, fields } = c else {
            panic!("only field changes: {c:?}")
        };
        let mut o = inv
            .get(
                &kinds::NETWORK_POLICY,
                target.namespace.as_deref(),
                &target.name,
            )
            .expect("a policy")
            .clone();
        for (pointer, value) in fields {
            let key = pointer.trim_start_matches("/spec/");
            o.value["spec"][key] = value.clone().expect("set, not removed");
        }
        objects.push(o);
    }
    inv.overlay(objects)
}

/// The engine over `inv`, with a Prometheus pod in `monitoring` and a pod of ambient ztunnel's
/// probe address stand-in.
fn engine(inv: &Inventory, ambient: bool) -> Engine {
    let mut m = view::build(inv, ModelOptions { probes: false }).cluster;
    m.namespaces
        .push(NamespaceInfo::new("monitoring", BTreeMap::new()));
    m.pods
        .push(PodInfo::new("monitoring", "prometheus").with_labels([("app", "prometheus")]));
    if ambient {
        for p in &mut m.pods {
            *p = p.clone().with_ambient(true);
        }
    }
    Engine::build_lenient(&m, EngineOptions::default())
        .unwrap()
        .0
}

fn pod(e: &Engine, name: &str) -> meshmove_netpol::PodId {
    e.pods()
        .find(|(_, p)| p.workload().name == name || p.name == name)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no pod {name}"))
}

fn codes(f: &[meshmove_model::findings::Finding], on: &str) -> Vec<&'static str> {
    f.iter()
        .filter(|f| f.object.as_ref().is_some_and(|o| o.name == on))
        .map(|f| f.code)
        .collect()
}

#[test]
fn sidecar_mode_opens_the_sidecar_metrics_of_the_suites_policies_and_reports_the_rest() {
    let inv = rendered(&format!("---{FOREIGN}"), false);
    let before = engine(&inv, false);
    let (prom, web) = (pod(&before, "prometheus"), pod(&before, "web"));
    assert!(
        before.allowed(prom, web).allows(Protocol::Tcp, 9102),
        "the app's metrics were kept"
    );
    assert!(
        !before.allowed(prom, web).allows(Protocol::Tcp, 15020),
        "mode none: no sidecar port"
    );

    let m = update(
        &inv,
        "shop",
        Mode::Sidecar,
        &["monitoring".to_string()],
        "istio-system",
    );
    let touched: Vec<String> = m
        .changes
        .iter()
        .filter_map(|c| c.target())
        .map(|t| t.name)
        .collect();
    assert!(
        touched.iter().any(|n| n == "rel-web-ingress")
            && !touched.iter().any(|n| n == "legacy-metrics"),
        "{touched:?}"
    );
    let after_inv = applied(&inv, &m.changes);
    let after = engine(&after_inv, false);
    for port in [15020, 15090, 9102] {
        assert!(
            after.allowed(prom, web).allows(Protocol::Tcp, port),
            "monitoring -> web {port} after the update"
        );
    }
    assert!(
        !after
            .allowed(pod(&after, "api"), web)
            .allows(Protocol::Tcp, 15020),
        "only monitoring gets the metrics ports"
    );
    // The foreign policy is still flagged (and unchanged); the suite's are not.
    assert_eq!(
        codes(&m.findings, "legacy-metrics"),
        ["MM1051"],
        "{:?}",
        m.findings
    );
    assert!(
        codes(&m.findings, "rel-web-ingress").is_empty(),
        "{:?}",
        m.findings
    );
    assert_eq!(
        after_inv
            .get(&kinds::NETWORK_POLICY, Some("shop"), "legacy-metrics")
            .unwrap()
            .value,
        inv.get(&kinds::NETWORK_POLICY, Some("shop"), "legacy-metrics")
            .unwrap()
            .value
    );
    // Idempotent: nothing left to add.
    assert!(
        update(
            &after_inv,
            "shop",
            Mode::Sidecar,
            &["monitoring".to_string()],
            "istio-system"
        )
        .changes
        .is_empty()
    );
}

#[test]
fn sidecar_mode_lets_isolated_egress_reach_istiod() {
    let inv = rendered("", true);
    let m = update(
        &inv,
        "shop",
        Mode::Sidecar,
        &["monitoring".to_string()],
        "istio-system",
    );
    let egress: Vec<&Change> = m
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Set { fields, .. } if fields.contains_key("/spec/egress")))
        .collect();
    assert!(!egress.is_empty(), "{:?}", m.changes);
    let after_inv = applied(&inv, &m.changes);
    let mut model = view::build(&after_inv, ModelOptions { probes: false }).cluster;
    model
        .namespaces
        .push(NamespaceInfo::new("istio-system", BTreeMap::new()));
    model
        .pods
        .push(PodInfo::new("istio-system", "istiod").with_labels([("app", "istiod")]));
    let e = Engine::build_lenient(&model, EngineOptions::default())
        .unwrap()
        .0;
    assert!(
        e.egress(pod(&e, "web"), Target::Pod(pod(&e, "istiod")))
            .allows(Protocol::Tcp, 15012)
    );
    assert!(
        m.findings.iter().all(|f| f.code != "MM1052"),
        "{:?}",
        m.findings
    );
}

#[test]
fn ambient_mode_adds_hbone_with_the_same_peers_and_the_probe_source() {
    let inv = rendered("", false);
    let before = engine(&inv, true);
    let (api, web) = (pod(&before, "api"), pod(&before, "web"));
    assert!(
        !before.allowed(web, api).allows(Protocol::Tcp, 8000),
        "through the tunnel: 15008 is not admitted"
    );
    let m = update(
        &inv,
        "shop",
        Mode::Ambient,
        &["monitoring".to_string()],
        "istio-system",
    );
    assert!(!m.changes.is_empty());
    let after = engine(&applied(&inv, &m.changes), true);
    assert!(
        after.allowed(web, api).allows(Protocol::Tcp, 8000),
        "web -> api over HBONE after the update"
    );
    let probe: ipnet::IpNet = "169.254.7.127/32".parse().unwrap();
    assert!(
        after
            .allowed_from_cidr(probe, api)
            .allows(Protocol::Tcp, 8000)
    );
    let stranger: ipnet::IpNet = "10.9.9.9/32".parse().unwrap();
    assert!(
        !after
            .allowed_from_cidr(stranger, api)
            .allows(Protocol::Tcp, 15008),
        "15008 only with the rules' peers"
    );
    assert!(
        m.findings.iter().all(|f| f.code != "MM1050"),
        "{:?}",
        m.findings
    );
}
