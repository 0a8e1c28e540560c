//! The container store: `<root>/containers/<id>/` holds `config.json` (what `create` was
//! asked for), `state.json` (what is happening now), the json-file log, the files bind-mounted
//! over /etc, and the overlay's writable layer. Every write is atomic; name changes happen
//! under the store lock, a container's changes under its own lock.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use netctl_cni::fsutil;
use netctl_cni::types::Protocol;
use serde::{Deserialize, Serialize};

use crate::error::{conflict, Context, Error, Kind, Result};
pub use crate::lock::StoreLock;
use crate::volume::MountSpec;

/// One network a container is attached to, in attach order (eth0, eth1 ...).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkRequest {
    /// The network's name in the store.
    pub name: String,
    /// `--net-alias` names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip` / `--ip6`.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// `--mac-address`.
    #[serde(default)]
    pub mac: Option<String>,
    /// The endpoint's driver options (`EndpointConfig.DriverOpts`), kept as given: the
    /// bridge driver takes none of its own, as Docker's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub driver_opts: std::collections::BTreeMap<String, String>,
    /// `--gw-priority`: the attached network with the highest carries the default route.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gw_priority: i64,
    /// `--link NAME:ALIAS` on a user network (`EndpointSettings.Links`): ALIAS answers as
    /// NAME for this container alone; NAME need not exist yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<netctl_dnsrecords::Link>,
    /// `--link-local-ip`: more addresses on the container's interface (IPv4 with /16,
    /// IPv6 with /64, as Docker adds them), beside what the network hands out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<IpAddr>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl NetworkRequest {
    /// A request for `network` with nothing asked of it.
    pub fn plain(network: &str) -> Self {
        NetworkRequest {
            name: network.into(),
            aliases: Vec::new(),
            ips: Vec::new(),
            mac: None,
            driver_opts: Default::default(),
            gw_priority: 0,
            links: Vec::new(),
            link_local_ips: Vec::new(),
        }
    }
}

/// A published port, as asked and as bound.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortBinding {
    /// Host address; every address when none.
    pub host_ip: Option<IpAddr>,
    /// Host port (chosen from the ephemeral range when asked as 0).
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

/// How the container's network namespace is made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// Its own namespace, attached to `Config::networks`.
    #[default]
    Private,
    /// The host's namespace.
    Host,
    /// Its own namespace with loopback only.
    None,
    /// Another container's namespace (its ID).
    Container(String),
}

/// Where a container's output goes besides attached clients (`--log-driver`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum LogDriver {
    /// Docker's default: one JSON record per line in `<id>-json.log`, read by `logs`.
    #[default]
    #[serde(rename = "json-file")]
    JsonFile,
    /// Nowhere: `logs` has nothing to read.
    #[serde(rename = "none")]
    None,
}

impl LogDriver {
    /// Docker's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::None => "none",
        }
    }
}

/// What `create` was asked for; fixed for the container's life except networks and name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    /// 64 hex.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// Image ID (64 hex).
    pub image: String,
    /// The image as the user named it.
    pub image_name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// `--entrypoint` or the image's, for inspect.
    pub entrypoint: Vec<String>,
    /// KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub workdir: String,
    /// Hostname (the short ID unless `--hostname`).
    pub hostname: String,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--security-opt seccomp=...`: which system calls it may make.
    #[serde(default)]
    pub seccomp: crate::runtime::seccomp::Seccomp,
    /// `-u`, `--group-add`, `--cap-add`, `--cap-drop`, `--privileged`.
    #[serde(default)]
    pub privileges: crate::runtime::privileges::Privileges,
    /// Network namespace mode.
    pub net_mode: NetMode,
    /// Networks, in attach order.
    pub networks: Vec<NetworkRequest>,
    /// `-p`.
    pub ports: Vec<PortBinding>,
    /// The image's exposed ports and `--expose`.
    #[serde(default)]
    pub exposed: Vec<(u16, Protocol)>,
    /// `--add-host NAME:IP` entries for /etc/hosts.
    pub extra_hosts: Vec<(String, HostAddr)>,
    /// `--dns` servers.
    pub dns: Vec<IpAddr>,
    /// `--dns-search` domains (instead of the host's).
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option` options (instead of the host's).
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--link NAME:ALIAS`, the target by its name at create time.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// `-v`, `--mount`, `--tmpfs`, `--volumes-from`, resolved (volume names filled in).
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `--log-driver`.
    #[serde(default)]
    pub log_driver: LogDriver,
    /// `--restart`.
    #[serde(default)]
    pub restart: crate::restart::RestartPolicy,
    /// The image's labels with `--label` / `--label-file` over them.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--read-only`: the root file system is mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// `--stop-signal` or the image's `STOPSIGNAL`, as given (`SIGTERM` when none).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (a negative one waits for ever; 10 when none).
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// `--domainname`: the NIS domain name of its UTS namespace.
    #[serde(default)]
    pub domainname: String,
    /// `--init`: a reaper runs as PID 1 and the command as its child.
    #[serde(default)]
    pub init: bool,
    /// `--volumes-from` as given (`NAME[:ro|rw]`); their mounts are among `mounts`.
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// `--uts host`: the host's UTS namespace (its hostname and domain name), not its own.
    #[serde(default)]
    pub host_uts: bool,
    /// `--isolation` as given (Linux has only `default`).
    #[serde(default)]
    pub isolation: String,
    /// `--runtime` as given (`runc`, Docker's name for the default runtime, is the only one).
    #[serde(default)]
    pub runtime: String,
    /// `-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--pids-limit`.
    #[serde(default)]
    pub resources: crate::runtime::resources::Resources,
    /// `--pid`.
    #[serde(default)]
    pub pid_mode: Sharing,
    /// `--ipc`.
    #[serde(default)]
    pub ipc_mode: Sharing,
    /// `--shm-size` in bytes (64 MiB when none).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// `--ulimit`.
    #[serde(default)]
    pub ulimits: Vec<crate::runtime::kernel::Ulimit>,
    /// `--sysctl`.
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--device`.
    #[serde(default)]
    pub devices: Vec<crate::runtime::kernel::DeviceMapping>,
    /// `--health-*` over the image's HEALTHCHECK.
    #[serde(default)]
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// `--log-opt`s as given.
    #[serde(default)]
    pub log_opts: std::collections::BTreeMap<String, String>,
    /// The rotation they ask for.
    #[serde(default)]
    pub log_rotation: crate::logs::Rotation,
    /// `-P`.
    #[serde(default)]
    pub publish_all: bool,
    /// The streams the creating client attached.
    #[serde(default)]
    pub attach: Attach,
    /// `--cidfile` as given (empty when none).
    #[serde(default)]
    pub cidfile: String,
}

/// The streams a client attaches to the container it creates (Docker's `AttachStdin`,
/// `AttachStdout`, `AttachStderr`): stdout and stderr for `create` and an attached `run`,
/// stdin too with `-i`, none for `run -d`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attach {
    /// Its input.
    pub stdin: bool,
    /// Its output.
    pub stdout: bool,
    /// Its errors.
    pub stderr: bool,
}

/// How a container gets its PID or IPC namespace (`--pid`, `--ipc`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Its own (Docker's `private`).
    #[default]
    Private,
    /// Its own, which other containers may join (`--ipc shareable`).
    Shareable,
    /// The host's.
    Host,
    /// Another container's (its ID).
    Container(String),
}

impl Sharing {
    /// Parses `private`, `shareable` (IPC only), `host` or `container:NAME|ID` (the
    /// container's name or ID as given; the caller resolves it).
    pub fn parse(s: &str, ipc: bool) -> Result<Self> {
        let what = if ipc { "ipc" } else { "pid" };
        Ok(match s {
            "" | "private" => Sharing::Private,
            "shareable" if ipc => Sharing::Shareable,
            "host" => Sharing::Host,
            _ => match s.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Sharing::Container(c.to_string()),
                _ => crate::error::invalid!(
                    "--{what}: invalid {what} mode {s:?} (use {}host or container:NAME)",
                    if ipc { "private, shareable, " } else { "" }
                ),
            },
        })
    }

    /// Docker's PidMode / IpcMode text.
    pub fn text(&self, ipc: bool) -> String {
        match self {
            Sharing::Private if ipc => "private".into(),
            Sharing::Private => String::new(),
            Sharing::Shareable => "shareable".into(),
            Sharing::Host => "host".into(),
            Sharing::Container(id) => format!("container:{id}"),
        }
    }
}

impl Config {
    /// Whether it keeps the host's hostname and domain name (`--net host`, `--uts host`).
    pub fn keeps_host_name(&self) -> bool {
        self.host_uts || self.net_mode == NetMode::Host
    }

    /// The 12-hex short ID.
    pub fn short_id(&self) -> &str {
        crate::ids::short_id(&self.id)
    }

    /// The signal that asks it to stop.
    pub fn stop_signal(&self) -> nix::sys::signal::Signal {
        self.stop_signal
            .as_deref()
            .and_then(|s| crate::spec::parse_signal(s).ok())
            .unwrap_or(nix::sys::signal::Signal::SIGTERM)
    }

    /// How long a stop waits before SIGKILL: `asked` (`stop -t`), else its own.
    pub fn stop_timeout(&self, asked: Option<Duration>) -> Duration {
        const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);
        asked.unwrap_or(match self.stop_timeout {
            Some(t) if t < 0 => FOREVER,
            Some(t) => Duration::from_secs(t.unsigned_abs()),
            None => DEFAULT_STOP_TIMEOUT,
        })
    }
}

/// Docker's stop timeout.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
    /// Its removal failed half-way (a network would not detach): only `rm` (which finishes
    /// it) and repair touch it; it never starts again.
    Dead,
}

/// The address of an `--add-host` entry: an IP, or `host-gateway`, the host as the
/// container's first network reaches it (that network's gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAddr {
    /// This address.
    Ip(IpAddr),
    /// The gateway of the container's first network with one.
    HostGateway,
}

impl std::fmt::Display for HostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostAddr::Ip(ip) => ip.fmt(f),
            HostAddr::HostGateway => f.write_str(HOST_GATEWAY),
        }
    }
}

/// Docker's word for the host's address in `--add-host`.
pub const HOST_GATEWAY: &str = "host-gateway";

impl std::str::FromStr for HostAddr {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            HOST_GATEWAY => Ok(HostAddr::HostGateway),
            ip => ip.parse().map(HostAddr::Ip),
        }
    }
}

impl Serialize for HostAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One address of an interface, with its network's gateway.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Address {
    /// The address and its prefix length.
    pub net: IpNet,
    /// The gateway, if the network has one.
    pub gateway: Option<IpAddr>,
}

/// One interface the plugins gave the container.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Endpoint {
    /// The network.
    pub network: String,
    /// eth0, eth1 ...
    pub ifname: String,
    /// Its addresses.
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// The interface's MAC.
    #[serde(default)]
    pub mac: String,
    /// DNS servers the plugins named (127.0.0.11 with netctl-dns).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// DNS search domains the plugins named.
    #[serde(default)]
    pub search: Vec<String>,
    /// The gateways of the default routes the network gives (one per family; none on an
    /// internal network), from which [`crate::routes`] picks the container's.
    #[serde(default)]
    pub default_via: Vec<IpAddr>,
    /// A plugin of the network took `--dns` as the container's upstreams (the CNI `dns`
    /// capability), so resolv.conf names only the embedded server.
    #[serde(default)]
    pub dns_upstreams: bool,
    /// ADD was asked for and its result not yet recorded: written before ADD runs, so an
    /// attach that was killed half-way is known and repaired (DEL) by the next command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The `--gw-priority` it was attached with.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gw_priority: i64,
}

impl Endpoint {
    /// The record of an ADD about to run.
    pub fn pending(network: &str, ifname: &str) -> Self {
        Endpoint {
            network: network.into(),
            ifname: ifname.into(),
            pending: true,
            ..Endpoint::default()
        }
    }

    /// The first address of one family.
    pub fn address(&self, v4: bool) -> Option<&Address> {
        self.addresses.iter().find(|a| a.net.addr().is_ipv4() == v4)
    }
}

/// What is happening now.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    /// Created, running, exited.
    pub status: Status,
    /// Host PID of the container's first process.
    pub pid: u32,
    /// Host PID of its monitor.
    pub monitor_pid: u32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// RFC 3339 or empty.
    pub started_at: String,
    /// RFC 3339 or empty.
    pub finished_at: String,
    /// Why the last start failed.
    pub error: String,
    /// Interfaces while running.
    pub endpoints: Vec<Endpoint>,
    /// Published ports as bound while running (what the firewall forwards).
    pub ports: Vec<PortBinding>,
    /// Their IPv6 twins on `[::]`, served by the monitor's userland proxy.
    #[serde(default)]
    pub proxied_ports: Vec<PortBinding>,
    /// Frozen by `pause`.
    #[serde(default)]
    pub paused: bool,
    /// Between an exit and the restart its policy asked for (status stays running, as
    /// Docker's `Running` and `Restarting` both true; `pid` is 0).
    #[serde(default)]
    pub restarting: bool,
    /// Restarts made by the policy since the user last started it.
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped or killed by the user since its last start: the policy does not restart it.
    #[serde(default)]
    pub stopped_by_hand: bool,
    /// What its healthcheck found (none without one).
    #[serde(default)]
    pub health: Option<crate::health::Health>,
}

/// A container: its config, state and folder.
#[derive(Debug, Clone)]
pub struct Container {
    /// What it was created with.
    pub config: Config,
    /// What is happening now.
    pub state: State,
    /// Its folder.
    pub dir: PathBuf,
}

impl Container {
    /// Waits for this container's lock (start, exit, signal, connect, disconnect, removal).
    pub fn lock(&self) -> Result<StoreLock> {
        StoreLock::exclusive(&self.dir.join("lock"))
    }

    /// The json-file log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.config.id))
    }

    /// Writes the state atomically.
    pub fn save_state(&self) -> Result<()> {
        write_json(&self.dir.join("state.json"), &self.state)
    }

    /// Writes the config atomically (after connect, disconnect, rename).
    pub fn save_config(&self) -> Result<()> {
        write_json(&self.dir.join("config.json"), &self.config)
    }

    /// Re-reads the state from disk; [`Error::NotFound`] once the container was removed
    /// (an `--rm` container that ended).
    pub fn reload(&mut self) -> Result<()> {
        let path = self.dir.join("state.json");
        if !path.exists() {
            return Err(Error::NotFound {
                kind: Kind::Container,
                key: self.config.name.clone(),
            });
        }
        self.state = read_json(&path)?;
        Ok(())
    }

    /// Re-reads the config too (a rename or a connect changed it): the monitor's view,
    /// which lives as long as the container runs.
    pub fn reload_all(&mut self) -> Result<()> {
        self.reload()?;
        self.config = read_json(&self.dir.join("config.json"))?;
        Ok(())
    }

    /// Every published port, each IPv4 binding followed by its IPv6 twin, as Docker lists
    /// them.
    pub fn published(&self) -> Vec<PortBinding> {
        let mut out = Vec::new();
        for p in &self.state.ports {
            out.push(*p);
            out.extend(self.state.proxied_ports.iter().filter(|v6| {
                v6.host_port == p.host_port
                    && v6.container_port == p.container_port
                    && v6.protocol == p.protocol
            }));
        }
        out
    }

    /// The bytes its writable layer holds (Docker's SizeRw), without the mount points the
    /// engine makes there (Docker keeps those in its init layer).
    pub fn size_rw(&self) -> u64 {
        let upper = self.dir.join("upper");
        let made: u64 = crate::changes::ENGINE_MADE
            .iter()
            .filter_map(|p| fs::symlink_metadata(upper.join(p.trim_start_matches('/'))).ok())
            .filter(|m| !m.is_dir())
            .map(|m| m.len())
            .sum();
        crate::layer::du(&upper).saturating_sub(made)
    }

    /// Whether its process runs: the state says so and the monitor is alive (also while
    /// it waits to restart it, as Docker counts a restarting container running).
    pub fn is_running(&self) -> bool {
        self.state.status == Status::Running && pid_alive(self.state.monitor_pid)
    }

    /// The host PID of its process, or Docker's error when it is not running or waits to be
    /// restarted.
    pub fn process_pid(&self) -> Result<u32> {
        if !self.is_running() {
            crate::error::state!("Container {} is not running", self.config.id);
        }
        if self.state.restarting || self.state.pid == 0 {
            crate::error::state!(
                "Container {} is restarting, wait until the container is running",
                self.config.id
            );
        }
        Ok(self.state.pid)
    }
}

/// Whether a process exists and is not a zombie: a descriptor of the process (pidfd) is
/// readable once it has exited. Listings ask this for every container, and a pidfd costs a
/// fraction of a read of /proc/PID/stat, which stays the way on kernels without pidfds.
pub fn pid_alive(pid: u32) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let Some(id) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => {
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(0))
        }
        Err(rustix::io::Errno::SRCH) => false,
        Err(_) => proc_alive(pid),
    }
}

/// [`pid_alive`] from the process's state letter in /proc.
fn proc_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
        .unwrap_or(false)
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).ctx(|| format!("encode {}", path.display()))?;
    fsutil::write_atomic(path, &bytes).ctx(|| format!("write {}", path.display()))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).ctx(|| format!("parse {}", path.display()))
}

/// Docker's error when one of `all` has `name`.
pub fn check_name_free(all: &[Container], name: &str) -> Result<()> {
    if let Some(other) = all.iter().find(|c| c.config.name == name) {
        conflict!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
            other.config.id
        );
    }
    Ok(())
}

fn load(dir: PathBuf) -> Result<Container> {
    Ok(Container {
        config: read_json(&dir.join("config.json"))?,
        state: read_json(&dir.join("state.json"))?,
        dir,
    })
}

/// The containers under `<root>/containers`.
pub struct ContainerStore {
    dir: PathBuf,
}

impl ContainerStore {
    /// The store, created if missing.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// Takes the store lock (name changes, creation, removal).
    pub fn lock(&self) -> Result<StoreLock> {
        StoreLock::exclusive(&self.dir.join(".lock"))
    }

    /// Takes one container's lock (start, exit, connect, disconnect, removal).
    pub fn lock_one(&self, c: &Container) -> Result<StoreLock> {
        c.lock()
    }

    /// One container's lock if nobody holds it now.
    pub fn try_lock_one(&self, c: &Container) -> Result<Option<StoreLock>> {
        StoreLock::try_exclusive(&c.dir.join("lock"))
    }

    /// The lock between attaching and garbage collection: every attach holds it shared
    /// from recording its intent until its result is recorded; a collection holds it
    /// exclusively, so it never lists attachments while one is being made.
    pub fn attach_lock(&self, exclusive: bool) -> Result<StoreLock> {
        let path = self.dir.join(".attach.lock");
        if exclusive {
            StoreLock::exclusive(&path)
        } else {
            StoreLock::shared(&path)
        }
    }

    /// Every container, newest first.
    pub fn all(&self) -> Result<Vec<Container>> {
        fsutil::sweep_stale_tmp(&self.dir);
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).ctx(|| format!("list {}", self.dir.display()))?;
        for entry in entries {
            let dir = entry.ctx(|| format!("list {}", self.dir.display()))?.path();
            let hidden = dir
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
            if hidden || !dir.join("state.json").exists() {
                continue;
            }
            match load(dir.clone()) {
                Ok(c) => out.push(c),
                // Removed by another command while we listed: not a container any more.
                Err(_) if !dir.join("state.json").exists() => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| b.config.created.cmp(&a.config.created));
        Ok(out)
    }

    /// The container a name, full ID or unique ID prefix names.
    pub fn find(&self, key: &str) -> Result<Container> {
        let key = key.trim_start_matches('/');
        // A full ID (what the monitor and the other internal callers pass) is a folder.
        let dir = self.dir.join(key);
        if key.len() == 64
            && key.bytes().all(|b| b.is_ascii_hexdigit())
            && dir.join("state.json").exists()
        {
            return load(dir);
        }
        crate::ids::resolve(Kind::Container, key, self.all()?, 1, |c| {
            (c.config.name.as_str(), c.config.id.as_str())
        })
    }

    /// Makes a container's folder and writes its config and state; refuses a taken name.
    pub fn create(&self, config: Config, _lock: &StoreLock) -> Result<Container> {
        check_name_free(&self.all()?, &config.name)?;
        let dir = self.dir.join(&config.id);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let c = Container {
            config,
            state: State::default(),
            dir,
        };
        c.save_config()?;
        c.save_state()?;
        Ok(c)
    }
}

/// Names of the containers whose mounts use volume `name`.
pub fn volume_users(containers: &[Container], name: &str) -> Vec<String> {
    containers
        .iter()
        .filter(|c| {
            c.config
                .mounts
                .iter()
                .any(|m| m.kind == crate::volume::MountKind::Volume && m.source == name)
        })
        .map(|c| c.config.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_until_it_exits_even_while_nobody_has_reaped_it() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // `true` exits at once; unreaped, it is a zombie: not alive.
        while pid_alive(quick.id()) {
            assert!(
                std::time::Instant::now() < deadline,
                "a zombie counts as alive"
            );
            std::thread::yield_now();
        }
        assert!(proc_alive(sleeper.id()) && pid_alive(sleeper.id()));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        quick.wait().unwrap();
        assert!(!pid_alive(sleeper.id()) && !pid_alive(quick.id()));
        assert!(!pid_alive(0));
    }

    #[test]
    fn signalling_a_process_that_has_exited_is_a_state_not_a_failure() {
        use crate::seam::Syscalls;
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        let e = crate::seam::LinuxSyscalls
            .kill(pid, nix::sys::signal::Signal::SIGTERM)
            .unwrap_err();
        assert!(matches!(e, Error::State(_)), "{e:?}");
    }
}
