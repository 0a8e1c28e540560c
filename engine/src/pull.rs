//! `pull`: an image from a registry into the image store. The manifest (an index picks the
//! platform), then the config, then the layers, several at once, each unpacked while it
//! downloads (a dropped connection resumed where it broke) and checked against its blob
//! digest and its diff ID; a layer stored already is not fetched. Only whole, verified
//! layers are kept, so a pull that breaks off leaves no image and a retry fetches only what
//! is missing. Docker Hub references go to its mirrors first; a repository without a tag
//! can be pulled whole (every tag).

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use netctl_registry::manifest::{Compression, Descriptor, ImageManifest, Manifest, Platform};
use netctl_registry::{Credentials, Digest, Options, Reference, Registry};
use serde::Deserialize;

use crate::distribution::{Blob, Distribution};
use crate::error::{Context, Error, Result};
use crate::image::{Image, ImageStore, NewImage};

/// How many layers download at once (Docker's `max-concurrent-downloads`).
const CONCURRENT: usize = 3;
/// The largest image config read.
const MAX_CONFIG: u64 = 8 << 20;
/// How many layers an image may have (Docker's bound is 127 for overlay; a little more).
const MAX_LAYERS: usize = 128;

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// The image reference (`[registry/]repo[:tag][@digest]`).
    pub reference: String,
    /// `os/arch[/variant]`; the host's when empty.
    pub platform: Option<String>,
    /// Credentials for the registry, when not anonymous.
    pub credentials: Option<Credentials>,
}

/// One progress line, as Docker prints them (`a3ed95caeb02: Downloading`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The layer's short digest, or the tag for the first line.
    pub id: String,
    /// `Pulling fs layer`, `Downloading`, `Pull complete` ...
    pub status: String,
    /// Bytes done and the total, while downloading or pushing.
    pub bytes: Option<(u64, u64)>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image.
    pub image: Image,
    /// The reference as Docker shows it (`registry:5000/web:1.2`).
    pub reference: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// Whether anything new was stored (`Downloaded newer image` against `Image is up to
    /// date`).
    pub fresh: bool,
}

impl Pulled {
    /// Docker's closing status: `Downloaded newer image for X` or `Image is up to date
    /// for X`.
    pub fn status(&self) -> String {
        let what = if self.fresh {
            "Downloaded newer image"
        } else {
            "Image is up to date"
        };
        format!("{what} for {}", self.reference)
    }
}

/// Parses a reference and adds `latest` when it names no tag or digest.
pub fn reference(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?.with_default_tag())
}

/// Pulls an image, telling `progress` what happens.
pub fn pull(
    store: &ImageStore,
    options: &Options,
    req: &PullRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pulled> {
    let r = reference(&req.reference)?;
    let platform = platform(req)?;
    let _adding = store.lock_for_adding()?;
    on_endpoints(options, &r, req, |registry| {
        pull_tag(store, registry, &r, &platform, progress)
    })
}

/// Runs `work` against the registry of `r`; for a Docker Hub reference against each of
/// Docker Hub's mirrors first, in order, as Docker does: the first that succeeds is the
/// answer, Docker Hub's own the last resort (its error, after the mirrors', is returned).
fn on_endpoints<T>(
    options: &Options,
    r: &Reference,
    req: &PullRequest,
    mut work: impl FnMut(&Registry) -> Result<T>,
) -> Result<T> {
    let mut missed = Vec::new();
    if r.domain() == netctl_registry::reference::DEFAULT_DOMAIN {
        for mirror in &options.mirrors {
            match Registry::connect_mirror(options, mirror, req.credentials.clone())
                .map_err(|e| pull_error(r, e))
                .and_then(|registry| work(&registry))
            {
                Ok(done) => return Ok(done),
                Err(e) => missed.push(format!("mirror {mirror}: {e}")),
            }
        }
    }
    Registry::connect(options, r.registry_host(), req.credentials.clone())
        .map_err(|e| pull_error(r, e))
        .and_then(|registry| work(&registry))
        .map_err(|e| match missed.is_empty() {
            true => e,
            false => e.context(format!("after {}", missed.join("; "))),
        })
}

/// What an all-tags pull did.
#[derive(Debug, Clone)]
pub struct PulledAll {
    /// The repository as Docker shows it (`registry:5000/web`).
    pub repository: String,
    /// Each tag's pull.
    pub tags: Vec<Pulled>,
}

impl PulledAll {
    /// Docker's closing status, for the repository.
    pub fn status(&self) -> String {
        let what = if self.tags.iter().any(|p| p.fresh) {
            "Downloaded newer image"
        } else {
            "Image is up to date"
        };
        format!("{what} for {}", self.repository)
    }
}

/// Pulls every tag of the repository `req.reference` names (`pull --all-tags`, the API's
/// pull without a tag), one after the other, each tag's `Digest:` line among the progress.
pub fn pull_all_tags(
    store: &ImageStore,
    options: &Options,
    req: &PullRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<PulledAll> {
    let repo = Reference::parse(&req.reference)?;
    if repo.tag().is_some() || repo.digest().is_some() {
        return Err(Error::Invalid(format!(
            "tag can't be used with --all-tags/-a: give the repository alone, not {}",
            repo.familiar()
        )));
    }
    let platform = platform(req)?;
    let _adding = store.lock_for_adding()?;
    let pulled = on_endpoints(options, &repo, req, |registry| {
        let tags = registry
            .tags(repo.path())
            .map_err(|e| pull_error(&repo, e))?;
        let mut pulled = Vec::new();
        for tag in tags {
            let r = reference(&format!("{}:{tag}", repo.familiar_name()))?;
            let one = pull_tag(store, registry, &r, &platform, progress)?;
            progress(Progress {
                id: String::new(),
                status: format!("Digest: {}", one.digest),
                bytes: None,
            });
            pulled.push(one);
        }
        Ok(pulled)
    })?;
    if pulled.is_empty() {
        return Err(Error::Registry(netctl_registry::Error::NotFound(format!(
            "{} has no tags to pull",
            repo.familiar_name()
        ))));
    }
    Ok(PulledAll {
        repository: repo.familiar_name(),
        tags: pulled,
    })
}

/// The platform a pull asks an index for: `--platform`, else the host's.
fn platform(req: &PullRequest) -> Result<Platform> {
    match &req.platform {
        Some(p) if !p.is_empty() => Platform::parse(p).map_err(|e| Error::Invalid(e.to_string())),
        _ => Ok(Platform::host()),
    }
}

/// Pulls the image `r` names (a tag or digest) over `registry`, under the store's adding
/// lock.
fn pull_tag(
    store: &ImageStore,
    registry: &Registry,
    r: &Reference,
    platform: &Platform,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pulled> {
    let denied = |e: netctl_registry::Error| pull_error(r, e);
    let (manifest, digest) = image_manifest(registry, r, platform).map_err(denied)?;
    progress(Progress {
        id: r.manifest_reference(),
        status: format!("Pulling from {}", r.path()),
        bytes: None,
    });
    let config = registry
        .blob_bytes(
            r.path(),
            &manifest.config.digest,
            manifest.config.size,
            MAX_CONFIG,
        )
        .map_err(denied)?;
    let diff_ids = diff_ids(&config, &manifest)?;
    let fresh = fetch_layers(store, registry, r, &manifest, &diff_ids, progress)?;
    let image_id = crate::layer::sha256_hex(&config);
    let had = store.contains(&image_id);
    let tags = r.tag().map(|_| vec![r.familiar()]).unwrap_or_default();
    let mut image = store.add(NewImage {
        config,
        layers: diff_ids,
        tags,
        parent: String::new(),
    })?;
    let repo_digest = format!("{}@{digest}", r.familiar_name());
    image = store.add_repo_digest(&image.id, &repo_digest)?;
    Ok(Pulled {
        image,
        reference: r.familiar(),
        digest,
        fresh: fresh || !had,
    })
}

/// The image manifest for the platform (through an index when the reference names one);
/// its digest (the index's when there is one, as Docker reports it).
fn image_manifest(
    registry: &Registry,
    r: &Reference,
    platform: &Platform,
) -> netctl_registry::Result<(ImageManifest, Digest)> {
    let (manifest, _, digest) = registry.manifest(r.path(), &r.manifest_reference())?;
    let image = match manifest {
        Manifest::Image(m) => m,
        Manifest::Index(index) => {
            let entry = index.select(platform)?;
            match registry.manifest(r.path(), &entry.digest.to_string())?.0 {
                Manifest::Image(m) => m,
                Manifest::Index(_) => {
                    return Err(netctl_registry::Error::Refused(
                        "the manifest list names another list, not an image".into(),
                    ))
                }
            }
        }
    };
    Ok((image, digest))
}

/// The diff IDs the config promises, one per layer of the manifest.
fn diff_ids(config: &[u8], manifest: &ImageManifest) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Config {
        rootfs: Rootfs,
    }
    #[derive(Deserialize)]
    struct Rootfs {
        diff_ids: Vec<Digest>,
    }
    let c: Config =
        serde_json::from_slice(config).ctx(|| "parse the image config from the registry".into())?;
    let ids: Vec<String> = c
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.hex().to_string())
        .collect();
    if ids.len() != manifest.layers.len() || ids.len() > MAX_LAYERS {
        return Err(Error::Invalid(format!(
            "the image's config names {} layers and its manifest {} (at most {MAX_LAYERS}): refusing it",
            ids.len(),
            manifest.layers.len()
        )));
    }
    Ok(ids)
}

/// Fetches the layers not stored yet, [`CONCURRENT`] at once; whether any was new. On a
/// failure the other downloads finish and the first error is returned.
fn fetch_layers(
    store: &ImageStore,
    registry: &Registry,
    r: &Reference,
    manifest: &ImageManifest,
    diff_ids: &[String],
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<bool> {
    // A layer an image names twice is fetched once.
    let mut work: Vec<(&Descriptor, &String)> = Vec::new();
    for (d, diff) in manifest.layers.iter().zip(diff_ids) {
        if !work.iter().any(|(_, seen)| *seen == diff) {
            work.push((d, diff));
        }
    }
    for (d, diff) in &work {
        let status = if store.layers.path(diff).exists() {
            "Already exists"
        } else {
            "Pulling fs layer"
        };
        progress(line(d, status, None));
    }
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<Error>> = Mutex::new(Vec::new());
    let fresh = AtomicUsize::new(0);
    let repository = format!("{}/{}", r.domain(), r.path());
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT.min(work.len()) {
            s.spawn(|| {
                while let Some((d, diff)) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match fetch_layer(store, registry, r.path(), d, diff, &repository, progress) {
                        Ok(true) => _ = fresh.fetch_add(1, Ordering::Relaxed),
                        Ok(false) => {}
                        Err(e) => {
                            if let Ok(mut f) = failures.lock() {
                                f.push(e);
                            }
                        }
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        return Err(failures.swap_remove(0));
    }
    Ok(fresh.load(Ordering::Relaxed) > 0)
}

/// One layer: skipped when stored, else streamed from the registry into the layer store,
/// checked against its blob digest and size and its diff ID; whether it was fetched.
fn fetch_layer(
    store: &ImageStore,
    registry: &Registry,
    repo: &str,
    d: &Descriptor,
    diff: &str,
    repository: &str,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<bool> {
    let blob = Blob {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
        repositories: Vec::new(),
    };
    let dist = Distribution::open(store);
    if store.layers.path(diff).exists() {
        return dist.remember(diff, &blob, repository).map(|()| false);
    }
    let compression = d.compression()?;
    let mut body = registry.blob(repo, &d.digest, d.size)?;
    let stored = {
        let report = |done, total| progress(line(d, "Downloading", Some((done, total))));
        let counting = Counting::new(&mut body, d.size, &report);
        let tar: Box<dyn Read> = match compression {
            Compression::Zstd => Box::new(
                ruzstd::decoding::StreamingDecoder::new(counting)
                    .map_err(|e| Error::Invalid(format!("layer {}: not zstd: {e}", d.digest)))?,
            ),
            Compression::Gzip | Compression::None => Box::new(counting),
        };
        store.layers.add(tar)
    };
    let verified = body.finish().map_err(|e| Error::Invalid(e.to_string()));
    let (hex, added) = match (stored, verified) {
        (Ok(s), Ok(())) => s,
        (Ok((hex, true)), Err(e)) => {
            store.layers.forget(&[hex], &[]);
            return Err(e);
        }
        (Ok(_), Err(e)) | (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(layer_error(d, e)),
    };
    if hex != diff {
        if added {
            store.layers.forget(std::slice::from_ref(&hex), &[]);
        }
        return Err(Error::Invalid(format!(
            "layer {} unpacks to diff ID sha256:{hex}, not the sha256:{diff} its image config names: refusing the image",
            d.digest
        )));
    }
    progress(line(d, "Verifying Checksum", None));
    progress(line(d, "Download complete", None));
    dist.remember(diff, &blob, repository)?;
    progress(line(d, "Pull complete", None));
    Ok(true)
}

fn layer_error(d: &Descriptor, e: Error) -> Error {
    e.context(format!("pull layer {}", d.digest))
}

fn line(d: &Descriptor, status: &str, bytes: Option<(u64, u64)>) -> Progress {
    Progress {
        id: short(&d.digest),
        status: status.into(),
        bytes,
    }
}

/// The 12 hex digits Docker shows for a blob.
fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Counts bytes as they pass (of a pull or a push) and reports every 512 KiB, and at the end.
pub(crate) struct Counting<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    last: u64,
    report: &'a dyn Fn(u64, u64),
}

impl<'a, R> Counting<'a, R> {
    /// Counts `inner`, whose whole is `total` bytes, telling `report` (done, total).
    pub(crate) fn new(inner: R, total: u64, report: &'a dyn Fn(u64, u64)) -> Self {
        Self {
            inner,
            done: 0,
            total,
            last: 0,
            report,
        }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.last >= 512 << 10 || (n == 0 && self.done > self.last) {
            self.last = self.done;
            (self.report)(self.done, self.total);
        }
        Ok(n)
    }
}

/// A registry failure in Docker's words for a pull.
fn pull_error(r: &Reference, e: netctl_registry::Error) -> Error {
    use netctl_registry::Error as R;
    Error::Registry(match e {
        R::Unauthorized(why) => R::NotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {why}",
            r.familiar_name()
        )),
        R::NotFound(why) => R::NotFound(format!("manifest for {} not found: {why}", r.familiar())),
        other => other,
    })
}
