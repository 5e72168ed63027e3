//! The credential broker's HTTP server: hyper 1 over tokio, HTTP/1.1, with
//! optional TLS.
//!
//! The caller binds the listener and passes a shutdown future, so tests run
//! the real server on `127.0.0.1:0`. Protections against slow or hostile
//! clients live here:
//! - at most `max_connections` connections are served at once; further ones
//!   wait in the kernel's accept queue instead of consuming memory;
//! - request headers must arrive within `header_read_timeout_seconds` and
//!   fit in [`MAX_HEADER_BYTES`] (else 431 and the connection closes);
//! - a TLS handshake must finish within the same timeout;
//! - on shutdown the listener closes at once, idle connections close, and
//!   in-flight requests get `shutdown_grace_seconds` to finish.

pub mod app;
pub mod audit;
pub mod cache;
pub mod credentials;
mod error;
#[cfg(test)]
mod handler_tests;
pub mod metrics;
pub mod ratelimit;
mod realm;
pub mod tls;
pub mod token;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::instrument::WithSubscriber;

pub use app::{App, Surface};

/// Request line and headers together may not exceed this.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Connection-level settings, from `server:` in config.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        Self {
            max_connections: server.max_connections as usize,
            header_read_timeout: Duration::from_secs(server.header_read_timeout_seconds.into()),
            shutdown_grace: Duration::from_secs(server.shutdown_grace_seconds.into()),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
///
/// # Guarantees
/// Returns only after every connection has finished or the grace period has
/// passed (remaining connections are then dropped).
///
/// # Errors
/// None today: accept errors (such as running out of file descriptors) are
/// logged and retried after a short pause rather than ending the server.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_on(Surface::Api, listener, app, limits, tls, shutdown).await
}

/// Like [`run`], for the listener of `surface`. The ops listener
/// (`server.metrics_listen`) has connection slots of its own, so health
/// checks and scrapes are answered while the API listener is saturated.
///
/// # Errors
/// As [`run`].
pub async fn run_on(
    surface: Surface,
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let closing = closing_rx.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        // `with_current_subscriber`: logs of a connection go where `run`'s
        // go, also when the caller set a subscriber for this task only (a
        // test capturing serve's logs) rather than the global one.
        connections.spawn(
            async move {
                let _permit = permit;
                app.metrics.connection_opened();
                match tls {
                    None => {
                        serve_connection(surface, stream, peer, app.clone(), &limits, closing).await
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(
                            limits.header_read_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls_stream)) => {
                                serve_connection(
                                    surface,
                                    tls_stream,
                                    peer,
                                    app.clone(),
                                    &limits,
                                    closing,
                                )
                                .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
                app.metrics.connection_closed();
            }
            .with_current_subscriber(),
        );
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(open, grace = ?limits.shutdown_grace, "shutting down: draining connections");
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "grace period over: dropping remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

async fn serve_connection<S>(
    surface: Surface,
    stream: S,
    peer: SocketAddr,
    app: Arc<App>,
    limits: &Limits,
    mut closing: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle_on(surface, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
