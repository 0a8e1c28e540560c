//! `push`: an image to a registry as a Docker schema 2 manifest. Each layer goes as a gzip
//! blob; a blob the repository has is skipped, one another repository of the registry has
//! is mounted, the rest uploaded, several at once. The manifest is put by tag and its
//! digest recorded on the image, as Docker prints it.

use std::io::{Read, Seek};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use netctl_registry::manifest::{
    Descriptor, ImageManifest, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
};
use netctl_registry::{Credentials, Digest, Options, Registry};

use crate::distribution::{Blob, Distribution};
use crate::error::{Context, Error, Result};
use crate::image::ImageStore;
use crate::pull::{reference, Progress};

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
    let Some(tag) = r.tag().map(str::to_string).filter(|_| r.digest().is_none()) else {
        return Err(Error::Invalid(format!(
            "cannot push {}: push a tag, not a digest",
            r.familiar()
        )));
    };
    let _reading = store.lock(false)?;
    let img = store.find(&r.familiar()).map_err(|_| {
        netctl_registry::Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            r.familiar_name()
        ))
    })?;
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
    let repository = format!("{}/{}", r.domain(), r.path());
    let layers = push_layers(
        store,
        &registry,
        r.path(),
        &repository,
        &img.layers,
        progress,
    )?;
    let diffs: Vec<String> = layers.iter().map(|(diff, _)| diff.clone()).collect();
    let config = crate::save::config_for(store, &img, &diffs)?;
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
    let (tar, tar_digest, _) = crate::save::layer_tar(store, diff)?;
    let (mut gz, digest, size) = gzip(tar)?;
    let blob = Blob {
        digest,
        size,
        media_type: DOCKER_LAYER_GZIP.into(),
        repositories: Vec::new(),
    };
    if registry.has_blob(repo, &blob.digest)? {
        say("Layer already exists".into(), None);
    } else {
        let mut counting = Counting {
            inner: &mut gz,
            done: 0,
            size,
            say: &say,
        };
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

/// The tar gzipped into a rewound scratch file, with the blob's digest and size.
fn gzip(mut tar: std::fs::File) -> Result<(std::fs::File, Digest, u64)> {
    let scratch = tempfile::tempfile().ctx(|| "make a scratch file for a layer".into())?;
    let mut enc = flate2::write::GzEncoder::new(scratch, flate2::Compression::default());
    std::io::copy(&mut tar, &mut enc).ctx(|| "compress a layer".into())?;
    let mut out = enc.finish().ctx(|| "compress a layer".into())?;
    out.rewind().ctx(|| "read a layer back".into())?;
    let mut v = netctl_registry::digest::Verifier::new(netctl_registry::digest::Algorithm::Sha256);
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = out.read(&mut buf).ctx(|| "read a layer back".into())?;
        if n == 0 {
            break;
        }
        v.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    out.rewind().ctx(|| "read a layer back".into())?;
    Ok((out, v.finish(), size))
}

/// Reports upload progress every 512 KiB.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    size: u64,
    say: &'a dyn Fn(String, Option<(u64, u64)>),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.done;
        self.done += n as u64;
        if before / (512 << 10) != self.done / (512 << 10) {
            (self.say)("Pushing".into(), Some((self.done, self.size)));
        }
        Ok(n)
    }
}
