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
