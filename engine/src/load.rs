//! `load`: a `docker save` archive (manifest.json) or an OCI image layout archive
//! (index.json), plain or gzip, with several layers and the image config.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::archive::{Beneath, Members};
use crate::error::{invalid, Context, Error, Result};
use crate::image::{normalize, Image, ImageStore, NewImage};
use crate::layer::{decompressed, sha256_hex};

/// The largest manifest, index or image config read (real ones are a few KiB).
const MAX_JSON: u64 = 8 << 20;

/// One image of a `docker save` manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// An OCI descriptor (of a manifest, an index, a config or a layer).
#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// An OCI index or manifest: an index lists manifests, a manifest a config and layers.
#[derive(Deserialize)]
struct OciDoc {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// What load checks in an image config: the layers it expects.
#[derive(Default, Deserialize)]
struct ConfigRootfs {
    #[serde(default)]
    rootfs: Option<DiffIds>,
}

#[derive(Default, Deserialize)]
struct DiffIds {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Loads every image of the archive and returns them. The archive is data: it is unpacked
/// with files, folders and links between its members only, and every member named by a
/// manifest is read beneath the unpacked folder, never through a link that leads out. A
/// failed load forgets the layers it stored.
pub fn load(store: &ImageStore, archive: &Path) -> Result<Vec<Image>> {
    let _adding = store.lock_for_adding()?;
    let scratch = store.scratch()?;
    let file = fs::File::open(archive).ctx(|| format!("open {}", archive.display()))?;
    let reader = decompressed(file)
        .map_err(|e| crate::archive::archive_error(e, || "the image archive".into()))?;
    crate::archive::unpack(reader, scratch.path(), Members::Data)
        .map_err(|e| crate::archive::archive_error(e, || "the image archive".into()))?;
    let dir = Beneath::open(scratch.path()).ctx(|| "open the unpacked archive".into())?;
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
        Err(Error::Invalid(format!(
            "{}: neither a `docker save` archive (manifest.json) nor an OCI layout (index.json)",
            archive.display()
        )))
    };
    if result.is_err() {
        let used: Vec<String> = store.all()?.into_iter().flat_map(|i| i.layers).collect();
        store.layers.forget(&loading.added, &used);
    }
    result
}

/// One load in progress: the unpacked archive and the layers it stored so far.
struct Loading<'a> {
    store: &'a ImageStore,
    dir: Beneath,
    added: Vec<String>,
}

/// The bytes of a JSON member (at most [`MAX_JSON`]).
fn read_bytes(dir: &Beneath, name: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    dir.open_file(name, Some(MAX_JSON))
        .and_then(|f| f.take(MAX_JSON).read_to_end(&mut bytes))
        .ctx(|| format!("read {name} in the archive"))?;
    Ok(bytes)
}

fn read_json<T: DeserializeOwned>(dir: &Beneath, name: &str) -> Result<T> {
    serde_json::from_slice(&read_bytes(dir, name)?).ctx(|| format!("parse {name}"))
}

/// The member name of a blob: `blobs/sha256/<64 hex>`.
fn blob(digest: &str) -> Result<String> {
    let Some(hex) = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        invalid!("digest {digest:?} is not sha256:<64 hex digits>");
    };
    Ok(format!("blobs/sha256/{hex}"))
}

impl Loading<'_> {
    fn docker_archive(&mut self) -> Result<Vec<Image>> {
        let entries: Vec<DockerEntry> = read_json(&self.dir, "manifest.json")?;
        let mut out = Vec::new();
        for m in entries {
            let config = read_bytes(&self.dir, &m.config)?;
            let tags = m
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| normalize(t))
                .collect::<Result<Vec<_>>>()?;
            let layers = m
                .layers
                .iter()
                .map(|l| self.add_layer(l))
                .collect::<Result<Vec<_>>>()?;
            out.push(finish(self.store, config, layers, tags)?);
        }
        Ok(out)
    }

    fn add_layer(&mut self, name: &str) -> Result<String> {
        let f = self
            .dir
            .open_file(name, None)
            .ctx(|| format!("open layer {name}"))?;
        let (hex, new) = self.store.layers.add(f)?;
        if new {
            self.added.push(hex.clone());
        }
        Ok(hex)
    }

    fn oci_layout(&mut self) -> Result<Vec<Image>> {
        let index: OciDoc = read_json(&self.dir, "index.json")?;
        let mut out = Vec::new();
        for desc in index.manifests.unwrap_or_default() {
            // `org.opencontainers.image.ref.name` is often just a tag ("latest"): only a full
            // reference names the image.
            let tag = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"))
                .filter(|r| r.contains(':') || r.contains('/'))
                .map(|r| normalize(r))
                .transpose()?;
            let manifest = resolve_manifest(&self.dir, &desc, 0)?;
            let Some(config) = manifest.config else {
                invalid!("OCI manifest {} has no config", desc.digest);
            };
            let config_bytes = read_bytes(&self.dir, &blob(&config.digest)?)?;
            if format!("sha256:{}", sha256_hex(&config_bytes)) != config.digest {
                invalid!(
                    "config blob {} does not match its digest: the archive is damaged",
                    config.digest
                );
            }
            let layers = manifest
                .layers
                .iter()
                .map(|l| self.add_layer(&blob(&l.digest)?))
                .collect::<Result<Vec<_>>>()?;
            out.push(finish(
                self.store,
                config_bytes,
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
    config: Vec<u8>,
    layers: Vec<String>,
    tags: Vec<String>,
) -> Result<Image> {
    let expected: ConfigRootfs =
        serde_json::from_slice(&config).ctx(|| "parse the image config".into())?;
    let want: Vec<&str> = expected
        .rootfs
        .as_ref()
        .map(|r| {
            r.diff_ids
                .iter()
                .map(|d| d.trim_start_matches("sha256:"))
                .collect()
        })
        .unwrap_or_default();
    if !want.is_empty() && want != layers {
        invalid!("the layers do not match the image config's diff_ids: the archive is damaged");
    }
    store.add(NewImage {
        config,
        layers,
        tags,
        parent: String::new(),
    })
}

/// Follows an image index down to one manifest, preferring linux/amd64.
fn resolve_manifest(dir: &Beneath, desc: &Descriptor, depth: usize) -> Result<OciDoc> {
    if depth > 4 {
        invalid!("OCI index nesting is too deep");
    }
    let doc: OciDoc = read_json(dir, &blob(&desc.digest)?)?;
    let Some(manifests) = &doc.manifests else {
        return Ok(doc);
    };
    let pick = manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == "amd64" && p.os == "linux")
        })
        .or_else(|| manifests.first());
    match pick {
        Some(m) => resolve_manifest(dir, m, depth + 1),
        None => invalid!("empty OCI index {}", desc.digest),
    }
}
