//! The IPAM section of a network configuration: host-local's shape (`ranges`, `routes`,
//! `dataDir`, or the single-range shorthand), plus `ipRange` and the allocation order.

use std::net::IpAddr;
use std::path::PathBuf;

use netctl_cni::{Route, StateDir};
use serde::{Deserialize, Serialize};

use crate::error::IpamError;
use crate::range::{Range, RangeSet};

/// Where allocations live when `dataDir` is not given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/netctl/ipam";

/// Which free address the allocator picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocationOrder {
    /// The next free address after the last one handed out, wrapping around (host-local,
    /// podman): a freed address is not reused at once.
    #[default]
    Sequential,
    /// The lowest free address (Docker): freed addresses are reused at once.
    Lowest,
}

/// One range as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConfig {
    /// The subnet, as CIDR.
    pub subnet: String,
    /// First address to hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// Last address to hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    /// The gateway; the first host address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Docker's `--ip-range`: a CIDR inside the subnet that containers get addresses from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Docker's `--aux-address NAME=IP`: addresses of the subnet never handed out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub auxiliary_addresses: std::collections::BTreeMap<String, IpAddr>,
}

/// The `ipam` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    /// The plugin type.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Range sets: one address is handed out from each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Vec<RangeConfig>>,
    /// Shorthand for a single range: its subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Shorthand: first address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// Shorthand: last address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    /// Shorthand: gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Shorthand: Docker's `--ip-range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Routes returned with every lease.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Where allocations are stored; one folder per network below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<StateDir>,
    /// Which free address is picked.
    #[serde(default)]
    pub allocation: AllocationOrder,
}

impl IpamConfig {
    /// The configured range sets, each checked; the shorthand makes one set.
    pub fn range_sets(&self) -> Result<Vec<RangeSet>, IpamError> {
        let mut raw = self.ranges.clone();
        if let Some(subnet) = &self.subnet {
            raw.push(vec![RangeConfig {
                subnet: subnet.clone(),
                range_start: self.range_start,
                range_end: self.range_end,
                gateway: self.gateway,
                ip_range: self.ip_range.clone(),
                auxiliary_addresses: Default::default(),
            }]);
        } else if self.ip_range.is_some() || self.gateway.is_some() {
            return Err(IpamError::InvalidConfig(
                "ipRange and gateway need a subnet: give \"subnet\" too".into(),
            ));
        }
        if raw.is_empty() {
            return Err(IpamError::InvalidConfig(
                "no address ranges: give \"ranges\" or \"subnet\"".into(),
            ));
        }
        let sets = raw
            .iter()
            .map(|set| RangeSet::new(set.iter().map(Range::new).collect::<Result<_, _>>()?))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, s) in sets.iter().enumerate() {
            if sets[..i].iter().any(|o| o.overlaps(s)) {
                return Err(IpamError::InvalidConfig(format!(
                    "range sets overlap: {s} is used twice"
                )));
            }
        }
        Ok(sets)
    }

    /// The folder holding allocations.
    pub fn data_dir(&self) -> PathBuf {
        StateDir::or_default(&self.data_dir, DEFAULT_DATA_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_local_configs_parse_unchanged() {
        let c: IpamConfig = serde_json::from_value(json!({
            "type": "host-local",
            "ranges": [
                [{"subnet": "10.10.0.0/16", "rangeStart": "10.10.1.20", "rangeEnd": "10.10.3.50", "gateway": "10.10.0.254"},
                 {"subnet": "172.16.5.0/24"}],
                [{"subnet": "3ffe:ffff:0:01ff::/64", "rangeStart": "3ffe:ffff:0:01ff::0010", "rangeEnd": "3ffe:ffff:0:01ff::0020"}]
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}, {"dst": "3ffe:ffff:0:01ff::1/64"}],
            "dataDir": "/run/my-orchestrator/container-ipam-state"
        }))
        .unwrap();
        let sets = c.range_sets().unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].ranges().len(), 2);
        assert_eq!(sets[0].ranges()[0].gateway().to_string(), "10.10.0.254");
        assert_eq!(c.routes.len(), 3);
    }

    #[test]
    fn shorthand_with_ip_range_makes_one_set() {
        let c: IpamConfig = serde_json::from_value(json!({
            "type": "netctl-ipam", "subnet": "172.72.0.0/16", "ipRange": "172.72.0.0/24",
            "gateway": "172.72.0.1", "allocation": "lowest"
        }))
        .unwrap();
        assert_eq!(c.allocation, AllocationOrder::Lowest);
        let sets = c.range_sets().unwrap();
        assert_eq!(sets[0].ranges()[0].end().to_string(), "172.72.0.255");
    }

    #[test]
    fn an_empty_or_relative_data_dir_is_refused() {
        for bad in ["", "ipam", "./state"] {
            let c = serde_json::from_value::<IpamConfig>(
                json!({"subnet": "10.0.0.0/24", "dataDir": bad}),
            );
            let e = c.unwrap_err().to_string();
            assert!(e.contains("not an absolute path"), "{bad:?}: {e}");
        }
        let c: IpamConfig = serde_json::from_value(json!({"subnet": "10.0.0.0/24"})).unwrap();
        assert_eq!(c.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn missing_subnet_and_overlapping_sets_are_errors() {
        let none: IpamConfig = serde_json::from_value(json!({"type": "netctl-ipam"})).unwrap();
        assert!(none.range_sets().is_err());
        let gw_only: IpamConfig =
            serde_json::from_value(json!({"type": "netctl-ipam", "gateway": "10.0.0.1"})).unwrap();
        assert!(gw_only
            .range_sets()
            .unwrap_err()
            .to_string()
            .contains("need a subnet"));
        let twice: IpamConfig = serde_json::from_value(json!({"type": "netctl-ipam",
            "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}))
        .unwrap();
        assert!(twice.range_sets().is_err());
    }
}
