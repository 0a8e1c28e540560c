//! Archives as an attacker writes them: member names the `tar` crate's builder would
//! refuse (absolute, `..`, through a symlink), links to host files, device members.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tar::{EntryType, Header};

/// One member of a hand-made archive.
pub struct Member<'a> {
    /// The raw name (up to 100 bytes), written as is.
    pub name: &'a str,
    /// Its type.
    pub kind: EntryType,
    /// File content.
    pub data: &'a [u8],
    /// Link target (symlinks and hard links).
    pub link: &'a str,
}

impl<'a> Member<'a> {
    /// A regular file.
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        Member {
            name,
            kind: EntryType::Regular,
            data,
            link: "",
        }
    }

    /// A folder.
    pub fn dir(name: &'a str) -> Self {
        Member {
            name,
            kind: EntryType::Directory,
            data: b"",
            link: "",
        }
    }

    /// A symlink.
    pub fn symlink(name: &'a str, target: &'a str) -> Self {
        Member {
            name,
            kind: EntryType::Symlink,
            data: b"",
            link: target,
        }
    }

    /// A hard link.
    pub fn hard_link(name: &'a str, target: &'a str) -> Self {
        Member {
            name,
            kind: EntryType::Link,
            data: b"",
            link: target,
        }
    }

    /// A character device.
    pub fn char_device(name: &'a str) -> Self {
        Member {
            name,
            kind: EntryType::Char,
            data: b"",
            link: "",
        }
    }
}

/// A tar archive of `members`, names written byte by byte into GNU headers.
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut h = Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..m.name.len()].copy_from_slice(m.name.as_bytes());
        old.linkname[..m.link.len()].copy_from_slice(m.link.as_bytes());
        h.set_entry_type(m.kind);
        h.set_size(m.data.len() as u64);
        h.set_mode(if m.kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if m.kind == EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A `docker save` archive of one image tagged `evil:1`: `members` (which hold the layers)
/// plus a manifest naming `layers` and `config` (a default config member is added when
/// `config` is `config.json` and no member has that name).
pub fn docker_archive(layers: &[&str], config: &str, members: &[Member]) -> Vec<u8> {
    const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = format!(
        r#"[{{"Config":{config:?},"RepoTags":["evil:1"],"Layers":[{}]}}]"#,
        layers
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut all: Vec<Member> = members
        .iter()
        .map(|m| Member {
            name: m.name,
            kind: m.kind,
            data: m.data,
            link: m.link,
        })
        .collect();
    if config == "config.json" && !members.iter().any(|m| m.name == config) {
        all.push(Member::file("config.json", CONFIG));
    }
    all.push(Member::file("manifest.json", manifest.as_bytes()));
    tar(&all)
}
