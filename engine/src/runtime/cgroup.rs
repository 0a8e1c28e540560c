//! A cgroup per container, for `pause`/`unpause`: the freezer of cgroup v2
//! (`cgroup.freeze`) or of cgroup v1's freezer hierarchy (`freezer.state`), under a
//! `netctl` parent. It is made by the first `pause`, which moves every process of the
//! container into it (moving a process costs an RCU grace period on cgroup v1, ~10 ms, too
//! much to pay on every start), and removed when the container ends.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{state, Context, Error, Result};

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

    /// Makes the cgroup and moves every process `pids` lists into it.
    pub fn adopt(&self, pids: impl Fn() -> Vec<u32>) -> Result<()> {
        adopt(&self.dir, pids)
    }

    /// Freezes (pause) or thaws (unpause) every process of the container.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let (file, value) = match (self.v2, frozen) {
            (true, f) => ("cgroup.freeze", if f { "1" } else { "0" }),
            (false, true) => ("freezer.state", "FROZEN"),
            (false, false) => ("freezer.state", "THAWED"),
        };
        fs::write(self.dir.join(file), value).ctx(|| format!("write {file}"))?;
        for _ in 0..200 {
            if self.is_frozen() == frozen {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        state!(
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

    /// Removes the cgroup once its processes are gone (zombies count until reaped).
    pub fn remove(&self) {
        if !self.dir.exists() {
            return;
        }
        for _ in 0..300 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Removes every cgroup of container `id` (its freezer's and its limits') once its
/// processes are gone.
pub fn remove_all(id: &str) {
    if let Some(cg) = Cgroup::of(id) {
        cg.remove();
    }
    super::resources::remove(id);
}

/// `pause` on a machine without a freezer.
pub fn missing() -> Error {
    Error::State(format!(
        "pause needs the cgroup freezer: neither cgroup v2 ({V2_ROOT}/cgroup.controllers) nor cgroup v1's freezer ({V1_FREEZER}) is mounted"
    ))
}

/// Makes cgroup `dir` and moves every process `pids` lists into it, until a listing finds
/// none outside (a process forked meanwhile is caught by the next listing; one forked by a
/// process already inside starts inside).
pub(crate) fn adopt(dir: &Path, pids: impl Fn() -> Vec<u32>) -> Result<()> {
    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    let procs = dir.join("cgroup.procs");
    for _ in 0..100 {
        let inside = fs::read_to_string(&procs).unwrap_or_default();
        let inside: Vec<&str> = inside.lines().collect();
        let outside: Vec<u32> = pids()
            .into_iter()
            .filter(|p| !inside.contains(&p.to_string().as_str()))
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        for p in outside {
            // A process that ended meanwhile cannot move: that is fine.
            let _ = fs::write(&procs, p.to_string());
        }
    }
    state!("the container's processes keep forking; try again")
}
