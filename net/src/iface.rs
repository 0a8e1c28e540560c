//! Configuring a container's interface from an IPAM lease, shared by every driver.

use std::net::IpAddr;

use ipnet::IpNet;
use netctl_cni::{Error, IpConfig, Route, Success};

use crate::error::NetError;
use crate::netlink::Netlink;
use crate::ops::{parse_mac, RouteSpec};

/// How a container's interface is set up from its lease.
#[derive(Debug, Clone, Copy)]
pub struct IfaceSetup {
    /// Bring the interface up (and install routes, which need it up).
    pub up: bool,
    /// Add a default route through each family's gateway.
    pub default_route: bool,
    /// Skip IPv6 duplicate address detection.
    pub nodad: bool,
}

/// The route for `r` via the lease's gateway of the same family when it names none.
pub fn route_spec(r: &Route, ips: &[IpConfig], oif: u32) -> RouteSpec {
    let gw = r.gw.or_else(|| {
        ips.iter()
            .find(|ip| ip.address.addr().is_ipv4() == r.dst.addr().is_ipv4())
            .and_then(|ip| ip.gateway)
    });
    RouteSpec {
        dst: r.dst,
        gw,
        oif,
    }
}

/// The default routes a lease implies: one per family with a gateway.
pub fn default_routes(ips: &[IpConfig]) -> Vec<Route> {
    ips.iter()
        .filter_map(|ip| {
            let any: IpNet = if ip.address.addr().is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            }
            .parse()
            .ok()?;
            Some(Route::new(any, Some(ip.gateway?)))
        })
        .collect()
}

/// The lease's routes plus a default route for each family that has none yet.
pub fn with_default_routes(lease: &Success) -> Vec<Route> {
    let mut routes = lease.routes.clone();
    for d in default_routes(&lease.ips) {
        if !routes.iter().any(|r| r.dst == d.dst) {
            routes.push(d);
        }
    }
    routes
}

/// Adds the lease's addresses to link `index`, brings it up, installs the lease's routes and
/// (if asked) the default routes.
pub fn configure(
    nl: &mut Netlink,
    index: u32,
    lease: &Success,
    setup: IfaceSetup,
) -> Result<(), NetError> {
    for ip in &lease.ips {
        nl.add_address(index, ip.address, setup.nodad)?;
    }
    if !setup.up {
        return Ok(());
    }
    nl.set_up(index, true)?;
    let routes = if setup.default_route {
        with_default_routes(lease)
    } else {
        lease.routes.clone()
    };
    for r in &routes {
        nl.add_route(&route_spec(r, &lease.ips, index), true)?;
    }
    Ok(())
}

/// A container's interface `ifname` (link `index` of `nl`, in namespace `ns`), before it comes
/// up, takes no router advertisement: `accept_ra` is off, so a neighbour's rogue RA gives it
/// neither a SLAAC address nor a default route via the neighbour (CVE-2020-13401); its
/// addresses and routes are the lease's alone. With no IPv6 address in the lease, IPv6 is off
/// on it altogether (as Docker does): no link-local address, router solicitation or
/// multicast report. Where /proc/sys cannot be written (a plugin run inside a container),
/// link-local addresses are still stopped over netlink.
pub fn ignore_router_advertisements(
    ns: &crate::NetNs,
    nl: &mut crate::Netlink,
    ifname: &str,
    index: u32,
    lease: &Success,
) -> Result<(), NetError> {
    let v6 = lease.ips.iter().any(|ip| ip.address.addr().is_ipv6());
    let name = ifname.to_string();
    let written = ns.run(move || {
        let no_ra = crate::sysctl::set_ipv6_conf(&name, "accept_ra", "0")?;
        let off = v6 || crate::disable_ipv6(&name)?;
        Ok::<bool, NetError>(no_ra && off)
    })??;
    if !v6 && !written {
        nl.no_ipv6_link_local(index)?;
    }
    Ok(())
}

/// A container's MAC: the one asked for (unicast only), else Docker's `02:42:` + the IPv4
/// address, else one derived from `seed` (locally administered).
pub fn container_mac(asked: Option<&str>, ips: &[IpConfig], seed: &str) -> Result<[u8; 6], Error> {
    if let Some(m) = asked {
        return parse_mac(m).filter(|b| b[0] & 1 == 0).ok_or_else(|| {
            Error::invalid_config(format!(
                "MAC address {m:?} is not a unicast aa:bb:cc:dd:ee:ff"
            ))
        });
    }
    if let Some(IpAddr::V4(v4)) = ips.iter().map(|ip| ip.address.addr()).find(IpAddr::is_ipv4) {
        let o = v4.octets();
        return Ok([0x02, 0x42, o[0], o[1], o[2], o[3]]);
    }
    let b = crate::fnv1a64(seed).to_be_bytes();
    Ok([0x02, b[1], b[2], b[3], b[4], b[5]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(a: &str, gw: &str) -> IpConfig {
        IpConfig {
            address: a.parse().unwrap(),
            gateway: gw.parse().ok(),
            interface: None,
        }
    }

    #[test]
    fn docker_style_mac_comes_from_the_ipv4_address() {
        let mac = container_mac(None, &[ip("172.17.0.2/16", "172.17.0.1")], "x").unwrap();
        assert_eq!(mac, [0x02, 0x42, 172, 17, 0, 2]);
        assert!(
            container_mac(Some("01:00:5e:00:00:01"), &[], "x").is_err(),
            "multicast refused"
        );
        let v6_only = container_mac(None, &[ip("fd00::2/64", "fd00::1")], "seed").unwrap();
        assert_eq!(v6_only[0], 0x02);
    }

    #[test]
    fn routes_without_gateway_use_the_lease_gateway_of_their_family() {
        let ips = [ip("10.0.0.2/24", "10.0.0.1"), ip("fd00::2/64", "fd00::1")];
        let r = Route::new("192.168.0.0/16".parse().unwrap(), None);
        assert_eq!(route_spec(&r, &ips, 3).gw, "10.0.0.1".parse().ok());
        let defaults = default_routes(&ips);
        assert_eq!(defaults.len(), 2);
        assert_eq!(defaults[1].dst.to_string(), "::/0");
    }
}
