//! Overlay networks across hosts: the records the agents keep in etcd, and what the agent
//! (`netctl-overlayd`) and its local clients (the `netctl-overlay` plugin, the engine, the
//! CLI) say to each other over the agent's unix socket, one JSON request and one JSON
//! reply per line. This crate links no etcd client: plugins stay lean.
//!
//! The etcd keys (all under [`PREFIX`]; docs/overlay.md describes them):
//! - `hosts/<host>`: [`HostRecord`], on the host's liveness lease.
//! - `networks/<name>`: [`NetworkSpec`]; `vnis/<vni>`: the network's name (the VNI is taken by
//!   compare-and-swap).
//! - `ipam/<network>/ip/<addr>`, `.../owner/<container>:<ifname>`, `.../last/<set>`,
//!   `.../guard`: the allocator's store, its allocations on the owning host's tenure lease.
//! - `endpoints/<network>/<host>/<container>:<ifname>`: [`EndpointRecord`], on the owning
//!   host's liveness lease (with the endpoint's DNS names).

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The versioned prefix of every key.
pub const PREFIX: &str = "/netctl/v1/";
/// The UDP port of every overlay network's VXLAN tunnels.
pub const VXLAN_PORT: u16 = 4789;
/// What VXLAN over IPv4 costs of the underlay's MTU.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The exit code of an agent that found another one serving its host (whoever started it
/// waits for that one).
pub const ANOTHER_AGENT_RUNS: u8 = 3;
/// The first VNI handed out (below it: left to others' static use).
pub const FIRST_VNI: u32 = 4096;
/// The UDP port of the encrypted tunnels between hosts (WireGuard's protocol).
pub const TUNNEL_PORT: u16 = 51821;
/// The TUN device each host's agent carries encrypted networks' VXLAN through.
pub const TUNNEL_DEVICE: &str = "netctl-crypt";
/// What the encrypted tunnel adds to a packet (outer IPv4 20, UDP 8, WireGuard's header 16
/// and tag 16).
pub const TUNNEL_OVERHEAD: u32 = 60;
/// Where hosts' tunnel addresses are taken from (RFC 2544's benchmarking range, which no
/// LAN routes).
pub const TUNNEL_SUBNET: &str = "198.18.0.0/15";

/// What went wrong talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No agent answers on the socket.
    #[error("the overlay agent does not answer on {path}: {source} (is this host in a cluster? `netctl cluster join`)")]
    NoAgent {
        /// The socket.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The agent answered, but not with a reply this client understands.
    #[error("the overlay agent sent something unreadable: {0}")]
    Protocol(String),
    /// The agent refused or failed the request.
    #[error("{message}")]
    Agent {
        /// Whether trying again later may work (etcd unreachable, a conflict).
        retry: bool,
        /// What the agent says.
        message: String,
    },
}

/// How the agent and etcd prove who they are to each other: TLS (etcd's certificate checked
/// against `ca`; this host's client certificate `cert` + `key` for etcd's
/// `--client-cert-auth`) and etcd's own users. Files, read by the agent when it starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreAuth {
    /// The CA that signed etcd's certificates (`--etcd-cacert`): TLS to etcd when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// This host's client certificate, PEM (`--etcd-cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (`--etcd-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// An etcd user (`--etcd-user`), with etcd's authentication on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The file holding that user's password (`--etcd-password-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl StoreAuth {
    /// Whether the agent talks TLS to etcd.
    pub fn tls(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }
}

/// The cluster configuration of this host (`netctl cluster join` writes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// etcd client URLs: `https://10.0.0.1:2379` ...
    pub store: Vec<String>,
    /// TLS and user settings for etcd.
    #[serde(default)]
    pub auth: StoreAuth,
    /// This host's address on the underlay (its VXLAN tunnels' source).
    pub advertise: IpAddr,
    /// This host's name in the cluster.
    pub host: String,
    /// Seconds a host's endpoints outlive its agent (its liveness lease).
    #[serde(default = "liveness")]
    pub liveness_ttl: i64,
    /// Seconds a host's addresses outlive its agent (its tenure lease).
    #[serde(default = "tenure")]
    pub tenure_ttl: i64,
    /// Seconds between new key pairs for the encrypted tunnels.
    #[serde(default = "key_rotation")]
    pub key_rotation: i64,
    /// netctl's persistent state folder on this host (conflists go to `<root>/networks`).
    pub root: PathBuf,
    /// netctl's runtime folder on this host (the agent's socket, DNS records).
    pub run_dir: PathBuf,
}

/// The default liveness TTL: how long a dead host's endpoints stay, in seconds.
pub const LIVENESS_TTL: i64 = 5;
/// The default tenure TTL: how long a dead host's addresses stay taken, in seconds.
pub const TENURE_TTL: i64 = 300;

fn liveness() -> i64 {
    LIVENESS_TTL
}

fn tenure() -> i64 {
    TENURE_TTL
}

/// The default key rotation of the encrypted tunnels: a new key pair a day.
pub const KEY_ROTATION: i64 = 86_400;

fn key_rotation() -> i64 {
    KEY_ROTATION
}

impl ClusterConfig {
    /// Where the configuration of a host whose state is in `root` lives.
    pub fn path(root: &Path) -> PathBuf {
        root.join("cluster.json")
    }

    /// Reads it; None when this host is in no cluster.
    pub fn read(root: &Path) -> Option<ClusterConfig> {
        std::fs::read(Self::path(root))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }
}

/// The agent's socket under a run folder.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("overlay").join("agent.sock")
}

/// One host of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Its name.
    pub host: String,
    /// Its underlay address.
    pub addr: IpAddr,
    /// Its underlay MTU.
    pub mtu: u32,
    /// Its end of the encrypted tunnels: its address inside them and its public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelEnd>,
}

/// A host's end of the encrypted tunnels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelEnd {
    /// Its address inside the tunnels (in [`TUNNEL_SUBNET`]): encrypted networks' VXLAN
    /// goes to and from it.
    pub addr: std::net::Ipv4Addr,
    /// Its current public key (X25519, base64), rotated by the agent.
    pub key: String,
}

/// An overlay network, the same on every host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Its name.
    pub name: String,
    /// Its 64-hex ID (what `network ls` shows on every host).
    pub id: String,
    /// Its VXLAN network identifier.
    pub vni: u32,
    /// Its subnet.
    pub subnet: IpNet,
    /// Its gateway (the same address on every host's bridge: a distributed gateway).
    pub gateway: Option<IpAddr>,
    /// `--ip-range`.
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    /// The MTU of its containers' interfaces (the smallest underlay's minus 50, and minus
    /// the tunnel's 60 when encrypted).
    pub mtu: u32,
    /// When it was made (RFC 3339).
    pub created: String,
    /// `-o encrypted`: its traffic between hosts goes through the hosts' encrypted tunnels.
    #[serde(default)]
    pub encrypted: bool,
    /// Set for a macvlan network of the cluster (`network create -d macvlan --scope swarm`):
    /// each host's containers are macvlan children of its parent link, with addresses from
    /// the cluster's IPAM; such a network has no VNI, bridge or VXLAN device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<MacvlanSpec>,
}

/// The macvlan modes (`-o macvlan_mode=`).
pub const MACVLAN_MODES: [&str; 4] = ["bridge", "vepa", "private", "passthru"];

/// The macvlan side of a cluster network: the same on every host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanSpec {
    /// The parent link (`-o parent=`), by the same name on every host.
    pub parent: String,
    /// `-o macvlan_mode=`: bridge, vepa, private or passthru.
    pub mode: String,
}

/// The bridge of the network with VNI `vni` on each host.
pub fn bridge_name(vni: u32) -> String {
    format!("ov-{vni:x}")
}

impl NetworkSpec {
    /// The network's bridge on each host.
    pub fn bridge(&self) -> String {
        bridge_name(self.vni)
    }

    /// The network's VXLAN device on each host.
    pub fn vxlan(&self) -> String {
        format!("vx-{:x}", self.vni)
    }

    /// Whether it is an overlay (VXLAN between the hosts' bridges), not a cluster macvlan.
    pub fn is_overlay(&self) -> bool {
        self.macvlan.is_none()
    }
}

/// One container interface on an overlay network, as every host sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The network.
    pub network: String,
    /// The host it lives on.
    pub host: String,
    /// That host's underlay address (where its frames are tunnelled to).
    pub vtep: IpAddr,
    /// The container ID.
    pub container_id: String,
    /// The interface in the container.
    pub ifname: String,
    /// The interface's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
    /// Its DNS name (the container's name), if any.
    #[serde(default)]
    pub name: Option<String>,
    /// Its DNS aliases on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// An address the agent handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedAddress {
    /// The address with the subnet's prefix length.
    pub address: IpNet,
    /// The network's gateway.
    pub gateway: Option<IpAddr>,
}

/// What `netctl network create -d overlay` (or `-d macvlan --scope swarm`) asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateNetwork {
    /// The name.
    pub name: String,
    /// `--subnet` (else the next free one of the overlay pool).
    pub subnet: Option<IpNet>,
    /// `--gateway`.
    pub gateway: Option<IpAddr>,
    /// `--ip-range`.
    pub ip_range: Option<IpNet>,
    /// `-o encrypted`.
    #[serde(default)]
    pub encrypted: bool,
    /// `-d macvlan --scope swarm`: a cluster macvlan network instead of an overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<MacvlanSpec>,
}

/// A host as `netctl cluster ls` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host.
    pub host: String,
    /// Its underlay address.
    pub addr: IpAddr,
    /// Whether its agent holds its liveness lease now.
    pub alive: bool,
    /// Whether it is the host asked.
    pub this: bool,
}

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the agent there, and is etcd?
    Ping,
    /// The network's spec and this host's tunnel address; makes its VXLAN device here.
    Join {
        /// The network.
        network: String,
    },
    /// Addresses for one interface (the same ones again for a repeated call).
    Allocate {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
        /// Its interface.
        ifname: String,
        /// `--ip` addresses asked for.
        #[serde(default)]
        requested: Vec<IpAddr>,
    },
    /// Frees an interface's addresses; unknown ones are fine.
    Release {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
        /// Its interface.
        ifname: String,
    },
    /// Announces an endpoint of this host to every host.
    Register {
        /// The endpoint (its `host` and `vtep` are filled in by the agent).
        endpoint: EndpointRecord,
    },
    /// Withdraws an endpoint of this host; unknown ones are fine.
    Unregister {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
        /// Its interface.
        ifname: String,
    },
    /// Makes an overlay network, seen by every host.
    CreateNetwork(CreateNetwork),
    /// Removes an overlay network, refused while any host has endpoints on it.
    RemoveNetwork {
        /// The network.
        name: String,
    },
    /// The hosts of the cluster.
    Hosts,
    /// This host's own networks changed (`netctl network create/rm`): the agent tells the
    /// cluster their names, which no overlay network may take.
    LocalNetworksChanged,
    /// Takes this host out of the cluster (its endpoints must be gone) and stops the agent.
    Leave,
}

/// The agent's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Done.
    Ok,
    /// A network and this host's tunnel address.
    Network {
        /// The network.
        spec: NetworkSpec,
        /// This host's underlay address.
        local: IpAddr,
    },
    /// Addresses handed out.
    Addresses {
        /// One per range set.
        leases: Vec<LeasedAddress>,
    },
    /// The hosts.
    Hosts {
        /// Each host.
        hosts: Vec<HostStatus>,
    },
    /// A failure.
    Error {
        /// Whether trying again later may work.
        retry: bool,
        /// What went wrong.
        message: String,
    },
}

/// A connection to this host's agent.
pub struct Client {
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the agent of `run_dir`; requests time out after `timeout`.
    pub fn connect(run_dir: &Path, timeout: Duration) -> Result<Client, ApiError> {
        let path = socket_path(run_dir);
        let no_agent = |source| ApiError::NoAgent {
            path: path.clone(),
            source,
        };
        let stream = UnixStream::connect(&path).map_err(no_agent)?;
        stream.set_read_timeout(Some(timeout)).map_err(no_agent)?;
        stream.set_write_timeout(Some(timeout)).map_err(no_agent)?;
        Ok(Client {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads its reply; an `Error` reply is an [`ApiError::Agent`].
    pub fn call(&mut self, req: &Request) -> Result<Reply, ApiError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ApiError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let io = |e: std::io::Error| ApiError::Protocol(format!("talk to the agent: {e}"));
        self.stream.get_mut().write_all(&line).map_err(io)?;
        let mut answer = String::new();
        self.stream.read_line(&mut answer).map_err(io)?;
        match serde_json::from_str(&answer) {
            Ok(Reply::Error { retry, message }) => Err(ApiError::Agent { retry, message }),
            Ok(r) => Ok(r),
            Err(e) => Err(ApiError::Protocol(format!("{e}: {answer:?}"))),
        }
    }
}

/// Where a started agent's own errors go (why it could not start, if it could not).
pub fn log_path(run_dir: &Path) -> PathBuf {
    run_dir.join("overlay").join("agent.log")
}

/// The agent binary beside the running executable.
pub fn agent_beside_me() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(|d| d.join("netctl-overlayd"))
        .filter(|p| p.is_file())
}

/// Connects to the agent of `run_dir`, starting `agent` on `config` when none answers (as
/// the DNS server is started on demand) and waiting up to `within` for it; when it does not
/// come up, the error says what the agent said.
pub fn connect_or_start(
    agent: &Path,
    config: &Path,
    run_dir: &Path,
    within: Duration,
) -> Result<Client, ApiError> {
    let timeout = Duration::from_secs(10);
    if let Ok(c) = Client::connect(run_dir, timeout) {
        return Ok(c);
    }
    let mut started = spawn_agent(agent, config, run_dir).map_err(|source| ApiError::NoAgent {
        path: agent.to_path_buf(),
        source,
    })?;
    let deadline = std::time::Instant::now() + within;
    loop {
        // An agent that failed has said why: no need to wait out the deadline (one that
        // found another serving this host leaves it to that one).
        let ended = matches!(started.try_wait(), Ok(Some(s)) if s.code() != Some(i32::from(ANOTHER_AGENT_RUNS)));
        match Client::connect(run_dir, timeout) {
            Ok(c) => return Ok(c),
            Err(e) if ended || std::time::Instant::now() >= deadline => {
                return Err(match last_log_line(run_dir) {
                    Some(said) => ApiError::Agent {
                        retry: true,
                        message: format!("the overlay agent did not start: {said}"),
                    },
                    None => e,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Starts the agent detached (its own process group, a clean environment, stdio on its
/// log); one already running makes it end at once.
fn spawn_agent(
    agent: &Path,
    config: &Path,
    run_dir: &Path,
) -> std::io::Result<std::process::Child> {
    use netctl_cni::process::CleanSignals;
    use std::os::unix::process::CommandExt;
    let log = log_path(run_dir);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::File::create(&log)?;
    std::process::Command::new(agent)
        .arg("--config")
        .arg(config)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .clean_signals()
        .spawn()
}

fn last_log_line(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log_path(run_dir)).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_and_replies_are_one_tagged_json_line() {
        let r = Request::Allocate {
            network: "web".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            requested: vec!["10.90.0.9".parse().unwrap()],
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.starts_with(r#"{"op":"allocate""#) && !line.contains('\n'),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        let e: Reply =
            serde_json::from_str(r#"{"reply":"error","retry":true,"message":"etcd is away"}"#)
                .unwrap();
        assert_eq!(
            e,
            Reply::Error {
                retry: true,
                message: "etcd is away".into()
            }
        );
    }
}
