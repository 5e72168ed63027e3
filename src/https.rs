//! The one way rise-registry makes outgoing HTTP(S) requests outside the
//! AWS SDK (an issuer's keys, `doctor`'s probes, `login`'s broker and
//! token endpoint): HTTP/1 over plain TCP or TLS with the system's root
//! certificates (`SSL_CERT_FILE` names another bundle), rustls on aws-lc.
//! And the one rule for a URL that carries a bearer credential or brings
//! back keys ([`check_url`]).

use std::net::Ipv6Addr;

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

/// Why a URL may not be used to send a credential or fetch keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    /// Not `http://` or `https://` with a host.
    NotHttp,
    /// User info before the host (`http://localhost:1@10.0.0.1:2/`),
    /// which reads like one host and connects to another.
    UserInfo,
    /// Plain `http://` to a host that is not loopback.
    PlainHttp,
}

/// The rule for every URL serve and login send a bearer credential to or
/// fetch keys from: `https://`, or `http://` to a loopback host only
/// ([`is_loopback`]); a host is required and user info is refused. The
/// parsed URL when it holds.
///
/// # Errors
/// Which part of the rule it breaks.
pub fn check_url(url: &str) -> Result<hyper::Uri, UrlProblem> {
    let uri: hyper::Uri = url.trim().parse().map_err(|_| UrlProblem::NotHttp)?;
    let scheme = uri.scheme_str();
    if !matches!(scheme, Some("http" | "https")) {
        return Err(UrlProblem::NotHttp);
    }
    let authority = uri.authority().ok_or(UrlProblem::NotHttp)?;
    if authority.as_str().contains('@') {
        return Err(UrlProblem::UserInfo);
    }
    let host = authority.host();
    // What hyper takes but a connection would read otherwise: brackets
    // hold an IPv6 address only (`[127.0.0.1]` is no URL host), and a port
    // is a number that fits one (`:30t` is not a port).
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let port = authority.as_str().strip_prefix(host);
    let port_ok = match port.map(|p| p.strip_prefix(':')) {
        Some(None) => port == Some(""),
        Some(Some(digits)) => {
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u16>().is_ok()
        }
        None => false,
    };
    if host.is_empty()
        || !port_ok
        || (host.starts_with('[') && bracketed.is_none_or(|ip| ip.parse::<Ipv6Addr>().is_err()))
    {
        return Err(UrlProblem::NotHttp);
    }
    if scheme == Some("http") && !is_loopback(authority.host()) {
        return Err(UrlProblem::PlainHttp);
    }
    Ok(uri)
}

/// `localhost` or a loopback address: `127.0.0.0/8`, `[::1]`, and IPv4's
/// loopback written as an IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`),
/// which connects to the same place.
pub fn is_loopback(host: &str) -> bool {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_url_that_carries_a_credential() {
        for ok in [
            "https://rise.example.com",
            "https://[2001:db8::1]:8443/x",
            "http://127.0.0.1:3000",
            "http://127.9.9.9/x",
            "http://localhost:3000",
            "http://LOCALHOST/x",
            "http://[::1]:3000",
            "http://[::ffff:127.0.0.1]:3000/t",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "http://localhost:18090@127.0.0.1:13000",
                UrlProblem::UserInfo,
            ),
            ("https://user:pw@rise.example.com", UrlProblem::UserInfo),
            ("http://127.0.0.1@rise.example.com", UrlProblem::UserInfo),
            ("http://rise.example.com", UrlProblem::PlainHttp),
            ("http://10.0.0.1:3000", UrlProblem::PlainHttp),
            ("http://[::ffff:10.0.0.1]:3000", UrlProblem::PlainHttp),
            ("http://[2001:db8::1]/", UrlProblem::PlainHttp),
            ("http://localhost.example.com", UrlProblem::PlainHttp),
            ("http://127.0.0.1.example.com", UrlProblem::PlainHttp),
            ("ftp://rise.example.com", UrlProblem::NotHttp),
            ("rise.example.com", UrlProblem::NotHttp),
            ("https://", UrlProblem::NotHttp),
            // Found by the url_rule fuzz target: hyper takes both.
            ("http://[127.0.0.1]:3000", UrlProblem::NotHttp),
            ("http://127.0.0.1:30t", UrlProblem::NotHttp),
            ("https://rise.example.com:99999", UrlProblem::NotHttp),
            ("https://rise.example.com:/", UrlProblem::NotHttp),
            ("", UrlProblem::NotHttp),
        ] {
            assert_eq!(check_url(bad).err(), Some(why), "{bad}");
        }
    }
}
