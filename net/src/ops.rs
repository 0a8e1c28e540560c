//! Changes to links, addresses and routes. Each returns what the caller needs to undo it;
//! errors name the object and the namespace socket they were made through.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, InfoBridgePort, InfoData, InfoKind,
    InfoMacVlan, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::NetError;
use crate::netlink::{Link, Netlink};
use crate::netns::NetNs;

/// How a macvlan child talks to its siblings and the parent's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    /// Children talk to each other directly (Docker's default).
    Bridge,
    /// Everything goes out through the parent to the switch.
    Vepa,
    /// Children never talk to each other.
    Private,
    /// The single child takes over the parent.
    Passthru,
}

/// A route to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; a direct (link-scope) route when absent.
    pub gw: Option<IpAddr>,
    /// Output interface.
    pub oif: u32,
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

impl Netlink {
    pub(crate) fn exec(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetError> {
        self.request(msg, flags | NLM_F_ACK)
            .map(drop)
            .map_err(|source| NetError::Netlink {
                what: what(),
                source,
            })
    }

    /// Creates a bridge, down, with its own MAC `mac`, without multicast snooping and with
    /// VLAN filtering when asked; `EEXIST` when one of that name exists.
    ///
    /// Both keep the cost of attaching and detaching a port flat: a MAC given at creation
    /// is kept, so the kernel no longer scans every port for the lowest one (nor changes the
    /// bridge's address as ports come and go), and without snooping it no longer restarts
    /// two query timers on every port at each port change. Multicast is then flooded to
    /// every port, as on a bridge whose snooped groups have expired.
    pub fn add_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: [u8; 6],
        vlan_filtering: bool,
    ) -> Result<u32, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut data = vec![InfoBridge::MulticastSnooping(false)];
        if vlan_filtering {
            // Only when asked: a kernel without VLAN filtering rejects the attribute.
            data.push(InfoBridge::VlanFiltering(true));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(data)),
        ]));
        self.exec(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("create bridge {name}"),
        )?;
        self.index_of(name)
    }

    /// The index of link `name`.
    pub fn index_of(&mut self, name: &str) -> Result<u32, NetError> {
        self.link_by_name(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetError::LinkNotFound(name.into()))
    }

    /// Creates a veth pair: `host` here, `peer` directly inside `peer_ns` (so its name never
    /// collides with a link here), with an MTU and the peer's MAC when given. Each end gets
    /// one queue each way instead of one per CPU: every queue is a kernel object announced to
    /// every network namespace, which made creation slow on hosts with many containers.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: &NetNs,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetError> {
        let queues = [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)];
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.into()));
        peer_msg.attributes.extend(queues.clone());
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        if let Some(mtu) = mtu {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.into()));
        msg.attributes.extend(queues);
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.exec(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || {
                format!(
                    "create veth pair {host} <-> {peer} (in netns {})",
                    peer_ns.path().display()
                )
            },
        )
    }

    /// Creates a macvlan child of link `parent` named `name`, directly inside `target` when
    /// given (else here), with an MTU and MAC when given.
    pub fn add_macvlan(
        &mut self,
        name: &str,
        parent: u32,
        mode: MacvlanMode,
        target: Option<&NetNs>,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NetError> {
        let mode = match mode {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Link(parent));
        if let Some(ns) = target {
            msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = mac {
            if mac != [0u8; 6] {
                msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)])),
        ]));
        self.exec(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("create macvlan {name} on link #{parent}"),
        )
    }

    /// The link carrying the default route (IPv4 first), if there is one.
    pub fn default_route_link(&mut self) -> Result<Option<u32>, NetError> {
        Ok(self
            .routes()?
            .into_iter()
            .find(|r| r.dst.prefix_len() == 0 && r.oif != 0)
            .map(|r| r.oif))
    }

    fn set_link(
        &mut self,
        index: u32,
        attrs: Vec<LinkAttribute>,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes = attrs;
        self.exec(RouteNetlinkMessage::SetLink(msg), 0, what)
    }

    /// Attaches link `index` to `bridge` (as the caller last read it), leaving the bridge's
    /// MAC as it was. A bridge made with a MAC keeps it; one made without (by the user) gets
    /// its lowest port's from the kernel, so a port that sorts lower would change the
    /// gateway's MAC under every neighbour's cached entry. Setting the old MAC back fixes it
    /// for good.
    pub fn set_master(&mut self, index: u32, bridge: &Link) -> Result<(), NetError> {
        let master = bridge.index;
        self.set_link(index, vec![LinkAttribute::Controller(master)], || {
            format!("attach link #{index} to bridge #{master}")
        })?;
        let now = self.link_by_index(master)?.map(|l| l.mac);
        match parse_mac(&bridge.mac) {
            Some(mac) if now.as_deref() != Some(bridge.mac.as_str()) => self.set_mac(master, mac),
            _ => Ok(()),
        }
    }

    /// Sets the MAC of link `index`; on a bridge this also fixes it (the kernel then stops
    /// giving the bridge its lowest port's MAC).
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), NetError> {
        self.set_link(index, vec![LinkAttribute::Address(mac.to_vec())], || {
            format!("set the MAC of link #{index}")
        })
    }

    /// Renames link `index` (it must be down).
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<(), NetError> {
        self.set_link(index, vec![LinkAttribute::IfName(name.into())], || {
            format!("rename link #{index} to {name}")
        })
    }

    /// Sets the MTU of link `index`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetError> {
        self.set_link(index, vec![LinkAttribute::Mtu(mtu)], || {
            format!("set MTU {mtu} on link #{index}")
        })
    }

    /// Stops the kernel from giving link `index` an IPv6 link-local address when it comes up
    /// (address generation mode "none"): no duplicate address detection, router
    /// solicitation or fe80::/64 route for it (the ff00::/8 multicast route stays; only
    /// [`crate::disable_ipv6`] removes that too). A kernel without IPv6 has nothing to stop.
    pub fn no_ipv6_link_local(&mut self, index: u32) -> Result<(), NetError> {
        let spec = AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)]);
        match self.set_link(index, vec![LinkAttribute::AfSpecUnspec(vec![spec])], || {
            format!("turn off IPv6 link-local addresses on link #{index}")
        }) {
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(97 /* EAFNOSUPPORT */) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Turns hairpin mode of bridge port `index` on or off.
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<(), NetError> {
        let info = vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ];
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes = vec![LinkAttribute::LinkInfo(info)];
        self.exec(RouteNetlinkMessage::NewLink(msg), 0, || {
            format!("set hairpin mode on port #{index}")
        })
    }

    /// Sets or clears the promiscuous flag of link `index`.
    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Promisc;
        if on {
            msg.header.flags = LinkFlags::Promisc;
        }
        self.exec(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("set promiscuous mode on link #{index}")
        })
    }

    /// Deletes link `index` (a veth's peer goes with it).
    pub fn del_link(&mut self, index: u32) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.exec(RouteNetlinkMessage::DelLink(msg), 0, || {
            format!("delete link #{index}")
        })
    }

    /// Deletes the link called `name`; one that does not exist is fine.
    pub fn del_link_by_name(&mut self, name: &str) -> Result<(), NetError> {
        match self.link_by_name(name)? {
            Some(l) => match self.del_link(l.index) {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn address_message(index: u32, net: IpNet) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = family(&net.addr());
        msg.header.prefix_len = net.prefix_len();
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(net.addr()));
        msg.attributes.push(AddressAttribute::Address(net.addr()));
        if let IpNet::V4(v4) = net {
            if v4.prefix_len() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        msg
    }

    /// Adds `net` to link `index`; `nodad` skips IPv6 duplicate address detection.
    pub fn add_address(&mut self, index: u32, net: IpNet, nodad: bool) -> Result<(), NetError> {
        let mut msg = Self::address_message(index, net);
        if nodad && net.addr().is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.exec(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("add address {net} to link #{index}"),
        )
    }

    /// Removes `net` from link `index`.
    pub fn del_address(&mut self, index: u32, net: IpNet) -> Result<(), NetError> {
        let msg = Self::address_message(index, net);
        self.exec(RouteNetlinkMessage::DelAddress(msg), 0, || {
            format!("remove address {net} from link #{index}")
        })
    }

    fn route_message(r: &RouteSpec) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(&r.dst.addr());
        msg.header.destination_prefix_length = r.dst.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if r.gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if r.dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(route_addr(r.dst.network())));
        }
        if let Some(gw) = r.gw {
            msg.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(r.oif));
        msg
    }

    /// Installs a route; `replace` overwrites one with the same destination.
    pub fn add_route(&mut self, r: &RouteSpec, replace: bool) -> Result<(), NetError> {
        let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.exec(
            RouteNetlinkMessage::NewRoute(Self::route_message(r)),
            flags,
            || match r.gw {
                Some(gw) => format!("add route {} via {gw}", r.dst),
                None => format!("add route {} dev #{}", r.dst, r.oif),
            },
        )
    }

    /// Removes a route of the main table.
    pub fn del_route(&mut self, r: &RouteSpec) -> Result<(), NetError> {
        self.exec(
            RouteNetlinkMessage::DelRoute(Self::route_message(r)),
            0,
            || format!("remove route {} dev #{}", r.dst, r.oif),
        )
    }

    /// Routes of the main table, as (destination, gateway, output interface).
    pub fn routes(&mut self) -> Result<Vec<RouteSpec>, NetError> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = fam;
            for m in self.dump(RouteNetlinkMessage::GetRoute(req), "list routes")? {
                if let RouteNetlinkMessage::NewRoute(r) = m {
                    if r.header.table == RouteHeader::RT_TABLE_MAIN {
                        out.extend(route_from(&r));
                    }
                }
            }
        }
        Ok(out)
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_from(r: &RouteMessage) -> Option<RouteSpec> {
    let zero = match r.header.address_family {
        AddressFamily::Inet => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut dst = zero;
    let (mut gw, mut oif) = (None, 0);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip_of(d)?,
            RouteAttribute::Gateway(g) => gw = ip_of(g),
            RouteAttribute::Oif(o) => oif = *o,
            _ => {}
        }
    }
    Some(RouteSpec {
        dst: IpNet::new(dst, r.header.destination_prefix_length).ok()?,
        gw,
        oif,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_only_in_colon_form() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02-42-ac-11-00-02"), None);
        assert_eq!(parse_mac("2:42:ac:11:00:02"), None);
    }
}
