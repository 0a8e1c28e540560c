//! What the image store knows of layers in registries: for each stored layer (by diff ID)
//! the compressed blobs it was pulled as or pushed as, so a pull never fetches a layer it
//! has and a push skips the blobs a registry has (`<root>/image/distribution/<diff>.json`).

use std::fs;
use std::path::PathBuf;

use netctl_cni::fsutil;
use netctl_registry::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};
use crate::lock::StoreLock;

/// A compressed blob of a layer in a registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The repositories (`registry/path`) known to hold it.
    #[serde(default)]
    pub repositories: Vec<String>,
}

/// The blobs of every layer.
pub struct Distribution {
    dir: PathBuf,
}

impl Distribution {
    /// The records beside the image store's layers.
    pub fn open(store: &crate::image::ImageStore) -> Self {
        Self {
            dir: store.dir().join("distribution"),
        }
    }

    /// The blobs known for a layer.
    pub fn blobs(&self, diff: &str) -> Vec<Blob> {
        fs::read(self.dir.join(format!("{diff}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Notes that `repository` holds the layer as `blob` (under the records' lock: pulls
    /// and pushes of other processes note theirs at the same time).
    pub fn remember(&self, diff: &str, blob: &Blob, repository: &str) -> Result<()> {
        fs::create_dir_all(&self.dir).ctx(|| format!("create {}", self.dir.display()))?;
        let _noting = StoreLock::exclusive(&self.dir.join(".lock"))?;
        let mut blobs = self.blobs(diff);
        if !blobs.iter().any(|b| b.digest == blob.digest) {
            blobs.push(Blob {
                repositories: Vec::new(),
                ..blob.clone()
            });
        }
        for entry in blobs.iter_mut().filter(|b| b.digest == blob.digest) {
            if !entry.repositories.iter().any(|r| r == repository) {
                entry.repositories.push(repository.to_string());
            }
        }
        let path = self.dir.join(format!("{diff}.json"));
        let bytes = serde_json::to_vec(&blobs).ctx(|| "encode a layer's blobs".into())?;
        fsutil::write_atomic(&path, &bytes).ctx(|| format!("write {}", path.display()))
    }

    /// Forgets the layers no longer stored.
    pub fn forget(&self, diffs: &[String]) {
        for d in diffs {
            let _ = fs::remove_file(self.dir.join(format!("{d}.json")));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Pulls and pushes in many processes note the same layer at once: every repository
    /// they noted is kept.
    #[test]
    fn concurrent_notes_of_one_layer_all_stay() {
        let root = tempfile::tempdir().unwrap();
        let store = crate::image::ImageStore::open(root.path()).unwrap();
        let blob = Blob {
            digest: Digest::sha256_of(b"layer"),
            size: 5,
            media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            repositories: Vec::new(),
        };
        std::thread::scope(|s| {
            for t in 0..8 {
                let (store, blob) = (&store, &blob);
                s.spawn(move || {
                    for i in 0..25 {
                        Distribution::open(store)
                            .remember("d1ff", blob, &format!("reg/r{t}-{i}"))
                            .unwrap();
                    }
                });
            }
        });
        let noted = Distribution::open(&store).blobs("d1ff");
        assert_eq!(noted.len(), 1);
        assert_eq!(noted[0].repositories.len(), 200);
    }
}
