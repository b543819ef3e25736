//! Finding databases: CloudNativePG clusters, long-running workloads running database images or
//! exposed by a Service on a database port, and the Services in front of them.
//!
//! Jobs and CronJobs are never databases, whatever they run: a CronJob running `postgres:16` is
//! a `pg_dump` client, and a migration Job shipping a database image is a client too.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::datastore::Store;
use meshmove_model::inventory::{Inventory, Object, ObjectRef, kinds};
use meshmove_netpol::{WorkloadKind, WorkloadRef};
use meshmove_model::workload::{Workload, workloads};

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
    /// The engine's well-known port (from [`crate::datastore`]'s table).
    pub fn default_port(self) -> u16 {
        self.store().default_port().expect("every database engine has a well-known port")
    }

    /// The data store this engine is.
    pub fn store(self) -> Store {
        match self {
            Engine::Postgres => Store::Postgres,
            Engine::Mysql => Store::Mysql,
            Engine::Redis => Store::Redis,
            Engine::Mongo => Store::Mongo,
        }
    }

    /// Recognise an engine from a container image reference such as
    /// `docker.io/bitnami/postgresql:16` or `redis:7-alpine`, through the one table of data
    /// stores ([`crate::datastore`]); the other stores there (message brokers, search, object
    /// storage) are not databases to isolate.
    pub fn from_image(image: &str) -> Option<Engine> {
        Store::from_image(image).and_then(Engine::of_store)
    }

    /// The engine of a data store, if it is one of the databases `dbiso` isolates.
    pub fn of_store(store: Store) -> Option<Engine> {
        match store {
            Store::Postgres => Some(Engine::Postgres),
            Store::Mysql => Some(Engine::Mysql),
            Store::Redis => Some(Engine::Redis),
            Store::Mongo => Some(Engine::Mongo),
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
    /// Ports Prometheus scrapes: CloudNativePG's 9187; for workloads, container ports named
    /// like `metrics` or `*-exporter` and the `prometheus.io/port` pod annotation.
    pub metrics_ports: Vec<u16>,
}

impl Database {
    pub fn namespace(&self) -> &str {
        self.object.namespace.as_deref().unwrap_or("default")
    }

    /// How messages name the engine: `PostgreSQL`, `MySQL`, `Redis`, `MongoDB`; CloudNativePG
    /// clusters are `PostgreSQL cluster`.
    pub fn engine_name(&self) -> &'static str {
        match (self.engine, self.cnpg) {
            (_, true) => "PostgreSQL cluster",
            (Engine::Postgres, false) => "PostgreSQL",
            (Engine::Mysql, false) => "MySQL",
            (Engine::Redis, false) => "Redis",
            (Engine::Mongo, false) => "MongoDB",
        }
    }

    /// The workload the reachability engine groups the database's pods under: the StatefulSet
    /// (or other workload) itself, or the CloudNativePG `Cluster` that owns its instance pods.
    pub fn workload_ref(&self) -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::parse(&self.object.kind), self.namespace(), &self.object.name)
    }
}

/// CloudNativePG operator status port and metrics port.
pub use meshmove_model::cnpg::{METRICS_PORT as CNPG_METRICS_PORT, STATUS_PORT as CNPG_STATUS_PORT};

/// Find every database of the inventory, sorted by object reference.
pub fn databases(inventory: &Inventory) -> Vec<Database> {
    let by_namespace = ServicesByNamespace::new(inventory);
    let mut out = Vec::new();
    for cluster in inventory.of(&kinds::CNPG_CLUSTER) {
        let ns = cluster.namespace.clone();
        let pod_labels = BTreeMap::from([("cnpg.io/cluster".to_string(), cluster.name.clone())]);
        let mut services: Vec<String> = ["rw", "ro", "r"].iter().map(|s| format!("{}-{s}", cluster.name)).collect();
        services.extend(selecting_services(&by_namespace, ns.as_deref(), &pod_labels));
        services.sort();
        services.dedup();
        out.push(Database {
            object: cluster.object_ref(),
            engine: Engine::Postgres,
            pod_labels,
            ports: vec![Engine::Postgres.default_port()],
            services,
            cnpg: true,
            metrics_ports: vec![CNPG_METRICS_PORT],
        });
    }
    for w in workloads(inventory) {
        // CloudNativePG's own instance pods are covered by their Cluster above.
        if w.pod_labels().contains_key("cnpg.io/cluster") {
            continue;
        }
        // Batch work and Helm hooks (run to completion around an install) hold no data.
        if matches!(w.kind(), "Job" | "CronJob") || w.object.annotation("helm.sh/hook").is_some() {
            continue;
        }
        let Some(engine) = w.images().find_map(Engine::from_image) else {
            if let Some(db) = behind_database_port(&by_namespace, &w) {
                out.push(db);
            }
            continue;
        };
        let pod_labels = w.pod_labels();
        // Client ports: the database containers' ports, except metrics ports (an exporter
        // sidecar or a port named `metrics` is for Prometheus, not for clients).
        let mut metrics_ports: Vec<u16> = w.ports().into_iter().filter(|p| is_metrics_port(p.name.as_deref())).map(|p| p.port).collect();
        if let Some(p) = w.pod_annotations().get("prometheus.io/port").and_then(|p| p.parse::<u16>().ok()) {
            metrics_ports.push(p);
        }
        let mut ports: Vec<u16> = w
            .containers()
            .filter(|c| c.get("image").and_then(Value::as_str).and_then(Engine::from_image).is_some())
            .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
            .filter(|p| !is_metrics_port(p.get("name").and_then(Value::as_str)))
            .filter_map(|p| p.get("containerPort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()))
            .filter(|p| !metrics_ports.contains(p))
            .collect();
        if ports.is_empty() {
            ports.push(engine.default_port());
        }
        ports.sort_unstable();
        ports.dedup();
        metrics_ports.retain(|p| !ports.contains(p));
        metrics_ports.sort_unstable();
        metrics_ports.dedup();
        out.push(Database {
            object: w.object.object_ref(),
            engine,
            services: selecting_services(&by_namespace, Some(w.namespace()), &pod_labels),
            pod_labels,
            ports,
            cnpg: false,
            metrics_ports,
        });
    }
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

impl Engine {
    /// The engine whose well-known port this is.
    pub fn from_port(port: u16) -> Option<Engine> {
        Store::from_port(port).and_then(Engine::of_store)
    }
}

/// A workload whose image names no engine but that a Service exposes on a database's well-known
/// port (5432, 3306, 6379, 27017, as the Service port or the target port): a custom database
/// image, or a proxy or pooler in front of one (PgBouncer, ProxySQL), which clients treat as
/// the database. Its client ports are the target ports of those Service ports, resolved against
/// the container ports.
fn behind_database_port(services_in: &ServicesByNamespace<'_>, w: &Workload<'_>) -> Option<Database> {
    let pod_labels = w.pod_labels();
    let container_ports = w.ports();
    let mut engine = None;
    let mut ports = Vec::new();
    let mut services = Vec::new();
    for svc in services_in.of(Some(w.namespace())).iter().filter(|s| service_selects(s, &pod_labels)) {
        let mut on_db_port = false;
        for p in meshmove_model::service::service_ports(&svc.value).iter().filter(|p| p.is_tcp()) {
            let target = p.pod_port(&container_ports);
            let Some(found) = Engine::from_port(p.port).or_else(|| target.and_then(Engine::from_port)) else { continue };
            engine.get_or_insert(found);
            on_db_port = true;
            ports.extend(target);
        }
        if on_db_port {
            services.push(svc.name.clone());
        }
    }
    let engine = engine?;
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        ports.push(engine.default_port());
    }
    Some(Database { object: w.object.object_ref(), engine, services, pod_labels, ports, cnpg: false, metrics_ports: Vec::new() })
}

/// Whether a container port name marks a metrics endpoint (`metrics`, `http-metrics`,
/// `exporter`, `pg-exporter`).
fn is_metrics_port(name: Option<&str>) -> bool {
    name.is_some_and(|n| n.contains("metrics") || n.contains("exporter"))
}

/// The inventory's Services by namespace, in inventory order: looking at the Services of one
/// namespace per database costs their number, not the cluster's.
struct ServicesByNamespace<'a> {
    by_namespace: HashMap<&'a str, Vec<&'a Object>>,
    /// Services without a namespace.
    none: Vec<&'a Object>,
}

impl<'a> ServicesByNamespace<'a> {
    fn new(inventory: &'a Inventory) -> Self {
        let mut out = ServicesByNamespace { by_namespace: HashMap::new(), none: Vec::new() };
        for s in inventory.of(&kinds::SERVICE) {
            match s.namespace.as_deref() {
                Some(ns) => out.by_namespace.entry(ns).or_default().push(s),
                None => out.none.push(s),
            }
        }
        out
    }

    fn of(&self, namespace: Option<&str>) -> &[&'a Object] {
        match namespace {
            Some(ns) => self.by_namespace.get(ns).map_or(&[], Vec::as_slice),
            None => &self.none,
        }
    }
}

/// Names of the Services in `namespace` whose selector matches `pod_labels`.
fn selecting_services(services: &ServicesByNamespace<'_>, namespace: Option<&str>, pod_labels: &BTreeMap<String, String>) -> Vec<String> {
    services.of(namespace).iter().filter(|s| service_selects(s, pod_labels)).map(|s| s.name.clone()).collect()
}

/// Whether a Service's selector matches pod labels (a Service without selector selects nothing).
pub fn service_selects(service: &Object, pod_labels: &BTreeMap<String, String>) -> bool {
    meshmove_model::selector::service_selects(&service.value, pod_labels)
}

/// Whether a workload is one of the databases.
pub fn is_database(w: &Workload<'_>, dbs: &[Database]) -> bool {
    let r = w.object.object_ref();
    dbs.iter().any(|d| d.object == r)
}
