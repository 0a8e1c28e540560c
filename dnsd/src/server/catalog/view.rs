//! Whom one query is answered for: a container (the names of every network it is on), the
//! host at a network's gateway (that network's names), or nobody.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use super::{name_hash, Catalog, Network};

/// Whom one query is answered for.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) who: Who,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Who {
    /// A container: the names of every network it is on.
    Container(u32),
    /// The host at a network's gateway: that network's names.
    Network(u32),
    /// An asker no record is registered for: no names, nothing forwarded.
    Nobody,
}

impl<'a> View<'a> {
    /// A view of nothing.
    pub fn nobody(catalog: &'a Catalog) -> Self {
        View {
            catalog,
            who: Who::Nobody,
        }
    }

    /// The networks whose names answer (a network twice when the container has two
    /// interfaces on it).
    fn networks(&self) -> impl Iterator<Item = (u32, &'a Network)> + 'a {
        let cat = self.catalog;
        let (container, network) = match self.who {
            Who::Container(c) => (Some(c), None),
            Who::Network(n) => (None, Some(n)),
            Who::Nobody => (None, None),
        };
        container
            .into_iter()
            .flat_map(move |c| cat.chain(c).map(|e| e.network))
            .chain(network)
            .filter_map(move |n| cat.networks.get(n).map(|net| (n, net)))
    }

    /// The asker's own upstream resolvers, if its container has any.
    pub fn own_upstreams(&self) -> Vec<SocketAddr> {
        let Who::Container(c) = self.who else {
            return Vec::new();
        };
        self.catalog
            .chain(c)
            .find(|e| e.upstreams > 0)
            .map(|e| e.upstreams().map(|ip| SocketAddr::new(ip, 53)).collect())
            .unwrap_or_default()
    }

    /// Whether names no network of the view knows may be forwarded (not when all its
    /// networks are internal).
    pub fn forward(&self) -> bool {
        self.networks().any(|(_, n)| n.open > 0)
    }

    /// Gathers into `found` the addresses (IPv6 if `v6`, else IPv4) of `name` (lowercase,
    /// no trailing dot; `name.network` counts for `name` on that network). Returns whether
    /// any record has that name, whatever its addresses.
    pub fn lookup(&self, name: &str, v6: bool, found: &mut Found) -> bool {
        found.addrs.clear();
        found.turn = None;
        if self.linked(name, v6, found) {
            return true;
        }
        let mut known = false;
        for (id, net) in self.networks() {
            known |= self.gather(id, name.as_bytes(), v6, found);
            let plain = name
                .strip_suffix(&*net.lower)
                .and_then(|p| p.strip_suffix('.'))
                .filter(|p| !p.is_empty());
            if let Some(plain) = plain {
                known |= self.gather(id, plain.as_bytes(), v6, found);
            }
        }
        if found.addrs.len() > 1 {
            found.addrs.sort_unstable();
            found.addrs.dedup();
        }
        known
    }

    /// A container's own links come first (as in Docker's resolver): an alias of one of
    /// its links on a network (`alias` or `alias.network`) answers as the linked container
    /// there. Whether a linked container had the name.
    fn linked(&self, name: &str, v6: bool, found: &mut Found) -> bool {
        let cat = self.catalog;
        let Who::Container(c) = self.who else {
            return false;
        };
        if cat.links.is_empty() {
            return false;
        }
        let mut known = false;
        for (id, e) in cat.chain_ids(c) {
            let (Some(links), Some(net)) = (cat.links.get(&id), cat.networks.get(e.network)) else {
                continue;
            };
            let plain = name
                .strip_suffix(&*net.lower)
                .and_then(|p| p.strip_suffix('.'))
                .unwrap_or(name);
            for (_, target) in links
                .iter()
                .filter(|(alias, _)| **alias == *plain.as_bytes())
            {
                known |= self.gather(e.network, target, v6, found);
            }
        }
        if found.addrs.len() > 1 {
            found.addrs.sort_unstable();
            found.addrs.dedup();
        }
        known
    }

    fn gather(&self, network: u32, name: &[u8], v6: bool, found: &mut Found) -> bool {
        let cat = self.catalog;
        let mut known = false;
        for slot in cat.names.iter_hash(name_hash(&cat.hasher, network, name)) {
            let Some(e) = cat.records.get(slot.record) else {
                continue;
            };
            if e.network != network || e.name(usize::from(slot.part)) != name {
                continue;
            }
            known = true;
            found
                .turn
                .get_or_insert_with(|| usize::from(slot.turn.fetch_add(1, Ordering::Relaxed)));
            found.addrs.extend(e.ips().filter(|ip| ip.is_ipv6() == v6));
        }
        known
    }

    /// The name PTR answers for `ip`: `name.network` of the record with that address.
    pub fn ptr(&self, ip: IpAddr) -> Option<String> {
        self.networks().find_map(|(id, net)| {
            let e = self.catalog.record_at(id, ip)?;
            let label = std::str::from_utf8(e.name(usize::from(e.label))).ok()?;
            (!label.is_empty()).then(|| format!("{label}.{}", net.lower))
        })
    }
}

/// The addresses behind a name, for one answer; kept by the caller between queries, so
/// that answering allocates nothing once it has grown.
#[derive(Debug, Default)]
pub struct Found {
    /// Every address of the asked family, each once.
    pub addrs: Vec<IpAddr>,
    /// Where the rotation starts: None when no record has the name.
    pub turn: Option<usize>,
}
