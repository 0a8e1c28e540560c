//! The netctl container engine, as a library: images and their layers, containers, volumes,
//! networks (CNI conflists, attached only through the CNI client, exactly as another runtime
//! would), the per-container monitor and the container's two-stage init. It knows no command
//! line and prints nothing: a front end (the `netctl` CLI, a daemon) calls it and shows what
//! it returns; every failure is an [`Error`] whose variant says what kind it is.
//!
//! The engine runs part of itself as separate processes (the monitor and the init stages)
//! by executing the binary that links it with the arguments of [`process::Internal`]; such a
//! binary calls [`process::run_internal`] first.

pub mod archive;
pub mod clock;
pub mod container;
pub mod error;
pub mod etc;
pub mod ids;
pub mod image;
pub mod layer;
pub mod lifecycle;
pub mod load;
pub mod logs;
pub mod manage;
pub mod netattach;
pub mod network;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod view;
pub mod volume;

use std::path::{Path, PathBuf};

use netctl_cni::invoke::CniConfig;

pub use container::{Container, ContainerStore};
pub use error::{Error, Kind, Result};

/// Where state lives and the stores every operation uses.
pub struct Engine {
    /// Persistent state (`--root`, default `/var/lib/netctl`).
    pub root: PathBuf,
    /// Runtime state (`--run-dir`, default `/run/netctl`).
    pub run_dir: PathBuf,
    /// The containers.
    pub containers: ContainerStore,
    /// The CNI client (plugins beside the running binary, results cached under the root).
    pub cni: CniConfig,
}

/// Where persistent state lives by default.
pub const DEFAULT_ROOT: &str = "/var/lib/netctl";
/// Where runtime state lives by default (the plugins' default too).
pub const DEFAULT_RUN_DIR: &str = netctl_net::DEFAULT_RUN_DIR;

impl Engine {
    /// The engine over a root and run directory.
    pub fn open(root: &Path, run_dir: &Path) -> Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            containers: ContainerStore::open(root)?,
            cni: cni_client(root, &[], None),
        })
    }

    /// Where a container's network namespace is bind-mounted.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.run_dir.join("netns").join(id)
    }
}

/// The CNI client netctl uses: plugins beside the running binary unless `cni_path` names
/// folders, results cached in `cache` (default `<root>/cni-cache`).
pub fn cni_client(root: &Path, cni_path: &[PathBuf], cache: Option<&Path>) -> CniConfig {
    let path = if cni_path.is_empty() {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .into_iter()
            .collect()
    } else {
        cni_path.to_vec()
    };
    CniConfig::new(
        path,
        cache.map_or_else(|| root.join("cni-cache"), Path::to_path_buf),
    )
}
