//! `kubectl mesh-migrate ns`: the namespace-based migration path. Glue only: flags to options,
//! reports to text; the work is in `meshmove_migration::namespace`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use meshmove_cli::render::{structured, table};
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat};
use meshmove_kube::cluster::{Connection, parse_timeout};
use meshmove_migration::namespace::copy::CopyOptions;
use meshmove_migration::namespace::gates::{GateResult, Thresholds, fmt_num};
use meshmove_migration::namespace::prometheus::Prometheus;
use meshmove_migration::namespace::run::{self, GateOptions, NsError, NsEvent, Report, RunOptions};
use meshmove_migration::namespace::state::{self, OnFailure};
use meshmove_migration::namespace::{DataPlane, PodSecurity, Sides, WaypointChoice};
use meshmove_kube::plan::{self, DryRun, Progress};

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
        after_help = "Examples:\n  kubectl mesh-migrate ns shift shop 10\n  kubectl mesh-migrate ns shift shop --steps 10,25,50,75,100 --interval 30m --prometheus-url http://localhost:9090\n  kubectl mesh-migrate ns shift shop 25 --allow-decrease"
    )]
    Shift(ShiftArgs),
    /// Watch weight, readiness, restarts, success rate and latency of both sides
    #[command(
        after_help = "Examples:\n  kubectl mesh-migrate ns monitor shop --for 30m --prometheus-url http://localhost:9090\n  kubectl mesh-migrate ns monitor shop --for 0s -o json"
    )]
    Monitor(MonitorArgs),
    /// Phase, weight, routing, last gate results and history, from the cluster (-A: one line
    /// per namespace with a recorded migration)
    #[command(after_help = "Examples:\n  kubectl mesh-migrate ns status shop\n  kubectl mesh-migrate ns status -A")]
    Status(NsArg),
    /// Shift to 100 % (gates checked first), then scale the legacy workloads to zero (stateful
    /// backends stay, serving the mesh side); refused while an Ingress still serves them
    #[command(after_help = "Examples:\n  kubectl mesh-migrate ns complete shop\n  kubectl mesh-migrate ns complete shop --delete-legacy")]
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
    namespace: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRunArg {
    /// Write for real
    None,
    /// Send nothing: print a diff per object (-o yaml|json: the objects)
    Client,
    /// Send every write with dryRun=All: the server validates and persists nothing
    Server,
}

#[derive(Args)]
pub struct WriteArgs {
    /// none, client or server
    #[arg(long, value_enum, value_name = "MODE", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    dry_run: DryRunArg,
    /// Longest wait for a rollout
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    timeout: Duration,
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
    ns: NsArg,
    /// Data-plane mode of the mesh namespace
    #[arg(long, value_enum, default_value = "sidecar")]
    mode: ModeArg,
    /// Istio revision to inject (sidecar mode): labels istio.io/rev instead of istio-injection
    #[arg(long, value_name = "REVISION")]
    revision: Option<String>,
    /// Pod Security level the mesh namespace enforces
    #[arg(long, value_enum, default_value = "restricted")]
    pod_security: PodSecurityArg,
    /// Label the namespace even when copies would violate the Pod Security level
    #[arg(long)]
    allow_pod_security_violations: bool,
    /// Copy Secrets too (their values are never printed)
    #[arg(long)]
    copy_secrets: bool,
    /// Copy this stateful backend too (a workload name, or Kind/name; repeatable). Stateful
    /// backends stay in the legacy namespace by default: a copy starts EMPTY, on new volumes
    #[arg(long, value_name = "NAME")]
    copy_stateful: Vec<String>,
    /// Create the mesh side although the Istio control plane check fails
    #[arg(long)]
    force: bool,
    /// Create the mesh side although the copies would lose connections the legacy side has under
    /// the carried NetworkPolicies
    #[arg(long)]
    allow_lost_connections: bool,
    /// Create the mesh side although some kinds of the legacy namespace could not be read
    /// (Roles, RoleBindings, autoscalers, NetworkPolicies, budgets, quotas, CloudNativePG
    /// clusters): the copies then lack what those would have carried
    #[arg(long)]
    allow_unreadable: bool,
    /// `istio` label of the ingress gateway pods the Gateways for the namespace's Ingresses and
    /// HTTPRoutes select
    #[arg(long, value_name = "VALUE", default_value = "ingressgateway")]
    gateway_selector: String,
    /// Ambient: bind the mesh namespace to this existing waypoint (a Gateway of class
    /// istio-waypoint; a bare name is in the mesh namespace) instead of deploying one
    #[arg(long, value_name = "[NAMESPACE/]NAME")]
    waypoint: Option<String>,
    /// Ambient: no waypoint (L4 only: no HTTP routing at a waypoint, gates from ztunnel's
    /// connection metrics)
    #[arg(long)]
    no_waypoint: bool,
    #[command(flatten)]
    traffic: super::enable::TrafficProfileArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args, Clone)]
pub struct GateArgs {
    /// Prometheus base URL for the success-rate and latency gates (its HTTP query API)
    #[arg(long, value_name = "URL", help_heading = "Gates")]
    prometheus_url: Option<String>,
    /// Lowest acceptable success rate of the mesh side, in percent
    #[arg(long, value_name = "PERCENT", default_value_t = 99.0, help_heading = "Gates")]
    min_success_rate: f64,
    /// Highest acceptable p99 latency of the mesh side
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_timeout, help_heading = "Gates")]
    max_p99: Duration,
    /// Container restarts allowed on the mesh side per step
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Gates")]
    max_restarts: u64,
    /// PromQL rate window
    #[arg(long, value_name = "RANGE", default_value = "5m", value_parser = prom_range, help_heading = "Gates")]
    window: String,
    /// What a failed gate does: back to 0 % at once, or hold the weight for a human
    #[arg(long, value_enum, default_value = "rollback", help_heading = "Gates")]
    on_failure: OnFailureArg,
    /// How often gates are checked while a step is watched
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_timeout, help_heading = "Gates")]
    check_every: Duration,
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
    namespace: Option<String>,
    /// Mesh weight, 0-100
    #[arg(value_name = "PERCENT", value_parser = parse_weight, conflicts_with = "steps", required_unless_present = "steps")]
    percent: Option<u8>,
    /// Run a schedule of weights, gates checked after each (e.g. 10,25,50,75,100)
    #[arg(long, value_name = "W1,W2,...", value_parser = parse_steps)]
    steps: Option<Steps>,
    /// How long each weight is watched before the next (default 30m with --steps, else 0: check once)
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    interval: Option<Duration>,
    /// Allow a lower weight than the current one
    #[arg(long)]
    allow_decrease: bool,
    #[command(flatten)]
    gates: GateArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Clone)]
pub struct Steps(Vec<u8>);

#[derive(Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    ns: NsArg,
    /// How long to watch (0: one sample)
    #[arg(long = "for", value_name = "DURATION", default_value = "0s", value_parser = parse_timeout)]
    duration: Duration,
    /// Time between refreshes
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    every: Duration,
    /// Prometheus base URL (success rate and latency per side)
    #[arg(long, value_name = "URL")]
    prometheus_url: Option<String>,
    /// PromQL rate window
    #[arg(long, value_name = "RANGE", default_value = "5m", value_parser = prom_range)]
    window: String,
}

#[derive(Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    ns: NsArg,
    /// Delete the legacy workloads instead of scaling them to zero (the journal keeps them for
    /// `ns rollback`)
    #[arg(long)]
    delete_legacy: bool,
    /// Complete although an Ingress still sends its hosts' traffic to the legacy side (those
    /// hosts then fail)
    #[arg(long)]
    force: bool,
    /// How long 100 % is watched before the legacy side is retired (0: check once)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_timeout)]
    interval: Duration,
    #[command(flatten)]
    gates: GateArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    ns: NsArg,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    ns: NsArg,
    /// Delete objects of the mesh side although someone changed them since the tool wrote them
    /// (objects that no longer carry the migration's marker are kept all the same)
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    write: WriteArgs,
}

fn parse_weight(s: &str) -> Result<u8, String> {
    state::parse_weight(s)
}

fn parse_steps(s: &str) -> Result<Steps, String> {
    state::parse_steps(s).map(Steps).map_err(|e| e.trim_start_matches("--steps: ").to_string())
}

/// A PromQL range: digits and a unit (ms, s, m, h, d, w, y), possibly combined (`1h30m`).
fn prom_range(s: &str) -> Result<String, String> {
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
    if re_ok { Ok(s.to_string()) } else { Err(format!("`{s}` is not a PromQL range: use e.g. 30s, 5m, 1h")) }
}

impl WriteArgs {
    fn options(&self, conn: &Connection) -> RunOptions {
        let dry_run = match self.dry_run {
            DryRunArg::None => DryRun::None,
            DryRunArg::Client => DryRun::Client,
            DryRunArg::Server => DryRun::Server,
        };
        RunOptions { dry_run, timeout: self.timeout, actor: plan::actor(Some(&conn.context)) }
    }
}

impl GateArgs {
    fn options(&self, interval: Duration) -> Result<GateOptions> {
        if !(0.0..=100.0).contains(&self.min_success_rate) {
            return Err(anyhow!("--min-success-rate {} is out of range: use 0-100", self.min_success_rate));
        }
        let prometheus = self.prometheus_url.as_deref().map(Prometheus::new).transpose().map_err(|e| anyhow!(e))?;
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
    fn name(&self) -> &'static str {
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

fn legacy_namespace(kube: &KubeFlags, positional: &Option<String>) -> Result<Sides> {
    let ns = positional.clone().unwrap_or_else(|| kube.options().default_namespace());
    Sides::new(&ns).map_err(|e| anyhow!(e))
}

/// Turn a core error into the exit-code contract: refused steps and bad input 2; plan errors by
/// their class (cluster and conflicts 3, rollout timeouts 1), as `meshmove_cli::exit` maps them.
fn fail(e: NsError) -> Result<Exit> {
    match e {
        NsError::Plan(p) => Err(anyhow::Error::new(p)),
        other => Err(anyhow::Error::new(other)),
    }
}

/// stderr progress: notes, gate checks, rollout waits.
fn progress(verbose: bool) -> impl FnMut(NsEvent) {
    let tty = std::io::stderr().is_terminal();
    move |e| match e {
        NsEvent::Note(n) => eprintln!("{n}"),
        NsEvent::Gates { weight, results } => {
            let summary: Vec<String> =
                results.iter().map(|g| format!("{} {} {}", g.gate, g.observed, if g.passed { "ok" } else { "FAILED" })).collect();
            eprintln!("gates at {weight} %: {}", summary.join(", "));
        }
        NsEvent::Plan(Progress::Waiting { ready, total, pending }) => {
            let what = pending.map(|(t, s)| format!(": {} {s}", t.kubectl_name())).unwrap_or_default();
            if tty {
                eprint!("\rwaiting for rollouts: {ready}/{total} ready{what}\x1b[K");
                if ready == total {
                    eprintln!();
                }
            } else if verbose || ready == total {
                eprintln!("waiting for rollouts: {ready}/{total} ready{what}");
            }
        }
        NsEvent::Plan(Progress::Done(o)) if verbose => eprintln!("{o}"),
        NsEvent::Plan(_) => {}
    }
}

pub fn run(kube: &KubeFlags, output: &OutputFlags, command: NsCommand) -> Result<Exit> {
    if kube.all_namespaces {
        match &command {
            NsCommand::Status(a) => {
                if let Some(ns) = &a.namespace {
                    return Err(anyhow!(
                        "-A/--all-namespaces lists every namespace's migration: drop it to see {ns} alone, or drop {ns} to list them all"
                    ));
                }
            }
            other => {
                return Err(anyhow!(
                    "-A/--all-namespaces does not apply to `ns {}`: a namespace-based migration works on one legacy namespace and its -mesh copy; name the namespace (`kubectl mesh-migrate ns {} <namespace>`); `ns status -A` lists every namespace's migration",
                    other.name(),
                    other.name()
                ));
            }
        }
    }
    let rt = meshmove_cli::runtime()?;
    rt.block_on(async {
        let conn = kube.options().connect().await?;
        if kube.all_namespaces {
            return match run::status_all(&conn).await {
                Ok(all) => print_status_all(output, &all),
                Err(e) => fail(e),
            };
        }
        let verbose = output.verbosity > 0;
        let mut events = progress(verbose);
        let result = match &command {
            NsCommand::Create(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let data_plane = match (a.mode, &a.revision) {
                    (ModeArg::Ambient, Some(_)) => return Err(anyhow!("--revision applies to sidecar mode only")),
                    (ModeArg::Ambient, None) => DataPlane::Ambient,
                    (ModeArg::Sidecar, Some(r)) => DataPlane::SidecarRevision { revision: r.clone() },
                    (ModeArg::Sidecar, None) => DataPlane::Sidecar,
                };
                let pod_security = match a.pod_security {
                    PodSecurityArg::Restricted => PodSecurity::Restricted,
                    PodSecurityArg::Baseline => PodSecurity::Baseline,
                    PodSecurityArg::Privileged => PodSecurity::Privileged,
                    PodSecurityArg::None => PodSecurity::None,
                };
                if a.mode == ModeArg::Sidecar && (a.waypoint.is_some() || a.no_waypoint) {
                    return Err(anyhow!("--waypoint and --no-waypoint apply to --mode ambient only"));
                }
                let waypoint = WaypointChoice::from_flags(a.waypoint.as_deref(), a.no_waypoint, &sides).map_err(|e| anyhow!(e))?;
                let copy = CopyOptions {
                    data_plane,
                    pod_security,
                    secrets: a.copy_secrets,
                    copy_stateful: a.copy_stateful.clone(),
                    gateway_selector: Some(a.gateway_selector.clone()),
                    waypoint,
                };
                let opts = a.write.options(&conn);
                let overrides = run::CreateOverrides { allow_pod_security_violations: a.allow_pod_security_violations, ignore_control_plane: a.force, allow_lost_connections: a.allow_lost_connections, allow_unreadable: a.allow_unreadable };
                let profile = a.traffic.profile()?;
                run::create(&conn, &sides, &copy, &profile, overrides, &opts, &mut events).await
            }
            NsCommand::Shift(a) => {
                let sides = legacy_namespace(kube, &a.namespace)?;
                let (steps, default_interval) = match (&a.steps, a.percent) {
                    (Some(Steps(s)), _) => (s.clone(), Duration::from_secs(30 * 60)),
                    (None, Some(p)) => (vec![p], Duration::ZERO),
                    (None, None) => return Err(anyhow!("give a weight (0-100) or --steps")),
                };
                let g = a.gates.options(a.interval.unwrap_or(default_interval))?;
                let opts = a.write.options(&conn);
                run::shift(&conn, &sides, &steps, a.allow_decrease, &g, &opts, &mut events).await
            }
            NsCommand::Complete(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let g = a.gates.options(a.interval)?;
                let opts = a.write.options(&conn);
                run::complete(&conn, &sides, a.delete_legacy, a.force, &g, &opts, &mut events).await
            }
            NsCommand::Rollback(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let opts = a.write.options(&conn);
                run::rollback(&conn, &sides, &opts, &mut events).await
            }
            NsCommand::Cleanup(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let opts = a.write.options(&conn);
                run::cleanup(&conn, &sides, a.force, &opts, &mut events).await
            }
            NsCommand::Status(a) => {
                let sides = legacy_namespace(kube, &a.namespace)?;
                return match run::status(&conn, &sides).await {
                    Ok(s) => print_status(output, &s),
                    Err(e) => fail(e),
                };
            }
            NsCommand::Monitor(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let prom = a.prometheus_url.as_deref().map(Prometheus::new).transpose().map_err(|e| anyhow!(e))?;
                return monitor(&conn, &sides, prom.as_ref(), a, output).await;
            }
        };
        match result {
            Ok(report) => print_report(output, &report),
            Err(e) => fail(e),
        }
    })
}

fn pct(w: u8) -> String {
    format!("{w} %")
}

fn gate_rows(results: &[GateResult]) -> Vec<Vec<String>> {
    results
        .iter()
        .map(|g| {
            vec![
                g.gate.clone(),
                if g.passed { "passed".into() } else { "FAILED".into() },
                g.observed.clone(),
                g.threshold.clone(),
                if g.source.is_empty() { "cluster".into() } else { g.source.clone() },
                g.detail.clone(),
            ]
        })
        .collect()
}

fn print_report(output: &OutputFlags, r: &Report) -> Result<Exit> {
    let mut out = Out::new();
    let exit = if r.passed { Exit::Ok } else { Exit::Findings };
    match output.output {
        OutputFormat::Json | OutputFormat::Yaml if r.dry_run == DryRun::Client => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": r.objects});
            if output.output == OutputFormat::Yaml {
                for o in &r.objects {
                    out.write_str("---\n")?;
                    out.write_str(&meshmove_model::yaml::to_yaml_string(o))?;
                }
            } else {
                structured(&mut out, output.output, &list)?;
            }
        }
        OutputFormat::Json | OutputFormat::Yaml => structured(&mut out, output.output, r)?,
        OutputFormat::Table | OutputFormat::Wide => {
            if r.dry_run == DryRun::Client {
                for p in &r.previews {
                    out.write_str(&p.diff)?;
                }
            }
            for o in &r.outcomes {
                if o.action == plan::Action::Skipped && o.target.kind != "ConfigMap" && r.dry_run != DryRun::None {
                    continue;
                }
                out.line(o)?;
            }
            if let Some(c) = &r.copy {
                if !c.skipped.is_empty() {
                    let rows = c.skipped.iter().map(|s| vec![s.object.clone(), s.reason.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["NOT COPIED", "WHY"], rows))?;
                }
                if !c.adjustments.is_empty() {
                    let rows = c.adjustments.iter().map(|a| vec![a.object.clone(), a.field.clone(), a.change.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["ADJUSTED", "FIELD", "CHANGE"], rows))?;
                }
                if !c.guards.is_empty() {
                    let rows = c.guards.iter().map(|g| vec![g.object.clone(), g.namespace.clone(), g.note.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["GUARD", "NAMESPACE", "HOW"], rows))?;
                }
                if !c.unrouted.is_empty() {
                    let rows = c.unrouted.iter().map(|u| vec![u.service.clone(), u.reason.clone()]).collect();
                    out.write_str("\n")?;
                    out.write_str(&table(&["NOT ROUTED", "WHY"], rows))?;
                }
                if !c.shared.is_empty() {
                    let rows = c.shared.iter().map(|s| vec![s.object.clone(), s.services.join(", "), s.reason.clone()]).collect();
                    out.write_str("\n")?;
                    out.line(format_args!("shared backends (stay in {}):", r.namespace))?;
                    out.write_str(&table(&["OBJECT", "SERVICES", "WHY"], rows))?;
                }
            }
            if !r.gates.is_empty() {
                out.write_str("\n")?;
                out.write_str(&table(&["GATE", "RESULT", "OBSERVED", "THRESHOLD", "SOURCE", "DETAIL"], gate_rows(&r.gates)))?;
            }
            for n in &r.notes {
                out.line(format_args!("note: {n}"))?;
            }
            for w in &r.warnings {
                out.line(format_args!("warning: {w}"))?;
            }
            let phase = r.phase.map(|p| format!(" ({p})")).unwrap_or_default();
            let dry = match r.dry_run {
                DryRun::None => "",
                DryRun::Client => " (dry run)",
                DryRun::Server => " (server dry run)",
            };
            if r.command == "cleanup" {
                out.line(format_args!("{}: mesh side {} cleaned up{phase}{dry}", r.namespace, r.mesh_namespace))?;
            } else {
                out.line(format_args!("{}: {} to {}{phase}{dry}", r.namespace, pct(r.weight), r.mesh_namespace))?;
            }
        }
    }
    out.flush()?;
    Ok(exit)
}

fn print_status(output: &OutputFlags, s: &run::Status) -> Result<Exit> {
    let mut out = Out::new();
    let exit = if s.problems.is_empty() { Exit::Ok } else { Exit::Findings };
    if matches!(output.output, OutputFormat::Json | OutputFormat::Yaml) {
        structured(&mut out, output.output, s)?;
        out.flush()?;
        return Ok(exit);
    }
    let Some(st) = &s.state else {
        out.line(format_args!("no migration of {} is recorded", s.namespace))?;
        out.line(format_args!("next: {}", s.next))?;
        out.flush()?;
        return Ok(exit);
    };
    let schedule = st
        .schedule
        .as_ref()
        .map(|sc| {
            format!(
                "{} every {}",
                sc.steps.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
                meshmove_model::duration::show(Duration::from_millis(sc.interval_ms))
            )
        })
        .unwrap_or_else(|| "-".into());
    let plane = match &st.data_plane {
        DataPlane::Sidecar => "sidecar".to_string(),
        DataPlane::SidecarRevision { revision } => format!("sidecar ({revision})"),
        DataPlane::Ambient => match &st.waypoint {
            Some(w) => format!("ambient (waypoint {}/{})", w.namespace, w.name),
            None => "ambient (no waypoint)".to_string(),
        },
    };
    out.write_str(&table(
        &["NAMESPACE", "MESH NAMESPACE", "PHASE", "WEIGHT", "MODE", "SCHEDULE"],
        vec![vec![s.namespace.clone(), s.mesh_namespace.clone(), st.phase.to_string(), pct(st.weight), plane, schedule]],
    ))?;
    if !s.routes.is_empty() {
        let rows = s
            .routes
            .iter()
            .map(|r| {
                vec![
                    r.service.clone(),
                    match (r.present, r.weight) {
                        (false, _) => "missing".into(),
                        (true, None) => "inconsistent".into(),
                        (true, Some(w)) => format!("{} legacy / {} mesh", pct(100 - w), pct(w)),
                    },
                ]
            })
            .collect();
        out.write_str("\n")?;
        out.write_str(&table(&["SERVICE", "ROUTING"], rows))?;
    }
    if let Some(ext) = &s.external
        && !ext.routes.is_empty()
    {
        let rows = ext
            .routes
            .iter()
            .map(|r| {
                let switched = match ext.switches.iter().find(|sw| sw.source == r.source) {
                    Some(sw) if sw.still_served && r.source.starts_with("HTTPRoute/") => "no: served by its own Gateway".to_string(),
                    Some(sw) if sw.still_served => "no: still served by its controller".to_string(),
                    Some(_) => "looks done: at the gateway's address".to_string(),
                    None => format!("looks done: the {} is gone", r.source.split('/').next().unwrap_or("object")),
                };
                vec![r.source.clone(), r.hosts.join(", "), format!("{}/{}", s.mesh_namespace, r.gateway), switched]
            })
            .collect();
        out.write_str("\n")?;
        out.write_str(&table(&["EXTERNAL", "HOSTS", "ISTIO GATEWAY", "SWITCHED"], rows))?;
    }
    if let Some(ext) = &s.external {
        for n in &ext.notes {
            out.line(format_args!("external: {n}"))?;
        }
    }
    if !st.shared.is_empty() {
        let list: Vec<String> = st.shared.iter().map(|b| format!("{} ({})", b.object, b.services.join(", "))).collect();
        out.write_str("\n")?;
        out.line(format_args!("shared backends (stay in {}): {}", s.namespace, list.join(", ")))?;
    }
    if let Some(last) = st.history.iter().rev().find(|e| !e.gates.is_empty()) {
        out.write_str("\n")?;
        out.line(format_args!("last gates ({} at {} %, {}):", last.at, last.from, last.result))?;
        out.write_str(&table(&["GATE", "RESULT", "OBSERVED", "THRESHOLD", "SOURCE", "DETAIL"], gate_rows(&last.gates)))?;
    }
    if !st.history.is_empty() {
        let rows = st
            .history
            .iter()
            .map(|e| {
                let weight = if e.from == e.to { pct(e.to) } else { format!("{} -> {}", pct(e.from), pct(e.to)) };
                vec![e.at.clone(), e.who.clone(), e.action.clone(), weight, e.result.clone()]
            })
            .collect();
        out.write_str("\n")?;
        out.write_str(&table(&["TIME", "WHO", "ACTION", "WEIGHT", "RESULT"], rows))?;
    }
    out.write_str("\n")?;
    for p in &s.problems {
        out.line(format_args!("problem: {p}"))?;
    }
    out.line(format_args!("next: {}", s.next))?;
    out.flush()?;
    Ok(exit)
}

/// `ns status -A`: one row per namespace with a recorded migration.
fn print_status_all(output: &OutputFlags, all: &[run::Summary]) -> Result<Exit> {
    let mut out = Out::new();
    let exit = if all.iter().any(|s| s.problem.is_some()) { Exit::Findings } else { Exit::Ok };
    if matches!(output.output, OutputFormat::Json | OutputFormat::Yaml) {
        let list = serde_json::json!({"items": all});
        structured(&mut out, output.output, &list)?;
        out.flush()?;
        return Ok(exit);
    }
    if all.is_empty() {
        out.line("no namespace-based migration is recorded in any namespace")?;
        out.flush()?;
        return Ok(exit);
    }
    let rows = all
        .iter()
        .map(|s| match &s.state {
            Some(st) => {
                let last =
                    st.history.last().map(|e| format!("{} {} by {}: {}", e.at, e.action, e.who, e.result)).unwrap_or_else(|| "-".into());
                let phase = if st.pending.is_some() { format!("{} (step unfinished)", st.phase) } else { st.phase.to_string() };
                vec![s.namespace.clone(), s.mesh_namespace.clone(), phase, pct(st.weight), last]
            }
            None => {
                vec![s.namespace.clone(), s.mesh_namespace.clone(), "unreadable".into(), "-".into(), s.problem.clone().unwrap_or_default()]
            }
        })
        .collect();
    out.write_str(&table(&["NAMESPACE", "MESH NAMESPACE", "PHASE", "WEIGHT", "LAST"], rows))?;
    out.flush()?;
    Ok(exit)
}

fn metric(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{}{unit}", fmt_num(x)))
}

fn sample_rows(s: &run::Sample) -> Vec<Vec<String>> {
    [("legacy", &s.legacy), ("mesh", &s.mesh)]
        .into_iter()
        .map(|(name, side)| {
            let weight = if name == "mesh" { s.weight } else { 100 - s.weight };
            vec![
                format!("{name} ({})", side.namespace),
                pct(weight),
                format!("{}/{}", side.ready_pods, side.desired_pods),
                side.restarts.to_string(),
                metric(side.success_rate, " %"),
                metric(side.p99_ms, " ms"),
            ]
        })
        .collect()
}

const MONITOR_HEADERS: [&str; 6] = ["SIDE", "WEIGHT", "READY", "RESTARTS", "SUCCESS", "P99"];

async fn monitor(conn: &Connection, sides: &Sides, prom: Option<&Prometheus>, a: &MonitorArgs, output: &OutputFlags) -> Result<Exit> {
    let start = Instant::now();
    let tty = std::io::stdout().is_terminal() && matches!(output.output, OutputFormat::Table | OutputFormat::Wide);
    let mut drawn_lines = 0usize;
    loop {
        let s = match run::sample(conn, sides, prom, &a.window).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let mut out = Out::new();
        match output.output {
            OutputFormat::Json => out.line(serde_json::to_string(&s)?)?,
            OutputFormat::Yaml => {
                out.write_str("---\n")?;
                out.write_str(&meshmove_model::yaml::to_yaml_string(&serde_json::to_value(&s)?))?;
            }
            _ if tty => {
                // Redraw in place: back over the last frame, clear, draw.
                if drawn_lines > 0 {
                    out.write_str(&format!("\x1b[{drawn_lines}A\x1b[J"))?;
                }
                let phase = s.phase.map(|p| p.to_string()).unwrap_or_default();
                let mut frame = format!("{} {} ({phase}), refreshed {}\n", sides.legacy, pct(s.weight), s.at);
                frame.push_str(&table(&MONITOR_HEADERS, sample_rows(&s)));
                for n in &s.notes {
                    frame.push_str(&format!("note: {n}\n"));
                }
                drawn_lines = frame.lines().count();
                out.write_str(&frame)?;
            }
            _ => {
                let side = |n: &str, x: &run::SideSample| {
                    format!(
                        "{n} ready={}/{} restarts={} success={} p99={}",
                        x.ready_pods,
                        x.desired_pods,
                        x.restarts,
                        metric(x.success_rate, "%"),
                        metric(x.p99_ms, "ms")
                    )
                };
                out.line(format_args!("{} weight={}% {} | {}", s.at, s.weight, side("legacy", &s.legacy), side("mesh", &s.mesh)))?;
                for n in &s.notes {
                    eprintln!("note: {n}");
                }
            }
        }
        out.flush()?;
        drop(out);
        let elapsed = start.elapsed();
        if elapsed >= a.duration {
            break;
        }
        tokio::time::sleep(a.every.min(a.duration - elapsed)).await;
    }
    let _ = std::io::stdout().flush();
    Ok(Exit::Ok)
}
