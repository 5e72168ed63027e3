//! TLS for serve from `server.tls`: a PEM certificate chain and key.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, ConfigErrors, TlsConfig};

/// Builds the acceptor, offering HTTP/1.1 only.
///
/// # Errors
/// Each problem at the config key of the file it is about, all at once:
/// unreadable or invalid PEM in either file, or a key that does not fit
/// the certificate.
pub(crate) fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ConfigErrors> {
    let certs = tls.cert_file.read().and_then(|pem| {
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                tls.cert_file
                    .problem(format!("is not PEM certificates: {e}"))
            })?;
        if certs.is_empty() {
            return Err(tls
                .cert_file
                .problem("holds no certificate (expected PEM `CERTIFICATE` blocks, leaf first)"));
        }
        Ok(certs)
    });
    let key = tls.key_file.read().and_then(|pem| {
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            tls.key_file
                .problem(format!("holds no usable private key: {e}"))
        })
    });
    let (certs, key) = match (certs, key) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => {
            let errors: Vec<ConfigError> = c.err().into_iter().chain(k.err()).collect();
            return Err(ConfigErrors::sorted(errors));
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConfigErrors::sorted(vec![tls.key_file.problem(format!(
                "does not fit the certificate in `{}` (server.tls.cert_file): {e}",
                tls.cert_file
            ))])
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The soonest expiry of `server.tls`'s certificate chain, for the
/// metric; `None` when the file cannot be read now (the acceptor has
/// reported that already).
pub(crate) fn chain_expiry(tls: &TlsConfig) -> Option<i64> {
    let pem = tls.cert_file.read().ok()?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    crate::x509::soonest_expiry(certs.iter().map(|c| c.as_ref()))
}
