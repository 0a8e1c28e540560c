//! What the server answers from: every record, indexed for the answer path and changed one
//! record at a time, so that a container coming or going costs its own names, never a
//! rebuild of everyone's (which took milliseconds at a thousand records and held up answers
//! while containers churned).
//!
//! Memory is what a host with many containers pays for: a record's strings and addresses
//! are packed in one allocation (an IPv4 address in 5 bytes), the indexes hold 4- or 8-byte
//! slots that point into the record table, and a name asked with its network (`web.lan`)
//! is answered by stripping the network instead of being stored twice.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU16;

use foldhash::quality::RandomState;
use hashbrown::HashTable;
use netctl_dnsrecords::Record;

mod entry;
mod view;

use entry::{entry, Entry};
use view::Who;
pub use view::{Found, View};

/// No record: the end of a container's chain.
const NONE: u32 = u32::MAX;
/// Records one server holds at most.
pub const MAX_RECORDS: usize = 1 << 30;
/// Names one record may answer to (its name, aliases and short ID), and addresses it may
/// have of each kind (its own, its resolvers, its network's gateways).
pub const MAX_PER_RECORD: usize = 255;

/// Why a record cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// More names or addresses than one record may have.
    #[error("the record has {1} {0}; at most {MAX_PER_RECORD} are served")]
    TooMany(&'static str, usize),
    /// A container ID or interface name too long to be one.
    #[error("the record's {0} is {1} bytes long; container IDs must be under 64 KiB and interface names under 256 bytes")]
    TooLong(&'static str, usize),
    /// More records than the server indexes.
    #[error("the server already holds {0} records, as many as it can index")]
    Full(usize),
}

/// A network: its name, how many of its records there are and how many may forward, and
/// the gateways they name.
#[derive(Debug)]
struct Network {
    name: Box<str>,
    /// The name in lowercase, which qualified names (`web.lan`) end with.
    lower: Box<str>,
    records: u32,
    /// Records that are not internal: names the network does not know may be forwarded.
    open: u32,
    /// Each gateway and how many records name it.
    gateways: Vec<(IpAddr, u32)>,
}

#[derive(Debug)]
struct Container {
    /// Its first record; the others follow `Entry::sibling`.
    head: u32,
    netns: Option<Box<Path>>,
}

/// One name or address of one record, in an index.
#[derive(Debug)]
struct Slot {
    record: u32,
    /// Which of the record's names or addresses.
    part: u8,
    /// For a name: where its next answer's rotation starts (round robin).
    turn: AtomicU16,
}

impl Slot {
    fn new(record: u32, part: usize) -> Self {
        Slot {
            record,
            part: part as u8, // part < MAX_PER_RECORD
            turn: AtomicU16::new(0),
        }
    }
}

/// Values by index, holes refilled first.
#[derive(Debug)]
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)?.as_ref()
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }

    fn add(&mut self, t: T) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(t);
            return Some(i);
        }
        let i = u32::try_from(self.items.len()).ok().filter(|i| *i < NONE)?;
        self.items.push(Some(t));
        Some(i)
    }

    fn take(&mut self, i: u32) -> Option<T> {
        let t = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(t)
    }

    fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }
}

/// Where a listener sits, which decides whose names answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Place {
    /// 127.0.0.11 inside a container's namespace.
    Netns(PathBuf),
    /// A bridge network's gateway on the host.
    Gateway(IpAddr, String),
}

impl Place {
    /// The container namespace a query from this place came from.
    pub fn netns(&self) -> Option<&Path> {
        match self {
            Place::Netns(p) => Some(p),
            Place::Gateway(..) => None,
        }
    }
}

/// Every record the server serves, and the host's own addresses.
#[derive(Debug, Default)]
pub struct Catalog {
    hasher: RandomState,
    records: Slab<Entry>,
    containers: Slab<Container>,
    networks: Slab<Network>,
    network_ids: HashMap<Box<str>, u32, RandomState>,
    /// (network, container ID, interface) to record.
    by_key: HashTable<u32>,
    /// (network, name) to each record with that name.
    names: HashTable<Slot>,
    /// (network, address) to each record with that address.
    by_ip: HashTable<Slot>,
    /// Container ID to container (through its head record's ID).
    by_cid: HashTable<u32>,
    /// Namespace path to the container registered in it last.
    by_netns: HashTable<u32>,
    /// Record to its links, for the few that have any.
    links: HashMap<u32, Links, RandomState>,
    host: HashSet<IpAddr>,
}

/// A record's links as the catalog keeps them: (alias, linked name), lowercase.
type Links = Box<[(Box<[u8]>, Box<[u8]>)]>;

/// [`Links`] of a record.
fn links_of(r: &Record) -> Result<Links, CatalogError> {
    if r.links.len() > MAX_PER_RECORD {
        return Err(CatalogError::TooMany("links", r.links.len()));
    }
    let lower = |n: &str| {
        n.trim_end_matches('.')
            .to_ascii_lowercase()
            .into_bytes()
            .into()
    };
    Ok(r.links
        .iter()
        .map(|l| (lower(&l.alias), lower(&l.name)))
        .collect())
}

fn key_hash(h: &RandomState, e: &Entry) -> u64 {
    h.hash_one((e.network, e.cid(), e.ifname()))
}

fn name_hash(h: &RandomState, network: u32, name: &[u8]) -> u64 {
    h.hash_one((network, name))
}

fn ip_hash(h: &RandomState, network: u32, ip: IpAddr) -> u64 {
    h.hash_one((network, ip))
}

impl Catalog {
    /// How many records are served.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the host's own addresses: askers at a gateway with one of them are the host.
    pub fn set_host(&mut self, host: HashSet<IpAddr>) {
        self.host = host;
    }

    fn find_key(&self, network: u32, cid: &[u8], ifname: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one((network, cid, ifname));
        let records = &self.records;
        self.by_key
            .find(h, |&i| {
                records
                    .get(i)
                    .is_some_and(|e| e.network == network && e.cid() == cid && e.ifname() == ifname)
            })
            .copied()
    }

    /// Serves `r`, replacing the record of the same network, container and interface.
    /// Returns the places whose listeners may have to open or close.
    pub fn insert(&mut self, r: &Record) -> Result<Vec<Place>, CatalogError> {
        let mut e = entry(r)?;
        let links = links_of(r)?;
        if self.len() >= MAX_RECORDS {
            return Err(CatalogError::Full(self.len()));
        }
        let mut touched = self.remove(&r.network, &r.container_id, &r.ifname);
        // Below MAX_RECORDS records, every slab has room: none of these fail.
        let full = CatalogError::Full(self.len());
        e.network = self.network(&r.network).ok_or(full.clone())?;
        let (container, head) = self.container(&r.container_id);
        e.container = container.ok_or(full.clone())?;
        e.sibling = head;
        let id = self.records.add(e).ok_or(full)?;
        self.index(id);
        if !links.is_empty() {
            self.links.insert(id, links);
        }
        if let Some(c) = self.containers.get_mut(container.unwrap_or(NONE)) {
            c.head = id;
        }
        self.link_cid(id);
        if let (Some(c), Some(netns)) = (container, &r.netns) {
            self.link_netns(c, netns);
        }
        touched.extend(r.netns.clone().map(Place::Netns));
        touched.extend(
            r.gateways
                .iter()
                .map(|g| Place::Gateway(*g, r.network.clone())),
        );
        Ok(touched)
    }

    /// Adds record `id` to the key, name and address indexes and to its network's counts.
    fn index(&mut self, id: u32) {
        let Some(e) = self.records.get(id) else {
            return;
        };
        let h = &self.hasher;
        let records = &self.records;
        self.by_key.insert_unique(key_hash(h, e), id, |&i| {
            records.get(i).map_or(0, |e| key_hash(h, e))
        });
        for part in 0..e.name_count() {
            self.names.insert_unique(
                name_hash(h, e.network, e.name(part)),
                Slot::new(id, part),
                |s| slot_name_hash(h, records, s),
            );
        }
        for (part, ip) in e.ips().enumerate() {
            self.by_ip
                .insert_unique(ip_hash(h, e.network, ip), Slot::new(id, part), |s| {
                    slot_ip_hash(h, records, s)
                });
        }
        let (network, internal) = (e.network, e.internal);
        let gateways: Vec<IpAddr> = e.gateways().collect();
        if let Some(n) = self.networks.get_mut(network) {
            n.records += 1;
            n.open += u32::from(!internal);
            for g in gateways {
                match n.gateways.iter_mut().find(|(ip, _)| *ip == g) {
                    Some((_, count)) => *count += 1,
                    None => n.gateways.push((g, 1)),
                }
            }
        }
    }

    /// The network called `name`, added if new; None when no more fit.
    fn network(&mut self, name: &str) -> Option<u32> {
        if let Some(id) = self.network_ids.get(name) {
            return Some(*id);
        }
        let id = self.networks.add(Network {
            name: name.into(),
            lower: name.to_ascii_lowercase().into(),
            records: 0,
            open: 0,
            gateways: Vec::new(),
        })?;
        self.network_ids.insert(name.into(), id);
        Some(id)
    }

    /// The container with ID `cid` (added if new, None when no more fit) and its head
    /// record, which it leaves the ID index for until [`Self::link_cid`] puts it back
    /// under its new head.
    fn container(&mut self, cid: &str) -> (Option<u32>, u32) {
        if let Some(c) = self.unlink_cid(cid.as_bytes()) {
            let head = self.containers.get(c).map_or(NONE, |c| c.head);
            return (Some(c), head);
        }
        let c = self.containers.add(Container {
            head: NONE,
            netns: None,
        });
        (c, NONE)
    }

    /// Takes the container with ID `cid` out of the ID index.
    fn unlink_cid(&mut self, cid: &[u8]) -> Option<u32> {
        let (records, containers) = (&self.records, &self.containers);
        let head_cid = |c: u32| {
            containers
                .get(c)
                .and_then(|c| records.get(c.head))
                .map(Entry::cid)
        };
        let found = self
            .by_cid
            .find_entry(self.hasher.hash_one(cid), |&c| head_cid(c) == Some(cid))
            .ok()?;
        Some(found.remove().0)
    }

    /// Puts the container of record `id` (now its head) into the ID index.
    fn link_cid(&mut self, id: u32) {
        let Some(e) = self.records.get(id) else {
            return;
        };
        let (h, records, containers) = (&self.hasher, &self.records, &self.containers);
        self.by_cid
            .insert_unique(h.hash_one(e.cid()), e.container, |&c| {
                containers
                    .get(c)
                    .and_then(|c| records.get(c.head))
                    .map_or(0, |e| h.hash_one(e.cid()))
            });
    }

    /// Registers `container` as the one living in `netns`, in place of any other.
    fn link_netns(&mut self, container: u32, netns: &Path) {
        let old = self
            .containers
            .get_mut(container)
            .and_then(|c| c.netns.replace(netns.into()));
        if let Some(old) = old {
            self.unlink_netns(container, &old);
        }
        let (h, containers) = (&self.hasher, &self.containers);
        let netns_of = |c: u32| containers.get(c).and_then(|c| c.netns.as_deref());
        let hash = h.hash_one(netns);
        if let Ok(other) = self
            .by_netns
            .find_entry(hash, |&c| netns_of(c) == Some(netns))
        {
            other.remove();
        }
        self.by_netns.insert_unique(hash, container, |&c| {
            netns_of(c).map_or(0, |p| h.hash_one(p))
        });
    }

    fn unlink_netns(&mut self, container: u32, netns: &Path) {
        if let Ok(e) = self
            .by_netns
            .find_entry(self.hasher.hash_one(netns), |&c| c == container)
        {
            e.remove();
        }
    }

    /// Stops serving the record of `cid:ifname` on `network`. Returns the places whose
    /// listeners may have to close.
    pub fn remove(&mut self, network: &str, cid: &str, ifname: &str) -> Vec<Place> {
        let Some(&net) = self.network_ids.get(network) else {
            return Vec::new();
        };
        let Some(id) = self.find_key(net, cid.as_bytes(), ifname.as_bytes()) else {
            return Vec::new();
        };
        let Some(container) = self.records.get(id).map(|e| e.container) else {
            return Vec::new();
        };
        self.unindex(id);
        self.unlink_cid(cid.as_bytes());
        self.links.remove(&id);
        let Some(e) = self.records.take(id) else {
            return Vec::new();
        };
        self.unchain(container, id, e.sibling);
        let mut touched: Vec<Place> = e
            .gateways()
            .map(|g| Place::Gateway(g, network.to_string()))
            .collect();
        let netns = self.containers.get(container).and_then(|c| c.netns.clone());
        touched.extend(netns.map(|p| Place::Netns(p.into_path_buf())));
        self.drop_if_empty(Some(net), Some(container));
        touched
    }

    /// Takes record `id` out of the key, name and address indexes and its network's counts.
    fn unindex(&mut self, id: u32) {
        let Some(e) = self.records.get(id) else {
            return;
        };
        let h = &self.hasher;
        if let Ok(x) = self.by_key.find_entry(key_hash(h, e), |&i| i == id) {
            x.remove();
        }
        for part in 0..e.name_count() {
            let hash = name_hash(h, e.network, e.name(part));
            if let Ok(x) = self
                .names
                .find_entry(hash, |s| s.record == id && usize::from(s.part) == part)
            {
                x.remove();
            }
        }
        for (part, ip) in e.ips().enumerate() {
            let hash = ip_hash(h, e.network, ip);
            if let Ok(x) = self
                .by_ip
                .find_entry(hash, |s| s.record == id && usize::from(s.part) == part)
            {
                x.remove();
            }
        }
        let internal = e.internal;
        let gateways: Vec<IpAddr> = e.gateways().collect();
        if let Some(n) = self.networks.get_mut(e.network) {
            n.records -= 1;
            n.open -= u32::from(!internal);
            for g in gateways {
                if let Some((_, count)) = n.gateways.iter_mut().find(|(ip, _)| *ip == g) {
                    *count -= 1;
                }
            }
            n.gateways.retain(|(_, count)| *count > 0);
        }
    }

    /// Takes record `id` (whose next was `sibling`) out of its container's chain, and puts
    /// the container back in the ID index if it has records left.
    fn unchain(&mut self, container: u32, id: u32, sibling: u32) {
        let head = self.containers.get(container).map_or(NONE, |c| c.head);
        if head == id {
            if let Some(c) = self.containers.get_mut(container) {
                c.head = sibling;
            }
        } else {
            let mut at = head;
            while let Some(e) = self.records.get_mut(at) {
                if e.sibling == id {
                    e.sibling = sibling;
                    break;
                }
                at = e.sibling;
            }
        }
        let head = self.containers.get(container).map_or(NONE, |c| c.head);
        if head != NONE {
            self.link_cid(head);
        }
    }

    /// Forgets a container without records and a network without records.
    fn drop_if_empty(&mut self, network: Option<u32>, container: Option<u32>) {
        if let Some(c) = container {
            if self.containers.get(c).is_some_and(|c| c.head == NONE) {
                if let Some(netns) = self.containers.take(c).and_then(|c| c.netns) {
                    self.unlink_netns(c, &netns);
                }
            }
        }
        if let Some(n) = network {
            if self.networks.get(n).is_some_and(|n| n.records == 0) {
                if let Some(gone) = self.networks.take(n) {
                    self.network_ids.remove(&gone.name);
                }
            }
        }
    }

    /// Whether a listener at `place` is wanted: a container is registered in the namespace,
    /// or a record names the gateway.
    pub fn wants(&self, place: &Place) -> bool {
        match place {
            Place::Netns(p) => self.netns_container(p).is_some(),
            Place::Gateway(ip, net) => self
                .network_ids
                .get(net.as_str())
                .and_then(|n| self.networks.get(*n))
                .is_some_and(|n| n.gateways.iter().any(|(g, _)| g == ip)),
        }
    }

    /// Every place a listener is wanted at.
    pub fn places(&self) -> Vec<Place> {
        let netns = self
            .containers
            .items
            .iter()
            .flatten()
            .filter_map(|c| c.netns.as_deref())
            .filter(|p| self.netns_container(p).is_some())
            .map(|p| Place::Netns(p.to_path_buf()));
        let gateways = self.networks.items.iter().flatten().flat_map(|n| {
            n.gateways
                .iter()
                .map(|(g, _)| Place::Gateway(*g, n.name.to_string()))
        });
        netns.chain(gateways).collect()
    }

    fn netns_container(&self, netns: &Path) -> Option<u32> {
        let containers = &self.containers;
        self.by_netns
            .find(self.hasher.hash_one(netns), |&c| {
                containers.get(c).and_then(|c| c.netns.as_deref()) == Some(netns)
            })
            .copied()
    }

    /// The record on `network` with address `ip`.
    fn record_at(&self, network: u32, ip: IpAddr) -> Option<&Entry> {
        self.by_ip
            .iter_hash(ip_hash(&self.hasher, network, ip))
            .filter_map(|s| self.records.get(s.record).map(|e| (s, e)))
            .find(|(s, e)| e.network == network && e.ip(usize::from(s.part)) == Some(ip))
            .map(|(_, e)| e)
    }

    /// Whom a query arriving at `place` from `src` is answered for; None for an asker the
    /// place does not serve: at a gateway, anyone but the network's members and the host.
    pub fn view(&self, place: &Place, src: IpAddr) -> Option<View<'_>> {
        let who = match place {
            Place::Netns(p) => self.netns_container(p).map_or(Who::Nobody, Who::Container),
            Place::Gateway(_, net) => {
                let net = self.network_ids.get(net.as_str()).copied();
                match net.and_then(|n| self.record_at(n, src)) {
                    Some(e) => Who::Container(e.container),
                    None if src.is_loopback() || self.host.contains(&src) => {
                        net.map_or(Who::Nobody, Who::Network)
                    }
                    None => return None,
                }
            }
        };
        Some(View { catalog: self, who })
    }

    /// The records of container `c`.
    fn chain(&self, c: u32) -> impl Iterator<Item = &Entry> + '_ {
        self.chain_ids(c).map(|(_, e)| e)
    }

    /// [`Self::chain`] with each record's index.
    fn chain_ids(&self, c: u32) -> impl Iterator<Item = (u32, &Entry)> + '_ {
        let head = self.containers.get(c).map_or(NONE, |c| c.head);
        let at = |i: u32| self.records.get(i).map(|e| (i, e));
        std::iter::successors(at(head), move |(_, e)| at(e.sibling))
    }
}

fn slot_name_hash(h: &RandomState, records: &Slab<Entry>, s: &Slot) -> u64 {
    records
        .get(s.record)
        .map_or(0, |e| name_hash(h, e.network, e.name(usize::from(s.part))))
}

fn slot_ip_hash(h: &RandomState, records: &Slab<Entry>, s: &Slot) -> u64 {
    records.get(s.record).map_or(0, |e| {
        e.ip(usize::from(s.part))
            .map_or(0, |ip| ip_hash(h, e.network, ip))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::entry::record_names;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    fn rec(net: &str, id: &str, name: &str, alias: &str, ip: &str) -> Record {
        Record {
            network: net.into(),
            container_id: id.into(),
            ifname: "eth0".into(),
            name: Some(name.into()),
            aliases: vec![alias.into()],
            ips: vec![ip.parse().unwrap()],
            netns: Some(PathBuf::from(format!("/ns/{id}"))),
            gateways: vec![],
            internal: net == "int",
            ..Default::default()
        }
    }

    fn catalog(records: &[Record]) -> Catalog {
        let mut c = Catalog::default();
        for r in records {
            c.insert(r).unwrap();
        }
        c
    }

    fn ask(c: &Catalog, asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        let place = Place::Netns(PathBuf::from(format!("/ns/{asker}")));
        let view = c.view(&place, "127.0.0.1".parse().unwrap())?;
        let mut f = Found::default();
        let mut all = Vec::new();
        let mut known = false;
        for v6 in [false, true] {
            known |= view.lookup(name, v6, &mut f);
            all.extend(f.addrs.iter().copied());
        }
        known.then_some(all)
    }

    #[test]
    fn an_alias_behind_three_containers_has_three_addresses_and_rotates() {
        let c = catalog(&[
            rec("web", "a", "a1", "web", "172.18.0.2"),
            rec("web", "b", "b1", "web", "172.18.0.3"),
            rec("web", "c", "c1", "web", "172.18.0.4"),
        ]);
        assert_eq!(ask(&c, "a", "web").unwrap().len(), 3);
        assert_eq!(ask(&c, "a", "web.web").unwrap().len(), 3);
        let view = c
            .view(&Place::Netns("/ns/a".into()), "127.0.0.1".parse().unwrap())
            .unwrap();
        assert_eq!(
            view.ptr("172.18.0.3".parse().unwrap()).as_deref(),
            Some("b1.web")
        );
        let mut f = Found::default();
        view.lookup("web", false, &mut f);
        let first = f.turn.unwrap();
        view.lookup("web", false, &mut f);
        assert_eq!(f.turn, Some(first + 1));
    }

    /// `--link up:bar` of container a on network app: a asks `bar` (or `bar.app`) and gets
    /// up's address, before a container really called bar; nobody else sees the alias;
    /// a link to a container not there yet answers as soon as it comes, and goes with a's
    /// record.
    #[test]
    fn a_link_alias_answers_for_the_linking_container_alone() {
        let mut a = rec("app", "a", "a1", "a1", "10.0.0.5");
        a.links = vec![netctl_dnsrecords::Link {
            name: "up".into(),
            alias: "Bar".into(),
        }];
        let mut c = catalog(&[
            a.clone(),
            rec("app", "b", "b1", "b1", "10.0.0.6"),
            rec("app", "x", "bar", "bar", "10.0.0.9"),
        ]);
        let addr = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
        assert_eq!(ask(&c, "b", "bar"), Some(addr("10.0.0.9")));
        assert_eq!(
            ask(&c, "a", "bar"),
            Some(addr("10.0.0.9")),
            "up is not there yet"
        );
        c.insert(&rec("app", "u", "up", "up", "10.0.0.2")).unwrap();
        assert_eq!(ask(&c, "a", "bar"), Some(addr("10.0.0.2")));
        assert_eq!(ask(&c, "a", "bar.app"), Some(addr("10.0.0.2")));
        assert_eq!(ask(&c, "b", "bar"), Some(addr("10.0.0.9")));
        c.remove("app", "a", "eth0");
        assert!(c.links.is_empty());
        a.links.clear();
        c.insert(&a).unwrap();
        assert_eq!(ask(&c, "a", "bar"), Some(addr("10.0.0.9")));
    }

    #[test]
    fn a_dual_stack_record_keeps_each_address_of_each_kind() {
        let mut r = rec("web", "a", "a1", "web", "172.18.0.2");
        r.ips.push("fd00::2".parse().unwrap());
        r.upstreams = vec!["9.9.9.9".parse().unwrap(), "2620:fe::fe".parse().unwrap()];
        r.gateways = vec!["172.18.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let mut c = Catalog::default();
        let places = c.insert(&r).unwrap();
        let mut f = Found::default();
        let view = c
            .view(&Place::Netns("/ns/a".into()), "127.0.0.1".parse().unwrap())
            .unwrap();
        assert!(view.lookup("a1", false, &mut f));
        assert_eq!(f.addrs, ["172.18.0.2".parse::<IpAddr>().unwrap()]);
        assert!(view.lookup("a1", true, &mut f));
        assert_eq!(f.addrs, ["fd00::2".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            view.ptr("fd00::2".parse().unwrap()).as_deref(),
            Some("a1.web")
        );
        let own = view.own_upstreams();
        assert_eq!(
            own,
            [
                "9.9.9.9:53".parse().unwrap(),
                "[2620:fe::fe]:53".parse().unwrap()
            ]
        );
        for g in &r.gateways {
            assert!(places.contains(&Place::Gateway(*g, "web".into())), "{g}");
            // The record's own IPv6 address asks at its gateway as a member.
            assert!(c
                .view(
                    &Place::Gateway(*g, "web".into()),
                    "fd00::2".parse().unwrap()
                )
                .is_some());
        }
        assert_eq!(c.remove("web", "a", "eth0").len(), places.len());
        assert!(c.is_empty());
    }

    #[test]
    fn a_container_sees_only_the_networks_it_is_attached_to() {
        let c = catalog(&[
            rec("a", "x", "x", "xa", "10.1.0.2"),
            rec("b", "x", "x", "xb", "10.2.0.2"),
            rec("b", "y", "y", "yb", "10.2.0.3"),
            rec("int", "z", "z", "zi", "10.3.0.2"),
        ]);
        assert!(ask(&c, "x", "y").is_some() && ask(&c, "x", "xa").is_some());
        assert_eq!(
            ask(&c, "x", "x").unwrap().len(),
            2,
            "x has an address on both networks"
        );
        assert_eq!(
            ask(&c, "x", "x.a").unwrap(),
            ["10.1.0.2".parse::<IpAddr>().unwrap()]
        );
        assert!(ask(&c, "x", "z").is_none());
        assert!(ask(&c, "x", "y.a").is_none(), "y is not on a");
        let z = c
            .view(&Place::Netns("/ns/z".into()), "127.0.0.1".parse().unwrap())
            .unwrap();
        assert!(!z.forward(), "internal: no forwarding");
        assert!(ask(&c, "z", "x").is_none());
    }

    #[test]
    fn a_gateway_answers_members_with_their_containers_view_the_host_with_the_network_and_nobody_else(
    ) {
        let mut x = rec("b", "x", "x", "xb", "10.2.0.2");
        x.gateways = vec!["10.2.0.1".parse().unwrap()];
        let mut c = catalog(&[rec("a", "x", "x", "xa", "10.1.0.2"), x]);
        c.set_host(["192.168.1.5".parse().unwrap()].into());
        let gw = Place::Gateway("10.2.0.1".parse().unwrap(), "b".into());
        assert!(c.wants(&gw) && c.places().contains(&gw));
        let mut f = Found::default();
        let member = c.view(&gw, "10.2.0.2".parse().unwrap()).unwrap();
        assert!(
            member.lookup("xa", false, &mut f),
            "the member's own view: both networks"
        );
        let host = c.view(&gw, "192.168.1.5".parse().unwrap()).unwrap();
        assert!(!host.lookup("xa", false, &mut f) && host.lookup("xb", false, &mut f));
        assert!(
            c.view(&gw, "10.1.0.2".parse().unwrap()).is_none(),
            "not a member of b"
        );
        assert!(
            c.view(&gw, "10.9.9.9".parse().unwrap()).is_none(),
            "an outsider"
        );
        c.remove("b", "x", "eth0");
        assert!(!c.wants(&gw), "no record names the gateway any more");
    }

    #[test]
    fn a_containers_own_upstreams_are_found_by_its_namespace_and_addresses() {
        let mut r = rec("web", "c1", "a", "x", "172.18.0.2");
        r.upstreams = vec!["10.0.0.53".parse().unwrap()];
        r.gateways = vec!["172.18.0.1".parse().unwrap()];
        let c = catalog(&[r, rec("web", "c2", "b", "x", "172.18.0.3")]);
        let want = vec![SocketAddr::from(([10, 0, 0, 53], 53))];
        let lo = "127.0.0.1".parse().unwrap();
        let own = |place: &Place, src: IpAddr| {
            c.view(place, src)
                .map(|v| v.own_upstreams())
                .unwrap_or_default()
        };
        assert_eq!(own(&Place::Netns("/ns/c1".into()), lo), want);
        let gw = Place::Gateway("172.18.0.1".parse().unwrap(), "web".into());
        assert_eq!(own(&gw, "172.18.0.2".parse().unwrap()), want);
        assert!(own(&gw, "172.18.0.3".parse().unwrap()).is_empty());
    }

    /// The limit is what the error says: 255 names (name, aliases and short ID) and 255
    /// addresses are served; one more of either is refused, counting only its own kind.
    #[test]
    fn a_record_may_have_255_names_and_255_addresses_but_not_256() {
        let mut r = rec("web", "c1", "n", "a", "172.18.0.2");
        r.aliases = (0..253).map(|i| format!("a{i}")).collect();
        assert!(
            Catalog::default().insert(&r).is_ok(),
            "n + 253 aliases + c1"
        );
        r.aliases.push("a253".into());
        let err = Catalog::default().insert(&r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the record has 256 names; at most 255 are served"
        );
        r.aliases.pop();
        r.ips = (0..255u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        assert!(Catalog::default().insert(&r).is_ok(), "255 addresses");
        r.ips.push("10.1.0.0".parse().unwrap());
        let err = Catalog::default().insert(&r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the record has 256 addresses; at most 255 are served"
        );
    }

    #[test]
    fn names_that_cannot_be_asked_are_not_served_and_too_many_names_are_refused() {
        let mut r = rec("web", "c1", "bad\u{0}name", "also bad", "172.18.0.2");
        r.aliases.push("fine".into());
        let c = catalog(&[r.clone()]);
        assert!(ask(&c, "c1", "fine").is_some() && ask(&c, "c1", "c1").is_some());
        assert!(ask(&c, "c1", "also bad").is_none());
        r.aliases = (0..300).map(|i| format!("a{i}")).collect();
        let mut c = Catalog::default();
        assert!(matches!(
            c.insert(&r),
            Err(CatalogError::TooMany("names", _))
        ));
        assert!(c.is_empty());
    }

    /// The model: what the server answered before the catalog, from whole records.
    fn model(live: &[Record], asker: &str, q: &str) -> Option<BTreeSet<IpAddr>> {
        let nets: BTreeSet<&str> = live
            .iter()
            .filter(|r| r.container_id == asker)
            .map(|r| r.network.as_str())
            .collect();
        let mut known = false;
        let mut ips = BTreeSet::new();
        for r in live.iter().filter(|r| nets.contains(r.network.as_str())) {
            let names: Vec<String> = record_names(r)
                .into_iter()
                .flat_map(|n| [format!("{n}.{}", r.network.to_ascii_lowercase()), n])
                .collect();
            if names.iter().any(|n| n == q) {
                known = true;
                ips.extend(r.ips.iter().copied());
            }
        }
        known.then_some(ips)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add {
            net: usize,
            ctr: usize,
            ifname: usize,
            name: usize,
            alias: usize,
            ip: u8,
        },
        Remove {
            net: usize,
            ctr: usize,
            ifname: usize,
        },
    }

    const NETS: [&str; 3] = ["lan", "Db", "int"];
    const NAMES: [&str; 4] = ["web", "db", "c.lan", "API"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..3usize, 0..6usize, 0..2usize, 0..4usize, 0..4usize, any::<u8>()).prop_map(
                |(net, ctr, ifname, name, alias, ip)| Op::Add { net, ctr, ifname, name, alias, ip }
            ),
            2 => (0..3usize, 0..6usize, 0..2usize)
                .prop_map(|(net, ctr, ifname)| Op::Remove { net, ctr, ifname }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Records come and go one at a time, as containers churn: after every change each
        /// container's answers are what the whole set of live records says.
        #[test]
        fn after_every_change_answers_match_the_live_records(ops in prop::collection::vec(op(), 1..60)) {
            let mut c = Catalog::default();
            let mut live: Vec<Record> = Vec::new();
            for op in ops {
                match op {
                    Op::Add { net, ctr, ifname, name, alias, ip } => {
                        let r = Record {
                            network: NETS[net].into(),
                            container_id: format!("ctr{ctr}"),
                            ifname: format!("eth{ifname}"),
                            name: Some(NAMES[name].into()),
                            aliases: vec![NAMES[alias].into()],
                            ips: vec![IpAddr::from([10, net as u8, ctr as u8, ip % 4])],
                            netns: Some(PathBuf::from(format!("/ns/ctr{ctr}"))),
                            internal: NETS[net] == "int",
                            ..Default::default()
                        };
                        c.insert(&r).unwrap();
                        live.retain(|l| (&l.network, &l.container_id, &l.ifname) != (&r.network, &r.container_id, &r.ifname));
                        live.push(r);
                    }
                    Op::Remove { net, ctr, ifname } => {
                        let (n, id, i) = (NETS[net], format!("ctr{ctr}"), format!("eth{ifname}"));
                        c.remove(n, &id, &i);
                        live.retain(|l| (l.network.as_str(), &l.container_id, &l.ifname) != (n, &id, &i));
                    }
                }
                prop_assert_eq!(c.len(), live.len());
                for ctr in 0..6 {
                    let asker = format!("ctr{ctr}");
                    let registered = live.iter().any(|r| r.container_id == asker);
                    prop_assert_eq!(c.wants(&Place::Netns(format!("/ns/{asker}").into())), registered);
                    for q in NAMES.iter().map(|n| n.to_ascii_lowercase()).chain(["web.lan".into(), "c.lan.lan".into(), "db.db".into(), "ctr1".into(), "ctr2.int".into()]) {
                        let got = ask(&c, &asker, &q).map(|v| v.into_iter().collect::<BTreeSet<_>>());
                        let want = if registered { model(&live, &asker, &q) } else { None };
                        prop_assert_eq!(got, want, "{} asks {}", asker, q);
                    }
                }
            }
            for r in &live {
                c.remove(&r.network, &r.container_id, &r.ifname);
            }
            prop_assert!(c.is_empty() && c.places().is_empty());
            prop_assert!(c.names.is_empty() && c.by_ip.is_empty() && c.by_key.is_empty());
            prop_assert!(c.by_cid.is_empty() && c.by_netns.is_empty() && c.network_ids.is_empty());
        }
    }
}
