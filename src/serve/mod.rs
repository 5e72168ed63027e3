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
//! - every connection is bounded once its headers are in, since hyper's
//!   header timer only runs while it reads: a response write that makes no
//!   progress for `write_timeout_seconds` (a client that pipelines requests
//!   and never reads its answers) closes the connection, so does
//!   `idle_timeout_seconds` with no request in flight and no bytes moving,
//!   and a connection is closed after `max_requests_per_connection`
//!   requests (the last answer says `Connection: close`) or, once its
//!   request in flight is answered, after `max_connection_age_seconds`
//!   ([`Watched`] measures the progress);
//! - on shutdown the listener closes at once, idle connections close, and
//!   in-flight requests get `shutdown_grace_seconds` to finish.

pub mod app;
pub mod audit;
pub mod cache;
pub mod controller;
pub mod credentials;
mod error;
pub mod follow;
#[cfg(test)]
mod handler_tests;
mod http;
pub mod metrics;
pub mod pacing;
mod projects;
pub mod ratelimit;
mod realm;
pub mod reload;
pub mod snapshot;
pub mod tls;
pub mod token;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// How long a response write may make no progress.
    pub write_timeout: Duration,
    /// How long a connection may sit with no request and no bytes moving.
    pub idle_timeout: Duration,
    pub max_requests_per_connection: u64,
    pub max_connection_age: Duration,
}

impl Limits {
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        let seconds = |s: u32| Duration::from_secs(s.into());
        Self {
            max_connections: server.max_connections as usize,
            header_read_timeout: seconds(server.header_read_timeout_seconds),
            shutdown_grace: seconds(server.shutdown_grace_seconds),
            write_timeout: seconds(server.write_timeout_seconds),
            idle_timeout: seconds(server.idle_timeout_seconds),
            max_requests_per_connection: server.max_requests_per_connection.into(),
            max_connection_age: seconds(server.max_connection_age_seconds),
        }
    }
}

/// What a connection's I/O has done, for its watchdog: when bytes last
/// moved, and since when a write has been waiting for the client to read.
/// Times are milliseconds since the connection started (tokio's clock).
#[derive(Debug)]
struct Progress {
    started: tokio::time::Instant,
    /// When bytes last moved either way.
    last_moved_ms: AtomicU64,
    /// 1 + when a write first found the client's window full; 0 while no
    /// write waits.
    write_blocked_ms: AtomicU64,
    /// Requests being answered now.
    in_flight: AtomicUsize,
    /// Past its maximum age: its next answer says `Connection: close`.
    retiring: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: tokio::time::Instant::now(),
            last_moved_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            retiring: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes went out: the client reads.
    fn moved(&self) {
        self.last_moved_ms.store(self.now_ms(), Ordering::Relaxed);
        self.write_blocked_ms.store(0, Ordering::Relaxed);
    }

    /// Bytes came in: the connection is not idle, but that says nothing
    /// of whether the client reads what is written to it.
    fn received(&self) {
        self.last_moved_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// What a write to the socket came to.
    fn wrote(&self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => self.moved(),
            Poll::Pending => self.write_waits(),
            _ => {}
        }
    }

    fn write_waits(&self) {
        let now = self.now_ms().saturating_add(1);
        let _ =
            self.write_blocked_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Why the connection should be dropped now, if it should.
    fn verdict(&self, limits: &Limits) -> Option<&'static str> {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let blocked = self.write_blocked_ms.load(Ordering::Relaxed);
        if blocked != 0 && now.saturating_sub(blocked - 1) >= ms(limits.write_timeout) {
            return Some("a write made no progress (the client does not read)");
        }
        let idle = now.saturating_sub(self.last_moved_ms.load(Ordering::Relaxed));
        if blocked == 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && idle >= ms(limits.idle_timeout)
        {
            return Some("idle");
        }
        None
    }
}

/// A connection's socket, reporting its progress ([`Progress`]). It wraps
/// the TCP stream itself, under TLS when there is TLS, so what it measures
/// is bytes on the wire: rustls takes plaintext into its buffer long before
/// the client has read the ciphertext.
struct Watched<S> {
    inner: S,
    progress: Arc<Progress>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.progress.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.progress.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if polled.is_pending() {
            self.progress.write_waits();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
                let progress = Arc::new(Progress::new());
                let stream = Watched {
                    inner: stream,
                    progress: progress.clone(),
                };
                match tls {
                    None => {
                        let app = app.clone();
                        serve_connection(surface, stream, peer, app, &limits, closing, progress)
                            .await;
                    }
                    Some(ref acceptor) => {
                        match tokio::time::timeout(
                            limits.header_read_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls_stream)) => {
                                let app = app.clone();
                                serve_connection(
                                    surface, tls_stream, peer, app, &limits, closing, progress,
                                )
                                .await;
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
    io: S,
    peer: SocketAddr,
    app: Arc<App>,
    limits: &Limits,
    mut closing: watch::Receiver<bool>,
    progress: Arc<Progress>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let served = Arc::new(AtomicU64::new(0));
    let max_requests = limits.max_requests_per_connection;
    let service = {
        let progress = progress.clone();
        service_fn(move |req| {
            let (app, progress, served) = (app.clone(), progress.clone(), served.clone());
            async move {
                progress.in_flight.fetch_add(1, Ordering::Relaxed);
                let mut response = app.handle_on(surface, req).await;
                progress.in_flight.fetch_sub(1, Ordering::Relaxed);
                // The last request a connection may make (by count, or by
                // age): hyper closes it once this answer is written.
                let last = served.fetch_add(1, Ordering::Relaxed) + 1 >= max_requests;
                if last || progress.retiring.load(Ordering::Relaxed) {
                    response.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // Often enough to hold each deadline to within a quarter of itself.
    let tick = limits
        .write_timeout
        .min(limits.idle_timeout)
        .div_f64(4.0)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let too_old = tokio::time::sleep(limits.max_connection_age);
    tokio::pin!(too_old);
    let mut winding_down = false;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) }, if !winding_down => {
                // Finish the request in flight (if any), then close.
                conn.as_mut().graceful_shutdown();
                winding_down = true;
            }
            () = &mut too_old, if !winding_down => {
                // The answer in flight (or the next one) says
                // `Connection: close`; a connection waiting for its next
                // request is closed now, as an idle one would be.
                progress.retiring.store(true, Ordering::Relaxed);
                if progress.in_flight.load(Ordering::Relaxed) == 0 {
                    conn.as_mut().graceful_shutdown();
                }
                winding_down = true;
            }
            () = tokio::time::sleep(tick) => {
                if let Some(why) = progress.verdict(limits) {
                    tracing::debug!(%peer, why, "closing the connection");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 8,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(1),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_requests_per_connection: 1000,
            max_connection_age: Duration::from_secs(600),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_and_an_idle_connection_are_dropped_a_busy_one_is_not() {
        let limits = limits();
        let p = Progress::new();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(p.verdict(&limits), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(p.verdict(&limits), Some("idle"));

        // A request being answered, however long, is not idle.
        p.moved();
        p.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(p.verdict(&limits), None);

        // Its answer cannot be written: dropped once the write waited
        // write_timeout, counted from the first wait, not the last.
        p.in_flight.fetch_sub(1, Ordering::Relaxed);
        p.write_waits();
        tokio::time::advance(Duration::from_secs(9)).await;
        p.write_waits();
        assert_eq!(p.verdict(&limits), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            p.verdict(&limits)
                .is_some_and(|why| why.contains("does not read"))
        );

        // Bytes coming in say nothing of whether the client reads: the
        // stall stands; bytes going out clear it.
        p.received();
        assert!(p.verdict(&limits).is_some());
        p.moved();
        assert_eq!(p.verdict(&limits), None);
    }
}
