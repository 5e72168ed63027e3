//! The credential endpoint, `GET /registry/credentials?project=NAME[&access=pull]`.
//!
//! The flow, in order, each step able to end the request:
//! 1. `GET` only (405);
//! 2. a valid `project` query parameter and, if given, `access` (`push`,
//!    the default, or `pull`) (400): checked before anything else, so a
//!    hostile name never reaches auth, logs or AWS;
//! 3. a valid Bearer token (401 with `WWW-Authenticate`);
//! 4. the caller's rate limit (429 with `Retry-After`);
//! 5. the access rule for that access kind (404 for unknown *and*
//!    forbidden projects: the same body, headers and metric; only the audit
//!    line tells them apart);
//! 6. credentials from the cache or the provider (503 with `Retry-After`).
//!
//! Kept apart from the router so the order of the checks, which is part of
//! the API (docs/serve.md), reads top to bottom in one place.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response};

use super::app::{App, Body, RequestId};
use super::audit::Audit;
use super::cache::Served;
use super::error::ApiError;
use crate::auth::{AccessKind, TokenError, authorize};
use crate::clock::{rfc3339, unix_now};
use crate::naming::ProjectName;
use crate::registry::RegistryProvider;
use crate::registry::oci_token::ticket::MAX_TICKET_BYTES;

impl App {
    pub(super) async fn credentials<B>(
        &self,
        req: &Request<B>,
        request_id: &RequestId,
    ) -> Response<Body> {
        let mut audit = Audit::new(request_id, self.provider.kind());
        let result = self.credentials_flow(req, &mut audit).await;
        let access = audit.access.unwrap_or_default();
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
                self.metrics.credential(project.as_str(), access, outcome);
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
                // The project becomes a label only once the caller is
                // authorised for it: before that, a label (or its absence
                // for unknown names) would tell anyone who can read
                // /metrics which projects exist. Only configured names are
                // labels at all, so request input never grows the set.
                let label = match audit.grant {
                    Some(_) => audit.project.as_ref().map_or("-", ProjectName::as_str),
                    None => "-",
                };
                self.metrics.credential(label, access, e.public_outcome());
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
        let access = access_param(req.uri().query()).map_err(ApiError::BadProject)?;
        audit.access = Some(access);
        let token = bearer_token(req)?;
        let now = unix_now();
        // One config for the whole request, even if a reload swaps it now.
        let live = self.live();
        let verified = live
            .auth
            .authenticate(token, now)
            .await
            .map_err(ApiError::InvalidToken)?;
        audit.caller = Some(verified.clone());
        let caller = &verified.caller;
        self.limiter
            .check(&caller.limit_key())
            .map_err(ApiError::RateLimited)?;
        let grant =
            authorize(&live.config, caller, &project, access).map_err(ApiError::NotFound)?;
        audit.grant = Some(grant.to_string());
        if let RegistryProvider::OciToken(tickets) = &self.provider {
            // A ticket is bound to its caller and costs no upstream call:
            // issued per request, never shared through the cache. It carries
            // what the realm needs to apply the access rule again.
            let holder = caller.narrowed_to(&live.config, &project);
            let credentials = tickets.credentials(&project, &holder, access);
            // A ticket holds what the project's rules read of the token, so
            // it stays near the token's size; one the realm would refuse
            // is not handed out.
            if credentials.password.expose().len() > MAX_TICKET_BYTES {
                audit.reason = Some(format!(
                    "the ticket would be larger than {MAX_TICKET_BYTES} bytes: the claims the project's rules read are too long"
                ));
                return Err(ApiError::Unavailable(std::time::Duration::from_secs(60)));
            }
            return Ok((project, Served::issued(credentials)));
        }
        // With the controller, a project of the store gets ECR credentials
        // once its repository exists: a push before that would fail, and
        // a CI job told "not yet" waits instead (told only to callers the
        // project admits, after the access rule).
        if live.config.controller.enabled
            && matches!(self.provider, RegistryProvider::Ecr(_))
            && let Some(row) = live.rows.get(&project)
            && row.record.state != crate::store::RepoState::Ready
            && live.base.project(&project).is_none()
        {
            audit.reason = Some(format!("repository {}", row.record.state.as_str()));
            return Err(ApiError::RepositoryNotReady(row.record.state.as_str()));
        }
        let key = (project, access);
        let (project, _) = &key;
        let asked = std::time::Instant::now();
        let served = self
            .cache
            .get(&key, || async {
                let started = std::time::Instant::now();
                let result = match (&self.pacing, &self.provider) {
                    (Some(pacing), RegistryProvider::Ecr(ecr)) => {
                        pacing.issue(ecr, project, access).await
                    }
                    _ => self.provider.credentials(project, caller, access).await,
                };
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
            });
        let waited = asked.elapsed();
        if waited >= std::time::Duration::from_millis(1) {
            audit.wait_ms = Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
        }
        let served = served?;
        if served.stale {
            tracing::warn!(project = %project, "serving cached credentials while the provider fails");
        }
        Ok((key.0, served))
    }
}

/// The `project` query parameter, validated. Values are taken as written:
/// percent-escapes are not decoded, so `%2F` or `%2a` is simply invalid.
///
/// # Errors
/// A message for the 400 response.
pub fn project_param(query: Option<&str>) -> Result<ProjectName, String> {
    let value = single_param(query, "project")?.ok_or("missing the `project` query parameter")?;
    ProjectName::parse(value).map_err(|e| format!("invalid `project`: {e}"))
}

/// The `access` query parameter: `push` when absent.
///
/// # Errors
/// A message for the 400 response.
pub fn access_param(query: Option<&str>) -> Result<AccessKind, String> {
    single_param(query, "access")?.map_or(Ok(AccessKind::Push), |v| {
        AccessKind::parse(v).map_err(|_| "`access` must be `push` or `pull`".to_string())
    })
}

/// The value of query parameter `name`, as written, if it is given; a
/// parameter given twice is an error rather than a guess.
fn single_param<'q>(query: Option<&'q str>, name: &str) -> Result<Option<&'q str>, String> {
    let mut found = None;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            if found.is_some() {
                return Err(format!("give the `{name}` query parameter once"));
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// The token of an `Authorization: Bearer …` header.
pub(super) fn bearer_token<B>(req: &Request<B>) -> Result<&str, ApiError> {
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
    let expires_at = expires_in
        .map(|secs| rfc3339(unix_now().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_push_unless_pull_is_asked_for() {
        assert_eq!(access_param(Some("project=a")), Ok(AccessKind::Push));
        assert_eq!(access_param(None), Ok(AccessKind::Push));
        assert_eq!(
            access_param(Some("project=a&access=pull")),
            Ok(AccessKind::Pull)
        );
        assert_eq!(
            access_param(Some("access=push&project=a")),
            Ok(AccessKind::Push)
        );
        for bad in [
            "access=",
            "access=PULL",
            "access=pull,push",
            "access=pull&access=push",
            "access=delete",
            "access=pul%6C",
        ] {
            assert!(access_param(Some(bad)).is_err(), "{bad}");
        }
    }

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
}
