//! Kernel parameters under /proc/sys, read and written in the calling thread's network
//! namespace (the `net/` entries belong to the namespace of whoever opens them).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::NetError;

/// Sets `key` (such as `net/ipv4/ip_forward`) to `value`, writing only when it differs.
/// Keys come from code and validated interface names, never from raw input.
pub fn set_sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path = PathBuf::from("/proc/sys").join(key);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| NetError::Netlink {
        what: format!("set {} to {value}", key.replace('/', ".")),
        source,
    })
}

/// Sets `net.ipv6.conf.<ifname>.<key>` in this thread's namespace. Ok(false) when /proc/sys
/// cannot be written here; Ok(true) when done, or when the kernel has no IPv6.
/// `ifname` must be a validated interface name.
pub fn set_ipv6_conf(ifname: &str, key: &str, value: &str) -> Result<bool, NetError> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/{key}");
    match std::fs::write(&path, value) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound && !Path::new("/proc/sys/net/ipv6").exists() => {
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
            ) =>
        {
            Ok(false)
        }
        Err(source) => Err(NetError::Netlink {
            what: format!("set net.ipv6.conf.{ifname}.{key} to {value}"),
            source,
        }),
    }
}

/// Turns IPv6 off on link `ifname` in this thread's namespace (its `disable_ipv6` sysctl):
/// no address, no route and no neighbour entry for it, so the link adds nothing to the
/// IPv6 table that later link changes walk. `ifname` must be a validated interface name.
/// Ok(false) when the sysctl cannot be written here (a read-only /proc/sys, as inside a
/// container); Ok(true) when done, or when the kernel has no IPv6.
pub fn disable_ipv6(ifname: &str) -> Result<bool, NetError> {
    set_ipv6_conf(ifname, "disable_ipv6", "1")
}
