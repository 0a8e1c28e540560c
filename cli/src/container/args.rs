//! The container commands' arguments, as Docker spells them.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use netctl_engine::container::LogDriver;

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
        /// Remove the legacy link PARENT/ALIAS, not a container.
        #[arg(short = 'l', long)]
        link: bool,
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
        /// `ps` options (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
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
        /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
        /// ONBUILD, USER, VOLUME, WORKDIR).
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
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
    /// Update the resource limits and restart policy of containers.
    Update {
        /// Resource limits to change.
        #[command(flatten)]
        limits: LimitArgs,
        /// Restart policy: no, always, on-failure[:N], unless-stopped.
        #[arg(long, value_name = "POLICY")]
        restart: Option<String>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
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
    /// Pull the image before creating: missing, always, never.
    #[arg(long, value_enum, default_value_t = crate::registry::PullPolicy::Missing)]
    pub pull: crate::registry::PullPolicy,
    /// `os/arch[/variant]` of the image to pull.
    #[arg(long)]
    pub platform: Option<String>,
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
    /// A link-local address more on the (first) network's interface; repeatable.
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
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
    /// type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=...][,tmpfs-mode=...].
    #[arg(long)]
    pub mount: Vec<String>,
    /// A tmpfs at PATH[:OPTIONS] (size=64m,mode=1770,noexec ...).
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
    /// Resource limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// PID namespace: host or container:NAME (default: its own).
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: private, shareable, host or container:NAME.
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace: host (the host's hostname), or the container's own.
    #[arg(long)]
    pub uts: Option<String>,
    /// Container isolation technology: default (Linux has no other).
    #[arg(long)]
    pub isolation: Option<String>,
    /// The OCI runtime: runc (the default runtime).
    #[arg(long)]
    pub runtime: Option<String>,
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
    /// A rule of the container's device group, `TYPE MAJOR:MINOR ACCESS` (`c 7:128 rwm`):
    /// with any, only Docker's default devices, `--device`s and these are allowed (cgroup
    /// v1); repeatable.
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
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

/// The resource limits of `run`, `create` and `update`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Memory limit (512m, 1g ...).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit: a size, or -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (what the kernel reclaims down to under pressure).
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (1.5 ...).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// The real-time period in microseconds (cgroup v1 with real-time groups).
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// The real-time runtime in microseconds per period.
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<u64>,
    /// Tune the container's pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
}
