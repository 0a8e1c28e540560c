//! What the agent changes on this host: each network's VXLAN device, the forwarding and
//! neighbour entries of remote endpoints, remote DNS records for the local DNS server, and
//! the networks' conflists in the engine's store.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use netctl_dnsrecords::{DnsPaths, Record};
use netctl_net::{parse_mac, FdbEntry, Netlink, VxlanSpec};
use netctl_overlay_api::{
    ClusterConfig, EndpointRecord, NetworkSpec, TUNNEL_OVERHEAD, VXLAN_OVERHEAD, VXLAN_PORT,
};
use serde_json::json;

/// The MTU of the link that carries `addr` on this host.
pub fn underlay_mtu(addr: IpAddr) -> Result<u32> {
    let mut nl = Netlink::new()?;
    let owner = nl
        .addresses(None)?
        .into_iter()
        .find(|a| a.net.addr() == addr)
        .ok_or_else(|| anyhow!("no interface of this host has the advertised address {addr}"))?;
    let link = nl
        .link_by_index(owner.index)?
        .ok_or_else(|| anyhow!("the link of {addr} went away"))?;
    Ok(link.mtu.unwrap_or(1500))
}

/// Refused when this host's underlay cannot carry the network's frames (oversized frames
/// would be dropped silently).
pub fn check_underlay(spec: &NetworkSpec, underlay_mtu: u32) -> Result<()> {
    let tunnel = if spec.encrypted { TUNNEL_OVERHEAD } else { 0 };
    let needed = spec.mtu + VXLAN_OVERHEAD + tunnel;
    if underlay_mtu < needed {
        return Err(anyhow!(
            "this host's underlay MTU {underlay_mtu} is too small for overlay network {} (MTU {} needs {needed}): raise it or keep this host out",
            spec.name,
            spec.mtu,
        ));
    }
    Ok(())
}

/// Makes the network's VXLAN device (idempotent), once [`check_underlay`] allows it.
pub fn ensure_vxlan(spec: &NetworkSpec, local: IpAddr, underlay_mtu: u32) -> Result<u32> {
    check_underlay(spec, underlay_mtu)?;
    let mut nl = Netlink::new()?;
    if let Some(l) = nl.link_by_name(&spec.vxlan())? {
        return Ok(l.index);
    }
    let index = nl.add_vxlan(
        &spec.vxlan(),
        &VxlanSpec {
            vni: spec.vni,
            local,
            port: VXLAN_PORT,
            mtu: spec.mtu,
        },
    )?;
    nl.no_ipv6_link_local(index)?;
    nl.set_up(index, true)?;
    Ok(index)
}

/// Removes the network's VXLAN device; gone already is fine.
pub fn remove_vxlan(spec: &NetworkSpec) -> Result<()> {
    let mut nl = Netlink::new()?;
    if nl.link_by_name(&spec.vxlan())?.is_some() {
        nl.del_link_by_name(&spec.vxlan())?;
    }
    Ok(())
}

fn mac_of(e: &EndpointRecord) -> Result<[u8; 6]> {
    parse_mac(&e.mac).ok_or_else(|| {
        anyhow!(
            "endpoint {}:{} has a bad MAC {:?}",
            e.container_id,
            e.ifname,
            e.mac
        )
    })
}

/// Points the endpoint's MAC at its host (`dst`: the host's underlay address, or its tunnel
/// address on an encrypted network) and answers its addresses from the neighbour table.
pub fn program(spec: &NetworkSpec, e: &EndpointRecord, dst: IpAddr) -> Result<()> {
    if !spec.is_overlay() {
        return Ok(()); // a macvlan network's frames cross the LAN itself
    }
    let mut nl = Netlink::new()?;
    let Some(vx) = nl.link_by_name(&spec.vxlan())? else {
        return Ok(()); // not joined here (underlay too small): nothing to point
    };
    let mac = mac_of(e)?;
    nl.fdb_replace(vx.index, &FdbEntry { mac, dst })?;
    for ip in &e.ips {
        nl.neighbour_replace(vx.index, *ip, mac)?;
    }
    Ok(())
}

/// Takes a gone endpoint's entries away, but only those that still point at its host: an
/// address or MAC reused meanwhile by an endpoint in `others` keeps that one's entries.
pub fn unprogram(
    spec: &NetworkSpec,
    gone: &EndpointRecord,
    dst: IpAddr,
    others: &[&EndpointRecord],
) -> Result<()> {
    if !spec.is_overlay() {
        return Ok(());
    }
    let mut nl = Netlink::new()?;
    let Some(vx) = nl.link_by_name(&spec.vxlan())? else {
        return Ok(());
    };
    let mac = mac_of(gone)?;
    let fdb = nl.fdb_entries(vx.index)?;
    let reused_mac = others.iter().any(|o| o.mac == gone.mac);
    if !reused_mac && fdb.iter().any(|f| f.mac == mac && f.dst == dst) {
        nl.fdb_del(vx.index, &FdbEntry { mac, dst })?;
    }
    for ip in &gone.ips {
        match others.iter().find(|o| o.ips.contains(ip)) {
            Some(o) => nl.neighbour_replace(vx.index, *ip, mac_of(o)?)?,
            None => nl.neighbour_del(vx.index, *ip)?,
        }
    }
    Ok(())
}

/// The key a remote endpoint's DNS record is kept under here: `<container>@<host>`, so that
/// a container of the same ID on this host (runtimes name containers as they like) or on a
/// third host never shares its record. What comes from etcd is checked before it names a file.
fn mirror_id(e: &EndpointRecord) -> Result<String> {
    let id = format!("{}@{}", e.container_id, e.host);
    netctl_cni::validate::network_name(&e.network)
        .and_then(|()| netctl_cni::validate::container_id(&e.container_id))
        .and_then(|()| netctl_cni::validate::container_id(&e.host))
        .and_then(|()| netctl_cni::validate::ifname(&e.ifname))
        .map_err(|err| anyhow!("an endpoint record in etcd is not one: {}", err.msg))?;
    Ok(id)
}

/// The local DNS server's record of a remote endpoint (no namespace: nothing listens for it).
fn dns_record(e: &EndpointRecord) -> Result<Record> {
    Ok(Record {
        network: e.network.clone(),
        container_id: mirror_id(e)?,
        ifname: e.ifname.clone(),
        name: e.name.clone(),
        aliases: e.aliases.clone(),
        ips: e.ips.clone(),
        netns: None,
        ..Record::default()
    })
}

/// Writes a remote endpoint's DNS record and tells the local server, if one runs.
pub fn mirror_dns(run_dir: &Path, e: &EndpointRecord) -> Result<()> {
    let paths = DnsPaths::new(run_dir);
    let path = paths.write(&dns_record(e)?)?;
    notify(&paths, &path);
    Ok(())
}

/// Removes a remote endpoint's DNS record.
pub fn unmirror_dns(run_dir: &Path, e: &EndpointRecord) -> Result<()> {
    let paths = DnsPaths::new(run_dir);
    let path = paths.record_path(&e.network, &mirror_id(e)?, &e.ifname);
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
        notify(&paths, &path);
    }
    Ok(())
}

fn notify(paths: &DnsPaths, path: &Path) {
    // No server yet: it reads every record when the first local container starts it.
    let _ = paths.notify(path);
}

/// Where the engine keeps the network's conflist on this host.
fn conflist_path(cfg: &ClusterConfig, name: &str) -> PathBuf {
    cfg.root.join("networks").join(format!("{name}.conflist"))
}

/// What netctl wrote about a network in its conflist (the `netctl` key).
#[derive(serde::Deserialize)]
struct Facts {
    #[serde(default)]
    id: String,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// The part of a conflist that says whose it is.
#[derive(serde::Deserialize)]
struct Head {
    name: String,
    #[serde(default)]
    netctl: Option<Facts>,
}

impl Head {
    /// The ID of the cluster's network this conflist is (an overlay, or a macvlan network
    /// of swarm scope); None for a network of this host's own.
    fn cluster_id(&self) -> Option<&str> {
        self.netctl
            .as_ref()
            .filter(|f| {
                f.driver.as_deref() == Some("overlay") || f.scope.as_deref() == Some("swarm")
            })
            .map(|f| f.id.as_str())
    }
}

/// Who has the conflist at `path`: None when there is none.
fn head(path: &Path) -> Option<Head> {
    std::fs::read(path).ok().map(|b| {
        serde_json::from_slice(&b).unwrap_or(Head {
            name: String::new(),
            netctl: None,
        })
    })
}

/// The names of this host's own networks (every conflist but the overlays').
pub fn local_network_names(cfg: &ClusterConfig) -> Vec<String> {
    let mut names: Vec<String> = netctl_cni::fsutil::written_files(&cfg.root.join("networks"))
        .filter(|(n, _)| n.ends_with(".conflist"))
        .filter_map(|(_, p)| head(&p))
        .filter(|h| h.cluster_id().is_none() && !h.name.is_empty())
        .map(|h| h.name)
        .collect();
    names.sort();
    names
}

/// Refused when this host has a network of its own by the overlay's name: its conflist is
/// never an overlay's to overwrite (or remove).
pub fn check_name_free(cfg: &ClusterConfig, name: &str) -> Result<()> {
    match head(&conflist_path(cfg, name)) {
        Some(h) if h.cluster_id().is_none() => Err(anyhow!(
            "network with name {name} already exists on host {} (a network of that host alone)",
            cfg.host
        )),
        _ => Ok(()),
    }
}

/// The network's options as `network inspect` shows them (`encrypted` as Docker shows it).
fn options(spec: &NetworkSpec) -> BTreeMap<&'static str, String> {
    let mut o = BTreeMap::from([("vni", spec.vni.to_string()), ("mtu", spec.mtu.to_string())]);
    if spec.encrypted {
        o.insert("encrypted", String::new());
    }
    o
}

/// Writes the network's conflist for this host's engine and for other CNI runtimes; never
/// over a conflist of a network of this host's own.
pub fn write_conflist(cfg: &ClusterConfig, spec: &NetworkSpec) -> Result<()> {
    check_name_free(cfg, &spec.name)?;
    let mut ipam = json!({"type": "netctl-overlay", "subnet": spec.subnet.to_string()});
    if let Some(g) = spec.gateway {
        ipam["gateway"] = json!(g);
    }
    if let Some(r) = spec.ip_range {
        ipam["ipRange"] = json!(r.to_string());
    }
    let dns = json!({"type": "netctl-dns", "runDir": cfg.run_dir,
                     "capabilities": {"aliases": true, "dns": true}});
    let list = match &spec.macvlan {
        None => json!({
            "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": spec.name,
            "netctl": {"id": spec.id, "created": spec.created, "driver": "overlay",
                       "options": options(spec)},
            "plugins": [
                {"type": "netctl-overlay", "runDir": cfg.run_dir,
                 "clusterConfig": ClusterConfig::path(&cfg.root), "vni": spec.vni, "mtu": spec.mtu,
                 "capabilities": {"portMappings": true, "ips": true, "aliases": true}, "ipam": ipam},
                dns
            ]
        }),
        Some(m) => {
            // The cluster's IPAM is the overlay plugin asked as an IPAM plugin: it leases
            // from etcd and announces the endpoint (its names) to every host.
            ipam["runDir"] = json!(cfg.run_dir);
            ipam["clusterConfig"] = json!(ClusterConfig::path(&cfg.root));
            json!({
                "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": spec.name,
                "netctl": {"id": spec.id, "created": spec.created, "driver": "macvlan",
                           "scope": "swarm",
                           "options": {"parent": m.parent, "macvlan_mode": m.mode}},
                "plugins": [
                    {"type": "netctl-macvlan", "master": m.parent, "mode": m.mode,
                     "capabilities": {"ips": true, "mac": true, "aliases": true}, "ipam": ipam},
                    dns
                ]
            })
        }
    };
    let path = conflist_path(cfg, &spec.name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(&list)?;
    if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(());
    }
    netctl_cni::fsutil::write_atomic(&path, &bytes)
        .with_context(|| format!("write {}", path.display()))
}

/// Removes the network from this host: its VXLAN device (a bridge port: the bridge goes only
/// once it has none), then its bridge and rules through its plugins (a CNI GC with netctl's
/// remove-network extension), then its conflist.
pub fn remove_network(cfg: &ClusterConfig, spec: &NetworkSpec) -> Result<()> {
    if spec.is_overlay() {
        remove_vxlan(spec)?;
    }
    let path = conflist_path(cfg, &spec.name);
    // Only the overlay's own conflist: a local network of that name is not this one's.
    if head(&path).is_some_and(|h| h.cluster_id() != Some(spec.id.as_str())) {
        return Ok(());
    }
    if let Ok(bytes) = std::fs::read(&path) {
        let list = netctl_cni::NetConfList::from_slice(&bytes)?;
        let plugins_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let cni = netctl_cni::invoke::CniConfig::new(vec![plugins_dir], cfg.root.join("cni-cache"));
        cni.remove_network(&list)?;
        std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    }
    Ok(())
}
