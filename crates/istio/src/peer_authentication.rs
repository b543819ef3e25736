//! The effective mutual-TLS mode of a workload port, from the PeerAuthentications in the mesh.
//!
//! `enable` must prove it never lowers a mode, `mtls strict` must prove it raises what it claims,
//! and `status` reports the mode per namespace. All three need Istio's exact precedence, which
//! has traps a casual reading misses. The rules, as istiod composes them for a sidecar
//! (`ComposePeerAuthentication` in istio/istio `pilot/pkg/security/authn/policy_applier.go`;
//! candidate policies from `getConfigsForWorkload` in `pilot/pkg/model/authentication.go`):
//!
//! - Three levels: a policy with a non-empty `selector.matchLabels` in the workload's namespace
//!   (workload level) beats the selector-less policy of that namespace, which beats the
//!   selector-less policy in the root namespace (mesh level). An empty `matchLabels` counts as
//!   no selector.
//! - A policy *with* a selector in the root namespace is ignored, for every workload, including
//!   those in the root namespace ("PeerAuthentication reference": policies with workload
//!   selectors are ignored when deployed in the root namespace).
//! - Several policies at one level: only the oldest applies (no merging); creation-time ties are
//!   broken by name, then namespace (`sortConfigByCreationTime`, `pilot/pkg/model/config.go`).
//! - `mtls` absent or `mode: UNSET` inherits from the level above; the default with no policy
//!   (or only UNSET ones) is PERMISSIVE.
//! - `portLevelMtls` is read from the selected workload-level policy only (Istio's validation
//!   rejects it elsewhere: `ValidatePeerAuthentication`, `pkg/config/validation/validation.go`).
//!   Keys are the workload's (container/target) port, not the Service port; an UNSET port entry
//!   inherits the workload-level result.
//!
//! This models sidecar enforcement. Ambient (ztunnel) does not support DISABLE.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Error, Labels};

mod policy;

pub use policy::{Mode, PeerAuthentication, PolicyRef};

/// Istio's default root namespace (MeshConfig `rootNamespace`).
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Ports of the sidecar itself (Envoy and pilot-agent: admin, outbound and inbound capture,
/// HBONE, merged metrics, health, Envoy's Prometheus endpoint), from Istio's "Application
/// Requirements" page, section "Ports used by Istio". Applications must not use them, and what
/// arrives on them is not the workload's inbound traffic: 15020, 15021 and 15090 are excluded from
/// the inbound redirect (`istio-iptables -d 15090,15021,15020` in the injected init container), so
/// PeerAuthentication does not govern them. A pod's ports list them only because the injected
/// `istio-proxy` container declares them.
pub const PROXY_PORTS: [u16; 8] = [15000, 15001, 15004, 15006, 15008, 15020, 15021, 15090];

/// The level a policy applies at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Mesh,
    Namespace,
    Workload,
}

/// What decided an effective mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// No applicable policy sets a mode (none exists, or all are UNSET): PERMISSIVE.
    Default,
    Policy {
        policy: PolicyRef,
        level: Level,
    },
}

/// The effective mode for a workload port (or a namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Effective {
    pub mode: Mode,
    pub from: Source,
    /// Decided by a `portLevelMtls` entry of the workload-level policy.
    pub port_override: bool,
}

/// Why a policy never takes effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// It has a selector but lives in the root namespace.
    SelectorInRootNamespace,
    /// A mesh- or namespace-wide policy in a namespace that already has an older one.
    ShadowedBy(PolicyRef),
}

/// A workload port whose effective mode is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    /// The pod labels.
    pub labels: Labels,
    /// The container (target) port.
    pub port: u16,
}

/// An effective mode that differs between two policy sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub target: Target,
    pub before: Effective,
    pub after: Effective,
}

impl Change {
    pub fn lowered(&self) -> bool {
        self.after.mode < self.before.mode
    }

    pub fn raised(&self) -> bool {
        self.after.mode > self.before.mode
    }
}

/// All PeerAuthentications of a mesh, in Istio's precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuthentications {
    root_namespace: String,
    policies: Vec<PeerAuthentication>,
}

impl PeerAuthentications {
    pub fn new(root_namespace: impl Into<String>, policies: impl IntoIterator<Item = PeerAuthentication>) -> Self {
        let mut policies: Vec<_> = policies.into_iter().collect();
        policies.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        PeerAuthentications { root_namespace: root_namespace.into(), policies }
    }

    /// Parses PeerAuthentication objects; the first malformed one is an error.
    pub fn from_values<'a>(
        root_namespace: impl Into<String>,
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self, Error> {
        let policies = objects.into_iter().map(PeerAuthentication::from_value).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(root_namespace, policies))
    }

    pub fn root_namespace(&self) -> &str {
        &self.root_namespace
    }

    /// The policies, oldest first.
    pub fn policies(&self) -> &[PeerAuthentication] {
        &self.policies
    }

    /// The effective mode for `port` (a container port) of a workload with `labels` in `namespace`.
    pub fn effective(&self, namespace: &str, labels: &Labels, port: u16) -> Effective {
        self.resolve(namespace, Some((labels, port)))
    }

    /// The namespace-wide effective mode: the namespace's selector-less policy over the mesh's.
    pub fn namespace_mode(&self, namespace: &str) -> Effective {
        self.resolve(namespace, None)
    }

    fn resolve(&self, namespace: &str, workload: Option<(&Labels, u16)>) -> Effective {
        let root = self.root_namespace.as_str();
        let first = |pred: &dyn Fn(&PeerAuthentication) -> bool| self.policies.iter().find(|p| pred(p));
        // Only the workload's namespace and the root namespace are consulted.
        let local = |p: &PeerAuthentication| namespace != root && p.policy.namespace == namespace;
        let mesh = first(&|p| p.policy.namespace == root && p.selector.is_none());
        let ns = first(&|p| local(p) && p.selector.is_none());
        let selects = |p: &PeerAuthentication, labels: &Labels| {
            p.selector.as_ref().is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
        };
        let wl = workload.and_then(|(labels, _)| first(&|p| local(p) && selects(p, labels)));

        let mut out = Effective { mode: Mode::Permissive, from: Source::Default, port_override: false };
        for (policy, level) in [(mesh, Level::Mesh), (ns, Level::Namespace), (wl, Level::Workload)] {
            if let Some(p) = policy
                && let Some(mode) = p.mode
            {
                out =
                    Effective { mode, from: Source::Policy { policy: p.policy.clone(), level }, port_override: false };
            }
        }
        if let (Some(p), Some((_, port))) = (wl, workload)
            && let Some(Some(mode)) = p.port_level.get(&port)
        {
            let from = Source::Policy { policy: p.policy.clone(), level: Level::Workload };
            out = Effective { mode: *mode, from, port_override: true };
        }
        out
    }

    /// Policies that can never take effect, and why.
    pub fn ignored(&self) -> Vec<(&PeerAuthentication, Ignored)> {
        let mut wide: BTreeMap<&str, &PolicyRef> = BTreeMap::new();
        let mut out = Vec::new();
        for p in &self.policies {
            if p.selector.is_some() {
                if p.policy.namespace == self.root_namespace {
                    out.push((p, Ignored::SelectorInRootNamespace));
                }
            } else if let Some(older) = wide.get(p.policy.namespace.as_str()) {
                out.push((p, Ignored::ShadowedBy((*older).clone())));
            } else {
                wide.insert(&p.policy.namespace, &p.policy);
            }
        }
        out
    }

    /// This set with `proposed` created or updated. An update keeps the existing object's
    /// creation time when `proposed` has none, as the API server does.
    pub fn apply(&self, mut proposed: PeerAuthentication) -> Self {
        let existing = self.policies.iter().find(|p| p.policy == proposed.policy);
        if proposed.created.is_none() {
            proposed.created = existing.and_then(|p| p.created);
        }
        let mut policies: Vec<_> = self.policies.iter().filter(|p| p.policy != proposed.policy).cloned().collect();
        policies.push(proposed);
        Self::new(self.root_namespace.clone(), policies)
    }

    /// This set without `policy`.
    pub fn remove(&self, policy: &PolicyRef) -> Self {
        let kept = self.policies.iter().filter(|p| p.policy != *policy).cloned();
        Self::new(self.root_namespace.clone(), kept)
    }

    /// The targets whose effective mode differs between `self` and `after`.
    pub fn compare(&self, after: &PeerAuthentications, targets: &[Target]) -> Vec<Change> {
        targets
            .iter()
            .filter_map(|t| {
                let before = self.effective(&t.namespace, &t.labels, t.port);
                let after = after.effective(&t.namespace, &t.labels, t.port);
                (before.mode != after.mode).then(|| Change { target: t.clone(), before, after })
            })
            .collect()
    }

    /// The targets whose effective mode `proposed` (new or changed) would change.
    pub fn changes(&self, proposed: PeerAuthentication, targets: &[Target]) -> Vec<Change> {
        self.compare(&self.apply(proposed), targets)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pa(ns: &str, name: &str, created: Option<&str>, spec: Value) -> Value {
        let mut meta = json!({"namespace": ns, "name": name});
        if let Some(t) = created {
            meta["creationTimestamp"] = json!(t);
        }
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": meta, "spec": spec})
    }

    fn mode(m: &str) -> Value {
        json!({"mtls": {"mode": m}})
    }

    fn set(objects: &[Value]) -> PeerAuthentications {
        PeerAuthentications::from_values(DEFAULT_ROOT_NAMESPACE, objects).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn from(ns: &str, name: &str, level: Level) -> Source {
        Source::Policy { policy: PolicyRef { namespace: ns.into(), name: name.into() }, level }
    }

    const T1: Option<&str> = Some("2024-01-01T00:00:00Z");
    const T2: Option<&str> = Some("2024-02-01T00:00:00Z");

    #[test]
    fn default_is_permissive() {
        let e = set(&[]).effective("shop", &labels(&[]), 8080);
        assert_eq!(e, Effective { mode: Mode::Permissive, from: Source::Default, port_override: false });
    }

    #[test]
    fn workload_beats_namespace_beats_mesh() {
        let s = set(&[
            pa("istio-system", "default", T1, mode("STRICT")),
            pa("shop", "default", T1, mode("DISABLE")),
            pa("shop", "api", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": "PERMISSIVE"}})),
        ]);
        let api = s.effective("shop", &labels(&[("app", "api"), ("v", "1")]), 8080);
        assert_eq!((api.mode, api.from), (Mode::Permissive, from("shop", "api", Level::Workload)));
        let web = s.effective("shop", &labels(&[("app", "web")]), 8080);
        assert_eq!((web.mode, web.from), (Mode::Disable, from("shop", "default", Level::Namespace)));
        let other = s.effective("blog", &labels(&[("app", "api")]), 8080);
        assert_eq!((other.mode, other.from), (Mode::Strict, from("istio-system", "default", Level::Mesh)));
        assert_eq!(s.namespace_mode("shop").mode, Mode::Disable);
        assert_eq!(s.namespace_mode("blog").mode, Mode::Strict);
    }

    #[test]
    fn empty_match_labels_is_namespace_wide() {
        let s = set(&[pa("shop", "wide", T1, json!({"selector": {"matchLabels": {}}, "mtls": {"mode": "STRICT"}}))]);
        assert_eq!(s.namespace_mode("shop").from, from("shop", "wide", Level::Namespace));
    }

    #[test]
    fn selector_policies_in_the_root_namespace_are_ignored() {
        let sel = json!({"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": "STRICT"}});
        let s = set(&[pa("istio-system", "api", T1, sel.clone()), pa("istio-system", "gw", T1, sel)]);
        let api = labels(&[("app", "api")]);
        assert_eq!(s.effective("shop", &api, 80).from, Source::Default);
        // Not even for workloads in the root namespace itself.
        assert_eq!(s.effective("istio-system", &api, 80).from, Source::Default);
        let ignored: Vec<_> = s.ignored().into_iter().map(|(p, why)| (p.policy.name.clone(), why)).collect();
        assert_eq!(
            ignored,
            [("api".into(), Ignored::SelectorInRootNamespace), ("gw".into(), Ignored::SelectorInRootNamespace)]
        );
        // A custom root namespace moves the mesh level.
        let s = PeerAuthentications::from_values("mesh-root", &[pa("mesh-root", "d", T1, mode("STRICT"))]).unwrap();
        assert_eq!(s.namespace_mode("shop").from, from("mesh-root", "d", Level::Mesh));
        assert_eq!(s.namespace_mode("mesh-root").from, from("mesh-root", "d", Level::Mesh));
    }

    #[test]
    fn oldest_wins_at_one_level_then_name() {
        let s = set(&[pa("shop", "new", T2, mode("DISABLE")), pa("shop", "old", T1, mode("STRICT"))]);
        assert_eq!(s.namespace_mode("shop").from, from("shop", "old", Level::Namespace));
        let shadowed: Vec<_> = s.ignored().into_iter().map(|(p, why)| (p.policy.name.clone(), why)).collect();
        let old = PolicyRef { namespace: "shop".into(), name: "old".into() };
        assert_eq!(shadowed, [("new".to_string(), Ignored::ShadowedBy(old))]);
        // Same second: name order.
        let s = set(&[pa("shop", "b", T1, mode("DISABLE")), pa("shop", "a", T1, mode("STRICT"))]);
        assert_eq!(s.namespace_mode("shop").mode, Mode::Strict);
        // Offsets are compared as instants: 00:30-01:00 is after 01:00Z.
        let s = set(&[
            pa("shop", "a", Some("2024-01-01T00:30:00-01:00"), mode("DISABLE")),
            pa("shop", "b", Some("2024-01-01T01:00:00Z"), mode("STRICT")),
        ]);
        assert_eq!(s.namespace_mode("shop").mode, Mode::Strict);
        // Not yet created: newer than any existing policy.
        let s = set(&[pa("shop", "a", None, mode("DISABLE")), pa("shop", "z", T2, mode("STRICT"))]);
        assert_eq!(s.namespace_mode("shop").mode, Mode::Strict);
        // Workload level: the oldest matching policy, with no merging of the newer one's ports.
        let s = set(&[
            pa("shop", "w1", T1, json!({"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": "STRICT"}})),
            pa(
                "shop",
                "w2",
                T2,
                json!({"selector": {"matchLabels": {"tier": "be"}}, "portLevelMtls": {"80": {"mode": "DISABLE"}}}),
            ),
        ]);
        let e = s.effective("shop", &labels(&[("app", "api"), ("tier", "be")]), 80);
        assert_eq!((e.mode, e.port_override), (Mode::Strict, false));
        assert_eq!(s.effective("shop", &labels(&[("tier", "be")]), 80).mode, Mode::Disable);
    }

    #[test]
    fn unset_inherits_from_the_level_above() {
        let sel = |m: &str| json!({"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": m}});
        let api = labels(&[("app", "api")]);
        let s = set(&[
            pa("istio-system", "m", T1, mode("STRICT")),
            pa("shop", "ns", T1, mode("UNSET")),
            pa("shop", "w", T1, sel("UNSET")),
        ]);
        assert_eq!(s.effective("shop", &api, 80).from, from("istio-system", "m", Level::Mesh));
        // `mtls` absent is UNSET too; a mesh UNSET falls back to the PERMISSIVE default.
        let s = set(&[pa("istio-system", "m", T1, json!({})), pa("shop", "ns", T1, json!({"mtls": {}}))]);
        assert_eq!(
            s.effective("shop", &api, 80),
            Effective { mode: Mode::Permissive, from: Source::Default, port_override: false }
        );
    }

    #[test]
    fn port_level_overrides_only_its_port() {
        let s = set(&[
            pa("shop", "default", T1, mode("STRICT")),
            pa(
                "shop",
                "api",
                T1,
                json!({
                    "selector": {"matchLabels": {"app": "api"}},
                    "portLevelMtls": {"8080": {"mode": "DISABLE"}, "9090": {"mode": "UNSET"}, "9091": {}}
                }),
            ),
        ]);
        let api = labels(&[("app", "api")]);
        let e = s.effective("shop", &api, 8080);
        assert_eq!(
            e,
            Effective { mode: Mode::Disable, from: from("shop", "api", Level::Workload), port_override: true }
        );
        // UNSET ports and other ports inherit the workload level, here itself inherited.
        for port in [9090, 9091, 80] {
            let e = s.effective("shop", &api, port);
            assert_eq!(
                e,
                Effective { mode: Mode::Strict, from: from("shop", "default", Level::Namespace), port_override: false }
            );
        }
        // Not the namespace-wide mode.
        assert_eq!(s.namespace_mode("shop").mode, Mode::Strict);
    }

    fn target(ns: &str, app: &str, port: u16) -> Target {
        Target { namespace: ns.into(), labels: labels(&[("app", app)]), port }
    }

    #[test]
    fn changes_detect_a_lowered_mode() {
        // `enable` proposing a namespace PERMISSIVE under a STRICT mesh lowers every port.
        let s = set(&[pa("istio-system", "default", T1, mode("STRICT"))]);
        let proposed = PeerAuthentication::from_value(&pa("shop", "default", None, mode("PERMISSIVE"))).unwrap();
        let targets = [target("shop", "api", 8080), target("blog", "web", 80)];
        let changes = s.changes(proposed, &targets);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].target, targets[0]);
        assert!(changes[0].lowered() && !changes[0].raised());
        assert_eq!((changes[0].before.mode, changes[0].after.mode), (Mode::Strict, Mode::Permissive));
    }

    #[test]
    fn changes_show_what_strict_does_not_reach() {
        let s = set(&[pa(
            "shop",
            "api",
            T1,
            json!({
                "selector": {"matchLabels": {"app": "api"}}, "portLevelMtls": {"9090": {"mode": "DISABLE"}}
            }),
        )]);
        let proposed = PeerAuthentication::from_value(&pa("shop", "default", None, mode("STRICT"))).unwrap();
        let targets = [target("shop", "api", 8080), target("shop", "api", 9090)];
        let changes = s.changes(proposed.clone(), &targets);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].raised());
        assert_eq!(s.apply(proposed).effective("shop", &targets[1].labels, 9090).mode, Mode::Disable);
    }

    #[test]
    fn a_new_namespace_policy_behind_an_older_one_changes_nothing() {
        let s = set(&[pa("shop", "legacy", T1, mode("PERMISSIVE"))]);
        let proposed = PeerAuthentication::from_value(&pa("shop", "default", None, mode("STRICT"))).unwrap();
        assert!(s.changes(proposed, &[target("shop", "api", 80)]).is_empty());
        // Updating the existing one in place keeps its age and takes effect.
        let updated = PeerAuthentication::from_value(&pa("shop", "legacy", None, mode("STRICT"))).unwrap();
        let after = s.apply(updated);
        assert_eq!(after.policies()[0].created, s.policies()[0].created);
        assert_eq!(after.namespace_mode("shop").mode, Mode::Strict);
        let removed = s.remove(&PolicyRef { namespace: "shop".into(), name: "legacy".into() });
        assert!(removed.policies().is_empty());
    }
}
