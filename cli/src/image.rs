//! The image commands.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use netctl_engine::ids::short_id;
use netctl_engine::image::ImageStore;
use netctl_engine::Engine;

use crate::outcome::Outcome;
use crate::output::{ago, human_size, table};

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

/// Runs an image command.
pub fn run(engine: &Engine, cmd: ImageCommand) -> Outcome {
    let store = ImageStore::open(engine.root())?;
    match cmd {
        ImageCommand::Import { file, reference } => {
            let img = netctl_engine::image::import(engine, &file, reference.as_deref())?;
            println!("sha256:{}", img.id);
        }
        ImageCommand::Load(a) => {
            for img in netctl_engine::image::load(engine, &a.input)? {
                match img.tags.first() {
                    Some(t) => println!("Loaded image: {t}"),
                    None => println!("Loaded image ID: sha256:{}", img.id),
                }
            }
        }
        ImageCommand::Ls(a) => images(&store, &a)?,
        ImageCommand::Rm { images } => {
            for key in images {
                for line in netctl_engine::image::remove(engine, &key)? {
                    println!("{line}");
                }
            }
        }
        ImageCommand::Tag { source, target } => {
            netctl_engine::image::tag(engine, &source, &target)?
        }
        ImageCommand::Inspect { images } => {
            let found = images
                .iter()
                .map(|k| store.find(k))
                .collect::<Result<Vec<_>, _>>()?;
            let out: Vec<_> = found
                .iter()
                .map(netctl_engine::view::inspect_image)
                .collect();
            crate::output::json(&out)?;
        }
    }
    Ok(0)
}

fn images(store: &ImageStore, a: &ImagesArgs) -> anyhow::Result<()> {
    let all = store.all()?;
    if a.quiet {
        all.iter().for_each(|i| println!("{}", short_id(&i.id)));
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in &all {
        let tags: Vec<(&str, &str)> = if i.tags.is_empty() {
            vec![("<none>", "<none>")]
        } else {
            i.tags
                .iter()
                .map(|t| t.rsplit_once(':').unwrap_or((t, "")))
                .collect()
        };
        for (repo, tag) in tags {
            rows.push(vec![
                repo.to_string(),
                tag.to_string(),
                short_id(&i.id).to_string(),
                ago(&i.created),
                human_size(i.size),
            ]);
        }
    }
    print!(
        "{}",
        table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    );
    Ok(())
}
