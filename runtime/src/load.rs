//! `netctl load -i FILE`: a `docker save` archive (manifest.json) or an OCI image layout
//! archive (index.json), plain or gzip, with several layers and the image config.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::archive::{Beneath, Members};
use crate::image::{normalize, string_list as strings, Image, ImageStore, NewImage};
use crate::layer::{decompressed, sha256_hex};

/// The largest manifest, index or image config read (real ones are a few KiB).
const MAX_JSON: u64 = 8 << 20;

/// Loads every image of the archive and returns them. The archive is data: it is unpacked
/// with files, folders and links between its members only, and every member named by a
/// manifest is read beneath the unpacked folder, never through a link that leads out.
pub fn load(store: &ImageStore, archive: &Path) -> anyhow::Result<Vec<Image>> {
    let scratch = store.scratch()?;
    let file = fs::File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    crate::archive::unpack(decompressed(file)?, scratch.path(), Members::Data)
        .with_context(|| format!("unpack {}", archive.display()))?;
    let dir = Beneath::open(scratch.path())?;
    let mut loading = Loading {
        store,
        dir,
        added: Vec::new(),
    };
    let result = if loading
        .dir
        .open_file("manifest.json", Some(MAX_JSON))
        .is_ok()
    {
        loading.docker_archive()
    } else if loading.dir.open_file("index.json", Some(MAX_JSON)).is_ok() {
        loading.oci_layout()
    } else {
        Err(anyhow::anyhow!(
            "{}: neither a `docker save` archive (manifest.json) nor an OCI layout (index.json)",
            archive.display()
        ))
    };
    if result.is_err() {
        let used: Vec<String> = store.all()?.into_iter().flat_map(|i| i.layers).collect();
        store.layers.forget(&loading.added, &used);
    }
    result
}

/// One load in progress: the unpacked archive and the layers it stored so far (removed
/// again when the load fails).
struct Loading<'a> {
    store: &'a ImageStore,
    dir: Beneath,
    added: Vec<String>,
}

/// The bytes of a JSON member (at most [`MAX_JSON`]).
fn read_bytes(dir: &Beneath, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    dir.open_file(name, Some(MAX_JSON))
        .and_then(|f| f.take(MAX_JSON).read_to_end(&mut bytes))
        .with_context(|| format!("read {name} in the archive"))?;
    Ok(bytes)
}

fn read_json(dir: &Beneath, name: &str) -> anyhow::Result<Value> {
    serde_json::from_slice(&read_bytes(dir, name)?).with_context(|| format!("parse {name}"))
}

impl Loading<'_> {
    fn docker_archive(&mut self) -> anyhow::Result<Vec<Image>> {
        let manifest = read_json(&self.dir, "manifest.json")?;
        let entries = manifest.as_array().context("manifest.json is not a list")?;
        let mut out = Vec::new();
        for m in entries {
            let config_name = m
                .get("Config")
                .and_then(Value::as_str)
                .context("manifest entry without Config")?;
            let config = read_json(&self.dir, config_name)?;
            let tags = strings(m.get("RepoTags"))
                .iter()
                .map(|t| normalize(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let layers = strings(m.get("Layers"))
                .iter()
                .map(|l| self.add_layer(l))
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.push(finish(self.store, config, layers, tags)?);
        }
        Ok(out)
    }

    fn add_layer(&mut self, name: &str) -> anyhow::Result<String> {
        let f = self
            .dir
            .open_file(name, None)
            .with_context(|| format!("open layer {name}"))?;
        let (hex, new) = self.store.layers.add(f)?;
        if new {
            self.added.push(hex.clone());
        }
        Ok(hex)
    }

    fn oci_layout(&mut self) -> anyhow::Result<Vec<Image>> {
        let index = read_json(&self.dir, "index.json")?;
        let mut out = Vec::new();
        for desc in index
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // `org.opencontainers.image.ref.name` is often just a tag ("latest"): only a full
            // reference names the image.
            let tag = desc
                .pointer("/annotations/io.containerd.image.name")
                .or_else(|| desc.pointer("/annotations/org.opencontainers.image.ref.name"))
                .and_then(Value::as_str)
                .filter(|r| r.contains(':') || r.contains('/'))
                .map(normalize)
                .transpose()?;
            let manifest = resolve_manifest(&self.dir, desc, 0)?;
            let config_digest = manifest
                .pointer("/config/digest")
                .and_then(Value::as_str)
                .context("OCI manifest without a config")?;
            let config_bytes = read_bytes(&self.dir, &blob(config_digest)?)?;
            if format!("sha256:{}", sha256_hex(&config_bytes)) != config_digest {
                bail!(
                    "config blob {config_digest} does not match its digest: the archive is damaged"
                );
            }
            let config = serde_json::from_slice(&config_bytes)?;
            let layers = manifest
                .get("layers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|l| {
                    self.add_layer(&blob(
                        l.get("digest").and_then(Value::as_str).unwrap_or(""),
                    )?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.push(finish(
                self.store,
                config,
                layers,
                tag.into_iter().collect(),
            )?);
        }
        Ok(out)
    }
}

/// Checks the config's diff IDs against the layers and stores the image.
fn finish(
    store: &ImageStore,
    config: Value,
    layers: Vec<String>,
    tags: Vec<String>,
) -> anyhow::Result<Image> {
    let want: Vec<String> = strings(config.pointer("/rootfs/diff_ids"))
        .iter()
        .map(|d| d.trim_start_matches("sha256:").to_string())
        .collect();
    if !want.is_empty() && want != layers {
        bail!("the layers do not match the image config's diff_ids: the archive is damaged");
    }
    store.add(NewImage {
        config,
        layers,
        tags,
    })
}

/// The member name of a blob: `blobs/sha256/<64 hex>`.
fn blob(digest: &str) -> anyhow::Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("digest {digest:?} is not sha256:<64 hex digits>"))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Follows an image index down to one manifest, preferring linux/amd64.
fn resolve_manifest(dir: &Beneath, desc: &Value, depth: usize) -> anyhow::Result<Value> {
    if depth > 4 {
        bail!("OCI index nesting is too deep");
    }
    let digest = desc
        .get("digest")
        .and_then(Value::as_str)
        .context("descriptor without digest")?;
    let doc = read_json(dir, &blob(digest)?)?;
    let Some(manifests) = doc.get("manifests").and_then(Value::as_array) else {
        return Ok(doc);
    };
    let pick = manifests
        .iter()
        .find(|m| {
            m.pointer("/platform/architecture").and_then(Value::as_str) == Some("amd64")
                && m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
        })
        .or_else(|| manifests.first())
        .context("empty OCI index")?;
    resolve_manifest(dir, pick, depth + 1)
}
