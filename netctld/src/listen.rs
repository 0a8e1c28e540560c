//! Where the daemon listens: unix sockets (mode 0660, owned by `--group` when given), and
//! why plain TCP is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use axum::ServiceExt;
use netctl_engine::Engine;
use tokio::net::UnixListener;
use tower_layer::Layer;

use crate::api::{self, Daemon};
use crate::Args;

/// One `-H` address.
#[derive(Debug)]
pub enum Endpoint {
    /// `unix:///PATH`.
    Unix(PathBuf),
}

impl Endpoint {
    /// Reads `-H`: `unix:///PATH` (or a bare path); `tcp://` only with TLS and client
    /// certificates.
    pub fn parse(host: &str, args: &Args) -> anyhow::Result<Self> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        if host.starts_with("tcp://") || host.starts_with("fd://") {
            let tls = args.tlsverify
                && args.tlscacert.is_some()
                && args.tlscert.is_some()
                && args.tlskey.is_some();
            if !tls {
                bail!("{host}: the API over plain TCP gives anyone who reaches the port root on this host; listen on a unix socket, or give --tlsverify --tlscacert --tlscert --tlskey");
            }
            bail!("{host}: TCP with TLS is not served by this netctld yet; listen on a unix socket (-H unix:///PATH)");
        }
        Err(anyhow!(
            "{host}: not an address netctld listens on; use unix:///PATH"
        ))
    }
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
    let daemon = Daemon::new(engine);
    let mut servers = Vec::new();
    for Endpoint::Unix(path) in endpoints {
        let listener = bind(&path, gid)?;
        let app = axum::middleware::from_fn(api::versioned).layer(api::app(daemon.clone()));
        servers.push(tokio::spawn(async move {
            axum::serve(listener, app.into_make_service()).await
        }));
    }
    notify_ready();
    for s in servers {
        s.await??;
    }
    Ok(())
}

/// A unix socket at `path` (a stale one from a killed daemon replaced), mode 0660.
fn bind(path: &std::path::Path, gid: Option<nix::unistd::Gid>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
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
