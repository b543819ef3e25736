//! `enable`: injection labels, Gateway, VirtualServices, DestinationRules, PeerAuthentication
//! PERMISSIVE, restarts in batches with readiness waits, and a check that new pods carry the proxy.

use anyhow::{Context, Result, anyhow};
use clap::Args;
use meshmove_cli::render::structured;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat};
use meshmove_model::inventory::kinds;
use meshmove_migration::precheck::{self, MeshMode};
use meshmove_migration::inplace::TrafficProfile;
use meshmove_migration::inplace::authz::{self, AuthzOptions};
use meshmove_migration::inplace::enable::{self, EnableOptions, Mode};
use meshmove_kube::plan::DryRun;
use serde_json::json;

use super::live::{Live, MutateFlags};

#[derive(Args)]
pub struct EnableArgs {
    /// Data-plane mode
    #[arg(long, value_enum, default_value_t = super::Mode::Sidecar)]
    mode: super::Mode,
    /// Inject by revision (istio.io/rev=REV) instead of istio-injection=enabled
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Gateway hosts are <service>.<DOMAIN> (default: <namespace>.local)
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Serve a Service on another host, as `expose --host` does, e.g. frontend=shop.local (repeatable)
    #[arg(long = "host", value_name = "SERVICE=HOST", value_parser = super::expose::parse_host)]
    hosts: Vec<(String, String)>,
    /// Workloads restarted at once (never two guarded by the same PodDisruptionBudget)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    batch_size: u16,
    /// `istio` label of the ingress gateway pods the Gateway selects
    #[arg(long, value_name = "VALUE", default_value = "ingressgateway")]
    gateway_selector: String,
    #[command(flatten)]
    traffic: TrafficProfileArgs,
    /// Go ahead although the Istio control plane check fails (restarted pods then come back
    /// without a proxy, and the verification afterwards says so)
    #[arg(long)]
    force: bool,
    /// SPIRE-issued identities: add inject.istio.io/templates=sidecar,spire to the pod templates
    /// the injector serves (as post-render --spire does), after spire-check's checks pass
    #[arg(long, help_heading = "SPIRE")]
    spire: bool,
    /// With --spire: go ahead although spire-check's checks fail (the new pods may then hang
    /// unready without an SVID)
    #[arg(long, requires = "spire", help_heading = "SPIRE")]
    allow_spire_check_failures: bool,
    /// L4 Istio AuthorizationPolicies (ALLOW, per workload: its clients' service accounts on
    /// the ports they use), from the clients the namespace shows, applied after the restarts;
    /// each is proven on the engine to keep every connection in use, else withheld with the reason
    #[arg(long, help_heading = "Authorization")]
    authz: bool,
    /// With --authz: write the policy of workload NAME although it is withheld (unknown
    /// callers, another ALLOW or CUSTOM policy on its pods, or connections in use it would
    /// refuse, every one of which is then named) (repeatable)
    #[arg(long, value_name = "NAME", requires = "authz", help_heading = "Authorization")]
    authz_isolate_anyway: Vec<String>,
    #[command(flatten)]
    root: super::live::MeshRootArgs,
    #[command(flatten)]
    changes: MutateFlags,
}

/// The traffic profile flags (DestinationRules, and the VirtualServices' HTTP routes), shared by
/// `enable` and `ns create`: one profile (`meshmove_istio::traffic::TrafficProfile`, re-exported
/// by `meshmove_migration::inplace`) for both paths.
#[derive(Args, Clone)]
pub struct TrafficProfileArgs {
    /// Traffic profile YAML (camelCase keys as the flags below); flags override it
    #[arg(long, value_name = "FILE", help_heading = "Traffic profile")]
    profile: Option<std::path::PathBuf>,
    /// outlierDetection.consecutive5xxErrors [default: 5]
    #[arg(long, value_name = "N", help_heading = "Traffic profile")]
    consecutive_5xx_errors: Option<u32>,
    /// outlierDetection.consecutiveGatewayErrors [default: 5]
    #[arg(long, value_name = "N", help_heading = "Traffic profile")]
    consecutive_gateway_errors: Option<u32>,
    /// outlierDetection.interval [default: 30s]
    #[arg(long, value_name = "DURATION", help_heading = "Traffic profile")]
    interval: Option<String>,
    /// outlierDetection.baseEjectionTime [default: 30s]
    #[arg(long, value_name = "DURATION", help_heading = "Traffic profile")]
    base_ejection_time: Option<String>,
    /// outlierDetection.maxEjectionPercent [default: 50]
    #[arg(long, value_name = "PERCENT", help_heading = "Traffic profile")]
    max_ejection_percent: Option<u32>,
    /// connectionPool.tcp.maxConnections [default: 100]
    #[arg(long, value_name = "N", help_heading = "Traffic profile")]
    max_connections: Option<u32>,
    /// connectionPool.tcp.connectTimeout [default: 30s]
    #[arg(long, value_name = "DURATION", help_heading = "Traffic profile")]
    connect_timeout: Option<String>,
    /// connectionPool.http.http1MaxPendingRequests [default: 1000]
    #[arg(long, value_name = "N", help_heading = "Traffic profile")]
    http1_max_pending_requests: Option<u32>,
    /// connectionPool.http.maxRequestsPerConnection [default: 10]
    #[arg(long, value_name = "N", help_heading = "Traffic profile")]
    max_requests_per_connection: Option<u32>,
    /// VirtualService http[].timeout, HTTP routes only [default: none, Istio's: no timeout]
    #[arg(long, value_name = "DURATION", help_heading = "Traffic profile")]
    http_timeout: Option<String>,
    /// http[].retries.attempts, HTTP routes only; 0 turns retries off [default: Istio's, 2]
    #[arg(long, value_name = "N", help_heading = "Traffic profile")]
    retries: Option<u32>,
    /// http[].retries.perTryTimeout (needs --retries)
    #[arg(long, value_name = "DURATION", help_heading = "Traffic profile")]
    per_try_timeout: Option<String>,
    /// http[].retries.retryOn: comma-separated Envoy retry policies or status codes, e.g.
    /// 5xx,connect-failure,503 (needs --retries)
    #[arg(long, value_name = "POLICIES", help_heading = "Traffic profile")]
    retry_on: Option<String>,
}

/// Profile keys and the flags that set them.
const FLAG_OF_KEY: &[(&str, &str)] = &[
    ("consecutive5xxErrors", "consecutive-5xx-errors"),
    ("consecutiveGatewayErrors", "consecutive-gateway-errors"),
    ("interval", "interval"),
    ("baseEjectionTime", "base-ejection-time"),
    ("maxEjectionPercent", "max-ejection-percent"),
    ("maxConnections", "max-connections"),
    ("connectTimeout", "connect-timeout"),
    ("http1MaxPendingRequests", "http1-max-pending-requests"),
    ("maxRequestsPerConnection", "max-requests-per-connection"),
    ("httpTimeout", "http-timeout"),
    ("retries", "retries"),
    ("perTryTimeout", "per-try-timeout"),
    ("retryOn", "retry-on"),
];

impl TrafficProfileArgs {
    /// Whether the flag `--name` was given.
    fn given(&self, name: &str) -> bool {
        match name {
            "consecutive-5xx-errors" => self.consecutive_5xx_errors.is_some(),
            "consecutive-gateway-errors" => self.consecutive_gateway_errors.is_some(),
            "interval" => self.interval.is_some(),
            "base-ejection-time" => self.base_ejection_time.is_some(),
            "max-ejection-percent" => self.max_ejection_percent.is_some(),
            "max-connections" => self.max_connections.is_some(),
            "connect-timeout" => self.connect_timeout.is_some(),
            "http1-max-pending-requests" => self.http1_max_pending_requests.is_some(),
            "max-requests-per-connection" => self.max_requests_per_connection.is_some(),
            "http-timeout" => self.http_timeout.is_some(),
            "retries" => self.retries.is_some(),
            "per-try-timeout" => self.per_try_timeout.is_some(),
            "retry-on" => self.retry_on.is_some(),
            _ => false,
        }
    }

    /// The defaults, overridden by the file, overridden by the flags.
    pub fn profile(&self) -> Result<TrafficProfile> {
        let mut p = match &self.profile {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading traffic profile {}", path.display()))?;
                TrafficProfile::from_yaml(&path.display().to_string(), &text).map_err(|e| anyhow!(e))?
            }
            None => TrafficProfile::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { p.$f = v.clone(); } )* };
        }
        set!(consecutive_5xx_errors, consecutive_gateway_errors, interval, base_ejection_time, max_ejection_percent, max_connections, connect_timeout, http1_max_pending_requests, max_requests_per_connection);
        macro_rules! set_some {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { p.$f = Some(v.clone()); } )* };
        }
        set_some!(http_timeout, retries, per_try_timeout, retry_on);
        p.validate().map_err(|e| {
            // Name where the value came from: the flag when one was given, else the file.
            let flag = FLAG_OF_KEY.iter().find(|(k, _)| *k == e.key).map(|(_, f)| *f);
            let given = flag.is_some_and(|f| self.given(f));
            match (&self.profile, given, flag) {
                (_, true, Some(f)) => anyhow!("--{f}: {}", e.problem),
                (Some(path), _, _) => anyhow!("traffic profile {}: {e}", path.display()),
                (None, _, _) => anyhow!("traffic profile: {e}"),
            }
        })?;
        Ok(p)
    }
}

pub fn run(kube: &KubeFlags, output: &OutputFlags, args: &EnableArgs) -> Result<Exit> {
    let mode = match args.mode {
        super::Mode::Sidecar => Mode::Sidecar,
        super::Mode::Ambient => Mode::Ambient,
        super::Mode::None => anyhow::bail!("--mode none: enable puts a namespace on the mesh; use sidecar or ambient"),
    };
    let options = EnableOptions {
        mode,
        revision: args.revision.clone(),
        profile: args.traffic.profile()?,
        domain: args.domain.clone(),
        hosts: args.hosts.iter().cloned().collect(),
        batch_size: usize::from(args.batch_size),
        gateway_selector: args.gateway_selector.clone(),
        spire: args.spire,
        policies: None,
        authz: args.authz.then(|| AuthzOptions { isolate_anyway: args.authz_isolate_anyway.clone(), ..AuthzOptions::default() }),
        ..EnableOptions::default()
    };
    let live = Live::connect(kube)?;
    let ns = live.namespace().to_string();
    live.refuse_under_migration("enable")?;
    let workload_kinds = [
        &kinds::NAMESPACE,
        &kinds::SERVICE,
        &kinds::DEPLOYMENT,
        &kinds::STATEFUL_SET,
        &kinds::DAEMON_SET,
        &kinds::REPLICA_SET,
        &kinds::POD,
        &kinds::POD_DISRUPTION_BUDGET,
        // Their pods count when proving the PeerAuthentication lowers no mode.
        &kinds::JOB,
        &kinds::CRON_JOB,
        // The suite's own policies get the mesh's ports; the others are checked, never edited.
        &kinds::NETWORK_POLICY,
    ];
    // --authz: what shows the namespace's clients, and the mesh's policies everywhere.
    let inventory = if args.authz {
        let mut kinds = workload_kinds.to_vec();
        kinds.extend_from_slice(authz::KINDS);
        live.inventory_by_reference(&kinds, authz::WIDE_KINDS)?
    } else {
        live.inventory(&workload_kinds, &[])?
    };
    // Restart batches are planned around the pods and PodDisruptionBudgets it can see.
    if args.authz {
        // Policies proven from a partial view could refuse a client it did not show: --force
        // does not cover them.
        meshmove_cli::analysis::require_complete(&inventory, "prove the AuthorizationPolicies of --authz (--force does not cover them)")?;
    } else if args.force {
        meshmove_cli::analysis::warn_unread("mesh-migrate", &inventory);
    } else {
        meshmove_cli::analysis::require_complete(&inventory, "plan the restarts (pass --force to plan from what can be read)")?;
    }
    // PeerAuthentication PERMISSIVE only where it provably lowers no workload's mTLS mode: the
    // mesh's policies are read on their own (a namespace administrator may not list them).
    let mut options = EnableOptions { policies: Some(live.peer_authentications(&args.root)?), ..options };
    // --authz: callers in other namespaces that name the namespace's Services.
    if let Some(a) = options.authz.as_mut() {
        a.elsewhere = live.authz_elsewhere()?;
    }
    let permissive = enable::permissive(&inventory, &ns, options.policies.clone().expect("read above"));
    let (plan, generated) = enable::plan_with_authz(&inventory, &ns, &options).map_err(|e| anyhow!(e))?;
    if let Some(g) = &generated {
        report_authz(g);
    }
    if !options.profile.routes_unset() {
        let (_, skipped) = meshmove_migration::inplace::service_routes(&inventory, &ns, options.domain.as_deref(), &options.hosts).map_err(|e| anyhow!(e))?;
        let tcp = if skipped.is_empty() {
            String::new()
        } else {
            format!("; these Services get no VirtualService (only HTTP ports are routed; Istio's TCP routes have no timeout or retries), so none of it: {}", skipped.join(", "))
        };
        eprintln!("enable: the HTTP routes of the VirtualServices carry {}{tcp}", options.profile.describe_routes());
    }
    let policies = enable::mesh_policies(&inventory, &ns, &options);
    for u in &policies.updated {
        eprintln!("enable: {u} (generated by meshmove; post-render the release with the mesh's mode so the next upgrade keeps it)");
    }
    for f in &policies.findings {
        let on = f.object.as_ref().map(|o| format!("{o}: ")).unwrap_or_default();
        eprintln!("enable: warning: {} {on}{} (not generated by meshmove: not changed; {})", f.code, f.message, f.hint);
    }
    match &permissive {
        enable::Permissive::Skip { reason } => eprintln!("enable: {reason}"),
        enable::Permissive::Write { raised } => {
            for r in raised {
                eprintln!("enable: mTLS raised: {r}");
            }
        }
    }
    if let Some(refused) = control_plane_gate(&live, &ns, args, output)? {
        return Ok(refused);
    }
    if args.spire
        && let Some(refused) = super::spire::gate(kube, &inventory, &ns, &plan, args.allow_spire_check_failures, output)?
    {
        return Ok(refused);
    }
    super::expose::refuse_edited(&live, &plan)?;
    super::live::run_plan(&live, &plan, &args.changes, output.output)?;
    if args.changes.dry_run.into_core() != DryRun::None {
        return Ok(Exit::Ok);
    }
    if mode == Mode::Ambient {
        return verify_capture(&live, &ns, args.changes.timeout);
    }
    // The new pods must carry the proxy.
    let restarted = enable::rolled_out(&plan);
    let after = live.inventory(&[&kinds::POD, &kinds::REPLICA_SET, &kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET], &[])?;
    meshmove_cli::analysis::require_complete(&after, "verify that the restarted pods carry the sidecar")?;
    // OnDelete workloads were not rolled (their controller replaces no pod by itself): their
    // pods are not "came up without the sidecar", they never came up again.
    let (manual, restarted): (Vec<_>, Vec<_>) = restarted.into_iter().partition(|t| super::live::on_delete(&after, t));
    for t in &manual {
        eprintln!(
            "{}: updateStrategy OnDelete: its pods keep running without the istio-proxy sidecar until they are deleted (kubectl delete pod -n {ns} <pod>, one at a time)",
            t.kubectl_name()
        );
    }
    let missing = enable::unmeshed_pods(&after, &ns, &restarted);
    if !manual.is_empty() && missing.is_empty() {
        eprintln!("verified: every pod of the other {} restarted workload(s) carries the istio-proxy sidecar", restarted.len());
        Ok(Exit::Findings)
    } else if missing.is_empty() {
        eprintln!("verified: every pod of the {} restarted workload(s) carries the istio-proxy sidecar", restarted.len());
        Ok(Exit::Ok)
    } else {
        eprintln!("these pods came up without the istio-proxy sidecar (is the injector running for this namespace?):");
        for m in &missing {
            eprintln!("  {m}");
        }
        Ok(Exit::Findings)
    }
}

/// What `--authz` writes and withholds, on stderr.
fn report_authz(g: &meshmove_isolation::policies::Generation) {
    for p in &g.policies {
        eprintln!("enable: AuthorizationPolicy {} guards {}: admits {}", p.name, p.protects, if p.admits.is_empty() { "nothing but the mesh".to_string() } else { p.admits.join("; ") });
    }
    for w in &g.withheld {
        eprintln!("enable: no AuthorizationPolicy for {}: {} (to write it anyway: {})", w.subject, w.reason, w.isolate_with);
    }
    for n in &g.notes {
        eprintln!("enable: {n}");
    }
}

/// The control plane must be able to take the namespace before anything is written: Istio's
/// CRDs, a ready istiod serving the revision the labels select, ztunnel and istio-cni in ambient
/// mode. Returns the exit code when `enable` refuses; what could not be checked is a note.
fn control_plane_gate(live: &Live, ns: &str, args: &EnableArgs, output: &OutputFlags) -> Result<Option<Exit>> {
    let mode = match args.mode {
        super::Mode::Ambient => MeshMode::Ambient,
        _ => MeshMode::Sidecar,
    };
    let inventory = live.inventory(precheck::GATE_KINDS, precheck::GATE_KINDS_WIDE)?;
    // A gate whose inputs could not be read has not passed: refuse (exit 3, naming the RBAC),
    // unless --force, where the notes below say what was not checked.
    if !args.force {
        meshmove_cli::analysis::require_complete(&inventory, "check that the Istio control plane can serve the namespace (pass --force to go ahead unchecked)")?;
    }
    let gate = precheck::gate(&inventory, mode, args.revision.as_deref());
    for n in &gate.notes {
        meshmove_cli::log::note(n);
    }
    if gate.passed() {
        return Ok(None);
    }
    if args.force {
        eprintln!("enable: the Istio control plane cannot serve namespace {ns}; going ahead (--force):\n{}", gate.explain());
        return Ok(None);
    }
    eprintln!(
        "enable: the Istio control plane cannot serve namespace {ns}, nothing changed:\n{}\nfix these (see `kubectl mesh-migrate precheck`), or pass --force to go ahead anyway",
        gate.explain()
    );
    if !matches!(output.output, OutputFormat::Table | OutputFormat::Wide) {
        let mut out = Out::new();
        structured(&mut out, output.output, &json!({"namespace": ns, "ready": false, "blockers": gate.blockers}))?;
        out.flush()?;
    }
    Ok(Some(Exit::Findings))
}

/// Ambient mode restarts nothing: wait (up to `timeout`) until the CNI node agent has marked
/// every pod ztunnel should capture, then say so; otherwise name the pods left out (exit 1). The
/// step stays recorded, so `rollback` undoes it either way.
fn verify_capture(live: &Live, ns: &str, timeout: std::time::Duration) -> Result<Exit> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = usize::MAX;
    loop {
        let inventory = live.inventory(&[&kinds::POD, &kinds::REPLICA_SET, &kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET], &[])?;
        meshmove_cli::analysis::require_complete(&inventory, "verify that ztunnel captured the pods")?;
        let missing = enable::uncaptured_pods(&inventory, ns);
        if missing.is_empty() {
            let pods = inventory.of(&kinds::POD).filter(|p| p.namespace.as_deref() == Some(ns) && meshmove_migration::inplace::ambient_captured(&p.value)).count();
            eprintln!("verified: ztunnel captured every pod of namespace {ns} ({pods} pod(s) annotated ambient.istio.io/redirection=enabled); nothing restarted");
            return Ok(Exit::Ok);
        }
        if std::time::Instant::now() >= deadline {
            eprintln!(
                "after {}: {} pod(s) not captured by ztunnel (no ambient.istio.io/redirection=enabled annotation; is the ztunnel DaemonSet and the istio-cni node agent running on their nodes?):",
                meshmove_model::duration::show(timeout),
                missing.len()
            );
            for m in &missing {
                eprintln!("  {m}");
            }
            eprintln!("the namespace stays labelled; rerun `enable --mode ambient` to check again, or `rollback` to undo");
            return Ok(Exit::Findings);
        }
        if missing.len() != last {
            eprintln!("waiting for ztunnel to capture {} pod(s)", missing.len());
            last = missing.len();
        }
        std::thread::sleep(std::time::Duration::from_millis(200).min(deadline.saturating_duration_since(std::time::Instant::now())));
    }
}

trait IntoCore {
    fn into_core(self) -> DryRun;
}

impl IntoCore for super::live::DryRunArg {
    fn into_core(self) -> DryRun {
        self.into()
    }
}
