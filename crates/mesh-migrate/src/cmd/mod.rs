//! Subcommands of `kubectl mesh-migrate`.

pub mod post_render;

/// Mesh data-plane mode as a flag value.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Sidecar,
    Ambient,
    /// No mesh labels: probes and NetworkPolicies only
    None,
}
