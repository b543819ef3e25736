//! The one NetworkPolicy generator: what the post-renderer and `kubectl dbiso generate|apply`
//! write, proven by the exact engine before anything is emitted.
//!
//! For every workload (the post-renderer) or every database (`dbiso`) it builds one candidate
//! policy that isolates the workload's pods for ingress (and egress, when asked) and admits
//! exactly the traffic the input explains ([`clients`]): Service callers, database clients,
//! Helm hooks, the CloudNativePG operator, ingress controllers, monitoring, and the mesh's own
//! ports. Then [`proof`] runs the engine on the input with and without the candidates: a
//! candidate that would cut a connection in use is withheld, and the report says which
//! connection and how to isolate the workload anyway. Violations are the exception: a service
//! using another service's database is cut on purpose, and every such cut is reported.
//!
//! A workload whose clients cannot be established (a Secret outside the input may hold the
//! database's address; a Service nobody in the input names) is not isolated by default:
//! [`PolicyOptions::isolate_anyway`] says otherwise.
//!
//! Mesh ports (Istio: <https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio>):
//! in sidecar mode the monitoring namespaces reach 15020 and 15090; in ambient mode every meshed
//! connection arrives on HBONE (TCP 15008) to the destination pod, so 15008 goes into the *same*
//! rules, with the same peers, as the application ports (a bare 15008 rule would let any pod
//! through the tunnel), and the kubelet's probes, which ztunnel rewrites to come from
//! 169.254.7.127, are admitted from that address only
//! (<https://istio.io/latest/docs/ambient/usage/networkpolicy/>).
//!
//! Size: peers are the release's one label selector when every workload carries it, else only
//! the callers the input shows, so the output grows with the number of connections, never with
//! the square of the workloads.
//!
//! A run has three phases: [`run`] reads the input's facts once and drives the others;
//! [`workloads`] and [`databases`] draft one candidate per subject, or say why none; [`emit`]
//! proves the candidates and writes what survives, named by [`names`]. The ambient
//! AuthorizationPolicy companions are [`authz`]'s and [`authz_proof`]'s; `enable --authz`'s
//! AuthorizationPolicies alone are [`authz_only`]'s.

mod authz;
mod authz_only;
mod authz_proof;
pub(crate) mod clients;
mod databases;
mod egress;
mod emit;
mod gateways;
mod names;
mod run;
mod waypoints;
mod workloads;

pub use egress::{ISTIOD_WEBHOOK_PORT, ISTIOD_XDS_PORT, istiod_rule};
pub mod options;
mod proof;
pub mod rules;

use std::collections::{BTreeSet, HashSet};

use meshmove_model::inventory::{Inventory, ObjectRef};
use meshmove_model::workload::Workload;
use meshmove_netpol::WorkloadRef;
use meshmove_netpol::view;
use serde::Serialize;
use serde_json::{Map, Value, json};

pub use clients::{ServiceUse, is_hook, service_uses};
pub use names::{EGRESS_SUFFIX, INGRESS_SUFFIX, infer_release, most_common_first, named_policy, policy_name, release_label, release_label_of};
use names::unique_names;
pub use options::{Cidr, CidrError, ClientSelector, ClientSelectorError, DatabaseClient, PolicyOptions, SelectorOperator, SelectorRequirement};
use proof::{From, To, Use};
use rules::{Port, namespaces_selector};

use meshmove_istio::MeshMode;

/// Label marking generated objects.
pub const GENERATED_LABEL: &str = "mesh-migrate.meshmove.io/generated";
/// Helm's recommended release label.
pub const RELEASE_LABEL: &str = "app.kubernetes.io/instance";
/// Ports Istio needs open on meshed pods: HBONE (ambient; the engine's, which models the tunnel),
/// Envoy telemetry and merged metrics.
pub use meshmove_netpol::hbone::HBONE_PORT;
pub const ENVOY_TELEMETRY_PORT: u16 = 15090;
pub const MERGED_METRICS_PORT: u16 = 15020;
/// The address ztunnel gives kubelet probes of ambient pods, as an `ipBlock` CIDR: the engine's
/// [`meshmove_netpol::hbone::AMBIENT_PROBE_SOURCE`] (a test keeps them equal).
pub const AMBIENT_PROBE_SOURCE: &str = "169.254.7.127/32";
/// Labels of the CloudNativePG operator's pods, as its Helm chart and manifests set them.
const CNPG_OPERATOR_LABELS: [(&str, &str); 1] = [("app.kubernetes.io/name", "cloudnative-pg")];

/// What to generate policies for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subjects {
    /// Every top-level workload and database of one release (the post-renderer).
    Release,
    /// Databases only (`kubectl dbiso generate`).
    Databases,
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub subjects: Subjects,
    /// Release name: prefixes policy names, and its label selects the release's workloads.
    pub release: &'a str,
    /// Data-plane mode; `None` reads it per namespace (`istio.io/dataplane-mode=ambient`).
    pub mode: Option<MeshMode>,
    pub options: &'a PolicyOptions,
    /// Labels every generated policy carries.
    pub labels: Value,
    /// The namespace objects the input leaves without one will be installed in (a chart rendered
    /// for Helm: the release namespace), when known; names their service accounts exactly in
    /// ambient AuthorizationPolicies ([`authz`]).
    pub namespace: Option<&'a str>,
}

/// One generated policy and why it exists.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub name: String,
    pub namespace: String,
    #[serde(skip)]
    pub object: Value,
    /// The workload (or database) it protects, `Kind/name`.
    pub protects: String,
    #[serde(skip)]
    pub subject: ObjectRef,
    /// Who it admits, in words (`Deployment/api on TCP 5432`); for an egress policy, where the
    /// pods may connect.
    pub admits: Vec<String>,
    /// An egress policy (`<name>-egress`, `policyTypes: [Egress]`), else an ingress one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub egress: bool,
    /// In ambient mode, the L4 AuthorizationPolicy ztunnel enforces with the same peers and
    /// ports (see [`authz`]); `None` elsewhere or when it cannot be expressed (said in notes).
    #[serde(skip)]
    pub authorization: Option<Value>,
    /// Connections in use it refuses: a policy written although the proof shows them cut
    /// (`--authz-isolate-anyway`); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refuses: Vec<Refusal>,
}

/// A workload left without a policy, and how to isolate it anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Withheld {
    pub subject: String,
    pub namespace: String,
    pub reason: String,
    /// The configuration that isolates it regardless.
    pub isolate_with: String,
    /// Only its egress is left unrestricted (its ingress policy is reported on its own).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub egress: bool,
    /// Every connection in use the policy would refuse, when that is why it is withheld: what
    /// writing it anyway costs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refuses: Vec<Refusal>,
}

/// A connection in use that a policy would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// The client, `Kind/name`.
    pub from: String,
    /// The workload the policy guards, `Kind/name`.
    pub to: String,
    /// The TCP ports it loses, as ranges (`TCP 8000`, `TCP 1-79`).
    pub ports: Vec<String>,
    /// Why the input shows it in use.
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} on {} ({})", self.from, self.to, self.ports.join(", "), self.why)
    }
}

/// The uses `lost` names ([`authz_proof::Lost`]) as refusals of connections to `to`; `None` when
/// the engine could not build the model with the policy (then there is no connection to name).
fn refusals(lost: &authz_proof::Lost, uses: &[Use], to: &str) -> Option<Vec<Refusal>> {
    lost.iter()
        .map(|(u, ports)| {
            uses.get(*u).map(|u| Refusal {
                from: u.from_name.clone(),
                to: to.to_string(),
                ports: ports.ranges().iter().map(ToString::to_string).collect(),
                why: u.why.clone(),
            })
        })
        .collect()
}

/// `refuses` in words, after `it would {verb}`: the one connection, or every one, counted.
fn refusals_text(verb: &str, refuses: &[Refusal]) -> String {
    match refuses {
        [one] => format!("it would {verb} {one}, a connection in use"),
        all => format!(
            "it would {verb} {} connections in use: {}",
            all.len(),
            all.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ),
    }
}

/// A connection in use that the generated policies cut on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cut {
    pub from: String,
    pub to: String,
    pub ports: Vec<u16>,
    pub reason: String,
    /// The configuration that keeps it.
    pub keep_with: String,
}

/// Everything a generation run produced.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    pub policies: Vec<Generated>,
    pub withheld: Vec<Withheld>,
    pub cuts: Vec<Cut>,
    /// Warnings about the configuration (a monitoring namespace that does not exist).
    pub notes: Vec<String>,
}

impl Generation {
    pub fn extend(&mut self, other: Generation) {
        self.policies.extend(other.policies);
        self.withheld.extend(other.withheld);
        self.cuts.extend(other.cuts);
        self.notes.extend(other.notes);
    }
}

/// A candidate before the proof.
struct Draft {
    subject: ObjectRef,
    ambient: bool,
    engine_ref: WorkloadRef,
    protects: String,
    namespace: String,
    /// `-ingress` or `-egress` name (post-renderer) or `dbiso-<db>`.
    name: String,
    /// Egress rules (`policyTypes: [Egress]`), else ingress.
    egress: bool,
    spec: Map<String, Value>,
    admits: Vec<String>,
}

fn port_numbers(ports: &BTreeSet<Port>, w: Option<&Workload<'_>>) -> Vec<u16> {
    let named = w.map(Workload::ports).unwrap_or_default();
    let mut out: Vec<u16> = ports
        .iter()
        .filter_map(|p| p.resolve("TCP", &named))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A rule's ports with HBONE (TCP 15008) added in ambient mode: the tunnel's port goes into the
/// same rule, with the same peers, as the application ports (see the module docs).
pub fn with_hbone(mut ports: Vec<Value>, ambient: bool) -> Vec<Value> {
    if ambient {
        ports.push(json!({"protocol": "TCP", "port": HBONE_PORT}));
    }
    ports
}

/// The uses the Service calls `calls` into `w` (engine reference `me`) make, for the proofs.
fn call_uses<'a>(ws: &'a [Workload<'a>], w: &'a Workload<'a>, me: &'a WorkloadRef, calls: &'a [clients::Call]) -> impl Iterator<Item = Use> + 'a {
    calls.iter().map(move |c| {
        let client = &ws[c.client];
        Use {
            from: From::Workload(view::workload_ref(client.object)),
            from_name: short_in(client, w.namespace()),
            to: To::Workload(me.clone()),
            ports: port_numbers(&c.ports, Some(w)),
            why: c.via.clone(),
            violation: None,
        }
    })
}

fn short(w: &Workload<'_>) -> String {
    format!("{}/{}", w.kind(), w.name())
}

/// [`short`] as seen from `namespace`: `Kind/NAMESPACE/name` for a workload of another one.
fn short_in(w: &Workload<'_>, namespace: &str) -> String {
    if w.namespace() == namespace || w.namespace().is_empty() {
        short(w)
    } else {
        format!("{}/{}/{}", w.kind(), w.namespace(), w.name())
    }
}

/// Generate, prove, and report.
pub fn generate(inventory: &Inventory, req: &Request<'_>) -> Generation {
    generate_with_context(inventory, req, &HashSet::new())
}

/// The L4 Istio `AuthorizationPolicy` of every workload of `inventory` whose clients the input
/// shows, alone (no NetworkPolicy goes with it), for either data-plane mode: what
/// `kubectl mesh-migrate enable --authz` writes. The clients, peers and ports are the
/// generator's, as the ambient companions have them ([`authz`]); `inventory` must show the
/// namespace as it will be once on the mesh (labels, which pods carry a proxy, the
/// PeerAuthentications), and `mesh_root` is the mesh root namespace, where mesh-wide policies
/// live. The proof and what is withheld are [`authz_only`]'s. `Generated::object` is the
/// AuthorizationPolicy, named `<workload>-authz`.
pub fn authorization_policies(inventory: &Inventory, req: &Request<'_>, mesh_root: &str) -> Generation {
    authorization_policies_with_context(inventory, req, mesh_root, &HashSet::new())
}

/// [`authorization_policies`] where the workloads named in `context` are clients and callees
/// only, never subjects: the workloads of other namespaces, read so that their calls into the
/// namespace's Services (`api.shop`) are seen. Unlike [`generate_with_context`]'s other
/// releases, they are admitted by their principals like any client, and the proof checks those
/// connections like any other (a client there without a proxy has no principal, and the
/// policy it needs is withheld, naming it).
pub fn authorization_policies_with_context(inventory: &Inventory, req: &Request<'_>, mesh_root: &str, context: &HashSet<ObjectRef>) -> Generation {
    run::run(inventory, req, context, Output::AuthorizationPolicies { mesh_root })
}

/// [`generate`] where the workloads named in `context` are clients and callees only, never
/// subjects: the workloads of other releases of one stream that call this release's Services
/// (or that its workloads call). They get no policy here (their own release's run gives them
/// theirs), but the policies admit them where they are seen calling, and the proof checks those
/// connections like any other.
pub fn generate_with_context(inventory: &Inventory, req: &Request<'_>, context: &HashSet<ObjectRef>) -> Generation {
    run::run(inventory, req, context, Output::NetworkPolicies)
}

/// What a generation run emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output<'a> {
    /// NetworkPolicies, with their ambient AuthorizationPolicy companions.
    NetworkPolicies,
    /// AuthorizationPolicies alone, for every data-plane mode ([`authorization_policies`]).
    AuthorizationPolicies { mesh_root: &'a str },
}

/// Mesh rules of every isolated pod: monitoring on the sidecar's telemetry ports, or the
/// ambient probe source.
pub fn mesh_rules(rules: &mut Vec<Value>, admits: &mut Vec<String>, ambient: bool, sidecar: bool, monitoring: &[String]) {
    if ambient {
        admits.push(format!("kubelet probes through ztunnel (from {AMBIENT_PROBE_SOURCE})"));
        rules.push(json!({"from": [{"ipBlock": {"cidr": AMBIENT_PROBE_SOURCE}}]}));
    } else if sidecar && !monitoring.is_empty() {
        admits.push(format!("monitoring namespaces {} on TCP {ENVOY_TELEMETRY_PORT}, {MERGED_METRICS_PORT}", monitoring.join(", ")));
        rules.push(json!({
            "from": [{"namespaceSelector": namespaces_selector(monitoring)}],
            "ports": [{"protocol": "TCP", "port": ENVOY_TELEMETRY_PORT}, {"protocol": "TCP", "port": MERGED_METRICS_PORT}],
        }));
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod authz_only_tests;

#[cfg(test)]
mod waypoint_tests;

#[cfg(test)]
mod gateway_tests;
