//! Flags every plugin shares, declared once. They are global: `kubectl dbiso -n shop audit` and
//! `kubectl dbiso audit -n shop` mean the same, as in kubectl.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use meshmove_kube::cluster::{ClusterOptions, parse_request_timeout};
use meshmove_model::findings::{FailOn, Suppression};

/// kubectl's cluster-connection flags.
#[derive(Debug, Clone, Args, Default)]
pub struct KubeFlags {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
    #[arg(long, global = true, value_name = "PATH", help_heading = "Cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Cluster")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Cluster")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Cluster")]
    pub user: Option<String>,
    /// Namespace scope (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NS", help_heading = "Cluster")]
    pub namespace: Option<String>,
    /// Act on all namespaces
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace", help_heading = "Cluster")]
    pub all_namespaces: bool,
    /// Username to impersonate for the operation
    #[arg(long = "as", global = true, value_name = "USER", help_heading = "Cluster")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable)
    #[arg(long = "as-group", global = true, value_name = "GROUP", help_heading = "Cluster")]
    pub as_group: Vec<String>,
    /// Time to wait for a server response, e.g. 30s, 1m (a bare integer is seconds, as in kubectl); 0 waits forever
    #[arg(long, global = true, value_name = "DURATION", default_value = "0", value_parser = parse_request_timeout, help_heading = "Cluster")]
    pub request_timeout: Duration,
}

impl KubeFlags {
    pub fn options(&self) -> ClusterOptions {
        ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
            impersonate: self.as_user.clone(),
            impersonate_groups: self.as_group.clone(),
            request_timeout: Some(self.request_timeout),
        }
    }
}

/// Output format of results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned table, coloured on a terminal
    #[default]
    Table,
    /// Table with more columns
    Wide,
    /// JSON with a stable schema
    Json,
    /// The same document as YAML
    Yaml,
}

/// `-o` and colour flags, plus `-v`.
#[derive(Debug, Clone, Args, Default)]
pub struct OutputFlags {
    /// Output format
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t, help_heading = "Output")]
    pub output: OutputFormat,
    /// Never colour output (also: the NO_COLOR environment variable)
    #[arg(long, global = true, help_heading = "Output")]
    pub no_color: bool,
    /// Diagnostics level on stderr, like kubectl's -v (0-9)
    #[arg(short = 'v', long = "v", global = true, value_name = "LEVEL", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=9), help_heading = "Output")]
    pub verbosity: u8,
}

impl OutputFlags {
    pub fn color(&self) -> bool {
        crate::output::use_color(self.no_color)
    }
}

/// Threshold for a failing exit code, independent of what is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FailOnArg {
    #[default]
    Error,
    Warning,
    Never,
}

/// Finding filters shared by the analysis commands.
#[derive(Debug, Clone, Args, Default)]
pub struct ReportFlags {
    /// Exit 1 when a finding at or above this severity remains
    #[arg(long, value_enum, default_value_t, help_heading = "Findings")]
    pub fail_on: FailOnArg,
    /// Hide a finding: CODE, CODE=kind/name or CODE=kind/namespace/name (repeatable)
    #[arg(long, value_name = "CODE[=KIND/[NS/]NAME]", help_heading = "Findings")]
    pub suppress: Vec<Suppression>,
}

impl ReportFlags {
    pub fn fail_on(&self) -> FailOn {
        match self.fail_on {
            FailOnArg::Error => FailOn::Error,
            FailOnArg::Warning => FailOn::Warning,
            FailOnArg::Never => FailOn::Never,
        }
    }
}

/// `-f`: analyze manifests instead of the live cluster.
#[derive(Debug, Clone, Args, Default)]
pub struct SourceFlags {
    /// Manifests to analyze instead of the cluster: a file, a directory (recursive) or - for stdin
    #[arg(short = 'f', long = "filename", value_name = "PATH", help_heading = "Input")]
    pub filename: Vec<PathBuf>,
    /// How much of each Pod the command's analyses read (not a flag: set by the command).
    #[arg(skip)]
    pub pods: meshmove_model::inventory::PodDetail,
}

impl SourceFlags {
    /// The same source, read keeping pods as `pods` says.
    pub fn keeping(&self, pods: meshmove_model::inventory::PodDetail) -> SourceFlags {
        SourceFlags { pods, ..self.clone() }
    }
}
