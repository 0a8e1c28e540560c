//! A container's networking, only through the CNI client: a network namespace bind-mounted
//! under the run directory, ADD per network in order (eth0, eth1 ...), each recorded as
//! pending before it runs, DEL in reverse. What each attachment asks of the plugins is one
//! typed `runtimeConfig` ([`runtime_conf`]), the same for `run`, `network connect` and
//! `netctl cni add`.

use std::net::IpAddr;
use std::path::PathBuf;

use netctl_cni::invoke::RuntimeConf;
use netctl_cni::types::{DnsCapability, PortMapping, RuntimeConfig};
use netctl_cni::{NetConfList, Success};

use crate::container::{
    Address, Container, Endpoint, NetMode, NetworkRequest, PortBinding, StoreLock,
};
use crate::engine::Engine;
use crate::error::{conflict, invalid, state, Context, Error, Result};
use crate::network::PREDEFINED;

/// What one attachment asks of a network's plugins.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest<'a> {
    /// The container ID (`CNI_CONTAINERID`).
    pub container_id: &'a str,
    /// Its name, for DNS (`K8S_POD_NAME`).
    pub name: Option<&'a str>,
    /// Its network namespace (`CNI_NETNS`; none for a DEL after it is gone).
    pub netns: Option<PathBuf>,
    /// The interface in it (`CNI_IFNAME`).
    pub ifname: &'a str,
    /// The network, which scopes the aliases.
    pub network: &'a str,
    /// DNS aliases on this network.
    pub aliases: Vec<String>,
    /// Ports to publish (`portMappings`).
    pub ports: &'a [PortBinding],
    /// Addresses asked for (`ips`).
    pub ips: &'a [IpAddr],
    /// The MAC asked for (`mac`).
    pub mac: Option<&'a str>,
    /// The container's own upstream resolvers (`dns`).
    pub dns: &'a [IpAddr],
    /// Its links on this network (`NETCTL_LINKS` in `CNI_ARGS`, for the DNS plugin).
    pub links: &'a [netctl_dnsrecords::Link],
}

/// The CNI runtime configuration of an attachment: `CNI_*` and the capability arguments.
pub fn runtime_conf(r: &AttachRequest) -> RuntimeConf {
    let rc = RuntimeConfig {
        port_mappings: r
            .ports
            .iter()
            .map(|p| PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol,
                host_ip: p.host_ip.map(|ip| ip.to_string()),
            })
            .collect(),
        ips: r.ips.iter().map(IpAddr::to_string).collect(),
        mac: r.mac.map(str::to_string),
        aliases: [(r.network.to_string(), r.aliases.clone())].into(),
        dns: (!r.dns.is_empty()).then(|| DnsCapability {
            servers: r.dns.iter().map(IpAddr::to_string).collect(),
            ..DnsCapability::default()
        }),
        ..RuntimeConfig::default()
    };
    let mut args = vec![("IgnoreUnknown".to_string(), "1".to_string())];
    if let Some(n) = r.name {
        args.push(("K8S_POD_NAME".into(), n.to_string()));
    }
    if !r.links.is_empty() {
        args.push((
            netctl_dnsrecords::LINKS_ARG.into(),
            netctl_dnsrecords::Link::list_arg(r.links),
        ));
    }
    RuntimeConf {
        container_id: r.container_id.to_string(),
        netns: r.netns.clone(),
        ifname: r.ifname.to_string(),
        args,
        capability_args: match serde_json::to_value(rc) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        },
    }
}

/// The runtime configuration of container `c`'s attachment to `req.name` as `ifname`.
fn container_conf(
    engine: &Engine,
    c: &Container,
    req: &NetworkRequest,
    ifname: &str,
    ports: &[PortBinding],
) -> RuntimeConf {
    let mut aliases = req.aliases.clone();
    // `--hostname` answers on user networks too, as in Docker.
    if c.config.hostname != c.config.short_id() && !PREDEFINED.contains(&req.name.as_str()) {
        aliases.push(c.config.hostname.clone());
    }
    aliases.push(c.config.short_id().to_string());
    runtime_conf(&AttachRequest {
        container_id: &c.config.id,
        name: Some(&c.config.name),
        netns: Some(engine.netns_path(&c.config.id)),
        ifname,
        network: &req.name,
        aliases,
        ports,
        ips: &req.ips,
        mac: req.mac.as_deref(),
        dns: &c.config.dns,
        links: &req.links,
    })
}

fn network(engine: &Engine, name: &str) -> Result<crate::network::Network> {
    engine.networks()?.find(name)
}

/// Whether a plugin of the conflist declares a CNI capability (only those get it).
pub fn declares(list: &NetConfList, cap: &str) -> bool {
    list.plugins.iter().any(|p| {
        p.get("capabilities")
            .and_then(|c| c.get(cap))
            .and_then(serde_json::Value::as_bool)
            == Some(true)
    })
}

/// ADD of one network; the ports go with it when given.
pub fn attach(
    engine: &Engine,
    c: &Container,
    req: &NetworkRequest,
    ifname: &str,
    ports: &[PortBinding],
) -> Result<Endpoint> {
    let net = network(engine, &req.name)?;
    let list = &net.list;
    for (asked, cap, flag) in [
        (!req.ips.is_empty(), "ips", "--ip"),
        (!ports.is_empty(), "portMappings", "-p"),
    ] {
        if asked && !declares(list, cap) {
            invalid!("network {}: {flag} cannot be honoured: no plugin of its conflist declares the {cap:?} capability", req.name);
        }
    }
    let rt = container_conf(engine, c, req, ifname, ports);
    let result = engine.cni.add(list, &rt).map_err(|source| Error::Cni {
        network: req.name.clone(),
        source,
    })?;
    if let Some(netns) = rt
        .netns
        .as_deref()
        .filter(|_| !req.link_local_ips.is_empty())
    {
        // A failure here fails the attachment, whose DEL takes the interface away.
        engine
            .sys
            .add_addresses(netns, ifname, &link_local_nets(&req.link_local_ips))
            .ctx(|| {
                format!(
                    "add the link-local addresses of {} on {}",
                    c.config.name, req.name
                )
            })?;
    }
    let mut ep = endpoint(&req.name, ifname, &result);
    ep.dns_upstreams = declares(list, "dns");
    ep.gw_priority = req.gw_priority;
    network_event(engine, "connect", &net, c);
    Ok(ep)
}

/// `--link-local-ip` addresses as Docker puts them on the interface: IPv4 with /16, IPv6
/// with /64.
fn link_local_nets(ips: &[IpAddr]) -> Vec<ipnet::IpNet> {
    ips.iter()
        .filter_map(|ip| ipnet::IpNet::new(*ip, if ip.is_ipv4() { 16 } else { 64 }).ok())
        .collect()
}

/// A network's `connect` or `disconnect` event for container `c`.
fn network_event(engine: &Engine, action: &str, net: &crate::network::Network, c: &Container) {
    let driver = net.driver();
    let attrs = [
        ("container", c.config.id.as_str()),
        ("name", net.name.as_str()),
        ("type", driver.as_str()),
    ];
    crate::events::record(engine, "network", action, &net.id, &attrs);
}

/// DEL of one network, with the same runtime config as its ADD (the published ports go
/// with eth0); DEL succeeds when things are already gone.
pub fn detach(engine: &Engine, c: &Container, req: &NetworkRequest, ifname: &str) -> Result<()> {
    let net = network(engine, &req.name)?;
    let list = &net.list;
    let ports = if ifname == "eth0" {
        c.state.ports.as_slice()
    } else {
        &[]
    };
    let rt = container_conf(engine, c, req, ifname, ports);
    engine.cni.del(list, &rt).map_err(|source| Error::Cni {
        network: req.name.clone(),
        source,
    })?;
    network_event(engine, "disconnect", &net, c);
    Ok(())
}

/// Brings one attachment up to date with the container's name and aliases (after a
/// rename), through the network's plugins.
pub fn refresh(engine: &Engine, c: &Container, network: &str, ifname: &str) -> Result<()> {
    let net = self::network(engine, network)?;
    let req = request_of(c, network);
    let rt = container_conf(engine, c, &req, ifname, &[]);
    engine
        .cni
        .refresh(&net.list, &rt)
        .map_err(|source| Error::Cni {
            network: network.to_string(),
            source,
        })
}

/// ADD of one network, recorded: the endpoint is saved as pending before ADD runs (so a
/// killed attach is known and repaired by DEL later), ADD runs with the container's lock
/// shared with the plugins, and its result replaces the pending record. A failed ADD is
/// followed by DEL, as runtimes do, and leaves no record.
pub fn attach_recorded(
    engine: &Engine,
    c: &mut Container,
    lock: &StoreLock,
    req: &NetworkRequest,
    ifname: &str,
    ports: &[PortBinding],
) -> Result<()> {
    let _gc = engine.containers.attach_lock(false)?;
    c.state.endpoints.push(Endpoint::pending(&req.name, ifname));
    c.save_state()?;
    let result = lock.shared_with_children(|| attach(engine, c, req, ifname, ports));
    let Some(pos) = c
        .state
        .endpoints
        .iter()
        .position(|e| e.pending && e.ifname == ifname)
    else {
        return Err(Error::State(format!(
            "the pending endpoint {ifname} vanished"
        )));
    };
    match result {
        Ok(ep) => {
            c.state.endpoints[pos] = ep;
            c.save_state()
        }
        Err(e) => {
            // A DEL that fails too leaves the endpoint pending: the next repair retries it.
            let undo = lock.shared_with_children(|| detach(engine, c, req, ifname));
            let e = match undo {
                Ok(()) => {
                    c.state.endpoints.remove(pos);
                    e
                }
                Err(u) => with_undo(e, vec![u]),
            };
            c.save_state().map_err(|s| s.context(e.report()))?;
            Err(e)
        }
    }
}

/// Makes the namespace and attaches every network in order; on failure undoes what was
/// done, in reverse, and returns the error.
pub fn setup(engine: &Engine, c: &mut Container, lock: &StoreLock) -> Result<()> {
    c.state.endpoints.clear();
    if !matches!(c.config.net_mode, NetMode::Private | NetMode::None) {
        return Ok(());
    }
    engine.sys.create_netns(&engine.netns_path(&c.config.id))?;
    let reqs = c.config.networks.clone();
    for (i, req) in reqs.iter().enumerate() {
        let ports = if i == 0 {
            c.state.ports.clone()
        } else {
            Vec::new()
        };
        if let Err(e) = attach_recorded(engine, c, lock, req, &format!("eth{i}"), &ports) {
            let undo = teardown(engine, c, lock);
            return Err(with_undo(e, undo));
        }
    }
    if let Err(e) = crate::routes::settle(engine, c) {
        let undo = teardown(engine, c, lock);
        return Err(with_undo(e, undo));
    }
    Ok(())
}

/// DEL of every attached network in reverse (pending ones too: DEL is safe for an ADD
/// that never finished), then the namespace goes. Every DEL runs whatever the others do;
/// what failed is returned (the caller reports it) and stays in the state as a pending
/// endpoint, which the next repair retries once the caller saves the state.
pub fn teardown(engine: &Engine, c: &mut Container, lock: &StoreLock) -> Vec<Error> {
    let endpoints = std::mem::take(&mut c.state.endpoints);
    let mut failed = Vec::new();
    for ep in endpoints.iter().rev() {
        let req = request_of(c, &ep.network);
        if let Err(e) = lock.shared_with_children(|| detach(engine, c, &req, &ep.ifname)) {
            failed.push(e.context(format!("detach {} from {}", c.config.name, ep.network)));
            c.state.endpoints.push(Endpoint {
                pending: true,
                ..ep.clone()
            });
        }
    }
    if matches!(c.config.net_mode, NetMode::Private | NetMode::None) {
        engine.sys.remove_netns(&engine.netns_path(&c.config.id));
    }
    failed
}

/// Takes back one attachment made a moment ago (DEL, then its record).
fn undo_attach(
    engine: &Engine,
    c: &mut Container,
    lock: &StoreLock,
    req: &NetworkRequest,
    ifname: &str,
) -> Vec<Error> {
    if let Err(e) = lock.shared_with_children(|| detach(engine, c, req, ifname)) {
        return vec![e];
    }
    c.state.endpoints.retain(|e| e.ifname != ifname);
    c.save_state().err().into_iter().collect()
}

/// `e`, saying which undo steps failed too (they stay recorded for the next repair).
fn with_undo(e: Error, undo: Vec<Error>) -> Error {
    if undo.is_empty() {
        return e;
    }
    let undo: Vec<String> = undo.iter().map(Error::report).collect();
    e.context(format!(
        "undoing the attachment failed too ({}); the next netctl command retries it",
        undo.join("; ")
    ))
}

/// What the container asked of a network (aliases, addresses), for its DEL.
pub fn request_of(c: &Container, network: &str) -> NetworkRequest {
    c.config
        .networks
        .iter()
        .find(|n| n.name == network)
        .cloned()
        .unwrap_or_else(|| NetworkRequest::plain(network))
}

/// What `connect` asks of the new endpoint.
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    /// Network-scoped aliases (`--alias`).
    pub aliases: Vec<String>,
    /// Addresses (`--ip`, `--ip6`).
    pub ips: Vec<IpAddr>,
    /// The endpoint's driver options, kept as given.
    pub driver_opts: std::collections::BTreeMap<String, String>,
    /// `--gw-priority`.
    pub gw_priority: i64,
    /// `--link NAME:ALIAS` (user networks).
    pub links: Vec<netctl_dnsrecords::Link>,
    /// `--link-local-ip`.
    pub link_local_ips: Vec<IpAddr>,
}

/// `network connect`: the next interface of a running container at once, and the network
/// for every later start.
pub fn connect(engine: &Engine, network: &str, key: &str, asked: &ConnectRequest) -> Result<()> {
    let (aliases, ips) = (&asked.aliases[..], &asked.ips[..]);
    let net = engine.networks()?.find(network)?;
    let c = engine.containers.find(key)?;
    let lock = engine.containers.lock_one(&c)?;
    let mut c = c;
    c.reload()?;
    if c.config.net_mode == NetMode::None {
        invalid!(
            "container {} is on network none: disconnect it from none first",
            c.config.name
        );
    }
    if c.config.net_mode != NetMode::Private || PREDEFINED[1..].contains(&net.name.as_str()) {
        invalid!("container {} shares a network namespace or uses host/none: it cannot be connected to {}", c.config.name, net.name);
    }
    if c.config.networks.iter().any(|n| n.name == net.name)
        || c.state.endpoints.iter().any(|e| e.network == net.name)
    {
        conflict!(
            "endpoint with name {} already exists in network {}",
            c.config.name,
            net.name
        );
    }
    if PREDEFINED.contains(&net.name.as_str()) && (!aliases.is_empty() || !ips.is_empty()) {
        invalid!("user specified IP address and network-scoped aliases are supported only on user defined networks");
    }
    let req = NetworkRequest {
        name: net.name.clone(),
        aliases: aliases.to_vec(),
        ips: ips.to_vec(),
        mac: None,
        driver_opts: asked.driver_opts.clone(),
        gw_priority: asked.gw_priority,
        links: asked.links.clone(),
        link_local_ips: asked.link_local_ips.clone(),
    };
    if c.is_running() {
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !c.state.endpoints.iter().any(|e| &e.ifname == n))
            .unwrap_or_default();
        attach_recorded(engine, &mut c, &lock, &req, &ifname, &[])?;
        let settled =
            crate::routes::settle(engine, &c).and_then(|()| crate::etc::write(engine, &c));
        if let Err(e) = settled {
            let undo = undo_attach(engine, &mut c, &lock, &req, &ifname);
            return Err(with_undo(e, undo));
        }
    }
    c.config.networks.push(req);
    c.save_config()
}

/// `network disconnect`: the interfaces, addresses, rules and DNS names on the network go
/// at once; what the container's state lists counts too (a `connect` killed before it
/// recorded the network in the config still left an attachment).
pub fn disconnect(engine: &Engine, network: &str, key: &str, force: bool) -> Result<()> {
    let net = engine.networks()?.find(network)?;
    // As Docker's, `force` is for a container that is gone: its endpoints were released with
    // it (or are the next repair's), so there is nothing left to do.
    let c = match engine.containers.find(key) {
        Err(Error::NotFound { .. }) if force => return Ok(()),
        other => other?,
    };
    let lock = engine.containers.lock_one(&c)?;
    let mut c = c;
    c.reload()?;
    let req = request_of(&c, &net.name);
    let configured = c.config.networks.iter().any(|n| n.name == net.name);
    let attached: Vec<String> = c
        .state
        .endpoints
        .iter()
        .filter(|e| e.network == net.name)
        .map(|e| e.ifname.clone())
        .collect();
    if !configured && attached.is_empty() {
        state!(
            "container {} is not connected to network {}",
            c.config.id,
            net.name
        );
    }
    for ifname in &attached {
        lock.shared_with_children(|| detach(engine, &c, &req, ifname))?;
        c.state.endpoints.retain(|e| &e.ifname != ifname);
        c.save_state()?;
    }
    // A container that stopped while a DEL failed keeps the endpoint (pending) but has no
    // namespace left: there are no routes to settle, its next start makes them.
    let live = engine.netns_path(&c.config.id).exists();
    if !attached.is_empty() && live {
        if c.config.net_mode == NetMode::None {
            // The none plugin's DEL took loopback down; the namespace keeps it, as Docker's.
            engine.sys.loopback_up(&engine.netns_path(&c.config.id))?;
        }
        crate::routes::settle(engine, &c)?;
        crate::etc::write(engine, &c)?;
    }
    c.config.networks.retain(|n| n.name != net.name);
    if c.config.net_mode == NetMode::None && net.name == "none" {
        // Off none, the container is an ordinary one with no network yet: `connect` may
        // attach it to others.
        c.config.net_mode = NetMode::Private;
    }
    c.save_config()
}

/// The gateway of each default route a result lists (the route's own, else the address's
/// of the same family).
fn default_gateways(r: &Success) -> Vec<IpAddr> {
    r.routes
        .iter()
        .filter(|rt| rt.dst.prefix_len() == 0)
        .filter_map(|rt| {
            let v4 = rt.dst.addr().is_ipv4();
            rt.gw.or_else(|| {
                r.ips
                    .iter()
                    .find(|ip| ip.address.addr().is_ipv4() == v4)
                    .and_then(|ip| ip.gateway)
            })
        })
        .collect()
}

fn endpoint(network: &str, ifname: &str, r: &Success) -> Endpoint {
    let ctr = r
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_some() && i.name == ifname);
    Endpoint {
        network: network.into(),
        ifname: ifname.into(),
        addresses: r
            .ips
            .iter()
            .map(|i| Address {
                net: i.address,
                gateway: i.gateway,
            })
            .collect(),
        mac: ctr.map(|i| i.mac.clone()).unwrap_or_default(),
        default_via: default_gateways(r),
        nameservers: r.dns.nameservers.clone(),
        search: r.dns.search.clone(),
        dns_upstreams: false,
        pending: false,
        gw_priority: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_typed_runtime_config_carries_every_capability() {
        let ports = crate::spec::parse_publish("127.0.0.1:8080:80/udp").unwrap();
        let ips: [IpAddr; 1] = ["10.0.0.9".parse().unwrap()];
        let dns: [IpAddr; 1] = ["10.0.0.53".parse().unwrap()];
        let rt = runtime_conf(&AttachRequest {
            container_id: "c1",
            name: Some("web1"),
            ifname: "eth0",
            network: "web",
            aliases: vec!["api".into()],
            ports: &ports,
            ips: &ips,
            mac: Some("02:42:0a:00:00:09"),
            dns: &dns,
            ..AttachRequest::default()
        });
        let caps = serde_json::Value::Object(rt.capability_args);
        assert_eq!(
            caps,
            serde_json::json!({
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": "127.0.0.1"}],
                "ips": ["10.0.0.9"], "mac": "02:42:0a:00:00:09",
                "aliases": {"web": ["api"]}, "dns": {"servers": ["10.0.0.53"]}
            })
        );
        assert_eq!(rt.args[1], ("K8S_POD_NAME".into(), "web1".into()));
    }
}
