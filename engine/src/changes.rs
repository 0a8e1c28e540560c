//! `diff`: what a container changed in its file system, read from its writable layer (the
//! overlay's upper folder, on the host): `A` added, `C` changed, `D` deleted (an overlay
//! whiteout), as Docker lists them. The mount points the engine makes for every container
//! (/proc, /sys, /dev, the /etc files) are not the container's changes, as they are not in
//! Docker's (they live in its init layer). Nothing is followed: symlinks are entries.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::container::Container;
use crate::engine::Engine;
use crate::error::Result;
use crate::image::ImageStore;

/// Docker's change kinds (the API's 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ChangeKind {
    /// Modified (C).
    Changed = 0,
    /// Added (A).
    Added = 1,
    /// Deleted (D).
    Deleted = 2,
}

impl ChangeKind {
    /// Docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    /// The path in the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// The mount points the engine makes in every container's root (and Docker's /etc/mtab).
pub const ENGINE_MADE: [&str; 10] = [
    "/proc",
    "/sys",
    "/dev",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
];

/// Whether `path` (in the container) is one of the mount points the engine makes.
pub fn engine_made(path: &str) -> bool {
    ENGINE_MADE.contains(&path)
}

/// The container's changes, sorted by path.
pub fn changes(engine: &Engine, c: &Container) -> Result<Vec<Change>> {
    let images = ImageStore::open(engine.root())?;
    let image = images.find(&c.config.image)?;
    let lower: Vec<PathBuf> = image.layers.iter().map(|l| images.layers.path(l)).collect();
    let mut out = Vec::new();
    walk(&c.dir.join("upper"), "", &lower, &mut out);
    out.sort();
    Ok(out)
}

/// Whether `path` (in the container) is in any lower layer.
fn in_lower(lower: &[PathBuf], path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    lower
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

/// Walks one folder of the upper layer; whether it reported anything below it.
fn walk(dir: &Path, prefix: &str, lower: &[PathBuf], out: &mut Vec<Change>) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let mut any = false;
    for e in entries.flatten() {
        let path = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let Ok(meta) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        if whiteout {
            out.push(Change {
                path,
                kind: ChangeKind::Deleted,
            });
            any = true;
            continue;
        }
        let existed = in_lower(lower, &path);
        let engine_made = ENGINE_MADE.contains(&path.as_str()) && !existed;
        let below = meta.is_dir() && walk(&e.path(), &path, lower, out);
        if engine_made {
            continue;
        }
        let kind = if existed {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        // A folder that was there is changed only through what changed below it.
        if kind == ChangeKind::Added || !meta.is_dir() || below {
            out.push(Change { path, kind });
            any = true;
        }
    }
    any
}
