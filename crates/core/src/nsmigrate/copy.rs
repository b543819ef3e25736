//! The copy transform: the objects of the legacy namespace as they should exist in the mesh
//! namespace. Pure: objects in, objects out, with a record of every adjustment.
//!
//! What is copied: Deployments, StatefulSets and DaemonSets, Services, ServiceAccounts, Roles
//! and RoleBindings (subjects that are ServiceAccounts of the namespace bind the copies),
//! HorizontalPodAutoscalers (their target keeps its name) and ConfigMaps; Secrets only when asked (their values are carried over but never appear in notes
//! or errors). What is left behind, with the reason: Jobs and CronJobs (they would run twice),
//! the `default` ServiceAccount and the ConfigMaps Kubernetes and Istio publish into every
//! namespace (the new namespace gets its own), service-account token Secrets and Helm release
//! records.
//!
//! Every copy loses what the API server set (uid, resourceVersion, generation, timestamps,
//! managedFields, owner references, status, allocated cluster IPs and node ports) and the
//! annotations that tie it to its old owner (`last-applied-configuration`, Helm's release
//! annotations). NodePort and LoadBalancer Services become ClusterIP: the copy is reached through
//! the mesh, and a second load balancer for the same app is never what anyone wanted.
//!
//! Namespace references are adjusted where they are data the pods read: environment values,
//! command and arguments, ConfigMap (and copied Secret) values, and pod-affinity namespace lists.
//! `<name>.<ns>.svc[.cluster.local]` always moves to `<ns>-mesh`; the short form `<svc>.<ns>` only
//! for Services of the namespace and only when it is not part of a longer domain; a value that is
//! exactly the namespace name becomes the mesh namespace name.

use std::collections::BTreeSet;

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{COPIED_FROM_LABEL, DataPlane, MANAGED_BY, PodSecurity, Sides};

/// What to copy and how to label the mesh namespace.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    pub data_plane: DataPlane,
    pub pod_security: PodSecurity,
    /// Copy Secrets too.
    pub secrets: bool,
}

/// An object of the legacy namespace that was not copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub object: String,
    pub reason: String,
}

/// One adjustment made to a copy (never carries a Secret value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjustment {
    pub object: String,
    pub field: String,
    pub change: String,
}

/// A pod spec the enforced Pod Security level would reject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub object: String,
    pub problem: String,
}

/// The result of [`copy_namespace`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopySet {
    /// The mesh Namespace object.
    pub namespace: Value,
    /// The copies, in apply order: ServiceAccounts, Roles, RoleBindings, ConfigMaps, Secrets,
    /// Services, workloads, HorizontalPodAutoscalers.
    pub objects: Vec<Value>,
    pub skipped: Vec<Skipped>,
    pub adjustments: Vec<Adjustment>,
    pub violations: Vec<Violation>,
    /// Secrets the copies read (env, envFrom, volumes, image pull secrets) that are not copied:
    /// `Kind/name` of the workload and the Secret's name.
    pub uncopied_secrets: Vec<(String, String)>,
}

/// Kinds the copy reads from the legacy namespace.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

fn order(kind: &str) -> usize {
    match kind {
        "ServiceAccount" => 0,
        "Role" => 1,
        "RoleBinding" => 2,
        "ConfigMap" => 3,
        "Secret" => 4,
        "Service" => 5,
        "HorizontalPodAutoscaler" => 7,
        _ => 6,
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// `Kind/name`.
pub fn object_name(v: &Value) -> String {
    format!("{}/{}", str_at(v, "/kind").unwrap_or("?"), str_at(v, "/metadata/name").unwrap_or("?"))
}

/// The mesh Namespace: injection (or ambient) and Pod Security labels, and where it came from.
pub fn mesh_namespace(sides: &Sides, opts: &CopyOptions) -> Value {
    let mut labels = Map::new();
    labels.insert("app.kubernetes.io/managed-by".into(), json!(MANAGED_BY));
    labels.insert(COPIED_FROM_LABEL.into(), json!(sides.legacy));
    match &opts.data_plane {
        DataPlane::Sidecar => {
            labels.insert("istio-injection".into(), json!("enabled"));
        }
        DataPlane::SidecarRevision { revision } => {
            labels.insert("istio.io/rev".into(), json!(revision));
        }
        DataPlane::Ambient => {
            labels.insert("istio.io/dataplane-mode".into(), json!("ambient"));
        }
    }
    if let Some(level) = opts.pod_security.label_value() {
        for mode in ["enforce", "audit", "warn"] {
            labels.insert(format!("pod-security.kubernetes.io/{mode}"), json!(level));
            labels.insert(format!("pod-security.kubernetes.io/{mode}-version"), json!("latest"));
        }
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sides.mesh, "labels": labels}})
}

/// Copy the objects of the legacy namespace (any kinds may be passed; others are ignored).
pub fn copy_namespace(sides: &Sides, objects: &[Value], opts: &CopyOptions) -> CopySet {
    let services: BTreeSet<String> = objects
        .iter()
        .filter(|o| str_at(o, "/kind") == Some("Service"))
        .filter_map(|o| str_at(o, "/metadata/name").map(str::to_string))
        .collect();
    let rewriter = Rewriter::new(sides, services);
    let mut set = CopySet { namespace: mesh_namespace(sides, opts), ..CopySet::default() };
    for obj in objects {
        let kind = str_at(obj, "/kind").unwrap_or_default();
        let name = str_at(obj, "/metadata/name").unwrap_or_default();
        let id = object_name(obj);
        if let Some(reason) = skip_reason(kind, name, obj, opts) {
            if !reason.is_empty() {
                set.skipped.push(Skipped { object: id, reason });
            }
            continue;
        }
        let mut copy = obj.clone();
        strip_server_fields(&mut copy);
        if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(sides.mesh));
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(COPIED_FROM_LABEL.into(), json!(sides.legacy));
            }
        }
        let mut adj = Vec::new();
        match kind {
            "Service" => service(&mut copy, &id, &rewriter, &mut adj),
            "ConfigMap" => config_map(&mut copy, &id, &rewriter, &mut adj),
            "Secret" => secret(&mut copy, &id, &rewriter, &mut adj),
            "Role" => {}
            "RoleBinding" => role_binding(&mut copy, &id, sides, &mut adj),
            // scaleTargetRef names a workload of the same namespace: its copy has the same name.
            "HorizontalPodAutoscaler" => {}
            "ServiceAccount" => {
                // Token Secrets are per namespace; the new namespace mints its own.
                if let Some(m) = copy.as_object_mut() {
                    m.remove("secrets");
                }
            }
            _ => {
                if let Some(spec) = copy.pointer_mut("/spec/template/spec") {
                    pod_spec(spec, &id, &rewriter, &mut adj);
                }
                if let Some(tm) = copy.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut) {
                    tm.remove("creationTimestamp");
                    if let Some(a) = tm.get_mut("annotations").and_then(Value::as_object_mut) {
                        a.remove("sidecar.istio.io/status");
                    }
                }
                if let Some(Value::Array(vcts)) = copy.pointer_mut("/spec/volumeClaimTemplates") {
                    for t in vcts {
                        if let Some(m) = t.as_object_mut() {
                            m.remove("status");
                        }
                        if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("creationTimestamp");
                        }
                    }
                }
                if !opts.secrets
                    && let Some(spec) = obj.pointer("/spec/template/spec")
                {
                    for secret in secret_refs(spec) {
                        set.uncopied_secrets.push((id.clone(), secret));
                    }
                }
                let level = opts.pod_security;
                if let Some(spec) = obj.pointer("/spec/template/spec") {
                    for problem in pod_security_problems(spec, level) {
                        set.violations.push(Violation { object: id.clone(), problem });
                    }
                }
                if str_at(obj, "/spec/template/metadata/labels/sidecar.istio.io~1inject") == Some("false")
                    || str_at(obj, "/spec/template/metadata/annotations/sidecar.istio.io~1inject") == Some("false")
                {
                    adj.push(Adjustment {
                        object: id.clone(),
                        field: "spec.template".into(),
                        change: "kept sidecar.istio.io/inject=false: this workload's copy runs without a proxy".into(),
                    });
                }
            }
        }
        set.adjustments.extend(adj);
        set.objects.push(copy);
    }
    set.objects.sort_by_key(|o| order(str_at(o, "/kind").unwrap_or_default()));
    set
}

/// `Some("")`: ignored silently (a kind the copy does not handle). `Some(reason)`: skipped, listed.
fn skip_reason(kind: &str, name: &str, obj: &Value, opts: &CopyOptions) -> Option<String> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Service" | "Role" | "RoleBinding" | "HorizontalPodAutoscaler" => None,
        "ServiceAccount" if name == "default" => Some("every namespace gets its own `default` ServiceAccount".into()),
        "ServiceAccount" => None,
        "ConfigMap" if name == "kube-root-ca.crt" || name == "istio-ca-root-cert" => {
            Some("published into every namespace by the cluster".into())
        }
        "ConfigMap" if obj.pointer("/metadata/labels/app.kubernetes.io~1managed-by").and_then(Value::as_str) == Some(MANAGED_BY) => {
            // The journal and other bookkeeping of this tool: not part of the application.
            Some(String::new())
        }
        "ConfigMap" => None,
        "Secret" if !opts.secrets => Some("Secrets are copied only with --copy-secrets".into()),
        "Secret" => match str_at(obj, "/type") {
            Some("kubernetes.io/service-account-token") => Some("service-account tokens are minted per namespace".into()),
            Some("helm.sh/release.v1") => Some("a Helm release record belongs to its release's namespace".into()),
            _ => None,
        },
        "Job" | "CronJob" => Some(format!("{kind}s are not copied: they would run in both namespaces")),
        "NetworkPolicy" => Some("the mesh namespace needs its own policies (its callers, the mesh ports)".into()),
        "PodDisruptionBudget" => Some("add one for the copies if they need it".into()),
        _ => Some(String::new()),
    }
}

fn strip_server_fields(v: &mut Value) {
    let Some(m) = v.as_object_mut() else { return };
    m.remove("status");
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "generateName",
        ] {
            meta.remove(f);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.retain(|k, _| {
                !(k == "kubectl.kubernetes.io/last-applied-configuration"
                    || k == "deployment.kubernetes.io/revision"
                    || k.starts_with("meta.helm.sh/"))
            });
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

fn service(v: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    spec.remove("clusterIPs");
    if !headless {
        spec.remove("clusterIP");
    }
    spec.remove("healthCheckNodePort");
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.insert("type".into(), json!("ClusterIP"));
        for f in
            ["loadBalancerIP", "loadBalancerSourceRanges", "loadBalancerClass", "externalTrafficPolicy", "allocateLoadBalancerNodePorts"]
        {
            spec.remove(f);
        }
        adj.push(Adjustment {
            object: id.into(),
            field: "spec.type".into(),
            change: format!("{ty} -> ClusterIP (the copy is reached through the mesh)"),
        });
    }
    if spec.remove("externalIPs").is_some() {
        adj.push(Adjustment {
            object: id.into(),
            field: "spec.externalIPs".into(),
            change: "removed (they stay with the legacy Service)".into(),
        });
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    if ty == "ExternalName"
        && let Some(Value::String(name)) = spec.get_mut("externalName")
        && let Some((new, what)) = rw.rewrite(name)
    {
        *name = new;
        adj.push(Adjustment { object: id.into(), field: "spec.externalName".into(), change: what });
    }
}

/// Subjects that are ServiceAccounts of the legacy namespace bind their copies instead; other
/// subjects (users, groups, ServiceAccounts of other namespaces) stay as they are. The roleRef
/// stays: a Role of the namespace is copied under the same name, a ClusterRole is shared.
fn role_binding(v: &mut Value, id: &str, sides: &Sides, adj: &mut Vec<Adjustment>) {
    let Some(Value::Array(subjects)) = v.get_mut("subjects") else { return };
    for s in subjects {
        if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
            && s.get("namespace").and_then(Value::as_str) == Some(sides.legacy.as_str())
        {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
            s["namespace"] = json!(sides.mesh);
            adj.push(Adjustment {
                object: id.into(),
                field: "subjects".into(),
                change: format!("ServiceAccount {}/{name} -> {}/{name}", sides.legacy, sides.mesh),
            });
        }
    }
}

fn config_map(v: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
        for (key, val) in data.iter_mut() {
            if let Value::String(s) = val
                && let Some((new, what)) = rw.rewrite(s)
            {
                *s = new;
                adj.push(Adjustment { object: id.into(), field: format!("data.{key}"), change: what });
            }
        }
    }
}

/// Secret values are rewritten like ConfigMap values, but the adjustment never shows them.
fn secret(v: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
        for (key, val) in data.iter_mut() {
            let Some(text) = val.as_str().and_then(|s| b64.decode(s).ok()).and_then(|b| String::from_utf8(b).ok()) else { continue };
            if let Some((new, _)) = rw.rewrite(&text) {
                *val = json!(b64.encode(new));
                adj.push(Adjustment {
                    object: id.into(),
                    field: format!("data.{key}"),
                    change: "namespace references adjusted (value not shown)".into(),
                });
            }
        }
    }
    if let Some(data) = v.get_mut("stringData").and_then(Value::as_object_mut) {
        for (key, val) in data.iter_mut() {
            if let Value::String(s) = val
                && let Some((new, _)) = rw.rewrite(s)
            {
                *s = new;
                adj.push(Adjustment {
                    object: id.into(),
                    field: format!("stringData.{key}"),
                    change: "namespace references adjusted (value not shown)".into(),
                });
            }
        }
    }
}

fn pod_spec(spec: &mut Value, id: &str, rw: &Rewriter, adj: &mut Vec<Adjustment>) {
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else { continue };
        for c in containers {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
            if let Some(Value::Array(env)) = c.get_mut("env") {
                for e in env {
                    let ename = e.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
                    if let Some(Value::String(s)) = e.get_mut("value")
                        && let Some((new, what)) = rw.rewrite(s)
                    {
                        *s = new;
                        adj.push(Adjustment { object: id.into(), field: format!("container {cname} env {ename}"), change: what });
                    }
                }
            }
            for field in ["command", "args"] {
                if let Some(Value::Array(items)) = c.get_mut(field) {
                    for (i, item) in items.iter_mut().enumerate() {
                        if let Value::String(s) = item
                            && let Some((new, what)) = rw.rewrite(s)
                        {
                            *s = new;
                            adj.push(Adjustment { object: id.into(), field: format!("container {cname} {field}[{i}]"), change: what });
                        }
                    }
                }
            }
        }
    }
    rewrite_affinity_namespaces(spec, rw, id, adj);
}

fn rewrite_affinity_namespaces(spec: &mut Value, rw: &Rewriter, id: &str, adj: &mut Vec<Adjustment>) {
    for kind in ["podAffinity", "podAntiAffinity"] {
        for rule in ["requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"] {
            let Some(Value::Array(terms)) = spec.pointer_mut(&format!("/affinity/{kind}/{rule}")) else { continue };
            for t in terms {
                let term = if t.get("podAffinityTerm").is_some() { t.get_mut("podAffinityTerm") } else { Some(t) };
                let Some(Value::Array(nss)) = term.and_then(|t| t.get_mut("namespaces")) else { continue };
                for ns in nss {
                    if ns.as_str() == Some(rw.sides.legacy.as_str()) {
                        *ns = json!(rw.sides.mesh);
                        adj.push(Adjustment {
                            object: id.into(),
                            field: format!("affinity.{kind}.namespaces"),
                            change: format!("{} -> {}", rw.sides.legacy, rw.sides.mesh),
                        });
                    }
                }
            }
        }
    }
}

/// Rewrites references to the legacy namespace in a string.
pub struct Rewriter {
    sides: Sides,
    services: BTreeSet<String>,
    re: regex::Regex,
}

impl Rewriter {
    pub fn new(sides: &Sides, services: BTreeSet<String>) -> Rewriter {
        let pattern = format!(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.{}(\.svc(\.cluster\.local)?)?", regex::escape(&sides.legacy));
        Rewriter { sides: sides.clone(), services, re: regex::Regex::new(&pattern).expect("valid pattern") }
    }

    /// The rewritten string and a description of what changed (the references, not the whole
    /// value), or `None` when nothing refers to the legacy namespace.
    pub fn rewrite(&self, s: &str) -> Option<(String, String)> {
        if s == self.sides.legacy {
            return Some((self.sides.mesh.clone(), format!("{} -> {}", self.sides.legacy, self.sides.mesh)));
        }
        let bytes = s.as_bytes();
        let label_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        let mut out = String::with_capacity(s.len() + 8);
        let mut last = 0;
        let mut changes: Vec<String> = Vec::new();
        for caps in self.re.captures_iter(s) {
            let whole = caps.get(0).expect("match");
            let label = caps.get(1).expect("label");
            let svc_form = caps.get(3).is_some();
            let before = label.start().checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(whole.end()).copied();
            // The match must not continue a longer label on either side.
            if before.is_some_and(label_char) || after.is_some_and(label_char) {
                continue;
            }
            // `<svc>.<ns>` without `.svc`: only a Service of the namespace, not inside a longer domain.
            let ok = svc_form || (self.services.contains(label.as_str()) && before != Some(b'.') && after != Some(b'.'));
            if !ok {
                continue;
            }
            let suffix = caps.get(3).map_or("", |m| m.as_str());
            let from = whole.as_str().to_string();
            let to = format!("{}.{}{suffix}", label.as_str(), self.sides.mesh);
            out.push_str(&s[last..whole.start()]);
            out.push_str(&to);
            last = whole.end();
            let c = format!("{from} -> {to}");
            if !changes.contains(&c) {
                changes.push(c);
            }
        }
        if changes.is_empty() {
            return None;
        }
        out.push_str(&s[last..]);
        Some((out, changes.join(", ")))
    }
}

/// The Secrets a pod spec reads: env `secretKeyRef`, `envFrom` `secretRef`, secret volumes
/// (also in projected volumes) and image pull secrets. Names only, sorted, without duplicates.
pub fn secret_refs(spec: &Value) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut add = |v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str) {
            out.insert(n.to_string());
        }
    };
    for list in ["initContainers", "containers"] {
        for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                add(e.pointer("/valueFrom/secretKeyRef/name"));
            }
            for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                add(e.pointer("/secretRef/name"));
            }
        }
    }
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        add(v.pointer("/secret/secretName"));
        for src in v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            add(src.pointer("/secret/name"));
        }
    }
    for s in spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
        add(s.get("name"));
    }
    out.into_iter().collect()
}

/// What Pod Security `level` would reject in a pod spec (empty for `baseline` and looser levels
/// when nothing privileged is used). Covers the checks of the `restricted` and `baseline` profiles
/// that pod templates commonly trip over.
pub fn pod_security_problems(spec: &Value, level: PodSecurity) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(level, PodSecurity::Privileged | PodSecurity::None) {
        return out;
    }
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(f).and_then(Value::as_bool) == Some(true) {
            out.push(format!("{f}: true is not allowed"));
        }
    }
    if let Some(Value::Array(vols)) = spec.get("volumes") {
        for v in vols.iter().filter(|v| v.get("hostPath").is_some()) {
            out.push(format!("hostPath volume `{}` is not allowed", v.get("name").and_then(Value::as_str).unwrap_or("?")));
        }
    }
    let pod_non_root = spec.pointer("/securityContext/runAsNonRoot").and_then(Value::as_bool) == Some(true);
    let pod_seccomp = spec.pointer("/securityContext/seccompProfile/type").and_then(Value::as_str);
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = spec.get(list) else { continue };
        for c in cs {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let sc = c.get("securityContext");
            let get = |p: &str| sc.and_then(|s| s.pointer(p));
            if get("/privileged").and_then(Value::as_bool) == Some(true) {
                out.push(format!("container {name}: privileged"));
            }
            if let Some(Value::Array(ports)) = c.get("ports")
                && ports.iter().any(|p| p.get("hostPort").and_then(Value::as_i64).is_some_and(|h| h != 0))
            {
                out.push(format!("container {name}: hostPort is not allowed"));
            }
            if level != PodSecurity::Restricted {
                continue;
            }
            if get("/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
                out.push(format!("container {name}: allowPrivilegeEscalation must be false"));
            }
            let non_root = get("/runAsNonRoot").and_then(Value::as_bool);
            if non_root == Some(false) || (non_root.is_none() && !pod_non_root) {
                out.push(format!("container {name}: runAsNonRoot must be true (pod or container)"));
            }
            if get("/runAsUser").and_then(Value::as_i64) == Some(0) {
                out.push(format!("container {name}: runAsUser must not be 0"));
            }
            let drops_all =
                get("/capabilities/drop").and_then(Value::as_array).is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
            if !drops_all {
                out.push(format!("container {name}: capabilities must drop ALL"));
            }
            if let Some(Value::Array(add)) = get("/capabilities/add") {
                for cap in add.iter().filter_map(Value::as_str).filter(|c| *c != "NET_BIND_SERVICE") {
                    out.push(format!("container {name}: capability {cap} may not be added"));
                }
            }
            let seccomp = get("/seccompProfile/type").and_then(Value::as_str).or(pod_seccomp);
            if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                out.push(format!("container {name}: seccompProfile must be RuntimeDefault or Localhost"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sides() -> Sides {
        Sides::new("shop").unwrap()
    }

    fn objects() -> Vec<Value> {
        let b64 = base64::engine::general_purpose::STANDARD;
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "shop", "uid": "u1", "resourceVersion": "7", "generation": 3,
                    "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "helm"}],
                    "labels": {"app": "api"},
                    "annotations": {"deployment.kubernetes.io/revision": "3", "meta.helm.sh/release-name": "shop", "team": "core"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "api"}},
                        "spec": {"containers": [{"name": "api", "image": "api:1",
                            "env": [
                                {"name": "DB", "value": "postgres://u:hunter2@db.shop.svc.cluster.local:5432/x"},
                                {"name": "CACHE", "value": "cache.shop:6379"},
                                {"name": "OTHER", "value": "api.shop.example.com"},
                                {"name": "POD", "value": "db-0.db.shop.svc"},
                                {"name": "NS", "value": "shop"},
                                {"name": "SHOPPING", "value": "cache.shopping"},
                                {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                            "args": ["--upstream=http://cache.shop"]}],
                        "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 1, "podAffinityTerm": {"topologyKey": "x", "namespaces": ["shop", "other"]}}]}}}}},
                "status": {"replicas": 2}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cache", "namespace": "shop"},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "externalTrafficPolicy": "Local",
                    "healthCheckNodePort": 31000, "ports": [{"port": 6379, "nodePort": 30007}]}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}, "secrets": [{"name": "api-token"}]}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}, "data": {"ca.crt": "x"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}, "data": {"url": "http://db.shop.svc:5432", "plain": "x"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"}, "type": "Opaque",
                "data": {"url": b64.encode("postgres://u:s3cr3t-value@db.shop.svc.cluster.local/x")}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok", "namespace": "shop"}, "type": "kubernetes.io/service-account-token"}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-1", "namespace": "shop"}}),
        ]
    }

    fn find<'a>(set: &'a CopySet, kind: &str, name: &str) -> &'a Value {
        set.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} not copied"))
    }

    #[test]
    fn copies_move_to_the_mesh_namespace_without_server_fields() {
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        let kinds: Vec<String> = set.objects.iter().map(object_name).collect();
        assert_eq!(kinds, ["ServiceAccount/api", "ConfigMap/cfg", "Service/db", "Service/cache", "Deployment/api"]);
        let d = find(&set, "Deployment", "api");
        assert_eq!(d["metadata"]["namespace"], "shop-mesh");
        for f in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"] {
            assert!(d["metadata"].get(f).is_none(), "{f} kept");
        }
        assert!(d.get("status").is_none());
        assert_eq!(d["metadata"]["annotations"], json!({"team": "core"}));
        assert_eq!(d["metadata"]["labels"][COPIED_FROM_LABEL], "shop");
        assert!(d["spec"]["template"]["metadata"].get("creationTimestamp").is_none());
        let cache = find(&set, "Service", "cache");
        assert_eq!(cache["spec"], json!({"type": "ClusterIP", "ports": [{"port": 6379}]}));
        assert_eq!(find(&set, "Service", "db")["spec"]["clusterIP"], "None", "headless stays headless");
        assert!(find(&set, "ServiceAccount", "api").get("secrets").is_none());
        let skipped: Vec<&str> = set.skipped.iter().map(|s| s.object.as_str()).collect();
        assert_eq!(skipped, ["ServiceAccount/default", "ConfigMap/kube-root-ca.crt", "Secret/creds", "Secret/tok", "CronJob/nightly"]);
        assert!(set.skipped[2].reason.contains("--copy-secrets"));
    }

    #[test]
    fn namespace_references_are_adjusted_where_pods_read_them() {
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        let d = find(&set, "Deployment", "api");
        let env: Vec<&str> = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap_or("<from>"))
            .collect();
        assert_eq!(
            env,
            [
                "postgres://u:hunter2@db.shop-mesh.svc.cluster.local:5432/x",
                "cache.shop-mesh:6379",
                "api.shop.example.com",
                "db-0.db.shop-mesh.svc",
                "shop-mesh",
                "cache.shopping",
                "<from>"
            ]
        );
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["args"][0], "--upstream=http://cache.shop-mesh");
        let term = &d["spec"]["template"]["spec"]["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(term["podAffinityTerm"]["namespaces"], json!(["shop-mesh", "other"]));
        assert_eq!(find(&set, "ConfigMap", "cfg")["data"]["url"], "http://db.shop-mesh.svc:5432");
        // Adjustments name the references, never the whole value (the URL carries a password).
        let db = set.adjustments.iter().find(|a| a.field == "container api env DB").unwrap();
        assert_eq!(db.change, "db.shop.svc.cluster.local -> db.shop-mesh.svc.cluster.local");
        assert!(set.adjustments.iter().all(|a| !a.change.contains("hunter2")));
        assert!(set.adjustments.iter().any(|a| a.object == "Service/cache" && a.change.contains("LoadBalancer -> ClusterIP")));
    }

    #[test]
    fn roles_bindings_and_autoscalers_are_copied_with_their_service_accounts_moved() {
        let objs = vec![
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api", "namespace": "shop", "uid": "h"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "minReplicas": 2, "maxReplicas": 5},
                "status": {"currentReplicas": 2}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "api-reader", "namespace": "shop"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
                    {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "shop"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "shop"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}}),
        ];
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        let names: Vec<String> = set.objects.iter().map(object_name).collect();
        assert_eq!(names, ["ServiceAccount/api", "Role/reader", "RoleBinding/api-reader", "HorizontalPodAutoscaler/api"]);
        let rb = find(&set, "RoleBinding", "api-reader");
        assert_eq!(rb["metadata"]["namespace"], "shop-mesh");
        assert_eq!(rb["roleRef"], objs[1]["roleRef"]);
        assert_eq!(rb["subjects"][0]["namespace"], "shop-mesh");
        assert_eq!(rb["subjects"][1]["namespace"], "tools");
        assert_eq!(rb["subjects"][2], objs[1]["subjects"][2]);
        assert_eq!(set.adjustments.len(), 1);
        assert_eq!(set.adjustments[0].change, "ServiceAccount shop/api -> shop-mesh/api");
        let hpa = find(&set, "HorizontalPodAutoscaler", "api");
        assert_eq!(hpa["spec"], objs[0]["spec"]);
        assert!(hpa.get("status").is_none() && hpa["metadata"].get("uid").is_none());
        assert_eq!(find(&set, "Role", "reader")["rules"], objs[2]["rules"]);
        assert!(set.skipped.is_empty());
    }

    #[test]
    fn secrets_are_copied_only_on_request_and_never_shown() {
        let opts = CopyOptions { secrets: true, ..CopyOptions::default() };
        let set = copy_namespace(&sides(), &objects(), &opts);
        let s = find(&set, "Secret", "creds");
        let decoded =
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s["data"]["url"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(decoded, "postgres://u:s3cr3t-value@db.shop-mesh.svc.cluster.local/x");
        let a = set.adjustments.iter().find(|a| a.object == "Secret/creds").unwrap();
        assert_eq!(a.change, "namespace references adjusted (value not shown)");
        let all = serde_json::to_string(&(&set.adjustments, &set.skipped, &set.violations)).unwrap();
        assert!(!all.contains("s3cr3t"));
        assert!(set.skipped.iter().any(|s| s.object == "Secret/tok"));
    }

    #[test]
    fn secrets_the_copies_read_are_listed_when_not_copied() {
        let spec = json!({"containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}],
            "envFrom": [{"secretRef": {"name": "env"}}, {"configMapRef": {"name": "cfg"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "tls"}}, {"name": "p", "projected": {"sources": [{"secret": {"name": "db"}}]}}],
            "imagePullSecrets": [{"name": "registry"}]});
        assert_eq!(secret_refs(&spec), ["db", "env", "registry", "tls"]);
        let objs =
            vec![json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {"template": {"spec": spec}}})];
        let set = copy_namespace(&sides(), &objs, &CopyOptions::default());
        assert_eq!(set.uncopied_secrets.len(), 4);
        assert_eq!(set.uncopied_secrets[0], ("Deployment/api".to_string(), "db".to_string()));
        let with = copy_namespace(&sides(), &objs, &CopyOptions { secrets: true, ..Default::default() });
        assert!(with.uncopied_secrets.is_empty());
    }

    #[test]
    fn the_mesh_namespace_is_labelled_for_the_data_plane_and_pod_security() {
        let ns = mesh_namespace(&sides(), &CopyOptions::default());
        let l = &ns["metadata"]["labels"];
        assert_eq!(ns["metadata"]["name"], "shop-mesh");
        assert_eq!(l["istio-injection"], "enabled");
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/enforce-version"], "latest");
        let amb =
            mesh_namespace(&sides(), &CopyOptions { data_plane: DataPlane::Ambient, pod_security: PodSecurity::None, secrets: false });
        let l = amb["metadata"]["labels"].as_object().unwrap();
        assert_eq!(l["istio.io/dataplane-mode"], "ambient");
        assert!(!l.contains_key("istio-injection"));
        assert!(!l.keys().any(|k| k.starts_with("pod-security")));
        let rev = mesh_namespace(
            &sides(),
            &CopyOptions { data_plane: DataPlane::SidecarRevision { revision: "1-24".into() }, ..Default::default() },
        );
        assert_eq!(rev["metadata"]["labels"]["istio.io/rev"], "1-24");
    }

    #[test]
    fn restricted_pod_security_problems_are_found() {
        let loose = json!({"containers": [{"name": "c"}], "hostNetwork": true});
        let p = pod_security_problems(&loose, PodSecurity::Restricted);
        assert!(p.iter().any(|x| x == "hostNetwork: true is not allowed"));
        assert!(p.iter().any(|x| x.contains("allowPrivilegeEscalation")));
        assert!(p.iter().any(|x| x.contains("runAsNonRoot")));
        assert!(p.iter().any(|x| x.contains("drop ALL")));
        assert!(p.iter().any(|x| x.contains("seccompProfile")));
        assert_eq!(pod_security_problems(&loose, PodSecurity::Baseline), ["hostNetwork: true is not allowed"]);
        let tight = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]});
        assert!(pod_security_problems(&tight, PodSecurity::Restricted).is_empty());
        let set = copy_namespace(&sides(), &objects(), &CopyOptions::default());
        assert!(set.violations.iter().all(|v| v.object == "Deployment/api"));
        assert!(!set.violations.is_empty());
    }
}
