//! The image store: `<root>/image/images/<id>.json` records (tags, layers bottom first, the
//! runtime config: Cmd, Entrypoint, Env, WorkingDir, ExposedPorts) over the immutable layers
//! of [`LayerStore`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use netctl_cni::fsutil;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_rfc3339;
use crate::error::{conflict, invalid, Context, Error, Kind, Result};
use crate::ids::short_id;
use crate::layer::{self, LayerStore};
use crate::lock::StoreLock;

/// The part of an image's config a container is made from (OCI/Docker names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// The default command.
    #[serde(default, deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    /// The program the command is given to.
    #[serde(default, deserialize_with = "nullable")]
    pub entrypoint: Vec<String>,
    /// KEY=VALUE.
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `"80/tcp": {}`.
    #[serde(default, deserialize_with = "nullable")]
    pub exposed_ports: BTreeMap<String, Value>,
    /// The image's labels, which its containers start with.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops its containers (`STOPSIGNAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Its `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// Everything else of the config, kept for inspect.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

impl ImageConfig {
    /// The paths its `VOLUME`s name (`Volumes`' keys), which each container gets a volume at.
    pub fn volumes(&self) -> Vec<String> {
        match self.other.get("Volumes") {
            Some(Value::Object(paths)) => paths.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// Image configs write `null` for empty lists.
fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One image, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    /// 64 hex (the SHA-256 of its config).
    #[serde(rename = "Id", with = "sha256_prefixed")]
    pub id: String,
    /// `name:tag` references, normalised.
    #[serde(rename = "RepoTags", default)]
    pub tags: Vec<String>,
    /// Layer diff IDs, bottom first.
    pub layers: Vec<String>,
    /// When it was built (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// Bytes of its layers' files.
    #[serde(default)]
    pub size: u64,
    /// The runtime config.
    #[serde(default)]
    pub config: ImageConfig,
    /// amd64 ...
    #[serde(default)]
    pub architecture: String,
    /// linux ...
    #[serde(default)]
    pub os: String,
    /// Who made it (`commit -a`).
    #[serde(default)]
    pub author: String,
    /// Why (`commit -m`, "Imported from -").
    #[serde(default)]
    pub comment: String,
    /// The container it was committed from.
    #[serde(default)]
    pub container: String,
    /// The config of that container when it was committed (`ContainerConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<serde_json::Value>,
    /// `name@sha256:...` of the manifests it was pulled or pushed as.
    #[serde(rename = "RepoDigests", default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// The image it was committed over (its ID), as Docker keeps it beside the image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
}

/// `sha256:<hex>` on disk, the hex in memory.
mod sha256_prefixed {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("sha256:{id}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.trim_start_matches("sha256:").to_string())
    }
}

impl Image {
    /// The name it is shown by: its first tag, or its short ID.
    pub fn display_name(&self) -> String {
        self.tags
            .first()
            .cloned()
            .unwrap_or_else(|| short_id(&self.id).to_string())
    }
}

/// A reference as Docker shows it, with `latest` when it names no tag or digest:
/// `docker.io/library/busybox` -> `busybox:latest`.
pub fn normalize(reference: &str) -> Result<String> {
    Ok(crate::pull::reference(reference)?.familiar())
}

/// Images and layers under `<root>/image`.
pub struct ImageStore {
    dir: PathBuf,
    /// The layers below every image.
    pub layers: LayerStore,
}

/// The parts of an image config (OCI/Docker JSON) the store reads.
#[derive(Debug, Default, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<ImageConfig>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    container_config: Option<serde_json::Value>,
}

/// What a new image is made of.
pub struct NewImage {
    /// The image config document, as archived (its hash is the image ID).
    pub config: Vec<u8>,
    /// Diff IDs, bottom first.
    pub layers: Vec<String>,
    /// References to point at it.
    pub tags: Vec<String>,
    /// The image it was committed over (ID), if any.
    pub parent: String,
}

impl ImageStore {
    /// The store under `root`, created if missing.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("image");
        let images = dir.join("images");
        fs::create_dir_all(&images).ctx(|| format!("create {}", images.display()))?;
        Ok(Self {
            layers: LayerStore::open(dir.join("layers"))?,
            dir,
        })
    }

    /// Waits for the store's lock: shared while images are added (their layers are stored
    /// before any record names them) and while a container is made from one; exclusive
    /// while images are removed and the layers no image names are pruned.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        let path = self.dir.join(".lock");
        if exclusive {
            let lock = StoreLock::exclusive(&path)?;
            self.sweep();
            Ok(lock)
        } else {
            StoreLock::shared(&path)
        }
    }

    /// The shared lock of an add (a pull, load, import or commit); when no other process
    /// holds the store, what killed adds left behind is removed first.
    pub fn lock_for_adding(&self) -> Result<StoreLock> {
        if let Some(_alone) = StoreLock::try_exclusive(&self.dir.join(".lock"))? {
            self.sweep();
        }
        self.lock(false)
    }

    /// Removes unfinished layers and scratch folders; only under the exclusive lock.
    fn sweep(&self) {
        self.layers.sweep();
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(".scratch-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The lock of the image records, held while tags move between them.
    fn records_lock(&self) -> Result<StoreLock> {
        StoreLock::exclusive(&self.dir.join(".records.lock"))
    }

    /// A scratch folder for unpacking archives, removed when dropped.
    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(".scratch-")
            .tempdir_in(&self.dir)
            .ctx(|| "create a scratch folder".into())
    }

    /// Whether an image with this ID (64 hex) is stored.
    pub fn contains(&self, id: &str) -> bool {
        self.record_path(id).is_file()
    }

    /// The store's folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Notes that the image is in a registry as `name@digest` (one digest per repository).
    pub fn add_repo_digest(&self, id: &str, repo_digest: &str) -> Result<Image> {
        let _records = self.records_lock()?;
        let mut img = read_image(&self.record_path(id))?;
        let repo = repo_digest.split('@').next().unwrap_or(repo_digest);
        img.repo_digests
            .retain(|d| d.split('@').next() != Some(repo));
        img.repo_digests.push(repo_digest.to_string());
        self.write(&img)?;
        Ok(img)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join("images").join(format!("{id}.json"))
    }

    fn config_path(&self, id: &str) -> PathBuf {
        self.dir.join("configs").join(format!("{id}.json"))
    }

    /// The image's config document as it was added (its SHA-256 is the image ID); for an
    /// image stored before documents were kept, one made from its record.
    pub fn config_document(&self, img: &Image) -> Result<Vec<u8>> {
        if let Ok(bytes) = fs::read(self.config_path(&img.id)) {
            return Ok(bytes);
        }
        let doc = serde_json::json!({
            "architecture": img.architecture, "os": img.os, "created": img.created,
            "config": img.config,
            "rootfs": {"type": "layers", "diff_ids": img.layers.iter().map(|l| format!("sha256:{l}")).collect::<Vec<_>>()},
        });
        serde_json::to_vec(&doc).ctx(|| "encode the image config".into())
    }

    /// Every image, newest first.
    pub fn all(&self) -> Result<Vec<Image>> {
        let dir = self.dir.join("images");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let path = entry.ctx(|| format!("list {}", dir.display()))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(read_image(&path)?);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// The image a reference or (a unique prefix of at least 3 characters of) an ID names.
    pub fn find(&self, key: &str) -> Result<Image> {
        let all = self.all()?;
        if let Ok(tag) = normalize(key) {
            if let Some(i) = all
                .iter()
                .find(|i| i.tags.contains(&tag) || i.repo_digests.contains(&tag))
            {
                return Ok(i.clone());
            }
        }
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::NotFound {
                kind: Kind::Image,
                key: key.to_string(),
            });
        }
        crate::ids::resolve(Kind::Image, hex, all, 3, |i| ("", i.id.as_str()))
    }

    /// Stores an image record and moves its tags to it from any older image.
    pub fn add(&self, new: NewImage) -> Result<Image> {
        let doc: ConfigDoc =
            serde_json::from_slice(&new.config).ctx(|| "parse the image config".into())?;
        let id = layer::sha256_hex(&new.config);
        let _records = self.records_lock()?;
        let mut tags = new.tags;
        let mut repo_digests = Vec::new();
        if let Ok(existing) = read_image(&self.record_path(&id)) {
            repo_digests = existing.repo_digests;
            tags.extend(
                existing
                    .tags
                    .into_iter()
                    .filter(|t| !tags.contains(t))
                    .collect::<Vec<_>>(),
            );
        }
        self.take_tags(&tags, &id)?;
        let doc_path = self.config_path(&id);
        if let Some(parent) = doc_path.parent() {
            fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
        }
        fsutil::write_atomic(&doc_path, &new.config)
            .ctx(|| format!("write {}", doc_path.display()))?;
        let image = Image {
            size: new.layers.iter().map(|l| self.layers.size(l)).sum(),
            id,
            tags,
            layers: new.layers,
            created: doc.created.unwrap_or_else(now_rfc3339),
            config: doc.config.unwrap_or_default(),
            architecture: doc.architecture.unwrap_or_else(|| "amd64".into()),
            os: doc.os.unwrap_or_else(|| "linux".into()),
            author: doc.author.unwrap_or_default(),
            comment: doc.comment.unwrap_or_default(),
            container: doc.container.unwrap_or_default(),
            container_config: doc.container_config,
            parent: new.parent,
            repo_digests,
        };
        self.write(&image)?;
        Ok(image)
    }

    fn write(&self, image: &Image) -> Result<()> {
        let path = self.record_path(&image.id);
        let bytes =
            serde_json::to_vec_pretty(image).ctx(|| format!("encode {}", path.display()))?;
        fsutil::write_atomic(&path, &bytes).ctx(|| format!("write {}", path.display()))
    }

    /// `tag SOURCE TARGET`: TARGET names the image SOURCE names (moved from any other).
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let _records = self.records_lock()?;
        let mut img = self.find(source)?;
        let target = normalize(target)?;
        self.take_tags(std::slice::from_ref(&target), &img.id)?;
        if !img.tags.contains(&target) {
            img.tags.push(target);
            self.write(&img)?;
        }
        Ok(())
    }

    /// Takes `tags` away from every image but `keep` (a tag names one image).
    fn take_tags(&self, tags: &[String], keep: &str) -> Result<()> {
        for mut other in self.all()? {
            if other.id != keep && other.tags.iter().any(|t| tags.contains(t)) {
                other.tags.retain(|t| !tags.contains(t));
                self.write(&other)?;
            }
        }
        Ok(())
    }

    /// Untags `key`, and deletes the image once no tag is left (or when `key` is its ID)
    /// unless `in_use` says a container uses it (asked under the store's lock, which every
    /// container creation holds shared). Returns Docker's `Untagged:` / `Deleted:` lines.
    pub fn remove(&self, key: &str, in_use: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let _alone = self.lock(true)?;
        let _records = self.records_lock()?;
        let mut img = self.find(key)?;
        let mut out = Vec::new();
        let by_tag = normalize(key).ok().filter(|t| img.tags.contains(t));
        if let Some(tag) = &by_tag {
            if img.tags.len() > 1 {
                img.tags.retain(|t| t != tag);
                self.write(&img)?;
                return Ok(vec![format!("Untagged: {tag}")]);
            }
        }
        if in_use(&img.id) {
            conflict!(
                "conflict: unable to remove image {} ({}): a container uses it; remove the container first",
                img.display_name(),
                short_id(&img.id)
            );
        }
        out.extend(img.tags.iter().map(|t| format!("Untagged: {t}")));
        let path = self.record_path(&img.id);
        fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        let _ = fs::remove_file(self.config_path(&img.id));
        out.push(format!("Deleted: sha256:{}", img.id));
        let used: Vec<String> = self.all()?.into_iter().flat_map(|i| i.layers).collect();
        let removed = self.layers.prune(&used)?;
        crate::distribution::Distribution::open(self).forget(&removed);
        // Docker names the layers that went by their chain IDs, top first.
        let chains = crate::layer::chain_ids(&img.layers);
        for (diff, chain) in img.layers.iter().zip(&chains).rev() {
            if removed.contains(diff) {
                out.push(format!("Deleted: sha256:{chain}"));
            }
        }
        Ok(out)
    }

    /// `image import`: a rootfs folder or tarball (plain or gzip) as a one-layer image.
    pub fn import(&self, source: &Path, tag: Option<&str>, changes: &[String]) -> Result<Image> {
        // Bad instructions are refused before any layer is stored.
        let mut config = serde_json::json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]});
        crate::instructions::apply(&mut config, changes)?;
        let _adding = self.lock_for_adding()?;
        let open = |p: &Path| {
            fs::File::open(p)
                .ctx(|| format!("open {}: give a rootfs tarball or folder", p.display()))
        };
        let diff = if source.is_dir() {
            let scratch = self.scratch()?;
            let tar = scratch.path().join("layer.tar");
            layer::tar_dir(source, &tar)?;
            self.layers.add(open(&tar)?)?.0
        } else {
            self.layers.add(open(source)?)?.0
        };
        let created = now_rfc3339();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff}")]},
            "history": [{"created": created, "comment": "Imported from -"}],
            "comment": "Imported from -",
        });
        let tags = tag.map(normalize).transpose()?.into_iter().collect();
        self.add(NewImage {
            config: serde_json::to_vec(&config).ctx(|| "encode the image config".into())?,
            layers: vec![diff],
            tags,
            parent: String::new(),
        })
    }
}

fn read_image(path: &Path) -> Result<Image> {
    let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    let image: Image =
        serde_json::from_slice(&bytes).ctx(|| format!("parse {}", path.display()))?;
    if image.id.len() != 64 {
        invalid!("{} has no image ID; remove it", path.display());
    }
    Ok(image)
}

/// `image import` through the engine: the image, and its `import` event.
pub fn import(
    engine: &crate::Engine,
    source: &Path,
    tag: Option<&str>,
    changes: &[String],
) -> Result<Image> {
    let img = ImageStore::open(engine.root())?.import(source, tag, changes)?;
    image_event(engine, "import", &img, &img.display_name());
    Ok(img)
}

/// `load` through the engine: the images, each with a `load` event.
pub fn load(engine: &crate::Engine, archive: &Path) -> Result<Vec<Image>> {
    let images = crate::load::load(&ImageStore::open(engine.root())?, archive)?;
    for img in &images {
        image_event(engine, "load", img, &img.display_name());
    }
    Ok(images)
}

/// `pull` through the engine, with its `pull` event.
pub fn pull(
    engine: &crate::Engine,
    req: &crate::pull::PullRequest,
    progress: &(dyn Fn(crate::pull::Progress) + Sync),
) -> Result<crate::pull::Pulled> {
    let store = ImageStore::open(engine.root())?;
    let pulled = crate::pull::pull(&store, &engine.config.registry, req, progress)?;
    image_event(engine, "pull", &pulled.image, &pulled.reference);
    Ok(pulled)
}

/// An all-tags `pull` through the engine, with a `pull` event per tag.
pub fn pull_all_tags(
    engine: &crate::Engine,
    req: &crate::pull::PullRequest,
    progress: &(dyn Fn(crate::pull::Progress) + Sync),
) -> Result<crate::pull::PulledAll> {
    let store = ImageStore::open(engine.root())?;
    let pulled = crate::pull::pull_all_tags(&store, &engine.config.registry, req, progress)?;
    for p in &pulled.tags {
        image_event(engine, "pull", &p.image, &p.reference);
    }
    Ok(pulled)
}

/// An all-tags `push` through the engine, with a `push` event per tag.
pub fn push_all_tags(
    engine: &crate::Engine,
    req: &crate::push::PushRequest,
    progress: &(dyn Fn(crate::pull::Progress) + Sync),
) -> Result<Vec<crate::push::Pushed>> {
    let store = ImageStore::open(engine.root())?;
    let pushed = crate::push::push_all_tags(&store, &engine.config.registry, req, progress)?;
    for p in &pushed {
        let tagged = format!("{}:{}", req.reference, p.tag);
        if let Ok(img) = store.find(&tagged) {
            image_event(engine, "push", &img, &normalize(&tagged)?);
        }
    }
    Ok(pushed)
}

/// `push` through the engine, with its `push` event.
pub fn push(
    engine: &crate::Engine,
    req: &crate::push::PushRequest,
    progress: &(dyn Fn(crate::pull::Progress) + Sync),
) -> Result<crate::push::Pushed> {
    let store = ImageStore::open(engine.root())?;
    let pushed = crate::push::push(&store, &engine.config.registry, req, progress)?;
    if let Ok(img) = store.find(&req.reference) {
        image_event(engine, "push", &img, &normalize(&req.reference)?);
    }
    Ok(pushed)
}

/// `tag` through the engine, with its `tag` event.
pub fn tag(engine: &crate::Engine, source: &str, target: &str) -> Result<()> {
    let store = ImageStore::open(engine.root())?;
    store.tag(source, target)?;
    let img = store.find(target)?;
    image_event(engine, "tag", &img, &normalize(target)?);
    Ok(())
}

/// `rmi` through the engine: refused while a container uses the image (decided under the
/// store's lock); Docker's `Untagged:` / `Deleted:` lines, with `untag` / `delete` events.
pub fn remove(engine: &crate::Engine, key: &str) -> Result<Vec<String>> {
    let store = ImageStore::open(engine.root())?;
    let img = store.find(key)?;
    let in_use = |id: &str| {
        engine
            .containers
            .all()
            .map_or(true, |all| all.iter().any(|c| c.config.image == id))
    };
    let lines = store.remove(key, in_use)?;
    for line in &lines {
        match line.split_once(": ") {
            Some(("Untagged", tag)) => image_event(engine, "untag", &img, tag),
            Some(("Deleted", id)) if id == format!("sha256:{}", img.id) => {
                image_event(engine, "delete", &img, id)
            }
            _ => {}
        }
    }
    Ok(lines)
}

fn image_event(engine: &crate::Engine, action: &str, img: &Image, name: &str) {
    let id = format!("sha256:{}", img.id);
    crate::events::record(engine, "image", action, &id, &[("name", name)]);
}

/// One row of `image history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEntry {
    /// The image's ID on its top row, `<missing>` below.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// The step that made it.
    pub created_by: String,
    /// The bytes its layer holds (0 for a step without one).
    pub size: u64,
    /// Its comment.
    pub comment: String,
}

/// `image history`: the steps of the image's config, newest first, each with its layer's
/// size.
pub fn history(store: &ImageStore, img: &Image) -> Result<Vec<HistoryEntry>> {
    #[derive(Deserialize, Default)]
    struct Step {
        #[serde(default)]
        created: String,
        #[serde(default)]
        created_by: String,
        #[serde(default)]
        comment: String,
        #[serde(default)]
        empty_layer: bool,
    }
    #[derive(Deserialize, Default)]
    struct Doc {
        #[serde(default)]
        history: Vec<Step>,
    }
    let doc: Doc = serde_json::from_slice(&store.config_document(img)?).unwrap_or_default();
    let mut steps = doc.history;
    if steps.is_empty() {
        steps = img
            .layers
            .iter()
            .map(|_| Step {
                created: img.created.clone(),
                ..Step::default()
            })
            .collect();
    }
    let mut layers = img.layers.iter();
    let mut rows: Vec<HistoryEntry> = steps
        .into_iter()
        .map(|s| {
            let size = match s.empty_layer {
                true => 0,
                false => layers.next().map_or(0, |l| store.layers.size(l)),
            };
            HistoryEntry {
                id: "<missing>".into(),
                created: s.created,
                created_by: s.created_by,
                size,
                comment: s.comment,
            }
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = format!("sha256:{}", img.id);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_docker() {
        assert_eq!(normalize("busybox").unwrap(), "busybox:latest");
        assert_eq!(
            normalize("docker.io/library/busybox:1.36").unwrap(),
            "busybox:1.36"
        );
        assert_eq!(
            normalize("localhost:5000/x/y").unwrap(),
            "localhost:5000/x/y:latest"
        );
        for bad in ["", "Busy", ":tag", "a b"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_configs_read_docker_and_oci_shapes() {
        let c: ImageConfig = serde_json::from_value(serde_json::json!({
            "Cmd": null, "Entrypoint": ["/bin/sh", "-c"], "Env": ["A=1"], "WorkingDir": "/w",
            "ExposedPorts": {"80/tcp": {}}, "Labels": {"x": "y"}, "StopSignal": "SIGQUIT",
            "OnBuild": null
        }))
        .unwrap();
        assert!(c.cmd.is_empty());
        assert_eq!(c.entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        assert!(c.exposed_ports.contains_key("80/tcp"));
        assert_eq!(c.labels.get("x").map(String::as_str), Some("y"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert!(
            c.other.contains_key("OnBuild"),
            "the rest is kept for inspect"
        );
    }

    #[test]
    fn imported_images_resolve_by_tag_and_short_id_and_tags_move() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::write(rootfs.join("bin/hello"), "v1").unwrap();
        let store = ImageStore::open(&dir.path().join("root")).unwrap();
        let a = store.import(&rootfs, Some("hello"), &[]).unwrap();
        assert_eq!(store.find("hello:latest").unwrap().id, a.id);
        assert_eq!(store.find(&a.id[..12]).unwrap().id, a.id);
        fs::write(rootfs.join("bin/hello"), "v2").unwrap();
        let b = store.import(&rootfs, Some("hello"), &[]).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(store.find("hello").unwrap().id, b.id);
        assert!(store.find(&a.id).unwrap().tags.is_empty());
        assert!(store.find("nothere").is_err());
    }

    #[test]
    fn removing_the_last_tag_deletes_the_image_and_its_layers() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        fs::write(rootfs.join("f"), "x").unwrap();
        let store = ImageStore::open(&dir.path().join("root")).unwrap();
        store.import(&rootfs, Some("x"), &[]).unwrap();
        assert!(store.remove("x", |_| true).is_err());
        let out = store.remove("x", |_| false).unwrap();
        assert_eq!(out[0], "Untagged: x:latest");
        assert!(store.all().unwrap().is_empty());
        let layers = dir.path().join("root/image/layers");
        assert_eq!(fs::read_dir(layers).unwrap().count(), 0);
        let records = dir.path().join("root/image/layers-records");
        assert_eq!(fs::read_dir(records).unwrap().count(), 0);
    }
}
