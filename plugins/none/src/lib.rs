//! The `none` network: the container gets only its loopback interface, brought up.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "none", "type": "netctl-none"}
//! ```

use std::path::Path;

use netctl_cni::{Attachment, Ctx, Error, ErrorCode, Interface, IpConfig, Plugin, Success};
use netctl_net::{Link, NetError, NetNs, Netlink};
use serde::Deserialize;

/// The plugin.
pub struct NonePlugin;

/// Its configuration: nothing beyond the common keys.
#[derive(Debug, Deserialize)]
pub struct NoneConfig {}

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&NonePlugin)
}

/// The container's namespace from `CNI_NETNS` (ADD and CHECK always have one).
fn netns(ctx: &Ctx) -> Result<&Path, Error> {
    ctx.args
        .netns
        .as_deref()
        .ok_or_else(|| Error::invalid_env("CNI_NETNS is required"))
}

/// The loopback link of the namespace at `path`, with a socket bound to that namespace.
fn loopback(path: &Path) -> Result<(Netlink, Link), NetError> {
    let ns = NetNs::open(path)?;
    let mut nl = Netlink::in_ns(&ns)?;
    let lo = nl
        .link_by_name("lo")?
        .ok_or_else(|| NetError::LinkNotFound("lo".into()))?;
    Ok((nl, lo))
}

impl Plugin for NonePlugin {
    type Config = NoneConfig;

    fn add(&self, ctx: &Ctx, _: NoneConfig) -> Result<Success, Error> {
        let path = netns(ctx)?;
        let (mut nl, lo) = loopback(path)?;
        nl.set_up(lo.index, true)?;
        let ips = nl
            .addresses(Some(lo.index))?
            .into_iter()
            .map(|a| IpConfig {
                address: a.net,
                gateway: None,
                interface: Some(0),
            })
            .collect();
        Ok(Success {
            interfaces: vec![Interface {
                name: lo.name,
                mac: "00:00:00:00:00:00".into(),
                sandbox: Some(path.display().to_string()),
                ..Interface::default()
            }],
            ips,
            ..Success::default()
        })
    }

    /// Brings loopback down again; a namespace that is already gone is fine.
    fn del(&self, ctx: &Ctx, _: NoneConfig) -> Result<(), Error> {
        let Some(path) = ctx.args.netns.as_deref() else {
            return Ok(());
        };
        match loopback(path).and_then(|(mut nl, lo)| nl.set_up(lo.index, false)) {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Loopback must be up and be the interface the previous result names.
    fn check(&self, ctx: &Ctx, _: NoneConfig) -> Result<(), Error> {
        let prev = ctx
            .prev_result()?
            .ok_or_else(|| Error::invalid_config("CHECK needs prevResult: the result of ADD"))?;
        if !prev.interfaces.iter().any(|i| i.name == "lo") {
            return Err(Error::invalid_config(
                "prevResult does not list the lo interface this plugin made",
            ));
        }
        let (_, lo) = loopback(netns(ctx)?)?;
        if !lo.up {
            return Err(Error::new(
                ErrorCode::Plugin(100),
                "loopback is down in the container's namespace",
            ));
        }
        Ok(())
    }

    /// This plugin keeps no state, so there is nothing to collect.
    fn gc(&self, _: &Ctx, _: NoneConfig, _: &[Attachment]) -> Result<(), Error> {
        Ok(())
    }

    /// Bringing up loopback needs no resources, so ADD can always be served.
    fn status(&self, _: &Ctx, _: NoneConfig) -> Result<(), Error> {
        Ok(())
    }
}
