//! Offline tests of the plan builders on small inventories.

use serde_json::json;

use super::enable::{self, EnableOptions, Mode};
use super::expose::{self, ExposeOptions};
use super::*;
use meshmove_model::inventory::Inventory;
use meshmove_kube::plan::{Change, label_pointer};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/rev: canary}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: metrics-tcp, port: 9000, appProtocol: tcp}, {name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}, ports: [{name: postgres, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-headless, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 8000}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {replicas: 2, selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web, tier: front}}, spec: {containers: [{name: web, image: web}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec: {selector: {matchLabels: {app: api}}, template: {metadata: {labels: {app: api, tier: front}}, spec: {containers: [{name: api, image: api}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch, namespace: shop}
spec: {selector: {matchLabels: {app: batch}}, template: {metadata: {labels: {app: batch}}, spec: {containers: [{name: b, image: b}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: shop}
spec: {selector: {matchLabels: {app: legacy}}, template: {metadata: {labels: {app: legacy, sidecar.istio.io/inject: "false"}}, spec: {containers: [{name: l, image: l}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec: {selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: postgres:16}]}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: front, namespace: shop}
spec: {minAvailable: 1, selector: {matchLabels: {tier: front}}}
"#;

fn load(text: &str, ns: &str) -> Inventory {
    let objects = meshmove_model::inventory::load_str(text, None, ns).unwrap();
    Inventory::from_files(objects, vec!["test.yaml".into()], ns.into())
}

fn inv() -> Inventory {
    load(SHOP, "shop")
}

#[test]
fn http_services_skip_databases_and_headless_services() {
    let (svcs, skipped) = http_services(&inv(), "shop");
    assert_eq!(svcs, vec![HttpService { name: "api".into(), port: 8000 }, HttpService { name: "web".into(), port: 8080 }]);
    assert_eq!(skipped, vec!["db: no HTTP port", "db-headless: headless"]);
}

/// Which port `expose` and `enable` route follows the protocol Istio selects
/// (meshmove_istio::protocol): a declared HTTP-family protocol, else a port Istio sniffs.
#[test]
fn http_services_follow_istios_protocol_selection() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: h2c, namespace: x}
spec: {ports: [{name: grpc-ish, port: 9000, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: v1
kind: Service
metadata: {name: renamed, namespace: x}
spec: {ports: [{name: http, port: 8080, appProtocol: tcp}]}
---
apiVersion: v1
kind: Service
metadata: {name: wss, namespace: x}
spec: {ports: [{name: web, port: 443, appProtocol: kubernetes.io/wss}]}
---
apiVersion: v1
kind: Service
metadata: {name: prefer, namespace: x}
spec: {ports: [{port: 9100}, {name: grpc, port: 9090}, {name: api, port: 80, appProtocol: kubernetes.io/ws}]}
---
apiVersion: v1
kind: Service
metadata: {name: udp, namespace: x}
spec: {ports: [{name: http, port: 80, protocol: UDP}]}
"#;
    let (svcs, skipped) = http_services(&load(text, "x"), "x");
    assert_eq!(
        svcs,
        [
            HttpService { name: "h2c".into(), port: 9000 },
            // An HTTP/1.1 declaration (appProtocol kubernetes.io/ws) before gRPC, before sniffing.
            HttpService { name: "prefer".into(), port: 80 },
        ]
    );
    assert_eq!(skipped, ["renamed: no HTTP port", "udp: no HTTP port", "wss: no HTTP port"]);
}

#[test]
fn expose_routes_each_service_on_its_host() {
    let opts = ExposeOptions { domain: Some("shop.test".into()), ingress_class: Some("nginx".into()), hosts: [("web".to_string(), "shop.test".to_string())].into(), merge: false };
    let e = expose::plan(&inv(), "shop", &opts).unwrap();
    let Change::Apply { object } = &e.plan.changes[0] else { panic!() };
    assert_eq!(object["spec"]["ingressClassName"], "nginx");
    assert_eq!(object["spec"]["rules"][0]["host"], "api.shop.test");
    assert_eq!(object["spec"]["rules"][0]["http"]["paths"][0]["backend"], json!({"service": {"name": "api", "port": {"number": 8000}}}));
    assert_eq!(object["spec"]["rules"][1]["host"], "shop.test");
    assert_eq!(e.hosts_lines(), vec!["127.0.0.1 api.shop.test shop.test"]);
    let bad = ExposeOptions { domain: Some("Bad_Domain".into()), ingress_class: None, hosts: Default::default(), merge: false };
    assert!(expose::plan(&inv(), "shop", &bad).unwrap_err().to_string().contains("Bad_Domain"));
    let unknown = ExposeOptions { domain: None, ingress_class: None, hosts: [("nope".to_string(), "x.y".to_string())].into(), merge: false };
    assert!(expose::plan(&inv(), "shop", &unknown).unwrap_err().to_string().contains("no Service nope"));
    let empty = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: e}\n", "e");
    assert!(matches!(expose::plan(&empty, "e", &ExposeOptions { domain: None, ingress_class: None, hosts: Default::default(), merge: false }), Err(MigrateError::NoServices { .. })));
}

/// Another Ingress of the class, serving `host` at `/` with a body-size annotation; and the
/// cluster's IngressClasses (`nginx` the default).
fn with_ingresses(extra: &str) -> Inventory {
    let text = format!(
        "{SHOP}---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: nginx, annotations: {{ingressclass.kubernetes.io/is-default-class: \"true\"}}}}
spec: {{controller: k8s.io/ingress-nginx}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: traefik}}
spec: {{controller: traefik.io/ingress-controller}}
{extra}"
    );
    load(&text, "shop")
}

const OLD_INGRESS: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop-web
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 50m, meta.helm.sh/release-name: shop}
spec:
  rules:
  - host: shop.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}]}
  - host: other.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}]}
"#;

#[test]
fn expose_uses_the_default_ingress_class_and_refuses_without_one() {
    let opts = ExposeOptions { domain: Some("shop.test".into()), ingress_class: None, hosts: Default::default(), merge: false };
    let e = expose::plan(&with_ingresses(""), "shop", &opts).unwrap();
    assert_eq!((e.class.as_str(), e.class_source), ("nginx", expose::ClassSource::Default));
    let Change::Apply { object } = &e.plan.changes[0] else { panic!() };
    assert_eq!(object["spec"]["ingressClassName"], "nginx");
    // No default class: refused, naming the classes there are.
    let err = expose::plan(&inv(), "shop", &opts).unwrap_err().to_string();
    assert!(err.contains("no IngressClass is the cluster's default") && err.contains("--ingress-class"), "{err}");
    let two = with_ingresses("---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: b, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}\n");
    let err = expose::plan(&two, "shop", &opts).unwrap_err().to_string();
    assert!(err.contains("2 IngressClasses are marked default (b, nginx)"), "{err}");
    // A named class that does not exist is a note.
    let named = ExposeOptions { ingress_class: Some("haproxy".into()), ..opts };
    let e = expose::plan(&with_ingresses(""), "shop", &named).unwrap();
    assert_eq!(e.class_source, expose::ClassSource::Flag);
    assert!(e.notes[0].contains("no IngressClass haproxy exists (the cluster has nginx, traefik)"), "{:?}", e.notes);
}

#[test]
fn expose_refuses_a_host_and_path_another_ingress_serves_and_carries_its_annotations() {
    let hosts: std::collections::BTreeMap<String, String> = [("web".to_string(), "shop.test".to_string())].into();
    let opts = ExposeOptions { domain: Some("shop.test".into()), ingress_class: None, hosts, merge: false };
    let err = expose::plan(&with_ingresses(OLD_INGRESS), "shop", &opts).unwrap_err().to_string();
    assert!(err.contains("host shop.test path / is served by Ingress shop/shop-web (class nginx)") && err.contains("--merge-existing"), "{err}");
    // Merged: the pair is left to shop-web, which then serves no host of the new Ingress (so none
    // of its annotations is carried).
    let e = expose::plan(&with_ingresses(OLD_INGRESS), "shop", &ExposeOptions { merge: true, ..opts.clone() }).unwrap();
    assert_eq!(e.left, vec![expose::Served { host: "shop.test".into(), path: "/".into(), ingress: "shop/shop-web".into() }]);
    let Change::Apply { object } = &e.plan.changes[0] else { panic!() };
    let hosts: Vec<&str> = object["spec"]["rules"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["api.shop.test"]);
    // Another path on the same host is no duplicate: its controller annotations are carried.
    let other_path = OLD_INGRESS.replace("{path: /, pathType: Prefix, backend: {service: {name: web", "{path: /old, pathType: Prefix, backend: {service: {name: web");
    let e = expose::plan(&with_ingresses(&other_path), "shop", &opts).unwrap();
    assert_eq!(e.carried, vec![expose::Carried { key: "nginx.ingress.kubernetes.io/proxy-body-size".into(), value: "50m".into(), from: "shop/shop-web".into() }]);
    let Change::Apply { object } = &e.plan.changes[0] else { panic!() };
    assert_eq!(object["metadata"]["annotations"], json!({"nginx.ingress.kubernetes.io/proxy-body-size": "50m"}));
    // An Ingress of another class is no duplicate.
    let traefik = OLD_INGRESS.replace("spec:\n  rules:", "spec:\n  ingressClassName: traefik\n  rules:");
    assert!(expose::plan(&with_ingresses(&traefik), "shop", &opts).unwrap().carried.is_empty());
}

#[test]
fn gateway_serves_the_hosts_of_the_ingress_with_the_same_overrides() {
    let hosts: std::collections::BTreeMap<String, String> = [("web".to_string(), "shop.test".to_string())].into();
    let e = expose::plan(&inv(), "shop", &ExposeOptions { domain: Some("shop.test".into()), ingress_class: Some("nginx".into()), hosts: hosts.clone(), merge: false }).unwrap();
    let Change::Apply { object: ingress } = &e.plan.changes[0] else { panic!() };
    let ingress_hosts: Vec<&str> = ingress["spec"]["rules"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    let p = enable::plan(&inv(), "shop", &EnableOptions { domain: Some("shop.test".into()), hosts, ..EnableOptions::default() }).unwrap();
    let applied = |kind: &str, name: &str| {
        p.changes
            .iter()
            .find_map(|c| match c {
                Change::Apply { object } if object["kind"] == kind && object["metadata"]["name"] == name => Some(object.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{kind}/{name} not in the plan"))
    };
    let gw = applied("Gateway", "shop-gateway");
    assert_eq!(ingress_hosts, vec!["api.shop.test", "shop.test"]);
    assert_eq!(gw["spec"]["servers"][0]["hosts"], json!(ingress_hosts));
    assert_eq!(applied("VirtualService", "web")["spec"]["hosts"], json!(["web", "shop.test"]));
    assert_eq!(applied("VirtualService", "api")["spec"]["hosts"], json!(["api", "api.shop.test"]));
    // The same validation as expose: an override for no HTTP Service, a bad domain.
    let unknown = EnableOptions { hosts: [("db".to_string(), "db.test".to_string())].into(), ..EnableOptions::default() };
    assert!(enable::plan(&inv(), "shop", &unknown).unwrap_err().to_string().contains("--host db=db.test: no Service db with an HTTP port"));
    let bad = EnableOptions { domain: Some("Shop_Test".into()), ..EnableOptions::default() };
    assert!(enable::plan(&inv(), "shop", &bad).unwrap_err().to_string().contains("`Shop_Test` is not a valid DNS name"));
}

#[test]
fn enable_labels_routes_and_restarts_in_budget_aware_batches() {
    let p = enable::plan(&inv(), "shop", &EnableOptions::default()).unwrap();
    // The revision label would win over istio-injection: enable removes it.
    assert_eq!(
        p.changes[0],
        Change::Set {
            target: meshmove_kube::plan::Target::namespace("shop"),
            fields: [(label_pointer("istio-injection"), Some(json!("enabled"))), (label_pointer("istio.io/rev"), None)].into()
        }
    );
    let kinds: Vec<String> = p.changes.iter().map(|c| match c {
        Change::Apply { object } => format!("{}/{}", object["kind"].as_str().unwrap(), object["metadata"]["name"].as_str().unwrap()),
        Change::Restart { target } => format!("restart {}", target.name),
        Change::WaitReady { targets } => format!("wait {}", targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(",")),
        other => other.verb().to_string(),
    }).collect();
    assert_eq!(
        kinds,
        [
            "set", "PeerAuthentication/default", "Gateway/shop-gateway",
            "VirtualService/api", "DestinationRule/api", "VirtualService/web", "DestinationRule/web",
            // api and web share the PodDisruptionBudget `front`: never in one batch. legacy opts out.
            "restart web", "restart batch", "restart db", "wait web,batch,db", "restart api", "wait api"
        ]
    );
    let Change::Apply { object: dr } = &p.changes[4] else { panic!() };
    assert_eq!(dr["spec"]["host"], "api.shop.svc.cluster.local");
    assert_eq!(dr["spec"]["trafficPolicy"]["outlierDetection"], json!({"consecutive5xxErrors": 5, "consecutiveGatewayErrors": 5, "interval": "30s", "baseEjectionTime": "30s", "maxEjectionPercent": 50}));
    assert_eq!(dr["spec"]["trafficPolicy"]["connectionPool"]["http"], json!({"http1MaxPendingRequests": 1000, "maxRequestsPerConnection": 10}));
    let Change::Apply { object: vs } = &p.changes[3] else { panic!() };
    assert_eq!(vs["spec"]["gateways"], json!(["shop-gateway", "mesh"]));
    assert_eq!(vs["spec"]["hosts"], json!(["api", "api.shop.local"]));

    // A revision keeps istio.io/rev; batch size 1 restarts one at a time.
    let rev = enable::plan(&inv(), "shop", &EnableOptions { revision: Some("1-24".into()), batch_size: 1, ..EnableOptions::default() }).unwrap();
    assert_eq!(rev.changes[0], Change::label(meshmove_kube::plan::Target::namespace("shop"), "istio.io/rev", Some("1-24")));
    assert_eq!(rev.changes.iter().filter(|c| matches!(c, Change::WaitReady { .. })).count(), 4);
    // Ambient: its label, no restarts; refused while sidecar labels are set.
    let err = enable::plan(&inv(), "shop", &EnableOptions { mode: Mode::Ambient, ..EnableOptions::default() }).unwrap_err();
    assert!(err.to_string().contains("sidecar injection"), "{err}");
    assert!(enable::plan(&inv(), "nope", &EnableOptions::default()).is_err());
}

#[test]
fn traffic_profiles_read_yaml_and_reject_unknown_keys() {
    let p = TrafficProfile::from_yaml("p.yaml", "maxConnections: 10\ninterval: 10s\n").unwrap();
    assert_eq!((p.max_connections, p.interval.as_str(), p.max_ejection_percent), (10, "10s", 50));
    let e = TrafficProfile::from_yaml("p.yaml", "maxConnection: 10\n").unwrap_err().to_string();
    assert!(e.contains("p.yaml") && e.contains("maxConnection"), "{e}");
    let e = TrafficProfile::from_yaml("p.yaml", "interval: soon\n").unwrap_err().to_string();
    assert!(e.contains("interval") && e.contains("soon"), "{e}");
    assert!(TrafficProfile::from_yaml("p.yaml", "maxEjectionPercent: 150\n").is_err());
}

#[test]
fn mtls_readiness_names_unmeshed_pods_and_plaintext_clients() {
    let text = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: reports}
---
apiVersion: v1
kind: Namespace
metadata: {name: meshed, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, namespace: shop, labels: {app: api}}
spec: {containers: [{name: api, image: api}, {name: istio-proxy, image: proxy}]}
---
apiVersion: v1
kind: Pod
metadata: {name: old-1, namespace: shop, labels: {app: old}}
spec: {containers: [{name: old, image: old}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reporter, namespace: reports}
spec: {selector: {matchLabels: {app: reporter}}, template: {metadata: {labels: {app: reporter}}, spec: {containers: [{name: r, image: r}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: friend, namespace: meshed}
spec: {selector: {matchLabels: {app: friend}}, template: {metadata: {labels: {app: friend}}, spec: {containers: [{name: f, image: f}]}}}
"#;
    let inv = load(text, "shop");
    let r = mtls::strict(&inv, "shop").unwrap().readiness;
    assert_eq!(
        r.blockers,
        vec![
            mtls::Blocker::UnmeshedPod { workload: "Pod/shop/old-1".into(), pod: "old-1".into() },
            mtls::Blocker::PlaintextClient {
                client: "Deployment/reports/reporter".into(),
                reaches: vec!["Pod/api-1 other ports".into(), "Pod/old-1 other ports".into()]
            },
        ]
    );
    // A policy admitting only the namespace's own pods removes the client.
    let isolated = format!("{text}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: own, namespace: shop}}\nspec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{}}}}]}}]}}\n");
    let inv = load(&isolated, "shop");
    let s = mtls::strict(&inv, "shop").unwrap();
    assert_eq!(s.readiness.blockers.len(), 1, "{:?}", s.readiness.blockers);
    assert_eq!(s.plan.changes.len(), 1);
}

#[test]
fn status_reports_workloads_mode_and_pending_steps() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: api-1, namespace: shop, annotations: {istio.io/rev: default}}\nspec: {containers: [{name: api, image: api}, {name: istio-proxy, image: p}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\nspec: {containers: [{name: web, image: web}]}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}\n";
    let inv = load(text, "shop");
    let s = status::status(&inv, "shop", None);
    assert_eq!(s.mode.as_deref(), Some("sidecar"));
    assert_eq!(s.mtls.as_deref(), Some("PERMISSIVE"));
    assert_eq!(s.istio_objects["PeerAuthentication"], vec!["default"]);
    let states: Vec<(&str, &str)> = s.workloads.iter().map(|w| (w.name.as_str(), w.state.as_str())).collect();
    assert_eq!(states, [("api-1", "meshed"), ("web-1", "not meshed")]);
    assert_eq!(s.pending, ["enable: some workloads are not meshed yet", "mtls strict: require mutual TLS"]);
}

#[test]
fn ambient_status_and_readiness_count_only_pods_ztunnel_captured() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: api-1, namespace: amb, annotations: {ambient.istio.io/redirection: enabled}}\nspec: {containers: [{name: api, image: api}]}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: amb}\nspec: {containers: [{name: web, image: web}]}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: tool-1, namespace: amb, labels: {istio.io/dataplane-mode: none}}\nspec: {containers: [{name: t, image: t}]}\n";
    let inv = load(text, "amb");
    let s = status::status(&inv, "amb", None);
    let states: Vec<(&str, &str, usize)> = s.workloads.iter().map(|w| (w.name.as_str(), w.state.as_str(), w.meshed_pods)).collect();
    assert_eq!(states, vec![("api-1", "captured", 1), ("tool-1", "not captured", 0), ("web-1", "not captured", 0)]);
    assert_eq!(s.workloads[0].revisions, vec!["ztunnel"]);
    assert!(s.pending.iter().any(|p| p.contains("not captured by ztunnel")), "{:?}", s.pending);
    // Waiting for capture lists the pod ztunnel should take but has not; the opted-out one is not waited for.
    assert_eq!(enable::uncaptured_pods(&inv, "amb"), vec!["Pod: web-1"]);
    // STRICT would break both pods outside ztunnel.
    let r = mtls::strict(&inv, "amb").unwrap().readiness;
    let blocked: Vec<String> = r.blockers.iter().map(|b| format!("{b:?}")).collect();
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    assert!(blocked.iter().any(|b| b.contains("web-1")) && blocked.iter().any(|b| b.contains("tool-1")), "{blocked:?}");
}

fn namespace(labels: serde_json::Value) -> Inventory {
    load(&format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop, labels: {labels}}}\n"), "shop")
}

/// The namespace's data plane follows Istio's precedence (meshmove_istio::injection):
/// `istio-injection` over `istio.io/rev`, a disabled `istio-injection` over everything, sidecar
/// injection over ambient capture.
#[test]
fn namespace_mode_follows_istios_label_precedence() {
    let mode = |labels: serde_json::Value| namespace_mode(namespace_object(&namespace(labels), "shop").unwrap());
    assert_eq!(mode(json!({"istio-injection": "enabled", "istio.io/rev": "canary"})).as_deref(), Some("sidecar"));
    assert_eq!(mode(json!({"istio.io/rev": "canary"})).as_deref(), Some("sidecar (revision canary)"));
    assert_eq!(mode(json!({"istio-injection": "disabled", "istio.io/rev": "canary"})), None);
    assert_eq!(mode(json!({"istio.io/dataplane-mode": "ambient", "istio-injection": "enabled"})).as_deref(), Some("sidecar"));
    assert_eq!(mode(json!({"istio.io/dataplane-mode": "ambient", "istio-injection": "disabled"})).as_deref(), Some("ambient"));
    assert_eq!(mode(json!({})), None);
}

#[test]
fn enable_restarts_only_what_the_injector_would_inject() {
    let text = format!(
        "{SHOP}---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: declined, namespace: shop}}
spec: {{selector: {{matchLabels: {{app: declined}}}}, template: {{metadata: {{labels: {{app: declined, sidecar.istio.io/inject: \"no\"}}}}, spec: {{containers: [{{name: d, image: d}}]}}}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: annotated, namespace: shop}}
spec: {{selector: {{matchLabels: {{app: annotated}}}}, template: {{metadata: {{labels: {{app: annotated}}, annotations: {{sidecar.istio.io/inject: \"false\"}}}}, spec: {{containers: [{{name: a, image: a}}]}}}}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: shop}}
spec: {{selector: {{matchLabels: {{app: agent}}}}, template: {{metadata: {{labels: {{app: agent}}}}, spec: {{hostNetwork: true, containers: [{{name: a, image: a}}]}}}}}}
"
    );
    let p = enable::plan(&load(&text, "shop"), "shop", &EnableOptions::default()).unwrap();
    let restarted: Vec<&str> = p.changes.iter().filter_map(|c| if let Change::Restart { target } = c { Some(target.name.as_str()) } else { None }).collect();
    // `no` is a false-like the injector declines, the annotation opts out, host networking is
    // never injected; the SHOP workloads without an opt-out are restarted.
    assert_eq!(restarted, ["web", "batch", "db", "api"]);
}

#[test]
fn ambient_enable_is_refused_only_when_injection_labels_take_effect() {
    let ambient = EnableOptions { mode: Mode::Ambient, ..EnableOptions::default() };
    // istio-injection=disabled next to a revision: no webhook injects, so ambient applies.
    let inv = namespace(json!({"istio-injection": "disabled", "istio.io/rev": "canary"}));
    assert!(enable::plan(&inv, "shop", &ambient).is_ok());
    let inv = namespace(json!({"istio.io/rev": "canary"}));
    assert!(enable::plan(&inv, "shop", &ambient).unwrap_err().to_string().contains("labelled for sidecar injection"));
}

#[test]
fn enable_spire_requests_the_template_where_the_injector_serves_and_rolls_those_out() {
    let extra = r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: custom, namespace: shop}
spec: {selector: {matchLabels: {app: custom}}, template: {metadata: {labels: {app: custom}, annotations: {inject.istio.io/templates: "sidecar,custom"}}, spec: {containers: [{name: c, image: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: asked, namespace: shop}
spec: {selector: {matchLabels: {app: asked}}, template: {metadata: {labels: {app: asked}, annotations: {inject.istio.io/templates: "sidecar, spire"}}, spec: {containers: [{name: a, image: a}]}}}
"#;
    let inventory = load(&format!("{SHOP}{extra}"), "shop");
    let plan = enable::plan(&inventory, "shop", &EnableOptions { spire: true, ..EnableOptions::default() }).unwrap();
    let pointer = enable::spire_pointer();
    assert_eq!(pointer, "/spec/template/metadata/annotations/inject.istio.io~1templates");
    let mut annotated: Vec<&str> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Set { target, fields } if fields.get(&pointer) == Some(&Some(json!("sidecar,spire"))) => Some(target.name.as_str()),
            _ => None,
        })
        .collect();
    annotated.sort();
    // The opted-out workload gets nothing; one that names other templates keeps them; one that
    // asks for spire already needs no request.
    assert_eq!(annotated, ["api", "batch", "db", "web"]);
    let restarted: Vec<&str> = plan.changes.iter().filter_map(|c| if let Change::Restart { target } = c { Some(target.name.as_str()) } else { None }).collect();
    assert!(restarted.contains(&"custom") && restarted.contains(&"asked") && !restarted.contains(&"web"), "{restarted:?}");
    let mut rolled: Vec<String> = enable::rolled_out(&plan).into_iter().map(|t| t.name).collect();
    rolled.sort();
    assert_eq!(rolled, ["api", "asked", "batch", "custom", "db", "web"]);
    // Every annotated workload is waited for in a batch.
    for name in &annotated {
        assert!(plan.changes.iter().any(|c| matches!(c, Change::WaitReady { targets } if targets.iter().any(|t| t.name == *name))), "{name}");
    }
    let requests = enable::spire_requests(&inventory, "shop", &[("istio-injection".to_string(), "enabled".to_string())].into());
    assert!(requests.iter().any(|r| matches!(r, enable::SpireRequest::Kept { workload, templates } if workload.name == "custom" && templates == "sidecar,custom")));
    // The template change as the plan engine applies it to the object.
    let web = inventory.get(&kinds::DEPLOYMENT, Some("shop"), "web").unwrap();
    let mut after = web.value.clone();
    for c in &plan.changes {
        c.set_fields_on(&mut after);
    }
    assert_eq!(after.pointer(&pointer), Some(&json!("sidecar,spire")));
    assert_eq!(after["spec"]["template"]["metadata"]["labels"], web.value["spec"]["template"]["metadata"]["labels"]);
    // Without --spire, nothing of it.
    let plain = enable::plan(&inventory, "shop", &EnableOptions::default()).unwrap();
    assert!(!plain.changes.iter().any(|c| matches!(c, Change::Set { fields, .. } if fields.contains_key(&pointer))));
    // Ambient pods are not injected: refused.
    let e = enable::plan(&inventory, "shop", &EnableOptions { spire: true, mode: Mode::Ambient, ..EnableOptions::default() }).unwrap_err();
    assert!(e.to_string().starts_with("--spire: applies to sidecar mode only"), "{e}");
}
