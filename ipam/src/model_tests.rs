//! A model-based property test of the allocator over [`MemStore`]: random networks (subnet,
//! `--ip-range`, `--gateway`, allocation order, an optional IPv6 range set) and random
//! sequences of ADD (with and without `--ip`), DEL and GC, each checked against a model
//! computed independently: addresses are unique, inside the range, never the gateway,
//! network or broadcast address; the allocator picks exactly the address its order names;
//! released addresses can be had again; GC releases exactly the owners not listed.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use crate::allocator::Allocator;
use crate::config::{AllocationOrder, IpamConfig, RangeConfig};
use crate::error::IpamError;
use crate::memstore::MemStore;
use crate::store::Owner;

/// A network as the test draws it (offsets are from the subnet's network address).
#[derive(Debug, Clone)]
struct Net {
    prefix: u8,
    gateway: Option<u32>,
    ip_range: Option<(u8, u32)>,
    lowest: bool,
    v6: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    AddAt(u8, u32),
    Del(u8),
    Gc(u16),
    Reuse(u8),
}

/// One range set of the model: the addresses it may hand out, in the allocator's order.
#[derive(Debug)]
struct ModelSet {
    /// In-range addresses, lowest first (the gateway excluded).
    pool: Vec<IpAddr>,
    /// Addresses `--ip` may ask for (the whole subnet but network, broadcast, gateway).
    requestable: Vec<IpAddr>,
    last: Option<IpAddr>,
}

struct Model {
    sets: Vec<ModelSet>,
    lowest: bool,
    held: BTreeMap<u8, Vec<IpAddr>>,
    released: Vec<IpAddr>,
}

const V4_BASE: u32 = 0x0a09_0000; // 10.9.0.0
const V6_BASE: u128 = 0xfd00_0009 << 96; // fd00:9::

fn v4(off: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(V4_BASE + off))
}

fn v6(off: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(V6_BASE + u128::from(off)))
}

fn net_strategy() -> impl Strategy<Value = Net> {
    (26u8..=29, any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |(prefix, has_gw, has_range, v6)| {
            let size = 1u32 << (32 - prefix);
            let gateway = if has_gw {
                (1..size - 1).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            let ip_range = if has_range {
                (1u8..=2)
                    .prop_flat_map(|extra| (Just(extra), 0u32..(1 << extra)))
                    .prop_map(Some)
                    .boxed()
            } else {
                Just(None).boxed()
            };
            (Just(prefix), gateway, ip_range, any::<bool>(), Just(v6)).prop_map(
                |(prefix, gateway, ip_range, lowest, v6)| Net {
                    prefix,
                    gateway,
                    ip_range,
                    lowest,
                    v6,
                },
            )
        },
    )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..16).prop_map(Op::Add),
        2 => (0u8..16, 0u32..64).prop_map(|(o, off)| Op::AddAt(o, off)),
        3 => (0u8..16).prop_map(Op::Del),
        1 => any::<u16>().prop_map(Op::Gc),
        1 => (0u8..16).prop_map(Op::Reuse),
    ]
}

fn owner(o: u8) -> Owner {
    Owner {
        container_id: format!("{o:064x}"),
        ifname: "eth0".into(),
    }
}

impl Net {
    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    fn config(&self) -> IpamConfig {
        let size = self.size();
        let mut v4_range = RangeConfig {
            subnet: format!("{}/{}", v4(0), self.prefix),
            gateway: self.gateway.map(v4),
            ..RangeConfig::default()
        };
        if let Some((extra, block)) = self.ip_range {
            let len = size >> extra;
            v4_range.ip_range = Some(format!("{}/{}", v4(block * len), self.prefix + extra));
        }
        let mut ranges = vec![vec![v4_range]];
        if self.v6 {
            ranges.push(vec![RangeConfig {
                subnet: format!("{}/{}", v6(0), u32::from(self.prefix) + 96),
                ..RangeConfig::default()
            }]);
        }
        IpamConfig {
            ranges,
            allocation: if self.lowest {
                AllocationOrder::Lowest
            } else {
                AllocationOrder::Sequential
            },
            ..IpamConfig::default()
        }
    }

    /// The model's range sets, computed from the drawn numbers alone.
    fn model(&self) -> Model {
        let size = self.size();
        let (mut start, mut end) = (1, size - 2);
        if let Some((extra, block)) = self.ip_range {
            let len = size >> extra;
            start = start.max(block * len);
            end = end.min(block * len + len - 1);
        }
        // Docker: without --gateway, the first host address of --ip-range (or the subnet).
        let gateway = self.gateway.unwrap_or(start);
        let mut sets = vec![ModelSet {
            pool: (start..=end).filter(|&o| o != gateway).map(v4).collect(),
            requestable: (1..size - 1).filter(|&o| o != gateway).map(v4).collect(),
            last: None,
        }];
        if self.v6 {
            sets.push(ModelSet {
                pool: (2..size).map(v6).collect(),
                requestable: (2..size).map(v6).collect(),
                last: None,
            });
        }
        Model {
            sets,
            lowest: self.lowest,
            held: BTreeMap::new(),
            released: Vec::new(),
        }
    }

    /// A range the config refuses (an `--ip-range` that holds only the gateway).
    fn refused(&self) -> bool {
        let m = self.model();
        m.sets[0].pool.is_empty()
    }
}

impl Model {
    fn used(&self) -> Vec<IpAddr> {
        self.held.values().flatten().copied().collect()
    }

    /// The address the allocator must pick from set `i`: the lowest free one, or the first
    /// free one after the last handed out, wrapping around.
    fn next(&self, i: usize) -> Option<IpAddr> {
        let used = self.used();
        let set = &self.sets[i];
        let after = match (self.lowest, set.last) {
            (false, Some(last)) => set.pool.iter().position(|&ip| ip == last).map(|p| p + 1),
            _ => None,
        }
        .unwrap_or(0);
        let n = set.pool.len();
        (0..n)
            .map(|k| set.pool[(after + k) % n])
            .find(|ip| !used.contains(ip))
    }
}

/// Runs one operation on both and compares.
fn step(a: &Allocator<MemStore>, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Add(o) => add(a, m, o, None),
        Op::AddAt(o, off) => add(a, m, o, Some(v4(off))),
        Op::Reuse(o) => {
            let free = m
                .released
                .iter()
                .rev()
                .find(|ip| ip.is_ipv4() && !m.used().contains(ip));
            match free.copied() {
                Some(ip) => add(a, m, o, Some(ip)),
                None => Ok(()),
            }
        }
        Op::Del(o) => {
            let mut freed = a.release(&owner(o)).unwrap();
            let mut want = m.held.remove(&o).unwrap_or_default();
            freed.sort();
            want.sort();
            prop_assert_eq!(&freed, &want);
            m.released.extend(want);
            Ok(())
        }
        Op::Gc(mask) => {
            let valid: Vec<Owner> = (0u8..16)
                .filter(|o| mask & (1 << o) != 0)
                .map(owner)
                .collect();
            let mut stale = a.gc(&valid).unwrap();
            stale.sort();
            let want: Vec<Owner> = m
                .held
                .keys()
                .filter(|o| mask & (1 << **o) == 0)
                .map(|o| owner(*o))
                .collect();
            prop_assert_eq!(&stale, &want);
            m.held.retain(|o, _| mask & (1 << o) != 0);
            Ok(())
        }
    }
}

fn add(
    a: &Allocator<MemStore>,
    m: &mut Model,
    o: u8,
    requested: Option<IpAddr>,
) -> Result<(), TestCaseError> {
    let got = a.allocate(&owner(o), &requested.into_iter().collect::<Vec<_>>());
    if let Some(ip) = requested {
        if !m.sets[0].requestable.contains(&ip) {
            prop_assert!(
                matches!(got, Err(IpamError::BadRequest { .. })),
                "{ip} is not requestable: {got:?}"
            );
            return Ok(());
        }
    }
    if let Some(held) = m.held.get(&o) {
        let got: Vec<IpAddr> = got.unwrap().iter().map(|l| l.address.addr()).collect();
        prop_assert_eq!(&got, held, "a repeated ADD returns what it holds");
        return Ok(());
    }
    if let Some(ip) = requested {
        if m.used().contains(&ip) {
            prop_assert!(
                matches!(got, Err(IpamError::AddressInUse { .. })),
                "{ip} is taken: {got:?}"
            );
            return Ok(());
        }
    }
    let want: Vec<Option<IpAddr>> = (0..m.sets.len())
        .map(|i| match (i, requested) {
            (0, Some(ip)) => Some(ip),
            _ => m.next(i),
        })
        .collect();
    if want.iter().any(Option::is_none) {
        prop_assert!(
            matches!(got, Err(IpamError::Exhausted { .. })),
            "the range is full: {got:?}"
        );
        prop_assert!(
            a.leases_of(&owner(o)).unwrap().is_none(),
            "nothing recorded"
        );
        return Ok(());
    }
    let got: Vec<IpAddr> = got.unwrap().iter().map(|l| l.address.addr()).collect();
    let want: Vec<IpAddr> = want.into_iter().flatten().collect();
    prop_assert_eq!(&got, &want, "the address the order names");
    for (i, ip) in got.iter().enumerate() {
        if requested.is_none() || i > 0 {
            m.sets[i].last = Some(*ip);
        }
    }
    add_model(m, o, a, got)
}

/// Records `got` for `o` and checks the invariants over everything held.
fn add_model(
    m: &mut Model,
    o: u8,
    a: &Allocator<MemStore>,
    got: Vec<IpAddr>,
) -> Result<(), TestCaseError> {
    let used = m.used();
    for (i, ip) in got.iter().enumerate() {
        prop_assert!(!used.contains(ip), "{ip} handed out twice");
        prop_assert!(m.sets[i].requestable.contains(ip), "{ip} is a host address");
    }
    let leases = a.leases_of(&owner(o)).unwrap().unwrap();
    let gateways: Vec<IpAddr> = leases.iter().map(|l| l.gateway).collect();
    prop_assert!(
        got.iter().all(|ip| !gateways.contains(ip)),
        "never the gateway"
    );
    m.held.insert(o, got);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_allocator_follows_its_model(net in net_strategy(), ops in prop::collection::vec(op_strategy(), 1..120)) {
        let sets = net.config().range_sets();
        if net.refused() {
            prop_assert!(sets.is_err(), "a range holding only the gateway is refused");
            return Ok(());
        }
        let a = Allocator::new("net1", sets.unwrap(), net.config().allocation, MemStore::default());
        let mut m = net.model();
        for op in &ops {
            step(&a, &mut m, op)?;
        }
    }
}
