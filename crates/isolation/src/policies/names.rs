//! Names of generated policies (valid, unique per namespace) and the release a stream's objects
//! belong to.

use std::collections::{BTreeMap, BTreeSet};

use meshmove_model::inventory::Inventory;
use meshmove_model::workload::workloads;
use serde_json::{Value, json};

use super::{Generated, RELEASE_LABEL, authz_only};

/// Name endings of the two kinds of generated policy.
pub const INGRESS_SUFFIX: &str = "ingress";
pub const EGRESS_SUFFIX: &str = "egress";

/// `<release>-<workload>-ingress`, without doubling a release prefix the workload already has,
/// a valid name of at most 63 characters ([`generated_name`]).
pub fn policy_name(release: &str, workload: &str) -> String {
    named_policy(release, workload, INGRESS_SUFFIX)
}

/// `<release>-<workload>-<suffix>` ([`policy_name`] for `ingress`, the egress policy's name for
/// `egress`).
pub fn named_policy(release: &str, workload: &str, suffix: &str) -> String {
    let base = if release.is_empty() || workload == release || workload.starts_with(&format!("{release}-")) {
        workload.to_string()
    } else {
        format!("{release}-{workload}")
    };
    meshmove_model::names::generated_name_ending(&base, suffix)
}

/// Two objects of different kinds may share a name (a Deployment and a StatefulSet `api`, a
/// workload and a CloudNativePG cluster), and so would their policies: a release holding two
/// NetworkPolicies of one name does not install. The first keeps the name; later ones get their
/// kind in it.
pub(super) fn unique_names(out: &mut [Generated], release: &str) {
    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for g in out.iter_mut() {
        if taken.insert((g.namespace.clone(), g.name.clone())) {
            continue;
        }
        let (kind, name) = g.protects.split_once('/').unwrap_or(("", g.protects.as_str()));
        let base = format!("{name}-{}", kind.to_ascii_lowercase());
        let suffix = if g.object.get("kind").and_then(Value::as_str) == Some("AuthorizationPolicy") {
            authz_only::AUTHZ_SUFFIX
        } else if g.egress {
            EGRESS_SUFFIX
        } else {
            INGRESS_SUFFIX
        };
        let mut candidate = named_policy(release, &base, suffix);
        let mut n = 2;
        while taken.contains(&(g.namespace.clone(), candidate.clone())) {
            candidate = named_policy(release, &format!("{base}-{n}"), suffix);
            n += 1;
        }
        taken.insert((g.namespace.clone(), candidate.clone()));
        for object in std::iter::once(&mut g.object).chain(g.authorization.as_mut()) {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), json!(candidate));
            }
        }
        g.name = candidate;
    }
}

/// The release name the stream belongs to: the most common `app.kubernetes.io/instance` label
/// (then Helm's older `release` label) of its workloads.
pub fn infer_release(inventory: &Inventory) -> Option<String> {
    let ws = workloads(inventory);
    most_common_first(ws.iter().filter_map(|w| release_label(w.object))).into_iter().next().map(|(name, _)| name)
}

/// The release an object says it belongs to: its `app.kubernetes.io/instance` label, else Helm's
/// older `release` label.
pub fn release_label(object: &meshmove_model::inventory::Object) -> Option<&str> {
    release_label_of(&object.value)
}

/// [`release_label`] of an object's value (for callers that have not built the object).
pub fn release_label_of(value: &Value) -> Option<&str> {
    let labels = value.get("metadata")?.get("labels")?;
    labels.get(RELEASE_LABEL).and_then(Value::as_str).or_else(|| labels.get("release")?.as_str())
}

/// Distinct names with their counts, the most common first, ties by name.
pub fn most_common_first<'a>(names: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().map(|(name, n)| (name.to_string(), n)).collect();
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}
