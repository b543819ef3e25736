//! The migration and isolation domains shared by the `kubectl-mesh-migrate` and `kubectl-dbiso`
//! plugins: precheck, in-place and namespace migration, injection, the Helm post-renderer, the
//! NetworkPolicy generator and the database-isolation audit.
//!
//! The core never prints and never parses argv: it reads one [`meshmove_model::inventory::Inventory`]
//! (from files or from a cluster), runs analyzers over it, builds plans, and returns data and
//! typed errors. The binaries turn flags into calls and data into tables, JSON or YAML.

pub mod datastore;
pub mod dbiso;
pub mod inject;
pub mod mesh;
pub mod migrate;
pub mod nsmigrate;
pub mod policies;
pub mod postrender;
