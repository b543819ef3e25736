//! Stateful backends: the workloads whose data a copy would not carry over.
//!
//! One table of data stores (by image repository and well-known port) and one classification,
//! [`stateful_backend`], shared by the namespace migration (which never copies a stateful backend
//! unless asked: the copy would start on an empty volume) and by `dbiso` (whose database engines,
//! [`crate::discover::Engine`], are the SQL and key-value stores of this table and are
//! recognised through it).
//!
//! A workload is a stateful backend when
//!
//! * it keeps data on persistent volumes: a StatefulSet with `volumeClaimTemplates` (each replica
//!   gets its own PersistentVolumeClaim, which a copy in another namespace would get anew,
//!   empty: <https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#volume-claim-templates>),
//!   or a pod template mounting a `persistentVolumeClaim` volume (claims are namespaced: a copy
//!   in another namespace cannot mount the same claim,
//!   <https://kubernetes.io/docs/concepts/storage/persistent-volumes/#claims-as-volumes>);
//! * one of its main containers runs a known data store image ([`Store::from_image`]: the
//!   repository name, without registry, organisation, tag or digest); or
//! * a Service selecting its pods exposes a data store's well-known port as its port or target
//!   port ([`Store::from_port`]): a custom image, or a proxy or pooler clients treat as the store.
//!
//! CloudNativePG `Cluster`s are stateful backends by kind: the operator runs their instance pods
//! and their `<cluster>-rw`, `-ro` and `-r` Services itself
//! (<https://cloudnative-pg.io/documentation/current/service_management/>).
//!
//! Init containers are not looked at: an init container running `postgres` to wait with
//! `pg_isready` makes a client, not a database.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// A data store recognised by image or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    Postgres,
    /// MySQL and its forks (MariaDB, Percona Server).
    Mysql,
    /// Redis and its forks (Valkey, KeyDB).
    Redis,
    Mongo,
    Nats,
    Kafka,
    Rabbitmq,
    /// Elasticsearch and OpenSearch.
    Elasticsearch,
    /// Cassandra and ScyllaDB.
    Cassandra,
    Zookeeper,
    Etcd,
    Minio,
}

/// Image repository names (the last path segment, without tag or digest) of each store.
const IMAGES: &[(&str, Store)] = &[
    ("postgres", Store::Postgres),
    ("postgresql", Store::Postgres),
    ("postgis", Store::Postgres),
    ("postgresql-repmgr", Store::Postgres),
    ("timescaledb", Store::Postgres),
    ("mysql", Store::Mysql),
    ("mariadb", Store::Mysql),
    ("percona-server", Store::Mysql),
    ("redis", Store::Redis),
    ("redis-stack-server", Store::Redis),
    ("valkey", Store::Redis),
    ("keydb", Store::Redis),
    ("mongo", Store::Mongo),
    ("mongodb", Store::Mongo),
    ("nats", Store::Nats),
    ("nats-streaming", Store::Nats),
    ("kafka", Store::Kafka),
    ("cp-kafka", Store::Kafka),
    ("redpanda", Store::Kafka),
    ("rabbitmq", Store::Rabbitmq),
    ("elasticsearch", Store::Elasticsearch),
    ("opensearch", Store::Elasticsearch),
    ("cassandra", Store::Cassandra),
    ("scylla", Store::Cassandra),
    ("zookeeper", Store::Zookeeper),
    ("cp-zookeeper", Store::Zookeeper),
    ("etcd", Store::Etcd),
    ("minio", Store::Minio),
];

/// Client ports each store is known by. MinIO's 9000 is left out on purpose: too many
/// applications serve HTTP or gRPC on 9000 for the port alone to mean a data store.
const PORTS: &[(u16, Store)] = &[
    (5432, Store::Postgres),
    (3306, Store::Mysql),
    (6379, Store::Redis),
    (27017, Store::Mongo),
    (4222, Store::Nats),
    (9092, Store::Kafka),
    (5672, Store::Rabbitmq),
    (9200, Store::Elasticsearch),
    (9042, Store::Cassandra),
    (2181, Store::Zookeeper),
    (2379, Store::Etcd),
];

/// The repository name of an image reference: `docker.io/bitnami/postgresql:16@sha256:...` is
/// `postgresql`, `registry:5000/redis` is `redis`.
pub fn repository_name(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next().unwrap_or(last).to_ascii_lowercase()
}

impl Store {
    /// The store an image runs, by its repository name.
    pub fn from_image(image: &str) -> Option<Store> {
        let name = repository_name(image);
        IMAGES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// The store a connection URL's scheme names (`postgresql://`, `postgres://`, `mysql://`,
    /// `mariadb://`, `redis://`, `rediss://`, `mongodb://`, `mongodb+srv://`; a JDBC URL's
    /// subprotocol, `jdbc:postgresql://`, is the scheme here). These schemes are the stores'
    /// names, as in the image table.
    pub fn from_scheme(scheme: &str) -> Option<Store> {
        let s = scheme.to_ascii_lowercase();
        let s = s.rsplit(':').next().unwrap_or_default();
        let s = match s {
            "rediss" => "redis",
            "mongodb+srv" => "mongodb",
            other => other,
        };
        IMAGES.iter().find(|(n, _)| *n == s).map(|(_, st)| *st)
    }

    /// The store whose well-known client port this is.
    pub fn from_port(port: u16) -> Option<Store> {
        PORTS.iter().find(|(p, _)| *p == port).map(|(_, s)| *s)
    }

    /// The store's well-known client port (`None` for MinIO, see [`PORTS`]).
    pub fn default_port(self) -> Option<u16> {
        PORTS.iter().find(|(_, s)| *s == self).map(|(p, _)| *p)
    }

    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Store::Postgres => "PostgreSQL",
            Store::Mysql => "MySQL",
            Store::Redis => "Redis",
            Store::Mongo => "MongoDB",
            Store::Nats => "NATS",
            Store::Kafka => "Kafka",
            Store::Rabbitmq => "RabbitMQ",
            Store::Elasticsearch => "Elasticsearch",
            Store::Cassandra => "Cassandra",
            Store::Zookeeper => "ZooKeeper",
            Store::Etcd => "etcd",
            Store::Minio => "MinIO",
        }
    }
}

/// Why a workload is a stateful backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stateful {
    /// The data store it runs, when recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<Store>,
    /// The evidence, one phrase each (`volumeClaimTemplates data`, `image postgres:16`,
    /// `Service db on port 5432 (PostgreSQL)`, `CloudNativePG Cluster`).
    pub reasons: Vec<String>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// Whether a Service's selector selects pods with `labels` (a Service without a selector selects
/// nothing: its endpoints are maintained by someone else).
pub use meshmove_model::selector::service_selects;

/// The pod template labels of a workload.
pub fn pod_labels(workload: &Value) -> BTreeMap<String, String> {
    workload
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// The classification. `workload` is a Deployment, StatefulSet, DaemonSet or ReplicaSet (or a
/// CloudNativePG `Cluster`); `services` are the Services of its namespace, looked at for
/// well-known ports. `None`: stateless as far as can be told.
pub fn stateful_backend(workload: &Value, services: &[&Value]) -> Option<Stateful> {
    if str_at(workload, "/kind") == Some("Cluster") && str_at(workload, "/apiVersion").is_some_and(|a| a.starts_with("postgresql.cnpg.io/")) {
        return Some(Stateful { store: Some(Store::Postgres), reasons: vec!["CloudNativePG Cluster".into()] });
    }
    let mut store = None;
    let mut reasons = Vec::new();
    let claims: Vec<&str> = workload
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| str_at(t, "/metadata/name"))
        .collect();
    if !claims.is_empty() {
        reasons.push(format!("volumeClaimTemplates {}", claims.join(", ")));
    }
    let spec = workload.pointer("/spec/template/spec");
    let pvcs: Vec<&str> = spec
        .and_then(|s| s.get("volumes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| str_at(v, "/persistentVolumeClaim/claimName"))
        .collect();
    if !pvcs.is_empty() {
        reasons.push(format!("PersistentVolumeClaim {}", pvcs.join(", ")));
    }
    let containers: Vec<&Value> = spec.and_then(|s| s.get("containers")).and_then(Value::as_array).into_iter().flatten().collect();
    for c in &containers {
        if let Some(image) = c.get("image").and_then(Value::as_str)
            && let Some(s) = Store::from_image(image)
        {
            store.get_or_insert(s);
            reasons.push(format!("image {image} ({})", s.name()));
        }
    }
    let labels = pod_labels(workload);
    let container_ports = meshmove_model::workload::container_ports(containers.iter().copied());
    for svc in services.iter().filter(|s| service_selects(s, &labels)) {
        let sname = str_at(svc, "/metadata/name").unwrap_or("?");
        for p in meshmove_model::service::service_ports(svc).iter().filter(|p| p.is_tcp()) {
            let target = p.pod_port(&container_ports);
            let found = Store::from_port(p.port).map(|s| (p.port, s)).or_else(|| target.and_then(|t| Store::from_port(t).map(|s| (t, s))));
            if let Some((n, s)) = found {
                store.get_or_insert(s);
                reasons.push(format!("Service {sname} on port {n} ({})", s.name()));
            }
        }
    }
    (!reasons.is_empty()).then_some(Stateful { store, reasons })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(kind: &str, image: &str, extra: Value) -> Value {
        let mut d = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "x"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}});
        if let (Some(spec), Some(extra)) = (d["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        d
    }

    #[test]
    fn images_are_matched_by_repository_name() {
        assert_eq!(Store::from_image("docker.io/bitnami/postgresql:16@sha256:abc"), Some(Store::Postgres));
        assert_eq!(Store::from_image("registry:5000/redis"), Some(Store::Redis));
        assert_eq!(Store::from_image("mariadb:11"), Some(Store::Mysql));
        assert_eq!(Store::from_image("nats:2.10-alpine"), Some(Store::Nats));
        assert_eq!(Store::from_image("quay.io/strimzi/kafka:0.38.0-kafka-3.6.0"), Some(Store::Kafka));
        assert_eq!(Store::from_image("opensearchproject/opensearch:2"), Some(Store::Elasticsearch));
        assert_eq!(Store::from_image("quay.io/minio/minio"), Some(Store::Minio));
        // Exporters and clients are not the store.
        assert_eq!(Store::from_image("oliver006/redis_exporter"), None);
        assert_eq!(Store::from_image("natsio/nats-box"), None);
        assert_eq!(Store::from_image("zamaz/api:1.0"), None);
        assert_eq!(Store::from_port(4222), Some(Store::Nats));
        assert_eq!(Store::from_port(9000), None, "too common to mean MinIO");
    }

    #[test]
    fn volumes_images_and_ports_make_a_backend() {
        let sts = deploy("StatefulSet", "zamaz/db:1", json!({"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}));
        let s = stateful_backend(&sts, &[]).unwrap();
        assert_eq!((s.store, s.reasons.as_slice()), (None, ["volumeClaimTemplates data".to_string()].as_slice()));
        let mut pvc = deploy("Deployment", "zamaz/uploads:1", json!({}));
        pvc["spec"]["template"]["spec"]["volumes"] = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "uploads"}}]);
        assert_eq!(stateful_backend(&pvc, &[]).unwrap().reasons, ["PersistentVolumeClaim uploads"]);
        let redis = deploy("Deployment", "redis:7-alpine", json!({}));
        let r = stateful_backend(&redis, &[]).unwrap();
        assert_eq!(r.store, Some(Store::Redis));
        // A custom image behind a Service on a well-known port (named target port resolved).
        let mut custom = deploy("Deployment", "zamaz/pgbouncer:1", json!({}));
        custom["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"name": "pg", "containerPort": 6432}]);
        let svc = json!({"kind": "Service", "metadata": {"name": "pool"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 5432, "targetPort": "pg"}]}});
        let other = json!({"kind": "Service", "metadata": {"name": "o"}, "spec": {"selector": {"app": "y"}, "ports": [{"port": 6379}]}});
        let c = stateful_backend(&custom, &[&svc, &other]).unwrap();
        assert_eq!(c.store, Some(Store::Postgres));
        assert_eq!(c.reasons, ["Service pool on port 5432 (PostgreSQL)"]);
        // A stateless app: not a backend, even with an init container waiting for postgres.
        let mut api = deploy("Deployment", "zamaz/api:1", json!({}));
        api["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "wait", "image": "postgres:16"}]);
        let http = json!({"kind": "Service", "metadata": {"name": "api"}, "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9000}]}});
        assert_eq!(stateful_backend(&api, &[&http]), None);
        let cnpg = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"}});
        assert_eq!(stateful_backend(&cnpg, &[]).unwrap().reasons, ["CloudNativePG Cluster"]);
    }
}
