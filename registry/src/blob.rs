//! A blob as it streams from a registry: checked against its digest and size, resumed
//! where it broke off when the connection drops (a `Range` request, as Docker retries a
//! download), and given up when the registry sends too slowly to ever finish.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::digest::{Digest, Verifier};

/// How many times a blob is asked for in all (Docker's `max-download-attempts`).
pub const MAX_ATTEMPTS: u32 = 5;
/// The slowest a blob may arrive, in bytes a second, averaged over each deadline's window.
pub const MIN_RATE: u64 = 1024;

/// Opens the blob's bytes from an offset: the stream, and how many of its first bytes come
/// before the offset (a registry that ignores `Range` sends the blob from its start).
pub type Reopen<'a> =
    Box<dyn FnMut(u64) -> io::Result<(Box<dyn Read + Send + 'a>, u64)> + Send + 'a>;

/// A blob's bytes, checked against its digest and size as they stream: a read past the size,
/// or an end with another size or digest, fails with `InvalidData`; a dropped connection is
/// resumed up to [`MAX_ATTEMPTS`] times; under [`MIN_RATE`] over a window of the deadline it
/// fails with `TimedOut`.
pub struct VerifiedBlob<'a> {
    inner: Box<dyn Read + Send + 'a>,
    reopen: Reopen<'a>,
    attempts: u32,
    verifier: Option<Verifier>,
    want: Digest,
    size: u64,
    read: u64,
    window: Duration,
    window_start: Instant,
    window_read: u64,
}

impl<'a> VerifiedBlob<'a> {
    /// The blob `want` of `size` bytes, read from `reopen(0)` on; `window` is the deadline
    /// over which [`MIN_RATE`] is measured.
    pub fn open(
        mut reopen: Reopen<'a>,
        want: Digest,
        size: u64,
        window: Duration,
    ) -> io::Result<Self> {
        let (inner, _) = reopen(0)?;
        Ok(Self {
            inner,
            reopen,
            attempts: 1,
            verifier: Some(Verifier::new(want.algorithm())),
            want,
            size,
            read: 0,
            window,
            window_start: Instant::now(),
            window_read: 0,
        })
    }

    /// Reads what is left and checks it: the blob is whole and matches its digest.
    pub fn finish(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }

    /// Asks for the rest of the blob after a break, when attempts are left; `Ok(false)`
    /// when none are.
    fn resume(&mut self) -> io::Result<bool> {
        if self.attempts >= MAX_ATTEMPTS {
            return Ok(false);
        }
        self.attempts += 1;
        let (mut inner, skip) = (self.reopen)(self.read)?;
        if skip > 0 {
            io::copy(&mut (&mut inner).take(skip), &mut io::sink())?;
        }
        self.inner = inner;
        Ok(true)
    }

    /// Fails when the window closed with fewer bytes than [`MIN_RATE`] asks.
    fn check_rate(&mut self, n: usize) -> io::Result<()> {
        self.window_read += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        if (self.window_read as f64) < MIN_RATE as f64 * elapsed.as_secs_f64() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "blob {}: the registry sent {} bytes in {:.1} s (under {MIN_RATE} bytes a second): giving up",
                    self.want,
                    self.window_read,
                    elapsed.as_secs_f64()
                ),
            ));
        }
        self.window_start = Instant::now();
        self.window_read = 0;
        Ok(())
    }

    /// One read from the connection; a dropped connection (or one that ends early) is
    /// resumed where it broke off.
    fn read_resuming(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let outcome = self.inner.read(buf);
            let broke = match &outcome {
                Ok(0) => self.read < self.size,
                Ok(_) => false,
                Err(e) => matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ),
            };
            if !broke || !self.resume()? {
                return outcome;
            }
        }
    }
}

impl Read for VerifiedBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verifier.is_none() {
            return Ok(0);
        }
        let n = self.read_resuming(buf)?;
        self.check_rate(n)?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is longer than the {} bytes its manifest gives",
                    self.want, self.size
                ),
            ));
        }
        if let Some(v) = self.verifier.as_mut() {
            v.update(buf.get(..n).unwrap_or_default());
        }
        if n == 0 {
            let got = self.verifier.take().map(Verifier::finish);
            if self.read != self.size || got.as_ref() != Some(&self.want) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "filesystem layer verification failed for digest {}: {} bytes with digest {} arrived",
                        self.want,
                        self.read,
                        got.map_or_else(String::new, |d| d.to_string())
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A blob served from `bytes`, each connection breaking off after `cut` bytes; the
    /// offsets asked for.
    fn served(
        bytes: &'static [u8],
        cut: usize,
        want: &[u8],
    ) -> (VerifiedBlob<'static>, Arc<Mutex<Vec<u64>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let reopen: Reopen<'static> = Box::new(move |from| {
            log.lock().unwrap().push(from);
            let rest = bytes.get(from as usize..).unwrap_or_default();
            let part = rest.get(..cut).unwrap_or(rest);
            let broken = io::Cursor::new(part).chain(Broken(part.len() < rest.len()));
            Ok((Box::new(broken) as Box<dyn Read + Send>, 0))
        });
        let blob = VerifiedBlob::open(
            reopen,
            Digest::sha256_of(want),
            want.len() as u64,
            Duration::from_secs(60),
        )
        .unwrap();
        (blob, asked)
    }

    /// The end of a connection: a reset when it broke off, else the end of the body.
    struct Broken(bool);

    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            if self.0 {
                Err(io::ErrorKind::ConnectionReset.into())
            } else {
                Ok(0)
            }
        }
    }

    /// A registry that sends a byte every few milliseconds.
    struct Trickle;

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_blob_that_trickles_in_is_given_up_after_its_window() {
        let reopen: Reopen<'static> =
            Box::new(|_| Ok((Box::new(Trickle) as Box<dyn Read + Send>, 0)));
        let window = Duration::from_millis(100);
        let mut blob = VerifiedBlob::open(reopen, Digest::sha256_of(b""), 1 << 30, window).unwrap();
        let started = Instant::now();
        let e = blob.finish().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("bytes a second"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_blob_that_differs_from_its_digest_fails_at_its_end() {
        assert!(served(b"layer", 99, b"layer").0.finish().is_ok());
        assert!(served(b"layeR", 99, b"layer").0.finish().is_err());
        assert!(served(b"layer!", 99, b"layer").0.finish().is_err());
        assert!(served(b"laye", 99, b"layer").0.finish().is_err());
    }

    #[test]
    fn a_dropped_connection_resumes_where_it_broke_off() {
        let (mut blob, asked) = served(b"0123456789", 4, b"0123456789");
        blob.finish().unwrap();
        assert_eq!(*asked.lock().unwrap(), vec![0, 4, 8]);
    }

    #[test]
    fn a_connection_that_keeps_dropping_fails_after_the_last_attempt() {
        let (mut blob, asked) = served(b"0123456789", 1, b"0123456789");
        assert_eq!(
            blob.finish().unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(asked.lock().unwrap().len(), MAX_ATTEMPTS as usize);
    }
}
