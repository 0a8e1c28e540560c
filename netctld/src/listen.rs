//! Where the daemon listens: unix sockets (mode 0660, owned by `--group` when given), TCP
//! with TLS and client certificates, and why plain TCP is refused.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use netctl_engine::Engine;
use tokio::net::{TcpListener, UnixListener};

use crate::api::{self, Daemon};
use crate::serve::Server;
use crate::Args;

/// The port dockerd listens on with TLS when `-H tcp://HOST` names none.
const TLS_PORT: u16 = 2376;

/// One `-H` address.
#[derive(Debug)]
pub enum Endpoint {
    /// `unix:///PATH`.
    Unix(PathBuf),
    /// `tcp://HOST:PORT`, with TLS and client certificates.
    Tls {
        /// Where to listen.
        addr: SocketAddr,
        /// The server's certificate and the CA its clients' certificates must come from.
        config: Arc<rustls::ServerConfig>,
    },
}

impl Endpoint {
    /// Reads `-H`: `unix:///PATH` (or a bare path); `tcp://HOST[:PORT]` only with
    /// `--tlsverify` and its three files.
    pub fn parse(host: &str, args: &Args) -> anyhow::Result<Self> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        if let Some(addr) = host.strip_prefix("tcp://") {
            let (Some(ca), Some(cert), Some(key), true) =
                (&args.tlscacert, &args.tlscert, &args.tlskey, args.tlsverify)
            else {
                bail!("{host}: the API over plain TCP gives anyone who reaches the port root on this host; listen on a unix socket, or give --tlsverify --tlscacert --tlscert --tlskey");
            };
            return Ok(Endpoint::Tls {
                addr: tcp_address(addr).with_context(|| format!("-H {host}"))?,
                config: crate::tls::server_config(ca, cert, key)?,
            });
        }
        if host.starts_with("fd://") {
            bail!("{host}: socket activation is not supported by netctld; use unix:///PATH");
        }
        Err(anyhow!(
            "{host}: not an address netctld listens on; use unix:///PATH or tcp://HOST:PORT"
        ))
    }
}

/// `HOST:PORT`, `HOST` (port 2376) or `:PORT` (every address) as one socket address.
fn tcp_address(addr: &str) -> anyhow::Result<SocketAddr> {
    let addr = addr.trim_end_matches('/');
    let candidates = match addr.strip_prefix(':') {
        Some(port) => vec![format!("0.0.0.0:{port}")],
        None => vec![addr.to_string(), format!("{addr}:{TLS_PORT}")],
    };
    candidates
        .iter()
        .find_map(|c| c.to_socket_addrs().ok()?.next())
        .ok_or_else(|| {
            anyhow!("{addr}: not HOST:PORT (an IPv6 address goes in brackets, [ADDR]:PORT)")
        })
}

/// Binds every endpoint, says it is ready, and serves until the process ends.
pub async fn serve(
    endpoints: Vec<Endpoint>,
    group: Option<&str>,
    engine: Arc<Engine>,
) -> anyhow::Result<()> {
    let gid = group
        .map(|g| {
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .map(|g| g.gid)
                .ok_or_else(|| anyhow!("--group {g}: no such group"))
        })
        .transpose()?;
    let server = Server::new(api::service(Daemon::new(engine)));
    let mut servers = tokio::task::JoinSet::new();
    for endpoint in endpoints {
        match endpoint {
            Endpoint::Unix(path) => {
                servers.spawn(server.clone().unix(bind(&path, gid)?));
            }
            Endpoint::Tls { addr, config } => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on {addr}"))?;
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                servers.spawn(server.clone().tls(listener, acceptor));
            }
        }
    }
    notify_ready();
    while servers.join_next().await.is_some() {}
    Ok(())
}

/// A unix socket at `path` (a stale one from a killed daemon replaced), mode 0660.
fn bind(path: &std::path::Path, gid: Option<nix::unistd::Gid>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if answers(path) {
        bail!(
            "{}: another daemon answers there; stop it first",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove the stale {}", path.display()))
        }
        _ => {}
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("set the mode of {}", path.display()))?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid))
            .with_context(|| format!("give {} to the group", path.display()))?;
    }
    Ok(listener)
}

/// Whether a daemon answers `/_ping` on the unix socket at `path` within 2 s. A socket a
/// killed daemon is still closing takes connections but never answers (its backlog goes
/// with it): that one is stale, as a restart right after a `kill -9` finds it.
fn answers(path: &std::path::Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let wait = Some(std::time::Duration::from_secs(2));
    if s.set_read_timeout(wait).is_err() || s.set_write_timeout(wait).is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: netctld\r\n\r\n")
        .is_ok()
        && matches!(s.read(&mut first), Ok(n) if n > 0)
}

/// Tells a service manager that asked (`NOTIFY_SOCKET`, systemd's `Type=notify`) that the
/// sockets answer.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name),
        None => std::os::unix::net::SocketAddr::from_pathname(&path),
    };
    if let (Ok(sock), Ok(addr)) = (std::os::unix::net::UnixDatagram::unbound(), addr) {
        let _ = sock.send_to_addr(b"READY=1", &addr);
    }
}
