//! `info`, `system df` and the prunes, as Docker prints them, over the engine's `system`
//! module.

use clap::Subcommand;
use netctl_engine::system::{self, Pruned, Usage};
use netctl_engine::Engine;

use crate::input::confirm;
use crate::outcome::Outcome;
use crate::output::{human_size, table};

/// `system ...`.
#[derive(Subcommand)]
pub enum SystemCommand {
    /// Display system-wide information.
    Info(InfoArgs),
    /// Show disk usage.
    Df,
    /// Remove unused data: stopped containers, unused networks, dangling images.
    Prune {
        /// Remove all unused images, not just dangling ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Get real time events from the engine.
    Events(crate::events::EventsArgs),
}

/// `info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Go template: `{{.ServerVersion}}`, `{{json .}}`.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

/// Runs a system command.
pub fn run(engine: &Engine, cmd: SystemCommand) -> Outcome {
    match cmd {
        SystemCommand::Info(a) => info(engine, &a),
        SystemCommand::Df => df(engine),
        SystemCommand::Prune { all, force } => prune(engine, all, force),
        SystemCommand::Events(a) => crate::events::run(engine, &a),
    }
}

/// `info`: Docker's Server section.
pub fn info(engine: &Engine, a: &InfoArgs) -> Outcome {
    let i = system::info(engine)?;
    if let Some(f) = &a.format {
        crate::output::objects(&[&i], Some(f))?;
        return Ok(0);
    }
    let plugins = |k: &str| i.plugins.get(k).map(|v| v.join(" ")).unwrap_or_default();
    print!(
        "Server:\n Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {}\n Server Version: {}\n Storage Driver: {}\n Logging Driver: {}\n Cgroup Driver: {}\n Cgroup Version: {}\n Plugins:\n  Volume: {}\n  Network: {}\n  Log: {}\n Default Runtime: {}\n Security Options:\n  seccomp\n   Profile: default\n Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n Docker Root Dir: {}\n",
        i.containers,
        i.containers_running,
        i.containers_paused,
        i.containers_stopped,
        i.images,
        i.server_version,
        i.driver,
        i.logging_driver,
        i.cgroup_driver,
        i.cgroup_version,
        plugins("Volume"),
        plugins("Network"),
        plugins("Log"),
        i.default_runtime,
        i.kernel_version,
        i.operating_system,
        i.os_type,
        i.architecture,
        i.ncpu,
        binary(i.mem_total),
        i.name,
        i.id,
        i.docker_root_dir,
    );
    Ok(0)
}

/// "23.41GiB", as Docker's info prints memory.
fn binary(bytes: u64) -> String {
    let mut v = bytes as f64;
    let mut u = 0;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
        + units[u]
}

/// `system df`.
fn df(engine: &Engine) -> Outcome {
    let [images, containers, volumes] = system::disk_usage(engine)?;
    let row = |kind: &str, u: Usage, percent: bool| {
        let reclaim = if percent && u.size > 0 {
            format!(
                "{} ({}%)",
                human_size(u.reclaimable),
                u.reclaimable * 100 / u.size
            )
        } else {
            human_size(u.reclaimable)
        };
        vec![
            kind.to_string(),
            u.total.to_string(),
            u.active.to_string(),
            human_size(u.size),
            reclaim,
        ]
    };
    let rows = vec![
        row("Images", images, true),
        row("Containers", containers, true),
        row("Local Volumes", volumes, true),
        row("Build Cache", Usage::default(), false),
    ];
    print!(
        "{}",
        table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)
    );
    Ok(0)
}

/// Prints a prune's section, as Docker does.
pub fn print_pruned(title: &str, p: &Pruned) {
    if !p.deleted.is_empty() {
        println!("{title}:\n{}\n", p.deleted.join("\n"));
    }
}

/// `system prune`.
fn prune(engine: &Engine, all: bool, force: bool) -> Outcome {
    let images = if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let warning = format!("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - {images}\n  - all dangling build cache\n");
    if !force && !confirm(&warning)? {
        return Ok(0);
    }
    let containers = system::prune_containers(engine)?;
    print_pruned("Deleted Containers", &containers);
    let networks = system::prune_networks(engine)?;
    print_pruned("Deleted Networks", &networks);
    let images = system::prune_images(engine, all)?;
    print_pruned("Deleted Images", &images);
    println!(
        "Total reclaimed space: {}",
        human_size(containers.reclaimed + images.reclaimed)
    );
    Ok(0)
}
