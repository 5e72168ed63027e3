//! Audit records: one JSON line per credential request or token exchange,
//! written through an [`AuditSink`]. Kept apart so what may appear in a
//! line (never a secret) is reviewed in one place.

use std::sync::Arc;

use super::http::RequestId;
use crate::auth::AccessKind;
use crate::auth::jwt::Verified;
use crate::clock::{rfc3339, unix_now};
use crate::naming::ProjectName;

/// Where audit lines go: one JSON object per call, no trailing newline.
pub type AuditSink = Box<dyn Fn(&str) + Send + Sync>;

/// The facts of one credential request, for its audit line. Never holds a
/// secret: the token and the credentials stay out. Serialised directly (no
/// intermediate JSON tree), in this field order.
#[derive(Default, serde::Serialize)]
pub(super) struct Audit<'a> {
    time: String,
    audit: &'static str,
    pub(super) request_id: &'a str,
    /// The caller's own `X-Request-Id`, recorded beside ours.
    pub(super) caller_request_id: Option<&'a str>,
    #[serde(serialize_with = "identities")]
    pub(super) caller: Option<Arc<Verified>>,
    pub(super) project: Option<ProjectName>,
    /// `push` or `pull`, once the request's `access` is known to be valid.
    pub(super) access: Option<AccessKind>,
    pub(super) provider: &'static str,
    pub(super) outcome: &'static str,
    pub(super) grant: Option<String>,
    pub(super) cache_hit: bool,
    pub(super) stale: bool,
    /// Milliseconds the request waited for its credentials (its turn at
    /// AWS's quota, the issuance, or another request's issuance of the
    /// same project); absent for an answer from the cache at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) wait_ms: Option<u64>,
    pub(super) expires_at: Option<String>,
    pub(super) reason: Option<String>,
}

/// The facts of one token exchange. Scopes are what the client asked for;
/// `granted` is what the token allows.
#[derive(Default, serde::Serialize)]
pub(super) struct TokenAudit<'a> {
    time: String,
    audit: &'static str,
    pub(super) request_id: &'a str,
    /// The caller's own `X-Request-Id`, recorded beside ours.
    pub(super) caller_request_id: Option<&'a str>,
    pub(super) subject: Option<String>,
    /// The issuer of the ticket holder's token, by its name in config,
    /// unless it was the single-issuer keys'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) issuer: Option<String>,
    pub(super) project: Option<ProjectName>,
    /// The ticket's access kind: a `pull` ticket is never granted `push`.
    pub(super) access: Option<AccessKind>,
    pub(super) outcome: &'static str,
    pub(super) scopes: Vec<String>,
    pub(super) granted: Vec<String>,
    pub(super) expires_at: Option<String>,
    /// Why a verified ticket was refused (`unknown_project`, `not_permitted`).
    pub(super) reason: Option<&'static str>,
}

impl<'a> TokenAudit<'a> {
    pub(super) fn new(request_id: &'a RequestId) -> Self {
        Self {
            request_id: &request_id.ours,
            caller_request_id: request_id.callers.as_deref(),
            ..Self::default()
        }
    }

    pub(super) fn line(&mut self) -> String {
        self.time = rfc3339(unix_now());
        self.audit = "token";
        json_line(self)
    }
}

/// The caller as its identity strings (`user:…`, `group:…`, or
/// `workload:ISSUER:SUB`), or null.
fn identities<S: serde::Serializer>(
    caller: &Option<Arc<Verified>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let Some(verified) = caller else {
        return s.serialize_none();
    };
    let names = verified.caller.audit_names();
    let mut seq = s.serialize_seq(Some(names.len()))?;
    for name in &names {
        seq.serialize_element(name)?;
    }
    seq.end()
}

impl<'a> Audit<'a> {
    pub(super) fn new(request_id: &'a RequestId, provider: &'static str) -> Self {
        Self {
            request_id: &request_id.ours,
            caller_request_id: request_id.callers.as_deref(),
            provider,
            ..Self::default()
        }
    }

    pub(super) fn line(&mut self) -> String {
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

/// The facts of one call of the projects API that writes (`PUT`,
/// `DELETE`): who, what, and the project before and after (its ETag,
/// state and rules; the rules name principals and claims, never secrets).
#[derive(Default, serde::Serialize)]
pub(super) struct ProjectAudit<'a> {
    time: String,
    audit: &'static str,
    pub(super) request_id: &'a str,
    pub(super) caller_request_id: Option<&'a str>,
    #[serde(serialize_with = "identities")]
    pub(super) caller: Option<Arc<Verified>>,
    /// The HTTP method.
    pub(super) op: &'a str,
    pub(super) project: Option<ProjectName>,
    pub(super) outcome: &'static str,
    pub(super) before: Option<serde_json::Value>,
    pub(super) after: Option<serde_json::Value>,
    /// Whether the caller may use the API at all (not in the line: a
    /// refused caller's line says `not_permitted`).
    #[serde(skip)]
    pub(super) allowed: bool,
}

impl<'a> ProjectAudit<'a> {
    pub(super) fn new(request_id: &'a RequestId, op: &'a str) -> Self {
        Self {
            request_id: &request_id.ours,
            caller_request_id: request_id.callers.as_deref(),
            op,
            ..Self::default()
        }
    }

    pub(super) fn line(&mut self) -> String {
        self.time = rfc3339(unix_now());
        self.audit = "project";
        json_line(self)
    }
}
