//! Everything that talks to a cluster: loading objects into an inventory ([`cluster`]), the
//! one path that writes ([`plan`]): plans of changes with before and after, executed with
//! server-side apply under a fixed field manager, journaled in the cluster for rollback; and
//! commands run in a pod's container through the exec API ([`exec`]).

pub mod cluster;
pub mod exec;
pub mod plan;
