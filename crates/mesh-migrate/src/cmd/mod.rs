//! Subcommands of `kubectl mesh-migrate`.

pub mod enable;
pub mod expose;
pub mod live;
pub mod mask;
pub mod mtls;
pub mod ns;
pub mod post_render;
pub mod rollback;
pub mod spire;
pub mod status;

/// Mesh data-plane mode as a flag value.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Sidecar,
    Ambient,
    /// No mesh labels: probes and NetworkPolicies only
    None,
}
