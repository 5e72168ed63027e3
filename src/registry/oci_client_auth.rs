//! `oci-client-auth`: any Docker-compatible registry. Clients bring their
//! own `docker login`, so serve only tells them where to push.

use super::{BoxFuture, ProviderError, RegistryCredentials, RegistryProvider};
use crate::config::OciClientAuthConfig;
use crate::naming::ProjectName;
use crate::secret::Secret;

pub struct OciClientAuthProvider {
    config: OciClientAuthConfig,
}

impl OciClientAuthProvider {
    pub fn new(config: OciClientAuthConfig) -> Self {
        Self { config }
    }
}

impl RegistryProvider for OciClientAuthProvider {
    fn kind(&self) -> &'static str {
        "oci-client-auth"
    }

    fn credentials<'a>(
        &'a self,
        project: &'a ProjectName,
        _caller: &'a str,
    ) -> BoxFuture<'a, Result<RegistryCredentials, ProviderError>> {
        let url = &self.config.registry_url;
        let image = match &self.config.namespace {
            Some(ns) => format!("{url}/{ns}/{project}"),
            None => format!("{url}/{project}"),
        };
        Box::pin(async move {
            Ok(RegistryCredentials {
                registry_url: url.to_string(),
                username: String::new(),
                password: Secret::new(String::new()),
                expires_at: None,
                image,
            })
        })
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}
