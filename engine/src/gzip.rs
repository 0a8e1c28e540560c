//! A gzip writer for layer blobs that stops compressing what does not compress: input goes
//! in chunks at zlib's fastest level, and a chunk that shrank by less than 3% switches the
//! stream to stored blocks, trying compression again every few MiB. Already compressed
//! files (archives, media, encrypted data) cost a copy instead of a deflate, and what does
//! compress is compressed. The output is one ordinary gzip member.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input judged at a time.
const CHUNK: usize = 256 << 10;
/// Stored chunks before compression is tried again.
const PROBE_AFTER: u32 = 16;

/// The gzip header: deflate, no name, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A gzip stream into `W`.
pub struct Gzip<W: Write> {
    out: W,
    deflate: Compress,
    crc: Crc,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    stored: Option<u32>,
}

fn deflate_error(e: flate2::CompressError) -> io::Error {
    io::Error::other(format!("gzip: {e}"))
}

impl<W: Write> Gzip<W> {
    /// Starts a stream (writes the header).
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(Self {
            out,
            deflate: Compress::new(Compression::fast(), false),
            crc: Crc::new(),
            pending: Vec::with_capacity(CHUNK),
            scratch: vec![0; 64 << 10],
            stored: None,
        })
    }

    /// Deflates `input` with `flush`, writing what comes out.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            let (in0, out0) = (self.deflate.total_in(), self.deflate.total_out());
            let status = self
                .deflate
                .compress(input, &mut self.scratch, flush)
                .map_err(deflate_error)?;
            let consumed = usize::try_from(self.deflate.total_in() - in0).unwrap_or(usize::MAX);
            let produced = usize::try_from(self.deflate.total_out() - out0).unwrap_or(usize::MAX);
            self.out
                .write_all(self.scratch.get(..produced).unwrap_or_default())?;
            input = input.get(consumed..).unwrap_or_default();
            let drained = produced < self.scratch.len();
            match flush {
                FlushCompress::Finish if status == Status::StreamEnd => return Ok(()),
                FlushCompress::Finish => {}
                _ if input.is_empty() && drained => return Ok(()),
                _ => {}
            }
        }
    }

    /// Deflates one chunk to a block boundary and picks the level for the next by how well
    /// it shrank.
    fn chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.crc.update(chunk);
        let before = self.deflate.total_out();
        self.run(chunk, FlushCompress::Sync)?;
        let out = self.deflate.total_out() - before;
        let next = match self.stored {
            None if out * 100 > chunk.len() as u64 * 97 => Some(Some(0)),
            Some(n) if n + 1 >= PROBE_AFTER => Some(None),
            Some(n) => {
                self.stored = Some(n + 1);
                None
            }
            None => None,
        };
        if let Some(stored) = next {
            let level = if stored.is_some() {
                Compression::none()
            } else {
                Compression::fast()
            };
            self.deflate.set_level(level).map_err(deflate_error)?;
            self.stored = stored;
        }
        Ok(())
    }

    /// Ends the stream (the trailer: CRC-32 and length); the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let rest = std::mem::take(&mut self.pending);
        self.crc.update(&rest);
        self.run(&rest, FlushCompress::Finish)?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Gzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.pending.len();
        let take = buf.get(..room.min(buf.len())).unwrap_or_default();
        self.pending.extend_from_slice(take);
        if self.pending.len() == CHUNK {
            let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
            self.chunk(&chunk)?;
        }
        Ok(take.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8]) -> usize {
        let mut gz = Gzip::new(Vec::new()).unwrap();
        gz.write_all(data).unwrap();
        let blob = gz.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(blob.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        blob.len()
    }

    /// Bytes that do not compress (an LCG's high bytes).
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn what_compresses_shrinks_and_what_does_not_barely_grows() {
        let text: Vec<u8> = b"layer of text, again and again. ".repeat(100_000);
        assert!(roundtrip(&text) < text.len() / 20);
        let random = noise(3 << 20);
        assert!(roundtrip(&random) < random.len() + random.len() / 200);
        let mut mixed = random.clone();
        mixed.extend_from_slice(&text);
        mixed.extend_from_slice(&noise(CHUNK * (PROBE_AFTER as usize + 2)));
        mixed.extend_from_slice(&text);
        assert!(roundtrip(&mixed) < mixed.len() - text.len());
        assert_eq!(roundtrip(b""), 20);
        roundtrip(b"x");
    }
}
