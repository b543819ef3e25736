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

mod authz;
mod authz_only;
mod authz_proof;
pub(crate) mod clients;
mod egress;

pub use egress::{ISTIOD_WEBHOOK_PORT, ISTIOD_XDS_PORT, istiod_rule};
pub mod options;
mod proof;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_model::inventory::{Inventory, ObjectRef, kinds};
use meshmove_model::names::generated_name;
use meshmove_model::workload::{Workload, workloads};
use meshmove_netpol::WorkloadRef;
use meshmove_netpol::view::{self, ModelOptions};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub use clients::{ServiceUse, is_hook, service_uses};
pub use options::{Cidr, ClientSelector, DatabaseClient, PolicyOptions, SelectorOperator, SelectorRequirement};
use proof::{Candidate, From, To, Use};
use rules::{Port, ServiceIndex, namespaces_selector, pod_selector, target_ports, workload_peer};

use crate::discover::{self, CNPG_STATUS_PORT, Database};
use crate::owners;
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
        .filter_map(|p| match p {
            Port::Number(n) => Some(*n),
            Port::Named(name) => named.iter().find(|c| c.name.as_deref() == Some(name)).map(|c| c.port),
        })
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
            from_name: short(client),
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

/// Whether `namespace` exists as far as the input can tell: only a cluster's list of Namespaces
/// says (files hold the release's own Namespaces at most).
fn namespace_exists(inventory: &Inventory, namespace: &str) -> Option<bool> {
    (inventory.is_live() && inventory.has(&kinds::NAMESPACE)).then(|| inventory.get(&kinds::NAMESPACE, None, namespace).is_some())
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
    let mut out = run(inventory, req, &HashSet::new(), Output::AuthorizationPolicies { mesh_root });
    authz_only::behind_waypoints(inventory, req, &mut out);
    out
}

/// [`generate`] where the workloads named in `context` are clients and callees only, never
/// subjects: the workloads of other releases of one stream that call this release's Services
/// (or that its workloads call). They get no policy here (their own release's run gives them
/// theirs), but the policies admit them where they are seen calling, and the proof checks those
/// connections like any other.
pub fn generate_with_context(inventory: &Inventory, req: &Request<'_>, context: &HashSet<ObjectRef>) -> Generation {
    run(inventory, req, context, Output::NetworkPolicies)
}

/// What a generation run emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output<'a> {
    /// NetworkPolicies, with their ambient AuthorizationPolicy companions.
    NetworkPolicies,
    /// AuthorizationPolicies alone, for every data-plane mode ([`authorization_policies`]).
    AuthorizationPolicies { mesh_root: &'a str },
}

fn run(inventory: &Inventory, req: &Request<'_>, context: &HashSet<ObjectRef>, output: Output<'_>) -> Generation {
    let alone = output != Output::NetworkPolicies;
    let opts = req.options;
    let ws = workloads(inventory);
    let is_context: Vec<bool> = ws.iter().map(|w| !context.is_empty() && context.contains(&w.object.object_ref())).collect();
    let isolate_dbs = opts.database_isolation || req.subjects == Subjects::Databases;
    // Egress isolation needs the databases too: their clients must keep reaching them.
    let dbs: Vec<Database> = if isolate_dbs || opts.egress { discover::databases(inventory) } else { Vec::new() };
    let usage = owners::usage(inventory, &dbs);
    let services = ServiceIndex::new(inventory);
    let selecting: Vec<Vec<&meshmove_model::inventory::Object>> = ws.iter().map(|w| services.selecting(w)).collect();
    let svc_ports: Vec<BTreeSet<Port>> = selecting.iter().map(|ss| ss.iter().flat_map(|s| target_ports(s)).collect()).collect();
    let callers = clients::service_callers(&ws, &usage, &selecting);
    let exposed = rules::exposed_services(inventory);
    let direct = clients::direct_to_pods(inventory);
    let outside = egress::Outside::new(&usage);
    let is_db = |w: &Workload<'_>| dbs.iter().any(|d| d.object == w.object.object_ref());
    let ambient_ns = |ns: &str| match req.mode {
        Some(m) => m == MeshMode::Ambient,
        None => clients::namespace_is_ambient(inventory, ns),
    };
    let sidecar = req.mode == Some(MeshMode::Sidecar);
    // The release's own Service ports, where its egress rules reach it by its label.
    let egress_ports: Vec<BTreeSet<Port>> =
        svc_ports.iter().zip(&is_context).map(|(p, ctx)| if *ctx { BTreeSet::new() } else { p.clone() }).collect();
    // The input's engine model: who carries a sidecar when the mode is read from the input, and
    // the proof's before.
    let model = view::build(inventory, ModelOptions { probes: false });
    let with_sidecar: HashSet<WorkloadRef> = if req.mode.is_none() && opts.egress {
        model.cluster.pods.iter().filter(|p| p.sidecar).map(|p| p.workload()).collect()
    } else {
        HashSet::new()
    };

    let mut out = Generation::default();
    // Monitoring and operator namespaces a live input shows do not exist are warned about.
    let monitoring: Vec<String> = opts
        .monitoring_namespaces
        .iter()
        .filter(|ns| {
            let exists = namespace_exists(inventory, ns) != Some(false);
            if !exists {
                out.notes.push(format!("monitoring namespace {ns} does not exist: no metrics port is opened to it"));
            }
            exists
        })
        .cloned()
        .collect();
    if dbs.iter().any(|d| d.cnpg) && namespace_exists(inventory, &opts.cnpg_operator_namespace) == Some(false) {
        out.notes.push(format!(
            "the CloudNativePG operator namespace {} does not exist: the policies admit the operator from it; set cnpgOperatorNamespace to where the operator runs",
            opts.cnpg_operator_namespace
        ));
    }

    // Clients of the release: one selector when every non-database workload carries the
    // release label, else only the callers the input shows.
    let release_clients: Vec<&Workload<'_>> = ws.iter().zip(&is_context).filter(|(w, ctx)| !**ctx && !is_db(w)).map(|(w, _)| w).collect();
    let all_labelled = !req.release.is_empty()
        && !release_clients.is_empty()
        && release_clients.iter().all(|w| w.pod_labels().get(RELEASE_LABEL).is_some_and(|r| r == req.release));

    let mut drafts: Vec<Draft> = Vec::new();
    let mut uses: Vec<Use> = Vec::new();
    let isolate_anyway = |name: &str| opts.isolate_anyway.iter().any(|n| n == name);

    let client_index = clients::ClientIndex::new(&ws, &usage, &dbs);
    // The CloudNativePG clusters each workload references: their pods and Services are the
    // operator's, not the input's, so no Service call shows them and egress names them itself.
    let cnpg_of = |w: &Workload<'_>| -> Vec<&Database> {
        let object = w.object.object_ref();
        dbs.iter().filter(|d| d.cnpg && client_index.references(&d.object).iter().any(|r| r.workload == object)).collect()
    };
    let egress_draft = |w: &Workload<'_>, i: usize, me: &WorkloadRef, ambient: bool, drafts: &mut Vec<Draft>, uses: &mut Vec<Use>, out: &mut Generation| {
        let with_istiod = match req.mode {
            Some(m) => m == MeshMode::Sidecar,
            None => with_sidecar.contains(me),
        };
        let forced = opts.isolate_anyway.iter().any(|n| n == w.name());
        let context = egress::Context { svc_ports: &egress_ports, callers: &callers, all_labelled, outside: &outside };
        match egress::plan(&ws, &context, i, req, ambient, with_istiod, &cnpg_of(w), me, forced) {
            Ok(plan) => {
                let mut spec = Map::new();
                spec.insert("podSelector".into(), pod_selector(w));
                spec.insert("egress".into(), Value::Array(plan.rules));
                uses.extend(plan.uses);
                let release = if req.subjects == Subjects::Databases { "dbiso" } else { req.release };
                drafts.push(Draft {
                    subject: w.object.object_ref(),
                    ambient,
                    engine_ref: me.clone(),
                    protects: short(w),
                    namespace: w.namespace().to_string(),
                    name: named_policy(release, w.name(), EGRESS_SUFFIX),
                    egress: true,
                    spec,
                    admits: plan.admits,
                });
            }
            Err(open) => out.withheld.push(Withheld {
                subject: short(w),
                namespace: w.namespace().to_string(),
                reason: open.reason,
                isolate_with: open.isolate_with,
                egress: true,
            }),
        }
    };
    if req.subjects == Subjects::Release {
        for (i, w) in ws.iter().enumerate() {
            if is_context[i] || is_db(w) || is_hook(w) || w.pod_labels().contains_key(meshmove_model::cnpg::CLUSTER_LABEL) {
                continue;
            }
            let ns = w.namespace();
            // A connection with a workload of another release: the release's policies admit its
            // own workloads only, so isolating this one would cut it.
            let across = callers[i].iter().find(|c| is_context[c.client]).map(|c| (&ws[c.client], "is called by", &c.via)).or_else(|| {
                callers.iter().enumerate().filter(|(t, _)| opts.egress && is_context[*t]).find_map(|(t, calls)| {
                    calls.iter().find(|c| c.client == i).map(|c| (&ws[t], "calls", &c.via))
                })
            });
            if let Some((other, how, via)) = across {
                out.withheld.push(across_releases(short(w), ns, how, other, via, req.release));
                continue;
            }
            let ambient = ambient_ns(ns);
            let me = view::workload_ref(w.object);
            // Egress first: it does not depend on whether the ingress side can be isolated.
            if opts.egress {
                egress_draft(w, i, &me, ambient, &mut drafts, &mut uses, &mut out);
            }
            let ports = port_numbers(&svc_ports[i], Some(w));
            let port_json: Vec<Value> = svc_ports[i].iter().map(Port::json).collect();
            let mut rules: Vec<Value> = Vec::new();
            let mut admits: Vec<String> = Vec::new();
            let ports_text = ports.iter().map(|p| format!("TCP {p}")).collect::<Vec<_>>().join(", ");
            uses.extend(call_uses(&ws, w, &me, &callers[i]));
            if !port_json.is_empty() {
                let peers: Vec<Value> = if all_labelled {
                    admits.push(format!("the workloads of release {} on {ports_text}", req.release));
                    vec![json!({"podSelector": {"matchLabels": {RELEASE_LABEL: req.release}}})]
                } else {
                    let mut seen = BTreeSet::new();
                    callers[i]
                        .iter()
                        .filter(|c| seen.insert(c.client))
                        .map(|c| {
                            admits.push(format!("{} on {ports_text}", short(&ws[c.client])));
                            workload_peer(&ws[c.client], ns)
                        })
                        .collect()
                };
                let exposed_ports: BTreeSet<Port> = selecting[i]
                    .iter()
                    .filter(|s| exposed.contains(&(s.namespace.clone().unwrap_or_default(), s.name.clone())))
                    .flat_map(|s| target_ports(s))
                    .collect();
                let known = all_labelled || !peers.is_empty() || !exposed_ports.is_empty();
                // A load balancer that targets pod IPs comes from addresses the input does not
                // show; without them, isolating the workload would cut its external traffic.
                let direct_ports: BTreeSet<Port> = selecting[i]
                    .iter()
                    .filter(|s| direct.contains(&(s.namespace.clone().unwrap_or_default(), s.name.clone())))
                    .flat_map(|s| target_ports(s))
                    .collect();
                if !direct_ports.is_empty() && opts.ingress_ip_blocks.is_empty() && !isolate_anyway(w.name()) {
                    out.withheld.push(Withheld {
                        subject: short(w),
                        namespace: ns.to_string(),
                        reason: "an Ingress with alb.ingress.kubernetes.io/target-type: ip sends to its pods from the load balancer's addresses, which the input does not show".into(),
                        isolate_with: if alone { authz_only::anyway(w.name()) } else { "networkPolicies.ingressIpBlocks: [<the VPC CIDRs>]".into() },
                        egress: false,
                    });
                    continue;
                }
                if !known && !isolate_anyway(w.name()) {
                    let names: Vec<&str> = selecting[i].iter().map(|s| s.name.as_str()).collect();
                    out.withheld.push(Withheld {
                        subject: short(w),
                        namespace: ns.to_string(),
                        reason: format!(
                            "its callers are unknown: no workload in the input names its Service {} and nothing exposes it",
                            names.join(", ")
                        ),
                        isolate_with: if alone { authz_only::anyway(w.name()) } else { format!("networkPolicies.isolateAnyway: [{}]", w.name()) },
                        egress: false,
                    });
                    continue;
                }
                if !peers.is_empty() {
                    rules.push(json!({"from": peers, "ports": with_hbone(port_json.clone(), ambient)}));
                }
                if !direct_ports.is_empty() && !opts.ingress_ip_blocks.is_empty() {
                    admits.push(format!("load balancer addresses {} on the exposed ports", opts.ingress_ip_blocks.join(", ")));
                    let blocks: Vec<Value> = opts.ingress_ip_blocks.iter().map(|c| json!({"ipBlock": {"cidr": c}})).collect();
                    rules.push(json!({"from": blocks, "ports": with_hbone(direct_ports.iter().map(Port::json).collect(), ambient)}));
                }
                if !exposed_ports.is_empty() && !opts.ingress_namespaces.is_empty() {
                    let exposed_numbers = port_numbers(&exposed_ports, Some(w));
                    admits.push(format!("ingress namespaces {} on the exposed ports", opts.ingress_namespaces.join(", ")));
                    rules.push(json!({
                        "from": [{"namespaceSelector": namespaces_selector(&opts.ingress_namespaces)}],
                        "ports": with_hbone(exposed_ports.iter().map(Port::json).collect(), ambient),
                    }));
                    for ingress_ns in &opts.ingress_namespaces {
                        uses.push(Use {
                            from: From::Namespace { namespace: ingress_ns.clone(), labels: BTreeMap::new() },
                            from_name: format!("namespace {ingress_ns}"),
                            to: To::Workload(me.clone()),
                            ports: exposed_numbers.clone(),
                            why: "the workload is exposed (Ingress, VirtualService or HTTPRoute)".into(),
                            violation: None,
                        });
                    }
                }
            }
            let mut scraped: BTreeSet<u16> = clients::monitored_ports(inventory, w, &selecting[i]);
            scraped.extend(clients::scrape_port(w));
            if !scraped.is_empty() && !monitoring.is_empty() {
                let shown: Vec<String> = scraped.iter().map(|p| format!("TCP {p}")).collect();
                admits.push(format!(
                    "monitoring namespaces {} on {} (prometheus.io/port, ServiceMonitor, PodMonitor)",
                    monitoring.join(", "),
                    shown.join(", ")
                ));
                rules.push(json!({
                    "from": [{"namespaceSelector": namespaces_selector(&monitoring)}],
                    "ports": with_hbone(scraped.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient),
                }));
                for m in &monitoring {
                    uses.push(Use {
                        from: From::Namespace { namespace: m.clone(), labels: BTreeMap::new() },
                        from_name: format!("monitoring in namespace {m}"),
                        to: To::Workload(me.clone()),
                        ports: scraped.iter().copied().collect(),
                        why: "Prometheus scrapes it (prometheus.io/port, ServiceMonitor or PodMonitor)".into(),
                        violation: None,
                    });
                }
            }
            mesh_rules(&mut rules, &mut admits, ambient, sidecar, &monitoring);
            let mut spec = Map::new();
            spec.insert("podSelector".into(), pod_selector(w));
            spec.insert("ingress".into(), Value::Array(rules));
            drafts.push(Draft {
                subject: w.object.object_ref(),
                ambient,
                engine_ref: me,
                protects: short(w),
                namespace: ns.to_string(),
                name: policy_name(req.release, w.name()),
                egress: false,
                spec,
                admits,
            });
        }
    }

    // `dbiso --egress`: the workloads' egress, beside the databases' ingress. The Service calls
    // the input shows are uses the proof must see kept (the release path records them for its
    // ingress side); calls to databases are the database loop's, violations included.
    if req.subjects == Subjects::Databases && opts.egress {
        for (i, w) in ws.iter().enumerate() {
            if is_db(w) {
                continue;
            }
            let me = view::workload_ref(w.object);
            uses.extend(call_uses(&ws, w, &me, &callers[i]));
        }
        for (i, w) in ws.iter().enumerate() {
            if is_context[i] || is_db(w) || is_hook(w) || w.pod_labels().contains_key(meshmove_model::cnpg::CLUSTER_LABEL) {
                continue;
            }
            let me = view::workload_ref(w.object);
            egress_draft(w, i, &me, ambient_ns(w.namespace()), &mut drafts, &mut uses, &mut out);
        }
    }

    // With egress isolation, every reference to a database the loop below leaves unrestricted
    // is a use the egress proof must see kept.
    let ws_index: std::collections::HashMap<ObjectRef, usize> =
        if opts.egress { ws.iter().enumerate().map(|(i, w)| (w.object.object_ref(), i)).collect() } else { Default::default() };
    let reference_uses = |db: &Database, uses: &mut Vec<Use>| {
        if !opts.egress {
            return;
        }
        for r in client_index.references(&db.object) {
            let Some(client) = ws_index.get(&r.workload).map(|&i| &ws[i]) else { continue };
            uses.push(Use {
                from: From::Workload(view::workload_ref(client.object)),
                from_name: short(client),
                to: To::Workload(db.workload_ref()),
                ports: db.ports.clone(),
                why: r.via.clone(),
                violation: None,
            });
        }
    };
    for db in &dbs {
        if context.contains(&db.object) {
            continue;
        }
        if !isolate_dbs {
            reference_uses(db, &mut uses);
            continue;
        }
        let configured_owner = opts.database_owners.get(&db.object.name).map(String::as_str);
        let found = client_index.database_clients(db, configured_owner);
        let ns = db.namespace().to_string();
        let ambient = ambient_ns(&ns);
        let me = db.workload_ref();
        let protects = if db.cnpg { format!("Cluster/{}", db.object.name) } else { format!("{}/{}", db.object.kind, db.object.name) };
        if let Some((c, via)) = found.admitted.iter().find(|(c, _)| is_context[*c]) {
            out.withheld.push(across_releases(protects, &ns, "is used by", &ws[*c], via, req.release));
            continue;
        }
        let configured: Vec<&DatabaseClient> = opts.database_clients.iter().filter(|c| c.database == db.object.name).collect();
        let forced = isolate_anyway(&db.object.name);
        let name = &db.object.name;
        let isolate_with = if found.shared_without_owner {
            format!(
                "networkPolicies.databaseOwners: {{{name}: <owner service>}} to admit the owner and cut the others, or \
                 networkPolicies.isolateAnyway: [{name}] to admit every service that uses it (dbiso: --owner {name}=SERVICE or --isolate {name})"
            )
        } else {
            format!("networkPolicies.isolateAnyway: [{name}] (dbiso: --isolate {name})")
        };
        let withhold = |reason: String, out: &mut Generation| {
            out.withheld.push(Withheld { subject: protects.clone(), namespace: ns.clone(), reason, isolate_with: isolate_with.clone(), egress: false })
        };
        if !found.unknown.is_empty() && !forced {
            withhold(format!("its clients cannot all be established: {}", found.unknown.join("; ")), &mut out);
            reference_uses(db, &mut uses);
            continue;
        }
        if found.admitted.is_empty() && configured.is_empty() && !forced {
            withhold("no workload references it, so its policy would admit no client".into(), &mut out);
            reference_uses(db, &mut uses);
            continue;
        }
        let ports: Vec<Value> = with_hbone(db.ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient);
        let ports_text = db.ports.iter().map(|p| format!("TCP {p}")).collect::<Vec<_>>().join(", ");
        let mut admits = Vec::new();
        let mut peers: Vec<Value> = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, via) in &found.admitted {
            let client = &ws[*i];
            uses.push(Use {
                from: From::Workload(view::workload_ref(client.object)),
                from_name: short(client),
                to: To::Workload(me.clone()),
                ports: db.ports.clone(),
                why: via.clone(),
                violation: None,
            });
            if seen.insert(*i) {
                admits.push(format!("{} on {ports_text}", short(client)));
                peers.push(workload_peer(client, &ns));
            }
        }
        for (i, reason) in &found.violators {
            let client = &ws[*i];
            uses.push(Use {
                from: From::Workload(view::workload_ref(client.object)),
                from_name: short(client),
                to: To::Workload(me.clone()),
                ports: db.ports.clone(),
                why: reason.clone(),
                violation: Some(reason.clone()),
            });
        }
        for c in &configured {
            let mut peer = Map::new();
            if let Some(cns) = &c.namespace {
                peer.insert("namespaceSelector".into(), namespaces_selector(std::slice::from_ref(cns)));
            }
            peer.insert("podSelector".into(), c.pod_selector.json());
            admits.push(format!("configured client {} on {ports_text}", serde_json::to_string(&c.pod_selector.json()).unwrap_or_default()));
            peers.push(Value::Object(peer));
        }
        let mut rules = Vec::new();
        if !peers.is_empty() {
            rules.push(json!({"from": peers, "ports": ports}));
        }
        if db.cnpg {
            // CloudNativePG's operator reaches every instance on the instance manager's status
            // port and on PostgreSQL; instances replicate to each other
            // (https://cloudnative-pg.io/documentation/current/networking/).
            let operator_ports = [meshmove_model::cnpg::POSTGRES_PORT, CNPG_STATUS_PORT];
            admits.push(format!("the CloudNativePG operator (namespace {}) on TCP 5432, 8000", opts.cnpg_operator_namespace));
            rules.push(json!({
                "from": [{"namespaceSelector": namespaces_selector(std::slice::from_ref(&opts.cnpg_operator_namespace)),
                          "podSelector": {"matchLabels": BTreeMap::from(CNPG_OPERATOR_LABELS)}}],
                "ports": with_hbone(operator_ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient),
            }));
            uses.push(Use {
                from: From::Namespace {
                    namespace: opts.cnpg_operator_namespace.clone(),
                    labels: CNPG_OPERATOR_LABELS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                },
                from_name: format!("the CloudNativePG operator ({})", opts.cnpg_operator_namespace),
                to: To::Workload(me.clone()),
                ports: operator_ports.to_vec(),
                why: "the operator manages the instances".into(),
                violation: None,
            });
            admits.push("the cluster's own instances (replication)".into());
            rules.push(json!({"from": [{"podSelector": {"matchLabels": db.pod_labels}}]}));
        }
        if !db.metrics_ports.is_empty() && !monitoring.is_empty() {
            admits.push(format!("monitoring namespaces {} on the metrics ports", monitoring.join(", ")));
            rules.push(json!({
                "from": [{"namespaceSelector": namespaces_selector(&monitoring)}],
                "ports": with_hbone(db.metrics_ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient),
            }));
        }
        mesh_rules(&mut rules, &mut admits, ambient, sidecar, &monitoring);
        let selector = match ws.iter().find(|w| !db.cnpg && w.object.object_ref() == db.object) {
            Some(w) => pod_selector(w),
            None => json!({"matchLabels": db.pod_labels}),
        };
        let mut spec = Map::new();
        spec.insert("podSelector".into(), selector);
        spec.insert("ingress".into(), Value::Array(rules));
        let name = match req.subjects {
            Subjects::Release => policy_name(req.release, &db.object.name),
            Subjects::Databases => {
                let clash = dbs.iter().filter(|d| d.namespace() == db.namespace() && d.object.name == db.object.name).count() > 1;
                if clash {
                    generated_name(&format!("dbiso-{}-{}", db.object.kind.to_ascii_lowercase(), db.object.name))
                } else {
                    generated_name(&format!("dbiso-{}", db.object.name))
                }
            }
        };
        drafts.push(Draft { subject: db.object.clone(), ambient, engine_ref: me, protects, namespace: ns, name, egress: false, spec, admits });
    }

    // Prove: the input's engine model, before and with the candidates.
    if let Output::AuthorizationPolicies { mesh_root } = output {
        let mut model = model;
        model.cluster.istio_root_namespace = Some(mesh_root.to_string());
        authz_only::finish(drafts, &ws, req, &model.cluster, &uses, &mut out);
        unique_names(&mut out.policies, req.release);
        out.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out.withheld.sort_by(|a, b| (&a.namespace, &a.subject).cmp(&(&b.namespace, &b.subject)));
        return out;
    }
    let candidates: Vec<Candidate> =
        drafts.iter().map(|d| Candidate { subject: d.engine_ref.clone(), policy: typed(d, req), egress: d.egress }).collect();
    let verdict = proof::prove(&model.cluster, &candidates, &uses);
    for (i, d) in drafts.into_iter().enumerate() {
        if let Some(why) = verdict.overridden.get(&i) {
            out.withheld.push(Withheld {
                subject: d.protects.clone(),
                namespace: d.namespace.clone(),
                reason: format!("no NetworkPolicy can isolate it: AdminNetworkPolicy rules come before NetworkPolicy and {why}"),
                isolate_with: "change that AdminNetworkPolicy rule (Deny, or Pass to leave the traffic to NetworkPolicy), then generate again".into(),
                egress: false,
            });
            continue;
        }
        if let Some((u, ports)) = verdict.withhold.get(&i) {
            let reason = match uses.get(*u) {
                Some(u) => format!(
                    "its policy would cut {} -> {} on {} ({}), a connection the input shows in use",
                    u.from_name,
                    d.protects,
                    proof::ports_text(ports),
                    u.why
                ),
                None => "the reachability engine could not build the input with its policy".into(),
            };
            let reason = if d.egress { format!("egress stays open: {reason}") } else { reason };
            out.withheld.push(Withheld {
                subject: d.protects.clone(),
                namespace: d.namespace.clone(),
                reason,
                isolate_with: "add the connection to the policy by hand (the generator never cuts a connection it sees in use)".into(),
                egress: d.egress,
            });
            continue;
        }
        let object = policy_object(&d, req);
        // ztunnel's AuthorizationPolicy goes with the ingress side only.
        let authorization = if d.ambient && !d.egress {
            let subject = ws.iter().find(|w| w.object.object_ref() == d.subject);
            match authz::companion(&d.name, &d.namespace, &req.labels, &d.spec, subject, &ws, req.namespace) {
                Ok(ap) => Some(ap),
                Err(why) => {
                    out.notes.push(format!(
                        "{}: no AuthorizationPolicy goes with its NetworkPolicy ({why}): peers it admits reach every port of it through the ambient tunnel",
                        d.protects
                    ));
                    None
                }
            }
        } else {
            None
        };
        out.policies.push(Generated {
            name: d.name,
            namespace: d.namespace,
            object,
            protects: d.protects,
            subject: d.subject,
            admits: d.admits,
            egress: d.egress,
            authorization,
        });
    }
    prove_companions(&model.cluster, &candidates, &verdict, &uses, &mut out);
    for (u, ports) in &verdict.cut {
        let u = &uses[*u];
        out.cuts.push(Cut {
            from: u.from_name.clone(),
            to: u.to.to_string(),
            ports: ports.clone(),
            reason: u.violation.clone().unwrap_or_default(),
            keep_with: format!(
                "networkPolicies.databaseClients: [{{database: {}, podSelector: {{matchLabels: ...}}}}] (dbiso: fix the violation, or --isolate only the databases you mean)",
                match &u.to {
                    To::Workload(w) => w.name.as_str(),
                    To::External(_) => "",
                }
            ),
        });
    }
    unique_names(&mut out.policies, req.release);
    out.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.withheld.sort_by(|a, b| (&a.namespace, &a.subject).cmp(&(&b.namespace, &b.subject)));
    out
}

/// Why a workload with a connection to a workload of another release of the stream gets no
/// policy, and how to isolate it anyway.
fn across_releases(subject: String, namespace: &str, how: &str, other: &Workload<'_>, via: &str, release: &str) -> Withheld {
    let theirs = release_label(other.object).map(|r| format!(" of release {r}")).unwrap_or_else(|| " of another release".into());
    Withheld {
        subject,
        namespace: namespace.to_string(),
        reason: format!(
            "it {how} {}{theirs} ({via}), and the policies of release {release} admit its own workloads only: isolating it would cut that connection",
            short(other)
        ),
        isolate_with: "post-render the releases as one release (--release NAME, or release: NAME in the configuration): callers are then admitted across releases".into(),
        egress: false,
    }
}

/// Withhold the ambient AuthorizationPolicy companions the engine cannot show to keep every
/// connection in use ([`authz_proof`]), each with a note saying which connection and why.
fn prove_companions(model: &meshmove_netpol::ClusterModel, candidates: &[Candidate], verdict: &proof::Verdict, uses: &[Use], out: &mut Generation) {
    if out.policies.iter().all(|g| g.authorization.is_none()) {
        return;
    }
    let policies: Vec<NetworkPolicy> = candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| !verdict.withhold.contains_key(i) && !verdict.overridden.contains_key(i))
        .map(|(_, c)| c.policy.clone())
        .collect();
    let mut at: Vec<usize> = Vec::new();
    let mut companions: Vec<authz_proof::Companion> = Vec::new();
    for (gi, g) in out.policies.iter().enumerate() {
        let Some(ap) = &g.authorization else { continue };
        let Some(c) = candidates.iter().find(|c| {
            c.policy.metadata.name.as_deref() == Some(g.name.as_str()) && c.subject.kind.as_str() == g.subject.kind && c.subject.name == g.subject.name
        }) else {
            continue;
        };
        let mut policy = ap.clone();
        if let Some(meta) = policy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(c.subject.namespace));
        }
        at.push(gi);
        companions.push(authz_proof::Companion { subject: c.subject.clone(), policy });
    }
    for (ci, (ui, ports)) in authz_proof::prove(model, &policies, &companions, uses) {
        let g = &mut out.policies[at[ci]];
        g.authorization = None;
        let why = match uses.get(ui) {
            Some(u) => format!(
                "it would cut {} -> {} on {} ({}), a connection the input shows in use",
                u.from_name,
                g.protects,
                proof::ports_text(&ports),
                u.why
            ),
            None => "the reachability engine could not build the input with it".into(),
        };
        out.notes.push(format!(
            "{}: no AuthorizationPolicy goes with its NetworkPolicy ({why}): peers it admits reach every port of it through the ambient tunnel",
            g.protects
        ));
    }
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

/// The spec's `policyTypes` and the whole object, as it will be written.
fn policy_object(d: &Draft, req: &Request<'_>) -> Value {
    // podSelector, policyTypes, then the rules: the order people write them in.
    let types = vec![json!(if d.egress { "Egress" } else { "Ingress" })];
    let mut spec = Map::new();
    spec.insert("podSelector".into(), d.spec.get("podSelector").cloned().unwrap_or_else(|| json!({})));
    spec.insert("policyTypes".into(), Value::Array(types));
    for (k, v) in d.spec.iter().filter(|(k, _)| k.as_str() != "podSelector") {
        spec.insert(k.clone(), v.clone());
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(d.name));
    if !d.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(d.namespace));
    }
    metadata.insert("labels".into(), req.labels.clone());
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!("networking.k8s.io/v1"));
    object.insert("kind".into(), json!("NetworkPolicy"));
    object.insert("metadata".into(), Value::Object(metadata));
    object.insert("spec".into(), Value::Object(spec));
    Value::Object(object)
}

/// The candidate in the engine's types, in its namespace as the engine's model names it.
fn typed(d: &Draft, req: &Request<'_>) -> NetworkPolicy {
    let mut np: NetworkPolicy = serde_json::from_value(policy_object(d, req)).unwrap_or_default();
    np.metadata.namespace = Some(d.engine_ref.namespace.clone());
    np
}

/// Name endings of the two kinds of generated policy.
pub const INGRESS_SUFFIX: &str = "ingress";
pub const EGRESS_SUFFIX: &str = "egress";

/// `<release>-<workload>-ingress`, without doubling a release prefix the workload already has,
/// a valid name of at most 63 characters ([`generated_name`]).
pub fn policy_name(release: &str, workload: &str) -> String {
    named_policy(release, workload, INGRESS_SUFFIX)
}

/// `<release>-<workload>-<suffix>` ([`policy_name`] for `ingress`, the egress policy's name for
/// `egress`).
pub fn named_policy(release: &str, workload: &str, suffix: &str) -> String {
    let base = if release.is_empty() || workload == release || workload.starts_with(&format!("{release}-")) {
        workload.to_string()
    } else {
        format!("{release}-{workload}")
    };
    meshmove_model::names::generated_name_ending(&base, suffix)
}

/// Two objects of different kinds may share a name (a Deployment and a StatefulSet `api`, a
/// workload and a CloudNativePG cluster), and so would their policies: a release holding two
/// NetworkPolicies of one name does not install. The first keeps the name; later ones get their
/// kind in it.
fn unique_names(out: &mut [Generated], release: &str) {
    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for g in out.iter_mut() {
        if taken.insert((g.namespace.clone(), g.name.clone())) {
            continue;
        }
        let (kind, name) = g.protects.split_once('/').unwrap_or(("", g.protects.as_str()));
        let base = format!("{name}-{}", kind.to_ascii_lowercase());
        let suffix = if g.object.get("kind").and_then(Value::as_str) == Some("AuthorizationPolicy") {
            authz_only::AUTHZ_SUFFIX
        } else if g.egress {
            EGRESS_SUFFIX
        } else {
            INGRESS_SUFFIX
        };
        let mut candidate = named_policy(release, &base, suffix);
        let mut n = 2;
        while taken.contains(&(g.namespace.clone(), candidate.clone())) {
            candidate = named_policy(release, &format!("{base}-{n}"), suffix);
            n += 1;
        }
        taken.insert((g.namespace.clone(), candidate.clone()));
        for object in std::iter::once(&mut g.object).chain(g.authorization.as_mut()) {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), json!(candidate));
            }
        }
        g.name = candidate;
    }
}

/// The release name the stream belongs to: the most common `app.kubernetes.io/instance` label
/// (then Helm's older `release` label) of its workloads.
pub fn infer_release(inventory: &Inventory) -> Option<String> {
    let ws = workloads(inventory);
    most_common_first(ws.iter().filter_map(|w| release_label(w.object))).into_iter().next().map(|(name, _)| name)
}

/// The release an object says it belongs to: its `app.kubernetes.io/instance` label, else Helm's
/// older `release` label.
pub fn release_label(object: &meshmove_model::inventory::Object) -> Option<&str> {
    release_label_of(&object.value)
}

/// [`release_label`] of an object's value (for callers that have not built the object).
pub fn release_label_of(value: &Value) -> Option<&str> {
    let labels = value.get("metadata")?.get("labels")?;
    labels.get(RELEASE_LABEL).and_then(Value::as_str).or_else(|| labels.get("release")?.as_str())
}

/// Distinct names with their counts, the most common first, ties by name.
pub fn most_common_first<'a>(names: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().map(|(name, n)| (name.to_string(), n)).collect();
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod authz_only_tests;
