//! The projects API (docs/projects.md): `PUT`, `GET` and `DELETE
//! /registry/projects/{name}`, and `GET /registry/projects` in pages.
//! Served only when `store` is configured.
//!
//! The flow, in order, each step able to end the request:
//! 1. a valid Bearer token (401);
//! 2. the caller's rate limit (429);
//! 3. the caller is an admin or a project manager; anyone else gets the
//!    answer of a path that does not exist (404), so the API tells them
//!    nothing, not even which projects exist;
//! 4. the path (404) and the project name (400);
//! 5. the method: reads answer from the snapshot every request runs on;
//!    writes check the body as config checks a project (400, each problem
//!    with its path), refuse config-declared projects (409), and go to the
//!    store with their `If-Match` / `If-None-Match` (412, 409 while
//!    deleting, 503 when the store is down).
//!
//! Every write, refused or made, is an audit line and a metric.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::app::{App, Body, Live, RequestId, json_response};
use super::audit::ProjectAudit;
use super::credentials::bearer_token;
use super::error::ApiError;
use super::snapshot::StoredProject;
use super::token::form_pairs;
use crate::auth::Caller;
use crate::clock::{rfc3339, unix_now};
use crate::config::{Config, RegistryConfig, project_spec};
use crate::naming::ProjectName;
use crate::store::{Etag, Precondition, Record, StoreError, Written};

/// A project body is a few rules; anything larger is refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The body must arrive within this.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Page sizes of `GET /registry/projects`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl App {
    pub(super) async fn projects<B>(
        &self,
        req: Request<B>,
        request_id: &RequestId,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = req.method().clone();
        let mut audit = ProjectAudit::new(request_id, method.as_str());
        let writes = matches!(*req.method(), Method::PUT | Method::DELETE);
        let result = self.projects_flow(req, &mut audit).await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if audit.outcome.is_empty() {
                    audit.outcome = e.outcome();
                }
                e.response()
            }
        };
        // Reads are not audited: they change nothing. A refused write is,
        // once the caller is known to be allowed to write at all.
        if writes && audit.allowed {
            self.metrics
                .project_change(audit.op == "DELETE", audit.outcome);
            (self.audit)(&audit.line());
        } else if writes && audit.caller.is_some() {
            (self.audit)(&audit.line());
        }
        response
    }

    async fn projects_flow<B>(
        &self,
        req: Request<B>,
        audit: &mut ProjectAudit<'_>,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let token = bearer_token(&req)?;
        let live = self.live();
        let verified = live
            .auth
            .authenticate(token, unix_now())
            .await
            .map_err(ApiError::InvalidToken)?;
        audit.caller = Some(verified.clone());
        self.limiter
            .check(&verified.caller.limit_key())
            .map_err(ApiError::RateLimited)?;
        if !may_manage(&live.config, &verified.caller) {
            audit.outcome = "not_permitted";
            return Err(ApiError::NoRoute);
        }
        audit.allowed = true;
        let path = req.uri().path().to_string();
        let name = match path.strip_prefix("/registry/projects") {
            Some("") | Some("/") => None,
            Some(rest) => Some(rest.trim_start_matches('/')),
            None => return Err(ApiError::NoRoute),
        };
        // Reads answer from the snapshot, which may be old while the store
        // is down: say so rather than answer from it.
        if req.method() == Method::GET && self.store_link().is_some_and(|l| !l.up()) {
            return Err(ApiError::StoreUnavailable);
        }
        let Some(name) = name else {
            return match *req.method() {
                Method::GET => list(&live, req.uri().query()),
                _ => Err(ApiError::ProjectsMethodNotAllowed("GET")),
            };
        };
        let name = ProjectName::parse(name).map_err(|e| ApiError::BadProject(e.message))?;
        audit.project = Some(name.clone());
        match *req.method() {
            Method::GET => get(&live, &name),
            Method::PUT => self.put(&live, name, req, audit).await,
            Method::DELETE => self.delete(&live, name, &req, audit).await,
            _ => Err(ApiError::ProjectsMethodNotAllowed("GET, PUT, DELETE")),
        }
    }

    async fn put<B>(
        &self,
        live: &Live,
        name: ProjectName,
        req: Request<B>,
        audit: &mut ProjectAudit<'_>,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let condition = precondition(&req)?;
        let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
        let body = tokio::time::timeout(BODY_TIMEOUT, limited.collect())
            .await
            .map_err(|_| ApiError::BadBody("the request body was not sent in time".into()))?
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ApiError::BodyTooLarge(MAX_BODY_BYTES)
                } else {
                    ApiError::BadBody("the request body could not be read".into())
                }
            })?
            .to_bytes();
        let body: Value = serde_json::from_slice(&body).map_err(|e| {
            audit.outcome = "invalid";
            ApiError::BadBody(format!("the body is not JSON: {e}"))
        })?;
        let _checked = project_spec(&body, Some(&live.base.auth)).map_err(|errors| {
            audit.outcome = "invalid";
            ApiError::InvalidSpec(
                errors
                    .into_iter()
                    .map(|e| (e.path, e.message, e.hint))
                    .collect(),
            )
        })?;
        if let RegistryConfig::Ecr(ecr) = &live.base.registry
            && let Err(e) = ecr.repo_prefix.repository_name(&name)
        {
            audit.outcome = "invalid";
            return Err(ApiError::BadProject(e.message));
        }
        if live.base.project(&name).is_some() {
            audit.outcome = "conflict";
            return Err(ApiError::ProjectConflict(
                "declared_in_config",
                "this project is declared in the config files, which win over the API; change it there".into(),
            ));
        }
        // What is stored is what was checked, in one canonical form.
        let stored = json!({
            "access": body.get("access").cloned().unwrap_or_else(|| json!([])),
            "pull_access": body.get("pull_access").cloned().unwrap_or_else(|| json!([])),
        });
        audit.before = live.rows.get(&name).map(|r| summary(&r.record));
        let link = self.store_link().ok_or(ApiError::NoRoute)?;
        let now_ms = crate::clock::unix_now_ms();
        let _sync = self.store_sync().await;
        let (record, written) = link
            .store
            .put(&name, &stored.to_string(), &condition, now_ms)
            .await
            .map_err(|e| store_error(e, audit))?;
        audit.after = Some(summary(&record));
        audit.outcome = match written {
            Written::Created => "created",
            Written::Updated => "updated",
        };
        let status = match written {
            Written::Created => StatusCode::CREATED,
            Written::Updated => StatusCode::OK,
        };
        self.patch_rows(vec![(name.clone(), Some(record.clone()))]);
        Ok(with_etag(
            json_response(status, &store_view(&live.base, &record)),
            &record,
        ))
    }

    async fn delete<B>(
        &self,
        live: &Live,
        name: ProjectName,
        req: &Request<B>,
        audit: &mut ProjectAudit<'_>,
    ) -> Result<Response<Body>, ApiError> {
        let condition = precondition(req)?;
        if live.base.project(&name).is_some() {
            audit.outcome = "conflict";
            return Err(ApiError::ProjectConflict(
                "declared_in_config",
                "this project is declared in the config files; remove it there".into(),
            ));
        }
        audit.before = live.rows.get(&name).map(|r| summary(&r.record));
        let link = self.store_link().ok_or(ApiError::NoRoute)?;
        let _sync = self.store_sync().await;
        let record = link
            .store
            .delete(&name, &condition, crate::clock::unix_now_ms())
            .await
            .map_err(|e| store_error(e, audit))?;
        audit.after = Some(summary(&record));
        audit.outcome = "deleting";
        self.patch_rows(vec![(name, Some(record.clone()))]);
        Ok(with_etag(
            json_response(StatusCode::ACCEPTED, &store_view(&live.base, &record)),
            &record,
        ))
    }
}

/// Admins and project managers may use the API.
fn may_manage(config: &Config, caller: &Caller) -> bool {
    config.auth.admins.iter().any(|p| caller.has(p))
        || config
            .auth
            .project_managers
            .iter()
            .any(|r| caller.admitted_by(r))
}

/// `If-Match` / `If-None-Match` as a [`Precondition`]. An entity tag that
/// is not one of ours can match nothing, so it fails the write (412)
/// rather than being ignored.
fn precondition<B>(req: &Request<B>) -> Result<Precondition, ApiError> {
    let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
        let values: Vec<&str> = req
            .headers()
            .get_all(&name)
            .iter()
            .map(|v| v.to_str())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::BadBody(format!("`{name}` is not text")))?;
        Ok((!values.is_empty()).then(|| values.join(",")))
    };
    if let Some(v) = text(header::IF_NONE_MATCH)? {
        return if v.trim() == "*" {
            Ok(Precondition::Absent)
        } else {
            Err(ApiError::BadBody(
                "`If-None-Match` takes `*` here (create only)".into(),
            ))
        };
    }
    let Some(v) = text(header::IF_MATCH)? else {
        return Ok(Precondition::Any);
    };
    if v.trim() == "*" {
        return Ok(Precondition::Exists);
    }
    // Tags never contain a comma (ours are `"hex-digits"`).
    Ok(Precondition::Matches(
        v.split(',').filter_map(Etag::parse).collect(),
    ))
}

fn store_error(e: StoreError, audit: &mut ProjectAudit<'_>) -> ApiError {
    match e {
        StoreError::NotFound => {
            audit.outcome = "not_found";
            ApiError::ProjectNotFound
        }
        StoreError::PreconditionFailed { current } => {
            audit.outcome = "precondition_failed";
            ApiError::PreconditionFailed(current.map(|r| r.etag().to_string()))
        }
        StoreError::Deleting => {
            audit.outcome = "conflict";
            ApiError::ProjectConflict(
                "project_deleting",
                "the project is being deleted; it can be made again once it is gone".into(),
            )
        }
        other => {
            audit.outcome = "unavailable";
            tracing::warn!(error = %other, "project store");
            ApiError::StoreUnavailable
        }
    }
}

fn with_etag(mut r: Response<Body>, record: &Record) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&record.etag().to_string()) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The audit's view of a row: version and rules, never more.
fn summary(record: &Record) -> Value {
    json!({
        "etag": record.etag().to_string(),
        "state": record.state.as_str(),
        "spec": serde_json::from_str::<Value>(&record.spec).unwrap_or(Value::Null),
    })
}

/// A store project as the API shows it.
fn store_view(base: &Config, record: &Record) -> Value {
    let spec: Value = serde_json::from_str(&record.spec).unwrap_or(Value::Null);
    json!({
        "name": record.name.as_str(),
        "source": "store",
        "access": spec.get("access").cloned().unwrap_or_else(|| json!([])),
        "pull_access": spec.get("pull_access").cloned().unwrap_or_else(|| json!([])),
        "repository": {
            "name": base.registry.repository_name(&record.name),
            "state": record.state.as_str(),
            "message": record.message,
            "reconciled_at": record.reconciled_at.map(rfc3339),
        },
        "updated_at": rfc3339(record.updated_at),
    })
}

/// A project of the config files as the API shows it: read-only, and with
/// no repository state, which nothing in serve tracks for it.
fn config_view(base: &Config, name: &ProjectName) -> Option<Value> {
    let p = base.project(name)?;
    Some(json!({
        "name": p.name.as_str(),
        "source": "config",
        "access": p.access,
        "pull_access": p.pull_access,
        "repository": {
            "name": base.registry.repository_name(name),
            "state": null,
            "message": null,
            "reconciled_at": null,
        },
    }))
}

fn view<'a>(live: &'a Live, name: &ProjectName) -> Option<(Value, Option<&'a StoredProject>)> {
    if let Some(v) = config_view(&live.base, name) {
        return Some((v, None));
    }
    let row = live.rows.get(name)?;
    Some((store_view(&live.base, &row.record), Some(row)))
}

fn get(live: &Live, name: &ProjectName) -> Result<Response<Body>, ApiError> {
    let (body, row) = view(live, name).ok_or(ApiError::ProjectNotFound)?;
    let r = json_response(StatusCode::OK, &body);
    Ok(match row {
        Some(row) => with_etag(r, &row.record),
        None => r,
    })
}

/// `GET /registry/projects?limit=N&cursor=NAME`: projects of config and
/// store by name, `limit` at a time; `next_cursor` is the name to go on
/// after, `null` on the last page.
fn list(live: &Live, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut cursor: Option<ProjectName> = None;
    let pairs =
        form_pairs(query.unwrap_or("").as_bytes()).map_err(|e| ApiError::BadBody(e.to_string()))?;
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadBody(format!("`limit` is a number from 1 to {MAX_PAGE}"))
                    })?;
            }
            "cursor" => {
                cursor =
                    Some(ProjectName::parse(&value).map_err(|_| {
                        ApiError::BadBody("`cursor` is not one this API gave".into())
                    })?);
            }
            other => {
                return Err(ApiError::BadBody(format!(
                    "unknown query parameter `{other}` (known: limit, cursor)"
                )));
            }
        }
    }
    let mut names: Vec<&ProjectName> = live
        .base
        .projects
        .iter()
        .map(|p| &p.name)
        .chain(live.rows.keys())
        .filter(|n| cursor.as_ref().is_none_or(|c| *n > c))
        .collect();
    names.sort();
    names.dedup();
    let more = names.len() > limit;
    names.truncate(limit);
    let projects: Vec<Value> = names
        .iter()
        .filter_map(|n| view(live, n).map(|(v, _)| v))
        .collect();
    let next = if more {
        names.last().map(|n| n.as_str())
    } else {
        None
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"projects": projects, "next_cursor": next}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/registry/projects/a");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn preconditions_from_headers() {
        assert_eq!(precondition(&req(&[])).unwrap(), Precondition::Any);
        assert_eq!(
            precondition(&req(&[("if-match", "*")])).unwrap(),
            Precondition::Exists
        );
        assert_eq!(
            precondition(&req(&[("if-none-match", "*")])).unwrap(),
            Precondition::Absent
        );
        let tag = Etag {
            created_ms: 0x18c_0000_0000,
            revision: 7,
        };
        assert_eq!(
            precondition(&req(&[("if-match", &format!("W/{tag}, \"zz\""))])).unwrap(),
            Precondition::Matches(vec![tag])
        );
        // A tag that is none of ours matches nothing: the write fails.
        assert_eq!(
            precondition(&req(&[("if-match", "\"nope\"")])).unwrap(),
            Precondition::Matches(vec![])
        );
        assert!(precondition(&req(&[("if-none-match", "\"x\"")])).is_err());
    }

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            form_pairs(b"limit=5&cursor=my%2Dapp&&x").unwrap(),
            vec![
                ("limit".to_string(), "5".to_string()),
                ("cursor".to_string(), "my-app".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
    }
}
