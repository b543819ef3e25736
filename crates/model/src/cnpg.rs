//! CloudNativePG facts the suite relies on, in one place.
//!
//! The operator runs each `postgresql.cnpg.io/v1` `Cluster` as instance pods labelled
//! `cnpg.io/cluster: <name>`; every instance serves PostgreSQL on 5432, the instance manager's
//! status API on 8000 (the operator polls it) and Prometheus metrics on 9187.
//! Source: CloudNativePG documentation, "Networking" (the operator must reach 8000 and 5432 of
//! every instance) and "Monitoring" (the `metrics` port 9187):
//! <https://cloudnative-pg.io/documentation/current/networking/>,
//! <https://cloudnative-pg.io/documentation/current/monitoring/>.

/// Label the operator puts on every instance pod of a cluster, valued with the cluster's name.
pub const CLUSTER_LABEL: &str = "cnpg.io/cluster";
/// PostgreSQL on every instance.
pub const POSTGRES_PORT: u16 = 5432;
/// The instance manager's status endpoint, polled by the operator.
pub const STATUS_PORT: u16 = 8000;
/// The instance's metrics exporter.
pub const METRICS_PORT: u16 = 9187;
