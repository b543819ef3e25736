//! Moving namespaces onto Istio: the checks `kubectl mesh-migrate` runs and the codes it reports.
//!
//! [`precheck`] answers "is this namespace (or cluster) ready for the mesh?" before anything is
//! changed, for either data-plane mode: classic sidecars or ambient (ztunnel). Every problem it can
//! report has a stable code in [`catalog`], documented in `docs/findings.md`. [`quantity`] reads
//! Kubernetes resource quantities exactly, because the capacity check adds up requests and an
//! off-by-rounding answer there would be a wrong answer.

pub mod catalog;
pub mod precheck;
pub mod quantity;
