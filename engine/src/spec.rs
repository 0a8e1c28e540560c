//! What a new container is asked to be ([`ContainerSpec`], filled by a front end from
//! `create`/`run` flags) and the config it becomes: Docker's rules for commands,
//! environment, network modes, aliases, addresses, published ports and mounts. Also the one
//! parser of published-port specs.

use std::net::IpAddr;
use std::path::Path;

use netctl_cni::types::Protocol;

use crate::clock::now_rfc3339;
use crate::container::{
    check_name_free, Config, HostAddr, LogDriver, NetMode, NetworkRequest, PortBinding, Sharing,
};
use crate::engine::Engine;
use crate::error::{invalid, Error, Kind, Result};
use crate::ids::{check_name, random_id, random_name, short_id};
use crate::image::{Image, ImageStore};
use crate::network::PREDEFINED;
use crate::volume::{MountKind, MountSpec, VolumeStore};

/// Everything `create` and `run` can ask for, as values.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The image (reference or ID).
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// The command after the image.
    pub command: Vec<String>,
    /// `--entrypoint` (empty clears the image's).
    pub entrypoint: Option<String>,
    /// `-e`, `--env-file`: KEY=VALUE, later ones winning.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// The networks to attach, in order, each with its own aliases, addresses and MAC
    /// (Docker's `EndpointsConfig`): NAME, bridge, host, none or container:NAME; none given
    /// means the default bridge.
    pub networks: Vec<NetworkRequest>,
    /// `-p`.
    pub publish: Vec<PortBinding>,
    /// `-P`: every port the image exposes, each on a free host port.
    pub publish_all: bool,
    /// The streams the creating client attaches.
    pub attach: crate::container::Attach,
    /// `--cidfile`: where the client writes the container's ID.
    pub cidfile: Option<String>,
    /// `--expose`: more ports `-P` publishes.
    pub expose: Vec<(u16, Protocol)>,
    /// `--link NAME[:ALIAS]`.
    pub links: Vec<(String, String)>,
    /// `--add-host NAME:IP`.
    pub add_hosts: Vec<(String, HostAddr)>,
    /// `--dns`.
    pub dns: Vec<IpAddr>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `-v`, `--mount`, `--tmpfs`, in order.
    pub mounts: Vec<MountSpec>,
    /// `--volumes-from NAME[:ro]`: the container and whether read-only.
    pub volumes_from: Vec<(String, bool)>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--log-driver`.
    pub log_driver: LogDriver,
    /// `--security-opt seccomp=...`.
    pub seccomp: crate::runtime::seccomp::Seccomp,
    /// `-u`, `--group-add`, `--cap-add`, `--cap-drop`, `--privileged`.
    pub privileges: crate::runtime::privileges::Privileges,
    /// `--restart`, checked when the container is made.
    pub restart: crate::restart::RestartRequest,
    /// `--label`, `--label-file`: KEY=VALUE (KEY alone: an empty value), later ones winning.
    pub labels: Vec<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<i64>,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--init`.
    pub init: bool,
    /// `-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--pids-limit`.
    pub resources: crate::runtime::resources::Resources,
    /// `--pid` (a container named by name or ID).
    pub pid_mode: crate::container::Sharing,
    /// `--ipc` (a container named by name or ID).
    pub ipc_mode: crate::container::Sharing,
    /// `--uts host`.
    pub host_uts: bool,
    /// `--isolation`: empty or `default` (Linux has no other).
    pub isolation: String,
    /// `--runtime`: empty or `runc` (Docker's name for the default runtime).
    pub runtime: String,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// `--ulimit`.
    pub ulimits: Vec<crate::runtime::kernel::Ulimit>,
    /// `--sysctl`, parsed.
    pub sysctls: Vec<(String, String)>,
    /// `--device`.
    pub devices: Vec<crate::runtime::kernel::DeviceMapping>,
    /// `--health-*`, `--no-healthcheck`.
    pub health: crate::health::HealthFlags,
    /// `--log-opt KEY=VALUE`.
    pub log_opts: std::collections::BTreeMap<String, String>,
}

/// Parses a signal as Docker's `kill -s` and `--stop-signal` take it: a name with or
/// without `SIG` in any case (`TERM`, `sigusr1`), or a number.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    let bad = || Error::Invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// The image's labels with the spec's over them (`KEY=VALUE`, or `KEY` for an empty value).
fn labels(spec: &[String], image: &Image) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = image.config.labels.clone();
    for l in spec {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            invalid!("invalid label {l:?}: use KEY=VALUE");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// A new container's config, and what the engine had to drop (for the user to see).
pub struct Planned {
    /// The config, not yet written.
    pub config: Config,
    /// Things asked for that will not happen (ports on a host network ...).
    pub warnings: Vec<String>,
}

/// Parses `-p`: `[HOSTIP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/tcp|udp]`, one binding per
/// container port (host port 0 = any free one). A host range goes with a container range
/// of the same length; a container range alone gets free host ports. IPv6 host addresses
/// are written `[::1]:8080:80` or `:::8080:80`.
pub fn parse_publish(spec: &str) -> Result<Vec<PortBinding>> {
    let bad = || {
        Error::Invalid(format!(
            "invalid port specification: {spec:?} (use [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp])"
        ))
    };
    let (ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let protocol = parse_protocol(proto, spec)?;
    let (rest, container) = ports.rsplit_once(':').unwrap_or(("", ports));
    let (host_ip, host) = match rest.rsplit_once(':') {
        Some((ip, port)) => (ip.trim_start_matches('[').trim_end_matches(']'), port),
        None if rest.parse::<IpAddr>().is_ok() => (rest, ""),
        None => ("", rest),
    };
    let host_ip = match host_ip {
        "" => None,
        ip => Some(ip.parse::<IpAddr>().map_err(|_| {
            Error::Invalid(format!(
                "invalid port specification: {spec:?}: {ip:?} is not an IP address"
            ))
        })?),
    };
    let container = port_range(container).ok_or_else(bad)?;
    let host = match host {
        "" => None,
        h => Some(port_range(h).ok_or_else(bad)?),
    };
    if let Some(h) = host {
        if h.1 - h.0 != container.1 - container.0 {
            invalid!("invalid ranges specified for container and host Ports: {spec:?} (give ranges of the same length)");
        }
    }
    Ok((container.0..=container.1)
        .enumerate()
        .map(|(k, container_port)| PortBinding {
            host_ip,
            host_port: host.map_or(0, |h| h.0 + k as u16),
            container_port,
            protocol,
        })
        .collect())
}

/// `--expose PORT[-END][/tcp|udp]`: the ports, published by `-P`.
pub fn parse_expose(spec: &str) -> Result<Vec<(u16, Protocol)>> {
    let (ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let protocol = parse_protocol(proto, spec)?;
    let (a, b) = port_range(ports).ok_or_else(|| {
        Error::Invalid(format!(
            "invalid range format for --expose: {spec:?} (use PORT[-END][/tcp|udp])"
        ))
    })?;
    Ok((a..=b).map(|p| (p, protocol)).collect())
}

fn parse_protocol(proto: &str, spec: &str) -> Result<Protocol> {
    match proto {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => invalid!("invalid proto {proto:?} in {spec:?}: use tcp or udp"),
    }
}

/// `N` or `N-M` (1-65535, N <= M).
fn port_range(s: &str) -> Option<(u16, u16)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&n| n > 0);
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(s)?, port(s)?),
    };
    (a <= b).then_some((a, b))
}

/// Parses `--link NAME[:ALIAS]`, also as Docker shows it (`/NAME:/CONTAINER/ALIAS`).
pub fn parse_link(spec: &str) -> (String, String) {
    let spec = spec.trim_start_matches('/');
    let (name, alias) = spec.split_once(':').unwrap_or((spec, spec));
    let alias = alias.rsplit('/').next().unwrap_or_default();
    (name.to_string(), alias.to_string())
}

/// Parses a user network's `--link NAME[:ALIAS]` (`EndpointSettings.Links`); both must be
/// container names.
pub fn parse_endpoint_link(spec: &str) -> Result<netctl_dnsrecords::Link> {
    let (name, alias) = parse_link(spec);
    endpoint_link(&name, &alias)
}

/// A user network's link from its parts, both container names.
fn endpoint_link(name: &str, alias: &str) -> Result<netctl_dnsrecords::Link> {
    for n in [name, alias] {
        if !netctl_cni::validate::is_object_name(n) {
            invalid!("invalid link {name}:{alias}: use NAME:ALIAS, both container names");
        }
    }
    Ok(netctl_dnsrecords::Link {
        name: name.into(),
        alias: alias.into(),
    })
}

/// Parses `--add-host NAME:IP` (or `NAME:host-gateway`; an IPv6 address may follow the
/// first colon).
pub fn parse_add_host(spec: &str) -> Result<(String, HostAddr)> {
    let Some((name, ip)) = spec.split_once(':') else {
        invalid!("invalid argument {spec:?} for --add-host: use NAME:IP or NAME:host-gateway");
    };
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid IP address in add-host: {ip:?}")))?;
    Ok((name.to_string(), ip))
}

/// Parses `--volumes-from NAME[:ro|rw]`.
pub fn parse_volumes_from(spec: &str) -> Result<(String, bool)> {
    let (name, mode) = spec.split_once(':').unwrap_or((spec, "rw"));
    match mode {
        "ro" => Ok((name.to_string(), true)),
        "rw" => Ok((name.to_string(), false)),
        _ => invalid!("invalid mode {mode:?} for --volumes-from {spec}: use ro or rw"),
    }
}

/// Builds and checks the config of a new container (nothing is written but the named
/// volumes it uses, made on first use, and missing bind source folders).
pub fn plan(engine: &Engine, spec: &ContainerSpec) -> Result<Planned> {
    let image = ImageStore::open(engine.root())?
        .find(&spec.image)
        .map_err(|e| match e {
            Error::NotFound { .. } => e.context(format!(
                "Unable to find image '{}' locally (pull it with `netctl pull`, or import one with `netctl image import` or `netctl load`)",
                spec.image
            )),
            other => other,
        })?;
    let all = engine.containers.all()?;
    let name = match &spec.name {
        Some(n) => {
            check_name(Kind::Container, n)?;
            // Checked again under the store lock; here so nothing is made for a taken name.
            check_name_free(&all, n)?;
            n.clone()
        }
        None => random_name(
            &all.iter()
                .map(|c| c.config.name.clone())
                .collect::<Vec<_>>(),
        )?,
    };
    let id = random_id()?;
    let (entrypoint, command) = command(spec, &image)?;
    let (net_mode, mut networks) = networks(engine, spec)?;
    // On a user network, `--link` is that network's per-container link (as the docker CLI
    // sends it), not a legacy link: no variables, no /etc/hosts line, the target may come
    // later.
    let legacy_links = match networks.first_mut() {
        Some(first)
            if net_mode == NetMode::Private && !PREDEFINED.contains(&first.name.as_str()) =>
        {
            for (name, alias) in &spec.links {
                let link = endpoint_link(name, alias)?;
                if !first.links.iter().any(|l| l.alias == link.alias) {
                    first.links.push(link);
                }
            }
            Vec::new()
        }
        _ => links(engine, spec)?,
    };
    check_isolation_and_runtime(spec)?;
    if spec.host_uts && spec.hostname.is_some() {
        invalid!("conflicting options: hostname and the UTS mode");
    }
    let hostname = match &net_mode {
        NetMode::Container(other) => {
            shares_the_targets_files(spec)?;
            engine.containers.find(other)?.config.hostname
        }
        _ => spec
            .hostname
            .clone()
            .unwrap_or_else(|| short_id(&id).to_string()),
    };
    if let Some(bad) = spec.env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
        invalid!("invalid environment variable: {bad}");
    }
    let mut env = env_list(&spec.env, &image.config.env);
    env.insert(0, format!("HOSTNAME={hostname}"));
    // A terminal gets Docker's TERM unless one was asked for.
    if spec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let exposed = exposed_ports(&image, &spec.expose)?;
    let mut ports = spec.publish.clone();
    if spec.publish_all {
        // As Docker: only the exposed ports no `-p` bound get a host port.
        let bound = |&&(port, protocol): &&(u16, Protocol)| {
            spec.publish
                .iter()
                .any(|p| p.container_port == port && p.protocol == protocol)
        };
        ports.extend(
            exposed
                .iter()
                .filter(|p| !bound(p))
                .map(|&(container_port, protocol)| PortBinding {
                    host_ip: None,
                    host_port: 0,
                    container_port,
                    protocol,
                }),
        );
    }
    let restart = spec.restart.policy()?;
    if spec.auto_remove && restart != crate::restart::RestartPolicy::No {
        invalid!("Conflicting options: --restart and --rm");
    }
    let mut warnings = Vec::new();
    match net_mode {
        NetMode::Container(_) if !ports.is_empty() => {
            invalid!("conflicting options: port publishing and the container type network mode")
        }
        NetMode::Container(_) if !spec.expose.is_empty() => {
            invalid!("conflicting options: port exposing and the container type network mode")
        }
        NetMode::Host | NetMode::None if !ports.is_empty() => {
            warnings.push("Published ports are discarded when using host network mode".into());
            ports.clear();
        }
        _ => {}
    }
    let config = Config {
        publish_all: spec.publish_all,
        attach: spec.attach,
        cidfile: spec.cidfile.clone().unwrap_or_default(),
        host_uts: spec.host_uts,
        isolation: spec.isolation.clone(),
        runtime: spec.runtime.clone(),
        volumes_from: spec
            .volumes_from
            .iter()
            .map(|(c, ro)| if *ro { format!("{c}:ro") } else { c.clone() })
            .collect(),
        id,
        name,
        created: now_rfc3339(),
        image: image.id.clone(),
        image_name: spec.image.clone(),
        command,
        entrypoint,
        env,
        workdir: spec
            .workdir
            .clone()
            .or_else(|| image.config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        hostname,
        tty: spec.tty,
        interactive: spec.interactive,
        auto_remove: spec.auto_remove,
        seccomp: checked_seccomp(&spec.seccomp, &spec.privileges)?,
        privileges: spec.privileges.clone(),
        net_mode,
        networks,
        ports,
        exposed,
        extra_hosts: spec.add_hosts.clone(),
        dns: spec.dns.clone(),
        dns_search: spec.dns_search.clone(),
        dns_options: spec.dns_options.clone(),
        links: legacy_links,
        mounts: mounts(engine, spec, &image)?,
        log_driver: spec.log_driver,
        restart,
        labels: labels(&spec.labels, &image)?,
        read_only: spec.read_only,
        stop_signal: checked_stop_signal(spec, &image)?,
        stop_timeout: spec.stop_timeout,
        domainname: spec.domainname.clone().unwrap_or_default(),
        init: spec.init,
        resources: spec.resources.clone().checked()?,
        pid_mode: sharing(engine, &spec.pid_mode)?,
        ipc_mode: sharing(engine, &spec.ipc_mode)?,
        shm_size: spec.shm_size,
        ulimits: spec.ulimits.clone(),
        sysctls: spec.sysctls.iter().cloned().collect(),
        devices: checked_devices(&spec.devices)?,
        healthcheck: spec
            .health
            .healthcheck(image.config.healthcheck.as_ref())?
            .or_else(|| image.config.healthcheck.clone()),
        log_opts: spec.log_opts.clone(),
        log_rotation: crate::logs::rotation(spec.log_driver, &spec.log_opts)?,
    };
    crate::runtime::kernel::check_sysctls(
        &config.sysctls,
        matches!(config.net_mode, NetMode::Private | NetMode::None),
        matches!(config.ipc_mode, Sharing::Private | Sharing::Shareable),
    )?;
    warnings.extend(crate::runtime::resources::warnings(&config.resources));
    Ok(Planned { config, warnings })
}

/// `--device`: each host path must be a device node now (it is looked at again at start).
fn checked_devices(
    devices: &[crate::runtime::kernel::DeviceMapping],
) -> Result<Vec<crate::runtime::kernel::DeviceMapping>> {
    use std::os::unix::fs::FileTypeExt;
    for d in devices {
        let kind = std::fs::metadata(&d.path_on_host).map(|m| m.file_type());
        match kind {
            Ok(k) if k.is_char_device() || k.is_block_device() => {}
            Ok(_) => invalid!(
                "error gathering device information while adding custom device {:?}: not a device node",
                d.path_on_host
            ),
            Err(e) => invalid!(
                "error gathering device information while adding custom device {:?}: {e}",
                d.path_on_host
            ),
        }
    }
    Ok(devices.to_vec())
}

/// `--pid` / `--ipc container:NAME` names the container by its ID from here on.
fn sharing(engine: &Engine, asked: &Sharing) -> Result<Sharing> {
    Ok(match asked {
        Sharing::Container(name) => Sharing::Container(engine.containers.find(name)?.config.id),
        other => other.clone(),
    })
}

/// `--stop-signal`, else the image's; refused when it names no signal.
fn checked_stop_signal(spec: &ContainerSpec, image: &Image) -> Result<Option<String>> {
    let asked = spec
        .stop_signal
        .clone()
        .or(image.config.stop_signal.clone());
    if let Some(s) = &asked {
        parse_signal(s)?;
    }
    Ok(asked)
}

/// A profile the user gave is checked when the container is made, not when it starts.
fn checked_seccomp(
    s: &crate::runtime::seccomp::Seccomp,
    privs: &crate::runtime::privileges::Privileges,
) -> Result<crate::runtime::seccomp::Seccomp> {
    privs.check()?;
    crate::runtime::init::filters_for(s, privs)?;
    Ok(s.clone())
}

/// Docker's rule: `--entrypoint` replaces the image's (and its Cmd, unless a command is
/// given); the command replaces the image's Cmd.
fn command(spec: &ContainerSpec, image: &Image) -> Result<(Vec<String>, Vec<String>)> {
    let entrypoint = match &spec.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => image.config.entrypoint.clone(),
    };
    let cmd = if !spec.command.is_empty() {
        spec.command.clone()
    } else if spec.entrypoint.is_some() {
        Vec::new()
    } else {
        image.config.cmd.clone()
    };
    let command: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    if command.is_empty() {
        invalid!("No command specified: give one after the image, or use an image with a Cmd");
    }
    Ok((entrypoint, command))
}

/// The image's environment with the spec's over it, and Docker's PATH default (HOME is
/// the user's, set when the container starts).
fn env_list(spec: &[String], image: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split('=').next().unwrap_or("").to_string();
    let mut env = image.to_vec();
    for kv in spec {
        env.retain(|e| key(e) != key(kv));
        env.push(kv.clone());
    }
    if !env.iter().any(|e| key(e) == "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env
}

/// The image's `ExposedPorts` and `--expose`, without repeats, in order.
fn exposed_ports(image: &Image, expose: &[(u16, Protocol)]) -> Result<Vec<(u16, Protocol)>> {
    let mut all = Vec::new();
    for k in image.config.exposed_ports.keys() {
        all.extend(parse_expose(k)?);
    }
    all.extend_from_slice(expose);
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| seen.insert(*p));
    Ok(all)
}

fn links(engine: &Engine, spec: &ContainerSpec) -> Result<Vec<(String, String)>> {
    spec.links
        .iter()
        .map(|(name, alias)| {
            let target = engine.containers.find(name)?;
            Ok((target.config.name, alias.clone()))
        })
        .collect()
}

/// `--isolation` and `--runtime` as Docker on Linux takes them: nothing or the default.
fn check_isolation_and_runtime(spec: &ContainerSpec) -> Result<()> {
    if !matches!(spec.isolation.as_str(), "" | "default") {
        invalid!(
            "Invalid isolation: {:?} - linux only supports 'default'",
            spec.isolation
        );
    }
    if !matches!(spec.runtime.as_str(), "" | "runc") {
        invalid!("Unknown runtime specified {}", spec.runtime);
    }
    Ok(())
}

/// `--net container:NAME` shares the target's hostname, /etc/hosts and resolv.conf, so
/// what would change them is refused, in Docker's words.
fn shares_the_targets_files(spec: &ContainerSpec) -> Result<()> {
    for (asked, what) in [
        (spec.hostname.is_some(), "hostname"),
        (
            !spec.dns.is_empty() || !spec.dns_search.is_empty() || !spec.dns_options.is_empty(),
            "dns",
        ),
        (spec.networks.iter().any(|r| r.mac.is_some()), "mac-address"),
        (!spec.add_hosts.is_empty(), "custom host-to-IP mapping"),
    ] {
        if asked {
            invalid!("conflicting options: {what} and the network mode");
        }
    }
    Ok(())
}

/// Docker's network modes, and the networks to attach in order.
fn networks(engine: &Engine, spec: &ContainerSpec) -> Result<(NetMode, Vec<NetworkRequest>)> {
    let first = spec.networks.first().map_or("bridge", |r| r.name.as_str());
    let asked = |r: &NetworkRequest| !r.aliases.is_empty() || !r.ips.is_empty();
    let special = |m: NetMode| {
        if spec.networks.len() > 1 {
            invalid!(
                "conflicting options: {first} network mode cannot be combined with other networks"
            );
        }
        if spec
            .networks
            .iter()
            .any(|r| asked(r) || !r.link_local_ips.is_empty())
        {
            invalid!("conflicting options: --ip, --link-local-ip and --network-alias need a network of their own, not {first}");
        }
        Ok(m)
    };
    if first == "host" {
        return Ok((special(NetMode::Host)?, Vec::new()));
    }
    if let Some(other) = first.strip_prefix("container:") {
        if spec.networks.iter().any(|r| !r.aliases.is_empty()) {
            invalid!("network-scoped aliases are only supported for user-defined networks");
        }
        let o = engine.containers.find(other)?;
        return Ok((special(NetMode::Container(o.config.id))?, Vec::new()));
    }
    let store = engine.networks()?;
    let default = [NetworkRequest::plain("bridge")];
    let asked_for = if spec.networks.is_empty() {
        &default[..]
    } else {
        &spec.networks[..]
    };
    let mut reqs = Vec::new();
    for req in asked_for {
        if let Some(mac) = &req.mac {
            check_mac(mac)?;
        }
        let net = store.find(&req.name)?;
        if PREDEFINED.contains(&net.name.as_str()) && asked(req) {
            invalid!("user specified IP address and network-scoped aliases are supported only on user defined networks, not on {}", net.name);
        }
        reqs.push(NetworkRequest {
            name: net.name.clone(),
            ..req.clone()
        });
    }
    let mode = if reqs.first().is_some_and(|r| r.name == "none") {
        special(NetMode::None)?
    } else {
        NetMode::Private
    };
    Ok((mode, reqs))
}

/// `aa:bb:cc:dd:ee:ff` (the one MAC parser, netctl-net's).
fn check_mac(mac: &str) -> Result<()> {
    match netctl_net::parse_mac(mac) {
        Some(_) => Ok(()),
        None => invalid!("invalid MAC address: {mac:?}"),
    }
}

/// The container's mounts: the image's `VOLUME`s first (each an anonymous volume, as
/// `-v PATH` makes), then `--volumes-from`, then the spec's; a later mount at the same
/// target replaces an earlier one. Named volumes are created on first use, anonymous ones
/// get a random name, and a missing bind source folder is made.
fn mounts(engine: &Engine, spec: &ContainerSpec, image: &Image) -> Result<Vec<MountSpec>> {
    let mut out: Vec<MountSpec> = Vec::new();
    for path in image.config.volumes() {
        out.push(crate::volume::anonymous_volume(&path)?);
    }
    for (name, ro) in &spec.volumes_from {
        let other = engine.containers.find(name)?;
        out.extend(other.config.mounts.into_iter().map(|mut m| {
            m.readonly |= *ro;
            m.mode = None;
            m
        }));
    }
    out.extend(spec.mounts.iter().cloned());
    let mut unique: Vec<MountSpec> = Vec::new();
    for m in out {
        unique.retain(|u| u.target != m.target);
        unique.push(m);
    }
    let store = VolumeStore::open(engine.root())?;
    for m in &mut unique {
        match m.kind {
            MountKind::Volume => {
                let anonymous = m.source.is_empty();
                let name = (!anonymous).then_some(m.source.as_str());
                m.source = store.create(name, anonymous)?.name;
                m.anonymous |= anonymous;
            }
            MountKind::Bind if !Path::new(&m.source).exists() => {
                std::fs::create_dir_all(&m.source)
                    .map_err(|e| Error::io(format!("create the bind source {}", m.source), e))?;
            }
            _ => {}
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortBinding {
        let mut all = parse_publish(spec).unwrap();
        assert_eq!(all.len(), 1, "{spec}");
        all.remove(0)
    }

    #[test]
    fn publish_specs_parse_like_docker() {
        let p = one("8080:80");
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.protocol),
            (None, 8080, 80, Protocol::Tcp)
        );
        let p = one("127.0.0.1:8081:80/udp");
        assert_eq!(
            (p.host_ip, p.host_port, p.protocol),
            (Some("127.0.0.1".parse().unwrap()), 8081, Protocol::Udp)
        );
        assert_eq!(one("80").host_port, 0);
        assert_eq!(one("127.0.0.1::80").host_port, 0);
        assert_eq!(one("[::1]:8082:80").host_ip, Some("::1".parse().unwrap()));
        let v6 = one(":::8083:80");
        assert_eq!(
            (v6.host_ip, v6.host_port),
            (Some("::".parse().unwrap()), 8083)
        );
        let range: Vec<(u16, u16)> = parse_publish("9000-9002:7000-7002")
            .unwrap()
            .iter()
            .map(|p| (p.host_port, p.container_port))
            .collect();
        assert_eq!(range, [(9000, 7000), (9001, 7001), (9002, 7002)]);
        let any: Vec<u16> = parse_publish("7000-7001/udp")
            .unwrap()
            .iter()
            .map(|p| p.host_port)
            .collect();
        assert_eq!(any, [0, 0]);
        for bad in [
            "",
            "x:80",
            "8080:80/sctp",
            "70000:80",
            "1.2.3:80:80",
            "8080:0",
            "9000-9001:7000-7002",
            "7002-7000",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_expose("7000-7001/udp").unwrap(),
            [(7000, Protocol::Udp), (7001, Protocol::Udp)]
        );
        assert!(parse_expose("x").is_err());
    }

    #[test]
    fn env_takes_the_specs_values_over_the_images_and_keeps_path() {
        let env = env_list(
            &["A=2".into(), "B=x=y".into()],
            &["A=1".into(), "PATH=/bin".into()],
        );
        assert_eq!(env, ["PATH=/bin", "A=2", "B=x=y"]);
    }

    #[test]
    fn small_specs_parse_or_say_why() {
        assert_eq!(parse_link("db:data"), ("db".into(), "data".into()));
        assert_eq!(parse_link("db"), ("db".into(), "db".into()));
        assert_eq!(parse_link("/db:/app/data"), ("db".into(), "data".into()));
        assert_eq!(
            parse_add_host("h:10.0.0.1").unwrap().1.to_string(),
            "10.0.0.1"
        );
        assert!(parse_add_host("h").is_err() && parse_add_host("h:x").is_err());
        assert_eq!(parse_volumes_from("c:ro").unwrap(), ("c".into(), true));
        assert!(parse_volumes_from("c:rx").is_err());
        assert!(check_mac("02:42:ac:11:00:02").is_ok() && check_mac("02:42").is_err());
    }
}
