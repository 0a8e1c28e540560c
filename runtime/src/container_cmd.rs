//! The container and image commands, with Docker's flags, output and exit codes.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use nix::sys::signal::Signal;

use crate::attach;
use crate::container::Container;
use crate::create::{self, CreateArgs};
use crate::engine::Engine;
use crate::exec::{self, ExecRequest};
use crate::image::ImageStore;
use crate::lifecycle;
use crate::view::{self, LogOptions};

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
    /// Filter: status=, name=, id=, network=.
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Go-template-like format: `{{.ID}}\t{{.Names}}`, `table ...`.
    #[arg(long)]
    pub format: Option<String>,
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
    /// The container.
    pub container: String,
}

/// `exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
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
    /// The container.
    pub container: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import a rootfs tarball or folder as a one-layer image.
    Import {
        /// Tarball (plain or gzip) or folder.
        file: PathBuf,
        /// NAME[:TAG].
        reference: Option<String>,
    },
    /// Load images from a `docker save` or OCI layout archive.
    Load(LoadArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove images.
    Rm {
        /// Images (references or IDs).
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name: SOURCE TARGET.
    Tag {
        /// The image.
        source: String,
        /// The new NAME[:TAG].
        target: String,
    },
    /// Show images as JSON.
    Inspect {
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// `load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The archive.
    #[arg(short = 'i', long)]
    pub input: PathBuf,
}

/// `images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `container ...`.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Remove all stopped containers.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(PsArgs),
    /// Show containers as JSON.
    Inspect {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// Exit code of a failed start: 127 for a missing command, 126 for one that cannot run,
/// 125 for everything else, as Docker does.
pub fn start_error_code(e: &anyhow::Error) -> i32 {
    let msg = format!("{e:#}");
    if msg.contains("executable file not found") {
        127
    } else if msg.contains("ermission denied") {
        126
    } else {
        125
    }
}

/// `run`: an error leaves no container behind.
pub fn run(engine: &Engine, a: &RunArgs) -> Result<i32, (anyhow::Error, i32)> {
    let fail = |e: anyhow::Error| {
        let code = start_error_code(&e);
        (e, code)
    };
    if a.create.interactive
        && a.create.tty
        && !a.detach
        && !rustix::termios::isatty(std::io::stdin())
    {
        return Err((anyhow::anyhow!("the input device is not a TTY"), 1));
    }
    let c = create(engine, &a.create).map_err(|e| (e, 125))?;
    let started = lifecycle::start(engine, &c, !a.detach).and_then(|()| {
        if a.detach {
            return Ok(None);
        }
        let mut c = c.clone();
        c.reload()?;
        Ok(Some(attach::attach_client(engine, &c)?.unwrap_or(0)))
    });
    match started {
        Ok(Some(code)) => Ok(code),
        Ok(None) => {
            println!("{}", c.config.id);
            Ok(0)
        }
        Err(e) => {
            let mut c = c;
            if let Ok(lock) = engine.containers.lock_one(&c) {
                let _ = engine.remove_container(&mut c, &lock, true);
            }
            Err(fail(e))
        }
    }
}

/// `create`: the container's record, not started.
pub fn create(engine: &Engine, a: &CreateArgs) -> anyhow::Result<Container> {
    let config = create::config(engine, a)?;
    let lock = engine.containers.lock()?;
    engine.containers.create(config, &lock)
}

/// Puts our terminal in raw mode while a `-t` container is attached.
pub struct RawTerminal(rustix::termios::Termios);

impl RawTerminal {
    /// Raw mode on our stdin's terminal, restored on drop; None when stdin is no terminal.
    pub fn enter() -> Option<Self> {
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

/// `start [-a] CONTAINER...`.
pub fn start(engine: &Engine, keys: &[String], attach: bool) -> anyhow::Result<i32> {
    let mut code = 0;
    for key in keys {
        let c = engine.containers.find(key)?;
        lifecycle::start(engine, &c, attach)?;
        if attach {
            let mut c = c.clone();
            c.reload()?;
            code = attach::attach_client(engine, &c)?.unwrap_or(0);
        } else {
            println!("{key}");
        }
    }
    Ok(code)
}

/// Runs `f` for each container named, printing each name as Docker does; the first error
/// is returned after all were tried.
pub fn each(
    engine: &Engine,
    keys: &[String],
    mut f: impl FnMut(&Container) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut first = None;
    for key in keys {
        match engine.containers.find(key).and_then(|c| f(&c)) {
            Ok(()) => println!("{key}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e.context("not every container was handled")),
        None => Ok(()),
    }
}

/// `kill -s SIGNAL`: KILL, SIGKILL or 9.
pub fn parse_signal(s: &str) -> anyhow::Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal: {s}"));
    }
    let name = if s.starts_with("SIG") {
        s.to_string()
    } else {
        format!("SIG{s}")
    };
    name.to_uppercase()
        .parse::<Signal>()
        .with_context(|| format!("invalid signal: {s}"))
}

/// `ps`.
pub fn ps(engine: &Engine, a: &PsArgs) -> anyhow::Result<()> {
    if let Err(e) = lifecycle::repair(engine) {
        eprintln!("netctl: repair what a crash left: {e:#}");
    }
    let filters = crate::network::key_values(&a.filter, "--filter")?;
    if let Some(bad) = filters
        .keys()
        .find(|k| !["status", "name", "id", "network"].contains(&k.as_str()))
    {
        bail!("invalid filter {bad:?}: use status, name, id or network");
    }
    let shown: Vec<Container> = engine
        .containers
        .all()?
        .into_iter()
        .filter(|c| {
            a.all || !filters.is_empty() && filters.contains_key("status") || c.is_running()
        })
        .filter(|c| {
            filters.iter().all(|(k, v)| match k.as_str() {
                "status" => view::state_name(c) == v,
                "name" => c.config.name.contains(v.as_str()),
                "id" => c.config.id.starts_with(v.as_str()),
                _ => c.config.networks.iter().any(|n| &n.name == v),
            })
        })
        .collect();
    if a.quiet {
        shown
            .iter()
            .for_each(|c| println!("{}", c.config.short_id()));
        return Ok(());
    }
    if let Some(tpl) = a.format.as_deref() {
        let (header, tpl) = match tpl.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, tpl),
        };
        if header {
            let names: Vec<(&str, String)> = view::PS_FIELDS
                .into_iter()
                .map(|k| (k, k.to_uppercase()))
                .collect();
            println!("{}", view::render_template(tpl, &names));
        }
        for c in &shown {
            println!("{}", view::render_template(tpl, &view::ps_fields(c)));
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|c| {
            view::ps_fields(c)
                .into_iter()
                .filter(|(k, _)| {
                    [
                        "ID",
                        "Image",
                        "Command",
                        "RunningFor",
                        "Status",
                        "Ports",
                        "Names",
                    ]
                    .contains(k)
                })
                .map(|(_, v)| v)
                .collect()
        })
        .collect();
    let header = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    print!("{}", view::table(&header, &rows));
    Ok(())
}

/// `inspect [--type container|image|volume|network]`: without a type, the first kind that
/// has the name, in that order.
pub fn inspect(engine: &Engine, keys: &[String], kind: Option<&str>) -> anyhow::Result<()> {
    if let Some(k) = kind.filter(|k| !["container", "image", "volume", "network"].contains(k)) {
        bail!("{k:?} is not a valid value for --type: use container, image, volume or network");
    }
    let images = ImageStore::open(&engine.root)?;
    let volumes = crate::volume::VolumeStore::open(&engine.root)?;
    let networks = crate::network::NetworkStore::open(&engine.root)?;
    let wants = |k: &str| kind.is_none_or(|t| t == k);
    let one = |key: &str| -> anyhow::Result<serde_json::Value> {
        if wants("container") {
            if let Ok(c) = engine.containers.find(key) {
                return Ok(view::inspect(&c, &c.config.image_name));
            }
        }
        if wants("image") {
            if let Ok(i) = images.find(key) {
                return Ok(view::inspect_image(&i));
            }
        }
        if wants("volume") {
            if let Ok(v) = volumes.get(key) {
                return Ok(volumes.inspect(&v));
            }
        }
        if wants("network") {
            if let Ok(n) = networks.find(key) {
                return Ok(crate::network_cmd::inspect(&engine.root, &n));
            }
        }
        bail!("No such object: {key}")
    };
    let out = keys
        .iter()
        .map(|k| one(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `logs`.
pub fn logs(engine: &Engine, a: &LogsArgs) -> anyhow::Result<()> {
    let c = engine.containers.find(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<usize>()
                .with_context(|| format!("--tail {n:?} is not a number"))?,
        ),
    };
    view::logs(
        &c,
        &LogOptions {
            follow: a.follow,
            tail,
            timestamps: a.timestamps,
        },
    )
}

/// `exec`.
pub fn exec(engine: &Engine, a: &ExecArgs) -> anyhow::Result<i32> {
    let c = engine.containers.find(&a.container)?;
    exec::exec(
        &c,
        &ExecRequest {
            command: &a.command,
            env: &a.env,
            workdir: a.workdir.as_deref(),
            interactive: a.interactive || a.tty,
        },
    )
}

/// `container prune`.
pub fn prune(engine: &Engine, force: bool) -> anyhow::Result<()> {
    if !force && !crate::network_cmd::confirm("WARNING! This will remove all stopped containers.")?
    {
        return Ok(());
    }
    println!("Deleted Containers:");
    for c in engine.containers.all()? {
        if !c.is_running() {
            lifecycle::remove(engine, &c, false, false)?;
            println!("{}", c.config.id);
        }
    }
    println!("\nTotal reclaimed space: 0B");
    Ok(())
}

/// The image commands.
pub fn image(engine: &Engine, cmd: ImageCommand) -> anyhow::Result<()> {
    let store = ImageStore::open(&engine.root)?;
    match cmd {
        ImageCommand::Import { file, reference } => {
            let img = store.import(&file, reference.as_deref())?;
            println!("sha256:{}", img.id);
        }
        ImageCommand::Load(a) => {
            for img in crate::load::load(&store, &a.input)? {
                match img.tags.first() {
                    Some(t) => println!("Loaded image: {t}"),
                    None => println!("Loaded image ID: sha256:{}", img.id),
                }
            }
        }
        ImageCommand::Ls(a) => images(&store, &a)?,
        ImageCommand::Rm { images } => {
            let used: Vec<String> = engine
                .containers
                .all()?
                .into_iter()
                .map(|c| c.config.image)
                .collect();
            for key in images {
                for line in store.remove(&key, |id| used.iter().any(|u| u == id))? {
                    println!("{line}");
                }
            }
        }
        ImageCommand::Tag { source, target } => store.tag(&source, &target)?,
        ImageCommand::Inspect { images } => {
            let out = images
                .iter()
                .map(|k| store.find(k).map(|i| view::inspect_image(&i)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

fn images(store: &ImageStore, a: &ImagesArgs) -> anyhow::Result<()> {
    let all = store.all()?;
    if a.quiet {
        all.iter().for_each(|i| println!("{}", &i.id[..12]));
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in &all {
        let size = view::human_size(i.record.get("Size").and_then(|v| v.as_u64()).unwrap_or(0));
        let tags: Vec<(String, String)> = if i.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.tags
                .iter()
                .map(|t| {
                    let cut = t.rfind(':').unwrap_or(t.len());
                    (
                        t[..cut].to_string(),
                        t[cut..].trim_start_matches(':').to_string(),
                    )
                })
                .collect()
        };
        for (repo, tag) in tags {
            rows.push(vec![
                repo,
                tag,
                i.id[..12].to_string(),
                view::ago(i.created()),
                size.clone(),
            ]);
        }
    }
    print!(
        "{}",
        view::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    );
    Ok(())
}
