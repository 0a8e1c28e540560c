//! The network's firewall rules and the container's published ports, through the backend
//! the network's config picks (`firewallBackend`). What was applied is recorded under the
//! run folder (`firewall/<l3 interface>.json`: the rules, the backend, the network), so DEL,
//! GC, STATUS and the self-healing watcher ([`crate::watch`]) act on what is really there.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use netctl_cni::types::Protocol;
use netctl_cni::{fsutil, Attachment, Ctx, Error, ErrorCode, IpConfig};
use netctl_firewall::{
    Backend, Firewall, FirewallError, IfName, MacAddr, NetworkRules, PortForward, Proto,
    SourceGuard,
};
use netctl_ipam::IpamConfig;
use serde::{Deserialize, Serialize};

use crate::config::BridgeConfig;

/// CNI code for a host port that is already published.
pub const CODE_PORT_IN_USE: u32 = 120;

fn fw_err(e: FirewallError) -> Error {
    let code = match e {
        FirewallError::PortInUse(_) => ErrorCode::Plugin(CODE_PORT_IN_USE),
        FirewallError::BadValue(_) => ErrorCode::InvalidConfig,
        _ => ErrorCode::Io,
    };
    Error::new(code, e.to_string())
}

/// The rules this host applied for a network, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The rules.
    #[serde(flatten)]
    pub rules: NetworkRules,
    /// The backend that applied them (records from before backends were chosen: nftables).
    #[serde(default = "nftables")]
    pub backend: Backend,
    /// The network's name (where its published records are).
    #[serde(default)]
    pub network: String,
    /// Whether the watcher puts them back after a flush.
    #[serde(default)]
    pub self_heal: bool,
}

fn nftables() -> Backend {
    Backend::Nftables
}

/// The backend a network uses: the one that applied its rules, else the configured one.
fn backend_of(conf: &BridgeConfig) -> Result<Box<dyn Firewall>, Error> {
    let choice = read_marker(conf).map_or(conf.firewall_backend, |a| a.backend);
    netctl_firewall::open(choice).map_err(fw_err)
}

/// The network's subnets: every range of a `netctl-ipam` config, else those of the lease.
fn subnets(conf: &BridgeConfig, ips: &[IpConfig]) -> Vec<IpNet> {
    let from_config = conf
        .ipam
        .as_ref()
        .and_then(|v| serde_json::from_value::<IpamConfig>(v.clone()).ok())
        .filter(|c| c.plugin_type == "netctl-ipam")
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

/// An interface name as firewall rules take it.
pub fn ifname(name: &str) -> Result<IfName, Error> {
    name.parse().map_err(fw_err)
}

/// A MAC address as firewall rules take it (from a link, or a hostile prevResult).
pub fn mac(text: &str) -> Result<MacAddr, Error> {
    text.parse().map_err(fw_err)
}

fn rules(conf: &BridgeConfig, ips: &[IpConfig]) -> Result<NetworkRules, Error> {
    Ok(NetworkRules {
        bridge: ifname(&conf.l3_interface())?,
        subnets: subnets(conf, ips),
        masquerade: conf.ip_masq,
        internal: conf.internal,
        unprotected: conf.unprotected,
        trusted: conf
            .trusted_host_interfaces
            .iter()
            .map(|i| ifname(i))
            .collect::<Result<_, _>>()?,
        strict: conf.isolate_strict,
        routed: conf.routed,
        ipv6: conf.ipv6_policy,
    })
}

/// Where the records of what was applied live.
pub fn marker_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("firewall")
}

/// The lock between taking things away (a record, then its rules: shared, so plugins run
/// side by side) and healing (exclusive): the watcher never puts back rules whose record it
/// read just before the record went.
pub fn heal_lock(run_dir: &Path, exclusive: bool) -> Option<std::fs::File> {
    let dir = marker_dir(run_dir);
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("heal.lock"))
        .ok()?;
    let locked = if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    };
    locked.ok().map(|()| file)
}

fn marker(conf: &BridgeConfig) -> PathBuf {
    marker_dir(&conf.run_dir()).join(format!("{}.json", conf.l3_interface()))
}

fn read_marker(conf: &BridgeConfig) -> Option<Applied> {
    read_applied(&marker(conf))
}

/// One record of what was applied (an unreadable one counts as none).
pub fn read_applied(path: &Path) -> Option<Applied> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn apply(conf: &BridgeConfig, network: &str, r: &NetworkRules) -> Result<(), Error> {
    // Shared: the last network's removal does not take the base away meanwhile.
    let _base_stays = heal_lock(&conf.run_dir(), false);
    let fw = netctl_firewall::open(conf.firewall_backend).map_err(fw_err)?;
    fw.setup_network(r).map_err(fw_err)?;
    let applied = Applied {
        rules: r.clone(),
        backend: fw.backend(),
        network: network.into(),
        self_heal: conf.firewall_self_heal,
    };
    let path = marker(conf);
    let bytes = serde_json::to_vec(&applied).unwrap_or_default();
    path.parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| fsutil::write_atomic(&path, &bytes))
        .map_err(|e| {
            Error::io(
                format!("failed to record firewall state in {}", path.display()),
                &e,
            )
        })?;
    keep_watching(conf);
    Ok(())
}

/// Makes the network's rules exist. The first ADD of a network applies them (one
/// transaction); later ADDs find the record of that and call nothing, but start the
/// firewall watcher again if it was killed (one lock tried when it runs).
pub fn ensure_network(conf: &BridgeConfig, network: &str, ips: &[IpConfig]) -> Result<(), Error> {
    let want = rules(conf, ips)?;
    if read_marker(conf).is_some_and(|a| a.rules == want) {
        keep_watching(conf);
        return Ok(());
    }
    apply(conf, network, &want)
}

/// Starts the firewall watcher unless it runs, when the network asks for self-healing.
fn keep_watching(conf: &BridgeConfig) {
    if conf.firewall_self_heal {
        crate::watch::ensure_running(&conf.run_dir());
    }
}

/// Puts back what someone flushed: the network's rules, then every published port and MAC
/// guard of its attachments, and starts the firewall watcher again if it was killed. A
/// network whose rules this host never applied (no container ever attached) is left alone.
pub fn repair(conf: &BridgeConfig) -> Result<(), Error> {
    match read_marker(conf) {
        Some(a) => {
            keep_watching(conf);
            heal(&conf.run_dir(), &a)
        }
        None => Ok(()),
    }
}

/// What [`repair`] does, from a record alone (the watcher has no config).
pub fn heal(run_dir: &Path, a: &Applied) -> Result<(), Error> {
    let fw = netctl_firewall::open(a.backend).map_err(fw_err)?;
    if !fw.network_present(&a.rules).map_err(fw_err)? {
        fw.setup_network(&a.rules).map_err(fw_err)?;
    }
    let records = published_records(run_dir, &a.network);
    for p in records.iter().filter(|p| !p.ports.is_empty()) {
        if !fw.ports_present(&p.ports).map_err(fw_err)? {
            fw.add_ports(&p.ports).map_err(fw_err)?;
        }
    }
    let guards: Vec<SourceGuard> = records.into_iter().filter_map(|p| p.source_guard).collect();
    for g in fw.missing_source_guards(&guards).map_err(fw_err)? {
        fw.add_source_guard(g).map_err(fw_err)?;
    }
    Ok(())
}

/// Removes the network's rules and their record, if this host applied them.
pub fn teardown_if_applied(conf: &BridgeConfig) -> Result<(), Error> {
    let Some(a) = read_marker(conf) else {
        return Ok(());
    };
    {
        // The record goes first, so the watcher never puts back what is being taken away;
        // if the rules cannot be removed, it comes back for the next try.
        let _healing_waits = heal_lock(&conf.run_dir(), false);
        let path = marker(conf);
        fsutil::remove_if_exists(&path)
            .map_err(|e| Error::io("failed to remove the firewall record", &e))?;
        let removed = netctl_firewall::open(a.backend).and_then(|fw| fw.teardown_network(&a.rules));
        if let Err(e) = removed {
            let _ = fsutil::write_atomic(&path, &serde_json::to_vec(&a).unwrap_or_default());
            return Err(fw_err(e));
        }
    }
    remove_base_if_last(&conf.run_dir(), a.backend)
}

/// After the last network's rules went: netctl's shared tables or chains go too, so that the
/// host's firewall is as it was. Under the exclusive lock, which every network's first ADD
/// (and the watcher) takes shared: no network's rules are being made meanwhile.
fn remove_base_if_last(run_dir: &Path, backend: Backend) -> Result<(), Error> {
    let _alone = heal_lock(run_dir, true);
    let networks_left =
        fsutil::written_files(&marker_dir(run_dir)).any(|(n, _)| n.ends_with(".json"));
    if networks_left {
        return Ok(());
    }
    netctl_firewall::open(backend)
        .and_then(|fw| fw.remove_if_unused())
        .map_err(fw_err)
}

/// CHECK: the network's rules are in place.
pub fn check(conf: &BridgeConfig, ips: &[IpConfig]) -> Result<(), Error> {
    if backend_of(conf)?
        .network_present(&rules(conf, ips)?)
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

/// Withdraws ports.
pub fn del_ports(conf: &BridgeConfig, ports: &[PortForward]) -> Result<(), Error> {
    backend_of(conf)?.del_ports(ports).map_err(fw_err)
}

/// Applies what an attachment publishes: its source guard (`macspoofchk`: only the
/// container's own MAC and addresses in through its bridge port) and its ports.
pub fn publish(conf: &BridgeConfig, p: &Published) -> Result<(), Error> {
    backend_of(conf)?
        .publish(&p.ports, p.source_guard.as_ref())
        .map_err(fw_err)
}

/// Removes a source guard.
pub fn del_source_guard(conf: &BridgeConfig, g: &SourceGuard) -> Result<(), Error> {
    backend_of(conf)?.del_source_guard(g).map_err(fw_err)
}

/// What this plugin published for one attachment (its ports and MAC guard), recorded before
/// they are applied: DEL and GC withdraw them from this record, whatever the runtime passes
/// or forgets later, and an ADD killed half-way leaves a record GC can act on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The published ports.
    pub ports: Vec<PortForward>,
    /// The source guard of the attachment's bridge port (`macspoofchk`); records of older
    /// versions call it `mac_guard`.
    #[serde(default, alias = "mac_guard", skip_serializing_if = "Option::is_none")]
    pub source_guard: Option<SourceGuard>,
}

impl Published {
    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.source_guard.is_none()
    }
}

fn published_dir(run_dir: &Path, network: &str) -> PathBuf {
    run_dir.join("bridge").join(network)
}

fn published_path(conf: &BridgeConfig, network: &str, a: &Attachment) -> PathBuf {
    published_dir(&conf.run_dir(), network).join(format!("{}:{}.json", a.container_id, a.ifname))
}

/// The attachments of a network that have a record, each with its record's path.
fn recorded(run_dir: &Path, network: &str) -> impl Iterator<Item = (Attachment, PathBuf)> {
    fsutil::written_files(&published_dir(run_dir, network)).filter_map(|(name, path)| {
        let (id, ifname) = name.strip_suffix(".json")?.split_once(':')?;
        let a = Attachment {
            container_id: id.into(),
            ifname: ifname.into(),
        };
        Some((a, path))
    })
}

/// Every attachment's record of a network.
fn published_records(run_dir: &Path, network: &str) -> Vec<Published> {
    recorded(run_dir, network)
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
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
    // As for the network's rules: the record goes first, back if the withdrawal fails.
    let _healing_waits = heal_lock(&conf.run_dir(), false);
    let path = published_path(conf, network, a);
    let kept = std::fs::read(&path).ok();
    fsutil::remove_if_exists(&path).map_err(|e| record_err(&path, &e))?;
    let withdrawn = del_ports(conf, &p.ports).and_then(|()| match &p.source_guard {
        Some(g) => del_source_guard(conf, g),
        None => Ok(()),
    });
    if withdrawn.is_err() {
        if let Some(bytes) = kept {
            let _ = fsutil::write_atomic(&path, &bytes);
        }
    }
    withdrawn
}

/// GC: withdraws what every attachment not in `valid` published, and sweeps the records a
/// killed ADD left half-written (it published nothing from them).
pub fn withdraw_stale(
    conf: &BridgeConfig,
    network: &str,
    valid: &[Attachment],
) -> Result<(), Error> {
    let run_dir = conf.run_dir();
    fsutil::sweep_stale_tmp(&published_dir(&run_dir, network));
    for (a, _) in recorded(&run_dir, network) {
        if !valid.contains(&a) {
            let p = read_published(conf, network, &a);
            withdraw(conf, network, &a, &p)?;
        }
    }
    Ok(())
}
