//! VLANs on a bridge with VLAN filtering: which VLAN each port belongs to.

use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind,
    LinkAttribute, LinkExtentMask, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::NetError;
use crate::netlink::Netlink;

/// Errno of "no such entry".
const ENOENT: i32 = 2;

/// One VLAN of a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    /// The VLAN ID.
    pub vid: u16,
    /// Untagged frames arriving on the port join this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

impl Netlink {
    /// Turns VLAN filtering on for bridge `index`; ports keep the default VLAN 1.
    pub fn set_vlan_filtering(&mut self, index: u32) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)])),
        ]));
        self.exec(RouteNetlinkMessage::NewLink(msg), 0, || {
            format!("turn on VLAN filtering on bridge #{index}")
        })
    }

    /// Makes `vid` the VLAN of bridge port `index` (an access port, as the reference plugin
    /// makes it): untagged frames from the port join `vid`, frames of `vid` leave it untagged.
    pub fn set_port_vlan(&mut self, index: u32, vid: u16) -> Result<(), NetError> {
        let flags = BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged;
        let msg = RouteNetlinkMessage::SetLink(port_vlan_message(index, vid, flags));
        self.exec(msg, 0, || format!("put bridge port #{index} in VLAN {vid}"))
    }

    /// Takes bridge port `index` out of VLAN `vid`; a port not in it is fine.
    pub fn del_port_vlan(&mut self, index: u32, vid: u16) -> Result<(), NetError> {
        let msg = port_vlan_message(index, vid, BridgeVlanInfoFlags::empty());
        match self.exec(RouteNetlinkMessage::DelLink(msg), 0, || {
            format!("take bridge port #{index} out of VLAN {vid}")
        }) {
            Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(ENOENT) => {
                Ok(())
            }
            other => other,
        }
    }

    /// The VLANs bridge port `index` belongs to (none when the bridge does not filter).
    pub fn port_vlans(&mut self, index: u32) -> Result<Vec<PortVlan>, NetError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let replies = self.dump(RouteNetlinkMessage::GetLink(msg), "list bridge port VLANs")?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) if m.header.index == index => Some(m.attributes),
                _ => None,
            })
            .flatten()
            .filter_map(|a| match a {
                LinkAttribute::AfSpecBridge(spec) => Some(spec),
                _ => None,
            })
            .flatten()
            .filter_map(|s| match s {
                AfSpecBridge::VlanInfo(i) => Some(PortVlan {
                    vid: i.vid,
                    pvid: i.flags.contains(BridgeVlanInfoFlags::Pvid),
                    untagged: i.flags.contains(BridgeVlanInfoFlags::Untagged),
                }),
                _ => None,
            })
            .collect())
    }
}

/// A bridge (`AF_BRIDGE`) link message about one VLAN of port `index`: sent as SETLINK it
/// adds the VLAN, as DELLINK it removes the VLAN (never the link).
fn port_vlan_message(index: u32, vid: u16, flags: BridgeVlanInfoFlags) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    msg.header.index = index;
    msg.attributes
        .push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
            BridgeVlanInfo { flags, vid },
        )]));
    msg
}
