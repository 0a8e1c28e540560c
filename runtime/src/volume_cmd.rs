//! `netctl volume ...`: Docker's volume commands.

use anyhow::bail;
use clap::Subcommand;

use crate::engine::Engine;
use crate::volume::VolumeStore;

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
    },
    /// Show volumes as JSON.
    Inspect {
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
pub fn run(engine: &Engine, cmd: VolumeCommand) -> anyhow::Result<()> {
    let store = VolumeStore::open(&engine.root)?;
    match cmd {
        VolumeCommand::Create {
            label,
            name,
            name_flag,
        } => {
            let mut v = store.create(name.or(name_flag).as_deref(), false)?;
            if !label.is_empty() {
                v.labels = crate::network::key_values(&label, "--label")?;
                store.save(&v)?;
            }
            println!("{}", v.name);
        }
        VolumeCommand::Ls { quiet } => {
            let all = store.all()?;
            if quiet {
                all.iter().for_each(|v| println!("{}", v.name));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|v| vec!["local".into(), v.name.clone()])
                    .collect();
                print!("{}", crate::view::table(&["DRIVER", "VOLUME NAME"], &rows));
            }
        }
        VolumeCommand::Inspect { volumes } => {
            let out = volumes
                .iter()
                .map(|n| store.get(n).map(|v| store.inspect(&v)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Rm { volumes } => {
            let mut failed = false;
            for n in volumes {
                match engine
                    .volume_users(&n)
                    .and_then(|users| store.remove(&n, &users))
                {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e:#}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("not every volume was removed");
            }
        }
        VolumeCommand::Prune { force, all } => {
            if !force && !crate::network_cmd::confirm("WARNING! This will remove anonymous local volumes not used by at least one container.")? {
                return Ok(());
            }
            println!("Deleted Volumes:");
            for v in store.all()? {
                if (all || v.anonymous) && engine.volume_users(&v.name)?.is_empty() {
                    store.remove(&v.name, &[])?;
                    println!("{}", v.name);
                }
            }
            println!("\nTotal reclaimed space: 0B");
        }
    }
    Ok(())
}
