//! Tokens for tests, signed with real keys: HS256 with a shared secret,
//! ES256 and RS256 with freshly generated key pairs published as a JWKS.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Standard claims for `sub`, valid for five minutes.
pub fn claims(sub: &str, email: Option<&str>, groups: &[&str]) -> Value {
    let mut c = json!({"sub": sub, "exp": now() + 300, "iat": now(), "groups": groups});
    if let Some(email) = email {
        c["email"] = json!(email);
        c["email_verified"] = json!(true);
    }
    c
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

pub fn hs256(secret: &str, claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "HS256", "typ": "JWT"}), claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// A signing key and its public JWK.
pub enum TestKey {
    Es256 {
        kid: String,
        pair: EcdsaKeyPair,
    },
    Rs256 {
        kid: String,
        pair: aws_lc_rs::rsa::KeyPair,
    },
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self::Es256 {
            kid: kid.into(),
            pair,
        }
    }

    pub fn rs256(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        Self::Rs256 {
            kid: kid.into(),
            pair,
        }
    }

    pub fn kid(&self) -> &str {
        match self {
            Self::Es256 { kid, .. } | Self::Rs256 { kid, .. } => kid,
        }
    }

    /// The JWS algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256 { .. } => "ES256",
            Self::Rs256 { .. } => "RS256",
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Self::Es256 { kid, pair } => {
                let point = pair.public_key().as_ref(); // 0x04 || x || y
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                       "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
            }
            Self::Rs256 { kid, pair } => {
                let public = pair.public_key();
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
                       "e": B64.encode(public.exponent().big_endian_without_leading_zero())})
            }
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let rng = SystemRandom::new();
        match self {
            Self::Es256 { kid, pair } => {
                let input =
                    signing_input(&json!({"alg": "ES256", "typ": "JWT", "kid": kid}), claims);
                let sig = pair.sign(&rng, input.as_bytes()).unwrap();
                format!("{input}.{}", B64.encode(sig.as_ref()))
            }
            Self::Rs256 { kid, pair } => {
                let input =
                    signing_input(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims);
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                format!("{input}.{}", B64.encode(sig))
            }
        }
    }
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}
