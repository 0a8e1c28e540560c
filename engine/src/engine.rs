//! The engine itself: its configuration, where state lives and the stores every operation
//! uses.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use netctl_cni::invoke::CniConfig;
use serde::{Deserialize, Serialize};

use crate::container::ContainerStore;
use crate::error::{Error, Result};
use crate::seam::{Cni, LinuxSyscalls, Syscalls};

/// Where persistent state lives by default.
pub const DEFAULT_ROOT: &str = "/var/lib/netctl";
/// Where runtime state lives by default (the plugins' default too).
pub const DEFAULT_RUN_DIR: &str = netctl_net::DEFAULT_RUN_DIR;
/// How long one plugin call may run by default before it is killed.
pub const DEFAULT_PLUGIN_DEADLINE: Duration = Duration::from_secs(60);
/// How long a registry may keep a request waiting by default (see
/// [`netctl_registry::Options::timeout`]).
pub const DEFAULT_REGISTRY_DEADLINE: Duration = Duration::from_secs(60);

/// What a front end (the CLI, the API daemon) tells the engine; the engine reads nothing
/// of this from the environment or from which binary runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Persistent state (`--root`).
    pub root: PathBuf,
    /// Runtime state (`--run-dir`).
    pub run_dir: PathBuf,
    /// Folders holding the CNI plugins and `netctl-overlayd`, searched in order.
    pub cni_path: Vec<PathBuf>,
    /// How long one plugin call may run before it is killed with its process group.
    pub plugin_deadline: Duration,
    /// Pools for networks made without `--subnet`, after Docker's own.
    pub address_pools: Vec<AddressPool>,
    /// The netctl binary, run as each container's monitor, init and exec helper.
    pub helper: PathBuf,
    /// How registries are reached (insecure ones, certificates, deadlines).
    #[serde(skip)]
    pub registry: netctl_registry::Options,
}

impl EngineConfig {
    /// The defaults around `helper`: state in `root` and `run_dir`, plugins beside the
    /// helper, a 60 s plugin deadline, Docker's address pools alone.
    pub fn new(root: &Path, run_dir: &Path, helper: &Path) -> Self {
        EngineConfig {
            root: root.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            cni_path: helper.parent().map(Path::to_path_buf).into_iter().collect(),
            plugin_deadline: DEFAULT_PLUGIN_DEADLINE,
            address_pools: Vec::new(),
            helper: helper.to_path_buf(),
            registry: netctl_registry::Options::default(),
        }
    }
}

/// The settings file both front ends read (Docker's `daemon.json` keys).
pub const DAEMON_CONFIG: &str = "/etc/netctl/daemon.json";

/// What both front ends read of [`DAEMON_CONFIG`] (Docker's keys).
#[derive(Debug, Default, Deserialize)]
pub struct DaemonConfig {
    /// Registries that may answer plain HTTP or unverified TLS.
    #[serde(default, rename = "insecure-registries")]
    pub insecure_registries: Vec<String>,
    /// Docker Hub's mirrors.
    #[serde(default, rename = "registry-mirrors")]
    pub registry_mirrors: Vec<String>,
}

impl DaemonConfig {
    /// [`DAEMON_CONFIG`], empty when it does not exist.
    pub fn read() -> Result<Self> {
        match std::fs::read(DAEMON_CONFIG) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("{DAEMON_CONFIG}: {e}; fix or remove it"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(format!("read {DAEMON_CONFIG}"), e)),
        }
    }
}

impl EngineConfig {
    /// This configuration with a front end's options: another plugin path (when one is
    /// given), the plugin deadline, more address pools.
    pub fn with_options(
        mut self,
        cni_path: &[PathBuf],
        plugin_deadline: Duration,
        pools: &[AddressPool],
    ) -> Self {
        if !cni_path.is_empty() {
            self.cni_path = cni_path.to_vec();
        }
        self.plugin_deadline = plugin_deadline;
        self.address_pools = pools.to_vec();
        self
    }

    /// This configuration with a front end's registry options and [`DAEMON_CONFIG`]'s:
    /// registries that may answer plain HTTP or unverified TLS, Docker Hub's mirrors (each
    /// checked), and the deadline of every registry request.
    pub fn with_registries(
        mut self,
        insecure: &[String],
        mirrors: &[String],
        deadline: Duration,
    ) -> Result<Self> {
        let file = DaemonConfig::read()?;
        self.registry.timeout = deadline;
        self.registry.insecure = [insecure, &file.insecure_registries].concat();
        self.registry.mirrors = [mirrors, &file.registry_mirrors].concat();
        for m in &self.registry.mirrors {
            netctl_registry::client::mirror_parts(m)?;
        }
        Ok(self)
    }

    /// The CNI client this configuration describes: plugins from the CNI path, results
    /// cached under the root, every plugin call under the deadline.
    pub fn cni_client(&self) -> CniConfig {
        let mut cni = CniConfig::new(self.cni_path.clone(), self.root.join("cni-cache"));
        cni.exec.deadline = Some(self.plugin_deadline);
        cni
    }
}

/// An address pool: subnets of `size` bits cut from `base` (`10.10.0.0/16/24`, as Docker's
/// `--default-address-pool base=10.10.0.0/16,size=24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    /// The range the subnets are cut from.
    pub base: IpNet,
    /// The prefix length of each subnet.
    pub size: u8,
}

impl AddressPool {
    /// The pool's subnets, in order.
    pub fn subnets(&self) -> impl Iterator<Item = IpNet> {
        self.base.subnets(self.size).into_iter().flatten()
    }
}

impl FromStr for AddressPool {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "address pool {spec:?}: {why}; write BASE/SIZE, such as 10.10.0.0/16/24"
            ))
        };
        let (base, size) = spec.rsplit_once('/').ok_or_else(|| bad("no /SIZE"))?;
        let base: IpNet = base.parse().map_err(|_| bad("BASE is not a subnet"))?;
        if base.trunc() != base {
            return Err(bad("BASE has host bits set"));
        }
        let size: u8 = size.parse().map_err(|_| bad("SIZE is not a number"))?;
        if size < base.prefix_len() || size > base.max_prefix_len() {
            return Err(bad(
                "SIZE must lie between BASE's prefix length and the address length",
            ));
        }
        Ok(AddressPool { base, size })
    }
}

/// Where state lives and the stores every operation uses.
pub struct Engine {
    /// What the front end configured.
    pub config: EngineConfig,
    /// The containers.
    pub containers: ContainerStore,
    /// The CNI client (plugins from the configured path, results cached under the root,
    /// every plugin call under the configured deadline).
    pub cni: Box<dyn Cni>,
    /// The system calls of lifecycle outside the container's own processes.
    pub sys: Box<dyn Syscalls>,
}

impl Engine {
    /// The engine over a configuration, with the real CNI client and system calls.
    pub fn open(config: &EngineConfig) -> Result<Self> {
        Self::with_seams(
            config,
            Box::new(config.cni_client()),
            Box::new(LinuxSyscalls),
        )
    }

    /// The engine over a configuration, with the CNI client and system calls given.
    pub fn with_seams(
        config: &EngineConfig,
        cni: Box<dyn Cni>,
        sys: Box<dyn Syscalls>,
    ) -> Result<Self> {
        Ok(Self {
            containers: ContainerStore::open(&config.root)?,
            cni,
            sys,
            config: config.clone(),
        })
    }

    /// Persistent state (`--root`, default `/var/lib/netctl`).
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// Runtime state (`--run-dir`, default `/run/netctl`).
    pub fn run_dir(&self) -> &Path {
        &self.config.run_dir
    }

    /// Where a container's network namespace is bind-mounted.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.config.run_dir.join("netns").join(id)
    }

    /// A netctl binary (`netctl-overlayd`) from the plugin path.
    pub fn binary(&self, name: &str) -> Option<PathBuf> {
        self.config
            .cni_path
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_pools_are_read_as_docker_writes_them() {
        let p: AddressPool = "10.10.0.0/16/24".parse().unwrap();
        assert_eq!(p.subnets().count(), 256);
        assert_eq!(p.subnets().next(), Some("10.10.0.0/24".parse().unwrap()));
        for bad in [
            "10.10.0.0/16",
            "10.10.0.1/16/24",
            "10.10.0.0/16/8",
            "10.10.0.0/16/33",
            "x/1/2",
        ] {
            assert!(bad.parse::<AddressPool>().is_err(), "{bad} accepted");
        }
    }
}
