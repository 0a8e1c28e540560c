//! The allocator: one address from each range set per attachment, requested or the next
//! free one, recorded in the store under its lock.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{AllocationOrder, IpamConfig};
use crate::error::IpamError;
use crate::range::{Range, RangeSet};
use crate::store::{FileStore, Owner, Store, Txn};

/// An address handed to an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The address with its subnet's prefix length.
    pub address: IpNet,
    /// The subnet's gateway.
    pub gateway: IpAddr,
}

/// Allocates addresses of one network.
#[derive(Debug)]
pub struct Allocator<S: Store> {
    network: String,
    sets: Vec<RangeSet>,
    order: AllocationOrder,
    store: S,
}

impl Allocator<FileStore> {
    /// The allocator of `network` as its IPAM configuration describes it, on the file store.
    pub fn from_config(network: &str, cfg: &IpamConfig) -> Result<Self, IpamError> {
        let sets = cfg.range_sets()?;
        let store = FileStore::new(&cfg.data_dir(), network);
        Ok(Allocator::new(network, sets, cfg.allocation, store))
    }

    /// How each subnet's addresses are used; a network whose store was never made has
    /// nothing allocated (and reading does not make one).
    pub fn stored_usage(&self) -> Result<Vec<crate::range::SubnetUsage>, IpamError> {
        if self.store.dir().exists() {
            return self.usage();
        }
        Ok(self
            .sets
            .iter()
            .flat_map(|s| s.ranges())
            .map(|r| r.usage(&[]))
            .collect())
    }

    /// Removes the network's store (when the network itself is removed), under its lock
    /// and only when it holds no allocation; a store already gone is fine.
    pub fn remove_store(&self) -> Result<(), IpamError> {
        let dir = self.store.dir();
        if !dir.exists() {
            return Ok(());
        }
        let txn = self.store.lock()?;
        if let Some(owner) = txn.owners()?.into_iter().next() {
            return Err(IpamError::InvalidConfig(format!(
                "network {} still has an address allocated to {}: remove its containers first",
                self.network,
                owner.key()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| IpamError::store(dir, e))
    }
}

impl<S: Store> Allocator<S> {
    /// An allocator over `sets`, recording in `store`.
    pub fn new(network: &str, sets: Vec<RangeSet>, order: AllocationOrder, store: S) -> Self {
        Allocator {
            network: network.into(),
            sets,
            order,
            store,
        }
    }

    /// The range sets.
    pub fn range_sets(&self) -> &[RangeSet] {
        &self.sets
    }

    /// One address from each range set for `owner`. A repeated call returns what `owner`
    /// already holds. `requested` addresses are used for the sets whose subnet holds them;
    /// each must be inside a subnet, not its network, broadcast or gateway address, and free.
    pub fn allocate(&self, owner: &Owner, requested: &[IpAddr]) -> Result<Vec<Lease>, IpamError> {
        let wanted = self.match_requested(requested)?;
        let mut txn = self.store.lock()?;
        if let Some(held) = txn.lease_of(owner)? {
            return Ok(self.leases(&held));
        }
        let mut picked = Vec::with_capacity(self.sets.len());
        for (i, set) in self.sets.iter().enumerate() {
            let ip = match wanted[i] {
                Some(ip) => self.check_free(&txn, ip)?,
                None => self.next_free(&txn, i, set)?,
            };
            picked.push(ip);
        }
        txn.reserve(owner, &picked)?;
        for (i, ip) in picked.iter().enumerate() {
            if wanted[i].is_none() {
                txn.set_last_reserved(i, *ip)?;
            }
        }
        txn.commit()?;
        Ok(self.leases(&picked))
    }

    /// Releases what `owner` holds; releasing an unknown owner succeeds. A release is visible
    /// to every other process at once but not forced to disk: one lost to a power failure
    /// leaves an allocation that GC returns, while a lost allocation could be handed out
    /// twice, so only allocations wait for the disk.
    pub fn release(&self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let mut txn = self.store.lock()?;
        let freed = txn.release(owner)?;
        txn.commit()?;
        Ok(freed)
    }

    /// The leases `owner` holds, if any.
    pub fn leases_of(&self, owner: &Owner) -> Result<Option<Vec<Lease>>, IpamError> {
        let txn = self.store.lock()?;
        Ok(txn.lease_of(owner)?.map(|ips| self.leases(&ips)))
    }

    /// Releases every allocation whose owner is not in `valid`, and every orphaned
    /// reservation; returns the owners released.
    pub fn gc(&self, valid: &[Owner]) -> Result<Vec<Owner>, IpamError> {
        let mut txn = self.store.lock()?;
        let stale: Vec<Owner> = txn
            .owners()?
            .into_iter()
            .filter(|o| !valid.contains(o))
            .collect();
        for o in &stale {
            txn.release(o)?;
        }
        txn.remove_orphans()?;
        txn.commit()?;
        Ok(stale)
    }

    /// How each subnet's addresses are used, read under the store's lock.
    pub fn usage(&self) -> Result<Vec<crate::range::SubnetUsage>, IpamError> {
        let txn = self.store.lock()?;
        let mut allocated = Vec::new();
        for owner in txn.owners()? {
            allocated.extend(txn.lease_of(&owner)?.unwrap_or_default());
        }
        Ok(self
            .sets
            .iter()
            .flat_map(|s| s.ranges())
            .map(|r| r.usage(&allocated))
            .collect())
    }

    /// Whether every range set still has a free address.
    pub fn can_allocate(&self) -> Result<bool, IpamError> {
        let txn = self.store.lock()?;
        for (i, set) in self.sets.iter().enumerate() {
            match self.next_free(&txn, i, set) {
                Ok(_) => {}
                Err(IpamError::Exhausted { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn leases(&self, ips: &[IpAddr]) -> Vec<Lease> {
        ips.iter()
            .filter_map(|ip| {
                let range = self.sets.iter().find_map(|s| s.range_for(*ip))?;
                Some(Lease {
                    address: IpNet::new(*ip, range.subnet().prefix_len()).ok()?,
                    gateway: range.gateway(),
                })
            })
            .collect()
    }

    /// For each range set, the requested address that falls in it.
    fn match_requested(&self, requested: &[IpAddr]) -> Result<Vec<Option<IpAddr>>, IpamError> {
        let mut wanted = vec![None; self.sets.len()];
        for ip in requested {
            let bad = |why: String| IpamError::BadRequest {
                ip: *ip,
                network: self.network.clone(),
                why,
            };
            let (i, range) = self
                .sets
                .iter()
                .enumerate()
                .find_map(|(i, s)| Some((i, s.range_for(*ip)?)))
                .ok_or_else(|| bad(format!("it is outside every subnet ({})", self.subnets())))?;
            range.check_requested(*ip).map_err(bad)?;
            if wanted[i].replace(*ip).is_some() {
                return Err(bad(format!(
                    "another address was requested from {}",
                    range.subnet()
                )));
            }
        }
        Ok(wanted)
    }

    fn subnets(&self) -> String {
        let all: Vec<String> = self
            .sets
            .iter()
            .flat_map(|s| s.ranges().iter().map(|r| r.subnet().to_string()))
            .collect();
        all.join(", ")
    }

    fn check_free(&self, txn: &S::Txn<'_>, ip: IpAddr) -> Result<IpAddr, IpamError> {
        match txn.owner_of(ip)? {
            None => Ok(ip),
            Some(o) => Err(IpamError::AddressInUse {
                ip,
                network: self.network.clone(),
                owner: o.key(),
            }),
        }
    }

    /// The first free address of `set`, searching from just after the last one handed out
    /// (sequential) or from the start (lowest), wrapping around once.
    fn next_free(
        &self,
        txn: &S::Txn<'_>,
        index: usize,
        set: &RangeSet,
    ) -> Result<IpAddr, IpamError> {
        let ranges = set.ranges();
        let (mut r, mut offset) = match self.order {
            AllocationOrder::Lowest => (0, 0),
            AllocationOrder::Sequential => resume_point(ranges, txn.last_reserved(index)?),
        };
        let total = ranges
            .iter()
            .fold(0u128, |acc, x| acc.saturating_add(x.len()));
        let mut seen = 0u128;
        while seen < total {
            if offset >= ranges[r].len() {
                r = (r + 1) % ranges.len();
                offset = 0;
            }
            let ip = ranges[r].nth(offset);
            offset += 1;
            seen += 1;
            if !ranges[r].is_reserved(ip) && txn.owner_of(ip)?.is_none() {
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted {
            network: self.network.clone(),
            ranges: set.to_string(),
        })
    }
}

/// Where a sequential search starts: just after `last`, or at the first range's start.
fn resume_point(ranges: &[Range], last: Option<IpAddr>) -> (usize, u128) {
    last.and_then(|ip| {
        ranges.iter().enumerate().find_map(|(i, r)| {
            r.in_span(ip).then(|| {
                (
                    i,
                    crate::range::to_u128(ip) - crate::range::to_u128(r.start()) + 1,
                )
            })
        })
    })
    .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStore;

    fn owner(c: &str) -> Owner {
        Owner {
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn alloc(cfg: serde_json::Value) -> Allocator<MemStore> {
        let cfg: IpamConfig = serde_json::from_value(cfg).unwrap();
        Allocator::new(
            "net1",
            cfg.range_sets().unwrap(),
            cfg.allocation,
            MemStore::default(),
        )
    }

    fn first(a: &Allocator<MemStore>, who: &str) -> String {
        a.allocate(&owner(who), &[]).unwrap()[0].address.to_string()
    }

    #[test]
    fn ip_range_hands_out_2_3_4_and_never_the_gateway() {
        let a = alloc(
            serde_json::json!({"subnet": "172.72.0.0/16", "ipRange": "172.72.0.0/24", "gateway": "172.72.0.1"}),
        );
        assert_eq!(first(&a, "a"), "172.72.0.2/16");
        assert_eq!(first(&a, "b"), "172.72.0.3/16");
        assert_eq!(first(&a, "c"), "172.72.0.4/16");
        let lease = a.leases_of(&owner("a")).unwrap().unwrap();
        assert_eq!(lease[0].gateway, ip("172.72.0.1"));
    }

    #[test]
    fn auxiliary_addresses_are_never_handed_out_nor_taken_on_request() {
        let a = alloc(serde_json::json!({"ranges": [[{"subnet": "10.0.0.0/24",
            "auxiliaryAddresses": {"router": "10.0.0.2", "printer": "10.0.0.3"}}]]}));
        assert_eq!(first(&a, "a"), "10.0.0.4/24");
        let e = a
            .allocate(&owner("b"), &[ip("10.0.0.3")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("auxiliary address"), "{e}");
        let outside: Result<IpamConfig, _> = serde_json::from_value(serde_json::json!({"ranges":
            [[{"subnet": "10.0.0.0/24", "auxiliaryAddresses": {"x": "10.9.0.3"}}]]}));
        assert!(outside.unwrap().range_sets().is_err());
    }

    #[test]
    fn a_repeated_add_returns_the_same_address() {
        let a = alloc(serde_json::json!({"subnet": "10.0.0.0/24"}));
        assert_eq!(first(&a, "a"), first(&a, "a"));
        assert_eq!(first(&a, "b"), "10.0.0.3/24");
    }

    #[test]
    fn sequential_order_does_not_reuse_a_freed_address_at_once_and_wraps_around() {
        let a = alloc(serde_json::json!({"subnet": "10.0.0.0/29"})); // hosts .1-.6, gateway .1
        for c in ["a", "b", "c", "d", "e"] {
            first(&a, c);
        }
        a.release(&owner("b")).unwrap(); // frees .3
                                         // .2-.6 were taken, .3 freed: the search wraps past .6 and finds .3.
        assert_eq!(first(&a, "f"), "10.0.0.3/29");
        a.release(&owner("a")).unwrap(); // frees .2
        a.release(&owner("c")).unwrap(); // frees .4
                                         // The last handed out was .3, so .4 comes next, not the lower .2.
        assert_eq!(first(&a, "g"), "10.0.0.4/29");
    }

    #[test]
    fn lowest_order_reuses_the_lowest_free_address_like_docker() {
        let a = alloc(serde_json::json!({"subnet": "10.0.0.0/24", "allocation": "lowest"}));
        for c in ["a", "b", "c"] {
            first(&a, c);
        }
        a.release(&owner("a")).unwrap();
        assert_eq!(first(&a, "d"), "10.0.0.2/24");
    }

    #[test]
    fn an_exhausted_pool_names_the_network_and_range() {
        let a = alloc(serde_json::json!({"subnet": "10.0.0.0/30"})); // .1 gateway, .2 only
        first(&a, "a");
        let e = a.allocate(&owner("b"), &[]).unwrap_err().to_string();
        assert!(e.contains("net1") && e.contains("10.0.0.0/30"), "{e}");
        assert!(!a.can_allocate().unwrap());
    }

    #[test]
    fn requested_addresses_are_checked() {
        let a = alloc(serde_json::json!({"subnet": "10.0.0.0/24", "ipRange": "10.0.0.128/25"}));
        // Inside the subnet but outside ipRange is allowed, as Docker's --ip is.
        assert_eq!(
            a.allocate(&owner("a"), &[ip("10.0.0.5")]).unwrap()[0]
                .address
                .to_string(),
            "10.0.0.5/24"
        );
        let taken = a.allocate(&owner("b"), &[ip("10.0.0.5")]).unwrap_err();
        assert!(matches!(taken, IpamError::AddressInUse { .. }), "{taken}");
        assert!(taken.to_string().contains("a:eth0"));
        for (bad, why) in [
            ("10.9.9.9", "outside every subnet"),
            ("10.0.0.128", "gateway"),
            ("10.0.0.0", "network address"),
            ("10.0.0.255", "broadcast"),
        ] {
            let e = a.allocate(&owner("c"), &[ip(bad)]).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A failed request leaves nothing behind.
        assert!(a.leases_of(&owner("c")).unwrap().is_none());
        // Docker's gateway: the range's first address, the first container the next.
        assert_eq!(first(&a, "d"), "10.0.0.129/24");
    }

    #[test]
    fn dual_stack_gives_one_address_per_family() {
        let a = alloc(
            serde_json::json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/64"}]]}),
        );
        let leases = a.allocate(&owner("a"), &[ip("fd00:1::42")]).unwrap();
        let got: Vec<String> = leases.iter().map(|l| l.address.to_string()).collect();
        assert_eq!(got, vec!["10.1.0.2/24", "fd00:1::42/64"]);
        assert_eq!(leases[1].gateway, ip("fd00:1::1"));
        assert_eq!(a.release(&owner("a")).unwrap().len(), 2);
    }

    #[test]
    fn range_start_and_end_bound_the_search_across_ranges_of_a_set() {
        let a = alloc(serde_json::json!({"ranges": [[
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.11"},
            {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.20", "rangeEnd": "10.0.1.20"}
        ]]}));
        let got: Vec<String> = ["a", "b", "c"].iter().map(|c| first(&a, c)).collect();
        assert_eq!(got, vec!["10.0.0.10/24", "10.0.0.11/24", "10.0.1.20/24"]);
        assert!(a.allocate(&owner("d"), &[]).is_err());
    }

    #[test]
    fn gc_releases_everything_not_in_the_valid_list() {
        let a = alloc(serde_json::json!({"subnet": "10.0.0.0/24"}));
        for c in ["a", "b", "c"] {
            first(&a, c);
        }
        let mut gone = a.gc(&[owner("b")]).unwrap();
        gone.sort();
        assert_eq!(gone, vec![owner("a"), owner("c")]);
        assert!(a.leases_of(&owner("a")).unwrap().is_none());
        assert!(a.leases_of(&owner("b")).unwrap().is_some());
    }

    #[test]
    fn the_file_store_keeps_allocations_across_allocators() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = IpamConfig {
            subnet: Some("10.5.0.0/24".into()),
            data_dir: Some(dir.path().to_path_buf().try_into().unwrap()),
            ..IpamConfig::default()
        };
        let a = Allocator::from_config("n", &cfg).unwrap();
        assert_eq!(
            a.allocate(&owner("a"), &[]).unwrap()[0].address.to_string(),
            "10.5.0.2/24"
        );
        let b = Allocator::from_config("n", &cfg).unwrap();
        assert_eq!(
            b.allocate(&owner("b"), &[]).unwrap()[0].address.to_string(),
            "10.5.0.3/24"
        );
        assert_eq!(
            b.allocate(&owner("a"), &[]).unwrap()[0].address.to_string(),
            "10.5.0.2/24"
        );
    }
}
