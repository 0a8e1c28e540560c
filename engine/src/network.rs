//! The network store: one CNI conflist per network under `<root>/networks`, usable by any CNI
//! runtime, with netctl's own facts (ID, creation time, driver, options, labels) under the
//! conflist's `netctl` key, which CNI clients ignore. Conflists netctl did not write work
//! too. A network's state on the host (its bridge, rules, addresses, records) belongs to its
//! plugins: `network rm` asks them to take it away (CNI GC with netctl's
//! [`netctl_cni::types::REMOVE_NETWORK`] extension), and never touches it itself.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use netctl_cni::{fsutil, NetConfList, StateDir};
use netctl_ipam::{IpamConfig, RangeConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::now_rfc3339;
use crate::engine::{AddressPool, Engine};
use crate::error::{conflict, invalid, Context, Error, Kind, Result};
use crate::ids::{derived_id, random_id, short_id};
use crate::lock::StoreLock;

/// The predefined networks, always present.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];
/// The default bridge network's device and subnet.
pub const DEFAULT_BRIDGE: (&str, &str) = ("netctl0", "172.17.0.0/16");

/// A network driver `network create` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// A Linux bridge (netctl-bridge).
    #[default]
    Bridge,
    /// macvlan children of a parent link (netctl-macvlan).
    Macvlan,
    /// An overlay across the hosts of a cluster (netctl-overlay, through the agent).
    Overlay,
}

/// netctl's facts about a network (the conflist's `netctl` key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkMeta {
    /// 64 hex.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub created: String,
    /// Docker's driver name.
    #[serde(default)]
    pub driver: Option<String>,
    /// Docker's `--internal`.
    #[serde(default)]
    pub internal: bool,
    /// `--ipv6`.
    #[serde(default, rename = "enableIPv6")]
    pub enable_ipv6: bool,
    /// `--ipv4=false` (Docker 28): an IPv6-only network.
    #[serde(
        default,
        rename = "disableIPv4",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_ipv4: bool,
    /// `-o K=V`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `--label K=V`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `swarm` for a macvlan network of the cluster (the agent writes it); else unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// What netctl reads of a plugin's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginHead {
    /// The plugin type.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// A bridge plugin's bridge.
    #[serde(default)]
    pub bridge: Option<String>,
    /// A macvlan plugin's parent link.
    #[serde(default)]
    pub master: Option<String>,
    /// Where the plugin keeps runtime state.
    #[serde(default)]
    pub run_dir: Option<StateDir>,
    /// Its IPAM section.
    #[serde(default)]
    pub ipam: Option<IpamConfig>,
    /// A DNS plugin's network resolvers.
    #[serde(default)]
    pub servers: Vec<IpAddr>,
}

/// One network as the store knows it.
#[derive(Debug, Clone)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// 64 hex characters (derived from the name for conflists netctl did not write).
    pub id: String,
    /// netctl's facts about it.
    pub meta: NetworkMeta,
    /// The conflist.
    pub list: NetConfList,
    /// What netctl reads of each plugin, in order (an unreadable one is left default).
    pub plugins: Vec<PluginHead>,
}

impl Network {
    /// Who is attached to this network, from the CNI result cache: netctl's containers and
    /// any other runtime that attached through netctl's cache.
    pub fn attachments(&self, engine: &Engine) -> Vec<netctl_cni::invoke::RuntimeConf> {
        engine
            .cni
            .cached_attachments(&self.name)
            .unwrap_or_default()
    }

    fn from_list(list: NetConfList) -> Self {
        let meta: NetworkMeta = list
            .extra
            .get("netctl")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        let plugins = list
            .plugins
            .iter()
            .map(|p| serde_json::from_value(Value::Object(p.clone())).unwrap_or_default())
            .collect();
        let id = if meta.id.is_empty() {
            derived_id(&list.name)
        } else {
            meta.id.clone()
        };
        Network {
            name: list.name.clone(),
            id,
            meta,
            list,
            plugins,
        }
    }

    /// The first 12 characters of its ID.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// Docker's driver name: bridge, macvlan, host, null, or the first plugin's type.
    pub fn driver(&self) -> String {
        if let Some(d) = &self.meta.driver {
            return d.clone();
        }
        let ty = self.plugins.first().map_or("", |p| p.plugin_type.as_str());
        match ty.trim_start_matches("netctl-") {
            "none" => "null".into(),
            other => other.into(),
        }
    }

    /// Where the network is known: `global` for an overlay network (every host of the cluster
    /// has it, as Docker's cluster-store networks showed), `swarm` for a macvlan network of
    /// the cluster, `local` otherwise.
    pub fn scope(&self) -> &'static str {
        if self.driver() == "overlay" {
            "global"
        } else if self.meta.scope.as_deref() == Some("swarm") {
            "swarm"
        } else {
            "local"
        }
    }

    /// Whether the cluster's agent keeps it (on every host), not this host alone.
    pub fn in_cluster(&self) -> bool {
        self.scope() != "local"
    }

    /// The first plugin's IPAM section, if any.
    pub fn ipam(&self) -> Option<&IpamConfig> {
        self.plugins.first().and_then(|p| p.ipam.as_ref())
    }

    /// Its subnets, from the IPAM section.
    pub fn subnets(&self) -> Vec<IpNet> {
        self.ipam()
            .and_then(|c| c.range_sets().ok())
            .map(|sets| {
                sets.iter()
                    .flat_map(|s| s.ranges().iter().map(|r| r.subnet()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bridge device, for bridge networks.
    pub fn bridge(&self) -> Option<&str> {
        (self.driver() == "bridge")
            .then(|| self.plugins.first()?.bridge.as_deref())
            .flatten()
    }

    /// Where the plugin of type `plugin_type` keeps runtime state: its `runDir` setting,
    /// else the plugins' default.
    pub fn plugin_run_dir(&self, plugin_type: &str) -> PathBuf {
        let dir = self
            .plugins
            .iter()
            .find(|p| p.plugin_type == plugin_type)
            .and_then(|p| p.run_dir.clone());
        StateDir::or_default(&dir, netctl_net::DEFAULT_RUN_DIR)
    }
}

/// The networks under a root folder.
pub struct NetworkStore {
    dir: PathBuf,
}

impl Engine {
    /// The network store, with the predefined networks written if missing.
    pub fn networks(&self) -> Result<NetworkStore> {
        NetworkStore::open(self.root(), self.run_dir())
    }
}

impl NetworkStore {
    /// The store under `root`, with the predefined networks written if missing (their
    /// plugins keep state under `root` and `run_dir`).
    pub fn open(root: &Path, run_dir: &Path) -> Result<Self> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let store = NetworkStore { dir };
        if PREDEFINED.iter().any(|name| !store.path(name).exists()) {
            // Under the lock, so that processes starting together give each its one ID.
            let _lock = store.lock()?;
            for name in PREDEFINED {
                if !store.path(name).exists() {
                    store.write(&predefined(name, &random_id()?, &Dirs::of(root, run_dir)))?;
                }
            }
        }
        Ok(store)
    }

    /// Waits for the store's lock, held while a network is made or removed: name and
    /// subnet checks and the conflist written (or the network taken down) as one step.
    pub fn lock(&self) -> Result<StoreLock> {
        StoreLock::exclusive(&self.dir.join(".lock"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.conflist"))
    }

    /// Writes a network's conflist atomically.
    pub fn write(&self, list: &NetConfList) -> Result<()> {
        let path = self.path(&list.name);
        let bytes = serde_json::to_vec_pretty(list).ctx(|| format!("encode {}", path.display()))?;
        fsutil::write_atomic(&path, &bytes).ctx(|| format!("write {}", path.display()))
    }

    /// Every network, predefined first, then by name (unreadable conflists are skipped).
    pub fn all(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        let list = || format!("list {}", self.dir.display());
        for entry in std::fs::read_dir(&self.dir).ctx(list)? {
            let path = entry.ctx(list)?.path();
            if path.extension().is_none_or(|e| e != "conflist") {
                continue;
            }
            let bytes = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
            if let Ok(l) = NetConfList::from_slice(&bytes) {
                out.push(Network::from_list(l));
            }
        }
        out.sort_by_key(|n| (!PREDEFINED.contains(&n.name.as_str()), n.name.clone()));
        Ok(out)
    }

    /// The network named `key`, or whose ID is or starts with `key` (a unique prefix).
    pub fn find(&self, key: &str) -> Result<Network> {
        crate::ids::resolve(Kind::Network, key, self.all()?, 1, |n| {
            (n.name.as_str(), n.id.as_str())
        })
    }

    /// Removes a network: refused for the predefined ones and while containers are
    /// attached; its plugins take away its state on the host, then its conflist goes.
    pub fn remove(&self, engine: &Engine, n: &Network) -> Result<()> {
        if PREDEFINED.contains(&n.name.as_str()) {
            conflict!("{} is a pre-defined network and cannot be removed", n.name);
        }
        let _store = self.lock()?;
        // Waits for every attachment being made to be recorded, and keeps new ones out
        // until the network is gone (they then find no network).
        let _attaching = engine.containers.attach_lock(true)?;
        if !self.path(&n.name).exists() {
            return Err(Error::NotFound {
                kind: Kind::Network,
                key: n.name.clone(),
            });
        }
        let attached = attached_containers(engine, n)?;
        if attached > 0 {
            conflict!(
                "error while removing network: network {} id {} has active endpoints ({attached} containers)",
                n.name,
                n.id
            );
        }
        if n.in_cluster() {
            // The agent asks every host's plugins, and takes the conflists away.
            crate::cluster::remove_network(engine, &n.name)?;
        } else {
            engine
                .cni
                .remove_network(&n.list)
                .map_err(|source| Error::Cni {
                    network: n.name.clone(),
                    source,
                })?;
            let path = self.path(&n.name);
            fsutil::remove_if_exists(&path).ctx(|| format!("remove {}", path.display()))?;
            crate::cluster::local_networks_changed(engine);
        }
        let driver = n.driver();
        let attrs = [("name", n.name.as_str()), ("type", driver.as_str())];
        crate::events::record(engine, "network", "destroy", &n.id, &attrs);
        Ok(())
    }
}

/// How many containers are attached to `n`: those in the CNI result cache (any runtime's)
/// and this engine's containers that list an endpoint on it, pending ones too.
fn attached_containers(engine: &Engine, n: &Network) -> Result<usize> {
    let mut ids: Vec<String> = n
        .attachments(engine)
        .into_iter()
        .map(|rt| rt.container_id)
        .collect();
    ids.extend(
        engine
            .containers
            .all()?
            .into_iter()
            .filter(|c| c.state.endpoints.iter().any(|e| e.network == n.name))
            .map(|c| c.config.id),
    );
    ids.sort();
    ids.dedup();
    Ok(ids.len())
}

/// Where a network's plugins keep state: under the engine's root and run directory, so
/// `--root`/`--run-dir` move them with everything else.
struct Dirs {
    data: Value,
    run: Value,
}

impl Dirs {
    fn of(root: &Path, run_dir: &Path) -> Self {
        Dirs {
            data: json!(root.join("ipam")),
            run: json!(run_dir),
        }
    }
}

/// How a bridge network reaches beyond its bridge (Docker 28's gateway modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayMode {
    /// Masquerade out; in only through published ports (the default).
    Nat,
    /// Masquerade out; in to the containers' addresses directly too.
    NatUnprotected,
    /// No address on the bridge, no way in or out: containers reach each other only.
    Isolated,
    /// No masquerade; in to the containers' addresses on their published ports only.
    Routed,
}

impl GatewayMode {
    /// Docker's option value.
    fn parse(m: &str) -> Result<Self> {
        Ok(match m {
            "nat" => GatewayMode::Nat,
            "nat-unprotected" => GatewayMode::NatUnprotected,
            "isolated" => GatewayMode::Isolated,
            "routed" => GatewayMode::Routed,
            m => {
                invalid!("invalid gateway mode {m:?}: use nat, nat-unprotected, routed or isolated")
            }
        })
    }

    /// What the mode means to one family's firewall rules.
    fn policy(self) -> netctl_firewall::FamilyPolicy {
        netctl_firewall::FamilyPolicy {
            masquerade: matches!(self, GatewayMode::Nat | GatewayMode::NatUnprotected),
            unprotected: self == GatewayMode::NatUnprotected,
            routed: self == GatewayMode::Routed,
        }
    }
}

/// What shapes a bridge network's plugin beyond its name.
#[derive(Debug, Clone)]
struct BridgeShape {
    internal: bool,
    /// IPv4's gateway mode, IPv6's too unless `mode6` differs.
    mode: GatewayMode,
    /// IPv6's gateway mode.
    mode6: GatewayMode,
    default_route: bool,
    trusted: Vec<String>,
    strict: bool,
}

impl BridgeShape {
    /// `--internal`, or an isolated gateway: nothing in or out of the bridge.
    fn closed(&self) -> bool {
        self.internal || self.mode == GatewayMode::Isolated
    }
}

/// Reads the gateway modes (`com.docker.network.bridge.gateway_mode_ipv4` and `_ipv6`, each
/// `nat` unless given, of the families the network has; `isolated` only for both alike),
/// `com.docker.network.bridge.trusted_host_interfaces` (a colon-separated list) and
/// `no_default_route`.
fn bridge_shape(req: &CreateRequest, default_route: bool) -> Result<BridgeShape> {
    let mode_of = |f: &str| {
        req.options
            .get(&format!("com.docker.network.bridge.gateway_mode_{f}"))
            .map_or(Ok(GatewayMode::Nat), |m| GatewayMode::parse(m))
    };
    // A family the network lacks has no say.
    let (mode, mode6) = match (mode_of("ipv4")?, mode_of("ipv6")?) {
        (_, m6) if req.no_ipv4 => (m6, m6),
        (m4, _) if !req.ipv6 => (m4, m4),
        modes => modes,
    };
    let isolated = [mode, mode6].contains(&GatewayMode::Isolated);
    if mode != mode6 && isolated {
        invalid!("gateway mode isolated takes the bridge's addresses away for both families: set gateway_mode_ipv4 and gateway_mode_ipv6 both to isolated");
    }
    let trusted = match req
        .options
        .get("com.docker.network.bridge.trusted_host_interfaces")
    {
        None => Vec::new(),
        Some(list) => list
            .split(':')
            .filter(|i| !i.is_empty())
            .map(|i| {
                netctl_cni::validate::ifname(i)
                    .map(|()| i.to_string())
                    .map_err(|e| Error::Invalid(format!("trusted host interface {i:?}: {}", e.msg)))
            })
            .collect::<Result<_>>()?,
    };
    let iptables = req.options.get("firewall").map(String::as_str) == Some("iptables");
    if (mode == GatewayMode::Routed || mode6 == GatewayMode::Routed) && iptables {
        invalid!("gateway mode routed needs the nftables firewall: leave -o firewall=iptables out");
    }
    let strict = match req.options.get("isolate").map(String::as_str) {
        None | Some("true") => false,
        Some("strict") if iptables => {
            invalid!("-o isolate=strict needs the nftables firewall: leave -o firewall=iptables out")
        }
        Some("strict") => true,
        Some(v) => invalid!("-o isolate={v}: use true (networks apart, as always) or strict (not even through published ports)"),
    };
    Ok(BridgeShape {
        internal: req.internal,
        mode,
        mode6,
        default_route,
        trusted,
        strict,
    })
}

fn bridge_plugin(
    bridge: &str,
    shape: &BridgeShape,
    firewall: netctl_firewall::Backend,
    ipam: Value,
    dirs: &Dirs,
) -> Value {
    let closed = shape.closed();
    let mut plugin = json!({
        "type": "netctl-bridge", "bridge": bridge, "isGateway": shape.mode != GatewayMode::Isolated,
        "isDefaultGateway": !closed && shape.default_route,
        "ipMasq": !closed && shape.mode != GatewayMode::Routed, "hairpinMode": true,
        "internal": closed, "firewallBackend": firewall, "runDir": dirs.run,
        "capabilities": {"portMappings": true, "ips": true, "mac": true},
        "ipam": ipam
    });
    // Only what differs from the defaults, so that other networks' conflists stay as they were.
    if let Value::Object(m) = &mut plugin {
        if shape.mode == GatewayMode::NatUnprotected {
            m.insert("unprotected".into(), json!(true));
        }
        if !shape.trusted.is_empty() {
            m.insert("trustedHostInterfaces".into(), json!(shape.trusted));
        }
        if shape.strict {
            m.insert("isolateStrict".into(), json!(true));
        }
        if shape.mode == GatewayMode::Routed {
            m.insert("routed".into(), json!(true));
        }
        if shape.mode6 != shape.mode {
            m.insert("ipv6Policy".into(), json!(shape.mode6.policy()));
        }
    }
    plugin
}

/// `--opt firewall=auto|nftables|iptables|none`.
fn firewall_option(req: &CreateRequest) -> Result<netctl_firewall::Backend> {
    match req.options.get("firewall") {
        None => Ok(netctl_firewall::Backend::Auto),
        Some(v) => serde_json::from_value(json!(v)).map_err(|_| {
            Error::Invalid(format!(
                "--opt firewall={v}: use auto, nftables, iptables or none"
            ))
        }),
    }
}

fn conflist(value: Value) -> Result<NetConfList> {
    let bytes = serde_json::to_vec(&value).ctx(|| "encode the conflist".into())?;
    NetConfList::from_slice(&bytes).map_err(|source| Error::Cni {
        network: value["name"].as_str().unwrap_or_default().to_string(),
        source,
    })
}

/// The conflist of a predefined network.
fn predefined(name: &str, id: &str, dirs: &Dirs) -> NetConfList {
    let meta = NetworkMeta {
        id: id.into(),
        created: now_rfc3339(),
        driver: Some(if name == "none" { "null" } else { name }.into()),
        ..NetworkMeta::default()
    };
    let plugins = match name {
        "bridge" => vec![bridge_plugin(
            DEFAULT_BRIDGE.0,
            &BridgeShape {
                internal: false,
                mode: GatewayMode::Nat,
                mode6: GatewayMode::Nat,
                default_route: true,
                trusted: Vec::new(),
                strict: false,
            },
            netctl_firewall::Backend::Auto,
            json!({"type": "netctl-ipam", "subnet": DEFAULT_BRIDGE.1, "allocation": "lowest", "dataDir": dirs.data}),
            dirs,
        )],
        "host" => vec![json!({"type": "netctl-host", "runDir": dirs.run})],
        _ => vec![json!({"type": "netctl-none"})],
    };
    let value = json!({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": name,
        "netctl": meta, "plugins": plugins});
    // A fixed shape of known-good values: it always parses.
    conflist(value).unwrap_or_else(|_| NetConfList {
        cni_version: "1.0.0".into(),
        cni_versions: Vec::new(),
        name: name.into(),
        disable_check: false,
        disable_gc: false,
        plugins: Vec::new(),
        extra: serde_json::Map::new(),
    })
}

/// What `network create` was asked for.
#[derive(Debug, Default)]
pub struct CreateRequest {
    /// The name.
    pub name: String,
    /// Bridge or macvlan.
    pub driver: Driver,
    /// `--subnet`, several allowed.
    pub subnets: Vec<IpNet>,
    /// `--ip-range`.
    pub ip_range: Option<IpNet>,
    /// `--gateway`.
    pub gateway: Option<IpAddr>,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--ipv4=false`: no IPv4 subnet (with `--ipv6`, an IPv6-only network).
    pub no_ipv4: bool,
    /// `--internal`.
    pub internal: bool,
    /// `--label K=V`.
    pub labels: BTreeMap<String, String>,
    /// `-o K=V`.
    pub options: BTreeMap<String, String>,
    /// `--aux-address NAME=IP`: addresses of a subnet that are never handed out.
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// `--route DEST,GW[,METRIC]` (podman): static routes every container gets.
    pub routes: Vec<netctl_cni::types::Route>,
    /// `--dns` (podman): the network's own resolvers.
    pub dns_servers: Vec<IpAddr>,
    /// `--scope`: local, or swarm/global for a network of the cluster.
    pub scope: Option<String>,
}

/// Parses podman's `--route DEST,GW[,METRIC]`.
pub fn parse_route(s: &str) -> Result<netctl_cni::types::Route> {
    let bad = || {
        Error::Invalid(format!(
            "invalid route {s:?}: use DESTINATION/PREFIX,GATEWAY[,METRIC]"
        ))
    };
    let mut parts = s.split(',');
    let dst = parse_subnet(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let gw: IpAddr = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let metric = parts
        .next()
        .map(|m| m.parse::<u32>().map_err(|_| bad()))
        .transpose()?;
    if parts.next().is_some() || dst.addr().is_ipv4() != gw.is_ipv4() {
        return Err(bad());
    }
    let mut route = netctl_cni::types::Route::new(dst, Some(gw));
    route.priority = metric;
    Ok(route)
}

/// A boolean `-o` option (`true`/`1`, `false`/`0`); false when absent.
fn bool_option(req: &CreateRequest, key: &str) -> Result<bool> {
    match req.options.get(key).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(v) => Err(Error::Invalid(format!("-o {key}={v}: use true or false"))),
    }
}

/// Parses a subnet or range as Docker takes one: a CIDR, whose host bits (`172.73.1.0/16`)
/// are dropped (Docker accepts it and occupies 172.73.0.0/16).
pub fn parse_subnet(s: &str) -> Result<IpNet> {
    let net: IpNet = s.parse().map_err(|_| {
        Error::Invalid(format!(
            "invalid subnet {s:?}: expected a CIDR such as 172.20.0.0/16"
        ))
    })?;
    Ok(net.trunc())
}

/// Address pools for networks created without `--subnet`: Docker's (172.17-31.0.0/16, then
/// 192.168.0.0/16 in /20s), then the engine's configured ones. 172.17.0.0/16 belongs to the
/// default `bridge` network.
fn pools(configured: &[AddressPool], v6: bool) -> Result<Vec<IpNet>> {
    let net = |s: &str| {
        s.parse::<IpNet>()
            .map_err(|_| Error::Invalid(format!("bad pool {s}")))
    };
    if v6 {
        let base = net("fd42:6e65:7463::/48")?;
        let mut out: Vec<IpNet> = base
            .subnets(64)
            .map(|s| s.take(4096).collect())
            .unwrap_or_default();
        out.extend(of_family(configured, true));
        return Ok(out);
    }
    let mut out: Vec<IpNet> = (17..=31)
        .filter_map(|b| format!("172.{b}.0.0/16").parse().ok())
        .collect();
    out.extend(net("192.168.0.0/16")?.subnets(20).into_iter().flatten());
    out.extend(of_family(configured, false));
    Ok(out)
}

/// The subnets of the configured pools of one family.
fn of_family(pools: &[AddressPool], v6: bool) -> impl Iterator<Item = IpNet> + '_ {
    pools
        .iter()
        .filter(move |p| p.base.addr().is_ipv6() == v6)
        .flat_map(AddressPool::subnets)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The subnets already in use: other networks' and the host's routes.
fn taken(store: &NetworkStore) -> Result<Vec<IpNet>> {
    let mut out: Vec<IpNet> = store.all()?.iter().flat_map(Network::subnets).collect();
    if let Ok(mut nl) = netctl_net::Netlink::new() {
        out.extend(
            nl.routes()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.dst.prefix_len() > 0)
                .map(|r| r.dst),
        );
    }
    Ok(out)
}

fn next_free(pool: &[IpNet], taken: &[IpNet], skip_default: bool) -> Option<IpNet> {
    let default: Option<IpNet> = DEFAULT_BRIDGE.1.parse().ok();
    pool.iter()
        .filter(|n| !(skip_default && Some(**n) == default))
        .find(|n| !taken.iter().any(|t| overlaps(n, t)))
        .copied()
}

/// Whether `--scope` asks for a network of the cluster: overlays always are; a macvlan
/// network is with `swarm` or `global`; nothing else can be.
fn in_cluster(req: &CreateRequest) -> Result<bool> {
    match (req.driver, req.scope.as_deref()) {
        (Driver::Overlay, None | Some("swarm" | "global")) => Ok(true),
        (Driver::Macvlan, Some("swarm" | "global")) => Ok(true),
        (_, None | Some("local")) => Ok(false),
        (Driver::Overlay, Some(s)) => {
            invalid!("overlay networks are of the cluster: --scope {s} cannot be")
        }
        (Driver::Bridge, Some("swarm" | "global")) => {
            invalid!("a bridge network is of one host: only overlay and macvlan networks can be of the cluster (--scope swarm)")
        }
        (_, Some(s)) => invalid!("invalid scope {s:?}: use local, swarm or global"),
    }
}

/// An overlay network, or a macvlan network of the cluster: the agent puts it in etcd and
/// every host's agent writes its conflist; IPv6 and internal ones are not there yet.
fn create_in_cluster(engine: &Engine, req: &CreateRequest) -> Result<Network> {
    if req.subnets.len() > 1 || req.ipv6 || req.internal {
        invalid!("networks of the cluster take one IPv4 --subnet, and no --ipv6 or --internal yet");
    }
    let macvlan = match req.driver {
        Driver::Macvlan => {
            let parent = req.options.get("parent").ok_or_else(|| {
                Error::Invalid(
                    "a macvlan network of the cluster needs -o parent=LINK, a link every host has by that name".into(),
                )
            })?;
            check_parent(parent, &engine.networks()?.all()?)?;
            Some(netctl_overlay_api::MacvlanSpec {
                parent: parent.clone(),
                mode: macvlan_mode(req)?.into(),
            })
        }
        _ => None,
    };
    let spec = crate::cluster::create_network(
        engine,
        netctl_overlay_api::CreateNetwork {
            name: req.name.clone(),
            subnet: req.subnets.first().copied(),
            gateway: req.gateway,
            ip_range: req.ip_range,
            // Docker's `--opt encrypted`: asked for by the option being there.
            encrypted: req.options.contains_key("encrypted"),
            macvlan,
        },
    )?;
    engine.networks()?.find(&spec.name)
}

/// Checks the request and writes the network's conflist; returns the network.
pub fn create(engine: &Engine, req: &CreateRequest) -> Result<Network> {
    let n = create_checked(engine, req)?;
    if n.driver() == "bridge" {
        // Its bridge, gateway address and rules exist from here on, as Docker's do; a
        // failure takes the network away again.
        if let Err(source) = engine.cni.prepare_network(&n.list) {
            let _ = engine.networks().and_then(|s| s.remove(engine, &n));
            return Err(Error::Cni {
                network: n.name.clone(),
                source,
            });
        }
    }
    let driver = n.driver();
    let attrs = [("name", n.name.as_str()), ("type", driver.as_str())];
    crate::events::record(engine, "network", "create", &n.id, &attrs);
    Ok(n)
}

fn create_checked(engine: &Engine, req: &CreateRequest) -> Result<Network> {
    netctl_cni::validate::network_name(&req.name)
        .map_err(|e| Error::Invalid(format!("invalid network name {:?}: {}", req.name, e.msg)))?;
    if in_cluster(req)? {
        return create_in_cluster(engine, req);
    }
    let store = engine.networks()?;
    let _lock = store.lock()?;
    let existing = store.all()?;
    if existing.iter().any(|n| n.name == req.name) {
        conflict!("network with name {} already exists", req.name);
    }
    if req.subnets.is_empty() && (req.ip_range.is_some() || req.gateway.is_some()) {
        invalid!("--ip-range and --gateway need a --subnet to lie in");
    }
    for s in &req.subnets {
        if let Some(t) = existing
            .iter()
            .find(|n| n.subnets().iter().any(|t| overlaps(s, t)))
        {
            let theirs: Vec<String> = t.subnets().iter().map(ToString::to_string).collect();
            conflict!(
                "subnet {s} overlaps with network {} ({})",
                t.name,
                theirs.join(", ")
            );
        }
    }
    if req.no_ipv4 && !req.ipv6 {
        invalid!("IPv4 or IPv6 must be enabled: add --ipv6 to an --ipv4=false network");
    }
    if let Some(s) = req
        .subnets
        .iter()
        .find(|s| req.no_ipv4 && s.addr().is_ipv4())
    {
        invalid!("--subnet {s} is IPv4, but the network has --ipv4=false");
    }
    let mut subnets = req.subnets.clone();
    let taken = taken(&store)?;
    if subnets.is_empty() && !req.no_ipv4 {
        subnets.push(
            next_free(&pools(&engine.config.address_pools, false)?, &taken, true).ok_or_else(
                || {
                    Error::Conflict(
                "all address pools are in use: remove a network or set NETCTL_ADDRESS_POOLS".into(),
            )
                },
            )?,
        );
    }
    if req.ipv6 && !subnets.iter().any(|s| s.addr().is_ipv6()) {
        subnets.push(
            next_free(&pools(&engine.config.address_pools, true)?, &taken, false).ok_or_else(
                || Error::Conflict("no free IPv6 subnet left in fd42:6e65:7463::/48".into()),
            )?,
        );
    }
    for r in &req.routes {
        if let Some(gw) = r.gw.filter(|gw| !subnets.iter().any(|s| s.contains(gw))) {
            invalid!(
                "route to {}: gateway {gw} is not in any subnet of the network",
                r.dst
            );
        }
    }
    let dirs = Dirs::of(engine.root(), engine.run_dir());
    let mut ipam = json!({"type": "netctl-ipam", "ranges": range_sets(req, &subnets)?, "allocation": "lowest", "dataDir": dirs.data});
    if !req.routes.is_empty() {
        ipam["routes"] = serde_json::to_value(&req.routes).ctx(|| "encode the routes".into())?;
    }
    let default_route = !bool_option(req, "no_default_route")?;
    if req.internal && !req.dns_servers.is_empty() {
        invalid!("--dns: an internal network forwards no names, so it takes no resolvers");
    }
    if !default_route && req.driver != Driver::Bridge {
        invalid!("-o no_default_route is an option of bridge networks");
    }
    let shape = bridge_shape(req, default_route)?;
    let id = random_id()?;
    let driver_plugin = match req.driver {
        Driver::Bridge => {
            let bridge = req
                .options
                .get("com.docker.network.bridge.name")
                .or_else(|| req.options.get("bridge"))
                .cloned()
                .unwrap_or_else(|| format!("br-{}", short_id(&id)));
            netctl_cni::validate::ifname(&bridge)
                .map_err(|e| Error::Invalid(format!("bridge name {bridge:?}: {}", e.msg)))?;
            bridge_plugin(&bridge, &shape, firewall_option(req)?, ipam, &dirs)
        }
        Driver::Macvlan => macvlan_plugin(req, &existing, ipam)?,
        Driver::Overlay => return create_in_cluster(engine, req),
    };
    let meta = NetworkMeta {
        id,
        created: now_rfc3339(),
        driver: Some(match req.driver {
            Driver::Bridge => "bridge".into(),
            Driver::Macvlan => "macvlan".into(),
            Driver::Overlay => "overlay".into(),
        }),
        internal: req.internal,
        enable_ipv6: req.ipv6,
        disable_ipv4: req.no_ipv4,
        options: req.options.clone(),
        labels: req.labels.clone(),
        scope: None,
    };
    let list = conflist(json!({
        "cniVersion": "1.0.0",
        "cniVersions": ["1.0.0", "1.1.0"],
        "name": req.name,
        "netctl": meta,
        "plugins": [driver_plugin, {"type": "netctl-dns", "internal": shape.closed(), "runDir": dirs.run,
                    "servers": req.dns_servers, "capabilities": {"aliases": true, "dns": true}}]
    }))?;
    store.write(&list)?;
    crate::cluster::local_networks_changed(engine);
    store.find(&req.name)
}

/// `network update --dns-add/--dns-drop` (podman's): the network's own resolvers change,
/// and each running container that forwards to them (one without `--dns` of its own)
/// forwards to the new ones at once, without a restart.
pub fn update_dns(engine: &Engine, key: &str, add: &[IpAddr], drop: &[IpAddr]) -> Result<Network> {
    let store = engine.networks()?;
    let _lock = store.lock()?;
    // No attachment is recorded with the old resolvers while they change.
    let _attaching = engine.containers.attach_lock(true)?;
    let n = store.find(key)?;
    let Some((i, dns)) = n
        .plugins
        .iter()
        .enumerate()
        .find(|(_, p)| p.plugin_type == "netctl-dns")
    else {
        invalid!(
            "network {} has no DNS server, so it takes no resolvers",
            n.name
        );
    };
    if n.meta.internal && !add.is_empty() {
        invalid!(
            "network {} is internal: it forwards no names, so it takes no resolvers",
            n.name
        );
    }
    if let Some(d) = drop.iter().find(|d| !dns.servers.contains(d)) {
        invalid!("{d} is not a DNS server of network {}", n.name);
    }
    let old = dns.servers.clone();
    let mut servers: Vec<IpAddr> = old.iter().filter(|s| !drop.contains(s)).copied().collect();
    for a in add {
        if !servers.contains(a) {
            servers.push(*a);
        }
    }
    let mut list = n.list.clone();
    if let Some(p) = list.plugins.get_mut(i) {
        p.insert(
            "servers".into(),
            serde_json::to_value(&servers).ctx(|| "encode the resolvers".into())?,
        );
    }
    store.write(&list)?;
    let paths = netctl_dnsrecords::DnsPaths::new(&StateDir::or_default(
        &dns.run_dir,
        netctl_net::DEFAULT_RUN_DIR,
    ));
    for path in paths.record_files(Some(&n.name)) {
        let Ok(Some(mut r)) = netctl_dnsrecords::DnsPaths::read(&path) else {
            continue;
        };
        if !r.own_upstreams && r.upstreams == old {
            r.upstreams.clone_from(&servers);
            paths.write(&r)?;
            // A server that is not running reads the record when it starts.
            let _ = paths.notify(&path);
        }
    }
    store.find(&n.name)
}

/// Checks `-o parent=` as Docker does at create (not at the first `run`): it must name a
/// link of the host that no other macvlan network uses.
fn check_parent(parent: &str, existing: &[Network]) -> Result<()> {
    if parent.is_empty() {
        invalid!("-o parent is empty: name the host interface, e.g. -o parent=eth0");
    }
    netctl_cni::validate::ifname(parent)
        .map_err(|e| Error::Invalid(format!("-o parent={parent:?}: {}", e.msg)))?;
    let mut nl = netctl_net::Netlink::new()?;
    if nl.link_by_name(parent)?.is_none() {
        if let Some((base, vid)) = parent.split_once('.') {
            if nl.link_by_name(base)?.is_some() && vid.parse::<u16>().is_ok() {
                invalid!("-o parent interface {parent} does not exist: netctl does not make 802.1q sub-interfaces; create it first (ip link add link {base} name {parent} type vlan id {vid}; the kernel needs the 8021q module)");
            }
        }
        invalid!("-o parent interface was not found on the host: {parent}");
    }
    let user = existing.iter().find(|n| {
        n.plugins.first().is_some_and(|p| {
            p.plugin_type == "netctl-macvlan" && p.master.as_deref() == Some(parent)
        })
    });
    if let Some(other) = user {
        conflict!(
            "network {} is already using parent interface {parent}",
            other.name
        );
    }
    Ok(())
}

/// `-o macvlan_mode=`, bridge unless asked.
fn macvlan_mode(req: &CreateRequest) -> Result<&str> {
    let mode = req
        .options
        .get("macvlan_mode")
        .map_or("bridge", String::as_str);
    if !netctl_overlay_api::MACVLAN_MODES.contains(&mode) {
        invalid!("macvlan_mode {mode:?}: use bridge, vepa, private or passthru");
    }
    Ok(mode)
}

fn macvlan_plugin(req: &CreateRequest, existing: &[Network], ipam: Value) -> Result<Value> {
    let mode = macvlan_mode(req)?;
    let mut p = json!({"type": "netctl-macvlan", "mode": mode, "capabilities": {"ips": true, "mac": true}, "ipam": ipam});
    if let Some(parent) = req.options.get("parent") {
        check_parent(parent, existing)?;
        p["master"] = json!(parent);
    }
    Ok(p)
}

/// One range set per subnet, with `--ip-range` and `--gateway` on the subnet they lie in,
/// checked by the allocator's own rules.
fn range_sets(req: &CreateRequest, subnets: &[IpNet]) -> Result<Vec<Vec<RangeConfig>>> {
    if let Some(r) = req
        .ip_range
        .filter(|r| !subnets.iter().any(|s| s.contains(r)))
    {
        invalid!("--ip-range {r} is not inside any --subnet");
    }
    if let Some(g) = req
        .gateway
        .filter(|g| !subnets.iter().any(|s| s.contains(g)))
    {
        invalid!("--gateway {g} is not inside any --subnet");
    }
    if let Some((_, ip)) = req
        .aux_addresses
        .iter()
        .find(|(_, ip)| !subnets.iter().any(|s| s.contains(*ip)))
    {
        invalid!("no matching subnet for aux-address {ip}");
    }
    let mut sets = Vec::new();
    for s in subnets {
        let cfg = RangeConfig {
            subnet: s.to_string(),
            ip_range: req
                .ip_range
                .filter(|r| s.contains(r))
                .map(|r| r.to_string()),
            gateway: req.gateway.filter(|g| s.contains(g)),
            auxiliary_addresses: req
                .aux_addresses
                .iter()
                .filter(|(_, ip)| s.contains(*ip))
                .map(|(n, ip)| (n.clone(), *ip))
                .collect(),
            ..Default::default()
        };
        netctl_ipam::Range::new(&cfg).map_err(|e| {
            Error::Invalid(e.to_string().replace("invalid IPAM configuration: ", ""))
        })?;
        sets.push(vec![cfg]);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_free_subnet_skips_the_default_bridge_and_what_is_taken() {
        let pool = pools(&[], false).unwrap();
        let taken: Vec<IpNet> = vec![
            "172.18.0.0/16".parse().unwrap(),
            "172.19.5.0/24".parse().unwrap(),
        ];
        assert_eq!(
            next_free(&pool, &taken, true).unwrap().to_string(),
            "172.20.0.0/16"
        );
        assert_eq!(pool[15].to_string(), "192.168.0.0/20");
        assert_eq!(pool[16].to_string(), "192.168.16.0/20");
    }

    #[test]
    fn a_subnet_with_host_bits_is_the_network_it_lies_in() {
        assert_eq!(
            parse_subnet("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            parse_subnet("2001:389::1/64").unwrap().to_string(),
            "2001:389::/64"
        );
        assert!(parse_subnet("x").is_err());
    }

    #[test]
    fn a_hand_written_conflist_with_a_short_id_reads_without_panicking() {
        let list = NetConfList::from_slice(
            br#"{"cniVersion": "1.0.0", "name": "hand", "netctl": {"id": "abc"},
                 "plugins": [{"type": "netctl-bridge", "bridge": "br-hand",
                              "ipam": {"type": "netctl-ipam", "subnet": "10.9.0.0/24"}}]}"#,
        )
        .unwrap();
        let n = Network::from_list(list);
        assert_eq!((n.short_id(), n.driver().as_str()), ("abc", "bridge"));
        assert_eq!(n.subnets(), vec!["10.9.0.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(n.bridge(), Some("br-hand"));
    }

    #[test]
    fn predefined_networks_keep_their_state_under_the_engines_folders() {
        let list = predefined(
            "bridge",
            "0",
            &Dirs::of(Path::new("/r"), Path::new("/run/x")),
        );
        let n = Network::from_list(list);
        assert_eq!(n.plugin_run_dir("netctl-bridge"), PathBuf::from("/run/x"));
        assert_eq!(n.ipam().unwrap().data_dir(), PathBuf::from("/r/ipam"));
        assert_eq!(n.meta.driver.as_deref(), Some("bridge"));
    }
}
