//! `push`: an image to a registry as a Docker schema 2 manifest. Each layer goes as a gzip
//! blob; a blob the repository has is skipped, one another repository of the registry has
//! is mounted, the rest uploaded, several at once. The manifest is put by tag and its
//! digest recorded on the image, as Docker prints it.

use std::io::{Read, Seek, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use netctl_registry::digest::{Algorithm, Verifier};
use netctl_registry::manifest::{
    Descriptor, ImageManifest, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
};
use netctl_registry::{Credentials, Digest, Options, Reference, Registry};

use crate::distribution::{Blob, Distribution};
use crate::error::{Context, Error, Result};
use crate::gzip::Gzip;
use crate::image::{Image, ImageStore};
use crate::pull::{reference, Counting, Progress};

/// A pushed layer: its diff ID and its blob.
type PushedLayer = (String, Descriptor);

/// How many layers upload at once (Docker's `max-concurrent-uploads`).
const CONCURRENT: usize = 5;

/// What to push.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The local image reference, which names the repository (`registry/repo:tag`).
    pub reference: String,
    /// Credentials for the registry, when not anonymous.
    pub credentials: Option<Credentials>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The tag pushed.
    pub tag: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: usize,
}

/// Pushes a local image, telling `progress` what happens.
pub fn push(
    store: &ImageStore,
    options: &Options,
    req: &PushRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pushed> {
    let r = reference(&req.reference)?;
    if r.tag().is_none() || r.digest().is_some() {
        return Err(Error::Invalid(format!(
            "cannot push {}: push a tag, not a digest",
            r.familiar()
        )));
    }
    let mut pushed = push_tags(store, options, req, &r, progress)?;
    pushed
        .pop()
        .ok_or_else(|| Error::Invalid("nothing was pushed".into()))
}

/// Pushes every tag the local images have in the repository `req.reference` names (the
/// API's push without a tag, `push --all-tags`), in tag order.
pub fn push_all_tags(
    store: &ImageStore,
    options: &Options,
    req: &PushRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Pushed>> {
    let r = Reference::parse(&req.reference)?;
    if r.tag().is_some() || r.digest().is_some() {
        return Err(Error::Invalid(format!(
            "tag can't be used with --all-tags/-a: give the repository alone, not {}",
            r.familiar()
        )));
    }
    push_tags(store, options, req, &r, progress)
}

/// Pushes the tag `r` names, or every local tag of its repository when it names none; one
/// connection and one `The push refers to repository` line for all.
fn push_tags(
    store: &ImageStore,
    options: &Options,
    req: &PushRequest,
    r: &Reference,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Pushed>> {
    let _reading = store.lock(false)?;
    let missing = || {
        Error::from(netctl_registry::Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            r.familiar_name()
        )))
    };
    let images = match r.tag() {
        Some(_) => vec![(r.clone(), store.find(&r.familiar()).map_err(|_| missing())?)],
        None => tagged_in(store, r)?,
    };
    if images.is_empty() {
        return Err(missing());
    }
    progress(Progress {
        id: String::new(),
        status: format!(
            "The push refers to repository [{}/{}]",
            r.domain(),
            r.path()
        ),
        bytes: None,
    });
    let registry = Registry::connect(options, r.registry_host(), req.credentials.clone())?;
    images
        .iter()
        .map(|(tagged, img)| push_tag(store, &registry, tagged, img, progress))
        .collect()
}

/// The local images tagged in `r`'s repository, each with its tagged reference, by tag.
fn tagged_in(store: &ImageStore, r: &Reference) -> Result<Vec<(Reference, Image)>> {
    let mut out = Vec::new();
    for img in store.all()? {
        for t in &img.tags {
            if let Ok(tagged) = Reference::parse(t) {
                if tagged.domain() == r.domain() && tagged.path() == r.path() {
                    out.push((tagged, img.clone()));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.tag().cmp(&b.0.tag()));
    Ok(out)
}

/// Pushes one tagged image: its layers, its config, its manifest under the tag.
fn push_tag(
    store: &ImageStore,
    registry: &Registry,
    r: &Reference,
    img: &Image,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pushed> {
    let tag = r.tag().unwrap_or("latest").to_string();
    let repository = format!("{}/{}", r.domain(), r.path());
    let layers = push_layers(
        store,
        registry,
        r.path(),
        &repository,
        &img.layers,
        progress,
    )?;
    let diffs: Vec<String> = layers.iter().map(|(diff, _)| diff.clone()).collect();
    let config = crate::save::config_for(store, img, &diffs)?;
    let config_digest = Digest::sha256_of(&config);
    if !registry.has_blob(r.path(), &config_digest)? {
        registry.upload_blob(
            r.path(),
            &config_digest,
            &mut config.as_slice(),
            config.len() as u64,
        )?;
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST.into(),
        config: Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: config_digest,
            size: config.len() as u64,
            platform: None,
        },
        layers: layers.into_iter().map(|(_, d)| d).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&manifest).ctx(|| "encode the manifest".into())?;
    let digest = registry.put_manifest(r.path(), &tag, DOCKER_MANIFEST, &bytes)?;
    store.add_repo_digest(&img.id, &format!("{}@{digest}", r.familiar_name()))?;
    progress(Progress {
        id: String::new(),
        status: format!("{tag}: digest: {digest} size: {}", bytes.len()),
        bytes: None,
    });
    Ok(Pushed {
        tag,
        digest,
        size: bytes.len(),
    })
}

/// Pushes every layer, [`CONCURRENT`] at once; each layer's diff ID (a new one when its
/// tar had to be written anew) and blob descriptor, bottom first.
fn push_layers(
    store: &ImageStore,
    registry: &Registry,
    repo: &str,
    repository: &str,
    diffs: &[String],
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<(String, Descriptor)>> {
    for diff in diffs.iter().rev() {
        progress(Progress {
            id: diff.chars().take(12).collect(),
            status: "Preparing".into(),
            bytes: None,
        });
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Result<PushedLayer>>>> =
        Mutex::new(diffs.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT.min(diffs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(diff) = diffs.get(i) else { break };
                let result = push_layer(store, registry, repo, repository, diff, progress);
                if let Ok(mut d) = done.lock() {
                    if let Some(slot) = d.get_mut(i) {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Invalid("a layer upload did not finish".into()))))
        .collect()
}

/// One layer: skipped when the repository has a blob of it, mounted when another
/// repository of the registry has one, else compressed and uploaded.
fn push_layer(
    store: &ImageStore,
    registry: &Registry,
    repo: &str,
    repository: &str,
    diff: &str,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(String, Descriptor)> {
    let id: String = diff.chars().take(12).collect();
    let say = |status: String, bytes| {
        progress(Progress {
            id: id.clone(),
            status,
            bytes,
        })
    };
    let dist = Distribution::open(store);
    let domain = repository.split('/').next().unwrap_or("");
    for blob in dist
        .blobs(diff)
        .iter()
        .filter(|b| b.media_type == DOCKER_LAYER_GZIP || b.media_type.ends_with("tar+gzip"))
    {
        if registry.has_blob(repo, &blob.digest)? {
            dist.remember(diff, blob, repository)?;
            say("Layer already exists".into(), None);
            return Ok((diff.to_string(), descriptor(blob)));
        }
        let from = blob
            .repositories
            .iter()
            .find_map(|r| r.strip_prefix(&format!("{domain}/")));
        if let Some(from) = from {
            if registry.mount_blob(repo, &blob.digest, from)? {
                dist.remember(diff, blob, repository)?;
                say(format!("Mounted from {from}"), None);
                return Ok((diff.to_string(), descriptor(blob)));
            }
        }
    }
    if let Some(blob) = stream_layer(store, registry, repo, diff, &say)? {
        dist.remember(diff, &blob, repository)?;
        say("Pushed".into(), None);
        return Ok((diff.to_string(), descriptor(&blob)));
    }
    let (mut gz, tar_digest, digest, size) = gzip_layer(store, diff)?;
    let blob = Blob {
        digest,
        size,
        media_type: DOCKER_LAYER_GZIP.into(),
        repositories: Vec::new(),
    };
    if registry.has_blob(repo, &blob.digest)? {
        say("Layer already exists".into(), None);
    } else {
        let report = |done, total| say("Pushing".into(), Some((done, total)));
        let mut counting = Counting::new(&mut gz, size, &report);
        registry.upload_blob(repo, &blob.digest, &mut counting, size)?;
        say("Pushed".into(), None);
    }
    if tar_digest == diff {
        dist.remember(diff, &blob, repository)?;
    }
    Ok((tar_digest, descriptor(&blob)))
}

fn descriptor(b: &Blob) -> Descriptor {
    Descriptor {
        media_type: b.media_type.clone(),
        digest: b.digest.clone(),
        size: b.size,
        platform: None,
    }
}

/// Streams the layer to the registry as it is rebuilt from its record and gzipped, in one
/// pass; the blob, or none when the record does not rebuild the layer exactly (then nothing
/// was stored: the upload is left unfinished).
fn stream_layer(
    store: &ImageStore,
    registry: &Registry,
    repo: &str,
    diff: &str,
    say: &dyn Fn(String, Option<(u64, u64)>),
) -> Result<Option<Blob>> {
    let record = store.layers.record_path(diff);
    if !record.is_file() {
        return Ok(None);
    }
    let layer = store.layers.path(diff);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Option<(Digest, Digest, u64)> {
            let out = Hashing::new(ChannelWriter(tx));
            let mut tar = Hashing::new(Gzip::new(out).ok()?);
            crate::tarsplit::rebuild(&record, &layer, &mut tar).ok()?;
            let tar_digest = tar.digest();
            let mut out = tar.inner.finish().ok()?;
            Some((tar_digest, out.digest(), out.count))
        });
        let mut reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        };
        let report = |done, total| say("Pushing".into(), Some((done, total)));
        let mut counting = Counting::new(&mut reader, store.layers.size(diff), &report);
        let mut made = None;
        let uploaded = registry.upload_streaming(repo, &mut counting, || {
            made = producer
                .join()
                .ok()
                .flatten()
                .filter(|(t, _, _)| t.hex() == diff);
            made.as_ref().map(|(_, d, _)| d.clone())
        });
        // A failed upload stops the producer: its next send finds no reader.
        drop(reader);
        match (uploaded?, made) {
            (Some(digest), Some((_, _, size))) => Ok(Some(Blob {
                digest,
                size,
                media_type: DOCKER_LAYER_GZIP.into(),
                repositories: Vec::new(),
            })),
            _ => Ok(None),
        }
    })
}

/// The sending half of an in-process byte stream (no pipe, so no SIGPIPE).
struct ChannelWriter(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload ended"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The receiving half: reads the chunks in order, EOF when the writer is gone.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let rest = self.chunk.get(self.at..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(rest.get(..n).unwrap_or_default());
        self.at += n;
        Ok(n)
    }
}

/// The layer as a gzip blob in a rewound scratch file, from [`crate::save::layer_tar`]
/// (which writes it anew when its record does not rebuild it): the tar's digest, the blob's
/// digest and size.
fn gzip_layer(store: &ImageStore, diff: &str) -> Result<(std::fs::File, String, Digest, u64)> {
    let (mut file, tar_digest, _) = crate::save::layer_tar(store, diff)?;
    let mut gz = gzip_writer()?;
    std::io::copy(&mut file, &mut gz).ctx(|| "compress a layer".into())?;
    let (file, digest, size) = finish(gz)?;
    Ok((file, tar_digest, digest, size))
}

type GzipFile = Gzip<Hashing<std::fs::File>>;

/// A gzip writer into a scratch file that hashes what it writes.
fn gzip_writer() -> Result<GzipFile> {
    let scratch = tempfile::tempfile().ctx(|| "make a scratch file for a layer".into())?;
    Gzip::new(Hashing::new(scratch)).ctx(|| "compress a layer".into())
}

/// Ends the gzip stream; the rewound file, the blob's digest and size.
fn finish(gz: GzipFile) -> Result<(std::fs::File, Digest, u64)> {
    let mut hashed = gz.finish().ctx(|| "compress a layer".into())?;
    let digest = hashed.digest();
    let mut file = hashed.inner;
    let size = file.stream_position().ctx(|| "read a layer back".into())?;
    file.rewind().ctx(|| "read a layer back".into())?;
    Ok((file, digest, size))
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Verifier,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Verifier::new(Algorithm::Sha256),
            count: 0,
        }
    }

    fn digest(&mut self) -> Digest {
        std::mem::replace(&mut self.hash, Verifier::new(Algorithm::Sha256)).finish()
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
