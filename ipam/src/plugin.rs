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
/// and the `args.cni.ips` convention, each an address or an address with a prefix length
/// (which is ignored).
pub fn requested_ips(ctx: &Ctx) -> Result<Vec<IpAddr>, Error> {
    let capability = ctx.conf.runtime_config.iter().flat_map(|rc| &rc.ips);
    let convention = ctx
        .conf
        .args
        .iter()
        .flat_map(|a| &a.cni)
        .flat_map(|c| &c.ips);
    let cni_arg = ctx.cni_arg("IP");
    let listed = cni_arg.iter().flat_map(|list| list.split(','));
    let mut out: Vec<IpAddr> = Vec::new();
    let all = capability
        .map(String::as_str)
        .chain(listed)
        .chain(convention.map(String::as_str));
    for s in all.map(str::trim).filter(|s| !s.is_empty()) {
        let ip = requested_ip(s).ok_or_else(|| {
            Error::invalid_config(format!(
                "requested address {s:?} is not an IP address (give one as 10.1.2.3 or 10.1.2.3/24)"
            ))
        })?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// One requested address: `10.1.2.3` or `10.1.2.3/24`.
fn requested_ip(s: &str) -> Option<IpAddr> {
    s.parse()
        .ok()
        .or_else(|| s.parse::<ipnet::IpNet>().ok().map(|n| n.addr()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use netctl_cni::skel::{Args, Command};
    use serde_json::json;

    fn ctx(conf: Value, cni_args: &[(&str, &str)]) -> Ctx {
        Ctx {
            args: Args {
                command: Command::Add,
                container_id: "c1".into(),
                netns: None,
                ifname: "eth0".into(),
                cni_args: cni_args
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                cni_path: Vec::new(),
                delegated: false,
            },
            version: netctl_cni::SpecVersion::V1_1_0,
            conf: serde_json::from_value(conf).unwrap(),
            stdin: Vec::new(),
        }
    }

    #[test]
    fn a_runtime_asks_for_addresses_by_capability_cni_args_and_the_args_convention() {
        let conf = json!({"cniVersion": "1.1.0", "name": "n", "type": "netctl-ipam",
            "runtimeConfig": {"ips": ["10.1.0.5/16"]},
            "args": {"cni": {"ips": ["fd00::5", "10.1.0.5"]}}});
        let got = requested_ips(&ctx(conf, &[("IP", "10.1.0.6, 10.1.0.7/16")])).unwrap();
        let want: Vec<IpAddr> = ["10.1.0.5", "10.1.0.6", "10.1.0.7", "fd00::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_requested_address_that_is_none_is_refused_with_what_was_given() {
        for (conf_ips, arg) in [(json!(["10.1.0.5/99"]), ""), (json!([]), "10.1.0.300")] {
            let conf = json!({"cniVersion": "1.1.0", "name": "n", "type": "netctl-ipam",
                "args": {"cni": {"ips": conf_ips}}});
            let err = requested_ips(&ctx(conf, &[("IP", arg)])).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidConfig, "{err:?}");
            assert!(err.msg.contains("is not an IP address"), "{err:?}");
        }
    }
}
