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
use super::config::{self, BundleTarget, ControllerConfig, InjectorConfig, MeshConfig, ServerConfig};
use super::selector::{LabelSelector, Labels, NamespacePattern};
use super::template::TemplateData;
use super::{CSI_DRIVER_NAME, SpireOptions};
use meshmove_model::inventory::{Inventory, Kind, Object, Unavailable, kinds};
use meshmove_model::workload::{self, Workload, string_map};

/// How a meshed pod reaches the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    Sidecar,
    Ambient,
}

/// A pod that needs a SPIFFE identity: a live Pod, or a workload's pod template offline.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The top-level workload it belongs to (the Deployment of a Pod), or itself.
    pub workload: &'a Object,
    /// The object holding the pod: the Pod, or the workload whose template it is.
    pub object: &'a Object,
    /// The pod (or template): `metadata` and `spec`.
    pub pod: &'a Value,
    pub namespace: String,
    /// The pod's labels, with those its injection templates add (see [`Subject::injected_labels`]).
    pub labels: Labels,
    /// The pod's annotations, with those its injection templates add.
    pub annotations: Labels,
    pub service_account: String,
    /// A real Pod rather than a template.
    pub live: bool,
    pub dataplane: Dataplane,
    /// The injection templates the sidecar injector applies: `inject.istio.io/templates`, or the
    /// injector's `defaultTemplates` (sidecar subjects only; empty otherwise).
    pub templates: Vec<String>,
    /// Labels the injection templates add that the pod template does not carry itself: injection
    /// is predicted for pod templates that are not injected yet, so that ClusterSPIFFEIDs see the
    /// labels the pods will have.
    pub injected_labels: Labels,
}

impl Subject<'_> {
    /// Whether the pod already has its sidecar (injected, or declared by hand as gateways do).
    pub fn has_proxy(&self) -> bool {
        containers(self.pod).any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
    }

    /// Injection templates requested by `inject.istio.io/templates`.
    pub fn requested_templates(&self) -> Option<Vec<String>> {
        let a = self.annotations.get("inject.istio.io/templates")?;
        Some(a.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
    }

    /// Whether the injector applies Istio's `spire` template to the pod (asked for by annotation,
    /// or one of the injector's default templates).
    pub fn opts_into_spire_template(&self) -> bool {
        self.templates.iter().any(|t| t == "spire")
    }

    /// Whether the pod itself mounts a `csi.spiffe.io` volume at `socket_path` (into istio-proxy
    /// once it has one, into any container before injection).
    pub fn mounts_socket(&self, socket_path: &str) -> bool {
        let Some(spec) = self.pod.get("spec") else { return false };
        let volumes: Vec<&str> = spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.pointer("/csi/driver").and_then(Value::as_str) == Some(CSI_DRIVER_NAME))
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect();
        let proxy_only = self.has_proxy();
        containers(self.pod)
            .filter(|c| !proxy_only || c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
            .flat_map(|c| c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten())
            .any(|m| {
                m.get("name").and_then(Value::as_str).is_some_and(|n| volumes.contains(&n))
                    && m.get("mountPath").and_then(Value::as_str).map(|p| p.trim_end_matches('/'))
                        == Some(socket_path.trim_end_matches('/'))
            })
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["/spec/containers", "/spec/initContainers"]
        .into_iter()
        .flat_map(move |p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten())
}

/// A ClusterSPIFFEID as the controller manager reads it.
#[derive(Debug, Clone)]
pub struct SpiffeIdSpec<'a> {
    pub object: &'a Object,
    pub template: String,
    pub pod_selector: LabelSelector,
    pub namespace_selector: LabelSelector,
    pub class_name: Option<String>,
    pub fallback: bool,
    pub federates_with: Vec<String>,
    pub ttl: Option<Duration>,
    /// Why the controller manager would reject it (empty when valid).
    pub invalid: Vec<String>,
    /// Whether the controller manager reconciles it (its className).
    pub served: bool,
}

impl SpiffeIdSpec<'_> {
    fn selects(&self, ns_labels: &Labels, pod_labels: &Labels) -> bool {
        self.namespace_selector.matches(ns_labels) && self.pod_selector.matches(pod_labels)
    }

    fn usable(&self) -> bool {
        self.served && self.invalid.is_empty()
    }
}

/// Which ClusterSPIFFEIDs register a subject.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The `ignoreNamespaces` pattern that keeps the controller manager away from its namespace.
    pub ignored_by: Option<String>,
    /// Indexes into [`SpireContext::ids`] of the ClusterSPIFFEIDs that produce its entries
    /// (fallback ones only when no other applies).
    pub ids: Vec<usize>,
    /// ClusterSPIFFEIDs that select it but are invalid or not served.
    pub unusable: Vec<usize>,
}

/// The SPIRE server configuration, if one was found.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per run
pub enum ServerConfigState<'a> {
    NotFound,
    Found { object: &'a Object, parsed: Result<ServerConfig, String> },
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
pub type Parsed<'a, T> = (&'a Object, Result<T, String>);

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
        let mut subjects: Vec<Subject<'a>> = find_subjects(inventory, &namespaces)
            .into_iter()
            .filter(|s| options.workload_namespace.as_deref().is_none_or(|ns| s.namespace == ns))
            .collect();
        for s in &mut subjects {
            predict_injection(s, &injectors, &namespaces);
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
    pub fn unread(&self, kinds: &[&Kind]) -> Option<String> {
        kinds
            .iter()
            .find_map(|k| self.inventory.availability(k).filter(Unavailable::is_read_failure).map(|why| why.describe(k)))
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
        predict_injection(&mut s, &self.injectors, &self.namespaces);
        Some(s)
    }

    /// The sidecar injector that serves a subject (see [`injector_for`]).
    pub fn injector_for(&self, s: &Subject<'_>) -> Option<&Parsed<'a, InjectorConfig>> {
        injector_for(s, &self.injectors, &self.namespaces)
    }

    /// Whether the ClusterSPIFFEID kind can be relied on, or why not.
    pub fn ids_availability(&self) -> Option<Unavailable> {
        self.inventory.availability(&kinds::CLUSTER_SPIFFE_ID)
    }

    /// Whether the inventory can show which pods need identities, or why not.
    pub fn subjects_available(&self) -> Result<(), String> {
        if self.live() {
            return match self.inventory.availability(&kinds::POD) {
                None => Ok(()),
                Some(why) if why.is_read_failure() => Err(why.describe(&kinds::POD)),
                Some(_) => Err("Pods are not listed".into()),
            };
        }
        if workload::WORKLOAD_KINDS.iter().any(|k| self.inventory.has(k)) {
            Ok(())
        } else {
            Err("no workloads in the input".into())
        }
    }
}

/// String values of a ConfigMap's `data`.
fn data(cm: &Object) -> impl Iterator<Item = (&str, &str)> {
    cm.value
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
}

fn data_key<'o>(cm: &'o Object, key: &str) -> Option<&'o str> {
    cm.value.get("data")?.get(key)?.as_str()
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

struct Component {
    /// Container and image name, and the `app` label of Istio's sample.
    name: &'static str,
    /// `app.kubernetes.io/name` in the hardened charts.
    chart_name: &'static str,
}

/// The last path segment of an image reference, without tag or digest.
fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

fn find_components<'a>(
    inventory: &'a Inventory,
    kinds: &[&kinds::Kind],
    selector: Option<&super::selector::LabelQuery>,
    c: &Component,
) -> Vec<&'a Object> {
    kinds
        .iter()
        .flat_map(|k| inventory.of(k))
        .filter(|o| {
            let Some(w) = Workload::of(o) else { return false };
            let mut labels: Labels = o.labels().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.extend(w.pod_labels());
            if let Some(sel) = selector {
                return sel.matches(&labels);
            }
            let images: Vec<(&str, &str)> = containers(w.template)
                .map(|ct| {
                    (
                        ct.get("name").and_then(Value::as_str).unwrap_or(""),
                        image_name(ct.get("image").and_then(Value::as_str).unwrap_or("")),
                    )
                })
                .collect();
            let has_container = images.iter().any(|(n, i)| *n == c.name || *i == c.name);
            let spiffe_image = images.iter().any(|(_, i)| i.contains("spire") || i.contains("spiffe"));
            has_container
                || labels.get("app").map(String::as_str) == Some(c.name)
                || (labels.get("app.kubernetes.io/name").map(String::as_str) == Some(c.chart_name) && spiffe_image)
        })
        .collect()
}

fn find_server_config<'a>(
    inventory: &'a Inventory,
    servers: &[&'a Object],
    namespace: Option<&str>,
) -> ServerConfigState<'a> {
    let candidates: Vec<&Object> =
        inventory.of(&kinds::CONFIG_MAP).filter(|cm| data_key(cm, "server.conf").is_some()).collect();
    let mounted = |cm: &&Object| {
        servers.iter().any(|s| {
            s.namespace == cm.namespace
                && Workload::of(s).is_some_and(|w| {
                    w.template
                        .pointer("/spec/volumes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|v| v.pointer("/configMap/name").and_then(Value::as_str) == Some(cm.name.as_str()))
                })
        })
    };
    let in_server_ns = |cm: &&Object| servers.iter().any(|s| s.namespace == cm.namespace);
    let in_option_ns = |cm: &&Object| namespace.is_some() && cm.namespace.as_deref() == namespace;
    let chosen = candidates
        .iter()
        .find(|cm| mounted(cm))
        .or_else(|| candidates.iter().find(|cm| in_server_ns(cm)))
        .or_else(|| candidates.iter().find(|cm| in_option_ns(cm)))
        .or_else(|| if servers.is_empty() && namespace.is_none() { candidates.first() } else { None });
    match chosen {
        Some(cm) => ServerConfigState::Found {
            object: cm,
            parsed: config::parse_server_conf(data_key(cm, "server.conf").unwrap_or("")),
        },
        None => ServerConfigState::NotFound,
    }
}

fn find_bundle<'a>(
    inventory: &'a Inventory,
    options: &'a SpireOptions,
    servers: &[&'a Object],
    server_config: &ServerConfigState<'a>,
) -> BundleState<'a> {
    if let Some(b) = &options.trust_bundle {
        return BundleState::Given(b);
    }
    let targets = match server_config {
        ServerConfigState::Found { parsed: Ok(c), .. } => c.bundle_targets.clone(),
        _ => Vec::new(),
    };
    // One lookup per ConfigMap: (namespace, name) → the targets writing into it.
    let mut places: Vec<(Option<String>, String, Vec<BundleTarget>)> = Vec::new();
    for t in targets {
        match places.iter_mut().find(|(ns, name, _)| ns.as_deref() == Some(&t.namespace) && *name == t.config_map) {
            Some((_, _, ts)) => ts.push(t),
            None => places.push((Some(t.namespace.clone()), t.config_map.clone(), vec![t])),
        }
    }
    if places.is_empty() {
        // The name both the k8sbundle notifier and the official chart use.
        places.push((None, "spire-bundle".to_string(), Vec::new()));
    }
    let sources = places
        .into_iter()
        .map(|(ns, name, targets)| {
            let mut candidates: Vec<&Object> = inventory
                .of(&kinds::CONFIG_MAP)
                .filter(|cm| cm.name == name && ns.as_ref().is_none_or(|ns| cm.namespace.as_ref() == Some(ns)))
                .collect();
            // Prefer the server's namespace when the configuration did not say.
            candidates.sort_by_key(|cm| !servers.iter().any(|s| s.namespace == cm.namespace));
            let place = ns.map_or_else(|| format!("ConfigMap {name}"), |ns| format!("ConfigMap {ns}/{name}"));
            let Some(cm) = candidates.first().copied() else {
                return BundleSource { targets, place, object: None, read: Vec::new(), empty: Vec::new() };
            };
            let filled = |key: &str| data_key(cm, key).filter(|t| !t.trim().is_empty());
            let mut keys: Vec<String> = targets.iter().map(|t| t.key.clone()).collect();
            keys.extend(USUAL_BUNDLE_KEYS.iter().map(|k| k.to_string()));
            keys.sort();
            keys.dedup();
            let read = keys
                .iter()
                .filter_map(|key| {
                    let text = filled(key)?;
                    let parsed = TrustBundle::parse(key.clone(), text.as_bytes()).map(|mut b| {
                        b.source = format!("{} key {key}", cm.object_ref());
                        b
                    });
                    Some((key.clone(), parsed))
                })
                .collect();
            let empty = targets.iter().filter(|t| filled(&t.key).is_none()).map(|t| (t.key.clone(), t.clone())).collect();
            BundleSource { targets, place, object: Some(cm), read, empty }
        })
        .collect();
    BundleState::Sources(sources)
}

fn parse_spiffe_id<'a>(o: &'a Object, controller: Option<&ControllerConfig>) -> SpiffeIdSpec<'a> {
    let spec = o.value.get("spec").unwrap_or(&Value::Null);
    let mut invalid = Vec::new();
    let template = spec.get("spiffeIDTemplate").and_then(Value::as_str).unwrap_or("").to_string();
    if template.is_empty() {
        invalid.push("spec.spiffeIDTemplate is empty".to_string());
    }
    let mut selector = |field: &str| {
        LabelSelector::from_json(spec.get(field)).unwrap_or_else(|e| {
            invalid.push(format!("spec.{field}: {e}"));
            LabelSelector::default()
        })
    };
    let pod_selector = selector("podSelector");
    let namespace_selector = selector("namespaceSelector");
    let federates_with: Vec<String> = spec
        .get("federatesWith")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for td in &federates_with {
        if let Err(e) = super::template::validate_trust_domain(td) {
            invalid.push(format!("spec.federatesWith `{td}`: {e}"));
        }
    }
    let ttl = match spec.get("ttl").and_then(Value::as_str) {
        // metav1.Duration: Go's time.ParseDuration, every number with a unit.
        Some(t) => match meshmove_model::duration::parse(t, meshmove_model::duration::Mode::Units) {
            Ok(d) => Some(d),
            Err(e) => {
                invalid.push(format!("spec.ttl: {e}"));
                None
            }
        },
        None => None,
    };
    let class_name = spec.get("className").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    SpiffeIdSpec {
        object: o,
        template,
        pod_selector,
        namespace_selector,
        served: controller.is_none_or(|c| c.serves_class(class_name.as_deref())),
        class_name,
        fallback: spec.get("fallback").and_then(Value::as_bool).unwrap_or(false),
        federates_with,
        ttl,
        invalid,
    }
}

/// How a pod reaches the mesh, if it is meshed.
fn dataplane(ns: &Labels, labels: &Labels, annotations: &Labels, pod: &Value) -> Option<Dataplane> {
    if containers(pod).any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy")) {
        return Some(Dataplane::Sidecar);
    }
    let inject = labels
        .get("sidecar.istio.io/inject")
        .or_else(|| annotations.get("sidecar.istio.io/inject"))
        .map(String::as_str);
    let ns_injection = ns.get("istio-injection").map(String::as_str);
    let wants_sidecar = inject == Some("true")
        || ns_injection == Some("enabled")
        || (ns_injection.is_none() && (ns.contains_key("istio.io/rev") || labels.contains_key("istio.io/rev")));
    if inject != Some("false") && ns_injection != Some("disabled") && wants_sidecar {
        return Some(Dataplane::Sidecar);
    }
    let pod_mode = labels.get("istio.io/dataplane-mode").map(String::as_str);
    if pod_mode == Some("ambient")
        || (pod_mode != Some("none") && ns.get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient"))
    {
        return Some(Dataplane::Ambient);
    }
    None
}

/// The injector of a subject's revision: `istio-sidecar-injector-<rev>` for the `istio.io/rev`
/// label of the pod or its namespace, `istio-sidecar-injector` otherwise; the only one when
/// there is one.
pub fn injector_for<'c, 'a>(
    s: &Subject<'_>,
    injectors: &'c [Parsed<'a, InjectorConfig>],
    namespaces: &BTreeMap<String, Labels>,
) -> Option<&'c Parsed<'a, InjectorConfig>> {
    let rev = s
        .labels
        .get("istio.io/rev")
        .or_else(|| namespaces.get(&s.namespace).and_then(|l| l.get("istio.io/rev")))
        .filter(|r| r.as_str() != "default");
    let name = rev.map_or_else(|| "istio-sidecar-injector".to_string(), |r| format!("istio-sidecar-injector-{r}"));
    injectors.iter().find(|(o, _)| o.name == name).or_else(|| if injectors.len() == 1 { injectors.first() } else { None })
}

/// Apply what the sidecar injector will add to a pod template that is not injected yet: the
/// templates it applies (`inject.istio.io/templates`, else the injector's `defaultTemplates`,
/// else `sidecar`), and the labels and annotations those templates add. Istio merges each
/// template over the pod in order, so a template's value wins over the pod's own.
fn predict_injection(s: &mut Subject<'_>, injectors: &[Parsed<'_, InjectorConfig>], namespaces: &BTreeMap<String, Labels>) {
    if s.dataplane != Dataplane::Sidecar {
        return;
    }
    let injector = injector_for(s, injectors, namespaces).and_then(|(_, c)| c.as_ref().ok());
    s.templates = s.requested_templates().unwrap_or_else(|| {
        injector.map_or_else(|| vec!["sidecar".to_string()], |c| c.default_templates.clone())
    });
    // A live pod was injected (or not) when it was created; its metadata is what it is.
    if s.live || s.has_proxy() {
        return;
    }
    let Some(injector) = injector else { return };
    for name in &s.templates {
        let Some(text) = injector.templates.get(name) else { continue };
        let added = config::template_metadata(text);
        for (k, v) in added.labels {
            if s.labels.get(&k) != Some(&v) {
                s.injected_labels.insert(k.clone(), v.clone());
            }
            s.labels.insert(k, v);
        }
        s.annotations.extend(added.annotations);
    }
}

fn find_subjects<'a>(inventory: &'a Inventory, namespaces: &BTreeMap<String, Labels>) -> Vec<Subject<'a>> {
    let units: Vec<(&'a Object, &'a Object, &'a Value, bool)> = if inventory.is_live() {
        inventory
            .of(&kinds::POD)
            .filter(|p| {
                !matches!(p.value.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
            })
            .map(|p| (workload::pod_owner(inventory, p).unwrap_or(p), p, &p.value, true))
            .collect()
    } else {
        workload::workloads(inventory)
            .into_iter()
            .map(|w| (w.object, w.object, w.template, w.kind() == "Pod"))
            .collect()
    };
    units
        .into_iter()
        .filter_map(|(top, object, pod, live)| subject_of(inventory, namespaces, top, object, pod, live))
        .collect()
}

/// The subject a pod (or pod template) is, if it is meshed.
fn subject_of<'a>(
    inventory: &'a Inventory,
    namespaces: &BTreeMap<String, Labels>,
    top: &'a Object,
    object: &'a Object,
    pod: &'a Value,
    live: bool,
) -> Option<Subject<'a>> {
    let empty = Labels::new();
    let namespace = object.namespace.clone().unwrap_or_else(|| inventory.default_namespace.clone());
    let labels = string_map(pod.pointer("/metadata/labels"));
    let annotations = string_map(pod.pointer("/metadata/annotations"));
    let mode = dataplane(namespaces.get(&namespace).unwrap_or(&empty), &labels, &annotations, pod)?;
    let service_account = ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| pod.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or("default")
        .to_string();
    Some(Subject {
        workload: top,
        object,
        pod,
        namespace,
        labels,
        annotations,
        service_account,
        live,
        dataplane: mode,
        templates: Vec::new(),
        injected_labels: Labels::new(),
    })
}

fn register(s: &Subject<'_>, ids: &[SpiffeIdSpec<'_>], ns_labels: Labels, ignore: &[NamespacePattern]) -> Registration {
    if let Some(p) = ignore.iter().find(|p| p.matches(&s.namespace) == Some(true)) {
        return Registration { ignored_by: Some(p.source.clone()), ..Registration::default() };
    }
    let selecting: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].selects(&ns_labels, &s.labels)).collect();
    let (usable, unusable): (Vec<usize>, Vec<usize>) = selecting.into_iter().partition(|&i| ids[i].usable());
    let primary: Vec<usize> = usable.iter().copied().filter(|&i| !ids[i].fallback).collect();
    let chosen = if primary.is_empty() { usable } else { primary };
    Registration { ignored_by: None, ids: chosen, unusable }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(image_name("ghcr.io/spiffe/spire-server:1.9.6"), "spire-server");
        assert_eq!(image_name("spire-agent@sha256:abc"), "spire-agent");
        assert_eq!(image_name("localhost:5000/spire-server"), "spire-server");
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn meshed_pods_are_recognised() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "app"}]}});
        let none = Labels::new();
        assert_eq!(dataplane(&l(&[("istio-injection", "enabled")]), &none, &none, &pod), Some(Dataplane::Sidecar));
        assert_eq!(dataplane(&l(&[("istio.io/rev", "1-22")]), &none, &none, &pod), Some(Dataplane::Sidecar));
        assert_eq!(
            dataplane(&l(&[("istio-injection", "enabled")]), &l(&[("sidecar.istio.io/inject", "false")]), &none, &pod),
            None
        );
        assert_eq!(dataplane(&none, &l(&[("sidecar.istio.io/inject", "true")]), &none, &pod), Some(Dataplane::Sidecar));
        assert_eq!(
            dataplane(&l(&[("istio-injection", "disabled")]), &l(&[("sidecar.istio.io/inject", "true")]), &none, &pod),
            None
        );
        assert_eq!(
            dataplane(&l(&[("istio.io/dataplane-mode", "ambient")]), &none, &none, &pod),
            Some(Dataplane::Ambient)
        );
        assert_eq!(
            dataplane(
                &l(&[("istio.io/dataplane-mode", "ambient")]),
                &l(&[("istio.io/dataplane-mode", "none")]),
                &none,
                &pod
            ),
            None
        );
        let injected = serde_json::json!({"spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}});
        assert_eq!(dataplane(&none, &none, &none, &injected), Some(Dataplane::Sidecar));
        assert_eq!(dataplane(&none, &none, &none, &pod), None);
    }
}
