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

/// Why an AWS call failed, as far as the operator's fix goes: each cause
/// has its own hint, so "no credentials" is never reported as "AWS could
/// not be reached", nor an AccessDenied as missing credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No answer at all: connection refused, DNS, timeout.
    Unreachable,
    /// The credential chain found nothing to sign with.
    NoCredentials,
    /// A credential provider was found and failed (IRSA's
    /// AssumeRoleWithWebIdentity refused, an SSO session expired).
    CredentialProvider,
    /// The credentials were accepted once and have expired.
    ExpiredCredentials,
    /// AWS does not know the access key, or the signature does not match.
    InvalidCredentials,
    /// AWS refused the caller this action.
    AccessDenied,
    /// Anything else: AWS's code and message say it.
    Other,
}

/// Error codes of the credential and permission causes, across the query
/// (IAM, STS) and JSON (ECR) protocols.
const EXPIRED: [&str; 4] = [
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
];
const INVALID: [&str; 4] = [
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
];
const DENIED: [&str; 4] = [
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
];

impl Cause {
    /// The cause of `e`.
    pub fn of<E, R>(e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                // The credential chain fails inside dispatch: before any
                // request is sent, with a credentials error as the cause.
                let text = error_text(e);
                if text.contains("no credentials found in chain")
                    || text.contains("no providers in chain")
                    || text.contains("the credential provider was not enabled")
                {
                    Self::NoCredentials
                } else if text.contains("loading credentials") {
                    Self::CredentialProvider
                } else {
                    Self::Unreachable
                }
            }
            _ => Self::of_code(e.as_service_error().and_then(|s| s.code())),
        }
    }

    /// The cause an AWS error code stands for.
    pub fn of_code(code: Option<&str>) -> Self {
        match code {
            Some(c) if EXPIRED.contains(&c) => Self::ExpiredCredentials,
            Some(c) if INVALID.contains(&c) => Self::InvalidCredentials,
            Some(c) if DENIED.contains(&c) => Self::AccessDenied,
            _ => Self::Other,
        }
    }

    /// Whether every further call would fail the same way (nothing to
    /// gain from trying more actions).
    pub fn is_unusable(self) -> bool {
        matches!(
            self,
            Self::Unreachable
                | Self::NoCredentials
                | Self::CredentialProvider
                | Self::ExpiredCredentials
                | Self::InvalidCredentials
        )
    }

    /// What to do about it, for the `hint:` line.
    pub fn hint(self) -> Option<&'static str> {
        Some(match self {
            Self::Unreachable => {
                "AWS could not be reached; check registry.region, registry.endpoint_url and AWS_ENDPOINT_URL, and the network path (proxy, DNS, security groups)"
            }
            Self::NoCredentials => {
                "no AWS credentials were found; set AWS_PROFILE (after `aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on EKS, give the pod's service account the IRSA annotation (the chart's serviceAccount.iamRoleArn)"
            }
            Self::CredentialProvider => {
                "the AWS credentials could not be had: the provider's own error above says why (with IRSA: the role's trust must name the cluster's OIDC provider and this namespace and service account; docs/kubernetes.md)"
            }
            Self::ExpiredCredentials => {
                "the AWS credentials have expired, or this machine's clock is off by more than 5 minutes; refresh them (`aws sso login`, or new session credentials), or set the clock, and run again"
            }
            Self::InvalidCredentials => {
                "AWS does not accept these credentials (an unknown or deleted access key, a secret key that does not match it, or a signature from a clock that is off); check AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            }
            Self::AccessDenied => {
                "the caller may not do this; `rise-registry doctor` names the caller, and the policies in modules/rise-aws/policies (docs/terraform.md) list what the roles need"
            }
            Self::Other => return None,
        })
    }
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

/// [`sdk_error_text`] with the hint of a cause every call shares (no, bad
/// or expired credentials, AWS unreachable) in parentheses, for one-line
/// logs (serve's). A refusal of this one call is left to the caller to
/// explain.
pub(crate) fn explained<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let text = sdk_error_text(e);
    let cause = Cause::of(e);
    match cause.hint().filter(|_| cause.is_unusable()) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
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
    fn error_codes_map_to_their_cause() {
        assert_eq!(
            Cause::of_code(Some("ExpiredToken")),
            Cause::ExpiredCredentials
        );
        assert_eq!(
            Cause::of_code(Some("ExpiredTokenException")),
            Cause::ExpiredCredentials
        );
        assert_eq!(
            Cause::of_code(Some("UnrecognizedClientException")),
            Cause::InvalidCredentials
        );
        assert_eq!(Cause::of_code(Some("AccessDenied")), Cause::AccessDenied);
        assert_eq!(
            Cause::of_code(Some("AccessDeniedException")),
            Cause::AccessDenied
        );
        assert_eq!(Cause::of_code(Some("NoSuchEntity")), Cause::Other);
        assert_eq!(Cause::of_code(None), Cause::Other);
        assert!(Cause::NoCredentials.is_unusable() && !Cause::AccessDenied.is_unusable());
        assert_eq!(Cause::Other.hint(), None);
    }

    #[test]
    fn causes_are_joined_without_debug_output() {
        assert_eq!(error_text(&Outer(Inner)), "outer: inner detail");
    }
}
