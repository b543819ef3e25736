//! `expose`: one multi-host Ingress for the namespace's HTTP Services; `--cleanup` removes it.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat};
use meshmove_model::inventory::kinds;
use meshmove_migration::inplace::{STEP_EXPOSE, expose};
use meshmove_kube::plan::{self, PlanError, RollbackOptions};

use super::live::{Live, MutateFlags};

#[derive(Args)]
pub struct ExposeArgs {
    /// Hosts are <service>.<DOMAIN> (default: <namespace>.local)
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// spec.ingressClassName of the Ingress (default: the cluster's default IngressClass; refused when there is none)
    #[arg(long, value_name = "CLASS")]
    ingress_class: Option<String>,
    /// Leave host+path pairs another Ingress of the class already serves to it (default: refuse)
    #[arg(long)]
    merge_existing: bool,
    /// Serve a Service on another host, e.g. frontend=shop.local (repeatable)
    #[arg(long = "host", value_name = "SERVICE=HOST", value_parser = parse_host)]
    hosts: Vec<(String, String)>,
    /// Remove exactly what `expose` created (from the journal)
    #[arg(long)]
    cleanup: bool,
    #[command(flatten)]
    changes: MutateFlags,
}

/// Refuse to run a step again over objects it wrote that someone changed since: every one is
/// listed with its diff, and nothing is written (exit 1).
pub(super) fn refuse_edited(live: &Live, plan: &plan::Plan) -> Result<()> {
    let drifts = live.rt.block_on(plan::conflicts(&live.conn, plan))?;
    if drifts.is_empty() {
        return Ok(());
    }
    Err(PlanError::Drifts {
        action: format!("`{}`", plan.step),
        hint: "revert those edits, or delete the object so the step writes it again, or roll the step back with `rollback --force`".to_string(),
        drifts,
    }
    .into())
}

/// A `--host` value that is not SERVICE=HOST (clap names the flag).
#[derive(Debug, thiserror::Error)]
#[error("`{value}`: use SERVICE=HOST, e.g. frontend=shop.local")]
pub(super) struct HostFlagError {
    value: String,
}

pub(super) fn parse_host(s: &str) -> Result<(String, String), HostFlagError> {
    match s.split_once('=') {
        Some((svc, host)) if !svc.is_empty() && !host.is_empty() => Ok((svc.to_string(), host.to_string())),
        _ => Err(HostFlagError { value: s.to_string() }),
    }
}

pub fn run(kube: &KubeFlags, output: &OutputFlags, args: &ExposeArgs) -> Result<Exit> {
    let live = Live::connect(kube)?;
    let ns = live.namespace().to_string();
    let table = matches!(output.output, OutputFormat::Table | OutputFormat::Wide);
    if args.cleanup {
        let options = RollbackOptions {
            dry_run: args.changes.dry_run.into(),
            step: Some(STEP_EXPOSE.to_string()),
            force: false,
            timeout: args.changes.timeout,
            batch_size: 0,
            actor: live.actor(),
            manager: plan::Manager::MeshMigrate,
            only: None,
        };
        // The changes contract of a rollback: a diff per object, -o yaml|json the objects left.
        let outcomes = match meshmove_cli::mutate::run_rollback(&live, &options, args.changes.dry_run, output.output) {
            Err(e) if matches!(e.downcast_ref::<PlanError>(), Some(PlanError::NoJournal { .. })) => {
                if !table {
                    meshmove_cli::mutate::print_object_list(&mut Out::new(), output.output, &[])?;
                }
                Vec::new()
            }
            other => other?,
        };
        if outcomes.is_empty() {
            eprintln!("nothing to clean up: no object of `expose` is recorded in namespace {ns}");
        }
        return Ok(Exit::Ok);
    }
    live.refuse_under_migration("expose")?;
    // Services, Ingresses and IngressClasses of the whole cluster: the controller's address, the
    // host+path pairs already served, the default class.
    let inventory = live.inventory(&[&kinds::NAMESPACE], &[&kinds::SERVICE, &kinds::INGRESS, &expose::INGRESS_CLASS])?;
    meshmove_cli::analysis::require_complete(&inventory, "plan the Ingress")?;
    let options = expose::ExposeOptions {
        domain: args.domain.clone(),
        ingress_class: args.ingress_class.clone(),
        hosts: args.hosts.iter().cloned().collect::<BTreeMap<_, _>>(),
        merge: args.merge_existing,
    };
    let exposure = expose::plan(&inventory, &ns, &options).map_err(|e| anyhow!(e))?;
    for s in &exposure.skipped {
        meshmove_cli::debug!(1, "not exposed: {s}");
    }
    match exposure.class_source {
        expose::ClassSource::Default => {
            eprintln!("expose: IngressClass {} (the cluster's default: {}=\"true\")", exposure.class, expose::DEFAULT_CLASS_ANNOTATION);
        }
        expose::ClassSource::Flag => eprintln!("expose: IngressClass {} (--ingress-class)", exposure.class),
    }
    for n in &exposure.notes {
        eprintln!("expose: warning: {n}");
    }
    for c in &exposure.carried {
        eprintln!("expose: carried over from Ingress {}: {}={}", c.from, c.key, c.value);
    }
    for l in &exposure.left {
        eprintln!("expose: host {} path {} left to Ingress {} (--merge-existing)", l.host, l.path, l.ingress);
    }
    refuse_edited(&live, &exposure.plan)?;
    super::live::run_plan(&live, &exposure.plan, &args.changes, output.output)?;
    if table {
        let mut out = Out::new();
        out.line("")?;
        out.line("# Add to /etc/hosts (kubectl mesh-migrate never edits it):")?;
        for l in exposure.hosts_lines() {
            out.line(l)?;
        }
        out.flush()?;
    }
    Ok(Exit::Ok)
}
