//! Registry providers: how credentials for one project are made.
//!
//! [`RegistryProvider`] is an enum with one variant per `registry.type`, so
//! a caller that needs one kind's extras (the `oci-token` realm) matches on
//! it, and the compiler lists every place a new kind must be handled.
//!
//! To add a registry: write its provider (a struct with native `async fn`s)
//! in a module here, add a variant to [`crate::config::RegistryConfig`] and
//! one to [`RegistryProvider`], and follow the compiler through the
//! `match`es in [`RegistryProvider`]'s methods.

pub mod ecr;
pub mod oci_client_auth;
pub mod oci_token;
pub mod pacer;

use std::time::SystemTime;

use crate::auth::{AccessKind, Caller};
use crate::config::RegistryConfig;
use crate::naming::ProjectName;
use crate::secret::Secret;

/// Credentials for pushing one project's images.
#[derive(Debug, Clone)]
pub struct RegistryCredentials {
    /// The registry host clients log in to, without scheme.
    pub registry_url: String,
    pub username: String,
    pub password: Secret<String>,
    /// `None` for credentials that do not expire (none were issued).
    pub expires_at: Option<SystemTime>,
    /// The image path clients push to, without tag.
    pub image: String,
}

/// Why a provider could not issue credentials. The message is for logs;
/// clients get a generic 503.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream (AWS) failed or timed out; worth retrying later.
    #[error("{0}")]
    Unavailable(String),
    /// The request cannot be served by this configuration.
    #[error("{0}")]
    Invalid(String),
    /// Not asked: AWS's request quota is spoken for until later than the
    /// request may wait; come back after this long.
    #[error("the provider's queue is full for the next {} s", .0.as_secs())]
    Busy(std::time::Duration),
}

/// The provider `registry.type` names: one variant per
/// [`RegistryConfig`] variant. Callers that need what only one kind can do
/// (the `oci-token` realm, its uncached tickets) match on the variant.
// One value per process, inside the `Arc<App>`: boxing the larger
// variants would save no memory that matters and add a pointer hop.
#[allow(clippy::large_enum_variant)]
pub enum RegistryProvider {
    Ecr(ecr::EcrProvider),
    OciClientAuth(oci_client_auth::OciClientAuthProvider),
    OciToken(oci_token::OciTokenProvider),
}

impl RegistryProvider {
    /// Builds the provider for `config`. AWS clients are created here, once,
    /// from the default credential chain; `oci-token` reads its key files
    /// here.
    ///
    /// # Errors
    /// When the AWS settings cannot be resolved, or a key file is unusable.
    pub async fn new(config: &RegistryConfig) -> anyhow::Result<Self> {
        Ok(match config {
            RegistryConfig::Ecr(ecr) => Self::Ecr(ecr::EcrProvider::new(ecr).await?),
            RegistryConfig::OciClientAuth(oci) => {
                Self::OciClientAuth(oci_client_auth::OciClientAuthProvider::new(oci.clone()))
            }
            RegistryConfig::OciToken(oci) => {
                Self::OciToken(oci_token::OciTokenProvider::load(oci)?)
            }
        })
    }

    /// The `registry.type` this provider serves, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ecr(_) => "ecr",
            Self::OciClientAuth(_) => "oci-client-auth",
            Self::OciToken(_) => "oci-token",
        }
    }

    /// Throttled answers of the provider's AWS calls (ECR only).
    pub fn throttled(&self) -> Option<crate::aws::sdk::ThrottleCount> {
        match self {
            Self::Ecr(p) => Some(p.throttled()),
            Self::OciClientAuth(_) | Self::OciToken(_) => None,
        }
    }

    /// The soonest expiry (Unix seconds) of the certificate chain this
    /// provider signs with: `oci-token`'s, none for the others.
    pub fn certificate_expiry(&self) -> Option<i64> {
        match self {
            Self::OciToken(p) => p.certificate_expiry(),
            Self::Ecr(_) | Self::OciClientAuth(_) => None,
        }
    }

    /// Issues `access` credentials scoped to `project`, for `holder` (only
    /// `oci-token` binds them to the caller: its ticket carries the
    /// identities given here, so pass them narrowed with
    /// [`Caller::narrowed_to`]).
    ///
    /// # Errors
    /// When the upstream fails ([`ProviderError::Unavailable`]) or the
    /// project cannot be served by this configuration.
    pub async fn credentials(
        &self,
        project: &ProjectName,
        holder: &Caller,
        access: AccessKind,
    ) -> Result<RegistryCredentials, ProviderError> {
        match self {
            Self::Ecr(p) => p.credentials(project, access).await,
            // A plain registry has no credentials to narrow: pull and push
            // get the same answer.
            Self::OciClientAuth(p) => Ok(p.credentials(project)),
            Self::OciToken(p) => Ok(p.credentials(project, holder, access)),
        }
    }

    /// Fresh credentials for a background renewal, which has no caller:
    /// only the cached kind (ECR) is renewed.
    ///
    /// # Errors
    /// As [`Self::credentials`]; [`ProviderError::Invalid`] for the other
    /// providers.
    pub async fn renew(
        &self,
        project: &ProjectName,
        access: AccessKind,
    ) -> Result<RegistryCredentials, ProviderError> {
        match self {
            Self::Ecr(p) => p.credentials(project, access).await,
            Self::OciClientAuth(_) | Self::OciToken(_) => Err(ProviderError::Invalid(
                "only ECR credentials are renewed ahead".into(),
            )),
        }
    }

    /// Whether the provider can issue credentials now (for `/readyz`).
    pub async fn ready(&self) -> bool {
        match self {
            Self::Ecr(p) => p.ready().await,
            // Nothing upstream to ask: the config (and, for oci-token, the
            // key) were checked when the provider was built.
            Self::OciClientAuth(_) | Self::OciToken(_) => true,
        }
    }
}

/// Builds the provider for `config`; see [`RegistryProvider::new`].
///
/// # Errors
/// As [`RegistryProvider::new`].
pub(crate) async fn create_registry_provider(
    config: &RegistryConfig,
) -> anyhow::Result<RegistryProvider> {
    RegistryProvider::new(config).await
}
