//! The image commands.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use netctl_engine::ids::short_id;
use netctl_engine::image::ImageStore;
use netctl_engine::Engine;

use crate::outcome::Outcome;
use crate::output::{ago, human_size};

/// `image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import a rootfs tarball or folder as a one-layer image.
    Import {
        /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
        /// ONBUILD, USER, VOLUME, WORKDIR).
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
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
    /// Remove unused images (dangling ones; with -a every image no container uses).
    Prune {
        /// Every unused image, not only dangling ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save images to a tar archive (Docker's format, for `load` and `docker load`).
    Save(SaveArgs),
    /// Download an image from a registry.
    Pull(crate::registry::PullArgs),
    /// Upload an image to a registry.
    Push(crate::registry::PushArgs),
    /// Show images as JSON.
    Inspect {
        /// Go template over each image: `{{.Id}}`, `{{json .Config}}`.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// `save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Go template: `{{.CreatedBy}}`, `table ...`.
    #[arg(long)]
    pub format: Option<String>,
    /// The image.
    pub image: String,
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
    /// Show full image IDs.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Go template: `{{.Repository}}:{{.Tag}}`, `table ...`.
    #[arg(long)]
    pub format: Option<String>,
    /// Show the registry digests.
    #[arg(long)]
    pub digests: bool,
    /// Only images of this repository (and tag): REPOSITORY[:TAG].
    pub reference: Option<String>,
}

/// Runs an image command.
pub fn run(engine: &Engine, cmd: ImageCommand) -> Outcome {
    let store = ImageStore::open(engine.root())?;
    match cmd {
        ImageCommand::Import {
            changes,
            file,
            reference,
        } => {
            let img = netctl_engine::image::import(engine, &file, reference.as_deref(), &changes)?;
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
        ImageCommand::Pull(a) => return crate::registry::pull(engine, &a),
        ImageCommand::Push(a) => return crate::registry::push(engine, &a),
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
        ImageCommand::History(a) => history(&store, &a)?,
        ImageCommand::Save(a) => save(&store, &a)?,
        ImageCommand::Prune { all, force } => {
            let warning = if all {
                "WARNING! This will remove all images without at least one container associated to them."
            } else {
                "WARNING! This will remove all dangling images."
            };
            if !force && !crate::input::confirm(warning)? {
                return Ok(0);
            }
            let mut pruned = netctl_engine::system::prune_images(engine, all)?;
            // Docker's prune lines are lower case: `untagged: ...`, `deleted: ...`.
            for line in &mut pruned.deleted {
                if let Some((word, rest)) = line.split_once(": ") {
                    *line = format!("{}: {rest}", word.to_lowercase());
                }
            }
            crate::system::print_pruned("Deleted Images", &pruned);
            println!(
                "Total reclaimed space: {}",
                crate::output::human_size(pruned.reclaimed)
            );
        }
        ImageCommand::Inspect { images, format } => {
            let found = images
                .iter()
                .map(|k| store.find(k))
                .collect::<Result<Vec<_>, _>>()?;
            let out: Vec<_> = found
                .iter()
                .map(|i| netctl_engine::view::inspect_image(&store, i))
                .collect();
            crate::output::objects(&out, format.as_deref())?;
        }
    }
    Ok(0)
}

fn images(store: &ImageStore, a: &ImagesArgs) -> anyhow::Result<()> {
    let all = store.all()?;
    let id = |i: &netctl_engine::image::Image| {
        if a.no_trunc {
            format!("sha256:{}", i.id)
        } else {
            short_id(&i.id).to_string()
        }
    };
    if a.quiet {
        all.iter().for_each(|i| println!("{}", id(i)));
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in &all {
        let tags: Vec<(&str, &str)> = if i.tags.is_empty() {
            match i.repo_digests.first().and_then(|d| d.split_once('@')) {
                Some((repo, _)) => vec![(repo, "<none>")],
                None => vec![("<none>", "<none>")],
            }
        } else {
            i.tags
                .iter()
                .map(|t| t.rsplit_once(':').unwrap_or((t, "")))
                .collect()
        };
        let wanted = |repo: &str, tag: &str| match a.reference.as_deref() {
            None => true,
            Some(r) => match r.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                Some((rr, rt)) => rr == repo && rt == tag,
                None => r == repo,
            },
        };
        for (repo, tag) in tags.into_iter().filter(|(r, t)| wanted(r, t)) {
            rows.push(std::collections::BTreeMap::from([
                ("Repository", repo.to_string()),
                ("Tag", tag.to_string()),
                ("ID", id(i)),
                ("CreatedSince", ago(&i.created)),
                ("CreatedAt", i.created.clone()),
                ("Size", human_size(i.size)),
                ("Digest", repo_digest(i, repo)),
            ]));
        }
    }
    let columns = [
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Digest", "DIGEST"),
    ];
    let shown: &[&str] = if a.digests {
        &["Repository", "Tag", "Digest", "ID", "CreatedSince", "Size"]
    } else {
        &["Repository", "Tag", "ID", "CreatedSince", "Size"]
    };
    print!(
        "{}",
        crate::output::listing(&rows, &columns, shown, a.format.as_deref())?
    );
    Ok(())
}

/// The digest the image has in `repo`'s registry, or `<none>`.
fn repo_digest(i: &netctl_engine::image::Image, repo: &str) -> String {
    i.repo_digests
        .iter()
        .find_map(|d| {
            d.split_once('@')
                .filter(|(r, _)| *r == repo)
                .map(|(_, d)| d.to_string())
        })
        .unwrap_or_else(|| "<none>".into())
}

/// `history`: Docker's table (or template) of the image's steps, newest first.
fn history(store: &ImageStore, a: &HistoryArgs) -> anyhow::Result<()> {
    let img = store.find(&a.image)?;
    let steps = netctl_engine::image::history(store, &img)?;
    let id = |s: &str| -> String {
        match s.strip_prefix("sha256:") {
            Some(hex) if !a.no_trunc => short_id(hex).to_string(),
            _ => s.to_string(),
        }
    };
    if a.quiet {
        steps.iter().for_each(|s| println!("{}", id(&s.id)));
        return Ok(());
    }
    let by = |s: &str| -> String {
        if a.no_trunc || s.chars().count() <= 45 {
            s.to_string()
        } else {
            s.chars().take(44).chain(['…']).collect()
        }
    };
    let rows: Vec<std::collections::BTreeMap<&str, String>> = steps
        .iter()
        .map(|s| {
            std::collections::BTreeMap::from([
                ("ID", id(&s.id)),
                ("CreatedSince", ago(&s.created)),
                ("CreatedAt", s.created.clone()),
                ("CreatedBy", by(&s.created_by)),
                ("Size", human_size(s.size)),
                ("Comment", s.comment.clone()),
            ])
        })
        .collect();
    let columns = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    let shown = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"];
    print!(
        "{}",
        crate::output::listing(&rows, &columns, &shown, a.format.as_deref())?
    );
    Ok(())
}

/// `save`: each image with the tags it was named by.
fn save(store: &ImageStore, a: &SaveArgs) -> anyhow::Result<()> {
    let images = netctl_engine::save::selection(store, &a.images)?;
    match &a.output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("create {}: {e}", path.display()))?;
            netctl_engine::save::save(store, &images, std::io::BufWriter::new(f))?;
        }
        None => {
            if rustix::termios::isatty(std::io::stdout()) {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            netctl_engine::save::save(store, &images, std::io::stdout().lock())?;
        }
    }
    Ok(())
}
