//! Command-line conventions shared by the three plugins, so they behave alike: kubectl's cluster
//! flags, output formats and colours, the exit-code contract, stdout/stderr discipline, and shell
//! completion. The core library never sees clap or a terminal; this crate is where they live.

pub mod analysis;
pub mod complete;
pub mod exit;
pub mod flags;
pub mod log;
pub mod mutate;
pub mod output;
pub mod render;

pub use exit::{Exit, run_main};
pub use flags::{KubeFlags, OutputFlags, OutputFormat, ReportFlags, SourceFlags};
pub use output::Out;

/// Build a tokio runtime for commands that talk to a cluster. Two worker threads: list calls run
/// concurrently, and nothing here is CPU-bound.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}
