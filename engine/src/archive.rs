//! Untrusted tar archives (image layers, `docker save` and OCI archives) unpacked beneath a
//! folder. Every member is made relative to a descriptor of its parent folder, which is
//! opened one component at a time without following a symlink: whatever a member is named
//! (`/etc/passwd`, `../x`, `link-to-host/x`, a whiteout of any of them), it lands inside the
//! folder or is refused. Reading a member back resolves it beneath the folder too.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;
use tar::EntryType;

/// What an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// A filesystem layer: files, folders, links, device nodes and FIFOs with their owners
    /// and modes; `.wh.NAME` and `.wh..wh..opq` become overlayfs whiteouts.
    Layer,
    /// An image archive: only files, folders and links between its members.
    Data,
    /// Copied files (`cp`): files, folders and links with their modes and times, and their
    /// owners with `owners` (else they belong to whoever unpacks).
    Files {
        /// Keep the archived owners.
        owners: bool,
    },
}

impl Members {
    /// What of a member's metadata is applied: none, or mode and time with or without
    /// the owner.
    fn meta(self) -> Option<bool> {
        match self {
            Members::Layer => Some(true),
            Members::Data => None,
            Members::Files { owners } => Some(owners),
        }
    }
}

/// A failed read or [`unpack`] of an archive as the engine's error: an archive that is malformed (not tar, cut
/// short) or refused (a member that leads out) is the sender's mistake, a 400 for the API;
/// anything else (a full disk) is the host's.
pub(crate) fn archive_error(e: io::Error, what: impl FnOnce() -> String) -> crate::Error {
    match e.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::Other => {
            crate::Error::Invalid(format!("{}: not a usable tar archive: {e}", what()))
        }
        _ => crate::Error::io(what(), e),
    }
}

fn refused(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A member's name as components below the root: a leading `/` or `./` is dropped (archives
/// store both), `.` is skipped; a `..` is refused. The root itself has no components.
pub fn components(name: &Path) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in name.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(refused(format_args!(
                    "{}: a member name may not climb out with \"..\"",
                    name.display()
                )))
            }
        }
    }
    Ok(out)
}

fn open_dir(at: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(at, name, flags, Mode::empty())?)
}

/// A folder that members are made and read beneath.
pub struct Beneath {
    root: OwnedFd,
}

impl Beneath {
    /// Opens the folder.
    pub fn open(path: &Path) -> io::Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rfs::openat(rfs::CWD, path, flags, Mode::empty())?;
        Ok(Beneath { root })
    }

    /// The folder that `comps` names, its missing folders made (mode 0755) when `create`;
    /// refused when a component is a symlink or not a folder.
    fn dir(&self, comps: &[OsString], create: bool) -> io::Result<OwnedFd> {
        let mut cur = rustix::io::dup(&self.root)?;
        for c in comps {
            let next = match open_dir(&cur, c) {
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) && create => {
                    match rfs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => open_dir(&cur, c),
                        Err(e) => Err(e.into()),
                    }
                }
                other => other,
            };
            cur = next.map_err(|e| match e.raw_os_error() {
                Some(n) if n == Errno::LOOP.raw_os_error() || n == Errno::NOTDIR.raw_os_error() => {
                    refused(format_args!(
                        "{}: a path may only pass through real folders, never a symlink or a file",
                        comps_display(comps)
                    ))
                }
                _ => e,
            })?;
        }
        Ok(cur)
    }

    /// The parent folder of a member and the member's own name.
    fn parent<'a>(&self, comps: &'a [OsString], create: bool) -> io::Result<(OwnedFd, &'a OsStr)> {
        let Some((name, parents)) = comps.split_last() else {
            return Err(refused("a member without a name"));
        };
        Ok((self.dir(parents, create)?, name.as_os_str()))
    }

    /// Opens the member `name` for reading: a regular file reached beneath the folder
    /// (links between members are followed, none that leads out), at most `limit` bytes
    /// long when one is given.
    pub fn open_file(&self, name: &str, limit: Option<u64>) -> io::Result<File> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let fd =
            rfs::openat2(&self.root, name, flags, Mode::empty(), resolve).map_err(|e| match e {
                Errno::XDEV => refused(format_args!("{name} points outside the archive: refused")),
                other => io::Error::from(other),
            })?;
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refused(format_args!(
                "{name} is not a regular file: refused"
            )));
        }
        if let Some(max) = limit.filter(|&m| u64::try_from(st.st_size).unwrap_or(u64::MAX) > m) {
            return Err(refused(format_args!(
                "{name} is {} bytes, more than the {max} allowed",
                st.st_size
            )));
        }
        Ok(File::from(fd))
    }
}

fn comps_display(comps: &[OsString]) -> String {
    let parts: Vec<String> = comps
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// Removes whatever is at `name` so a member can take its place: a file, a link or an empty
/// folder (a member never replaces a folder with content).
fn clear(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match rfs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {
            match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
                Ok(()) => Ok(()),
                Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => Err(refused(format_args!(
                    "{}: a member may not replace a folder that has content",
                    name.to_string_lossy()
                ))),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Owner, mode and time of a member as archived.
struct Meta {
    uid: Uid,
    gid: Gid,
    mode: Mode,
    mtime: rfs::Timestamps,
}

fn id(v: u64, what: &str) -> io::Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&n| n != u32::MAX)
        .ok_or_else(|| refused(format_args!("{what} {v} is not a valid id")))
}

impl Meta {
    fn of(h: &tar::Header) -> io::Result<Self> {
        let secs = i64::try_from(h.mtime()?).unwrap_or(0);
        let ts = rfs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        Ok(Meta {
            uid: Uid::from_raw(id(h.uid()?, "owner")?),
            gid: Gid::from_raw(id(h.gid()?, "group")?),
            mode: Mode::from_raw_mode(h.mode()? & 0o7777),
            mtime: rfs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
        })
    }

    /// Applies owner (with `owner`), then mode (a change of owner clears set-id bits), then
    /// time.
    fn apply_fd(&self, fd: &OwnedFd, owner: bool) -> io::Result<()> {
        if owner {
            rfs::fchown(fd, Some(self.uid), Some(self.gid))?;
        }
        rfs::fchmod(fd, self.mode)?;
        rfs::futimens(fd, &self.mtime)?;
        Ok(())
    }

    /// The same for a node that cannot be opened (a device, FIFO or symlink): by name,
    /// never following a symlink (symlinks have no mode of their own).
    fn apply_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        symlink: bool,
        owner: bool,
    ) -> io::Result<()> {
        if owner {
            rfs::chownat(
                parent,
                name,
                Some(self.uid),
                Some(self.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if !symlink {
            rfs::chmodat(parent, name, self.mode, AtFlags::empty())?;
        }
        rfs::utimensat(parent, name, &self.mtime, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// How [`append_tree`] archives a tree.
#[derive(Default)]
pub struct Tree<'a> {
    /// One file system only: entries on another device (mounts) are archived empty.
    pub device: Option<u64>,
    /// The tree is an overlay upper layer: its whiteouts (0:0 character devices) become
    /// `.wh.NAME` members and its opaque folders get a `.wh..wh..opq` member, as an image
    /// layer carries them.
    pub overlay: bool,
    /// Paths (as archived) to leave out.
    pub skip: Option<&'a dyn Fn(&Path) -> bool>,
}

/// Archives `path` as `name`: a folder with everything below it (in name order), symlinks
/// as symlinks with their targets exactly as stored; sockets, FIFOs and device nodes are
/// left out, as the unpackers refuse them. Nothing is followed.
pub fn append_tree(
    b: &mut tar::Builder<impl Write>,
    path: &Path,
    name: &Path,
    opts: &Tree,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if opts.skip.is_some_and(|skip| skip(name)) {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    if opts.overlay && kind.is_char_device() && meta.rdev() == 0 {
        let leaf = name.file_name().unwrap_or_default().to_string_lossy();
        let mut wh = tar::Header::new_gnu();
        wh.set_entry_type(EntryType::Regular);
        wh.set_size(0);
        wh.set_mode(0o600);
        wh.set_mtime(meta.mtime().max(0) as u64);
        return b.append_data(
            &mut wh,
            name.with_file_name(format!(".wh.{leaf}")),
            io::empty(),
        );
    }
    if opts.device.is_some_and(|d| d != meta.dev()) && (kind.is_dir() || kind.is_file()) {
        h.set_size(0);
        return b.append_data(&mut h, name, io::empty());
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(path)?;
        h.set_size(0);
        let bytes = target.as_os_str().as_bytes();
        if bytes.len() <= 100 {
            h.set_link_name_literal(bytes)?;
            return b.append_data(&mut h, name, io::empty());
        }
        return b.append_link(&mut h, name, &target);
    }
    if kind.is_file() {
        let f = File::open(path)?;
        return b.append_data(&mut h, name, f.take(meta.len()));
    }
    if !kind.is_dir() {
        return Ok(());
    }
    h.set_size(0);
    b.append_data(&mut h, name, io::empty())?;
    let opaque = opts.overlay
        && rfs::getxattr(path, "trusted.overlay.opaque", &mut [0u8; 1]).is_ok_and(|n| n == 1);
    if opaque {
        let mut wh = tar::Header::new_gnu();
        wh.set_entry_type(EntryType::Regular);
        wh.set_size(0);
        wh.set_mode(0o600);
        b.append_data(&mut wh, name.join(".wh..wh..opq"), io::empty())?;
    }
    let mut entries = std::fs::read_dir(path)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        append_tree(b, &e.path(), &name.join(e.file_name()), opts)?;
    }
    Ok(())
}

/// Unpacks `r` beneath `dest`: every member lands inside it or the whole unpack fails
/// (the caller removes what was made).
pub fn unpack(r: impl Read, dest: &Path, members: Members) -> io::Result<()> {
    unpack_observed(r, dest, members, |_, _| {})
}

/// [`unpack`], telling `observe` of each member before its content is read: where beneath
/// `dest` a regular file's content lands (None for any other member), and the member's
/// size in the archive.
pub fn unpack_observed(
    r: impl Read,
    dest: &Path,
    members: Members,
    mut observe: impl FnMut(Option<&str>, u64),
) -> io::Result<()> {
    let root = Beneath::open(dest)?;
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let stored = entry
            .header()
            .entry_type()
            .is_file()
            .then(|| stored_path(&name))
            .flatten();
        observe(stored.as_deref(), entry.size());
        add(&root, &mut entry, &name, members).map_err(|e| {
            io::Error::new(e.kind(), format!("archive member {}: {e}", name.display()))
        })?;
    }
    Ok(())
}

/// Where a regular file member's content lands: its components joined (a whiteout's does
/// not land anywhere; a name that is not UTF-8 is not looked up again).
fn stored_path(name: &Path) -> Option<String> {
    let comps = components(name).ok()?;
    if comps.last()?.as_encoded_bytes().starts_with(b".wh.") {
        return None;
    }
    let parts = comps
        .iter()
        .map(|c| c.to_str())
        .collect::<Option<Vec<_>>>()?;
    Some(parts.join("/"))
}

fn add(
    root: &Beneath,
    entry: &mut tar::Entry<impl Read>,
    name: &Path,
    members: Members,
) -> io::Result<()> {
    let comps = components(name)?;
    let kind = entry.header().entry_type();
    let layer = members == Members::Layer;
    let meta = members.meta();
    if kind == EntryType::XGlobalHeader {
        return Ok(());
    }
    if kind.is_dir() && comps.is_empty() {
        return match layer {
            true => Meta::of(entry.header())?.apply_fd(&root.root, true),
            false => Ok(()),
        };
    }
    if layer {
        if let Some(last) = comps.last().and_then(|c| c.to_str()) {
            if let Some(target) = last.strip_prefix(".wh.") {
                return whiteout(root, &comps, target);
            }
        }
    }
    let (parent, leaf) = root.parent(&comps, true)?;
    match kind {
        EntryType::Regular | EntryType::Continuous => file(&parent, leaf, entry, meta),
        EntryType::GNUSparse if layer => file(&parent, leaf, entry, meta),
        EntryType::Directory => folder(&parent, leaf, entry.header(), meta),
        EntryType::Symlink => {
            let target = entry
                .link_name()?
                .ok_or_else(|| refused("a symlink without a target"))?
                .into_owned();
            clear(&parent, leaf)?;
            rfs::symlinkat(&target, &parent, leaf)?;
            match meta {
                Some(owner) => Meta::of(entry.header())?.apply_at(&parent, leaf, true, owner),
                None => Ok(()),
            }
        }
        EntryType::Link => {
            let target = entry
                .link_name()?
                .ok_or_else(|| refused("a hard link without a target"))?
                .into_owned();
            hard_link(root, &parent, leaf, &target)
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo if layer => {
            node(&parent, leaf, entry.header())
        }
        other => Err(refused(format_args!(
            "members of type {other:?} are not allowed here: only files, folders and links"
        ))),
    }
}

fn file(
    parent: &OwnedFd,
    leaf: &OsStr,
    entry: &mut tar::Entry<impl Read>,
    meta: Option<bool>,
) -> io::Result<()> {
    clear(parent, leaf)?;
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(parent, leaf, flags, Mode::from_raw_mode(0o600))?;
    let mut f = File::from(fd);
    io::copy(entry, &mut f)?;
    if let Some(owner) = meta {
        Meta::of(entry.header())?.apply_fd(&OwnedFd::from(f), owner)?;
    }
    Ok(())
}

fn folder(parent: &OwnedFd, leaf: &OsStr, h: &tar::Header, meta: Option<bool>) -> io::Result<()> {
    match rfs::mkdirat(parent, leaf, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            if open_dir(parent, leaf).is_err() {
                clear(parent, leaf)?;
                rfs::mkdirat(parent, leaf, Mode::from_raw_mode(0o700))?;
            }
        }
        Err(e) => return Err(e.into()),
    }
    let fd = open_dir(parent, leaf)?;
    match meta {
        Some(owner) => Meta::of(h)?.apply_fd(&fd, owner),
        None => Ok(()),
    }
}

/// A hard link to a member made earlier: its target is resolved beneath the root like any
/// member name, so it can never name a file outside.
fn hard_link(root: &Beneath, parent: &OwnedFd, leaf: &OsStr, target: &Path) -> io::Result<()> {
    let in_archive = |e: io::Error| refused(format_args!("hard link to {}: {e}", target.display()));
    let tcomps = components(target).map_err(in_archive)?;
    let (tparent, tleaf) = root.parent(&tcomps, false).map_err(in_archive)?;
    clear(parent, leaf)?;
    rfs::linkat(&tparent, tleaf, parent, leaf, AtFlags::empty()).map_err(|e| match e {
        Errno::NOENT => refused(format_args!(
            "hard link to {}, which is not in the archive",
            target.display()
        )),
        other => other.into(),
    })
}

fn node(parent: &OwnedFd, leaf: &OsStr, h: &tar::Header) -> io::Result<()> {
    let ty = match h.entry_type() {
        EntryType::Char => FileType::CharacterDevice,
        EntryType::Block => FileType::BlockDevice,
        _ => FileType::Fifo,
    };
    let dev = rfs::makedev(
        h.device_major()?.unwrap_or(0),
        h.device_minor()?.unwrap_or(0),
    );
    clear(parent, leaf)?;
    rfs::mknodat(parent, leaf, ty, Mode::from_raw_mode(0o600), dev)?;
    Meta::of(h)?.apply_at(parent, leaf, false, true)
}

/// `.wh.NAME` hides NAME of the layers below (an overlayfs whiteout: a 0:0 character
/// device); `.wh..wh..opq` hides everything below its folder (the opaque attribute).
fn whiteout(root: &Beneath, comps: &[OsString], target: &str) -> io::Result<()> {
    let parents = &comps[..comps.len() - 1];
    let dir = root.dir(parents, true)?;
    if target == ".wh..opq" {
        rfs::fsetxattr(
            &dir,
            "trusted.overlay.opaque",
            b"y",
            rfs::XattrFlags::empty(),
        )?;
        return Ok(());
    }
    if target.is_empty() || target == "." || target == ".." {
        return Err(refused(format_args!(
            "whiteout of {target:?} names no file"
        )));
    }
    clear(&dir, OsStr::new(target))?;
    rfs::mknodat(&dir, target, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}
