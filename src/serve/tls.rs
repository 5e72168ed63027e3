//! TLS for serve from `server.tls`: a PEM certificate chain and key.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Builds the acceptor, offering HTTP/1.1 only.
///
/// # Errors
/// Unreadable or invalid PEM files, or a key that does not fit the
/// certificate; each names the file.
pub(crate) fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .with_context(|| format!("reading certificates from {}", tls.cert_file))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", tls.cert_file))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", tls.cert_file);
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .with_context(|| format!("reading the private key from {}", tls.key_file))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| format!("{} does not fit {}", tls.key_file, tls.cert_file))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
