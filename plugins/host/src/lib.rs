//! The `host` network: the container runs in the host's own network namespace. Nothing is
//! created; ADD checks that the namespace really is the host's, records the attachment and
//! reports the host's interfaces and addresses (so `inspect` can show them).
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "host", "type": "netctl-host"}
//! ```

use std::path::{Path, PathBuf};

use netctl_cni::{fsutil, Attachment, Ctx, Error, ErrorCode, Plugin, Success};
use netctl_net::{namespace_result, NetNs, Netlink};
use serde::Deserialize;

use netctl_net::DEFAULT_RUN_DIR;

/// The plugin.
pub struct HostPlugin;

/// Its configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostConfig {
    /// Where attachments are recorded (`<runDir>/host/<network>/<container>:<ifname>`).
    #[serde(default)]
    pub run_dir: Option<netctl_cni::StateDir>,
}

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&HostPlugin)
}

fn records(ctx: &Ctx, conf: &HostConfig) -> PathBuf {
    netctl_cni::StateDir::or_default(&conf.run_dir, DEFAULT_RUN_DIR)
        .join("host")
        .join(&ctx.conf.name)
}

fn record(ctx: &Ctx, conf: &HostConfig, a: &Attachment) -> PathBuf {
    records(ctx, conf).join(format!("{}:{}", a.container_id, a.ifname))
}

/// Refuses a `CNI_NETNS` that is not this process's (the host's) namespace.
fn require_host_netns(ctx: &Ctx) -> Result<(), Error> {
    let path = ctx
        .args
        .netns
        .as_deref()
        .unwrap_or(Path::new("/proc/self/ns/net"));
    let given = NetNs::open(path)?;
    if !given.same_as(&NetNs::open(Path::new("/proc/self/ns/net"))?)? {
        return Err(Error::invalid_env(format!(
            "CNI_NETNS {} is not the host's network namespace: a --net host container runs in the host's own",
            path.display()
        )));
    }
    Ok(())
}

fn io(what: &str, e: &std::io::Error) -> Error {
    Error::io(what.to_string(), e)
}

impl Plugin for HostPlugin {
    type Config = HostConfig;

    fn add(&self, ctx: &Ctx, conf: HostConfig) -> Result<Success, Error> {
        require_host_netns(ctx)?;
        let mut out = namespace_result(&mut Netlink::new()?, None, false)?;
        out.dns = ctx.conf.dns.clone().unwrap_or_default();
        let path = record(ctx, &conf, &ctx.attachment());
        std::fs::create_dir_all(records(ctx, &conf))
            .and_then(|()| fsutil::write_atomic(&path, b""))
            .map_err(|e| io("failed to record the host attachment", &e))?;
        Ok(out)
    }

    fn del(&self, ctx: &Ctx, conf: HostConfig) -> Result<(), Error> {
        fsutil::remove_if_exists(&record(ctx, &conf, &ctx.attachment()))
            .map_err(|e| io("failed to remove the host attachment record", &e))
    }

    fn check(&self, ctx: &Ctx, conf: HostConfig) -> Result<(), Error> {
        require_host_netns(ctx)?;
        if record(ctx, &conf, &ctx.attachment()).exists() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::UnknownContainer,
                format!(
                    "container {} is not attached to network {}",
                    ctx.args.container_id, ctx.conf.name
                ),
            ))
        }
    }

    /// Removes the records of attachments that are gone.
    fn gc(&self, ctx: &Ctx, conf: HostConfig, valid: &[Attachment]) -> Result<(), Error> {
        let dir = records(ctx, &conf);
        fsutil::sweep_stale_tmp(&dir);
        let keep: Vec<String> = valid
            .iter()
            .map(|a| format!("{}:{}", a.container_id, a.ifname))
            .collect();
        for (name, path) in fsutil::written_files(&dir) {
            if !keep.contains(&name) {
                fsutil::remove_if_exists(&path)
                    .map_err(|e| io("failed to remove a stale record", &e))?;
            }
        }
        Ok(())
    }

    /// Joining the host's namespace needs nothing, so ADD can always be served.
    fn status(&self, _: &Ctx, _: HostConfig) -> Result<(), Error> {
        Ok(())
    }
}
