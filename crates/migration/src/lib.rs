//! Moving workloads onto Istio, what `kubectl mesh-migrate` runs (the Helm post-renderer is its
//! own crate, `meshmove-postrender`).
//!
//! * [`precheck`] answers "is this namespace (or cluster) ready for the mesh?" before anything is
//!   changed, for either data-plane mode: classic sidecars or ambient (ztunnel). Every problem it
//!   can report has a stable code in [`catalog`], documented in `docs/findings.md`. [`quantity`]
//!   reads Kubernetes resource quantities exactly, because the capacity check adds up requests and
//!   an off-by-rounding answer there would be a wrong answer.
//! * [`inplace`] migrates a namespace where it is: `enable` (labels, restarts in batches, Istio
//!   routing objects), `expose`, `mtls`, `status`, and the journal-backed rollback.
//! * [`namespace`] is the namespace path: a `<ns>-mesh` copy, weighted shifts behind gates,
//!   rollback and complete; stateful backends are never copied (data is never forked).
//!
//! Writes go through the plan engine of `meshmove-kube`; Istio's rules come from `meshmove-istio`.
//! The crate never prints.

pub mod catalog;
pub mod inplace;
pub mod namespace;
pub mod precheck;
pub mod quantity;
