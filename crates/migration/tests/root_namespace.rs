//! The mesh root namespace read from a cluster: the API double serves Istio's mesh config
//! ConfigMap (`istio` in `istio-system`, key `mesh`) naming a root namespace other than the
//! default, and the PeerAuthentications of the mesh are judged with it; a mesh config that cannot
//! be read leaves the root namespace unknown, and `enable` writes no PeerAuthentication.

use std::time::Duration;

use apiserver_double::{Double, DoubleHandle, DoubleOptions, FaultRule, crds};
use meshmove_istio::Mode;
use meshmove_kube::cluster::{ClusterOptions, Connection, load};
use meshmove_migration::inplace::enable::{self, Permissive};
use meshmove_migration::inplace::peer_auth;
use meshmove_model::inventory::{Inventory, kinds};
use serde_json::json;

async fn double(root: Option<&str>) -> DoubleHandle {
    let d = Double::start(DoubleOptions::default()).await.unwrap();
    d.install_crds(crds::istio()).unwrap();
    for ns in ["istio-system", "mesh-admin", "shop"] {
        d.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).unwrap();
    }
    if let Some(root) = root {
        // As Istio's istio-discovery chart renders it.
        d.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system", "labels": {"istio.io/rev": "default"}},
            "data": {"mesh": format!("defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\nrootNamespace: {root}\ntrustDomain: cluster.local\n"),
                     "meshNetworks": "networks: {}"}}))
        .unwrap();
    }
    for (ns, mode) in [("mesh-admin", "STRICT"), ("istio-system", "DISABLE")] {
        d.create(json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": ns},
            "spec": {"mtls": {"mode": mode}}}))
        .unwrap();
    }
    d.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "api", "ports": [{"containerPort": 8080}]}]}}}}))
    .unwrap();
    d
}

async fn connect(d: &DoubleHandle, dir: &tempfile::TempDir) -> Connection {
    let kubeconfig = d.write_kubeconfig(dir.path(), "shop").unwrap();
    ClusterOptions { kubeconfig: Some(kubeconfig), request_timeout: Some(Duration::from_secs(2)), ..ClusterOptions::default() }.connect().await.unwrap()
}

/// What the live commands do: the PeerAuthentications of every namespace, the root namespace from
/// the mesh config read with one GET.
async fn live(conn: &Connection) -> (Inventory, Result<peer_auth::RootNamespace, peer_auth::PeerAuthError>) {
    let kinds = [&kinds::NAMESPACE, &kinds::DEPLOYMENT, &kinds::PEER_AUTHENTICATION];
    let inventory = load(conn, &kinds, &kinds, Some("shop")).await.unwrap();
    let root = match peer_auth::read_mesh_config(conn, peer_auth::ISTIO_NAMESPACE).await {
        Ok(objects) => peer_auth::root_namespace(&Inventory::from_files(objects, vec![], "shop".into()), None),
        Err(e) => Err(e),
    };
    (inventory, root)
}

fn api_mode(inventory: &Inventory, root: Result<peer_auth::RootNamespace, peer_auth::PeerAuthError>) -> Mode {
    let set = peer_auth::policies_in(inventory, root).unwrap();
    set.effective("shop", &[("app".to_string(), "api".to_string())].into(), 8080).mode
}

#[tokio::test]
async fn the_mesh_config_served_by_the_cluster_names_the_root_namespace() {
    let d = double(Some("mesh-admin")).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    d.clear_requests();
    let (inventory, root) = live(&conn).await;
    let root = root.unwrap();
    assert_eq!((root.name.as_str(), root.source.as_str()), ("mesh-admin", "ConfigMap istio-system/istio"));
    // One GET of that ConfigMap, no list of ConfigMaps.
    let reads: Vec<String> = d.requests().iter().filter(|r| r.path.contains("configmaps")).map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(reads, ["GET /api/v1/namespaces/istio-system/configmaps/istio"]);
    // The mesh-wide policy is mesh-admin's STRICT; istio-system's DISABLE is that namespace's own.
    assert_eq!(api_mode(&inventory, Ok(root.clone())), Mode::Strict);
    let Permissive::Skip { reason } = enable::permissive(&inventory, "shop", peer_auth::policies_in(&inventory, Ok(root))) else { panic!("written") };
    assert!(reason.contains("mesh-wide PeerAuthentication mesh-admin/default"), "{reason}");
}

#[tokio::test]
async fn without_a_mesh_config_the_default_applies_and_an_unreadable_one_leaves_it_unknown() {
    let d = double(None).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&d, &dir).await;
    let (inventory, root) = live(&conn).await;
    let root = root.unwrap();
    assert_eq!(root.name, "istio-system");
    assert_eq!(api_mode(&inventory, Ok(root)), Mode::Disable, "istio-system's policy is mesh-wide by default");
    // Forbidden: unknown, with the flag that replaces it; enable then writes nothing.
    d.add_fault(FaultRule::on("GET", "^/api/v1/namespaces/istio-system/configmaps/istio$").status(403, "configmaps \"istio\" is forbidden")).unwrap();
    let (inventory, root) = live(&conn).await;
    let e = root.clone().unwrap_err();
    assert!(matches!(&e, peer_auth::PeerAuthError::MeshConfigUnreadable { namespace, name, .. } if namespace == "istio-system" && name == "istio"), "{e:?}");
    let e = e.to_string();
    assert!(e.starts_with("could not read the mesh config, ConfigMap istio-system/istio (403: configmaps \"istio\" is forbidden)"), "{e}");
    assert!(e.ends_with("pass --mesh-root-namespace"), "{e}");
    let Permissive::Skip { reason } = enable::permissive(&inventory, "shop", peer_auth::policies_in(&inventory, root)) else { panic!("written") };
    assert!(reason.contains("--mesh-root-namespace"), "{reason}");
}
