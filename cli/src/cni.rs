//! `netctl cni ...`: a network's configuration list against any namespace, through the
//! engine's CNI client (like CNI's `cnitool`), so any conflist — written by `netctl` or by
//! hand, for netctl's plugins or the reference ones — can be tried directly.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use netctl_cni::invoke::{CniConfig, RuntimeConf};
use netctl_cni::{Attachment, NetConfList};
use netctl_engine::netattach::{runtime_conf, AttachRequest};
use netctl_engine::EngineConfig;

use crate::outcome::Outcome;

/// `netctl cni` commands.
#[derive(Subcommand)]
pub enum CniCommand {
    /// Attach a container: ADD through the chain; prints the result.
    Add(Attach),
    /// Detach a container: DEL through the chain in reverse.
    Del(Attach),
    /// Verify an attachment against its cached result.
    Check(Attach),
    /// Release everything of the network not used by the given containers.
    Gc(Gc),
    /// Ask every plugin of the network whether it can attach containers.
    Status(Network),
}

/// Which network, and where its plugins and results are.
#[derive(Args)]
pub struct Network {
    /// A network name (from `netctl network ls`) or a conflist file.
    conflist: PathBuf,
    /// Where ADD results are cached for DEL and CHECK (default: <root>/cni-cache).
    #[arg(long, env = "NETCTL_CNI_CACHE")]
    cache_dir: Option<PathBuf>,
}

/// One attachment.
#[derive(Args)]
pub struct Attach {
    #[command(flatten)]
    network: Network,
    /// The container ID.
    #[arg(long = "id")]
    container_id: String,
    /// The container's network namespace (optional for DEL).
    #[arg(long)]
    netns: Option<PathBuf>,
    /// The interface name in the container.
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// The container's name (DNS), passed as K8S_POD_NAME.
    #[arg(long)]
    name: Option<String>,
    /// A DNS alias on this network (`--net-alias`); repeatable.
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// A published port, [HOSTIP:]HOST:CONTAINER[/tcp|udp]; repeatable.
    #[arg(long = "publish", short = 'p')]
    ports: Vec<String>,
    /// An address to ask for (`--ip`); repeatable.
    #[arg(long = "ip")]
    ips: Vec<std::net::IpAddr>,
}

/// `cni gc`.
#[derive(Args)]
pub struct Gc {
    #[command(flatten)]
    network: Network,
    /// An attachment still in use, CONTAINER_ID:IFNAME; repeatable.
    #[arg(long = "keep")]
    keep: Vec<String>,
}

impl Network {
    fn load(&self, config: &EngineConfig) -> anyhow::Result<(CniConfig, NetConfList)> {
        let list = if self.conflist.is_file() {
            let bytes = std::fs::read(&self.conflist)
                .map_err(|e| anyhow::anyhow!("read {}: {e}", self.conflist.display()))?;
            NetConfList::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.conflist.display()))?
        } else {
            let store = netctl_engine::network::NetworkStore::open(&config.root, &config.run_dir)?;
            store.find(&self.conflist.to_string_lossy())?.list
        };
        let mut cni = config.cni_client();
        if let Some(dir) = &self.cache_dir {
            cni.cache_dir.clone_from(dir);
        }
        Ok((cni, list))
    }
}

impl Attach {
    fn runtime(&self, network: &str) -> anyhow::Result<RuntimeConf> {
        let ports = self
            .ports
            .iter()
            .map(|p| netctl_engine::spec::parse_publish(p))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        Ok(runtime_conf(&AttachRequest {
            container_id: &self.container_id,
            name: self.name.as_deref(),
            netns: self.netns.clone(),
            ifname: &self.ifname,
            network,
            aliases: self.aliases.clone(),
            ports: &ports,
            ips: &self.ips,
            mac: None,
            dns: &[],
            links: &[],
        }))
    }
}

fn cni_err(e: netctl_cni::Error) -> anyhow::Error {
    anyhow::anyhow!("{e} (CNI error {})", e.code.as_u32())
}

/// Runs a `netctl cni` command.
pub fn run(config: &EngineConfig, cmd: CniCommand) -> Outcome {
    match cmd {
        CniCommand::Add(a) => {
            let (cni, list) = a.network.load(config)?;
            let result = cni.add(&list, &a.runtime(&list.name)?).map_err(cni_err)?;
            let version = list.spec_version().map_err(cni_err)?;
            crate::output::json(&result.to_json(version))?;
        }
        CniCommand::Del(a) => {
            let (cni, list) = a.network.load(config)?;
            cni.del(&list, &a.runtime(&list.name)?).map_err(cni_err)?;
        }
        CniCommand::Check(a) => {
            let (cni, list) = a.network.load(config)?;
            cni.check(&list, &a.runtime(&list.name)?).map_err(cni_err)?;
        }
        CniCommand::Gc(g) => {
            let (cni, list) = g.network.load(config)?;
            let keep = g
                .keep
                .iter()
                .map(|k| {
                    let (c, i) = k.split_once(':').ok_or_else(|| {
                        anyhow::anyhow!("--keep {k:?} is not CONTAINER_ID:IFNAME")
                    })?;
                    Ok(Attachment {
                        container_id: c.into(),
                        ifname: i.into(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            cni.gc(&list, &keep).map_err(cni_err)?;
        }
        CniCommand::Status(n) => {
            let (cni, list) = n.load(config)?;
            cni.status(&list).map_err(cni_err)?;
            println!("network {} can attach containers", list.name);
        }
    }
    Ok(0)
}
