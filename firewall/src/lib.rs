//! Firewall rules for bridge networks, behind the [`Firewall`] trait: [`Nftables`] (its own
//! `inet netctl` table), [`Iptables`] (its own `NETCTL-*` chains, for hosts where iptables
//! rules the firewall, with iptables-nft or iptables-legacy) and [`NoFirewall`]. Which one a
//! network uses is picked once, by [`open`].
//!
//! Rules are kept per network, not per container: a network gets its rules once (at its first
//! attachment), and a published port is one map element or one DNAT rule. Each operation is
//! one transaction (`nft -f`, `iptables-restore --noflush`), so a failure changes nothing.
//!
//! Living with the host's firewall: a host with Docker or ufw has iptables' FORWARD policy
//! DROP, and in netfilter a packet must be accepted by every base chain at a hook. So the
//! nftables backend also adds, to each iptables variant that has a filter table
//! ([`HostChains`]), a `NETCTL-FORWARD` chain that accepts traffic of netctl's bridges only
//! (which `inet netctl` has already filtered); nothing else of the host's policy changes.

mod cluster;
mod ebt;
mod hostfw;
mod ipt;
mod names;
mod nft;
mod rules;
mod xtables;

pub use cluster::{ClusterRules, TunnelRules};
pub use hostfw::HostChains;
pub use ipt::Iptables;
pub use names::{IfName, MacAddr};
pub use nft::Nftables;
pub use rules::{FamilyPolicy, NetworkRules, PortForward, Proto, SourceGuard, GUARDED_HOST_PORTS};
pub use xtables::{Family, Flavour};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What went wrong while changing the firewall.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A firewall program could not be run.
    #[error("failed to run {program}: {source} (is the {package} package installed?)")]
    Exec {
        /// The program.
        program: PathBuf,
        /// The Debian package that has it.
        package: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The firewall refused the transaction; nothing was changed.
    #[error("{program} refused to {what}: {stderr}")]
    Rejected {
        /// The program.
        program: String,
        /// The operation.
        what: String,
        /// What it said.
        stderr: String,
    },
    /// A host port is already published by another container.
    #[error("host port {0} is already published by another container")]
    PortInUse(String),
    /// A value that cannot go into a firewall rule.
    #[error("invalid firewall value: {0}")]
    BadValue(String),
    /// This backend cannot do what the network asks.
    #[error("{0}")]
    Unsupported(String),
    /// No backend can run on this host.
    #[error("no firewall backend works here: {0}")]
    Unavailable(String),
}

/// A firewall backend.
pub trait Firewall {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Makes the network's rules (masquerade, isolation, inbound protection) exist, replacing
    /// any older version of them. Idempotent.
    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError>;
    /// Removes the network's rules; rules already gone are fine.
    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError>;
    /// Whether the network's rules are in place.
    fn network_present(&self, net: &NetworkRules) -> Result<bool, FirewallError>;
    /// Publishes ports, all or none.
    fn add_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError>;
    /// Withdraws ports; ports not published (or published by someone else) are left alone.
    fn del_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError>;
    /// Whether every one of the ports is published.
    fn ports_present(&self, ports: &[PortForward]) -> Result<bool, FirewallError>;
    /// Drops what enters from the guard's port with another source MAC or address.
    fn add_source_guard(&self, guard: &SourceGuard) -> Result<(), FirewallError>;
    /// What one attachment publishes, all or none: its source guard, then its ports.
    fn publish(
        &self,
        ports: &[PortForward],
        guard: Option<&SourceGuard>,
    ) -> Result<(), FirewallError> {
        if let Some(g) = guard {
            self.add_source_guard(g)?;
        }
        if let Err(e) = self.add_ports(ports) {
            if let Some(g) = guard {
                let _ = self.del_source_guard(g);
            }
            return Err(e);
        }
        Ok(())
    }
    /// Removes a source guard; one already gone is fine.
    fn del_source_guard(&self, guard: &SourceGuard) -> Result<(), FirewallError>;
    /// The guards of `guards` that are not in place, found with one look at the firewall
    /// (healing adds only what is missing: every change would wake the watcher again, and a
    /// host may have a thousand guards).
    fn missing_source_guards<'a>(
        &self,
        guards: &'a [SourceGuard],
    ) -> Result<Vec<&'a SourceGuard>, FirewallError>;
    /// Takes away what netctl added to the host's firewall for all networks (its tables, or
    /// its shared chains and their jumps) once no network, published port or source guard
    /// is left in it: the host's firewall is then as it was before netctl.
    fn remove_if_unused(&self) -> Result<(), FirewallError>;
    /// Makes the cluster's rules exactly `rules` (see [`ClusterRules`]).
    fn set_cluster(&self, rules: &ClusterRules) -> Result<(), FirewallError>;
    /// Removes the cluster's rules; rules already gone are fine.
    fn clear_cluster(&self) -> Result<(), FirewallError>;
}

/// A firewall backend by name, as the conflist's `firewallBackend` gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// nftables when `nft` works here, else iptables.
    #[default]
    Auto,
    /// [`Nftables`].
    Nftables,
    /// [`Iptables`].
    Iptables,
    /// [`NoFirewall`]: no rules at all (the host's firewall is someone else's job).
    None,
}

impl Backend {
    /// Its name in a conflist.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
            Backend::None => "none",
        }
    }
}

/// The backend for `choice`: `Auto` is nftables when `nft` can list the ruleset here, else
/// iptables when that runs, else an error saying what to install.
pub fn open(choice: Backend) -> Result<Box<dyn Firewall>, FirewallError> {
    Ok(match choice {
        Backend::Nftables => Box::new(Nftables::new()),
        Backend::Iptables => Box::new(Iptables::detect()),
        Backend::None => Box::new(NoFirewall),
        Backend::Auto => {
            let nft = Nftables::new();
            if nft.works() {
                Box::new(nft)
            } else {
                let ipt = Iptables::detect();
                if !ipt.works() {
                    return Err(FirewallError::Unavailable(
                        "neither nft nor iptables runs (install nftables or iptables, or set \"firewallBackend\": \"none\")".into(),
                    ));
                }
                Box::new(ipt)
            }
        }
    })
}

/// No firewall: nothing is added, everything is "present".
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFirewall;

impl Firewall for NoFirewall {
    fn backend(&self) -> Backend {
        Backend::None
    }
    fn setup_network(&self, _: &NetworkRules) -> Result<(), FirewallError> {
        Ok(())
    }
    fn teardown_network(&self, _: &NetworkRules) -> Result<(), FirewallError> {
        Ok(())
    }
    fn network_present(&self, _: &NetworkRules) -> Result<bool, FirewallError> {
        Ok(true)
    }
    fn add_ports(&self, _: &[PortForward]) -> Result<(), FirewallError> {
        Ok(())
    }
    fn del_ports(&self, _: &[PortForward]) -> Result<(), FirewallError> {
        Ok(())
    }
    fn ports_present(&self, _: &[PortForward]) -> Result<bool, FirewallError> {
        Ok(true)
    }
    fn add_source_guard(&self, _: &SourceGuard) -> Result<(), FirewallError> {
        Ok(())
    }
    fn del_source_guard(&self, _: &SourceGuard) -> Result<(), FirewallError> {
        Ok(())
    }
    fn missing_source_guards<'a>(
        &self,
        _: &'a [SourceGuard],
    ) -> Result<Vec<&'a SourceGuard>, FirewallError> {
        Ok(Vec::new())
    }
    fn remove_if_unused(&self) -> Result<(), FirewallError> {
        Ok(())
    }
    fn set_cluster(&self, _: &ClusterRules) -> Result<(), FirewallError> {
        Ok(())
    }
    fn clear_cluster(&self) -> Result<(), FirewallError> {
        Ok(())
    }
}

/// Runs `program args` with `stdin`; (success, stderr, stdout).
pub(crate) fn run_tool(
    program: &std::path::Path,
    package: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(bool, String, String), FirewallError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let exec_err = |source| FirewallError::Exec {
        program: program.to_path_buf(),
        package,
        source,
    };
    let mut cmd = Command::new(program);
    netctl_cni::process::CleanSignals::clean_signals(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(exec_err)?;
    if let Some(mut input) = child.stdin.take() {
        if let Some(script) = stdin {
            input.write_all(script.as_bytes()).map_err(exec_err)?;
        }
    }
    let out = child.wait_with_output().map_err(exec_err)?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Starts `program args`, writes `stdin` to it and leaves it to finish on its own (its own
/// process group, no descriptor of ours but the pipe): for work nobody need wait for.
pub(crate) fn start_tool(
    program: &std::path::Path,
    package: &'static str,
    args: &[&str],
    stdin: &str,
) -> Result<(), FirewallError> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exec_err = |source| FirewallError::Exec {
        program: program.to_path_buf(),
        package,
        source,
    };
    let mut cmd = Command::new(program);
    netctl_cni::process::CleanSignals::clean_signals(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(exec_err)?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).map_err(exec_err)?;
    }
    Ok(())
}

/// Makes the tool die with us: a plugin killed half-way (a runtime's timeout) must not leave
/// an `nft` that commits its change after a later DEL or GC took the change's record away.
/// A transaction is all or nothing, so the tool either committed before or never does.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl(2)
    // and getppid(2), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// `name` from `PATH`, else /usr/sbin or /sbin, else the bare name.
pub(crate) fn find_program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}
