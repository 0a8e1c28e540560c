//! `netctl`: container networking from the command line.
//!
//! `netctl cni` runs a network's configuration list against a container namespace through
//! the same CNI client the runtime uses (like CNI's `cnitool`), so any conflist — written by
//! `netctl` or by hand, for netctl's plugins or the reference ones — can be tried directly.

mod archive;
mod attach;
mod cgroup;
mod clock;
mod console;
mod container;
mod container_cmd;
mod create;
mod engine;
mod exec;
mod hygiene;
mod image;
mod init;
mod layer;
mod lifecycle;
mod load;
mod manage;
mod monitor;
mod network;
mod network_cmd;
mod rootfs;
mod view;
mod volume;
mod volume_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use netctl_cni::invoke::{CniConfig, RuntimeConf};
use netctl_cni::{Attachment, NetConfList};
use serde_json::{json, Map, Value};

#[derive(Parser)]
#[command(name = "netctl", version, about = "Container networking for Linux")]
struct Cli {
    /// Persistent state: networks, addresses, the CNI result cache.
    #[arg(
        long,
        global = true,
        env = "NETCTL_ROOT",
        default_value = "/var/lib/netctl"
    )]
    root: PathBuf,
    /// Runtime state: DNS records and server, firewall records.
    #[arg(
        long = "run-dir",
        global = true,
        env = "NETCTL_RUN",
        default_value = "/run/netctl"
    )]
    run_dir: PathBuf,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a network's CNI chain against a container namespace.
    #[command(subcommand)]
    Cni(CniCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(network_cmd::NetworkCommand),
    /// Create and start a container.
    Run(container_cmd::RunArgs),
    /// Create a container without starting it; prints its ID.
    Create(create::CreateArgs),
    /// Start stopped containers.
    Start {
        /// Attach to the container's output and wait for it.
        #[arg(short = 'a', long)]
        attach: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers.
    Restart {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers.
    Kill {
        /// Signal name or number.
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill a running container first.
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove anonymous volumes too.
        #[arg(short = 'v', long)]
        volumes: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps(container_cmd::PsArgs),
    /// Show containers or images as JSON.
    Inspect {
        /// Only this kind: container, image, volume or network.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Containers, images, volumes or networks.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Show a container's output.
    Logs(container_cmd::LogsArgs),
    /// Run a command in a running container.
    Exec(container_cmd::ExecArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(container_cmd::ContainerCommand),
    /// Manage images.
    #[command(subcommand)]
    Image(container_cmd::ImageCommand),
    /// List images.
    Images(container_cmd::ImagesArgs),
    /// Load images from a `docker save` or OCI archive.
    Load(container_cmd::LoadArgs),
    /// Remove images.
    Rmi {
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name.
    Tag {
        /// The image.
        source: String,
        /// The new NAME[:TAG].
        target: String,
    },
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume_cmd::VolumeCommand),
    /// Attach to a running container's output (and input); Ctrl-P Ctrl-Q detaches.
    Attach {
        /// The container.
        container: String,
    },
    /// Freeze every process of containers.
    Pause {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers.
    Unpause {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show a container's processes.
    Top {
        /// The container.
        container: String,
    },
    /// Show a container's published ports.
    Port {
        /// The container.
        container: String,
        /// Only this one: PORT[/PROTO].
        port: Option<String>,
    },
    /// Rename a container.
    Rename {
        /// The container.
        container: String,
        /// Its new name.
        name: String,
    },
    /// Block until containers stop; print their exit codes.
    Wait {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// The per-container monitor (internal).
    #[command(name = "__monitor", hide = true)]
    Monitor {
        /// Container ID.
        id: String,
        /// Keep the output for the client that attaches next (an attached run).
        #[arg(long)]
        attach: bool,
        /// ROWS,COLS of the attaching terminal, for a `-t` container.
        #[arg(long = "tty-size", value_parser = parse_tty_size)]
        tty_size: Option<(u16, u16)>,
    },
    /// Stage 1 of a container's process (internal).
    #[command(name = "__init", hide = true)]
    Init {
        /// The init spec.
        spec: PathBuf,
    },
    /// Stage 2 of a container's process (internal).
    #[command(name = "__init2", hide = true)]
    Init2 {
        /// The init spec.
        spec: PathBuf,
    },
}

#[derive(Subcommand)]
enum CniCommand {
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

#[derive(Args)]
struct Network {
    /// A network name (from `netctl network ls`) or a conflist file.
    conflist: PathBuf,
    /// Folders holding the plugins (default: the folder of this binary).
    #[arg(long, env = "CNI_PATH", value_delimiter = ':')]
    cni_path: Vec<PathBuf>,
    /// Where ADD results are cached for DEL and CHECK (default: <root>/cni-cache).
    #[arg(long, env = "NETCTL_CNI_CACHE")]
    cache_dir: Option<PathBuf>,
}

#[derive(Args)]
struct Attach {
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
    /// A published port, HOST:CONTAINER[/tcp|udp]; repeatable.
    #[arg(long = "publish", short = 'p')]
    ports: Vec<String>,
    /// An address to ask for (`--ip`); repeatable.
    #[arg(long = "ip")]
    ips: Vec<String>,
}

#[derive(Args)]
struct Gc {
    #[command(flatten)]
    network: Network,
    /// An attachment still in use, CONTAINER_ID:IFNAME; repeatable.
    #[arg(long = "keep")]
    keep: Vec<String>,
}

/// The CNI client netctl uses: plugins beside this binary unless `CNI_PATH` says otherwise.
pub fn cni_client(
    root: &std::path::Path,
    cni_path: &[PathBuf],
    cache: Option<&PathBuf>,
) -> CniConfig {
    let path = if cni_path.is_empty() {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .into_iter()
            .collect()
    } else {
        cni_path.to_vec()
    };
    CniConfig::new(
        path,
        cache.cloned().unwrap_or_else(|| root.join("cni-cache")),
    )
}

impl Network {
    fn load(&self, root: &std::path::Path) -> anyhow::Result<(CniConfig, NetConfList)> {
        let list = if self.conflist.is_file() {
            let bytes = std::fs::read(&self.conflist)
                .with_context(|| format!("read {}", self.conflist.display()))?;
            NetConfList::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.conflist.display()))?
        } else {
            let name = self.conflist.to_string_lossy();
            network::NetworkStore::open(root)?.find(&name)?.list()?
        };
        Ok((
            cni_client(root, &self.cni_path, self.cache_dir.as_ref()),
            list,
        ))
    }
}

/// `8080:80/tcp` as a `portMappings` entry.
fn port_mapping(spec: &str) -> anyhow::Result<Value> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let (host, container) = ports
        .split_once(':')
        .with_context(|| format!("port {spec:?} is not HOST:CONTAINER[/tcp|udp]"))?;
    let parse = |p: &str| {
        p.parse::<u16>()
            .with_context(|| format!("port {p:?} in {spec:?} is not a number from 1 to 65535"))
    };
    anyhow::ensure!(
        matches!(proto, "tcp" | "udp"),
        "protocol {proto:?} in {spec:?}: use tcp or udp"
    );
    Ok(json!({"hostPort": parse(host)?, "containerPort": parse(container)?, "protocol": proto}))
}

impl Attach {
    fn runtime(&self, network: &str) -> anyhow::Result<RuntimeConf> {
        let mut caps = Map::new();
        caps.insert("aliases".into(), json!({ network: self.aliases }));
        let ports = self
            .ports
            .iter()
            .map(|p| port_mapping(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !ports.is_empty() {
            caps.insert("portMappings".into(), Value::Array(ports));
        }
        if !self.ips.is_empty() {
            caps.insert("ips".into(), json!(self.ips));
        }
        let mut args = vec![("IgnoreUnknown".to_string(), "1".to_string())];
        if let Some(n) = &self.name {
            args.push(("K8S_POD_NAME".into(), n.clone()));
        }
        Ok(RuntimeConf {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args,
            capability_args: caps,
        })
    }
}

/// Runs a command: its exit code, or an error with the exit code to use.
fn dispatch(cli: Cli) -> Result<i32, (anyhow::Error, i32)> {
    use container_cmd as cc;
    let one = |r: anyhow::Result<()>| r.map(|()| 0).map_err(|e| (e, 1));
    let code = |r: anyhow::Result<i32>| r.map_err(|e| (e, 1));
    let (root, run_dir) = (cli.root.as_path(), cli.run_dir.as_path());
    let engine = || engine::Engine::open(root, run_dir);
    match cli.command {
        Commands::Cni(cmd) => one(run_cni(root, cmd)),
        Commands::Network(cmd) => one(network_cmd::run(root, run_dir, cmd)),
        Commands::Run(a) => cc::run(&engine().map_err(|e| (e, 125))?, &a),
        Commands::Create(a) => {
            let e = engine().map_err(|e| (e, 125))?;
            let c = cc::create(&e, &a).map_err(|e| (e, 125))?;
            println!("{}", c.config.id);
            Ok(0)
        }
        Commands::Start { attach, containers } => {
            let e = engine().map_err(|e| (e, 1))?;
            cc::start(&e, &containers, attach).map_err(|e| {
                let c = cc::start_error_code(&e);
                (e, c)
            })
        }
        Commands::Stop { time, containers } => one(engine().and_then(|e| {
            cc::each(&e, &containers, |c| {
                lifecycle::stop(c, std::time::Duration::from_secs(time))
            })
        })),
        Commands::Restart { time, containers } => one(engine().and_then(|e| {
            cc::each(&e, &containers, |c| {
                lifecycle::stop(c, std::time::Duration::from_secs(time))?;
                let mut c = c.clone();
                c.reload()?;
                lifecycle::start(&e, &c, false).map(|_| ())
            })
        })),
        Commands::Kill { signal, containers } => one(engine().and_then(|e| {
            let sig = cc::parse_signal(&signal)?;
            cc::each(&e, &containers, |c| {
                lifecycle::signal(c, sig)?;
                // As Docker's: after SIGKILL, return once the container is down.
                if sig == nix::sys::signal::Signal::SIGKILL {
                    lifecycle::wait_gone(c.state.monitor_pid, std::time::Duration::from_secs(10));
                }
                Ok(())
            })
        })),
        Commands::Rm {
            force,
            volumes,
            containers,
        } => one(engine().and_then(|e| {
            cc::each(&e, &containers, |c| {
                lifecycle::remove(&e, c, force, volumes)
            })
        })),
        Commands::Ps(a) => one(engine().and_then(|e| cc::ps(&e, &a))),
        Commands::Inspect { kind, targets } => {
            one(engine().and_then(|e| cc::inspect(&e, &targets, kind.as_deref())))
        }
        Commands::Container(container_cmd::ContainerCommand::Inspect { containers }) => {
            one(engine().and_then(|e| cc::inspect(&e, &containers, Some("container"))))
        }
        Commands::Logs(a) => one(engine().and_then(|e| cc::logs(&e, &a))),
        Commands::Exec(a) => code(engine().and_then(|e| cc::exec(&e, &a))),
        Commands::Container(container_cmd::ContainerCommand::Prune { force }) => {
            one(engine().and_then(|e| cc::prune(&e, force)))
        }
        Commands::Container(container_cmd::ContainerCommand::Ls(a)) => {
            one(engine().and_then(|e| cc::ps(&e, &a)))
        }
        Commands::Image(cmd) => one(engine().and_then(|e| cc::image(&e, cmd))),
        Commands::Images(a) => one(engine().and_then(|e| cc::image(&e, cc::ImageCommand::Ls(a)))),
        Commands::Load(a) => one(engine().and_then(|e| cc::image(&e, cc::ImageCommand::Load(a)))),
        Commands::Rmi { images } => {
            one(engine().and_then(|e| cc::image(&e, cc::ImageCommand::Rm { images })))
        }
        Commands::Tag { source, target } => {
            one(engine().and_then(|e| cc::image(&e, cc::ImageCommand::Tag { source, target })))
        }
        Commands::Volume(cmd) => one(engine().and_then(|e| volume_cmd::run(&e, cmd))),
        Commands::Attach { container } => code(engine().and_then(|e| {
            let c = e.containers.find(&container)?;
            Ok(attach::attach(&e, &c)?.unwrap_or(0))
        })),
        Commands::Pause { containers } => {
            one(engine().and_then(|e| cc::each(&e, &containers, |c| manage::pause(&e, c, true))))
        }
        Commands::Unpause { containers } => {
            one(engine().and_then(|e| cc::each(&e, &containers, |c| manage::pause(&e, c, false))))
        }
        Commands::Top { container } => one(engine().and_then(|e| {
            print!("{}", manage::top(&e.containers.find(&container)?)?);
            Ok(())
        })),
        Commands::Port { container, port } => one(engine().and_then(|e| {
            print!(
                "{}",
                manage::port(&e.containers.find(&container)?, port.as_deref())?
            );
            Ok(())
        })),
        Commands::Rename { container, name } => {
            one(engine().and_then(|e| manage::rename(&e, &e.containers.find(&container)?, &name)))
        }
        Commands::Wait { containers } => one(engine().and_then(|e| {
            for key in &containers {
                println!("{}", manage::wait(&e.containers.find(key)?)?);
            }
            Ok(())
        })),
        Commands::Monitor {
            id,
            attach,
            tty_size,
        } => {
            let e = engine().map_err(|e| (e, 125))?;
            Ok(monitor::run(&e, &id, attach, tty_size))
        }
        Commands::Init { spec } => Ok(init::stage1(&spec)),
        Commands::Init2 { spec } => Ok(init::stage2(&spec)),
    }
}

fn parse_tty_size(s: &str) -> Result<(u16, u16), String> {
    let (r, c) = s.split_once(',').ok_or("expected ROWS,COLS")?;
    Ok((
        r.parse().map_err(|_| "bad ROWS")?,
        c.parse().map_err(|_| "bad COLS")?,
    ))
}

fn run_cni(root: &std::path::Path, cmd: CniCommand) -> anyhow::Result<()> {
    let cni_err = |e: netctl_cni::Error| anyhow::anyhow!("{e} (CNI error {})", e.code.as_u32());
    match cmd {
        CniCommand::Add(a) => {
            let (cni, list) = a.network.load(root)?;
            let result = cni.add(&list, &a.runtime(&list.name)?).map_err(cni_err)?;
            let version = list.spec_version().map_err(cni_err)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&result.to_json(version))?
            );
        }
        CniCommand::Del(a) => {
            let (cni, list) = a.network.load(root)?;
            cni.del(&list, &a.runtime(&list.name)?).map_err(cni_err)?;
        }
        CniCommand::Check(a) => {
            let (cni, list) = a.network.load(root)?;
            cni.check(&list, &a.runtime(&list.name)?).map_err(cni_err)?;
        }
        CniCommand::Gc(g) => {
            let (cni, list) = g.network.load(root)?;
            let keep = g
                .keep
                .iter()
                .map(|k| {
                    let (c, i) = k
                        .split_once(':')
                        .with_context(|| format!("--keep {k:?} is not CONTAINER_ID:IFNAME"))?;
                    Ok(Attachment {
                        container_id: c.into(),
                        ifname: i.into(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            cni.gc(&list, &keep).map_err(cni_err)?;
        }
        CniCommand::Status(n) => {
            let (cni, list) = n.load(root)?;
            cni.status(&list).map_err(cni_err)?;
            println!("network {} can attach containers", list.name);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    hygiene::cloexec_inherited();
    let cli = Cli::parse();
    // The monitor writes to attach clients that may go away: it handles EPIPE itself.
    if !matches!(cli.command, Commands::Monitor { .. }) {
        hygiene::default_sigpipe();
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err((e, code)) => {
            eprintln!("netctl: {e:#}");
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_parse_like_docker_and_bad_ones_say_why() {
        assert_eq!(port_mapping("8080:80").unwrap()["protocol"], "tcp");
        assert_eq!(port_mapping("53:53/udp").unwrap()["hostPort"], 53);
        for bad in ["8080", "x:80", "8080:80/sctp", "70000:80"] {
            assert!(port_mapping(bad).is_err(), "{bad}");
        }
    }
}
