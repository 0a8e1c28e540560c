//! The engine as a whole: what it holds (`info`, the API's `/info`), the disk it uses
//! (`system df`), and the prune policies (`container prune`, `image prune`, `network
//! prune`, `system prune`) with the space each reclaims — one place that decides what is
//! unused, for every front end.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::image::ImageStore;
use crate::network::PREDEFINED;
use crate::volume::VolumeStore;

/// Docker's `/info`, the fields netctl has.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    /// A stable ID of this engine (derived from its root).
    #[serde(rename = "ID")]
    pub id: String,
    /// All containers.
    pub containers: usize,
    /// Running ones.
    pub containers_running: usize,
    /// Paused ones.
    pub containers_paused: usize,
    /// The rest.
    pub containers_stopped: usize,
    /// Images.
    pub images: usize,
    /// The storage driver.
    pub driver: &'static str,
    /// The plugins of each kind.
    pub plugins: BTreeMap<&'static str, Vec<&'static str>>,
    /// Whether memory limits work here.
    pub memory_limit: bool,
    /// Whether swap limits work here.
    pub swap_limit: bool,
    /// Whether process-count limits work here.
    pub pids_limit: bool,
    /// The kernel's release.
    pub kernel_version: String,
    /// The distribution's name.
    pub operating_system: String,
    /// `linux`.
    #[serde(rename = "OSType")]
    pub os_type: &'static str,
    /// `x86_64` ...
    pub architecture: &'static str,
    /// CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    /// Memory in bytes.
    pub mem_total: u64,
    /// Where containers, images and volumes are kept.
    pub docker_root_dir: String,
    /// This host's name.
    pub name: String,
    /// netctl's version.
    pub server_version: &'static str,
    /// `json-file`.
    pub logging_driver: &'static str,
    /// `cgroupfs`.
    pub cgroup_driver: &'static str,
    /// `1` or `2`.
    pub cgroup_version: &'static str,
    /// The runtime that runs containers.
    pub default_runtime: &'static str,
    /// Security features in use.
    pub security_options: Vec<&'static str>,
}

/// What the engine holds and the machine it runs on.
pub fn info(engine: &Engine) -> Result<Info> {
    let all = engine.containers.all()?;
    let running = all.iter().filter(|c| c.is_running()).count();
    let paused = all
        .iter()
        .filter(|c| c.is_running() && c.state.paused)
        .count();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    Ok(Info {
        id: crate::ids::derived_id(&engine.root().display().to_string()),
        containers: all.len(),
        containers_running: running - paused,
        containers_paused: paused,
        containers_stopped: all.len() - running,
        images: ImageStore::open(engine.root())?.all()?.len(),
        driver: "overlay2",
        plugins: BTreeMap::from([
            ("Volume", vec!["local"]),
            (
                "Network",
                vec!["bridge", "host", "macvlan", "null", "overlay"],
            ),
            ("Log", vec!["json-file", "none"]),
        ]),
        memory_limit: true,
        swap_limit: v2
            || std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
        pids_limit: true,
        kernel_version: read("/proc/sys/kernel/osrelease"),
        operating_system: os,
        os_type: "linux",
        architecture: std::env::consts::ARCH,
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total: read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024),
        docker_root_dir: engine.root().display().to_string(),
        name: read("/proc/sys/kernel/hostname"),
        server_version: env!("CARGO_PKG_VERSION"),
        logging_driver: "json-file",
        cgroup_driver: "cgroupfs",
        cgroup_version: if v2 { "2" } else { "1" },
        default_runtime: "netctl",
        security_options: vec!["name=seccomp,profile=default"],
    })
}

/// One line of `system df`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// How many.
    pub total: usize,
    /// How many are in use.
    pub active: usize,
    /// Their bytes.
    pub size: u64,
    /// The bytes a prune would free.
    pub reclaimable: u64,
}

/// `system df`: images, containers and volumes.
pub fn disk_usage(engine: &Engine) -> Result<[Usage; 3]> {
    let containers = engine.containers.all()?;
    let images = ImageStore::open(engine.root())?.all()?;
    let used_image = |id: &str| containers.iter().any(|c| c.config.image == id);
    let mut img = Usage::default();
    for i in &images {
        img.total += 1;
        img.size += i.size;
        if used_image(&i.id) {
            img.active += 1;
        } else {
            img.reclaimable += i.size;
        }
    }
    let mut ctr = Usage::default();
    for c in &containers {
        let rw = c.size_rw();
        ctr.total += 1;
        ctr.size += rw;
        if c.is_running() {
            ctr.active += 1;
        } else {
            ctr.reclaimable += rw;
        }
    }
    let volumes = VolumeStore::open(engine.root())?;
    let mut vol = Usage::default();
    for v in volumes.all()? {
        let bytes = crate::layer::du(&volumes.data(&v.name));
        vol.total += 1;
        vol.size += bytes;
        if crate::container::volume_users(&containers, &v.name).is_empty() {
            vol.reclaimable += bytes;
        } else {
            vol.active += 1;
        }
    }
    Ok([img, ctr, vol])
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Docker's lines for what went (IDs, names, `Untagged:` / `Deleted:`).
    pub deleted: Vec<String>,
    /// The bytes freed.
    pub reclaimed: u64,
}

/// `container prune`: every container that is not running.
pub fn prune_containers(engine: &Engine) -> Result<Pruned> {
    let mut out = Pruned::default();
    for c in engine.containers.all()? {
        if c.is_running() {
            continue;
        }
        let bytes = c.size_rw();
        crate::lifecycle::remove(engine, &c, false, false)?;
        out.deleted.push(c.config.id.clone());
        out.reclaimed += bytes;
    }
    Ok(out)
}

/// `network prune`: every custom network no container is attached to.
pub fn prune_networks(engine: &Engine) -> Result<Pruned> {
    let store = engine.networks()?;
    let mut out = Pruned::default();
    for n in store.all()? {
        if PREDEFINED.contains(&n.name.as_str()) || !n.attachments(engine).is_empty() {
            continue;
        }
        store.remove(engine, &n)?;
        out.deleted.push(n.name);
    }
    Ok(out)
}

/// `volume prune`: anonymous volumes no container uses (with `all`, named ones too, as
/// Docker before API 1.42 did), with the space their data took.
pub fn prune_volumes(engine: &Engine, all: bool) -> Result<Pruned> {
    let store = crate::volume::VolumeStore::open(engine.root())?;
    let mut out = Pruned::default();
    for v in store.all()?.into_iter().filter(|v| all || v.anonymous) {
        let bytes = crate::layer::du(&store.data(&v.name));
        match crate::volume::remove(engine, &v.name) {
            Ok(()) => {
                out.deleted.push(v.name);
                out.reclaimed += bytes;
            }
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// `image prune`: images without a tag (with `all`, every image) that no container uses.
pub fn prune_images(engine: &Engine, all: bool) -> Result<Pruned> {
    let containers = engine.containers.all()?;
    let mut out = Pruned::default();
    for i in ImageStore::open(engine.root())?.all()? {
        let used = containers.iter().any(|c| c.config.image == i.id);
        if used || (!all && !i.tags.is_empty()) {
            continue;
        }
        out.deleted
            .extend(crate::image::remove(engine, &format!("sha256:{}", i.id))?);
        out.reclaimed += i.size;
    }
    Ok(out)
}
