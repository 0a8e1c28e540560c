//! Network namespaces and typed link and address operations over a synchronous netlink
//! socket. A socket opened inside a namespace keeps working on that namespace from any
//! thread, so no thread of the caller ever switches namespace.

mod detach;
mod error;
pub mod iface;
mod inventory;
mod netlink;
mod netns;
mod ops;
mod sysctl;
mod tun;
mod vlan;
mod vxlan;

pub use detach::DETACHED_NAME;
pub use error::NetError;
pub use inventory::namespace_result;
pub use netlink::{Addr, Link, Netlink};
pub use netns::NetNs;
pub use ops::{parse_mac, MacvlanMode, RouteSpec};
pub use sysctl::{disable_ipv6, set_sysctl};
pub use tun::create_tun;
pub use vlan::PortVlan;
pub use vxlan::{FdbEntry, VxlanSpec};

/// Where netctl's plugins keep runtime state when a conflist gives no `runDir`.
pub const DEFAULT_RUN_DIR: &str = "/run/netctl";

/// FNV-1a, 64 bits: a stable hash for deriving short names from IDs (not for security).
pub fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
