//! The one way rise-registry makes outgoing HTTP(S) requests outside the
//! AWS SDK (an issuer's keys, `doctor`'s probes, `login`'s broker and
//! token endpoint): HTTP/1 over plain TCP or TLS with the system's root
//! certificates (`SSL_CERT_FILE` names another bundle), rustls on aws-lc.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A client for bodiless requests (GET), over http or https.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Builds an [`HttpsClient`].
///
/// # Errors
/// When the system's root certificates cannot be loaded, as one line.
pub fn client() -> Result<HttpsClient, String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| format!("loading the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
