//! `netctl create` / `run` flags, and the container config they make: Docker's rules for
//! commands, environment, network modes, aliases, addresses and published ports.

use std::net::IpAddr;

use anyhow::{bail, Context};
use clap::Args;

use crate::clock::now_rfc3339;
use crate::container::{Config, NetMode, NetworkRequest, PortBinding};
use crate::engine::Engine;
use crate::image::ImageStore;
use crate::network::{random_id, NetworkStore};
use crate::volume::{self, MountKind, MountSpec, VolumeStore};

/// Flags shared by `create` and `run`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from here).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Connect to a network: NAME, bridge, host, none or container:NAME.
    #[arg(long = "network", visible_alias = "net")]
    pub network: Vec<String>,
    /// A network-scoped alias.
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub aliases: Vec<String>,
    /// IPv4 address on the (first) network.
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address on the (first) network.
    #[arg(long)]
    pub ip6: Option<String>,
    /// MAC address on the (first) network.
    #[arg(long = "mac-address")]
    pub mac: Option<String>,
    /// Publish a port: [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Add a link to another container: NAME[:ALIAS].
    #[arg(long)]
    pub link: Vec<String>,
    /// Add a custom host-to-IP mapping (NAME:IP).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Bind mount or volume: /HOST:/CTR[:ro], NAME:/CTR[:ro], /CTR (anonymous).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=...,target=...[,readonly].
    #[arg(long)]
    pub mount: Vec<String>,
    /// A tmpfs at this path.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Every mount of another container: NAME[:ro|rw].
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// The image.
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

const ADJECTIVES: [&str; 24] = [
    "admiring", "bold", "brave", "clever", "cool", "eager", "elegant", "focused", "gallant",
    "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "relaxed", "serene", "sharp",
    "stoic", "tender", "vibrant", "wizardly", "zealous",
];
const NOUNS: [&str; 24] = [
    "babbage", "bell", "cerf", "curie", "dijkstra", "euler", "feynman", "gauss", "hopper",
    "kepler", "knuth", "lamport", "lovelace", "mayer", "noether", "pike", "ritchie", "shannon",
    "thompson", "torvalds", "turing", "volta", "wozniak", "yalow",
];

/// A random `adjective_noun`, with a number when that is taken.
fn random_name(taken: &[String]) -> anyhow::Result<String> {
    let id = random_id()?;
    let n = u64::from_str_radix(&id[..12], 16).unwrap_or(0) as usize;
    let base = format!("{}_{}", ADJECTIVES[n % 24], NOUNS[(n / 24) % 24]);
    Ok((0..)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}{i}")
            }
        })
        .find(|c| !taken.contains(c))
        .unwrap_or(base))
}

/// Docker's rule for container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Parses `-p`: `[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]` (host port 0 = any free one).
pub fn parse_publish(spec: &str) -> anyhow::Result<PortBinding> {
    let bad = || {
        format!("invalid port specification: {spec:?} (use [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp])")
    };
    let (ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    if !matches!(proto, "tcp" | "udp") {
        bail!("invalid proto {proto:?} in {spec:?}: use tcp or udp");
    }
    let (rest, container) = ports.rsplit_once(':').unwrap_or(("", ports));
    let (host_ip, host) = match rest.rsplit_once(':') {
        Some((ip, port)) => (ip.trim_start_matches('[').trim_end_matches(']'), port),
        None if rest.parse::<IpAddr>().is_ok() => (rest, ""),
        None => ("", rest),
    };
    if !host_ip.is_empty() && host_ip.parse::<IpAddr>().is_err() {
        bail!("{}: {host_ip:?} is not an IP address", bad());
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|&n| n > 0).with_context(bad);
    Ok(PortBinding {
        host_ip: host_ip.to_string(),
        host_port: if host.is_empty() { 0 } else { port(host)? },
        container_port: port(container)?,
        protocol: proto.into(),
    })
}

fn env_list(a: &CreateArgs, image_env: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut env = image_env;
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    for file in &a.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("open env file {}", file.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            set(expand_env(line));
        }
    }
    for e in &a.env {
        set(expand_env(e));
    }
    for (k, v) in [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
    ] {
        if !env.iter().any(|e| e.starts_with(&format!("{k}="))) {
            env.push(format!("{k}={v}"));
        }
    }
    Ok(env)
}

/// `KEY` alone takes the value from this process's environment, as Docker does.
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

/// Builds and validates the config of a new container (nothing is written).
pub fn config(engine: &Engine, a: &CreateArgs) -> anyhow::Result<Config> {
    let images = ImageStore::open(&engine.root)?;
    let image = images.find(&a.image)?;
    let all = engine.containers.all()?;
    let name = match &a.name {
        Some(n) if !valid_name(n) => {
            bail!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        Some(n) => {
            // Checked again under the store lock; here so nothing is made for a taken name.
            crate::container::check_name_free(&all, n)?;
            n.clone()
        }
        None => random_name(
            &all.iter()
                .map(|c| c.config.name.clone())
                .collect::<Vec<_>>(),
        )?,
    };
    let id = random_id()?;
    let entrypoint = match &a.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => image.config_list("Entrypoint"),
    };
    let cmd = if !a.command.is_empty() {
        a.command.clone()
    } else if a.entrypoint.is_some() {
        Vec::new()
    } else {
        image.config_list("Cmd")
    };
    let command: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    if command.is_empty() {
        bail!("No command specified: give one after the image, or use an image with a Cmd");
    }
    let hostname = a.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let mut env = env_list(a, image.config_list("Env"))?;
    env.insert(0, format!("HOSTNAME={hostname}"));
    let (net_mode, networks) = networks(engine, a)?;
    let mut ports = a
        .publish
        .iter()
        .map(|p| parse_publish(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if a.publish_all {
        ports.extend(exposed_ports(&image)?);
    }
    match net_mode {
        NetMode::Container(_) if !ports.is_empty() => {
            bail!("conflicting options: port publishing and the container type network mode")
        }
        NetMode::Host | NetMode::None if !ports.is_empty() => {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
            ports.clear();
        }
        _ => {}
    }
    Ok(Config {
        id,
        name,
        created: now_rfc3339(),
        image: image.id.clone(),
        image_name: a.image.clone(),
        command,
        entrypoint,
        env,
        workdir: a
            .workdir
            .clone()
            .or_else(|| {
                image
                    .config("WorkingDir")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        hostname,
        tty: a.tty,
        interactive: a.interactive,
        auto_remove: a.rm,
        net_mode,
        networks,
        ports,
        extra_hosts: add_hosts(&a.add_host)?,
        dns: a.dns.clone(),
        links: links(engine, a)?,
        mounts: mounts(engine, a)?,
    })
}

/// The image's `ExposedPorts` (`"80/tcp": {}`), each to be published on a free host port.
fn exposed_ports(image: &crate::image::Image) -> anyhow::Result<Vec<PortBinding>> {
    let Some(exposed) = image.config("ExposedPorts").and_then(|v| v.as_object()) else {
        return Ok(Vec::new());
    };
    exposed.keys().map(|k| parse_publish(k)).collect()
}

fn add_hosts(specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    specs
        .iter()
        .map(|h| {
            let (name, ip) = h
                .split_once(':')
                .with_context(|| format!("invalid argument {h:?} for --add-host: use NAME:IP"))?;
            ip.parse::<IpAddr>()
                .with_context(|| format!("invalid IP address in add-host: {ip:?}"))?;
            Ok((name.to_string(), ip.to_string()))
        })
        .collect()
}

fn links(engine: &Engine, a: &CreateArgs) -> anyhow::Result<Vec<String>> {
    a.link
        .iter()
        .map(|l| {
            let (name, alias) = l.split_once(':').unwrap_or((l, l));
            let target = engine
                .containers
                .find(name)
                .with_context(|| format!("could not get container for {name}"))?;
            Ok(format!("{}:{alias}", target.config.name))
        })
        .collect()
}

/// Docker's network modes, and the networks to attach in order.
fn networks(engine: &Engine, a: &CreateArgs) -> anyhow::Result<(NetMode, Vec<NetworkRequest>)> {
    let first = a.network.first().map(String::as_str).unwrap_or("bridge");
    let special = |m: NetMode| {
        if a.network.len() > 1 {
            bail!(
                "conflicting options: {first} network mode cannot be combined with other networks"
            );
        }
        if !a.aliases.is_empty() || a.ip.is_some() || a.ip6.is_some() {
            bail!("conflicting options: --ip and --network-alias need a network of their own, not {first}");
        }
        Ok(m)
    };
    if first == "host" {
        return Ok((special(NetMode::Host)?, Vec::new()));
    }
    if let Some(other) = first.strip_prefix("container:") {
        let o = engine.containers.find(other)?;
        return Ok((special(NetMode::Container(o.config.id))?, Vec::new()));
    }
    let store = NetworkStore::open(&engine.root)?;
    let mut reqs = Vec::new();
    for (i, n) in a
        .network
        .iter()
        .map(String::as_str)
        .chain((a.network.is_empty()).then_some("bridge"))
        .enumerate()
    {
        let net = store
            .find(n)
            .map_err(|_| anyhow::anyhow!("network {n} not found"))?;
        let user_defined = !crate::network::PREDEFINED.contains(&net.name.as_str());
        let mut ips: Vec<String> = Vec::new();
        if i == 0 {
            for ip in a.ip.iter().chain(&a.ip6) {
                ip.parse::<IpAddr>()
                    .with_context(|| format!("invalid IP address: {ip:?}"))?;
                ips.push(ip.clone());
            }
        }
        if !user_defined && (!ips.is_empty() || !a.aliases.is_empty()) {
            bail!("user specified IP address and network-scoped aliases are supported only on user defined networks, not on {}", net.name);
        }
        if let Some(mac) = a.mac.as_ref().filter(|_| i == 0) {
            let ok = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|b| u8::from_str_radix(b, 16).is_ok() && b.len() == 2);
            if !ok {
                bail!("invalid MAC address: {mac:?}");
            }
        }
        reqs.push(NetworkRequest {
            name: net.name.clone(),
            aliases: if user_defined {
                a.aliases.clone()
            } else {
                Vec::new()
            },
            ips,
            mac: a.mac.clone().filter(|_| i == 0),
        });
    }
    let mode = if reqs.first().is_some_and(|r| r.name == "none") {
        special(NetMode::None)?
    } else {
        NetMode::Private
    };
    Ok((mode, reqs))
}

/// The container's mounts: `--volumes-from` first, then `-v`, `--mount` and `--tmpfs`; a
/// later mount at the same target replaces an earlier one. Named volumes are created on
/// first use, anonymous ones get a random name, and a missing bind source folder is made.
fn mounts(engine: &Engine, a: &CreateArgs) -> anyhow::Result<Vec<MountSpec>> {
    let mut out: Vec<MountSpec> = Vec::new();
    for from in &a.volumes_from {
        let (name, mode) = from.split_once(':').unwrap_or((from, "rw"));
        if !matches!(mode, "ro" | "rw") {
            bail!("invalid mode {mode:?} for --volumes-from {from}: use ro or rw");
        }
        let other = engine.containers.find(name)?;
        out.extend(other.config.mounts.into_iter().map(|mut m| {
            m.readonly |= mode == "ro";
            m
        }));
    }
    for v in &a.volume {
        out.push(volume::parse_volume(v)?);
    }
    for m in &a.mount {
        out.push(volume::parse_mount(m)?);
    }
    for t in &a.tmpfs {
        out.push(volume::parse_mount(&format!("type=tmpfs,target={t}"))?);
    }
    let mut unique: Vec<MountSpec> = Vec::new();
    for m in out {
        unique.retain(|u| u.target != m.target);
        unique.push(m);
    }
    let store = VolumeStore::open(&engine.root)?;
    for m in &mut unique {
        match m.kind {
            MountKind::Volume => {
                let anonymous = m.source.is_empty();
                let name = (!anonymous).then_some(m.source.as_str());
                m.source = store.create(name, anonymous)?.name;
            }
            MountKind::Bind if !std::path::Path::new(&m.source).exists() => {
                std::fs::create_dir_all(&m.source)
                    .with_context(|| format!("create the bind source {}", m.source))?;
            }
            _ => {}
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_like_docker() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ),
            ("", 8080, 80, "tcp")
        );
        let p = parse_publish("127.0.0.1:8081:80/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.protocol.as_str()),
            ("127.0.0.1", 8081, "udp")
        );
        assert_eq!(parse_publish("80").unwrap().host_port, 0);
        assert_eq!(parse_publish("127.0.0.1::80").unwrap().host_port, 0);
        for bad in [
            "",
            "x:80",
            "8080:80/sctp",
            "70000:80",
            "1.2.3:80:80",
            "8080:0",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_dockers_rules() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-web") && !valid_name("") && !valid_name("a b"));
        let n = random_name(&[]).unwrap();
        assert!(n.contains('_') && valid_name(&n));
    }

    #[test]
    fn publish_all_takes_the_images_exposed_ports() {
        let image = crate::image::Image {
            id: "0".repeat(64),
            tags: Vec::new(),
            layers: Vec::new(),
            record: serde_json::json!({"Config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}}),
        };
        let ports = exposed_ports(&image).unwrap();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| p.host_port == 0));
        assert!(ports
            .iter()
            .any(|p| p.container_port == 53 && p.protocol == "udp"));
    }
}
