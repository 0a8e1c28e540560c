//! Shared pieces of the benchmarks: running a CNI plugin or any command once and timing it,
//! shell steps, a process's memory, and medians.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a CNI plugin once with `CNI_*` for container `id` and returns how long it took;
/// panics with its output if it fails, so a benchmark never times errors.
pub fn time_plugin(binary: &Path, command: &str, id: &str, netns: &str, conf: &str) -> Duration {
    run_plugin(binary, command, id, netns, conf).0
}

/// [`time_plugin`], also returning what the plugin printed (its result, for a chain).
pub fn run_plugin(
    binary: &Path,
    command: &str,
    id: &str,
    netns: &str,
    conf: &str,
) -> (Duration, String) {
    run_plugin_with_args(binary, command, id, netns, "", conf)
}

/// [`run_plugin`] with `CNI_ARGS` (`K8S_POD_NAME=...`, as runtimes name a container).
pub fn run_plugin_with_args(
    binary: &Path,
    command: &str,
    id: &str,
    netns: &str,
    cni_args: &str,
    conf: &str,
) -> (Duration, String) {
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", cni_args)
        .env("CNI_PATH", binary.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.as_bytes())
        .expect("write config");
    let out = child.wait_with_output().expect("wait for plugin");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{} {command} {id} failed: {}{}",
        binary.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` and returns how long it took and its stdout (trimmed); panics with its output,
/// named `what`, if it fails, so a benchmark never times errors.
pub fn timed(cmd: &mut Command, what: &str) -> (Duration, String) {
    let start = Instant::now();
    let out = cmd.output().expect("start the command");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        took,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Runs a shell script (`sh -e`); panics if it fails.
pub fn sh(script: &str) {
    let ok = Command::new("sh")
        .args(["-ec", script])
        .status()
        .expect("sh");
    assert!(ok.success(), "{script}");
}

/// A number field of /proc/PID/status (`VmRSS:`, `VmHWM:`, in KiB); 0 when unreadable.
pub fn status_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The median of some durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Moves this process (still single-threaded) into fresh network and mount namespaces, so a
/// benchmark never touches the machine's network.
pub fn enter_private_namespaces() {
    netctl_net::NetNs::unshare_private().expect("private namespaces (run as root)");
}

/// A DNS query for `name` (type A, class IN, recursion desired) with ID `id`, as a client
/// sends it over UDP.
pub fn dns_query(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
