//! `netctl volume ...`: Docker's volume commands.

use clap::Subcommand;
use netctl_engine::volume::VolumeStore;
use netctl_engine::Engine;

use crate::outcome::Outcome;

/// The volume commands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume; prints its name.
    Create {
        /// KEY=VALUE metadata.
        #[arg(long)]
        label: Vec<String>,
        /// Its name (random when left out).
        name: Option<String>,
        /// Its name, the older way to give it.
        #[arg(long = "name", conflicts_with = "name")]
        name_flag: Option<String>,
    },
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// Go template: `{{.Name}}\t{{.Driver}}`, `table ...`.
        #[arg(long)]
        format: Option<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        /// Go template over each volume: `{{.Mountpoint}}`.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses one).
    #[command(visible_alias = "remove")]
    Rm {
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused anonymous volumes (with -a, every unused volume).
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
    },
}

/// Runs a volume command.
pub fn run(engine: &Engine, cmd: VolumeCommand) -> Outcome {
    let store = VolumeStore::open(engine.root())?;
    match cmd {
        VolumeCommand::Create {
            label,
            name,
            name_flag,
        } => {
            let labels = crate::input::key_values(&label, "--label")?;
            let v = netctl_engine::volume::create(engine, name.or(name_flag).as_deref(), labels)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls { quiet, format } => {
            let all = store.all()?;
            if quiet {
                all.iter().for_each(|v| println!("{}", v.name));
            } else if let Some(f) = format {
                let rows: Vec<_> = all
                    .iter()
                    .map(|v| {
                        let labels: Vec<String> = v.labels.iter().map(|(k, l)| format!("{k}={l}")).collect();
                        serde_json::json!({"Name": v.name, "Driver": "local", "Scope": "local", "Mountpoint": store.data(&v.name), "Labels": labels.join(",")})
                    })
                    .collect();
                let header = serde_json::json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"});
                print!("{}", crate::template::render_list(&f, &header, &rows)?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|v| vec!["local".into(), v.name.clone()])
                    .collect();
                print!(
                    "{}",
                    crate::output::table(&["DRIVER", "VOLUME NAME"], &rows)
                );
            }
        }
        VolumeCommand::Inspect { volumes, format } => {
            let found = volumes
                .iter()
                .map(|n| store.get(n))
                .collect::<Result<Vec<_>, _>>()?;
            let out: Vec<_> = found
                .iter()
                .map(|v| netctl_engine::view::inspect_volume(&store, v))
                .collect();
            crate::output::objects(&out, format.as_deref())?;
        }
        VolumeCommand::Rm { volumes } => {
            let mut failed = false;
            for n in volumes {
                match netctl_engine::volume::remove(engine, &n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {}", e.report());
                        failed = true;
                    }
                }
            }
            return Ok(u8::from(failed));
        }
        VolumeCommand::Prune { force, all } => {
            if !force && !crate::input::confirm("WARNING! This will remove anonymous local volumes not used by at least one container.")? {
                return Ok(0);
            }
            let pruned = netctl_engine::system::prune_volumes(engine, all)?;
            println!("Deleted Volumes:");
            pruned.deleted.iter().for_each(|v| println!("{v}"));
            println!(
                "\nTotal reclaimed space: {}",
                crate::output::human_size(pruned.reclaimed)
            );
        }
    }
    Ok(0)
}
