//! `post-render`: Helm post-renderer (Helm 3 `--post-renderer`, Helm 4 `postrenderer/v1` plugin).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use meshmove_cli::{Exit, Out, OutputFlags, OutputFormat};
use meshmove_postrender::inject::{JobPolicy, MeshMode};
use meshmove_postrender::{self as postrender, PostRenderConfig};

use super::Mode;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    helm install shop ./chart --post-renderer kubectl-mesh-migrate --post-renderer-args post-render   (Helm 3)\n  \
    helm install shop ./chart --post-renderer mesh-migrate   (Helm 4, after `helm plugin install <dir>`)\n  \
    helm template shop ./chart | kubectl mesh-migrate post-render --diff\n  \
    helm template shop ./chart | kubectl mesh-migrate post-render --mode ambient --report > out.yaml")]
pub struct PostRenderArgs {
    /// YAML configuration file (schema in the README); flags override it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Mesh data-plane mode
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Istio revision to pin (`istio.io/rev`)
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Request SPIRE-issued identities (`inject.istio.io/templates: sidecar,spire`)
    #[arg(long)]
    spire: bool,
    /// Jobs and CronJobs in sidecar mode: exclude them from injection, or inject native sidecars
    #[arg(long, value_enum, value_name = "POLICY")]
    jobs: Option<Jobs>,
    /// Release name for generated object names (default: the workloads' app.kubernetes.io/instance)
    #[arg(long, value_name = "NAME")]
    release: Option<String>,
    /// Namespace the release is installed in (default, as a Helm plugin: HELM_NAMESPACE): names
    /// service accounts exactly in ambient AuthorizationPolicies
    #[arg(long, value_name = "NS")]
    release_namespace: Option<String>,
    /// Do not inject mesh, app and version labels
    #[arg(long)]
    no_labels: bool,
    /// Do not add probes
    #[arg(long)]
    no_probes: bool,
    /// Do not generate NetworkPolicies
    #[arg(long)]
    no_network_policies: bool,
    /// HTTP path for added readiness probes (default: TCP probes)
    #[arg(long, value_name = "PATH")]
    readiness_path: Option<String>,
    /// HTTP path for added liveness probes (default: TCP probes)
    #[arg(long, value_name = "PATH")]
    liveness_path: Option<String>,
    /// HTTP path for added startup probes (default: TCP probes)
    #[arg(long, value_name = "PATH")]
    startup_path: Option<String>,
    /// Namespace of an ingress gateway or controller allowed to reach exposed workloads (repeatable; replaces the defaults)
    #[arg(long = "ingress-namespace", value_name = "NS")]
    ingress_namespaces: Vec<String>,
    /// Namespace of monitoring allowed to scrape mesh metrics (repeatable; replaces the default)
    #[arg(long = "monitoring-namespace", value_name = "NS")]
    monitoring_namespaces: Vec<String>,
    /// Also isolate egress (allows DNS, the control plane and the release's own Services)
    #[arg(long)]
    egress: bool,
    /// Do not restrict database pods to the workloads that reference them
    #[arg(long)]
    no_database_isolation: bool,
    /// Print a unified diff of input and output instead of the output
    #[arg(long)]
    diff: bool,
    /// Print what was injected where, what each generated policy admits, the workloads left
    /// unisolated and why, and every connection cut, on stderr (`-o json|yaml` for a structured
    /// report; stdout keeps the manifests)
    #[arg(long)]
    report: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Jobs {
    Exclude,
    Native,
}

impl PostRenderArgs {
    /// The configuration file (if any) with flags on top.
    fn config(&self) -> Result<PostRenderConfig> {
        let mut cfg = match &self.config {
            Some(path) => PostRenderConfig::load(path)?,
            None => PostRenderConfig::default(),
        };
        if let Some(mode) = self.mode {
            cfg.mode = match mode {
                Mode::Sidecar => MeshMode::Sidecar,
                Mode::Ambient => MeshMode::Ambient,
                Mode::None => MeshMode::None,
            };
        }
        if self.revision.is_some() {
            cfg.revision.clone_from(&self.revision);
        }
        cfg.spire |= self.spire;
        if let Some(j) = self.jobs {
            cfg.jobs = match j {
                Jobs::Exclude => JobPolicy::Exclude,
                Jobs::Native => JobPolicy::Native,
            };
        }
        if self.release.is_some() {
            cfg.release.clone_from(&self.release);
        }
        // Helm runs its plugins (a Helm 4 `postrenderer/v1` plugin included) with its settings as
        // environment variables, HELM_NAMESPACE among them (`EnvVars` in helm/helm
        // `pkg/cli/environment.go`), and HELM_PLUGIN_NAME set. A Helm 3 `--post-renderer` runs
        // in the user's environment, where HELM_NAMESPACE may say something else than `-n`: there
        // only the flag counts.
        let from_helm = || std::env::var_os("HELM_PLUGIN_NAME").and_then(|_| std::env::var("HELM_NAMESPACE").ok());
        cfg.release_namespace = self.release_namespace.clone().or_else(from_helm).filter(|ns| !ns.is_empty());
        cfg.inject.labels &= !self.no_labels;
        cfg.inject.probes &= !self.no_probes;
        cfg.inject.network_policies &= !self.no_network_policies;
        for (name, flag, field) in [
            ("--readiness-path", &self.readiness_path, &mut cfg.probes.readiness_path),
            ("--liveness-path", &self.liveness_path, &mut cfg.probes.liveness_path),
            ("--startup-path", &self.startup_path, &mut cfg.probes.startup_path),
        ] {
            if let Some(path) = flag {
                postrender::config::check_path(path).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                field.clone_from(flag);
            }
        }
        if !self.ingress_namespaces.is_empty() {
            cfg.network_policies.ingress_namespaces.clone_from(&self.ingress_namespaces);
        }
        if !self.monitoring_namespaces.is_empty() {
            cfg.network_policies.monitoring_namespaces.clone_from(&self.monitoring_namespaces);
        }
        cfg.network_policies.egress |= self.egress;
        cfg.network_policies.database_isolation &= !self.no_database_isolation;
        Ok(cfg)
    }
}

pub fn run(args: &PostRenderArgs, output: &OutputFlags) -> Result<Exit> {
    if output.output != OutputFormat::Table && !args.report {
        anyhow::bail!("post-render writes manifests on stdout; -o {:?} applies to its --report (on stderr): add --report", output.output);
    }
    let cfg = args.config()?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the rendered manifests from stdin")?;
    if !super::mask::has_objects(&input) {
        // Helm never sends an empty stream and refuses an empty output: empty input is a mistake.
        anyhow::bail!("stdin holds no Kubernetes object (it is empty, blank or comments only): nothing to post-render");
    }
    // Everything is computed before the first byte is written: on error stdout stays empty.
    // The output is pieces of the input and new text, written without a second copy.
    let rendered = postrender::post_render_parts(&input, &cfg)?;
    let mut out = Out::new();
    if args.diff {
        // Compare with the changed documents re-emitted as they were, so only injections show.
        // Secret values are masked as `kubectl diff` masks them (see `mask`).
        let before = postrender::normalized_input(&input, &rendered.summary)?;
        out.write_str(&super::mask::masked_diff(&before, &rendered.output.to_string(), ("rendered", "post-rendered")))?;
    } else {
        rendered.output.write_to(&mut out)?;
    }
    out.flush()?;
    if args.report {
        match output.output {
            OutputFormat::Json | OutputFormat::Yaml => {
                let json = serde_json::to_value(&rendered.summary)?;
                let text = match output.output {
                    OutputFormat::Yaml => meshmove_model::yaml::to_yaml_string(&json),
                    _ => format!("{}\n", serde_json::to_string_pretty(&json)?),
                };
                eprint!("{text}");
            }
            OutputFormat::Table | OutputFormat::Wide => report(&rendered.summary),
        }
    }
    Ok(Exit::Ok)
}

fn report(s: &postrender::Summary) {
    let rows = s
        .injections
        .iter()
        .map(|i| vec![i.workload.clone(), i.container.clone().unwrap_or_else(|| "-".into()), i.change.clone()])
        .chain(s.policies.iter().map(|g| vec![format!("NetworkPolicy/{}", g.name), "-".into(), format!("isolates {}; admits {}", g.protects, g.admits.join("; "))]))
        .chain(s.withheld.iter().map(|w| vec![w.subject.clone(), "-".into(), format!("not isolated: {}; to isolate it anyway: {}", w.reason, w.isolate_with)]))
        .chain(s.cuts.iter().map(|c| {
            let ports: Vec<String> = c.ports.iter().map(|p| format!("TCP {p}")).collect();
            vec![c.to.clone(), "-".into(), format!("cuts {} on {}: {}; to keep it: {}", c.from, ports.join(", "), c.reason, c.keep_with)]
        }))
        .collect();
    eprint!("{}", meshmove_cli::render::table(&["WORKLOAD", "CONTAINER", "CHANGE"], rows));
    for n in &s.notes {
        eprintln!("warning: {n}");
    }
    eprintln!(
        "{} documents, {} changed, {} injections, {} NetworkPolicies generated, {} workloads not isolated, {} connections cut",
        s.documents,
        s.changed,
        s.injections.iter().filter(|i| !i.skipped).count(),
        s.generated.len(),
        s.withheld.len(),
        s.cuts.len()
    );
}
