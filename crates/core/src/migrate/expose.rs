//! `expose`: one multi-host Ingress for the HTTP Services of a namespace, so every service is
//! reachable as `<service>.<domain>` without port-forwarding.
//!
//! The hosts-file lines are returned for the user to add; the tool never edits `/etc/hosts`.
//! The address in them is the ingress controller's load-balancer address when the inventory
//! shows one (a `LoadBalancer` Service with an ingress IP in one of the usual controller
//! namespaces), else `127.0.0.1` (a local cluster with a port mapping).

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use super::Route;
use super::{MigrateError, STEP_EXPOSE, service_routes};
use meshmove_model::inventory::{Inventory, kinds};
use meshmove_kube::plan::{Change, MANAGED_BY, Plan};

/// Name of the Ingress `expose` creates.
pub const INGRESS_NAME: &str = "mesh-migrate-expose";

/// Options of `expose`.
#[derive(Debug, Clone)]
pub struct ExposeOptions {
    /// Hosts are `<service>.<domain>`; default `<namespace>.local`.
    pub domain: Option<String>,
    /// `spec.ingressClassName`; `None` leaves the cluster's default class in charge.
    pub ingress_class: Option<String>,
    /// Per-service host overrides (`frontend` → `pyairtable.local`).
    pub hosts: BTreeMap<String, String>,
}

/// The plan and what it gives the user.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub plan: Plan,
    pub routes: Vec<Route>,
    /// Services left out, with the reason.
    pub skipped: Vec<String>,
    /// The address for the hosts file.
    pub address: String,
}

impl Exposure {
    /// `ADDRESS host host ...` lines, at most 8 hosts each (some resolvers read no more).
    pub fn hosts_lines(&self) -> Vec<String> {
        self.routes.chunks(8).map(|c| format!("{} {}", self.address, c.iter().map(|r| r.host.as_str()).collect::<Vec<_>>().join(" "))).collect()
    }
}

/// Build the `expose` plan for `namespace`.
pub fn plan(inventory: &Inventory, namespace: &str, options: &ExposeOptions) -> Result<Exposure, MigrateError> {
    let (routes, skipped) = service_routes(inventory, namespace, options.domain.as_deref(), &options.hosts)?;
    if routes.is_empty() {
        return Err(MigrateError::NoServices { namespace: namespace.to_string(), skipped });
    }
    let rules: Vec<Value> = routes
        .iter()
        .map(|r| {
            json!({"host": r.host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": r.service, "port": {"number": r.port}}}}]}})
        })
        .collect();
    let mut ingress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": INGRESS_NAME, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {"rules": rules}
    });
    if let Some(class) = &options.ingress_class {
        ingress["spec"]["ingressClassName"] = json!(class);
    }
    let mut plan = Plan::new(STEP_EXPOSE, namespace);
    plan.push(Change::Apply { object: ingress });
    Ok(Exposure { plan, routes, skipped, address: ingress_address(inventory) })
}

/// The ingress controller's external address, else `127.0.0.1`.
fn ingress_address(inventory: &Inventory) -> String {
    const CONTROLLERS: &[&str] = &["ingress-nginx", "istio-ingress", "istio-system", "traefik", "kube-system"];
    inventory
        .of(&kinds::SERVICE)
        .filter(|s| s.namespace.as_deref().is_some_and(|n| CONTROLLERS.contains(&n)))
        .filter(|s| s.value.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer"))
        .find_map(|s| {
            let ing = s.value.pointer("/status/loadBalancer/ingress/0")?;
            ing.get("ip").or_else(|| ing.get("hostname")).and_then(Value::as_str).map(str::to_string)
        })
        .unwrap_or_else(|| "127.0.0.1".to_string())
}
