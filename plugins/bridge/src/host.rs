//! The kernel side of an attachment: the bridge, the veth pair, addresses and routes.

use ipnet::IpNet;
use netctl_cni::{Ctx, Error, ErrorCode, IpConfig, Success};
use netctl_net::iface::{self, IfaceSetup};
use netctl_net::{set_sysctl, Link, NetError, NetNs, Netlink};

use crate::config::{host_veth_names, vlan_gateway_names, BridgeConfig};

/// Errno of "already exists".
const EEXIST: i32 = 17;
/// Errno of "operation not supported".
const EOPNOTSUPP: i32 = 95;

fn errno_is(e: &NetError, errno: i32) -> bool {
    matches!(e, NetError::Netlink { source, .. } if source.raw_os_error() == Some(errno))
}

fn exists(e: &NetError) -> bool {
    errno_is(e, EEXIST)
}

/// A failed VLAN filtering request as the user can act on it.
fn vlan_error(conf: &BridgeConfig, e: NetError) -> Error {
    if !errno_is(&e, EOPNOTSUPP) {
        return e.into();
    }
    Error::new(
        ErrorCode::Plugin(114),
        format!(
            "bridge {}: this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING): remove \"vlan\" or use a kernel with it",
            conf.bridge
        ),
    )
}

/// The network's bridge, created and brought up if missing; whether this call created it.
pub fn ensure_bridge(nl: &mut Netlink, conf: &BridgeConfig) -> Result<(Link, bool), Error> {
    let mut created = false;
    let link = match nl.link_by_name(&conf.bridge)? {
        Some(l) => l,
        None => {
            let vlans = conf.vlan().is_some();
            match nl.add_bridge(&conf.bridge, conf.mtu, bridge_mac(&conf.bridge), vlans) {
                Ok(_) => created = true,
                Err(e) if exists(&e) => {} // another ADD made it a moment ago
                Err(e) if vlans => return Err(vlan_error(conf, e)),
                Err(e) => return Err(e.into()),
            }
            nl.link_by_name(&conf.bridge)?
                .ok_or_else(|| NetError::LinkNotFound(conf.bridge.clone()))?
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::invalid_config(format!(
            "link {} exists and is not a bridge: choose another \"bridge\" name",
            conf.bridge
        )));
    }
    if conf.vlan().is_some() && !created {
        nl.set_vlan_filtering(link.index)
            .map_err(|e| vlan_error(conf, e))?;
    }
    if !link.up {
        nl.set_up(link.index, true)?;
    }
    if conf.promisc_mode {
        nl.set_promisc(link.index, true)?;
    }
    Ok((link, created))
}

/// A MAC for a new bridge, random like Docker's (a bridge may be joined to a physical
/// segment, where two hosts' bridges of the same name must not share one), locally
/// administered, and never of the `02:42:` form the containers' MACs take.
fn bridge_mac(name: &str) -> [u8; 6] {
    let seed = format!(
        "{name}/{}/{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let b = netctl_net::fnv1a64(&seed).to_be_bytes();
    [(b[0] & 0xf0) | 0x06, b[1], b[2], b[3], b[4], b[5]]
}

/// Creates the container's veth pair; returns the host end's name (the first free one of
/// [`host_veth_names`]).
pub fn add_veth(
    nl: &mut Netlink,
    ctx: &Ctx,
    conf: &BridgeConfig,
    ns: &NetNs,
    mac: [u8; 6],
) -> Result<String, Error> {
    let names = host_veth_names(&ctx.args.container_id, &ctx.args.ifname);
    let mut last = None;
    for name in names {
        match nl.add_veth(&name, &ctx.args.ifname, ns, conf.mtu, Some(mac)) {
            Ok(()) => return Ok(name),
            Err(e) if exists(&e) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(
        || Error::invalid_config("no name for the host interface"),
        Error::from,
    ))
}

/// Deletes a bridge this call created, unless something else was attached to it meanwhile.
pub fn remove_bridge_if_unused(nl: &mut Netlink, name: &str) -> Result<bool, NetError> {
    let Some(br) = nl.link_by_name(name)? else {
        return Ok(false);
    };
    if nl.links()?.iter().any(|l| l.master == Some(br.index)) {
        return Ok(false);
    }
    nl.del_link(br.index)?;
    Ok(true)
}

/// The container's MAC: asked for (`mac` capability or `CNI_ARGS MAC=`), else Docker's
/// `02:42:` + the IPv4 address.
pub fn container_mac(ctx: &Ctx, ips: &[IpConfig]) -> Result<[u8; 6], Error> {
    let asked = ctx
        .conf
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.mac.clone())
        .or_else(|| ctx.cni_arg("MAC").map(str::to_string));
    let seed = format!("{}/{}", ctx.args.container_id, ctx.args.ifname);
    iface::container_mac(asked.as_deref(), ips, &seed)
}

/// Attaches the host end to the bridge, sets hairpin mode, brings it up.
pub fn attach_port(
    nl: &mut Netlink,
    conf: &BridgeConfig,
    name: &str,
    bridge: &Link,
) -> Result<Link, Error> {
    let index = nl.index_of(name)?;
    // A bridge port is layer 2 only. With IPv6 off on it, no link-local address, DAD or
    // fe80::/64 and ff00::/8 routes per container in the host's table: each of those made
    // every later port change walk a table that grew with the number of containers.
    layer2_only(nl, name, index)?;
    nl.set_master(index, bridge)?;
    join_vlan(nl, conf, index)?;
    if conf.hairpin_mode {
        nl.set_hairpin(index, true)?;
    }
    nl.set_up(index, true)?;
    Ok(nl
        .link_by_name(name)?
        .ok_or_else(|| NetError::LinkNotFound(name.into()))?)
}

fn layer2_only(nl: &mut Netlink, name: &str, index: u32) -> Result<(), Error> {
    if !netctl_net::disable_ipv6(name)? {
        nl.no_ipv6_link_local(index)?;
    }
    Ok(())
}

/// Puts bridge port `index` in the network's VLAN, if it has one (without the default VLAN
/// 1 unless `preserveDefaultVlan`).
fn join_vlan(nl: &mut Netlink, conf: &BridgeConfig, index: u32) -> Result<(), Error> {
    if let Some(vid) = conf.vlan() {
        if !conf.preserve_default_vlan {
            nl.del_port_vlan(index, 1)?;
        }
        nl.set_port_vlan(index, vid)?;
    }
    Ok(())
}

/// The layer 3 interface of the network's VLAN `vid` on the bridge (see
/// [`vlan_gateway_names`]), made and brought up if missing; with the name of the pair's
/// bridge side when this call made it (for rollback).
pub fn ensure_vlan_gateway(
    nl: &mut Netlink,
    conf: &BridgeConfig,
    bridge: &Link,
    vid: u16,
) -> Result<(Link, Option<String>), Error> {
    let (l3, port) = vlan_gateway_names(&conf.bridge, vid);
    if let Some(link) = nl.link_by_name(&l3)? {
        return Ok((link, None));
    }
    match nl.add_veth(&port, &l3, &NetNs::current()?, conf.mtu, None) {
        Ok(()) => {}
        // Another ADD of this VLAN made it a moment ago, and wires it.
        Err(e) if exists(&e) => {
            let link = nl.link_by_name(&l3)?.ok_or(NetError::LinkNotFound(l3))?;
            return Ok((link, None));
        }
        Err(e) => return Err(e.into()),
    }
    match wire_vlan_gateway(nl, conf, bridge, &port, &l3) {
        Ok(link) => Ok((link, Some(port))),
        Err(e) => {
            let _ = nl.del_link_by_name(&port);
            Err(e)
        }
    }
}

fn wire_vlan_gateway(
    nl: &mut Netlink,
    conf: &BridgeConfig,
    bridge: &Link,
    port: &str,
    l3: &str,
) -> Result<Link, Error> {
    let index = nl.index_of(port)?;
    layer2_only(nl, port, index)?;
    nl.set_master(index, bridge)?;
    join_vlan(nl, conf, index)?;
    nl.set_up(index, true)?;
    let link = nl
        .link_by_name(l3)?
        .ok_or_else(|| NetError::LinkNotFound(l3.into()))?;
    nl.set_up(link.index, true)?;
    Ok(link)
}

/// Addresses, link state and routes of the container's interface.
pub fn configure_container(
    ns: &NetNs,
    nl: &mut Netlink,
    ctx: &Ctx,
    conf: &BridgeConfig,
    lease: &Success,
) -> Result<Link, Error> {
    let name = &ctx.args.ifname;
    let index = nl.index_of(name)?;
    netctl_net::iface::ignore_router_advertisements(ns, nl, name, index, lease)?;
    let setup = IfaceSetup {
        up: !conf.disable_container_interface,
        default_route: conf.default_route(),
        nodad: !conf.enabledad,
    };
    iface::configure(nl, index, lease, setup)?;
    Ok(nl
        .link_by_name(name)?
        .ok_or_else(|| NetError::LinkNotFound(name.clone()))?)
}

/// Puts each gateway on `bridge`, the network's layer 3 interface (replacing a different
/// address of the same subnet only with `forceAddress`), and turns on forwarding, and
/// routing of 127.0.0.1 to it so that ports published on the host's loopback reach
/// containers.
pub fn gateway_on_bridge(
    nl: &mut Netlink,
    conf: &BridgeConfig,
    bridge: &Link,
    ips: &[IpConfig],
) -> Result<(), Error> {
    let existing = nl.addresses(Some(bridge.index))?;
    for ip in ips {
        let Some(gw) = ip.gateway else { continue };
        let want = IpNet::new(gw, ip.address.prefix_len())
            .map_err(|_| Error::invalid_config(format!("bad gateway {gw}")))?;
        if existing.iter().any(|a| a.net == want) {
            continue;
        }
        let subnet = ip.address.trunc();
        if let Some(other) = existing.iter().find(|a| subnet.contains(&a.net.addr())) {
            if !conf.force_address {
                return Err(Error::new(
                    ErrorCode::Plugin(111),
                    format!(
                        "bridge {} already has address {} in {subnet}, not gateway {want}: set \"forceAddress\" to replace it",
                        bridge.name, other.net
                    ),
                ));
            }
            nl.del_address(bridge.index, other.net)?;
        }
        match nl.add_address(bridge.index, want, true) {
            Err(e) if !exists(&e) => return Err(e.into()),
            _ => {}
        }
        if gw.is_ipv4() {
            set_sysctl("net/ipv4/ip_forward", "1")?;
            set_sysctl(
                &format!("net/ipv4/conf/{}/route_localnet", bridge.name),
                "1",
            )?;
        } else {
            set_sysctl("net/ipv6/conf/all/forwarding", "1")?;
        }
    }
    Ok(())
}

/// Prefix of links retired by DEL and waiting for the reaper.
pub const RETIRED_PREFIX: &str = "rm.";

/// A unique name for a retired link.
fn retired_name(ctx: &Ctx) -> String {
    let seed = format!(
        "{}/{}/{}/{:?}",
        ctx.args.container_id,
        ctx.args.ifname,
        std::process::id(),
        std::time::SystemTime::now()
    );
    let h = netctl_net::fnv1a64(&seed);
    format!("{RETIRED_PREFIX}{:012x}", h & 0xffff_ffff_ffff)
}

/// DEL of the links. Deleting a veth makes the kernel wait for RCU grace periods (17-19
/// ms), so DEL only retires the container's end, in the container's namespace: down (the
/// host end loses its carrier and the bridge stops forwarding to it) and renamed, so the
/// container no longer sees its interface and the name is free for the next ADD at once.
/// A detached reaper, holding the namespace open, then deletes the pair, and with it any
/// link an earlier DEL retired but did not see deleted (it was killed before its reaper
/// started): a repeated DEL finds those too. DEL never touches the host end: taking a
/// bridge port down makes the kernel walk every port and forwarding entry, which the
/// reaper's deletion pays once anyway. When the namespace is gone, so is the pair (the
/// kernel deletes a namespace's links with it), as the reference plugin also assumes.
pub fn delete_container_link(ctx: &Ctx) -> Result<(), NetError> {
    let Some(path) = &ctx.args.netns else {
        return Ok(());
    };
    let ns = match NetNs::open(path) {
        Ok(ns) => ns,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut nl = Netlink::in_ns(&ns)?;
    let links = nl.links()?;
    let mut retired: Vec<String> = links
        .iter()
        .filter(|l| l.name.starts_with(RETIRED_PREFIX))
        .map(|l| l.name.clone())
        .collect();
    if let Some(link) = links.iter().find(|l| l.name == ctx.args.ifname) {
        let name = retired_name(ctx);
        nl.set_up(link.index, false)?;
        nl.set_name(link.index, &name)?;
        retired.push(name);
    }
    if retired.is_empty() || spawn_reaper(&ns, &retired).is_ok() {
        return Ok(());
    }
    for name in &retired {
        nl.del_link_by_name(name)?;
    }
    Ok(())
}

/// Starts the reaper, detached: a fork of this process that enters the namespace, or, in a
/// process with other threads (where forking is unsafe), `<this binary> --reap-link
/// NAME[,NAME...] FD` with the namespace as inherited descriptor FD. Either has no stdio (the
/// runtime reading our stdout must not wait for it) and a process group of its own.
fn spawn_reaper(ns: &NetNs, names: &[String]) -> std::io::Result<()> {
    let forked = ns
        .run_detached(|| {
            Netlink::new()
                .and_then(|mut nl| delete_retired(&mut nl, names.iter().map(String::as_str)))
                .is_ok()
        })
        .map_err(std::io::Error::other)?;
    if forked {
        return Ok(());
    }
    use netctl_cni::process::CleanSignals;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let fd = ns.inheritable_fd()?;
    Command::new(std::env::current_exe()?)
        .args(["--reap-link", &names.join(","), &fd.to_string()])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .clean_signals()
        .spawn()
        .map(drop)
}

/// `--reap-link NAMES FD`: deletes the retired links `names` (comma-separated) in the
/// namespace open as descriptor `fd`.
pub fn reap(names: &str, fd: &str) -> Result<(), NetError> {
    let ns = NetNs::open(std::path::Path::new(&format!("/proc/self/fd/{fd}")))?;
    delete_retired(&mut Netlink::in_ns(&ns)?, names.split(','))
}

/// Deletes retired links (only ever ones with the retired prefix); links already gone are
/// fine.
fn delete_retired<'a>(
    nl: &mut Netlink,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), NetError> {
    for name in names {
        if name.starts_with(RETIRED_PREFIX) && name.len() <= netctl_cni::validate::MAX_IFNAME_LEN {
            nl.del_link_by_name(name)?;
        }
    }
    Ok(())
}

/// The port is still an access port of the network's VLAN, if it has one.
fn check_vlan(nl: &mut Netlink, conf: &BridgeConfig, name: &str, index: u32) -> Result<(), Error> {
    let Some(vid) = conf.vlan() else {
        return Ok(());
    };
    let vlans = nl.port_vlans(index)?;
    if !vlans.iter().any(|v| v.vid == vid && v.pvid && v.untagged) {
        return Err(mismatch(format!(
            "{name} is no longer an untagged port of VLAN {vid} (its VLANs: {vlans:?})"
        )));
    }
    Ok(())
}

fn mismatch(msg: String) -> Error {
    Error::new(ErrorCode::Plugin(112), msg)
}

/// CHECK: the interfaces, addresses and default route of `prev` are still in place.
pub fn check(ctx: &Ctx, conf: &BridgeConfig, prev: &Success) -> Result<(), Error> {
    let mut host = Netlink::new()?;
    let bridge = host
        .link_by_name(&conf.bridge)?
        .ok_or_else(|| mismatch(format!("bridge {} is gone", conf.bridge)))?;
    let host_name = prev
        .interfaces
        .get(1)
        .map(|i| i.name.clone())
        .unwrap_or_else(|| host_veth_names(&ctx.args.container_id, &ctx.args.ifname).remove(0));
    let port = host
        .link_by_name(&host_name)?
        .ok_or_else(|| mismatch(format!("host interface {host_name} is gone")))?;
    if port.master != Some(bridge.index) {
        return Err(mismatch(format!(
            "{host_name} is no longer attached to {}",
            conf.bridge
        )));
    }
    check_vlan(&mut host, conf, &host_name, port.index)?;
    let ns = NetNs::open(crate::netns_path(ctx)?)?;
    let mut nl = Netlink::in_ns(&ns)?;
    let ctr = nl
        .link_by_name(&ctx.args.ifname)?
        .ok_or_else(|| mismatch(format!("container interface {} is gone", ctx.args.ifname)))?;
    if let Some(want) = prev.interfaces.iter().find(|i| i.sandbox.is_some()) {
        if !want.mac.is_empty() && want.mac != ctr.mac {
            return Err(mismatch(format!(
                "{} has MAC {}, not {}",
                ctr.name, ctr.mac, want.mac
            )));
        }
    }
    let addrs = nl.addresses(Some(ctr.index))?;
    for ip in &prev.ips {
        if !addrs.iter().any(|a| a.net == ip.address) {
            return Err(mismatch(format!(
                "{} lost address {}",
                ctr.name, ip.address
            )));
        }
    }
    if conf.default_route() && !conf.disable_container_interface {
        let routes = nl.routes()?;
        for ip in prev.ips.iter().filter(|ip| ip.gateway.is_some()) {
            let v4 = ip.address.addr().is_ipv4();
            if !routes.iter().any(|r| {
                r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() == v4 && r.gw == ip.gateway
            }) {
                return Err(mismatch(format!(
                    "the default route via {:?} is gone",
                    ip.gateway
                )));
            }
        }
    }
    Ok(())
}
