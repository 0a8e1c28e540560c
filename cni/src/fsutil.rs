//! Crash-safe file writes shared by every piece of state the project keeps.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename,
/// then fsync of the folder. A crash at any point leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per call, also between threads of one process (a daemon writing one file
    // from two tasks): `.NAME.tmp.PID.SEQ`.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp.{}.{seq}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The files of `dir` that were written whole, with their names: never a temporary file of
/// [`write_atomic`] (`.NAME.tmp.PID.SEQ`, hidden), which a writer killed before its rename
/// leaves behind with a complete-looking content. A folder that cannot be read has none.
pub fn written_files(dir: &Path) -> impl Iterator<Item = (String, PathBuf)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (!name.starts_with('.')).then(|| (name, e.path()))
        })
}

/// Removes the temporary files of [`write_atomic`] calls in `dir` whose writer is gone (it
/// was killed between writing and renaming): `.NAME.tmp.PID[.SEQ]` with no process PID.
pub fn sweep_stale_tmp(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.starts_with('.'))
            .and_then(|n| n.rsplit_once(".tmp."))
            .and_then(|(_, pid_seq)| pid_seq.split('.').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Marks every descriptor from 3 up close-on-exec. Each netctl process (plugin, runtime,
/// monitor) calls it first, so whatever it inherited (a caller's `3>&1`, a pipe, a socket, a
/// lock) is never passed on to a process it starts: a daemon, a delegate or a container
/// gets fds 0-2 and what is handed to it on purpose.
#[allow(unsafe_code)]
pub fn cloexec_inherited() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only sets the
    // close-on-exec flag of open descriptors, so no owned descriptor becomes invalid. It
    // takes no pointers. (Kernels before 5.11 refuse the flag: then nothing changes.)
    let _ = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_if_exists(&p).unwrap();
        remove_if_exists(&p).unwrap();
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_writer_is_not_a_written_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join("whole.json"), b"{}").unwrap();
        fs::write(dir.path().join(".half.json.tmp.4294967.0"), b"{}").unwrap();
        let names: Vec<String> = written_files(dir.path()).map(|(n, _)| n).collect();
        assert_eq!(names, ["whole.json"]);
        assert_eq!(written_files(&dir.path().join("absent")).count(), 0);
    }

    #[test]
    fn temporary_files_of_writers_that_are_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".state.json.tmp.4294967");
        let live = dir
            .path()
            .join(format!(".state.json.tmp.{}", std::process::id()));
        let other = dir.path().join("state.json");
        for p in [&dead, &live, &other] {
            fs::write(p, b"x").unwrap();
        }
        sweep_stale_tmp(dir.path());
        assert!(!dead.exists() && live.exists() && other.exists());
    }
}
