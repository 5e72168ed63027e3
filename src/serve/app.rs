//! Request handling: routes, the credential flow, JSON errors, audit lines.
//!
//! The credential flow, in order, each step able to end the request:
//! 1. `GET` only (405);
//! 2. a valid `project` query parameter (400): checked before anything
//!    else, so a hostile name never reaches auth, logs or AWS;
//! 3. a valid Bearer token (401 with `WWW-Authenticate`);
//! 4. the caller's rate limit (429 with `Retry-After`);
//! 5. the access rule (404 for unknown *and* forbidden projects, same body);
//! 6. credentials from the cache or the provider (503 with `Retry-After`).
//!
//! The token realm (`/registry/token`, `oci-token` only) authenticates by
//! ticket instead: GET or POST (405), a parseable request (400), a ticket
//! given (401 with a Basic challenge), the configured `service` if one is
//! named (400), a valid ticket (401), its caller within the rate limit
//! (429), its project still configured (401). Scopes beyond the ticket's
//! repository are not errors: they are simply not granted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::cache::{CredentialCache, Served};
use super::metrics::Metrics;
use super::ratelimit::RateLimiter;
use std::sync::Arc;

use crate::auth::jwt::Verified;
use crate::auth::{Authenticator, Denial, TokenError, authorize};
use crate::config::Config;
use crate::naming::ProjectName;
use crate::registry::RegistryProvider;

pub type Body = Full<Bytes>;

/// Where audit lines go: one JSON object per call, no trailing newline.
pub type AuditSink = Box<dyn Fn(&str) + Send + Sync>;

/// Everything a request may need, shared by all connections.
pub struct App {
    config: Config,
    auth: Authenticator,
    provider: Box<dyn RegistryProvider>,
    cache: CredentialCache,
    limiter: RateLimiter,
    /// The token realm's own buckets (same settings), keyed by the ticket's
    /// caller: a registry token costs a signature, and a client pushing
    /// asks for several, which must not eat into its credential requests.
    token_limiter: RateLimiter,
    pub metrics: Metrics,
    audit: AuditSink,
    /// Request ids are `{nonce}-{counter}`: unique across replicas and restarts
    /// without coordination.
    nonce: u32,
    counter: AtomicU64,
}

/// Issuing may take this long before the caller gets a 503.
pub const ISSUE_TIMEOUT: Duration = Duration::from_secs(15);

impl App {
    pub fn new(
        config: Config,
        auth: Authenticator,
        provider: Box<dyn RegistryProvider>,
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
        );
        Self {
            config,
            auth,
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

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one request. Never fails: every problem is a JSON response.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = self.request_id(&req);
        let (route, mut response) = match req.uri().path() {
            "/registry/credentials" => ("credentials", self.credentials(&req, &request_id).await),
            "/registry/token" => ("token", self.token(req, &request_id).await),
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
            "/metrics" => (
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
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", v);
        }
        response
    }

    /// The caller's `X-Request-Id` when it is short and plain, else our own.
    fn request_id<B>(&self, req: &Request<B>) -> String {
        let given = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            });
        match given {
            Some(id) => id.to_string(),
            None => format!(
                "{:08x}-{}",
                self.nonce,
                self.counter.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    async fn readyz(&self) -> Response<Body> {
        let mut problems = Vec::new();
        if !self.auth.ready() {
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

    async fn credentials<B>(&self, req: &Request<B>, request_id: &str) -> Response<Body> {
        let mut audit = Audit {
            request_id,
            provider: self.provider.kind(),
            ..Audit::default()
        };
        let result = self.credentials_flow(req, &mut audit).await;
        let response = match result {
            Ok((project, served)) => {
                audit.outcome = "issued";
                audit.cache_hit = served.cache_hit;
                audit.stale = served.stale;
                let (body, expires_at) = credentials_body(&project, &served);
                audit.expires_at = expires_at;
                let outcome = match (served.stale, served.cache_hit) {
                    (true, _) => "stale",
                    (false, true) => "cache_hit",
                    (false, false) => "issued",
                };
                self.metrics.credential(project.as_str(), outcome);
                let mut r = Response::new(Body::from(body));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => {
                audit.outcome = e.outcome();
                // Only configured names become labels: request input must
                // not grow the metric set.
                let label = audit.project.as_ref().map_or("-", ProjectName::as_str);
                self.metrics.credential(label, e.outcome());
                e.response()
            }
        };
        (self.audit)(&audit.line());
        response
    }

    async fn credentials_flow<B>(
        &self,
        req: &Request<B>,
        audit: &mut Audit<'_>,
    ) -> Result<(ProjectName, Served), ApiError> {
        if req.method() != Method::GET {
            return Err(ApiError::MethodNotAllowed);
        }
        let project = project_param(req.uri().query()).map_err(ApiError::BadProject)?;
        audit.project = Some(project.clone());
        let token = bearer_token(req)?;
        let now = unix_now() as i64;
        let verified = self
            .auth
            .authenticate(token, now)
            .await
            .map_err(ApiError::InvalidToken)?;
        audit.caller = Some(verified.clone());
        let caller = &verified.caller;
        self.limiter
            .check(&caller.subject)
            .map_err(ApiError::RateLimited)?;
        let grant = authorize(&self.config, caller, &project).map_err(ApiError::NotFound)?;
        audit.grant = Some(match &grant {
            crate::auth::Grant::Admin(p) => format!("admin via {p}"),
            crate::auth::Grant::Access(p) => format!("access via {p}"),
        });
        if self.provider.per_caller() {
            // Cheap and bound to the caller: never shared through the cache.
            let credentials = self
                .provider
                .credentials(&project, &caller.subject)
                .await
                .map_err(|e| {
                    audit.reason = Some(e.to_string());
                    ApiError::Unavailable(Duration::from_secs(1))
                })?;
            return Ok((project, Served::issued(credentials)));
        }
        let served = self
            .cache
            .get(&project, || async {
                let started = std::time::Instant::now();
                let result = self.provider.credentials(&project, &caller.subject).await;
                self.metrics
                    .provider_call(result.is_ok(), started.elapsed());
                if let Err(e) = &result {
                    tracing::warn!(project = %project, error = %e, "issuing credentials failed");
                }
                result
            })
            .await
            .map_err(|e| {
                audit.reason = Some(e.message.clone());
                ApiError::Unavailable(e.retry_after)
            })?;
        if served.stale {
            tracing::warn!(project = %project, "serving cached credentials while the provider fails");
        }
        Ok((project, served))
    }
}

impl App {
    async fn token<B>(&self, req: Request<B>, request_id: &str) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(realm) = self.provider.token_realm() else {
            return ApiError::NoRoute.response();
        };
        let mut audit = TokenAudit {
            request_id,
            ..TokenAudit::default()
        };
        let response = match self.token_flow(realm, req, &mut audit).await {
            Ok((issued, offline_ticket)) => {
                audit.outcome = "issued";
                audit.granted = issued
                    .access
                    .iter()
                    .flat_map(|a| a.actions.iter().map(move |act| format!("{}:{act}", a.name)))
                    .collect();
                let issued_at = rfc3339(issued.issued_at.max(0) as u64);
                audit.expires_at =
                    Some(rfc3339((issued.issued_at + issued.expires_in).max(0) as u64));
                let mut body = json!({
                    "token": issued.token,
                    "access_token": issued.token,
                    "expires_in": issued.expires_in,
                    "issued_at": issued_at,
                });
                if let Some(ticket) = offline_ticket {
                    // The ticket itself is the refresh token: it is what
                    // grants, and it expires on its own schedule.
                    body["refresh_token"] = Value::String(ticket);
                }
                let mut r = json_response(StatusCode::OK, &body);
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => {
                audit.outcome = e.outcome();
                e.response()
            }
        };
        (self.audit)(&audit.line());
        response
    }

    /// The realm's checks, in order; the token and, when asked for, the
    /// ticket to hand back as refresh token.
    async fn token_flow<B>(
        &self,
        realm: &crate::registry::oci_token::OciTokenProvider,
        req: Request<B>,
        audit: &mut TokenAudit<'_>,
    ) -> Result<(crate::registry::oci_token::RegistryToken, Option<String>), ApiError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        use super::token::{MAX_BODY_BYTES, RequestError, from_form, from_query};
        use http_body_util::BodyExt;
        let request = match *req.method() {
            Method::GET => from_query(
                req.uri().query(),
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
            ),
            Method::POST => {
                let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
                let body = tokio::time::timeout(BODY_TIMEOUT, limited.collect())
                    .await
                    .map_err(|_| {
                        ApiError::BadTokenRequest("the request body was not sent in time".into())
                    })?
                    .map_err(|_| {
                        ApiError::BadTokenRequest("the request body is too large or broken".into())
                    })?;
                from_form(&body.to_bytes())
            }
            _ => return Err(ApiError::TokenMethodNotAllowed),
        };
        let request = request.map_err(|e| match e {
            RequestError::MissingCredentials => ApiError::MissingTicket,
            other => ApiError::BadTokenRequest(other.to_string()),
        })?;
        if let Some(service) = &request.service
            && service != &realm.config().service
        {
            return Err(ApiError::BadTokenRequest(format!(
                "this realm issues tokens for service `{}`",
                realm.config().service
            )));
        }
        let now = unix_now() as i64;
        let ticket = realm
            .verify_ticket(&request.ticket, now)
            .map_err(|e| ApiError::InvalidTicket(e.to_string()))?;
        audit.subject = Some(ticket.sub.clone());
        audit.project = Some(ticket.project.clone());
        // Recorded only now: before the ticket checks out, they are
        // anyone's text.
        audit.scopes = request.scopes.clone();
        self.token_limiter
            .check(&ticket.sub)
            .map_err(ApiError::RateLimited)?;
        // A project removed from config stops working at once, tickets or not.
        if self.config.project(&ticket.project).is_none() {
            return Err(ApiError::InvalidTicket(
                "the ticket's project is no longer served".into(),
            ));
        }
        let issued = realm.registry_token(&ticket, request.scopes.iter().map(String::as_str), now);
        let refresh = request.offline.then_some(request.ticket);
        Ok((issued, refresh))
    }
}

/// A POST body must arrive within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// 405 for anything but GET on a known route.
fn only_get<B>(req: &Request<B>) -> Option<Response<Body>> {
    (req.method() != Method::GET).then(|| ApiError::MethodNotAllowed.response())
}

/// The `project` query parameter, validated. Values are taken as written:
/// percent-escapes are not decoded, so `%2F` or `%2a` is simply invalid.
///
/// # Errors
/// A message for the 400 response.
pub fn project_param(query: Option<&str>) -> Result<ProjectName, String> {
    let mut found: Option<&str> = None;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "project" {
            if found.is_some() {
                return Err("give the `project` query parameter once".into());
            }
            found = Some(value);
        }
    }
    let value = found.ok_or("missing the `project` query parameter")?;
    ProjectName::parse(value).map_err(|e| format!("invalid `project`: {e}"))
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token<B>(req: &Request<B>) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken(TokenError::Malformed))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    Ok(token.trim())
}

/// The success body, in the field order of the API contract.
#[derive(serde::Serialize)]
struct CredentialsBody<'a> {
    credentials: CredentialsFields<'a>,
    repository: &'a str,
    image: &'a str,
}

#[derive(serde::Serialize)]
struct CredentialsFields<'a> {
    registry_url: &'a str,
    username: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

/// The success body and the expiry as RFC 3339, for the audit line.
fn credentials_body(project: &ProjectName, served: &Served) -> (String, Option<String>) {
    let c = &served.credentials;
    // Whole seconds, both fields from one instant so they agree.
    let expires_in = served.remaining.map(|r| r.as_secs());
    let expires_at = expires_in.map(|secs| rfc3339(unix_now() + secs));
    let body = CredentialsBody {
        credentials: CredentialsFields {
            registry_url: &c.registry_url,
            username: &c.username,
            password: c.password.expose(),
            expires_in,
            expires_at: expires_at.clone(),
        },
        repository: project.as_str(),
        image: &c.image,
    };
    // Sized for a typical ECR answer, so serialising does not reallocate.
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, &body).expect("plain strings and numbers serialize");
    let body = String::from_utf8(out).expect("serde_json writes UTF-8");
    (body, expires_at)
}

/// Unix seconds → `2026-01-01T12:00:00Z`. Each thread remembers its last
/// answer: a busy server formats the same second thousands of times.
pub fn rfc3339(unix_secs: u64) -> String {
    use aws_sdk_sts::primitives::{DateTime, DateTimeFormat};
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != unix_secs {
            let text = DateTime::from_secs(unix_secs as i64)
                .fmt(DateTimeFormat::DateTime)
                .unwrap_or_default();
            *last = (unix_secs, text);
        }
        last.1.clone()
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Every way a request can fail, and how each is answered.
#[derive(Debug)]
pub enum ApiError {
    BadProject(String),
    MissingToken,
    InvalidToken(TokenError),
    RateLimited(Duration),
    NotFound(Denial),
    Unavailable(Duration),
    MethodNotAllowed,
    NoRoute,
    /// Token realm: no ticket given.
    MissingTicket,
    /// Token realm: a ticket that is not (or no longer) valid.
    InvalidTicket(String),
    BadTokenRequest(String),
    TokenMethodNotAllowed,
}

impl ApiError {
    fn outcome(&self) -> &'static str {
        match self {
            Self::BadProject(_) => "bad_request",
            Self::MissingToken | Self::InvalidToken(_) => "unauthenticated",
            Self::RateLimited(_) => "rate_limited",
            Self::NotFound(d) => d.as_str(),
            Self::Unavailable(_) => "unavailable",
            Self::MethodNotAllowed | Self::TokenMethodNotAllowed => "method_not_allowed",
            Self::NoRoute => "no_route",
            Self::MissingTicket => "missing_ticket",
            Self::InvalidTicket(_) => "invalid_ticket",
            Self::BadTokenRequest(_) => "bad_request",
        }
    }

    pub fn response(&self) -> Response<Body> {
        let (status, code, message) = match self {
            Self::BadProject(m) => (StatusCode::BAD_REQUEST, "invalid_project", m.clone()),
            Self::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send `Authorization: Bearer <token>`".into(),
            ),
            Self::InvalidToken(e) => (StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()),
            Self::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many credential requests; retry later".into(),
            ),
            // One body for unknown and forbidden projects.
            Self::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "project_not_found",
                "no such project, or no access to it".into(),
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "registry_unavailable",
                "registry credentials are unavailable right now; retry later".into(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "only GET is supported".into(),
            ),
            Self::NoRoute => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            ),
            Self::MissingTicket => (
                StatusCode::UNAUTHORIZED,
                "missing_ticket",
                "log in with the username and password from /registry/credentials".into(),
            ),
            Self::InvalidTicket(m) => (StatusCode::UNAUTHORIZED, "invalid_ticket", m.clone()),
            Self::BadTokenRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            Self::TokenMethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "only GET and POST are supported".into(),
            ),
        };
        let mut body = json!({"error": {"code": code, "message": message}});
        if matches!(
            self,
            Self::MissingTicket | Self::InvalidTicket(_) | Self::BadTokenRequest(_)
        ) {
            // Registry clients print the registry's own error shape; give
            // them that too, so `docker login` says why.
            let registry_code = if status == StatusCode::UNAUTHORIZED {
                "UNAUTHORIZED"
            } else {
                "DENIED"
            };
            body["errors"] = json!([{"code": registry_code, "message": message}]);
        }
        let mut r = json_response(status, &body);
        let headers = r.headers_mut();
        match self {
            Self::MissingToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rise-registry\""),
                );
            }
            Self::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"rise-registry\", error=\"invalid_token\"",
                    ),
                );
            }
            Self::RateLimited(wait) | Self::Unavailable(wait) => {
                // Round up: retrying early would only be refused again.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Self::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            Self::TokenMethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            }
            Self::MissingTicket | Self::InvalidTicket(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"rise-registry\""),
                );
            }
            _ => {}
        }
        r
    }
}

/// The facts of one credential request, for its audit line. Never holds a
/// secret: the token and the credentials stay out. Serialised directly (no
/// intermediate JSON tree), in this field order.
#[derive(Default, serde::Serialize)]
struct Audit<'a> {
    time: String,
    audit: &'static str,
    request_id: &'a str,
    #[serde(serialize_with = "identities")]
    caller: Option<Arc<Verified>>,
    project: Option<ProjectName>,
    provider: &'static str,
    outcome: &'static str,
    grant: Option<String>,
    cache_hit: bool,
    stale: bool,
    expires_at: Option<String>,
    reason: Option<String>,
}

/// The facts of one token exchange. Scopes are what the client asked for;
/// `granted` is what the token allows.
#[derive(Default, serde::Serialize)]
struct TokenAudit<'a> {
    time: String,
    audit: &'static str,
    request_id: &'a str,
    subject: Option<String>,
    project: Option<ProjectName>,
    outcome: &'static str,
    scopes: Vec<String>,
    granted: Vec<String>,
    expires_at: Option<String>,
}

impl TokenAudit<'_> {
    fn line(&mut self) -> String {
        self.time = rfc3339(unix_now());
        self.audit = "token";
        json_line(self)
    }
}

/// The caller as its identity strings (`user:…`, `group:…`), or null.
fn identities<S: serde::Serializer>(
    caller: &Option<Arc<Verified>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let Some(verified) = caller else {
        return s.serialize_none();
    };
    let ids = verified.caller.identities();
    let mut seq = s.serialize_seq(Some(ids.len()))?;
    for id in &ids {
        seq.serialize_element(&format_args!("{id}"))?;
    }
    seq.end()
}

impl Audit<'_> {
    fn line(&mut self) -> String {
        self.time = rfc3339(unix_now());
        self.audit = "credentials";
        json_line(self)
    }
}

/// An audit record as one line of JSON, serialised directly (no
/// intermediate tree).
fn json_line(record: &impl serde::Serialize) -> String {
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, record).expect("plain fields serialize");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_params_are_validated_as_written() {
        assert_eq!(
            project_param(Some("project=my-app")).unwrap().as_str(),
            "my-app"
        );
        assert_eq!(
            project_param(Some("x=1&project=a.b&y")).unwrap().as_str(),
            "a.b"
        );
        for bad in [
            None,
            Some(""),
            Some("proj=a"),
            Some("project="),
            Some("project=a&project=b"),
            Some("project=my%2Dapp"),
            Some("project=a*"),
            Some("project=../x"),
            Some("project=A"),
            Some("project=a+b"),
            Some("project=a/b"),
        ] {
            assert!(project_param(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_268_800), "2026-01-01T12:00:00Z");
    }

    #[test]
    fn error_responses_carry_their_headers() {
        let r = ApiError::Unavailable(Duration::from_millis(4_200)).response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let r = ApiError::MissingToken.response();
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let unknown = ApiError::NotFound(Denial::UnknownProject).response();
        let forbidden = ApiError::NotFound(Denial::NotPermitted).response();
        assert_eq!(unknown.status(), forbidden.status());
        assert_eq!(
            format!("{:?}", unknown.body()),
            format!("{:?}", forbidden.body()),
            "no way to tell them apart"
        );
    }
}
