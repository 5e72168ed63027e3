//! `oci-client-auth`: any Docker-compatible registry. Clients bring their
//! own `docker login`, so serve only tells them where to push.

use super::RegistryCredentials;
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

    /// Where to push `project`'s images; no secret, since clients bring
    /// their own login.
    pub fn credentials(&self, project: &ProjectName) -> RegistryCredentials {
        let url = &self.config.registry_url;
        let image = match &self.config.namespace {
            Some(ns) => format!("{url}/{ns}/{project}"),
            None => format!("{url}/{project}"),
        };
        RegistryCredentials {
            registry_url: url.to_string(),
            username: String::new(),
            password: Secret::new(String::new()),
            expires_at: None,
            image,
        }
    }
}
