//! The network store: one CNI conflist per network under `<root>/networks`, usable by any CNI
//! runtime, with netctl's own facts (ID, creation time, driver, options, labels) under the
//! conflist's `netctl` key, which CNI clients ignore. Conflists netctl did not write work too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ipnet::IpNet;
use netctl_cni::{fsutil, NetConfList};
use serde_json::{json, Value};

use crate::clock::now_rfc3339;

/// The predefined networks, always present.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];
/// The default bridge network's device and subnet.
pub const DEFAULT_BRIDGE: (&str, &str) = ("netctl0", "172.17.0.0/16");

/// One network as the store knows it.
#[derive(Debug, Clone)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// 64 hex characters.
    pub id: String,
    /// The conflist, as stored.
    pub conflist: Value,
}

impl Network {
    fn meta(&self, key: &str) -> Option<&Value> {
        self.conflist.get("netctl").and_then(|m| m.get(key))
    }

    /// Docker's driver name: bridge, macvlan, host, null, or the first plugin's type.
    pub fn driver(&self) -> String {
        if let Some(d) = self.meta("driver").and_then(Value::as_str) {
            return d.into();
        }
        let ty = self
            .conflist
            .pointer("/plugins/0/type")
            .and_then(Value::as_str)
            .unwrap_or("");
        match ty.trim_start_matches("netctl-") {
            "none" => "null".into(),
            other => other.into(),
        }
    }

    /// When it was created (empty for conflists netctl did not write).
    pub fn created(&self) -> String {
        self.meta("created")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into()
    }

    /// Whether it is Docker's `--internal`.
    pub fn internal(&self) -> bool {
        self.meta("internal")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The first plugin's `ipam` section, if any.
    pub fn ipam(&self) -> Option<&Value> {
        self.conflist.pointer("/plugins/0/ipam")
    }

    /// Its subnets, from the IPAM section.
    pub fn subnets(&self) -> Vec<IpNet> {
        let Some(cfg) = self
            .ipam()
            .and_then(|v| serde_json::from_value::<netctl_ipam::IpamConfig>(v.clone()).ok())
        else {
            return Vec::new();
        };
        cfg.range_sets()
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
            .then(|| {
                self.conflist
                    .pointer("/plugins/0/bridge")
                    .and_then(Value::as_str)
            })
            .flatten()
    }

    /// Where the plugin of type `plugin_type` keeps runtime state: its `runDir` setting,
    /// else the plugins' default (not `netctl --run-dir`, which plugins never see).
    pub fn plugin_run_dir(&self, plugin_type: &str) -> PathBuf {
        self.conflist
            .get("plugins")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("type").and_then(Value::as_str) == Some(plugin_type))
            })
            .and_then(|p| p.get("runDir"))
            .and_then(Value::as_str)
            .map_or_else(|| PathBuf::from(netctl_net::DEFAULT_RUN_DIR), PathBuf::from)
    }

    /// The conflist, parsed for the CNI client.
    pub fn list(&self) -> anyhow::Result<NetConfList> {
        NetConfList::from_slice(self.conflist.to_string().as_bytes())
            .map_err(|e| anyhow::anyhow!("network {}: {e}", self.name))
    }
}

/// 64 random hex characters.
pub fn random_id() -> anyhow::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A stable 64-hex ID derived from a key: for conflists netctl did not write (their name) and
/// for endpoints (network, container and interface).
pub(crate) fn derived_id(name: &str) -> String {
    (0..4u64)
        .map(|i| format!("{:016x}", netctl_net::fnv1a64(&format!("{i}/{name}"))))
        .collect()
}

/// The networks under a root folder.
pub struct NetworkStore {
    dir: PathBuf,
}

impl NetworkStore {
    /// The store under `root`, with the predefined networks written if missing.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let store = NetworkStore { dir };
        for name in PREDEFINED {
            if !store.path(name).exists() {
                store.write(&predefined(name, &random_id()?))?;
            }
        }
        Ok(store)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.conflist"))
    }

    /// Writes a network's conflist atomically.
    pub fn write(&self, conflist: &Value) -> anyhow::Result<()> {
        let name = conflist
            .get("name")
            .and_then(Value::as_str)
            .context("conflist without a name")?;
        let path = self.path(name);
        let bytes = serde_json::to_vec_pretty(conflist)?;
        fsutil::write_atomic(&path, &bytes).with_context(|| format!("write {}", path.display()))
    }

    /// Every network, predefined first, then by name.
    pub fn all(&self) -> anyhow::Result<Vec<Network>> {
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&self.dir).with_context(|| format!("list {}", self.dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "conflist") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            let conflist: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let name = conflist
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let id = conflist
                .pointer("/netctl/id")
                .and_then(Value::as_str)
                .map_or_else(|| derived_id(&name), str::to_string);
            out.push(Network { name, id, conflist });
        }
        out.sort_by_key(|n| (!PREDEFINED.contains(&n.name.as_str()), n.name.clone()));
        Ok(out)
    }

    /// The network named `key`, or whose ID is or starts with `key` (a unique prefix).
    pub fn find(&self, key: &str) -> anyhow::Result<Network> {
        let all = self.all()?;
        if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let matches: Vec<&Network> = all
            .iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("network {key} not found"),
            _ => bail!(
                "network ID prefix {key} is ambiguous: {} networks match",
                matches.len()
            ),
        }
    }

    /// Removes a network's conflist.
    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        fsutil::remove_if_exists(&self.path(name)).with_context(|| format!("remove network {name}"))
    }
}

fn bridge_plugin(bridge: &str, internal: bool, ipam: Value) -> Value {
    json!({
        "type": "netctl-bridge", "bridge": bridge, "isGateway": true,
        "isDefaultGateway": !internal, "ipMasq": !internal, "hairpinMode": true, "internal": internal,
        "capabilities": {"portMappings": true, "ips": true, "mac": true},
        "ipam": ipam
    })
}

/// The conflist of a predefined network.
fn predefined(name: &str, id: &str) -> Value {
    let meta = |driver: &str| json!({"id": id, "created": now_rfc3339(), "driver": driver, "options": {}, "labels": {}});
    let plugins = match name {
        "bridge" => vec![bridge_plugin(
            DEFAULT_BRIDGE.0,
            false,
            json!({"type": "netctl-ipam", "subnet": DEFAULT_BRIDGE.1, "allocation": "lowest"}),
        )],
        "host" => vec![json!({"type": "netctl-host"})],
        _ => vec![json!({"type": "netctl-none"})],
    };
    let driver = match name {
        "none" => "null",
        other => other,
    };
    json!({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": name, "netctl": meta(driver), "plugins": plugins})
}

/// What `network create` was asked for.
#[derive(Debug, Default)]
pub struct CreateRequest {
    /// The name.
    pub name: String,
    /// bridge or macvlan.
    pub driver: String,
    /// `--subnet`, several allowed.
    pub subnets: Vec<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--internal`.
    pub internal: bool,
    /// `--label K=V`.
    pub labels: BTreeMap<String, String>,
    /// `-o K=V`.
    pub options: BTreeMap<String, String>,
}

/// Parses `K=V` pairs.
pub fn key_values(pairs: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("{flag} {p:?} is not KEY=VALUE"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn parse_subnet(s: &str) -> anyhow::Result<IpNet> {
    let net: IpNet = s
        .parse()
        .with_context(|| format!("invalid subnet {s:?}: expected a CIDR such as 172.20.0.0/16"))?;
    anyhow::ensure!(
        net.addr() == net.network(),
        "invalid subnet {s}: it has host bits set; did you mean {}/{}?",
        net.network(),
        net.prefix_len()
    );
    Ok(net)
}

/// Address pools for networks created without `--subnet`: Docker's (172.17-31.0.0/16, then
/// 192.168.0.0/16 in /20s), then any from `NETCTL_ADDRESS_POOLS` (`BASE/SIZE,...`, such as
/// `10.10.0.0/16/24`). 172.17.0.0/16 belongs to the default `bridge` network.
fn pools(v6: bool) -> anyhow::Result<Vec<IpNet>> {
    if v6 {
        let base: IpNet = "fd42:6e65:7463::/48".parse()?;
        return Ok(base.subnets(64)?.take(4096).collect());
    }
    let mut out: Vec<IpNet> = (17..=31)
        .filter_map(|b| format!("172.{b}.0.0/16").parse().ok())
        .collect();
    out.extend("192.168.0.0/16".parse::<IpNet>()?.subnets(20)?);
    if let Ok(extra) = std::env::var("NETCTL_ADDRESS_POOLS") {
        for spec in extra.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (base, size) = spec
                .rsplit_once('/')
                .context("NETCTL_ADDRESS_POOLS entries are BASE/SIZE, such as 10.10.0.0/16/24")?;
            let size: u8 = size
                .parse()
                .with_context(|| format!("pool {spec}: bad size"))?;
            out.extend(
                parse_subnet(base)?
                    .subnets(size)
                    .with_context(|| format!("pool {spec}: size too small"))?,
            );
        }
    }
    Ok(out)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The subnets already in use: other networks' and the host's routes.
fn taken(store: &NetworkStore) -> anyhow::Result<Vec<IpNet>> {
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

/// Checks the request and writes the network's conflist; returns the network.
pub fn create(store: &NetworkStore, req: &CreateRequest) -> anyhow::Result<Network> {
    netctl_cni::validate::network_name(&req.name)
        .map_err(|e| anyhow::anyhow!("invalid network name {:?}: {}", req.name, e.msg))?;
    if store.all()?.iter().any(|n| n.name == req.name) {
        bail!("network with name {} already exists", req.name);
    }
    if req.subnets.is_empty() && (req.ip_range.is_some() || req.gateway.is_some()) {
        bail!("--ip-range and --gateway need a --subnet to lie in");
    }
    let mut subnets: Vec<IpNet> = req
        .subnets
        .iter()
        .map(|s| parse_subnet(s))
        .collect::<anyhow::Result<_>>()?;
    let taken = taken(store)?;
    for s in &subnets {
        if let Some(t) = store
            .all()?
            .iter()
            .find(|n| n.subnets().iter().any(|t| overlaps(s, t)))
        {
            bail!(
                "subnet {s} overlaps with network {} ({})",
                t.name,
                t.subnets()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if subnets.is_empty() {
        subnets.push(next_free(&pools(false)?, &taken, true).context(
            "all address pools are in use: remove a network or set NETCTL_ADDRESS_POOLS",
        )?);
    }
    if req.ipv6 && !subnets.iter().any(|s| s.addr().is_ipv6()) {
        subnets.push(
            next_free(&pools(true)?, &taken, false)
                .context("no free IPv6 subnet left in fd42:6e65:7463::/48")?,
        );
    }
    let ranges = range_sets(req, &subnets)?;
    let id = random_id()?;
    let ipam = json!({"type": "netctl-ipam", "ranges": ranges});
    let driver_plugin = match req.driver.as_str() {
        "" | "bridge" => {
            let bridge = req
                .options
                .get("com.docker.network.bridge.name")
                .or_else(|| req.options.get("bridge"))
                .cloned()
                .unwrap_or_else(|| format!("br-{}", &id[..12]));
            netctl_cni::validate::ifname(&bridge)
                .map_err(|e| anyhow::anyhow!("bridge name {bridge:?}: {}", e.msg))?;
            bridge_plugin(&bridge, req.internal, ipam)
        }
        "macvlan" => {
            let mode = req
                .options
                .get("macvlan_mode")
                .map_or("bridge", String::as_str);
            anyhow::ensure!(
                ["bridge", "vepa", "private", "passthru"].contains(&mode),
                "macvlan_mode {mode:?}: use bridge, vepa, private or passthru"
            );
            let mut p = json!({"type": "netctl-macvlan", "mode": mode, "capabilities": {"ips": true, "mac": true}, "ipam": ipam});
            if let Some(parent) = req.options.get("parent") {
                p["master"] = json!(parent);
            }
            p
        }
        other => bail!("unknown driver {other:?}: use bridge or macvlan"),
    };
    let driver = if req.driver.is_empty() {
        "bridge"
    } else {
        req.driver.as_str()
    };
    let conflist = json!({
        "cniVersion": "1.0.0",
        "cniVersions": ["1.0.0", "1.1.0"],
        "name": req.name,
        "netctl": {"id": id, "created": now_rfc3339(), "driver": driver, "internal": req.internal,
                   "enableIPv6": req.ipv6, "options": req.options, "labels": req.labels},
        "plugins": [driver_plugin, {"type": "netctl-dns", "internal": req.internal, "capabilities": {"aliases": true, "dns": true}}]
    });
    NetConfList::from_slice(conflist.to_string().as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.write(&conflist)?;
    store.find(&req.name)
}

/// One range set per subnet, with `--ip-range` and `--gateway` on the subnet they lie in,
/// checked by the allocator's own rules.
fn range_sets(req: &CreateRequest, subnets: &[IpNet]) -> anyhow::Result<Vec<Value>> {
    let ip_range = req.ip_range.as_deref().map(parse_subnet).transpose()?;
    let gateway: Option<IpAddr> = req
        .gateway
        .as_deref()
        .map(|g| {
            g.parse()
                .with_context(|| format!("invalid gateway {g:?}: expected an IP address"))
        })
        .transpose()?;
    if let Some(r) = ip_range {
        anyhow::ensure!(
            subnets.iter().any(|s| s.contains(&r)),
            "--ip-range {r} is not inside any --subnet"
        );
    }
    if let Some(g) = gateway {
        anyhow::ensure!(
            subnets.iter().any(|s| s.contains(&g)),
            "--gateway {g} is not inside any --subnet"
        );
    }
    let mut sets = Vec::new();
    for s in subnets {
        let cfg = netctl_ipam::RangeConfig {
            subnet: s.to_string(),
            ip_range: ip_range.filter(|r| s.contains(r)).map(|r| r.to_string()),
            gateway: gateway.filter(|g| s.contains(g)),
            ..Default::default()
        };
        netctl_ipam::Range::new(&cfg).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.to_string().replace("invalid IPAM configuration: ", "")
            )
        })?;
        sets.push(json!([cfg]));
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_free_subnet_skips_the_default_bridge_and_what_is_taken() {
        let pool = pools(false).unwrap();
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
    fn derived_ids_are_64_hex_and_stable() {
        let a = derived_id("web");
        assert_eq!(a.len(), 64);
        assert_eq!(a, derived_id("web"));
        assert_ne!(a, derived_id("web2"));
    }
}
