//! Paths inside a container, resolved inside its root before it runs. Every mount target,
//! /etc file and copy-up source is looked up one component at a time from a descriptor of
//! the container's root, the way the container itself will see the path: an absolute
//! symlink starts again at the root and `..` never climbs above it. Nothing is ever looked
//! up through the host's view of the folder, so an image's `/data -> /host/dir` or
//! `/www -> ../../../host` can only ever name something inside the container. The result is
//! a descriptor; mounts go onto `/proc/self/fd/N`, the exact inode that was resolved.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Context, Error, Result};

/// The most symlinks one lookup follows (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// What a path must end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A folder, made (mode 0755) with its missing parents.
    Dir,
    /// A regular file, made empty when missing (its parents too).
    File,
}

/// Whether the path may pass through symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// As the container will see them, inside its root.
    Follow,
    /// Not at all: for the folders netctl mounts its own file systems on (/dev, /proc, /sys).
    Refuse,
}

/// A container's root folder.
pub struct Rootfs {
    root: OwnedFd,
}

/// The path that names what a descriptor refers to, for mount(2).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn o_path(dir: bool) -> OFlags {
    let f = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if dir {
        f | OFlags::DIRECTORY
    } else {
        f
    }
}

fn err(path: &str, what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{path} in the container: {what}"))
}

fn sys(path: &str, e: Errno) -> Error {
    Error::io(format!("{path} in the container"), e.into())
}

impl Rootfs {
    /// Opens the root (after its file system is mounted there).
    pub fn open(path: &Path) -> Result<Self> {
        let root = rfs::openat(rfs::CWD, path, o_path(true), Mode::empty())
            .ctx(|| format!("open the container's root {}", path.display()))?;
        Ok(Rootfs { root })
    }

    /// Resolves `path` (absolute in the container) inside the root and makes what is
    /// missing; a descriptor (O_PATH) of the folder or file it names.
    pub fn resolve(&self, path: &str, want: Want, links: Links) -> Result<OwnedFd> {
        let mut todo: VecDeque<OsString> = split(path.as_bytes());
        let mut stack: Vec<OwnedFd> = vec![rustix::io::dup(&self.root).map_err(|e| sys(path, e))?];
        let mut followed = 0;
        while let Some(comp) = todo.pop_front() {
            if comp == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let last = todo.is_empty();
            let cur = stack.last().ok_or_else(|| err(path, "lost its root"))?;
            match rfs::statat(cur, comp.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                    FileType::Symlink if links == Links::Follow => {
                        followed += 1;
                        if followed > MAX_LINKS {
                            return Err(err(path, "too many levels of symlinks"));
                        }
                        let target = rfs::readlinkat(cur, comp.as_os_str(), Vec::new())
                            .map_err(|e| sys(path, e))?;
                        let bytes = target.as_bytes();
                        if bytes.starts_with(b"/") {
                            stack.truncate(1);
                        }
                        for c in split(bytes).into_iter().rev() {
                            todo.push_front(c);
                        }
                    }
                    FileType::Symlink => {
                        return Err(err(
                            path,
                            format_args!("{} is a symlink: refused", comp.to_string_lossy()),
                        ))
                    }
                    FileType::Directory => {
                        let fd = rfs::openat(cur, comp.as_os_str(), o_path(true), Mode::empty())
                            .map_err(|e| sys(path, e))?;
                        stack.push(fd);
                    }
                    _ if last && want == Want::File => {
                        return rfs::openat(cur, comp.as_os_str(), o_path(false), Mode::empty())
                            .map_err(|e| sys(path, e))
                    }
                    _ => {
                        return Err(err(
                            path,
                            format_args!("{} is not a folder", comp.to_string_lossy()),
                        ))
                    }
                },
                Err(Errno::NOENT) if last && want == Want::File => {
                    let flags = OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC;
                    let made =
                        rfs::openat(cur, comp.as_os_str(), flags, Mode::from_raw_mode(0o644))
                            .map_err(|e| sys(path, e))?;
                    drop(made);
                    return rfs::openat(cur, comp.as_os_str(), o_path(false), Mode::empty())
                        .map_err(|e| sys(path, e));
                }
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(cur, comp.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(err(
                                path,
                                format_args!("create {}: {e}", comp.to_string_lossy()),
                            ))
                        }
                    }
                    todo.push_front(comp);
                }
                Err(e) => return Err(err(path, e)),
            }
        }
        match want {
            Want::Dir => stack.pop().ok_or_else(|| err(path, "lost its root")),
            Want::File => Err(err(path, "is a folder, not a file")),
        }
    }

    /// What `path` names if it exists, passing through real folders only: its descriptor
    /// and whether it is a folder.
    pub fn find(&self, path: &str) -> Result<Option<(OwnedFd, bool)>> {
        let comps = split(path.as_bytes());
        let mut cur = rustix::io::dup(&self.root).map_err(|e| sys(path, e))?;
        for (i, comp) in comps.iter().enumerate() {
            let st = match rfs::statat(&cur, comp.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(err(path, e)),
            };
            let dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if !dir && i + 1 < comps.len() {
                return Ok(None);
            }
            cur = rfs::openat(&cur, comp.as_os_str(), o_path(dir), Mode::empty())
                .map_err(|e| sys(path, e))?;
            if i + 1 == comps.len() {
                return Ok(Some((cur, dir)));
            }
        }
        Ok(None)
    }
}

/// The components of a path, without empty ones and `.`.
fn split(bytes: &[u8]) -> VecDeque<OsString> {
    bytes
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| std::ffi::OsStr::from_bytes(c).to_os_string())
        .collect()
}

/// Opens the folder an O_PATH descriptor names, for reading its entries or making entries in it.
pub fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    rfs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open a folder in the container".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(fd_path(fd)).unwrap()
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_what_is_missing_is_made_there() {
        let host = tempfile::tempdir().unwrap();
        let outside = host.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let root = host.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../../../outside", root.join("rel")).unwrap();
        symlink("/etc/nowhere", root.join("dangling")).unwrap();
        let r = Rootfs::open(&root).unwrap();
        let a = r.resolve("/abs/sub", Want::Dir, Links::Follow).unwrap();
        assert_eq!(
            real(&a),
            root.join(outside.strip_prefix("/").unwrap()).join("sub")
        );
        let b = r.resolve("/rel/f", Want::File, Links::Follow).unwrap();
        assert_eq!(real(&b), root.join("outside/f"));
        let c = r.resolve("/dangling", Want::File, Links::Follow).unwrap();
        assert_eq!(real(&c), root.join("etc/nowhere"));
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing outside the root"
        );
        assert!(r.resolve("/abs", Want::Dir, Links::Refuse).is_err());
        assert!(r.resolve("/c/d", Want::Dir, Links::Refuse).is_ok());
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let r = Rootfs::open(dir.path()).unwrap();
        assert!(r.resolve("/a/x", Want::Dir, Links::Follow).is_err());
    }
}
