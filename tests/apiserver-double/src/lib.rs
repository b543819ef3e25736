//! An in-process Kubernetes API-server double, served over plain HTTP (or HTTPS
//! with a certificate made at start, [`DoubleOptions::tls`]) on 127.0.0.1 and
//! reached through a real kubeconfig, for end-to-end tests of the kubectl
//! plugins with real `kubectl` and kube-rs.
//!
//! # What is faithful
//!
//! * **Discovery**: `/version`, legacy `/api`, `/apis`, `/api/v1`,
//!   `/apis/{group}[/{version}]` with names, singular names, scope, kinds,
//!   verbs, short names, categories and the `status`/`scale` subresources;
//!   aggregated discovery (`apidiscovery.k8s.io/v2`) when `Accept` asks for
//!   it, which is what kubectl 1.37 does first. Kinds of a CRD appear once
//!   the CRD object exists and disappear (with their objects) when it is
//!   deleted.
//! * **Objects**: a global `resourceVersion` counter, `uid`,
//!   `creationTimestamp`, `generation` bumped on non-metadata changes
//!   (status excluded for kinds with a status subresource), `managedFields`
//!   in `FieldsV1` form, `kind`/`apiVersion` on every item, `XList` lists with
//!   `metadata.resourceVersion`, `continue` and `remainingItemCount`
//!   (only without selectors) in the real encodings.
//! * **Verbs**: get, list (label selectors with `=`, `==`, `!=`, `in`,
//!   `notin`, exists, `!exists`, `>`/`<`; field selectors on
//!   `metadata.name`/`metadata.namespace` and the usual per-kind fields;
//!   `limit`/`continue`), cluster-wide lists, watch (initial ADDED events,
//!   resume from a `resourceVersion`, `410 Expired` for compacted history,
//!   selector transitions turn into ADDED/DELETED, `sendInitialEvents` with
//!   the initial-events-end bookmark, `timeoutSeconds`), create (409
//!   AlreadyExists, `generateName`, 404 for a missing namespace), update
//!   (409 Conflict on a stale `resourceVersion`), delete (finalizers delay it;
//!   preconditions), deletecollection, the four patch types (see
//!   [`patch`]; strategic merge is refused for custom resources with 415, as
//!   the real server does), server-side apply with `fieldManager`/`force`
//!   and conflicts naming the other manager (see [`ssa`]), `dryRun=All` on
//!   every write, `/status` and `/scale` subresources.
//! * **Errors** are `Status` objects with the real reasons, codes, `details`
//!   and message wording (see [`status`]).
//! * **Pod Security admission** for namespace updates: a new
//!   `pod-security.kubernetes.io/enforce` level (also in a dry run) evaluates the namespace's
//!   existing pods and returns the violations as `Warning` headers, worded and grouped as the
//!   real admission plugin does, for the `baseline` and `restricted` checks [`podsecurity`]
//!   lists.
//! * **Server-side printing**: `Table` responses for `kubectl get` (also for
//!   `kubectl get -w`), with the real column sets of the common kinds and the
//!   `additionalPrinterColumns` of CRDs.
//!
//! # What is simplified
//!
//! * Authorization is off by default: the kubeconfig carries a token, which
//!   is only checked with [`DoubleOptions::require_token`]; RBAC denials are
//!   produced by fault rules and `SelfSubjectAccessReview` always allows.
//!   With [`DoubleOptions::rbac`] the double authenticates bearer tokens
//!   ([`DoubleOptions::tokens`]), honours impersonation headers and enforces
//!   the Roles, ClusterRoles and bindings it stores, with the default
//!   discovery roles, as Kubernetes RBAC does (see [`rbac`]);
//!   `SelfSubjectAccessReview` then answers by the same rules. Not enforced:
//!   RBAC's escalation checks on writing Roles and bindings (`escalate`,
//!   `bind`), and aggregated ClusterRoles are not filled in.
//! * OpenAPI: `/openapi/v3` serves an index and one minimal document per
//!   group/version (paths, verbs, `x-kubernetes-group-version-kind` and the
//!   `fieldValidation`/`fieldManager`/`dryRun`/`force` parameters, open
//!   schemas). That is what `kubectl apply` (client- and server-side) checks
//!   before sending `fieldValidation=Strict`; without it kubectl refuses with
//!   "failed to download openapi". `/openapi/v2` answers 404, so client-side
//!   apply computes its strategic merge patches from kubectl's compiled-in
//!   types (and JSON merge patches for custom resources), as it does against
//!   a real server whose schemas lack the patch metadata. `kubectl explain`
//!   has no schemas to show. Unknown fields are not rejected.
//! * Protobuf: request bodies of typed clients (`kubectl create
//!   namespace|configmap|secret|serviceaccount`, `kubectl auth can-i`) are
//!   decoded (see [`protobuf`]); other kinds sent as protobuf (e.g. `kubectl
//!   create deployment`) get a 415 naming the kind. Responses are JSON.
//! * No `log`, `exec`, `attach`, `portforward`, `proxy`, `eviction` or
//!   `binding` subresources (404).
//! * Little defaulting (namespaces, Service cluster IPs and port defaults,
//!   workload replicas/strategy, CRD status) and validation (names, labels,
//!   annotations, workload selectors vs. template labels, containers, CRD
//!   names). No immutability checks.
//! * Pagination pages are cut from the live store, not from a snapshot at the
//!   first page's resourceVersion; `resourceVersion`/`resourceVersionMatch`
//!   on lists are accepted and ignored.
//! * Namespaces are deleted at once together with their contents (no
//!   `Terminating` phase); deletion is immediate unless `metadata.finalizers`
//!   is set. Deleting returns a `Status` for built-in kinds and the object for
//!   custom resources.
//! * Multi-version CRDs are served without conversion (only `apiVersion` is
//!   rewritten).
//! * Controllers (see [`controllers`]) react synchronously to every write; with
//!   [`DoubleOptions::ready_after`], per-workload [`PodBehaviour`]s or
//!   [`DoubleOptions::progress_deadline`] they also move on their own clock (pods becoming
//!   Ready, crash-looping, rollouts progressing or passing their deadline), driven by a
//!   background tick every few milliseconds. By default every pod is Ready at creation, so
//!   a write returns with the cluster converged.
//!
//! # Test support
//!
//! Preloading ([`DoubleHandle::load_yaml`], [`DoubleHandle::load_values`]),
//! CRD presets ([`crds`]), snapshots ([`DoubleHandle::snapshot`]), the
//! request log ([`DoubleHandle::requests`]) and fault rules
//! ([`DoubleHandle::add_fault`]) are available from Rust and over HTTP under
//! `/__double/` (see [`control`]).

// `ApiError` mirrors a `Status` body and is returned by value on purpose;
// boxing it would only add noise to a test double.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod control;
pub mod controllers;
pub mod crds;
pub mod discovery;
pub mod faults;
pub mod patch;
pub mod podsecurity;
pub mod prometheus;
pub mod protobuf;
pub mod proxy;
pub mod rbac;
pub mod registry;
pub mod selector;
pub mod server;
pub mod ssa;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod util;

pub use controllers::PodBehaviour;
pub use faults::{FaultAction, FaultRule, RequestRecord, RuleInfo};
pub use registry::ResourceType;
pub use status::ApiError;
pub use store::Key as ObjectKey;

use serde_json::{Value, json};
use server::Shared;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use store::{State, WriteOpts};
use tokio::sync::watch;

/// Options of a double.
#[derive(Debug, Clone)]
pub struct DoubleOptions {
    /// Simulate workload controllers, the kubelet and garbage collection
    /// (default `true`).
    pub simulate_controllers: bool,
    /// Simulate Istio: the sidecar injector on pod creation (deciding with
    /// `meshmove_istio::injection`, the product's own rule, for the revisions
    /// an istiod Deployment or a revision tag pointing at one serves, as a
    /// real webhook needs istiod behind it) and the ambient node agent that
    /// annotates captured pods (default `true`).
    pub istio_injection: bool,
    /// Answer aggregated-discovery requests (default `true`); when off,
    /// clients fall back to legacy discovery.
    pub aggregated_discovery: bool,
    /// Create `default`, `kube-system`, `kube-public`, `kube-node-lease`
    /// (default `true`).
    pub default_namespaces: bool,
    /// Bearer token written to kubeconfigs.
    pub token: String,
    /// Reject requests without the token (401), default `false`.
    pub require_token: bool,
    /// Serve HTTPS with a certificate made at start ([`tls`]) instead of plain HTTP (default
    /// `false`); kubeconfigs then trust its CA. Real kubectl sends credentials only over TLS.
    pub tls: bool,
    /// Enforce RBAC (default `false`): authenticate bearer tokens by [`Self::tokens`], apply
    /// `Impersonate-*` headers, and authorize every API request by the stored Roles,
    /// ClusterRoles and bindings (see [`rbac`]). Requests without a token are
    /// `system:anonymous`; an unknown token is 401.
    pub rbac: bool,
    /// Bearer tokens and the users they authenticate, when [`Self::rbac`] is on. [`Self::token`]
    /// (the kubeconfig's) authenticates as `double-admin` in `system:masters` unless listed here.
    pub tokens: BTreeMap<String, rbac::UserInfo>,
    /// Port to bind on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Watch events kept for resuming watches.
    pub watch_history: usize,
    /// Additional built-in types.
    pub extra_resources: Vec<ResourceType>,
    /// How long the simulated kubelet takes from creating a pod to reporting it Ready
    /// (default zero: Ready at creation). See [`DoubleOptions::ready_after`].
    pub pod_ready_after: std::time::Duration,
    /// How the pods of particular workloads run, by `(namespace, workload name)`: the
    /// Deployment, StatefulSet or DaemonSet (or bare ReplicaSet or Pod) that owns them. Beats
    /// [`Self::pod_ready_after`]; [`DoubleHandle::set_pod_behaviour`] changes it at run time.
    pub pod_behaviours: BTreeMap<(String, String), PodBehaviour>,
    /// Replaces every Deployment's `spec.progressDeadlineSeconds` (so that tests see
    /// `ProgressDeadlineExceeded` within milliseconds). `None` (default): the spec's value.
    pub progress_deadline: Option<std::time::Duration>,
}

impl DoubleOptions {
    /// Pods become Ready `delay` after their creation (Running, with failing readiness, until
    /// then).
    pub fn ready_after(mut self, delay: std::time::Duration) -> Self {
        self.pod_ready_after = delay;
        self
    }

    /// The pods of workload `name` in `namespace` behave as `behaviour`.
    pub fn pods_of(mut self, namespace: &str, name: &str, behaviour: PodBehaviour) -> Self {
        self.pod_behaviours.insert((namespace.to_string(), name.to_string()), behaviour);
        self
    }

    /// Every Deployment's progress deadline is `deadline` instead of its
    /// `spec.progressDeadlineSeconds`.
    pub fn progress_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.progress_deadline = Some(deadline);
        self
    }
}

impl Default for DoubleOptions {
    fn default() -> Self {
        DoubleOptions {
            simulate_controllers: true,
            istio_injection: true,
            aggregated_discovery: true,
            default_namespaces: true,
            token: "double-token".into(),
            require_token: false,
            tls: false,
            rbac: false,
            tokens: BTreeMap::new(),
            port: 0,
            watch_history: 10_000,
            extra_resources: vec![],
            pod_ready_after: std::time::Duration::ZERO,
            pod_behaviours: BTreeMap::new(),
            progress_deadline: None,
        }
    }
}

impl DoubleOptions {
    /// [`Self::tokens`] plus the kubeconfig's token as `double-admin` in `system:masters`
    /// (unless `tokens` names it).
    pub fn tokens_with_default(&self) -> BTreeMap<String, rbac::UserInfo> {
        let mut t = self.tokens.clone();
        t.entry(self.token.clone())
            .or_insert_with(|| rbac::UserInfo::authenticated("double-admin", &[rbac::MASTERS]));
        t
    }
}

/// Errors of the Rust API.
#[derive(Debug, thiserror::Error)]
pub enum DoubleError {
    /// An API failure (the same as an HTTP client would get).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// A YAML/JSON document could not be parsed.
    #[error("cannot parse documents: {0}")]
    Parse(String),
    /// An I/O failure.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Parses a JSON document, a JSON array of objects, or a multi-document
/// YAML stream. Empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, DoubleError> {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Ok(match v {
            Value::Array(items) => items,
            other => vec![other],
        });
    }
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| DoubleError::Parse(e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Fields removed by [`DoubleHandle::snapshot`]: `metadata.resourceVersion`,
/// `metadata.managedFields`, `metadata.generation`,
/// `status.observedGeneration` and condition timestamps
/// (`lastTransitionTime`, `lastUpdateTime`, `lastProbeTime`) in
/// `status.conditions`. `uid` and `creationTimestamp` are kept, so a deleted
/// and recreated object is a difference.
pub fn strip_volatile(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("resourceVersion");
        m.shift_remove("managedFields");
        m.shift_remove("generation");
    }
    if let Some(s) = v.get_mut("status").and_then(Value::as_object_mut) {
        s.shift_remove("observedGeneration");
        if let Some(Value::Array(conds)) = s.get_mut("conditions") {
            for c in conds {
                if let Some(cm) = c.as_object_mut() {
                    cm.shift_remove("lastTransitionTime");
                    cm.shift_remove("lastUpdateTime");
                    cm.shift_remove("lastProbeTime");
                }
            }
        }
    }
}

/// A kubeconfig for a double. Values are double-quoted so names such as
/// `y` or `on` stay strings.
pub fn kubeconfig_yaml(server: &str, namespace: &str, token: &str) -> String {
    kubeconfig_yaml_with_ca(server, namespace, token, None)
}

/// [`kubeconfig_yaml`] trusting the CA `ca_pem` (the cluster's `certificate-authority-data`)
/// when given.
pub fn kubeconfig_yaml_with_ca(server: &str, namespace: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine as _;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let ca = ca_pem
        .map(|p| format!("\n    certificate-authority-data: {}", base64::engine::general_purpose::STANDARD.encode(p)))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}{ca}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: double\n    namespace: {}\ncurrent-context: double\nusers:\n- name: double\n  user:\n    token: {}\npreferences: {{}}\n",
        q(server),
        q(namespace),
        q(token)
    )
}

/// All objects with volatile fields removed, keyed
/// `Kind[.group]/[namespace/]name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The objects.
    pub objects: BTreeMap<String, Value>,
}

impl Snapshot {
    /// Human-readable differences from `other` (empty if equal).
    pub fn diff(&self, other: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.objects {
            match other.objects.get(k) {
                None => out.push(format!("- {k} (only in the first snapshot)")),
                Some(o) if o != v => out.push(format!("~ {k}: {v} != {o}")),
                _ => {}
            }
        }
        for k in other.objects.keys() {
            if !self.objects.contains_key(k) {
                out.push(format!("+ {k} (only in the second snapshot)"));
            }
        }
        out
    }

    /// Drops entries whose id starts with one of `prefixes` (e.g. `"Event/"`).
    pub fn without(mut self, prefixes: &[&str]) -> Snapshot {
        self.objects
            .retain(|k, _| !prefixes.iter().any(|p| k.starts_with(p)));
        self
    }
}

pub(crate) fn create_in_state(st: &mut State, obj: Value) -> Result<Value, ApiError> {
    let rt = type_of(st, &obj)?;
    let ns = util::meta_str(&obj, "namespace")
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    let o = WriteOpts {
        manager: "apiserver-double".into(),
        explicit_manager: true,
        ..WriteOpts::default()
    };
    let out = st.create(&rt, &ns, obj, &o)?;
    controllers::settle(st);
    Ok(out)
}

fn type_of(st: &State, obj: &Value) -> Result<Arc<ResourceType>, ApiError> {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (g, v) = util::split_api_version(av);
    st.registry.find_kind(g, v, kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no matches for kind \"{kind}\" in version \"{av}\""
        ))
    })
}

fn find_type(st: &State, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
    let (g, v) = util::split_api_version(api_version);
    st.registry.find_kind(g, v, kind)
}

struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Entry point.
pub struct Double;

impl Double {
    /// Binds 127.0.0.1 and serves on the current tokio runtime until the
    /// last clone of the handle is dropped.
    pub async fn start(opts: DoubleOptions) -> io::Result<DoubleHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let tls = if opts.tls { Some(tls::Tls::generate()?) } else { None };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(opts)),
            addr,
            tls,
        });
        let (tx, rx) = watch::channel(false);
        tokio::spawn(controllers::run_clock(shared.clone(), rx.clone()));
        tokio::spawn(server::serve(listener, shared.clone(), rx));
        Ok(DoubleHandle {
            inner: Arc::new(Inner {
                shared,
                shutdown: tx,
            }),
        })
    }

    /// Starts a double on its own thread and runtime, for synchronous tests.
    /// The double stops when the returned value is dropped.
    pub fn spawn_blocking_runtime(opts: DoubleOptions) -> io::Result<BlockingDouble> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel::<io::Result<DoubleHandle>>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("apiserver-double".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let started = rt.block_on(Double::start(opts));
                let handle = match started {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(handle.clone()));
                let _ = stop_rx.recv();
                drop(handle);
                rt.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| io::Error::other("the double's thread exited before starting"))??;
        Ok(BlockingDouble {
            handle: Some(handle),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// A minimal Istio control plane for tests: the `istiod` Deployment in `istio-system`, labelled
/// `app=istiod` (and `istio.io/rev` when `revision` is given, named `istiod-<revision>`) as
/// Istio's chart labels it. Created through the API, it runs a ready pod, and the simulated
/// injector serves its revision (`default` without one). The namespace must exist.
pub fn istiod(revision: Option<&str>) -> Value {
    let name = revision.map_or("istiod".to_string(), |r| format!("istiod-{r}"));
    let mut labels = json!({"app": "istiod", "istio": "pilot"});
    if let Some(r) = revision {
        labels["istio.io/rev"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "istio-system", "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.24.0",
                                                       "ports": [{"containerPort": 15012, "name": "grpc-xds"}, {"containerPort": 15017, "name": "https-webhooks"}]}]}}}
    })
}

/// A running double. Clones share the server; it stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct DoubleHandle {
    inner: Arc<Inner>,
}

impl DoubleHandle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.shared.lock()
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`DoubleOptions::tls`]).
    pub fn url(&self) -> String {
        self.inner.shared.url()
    }

    /// The CA certificate (PEM) that signed the serving certificate, with [`DoubleOptions::tls`].
    pub fn ca_pem(&self) -> Option<String> {
        self.inner.shared.ca_pem().map(str::to_string)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.shared.addr
    }

    /// The kubeconfig text (cluster, user and context `double`).
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        kubeconfig_yaml_with_ca(&self.url(), namespace, &self.state().opts.token, self.inner.shared.ca_pem())
    }

    /// Adds a bearer token authenticating as `user` in `groups` (plus `system:authenticated`)
    /// while the double enforces RBAC.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.state()
            .opts
            .tokens
            .insert(token.to_string(), rbac::UserInfo::authenticated(user, groups));
    }

    /// Writes `dir/kubeconfig` with `token` as the user's credentials and returns its path.
    pub fn write_kubeconfig_with_token(
        &self,
        dir: impl AsRef<Path>,
        namespace: &str,
        token: &str,
    ) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir.as_ref())?;
        let path = dir.as_ref().join("kubeconfig");
        std::fs::write(&path, kubeconfig_yaml_with_ca(&self.url(), namespace, token, self.inner.shared.ca_pem()))?;
        Ok(path)
    }

    /// What RBAC decides for `user` (with its groups) and a request described by `attrs`, by the
    /// stored RBAC objects and the default roles: the authorizer the double enforces with
    /// [`DoubleOptions::rbac`].
    pub fn authorize(&self, user: &rbac::UserInfo, attrs: &rbac::Attributes) -> rbac::Decision {
        rbac::policy_of(&self.state()).authorize(user, attrs)
    }

    /// Writes `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: impl AsRef<Path>, namespace: &str) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir.as_ref())?;
        let path = dir.as_ref().join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml(namespace))?;
        Ok(path)
    }

    /// Stores objects from a YAML/JSON stream as given (see
    /// [`State::load_one`](store::State::load_one)): CRDs first, then
    /// namespaces, then the rest; no admission, no controllers.
    pub fn load_yaml(&self, text: &str) -> Result<Vec<ObjectKey>, DoubleError> {
        let docs = parse_documents(text)?;
        Ok(self.state().load_many(docs)?)
    }

    /// Stores objects as given.
    pub fn load_values(
        &self,
        objs: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<ObjectKey>, DoubleError> {
        Ok(self.state().load_many(objs.into_iter().collect())?)
    }

    /// Installs CRDs (e.g. [`crds::istio()`]).
    pub fn install_crds(&self, crds: Vec<Value>) -> Result<Vec<ObjectKey>, DoubleError> {
        self.load_values(crds)
    }

    /// Creates an object with API semantics (defaulting, injection,
    /// controllers). The namespace comes from `metadata.namespace`
    /// (default `default`).
    pub fn create(&self, obj: Value) -> Result<Value, DoubleError> {
        let mut st = self.state();
        Ok(create_in_state(&mut st, obj)?)
    }

    /// Server-side applies an object as `manager`.
    pub fn apply(&self, obj: Value, manager: &str, force: bool) -> Result<Value, DoubleError> {
        let mut st = self.state();
        let rt = type_of(&st, &obj)?;
        let ns = util::meta_str(&obj, "namespace")
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let name = util::meta_str(&obj, "name").unwrap_or("").to_string();
        let o = WriteOpts {
            manager: manager.into(),
            explicit_manager: true,
            force,
            ..WriteOpts::default()
        };
        let body = serde_json::to_vec(&obj).unwrap_or_default();
        let out = st.apply(&rt, &ns, &name, &body, &o)?;
        controllers::settle(&mut st);
        Ok(out)
    }

    /// Gets an object as served (with managedFields).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.state();
        let rt = find_type(&st, api_version, kind)?;
        st.get(&rt, namespace.unwrap_or(""), name)
            .ok()
            .map(|s| st.served(&rt, s))
    }

    /// Lists objects of a kind (all namespaces if `namespace` is `None`).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let st = self.state();
        let Some(rt) = find_type(&st, api_version, kind) else {
            return vec![];
        };
        match st.list(&rt, namespace, &store::ListQuery::default()) {
            Ok(page) => page.items.iter().map(|s| st.served(&rt, s)).collect(),
            Err(_) => vec![],
        }
    }

    /// Deletes an object with API semantics.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), DoubleError> {
        let mut st = self.state();
        let rt = find_type(&st, api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no matches for kind \"{kind}\" in version \"{api_version}\""
            ))
        })?;
        st.delete(
            &rt,
            namespace.unwrap_or(""),
            name,
            &store::DeleteOpts::default(),
        )?;
        controllers::settle(&mut st);
        Ok(())
    }

    /// The pods workload `name` in `namespace` creates from now on (see
    /// [`DoubleOptions::pod_behaviours`]) behave as `behaviour`, as a new version of an
    /// application that misbehaves or recovers; running pods keep theirs.
    pub fn set_pod_behaviour(&self, namespace: &str, name: &str, behaviour: PodBehaviour) {
        controllers::set_pod_behaviour(&mut self.state(), namespace, name, behaviour);
    }

    /// As [`Self::set_pod_behaviour`], and the running pods too: they turn unready
    /// (`NeverReady`), start crash-looping (`CrashLoop`) or become Ready after the delay
    /// (`Ready`), as an application failing or recovering in place.
    pub fn set_running_pod_behaviour(&self, namespace: &str, name: &str, behaviour: PodBehaviour) {
        controllers::set_running_pod_behaviour(&mut self.state(), namespace, name, behaviour);
    }

    /// All objects with volatile fields removed (see [`strip_volatile`]).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            objects: self.state().snapshot(),
        }
    }

    /// The request log (API requests only, in arrival order).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().log.all()
    }

    /// Requests whose method equals `method` (`*` for any) and whose path
    /// matches `path_regex`.
    pub fn requests_matching(&self, method: &str, path_regex: &str) -> Vec<RequestRecord> {
        let re = regex::Regex::new(path_regex).ok();
        self.requests()
            .into_iter()
            .filter(|r| method == "*" || r.method.eq_ignore_ascii_case(method))
            .filter(|r| re.as_ref().is_some_and(|re| re.is_match(&r.path)))
            .collect()
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, DoubleError> {
        Ok(self.state().faults.add(rule)?)
    }

    /// Removes a fault rule.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.state().faults.remove(id)
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Rules with their counters.
    pub fn faults(&self) -> Vec<RuleInfo> {
        self.state().faults.list()
    }

    /// Removes every object, log entry and rule; re-creates the default
    /// namespaces.
    pub fn reset(&self) {
        self.state().reset();
    }

    /// Runs `f` with the locked state (for assertions the API above does not cover).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state())
    }
}

/// A double running on its own thread; derefs to [`DoubleHandle`] and stops
/// when dropped.
pub struct BlockingDouble {
    handle: Option<DoubleHandle>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for BlockingDouble {
    type Target = DoubleHandle;
    fn deref(&self) -> &DoubleHandle {
        self.handle.as_ref().expect("handle is present until drop")
    }
}

impl Drop for BlockingDouble {
    fn drop(&mut self) {
        self.handle.take();
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_streams() {
        let docs = parse_documents("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  x: \"1\"\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["data"]["x"], "1");
        let docs = parse_documents(r#"[{"kind":"A"},{"kind":"B"}]"#).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(parse_documents("a: [").is_err());
    }

    #[test]
    fn snapshot_diff_reports_changes() {
        let a = Snapshot {
            objects: BTreeMap::from([
                ("x".to_string(), serde_json::json!(1)),
                ("y".to_string(), serde_json::json!(2)),
            ]),
        };
        let b = Snapshot {
            objects: BTreeMap::from([
                ("x".to_string(), serde_json::json!(3)),
                ("z".to_string(), serde_json::json!(2)),
            ]),
        };
        let d = a.diff(&b);
        assert_eq!(d.len(), 3);
        assert!(a.diff(&a.clone()).is_empty());
    }
}
