//! Parsers of single config values that are not names: addresses, URLs
//! and the registry token's `service`/`issuer`. Values spliced into ARNs,
//! policies and image paths are newtypes in [`crate::naming`] instead.

use std::net::SocketAddr;

use super::error::Problem;

pub fn socket_addr(s: &str) -> Result<SocketAddr, Problem> {
    s.parse().map_err(|_| {
        Problem::new(format!("`{s}` is not an IP address and port"))
            .hint("use something like `0.0.0.0:3000` or `127.0.0.1:3000`")
    })
}

pub(super) fn http_url(s: &str) -> Result<String, Problem> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !s.contains(char::is_whitespace) => Ok(s.to_string()),
        _ => Err(Problem::new(format!(
            "`{s}` is not an http:// or https:// URL"
        ))),
    }
}

/// Keys come from a JWKS URL, so plain HTTP is allowed only on loopback.
pub(super) fn jwks_url(s: &str) -> Result<String, Problem> {
    let url = http_url(s)?;
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            s.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with([':', '/']))
        });
    if url.starts_with("https://") || loopback {
        Ok(url)
    } else {
        Err(Problem::new(format!("`{s}` must use https://"))
            .hint("token-verification keys fetched over plain HTTP could be swapped in transit"))
    }
}

/// A token `service` or `issuer`: compared byte for byte by the registry, so
/// stray whitespace would silently break every push.
pub(super) fn token_name(s: &str) -> Result<String, Problem> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(
            Problem::new(format!("`{s}` must be 1 to 256 characters without spaces"))
                .hint("it must equal the registry's `auth.token` setting exactly"),
        )
    } else {
        Ok(s.to_string())
    }
}
