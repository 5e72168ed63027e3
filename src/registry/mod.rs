//! Registry providers: how credentials for one project are made.
//!
//! To add a registry: implement [`RegistryProvider`] in a module here, add a
//! variant to [`crate::config::RegistryConfig`], and build it in
//! [`create_registry_provider`].

pub mod ecr;
pub mod oci_client_auth;
pub mod oci_token;

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::config::RegistryConfig;
use crate::naming::ProjectName;
use crate::secret::Secret;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
}

pub trait RegistryProvider: Send + Sync {
    /// The `registry.type` this provider serves, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Issues credentials scoped to `project`, for the caller whose token
    /// subject is `caller`.
    fn credentials<'a>(
        &'a self,
        project: &'a ProjectName,
        caller: &'a str,
    ) -> BoxFuture<'a, Result<RegistryCredentials, ProviderError>>;

    /// Whether the provider can issue credentials now (for `/readyz`).
    fn ready(&self) -> BoxFuture<'_, bool>;

    /// Whether credentials depend on the caller, so one caller's must not be
    /// cached for another. Such providers issue cheaply, without upstream
    /// calls.
    fn per_caller(&self) -> bool {
        false
    }

    /// The token realm (`/registry/token`), for providers that have one.
    fn token_realm(&self) -> Option<&oci_token::OciTokenProvider> {
        None
    }
}

/// Builds the provider for `config`. AWS clients are created here, once,
/// from the default credential chain; `oci-token` reads its key files here.
///
/// # Errors
/// When the AWS settings cannot be resolved, or a key file is unusable.
pub async fn create_registry_provider(
    config: &RegistryConfig,
) -> anyhow::Result<Box<dyn RegistryProvider>> {
    Ok(match config {
        RegistryConfig::Ecr(ecr) => Box::new(ecr::EcrProvider::new(ecr).await?),
        RegistryConfig::OciClientAuth(oci) => {
            Box::new(oci_client_auth::OciClientAuthProvider::new(oci.clone()))
        }
        RegistryConfig::OciToken(oci) => Box::new(oci_token::OciTokenProvider::load(oci)?),
    })
}
