//! The in-memory object store and the write semantics of the API server:
//! create, update, patch (merge, JSON, strategic, apply), delete, list with
//! selectors and pagination, watch history, preloading and snapshots.

use crate::DoubleOptions;
use crate::admission::{self, AdmissionCtx};
use crate::faults::{FaultSet, RequestLog};
use crate::patch::{JsonPatchError, SmpContext, json_patch, merge_patch, strategic_merge_patch};
use crate::registry::{Registry, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::ssa::{self, Ctx, ManagedEntry, Scope};
use crate::status::{ApiError, success_status};
use crate::util::{
    get_path, get_str, meta_mut, meta_str, new_uid, now_rfc3339, random_suffix, split_api_version,
};
use base64::Engine;
use bytes::Bytes;
use meshmove_istio::Served;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Storage key: group, plural resource, namespace (empty for cluster scope), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace or empty.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl Key {
    /// Builds a key for a type.
    pub fn of(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// A stored object.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object without `managedFields`.
    pub obj: Arc<Value>,
    /// Field ownership.
    pub managed: Vec<ManagedEntry>,
    /// The serialized object including `managedFields`.
    pub json: Bytes,
}

impl Stored {
    fn new(obj: Value, managed: Vec<ManagedEntry>) -> Stored {
        let json = if managed.is_empty() {
            Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
        } else {
            let mut full = obj.clone();
            meta_mut(&mut full).insert("managedFields".into(), ssa::to_managed_fields(&managed));
            Bytes::from(serde_json::to_vec(&full).unwrap_or_default())
        };
        Stored {
            obj: Arc::new(obj),
            managed,
            json,
        }
    }

    /// The object as served (with `managedFields`).
    pub fn full(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> &str {
        meta_str(&self.obj, "resourceVersion").unwrap_or("")
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change, kept in the watch history and broadcast to watchers.
#[derive(Debug)]
pub struct WatchEvent {
    /// Resource version of the change.
    pub rv: u64,
    /// Event type.
    pub kind: EventType,
    /// Storage key.
    pub key: Key,
    /// Previous state (for selector transitions).
    pub prev: Option<Arc<Value>>,
    /// New state (final state for deletions).
    pub obj: Arc<Value>,
    /// Serialized `obj` (with managedFields).
    pub json: Bytes,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Field manager (explicit or derived from the user agent).
    pub manager: String,
    /// Whether `fieldManager` was given explicitly.
    pub explicit_manager: bool,
    /// `force=true` for apply.
    pub force: bool,
    /// `status` or `scale`.
    pub subresource: Option<String>,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`.
    Apply,
}

impl PatchType {
    /// Parses a Content-Type.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Parameters of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Page size (0 = unlimited).
    pub limit: usize,
    /// Continue token.
    pub continue_token: Option<String>,
}

/// One page of a list.
pub struct ListPage<'a> {
    /// Matching objects.
    pub items: Vec<&'a Stored>,
    /// Continue token if more items remain.
    pub continue_token: Option<String>,
    /// Remaining items (only without selectors, like the real server).
    pub remaining: Option<u64>,
    /// List resourceVersion.
    pub resource_version: u64,
}

/// How [`State::commit`] stores an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Store it, assigning identity (uid, creationTimestamp) to new objects.
    Store,
    /// Validate and render only (`dryRun=All`).
    DryRun,
    /// Store it keeping the uid/creationTimestamp it carries.
    Preload,
}

impl Commit {
    fn from_dry_run(dry_run: bool) -> Commit {
        if dry_run {
            Commit::DryRun
        } else {
            Commit::Store
        }
    }
}

/// What [`State::watch_start`] returns: the events to send first, a receiver
/// for later changes, and the resourceVersion at subscription time.
pub type WatchStart = (
    Vec<Arc<WatchEvent>>,
    broadcast::Receiver<Arc<WatchEvent>>,
    u64,
);

/// The whole mutable state of a double.
pub struct State {
    /// Options.
    pub opts: DoubleOptions,
    /// Types.
    pub registry: Registry,
    /// Objects.
    pub objects: BTreeMap<Key, Stored>,
    /// Last issued resourceVersion.
    pub rv: u64,
    history: VecDeque<Arc<WatchEvent>>,
    /// Oldest resourceVersion that can still be resumed from.
    pub history_floor: u64,
    /// Broadcast of changes to watchers.
    pub events: broadcast::Sender<Arc<WatchEvent>>,
    /// Keys written since the controllers last ran.
    pub dirty: Vec<(Key, Arc<Value>)>,
    owners: HashMap<String, BTreeSet<Key>>,
    ip_counter: u32,
    /// Request log.
    pub log: RequestLog,
    /// Fault rules.
    pub faults: FaultSet,
    /// The simulated kubelet's and controllers' clocks (pods due to become Ready or to crash,
    /// Deployments' progress deadlines) and the per-workload pod behaviours set at run time.
    pub timers: crate::controllers::Timers,
    /// What answers behind Services' proxy paths ([`crate::proxy`]).
    pub backends: crate::proxy::Backends,
}

/// Which part of an object a write touches.
fn scope_for(rt: &ResourceType, sub: Option<&str>) -> Scope {
    match sub {
        Some("status") => Scope::StatusOnly,
        _ if rt.status_subresource => Scope::MainNoStatus,
        _ => Scope::Whole,
    }
}

fn ctx_for<'a>(rt: &'a ResourceType, sub: Option<&str>) -> Ctx<'a> {
    Ctx {
        builtin: !rt.custom,
        kind: &rt.kind,
        scope: scope_for(rt, sub),
    }
}

/// Puts `kind` and `apiVersion` first, like the real server's encoder.
fn canonical_layout(rt: &ResourceType, obj: Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(rt.kind));
    out.insert("apiVersion".into(), json!(rt.api_version()));
    if let Value::Object(m) = obj {
        let meta = m.get("metadata").cloned().unwrap_or_else(|| json!({}));
        out.insert("metadata".into(), meta);
        for (k, v) in m {
            if k != "kind" && k != "apiVersion" && k != "metadata" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

fn without(obj: &Value, fields: &[&str]) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        for f in fields {
            m.shift_remove(*f);
        }
    }
    c
}

fn owner_uids(obj: &Value) -> Vec<String> {
    get_path(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("request body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

impl State {
    /// A fresh state.
    pub fn new(opts: DoubleOptions) -> State {
        let (events, _) = broadcast::channel(8192);
        let registry = Registry::new(opts.extra_resources.clone());
        let mut s = State {
            opts,
            registry,
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_floor: 0,
            events,
            dirty: Vec::new(),
            owners: HashMap::new(),
            ip_counter: 0,
            log: RequestLog::default(),
            faults: FaultSet::default(),
            timers: crate::controllers::Timers::default(),
            backends: crate::proxy::Backends::default(),
        };
        s.seed();
        s
    }

    /// Creates the namespaces every cluster has.
    pub fn seed(&mut self) {
        if self.opts.default_namespaces {
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let _ = self.load_one(obj);
            }
        }
        self.dirty.clear();
    }

    /// Drops all objects, history, log and faults and re-seeds.
    pub fn reset(&mut self) {
        self.objects.clear();
        self.owners.clear();
        self.registry.set_crds(std::iter::empty());
        self.history.clear();
        self.history_floor = self.rv;
        self.log.clear();
        self.faults.clear();
        self.timers = crate::controllers::Timers::default();
        self.backends = crate::proxy::Backends::default();
        self.seed();
    }

    fn next_ip(&mut self, prefix: &str) -> String {
        self.ip_counter += 1;
        let n = self.ip_counter;
        format!("{prefix}.{}.{}", (n / 250) % 250, n % 250 + 1)
    }

    /// Looks up a stored object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<&Stored, ApiError> {
        self.objects
            .get(&Key::of(rt, ns, name))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// The served form of a stored object for a given type/version.
    pub fn served(&self, rt: &ResourceType, stored: &Stored) -> Value {
        let mut v = stored.full();
        if v.get("apiVersion").and_then(Value::as_str) != Some(rt.api_version().as_str()) {
            v["apiVersion"] = json!(rt.api_version());
        }
        v
    }

    pub(crate) fn namespace_labels(&self, ns: &str) -> Option<&Map<String, Value>> {
        let key = Key {
            group: String::new(),
            resource: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        self.objects
            .get(&key)
            .and_then(|s| crate::util::labels(&s.obj))
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        let key = Key {
            group: String::new(),
            resource: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        self.objects.contains_key(&key)
    }

    fn first_node(&self) -> Option<String> {
        let start = Key {
            group: String::new(),
            resource: "nodes".into(),
            namespace: String::new(),
            name: String::new(),
        };
        let count = self
            .objects
            .range(start.clone()..)
            .take_while(|(k, _)| k.group.is_empty() && k.resource == "nodes")
            .count();
        if count == 0 {
            return None;
        }
        let pick = (self.ip_counter as usize) % count;
        self.objects
            .range(start..)
            .take_while(|(k, _)| k.group.is_empty() && k.resource == "nodes")
            .nth(pick)
            .map(|(k, _)| k.name.clone())
    }

    fn check_type_meta(&self, rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && !kind.is_empty()
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
            && !av.is_empty()
        {
            let (g, _) = split_api_version(av);
            if g != rt.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        Ok(())
    }

    fn check_namespace(
        &self,
        rt: &ResourceType,
        url_ns: &str,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        if let Some(ns) = meta_str(obj, "namespace")
            && !ns.is_empty()
            && ns != url_ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    fn admission_ctx(
        &mut self,
        rt: &ResourceType,
        ns: &str,
    ) -> (bool, bool, String, String, Option<String>) {
        let is_pod = rt.group.is_empty() && rt.kind == "Pod";
        let is_svc = rt.group.is_empty() && rt.kind == "Service";
        let cluster_ip = if is_svc {
            self.next_ip("10.96")
        } else {
            String::new()
        };
        let pod_ip = if is_pod {
            self.next_ip("10.244")
        } else {
            String::new()
        };
        let node = if is_pod { self.first_node() } else { None };
        let _ = ns;
        (
            self.opts.istio_injection,
            self.opts.simulate_controllers,
            cluster_ip,
            pod_ip,
            node,
        )
    }

    /// The injectors Istio's webhooks reach here, as `meshmove_istio::Served`: the revisions of
    /// istiod Deployments (label `app=istiod`, revision from `istio.io/rev`, else `default`,
    /// which then also serves `istio-injection=enabled`), and revision tags
    /// (MutatingWebhookConfigurations labelled `istio.io/tag`, pointing at their `istio.io/rev`;
    /// a `default` tag takes over the legacy selectors).
    fn injectors(&self) -> Served {
        let of = |group: &str, resource: &str| {
            let start = Key { group: group.into(), resource: resource.into(), namespace: String::new(), name: String::new() };
            let (group, resource) = (group.to_string(), resource.to_string());
            self.objects
                .range(start..)
                .take_while(move |(k, _)| k.group == group && k.resource == resource)
                .filter_map(|(_, s)| crate::util::labels(&s.obj))
        };
        let label = |l: &Map<String, Value>, k: &str| l.get(k).and_then(Value::as_str).map(str::to_string);
        let revisions: BTreeSet<String> = of("apps", "deployments")
            .filter(|l| l.get("app").and_then(Value::as_str) == Some("istiod"))
            .map(|l| label(l, "istio.io/rev").unwrap_or_else(|| "default".into()))
            .collect();
        let tags = of("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
            .filter_map(|l| Some((label(l, "istio.io/tag")?, label(l, "istio.io/rev")?)))
            .collect();
        let default_revision = revisions.contains("default").then(|| "default".to_string());
        Served { revisions, tags, default_revision }
    }

    fn run_admission(&mut self, rt: &ResourceType, ns: &str, obj: &mut Value) {
        let (istio, kubelet, cluster_ip, pod_ip, node_name) = self.admission_ctx(rt, ns);
        let labels = self.namespace_labels(ns).cloned();
        let served = if istio && rt.group.is_empty() && rt.kind == "Pod" { self.injectors() } else { Served::default() };
        let ctx = AdmissionCtx {
            namespace_labels: labels.as_ref(),
            namespace: ns,
            served,
            istio_injection: istio,
            kubelet,
            cluster_ip,
            pod_ip,
            node_name,
        };
        admission::default_on_create(rt, obj, &ctx);
        if kubelet && rt.group.is_empty() && rt.kind == "Pod" {
            crate::controllers::admit_pod(self, ns, obj);
        }
    }

    /// POST: creates an object.
    pub fn create(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        mut obj: Value,
        o: &WriteOpts,
    ) -> Result<Value, ApiError> {
        self.check_type_meta(rt, &obj)?;
        self.check_namespace(rt, ns, &obj)?;
        {
            let m = meta_mut(&mut obj);
            for f in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "managedFields",
                "deletionTimestamp",
                "selfLink",
            ] {
                m.shift_remove(f);
            }
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if name.is_empty()
                && let Some(g) = m.get("generateName").and_then(Value::as_str)
                && !g.is_empty()
            {
                let generated = format!("{g}{}", random_suffix(5));
                m.insert("name".into(), json!(generated));
            }
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.shift_remove("namespace");
            }
        }
        if rt.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let key = Key::of(rt, ns, &name);
        if !name.is_empty() && self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.shift_remove("status");
        }
        self.run_admission(rt, ns, &mut obj);
        admission::validate(rt, &obj)?;
        let managed = ssa::record_update(
            None,
            &obj,
            &[],
            &o.manager,
            &rt.api_version(),
            &now_rfc3339(),
            ctx_for(rt, None),
        );
        self.commit(rt, key, None, obj, managed, Commit::from_dry_run(o.dry_run))
    }

    /// Stores a new version of an object: fills server-owned metadata, bumps
    /// the resourceVersion and generation, records the watch event.
    fn commit(
        &mut self,
        rt: &ResourceType,
        key: Key,
        old: Option<&Stored>,
        obj: Value,
        managed: Vec<ManagedEntry>,
        mode: Commit,
    ) -> Result<Value, ApiError> {
        let dry_run = mode == Commit::DryRun;
        let keep_identity = mode == Commit::Preload;
        let mut obj = canonical_layout(rt, obj);
        {
            let m = meta_mut(&mut obj);
            m.shift_remove("managedFields");
            m.insert("name".into(), json!(key.name));
            if rt.namespaced {
                m.insert("namespace".into(), json!(key.namespace));
            }
        }
        match old {
            Some(o) => {
                let m = meta_mut(&mut obj);
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    match get_path(&o.obj, &["metadata", f]) {
                        Some(v) => {
                            m.insert(f.into(), v.clone());
                        }
                        None => {
                            m.shift_remove(f);
                        }
                    }
                }
                if rt.has_generation {
                    let old_gen = get_path(&o.obj, &["metadata", "generation"])
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    let ignore: &[&str] = if rt.status_subresource {
                        &["metadata", "status"]
                    } else {
                        &["metadata"]
                    };
                    let changed = without(&o.obj, ignore) != without(&obj, ignore);
                    meta_mut(&mut obj).insert(
                        "generation".into(),
                        json!(if changed { old_gen + 1 } else { old_gen }),
                    );
                }
            }
            None => {
                let m = meta_mut(&mut obj);
                if !(keep_identity
                    && m.get("uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| !u.is_empty()))
                {
                    m.insert("uid".into(), json!(new_uid()));
                }
                if !(keep_identity && m.get("creationTimestamp").and_then(Value::as_str).is_some())
                {
                    m.insert("creationTimestamp".into(), json!(now_rfc3339()));
                }
                if rt.has_generation && !(keep_identity && m.contains_key("generation")) {
                    m.insert("generation".into(), json!(1));
                } else if !rt.has_generation && !keep_identity {
                    m.shift_remove("generation");
                }
            }
        }
        if dry_run {
            if old.is_none() {
                meta_mut(&mut obj).shift_remove("resourceVersion");
            } else if let Some(o) = old {
                meta_mut(&mut obj).insert("resourceVersion".into(), json!(o.resource_version()));
            }
            return Ok(Stored::new(obj, managed).full());
        }
        let finalizers_empty = get_path(&obj, &["metadata", "finalizers"])
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if old.is_some()
            && get_path(&obj, &["metadata", "deletionTimestamp"]).is_some()
            && finalizers_empty
        {
            let removed = self.remove(&key, None, false);
            return Ok(removed.map(|v| (*v).clone()).unwrap_or(obj));
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let stored = Stored::new(obj, managed);
        let full = stored.full();
        let event_kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.index_owners(&key, old.map(|o| &*o.obj), Some(&stored.obj));
        let ev = WatchEvent {
            rv: self.rv,
            kind: event_kind,
            key: key.clone(),
            prev: old.map(|o| o.obj.clone()),
            obj: stored.obj.clone(),
            json: stored.json.clone(),
        };
        self.dirty.push((key.clone(), stored.obj.clone()));
        self.objects.insert(key.clone(), stored);
        self.publish(ev);
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            self.refresh_crds();
        }
        Ok(full)
    }

    fn index_owners(&mut self, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        if let Some(o) = old {
            for uid in owner_uids(o) {
                if let Some(set) = self.owners.get_mut(&uid) {
                    set.remove(key);
                    if set.is_empty() {
                        self.owners.remove(&uid);
                    }
                }
            }
        }
        if let Some(n) = new {
            for uid in owner_uids(n) {
                self.owners.entry(uid).or_default().insert(key.clone());
            }
        }
    }

    fn publish(&mut self, ev: WatchEvent) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.opts.watch_history.max(1) {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
        let _ = self.events.send(ev);
    }

    fn refresh_crds(&mut self) {
        let start = Key {
            group: "apiextensions.k8s.io".into(),
            resource: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: String::new(),
        };
        let crds: Vec<Arc<Value>> = self
            .objects
            .range(start..)
            .take_while(|(k, _)| {
                k.group == "apiextensions.k8s.io" && k.resource == "customresourcedefinitions"
            })
            .filter(|(_, s)| get_path(&s.obj, &["metadata", "deletionTimestamp"]).is_none())
            .map(|(_, s)| s.obj.clone())
            .collect();
        self.registry.set_crds(crds.iter().map(|c| &**c));
    }

    fn merge_subresource(
        &self,
        rt: &ResourceType,
        old: &Value,
        new: Value,
        sub: Option<&str>,
    ) -> Value {
        match sub {
            Some("status") => {
                let mut out = old.clone();
                let m = out.as_object_mut().expect("stored objects are objects");
                match new.get("status") {
                    Some(s) => {
                        m.insert("status".into(), s.clone());
                    }
                    None => {
                        m.shift_remove("status");
                    }
                }
                out
            }
            _ if rt.status_subresource => {
                let mut out = new;
                if let Some(m) = out.as_object_mut() {
                    match old.get("status") {
                        Some(s) => {
                            m.insert("status".into(), s.clone());
                        }
                        None => {
                            m.shift_remove("status");
                        }
                    }
                }
                out
            }
            _ => new,
        }
    }

    fn finish_update(
        &mut self,
        rt: &ResourceType,
        key: Key,
        old: &Stored,
        mut new: Value,
        o: &WriteOpts,
        managed: Option<Vec<ManagedEntry>>,
    ) -> Result<Value, ApiError> {
        admission::preserve_on_update(rt, &old.obj, &mut new);
        meta_mut(&mut new).insert("name".into(), json!(key.name));
        admission::validate(rt, &new)?;
        let sub = o.subresource.as_deref().filter(|s| *s == "status");
        let managed = managed.unwrap_or_else(|| {
            ssa::record_update(
                Some(&old.obj),
                &new,
                &old.managed,
                &o.manager,
                &rt.api_version(),
                &now_rfc3339(),
                ctx_for(rt, sub),
            )
        });
        self.commit(
            rt,
            key,
            Some(old),
            new,
            managed,
            Commit::from_dry_run(o.dry_run),
        )
    }

    /// PUT: replaces an object (or its status).
    pub fn update(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        obj: Value,
        o: &WriteOpts,
    ) -> Result<Value, ApiError> {
        self.check_type_meta(rt, &obj)?;
        self.check_namespace(rt, ns, &obj)?;
        let key = Key::of(rt, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(n) = meta_str(&obj, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && rv != old.resource_version()
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let new = self.merge_subresource(rt, &old.obj, obj, o.subresource.as_deref());
        self.finish_update(rt, key, &old, new, o, None)
    }

    /// PATCH with any of the four patch types.
    pub fn patch(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        o: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if ptype == PatchType::Apply {
            return self.apply(rt, ns, name, body, o);
        }
        let key = Key::of(rt, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let patched = self.patched_value(rt, &old.obj, ptype, body)?;
        if let Some(rv) = meta_str(&patched, "resourceVersion")
            && !rv.is_empty()
            && rv != old.resource_version()
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        if let Some(n) = meta_str(&patched, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let new = self.merge_subresource(rt, &old.obj, patched, o.subresource.as_deref());
        self.finish_update(rt, key, &old, new, o, None)
    }

    /// Applies a non-apply patch to a document.
    pub fn patched_value(
        &self,
        rt: &ResourceType,
        current: &Value,
        ptype: PatchType,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        match ptype {
            PatchType::Merge => {
                let p: Value = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding merge patch: {e}"))
                })?;
                let mut v = current.clone();
                merge_patch(&mut v, &p);
                Ok(v)
            }
            PatchType::Json => {
                let p: Value = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding json patch: {e}"))
                })?;
                json_patch(current, &p).map_err(|e| match e {
                    JsonPatchError::Malformed(m) => ApiError::bad_request(m),
                    JsonPatchError::Failed(m) => ApiError::new(422, "Invalid", m),
                })
            }
            PatchType::Strategic => {
                if rt.custom {
                    return Err(ApiError::unsupported_patch(&[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ]));
                }
                let p: Value = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding strategic merge patch: {e}"))
                })?;
                let mut v = current.clone();
                strategic_merge_patch(
                    &mut v,
                    &p,
                    SmpContext {
                        builtin: true,
                        kind: &rt.kind,
                    },
                )
                .map_err(ApiError::bad_request)?;
                Ok(v)
            }
            PatchType::Apply => Err(ApiError::bad_request("apply patches are not valid here")),
        }
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    pub fn apply(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: &[u8],
        o: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !o.explicit_manager || o.manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH request with apply-patch content type requires a fieldManager: fieldManager is required for apply requests",
            ));
        }
        let mut config = parse_body(body)?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        let kind = config
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let av = config
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{config}'"
            )));
        }
        if av.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Object 'apiVersion' is missing in '{config}'"
            )));
        }
        self.check_type_meta(rt, &config)?;
        self.check_namespace(rt, ns, &config)?;
        if let Some(n) = meta_str(&config, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let key = Key::of(rt, ns, name);
        let old = self.objects.get(&key).cloned();
        if let (Some(rv), Some(old)) = (meta_str(&config, "resourceVersion"), &old)
            && !rv.is_empty()
            && rv != old.resource_version()
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        {
            let m = meta_mut(&mut config);
            for f in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "managedFields",
                "selfLink",
            ] {
                m.shift_remove(f);
            }
            m.insert("name".into(), json!(name));
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            }
        }
        let sub = o.subresource.as_deref().filter(|s| *s == "status");
        let ctx = ctx_for(rt, sub);
        if let Some(m) = config.as_object_mut() {
            match ctx.scope {
                Scope::StatusOnly => m.retain(|k, _| {
                    matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                }),
                Scope::MainNoStatus => {
                    m.shift_remove("status");
                }
                Scope::Whole => {}
            }
        }
        let api_version = rt.api_version();
        let now = now_rfc3339();
        let outcome = ssa::apply(ssa::ApplyRequest {
            live: old.as_ref().map(|s| &*s.obj),
            managed: old.as_ref().map(|s| s.managed.as_slice()).unwrap_or(&[]),
            config: &config,
            manager: &o.manager,
            force: o.force,
            api_version: &api_version,
            now: &now,
            ctx,
        })
        .map_err(|conflicts| {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| {
                    json!({"type": "FieldManagerConflict",
                        "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                        "field": ssa::render_path(&c.path)})
                })
                .collect();
            let mut details = json!({"name": name, "kind": rt.plural, "causes": causes});
            if !rt.group.is_empty() {
                details["group"] = json!(rt.group);
            }
            ApiError::new(409, "Conflict", ssa::conflict_message(&conflicts)).with_details(details)
        })?;
        match old {
            Some(old) => {
                let new = self.merge_subresource(rt, &old.obj, outcome.object, sub);
                self.finish_update(rt, key, &old, new, o, Some(outcome.managed))
            }
            None => {
                if sub.is_some() {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                }
                if rt.namespaced && !self.namespace_exists(ns) {
                    return Err(ApiError::not_found("", "namespaces", ns));
                }
                let mut obj = outcome.object;
                self.run_admission(rt, ns, &mut obj);
                admission::validate(rt, &obj)?;
                self.commit(
                    rt,
                    key,
                    None,
                    obj,
                    outcome.managed,
                    Commit::from_dry_run(o.dry_run),
                )
            }
        }
    }

    /// DELETE of one object. Returns the response body.
    pub fn delete(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        o: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let key = Key::of(rt, ns, name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(uid) = &o.uid
            && Some(uid.as_str()) != meta_str(&old.obj, "uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    crate::status::qualified(&rt.group, &rt.plural),
                    meta_str(&old.obj, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = &o.resource_version
            && rv != old.resource_version()
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    crate::status::qualified(&rt.group, &rt.plural),
                    old.resource_version()
                ),
            ));
        }
        let uid = meta_str(&old.obj, "uid").map(str::to_string);
        let has_finalizers = get_path(&old.obj, &["metadata", "finalizers"])
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if o.dry_run {
            return Ok(if rt.custom || has_finalizers {
                old.full()
            } else {
                success_status(&rt.group, &rt.plural, name, uid.as_deref())
            });
        }
        if has_finalizers {
            if get_path(&old.obj, &["metadata", "deletionTimestamp"]).is_some() {
                return Ok(old.full());
            }
            let mut obj = (*old.obj).clone();
            let m = meta_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            let managed = old.managed.clone();
            // The stored copy must carry the timestamp, so bypass the "copy from old" rule.
            self.rv += 1;
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
            let stored = Stored::new(obj, managed);
            let full = stored.full();
            let ev = WatchEvent {
                rv: self.rv,
                kind: EventType::Modified,
                key: key.clone(),
                prev: Some(old.obj.clone()),
                obj: stored.obj.clone(),
                json: stored.json.clone(),
            };
            self.dirty.push((key.clone(), stored.obj.clone()));
            self.objects.insert(key.clone(), stored);
            self.publish(ev);
            if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
                self.refresh_crds();
            }
            return Ok(full);
        }
        let removed = self.remove(&key, o.propagation.as_deref(), true);
        let final_obj = removed.map(|v| (*v).clone()).unwrap_or(Value::Null);
        Ok(if rt.custom {
            final_obj
        } else {
            success_status(&rt.group, &rt.plural, name, uid.as_deref())
        })
    }

    /// DELETE on a collection (`deletecollection`).
    pub fn delete_collection(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        q: &ListQuery,
        o: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let keys: Vec<(String, String)> = {
            let mut q = q.clone();
            q.limit = 0;
            q.continue_token = None;
            let page = self.list(rt, ns, &q)?;
            page.items
                .iter()
                .map(|s| {
                    (
                        meta_str(&s.obj, "namespace").unwrap_or("").to_string(),
                        meta_str(&s.obj, "name").unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        let mut items = Vec::new();
        for (n, name) in keys {
            let before = self.get(rt, &n, &name).map(|s| self.served(rt, s)).ok();
            if self.delete(rt, &n, &name, o).is_ok()
                && let Some(b) = before
            {
                items.push(b);
            }
        }
        Ok(
            json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
        )
    }

    /// Removes an object for good, cascading to namespace contents, custom
    /// resources of a deleted CRD and (with controllers) owned dependents.
    pub fn remove(&mut self, key: &Key, propagation: Option<&str>, gc: bool) -> Option<Arc<Value>> {
        let old = self.objects.remove(key)?;
        self.index_owners(key, Some(&old.obj), None);
        let is_ns = key.group.is_empty() && key.resource == "namespaces";
        let is_crd =
            key.group == "apiextensions.k8s.io" && key.resource == "customresourcedefinitions";
        if is_ns {
            let victims: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| !k.namespace.is_empty() && k.namespace == key.name)
                .cloned()
                .collect();
            for v in victims {
                self.remove(&v, Some("Background"), false);
            }
        }
        if is_crd {
            let group = get_str(&old.obj, &["spec", "group"])
                .unwrap_or("")
                .to_string();
            let plural = get_str(&old.obj, &["spec", "names", "plural"])
                .unwrap_or("")
                .to_string();
            let victims: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.group == group && k.resource == plural)
                .cloned()
                .collect();
            for v in victims {
                self.remove(&v, Some("Background"), false);
            }
        }
        self.rv += 1;
        let mut final_obj = (*old.obj).clone();
        meta_mut(&mut final_obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let stored = Stored::new(final_obj, old.managed.clone());
        let ev = WatchEvent {
            rv: self.rv,
            kind: EventType::Deleted,
            key: key.clone(),
            prev: Some(old.obj.clone()),
            obj: stored.obj.clone(),
            json: stored.json.clone(),
        };
        self.dirty.push((key.clone(), stored.obj.clone()));
        self.publish(ev);
        if is_crd {
            self.refresh_crds();
        }
        if gc
            && self.opts.simulate_controllers
            && let Some(uid) = meta_str(&old.obj, "uid")
        {
            let dependents: Vec<Key> = self
                .owners
                .get(uid)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for d in dependents {
                if propagation == Some("Orphan") {
                    self.orphan(&d, uid);
                } else {
                    let others_alive = self
                        .objects
                        .get(&d)
                        .map(|s| {
                            owner_uids(&s.obj)
                                .iter()
                                .any(|u| u != uid && self.uid_exists(u))
                        })
                        .unwrap_or(false);
                    if !others_alive {
                        self.remove(&d, propagation, true);
                    }
                }
            }
        }
        Some(stored.obj)
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|s| meta_str(&s.obj, "uid") == Some(uid))
    }

    fn orphan(&mut self, key: &Key, owner_uid: &str) {
        let Some(old) = self.objects.get(key).cloned() else {
            return;
        };
        let Some(rt) = self.registry.find_any_version(&key.group, &key.resource) else {
            return;
        };
        let mut obj = (*old.obj).clone();
        if let Some(Value::Array(refs)) = meta_mut(&mut obj).get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        let managed = old.managed.clone();
        let _ = self.commit(&rt, key.clone(), Some(&old), obj, managed, Commit::Store);
    }

    /// Internal write used by simulated controllers: stores `obj` (create or
    /// replace) as `manager`, bypassing admission except defaulting on create.
    pub fn put_internal(
        &mut self,
        rt: &Arc<ResourceType>,
        obj: Value,
        manager: &str,
        status_only: bool,
    ) -> Option<Value> {
        let ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let key = Key::of(rt, &ns, &name);
        let old = self.objects.get(&key).cloned();
        let sub = status_only.then_some("status");
        match old {
            Some(old) => {
                let new = if status_only {
                    self.merge_subresource(rt, &old.obj, obj, Some("status"))
                } else {
                    obj
                };
                let managed = ssa::record_update(
                    Some(&old.obj),
                    &new,
                    &old.managed,
                    manager,
                    &rt.api_version(),
                    &now_rfc3339(),
                    ctx_for(rt, sub),
                );
                self.commit(rt, key, Some(&old), new, managed, Commit::Store)
                    .ok()
            }
            None => {
                let mut obj = obj;
                self.run_admission(rt, &ns, &mut obj);
                let managed = ssa::record_update(
                    None,
                    &obj,
                    &[],
                    manager,
                    &rt.api_version(),
                    &now_rfc3339(),
                    ctx_for(rt, None),
                );
                self.commit(rt, key, None, obj, managed, Commit::Store).ok()
            }
        }
    }

    /// Loads an object as-is (preloading): keeps uid, timestamps, status and
    /// managedFields; replaces an existing object with the same key; does not
    /// run admission or controllers. Namespaced objects without a namespace go
    /// to `default`.
    pub fn load_one(&mut self, obj: Value) -> Result<Key, ApiError> {
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (g, v) = split_api_version(&av);
        let rt = self.registry.find_kind(g, v, &kind).ok_or_else(|| {
            ApiError::bad_request(format!("no matches for kind \"{kind}\" in version \"{av}\" (is its CustomResourceDefinition loaded first?)"))
        })?;
        let mut obj = obj;
        let managed = get_path(&obj, &["metadata", "managedFields"])
            .map(ssa::from_managed_fields)
            .unwrap_or_default();
        let ns = if rt.namespaced {
            meta_str(&obj, "namespace")
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        if rt.namespaced && !self.namespace_exists(&ns) {
            return Err(ApiError::not_found("", "namespaces", &ns));
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        if rt.group.is_empty() && rt.kind == "Namespace" {
            crate::util::ensure_object(&mut obj, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            crate::util::ensure_object(&mut obj, &["status"])
                .entry("phase")
                .or_insert(json!("Active"));
        }
        if rt.group == "apiextensions.k8s.io" && get_path(&obj, &["status", "conditions"]).is_none()
        {
            let ctx = AdmissionCtx {
                namespace_labels: None,
                namespace: "",
                served: Served::default(),
                istio_injection: false,
                kubelet: false,
                cluster_ip: String::new(),
                pod_ip: String::new(),
                node_name: None,
            };
            admission::default_on_create(&rt, &mut obj, &ctx);
        }
        admission::validate(&rt, &obj)?;
        let key = Key::of(&rt, &ns, &name);
        let old = self.objects.get(&key).cloned();
        self.commit(&rt, key.clone(), None, obj, managed, Commit::Preload)?;
        if let Some(o) = old {
            self.index_owners(&key, Some(&o.obj), None);
            if let Some(s) = self.objects.get(&key) {
                let new = s.obj.clone();
                self.index_owners(&key, None, Some(&new));
            }
        }
        Ok(key)
    }

    /// Loads many objects: CRDs first, then namespaces, then the rest. `List`
    /// objects are flattened.
    pub fn load_many(&mut self, objs: Vec<Value>) -> Result<Vec<Key>, ApiError> {
        let mut flat = Vec::new();
        for o in objs {
            flatten(o, &mut flat);
        }
        let rank = |o: &Value| match (
            o.get("kind").and_then(Value::as_str),
            o.get("apiVersion").and_then(Value::as_str),
        ) {
            (Some("CustomResourceDefinition"), _) => 0,
            (Some("Namespace"), Some("v1")) => 1,
            _ => 2,
        };
        flat.sort_by_key(rank);
        let mut keys = Vec::new();
        for o in flat {
            keys.push(self.load_one(o)?);
        }
        self.dirty.clear();
        Ok(keys)
    }

    /// Lists one page.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> Result<ListPage<'_>, ApiError> {
        let ns = if rt.namespaced { ns } else { None };
        let mut start_ns = ns.unwrap_or("").to_string();
        let mut start_name = String::new();
        let mut exclusive = false;
        if let Some(tok) = &q.continue_token {
            let (tns, tname) = decode_continue(tok, ns.is_some() || !rt.namespaced)?;
            if let Some(n) = ns {
                start_ns = n.to_string();
            } else {
                start_ns = tns;
            }
            start_name = tname;
            exclusive = true;
        }
        let start = Key {
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            namespace: start_ns,
            name: start_name,
        };
        let lower = if exclusive {
            Bound::Excluded(start)
        } else {
            Bound::Included(start)
        };
        let in_range = |k: &Key| {
            k.group == rt.group && k.resource == rt.plural && ns.is_none_or(|n| k.namespace == n)
        };
        let matches = |s: &Stored| {
            q.labels.matches_object(&s.obj) && (q.fields.is_empty() || q.fields.matches(&s.obj))
        };
        let mut items = Vec::new();
        let mut iter = self
            .objects
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| in_range(k));
        let mut last: Option<&Key> = None;
        let mut more = false;
        if let (Some(name), Some(n)) = (q.fields.exact_name(), ns)
            && q.continue_token.is_none()
        {
            if let Some(s) = self.objects.get(&Key::of(rt, n, name))
                && matches(s)
            {
                items.push(s);
            }
            return Ok(ListPage {
                items,
                continue_token: None,
                remaining: None,
                resource_version: self.rv,
            });
        }
        for (k, s) in iter.by_ref() {
            if !matches(s) {
                continue;
            }
            if q.limit > 0 && items.len() == q.limit {
                more = true;
                break;
            }
            items.push(s);
            last = Some(k);
        }
        let selectors = !q.labels.is_empty() || !q.fields.is_empty();
        let (continue_token, remaining) = if more {
            let k = last.expect("a full page has a last item");
            let rel = if ns.is_some() || !rt.namespaced {
                k.name.clone()
            } else {
                format!("{}/{}", k.namespace, k.name)
            };
            let remaining = if selectors {
                None
            } else {
                // The item that triggered `more` plus everything after it.
                Some(1 + iter.count() as u64)
            };
            (Some(encode_continue(self.rv, &rel)), remaining)
        } else {
            (None, None)
        };
        Ok(ListPage {
            items,
            continue_token,
            remaining,
            resource_version: self.rv,
        })
    }

    /// Serializes a list page the way the real server does.
    pub fn list_json(&self, rt: &ResourceType, page: &ListPage<'_>) -> Vec<u8> {
        let total: usize = page.items.iter().map(|s| s.json.len() + 1).sum();
        let mut out = Vec::with_capacity(total + 256);
        out.extend_from_slice(b"{\"kind\":");
        out.extend_from_slice(
            serde_json::to_string(&rt.list_kind())
                .unwrap_or_default()
                .as_bytes(),
        );
        out.extend_from_slice(b",\"apiVersion\":");
        out.extend_from_slice(
            serde_json::to_string(&rt.api_version())
                .unwrap_or_default()
                .as_bytes(),
        );
        out.extend_from_slice(b",\"metadata\":{\"resourceVersion\":\"");
        out.extend_from_slice(page.resource_version.to_string().as_bytes());
        out.push(b'"');
        if let Some(c) = &page.continue_token {
            out.extend_from_slice(b",\"continue\":\"");
            out.extend_from_slice(c.as_bytes());
            out.push(b'"');
        }
        if let Some(r) = page.remaining {
            out.extend_from_slice(b",\"remainingItemCount\":");
            out.extend_from_slice(r.to_string().as_bytes());
        }
        out.extend_from_slice(b"},\"items\":[");
        let want_av = rt.api_version();
        for (i, s) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if s.obj.get("apiVersion").and_then(Value::as_str) == Some(want_av.as_str()) {
                out.extend_from_slice(&s.json);
            } else {
                out.extend_from_slice(&serde_json::to_vec(&self.served(rt, s)).unwrap_or_default());
            }
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Starts a watch: returns the events to send first (synthetic ADDED for
    /// the current state, or the history after `resource_version`) and a
    /// receiver for later changes.
    pub fn watch_start(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        q: &ListQuery,
        resource_version: Option<&str>,
        send_initial: bool,
    ) -> Result<WatchStart, ApiError> {
        let rx = self.events.subscribe();
        let ns = if rt.namespaced { ns } else { None };
        let rv_param = resource_version.unwrap_or("");
        let mut initial = Vec::new();
        if send_initial || rv_param.is_empty() || rv_param == "0" {
            let mut q2 = q.clone();
            q2.limit = 0;
            q2.continue_token = None;
            for s in self.list(rt, ns, &q2)?.items {
                let rv = s.resource_version().parse().unwrap_or(0);
                let key = Key::of(
                    rt,
                    meta_str(&s.obj, "namespace").unwrap_or(""),
                    meta_str(&s.obj, "name").unwrap_or(""),
                );
                initial.push(Arc::new(WatchEvent {
                    rv,
                    kind: EventType::Added,
                    key,
                    prev: None,
                    obj: s.obj.clone(),
                    json: s.json.clone(),
                }));
            }
            return Ok((initial, rx, self.rv));
        }
        let since: u64 = rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_param}")))?;
        if since < self.history_floor {
            return Err(ApiError::expired(format!(
                "too old resource version: {since} ({})",
                self.history_floor + 1
            )));
        }
        for ev in &self.history {
            if ev.rv > since && ev.key.group == rt.group && ev.key.resource == rt.plural {
                initial.push(ev.clone());
            }
        }
        Ok((initial, rx, self.rv))
    }

    /// Snapshot of every object with volatile fields removed.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (k, s) in &self.objects {
            let mut v = (*s.obj).clone();
            crate::strip_volatile(&mut v);
            let kind = s
                .obj
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or(&k.resource);
            let kind_group = if k.group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{}", k.group)
            };
            let id = if k.namespace.is_empty() {
                format!("{kind_group}/{}", k.name)
            } else {
                format!("{kind_group}/{}/{}", k.namespace, k.name)
            };
            out.insert(id, v);
        }
        out
    }
}

fn flatten(o: Value, out: &mut Vec<Value>) {
    let is_list = o
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && o.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = o.get("items").cloned() {
            for i in items {
                flatten(i, out);
            }
        }
    } else if !o.is_null() {
        out.push(o);
    }
}

/// Encodes a continue token in the real server's format.
pub fn encode_continue(rv: u64, start: &str) -> String {
    let raw =
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{start}\u{0}")}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a continue token into (namespace, name) of the last item served.
pub fn decode_continue(tok: &str, single_scope: bool) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: the provided continue parameter is not valid",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    if single_scope {
        Ok((String::new(), start.to_string()))
    } else {
        let (ns, name) = start.split_once('/').ok_or_else(bad)?;
        Ok((ns.to_string(), name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(DoubleOptions {
            simulate_controllers: false,
            ..DoubleOptions::default()
        })
    }

    fn rt(s: &State, g: &str, p: &str) -> Arc<ResourceType> {
        s.registry.find_any_version(g, p).unwrap()
    }

    fn opts(m: &str) -> WriteOpts {
        WriteOpts {
            manager: m.into(),
            explicit_manager: true,
            ..WriteOpts::default()
        }
    }

    fn cm(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
    }

    #[test]
    fn pagination_walks_every_item_once() {
        let mut s = state();
        let pods = rt(&s, "", "pods");
        for ns in ["a", "b"] {
            s.load_one(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .unwrap();
            for i in 0..25 {
                s.load_one(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i:02}"), "namespace": ns, "labels": {"i": i.to_string()}}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).unwrap();
            }
        }
        for ns in [None, Some("a")] {
            let mut seen = Vec::new();
            let mut tok = None;
            let mut pages = 0;
            loop {
                let q = ListQuery {
                    limit: 7,
                    continue_token: tok.clone(),
                    ..ListQuery::default()
                };
                let page = s.list(&pods, ns, &q).unwrap();
                pages += 1;
                for it in &page.items {
                    seen.push(format!(
                        "{}/{}",
                        meta_str(&it.obj, "namespace").unwrap(),
                        meta_str(&it.obj, "name").unwrap()
                    ));
                }
                if let Some(r) = page.remaining {
                    let total = if ns.is_some() { 25 } else { 50 };
                    assert_eq!(r as usize, total - seen.len());
                }
                match page.continue_token {
                    Some(t) => tok = Some(t),
                    None => break,
                }
            }
            let expected = if ns.is_some() { 25 } else { 50 };
            assert_eq!(seen.len(), expected);
            let unique: BTreeSet<_> = seen.iter().collect();
            assert_eq!(unique.len(), expected);
            assert_eq!(pages, expected.div_ceil(7));
        }
        let q = ListQuery {
            labels: LabelSelector::parse("i in (1,2,3)").unwrap(),
            limit: 2,
            ..ListQuery::default()
        };
        let page = s.list(&pods, Some("b"), &q).unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(
            page.remaining.is_none(),
            "no remainingItemCount with selectors"
        );
        let q2 = ListQuery {
            continue_token: page.continue_token.clone(),
            ..q
        };
        assert_eq!(s.list(&pods, Some("b"), &q2).unwrap().items.len(), 1);
        assert_eq!(decode_continue("bm9wZQ", true).unwrap_err().code, 400);
    }

    #[test]
    fn create_update_conflict_and_generation() {
        let mut s = state();
        let cms = rt(&s, "", "configmaps");
        let created = s
            .create(&cms, "default", cm("c1", json!({"a": "1"})), &opts("test"))
            .unwrap();
        assert_eq!(created["kind"], "ConfigMap");
        let rv = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            s.create(&cms, "default", cm("c1", json!({})), &opts("test"))
                .unwrap_err()
                .reason,
            "AlreadyExists"
        );
        assert_eq!(
            s.create(&cms, "nope", cm("c2", json!({})), &opts("test"))
                .unwrap_err()
                .message,
            "namespaces \"nope\" not found"
        );
        let mut upd = cm("c1", json!({"a": "2"}));
        upd["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(
            s.update(&cms, "default", "c1", upd.clone(), &opts("test"))
                .unwrap_err()
                .code,
            409
        );
        upd["metadata"]["resourceVersion"] = json!(rv);
        let updated = s.update(&cms, "default", "c1", upd, &opts("test")).unwrap();
        assert_eq!(updated["metadata"]["labels"]["a"], "2");
        assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
        let gen_name =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}});
        let g = s.create(&cms, "default", gen_name, &opts("t")).unwrap();
        assert!(g["metadata"]["name"].as_str().unwrap().starts_with("cfg-"));
        let deps = rt(&s, "apps", "deployments");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let d = s.create(&deps, "default", d, &opts("t")).unwrap();
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["spec"]["replicas"], 1, "defaulted");
        let d2 = s
            .patch(
                &deps,
                "default",
                "web",
                PatchType::Merge,
                br#"{"metadata":{"labels":{"x":"y"}}}"#,
                &opts("t"),
            )
            .unwrap();
        assert_eq!(
            d2["metadata"]["generation"], 1,
            "metadata changes keep the generation"
        );
        let d3 = s
            .patch(
                &deps,
                "default",
                "web",
                PatchType::Merge,
                br#"{"spec":{"replicas":3}}"#,
                &opts("t"),
            )
            .unwrap();
        assert_eq!(d3["metadata"]["generation"], 2);
        let d4 = s
            .patch(
                &deps,
                "default",
                "web",
                PatchType::Merge,
                br#"{"status":{"replicas":3}}"#,
                &opts("t"),
            )
            .unwrap();
        assert!(
            d4.get("status").is_none(),
            "status is ignored on the main resource"
        );
        let d5 = s
            .patch(
                &deps,
                "default",
                "web",
                PatchType::Merge,
                br#"{"status":{"replicas":3},"spec":{"replicas":9}}"#,
                &WriteOpts {
                    subresource: Some("status".into()),
                    ..opts("t")
                },
            )
            .unwrap();
        assert_eq!(d5["status"]["replicas"], 3);
        assert_eq!(d5["spec"]["replicas"], 3, "spec is ignored on /status");
    }

    #[test]
    fn dry_run_stores_nothing() {
        let mut s = state();
        let cms = rt(&s, "", "configmaps");
        let rv = s.rv;
        let out = s
            .create(
                &cms,
                "default",
                cm("dry", json!({})),
                &WriteOpts {
                    dry_run: true,
                    ..opts("t")
                },
            )
            .unwrap();
        assert_eq!(out["metadata"]["name"], "dry");
        assert!(s.get(&cms, "default", "dry").is_err());
        assert_eq!(s.rv, rv);
    }

    #[test]
    fn finalizers_delay_deletion() {
        let mut s = state();
        let cms = rt(&s, "", "configmaps");
        let mut c = cm("f", json!({}));
        c["metadata"]["finalizers"] = json!(["example.com/hold"]);
        s.create(&cms, "default", c, &opts("t")).unwrap();
        let r = s
            .delete(&cms, "default", "f", &DeleteOpts::default())
            .unwrap();
        assert!(r["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(&cms, "default", "f").is_ok());
        s.patch(
            &cms,
            "default",
            "f",
            PatchType::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
            &opts("t"),
        )
        .unwrap();
        assert!(s.get(&cms, "default", "f").is_err());
    }

    #[test]
    fn namespace_deletion_cascades() {
        let mut s = state();
        let nss = rt(&s, "", "namespaces");
        let cms = rt(&s, "", "configmaps");
        s.create(
            &nss,
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}}),
            &opts("t"),
        )
        .unwrap();
        s.create(&cms, "gone", cm("x", json!({})), &opts("t"))
            .unwrap();
        s.delete(&nss, "", "gone", &DeleteOpts::default()).unwrap();
        assert!(s.get(&cms, "gone", "x").is_err());
    }

    #[test]
    fn server_side_apply_through_the_store() {
        let mut s = state();
        let cms = rt(&s, "", "configmaps");
        let body =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"a":"1"}}"#;
        let created = s
            .patch(
                &cms,
                "default",
                "ssa",
                PatchType::Apply,
                body,
                &opts("alice"),
            )
            .unwrap();
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "alice");
        let body2 =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"a":"2"}}"#;
        let err = s
            .patch(
                &cms,
                "default",
                "ssa",
                PatchType::Apply,
                body2,
                &opts("bob"),
            )
            .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\" using v1: .data.a"
        );
        assert_eq!(
            err.details.as_ref().unwrap()["causes"][0]["field"],
            ".data.a"
        );
        let forced = s
            .patch(
                &cms,
                "default",
                "ssa",
                PatchType::Apply,
                body2,
                &WriteOpts {
                    force: true,
                    ..opts("bob")
                },
            )
            .unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  b: '3'\n";
        let merged = s
            .patch(
                &cms,
                "default",
                "ssa",
                PatchType::Apply,
                yaml,
                &opts("carol"),
            )
            .unwrap();
        assert_eq!(merged["data"], json!({"a": "2", "b": "3"}));
        let no_mgr = WriteOpts {
            explicit_manager: false,
            ..opts("x")
        };
        assert_eq!(
            s.patch(&cms, "default", "ssa", PatchType::Apply, yaml, &no_mgr)
                .unwrap_err()
                .code,
            400
        );
    }
}
