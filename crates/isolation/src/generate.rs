//! `generate`: one NetworkPolicy per database that isolates it, from the one generator the
//! post-renderer also uses ([`crate::policies`]), so a chart installed through the post-renderer
//! and a cluster isolated with `dbiso` admit the same clients: the database's owner service (every
//! workload of it that references the database), Helm hooks and database tooling, CloudNativePG's
//! operator on 5432 and 8000, replication between a cluster's instances, and the monitoring
//! namespaces (that exist) on metrics ports. A service using another service's database is cut,
//! and the cut is reported.
//!
//! Every policy is proven with the reachability engine before it is printed: one that would cut
//! a connection in use is withheld. A database whose clients cannot be established (nobody
//! references it; a workload of its namespace reads a Secret the input lacks; several services
//! use it and none is its owner by name) is left alone unless asked
//! ([`GenerateOptions::isolate`]). Policies are additive, so these policies do not remove what
//! other policies selecting the same pods already admit.
//!
//! With [`GenerateOptions::egress`] every workload that is not a database also gets an egress
//! policy, `dbiso-<workload>-egress`, from the same generator as the post-renderer's `--egress`
//! ([`crate::policies`]'s `egress` module): cluster DNS, the Services and databases it is seen
//! using, istiod where it carries a sidecar, and the addresses outside the cluster it names
//! (hosts named by DNS name need their ranges in [`GenerateOptions::external_hosts`]), proven by
//! the engine like the ingress policies.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::discover;
use crate::policies::{self, Cidr, PolicyOptions, Request, Subjects};
use meshmove_model::inventory::Inventory;

pub use crate::policies::{Generated, Generation};

/// Label on every ingress policy `dbiso` writes, naming the database it isolates.
pub const DATABASE_LABEL: &str = "dbiso.meshmove.io/database";
/// The field manager `dbiso apply` uses, also written as `app.kubernetes.io/managed-by`.
pub const FIELD_MANAGER: &str = "kubectl-dbiso";

/// Who needs to reach the databases besides their owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Namespace of the CloudNativePG operator (ports 5432 and 8000 of the instances).
    pub cnpg_namespace: String,
    /// Namespaces of Prometheus (metrics ports).
    pub monitoring_namespaces: Vec<String>,
    /// Databases (by name) to isolate even when their clients cannot all be established.
    pub isolate: Vec<String>,
    /// Isolate every database, whatever is known of its clients.
    pub isolate_all: bool,
    /// Owner service of shared databases, by database name.
    pub owners: BTreeMap<String, String>,
    /// Also isolate the egress of every workload that is not a database.
    pub egress: bool,
    /// Address ranges of hosts outside the cluster that workloads name by DNS name (or of an
    /// address, to widen it), for egress policies.
    pub external_hosts: BTreeMap<String, Vec<Cidr>>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            cnpg_namespace: "cnpg-system".into(),
            monitoring_namespaces: vec!["monitoring".into()],
            isolate: Vec::new(),
            isolate_all: false,
            owners: BTreeMap::new(),
            egress: false,
            external_hosts: BTreeMap::new(),
        }
    }
}

/// Generate and prove the isolation policies of every database of the inventory, sorted by
/// namespace and name.
pub fn generate(inventory: &Inventory, options: &GenerateOptions) -> Generation {
    let mut isolate = options.isolate.clone();
    if options.isolate_all {
        isolate.extend(discover::databases(inventory).into_iter().map(|d| d.object.name));
    }
    let opts = PolicyOptions {
        monitoring_namespaces: options.monitoring_namespaces.clone(),
        cnpg_operator_namespace: options.cnpg_namespace.clone(),
        database_isolation: true,
        isolate_anyway: isolate,
        database_owners: options.owners.clone(),
        egress: options.egress,
        external_hosts: options.external_hosts.clone(),
        ..PolicyOptions::default()
    };
    let req = Request {
        subjects: Subjects::Databases,
        release: "",
        mode: None,
        options: &opts,
        labels: json!({"app.kubernetes.io/managed-by": FIELD_MANAGER}),
        // Objects from files get the default namespace (-n) when they carry none.
        namespace: None,
    };
    let mut generation = policies::generate(inventory, &req);
    for p in &mut generation.policies {
        let (database, namespace) = (p.subject.name.clone(), p.namespace.clone());
        for object in std::iter::once(&mut p.object).chain(p.authorization.as_mut()) {
            // An egress policy restricts a client, not a database.
            if let Some(labels) = object.pointer_mut("/metadata/labels").and_then(Value::as_object_mut).filter(|_| !p.egress) {
                labels.insert(DATABASE_LABEL.into(), json!(database));
            }
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
    }
    generation
}
