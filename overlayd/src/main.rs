//! `netctl-overlayd`: the per-host overlay agent. Runs in the foreground (a service manager's
//! job; `netctl cluster join` and the plugin start it detached on demand):
//!
//! ```text
//! netctl-overlayd --config /var/lib/netctl/cluster.json
//! ```
//!
//! It serves the local plugins and the CLI on `<runDir>/overlay/agent.sock`: one JSON request
//! and reply per line, each line at most 64 KiB; at most 64 clients at once, and when all
//! places are taken the client idle longest makes room for the new one; a client idle for
//! 10 s is let go. Names in requests are checked as the CLI checks them.
//!
//! Signals: SIGTERM or SIGINT end it at once, its socket and pid file removed. Its leases stay
//! with etcd, so an agent started again within the liveness TTL (a restart, an upgrade) takes
//! over with nothing withdrawn; containers keep talking meanwhile (the kernel's entries stay).
//! SIGHUP is ignored.

mod agent;
mod clients;
mod crypt;
mod guard;
mod keys;
mod local;
mod members;
mod store;
mod trust;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use netctl_overlay_api::{socket_path, ClusterConfig, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

const MAX_LINE: usize = 64 * 1024;
const IDLE: Duration = Duration::from_secs(10);

fn config_path() -> Result<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, flag, path] if flag == "--config" => Ok(PathBuf::from(path)),
        [_] => Ok(ClusterConfig::path(std::path::Path::new("/var/lib/netctl"))),
        _ => Err(anyhow!("usage: netctl-overlayd [--config CLUSTER.json]")),
    }
}

fn main() -> std::process::ExitCode {
    match start() {
        Ok(Ended::Stopped) => std::process::ExitCode::SUCCESS,
        Ok(Ended::AnotherRuns) => {
            std::process::ExitCode::from(netctl_overlay_api::ANOTHER_AGENT_RUNS)
        }
        Err(e) => {
            // One line: whoever started the agent quotes the last line of its log.
            eprintln!("netctl-overlayd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How an agent that did not fail ended.
enum Ended {
    /// Told to (a signal, `cluster leave`).
    Stopped,
    /// Another agent holds this host's lock and serves it.
    AnotherRuns,
}

fn start() -> Result<Ended> {
    netctl_cni::fsutil::cloexec_inherited();
    let path = config_path()?;
    let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let cfg: ClusterConfig =
        serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(run(cfg));
    // Told to stop: an etcd call or a plugin run in flight is not waited for.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// How long a starting agent waits for the lock: an agent that was just killed holds it
/// until its last thread has exited, which takes a moment (its TUN device goes with it).
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Holds `<run>/overlay/agent.lock` for the agent's life: a second agent for the same host
/// (a plugin and `cluster join` starting one at once) ends, leaving the first, once the lock
/// stayed taken for [`LOCK_WAIT`].
async fn single_instance(socket: &std::path::Path) -> Result<Option<std::fs::File>> {
    let path = socket.with_file_name("agent.lock");
    let file = std::fs::File::create(&path).with_context(|| format!("open {}", path.display()))?;
    let until = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(file)),
            Err(rustix::io::Errno::WOULDBLOCK) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(anyhow!("lock {}: {e}", path.display())),
        }
    }
}

async fn run(cfg: ClusterConfig) -> Result<Ended> {
    let signal = |kind| tokio::signal::unix::signal(kind).context("catch signals");
    use tokio::signal::unix::SignalKind;
    let (mut term, mut int, mut hup) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::hangup())?,
    );
    let socket = socket_path(&cfg.run_dir);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let Some(_lock) = single_instance(&socket).await? else {
        eprintln!(
            "netctl-overlayd: another agent runs for {}",
            cfg.run_dir.display()
        );
        return Ok(Ended::AnotherRuns);
    };
    let store = cfg.store.join(",");
    let agent = Arc::new(
        agent::Agent::start(cfg)
            .await
            .with_context(|| format!("join the cluster through etcd at {store}"))?,
    );
    tokio::spawn(watch::keep_alive(agent.clone(), true));
    tokio::spawn(watch::keep_alive(agent.clone(), false));
    tokio::spawn(watch::follow(agent.clone()));
    tokio::spawn(watch::suspect_silent(agent.clone()));
    tokio::spawn(guard::keep(agent.clone()));
    if let Some(t) = agent.tunnel.clone() {
        tokio::spawn(crypt::outbound(t.clone()));
        tokio::spawn(crypt::inbound(t.clone()));
        tokio::spawn(crypt::timers(t));
        tokio::spawn(watch::rotate_keys(agent.clone()));
    }
    let members = members::reachable(&agent.cfg.store).await;
    tokio::spawn(members::keep_current(agent.clone(), members));
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("listen on {}", socket.display()))?;
    let _ = std::fs::write(
        socket.with_file_name("agent.pid"),
        std::process::id().to_string(),
    );
    let clients = clients::Clients::default();
    let stopped = |socket: &std::path::Path| {
        let _ = std::fs::remove_file(socket);
        let _ = std::fs::remove_file(socket.with_file_name("agent.pid"));
        Ok(Ended::Stopped)
    };
    loop {
        tokio::select! {
            _ = term.recv() => return stopped(&socket),
            _ = int.recv() => return stopped(&socket),
            _ = hup.recv() => {}
            accepted = listener.accept() => {
                let Ok((conn, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (agent, clients) = (agent.clone(), clients.clone());
                tokio::spawn(async move {
                    let Some(place) = clients.place().await else {
                        return; // every client is mid-request: this one is dropped
                    };
                    serve(agent, &clients, conn).await;
                    drop(place);
                });
            }
            () = agent.leaving.notified() => return stopped(&socket),
        }
    }
}

async fn serve(agent: Arc<agent::Agent>, clients: &clients::Clients, conn: UnixStream) {
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut buf = Vec::new();
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let idle = clients.idle();
        let line = tokio::select! {
            read = tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut buf)) => match read {
                Ok(Ok(n)) if n > 0 && n <= MAX_LINE => String::from_utf8_lossy(&buf).into_owned(),
                _ => return,
            },
            () = idle.closed() => return, // its place went to a new client
        };
        drop(idle);
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match trust::request(&req) {
                Ok(()) => agent.handle(req).await,
                Err(message) => Reply::Error {
                    retry: false,
                    message,
                },
            },
            Err(e) => Reply::Error {
                retry: false,
                message: format!("unreadable request: {e}"),
            },
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}
