//! The bridge driver: a Linux bridge per network, a veth pair per container, addresses from
//! IPAM, the gateway on the bridge, and firewall rules for masquerade, isolation between
//! networks, and published ports.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "web", "type": "netctl-bridge", "bridge": "br-web",
//!  "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
//!  "capabilities": {"portMappings": true, "ips": true, "mac": true},
//!  "ipam": {"type": "netctl-ipam", "subnet": "172.18.0.0/16"}}
//! ```

mod config;
mod firewall;
mod host;
mod watch;

use netctl_cni::{
    Attachment, Command, Ctx, Error, ErrorCode, Interface, IpConfig, Plugin, Route, Success,
};
use netctl_ipam::plugin::{driver_ipam, driver_ipam_add};
use netctl_net::{NetNs, Netlink};

pub use config::{host_veth_names, BridgeConfig};

/// The plugin.
pub struct BridgePlugin;

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&BridgePlugin)
}

/// The bridge path of another plugin (the overlay's): ADD with addresses the caller got
/// elsewhere, undoing what it made (never the lease) when a step fails.
pub fn attach(ctx: &Ctx, conf: &BridgeConfig, lease: Success) -> Result<Success, Error> {
    conf.validate_links()?;
    let ns = NetNs::open(netns_path(ctx)?)?;
    let mut ctr_nl = Netlink::in_ns(&ns)?;
    refuse_existing_interface(&mut ctr_nl, ctx)?;
    let mut steps = Vec::new();
    attach_steps(ctx, conf, &ns, &mut ctr_nl, &mut steps, lease).inspect_err(|_| {
        rollback(ctx, conf, steps);
    })
}

/// DEL of [`attach`]: everything but the addresses; whatever is already gone is fine.
pub fn detach(ctx: &Ctx, conf: &BridgeConfig) -> Result<(), Error> {
    del_links_and_rules(ctx, conf)
}

/// The helper modes this plugin starts itself in (as `current_exe`), also from a plugin
/// built on the bridge path: `--watch-firewall RUN_DIR` (the self-healing watcher, see
/// [`watch`]) and `--reap-link NAMES FD` (the detached half of DEL). Their exit code, or
/// None when `args` ask for neither (a CNI call).
pub fn helper_mode(args: &[String]) -> Option<i32> {
    match args {
        [_, flag, run_dir] if flag == "--watch-firewall" => {
            Some(watch::run(std::path::Path::new(run_dir)))
        }
        [_, flag, names, fd] if flag == "--reap-link" => {
            Some(i32::from(host::reap(names, fd).is_err()))
        }
        _ => None,
    }
}

/// A repeated ADD of a live attachment (the container has the interface already) is refused
/// before anything is asked or made.
fn refuse_existing_interface(ctr_nl: &mut Netlink, ctx: &Ctx) -> Result<(), Error> {
    if ctr_nl.link_by_name(&ctx.args.ifname)?.is_some() {
        return Err(Error::new(
            ErrorCode::Plugin(110),
            format!(
                "the container already has an interface named {}",
                ctx.args.ifname
            ),
        ));
    }
    Ok(())
}

/// What ADD has made so far, undone in reverse order when a later step fails.
enum Step {
    /// A lease this call made (never one the attachment already held).
    Ipam,
    Bridge,
    /// A link in the host namespace this ADD made: a container's host end or a VLAN's
    /// gateway pair (deleting one end deletes the pair).
    HostLink(String),
    /// What this attachment publishes (ports, source guard), recorded before it is applied:
    /// undone from the record, under the lock the firewall watcher heals under, so a heal
    /// from the record meanwhile is undone too.
    Published(firewall::Published),
}

fn rollback(ctx: &Ctx, conf: &BridgeConfig, steps: Vec<Step>) {
    for step in steps.into_iter().rev() {
        // Best effort: the caller reports the error that made us roll back.
        let _ = match step {
            Step::Ipam => conf
                .ipam
                .as_ref()
                .map(|ipam| driver_ipam(ctx, Command::Del, ipam).map(drop))
                .unwrap_or(Ok(())),
            Step::Bridge => remove_bridge(conf),
            Step::HostLink(name) => Netlink::new()
                .and_then(|mut nl| nl.del_link_by_name(&name))
                .map_err(Error::from),
            Step::Published(p) => firewall::withdraw(conf, &ctx.conf.name, &ctx.attachment(), &p),
        };
    }
}

/// The network's own part of the host: its VLAN's gateway interface, its firewall rules
/// and, once nothing else is attached to it, the bridge.
fn remove_network(conf: &BridgeConfig) -> Result<(), Error> {
    let mut nl = Netlink::new()?;
    if let Some(vid) = conf.vlan() {
        nl.del_link_by_name(&config::vlan_gateway_names(&conf.bridge, vid).1)?;
    }
    firewall::teardown_if_applied(conf)?;
    host::remove_bridge_if_unused(&mut nl, &conf.bridge)?;
    Ok(())
}

/// Deletes the bridge and its firewall rules when no container is attached to it.
fn remove_bridge(conf: &BridgeConfig) -> Result<(), Error> {
    if host::remove_bridge_if_unused(&mut Netlink::new()?, &conf.bridge)? {
        firewall::teardown_if_applied(conf)?;
    }
    Ok(())
}

/// DEL's part after IPAM: withdraws what the attachment published (from its record, and
/// from what the runtime passes again) and deletes the container's interface.
fn del_links_and_rules(ctx: &Ctx, conf: &BridgeConfig) -> Result<(), Error> {
    let mut first_err: Option<Error> = None;
    let mut note = |r: Result<(), Error>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    let mut published = firewall::read_published(conf, &ctx.conf.name, &ctx.attachment());
    if let Some(prev) = ctx.prev_result()? {
        // Attachments made before ADD kept a record: what the runtime passes again.
        published
            .ports
            .extend(firewall::port_forwards(ctx, &prev.ips)?);
        if let (true, None, Some(port), Some(ctr)) = (
            conf.macspoofchk,
            &published.source_guard,
            prev.interfaces.get(1),
            prev.interfaces.get(2),
        ) {
            // What a runtime passes back is not trusted into a firewall script: a name
            // or MAC that is not one is no guard of ours (the record has the real one).
            if let (Ok(port), Ok(mac)) = (firewall::ifname(&port.name), firewall::mac(&ctr.mac)) {
                let ips = prev.ips.iter().map(|ip| ip.address.addr()).collect();
                let guard = netctl_firewall::SourceGuard {
                    port,
                    index: 0, // not in a result: this guard is keyed by nothing we know
                    mac,
                    ips,
                };
                published.source_guard = Some(guard);
            }
        }
    }
    published.ports.sort_by_key(|p| p.describe());
    published.ports.dedup();
    note(firewall::withdraw(
        conf,
        &ctx.conf.name,
        &ctx.attachment(),
        &published,
    ));
    note(host::delete_container_link(ctx).map_err(Error::from));
    first_err.map_or(Ok(()), Err)
}

fn netns_path(ctx: &Ctx) -> Result<&std::path::Path, Error> {
    ctx.args
        .netns
        .as_deref()
        .ok_or_else(|| Error::invalid_env("CNI_NETNS is required"))
}

impl Plugin for BridgePlugin {
    type Config = BridgeConfig;

    fn add(&self, ctx: &Ctx, conf: BridgeConfig) -> Result<Success, Error> {
        conf.validate()?;
        let ns = NetNs::open(netns_path(ctx)?)?;
        let mut steps = Vec::new();
        match add_steps(ctx, &conf, &ns, &mut steps) {
            Ok(result) => Ok(result),
            Err(e) => {
                rollback(ctx, &conf, steps);
                Err(e)
            }
        }
    }

    /// Releases the addresses, withdraws the published ports and deletes the container's
    /// interface (its host end goes with it); whatever is already gone is fine.
    fn del(&self, ctx: &Ctx, conf: BridgeConfig) -> Result<(), Error> {
        let mut first_err: Option<Error> = None;
        let mut note = |r: Result<(), Error>| {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        };
        if let Some(ipam) = &conf.ipam {
            note(driver_ipam(ctx, Command::Del, ipam).map(drop));
        }
        note(del_links_and_rules(ctx, &conf));
        first_err.map_or(Ok(()), Err)
    }

    fn check(&self, ctx: &Ctx, conf: BridgeConfig) -> Result<(), Error> {
        conf.validate()?;
        let prev = ctx
            .prev_result()?
            .ok_or_else(|| Error::invalid_config("CHECK needs prevResult: the result of ADD"))?;
        host::check(ctx, &conf, &prev)?;
        firewall::check(&conf, &prev.ips)?;
        if let Some(ipam) = &conf.ipam {
            driver_ipam(ctx, Command::Check, ipam)?;
        }
        Ok(())
    }

    /// Withdraws the ports and releases the addresses of attachments that are gone; when
    /// the network is being removed, its gateway interface, bridge (once no port is left on
    /// it) and rules go too.
    fn gc(&self, ctx: &Ctx, conf: BridgeConfig, valid: &[Attachment]) -> Result<(), Error> {
        conf.validate_links()?;
        firewall::withdraw_stale(&conf, &ctx.conf.name, valid)?;
        if let Some(ipam) = &conf.ipam {
            driver_ipam(ctx, Command::Gc, ipam)?;
        }
        if ctx.removing_network() {
            remove_network(&conf)?;
        }
        Ok(())
    }

    /// Re-applies the network's firewall rules if someone flushed them, then reports whether
    /// IPAM can still hand out addresses.
    fn status(&self, ctx: &Ctx, conf: BridgeConfig) -> Result<(), Error> {
        conf.validate_links()?;
        if ctx.preparing_network() {
            return prepare_network(&conf);
        }
        firewall::repair(&conf)?;
        if let Some(ipam) = &conf.ipam {
            driver_ipam(ctx, Command::Status, ipam)?;
        }
        Ok(())
    }
}

/// The network's host side before any container: its bridge and, when it carries the
/// gateway, the gateway address of each range set (from the IPAM configuration). The
/// network's firewall rules, and a VLAN network's gateway interface, come with its first
/// attachment, which also starts the firewall watcher that keeps them.
fn prepare_network(conf: &BridgeConfig) -> Result<(), Error> {
    let mut nl = Netlink::new()?;
    let (bridge, _) = host::ensure_bridge(&mut nl, conf)?;
    if !conf.gateway_on_bridge() || conf.vlan().is_some() {
        return Ok(());
    }
    let Some(ipam) = &conf.ipam else {
        return Ok(());
    };
    let Ok(ipam) = serde_json::from_value::<netctl_ipam::IpamConfig>(ipam.clone()) else {
        return Ok(()); // another IPAM's configuration: its gateway comes with the first ADD
    };
    let sets = ipam
        .range_sets()
        .map_err(|e| Error::invalid_config(e.to_string()))?;
    let ips: Vec<IpConfig> = sets
        .iter()
        .filter_map(|s| s.ranges().first())
        .filter_map(|r| {
            let gw = r.gateway();
            Some(IpConfig {
                address: ipnet::IpNet::new(gw, r.subnet().prefix_len()).ok()?,
                gateway: Some(gw),
                interface: None,
            })
        })
        .collect();
    host::gateway_on_bridge(&mut nl, conf, &bridge, &ips)
}

fn add_steps(
    ctx: &Ctx,
    conf: &BridgeConfig,
    ns: &NetNs,
    steps: &mut Vec<Step>,
) -> Result<Success, Error> {
    let ipam = conf
        .ipam
        .as_ref()
        .ok_or_else(|| Error::invalid_config("missing ipam"))?;
    // A repeated ADD of a live attachment is refused before anything is asked or made.
    let mut ctr_nl = Netlink::in_ns(ns)?;
    refuse_existing_interface(&mut ctr_nl, ctx)?;
    let (lease, made) = driver_ipam_add(ctx, ipam)?;
    if made {
        steps.push(Step::Ipam);
    }
    attach_steps(ctx, conf, ns, &mut ctr_nl, steps, lease)
}

/// Everything of ADD after IPAM: the bridge, the veth pair, addresses and routes in the
/// container, the gateway, firewall rules and published ports, each step recorded in `steps`.
fn attach_steps(
    ctx: &Ctx,
    conf: &BridgeConfig,
    ns: &NetNs,
    ctr_nl: &mut Netlink,
    steps: &mut Vec<Step>,
    lease: Success,
) -> Result<Success, Error> {
    if lease.ips.is_empty() {
        return Err(Error::invalid_config("IPAM returned no address"));
    }
    let mut host_nl = Netlink::new()?;
    let (bridge, created) = host::ensure_bridge(&mut host_nl, conf)?;
    if created {
        steps.push(Step::Bridge);
    }
    let mac = host::container_mac(ctx, &lease.ips)?;
    let host_name = host::add_veth(&mut host_nl, ctx, conf, ns, mac)?;
    steps.push(Step::HostLink(host_name.clone()));
    let host_link = host::attach_port(&mut host_nl, conf, &host_name, &bridge)?;
    let ctr_link = host::configure_container(ns, ctr_nl, ctx, conf, &lease)?;
    let source_guard = match conf.macspoofchk {
        true => Some(netctl_firewall::SourceGuard {
            port: firewall::ifname(&host_name)?,
            index: host_link.index,
            mac: firewall::mac(&ctr_link.mac)?,
            ips: lease.ips.iter().map(|ip| ip.address.addr()).collect(),
        }),
        false => None,
    };
    let published = firewall::Published {
        ports: firewall::port_forwards(ctx, &lease.ips)?,
        source_guard,
    };
    if !published.is_empty() {
        firewall::record_published(conf, &ctx.conf.name, &ctx.attachment(), &published)?;
        steps.push(Step::Published(published.clone()));
    }
    let mut vlan_gateway = None;
    if conf.gateway_on_bridge() {
        let l3 = match conf.vlan() {
            Some(vid) => {
                let (link, made) = host::ensure_vlan_gateway(&mut host_nl, conf, &bridge, vid)?;
                if let Some(port) = made {
                    steps.push(Step::HostLink(port));
                }
                vlan_gateway.insert(link).clone()
            }
            None => bridge.clone(),
        };
        host::gateway_on_bridge(&mut host_nl, conf, &l3, &lease.ips)?;
    }
    firewall::ensure_network(conf, &ctx.conf.name, &lease.ips)?;
    if !published.is_empty() {
        firewall::publish(conf, &published)?;
    }
    let mut result = result(ctx, conf, &bridge, &host_link, &ctr_link, lease);
    if let Some(l) = vlan_gateway {
        // As the reference plugin reports it: after the container's interface.
        result.interfaces.push(Interface {
            name: l.name,
            mac: l.mac,
            mtu: l.mtu,
            ..Interface::default()
        });
    }
    Ok(result)
}

fn result(
    ctx: &Ctx,
    conf: &BridgeConfig,
    bridge: &netctl_net::Link,
    host_link: &netctl_net::Link,
    ctr_link: &netctl_net::Link,
    lease: Success,
) -> Success {
    let iface = |l: &netctl_net::Link, sandbox: Option<String>| Interface {
        name: l.name.clone(),
        mac: l.mac.clone(),
        mtu: l.mtu,
        sandbox,
        ..Interface::default()
    };
    let mut routes = lease.routes.clone();
    if conf.default_route() {
        for ip in &lease.ips {
            let any = if ip.address.addr().is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            };
            if let (Ok(dst), Some(gw)) = (any.parse(), ip.gateway) {
                if !routes.iter().any(|r: &Route| r.dst == dst) {
                    routes.push(Route::new(dst, Some(gw)));
                }
            }
        }
    }
    Success {
        interfaces: vec![
            iface(bridge, None),
            iface(host_link, None),
            iface(
                ctr_link,
                ctx.args.netns.as_ref().map(|p| p.display().to_string()),
            ),
        ],
        ips: lease
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: Some(2),
                ..ip
            })
            .collect(),
        routes,
        dns: ctx.conf.dns.clone().unwrap_or_default(),
    }
}
