//! `cp`: Docker's rules for where a copy lands (`CONTAINER:SRC DEST`, `SRC CONTAINER:DEST`,
//! `-` for a tar on stdin or stdout), over the engine's archive primitives. On the host side
//! the archive from the container is unpacked by the engine's hostile-archive unpacker, so a
//! container's symlinks never lead a copy out of the destination.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use netctl_engine::archive::{unpack, Members};
use netctl_engine::copy;
use netctl_engine::{Engine, Error, Kind};

use crate::outcome::Outcome;

/// `cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (owners are kept either way, as Docker 20.10 keeps them).
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow a symlink given as the source.
    #[arg(short = 'L', long = "follow-link")]
    pub follow: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH (or - for a tar on stdin).
    pub source: String,
    /// DEST_PATH (or - for a tar on stdout) or CONTAINER:DEST_PATH.
    pub destination: String,
}

/// One side of a copy.
enum Side<'a> {
    Host(&'a str),
    Container(&'a str, &'a str),
}

/// `CONTAINER:PATH` unless the argument is an absolute or explicitly relative host path.
fn side(arg: &str) -> Side<'_> {
    if arg.starts_with('/') || arg.starts_with("./") || arg.starts_with("../") {
        return Side::Host(arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c, p),
        _ => Side::Host(arg),
    }
}

/// Runs `cp`.
pub fn run(engine: &Engine, a: &CpArgs) -> Outcome {
    match (side(&a.source), side(&a.destination)) {
        (Side::Container(..), Side::Container(..)) => {
            Err(anyhow::anyhow!("copying between containers is not supported").into())
        }
        (Side::Host(_), Side::Host(_)) => {
            Err(anyhow::anyhow!("must specify at least one container source").into())
        }
        (Side::Container(c, p), Side::Host(dest)) => {
            out_of(engine, c, p, dest, a.follow)?;
            Ok(0)
        }
        (Side::Host(src), Side::Container(c, p)) => {
            into(engine, src, c, p, a)?;
            Ok(0)
        }
    }
}

/// Docker's "no such container:path" for `name:path`.
fn missing(name: &str, path: &str) -> Error {
    Error::NotFound {
        kind: Kind::Path,
        key: format!("{name}:{path}"),
    }
}

/// Whether a path names a folder by its spelling (`x/`, `x/.`).
fn asserts_dir(p: &str) -> bool {
    p.ends_with('/') || p.ends_with("/.")
}

/// From the container to the host (or a tar on stdout).
fn out_of(engine: &Engine, name: &str, src: &str, dest: &str, follow: bool) -> Result<(), Error> {
    let c = engine.containers.find(name)?;
    let stat = copy::stat(engine, &c, src, follow)?.ok_or_else(|| missing(name, src))?;
    if asserts_dir(src) && !stat.dir {
        return Err(Error::Invalid(format!("{name}:{src}: not a directory")));
    }
    if dest == "-" {
        let mut out = std::io::stdout().lock();
        copy::get(engine, &c, src, follow, &mut out)?;
        return out.flush().map_err(|e| Error::io("write the archive", e));
    }
    let contents = src.ends_with("/.");
    let target = Path::new(dest);
    let existing = std::fs::metadata(target).ok();
    match existing {
        Some(m) if m.is_dir() => return fetch_into(engine, &c, src, follow, target),
        Some(_) if stat.dir => {
            return Err(Error::Invalid(format!(
                "cannot copy a directory to a file: {dest}"
            )))
        }
        None if asserts_dir(dest) && !stat.dir => {
            return Err(Error::Invalid(format!("no such directory: {dest}")))
        }
        _ => {}
    }
    let parent = parent_of(target);
    if !parent.is_dir() {
        return Err(Error::Invalid(format!(
            "no such directory: {}",
            parent.display()
        )));
    }
    if contents {
        std::fs::create_dir(target).map_err(|e| Error::io(format!("create {dest}"), e))?;
        return fetch_into(engine, &c, src, follow, target);
    }
    // Unpacked beside the destination, then put in its place under its own name.
    let scratch = tempfile::Builder::new()
        .prefix(".netctl-cp-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(format!("make a scratch folder in {}", parent.display()), e))?;
    fetch_into(engine, &c, src, follow, scratch.path())?;
    let made = scratch.path().join(&stat.name);
    std::fs::rename(&made, target).map_err(|e| Error::io(format!("move the copy to {dest}"), e))
}

/// The folder a path is in ("." for a bare name).
fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The tar of `src` unpacked into the host folder `dir` (owned by us, as Docker's `cp`).
fn fetch_into(
    engine: &Engine,
    c: &netctl_engine::Container,
    src: &str,
    follow: bool,
    dir: &Path,
) -> Result<(), Error> {
    let (reader, mut writer) = std::io::pipe().map_err(|e| Error::io("make a pipe", e))?;
    let dir = dir.to_path_buf();
    let unpacking =
        std::thread::spawn(move || unpack(reader, &dir, Members::Files { owners: false }));
    let got = copy::get(engine, c, src, follow, &mut writer);
    drop(writer);
    let unpacked = unpacking
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the unpacker panicked")));
    got?;
    unpacked.map_err(|e| Error::io("unpack the copy", e))
}

/// From the host (or a tar on stdin) into the container.
fn into(engine: &Engine, src: &str, name: &str, dest: &str, a: &CpArgs) -> Result<(), Error> {
    let c = engine.containers.find(name)?;
    if src == "-" {
        let mut stdin = std::io::stdin();
        return copy::put(engine, &c, dest, &mut stdin);
    }
    let meta = if a.follow {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .map_err(|e| Error::io(format!("lstat {src}"), e))?;
    // A destination that is a symlink in the container is followed, as Docker's cp does.
    let mut dest = dest.to_string();
    let mut stat = copy::stat(engine, &c, &dest, false)?;
    if let Some(target) = stat.as_ref().and_then(|s| s.link_target.clone()) {
        dest = if target.starts_with('/') {
            target
        } else {
            format!("{}/{target}", parent_of(Path::new(&dest)).display())
        };
        stat = copy::stat(engine, &c, &dest, false)?;
    }
    let src_name = Path::new(src)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let (dir, top) = match &stat {
        Some(s) if s.dir => (
            dest.clone(),
            if src.ends_with("/.") { None } else { src_name },
        ),
        Some(_) if meta.is_dir() => {
            return Err(Error::Invalid(format!(
                "cannot copy a directory to a file: {name}:{dest}"
            )))
        }
        None if asserts_dir(&dest) && !meta.is_dir() => {
            return Err(Error::Invalid(format!("no such directory: {name}:{dest}")))
        }
        _ => {
            let p = Path::new(dest.trim_end_matches('/'));
            let leaf = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (parent_of(p).display().to_string(), leaf)
        }
    };
    if copy::stat(engine, &c, &dir, true)?.is_none_or(|s| !s.dir) {
        return Err(missing(name, &dir));
    }
    let (mut reader, writer) = std::io::pipe().map_err(|e| Error::io("make a pipe", e))?;
    // `DIR/.` into a new folder: the folder itself, under the new name.
    let src = match stat {
        None => src.strip_suffix("/.").unwrap_or(src),
        Some(_) => src,
    };
    let (src, follow) = (src.to_string(), a.follow);
    let packing = std::thread::spawn(move || {
        netctl_engine::copy::tar_inside(&src, top.as_deref(), follow, writer)
    });
    let put = copy::put(engine, &c, &dir, &mut reader);
    drop(reader);
    let packed = packing
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the packer panicked")));
    put?;
    packed.map_err(|e| Error::io("pack the copy", e))
}
