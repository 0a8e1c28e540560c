//! A record as the answer path keeps it: its strings and addresses packed in one
//! allocation (an IPv4 address in 5 bytes), read back without copying.

use std::net::IpAddr;

use netctl_dnsrecords::Record;

use super::{CatalogError, MAX_PER_RECORD, NONE};

/// One attachment, as the answer path needs it.
#[derive(Debug)]
pub(super) struct Entry {
    /// `[cid len: u16 LE][ifname len][name count][addresses' length: u16 LE][each name's
    /// len]`, then the addresses (each `4` and 4 bytes or `6` and 16: its own, its
    /// container's resolvers (`--dns`), its network's gateways), the container ID, the
    /// interface and each name (lowercase, valid DNS names only).
    pub(super) packed: Box<[u8]>,
    pub(super) ips: u8,
    pub(super) upstreams: u8,
    /// Which name PTR answers give its addresses (the container's name, else its short ID);
    /// `u8::MAX` for none.
    pub(super) label: u8,
    pub(super) internal: bool,
    pub(super) network: u32,
    pub(super) container: u32,
    /// The next record of the same container, or NONE.
    pub(super) sibling: u32,
}

/// Where an entry's fixed header ends.
pub(super) const HEADER: usize = 6;

/// The bytes [`pack_addr`] stores `ip` in.
pub(super) fn packed_len(ip: &IpAddr) -> usize {
    if ip.is_ipv4() {
        5
    } else {
        17
    }
}

/// Appends `ip` as an entry stores it.
pub(super) fn pack_addr(packed: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            packed.push(4);
            packed.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            packed.push(6);
            packed.extend_from_slice(&a.octets());
        }
    }
}

/// Addresses as [`pack_addr`] stored them.
#[derive(Clone)]
pub(super) struct Addrs<'a>(&'a [u8]);

impl Iterator for Addrs<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        let (ip, len) = match self.0 {
            [4, a, b, c, d, ..] => (IpAddr::from([*a, *b, *c, *d]), 5),
            [6, rest @ ..] => (
                IpAddr::from(<[u8; 16]>::try_from(rest.get(..16)?).ok()?),
                17,
            ),
            _ => return None,
        };
        self.0 = self.0.get(len..)?;
        Some(ip)
    }
}

impl Entry {
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let p = &self.packed;
        (
            usize::from(u16::from_le_bytes([p[0], p[1]])),
            usize::from(p[2]),
            usize::from(p[3]),
        )
    }

    /// Where the addresses end and the strings begin.
    pub(super) fn strings_at(&self) -> usize {
        let p = &self.packed;
        HEADER + usize::from(p[3]) + usize::from(u16::from_le_bytes([p[4], p[5]]))
    }

    pub(super) fn cid(&self) -> &[u8] {
        let (cid, _, _) = self.counts();
        let at = self.strings_at();
        &self.packed[at..at + cid]
    }

    pub(super) fn ifname(&self) -> &[u8] {
        let (cid, ifname, _) = self.counts();
        let at = self.strings_at() + cid;
        &self.packed[at..at + ifname]
    }

    pub(super) fn name_count(&self) -> usize {
        self.counts().2
    }

    /// The `i`th name; empty past the last.
    pub(super) fn name(&self, i: usize) -> &[u8] {
        let (cid, ifname, names) = self.counts();
        if i >= names {
            return &[];
        }
        let lens = &self.packed[HEADER..HEADER + names];
        let skip: usize = lens[..i].iter().map(|l| usize::from(*l)).sum();
        let at = self.strings_at() + cid + ifname + skip;
        &self.packed[at..at + usize::from(lens[i])]
    }

    pub(super) fn addrs(&self) -> Addrs<'_> {
        let at = HEADER + self.name_count();
        Addrs(&self.packed[at..self.strings_at()])
    }

    pub(super) fn ips(&self) -> std::iter::Take<Addrs<'_>> {
        self.addrs().take(usize::from(self.ips))
    }

    /// Its `i`th own address.
    pub(super) fn ip(&self, i: usize) -> Option<IpAddr> {
        self.ips().nth(i)
    }

    pub(super) fn upstreams(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addrs()
            .skip(usize::from(self.ips))
            .take(usize::from(self.upstreams))
    }

    pub(super) fn gateways(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addrs()
            .skip(usize::from(self.ips) + usize::from(self.upstreams))
    }
}

/// The names a record answers to, lowercase, each once: its name, aliases and short ID,
/// leaving out what cannot be a DNS name (and so could never be asked).
pub(super) fn record_names(r: &Record) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = r.name.iter().chain(&r.aliases).map(String::as_str);
    for n in all.chain([r.short_id()]) {
        let n = clean(n);
        if is_dns_name(&n) && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

pub(super) fn clean(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Labels of 1 to 63 printable ASCII bytes, 253 bytes in all: what the fast path parses.
pub(super) fn is_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.')
            .all(|l| (1..=63).contains(&l.len()) && l.bytes().all(|c| c.is_ascii_graphic()))
}

pub(super) fn count(what: &'static str, n: usize) -> Result<u8, CatalogError> {
    u8::try_from(n)
        .ok()
        .filter(|n| usize::from(*n) <= MAX_PER_RECORD)
        .ok_or(CatalogError::TooMany(what, n))
}

/// The record as the catalog keeps it (network and container left for the caller).
pub(super) fn entry(r: &Record) -> Result<Entry, CatalogError> {
    let names = record_names(r);
    let cid = u16::try_from(r.container_id.len())
        .map_err(|_| CatalogError::TooLong("container ID", r.container_id.len()))?;
    let ifname = u8::try_from(r.ifname.len())
        .map_err(|_| CatalogError::TooLong("interface name", r.ifname.len()))?;
    let (ips, upstreams) = (
        count("addresses", r.ips.len())?,
        count("resolvers", r.upstreams.len())?,
    );
    count("gateways", r.gateways.len())?;
    let addrs = || r.ips.iter().chain(&r.upstreams).chain(&r.gateways);
    let addr_bytes: usize = addrs().map(packed_len).sum();
    let len = HEADER
        + names.len()
        + addr_bytes
        + r.container_id.len()
        + r.ifname.len()
        + names.iter().map(String::len).sum::<usize>();
    // One allocation of the final size: growing and shrinking would leave holes between
    // the records' memory.
    let mut packed = Vec::with_capacity(len);
    packed.extend_from_slice(&[0, 0, ifname, count("names", names.len())?, 0, 0]);
    packed[..2].copy_from_slice(&cid.to_le_bytes());
    // Each name is a valid DNS name: at most 253 bytes.
    packed.extend(names.iter().map(|n| n.len() as u8));
    // At most 3 * 254 addresses of 17 bytes.
    packed[4..HEADER].copy_from_slice(&(addr_bytes as u16).to_le_bytes());
    for ip in addrs() {
        pack_addr(&mut packed, *ip);
    }
    packed.extend_from_slice(r.container_id.as_bytes());
    packed.extend_from_slice(r.ifname.as_bytes());
    for n in &names {
        packed.extend_from_slice(n.as_bytes());
    }
    let own = r.name.as_deref().map(clean);
    let short = clean(r.short_id());
    let label = names
        .iter()
        .position(|n| Some(n) == own.as_ref())
        .or_else(|| names.iter().position(|n| *n == short))
        .map_or(u8::MAX, |i| i as u8); // i < names.len() <= MAX_PER_RECORD
    Ok(Entry {
        packed: packed.into_boxed_slice(),
        ips,
        upstreams,
        label,
        internal: r.internal,
        network: NONE,
        container: NONE,
        sibling: NONE,
    })
}
