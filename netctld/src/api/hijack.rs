//! Hijacked connections (`attach`, `exec` start): after Docker's `101 UPGRADED` answer the
//! HTTP connection carries the container's stdio — its output framed as Docker frames it
//! (an 8-byte header per chunk, raw for a terminal), the client's bytes as its stdin.

use std::io::{Read, Write};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::io::SyncIoBridge;

use netctl_engine::runtime::attach::DetachKeys;

use super::{ApiError, ApiResult};

/// The client's side of a hijacked connection, as blocking streams.
pub type Input = Box<dyn Read + Send>;
/// Where the container's output goes.
pub type Output = Box<dyn Write + Send>;

/// The `101 UPGRADED` answer and the connection it hands over, when the client asked for
/// it (`Connection: Upgrade`, `Upgrade: tcp`, as the docker CLI and docker-py send).
pub fn upgrade(req: &mut Request) -> ApiResult<(Response, OnUpgrade)> {
    let asked = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if !asked {
        return Err(ApiError::bad_request(
            "this endpoint hijacks the connection: send Connection: Upgrade and Upgrade: tcp",
        ));
    }
    let on = hyper::upgrade::on(req);
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(Body::empty())
        .map_err(|e| ApiError::internal(format!("answer the upgrade: {e}")))?;
    Ok((response, on))
}

/// Runs `relay` on a blocking thread once the connection is handed over, with its reading
/// and writing halves as blocking streams.
pub fn spawn(on: OnUpgrade, relay: impl FnOnce(Input, Output) + Send + 'static) {
    tokio::spawn(async move {
        let Ok(upgraded) = on.await else {
            return;
        };
        let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
        let (reader, writer) = (
            SyncIoBridge::new(reader),
            Closing(SyncIoBridge::new(writer)),
        );
        tokio::task::spawn_blocking(move || relay(Box::new(reader), Box::new(writer)));
    });
}

/// The writing half of a hijacked connection, ended properly when the relay drops it: what
/// is buffered is sent, then the end (TLS's close_notify, TCP's FIN), so the client reads all
/// of the output and then its end instead of a reset.
struct Closing<W: tokio::io::AsyncWrite + Unpin>(SyncIoBridge<W>);

impl<W: tokio::io::AsyncWrite + Unpin> Write for Closing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> Drop for Closing<W> {
    fn drop(&mut self) {
        // A client already gone has nothing left to tell.
        let _ = self.0.shutdown();
    }
}

/// One chunk of output as the API frames it: raw for a terminal, else Docker's 8-byte
/// header (stream, 0, 0, 0, length big-endian) before the bytes.
pub fn frame(tty: bool, stderr: bool, payload: &[u8]) -> Vec<u8> {
    if tty {
        return payload.to_vec();
    }
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&[if stderr { 2 } else { 1 }, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// How the client's input ended.
#[derive(Debug, PartialEq, Eq)]
pub enum InputEnd {
    /// The client closed its side (or went away): the command sees end of file.
    Closed,
    /// The client typed the detach keys: the attachment ends, the command runs on.
    Detached,
}

/// Copies the client's bytes to `to` until the client ends its input or types the detach
/// keys (which are not passed on), or `to` stops taking them.
pub fn pump_input(from: &mut Input, to: &mut impl Write, mut keys: DetachKeys) -> InputEnd {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return InputEnd::Closed,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        for &b in buf.get(..n).unwrap_or_default() {
            match keys.feed(b) {
                Some(bytes) => out.extend(bytes),
                None => {
                    let _ = to.write_all(&out);
                    return InputEnd::Detached;
                }
            }
        }
        if to.write_all(&out).is_err() {
            return InputEnd::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_framed_as_dockers_multiplexed_stream() {
        assert_eq!(
            frame(false, false, b"hi\n"),
            [1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(frame(false, true, b"x")[..8], [2, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(frame(true, true, b"raw"), b"raw");
    }
}
