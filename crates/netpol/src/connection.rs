//! What traffic is allowed between two endpoints: everything, or a set of port ranges per
//! protocol.
//!
//! `All` is kept distinct from "every port of TCP, UDP and SCTP" on purpose: a NetworkPolicy rule
//! without `ports` also admits ICMP and any other IP protocol, while a rule that lists ports only
//! ever admits the listed transport ports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Transport protocol of a NetworkPolicy port or a container port.
///
/// The API accepts exactly `TCP`, `UDP` and `SCTP` (case-sensitive); the engine rejects anything
/// else rather than guessing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// All protocols a NetworkPolicy port can name, in output order.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The API spelling: `TCP`, `UDP` or `SCTP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a protocol string that is not exactly `TCP`, `UDP` or `SCTP`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported protocol {0:?}: must be one of TCP, UDP, SCTP")]
pub struct ProtocolParseError(pub String);

impl FromStr for Protocol {
    type Err = ProtocolParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            other => Err(ProtocolParseError(other.to_string())),
        }
    }
}

/// An inclusive range of ports of one protocol. `start == end` is a single port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub protocol: Protocol,
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// A single port.
    pub fn single(protocol: Protocol, port: u16) -> Self {
        PortRange {
            protocol,
            start: port,
            end: port,
        }
    }

    /// Every valid port (1-65535) of `protocol`.
    pub fn full(protocol: Protocol) -> Self {
        PortRange {
            protocol,
            start: 1,
            end: u16::MAX,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{} {}", self.protocol, self.start)
        } else {
            write!(f, "{} {}-{}", self.protocol, self.start, self.end)
        }
    }
}

/// JSON shape of one range: `{"protocol":"TCP","port":5432}` or with `"endPort"` for ranges.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PortRangeRepr {
    protocol: Protocol,
    port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_port: Option<u16>,
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PortRangeRepr {
            protocol: self.protocol,
            port: self.start,
            end_port: (self.end != self.start).then_some(self.end),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = PortRangeRepr::deserialize(deserializer)?;
        let end = repr.end_port.unwrap_or(repr.port);
        if repr.port == 0 || end < repr.port {
            return Err(serde::de::Error::custom(format!(
                "invalid port range {}-{}",
                repr.port, end
            )));
        }
        Ok(PortRange {
            protocol: repr.protocol,
            start: repr.port,
            end,
        })
    }
}

/// A normalized set of port ranges: sorted by protocol then start, with overlapping or adjacent
/// ranges of the same protocol merged, so equal sets compare and hash equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortSet {
    ranges: Vec<PortRange>,
}

impl PortSet {
    /// The empty set: no traffic.
    pub const fn new() -> Self {
        PortSet { ranges: Vec::new() }
    }

    /// Builds a normalized set from arbitrary ranges. Ranges with `start > end` or port 0 as
    /// start are clamped/ignored: `start` is raised to 1, empty ranges are dropped.
    pub fn from_ranges(ranges: impl IntoIterator<Item = PortRange>) -> Self {
        let mut v: Vec<PortRange> = ranges
            .into_iter()
            .map(|r| PortRange {
                start: r.start.max(1),
                ..r
            })
            .filter(|r| r.start <= r.end)
            .collect();
        v.sort_unstable();
        let mut out: Vec<PortRange> = Vec::with_capacity(v.len());
        for r in v {
            match out.last_mut() {
                Some(last)
                    if last.protocol == r.protocol
                        && u32::from(r.start) <= u32::from(last.end) + 1 =>
                {
                    last.end = last.end.max(r.end);
                }
                _ => out.push(r),
            }
        }
        PortSet { ranges: out }
    }

    /// The normalized ranges.
    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `port` of `protocol` is in the set.
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.ranges
            .iter()
            .any(|r| r.protocol == protocol && r.start <= port && port <= r.end)
    }

    pub fn union(&self, other: &PortSet) -> PortSet {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        PortSet::from_ranges(self.ranges.iter().chain(other.ranges.iter()).copied())
    }

    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let (a, b) = (&self.ranges, &other.ranges);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let (x, y) = (a[i], b[j]);
            if x.protocol != y.protocol {
                if x.protocol < y.protocol {
                    i += 1;
                } else {
                    j += 1;
                }
                continue;
            }
            let start = x.start.max(y.start);
            let end = x.end.min(y.end);
            if start <= end {
                out.push(PortRange {
                    protocol: x.protocol,
                    start,
                    end,
                });
            }
            if x.end < y.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        // Both inputs are normalized, so pieces come out sorted and disjoint; adjacent pieces
        // can only arise from adjacent inputs, which normalization already merged.
        PortSet { ranges: out }
    }

    /// Whether every range of `self` is inside `other`.
    pub fn is_subset(&self, other: &PortSet) -> bool {
        self.intersect(other) == *self
    }

    /// Every port of every protocol (TCP, UDP and SCTP 1-65535).
    pub fn every_port() -> PortSet {
        PortSet::from_ranges(Protocol::ALL.map(PortRange::full))
    }

    /// The ports of TCP, UDP and SCTP that are not in the set.
    pub fn complement(&self) -> PortSet {
        let mut out = Vec::new();
        for protocol in Protocol::ALL {
            let mut next: u32 = 1;
            for r in self.ranges.iter().filter(|r| r.protocol == protocol) {
                if u32::from(r.start) > next {
                    out.push(PortRange {
                        protocol,
                        start: next as u16,
                        end: r.start - 1,
                    });
                }
                next = u32::from(r.end) + 1;
            }
            if next <= u32::from(u16::MAX) {
                out.push(PortRange {
                    protocol,
                    start: next as u16,
                    end: u16::MAX,
                });
            }
        }
        PortSet::from_ranges(out)
    }

    /// The ports of `self` that are not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        if other.is_empty() || self.is_empty() {
            return self.clone();
        }
        self.intersect(&other.complement())
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Traffic allowed between two endpoints.
///
/// `All` admits every protocol and port (including ICMP and other non-port protocols);
/// `Ports` admits only the listed transport ports. `Ports` with an empty set means no traffic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Connection {
    All,
    Ports(PortSet),
}

impl Default for Connection {
    fn default() -> Self {
        Connection::none()
    }
}

impl Connection {
    /// No traffic at all.
    pub const fn none() -> Self {
        Connection::Ports(PortSet::new())
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Connection::All)
    }

    /// True when no traffic is allowed.
    pub fn is_none(&self) -> bool {
        matches!(self, Connection::Ports(p) if p.is_empty())
    }

    /// Whether traffic to `port` over `protocol` is allowed.
    pub fn allows(&self, protocol: Protocol, port: u16) -> bool {
        match self {
            Connection::All => true,
            Connection::Ports(p) => p.contains(protocol, port),
        }
    }

    pub fn union(&self, other: &Connection) -> Connection {
        match (self, other) {
            (Connection::All, _) | (_, Connection::All) => Connection::All,
            (Connection::Ports(a), Connection::Ports(b)) => Connection::Ports(a.union(b)),
        }
    }

    pub fn intersect(&self, other: &Connection) -> Connection {
        match (self, other) {
            (Connection::All, x) | (x, Connection::All) => x.clone(),
            (Connection::Ports(a), Connection::Ports(b)) => Connection::Ports(a.intersect(b)),
        }
    }

    /// Whether everything `self` allows is also allowed by `other`.
    pub fn is_subset(&self, other: &Connection) -> bool {
        match (self, other) {
            (_, Connection::All) => true,
            (Connection::All, Connection::Ports(_)) => false,
            (Connection::Ports(a), Connection::Ports(b)) => a.is_subset(b),
        }
    }
}

impl From<PortSet> for Connection {
    fn from(p: PortSet) -> Self {
        Connection::Ports(p)
    }
}

impl fmt::Display for Connection {
    /// `All connections`, `No connections`, or e.g. `TCP 5432,UDP 53-54`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::All => f.write_str("All connections"),
            Connection::Ports(p) if p.is_empty() => f.write_str("No connections"),
            Connection::Ports(p) => write!(f, "{p}"),
        }
    }
}

impl Serialize for Connection {
    /// `"all"`, or a list of `{"protocol","port","endPort"?}` objects.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Connection::All => serializer.serialize_str("all"),
            Connection::Ports(p) => p.ranges.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Ranges(Vec<PortRange>),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Word(w) if w == "all" => Ok(Connection::All),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "expected \"all\" or a list of ports, got {w:?}"
            ))),
            Repr::Ranges(r) => Ok(Connection::Ports(PortSet::from_ranges(r))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: Protocol, s: u16, e: u16) -> PortRange {
        PortRange {
            protocol: p,
            start: s,
            end: e,
        }
    }

    #[test]
    fn normalization_merges_overlapping_and_adjacent_ranges_per_protocol() {
        let s = PortSet::from_ranges([
            r(Protocol::Udp, 54, 54),
            r(Protocol::Tcp, 10, 20),
            r(Protocol::Udp, 53, 53),
            r(Protocol::Tcp, 21, 25),
            r(Protocol::Tcp, 15, 18),
            r(Protocol::Sctp, 1, 1),
        ]);
        assert_eq!(
            s.ranges(),
            &[
                r(Protocol::Tcp, 10, 25),
                r(Protocol::Udp, 53, 54),
                r(Protocol::Sctp, 1, 1)
            ]
        );
    }

    #[test]
    fn intersection_is_per_protocol() {
        let a = PortSet::from_ranges([r(Protocol::Tcp, 1, 100), r(Protocol::Udp, 53, 53)]);
        let b = PortSet::from_ranges([
            r(Protocol::Tcp, 50, 60),
            r(Protocol::Tcp, 90, 200),
            r(Protocol::Sctp, 53, 53),
        ]);
        assert_eq!(
            a.intersect(&b).ranges(),
            &[r(Protocol::Tcp, 50, 60), r(Protocol::Tcp, 90, 100)]
        );
        assert!(a.intersect(&PortSet::new()).is_empty());
    }

    #[test]
    fn all_is_identity_for_intersection_and_absorbing_for_union() {
        let p = Connection::Ports(PortSet::from_ranges([r(Protocol::Tcp, 5432, 5432)]));
        assert_eq!(Connection::All.intersect(&p), p);
        assert_eq!(p.intersect(&Connection::All), p);
        assert_eq!(Connection::All.union(&p), Connection::All);
        assert!(Connection::none().intersect(&Connection::All).is_none());
        assert!(p.is_subset(&Connection::All));
        assert!(!Connection::All.is_subset(&p));
    }

    #[test]
    fn display_matches_the_cli_format() {
        assert_eq!(Connection::All.to_string(), "All connections");
        assert_eq!(Connection::none().to_string(), "No connections");
        let c = Connection::Ports(PortSet::from_ranges([
            r(Protocol::Udp, 53, 54),
            r(Protocol::Tcp, 5432, 5432),
        ]));
        assert_eq!(c.to_string(), "TCP 5432,UDP 53-54");
    }

    #[test]
    fn json_shape_has_end_port_only_for_ranges() {
        let c = Connection::Ports(PortSet::from_ranges([
            r(Protocol::Udp, 53, 54),
            r(Protocol::Tcp, 5432, 5432),
        ]));
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(
            j,
            r#"[{"protocol":"TCP","port":5432},{"protocol":"UDP","port":53,"endPort":54}]"#
        );
        assert_eq!(serde_json::from_str::<Connection>(&j).unwrap(), c);
        assert_eq!(serde_json::to_string(&Connection::All).unwrap(), r#""all""#);
        assert_eq!(
            serde_json::from_str::<Connection>(r#""all""#).unwrap(),
            Connection::All
        );
        assert!(serde_json::from_str::<Connection>(r#""some""#).is_err());
        assert!(
            serde_json::from_str::<Connection>(r#"[{"protocol":"TCP","port":9,"endPort":8}]"#)
                .is_err()
        );
    }

    #[test]
    fn complement_and_difference_partition_every_port() {
        let a = PortSet::from_ranges([r(Protocol::Tcp, 1, 100), r(Protocol::Udp, 53, 53)]);
        let b = PortSet::from_ranges([r(Protocol::Tcp, 50, 60), r(Protocol::Udp, 1, 65535)]);
        assert_eq!(
            a.difference(&b).ranges(),
            &[r(Protocol::Tcp, 1, 49), r(Protocol::Tcp, 61, 100)]
        );
        let c = a.complement();
        assert!(c.intersect(&a).is_empty());
        assert_eq!(c.union(&a), PortSet::every_port());
        assert_eq!(PortSet::every_port().complement(), PortSet::new());
        assert_eq!(PortSet::new().complement(), PortSet::every_port());
        let edge = PortSet::from_ranges([r(Protocol::Sctp, 1, 1), r(Protocol::Sctp, 65535, 65535)]);
        assert_eq!(
            edge.complement().ranges(),
            &[
                r(Protocol::Tcp, 1, 65535),
                r(Protocol::Udp, 1, 65535),
                r(Protocol::Sctp, 2, 65534)
            ]
        );
    }

    #[test]
    fn protocol_parsing_is_case_sensitive() {
        assert_eq!("SCTP".parse::<Protocol>().unwrap(), Protocol::Sctp);
        assert!("tcp".parse::<Protocol>().is_err());
        assert!("ICMP".parse::<Protocol>().is_err());
    }
}
