//! The `netctl-ipam` CNI plugin: the allocator behind the CNI skeleton, called by drivers
//! through delegation exactly as the reference bridge calls host-local.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "web", "type": "netctl-bridge",
//!  "ipam": {"type": "netctl-ipam", "subnet": "172.18.0.0/16", "ipRange": "172.18.5.0/24",
//!           "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/var/lib/netctl/ipam"}}
//! ```

use std::net::IpAddr;

use netctl_cni::{Attachment, Ctx, Error, ErrorCode, IpConfig, Plugin, Success};
use serde::Deserialize;
use serde_json::Value;

use crate::allocator::{Allocator, Lease};
use crate::config::IpamConfig;
use crate::store::{FileStore, Owner};

/// The plugin.
pub struct IpamPlugin;

/// What the plugin reads from its configuration.
#[derive(Debug, Deserialize)]
pub struct IpamPluginConfig {
    /// The `ipam` section.
    pub ipam: IpamConfig,
}

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&IpamPlugin)
}

/// The allocator for this call's network.
pub fn allocator(ctx: &Ctx, cfg: &IpamConfig) -> Result<Allocator<FileStore>, Error> {
    Ok(Allocator::from_config(&ctx.conf.name, cfg)?)
}

/// The attachment of this call, as the allocator's owner.
pub fn owner(ctx: &Ctx) -> Owner {
    Owner {
        container_id: ctx.args.container_id.clone(),
        ifname: ctx.args.ifname.clone(),
    }
}

/// Addresses the runtime asks for: the `ips` capability, `CNI_ARGS` `IP=` (comma-separated)
/// and the `args.cni.ips` convention. A prefix length, if given, is ignored.
pub fn requested_ips(ctx: &Ctx) -> Result<Vec<IpAddr>, Error> {
    let mut raw: Vec<String> = ctx
        .conf
        .runtime_config
        .as_ref()
        .map(|rc| rc.ips.clone())
        .unwrap_or_default();
    if let Some(list) = ctx.cni_arg("IP") {
        raw.extend(list.split(',').map(str::to_string));
    }
    if let Some(Value::Array(ips)) = ctx.conf.args.as_ref().and_then(|a| a.pointer("/cni/ips")) {
        raw.extend(ips.iter().filter_map(Value::as_str).map(str::to_string));
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for s in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let addr = s.split('/').next().unwrap_or(s);
        let ip = addr.parse().map_err(|_| {
            Error::invalid_config(format!("requested address {s:?} is not an IP address"))
        })?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// The IPAM result for `leases`: addresses with their gateways, and the configured routes.
pub fn lease_result(leases: &[Lease], cfg: &IpamConfig) -> Success {
    Success {
        ips: leases
            .iter()
            .map(|l| IpConfig {
                address: l.address,
                gateway: Some(l.gateway),
                interface: None,
            })
            .collect(),
        routes: cfg.routes.clone(),
        ..Success::default()
    }
}

impl Plugin for IpamPlugin {
    type Config = IpamPluginConfig;

    fn add(&self, ctx: &Ctx, conf: IpamPluginConfig) -> Result<Success, Error> {
        let alloc = allocator(ctx, &conf.ipam)?;
        let leases = alloc.allocate(&owner(ctx), &requested_ips(ctx)?)?;
        Ok(lease_result(&leases, &conf.ipam))
    }

    fn del(&self, ctx: &Ctx, conf: IpamPluginConfig) -> Result<(), Error> {
        allocator(ctx, &conf.ipam)?.release(&owner(ctx))?;
        Ok(())
    }

    /// The attachment must still hold its addresses, and they must be the ones in
    /// `prevResult` when it is given.
    fn check(&self, ctx: &Ctx, conf: IpamPluginConfig) -> Result<(), Error> {
        let held = allocator(ctx, &conf.ipam)?
            .leases_of(&owner(ctx))?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Plugin(102),
                    format!(
                        "container {} ({}) holds no address on network {}",
                        ctx.args.container_id, ctx.args.ifname, ctx.conf.name
                    ),
                )
            })?;
        if let Some(prev) = ctx.prev_result()? {
            for ip in &prev.ips {
                if !held.iter().any(|l| l.address.addr() == ip.address.addr()) {
                    return Err(Error::new(
                        ErrorCode::Plugin(102),
                        format!(
                            "address {} of prevResult is not allocated to this container",
                            ip.address
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn gc(&self, ctx: &Ctx, conf: IpamPluginConfig, valid: &[Attachment]) -> Result<(), Error> {
        let valid: Vec<Owner> = valid
            .iter()
            .map(|a| Owner {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
            })
            .collect();
        let alloc = allocator(ctx, &conf.ipam)?;
        alloc.gc(&valid)?;
        if ctx.removing_network() {
            alloc.remove_store()?;
        }
        Ok(())
    }

    /// Error 50 when some range set has no free address left.
    fn status(&self, ctx: &Ctx, conf: IpamPluginConfig) -> Result<(), Error> {
        if allocator(ctx, &conf.ipam)?.can_allocate()? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::PluginNotAvailable,
                format!("network {} has no free address left", ctx.conf.name),
            ))
        }
    }
}

/// ADD through the driver's IPAM, and whether this call made the lease. An attachment that
/// already held one (a repeated ADD of a live container) keeps it: the driver must not
/// release it when its own ADD then fails. An exec'd IPAM plugin cannot say, so its lease
/// counts as made (drivers refuse a repeated ADD before asking IPAM).
pub fn driver_ipam_add(ctx: &Ctx, ipam: &Value) -> Result<(Success, bool), Error> {
    let no_result = || Error::new(ErrorCode::Decoding, "IPAM returned no result");
    if ipam.get("type").and_then(Value::as_str) != Some("netctl-ipam") {
        let lease = driver_ipam(ctx, netctl_cni::Command::Add, ipam)?.ok_or_else(no_result)?;
        return Ok((lease, true));
    }
    let conf = in_process_config(ipam)?;
    let held = allocator(ctx, &conf.ipam)?
        .leases_of(&owner(ctx))?
        .is_some();
    Ok((IpamPlugin.add(ctx, conf)?, !held))
}

fn in_process_config(ipam: &Value) -> Result<IpamPluginConfig, Error> {
    Ok(IpamPluginConfig {
        ipam: serde_json::from_value(ipam.clone()).map_err(|e| {
            Error::invalid_config("invalid ipam section").with_details(e.to_string())
        })?,
    })
}

/// The IPAM step of a driver plugin for `command`: in-process when the IPAM type is
/// `netctl-ipam` (same code and store, no extra exec), otherwise the IPAM plugin is exec'd
/// from `CNI_PATH` with the driver's own configuration, as the reference plugins do.
pub fn driver_ipam(
    ctx: &Ctx,
    command: netctl_cni::Command,
    ipam: &Value,
) -> Result<Option<Success>, Error> {
    let ty = ipam.get("type").and_then(Value::as_str).unwrap_or("");
    if ty != "netctl-ipam" {
        return netctl_cni::invoke::delegate(ctx, command, ty, &ctx.stdin);
    }
    let conf = in_process_config(ipam)?;
    use netctl_cni::Command as C;
    match command {
        C::Add => IpamPlugin.add(ctx, conf).map(Some),
        C::Del => IpamPlugin.del(ctx, conf).map(|()| None),
        C::Check => IpamPlugin.check(ctx, conf).map(|()| None),
        C::Gc => IpamPlugin
            .gc(ctx, conf, &ctx.valid_attachments()?)
            .map(|()| None),
        C::Status => IpamPlugin.status(ctx, conf).map(|()| None),
        C::Version => Ok(None),
    }
}
