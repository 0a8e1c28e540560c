//! A layer's tar as it came, kept without a second copy of its files (Docker's tar-split):
//! while a layer is unpacked every byte that is not a stored file's content (headers, pax
//! records, padding, the end blocks) is recorded in order, and each stored file's content
//! by its path and size. `save` then writes the layer byte for byte as it was loaded, so
//! its digest, the image config naming it and the image ID stay the same through
//! `save | load`.
//!
//! The record is a sequence of `R` + length (u64 LE) + bytes, and `F` + path length (u32
//! LE) + path + size (u64 LE).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::rc::Rc;

use crate::archive::Beneath;

/// Where a tar being unpacked is recorded.
pub struct Recorder {
    out: BufWriter<File>,
    pending: Vec<u8>,
    /// Bytes still to come of the current stored file's content (not recorded).
    content_left: u64,
    failed: Option<io::Error>,
}

/// The tar stream, recorded as it is read.
pub struct Recording<R> {
    inner: R,
    recorder: Rc<RefCell<Recorder>>,
}

impl Recorder {
    /// A recorder writing to `path`.
    pub fn create(path: &Path) -> io::Result<Rc<RefCell<Recorder>>> {
        Ok(Rc::new(RefCell::new(Recorder {
            out: BufWriter::new(File::create(path)?),
            pending: Vec::new(),
            content_left: 0,
            failed: None,
        })))
    }

    /// The next bytes of the stream.
    fn saw(&mut self, bytes: &[u8]) {
        let content = usize::try_from(self.content_left)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.content_left -= content as u64;
        self.pending
            .extend_from_slice(bytes.get(content..).unwrap_or_default());
        if self.pending.len() >= 64 * 1024 {
            self.flush_raw();
        }
    }

    fn flush_raw(&mut self) {
        if self.pending.is_empty() || self.failed.is_some() {
            return;
        }
        let len = self.pending.len() as u64;
        let written = self
            .out
            .write_all(b"R")
            .and_then(|()| self.out.write_all(&len.to_le_bytes()))
            .and_then(|()| self.out.write_all(&self.pending));
        self.pending.clear();
        if let Err(e) = written {
            self.failed = Some(e);
        }
    }

    /// A member whose header has just been read: a file stored at `path` (relative to the
    /// layer) has its `size` bytes of content taken from there, not recorded.
    pub fn member(&mut self, path: Option<&str>, size: u64) {
        let Some(path) = path.filter(|_| size > 0) else {
            return;
        };
        self.flush_raw();
        let written = self
            .out
            .write_all(b"F")
            .and_then(|()| self.out.write_all(&(path.len() as u32).to_le_bytes()))
            .and_then(|()| self.out.write_all(path.as_bytes()))
            .and_then(|()| self.out.write_all(&size.to_le_bytes()));
        if let Err(e) = written {
            self.failed.get_or_insert(e);
        }
        self.content_left = size;
    }

    /// Writes what is left; the first error met while recording.
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush_raw();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

impl<R: Read> Recording<R> {
    /// Records what is read from `inner` in `recorder`.
    pub fn new(inner: R, recorder: Rc<RefCell<Recorder>>) -> Self {
        Recording { inner, recorder }
    }

    /// The stream read through.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.recorder
            .borrow_mut()
            .saw(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Writes the tar that `record` describes, taking stored files' content from `layer`;
/// fails if a file is not there or not of its recorded size.
pub fn rebuild(record: &Path, layer: &Path, out: &mut impl Write) -> io::Result<()> {
    let root = Beneath::open(layer)?;
    let mut r = BufReader::new(File::open(record)?);
    let mut tag = [0u8; 1];
    loop {
        match r.read(&mut tag)? {
            0 => return Ok(()),
            _ if tag[0] == b'R' => {
                let len = read_u64(&mut r)?;
                let copied = io::copy(&mut (&mut r).take(len), out)?;
                short(copied, len, "the layer's record")?;
            }
            _ if tag[0] == b'F' => {
                let mut len = [0u8; 4];
                r.read_exact(&mut len)?;
                let mut path = vec![0u8; u32::from_le_bytes(len) as usize];
                r.read_exact(&mut path)?;
                let size = read_u64(&mut r)?;
                let path = String::from_utf8(path)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad path"))?;
                let file = root.open_file(&path, Some(size))?;
                let copied = io::copy(&mut file.take(size), out)?;
                short(copied, size, &path)?;
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the layer's record is damaged",
                ))
            }
        }
    }
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn short(copied: u64, wanted: u64, what: &str) -> io::Result<()> {
    match copied == wanted {
        true => Ok(()),
        false => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what}: {copied} bytes where {wanted} were recorded"),
        )),
    }
}
