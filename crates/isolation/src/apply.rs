//! `apply`: send the generated policies with server-side apply.
//!
//! Server-side apply with the field manager `kubectl-dbiso` makes re-runs idempotent and leaves
//! fields other managers set alone. `dbiso` never forces: when another manager (a Helm release,
//! a GitOps controller, `kubectl apply`) owns a field it would change, the API server answers
//! 409 with the conflicting manager's name, and the run stops with that message rather than
//! taking the field over behind the owner's back.
//!
//! Each object is read first, to report `created`, `configured` or `unchanged` as kubectl does.
//! With `dry_run` every write carries `dryRun=All`: the server validates and admits the objects
//! and persists nothing.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::generate::{FIELD_MANAGER, Generated};
use meshmove_kube::cluster::{ClusterError, Connection};

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// One applied object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub namespace: String,
    pub name: String,
    pub outcome: Outcome,
    pub dry_run: bool,
}

const RESOURCE: &str = "networkpolicies.networking.k8s.io";

fn error(conn: &Connection, verb: &'static str, ns: &str, name: &str, e: kube::Error) -> ClusterError {
    match &e {
        kube::Error::Api(status) if status.code == 401 => {
            ClusterError::Unauthorized { context: conn.context.clone(), code: 401, message: status.message.clone(), source: e }
        }
        kube::Error::Api(status) => {
            let mut message = format!("{} {}", status.code, status.message);
            if status.code == 409 {
                message.push_str(" (dbiso does not force: change or remove the other manager's fields, or delete the policy, then rerun)");
            }
            ClusterError::Api { verb, resource: format!("{RESOURCE} {ns}/{name}"), message, source: e }
        }
        _ => ClusterError::Unreachable { context: conn.context.clone(), source: e },
    }
}

/// The parts of a policy `dbiso` sets, to tell `configured` from `unchanged`.
fn owned_view(v: &Value) -> (Value, Value) {
    (v.pointer("/metadata/labels").cloned().unwrap_or(Value::Null), v.get("spec").cloned().unwrap_or(Value::Null))
}

/// Apply the policies, in order; stops at the first error.
pub async fn apply(conn: &Connection, policies: &[Generated], dry_run: bool) -> Result<Vec<Applied>, ClusterError> {
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.dry_run = dry_run;
    let mut out = Vec::new();
    for p in policies {
        let api: Api<NetworkPolicy> = Api::namespaced(conn.client.clone(), &p.namespace);
        let before = api.get_opt(&p.name).await.map_err(|e| error(conn, "get", &p.namespace, &p.name, e))?;
        let after = api
            .patch(&p.name, &params, &Patch::Apply(&p.object))
            .await
            .map_err(|e| error(conn, "apply", &p.namespace, &p.name, e))?;
        let outcome = match before {
            None => Outcome::Created,
            Some(b) => {
                let (b, a) = (serde_json::to_value(&b).unwrap_or_default(), serde_json::to_value(&after).unwrap_or_default());
                if owned_view(&b) == owned_view(&a) { Outcome::Unchanged } else { Outcome::Configured }
            }
        };
        out.push(Applied { namespace: p.namespace.clone(), name: p.name.clone(), outcome, dry_run });
    }
    Ok(out)
}
