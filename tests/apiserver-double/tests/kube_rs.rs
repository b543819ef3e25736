//! kube-rs (the plugins' client) against the double through a kubeconfig.

use apiserver_double::{Double, DoubleHandle, DoubleOptions, FaultRule, crds};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::{Client, Config};
use serde_json::json;
use std::time::{Duration, Instant};

async fn client_for(double: &DoubleHandle, dir: &tempfile::TempDir, ns: &str) -> Client {
    let path = double.write_kubeconfig(dir.path(), ns).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_sees_builtins_and_crd_kinds() {
    let double = Double::start(DoubleOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_for(&double, &dir, "default").await;
    let d = Discovery::new(client.clone()).run().await.unwrap();
    assert!(d.has_group("apps") && d.has_group("apiextensions.k8s.io"));
    assert!(!d.has_group("networking.istio.io"), "Istio absent");
    double.install_crds(crds::istio()).unwrap();
    let d = Discovery::new(client.clone()).run().await.unwrap();
    let istio = d
        .get("networking.istio.io")
        .expect("Istio present after its CRDs");
    assert_eq!(istio.preferred_version_or_latest(), "v1");
    let kinds: Vec<String> = istio
        .recommended_resources()
        .iter()
        .map(|(r, _)| r.kind.clone())
        .collect();
    assert!(kinds.contains(&"VirtualService".to_string()), "{kinds:?}");
    let agg = Discovery::new(client).run_aggregated().await.unwrap();
    assert!(agg.has_group("security.istio.io"));
}

#[tokio::test]
async fn paginated_list_of_ten_thousand_pods() {
    let double = Double::start(DoubleOptions {
        simulate_controllers: false,
        ..DoubleOptions::default()
    })
    .await
    .unwrap();
    let pods: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{i:05}"), "namespace": "default", "labels": {"app": format!("app-{}", i % 10)}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0", "ports": [{"containerPort": 8080}]}], "nodeName": "node-1"},
                "status": {"phase": "Running", "podIP": "10.0.0.1"}})
        })
        .collect();
    double.load_values(pods).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_for(&double, &dir, "default").await;
    let api: Api<Pod> = Api::all(client);
    double.clear_requests();
    let start = Instant::now();
    let mut token: Option<String> = None;
    let mut total = 0;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        total += page.items.len();
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(9_500));
        }
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    let elapsed = start.elapsed();
    assert_eq!((total, pages), (10_000, 20));
    let lists = double.requests_matching("GET", "^/api/v1/pods$");
    assert_eq!(lists.len(), 20, "exactly one request per page");
    println!("kube-rs: 10,000 pods in 20 pages of 500 listed and decoded in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(20),
        "listing took {elapsed:?}"
    );
}

#[tokio::test]
async fn writes_conflicts_and_errors() {
    let double = Double::start(DoubleOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_for(&double, &dir, "default").await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let e = api_err(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    let mut stale = created.clone();
    stale.metadata.resource_version = Some("1".into());
    let e = api_err(
        cms.replace("cfg", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let e = api_err(
        missing
            .create(&PostParams::default(), &cm)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let manifest = |replicas: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})
    };
    let d = deploys
        .patch(
            "web",
            &PatchParams::apply("meshmove"),
            &Patch::Apply(manifest(2)),
        )
        .await
        .unwrap();
    assert!(
        d.status.is_none(),
        "the response is the object as written, before the controller's status update"
    );
    assert_eq!(
        deploys
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .ready_replicas,
        Some(2)
    );
    let e = api_err(
        deploys
            .patch(
                "web",
                &PatchParams::apply("helm"),
                &Patch::Apply(manifest(3)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert!(
        e.message.contains("conflict with \"meshmove\""),
        "{}",
        e.message
    );
    let forced = deploys
        .patch(
            "web",
            &PatchParams::apply("helm").force(),
            &Patch::Apply(manifest(3)),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.replicas, Some(3));
    let dry = deploys
        .patch(
            "web",
            &PatchParams {
                dry_run: true,
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(dry.spec.replicas, Some(7));
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(3));

    double
        .add_fault(
            FaultRule::on("DELETE", "/configmaps/cfg$")
                .status(500, "disk on fire")
                .times(1),
        )
        .unwrap();
    let e = api_err(
        cms.delete("cfg", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (500, "InternalError", "disk on fire")
    );
    // kube-rs retries 503 (and 429/504) by itself: one injected 503 is invisible to the caller.
    double.clear_requests();
    double
        .add_fault(
            FaultRule::on("DELETE", "/configmaps/cfg$")
                .status(503, "try later")
                .times(1),
        )
        .unwrap();
    cms.delete("cfg", &DeleteParams::default()).await.unwrap();
    let statuses: Vec<u16> = double
        .requests_matching("DELETE", "/configmaps/cfg$")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![503, 200]);
    let e = api_err(cms.get("cfg").await.unwrap_err());
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn watch_streams_changes() {
    let double = Double::start(DoubleOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_for(&double, &dir, "default").await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let first = cms.list(&ListParams::default()).await.unwrap();
    let rv = first.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(
            &WatchParams::default().labels("watched=yes").timeout(10),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    for (name, label) in [("ignored", "no"), ("seen", "yes")] {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"watched": label}}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    cms.patch(
        "seen",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watched": "no"}}})),
    )
    .await
    .unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(c) => events.push(format!("added {}", c.metadata.name.unwrap())),
            WatchEvent::Modified(c) => {
                events.push(format!("modified {}", c.metadata.name.unwrap()))
            }
            WatchEvent::Deleted(c) => events.push(format!("deleted {}", c.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        events,
        vec!["added seen", "deleted seen"],
        "selector transitions become ADDED/DELETED"
    );
    let mut initial = cms
        .watch(&WatchParams::streaming_lists().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), initial.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(c) => names.push(c.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, vec!["ignored", "seen"]);
}
