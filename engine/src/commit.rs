//! `commit`: a new image from a container's changes — its writable layer as one more image
//! layer (overlay whiteouts as `.wh.` members, the engine's mount points left out) over its
//! image's layers, and its config (command, entrypoint, environment, working directory,
//! ports, labels, user, stop signal, healthcheck) as the new image's.

use std::path::Path;

use serde_json::{json, Value};

use crate::archive::{append_tree, Tree};
use crate::clock::now_rfc3339;
use crate::container::Container;
use crate::engine::Engine;
use crate::error::{Context, Result};
use crate::image::{normalize, Image, ImageStore, NewImage};

/// What `commit` is asked.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `REPOSITORY[:TAG]` for the new image.
    pub reference: Option<String>,
    /// `-m`: the history entry's comment.
    pub comment: String,
    /// `-a`: the author.
    pub author: String,
    /// `-p`: freeze a running container while its layer is read (Docker's default).
    pub pause: bool,
    /// `-c`: Dockerfile instructions applied to the new image's config.
    pub changes: Vec<String>,
}

/// Makes the image; the container keeps running (frozen meanwhile with `pause`).
pub fn commit(engine: &Engine, c: &Container, req: &CommitRequest) -> Result<Image> {
    // Bad instructions are refused before any layer is made.
    crate::instructions::apply(&mut json!({}), &req.changes)?;
    let store = ImageStore::open(engine.root())?;
    let _adding = store.lock_for_adding()?;
    let base = store.find(&c.config.image)?;
    let tags = req.reference.as_deref().map(normalize).transpose()?;
    let froze = req.pause
        && c.is_running()
        && !c.state.paused
        && crate::manage::pause(engine, c, true).is_ok();
    let layer = layer_of(&store, &c.dir.join("upper"));
    if froze {
        let mut now = c.clone();
        if now.reload().is_ok() {
            let _ = crate::manage::pause(engine, &now, false);
        }
    }
    let diff = layer?;
    let mut layers = base.layers.clone();
    layers.push(diff.clone());
    let doc = document(&store, &base, c, req, &diff)?;
    let image = store.add(NewImage {
        config: serde_json::to_vec(&doc).ctx(|| "encode the image config".into())?,
        layers,
        tags: tags.into_iter().collect(),
        parent: base.id.clone(),
    })?;
    let id = format!("sha256:{}", image.id);
    let reference = image.display_name();
    crate::events::container(
        engine,
        c,
        "commit",
        &[
            ("comment", &req.comment),
            ("imageID", &id),
            ("imageRef", &reference),
        ],
    );
    Ok(image)
}

/// The writable layer as an image layer in the store; its diff ID.
fn layer_of(store: &ImageStore, upper: &Path) -> Result<String> {
    let (reader, writer) = std::io::pipe().ctx(|| "make a pipe for the layer".into())?;
    let upper = upper.to_path_buf();
    let packing = std::thread::spawn(move || -> std::io::Result<()> {
        let mut b = tar::Builder::new(writer);
        let skip = |p: &Path| crate::changes::engine_made(&format!("/{}", p.display()));
        let opts = Tree {
            overlay: true,
            skip: Some(&skip),
            ..Tree::default()
        };
        // A container that never started has no writable layer yet: its diff is empty.
        let mut entries = match std::fs::read_dir(&upper) {
            Ok(dir) => dir.collect::<std::io::Result<Vec<_>>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            append_tree(&mut b, &e.path(), Path::new(&e.file_name()), &opts)?;
        }
        b.into_inner().map(drop)
    });
    let added = store.layers.add(reader);
    let packed = packing
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the layer packer panicked")));
    packed.ctx(|| "read the container's changes".into())?;
    Ok(added?.0)
}

/// The new image's config document: the base image's, with the container's config, the
/// new layer and a history entry.
fn document(
    store: &ImageStore,
    base: &Image,
    c: &Container,
    req: &CommitRequest,
    diff: &str,
) -> Result<Value> {
    let mut doc: Value = serde_json::from_slice(&store.config_document(base)?)
        .ctx(|| "parse the base image's config".into())?;
    let created = now_rfc3339();
    let cmd: Vec<String> = c
        .config
        .command
        .iter()
        .skip(c.config.entrypoint.len())
        .cloned()
        .collect();
    let exposed: serde_json::Map<String, Value> = c
        .config
        .exposed
        .iter()
        .map(|(p, proto)| (format!("{p}/{proto}"), json!({})))
        .collect();
    let config = &mut doc["config"];
    if !config.is_object() {
        *config = json!({});
    }
    config["Cmd"] = json!(cmd);
    config["Entrypoint"] = json!((!c.config.entrypoint.is_empty()).then_some(&c.config.entrypoint));
    config["Env"] = json!(c.config.env);
    config["WorkingDir"] = json!(c.config.workdir);
    config["ExposedPorts"] = json!((!exposed.is_empty()).then_some(exposed));
    config["Labels"] = json!(c.config.labels);
    config["User"] = json!(c.config.privileges.user);
    if let Some(s) = &c.config.stop_signal {
        config["StopSignal"] = json!(s);
    }
    if let Some(h) = &c.config.healthcheck {
        config["Healthcheck"] = serde_json::to_value(h).ctx(|| "encode the healthcheck".into())?;
    }
    // The container's config as it was (Docker's ContainerConfig), naming the image it was
    // made from, before the instructions.
    let mut container_config = config.clone();
    container_config["Image"] = json!(c.config.image_name);
    container_config["Hostname"] = json!(c.config.hostname);
    crate::instructions::apply(config, &req.changes)?;
    doc["container_config"] = container_config;
    doc["created"] = json!(created);
    doc["container"] = json!(c.config.id);
    if !req.author.is_empty() {
        doc["author"] = json!(req.author);
    }
    doc["comment"] = json!(req.comment);
    let diffs = doc["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut diffs: Vec<Value> = if diffs.len() == base.layers.len() {
        diffs
    } else {
        base.layers
            .iter()
            .map(|l| json!(format!("sha256:{l}")))
            .collect()
    };
    diffs.push(json!(format!("sha256:{diff}")));
    doc["rootfs"] = json!({"type": "layers", "diff_ids": diffs});
    let mut history = doc["history"].as_array().cloned().unwrap_or_default();
    let mut step = json!({"created": created, "created_by": c.config.command.join(" ")});
    if !req.comment.is_empty() {
        step["comment"] = json!(req.comment);
    }
    if !req.author.is_empty() {
        step["author"] = json!(req.author);
    }
    history.push(step);
    doc["history"] = json!(history);
    Ok(doc)
}
