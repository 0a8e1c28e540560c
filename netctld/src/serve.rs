//! Serving connections. Every listener's connections live under the same bounds, so that a
//! slow, idle or flooding client cannot starve the others: a cap on open connections, a
//! deadline for a request's head (and for a TLS handshake), and a bound on its size.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::util::BoxCloneSyncService;

/// Connections served at once; the next client waits in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's line and headers (also the idle time of
/// a kept-alive connection).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// How long a TLS client may take to finish its handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest request line and headers read (a larger one is answered 431).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The API as hyper calls it.
pub type App = BoxCloneSyncService<Request<Incoming>, Response, Infallible>;

/// The API and the bounds its connections share.
#[derive(Clone)]
pub struct Server {
    app: App,
    permits: Arc<Semaphore>,
}

impl Server {
    /// A server of `app` with room for [`MAX_CONNECTIONS`].
    pub fn new(app: App) -> Self {
        Server {
            app,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Serves every connection to `listener` until the process ends.
    pub async fn unix(self, listener: UnixListener) {
        // The permits are never closed: the loop ends with the process.
        while let Ok(permit) = self.permits.clone().acquire_owned().await {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(self.clone().connection(stream, permit));
                }
                Err(e) => accept_failed(&e).await,
            }
        }
    }

    /// Serves every TLS connection to `listener` whose client shows a certificate
    /// `acceptor` trusts; others are closed after the handshake fails.
    pub async fn tls(self, listener: TcpListener, acceptor: TlsAcceptor) {
        while let Ok(permit) = self.permits.clone().acquire_owned().await {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let server = self.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream));
                        if let Ok(Ok(tls)) = handshake.await {
                            server.connection(tls, permit).await;
                        }
                    });
                }
                Err(e) => accept_failed(&e).await,
            }
        }
    }

    /// One connection's requests, then (for attach and exec) its hijacked stream.
    async fn connection<I>(self, io: I, _permit: OwnedSemaphorePermit)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEAD_DEADLINE)
            .max_buf_size(MAX_HEAD_BYTES);
        // A client that goes away mid-request is not an error of the daemon's.
        let _ = http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(self.app))
            .with_upgrades()
            .await;
    }
}

/// A failed accept (out of descriptors, most often): said, and retried after a pause so the
/// loop does not spin while connections close.
async fn accept_failed(e: &std::io::Error) {
    eprintln!("netctld: accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
