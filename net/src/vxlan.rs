//! VXLAN for overlay networks: the device (one per network, `nolearning proxy`: the agent
//! programs every remote endpoint, nothing is learned or flooded), its forwarding entries
//! (remote MAC -> remote host) and its permanent neighbour entries (remote IP -> MAC, which
//! `proxy` answers ARP/ND from, so no ARP crosses hosts).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::NetError;
use crate::netlink::Netlink;

/// Errno of "no such entry".
const ENOENT: i32 = 2;

/// What a VXLAN device is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanSpec {
    /// The network identifier.
    pub vni: u32,
    /// This host's underlay address (the tunnel's source).
    pub local: IpAddr,
    /// The UDP port (4789, IANA's).
    pub port: u16,
    /// The device's MTU (the underlay's minus 50).
    pub mtu: u32,
}

/// A forwarding entry of a VXLAN device: frames for `mac` go to host `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// The remote endpoint's MAC.
    pub mac: [u8; 6],
    /// The remote host's underlay address.
    pub dst: IpAddr,
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn fdb_message(index: u32, e: &FdbEntry) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.header.kind = RouteType::Unicast;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(e.mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(neigh_addr(e.dst)));
    msg
}

fn neighbour_message(index: u32, ip: IpAddr, mac: [u8; 6]) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.kind = RouteType::Unicast;
    msg.attributes
        .push(NeighbourAttribute::Destination(neigh_addr(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg
}

fn gone_is_fine(r: Result<(), NetError>) -> Result<(), NetError> {
    match r {
        Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(ENOENT) => Ok(()),
        other => other,
    }
}

impl Netlink {
    /// Creates VXLAN device `name`, down; `EEXIST` when one of that name exists.
    pub fn add_vxlan(&mut self, name: &str, spec: &VxlanSpec) -> Result<u32, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
        let local = match spec.local {
            IpAddr::V4(a) => InfoVxlan::Local(a),
            IpAddr::V6(a) => InfoVxlan::Local6(a),
        };
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(spec.vni),
                local,
                InfoVxlan::Port(spec.port),
                InfoVxlan::Learning(false),
                InfoVxlan::Proxy(true),
            ])),
        ]));
        self.exec(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("create VXLAN device {name} (VNI {})", spec.vni),
        )?;
        self.index_of(name)
    }

    /// Points frames for `e.mac` on VXLAN device `index` at host `e.dst` (replacing where it
    /// pointed before).
    pub fn fdb_replace(&mut self, index: u32, e: &FdbEntry) -> Result<(), NetError> {
        self.exec(
            RouteNetlinkMessage::NewNeighbour(fdb_message(index, e)),
            NLM_F_CREATE | NLM_F_REPLACE,
            || {
                format!(
                    "point {} at {} on link #{index}",
                    crate::netlink::format_mac(&e.mac),
                    e.dst
                )
            },
        )
    }

    /// Removes a forwarding entry; one already gone is fine.
    pub fn fdb_del(&mut self, index: u32, e: &FdbEntry) -> Result<(), NetError> {
        gone_is_fine(self.exec(
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, e)),
            0,
            || {
                format!(
                    "remove the entry of {} on link #{index}",
                    crate::netlink::format_mac(&e.mac)
                )
            },
        ))
    }

    /// The forwarding entries of VXLAN device `index` that point at a remote host.
    pub fn fdb_entries(&mut self, index: u32) -> Result<Vec<FdbEntry>, NetError> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        let mut out = Vec::new();
        for m in self.dump(
            RouteNetlinkMessage::GetNeighbour(req),
            "list forwarding entries",
        )? {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.ifindex != index {
                continue;
            }
            let (mut mac, mut dst) = (None, None);
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(b) => mac = b.as_slice().try_into().ok(),
                    NeighbourAttribute::Destination(a) => dst = destination(a),
                    _ => {}
                }
            }
            if let (Some(mac), Some(dst)) = (mac, dst) {
                out.push(FdbEntry { mac, dst });
            }
        }
        Ok(out)
    }

    /// A permanent neighbour entry `ip` -> `mac` on link `index` (replacing an older one).
    pub fn neighbour_replace(
        &mut self,
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), NetError> {
        self.exec(
            RouteNetlinkMessage::NewNeighbour(neighbour_message(index, ip, mac)),
            NLM_F_CREATE | NLM_F_REPLACE,
            || format!("add neighbour {ip} on link #{index}"),
        )
    }

    /// Removes a neighbour entry; one already gone is fine.
    pub fn neighbour_del(&mut self, index: u32, ip: IpAddr) -> Result<(), NetError> {
        gone_is_fine(self.exec(
            RouteNetlinkMessage::DelNeighbour(neighbour_message(index, ip, [0; 6])),
            0,
            || format!("remove neighbour {ip} on link #{index}"),
        ))
    }
}

/// A forwarding entry's remote host. In a bridge-family dump the kernel's address comes as
/// bare bytes (4 or 16 of them), since the message's family says nothing of the address's.
fn destination(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_of_bridge_dumps_are_bare_bytes() {
        let v4 = NeighbourAddress::Other(vec![10, 99, 0, 3]);
        assert_eq!(destination(&v4), Some("10.99.0.3".parse().unwrap()));
        let v6 = NeighbourAddress::Other(
            "fd00::3"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
                .to_vec(),
        );
        assert_eq!(destination(&v6), Some("fd00::3".parse().unwrap()));
        assert_eq!(destination(&NeighbourAddress::Other(vec![1, 2, 3])), None);
    }
}
