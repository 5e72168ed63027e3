//! The token realm, `/registry/token` (`oci-token` only): the Docker
//! Registry v2 token protocol, authenticated by ticket instead of JWT.
//!
//! The checks, in order: GET or POST (405), a parseable request (400), a
//! ticket given (401 with a Basic challenge), the configured `service` if
//! one is named (400), a valid ticket (401), its caller within the rate
//! limit (429), and the access rule applied again to the identities the
//! ticket carries under the current config (401): revoking access stops new
//! tokens at once. Scopes beyond the ticket's repository are not errors:
//! they are simply not granted.
//!
//! The parsing itself is pure and lives in [`super::token`]; this room does
//! the I/O (reading the body) and the decisions.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::app::{App, Body, RequestId, json_response};
use super::audit::TokenAudit;
use super::error::ApiError;
use crate::auth::{Denial, authorize, limit_key};
use crate::clock::{rfc3339, unix_now};
use crate::registry::RegistryProvider;

impl App {
    pub(super) async fn token<B>(&self, req: Request<B>, request_id: &RequestId) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let RegistryProvider::OciToken(realm) = &self.provider else {
            return ApiError::NoRoute.response();
        };
        let mut audit = TokenAudit::new(request_id);
        let response = match self.token_flow(realm, req, &mut audit).await {
            Ok((issued, offline_ticket)) => {
                audit.outcome = "issued";
                audit.granted = issued
                    .access
                    .iter()
                    .flat_map(|a| a.actions.iter().map(move |act| format!("{}:{act}", a.name)))
                    .collect();
                let issued_at = rfc3339(issued.issued_at);
                audit.expires_at = Some(rfc3339(issued.issued_at + issued.expires_in));
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
        let now = unix_now();
        let ticket = realm
            .verify_ticket(&request.ticket, now)
            .map_err(|e| ApiError::InvalidTicket(e.to_string()))?;
        audit.subject = Some(ticket.sub.clone());
        audit.issuer = ticket.iss.clone();
        audit.project = Some(ticket.project.clone());
        audit.access = Some(ticket.access);
        // Recorded only now: before the ticket checks out, they are
        // anyone's text.
        audit.scopes = request.scopes.clone();
        self.token_limiter
            .check(&limit_key(ticket.issuer(), &ticket.sub))
            .map_err(ApiError::RateLimited)?;
        // The access rule again, under the config this replica runs now:
        // removing a project, or someone's access to it, stops new registry
        // tokens at once, not when the ticket expires.
        // So does the issuer, as the running config has it (see
        // `Ticket::holder`).
        let config = self.config();
        let decision = match ticket.holder(&config.auth, &|key| realm.bind_issuer_key(key)) {
            Some(holder) => authorize(&config, &holder, &ticket.project, ticket.access),
            None => Err(Denial::NotPermitted),
        };
        if let Err(denial) = decision {
            audit.reason = Some(denial.as_str());
            return Err(ApiError::InvalidTicket(
                match denial {
                    Denial::UnknownProject => "the ticket's project is no longer served",
                    Denial::NotPermitted => {
                        "the ticket's holder no longer has access to its project"
                    }
                }
                .into(),
            ));
        }
        let issued = realm.registry_token(&ticket, request.scopes.iter().map(String::as_str), now);
        let refresh = request.offline.then_some(request.ticket);
        Ok((issued, refresh))
    }
}

/// A POST body must arrive within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
