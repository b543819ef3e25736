//! `ipBlock` arithmetic on top of `ipnet`: membership, overlap with a queried range, and the
//! partition of the address space into the regions that external reachability is reported on.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A validated `ipBlock`: `cidr` minus `except`, every prefix truncated to its network address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Whether the single address `ip` is in the block.
    pub(crate) fn contains_ip(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }

    /// Whether *some* address of `range` is in the block.
    pub(crate) fn overlaps(&self, range: &IpNet) -> bool {
        let inter = if self.cidr.contains(range) {
            *range
        } else if range.contains(&self.cidr) {
            self.cidr
        } else {
            return false;
        };
        !subtract(inter, &self.except).is_empty()
    }

    /// The first `except` entry that contains `ip`, if any.
    pub(crate) fn excepted_by(&self, ip: IpAddr) -> Option<&IpNet> {
        self.except.iter().find(|e| e.contains(&ip))
    }
}

/// The two address families' whole spaces.
pub(crate) fn universe() -> [IpNet; 2] {
    [IpNet::V4(Ipv4Net::default()), IpNet::V6(Ipv6Net::default())]
}

/// `base` minus the union of `holes`, as disjoint prefixes in address order.
pub(crate) fn subtract(base: IpNet, holes: &[IpNet]) -> Vec<IpNet> {
    let mut out = Vec::new();
    subtract_into(base, holes, &mut out);
    out
}

fn subtract_into(base: IpNet, holes: &[IpNet], out: &mut Vec<IpNet>) {
    if holes.iter().any(|h| h.contains(&base)) {
        return;
    }
    let inside: Vec<IpNet> = holes
        .iter()
        .filter(|h| base.contains(*h))
        .copied()
        .collect();
    if inside.is_empty() {
        out.push(base);
        return;
    }
    // Some hole is strictly inside `base`, so `base` is not a host route and can be halved.
    let halves = base
        .subnets(base.prefix_len() + 1)
        .expect("a prefix with a strictly smaller prefix inside it can be split");
    for half in halves {
        subtract_into(half, &inside, out);
    }
}

/// The partition of the address space that external reachability is reported on.
///
/// Every `cidr` and `except` prefix mentioned by any `ipBlock`, plus `0.0.0.0/0` and `::/0`, is
/// a *region*. An address belongs to the region of the longest mentioned prefix containing it;
/// so region `r` owns `r` minus every mentioned prefix strictly inside `r` (its `atoms`, a list
/// of disjoint prefixes). Every `ipBlock` treats all addresses of one region alike: it contains
/// the whole region iff its `cidr` contains `r` and no `except` entry contains `r`, and contains
/// none of it otherwise. Regions whose atoms are empty (fully covered by more specific
/// prefixes) are dropped.
#[derive(Clone, Debug, Default)]
pub(crate) struct Regions {
    pub prefixes: Vec<IpNet>,
    pub atoms: Vec<Vec<IpNet>>,
}

impl Regions {
    pub(crate) fn new(blocks: &[IpBlock]) -> Regions {
        let mut mentioned: Vec<IpNet> = universe().to_vec();
        for b in blocks {
            mentioned.push(b.cidr);
            mentioned.extend(b.except.iter().copied());
        }
        mentioned.sort_unstable();
        mentioned.dedup();
        let mut regions = Regions::default();
        for &r in &mentioned {
            let inner: Vec<IpNet> = mentioned
                .iter()
                .filter(|&&m| m != r && r.contains(&m))
                .copied()
                .collect();
            let atoms = subtract(r, &inner);
            if !atoms.is_empty() {
                regions.prefixes.push(r);
                regions.atoms.push(atoms);
            }
        }
        regions
    }

    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether `block` contains all of region `i` (else it contains none of it).
    pub(crate) fn block_contains(&self, block: &IpBlock, i: usize) -> bool {
        let r = &self.prefixes[i];
        block.cidr.contains(r) && !block.except.iter().any(|e| e.contains(r))
    }
}

/// Parses a CIDR the way the API's legacy CIDR fields are used: host bits are allowed and
/// dropped (`10.1.2.3/8` is `10.0.0.0/8`).
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, AddressError> {
    s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| AddressError::Cidr { text: s.to_string() })
}

/// An address or CIDR of a policy that is not one; the text as written (the caller adds the
/// field path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AddressError {
    #[error("invalid CIDR {text:?}: must be an address and prefix length such as 10.0.0.0/8 or fd00::/8")]
    Cidr { text: String },
    #[error("invalid address {text:?}")]
    Address { text: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn subtraction_yields_disjoint_prefixes() {
        assert_eq!(
            subtract(n("10.0.0.0/8"), &[n("10.1.0.0/16")]),
            vec![
                n("10.0.0.0/16"),
                n("10.2.0.0/15"),
                n("10.4.0.0/14"),
                n("10.8.0.0/13"),
                n("10.16.0.0/12"),
                n("10.32.0.0/11"),
                n("10.64.0.0/10"),
                n("10.128.0.0/9")
            ]
        );
        assert!(subtract(n("10.0.0.0/24"), &[n("10.0.0.0/25"), n("10.0.0.128/25")]).is_empty());
        assert_eq!(
            subtract(n("10.0.0.0/24"), &[n("192.168.0.0/16")]),
            vec![n("10.0.0.0/24")]
        );
        assert!(subtract(n("10.0.0.0/24"), &[n("0.0.0.0/0")]).is_empty());
    }

    #[test]
    fn block_membership_and_overlap() {
        let b = IpBlock {
            cidr: n("10.0.0.0/8"),
            except: vec![n("10.1.0.0/16")],
        };
        assert!(b.contains_ip("10.2.3.4".parse().unwrap()));
        assert!(!b.contains_ip("10.1.3.4".parse().unwrap()));
        assert!(!b.contains_ip("fd00::1".parse().unwrap()));
        assert!(b.overlaps(&n("0.0.0.0/0")));
        assert!(b.overlaps(&n("10.0.0.0/15")));
        assert!(!b.overlaps(&n("10.1.2.0/24")));
        assert!(!b.overlaps(&n("11.0.0.0/8")));
        assert!(!b.overlaps(&n("::/0")));
    }

    #[test]
    fn regions_partition_by_longest_mentioned_prefix() {
        let blocks = vec![
            IpBlock {
                cidr: n("10.0.0.0/8"),
                except: vec![n("10.1.0.0/16")],
            },
            IpBlock {
                cidr: n("10.0.0.0/24"),
                except: vec![n("10.0.0.0/25"), n("10.0.0.128/25")],
            },
        ];
        let r = Regions::new(&blocks);
        // 10.0.0.0/24 is fully covered by its two excepts, so it owns no address.
        assert_eq!(
            r.prefixes,
            vec![
                n("0.0.0.0/0"),
                n("10.0.0.0/8"),
                n("10.0.0.0/25"),
                n("10.0.0.128/25"),
                n("10.1.0.0/16"),
                n("::/0")
            ]
        );
        let i8 = r
            .prefixes
            .iter()
            .position(|p| *p == n("10.0.0.0/8"))
            .unwrap();
        let i16 = r
            .prefixes
            .iter()
            .position(|p| *p == n("10.1.0.0/16"))
            .unwrap();
        assert!(r.block_contains(&blocks[0], i8));
        assert!(!r.block_contains(&blocks[0], i16));
        assert!(!r.block_contains(&blocks[0], 0));
        // Atoms of all regions tile each family exactly once.
        let mut v4: Vec<IpNet> = r
            .atoms
            .iter()
            .flatten()
            .filter(|a| matches!(a, IpNet::V4(_)))
            .copied()
            .collect();
        v4.sort();
        assert_eq!(IpNet::aggregate(&v4), vec![n("0.0.0.0/0")]);
        let total: u64 = v4.iter().map(|a| 1u64 << (32 - a.prefix_len())).sum();
        assert_eq!(total, 1u64 << 32);
    }

    #[test]
    fn cidr_parsing_truncates_host_bits_and_rejects_garbage() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap(), n("10.0.0.0/8"));
        assert_eq!(parse_cidr("10.0.0.0"), Err(AddressError::Cidr { text: "10.0.0.0".into() }));
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
