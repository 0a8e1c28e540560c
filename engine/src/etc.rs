//! The files a container gets over its /etc: `hosts`, `hostname` and `resolv.conf`, made
//! from its endpoints, links and the host's resolver settings.

use std::fs;
use std::path::Path;

use crate::container::{Container, NetMode};
use crate::engine::Engine;
use crate::error::{Context, Result};

/// Writes /etc/hosts, /etc/hostname and /etc/resolv.conf for the container.
pub fn write(engine: &Engine, c: &Container) -> Result<()> {
    let hostname = if c.config.net_mode == NetMode::Host {
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

/// `/etc/hosts`: localhost, `--add-host` entries, the container's own addresses.
pub fn hosts_file(c: &Container, hostname: &str) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in &c.config.extra_hosts {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    for ep in &c.state.endpoints {
        for a in &ep.addresses {
            s.push_str(&format!("{}\t{hostname}\n", a.net.addr()));
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

/// `/etc/resolv.conf`: 127.0.0.11 on networks with DNS, else the host's resolvers (never a
/// loopback one, which would be the container's own). `--dns` servers are the embedded
/// server's upstreams for this container when the network's DNS plugin takes the `dns`
/// capability (as Docker's embedded DNS does), else they are written here.
pub fn resolv_file(c: &Container, host: &str) -> String {
    let mut servers: Vec<String> = c
        .state
        .endpoints
        .iter()
        .flat_map(|e| e.nameservers.clone())
        .collect();
    let mut search: Vec<String> = c
        .state
        .endpoints
        .iter()
        .flat_map(|e| e.search.clone())
        .collect();
    let embedded = servers.iter().any(|s| s == "127.0.0.11");
    if servers.is_empty() && c.config.dns.is_empty() {
        for line in host.lines() {
            let mut w = line.split_whitespace();
            match (w.next(), w.next()) {
                (Some("nameserver"), Some(ns))
                    if c.config.net_mode == NetMode::Host || !is_loopback(ns) =>
                {
                    servers.push(ns.into())
                }
                (Some("search"), Some(_)) => {
                    search.extend(line.split_whitespace().skip(1).map(String::from))
                }
                _ => {}
            }
        }
    }
    let forwarded = embedded && c.state.endpoints.iter().any(|e| e.dns_upstreams);
    if !forwarded {
        servers.extend(c.config.dns.iter().map(ToString::to_string));
    }
    servers.dedup();
    let mut s = String::new();
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in &servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if embedded {
        s.push_str("options ndots:0\n");
    }
    s
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Address, Config, Endpoint, State};

    fn container(net_mode: NetMode, endpoints: Vec<Endpoint>, dns: Vec<&str>) -> Container {
        Container {
            config: Config {
                id: "0".repeat(64),
                name: "web".into(),
                created: String::new(),
                image: String::new(),
                image_name: String::new(),
                command: vec!["sh".into()],
                entrypoint: Vec::new(),
                env: Vec::new(),
                workdir: "/".into(),
                hostname: "web".into(),
                tty: false,
                interactive: false,
                auto_remove: false,
                net_mode,
                networks: Vec::new(),
                ports: Vec::new(),
                extra_hosts: vec![("db".into(), "10.0.0.5".parse().unwrap())],
                dns: dns.iter().map(|d| d.parse().unwrap()).collect(),
                links: Vec::new(),
                mounts: Vec::new(),
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
    fn a_dns_network_names_only_the_embedded_server() {
        let r = resolv_file(
            &container(NetMode::Private, vec![dns_endpoint(true)], vec!["9.9.9.9"]),
            HOST,
        );
        assert_eq!(
            r, "nameserver 127.0.0.11\noptions ndots:0\n",
            "--dns is the server's upstream"
        );
        let r = resolv_file(
            &container(NetMode::Private, vec![dns_endpoint(false)], vec!["9.9.9.9"]),
            HOST,
        );
        assert_eq!(
            r,
            "nameserver 127.0.0.11\nnameserver 9.9.9.9\noptions ndots:0\n"
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
