//! The `ns` subcommands' flags, and how they become the options of
//! `meshmove_migration::namespace::run`.

use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use meshmove_kube::cluster::{Connection, parse_timeout};
use meshmove_cli::mutate::MutateFlags;
use meshmove_kube::plan;
use meshmove_migration::inplace::TrafficProfile;
use meshmove_migration::namespace::copy::CopyOptions;
use meshmove_migration::namespace::gates::Thresholds;
use meshmove_migration::namespace::prometheus::Prometheus;
use meshmove_migration::namespace::run::{self, GateOptions, RunOptions};
use meshmove_migration::namespace::state::{self, OnFailure};
use meshmove_migration::namespace::{DataPlane, PodSecurity, Sides, WaypointChoice};

#[derive(Subcommand)]
pub enum NsCommand {
    /// Create <ns>-mesh beside <ns>: copies of the stateless workloads, their Services,
    /// ServiceAccounts, Roles, RoleBindings, autoscalers and ConfigMaps, injection and Pod Security
    /// labels, routing at 0 %; stateful backends stay in <ns>, shared with the copies; its
    /// PodDisruptionBudgets, NetworkPolicies, quotas and limit ranges carried; its Ingresses and
    /// HTTPRoutes served by an Istio Gateway with the same split
    #[command(
        after_help = "Examples:\n  kubectl mesh-migrate ns create shop\n  kubectl mesh-migrate ns create shop --mode ambient --dry-run=client\n  kubectl mesh-migrate ns create shop --copy-secrets --pod-security baseline\n  kubectl mesh-migrate ns create shop --profile traffic.yaml --max-connections 200\n  kubectl mesh-migrate ns create shop --copy-stateful redis"
    )]
    Create(CreateArgs),
    /// Set the share of traffic the mesh side gets (0-100), or run a schedule of steps with
    /// gates between them
    #[command(
        after_help = "Examples:\n  kubectl mesh-migrate ns shift shop 10\n  kubectl mesh-migrate ns shift shop --steps 10,25,50,75,100 --interval 30m --prometheus-service monitoring/prometheus-k8s:web\n  kubectl mesh-migrate ns shift shop 25 --allow-decrease"
    )]
    Shift(ShiftArgs),
    /// Watch weight, readiness, restarts, success rate and latency of both sides
    #[command(
        after_help = "Examples:\n  kubectl mesh-migrate ns monitor shop --for 30m --prometheus-service monitoring/prometheus-k8s:web\n  kubectl mesh-migrate ns monitor shop --for 0s -o json"
    )]
    Monitor(MonitorArgs),
    /// Phase, weight, routing, last gate results and history, from the cluster (-A: one line
    /// per namespace with a recorded migration)
    #[command(after_help = "Examples:\n  kubectl mesh-migrate ns status shop\n  kubectl mesh-migrate ns status -A")]
    Status(NsArg),
    /// Shift to 100 % (gates checked first), then scale the legacy workloads to zero (stateful
    /// backends stay, serving the mesh side); refused while an Ingress still serves them or
    /// ambient workloads can reach them
    #[command(after_help = "Examples:\n  kubectl mesh-migrate ns complete shop\n  kubectl mesh-migrate ns complete shop --delete-legacy\n  kubectl mesh-migrate ns complete shop --ignore-ambient-callers")]
    Complete(CompleteArgs),
    /// Back to 0 %, mesh workloads scaled to zero; the legacy side is left as it is
    Rollback(RollbackArgs),
    /// After a rollback: delete what the migration created (the mesh side, and <ns>-mesh when it
    /// created it and nothing else is in it), from its journal; objects changed by someone else
    /// since are kept and named unless --force
    #[command(
        after_help = "Examples:\n  kubectl mesh-migrate ns cleanup shop --dry-run=client\n  kubectl mesh-migrate ns cleanup shop\n  kubectl mesh-migrate ns cleanup shop --force"
    )]
    Cleanup(CleanupArgs),
}

#[derive(Args)]
pub struct NsArg {
    /// The legacy namespace (default: -n, else the kubeconfig context's namespace)
    #[arg(id = "legacy_namespace", value_name = "NAMESPACE")]
    pub(super) namespace: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Sidecar,
    Ambient,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodSecurityArg {
    Restricted,
    Baseline,
    Privileged,
    /// No Pod Security labels
    None,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub(super) ns: NsArg,
    /// Data-plane mode of the mesh namespace
    #[arg(long, value_enum, default_value = "sidecar")]
    pub(super) mode: ModeArg,
    /// Istio revision to inject (sidecar mode): labels istio.io/rev instead of istio-injection
    #[arg(long, value_name = "REVISION")]
    pub(super) revision: Option<String>,
    /// Pod Security level the mesh namespace enforces
    #[arg(long, value_enum, default_value = "restricted")]
    pub(super) pod_security: PodSecurityArg,
    /// Label the namespace even when copies would violate the Pod Security level
    #[arg(long)]
    pub(super) allow_pod_security_violations: bool,
    /// Copy Secrets too (their values are never printed)
    #[arg(long)]
    pub(super) copy_secrets: bool,
    /// Copy this stateful backend too (a workload name, or Kind/name; repeatable). Stateful
    /// backends stay in the legacy namespace by default: a copy starts EMPTY, on new volumes
    #[arg(long, value_name = "NAME")]
    pub(super) copy_stateful: Vec<String>,
    /// Create the mesh side although the Istio control plane check fails
    #[arg(long)]
    pub(super) force: bool,
    /// Create the mesh side although the copies would lose connections the legacy side has under
    /// the carried NetworkPolicies
    #[arg(long)]
    pub(super) allow_lost_connections: bool,
    /// Create the mesh side although some kinds of the legacy namespace could not be read
    /// (Roles, RoleBindings, autoscalers, NetworkPolicies, budgets, quotas, CloudNativePG
    /// clusters): the copies then lack what those would have carried
    #[arg(long)]
    pub(super) allow_unreadable: bool,
    /// `istio` label of the ingress gateway pods the Gateways for the namespace's Ingresses and
    /// HTTPRoutes select
    #[arg(long, value_name = "VALUE", default_value = "ingressgateway")]
    pub(super) gateway_selector: String,
    /// Ambient: bind the mesh namespace to this existing waypoint (a Gateway of class
    /// istio-waypoint; a bare name is in the mesh namespace) instead of deploying one
    #[arg(long, value_name = "[NAMESPACE/]NAME")]
    pub(super) waypoint: Option<String>,
    /// Ambient: no waypoint (L4 only: no HTTP routing at a waypoint, gates from ztunnel's
    /// connection metrics)
    #[arg(long)]
    pub(super) no_waypoint: bool,
    #[command(flatten)]
    pub(super) traffic: crate::cmd::enable::TrafficProfileArgs,
    #[command(flatten)]
    pub(super) write: MutateFlags,
}

/// Where the success-rate and latency gates (and `ns monitor`) read Istio's metrics.
#[derive(Args, Clone)]
pub struct PrometheusArgs {
    /// Prometheus Service reached through the API server's service proxy with the kubeconfig's
    /// credentials (needs `get` on `services/proxy` there), e.g. monitoring/prometheus-k8s:web
    #[arg(long, value_name = "[https:]NAMESPACE/NAME[:PORT]", help_heading = "Gates", conflicts_with = "prometheus_url")]
    prometheus_service: Option<String>,
    /// Prometheus base URL reached directly, without credentials (e.g. through kubectl port-forward)
    #[arg(long, value_name = "URL", help_heading = "Gates")]
    prometheus_url: Option<String>,
}

impl PrometheusArgs {
    pub(super) fn prometheus(&self, conn: &Connection) -> Result<Option<Prometheus>> {
        Ok(match (&self.prometheus_service, &self.prometheus_url) {
            (Some(spec), _) => Some(Prometheus::service(&conn.client, spec)?),
            (None, Some(url)) => Some(Prometheus::url(url)?),
            (None, None) => None,
        })
    }
}

#[derive(Args, Clone)]
pub struct GateArgs {
    #[command(flatten)]
    pub(super) prometheus: PrometheusArgs,
    /// Lowest acceptable success rate of the mesh side, in percent
    #[arg(long, value_name = "PERCENT", default_value_t = 99.0, help_heading = "Gates")]
    pub(super) min_success_rate: f64,
    /// Highest acceptable p99 latency of the mesh side
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_timeout, help_heading = "Gates")]
    max_p99: Duration,
    /// Container restarts allowed on the mesh side per step
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Gates")]
    pub(super) max_restarts: u64,
    /// PromQL rate window
    #[arg(long, value_name = "RANGE", default_value = "5m", value_parser = prom_range, help_heading = "Gates")]
    pub(super) window: String,
    /// What a failed gate does: back to 0 % at once, or hold the weight for a human
    #[arg(long, value_enum, default_value = "rollback", help_heading = "Gates")]
    pub(super) on_failure: OnFailureArg,
    /// How often gates are checked while a step is watched
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_timeout, help_heading = "Gates")]
    pub(super) check_every: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailureArg {
    Rollback,
    Freeze,
}

#[derive(Args)]
pub struct ShiftArgs {
    /// The legacy namespace
    #[arg(id = "legacy_namespace", value_name = "NAMESPACE")]
    pub(super) namespace: Option<String>,
    /// Mesh weight, 0-100
    #[arg(value_name = "PERCENT", value_parser = parse_weight, conflicts_with = "steps", required_unless_present = "steps")]
    pub(super) percent: Option<u8>,
    /// Run a schedule of weights, gates checked after each (e.g. 10,25,50,75,100)
    #[arg(long, value_name = "W1,W2,...", value_parser = parse_steps)]
    pub(super) steps: Option<Steps>,
    /// How long each weight is watched before the next (default 30m with --steps, else 0: check once)
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(super) interval: Option<Duration>,
    /// Allow a lower weight than the current one
    #[arg(long)]
    pub(super) allow_decrease: bool,
    #[command(flatten)]
    pub(super) gates: GateArgs,
    #[command(flatten)]
    pub(super) write: MutateFlags,
}

#[derive(Clone)]
pub struct Steps(pub(super) Vec<u8>);

#[derive(Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub(super) ns: NsArg,
    /// How long to watch (0: one sample)
    #[arg(long = "for", value_name = "DURATION", default_value = "0s", value_parser = parse_timeout)]
    pub(super) duration: Duration,
    /// Time between refreshes
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub(super) every: Duration,
    #[command(flatten)]
    pub(super) prometheus: PrometheusArgs,
    /// PromQL rate window
    #[arg(long, value_name = "RANGE", default_value = "5m", value_parser = prom_range)]
    pub(super) window: String,
}

#[derive(Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    pub(super) ns: NsArg,
    /// Delete the legacy workloads instead of scaling them to zero (the journal keeps them for
    /// `ns rollback`)
    #[arg(long)]
    pub(super) delete_legacy: bool,
    /// Complete although an Ingress still sends its hosts' traffic to the legacy side (those
    /// hosts then fail)
    #[arg(long)]
    pub(super) force: bool,
    /// Complete although workloads captured by ztunnel (ambient), which the weights never
    /// moved, can reach the legacy workloads it scales down (their requests then fail)
    #[arg(long)]
    pub(super) ignore_ambient_callers: bool,
    /// How long 100 % is watched before the legacy side is retired (0: check once)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_timeout)]
    pub(super) interval: Duration,
    #[command(flatten)]
    pub(super) gates: GateArgs,
    #[command(flatten)]
    pub(super) write: MutateFlags,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub(super) ns: NsArg,
    #[command(flatten)]
    pub(super) write: MutateFlags,
}

#[derive(Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub(super) ns: NsArg,
    /// Delete objects of the mesh side although someone changed them since the tool wrote them
    /// (objects that no longer carry the migration's marker are kept all the same)
    #[arg(long)]
    pub(super) force: bool,
    #[command(flatten)]
    pub(super) write: MutateFlags,
}

fn parse_weight(s: &str) -> Result<u8, state::WeightError> {
    state::parse_weight(s)
}

fn parse_steps(s: &str) -> Result<Steps, state::StepsError> {
    state::parse_steps(s).map(Steps)
}

/// A `--range` value that is not a PromQL range (clap names the flag).
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a PromQL range: use e.g. 30s, 5m, 1h")]
pub(super) struct PromRangeError {
    text: String,
}

/// A PromQL range: digits and a unit (ms, s, m, h, d, w, y), possibly combined (`1h30m`).
fn prom_range(s: &str) -> Result<String, PromRangeError> {
    let re_ok = !s.is_empty() && {
        let mut rest = s;
        let mut ok = true;
        while !rest.is_empty() && ok {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                ok = false;
                break;
            }
            rest = &rest[digits..];
            let unit = ["ms", "s", "m", "h", "d", "w", "y"].into_iter().find(|u| rest.starts_with(u));
            match unit {
                Some(u) => rest = &rest[u.len()..],
                None => ok = false,
            }
        }
        ok
    };
    if re_ok { Ok(s.to_string()) } else { Err(PromRangeError { text: s.to_string() }) }
}

/// The shared `--dry-run` and `--timeout` ([`MutateFlags`], the suite's mutating-command
/// contract) as the `ns` commands' options.
pub(super) fn run_options(flags: &MutateFlags, conn: &Connection) -> RunOptions {
    RunOptions { dry_run: flags.dry_run.into(), timeout: flags.timeout, actor: plan::actor(Some(&conn.context)) }
}

impl GateArgs {
    pub(super) fn options(&self, conn: &Connection, interval: Duration) -> Result<GateOptions> {
        if !(0.0..=100.0).contains(&self.min_success_rate) {
            return Err(anyhow!("--min-success-rate {} is out of range: use 0-100", self.min_success_rate));
        }
        let prometheus = self.prometheus.prometheus(conn)?;
        Ok(GateOptions {
            thresholds: Thresholds {
                min_success_rate: self.min_success_rate,
                max_p99_ms: self.max_p99.as_secs_f64() * 1000.0,
                max_restarts: self.max_restarts,
                window: self.window.clone(),
            },
            prometheus,
            on_failure: match self.on_failure {
                OnFailureArg::Rollback => OnFailure::Rollback,
                OnFailureArg::Freeze => OnFailure::Freeze,
            },
            interval,
            check_every: self.check_every,
        })
    }
}

impl NsCommand {
    pub(super) fn name(&self) -> &'static str {
        match self {
            NsCommand::Create(_) => "create",
            NsCommand::Shift(_) => "shift",
            NsCommand::Monitor(_) => "monitor",
            NsCommand::Status(_) => "status",
            NsCommand::Complete(_) => "complete",
            NsCommand::Rollback(_) => "rollback",
            NsCommand::Cleanup(_) => "cleanup",
        }
    }
}

impl CreateArgs {
    /// What to copy and how, the refusals the flags override, and the traffic profile.
    pub(super) fn options(&self, sides: &Sides) -> Result<(CopyOptions, run::CreateOverrides, TrafficProfile)> {
        let data_plane = match (self.mode, &self.revision) {
            (ModeArg::Ambient, Some(_)) => return Err(anyhow!("--revision applies to sidecar mode only")),
            (ModeArg::Ambient, None) => DataPlane::Ambient,
            (ModeArg::Sidecar, Some(r)) => DataPlane::SidecarRevision { revision: r.clone() },
            (ModeArg::Sidecar, None) => DataPlane::Sidecar,
        };
        let pod_security = match self.pod_security {
            PodSecurityArg::Restricted => PodSecurity::Restricted,
            PodSecurityArg::Baseline => PodSecurity::Baseline,
            PodSecurityArg::Privileged => PodSecurity::Privileged,
            PodSecurityArg::None => PodSecurity::None,
        };
        if self.mode == ModeArg::Sidecar && (self.waypoint.is_some() || self.no_waypoint) {
            return Err(anyhow!("--waypoint and --no-waypoint apply to --mode ambient only"));
        }
        let waypoint = WaypointChoice::from_flags(self.waypoint.as_deref(), self.no_waypoint, sides)?;
        let copy = CopyOptions {
            data_plane,
            pod_security,
            secrets: self.copy_secrets,
            copy_stateful: self.copy_stateful.clone(),
            gateway_selector: Some(self.gateway_selector.clone()),
            waypoint,
        };
        let overrides = run::CreateOverrides {
            allow_pod_security_violations: self.allow_pod_security_violations,
            ignore_control_plane: self.force,
            allow_lost_connections: self.allow_lost_connections,
            allow_unreadable: self.allow_unreadable,
        };
        Ok((copy, overrides, self.traffic.profile()?))
    }
}

impl ShiftArgs {
    /// The weights to go through and the gates between them (`--steps` watches each for 30m
    /// unless `--interval` says otherwise; one weight is checked once).
    pub(super) fn schedule(&self, conn: &Connection) -> Result<(Vec<u8>, GateOptions)> {
        let (steps, default_interval) = match (&self.steps, self.percent) {
            (Some(Steps(s)), _) => (s.clone(), Duration::from_secs(30 * 60)),
            (None, Some(p)) => (vec![p], Duration::ZERO),
            (None, None) => return Err(anyhow!("give a weight (0-100) or --steps")),
        };
        Ok((steps, self.gates.options(conn, self.interval.unwrap_or(default_interval))?))
    }
}
