//! The two seams between the engine's lifecycle logic and the machine: the CNI client
//! ([`Cni`]) and the few system calls that starting, attaching, stopping and repairing make
//! ([`Syscalls`]). The engine holds one of each; [`Engine::open`](crate::Engine::open) gives
//! the real ones, and unit tests give recording fakes, so lifecycle, attach, rollback and
//! repair are tested without root, as youki's `Syscall` trait lets it.

use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use netctl_cni::invoke::{CniConfig, RuntimeConf};
use netctl_cni::{Attachment, NetConfList, Success};
use netctl_net::{NetNs, Netlink};
use nix::sys::signal::Signal;

use crate::container::pid_alive;
use crate::error::{Context, Error, Result};
use crate::routes::DefaultRoute;

type CniResult<T> = std::result::Result<T, netctl_cni::Error>;

/// The CNI operations the engine makes (see [`CniConfig`] for what each does).
pub trait Cni: Send + Sync {
    /// ADD through the chain.
    fn add(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<Success>;
    /// DEL through the chain.
    fn del(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<()>;
    /// An attachment brought up to date (a new name or aliases).
    fn refresh(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<()>;
    /// GC with the attachments that stay.
    fn gc(&self, list: &NetConfList, valid: &[Attachment]) -> CniResult<()>;
    /// STATUS on each plugin.
    fn status(&self, list: &NetConfList) -> CniResult<()>;
    /// The network's host side, before any attachment.
    fn prepare_network(&self, list: &NetConfList) -> CniResult<()>;
    /// The network's host side taken away.
    fn remove_network(&self, list: &NetConfList) -> CniResult<()>;
    /// The cached ADD result of an attachment.
    fn cached_result(&self, network: &str, rt: &RuntimeConf) -> CniResult<Option<Success>>;
    /// Every cached attachment of a network.
    fn cached_attachments(&self, network: &str) -> CniResult<Vec<RuntimeConf>>;
}

impl Cni for CniConfig {
    fn add(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<Success> {
        CniConfig::add(self, list, rt)
    }
    fn del(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<()> {
        CniConfig::del(self, list, rt)
    }
    fn refresh(&self, list: &NetConfList, rt: &RuntimeConf) -> CniResult<()> {
        CniConfig::refresh(self, list, rt)
    }
    fn gc(&self, list: &NetConfList, valid: &[Attachment]) -> CniResult<()> {
        CniConfig::gc(self, list, valid)
    }
    fn status(&self, list: &NetConfList) -> CniResult<()> {
        CniConfig::status(self, list)
    }
    fn prepare_network(&self, list: &NetConfList) -> CniResult<()> {
        CniConfig::prepare_network(self, list)
    }
    fn remove_network(&self, list: &NetConfList) -> CniResult<()> {
        CniConfig::remove_network(self, list)
    }
    fn cached_result(&self, network: &str, rt: &RuntimeConf) -> CniResult<Option<Success>> {
        CniConfig::cached_result(self, network, rt)
    }
    fn cached_attachments(&self, network: &str) -> CniResult<Vec<RuntimeConf>> {
        CniConfig::cached_attachments(self, network)
    }
}

/// The system calls of a container's lifecycle outside its own processes: its network
/// namespace, its default routes, signals and waiting for a process to end.
pub trait Syscalls: Send + Sync {
    /// Makes a network namespace bind-mounted at `path`, loopback up.
    fn create_netns(&self, path: &Path) -> Result<()>;
    /// Takes the namespace at `path` away (nothing when it is gone).
    fn remove_netns(&self, path: &Path);
    /// Brings loopback up in the namespace at `path`.
    fn loopback_up(&self, path: &Path) -> Result<()>;
    /// Makes `routes` the namespace's default routes, removing any other of their family.
    fn set_default_routes(&self, path: &Path, routes: &[DefaultRoute]) -> Result<()>;
    /// Adds `addrs` to interface `ifname` in the namespace at `path` (one there already is
    /// fine).
    fn add_addresses(&self, path: &Path, ifname: &str, addrs: &[IpNet]) -> Result<()>;
    /// Sends `sig` to process `pid`.
    fn kill(&self, pid: u32, sig: Signal) -> Result<()>;
    /// Waits up to `timeout` for process `pid` to end; whether it did.
    fn wait_gone(&self, pid: u32, timeout: Duration) -> bool;
}

/// The real system calls, on Linux.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscalls;

impl Syscalls for LinuxSyscalls {
    fn create_netns(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        NetNs::create(path)?;
        if let Err(e) = self.loopback_up(path) {
            let _ = NetNs::remove(path);
            return Err(e.context("bring up loopback in the container"));
        }
        Ok(())
    }

    fn remove_netns(&self, path: &Path) {
        let _ = NetNs::remove(path);
    }

    fn loopback_up(&self, path: &Path) -> Result<()> {
        NetNs::open(path)?.run(|| {
            let mut nl = Netlink::new()?;
            match nl.link_by_name("lo")? {
                Some(lo) => nl.set_up(lo.index, true),
                None => Ok(()),
            }
        })??;
        Ok(())
    }

    fn set_default_routes(&self, path: &Path, routes: &[DefaultRoute]) -> Result<()> {
        let routes = routes.to_vec();
        NetNs::open(path)?.run(move || crate::routes::apply_here(&routes))?
    }

    fn add_addresses(&self, path: &Path, ifname: &str, addrs: &[IpNet]) -> Result<()> {
        let (ifname, addrs) = (ifname.to_string(), addrs.to_vec());
        NetNs::open(path)?.run(move || {
            let mut nl = Netlink::new()?;
            let link = nl
                .link_by_name(&ifname)?
                .ok_or_else(|| netctl_net::NetError::LinkNotFound(ifname.clone()))?;
            let have = nl.addresses(Some(link.index))?;
            for net in addrs.iter().filter(|n| !have.iter().any(|a| a.net == **n)) {
                nl.add_address(link.index, *net, true)?;
            }
            Ok::<(), netctl_net::NetError>(())
        })??;
        Ok(())
    }

    fn kill(&self, pid: u32, sig: Signal) -> Result<()> {
        let pid = i32::try_from(pid).map_err(|_| Error::State(format!("no process {pid}")))?;
        // Gone between the look and the signal (it exited a moment ago): not running, a
        // state, not a failure of the host's.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| match e {
            nix::errno::Errno::ESRCH => {
                Error::State(format!("its process {pid} has exited: it is not running"))
            }
            e => Error::io(format!("signal process {pid}"), e.into()),
        })
    }

    /// Sleeps on a pidfd of the process (never polling); without one, looks once.
    fn wait_gone(&self, pid: u32, timeout: Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        use rustix::process::{pidfd_open, Pid, PidfdFlags};
        let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return true;
        };
        let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
            return !pid_alive(pid);
        };
        let ts = Timespec::try_from(timeout).ok();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        loop {
            match poll(&mut fds, ts.as_ref()) {
                Ok(0) => return !pid_alive(pid),
                Ok(_) => return true,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return !pid_alive(pid),
            }
        }
    }
}
