//! The application: [`App`], the state every request shares, and its
//! router, which sends each path to its flow and records the route's
//! metric and the request id on every answer.
//!
//! The flows live in rooms of their own: [`super::credentials`] (the
//! credential endpoint), [`super::realm`] (the `oci-token` token realm),
//! [`super::error`] (every failure as a JSON response) and [`super::audit`]
//! (the audit records). Health, readiness and metrics are small enough to
//! stay here.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::cache::CredentialCache;
use super::error::ApiError;
use super::metrics::Metrics;
use super::ratelimit::RateLimiter;
use super::snapshot::{Rows, StoreLink, StoredProject, effective};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::naming::ProjectName;
use crate::registry::RegistryProvider;
use crate::store::{Record, Store};

/// Kept at this path for the callers that build an [`App`].
pub use super::audit::AuditSink;
// The flows take the plumbing from here, beside `App`.
pub use super::http::Body;
pub(super) use super::http::{RequestId, json_response};

/// What a config reload replaces ([`super::reload`]): the configuration
/// and what is built from it alone. A request takes the current one once,
/// at its start, and keeps it to the end, so it runs wholly on the old
/// config or wholly on the new.
pub struct Live {
    /// The configuration requests run on: the files' with the store's
    /// projects added ([`super::snapshot::effective`]).
    pub config: Arc<Config>,
    /// The configuration as the files say.
    pub base: Arc<Config>,
    /// The store's rows (empty without a store).
    pub rows: Arc<Rows>,
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
    /// AWS's quotas, for ECR: the queue cold issuances wait in.
    pub(super) pacing: Option<super::pacing::Pacing>,
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
    /// The project store, when `store` is configured.
    store: Option<StoreLink>,
    /// Held while a new [`Live`] is made from the current one (a config
    /// reload, a store change), so neither undoes the other.
    rebuild: Mutex<()>,
    /// Told of every new [`Live`]: the controller's cue to look again.
    pub(super) changed: tokio::sync::Notify,
    /// Held from a read of (or write to) the store until what it found is
    /// installed: a full read that began before a write can then never
    /// install its older rows over the write's.
    store_sync: tokio::sync::Mutex<()>,
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
        // A cold issuance may wait its turn at AWS's quota first.
        let cache = CredentialCache::new(
            Duration::from_secs(server.credential_cache.min_remaining_seconds.into()),
            ISSUE_TIMEOUT + Duration::from_secs(server.credential_cache.max_wait_seconds.into()),
        );
        let pacing = match (&config.registry, provider.throttled()) {
            (crate::config::RegistryConfig::Ecr(ecr), Some(throttled)) => Some(
                super::pacing::Pacing::new(ecr, &server.credential_cache, throttled),
            ),
            _ => None,
        };
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
        let mut metrics = Metrics::new(
            config.projects.iter().map(|p| p.name.as_str()),
            provider.kind(),
            config.server.metrics_project_labels,
        );
        if let Some(counts) = provider.throttled() {
            metrics.count_throttles_of(counts);
        }
        // Key files are read once, at start: so are their dates.
        let tls = config
            .server
            .tls
            .as_ref()
            .and_then(super::tls::chain_expiry);
        for (which, expiry) in [("tls", tls), ("oci-token", provider.certificate_expiry())] {
            if let Some(not_after) = expiry {
                metrics.set_certificate_expiry(which, not_after);
            }
        }
        Self {
            metrics_elsewhere: config.server.metrics_listen.is_some(),
            live: ArcSwap::from_pointee({
                let config = Arc::new(config);
                Live {
                    base: config.clone(),
                    config,
                    rows: Arc::default(),
                    auth: Arc::new(auth),
                }
            }),
            provider,
            pacing,
            cache,
            limiter,
            token_limiter,
            metrics,
            audit,
            nonce,
            counter: AtomicU64::new(0),
            store: None,
            rebuild: Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            store_sync: tokio::sync::Mutex::new(()),
        }
    }

    /// This app with the project store `store` ([`super::snapshot`] keeps
    /// its snapshot current once [`super::follow::follow`] runs).
    pub fn with_store(mut self, store: Store) -> Self {
        self.metrics.set_store_up(true);
        // The controller's series exist from the start (0 until it leads),
        // so a scrape never finds them missing.
        if self.live.load().base.controller.enabled {
            self.metrics.set_controller_leader(false);
        }
        self.store = Some(StoreLink::new(store));
        self
    }

    /// Held while a new [`Live`] is made and installed.
    pub(super) fn rebuild_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.rebuild.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn store_link(&self) -> Option<&StoreLink> {
        self.store.as_ref()
    }

    /// Held around a store read or write and the install of its result
    /// (see the field).
    pub(super) async fn store_sync(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.store_sync.lock().await
    }

    /// Replaces the store's rows; rows that read the same as the running
    /// ones change nothing (and wake no controller).
    pub(super) fn set_rows(&self, rows: Rows) {
        let _guard = self.rebuild_lock();
        let running = self.live();
        let same = running.rows.len() == rows.len()
            && running
                .rows
                .iter()
                .zip(&rows)
                .all(|((a, ra), (b, rb))| a == b && ra.record == rb.record);
        if same {
            return;
        }
        self.install(running.base.clone(), Arc::new(rows), running.auth.clone());
    }

    /// Applies changed rows (`None`: the row is gone).
    pub(super) fn patch_rows(&self, changes: Vec<(ProjectName, Option<Record>)>) {
        if changes.is_empty() {
            return;
        }
        let _guard = self.rebuild_lock();
        let running = self.live();
        let mut rows = (*running.rows).clone();
        for (name, record) in changes {
            match record {
                Some(r) => {
                    rows.insert(name, Arc::new(StoredProject::new(r)));
                }
                None => {
                    rows.remove(&name);
                }
            }
        }
        self.install(running.base.clone(), Arc::new(rows), running.auth.clone());
    }

    /// Makes and swaps in the [`Live`] of `base`, `rows` and `auth`; the
    /// caller holds `rebuild`. Credentials cached for projects that are
    /// gone are dropped, and metrics follow the project set.
    pub(super) fn install(&self, base: Arc<Config>, rows: Arc<Rows>, auth: Arc<Authenticator>) {
        let config = effective(&base, &rows);
        let names: BTreeSet<&str> = config.projects.iter().map(|p| p.name.as_str()).collect();
        // Counters first, so a request on the new config finds its label.
        self.metrics.set_projects(names.iter().copied());
        if self.store.is_some() {
            self.metrics.set_store_projects(rows.len());
        }
        self.cache.retain(|(p, _)| names.contains(p.as_str()));
        self.live.store(Arc::new(Live {
            config: Arc::new(config),
            base,
            rows,
            auth,
        }));
        self.changed.notify_one();
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
            p if api_here
                && self.store.is_some()
                && (p == "/registry/projects" || p.starts_with("/registry/projects/")) =>
            {
                ("projects", self.projects(req, &request_id).await)
            }
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
                    let mut text = self.metrics.render(self.cache.len());
                    if let Some(pacing) = &self.pacing {
                        pacing.render(&mut text);
                    }
                    let mut r = Response::new(Body::from(text));
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
    /// Ready means "can answer credential requests": config loaded and
    /// keys to verify tokens with. Upstream health (AWS, the project
    /// store) is said in the body, not failed on: while AWS is down, cached
    /// credentials keep flowing and a cold project gets 503 with
    /// `Retry-After`, and taking every replica out of service at once would
    /// turn that into no answer at all. Doctor and the metrics watch AWS.
    async fn readyz(&self) -> Response<Body> {
        let mut problems = Vec::new();
        if !self.live.load().auth.ready() {
            problems.push("no keys to verify tokens with (JWKS not loaded)");
        }
        let provider = if self.provider.ready().await {
            "ok"
        } else {
            "unreachable"
        };
        let store = self
            .store
            .as_ref()
            .map(|s| if s.up() { "ok" } else { "unavailable" });
        let mut body = if problems.is_empty() {
            json!({"status": "ready"})
        } else {
            json!({"status": "not ready", "problems": problems})
        };
        body["provider"] = json!(provider);
        if let Some(store) = store {
            body["store"] = json!(store);
        }
        let status = if problems.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &body)
    }
}

/// 405 for anything but GET on a known route.
pub(super) fn only_get<B>(req: &Request<B>) -> Option<Response<Body>> {
    (req.method() != Method::GET).then(|| ApiError::MethodNotAllowed.response())
}
