//! A cgroup per container, for `pause`/`unpause`: the freezer of cgroup v2
//! (`cgroup.freeze`) or of cgroup v1's freezer hierarchy (`freezer.state`), under a
//! `netctl` parent, made when the container starts and removed when it ends.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A container's cgroup.
pub struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_FREEZER: &str = "/sys/fs/cgroup/freezer";

impl Cgroup {
    /// The container's cgroup on this machine's freezer, if it has one.
    pub fn of(id: &str) -> Option<Self> {
        if Path::new(V2_ROOT).join("cgroup.controllers").exists() {
            return Some(Self {
                dir: Path::new(V2_ROOT).join("netctl").join(id),
                v2: true,
            });
        }
        Path::new(V1_FREEZER)
            .join("cgroup.procs")
            .exists()
            .then(|| Self {
                dir: Path::new(V1_FREEZER).join("netctl").join(id),
                v2: false,
            })
    }

    /// Makes the cgroup; returns the file a process writes its PID to, to join it.
    pub fn create(&self) -> anyhow::Result<PathBuf> {
        fs::create_dir_all(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        Ok(self.dir.join("cgroup.procs"))
    }

    /// Freezes (pause) or thaws (unpause) every process of the container.
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        if !self.dir.exists() {
            bail!("the container has no cgroup (it was started without a freezer)");
        }
        let (file, value) = match (self.v2, frozen) {
            (true, f) => ("cgroup.freeze", if f { "1" } else { "0" }),
            (false, true) => ("freezer.state", "FROZEN"),
            (false, false) => ("freezer.state", "THAWED"),
        };
        fs::write(self.dir.join(file), value).with_context(|| format!("write {file}"))?;
        for _ in 0..200 {
            if self.is_frozen() == frozen {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        bail!(
            "the container's processes did not {}",
            if frozen { "freeze" } else { "thaw" }
        )
    }

    /// Whether the freezer reports the cgroup frozen.
    pub fn is_frozen(&self) -> bool {
        if self.v2 {
            fs::read_to_string(self.dir.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
        } else {
            fs::read_to_string(self.dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        }
    }

    /// Removes the cgroup once its processes are gone.
    pub fn remove(&self) {
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// `pause` on a machine without a freezer.
pub fn missing() -> anyhow::Error {
    anyhow::anyhow!(
        "pause needs the cgroup freezer: neither cgroup v2 ({V2_ROOT}/cgroup.controllers) nor cgroup v1's freezer ({V1_FREEZER}) is mounted"
    )
}
