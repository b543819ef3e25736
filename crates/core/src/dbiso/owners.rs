//! Who uses which database: connection strings and hosts in environment variables, Secrets and
//! ConfigMaps, resolved through Services to the databases behind them.
//!
//! Secret values are read to find hosts but never leave this module: a [`Reference`] says *where*
//! a reference was found (`env DATABASE_URL from Secret api-db key url`), never what it contained.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::discover::Database;
use crate::inventory::{Inventory, ObjectRef, kinds};
use crate::workload::{Workload, workloads};

/// A workload's use of a database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Reference {
    pub workload: ObjectRef,
    /// The service the workload belongs to (`app.kubernetes.io/name`, else `app`, else its name).
    pub service: String,
    pub database: ObjectRef,
    /// Where the reference was found; never contains a secret value.
    pub via: String,
}

/// A host a workload names that matches no Service (kept for diagnostics).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unresolved {
    pub workload: ObjectRef,
    pub host: String,
    pub via: String,
}

/// The service identity of a workload, used to tell "two services share a database" from "one
/// service's Deployment and its migration Job use it".
pub fn service_of(w: &Workload<'_>) -> String {
    let labels = w.pod_labels();
    labels
        .get("app.kubernetes.io/name")
        .or_else(|| labels.get("app"))
        .cloned()
        .unwrap_or_else(|| w.name().to_string())
}

/// One value a workload receives, with where it came from.
struct EnvValue {
    key: String,
    value: String,
    via: String,
}

/// Map every workload's database references. Returns references and hosts that look like
/// database hosts but resolve to nothing.
pub fn references(inventory: &Inventory, dbs: &[Database]) -> (Vec<Reference>, Vec<Unresolved>) {
    let mut refs = Vec::new();
    let mut unresolved = Vec::new();
    for w in workloads(inventory) {
        let ns = w.namespace();
        let me = w.object.object_ref();
        if dbs.iter().any(|d| d.object == me) {
            continue;
        }
        let service = service_of(&w);
        for ev in env_values(inventory, &w) {
            // A CloudNativePG application Secret is a reference by itself.
            for db in dbs.iter().filter(|d| d.cnpg && d.namespace() == ns) {
                let cluster = &db.object.name;
                if ev.via.contains(&format!("Secret {cluster}-app ")) || ev.via.contains(&format!("Secret {cluster}-superuser ")) {
                    refs.push(Reference { workload: me.clone(), service: service.clone(), database: db.object.clone(), via: ev.via.clone() });
                }
            }
            for host in hosts_in(&ev.key, &ev.value) {
                match resolve_host(&host, ns, dbs) {
                    Some(db) => refs.push(Reference {
                        workload: me.clone(),
                        service: service.clone(),
                        database: db.object.clone(),
                        via: ev.via.clone(),
                    }),
                    None if looks_like_database_key(&ev.key) && inventory_lacks_service(inventory, &host, ns) => {
                        unresolved.push(Unresolved { workload: me.clone(), host, via: ev.via.clone() })
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
    (refs, unresolved)
}

fn env_values(inventory: &Inventory, w: &Workload<'_>) -> Vec<EnvValue> {
    let ns = Some(w.namespace());
    let mut out = Vec::new();
    for c in w.containers().chain(w.init_containers()) {
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            let Some(key) = e.get("name").and_then(Value::as_str) else { continue };
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                out.push(EnvValue { key: key.into(), value: v.into(), via: format!("env {key}") });
            } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                let (name, k) = (str_of(r, "name"), str_of(r, "key"));
                let via = format!("env {key} from Secret {name} key {k}");
                let value = secret_data(inventory, ns, name).remove(k).unwrap_or_default();
                out.push(EnvValue { key: key.into(), value, via });
            } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                let (name, k) = (str_of(r, "name"), str_of(r, "key"));
                let via = format!("env {key} from ConfigMap {name} key {k}");
                let value = configmap_data(inventory, ns, name).remove(k).unwrap_or_default();
                out.push(EnvValue { key: key.into(), value, via });
            }
        }
        for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
            let prefix = e.get("prefix").and_then(Value::as_str).unwrap_or("");
            if let Some(name) = e.pointer("/secretRef/name").and_then(Value::as_str) {
                for (k, v) in secret_data(inventory, ns, name) {
                    out.push(EnvValue { key: format!("{prefix}{k}"), value: v, via: format!("envFrom Secret {name} key {k}") });
                }
            }
            if let Some(name) = e.pointer("/configMapRef/name").and_then(Value::as_str) {
                for (k, v) in configmap_data(inventory, ns, name) {
                    out.push(EnvValue { key: format!("{prefix}{k}"), value: v, via: format!("envFrom ConfigMap {name} key {k}") });
                }
            }
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A Secret's values (`stringData` and base64-decoded `data`); empty when absent or undecodable.
fn secret_data(inventory: &Inventory, ns: Option<&str>, name: &str) -> BTreeMap<String, String> {
    let Some(secret) = inventory.get(&kinds::SECRET, ns, name) else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for (k, v) in secret.value.get("data").and_then(Value::as_object).into_iter().flatten() {
        let decoded = v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(d) = decoded {
            out.insert(k.clone(), d);
        }
    }
    for (k, v) in secret.value.get("stringData").and_then(Value::as_object).into_iter().flatten() {
        if let Some(s) = v.as_str() {
            out.insert(k.clone(), s.to_string());
        }
    }
    out
}

fn configmap_data(inventory: &Inventory, ns: Option<&str>, name: &str) -> BTreeMap<String, String> {
    inventory
        .get(&kinds::CONFIG_MAP, ns, name)
        .and_then(|c| c.value.get("data"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn looks_like_database_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["DATABASE", "DB_", "_DB", "POSTGRES", "PG", "MYSQL", "REDIS", "MONGO", "JDBC"].iter().any(|m| k.contains(m))
}

/// Hosts named by a value: URLs (`postgresql://u:p@host:5432/db`, `jdbc:mysql://h1,h2/db`,
/// `redis://host:6379`) anywhere in the value, or the whole value for `*_HOST`-style keys.
pub fn hosts_in(key: &str, value: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("://") {
        let after = &rest[i + 3..];
        let end = after.find(['/', '?', '#', ' ', '"', '\'']).unwrap_or(after.len());
        let authority = &after[..end];
        let hostlist = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        for h in hostlist.split(',') {
            if let Some(host) = strip_port(h) {
                hosts.push(host);
            }
        }
        rest = &after[end..];
    }
    let k = key.to_ascii_uppercase();
    let host_key = ["HOST", "_SERVER", "_ADDR", "_ADDRESS", "HOSTNAME"].iter().any(|s| k.ends_with(s));
    if hosts.is_empty() && host_key && !value.contains(char::is_whitespace) {
        for h in value.split(',') {
            if let Some(host) = strip_port(h) {
                hosts.push(host);
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

fn strip_port(h: &str) -> Option<String> {
    let h = h.trim();
    let host = if h.starts_with('[') { h } else { h.rsplit_once(':').map_or(h, |(host, _)| host) };
    (!host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .then(|| host.to_ascii_lowercase())
}

/// Resolve a DNS name as cluster DNS would, from a client in `client_ns`: `svc`, `svc.ns`,
/// `svc.ns.svc`, `svc.ns.svc.cluster.local`, and StatefulSet pod names `pod.svc.ns...`.
pub fn resolve_host<'a>(host: &str, client_ns: &str, dbs: &'a [Database]) -> Option<&'a Database> {
    let trimmed = host.trim_end_matches('.');
    let trimmed = trimmed.strip_suffix(".cluster.local").unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix(".svc").unwrap_or(trimmed);
    let labels: Vec<&str> = trimmed.split('.').collect();
    let candidates: Vec<(&str, &str)> = match labels.as_slice() {
        [svc] => vec![(*svc, client_ns)],
        [svc, ns] => vec![(*svc, *ns), (*ns, client_ns)],
        [_pod, svc, ns] => vec![(*svc, *ns)],
        _ => vec![],
    };
    candidates
        .into_iter()
        .find_map(|(svc, ns)| dbs.iter().find(|d| d.namespace() == ns && d.services.iter().any(|s| s == svc)))
}

fn inventory_lacks_service(inventory: &Inventory, host: &str, ns: &str) -> bool {
    let first = host.split('.').next().unwrap_or(host);
    let ns = host.split('.').nth(1).filter(|n| *n != "svc").unwrap_or(ns);
    inventory.get(&kinds::SERVICE, Some(ns), first).is_none() && !host.contains("amazonaws") && host.contains(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_connection_strings() {
        assert_eq!(hosts_in("DATABASE_URL", "postgresql://app:s3cr3t@postgres-core:5432/core"), ["postgres-core"]);
        assert_eq!(hosts_in("X", "jdbc:postgresql://db1.shop:5432,db2.shop/app?ssl=true"), ["db1.shop", "db2.shop"]);
        assert_eq!(hosts_in("REDIS_URL", "redis://redis.cache.svc.cluster.local:6379/0"), ["redis.cache.svc.cluster.local"]);
        assert_eq!(hosts_in("REDIS_HOST", "redis:6379"), ["redis"]);
        assert_eq!(hosts_in("DB_HOST", "Postgres-Core"), ["postgres-core"]);
        assert!(hosts_in("GREETING", "hello world").is_empty());
        assert!(hosts_in("MODE", "redis").is_empty(), "plain values of non-host keys are not hosts");
    }
}
