//! `enable --authz`: L4 Istio AuthorizationPolicies for the namespace's workloads, from the
//! clients the input shows.
//!
//! The policies are the NetworkPolicy generator's ([`meshmove_isolation::policies::authorization_policies`]:
//! the same client discovery, the same rules as its ambient companions, one `ALLOW` policy per
//! receiving workload with `from.source.principals` of its clients' service accounts and
//! `to.operation.ports`), proven on the engine against the namespace *as `enable` leaves it*:
//! labelled for the mode, the pods it restarts carrying the sidecar, the `PERMISSIVE`
//! PeerAuthentication it writes in place, and the mesh's PeerAuthentications and
//! AuthorizationPolicies as they are. A principal is read from the client's mTLS certificate
//! (<https://istio.io/latest/docs/reference/config/security/authorization-policy/#Source>), so a
//! client that has none there (outside the mesh, or a port whose effective mode is `DISABLE`)
//! is refused by such a policy: the proof sees that and withholds the policy.
//!
//! What the generator cannot see it does not admit, so its reasons for withholding apply:
//! a workload whose callers the namespace does not show (a Service nobody names) gets no policy
//! unless named with `--authz-isolate-anyway`. Callers in other namespaces that name a Service
//! of the namespace (`api.shop`, `api.shop.svc.cluster.local`, in env, the ConfigMaps and
//! Secrets they read, or their commands) are seen when their workloads are read
//! ([`Elsewhere::Read`]): they are clients like the namespace's own, admitted by principal and
//! proven the same way. When they cannot be read ([`Elsewhere::Unreadable`]), a policy for a
//! workload that a Service selects could refuse such a caller unseen: it is withheld with the
//! reason, unless named with `--authz-isolate-anyway`.

use std::collections::{BTreeMap, HashSet};

use meshmove_isolation::policies::rules::ServiceIndex;
use meshmove_isolation::policies::{self, Generation, PolicyOptions, Request, Subjects, Withheld};
use meshmove_istio::MeshMode;
use meshmove_istio::injection::STATUS_ANNOTATION;
use meshmove_kube::plan::MANAGED_BY;
use meshmove_model::inventory::{Inventory, Object, ObjectRef, kinds};
use meshmove_model::workload::{pod_owner, workloads};
use serde_json::{Value, json};

use super::enable::{EnableOptions, Mode, to_restart};
use super::{Labels, namespace_object};

/// What `enable --authz` is told.
#[derive(Debug, Clone, Default)]
pub struct AuthzOptions {
    /// Workloads whose policy is written although it is withheld (`--authz-isolate-anyway`).
    pub isolate_anyway: Vec<String>,
    /// Namespaces of ingress controllers and gateways, admitted on the exposed ports; the
    /// generator's defaults when empty.
    pub ingress_namespaces: Vec<String>,
    /// The workloads of the other namespaces, whose calls into the namespace's Services the
    /// policies must admit.
    pub elsewhere: Elsewhere,
}

/// What is known of the other namespaces' workloads (see the module docs).
#[derive(Debug, Clone, Default)]
pub enum Elsewhere {
    /// The inventory holds every caller there is (an input of files).
    #[default]
    InInventory,
    /// The objects of the other namespaces ([`ELSEWHERE_KINDS`]), read from the cluster.
    Read(Vec<Object>),
    /// Why they could not be read.
    Unreadable(String),
}

/// Kinds read in the other namespaces: the workloads and Pods (who calls, with which identity
/// and proxy), Services (what a name denotes), and the ConfigMaps and Secrets the workloads read
/// (fetched by name, for the names they hold).
pub const ELSEWHERE_KINDS: &[&meshmove_model::inventory::Kind] = &[
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::REPLICA_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::POD,
    &kinds::SERVICE,
    &kinds::CONFIG_MAP,
    &kinds::SECRET,
];

/// Kinds `enable --authz` reads in the namespace besides `enable`'s: what shows clients
/// (exposure, monitors; ConfigMaps and Secrets by reference, where workloads take addresses).
pub const KINDS: &[&meshmove_model::inventory::Kind] = &[
    &kinds::INGRESS,
    &kinds::VIRTUAL_SERVICE,
    &kinds::HTTP_ROUTE,
    &kinds::SERVICE_MONITOR,
    &kinds::POD_MONITOR,
    &kinds::CONFIG_MAP,
    &kinds::SECRET,
];

/// Kinds read in every namespace: the mesh's policies (mesh-wide ones live in the root namespace).
pub const WIDE_KINDS: &[&meshmove_model::inventory::Kind] =
    &[&kinds::AUTHORIZATION_POLICY, &kinds::PEER_AUTHENTICATION];

/// The namespace as `enable` leaves it: `labels_after` on the Namespace; in sidecar mode the
/// pods of the workloads it restarts carry the injector's status annotation (what the engine
/// reads as "has a sidecar"); `written` (the PeerAuthentication it applies) in place.
pub fn on_the_mesh(
    inventory: &Inventory,
    namespace: &str,
    mode: Mode,
    labels_after: &Labels,
    written: &[Value],
) -> Inventory {
    let mut objects: Vec<Object> = Vec::new();
    if let Some(ns) = namespace_object(inventory, namespace) {
        let mut o = ns.clone();
        if let Some(meta) = o.value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("labels".into(), json!(labels_after));
        }
        objects.push(o);
    }
    if mode == Mode::Sidecar {
        let restarted: Vec<(String, String)> = to_restart(inventory, namespace, labels_after)
            .into_iter()
            .map(|w| (w.kind.clone(), w.name.clone()))
            .collect();
        for pod in inventory
            .of(&kinds::POD)
            .filter(|p| p.namespace.as_deref() == Some(namespace))
        {
            let Some(owner) = pod_owner(inventory, pod) else {
                continue;
            };
            if !restarted.contains(&(owner.kind.clone(), owner.name.clone())) {
                continue;
            }
            let mut p = pod.clone();
            if let Some(meta) = p.value.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
                if let Some(a) = annotations.as_object_mut() {
                    a.insert(STATUS_ANNOTATION.into(), json!("{}"));
                }
            }
            objects.push(p);
        }
    }
    let origin = namespace_object(inventory, namespace).map(|o| o.origin.clone());
    for v in written {
        if let Some(origin) = &origin
            && let Some(o) = Object::from_value(v.clone(), origin.clone())
        {
            objects.push(o);
        }
    }
    inventory.overlay(objects)
}

/// The AuthorizationPolicies of `enable --authz` for `namespace` (see the module docs), from
/// the namespace as `enable` leaves it ([`on_the_mesh`]); `mesh_root` is the mesh root namespace.
/// The written ones are `Generation::policies` (`object`), the rest `withheld` with reasons.
pub fn policies(
    inventory: &Inventory,
    namespace: &str,
    enable: &EnableOptions,
    options: &AuthzOptions,
    labels_after: &Labels,
    written: &[Value],
    mesh_root: &str,
) -> Generation {
    let (mode, monitoring_namespaces) = (enable.mode, &enable.monitoring_namespaces);
    let after = on_the_mesh(inventory, namespace, mode, labels_after, written);
    let defaults = PolicyOptions::default();
    let opts = PolicyOptions {
        ingress_namespaces: if options.ingress_namespaces.is_empty() {
            defaults.ingress_namespaces.clone()
        } else {
            options.ingress_namespaces.clone()
        },
        monitoring_namespaces: monitoring_namespaces.clone(),
        isolate_anyway: options.isolate_anyway.clone(),
        egress: false,
        database_isolation: false,
        ..defaults
    };
    let req = Request {
        subjects: Subjects::Release,
        release: "",
        mode: Some(match mode {
            Mode::Sidecar => MeshMode::Sidecar,
            Mode::Ambient => MeshMode::Ambient,
        }),
        options: &opts,
        labels: json!(BTreeMap::from([(MANAGED_BY.0, MANAGED_BY.1)])),
        namespace: Some(namespace),
    };
    let (after, context) = match &options.elsewhere {
        Elsewhere::Read(objects) => {
            let theirs: Vec<Object> = objects.iter().filter(|o| o.namespace.as_deref().is_some_and(|ns| ns != namespace)).cloned().collect();
            let all = after.overlay(theirs);
            let context: HashSet<ObjectRef> = workloads(&all).iter().filter(|w| w.namespace() != namespace).map(|w| w.object.object_ref()).collect();
            (all, context)
        }
        _ => (after, HashSet::new()),
    };
    let mut out = policies::authorization_policies_with_context(&after, &req, mesh_root, &context);
    // Only the namespace's own workloads: the input holds nothing else to guard.
    out.policies.retain(|g| g.namespace == namespace);
    if let Elsewhere::Unreadable(why) = &options.elsewhere {
        withhold_callable(&after, namespace, why, options, &mut out);
    }
    out
}

/// The other namespaces could not be read (`why`): the policy of every workload a Service of
/// the namespace selects is withheld (a caller elsewhere may name that Service), unless it is
/// named with `--authz-isolate-anyway`, which a note then records.
fn withhold_callable(inventory: &Inventory, namespace: &str, why: &str, options: &AuthzOptions, out: &mut Generation) {
    let ws = workloads(inventory);
    let services = ServiceIndex::new(inventory);
    let policies = std::mem::take(&mut out.policies);
    for g in policies {
        let selecting: Vec<String> = ws
            .iter()
            .filter(|w| w.object.object_ref() == g.subject)
            .flat_map(|w| services.selecting(w))
            .map(|s| format!("{}.{namespace}", s.name))
            .collect();
        if selecting.is_empty() {
            out.policies.push(g);
            continue;
        }
        let reason = format!(
            "the workloads of other namespaces could not be read ({why}), so a caller there naming {} is not seen and would be refused",
            selecting.join(", ")
        );
        let name = g.subject.name.clone();
        let isolate_with = format!("--authz-isolate-anyway {name}");
        if options.isolate_anyway.contains(&name) {
            out.notes.push(format!("{}: AuthorizationPolicy written anyway ({isolate_with}): {reason}", g.protects));
            out.policies.push(g);
        } else {
            out.withheld.push(Withheld {
                subject: g.protects,
                namespace: g.namespace,
                reason,
                isolate_with,
                egress: false,
                refuses: Vec::new(),
            });
        }
    }
    out.withheld.sort_by(|a, b| (&a.namespace, &a.subject).cmp(&(&b.namespace, &b.subject)));
}
