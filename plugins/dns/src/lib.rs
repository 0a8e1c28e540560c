//! The DNS registration plugin, chained after a driver: ADD records the container's name
//! (`K8S_POD_NAME`), aliases (`runtimeConfig.aliases` for this network), short ID and
//! addresses (from `prevResult`) where `netctl-dnsd` reads them, starts the server if it is
//! not running, and passes the result on with `dns` pointing at 127.0.0.11.
//!
//! ```json
//! {"type": "netctl-dns", "capabilities": {"aliases": true, "dns": true}}
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netctl_cni::{fsutil, Attachment, Ctx, Error, ErrorCode, Plugin, StateDir, Success};
use netctl_dnsrecords::{DnsError, DnsPaths, Record};
use netctl_net::{NetNs, Netlink};
use serde::Deserialize;

use netctl_net::DEFAULT_RUN_DIR;

/// The plugin.
pub struct DnsPlugin;

/// Its configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsConfig {
    /// Run folder shared with the server.
    #[serde(default)]
    pub run_dir: Option<StateDir>,
    /// An internal network: names outside it are not forwarded upstream.
    #[serde(default)]
    pub internal: bool,
    /// The resolv.conf whose resolvers the server forwards to (when this call starts it).
    #[serde(default)]
    pub upstream_resolv_conf: Option<PathBuf>,
    /// The network's own resolvers (podman's `network create --dns`): names it does not
    /// know, of a container without resolvers of its own, go there instead of the host's.
    #[serde(default)]
    pub servers: Vec<std::net::IpAddr>,
}

impl DnsConfig {
    fn paths(&self) -> DnsPaths {
        DnsPaths::new(&StateDir::or_default(&self.run_dir, DEFAULT_RUN_DIR))
    }
}

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&DnsPlugin)
}

fn prev(ctx: &Ctx) -> Result<Success, Error> {
    ctx.prev_result()?.ok_or_else(|| {
        Error::invalid_config("netctl-dns is a chained plugin: put it after a driver (such as netctl-bridge) in a conflist")
    })
}

/// The record for this attachment from the driver's result.
/// The container's own resolvers from the `dns` capability (`runtimeConfig.dns.servers`,
/// Docker's `--dns`): the server forwards this container's other names there.
fn upstreams(ctx: &Ctx) -> Result<Vec<std::net::IpAddr>, Error> {
    let servers = ctx
        .conf
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.dns.as_ref())
        .map(|d| d.servers.clone())
        .unwrap_or_default();
    servers
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                Error::new(
                    ErrorCode::InvalidConfig,
                    format!("runtimeConfig.dns.servers: {s:?} is not an IP address"),
                )
            })
        })
        .collect()
}

fn record(ctx: &Ctx, conf: &DnsConfig, prev: &Success) -> Result<Record, Error> {
    let in_container: Vec<usize> = prev
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| i.sandbox.is_some())
        .map(|(n, _)| n)
        .collect();
    let ips = prev
        .ips
        .iter()
        .filter(|ip| {
            in_container.is_empty() || ip.interface.is_some_and(|i| in_container.contains(&i))
        })
        .collect::<Vec<_>>();
    let (name, aliases) = netctl_dnsrecords::identity(ctx);
    let own = upstreams(ctx)?;
    let own_upstreams = !own.is_empty();
    let upstreams = if own_upstreams {
        own
    } else {
        conf.servers.clone()
    };
    Ok(Record {
        network: ctx.conf.name.clone(),
        container_id: ctx.args.container_id.clone(),
        ifname: ctx.args.ifname.clone(),
        name,
        aliases,
        ips: ips.iter().map(|ip| ip.address.addr()).collect(),
        netns: ctx.args.netns.clone(),
        gateways: ips.iter().filter_map(|ip| ip.gateway).collect(),
        internal: conf.internal,
        upstreams,
        own_upstreams,
        links: netctl_dnsrecords::links(ctx)?,
    })
}

/// The server binary: beside this plugin, else in `CNI_PATH`.
fn server_binary(ctx: &Ctx) -> Result<PathBuf, Error> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("netctl-dnsd")))
        .filter(|p| p.is_file());
    beside
        .or_else(|| {
            ctx.args
                .cni_path
                .iter()
                .map(|d| d.join("netctl-dnsd"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PluginNotAvailable,
                "netctl-dnsd is neither beside netctl-dns nor in CNI_PATH",
            )
        })
}

/// Tells the server about a changed record, starting it when none runs.
fn publish(ctx: &Ctx, conf: &DnsConfig, paths: &DnsPaths, record: &Path) -> Result<(), Error> {
    match paths.notify(record) {
        // A server that starts loads every record; asked again, it says whether it could
        // serve this one.
        Err(DnsError::NoServer(_)) => {
            start_server(ctx, conf, paths)?;
            paths.notify(record).map_err(Error::from)
        }
        other => other.map_err(Error::from),
    }
}

/// Starts the server (it loads every record itself) and waits until it answers. A server
/// that was just exiting as its last record went away may still hold the lock, so the start
/// is repeated until one answers.
fn start_server(ctx: &Ctx, conf: &DnsConfig, paths: &DnsPaths) -> Result<(), Error> {
    use netctl_cni::process::CleanSignals;
    use std::os::unix::process::CommandExt;
    let binary = server_binary(ctx)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut next_start = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_start {
            let mut cmd = Command::new(&binary);
            cmd.arg("--run-dir")
                .arg(paths.root.parent().unwrap_or(Path::new(DEFAULT_RUN_DIR)));
            if let Some(rc) = &conf.upstream_resolv_conf {
                cmd.arg("--resolv-conf").arg(rc);
            }
            // NETCTL_DNSD_LOG names a file for the server's diagnostics.
            let log = std::env::var_os("NETCTL_DNSD_LOG").and_then(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
            });
            // A daemon: nothing of this call's environment (CNI_*) is its business.
            cmd.env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.map_or_else(Stdio::null, Stdio::from))
                .process_group(0)
                .clean_signals()
                .spawn()
                .map_err(|e| Error::io("failed to start netctl-dnsd", &e))?;
            next_start = Instant::now() + Duration::from_millis(500);
        }
        match paths.ping() {
            Ok(()) => return Ok(()),
            Err(DnsError::NoServer(_)) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::new(
        ErrorCode::TryAgainLater,
        "netctl-dnsd did not come up within 5 s",
    ))
}

/// Loopback must be up in the container for 127.0.0.11 to work.
fn loopback_up(ctx: &Ctx) -> Result<(), Error> {
    let Some(path) = &ctx.args.netns else {
        return Ok(());
    };
    let mut nl = Netlink::in_ns(&NetNs::open(path)?)?;
    if let Some(lo) = nl.link_by_name("lo")?.filter(|l| !l.up) {
        nl.set_up(lo.index, true)?;
    }
    Ok(())
}

fn remove(ctx: &Ctx, paths: &DnsPaths, a: &Attachment) -> Result<(), Error> {
    let path = paths.record_path(&ctx.conf.name, &a.container_id, &a.ifname);
    fsutil::remove_if_exists(&path)
        .map_err(|e| Error::io(format!("failed to remove {}", path.display()), &e))?;
    match paths.notify(&path) {
        Err(DnsError::NoServer(_)) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Plugin for DnsPlugin {
    type Config = DnsConfig;

    fn add(&self, ctx: &Ctx, conf: DnsConfig) -> Result<Success, Error> {
        let mut result = prev(ctx)?;
        let rec = record(ctx, &conf, &result)?;
        loopback_up(ctx)?;
        let paths = conf.paths();
        let path = paths.write(&rec)?;
        if let Err(e) = publish(ctx, &conf, &paths, &path) {
            let _ = fsutil::remove_if_exists(&path);
            return Err(e);
        }
        result.dns.nameservers.retain(|n| n != "127.0.0.11");
        result.dns.nameservers.insert(0, "127.0.0.11".into());
        Ok(result)
    }

    fn del(&self, ctx: &Ctx, conf: DnsConfig) -> Result<(), Error> {
        remove(ctx, &conf.paths(), &ctx.attachment())
    }

    /// Compares the record with the result; a refresh ([`Ctx::refreshing`]) first writes
    /// the record again with the name and aliases passed now, and tells the server.
    fn check(&self, ctx: &Ctx, conf: DnsConfig) -> Result<(), Error> {
        let prev = prev(ctx)?;
        let want = record(ctx, &conf, &prev)?;
        let paths = conf.paths();
        let path = paths.record_path(&ctx.conf.name, &ctx.args.container_id, &ctx.args.ifname);
        if ctx.refreshing() && DnsPaths::read(&path)?.is_some() {
            paths.write(&want)?;
            publish(ctx, &conf, &paths, &path)?;
        }
        match DnsPaths::read(&path)? {
            Some(have) if have.ips == want.ips => Ok(()),
            Some(have) => Err(Error::new(
                ErrorCode::Plugin(130),
                format!(
                    "DNS record of {} lists {:?}, not {:?}",
                    ctx.args.container_id, have.ips, want.ips
                ),
            )),
            None => Err(Error::new(
                ErrorCode::Plugin(130),
                format!("no DNS record for {}", ctx.args.container_id),
            )),
        }
    }

    /// Removes the records of attachments that are gone.
    fn gc(&self, ctx: &Ctx, conf: DnsConfig, valid: &[Attachment]) -> Result<(), Error> {
        let paths = conf.paths();
        // Records a killed ADD left half-written (never served; they would keep the folder).
        fsutil::sweep_stale_tmp(&paths.records().join(&ctx.conf.name));
        for file in paths.record_files(Some(&ctx.conf.name)) {
            let Ok(Some(r)) = DnsPaths::read(&file) else {
                continue;
            };
            let a = Attachment {
                container_id: r.container_id,
                ifname: r.ifname,
            };
            if !valid.contains(&a) {
                remove(ctx, &paths, &a)?;
            }
        }
        if ctx.removing_network() {
            let dir = paths.records().join(&ctx.conf.name);
            match std::fs::remove_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("failed to remove {}", dir.display()), &e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The server starts on demand, so ADD can always be served.
    fn status(&self, _: &Ctx, _: DnsConfig) -> Result<(), Error> {
        Ok(())
    }
}
