//! `kubectl dbiso`: each service owns its database. Audit who shares and who can reach each
//! database, explain single connections, and write or apply the NetworkPolicies that isolate
//! them. Glue only: flags to calls, results to renderers; the work is in `meshmove-isolation`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use meshmove_cli::render::reach::ViewFormat;
use meshmove_cli::{Exit, KubeFlags, OutputFlags, ReportFlags, SourceFlags, complete};

mod apply;
mod diff;
mod explain;
mod generate;
mod reach;

const TOOL: &str = "dbiso";

#[derive(Parser)]
#[command(
    name = "kubectl-dbiso",
    bin_name = "kubectl dbiso",
    version,
    about = "Each service owns its database: audit reachability and isolate databases",
    after_help = "Examples:\n  \
        kubectl dbiso audit -n shop\n  \
        helm template shop ./chart | kubectl dbiso audit -f - -n shop\n  \
        kubectl dbiso explain deployment/api sts/postgres 5432 -n shop\n  \
        kubectl dbiso reach -n shop -o dot | dot -Tsvg > reach.svg\n  \
        kubectl dbiso diff -n shop -f new-policies.yaml\n  \
        kubectl dbiso generate -n shop | kubectl apply -f -\n  \
        kubectl dbiso apply -n shop --dry-run=server"
)]
struct Cli {
    #[command(flatten)]
    kube: KubeFlags,
    #[command(flatten)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// `-o` of this plugin: the shared formats, plus `txt`, `dot`, `mermaid`, `md` and `csv` for the
/// connectivity views (`reach`, `diff`, `generate --diff`); `audit` also writes `md` and `csv`,
/// `explain` also `md`, `dot` and `mermaid` (see [`Output::only`]).
type Format = ViewFormat;

/// The formats each command writes, as `-o` spells them; any other is refused naming these.
const AUDIT_FORMATS: [Format; 6] = [Format::Table, Format::Wide, Format::Json, Format::Yaml, Format::Md, Format::Csv];
const EXPLAIN_FORMATS: [Format; 7] = [Format::Table, Format::Wide, Format::Json, Format::Yaml, Format::Md, Format::Dot, Format::Mermaid];

/// Output flags, as `meshmove_cli::OutputFlags` with the connectivity formats added.
#[derive(Debug, Clone, Args)]
struct Output {
    /// Output format (txt: reach, diff and generate --diff; dot, mermaid: also explain; md, csv: also audit; md: also explain)
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t, help_heading = "Output")]
    format: Format,
    /// Never colour output (also: the NO_COLOR environment variable)
    #[arg(long, global = true, help_heading = "Output")]
    no_color: bool,
    /// Diagnostics level on stderr, like kubectl's -v (0-9)
    #[arg(short = 'v', long = "v", global = true, value_name = "LEVEL", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=9), help_heading = "Output")]
    verbosity: u8,
}

impl Output {
    /// The format, when `command` writes it (one of `supported`); otherwise a usage error
    /// naming the formats it does write.
    fn only(&self, command: &str, supported: &[Format]) -> Result<Format> {
        if supported.contains(&self.format) {
            return Ok(self.format);
        }
        let names: Vec<String> = supported.iter().map(|f| f.name()).collect();
        anyhow::bail!("-o {} is not supported by `{command}`; it prints {}", self.format.name(), names.join(", "))
    }

    /// The shared output flags with `format` as the format (table, wide, json, yaml), for the
    /// renderers that only know those.
    fn with(&self, format: meshmove_cli::OutputFormat) -> OutputFlags {
        OutputFlags { output: format, no_color: self.no_color, verbosity: self.verbosity }
    }

    /// The shared output flags, for commands that print reports or manifests.
    fn shared(&self, command: &str) -> Result<OutputFlags> {
        let Some(output) = self.format.shared() else {
            anyhow::bail!(
                "-o {} is only supported by `reach`, `diff` and `generate --diff`; `{command}` prints table, wide, json or yaml",
                self.format.name()
            );
        };
        Ok(OutputFlags { output, no_color: self.no_color, verbosity: self.verbosity })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Find shared databases and who can reach each database port under NetworkPolicy
    #[command(after_help = "Examples:\n  kubectl dbiso audit -n shop\n  kubectl dbiso audit -A -o json\n  kubectl dbiso audit -f rendered.yaml -n shop --fail-on warning")]
    Audit {
        #[command(flatten)]
        source: SourceFlags,
        #[command(flatten)]
        report: ReportFlags,
    },
    /// All-pairs reachability between workloads (and addresses outside the cluster)
    #[command(after_help = "Examples:\n  kubectl dbiso reach -n shop -o txt\n  kubectl dbiso reach -f rendered.yaml -o json\n  \
        kubectl dbiso reach -f rendered.yaml -o dot | dot -Tsvg > reach.svg\n  kubectl dbiso reach -n shop --focus sts/postgres -o mermaid")]
    Reach(reach::ReachArgs),
    /// What a change does to who reaches whom: connections added, removed and changed
    #[command(after_help = "The state before is --before PATH... or the cluster; the state after is --after PATH... (a whole\n\
        state) or the state before with -f PATH... applied on top (as kubectl diff -f: objects of the same kind,\n\
        namespace and name replace the ones before, the others are added).\n\
        Exit status: 0 when no connection is removed or narrowed, 1 when the change removes connections.\n\n\
        Examples:\n  kubectl dbiso diff -n shop -f dbiso-policies.yaml\n  \
        kubectl dbiso diff --before old.yaml --after new.yaml -o md\n  \
        kubectl dbiso diff --before rendered.yaml -f policies.yaml --focus deploy/api -o csv")]
    Diff(diff::DiffArgs),
    /// Explain whether SRC can open a connection to DST on a port, policy by policy
    #[command(after_help = "SRC and DST: KIND/NAME (namespace from -n), KIND/NAMESPACE/NAME, or cidr:ADDRESS[/BITS].\n\
        Kinds: deployment, statefulset, daemonset, replicaset, job, cronjob, pod, service, cluster (CloudNativePG).\n\
        PORT: 5432, 5432/TCP, 53/UDP or a container port name of DST; default: DST's database port or first port.\n\
        Exit status: 0 when the connection is allowed, 1 when it is denied.\n\n\
        Examples:\n  kubectl dbiso explain deployment/api statefulset/postgres 5432 -n shop\n  \
        kubectl dbiso explain cidr:0.0.0.0/0 svc/postgres -n shop\n  \
        kubectl dbiso explain deploy/web/frontend cluster/shop/orders-db -o json")]
    Explain(explain::ExplainArgs),
    /// Print NetworkPolicies that isolate every database (YAML on stdout)
    #[command(after_help = "Examples:\n  kubectl dbiso generate -n shop | kubectl apply -f -\n  kubectl dbiso generate -f rendered.yaml -n shop --monitoring-namespace observability")]
    Generate(generate::GenerateArgs),
    /// Apply the isolating NetworkPolicies (ambient: and AuthorizationPolicies) with server-side apply, journaled, then audit again
    #[command(after_help = "Examples:\n  kubectl dbiso apply -n shop --dry-run=client\n  kubectl dbiso apply -n shop --dry-run=server\n  kubectl dbiso apply -n shop")]
    Apply(apply::ApplyArgs),
    /// Undo what apply wrote in the namespace (from its journal): created policies deleted, changed ones restored
    #[command(after_help = "Refuses whole, changing nothing, when someone edited a policy after apply wrote it (--force to roll back anyway).\n\n\
        Examples:\n  kubectl dbiso rollback -n shop --dry-run\n  kubectl dbiso rollback -n shop")]
    Rollback(apply::RollbackArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completion { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    if complete::intercept(&Cli::command()) {
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    meshmove_cli::log::set_level(cli.output.verbosity);
    meshmove_cli::run_main(TOOL, || run(cli))
}

fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Audit { source, report } => audit_command(&cli.kube, &source, &report, &cli.output),
        Command::Reach(args) => reach::run(&cli.kube, &args, cli.output.format),
        Command::Diff(args) => diff::run(&cli.kube, &args, cli.output.format),
        Command::Explain(args) => explain::run(&cli.kube, &args, &cli.output),
        Command::Generate(args) if args.diff => generate::run_diff(&cli.kube, &args, cli.output.format),
        Command::Generate(args) => generate::run(&cli.kube, &args, &cli.output.shared("generate")?),
        Command::Apply(args) => apply::run(&cli.kube, &args, &cli.output.shared("apply")?),
        Command::Rollback(args) => apply::rollback(&cli.kube, &args, &cli.output.shared("rollback")?),
        Command::Completion { shell } => {
            complete::script(&mut Cli::command(), shell, &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    }
}

/// `audit -o FORMAT`: the report as a table, JSON or YAML ([`audit`]), or as a Markdown
/// document or CSV of the findings.
fn audit_command(kube: &KubeFlags, source: &SourceFlags, report: &ReportFlags, output: &Output) -> Result<Exit> {
    let format = output.only("audit", &AUDIT_FORMATS)?;
    match format.shared() {
        Some(shared) => audit(kube, source, report, &output.with(shared)),
        None => audit_as(kube, source, report, Err(format)),
    }
}

/// `audit`: load what the analyzers need (from `-f` or the cluster), run them, print the report.
pub fn audit(kube: &KubeFlags, source: &SourceFlags, report: &ReportFlags, output: &OutputFlags) -> Result<Exit> {
    audit_as(kube, source, report, Ok(output))
}

/// The audit, printed with the shared output flags (`Ok`) or as `md`/`csv` (`Err`).
fn audit_as(kube: &KubeFlags, source: &SourceFlags, report: &ReportFlags, output: std::result::Result<&OutputFlags, Format>) -> Result<Exit> {
    use meshmove_isolation::{self as dbiso, AuditOptions};
    use meshmove_model::findings::{self, Analyzer};
    let analyzers = dbiso::analyzers(&AuditOptions { live: source.filename.is_empty() });
    let refs: Vec<&dyn Analyzer> = analyzers.iter().map(|a| a.as_ref()).collect();
    let (kinds, wide) = findings::wanted_kinds(&refs);
    // The analyzers read no more of a pod managed by a workload than the engine's model does.
    let source = source.keeping(meshmove_model::inventory::PodDetail::Facts);
    let inventory = meshmove_cli::analysis::load_inventory_partial(kube, &source, &kinds, &wide)?;
    debug_ownership(&inventory);
    let unread = &dbiso::catalog::CODE_UNREAD_INPUT;
    let exit = match output {
        Ok(flags) => meshmove_cli::analysis::report(TOOL, "audit", &inventory, &refs, unread, report, flags),
        Err(format) => meshmove_cli::analysis::report_with(TOOL, "audit", &inventory, &refs, unread, report, |out, r| {
            let text = if format == Format::Md { meshmove_cli::render::report_markdown(r) } else { meshmove_cli::render::report_csv(r)? };
            Ok(out.write_str(&text)?)
        }),
    };
    // The report is written and the process ends with this command: the inventory and the audit
    // the analyzers share (every object's JSON tree, the engine's model) are left to the exit
    // rather than freed one allocation at a time, which took a seventh of a large audit's time
    // (BENCHMARKS.md).
    drop(refs);
    std::mem::forget(analyzers);
    std::mem::forget(inventory);
    exit
}

/// `-v 2`: the databases and the references found (where, never what: no secret value).
fn debug_ownership(inventory: &meshmove_model::inventory::Inventory) {
    use meshmove_isolation::{discover, owners};
    if meshmove_cli::log::level() < 2 {
        return;
    }
    let dbs = discover::databases(inventory);
    let (refs, unresolved) = owners::references(inventory, &dbs);
    for db in &dbs {
        meshmove_cli::debug!(2, "database {} ({}, ports {:?}, services {})", db.object, db.engine_name(), db.ports, db.services.join(","));
    }
    for r in &refs {
        meshmove_cli::debug!(2, "reference {} (service {}) -> {} via {}", r.workload, r.service, r.database, r.via);
    }
    for u in &unresolved {
        meshmove_cli::debug!(3, "unresolved host {} in {} via {}", u.host.as_deref().unwrap_or("(from a Secret, not shown)"), u.workload, u.via);
    }
}
