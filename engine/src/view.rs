//! What `inspect` shows of containers, images, volumes and networks, as serde structs with
//! Docker's field names; and the small facts front ends list (a container's state name).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::container::{Container, NetMode, NetworkRequest, PortBinding, Status};
use crate::engine::Engine;
use crate::ids::derived_id;
use crate::image::Image;
use crate::network::Network;
use crate::runtime::seccomp::Seccomp;
use crate::volume::{MountKind, Volume, VolumeStore};

/// Docker's State.Status of a container.
pub fn state_name(c: &Container) -> &'static str {
    state_name_of(c, c.is_running())
}

/// [`state_name`] of a container whose liveness is known (`running`: [`Container::is_running`]).
pub(crate) fn state_name_of(c: &Container, running: bool) -> &'static str {
    match c.state.status {
        Status::Created => "created",
        Status::Dead => "dead",
        Status::Running if running => match (c.state.restarting, c.state.paused) {
            (true, _) => "restarting",
            (_, true) => "paused",
            _ => "running",
        },
        _ => "exited",
    }
}

/// `inspect` of a container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// 64 hex.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// The program.
    pub path: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it is in its life.
    pub state: StateView,
    /// `sha256:<image ID>`.
    pub image: String,
    /// The container's resolv.conf.
    pub resolv_conf_path: PathBuf,
    /// Its hostname file.
    pub hostname_path: PathBuf,
    /// Its hosts file.
    pub hosts_path: PathBuf,
    /// Its json-file log.
    pub log_path: PathBuf,
    /// `/NAME`.
    pub name: String,
    /// The storage driver.
    pub driver: &'static str,
    /// Always linux.
    pub platform: &'static str,
    /// No SELinux labels.
    pub mount_label: &'static str,
    /// No SELinux labels.
    pub process_label: &'static str,
    /// No AppArmor profile.
    pub app_armor_profile: &'static str,
    /// Its exec instances (a daemon fills them in; null when none).
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    /// Its mounts.
    pub mounts: Vec<MountView>,
    /// Its root file system's layers.
    pub graph_driver: GraphDriverView,
    /// How it was created.
    pub host_config: HostConfigView,
    /// Its runtime config.
    pub config: ConfigView,
    /// Restarts its policy made since it was last started by hand.
    pub restart_count: u32,
    /// Its networks as attached now.
    pub network_settings: NetworkSettingsView,
}

/// State of a container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateView {
    /// created, running, paused, exited.
    pub status: &'static str,
    /// Whether its process runs.
    pub running: bool,
    /// Whether it is frozen.
    pub paused: bool,
    /// Between an exit and the restart its policy asked for.
    pub restarting: bool,
    /// Never recorded.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Never.
    pub dead: bool,
    /// Host PID of its first process (0 when not running).
    pub pid: u32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// RFC 3339 or empty.
    pub started_at: String,
    /// RFC 3339 or empty.
    pub finished_at: String,
    /// What its healthcheck found (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

/// The overlay a container's root is: its image's layers under its own upper folder.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriverView {
    /// Its folders.
    pub data: OverlayDirs,
    /// overlay2.
    pub name: &'static str,
}

/// The folders of a container's overlay.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OverlayDirs {
    /// The image's layers, top first, `:`-separated.
    pub lower_dir: String,
    /// Where the root is mounted while it runs.
    pub merged_dir: PathBuf,
    /// What the container changed.
    pub upper_dir: PathBuf,
    /// overlayfs's work folder.
    pub work_dir: PathBuf,
}

/// One mount.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountView {
    /// bind, volume, tmpfs.
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path: a volume's `_data` folder, a bind's source.
    pub source: String,
    /// The path in the container.
    pub destination: String,
    /// `local` for a volume, empty for others.
    pub driver: &'static str,
    /// `-v`'s mode (`z` for a volume given none; empty for `--mount`).
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// `rprivate` for a bind, empty for others.
    pub propagation: &'static str,
}

/// The host side of a container's config.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfigView {
    /// `-v SOURCE:TARGET[:MODE]`s (null when none).
    pub binds: Option<Vec<String>>,
    /// `--cidfile`.
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    /// The first network, host, none or container:ID.
    pub network_mode: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// Always the local driver: empty.
    pub volume_driver: &'static str,
    /// Containers share the host's cgroup namespace.
    pub cgroupns_mode: &'static str,
    /// No console size is asked for.
    pub console_size: [u16; 2],
    /// `-P`.
    pub publish_all_ports: bool,
    /// Docker's knobs netctl does not take, at Docker's values for "not set".
    #[serde(flatten)]
    pub unset: UnsetKnobs,
    /// The paths the container cannot read (null when privileged).
    pub masked_paths: Option<Vec<&'static str>>,
    /// The paths it cannot change (null when privileged).
    pub readonly_paths: Option<Vec<&'static str>>,
    /// `-p` as asked.
    pub port_bindings: BTreeMap<String, Vec<HostPort>>,
    /// `--dns`.
    pub dns: Vec<IpAddr>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
    /// Legacy `--link`s (the default bridge), as Docker shows them:
    /// `/NAME:/CONTAINER/ALIAS`; null when none.
    pub links: Option<Vec<String>>,
    /// `--volumes-from` as given (null when none).
    pub volumes_from: Option<Vec<String>>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--log-driver`.
    pub log_config: LogConfigView,
    /// `--security-opt`, as Docker shows it (`seccomp=unconfined`, `seccomp=<profile>`).
    pub security_opt: Option<Vec<String>>,
    /// `--cap-add` as given (null when none).
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop` as given (null when none).
    pub cap_drop: Option<Vec<String>>,
    /// `--group-add` (null when none).
    pub group_add: Option<Vec<String>>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--restart`.
    pub restart_policy: RestartPolicyView,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--init` (absent when not asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `-m` in bytes (0: no limit).
    pub memory: u64,
    /// `--memory-swap` in bytes (0: none asked, -1: unlimited).
    pub memory_swap: i64,
    /// `--cpus` in billionths.
    pub nano_cpus: u64,
    /// `--cpu-shares` (0: the default).
    pub cpu_shares: u64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--memory-reservation` in bytes (0: none).
    pub memory_reservation: u64,
    /// `--cpu-rt-period` in microseconds (0: none).
    pub cpu_realtime_period: u64,
    /// `--cpu-rt-runtime` in microseconds (0: none).
    pub cpu_realtime_runtime: u64,
    /// `--pids-limit` (null when not asked for).
    pub pids_limit: Option<i64>,
    /// `--pid`: "", host or container:ID.
    pub pid_mode: String,
    /// `--ipc`: private, shareable, host or container:ID.
    pub ipc_mode: String,
    /// The size of /dev/shm in bytes.
    pub shm_size: u64,
    /// `--ulimit` (null when none).
    pub ulimits: Option<Vec<crate::runtime::kernel::Ulimit>>,
    /// `--sysctl` (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// `--device`.
    pub devices: Vec<crate::runtime::kernel::DeviceMapping>,
    /// `--tmpfs` mounts, by target (null when none).
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `host` with `--uts host`, else empty.
    #[serde(rename = "UTSMode")]
    pub uts_mode: &'static str,
    /// `--isolation` as given.
    pub isolation: String,
    /// The OCI runtime's name, `runc` as Docker's default.
    pub runtime: String,
    /// Swappiness: the kernel's.
    pub memory_swappiness: Option<i64>,
    /// `--device-cgroup-rule`s (null when none).
    pub device_cgroup_rules: Option<Vec<String>>,
}

/// Docker's `HostConfig` settings that netctl has no flag for, as Docker shows them unset.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnsetKnobs {
    /// `--cgroup`.
    pub cgroup: &'static str,
    /// `--cgroup-parent`.
    pub cgroup_parent: &'static str,
    /// `--oom-score-adj`.
    pub oom_score_adj: i64,
    /// `--userns`.
    pub userns_mode: &'static str,
    /// `--blkio-weight`.
    pub blkio_weight: u16,
    /// `--blkio-weight-device`.
    pub blkio_weight_device: [(); 0],
    /// `--device-read-bps`.
    pub blkio_device_read_bps: Option<()>,
    /// `--device-write-bps`.
    pub blkio_device_write_bps: Option<()>,
    /// `--device-read-iops`.
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<()>,
    /// `--device-write-iops`.
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<()>,
    /// `--cpu-period`.
    pub cpu_period: i64,
    /// `--cpu-quota`.
    pub cpu_quota: i64,
    /// `--cpuset-mems`.
    pub cpuset_mems: &'static str,
    /// `--gpus`.
    pub device_requests: Option<()>,
    /// `--kernel-memory`.
    pub kernel_memory: i64,
    /// Its TCP part.
    #[serde(rename = "KernelMemoryTCP")]
    pub kernel_memory_tcp: i64,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// Windows' CPU count.
    pub cpu_count: i64,
    /// Windows' CPU percent.
    pub cpu_percent: i64,
    /// Windows' IO limits.
    #[serde(rename = "IOMaximumIOps")]
    pub io_maximum_iops: u64,
    /// Windows' IO limits.
    #[serde(rename = "IOMaximumBandwidth")]
    pub io_maximum_bandwidth: u64,
}

/// `--restart` as Docker shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyView {
    /// no, always, on-failure, unless-stopped.
    pub name: &'static str,
    /// on-failure's N.
    pub maximum_retry_count: u32,
}

/// Where the output goes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfigView {
    /// `json-file` or `none`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// The driver's options (none yet).
    pub config: BTreeMap<String, String>,
}

/// A host port of a published port.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostPort {
    /// The host address ("" or 0.0.0.0 for all).
    pub host_ip: String,
    /// The host port ("" when any).
    pub host_port: String,
}

/// The runtime side of a container's config.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigView {
    /// Its hostname.
    pub hostname: String,
    /// Whether the creating client attached its input.
    pub attach_stdin: bool,
    /// Whether it attached its output.
    pub attach_stdout: bool,
    /// Whether it attached its errors.
    pub attach_stderr: bool,
    /// Its input closes when the attached client's does.
    pub stdin_once: bool,
    /// The anonymous volumes `-v PATH` asked for (null when none).
    pub volumes: Option<BTreeMap<String, serde_json::Map<String, Value>>>,
    /// No ONBUILD instructions are kept.
    pub on_build: Option<Vec<String>>,
    /// KEY=VALUE.
    pub env: Vec<String>,
    /// The command.
    pub cmd: Vec<String>,
    /// The image as named.
    pub image: String,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// `-u` (empty for root).
    pub user: String,
    /// `"80/tcp": {}` for each exposed port.
    pub exposed_ports: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// `--domainname`.
    pub domainname: String,
    /// The image's labels and `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal` or the image's ("" when neither, as a Docker template sees it).
    pub stop_signal: String,
    /// `--stop-timeout` (absent when not asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `--health-*` or the image's HEALTHCHECK (absent when neither).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::Healthcheck>,
}

/// Networking as attached now. The top-level endpoint fields are Docker's deprecated copy
/// of the default `bridge` network's endpoint: empty for a container not on it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettingsView {
    /// Docker's default bridge's name in its own view: always empty.
    pub bridge: &'static str,
    /// Docker's hairpin setting: never.
    pub hairpin_mode: bool,
    /// No link-local IPv6 address is reported.
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: &'static str,
    /// Its prefix length.
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: u8,
    /// Published ports as bound.
    pub ports: BTreeMap<String, Vec<HostPort>>,
    /// The namespace.
    pub sandbox_key: String,
    /// An ID of its namespace while it runs (empty otherwise).
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    /// Never any.
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<String>>,
    /// Never any.
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<String>>,
    /// The default bridge's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Its IPv4 gateway.
    pub gateway: String,
    /// Its IPv6 address.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its IPv6 prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// Its IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// Its IPv6 gateway.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// Its MAC.
    pub mac_address: String,
    /// Every network, attached or (when not running) asked for.
    pub networks: BTreeMap<String, EndpointView>,
}

/// A container on one network.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointView {
    /// The addresses asked for (`--ip`, `--ip6`), none when none was.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamView>,
    /// The container's links on this network (user networks), `NAME:ALIAS`.
    pub links: Option<Vec<String>>,
    /// `--net-alias`.
    pub aliases: Vec<String>,
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Its MAC.
    pub mac_address: String,
    /// Stable ID of (network, container, interface).
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// IPv4 gateway.
    pub gateway: String,
    /// IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// IPv6 gateway.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// IPv6 address.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// Names it answers to in DNS.
    #[serde(rename = "DNSNames")]
    pub dns_names: Vec<String>,
    /// Driver options of the endpoint as asked (null when none).
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// `--gw-priority` (Docker 28).
    pub gw_priority: i64,
}

/// The addresses an endpoint asked for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointIpamView {
    /// `--ip`.
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    /// `--link-local-ip`.
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
}

impl EndpointIpamView {
    /// The view of the addresses a request names; None when it names none.
    fn of(req: &NetworkRequest) -> Option<Self> {
        let (ips, link_local) = (&req.ips, &req.link_local_ips);
        let pick = |v4: bool| {
            ips.iter()
                .find(|ip| ip.is_ipv4() == v4)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        (!ips.is_empty() || !link_local.is_empty()).then(|| EndpointIpamView {
            ipv4_address: pick(true),
            ipv6_address: pick(false),
            link_local_ips: link_local.iter().map(ToString::to_string).collect(),
        })
    }
}

fn host_port(p: &PortBinding, bound: bool) -> HostPort {
    let ip = p.host_ip.map(|i| i.to_string());
    HostPort {
        host_ip: ip.unwrap_or_else(|| {
            if bound {
                "0.0.0.0".into()
            } else {
                String::new()
            }
        }),
        host_port: if p.host_port == 0 && !bound {
            String::new()
        } else {
            p.host_port.to_string()
        },
    }
}

fn ports(ports: &[PortBinding], bound: bool) -> BTreeMap<String, Vec<HostPort>> {
    let mut out: BTreeMap<String, Vec<HostPort>> = BTreeMap::new();
    for p in ports {
        out.entry(format!("{}/{}", p.container_port, p.protocol))
            .or_default()
            .push(host_port(p, bound));
    }
    out
}

/// The names a container answers to on a user-defined network once it has been started,
/// as Docker lists them: its aliases, its short ID, and its hostname when that is neither.
fn started_aliases(c: &Container, asked: &[String]) -> Vec<String> {
    let mut names = asked.to_vec();
    names.push(c.config.short_id().to_string());
    let host = &c.config.hostname;
    if host != c.config.short_id() && *host != c.config.name {
        names.push(host.clone());
    }
    names
}

/// The container on each of its networks: as attached, else (not running) as asked.
fn endpoints(c: &Container) -> BTreeMap<String, EndpointView> {
    let mut out = BTreeMap::new();
    let started = !c.state.started_at.is_empty();
    for req in &c.config.networks {
        let user_defined = !crate::network::PREDEFINED.contains(&req.name.as_str());
        let aliases = if user_defined && started {
            started_aliases(c, &req.aliases)
        } else {
            req.aliases.clone()
        };
        let mut dns_names = vec![c.config.name.clone()];
        dns_names.extend(started_aliases(c, &req.aliases));
        let view = EndpointView {
            ipam_config: EndpointIpamView::of(req),
            links: (!req.links.is_empty()).then(|| {
                req.links
                    .iter()
                    .map(|l| format!("{}:{}", l.name, l.alias))
                    .collect()
            }),
            driver_opts: (!req.driver_opts.is_empty()).then(|| req.driver_opts.clone()),
            gw_priority: req.gw_priority,
            aliases,
            dns_names,
            ..EndpointView::default()
        };
        out.insert(req.name.clone(), view);
    }
    for e in c.state.endpoints.iter().filter(|e| !e.pending) {
        let view = out
            .entry(e.network.clone())
            .or_insert_with(|| EndpointView {
                dns_names: vec![c.config.name.clone(), c.config.short_id().to_string()],
                ..EndpointView::default()
            });
        view.mac_address = e.mac.clone();
        view.endpoint_id = derived_id(&format!("{}/{}/{}", e.network, c.config.id, e.ifname));
        if let Some(a) = e.address(true) {
            view.ip_address = a.net.addr().to_string();
            view.ip_prefix_len = a.net.prefix_len();
            view.gateway = a.gateway.map(|g| g.to_string()).unwrap_or_default();
        }
        if let Some(a) = e.address(false) {
            view.global_ipv6_address = a.net.addr().to_string();
            view.global_ipv6_prefix_len = a.net.prefix_len();
            view.ipv6_gateway = a.gateway.map(|g| g.to_string()).unwrap_or_default();
        }
    }
    out
}

/// `inspect` of a container.
pub fn inspect(engine: &Engine, c: &Container) -> ContainerInspect {
    inspect_with(engine, c, &Lookup::read(engine))
}

/// What a container's views look up beyond its own files: the networks (for their IDs) and
/// the volume store (for volume paths). Read once for a whole listing.
pub struct Lookup {
    networks: Vec<crate::network::Network>,
    volumes: Option<VolumeStore>,
}

impl Lookup {
    /// Reads the network store once (an unreadable one leaves network IDs empty).
    pub fn read(engine: &Engine) -> Lookup {
        Lookup {
            networks: engine.networks().and_then(|s| s.all()).unwrap_or_default(),
            volumes: VolumeStore::open(engine.root()).ok(),
        }
    }
}

/// The container's endpoints as `NetworkSettings.Networks` shows them.
pub fn network_views(c: &Container, lookup: &Lookup) -> BTreeMap<String, EndpointView> {
    let mut networks = endpoints(c);
    for (name, view) in &mut networks {
        view.network_id = lookup
            .networks
            .iter()
            .find(|n| &n.name == name)
            .map(|n| n.id.clone())
            .unwrap_or_default();
    }
    networks
}

/// `HostConfig.NetworkMode`: host, none, container:ID, or the first network's name.
pub fn network_mode(c: &Container) -> String {
    match &c.config.net_mode {
        NetMode::Host => "host".to_string(),
        NetMode::None => "none".to_string(),
        NetMode::Container(id) => format!("container:{id}"),
        NetMode::Private => c
            .config
            .networks
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default(),
    }
}

/// The container's mounts as `Mounts` shows them.
pub fn mount_views(c: &Container, lookup: &Lookup) -> Vec<MountView> {
    c.config
        .mounts
        .iter()
        .map(|m| {
            let volume = m.kind == MountKind::Volume;
            MountView {
                kind: m.kind.clone(),
                name: if volume {
                    m.source.clone()
                } else {
                    String::new()
                },
                source: match (&lookup.volumes, volume) {
                    (Some(v), true) => v.data(&m.source).display().to_string(),
                    _ => m.source.clone(),
                },
                destination: m.target.clone(),
                driver: if volume { "local" } else { "" },
                mode: match (&m.kind, m.mode.as_deref()) {
                    (MountKind::Volume, Some("")) if !m.anonymous => "z".into(),
                    (_, mode) => mode.unwrap_or_default().into(),
                },
                rw: !m.readonly,
                propagation: if m.kind == MountKind::Bind {
                    "rprivate"
                } else {
                    ""
                },
            }
        })
        .collect()
}

/// `HostConfig.Binds`: the `-v SOURCE:TARGET[:MODE]`s, as given.
fn binds(c: &Container) -> Option<Vec<String>> {
    let binds: Vec<String> = c
        .config
        .mounts
        .iter()
        .filter(|m| !m.anonymous)
        .filter_map(|m| match m.mode.as_deref()? {
            "" => Some(format!("{}:{}", m.source, m.target)),
            mode => Some(format!("{}:{}:{mode}", m.source, m.target)),
        })
        .collect();
    (!binds.is_empty()).then_some(binds)
}

/// `Config.Volumes`: the targets of the anonymous volumes `-v PATH` asked for.
fn anonymous_volumes(c: &Container) -> Option<BTreeMap<String, serde_json::Map<String, Value>>> {
    let paths: BTreeMap<String, serde_json::Map<String, Value>> = c
        .config
        .mounts
        .iter()
        .filter(|m| m.mode.is_some() && m.anonymous)
        .map(|m| (m.target.clone(), serde_json::Map::new()))
        .collect();
    (!paths.is_empty()).then_some(paths)
}

/// The container's overlay: its image's layers (top first) under its own folders.
fn graph_driver(engine: &Engine, c: &Container) -> GraphDriverView {
    let lower = crate::image::ImageStore::open(engine.root())
        .ok()
        .and_then(|store| {
            let image = store.find(&c.config.image).ok()?;
            let dirs: Vec<String> = image
                .layers
                .iter()
                .rev()
                .map(|l| store.layers.path(l).display().to_string())
                .collect();
            Some(dirs.join(":"))
        });
    GraphDriverView {
        data: OverlayDirs {
            lower_dir: lower.unwrap_or_default(),
            merged_dir: c.dir.join("rootfs"),
            upper_dir: c.dir.join("upper"),
            work_dir: c.dir.join("work"),
        },
        name: "overlay2",
    }
}

/// [`inspect`] with the lookups already read.
pub fn inspect_with(engine: &Engine, c: &Container, lookup: &Lookup) -> ContainerInspect {
    let running = c.is_running();
    let networks = network_views(c, lookup);
    let bridge = networks
        .get("bridge") // the default network, as Docker's copy
        .cloned()
        .unwrap_or_default();
    ContainerInspect {
        id: c.config.id.clone(),
        created: c.config.created.clone(),
        path: c.config.command.first().cloned(),
        args: c.config.command.iter().skip(1).cloned().collect(),
        state: StateView {
            status: state_name_of(c, running),
            running,
            paused: running && c.state.paused,
            restarting: running && c.state.restarting,
            oom_killed: false,
            dead: false,
            pid: if running { c.state.pid } else { 0 },
            exit_code: c.state.exit_code,
            error: c.state.error.clone(),
            started_at: c.state.started_at.clone(),
            finished_at: c.state.finished_at.clone(),
            health: c.state.health.clone(),
        },
        image: format!("sha256:{}", c.config.image),
        resolv_conf_path: c.dir.join("resolv.conf"),
        hostname_path: c.dir.join("hostname"),
        hosts_path: c.dir.join("hosts"),
        log_path: c.log_path(),
        name: format!("/{}", c.config.name),
        driver: "overlay2",
        platform: "linux",
        mount_label: "",
        process_label: "",
        app_armor_profile: "",
        exec_ids: None,
        mounts: mount_views(c, lookup),
        graph_driver: graph_driver(engine, c),
        host_config: HostConfigView {
            binds: binds(c),
            container_id_file: c.config.cidfile.clone(),
            network_mode: network_mode(c),
            auto_remove: c.config.auto_remove,
            volume_driver: "",
            cgroupns_mode: "host",
            console_size: [0, 0],
            publish_all_ports: c.config.publish_all,
            unset: UnsetKnobs::default(),
            masked_paths: (!c.config.privileges.privileged)
                .then(|| crate::runtime::init::MASKED_PATHS.to_vec()),
            readonly_paths: (!c.config.privileges.privileged)
                .then(|| crate::runtime::init::READONLY_PATHS.to_vec()),
            port_bindings: ports(&c.config.ports, false),
            dns: c.config.dns.clone(),
            extra_hosts: c
                .config
                .extra_hosts
                .iter()
                .map(|(n, i)| format!("{n}:{i}"))
                .collect(),
            links: (!c.config.links.is_empty()).then(|| {
                c.config
                    .links
                    .iter()
                    .map(|(n, a)| format!("/{n}:/{}/{a}", c.config.name))
                    .collect()
            }),
            volumes_from: non_empty(&c.config.volumes_from),
            dns_search: c.config.dns_search.clone(),
            dns_options: c.config.dns_options.clone(),
            log_config: LogConfigView {
                kind: c.config.log_driver.as_str(),
                config: c.config.log_opts.clone(),
            },
            security_opt: match &c.config.seccomp {
                Seccomp::Default => None,
                Seccomp::Unconfined => Some(vec!["seccomp=unconfined".into()]),
                Seccomp::Profile(p) => Some(vec![format!("seccomp={p}")]),
            },
            cap_add: non_empty(&c.config.privileges.cap_add),
            cap_drop: non_empty(&c.config.privileges.cap_drop),
            group_add: non_empty(&c.config.privileges.group_add),
            privileged: c.config.privileges.privileged,
            restart_policy: RestartPolicyView {
                name: c.config.restart.name(),
                maximum_retry_count: c.config.restart.max_retries(),
            },
            readonly_rootfs: c.config.read_only,
            init: c.config.init.then_some(true),
            memory: c.config.resources.memory.unwrap_or(0),
            memory_swap: c.config.resources.memory_swap.unwrap_or(0),
            nano_cpus: c.config.resources.nano_cpus.unwrap_or(0),
            cpu_shares: c.config.resources.cpu_shares.unwrap_or(0),
            cpuset_cpus: c.config.resources.cpuset_cpus.clone().unwrap_or_default(),
            memory_reservation: c.config.resources.memory_reservation.unwrap_or(0),
            cpu_realtime_period: c.config.resources.cpu_rt_period.unwrap_or(0),
            cpu_realtime_runtime: c.config.resources.cpu_rt_runtime.unwrap_or(0),
            pids_limit: c.config.resources.pids_limit,
            pid_mode: c.config.pid_mode.text(false),
            ipc_mode: c.config.ipc_mode.text(true),
            shm_size: c
                .config
                .shm_size
                .unwrap_or(crate::runtime::init::DEFAULT_SHM),
            ulimits: (!c.config.ulimits.is_empty()).then(|| c.config.ulimits.clone()),
            sysctls: c.config.sysctls.clone(),
            devices: c.config.devices.clone(),
            tmpfs: {
                let t: BTreeMap<String, String> = c
                    .config
                    .mounts
                    .iter()
                    .filter(|m| m.kind == crate::volume::MountKind::Tmpfs)
                    .map(|m| (m.target.clone(), m.options.clone()))
                    .collect();
                (!t.is_empty()).then_some(t)
            },
            uts_mode: if c.config.host_uts { "host" } else { "" },
            isolation: c.config.isolation.clone(),
            runtime: match c.config.runtime.as_str() {
                "" => "runc".into(),
                r => r.into(),
            },
            memory_swappiness: None,
            device_cgroup_rules: non_empty(&c.config.resources.device_cgroup_rules),
        },
        config: ConfigView {
            hostname: c.config.hostname.clone(),
            attach_stdin: c.config.attach.stdin,
            attach_stdout: c.config.attach.stdout,
            attach_stderr: c.config.attach.stderr,
            stdin_once: c.config.attach.stdin,
            volumes: anonymous_volumes(c),
            on_build: None,
            env: c.config.env.clone(),
            cmd: c.config.command.clone(),
            image: c.config.image_name.clone(),
            working_dir: c.config.workdir.clone(),
            entrypoint: c.config.entrypoint.clone(),
            tty: c.config.tty,
            open_stdin: c.config.interactive,
            user: c.config.privileges.user.clone(),
            exposed_ports: c
                .config
                .exposed
                .iter()
                .map(|(port, proto)| (format!("{port}/{proto}"), serde_json::Map::new()))
                .collect(),
            domainname: c.config.domainname.clone(),
            labels: c.config.labels.clone(),
            stop_signal: c.config.stop_signal.clone().unwrap_or_default(),
            stop_timeout: c.config.stop_timeout,
            healthcheck: c.config.healthcheck.clone(),
        },
        restart_count: c.state.restart_count,
        network_settings: NetworkSettingsView {
            bridge: "",
            hairpin_mode: false,
            link_local_ipv6_address: "",
            link_local_ipv6_prefix_len: 0,
            ports: ports(&c.published(), true),
            sandbox_key: if c.config.net_mode == NetMode::Host {
                String::new()
            } else {
                engine.netns_path(&c.config.id).display().to_string()
            },
            sandbox_id: match &c.config.net_mode {
                NetMode::Private if running => derived_id(&format!("sandbox/{}", c.config.id)),
                _ => String::new(),
            },
            secondary_ip_addresses: None,
            secondary_ipv6_addresses: None,
            endpoint_id: bridge.endpoint_id,
            gateway: bridge.gateway,
            global_ipv6_address: bridge.global_ipv6_address,
            global_ipv6_prefix_len: bridge.global_ipv6_prefix_len,
            ip_address: bridge.ip_address,
            ip_prefix_len: bridge.ip_prefix_len,
            ipv6_gateway: bridge.ipv6_gateway,
            mac_address: bridge.mac_address,
            networks,
        },
    }
}

/// A list as Docker shows an optional one: null when empty.
fn non_empty(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

/// `inspect` of an image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect<'a> {
    /// `sha256:<ID>`.
    pub id: String,
    /// Its tags.
    pub repo_tags: &'a [String],
    /// `name@sha256:...` of the manifests it was pulled or pushed as.
    pub repo_digests: &'a [String],
    /// RFC 3339.
    pub created: &'a str,
    /// Bytes.
    pub size: u64,
    /// Bytes (the same: layers are not shared out of the size).
    pub virtual_size: u64,
    /// The Docker version that built it: none did.
    pub docker_version: &'static str,
    /// amd64 ...
    pub architecture: &'a str,
    /// linux ...
    pub os: &'a str,
    /// The runtime config, with Docker's empty values for what it does not set.
    pub config: Value,
    /// The config of the container it was committed from (its own config for an image
    /// that was not committed), as Docker 20.10 shows it.
    pub container_config: Value,
    /// The image it was committed over (`sha256:...`), or empty.
    pub parent: String,
    /// Its layers.
    #[serde(rename = "RootFS")]
    pub root_fs: Value,
    /// Who made it.
    pub author: &'a str,
    /// Why.
    pub comment: &'a str,
    /// The container it was committed from.
    pub container: &'a str,
    /// Its layers' folders.
    pub graph_driver: ImageLayersView,
    /// When it was last tagged: not recorded (Go's zero time, as Docker shows it then).
    pub metadata: Value,
}

/// Where an image's layers are: its top layer's folder and those under it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageLayersView {
    /// Its folders.
    pub data: ImageLayerDirs,
    /// overlay2.
    pub name: &'static str,
}

/// An image's layer folders, as Docker names them for an image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageLayerDirs {
    /// The layers under the top one, top first, `:`-separated (absent for one layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_dir: Option<String>,
    /// Nothing is merged for an image: empty.
    pub merged_dir: &'static str,
    /// Its top layer.
    pub upper_dir: PathBuf,
    /// Nothing works in an image: empty.
    pub work_dir: &'static str,
}

/// The keys of Docker's container config that an image's config shows even when unset,
/// with Docker's empty values.
const CONFIG_DEFAULTS: [(&str, Value); 17] = [
    ("Hostname", Value::String(String::new())),
    ("Domainname", Value::String(String::new())),
    ("User", Value::String(String::new())),
    ("AttachStdin", Value::Bool(false)),
    ("AttachStdout", Value::Bool(false)),
    ("AttachStderr", Value::Bool(false)),
    ("Tty", Value::Bool(false)),
    ("OpenStdin", Value::Bool(false)),
    ("StdinOnce", Value::Bool(false)),
    ("Env", Value::Null),
    ("Cmd", Value::Null),
    ("Image", Value::String(String::new())),
    ("Volumes", Value::Null),
    ("WorkingDir", Value::String(String::new())),
    ("Entrypoint", Value::Null),
    ("OnBuild", Value::Null),
    ("Labels", Value::Null),
];

/// An image's config (or the config of the container it came from) as Docker shows it:
/// every key of its container config, an empty list as null.
fn docker_config(config: Value) -> Value {
    let Value::Object(mut map) = config else {
        return config;
    };
    for (key, empty) in CONFIG_DEFAULTS {
        let unset = match map.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::Array(items)) => items.is_empty(),
            Some(_) => false,
        };
        if unset {
            map.insert(key.to_string(), empty);
        }
    }
    Value::Object(map)
}

/// `inspect` of an image (`store` holds its layers).
pub fn inspect_image<'a>(store: &crate::image::ImageStore, i: &'a Image) -> ImageInspect<'a> {
    let layers: Vec<String> = i.layers.iter().map(|l| format!("sha256:{l}")).collect();
    let mut dirs = i.layers.iter().rev().map(|l| store.layers.path(l));
    let upper_dir = dirs.next().unwrap_or_default();
    let lower: Vec<String> = dirs.map(|d| d.display().to_string()).collect();
    let config = serde_json::to_value(&i.config).unwrap_or_default();
    ImageInspect {
        virtual_size: i.size,
        docker_version: "",
        graph_driver: ImageLayersView {
            data: ImageLayerDirs {
                lower_dir: (!lower.is_empty()).then(|| lower.join(":")),
                merged_dir: "",
                upper_dir,
                work_dir: "",
            },
            name: "overlay2",
        },
        metadata: serde_json::json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
        id: format!("sha256:{}", i.id),
        repo_tags: &i.tags,
        repo_digests: &i.repo_digests,
        created: &i.created,
        size: i.size,
        architecture: &i.architecture,
        os: &i.os,
        container_config: docker_config(match &i.container_config {
            Some(c) => c.clone(),
            None => config.clone(),
        }),
        config: docker_config(config),
        parent: match i.parent.as_str() {
            "" => String::new(),
            p => format!("sha256:{p}"),
        },
        root_fs: serde_json::json!({"Type": "layers", "Layers": layers}),
        author: &i.author,
        comment: &i.comment,
        container: &i.container,
    }
}

/// `volume inspect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInspect<'a> {
    /// RFC 3339.
    pub created_at: &'a str,
    /// Always local.
    pub driver: &'static str,
    /// `--label`s.
    pub labels: &'a BTreeMap<String, String>,
    /// Where its data lives.
    pub mountpoint: PathBuf,
    /// Its name.
    pub name: &'a str,
    /// None.
    pub options: BTreeMap<String, String>,
    /// Always local.
    pub scope: &'static str,
}

/// `volume inspect`.
pub fn inspect_volume<'a>(store: &VolumeStore, v: &'a Volume) -> VolumeInspect<'a> {
    VolumeInspect {
        created_at: &v.created_at,
        driver: "local",
        labels: &v.labels,
        mountpoint: store.data(&v.name),
        name: &v.name,
        options: BTreeMap::new(),
        scope: "local",
    }
}

/// A container on a network, as `network inspect` lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkEndpoint {
    /// The container's name.
    pub name: String,
    /// Stable ID of the attachment.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Its MAC.
    pub mac_address: String,
    /// CIDR.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// CIDR.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// The containers attached to `n`, by container ID, from the CNI result cache (so
/// attachments another runtime made through netctl's cache show too).
pub fn network_endpoints(engine: &Engine, n: &Network) -> BTreeMap<String, NetworkEndpoint> {
    let mut out = BTreeMap::new();
    for rt in n.attachments(engine) {
        let Ok(Some(r)) = engine.cni.cached_result(&n.name, &rt) else {
            continue;
        };
        let ctr = r.interfaces.iter().find(|i| i.sandbox.is_some());
        let addr = |v4: bool| {
            r.ips
                .iter()
                .find(|ip| ip.address.addr().is_ipv4() == v4)
                .map(|ip| ip.address.to_string())
                .unwrap_or_default()
        };
        // netctl's own containers by their current name (after a rename), others by the
        // name their runtime passed.
        let name = engine
            .containers
            .find(&rt.container_id)
            .ok()
            .map(|c| c.config.name)
            .or_else(|| {
                rt.args
                    .iter()
                    .find(|(k, _)| k == "K8S_POD_NAME")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default();
        let endpoint_id = derived_id(&format!("{}/{}/{}", n.name, rt.container_id, rt.ifname));
        out.insert(
            rt.container_id.clone(),
            NetworkEndpoint {
                name,
                endpoint_id,
                mac_address: ctr.map(|i| i.mac.clone()).unwrap_or_default(),
                ipv4_address: addr(true),
                ipv6_address: addr(false),
            },
        );
    }
    out
}

/// `network inspect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    /// Its name.
    pub name: String,
    /// 64 hex.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// Always local.
    pub scope: &'static str,
    /// Docker's driver name.
    pub driver: String,
    /// `--ipv6`.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Not `--ipv4=false` (Docker 28).
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    /// Its address ranges.
    #[serde(rename = "IPAM")]
    pub ipam: IpamView,
    /// `--internal`.
    pub internal: bool,
    /// Never.
    pub attachable: bool,
    /// Never.
    pub ingress: bool,
    /// Never.
    pub config_from: BTreeMap<String, String>,
    /// Never.
    pub config_only: bool,
    /// What is attached.
    pub containers: BTreeMap<String, NetworkEndpoint>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// The network's own resolvers (podman's `network_dns_servers`).
    #[serde(rename = "NetworkDNSServers", skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<std::net::IpAddr>,
    /// How its subnets' addresses are used (Docker 29's `Status.IPAM.Subnets`); none for a
    /// network whose addresses netctl's IPAM does not hand out here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// A network's IPAM as Docker shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamView {
    /// Always default.
    pub driver: &'static str,
    /// None (Docker's null: no IPAM driver options are taken).
    pub options: Option<BTreeMap<String, String>>,
    /// One entry per range.
    pub config: Vec<IpamRangeView>,
}

/// One range of a network.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamRangeView {
    /// CIDR.
    pub subnet: String,
    /// The gateway.
    pub gateway: String,
    /// `--ip-range`.
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// `--aux-address`es, by name.
    #[serde(rename = "AuxiliaryAddresses", skip_serializing_if = "Option::is_none")]
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

/// `Status.IPAM.Subnets` of a network whose addresses the local IPAM hands out.
fn ipam_status(n: &Network) -> Option<serde_json::Value> {
    let ipam = n.ipam().filter(|c| c.plugin_type == "netctl-ipam")?;
    let usage = netctl_ipam::Allocator::from_config(&n.name, ipam)
        .and_then(|a| a.stored_usage())
        .ok()?;
    let subnets: serde_json::Map<String, serde_json::Value> = usage
        .iter()
        .map(|u| {
            let v = serde_json::json!({"IPsInUse": u.in_use, "DynamicIPsAvailable": u.dynamic_available});
            (u.subnet.to_string(), v)
        })
        .collect();
    Some(serde_json::json!({"IPAM": {"Subnets": subnets}}))
}

/// `network inspect` of one network: its endpoints and address usage too.
pub fn inspect_network(engine: &Engine, n: &Network) -> NetworkInspect {
    NetworkInspect {
        containers: network_endpoints(engine, n),
        status: ipam_status(n),
        ..network_summary(n)
    }
}

/// A network as lists show it (`GET /networks`): no endpoints, no address usage (which
/// would read every network's allocations under their locks).
pub fn network_summary(n: &Network) -> NetworkInspect {
    let mut config = Vec::new();
    if let Some(ipam) = n.ipam() {
        let raw = ipam.ranges.iter().flatten();
        let ranges = ipam.range_sets().unwrap_or_default();
        for (r, raw) in ranges
            .iter()
            .flat_map(|s| s.ranges().to_vec())
            .zip(raw.map(Some).chain(std::iter::repeat(None)))
        {
            config.push(IpamRangeView {
                subnet: r.subnet().to_string(),
                gateway: r.gateway().to_string(),
                ip_range: raw
                    .and_then(|c| c.ip_range.clone())
                    .or_else(|| ipam.ip_range.clone()),
                aux_addresses: raw.filter(|c| !c.auxiliary_addresses.is_empty()).map(|c| {
                    c.auxiliary_addresses
                        .iter()
                        .map(|(n, ip)| (n.clone(), ip.to_string()))
                        .collect()
                }),
            });
        }
    }
    NetworkInspect {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.meta.created.clone(),
        scope: n.scope(),
        driver: n.driver(),
        enable_ipv6: n.meta.enable_ipv6,
        enable_ipv4: !n.meta.disable_ipv4,
        ipam: IpamView {
            driver: "default",
            options: None,
            config,
        },
        internal: n.meta.internal,
        attachable: false,
        ingress: false,
        config_from: [("Network".to_string(), String::new())].into(),
        config_only: false,
        containers: BTreeMap::new(),
        options: n.meta.options.clone(),
        labels: n.meta.labels.clone(),
        status: None,
        dns_servers: n
            .plugins
            .iter()
            .flat_map(|p| p.servers.iter().copied())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::container::{Address, Endpoint, State, Status};
    use serde_json::{json, Value};

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn container(dir: &std::path::Path, state: State) -> Container {
        let config = serde_json::from_value(json!({
            "id": ID, "name": "db", "created": "2026-12-01T00:00:00Z", "image": "ab".repeat(32),
            "image_name": "busybox", "command": ["sleep", "1000"], "entrypoint": [], "env": [],
            "workdir": "/", "hostname": "0123456789ab", "tty": false, "interactive": false,
            "auto_remove": false, "net_mode": "private",
            "networks": [{"name": "app", "aliases": ["database"]}],
            "ports": [{"host_ip": null, "host_port": 0, "container_port": 80, "protocol": "tcp"},
                      {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "protocol": "udp"}],
            "extra_hosts": [["extra", "10.1.2.3"]], "dns": [], "links": [["web", "w"]],
        }))
        .unwrap();
        Container {
            config,
            state,
            dir: dir.join("containers").join(ID),
        }
    }

    fn inspect_json(state: State) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::EngineConfig::new(
            dir.path(),
            &dir.path().join("run"),
            &dir.path().join("netctl"),
        );
        let engine = Engine::open(&config).unwrap();
        serde_json::to_value(inspect(&engine, &container(dir.path(), state))).unwrap()
    }

    #[test]
    fn a_created_container_shows_its_networks_as_asked_without_addresses() {
        let v = inspect_json(State::default());
        assert_eq!(v["State"]["Status"], "created");
        assert_eq!(v["State"]["Running"], false);
        assert_eq!(v["State"]["Pid"], 0);
        assert_eq!(v["Name"], "/db");
        assert_eq!(v["Path"], "sleep");
        assert_eq!(v["Args"], json!(["1000"]));
        let app = &v["NetworkSettings"]["Networks"]["app"];
        assert_eq!(app["IPAddress"], "");
        assert_eq!(app["Aliases"], json!(["database"]), "not started: as asked");
        assert_eq!(
            app["DNSNames"],
            json!(["db", "database", "0123456789ab"]),
            "Docker's order: name, aliases, short ID"
        );
        assert_eq!(v["NetworkSettings"]["IPAddress"], "");
        assert_eq!(v["HostConfig"]["NetworkMode"], "app");
        assert_eq!(
            v["HostConfig"]["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": ""}],
                   "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]})
        );
        assert_eq!(v["HostConfig"]["ExtraHosts"], json!(["extra:10.1.2.3"]));
        assert_eq!(v["HostConfig"]["Links"], json!(["/web:/db/w"]));
        assert_eq!(v["NetworkSettings"]["Ports"], json!({}));
    }

    #[test]
    fn a_running_container_shows_what_it_was_given_and_hides_pending_attachments() {
        let attached = Endpoint {
            network: "app".into(),
            ifname: "eth0".into(),
            addresses: vec![
                Address {
                    net: "172.18.0.2/16".parse().unwrap(),
                    gateway: "172.18.0.1".parse().ok(),
                },
                Address {
                    net: "fd42::2/64".parse().unwrap(),
                    gateway: None,
                },
            ],
            mac: "02:42:ac:12:00:02".into(),
            ..Endpoint::default()
        };
        let state = State {
            status: Status::Running,
            pid: std::process::id(),
            monitor_pid: std::process::id(),
            endpoints: vec![attached, Endpoint::pending("other", "eth1")],
            ports: vec![PortBinding {
                host_ip: None,
                host_port: 32768,
                container_port: 80,
                protocol: netctl_cni::types::Protocol::Tcp,
            }],
            ..State::default()
        };
        let v = inspect_json(state);
        assert_eq!(v["State"]["Status"], "running");
        assert_eq!(v["State"]["Pid"], std::process::id());
        let s = &v["NetworkSettings"];
        let app = &s["Networks"]["app"];
        assert_eq!(app["IPAddress"], "172.18.0.2");
        assert_eq!(app["IPPrefixLen"], 16);
        assert_eq!(app["Gateway"], "172.18.0.1");
        assert_eq!(app["MacAddress"], "02:42:ac:12:00:02");
        // The top level copies the default bridge's endpoint alone, as Docker's does.
        assert_eq!((&s["IPAddress"], &s["Gateway"]), (&json!(""), &json!("")));
        assert_eq!(s["Networks"]["app"]["GlobalIPv6Address"], "fd42::2");
        assert_eq!(s["Networks"]["app"]["IPv6Gateway"], "");
        assert!(s["Networks"].get("other").is_none(), "{s}");
        assert_eq!(
            s["Ports"],
            json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]})
        );
        let key = s["SandboxKey"].as_str().unwrap();
        assert!(key.ends_with(&format!("/run/netns/{ID}")), "{key}");
    }
}
