//! An issuer's JWKS, at its `jwks_url` or found by OIDC discovery: fetched
//! at start-up, kept in memory, and refreshed when a token names a key id
//! we do not know (key rotation), at most once per `min_refresh` so
//! unknown-kid floods cannot hammer the identity provider.
//!
//! With discovery, every refresh reads `{issuer}/.well-known/openid-configuration`
//! first and takes its `jwks_uri`, so a provider that moves its keys is
//! followed; the document must name the configured issuer (OpenID Connect
//! Discovery §4.3), so a misconfigured URL cannot lend another issuer's keys.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::time::Instant;

use super::jwt::JwksKeys;

/// A JWKS larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

use crate::config::IssuerRef;
use crate::https::HttpsClient;

/// Where an issuer's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// A JWKS URL, as configured.
    Url(String),
    /// Found through the issuer's OIDC discovery document.
    Discovery { issuer: String },
}

impl KeyLocation {
    /// Where `issuer`'s keys are: its `jwks_url`, else (for an entry of
    /// `auth.issuers`) its discovery document; `None` for the single-issuer
    /// keys with only a shared secret.
    pub fn of(issuer: IssuerRef<'_>) -> Option<Self> {
        match issuer {
            IssuerRef::Single(auth) => auth.jwks_url.clone().map(Self::Url),
            IssuerRef::Listed(i) => Some(match &i.jwks_url {
                Some(url) => Self::Url(url.clone()),
                None => Self::Discovery {
                    issuer: i.issuer.clone(),
                },
            }),
        }
    }
}

impl std::fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(url) => f.write_str(url),
            Self::Discovery { issuer } => write!(f, "{}", discovery_url(issuer)),
        }
    }
}

/// The OIDC discovery document's URL for `issuer`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The `jwks_uri` of a discovery document, checked to be `issuer`'s, and
/// held to the rules of a configured `jwks_url`: `https://` (plain HTTP
/// only on loopback), no user info.
///
/// # Errors
/// When the document is not JSON, names another issuer, or its `jwks_uri`
/// is missing or not such a URL.
pub fn jwks_uri_of(document: &[u8], issuer: &str) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: Option<String>,
        jwks_uri: Option<String>,
    }
    let doc: Discovery =
        serde_json::from_slice(document).context("the discovery document is not JSON")?;
    if doc.issuer.as_deref() != Some(issuer) {
        bail!(
            "the discovery document names issuer {:?}, not `{issuer}`",
            doc.issuer.unwrap_or_default()
        );
    }
    match doc.jwks_uri {
        Some(uri) => crate::config::values::jwks_url(&uri)
            .map_err(|p| anyhow::anyhow!("the discovery document's jwks_uri: {}", p.message)),
        None => bail!("the discovery document has no jwks_uri"),
    }
}

pub struct JwksSource {
    location: KeyLocation,
    client: HttpsClient,
    /// Swapped whole on refresh; readers clone the `Arc` and never wait on
    /// I/O. A std lock is fine: it is never held across an `.await`.
    keys: RwLock<Arc<JwksKeys>>,
    /// When the last fetch was attempted; serialises refreshes too.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// The shortest time between two fetches, in milliseconds: a reload
    /// may change it without refetching the keys.
    min_refresh_ms: std::sync::atomic::AtomicU64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl JwksSource {
    /// # Errors
    /// When the system's root certificates cannot be loaded.
    pub fn new(location: KeyLocation, min_refresh: Duration) -> Result<Self> {
        Ok(Self {
            location,
            client: crate::https::client().map_err(anyhow::Error::msg)?,
            keys: RwLock::new(Arc::new(JwksKeys::default())),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refresh_ms: std::sync::atomic::AtomicU64::new(millis(min_refresh)),
        })
    }

    /// Where the keys come from, for messages.
    pub fn location(&self) -> &KeyLocation {
        &self.location
    }

    /// The shortest time between two fetches.
    pub fn min_refresh(&self) -> Duration {
        Duration::from_millis(
            self.min_refresh_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Sets [`Self::min_refresh`] (a reload that changed
    /// `auth.jwks_min_refresh_seconds`), keeping the keys.
    pub fn set_min_refresh(&self, min_refresh: Duration) {
        self.min_refresh_ms
            .store(millis(min_refresh), std::sync::atomic::Ordering::Relaxed);
    }

    /// The keys as last fetched.
    pub fn keys(&self) -> Arc<JwksKeys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches now, regardless of when the last fetch was.
    ///
    /// # Errors
    /// Network, HTTP status, size or format problems; the old keys stay.
    pub async fn refresh(&self) -> Result<()> {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_swap().await
    }

    /// Refreshes unless a fetch happened within `min_refresh`. Returns true
    /// when the keys may have changed since the caller looked (a refresh ran,
    /// here or in a request that held the lock before us).
    pub(crate) async fn refresh_if_due(&self) -> bool {
        let before = self.keys();
        let mut last = self.last_fetch.lock().await;
        if !Arc::ptr_eq(&self.keys(), &before) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refresh()) {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch_and_swap().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(keys = %self.location, error = %format!("{e:#}"), "JWKS refresh failed");
                false
            }
        }
    }

    async fn fetch_and_swap(&self) -> Result<()> {
        let url = match &self.location {
            KeyLocation::Url(url) => url.clone(),
            KeyLocation::Discovery { issuer } => {
                let discovery = discovery_url(issuer);
                let document = self.fetch(&discovery).await?;
                jwks_uri_of(&document, issuer).with_context(|| format!("reading {discovery}"))?
            }
        };
        let body = self.fetch(&url).await?;
        let keys = JwksKeys::parse(&body).map_err(anyhow::Error::msg)?;
        if keys.is_empty() {
            bail!("{url} holds no RS256 or ES256 signing keys");
        }
        tracing::info!(url = %url, keys = keys.len(), "JWKS loaded");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// The body of a GET of `url`, within [`FETCH_TIMEOUT`] and
    /// [`MAX_JWKS_BYTES`].
    async fn fetch(&self, url: &str) -> Result<Bytes> {
        let limits = crate::https::Limits {
            timeout: FETCH_TIMEOUT,
            max_body: MAX_JWKS_BYTES,
        };
        let reply = crate::https::get(&self.client, url, &[], limits)
            .await
            .with_context(|| format!("fetching {url}"))?;
        if !reply.status.is_success() {
            bail!("{url} answered {}", reply.status);
        }
        Ok(reply.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents_must_name_their_issuer() {
        let issuer = "https://token.actions.githubusercontent.com";
        assert_eq!(
            discovery_url(&format!("{issuer}/")),
            format!("{issuer}/.well-known/openid-configuration")
        );
        let doc = format!(r#"{{"issuer":"{issuer}","jwks_uri":"{issuer}/.well-known/jwks"}}"#);
        assert_eq!(
            jwks_uri_of(doc.as_bytes(), issuer).unwrap(),
            format!("{issuer}/.well-known/jwks")
        );
        let other = r#"{"issuer":"https://evil.example","jwks_uri":"https://evil.example/jwks"}"#;
        let e = jwks_uri_of(other.as_bytes(), issuer).unwrap_err();
        assert!(e.to_string().contains("https://evil.example"), "{e}");
        for bad in [
            format!(r#"{{"issuer":"{issuer}"}}"#),
            format!(r#"{{"issuer":"{issuer}","jwks_uri":"file:///etc/passwd"}}"#),
            format!(r#"{{"issuer":"{issuer}","jwks_uri":"http://keys.example.com/jwks"}}"#),
            format!(r#"{{"issuer":"{issuer}","jwks_uri":"https://keys@evil.example/jwks"}}"#),
            "not json".to_string(),
        ] {
            assert!(jwks_uri_of(bad.as_bytes(), issuer).is_err(), "{bad}");
        }
    }
}
