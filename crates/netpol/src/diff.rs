//! What a change does to who reaches whom: two [`Reach`]es (the engine run on the state before
//! and after the change) compared pair by pair.
//!
//! Pairs of workloads are compared directly. Pairs with an address range outside the cluster are
//! compared on the common refinement of both sides' ranges, so `0.0.0.0/0` before and
//! `10.0.0.0/8` after reads as "the rest of the address space was removed", not as one range
//! removed and another added; ranges with the same change are merged back into prefixes.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::cidr::subtract;
use super::connection::{Connection, PortRange, PortSet};
use super::model::WorkloadRef;
use super::reach::{Endpoint, Reach};

/// How the traffic from one endpoint to another changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// No traffic before, some after.
    Added { after: Connection },
    /// Some traffic before, none after.
    Removed { before: Connection },
    /// Traffic before and after, not the same.
    Changed { before: Connection, after: Connection },
}

impl Change {
    /// `added`, `removed` or `changed`.
    pub fn word(&self) -> &'static str {
        match self {
            Change::Added { .. } => "added",
            Change::Removed { .. } => "removed",
            Change::Changed { .. } => "changed",
        }
    }

    pub fn before(&self) -> Option<&Connection> {
        match self {
            Change::Added { .. } => None,
            Change::Removed { before } | Change::Changed { before, .. } => Some(before),
        }
    }

    pub fn after(&self) -> Option<&Connection> {
        match self {
            Change::Removed { .. } => None,
            Change::Added { after } | Change::Changed { after, .. } => Some(after),
        }
    }

    /// What was allowed before and is not after (`None` when nothing was lost).
    pub fn lost(&self) -> Option<Delta> {
        let none = Connection::none();
        Delta::between(self.before().unwrap_or(&none), self.after().unwrap_or(&none))
    }

    /// What is allowed after and was not before (`None` when nothing was gained).
    pub fn gained(&self) -> Option<Delta> {
        let none = Connection::none();
        Delta::between(self.after().unwrap_or(&none), self.before().unwrap_or(&none))
    }

    /// Whether some traffic allowed before is not allowed after: a removed pair, or a changed one
    /// that lost ports.
    pub fn removes(&self) -> bool {
        self.lost().is_some()
    }
}

/// The difference of two [`Connection`]s: some ports, or everything (every protocol, ICMP
/// included) but some ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    Ports(PortSet),
    AllExcept(PortSet),
}

impl Delta {
    /// What `a` allows and `b` does not; `None` when `a` is inside `b`.
    pub fn between(a: &Connection, b: &Connection) -> Option<Delta> {
        let d = match (a, b) {
            (_, Connection::All) => return None,
            (Connection::All, Connection::Ports(b)) => Delta::AllExcept(b.clone()),
            (Connection::Ports(a), Connection::Ports(b)) => Delta::Ports(port_difference(a, b)),
        };
        match &d {
            Delta::Ports(p) if p.is_empty() => None,
            _ => Some(d),
        }
    }
}

impl std::fmt::Display for Delta {
    /// `TCP 5432`, `All connections`, or `All connections except TCP 5432`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delta::Ports(p) => write!(f, "{p}"),
            Delta::AllExcept(p) if p.is_empty() => f.write_str("All connections"),
            Delta::AllExcept(p) => write!(f, "All connections except {p}"),
        }
    }
}

impl Serialize for Delta {
    /// Like a [`Connection`]: `"all"` or a list of ports; everything but some ports is
    /// `{"allExcept": [ports]}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Delta::Ports(p) => p.ranges().serialize(serializer),
            Delta::AllExcept(p) if p.is_empty() => serializer.serialize_str("all"),
            Delta::AllExcept(p) => {
                let mut s = serializer.serialize_struct("AllExcept", 1)?;
                s.serialize_field("allExcept", p.ranges())?;
                s.end()
            }
        }
    }
}

/// `a` minus `b`.
fn port_difference(a: &PortSet, b: &PortSet) -> PortSet {
    let mut out = Vec::new();
    for r in a.ranges() {
        let mut pieces = vec![(r.start, r.end)];
        for h in b.ranges().iter().filter(|h| h.protocol == r.protocol) {
            pieces = pieces
                .into_iter()
                .flat_map(|(s, e)| {
                    let mut keep = Vec::new();
                    if h.end < s || h.start > e {
                        keep.push((s, e));
                    } else {
                        if h.start > s {
                            keep.push((s, h.start - 1));
                        }
                        if h.end < e {
                            keep.push((h.end + 1, e));
                        }
                    }
                    keep
                })
                .collect();
        }
        out.extend(pieces.into_iter().map(|(start, end)| PortRange { protocol: r.protocol, start, end }));
    }
    PortSet::from_ranges(out)
}

/// One pair whose traffic changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffEntry {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub change: Change,
}

impl Serialize for DiffEntry {
    /// `{"src","dst","change": "added"|"removed"|"changed","before","after","lost","gained"}`;
    /// connections as in `reach` (`"all"` or ports), absent sides `null`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("DiffEntry", 7)?;
        s.serialize_field("src", &self.src)?;
        s.serialize_field("dst", &self.dst)?;
        s.serialize_field("change", self.change.word())?;
        s.serialize_field("before", &self.change.before())?;
        s.serialize_field("after", &self.change.after())?;
        s.serialize_field("lost", &self.change.lost())?;
        s.serialize_field("gained", &self.change.gained())?;
        s.end()
    }
}

/// Every pair whose traffic differs between two [`Reach`]es, sorted by source then destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReachDiff {
    pub entries: Vec<DiffEntry>,
}

/// Counts of a [`ReachDiff`], for summaries and exit codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffSummary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// Pairs that lost some traffic: every removed pair and each changed pair that lost ports.
    pub losing: usize,
}

impl ReachDiff {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn summary(&self) -> DiffSummary {
        let mut s = DiffSummary::default();
        for e in &self.entries {
            match e.change {
                Change::Added { .. } => s.added += 1,
                Change::Removed { .. } => s.removed += 1,
                Change::Changed { .. } => s.changed += 1,
            }
            if e.change.removes() {
                s.losing += 1;
            }
        }
        s
    }

    /// Whether the change takes away some traffic that was allowed.
    pub fn removes_connections(&self) -> bool {
        self.entries.iter().any(|e| e.change.removes())
    }

    /// Only the entries from or to one of `endpoints`.
    pub fn retain_touching(&mut self, endpoints: &BTreeSet<Endpoint>) {
        self.entries.retain(|e| endpoints.contains(&e.src) || endpoints.contains(&e.dst));
    }
}

impl Serialize for ReachDiff {
    /// `{"summary": {...}, "removesConnections": bool, "entries": [...]}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ReachDiff", 3)?;
        s.serialize_field("summary", &self.summary())?;
        s.serialize_field("removesConnections", &self.removes_connections())?;
        s.serialize_field("entries", &self.entries)?;
        s.end()
    }
}

/// Which way traffic to or from an address range goes, for one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    /// The workload opens connections to the range.
    Out,
    /// The range opens connections to the workload.
    In,
}

/// Both sides' connections of one pair, `None` where a side allows nothing.
type Sides<'a> = (Option<&'a Connection>, Option<&'a Connection>);

/// A change of an address range's traffic, before and after.
type RangeChange = (Option<Connection>, Option<Connection>);

type ExternalSides<'a> = BTreeMap<(&'a WorkloadRef, Way), (Vec<(IpNet, &'a Connection)>, Vec<(IpNet, &'a Connection)>)>;

/// What changes from `before` to `after`.
pub fn diff(before: &Reach, after: &Reach) -> ReachDiff {
    let mut pairs: BTreeMap<(&Endpoint, &Endpoint), Sides<'_>> = BTreeMap::new();
    let mut external: ExternalSides<'_> = BTreeMap::new();
    for (side, reach) in [(0, before), (1, after)] {
        for e in reach.iter() {
            let ext = match (e.src, e.dst) {
                (Endpoint::Workload(w), Endpoint::External(n)) => Some((w, Way::Out, *n)),
                (Endpoint::External(n), Endpoint::Workload(w)) => Some((w, Way::In, *n)),
                _ => None,
            };
            match ext {
                Some((w, way, net)) => {
                    let slot = external.entry((w, way)).or_default();
                    if side == 0 { &mut slot.0 } else { &mut slot.1 }.push((net, e.conn));
                }
                None => {
                    let slot = pairs.entry((e.src, e.dst)).or_default();
                    if side == 0 {
                        slot.0 = Some(e.conn);
                    } else {
                        slot.1 = Some(e.conn);
                    }
                }
            }
        }
    }
    let mut entries = Vec::new();
    for ((src, dst), (b, a)) in pairs {
        if let Some(change) = change_of(b, a) {
            entries.push(DiffEntry { src: src.clone(), dst: dst.clone(), change });
        }
    }
    for ((w, way), (b, a)) in external {
        for (net, change) in external_changes(&b, &a) {
            let (src, dst) = match way {
                Way::Out => (Endpoint::Workload(w.clone()), Endpoint::External(net)),
                Way::In => (Endpoint::External(net), Endpoint::Workload(w.clone())),
            };
            entries.push(DiffEntry { src, dst, change });
        }
    }
    entries.sort_by(|x, y| (&x.src, &x.dst).cmp(&(&y.src, &y.dst)));
    ReachDiff { entries }
}

fn change_of(before: Option<&Connection>, after: Option<&Connection>) -> Option<Change> {
    let before = before.filter(|c| !c.is_none());
    let after = after.filter(|c| !c.is_none());
    match (before, after) {
        (None, None) => None,
        (Some(b), None) => Some(Change::Removed { before: b.clone() }),
        (None, Some(a)) => Some(Change::Added { after: a.clone() }),
        (Some(b), Some(a)) if a == b => None,
        (Some(b), Some(a)) => Some(Change::Changed { before: b.clone(), after: a.clone() }),
    }
}

/// The changes of one workload's traffic with addresses outside the cluster, one way: both sides'
/// prefixes refined to the longest one containing each address (prefixes either nest or are
/// disjoint, and each side's are disjoint), compared, and merged back by change.
fn external_changes(before: &[(IpNet, &Connection)], after: &[(IpNet, &Connection)]) -> Vec<(IpNet, Change)> {
    let prefixes: BTreeSet<IpNet> = before.iter().chain(after).map(|(n, _)| *n).collect();
    let conn_at = |side: &[(IpNet, &Connection)], atom: &IpNet| side.iter().find(|(n, _)| n.contains(atom)).map(|(_, c)| (*c).clone());
    // Few distinct changes per workload: a list, since connections have no order.
    let mut by_change: Vec<(RangeChange, Vec<IpNet>)> = Vec::new();
    for p in &prefixes {
        let inside: Vec<IpNet> = prefixes.iter().filter(|q| *q != p && p.contains(*q)).copied().collect();
        for atom in subtract(*p, &inside) {
            let b = conn_at(before, &atom);
            let a = conn_at(after, &atom);
            if b != a {
                match by_change.iter_mut().find(|(k, _)| k.0 == b && k.1 == a) {
                    Some((_, nets)) => nets.push(atom),
                    None => by_change.push(((b, a), vec![atom])),
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((b, a), nets) in by_change {
        if let Some(change) = change_of(b.as_ref(), a.as_ref()) {
            out.extend(IpNet::aggregate(&nets).into_iter().map(|n| (n, change.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterModel, Engine, EngineOptions, NamespaceInfo, PodInfo, Protocol, WorkloadKind};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use serde_json::json;

    fn deploy(name: &str) -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "shop", name)
    }

    fn pods() -> Vec<PodInfo> {
        vec![
            PodInfo::new("shop", "api").with_labels([("app", "api")]).with_owner(deploy("api")).with_port(Some("http"), 8080, Protocol::Tcp),
            PodInfo::new("shop", "web").with_labels([("app", "web")]).with_owner(deploy("web")),
            PodInfo::new("shop", "pg")
                .with_labels([("app", "pg")])
                .with_owner(WorkloadRef::new(WorkloadKind::StatefulSet, "shop", "pg"))
                .with_port(Some("postgres"), 5432, Protocol::Tcp),
        ]
    }

    fn policy(v: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(v).unwrap()
    }

    fn reach(policies: Vec<NetworkPolicy>) -> Reach {
        let model = ClusterModel { namespaces: vec![NamespaceInfo::new("shop", BTreeMap::new())], pods: pods(), policies, ..Default::default() };
        Engine::build(&model, EngineOptions::default()).unwrap().reach()
    }

    fn isolate_pg() -> NetworkPolicy {
        policy(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "pg", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "pg"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}]}}))
    }

    fn line(e: &DiffEntry) -> String {
        let lost = e.change.lost().map(|d| format!(" lost {d}")).unwrap_or_default();
        let gained = e.change.gained().map(|d| format!(" gained {d}")).unwrap_or_default();
        format!("{} {} -> {}{lost}{gained}", e.change.word(), e.src, e.dst)
    }

    /// Every pair of `before` and `after` is what the diff says: `after = before - lost + gained`,
    /// and pairs outside the diff are unchanged.
    fn consistent(before: &Reach, after: &Reach, d: &ReachDiff) {
        let workloads: BTreeSet<&Endpoint> = before.endpoints().iter().chain(after.endpoints()).filter(|e| matches!(e, Endpoint::Workload(_))).collect();
        for s in &workloads {
            for t in &workloads {
                let b = before.get(s, t).cloned().unwrap_or_default();
                let a = after.get(s, t).cloned().unwrap_or_default();
                match d.entries.iter().find(|e| &&e.src == s && &&e.dst == t) {
                    None => assert_eq!(a, b, "{s} -> {t} changed but is not in the diff"),
                    Some(e) => {
                        assert_eq!(e.change.before().cloned().unwrap_or_default(), b, "{s} -> {t}");
                        assert_eq!(e.change.after().cloned().unwrap_or_default(), a, "{s} -> {t}");
                        assert!(a != b);
                    }
                }
            }
        }
    }

    #[test]
    fn isolating_a_database_removes_the_others_and_narrows_the_owner() {
        let before = reach(vec![]);
        let after = reach(vec![isolate_pg()]);
        let d = diff(&before, &after);
        let lines: Vec<String> = d.entries.iter().map(line).collect();
        assert_eq!(
            lines,
            [
                "changed Deployment/shop/api -> StatefulSet/shop/pg lost All connections except TCP 5432",
                "removed StatefulSet/shop/pg -> StatefulSet/shop/pg lost All connections",
                "removed Deployment/shop/web -> StatefulSet/shop/pg lost All connections",
                "removed External/0.0.0.0/0 -> StatefulSet/shop/pg lost All connections",
                "removed External/::/0 -> StatefulSet/shop/pg lost All connections",
            ]
        );
        assert!(d.removes_connections());
        assert_eq!(d.summary(), DiffSummary { added: 0, removed: 4, changed: 1, losing: 5 });
        consistent(&before, &after, &d);

        // The other way round only adds.
        let back = diff(&after, &before);
        assert!(!back.removes_connections());
        assert_eq!(back.summary(), DiffSummary { added: 4, removed: 0, changed: 1, losing: 0 });
        consistent(&after, &before, &back);
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn address_ranges_are_compared_on_the_common_refinement() {
        let egress = policy(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "out", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}, {"to": [{"podSelector": {}}]}]}}));
        let before = reach(vec![]);
        let after = reach(vec![egress]);
        let d = diff(&before, &after);
        let out: Vec<String> = d.entries.iter().filter(|e| matches!(e.dst, Endpoint::External(_))).map(line).collect();
        // 0.0.0.0/0 minus 10.0.0.0/8, plus 10.1.0.0/16, plus all of IPv6: removed; 10/8 stays.
        let mut expected: Vec<String> = subtract("0.0.0.0/0".parse().unwrap(), &["10.0.0.0/8".parse().unwrap()])
            .into_iter()
            .chain(["10.1.0.0/16".parse().unwrap()])
            .collect::<Vec<IpNet>>()
            .into_iter()
            .map(|n| format!("removed Deployment/shop/web -> External/{n} lost All connections"))
            .collect();
        expected.sort_by_key(|l| l.split("External/").nth(1).unwrap().split(' ').next().unwrap().parse::<IpNet>().unwrap());
        expected.push("removed Deployment/shop/web -> External/::/0 lost All connections".into());
        assert_eq!(out, expected);
        assert!(!out.iter().any(|l| l.contains("External/10.0.0.0/")), "{out:?}");
        consistent(&before, &after, &d);
    }

    #[test]
    fn ports_gained_and_lost_on_one_pair() {
        let a: Connection = PortSet::from_ranges([PortRange::single(Protocol::Tcp, 5432), PortRange { protocol: Protocol::Tcp, start: 8000, end: 8100 }]).into();
        let b: Connection = PortSet::from_ranges([PortRange { protocol: Protocol::Tcp, start: 8050, end: 9000 }, PortRange::single(Protocol::Udp, 53)]).into();
        let c = Change::Changed { before: a, after: b };
        assert_eq!(c.lost().unwrap().to_string(), "TCP 5432,TCP 8000-8049");
        assert_eq!(c.gained().unwrap().to_string(), "TCP 8101-9000,UDP 53");
        assert!(c.removes());
        let widened = Change::Changed { before: PortSet::from_ranges([PortRange::single(Protocol::Tcp, 5432)]).into(), after: Connection::All };
        assert!(!widened.removes());
        assert_eq!(widened.gained().unwrap().to_string(), "All connections except TCP 5432");
        let v = serde_json::to_value(DiffEntry { src: Endpoint::Workload(deploy("a")), dst: Endpoint::External("10.0.0.0/8".parse().unwrap()), change: widened }).unwrap();
        assert_eq!(
            v,
            json!({"src": {"kind": "Deployment", "namespace": "shop", "name": "a"}, "dst": {"kind": "External", "cidr": "10.0.0.0/8"},
                   "change": "changed", "before": [{"protocol": "TCP", "port": 5432}], "after": "all", "lost": null,
                   "gained": {"allExcept": [{"protocol": "TCP", "port": 5432}]}})
        );
    }

    #[test]
    fn focus_keeps_the_pairs_touching_an_endpoint() {
        let mut d = diff(&reach(vec![]), &reach(vec![isolate_pg()]));
        d.retain_touching(&[Endpoint::Workload(deploy("web"))].into_iter().collect());
        assert_eq!(d.entries.iter().map(line).collect::<Vec<_>>(), ["removed Deployment/shop/web -> StatefulSet/shop/pg lost All connections"]);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["summary"], json!({"added": 0, "removed": 1, "changed": 0, "losing": 1}));
        assert_eq!(json["removesConnections"], true);
    }
}
