//! The application: [`App`], the state every request shares, and its
//! router, which sends each path to its flow and records the route's
//! metric and the request id on every answer.
//!
//! The flows live in rooms of their own: [`super::credentials`] (the
//! credential endpoint), [`super::realm`] (the `oci-token` token realm),
//! [`super::error`] (every failure as a JSON response) and [`super::audit`]
//! (the audit records). Health, readiness and metrics are small enough to
//! stay here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::cache::CredentialCache;
use super::error::ApiError;
use super::metrics::Metrics;
use super::ratelimit::RateLimiter;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::registry::RegistryProvider;

/// Kept at this path for the callers that build an [`App`].
pub use super::audit::AuditSink;

pub type Body = Full<Bytes>;

/// What a config reload replaces ([`super::reload`]): the configuration
/// and what is built from it alone. A request takes the current one once,
/// at its start, and keeps it to the end, so it runs wholly on the old
/// config or wholly on the new.
pub struct Live {
    pub config: Arc<Config>,
    /// Shared with the previous [`Live`] when `auth` did not change, so a
    /// reload neither refetches the JWKS nor forgets verified tokens.
    pub auth: Arc<Authenticator>,
}

/// Everything a request may need, shared by all connections. Fields are
/// visible to the flows in the sibling modules of `serve`. What comes from
/// the parts of the config that cannot change live (`server`, `registry`:
/// the provider, cache, rate limits) is built once.
pub struct App {
    /// Swapped whole by a reload; reading it is lock-free.
    pub(super) live: ArcSwap<Live>,
    /// Whether `server.metrics_listen` is set (fixed: a listener).
    metrics_elsewhere: bool,
    pub(super) provider: RegistryProvider,
    pub(super) cache: CredentialCache,
    pub(super) limiter: RateLimiter,
    /// The token realm's own buckets (same settings), keyed by the ticket's
    /// caller: a registry token costs a signature, and a client pushing
    /// asks for several, which must not eat into its credential requests.
    pub(super) token_limiter: RateLimiter,
    pub metrics: Metrics,
    pub(super) audit: AuditSink,
    /// Request ids are `{nonce}-{counter}`: unique across replicas and restarts
    /// without coordination.
    nonce: u32,
    counter: AtomicU64,
}

/// Issuing may take this long before the caller gets a 503.
pub(crate) const ISSUE_TIMEOUT: Duration = Duration::from_secs(15);

impl App {
    pub fn new(
        config: Config,
        auth: Authenticator,
        provider: RegistryProvider,
        audit: AuditSink,
    ) -> Self {
        let server = &config.server;
        let cache = CredentialCache::new(
            Duration::from_secs(server.credential_cache.min_remaining_seconds.into()),
            ISSUE_TIMEOUT,
        );
        let limiter = RateLimiter::new(
            server.rate_limit.requests_per_minute,
            server.rate_limit.burst,
        );
        let token_limiter = RateLimiter::new(
            server.rate_limit.requests_per_minute,
            server.rate_limit.burst,
        );
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32) ^ std::process::id())
            .unwrap_or_default();
        let metrics = Metrics::new(
            config.projects.iter().map(|p| p.name.as_str()),
            provider.kind(),
            config.server.metrics_project_labels,
        );
        Self {
            metrics_elsewhere: config.server.metrics_listen.is_some(),
            live: ArcSwap::from_pointee(Live {
                config: Arc::new(config),
                auth: Arc::new(auth),
            }),
            provider,
            cache,
            limiter,
            token_limiter,
            metrics,
            audit,
            nonce,
            counter: AtomicU64::new(0),
        }
    }

    /// The configuration in effect now.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// The configuration and authenticator in effect now; a request holds
    /// this one to its end.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Answers one request on the API listener (`server.listen`). Never
    /// fails: every problem is a JSON response.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.handle_on(Surface::Api, req).await
    }

    /// Answers one request on `surface`.
    pub async fn handle_on<B>(&self, surface: Surface, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = RequestId {
            ours: self.new_request_id(),
            callers: callers_request_id(&req),
        };
        let path = req.uri().path();
        // With `metrics_listen`, the metrics are read there only, so the
        // API listener (often public) tells nothing about traffic; the ops
        // listener answers nothing but health and metrics.
        let metrics_here = match surface {
            Surface::Api => !self.metrics_elsewhere,
            Surface::Ops => true,
        };
        let api_here = surface == Surface::Api;
        let (route, mut response) = match path {
            "/registry/credentials" if api_here => {
                ("credentials", self.credentials(&req, &request_id).await)
            }
            "/registry/token" if api_here => ("token", self.token(req, &request_id).await),
            "/healthz" => (
                "healthz",
                only_get(&req)
                    .unwrap_or_else(|| json_response(StatusCode::OK, &json!({"status": "ok"}))),
            ),
            "/readyz" => (
                "readyz",
                match only_get(&req) {
                    Some(r) => r,
                    None => self.readyz().await,
                },
            ),
            "/metrics" if metrics_here => (
                "metrics",
                only_get(&req).unwrap_or_else(|| {
                    let mut r = Response::new(Body::from(self.metrics.render(self.cache.len())));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    r
                }),
            ),
            _ => ("other", ApiError::NoRoute.response()),
        };
        self.metrics.request(route, response.status().as_u16());
        if let Ok(v) = HeaderValue::from_str(&request_id.ours) {
            response.headers_mut().insert("x-request-id", v);
        }
        response
    }

    /// A request id of our own: unique per process (the nonce) and per
    /// request (the counter).
    fn new_request_id(&self) -> String {
        format!(
            "{:08x}-{}",
            self.nonce,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `server.listen`: the API, and health and metrics unless
    /// `server.metrics_listen` is set.
    Api,
    /// `server.metrics_listen`: `/metrics`, `/healthz` and `/readyz` only.
    Ops,
}

/// A request's ids. Ours names the request in the response header and the
/// audit line; the caller's `X-Request-Id` is recorded beside it, never in
/// its place, so a caller cannot forge or collide with another request's
/// id in the audit trail.
pub(super) struct RequestId {
    pub(super) ours: String,
    pub(super) callers: Option<String>,
}

/// The caller's `X-Request-Id`, when it is short and plain (anything else
/// is left out of the audit line rather than escaped into it).
fn callers_request_id<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
}

impl App {
    async fn readyz(&self) -> Response<Body> {
        let mut problems = Vec::new();
        if !self.live.load().auth.ready() {
            problems.push("no keys to verify tokens with (JWKS not loaded)");
        }
        if !self.provider.ready().await {
            problems.push("the registry provider is not reachable");
        }
        if problems.is_empty() {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "problems": problems}),
            )
        }
    }
}

/// 405 for anything but GET on a known route.
pub(super) fn only_get<B>(req: &Request<B>) -> Option<Response<Body>> {
    (req.method() != Method::GET).then(|| ApiError::MethodNotAllowed.response())
}

/// A JSON body with its content type; the flows and error answers share it.
pub(super) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
