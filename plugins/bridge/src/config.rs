//! The bridge plugin's configuration: the reference bridge plugin's keys with the same
//! names and meanings, plus Docker's `internal`.

use std::path::PathBuf;

use netctl_cni::{validate, Error, StateDir};
use serde::Deserialize;
use serde_json::Value;

use netctl_net::DEFAULT_RUN_DIR;

/// The bridge used when the config names none.
pub const DEFAULT_BRIDGE: &str = "netctl0";

fn default_bridge() -> String {
    DEFAULT_BRIDGE.into()
}

fn yes() -> bool {
    true
}

/// The plugin's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConfig {
    /// Bridge device name.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// Put the gateway address on the bridge.
    #[serde(default)]
    pub is_gateway: bool,
    /// Route the container's default traffic through the gateway (implies `isGateway`).
    #[serde(default)]
    pub is_default_gateway: bool,
    /// Replace a different address the bridge already has.
    #[serde(default)]
    pub force_address: bool,
    /// Masquerade traffic leaving the host.
    #[serde(default)]
    pub ip_masq: bool,
    /// MTU of the bridge and the veth pair.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Let the bridge send frames back out the port they came in on.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// Put the bridge in promiscuous mode.
    #[serde(default)]
    pub promisc_mode: bool,
    /// VLAN of the container's port (1-4094; 0 or absent for none). The bridge gets VLAN
    /// filtering and, with a gateway, a gateway interface per VLAN.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Keep the default VLAN 1 on a port that joins `vlan` (the reference's default).
    #[serde(default = "yes")]
    pub preserve_default_vlan: bool,
    /// Drop what the container's port sends with a source MAC or address not its own (ARP
    /// and IP source guard too); on unless `false`, unlike the reference plugin: a container
    /// with CAP_NET_RAW could otherwise pose as its neighbours.
    #[serde(default = "yes")]
    pub macspoofchk: bool,
    /// Run IPv6 duplicate address detection on the container's addresses.
    #[serde(default)]
    pub enabledad: bool,
    /// Leave the container's interface down.
    #[serde(default)]
    pub disable_container_interface: bool,
    /// Docker's `--internal`: no route out and no traffic in or out of the bridge.
    #[serde(default)]
    pub internal: bool,
    /// Traffic from elsewhere may reach containers' addresses directly (Docker 28's
    /// `nat-unprotected` gateway mode).
    #[serde(default)]
    pub unprotected: bool,
    /// Host interfaces whose traffic may reach containers' addresses directly (Docker 28's
    /// `trusted_host_interfaces`).
    #[serde(default)]
    pub trusted_host_interfaces: Vec<String>,
    /// Not even published ports join the network with others (podman's `isolate=strict`).
    #[serde(default)]
    pub isolate_strict: bool,
    /// Docker 28's `routed` gateway mode: published ports reachable at the containers' own
    /// addresses, no masquerade.
    #[serde(default)]
    pub routed: bool,
    /// IPv6's own gateway mode where it differs from IPv4's (which `ipMasq`, `unprotected`
    /// and `routed` give): Docker 28's `gateway_mode_ipv6`.
    #[serde(default)]
    pub ipv6_policy: Option<netctl_firewall::FamilyPolicy>,
    /// Where per-network state (firewall) is kept.
    #[serde(default)]
    pub run_dir: Option<StateDir>,
    /// Which firewall backend: `nftables`, `iptables`, `none`, or `auto` (the default:
    /// nftables when `nft` works here, else iptables).
    #[serde(default)]
    pub firewall_backend: netctl_firewall::Backend,
    /// Put the network's rules back by themselves when someone flushes the host's firewall
    /// (a watcher process, `netctl-bridge --watch-firewall`); on by default.
    #[serde(default = "yes")]
    pub firewall_self_heal: bool,
    /// The IPAM section.
    pub ipam: Option<Value>,
}

impl BridgeConfig {
    /// Checks everything before anything is changed.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_links()?;
        if self.ipam.is_none() {
            return Err(Error::invalid_config(
                "the bridge plugin needs an \"ipam\" section to get addresses",
            ));
        }
        Ok(())
    }

    /// [`BridgeConfig::validate`] without the IPAM section (another plugin brings the lease).
    pub fn validate_links(&self) -> Result<(), Error> {
        validate::ifname(&self.bridge)
            .map_err(|e| Error::invalid_config(format!("bridge name: {}", e.msg)))?;
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(Error::invalid_config(format!(
                    "mtu {mtu} is out of range: use 68 to 65535"
                )));
            }
        }
        if self.hairpin_mode && self.promisc_mode {
            return Err(Error::invalid_config(
                "hairpinMode and promiscMode cannot both be set",
            ));
        }
        if let Some(v) = self.vlan.filter(|v| *v > 4094) {
            return Err(Error::invalid_config(format!(
                "vlan {v} is out of range: use 1 to 4094 (0, or no \"vlan\", for none)"
            )));
        }
        Ok(())
    }

    /// Whether the bridge carries the gateway address.
    pub fn gateway_on_bridge(&self) -> bool {
        self.is_gateway || self.is_default_gateway
    }

    /// Whether containers get a default route (never on internal networks).
    pub fn default_route(&self) -> bool {
        self.is_default_gateway && !self.internal
    }

    /// The VLAN of the container's port, if any.
    pub fn vlan(&self) -> Option<u16> {
        self.vlan.filter(|v| *v != 0)
    }

    /// The host's layer 3 interface of this network, which carries the gateway and names
    /// the network in firewall rules: the bridge, or the VLAN's gateway interface.
    pub fn l3_interface(&self) -> String {
        match self.vlan() {
            Some(vid) => vlan_gateway_names(&self.bridge, vid).0,
            None => self.bridge.clone(),
        }
    }

    /// The run folder.
    pub fn run_dir(&self) -> PathBuf {
        StateDir::or_default(&self.run_dir, DEFAULT_RUN_DIR)
    }
}

/// Names for the host end of a container's veth, in order of preference: `v` + the first 8
/// characters of the container ID + `-` + the interface name, so `ip link` shows whose it is;
/// then a hash of both, for when that is too long or already taken (IDs sharing a prefix).
pub fn host_veth_names(container_id: &str, ifname: &str) -> Vec<String> {
    let hash = netctl_net::fnv1a64(&format!("{container_id}/{ifname}"));
    let hashed = format!("veth{:011x}", hash & 0xfff_ffff_ffff);
    let short: String = container_id.chars().take(8).collect();
    let readable = format!("v{short}-{ifname}");
    if readable.len() <= validate::MAX_IFNAME_LEN {
        vec![readable, hashed]
    } else {
        vec![hashed]
    }
}

/// The veth pair that gives VLAN `vid` of `bridge` a layer 3 interface, as the reference
/// plugin makes it: (gateway side `<bridge>.<vid>`, or a hash of the bridge name when that
/// is too long; bridge port side).
pub fn vlan_gateway_names(bridge: &str, vid: u16) -> (String, String) {
    let readable = format!("{bridge}.{vid}");
    let l3 = if readable.len() <= validate::MAX_IFNAME_LEN {
        readable
    } else {
        let h = netctl_net::fnv1a64(bridge) & 0xffff_ffff;
        format!("g{h:08x}.{vid}")
    };
    let port = netctl_net::fnv1a64(&format!("{bridge}.{vid}")) & 0xff_ffff_ffff;
    (l3, format!("vg{port:010x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netctl_cni::ErrorCode;
    use serde_json::json;

    fn conf(extra: Value) -> BridgeConfig {
        let mut v = json!({"ipam": {"type": "netctl-ipam", "subnet": "10.0.0.0/24"}});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reference_keys_parse_with_reference_defaults() {
        let c = conf(
            json!({"bridge": "cni0", "isDefaultGateway": true, "ipMasq": true, "mtu": 1400, "hairpinMode": true}),
        );
        assert_eq!(c.bridge, "cni0");
        assert!(c.gateway_on_bridge() && c.default_route() && c.ip_masq);
        let d = conf(json!({}));
        assert_eq!(d.bridge, "netctl0");
        assert!(!d.gateway_on_bridge() && !d.ip_masq);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused_before_anything_is_made() {
        for (extra, code) in [
            (json!({"mtu": 70000}), ErrorCode::InvalidConfig),
            (json!({"mtu": 10}), ErrorCode::InvalidConfig),
            (
                json!({"hairpinMode": true, "promiscMode": true}),
                ErrorCode::InvalidConfig,
            ),
            (
                json!({"bridge": "a-very-long-bridge-name"}),
                ErrorCode::InvalidConfig,
            ),
            (json!({"vlan": 4095}), ErrorCode::InvalidConfig),
        ] {
            assert_eq!(
                conf(extra.clone()).validate().unwrap_err().code,
                code,
                "{extra}"
            );
        }
        let no_ipam: BridgeConfig = serde_json::from_value(json!({})).unwrap();
        assert!(no_ipam.validate().is_err());
    }

    #[test]
    fn a_vlan_network_is_named_by_its_gateway_interface() {
        let c = conf(json!({"bridge": "br0", "vlan": 10}));
        assert!(c.validate().is_ok() && c.preserve_default_vlan);
        assert_eq!((c.vlan(), c.l3_interface().as_str()), (Some(10), "br0.10"));
        let none = conf(json!({"bridge": "br0", "vlan": 0}));
        assert_eq!((none.vlan(), none.l3_interface().as_str()), (None, "br0"));
        let (l3, port) = vlan_gateway_names("br-0123456789ab", 4094);
        assert!(
            l3.len() <= 15 && l3.ends_with(".4094") && port.len() <= 15,
            "{l3} {port}"
        );
        assert_ne!(port, vlan_gateway_names("br-0123456789ab", 4093).1);
    }

    #[test]
    fn internal_networks_never_get_a_default_route() {
        let c = conf(json!({"isDefaultGateway": true, "internal": true}));
        assert!(!c.default_route());
    }

    #[test]
    fn host_veth_names_show_the_container_and_fit_15_characters() {
        let names = host_veth_names("4f3a2b1c99aa", "eth0");
        assert_eq!(names[0], "v4f3a2b1c-eth0");
        assert_ne!(
            names[1],
            host_veth_names("4f3a2b1c99ab", "eth0")[1],
            "the fallback tells prefixes apart"
        );
        let long = host_veth_names("4f3a2b1c99aa", "verylongname1");
        assert!(
            long.len() == 1 && long[0].len() <= 15 && long[0].starts_with("veth"),
            "{long:?}"
        );
    }
}
