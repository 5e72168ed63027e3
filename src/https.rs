//! The one way rise-registry makes outgoing HTTP(S) requests outside the
//! AWS SDK (an issuer's keys, `doctor`'s probes, `login`'s broker and
//! token endpoint): HTTP/1 over plain TCP or TLS with the system's root
//! certificates (`SSL_CERT_FILE` names another bundle), rustls on aws-lc.
//! One GET for all of them ([`get`]: a deadline over the whole exchange, a
//! body limit, no redirect followed), and the one rule for a URL that
//! carries a bearer credential or brings back keys ([`check_url`]).

use std::net::Ipv6Addr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
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

/// The limits of one [`get`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the whole exchange: connecting, the answer's head and its body.
    pub timeout: Duration,
    /// Body bytes read at most; a longer body is an error.
    pub max_body: usize,
}

/// An answer to [`get`].
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value, when it is text.
    pub fn header(&self, name: impl hyper::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a [`get`] has no answer, as one line without the URL (callers name
/// it as their messages need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    /// The URL or a header could not make a request.
    Request(String),
    /// No connection, TLS refused, or the exchange broke off.
    Unreachable(String),
    /// The answer's body broke off or was over [`Limits::max_body`].
    Body(String),
    /// No whole answer within [`Limits::timeout`].
    Timeout(Duration),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request(e) | Self::Unreachable(e) => f.write_str(e),
            Self::Body(e) => write!(f, "reading the answer: {e}"),
            Self::Timeout(t) => write!(f, "no answer within {} s", t.as_secs_f64()),
        }
    }
}

impl std::error::Error for GetError {}

/// `GET url` with `headers` (a sensitive value, such as an
/// `Authorization`, stays marked so hyper never logs it). The whole
/// exchange runs within `limits.timeout` and reads at most
/// `limits.max_body` bytes of body. A redirect is not followed: a 3xx is an
/// answer like any other, so a credential never goes where the caller did
/// not check. Callers that send a credential check `url` with
/// [`check_url`] first.
///
/// # Errors
/// [`GetError`]: no request could be made, no answer, a body that broke
/// off or was too long, or the deadline passed.
pub async fn get(
    client: &HttpsClient,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
    limits: Limits,
) -> Result<Reply, GetError> {
    let mut request = hyper::Request::get(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Empty::new())
        .map_err(|e| GetError::Request(e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| GetError::Unreachable(crate::aws::error_text(&e)))?;
        let (head, body) = response.into_parts();
        let body = Limited::new(body, limits.max_body)
            .collect()
            .await
            .map_err(|e| GetError::Body(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: head.status,
            headers: head.headers,
            body,
        })
    };
    tokio::time::timeout(limits.timeout, exchange)
        .await
        .map_err(|_| GetError::Timeout(limits.timeout))?
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

    /// A loopback server that answers each connection with `answer`, after
    /// `delay`; its base URL.
    async fn answering(answer: &'static str, delay: Duration) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    tokio::time::sleep(delay).await;
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(5),
        max_body: 16,
    };

    #[tokio::test]
    async fn one_get_with_a_deadline_a_body_limit_and_no_redirect() {
        let client = client().unwrap();
        let ok = answering(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nRetry-After: 7\r\n\r\nhello",
            Duration::ZERO,
        )
        .await;
        let reply = get(&client, &ok, &[], LIMITS).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header(hyper::header::RETRY_AFTER), Some("7"));
        assert_eq!(&reply.body[..], b"hello");

        let moved = answering(
            "HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n",
            Duration::ZERO,
        )
        .await;
        let reply = get(&client, &moved, &[], LIMITS).await.unwrap();
        assert_eq!(reply.status, StatusCode::FOUND, "answered, not followed");

        let long = answering(
            "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n0123456789abcdefg",
            Duration::ZERO,
        )
        .await;
        let e = get(&client, &long, &[], LIMITS).await.unwrap_err();
        assert!(matches!(e, GetError::Body(_)), "{e:?}");
        assert!(e.to_string().starts_with("reading the answer: "), "{e}");

        let slow = answering("HTTP/1.1 200 OK\r\n\r\n", Duration::from_secs(30)).await;
        let quick = Limits {
            timeout: Duration::from_millis(200),
            ..LIMITS
        };
        let e = get(&client, &slow, &[], quick).await.unwrap_err();
        assert_eq!(e, GetError::Timeout(quick.timeout));
        assert_eq!(e.to_string(), "no answer within 0.2 s");

        let e = get(&client, "http://127.0.0.1:1/", &[], LIMITS)
            .await
            .unwrap_err();
        assert!(matches!(e, GetError::Unreachable(_)), "{e:?}");
        let e = get(&client, "not a url", &[], LIMITS).await.unwrap_err();
        assert!(matches!(e, GetError::Request(_)), "{e:?}");
    }

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
