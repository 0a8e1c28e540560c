//! Files in and out of a container (`cp`, and the Engine API's archive endpoints): a tar
//! stream of a path in the container, a tar stream unpacked into a folder of it, and what a
//! path is. A helper process ([`Internal::Copy`]) does the work from inside the container's
//! own root — the mount namespace of a running container, or a private mount of a stopped
//! one's file system with its volumes — so every path, and every symlink the container
//! made, resolves inside the container: nothing a container does can make a copy read or
//! write a host file. The helper runs from the read-only view of the binary, as the exec
//! helper does.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netctl_cni::process::CleanSignals;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::archive::{append_tree, Tree};
use crate::container::Container;
use crate::engine::Engine;
use crate::error::{Context, Error, Kind, Result};
use crate::runtime::{Failure, Internal, Report};

/// What a path in a container is (Docker's `ContainerPathStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    /// Its last component.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its mode bits (permissions and set-id bits).
    pub mode: u32,
    /// Whether it is a folder.
    pub dir: bool,
    /// Where it points, for a symlink.
    pub link_target: Option<String>,
    /// Last modification, RFC 3339.
    pub mtime: String,
}

/// Where the helper finds the container's files.
#[derive(Debug, Serialize, Deserialize)]
enum Root {
    /// A running container: the mount namespace of its process.
    Running { pid: u32 },
    /// A stopped one: its layers and mounts, mounted privately by the helper.
    Stopped {
        rootfs: PathBuf,
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        mounts: Vec<crate::runtime::init::Mount>,
    },
}

/// What the helper does inside.
#[derive(Debug, Serialize, Deserialize)]
enum Action {
    /// [`PathStat`] as JSON on stdout; `null` when the path does not exist.
    Stat { path: String, follow: bool },
    /// A tar of `path` on stdout, its top entry named after the path's last component (or,
    /// for `DIR/.`, the folder's content).
    Get { path: String, follow: bool },
    /// The tar on stdin unpacked into the folder `dir`, with the owners, modes and times
    /// as archived.
    Put { dir: String },
    /// A tar of the whole root file system on stdout, not crossing into mounts (their
    /// mount points are archived empty), as `export` writes it.
    Export,
}

/// What a copy helper is asked, as it travels in its argument.
#[derive(Debug, Serialize, Deserialize)]
pub struct CopySpec {
    root: Root,
    action: Action,
}

/// What `path` (in the container) is; None when it does not exist.
pub fn stat(engine: &Engine, c: &Container, path: &str, follow: bool) -> Result<Option<PathStat>> {
    let action = Action::Stat {
        path: path.into(),
        follow,
    };
    let mut out = Vec::new();
    run(engine, c, action, None, Some(&mut out))?;
    serde_json::from_slice(&out).ctx(|| "read what the copy helper found".into())
}

/// Writes a tar of `path` (in the container) to `out`.
pub fn get(
    engine: &Engine,
    c: &Container,
    path: &str,
    follow: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let action = Action::Get {
        path: path.into(),
        follow,
    };
    run(engine, c, action, None, Some(out))
}

/// `export`: writes a tar of the container's file system (its layers and changes, not its
/// volumes or the engine's mounts) to `out`.
pub fn export(engine: &Engine, c: &Container, out: &mut dyn Write) -> Result<()> {
    run(engine, c, Action::Export, None, Some(out))
}

/// Unpacks the tar `input` into the folder `dir` (in the container), which must exist,
/// with the archived owners (as Docker 20.10 keeps them, `cp -a` or not).
pub fn put(engine: &Engine, c: &Container, dir: &str, input: &mut (dyn Read + Send)) -> Result<()> {
    let action = Action::Put { dir: dir.into() };
    run(engine, c, action, Some(input), None)
}

/// Runs the helper on `c`, feeding it `input` and collecting its stdout in `output`.
fn run(
    engine: &Engine,
    c: &Container,
    action: Action,
    input: Option<&mut (dyn Read + Send)>,
    output: Option<&mut dyn Write>,
) -> Result<()> {
    let spec = CopySpec {
        root: root_of(engine, c)?,
        action,
    };
    let json = serde_json::to_string(&spec).ctx(|| "encode the copy spec".into())?;
    let mut cmd = Command::new(&engine.config.helper);
    cmd.args(Internal::Copy(json).args())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if output.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .clean_signals();
    let mut child = crate::runtime::spawn_helper(cmd)?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let fed = std::thread::scope(|s| {
        let feeder = s.spawn(move || match (input, stdin) {
            (Some(i), Some(mut w)) => std::io::copy(i, &mut w).map(drop),
            _ => Ok(()),
        });
        let drained = match (output, stdout) {
            (Some(o), Some(mut r)) => std::io::copy(&mut r, o).map(drop),
            _ => Ok(()),
        };
        let fed = feeder.join().unwrap_or(Ok(()));
        drained.and(fed)
    });
    let status = child.wait().ctx(|| "wait for the copy helper".into())?;
    // The helper's own failure, reported after it started, comes back as its exit code.
    if !status.success() {
        return Err(Error::State(format!(
            "copying {} failed in the container (exit {})",
            c.config.name,
            status.code().unwrap_or(-1)
        )));
    }
    fed.ctx(|| "copy the archive".into())
}

/// Where the helper finds `c`'s files.
fn root_of(engine: &Engine, c: &Container) -> Result<Root> {
    if c.is_running() {
        return Ok(Root::Running {
            pid: c.process_pid()?,
        });
    }
    let images = crate::image::ImageStore::open(engine.root())?;
    let image = images.find(&c.config.image)?;
    Ok(Root::Stopped {
        rootfs: c.dir.join("rootfs"),
        lower: image
            .layers
            .iter()
            .rev()
            .map(|l| images.layers.path(l))
            .collect(),
        upper: c.dir.join("upper"),
        work: c.dir.join("work"),
        mounts: crate::runtime::monitor::init_mounts(engine, c)?
            .into_iter()
            .map(|mut m| {
                m.copy_up = false;
                m
            })
            .collect(),
    })
}

/// The helper process: enters the container's root, then does what it was asked. Its
/// status pipe reports a failure before any output; its exit code says how it ended.
pub fn helper(spec_json: &str) -> i32 {
    let mut status = crate::runtime::helper_status();
    let ready = serde_json::from_str::<CopySpec>(spec_json)
        .ctx(|| "parse the copy spec".into())
        .and_then(|spec| {
            crate::runtime::sealed::reexec_read_only()?;
            enter(&spec.root)?;
            Ok(spec)
        });
    let spec = match ready {
        Ok(spec) => spec,
        Err(e) => {
            Report::Failed(Failure::from(&e)).send(&mut status);
            return 125;
        }
    };
    let done = match &spec.action {
        Action::Stat { path, follow } => stat_inside(path, *follow).and_then(|s| {
            let json = serde_json::to_vec(&s).ctx(|| "encode the path's stat".into())?;
            std::io::stdout()
                .write_all(&json)
                .ctx(|| "write the stat".into())
        }),
        Action::Get { path, follow } => {
            // A missing path is told before any archive is written.
            match fs::symlink_metadata(path) {
                Ok(_) => {
                    drop(status);
                    return match tar_inside(path, None, *follow, std::io::stdout().lock()) {
                        Ok(()) => 0,
                        Err(_) => 1,
                    };
                }
                Err(_) => Err(not_found(path)),
            }
        }
        Action::Export => {
            drop(status);
            return match export_root(std::io::stdout().lock()) {
                Ok(()) => 0,
                Err(_) => 1,
            };
        }
        Action::Put { dir } => match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {
                drop(status);
                return match crate::archive::unpack(
                    std::io::stdin().lock(),
                    Path::new(dir),
                    crate::archive::Members::Files { owners: true },
                ) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
            }
            Ok(_) => Err(Error::Invalid(format!(
                "extraction point is not a directory: {dir}"
            ))),
            Err(_) => Err(not_found(dir)),
        },
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            Report::Failed(Failure::from(&e)).send(&mut status);
            1
        }
    }
}

fn not_found(path: &str) -> Error {
    Error::NotFound {
        kind: Kind::Path,
        key: path.to_string(),
    }
}

/// Makes the container's root this process's root.
fn enter(root: &Root) -> Result<()> {
    match root {
        Root::Running { pid } => {
            let ns = fs::File::open(format!("/proc/{pid}/ns/mnt"))
                .ctx(|| "open the container's mount namespace".into())?;
            // Joining a mount namespace also moves the root and working folder to its root.
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNS)
                .ctx(|| "join the container's mount namespace".into())
        }
        Root::Stopped {
            rootfs,
            lower,
            upper,
            work,
            mounts,
        } => {
            nix::sched::unshare(CloneFlags::CLONE_NEWNS)
                .ctx(|| "take a mount namespace of its own".into())?;
            crate::runtime::init::mount_private_root(rootfs, lower, upper, work, mounts)?;
            nix::unistd::chroot(rootfs).ctx(|| "enter the container's root".into())?;
            nix::unistd::chdir("/").ctx(|| "enter the container's root".into())
        }
    }
}

/// [`PathStat`] of a path inside the root we are in.
fn stat_inside(path: &str, follow: bool) -> Result<Option<PathStat>> {
    let meta = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    let Ok(meta) = meta else { return Ok(None) };
    let name = Path::new(path)
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Some(PathStat {
        name,
        size: meta.len(),
        mode: meta.permissions().mode() & 0o7777,
        dir: meta.is_dir(),
        link_target: meta
            .file_type()
            .is_symlink()
            .then(|| fs::read_link(path).ok())
            .flatten()
            .map(|t| t.to_string_lossy().into_owned()),
        mtime: crate::clock::rfc3339_of(u64::try_from(meta.mtime()).unwrap_or(0)),
    }))
}

/// Writes a tar of `path` (inside the root we are in): its top entry named `name`, else
/// after its last component, or for `DIR/.` the folder's content. Symlinks inside are
/// archived as symlinks; `follow` follows `path` itself when it is one.
pub fn tar_inside(
    path: &str,
    name: Option<&str>,
    follow: bool,
    out: impl Write,
) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let p = Path::new(path);
    let contents = path.ends_with("/.") || path == ".";
    let name = match name {
        Some(n) => PathBuf::from(n),
        None => p
            .file_name()
            .map_or_else(|| PathBuf::from("."), PathBuf::from),
    };
    let real = if follow {
        fs::canonicalize(p)?
    } else {
        p.to_path_buf()
    };
    let meta = fs::symlink_metadata(&real)?;
    if contents && meta.is_dir() {
        for entry in fs::read_dir(&real)? {
            let entry = entry?;
            append_tree(
                &mut b,
                &entry.path(),
                Path::new(&entry.file_name()),
                &Tree::default(),
            )?;
        }
    } else {
        append_tree(&mut b, &real, &name, &Tree::default())?;
    }
    b.into_inner()?.flush()
}

/// Archives the root we are in, one file system only: a mount point is archived as an
/// empty folder (or an empty file), nothing below it.
fn export_root(out: impl Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    let dev = fs::symlink_metadata("/")?.dev();
    let mut entries = fs::read_dir("/")?.collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let opts = Tree {
            device: Some(dev),
            ..Tree::default()
        };
        append_tree(&mut b, &e.path(), Path::new(&e.file_name()), &opts)?;
    }
    b.into_inner()?.flush()
}
