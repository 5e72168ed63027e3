//! What every module that talks to AWS shares: SDK settings built the same
//! way, AWS errors turned into one readable line, and (in [`sdk`] and
//! [`adaptive`]) call counting, throttling detection and the concurrency
//! that follows it. A leaf: it knows the SDK, not the configuration.

pub mod adaptive;
pub mod sdk;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Who the SDK settings are for: the two differ in how long a call may
/// keep trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// serve: a client is waiting, and a cached credential or a 503 with
    /// `Retry-After` is better than a long wait. The SDK's standard retry
    /// (3 attempts) within 12 s.
    Serve,
    /// plan/apply: nobody is waiting on one call, and AWS throttles the
    /// describe and tag calls a large account needs by the thousand. Up to
    /// 10 attempts with backoff capped at 5 s, within 90 s per call, so a
    /// throttled account slows apply down instead of failing it.
    Reconcile,
}

/// SDK settings for `region` from the default credential chain
/// (environment, profile, web identity for IRSA, instance metadata), with
/// `endpoint_url` applied when set (`AWS_ENDPOINT_URL` is read by the SDK
/// itself).
pub async fn sdk_config(
    region: &str,
    endpoint_url: Option<&str>,
    caller: Caller,
) -> aws_config::SdkConfig {
    let (retry, operation_timeout) = match caller {
        Caller::Serve => (RetryConfig::standard(), Duration::from_secs(12)),
        Caller::Reconcile => (
            RetryConfig::standard()
                .with_max_attempts(10)
                .with_max_backoff(Duration::from_secs(5)),
            Duration::from_secs(90),
        ),
    };
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(operation_timeout)
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An AWS SDK error as AWS's code and message (`AccessDenied: User: … is
/// not authorized to perform: sts:AssumeRole on resource: …`), or, for
/// errors that never reached AWS (connection, timeout), the cause chain.
pub(crate) fn sdk_error_text<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let service = e.as_service_error();
    match service.map(|s| (s.code(), s.message())) {
        Some((Some(code), Some(message))) => format!("{code}: {message}"),
        Some((Some(code), None)) => code.to_string(),
        _ => error_text(e),
    }
}

/// An error and its causes as `outer: inner: …`, from their `Display`
/// texts only. (The SDK's own `DisplayErrorContext` appends a `Debug` dump,
/// which users should never see.) Repeated texts are dropped.
pub(crate) fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn causes_are_joined_without_debug_output() {
        assert_eq!(error_text(&Outer(Inner)), "outer: inner detail");
    }
}
