//! `generate`: one NetworkPolicy per database that isolates it.
//!
//! The rules are the post-renderer's database rules ([`crate::policies::database_policy`]), so a
//! chart installed through the post-renderer and a cluster isolated with `dbiso` admit the same
//! clients: default-deny ingress for the database pods, the owners (every workload that
//! references the database) on its client ports, CloudNativePG's operator on the instance
//! manager and metrics ports, replication between a cluster's instances, and the monitoring
//! namespaces on metrics ports.
//!
//! A database nobody references is left alone unless asked ([`GenerateOptions::deny_unowned`]):
//! its policy would admit no client, and a reference `dbiso` could not read (a host in a config
//! file, a client in another cluster) would be cut off. Policies are additive, so these policies
//! do not remove what other policies selecting the same pods already admit.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::discover::{self, Database};
use super::owners;
use meshmove_model::inventory::{Inventory, ObjectRef};
use crate::policies::{self, PolicyOptions};
use meshmove_model::workload::workloads;

/// Label on every policy `dbiso` writes, naming the database it isolates.
pub const DATABASE_LABEL: &str = "dbiso.meshmove.io/database";
/// The field manager `dbiso apply` uses, also written as `app.kubernetes.io/managed-by`.
pub const FIELD_MANAGER: &str = "kubectl-dbiso";

/// Who needs to reach the databases besides their owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Namespace of the CloudNativePG operator (ports 8000 and 9187 of the instances).
    pub cnpg_namespace: String,
    /// Namespaces of Prometheus (metrics ports).
    pub monitoring_namespaces: Vec<String>,
    /// Also isolate databases without a known owner (their policy admits no client).
    pub deny_unowned: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { cnpg_namespace: "cnpg-system".into(), monitoring_namespaces: vec!["monitoring".into()], deny_unowned: false }
    }
}

/// One generated policy.
#[derive(Debug, Clone)]
pub struct Generated {
    pub database: ObjectRef,
    pub namespace: String,
    pub name: String,
    /// The owner workloads it admits.
    pub owners: Vec<ObjectRef>,
    pub object: Value,
}

/// The policies, and the databases left without one (with the reason).
#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub policies: Vec<Generated>,
    pub skipped: Vec<(ObjectRef, String)>,
}

/// `dbiso-<database>`, with the kind added when two databases of one namespace share a name, and
/// shortened with a stable hash beyond 63 characters.
fn policy_name(db: &Database, dbs: &[Database]) -> String {
    let clash = dbs.iter().filter(|d| d.namespace() == db.namespace() && d.object.name == db.object.name).count() > 1;
    let name = if clash {
        format!("dbiso-{}-{}", db.object.kind.to_ascii_lowercase(), db.object.name)
    } else {
        format!("dbiso-{}", db.object.name)
    };
    if name.len() <= 63 {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}-{:08x}", name[..54].trim_end_matches(['-', '.']), hash as u32)
}

/// Generate the isolation policies of every database of the inventory, sorted by namespace and
/// name.
pub fn generate(inventory: &Inventory, options: &GenerateOptions) -> Generation {
    let dbs = discover::databases(inventory);
    let (refs, _) = owners::references(inventory, &dbs);
    let ws = workloads(inventory);
    let opts = PolicyOptions {
        monitoring_namespaces: options.monitoring_namespaces.clone(),
        cnpg_operator_namespace: options.cnpg_namespace.clone(),
        database_isolation: true,
        ..PolicyOptions::default()
    };
    let mut out = Generation::default();
    for db in &dbs {
        let owners: BTreeSet<ObjectRef> = refs.iter().filter(|r| r.database == db.object).map(|r| r.workload.clone()).collect();
        if owners.is_empty() && !options.deny_unowned {
            out.skipped.push((
                db.object.clone(),
                "no workload references it, so its policy would admit no client (use --deny-unowned to isolate it anyway)".into(),
            ));
            continue;
        }
        let name = policy_name(db, &dbs);
        let labels = json!({"app.kubernetes.io/managed-by": FIELD_MANAGER, DATABASE_LABEL: db.object.name});
        let mut object = policies::database_policy(db, &refs, &ws, &opts, &name, labels);
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(db.namespace()));
        }
        out.policies.push(Generated {
            database: db.object.clone(),
            namespace: db.namespace().to_string(),
            name,
            owners: owners.into_iter().collect(),
            object,
        });
    }
    out.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}
