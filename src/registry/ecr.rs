//! `ecr`: push credentials scoped to one repository.
//!
//! 1. STS AssumeRole of `push_role_arn` with the project's session policy
//!    ([`crate::policy::session_policy`]): the credentials can do what both
//!    the push role and the session policy allow, i.e. push and pull on one
//!    repository.
//! 2. ECR GetAuthorizationToken with those credentials: a Docker login.
//!
//! The token expires at the earlier of its own `expiresAt` and the
//! session's expiration, and that is the expiry reported.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use tokio::time::Instant;

use super::{ProviderError, RegistryCredentials};
use crate::auth::AccessKind;
use crate::config::EcrConfig;
use crate::naming::ProjectName;
use crate::policy::{role_session_name_for, session_policy_for};
use crate::secret::Secret;

/// A successful AWS call within this window counts as "ready".
const READY_FRESHNESS: Duration = Duration::from_secs(60);
/// Once a readiness probe has been sent, further `/readyz` requests within
/// this time answer "not ready" without asking AWS: a fleet of kubelets
/// probing every replica must not multiply AWS calls (or their throttling)
/// while AWS fails.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

pub struct EcrProvider {
    config: EcrConfig,
    sts: aws_sdk_sts::Client,
    /// Settings for per-request ECR clients; only the credentials differ.
    ecr: aws_sdk_ecr::Config,
    /// When AWS last answered; a std lock, never held across `.await`.
    last_ok: Mutex<Option<Instant>>,
    /// When the last readiness probe was sent (same kind of lock).
    last_probe: Mutex<Option<Instant>>,
    /// Throttled answers of STS and ECR, for the metrics.
    throttled: crate::aws::sdk::ThrottleCount,
}

impl EcrProvider {
    /// # Errors
    /// Never today; kept fallible so credential-chain checks can be added
    /// without changing callers.
    pub async fn new(config: &EcrConfig) -> anyhow::Result<Self> {
        let sdk = crate::aws::sdk_config(
            config.region.as_str(),
            config.endpoint_url.as_deref(),
            crate::aws::Caller::Serve,
        )
        .await;
        Ok(Self::from_sdk_config(config, &sdk))
    }

    /// The provider on SDK settings built elsewhere: how tests running
    /// serve inside their own process give it credentials without touching
    /// the process environment.
    pub fn from_sdk_config(config: &EcrConfig, sdk: &aws_config::SdkConfig) -> Self {
        let throttled = crate::aws::sdk::ThrottleCount::default();
        let sts = aws_sdk_sts::config::Builder::from(sdk)
            .interceptor(throttled.clone())
            .build();
        // One attempt per login: serve's pacer tries a throttled login
        // again in a later turn (src/serve/pacing.rs), where the SDK would
        // at once, adding to the throttling of an account other replicas
        // share.
        let ecr = aws_sdk_ecr::config::Builder::from(sdk)
            .interceptor(throttled.clone())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        Self {
            config: config.clone(),
            sts: aws_sdk_sts::Client::from_conf(sts),
            ecr,
            last_ok: Mutex::new(None),
            last_probe: Mutex::new(None),
            throttled,
        }
    }

    /// Throttled answers so far, by operation.
    pub fn throttled(&self) -> crate::aws::sdk::ThrottleCount {
        self.throttled.clone()
    }

    /// Ready when AWS answered within the last minute, or answers
    /// GetCallerIdentity now (which needs no permissions). At most one
    /// probe per [`PROBE_INTERVAL`]: in between, and while one is in
    /// flight, the answer is "not ready" at no cost.
    pub async fn ready(&self) -> bool {
        let fresh = self
            .last_ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < READY_FRESHNESS);
        if fresh {
            return true;
        }
        {
            let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < PROBE_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let probe = tokio::time::timeout(
            Duration::from_secs(3),
            self.sts.get_caller_identity().send(),
        )
        .await;
        let ok = matches!(probe, Ok(Ok(_)));
        if ok {
            self.mark_ok();
        }
        ok
    }

    fn mark_ok(&self) {
        *self.last_ok.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Credentials for `project`: AssumeRole with its session policy, then
    /// GetAuthorizationToken with the assumed role.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] when either AWS call fails;
    /// [`ProviderError::Invalid`] when the repository name or policy cannot
    /// be built for `project`.
    pub async fn credentials(
        &self,
        project: &ProjectName,
        access: AccessKind,
    ) -> Result<RegistryCredentials, ProviderError> {
        let session = self.assume_push_role(project, access).await?;
        let (credentials, _) = self.login(project, session).await?;
        self.mark_ok();
        Ok(credentials)
    }

    /// Step 1: the push role, assumed with `project`'s session policy for
    /// `access` (also how `doctor` tells this step's failure from the next
    /// one's).
    ///
    /// # Errors
    /// As [`Self::credentials`], for AssumeRole.
    pub async fn assume_push_role(
        &self,
        project: &ProjectName,
        access: AccessKind,
    ) -> Result<PushSession, ProviderError> {
        let policy = session_policy_for(&self.config, project, access)
            .map_err(|e| ProviderError::Invalid(e.message))?;
        let push_role = self.config.push_role_arn.as_str();
        let assumed = self
            .sts
            .assume_role()
            .role_arn(push_role)
            .role_session_name(role_session_name_for(project, access))
            .policy(policy.to_string())
            .duration_seconds(self.config.session_duration_seconds as i32)
            .send()
            .await
            .map_err(|e| {
                ProviderError::Unavailable(format!(
                    "AssumeRole of {push_role}: {}",
                    crate::aws::explained(&e)
                ))
            })?;
        let session = assumed.credentials.ok_or_else(|| {
            ProviderError::Unavailable("AssumeRole returned no credentials".into())
        })?;
        let expiry = SystemTime::try_from(session.expiration).map_err(|_| {
            ProviderError::Unavailable("AssumeRole returned an invalid expiration".into())
        })?;
        let credentials = aws_sdk_ecr::config::Credentials::new(
            session.access_key_id,
            session.secret_access_key,
            Some(session.session_token),
            Some(expiry),
            "rise-push-session",
        );
        Ok(PushSession {
            credentials,
            expiry,
        })
    }

    /// Step 2: GetAuthorizationToken with the scoped session: the
    /// credentials, and the proxy endpoint as ECR gave it (with scheme).
    ///
    /// # Errors
    /// As [`Self::credentials`], for GetAuthorizationToken.
    pub async fn login(
        &self,
        project: &ProjectName,
        session: PushSession,
    ) -> Result<(RegistryCredentials, String), ProviderError> {
        let repository = self
            .config
            .repo_prefix
            .repository_name(project)
            .map_err(|e| ProviderError::Invalid(e.message))?;
        let push_role = self.config.push_role_arn.as_str();
        let session_expiry = session.expiry;
        let ecr = aws_sdk_ecr::Client::from_conf(
            self.ecr
                .to_builder()
                .credentials_provider(session.credentials)
                .build(),
        );
        let token = ecr
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| {
                ProviderError::Unavailable(format!(
                    "GetAuthorizationToken as {push_role}: {}",
                    crate::aws::explained(&e)
                ))
            })?
            .authorization_data
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| {
                ProviderError::Unavailable("ECR returned no authorization data".into())
            })?;
        let (username, password) = decode_token(token.authorization_token.as_deref())?;
        let endpoint = token
            .proxy_endpoint
            .ok_or_else(|| ProviderError::Unavailable("ECR returned no proxy endpoint".into()))?;
        let registry_url = registry_host(&endpoint);
        let token_expiry = token.expires_at.and_then(|t| SystemTime::try_from(t).ok());
        let expires_at = token_expiry.map_or(session_expiry, |t| t.min(session_expiry));
        Ok((
            RegistryCredentials {
                image: format!("{registry_url}/{repository}"),
                registry_url,
                username,
                password: Secret::new(password),
                expires_at: Some(expires_at),
            },
            endpoint,
        ))
    }
}

/// The push role's session for one project: scoped credentials and when
/// they expire. (Cloned to try a throttled login again with it.)
#[derive(Clone)]
pub struct PushSession {
    credentials: aws_sdk_ecr::config::Credentials,
    expiry: SystemTime,
}

/// ECR's token is base64 of `user:password`.
fn decode_token(token: Option<&str>) -> Result<(String, String), ProviderError> {
    let bad = || ProviderError::Unavailable("ECR returned a malformed authorization token".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.ok_or_else(bad)?)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), password.to_string()))
}

/// `https://123.dkr.ecr.us-east-1.amazonaws.com` → `123.dkr.ecr.us-east-1.amazonaws.com`.
fn registry_host(endpoint: &str) -> String {
    let host = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    host.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_to_user_and_password() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:pa:ss");
        assert_eq!(
            decode_token(Some(&token)).unwrap(),
            ("AWS".into(), "pa:ss".into())
        );
        assert!(decode_token(Some("!!")).is_err());
        assert!(decode_token(None).is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("AWS");
        assert!(decode_token(Some(&no_colon)).is_err());
    }

    #[test]
    fn registry_hosts_drop_the_scheme() {
        assert_eq!(
            registry_host("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(registry_host("http://127.0.0.1:4566/"), "127.0.0.1:4566");
    }
}
