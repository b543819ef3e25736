use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use meshmove_model::inventory::{Object, Origin, kinds};

fn obj(value: serde_json::Value) -> Object {
    let api_version = value["apiVersion"].as_str().unwrap().to_string();
    let kind = value["kind"].as_str().unwrap().to_string();
    let name = value["metadata"]["name"].as_str().unwrap().to_string();
    let namespace = value["metadata"]["namespace"].as_str().map(str::to_string);
    Object { api_version, kind, namespace, name, value, origin: Origin::Stdin { line: 1, helm_source: None }, pod: None }
}

fn files(objects: Vec<Object>) -> Inventory {
    Inventory::from_files(objects, vec!["test.yaml".into()], "default".into())
}

fn deployment(ns: &str, name: &str) -> Object {
    obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c"}]}}}
    }))
}

#[test]
fn scope_excludes_system_and_control_plane_namespaces_by_default() {
    let mut istiod = deployment("mesh-system", "istiod");
    istiod.value["metadata"]["labels"]["app"] = json!("istiod");
    let inv = files(vec![deployment("shop", "api"), istiod]);
    let scope = Scope::new(&PrecheckOptions::default(), &inv);
    assert!(scope.contains("shop"));
    assert!(scope.contains("anything-else"));
    for ns in ["kube-system", "kube-public", "kube-node-lease", "istio-system", "mesh-system"] {
        assert!(!scope.contains(ns), "{ns} is in scope");
    }
}

#[test]
fn scope_is_exactly_the_named_namespaces_or_the_listed_one() {
    let inv = files(vec![]);
    let options = PrecheckOptions { namespaces: Some(vec!["shop".into(), "kube-system".into()]), ..Default::default() };
    let scope = Scope::new(&options, &inv);
    assert!(scope.contains("shop") && scope.contains("kube-system") && !scope.contains("billing"));

    let live = Inventory::from_cluster(
        vec![],
        BTreeMap::new(),
        SourceInfo::Cluster { context: "kind".into(), namespace: Some("billing".into()) },
        "billing".into(),
    );
    let scope = Scope::new(&PrecheckOptions::default(), &live);
    assert_eq!(scope, Scope::Only(["billing".to_string()].into()));
}

#[test]
fn owned_objects_are_not_workloads_of_their_own() {
    let owned_rs = obj(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "api-5d8", "namespace": "shop",
                     "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}
    }));
    let owned_pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-5d8-x", "namespace": "shop",
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "api-5d8", "controller": true}]},
        "spec": {"containers": [{"name": "c"}]}
    }));
    let finished_pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "once", "namespace": "shop"},
        "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Succeeded"}
    }));
    let bare_pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "debug", "namespace": "shop"},
        "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}
    }));
    let job_of_cron = obj(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "nightly-123", "namespace": "shop",
                     "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}
    }));
    // The workloads precheck judges, of an inventory holding just `o`.
    let replicas = |o: &Object| -> Option<Replicas> {
        let inventory = Inventory::from_files(vec![o.clone()], vec!["test".into()], "shop".into());
        let scope = Scope::new(&PrecheckOptions::default(), &inventory);
        workloads(&inventory, &scope).first().map(|w| w.replicas)
    };
    assert!(replicas(&owned_rs).is_none());
    assert!(replicas(&owned_pod).is_none());
    assert!(replicas(&finished_pod).is_none());
    assert!(replicas(&job_of_cron).is_none());
    assert_eq!(replicas(&bare_pod), Some(Replicas::Known(1)));
    assert_eq!(replicas(&deployment("shop", "api")), Some(Replicas::Known(2)));
}

#[test]
fn analyzers_depend_on_the_mode_and_kinds_are_their_union() {
    let sidecar = analyzers(&PrecheckOptions::default());
    let ambient = analyzers(&PrecheckOptions { mode: MeshMode::Ambient, ..Default::default() });
    let names = |a: &[Box<dyn Analyzer>]| a.iter().map(|a| a.name()).collect::<Vec<_>>();
    assert!(names(&sidecar).contains(&"job-completion") && names(&sidecar).contains(&"capacity"));
    assert!(!names(&ambient).contains(&"job-completion") && !names(&ambient).contains(&"capacity"));

    let kinds_of = |a: &[Box<dyn Analyzer>]| {
        let refs: Vec<&dyn Analyzer> = a.iter().map(|a| a.as_ref()).collect();
        meshmove_model::findings::wanted_kinds(&refs)
    };
    let (k, wide) = kinds_of(&sidecar);
    assert_eq!(wide, [&kinds::POD, &kinds::DAEMON_SET, &kinds::DEPLOYMENT], "control plane and capacity list cluster-wide");
    assert!(k.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    for a in &sidecar {
        for kind in a.requires().iter().chain(a.uses()) {
            assert!(k.contains(kind), "{} needs {kind}", a.name());
        }
    }
    assert!(k.contains(&&kinds::NODE) && k.contains(&&kinds::CRD) && k.contains(&&kinds::MUTATING_WEBHOOK));
    assert!(!kinds_of(&ambient).0.contains(&&kinds::NODE), "ambient lists no Nodes: nothing uses them");
}

#[test]
fn selectors_follow_label_selector_semantics() {
    let labels: BTreeMap<String, String> = [("app".to_string(), "api".to_string())].into();
    assert!(!selects(None, &labels), "a null selector selects nothing");
    assert!(selects(Some(&LabelSelector::default()), &labels), "an empty selector selects everything");
    let bad: LabelSelector =
        serde_json::from_value(json!({"matchExpressions": [{"key": "app", "operator": "Near"}]})).unwrap();
    assert!(!selects(Some(&bad), &labels), "an uninterpretable selector selects nothing");
    let in_set: LabelSelector = serde_json::from_value(
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}),
    )
    .unwrap();
    assert!(selects(Some(&in_set), &labels));
}

mod gate {
    use super::*;
    use meshmove_model::inventory::{Kind, Unavailable};

    fn crd(group: &str) -> Object {
        obj(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": format!("things.{group}")}, "spec": {"group": group}}))
    }

    fn istiod(revision: Option<&str>, ready: u64) -> Object {
        let name = revision.map_or("istiod".to_string(), |r| format!("istiod-{r}"));
        let mut d = deployment("istio-system", &name);
        d.value["metadata"]["labels"]["app"] = json!("istiod");
        if let Some(r) = revision {
            d.value["metadata"]["labels"]["istio.io/rev"] = json!(r);
        }
        d.value["status"] = json!({"readyReplicas": ready});
        d
    }

    fn tag(tag: &str, revision: &str) -> Object {
        obj(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": format!("istio-revision-tag-{tag}"), "labels": {"istio.io/tag": tag, "istio.io/rev": revision}}}))
    }

    fn ztunnel() -> Object {
        obj(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ztunnel", "namespace": "istio-system", "labels": {"app": "ztunnel"}},
                   "status": {"desiredNumberScheduled": 2, "numberReady": 2}}))
    }

    /// A cluster read of every namespace, with `forbidden` kinds refused.
    fn cluster(mut objects: Vec<Object>, forbidden: &[&'static Kind]) -> Inventory {
        objects.extend([crd("networking.istio.io"), crd("security.istio.io")]);
        let mut listed: BTreeMap<&'static Kind, Option<Unavailable>> = BTreeMap::new();
        for k in GATE_KINDS.iter().chain(GATE_KINDS_WIDE) {
            let refused = forbidden.contains(k).then(|| Unavailable::Forbidden { message: format!("cannot list {}", k.resource()) });
            listed.insert(k, refused);
        }
        let objects = objects.into_iter().filter(|o| !forbidden.iter().any(|k| k.kind == o.kind)).collect();
        Inventory::from_cluster(objects, listed, SourceInfo::Cluster { context: "kind".into(), namespace: None }, "default".into())
    }

    fn codes(g: &Gate) -> Vec<&'static str> {
        g.blockers.iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_ready_default_istiod_lets_sidecar_injection_through() {
        let g = gate(&cluster(vec![istiod(None, 1)], &[]), MeshMode::Sidecar, None);
        assert!(g.passed(), "{g:?}");
        assert!(g.notes.is_empty(), "{g:?}");
    }

    #[test]
    fn no_istiod_or_no_ready_replica_blocks() {
        let g = gate(&cluster(vec![], &[]), MeshMode::Sidecar, None);
        assert_eq!(codes(&g), ["MM1002"]);
        let g = gate(&cluster(vec![istiod(None, 0)], &[]), MeshMode::Sidecar, None);
        assert_eq!(codes(&g), ["MM1003"]);
        let inv = cluster(vec![istiod(None, 1)], &[]);
        let without_crds = Inventory::from_cluster(
            inv.objects().iter().filter(|o| o.kind != "CustomResourceDefinition").cloned().collect(),
            GATE_KINDS.iter().chain(GATE_KINDS_WIDE).map(|k| (*k, None)).collect(),
            SourceInfo::Cluster { context: "kind".into(), namespace: None },
            "default".into(),
        );
        assert_eq!(codes(&gate(&without_crds, MeshMode::Sidecar, None)), ["MM1001"]);
    }

    #[test]
    fn the_injection_label_needs_an_injector_for_its_revision() {
        let only_canary = cluster(vec![istiod(Some("1-24"), 1)], &[]);
        let g = gate(&only_canary, MeshMode::Sidecar, None);
        assert_eq!(codes(&g), ["MM1013"]);
        assert!(g.blockers[0].message.contains("--revision") && g.blockers[0].message.contains("`1-24`"), "{g:?}");
        assert!(gate(&only_canary, MeshMode::Sidecar, Some("1-24")).passed());
        let g = gate(&only_canary, MeshMode::Sidecar, Some("1-25"));
        assert_eq!(codes(&g), ["MM1013"]);
        // A `default` tag pointing at the revision serves istio-injection=enabled; a named tag
        // serves istio.io/rev=<tag>.
        let tagged = cluster(vec![istiod(Some("1-24"), 1), tag("default", "1-24"), tag("stable", "1-24")], &[]);
        assert!(gate(&tagged, MeshMode::Sidecar, None).passed());
        assert!(gate(&tagged, MeshMode::Sidecar, Some("stable")).passed());
        // Ambient mode selects no revision.
        assert_eq!(codes(&gate(&cluster(vec![istiod(Some("1-24"), 1), ztunnel(), cni()], &[]), MeshMode::Ambient, None)), Vec::<&str>::new());
    }

    /// The gate asks meshmove_istio::injection which injector the new labels reach: a tag whose
    /// revision has no istiod reaches none.
    #[test]
    fn a_tag_without_its_revision_serves_nothing() {
        let inv = cluster(vec![istiod(Some("1-24"), 1), tag("old", "1-19"), tag("stable", "1-24")], &[]);
        let g = gate(&inv, MeshMode::Sidecar, Some("old"));
        assert_eq!(codes(&g), ["MM1013"]);
        assert!(g.blockers[0].message.starts_with("revision tag `old` points at revision `1-19`, which no istiod serves"), "{g:?}");
        assert!(gate(&inv, MeshMode::Sidecar, Some("stable")).passed());
        let g = gate(&cluster(vec![istiod(Some("1-24"), 1), tag("default", "1-19")], &[]), MeshMode::Sidecar, None);
        assert!(g.blockers[0].message.contains("the `default` tag points at revision `1-19`"), "{g:?}");
    }

    fn cni() -> Object {
        let mut o = ztunnel();
        o.name = "istio-cni-node".into();
        o.value["metadata"] = json!({"name": "istio-cni-node", "namespace": "istio-system", "labels": {"k8s-app": "istio-cni-node"}});
        o
    }

    #[test]
    fn ambient_needs_ztunnel_and_the_cni_agent() {
        let g = gate(&cluster(vec![istiod(None, 1)], &[]), MeshMode::Ambient, None);
        assert_eq!(codes(&g), ["MM1006", "MM1007"]);
        assert!(gate(&cluster(vec![istiod(None, 1), ztunnel(), cni()], &[]), MeshMode::Ambient, None).passed());
    }

    #[test]
    fn what_cannot_be_read_is_a_note_not_a_blocker() {
        let g = gate(&cluster(vec![istiod(None, 1)], &[&kinds::DEPLOYMENT]), MeshMode::Sidecar, None);
        assert!(g.passed(), "{g:?}");
        assert!(g.notes.iter().any(|n| n.contains("not checked") && n.contains("cannot list deployments")), "{g:?}");
        // Tags live on webhooks: unreadable, a revision without its own istiod is not refused. The
        // control-plane check reads the webhooks, so it is skipped as a whole, which is a note.
        let g = gate(&cluster(vec![istiod(Some("1-24"), 1)], &[&kinds::MUTATING_WEBHOOK]), MeshMode::Sidecar, None);
        assert!(g.passed(), "{g:?}");
        assert!(g.notes.iter().any(|n| n.contains("not checked") && n.contains("cannot list mutatingwebhookconfigurations")), "{g:?}");
    }
}

mod service_ports {
    use super::*;
    use meshmove_istio::protocol::{self, Protocol};
    use meshmove_model::findings::Finding;

    fn service(name: &str, ports: serde_json::Value) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
                   "spec": {"selector": {"app": name}, "ports": ports}}))
    }

    fn findings(objects: Vec<Object>) -> Vec<Finding> {
        let mut out = Vec::new();
        ServicePorts(PrecheckOptions::default()).analyze(&files(objects), &mut out);
        out
    }

    /// Ports over every branch of Istio's selection: appProtocol (known, Kubernetes standard,
    /// unknown, wrong case), names (known, unknown, `h2c`), UDP/SCTP, well-known ports, nothing.
    fn grid() -> Vec<serde_json::Value> {
        let mut ports = Vec::new();
        for app in [None, Some("http"), Some("kubernetes.io/h2c"), Some("kubernetes.io/ws"), Some("kubernetes.io/wss"), Some("kubernetes.io/H2C"), Some("foo"), Some("GRPC")] {
            for name in [None, Some("http-web"), Some("h2c"), Some("h2c-x"), Some("tcp"), Some("udp-x"), Some("web")] {
                for (number, proto) in [(8080, None), (3306, None), (53, Some("UDP")), (9000, Some("SCTP"))] {
                    let mut p = json!({"port": number});
                    if let Some(a) = app {
                        p["appProtocol"] = json!(a);
                    }
                    if let Some(n) = name {
                        p["name"] = json!(n);
                    }
                    if let Some(pr) = proto {
                        p["protocol"] = json!(pr);
                    }
                    ports.push(p);
                }
            }
        }
        ports
    }

    /// MM1030 and MM1031 are exactly the ports Istio does not proxy and the ports it sniffs, as
    /// meshmove-istio's selection (Istio's `ConvertProtocol`) decides, over the whole grid.
    #[test]
    fn mm1030_and_mm1031_follow_istios_protocol_selection() {
        for (i, port) in grid().into_iter().enumerate() {
            let name = format!("s{i}");
            let f = findings(vec![service(&name, json!([port]))]);
            let codes: Vec<&str> = f.iter().map(|f| f.code).collect();
            let selected = protocol::select(&port);
            let want: Vec<&str> = if !selected.protocol.is_proxied() {
                vec!["MM1030"]
            } else if selected.protocol.is_sniffed() {
                vec!["MM1031"]
            } else {
                vec![]
            };
            assert_eq!(codes, want, "{port} selects {selected:?}");
        }
    }

    #[test]
    fn h2c_ws_and_wss_app_protocols_are_not_reported_as_mm1031() {
        let ports = json!([
            {"name": "h2c", "port": 8081, "appProtocol": "kubernetes.io/h2c"},
            {"name": "ws", "port": 8082, "appProtocol": "kubernetes.io/ws"},
            {"name": "wss", "port": 8443, "appProtocol": "kubernetes.io/wss"},
        ]);
        assert_eq!(findings(vec![service("events", ports.clone())]), vec![]);
        let selected: Vec<Protocol> = ports.as_array().unwrap().iter().map(protocol::port_protocol).collect();
        assert_eq!(selected, [Protocol::Http2, Protocol::Http, Protocol::Https]);
    }

    #[test]
    fn unknown_app_protocol_with_an_http_name_is_mm1031_because_istio_does_not_fall_back() {
        let f = findings(vec![service("web", json!([{"name": "http-web", "port": 8080, "appProtocol": "foo"}]))]);
        assert_eq!(f.iter().map(|f| f.code).collect::<Vec<_>>(), ["MM1031"]);
        // The message names the field Istio read and the one it ignored.
        assert!(f[0].message.contains("appProtocol `foo`") && f[0].message.contains("does not fall back to the name's HTTP"), "{}", f[0].message);
    }

    #[test]
    fn h2c_port_name_is_mm1031() {
        // `h2c` is no protocol name Istio knows: only the appProtocol kubernetes.io/h2c is.
        let f = findings(vec![service("rpc", json!([{"name": "h2c-x", "port": 8080}]))]);
        assert_eq!(f.iter().map(|f| f.code).collect::<Vec<_>>(), ["MM1031"]);
        assert!(protocol::select(&json!({"name": "h2c-x", "port": 8080})).protocol.is_sniffed());
    }

    #[test]
    fn mm1032_groups_what_istio_selects_including_app_protocols() {
        let pod = deployment("shop", "api");
        let svc = |name: &str, port: serde_json::Value| {
            obj(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
                       "spec": {"selector": {"app": "api"}, "ports": [port]}}))
        };
        // HTTP2 from appProtocol and gRPC by name: one inbound treatment, no conflict.
        let same = findings(vec![pod.clone(), svc("a", json!({"name": "x", "port": 9090, "appProtocol": "kubernetes.io/h2c"})), svc("b", json!({"name": "grpc", "port": 9090}))]);
        assert!(same.iter().all(|f| f.code != "MM1032"), "{same:?}");
        // An appProtocol that replaces an `http` name with `tcp` conflicts with an HTTP port.
        let conflict = findings(vec![pod, svc("a", json!({"name": "http", "port": 9090, "appProtocol": "tcp"})), svc("b", json!({"name": "http-b", "port": 9090}))]);
        let f: Vec<&Finding> = conflict.iter().filter(|f| f.code == "MM1032").collect();
        assert_eq!(f.len(), 1, "{conflict:?}");
        assert!(f[0].message.contains("TCP by Service/shop/a port 9090 (`http`) (appProtocol `tcp`)"), "{}", f[0].message);
    }
}

mod revisions {
    use super::*;
    use meshmove_model::findings::Finding;

    fn ns(name: &str, labels: serde_json::Value) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}))
    }

    fn istiod(revision: &str) -> Object {
        let mut d = deployment("istio-system", &format!("istiod-{revision}"));
        d.value["metadata"]["labels"] = json!({"app": "istiod", "istio.io/rev": revision});
        d
    }

    fn tag(tag: &str, revision: &str) -> Object {
        obj(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": format!("istio-revision-tag-{tag}"), "labels": {"istio.io/tag": tag, "istio.io/rev": revision}}}))
    }

    fn mm1013(objects: Vec<Object>) -> Vec<(String, String)> {
        let mut out: Vec<Finding> = Vec::new();
        NamespaceLabels(PrecheckOptions::default()).analyze(&files(objects), &mut out);
        out.into_iter().filter(|f| f.code == "MM1013").map(|f| (f.object.map(|o| o.name).unwrap_or_default(), f.message)).collect()
    }

    /// MM1013 is reported exactly when Istio's webhook selection (meshmove_istio::injection)
    /// finds no injector for what the namespace's labels select.
    #[test]
    fn mm1013_follows_which_label_istio_reads() {
        let control_plane = || vec![istiod("1-24"), tag("stable", "1-24"), tag("old", "1-19")];
        let with = |namespaces: Vec<Object>| [control_plane(), namespaces].concat();
        // istio-injection wins: a revision nobody serves next to it is not what pods get (MM1010
        // says so), but `enabled` needs a default revision or tag, and there is none.
        let found = mm1013(with(vec![ns("both", json!({"istio-injection": "enabled", "istio.io/rev": "nope"}))]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("istio-injection=enabled") && !found[0].1.contains("nope"), "{found:?}");
        // Disabled: nothing is selected, nothing to serve.
        assert!(mm1013(with(vec![ns("off", json!({"istio-injection": "disabled", "istio.io/rev": "nope"}))])).is_empty());
        // A tag is served only when its revision is.
        assert!(mm1013(with(vec![ns("shop", json!({"istio.io/rev": "stable"}))])).is_empty());
        let found = mm1013(with(vec![ns("legacy", json!({"istio.io/rev": "old"}))]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("revision tag `old` points at revision `1-19`"), "{found:?}");
        let found = mm1013(with(vec![ns("typo", json!({"istio.io/rev": "1-25"}))]));
        assert!(found[0].1.starts_with("labelled istio.io/rev=1-25, but no istiod revision or tag `1-25` exists"), "{found:?}");
        // A `default` tag serves istio-injection=enabled.
        assert!(mm1013([control_plane(), vec![tag("default", "1-24"), ns("on", json!({"istio-injection": "enabled"}))]].concat()).is_empty());
    }
}

mod injector_policy {
    use super::*;
    use meshmove_istio::{Injection, Pod, Served};
    use meshmove_model::findings::Finding;

    fn job(labels: serde_json::Value, annotations: serde_json::Value) -> Object {
        obj(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "shop"},
                   "spec": {"template": {"metadata": {"labels": labels, "annotations": annotations},
                                         "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m"}]}}}}))
    }

    /// MM1024 (a Job whose pods would get a sidecar) follows the injector's own reading of the
    /// opt-out label and annotation, as meshmove_istio::injection decides it.
    #[test]
    fn mm1024_follows_the_injectors_opt_out_rule() {
        let cases = [
            (json!({}), json!({})),
            (json!({"sidecar.istio.io/inject": "false"}), json!({})),
            (json!({"sidecar.istio.io/inject": "no"}), json!({})),
            (json!({}), json!({"sidecar.istio.io/inject": "FALSE"})),
            (json!({"sidecar.istio.io/inject": "true"}), json!({"sidecar.istio.io/inject": "false"})),
            (json!({}), json!({"sidecar.istio.io/inject": "true"})),
        ];
        for (labels, annotations) in cases {
            let mut out: Vec<Finding> = Vec::new();
            JobCompletion(PrecheckOptions::default()).analyze(&files(vec![job(labels.clone(), annotations.clone())]), &mut out);
            let reported = out.iter().any(|f| f.code == "MM1024");
            let string_map = |v: &serde_json::Value| v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
            let pod = Pod {
                namespace: "shop".into(),
                namespace_labels: [("istio-injection".to_string(), "enabled".to_string())].into(),
                labels: string_map(&labels),
                annotations: string_map(&annotations),
                host_network: false,
            };
            let served = Served { revisions: ["default".to_string()].into(), default_revision: Some("default".into()), ..Served::default() };
            let injected = matches!(meshmove_istio::injection(&pod, &served), Injection::Injected { .. });
            assert_eq!(reported, injected, "labels {labels}, annotations {annotations}: {out:?}");
        }
    }
}
