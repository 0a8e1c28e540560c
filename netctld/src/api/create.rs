//! `POST /containers/create`'s body (`Config` with `HostConfig` and `NetworkingConfig`) as
//! the engine's [`ContainerSpec`]: every value through the engine's own parsers, so the API
//! and the command line refuse the same things with the same words.

use std::collections::BTreeMap;

use netctl_engine::container::{Attach, NetworkRequest, PortBinding, Sharing};
use netctl_engine::health::HealthFlags;
use netctl_engine::restart::RestartRequest;
use netctl_engine::runtime::kernel::{self, DeviceMapping, Ulimit};
use netctl_engine::runtime::privileges::Privileges;
use netctl_engine::runtime::resources::Resources;
use netctl_engine::runtime::seccomp::Seccomp;
use netctl_engine::spec::{self, ContainerSpec};
use netctl_engine::volume::{anonymous_volume, parse_mount, parse_tmpfs, parse_volume};
use serde::Deserialize;
use serde_json::Value;

use super::networks::EndpointConfig;
use super::{ApiError, ApiResult};

/// A string list that Docker also accepts as one string (`Cmd`, `Entrypoint`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(untagged)]
pub enum Strings {
    /// `["sh", "-c", "..."]`.
    List(Vec<String>),
    /// `"sh"`.
    One(String),
    /// `null`.
    #[default]
    None,
}

impl Strings {
    fn into_vec(self) -> Option<Vec<String>> {
        match self {
            Strings::List(v) => Some(v),
            Strings::One(s) => Some(vec![s]),
            Strings::None => None,
        }
    }
}

/// The body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    open_stdin: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Strings,
    entrypoint: Strings,
    image: String,
    working_dir: String,
    labels: Option<BTreeMap<String, String>>,
    exposed_ports: Option<BTreeMap<String, Value>>,
    volumes: Option<BTreeMap<String, Value>>,
    stop_signal: String,
    stop_timeout: Option<i64>,
    healthcheck: Option<Healthcheck>,
    mac_address: String,
    host_config: Option<HostConfig>,
    networking_config: Option<NetworkingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Healthcheck {
    test: Option<Vec<String>>,
    interval: i64,
    timeout: i64,
    start_period: i64,
    retries: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile")]
    container_id_file: String,
    network_mode: String,
    port_bindings: Option<BTreeMap<String, Option<Vec<HostPort>>>>,
    restart_policy: Option<RestartPolicy>,
    auto_remove: bool,
    volumes_from: Option<Vec<String>>,
    mounts: Option<Vec<Mount>>,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    dns: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    group_add: Option<Vec<String>>,
    ipc_mode: String,
    pid_mode: String,
    #[serde(rename = "UTSMode")]
    uts_mode: String,
    isolation: String,
    runtime: String,
    links: Option<Vec<String>>,
    privileged: bool,
    publish_all_ports: bool,
    readonly_rootfs: bool,
    security_opt: Option<Vec<String>>,
    tmpfs: Option<BTreeMap<String, String>>,
    shm_size: i64,
    sysctls: Option<BTreeMap<String, String>>,
    init: Option<bool>,
    #[serde(flatten)]
    resources: ResourcesBody,
    ulimits: Option<Vec<UlimitBody>>,
    devices: Option<Vec<DeviceBody>>,
    log_config: Option<LogConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostPort {
    host_ip: String,
    host_port: String,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    name: String,
    maximum_retry_count: i64,
}

impl RestartPolicy {
    /// The engine's request (checked by the engine).
    pub fn request(self) -> RestartRequest {
        RestartRequest {
            name: self.name,
            max_retries: self.maximum_retry_count,
        }
    }
}

/// The limits of `HostConfig`, and of an update's body (Docker's `Resources`): zero is
/// "not given".
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourcesBody {
    memory: i64,
    memory_swap: i64,
    nano_cpus: i64,
    cpu_shares: i64,
    cpu_quota: i64,
    cpu_period: i64,
    pids_limit: Option<i64>,
    cpuset_cpus: String,
    memory_reservation: i64,
    // docker-py spells these `CPURealtime...`; Go's decoder takes any case.
    #[serde(alias = "CPURealtimePeriod")]
    cpu_realtime_period: i64,
    #[serde(alias = "CPURealtimeRuntime")]
    cpu_realtime_runtime: i64,
    device_cgroup_rules: Option<Vec<String>>,
}

impl ResourcesBody {
    /// The engine's limits; `CpuQuota` over `CpuPeriod` (100 ms unless given) is a share
    /// of CPUs, as `NanoCpus` is (the two may not be mixed, as Docker says).
    pub fn resources(&self) -> ApiResult<Resources> {
        if self.nano_cpus > 0 && (self.cpu_quota > 0 || self.cpu_period > 0) {
            return Err(ApiError::bad_request(
                "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
        let period = if self.cpu_period > 0 {
            self.cpu_period
        } else {
            100_000
        };
        let quota_cpus = (self.cpu_quota > 0)
            .then(|| u64::try_from(self.cpu_quota.saturating_mul(1_000_000_000) / period).ok())
            .flatten();
        Ok(Resources {
            memory: positive(self.memory),
            memory_swap: (self.memory_swap != 0).then_some(self.memory_swap),
            nano_cpus: positive(self.nano_cpus).or(quota_cpus),
            cpu_shares: positive(self.cpu_shares),
            pids_limit: self.pids_limit.filter(|&n| n != 0),
            cpuset_cpus: (!self.cpuset_cpus.is_empty()).then(|| self.cpuset_cpus.clone()),
            memory_reservation: positive(self.memory_reservation),
            cpu_rt_period: positive(self.cpu_realtime_period),
            cpu_rt_runtime: positive(self.cpu_realtime_runtime),
            device_cgroup_rules: self.device_cgroup_rules.clone().unwrap_or_default(),
            ..Resources::default()
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Mount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    target: String,
    read_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UlimitBody {
    name: String,
    soft: i64,
    hard: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DeviceBody {
    path_on_host: String,
    path_in_container: String,
    cgroup_permissions: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfig {
    #[serde(rename = "Type")]
    kind: String,
    config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    endpoints_config: Option<BTreeMap<String, Option<EndpointConfig>>>,
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn positive<T: TryFrom<i64>>(n: i64) -> Option<T> {
    (n > 0).then(|| T::try_from(n).ok()).flatten()
}

impl CreateBody {
    /// The engine's spec, named `name` (the `name` query).
    pub fn spec(self, name: Option<String>) -> ApiResult<ContainerSpec> {
        if self.image.is_empty() {
            return Err(ApiError::bad_request("No image was specified"));
        }
        let host = self.host_config.unwrap_or_default();
        let networks = networks(
            &host.network_mode,
            self.networking_config,
            &self.mac_address,
        )?;
        let (entrypoint, command) = command(self.entrypoint, self.cmd);
        let mut mounts = Vec::new();
        for b in host.binds.iter().flatten() {
            mounts.push(parse_volume(b)?);
        }
        for m in host.mounts.iter().flatten() {
            let mut spec = format!("type={},target={}", m.kind, m.target);
            if !m.source.is_empty() {
                spec.push_str(&format!(",source={}", m.source));
            }
            if m.read_only {
                spec.push_str(",readonly");
            }
            mounts.push(parse_mount(&spec)?);
        }
        for (target, options) in host.tmpfs.iter().flatten() {
            mounts.push(parse_tmpfs(&format!("{target}:{options}"))?);
        }
        // `Volumes` asks for anonymous volumes where no bind or mount goes already.
        for path in self.volumes.iter().flat_map(BTreeMap::keys) {
            let v = anonymous_volume(path)?;
            if !mounts.iter().any(|m| m.target == v.target) {
                mounts.push(v);
            }
        }
        let mut publish = Vec::new();
        for (port, hosts) in host.port_bindings.iter().flatten() {
            publish.extend(bindings(port, hosts.as_deref().unwrap_or_default())?);
        }
        let mut expose = Vec::new();
        for port in self.exposed_ports.iter().flat_map(BTreeMap::keys) {
            expose.extend(spec::parse_expose(port)?);
        }
        let restart = host.restart_policy.unwrap_or_default().request();
        let log = host.log_config.unwrap_or_default();
        Ok(ContainerSpec {
            attach: Attach {
                stdin: self.attach_stdin,
                stdout: self.attach_stdout,
                stderr: self.attach_stderr,
            },
            cidfile: some(&host.container_id_file),
            image: self.image,
            name,
            command,
            entrypoint,
            env: self.env.unwrap_or_default(),
            workdir: some(&self.working_dir),
            hostname: some(&self.hostname),
            networks,
            publish,
            publish_all: host.publish_all_ports,
            expose,
            links: host
                .links
                .iter()
                .flatten()
                .map(|l| spec::parse_link(l))
                .collect(),
            add_hosts: host
                .extra_hosts
                .iter()
                .flatten()
                .map(|h| spec::parse_add_host(h))
                .collect::<Result<_, _>>()?,
            dns: host
                .dns
                .iter()
                .flatten()
                .map(|d| {
                    d.parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid DNS server {d}")))
                })
                .collect::<Result<_, _>>()?,
            dns_search: host.dns_search.unwrap_or_default(),
            dns_options: host.dns_options.unwrap_or_default(),
            mounts,
            volumes_from: host
                .volumes_from
                .iter()
                .flatten()
                .map(|v| spec::parse_volumes_from(v))
                .collect::<Result<_, _>>()?,
            interactive: self.open_stdin,
            tty: self.tty,
            auto_remove: host.auto_remove,
            log_driver: match log.kind.as_str() {
                "" | "json-file" => Default::default(),
                "none" => netctl_engine::container::LogDriver::None,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "logger: no log driver named '{other}' is registered"
                    )))
                }
            },
            log_opts: log.config.unwrap_or_default(),
            seccomp: seccomp(host.security_opt.as_deref().unwrap_or_default())?,
            privileges: Privileges {
                user: self.user,
                group_add: host.group_add.unwrap_or_default(),
                cap_add: host.cap_add.unwrap_or_default(),
                cap_drop: host.cap_drop.unwrap_or_default(),
                privileged: host.privileged,
            },
            restart,
            labels: self
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            read_only: host.readonly_rootfs,
            stop_signal: some(&self.stop_signal),
            stop_timeout: self.stop_timeout,
            domainname: some(&self.domainname),
            init: host.init.unwrap_or(false),
            resources: host.resources.resources()?,
            pid_mode: Sharing::parse(&host.pid_mode, false)?,
            ipc_mode: Sharing::parse(ipc(&host.ipc_mode), true)?,
            host_uts: match host.uts_mode.as_str() {
                "" => false,
                "host" => true,
                other => return Err(ApiError::bad_request(format!("invalid UTS mode: {other}"))),
            },
            isolation: host.isolation.clone(),
            runtime: host.runtime.clone(),
            shm_size: positive(host.shm_size),
            ulimits: host
                .ulimits
                .unwrap_or_default()
                .into_iter()
                .map(|u| Ulimit {
                    name: u.name,
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            sysctls: host
                .sysctls
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| kernel::parse_sysctl(&format!("{k}={v}")))
                .collect::<Result<_, _>>()?,
            devices: host
                .devices
                .unwrap_or_default()
                .into_iter()
                .map(|d| DeviceMapping {
                    path_in_container: some(&d.path_in_container)
                        .unwrap_or_else(|| d.path_on_host.clone()),
                    path_on_host: d.path_on_host,
                    cgroup_permissions: some(&d.cgroup_permissions).unwrap_or_else(|| "rwm".into()),
                })
                .collect(),
            health: health(self.healthcheck),
        })
    }
}

/// Docker's default IPC mode for new containers is `private` or `shareable`: both are a
/// namespace of the container's own here.
fn ipc(mode: &str) -> &str {
    match mode {
        "shareable" => "private",
        other => other,
    }
}

/// `Entrypoint` (the engine's is one program; its other words lead the command) and `Cmd`.
fn command(entrypoint: Strings, cmd: Strings) -> (Option<String>, Vec<String>) {
    let cmd = cmd.into_vec().unwrap_or_default();
    match entrypoint.into_vec() {
        Some(words) if words.is_empty() || words == [""] => (Some(String::new()), cmd),
        Some(words) => {
            let mut words = words.into_iter();
            let program = words.next();
            (program, words.chain(cmd).collect())
        }
        None => (None, cmd),
    }
}

/// `PortBindings`' entries for one `PORT/PROTO`, as `-p` specs through the engine's parser.
fn bindings(port: &str, hosts: &[HostPort]) -> ApiResult<Vec<PortBinding>> {
    let mut out = Vec::new();
    for h in hosts {
        let ip = match h.host_ip.as_str() {
            "" => String::new(),
            ip if ip.contains(':') => format!("[{ip}]:"),
            ip => format!("{ip}:"),
        };
        let publish = if ip.is_empty() && h.host_port.is_empty() {
            port.to_string()
        } else {
            format!("{ip}{}:{port}", h.host_port)
        };
        out.extend(spec::parse_publish(&publish)?);
    }
    Ok(out)
}

/// `NetworkMode` first, then the other networks of `EndpointsConfig`, each with its own
/// aliases, addresses and MAC.
fn networks(
    mode: &str,
    config: Option<NetworkingConfig>,
    mac: &str,
) -> ApiResult<Vec<NetworkRequest>> {
    // Docker's "default" network is the bridge.
    let docker_name = |n: &str| match n {
        "" | "default" => "bridge".to_string(),
        other => other.to_string(),
    };
    let endpoints: BTreeMap<String, Option<EndpointConfig>> = config
        .and_then(|c| c.endpoints_config)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (docker_name(&k), v))
        .collect();
    let first = docker_name(mode);
    let first = first.as_str();
    let mut names = vec![first.to_string()];
    names.extend(endpoints.keys().filter(|k| k.as_str() != first).cloned());
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let ep = endpoints.get(&name).cloned().flatten().unwrap_or_default();
        let mac = some(&ep.mac_address).or_else(|| (i == 0).then(|| some(mac)).flatten());
        out.push(NetworkRequest {
            links: ep.links()?,
            link_local_ips: ep.link_local_ips()?,
            ips: ep.ips()?,
            aliases: ep.aliases.unwrap_or_default(),
            mac,
            driver_opts: ep.driver_opts.unwrap_or_default(),
            gw_priority: ep.gw_priority,
            name,
        });
    }
    Ok(out)
}

/// `SecurityOpt`: `seccomp=unconfined` or `seccomp=<profile JSON>` (the docker CLI sends
/// the file's content), and `no-new-privileges`.
fn seccomp(opts: &[String]) -> ApiResult<Seccomp> {
    let mut out = Seccomp::Default;
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .or_else(|| o.split_once(':'))
            .unwrap_or((o.as_str(), ""));
        match (k, v) {
            ("seccomp", "unconfined") => out = Seccomp::Unconfined,
            ("seccomp", profile) if !profile.is_empty() => out = Seccomp::Profile(profile.into()),
            ("no-new-privileges", "" | "true") => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid --security-opt: {o:?} (netctl supports seccomp and no-new-privileges)"
                )))
            }
        }
    }
    Ok(out)
}

/// `Healthcheck` as the `--health-*` flags would give it.
fn health(h: Option<Healthcheck>) -> HealthFlags {
    let Some(h) = h else {
        return HealthFlags::default();
    };
    let ns = |n: i64| (n > 0).then(|| format!("{n}ns"));
    let test = h.test.unwrap_or_default();
    let (cmd, disabled) = match test.split_first() {
        Some((kind, rest)) if kind == "NONE" => (None, rest.is_empty()),
        Some((kind, rest)) if kind == "CMD-SHELL" => (Some(rest.join(" ")), false),
        Some((kind, rest)) if kind == "CMD" => (Some(shell_words(rest)), false),
        _ => (None, false),
    };
    HealthFlags {
        cmd,
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        retries: (h.retries > 0).then_some(h.retries),
        disabled,
    }
}

/// Words as one shell command line, each single-quoted.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(body: Value) -> ApiResult<ContainerSpec> {
        serde_json::from_value::<CreateBody>(body)
            .unwrap()
            .spec(Some("web".into()))
    }

    #[test]
    fn the_docker_clis_run_body_becomes_the_engines_spec() {
        let s = spec(serde_json::json!({
            "Image": "busybox", "Cmd": ["httpd", "-f"], "Env": ["A=1"],
            "ExposedPorts": {"80/tcp": {}}, "Labels": {"tier": "web"},
            "HostConfig": {"NetworkMode": "app", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                           "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                           "Binds": ["data:/data"], "Memory": 0, "Init": null},
            "NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "172.72.0.9"}}}}
        }))
        .unwrap();
        assert_eq!(s.command, ["httpd", "-f"]);
        assert_eq!(s.networks[0].name, "app");
        assert_eq!(s.networks[0].aliases, ["web"]);
        assert_eq!(
            s.networks[0].ips,
            ["172.72.0.9".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            (s.publish[0].host_port, s.publish[0].container_port),
            (8080, 80)
        );
        assert_eq!(
            (s.restart.name.as_str(), s.restart.max_retries),
            ("on-failure", 3)
        );
        assert_eq!(s.labels, ["tier=web"]);
        assert_eq!(s.mounts[0].source, "data");
        assert_eq!(s.resources.memory, None);
    }

    #[test]
    fn entrypoints_lead_the_command_and_an_empty_one_clears_the_images() {
        let s =
            spec(serde_json::json!({"Image": "b", "Entrypoint": ["sh", "-c"], "Cmd": "echo hi"}))
                .unwrap();
        assert_eq!(
            (s.entrypoint.as_deref(), s.command.as_slice()),
            (Some("sh"), &["-c".to_string(), "echo hi".into()][..])
        );
        let s = spec(serde_json::json!({"Image": "b", "Entrypoint": [""]})).unwrap();
        assert_eq!(s.entrypoint.as_deref(), Some(""));
    }

    /// docker-py sends `CPURealtimePeriod`, the docker CLI `CpuRealtimePeriod`: both count.
    #[test]
    fn real_time_limits_are_read_in_both_spellings() {
        for (period, runtime) in [
            ("CPURealtimePeriod", "CPURealtimeRuntime"),
            ("CpuRealtimePeriod", "CpuRealtimeRuntime"),
        ] {
            let s =
                spec(serde_json::json!({"Image": "b", "HostConfig": {period: 1000, runtime: 500}}))
                    .unwrap();
            assert_eq!(
                (s.resources.cpu_rt_period, s.resources.cpu_rt_runtime),
                (Some(1000), Some(500))
            );
        }
    }

    #[test]
    fn wrong_values_are_refused_with_the_engines_words() {
        assert!(spec(serde_json::json!({"Cmd": ["x"]})).is_err(), "no image");
        let e = spec(
            serde_json::json!({"Image": "b", "HostConfig": {"PortBindings": {"99999/tcp": [{"HostPort": "1"}]}}}),
        );
        assert!(e.is_err());
        let e = spec(
            serde_json::json!({"Image": "b", "HostConfig": {"LogConfig": {"Type": "syslog"}}}),
        );
        assert!(e.unwrap_err().message.contains("syslog"));
    }
}
