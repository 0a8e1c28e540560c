//! The engine as many clients use it at once, and as a careless plugin treats it: parallel
//! `netctl` processes racing for the same names, subnets, networks and containers, and a
//! plugin that never returns. Each ends in one clear winner, clear errors for the others,
//! and nothing half-made left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netctl_netns_tests::{bin_dir, eventually, TestHost};
use serde_json::{json, Value};

/// A plugin in a folder of its own that hangs on ADD (with a child in its process group)
/// after noting the child's PID in `<dir>/child`, and does nothing on every other command.
fn hanging_plugin(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let folder = dir.join("slow-plugins");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("hang");
    let script = format!(
        "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nsleep 300 </dev/null >/dev/null 2>&1 &\necho $! > {}\nexec sleep 300\n",
        dir.join("child").display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    folder
}

/// Adds a plugin of `ty` to the end of network `name`'s chain, as an admin editing its
/// conflist would.
fn append_plugin(name: &str, ty: &str) {
    let path = Path::new("/var/lib/netctl/networks").join(format!("{name}.conflist"));
    let mut list: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": ty}));
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
}

fn pid_gone(pid: &str) -> Result<(), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
    if stat.is_empty() || state.starts_with('Z') {
        Ok(())
    } else {
        Err(stat)
    }
}

/// A plugin of a network hangs on ADD: `run` fails after the configured deadline with an
/// error naming the plugin, the plugin and its children are killed, and the attachment is
/// undone as after a failed ADD (no veth, address, rule or record is left).
#[test]
fn a_plugin_that_hangs_is_killed_at_the_deadline_and_its_attachment_undone() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.20.0.0/24", "slow"]);
    host.netctl_ok(&["run", "--rm", "--net", "slow", "busybox", "true"]);
    let before = host.host_listing();
    let plugins = hanging_plugin(host.dir());
    append_plugin("slow", "hang");
    let cni_path = format!("{}:{}", plugins.display(), bin_dir().display());
    let started = Instant::now();
    let (code, out, err) = host.netctl(&[
        "--cni-path",
        &cni_path,
        "--plugin-deadline",
        "2",
        "run",
        "--name",
        "stuck",
        "--net",
        "slow",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{out}{err}");
    assert!(
        err.contains("hang") && err.contains("did not finish within 2s"),
        "the error names the plugin and its deadline: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "run waited {:?}",
        started.elapsed()
    );
    let child = std::fs::read_to_string(host.dir().join("child")).unwrap();
    eventually(
        "the plugin's child is killed",
        Duration::from_secs(5),
        || pid_gone(child.trim()),
    );
    assert_eq!(host.host_listing(), before, "the failed run left something");
    assert_eq!(host.netctl_ok(&["ps", "-q"]), "", "nothing runs");
}
