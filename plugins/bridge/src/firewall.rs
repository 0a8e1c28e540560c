//! The network's firewall rules and the container's published ports.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use netctl_cni::types::Protocol;
use netctl_cni::{fsutil, Ctx, Error, ErrorCode, IpConfig};
use netctl_firewall::{
    Firewall, FirewallError, MacGuard, NetworkRules, Nftables, PortForward, Proto,
};
use netctl_ipam::IpamConfig;

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
pub fn add_mac_guard(port: &str, mac: &str) -> Result<MacGuard, Error> {
    let g = MacGuard {
        port: port.into(),
        mac: mac.into(),
    };
    Nftables::new().add_mac_guard(&g).map_err(fw_err)?;
    Ok(g)
}

/// Removes a MAC guard.
pub fn del_mac_guard(g: &MacGuard) -> Result<(), Error> {
    Nftables::new().del_mac_guard(g).map_err(fw_err)
}
