//! The network's firewall rules and the container's published ports.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use netctl_cni::types::Protocol;
use netctl_cni::{fsutil, Attachment, Ctx, Error, ErrorCode, IpConfig};
use netctl_firewall::{
    Firewall, FirewallError, MacGuard, NetworkRules, Nftables, PortForward, Proto,
};
use netctl_ipam::IpamConfig;
use serde::{Deserialize, Serialize};

use crate::config::BridgeConfig;

/// CNI code for a host port that is already published.
pub const CODE_PORT_IN_USE: u32 = 120;

fn fw_err(e: FirewallError) -> Error {
    let code = match e {
        FirewallError::PortInUse(_) => ErrorCode::Plugin(CODE_PORT_IN_USE),
        _ => ErrorCode::Io,
    };
    Error::new(code, e.to_string())
}

/// The network's subnets: every range of a `netctl-ipam` config, else those of the lease.
fn subnets(conf: &BridgeConfig, ips: &[IpConfig]) -> Vec<IpNet> {
    let from_config = conf
        .ipam
        .as_ref()
        .filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("netctl-ipam"))
        .and_then(|v| serde_json::from_value::<IpamConfig>(v.clone()).ok())
        .and_then(|c| c.range_sets().ok())
        .map(|sets| {
            sets.iter()
                .flat_map(|s| s.ranges().iter().map(|r| r.subnet()))
                .collect::<Vec<_>>()
        });
    let mut nets = from_config.unwrap_or_else(|| ips.iter().map(|ip| ip.address.trunc()).collect());
    nets.dedup();
    nets
}

fn rules(conf: &BridgeConfig, ips: &[IpConfig]) -> NetworkRules {
    NetworkRules {
        bridge: conf.l3_interface(),
        subnets: subnets(conf, ips),
        masquerade: conf.ip_masq,
        internal: conf.internal,
    }
}

fn marker(conf: &BridgeConfig) -> PathBuf {
    conf.run_dir()
        .join("firewall")
        .join(format!("{}.json", conf.l3_interface()))
}

fn read_marker(conf: &BridgeConfig) -> Option<NetworkRules> {
    std::fs::read(marker(conf))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn apply(conf: &BridgeConfig, r: &NetworkRules) -> Result<(), Error> {
    Nftables::new().setup_network(r).map_err(fw_err)?;
    let path = marker(conf);
    let bytes = serde_json::to_vec(r).unwrap_or_default();
    path.parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| fsutil::write_atomic(&path, &bytes))
        .map_err(|e| {
            Error::io(
                format!("failed to record firewall state in {}", path.display()),
                &e,
            )
        })
}

/// Makes the network's rules exist. The first ADD of a network applies them (one nft
/// transaction); later ADDs find the record of that and call nothing.
pub fn ensure_network(conf: &BridgeConfig, ips: &[IpConfig]) -> Result<(), Error> {
    let want = rules(conf, ips);
    if read_marker(conf).as_ref() == Some(&want) {
        return Ok(());
    }
    apply(conf, &want)
}

/// Re-applies the network's rules when they are missing (someone flushed the ruleset); a
/// network whose rules this host never applied (no container ever attached) is left alone.
pub fn repair(conf: &BridgeConfig) -> Result<(), Error> {
    let Some(want) = read_marker(conf) else {
        return Ok(());
    };
    if Nftables::new().network_present(&want).map_err(fw_err)? {
        return Ok(());
    }
    apply(conf, &want)
}

/// Removes the network's rules and their record, if this host applied them.
pub fn teardown_if_applied(conf: &BridgeConfig) -> Result<(), Error> {
    let Some(r) = read_marker(conf) else {
        return Ok(());
    };
    Nftables::new().teardown_network(&r).map_err(fw_err)?;
    fsutil::remove_if_exists(&marker(conf))
        .map_err(|e| Error::io("failed to remove the firewall record", &e))
}

/// CHECK: the network's rules are in place.
pub fn check(conf: &BridgeConfig, ips: &[IpConfig]) -> Result<(), Error> {
    if Nftables::new()
        .network_present(&rules(conf, ips))
        .map_err(fw_err)?
    {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::Plugin(113),
            format!(
                "the firewall rules of bridge {} are missing (was the ruleset flushed?): STATUS re-applies them",
                conf.l3_interface()
            ),
        ))
    }
}

/// The container's published ports (`portMappings` capability), for each of its addresses
/// whose family the host address allows.
pub fn port_forwards(ctx: &Ctx, ips: &[IpConfig]) -> Result<Vec<PortForward>, Error> {
    let Some(rc) = &ctx.conf.runtime_config else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for m in &rc.port_mappings {
        let proto = match m.protocol {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
            Protocol::Sctp => {
                return Err(Error::new(
                    ErrorCode::UnsupportedField,
                    "portMappings: sctp is not supported",
                ))
            }
        };
        if m.host_port == 0 || m.container_port == 0 {
            return Err(Error::invalid_config(format!(
                "portMappings: port 0 in {}:{} (the runtime picks a free host port before calling)",
                m.host_port, m.container_port
            )));
        }
        let host_ip = match m
            .host_ip
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                Error::invalid_config(format!("portMappings: hostIP {s:?} is not an IP address"))
            })?),
        }
        .filter(|ip| !ip.is_unspecified());
        if host_ip.is_some_and(|h| h.is_ipv6() && h.is_loopback()) {
            return Err(Error::invalid_config(
                "portMappings: hostIP ::1 cannot be forwarded to a container (the kernel does not route IPv6 loopback traffic out of the host); publish on [::] or another host address",
            ));
        }
        if let Some(h) = host_ip {
            if !ips
                .iter()
                .any(|ip| ip.address.addr().is_ipv4() == h.is_ipv4())
            {
                let v = if h.is_ipv4() { 4 } else { 6 };
                return Err(Error::invalid_config(format!(
                    "portMappings: host address {h} is IPv{v} but the container has no IPv{v} address on this network (publish on an address of its family, or give the network IPv{v})"
                )));
            }
        }
        for ip in ips {
            out.push(PortForward {
                host_ip,
                host_port: m.host_port,
                container_ip: ip.address.addr(),
                container_port: m.container_port,
                proto,
            });
        }
    }
    Ok(out)
}

/// Publishes ports.
pub fn add_ports(ports: &[PortForward]) -> Result<(), Error> {
    Nftables::new().add_ports(ports).map_err(fw_err)
}

/// Withdraws ports.
pub fn del_ports(ports: &[PortForward]) -> Result<(), Error> {
    Nftables::new().del_ports(ports).map_err(fw_err)
}

/// Lets only the container's own MAC in through its bridge port (`macspoofchk`).
pub fn add_mac_guard(g: &MacGuard) -> Result<(), Error> {
    Nftables::new().add_mac_guard(g).map_err(fw_err)
}

/// Removes a MAC guard.
pub fn del_mac_guard(g: &MacGuard) -> Result<(), Error> {
    Nftables::new().del_mac_guard(g).map_err(fw_err)
}

/// What this plugin published for one attachment (its ports and MAC guard), recorded before
/// they are applied: DEL and GC withdraw them from this record, whatever the runtime passes
/// or forgets later, and an ADD killed half-way leaves a record GC can act on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The published ports.
    pub ports: Vec<PortForward>,
    /// The MAC guard of the attachment's bridge port (`macspoofchk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_guard: Option<MacGuard>,
}

impl Published {
    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.mac_guard.is_none()
    }
}

fn published_dir(conf: &BridgeConfig, network: &str) -> PathBuf {
    conf.run_dir().join("bridge").join(network)
}

fn published_path(conf: &BridgeConfig, network: &str, a: &Attachment) -> PathBuf {
    published_dir(conf, network).join(format!("{}:{}.json", a.container_id, a.ifname))
}

fn record_err(path: &std::path::Path, e: &std::io::Error) -> Error {
    Error::io(
        format!("failed to record published ports in {}", path.display()),
        e,
    )
}

/// Writes the record of an attachment.
pub fn record_published(
    conf: &BridgeConfig,
    network: &str,
    a: &Attachment,
    p: &Published,
) -> Result<(), Error> {
    let path = published_path(conf, network, a);
    let bytes = serde_json::to_vec(p).unwrap_or_default();
    path.parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| fsutil::write_atomic(&path, &bytes))
        .map_err(|e| record_err(&path, &e))
}

/// The record of an attachment, if any (an unreadable one counts as none).
pub fn read_published(conf: &BridgeConfig, network: &str, a: &Attachment) -> Published {
    std::fs::read(published_path(conf, network, a))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Withdraws what `p` lists and removes the attachment's record.
pub fn withdraw(
    conf: &BridgeConfig,
    network: &str,
    a: &Attachment,
    p: &Published,
) -> Result<(), Error> {
    del_ports(&p.ports)?;
    if let Some(g) = &p.mac_guard {
        del_mac_guard(g)?;
    }
    let path = published_path(conf, network, a);
    fsutil::remove_if_exists(&path).map_err(|e| record_err(&path, &e))
}

/// GC: withdraws what every attachment not in `valid` published.
pub fn withdraw_stale(
    conf: &BridgeConfig,
    network: &str,
    valid: &[Attachment],
) -> Result<(), Error> {
    let Ok(dir) = std::fs::read_dir(published_dir(conf, network)) else {
        return Ok(());
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((id, ifname)) = name.strip_suffix(".json").and_then(|n| n.split_once(':')) else {
            continue;
        };
        let a = Attachment {
            container_id: id.into(),
            ifname: ifname.into(),
        };
        if !valid.contains(&a) {
            let p = read_published(conf, network, &a);
            withdraw(conf, network, &a, &p)?;
        }
    }
    Ok(())
}
