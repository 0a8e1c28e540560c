//! Network configuration, configuration lists and results, as they appear on the wire.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode};
use crate::version::SpecVersion;

/// The part of a plugin's network configuration that every plugin shares.
///
/// Plugin-specific keys stay in `extra`; a plugin reads them through its own typed config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The version the runtime asks for, as written (checked separately, so that an
    /// unsupported version is error 1 rather than a decoding error).
    #[serde(default)]
    pub cni_version: String,
    /// The network name.
    #[serde(default)]
    pub name: String,
    /// The plugin type (its binary's name).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Capabilities the plugin declares in a conflist (`{"portMappings": true}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, bool>,
    /// The IPAM section, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamConf>,
    /// DNS settings the network wants its containers to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// The previous plugin's result in a chain, as raw JSON of the chain's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// Capability arguments the runtime injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    /// `args` (CNI conventions: `cni.ips`, labels ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<ConfArgs>,
    /// Every other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A configuration's `args`: the `cni` conventions this project reads, everything else
/// passed through as it came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfArgs {
    /// `cni`: the arguments the CNI conventions define.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniConventionArgs>,
    /// Every other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `args.cni` of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniConventionArgs {
    /// `ips`: addresses the runtime asks for (with or without a prefix length).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Every other key (`labels` ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A state folder named in a configuration (`runDir`, `dataDir`): always an absolute path,
/// since an empty or relative one would put state wherever the runtime happens to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StateDir(std::path::PathBuf);

impl StateDir {
    /// The folder.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `dir`, or `default` when none was configured.
    pub fn or_default(dir: &Option<StateDir>, default: &str) -> std::path::PathBuf {
        dir.as_ref()
            .map_or_else(|| std::path::PathBuf::from(default), |d| d.0.clone())
    }
}

impl TryFrom<std::path::PathBuf> for StateDir {
    type Error = String;

    fn try_from(p: std::path::PathBuf) -> Result<Self, String> {
        if p.is_absolute() {
            Ok(StateDir(p))
        } else {
            Err(format!(
                "state folder {p:?} is not an absolute path: give one such as /run/netctl"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for StateDir {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = std::path::PathBuf::deserialize(d)?;
        StateDir::try_from(p).map_err(serde::de::Error::custom)
    }
}

/// The IPAM section of a network configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamConf {
    /// The IPAM plugin type.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// The IPAM plugin's own keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Capability arguments (`runtimeConfig`) that plugins in this project understand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// `portMappings`: ports to publish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// `ips`: addresses the runtime asks for (with or without a prefix length).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// `mac`: the MAC address the runtime asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `aliases`: DNS names per network name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// `dns`: the resolver settings the runtime wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsCapability>,
    /// `bandwidth`: passed through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Value>,
    /// Any other capability.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `dns` capability argument. Runtimes written in Go (containerd's CRI, through go-cni)
/// send Go's field names (`Servers`), which Go's own plugins read case-insensitively; those
/// names are taken too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsCapability {
    /// Name servers.
    #[serde(default, alias = "Servers", skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Search domains.
    #[serde(default, alias = "Searches", skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    /// Resolver options.
    #[serde(default, alias = "Options", skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    #[serde(alias = "TCP")]
    Tcp,
    /// UDP.
    #[serde(alias = "UDP")]
    Udp,
    /// SCTP.
    #[serde(alias = "SCTP")]
    Sctp,
}

impl Protocol {
    /// How `-p` and `portMappings` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port (`portMappings` capability); Go's field names (`HostPort`, what
/// go-cni sends) are taken too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the host.
    #[serde(alias = "HostPort")]
    pub host_port: u16,
    /// The port in the container.
    #[serde(alias = "ContainerPort")]
    pub container_port: u16,
    /// tcp, udp or sctp.
    #[serde(default, alias = "Protocol")]
    pub protocol: Protocol,
    /// The host address to bind to; all addresses when absent.
    #[serde(
        rename = "hostIP",
        alias = "HostIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host_ip: Option<String>,
}

/// netctl's extension of GC: a GC whose configuration has this key set to `true` (and no
/// valid attachment) removes the network from the host: each plugin takes away what it
/// keeps for the whole network, not only for its attachments. `netctl network rm` sends it;
/// a plugin that does not know it does an ordinary GC.
pub const REMOVE_NETWORK: &str = "netctl.dev/remove-network";

/// netctl's extension of STATUS: with this key set to `true`, a plugin makes what it keeps
/// for the whole network before any attachment (a bridge with its gateway address and
/// rules), as Docker has a bridge network's bridge from `network create` on. Plugins that
/// do not know the key answer an ordinary STATUS.
pub const PREPARE_NETWORK: &str = "netctl.dev/prepare-network";

/// netctl's extension of CHECK: with this key set to `true`, a plugin first makes what it
/// keeps for the attachment match what the runtime passes now (the container's name in
/// `K8S_POD_NAME` and its aliases, after a rename), then checks as usual. `netctl rename`
/// sends it; a plugin that does not know the key does an ordinary CHECK.
pub const REFRESH: &str = "netctl.dev/refresh";

/// A configuration list: one network, a chain of plugins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConfList {
    /// The version every plugin in the chain is called with.
    pub cni_version: String,
    /// Versions this list may be used with (1.1.0 `cniVersions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_versions: Vec<String>,
    /// The network name.
    pub name: String,
    /// Skip CHECK for this network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_check: bool,
    /// Skip GC for this network.
    #[serde(rename = "disableGC", default, skip_serializing_if = "is_false")]
    pub disable_gc: bool,
    /// The plugins, in ADD order, each as its raw JSON object.
    pub plugins: Vec<Map<String, Value>>,
    /// Keys of the list itself that CNI does not define (a runtime's own metadata); kept
    /// when the list is read and written back, never passed to plugins.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl NetConfList {
    /// Parses and checks a configuration list: a supported version, a valid name, plugins
    /// that each name a type.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let list: NetConfList = serde_json::from_slice(bytes)
            .map_err(|e| Error::decoding("the network configuration list is not valid JSON", &e))?;
        list.spec_version()?;
        crate::validate::network_name(&list.name)?;
        if list.plugins.is_empty() {
            return Err(Error::invalid_config(format!(
                "network {} lists no plugins",
                list.name
            )));
        }
        for (i, p) in list.plugins.iter().enumerate() {
            let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
            crate::validate::plugin_type(ty)
                .map_err(|e| e.with_details(format!("plugin #{i} of network {}", list.name)))?;
        }
        Ok(list)
    }

    /// The version to call the plugins with: the newest supported one among `cniVersion` and
    /// the 1.1.0 `cniVersions` list (so a list can say `"cniVersion": "1.0.0"` for older
    /// clients and still get GC and STATUS here); error 1 when none is supported.
    pub fn spec_version(&self) -> Result<SpecVersion, Error> {
        let listed = self
            .cni_versions
            .iter()
            .filter_map(|v| v.parse::<SpecVersion>().ok())
            .max();
        match (self.cni_version.parse::<SpecVersion>(), listed) {
            (Ok(v), Some(l)) => Ok(v.max(l)),
            (Ok(v), None) => Ok(v),
            (Err(_), Some(l)) => Ok(l),
            (Err(e), None) => Err(e),
        }
    }
}

/// One attachment of a container to a network: what GC's valid-attachments lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attachment {
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// An interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its hardware address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Its MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path when the interface is in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// A socket path (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// A PCI ID (1.1.0).
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An address in a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The subnet's gateway, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into the result's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; the plugin's default gateway when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(rename = "advmss", default, skip_serializing_if = "Option::is_none")]
    pub adv_mss: Option<u32>,
    /// Priority (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    /// A plain route to `dst`, via `gw` when given.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            adv_mss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS information in a result or network configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, most preferred first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A successful ADD result, held in one version-independent form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Success {
    /// Interfaces created or found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings for the container.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl Success {
    /// The result as JSON of the given version: `version` on ips before 1.0.0, the 1.1.0
    /// fields only from 1.1.0 on.
    pub fn to_json(&self, version: SpecVersion) -> Value {
        let mut out = self.clone();
        if !version.has_extended_fields() {
            for i in &mut out.interfaces {
                i.mtu = None;
                i.socket_path = None;
                i.pci_id = None;
            }
            for r in &mut out.routes {
                *r = Route::new(r.dst, r.gw);
            }
        }
        let mut v = serde_json::to_value(&out).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("cniVersion".into(), Value::String(version.as_str().into()));
            if version.ips_carry_version() {
                add_ip_versions(m, &self.ips);
            }
        }
        v
    }

    /// Reads a result of any supported version (a `version` field on ips is checked, then
    /// dropped). A 0.1.0/0.2.0 result (`ip4`/`ip6` keys) is error 1.
    pub fn from_json(value: &Value) -> Result<Self, Error> {
        if value.get("ip4").is_some() || value.get("ip6").is_some() {
            return Err(Error::new(
                ErrorCode::IncompatibleVersion,
                "result is in the 0.1.0/0.2.0 format, which is not supported",
            ));
        }
        let s: Success = serde_json::from_value(value.clone())
            .map_err(|e| Error::decoding("the result is not a valid CNI result", &e))?;
        check_ip_versions(value, &s.ips)?;
        Ok(s)
    }

    /// The IP configurations of the interface at `index`.
    pub fn ips_of(&self, index: usize) -> impl Iterator<Item = &IpConfig> {
        self.ips
            .iter()
            .filter(move |ip| ip.interface == Some(index))
    }
}

fn add_ip_versions(m: &mut Map<String, Value>, ips: &[IpConfig]) {
    if let Some(Value::Array(arr)) = m.get_mut("ips") {
        for (entry, ip) in arr.iter_mut().zip(ips) {
            if let Value::Object(o) = entry {
                let fam = if ip.address.addr().is_ipv4() {
                    "4"
                } else {
                    "6"
                };
                o.insert("version".into(), Value::String(fam.into()));
            }
        }
    }
}

fn check_ip_versions(value: &Value, ips: &[IpConfig]) -> Result<(), Error> {
    let Some(Value::Array(arr)) = value.get("ips") else {
        return Ok(());
    };
    for (entry, ip) in arr.iter().zip(ips) {
        let want = if ip.address.addr().is_ipv4() {
            "4"
        } else {
            "6"
        };
        match entry.get("version").and_then(Value::as_str) {
            Some(v) if v != want => {
                return Err(Error::new(
                    ErrorCode::Decoding,
                    format!("ips entry {} says version {v}", ip.address),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn go_runtimes_capability_names_are_read_as_gos_plugins_read_them() {
        // What containerd's CRI sends through go-cni, whose structs have no JSON tags.
        let rc: RuntimeConfig = serde_json::from_str(
            r#"{"portMappings":[{"HostPort":8081,"ContainerPort":80,"Protocol":"TCP","HostIP":""}],
                "dns":{"Servers":["10.0.0.10"],"Searches":["svc.local"],"Options":["ndots:5"]}}"#,
        )
        .unwrap();
        let p = &rc.port_mappings[0];
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (8081, 80, Protocol::Tcp)
        );
        assert_eq!(p.host_ip.as_deref(), Some(""));
        let dns = rc.dns.unwrap();
        assert_eq!(
            (dns.servers, dns.options),
            (vec!["10.0.0.10".to_string()], vec!["ndots:5".to_string()])
        );
    }
    use super::*;
    use serde_json::json;

    /// The result example of the CNI 1.1.0 specification.
    fn spec_result() -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.1.0.1"]}
        })
    }

    #[test]
    fn spec_result_round_trips_unchanged_in_1_1_0() {
        let s = Success::from_json(&spec_result()).unwrap();
        assert_eq!(s.to_json(SpecVersion::V1_1_0), spec_result());
    }

    #[test]
    fn converting_1_1_0_to_0_4_0_to_0_3_1_adds_ip_version_and_drops_new_fields() {
        let mut v = spec_result();
        v["interfaces"][2]["mtu"] = json!(1400);
        v["routes"][0]["table"] = json!(100);
        let s = Success::from_json(&v).unwrap();
        let v040 = s.to_json(SpecVersion::V0_4_0);
        assert_eq!(v040["cniVersion"], "0.4.0");
        assert_eq!(v040["ips"][0]["version"], "4");
        assert!(v040["interfaces"][2].get("mtu").is_none());
        assert!(v040["routes"][0].get("table").is_none());
        let s040 = Success::from_json(&v040).unwrap();
        let v031 = s040.to_json(SpecVersion::V0_3_1);
        assert_eq!(v031["cniVersion"], "0.3.1");
        let mut expect = v040.clone();
        expect["cniVersion"] = json!("0.3.1");
        assert_eq!(v031, expect);
        // Back up to 1.0.0: the version field goes away again.
        let v100 = Success::from_json(&v031)
            .unwrap()
            .to_json(SpecVersion::V1_0_0);
        assert!(v100["ips"][0].get("version").is_none());
    }

    #[test]
    fn ipv6_entries_carry_version_6_in_old_versions() {
        let s = Success {
            ips: vec![IpConfig {
                address: "fd00::5/64".parse().unwrap(),
                gateway: Some("fd00::1".parse().unwrap()),
                interface: Some(0),
            }],
            ..Success::default()
        };
        assert_eq!(s.to_json(SpecVersion::V0_3_0)["ips"][0]["version"], "6");
    }

    #[test]
    fn a_wrong_ip_version_field_or_old_format_is_rejected() {
        let bad =
            json!({"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.2/24"}]});
        assert_eq!(
            Success::from_json(&bad).unwrap_err().code,
            ErrorCode::Decoding
        );
        let old = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}});
        assert_eq!(
            Success::from_json(&old).unwrap_err().code,
            ErrorCode::IncompatibleVersion
        );
    }

    /// The bridge plugin's configuration from the specification's examples.
    #[test]
    fn spec_netconf_keeps_plugin_keys_and_reads_common_ones() {
        let raw = json!({
            "cniVersion": "1.1.0",
            "name": "dbnet",
            "type": "bridge",
            "bridge": "cni0",
            "keyA": ["some more", "plugin specific", "configuration"],
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/16", "gateway": "10.1.0.1"},
            "dns": {"nameservers": ["10.1.0.1"]},
            "runtimeConfig": {
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                "aliases": {"dbnet": ["db", "abc123"]}
            }
        });
        let c: NetConf = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(c.plugin_type, "bridge");
        assert_eq!(c.extra["bridge"], "cni0");
        assert_eq!(c.ipam.as_ref().unwrap().plugin_type, "host-local");
        let rc = c.runtime_config.as_ref().unwrap();
        assert_eq!(rc.port_mappings[0].host_port, 8080);
        assert_eq!(rc.port_mappings[0].protocol, Protocol::Tcp);
        assert_eq!(rc.aliases["dbnet"], vec!["db", "abc123"]);
        assert_eq!(serde_json::to_value(&c).unwrap(), raw);
    }

    #[test]
    fn args_keep_unknown_keys_and_refuse_ips_that_are_not_a_list_of_strings() {
        let raw = json!({"cniVersion": "1.1.0", "name": "n", "type": "bridge",
            "args": {"cni": {"ips": ["10.1.0.5/16"], "labels": [{"key": "a", "value": "b"}]},
                     "vendor": {"x": 1}}});
        let c: NetConf = serde_json::from_value(raw.clone()).unwrap();
        let cni = c.args.as_ref().and_then(|a| a.cni.as_ref()).unwrap();
        assert_eq!(cni.ips, vec!["10.1.0.5/16"]);
        assert_eq!(serde_json::to_value(&c).unwrap(), raw);
        for bad in [
            json!({"cni": {"ips": [5]}}),
            json!({"cni": {"ips": "10.1.0.5"}}),
            json!("ips=10.1.0.5"),
        ] {
            let mut conf = raw.clone();
            conf["args"] = bad.clone();
            assert!(serde_json::from_value::<NetConf>(conf).is_err(), "{bad}");
        }
    }

    #[test]
    fn conflist_from_the_spec_parses_and_bad_ones_say_why() {
        let raw = json!({
            "cniVersion": "1.1.0",
            "cniVersions": ["1.0.0", "1.1.0"],
            "name": "dbnet",
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}},
                {"type": "tuning", "capabilities": {"mac": true}, "sysctl": {"net.core.somaxconn": "500"}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        let list = NetConfList::from_slice(raw.to_string().as_bytes()).unwrap();
        assert_eq!(list.plugins.len(), 3);
        let mut older = list.clone();
        older.cni_version = "1.0.0".into();
        assert_eq!(
            older.spec_version().unwrap(),
            SpecVersion::V1_1_0,
            "cniVersions picks 1.1.0"
        );
        older.cni_versions.clear();
        assert_eq!(older.spec_version().unwrap(), SpecVersion::V1_0_0);
        assert_eq!(serde_json::to_value(&list).unwrap(), raw);

        let mut no_plugins = raw.clone();
        no_plugins["plugins"] = json!([]);
        let e = NetConfList::from_slice(no_plugins.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);

        let mut bad_name = raw.clone();
        bad_name["name"] = json!("../etc");
        let e = NetConfList::from_slice(bad_name.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);

        let mut bad_type = raw;
        bad_type["plugins"][0]["type"] = json!("../../bin/sh");
        let e = NetConfList::from_slice(bad_type.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
    }
}
