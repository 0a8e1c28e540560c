//! Who a container's processes are and what they may do: Docker's `--user`, `--group-add`,
//! `--cap-add`, `--cap-drop` and `--privileged`, resolved against the container's own
//! /etc/passwd and /etc/group (hostile files: bounded, parsed line by line, nothing of them
//! trusted but numbers and names).

use rustix::thread::CapabilitySet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a container asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privileges {
    /// `-u`: NAME, UID, NAME:GROUP or UID:GID; empty for root.
    #[serde(default)]
    pub user: String,
    /// `--group-add`: group names or GIDs.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `--cap-add`, as given (`NET_ADMIN`, `cap_net_admin`, `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as given.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, no seccomp filter, no masked paths, /sys
    /// writable and the host's devices.
    #[serde(default)]
    pub privileged: bool,
}

/// Docker's default capabilities but CAP_MKNOD: Docker lets a container make device nodes
/// because its device cgroup then refuses to open any but the usual few; netctl makes a
/// device group only for a container that can mknod or asks for device rules (joining one
/// costs an RCU grace period, ~10 ms, at its start), so CAP_MKNOD stays out unless
/// `--cap-add MKNOD` asks, and then the device group comes with it.
pub const DEFAULT_CAPS: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::AUDIT_WRITE);

/// Every capability the kernel interface names (the host's bounding set may hold fewer:
/// those are left out when the process starts).
pub fn every_capability() -> CapabilitySet {
    CapabilitySet::from_bits_retain(u64::MAX)
        .iter_names()
        .fold(CapabilitySet::empty(), |all, (_, c)| all | c)
}

/// One capability name as Docker reads it: any case, with or without `CAP_`; `ALL` is
/// every capability.
fn capability(name: &str, flag: &str) -> Result<CapabilitySet> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(every_capability());
    }
    CapabilitySet::from_name(bare)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "invalid {flag}: unknown capability: \"CAP_{bare}\""
            ))
        })
}

/// The named capabilities of `list` (with `all`: whether ALL is among them, as the set).
fn named(list: &[String], flag: &str, all: bool) -> Result<CapabilitySet> {
    let mut set = CapabilitySet::empty();
    for n in list {
        let c = capability(n, flag)?;
        if all == (c == every_capability()) {
            set |= c;
        }
    }
    Ok(set)
}

impl Privileges {
    /// Refuses what Docker refuses when a container is made: unknown capabilities.
    pub fn check(&self) -> Result<()> {
        self.capabilities().map(drop)
    }

    /// The capabilities its processes hold as root (Docker's rule: `--privileged` is every
    /// one; else the defaults, or all with `--cap-add ALL`, or none with `--cap-drop ALL`;
    /// then the named drops go and the named adds come, so an add beats a drop).
    pub fn capabilities(&self) -> Result<CapabilitySet> {
        let add = named(&self.cap_add, "CapAdd", false)?;
        let drop = named(&self.cap_drop, "CapDrop", false)?;
        let add_all = !named(&self.cap_add, "CapAdd", true)?.is_empty();
        let drop_all = !named(&self.cap_drop, "CapDrop", true)?.is_empty();
        if self.privileged {
            return Ok(every_capability());
        }
        let base = match (add_all, drop_all) {
            (true, _) => every_capability(),
            (false, true) => CapabilitySet::empty(),
            (false, false) => DEFAULT_CAPS,
        };
        Ok((base - drop) | add)
    }

    /// The capabilities by name (`CAP_CHOWN` ...), as seccomp profiles scope rules.
    pub fn capability_names(&self) -> Result<Vec<String>> {
        Ok(self
            .capabilities()?
            .iter_names()
            .map(|(n, _)| format!("CAP_{n}"))
            .collect())
    }
}

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The user's home, for `HOME` when the container sets none.
    pub home: String,
}

/// One line of /etc/passwd: name, uid, gid, home.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

/// One line of /etc/group: name, gid, members.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let members = f.get(3).map_or(Vec::new(), |m| {
            m.split(',').filter(|s| !s.is_empty()).collect()
        });
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

/// A group by name or number (a number need not be in the file).
fn group_id(spec: &str, group: &str) -> Result<u32> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    group_entries(group)
        .find(|(n, _, _)| *n == spec)
        .map(|(_, gid, _)| gid)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "unable to find group {spec}: no matching entries in group file"
            ))
        })
}

/// Resolves `user` (Docker's `-u`) and `group_add` against the container's passwd and
/// group files, as Docker does: a name must be in passwd; a UID need not (then GID 0 and
/// home /); the supplementary groups are the primary one, those listing the user as a
/// member (unless a group was given) and `group_add`.
pub fn resolve(user: &str, group_add: &[String], passwd: &str, group: &str) -> Result<Identity> {
    let (who, grp) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let who = if who.is_empty() { "0" } else { who };
    let entry = match who.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == who)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "unable to find user {who}: no matching entries in passwd file"
                    ))
                })?,
        ),
    };
    let uid = entry
        .as_ref()
        .map_or_else(|| who.parse().unwrap_or(0), |e| e.uid);
    let mut id = Identity {
        uid,
        gid: entry.as_ref().map_or(0, |e| e.gid),
        groups: Vec::new(),
        home: match &entry {
            Some(e) if !e.home.is_empty() => e.home.to_string(),
            _ if uid == 0 => "/root".into(),
            _ => "/".into(),
        },
    };
    match grp {
        Some(g) => id.gid = group_id(g, group)?,
        None => {
            if let Some(e) = &entry {
                id.groups = group_entries(group)
                    .filter(|(_, _, members)| members.contains(&e.name))
                    .map(|(_, gid, _)| gid)
                    .collect();
            }
        }
    }
    // Docker's processes hold their primary group among the supplementary ones too.
    id.groups.push(id.gid);
    for g in group_add {
        id.groups.push(group_id(g, group)?);
    }
    id.groups.sort_unstable();
    id.groups.dedup();
    Ok(id)
}

/// The most of /etc/passwd or /etc/group read (a hostile image may make it huge).
const MAX_ACCOUNT_FILE: u64 = 1 << 20;

/// `path` (in the caller's root: the container's) as text, empty when missing or not a
/// regular file; at most `MAX_ACCOUNT_FILE` bytes.
pub fn account_file(path: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking and no controlling terminal: an image may make it a FIFO or a device.
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e).map_err(|e| Error::State(format!("read {path}: {e}"))),
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        // A FIFO, a device or a folder holds no accounts: as if it were missing.
        return Ok(String::new());
    }
    let mut bytes = Vec::new();
    f.take(MAX_ACCOUNT_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::State(format!("read {path}: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Makes this process what `privs` asks, as the last step before the container's command:
/// the capability bounding set cut to its capabilities (those the host has), the user and
/// groups of the container's /etc/passwd and /etc/group (read in this process's root,
/// which must be the container's), the capabilities themselves for root (a non-root user
/// keeps none, as in Docker), and no_new_privs unless privileged. Returns the identity.
pub fn assume(privs: &Privileges) -> Result<Identity> {
    use rustix::thread as t;
    let bounding: CapabilitySet = every_capability()
        .iter()
        .filter(|c| t::capability_is_in_bounding_set(*c).unwrap_or(false))
        .fold(CapabilitySet::empty(), |all, c| all | c);
    let keep = privs.capabilities()? & bounding;
    for cap in (bounding - keep).iter() {
        t::remove_capability_from_bounding_set(cap)
            .map_err(|e| Error::State(format!("drop a capability: {e}")))?;
    }
    let id = resolve(
        &privs.user,
        &privs.group_add,
        &account_file("/etc/passwd")?,
        &account_file("/etc/group")?,
    )?;
    become_user(&id)?;
    if id.uid == 0 {
        let sets = t::CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        };
        t::set_capabilities(None, sets)
            .map_err(|e| Error::State(format!("set capabilities: {e}")))?;
    }
    if !privs.privileged {
        t::set_no_new_privs(true).map_err(|e| Error::State(format!("set no_new_privs: {e}")))?;
    }
    Ok(id)
}

/// Groups, then group, then user (a non-root user loses every capability on the way).
fn become_user(id: &Identity) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let failed = |what: &str, e: nix::Error| Error::State(format!("{what}: {e}"));
    let groups: Vec<Gid> = id.groups.iter().copied().map(Gid::from_raw).collect();
    setgroups(&groups).map_err(|e| failed("set the supplementary groups", e))?;
    let gid = Gid::from_raw(id.gid);
    setresgid(gid, gid, gid).map_err(|e| failed("set the group", e))?;
    let uid = Uid::from_raw(id.uid);
    setresuid(uid, uid, uid).map_err(|e| failed("set the user", e))
}

fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww:x:33:\nstaff:x:50:www\n";

    fn id(user: &str, add: &[&str]) -> Result<Identity> {
        let add: Vec<String> = add.iter().map(ToString::to_string).collect();
        resolve(user, &add, PASSWD, GROUP)
    }

    /// The cases a real Docker 20.10 answered with `id` (see tests/netns/tests/privileges.rs).
    #[test]
    fn users_resolve_as_docker_resolves_them() {
        let www = id("www", &[]).unwrap();
        assert_eq!(
            (www.uid, www.gid, www.groups.clone()),
            (33, 33, vec![33, 50])
        );
        assert_eq!(www.home, "/var/www");
        assert_eq!(id("33", &[]).unwrap(), www);
        let g = id("33:50", &[]).unwrap();
        assert_eq!((g.uid, g.gid, g.groups), (33, 50, vec![50]));
        assert_eq!(id("www:staff", &[]).unwrap().gid, 50);
        let stranger = id("1234", &[]).unwrap();
        assert_eq!(
            (stranger.uid, stranger.gid, stranger.home.as_str()),
            (1234, 0, "/")
        );
        assert_eq!(id("", &[]).unwrap().home, "/root");
        assert_eq!(id("www", &["daemon"]).unwrap().groups, vec![1, 33, 50]);
        assert_eq!(id("", &["777", "staff"]).unwrap().groups, vec![0, 50, 777]);
        assert_eq!(id("www:staff", &["daemon"]).unwrap().groups, vec![1, 50]);
        assert_eq!(id("1234", &[]).unwrap().groups, vec![0]);
        let e = id("nobody", &[]).unwrap_err().to_string();
        assert!(e.contains("unable to find user nobody: no matching entries in passwd file"));
        let e = id("www:nogroup", &[]).unwrap_err().to_string();
        assert!(e.contains("unable to find group nogroup"));
    }

    #[test]
    fn hostile_account_files_give_errors_or_nothing() {
        let junk = "::::\n:x:notanumber:0::\nwww:x:33\n\u{0}\n";
        assert!(resolve("www", &[], junk, junk).is_err());
        assert_eq!(resolve("7", &[], junk, junk).unwrap().uid, 7);
    }

    fn caps(add: &[&str], drop: &[&str], privileged: bool) -> Result<CapabilitySet> {
        Privileges {
            cap_add: add.iter().map(ToString::to_string).collect(),
            cap_drop: drop.iter().map(ToString::to_string).collect(),
            privileged,
            ..Privileges::default()
        }
        .capabilities()
    }

    /// Docker 20.10's answers (CapEff), less CAP_MKNOD, which netctl keeps out by default.
    #[test]
    fn capabilities_follow_dockers_rules() {
        let bits = |s: CapabilitySet| s.bits();
        assert_eq!(
            bits(caps(&[], &[], false).unwrap()),
            0xa80425fb & !(1 << 27)
        );
        assert_eq!(
            bits(caps(&["NET_ADMIN"], &[], false).unwrap()),
            0xa80435fb & !(1 << 27)
        );
        assert_eq!(
            bits(caps(&["cap_net_admin"], &[], false).unwrap()),
            0xa80435fb & !(1 << 27)
        );
        assert_eq!(bits(caps(&["NET_ADMIN"], &["ALL"], false).unwrap()), 0x1000);
        assert_eq!(
            caps(&["NET_ADMIN"], &["NET_ADMIN"], false).unwrap(),
            caps(&["NET_ADMIN"], &[], false).unwrap()
        );
        assert_eq!(
            caps(&["ALL"], &["CHOWN"], false).unwrap(),
            every_capability() - CapabilitySet::CHOWN
        );
        assert_eq!(caps(&[], &[], true).unwrap(), every_capability());
        assert_eq!(every_capability().bits(), (1 << 41) - 1);
        assert!(caps(&["MKNOD"], &[], false)
            .unwrap()
            .contains(CapabilitySet::MKNOD));
        let e = caps(&["FOO"], &[], false).unwrap_err().to_string();
        assert!(
            e.contains("invalid CapAdd: unknown capability: \"CAP_FOO\""),
            "{e}"
        );
        let e = caps(&[], &["bar"], false).unwrap_err().to_string();
        assert!(
            e.contains("invalid CapDrop: unknown capability: \"CAP_BAR\""),
            "{e}"
        );
    }
}
