//! `rise-registry token`: mint an HS256 token with the configured shared
//! secret, for trying serve locally and for scripts in development.
//!
//! It signs with `auth.hs256_secret` and stamps `auth.issuer` and
//! `auth.audience`, so the token is exactly what this configuration's
//! serve accepts. Anyone who can read the secret can mint tokens anyway;
//! this only saves them the arithmetic.

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::io::Write;

use super::Status;
use crate::config::Config;

/// Who the token speaks for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub ttl_seconds: u64,
}

/// # Errors
/// When no `hs256_secret` is configured, or writing fails.
pub fn run(config: &Config, request: &TokenRequest, out: &mut dyn Write) -> Result<Status> {
    let token = mint(config, request, crate::clock::unix_now())?;
    writeln!(out, "{token}")?;
    Ok(Status::Success)
}

/// # Errors
/// When no `hs256_secret` is configured.
pub fn mint(config: &Config, request: &TokenRequest, now: i64) -> Result<String> {
    let secret = config.auth.hs256_secret.as_ref().context(
        "`auth.hs256_secret` is not set, so there is no key to sign with; \
         tokens for a JWKS setup come from your identity provider",
    )?;
    let max = config.auth.max_token_lifetime_seconds;
    if request.ttl_seconds > u64::from(max) {
        anyhow::bail!(
            "--ttl {} is longer than auth.max_token_lifetime_seconds ({max}): serve would refuse the token\n  hint: ask for at most {max} seconds, or raise auth.max_token_lifetime_seconds",
            request.ttl_seconds
        );
    }
    let ttl = i64::try_from(request.ttl_seconds).context("--ttl is too large")?;
    let mut claims = json!({
        "sub": request.subject,
        "iat": now,
        "exp": now.checked_add(ttl).context("--ttl is too large")?,
        config.auth.groups_claim.as_str(): request.groups,
    });
    if let Some(email) = &request.email {
        // Serve counts an email only when the issuer vouches for it.
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    if let Some(issuer) = &config.auth.issuer {
        claims["iss"] = json!(issuer);
    }
    if let Some(audience) = &config.auth.audience {
        claims["aud"] = json!(audience);
    }
    let key = EncodingKey::from_secret(secret.expose().as_bytes())
        .context("the HS256 secret is empty")?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).context("signing the token")
}
