//! Bodies that stream what a blocking engine reader produces (`events`, `logs -f`, `wait`):
//! the reader runs on a blocking thread and hands chunks over a bounded channel; when the
//! client goes away, the body is dropped and the reader is cancelled at once, even while
//! it sleeps between records.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::Frame;
use netctl_engine::watch::Cancel;
use tokio::sync::mpsc;

use super::{ApiError, ApiResult};

/// How many chunks may wait for a slow client before the reader waits too.
const BACKLOG: usize = 64;

/// The reader's end: where it puts chunks, and whether the client is still there.
pub struct Sink {
    tx: mpsc::Sender<Bytes>,
    /// Pressed when the client goes away.
    pub cancel: Cancel,
}

impl Sink {
    /// Hands a chunk to the client (waiting while it is slow); false once it is gone.
    pub fn send(&self, chunk: impl Into<Bytes>) -> bool {
        self.tx.blocking_send(chunk.into()).is_ok()
    }
}

/// A sink is where an engine function that writes (`export`, `save`, `cp`) writes to.
impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.send(Bytes::copy_from_slice(buf)) {
            Ok(buf.len())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Spools a request body (an image archive, a tar to unpack) to a file in `dir`, without
/// blocking a worker; the file, deleted when dropped.
pub async fn spool(body: Body, dir: &std::path::Path) -> ApiResult<tempfile::NamedTempFile> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let dir = dir.to_path_buf();
    let file = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        tempfile::NamedTempFile::new_in(&dir)
    })
    .await
    .map_err(|e| ApiError::internal(format!("spool the body: {e}")))?
    .map_err(|e| ApiError::internal(format!("spool the body: {e}")))?;
    let mut out = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| ApiError::internal(format!("spool the body: {e}")))?,
    );
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("read the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)
                .await
                .map_err(|e| ApiError::internal(format!("spool the body: {e}")))?;
        }
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(format!("spool the body: {e}")))?;
    Ok(file)
}

/// The client's end: a body that cancels the reader when dropped.
struct Feed {
    rx: mpsc::Receiver<Bytes>,
    cancel: Cancel,
}

impl http_body::Body for Feed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A streaming body fed by `produce`, run on a blocking thread with the engine's reader.
pub fn body(produce: impl FnOnce(Sink) + Send + 'static) -> ApiResult<Body> {
    let cancel = Cancel::new().map_err(ApiError::from)?;
    let (tx, rx) = mpsc::channel(BACKLOG);
    let sink = Sink {
        tx,
        cancel: cancel.clone(),
    };
    tokio::task::spawn_blocking(move || produce(sink));
    Ok(Body::new(Feed { rx, cancel }))
}
