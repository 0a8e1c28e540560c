//! Address ranges: a subnet, the span of addresses handed out from it, and its gateway,
//! checked once when built so the allocator never sees an inconsistent range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::config::RangeConfig;
use crate::error::IpamError;

/// An address as a number, for arithmetic.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` in the family of `like`.
pub(crate) fn from_u128(n: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// One range: addresses `start..=end` of `subnet` are handed out, except the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    subnet: IpNet,
    start: IpAddr,
    end: IpAddr,
    gateway: IpAddr,
    /// Auxiliary addresses: never handed out.
    reserved: Vec<IpAddr>,
}

fn bad(msg: String) -> IpamError {
    IpamError::InvalidConfig(msg)
}

fn parse_net(what: &str, s: &str) -> Result<IpNet, IpamError> {
    s.parse::<IpNet>().map_err(|_| {
        bad(format!(
            "{what} {s:?} is not a CIDR such as 172.18.0.0/16 or fd00::/64"
        ))
    })
}

impl Range {
    /// Builds and checks a range: the subnet has no host bits set and room for containers;
    /// the gateway (default: first host address) lies inside and is not the network or
    /// broadcast address; `ipRange` lies inside the subnet; `rangeStart`/`rangeEnd` lie in it.
    pub fn new(cfg: &RangeConfig) -> Result<Self, IpamError> {
        let subnet = parse_net("subnet", &cfg.subnet)?;
        if subnet.addr() != subnet.network() {
            return Err(bad(format!(
                "subnet {subnet} has host bits set; did you mean {}/{}?",
                subnet.network(),
                subnet.prefix_len()
            )));
        }
        check_usable(&subnet)?;
        let max_prefix = if subnet.addr().is_ipv4() { 30 } else { 126 };
        if subnet.prefix_len() > max_prefix {
            return Err(bad(format!(
                "subnet {subnet} is too small: it needs a prefix of /{max_prefix} or shorter"
            )));
        }
        let (first, last) = host_span(&subnet);
        let (mut start, mut end) = (first, last);
        if let Some(ip_range) = &cfg.ip_range {
            let r = parse_net("ipRange", ip_range)?;
            if !subnet.contains(&r) {
                return Err(bad(format!("ipRange {r} is not inside subnet {subnet}")));
            }
            start = start.max(r.network());
            end = end.min(r.broadcast());
        }
        // Docker's default gateway: the first host address of `ipRange`, else of the subnet.
        let gateway = cfg.gateway.unwrap_or(start);
        check_host(&subnet, gateway, "gateway")?;
        if let Some(s) = cfg.range_start {
            check_host(&subnet, s, "rangeStart")?;
            start = s;
        }
        if let Some(e) = cfg.range_end {
            check_host(&subnet, e, "rangeEnd")?;
            end = e;
        }
        if start > end {
            return Err(bad(format!(
                "range of {subnet} is empty: start {start} is after end {end}"
            )));
        }
        if start == end && start == gateway {
            return Err(bad(format!(
                "range {start}-{end} of {subnet} holds only the gateway: no address is left for containers"
            )));
        }
        for (name, ip) in &cfg.auxiliary_addresses {
            check_host(&subnet, *ip, &format!("auxiliary address {name}"))?;
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
            reserved: cfg.auxiliary_addresses.values().copied().collect(),
        })
    }

    /// The subnet.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The gateway address (never handed out).
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// The first address handed out.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// The last address handed out.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// How its subnet's addresses are used, given every address allocated on the network
    /// (Docker's `Status.IPAM.Subnets`): reserved (network, broadcast, gateway, auxiliary)
    /// or allocated ones are in use; what `start..=end` still holds is available.
    pub fn usage(&self, allocated: &[IpAddr]) -> SubnetUsage {
        let mut used: std::collections::BTreeSet<IpAddr> = allocated
            .iter()
            .copied()
            .filter(|ip| self.subnet.contains(ip))
            .collect();
        used.insert(self.subnet.network());
        if self.subnet.addr().is_ipv4() && self.subnet.prefix_len() < 31 {
            used.insert(self.subnet.broadcast());
        }
        used.insert(self.gateway);
        used.extend(self.reserved.iter().copied());
        let (lo, hi) = (to_u128(self.start), to_u128(self.end));
        let in_range = used
            .iter()
            .filter(|ip| (lo..=hi).contains(&to_u128(**ip)))
            .count() as u128;
        SubnetUsage {
            subnet: self.subnet,
            in_use: used.len() as u64,
            dynamic_available: u64::try_from(self.len().saturating_sub(in_range))
                .unwrap_or(u64::MAX),
        }
    }

    /// How many addresses `start..=end` spans (gateway included).
    pub(crate) fn len(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// The address at `offset` from start.
    pub(crate) fn nth(&self, offset: u128) -> IpAddr {
        from_u128(to_u128(self.start) + offset, self.start)
    }

    /// Whether `ip` is in `start..=end`.
    pub(crate) fn in_span(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4() && self.start <= ip && ip <= self.end
    }

    /// Whether `ip` may be requested explicitly: inside the subnet, not its network or
    /// broadcast address, not the gateway, not an auxiliary address.
    pub(crate) fn check_requested(&self, ip: IpAddr) -> Result<(), String> {
        check_host(&self.subnet, ip, "address").map_err(|e| e.to_string())?;
        if ip == self.gateway {
            return Err(format!("it is the gateway of {}", self.subnet));
        }
        if self.reserved.contains(&ip) {
            return Err(format!("it is an auxiliary address of {}", self.subnet));
        }
        Ok(())
    }

    /// Whether `ip` is never handed out: the gateway or an auxiliary address.
    pub(crate) fn is_reserved(&self, ip: IpAddr) -> bool {
        ip == self.gateway || self.reserved.contains(&ip)
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.subnet.contains(&other.subnet.network())
            || other.subnet.contains(&self.subnet.network())
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (range {}-{})", self.subnet, self.start, self.end)
    }
}

/// Address blocks no container network may use, with what they are: the host's loopback
/// (which `route_localnet` would open to containers), link-local (the kernel's own per-link
/// addresses), multicast and the unspecified "this network" block.
const RESERVED: [(&str, &str); 8] = [
    ("0.0.0.0/8", "the unspecified \"this network\" block"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("::/128", "the unspecified address"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// Refuses a subnet that overlaps a reserved block.
fn check_usable(subnet: &IpNet) -> Result<(), IpamError> {
    for (block, what) in RESERVED {
        let Ok(block) = block.parse::<IpNet>() else {
            continue;
        };
        if block.contains(&subnet.network()) || subnet.contains(&block.network()) {
            return Err(bad(format!(
                "subnet {subnet} overlaps {block}, which is {what}: choose a private range such as 172.18.0.0/16 or fd00::/64"
            )));
        }
    }
    Ok(())
}

/// First and last host address of a subnet: no network address, and for IPv4 no broadcast.
fn host_span(subnet: &IpNet) -> (IpAddr, IpAddr) {
    let first = from_u128(to_u128(subnet.network()) + 1, subnet.network());
    let last = match subnet {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.broadcast()) - 1)),
        IpNet::V6(n) => IpAddr::V6(n.broadcast()),
    };
    (first, last)
}

fn check_host(subnet: &IpNet, ip: IpAddr, what: &str) -> Result<(), IpamError> {
    if !subnet.contains(&ip) {
        return Err(bad(format!("{what} {ip} is outside subnet {subnet}")));
    }
    if ip == subnet.network() {
        return Err(bad(format!(
            "{what} {ip} is the network address of {subnet}"
        )));
    }
    if subnet.addr().is_ipv4() && ip == subnet.broadcast() {
        return Err(bad(format!(
            "{what} {ip} is the broadcast address of {subnet}"
        )));
    }
    Ok(())
}

/// How one subnet's addresses are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetUsage {
    /// The subnet.
    pub subnet: IpNet,
    /// Addresses reserved or allocated.
    pub in_use: u64,
    /// Addresses of the dynamic range (`--ip-range`, else the subnet) still free.
    pub dynamic_available: u64,
}

/// The ranges one address comes from (one address family); the allocator walks them in
/// order, wrapping around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range>,
}

impl RangeSet {
    /// Checks that the ranges are of one family and do not overlap.
    pub fn new(ranges: Vec<Range>) -> Result<Self, IpamError> {
        let Some(first) = ranges.first() else {
            return Err(bad("a range set is empty: give at least one subnet".into()));
        };
        let v4 = first.subnet.addr().is_ipv4();
        for (i, r) in ranges.iter().enumerate() {
            if r.subnet.addr().is_ipv4() != v4 {
                return Err(bad(format!(
                    "range set mixes IPv4 and IPv6 ({} and {}): put each family in its own set",
                    first.subnet, r.subnet
                )));
            }
            if let Some(o) = ranges[..i].iter().find(|o| o.overlaps(r)) {
                return Err(bad(format!(
                    "subnets {} and {} overlap",
                    o.subnet, r.subnet
                )));
            }
        }
        Ok(RangeSet { ranges })
    }

    /// The ranges.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// The range whose subnet holds `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.subnet.contains(&ip))
    }

    /// Whether two sets share a subnet.
    pub(crate) fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.ranges.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(subnet: &str) -> RangeConfig {
        RangeConfig {
            subnet: subnet.into(),
            ..RangeConfig::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn usage_counts_reserved_and_allocated_addresses_as_docker_29_does() {
        let r = Range::new(&cfg("172.16.0.0/16")).unwrap();
        let u = r.usage(&[]);
        assert_eq!((u.in_use, u.dynamic_available), (3, 65533));
        let u = r.usage(&[ip("172.16.0.2"), ip("172.16.0.3"), ip("10.0.0.1")]);
        assert_eq!((u.in_use, u.dynamic_available), (5, 65531));
        let mut aux = cfg("10.1.0.0/24");
        aux.auxiliary_addresses
            .insert("router".into(), ip("10.1.0.9"));
        let u = Range::new(&aux).unwrap().usage(&[]);
        assert_eq!((u.in_use, u.dynamic_available), (4, 252));
        let u = Range::new(&cfg("fd00::/120")).unwrap().usage(&[]);
        assert_eq!(u.in_use, 2, "IPv6 has no broadcast address");
    }

    #[test]
    fn defaults_follow_docker_gateway_first_host_and_no_broadcast() {
        let r = Range::new(&cfg("172.18.0.0/16")).unwrap();
        assert_eq!(r.gateway(), ip("172.18.0.1"));
        assert_eq!(r.start(), ip("172.18.0.1"));
        assert_eq!(r.end(), ip("172.18.255.254"));
        let v6 = Range::new(&cfg("fd00:1::/64")).unwrap();
        assert_eq!(v6.gateway(), ip("fd00:1::1"));
        assert_eq!(v6.end(), ip("fd00:1::ffff:ffff:ffff:ffff"));
    }

    #[test]
    fn ip_range_limits_the_span_and_must_lie_inside_the_subnet() {
        let mut c = cfg("172.72.0.0/16");
        c.ip_range = Some("172.72.0.0/24".into());
        c.gateway = Some(ip("172.72.0.1"));
        let r = Range::new(&c).unwrap();
        assert_eq!((r.start(), r.end()), (ip("172.72.0.1"), ip("172.72.0.255")));
        c.ip_range = Some("10.0.0.0/24".into());
        let e = Range::new(&c).unwrap_err().to_string();
        assert!(e.contains("not inside subnet"), "{e}");
    }

    #[test]
    fn bad_subnets_and_gateways_are_explained() {
        let cases = [
            (cfg("10.0.0.5/24"), "host bits set"),
            (cfg("10.0.0.0/31"), "too small"),
            (cfg("10.0.0/24"), "not a CIDR"),
            (cfg("127.0.0.0/16"), "loopback"),
            (cfg("64.0.0.0/2"), "loopback"),
            (cfg("169.254.0.0/16"), "link-local"),
            (cfg("224.1.0.0/16"), "multicast"),
            (cfg("fe80::/64"), "link-local"),
            (cfg("ff02::/64"), "multicast"),
            (cfg("::/64"), "unspecified"),
            (
                RangeConfig {
                    gateway: Some(ip("10.0.1.1")),
                    ..cfg("10.0.0.0/24")
                },
                "outside subnet",
            ),
            (
                RangeConfig {
                    gateway: Some(ip("10.0.0.255")),
                    ..cfg("10.0.0.0/24")
                },
                "broadcast",
            ),
            (
                RangeConfig {
                    gateway: Some(ip("10.0.0.0")),
                    ..cfg("10.0.0.0/24")
                },
                "network address",
            ),
            (
                RangeConfig {
                    range_start: Some(ip("10.0.0.9")),
                    range_end: Some(ip("10.0.0.3")),
                    ..cfg("10.0.0.0/24")
                },
                "is after end",
            ),
        ];
        for (c, want) in cases {
            let e = Range::new(&c).unwrap_err().to_string();
            assert!(e.contains(want), "{c:?}: {e}");
        }
    }

    #[test]
    fn a_set_rejects_mixed_families_and_overlaps() {
        let a = Range::new(&cfg("10.0.0.0/24")).unwrap();
        let b = Range::new(&cfg("10.0.0.0/16")).unwrap();
        let c = Range::new(&cfg("fd00::/64")).unwrap();
        assert!(RangeSet::new(vec![a.clone(), b]).is_err());
        assert!(RangeSet::new(vec![a.clone(), c]).is_err());
        assert!(RangeSet::new(vec![]).is_err());
        assert!(RangeSet::new(vec![a]).is_ok());
    }
}
