//! One generation run, in three phases: the input's facts are read once ([`Facts`]); candidate
//! policies are drafted per workload ([`super::workloads`]) and per database
//! ([`super::databases`]); then the engine proves them and what survives is emitted
//! ([`super::emit`]).

use std::collections::{BTreeSet, HashSet};

use meshmove_istio::MeshMode;
use meshmove_model::inventory::{Inventory, Object, ObjectRef};
use meshmove_model::workload::{Workload, workloads};
use meshmove_netpol::WorkloadRef;
use meshmove_netpol::view::{self, ModelOptions};
use serde_json::{Map, Value};

use super::clients::{self, Call, ClientIndex, is_hook};
use super::proof::Use;
use super::rules::{Port, ServiceIndex, pod_selector, target_ports};
use super::{Draft, EGRESS_SUFFIX, Generation, Output, RELEASE_LABEL, Request, Subjects, Withheld, egress, emit, named_policy, release_label, short};
use crate::discover::{self, Database};
use crate::owners::{self, Usage};

/// What every phase of a run reads: the input's facts, computed once.
pub(super) struct Facts<'a> {
    pub inventory: &'a Inventory,
    pub req: &'a Request<'a>,
    /// Workloads of other releases of one stream ([`super::generate_with_context`]).
    pub context: &'a HashSet<ObjectRef>,
    pub ws: Vec<Workload<'a>>,
    /// Per workload: it belongs to `context` (a client and callee only, never a subject).
    pub is_context: Vec<bool>,
    pub dbs: Vec<Database>,
    pub usage: Usage,
    /// Per workload: the Services selecting its pods, and their target ports.
    pub selecting: Vec<Vec<&'a Object>>,
    pub svc_ports: Vec<BTreeSet<Port>>,
    /// Per workload: the Service calls into it the input shows.
    pub callers: Vec<Vec<Call>>,
    /// The routes into each Service (Ingress, VirtualService, HTTPRoute) and where their
    /// traffic comes from, by `(namespace, name)`; and the Services a load balancer reaches by
    /// pod IP.
    pub exposures: std::collections::BTreeMap<(String, String), Vec<super::gateways::Exposure>>,
    pub direct: BTreeSet<(String, String)>,
    /// The release's own Service ports, where its egress rules reach it by its label (empty for
    /// workloads of other releases).
    pub egress_ports: Vec<BTreeSet<Port>>,
    /// Workloads with a sidecar, when the mode is read from the input and egress is isolated.
    pub with_sidecar: HashSet<WorkloadRef>,
    /// The configured monitoring namespaces that may exist.
    pub monitoring: Vec<String>,
    /// Every non-database workload of the release carries its label: one peer admits them all.
    pub all_labelled: bool,
    /// Per workload: the ambient waypoint its traffic goes through, when one is bound.
    pub hops: Vec<Option<super::waypoints::Hop>>,
    /// Whether the run emits AuthorizationPolicies alone (`enable --authz`).
    pub alone: bool,
    pub isolate_dbs: bool,
    pub sidecar: bool,
}

impl<'a> Facts<'a> {
    /// Read the input once; notes on the configuration (namespaces it names that a live input
    /// shows do not exist) go to `out`.
    fn new(
        inventory: &'a Inventory,
        req: &'a Request<'a>,
        context: &'a HashSet<ObjectRef>,
        output: Output<'_>,
        model: &view::Model,
        out: &mut Generation,
    ) -> Self {
        let opts = req.options;
        let ws = workloads(inventory);
        let is_context: Vec<bool> = ws.iter().map(|w| !context.is_empty() && context.contains(&w.object.object_ref())).collect();
        let isolate_dbs = opts.database_isolation || req.subjects == Subjects::Databases;
        // Egress isolation needs the databases too: their clients must keep reaching them.
        let dbs: Vec<Database> = if isolate_dbs || opts.egress { discover::databases(inventory) } else { Vec::new() };
        let usage = owners::usage(inventory, &dbs);
        let services = ServiceIndex::new(inventory);
        let selecting: Vec<Vec<&Object>> = ws.iter().map(|w| services.selecting(w)).collect();
        let svc_ports: Vec<BTreeSet<Port>> = selecting.iter().map(|ss| ss.iter().flat_map(|s| target_ports(s)).collect()).collect();
        let callers = clients::service_callers(&ws, &usage, &selecting);
        let hops = super::waypoints::hops(inventory, &ws, &selecting);
        let egress_ports = svc_ports.iter().zip(&is_context).map(|(p, ctx)| if *ctx { BTreeSet::new() } else { p.clone() }).collect();
        let with_sidecar: HashSet<WorkloadRef> = if req.mode.is_none() && opts.egress {
            model.cluster.pods.iter().filter(|p| p.sidecar).map(|p| p.workload()).collect()
        } else {
            HashSet::new()
        };
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
        let is_db = |w: &Workload<'_>| dbs.iter().any(|d| d.object == w.object.object_ref());
        // Clients of the release: one selector when every non-database workload carries the
        // release label, else only the callers the input shows.
        let release_clients: Vec<&Workload<'_>> = ws.iter().zip(&is_context).filter(|(w, ctx)| !**ctx && !is_db(w)).map(|(w, _)| w).collect();
        let all_labelled = !req.release.is_empty()
            && !release_clients.is_empty()
            && release_clients.iter().all(|w| w.pod_labels().get(RELEASE_LABEL).is_some_and(|r| r == req.release));
        Facts {
            inventory,
            req,
            context,
            is_context,
            dbs,
            usage,
            svc_ports,
            callers,
            exposures: super::gateways::exposures(inventory, &ws, &opts.ingress_namespaces),
            direct: clients::direct_to_pods(inventory),
            egress_ports,
            with_sidecar,
            monitoring,
            all_labelled,
            hops,
            alone: output != Output::NetworkPolicies,
            isolate_dbs,
            sidecar: req.mode == Some(MeshMode::Sidecar),
            selecting,
            ws,
        }
    }
}

/// Whether `namespace` exists as far as the input can tell: only a cluster's list of Namespaces
/// says (files hold the release's own Namespaces at most).
fn namespace_exists(inventory: &Inventory, namespace: &str) -> Option<bool> {
    use meshmove_model::inventory::kinds;
    (inventory.is_live() && inventory.has(&kinds::NAMESPACE)).then(|| inventory.get(&kinds::NAMESPACE, None, namespace).is_some())
}

/// The candidates drafted so far and the connections in use the proof must keep.
#[derive(Default)]
pub(super) struct Drafts {
    pub drafts: Vec<Draft>,
    pub uses: Vec<Use>,
}

/// The drafting phase: the facts, and the indexes over them.
pub(super) struct Run<'f, 'a> {
    pub f: &'f Facts<'a>,
    pub client_index: ClientIndex<'f, 'a>,
    outside: egress::Outside<'f>,
}

impl<'f, 'a> Run<'f, 'a> {
    pub fn is_db(&self, w: &Workload<'_>) -> bool {
        self.f.dbs.iter().any(|d| d.object == w.object.object_ref())
    }

    /// A workload the run never makes a subject: another release's, a database (its own
    /// loop), a Helm hook, or a CloudNativePG instance (the operator's).
    pub fn skipped(&self, i: usize, w: &Workload<'_>) -> bool {
        self.f.is_context[i] || self.is_db(w) || is_hook(w) || w.pod_labels().contains_key(meshmove_model::cnpg::CLUSTER_LABEL)
    }

    /// The data-plane mode of `namespace`: the request's, else the namespace's label.
    pub fn ambient(&self, namespace: &str) -> bool {
        match self.f.req.mode {
            Some(m) => m == MeshMode::Ambient,
            None => clients::namespace_is_ambient(self.f.inventory, namespace),
        }
    }

    pub fn isolate_anyway(&self, name: &str) -> bool {
        self.f.req.options.isolate_anyway.iter().any(|n| n == name)
    }

    /// The CloudNativePG clusters `w` references: their pods and Services are the operator's,
    /// not the input's, so no Service call shows them and egress names them itself.
    fn cnpg_of(&self, w: &Workload<'_>) -> Vec<&'f Database> {
        let object = w.object.object_ref();
        self.f.dbs.iter().filter(|d| d.cnpg && self.client_index.references(&d.object).iter().any(|r| r.workload == object)).collect()
    }

    /// The egress candidate of workload `i`, or why its egress stays open.
    pub fn egress_draft(&self, w: &Workload<'_>, i: usize, me: &WorkloadRef, ambient: bool, acc: &mut Drafts, out: &mut Generation) {
        let req = self.f.req;
        let with_istiod = match req.mode {
            Some(m) => m == MeshMode::Sidecar,
            None => self.f.with_sidecar.contains(me),
        };
        let context = egress::Context { svc_ports: &self.f.egress_ports, callers: &self.f.callers, all_labelled: self.f.all_labelled, outside: &self.outside };
        match egress::plan(&self.f.ws, &context, i, req, ambient, with_istiod, &self.cnpg_of(w), me, self.isolate_anyway(w.name())) {
            Ok(plan) => {
                let mut spec = Map::new();
                spec.insert("podSelector".into(), pod_selector(w));
                spec.insert("egress".into(), Value::Array(plan.rules));
                acc.uses.extend(plan.uses);
                let release = if req.subjects == Subjects::Databases { "dbiso" } else { req.release };
                acc.drafts.push(Draft {
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
                refuses: Vec::new(),
            }),
        }
    }

    /// `dbiso --egress`: the workloads' egress, beside the databases' ingress. The Service calls
    /// the input shows are uses the proof must see kept (the release path records them for its
    /// ingress side); calls to databases are the database loop's, violations included.
    fn database_run_egress(&self, acc: &mut Drafts, out: &mut Generation) {
        let ws = &self.f.ws;
        for (i, w) in ws.iter().enumerate() {
            if self.is_db(w) {
                continue;
            }
            let me = view::workload_ref(w.object);
            acc.uses.extend(super::call_uses(ws, w, &me, &self.f.callers[i]));
        }
        for (i, w) in ws.iter().enumerate() {
            if self.skipped(i, w) {
                continue;
            }
            let me = view::workload_ref(w.object);
            self.egress_draft(w, i, &me, self.ambient(w.namespace()), acc, out);
        }
    }
}

/// Generate, prove and report: the three phases.
pub(super) fn run(inventory: &Inventory, req: &Request<'_>, context: &HashSet<ObjectRef>, output: Output<'_>) -> Generation {
    let mut out = Generation::default();
    // The input's engine model: who carries a sidecar when the mode is read from the input, and
    // the proof's before.
    let model = view::build(inventory, ModelOptions { probes: false });
    let facts = Facts::new(inventory, req, context, output, &model, &mut out);
    let run = Run {
        f: &facts,
        client_index: ClientIndex::new(&facts.ws, &facts.usage, &facts.dbs),
        outside: egress::Outside::new(&facts.usage),
    };
    let mut acc = Drafts::default();
    if req.subjects == Subjects::Release {
        run.workload_drafts(&mut acc, &mut out);
    }
    if req.subjects == Subjects::Databases && req.options.egress {
        run.database_run_egress(&mut acc, &mut out);
    }
    run.database_drafts(&mut acc, &mut out);
    emit::finish(&facts, model, acc, output, &mut out);
    out
}

/// Why a workload with a connection to a workload of another release of the stream gets no
/// policy, and how to isolate it anyway.
pub(super) fn across_releases(subject: String, namespace: &str, how: &str, other: &Workload<'_>, via: &str, release: &str) -> Withheld {
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
        refuses: Vec::new(),
    }
}
