//! The key that signs registry tokens, and the certificate chain that makes
//! the registry trust it.
//!
//! A CNCF distribution registry trusts a token when its `x5c` header holds a
//! certificate chain (leaf first) ending at a certificate of its
//! `rootcertbundle`, and the token verifies with the leaf's public key. So at
//! start-up the key and the leaf must belong together: a mismatch would only
//! show as every push being refused, with the reason in the registry's log.
//! [`SigningKey::load`] checks it by signing a probe and verifying it with
//! the leaf.
//!
//! Tokens are signed here with aws-lc-rs directly rather than through a JWT
//! library: the header is fixed at load time (it holds the chain), and the
//! signature is the only per-token work.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The JWS algorithm of the key; also `oci-token dev-ca --algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    /// EC P-256
    Es256,
    /// RSA 2048
    Rs256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A loaded signing key with its chain. `Debug` shows the algorithm and the
/// chain length, never key material.
pub struct SigningKey {
    inner: Inner,
    algorithm: Algorithm,
    /// `base64url(header JSON) + "."`: the same for every token.
    header_prefix: String,
    /// The chain as DER, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// Key material for the ticket MAC, derived from the private key so every
    /// replica with the same key agrees without another secret to configure.
    ticket_secret: [u8; 32],
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// What is wrong with a key or chain; the caller adds which file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "no private key found (expected a PEM `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` block)"
    )]
    NoKey,
    #[error(
        "the private key is neither an EC P-256 key (ES256) nor an RSA key of 2048 bits or more (RS256)"
    )]
    UnsupportedKey,
    #[error("no certificate found (expected PEM `CERTIFICATE` blocks, leaf first)")]
    NoCertificate,
    #[error("the first certificate of the chain cannot be parsed: {0}")]
    BadLeaf(String),
    #[error(
        "the signing key does not match the first certificate of the chain (the leaf must certify this key)"
    )]
    KeyMismatch,
}

impl SigningKey {
    /// Loads a PEM private key and a PEM certificate chain (leaf first).
    ///
    /// # Errors
    /// When either cannot be read as such, or the leaf does not certify the key.
    pub fn load(key_pem: &[u8], chain_pem: &[u8]) -> Result<Self, KeyError> {
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| KeyError::NoKey)?;
        let (inner, probe_signature, algorithm, secret_der) = match &key {
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                    Ok(ec) => (Inner::Ec(ec), ec_probe(der, true)?, Algorithm::Es256, der),
                    Err(_) => {
                        let rsa =
                            RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::UnsupportedKey)?;
                        let probe = rsa_probe(&rsa)?;
                        (Inner::Rsa(rsa), probe, Algorithm::Rs256, der)
                    }
                }
            }
            PrivateKeyDer::Sec1(der) => {
                let der = der.secret_sec1_der();
                let ec = EcdsaKeyPair::from_private_key_der(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                )
                .map_err(|_| KeyError::UnsupportedKey)?;
                (Inner::Ec(ec), ec_probe(der, false)?, Algorithm::Es256, der)
            }
            PrivateKeyDer::Pkcs1(der) => {
                let der = der.secret_pkcs1_der();
                let rsa = RsaKeyPair::from_der(der).map_err(|_| KeyError::UnsupportedKey)?;
                let probe = rsa_probe(&rsa)?;
                (Inner::Rsa(rsa), probe, Algorithm::Rs256, der)
            }
            _ => return Err(KeyError::UnsupportedKey),
        };
        if let Inner::Rsa(rsa) = &inner {
            // Below 2048 bits the registry's Go verifier and every current
            // guideline say no.
            if rsa.public_modulus_len() < 256 {
                return Err(KeyError::UnsupportedKey);
            }
        }

        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|_| KeyError::NoCertificate)?;
        let leaf = chain.first().ok_or(KeyError::NoCertificate)?;
        let leaf_cert =
            webpki::EndEntityCert::try_from(leaf).map_err(|e| KeyError::BadLeaf(e.to_string()))?;
        let verify_alg = match algorithm {
            Algorithm::Es256 => webpki::aws_lc_rs::ECDSA_P256_SHA256,
            Algorithm::Rs256 => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        };
        leaf_cert
            .verify_signature(verify_alg, PROBE, &probe_signature)
            .map_err(|_| KeyError::KeyMismatch)?;

        let x5c: Vec<String> = chain.iter().map(|c| STANDARD.encode(c.as_ref())).collect();
        let header = serde_json::json!({"alg": algorithm.as_str(), "typ": "JWT", "x5c": x5c});
        let header_prefix = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));

        let mut hasher = Sha256::new();
        hasher.update(b"rise-registry oci-token ticket key v1\0");
        hasher.update(secret_der);
        let ticket_secret: [u8; 32] = hasher.finalize().into();

        Ok(Self {
            inner,
            algorithm,
            header_prefix,
            chain,
            ticket_secret,
            rng: SystemRandom::new(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The chain as loaded, DER, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Secret bytes for the ticket MAC; never leaves the process.
    pub(super) fn ticket_secret(&self) -> &[u8; 32] {
        &self.ticket_secret
    }

    /// A compact JWS of `claims` with this key's fixed header.
    pub fn sign(&self, claims: &impl serde::Serialize) -> String {
        let claims = serde_json::to_vec(claims).expect("token claims serialize");
        let mut token = String::with_capacity(self.header_prefix.len() + claims.len() * 2 + 400);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signature = match &self.inner {
            Inner::Ec(ec) => ec
                .sign(&self.rng, token.as_bytes())
                .expect("ECDSA signing does not fail with a valid key")
                .as_ref()
                .to_vec(),
            Inner::Rsa(rsa) => {
                let mut sig = vec![0; rsa.public_modulus_len()];
                rsa.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    token.as_bytes(),
                    &mut sig,
                )
                .expect("RSA signing does not fail with a valid key and buffer");
                sig
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        token
    }

    /// The public key, as aws-lc-rs gives it, to verify tokens with.
    #[cfg(test)]
    fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        match &self.inner {
            Inner::Ec(ec) => ec.public_key().as_ref().to_vec(),
            Inner::Rsa(rsa) => rsa.public_key().as_ref().to_vec(),
        }
    }
}

const PROBE: &[u8] = b"rise-registry key and certificate probe";

/// An ASN.1 ECDSA signature of [`PROBE`] (webpki verifies that encoding).
fn ec_probe(der: &[u8], pkcs8: bool) -> Result<Vec<u8>, KeyError> {
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let key = if pkcs8 {
        EcdsaKeyPair::from_pkcs8(alg, der)
    } else {
        EcdsaKeyPair::from_private_key_der(alg, der)
    }
    .map_err(|_| KeyError::UnsupportedKey)?;
    key.sign(&SystemRandom::new(), PROBE)
        .map(|s| s.as_ref().to_vec())
        .map_err(|_| KeyError::UnsupportedKey)
}

fn rsa_probe(rsa: &RsaKeyPair) -> Result<Vec<u8>, KeyError> {
    let mut sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        PROBE,
        &mut sig,
    )
    .map_err(|_| KeyError::UnsupportedKey)?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["token".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (key.serialize_pem(), cert.pem())
    }

    fn verify(key: &SigningKey, token: &str) -> serde_json::Value {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let alg: &dyn signature::VerificationAlgorithm = match key.algorithm() {
            Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(alg, key.public_key())
            .verify(input.as_bytes(), &sig)
            .expect("signature verifies");
        let (header, _) = input.split_once('.').unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    }

    #[test]
    fn ec_and_rsa_keys_sign_tokens_with_the_chain_in_x5c() {
        for (alg, name, debug) in [
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                "ES256",
                "SigningKey { algorithm: Es256, chain_len: 1, .. }",
            ),
            (
                &rcgen::PKCS_RSA_SHA256,
                "RS256",
                "SigningKey { algorithm: Rs256, chain_len: 1, .. }",
            ),
        ] {
            let (key_pem, cert_pem) = pair(alg);
            let key = SigningKey::load(key_pem.as_bytes(), cert_pem.as_bytes()).unwrap();
            let token = key.sign(&serde_json::json!({"sub": "x"}));
            let header = verify(&key, &token);
            assert_eq!(header["alg"], name);
            let leaf = STANDARD.decode(header["x5c"][0].as_str().unwrap()).unwrap();
            assert_eq!(
                leaf,
                key.chain()[0].as_ref(),
                "standard base64 of the DER leaf"
            );
            // Exactly this: no field of key material, PEM or derived.
            assert_eq!(format!("{key:?}"), debug);
        }
    }

    #[test]
    fn a_key_that_the_leaf_does_not_certify_is_refused() {
        let (key_pem, _) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other_cert) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            SigningKey::load(key_pem.as_bytes(), other_cert.as_bytes()).unwrap_err(),
            KeyError::KeyMismatch
        );
        let (rsa_key, _) = pair(&rcgen::PKCS_RSA_SHA256);
        let (_, ec_cert) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            SigningKey::load(rsa_key.as_bytes(), ec_cert.as_bytes()).unwrap_err(),
            KeyError::KeyMismatch
        );
    }

    #[test]
    fn files_without_the_expected_blocks_are_named_as_such() {
        let (key_pem, cert_pem) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            SigningKey::load(cert_pem.as_bytes(), cert_pem.as_bytes()).unwrap_err(),
            KeyError::NoKey
        );
        assert_eq!(
            SigningKey::load(key_pem.as_bytes(), key_pem.as_bytes()).unwrap_err(),
            KeyError::NoCertificate
        );
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            SigningKey::load(p384.serialize_pem().as_bytes(), cert_pem.as_bytes()).unwrap_err(),
            KeyError::UnsupportedKey
        );
    }

    #[test]
    fn the_ticket_secret_follows_the_key() {
        let (key_pem, cert_pem) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let a = SigningKey::load(key_pem.as_bytes(), cert_pem.as_bytes()).unwrap();
        let b = SigningKey::load(key_pem.as_bytes(), cert_pem.as_bytes()).unwrap();
        assert_eq!(a.ticket_secret(), b.ticket_secret(), "replicas agree");
        let (other_pem, other_cert) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let c = SigningKey::load(other_pem.as_bytes(), other_cert.as_bytes()).unwrap();
        assert_ne!(a.ticket_secret(), c.ticket_secret());
    }
}
