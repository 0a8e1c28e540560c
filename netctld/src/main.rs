//! `netctld`: the Docker Engine API over a unix socket, served from the same engine the
//! `netctl` command line uses, so that the docker CLI, docker-compose and docker-py drive
//! netctl. This crate is only the daemon: where it listens, HTTP, and the API's shapes;
//! everything else is `netctl_engine`.

mod api;
mod listen;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use netctl_engine::{Engine, EngineConfig};

/// The daemon's command line, as dockerd's where they overlap.
#[derive(Parser)]
#[command(
    name = "netctld",
    version,
    about = "The Docker Engine API, served by netctl"
)]
struct Args {
    /// Where to listen, repeatable: unix:///PATH, or tcp://HOST:PORT (TLS with client
    /// certificates only).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/netctl/docker.sock"
    )]
    hosts: Vec<String>,
    /// The group that may use the unix sockets (mode 0660); root's otherwise.
    #[arg(short = 'G', long)]
    group: Option<String>,
    /// Persistent state, shared with the netctl command line.
    #[arg(long, env = "NETCTL_ROOT", default_value = netctl_engine::DEFAULT_ROOT)]
    root: PathBuf,
    /// Runtime state, shared with the netctl command line.
    #[arg(long = "run-dir", env = "NETCTL_RUN", default_value = netctl_engine::DEFAULT_RUN_DIR)]
    run_dir: PathBuf,
    /// Folders holding the CNI plugins and netctl-overlayd (default: this binary's folder).
    #[arg(long = "cni-path", env = "NETCTL_CNI_PATH", value_delimiter = ':')]
    cni_path: Vec<PathBuf>,
    /// Seconds one plugin call may take before it is killed and its attachment undone.
    #[arg(long = "plugin-deadline", env = "NETCTL_PLUGIN_DEADLINE", default_value_t = netctl_engine::DEFAULT_PLUGIN_DEADLINE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    plugin_deadline: u64,
    /// More pools for networks made without a subnet, BASE/SIZE (10.10.0.0/16/24).
    #[arg(
        long = "default-address-pool",
        env = "NETCTL_ADDRESS_POOLS",
        value_delimiter = ','
    )]
    address_pools: Vec<netctl_engine::AddressPool>,
    /// A registry (`host[:port]`) that may answer plain HTTP or unverified HTTPS,
    /// repeatable (besides loopback ones and /etc/netctl/daemon.json's).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Seconds a registry may take to answer, to send a manifest or token whole, or without
    /// sending; a download under 1 KiB/s over that long is given up too.
    #[arg(long = "registry-deadline", env = "NETCTL_REGISTRY_DEADLINE", default_value_t = netctl_engine::DEFAULT_REGISTRY_DEADLINE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    registry_deadline: u64,
    /// A mirror of Docker Hub (`http(s)://host[:port]`), asked before Docker Hub for its
    /// images, repeatable (besides /etc/netctl/daemon.json's `registry-mirrors`).
    #[arg(long = "registry-mirror")]
    registry_mirrors: Vec<String>,
    /// Use TLS and verify the remote (for tcp:// hosts).
    #[arg(long)]
    tlsverify: bool,
    /// Trust certificates signed by this CA only.
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// The server's TLS certificate.
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// The server's TLS key.
    #[arg(long)]
    tlskey: Option<PathBuf>,
}

impl Args {
    /// The engine's configuration; this binary is its helper (monitor, init, exec).
    fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        let helper = std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("find the running executable: {e}"))?;
        let config = EngineConfig::new(&self.root, &self.run_dir, &helper).with_options(
            &self.cni_path,
            std::time::Duration::from_secs(self.plugin_deadline),
            &self.address_pools,
        );
        Ok(config.with_registries(
            &self.insecure_registries,
            &self.registry_mirrors,
            std::time::Duration::from_secs(self.registry_deadline),
        )?)
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // The engine's own processes (monitor, container init) run from this binary.
    if let Some(code) = netctl_engine::internal::run_internal(&argv) {
        return ExitCode::from(u8::try_from(code).unwrap_or(255));
    }
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netctld: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let config = args.engine_config()?;
    let engine = Arc::new(Engine::open(&config)?);
    // What a reboot or a killed command left is put right before the first request.
    let failed = netctl_engine::lifecycle::restart_after_boot(&engine)?;
    for e in failed {
        eprintln!("netctld: {}", e.report());
    }
    let listeners = args
        .hosts
        .iter()
        .map(|h| listen::Endpoint::parse(h, args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(listen::serve(listeners, args.group.as_deref(), engine))
}
