//! The data every meshmove plugin reads: one [`inventory::Inventory`] of Kubernetes objects
//! (from files or a cluster), the YAML 1.1 layer that reads and writes them the way Helm and
//! kubectl do, the kinds the suite knows, one [`workload::Workload`] view of everything that runs
//! pods, durations, and the findings catalog with its report model.
//!
//! This crate does no I/O beyond reading files: cluster loading lives in `meshmove-kube`.

pub mod cnpg;
pub mod duration;
pub mod findings;
pub mod inventory;
pub mod names;
pub mod pod;
pub mod selector;
pub mod service;
pub mod redact;
pub mod workload;
pub mod yaml;
