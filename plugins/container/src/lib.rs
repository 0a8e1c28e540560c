//! The `container:NAME` network: the container joins another container's network namespace.
//! The runtime resolves NAME to that namespace and passes it as `CNI_NETNS` (or the config's
//! `targetNetns`); the plugin checks that it is a live network namespace and reports what is
//! there. It never creates, changes or deletes anything in it.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "container", "type": "netctl-container"}
//! ```

use std::path::{Path, PathBuf};

use netctl_cni::{Attachment, Ctx, Error, ErrorCode, Plugin, Success};
use netctl_net::{namespace_result, NetNs, Netlink};
use serde::Deserialize;

/// The plugin.
pub struct ContainerPlugin;

/// Its configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerConfig {
    /// The target container's namespace; `CNI_NETNS` when absent.
    #[serde(default)]
    pub target_netns: Option<PathBuf>,
}

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&ContainerPlugin)
}

fn target<'a>(ctx: &'a Ctx, conf: &'a ContainerConfig) -> Result<&'a Path, Error> {
    conf.target_netns
        .as_deref()
        .or(ctx.args.netns.as_deref())
        .ok_or_else(|| Error::invalid_env("no target namespace: set CNI_NETNS or \"targetNetns\""))
}

/// The target namespace, open, with a socket in it: proof that it is a live network namespace.
fn open_target(path: &Path) -> Result<Netlink, Error> {
    let ns = NetNs::open(path).map_err(|e| {
        Error::new(
            ErrorCode::UnknownContainer,
            format!("the target container's network namespace is gone: {e}"),
        )
    })?;
    Netlink::in_ns(&ns).map_err(|e| {
        Error::new(
            ErrorCode::UnknownContainer,
            format!("{} is not a live network namespace: {e}", path.display()),
        )
    })
}

impl Plugin for ContainerPlugin {
    type Config = ContainerConfig;

    fn add(&self, ctx: &Ctx, conf: ContainerConfig) -> Result<Success, Error> {
        let path = target(ctx, &conf)?;
        let mut out = namespace_result(
            &mut open_target(path)?,
            Some(&path.display().to_string()),
            false,
        )?;
        out.dns = ctx.conf.dns.clone().unwrap_or_default();
        Ok(out)
    }

    /// Leaves the target's networking alone: it belongs to the other container.
    fn del(&self, _: &Ctx, _: ContainerConfig) -> Result<(), Error> {
        Ok(())
    }

    fn check(&self, ctx: &Ctx, conf: ContainerConfig) -> Result<(), Error> {
        open_target(target(ctx, &conf)?).map(drop)
    }

    /// Nothing is recorded, so there is nothing to collect.
    fn gc(&self, _: &Ctx, _: ContainerConfig, _: &[Attachment]) -> Result<(), Error> {
        Ok(())
    }

    /// Joining a namespace needs no resources, so ADD can always be served.
    fn status(&self, _: &Ctx, _: ContainerConfig) -> Result<(), Error> {
        Ok(())
    }
}
