//! The last phase of a run: the engine proves the drafted candidates on the input
//! ([`super::proof`]); a candidate that would cut a connection in use is withheld with the
//! connection named, the rest are emitted as objects (with their ambient AuthorizationPolicy
//! companions, proven in turn), and the cuts made on purpose are reported.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use meshmove_netpol::view;
use serde_json::{Map, Value, json};

use super::proof::{self, Candidate, To, Use};
use super::run::{Drafts, Facts};
use super::{Cut, Draft, Generated, Generation, Output, Request, Withheld, authz, authz_only, authz_proof, unique_names};

/// Prove the candidates of `acc` on `model` (the input's) and write what survives to `out`.
pub(super) fn finish(facts: &Facts<'_>, model: view::Model, acc: Drafts, output: Output<'_>, out: &mut Generation) {
    let (req, ws) = (facts.req, &facts.ws);
    let Drafts { drafts, uses } = acc;
    let uses = &uses;
    // Prove: the input's engine model, before and with the candidates.
    if let Output::AuthorizationPolicies { mesh_root } = output {
        let mut model = model;
        model.cluster.istio_root_namespace = Some(mesh_root.to_string());
        authz_only::finish(drafts, ws, req, &model.cluster, uses, out);
        unique_names(&mut out.policies, req.release);
        out.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out.withheld.sort_by(|a, b| (&a.namespace, &a.subject).cmp(&(&b.namespace, &b.subject)));
        return;
    }
    let candidates: Vec<Candidate> =
        drafts.iter().map(|d| Candidate { subject: d.engine_ref.clone(), policy: typed(d, req), egress: d.egress }).collect();
    let verdict = proof::prove(&model.cluster, &candidates, uses);
    for (i, d) in drafts.into_iter().enumerate() {
        if let Some(why) = verdict.overridden.get(&i) {
            out.withheld.push(Withheld {
                subject: d.protects.clone(),
                namespace: d.namespace.clone(),
                reason: format!("no NetworkPolicy can isolate it: AdminNetworkPolicy rules come before NetworkPolicy and {why}"),
                isolate_with: "change that AdminNetworkPolicy rule (Deny, or Pass to leave the traffic to NetworkPolicy), then generate again".into(),
                egress: false,
                refuses: Vec::new(),
            });
            continue;
        }
        if let Some((u, ports)) = verdict.withhold.get(&i) {
            let reason = match uses.get(*u) {
                Some(u) => format!(
                    "its policy would cut {} -> {} on {} ({}), a connection the input shows in use",
                    u.from_name,
                    d.protects,
                    proof::ports_text(ports),
                    u.why
                ),
                None => "the reachability engine could not build the input with its policy".into(),
            };
            let reason = if d.egress { format!("egress stays open: {reason}") } else { reason };
            out.withheld.push(Withheld {
                subject: d.protects.clone(),
                namespace: d.namespace.clone(),
                reason,
                isolate_with: "add the connection to the policy by hand (the generator never cuts a connection it sees in use)".into(),
                egress: d.egress,
                refuses: Vec::new(),
            });
            continue;
        }
        let object = policy_object(&d, req);
        // ztunnel's AuthorizationPolicy goes with the ingress side only.
        let authorization = if d.ambient && !d.egress {
            let subject = ws.iter().find(|w| w.object.object_ref() == d.subject);
            match authz::companion(&d.name, &d.namespace, &req.labels, &d.spec, subject, ws, req.namespace) {
                Ok(ap) => Some(ap),
                Err(why) => {
                    out.notes.push(format!(
                        "{}: no AuthorizationPolicy goes with its NetworkPolicy ({why}): peers it admits reach every port of it through the ambient tunnel",
                        d.protects
                    ));
                    None
                }
            }
        } else {
            None
        };
        out.policies.push(Generated {
            name: d.name,
            namespace: d.namespace,
            object,
            protects: d.protects,
            subject: d.subject,
            admits: d.admits,
            egress: d.egress,
            authorization,
            refuses: Vec::new(),
        });
    }
    prove_companions(&model.cluster, &candidates, &verdict, uses, out);
    for (u, ports) in &verdict.cut {
        let u = &uses[*u];
        out.cuts.push(Cut {
            from: u.from_name.clone(),
            to: u.to.to_string(),
            ports: ports.clone(),
            reason: u.violation.clone().unwrap_or_default(),
            keep_with: format!(
                "networkPolicies.databaseClients: [{{database: {}, podSelector: {{matchLabels: ...}}}}] (dbiso: fix the violation, or --isolate only the databases you mean)",
                match &u.to {
                    To::Workload(w) => w.name.as_str(),
                    To::External(_) => "",
                }
            ),
        });
    }
    unique_names(&mut out.policies, req.release);
    out.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.withheld.sort_by(|a, b| (&a.namespace, &a.subject).cmp(&(&b.namespace, &b.subject)));
}

/// Withhold the ambient AuthorizationPolicy companions the engine cannot show to keep every
/// connection in use ([`authz_proof`]), each with a note saying which connection and why.
fn prove_companions(model: &meshmove_netpol::ClusterModel, candidates: &[Candidate], verdict: &proof::Verdict, uses: &[Use], out: &mut Generation) {
    if out.policies.iter().all(|g| g.authorization.is_none()) {
        return;
    }
    let policies: Vec<NetworkPolicy> = candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| !verdict.withhold.contains_key(i) && !verdict.overridden.contains_key(i))
        .map(|(_, c)| c.policy.clone())
        .collect();
    let mut at: Vec<usize> = Vec::new();
    let mut companions: Vec<authz_proof::Companion> = Vec::new();
    for (gi, g) in out.policies.iter().enumerate() {
        let Some(ap) = &g.authorization else { continue };
        let Some(c) = candidates.iter().find(|c| {
            c.policy.metadata.name.as_deref() == Some(g.name.as_str()) && c.subject.kind.as_str() == g.subject.kind && c.subject.name == g.subject.name
        }) else {
            continue;
        };
        let mut policy = ap.clone();
        if let Some(meta) = policy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(c.subject.namespace));
        }
        at.push(gi);
        companions.push(authz_proof::Companion { subject: c.subject.clone(), policy });
    }
    for (ci, lost) in authz_proof::prove(model, &policies, &companions, uses) {
        let g = &mut out.policies[at[ci]];
        g.authorization = None;
        let why = match super::refusals(&lost, uses, &g.protects) {
            Some(all) => super::refusals_text("cut", &all),
            None => "the reachability engine could not build the input with it".into(),
        };
        out.notes.push(format!(
            "{}: no AuthorizationPolicy goes with its NetworkPolicy ({why}): peers it admits reach every port of it through the ambient tunnel",
            g.protects
        ));
    }
}

/// The spec's `policyTypes` and the whole object, as it will be written.
fn policy_object(d: &Draft, req: &Request<'_>) -> Value {
    // podSelector, policyTypes, then the rules: the order people write them in.
    let types = vec![json!(if d.egress { "Egress" } else { "Ingress" })];
    let mut spec = Map::new();
    spec.insert("podSelector".into(), d.spec.get("podSelector").cloned().unwrap_or_else(|| json!({})));
    spec.insert("policyTypes".into(), Value::Array(types));
    for (k, v) in d.spec.iter().filter(|(k, _)| k.as_str() != "podSelector") {
        spec.insert(k.clone(), v.clone());
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(d.name));
    if !d.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(d.namespace));
    }
    metadata.insert("labels".into(), req.labels.clone());
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!("networking.k8s.io/v1"));
    object.insert("kind".into(), json!("NetworkPolicy"));
    object.insert("metadata".into(), Value::Object(metadata));
    object.insert("spec".into(), Value::Object(spec));
    Value::Object(object)
}

/// The candidate in the engine's types, in its namespace as the engine's model names it.
fn typed(d: &Draft, req: &Request<'_>) -> NetworkPolicy {
    let mut np: NetworkPolicy = serde_json::from_value(policy_object(d, req)).unwrap_or_default();
    np.metadata.namespace = Some(d.engine_ref.namespace.clone());
    np
}
