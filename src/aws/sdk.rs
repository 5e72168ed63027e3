//! SDK plumbing below the AWS edge of plan/apply ([`super::aws`] and its
//! bulk tag read, [`super::tagging`]): telling throttling from other
//! answers, counting requests, and the error for an AWS that cannot be
//! reached at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::anyhow;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::adaptive::AdaptiveLimit;

/// Tells the [`AdaptiveLimit`] how each answer went: throttling (ECR's
/// `ThrottlingException`, IAM's `Throttling`, and their kin), or not.
#[derive(Debug, Clone)]
pub(crate) struct ThrottleSignal(pub(crate) Arc<AdaptiveLimit>);

/// Whether an answer is AWS throttling, from its status, error-type header
/// (JSON protocols) or body (IAM's XML).
pub(crate) fn is_throttling(status: u16, error_type: Option<&str>, body: &[u8]) -> bool {
    const CODES: [&str; 4] = [
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    ];
    if status == 429 {
        return true;
    }
    if !(400..600).contains(&status) {
        return false;
    }
    if let Some(kind) = error_type {
        return CODES.iter().any(|c| kind.starts_with(c));
    }
    let body = String::from_utf8_lossy(&body[..body.len().min(2048)]);
    CODES
        .iter()
        .any(|c| body.contains(&format!("<Code>{c}")) || body.contains(&format!("\"{c}")))
}

/// Whether the answer in `context` is throttling ([`is_throttling`] on its
/// status, error-type header and body), for both interceptors below.
fn throttled_answer(context: &AfterDeserializationInterceptorContextRef<'_>) -> bool {
    let response = context.response();
    is_throttling(
        response.status().as_u16(),
        response.headers().get("x-amzn-errortype"),
        response.body().bytes().unwrap_or_default(),
    )
}

impl Intercept for ThrottleSignal {
    fn name(&self) -> &'static str {
        "ThrottleSignal"
    }

    // After deserialization, when the body of a query-protocol error
    // (IAM's XML `<Code>Throttling</Code>`) has been read: before it, only
    // a 429 or a JSON error-type header could be seen.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if throttled_answer(context) {
            self.0.on_throttled();
        } else {
            self.0.on_answer();
        }
        Ok(())
    }
}

/// Counts throttled answers per operation, retries included (the SDK
/// retries a throttled call by itself, so the call's result alone would
/// hide them): serve's `rise_registry_provider_throttled_total`.
#[derive(Debug, Default, Clone)]
pub struct ThrottleCount {
    by_operation: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl ThrottleCount {
    /// (operation, throttled answers), by operation name.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.by_operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

impl Intercept for ThrottleCount {
    fn name(&self) -> &'static str {
        "ThrottleCount"
    }

    // After deserialization: the body of a query-protocol error (STS's
    // XML `<Code>Throttling</Code>`) has been read by then.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if throttled_answer(context) {
            let operation = cfg
                .load::<Metadata>()
                .map_or("other", Metadata::name)
                .to_string();
            *self
                .by_operation
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(operation)
                .or_default() += 1;
        }
        Ok(())
    }
}

/// Counts the AWS requests sent (retries included), split into reads
/// (`Get*`, `List*`, `Describe*`) and writes, for the summary and the
/// benchmarks.
#[derive(Debug, Default, Clone)]
pub struct CallCounter {
    reads: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

impl CallCounter {
    /// (reads, writes) so far.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    /// A read sent outside the SDK clients (the bulk tag read).
    pub(crate) fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(Metadata::name)
            .unwrap_or_default();
        let read = ["Get", "List", "Describe"]
            .iter()
            .any(|p| operation.starts_with(p));
        let counter = if read { &self.reads } else { &self.writes };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// AWS cannot be used from here at all: not reached (connection refused,
/// DNS, timeout), or no valid credentials to sign with. Not an answer to
/// one request, so every further call would fail the same way, and apply
/// stops starting actions.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {text}\n  hint: {}", cause.hint().unwrap_or_default())]
pub struct Unreachable {
    what: String,
    text: String,
    cause: crate::aws::Cause,
}

impl Unreachable {
    pub(crate) fn new(what: &str, text: &str) -> Self {
        Self {
            what: what.to_string(),
            text: text.to_string(),
            cause: crate::aws::Cause::Unreachable,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_test(what: &str) -> Self {
        Self::new(what, "connection refused")
    }
}

/// AWS errors as one line with their code and message, never a Debug dump,
/// and a hint for the causes an operator fixes outside AWS's answer
/// ([`crate::aws::Cause`]); a failure every call would share is an
/// [`Unreachable`].
pub(crate) fn aws_error<E, R>(what: &str, e: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let text = crate::aws::sdk_error_text(&e);
    let cause = crate::aws::Cause::of(&e);
    if cause.is_unusable() {
        return Unreachable {
            what: what.to_string(),
            text,
            cause,
        }
        .into();
    }
    match cause.hint() {
        Some(hint) => anyhow!("{what}: {text}\n  hint: {hint}"),
        None => anyhow!("{what}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_from_other_errors_in_every_protocol() {
        let ecr = br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
        assert!(is_throttling(400, Some("ThrottlingException"), ecr));
        assert!(is_throttling(400, None, ecr));
        let iam = b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
        assert!(is_throttling(400, None, iam));
        assert!(is_throttling(429, None, b""));
        assert!(!is_throttling(
            400,
            Some("AccessDeniedException"),
            br#"{"__type":"AccessDeniedException","Message":"Throttling is not this"}"#
        ));
        let denied = b"<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>";
        assert!(!is_throttling(403, None, denied));
        assert!(
            !is_throttling(200, None, ecr),
            "a 2xx answer is never throttling"
        );
    }
}
