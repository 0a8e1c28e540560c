//! What a network and a published port need from the firewall, independent of the backend.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::names::{IfName, MacAddr};

/// The rules of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    /// The bridge device.
    pub bridge: IfName,
    /// The network's subnets.
    pub subnets: Vec<IpNet>,
    /// Rewrite the source of traffic leaving the host (`ipMasq`).
    pub masquerade: bool,
    /// No traffic in or out of the bridge at all (Docker's `--internal`).
    pub internal: bool,
    /// Traffic from elsewhere may reach the containers' addresses directly, not only
    /// through published ports (Docker 28's `nat-unprotected` gateway mode).
    #[serde(default)]
    pub unprotected: bool,
    /// Host interfaces whose traffic may reach the containers' addresses directly (Docker
    /// 28's `trusted_host_interfaces`).
    #[serde(default)]
    pub trusted: Vec<IfName>,
    /// Not even published ports join it with other networks (podman's `isolate=strict`).
    #[serde(default)]
    pub strict: bool,
    /// Docker 28's `routed` gateway mode: containers' published ports are reachable at
    /// the containers' own addresses (and ICMP), nothing else from elsewhere.
    #[serde(default)]
    pub routed: bool,
    /// IPv6's own gateway mode, when it differs from the one the fields above give both
    /// families (Docker 28's `gateway_mode_ipv6` beside `gateway_mode_ipv4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FamilyPolicy>,
}

/// How one address family of a network meets the outside: what its gateway mode means to
/// the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FamilyPolicy {
    /// Rewrite the source of traffic leaving the host.
    #[serde(default)]
    pub masquerade: bool,
    /// Traffic from elsewhere may reach the containers' addresses directly.
    #[serde(default)]
    pub unprotected: bool,
    /// Published ports reachable at the containers' own addresses (and ICMP).
    #[serde(default)]
    pub routed: bool,
}

impl NetworkRules {
    /// The policy of IPv4 (`v4`) or of IPv6: the network's own, or IPv6's where it has one.
    pub fn policy(&self, v4: bool) -> FamilyPolicy {
        let both = FamilyPolicy {
            masquerade: self.masquerade,
            unprotected: self.unprotected,
            routed: self.routed,
        };
        match self.ipv6 {
            Some(p) if !v4 => p,
            _ => both,
        }
    }

    /// Whether either family is in `routed` mode.
    pub fn any_routed(&self) -> bool {
        self.policy(true).routed || self.policy(false).routed
    }

    /// A name for the network's chains: the bridge name with only `[a-z0-9_]`, plus a short
    /// hash of the real name so that `br-x` and `br_x` never share chains.
    pub fn tag(&self) -> String {
        let clean: String = self
            .bridge
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let hash = self.bridge.as_str().bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        format!("{clean}_{:06x}", hash & 0xff_ffff)
    }
}

/// A transport protocol that can be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The nft and iptables keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Ports of the host's own services that nothing from a container's bridge may reach, on any
/// of the host's addresses and whatever the host's own firewall allows: etcd's client and
/// peer ports (the cluster store of overlay networks, or any other etcd the host runs) and
/// the overlay's VXLAN port. (A port published on them goes to its container first.)
pub const GUARDED_HOST_PORTS: [(Proto, u16); 3] =
    [(Proto::Tcp, 2379), (Proto::Tcp, 2380), (Proto::Udp, 4789)];

/// One published port: `host_ip:host_port` → `container_ip:container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    /// The host address it is published on; every address when absent.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address (its family picks the IPv4 or IPv6 map).
    pub container_ip: IpAddr,
    /// The container port.
    pub container_port: u16,
    /// tcp or udp.
    pub proto: Proto,
}

impl PortForward {
    /// How a user would write it: `[host_ip:]host_port->container_ip:container_port/proto`.
    pub fn describe(&self) -> String {
        let host = self.host_ip.map(|ip| format!("{ip}:")).unwrap_or_default();
        format!(
            "{host}{}->{}:{}/{}",
            self.host_port,
            self.container_ip,
            self.container_port,
            self.proto.as_str()
        )
    }
}

/// What a container's bridge port may send (`macspoofchk`): frames from its own MAC only,
/// ARP only for its own MAC and addresses, IP packets only from its own addresses (and the
/// unspecified and IPv6 link-local sources that address configuration uses), no VLAN tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGuard {
    /// The host end of the container's veth (its bridge port).
    pub port: IfName,
    /// Its interface index (never reused by a later port, so a guard of a deleted port
    /// matches nothing, whenever its elements go); 0 when not known.
    #[serde(default)]
    pub index: u32,
    /// The only source MAC allowed in.
    pub mac: MacAddr,
    /// The only source addresses allowed in: what the port was given.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}
