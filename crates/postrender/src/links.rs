//! Which objects outside a release group its policy generation must see, so that each object
//! belongs to one group and the generator's proof still sees every connection that crosses
//! groups.
//!
//! A stream of several releases is generated one release group at a time (`release_groups` in
//! the crate root). An object belongs to exactly one group: its release's, or, for an unlabelled
//! workload or CloudNativePG cluster, the most common release's. Objects that belong to none (no
//! release label, or the label of a release without workloads: a shared Secret, a Service, an
//! Ingress, a NetworkPolicy) are the *pool*. A group's generation reads its own objects plus its
//! *context*, found here from what every object names and selects:
//!
//! * pool objects linked to the group's objects: one names the other (a Secret a workload reads,
//!   a Service a workload calls, an Ingress's backend), or a label selector of the pool object
//!   (a Service's, a NetworkPolicy's, a monitor's) holds only label pairs the group's objects
//!   carry; a pool object with a selector that may select by anything else (empty,
//!   `matchExpressions`), and AdminNetworkPolicies, are context for every group;
//! * workloads of other groups that name one of those objects, with the Secrets, ConfigMaps and
//!   Namespaces they name: the callers of the group's Services and the clients of its databases,
//!   which the generator admits and its proof checks (`policies::generate_with_context`: they are
//!   clients, never subjects);
//! * with egress isolation, the Services of other groups the group's workloads name, and the
//!   workloads those Services may select: the callees its egress rules must admit.
//!
//! "Names" is read generously, so that the context is a superset of what the generator looks
//! up: every word of every string of an object (Secrets' decoded values included), split at
//! anything that cannot be in a Kubernetes name, is compared with every object's name, and
//! selectors are compared by label pairs, ignoring namespaces. A superset costs reading, never
//! exactness. Each object is read once for its own group, and again only where it is linked, so
//! the work grows with the stream and the connections across groups, not with the number of
//! groups times the pool.

use std::collections::{BTreeSet, HashMap};

use meshmove_isolation::owners;
use meshmove_model::workload::template_pointer;
use serde_json::Value;

/// What the first pass records of an object for linking (hashes, no text kept).
#[derive(Debug, Default)]
pub(super) struct Facts {
    /// The names it is known by: `metadata.name`, and for a CloudNativePG cluster the names of
    /// the Services and Secrets its operator creates.
    names: Vec<u64>,
    /// Every name-like word of its strings, sorted and unique.
    words: Vec<u64>,
    /// Its label pairs (metadata and pod template).
    labels: Vec<u64>,
    /// Its label selectors' pairs (not of workloads: their selectors select their own pods).
    selectors: Vec<Vec<u64>>,
    /// Context for every group: a selector that selects by more than label pairs, or a kind
    /// that applies cluster-wide.
    global: bool,
    class: Class,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Read by name by the workloads that name it (a Secret, a ConfigMap) or the namespace of
    /// the workloads that name it.
    Input,
    Service,
    #[default]
    Other,
}

/// FNV-1a over the lower-cased bytes: names and DNS names compare case-insensitively here.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.iter() {
            h ^= u64::from(b.to_ascii_lowercase());
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The words of `s` that could be (part of) an object's name: split at every character that
/// cannot be in a DNS subdomain, and again at dots (`api.team.svc:80` gives `api.team.svc`,
/// `api`, `team`, `svc`, `80`).
fn words_of(s: &str, out: &mut Vec<u64>) {
    let bytes = s.as_bytes();
    let name_char =
        |b: u8, dots: bool| b.is_ascii_alphanumeric() || b == b'-' || (dots && b == b'.');
    for dots in [true, false] {
        let mut start = None;
        for (i, &b) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
            match (name_char(b, dots) && i < bytes.len(), start) {
                (true, None) => start = Some(i),
                (false, Some(from)) => {
                    out.push(hash(&[&bytes[from..i]]));
                    start = None;
                }
                _ => {}
            }
        }
    }
}

fn strings(v: &Value, out: &mut Vec<u64>) {
    match v {
        Value::String(s) => words_of(s, out),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

fn label_pairs(v: Option<&Value>, out: &mut Vec<u64>) {
    for (k, val) in v.and_then(Value::as_object).into_iter().flatten() {
        if let Some(val) = val.as_str() {
            out.push(hash(&[k.as_bytes(), val.as_bytes()]));
        }
    }
}

/// Selectors anywhere in `v`: `matchLabels` maps; a selector-like key whose value is empty or
/// has `matchExpressions` makes the object global.
fn selectors(v: &Value, out: &mut Vec<Vec<u64>>, global: &mut bool) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| selectors(i, out, global)),
        Value::Object(map) => {
            for (k, val) in map {
                if k == "matchLabels" {
                    let mut pairs = Vec::new();
                    label_pairs(Some(val), &mut pairs);
                    out.push(pairs);
                } else if matches!(k.as_str(), "podSelector" | "selector" | "namespaceSelector")
                    && let Some(sel) = val.as_object()
                    && (sel.is_empty() || sel.contains_key("matchExpressions"))
                {
                    *global = true;
                }
                selectors(val, out, global);
            }
        }
        _ => {}
    }
}

impl Facts {
    /// The facts of a parsed object of `kind`; `workload`: a top-level workload.
    pub(super) fn of(value: &Value, kind: &str, workload: bool) -> Facts {
        let mut f = Facts::default();
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        f.names.push(hash(&[name.as_bytes()]));
        let group = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|a| a.rsplit_once('/'))
            .map_or("", |(g, _)| g);
        if group == "postgresql.cnpg.io" && kind == "Cluster" {
            // The operator's Services (`-rw`, `-ro`, `-r`) and Secrets (`-app`, `-superuser`):
            // https://cloudnative-pg.io/documentation/current/service_management/ and
            // https://cloudnative-pg.io/documentation/current/applications/
            for suffix in ["-rw", "-ro", "-r", "-app", "-superuser"] {
                f.names.push(hash(&[format!("{name}{suffix}").as_bytes()]));
            }
        }
        strings(value, &mut f.words);
        if kind == "Secret" {
            for v in owners::secret_data(value).values() {
                words_of(v, &mut f.words);
            }
        }
        f.words.sort_unstable();
        f.words.dedup();
        label_pairs(value.pointer("/metadata/labels"), &mut f.labels);
        if let Some(ptr) = template_pointer(kind) {
            label_pairs(
                value.pointer(&format!("{ptr}/metadata/labels")),
                &mut f.labels,
            );
        }
        if !workload {
            if kind == "Service" {
                let mut pairs = Vec::new();
                label_pairs(value.pointer("/spec/selector"), &mut pairs);
                if !pairs.is_empty() {
                    f.selectors.push(pairs);
                }
            }
            selectors(value, &mut f.selectors, &mut f.global);
            f.selectors.retain(|s| !s.is_empty());
        }
        // Admin policies apply to the whole cluster.
        f.global |= group == "policy.networking.k8s.io";
        f.class = match kind {
            "Secret" | "ConfigMap" | "Namespace" => Class::Input,
            "Service" => Class::Service,
            _ => Class::Other,
        };
        f
    }
}

/// The context of every group: `own[g]` are the objects (indices into `facts`) of group `g`,
/// `pool` the objects of no group, `workload[i]` whether object `i` is a top-level workload.
/// Returns, for every group, the objects it reads besides its own (in index order) and which
/// of them are workloads it must treat as clients only.
pub(super) fn context(
    own: &[Vec<usize>],
    pool: &[usize],
    facts: &[Facts],
    workload: &[bool],
    egress: bool,
) -> Vec<Vec<usize>> {
    let n = facts.len();
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    for (g, members) in own.iter().enumerate() {
        for &i in members {
            group_of[i] = Some(g);
        }
    }
    let mut named: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        for &h in &f.names {
            named.entry(h).or_default().push(i);
        }
    }
    // Label pair -> groups whose objects carry it.
    let mut labelled: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (g, members) in own.iter().enumerate() {
        for &i in members {
            for &l in &facts[i].labels {
                labelled.entry(l).or_default().insert(g);
            }
        }
    }
    let mut out: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); own.len()];
    // Pool objects: the groups each points at (it names their objects or selects their pods),
    // and the groups each is linked to (those, and the groups whose objects name it).
    let mut points: HashMap<usize, BTreeSet<usize>> = HashMap::new();
    for &x in pool {
        let f = &facts[x];
        if f.global {
            out.iter_mut().for_each(|c| {
                c.insert(x);
            });
            continue;
        }
        let gs = points.entry(x).or_default();
        for w in &f.words {
            gs.extend(
                named
                    .get(w)
                    .into_iter()
                    .flatten()
                    .filter_map(|&o| group_of[o]),
            );
        }
        for sel in &f.selectors {
            let mut pairs = sel.iter().map(|p| labelled.get(p));
            let Some(Some(first)) = pairs.next() else {
                continue;
            };
            let mut common = first.clone();
            for p in pairs {
                match p {
                    Some(groups) => common.retain(|g| groups.contains(g)),
                    None => common.clear(),
                }
            }
            gs.extend(common);
        }
    }
    let mut linked = points.clone();
    for (g, members) in own.iter().enumerate() {
        for &o in members {
            for w in &facts[o].words {
                for &x in named
                    .get(w)
                    .into_iter()
                    .flatten()
                    .filter(|&&x| group_of[x].is_none() && !facts[x].global)
                {
                    linked.entry(x).or_default().insert(g);
                }
            }
        }
    }
    for (&x, gs) in &linked {
        for &g in gs {
            out[g].insert(x);
        }
    }
    // The groups a workload that names an object reaches through it: the object's own group, or
    // the groups a pool object points at (a Service selecting their pods, a Secret naming
    // their Service). A pool object that a group merely names reaches nothing of that group.
    let groups_of = |o: usize| -> Vec<usize> {
        match group_of[o] {
            Some(g) => vec![g],
            None => points
                .get(&o)
                .map(|gs| gs.iter().copied().collect())
                .unwrap_or_default(),
        }
    };
    for (w, f) in facts.iter().enumerate().filter(|(w, _)| workload[*w]) {
        let Some(home) = group_of[w] else { continue };
        // What it names, and what the Secrets, ConfigMaps and Namespaces it names hold.
        let inputs: BTreeSet<usize> = f
            .words
            .iter()
            .flat_map(|h| named.get(h).into_iter().flatten())
            .copied()
            .filter(|&o| facts[o].class == Class::Input && o != w)
            .collect();
        let mut targets: BTreeSet<usize> = BTreeSet::new();
        for h in f
            .words
            .iter()
            .chain(inputs.iter().flat_map(|&i| facts[i].words.iter()))
        {
            for &o in named.get(h).into_iter().flatten() {
                targets.extend(groups_of(o));
                if egress && facts[o].class == Class::Service && group_of[o] != Some(home) {
                    // A callee's Service: it and the workloads it may select join the caller's group.
                    out[home].insert(o);
                    for sel in &facts[o].selectors {
                        for g in groups_of(o) {
                            for &callee in own[g].iter().filter(|&&c| workload[c]) {
                                if sel.iter().all(|p| facts[callee].labels.contains(p)) {
                                    out[home].insert(callee);
                                    out[home].extend(callee_inputs(callee, facts, &named));
                                }
                            }
                        }
                    }
                }
            }
        }
        targets.remove(&home);
        for g in targets {
            out[g].insert(w);
            out[g].extend(inputs.iter().copied());
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(g, c)| c.into_iter().filter(|&i| group_of[i] != Some(g)).collect())
        .collect()
}

/// The Secrets, ConfigMaps and Namespaces a workload names.
fn callee_inputs<'a>(
    w: usize,
    facts: &'a [Facts],
    named: &'a HashMap<u64, Vec<usize>>,
) -> impl Iterator<Item = usize> + 'a {
    facts[w]
        .words
        .iter()
        .flat_map(|h| named.get(h).into_iter().flatten())
        .copied()
        .filter(move |&o| facts[o].class == Class::Input && o != w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(text: &str) -> (Facts, bool) {
        let v = meshmove_model::yaml::parse_document(&meshmove_model::yaml::split_stream(text)[0])
            .unwrap()
            .unwrap();
        let kind = v["kind"].as_str().unwrap().to_string();
        let workload = template_pointer(&kind).is_some();
        (Facts::of(&v, &kind, workload), workload)
    }

    /// `n` releases, each a workload with its release label reading an unlabelled Secret and
    /// behind an unlabelled Service; release 0's workload also calls release 1's Service.
    fn stream(n: usize) -> (Vec<Vec<usize>>, Vec<usize>, Vec<Facts>, Vec<bool>) {
        let (mut own, mut pool, mut all, mut workload) =
            (vec![Vec::new(); n], Vec::new(), Vec::new(), Vec::new());
        for (r, members) in own.iter_mut().enumerate() {
            let call = if r == 0 {
                ", {name: PEER, value: 'http://r1-api.default.svc:80'}"
            } else {
                ""
            };
            let docs = [
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: r{r}-api, labels: {{app.kubernetes.io/instance: rel{r}}}}}\nspec:\n  selector: {{matchLabels: {{app: api, app.kubernetes.io/instance: rel{r}}}}}\n  template:\n    metadata: {{labels: {{app: api, app.kubernetes.io/instance: rel{r}}}}}\n    spec: {{containers: [{{name: c, image: x, env: [{{name: DB, valueFrom: {{secretKeyRef: {{name: r{r}-db, key: url}}}}}}{call}]}}]}}\n"
                ),
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: r{r}-db}}\nstringData: {{url: 'postgres://r{r}-pg:5432/x'}}\n"
                ),
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata: {{name: r{r}-api}}\nspec: {{selector: {{app: api, app.kubernetes.io/instance: rel{r}}}, ports: [{{port: 80}}]}}\n"
                ),
            ];
            for (d, text) in docs.iter().enumerate() {
                let (f, w) = facts(text);
                if d == 0 {
                    members.push(all.len())
                } else {
                    pool.push(all.len())
                }
                all.push(f);
                workload.push(w);
            }
        }
        (own, pool, all, workload)
    }

    #[test]
    fn each_group_reads_what_it_is_linked_to_and_nothing_else() {
        let (own, pool, facts, workload) = stream(4);
        let ctx = context(&own, &pool, &facts, &workload, false);
        // Release r: its Secret (index 3r+1) and Service (3r+2); release 0 also the Service it
        // names (5); release 1 also the caller in release 0 (index 0) and the Secret it reads (1).
        assert_eq!(ctx[0], [1, 2, 5]);
        assert_eq!(ctx[1], [0, 1, 4, 5]);
        assert_eq!(ctx[2], [7, 8]);
        assert_eq!(ctx[3], [10, 11]);
        // With egress, release 0 also reads the callee's Service and the callee.
        let ctx = context(&own, &pool, &facts, &workload, true);
        assert_eq!(ctx[0], [1, 2, 3, 4, 5]);
    }

    /// What a group reads does not grow with the number of groups.
    #[test]
    fn context_grows_with_the_stream_not_its_square() {
        for n in [10, 100, 1000] {
            let (own, pool, facts, workload) = stream(n);
            let total: usize = context(&own, &pool, &facts, &workload, false)
                .iter()
                .map(Vec::len)
                .sum();
            assert_eq!(total, 2 * n + 3, "{n} releases");
        }
    }

    #[test]
    fn broad_selectors_and_admin_policies_are_read_by_every_group() {
        for text in [
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec: {podSelector: {}}\n",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: {matchExpressions: [{key: a, operator: Exists}]}}\n",
            "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec: {priority: 1, subject: {namespaces: {matchLabels: {a: b}}}}\n",
        ] {
            assert!(facts(text).0.global, "{text}");
        }
        assert!(!facts("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: {matchLabels: {a: b}}}\n").0.global);
    }
}
