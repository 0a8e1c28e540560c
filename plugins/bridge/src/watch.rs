//! Self-healing: `netctl-bridge --watch-firewall RUN_DIR`, one process per run folder,
//! started by the first ADD that applies a network's rules (`firewallSelfHeal`, on by
//! default). It listens to nftables' netlink notifications (every `nft` and iptables-nft
//! change, `nft flush ruleset`, `ufw reload`, `firewall-cmd --reload`) and, when iptables-legacy
//! tables exist (which notify nobody), looks every half second; whatever a record under
//! `RUN_DIR/firewall` says was applied and is missing is put back: the network's rules, its
//! published ports and MAC guards. It ends once no record asks for it.
//!
//! Signals: SIGTERM or SIGINT end it at once (its pid file removed; the next ADD that applies
//! rules, or STATUS, starts a new one); SIGHUP is ignored.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use crate::firewall::{heal, heal_lock, marker_dir, read_applied, Applied};

/// nftables' multicast group (NFNLGRP_NFTABLES).
const NFNLGRP_NFTABLES: u32 = 7;
/// How often legacy tables, which send no notifications, are looked at.
const LEGACY_POLL: Duration = Duration::from_millis(500);
/// Changes come in bursts (one transaction, many messages): wait this long for the last.
const SETTLE: Duration = Duration::from_millis(50);

fn lock_path(run_dir: &Path) -> PathBuf {
    marker_dir(run_dir).join("watch.lock")
}

/// The watcher's pid file.
pub fn pid_path(run_dir: &Path) -> PathBuf {
    marker_dir(run_dir).join("watch.pid")
}

fn try_lock(run_dir: &Path) -> Option<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(run_dir))
        .ok()?;
    file.try_lock().ok().map(|()| file)
}

/// The watcher's lock of `run_dir`, with this process named in the pid file; None when
/// another watcher holds it.
fn claim(run_dir: &Path) -> Option<File> {
    let lock = try_lock(run_dir)?;
    let _ = std::fs::write(pid_path(run_dir), std::process::id().to_string());
    Some(lock)
}

/// Whether `lock` is still the lock file at its path. Not so once the folder was deleted or
/// replaced under this watcher: the next ADD that applies rules would start a second
/// watcher there, healing beside this one.
fn still_ours(run_dir: &Path, lock: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (lock.metadata(), std::fs::metadata(lock_path(run_dir))) {
        (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
        _ => false,
    }
}

/// Starts the watcher of `run_dir` unless one runs. Best effort: a host where it cannot
/// start still has its rules (STATUS and `netctl network repair` put them back too).
pub fn ensure_running(run_dir: &Path) {
    match try_lock(run_dir) {
        Some(lock) => drop(lock),
        None => return,
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use netctl_cni::process::CleanSignals;
    use std::os::unix::process::CommandExt;
    let _ = std::process::Command::new(exe)
        .arg("--watch-firewall")
        .arg(run_dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .clean_signals()
        .spawn();
}

/// The records that ask to be healed.
fn records(run_dir: &Path) -> Vec<Applied> {
    netctl_cni::fsutil::written_files(&marker_dir(run_dir))
        .filter(|(name, _)| name.ends_with(".json"))
        .filter_map(|(_, path)| read_applied(&path))
        .filter(|a| a.self_heal)
        .collect()
}

fn legacy_tables() -> bool {
    ["/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"]
        .iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|s| !s.trim().is_empty()))
}

/// What wakes the watcher.
enum Event {
    /// nftables changed (one message, or an overflow).
    Changed,
    /// SIGTERM or SIGINT.
    Stop,
}

/// Subscribes to nftables' changes; every batch that takes something away (or an overflow,
/// which may have lost such a message) is one [`Event::Changed`].
fn listen(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.add_membership(NFNLGRP_NFTABLES)?;
    std::thread::spawn(move || loop {
        let wake = socket
            .recv_from_full()
            .map_or(true, |(buf, _)| removes_something(&buf));
        if wake && tx.send(Event::Changed).is_err() {
            return;
        }
    });
    Ok(())
}

/// nfnetlink's subsystem of nftables.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// nftables' messages that take something away: DEL of a table, chain, rule, set, set
/// element, object or flowtable, and their DESTROY forms.
const REMOVALS: [u16; 14] = [2, 5, 8, 11, 14, 20, 24, 26, 27, 28, 29, 30, 31, 32];

/// Whether a batch of nftables notifications takes anything away (as a flush, a reload or a
/// hand-deleted element does): only then can something netctl applied be missing. Additions
/// (every container's ADD puts elements in) wake nobody; what cannot be read counts as a
/// removal.
fn removes_something(mut buf: &[u8]) -> bool {
    const HEADER: usize = 16;
    while !buf.is_empty() {
        let len = buf.get(0..4).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let ty = buf.get(4..6).and_then(|b| <[u8; 2]>::try_from(b).ok());
        let (Some(len), Some(ty)) = (len, ty) else {
            return true;
        };
        let (len, ty) = (u32::from_ne_bytes(len) as usize, u16::from_ne_bytes(ty));
        if len < HEADER || (ty >> 8 == NFNL_SUBSYS_NFTABLES && REMOVALS.contains(&(ty & 0xff))) {
            return true;
        }
        // Messages are 4-byte aligned; the last one may come without its padding.
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
    }
    false
}

/// Takes SIGTERM, SIGINT and SIGHUP from every thread (called before any other thread
/// starts) and turns TERM and INT into one [`Event::Stop`]; HUP changes nothing.
fn catch_stop(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::spawn(move || loop {
        match set.wait() {
            Ok(Signal::SIGHUP) => {}
            Ok(_) => {
                let _ = tx.send(Event::Stop);
                return;
            }
            Err(_) => return,
        }
    });
    Ok(())
}

/// The watcher's loop; returns its exit code.
pub fn run(run_dir: &Path) -> i32 {
    let Some(mut lock) = claim(run_dir) else {
        return 0; // another watcher has it
    };
    let (tx, rx) = mpsc::channel();
    if catch_stop(tx.clone()).is_err() || listen(tx).is_err() {
        return 1;
    }
    let stop = || {
        let _ = std::fs::remove_file(pid_path(run_dir));
        0
    };
    loop {
        let changed = match rx.recv_timeout(LEGACY_POLL) {
            Ok(Event::Stop) => return stop(),
            Ok(Event::Changed) => {
                while let Ok(e) = rx.recv_timeout(SETTLE) {
                    if matches!(e, Event::Stop) {
                        return stop();
                    }
                }
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return 1,
        };
        if !still_ours(run_dir, &lock) {
            // The folder was replaced: watch on from the lock at the path, unless a watcher
            // started since holds it (or no folder is left).
            match claim(run_dir) {
                Some(fresh) => lock = fresh,
                None => return 0,
            }
        }
        let _taking_away_waits = heal_lock(run_dir, true);
        let wanted = records(run_dir);
        if wanted.is_empty() {
            let _ = std::fs::remove_file(pid_path(run_dir));
            return 0;
        }
        if changed || legacy_tables() {
            for a in &wanted {
                // A record whose rules cannot be put back now is tried at the next change.
                let _ = heal(run_dir, a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One nfnetlink message header of nftables message `msg`, `extra` bytes of payload.
    fn message(msg: u16, extra: usize) -> Vec<u8> {
        let len = 16 + extra;
        let mut m = (len as u32).to_ne_bytes().to_vec();
        m.extend(((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
        m.resize(len, 0);
        m.resize((len + 3) & !3, 0);
        m
    }

    #[test]
    fn only_removals_wake_the_watcher() {
        let adds = [message(12, 5), message(6, 20), message(15, 4)].concat();
        assert!(
            !removes_something(&adds),
            "elements, rules and a new generation"
        );
        let flush = [message(12, 5), message(2, 8), message(15, 4)].concat();
        assert!(removes_something(&flush), "a table deleted");
        assert!(removes_something(&message(14, 3)), "an element deleted");
        assert!(removes_something(&[1, 2, 3]), "what cannot be read counts");
        assert!(!removes_something(&[]));
    }
}
