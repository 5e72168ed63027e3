//! The JWKS behind `auth.jwks_url`: fetched at start-up, kept in memory, and
//! refreshed when a token names a key id we do not know (key rotation), at
//! most once per `min_refresh` so unknown-kid floods cannot hammer the
//! identity provider.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::jwt::JwksKeys;

/// A JWKS larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

pub struct JwksSource {
    url: String,
    client: HttpsClient,
    /// Swapped whole on refresh; readers clone the `Arc` and never wait on
    /// I/O. A std lock is fine: it is never held across an `.await`.
    keys: RwLock<Arc<JwksKeys>>,
    /// When the last fetch was attempted; serialises refreshes too.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
}

impl JwksSource {
    /// # Errors
    /// When the system's root certificates cannot be loaded.
    pub fn new(url: String, min_refresh: Duration) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .context("loading the system's root certificates for the JWKS client")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
            keys: RwLock::new(Arc::new(JwksKeys::default())),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refresh,
        })
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
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch_and_swap().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(url = %self.url, error = %format!("{e:#}"), "JWKS refresh failed");
                false
            }
        }
    }

    async fn fetch_and_swap(&self) -> Result<()> {
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.fetch())
            .await
            .with_context(|| {
                format!("fetching {} timed out after {FETCH_TIMEOUT:?}", self.url)
            })??;
        let keys = JwksKeys::parse(&body).map_err(anyhow::Error::msg)?;
        if keys.is_empty() {
            bail!("{} holds no RS256 or ES256 signing keys", self.url);
        }
        tracing::info!(url = %self.url, keys = keys.len(), "JWKS loaded");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    async fn fetch(&self) -> Result<Bytes> {
        let uri: hyper::Uri = self.url.parse().context("parsing the JWKS URL")?;
        let response = self
            .client
            .get(uri)
            .await
            .with_context(|| format!("fetching {}", self.url))?;
        if !response.status().is_success() {
            bail!("{} answered {}", self.url, response.status());
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.url))?;
        Ok(body.to_bytes())
    }
}
