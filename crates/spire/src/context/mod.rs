//! Everything the checks look at, found once in the inventory and then only read.
//!
//! Discovery is the fiddly part of checking SPIRE: the server may be a StatefulSet of the hardened
//! charts, Istio's sample or a hand-made Deployment; its configuration is a ConfigMap it mounts;
//! the bundle lands wherever the notifier is told to put it; Istio's configuration sits in
//! revisioned ConfigMaps; and "the workloads that need an identity" are Pods on a live cluster but
//! pod templates in manifests. A pod template is taken as the sidecar injector will make it: the
//! labels and annotations its injection templates add are applied before any ClusterSPIFFEID is
//! matched (Istio's SPIRE guide selects by a label its `spire` template adds). [`SpireContext::new`] resolves all of it into plain fields, so every
//! check is a pure function of the context and checks cannot depend on each other's order.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::bundle::{BundleError, TrustBundle, unix_seconds};
use super::config::{self, BundleTarget, ConfigError, ControllerConfig, InjectorConfig, MeshConfig, ServerConfig};
use super::selector::{LabelSelector, Labels, NamespacePattern};
use super::template::TemplateData;
use super::{CSI_DRIVER_NAME, SpireOptions};
use meshmove_model::inventory::{Inventory, Kind, Object, Unavailable, kinds};
use meshmove_model::findings::CategoryUnavailable;
use meshmove_model::workload::{self, Workload, string_map};

mod discovery;
mod subjects;

pub(crate) use discovery::image_name;
use discovery::{Component, data, data_key, find_bundle, find_components, find_server_config};
pub use subjects::{Dataplane, Registration, SpiffeIdSpec, Subject, injector_for};
use subjects::{find_subjects, parse_spiffe_id, predict_injection, register, subject_of};

/// The SPIRE server configuration, if one was found.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per run
pub enum ServerConfigState<'a> {
    NotFound,
    Found { object: &'a Object, parsed: Result<ServerConfig, ConfigError> },
}

/// One ConfigMap the trust bundle was looked for in, and what it held.
#[derive(Debug, Clone)]
pub struct BundleSource<'a> {
    /// The server.conf plugins that write into it; empty when server.conf names none (or is not
    /// available) and the usual place, `spire-bundle`, was looked up.
    pub targets: Vec<BundleTarget>,
    /// `ConfigMap spire-system/spire-bundle`, or `ConfigMap spire-bundle` in no namespace in particular.
    pub place: String,
    pub object: Option<&'a Object>,
    /// Every key holding a bundle (the targets' keys and the usual names), each read.
    pub read: Vec<(String, Result<TrustBundle, BundleError>)>,
    /// Keys a target writes that are absent or empty, with the target.
    pub empty: Vec<(String, BundleTarget)>,
}

/// Where the trust bundle comes from.
#[derive(Debug, Clone)]
pub enum BundleState<'a> {
    /// `SpireOptions::trust_bundle` (a `--bundle` file).
    Given(&'a TrustBundle),
    /// The ConfigMaps server.conf publishes into (or `spire-bundle`), found or not.
    Sources(Vec<BundleSource<'a>>),
}

/// Keys the bundle is found under when no plugin configuration names one: the k8sbundle
/// notifier's default (`bundle.crt`) and the official chart's BundlePublisher keys
/// (`bundle.<format>`: `bundle.spiffe` by default, `bundle.pem`, `bundle.jwks`).
pub const USUAL_BUNDLE_KEYS: &[&str] = &["bundle.crt", "bundle.jwks", "bundle.pem", "bundle.spiffe"];

impl BundleState<'_> {
    /// Every readable bundle: the ConfigMap (none for a `--bundle` file), its key, the bundle.
    pub fn bundles(&self) -> Vec<(Option<&Object>, &str, &TrustBundle)> {
        match self {
            BundleState::Given(b) => vec![(None, "", *b)],
            BundleState::Sources(sources) => sources
                .iter()
                .flat_map(|s| s.read.iter().filter_map(move |(k, r)| Some((s.object, k.as_str(), r.as_ref().ok()?))))
                .collect(),
        }
    }

    /// Whether a bundle or a bundle ConfigMap was found at all.
    pub fn seen(&self) -> bool {
        match self {
            BundleState::Given(_) => true,
            BundleState::Sources(sources) => sources.iter().any(|s| s.object.is_some()),
        }
    }
}

/// A configuration document and what reading it gave.
pub type Parsed<'a, T> = (&'a Object, Result<T, ConfigError>);

/// The inputs of every check.
pub struct SpireContext<'a> {
    pub inventory: &'a Inventory,
    pub options: &'a SpireOptions,
    /// `options.now` in Unix seconds.
    pub now: i64,
    pub servers: Vec<&'a Object>,
    pub agents: Vec<&'a Object>,
    pub csi_drivers: Vec<&'a Object>,
    pub server_config: ServerConfigState<'a>,
    /// The controller manager configuration, when a ConfigMap holds one.
    pub controller: Option<Parsed<'a, ControllerConfig>>,
    /// Istio mesh configs (one per revision).
    pub meshes: Vec<Parsed<'a, MeshConfig>>,
    /// Sidecar injector configs (one per revision).
    pub injectors: Vec<Parsed<'a, InjectorConfig>>,
    pub bundle: BundleState<'a>,
    pub ids: Vec<SpiffeIdSpec<'a>>,
    pub subjects: Vec<Subject<'a>>,
    /// Parallel to `subjects`.
    pub registrations: Vec<Registration>,
    /// Namespace labels, including `kubernetes.io/metadata.name`.
    pub namespaces: BTreeMap<String, Labels>,
}

/// Placeholders for pod data a template cannot have (a template has no UID, no node).
pub const OFFLINE_UID: &str = "00000000-0000-0000-0000-000000000000";
pub const OFFLINE_NODE: &str = "unknown-node";
pub const OFFLINE_CLUSTER: &str = "unknown-cluster";

impl<'a> SpireContext<'a> {
    pub fn new(inventory: &'a Inventory, options: &'a SpireOptions) -> Self {
        let namespaces = namespace_labels(inventory);
        let servers = find_components(
            inventory,
            &[&kinds::STATEFUL_SET, &kinds::DEPLOYMENT],
            options.server_selector.as_ref(),
            &Component { name: "spire-server", chart_name: "server" },
        )
        .into_iter()
        .filter(|o| options.namespace.as_deref().is_none_or(|ns| o.namespace.as_deref() == Some(ns)))
        .collect::<Vec<_>>();
        let agents = find_components(
            inventory,
            &[&kinds::DAEMON_SET],
            options.agent_selector.as_ref(),
            &Component { name: "spire-agent", chart_name: "agent" },
        );
        let csi_drivers = find_components(
            inventory,
            &[&kinds::DAEMON_SET],
            options.csi_selector.as_ref(),
            &Component { name: "spiffe-csi-driver", chart_name: "spiffe-csi-driver" },
        );
        let server_config = find_server_config(inventory, &servers, options.namespace.as_deref());
        let controller = inventory
            .of(&kinds::CONFIG_MAP)
            .find_map(|cm| data(cm).find_map(|(_, text)| config::parse_controller_config(text)).map(|r| (cm, r)));
        let meshes = inventory
            .of(&kinds::CONFIG_MAP)
            .filter(|cm| cm.name == "istio" || cm.name.starts_with("istio-"))
            .filter_map(|cm| Some((cm, config::parse_mesh_config(data_key(cm, "mesh")?))))
            .collect();
        let injectors = inventory
            .of(&kinds::CONFIG_MAP)
            .filter(|cm| cm.name == "istio-sidecar-injector" || cm.name.starts_with("istio-sidecar-injector-"))
            .filter_map(|cm| Some((cm, config::parse_injector_config(data_key(cm, "config")?))))
            .collect::<Vec<_>>();
        let bundle = find_bundle(inventory, options, &servers, &server_config);
        let controller_cfg = match &controller {
            Some((_, Ok(c))) => Some(c),
            _ => None,
        };
        let ids =
            inventory.of(&kinds::CLUSTER_SPIFFE_ID).map(|o| parse_spiffe_id(o, controller_cfg)).collect::<Vec<_>>();
        let mut subjects: Vec<Subject<'a>> = find_subjects(inventory, &namespaces, options.restarting_namespace.as_deref())
            .into_iter()
            .filter(|s| options.workload_namespace.as_deref().is_none_or(|ns| s.namespace == ns))
            .collect();
        for s in &mut subjects {
            predict_injection(s, &injectors);
        }
        let default_controller = ControllerConfig::default();
        let ignore: Vec<NamespacePattern> = controller_cfg
            .unwrap_or(&default_controller)
            .ignore_namespaces
            .iter()
            .map(|p| NamespacePattern::new(p))
            .collect();
        let registrations = subjects
            .iter()
            .map(|s| register(s, &ids, namespaces.get(&s.namespace).cloned().unwrap_or_default(), &ignore))
            .collect();
        SpireContext {
            inventory,
            options,
            now: unix_seconds(options.now),
            servers,
            agents,
            csi_drivers,
            server_config,
            controller,
            meshes,
            injectors,
            bundle,
            ids,
            subjects,
            registrations,
            namespaces,
        }
    }

    pub fn live(&self) -> bool {
        self.inventory.is_live()
    }

    /// Why the cluster did not let the checks read `kinds` (the first refused or not found), if
    /// it did not. A live check must not read "none listed" as "none exist" for such a kind: it is
    /// skipped, and the `inputs` category reports the failed read.
    pub fn unread(&self, kinds: &[&'static Kind]) -> Option<CategoryUnavailable> {
        kinds.iter().find_map(|&kind| {
            self.inventory.availability(kind).filter(Unavailable::is_read_failure).map(|why| CategoryUnavailable::Unread { kind, why })
        })
    }

    /// The parsed server configuration, if it was found and is readable.
    pub fn server(&self) -> Option<&ServerConfig> {
        match &self.server_config {
            ServerConfigState::Found { parsed: Ok(c), .. } => Some(c),
            _ => None,
        }
    }

    /// The trust domain `{{ .TrustDomain }}` renders to, and where it was read.
    pub fn trust_domain(&self) -> (String, &'static str) {
        if let Some((_, Ok(ControllerConfig { trust_domain: Some(td), .. }))) = &self.controller {
            return (td.clone(), "controller manager config");
        }
        if let Some(td) = self.server().and_then(|s| s.trust_domain.clone()) {
            return (td, "server.conf");
        }
        if let Some(m) = self.meshes.iter().find_map(|(_, m)| m.as_ref().ok().filter(|m| m.trust_domain_set)) {
            return (m.trust_domain.clone(), "Istio meshConfig.trustDomain");
        }
        (config::ISTIO_DEFAULT_TRUST_DOMAIN.to_string(), "Istio's default")
    }

    /// The usable controller manager configuration (defaults when none was found).
    pub fn controller_config(&self) -> Option<&ControllerConfig> {
        match &self.controller {
            Some((_, Ok(c))) => Some(c),
            _ => None,
        }
    }

    /// Template data for a subject.
    pub fn template_data(&self, s: &Subject<'_>) -> TemplateData {
        let ctrl = self.controller_config();
        let mut meta = s.pod.get("metadata").cloned().unwrap_or_else(|| Value::Object(Default::default()));
        let mut spec = s.pod.get("spec").cloned().unwrap_or_else(|| Value::Object(Default::default()));
        if let Value::Object(m) = &mut meta {
            m.insert("namespace".into(), Value::String(s.namespace.clone()));
            if !s.live {
                m.entry("name").or_insert_with(|| Value::String(s.workload.name.clone()));
                m.insert("uid".into(), Value::String(OFFLINE_UID.into()));
            }
        }
        if let Value::Object(m) = &mut spec {
            m.insert("serviceAccountName".into(), Value::String(s.service_account.clone()));
            if !s.live {
                m.insert("nodeName".into(), Value::String(OFFLINE_NODE.into()));
            }
        }
        let node_name = spec.get("nodeName").and_then(Value::as_str).unwrap_or(OFFLINE_NODE).to_string();
        let node = self.inventory.get(&kinds::NODE, None, &node_name);
        TemplateData {
            trust_domain: self.trust_domain().0,
            cluster_name: ctrl.and_then(|c| c.cluster_name.clone()).unwrap_or_else(|| OFFLINE_CLUSTER.into()),
            cluster_domain: ctrl.and_then(|c| c.cluster_domain.clone()).unwrap_or_else(|| "cluster.local".into()),
            pod_meta: meta,
            pod_spec: spec,
            node_meta: node
                .and_then(|n| n.value.get("metadata").cloned())
                .unwrap_or_else(|| serde_json::json!({ "name": node_name })),
            node_spec: node.and_then(|n| n.value.get("spec").cloned()).unwrap_or(Value::Null),
        }
    }

    /// A workload's pod template as the subject it will be once injected (on a live cluster too,
    /// where the subjects are the pods), or `None` when it is not meshed.
    pub fn template_subject(&self, workload: &Workload<'a>) -> Option<Subject<'a>> {
        let mut s = subject_of(self.inventory, &self.namespaces, workload.object, workload.object, workload.template, false)?;
        predict_injection(&mut s, &self.injectors);
        Some(s)
    }

    /// The sidecar injector that serves a subject (see [`injector_for`]).
    pub fn injector_for(&self, s: &Subject<'_>) -> Option<&Parsed<'a, InjectorConfig>> {
        injector_for(s, &self.injectors)
    }

    /// Whether the ClusterSPIFFEID kind can be relied on, or why not.
    pub fn ids_availability(&self) -> Option<Unavailable> {
        self.inventory.availability(&kinds::CLUSTER_SPIFFE_ID)
    }

    /// Whether the inventory can show which pods need identities, or why not.
    pub fn subjects_available(&self) -> Result<(), CategoryUnavailable> {
        if self.live() {
            return match self.inventory.availability(&kinds::POD) {
                None => Ok(()),
                Some(why) if why.is_read_failure() => Err(CategoryUnavailable::Unread { kind: &kinds::POD, why }),
                Some(_) => Err(CategoryUnavailable::NotListed { kind: &kinds::POD }),
            };
        }
        if workload::WORKLOAD_KINDS.iter().any(|k| self.inventory.has(k)) {
            Ok(())
        } else {
            Err(CategoryUnavailable::NotInInput("no workloads in the input"))
        }
    }
}

fn namespace_labels(inventory: &Inventory) -> BTreeMap<String, Labels> {
    let mut out: BTreeMap<String, Labels> = BTreeMap::new();
    for ns in inventory.of(&kinds::NAMESPACE) {
        let mut labels = string_map(ns.value.pointer("/metadata/labels"));
        labels.insert("kubernetes.io/metadata.name".into(), ns.name.clone());
        out.insert(ns.name.clone(), labels);
    }
    for o in inventory.objects() {
        if let Some(ns) = &o.namespace {
            out.entry(ns.clone()).or_insert_with(|| [("kubernetes.io/metadata.name".to_string(), ns.clone())].into());
        }
    }
    out
}
