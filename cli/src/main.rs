//! `netctl`: Docker's commands over the netctl engine (containers, images, volumes,
//! networks), and `netctl cni`, which runs a network's configuration list against any
//! namespace through the same CNI client (like CNI's `cnitool`). This crate is only the
//! command line: arguments, output, the terminal; everything else is `netctl_engine`.

mod attach;
mod cluster;
mod cni;
mod container;
mod copy;
mod events;
mod image;
mod input;
mod network;
mod outcome;
mod output;
mod registry;
mod stats;
mod system;
mod template;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netctl_engine::{Engine, EngineConfig};

use crate::outcome::{Failed, Outcome};

#[derive(Parser)]
#[command(
    name = "netctl",
    version,
    disable_version_flag = true,
    about = "Container networking for Linux"
)]
struct Cli {
    /// Print version information and quit.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),
    /// Persistent state: networks, images, containers, volumes, addresses.
    #[arg(long, global = true, env = "NETCTL_ROOT", default_value = netctl_engine::DEFAULT_ROOT)]
    root: PathBuf,
    /// Runtime state: namespaces, DNS records and server, firewall records.
    #[arg(long = "run-dir", global = true, env = "NETCTL_RUN", default_value = netctl_engine::DEFAULT_RUN_DIR)]
    run_dir: PathBuf,
    /// Folders holding the CNI plugins and netctl-overlayd (default: this binary's folder).
    #[arg(
        long = "cni-path",
        global = true,
        env = "NETCTL_CNI_PATH",
        value_delimiter = ':'
    )]
    cni_path: Vec<PathBuf>,
    /// Seconds one plugin call may take before it is killed and its attachment undone.
    #[arg(long = "plugin-deadline", global = true, env = "NETCTL_PLUGIN_DEADLINE", default_value_t = netctl_engine::DEFAULT_PLUGIN_DEADLINE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    plugin_deadline: u64,
    /// More pools for networks made without --subnet, BASE/SIZE (10.10.0.0/16/24), after
    /// Docker's.
    #[arg(
        long = "address-pool",
        global = true,
        env = "NETCTL_ADDRESS_POOLS",
        value_delimiter = ','
    )]
    address_pools: Vec<netctl_engine::AddressPool>,
    /// Registries (`host[:port]`) that may answer plain HTTP or unverified HTTPS, besides
    /// loopback ones and the `insecure-registries` of /etc/netctl/daemon.json.
    #[arg(
        long = "insecure-registry",
        global = true,
        env = "NETCTL_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Seconds a registry may take to answer, to send a manifest or token whole, or without
    /// sending; a download under 1 KiB/s over that long is given up too.
    #[arg(long = "registry-deadline", global = true, env = "NETCTL_REGISTRY_DEADLINE", default_value_t = netctl_engine::DEFAULT_REGISTRY_DEADLINE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    registry_deadline: u64,
    /// A mirror of Docker Hub (`http(s)://host[:port]`), asked before Docker Hub for its
    /// images; besides the `registry-mirrors` of /etc/netctl/daemon.json.
    #[arg(
        long = "registry-mirror",
        global = true,
        env = "NETCTL_REGISTRY_MIRRORS",
        value_delimiter = ','
    )]
    registry_mirrors: Vec<String>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a network's CNI chain against a container namespace.
    #[command(subcommand)]
    Cni(cni::CniCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// This host in a cluster sharing overlay networks.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// List images.
    Images(image::ImagesArgs),
    /// Load images from a `docker save` or OCI archive.
    Load(image::LoadArgs),
    /// Remove images.
    Rmi {
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show the history of an image.
    History(image::HistoryArgs),
    /// Save images to a tar archive (Docker's format).
    Save(image::SaveArgs),
    /// Log in to a registry.
    Login(registry::LoginArgs),
    /// Log out from a registry.
    Logout {
        /// The registry (Docker Hub when left out).
        server: Option<String>,
    },
    /// Download an image from a registry.
    Pull(registry::PullArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),
    /// Give an image another name.
    Tag {
        /// The image.
        source: String,
        /// The new NAME[:TAG].
        target: String,
    },
    /// Show the version of netctl and what it speaks.
    Version,
    /// Display system-wide information.
    Info(system::InfoArgs),
    /// Manage netctl: info, disk usage, prune, events.
    #[command(subcommand)]
    System(system::SystemCommand),
    #[command(flatten)]
    Container(Box<container::ContainerCommands>),
}

impl Cli {
    /// The engine's configuration from the global options; this binary is its helper.
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

fn dispatch(cli: Cli) -> Outcome {
    let config = cli.engine_config()?;
    let engine = || Engine::open(&config);
    if !matches!(cli.command, Commands::Cni(_) | Commands::Version) {
        output::restart_after_boot(&engine()?);
    }
    match cli.command {
        Commands::Cni(cmd) => cni::run(&config, cmd),
        Commands::Network(cmd) => network::run(&engine()?, cmd),
        Commands::Cluster(cmd) => cluster::run(&engine()?, cmd),
        Commands::Volume(cmd) => volume::run(&engine()?, cmd),
        Commands::Image(cmd) => image::run(&engine()?, cmd),
        Commands::Images(a) => image::run(&engine()?, image::ImageCommand::Ls(a)),
        Commands::Load(a) => image::run(&engine()?, image::ImageCommand::Load(a)),
        Commands::Rmi { images } => image::run(&engine()?, image::ImageCommand::Rm { images }),
        Commands::History(a) => image::run(&engine()?, image::ImageCommand::History(a)),
        Commands::Save(a) => image::run(&engine()?, image::ImageCommand::Save(a)),
        Commands::Login(a) => registry::login(&engine()?, &a),
        Commands::Logout { server } => registry::logout(server.as_deref()),
        Commands::Pull(a) => registry::pull(&engine()?, &a),
        Commands::Push(a) => registry::push(&engine()?, &a),
        Commands::Tag { source, target } => {
            image::run(&engine()?, image::ImageCommand::Tag { source, target })
        }
        Commands::Info(a) => system::info(&engine()?, &a),
        Commands::System(cmd) => system::run(&engine()?, cmd),
        Commands::Version => {
            print!("{}", version_text());
            Ok(0)
        }
        Commands::Container(cmd) => container::run(&config, *cmd),
    }
}

/// `netctl version`, in the shape of Docker's.
fn version_text() -> String {
    format!(
        "Client: netctl\n Version:           {}\n CNI spec versions: {}\n OS/Arch:           {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        netctl_cni::SpecVersion::ALL
            .map(netctl_cni::SpecVersion::as_str)
            .join(", "),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Restores the default action of SIGPIPE, so that a command whose reader went away
/// (`netctl ps | head -1`) ends quietly, as other command-line tools do, instead of failing
/// on its next write.
#[allow(unsafe_code)]
fn default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler code, so there is no handler that could run
    // unsafe-to-call functions; this runs in main before any thread is started.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Help and version are printed as asked (exit 0); a flag error exits 125, as Docker's
/// command line does.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
        _ => ExitCode::from(125),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The engine's own processes (monitor, container init) run from this binary.
    if let Some(code) = netctl_engine::internal::run_internal(&args) {
        return ExitCode::from(u8::try_from(code).unwrap_or(255));
    }
    netctl_cni::fsutil::cloexec_inherited();
    default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Failed { error, code }) => {
            eprintln!("netctl: {error:#}");
            ExitCode::from(code)
        }
    }
}
