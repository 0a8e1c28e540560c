//! The engine itself: where state lives and the stores every operation uses.

use std::path::{Path, PathBuf};

use netctl_cni::invoke::CniConfig;

use crate::container::ContainerStore;
use crate::error::Result;

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
