//! `netctl-dnsd`: the DNS server for container networks. Started by the `netctl-dns` plugin
//! when the first record appears; exits when the last one is gone.
//!
//! Usage: netctl-dnsd [--run-dir DIR] [--resolv-conf FILE]

use std::fs::File;
use std::path::PathBuf;

use anyhow::{bail, Context};
use netctl_dnsd::records::DnsPaths;
use netctl_dnsd::server::Server;

fn main() -> anyhow::Result<()> {
    let mut run_dir = PathBuf::from("/run/netctl");
    let mut resolv_conf = PathBuf::from("/etc/resolv.conf");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--run-dir" => run_dir = args.next().context("--run-dir needs a folder")?.into(),
            "--resolv-conf" => resolv_conf = args.next().context("--resolv-conf needs a file")?.into(),
            other => bail!("unknown argument {other:?}; usage: netctl-dnsd [--run-dir DIR] [--resolv-conf FILE]"),
        }
    }
    let paths = DnsPaths::new(&run_dir);
    std::fs::create_dir_all(&paths.root)
        .with_context(|| format!("create {}", paths.root.display()))?;
    let lock = File::create(paths.server_lock()).context("open the server lock")?;
    if lock.try_lock().is_err() {
        return Ok(()); // another server is running
    }
    std::fs::write(paths.pid_file(), std::process::id().to_string())
        .context("write the pid file")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = rt.block_on(async {
        let mut server = Server::new(paths.clone(), resolv_conf);
        server.load_all();
        tokio::select! {
            r = server.run() => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    let _ = std::fs::remove_file(paths.pid_file());
    let _ = std::fs::remove_file(paths.control());
    result
}
