//! The image store: `<root>/image/images/<id>.json` records (tags, layers bottom first, the
//! config's Cmd/Entrypoint/Env/WorkingDir) over the immutable layers of [`LayerStore`].

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use netctl_cni::fsutil;
use serde_json::{json, Value};

use crate::clock::now_rfc3339;
use crate::layer::{self, LayerStore};

/// One image.
#[derive(Debug, Clone)]
pub struct Image {
    /// 64 hex (the SHA-256 of its config).
    pub id: String,
    /// `name:tag` references, normalised.
    pub tags: Vec<String>,
    /// Layer diff IDs, bottom first.
    pub layers: Vec<String>,
    /// The record as stored.
    pub record: Value,
}

impl Image {
    /// A field of the image's runtime config (`Cmd`, `Entrypoint`, `Env`, `WorkingDir`).
    pub fn config(&self, key: &str) -> Option<&Value> {
        self.record.pointer(&format!("/Config/{key}"))
    }

    /// A list field of the runtime config as strings.
    pub fn config_list(&self, key: &str) -> Vec<String> {
        string_list(self.config(key))
    }

    /// When it was created.
    pub fn created(&self) -> &str {
        self.record
            .get("Created")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The name it is shown by: its first tag, or its short ID.
    pub fn display_name(&self) -> String {
        self.tags
            .first()
            .cloned()
            .unwrap_or_else(|| self.id[..12].to_string())
    }
}

/// The strings of a JSON list (none when it is missing or not a list).
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `docker.io/library/busybox` -> `busybox`, a missing tag -> `:latest`.
pub fn normalize(reference: &str) -> anyhow::Result<String> {
    let r = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    let valid = !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !r.starts_with(['/', ':', '.', '-']);
    if !valid || r.chars().any(|c| c.is_ascii_uppercase()) {
        bail!(
            "invalid reference format: {reference:?} (use [registry/][repo/]name[:tag], lowercase)"
        );
    }
    let name_end = r.rfind('/').map_or(0, |i| i + 1);
    Ok(if r[name_end..].contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    })
}

/// Images and layers under `<root>/image`.
pub struct ImageStore {
    dir: PathBuf,
    /// The layers below every image.
    pub layers: LayerStore,
}

/// What a new image is made of.
pub struct NewImage {
    /// The image config JSON (its hash is the image ID).
    pub config: Value,
    /// Diff IDs, bottom first.
    pub layers: Vec<String>,
    /// References to point at it.
    pub tags: Vec<String>,
}

impl ImageStore {
    /// The store under `root`, created if missing.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let dir = root.join("image");
        let images = dir.join("images");
        fs::create_dir_all(&images).with_context(|| format!("create {}", images.display()))?;
        Ok(Self {
            layers: LayerStore::open(dir.join("layers"))?,
            dir,
        })
    }

    /// A scratch folder for unpacking archives, removed by the caller.
    pub fn scratch(&self) -> anyhow::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(".scratch-")
            .tempdir_in(&self.dir)
            .context("create a scratch folder")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join("images").join(format!("{id}.json"))
    }

    /// Every image, newest first.
    pub fn all(&self) -> anyhow::Result<Vec<Image>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.dir.join("images"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(read_image(&path)?);
            }
        }
        out.sort_by(|a, b| b.created().cmp(a.created()));
        Ok(out)
    }

    /// The image a reference or (a unique prefix of) an ID names.
    pub fn find(&self, key: &str) -> anyhow::Result<Image> {
        let all = self.all()?;
        if let Ok(tag) = normalize(key) {
            if let Some(i) = all.iter().find(|i| i.tags.contains(&tag)) {
                return Ok(i.clone());
            }
        }
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        let by_id: Vec<&Image> = if hex.len() >= 3 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            all.iter().filter(|i| i.id.starts_with(hex)).collect()
        } else {
            Vec::new()
        };
        match by_id.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("Unable to find image '{key}' locally (import one with `netctl image import` or `netctl load`)"),
            _ => bail!("image ID prefix {key:?} is ambiguous; give more characters"),
        }
    }

    /// Stores an image record and moves its tags to it from any older image.
    pub fn add(&self, new: NewImage) -> anyhow::Result<Image> {
        let config_bytes = serde_json::to_vec(&new.config)?;
        let id = layer::sha256_hex(&config_bytes);
        let mut tags = new.tags;
        if let Ok(existing) = read_image(&self.record_path(&id)) {
            tags.extend(
                existing
                    .tags
                    .into_iter()
                    .filter(|t| !tags.contains(t))
                    .collect::<Vec<_>>(),
            );
        }
        self.take_tags(&tags, &id)?;
        let size: u64 = new.layers.iter().map(|l| self.layers.size(l)).sum();
        let c = &new.config;
        let record = json!({
            "Id": format!("sha256:{id}"), "RepoTags": tags, "Layers": new.layers,
            "Created": c.get("created").cloned().unwrap_or_else(|| json!(now_rfc3339())),
            "Size": size,
            "Config": c.get("config").cloned().unwrap_or(json!({})),
            "Architecture": c.get("architecture").cloned().unwrap_or(json!("amd64")),
            "Os": c.get("os").cloned().unwrap_or(json!("linux")),
        });
        self.write(&id, &record)?;
        read_image(&self.record_path(&id))
    }

    fn write(&self, id: &str, record: &Value) -> anyhow::Result<()> {
        let path = self.record_path(id);
        fsutil::write_atomic(&path, &serde_json::to_vec_pretty(record)?)
            .with_context(|| format!("write {}", path.display()))
    }

    /// `tag SOURCE TARGET`: TARGET names the image SOURCE names (moved from any other).
    pub fn tag(&self, source: &str, target: &str) -> anyhow::Result<()> {
        let mut img = self.find(source)?;
        let target = normalize(target)?;
        self.take_tags(std::slice::from_ref(&target), &img.id)?;
        if !img.tags.contains(&target) {
            img.tags.push(target);
            self.save_tags(&mut img)?;
        }
        Ok(())
    }

    /// Takes `tags` away from every image but `keep` (a tag names one image).
    fn take_tags(&self, tags: &[String], keep: &str) -> anyhow::Result<()> {
        for mut other in self.all()? {
            if other.id != keep && other.tags.iter().any(|t| tags.contains(t)) {
                other.tags.retain(|t| !tags.contains(t));
                self.save_tags(&mut other)?;
            }
        }
        Ok(())
    }

    fn save_tags(&self, img: &mut Image) -> anyhow::Result<()> {
        img.record["RepoTags"] = json!(img.tags);
        self.write(&img.id, &img.record)
    }

    /// Untags `key`, and deletes the image once no tag is left (or when `key` is its ID).
    /// Returns Docker's `Untagged:` / `Deleted:` lines.
    pub fn remove(&self, key: &str, in_use: impl Fn(&str) -> bool) -> anyhow::Result<Vec<String>> {
        let mut img = self.find(key)?;
        let mut out = Vec::new();
        let by_tag = normalize(key).ok().filter(|t| img.tags.contains(t));
        if let Some(tag) = &by_tag {
            if img.tags.len() > 1 {
                img.tags.retain(|t| t != tag);
                self.save_tags(&mut img)?;
                return Ok(vec![format!("Untagged: {tag}")]);
            }
        }
        if in_use(&img.id) {
            bail!(
                "conflict: unable to remove image {} ({}): a container uses it; remove the container first",
                img.display_name(),
                &img.id[..12]
            );
        }
        out.extend(img.tags.iter().map(|t| format!("Untagged: {t}")));
        fs::remove_file(self.record_path(&img.id))?;
        out.push(format!("Deleted: sha256:{}", img.id));
        let used: Vec<String> = self.all()?.into_iter().flat_map(|i| i.layers).collect();
        self.layers.prune(&used)?;
        Ok(out)
    }

    /// `image import`: a rootfs folder or tarball (plain or gzip) as a one-layer image.
    pub fn import(&self, source: &Path, tag: Option<&str>) -> anyhow::Result<Image> {
        let diff = if source.is_dir() {
            let scratch = self.scratch()?;
            let tar = scratch.path().join("layer.tar");
            layer::tar_dir(source, &tar)?;
            self.layers.add(fs::File::open(&tar)?)?.0
        } else {
            let f = fs::File::open(source).with_context(|| {
                format!("open {}: give a rootfs tarball or folder", source.display())
            })?;
            self.layers.add(f)?.0
        };
        let config = json!({
            "architecture": "amd64", "os": "linux", "created": now_rfc3339(),
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff}")]},
        });
        let tags = tag.map(normalize).transpose()?.into_iter().collect();
        self.add(NewImage {
            config,
            layers: vec![diff],
            tags,
        })
    }
}

fn read_image(path: &Path) -> anyhow::Result<Image> {
    let mut s = String::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .with_context(|| format!("read {}", path.display()))?;
    let record: Value =
        serde_json::from_str(&s).with_context(|| format!("parse {}", path.display()))?;
    let strings = |k: &str| string_list(record.get(k));
    let id = record
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches("sha256:")
        .to_string();
    if id.len() != 64 {
        bail!("{} has no image ID; remove it", path.display());
    }
    Ok(Image {
        id,
        tags: strings("RepoTags"),
        layers: strings("Layers"),
        record,
    })
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
    fn imported_images_resolve_by_tag_and_short_id_and_tags_move() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::write(rootfs.join("bin/hello"), "v1").unwrap();
        let store = ImageStore::open(&dir.path().join("root")).unwrap();
        let a = store.import(&rootfs, Some("hello")).unwrap();
        assert_eq!(store.find("hello:latest").unwrap().id, a.id);
        assert_eq!(store.find(&a.id[..12]).unwrap().id, a.id);
        fs::write(rootfs.join("bin/hello"), "v2").unwrap();
        let b = store.import(&rootfs, Some("hello")).unwrap();
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
        store.import(&rootfs, Some("x")).unwrap();
        assert!(store.remove("x", |_| true).is_err());
        let out = store.remove("x", |_| false).unwrap();
        assert_eq!(out[0], "Untagged: x:latest");
        assert!(store.all().unwrap().is_empty());
        let layers = dir.path().join("root/image/layers");
        assert_eq!(fs::read_dir(layers).unwrap().count(), 0);
    }
}
