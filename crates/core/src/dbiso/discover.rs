//! Finding databases: CloudNativePG clusters, workloads running database images, and the Services
//! in front of them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::inventory::{Inventory, Object, ObjectRef, kinds};
use crate::workload::{Workload, string_map, workloads};

/// Database engines recognised by image name or by CloudNativePG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mysql,
    Redis,
    Mongo,
}

impl Engine {
    /// The engine's well-known port.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
            Engine::Redis => 6379,
            Engine::Mongo => 27017,
        }
    }

    /// Recognise an engine from a container image reference such as
    /// `docker.io/bitnami/postgresql:16` or `redis:7-alpine`.
    pub fn from_image(image: &str) -> Option<Engine> {
        // Repository part only: drop the digest, the tag, and the registry/organisation path.
        let repo = image.split('@').next().unwrap_or(image);
        let last = repo.rsplit('/').next().unwrap_or(repo);
        let name = last.split(':').next().unwrap_or(last).to_ascii_lowercase();
        match name.as_str() {
            "postgres" | "postgresql" | "postgis" | "postgresql-repmgr" | "timescaledb" => Some(Engine::Postgres),
            "mysql" | "mariadb" | "percona-server" => Some(Engine::Mysql),
            "redis" | "redis-stack-server" | "valkey" | "keydb" => Some(Engine::Redis),
            "mongo" | "mongodb" => Some(Engine::Mongo),
            _ => None,
        }
    }
}

/// A database found in the inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Database {
    /// The object that defines it: a CloudNativePG `Cluster`, or the workload running the image.
    pub object: ObjectRef,
    pub engine: Engine,
    /// Labels that select the database pods (CloudNativePG: `cnpg.io/cluster`; workloads: their
    /// pod template labels).
    #[serde(skip)]
    pub pod_labels: BTreeMap<String, String>,
    /// Ports clients use on the pods (container ports).
    pub ports: Vec<u16>,
    /// Services in front of it (names), used to resolve client connection strings.
    pub services: Vec<String>,
    /// `true` for CloudNativePG clusters (operator ports 8000/9187 must stay reachable).
    pub cnpg: bool,
}

impl Database {
    pub fn namespace(&self) -> &str {
        self.object.namespace.as_deref().unwrap_or("default")
    }
}

/// CloudNativePG operator status port and metrics port.
pub const CNPG_STATUS_PORT: u16 = 8000;
pub const CNPG_METRICS_PORT: u16 = 9187;

/// Find every database of the inventory, sorted by object reference.
pub fn databases(inventory: &Inventory) -> Vec<Database> {
    let mut out = Vec::new();
    for cluster in inventory.of(&kinds::CNPG_CLUSTER) {
        let ns = cluster.namespace.clone();
        let pod_labels = BTreeMap::from([("cnpg.io/cluster".to_string(), cluster.name.clone())]);
        let mut services: Vec<String> = ["rw", "ro", "r"].iter().map(|s| format!("{}-{s}", cluster.name)).collect();
        services.extend(selecting_services(inventory, ns.as_deref(), &pod_labels));
        services.sort();
        services.dedup();
        out.push(Database {
            object: cluster.object_ref(),
            engine: Engine::Postgres,
            pod_labels,
            ports: vec![5432],
            services,
            cnpg: true,
        });
    }
    for w in workloads(inventory) {
        // CloudNativePG's own instance pods are covered by their Cluster above.
        if w.pod_labels().contains_key("cnpg.io/cluster") {
            continue;
        }
        let Some(engine) = w.images().find_map(Engine::from_image) else { continue };
        let pod_labels = w.pod_labels();
        let mut ports: Vec<u16> = w
            .containers()
            .filter(|c| c.get("image").and_then(Value::as_str).and_then(Engine::from_image).is_some())
            .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
            .filter_map(|p| p.get("containerPort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()))
            .collect();
        if ports.is_empty() {
            ports.push(engine.default_port());
        }
        ports.sort_unstable();
        ports.dedup();
        out.push(Database {
            object: w.object.object_ref(),
            engine,
            services: selecting_services(inventory, Some(w.namespace()), &pod_labels),
            pod_labels,
            ports,
            cnpg: false,
        });
    }
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

/// Names of the Services in `namespace` whose selector matches `pod_labels`.
pub fn selecting_services(inventory: &Inventory, namespace: Option<&str>, pod_labels: &BTreeMap<String, String>) -> Vec<String> {
    inventory
        .of(&kinds::SERVICE)
        .filter(|s| s.namespace.as_deref() == namespace)
        .filter(|s| service_selects(s, pod_labels))
        .map(|s| s.name.clone())
        .collect()
}

/// Whether a Service's selector matches pod labels (a Service without selector selects nothing).
pub fn service_selects(service: &Object, pod_labels: &BTreeMap<String, String>) -> bool {
    let selector = string_map(service.value.pointer("/spec/selector"));
    !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

/// Whether a workload is one of the databases.
pub fn is_database(w: &Workload<'_>, dbs: &[Database]) -> bool {
    let r = w.object.object_ref();
    dbs.iter().any(|d| d.object == r)
}
