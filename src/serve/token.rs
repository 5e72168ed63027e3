//! Parsing token-endpoint requests (`/registry/token`), as the Docker
//! Registry v2 token spec and its OAuth2 variant describe them.
//!
//! - `GET ?service=…&scope=…&scope=…[&offline_token=true]` with HTTP Basic
//!   `{anything}:{ticket}`: docker login, skopeo, podman;
//! - `POST` form `grant_type=password&username=…&password={ticket}&scope=…`
//!   (scopes space-separated), or `grant_type=refresh_token&refresh_token=
//!   {ticket}`: containerd.
//!
//! Pure functions over bytes, so they can be fuzzed; the handler in
//! [`super::app`] does the I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A parsed request: the ticket and what it asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The presented ticket (the Basic password, `password` or `refresh_token`).
    pub ticket: String,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// Whether the client asked for a refresh token (`offline_token=true`,
    /// `access_type=offline`).
    pub offline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("send the ticket from /registry/credentials as the password (HTTP Basic)")]
    MissingCredentials,
    #[error("{0}")]
    Malformed(&'static str),
    #[error("unsupported grant_type `{0}`; use `password` or `refresh_token`")]
    UnsupportedGrant(String),
}

/// At most this many scopes are read from one request.
pub(crate) const MAX_SCOPES: usize = 16;
/// Form bodies larger than this are refused unread.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// A `GET` request: query string and `Authorization` header value.
///
/// # Errors
/// When the query is malformed or no Basic credentials are given.
pub fn from_query(
    query: Option<&str>,
    authorization: Option<&[u8]>,
) -> Result<TokenRequest, RequestError> {
    let pairs = form_pairs(query.unwrap_or_default().as_bytes())?;
    let mut request = TokenRequest {
        ticket: String::new(),
        service: None,
        scopes: Vec::new(),
        offline: false,
    };
    for (key, value) in pairs {
        match key.as_str() {
            "service" => set_once(&mut request.service, value)?,
            "scope" => push_scopes(&mut request.scopes, &value)?,
            "offline_token" => request.offline = value == "true",
            _ => {} // account, client_id: informational
        }
    }
    request.ticket = authorization
        .and_then(basic_password)
        .filter(|p| !p.is_empty())
        .ok_or(RequestError::MissingCredentials)?;
    Ok(request)
}

/// A `POST` request's `application/x-www-form-urlencoded` body.
///
/// # Errors
/// When the form is malformed, the grant type unsupported, or the ticket
/// missing.
pub fn from_form(body: &[u8]) -> Result<TokenRequest, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::Malformed("the request body is too large"));
    }
    let mut grant_type = None;
    let mut password = None;
    let mut refresh_token = None;
    let mut request = TokenRequest {
        ticket: String::new(),
        service: None,
        scopes: Vec::new(),
        offline: false,
    };
    for (key, value) in form_pairs(body)? {
        match key.as_str() {
            "grant_type" => set_once(&mut grant_type, value)?,
            "password" => set_once(&mut password, value)?,
            "refresh_token" => set_once(&mut refresh_token, value)?,
            "service" => set_once(&mut request.service, value)?,
            "scope" => push_scopes(&mut request.scopes, &value)?,
            "access_type" => request.offline = value == "offline",
            _ => {} // username, client_id: informational
        }
    }
    let ticket = match grant_type.as_deref() {
        Some("password") => password,
        Some("refresh_token") => refresh_token,
        Some(other) => return Err(RequestError::UnsupportedGrant(truncate(other))),
        None => return Err(RequestError::Malformed("missing grant_type")),
    };
    request.ticket = ticket
        .filter(|t| !t.is_empty())
        .ok_or(RequestError::MissingCredentials)?;
    Ok(request)
}

fn set_once(slot: &mut Option<String>, value: String) -> Result<(), RequestError> {
    if slot.replace(value).is_some() {
        return Err(RequestError::Malformed(
            "a parameter that may appear once appears twice",
        ));
    }
    Ok(())
}

/// Scopes are space-separated in OAuth2 and repeated in GET; both forms are
/// taken from either.
fn push_scopes(scopes: &mut Vec<String>, value: &str) -> Result<(), RequestError> {
    for scope in value.split(' ').filter(|s| !s.is_empty()) {
        if scopes.len() == MAX_SCOPES {
            return Err(RequestError::Malformed("too many scopes in one request"));
        }
        scopes.push(scope.to_string());
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Decoded `key=value` pairs of a query string or form body.
pub(super) fn form_pairs(input: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let bad = RequestError::Malformed("a parameter is not valid percent-encoded UTF-8");
            Ok((
                percent_decode(k).ok_or_else(|| bad.clone())?,
                percent_decode(v).ok_or(bad)?,
            ))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte (two hex digits, nothing else); the result must be UTF-8 without
/// control characters.
///
/// The `percent-encoding` crate decodes; it passes a malformed escape
/// (`%zz`, `%4`, `%+7`) through as text, so escapes are checked first and a
/// malformed one refuses the whole value: a parameter is never guessed.
pub fn percent_decode(input: &[u8]) -> Option<String> {
    let escapes_well_formed =
        input
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'%')
            .all(|(i, _)| {
                matches!(input.get(i + 1..i + 3), Some([hi, lo])
                if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit())
            });
    if !escapes_well_formed {
        return None;
    }
    // `+` becomes a space before decoding, so an escaped `%2B` stays a `+`.
    let spaced: Vec<u8> = input
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    let s = String::from_utf8(decoded).ok()?;
    (!s.chars().any(char::is_control)).then_some(s)
}

/// The password of `Basic base64(user:password)`.
fn basic_password(header: &[u8]) -> Option<String> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_user, password) = decoded.split_once(':')?;
    Some(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    #[test]
    fn a_skopeo_style_get_is_understood() {
        let auth = basic("rise", "rise.v1.abc.def");
        let r = from_query(
            Some("account=rise&scope=repository%3Arise-apps%2Fmy-app%3Apull%2Cpush&service=rise-registry"),
            Some(&auth),
        )
        .unwrap();
        assert_eq!(
            r,
            TokenRequest {
                ticket: "rise.v1.abc.def".into(),
                service: Some("rise-registry".into()),
                scopes: vec!["repository:rise-apps/my-app:pull,push".into()],
                offline: false,
            }
        );
        let r = from_query(
            Some("scope=repository:a/b:pull&scope=repository:a/c:pull&offline_token=true"),
            Some(&auth),
        )
        .unwrap();
        assert_eq!(r.scopes.len(), 2);
        assert!(r.offline);
    }

    #[test]
    fn a_get_without_basic_credentials_is_refused() {
        for auth in [
            None,
            Some(&b"Bearer abc"[..]),
            Some(&b"Basic !!!"[..]),
            Some(&b"Basic"[..]),
        ] {
            assert_eq!(
                from_query(Some("service=x"), auth),
                Err(RequestError::MissingCredentials)
            );
        }
        assert_eq!(
            from_query(None, Some(&basic("rise", ""))),
            Err(RequestError::MissingCredentials)
        );
    }

    #[test]
    fn containerd_style_posts_are_understood() {
        let r = from_form(
            b"grant_type=password&username=rise&password=rise.v1.a.b&service=s\
              &scope=repository%3Ax%2Fy%3Apull+repository%3Ax%2Fz%3Apush&access_type=offline",
        )
        .unwrap();
        assert_eq!(r.ticket, "rise.v1.a.b");
        assert_eq!(r.scopes, ["repository:x/y:pull", "repository:x/z:push"]);
        assert!(r.offline);
        let r = from_form(b"grant_type=refresh_token&refresh_token=rise.v1.c.d").unwrap();
        assert_eq!(r.ticket, "rise.v1.c.d");
        assert_eq!(
            from_form(b"grant_type=client_credentials&password=x"),
            Err(RequestError::UnsupportedGrant("client_credentials".into()))
        );
        assert_eq!(
            from_form(b"grant_type=password"),
            Err(RequestError::MissingCredentials)
        );
        assert!(from_form(b"password=x").is_err());
    }

    #[test]
    fn malformed_input_is_refused_not_guessed() {
        for body in [
            &b"grant_type=password&password=a&password=b"[..],
            b"grant_type=password&password=%zz",
            b"grant_type=password&password=%e2%28",
            b"grant_type=password&password=a%0ab",
            b"grant_type=password&password=x%",
        ] {
            assert!(
                matches!(from_form(body), Err(RequestError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let many = (0..=MAX_SCOPES)
            .map(|i| format!("scope=repository:a/{i}:pull"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(from_query(Some(&many), Some(&basic("a", "b"))).is_err());
        assert!(from_form(&vec![b'a'; MAX_BODY_BYTES + 1]).is_err());
    }

    #[test]
    fn percent_decoding_follows_the_form_rules() {
        assert_eq!(percent_decode(b"a+b%20c%2Fd").as_deref(), Some("a b c/d"));
        assert_eq!(percent_decode(b"%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode(b"%4"), None);
        assert_eq!(percent_decode(b"%00"), None);
    }

    #[test]
    fn an_escape_is_exactly_two_hex_digits() {
        // `u8::from_str_radix` once read `+7` as the byte 7 here.
        assert_eq!(percent_decode(b"%+7"), None);
        assert_eq!(percent_decode(b"a%+7b"), None);
        assert_eq!(percent_decode(b"%-1"), None);
        assert_eq!(percent_decode(b"%2B").as_deref(), Some("+"));
        assert_eq!(percent_decode(b"%41%"), None);
        assert!(matches!(
            from_form(b"grant_type=password&password=%+7"),
            Err(RequestError::Malformed(_))
        ));
    }
}
