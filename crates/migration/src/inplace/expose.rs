//! `expose`: one multi-host Ingress for the HTTP Services of a namespace, so every service is
//! reachable as `<service>.<domain>` without port-forwarding.
//!
//! The hosts-file lines are returned for the user to add; the tool never edits `/etc/hosts`.
//! The address in them is the ingress controller's load-balancer address when the inventory
//! shows one (a `LoadBalancer` Service with an ingress IP in one of the usual controller
//! namespaces), else `127.0.0.1` (a local cluster with a port mapping).
//!
//! Hygiene with the Ingresses already there (of the class the new one gets):
//! * The class is `--ingress-class`, else the cluster's default IngressClass, the one annotated
//!   `ingressclass.kubernetes.io/is-default-class: "true"`
//!   (<https://kubernetes.io/docs/concepts/services-networking/ingress/#default-ingress-class>).
//!   No default (an Ingress without a class is ignored by ingress-nginx, silently) or several
//!   defaults (the API server then refuses Ingresses without a class) is refused: name one.
//! * A host and path another Ingress of that class already serves is refused, naming it
//!   (ingress-nginx's admission webhook rejects such duplicates); `merge` leaves those pairs to
//!   the Ingress serving them and routes the rest.
//! * The controller annotations (keys whose prefix names an ingress, e.g.
//!   `nginx.ingress.kubernetes.io/proxy-body-size`) of Ingresses serving the same hosts are
//!   carried over, and reported; two of them disagreeing on one key is refused.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use super::Route;
use super::{MigrateError, STEP_EXPOSE, service_routes};
use meshmove_model::inventory::kinds::Kind;
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_kube::plan::{Change, MANAGED_BY, Plan};

/// `IngressClass` (networking.k8s.io/v1, cluster-scoped), read for the cluster's default class.
pub static INGRESS_CLASS: Kind =
    Kind { group: "networking.k8s.io", version: "v1", kind: "IngressClass", plural: "ingressclasses", namespaced: false, custom: false };

/// The annotation marking the cluster's default IngressClass (value `"true"`), as the Kubernetes
/// Ingress docs define it: <https://kubernetes.io/docs/concepts/services-networking/ingress/#default-ingress-class>.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// The annotation older Ingresses name their class with (before `spec.ingressClassName`).
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Name of the Ingress `expose` creates.
pub const INGRESS_NAME: &str = "mesh-migrate-expose";

/// Options of `expose`.
#[derive(Debug, Clone)]
pub struct ExposeOptions {
    /// Hosts are `<service>.<domain>`; default `<namespace>.local`.
    pub domain: Option<String>,
    /// `spec.ingressClassName`; `None`: the cluster's default IngressClass (refused when none).
    pub ingress_class: Option<String>,
    /// Per-service host overrides (`frontend` → `pyairtable.local`).
    pub hosts: BTreeMap<String, String>,
    /// Leave host+path pairs another Ingress of the class serves to it (else: refused).
    pub merge: bool,
}

/// Where the Ingress's class came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassSource {
    /// `--ingress-class`.
    Flag,
    /// The cluster's default IngressClass.
    Default,
}

/// A host and path another Ingress serves already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub host: String,
    pub path: String,
    /// `namespace/name` of the Ingress serving it.
    pub ingress: String,
}

/// An annotation carried over from an Ingress serving the same host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub key: String,
    pub value: String,
    /// `namespace/name` of the Ingress it came from.
    pub from: String,
}

/// The plan and what it gives the user.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub plan: Plan,
    pub routes: Vec<Route>,
    /// Services left out, with the reason.
    pub skipped: Vec<String>,
    /// The address for the hosts file.
    pub address: String,
    /// The IngressClass the Ingress names, and where it came from.
    pub class: String,
    pub class_source: ClassSource,
    /// Annotations carried over from Ingresses serving the same hosts.
    pub carried: Vec<Carried>,
    /// Pairs left to the Ingress serving them (`merge`).
    pub left: Vec<Served>,
    /// Warnings (a named class that does not exist).
    pub notes: Vec<String>,
}

impl Exposure {
    /// `ADDRESS host host ...` lines, at most 8 hosts each (some resolvers read no more).
    pub fn hosts_lines(&self) -> Vec<String> {
        self.routes.chunks(8).map(|c| format!("{} {}", self.address, c.iter().map(|r| r.host.as_str()).collect::<Vec<_>>().join(" "))).collect()
    }
}

/// Build the `expose` plan for `namespace`.
pub fn plan(inventory: &Inventory, namespace: &str, options: &ExposeOptions) -> Result<Exposure, MigrateError> {
    let (routes, skipped) = service_routes(inventory, namespace, options.domain.as_deref(), &options.hosts)?;
    if routes.is_empty() {
        return Err(MigrateError::NoServices { namespace: namespace.to_string(), skipped });
    }
    let (class, class_source, mut notes) = ingress_class(inventory, options.ingress_class.as_deref())?;
    let defaults = default_classes(inventory);
    let default = if defaults.len() == 1 { defaults.first().cloned() } else { None };
    // Ingresses of the same class, but the tool's own.
    let others: Vec<_> = inventory
        .of(&kinds::INGRESS)
        .filter(|i| !(i.namespace.as_deref() == Some(namespace) && i.name == INGRESS_NAME))
        .filter(|i| effective_class(&i.value, default.as_deref()).as_deref() == Some(class.as_str()))
        .collect();
    let id = |i: &meshmove_model::inventory::Object| format!("{}/{}", i.namespace.as_deref().unwrap_or_default(), i.name);
    let mut served = Vec::new();
    for r in &routes {
        for i in &others {
            for (host, path) in host_paths(&i.value) {
                if host == r.host && path == "/" {
                    served.push(Served { host: r.host.clone(), path, ingress: id(i) });
                }
            }
        }
    }
    if !served.is_empty() && !options.merge {
        let pairs: Vec<String> = served.iter().map(|s| format!("host {} path {} is served by Ingress {}", s.host, s.path, s.ingress)).collect();
        return Err(MigrateError::BadOption {
            what: "expose".into(),
            message: format!(
                "{} (class {class}): ingress-nginx's admission webhook rejects a second Ingress for the same host and path; \
                 serve that Service on another host (--host SERVICE=HOST), remove the other Ingress, or pass --merge-existing \
                 to leave those pairs to it",
                pairs.join("; ")
            ),
        });
    }
    let mine: Vec<&Route> = routes.iter().filter(|r| !served.iter().any(|s| s.host == r.host)).collect();
    if mine.is_empty() {
        return Err(MigrateError::BadOption {
            what: "expose".into(),
            message: format!("every host is served by another Ingress already ({}): nothing to expose", served.iter().map(|s| s.ingress.as_str()).collect::<Vec<_>>().join(", ")),
        });
    }
    // Controller annotations of the Ingresses serving the same hosts.
    let mut carried: Vec<Carried> = Vec::new();
    for i in &others {
        if !host_paths(&i.value).iter().any(|(h, _)| mine.iter().any(|r| r.host == *h)) {
            continue;
        }
        let Some(annotations) = i.value.pointer("/metadata/annotations").and_then(Value::as_object) else { continue };
        for (key, value) in annotations {
            let Some(value) = value.as_str() else { continue };
            if !controller_annotation(key) {
                continue;
            }
            match carried.iter().find(|c| c.key == *key) {
                Some(c) if c.value != value => {
                    return Err(MigrateError::BadOption {
                        what: "expose".into(),
                        message: format!(
                            "Ingresses {} and {} serve hosts of this namespace with different {key} ({:?} and {value:?}); one Ingress cannot carry both: \
                             align them, or serve those Services on other hosts (--host SERVICE=HOST)",
                            c.from, id(i), c.value
                        ),
                    });
                }
                Some(_) => {}
                None => carried.push(Carried { key: key.clone(), value: value.to_string(), from: id(i) }),
            }
        }
    }
    let rules: Vec<Value> = mine
        .iter()
        .map(|r| {
            json!({"host": r.host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": r.service, "port": {"number": r.port}}}}]}})
        })
        .collect();
    let mut ingress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": INGRESS_NAME, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {"ingressClassName": class, "rules": rules}
    });
    if !carried.is_empty() {
        ingress["metadata"]["annotations"] = carried.iter().map(|c| (c.key.clone(), json!(c.value))).collect::<serde_json::Map<_, _>>().into();
    }
    if class_source == ClassSource::Flag && !inventory.of(&INGRESS_CLASS).any(|c| c.name == class) && inventory.of(&INGRESS_CLASS).next().is_some() {
        notes.push(format!("no IngressClass {class} exists (the cluster has {}): no controller may serve this Ingress", class_names(inventory).join(", ")));
    }
    let mut plan = Plan::new(STEP_EXPOSE, namespace);
    plan.push(Change::Apply { object: ingress });
    Ok(Exposure { plan, routes, skipped, address: ingress_address(inventory), class, class_source, carried, left: served, notes })
}

fn class_names(inventory: &Inventory) -> Vec<String> {
    let mut names: Vec<String> = inventory.of(&INGRESS_CLASS).map(|c| c.name.clone()).collect();
    names.sort();
    names
}

/// The IngressClasses annotated as the cluster's default.
fn default_classes(inventory: &Inventory) -> Vec<String> {
    inventory
        .of(&INGRESS_CLASS)
        .filter(|c| c.value.pointer(&format!("/metadata/annotations/{}", meshmove_kube::plan::pointer_escape(DEFAULT_CLASS_ANNOTATION))).and_then(Value::as_str) == Some("true"))
        .map(|c| c.name.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The class of the new Ingress: the flag's, else the single default IngressClass.
fn ingress_class(inventory: &Inventory, flag: Option<&str>) -> Result<(String, ClassSource, Vec<String>), MigrateError> {
    if let Some(c) = flag {
        return Ok((c.to_string(), ClassSource::Flag, Vec::new()));
    }
    let defaults = default_classes(inventory);
    let have = class_names(inventory);
    let listed = if have.is_empty() { "none exists".to_string() } else { format!("the cluster has {}", have.join(", ")) };
    match defaults.as_slice() {
        [one] => Ok((one.clone(), ClassSource::Default, Vec::new())),
        [] => Err(MigrateError::BadOption {
            what: "--ingress-class".into(),
            message: format!(
                "no IngressClass is the cluster's default (annotation {DEFAULT_CLASS_ANNOTATION}: \"true\"; {listed}), and an Ingress \
                 without a class is ignored by ingress-nginx: name the class with --ingress-class"
            ),
        }),
        several => Err(MigrateError::BadOption {
            what: "--ingress-class".into(),
            message: format!(
                "{} IngressClasses are marked default ({}): the API server refuses an Ingress without a class then; name one with --ingress-class",
                several.len(),
                several.join(", ")
            ),
        }),
    }
}

/// An Ingress's class: `spec.ingressClassName`, else the legacy annotation, else the default.
fn effective_class(ingress: &Value, default: Option<&str>) -> Option<String> {
    ingress
        .pointer("/spec/ingressClassName")
        .or_else(|| ingress.pointer(&format!("/metadata/annotations/{}", meshmove_kube::plan::pointer_escape(LEGACY_CLASS_ANNOTATION))))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| default.map(str::to_string))
}

/// The (host, path) pairs of an Ingress's rules (a path left out is `/`).
fn host_paths(ingress: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in ingress.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten() {
        let host = rule.get("host").and_then(Value::as_str).unwrap_or_default().to_string();
        for p in rule.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten() {
            out.push((host.clone(), p.get("path").and_then(Value::as_str).unwrap_or("/").to_string()));
        }
    }
    out
}

/// Whether an annotation configures the ingress controller (its prefix names an ingress, e.g.
/// `nginx.ingress.kubernetes.io/...`, `alb.ingress.kubernetes.io/...`), the legacy class aside.
fn controller_annotation(key: &str) -> bool {
    key != LEGACY_CLASS_ANNOTATION && key.split_once('/').is_some_and(|(prefix, _)| prefix.contains("ingress"))
}

/// The ingress controller's external address, else `127.0.0.1`.
fn ingress_address(inventory: &Inventory) -> String {
    const CONTROLLERS: &[&str] = &["ingress-nginx", "istio-ingress", "istio-system", "traefik", "kube-system"];
    inventory
        .of(&kinds::SERVICE)
        .filter(|s| s.namespace.as_deref().is_some_and(|n| CONTROLLERS.contains(&n)))
        .filter(|s| s.value.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer"))
        .find_map(|s| {
            let ing = s.value.pointer("/status/loadBalancer/ingress/0")?;
            ing.get("ip").or_else(|| ing.get("hostname")).and_then(Value::as_str).map(str::to_string)
        })
        .unwrap_or_else(|| "127.0.0.1".to_string())
}
