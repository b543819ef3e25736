//! Pod Security of the copies, as the API server judges it.
//!
//! The copies run the pod templates of the legacy workloads, whose pods run in the legacy
//! namespace. So `ns create` asks the API server what the mesh namespace's enforce level would
//! say about those pods: a server-side dry run of `pod-security.kubernetes.io/enforce=<level>` on
//! the legacy namespace ([`meshmove_kube::plan::podsecurity`]), which persists nothing and
//! returns the Pod Security admission's warnings for its existing pods. Each named pod is traced
//! to its workload (`model::workload::pod_owner`); violations of copied workloads are the
//! answer. The server names only the first pod (by name) of a group of pods failing the same
//! checks: a group led by a pod that is not copied may hide copies. A copy whose template passes
//! one of the group's checks that the template check evaluates exactly cannot be in it (the
//! group's pods fail exactly those checks); any other copy with running pods is named as possibly
//! hidden there and refused unless overridden, as is an evaluation the server says it did not
//! finish.
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
    let running: Vec<(String, String)> = pods_by_workload(&inventory);
    for v in &answer.violations {
        match owner_of(&v.pod) {
            Some(w) if copied.contains(&w) => out.push(Violation {
                object: format!("{}/{}", w.0, w.1),
                problem: format!("the API server: Pod Security {level_words} would reject {v}"),
            }),
            _ if v.others > 0 => {
                // The group's other pods fail exactly the same checks. A copy whose template
                // passes one of them (by the template check, for the checks it evaluates
                // exactly) is not among them.
                let maybe: Vec<String> = copied
                    .iter()
                    .filter(|w| running.contains(w))
                    .filter(|(k, n)| {
                        let object = format!("{k}/{n}");
                        let problems: Vec<&str> = set.violations.iter().filter(|x| x.object == object).map(|x| x.problem.as_str()).collect();
                        may_share_group(&v.reasons, &problems)
                    })
                    .map(|(k, n)| format!("{k}/{n}"))
                    .collect();
                if !maybe.is_empty() {
                    out.push(Violation {
                        object: format!("pods of {}", sides.legacy),
                        problem: format!(
                            "the API server: Pod Security {level_words} would reject {v}; it names only the first of pods failing the same checks, and the copies {} may be among the others",
                            maybe.join(", ")
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    for why in &answer.incomplete {
        out.push(Violation { object: format!("pods of {}", sides.legacy), problem: format!("the API server did not judge every pod: {why}") });
    }
    // Copied workloads the server had no pod of: predicted from their templates.
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

/// Whether a pod template with the template check's `problems` may fail exactly the checks
/// `reasons` names (the titles of the Pod Security admission's checks, which groups pods by the
/// set of checks they fail:
/// <https://github.com/kubernetes/pod-security-admission/blob/master/admission/admission.go>,
/// `EvaluatePodsInNamespace`; titles from the policy package's checks). A reason the template
/// check evaluates exactly, and which the template passes, rules the template out; reasons it
/// does not evaluate (volume types, sysctls, procMount, SELinux, AppArmor) rule nothing out.
fn may_share_group(reasons: &[String], problems: &[&str]) -> bool {
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    reasons.iter().all(|r| {
        let r = r.as_str();
        let evaluated = if r.starts_with("allowPrivilegeEscalation") {
            Some(has("allowPrivilegeEscalation"))
        } else if r.starts_with("runAsNonRoot") {
            Some(has("runAsNonRoot"))
        } else if r.starts_with("runAsUser") {
            Some(has("runAsUser"))
        } else if r.starts_with("seccompProfile") {
            Some(has("seccompProfile"))
        } else if r.starts_with("unrestricted capabilities") {
            Some(has("capabilit"))
        } else if r == "privileged" {
            Some(problems.iter().any(|p| p.ends_with(": privileged")))
        } else if r.starts_with("hostPort") {
            Some(has("hostPort"))
        } else if r.starts_with("hostPath") {
            Some(has("hostPath volume"))
        } else if r.starts_with("host namespaces") {
            Some(has("hostNetwork") || has("hostPID") || has("hostIPC"))
        } else {
            None
        };
        evaluated.unwrap_or(true)
    })
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

#[cfg(test)]
mod tests {
    use super::may_share_group;

    fn reasons(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_template_passing_one_evaluated_check_of_the_group_is_not_in_it() {
        let group = reasons(&["allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"]);
        // Compliant with restricted: no problem at all.
        assert!(!may_share_group(&group, &[]));
        // Fails three of the four: a different set, so a different group.
        let three = ["container a: allowPrivilegeEscalation must be false", "container a: capabilities must drop ALL", "container a: runAsNonRoot must be true (pod or container)"];
        assert!(!may_share_group(&group, &three));
        // Fails all four: may be hidden in the group.
        let four = [three[0], three[1], three[2], "container a: seccompProfile must be RuntimeDefault or Localhost"];
        assert!(may_share_group(&group, &four));
        // A check the template check does not evaluate rules nothing out.
        assert!(may_share_group(&reasons(&["restricted volume types"]), &[]));
        assert!(!may_share_group(&reasons(&["restricted volume types", "hostPort"]), &[]));
    }
}
