//! `status`: meshed or not per workload, proxy revision, effective mTLS modes (namespace-wide and
//! per workload), Istio objects, journal steps.

use anyhow::Result;
use meshmove_cli::render::{structured, table};
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat, SourceFlags};
use meshmove_model::inventory::kinds;
use meshmove_migration::inplace::status::{self, NamespaceStatus};
use meshmove_kube::plan::Journal;

use super::live::Live;

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    source: SourceFlags,
    #[command(flatten)]
    root: super::live::MeshRootArgs,
}

const KINDS: &[&meshmove_model::inventory::Kind] = &[
    &kinds::NAMESPACE,
    &kinds::POD,
    &kinds::REPLICA_SET,
    &kinds::DEPLOYMENT,
    &kinds::STATEFUL_SET,
    &kinds::DAEMON_SET,
    &kinds::JOB,
    &kinds::CRON_JOB,
    &kinds::ISTIO_GATEWAY,
    &kinds::VIRTUAL_SERVICE,
    &kinds::DESTINATION_RULE,
    &kinds::PEER_AUTHENTICATION,
];

pub fn run(kube: &KubeFlags, output: &OutputFlags, args: &StatusArgs) -> Result<Exit> {
    let (ns, inventory, journal, policies) = if args.source.filename.is_empty() {
        let live = Live::connect(kube)?;
        let ns = live.namespace().to_string();
        let inventory = live.inventory(KINDS, &[])?;
        for (kind, why) in inventory.unavailable().into_iter().filter(|(_, why)| !why.is_read_failure()) {
            meshmove_cli::debug!(1, "{kind} not listed: {why:?}");
        }
        let journal = live.rt.block_on(Journal::load(&live.conn, &ns))?;
        // The mesh-wide policies live in the root namespace: listed in every namespace.
        let policies = live.peer_authentications(&args.root)?;
        (ns, inventory, journal, policies)
    } else {
        // From manifests (e.g. `kubectl get ... -o yaml` saved earlier): the journal, if the
        // files hold its ConfigMap, is read from there.
        let inventory = meshmove_cli::analysis::load_inventory(kube, &args.source, KINDS, &[])?;
        let ns = inventory.default_namespace.clone();
        let journal = inventory
            .get(&kinds::CONFIG_MAP, Some(&ns), meshmove_kube::plan::JOURNAL_NAME)
            .map(|cm| Journal::from_config_map(&ns, &cm.value).map_err(anyhow::Error::from))
            .transpose()?;
        // The mesh config, if the files hold it, or the flag, names the root namespace.
        let peer_auth = meshmove_migration::inplace::peer_auth::root_namespace(&inventory, args.root.mesh_root_namespace.as_deref());
        let policies = meshmove_migration::inplace::peer_auth::policies_in(&inventory, peer_auth);
        (ns, inventory, journal, policies)
    };
    let s = status::status_with(&inventory, policies, &ns, journal.as_ref());
    let mut out = Out::new();
    match output.output {
        OutputFormat::Json | OutputFormat::Yaml => structured(&mut out, output.output, &s)?,
        OutputFormat::Table | OutputFormat::Wide => out.write_str(&render(&s, output.output == OutputFormat::Wide))?,
    }
    out.flush()?;
    // A status over kinds the cluster refused (pods, Istio objects) is incomplete: show it, say
    // what is missing, and do not exit 0.
    let incomplete = meshmove_cli::analysis::warn_unread("mesh-migrate", &inventory);
    Ok(if incomplete { Exit::Findings } else { Exit::Ok })
}

fn render(s: &NamespaceStatus, wide: bool) -> String {
    let mut text = String::new();
    let objects = if s.istio_objects.is_empty() {
        "none".to_string()
    } else {
        s.istio_objects.iter().map(|(k, v)| format!("{k} {}", v.len())).collect::<Vec<_>>().join(", ")
    };
    text.push_str(&format!("Namespace:  {}\n", s.namespace));
    text.push_str(&format!("Mode:       {}\n", s.mode.as_deref().unwrap_or("not on the mesh")));
    match &s.mtls {
        Some(mode) => text.push_str(&format!("mTLS:       {mode} ({})\n", s.mtls_decided_by)),
        None => text.push_str(&format!("mTLS:       unknown ({})\n", s.mtls_decided_by)),
    }
    text.push_str(&format!("Istio:      {objects}\n"));
    if s.steps.is_empty() {
        text.push_str("Steps:      none recorded\n");
    } else {
        text.push_str("Steps:\n");
        // The shared table renderer: columns as wide as their longest cell, never run together
        // (`rollback expose` is longer than any fixed width).
        let rows = s
            .steps
            .iter()
            .map(|st| {
                let mut row = vec![st.step.clone(), st.status.to_string(), st.started_at.clone(), st.who.clone()];
                if wide {
                    row.push(st.error.clone().unwrap_or_default());
                }
                row
            })
            .collect();
        let headers: &[&str] = if wide { &["STEP", "STATUS", "STARTED", "BY", "ERROR"] } else { &["STEP", "STATUS", "STARTED", "BY"] };
        for line in table(headers, rows).lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text.push('\n');
    let rows = s
        .workloads
        .iter()
        .map(|w| {
            vec![
                format!("{}/{}", w.kind, w.name),
                format!("{}/{}", w.meshed_pods, w.pods),
                if w.revisions.is_empty() { "-".into() } else { w.revisions.join(",") },
                w.state.clone(),
                w.mtls.as_ref().map_or_else(|| "-".to_string(), |m| m.summary()),
            ]
        })
        .collect();
    text.push_str(&table(&["WORKLOAD", "MESHED", "REVISION", "STATE", "MTLS"], rows));
    if s.pending.is_empty() {
        text.push_str("\nPending:    nothing\n");
    } else {
        text.push_str("\nPending:\n");
        for p in &s.pending {
            text.push_str(&format!("  {p}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_kube::plan::{StepRecord, StepStatus};

    fn step(step: &str, status: StepStatus, error: Option<&str>) -> StepRecord {
        StepRecord {
            step: step.into(),
            who: "ops@prod".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            status,
            error: error.map(str::to_string),
        }
    }

    /// The steps block read by columns: each column starts where its header does.
    fn steps_by_column(text: &str) -> Vec<Vec<String>> {
        let block: Vec<&str> = text.lines().skip_while(|l| *l != "Steps:").skip(1).take_while(|l| l.starts_with("  ")).collect();
        let header = block[0];
        let starts: Vec<usize> = (0..header.len()).filter(|&i| &header[i..=i] != " " && (i == 0 || &header[i - 1..i] == " ")).collect();
        block
            .iter()
            .map(|l| {
                starts
                    .iter()
                    .enumerate()
                    .map(|(c, &s)| {
                        let end = starts.get(c + 1).copied().unwrap_or(l.len()).min(l.len());
                        if end < l.len() {
                            assert_eq!(&l[end - 1..end], " ", "column {c} runs into the next in {l:?}");
                        }
                        l.get(s..end).unwrap_or("").trim().to_string()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn steps_never_run_together() {
        let s = NamespaceStatus {
            namespace: "shop".into(),
            mode: None,
            mtls: None,
            mtls_decided_by: "no PeerAuthentication".into(),
            istio_objects: Default::default(),
            workloads: vec![],
            steps: vec![
                step("expose", StepStatus::RolledBack, None),
                step("rollback expose", StepStatus::Completed, None),
                step("mtls-strict", StepStatus::Failed, Some("timed out after 300s")),
            ],
            pending: vec![],
        };
        let narrow = steps_by_column(&render(&s, false));
        assert_eq!(narrow[0], ["STEP", "STATUS", "STARTED", "BY"]);
        assert_eq!(narrow[2], ["rollback expose", "completed", "2026-01-01T00:00:00Z", "ops@prod"]);
        let wide = steps_by_column(&render(&s, true));
        assert_eq!(wide[3], ["mtls-strict", "failed", "2026-01-01T00:00:00Z", "ops@prod", "timed out after 300s"]);
    }
}
