//! `enable`: put a namespace on the mesh in place.
//!
//! Order of the plan: the namespace labels first (so pods created from then on are injected),
//! the PeerAuthentication `PERMISSIVE` (meshed and plaintext clients both work) unless that would
//! lower a workload's effective mode or be ignored ([`permissive`]), the Gateway and
//! the mesh's ports in the NetworkPolicies the suite generated ([`super::mesh_policies`]),
//! one VirtualService and DestinationRule per HTTP Service, then restarts in batches with a wait
//! after each. In sidecar mode only workloads whose pods would be injected and do not carry the
//! proxy yet are restarted; ambient mode restarts nothing (ztunnel captures running pods).
//!
//! Batches never hold two workloads whose pods the same PodDisruptionBudget guards, so a budget
//! only ever sees one of its workloads rolling; within a workload the controller's own
//! `maxUnavailable` applies. Jobs and CronJobs are not restarted.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::peer_auth::{self, PortMode};
use super::{MigrateError, PEER_AUTHENTICATION, STEP_ENABLE, TrafficProfile, has_proxy, labels_of, namespace_object, selected_dataplane, service_routes};
use meshmove_istio::injection::{DATAPLANE_MODE_LABEL, INJECTION_LABEL, REV_LABEL, SPIRE_TEMPLATES, TEMPLATES_ANNOTATION};
use meshmove_istio::{Dataplane, Labels, Level, Mode as MtlsMode, MtlsSource};
use meshmove_model::inventory::{Inventory, Object, kinds};
use meshmove_kube::plan::{Change, MANAGED_BY, Plan, Target};
use meshmove_model::workload::{Workload, disruption_budgets, pod_owner};

/// Data-plane mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sidecar,
    Ambient,
}

/// Options of `enable`.
#[derive(Debug, Clone)]
pub struct EnableOptions {
    pub mode: Mode,
    /// Injection by revision label (`istio.io/rev`) instead of `istio-injection=enabled`.
    pub revision: Option<String>,
    pub profile: TrafficProfile,
    /// Hosts on the Gateway are `<service>.<domain>`; default `<namespace>.local`.
    pub domain: Option<String>,
    /// Per-service host overrides, as `expose --host` takes them: the Gateway serves the same
    /// hosts as the Ingress of `expose` when given the same `domain` and overrides.
    pub hosts: BTreeMap<String, String>,
    /// Workloads restarted together at most.
    pub batch_size: usize,
    /// Label selector value of the ingress gateway pods (`istio: <value>`).
    pub gateway_selector: String,
    /// Ask Istio's injector for SPIRE-issued identities: the pod templates of the workloads it
    /// injects get `inject.istio.io/templates: sidecar,spire` ([`spire_requests`]).
    pub spire: bool,
    /// The mesh's PeerAuthentications, or why they are unknown, when the caller read them
    /// separately (a namespace administrator may not list them in every namespace); `None`: read
    /// them from the inventory. See [`permissive`].
    pub policies: Option<peer_auth::Policies>,
    /// Namespaces Prometheus scrapes from (the suite's policies admit them to the sidecar's
    /// metrics ports, [`super::mesh_policies`]); the precheck's by default.
    pub monitoring_namespaces: Vec<String>,
    /// Namespace of istiod (egress of the suite's policies in sidecar mode).
    pub istio_namespace: String,
    /// L4 AuthorizationPolicies from the clients the namespace shows (`--authz`,
    /// [`super::authz`]); the inventory must then hold the kinds [`super::authz::KINDS`] and
    /// [`super::authz::WIDE_KINDS`] name.
    pub authz: Option<super::authz::AuthzOptions>,
}

impl Default for EnableOptions {
    fn default() -> Self {
        EnableOptions {
            mode: Mode::Sidecar,
            revision: None,
            profile: TrafficProfile::default(),
            domain: None,
            hosts: BTreeMap::new(),
            batch_size: 3,
            gateway_selector: "ingressgateway".into(),
            spire: false,
            policies: None,
            monitoring_namespaces: crate::precheck::PrecheckOptions::default().monitoring_namespaces,
            istio_namespace: meshmove_isolation::policies::PolicyOptions::default().istio_namespace,
            authz: None,
        }
    }
}

/// Name of the Gateway `enable` creates.
pub fn gateway_name(namespace: &str) -> String {
    format!("{namespace}-gateway")
}

fn managed(api_version: &str, kind: &str, namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
           "spec": spec})
}

/// Workloads to restart: Deployments, StatefulSets and DaemonSets of the namespace whose pods
/// Istio would inject once the namespace is labelled `namespace_labels`
/// ([`selected_dataplane`]: the webhooks' selection, then the injector's policy, so an opt-out
/// label or annotation, host networking or a system namespace keep a workload out) and that have
/// a pod without the proxy (or no pod listed at all while scaled up).
pub fn to_restart<'a>(inventory: &'a Inventory, namespace: &str, namespace_labels: &Labels) -> Vec<&'a Object> {
    let mut unmeshed: BTreeMap<(String, String), bool> = BTreeMap::new();
    for pod in inventory.of(&kinds::POD).filter(|p| p.namespace.as_deref() == Some(namespace)) {
        if let Some(owner) = pod_owner(inventory, pod) {
            let e = unmeshed.entry((owner.kind.clone(), owner.name.clone())).or_insert(false);
            *e |= !has_proxy(&pod.value);
        }
    }
    let pods_listed = inventory.has(&kinds::POD);
    let injected = |w: &Workload<'_>| {
        matches!(selected_dataplane(namespace, namespace_labels, w.template), Dataplane::Sidecar { .. })
    };
    [&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET]
        .iter()
        .flat_map(|k| inventory.of(k))
        .filter(|o| o.namespace.as_deref() == Some(namespace))
        .filter(|o| Workload::of(o).is_some_and(|w| injected(&w)))
        .filter(|o| match unmeshed.get(&(o.kind.clone(), o.name.clone())) {
            Some(any_unmeshed) => *any_unmeshed,
            // No pod listed: restart unless it runs none (scaled to zero) and pods were listed.
            None => !pods_listed || Workload::of(o).and_then(|w| w.replicas()).unwrap_or(1) > 0,
        })
        .collect()
}

/// The SPIRE template request of `enable --spire`, workload by workload.
#[derive(Debug, Clone)]
pub enum SpireRequest<'a> {
    /// The pod template gets `inject.istio.io/templates: sidecar,spire`: writing it rolls the
    /// workload out, so it takes the place of a restart.
    Add(&'a Object),
    /// The template asks for the spire template already.
    Present(&'a Object),
    /// The template names other injection templates: kept, as the post-renderer keeps it (what
    /// a chart or a person set wins), so its new pods get no SPIRE identity from this step.
    Kept { workload: &'a Object, templates: String },
}

/// For `enable --spire`: the Deployments, StatefulSets and DaemonSets of the namespace whose
/// pods Istio would inject once the namespace is labelled `namespace_labels` (the selection of
/// [`to_restart`]), each with what happens to its `inject.istio.io/templates` annotation. The
/// annotation and its value are Istio's ([`meshmove_istio::injection::SPIRE_TEMPLATES`]), the
/// same the post-renderer's `--spire` writes.
pub fn spire_requests<'a>(inventory: &'a Inventory, namespace: &str, namespace_labels: &Labels) -> Vec<SpireRequest<'a>> {
    [&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET]
        .iter()
        .flat_map(|k| inventory.of(k))
        .filter(|o| o.namespace.as_deref() == Some(namespace))
        .filter_map(|o| {
            let w = Workload::of(o)?;
            if !matches!(selected_dataplane(namespace, namespace_labels, w.template), Dataplane::Sidecar { .. }) {
                return None;
            }
            let current = w.template.pointer("/metadata/annotations").and_then(|a| a.get(TEMPLATES_ANNOTATION)).and_then(Value::as_str);
            Some(match current {
                None => SpireRequest::Add(o),
                Some(t) if t.split(',').any(|t| t.trim() == "spire") => SpireRequest::Present(o),
                Some(t) => SpireRequest::Kept { workload: o, templates: t.to_string() },
            })
        })
        .collect()
}

/// The pod-template annotation pointer of the SPIRE template request.
pub fn spire_pointer() -> String {
    format!("/spec/template{}", meshmove_kube::plan::annotation_pointer(TEMPLATES_ANNOTATION))
}

/// The workloads an `enable` plan rolls out: restarted, or given the SPIRE template request
/// (a pod template change rolls them out too).
pub fn rolled_out(plan: &Plan) -> Vec<Target> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::Restart { target } => Some(target.clone()),
            Change::Set { target, fields } if fields.keys().any(|p| p.starts_with("/spec/template/")) => Some(target.clone()),
            _ => None,
        })
        .collect()
}

/// Group restarts into batches of at most `size`, never two workloads sharing a budget.
pub fn batches<'a>(inventory: &Inventory, workloads: &[&'a Object], size: usize) -> Vec<Vec<&'a Object>> {
    let mut out: Vec<(Vec<&Object>, Vec<String>)> = Vec::new();
    for w in workloads {
        let b = disruption_budgets(inventory, w);
        let slot = out.iter_mut().find(|(ws, used)| ws.len() < size.max(1) && !b.iter().any(|x| used.contains(x)));
        match slot {
            Some((ws, used)) => {
                ws.push(w);
                used.extend(b);
            }
            None => out.push((vec![w], b)),
        }
    }
    out.into_iter().map(|(ws, _)| ws).collect()
}

fn target(o: &Object) -> Target {
    Target::new(&o.api_version, &o.kind, o.namespace.as_deref(), &o.name)
}

/// Whether `enable` writes the namespace's PeerAuthentication `default` with mode `PERMISSIVE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissive {
    /// Written: meshed and plaintext clients both keep working while the namespace moves. The
    /// modes it changes (raised from `DISABLE`), proven with `changes()`; usually none, when it
    /// only pins the mode Istio would apply anyway.
    Write { raised: Vec<PortMode> },
    /// Not written, and why: it would lower a mode, it would be ignored, or the policies are not
    /// known well enough to prove it lowers nothing.
    Skip { reason: String },
}

/// The `PERMISSIVE` PeerAuthentication `enable` writes, if it can prove that doing so lowers no
/// workload port's effective mode ([`meshmove_istio::PeerAuthentications::changes`] and
/// `lowered()`): a
/// mesh-wide or namespace-wide `STRICT` stays in force, and so does an older namespace-wide policy
/// Istio applies instead of `default`. `policies` are the mesh's PeerAuthentications
/// ([`peer_auth::policies`]: every namespace's, as the mesh-wide ones live in the root
/// namespace), or why they are unknown, in which case nothing is written.
pub fn permissive(inventory: &Inventory, namespace: &str, policies: peer_auth::Policies) -> Permissive {
    let skip = |reason: String| Permissive::Skip { reason: format!("PeerAuthentication {namespace}/{PEER_AUTHENTICATION} PERMISSIVE not written: {reason}") };
    let before = match policies {
        Ok(p) => p,
        Err(e) => return skip(format!("{e}; without them it cannot be shown not to lower a STRICT mode (the mode Istio applies is left as it is)")),
    };
    if namespace == before.root_namespace() {
        return skip("this is the mesh root namespace, where a namespace-wide policy applies to the whole mesh".into());
    }
    let proposed = peer_auth::proposed(&before, namespace, PEER_AUTHENTICATION, MtlsMode::Permissive);
    let after = before.apply(proposed.clone());
    let workloads = peer_auth::workload_targets(inventory, namespace, &before);
    let changes = before.changes(proposed, &peer_auth::all_targets(&workloads));
    let (ns_before, ns_after) = (before.namespace_mode(namespace), after.namespace_mode(namespace));
    let modes = peer_auth::port_modes(&workloads, &before, &after);
    if changes.iter().any(|c| c.lowered()) || ns_after.mode < ns_before.mode {
        let lowered: Vec<&PortMode> = modes.iter().filter(|m| m.after != m.before).collect();
        let mut workloads: Vec<&str> = lowered.iter().map(|m| m.workload.as_str()).collect();
        workloads.dedup();
        let what = match (lowered.len(), workloads.as_slice()) {
            (0, _) => "the namespace-wide mode".to_string(),
            (1, _) => lowered[0].to_string(),
            (n, [w]) => format!("{n} ports of {w}"),
            (n, ws) if ws.len() <= 3 => format!("{n} ports of {}", ws.join(", ")),
            (n, ws) => format!("{n} ports of {} workloads ({}, {} and {} more)", ws.len(), ws[0], ws[1], ws.len() - 2),
        };
        return skip(format!(
            "the namespace is already {} ({}), and PERMISSIVE would lower {what}",
            ns_before.mode,
            peer_auth::decided_by(&ns_before)
        ));
    }
    if let MtlsSource::Policy { policy, level: Level::Namespace } = &ns_before.from
        && policy.name != PEER_AUTHENTICATION
    {
        return skip(format!(
            "{policy} is the oldest namespace-wide policy, which Istio applies (mode {}), so a `{PEER_AUTHENTICATION}` next to it would be ignored",
            ns_before.mode
        ));
    }
    Permissive::Write { raised: modes.into_iter().filter(|m| m.after != m.before).collect() }
}

/// What `enable` changes in the namespace's NetworkPolicies ([`super::mesh_policies`]): the
/// suite's own get the mesh's ports; the findings left are on policies it does not edit.
pub fn mesh_policies(inventory: &Inventory, namespace: &str, options: &EnableOptions) -> super::mesh_policies::MeshPolicies {
    super::mesh_policies::update(inventory, namespace, options.mode, &options.monitoring_namespaces, &options.istio_namespace)
}

/// Build the `enable` plan.
pub fn plan(inventory: &Inventory, namespace: &str, options: &EnableOptions) -> Result<Plan, MigrateError> {
    plan_with_authz(inventory, namespace, options).map(|(plan, _)| plan)
}

/// [`plan`], with what `--authz` generated ([`super::authz::policies`]: the policies the plan
/// applies last, once every restarted pod is ready, and those withheld) when it was asked for.
pub fn plan_with_authz(
    inventory: &Inventory,
    namespace: &str,
    options: &EnableOptions,
) -> Result<(Plan, Option<meshmove_isolation::policies::Generation>), MigrateError> {
    let ns = namespace_object(inventory, namespace).ok_or_else(|| MigrateError::NoNamespace { namespace: namespace.to_string() })?;
    options.profile.validate()?;
    if let Some(rev) = &options.revision
        && (rev.is_empty() || rev.len() > 63 || !rev.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
    {
        return Err(MigrateError::BadOption { what: "--revision".into(), message: format!("`{rev}` is not a valid label value") });
    }
    if options.mode == Mode::Ambient && options.revision.is_some() {
        return Err(MigrateError::BadOption { what: "--revision".into(), message: "applies to sidecar mode only".into() });
    }
    if options.mode == Mode::Ambient && options.spire {
        return Err(MigrateError::BadOption {
            what: "--spire".into(),
            message: "applies to sidecar mode only: the spire template is an injection template, and ambient pods are not injected".into(),
        });
    }
    let mut plan = Plan::new(STEP_ENABLE, namespace);
    let ns_target = Target::namespace(namespace);
    // Label changes, and the namespace labels once they are applied.
    let mut changes: Vec<(&str, Option<&str>)> = Vec::new();
    match (options.mode, &options.revision) {
        (Mode::Sidecar, None) => {
            changes.push((INJECTION_LABEL, Some("enabled")));
            if ns.label(REV_LABEL).is_some() {
                changes.push((REV_LABEL, None));
            }
        }
        (Mode::Sidecar, Some(rev)) => {
            // istio-injection wins over istio.io/rev: it must go.
            changes.push((REV_LABEL, Some(rev)));
            if ns.label(INJECTION_LABEL).is_some() {
                changes.push((INJECTION_LABEL, None));
            }
        }
        (Mode::Ambient, _) => changes.push((DATAPLANE_MODE_LABEL, Some("ambient"))),
    }
    let mut labels_after = labels_of(ns);
    let mut labels: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for (key, value) in changes {
        labels.insert(meshmove_kube::plan::label_pointer(key), value.map(|v| json!(v)));
        match value {
            Some(v) => labels_after.insert(key.to_string(), v.to_string()),
            None => labels_after.remove(key),
        };
    }
    // Injection labels win over ambient (the webhooks inject, the CNI agent skips pods with a
    // sidecar): an ambient label next to them would not take effect.
    if options.mode == Mode::Ambient && !matches!(selected_dataplane(namespace, &labels_after, &Value::Null), Dataplane::Ambient) {
        return Err(MigrateError::BadOption {
            what: "--mode ambient".into(),
            message: format!("namespace {namespace} is labelled for sidecar injection; roll that back first"),
        });
    }
    plan.push(Change::Set { target: ns_target, fields: labels });
    let policies = options.policies.clone().unwrap_or_else(|| peer_auth::policies(inventory));
    // `--authz` proves its policies under the mesh's PeerAuthentications: unknown, nothing is.
    let mesh_root = match (&options.authz, &policies) {
        (Some(_), Err(e)) => {
            return Err(MigrateError::BadOption {
                what: "--authz".into(),
                message: format!("{e}: which clients present an mTLS identity cannot be shown, so no AuthorizationPolicy can be proven"),
            });
        }
        (_, Ok(p)) => p.root_namespace().to_string(),
        (None, Err(_)) => String::new(),
    };
    let mut written: Vec<Value> = Vec::new();
    if let Permissive::Write { .. } = permissive(inventory, namespace, policies) {
        let object = managed("security.istio.io/v1", "PeerAuthentication", namespace, PEER_AUTHENTICATION, json!({"mtls": {"mode": "PERMISSIVE"}}));
        written.push(object.clone());
        plan.push(Change::Apply { object });
    }
    // The suite's own NetworkPolicies get the mesh's ports before any pod joins the mesh.
    plan.changes.extend(mesh_policies(inventory, namespace, options).changes);

    let (routes, _) = service_routes(inventory, namespace, options.domain.as_deref(), &options.hosts)?;
    let gw = gateway_name(namespace);
    if !routes.is_empty() {
        let hosts: Vec<&str> = routes.iter().map(|r| r.host.as_str()).collect();
        plan.push(Change::Apply {
            object: managed(
                "networking.istio.io/v1",
                "Gateway",
                namespace,
                &gw,
                json!({"selector": {"istio": options.gateway_selector},
                       "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts}]}),
            ),
        });
    }
    for r in &routes {
        let fqdn = format!("{}.{namespace}.svc.cluster.local", r.service);
        let mut route = json!({"route": [{"destination": {"host": fqdn, "port": {"number": r.port}}}]});
        options.profile.apply_to_route(&mut route);
        plan.push(Change::Apply {
            object: managed(
                "networking.istio.io/v1",
                "VirtualService",
                namespace,
                &r.service,
                json!({"hosts": [r.service, r.host],
                       "gateways": [gw, "mesh"],
                       "http": [route]}),
            ),
        });
        plan.push(Change::Apply {
            object: managed("networking.istio.io/v1", "DestinationRule", namespace, &r.service, json!({"host": fqdn, "trafficPolicy": options.profile.traffic_policy()})),
        });
    }
    if options.mode == Mode::Sidecar {
        let mut restart = to_restart(inventory, namespace, &labels_after);
        let spire: Vec<&Object> = if options.spire {
            spire_requests(inventory, namespace, &labels_after)
                .into_iter()
                .filter_map(|r| if let SpireRequest::Add(o) = r { Some(o) } else { None })
                .collect()
        } else {
            Vec::new()
        };
        for o in &spire {
            if !restart.iter().any(|r| std::ptr::eq(*r, *o)) {
                restart.push(o);
            }
        }
        for batch in batches(inventory, &restart, options.batch_size) {
            for w in &batch {
                // The annotation changes the pod template, which rolls the workload out itself.
                if spire.iter().any(|o| std::ptr::eq(*o, *w)) {
                    plan.push(Change::Set { target: target(w), fields: BTreeMap::from([(spire_pointer(), Some(json!(SPIRE_TEMPLATES)))]) });
                } else {
                    plan.push(Change::Restart { target: target(w) });
                }
            }
            plan.push(Change::WaitReady { targets: batch.iter().map(|w| target(w)).collect() });
        }
    }
    // Last: a principal exists only once its client carries the proxy, so the policies go in
    // after every restart is ready (in ambient mode ztunnel captures the running pods).
    let authz = options.authz.as_ref().map(|a| {
        super::authz::policies(inventory, namespace, options, a, &labels_after, &written, &mesh_root)
    });
    for g in authz.iter().flat_map(|g| &g.policies) {
        plan.push(Change::Apply { object: g.object.clone() });
    }
    Ok((plan, authz))
}

/// After `enable`: pods of the namespace's restarted workloads that still lack the proxy
/// (`kind/name: pod`), from an inventory read after the rollout.
pub fn unmeshed_pods(inventory: &Inventory, namespace: &str, workloads: &[Target]) -> Vec<String> {
    inventory
        .of(&kinds::POD)
        .filter(|p| p.namespace.as_deref() == Some(namespace))
        .filter(|p| p.value.pointer("/status/phase").and_then(Value::as_str) != Some("Succeeded"))
        .filter_map(|p| {
            let owner = pod_owner(inventory, p)?;
            workloads
                .iter()
                .any(|t| t.kind == owner.kind && t.name == owner.name)
                .then_some(p)
                .filter(|p| !has_proxy(&p.value))
                .map(|p| format!("{}/{}: pod {}", owner.kind, owner.name, p.name))
        })
        .collect()
}

/// After `enable --mode ambient`: pods of the namespace ztunnel should capture but has not yet
/// (no `ambient.istio.io/redirection: enabled` annotation from the CNI node agent), as
/// `kind/name: pod` (`Pod: name` for a bare pod). Opted-out pods are not listed. Which pods
/// qualify follows the CNI agent's rule ([`super::ambient_candidate`]) with the Namespace of the
/// inventory; without it, the namespace is taken as `enable --mode ambient` labelled it.
pub fn uncaptured_pods(inventory: &Inventory, namespace: &str) -> Vec<String> {
    let labels = namespace_object(inventory, namespace)
        .map(labels_of)
        .unwrap_or_else(|| [(DATAPLANE_MODE_LABEL.to_string(), "ambient".to_string())].into());
    inventory
        .of(&kinds::POD)
        .filter(|p| p.namespace.as_deref() == Some(namespace))
        .filter(|p| super::ambient_candidate(namespace, &labels, &p.value) && !super::ambient_captured(&p.value))
        .map(|p| match pod_owner(inventory, p) {
            Some(owner) => format!("{}/{}: pod {}", owner.kind, owner.name, p.name),
            None => format!("Pod: {}", p.name),
        })
        .collect()
}
