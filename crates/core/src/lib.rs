//! Core library shared by the `kubectl-mesh-migrate`, `kubectl-spire-check` and `kubectl-dbiso`
//! plugins.
//!
//! The core never prints and never parses argv: it loads objects into one [`inventory::Inventory`]
//! (from files or from a cluster), runs analyzers over it, builds plans, and returns data and typed
//! errors. The binaries turn flags into calls and data into tables, JSON or YAML.

pub mod cluster;
pub mod dbiso;
pub mod duration;
pub mod findings;
pub mod inject;
pub mod inventory;
pub mod mesh;
pub mod migrate;
pub mod netpol;
pub mod nsmigrate;
pub mod plan;
pub mod policies;
pub mod postrender;
pub mod spire;
pub mod workload;

pub mod yaml;
