//! The files a container gets over its /etc: `hosts`, `hostname` and `resolv.conf`, made
//! from its endpoints, links and the host's resolver settings.

use std::fs;
use std::path::Path;

use crate::container::{Container, HostAddr, NetMode};
use crate::engine::Engine;
use crate::error::{Context, Result};

/// Writes /etc/hosts, /etc/hostname and /etc/resolv.conf for the container.
pub fn write(engine: &Engine, c: &Container) -> Result<()> {
    let hostname = if c.config.keeps_host_name() {
        host_hostname()
    } else {
        c.config.hostname.clone()
    };
    let mut hosts = hosts_file(c, &hostname);
    for (name, alias) in &c.config.links {
        let Ok(target) = engine.containers.find(name) else {
            continue;
        };
        hosts.push_str(&link_lines(&target, name, alias));
    }
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_file(&c.dir.join("hostname"), &format!("{hostname}\n"))?;
    write_file(&c.dir.join("hosts"), &hosts)?;
    write_file(&c.dir.join("resolv.conf"), &resolv_file(c, &host_resolv))
}

/// The container's environment with Docker's legacy link variables first (`--link
/// NAME:ALIAS`, for each target that runs): `ALIAS_NAME=/<this>/<alias>`; for each port the
/// target exposes `ALIAS_PORT_<P>_<PROTO>` (a URL) with its `_ADDR`, `_PORT` and `_PROTO`,
/// the lowest port also as `ALIAS_PORT`; and `ALIAS_ENV_<K>` for the target's own variables
/// (but HOME, PATH and HOSTNAME). The container's own variables win over these.
pub fn environment(engine: &Engine, c: &Container) -> Vec<String> {
    let mut env = Vec::new();
    for (name, alias) in &c.config.links {
        let Ok(target) = engine.containers.find(name) else {
            continue;
        };
        env.extend(link_variables(c, &target, alias));
    }
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    env.retain(|e| !c.config.env.iter().any(|own| key(own) == key(e)));
    env.extend(c.config.env.iter().cloned());
    env
}

fn link_variables(c: &Container, target: &Container, alias: &str) -> Vec<String> {
    let prefix = alias.to_uppercase().replace('-', "_");
    let mut out = vec![format!("{prefix}_NAME=/{}/{alias}", c.config.name)];
    let ip = target
        .state
        .endpoints
        .iter()
        .find_map(|e| e.address(true))
        .map(|a| a.net.addr().to_string());
    if let Some(ip) = ip {
        let mut ports = target.config.exposed.clone();
        ports.sort_by_key(|(port, proto)| (*port, proto.to_string()));
        for (i, (port, proto)) in ports.iter().enumerate() {
            let url = format!("{proto}://{ip}:{port}");
            if i == 0 {
                out.push(format!("{prefix}_PORT={url}"));
            }
            let p = format!("{prefix}_PORT_{port}_{}", proto.to_string().to_uppercase());
            out.push(format!("{p}={url}"));
            out.push(format!("{p}_ADDR={ip}"));
            out.push(format!("{p}_PORT={port}"));
            out.push(format!("{p}_PROTO={proto}"));
        }
    }
    for e in &target.config.env {
        if let Some((k, v)) = e.split_once('=') {
            if !matches!(k, "HOME" | "PATH" | "HOSTNAME") {
                out.push(format!("{prefix}_ENV_{k}={v}"));
            }
        }
    }
    out
}

/// Written in place, not renamed over: a running container has these files bind-mounted,
/// and sees the new text only if the same file changes.
fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).ctx(|| format!("write {}", path.display()))
}

/// The host's name, for `--net host`.
pub fn host_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// How /etc/hosts names the container, as Docker does: its FQDN (hostname, with
/// `--domainname` after it) and, when that has a dot, the first label too.
fn own_names(hostname: &str, domainname: &str) -> String {
    let fqdn = if domainname.is_empty() {
        hostname.to_string()
    } else {
        format!("{hostname}.{domainname}")
    };
    match fqdn.split_once('.') {
        Some((first, _)) => format!("{fqdn} {first}"),
        None => fqdn,
    }
}

/// The names podman 5 gives the host in every container's /etc/hosts (Docker's users add
/// the first with `--add-host host.docker.internal:host-gateway`).
const HOST_NAMES: [&str; 2] = ["host.containers.internal", "host.docker.internal"];

/// The host as the container reaches it: the gateway of its first network that has one.
fn host_gateway(c: &Container) -> Option<std::net::IpAddr> {
    c.state
        .endpoints
        .iter()
        .flat_map(|e| &e.addresses)
        .find_map(|a| a.gateway)
}

/// `/etc/hosts`: localhost, `--add-host` entries (`host-gateway` as the host's address on
/// the container's first network), the host's names when no entry takes them, the
/// container's own addresses.
pub fn hosts_file(c: &Container, hostname: &str) -> String {
    let names = own_names(hostname, &c.config.domainname);
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    let gateway = host_gateway(c);
    for (name, addr) in &c.config.extra_hosts {
        let ip = match addr {
            HostAddr::Ip(ip) => Some(*ip),
            HostAddr::HostGateway => gateway,
        };
        if let Some(ip) = ip {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let taken = |n: &str| c.config.extra_hosts.iter().any(|(name, _)| name == n);
    if let Some(gw) = gateway {
        let free: Vec<&str> = HOST_NAMES.into_iter().filter(|n| !taken(n)).collect();
        if !free.is_empty() {
            s.push_str(&format!("{gw}\t{}\n", free.join(" ")));
        }
    }
    for ep in &c.state.endpoints {
        for a in &ep.addresses {
            s.push_str(&format!("{}\t{names}\n", a.net.addr()));
        }
    }
    s
}

/// The lines `--link NAME:ALIAS` adds: the target's addresses with its names.
fn link_lines(target: &Container, name: &str, alias: &str) -> String {
    let names = if alias == name {
        format!("{name} {}", target.config.short_id())
    } else {
        format!("{alias} {} {name}", target.config.short_id())
    };
    target
        .state
        .endpoints
        .iter()
        .flat_map(|e| &e.addresses)
        .map(|a| format!("{}\t{names}\n", a.net.addr()))
        .collect()
}

/// `/etc/resolv.conf`, as Docker writes it: the plugins' nameservers (127.0.0.11 with the
/// embedded server) or else the host's (never a loopback one, which the container cannot
/// reach), and `--dns` unless the network's DNS plugin takes those as the embedded server's
/// upstreams; the plugins' and the host's search domains unless `--dns-search`;
/// the host's options unless `--dns-option`, with `ndots:0` for the embedded server when
/// no `ndots` is given.
pub fn resolv_file(c: &Container, host: &str) -> String {
    let host = HostResolv::parse(host);
    let mut servers: Vec<String> = c
        .state
        .endpoints
        .iter()
        .flat_map(|e| e.nameservers.clone())
        .collect();
    let embedded = servers.iter().any(|s| s == "127.0.0.11");
    if servers.is_empty() && c.config.dns.is_empty() {
        servers.extend(
            host.nameservers
                .iter()
                .filter(|ns| c.config.net_mode == NetMode::Host || !is_loopback(ns))
                .cloned(),
        );
    }
    let forwarded = embedded && c.state.endpoints.iter().any(|e| e.dns_upstreams);
    if !forwarded {
        servers.extend(c.config.dns.iter().map(ToString::to_string));
    }
    servers.dedup();
    let search: Vec<String> = if c.config.dns_search.is_empty() {
        let mut s: Vec<String> = c
            .state
            .endpoints
            .iter()
            .flat_map(|e| e.search.clone())
            .chain(host.search)
            .collect();
        s.dedup();
        s
    } else {
        c.config.dns_search.clone()
    };
    let mut options = if c.config.dns_options.is_empty() {
        host.options
    } else {
        c.config.dns_options.clone()
    };
    if embedded && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut s = String::new();
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in &servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

/// What the host's resolv.conf says.
#[derive(Default)]
struct HostResolv {
    nameservers: Vec<String>,
    search: Vec<String>,
    options: Vec<String>,
}

impl HostResolv {
    /// The last `search` line wins, as in the resolver; `options` lines add up.
    fn parse(text: &str) -> Self {
        let mut r = HostResolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let rest = || line.split_whitespace().skip(1).map(String::from);
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(String::from)),
                Some("search") | Some("domain") => r.search = rest().collect(),
                Some("options") => r.options.extend(rest()),
                _ => {}
            }
        }
        r
    }
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_is_named_by_its_fqdn_and_first_label_as_docker_does() {
        assert_eq!(own_names("web", ""), "web");
        assert_eq!(own_names("web", "example.org"), "web.example.org web");
        assert_eq!(own_names("a.b", ""), "a.b a");
    }
    use crate::container::{Address, Config, Endpoint, State};

    fn container(net_mode: NetMode, endpoints: Vec<Endpoint>, dns: Vec<&str>) -> Container {
        Container {
            config: Config {
                id: "0".repeat(64),
                name: "web".into(),
                command: vec!["sh".into()],
                workdir: "/".into(),
                hostname: "web".into(),
                net_mode,
                extra_hosts: vec![("db".into(), HostAddr::Ip("10.0.0.5".parse().unwrap()))],
                dns: dns.iter().map(|d| d.parse().unwrap()).collect(),
                ..Default::default()
            },
            state: State {
                endpoints,
                ..State::default()
            },
            dir: "/nonexistent".into(),
        }
    }

    fn dns_endpoint(upstreams: bool) -> Endpoint {
        Endpoint {
            network: "app".into(),
            ifname: "eth0".into(),
            addresses: vec![Address {
                net: "172.18.0.2/16".parse().unwrap(),
                gateway: "172.18.0.1".parse().ok(),
            }],
            nameservers: vec!["127.0.0.11".into()],
            dns_upstreams: upstreams,
            ..Endpoint::default()
        }
    }

    const HOST: &str = "search corp.example\nnameserver 127.0.0.53\nnameserver 10.1.1.1\n";

    #[test]
    fn hosts_lists_localhost_added_hosts_and_the_containers_addresses() {
        let h = hosts_file(
            &container(NetMode::Private, vec![dns_endpoint(false)], vec![]),
            "web",
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(
            h.contains("10.0.0.5\tdb\n") && h.ends_with("172.18.0.2\tweb\n"),
            "{h}"
        );
    }

    #[test]
    fn a_dns_network_names_only_the_embedded_server_and_keeps_the_hosts_search_and_options() {
        let r = resolv_file(
            &container(NetMode::Private, vec![dns_endpoint(true)], vec!["9.9.9.9"]),
            HOST,
        );
        assert_eq!(
            r, "search corp.example\nnameserver 127.0.0.11\noptions ndots:0\n",
            "--dns is the server's upstream"
        );
        let r = resolv_file(
            &container(NetMode::Private, vec![dns_endpoint(false)], vec!["9.9.9.9"]),
            HOST,
        );
        assert_eq!(
            r,
            "search corp.example\nnameserver 127.0.0.11\nnameserver 9.9.9.9\noptions ndots:0\n"
        );
        let with_options = format!("{HOST}options edns0 trust-ad\n");
        let r = resolv_file(
            &container(NetMode::Private, vec![dns_endpoint(true)], vec![]),
            &with_options,
        );
        assert!(r.ends_with("options edns0 trust-ad ndots:0\n"), "{r}");
        let own_ndots = format!("{HOST}options ndots:2\n");
        let r = resolv_file(
            &container(NetMode::Private, vec![dns_endpoint(true)], vec![]),
            &own_ndots,
        );
        assert!(
            r.ends_with("options ndots:2\n"),
            "the host's ndots wins: {r}"
        );
    }

    #[test]
    fn dns_search_and_dns_option_replace_the_hosts() {
        let mut c = container(NetMode::Private, vec![dns_endpoint(true)], vec![]);
        c.config.dns_search = vec!["a.test".into(), "b.test".into()];
        c.config.dns_options = vec!["timeout:1".into()];
        let r = resolv_file(&c, &format!("{HOST}options edns0\n"));
        assert_eq!(
            r,
            "search a.test b.test\nnameserver 127.0.0.11\noptions timeout:1 ndots:0\n"
        );
    }

    #[test]
    fn without_dns_the_hosts_resolvers_are_used_but_never_a_loopback_one() {
        let r = resolv_file(&container(NetMode::Private, vec![], vec![]), HOST);
        assert_eq!(r, "search corp.example\nnameserver 10.1.1.1\n");
        let r = resolv_file(&container(NetMode::Host, vec![], vec![]), HOST);
        assert_eq!(
            r, "search corp.example\nnameserver 127.0.0.53\nnameserver 10.1.1.1\n",
            "host mode keeps the host's"
        );
    }
}
