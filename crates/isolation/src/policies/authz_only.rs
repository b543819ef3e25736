//! AuthorizationPolicies alone ([`super::authorization_policies`], `enable --authz`): the
//! generator's rules per workload, written as the L4 `AuthorizationPolicy` of [`super::authz`]
//! for either data-plane mode, and proven on the engine with the NetworkPolicies as they are
//! (none is written with them).
//!
//! A policy is withheld, with the reason and the override, when
//!
//! * the generator cannot establish the workload's clients (said where the drafts are made);
//! * its rules cannot be expressed (a `matchExpressions` selector, an unresolved named port);
//! * no proxy will capture its pods (nothing would enforce it);
//! * another `ALLOW` or a `CUSTOM` policy already applies to its pods: a request is allowed when
//!   any `ALLOW` policy admits it, so a second one would admit what the first refuses, and a
//!   `CUSTOM` policy's external authorizer decides before `ALLOW` policies in ways the engine
//!   cannot know
//!   (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>, "the
//!   `CUSTOM`, `DENY` and `ALLOW` actions"); a `DENY` policy is judged by the proof like
//!   any other, and the tool's own earlier policy of the same name is replaced, not counted;
//! * a Service in front of its pods (or their namespace) is bound to a waypoint the input does
//!   not show (`istio.io/use-waypoint`, [`super::waypoints`], said where the drafts are made):
//!   traffic through a waypoint reaches the pods' ztunnel with the waypoint's identity, not the
//!   client's (<https://istio.io/latest/docs/ambient/usage/l4-policy/>, on policy enforced in
//!   two places); when the input shows the waypoint's pods, its principal is admitted instead;
//! * the engine shows it would refuse a connection in use ([`super::authz_proof`]): a client
//!   without an mTLS identity (not in the mesh, or a port whose effective PeerAuthentication
//!   mode is `DISABLE` at a sidecar) has no principal for `from.source.principals` to match
//!   (<https://istio.io/latest/docs/reference/config/security/authorization-policy/#Source>).
//!
//! The override (`--authz-isolate-anyway NAME`, [`PolicyOptions::isolate_anyway`]) writes the
//! workload's policy although its clients are not all known, another policy applies, or the
//! proof shows a cut. A policy withheld for cuts names every connection it would refuse (the
//! reason, and [`Withheld::refuses`]); written anyway, the same in a note and in
//! [`Generated::refuses`], so whoever overrides knows the whole cost.
//!
//! [`Withheld::refuses`]: super::Withheld::refuses
//! [`Generated::refuses`]: super::Generated::refuses
//!
//! [`PolicyOptions::isolate_anyway`]: super::PolicyOptions::isolate_anyway

use meshmove_model::workload::Workload;
use meshmove_netpol::{AuthzAction, ClusterModel, Engine, EngineOptions};
use serde_json::{Value, json};

use super::authz_proof::{self, Companion};
use super::proof::{Pods, Use};
use super::{Draft, Generated, Generation, Request, Withheld, authz, named_policy};

/// Name ending of the AuthorizationPolicies written alone: `<workload>-authz`.
pub const AUTHZ_SUFFIX: &str = "authz";

/// How to write a workload's AuthorizationPolicy although it is withheld.
pub(super) fn anyway(name: &str) -> String {
    format!("--authz-isolate-anyway {name}")
}

/// Turn the ingress drafts into proven AuthorizationPolicies (see the module docs).
pub(super) fn finish(
    drafts: Vec<Draft>,
    ws: &[Workload<'_>],
    req: &Request<'_>,
    model: &ClusterModel,
    uses: &[Use],
    out: &mut Generation,
) {
    let forced = |name: &str| req.options.isolate_anyway.iter().any(|n| n == name);
    let withhold = |d: &Draft, reason: String, isolate_with: String, out: &mut Generation| {
        out.withheld.push(Withheld {
            subject: d.protects.clone(),
            namespace: d.namespace.clone(),
            reason,
            isolate_with,
            egress: false,
            refuses: Vec::new(),
        })
    };
    let engine = match Engine::build_lenient(model, EngineOptions::default()) {
        Ok((engine, _)) => engine,
        Err(e) => {
            for d in drafts.iter().filter(|d| !d.egress) {
                withhold(
                    d,
                    format!("the reachability engine could not build the namespace ({e})"),
                    "fix what the engine names, then run again".into(),
                    out,
                );
            }
            return;
        }
    };
    let pods = Pods::new(&engine);
    let mut kept: Vec<(Draft, Companion)> = Vec::new();
    for d in drafts.into_iter().filter(|d| !d.egress) {
        let subject = ws.iter().find(|w| w.object.object_ref() == d.subject);
        let name = named_policy(req.release, &d.subject.name, AUTHZ_SUFFIX);
        let mut policy = match authz::companion(
            &name,
            &d.namespace,
            &req.labels,
            &d.spec,
            subject,
            ws,
            req.namespace,
        ) {
            Ok(p) => p,
            Err(why) => {
                withhold(
                    &d,
                    format!("no AuthorizationPolicy can express its rules: {why}"),
                    "write its AuthorizationPolicy by hand".into(),
                    out,
                );
                continue;
            }
        };
        let own = (d.engine_ref.namespace.clone(), name.clone());
        let mut enforced = false;
        let mut other: Option<String> = None;
        for &pod in pods.of(&d.engine_ref) {
            let Some(applying) = engine.authz_policies_of(pod) else {
                continue;
            };
            enforced = true;
            if let Some(p) = applying.iter().find(|p| {
                matches!(p.action, AuthzAction::Allow | AuthzAction::Custom)
                    && (p.namespace.clone(), p.name.clone()) != own
            }) {
                other = Some(match p.action {
                    AuthzAction::Custom => format!(
                        "{p} applies to its pods: its external authorizer decides before ALLOW policies, which the engine cannot know"
                    ),
                    _ => format!(
                        "{p} already applies to its pods: a request any ALLOW policy admits is allowed, so another would admit what that one refuses"
                    ),
                });
                break;
            }
        }
        if !enforced {
            withhold(&d, "no proxy will capture its pods once the namespace is on the mesh, so nothing would enforce its policy".into(), "none needed: it stays unguarded by AuthorizationPolicy".into(), out);
            continue;
        }
        if let Some(why) = other {
            if !forced(&d.subject.name) {
                withhold(&d, why, anyway(&d.subject.name), out);
                continue;
            }
            out.notes.push(format!(
                "{}: AuthorizationPolicy written anyway ({}): {why}",
                d.protects,
                anyway(&d.subject.name)
            ));
        }
        if let Some(meta) = policy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(d.engine_ref.namespace));
        }
        let companion = Companion {
            subject: d.engine_ref.clone(),
            policy,
        };
        kept.push((d, companion));
    }
    let companions: Vec<Companion> = kept
        .iter()
        .map(|(_, c)| Companion {
            subject: c.subject.clone(),
            policy: c.policy.clone(),
        })
        .collect();
    let cuts = authz_proof::prove(model, &[], &companions, uses);
    for (i, (d, c)) in kept.into_iter().enumerate() {
        let mut refuses = Vec::new();
        if let Some(lost) = cuts.get(&i) {
            let why = match super::refusals(lost, uses, &d.protects) {
                Some(all) => {
                    let why = super::refusals_text("refuse", &all);
                    refuses = all;
                    why
                }
                None => "the reachability engine could not build the namespace with it".into(),
            };
            if !forced(&d.subject.name) {
                out.withheld.push(Withheld {
                    subject: d.protects.clone(),
                    namespace: d.namespace.clone(),
                    reason: why,
                    isolate_with: anyway(&d.subject.name),
                    egress: false,
                    refuses,
                });
                continue;
            }
            out.notes.push(format!(
                "{}: AuthorizationPolicy written anyway ({}): {why}",
                d.protects,
                anyway(&d.subject.name)
            ));
        }
        let name = c
            .policy
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.policies.push(Generated {
            name,
            namespace: d.namespace,
            object: c.policy,
            protects: d.protects,
            subject: d.subject,
            admits: d.admits,
            egress: false,
            authorization: None,
            refuses,
        });
    }
}
