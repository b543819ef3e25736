//! Who uses which database: connection strings and hosts in environment variables, Secrets and
//! ConfigMaps (through `env`, `envFrom` and mounted volumes), resolved through Services to the
//! databases behind them, plus CloudNativePG credential Secrets, which name their cluster.
//!
//! Ownership is decided per *service*, not per workload: a service's Deployment and its
//! migration Job using one database is normal, two services using it is the coupling `dbiso`
//! exists to find. [`service_of`] reads a workload's own identity from its labels;
//! [`services`] adds the one inference the labels cannot make, attributing a Job or CronJob to
//! the service whose long-running workloads run the same image.
//!
//! Secret values are read to find hosts but never leave this module: a [`Reference`] says *where*
//! a reference was found (`env DATABASE_URL from Secret api-db key url`), never what it
//! contained, and an [`Unresolved`] host that was read from a Secret is withheld (`host: None`),
//! since a host is part of the Secret's value.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::discover::Database;
use meshmove_model::inventory::{Inventory, ObjectRef, SourceInfo, kinds};
use meshmove_model::workload::{ConfigUse, Workload, config_refs, workloads};

/// A workload's use of a database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Reference {
    pub workload: ObjectRef,
    /// The service the workload belongs to (see [`services`]).
    pub service: String,
    pub database: ObjectRef,
    /// Where the reference was found; never contains a secret value.
    pub via: String,
}

/// A database-looking host a workload names that matches no Service of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unresolved {
    pub workload: ObjectRef,
    /// The host, or `None` when it was read from a Secret (then it is part of a secret value and
    /// is not shown).
    pub host: Option<String>,
    pub via: String,
}

/// The service identity of a workload from its own labels: `app.kubernetes.io/name`, else
/// `app`, else its name.
pub fn service_of(w: &Workload<'_>) -> String {
    let labels = w.pod_labels();
    labels
        .get("app.kubernetes.io/name")
        .or_else(|| labels.get("app"))
        .cloned()
        .unwrap_or_else(|| w.name().to_string())
}

/// Kinds that run a service's long-lived pods (as opposed to its batch tasks).
fn long_running(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod")
}

/// An image reference without tag and digest: `docker.io/a/b:1.2@sha256:..` -> `docker.io/a/b`.
pub fn image_repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => no_digest,
    }
}

/// The service of every workload, keyed by its object reference: [`service_of`], except for a
/// Job or CronJob whose images are all run by long-running workloads of exactly one service of
/// its namespace: it is that service's task (a migration, a backup) and belongs to it.
pub fn services(ws: &[Workload<'_>]) -> HashMap<ObjectRef, String> {
    // (namespace, image repository) -> services of the long-running workloads running it.
    let mut runners: HashMap<(&str, &str), BTreeSet<String>> = HashMap::new();
    for w in ws.iter().filter(|w| long_running(w.kind())) {
        let service = service_of(w);
        for image in w.images() {
            runners.entry((w.namespace(), image_repository(image))).or_default().insert(service.clone());
        }
    }
    ws.iter()
        .map(|w| {
            let own = service_of(w);
            let service = if long_running(w.kind()) {
                own
            } else {
                let mut candidates: BTreeSet<&String> = BTreeSet::new();
                let mut all_known = true;
                for image in w.images() {
                    match runners.get(&(w.namespace(), image_repository(image))) {
                        Some(s) => candidates.extend(s),
                        None => all_known = false,
                    }
                }
                match (all_known, candidates.len()) {
                    (true, 1) => candidates.into_iter().next().cloned().unwrap_or(own),
                    _ => own,
                }
            };
            (w.object.object_ref(), service)
        })
        .collect()
}

/// One value a workload receives, with where it came from.
struct EnvValue {
    key: String,
    value: String,
    via: String,
    /// Read from a Secret: never shown, not even in part.
    secret: bool,
    /// A word of a container's command or arguments (`nc -z postgres 5432`): a host only when it
    /// names a Service or database of the inventory, never reported as unresolved.
    token: bool,
}

/// What a workload reads: values, and the names of the Secrets it reads them from (also those
/// absent from the inventory, such as the ones an operator creates).
struct Inputs {
    values: Vec<EnvValue>,
    /// Secret name -> where it is used (first place found).
    secrets: BTreeMap<String, String>,
}

/// Map every workload's database references. Returns references and the database-looking hosts
/// that resolve to nothing.
pub fn references(inventory: &Inventory, dbs: &[Database]) -> (Vec<Reference>, Vec<Unresolved>) {
    let u = usage(inventory, dbs);
    (u.references, u.unresolved)
}

/// A Secret a workload reads that the inventory does not hold (created by hand, by an operator,
/// or by another chart): what the workload learns from it cannot be seen, so it may connect to
/// any database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Opaque {
    pub workload: ObjectRef,
    pub secret: String,
    /// Where it is read (`env DATABASE_URL from Secret api-db key url`).
    pub via: String,
}

/// Everything [`references`] finds, plus the [`Opaque`] inputs.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub references: Vec<Reference>,
    pub unresolved: Vec<Unresolved>,
    pub opaque: Vec<Opaque>,
    /// Every cluster host each workload names, database or not (hooks and databases included).
    pub hosts: Vec<NamedHost>,
    /// Every destination outside the cluster each workload names (hooks and databases included).
    pub external: Vec<ExternalHost>,
}

/// A destination outside the cluster a workload names: an IP address, or a DNS name cluster DNS
/// does not answer ([`is_cluster_name`]), such as a managed database's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternalHost {
    pub workload: ObjectRef,
    /// Lowercase, without port.
    pub host: String,
    /// The port the value names (`host:port`, libpq `port=`, a sibling `*_PORT` value), else the
    /// well-known port of the URL's scheme (`postgresql://` is 5432); `None` when nothing says.
    pub port: Option<u16>,
    /// Where it was found; never a value.
    pub via: String,
    /// Read from a Secret: the host is part of a secret value and is never shown or written.
    pub secret: bool,
}

impl ExternalHost {
    /// The address, when the host is one (rather than a DNS name).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.host.parse().ok()
    }
}

/// Whether a host is a destination outside the cluster: an IP address other than loopback (a
/// proxy sidecar in the pod, such as cloud-sql-proxy, listens there), or a dotted DNS name that is
/// not a cluster name.
pub fn is_external(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        Err(_) => {
            let h = host.trim_end_matches('.');
            h.contains('.') && h.contains(|c: char| c.is_ascii_alphabetic()) && !is_cluster_name(h)
        }
    }
}

/// A cluster DNS name a workload names somewhere in its pod spec or the values it reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedHost {
    pub workload: ObjectRef,
    pub host: String,
    /// Where it was found; never a value.
    pub via: String,
}

/// The words of a command or argument that could be a host: split at blanks, quotes and shell
/// punctuation (`sh -c "until nc -z db 5432; do sleep 1; done"`).
fn command_words(arg: &str) -> impl Iterator<Item = &str> {
    arg.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | '&' | '|' | '(' | ')' | '`' | '=' | ','))
        .filter(|w| w.contains(|c: char| c.is_ascii_alphabetic()) && !w.starts_with('-') && !w.starts_with('$'))
}

/// Map every workload's database references, the hosts that resolve to nothing, and the Secrets
/// it reads that the inventory lacks.
pub fn usage(inventory: &Inventory, dbs: &[Database]) -> Usage {
    let ws = workloads(inventory);
    let service_map = services(&ws);
    let secret_index: HashMap<(&str, &str), &Value> = inventory
        .of(&kinds::SECRET)
        .map(|s| ((s.namespace.as_deref().unwrap_or_default(), s.name.as_str()), &s.value))
        .collect();
    let configmap_index: HashMap<(&str, &str), &Value> = inventory
        .of(&kinds::CONFIG_MAP)
        .map(|c| ((c.namespace.as_deref().unwrap_or_default(), c.name.as_str()), &c.value))
        .collect();
    let service_names: BTreeSet<(&str, &str)> = inventory
        .of(&kinds::SERVICE)
        .map(|s| (s.namespace.as_deref().unwrap_or_default(), s.name.as_str()))
        .collect();
    let credential_secrets: Vec<(&Database, BTreeSet<String>)> =
        dbs.iter().filter(|d| d.cnpg).map(|d| (d, cnpg_credential_secrets(inventory, d))).collect();
    let databases: HashSet<&ObjectRef> = dbs.iter().map(|d| &d.object).collect();
    let by_service = DatabaseServices::new(dbs);

    let mut refs = Vec::new();
    let mut unresolved = Vec::new();
    let mut opaque = Vec::new();
    let mut named = Vec::new();
    let mut external = Vec::new();
    for w in &ws {
        let ns = w.namespace();
        let me = w.object.object_ref();
        let inputs = inputs_of(w, &secret_index, &configmap_index);
        for ev in &inputs.values {
            let mut endpoints = endpoints_in(&ev.key, &ev.value);
            if ev.token && endpoints.is_empty() {
                endpoints.extend(split_port(&ev.value));
            }
            for (host, port) in endpoints {
                if is_cluster_name(&host) {
                    named.push(NamedHost { workload: me.clone(), host, via: ev.via.clone() });
                } else if is_external(&host) {
                    // `DB_HOST` with `DB_PORT` beside it: the port of a value that is not secret.
                    let sibling = || {
                        let prefix = ev.key.to_ascii_uppercase();
                        let prefix = ["HOSTNAME", "HOST", "ADDRESS", "ADDR", "SERVER"].iter().find_map(|s| prefix.strip_suffix(s))?.to_string();
                        inputs
                            .values
                            .iter()
                            .filter(|p| !p.secret && !p.token)
                            .find(|p| p.key.eq_ignore_ascii_case(&format!("{prefix}PORT")))
                            .and_then(|p| p.value.trim().parse::<u16>().ok())
                    };
                    let port = port.or_else(|| (!ev.token).then(sibling).flatten());
                    external.push(ExternalHost { workload: me.clone(), host, port, via: ev.via.clone(), secret: ev.secret });
                }
            }
        }
        // Databases do not own databases; CloudNativePG's own instance pods are the database.
        if databases.contains(&me) || w.pod_labels().contains_key("cnpg.io/cluster") {
            continue;
        }
        let service = service_map.get(&me).cloned().unwrap_or_else(|| service_of(w));
        let mut push = |db: &Database, via: &str| {
            refs.push(Reference { workload: me.clone(), service: service.clone(), database: db.object.clone(), via: via.to_string() })
        };
        for (db, names) in &credential_secrets {
            if db.namespace() != ns {
                continue;
            }
            for (secret, via) in &inputs.secrets {
                if names.contains(secret) {
                    push(db, via);
                }
            }
        }
        for secret in inputs.secrets.iter().filter(|(name, _)| !secret_index.contains_key(&(ns, name.as_str()))) {
            opaque.push(Opaque { workload: me.clone(), secret: secret.0.clone(), via: secret.1.clone() });
        }
        for ev in &inputs.values {
            let mut hosts = hosts_in(&ev.key, &ev.value);
            if ev.token && hosts.is_empty() {
                hosts.extend(strip_port(&ev.value));
            }
            for host in hosts {
                match by_service.resolve(&host, ns) {
                    Some(db) => push(db, &ev.via),
                    None if !ev.token
                        && looks_like_database_key(&ev.key)
                        && is_cluster_name(&host)
                        && visible(inventory, &host, ns)
                        && !names_service(&service_names, &host, ns) =>
                    {
                        unresolved.push(Unresolved {
                            workload: me.clone(),
                            host: (!ev.secret).then_some(host),
                            via: ev.via.clone(),
                        })
                    }
                    None => {}
                }
            }
        }
    }
    refs.sort();
    refs.dedup();
    unresolved.sort();
    unresolved.dedup();
    opaque.sort();
    opaque.dedup();
    named.sort();
    named.dedup();
    external.sort();
    external.dedup();
    Usage { references: refs, unresolved, opaque, hosts: named, external }
}

/// Secrets that carry a CloudNativePG cluster's credentials: the operator's `<cluster>-app` and
/// `<cluster>-superuser`, the bootstrap owner Secret, and managed roles' password Secrets.
fn cnpg_credential_secrets(inventory: &Inventory, db: &Database) -> BTreeSet<String> {
    let name = &db.object.name;
    let mut out: BTreeSet<String> = [format!("{name}-app"), format!("{name}-superuser")].into();
    let Some(cluster) = inventory.get(&kinds::CNPG_CLUSTER, db.object.namespace.as_deref(), name) else { return out };
    let spec = &cluster.value["spec"];
    for ptr in ["/bootstrap/initdb/secret/name", "/bootstrap/pg_basebackup/secret/name", "/superuserSecret/name"] {
        if let Some(s) = spec.pointer(ptr).and_then(Value::as_str) {
            out.insert(s.to_string());
        }
    }
    for role in spec.pointer("/managed/roles").and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = role.pointer("/passwordSecret/name").and_then(Value::as_str) {
            out.insert(s.to_string());
        }
    }
    out
}

type Index<'a> = HashMap<(&'a str, &'a str), &'a Value>;

/// What a workload reads: the words of its commands, its literal environment values and the
/// content of the Secrets and ConfigMaps it references ([`config_refs`], the one walk of those
/// references), each with where it was found.
fn inputs_of(w: &Workload<'_>, secrets: &Index<'_>, configmaps: &Index<'_>) -> Inputs {
    let ns = w.namespace();
    let mut inputs = Inputs { values: Vec::new(), secrets: BTreeMap::new() };
    let secret = |name: &str| secrets.get(&(ns, name)).map(|s| secret_data(s)).unwrap_or_default();
    let configmap = |name: &str| configmaps.get(&(ns, name)).map(|c| configmap_data(c)).unwrap_or_default();
    for c in w.containers().chain(w.init_containers()) {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
        for field in ["command", "args"] {
            for arg in c.get(field).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                for word in command_words(arg) {
                    let via = format!("{field} of container {cname}");
                    inputs.values.push(EnvValue { key: field.into(), value: word.to_string(), via, secret: false, token: true });
                }
            }
        }
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            let Some(key) = e.get("name").and_then(Value::as_str) else { continue };
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                inputs.values.push(EnvValue { key: key.into(), value: v.into(), via: format!("env {key}"), secret: false, token: false });
            }
        }
    }
    let Some(spec) = w.pod_spec() else { return inputs };
    for r in config_refs(spec) {
        let (kind, name, is_secret) = (r.kind, r.name, r.kind == "Secret");
        let content = if is_secret { secret(name) } else { configmap(name) };
        // (the variable or file each key becomes, where the whole object is used, where each key is)
        let (keys, whole, each): (Vec<(String, String)>, String, Vec<String>) = match r.used {
            ConfigUse::EnvKey { env, key, .. } => {
                let via = format!("env {env} from {kind} {name} key {key}");
                let value = content.get(key).cloned().unwrap_or_default();
                (vec![(env.to_string(), value)], via.clone(), vec![via])
            }
            ConfigUse::EnvFrom { prefix, .. } => (
                content.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone())).collect(),
                format!("envFrom {kind} {name}"),
                content.keys().map(|k| format!("envFrom {kind} {name} key {k}")).collect(),
            ),
            // Mounted: the file name plays the part of the key.
            ConfigUse::Volume { volume } => (
                content.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                format!("volume {volume} from {kind} {name}"),
                content.keys().map(|k| format!("volume {volume} from {kind} {name} key {k}")).collect(),
            ),
        };
        if is_secret {
            inputs.secrets.entry(name.to_string()).or_insert(whole);
        }
        for ((key, value), via) in keys.into_iter().zip(each) {
            inputs.values.push(EnvValue { key, value, via, secret: is_secret, token: false });
        }
    }
    inputs
}

/// A Secret's values (`stringData` and base64-decoded `data`); undecodable entries are skipped.
pub fn secret_data(secret: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.get("data").and_then(Value::as_object).into_iter().flatten() {
        let decoded = v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(d) = decoded {
            out.insert(k.clone(), d);
        }
    }
    for (k, v) in secret.get("stringData").and_then(Value::as_object).into_iter().flatten() {
        if let Some(s) = v.as_str() {
            out.insert(k.clone(), s.to_string());
        }
    }
    out
}

fn configmap_data(configmap: &Value) -> BTreeMap<String, String> {
    configmap
        .get("data")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn looks_like_database_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["DATABASE", "DB_", "_DB", "POSTGRES", "PG", "MYSQL", "MARIADB", "REDIS", "MONGO", "JDBC"].iter().any(|m| k.contains(m))
}

/// Hosts named by a value: URLs (`postgresql://u:p@host:5432/db`, `jdbc:mysql://h1,h2/db`,
/// `redis://host:6379`) anywhere in the value, libpq keyword strings (`host=db port=5432`), or
/// the whole value for `*_HOST`-style keys.
pub fn hosts_in(key: &str, value: &str) -> Vec<String> {
    let mut hosts: Vec<String> = endpoints_in(key, value).into_iter().map(|(h, _)| h).collect();
    hosts.dedup();
    hosts
}

/// [`hosts_in`] with the port each host is named with: `host:port`, libpq's `port=`, else the
/// well-known port of a URL's scheme when it is a data store's (`postgresql://`, `mysql://`,
/// `redis://`, `mongodb://`: [`crate::datastore::Store::from_scheme`]).
pub fn endpoints_in(key: &str, value: &str) -> Vec<(String, Option<u16>)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("://") {
        let scheme = rest[..i].rsplit(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).next().unwrap_or_default();
        let default_port = crate::datastore::Store::from_scheme(scheme).and_then(crate::datastore::Store::default_port);
        let after = &rest[i + 3..];
        let end = after.find(['/', '?', '#', ' ', '"', '\'', ';']).unwrap_or(after.len());
        let authority = &after[..end];
        let hostlist = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        for h in hostlist.split(',') {
            if let Some((host, port)) = split_port(h) {
                out.push((host, port.or(default_port)));
            }
        }
        rest = &after[end..];
    }
    if out.is_empty() {
        // libpq keyword/value connection strings.
        let tokens: Vec<&str> = value.split([' ', ';', '\n', '\t']).collect();
        let port = tokens.iter().find_map(|t| t.strip_prefix("port=")?.trim_matches(['\'', '"']).parse::<u16>().ok());
        for token in &tokens {
            if let Some(list) = token.strip_prefix("host=").or_else(|| token.strip_prefix("hostaddr=")) {
                for h in list.trim_matches(['\'', '"']).split(',') {
                    if let Some((host, p)) = split_port(h) {
                        out.push((host, p.or(port)));
                    }
                }
            }
        }
    }
    let k = key.to_ascii_uppercase();
    let host_key = ["HOST", "_SERVER", "_ADDR", "_ADDRESS", "HOSTNAME", "HOSTS"].iter().any(|s| k.ends_with(s));
    if out.is_empty() && host_key && !value.contains(char::is_whitespace) {
        out.extend(value.split(',').filter_map(split_port));
    }
    out.sort();
    out.dedup();
    out
}

fn strip_port(h: &str) -> Option<String> {
    split_port(h).map(|(host, _)| host)
}

/// `host[:port]` as (lowercase host, port); `None` when the host has characters no host name or
/// IPv4 address has.
fn split_port(h: &str) -> Option<(String, Option<u16>)> {
    let h = h.trim();
    let (host, port) = if h.starts_with('[') { (h, None) } else { h.rsplit_once(':').map_or((h, None), |(host, p)| (host, Some(p))) };
    let port = port.and_then(|p| p.parse::<u16>().ok()).filter(|&p| p != 0);
    (!host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')).then(|| (host.to_ascii_lowercase(), port))
}

/// Whether a host could be a name cluster DNS answers: not an IP address, not `localhost` (a
/// proxy sidecar such as cloud-sql-proxy), and either short (`svc`, `svc.ns`, `pod.svc.ns`) or
/// under `.svc` / `.svc.cluster.local`. Other fully qualified names are outside the cluster.
pub fn is_cluster_name(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    if h.parse::<std::net::IpAddr>().is_ok() || h == "localhost" || !h.contains(|c: char| c.is_ascii_alphabetic()) {
        return false;
    }
    if h.ends_with(".svc") || h.ends_with(".svc.cluster.local") {
        return true;
    }
    let labels: Vec<&str> = h.split('.').collect();
    let last = labels.last().copied().unwrap_or_default();
    labels.len() <= 3 && (labels.len() == 1 || !PUBLIC_SUFFIXES.contains(&last))
}

/// Last labels that mark a name as outside the cluster (a namespace of that name is possible but
/// far less likely than a public or private domain).
const PUBLIC_SUFFIXES: &[&str] = &[
    "com", "net", "org", "io", "dev", "app", "cloud", "co", "ai", "info", "biz", "eu", "us", "uk", "de", "fr", "local",
    "internal", "lan", "corp", "home", "localdomain",
];


/// The databases by (namespace, Service), to resolve the names clients use.
struct DatabaseServices<'a>(HashMap<(&'a str, &'a str), &'a Database>);

impl<'a> DatabaseServices<'a> {
    fn new(dbs: &'a [Database]) -> Self {
        let mut map = HashMap::new();
        for d in dbs {
            for s in &d.services {
                // Two databases behind one Service: the first in `dbs` order.
                map.entry((d.namespace(), s.as_str())).or_insert(d);
            }
        }
        DatabaseServices(map)
    }

    /// Resolve a DNS name as cluster DNS would, from a client in `client_ns`: `svc`, `svc.ns`,
    /// `svc.ns.svc`, `svc.ns.svc.cluster.local`, and StatefulSet pod names `pod.svc[.ns...]`.
    fn resolve(&self, host: &str, client_ns: &str) -> Option<&'a Database> {
        candidates(host, client_ns).into_iter().find_map(|(svc, ns)| self.0.get(&(ns, svc)).copied())
    }
}

/// (service, namespace) pairs a name may denote, in the order the DNS search path tries them.
/// The `(service, namespace)` pairs a DNS name may denote from a client in `client_ns`.
pub fn candidates<'h>(host: &'h str, client_ns: &'h str) -> Vec<(&'h str, &'h str)> {
    let trimmed = host.trim_end_matches('.');
    let trimmed = trimmed.strip_suffix(".cluster.local").unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix(".svc").unwrap_or(trimmed);
    let labels: Vec<&str> = trimmed.split('.').collect();
    match labels.as_slice() {
        [svc] => vec![(*svc, client_ns)],
        // `svc.ns`, or `pod.svc` in the client's namespace.
        [first, second] => vec![(*first, *second), (*second, client_ns)],
        [_pod, svc, ns] => vec![(*svc, *ns)],
        _ => vec![],
    }
}

/// Whether every Service the name may denote would be in the inventory: always for files and
/// unscoped loads; for a load limited to one namespace, only names within it.
fn visible(inventory: &Inventory, host: &str, client_ns: &str) -> bool {
    if inventory.complete_across_namespaces(&kinds::SERVICE) {
        return true;
    }
    match &inventory.source {
        SourceInfo::Cluster { namespace: Some(scope), .. } => candidates(host, client_ns).iter().all(|(_, ns)| ns == scope),
        _ => true,
    }
}

fn names_service(services: &BTreeSet<(&str, &str)>, host: &str, client_ns: &str) -> bool {
    candidates(host, client_ns).into_iter().any(|(svc, ns)| services.contains(&(ns, svc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(yaml: &str) -> Inventory {
        use meshmove_model::inventory;
        Inventory::from_files(inventory::load_str(yaml, None, "shop").unwrap(), vec!["test".into()], "shop".into())
    }

    /// The references come from `model::workload::config_refs`, the walk `kube::cluster` uses to
    /// know which Secrets to read: where the two walks differed, a key selector without a name
    /// (which the API server rejects, `name` being required) made this module report an opaque
    /// Secret with an empty name; it reads nothing now, as the cluster loader always did.
    #[test]
    fn secret_uses_are_named_by_where_they_are_read() {
        let inv = inventory(
            r#"
apiVersion: v1
kind: Secret
metadata: {name: api-db, namespace: shop}
stringData: {url: "postgresql://app:pw@pg:5432/app", user: app}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    spec:
      containers:
      - name: api
        env:
        - {name: DATABASE_URL, valueFrom: {secretKeyRef: {name: api-db, key: url}}}
        - {name: BROKEN, valueFrom: {secretKeyRef: {key: token}}}
        envFrom:
        - {secretRef: {name: api-env}, prefix: APP_}
      volumes:
      - {name: tls, projected: {sources: [{secret: {name: api-tls}}]}}
"#,
        );
        let u = usage(&inv, &[]);
        let opaque: Vec<(&str, &str)> = u.opaque.iter().map(|o| (o.secret.as_str(), o.via.as_str())).collect();
        assert_eq!(opaque, [("api-env", "envFrom Secret api-env"), ("api-tls", "volume tls from Secret api-tls")]);
        let hosts: Vec<(&str, &str)> = u.hosts.iter().map(|h| (h.host.as_str(), h.via.as_str())).collect();
        assert_eq!(hosts, [("pg", "env DATABASE_URL from Secret api-db key url")]);
    }

    #[test]
    fn hosts_from_connection_strings() {
        assert_eq!(hosts_in("DATABASE_URL", "postgresql://app:s3cr3t@postgres-core:5432/core"), ["postgres-core"]);
        assert_eq!(hosts_in("X", "jdbc:postgresql://db1.shop:5432,db2.shop/app?ssl=true"), ["db1.shop", "db2.shop"]);
        assert_eq!(hosts_in("REDIS_URL", "redis://redis.cache.svc.cluster.local:6379/0"), ["redis.cache.svc.cluster.local"]);
        assert_eq!(hosts_in("REDIS_HOST", "redis:6379"), ["redis"]);
        assert_eq!(hosts_in("DB_HOST", "Postgres-Core"), ["postgres-core"]);
        assert_eq!(hosts_in("PG_DSN", "host=pg-main port=5432 dbname=app user=x"), ["pg-main"]);
        assert_eq!(hosts_in("MSSQL", "jdbc:sqlserver://sql.data:1433;databaseName=x"), ["sql.data"]);
        assert!(hosts_in("GREETING", "hello world").is_empty());
        assert!(hosts_in("MODE", "redis").is_empty(), "plain values of non-host keys are not hosts");
    }

    #[test]
    fn endpoints_carry_the_port_named_or_the_schemes() {
        assert_eq!(endpoints_in("DATABASE_URL", "postgresql://app:x@10.0.5.7:6432/core"), [("10.0.5.7".to_string(), Some(6432))]);
        assert_eq!(endpoints_in("DATABASE_URL", "postgres://app@db.example.com/core"), [("db.example.com".to_string(), Some(5432))]);
        assert_eq!(endpoints_in("X", "jdbc:mysql://10.1.1.1,10.1.1.2:3307/app"), [("10.1.1.1".into(), Some(3306)), ("10.1.1.2".into(), Some(3307))]);
        assert_eq!(endpoints_in("PG_DSN", "host=10.0.0.9 port=5433 dbname=app"), [("10.0.0.9".to_string(), Some(5433))]);
        assert_eq!(endpoints_in("DB_HOST", "10.0.0.9"), [("10.0.0.9".to_string(), None)]);
        assert_eq!(endpoints_in("API", "https://api.example.com/v1"), [("api.example.com".to_string(), None)]);
        for yes in ["10.0.5.7", "db.abc.eu-west-1.rds.amazonaws.com", "pg.example.com"] {
            assert!(is_external(yes), "{yes}");
        }
        for no in ["127.0.0.1", "localhost", "pg", "pg.data.svc", "1.5", "0.0.0.0"] {
            assert!(!is_external(no), "{no}");
        }
    }

    #[test]
    fn cluster_names_exclude_addresses_loopback_and_external_domains() {
        for yes in ["pg", "pg.data", "pg-0.pg.data", "pg.data.svc", "pg.data.svc.cluster.local"] {
            assert!(is_cluster_name(yes), "{yes}");
        }
        for no in ["10.0.0.7", "localhost", "db.abc123.eu-west-1.rds.amazonaws.com", "pg.corp.example.com", "db.internal", "db.example.com"] {
            assert!(!is_cluster_name(no), "{no}");
        }
    }

    #[test]
    fn image_repositories_drop_tags_and_digests_but_keep_registry_ports() {
        assert_eq!(image_repository("pyairtable/api-gateway:1.8.0"), "pyairtable/api-gateway");
        assert_eq!(image_repository("registry:5000/team/app"), "registry:5000/team/app");
        assert_eq!(image_repository("registry:5000/team/app:2@sha256:abc"), "registry:5000/team/app");
    }
}
