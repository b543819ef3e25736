//! `apply`: the generated policies with server-side apply (or a client diff, or a server dry
//! run), then `audit` again on the cluster.

use anyhow::Result;
use clap::{Args, ValueEnum};
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat, ReportFlags, SourceFlags};
use meshmove_isolation::apply::{self, Applied};
use meshmove_isolation::generate::{DATABASE_LABEL, FIELD_MANAGER, Generated};
use meshmove_model::inventory::{Inventory, kinds};
use serde_json::{Map, Value, json};

use super::generate::{self, PolicyArgs};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Apply for real, then audit again
    None,
    /// Send nothing: print a diff against the policies in the input (-o json|yaml: the objects)
    Client,
    /// Send every object with dryRun=All: the server validates and persists nothing
    Server,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// none, client or server
    #[arg(long, value_enum, value_name = "MODE", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    dry_run: DryRun,
    #[command(flatten)]
    source: SourceFlags,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    report: ReportFlags,
}

pub fn run(kube: &KubeFlags, args: &ApplyArgs, output: &OutputFlags) -> Result<Exit> {
    let inventory = meshmove_cli::analysis::load_inventory(kube, &args.source, &generate::kinds(true), &[])?;
    let generation = generate::policies(&inventory, &args.policy);
    let companions = generation.policies.iter().filter(|p| p.authorization.is_some()).count();
    if companions > 0 {
        meshmove_cli::log::warn(format_args!(
            "{companions} database(s) run in ambient namespaces: `apply` writes their NetworkPolicies only; apply the AuthorizationPolicies `kubectl dbiso generate` prints with them (kubectl apply -f -) so ztunnel also limits the ports"
        ));
    }
    let mut out = Out::new();
    match args.dry_run {
        DryRun::Client => {
            match output.output {
                OutputFormat::Json | OutputFormat::Yaml => generate::print(&mut out, output.output, &generation)?,
                OutputFormat::Table | OutputFormat::Wide => {
                    for p in &generation.policies {
                        let (diff, outcome) = diff(&inventory, p);
                        out.write_str(&diff)?;
                        eprintln!("networkpolicy.networking.k8s.io/{} {outcome} (dry run)", p.name);
                    }
                }
            }
            out.flush()?;
            Ok(Exit::Ok)
        }
        DryRun::Server => {
            let applied = send(kube, &generation.policies, true)?;
            match output.output {
                OutputFormat::Json | OutputFormat::Yaml => meshmove_cli::render::structured(&mut out, output.output, &applied)?,
                OutputFormat::Table | OutputFormat::Wide => {
                    for a in &applied {
                        out.line(format_args!("networkpolicy.networking.k8s.io/{} {} (server dry run)", a.name, a.outcome))?;
                    }
                }
            }
            out.flush()?;
            Ok(Exit::Ok)
        }
        DryRun::None => {
            for a in send(kube, &generation.policies, false)? {
                eprintln!("networkpolicy.networking.k8s.io/{} {} (namespace {})", a.name, a.outcome, a.namespace);
            }
            drop(out);
            // Audit the cluster as it is now, whatever the policies were generated from.
            super::audit(kube, &SourceFlags::default(), &args.report, output)
        }
    }
}

fn send(kube: &KubeFlags, policies: &[Generated], dry_run: bool) -> Result<Vec<Applied>> {
    let rt = meshmove_cli::runtime()?;
    rt.block_on(async {
        let conn = kube.options().connect().await?;
        Ok(apply::apply(&conn, policies, dry_run).await?)
    })
}

/// The fields `dbiso` manages on a policy: its labels and spec.
fn managed(v: &Value) -> Value {
    let mut labels = Map::new();
    for key in ["app.kubernetes.io/managed-by", DATABASE_LABEL] {
        if let Some(l) = v.pointer("/metadata/labels").and_then(|l| l.get(key)) {
            labels.insert(key.to_string(), l.clone());
        }
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": v.pointer("/metadata/name"), "namespace": v.pointer("/metadata/namespace"), "labels": labels},
        "spec": v.get("spec").cloned().unwrap_or(Value::Null),
    })
}

/// A unified diff of the policy in the input (if any) and the generated one, and what applying
/// would do.
fn diff(inventory: &Inventory, p: &Generated) -> (String, &'static str) {
    let new = meshmove_model::yaml::to_yaml_string(&managed(&p.object));
    let existing = inventory.get(&kinds::NETWORK_POLICY, Some(&p.namespace), &p.name);
    let old = existing.map(|o| {
        let mut v = o.value.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("namespace".into(), json!(p.namespace));
        }
        meshmove_model::yaml::to_yaml_string(&managed(&v))
    });
    let outcome = match &old {
        None => "created",
        Some(o) if *o == new => "unchanged",
        Some(_) => "configured",
    };
    let old = old.unwrap_or_default();
    let name = format!("NetworkPolicy/{}/{}", p.namespace, p.name);
    let text = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name} ({})", if existing.is_some() { "current" } else { "absent" }), &format!("b/{name} ({FIELD_MANAGER})"))
        .to_string();
    (text, outcome)
}
