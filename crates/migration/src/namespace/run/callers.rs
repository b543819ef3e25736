//! The callers the split misses ([`crate::namespace::callers`]), read from the cluster: every
//! pod and namespace, as the CNI node agent and its enablement rule see them.

use super::*;
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

/// `complete`: refused (unless `force`) while ambient callers may still reach the legacy
/// workloads it scales down, or while that cannot be told.
pub(super) async fn complete_check(
    conn: &Connection,
    sides: &Sides,
    force: bool,
    report: &mut Report,
) -> Result<(), NsError> {
    let problem = match ambient_callers(conn, sides).await? {
        Ok(c) if c.is_empty() => return Ok(()),
        Ok(c) => format!(
            "{} pod(s) captured by ztunnel (ambient) may call the legacy Services, and the weights never moved them (ztunnel applies no VirtualService): {}",
            c.iter().map(|x| x.pods).sum::<usize>(),
            callers::list(&c)
        ),
        Err(why) => why,
    };
    if !force {
        return Err(refused(format!(
            "not completing {legacy}: {problem}\ncompleting scales the legacy workloads down, and their requests to `<service>.{legacy}` would fail: point them at the mesh side (`<service>.{mesh}.svc.cluster.local`) or give them sidecars; or pass --force to complete anyway",
            legacy = sides.legacy,
            mesh = sides.mesh
        )));
    }
    report
        .warnings
        .push(format!("completing anyway (--force): {problem}"));
    Ok(())
}
