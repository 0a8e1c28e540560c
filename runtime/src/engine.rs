//! The engine: where state lives, and a container's networking through the CNI client —
//! a network namespace bind-mounted under the run directory, ADD per network in order
//! (eth0, eth1 ...), DEL in reverse, and the /etc files that follow from the results.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use netctl_cni::invoke::{CniConfig, RuntimeConf};
use netctl_cni::Success;
use netctl_net::NetNs;
use serde_json::{json, Map};

use crate::container::{
    Container, ContainerStore, Endpoint, NetMode, NetworkRequest, PortBinding, StoreLock,
};
use crate::network::NetworkStore;

/// Paths and stores shared by every command.
pub struct Engine {
    /// Persistent state.
    pub root: PathBuf,
    /// Runtime state.
    pub run_dir: PathBuf,
    /// The containers.
    pub containers: ContainerStore,
    /// The CNI client (plugins beside this binary, results cached under the root).
    pub cni: CniConfig,
}

impl Engine {
    /// The engine over a root and run directory.
    pub fn open(root: &Path, run_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            containers: ContainerStore::open(root)?,
            cni: crate::cni_client(root, &[], None),
        })
    }

    /// Where a container's network namespace is bind-mounted.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.run_dir.join("netns").join(id)
    }

    /// The namespace the container's process joins: its own, another container's, or none
    /// (the host's).
    pub fn netns_of(&self, c: &Container) -> anyhow::Result<Option<PathBuf>> {
        Ok(match &c.config.net_mode {
            NetMode::Host => None,
            NetMode::Private | NetMode::None => Some(self.netns_path(&c.config.id)),
            NetMode::Container(other) => {
                let o = self.containers.find(other)?;
                if !o.is_running() {
                    bail!(
                        "cannot join network of a non running container: {}",
                        o.config.name
                    );
                }
                Some(PathBuf::from(format!("/proc/{}/ns/net", o.state.pid)))
            }
        })
    }

    fn runtime_conf(
        &self,
        c: &Container,
        req: &NetworkRequest,
        ifname: &str,
        ports: &[PortBinding],
    ) -> RuntimeConf {
        let mut caps = Map::new();
        let mut aliases = req.aliases.clone();
        aliases.push(c.config.short_id().to_string());
        caps.insert("aliases".into(), json!({ req.name.clone(): aliases }));
        if !ports.is_empty() {
            let maps: Vec<_> = ports
                .iter()
                .map(|p| {
                    let mut m = json!({"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol});
                    if !p.host_ip.is_empty() {
                        m["hostIP"] = json!(p.host_ip);
                    }
                    m
                })
                .collect();
            caps.insert("portMappings".into(), json!(maps));
        }
        if !req.ips.is_empty() {
            caps.insert("ips".into(), json!(req.ips));
        }
        if let Some(mac) = &req.mac {
            caps.insert("mac".into(), json!(mac));
        }
        if !c.config.dns.is_empty() {
            caps.insert("dns".into(), json!({"servers": c.config.dns}));
        }
        RuntimeConf {
            container_id: c.config.id.clone(),
            netns: Some(self.netns_path(&c.config.id)),
            ifname: ifname.into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), c.config.name.clone()),
            ],
            capability_args: caps,
        }
    }

    /// ADD of one network; the ports go with it when given.
    pub fn attach(
        &self,
        c: &Container,
        req: &NetworkRequest,
        ifname: &str,
        ports: &[PortBinding],
    ) -> anyhow::Result<Endpoint> {
        let list = NetworkStore::open(&self.root)?.find(&req.name)?.list()?;
        for (asked, cap, flag) in [
            (!req.ips.is_empty(), "ips", "--ip"),
            (!ports.is_empty(), "portMappings", "-p"),
        ] {
            if asked && !declares(&list, cap) {
                bail!("network {}: {flag} cannot be honoured: no plugin of its conflist declares the {cap:?} capability", req.name);
            }
        }
        let rt = self.runtime_conf(c, req, ifname, ports);
        let result = self
            .cni
            .add(&list, &rt)
            .map_err(|e| anyhow::anyhow!("network {}: {e}", req.name))?;
        let mut ep = endpoint(&req.name, ifname, &result);
        ep.dns_upstreams = declares(&list, "dns");
        Ok(ep)
    }

    /// DEL of one network, with the same runtime config as its ADD (the published ports go
    /// with eth0); DEL succeeds when things are already gone.
    pub fn detach(&self, c: &Container, req: &NetworkRequest, ifname: &str) -> anyhow::Result<()> {
        let list = NetworkStore::open(&self.root)?.find(&req.name)?.list()?;
        let ports = if ifname == "eth0" {
            c.state.ports.as_slice()
        } else {
            &[]
        };
        let rt = self.runtime_conf(c, req, ifname, ports);
        self.cni
            .del(&list, &rt)
            .map_err(|e| anyhow::anyhow!("network {}: {e}", req.name))
    }

    /// ADD of one network, recorded: the endpoint is saved as pending before ADD runs (so a
    /// killed attach is known and repaired by DEL later), ADD runs with the container's lock
    /// shared with the plugins, and its result replaces the pending record. A failed ADD is
    /// followed by DEL, as runtimes do, and leaves no record.
    pub fn attach_recorded(
        &self,
        c: &mut Container,
        lock: &StoreLock,
        req: &NetworkRequest,
        ifname: &str,
        ports: &[PortBinding],
    ) -> anyhow::Result<()> {
        let _gc = self.containers.attach_lock(false)?;
        c.state.endpoints.push(Endpoint::pending(&req.name, ifname));
        c.save_state()?;
        let result = lock.shared_with_children(|| self.attach(c, req, ifname, ports));
        let pos = c
            .state
            .endpoints
            .iter()
            .position(|e| e.pending && e.ifname == ifname)
            .context("the pending endpoint vanished")?;
        match result {
            Ok(ep) => {
                c.state.endpoints[pos] = ep;
                c.save_state()
            }
            Err(e) => {
                let _ = lock.shared_with_children(|| self.detach(c, req, ifname));
                c.state.endpoints.remove(pos);
                let _ = c.save_state();
                Err(e)
            }
        }
    }

    /// Makes the namespace and attaches every network in order; on failure undoes what was
    /// done, in reverse, and returns the error.
    pub fn setup_network(&self, c: &mut Container, lock: &StoreLock) -> anyhow::Result<()> {
        c.state.endpoints.clear();
        if !matches!(c.config.net_mode, NetMode::Private | NetMode::None) {
            return Ok(());
        }
        let path = self.netns_path(&c.config.id);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let ns = NetNs::create(&path)?;
        let lo_up = ns.run(|| {
            let mut nl = netctl_net::Netlink::new()?;
            match nl.link_by_name("lo")? {
                Some(lo) => nl.set_up(lo.index, true),
                None => Ok(()),
            }
        });
        if let Err(e) = lo_up
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from))
        {
            let _ = NetNs::remove(&path);
            return Err(e.context("bring up loopback in the container"));
        }
        let reqs = c.config.networks.clone();
        for (i, req) in reqs.iter().enumerate() {
            let ports = if i == 0 {
                c.state.ports.clone()
            } else {
                Vec::new()
            };
            if let Err(e) = self.attach_recorded(c, lock, req, &format!("eth{i}"), &ports) {
                self.teardown_network(c, lock);
                return Err(e);
            }
        }
        Ok(())
    }

    /// DEL of every attached network in reverse (pending ones too: DEL is safe for an ADD
    /// that never finished), then the namespace goes. Failures are reported and the rest
    /// still runs; the endpoints stay recorded until the caller saves the state.
    pub fn teardown_network(&self, c: &mut Container, lock: &StoreLock) {
        let endpoints = std::mem::take(&mut c.state.endpoints);
        for ep in endpoints.iter().rev() {
            let req = self.request_of(c, &ep.network);
            if let Err(e) = lock.shared_with_children(|| self.detach(c, &req, &ep.ifname)) {
                eprintln!(
                    "netctl: detach {} from {}: {e:#}",
                    c.config.name, ep.network
                );
            }
        }
        if matches!(c.config.net_mode, NetMode::Private | NetMode::None) {
            let _ = NetNs::remove(&self.netns_path(&c.config.id));
        }
    }

    /// What the container asked of a network (aliases, addresses), for its DEL.
    pub fn request_of(&self, c: &Container, network: &str) -> NetworkRequest {
        c.config
            .networks
            .iter()
            .find(|n| n.name == network)
            .cloned()
            .unwrap_or_else(|| NetworkRequest {
                name: network.into(),
                aliases: Vec::new(),
                ips: Vec::new(),
                mac: None,
            })
    }

    /// Writes /etc/hosts, /etc/hostname and /etc/resolv.conf for the container.
    pub fn write_etc(&self, c: &Container) -> anyhow::Result<()> {
        let hostname = if c.config.net_mode == NetMode::Host {
            host_hostname()
        } else {
            c.config.hostname.clone()
        };
        let mut hosts = hosts_file(c, &hostname);
        for link in &c.config.links {
            let (name, alias) = link.split_once(':').unwrap_or((link, link));
            let Ok(target) = self.containers.find(name) else {
                continue;
            };
            let names = if alias == name {
                format!("{name} {}", target.config.short_id())
            } else {
                format!("{alias} {} {name}", target.config.short_id())
            };
            for ip in target.state.endpoints.iter().flat_map(|e| &e.ips) {
                let addr = ip.split('/').next().unwrap_or(ip);
                hosts.push_str(&format!("{addr}\t{names}\n"));
            }
        }
        write(&c.dir.join("hostname"), &format!("{hostname}\n"))?;
        write(&c.dir.join("hosts"), &hosts)?;
        write(&c.dir.join("resolv.conf"), &resolv_file(c))
    }
}

/// Whether a plugin of the conflist declares a CNI capability (only those get it).
fn declares(list: &netctl_cni::NetConfList, cap: &str) -> bool {
    list.plugins.iter().any(|p| {
        p.get("capabilities")
            .and_then(|c| c.get(cap))
            .and_then(serde_json::Value::as_bool)
            == Some(true)
    })
}

/// Written in place, not renamed over: a running container has these files bind-mounted,
/// and sees the new text only if the same file changes.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn endpoint(network: &str, ifname: &str, r: &Success) -> Endpoint {
    let ctr = r
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_some() && i.name == ifname);
    Endpoint {
        network: network.into(),
        ifname: ifname.into(),
        ips: r.ips.iter().map(|i| i.address.to_string()).collect(),
        gateways: r
            .ips
            .iter()
            .map(|i| i.gateway.map(|g| g.to_string()).unwrap_or_default())
            .collect(),
        mac: ctr.map(|i| i.mac.clone()).unwrap_or_default(),
        nameservers: r.dns.nameservers.clone(),
        search: r.dns.search.clone(),
        dns_upstreams: false,
        pending: false,
    }
}

/// The host's name, for `--net host`.
pub fn host_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn hosts_file(c: &Container, hostname: &str) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in &c.config.extra_hosts {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    for ep in &c.state.endpoints {
        for ip in &ep.ips {
            let addr = ip.split('/').next().unwrap_or(ip);
            s.push_str(&format!("{addr}\t{hostname}\n"));
        }
    }
    s
}

/// 127.0.0.11 on networks with DNS, else the host's resolvers (never a loopback one, which
/// would be the container's own). `--dns` servers are the embedded server's upstreams for
/// this container when the network's DNS plugin takes the `dns` capability (as Docker's
/// embedded DNS does), else they are written here.
fn resolv_file(c: &Container) -> String {
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
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
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
        servers.extend(c.config.dns.iter().cloned());
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

impl Engine {
    /// Removes a container that is not running: its networks (if any are left), its
    /// namespace and its folder; with `volumes`, its anonymous volumes too (`rm -v`, `--rm`).
    pub fn remove_container(
        &self,
        c: &mut Container,
        lock: &StoreLock,
        volumes: bool,
    ) -> anyhow::Result<()> {
        if !c.state.endpoints.is_empty() {
            self.teardown_network(c, lock);
        }
        fs::remove_dir_all(&c.dir).with_context(|| format!("remove {}", c.dir.display()))?;
        if let Some(cg) = crate::cgroup::Cgroup::of(&c.config.id) {
            cg.remove();
        }
        if volumes {
            let store = crate::volume::VolumeStore::open(&self.root)?;
            for m in &c.config.mounts {
                if store.get(&m.source).is_ok_and(|v| v.anonymous)
                    && self.volume_users(&m.source)?.is_empty()
                {
                    store.remove(&m.source, &[])?;
                }
            }
        }
        Ok(())
    }

    /// Names of the containers whose mounts use a volume.
    pub fn volume_users(&self, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .containers
            .all()?
            .into_iter()
            .filter(|c| {
                c.config
                    .mounts
                    .iter()
                    .any(|m| m.kind == crate::volume::MountKind::Volume && m.source == name)
            })
            .map(|c| c.config.name)
            .collect())
    }
}
