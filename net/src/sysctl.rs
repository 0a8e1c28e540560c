//! Kernel parameters under /proc/sys, read and written in the calling thread's network
//! namespace (the `net/` entries belong to the namespace of whoever opens them).

use std::path::PathBuf;

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
