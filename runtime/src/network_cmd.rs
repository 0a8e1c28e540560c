//! `netctl network ...`: Docker's network commands, flags and output.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use netctl_firewall::{Firewall, NetworkRules, Nftables};
use serde_json::{json, Value};

use crate::container::{NetMode, NetworkRequest};
use crate::engine::Engine;
use crate::network::{create, key_values, CreateRequest, Network, NetworkStore, PREDEFINED};

/// The network commands.
#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network; prints its ID.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON.
    Inspect {
        /// Names or IDs (unique prefixes work).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every user network no container uses.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network: a new interface at once if it runs.
    Connect {
        /// A network-scoped alias; repeatable.
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Also when it is not connected.
        #[arg(short, long)]
        force: bool,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Put back every network's firewall rules (after `nft flush ruleset` or a firewalld
    /// reload) by asking each network's plugins for their STATUS.
    Repair,
}

/// `network create` flags, as Docker spells them.
#[derive(Args)]
pub struct CreateArgs {
    /// bridge or macvlan.
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// A subnet in CIDR form; repeat for IPv4 and IPv6.
    #[arg(long)]
    subnet: Vec<String>,
    /// Hand out container addresses from this sub-range (CIDR inside --subnet).
    #[arg(long = "ip-range")]
    ip_range: Option<String>,
    /// The gateway (default: the first address of the subnet).
    #[arg(long)]
    gateway: Option<String>,
    /// Give the network an IPv6 subnet too.
    #[arg(long)]
    ipv6: bool,
    /// No access to or from outside the network.
    #[arg(long)]
    internal: bool,
    /// KEY=VALUE metadata; repeatable.
    #[arg(long)]
    label: Vec<String>,
    /// Driver options KEY=VALUE: com.docker.network.bridge.name (or bridge), parent, macvlan_mode.
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// The network's name.
    name: String,
}

/// `network ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Only IDs.
    #[arg(short, long)]
    quiet: bool,
    /// driver=X or name=X; repeatable.
    #[arg(short, long)]
    filter: Vec<String>,
    /// `json` for one JSON object per line.
    #[arg(long)]
    format: Option<String>,
}

/// Runs a network command.
pub fn run(root: &Path, run_dir: &Path, cmd: NetworkCommand) -> anyhow::Result<()> {
    let store = NetworkStore::open(root)?;
    match cmd {
        NetworkCommand::Create(a) => {
            let req = CreateRequest {
                name: a.name,
                driver: a.driver,
                subnets: a.subnet,
                ip_range: a.ip_range,
                gateway: a.gateway,
                ipv6: a.ipv6,
                internal: a.internal,
                labels: key_values(&a.label, "--label")?,
                options: key_values(&a.opt, "--opt")?,
            };
            println!("{}", create(&store, &req)?.id);
        }
        NetworkCommand::Ls(a) => ls(&store, &a)?,
        NetworkCommand::Inspect { networks } => {
            let out = networks
                .iter()
                .map(|n| Ok(inspect(root, &store.find(n)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCommand::Rm { networks } => {
            repair_first(root, run_dir);
            for key in networks {
                let n = store.find(&key)?;
                remove(root, &store, &n)?;
                println!("{key}");
            }
        }
        NetworkCommand::Prune { force } => {
            repair_first(root, run_dir);
            prune(root, &store, force)?
        }
        NetworkCommand::Connect {
            alias,
            ip,
            ip6,
            network,
            container,
        } => {
            let engine = Engine::open(root, run_dir)?;
            let ips: Vec<String> = ip.into_iter().chain(ip6).collect();
            connect(&engine, &network, &container, &alias, &ips)?;
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => {
            let engine = Engine::open(root, run_dir)?;
            disconnect(&engine, &network, &container, force)?;
        }
        NetworkCommand::Repair => {
            let cni = crate::cni_client(root, &[], None);
            for n in store.all()? {
                cni.status(&n.list()?)
                    .map_err(|e| anyhow::anyhow!("network {}: {e}", n.name))?;
                println!("{}", n.name);
            }
        }
    }
    Ok(())
}

/// Detaches what a killed command left (see [`crate::lifecycle::repair`]), so that it does
/// not count as an active endpoint.
fn repair_first(root: &Path, run_dir: &Path) {
    if let Err(e) = Engine::open(root, run_dir).and_then(|e| crate::lifecycle::repair(&e)) {
        eprintln!("netctl: repair what a crash left: {e:#}");
    }
}

fn ls(store: &NetworkStore, a: &LsArgs) -> anyhow::Result<()> {
    let filters = key_values(&a.filter, "--filter")?;
    let nets: Vec<Network> = store
        .all()?
        .into_iter()
        .filter(|n| {
            filters.iter().all(|(k, v)| match k.as_str() {
                "driver" => n.driver() == *v,
                "name" => n.name.contains(v.as_str()),
                "id" => n.id.starts_with(v.as_str()),
                _ => false,
            })
        })
        .collect();
    if let Some(bad) = filters
        .keys()
        .find(|k| !["driver", "name", "id"].contains(&k.as_str()))
    {
        bail!("invalid filter {bad:?}: use driver, name or id");
    }
    if a.quiet {
        nets.iter().for_each(|n| println!("{}", &n.id[..12]));
        return Ok(());
    }
    if a.format.as_deref() == Some("json") {
        for n in &nets {
            println!(
                "{}",
                json!({"ID": &n.id[..12], "Name": n.name, "Driver": n.driver(), "Scope": "local", "Internal": n.internal(), "CreatedAt": n.created()})
            );
        }
        return Ok(());
    }
    let rows: Vec<[String; 4]> = nets
        .iter()
        .map(|n| {
            [
                n.id[..12].to_string(),
                n.name.clone(),
                n.driver(),
                "local".into(),
            ]
        })
        .collect();
    let header = ["NETWORK ID", "NAME", "DRIVER", "SCOPE"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                + 3
        })
        .collect();
    for r in std::iter::once(&header).chain(&rows) {
        let line: String = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.trim_end());
    }
    Ok(())
}

/// Containers attached to `n`, from the CNI result cache.
fn endpoints(root: &Path, n: &Network) -> BTreeMap<String, Value> {
    let cni = crate::cni_client(root, &[], None);
    let containers = crate::container::ContainerStore::open(root).ok();
    let mut out = BTreeMap::new();
    for rt in cni.cached_attachments(&n.name).unwrap_or_default() {
        let Ok(Some(r)) = cni.cached_result(&n.name, &rt) else {
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
        let name = containers
            .as_ref()
            .and_then(|s| s.find(&rt.container_id).ok())
            .map(|c| c.config.name)
            .or_else(|| {
                rt.args
                    .iter()
                    .find(|(k, _)| k == "K8S_POD_NAME")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default();
        out.insert(
            rt.container_id.clone(),
            json!({"Name": name, "EndpointID": crate::network::derived_id(&format!("{}/{}/{}", n.name, rt.container_id, rt.ifname)),
                   "MacAddress": ctr.map(|i| i.mac.clone()).unwrap_or_default(),
                   "IPv4Address": addr(true), "IPv6Address": addr(false)}),
        );
    }
    out
}

/// `network inspect` of one network, as Docker prints it.
pub fn inspect(root: &Path, n: &Network) -> Value {
    let config: Vec<Value> = n
        .ipam()
        .and_then(|v| serde_json::from_value::<netctl_ipam::IpamConfig>(v.clone()).ok())
        .and_then(|c| c.range_sets().ok())
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.ranges().to_vec())
        .zip(
            n.ipam()
                .and_then(|v| v.get("ranges"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .chain(std::iter::repeat(Value::Null)),
        )
        .map(|(r, raw)| {
            let mut c =
                json!({"Subnet": r.subnet().to_string(), "Gateway": r.gateway().to_string()});
            if let Some(ipr) = raw.pointer("/0/ipRange").and_then(Value::as_str) {
                c["IPRange"] = json!(ipr);
            }
            c
        })
        .collect();
    let meta = |k: &str| n.conflist.pointer(&format!("/netctl/{k}")).cloned();
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created(), "Scope": "local", "Driver": n.driver(),
        "EnableIPv6": meta("enableIPv6").unwrap_or(json!(false)),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.internal(), "Attachable": false, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": endpoints(root, n),
        "Options": meta("options").unwrap_or(json!({})),
        "Labels": meta("labels").unwrap_or(json!({})),
    })
}

/// Removes a network: refused for the predefined ones and while containers are attached;
/// takes its bridge device, firewall rules and address store with it.
fn remove(root: &Path, store: &NetworkStore, n: &Network) -> anyhow::Result<()> {
    if PREDEFINED.contains(&n.name.as_str()) {
        bail!("{} is a pre-defined network and cannot be removed", n.name);
    }
    let attached = endpoints(root, n);
    if !attached.is_empty() {
        bail!(
            "error while removing network: network {} id {} has active endpoints ({} containers)",
            n.name,
            n.id,
            attached.len()
        );
    }
    if let Some(bridge) = n.bridge() {
        let marker = n
            .plugin_run_dir("netctl-bridge")
            .join("firewall")
            .join(format!("{bridge}.json"));
        if let Some(rules) = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<NetworkRules>(&b).ok())
        {
            Nftables::new()
                .teardown_network(&rules)
                .with_context(|| format!("remove the firewall rules of {bridge}"))?;
            let _ = std::fs::remove_file(&marker);
        }
        let mut nl = netctl_net::Netlink::new()?;
        nl.del_link_by_name(bridge)
            .with_context(|| format!("delete bridge {bridge}"))?;
    }
    let _ = std::fs::remove_dir_all(root.join("ipam").join(&n.name));
    let records = netctl_dnsrecords::DnsPaths::new(&n.plugin_run_dir("netctl-dns")).records();
    let _ = std::fs::remove_dir_all(records.join(&n.name));
    store.remove(&n.name)
}

fn prune(root: &Path, store: &NetworkStore, force: bool) -> anyhow::Result<()> {
    if !force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(());
    }
    let mut deleted = Vec::new();
    for n in store.all()? {
        if PREDEFINED.contains(&n.name.as_str()) || !endpoints(root, &n).is_empty() {
            continue;
        }
        remove(root, store, &n)?;
        deleted.push(n.name);
    }
    if !deleted.is_empty() {
        println!("Deleted Networks:\n{}", deleted.join("\n"));
    }
    Ok(())
}

/// Asks `warning` + "Are you sure you want to continue? [y/N]" on the terminal.
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

/// `network connect`: the next interface of a running container, or a network for its
/// next start.
pub fn connect(
    engine: &Engine,
    network: &str,
    key: &str,
    aliases: &[String],
    ips: &[String],
) -> anyhow::Result<()> {
    let net = NetworkStore::open(&engine.root)?.find(network)?;
    let c = engine.containers.find(key)?;
    let lock = engine.containers.lock_one(&c)?;
    let mut c = c;
    c.reload()?;
    if c.config.net_mode != NetMode::Private || PREDEFINED[1..].contains(&net.name.as_str()) {
        bail!("container {} shares a network namespace or uses host/none: it cannot be connected to {}", c.config.name, net.name);
    }
    if c.config.networks.iter().any(|n| n.name == net.name)
        || c.state.endpoints.iter().any(|e| e.network == net.name)
    {
        bail!(
            "endpoint with name {} already exists in network {}",
            c.config.name,
            net.name
        );
    }
    if PREDEFINED.contains(&net.name.as_str()) && (!aliases.is_empty() || !ips.is_empty()) {
        bail!("user specified IP address and network-scoped aliases are supported only on user defined networks");
    }
    for ip in ips {
        ip.parse::<std::net::IpAddr>()
            .with_context(|| format!("invalid IP address: {ip:?}"))?;
    }
    let req = NetworkRequest {
        name: net.name.clone(),
        aliases: aliases.to_vec(),
        ips: ips.to_vec(),
        mac: None,
    };
    if c.is_running() {
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !c.state.endpoints.iter().any(|e| &e.ifname == n))
            .unwrap_or_default();
        engine.attach_recorded(&mut c, &lock, &req, &ifname, &[])?;
        engine.write_etc(&c)?;
    }
    c.config.networks.push(req);
    c.save_config()
}

/// `network disconnect`: the interfaces, addresses, rules and DNS names on the network go
/// at once; what the container's state lists counts too (a `connect` killed before it
/// recorded the network in the config still left an attachment).
pub fn disconnect(engine: &Engine, network: &str, key: &str, force: bool) -> anyhow::Result<()> {
    let net = NetworkStore::open(&engine.root)?.find(network)?;
    let c = engine.containers.find(key)?;
    let lock = engine.containers.lock_one(&c)?;
    let mut c = c;
    c.reload()?;
    let req = engine.request_of(&c, &net.name);
    let configured = c.config.networks.iter().any(|n| n.name == net.name);
    let attached: Vec<String> = c
        .state
        .endpoints
        .iter()
        .filter(|e| e.network == net.name)
        .map(|e| e.ifname.clone())
        .collect();
    if !configured && attached.is_empty() {
        if force {
            return Ok(());
        }
        bail!(
            "container {} is not connected to network {}",
            c.config.id,
            net.name
        );
    }
    for ifname in &attached {
        lock.shared_with_children(|| engine.detach(&c, &req, ifname))?;
        c.state.endpoints.retain(|e| &e.ifname != ifname);
        c.save_state()?;
    }
    if !attached.is_empty() {
        engine.write_etc(&c)?;
    }
    c.config.networks.retain(|n| n.name != net.name);
    c.save_config()
}
