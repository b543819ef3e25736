//! All-pairs reachability by workload, computed on equivalence classes.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::admin::ClassPeer;
use super::{BitSet, Engine};
use super::compile::{Direction, ports_connection};
use super::connection::{Connection, Protocol};
use super::hbone::{HBONE_PORT, through_tunnel};
use super::model::WorkloadRef;

/// One end of a [`Reach`] entry: a workload (or bare pod), or a CIDR outside the cluster.
///
/// Serialized as `{"kind","namespace","name"}` or `{"kind":"External","cidr":"..."}`. Sorted
/// with workloads first (see [`WorkloadRef`]'s order), then CIDRs (IPv4 before IPv6, by address
/// then prefix length).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Workload(WorkloadRef),
    External(IpNet),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Workload(w) => write!(f, "{w}"),
            Endpoint::External(n) => write!(f, "External/{n}"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EndpointRepr {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidr: Option<String>,
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Endpoint::Workload(w) => w.serialize(serializer),
            Endpoint::External(n) => EndpointRepr {
                kind: "External".into(),
                namespace: None,
                name: None,
                cidr: Some(n.to_string()),
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let r = EndpointRepr::deserialize(deserializer)?;
        if r.kind == "External" {
            let cidr = r.cidr.ok_or_else(|| D::Error::missing_field("cidr"))?;
            let net: IpNet = cidr
                .parse()
                .map_err(|_| D::Error::custom(format!("invalid cidr {cidr:?}")))?;
            return Ok(Endpoint::External(net));
        }
        let namespace = r
            .namespace
            .ok_or_else(|| D::Error::missing_field("namespace"))?;
        let name = r.name.ok_or_else(|| D::Error::missing_field("name"))?;
        Ok(Endpoint::Workload(WorkloadRef::new(
            super::WorkloadKind::parse(&r.kind),
            namespace,
            name,
        )))
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// An owned result row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachEntry {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub conn: Connection,
    /// Some of this traffic travels as Istio ambient's HBONE tunnel (pods of both workloads
    /// captured, TCP 15008 admitted): its TCP ports are the tunnel's, not rules naming them.
    /// Serialized only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hbone: bool,
    /// The TCP ports of `conn` that the destination's Istio AuthorizationPolicies admit only for
    /// some requests (L7 fields, conditions, an external authorizer: see [`crate::authz`]).
    /// Serialized only when some.
    #[serde(default, rename = "authzConditional", skip_serializing_if = "Option::is_none")]
    pub authz_conditional: Option<Connection>,
}

/// A borrowed result row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ReachEntryRef<'a> {
    pub src: &'a Endpoint,
    pub dst: &'a Endpoint,
    pub conn: &'a Connection,
    /// As [`ReachEntry::hbone`].
    #[serde(skip_serializing_if = "is_false")]
    pub hbone: bool,
    /// As [`ReachEntry::authz_conditional`].
    #[serde(rename = "authzConditional", skip_serializing_if = "Option::is_none")]
    pub authz_conditional: Option<&'a Connection>,
}

/// Result of [`Engine::reach`]: every ordered pair of endpoints with some traffic allowed,
/// sorted by source then destination. Endpoints and connections are stored once and referred
/// to by index, since a cluster has few distinct port sets and many pairs.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    endpoints: Vec<Endpoint>,
    conns: Vec<Connection>,
    /// (source, destination, connection, through the HBONE tunnel, AuthorizationPolicy
    /// conditional ports: `NONE` for none).
    entries: Vec<(u32, u32, u32, bool, u32)>,
}

impl Reach {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = ReachEntryRef<'_>> + '_ {
        self.entries.iter().map(|&(s, d, c, hbone, cond)| ReachEntryRef {
            src: &self.endpoints[s as usize],
            dst: &self.endpoints[d as usize],
            conn: &self.conns[c as usize],
            hbone,
            authz_conditional: self.conns.get(cond as usize).filter(|c| !c.is_none()),
        })
    }

    pub fn to_entries(&self) -> Vec<ReachEntry> {
        self.iter()
            .map(|e| ReachEntry {
                src: e.src.clone(),
                dst: e.dst.clone(),
                conn: e.conn.clone(),
                hbone: e.hbone,
                authz_conditional: e.authz_conditional.cloned(),
            })
            .collect()
    }

    /// The allowance from `src` to `dst`, if any traffic is allowed.
    pub fn get(&self, src: &Endpoint, dst: &Endpoint) -> Option<&Connection> {
        let s = self.endpoints.binary_search(src).ok()? as u32;
        let d = self.endpoints.binary_search(dst).ok()? as u32;
        let i = self
            .entries
            .binary_search_by_key(&(s, d), |&(a, b, ..)| (a, b))
            .ok()?;
        Some(&self.conns[self.entries[i].2 as usize])
    }

    /// Whether traffic from `src` to `dst` travels (in part) through the HBONE tunnel
    /// ([`ReachEntry::hbone`]).
    pub fn hbone(&self, src: &Endpoint, dst: &Endpoint) -> bool {
        let (Ok(s), Ok(d)) = (self.endpoints.binary_search(src), self.endpoints.binary_search(dst)) else {
            return false;
        };
        self.entries
            .binary_search_by_key(&(s as u32, d as u32), |&(a, b, ..)| (a, b))
            .is_ok_and(|i| self.entries[i].3)
    }

    /// Every workload of the model and every external CIDR that appears in some entry, sorted.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

impl Serialize for Reach {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Multiply-rotate hasher for the integer keys of the memo tables (SipHash would dominate the
/// inner loop).
#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

const NONE: u32 = 0;
const ALL: u32 = 1;
const UNSET: u32 = u32::MAX;

/// Interned connections with memoized union and intersection.
struct ConnTable {
    conns: Vec<Connection>,
    ids: HashMap<Connection, u32>,
    unions: IntMap<(u32, u32), u32>,
    inters: IntMap<(u32, u32), u32>,
}

impl ConnTable {
    fn new() -> Self {
        let mut t = ConnTable {
            conns: Vec::new(),
            ids: HashMap::new(),
            unions: IntMap::default(),
            inters: IntMap::default(),
        };
        t.intern(Connection::none());
        t.intern(Connection::All);
        t
    }

    fn intern(&mut self, c: Connection) -> u32 {
        if let Some(&id) = self.ids.get(&c) {
            return id;
        }
        let id = self.conns.len() as u32;
        self.conns.push(c.clone());
        self.ids.insert(c, id);
        id
    }

    #[inline]
    fn union(&mut self, a: u32, b: u32) -> u32 {
        if a == b || b == NONE || a == ALL {
            return a;
        }
        if a == NONE || b == ALL {
            return b;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&c) = self.unions.get(&key) {
            return c;
        }
        let c = self.intern(self.conns[a as usize].union(&self.conns[b as usize]));
        self.unions.insert(key, c);
        c
    }

    #[inline]
    fn inter(&mut self, a: u32, b: u32) -> u32 {
        if a == b || b == ALL || a == NONE {
            return a;
        }
        if a == ALL || b == NONE {
            return b;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&c) = self.inters.get(&key) {
            return c;
        }
        let c = self.intern(self.conns[a as usize].intersect(&self.conns[b as usize]));
        self.inters.insert(key, c);
        c
    }
}

/// Immutable per-class tables for one `reach` run.
struct Plan<'e> {
    e: &'e Engine,
    in_isolated: Vec<bool>,
    eg_isolated: Vec<bool>,
    /// Per destination class: (rule id, rule's ports resolved on that class).
    in_grants: Vec<Vec<(usize, u32)>>,
    /// Per source class: egress rule ids.
    eg_rules: Vec<Vec<usize>>,
    /// Per rule id: its ports when they contain no named port, else `UNSET`.
    rule_fixed: Vec<u32>,
    /// Per rule id: its ports towards an external address (named ports dropped).
    rule_ext: Vec<u32>,
}

/// Mutable state of one `reach` run.
struct Work {
    t: ConnTable,
    /// (rule id, profile) -> resolved ports, for rules with named ports.
    resolved: IntMap<(usize, usize), u32>,
    /// Direct connection -> (what the HBONE tunnel lets through, whether the tunnel is open).
    tunnels: IntMap<u32, (u32, bool)>,
    /// (source class or region, is a region, destination class) -> AuthorizationPolicy
    /// (possible, conditional) connections.
    authz: HashMap<(usize, bool, usize), (u32, u32)>,
}

impl Work {
    /// Between two ambient-captured classes: [`through_tunnel`] of the direct connection.
    fn tunnel(&mut self, direct: u32) -> (u32, bool) {
        if let Some(&t) = self.tunnels.get(&direct) {
            return t;
        }
        let conn = &self.t.conns[direct as usize];
        let open = conn.allows(Protocol::Tcp, HBONE_PORT);
        let through = through_tunnel(conn);
        let t = (self.t.intern(through), open);
        self.tunnels.insert(direct, t);
        t
    }
}

impl Plan<'_> {
    fn new<'e>(e: &'e Engine, w: &mut Work) -> Plan<'e> {
        let idx = &e.classes;
        let n_rules = e.rule_loc.len();
        let mut rule_fixed = vec![UNSET; n_rules];
        let mut rule_ext = vec![NONE; n_rules];
        for id in 0..n_rules {
            let rule = e.rule(id);
            if !rule.has_named_ports() {
                rule_fixed[id] =
                    w.t.intern(ports_connection(rule.ports.as_deref(), Some(&[])));
            }
            rule_ext[id] = w.t.intern(ports_connection(rule.ports.as_deref(), None));
        }
        let mut plan = Plan {
            e,
            in_isolated: idx.ingress_policies.iter().map(|v| !v.is_empty()).collect(),
            eg_isolated: idx.egress_policies.iter().map(|v| !v.is_empty()).collect(),
            in_grants: Vec::with_capacity(idx.classes.len()),
            eg_rules: Vec::with_capacity(idx.classes.len()),
            rule_fixed,
            rule_ext,
        };
        for (c, class) in idx.classes.iter().enumerate() {
            let mut grants = Vec::new();
            for &pi in &idx.ingress_policies[c] {
                for rule in e.policies[pi].rules(Direction::Ingress).unwrap_or(&[]) {
                    let conn = plan.rule_conn(w, rule.id, class.profile);
                    grants.push((rule.id, conn));
                }
            }
            plan.in_grants.push(grants);
            let rules = idx.egress_policies[c]
                .iter()
                .flat_map(|&pi| {
                    e.policies[pi]
                        .rules(Direction::Egress)
                        .unwrap_or(&[])
                        .iter()
                        .map(|r| r.id)
                })
                .collect();
            plan.eg_rules.push(rules);
        }
        plan
    }

    fn rule_conn(&self, w: &mut Work, rule: usize, profile: usize) -> u32 {
        let fixed = self.rule_fixed[rule];
        if fixed != UNSET {
            return fixed;
        }
        if let Some(&c) = w.resolved.get(&(rule, profile)) {
            return c;
        }
        let ports = self.e.rule(rule).ports.as_deref();
        let c = w.t.intern(ports_connection(
            ports,
            Some(&self.e.classes.profiles[profile]),
        ));
        w.resolved.insert((rule, profile), c);
        c
    }

    #[inline]
    fn rule_has_class(&self, rule: usize, class: usize) -> bool {
        self.e.classes.rule_classes[rule]
            .as_ref()
            .is_none_or(|b| b.contains(class))
    }

    #[inline]
    fn rule_has_region(&self, rule: usize, region: usize) -> bool {
        self.e.classes.rule_regions[rule]
            .as_ref()
            .is_none_or(|b| b.contains(region))
    }

    /// The ingress side with every tier (ANP, NetworkPolicy, BANP; see `admin`).
    fn ingress(&self, w: &mut Work, dst: usize, src: usize) -> u32 {
        let np = self.np_ingress(w, dst, src);
        let profile = self.e.classes.classes[dst].profile;
        self.with_admin(w, Direction::Ingress, dst, ClassPeer::Class(src), profile, self.in_isolated[dst], np)
    }

    fn egress(&self, w: &mut Work, src: usize, dst: usize) -> u32 {
        let np = self.np_egress(w, src, dst);
        let profile = self.e.classes.classes[dst].profile;
        self.with_admin(w, Direction::Egress, src, ClassPeer::Class(dst), profile, self.eg_isolated[src], np)
    }

    fn ingress_from_region(&self, w: &mut Work, dst: usize, region: usize) -> u32 {
        let np = self.np_ingress_from_region(w, dst, region);
        let profile = self.e.classes.classes[dst].profile;
        self.with_admin(w, Direction::Ingress, dst, ClassPeer::Region(region), profile, self.in_isolated[dst], np)
    }

    fn egress_to_region(&self, w: &mut Work, src: usize, region: usize) -> u32 {
        let np = self.np_egress_to_region(w, src, region);
        // Named ports never match an external address, whatever the profile.
        let profile = self.e.classes.classes[src].profile;
        self.with_admin(w, Direction::Egress, src, ClassPeer::Region(region), profile, self.eg_isolated[src], np)
    }

    /// NetworkPolicy's allowance `np` for one side of `subject`, with the admin tiers applied
    /// when an admin policy selects the class (otherwise `np` as it is).
    #[allow(clippy::too_many_arguments)]
    fn with_admin(&self, w: &mut Work, dir: Direction, subject: usize, other: ClassPeer, profile: usize, isolated: bool, np: u32) -> u32 {
        if !self.e.admin_selects_class(dir, subject) {
            return np;
        }
        let np = isolated.then(|| w.t.conns[np as usize].clone());
        let conn = self.e.admin_class_side(dir, subject, other, profile, np.as_ref());
        w.t.intern(conn)
    }

    fn np_ingress(&self, w: &mut Work, dst: usize, src: usize) -> u32 {
        if !self.in_isolated[dst] {
            return ALL;
        }
        let mut acc = NONE;
        for &(rule, conn) in &self.in_grants[dst] {
            if self.rule_has_class(rule, src) {
                acc = w.t.union(acc, conn);
                if acc == ALL {
                    break;
                }
            }
        }
        acc
    }

    fn np_egress(&self, w: &mut Work, src: usize, dst: usize) -> u32 {
        if !self.eg_isolated[src] {
            return ALL;
        }
        let profile = self.e.classes.classes[dst].profile;
        let mut acc = NONE;
        for &rule in &self.eg_rules[src] {
            if self.rule_has_class(rule, dst) {
                let c = self.rule_conn(w, rule, profile);
                acc = w.t.union(acc, c);
                if acc == ALL {
                    break;
                }
            }
        }
        acc
    }

    /// The source classes whose traffic `dst`'s ingress side may admit: `None` for every class
    /// (`dst` is not isolated for ingress, or one of its rules has no peers), else the union of
    /// the peer sets of the rules of the NetworkPolicies selecting it. A class outside the set gets
    /// `NONE` from [`Plan::ingress`], hence from [`Plan::pair`], so enumerating only the set
    /// gives the same result with work in proportion to the pairs that may connect. Anything
    /// that makes `ingress` admit more than these rules must widen the set.
    fn ingress_sources(&self, dst: usize) -> Option<BitSet> {
        // An AdminNetworkPolicy or BaselineAdminNetworkPolicy selecting the class may allow
        // sources no NetworkPolicy rule names (`Plan::with_admin`).
        if !self.in_isolated[dst] || self.e.admin_selects_class(Direction::Ingress, dst) {
            return None;
        }
        let mut set = BitSet::new(self.e.classes.classes.len());
        for &(rule, _) in &self.in_grants[dst] {
            set.union_with(self.e.classes.rule_classes[rule].as_ref()?);
        }
        Some(set)
    }

    /// What gets from class `src` to class `dst`, whether it goes through the HBONE tunnel,
    /// and which of it AuthorizationPolicy admits only for some requests.
    fn pair(&self, w: &mut Work, src: usize, dst: usize) -> (u32, bool, u32) {
        let ing = self.ingress(w, dst, src);
        if ing == NONE {
            return (NONE, false, NONE);
        }
        let eg = self.egress(w, src, dst);
        let direct = w.t.inter(eg, ing);
        let classes = &self.e.classes.classes;
        let (conn, tunnel) = if classes[src].ambient && classes[dst].ambient {
            w.tunnel(direct)
        } else {
            (direct, false)
        };
        self.authz(w, (src, false), dst, conn, tunnel)
    }

    /// `conn` narrowed by the destination's AuthorizationPolicies ([`crate::authz`]).
    fn authz(&self, w: &mut Work, src: (usize, bool), dst: usize, conn: u32, tunnel: bool) -> (u32, bool, u32) {
        if conn == NONE || !self.e.authz.active {
            return (conn, tunnel, NONE);
        }
        let key = (src.0, src.1, dst);
        let (possible, cond) = match w.authz.get(&key) {
            Some(&v) => v,
            None => {
                let (s, g) = if src.1 { (None, Some(src.0)) } else { (Some(src.0), None) };
                let (possible, cond) = self.e.authz_classes(s, g, dst);
                let v = (w.t.intern(possible), w.t.intern(cond));
                w.authz.insert(key, v);
                v
            }
        };
        let conn = w.t.inter(conn, possible);
        let cond = w.t.inter(conn, cond);
        (conn, tunnel && conn != NONE, cond)
    }

    fn np_ingress_from_region(&self, w: &mut Work, dst: usize, region: usize) -> u32 {
        if !self.in_isolated[dst] {
            return ALL;
        }
        let mut acc = NONE;
        for &(rule, conn) in &self.in_grants[dst] {
            if self.rule_has_region(rule, region) {
                acc = w.t.union(acc, conn);
            }
        }
        acc
    }

    fn np_egress_to_region(&self, w: &mut Work, src: usize, region: usize) -> u32 {
        if !self.eg_isolated[src] {
            return ALL;
        }
        let mut acc = NONE;
        for &rule in &self.eg_rules[src] {
            if self.rule_has_region(rule, region) {
                acc = w.t.union(acc, self.rule_ext[rule]);
            }
        }
        acc
    }
}

impl BitSet {
    /// The members, in increasing order.
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    i * 64 + bit
                })
            })
        })
    }
}

/// Turns per-region allowances into disjoint CIDRs, merging regions with equal allowances.
fn external_cidrs(e: &Engine, region_conns: &[u32]) -> Vec<(IpNet, u32)> {
    let mut by_conn: BTreeMap<u32, Vec<IpNet>> = BTreeMap::new();
    for (g, &c) in region_conns.iter().enumerate() {
        if c != NONE {
            by_conn
                .entry(c)
                .or_default()
                .extend(e.regions.atoms[g].iter().copied());
        }
    }
    let mut out: Vec<(IpNet, u32)> = by_conn
        .into_iter()
        .flat_map(|(c, nets)| IpNet::aggregate(&nets).into_iter().map(move |n| (n, c)))
        .collect();
    out.sort_unstable();
    out
}

impl Engine {
    /// All-pairs reachability grouped by owning workload, plus traffic from and to the external
    /// regions described in the module docs. Only pairs with some traffic allowed are listed.
    pub fn reach(&self) -> Reach {
        self.reach_where(|_| true, true)
    }

    /// The entries of [`Engine::reach`] whose destination is a workload `dst` accepts (from
    /// workloads and from outside the cluster), computed for those destinations only: what
    /// `audit` needs about databases without the all-pairs work. Sources that reach none of them
    /// are absent; [`Reach::endpoints`] still lists every workload.
    pub fn reach_into(&self, dst: impl Fn(&WorkloadRef) -> bool) -> Reach {
        self.reach_where(dst, false)
    }

    fn reach_where(&self, wanted: impl Fn(&WorkloadRef) -> bool, outbound_external: bool) -> Reach {
        let mut w = Work {
            t: ConnTable::new(),
            resolved: IntMap::default(),
            tunnels: IntMap::default(),
            authz: HashMap::new(),
        };
        let plan = Plan::new(self, &mut w);
        let idx = &self.classes;
        let n_w = self.workloads.len();
        let n_c = idx.classes.len();
        let n_r = self.regions.len();

        // Provisional endpoint ids: workloads keep theirs (already sorted); external CIDRs get
        // n_w + insertion order and are renumbered at the end.
        let mut ext_ids: HashMap<IpNet, u32> = HashMap::new();
        let mut ext_nets: Vec<IpNet> = Vec::new();
        let mut ext_memo: HashMap<Vec<u32>, Vec<(IpNet, u32)>> = HashMap::new();
        let mut entries: Vec<(u32, u32, u32, bool, u32)> = Vec::new();
        let mut emit_external =
            |region_conns: Vec<u32>,
             workload: u32,
             outbound: bool,
             entries: &mut Vec<(u32, u32, u32, bool, u32)>| {
                let cidrs = ext_memo
                    .entry(region_conns)
                    .or_insert_with_key(|k| external_cidrs(self, k));
                for &(net, conn) in cidrs.iter() {
                    let id = *ext_ids.entry(net).or_insert_with(|| {
                        ext_nets.push(net);
                        (n_w + ext_nets.len() - 1) as u32
                    });
                    entries.push(if outbound {
                        (workload, id, conn, false, NONE)
                    } else {
                        (id, workload, conn, false, NONE)
                    });
                }
            };

        // By destination: for each of its classes, only the source classes its ingress rules
        // can admit (`Plan::ingress_sources`), the union over the classes of both workloads.
        let mut acc = vec![NONE; n_w];
        let mut acc_cond = vec![NONE; n_w];
        let mut tunnelled = vec![false; n_w];
        let mut touched: Vec<usize> = Vec::new();
        let mut region_acc = vec![NONE; n_r];
        for wd in 0..n_w {
            if !wanted(&self.workloads[wd]) {
                continue;
            }
            for &d in &idx.workload_classes[wd] {
                let mut visit = |s: usize| {
                    let (conn, tunnel, cond) = plan.pair(&mut w, s, d);
                    if conn == NONE {
                        return;
                    }
                    for &ws in &idx.classes[s].workloads {
                        if acc[ws] == NONE {
                            touched.push(ws);
                        }
                        acc[ws] = w.t.union(acc[ws], conn);
                        acc_cond[ws] = w.t.union(acc_cond[ws], cond);
                        tunnelled[ws] |= tunnel;
                    }
                };
                match plan.ingress_sources(d) {
                    None => (0..n_c).for_each(&mut visit),
                    Some(set) => set.ones().for_each(&mut visit),
                }
                for (g, slot) in region_acc.iter_mut().enumerate() {
                    let c = plan.ingress_from_region(&mut w, d, g);
                    let (c, ..) = plan.authz(&mut w, (g, true), d, c, false);
                    *slot = w.t.union(*slot, c);
                }
            }
            for &ws in &touched {
                entries.push((ws as u32, wd as u32, acc[ws], tunnelled[ws], acc_cond[ws]));
                acc[ws] = NONE;
                acc_cond[ws] = NONE;
                tunnelled[ws] = false;
            }
            touched.clear();
            emit_external(
                std::mem::replace(&mut region_acc, vec![NONE; n_r]),
                wd as u32,
                false,
                &mut entries,
            );
        }
        if outbound_external {
            for ws in 0..n_w {
                for &s in &idx.workload_classes[ws] {
                    for (g, slot) in region_acc.iter_mut().enumerate() {
                        let c = plan.egress_to_region(&mut w, s, g);
                        *slot = w.t.union(*slot, c);
                    }
                }
                emit_external(
                    std::mem::replace(&mut region_acc, vec![NONE; n_r]),
                    ws as u32,
                    true,
                    &mut entries,
                );
            }
        }

        // Renumber external endpoints in sorted order, keep only used connections, sort.
        let mut order: Vec<usize> = (0..ext_nets.len()).collect();
        order.sort_unstable_by_key(|&i| ext_nets[i]);
        let mut rank = vec![0u32; ext_nets.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = (n_w + r) as u32;
        }
        let remap = |id: u32| {
            if (id as usize) < n_w {
                id
            } else {
                rank[id as usize - n_w]
            }
        };
        let mut conn_ids: HashMap<u32, u32> = HashMap::new();
        let mut conns: Vec<Connection> = Vec::new();
        // The empty connection first, so that `NONE` keeps meaning none.
        conn_ids.insert(NONE, NONE);
        conns.push(Connection::none());
        for e in entries.iter_mut() {
            let mut id = |c: u32| {
                *conn_ids.entry(c).or_insert_with(|| {
                    conns.push(w.t.conns[c as usize].clone());
                    (conns.len() - 1) as u32
                })
            };
            let (c, cond) = (id(e.2), id(e.4));
            *e = (remap(e.0), remap(e.1), c, e.3, cond);
        }
        entries.sort_unstable();

        let mut endpoints: Vec<Endpoint> = self
            .workloads
            .iter()
            .cloned()
            .map(Endpoint::Workload)
            .collect();
        endpoints.extend(order.iter().map(|&i| Endpoint::External(ext_nets[i])));
        Reach {
            endpoints,
            conns,
            entries,
        }
    }
}
