//! What the kernel is told for one container beyond its namespaces: `--ulimit` (resource
//! limits of its first process, inherited by the rest) and `--sysctl` (the namespaced
//! kernel parameters Docker allows, written into the container's own /proc/sys).

use std::collections::BTreeMap;

use rustix::process::{Resource, Rlimit};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Context, Error, Result};
use crate::runtime::rootfs::Rootfs;

/// One `--ulimit NAME=SOFT[:HARD]`; -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// Docker's name (nofile, nproc, core ...).
    pub name: String,
    /// The hard limit.
    pub hard: i64,
    /// The soft limit.
    pub soft: i64,
}

/// Docker's ulimit names and the kernel's resources.
const RESOURCES: [(&str, Resource); 16] = [
    ("core", Resource::Core),
    ("cpu", Resource::Cpu),
    ("data", Resource::Data),
    ("fsize", Resource::Fsize),
    ("locks", Resource::Locks),
    ("memlock", Resource::Memlock),
    ("msgqueue", Resource::Msgqueue),
    ("nice", Resource::Nice),
    ("nofile", Resource::Nofile),
    ("nproc", Resource::Nproc),
    ("rss", Resource::Rss),
    ("rtprio", Resource::Rtprio),
    ("rttime", Resource::Rttime),
    ("sigpending", Resource::Sigpending),
    ("stack", Resource::Stack),
    ("as", Resource::As),
];

/// Parses `--ulimit` as Docker does, with its errors.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let Some((name, limits)) = s.split_once('=') else {
        invalid!("invalid ulimit argument: {s}");
    };
    if !RESOURCES.iter().any(|(n, _)| *n == name) {
        invalid!("invalid ulimit type: {name}");
    }
    let number = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| Error::Invalid(format!("invalid ulimit argument: {s}")))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => (number(limits)?, number(limits)?),
    };
    // -1 is unlimited: above every number.
    let above = |a: i64, b: i64| b != -1 && (a == -1 || a > b);
    if above(soft, hard) {
        invalid!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(Ulimit {
        name: name.to_string(),
        hard,
        soft,
    })
}

/// Sets the calling process's limits (before it drops the capability to raise them).
pub fn apply_ulimits(limits: &[Ulimit]) -> Result<()> {
    let value = |v: i64| u64::try_from(v).ok();
    for u in limits {
        let Some((_, resource)) = RESOURCES.iter().find(|(n, _)| *n == u.name) else {
            invalid!("invalid ulimit type: {}", u.name);
        };
        let limit = Rlimit {
            current: value(u.soft),
            maximum: value(u.hard),
        };
        rustix::process::setrlimit(*resource, limit)
            .ctx(|| format!("set the {} limit to {}:{}", u.name, u.soft, u.hard))?;
    }
    Ok(())
}

/// The IPC parameters Docker allows one by one; `net.` and `fs.mqueue.` ones by prefix.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Parses `--sysctl KEY=VALUE`: only the namespaced parameters Docker allows, in its words;
/// a key is dotted words (never a path).
pub fn parse_sysctl(s: &str) -> Result<(String, String)> {
    let not_allowed = || Error::Invalid(format!("sysctl '{s}' is not whitelisted"));
    let (key, value) = s.split_once('=').ok_or_else(not_allowed)?;
    let allowed =
        IPC_SYSCTLS.contains(&key) || ["net.", "fs.mqueue."].iter().any(|p| key.starts_with(p));
    let plain = key.split('.').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !allowed || !plain {
        return Err(not_allowed());
    }
    Ok((key.to_string(), value.to_string()))
}

/// Checks the sysctls against the namespaces the container gets: `net.` ones need its own
/// network namespace, the IPC ones its own IPC namespace.
pub fn check_sysctls(
    sysctls: &BTreeMap<String, String>,
    own_net: bool,
    own_ipc: bool,
) -> Result<()> {
    for key in sysctls.keys() {
        if key.starts_with("net.") && !own_net {
            invalid!("sysctl {key:?} not allowed in host network namespace");
        }
        if !key.starts_with("net.") && !own_ipc {
            invalid!("sysctl {key:?} is not in a separate kernel namespace");
        }
    }
    Ok(())
}

/// Writes the sysctls into the container's /proc/sys (mounted, not yet read-only).
pub fn apply_sysctls(root: &Rootfs, sysctls: &BTreeMap<String, String>) -> Result<()> {
    use std::io::Write;
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let Some((fd, false)) = root.find(&path)? else {
            invalid!("sysctl {key:?}: there is no {path} in the container's kernel");
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(crate::runtime::rootfs::fd_path(&fd))
            .ctx(|| format!("open {path}"))?;
        f.write_all(value.as_bytes())
            .ctx(|| format!("set {key} to {value:?}"))?;
    }
    Ok(())
}

/// One `--device HOST[:CONTAINER][:PERMISSIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// The device node on the host.
    pub path_on_host: String,
    /// Where it appears in the container (under /dev).
    pub path_in_container: String,
    /// r, w and m, as given (what a device group, when the container has one, allows).
    pub cgroup_permissions: String,
}

impl DeviceMapping {
    /// The device group rule that allows this node (`c 1:3 rwm`); None when the host path
    /// is no device node (the start then says so).
    pub fn cgroup_rule(&self) -> Option<String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(&self.path_on_host).ok()?;
        let kind = match meta.file_type() {
            t if t.is_char_device() => 'c',
            t if t.is_block_device() => 'b',
            _ => return None,
        };
        let rdev = meta.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        Some(format!(
            "{kind} {major}:{minor} {}",
            self.cgroup_permissions
        ))
    }
}

/// Parses `--device` as Docker does.
pub fn parse_device(s: &str) -> Result<DeviceMapping> {
    let mode_ok = |m: &str| !m.is_empty() && m.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, m] if mode_ok(m) => (*h, *h, *m),
        [h, c] => (*h, *c, "rwm"),
        [h, c, m] => (*h, *c, *m),
        _ => invalid!("invalid device specification: {s}"),
    };
    if !mode_ok(perms) {
        invalid!("invalid device mode: {perms}");
    }
    for p in [host, container] {
        if !p.starts_with('/') {
            invalid!("{p} is not an absolute path");
        }
    }
    if !container.starts_with("/dev/") || container.split('/').any(|c| c == "..") {
        invalid!("invalid device specification: {s}: netctl places devices under /dev only");
    }
    Ok(DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_as_docker_reads_them() {
        let d = parse_device("/dev/null:/dev/mynull:rw").unwrap();
        assert_eq!(
            (
                d.path_on_host.as_str(),
                d.path_in_container.as_str(),
                d.cgroup_permissions.as_str()
            ),
            ("/dev/null", "/dev/mynull", "rw")
        );
        assert_eq!(
            parse_device("/dev/fuse:r").unwrap().path_in_container,
            "/dev/fuse"
        );
        assert_eq!(parse_device("/dev/fuse").unwrap().cgroup_permissions, "rwm");
        for bad in [
            "dev/fuse",
            "/dev/fuse:/dev/f:xyz",
            "/a:/b:c:d",
            "/dev/null:/etc/x",
            "/dev/null:/dev/../etc/x",
        ] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ulimits_parse_as_docker_reads_them() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            Ulimit {
                name: "nofile".into(),
                hard: 2048,
                soft: 1024
            }
        );
        assert_eq!(parse_ulimit("nproc=64").unwrap().hard, 64);
        assert_eq!(parse_ulimit("core=-1").unwrap().soft, -1);
        for (bad, says) in [
            ("nofiles=1", "invalid ulimit type: nofiles"),
            ("nofile", "invalid ulimit argument"),
            ("nofile=x", "invalid ulimit argument"),
            (
                "nofile=10:5",
                "soft limit must be less than or equal to hard limit: 10 > 5",
            ),
        ] {
            let e = parse_ulimit(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn only_namespaced_sysctls_with_plain_keys_are_taken() {
        assert!(parse_sysctl("net.ipv4.ip_forward=1").is_ok());
        assert!(parse_sysctl("kernel.shmmax=1000").is_ok());
        assert!(parse_sysctl("fs.mqueue.msg_max=20").is_ok());
        for bad in [
            "kernel.hostname=x",
            "vm.swappiness=1",
            "net.ipv4",
            "net../../kernel/core_pattern=x",
            "net.ipv4/../x=1",
        ] {
            let e = parse_sysctl(bad).unwrap_err().to_string();
            assert!(e.contains("is not whitelisted"), "{bad}: {e}");
        }
        let net: BTreeMap<String, String> = [("net.ipv4.ip_forward".into(), "1".into())].into();
        assert!(check_sysctls(&net, false, true).is_err());
        assert!(check_sysctls(&net, true, false).is_ok());
    }
}
