//! `save`: images as Docker's archive (`docker load` and `netctl load` read it):
//! `manifest.json`, each image's config document, `repositories`, and each layer as
//! `<diff ID>/layer.tar`: byte for byte the tar the layer came as (from its record,
//! [`crate::tarsplit`]), so the image keeps its ID through `save | load`. A layer without a
//! usable record is written anew from its files (overlay whiteouts as `.wh.` members) and
//! the config document names the new tar's digest, so the archive is consistent (the image
//! gets a new ID there).

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::archive::{append_tree, Tree};
use crate::error::{Context, Result};
use crate::image::{Image, ImageStore};

/// The images `save` writes for `keys`, each with the tags it was named by (an ID or a
/// name without its tag names every tag of its image), each image once.
pub fn selection(store: &ImageStore, keys: &[String]) -> Result<Vec<(Image, Vec<String>)>> {
    let mut images: Vec<(Image, Vec<String>)> = Vec::new();
    for key in keys {
        let img = store.find(key)?;
        let tags = match crate::image::normalize(key) {
            Ok(t) if img.tags.contains(&t) => vec![t],
            _ => img.tags.clone(),
        };
        match images.iter_mut().find(|(i, _)| i.id == img.id) {
            Some((_, have)) => {
                for t in tags {
                    if !have.contains(&t) {
                        have.push(t);
                    }
                }
            }
            None => images.push((img, tags)),
        }
    }
    Ok(images)
}

/// Writes `images` (with the references they were named by) to `out` as a Docker archive.
pub fn save(store: &ImageStore, images: &[(Image, Vec<String>)], out: impl Write) -> Result<()> {
    let _reading = store.lock(false)?;
    let mut archive = tar::Builder::new(out);
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (img, tags) in images {
        let mut digests = Vec::new();
        for diff in &img.layers {
            let digest = match written.get(diff) {
                Some(d) => d.clone(),
                None => {
                    let d = add_layer(&mut archive, store, diff)?;
                    written.insert(diff.clone(), d.clone());
                    d
                }
            };
            digests.push(digest);
        }
        let config = config_for(store, img, &digests)?;
        let config_id = crate::layer::sha256_hex(&config);
        add_file(&mut archive, &format!("{config_id}.json"), &config)?;
        let layers: Vec<String> = digests.iter().map(|d| format!("{d}/layer.tar")).collect();
        manifest.push(
            json!({"Config": format!("{config_id}.json"), "RepoTags": tags, "Layers": layers}),
        );
        if let Some(top) = digests.last() {
            for t in tags {
                if let Some((repo, tag)) = t.rsplit_once(':') {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string(), top.clone());
                }
            }
        }
    }
    let encode = |v: &Value| serde_json::to_vec(v).ctx(|| "encode the archive's index".into());
    add_file(&mut archive, "manifest.json", &encode(&json!(manifest))?)?;
    add_file(&mut archive, "repositories", &encode(&json!(repositories))?)?;
    archive
        .into_inner()
        .and_then(|mut w| w.flush())
        .ctx(|| "write the archive".into())
}

/// The image's config document, naming `digests` as its layers' diff IDs.
pub(crate) fn config_for(store: &ImageStore, img: &Image, digests: &[String]) -> Result<Vec<u8>> {
    let original = store.config_document(img)?;
    if digests == img.layers.as_slice() {
        return Ok(original);
    }
    let mut doc: Value =
        serde_json::from_slice(&original).ctx(|| "parse the image config".into())?;
    let ids: Vec<String> = digests.iter().map(|d| format!("sha256:{d}")).collect();
    doc["rootfs"] = json!({"type": "layers", "diff_ids": ids});
    serde_json::to_vec(&doc).ctx(|| "encode the image config".into())
}

/// Writes a stored layer as `<digest>/layer.tar` (built in a scratch file first, for its
/// digest and size); the digest.
fn add_layer(
    archive: &mut tar::Builder<impl Write>,
    store: &ImageStore,
    diff: &str,
) -> Result<String> {
    let (scratch, digest, size) = layer_tar(store, diff)?;
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    archive
        .append_data(&mut h, format!("{digest}/layer.tar"), scratch)
        .ctx(|| "write a layer".into())?;
    add_file(archive, &format!("{digest}/VERSION"), b"1.0")?;
    Ok(digest)
}

/// A stored layer as a tar in a rewound scratch file, with its digest and size: byte for
/// byte the tar it came as, from its record, or else written anew from its files.
pub(crate) fn layer_tar(store: &ImageStore, diff: &str) -> Result<(std::fs::File, String, u64)> {
    let dir = store.layers.path(diff);
    let scratch_file = || tempfile::tempfile().ctx(|| "make a scratch file for a layer".into());
    let mut scratch = scratch_file()?;
    let exact = match crate::tarsplit::rebuild(&store.layers.record_path(diff), &dir, &mut scratch)
    {
        Ok(()) => Some(digest(&mut scratch)?).filter(|(d, _)| d == diff),
        Err(_) => None,
    };
    let (digest, size) = match exact {
        Some(found) => found,
        None => {
            scratch = scratch_file()?;
            write_tree(&mut scratch, &dir)?;
            digest(&mut scratch)?
        }
    };
    Ok((scratch, digest, size))
}

/// A layer written anew from its files, overlay whiteouts as `.wh.` members.
fn write_tree(out: &mut std::fs::File, dir: &Path) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let opts = Tree {
        overlay: true,
        ..Tree::default()
    };
    let mut entries = std::fs::read_dir(dir)
        .ctx(|| format!("list {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .ctx(|| format!("list {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        append_tree(&mut b, &e.path(), Path::new(&e.file_name()), &opts)
            .ctx(|| format!("archive {}", e.path().display()))?;
    }
    b.into_inner().ctx(|| "finish a layer".into())?;
    Ok(())
}

/// The SHA-256 (hex) and size of a scratch file, which is left rewound.
fn digest(scratch: &mut std::fs::File) -> Result<(String, u64)> {
    scratch.rewind().ctx(|| "read a layer back".into())?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = scratch.read(&mut buf).ctx(|| "read a layer back".into())?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    scratch.rewind().ctx(|| "read a layer back".into())?;
    Ok((crate::ids::hex(&hash.finalize()), size))
}

fn add_file(archive: &mut tar::Builder<impl Write>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    archive
        .append_data(&mut h, name, bytes)
        .ctx(|| format!("write {name}"))
}
