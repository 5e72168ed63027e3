//! The plumbing every flow answers with: the response [`Body`], a
//! request's ids ([`RequestId`]) and [`json_response`].
//!
//! Kept apart from [`super::app`] so that the router, the error answers
//! ([`super::error`]) and the audit records ([`super::audit`]) all stand
//! on it, rather than the latter two reaching back into the router that
//! uses them. It uses nothing of serve.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;

pub type Body = Full<Bytes>;

/// A request's ids. Ours names the request in the response header and the
/// audit line; the caller's `X-Request-Id` is recorded beside it, never in
/// its place, so a caller cannot forge or collide with another request's
/// id in the audit trail.
pub(super) struct RequestId {
    pub(super) ours: String,
    pub(super) callers: Option<String>,
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
