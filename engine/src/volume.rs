//! Volumes and mounts: the `local` volume store (`<root>/volumes/<name>/_data`), and the
//! `-v`, `--mount` and `--volumes-from` specs a container is created with.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock::now_rfc3339;
use crate::container::{volume_users, ContainerStore};
use crate::error::{conflict, invalid, Context, Error, Kind, Result};
use crate::ids::{check_name, random_id};
use crate::lock::StoreLock;

/// What is mounted at a path in the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host file or folder.
    Bind,
    /// A named (or anonymous) volume.
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

/// One mount of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    /// Bind, volume or tmpfs.
    pub kind: MountKind,
    /// Host path (bind) or volume name (volume); empty for tmpfs.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// A tmpfs's options (`size=64m,noexec`), as given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
    /// `-v [SOURCE:]TARGET[:MODE]`'s mode as given (empty when none): Docker lists such a
    /// mount with a source among `HostConfig.Binds`, one without in `Config.Volumes`. None
    /// for `--mount`, `--tmpfs` and mounts taken from `--volumes-from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A volume made for the container without a name (its name is random).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

/// The volumes under `<root>/volumes`.
pub struct VolumeStore {
    dir: PathBuf,
}

/// One volume as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    /// Its name (64 hex for an anonymous one).
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// Made for one container by `-v /path`; removed with `rm -v` and `--rm`.
    pub anonymous: bool,
    /// `--label`s.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl VolumeStore {
    /// The store, created if missing.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("volumes");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// Where a volume's data lives.
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Creates a volume (a random name when none is given); an existing one is kept.
    pub fn create(&self, name: Option<&str>, anonymous: bool) -> Result<Volume> {
        let name = match name {
            Some(n) => {
                check_name(Kind::Volume, n)?;
                n.to_string()
            }
            None => random_id()?,
        };
        if let Ok(v) = self.get(&name) {
            return Ok(v);
        }
        let data = self.data(&name);
        fs::create_dir_all(&data).ctx(|| format!("create {}", data.display()))?;
        let v = Volume {
            name: name.clone(),
            created_at: now_rfc3339(),
            anonymous,
            labels: Default::default(),
        };
        self.save(&v)?;
        Ok(v)
    }

    /// Writes a volume's metadata.
    pub fn save(&self, v: &Volume) -> Result<()> {
        let path = self.dir.join(&v.name).join("meta.json");
        let bytes = serde_json::to_vec(v).ctx(|| format!("encode volume {}", v.name))?;
        netctl_cni::fsutil::write_atomic(&path, &bytes).ctx(|| format!("write {}", path.display()))
    }

    /// A volume by name.
    pub fn get(&self, name: &str) -> Result<Volume> {
        let not_found = || Error::NotFound {
            kind: Kind::Volume,
            key: name.to_string(),
        };
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(not_found());
        }
        let path = self.dir.join(name).join("meta.json");
        let bytes = fs::read(&path).map_err(|_| not_found())?;
        serde_json::from_slice(&bytes).ctx(|| format!("parse {}", path.display()))
    }

    /// Every volume, by name.
    pub fn all(&self) -> Result<Vec<Volume>> {
        let entries = fs::read_dir(&self.dir).ctx(|| format!("list {}", self.dir.display()))?;
        let mut out: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Waits for the store's lock: shared while a container that may mount volumes is
    /// made, exclusive while a volume is removed.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        let path = self.dir.join(".lock");
        if exclusive {
            StoreLock::exclusive(&path)
        } else {
            StoreLock::shared(&path)
        }
    }

    /// Removes a volume and its data; refused ([`Error::Conflict`]) while a container of
    /// `containers` mounts it, which is decided under the store's lock, so no container
    /// being made meanwhile can take the volume up.
    pub fn remove(&self, name: &str, containers: &ContainerStore) -> Result<()> {
        let _alone = self.lock(true)?;
        self.get(name)?;
        let users = volume_users(&containers.all()?, name);
        if !users.is_empty() {
            conflict!("remove {name}: volume is in use - [{}]", users.join(", "));
        }
        fs::remove_dir_all(self.dir.join(name)).ctx(|| format!("remove volume {name}"))
    }
}

fn check_target(target: &str, spec: &str) -> Result<()> {
    if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
        invalid!("invalid mount config {spec:?}: the container path must be absolute");
    }
    if target.split('/').all(|c| c.is_empty() || c == ".") {
        // Docker 20.10 takes it and its runtime fails at start; refused before anything.
        invalid!("invalid specification {spec:?}: destination can't be '/'");
    }
    Ok(())
}

/// An anonymous volume at `target`, one path taken as it is (an image's `VOLUME`, whose
/// colons are not `-v`'s separators: an image never names a host folder).
pub fn anonymous_volume(target: &str) -> Result<MountSpec> {
    check_target(target, target)?;
    Ok(MountSpec {
        kind: MountKind::Volume,
        source: String::new(),
        target: target.to_string(),
        readonly: false,
        options: String::new(),
        mode: Some(String::new()),
        anonymous: false,
    })
}

/// `-v /host:/ctr[:ro]`, `-v NAME:/ctr[:ro]`, `-v /ctr` (anonymous).
pub fn parse_volume(spec: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => return anonymous_volume(t),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => invalid!("invalid volume specification: {spec:?} (use SOURCE:TARGET[:ro])"),
    };
    check_target(target, spec)?;
    let readonly = match opts {
        "" | "rw" => false,
        "ro" => true,
        o => invalid!("invalid mode {o:?} in volume specification {spec:?}: use ro or rw"),
    };
    let kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    Ok(MountSpec {
        kind,
        source: source.into(),
        target: target.into(),
        readonly,
        options: String::new(),
        mode: Some(opts.to_string()),
        anonymous: false,
    })
}

/// `--tmpfs PATH[:OPTIONS]` (`/run:size=64m,noexec`).
pub fn parse_tmpfs(spec: &str) -> Result<MountSpec> {
    let (target, options) = spec.split_once(':').unwrap_or((spec, ""));
    check_target(target, spec)?;
    crate::runtime::init::tmpfs_options(options)?;
    Ok(MountSpec {
        kind: MountKind::Tmpfs,
        source: String::new(),
        target: target.to_string(),
        readonly: options.split(',').any(|o| o.trim() == "ro"),
        options: options.to_string(),
        mode: None,
        anonymous: false,
    })
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=...]
/// [,tmpfs-mode=...]`.
pub fn parse_mount(spec: &str) -> Result<MountSpec> {
    let mut kind = MountKind::Volume;
    let (mut source, mut target, mut readonly) = (String::new(), String::new(), false);
    let mut options = Vec::new();
    for field in spec.split(',').map(str::trim) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let (k, v) = (k.trim(), v.trim());
        match k {
            "type" => {
                kind = match v {
                    "bind" => MountKind::Bind,
                    "volume" => MountKind::Volume,
                    "tmpfs" => MountKind::Tmpfs,
                    _ => invalid!("invalid mount type {v:?}: use bind, volume or tmpfs"),
                }
            }
            "source" | "src" => source = v.into(),
            "target" | "destination" | "dst" => target = v.into(),
            "readonly" | "ro" => readonly = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => options.push(format!("size={v}")),
            "tmpfs-mode" => options.push(format!("mode={v}")),
            _ => invalid!("unexpected key {k:?} in --mount {spec:?}"),
        }
    }
    if target.is_empty() {
        invalid!("invalid --mount {spec:?}: target is required");
    }
    check_target(&target, spec)?;
    if kind == MountKind::Bind && !source.starts_with('/') {
        invalid!("invalid --mount {spec:?}: a bind source must be an absolute host path");
    }
    if kind == MountKind::Bind && !Path::new(&source).exists() {
        invalid!(
            "invalid mount config for type \"bind\": bind source path does not exist: {source}"
        );
    }
    if !options.is_empty() && kind != MountKind::Tmpfs {
        invalid!("invalid --mount {spec:?}: tmpfs options on a {kind:?} mount");
    }
    let options = options.join(",");
    crate::runtime::init::tmpfs_options(&options)?;
    Ok(MountSpec {
        kind,
        source,
        target,
        readonly,
        options,
        mode: None,
        anonymous: false,
    })
}

/// Copies the image's content at a mount point (folder `from`) into an empty volume
/// (folder `to`), as Docker does on the first mount: modes, owners and symlinks kept. Both
/// sides are walked by descriptor without following a symlink, so nothing outside either
/// folder is read or written.
pub fn copy_up(from: &OwnedFd, to: &OwnedFd) -> std::io::Result<()> {
    use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for entry in rfs::Dir::read_from(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let st = rfs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let (uid, gid) = (
            Some(rfs::Uid::from_raw(st.st_uid)),
            Some(rfs::Gid::from_raw(st.st_gid)),
        );
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                match rfs::mkdirat(to, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let src = rfs::openat(from, name, dir_flags, Mode::empty())?;
                let dst = rfs::openat(to, name, dir_flags, Mode::empty())?;
                copy_up(&src, &dst)?;
                rfs::fchown(&dst, uid, gid)?;
                rfs::fchmod(&dst, mode)?;
            }
            FileType::RegularFile => {
                let src = rfs::openat(
                    from,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let create = OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::WRONLY
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let dst = rfs::openat(to, name, create, Mode::from_raw_mode(0o600))?;
                let (mut s, mut d) = (fs::File::from(src), fs::File::from(dst));
                std::io::copy(&mut s, &mut d)?;
                rfs::fchown(&d, uid, gid)?;
                rfs::fchmod(&d, mode)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(from, name, Vec::new())?;
                rfs::symlinkat(target.as_c_str(), to, name)?;
                rfs::chownat(to, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `volume create` through the engine, with its labels and its `create` event.
pub fn create(
    engine: &crate::Engine,
    name: Option<&str>,
    labels: std::collections::BTreeMap<String, String>,
) -> Result<Volume> {
    let store = VolumeStore::open(engine.root())?;
    let mut v = store.create(name, false)?;
    if !labels.is_empty() {
        v.labels = labels;
        store.save(&v)?;
    }
    crate::events::record(engine, "volume", "create", &v.name, &[("driver", "local")]);
    Ok(v)
}

/// `volume rm` through the engine: refused while a container uses it; its `destroy` event.
pub fn remove(engine: &crate::Engine, name: &str) -> Result<()> {
    VolumeStore::open(engine.root())?.remove(name, &engine.containers)?;
    crate::events::record(engine, "volume", "destroy", name, &[("driver", "local")]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs_parse_like_docker() {
        let b = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!((b.kind, b.readonly), (MountKind::Bind, true));
        let n = parse_volume("cache:/var/cache").unwrap();
        assert_eq!((n.kind, n.source.as_str()), (MountKind::Volume, "cache"));
        let a = parse_volume("/scratch").unwrap();
        assert_eq!((a.kind, a.source.as_str()), (MountKind::Volume, ""));
        for bad in ["a:b", "/x:/y:rx", "/a:/b:ro:z", "v:relative"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_specs_parse_like_docker() {
        let t = parse_mount("type=tmpfs,target=/run/x").unwrap();
        assert_eq!(t.kind, MountKind::Tmpfs);
        let v = parse_mount("type=volume,src=data,dst=/data,readonly").unwrap();
        assert_eq!((v.source.as_str(), v.readonly), ("data", true));
        assert!(parse_mount("type=bind,source=/no/such/path,target=/x").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=volume,source=x").is_err());
    }

    #[test]
    fn volumes_are_created_once_and_in_use_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(dir.path()).unwrap();
        let v = store.create(Some("data"), false).unwrap();
        fs::write(store.data("data").join("f"), "x").unwrap();
        assert_eq!(
            store.create(Some("data"), false).unwrap().created_at,
            v.created_at
        );
        let containers = ContainerStore::open(dir.path()).unwrap();
        store.remove("data", &containers).unwrap();
        assert!(store.all().unwrap().is_empty());
        assert!(store.create(Some("../x"), false).is_err());
    }
}
