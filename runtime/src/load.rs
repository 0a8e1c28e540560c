//! `netctl load -i FILE`: a `docker save` archive (manifest.json) or an OCI image layout
//! archive (index.json), plain or gzip, with several layers and the image config.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::image::{normalize, string_list as strings, Image, ImageStore, NewImage};
use crate::layer::{decompressed, sha256_hex};

/// Loads every image of the archive and returns them.
pub fn load(store: &ImageStore, archive: &Path) -> anyhow::Result<Vec<Image>> {
    let scratch = store.scratch()?;
    let file = fs::File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    tar::Archive::new(decompressed(file)?)
        .unpack(scratch.path())
        .with_context(|| format!("{} is not a tar archive", archive.display()))?;
    let dir = scratch.path();
    if dir.join("manifest.json").is_file() {
        docker_archive(store, dir)
    } else if dir.join("index.json").is_file() {
        oci_layout(store, dir)
    } else {
        bail!(
            "{}: neither a `docker save` archive (manifest.json) nor an OCI layout (index.json)",
            archive.display()
        )
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes =
        fs::read(path).with_context(|| format!("read {} in the archive", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// A path inside the archive folder; names leaving it are refused.
fn inside(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    if name.split('/').any(|c| c == "..") || name.starts_with('/') {
        bail!("archive entry {name:?} points outside the archive");
    }
    Ok(dir.join(name))
}

fn docker_archive(store: &ImageStore, dir: &Path) -> anyhow::Result<Vec<Image>> {
    let manifest = read_json(&dir.join("manifest.json"))?;
    let entries = manifest.as_array().context("manifest.json is not a list")?;
    let mut out = Vec::new();
    for m in entries {
        let config_name = m
            .get("Config")
            .and_then(Value::as_str)
            .context("manifest entry without Config")?;
        let layers = strings(m.get("Layers"))
            .iter()
            .map(|l| add_layer(store, &inside(dir, l)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tags = strings(m.get("RepoTags"))
            .iter()
            .map(|t| normalize(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = read_json(&inside(dir, config_name)?)?;
        out.push(finish(store, config, layers, tags)?);
    }
    Ok(out)
}

fn add_layer(store: &ImageStore, path: &Path) -> anyhow::Result<String> {
    let f = fs::File::open(path).with_context(|| format!("open layer {}", path.display()))?;
    store.layers.add(f)
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

fn blob(dir: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest:?} is not sha256"))?;
    inside(dir, &format!("blobs/sha256/{hex}"))
}

fn oci_layout(store: &ImageStore, dir: &Path) -> anyhow::Result<Vec<Image>> {
    let index = read_json(&dir.join("index.json"))?;
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
        let manifest = resolve_manifest(dir, desc, 0)?;
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .context("OCI manifest without a config")?;
        let config_bytes = fs::read(blob(dir, config_digest)?)?;
        if format!("sha256:{}", sha256_hex(&config_bytes)) != config_digest {
            bail!("config blob {config_digest} does not match its digest: the archive is damaged");
        }
        let layers = manifest
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|l| {
                add_layer(
                    store,
                    &blob(dir, l.get("digest").and_then(Value::as_str).unwrap_or(""))?,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(finish(
            store,
            serde_json::from_slice(&config_bytes)?,
            layers,
            tag.into_iter().collect(),
        )?);
    }
    Ok(out)
}

/// Follows an image index down to one manifest, preferring linux/amd64.
fn resolve_manifest(dir: &Path, desc: &Value, depth: usize) -> anyhow::Result<Value> {
    if depth > 4 {
        bail!("OCI index nesting is too deep");
    }
    let digest = desc
        .get("digest")
        .and_then(Value::as_str)
        .context("descriptor without digest")?;
    let doc = read_json(&blob(dir, digest)?)?;
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
