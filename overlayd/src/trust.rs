//! What is read from etcd is hostile until checked here: anything that can write to etcd (a
//! misconfigured or compromised host, a leaked client certificate) must not make an agent
//! write outside its state folder, point a forwarding entry at a stranger, answer for a
//! network's gateway or grow without bound. A record that fails a check is logged and
//! skipped; nothing else changes.

use std::net::IpAddr;

use netctl_cni::validate::{container_id, ifname, is_object_name};
use netctl_ipam::{Range, RangeConfig};
use netctl_overlay_api::{EndpointRecord, HostRecord, MacvlanSpec, NetworkSpec, Request};

/// Addresses one endpoint may have.
pub const MAX_IPS: usize = 16;
/// DNS aliases one endpoint may have.
pub const MAX_ALIASES: usize = 64;
/// Endpoints one host may have (over every network).
pub const MAX_ENDPOINTS_PER_HOST: usize = 4096;
/// The longest network or host name: it becomes `<name>.conflist` in a folder.
const MAX_NAME: usize = 200;
/// The smallest and largest MTU of an overlay network (VXLAN over IPv4 on a 1500 to 65535
/// underlay; below 576 IPv4 itself breaks).
const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=65_485;
/// The largest VNI (24 bits).
const MAX_VNI: u32 = 0x00ff_ffff;

fn name(what: &str, n: &str) -> Result<(), String> {
    if n.len() <= MAX_NAME && is_object_name(n) {
        Ok(())
    } else {
        Err(format!(
            "{what} name {:?} is not [a-zA-Z0-9][a-zA-Z0-9_.-]+ of at most {MAX_NAME} characters",
            n.chars().take(MAX_NAME + 1).collect::<String>()
        ))
    }
}

/// A host's record, found under `hosts/<key_host>`.
pub fn host(key_host: &str, h: &HostRecord) -> Result<(), String> {
    name("host", &h.host)?;
    if h.host != key_host {
        return Err(format!("host record {key_host} names host {}", h.host));
    }
    let a = h.addr;
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return Err(format!(
            "host {} has the address {a}, which no underlay has",
            h.host
        ));
    }
    if !(1280..=65_535).contains(&h.mtu) {
        return Err(format!("host {} has an underlay MTU of {}", h.host, h.mtu));
    }
    if let Some(t) = &h.tunnel {
        let subnet: ipnet::Ipv4Net = netctl_overlay_api::TUNNEL_SUBNET
            .parse()
            .map_err(|e| format!("{e}"))?;
        if !subnet.contains(&t.addr) || crate::crypt::parse_key(&t.key).is_none() {
            return Err(format!(
                "host {} has a tunnel end outside {subnet} or a key that is not 64 hex digits",
                h.host
            ));
        }
    }
    Ok(())
}

/// The macvlan side of a cluster network: a parent that names a link, a mode the kernel has.
pub fn macvlan(m: &MacvlanSpec) -> Result<(), String> {
    ifname(&m.parent).map_err(|e| format!("-o parent={:?}: {}", m.parent, e.msg))?;
    if !netctl_overlay_api::MACVLAN_MODES.contains(&m.mode.as_str()) {
        return Err(format!(
            "macvlan_mode {:?}: use bridge, vepa, private or passthru",
            m.mode
        ));
    }
    Ok(())
}

/// A network's spec, found under `networks/<key_name>`.
pub fn network(key_name: &str, s: &NetworkSpec) -> Result<(), String> {
    name("network", &s.name)?;
    if s.name != key_name {
        return Err(format!(
            "network record {key_name:?} names network {}",
            s.name
        ));
    }
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if s.id.len() != 64 || !s.id.chars().all(hex) {
        return Err(format!(
            "network {} has an ID that is not 64 hex digits",
            s.name
        ));
    }
    match &s.macvlan {
        None if s.vni == 0 || s.vni > MAX_VNI => {
            return Err(format!(
                "network {} has VNI {}, outside 1-{MAX_VNI}",
                s.name, s.vni
            ))
        }
        Some(_) if s.vni != 0 || s.encrypted => {
            return Err(format!(
                "macvlan network {} has a VNI or is encrypted, as only overlays are",
                s.name
            ))
        }
        Some(m) => macvlan(m).map_err(|why| format!("network {}: {why}", s.name))?,
        None => {}
    }
    if !MTU_RANGE.contains(&s.mtu) {
        return Err(format!(
            "network {} has MTU {}, outside {MTU_RANGE:?}",
            s.name, s.mtu
        ));
    }
    if s.created.len() > 64 {
        return Err(format!(
            "network {} has a creation time of {} bytes",
            s.name,
            s.created.len()
        ));
    }
    // The allocator's own checks: no loopback, link-local or multicast subnet; gateway and
    // range inside it.
    Range::new(&RangeConfig {
        subnet: s.subnet.to_string(),
        gateway: s.gateway,
        ip_range: s.ip_range.map(|r| r.to_string()),
        ..RangeConfig::default()
    })
    .map(drop)
    .map_err(|e| format!("network {}: {e}", s.name))
}

/// Where an endpoint record was found: `endpoints/<network>/<host>/<container>:<ifname>`.
#[derive(Debug, PartialEq, Eq)]
pub struct EndpointKey<'a> {
    /// The network.
    pub network: &'a str,
    /// The host.
    pub host: &'a str,
    /// `<container>:<ifname>`.
    pub id: &'a str,
}

/// An endpoint of network `spec` on host `owner` (its record in etcd), found under `key`.
pub fn endpoint(
    key: &EndpointKey<'_>,
    e: &EndpointRecord,
    spec: &NetworkSpec,
    owner: &HostRecord,
) -> Result<(), String> {
    let who = format!("endpoint {}/{}/{}", key.network, key.host, key.id);
    let id = format!("{}:{}", e.container_id, e.ifname);
    if e.network != key.network || e.host != key.host || id != key.id {
        return Err(format!(
            "{who} holds the record of {}/{}/{id}",
            e.network, e.host
        ));
    }
    container_id(&e.container_id)
        .and_then(|()| ifname(&e.ifname))
        .map_err(|err| format!("{who}: {}", err.msg))?;
    if e.vtep != owner.addr {
        return Err(format!(
            "{who} points at {} but host {} is at {}",
            e.vtep, owner.host, owner.addr
        ));
    }
    match netctl_net::parse_mac(&e.mac) {
        Some(mac) if mac[0] & 1 == 0 && mac != [0; 6] => {}
        // A macvlan endpoint is announced by its IPAM step, before its link has a MAC; no
        // forwarding entry is made from it.
        None if e.mac.is_empty() && !spec.is_overlay() => {}
        _ => return Err(format!("{who} has {:?}, which is no unicast MAC", e.mac)),
    }
    if e.ips.is_empty() || e.ips.len() > MAX_IPS {
        return Err(format!(
            "{who} has {} addresses (1 to {MAX_IPS})",
            e.ips.len()
        ));
    }
    for ip in &e.ips {
        address_of(spec, *ip).map_err(|why| format!("{who}: {ip} {why}"))?;
    }
    if e.aliases.len() > MAX_ALIASES {
        return Err(format!(
            "{who} has {} aliases (at most {MAX_ALIASES})",
            e.aliases.len()
        ));
    }
    let too_long = e.name.iter().chain(&e.aliases).find(|n| n.len() > 253);
    if let Some(n) = too_long {
        return Err(format!("{who} has a name of {} bytes", n.len()));
    }
    Ok(())
}

/// Checks the names of a local client's request as the CLI checks them: a network name from
/// the agent's socket also becomes a file and a key.
pub fn request(req: &Request) -> Result<(), String> {
    let attachment = |network: &str, id: &str, ifname_: &str| {
        name("network", network)?;
        container_id(id)
            .and_then(|()| ifname(ifname_))
            .map_err(|e| e.msg)
    };
    match req {
        Request::Ping | Request::Hosts | Request::Leave | Request::LocalNetworksChanged => Ok(()),
        Request::Join { network } | Request::RemoveNetwork { name: network } => {
            name("network", network)
        }
        Request::CreateNetwork(c) => name("network", &c.name),
        Request::Allocate {
            network,
            container_id,
            ifname,
            ..
        }
        | Request::Release {
            network,
            container_id,
            ifname,
        }
        | Request::Unregister {
            network,
            container_id,
            ifname,
        } => attachment(network, container_id, ifname),
        Request::Register { endpoint: e } => {
            attachment(&e.network, &e.container_id, &e.ifname)?;
            if e.ips.len() > MAX_IPS || e.aliases.len() > MAX_ALIASES {
                return Err(format!(
                    "an endpoint has at most {MAX_IPS} addresses and {MAX_ALIASES} aliases"
                ));
            }
            Ok(())
        }
    }
}

/// Why `ip` cannot be a container's address on `spec`, if it cannot.
fn address_of(spec: &NetworkSpec, ip: IpAddr) -> Result<(), &'static str> {
    if !spec.subnet.contains(&ip) {
        return Err("is outside the network's subnet");
    }
    if Some(ip) == spec.gateway {
        return Err("is the network's gateway");
    }
    if ip == spec.subnet.network() || (ip.is_ipv4() && ip == spec.subnet.broadcast()) {
        return Err("is the subnet's own address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> NetworkSpec {
        NetworkSpec {
            name: "web".into(),
            id: "a".repeat(64),
            vni: 4096,
            subnet: "10.210.0.0/24".parse().unwrap(),
            gateway: Some("10.210.0.1".parse().unwrap()),
            ip_range: None,
            mtu: 1450,
            created: "2026-12-06T00:00:00Z".into(),
            encrypted: false,
            macvlan: None,
        }
    }

    fn lan() -> NetworkSpec {
        NetworkSpec {
            vni: 0,
            macvlan: Some(MacvlanSpec {
                parent: "eth0".into(),
                mode: "bridge".into(),
            }),
            ..spec()
        }
    }

    /// A cluster macvlan network has no VNI; its endpoints are announced before their link
    /// has a MAC. A record that mixes the kinds, or names no link, is refused.
    #[test]
    fn macvlan_networks_have_no_vni_and_endpoints_without_a_mac() {
        assert_eq!(network("web", &lan()), Ok(()));
        let no_mac = EndpointRecord {
            mac: String::new(),
            ..ep()
        };
        assert_eq!(endpoint(&KEY, &no_mac, &lan(), &owner()), Ok(()));
        assert!(endpoint(&KEY, &no_mac, &spec(), &owner()).is_err());
        for bad in [
            NetworkSpec { vni: 4096, ..lan() },
            NetworkSpec {
                encrypted: true,
                ..lan()
            },
            NetworkSpec {
                macvlan: Some(MacvlanSpec {
                    parent: "../../etc".into(),
                    mode: "bridge".into(),
                }),
                ..lan()
            },
            NetworkSpec {
                macvlan: Some(MacvlanSpec {
                    parent: "eth0".into(),
                    mode: "loud".into(),
                }),
                ..lan()
            },
        ] {
            assert!(network("web", &bad).is_err(), "{bad:?}");
        }
    }

    fn owner() -> HostRecord {
        HostRecord {
            host: "m2".into(),
            addr: "10.99.0.2".parse().unwrap(),
            mtu: 1500,
            tunnel: None,
        }
    }

    fn ep() -> EndpointRecord {
        EndpointRecord {
            network: "web".into(),
            host: "m2".into(),
            vtep: "10.99.0.2".parse().unwrap(),
            container_id: "c2".into(),
            ifname: "eth0".into(),
            mac: "02:42:0a:d2:00:05".into(),
            ips: vec!["10.210.0.5".parse().unwrap()],
            name: Some("c2".into()),
            aliases: vec!["web".into()],
        }
    }

    const KEY: EndpointKey<'static> = EndpointKey {
        network: "web",
        host: "m2",
        id: "c2:eth0",
    };

    #[test]
    fn a_sound_record_passes() {
        assert_eq!(network("web", &spec()), Ok(()));
        assert_eq!(host("m2", &owner()), Ok(()));
        assert_eq!(endpoint(&KEY, &ep(), &spec(), &owner()), Ok(()));
    }

    /// What an attacker with a `put` tried: a name that is a path, an endpoint that takes
    /// the gateway or points at another machine, a broadcast MAC, endless addresses.
    #[test]
    fn hostile_values_are_refused() {
        let bad_name = NetworkSpec {
            name: "../../../x/pwn".into(),
            ..spec()
        };
        assert!(network("../../../x/pwn", &bad_name).is_err());
        assert!(network("other", &spec()).is_err(), "key and name differ");
        let loopback = NetworkSpec {
            subnet: "127.0.0.0/8".parse().unwrap(),
            gateway: Some("127.0.0.1".parse().unwrap()),
            ..spec()
        };
        assert!(network("web", &loopback).is_err());
        let cases: Vec<(&str, EndpointRecord)> = vec![
            (
                "gateway",
                EndpointRecord {
                    ips: vec!["10.210.0.1".parse().unwrap()],
                    ..ep()
                },
            ),
            (
                "outside",
                EndpointRecord {
                    ips: vec!["10.0.0.9".parse().unwrap()],
                    ..ep()
                },
            ),
            (
                "broadcast",
                EndpointRecord {
                    ips: vec!["10.210.0.255".parse().unwrap()],
                    ..ep()
                },
            ),
            (
                "vtep",
                EndpointRecord {
                    vtep: "10.99.0.66".parse().unwrap(),
                    ..ep()
                },
            ),
            (
                "mac",
                EndpointRecord {
                    mac: "ff:ff:ff:ff:ff:ff".into(),
                    ..ep()
                },
            ),
            (
                "ifname",
                EndpointRecord {
                    ifname: "../x".into(),
                    ..ep()
                },
            ),
            (
                "many",
                EndpointRecord {
                    ips: (2..40)
                        .map(|i| format!("10.210.0.{i}").parse().unwrap())
                        .collect(),
                    ..ep()
                },
            ),
            (
                "aliases",
                EndpointRecord {
                    aliases: vec!["a".into(); 65],
                    ..ep()
                },
            ),
            (
                "host",
                EndpointRecord {
                    host: "m3".into(),
                    ..ep()
                },
            ),
        ];
        for (what, e) in cases {
            assert!(endpoint(&KEY, &e, &spec(), &owner()).is_err(), "{what}");
        }
        let loop_host = HostRecord {
            addr: "127.0.0.1".parse().unwrap(),
            ..owner()
        };
        assert!(host("m2", &loop_host).is_err());
    }

    /// A local client names a network `../../x`: refused before anything is touched.
    #[test]
    fn requests_with_paths_for_names_are_refused() {
        let bad = [
            Request::Join {
                network: "../../x".into(),
            },
            Request::Release {
                network: "web".into(),
                container_id: "../c".into(),
                ifname: "eth0".into(),
            },
            Request::Unregister {
                network: "web".into(),
                container_id: "c1".into(),
                ifname: "../e".into(),
            },
        ];
        for r in bad {
            assert!(request(&r).is_err(), "{r:?}");
        }
        assert!(request(&Request::Join {
            network: "web".into()
        })
        .is_ok());
    }
}
