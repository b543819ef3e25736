//! `kubectl mesh-migrate ns`: the namespace-based migration path. Glue only: flags to options
//! ([`args`]), one call of `meshmove_migration::namespace::run`, reports to text ([`render`]);
//! `ns monitor` refreshes samples in a loop ([`monitor`]).

mod args;
mod monitor;
mod render;

use std::io::IsTerminal;

use anyhow::{Result, anyhow};
use meshmove_cli::{Exit, KubeFlags, OutputFlags};
use meshmove_kube::plan::Progress;
use meshmove_migration::namespace::Sides;
use meshmove_migration::namespace::run::{self, NsError, NsEvent};

pub use args::NsCommand;

fn legacy_namespace(kube: &KubeFlags, positional: &Option<String>) -> Result<Sides> {
    let ns = positional.clone().unwrap_or_else(|| kube.options().default_namespace());
    Ok(Sides::new(&ns)?)
}

/// Turn a core error into the exit-code contract: refused steps and bad input 2; plan errors by
/// their class (cluster and conflicts 3, rollout timeouts 1), as `meshmove_cli::exit` maps them.
fn fail(e: NsError) -> Result<Exit> {
    match e {
        NsError::Plan(p) => Err(anyhow::Error::new(p)),
        other => Err(anyhow::Error::new(other)),
    }
}

/// stderr progress: notes, gate checks, rollout waits (on a terminal, one line rewritten in
/// place).
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
            let line = format!("waiting for rollouts: {ready}/{total} ready{what}");
            if tty {
                meshmove_cli::output::rewrite_line(&mut std::io::stderr(), &line, ready == total);
            } else if verbose || ready == total {
                eprintln!("{line}");
            }
        }
        NsEvent::Plan(Progress::WaitingFor { target, state }) => {
            if !state.met {
                let ns = target.namespace.as_deref().map(|n| format!(" (namespace {n})")).unwrap_or_default();
                eprintln!("waiting for {}{ns}: {state}", target.kubectl_name());
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
                Ok(all) => render::status_all(output, &all),
                Err(e) => fail(e),
            };
        }
        let verbose = output.verbosity > 0;
        let mut events = progress(verbose);
        let result = match &command {
            NsCommand::Create(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let (copy, overrides, profile) = a.options(&sides)?;
                let opts = args::run_options(&a.write, &conn);
                run::create(&conn, &sides, &copy, &profile, overrides, &opts, &mut events).await
            }
            NsCommand::Shift(a) => {
                let sides = legacy_namespace(kube, &a.namespace)?;
                let (steps, g) = a.schedule(&conn)?;
                let opts = args::run_options(&a.write, &conn);
                run::shift(&conn, &sides, &steps, a.allow_decrease, &g, &opts, &mut events).await
            }
            NsCommand::Complete(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let g = a.gates.options(&conn, a.interval)?;
                let opts = args::run_options(&a.write, &conn);
                run::complete(&conn, &sides, a.delete_legacy, a.force, a.ignore_ambient_callers, &g, &opts, &mut events).await
            }
            NsCommand::Rollback(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let opts = args::run_options(&a.write, &conn);
                run::rollback(&conn, &sides, &opts, &mut events).await
            }
            NsCommand::Cleanup(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let opts = args::run_options(&a.write, &conn);
                run::cleanup(&conn, &sides, a.force, &opts, &mut events).await
            }
            NsCommand::Status(a) => {
                let sides = legacy_namespace(kube, &a.namespace)?;
                return match run::status(&conn, &sides).await {
                    Ok(s) => render::status(output, &s),
                    Err(e) => fail(e),
                };
            }
            NsCommand::Monitor(a) => {
                let sides = legacy_namespace(kube, &a.ns.namespace)?;
                let prom = a.prometheus.prometheus(&conn)?;
                return monitor::monitor(&conn, &sides, prom.as_ref(), a, output).await;
            }
        };
        match result {
            Ok(report) => render::report(output, &report),
            Err(e) => fail(e),
        }
    })
}
