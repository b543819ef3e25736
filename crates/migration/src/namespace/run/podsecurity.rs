//! Pod Security of the copies, as the API server judges it.
//!
//! The copies run the pod templates of the legacy workloads, whose pods run in the legacy
//! namespace. So `ns create` asks the API server what the mesh namespace's enforce level would
//! say about those pods: a server-side dry run of `pod-security.kubernetes.io/enforce=<level>` on
//! the legacy namespace ([`meshmove_kube::plan::podsecurity`]), which persists nothing and
//! returns the Pod Security admission's warnings for its existing pods. Each named pod is traced
//! to its workload (`model::workload::pod_owner`); violations of copied workloads are the
//! answer. The server names only the first pod (by name) of a group of pods failing the same
//! checks: a group led by a pod that is not copied may hide copies, and is reported as such
//! (refused unless overridden), as is an evaluation the server says it did not finish.
//!
//! The hand-written prediction from pod templates ([`copy::pod_security_problems`]) is used only
//! where the API server has nothing to judge: copied workloads with no pod running in the legacy
//! namespace (scaled to zero), and when the dry run is forbidden (a role without `patch` on
//! namespaces); the report says which.

use meshmove_kube::plan::podsecurity::pod_security_dry_run;
use meshmove_model::inventory::{Inventory, Object};
use meshmove_model::workload::pod_owner;

use super::*;
use crate::namespace::PodSecurity;
use crate::namespace::copy::Violation;

/// What Pod Security `level` would reject of the copies in `set`, and notes on how it was found.
pub(super) async fn copy_violations(
    conn: &Connection,
    sides: &Sides,
    level: PodSecurity,
    set: &CopySet,
) -> Result<(Vec<Violation>, Vec<String>), NsError> {
    let Some(name) = level.label_value().filter(|l| *l != "privileged") else { return Ok((Vec::new(), Vec::new())) };
    let copied: Vec<(String, String)> =
        set.objects.iter().filter(|o| is_workload(kind_of(o))).map(|o| (kind_of(o).to_string(), name_of(o).to_string())).collect();
    if copied.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let hand_written = |objects: &[&(String, String)]| -> Vec<Violation> {
        set.violations.iter().filter(|v| objects.iter().any(|(k, n)| v.object == format!("{k}/{n}"))).cloned().collect()
    };
    let answer = match pod_security_dry_run(conn, &sides.legacy, name).await {
        Ok(a) => a,
        Err(PlanError::Cluster(ClusterError::Api { source: kube::Error::Api(s), .. })) if s.code == 403 => {
            let all: Vec<&(String, String)> = copied.iter().collect();
            return Ok((
                hand_written(&all),
                vec![format!(
                    "could not ask the API server for Pod Security (a dry run of the {name} label on namespace {} is forbidden: {}); predicted from the pod templates instead",
                    sides.legacy, s.message
                )],
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let wanted = [&kinds::POD, &kinds::REPLICA_SET, &kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET];
    let inventory = cluster::load(conn, &wanted, &[], Some(&sides.legacy)).await?;
    let owner_of = |pod: &str| -> Option<(String, String)> {
        let p = inventory.get(&kinds::POD, Some(&sides.legacy), pod)?;
        let o = pod_owner(&inventory, p)?;
        Some((o.kind.clone(), o.name.clone()))
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let level_words = answer.level.clone().unwrap_or_else(|| format!("{name}:latest"));
    for v in &answer.violations {
        match owner_of(&v.pod) {
            Some(w) if copied.contains(&w) => out.push(Violation {
                object: format!("{}/{}", w.0, w.1),
                problem: format!("the API server: Pod Security {level_words} would reject {v}"),
            }),
            _ if v.others > 0 => out.push(Violation {
                object: format!("pods of {}", sides.legacy),
                problem: format!(
                    "the API server: Pod Security {level_words} would reject {v}; it names only the first of pods failing the same checks, so copies may be among the others"
                ),
            }),
            _ => {}
        }
    }
    for why in &answer.incomplete {
        out.push(Violation { object: format!("pods of {}", sides.legacy), problem: format!("the API server did not judge every pod: {why}") });
    }
    // Copied workloads the server had no pod of: predicted from their templates.
    let running: Vec<(String, String)> = pods_by_workload(&inventory);
    let idle: Vec<&(String, String)> = copied.iter().filter(|w| !running.contains(w)).collect();
    if !idle.is_empty() {
        out.extend(hand_written(&idle));
        notes.push(format!(
            "Pod Security of {} predicted from the pod templates: no pod of them runs in {} for the API server to judge",
            idle.iter().map(|(k, n)| format!("{k}/{n}")).collect::<Vec<_>>().join(", "),
            sides.legacy
        ));
    }
    Ok((out, notes))
}

/// The workloads (kind, name) that have pods in `inventory`.
fn pods_by_workload(inventory: &Inventory) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = inventory
        .of(&kinds::POD)
        .filter_map(|p: &Object| pod_owner(inventory, p))
        .map(|o| (o.kind.clone(), o.name.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}
