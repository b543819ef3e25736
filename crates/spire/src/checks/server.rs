//! Server checks: the SPIRE server is there, ready, and configured readably.

use serde_json::Value;

use meshmove_model::inventory::{Object, kinds};
use crate::catalog;
use crate::context::{ServerConfigState, SpireContext};
use meshmove_model::findings::{CategoryDef, CategoryUnavailable, CheckDef, Detail, Verdict};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef {
        name: "spire-server",
        available: |cx| {
            if let Some(why) = cx.unread(&[&kinds::STATEFUL_SET, &kinds::DEPLOYMENT]) {
                Err(why)
            } else if cx.live() || cx.inventory.has(&kinds::STATEFUL_SET) || cx.inventory.has(&kinds::DEPLOYMENT) {
                Ok(())
            } else {
                Err(CategoryUnavailable::NotInInput("no StatefulSet or Deployment in the input"))
            }
        },
        checks: vec![
            CheckDef::new(&catalog::SERVER_FOUND, found),
            CheckDef::new(&catalog::SERVER_UNIQUE, unique).after(&[&catalog::SERVER_FOUND]),
            CheckDef::new(&catalog::SERVER_READY, ready).after(&[&catalog::SERVER_FOUND]),
            CheckDef::new(&catalog::SERVER_CONFIG_FOUND, config_found),
            CheckDef::new(&catalog::SERVER_CONFIG_VALID, config_valid).after(&[&catalog::SERVER_CONFIG_FOUND]),
        ],
    }
}

fn found(cx: &SpireContext<'_>) -> Verdict {
    if cx.servers.is_empty() {
        let place = cx.options.namespace.as_deref().map_or(String::new(), |ns| format!(" in namespace {ns}"));
        let how = cx.options.server_selector.as_ref().map_or_else(
            || "labels app=spire-server or app.kubernetes.io/name=server, or a spire-server container".to_string(),
            |s| format!("selector {s}"),
        );
        return Verdict::Fail(vec![Detail::new(format!("no StatefulSet or Deployment{place} matches {how}"))]);
    }
    Verdict::Pass(cx.servers.iter().map(|s| Detail::on(s, "SPIRE server")).collect())
}

fn unique(cx: &SpireContext<'_>) -> Verdict {
    if cx.servers.len() <= 1 {
        return Verdict::Pass(Vec::new());
    }
    Verdict::Fail(cx.servers.iter().map(|s| Detail::on(s, "looks like a SPIRE server")).collect())
}

/// What an object's status says about readiness.
pub enum Readiness {
    /// Manifests carry no status.
    NoStatus,
    Ready,
    NotReady(String),
}

/// `status.readyReplicas` against `spec.replicas`.
fn replica_readiness(o: &Object, live: bool) -> Readiness {
    let status = o.value.get("status").filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
    if status.is_none() && !live {
        return Readiness::NoStatus;
    }
    let want = o.value.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let ready = o.value.pointer("/status/readyReplicas").and_then(Value::as_i64).unwrap_or(0);
    if ready < want { Readiness::NotReady(format!("{ready}/{want} replicas ready")) } else { Readiness::Ready }
}

fn ready(cx: &SpireContext<'_>) -> Verdict {
    if cx.servers.is_empty() {
        return Verdict::Skip("no SPIRE server found".into());
    }
    let mut problems = Vec::new();
    let mut info = Vec::new();
    for s in &cx.servers {
        match replica_readiness(s, cx.live()) {
            Readiness::NotReady(p) => problems.push(Detail::on(s, p)),
            Readiness::Ready => info.push(Detail::on(s, "all replicas ready")),
            Readiness::NoStatus => {}
        }
    }
    if problems.is_empty() && info.is_empty() {
        return Verdict::Skip("the input has no status (manifests); readiness is checked on a live cluster".into());
    }
    Verdict::from_problems_or(problems, info)
}

fn config_found(cx: &SpireContext<'_>) -> Verdict {
    match &cx.server_config {
        ServerConfigState::Found { object, .. } => Verdict::Pass(vec![Detail::on(object, "holds server.conf")]),
        ServerConfigState::NotFound if cx.servers.is_empty() => Verdict::Skip("no SPIRE server found".into()),
        ServerConfigState::NotFound if !cx.inventory.has(&kinds::CONFIG_MAP) => {
            Verdict::Skip("no ConfigMap in the input".into())
        }
        ServerConfigState::NotFound => Verdict::Fail(
            cx.servers
                .iter()
                .map(|s| Detail::on(s, "no ConfigMap with a server.conf key next to this server"))
                .collect(),
        ),
    }
}

fn config_valid(cx: &SpireContext<'_>) -> Verdict {
    let ServerConfigState::Found { object, parsed } = &cx.server_config else {
        return Verdict::Skip("no server configuration found".into());
    };
    match parsed {
        Err(e) => Verdict::Fail(vec![Detail::on(object, e.to_string())]),
        Ok(c) => {
            let mut problems: Vec<Detail> = c.problems.iter().map(|p| Detail::on(object, p.clone())).collect();
            match &c.trust_domain {
                None => problems.push(Detail::on(object, "server.trust_domain is not set")),
                Some(td) => {
                    if let Err(e) = crate::template::validate_trust_domain(td) {
                        problems.push(Detail::on(object, format!("server.trust_domain `{td}`: {e}")));
                    }
                }
            }
            let info = c.trust_domain.iter().map(|td| Detail::on(object, format!("trust domain {td}"))).collect();
            Verdict::from_problems_or(problems, info)
        }
    }
}
