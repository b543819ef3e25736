//! External traffic against a cluster: reading the legacy Ingresses and HTTPRoutes, keeping the
//! gateway VirtualServices at the migration's weight, and telling whether an Ingress still takes
//! its hosts' traffic (the pure rules: [`crate::namespace::external`]).

use super::*;
use crate::namespace::external::{self, ExternalRoute, Switch};

/// How a note about unreadable Ingresses starts (`complete` refuses on it without `--force`).
pub(super) const INGRESSES_UNREAD: &str = "could not read Ingresses";

/// The legacy objects [`external::external`] reads (Services, Ingresses, HTTPRoutes when the
/// cluster serves them), and notes on what could not be read.
pub(super) async fn legacy_external(conn: &Connection, sides: &Sides) -> Result<(Vec<Value>, Vec<String>), NsError> {
    let inv = cluster::load(conn, &[&kinds::SERVICE, &kinds::INGRESS, &kinds::HTTP_ROUTE], &[], Some(&sides.legacy)).await?;
    let mut notes = Vec::new();
    if let Some(why) = inv.availability(&kinds::SERVICE) {
        return Err(refused(format!("cannot read services in namespace {}: {why:?}", sides.legacy)));
    }
    if let Some(why) = inv.availability(&kinds::INGRESS) {
        notes.push(format!("{INGRESSES_UNREAD} in {} ({why:?}): any there are not served by the Istio gateway, and whether they still take traffic cannot be told", sides.legacy));
    }
    if let Some(meshmove_model::inventory::Unavailable::Forbidden { message }) = inv.availability(&kinds::HTTP_ROUTE) {
        notes.push(format!("could not read HTTPRoutes in {} (forbidden: {message}): any there are not served by the Istio gateway", sides.legacy));
    }
    Ok((inv.objects().iter().map(|o| o.value.clone()).collect(), notes))
}

/// A route VirtualService of the mesh side at `weight` % (the split routes only; a shared
/// backend's single destination stays), its split routes carrying the route keys of `profile`
/// (as [`external::external`] writes them), as an object to apply.
pub fn reweighted(sides: &Sides, vs: &Value, weight: u8, profile: &routing::TrafficProfile) -> Value {
    let mut spec = vs.get("spec").cloned().unwrap_or_default();
    let w = u64::from(weight.min(100));
    for r in spec.get_mut("http").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(dests) = r.get_mut("route").and_then(Value::as_array_mut) else { continue };
        if dests.len() < 2 {
            continue;
        }
        for d in dests {
            let mesh = d.pointer("/destination/host").and_then(Value::as_str).is_some_and(|h| h.split('.').nth(1) == Some(sides.mesh.as_str()));
            d["weight"] = json!(if mesh { w } else { 100 - w });
        }
        profile.apply_to_route(r);
    }
    json!({
        "apiVersion": vs.get("apiVersion").cloned().unwrap_or(json!("networking.istio.io/v1")),
        "kind": "VirtualService",
        "metadata": {"name": name_of(vs), "namespace": sides.mesh, "labels": vs.pointer("/metadata/labels").cloned().unwrap_or(json!({}))},
        "spec": spec,
    })
}

fn is_external(v: &Value) -> bool {
    v.pointer("/metadata/labels").and_then(|l| l.get(crate::namespace::ROLE_LABEL)).and_then(Value::as_str) == Some(external::ROLE)
}

/// The external VirtualServices of the mesh side at `weight` %.
pub(super) async fn external_changes(conn: &Connection, sides: &Sides, weight: u8, profile: &routing::TrafficProfile) -> Result<Vec<Change>, NsError> {
    if !namespace_exists(conn, &sides.mesh).await? {
        return Ok(Vec::new());
    }
    let vss = objects(conn, &[&kinds::VIRTUAL_SERVICE], &sides.mesh).await?;
    Ok(vss.iter().filter(|v| is_external(v)).map(|v| Change::Apply { object: reweighted(sides, v, weight, profile) }).collect())
}

/// The ingress gateway Services (`istio: <selector>` in their selector) anywhere in the cluster,
/// or why they could not be listed.
pub(super) async fn gateway_services(conn: &Connection, selector: &str) -> Result<Result<Vec<Value>, String>, NsError> {
    let inv = cluster::load(conn, &[&kinds::SERVICE], &[&kinds::SERVICE], None).await?;
    if let Some(why) = inv.availability(&kinds::SERVICE) {
        return Ok(Err(format!("could not list Services in every namespace to find the Istio ingress gateway ({why:?})")));
    }
    Ok(Ok(inv.of(&kinds::SERVICE).filter(|s| external::is_gateway_service(&s.value, selector)).map(|s| s.value.clone()).collect()))
}

/// Where the external traffic stands, for `status` and `complete`.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStatus {
    /// The Ingresses and HTTPRoutes served by the Istio gateway, as `create` recorded them.
    pub routes: Vec<ExternalRoute>,
    /// Per legacy Ingress: its address against the gateway's.
    pub switches: Vec<Switch>,
    /// `namespace/name` of the ingress gateway Services found.
    pub gateway_services: Vec<String>,
    /// What the user must do, and what could not be told.
    pub notes: Vec<String>,
}

pub(super) async fn external_status(conn: &Connection, sides: &Sides, st: &NsState) -> Result<ExternalStatus, NsError> {
    let selector = st.gateway_selector.clone().unwrap_or_else(|| external::DEFAULT_SELECTOR.to_string());
    let (legacy, mut notes) = legacy_external(conn, sides).await?;
    let gw = gateway_services(conn, &selector).await?;
    let (gw_services, gw_ns) = match &gw {
        Ok(list) => (
            list.iter().map(|s| format!("{}/{}", s.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("?"), name_of(s))).collect::<Vec<_>>(),
            list.first().and_then(|s| s.pointer("/metadata/namespace").and_then(Value::as_str)).map(str::to_string),
        ),
        Err(why) => {
            notes.push(why.clone());
            (Vec::new(), None)
        }
    };
    if gw.as_ref().is_ok_and(Vec::is_empty) && !st.external.is_empty() {
        notes.push(format!("no Service selects the Istio ingress gateway pods (istio: {selector}): install the ingress gateway, or recreate with --gateway-selector"));
    }
    let switches = external::switches(&legacy, gw.as_deref().unwrap_or_default());
    for s in switches.iter().filter(|s| s.still_served && s.source.starts_with("HTTPRoute/")) {
        notes.push(format!(
            "switch {} to the Istio ingress gateway: it is served by its own Gateway; point DNS (or the load balancer) for {} at the Istio ingress gateway (istio: {selector}), then delete the HTTPRoute (or detach it from its Gateway)",
            s.source,
            s.hosts.join(", ")
        ));
    }
    for s in switches.iter().filter(|s| s.still_served && s.source.starts_with("Ingress/")) {
        let target = if s.gateway_addresses.is_empty() { format!("the Istio ingress gateway (istio: {selector})") } else { s.gateway_addresses.join(", ") };
        let now = if s.addresses.is_empty() { "publishes no address".to_string() } else { format!("is at {}", s.addresses.join(", ")) };
        notes.push(format!(
            "switch {} to the Istio ingress gateway: {} {now}; point DNS (or the load balancer) for {} at {target}, then delete the Ingress (its controller would keep sending traffic to {})",
            s.source,
            s.source,
            s.hosts.join(", "),
            sides.legacy
        ));
    }
    for r in st.external.iter().filter(|r| !r.tls_secrets.is_empty()) {
        notes.push(format!(
            "{}: the gateway's HTTPS servers read Secret {} from the ingress gateway's namespace ({}), not from {}: copy {} there before switching",
            r.source,
            r.tls_secrets.join(", "),
            gw_ns.as_deref().unwrap_or("where the gateway runs, usually istio-system"),
            sides.legacy,
            if r.tls_secrets.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok(ExternalStatus { routes: st.external.clone(), switches, gateway_services: gw_services, notes })
}

/// Ingresses and HTTPRoutes that still take traffic for Services `complete` would retire: one
/// line each, naming it and its hosts.
pub(super) fn complete_blockers(sides: &Sides, st: &NsState, legacy: &[Value], switches: &[Switch]) -> Vec<String> {
    let mut out = Vec::new();
    for obj in legacy.iter().filter(|o| matches!(kind_of(o), "Ingress" | "HTTPRoute")) {
        let source = format!("{}/{}", kind_of(obj), name_of(obj));
        let Some(sw) = switches.iter().find(|s| s.source == source && s.still_served) else { continue };
        let retired: Vec<String> = external::backend_services(obj).into_iter().filter(|s| st.services.contains(s)).collect();
        if retired.is_empty() {
            continue;
        }
        let at = if kind_of(obj) == "HTTPRoute" {
            "through its own Gateway".to_string()
        } else if sw.addresses.is_empty() {
            "at no published address".to_string()
        } else {
            format!("at {}", sw.addresses.join(", "))
        };
        out.push(format!(
            "{} {}/{} (hosts {}; {at}) still sends traffic to {} in {}, whose workloads `complete` scales down",
            kind_of(obj),
            sides.legacy,
            name_of(obj),
            sw.hosts.join(", "),
            retired.join(", "),
            sides.legacy
        ));
    }
    out
}

/// The external Gateways and VirtualServices for `create`, at weight 0, and the plan's lines.
pub(super) fn create_external(
    sides: &Sides,
    legacy: &[Value],
    routed: &[String],
    selector: &str,
    profile: &routing::TrafficProfile,
    report: &mut Report,
) -> external::External {
    let ext = external::external(sides, legacy, routed, 0, selector, profile);
    report.warnings.extend(ext.warnings.iter().cloned());
    for r in &ext.routes {
        report.notes.push(format!(
            "{} ({}) is served by Istio Gateway {}/{} (istio: {selector}) with the same split as the Services; switch DNS or the load balancer for its hosts to the Istio ingress gateway when ready (`ns status {}` says whether it looks done)",
            r.source,
            r.hosts.join(", "),
            sides.mesh,
            r.gateway,
            sides.legacy
        ));
        if !r.tls_secrets.is_empty() {
            report.notes.push(format!(
                "{}: TLS Secret {} is referenced by credentialName, which the ingress gateway reads from its own namespace (usually istio-system), not from {}: copy it there (nothing was copied)",
                r.source,
                r.tls_secrets.join(", "),
                sides.legacy
            ));
        }
    }
    ext
}
