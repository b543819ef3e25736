//! Everything that talks to a cluster: loading objects into an inventory ([`cluster`]), and the
//! one path that writes ([`plan`]): plans of changes with before and after, executed with
//! server-side apply under a fixed field manager, journaled in the cluster for rollback.

pub mod cluster;
pub mod plan;
