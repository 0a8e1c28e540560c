//! A fuzz run of netctld's whole API from Docker's own description of it (Engine API 1.41):
//! thousands of requests to every operation, with parameters and bodies that are right,
//! wrong, huge or strange, against a daemon holding real containers, a network, a volume
//! and an image. No request may get a server error (5xx) or go unanswered, and the daemon
//! must be alive and serving afterwards. The seed is printed; `NETCTL_FUZZ_SEED` replays a
//! run (`random` draws a new one; the default is fixed, so CI judges every change by the
//! same run), `NETCTL_FUZZ_REQUESTS` sets its length.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use netctl_netns_tests::apifuzz::{swagger_path, Operation, Request, Rng, Spec};
use netctl_netns_tests::daemon::Netctld;
use netctl_netns_tests::{eventually, TestHost};

/// Operations that wait by design (for a container, for events, for output): they may
/// answer late or never while the client stays.
const WAITING: &[(&str, &str)] = &[
    ("POST", "/containers/{id}/wait"),
    ("POST", "/containers/{id}/attach"),
    ("GET", "/containers/{id}/attach/ws"),
    ("GET", "/containers/{id}/logs"),
    ("GET", "/containers/{id}/stats"),
    ("GET", "/events"),
    ("POST", "/exec/{id}/start"),
];

/// Swarm, plugins, build and sessions: netctl answers them only with an error, so they are
/// drawn less often than what it serves.
const UNSERVED: &[&str] = &[
    "/swarm",
    "/nodes",
    "/services",
    "/tasks",
    "/secrets",
    "/configs",
    "/plugins",
    "/build",
    "/session",
    "/distribution",
];

/// What came back for one request.
struct Answer {
    status: Option<u16>,
    text: String,
}

/// Sends `req` and reads the answer's head (and, for an error, its body), for at most
/// `within`.
fn send(sock: &Path, req: &Request, within: Duration) -> Answer {
    let mut s = UnixStream::connect(sock).expect("connect to netctld");
    let mut w = s.try_clone().expect("clone the stream");
    let bytes = req.to_bytes();
    // The daemon may answer (and close) before reading everything: that is an answer too.
    std::thread::spawn(move || w.write_all(&bytes));
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        let done_head = text.contains("\r\n\r\n");
        if done_head && !text.starts_with("HTTP/1.1 5") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .starts_with("HTTP/1.1 ")
        .then(|| text.get(9..12)?.parse().ok())
        .flatten();
    Answer { status, text }
}

/// Whether `req` for `op` may wait by design: a waiting operation, or a stop or restart
/// told to give the container more than a few seconds.
fn may_wait(op: &Operation, req: &Request) -> bool {
    if WAITING.contains(&(op.method.as_str(), op.path.as_str())) {
        return true;
    }
    let grace = req
        .target
        .split(['?', '&'])
        .filter_map(|kv| kv.strip_prefix("t="))
        .any(|t| t.parse::<i64>().is_ok_and(|t| t > 5));
    grace && (op.path.ends_with("/stop") || op.path.ends_with("/restart"))
}

/// The objects requests name: made again whenever a request removed them.
fn fixtures(host: &TestHost, daemon: &Netctld) {
    if daemon.docker(&["image", "inspect", "busybox"]).0 != 0 {
        host.busybox_image();
    }
    let _ = daemon.docker(&["network", "create", "fz-net"]);
    let _ = daemon.docker(&["volume", "create", "fz-vol"]);
    let _ = daemon.docker(&[
        "create", "--name", "fz-c", "--net", "fz-net", "busybox", "true",
    ]);
    let _ = daemon.docker(&["start", "fz-run"]);
    let _ = daemon.docker(&[
        "run",
        "-d",
        "--name",
        "fz-run",
        "-v",
        "fz-vol:/data",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 1; done",
    ]);
}

/// A careless or hostile client calls every operation of Docker's API with drawn
/// parameters and bodies: every request is answered, none with a server error, and the
/// daemon serves on.
#[test]
fn a_fuzz_run_of_the_whole_api_finds_no_server_error_or_hang() {
    let spec = Spec::load(&swagger_path());
    let ops = spec.operations();
    let (served, unserved): (Vec<&Operation>, Vec<&Operation>) = ops
        .iter()
        .partition(|op| !UNSERVED.iter().any(|p| op.path.starts_with(p)));
    // A fixed seed unless asked otherwise, so that CI judges every change by the same run;
    // `NETCTL_FUZZ_SEED=random` explores.
    let seed = match std::env::var("NETCTL_FUZZ_SEED").ok().as_deref() {
        Some("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        Some(s) => s.parse().expect("NETCTL_FUZZ_SEED: a number or random"),
        None => 20_261_207,
    };
    let count: usize = std::env::var("NETCTL_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    println!(
        "fuzz seed {seed}, {count} requests over {} operations",
        ops.len()
    );
    let mut rng = Rng::new(seed);
    let mut host = TestHost::new();
    host.busybox_image();
    let daemon = Netctld::start(&mut host);
    let known: &[(&str, &[&str])] = &[
        ("containers", &["fz-c", "fz-run"]),
        ("networks", &["fz-net", "bridge"]),
        ("volumes", &["fz-vol"]),
        ("images", &["busybox"]),
    ];
    fixtures(&host, &daemon);
    let files_before = daemon.open_files();
    // Failures by operation and message: how many, and the first request that got each.
    let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for i in 0..count {
        if i % 50 == 0 {
            fixtures(&host, &daemon);
        }
        let op = match rng.one_in(10) {
            true => *rng.pick(&unserved),
            false => *rng.pick(&served),
        };
        let req = spec.request(op, &mut rng, known);
        let waits = may_wait(op, &req);
        let within = Duration::from_secs(if waits { 1 } else { 30 });
        let answer = send(daemon.socket(), &req, within);
        *statuses.entry(answer.status.unwrap_or(0)).or_insert(0usize) += 1;
        if std::env::var_os("NETCTL_FUZZ_TRACE").is_some() {
            let said = answer.text.split("\r\n\r\n").nth(1).unwrap_or_default();
            println!("{:?} {} => {}", answer.status, req.describe(), said.trim());
        }
        let swarm = answer.status == Some(503) && answer.text.contains("swarm");
        // A pull or login names a registry, which this namespace cannot reach: the gateway's
        // 502 is the right answer, not a fault of the daemon.
        let upstream = answer.status == Some(502);
        let failed = match answer.status {
            Some(code) => code >= 500 && !swarm && !upstream,
            None => !waits,
        };
        if failed {
            let said = answer.text.split("\r\n\r\n").nth(1).unwrap_or("no answer");
            let said: String = said
                .chars()
                .take(200)
                .flat_map(char::escape_debug)
                .collect();
            let key = format!("{} {} -> {:?}", op.method, op.path, answer.status);
            let first = format!("{}\n    -> {said}", req.describe());
            failures.entry(key).or_insert((0, first)).0 += 1;
        }
    }
    println!("answers by status (0: none in time): {statuses:?}");
    // What the requests opened is closed again (allowing a few connections still closing).
    let files = eventually(
        "netctld closes what the requests opened",
        Duration::from_secs(20),
        || match daemon.open_files() {
            n if n <= files_before + 16 => Ok(n),
            n => Err(format!("{n} open files, {files_before} before the run")),
        },
    );
    println!("netctld's open files: {files_before} before, {files} after");
    let alive = daemon.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(
        alive.1, "1.41\n",
        "netctld stopped serving (seed {seed}): {alive:?}"
    );
    let report: Vec<String> = failures
        .iter()
        .map(|(key, (n, first))| format!("{n} x {key}\n    first: {first}"))
        .collect();
    assert!(
        failures.is_empty(),
        "seed {seed}: requests failed:\n{}",
        report.join("\n")
    );
}
