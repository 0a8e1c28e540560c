//! Image layers: tar streams (plain or gzip) unpacked once into read-only folders named by
//! the SHA-256 of the uncompressed tar (Docker's diff ID), with OCI whiteouts turned into
//! overlayfs whiteouts so the layers stack under a container's overlay mount.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Context, Result};
use crate::tarsplit::{Recorder, Recording};

/// Reads through `inner`, hashing every byte.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A reader of `r` without gzip: gzip streams are recognised by their magic bytes.
pub fn decompressed<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::new(r);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    })
}

/// The layers folder of an image store.
pub struct LayerStore {
    dir: PathBuf,
}

impl LayerStore {
    /// The store under `dir`, created if missing.
    pub fn open(dir: PathBuf) -> Result<Self> {
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The folder of a layer by its hex digest.
    pub fn path(&self, hex: &str) -> PathBuf {
        self.dir.join(hex)
    }

    /// The folder of the layers' records, beside the layers (`layers-records`): the layers
    /// folder holds layers only.
    fn records(&self) -> PathBuf {
        let mut name = self.dir.clone().into_os_string();
        name.push("-records");
        PathBuf::from(name)
    }

    /// The record of a layer's tar as it came ([`crate::tarsplit`]), by its hex digest.
    pub fn record_path(&self, hex: &str) -> PathBuf {
        self.records().join(hex)
    }

    /// Unpacks a tar stream (plain or gzip) and returns its diff ID (hex), and whether this
    /// call stored it. A layer already stored is kept as it is: layers never change once
    /// written.
    pub fn add(&self, tar: impl Read) -> Result<(String, bool)> {
        let id = crate::ids::random_id()?;
        let tmp = self.dir.join(format!(".tmp-{id}"));
        let records = self.records();
        fs::create_dir_all(&records).ctx(|| format!("create {}", records.display()))?;
        let record = records.join(format!(".tmp-{id}"));
        let result = self.unpack_into(tar, &tmp, &record);
        let hex = match result {
            Ok(hex) => hex,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                let _ = fs::remove_file(&record);
                return Err(e);
            }
        };
        let dest = self.path(&hex);
        let stored = if dest.exists() {
            Ok(false)
        } else {
            // Without its record a layer is still whole: `save` then writes it anew.
            if fs::rename(&record, self.record_path(&hex)).is_err() {
                let _ = fs::remove_file(&record);
            }
            match fs::rename(&tmp, &dest) {
                Ok(()) => Ok(true),
                // Another pull or load stored the same layer meanwhile.
                Err(_) if dest.is_dir() => Ok(false),
                Err(e) => Err(e).ctx(|| format!("store layer {hex}")),
            }
        };
        if !matches!(stored, Ok(true)) {
            let _ = fs::remove_file(&record);
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok((hex, stored?))
    }

    /// Removes what adds that never finished left (a process killed while it unpacked);
    /// only while no add runs (under the image store's exclusive lock).
    pub fn sweep(&self) {
        for dir in [&self.dir, &self.records()] {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let p = entry.path();
                    let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
                }
            }
        }
    }

    /// Removes the layers of `added` that no image in `used` refers to (what a failed load
    /// stored).
    pub fn forget(&self, added: &[String], used: &[String]) {
        for hex in added.iter().filter(|h| !used.contains(h)) {
            let _ = fs::remove_dir_all(self.path(hex));
            let _ = fs::remove_file(self.record_path(hex));
        }
    }

    /// Unpacks the tar into `dest`, recording it at `record` ([`crate::tarsplit`]); its
    /// diff ID.
    fn unpack_into(&self, tar: impl Read, dest: &Path, record: &Path) -> Result<String> {
        fs::create_dir(dest).ctx(|| format!("create {}", dest.display()))?;
        let hashing = Hashing {
            inner: decompressed(tar)
                .map_err(|e| crate::archive::archive_error(e, || "the layer".into()))?,
            hash: Sha256::new(),
        };
        let recorder = Recorder::create(record).ctx(|| format!("create {}", record.display()))?;
        let mut reading = Recording::new(hashing, recorder.clone());
        let observe = |path: Option<&str>, size| recorder.borrow_mut().member(path, size);
        crate::archive::unpack_observed(
            &mut reading,
            dest,
            crate::archive::Members::Layer,
            observe,
        )
        .map_err(|e| crate::archive::archive_error(e, || "the layer".into()))?;
        io::copy(&mut reading, &mut io::sink()).ctx(|| "read the end of the layer".into())?;
        recorder
            .borrow_mut()
            .finish()
            .ctx(|| format!("write {}", record.display()))?;
        Ok(crate::ids::hex(&reading.into_inner().hash.finalize()))
    }

    /// Removes layers no image in `used` refers to; the diff IDs removed.
    pub fn prune(&self, used: &[String]) -> Result<Vec<String>> {
        let list = || format!("list {}", self.dir.display());
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.dir).ctx(list)? {
            let name = entry.ctx(list)?.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) && !name.starts_with('.') {
                let p = self.path(&name);
                fs::remove_dir_all(&p).ctx(|| format!("remove {}", p.display()))?;
                let _ = fs::remove_file(self.record_path(&name));
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Bytes used by a layer's files.
    pub fn size(&self, hex: &str) -> u64 {
        du(&self.path(hex))
    }
}

/// Bytes of the files below `p` (symlinks not followed).
pub fn du(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

/// The chain IDs of layers given bottom first (Docker's layer IDs: the first layer's is its
/// diff ID, each next one the SHA-256 of `sha256:PARENT sha256:DIFF`).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.clone(),
            Some(parent) => sha256_hex(format!("sha256:{parent} sha256:{d}").as_bytes()),
        };
        out.push(id);
    }
    out
}

/// SHA-256 of bytes, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::ids::hex(&Sha256::digest(bytes))
}

/// A tar of a folder (owners, modes and symlinks kept), for `image import DIR`.
pub fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    let file = fs::File::create(out).ctx(|| format!("create {}", out.display()))?;
    let mut b = tar::Builder::new(io::BufWriter::new(file));
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", dir)
        .ctx(|| format!("read {}", dir.display()))?;
    b.into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .ctx(|| "write the layer".into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_layer_is_stored_once_under_its_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path().join("layers")).unwrap();
        let tar = tar_of(&[("etc/motd", b"hi\n")]);
        let (id, new) = store.add(&tar[..]).unwrap();
        assert!(new);
        assert_eq!(id, sha256_hex(&tar));
        assert_eq!(fs::read(store.path(&id).join("etc/motd")).unwrap(), b"hi\n");
        assert_eq!(store.add(&tar[..]).unwrap(), (id.clone(), false));
        assert_eq!(fs::read_dir(dir.path().join("layers")).unwrap().count(), 1);
        assert!(store.record_path(&id).is_file());
    }

    #[test]
    fn a_layer_is_written_back_byte_for_byte_as_it_came() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path().join("layers")).unwrap();
        // Unsorted members, a name too long for the old header, a folder, a link, an empty
        // file, and more end padding than tar needs.
        let long = format!("deep/{}/file", "d".repeat(120));
        let mut tar = tar_of(&[
            ("z-last", b"zzz"),
            (&long, b"long"),
            ("a-first", b""),
            ("m", &[7u8; 1500]),
        ]);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_link(&mut h, "link", "z-last").unwrap();
        let links = b.into_inner().unwrap();
        tar.truncate(tar.len() - 1024);
        tar.extend_from_slice(&links);
        tar.extend_from_slice(&[0u8; 4096]);
        let (id, _) = store.add(&tar[..]).unwrap();
        let mut out = Vec::new();
        crate::tarsplit::rebuild(&store.record_path(&id), &store.path(&id), &mut out).unwrap();
        assert_eq!(out.len(), tar.len());
        assert!(out == tar, "the rebuilt tar differs");
        // A stored file that changed is found out, not written silently.
        fs::write(store.path(&id).join("z-last"), b"zz").unwrap();
        let mut out = Vec::new();
        let rebuilt = crate::tarsplit::rebuild(&store.record_path(&id), &store.path(&id), &mut out);
        assert!(rebuilt.is_err());
    }

    #[test]
    fn gzip_layers_hash_to_the_uncompressed_digest() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path().to_path_buf()).unwrap();
        let tar = tar_of(&[("a", b"1")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        assert_eq!(
            store.add(&gz.finish().unwrap()[..]).unwrap().0,
            sha256_hex(&tar)
        );
    }

    #[test]
    fn a_broken_archive_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path().join("layers")).unwrap();
        let mut tar = tar_of(&[("a", &[7u8; 2000])]);
        tar.truncate(1000);
        assert!(store.add(&tar[..]).is_err());
        assert_eq!(fs::read_dir(dir.path().join("layers")).unwrap().count(), 0);
        let records = fs::read_dir(dir.path().join("layers-records"));
        assert_eq!(records.map(|r| r.count()).unwrap_or(0), 0);
    }
}
