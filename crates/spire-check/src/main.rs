//! `kubectl spire-check`: verify that SPIRE gives every meshed workload the identity Istio
//! expects. Glue only: flags to one call of `meshmove_spire` (the checks, the deep checks over
//! exec too) and its result to a printer of `meshmove_cli`.
//!
//! Scope: SPIRE is cluster infrastructure that lives in its own namespaces, so every kind is read
//! in every namespace whatever `-n` says; `-n NS` narrows only the meshed workloads that the
//! registration, identity and Istio checks look at (and with `-f`, it is the namespace of
//! manifests that name none, as with kubectl).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use meshmove_cli::render::checks;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat, ReportFlags, SourceFlags, analysis, complete};
use meshmove_model::findings::{Code, Finding, Suppression};
use meshmove_model::inventory::{Inventory, Kind, kinds};
use meshmove_kube::exec::PodExec;
use meshmove_spire::{self as spire, IdentityRow, IdentityStatus, LabelQuery, SpireOptions, TrustBundle, catalog};

mod clock;
mod render;

const TOOL: &str = "spire-check";

#[derive(Parser)]
#[command(
    name = "kubectl-spire-check",
    bin_name = "kubectl spire-check",
    version,
    about = "Verify that SPIRE gives every meshed workload the identity Istio expects",
    mut_arg("namespace", |a| a.help(
        "Check only the meshed workloads of this namespace; SPIRE itself is found in every namespace (default: all)"
    )),
    mut_arg("all_namespaces", |a| a.help("Check the meshed workloads of every namespace (the default)")),
    after_help = "Without a command, runs `check`.\n\nExamples:\n  \
        kubectl spire-check\n  \
        kubectl spire-check -f rendered/ --bundle bundle.pem\n  \
        kubectl spire-check --exec -o json\n  \
        kubectl spire-check identities -n shop -o wide"
)]
struct Cli {
    #[command(flatten)]
    kube: KubeFlags,
    #[command(flatten)]
    output: OutputFlags,
    #[command(flatten)]
    check: CheckArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every check, grouped by category like `linkerd check` (the default command)
    #[command(
        after_help = "Examples:\n  kubectl spire-check check\n  kubectl spire-check check --exec\n  kubectl spire-check check -f rendered/ --suppress SC2506 --fail-on warning"
    )]
    Check(CheckArgs),
    /// List meshed workloads with the SPIFFE ID Istio expects and the one SPIRE gives them
    #[command(
        after_help = "Examples:\n  kubectl spire-check identities\n  kubectl spire-check identities -n shop -o wide\n  kubectl spire-check identities -f rendered/ -o json"
    )]
    Identities(SpireArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completion { shell: clap_complete::Shell },
}

/// What both commands read and how.
#[derive(Debug, Clone, Args)]
struct SpireArgs {
    #[command(flatten)]
    source: SourceFlags,
    #[command(flatten)]
    report: ReportFlags,
    /// Check this trust bundle (PEM, or SPIFFE bundle JSON) instead of the spire-bundle ConfigMap
    #[arg(long, value_name = "FILE", help_heading = "SPIRE")]
    bundle: Option<PathBuf>,
    /// Label selector of the SPIRE server StatefulSet/Deployment (default: discovered)
    #[arg(long, value_name = "SELECTOR", help_heading = "SPIRE")]
    server_selector: Option<LabelQuery>,
    /// Label selector of the SPIRE agent DaemonSet (default: discovered)
    #[arg(long, value_name = "SELECTOR", help_heading = "SPIRE")]
    agent_selector: Option<LabelQuery>,
    /// Label selector of the SPIFFE CSI driver DaemonSet (default: discovered)
    #[arg(long, value_name = "SELECTOR", help_heading = "SPIRE")]
    csi_selector: Option<LabelQuery>,
    /// Namespace of the SPIRE server (default: any)
    #[arg(long, value_name = "NS", help_heading = "SPIRE")]
    spire_namespace: Option<String>,
    /// Directory of the Workload API socket inside istio-proxy
    #[arg(long, value_name = "PATH", default_value = spire::DEFAULT_SOCKET_PATH, help_heading = "SPIRE")]
    socket_path: String,
    /// Use this time (RFC 3339) instead of the clock for certificate checks
    #[arg(long, value_name = "TIME", hide = true, value_parser = clock::parse_rfc3339)]
    now: Option<SystemTime>,
}

#[derive(Debug, Clone, Args)]
struct CheckArgs {
    #[command(flatten)]
    spire: SpireArgs,
    /// Also run deep checks inside the SPIRE server pod (healthcheck, entry show, agent list, bundle show); live clusters only
    #[arg(long, help_heading = "SPIRE")]
    exec: bool,
    /// Also list skipped checks, with the reason (hidden by default, with a count)
    #[arg(long, help_heading = "Output")]
    verbose: bool,
}

fn main() -> ExitCode {
    if complete::intercept(&Cli::command()) {
        return ExitCode::SUCCESS;
    }
    let cli = parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    meshmove_cli::log::set_level(cli.output.verbosity);
    meshmove_cli::run_main(TOOL, || run(cli))
}

/// Parse the command line. The check flags are accepted before any command (for the default
/// command, `kubectl spire-check -f x`) and after `check` or `identities`; given before a command
/// they would be silently ignored, so that is a usage error.
fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    if let Some((sub, _)) = matches.subcommand()
        && let Some(flag) = misplaced_flag(&matches)
    {
        return Err(cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("{flag} must come after the command: kubectl spire-check {sub} {flag} ..."),
        ));
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// A check flag given on the command line before a subcommand.
fn misplaced_flag(matches: &ArgMatches) -> Option<String> {
    let top = CheckArgs::augment_args(clap::Command::new("check"));
    top.get_arguments()
        .filter(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .map(|a| a.get_long().map_or_else(|| format!("-{}", a.get_short().unwrap_or('?')), |l| format!("--{l}")))
        .next()
}

fn run(cli: Cli) -> Result<Exit> {
    match &cli.command {
        None => check(&cli.kube, &cli.output, &cli.check),
        Some(Command::Check(args)) => check(&cli.kube, &cli.output, args),
        Some(Command::Identities(args)) => identities(&cli.kube, &cli.output, args),
        Some(Command::Completion { shell }) => {
            complete::script(&mut Cli::command(), *shell, &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    }
}

fn read_bundle(path: &Path) -> Result<TrustBundle> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("--bundle: cannot read {}: {e}", path.display()))?;
    TrustBundle::parse(format!("file {}", path.display()), &bytes).map_err(|e| anyhow!("--bundle: {e}"))
}

fn options(kube: &KubeFlags, args: &SpireArgs) -> Result<SpireOptions> {
    let trust_bundle = args.bundle.as_deref().map(read_bundle).transpose()?;
    Ok(SpireOptions {
        server_selector: args.server_selector.clone(),
        agent_selector: args.agent_selector.clone(),
        csi_selector: args.csi_selector.clone(),
        namespace: args.spire_namespace.clone(),
        workload_namespace: if kube.all_namespaces { None } else { kube.namespace.clone() },
        restarting_namespace: None,
        trust_bundle,
        socket_path: args.socket_path.clone(),
        now: args.now.unwrap_or_else(SystemTime::now),
    })
}

/// Read every kind spire-check needs, in every namespace (see the module docs). ConfigMaps are
/// read by reference: those the workloads mount, then those the configuration names
/// ([`spire::config_maps_to_read`]), each with a GET, so spire-check never lists ConfigMaps (it
/// needs `get` on them). Kinds the cluster refused are reported by the `inputs` check (SC2000)
/// of `check`, and by `identities` as errors.
fn load(kube: &KubeFlags, args: &SpireArgs, options: &SpireOptions) -> Result<Inventory> {
    let mut everywhere = kube.clone();
    everywhere.all_namespaces = true;
    let namespaced: Vec<&'static Kind> = spire::KINDS.iter().copied().filter(|k| k.namespaced).collect();
    analysis::load_inventory_by_reference(&everywhere, &args.source, spire::KINDS, &namespaced, &[&kinds::CONFIG_MAP], |inventory| {
        spire::config_maps_to_read(inventory, options).into_iter().map(|(ns, name)| (&kinds::CONFIG_MAP, ns, name)).collect()
    })
}

fn check(kube: &KubeFlags, output: &OutputFlags, args: &CheckArgs) -> Result<Exit> {
    if args.exec && !args.spire.source.filename.is_empty() {
        bail!(
            "--exec runs spire-server inside the SPIRE server pod and needs a live cluster; it cannot be combined with -f (drop one of them)"
        );
    }
    let options = options(kube, &args.spire)?;
    let inventory = load(kube, &args.spire, &options)?;
    let report = if args.exec {
        let timeout = Some(kube.request_timeout).filter(|t| !t.is_zero()).unwrap_or(Duration::from_secs(30));
        meshmove_cli::runtime()?.block_on(async {
            let conn = kube.options().connect().await?;
            let exec = PodExec::new(conn.client, timeout);
            Ok::<_, anyhow::Error>(spire::check_with_exec(&inventory, &options, &exec).await)
        })?
    } else {
        spire::check(&inventory, &options)
    };
    let report = report.finish(&args.spire.report.suppress);
    let mut out = Out::new();
    let view = checks::View { wide: false, verbose: args.verbose, color: output.color() };
    checks::checks(&mut out, output.output, view, &report)?;
    out.flush()?;
    Ok(if report.fails(args.spire.report.fail_on()) { Exit::Findings } else { Exit::Ok })
}

/// The check that reports a row's status.
fn code_of(status: IdentityStatus) -> Option<&'static Code> {
    match status {
        IdentityStatus::Ok => None,
        IdentityStatus::RenderFailed => Some(&catalog::ID_RENDERS),
        IdentityStatus::NotIstioForm => Some(&catalog::ID_ISTIO_FORM),
        IdentityStatus::WrongTrustDomain => Some(&catalog::ID_TRUST_DOMAIN),
        IdentityStatus::Unregistered => Some(&catalog::WORKLOAD_REGISTERED),
    }
}

/// Drop rows that a `--suppress` matches (by the code of their status and the workload), as the
/// check report drops the same details. Returns the kept rows and how many were dropped.
fn suppress_rows(rows: Vec<IdentityRow>, suppressions: &[Suppression]) -> (Vec<IdentityRow>, usize) {
    let total = rows.len();
    let kept: Vec<IdentityRow> = rows
        .into_iter()
        .filter(|r| {
            let Some(code) = code_of(r.status) else { return true };
            let mut f = Finding::new(code, r.note.clone().unwrap_or_default());
            f.object = Some(r.workload.clone());
            !suppressions.iter().any(|s| s.matches(&f))
        })
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

fn identities(kube: &KubeFlags, output: &OutputFlags, args: &SpireArgs) -> Result<Exit> {
    let options = options(kube, args)?;
    let inventory = load(kube, args, &options)?;
    let (rows, suppressed) = suppress_rows(spire::identities(&inventory, &options), &args.report.suppress);
    let mut out = Out::new();
    match output.output {
        OutputFormat::Json | OutputFormat::Yaml => meshmove_cli::render::structured(&mut out, output.output, &rows)?,
        OutputFormat::Table | OutputFormat::Wide => {
            if rows.is_empty() {
                meshmove_cli::log::note("no meshed workloads found");
            } else {
                out.write_str(&render::identities(&rows, output.output == OutputFormat::Wide, output.color()))?;
            }
        }
    }
    out.flush()?;
    if suppressed > 0 {
        meshmove_cli::log::note(format_args!("{suppressed} row(s) hidden by --suppress"));
    }
    let fail_on = args.report.fail_on();
    let failing = rows.iter().filter_map(|r| code_of(r.status)).any(|c| fail_on.fails(c.severity));
    // Rows over pods or ClusterSPIFFEIDs the cluster refused are missing or wrong: never a pass.
    let incomplete = analysis::warn_unread(TOOL, &inventory);
    Ok(if failing || incomplete { Exit::Findings } else { Exit::Ok })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_shapes() {
        Cli::command().debug_assert();
        // The default command takes the check flags at the top level...
        let cli = parse_from(["kubectl-spire-check", "-f", "x.yaml", "--exec", "-o", "json"]).unwrap();
        assert!(cli.command.is_none() && cli.check.exec);
        assert_eq!(cli.check.spire.source.filename, [PathBuf::from("x.yaml")]);
        // ...and `check` takes them after the command, with the global flags anywhere.
        let cli = parse_from(["kubectl-spire-check", "-n", "shop", "check", "--fail-on", "never"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check(_))));
        assert_eq!(cli.kube.namespace.as_deref(), Some("shop"));
        let cli = parse_from(["kubectl-spire-check", "identities", "-o", "wide", "--suppress", "SC2201"]).unwrap();
        let Some(Command::Identities(args)) = &cli.command else { panic!("identities") };
        assert_eq!(args.report.suppress.len(), 1);
        assert_eq!(cli.output.output, OutputFormat::Wide);
        // Check flags before a command would be ignored, and are refused.
        let e = parse_from(["kubectl-spire-check", "-f", "x.yaml", "identities"]).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("--filename must come after the command: kubectl spire-check identities"),
            "{e}"
        );
        // Bad selectors and times are usage errors.
        assert!(parse_from(["kubectl-spire-check", "--server-selector", "=x"]).is_err());
        assert!(parse_from(["kubectl-spire-check", "--now", "yesterday"]).is_err());
        // `--exec` belongs to check only.
        assert!(parse_from(["kubectl-spire-check", "identities", "--exec"]).is_err());
    }

    #[test]
    fn completion_sees_both_commands_and_the_spire_flags() {
        let cmd = Cli::command();
        let subs = complete::candidates(&cmd, &["".into()]);
        assert!(
            subs.iter().any(|l| l.starts_with("check\t")) && subs.iter().any(|l| l.starts_with("identities\t")),
            "{subs:?}"
        );
        let flags = complete::candidates(&cmd, &["check".into(), "--s".into()]);
        for f in ["--server-selector", "--spire-namespace", "--socket-path", "--suppress"] {
            assert!(flags.iter().any(|l| l == f), "{f} missing: {flags:?}");
        }
        assert!(!flags.iter().any(|l| l == "--now"), "hidden flags are not offered");
    }

    #[test]
    fn identity_rows_are_suppressed_by_code_and_workload() {
        use meshmove_model::inventory::ObjectRef;
        let row = |name: &str, status| IdentityRow {
            workload: ObjectRef::new("Deployment", Some("shop"), name),
            service_account: name.into(),
            expected_spiffe_id: format!("spiffe://example.org/ns/shop/sa/{name}"),
            cluster_spiffe_id: None,
            rendered: None,
            status,
            note: None,
        };
        let rows = vec![
            row("a", IdentityStatus::Unregistered),
            row("b", IdentityStatus::Unregistered),
            row("c", IdentityStatus::Ok),
        ];
        let sup: Vec<Suppression> = vec!["SC2201=Deployment/shop/a".parse().unwrap(), "SC2302".parse().unwrap()];
        let (kept, dropped) = suppress_rows(rows, &sup);
        assert_eq!(dropped, 1);
        assert_eq!(kept.iter().map(|r| r.workload.name.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    }
}
