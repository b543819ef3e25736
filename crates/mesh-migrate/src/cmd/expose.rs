//! `expose`: one multi-host Ingress for the namespace's HTTP Services; `--cleanup` removes it.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat};
use meshmove_model::inventory::kinds;
use meshmove_core::migrate::{STEP_EXPOSE, expose};
use meshmove_kube::plan::{self, PlanError, RollbackOptions};

use super::live::{Live, MutateFlags, progress};

#[derive(Args)]
pub struct ExposeArgs {
    /// Hosts are <service>.<DOMAIN> (default: <namespace>.local)
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// spec.ingressClassName of the Ingress (default: the cluster's default class)
    #[arg(long, value_name = "CLASS")]
    ingress_class: Option<String>,
    /// Serve a Service on another host, e.g. frontend=shop.local (repeatable)
    #[arg(long = "host", value_name = "SERVICE=HOST", value_parser = parse_host)]
    hosts: Vec<(String, String)>,
    /// Remove exactly what `expose` created (from the journal)
    #[arg(long)]
    cleanup: bool,
    #[command(flatten)]
    changes: MutateFlags,
}

pub(super) fn parse_host(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((svc, host)) if !svc.is_empty() && !host.is_empty() => Ok((svc.to_string(), host.to_string())),
        _ => Err(format!("`{s}`: use SERVICE=HOST, e.g. frontend=shop.local")),
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
        };
        let outcomes = match live.rt.block_on(plan::rollback(&live.conn, &ns, &options, &mut progress(table))) {
            Err(PlanError::NoJournal { .. }) => Vec::new(),
            other => other?,
        };
        if outcomes.is_empty() {
            eprintln!("nothing to clean up: no object of `expose` is recorded in namespace {ns}");
        }
        if !table {
            meshmove_cli::render::structured(&mut Out::new(), output.output, &outcomes)?;
        }
        return Ok(Exit::Ok);
    }
    let inventory = live.inventory(&[&kinds::NAMESPACE], &[&kinds::SERVICE])?;
    meshmove_cli::analysis::require_complete(&inventory, "plan the Ingress")?;
    let options = expose::ExposeOptions {
        domain: args.domain.clone(),
        ingress_class: args.ingress_class.clone(),
        hosts: args.hosts.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    let exposure = expose::plan(&inventory, &ns, &options).map_err(|e| anyhow!(e))?;
    for s in &exposure.skipped {
        meshmove_cli::debug!(1, "not exposed: {s}");
    }
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
