//! The overlay driver: the bridge path of `netctl-bridge` (a veth into the network's bridge on
//! this host, the distributed gateway, masquerade, published ports on this host) with the
//! network's VXLAN device as one more bridge port, addresses from the cluster's IPAM and the
//! endpoint announced to every host, all through this host's agent (`netctl-overlayd`).
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "web", "plugins": [
//!   {"type": "netctl-overlay", "capabilities": {"portMappings": true, "ips": true, "aliases": true}},
//!   {"type": "netctl-dns", "capabilities": {"aliases": true}}]}
//! ```
//!
//! When the agent cannot be reached (or cannot reach etcd), ADD fails with CNI error 11 (try
//! again later); endpoints already made keep working.
//!
//! Named as the IPAM of another plugin (`netctl-macvlan` on a macvlan network of the
//! cluster), it leases from the cluster's IPAM and announces the endpoint's names.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use netctl_bridge::{BridgeConfig, BridgePlugin};
use netctl_cni::{Attachment, Ctx, Error, ErrorCode, IpConfig, Plugin, StateDir, Success};
use netctl_net::{NetError, Netlink, DEFAULT_RUN_DIR};
use netctl_overlay_api::{ApiError, Client, EndpointRecord, NetworkSpec, Reply, Request};
use serde::Deserialize;
use serde_json::json;

/// The plugin.
pub struct OverlayPlugin;

/// Runs the plugin.
pub fn run() -> ! {
    netctl_cni::skel::run(&OverlayPlugin)
}

/// The plugin's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverlayConfig {
    /// This host's run folder (the agent's socket, records).
    #[serde(default)]
    pub run_dir: Option<StateDir>,
    /// This host's cluster configuration, to start the agent when it does not run.
    #[serde(default)]
    pub cluster_config: Option<StateDir>,
    /// The firewall backend of the network's bridge on this host.
    #[serde(default)]
    pub firewall_backend: Option<serde_json::Value>,
    /// The network's VNI (the agent writes it into the conflist, so DEL and GC find the
    /// bridge without asking).
    #[serde(default)]
    pub vni: Option<u32>,
    /// The network's MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
}

impl OverlayConfig {
    fn run_dir(&self) -> PathBuf {
        StateDir::or_default(&self.run_dir, DEFAULT_RUN_DIR)
    }
}

fn agent_err(e: ApiError) -> Error {
    match e {
        ApiError::Agent {
            retry: false,
            message,
        } => Error::new(ErrorCode::InvalidConfig, message),
        other => Error::new(ErrorCode::TryAgainLater, other.to_string()),
    }
}

/// The agent's client, starting the agent when it does not answer and this host is in a
/// cluster.
fn client(conf: &OverlayConfig) -> Result<Client, Error> {
    let run_dir = conf.run_dir();
    if conf.cluster_config.is_none() {
        return Client::connect(&run_dir, Duration::from_secs(10)).map_err(agent_err);
    }
    let config = StateDir::or_default(&conf.cluster_config, "/var/lib/netctl/cluster.json");
    let agent = netctl_overlay_api::agent_beside_me().ok_or_else(|| {
        Error::new(
            ErrorCode::TryAgainLater,
            "netctl-overlayd is not beside netctl-overlay",
        )
    })?;
    netctl_overlay_api::connect_or_start(&agent, &config, &run_dir, Duration::from_secs(5))
        .map_err(agent_err)
}

fn call(client: &mut Client, req: &Request) -> Result<Reply, Error> {
    client.call(req).map_err(agent_err)
}

/// The bridge path's configuration for this network on this host.
fn bridge_config(conf: &OverlayConfig, spec: &NetworkSpec) -> Result<BridgeConfig, Error> {
    bridge_settings(conf, spec.vni, spec.mtu)
}

/// The same from the conflist alone (DEL and GC need no agent for it).
fn bridge_from_conf(conf: &OverlayConfig) -> Result<Option<BridgeConfig>, Error> {
    match (conf.vni, conf.mtu) {
        (Some(vni), Some(mtu)) => bridge_settings(conf, vni, mtu).map(Some),
        _ => Ok(None),
    }
}

fn bridge_settings(conf: &OverlayConfig, vni: u32, mtu: u32) -> Result<BridgeConfig, Error> {
    let mut b = json!({"bridge": netctl_overlay_api::bridge_name(vni), "isGateway": true,
        "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true, "mtu": mtu,
        "runDir": conf.run_dir()});
    if let Some(fw) = &conf.firewall_backend {
        b["firewallBackend"] = fw.clone();
    }
    serde_json::from_value(b).map_err(|e| Error::invalid_config(format!("bridge settings: {e}")))
}

fn join(client: &mut Client, network: &str) -> Result<NetworkSpec, Error> {
    match call(
        client,
        &Request::Join {
            network: network.into(),
        },
    )? {
        Reply::Network { spec, .. } => Ok(spec),
        other => Err(Error::new(
            ErrorCode::Io,
            format!("unexpected reply to join: {other:?}"),
        )),
    }
}

fn allocate(client: &mut Client, ctx: &Ctx) -> Result<Success, Error> {
    let requested: Vec<IpAddr> = netctl_ipam::plugin::requested_ips(ctx)?;
    let reply = call(
        client,
        &Request::Allocate {
            network: ctx.conf.name.clone(),
            container_id: ctx.args.container_id.clone(),
            ifname: ctx.args.ifname.clone(),
            requested,
        },
    )?;
    let Reply::Addresses { leases } = reply else {
        return Err(Error::new(ErrorCode::Io, "unexpected reply to allocate"));
    };
    Ok(Success {
        ips: leases
            .into_iter()
            .map(|l| IpConfig {
                address: l.address,
                gateway: l.gateway,
                interface: None,
            })
            .collect(),
        ..Success::default()
    })
}

fn release(client: &mut Client, ctx: &Ctx) -> Result<(), Error> {
    call(
        client,
        &Request::Release {
            network: ctx.conf.name.clone(),
            container_id: ctx.args.container_id.clone(),
            ifname: ctx.args.ifname.clone(),
        },
    )
    .map(drop)
}

/// The network's VXLAN device becomes a port of its bridge (idempotent).
fn plug_vxlan(spec: &NetworkSpec) -> Result<(), Error> {
    let mut nl = Netlink::new()?;
    let mut link = |name: String| nl.link_by_name(&name)?.ok_or(NetError::LinkNotFound(name));
    let (vx, br) = (link(spec.vxlan())?, link(spec.bridge())?);
    if vx.master != Some(br.index) {
        nl.set_master(vx.index, &br)?;
    }
    nl.set_up(vx.index, true)?;
    Ok(())
}

fn endpoint(ctx: &Ctx, result: &Success) -> EndpointRecord {
    let (name, aliases) = netctl_dnsrecords::identity(ctx);
    let mac = result
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_some())
        .map(|i| i.mac.clone())
        .unwrap_or_default();
    EndpointRecord {
        network: ctx.conf.name.clone(),
        host: String::new(),
        vtep: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        container_id: ctx.args.container_id.clone(),
        ifname: ctx.args.ifname.clone(),
        mac,
        ips: result.ips.iter().map(|ip| ip.address.addr()).collect(),
        name,
        aliases,
    }
}

fn add_steps(
    ctx: &Ctx,
    client: &mut Client,
    bconf: &BridgeConfig,
    spec: &NetworkSpec,
) -> Result<Success, Error> {
    let lease = allocate(client, ctx)?;
    let result = netctl_bridge::attach(ctx, bconf, lease)?;
    let announced = plug_vxlan(spec).and_then(|()| {
        call(
            client,
            &Request::Register {
                endpoint: endpoint(ctx, &result),
            },
        )
        .map(drop)
    });
    if let Err(e) = announced {
        let _ = netctl_bridge::detach(ctx, bconf);
        return Err(e);
    }
    Ok(result)
}

/// Asked as an IPAM plugin (by `netctl-macvlan` on a macvlan network of the cluster): the
/// configuration is the IPAM section of the driver's.
fn as_ipam(ctx: &Ctx) -> Result<Option<OverlayConfig>, Error> {
    if ctx.conf.plugin_type == "netctl-overlay" {
        return Ok(None);
    }
    let ipam =
        ctx.conf.ipam.as_ref().ok_or_else(|| {
            Error::invalid_config("netctl-overlay as IPAM needs an \"ipam\" section")
        })?;
    serde_json::from_value(serde_json::Value::Object(ipam.extra.clone()))
        .map(Some)
        .map_err(|e| Error::invalid_config(format!("ipam section: {e}")))
}

/// IPAM ADD: addresses from the cluster, and the endpoint (its names) announced to every
/// host; the addresses go back when the announcement fails.
fn ipam_add(ctx: &Ctx, conf: &OverlayConfig) -> Result<Success, Error> {
    let mut client = client(conf)?;
    join(&mut client, &ctx.conf.name)?;
    let lease = allocate(&mut client, ctx)?;
    let announced = call(
        &mut client,
        &Request::Register {
            endpoint: endpoint(ctx, &lease),
        },
    );
    if let Err(e) = announced {
        let _ = release(&mut client, ctx);
        return Err(e);
    }
    Ok(lease)
}

/// IPAM DEL: the endpoint withdrawn everywhere, its addresses freed.
fn ipam_del(ctx: &Ctx, conf: &OverlayConfig) -> Result<(), Error> {
    let mut client = client(conf)?;
    unregister(&mut client, ctx)?;
    release(&mut client, ctx)
}

fn unregister(client: &mut Client, ctx: &Ctx) -> Result<(), Error> {
    call(
        client,
        &Request::Unregister {
            network: ctx.conf.name.clone(),
            container_id: ctx.args.container_id.clone(),
            ifname: ctx.args.ifname.clone(),
        },
    )
    .map(drop)
}

impl Plugin for OverlayPlugin {
    type Config = OverlayConfig;

    fn add(&self, ctx: &Ctx, conf: OverlayConfig) -> Result<Success, Error> {
        if let Some(ipam) = as_ipam(ctx)? {
            return ipam_add(ctx, &ipam);
        }
        let mut client = client(&conf)?;
        let spec = join(&mut client, &ctx.conf.name)?;
        let bconf = bridge_config(&conf, &spec)?;
        add_steps(ctx, &mut client, &bconf, &spec).inspect_err(|_| {
            // The address goes back; the ADD's error is what the runtime needs to see.
            let _ = release(&mut client, ctx);
        })
    }

    /// Withdraws the endpoint everywhere, takes the interface and its rules away, frees the
    /// addresses; whatever is already gone is fine. Without the agent: error 11, so the
    /// runtime tries again (the endpoint's liveness lease keeps the cluster right meanwhile).
    fn del(&self, ctx: &Ctx, conf: OverlayConfig) -> Result<(), Error> {
        if let Some(ipam) = as_ipam(ctx)? {
            return ipam_del(ctx, &ipam);
        }
        let mut client = client(&conf)?;
        unregister(&mut client, ctx)?;
        let bconf = match bridge_from_conf(&conf)? {
            Some(b) => Some(b),
            None => match join(&mut client, &ctx.conf.name) {
                Ok(spec) => Some(bridge_config(&conf, &spec)?),
                Err(_) => None, // the network is gone: so is its bridge
            },
        };
        if let Some(b) = &bconf {
            netctl_bridge::detach(ctx, b)?;
        }
        release(&mut client, ctx)
    }

    fn check(&self, ctx: &Ctx, conf: OverlayConfig) -> Result<(), Error> {
        let conf = as_ipam(ctx)?.unwrap_or(conf);
        let mut client = client(&conf)?;
        join(&mut client, &ctx.conf.name).map(drop)
    }

    /// The bridge path's GC (published ports of gone attachments; with netctl's
    /// remove-network extension, the bridge and its rules too).
    fn gc(&self, ctx: &Ctx, conf: OverlayConfig, valid: &[Attachment]) -> Result<(), Error> {
        if as_ipam(ctx)?.is_some() {
            return Ok(()); // the cluster's leases ride on the hosts' tenure
        }
        match bridge_from_conf(&conf)? {
            Some(b) => BridgePlugin.gc(ctx, b, valid),
            None => Ok(()),
        }
    }

    fn status(&self, ctx: &Ctx, conf: OverlayConfig) -> Result<(), Error> {
        if let Some(ipam) = as_ipam(ctx)? {
            let mut client = client(&ipam)?;
            return join(&mut client, &ctx.conf.name).map(drop);
        }
        let mut client = client(&conf)?;
        call(&mut client, &Request::Ping)?;
        let spec = join(&mut client, &ctx.conf.name)?;
        BridgePlugin.status(ctx, bridge_config(&conf, &spec)?)
    }
}
