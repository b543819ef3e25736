//! The callers the split misses ([`crate::namespace::callers`]), read from the cluster: every
//! pod and namespace, as the CNI node agent and its enablement rule see them.

use super::*;
use crate::namespace::ambient_reach::{self, AmbientReach};
use crate::namespace::callers::{self, AmbientCallers};

/// The pods of every namespace that ztunnel carries, or why they could not be listed.
pub(super) async fn ambient_callers(
    conn: &Connection,
    sides: &Sides,
) -> Result<Result<Vec<AmbientCallers>, String>, NsError> {
    let inv = cluster::load(
        conn,
        &[&kinds::POD, &kinds::NAMESPACE],
        &[&kinds::POD],
        None,
    )
    .await?;
    for k in [&kinds::POD, &kinds::NAMESPACE] {
        if let Some(why) = inv.availability(k) {
            return Ok(Err(format!(
                "could not list {} in every namespace ({}): whether pods captured by ztunnel (ambient), which the weights do not move, call the legacy Services of {} cannot be told",
                k.resource(),
                why.describe(k),
                sides.legacy
            )));
        }
    }
    let pods: Vec<Value> = inv.of(&kinds::POD).map(|o| o.value.clone()).collect();
    let namespaces: Vec<Value> = inv.of(&kinds::NAMESPACE).map(|o| o.value.clone()).collect();
    Ok(Ok(callers::ambient_callers(sides, &namespaces, &pods)))
}

/// `create` and `shift`: a warning naming the ambient callers (a note when they cannot be told).
pub(super) async fn report_ambient_callers(
    conn: &Connection,
    sides: &Sides,
    report: &mut Report,
) -> Result<(), NsError> {
    match ambient_callers(conn, sides).await? {
        Ok(c) if c.is_empty() => {}
        Ok(c) => report.warnings.push(callers::warning(sides, &c)),
        Err(why) => report.notes.push(why),
    }
    Ok(())
}

/// The kinds the engine judges reach by ([`crate::namespace::ambient_reach`]), read in every
/// namespace: workloads and Pods, Namespaces, NetworkPolicies, the admin policy tiers, Istio's L4
/// policies, CloudNativePG clusters, Services; Secrets and ConfigMaps by reference (those the
/// workloads read, for the names they hold).
fn reach_kinds() -> Vec<&'static Kind> {
    let mut k: Vec<&'static Kind> = meshmove_model::workload::WORKLOAD_KINDS.to_vec();
    k.extend([
        &kinds::NAMESPACE,
        &kinds::NETWORK_POLICY,
        &kinds::SERVICE,
        &kinds::CNPG_CLUSTER,
    ]);
    k.extend(meshmove_netpol::view::ADMIN_POLICY_KINDS);
    k.extend(meshmove_netpol::view::ISTIO_POLICY_KINDS);
    k.extend(cluster::BY_REFERENCE);
    k
}

/// Which ambient workloads reach the retiring legacy pods, or why that cannot be told.
async fn ambient_reach(
    conn: &Connection,
    sides: &Sides,
    retired: &[(String, String)],
) -> Result<Result<AmbientReach, String>, NsError> {
    let inv =
        cluster::load_by_reference(conn, &reach_kinds(), &cluster::BY_REFERENCE, &[], None).await?;
    if let Some((k, why)) = inv.unread().into_iter().next() {
        let verb = if cluster::BY_REFERENCE.contains(&k) {
            "get"
        } else {
            "list"
        };
        return Ok(Err(format!(
            "could not {verb} {} in every namespace ({}): which pods captured by ztunnel (ambient) can reach the legacy workloads of {} cannot be told",
            k.resource(),
            why.describe(k),
            sides.legacy
        )));
    }
    Ok(ambient_reach::ambient_reach(sides, &inv, retired).map_err(|e| e.to_string()))
}

/// `complete`: refused (unless `anyway`, `--ignore-ambient-callers`) while ambient workloads can
/// reach the legacy workloads it retires (`retired`, `(kind, name)`) on the legacy Services'
/// ports, naming each and whether the input shows it calling, or while that cannot be told.
/// Ambient pods that no policy lets through are named in a note: they lose nothing.
pub(super) async fn complete_check(
    conn: &Connection,
    sides: &Sides,
    retired: &[(String, String)],
    anyway: bool,
    report: &mut Report,
) -> Result<(), NsError> {
    let problem = match ambient_callers(conn, sides).await? {
        Ok(c) if c.is_empty() => return Ok(()),
        Ok(_) => match ambient_reach(conn, sides, retired).await? {
            Ok(r) => {
                if !r.unreached.is_empty() {
                    report.notes.push(format!(
                        "{} workload(s) captured by ztunnel (ambient) cannot reach the legacy workloads of {} (their policies let no connection through), so completing takes nothing from them: {}",
                        r.unreached.len(),
                        sides.legacy,
                        r.unreached.join(", ")
                    ));
                }
                if r.callers.is_empty() {
                    return Ok(());
                }
                let seen = r.callers.iter().filter(|c| c.seen_calling()).count();
                format!(
                    "{} workload(s) captured by ztunnel (ambient) can reach the legacy workloads it retires, and the weights never moved them (ztunnel applies no VirtualService); {seen} of them {} seen calling a legacy Service:\n{}",
                    r.callers.len(),
                    if seen == 1 { "is" } else { "are" },
                    ambient_reach::lines(&r.callers)
                        .iter()
                        .map(|l| format!("  {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            }
            Err(why) => why,
        },
        Err(why) => why,
    };
    if !anyway {
        return Err(refused(format!(
            "not completing {legacy}: {problem}\ncompleting scales the legacy workloads down, and their requests to `<service>.{legacy}` would fail: point them at the mesh side (`<service>.{mesh}.svc.cluster.local`), give them sidecars, or keep them out with a NetworkPolicy; or pass --ignore-ambient-callers to complete anyway",
            legacy = sides.legacy,
            mesh = sides.mesh
        )));
    }
    report.warnings.push(format!(
        "completing anyway (--ignore-ambient-callers): {problem}"
    ));
    Ok(())
}
