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

/// What the first pass records of every object for linking (hashes, no text kept), in one
/// flat table: an object's facts are ranges of `data`, so a stream of any size costs a handful
/// of allocations here, not several per object living as long as the run (which fragmented the
/// heap and slowed every later allocation of a large stream).
#[derive(Debug, Default)]
pub(super) struct FactsTable {
    /// Per object: its names, its words, its label pairs, then its selectors, each written as
    /// its length followed by its pairs.
    data: Vec<u64>,
    entries: Vec<Entry>,
    /// Reused while reading one object's words.
    scratch: Vec<u64>,
}

/// One object's facts in [`FactsTable::data`]:
/// * names (`start..words`): `metadata.name`, and for a CloudNativePG cluster the names of the
///   Services and Secrets its operator creates;
/// * words (`words..labels`): every name-like word of its strings, sorted and unique;
/// * label pairs (`labels..selectors`), of its metadata and pod template;
/// * selectors (`selectors..end`): its label selectors' pairs (not of workloads: their
///   selectors select their own pods);
/// * `global`: context for every group: a selector that selects by more than label pairs, or
///   a kind that applies cluster-wide.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    words: usize,
    labels: usize,
    selectors: usize,
    end: usize,
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

/// Appends the label pairs of a selector map as one selector (its length, then its pairs);
/// nothing for an empty one.
fn push_selector(map: Option<&Value>, data: &mut Vec<u64>) {
    let at = data.len();
    data.push(0);
    label_pairs(map, data);
    match data.len() - at - 1 {
        0 => {
            data.pop();
        }
        n => data[at] = n as u64,
    }
}

/// Selectors anywhere in `v`: `matchLabels` maps; a selector-like key whose value is empty or
/// has `matchExpressions` makes the object global.
fn selectors(v: &Value, data: &mut Vec<u64>, global: &mut bool) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| selectors(i, data, global)),
        Value::Object(map) => {
            for (k, val) in map {
                if k == "matchLabels" {
                    push_selector(Some(val), data);
                } else if matches!(k.as_str(), "podSelector" | "selector" | "namespaceSelector")
                    && let Some(sel) = val.as_object()
                    && (sel.is_empty() || sel.contains_key("matchExpressions"))
                {
                    *global = true;
                }
                selectors(val, data, global);
            }
        }
        _ => {}
    }
}

impl FactsTable {
    /// Records the facts of a parsed object of `kind` (`workload`: a top-level workload);
    /// returns their number.
    pub(super) fn push(&mut self, value: &Value, kind: &str, workload: bool) -> usize {
        let data = &mut self.data;
        let start = data.len();
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        data.push(hash(&[name.as_bytes()]));
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
                data.push(hash(&[format!("{name}{suffix}").as_bytes()]));
            }
        }
        let words = data.len();
        self.scratch.clear();
        strings(value, &mut self.scratch);
        if kind == "Secret" {
            for v in owners::secret_data(value).values() {
                words_of(v, &mut self.scratch);
            }
        }
        self.scratch.sort_unstable();
        self.scratch.dedup();
        data.extend_from_slice(&self.scratch);
        let labels = data.len();
        label_pairs(value.pointer("/metadata/labels"), data);
        if let Some(ptr) = template_pointer(kind) {
            label_pairs(value.pointer(&format!("{ptr}/metadata/labels")), data);
        }
        let selectors_at = data.len();
        let mut global = false;
        if !workload {
            if kind == "Service" {
                push_selector(value.pointer("/spec/selector"), data);
            }
            selectors(value, data, &mut global);
        }
        // Admin policies apply to the whole cluster.
        global |= group == "policy.networking.k8s.io";
        let class = match kind {
            "Secret" | "ConfigMap" | "Namespace" => Class::Input,
            "Service" => Class::Service,
            _ => Class::Other,
        };
        self.entries.push(Entry { start, words, labels, selectors: selectors_at, end: data.len(), global, class });
        self.entries.len() - 1
    }

    /// The table with its entries in the order `order` gives (entry numbers as [`Self::push`]
    /// returned them): entry `i` of the result is entry `order[i]`.
    pub(super) fn in_order(mut self, order: &[usize]) -> FactsTable {
        self.entries = order.iter().map(|&i| self.entries[i]).collect();
        self
    }

    fn names(&self, i: usize) -> &[u64] {
        let e = &self.entries[i];
        &self.data[e.start..e.words]
    }

    fn words(&self, i: usize) -> &[u64] {
        let e = &self.entries[i];
        &self.data[e.words..e.labels]
    }

    fn labels(&self, i: usize) -> &[u64] {
        let e = &self.entries[i];
        &self.data[e.labels..e.selectors]
    }

    fn selectors(&self, i: usize) -> impl Iterator<Item = &[u64]> {
        let e = &self.entries[i];
        let mut rest = &self.data[e.selectors..e.end];
        std::iter::from_fn(move || {
            let (&n, tail) = rest.split_first()?;
            let (sel, tail) = tail.split_at(n as usize);
            rest = tail;
            Some(sel)
        })
    }

    fn global(&self, i: usize) -> bool {
        self.entries[i].global
    }

    fn class(&self, i: usize) -> Class {
        self.entries[i].class
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The context of every group: `own[g]` are the objects (indices into `facts`) of group `g`,
/// `pool` the objects of no group, `workload[i]` whether object `i` is a top-level workload.
/// Returns, for every group, the objects it reads besides its own (in index order) and which
/// of them are workloads it must treat as clients only.
pub(super) fn context(
    own: &[Vec<usize>],
    pool: &[usize],
    facts: &FactsTable,
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
    for i in 0..n {
        for &h in facts.names(i) {
            named.entry(h).or_default().push(i);
        }
    }
    // Label pair -> groups whose objects carry it.
    let mut labelled: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (g, members) in own.iter().enumerate() {
        for &i in members {
            for &l in facts.labels(i) {
                labelled.entry(l).or_default().insert(g);
            }
        }
    }
    let mut out: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); own.len()];
    // Pool objects: the groups each points at (it names their objects or selects their pods),
    // and the groups each is linked to (those, and the groups whose objects name it).
    let mut points: HashMap<usize, BTreeSet<usize>> = HashMap::new();
    for &x in pool {
        if facts.global(x) {
            out.iter_mut().for_each(|c| {
                c.insert(x);
            });
            continue;
        }
        let gs = points.entry(x).or_default();
        for w in facts.words(x) {
            gs.extend(
                named
                    .get(w)
                    .into_iter()
                    .flatten()
                    .filter_map(|&o| group_of[o]),
            );
        }
        for sel in facts.selectors(x) {
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
            for w in facts.words(o) {
                for &x in named
                    .get(w)
                    .into_iter()
                    .flatten()
                    .filter(|&&x| group_of[x].is_none() && !facts.global(x))
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
    for w in (0..n).filter(|&w| workload[w]) {
        let Some(home) = group_of[w] else { continue };
        // What it names, and what the Secrets, ConfigMaps and Namespaces it names hold.
        let inputs: BTreeSet<usize> = facts
            .words(w)
            .iter()
            .flat_map(|h| named.get(h).into_iter().flatten())
            .copied()
            .filter(|&o| facts.class(o) == Class::Input && o != w)
            .collect();
        let mut targets: BTreeSet<usize> = BTreeSet::new();
        for h in facts
            .words(w)
            .iter()
            .chain(inputs.iter().flat_map(|&i| facts.words(i).iter()))
        {
            for &o in named.get(h).into_iter().flatten() {
                targets.extend(groups_of(o));
                if egress && facts.class(o) == Class::Service && group_of[o] != Some(home) {
                    // A callee's Service: it and the workloads it may select join the caller's group.
                    out[home].insert(o);
                    for sel in facts.selectors(o) {
                        for g in groups_of(o) {
                            for &callee in own[g].iter().filter(|&&c| workload[c]) {
                                if sel.iter().all(|p| facts.labels(callee).contains(p)) {
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
    facts: &'a FactsTable,
    named: &'a HashMap<u64, Vec<usize>>,
) -> impl Iterator<Item = usize> + 'a {
    facts
        .words(w)
        .iter()
        .flat_map(|h| named.get(h).into_iter().flatten())
        .copied()
        .filter(move |&o| facts.class(o) == Class::Input && o != w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the facts of the one object `text` holds; whether it is a workload.
    fn record(table: &mut FactsTable, text: &str) -> bool {
        let v = meshmove_model::yaml::parse_document(&meshmove_model::yaml::split_stream(text)[0])
            .unwrap()
            .unwrap();
        let kind = v["kind"].as_str().unwrap().to_string();
        let workload = template_pointer(&kind).is_some();
        table.push(&v, &kind, workload);
        workload
    }

    fn is_global(text: &str) -> bool {
        let mut table = FactsTable::default();
        record(&mut table, text);
        table.global(0)
    }

    /// `n` releases, each a workload with its release label reading an unlabelled Secret and
    /// behind an unlabelled Service; release 0's workload also calls release 1's Service.
    fn stream(n: usize) -> (Vec<Vec<usize>>, Vec<usize>, FactsTable, Vec<bool>) {
        let (mut own, mut pool, mut all, mut workload) =
            (vec![Vec::new(); n], Vec::new(), FactsTable::default(), Vec::new());
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
                if d == 0 {
                    members.push(all.len())
                } else {
                    pool.push(all.len())
                }
                workload.push(record(&mut all, text));
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
            assert!(is_global(text), "{text}");
        }
        assert!(!is_global("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: {matchLabels: {a: b}}}\n"));
    }
}
