//! `spire-check`: is SPIRE giving every meshed workload the identity Istio expects?
//!
//! The migration plans deploy SPIRE next to Istio and then verify it with shell scripts that grep
//! `kubectl get` and `spire-server entry show` output. Those scripts check that things *exist*; the
//! failures people actually hit are relational: an agent missing on one node, a ClusterSPIFFEID
//! whose selector misses a namespace, a template that renders the pod name instead of the service
//! account, a trust domain that differs between `server.conf` and Istio's mesh config, a trust
//! bundle whose CA is about to rotate out, a pod that asks for the `spire` injection template but
//! has no registration entry and hangs unready. This module answers those questions from one
//! [`Inventory`] (a live cluster or manifests), reporting like `linkerd check`: categories of
//! checks, each ok / warning / error / skipped, with a stable code (see [`catalog`]) and a hint.
//! The report is the findings [`Report`] every plugin gives, made of checks
//! ([`meshmove_model::findings::check`]).
//!
//! The pieces: [`context`] discovers the SPIRE server, agents, CSI driver, configurations, trust
//! bundle, ClusterSPIFFEIDs and meshed pods once; [`checks`] holds the categories, each check a pure
//! function of that context; [`deep`] asks the SPIRE server itself, through commands run in its
//! pod by an [`deep::Exec`] (`--exec`); [`template`], [`config`], [`bundle`] and [`selector`]
//! reproduce the rules of Go templates, SPIRE and Istio configuration (server.conf's bundle
//! publishers, the injector's templates), trust bundles in all of SPIRE's forms, and Kubernetes
//! selectors and placement that the checks rely on.

pub mod bundle;
pub mod catalog;
pub mod checks;
pub mod config;
pub mod context;
pub mod deep;
pub mod selector;
pub mod template;

use std::time::SystemTime;

pub use bundle::{BundleError, TrustBundle};
pub use catalog::CATALOG;
pub use checks::identities::{IdentityRow, IdentityStatus};
pub use context::SpireContext;
pub use selector::LabelQuery;

use meshmove_model::findings::Report;
use meshmove_model::inventory::{Inventory, Kind, kinds};

/// The CSI driver name of the SPIFFE CSI driver.
pub const CSI_DRIVER_NAME: &str = "csi.spiffe.io";

/// Where Istio's SPIRE integration mounts the Workload API socket into istio-proxy.
pub const DEFAULT_SOCKET_PATH: &str = "/run/secrets/workload-spiffe-uds";

/// The kinds `spire-check` reads; a cluster loader should list all of them.
pub static KINDS: &[&Kind] = &[
    &kinds::NAMESPACE,
    &kinds::NODE,
    &kinds::POD,
    &kinds::CONFIG_MAP,
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::CSI_DRIVER,
    &kinds::CLUSTER_SPIFFE_ID,
    &kinds::CLUSTER_FEDERATED_TRUST_DOMAIN,
];

/// What to look for and when "now" is.
#[derive(Debug, Clone)]
pub struct SpireOptions {
    /// Selects the SPIRE server StatefulSet/Deployment instead of the built-in discovery.
    pub server_selector: Option<LabelQuery>,
    /// Selects the SPIRE agent DaemonSet instead of the built-in discovery.
    pub agent_selector: Option<LabelQuery>,
    /// Selects the SPIFFE CSI driver DaemonSet instead of the built-in discovery.
    pub csi_selector: Option<LabelQuery>,
    /// The namespace of the SPIRE server. Agents and the CSI driver are looked up in every
    /// namespace, since the hardened charts put them in another one than the server.
    pub namespace: Option<String>,
    /// Only meshed workloads in this namespace are checked (registration, identities, Istio
    /// integration); SPIRE's own components are found in every namespace regardless.
    pub workload_namespace: Option<String>,
    /// A namespace whose Deployments, StatefulSets and DaemonSets are about to be restarted
    /// (`kubectl mesh-migrate enable --spire`): on a live cluster their pods are then checked as
    /// the restart will make them, from the workloads' pod templates with the injection predicted,
    /// not as they run now. Other pods of the namespace (Jobs', bare pods) stay as they are.
    pub restarting_namespace: Option<String>,
    /// A trust bundle to check instead of the `spire-bundle` ConfigMap (`--bundle FILE`).
    pub trust_bundle: Option<TrustBundle>,
    /// The Workload API socket directory inside istio-proxy.
    pub socket_path: String,
    /// The clock for certificate checks.
    pub now: SystemTime,
}

impl Default for SpireOptions {
    fn default() -> Self {
        SpireOptions {
            server_selector: None,
            agent_selector: None,
            csi_selector: None,
            namespace: None,
            workload_namespace: None,
            restarting_namespace: None,
            trust_bundle: None,
            socket_path: DEFAULT_SOCKET_PATH.to_string(),
            now: SystemTime::now(),
        }
    }
}

/// The ConfigMaps spire-check reads that no loaded workload mounts, as `(namespace, name)`, not
/// yet in `inventory`. A live load GETs the ConfigMaps workloads mount (SPIRE's server.conf,
/// agent.conf and controller configuration, the bundle agents mount, istiod's mesh and injector
/// configuration) and then these, so spire-check needs `get` on ConfigMaps and never lists them:
///
/// * the ConfigMaps server.conf publishes the trust bundle into (the `k8sbundle` notifier's
///   `namespace`/`config_map`, the `k8s_configmap` BundlePublisher's clusters);
/// * the names SPIRE's official charts and Istio's SPIRE sample give its ConfigMaps
///   (`spire-server`, `spire-agent`, `spire-bundle` — also the notifier's default —,
///   `spire-controller-manager`, `spire-controller-manager-config`;
///   <https://github.com/spiffe/helm-charts-hardened/tree/main/charts/spire/charts>,
///   <https://github.com/istio/istio/tree/master/samples/security/spire>) in the namespaces of the
///   SPIRE workloads found, of `--spire-namespace`, or, when none is found, the charts' and the
///   sample's namespaces (`spire-server`, `spire-system`, `spire`): a server that is missing or
///   not running still leaves its configuration to check;
/// * Istio's `istio` mesh config and `istio-sidecar-injector` ConfigMaps (and their `-<revision>`
///   forms for the revisions namespaces and pods name with `istio.io/rev`) in istiod's namespace,
///   or `istio-system` when no istiod workload is in the inventory (an external control plane
///   still leaves them there). Istio names them so in its charts
///   (<https://github.com/istio/istio/tree/master/manifests/charts/istio-control/istio-discovery/templates>).
pub fn config_maps_to_read(inventory: &Inventory, options: &SpireOptions) -> Vec<(String, String)> {
    use std::collections::BTreeSet;
    let cx = SpireContext::new(inventory, options);
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    let targets = match &cx.server_config {
        context::ServerConfigState::Found { parsed: Ok(c), .. } => c.bundle_targets.clone(),
        _ => Vec::new(),
    };
    wanted.extend(targets.into_iter().map(|t| (t.namespace, t.config_map)));
    let mut spire_namespaces: BTreeSet<String> =
        cx.servers.iter().chain(&cx.agents).chain(&cx.csi_drivers).filter_map(|o| o.namespace.clone()).collect();
    spire_namespaces.extend(options.namespace.clone());
    if spire_namespaces.is_empty() {
        spire_namespaces.extend(["spire-server", "spire-system", "spire"].map(String::from));
    }
    for ns in &spire_namespaces {
        for name in ["spire-server", "spire-agent", "spire-bundle", "spire-controller-manager", "spire-controller-manager-config"] {
            wanted.insert((ns.clone(), name.to_string()));
        }
    }
    let istiod_namespaces: BTreeSet<String> = [&kinds::DEPLOYMENT, &kinds::POD]
        .into_iter()
        .flat_map(|k| inventory.of(k))
        .filter(|o| o.name == "istiod" || o.name.starts_with("istiod-") || o.labels().any(|(k, v)| k == "app" && v == "istiod"))
        .filter_map(|o| o.namespace.clone())
        .collect();
    let istio_namespaces = if istiod_namespaces.is_empty() { BTreeSet::from(["istio-system".to_string()]) } else { istiod_namespaces };
    let revisions: BTreeSet<String> = [&kinds::NAMESPACE, &kinds::POD]
        .into_iter()
        .flat_map(|k| inventory.of(k))
        .flat_map(|o| o.labels().filter(|(k, _)| *k == "istio.io/rev").map(|(_, v)| v.to_string()).collect::<Vec<_>>())
        .filter(|rev| !rev.is_empty() && rev != "default")
        .collect();
    for ns in &istio_namespaces {
        for base in ["istio", "istio-sidecar-injector"] {
            wanted.insert((ns.clone(), base.to_string()));
            for rev in &revisions {
                wanted.insert((ns.clone(), format!("{base}-{rev}")));
            }
        }
    }
    wanted.retain(|(ns, name)| inventory.get(&kinds::CONFIG_MAP, Some(ns), name).is_none());
    wanted.into_iter().collect()
}

/// Run every built-in check; then [`Report::finish`] with the `--suppress` list.
pub fn check(inventory: &Inventory, options: &SpireOptions) -> Report {
    let cx = SpireContext::new(inventory, options);
    built_in(&cx)
}

/// [`check`], then the deep checks over commands run in the SPIRE server's pod by `exec`
/// (`--exec`, live clusters only).
pub async fn check_with_exec(inventory: &Inventory, options: &SpireOptions, exec: &impl deep::Exec) -> Report {
    let cx = SpireContext::new(inventory, options);
    let mut report = built_in(&cx);
    let gathered = deep::gather(exec, &cx).await;
    report.run_checks(&[deep::category()], &deep::DeepInput { cx: &cx, gathered }, &catalog::docs_url);
    report
}

fn built_in(cx: &SpireContext<'_>) -> Report {
    let mut report = Report::new(CATALOG.tool, "check", cx.inventory.source.clone());
    report.run_checks(&checks::categories(), cx, &catalog::docs_url);
    report
}

/// The rows of `spire-check identities`: every meshed workload, the ClusterSPIFFEID that names it,
/// the ID it renders and the ID Istio expects.
pub fn identities(inventory: &Inventory, options: &SpireOptions) -> Vec<IdentityRow> {
    checks::identities::rows(&SpireContext::new(inventory, options))
}
