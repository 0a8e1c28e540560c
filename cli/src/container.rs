//! The container commands, with Docker's flags, output and exit codes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use netctl_engine::container::Sharing;
use netctl_engine::container::{Container, LogDriver};
use netctl_engine::lifecycle;
use netctl_engine::logs::LogOptions;
use netctl_engine::process::exec::ExecRequest;
use netctl_engine::process::kernel;
use netctl_engine::process::privileges::Privileges;
use netctl_engine::process::resources::{parse_bytes, parse_cpus, parse_swap, Resources};
use netctl_engine::process::seccomp::Seccomp;
use netctl_engine::spec::{self, ContainerSpec};
use netctl_engine::{Engine, EngineConfig, Error};

use crate::outcome::{start_failure, Outcome};
use crate::output::{self, table};
use crate::template::Format;

/// The container commands (top level, as Docker has them).
#[derive(Subcommand)]
pub enum ContainerCommands {
    #[command(flatten)]
    Verb(Box<Verb>),
    /// List containers.
    Ps(PsArgs),
    /// Show containers, images, volumes or networks as JSON.
    Inspect {
        /// Only this kind.
        #[arg(long = "type", value_enum)]
        kind: Option<ObjectKind>,
        /// Go template over each object: `{{.State.Pid}}`, `{{json .Config}}`.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Containers, images, volumes or networks.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Get real time events from the engine.
    Events(crate::events::EventsArgs),
}

/// The verbs on containers, at the top level and under `container` (as Docker has them).
#[derive(Subcommand)]
pub enum Verb {
    /// Create and start a container.
    Run(RunArgs),
    /// Create a container without starting it; prints its ID.
    Create(CreateArgs),
    /// Start stopped containers.
    Start {
        /// Attach to the container's output and wait for it.
        #[arg(short = 'a', long)]
        attach: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers: their stop signal (SIGTERM), then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before killing (default: the container's --stop-timeout, or 10).
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers.
    Restart {
        /// Seconds to wait before killing (default: the container's --stop-timeout, or 10).
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
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
    /// Show a container's output.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
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
    /// Copy files between a container and the host.
    Cp(crate::copy::CpArgs),
    /// Create a new image from a container's changes.
    Commit {
        /// Author (e.g. "Jane <jane@example.com>").
        #[arg(short = 'a', long)]
        author: Option<String>,
        /// Commit message.
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// Pause the container during the commit.
        #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        pause: bool,
        /// The container.
        container: String,
        /// REPOSITORY[:TAG] for the new image.
        reference: Option<String>,
    },
    /// Inspect changes to files or folders on a container's file system.
    Diff {
        /// The container.
        container: String,
    },
    /// Export a container's file system as a tar archive.
    Export {
        /// Write to a file instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// The container.
        container: String,
    },
    /// Display containers' resource usage (CPU, memory, network and block I/O, PIDs).
    Stats(crate::stats::StatsArgs),
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
}

/// `container ...`.
#[derive(Subcommand)]
pub enum ContainerCommand {
    #[command(flatten)]
    Verb(Box<Verb>),
    /// Remove all stopped containers.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers.
    #[command(visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
    /// Show containers as JSON.
    Inspect {
        /// Go template over each container: `{{.State.Pid}}`.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// `--log-driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogDriverArg {
    /// One JSON record per line, read by `logs`.
    JsonFile,
    /// Nowhere.
    None,
}

impl From<LogDriverArg> for LogDriver {
    fn from(a: LogDriverArg) -> Self {
        match a {
            LogDriverArg::JsonFile => LogDriver::JsonFile,
            LogDriverArg::None => LogDriver::None,
        }
    }
}

/// What `inspect --type` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectKind {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A volume.
    Volume,
    /// A network.
    Network,
}

/// Flags shared by `create` and `run`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from here).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Connect to a network: NAME, bridge, host, none or container:NAME.
    #[arg(long = "network", visible_alias = "net")]
    pub network: Vec<String>,
    /// A network-scoped alias.
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub aliases: Vec<String>,
    /// IPv4 address on the (first) network.
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address on the (first) network.
    #[arg(long)]
    pub ip6: Option<String>,
    /// MAC address on the (first) network.
    #[arg(long = "mac-address")]
    pub mac: Option<String>,
    /// Publish a port: [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports (published by -P).
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Add a link to another container: NAME[:ALIAS].
    #[arg(long)]
    pub link: Vec<String>,
    /// Add a custom host-to-IP mapping (NAME:IP).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Where the output goes: json-file (read by `logs`) or none.
    #[arg(long = "log-driver", value_enum, default_value = "json-file")]
    pub log_driver: LogDriverArg,
    /// Log driver options: max-size=10m, max-file=3.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Security options: seccomp=unconfined, seccomp=PROFILE.json (Docker's format),
    /// no-new-privileges (always on unless --privileged).
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub security_opt: Vec<String>,
    /// Username or UID, optionally with a group: NAME|UID[:GROUP|GID].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional groups to join (names from the image's /etc/group, or GIDs).
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Add Linux capabilities (NET_ADMIN, CAP_SYS_TIME, ALL ...).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (CHOWN, ALL ...).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges: every capability, no seccomp filter, no masked paths,
    /// writable /sys, the host's devices.
    #[arg(long)]
    pub privileged: bool,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", visible_alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Bind mount or volume: /HOST:/CTR[:ro], NAME:/CTR[:ro], /CTR (anonymous).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=...,target=...[,readonly].
    #[arg(long)]
    pub mount: Vec<String>,
    /// A tmpfs at this path.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Every mount of another container: NAME[:ro|rw].
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Restart policy: no, always, on-failure[:N], unless-stopped.
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: String,
    /// Set metadata: KEY=VALUE (or KEY for an empty value).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read labels from a file of KEY=VALUE lines.
    #[arg(long = "label-file")]
    pub label_file: Vec<PathBuf>,
    /// Mount the container's root file system read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Signal that stops the container (default SIGTERM, or the image's STOPSIGNAL).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds a stop waits before SIGKILL (default 10; -1 waits for ever).
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub stop_timeout: Option<i64>,
    /// Container NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// Run an init inside the container that reaps orphans and passes signals on.
    #[arg(long)]
    pub init: bool,
    /// Write the container ID to the file.
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Memory limit (512m, 1g ...).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit: a size, or -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (1.5 ...).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Tune the container's pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// PID namespace: host or container:NAME (default: its own).
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: private, shareable, host or container:NAME.
    #[arg(long)]
    pub ipc: Option<String>,
    /// Size of /dev/shm (64m by default).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Ulimit options: NAME=SOFT[:HARD] (nofile=1024:2048).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Namespaced kernel parameters: net.*, fs.mqueue.*, kernel.shm*/msg*/sem.
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Add a host device: HOST[:CONTAINER][:rwm].
    #[arg(long)]
    pub device: Vec<String>,
    /// Command to run to check health (through /bin/sh -c).
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (30s, 1m ...).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run.
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries", allow_negative_numbers = true)]
    pub health_retries: Option<i64>,
    /// Start period during which failures do not count.
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// The image, then the command and its arguments: flags end at the image, as in
    /// Docker (`run busybox sh -c ...` gives `-c` to sh).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

impl CreateArgs {
    /// The image.
    pub fn image(&self) -> &str {
        self.image_and_command.first().map_or("", String::as_str)
    }

    /// The command and its arguments.
    pub fn command(&self) -> &[String] {
        self.image_and_command.get(1..).unwrap_or_default()
    }
}

/// `run` = `create` + `start` (+ attach unless `-d`).
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run in the background and print the container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `ps` / `container ls`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter: id=, name= (a regular expression), status=, network=, label=, ancestor=,
    /// exited=, health=, publish=, expose=.
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Go template: `{{.ID}}\t{{.Names}}`, `table ...`.
    #[arg(long)]
    pub format: Option<String>,
    /// Show the N last created containers (all states).
    #[arg(short = 'n', long = "last")]
    pub last: Option<usize>,
    /// Show the latest created container (all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Do not truncate output (full IDs and commands).
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    pub size: bool,
}

/// `logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs since a time (2026-12-06T10:00:00Z, a Unix time) or for a duration (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a time or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// The container.
    pub container: String,
}

/// `exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Use this terminal (the command gets ours).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID, optionally with a group: NAME|UID[:GROUP|GID].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// The container.
    pub container: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Runs a container command.
pub fn run(config: &EngineConfig, cmd: ContainerCommands) -> Outcome {
    let engine = Engine::open(config).map_err(start_failure)?;
    match cmd {
        ContainerCommands::Verb(v) => verb(&engine, *v),
        ContainerCommands::Container(ContainerCommand::Verb(v)) => verb(&engine, *v),
        ContainerCommands::Ps(a) | ContainerCommands::Container(ContainerCommand::Ls(a)) => {
            ps(&engine, &a)
        }
        ContainerCommands::Inspect {
            kind,
            format,
            targets,
        } => inspect(&engine, &targets, kind, format.as_deref()),
        ContainerCommands::Container(ContainerCommand::Inspect { format, containers }) => inspect(
            &engine,
            &containers,
            Some(ObjectKind::Container),
            format.as_deref(),
        ),
        ContainerCommands::Container(ContainerCommand::Prune { force }) => prune(&engine, force),
        ContainerCommands::Events(a) => crate::events::run(&engine, &a),
    }
}

/// Runs a verb on containers.
fn verb(engine: &Engine, cmd: Verb) -> Outcome {
    use Verb as C;
    match cmd {
        C::Run(a) => run_container(engine, &a),
        C::Create(a) => {
            // As Docker's: 125 for a bad flag, 1 for what the engine refuses.
            spec_of(&a).map_err(start_failure)?;
            check_cidfile(&a)?;
            let c = create(engine, &a)?;
            println!("{}", c.config.id);
            Ok(0)
        }
        C::Start { attach, containers } => start(engine, &containers, attach),
        C::Stop { time, containers } => each(engine, &containers, |e, c| {
            lifecycle::stop(e, c, time.map(Duration::from_secs))
        }),
        C::Restart { time, containers } => each(engine, &containers, |e, c| {
            lifecycle::restart(e, c, time.map(Duration::from_secs))
        }),
        C::Kill { signal, containers } => {
            let sig = spec::parse_signal(&signal)?;
            each(engine, &containers, |e, c| lifecycle::kill(e, c, sig))
        }
        C::Rm {
            force,
            volumes,
            containers,
        } => each_of(engine, &containers, force, |e, c| {
            lifecycle::remove(e, c, force, volumes)
        }),
        C::Logs(a) => logs(engine, &a),
        C::Exec(a) => exec(engine, &a),
        C::Attach { container } => {
            let c = engine.containers.find(&container)?;
            if !c.is_running() {
                return Err(anyhow::anyhow!(
                    "You cannot attach to a stopped container, start it first"
                )
                .into());
            }
            Ok(exit_code(crate::attach::attach(engine, &c)?.unwrap_or(0)))
        }
        C::Pause { containers } => each(engine, &containers, |e, c| {
            netctl_engine::manage::pause(e, c, true)
        }),
        C::Unpause { containers } => each(engine, &containers, |e, c| {
            netctl_engine::manage::pause(e, c, false)
        }),
        C::Top { container } => {
            print!(
                "{}",
                netctl_engine::manage::top(&engine.containers.find(&container)?)?
            );
            Ok(0)
        }
        C::Port { container, port } => {
            let c = engine.containers.find(&container)?;
            for p in netctl_engine::manage::port(&c, port.as_deref())? {
                let ip = p
                    .host_ip
                    .map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string());
                let host = format!("{ip}:{}", p.host_port);
                // Docker's: `HOST:PORT` alone when a port was asked for.
                match port {
                    Some(_) => println!("{host}"),
                    None => println!("{}/{} -> {host}", p.container_port, p.protocol),
                }
            }
            Ok(0)
        }
        C::Cp(a) => crate::copy::run(engine, &a),
        C::Commit {
            author,
            message,
            pause,
            container,
            reference,
        } => {
            let c = engine.containers.find(&container)?;
            let req = netctl_engine::commit::CommitRequest {
                reference,
                comment: message.unwrap_or_default(),
                author: author.unwrap_or_default(),
                pause,
            };
            let image = netctl_engine::commit::commit(engine, &c, &req)?;
            println!("sha256:{}", image.id);
            Ok(0)
        }
        C::Diff { container } => {
            let c = engine.containers.find(&container)?;
            for ch in netctl_engine::changes::changes(engine, &c)? {
                println!("{} {}", ch.kind.letter(), ch.path);
            }
            Ok(0)
        }
        C::Export { output, container } => {
            let c = engine.containers.find(&container)?;
            export(engine, &c, output.as_deref())
        }
        C::Stats(a) => crate::stats::run(engine, &a),
        C::Rename { container, name } => {
            netctl_engine::manage::rename(engine, &engine.containers.find(&container)?, &name)?;
            Ok(0)
        }
        C::Wait { containers } => {
            for key in &containers {
                println!(
                    "{}",
                    netctl_engine::manage::wait(&engine.containers.find(key)?)?
                );
            }
            Ok(0)
        }
    }
}

/// `export`: to the file, or to stdout unless it is a terminal.
fn export(engine: &Engine, c: &Container, output: Option<&std::path::Path>) -> Outcome {
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
            netctl_engine::copy::export(engine, c, &mut f)?;
        }
        None => {
            if rustix::termios::isatty(std::io::stdout()) {
                return Err(anyhow::anyhow!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                )
                .into());
            }
            let mut out = std::io::stdout().lock();
            netctl_engine::copy::export(engine, c, &mut out)?;
        }
    }
    Ok(0)
}

/// An exit status as a process exit code (Docker's 0-255).
fn exit_code(code: i32) -> u8 {
    u8::try_from(code.rem_euclid(256)).unwrap_or(255)
}

/// `KEY` alone takes the value from this process's environment, as Docker does.
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

fn env_of(a: &CreateArgs) -> Result<Vec<String>, Error> {
    let mut env = Vec::new();
    for file in &a.env_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("open env file {}", file.display()), e))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(expand_env),
        );
    }
    env.extend(a.env.iter().map(|e| expand_env(e)));
    Ok(env)
}

fn ip(s: &str) -> Result<std::net::IpAddr, Error> {
    s.parse()
        .map_err(|_| Error::Invalid(format!("invalid IP address: {s:?}")))
}

/// The engine's spec of the container the flags ask for (each value through the engine's
/// own parser).
fn spec_of(a: &CreateArgs) -> Result<ContainerSpec, Error> {
    // What comes before the image is a flag: one clap did not know is not an image.
    if let Some(flag) = a.image().strip_prefix('-') {
        return Err(Error::Invalid(format!(
            "unknown flag: -{flag}\nSee 'netctl run --help'."
        )));
    }
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(netctl_engine::volume::parse_volume(v)?);
    }
    for m in &a.mount {
        mounts.push(netctl_engine::volume::parse_mount(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(netctl_engine::volume::parse_mount(&format!(
            "type=tmpfs,target={t}"
        ))?);
    }
    Ok(ContainerSpec {
        image: a.image().to_string(),
        name: a.name.clone(),
        command: a.command().to_vec(),
        entrypoint: a.entrypoint.clone(),
        env: env_of(a)?,
        workdir: a.workdir.clone(),
        hostname: a.hostname.clone(),
        networks: a.network.clone(),
        aliases: a.aliases.clone(),
        ips: a
            .ip
            .iter()
            .chain(&a.ip6)
            .map(|s| ip(s))
            .collect::<Result<_, _>>()?,
        mac: a.mac.clone(),
        publish: a
            .publish
            .iter()
            .map(|p| spec::parse_publish(p))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect(),
        expose: a
            .expose
            .iter()
            .map(|p| spec::parse_expose(p))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect(),
        publish_all: a.publish_all,
        links: a.link.iter().map(|l| spec::parse_link(l)).collect(),
        add_hosts: a
            .add_host
            .iter()
            .map(|h| spec::parse_add_host(h))
            .collect::<Result<_, _>>()?,
        dns: a.dns.iter().map(|d| ip(d)).collect::<Result<_, _>>()?,
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        log_driver: a.log_driver.into(),
        mounts,
        volumes_from: a
            .volumes_from
            .iter()
            .map(|v| spec::parse_volumes_from(v))
            .collect::<Result<_, _>>()?,
        interactive: a.interactive,
        tty: a.tty,
        auto_remove: a.rm,
        seccomp: seccomp_of(&a.security_opt)?,
        privileges: Privileges {
            user: a.user.clone().unwrap_or_default(),
            group_add: a.group_add.clone(),
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            privileged: a.privileged,
        },
        restart: netctl_engine::restart::RestartRequest::parse(&a.restart)?,
        labels: labels_of(a)?,
        read_only: a.read_only,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        domainname: a.domainname.clone(),
        init: a.init,
        resources: resources_of(a)?,
        pid_mode: Sharing::parse(a.pid.as_deref().unwrap_or(""), false)?,
        ipc_mode: Sharing::parse(a.ipc.as_deref().unwrap_or(""), true)?,
        shm_size: flag(&a.shm_size, "--shm-size", parse_bytes)?,
        ulimits: each_flag(&a.ulimit, "--ulimit", kernel::parse_ulimit)?,
        sysctls: each_flag(&a.sysctl, "--sysctl", kernel::parse_sysctl)?,
        devices: each_flag(&a.device, "--device", kernel::parse_device)?,
        log_opts: a
            .log_opt
            .iter()
            .map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "invalid argument {o:?} for \"--log-opt\" flag: use KEY=VALUE"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
        health: netctl_engine::health::HealthFlags {
            cmd: a.health_cmd.clone(),
            interval: a.health_interval.clone(),
            timeout: a.health_timeout.clone(),
            start_period: a.health_start_period.clone(),
            retries: a.health_retries,
            disabled: a.no_healthcheck,
        },
    })
}

/// Each value of a repeated flag through an engine parser, errors as [`flag`]'s.
fn each_flag<T>(
    values: &[String],
    name: &str,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    values
        .iter()
        .map(|v| {
            parse(v).map_err(|e| {
                Error::Invalid(format!("invalid argument {v:?} for {name:?} flag: {e}"))
            })
        })
        .collect()
}

/// A flag's value through an engine parser; its error in Docker's words for a bad flag.
fn flag<T>(
    value: &Option<String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    value
        .as_deref()
        .map(|v| {
            parse(v).map_err(|e| {
                Error::Invalid(format!("invalid argument {v:?} for {name:?} flag: {e}"))
            })
        })
        .transpose()
}

/// `-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--pids-limit`, through the engine's
/// parsers.
fn resources_of(a: &CreateArgs) -> Result<Resources, Error> {
    Ok(Resources {
        memory: flag(&a.memory, "-m, --memory", parse_bytes)?,
        memory_swap: flag(&a.memory_swap, "--memory-swap", parse_swap)?,
        nano_cpus: flag(&a.cpus, "--cpus", parse_cpus)?,
        cpu_shares: a.cpu_shares,
        pids_limit: a.pids_limit,
    })
}

/// `--label-file` lines (blank ones and `#` comments skipped), then `--label`s.
fn labels_of(a: &CreateArgs) -> Result<Vec<String>, Error> {
    let mut labels = Vec::new();
    for file in &a.label_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("open label file {}", file.display()), e))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    labels.extend(a.label.iter().cloned());
    Ok(labels)
}

/// `--security-opt` as Docker reads it (`seccomp=...`, also `seccomp:...`).
fn seccomp_of(opts: &[String]) -> Result<Seccomp, Error> {
    let mut seccomp = Seccomp::Default;
    for o in opts {
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined") => seccomp = Seccomp::Unconfined,
            ("seccomp", "") => {
                return Err(Error::Invalid(
                    "--security-opt seccomp needs a value: unconfined or a profile file".into(),
                ))
            }
            ("seccomp", file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Error::Invalid(format!("opening seccomp profile ({file}) failed: {e}"))
                })?;
                seccomp = Seccomp::Profile(text);
            }
            ("no-new-privileges", "" | "true") => {} // netctl sets it for every container
            _ => {
                return Err(Error::Invalid(format!(
                    "invalid --security-opt: {o:?} (netctl supports seccomp=unconfined, seccomp=FILE and no-new-privileges)"
                )))
            }
        }
    }
    Ok(seccomp)
}

/// `create`: the container's record, not started.
/// `--cidfile` names a file that must not exist yet (Docker's check, before anything is made).
fn check_cidfile(a: &CreateArgs) -> Result<(), Error> {
    match a.cidfile.as_deref().filter(|f| f.exists()) {
        Some(f) => Err(Error::Invalid(format!(
            "container ID file found, make sure the other container isn't running or delete {}",
            f.display()
        ))),
        None => Ok(()),
    }
}

fn create(engine: &Engine, a: &CreateArgs) -> Result<Container, Error> {
    let (c, warnings) = lifecycle::create(engine, &spec_of(a)?)?;
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(f) = &a.cidfile {
        if let Err(e) = std::fs::write(f, &c.config.id) {
            let _ = lifecycle::remove(engine, &c, true, true);
            return Err(Error::io(
                format!("write the container ID file {}", f.display()),
                e,
            ));
        }
    }
    Ok(c)
}

/// `run`: an error leaves no container behind.
fn run_container(engine: &Engine, a: &RunArgs) -> Outcome {
    if a.create.interactive
        && a.create.tty
        && !a.detach
        && !rustix::termios::isatty(std::io::stdin())
    {
        return Err(anyhow::anyhow!("the input device is not a TTY").into());
    }
    check_cidfile(&a.create).map_err(start_failure)?;
    let c = create(engine, &a.create).map_err(start_failure)?;
    let tty = crate::attach::terminal_size();
    if let Err(e) = lifecycle::start(engine, &c, !a.detach, tty) {
        if let Ok(lock) = engine.containers.lock_one(&c) {
            let mut c = c;
            let _ = lifecycle::remove_stopped(engine, &mut c, &lock, true);
        }
        return Err(start_failure(e));
    }
    if a.detach {
        println!("{}", c.config.id);
        return Ok(0);
    }
    Ok(exit_code(attach_started(engine, c)?))
}

/// Attaches to a container `start` just started: its exit code (0 when detached). An
/// `--rm` container may already have ended and been removed; its monitor still holds the
/// output and the exit code for this first client.
fn attach_started(engine: &Engine, mut c: Container) -> anyhow::Result<i32> {
    match c.reload() {
        Ok(()) => {}
        Err(e) if matches!(e, Error::NotFound { .. }) && c.config.auto_remove => {}
        Err(e) => return Err(e.into()),
    }
    Ok(crate::attach::attach(engine, &c)?.unwrap_or(0))
}

/// `start [-a] CONTAINER...`.
fn start(engine: &Engine, keys: &[String], attach: bool) -> Outcome {
    let mut code = 0;
    for key in keys {
        let c = engine.containers.find(key)?;
        let tty = attach.then(crate::attach::terminal_size).flatten();
        lifecycle::start(engine, &c, attach, tty).map_err(start_failure)?;
        if attach {
            code = exit_code(attach_started(engine, c)?);
        } else {
            println!("{key}");
        }
    }
    Ok(code)
}

/// Runs `f` for each container named, up to 50 at once (as Docker does: `stop` of many
/// containers takes one timeout, not one per container), then prints each name in the
/// order given, or its error; a failure does not stop the others.
fn each(
    engine: &Engine,
    keys: &[String],
    f: impl Fn(&Engine, &Container) -> Result<(), Error> + Sync,
) -> Outcome {
    each_of(engine, keys, false, f)
}

/// [`each`]; with `missing_ok`, a container that does not exist is told but is no failure
/// (`rm -f`, as Docker 20.10).
fn each_of(
    engine: &Engine,
    keys: &[String],
    missing_ok: bool,
    f: impl Fn(&Engine, &Container) -> Result<(), Error> + Sync,
) -> Outcome {
    let mut failed = false;
    for batch in keys.chunks(50) {
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let running: Vec<_> = batch
                .iter()
                .map(|key| s.spawn(|| engine.containers.find(key).and_then(|c| f(engine, &c))))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::State("the operation panicked".into())))
                })
                .collect()
        });
        for (key, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => println!("{key}"),
                Err(e @ Error::NotFound { .. }) if missing_ok => eprintln!("Error: {e}"),
                Err(e) => {
                    eprintln!("Error response from daemon: {}", e.report());
                    failed = true;
                }
            }
        }
    }
    Ok(u8::from(failed))
}

/// `ps`.
fn ps(engine: &Engine, a: &PsArgs) -> Outcome {
    output::repair(engine);
    let filter = netctl_engine::filter::ContainerFilter::parse(&a.filter)?;
    let images = netctl_engine::image::ImageStore::open(engine.root())?;
    let last = if a.latest { Some(1) } else { a.last };
    let all = a.all || last.is_some();
    let shown: Vec<Container> = engine
        .containers
        .all()?
        .into_iter()
        .take(last.unwrap_or(usize::MAX))
        .filter(|c| all || filter.names_a_status() || c.is_running())
        .filter(|c| {
            let names = images
                .find(&c.config.image)
                .map(|i| i.tags)
                .unwrap_or_default();
            filter.matches(c, &names)
        })
        .collect();
    let show = output::PsShow {
        full: a.no_trunc,
        image_size: None,
    };
    if a.quiet {
        shown.iter().for_each(|c| {
            println!(
                "{}",
                if a.no_trunc {
                    c.config.id.as_str()
                } else {
                    c.config.short_id()
                }
            )
        });
        return Ok(0);
    }
    let show_of = |c: &Container| output::PsShow {
        image_size: a
            .size
            .then(|| images.find(&c.config.image).map_or(0, |i| i.size)),
        ..show
    };
    if let Some(tpl) = a.format.as_deref() {
        let rows: Vec<_> = shown
            .iter()
            .map(|c| output::ps_map(c, show_of(c)))
            .collect();
        print!(
            "{}",
            crate::template::render_list(tpl, &output::ps_headers(), &rows)?
        );
        return Ok(0);
    }
    let mut shown_fields = vec![
        "ID",
        "Image",
        "Command",
        "RunningFor",
        "Status",
        "Ports",
        "Names",
    ];
    let mut header = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    if a.size {
        shown_fields.push("Size");
        header.push("SIZE");
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|c| {
            let fields = output::ps_map(c, show_of(c));
            shown_fields.iter().map(|k| fields[k].clone()).collect()
        })
        .collect();
    print!("{}", table(&header, &rows));
    Ok(0)
}

/// `inspect [--type ...]`: without a type, the first kind that has the name, in that order.
fn inspect(
    engine: &Engine,
    keys: &[String],
    kind: Option<ObjectKind>,
    format: Option<&str>,
) -> Outcome {
    let format = format.map(Format::parse).transpose()?;
    use netctl_engine::view;
    let images = netctl_engine::image::ImageStore::open(engine.root())?;
    let volumes = netctl_engine::volume::VolumeStore::open(engine.root())?;
    let networks = engine.networks()?;
    let wants = |k: ObjectKind| kind.is_none_or(|t| t == k);
    let one = |key: &str| -> anyhow::Result<serde_json::Value> {
        if wants(ObjectKind::Container) {
            if let Ok(c) = engine.containers.find(key) {
                return Ok(serde_json::to_value(view::inspect(engine, &c))?);
            }
        }
        if wants(ObjectKind::Image) {
            if let Ok(i) = images.find(key) {
                return Ok(serde_json::to_value(view::inspect_image(&i))?);
            }
        }
        if wants(ObjectKind::Volume) {
            if let Ok(v) = volumes.get(key) {
                return Ok(serde_json::to_value(view::inspect_volume(&volumes, &v))?);
            }
        }
        if wants(ObjectKind::Network) {
            if let Ok(n) = networks.find(key) {
                return Ok(serde_json::to_value(view::inspect_network(engine, &n))?);
            }
        }
        anyhow::bail!("No such object: {key}")
    };
    let out = keys
        .iter()
        .map(|k| one(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    match format {
        Some(f) => {
            for v in &out {
                println!("{}", f.render(v)?);
            }
        }
        None => output::json(&out)?,
    }
    Ok(0)
}

/// `logs`: stdout lines to stdout, stderr lines to stderr.
fn logs(engine: &Engine, a: &LogsArgs) -> Outcome {
    use std::io::Write;
    let c = engine.containers.find(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--tail {n:?} is not a number"))?,
        ),
    };
    let now = netctl_engine::when::now();
    let at = |t: &Option<String>| {
        t.as_deref()
            .map(|t| netctl_engine::when::parse(t, now))
            .transpose()
    };
    let opts = LogOptions {
        follow: a.follow,
        tail,
        since: at(&a.since)?,
        until: at(&a.until)?,
    };
    netctl_engine::logs::read(&c, opts, |rec| {
        let prefix = if a.timestamps {
            format!("{} ", rec.time)
        } else {
            String::new()
        };
        let written = if rec.is_stderr() {
            write!(std::io::stderr(), "{prefix}{}", rec.log)
        } else {
            let mut o = std::io::stdout().lock();
            write!(o, "{prefix}{}", rec.log).and_then(|()| o.flush())
        };
        written.map_err(|e| Error::io("write the log", e))
    })?;
    Ok(0)
}

/// `exec`: the command's exit code; 127/126 when it cannot be run, as Docker's.
fn exec(engine: &Engine, a: &ExecArgs) -> Outcome {
    let c = engine.containers.find(&a.container)?;
    let tty = a.tty && !a.detach;
    if tty && a.interactive && !rustix::termios::isatty(std::io::stdin()) {
        return Err(anyhow::anyhow!("the input device is not a TTY").into());
    }
    let req = ExecRequest {
        command: &a.command,
        env: &a.env,
        workdir: a.workdir.as_deref(),
        interactive: a.interactive,
        user: a.user.as_deref(),
        tty: tty.then(|| crate::attach::terminal_size().unwrap_or((24, 80))),
    };
    // Our terminal passes keys through raw while the command has its own.
    let _raw = (tty && a.interactive)
        .then(crate::attach::RawTerminal::enter)
        .flatten();
    let ran = if a.detach {
        netctl_engine::process::exec::exec_detached(engine, &c, &req).map(|()| 0)
    } else {
        netctl_engine::process::exec::exec(engine, &c, &req)
    };
    match ran {
        Ok(code) => Ok(exit_code(code)),
        Err(e @ (Error::CommandNotFound(_) | Error::CommandNotRunnable { .. })) => {
            eprintln!("OCI runtime exec failed: {e}");
            Ok(if matches!(e, Error::CommandNotFound(_)) {
                127
            } else {
                126
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// `container prune`.
fn prune(engine: &Engine, force: bool) -> Outcome {
    if !force && !crate::input::confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let pruned = netctl_engine::system::prune_containers(engine)?;
    crate::system::print_pruned("Deleted Containers", &pruned);
    println!(
        "Total reclaimed space: {}",
        output::human_size(pruned.reclaimed)
    );
    Ok(0)
}
