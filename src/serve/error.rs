//! Every way a request can fail ([`ApiError`]) and how each is answered:
//! status, JSON body and headers, in one table-like match, so the API's
//! error contract (docs/serve.md) can be checked against one file.

use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::http::{Body, json_response};
use crate::auth::{Denial, TokenError};

/// Every way a request can fail, and how each is answered.
#[derive(Debug)]
pub(crate) enum ApiError {
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
    /// Projects API: a method the path does not take (the allowed ones).
    ProjectsMethodNotAllowed(&'static str),
    /// Projects API: a body, header or query that cannot be read.
    BadBody(String),
    BodyTooLarge(usize),
    /// Projects API: the body's problems, each as (path, message, hint).
    InvalidSpec(Vec<(String, String, Option<String>)>),
    /// Projects API: 409 with a code of its own and what to do.
    ProjectConflict(&'static str, String),
    /// Projects API: `If-Match` / `If-None-Match` failed; the current ETag.
    PreconditionFailed(Option<String>),
    /// Projects API: no such project (the caller may know which exist).
    ProjectNotFound,
    StoreUnavailable,
    /// Credentials: the project's repository is not made yet (its state).
    RepositoryNotReady(&'static str),
}

impl ApiError {
    pub(super) fn outcome(&self) -> &'static str {
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
            Self::ProjectsMethodNotAllowed(_) => "method_not_allowed",
            Self::BadBody(_) | Self::BodyTooLarge(_) | Self::InvalidSpec(_) => "invalid",
            Self::ProjectConflict(..) => "conflict",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::ProjectNotFound => "not_found",
            Self::StoreUnavailable => "unavailable",
            Self::RepositoryNotReady(_) => "not_ready",
        }
    }

    /// The outcome as callers may learn it (metrics): both kinds of
    /// denial are one, `not_found`, as in the response. The audit line
    /// keeps [`Self::outcome`].
    pub(super) fn public_outcome(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            other => other.outcome(),
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
            Self::ProjectsMethodNotAllowed(allowed) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this path takes {allowed}"),
            ),
            Self::BadBody(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            Self::BodyTooLarge(max) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a project body is at most {max} bytes"),
            ),
            Self::InvalidSpec(problems) => (
                StatusCode::BAD_REQUEST,
                "invalid_project",
                match problems.as_slice() {
                    [(path, message, _)] => format!("{path}: {message}"),
                    _ => format!("{} problems in the body", problems.len()),
                },
            ),
            Self::ProjectConflict(code, m) => (StatusCode::CONFLICT, *code, m.clone()),
            Self::PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the project is not at the version If-Match / If-None-Match names; GET it and retry".into(),
            ),
            Self::ProjectNotFound => (
                StatusCode::NOT_FOUND,
                "project_not_found",
                "no such project".into(),
            ),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the project store is unavailable; retry later".into(),
            ),
            Self::RepositoryNotReady(state) => (
                StatusCode::CONFLICT,
                "repository_not_ready",
                if *state == "failed" {
                    "the project's repository could not be made yet (its state says why: GET /registry/projects/NAME, for a project manager); the controller tries again on its next pass".to_string()
                } else {
                    format!("the project's repository is {state}: it is being made; retry shortly")
                },
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
        if let Self::InvalidSpec(problems) = self {
            body["error"]["problems"] = problems
                .iter()
                .map(|(path, message, hint)| {
                    let mut p = json!({"path": path, "message": message});
                    if let Some(hint) = hint {
                        p["hint"] = json!(hint);
                    }
                    p
                })
                .collect();
        }
        if let Self::RepositoryNotReady(state) = self {
            body["error"]["state"] = json!(state);
        }
        if let Self::PreconditionFailed(Some(etag)) = self {
            body["error"]["current_etag"] = json!(etag);
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
            Self::ProjectsMethodNotAllowed(allowed) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
            }
            Self::StoreUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::RepositoryNotReady(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
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

#[cfg(test)]
mod tests {
    use super::*;

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
