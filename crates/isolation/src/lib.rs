//! Database isolation, what `kubectl dbiso` runs: each service owns its database.
//!
//! A database shared by two services couples their releases, their schemas and their failures;
//! a database any pod can reach turns one compromised pod into a data breach. `dbiso` looks for
//! both, on a live cluster or on rendered manifests alike:
//!
//! * [`datastore`] says which images and ports are data stores (shared with the namespace
//!   migration, which must never copy one);
//! * [`discover`] finds the databases (CloudNativePG clusters, long-running workloads running
//!   database images) and the Services in front of them;
//! * [`owners`] maps which workloads reference which database, through connection strings and
//!   hosts in their environment, Secrets and ConfigMaps, and groups them into services;
//! * [`meshmove_netpol::view`] turns the inventory into the input of the NetworkPolicy engine,
//!   which decides who reaches whom;
//! * [`target`] reads the ends of `explain` (`deployment/api`, `cidr:10.0.0.0/8`);
//! * [`audit`] combines both into findings with the stable codes of [`catalog`];
//! * [`generate`] writes the policies that isolate each database (reusing the database rules of
//!   [`policies`], the one NetworkPolicy generator, which the Helm post-renderer also uses and
//!   whose output the engine proves before it is returned) and [`apply`] sends them with
//!   server-side apply.

pub mod apply;
pub mod audit;
pub mod catalog;
pub mod datastore;
pub mod discover;
pub mod generate;
pub mod owners;
pub mod policies;
pub mod target;

pub use audit::{Audit, AuditOptions, analyzers};
